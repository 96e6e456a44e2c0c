//! WebSocket over real loopback sockets, with `tungstenite` as the client: messages of every
//! size, fragments, ping/pong, close codes, handshake refusals, broadcast, cross-thread sends,
//! backpressure against a slow reader, keepalive pings, and graceful shutdown.

mod util;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::Duration;

use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::{CloseCode as TCode, Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use berth::testing::HowClosed;
use util::{assert_at, assert_closed_at, now, start, test_config, upgrade_request, wait_until};

/// A plain socket for tungstenite, with timeouts.
fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(util::WAIT)).unwrap();
    stream.set_write_timeout(Some(util::WAIT)).unwrap();
    stream
}

fn ws_connect(addr: SocketAddr, path: &str) -> WebSocket<TcpStream> {
    let stream = tcp(addr);
    let (ws, response) = tungstenite::client(format!("ws://{addr}{path}"), stream).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// Read until a data or close message arrives (answering pings on the way).
fn next_message(ws: &mut WebSocket<TcpStream>) -> Message {
    loop {
        match ws.read().unwrap() {
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return other,
        }
    }
}

/// The code of the Close the server sends, read until the connection ends: tungstenite
/// answers the Close, and the server must then end the TCP connection in order.
fn close_code(ws: &mut WebSocket<TcpStream>) -> Option<u16> {
    let code = loop {
        match ws.read() {
            Ok(Message::Close(frame)) => break frame.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(e) => panic!("connection ended without a Close: {e}"),
        }
    };
    match ws.read() {
        Err(tungstenite::Error::ConnectionClosed) => code,
        other => panic!("after the Close ({code:?}): {other:?}"),
    }
}

#[test]
fn echoes_text_binary_and_a_16_mib_message() {
    let mut config = test_config();
    config.limits.max_message = 16 << 20;
    config.limits.max_frame_payload = 16 << 20;
    config.max_write_buffer = 40 << 20;
    let (server, _) = start(config);
    let addr = server.addr();
    let mut ws = ws_connect(addr, "/ws");
    ws.send(Message::text("hello, berth")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text("hello, berth"));
    ws.send(Message::binary(vec![0u8, 1, 2, 255])).unwrap();
    assert_eq!(next_message(&mut ws), Message::binary(vec![0u8, 1, 2, 255]));
    ws.send(Message::text("")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text(""));

    let big: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).unwrap();
    match next_message(&mut ws) {
        Message::Binary(echo) => assert!(echo[..] == big[..], "16 MiB echo differs"),
        other => panic!("expected binary, got {other:?}"),
    }
    ws.close(None).unwrap();
    // A Close without a code is answered with one without a code (RFC 6455 §5.5.1).
    assert_eq!(close_code(&mut ws), None);
    server.shutdown().unwrap();
}

#[test]
fn fragments_are_reassembled_and_pings_answered_between_them() {
    let (server, _) = start(test_config());
    let addr = server.addr();
    let mut ws = ws_connect(addr, "/ws");
    ws.write(Message::Frame(Frame::message(
        "frag".as_bytes().to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .unwrap();
    ws.write(Message::Ping(b"between".to_vec().into())).unwrap();
    ws.write(Message::Frame(Frame::message(
        "men".as_bytes().to_vec(),
        OpCode::Data(Data::Continue),
        false,
    )))
    .unwrap();
    ws.write(Message::Frame(Frame::message(
        "ted ✓".as_bytes().to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .unwrap();
    ws.flush().unwrap();
    assert_eq!(
        ws.read().unwrap(),
        Message::Pong(b"between".to_vec().into())
    );
    assert_eq!(ws.read().unwrap(), Message::text("fragmented ✓"));
    server.shutdown().unwrap();
}

#[test]
fn close_codes_from_the_app_and_from_protocol_errors() {
    let mut config = test_config();
    config.limits.max_message = 1024;
    // Long enough that a close seen within LATE is not this timer's.
    config.timeouts.close = util::WAIT;
    let (server, seen) = start(config);
    let addr = server.addr();

    // The application closes with its own code.
    let mut ws = ws_connect(addr, "/ws");
    ws.send(Message::text("close:4001")).unwrap();
    assert_eq!(close_code(&mut ws), Some(4001));
    drop(ws);

    // The client closes; the server echoes its code.
    let mut ws = ws_connect(addr, "/ws");
    ws.close(Some(CloseFrame {
        code: TCode::Away,
        reason: "bye".into(),
    }))
    .unwrap();
    assert_eq!(close_code(&mut ws), Some(1001));
    drop(ws);

    // A message over max_message: 1009.
    let mut ws = ws_connect(addr, "/ws");
    ws.send(Message::binary(vec![0u8; 2048])).unwrap();
    assert_eq!(close_code(&mut ws), Some(1009));
    drop(ws);

    // Raw frames for what tungstenite will not send: invalid UTF-8 (1007), an unmasked
    // client frame (1002), a reserved opcode (1002). Each is sent on a tungstenite connection
    // and on one of berth's testing kit, so that the Close is read by a decoder other than
    // berth's own as well.
    let frames = [
        (&[0x81u8, 0x82, 0, 0, 0, 0, 0xc3, 0x28][..], 1007u16),
        (&[0x82u8, 0x01, 0x00][..], 1002),
        (&[0x83u8, 0x80, 0, 0, 0, 0][..], 1002),
    ];
    for (frame, code) in frames {
        let mut ws = ws_connect(addr, "/ws");
        ws.get_mut().write_all(frame).unwrap();
        assert_eq!(close_code(&mut ws), Some(code), "for {frame:x?}");
        drop(ws);
        let mut ws = server.websocket("/ws").unwrap();
        ws.send_raw(frame).unwrap();
        ws.expect_close(code).unwrap();
        // The kit answered the Close; the handshake is over, and the server closes the
        // connection at once and in order.
        let from = now();
        let end = ws.raw().read_until_close().unwrap();
        assert!(end.bytes.is_empty(), "for {frame:x?}: {:x?}", end.bytes);
        assert_closed_at(
            &format!("after the Close for {frame:x?}"),
            &end,
            HowClosed::Fin,
            from,
            Duration::ZERO,
        );
    }
    wait_until("on_close for every connection", || {
        seen.closes.lock().unwrap().len() >= 3 + 2 * frames.len()
    });
    let closes = seen.closes.lock().unwrap().clone();
    assert!(
        closes.iter().any(|c| c.contains("Local(CloseCode(4001))")),
        "{closes:?}"
    );
    assert!(
        closes
            .iter()
            .any(|c| c.contains("Peer(Some(CloseCode(1001)), \"bye\")")),
        "{closes:?}"
    );
    assert!(
        closes
            .iter()
            .any(|c| c.contains("Protocol(MessageTooLarge)")),
        "{closes:?}"
    );
    server.shutdown().unwrap();
}

#[test]
fn handshake_refusals_carry_their_status() {
    let (server, _) = start(test_config());
    let addr = server.addr();
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    type Case = (String, u16, Option<(&'static str, &'static str)>);
    let cases: Vec<Case> = vec![
        // No Upgrade at all on a WebSocket path.
        ("GET /ws HTTP/1.1\r\nHost: t\r\n\r\n".into(), 400, None),
        // Not GET.
        (
            format!("POST /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{key}Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"),
            405,
            Some(("allow", "GET")),
        ),
        // A key that is not 16 bytes of base64.
        (
            "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n".into(),
            400,
            None,
        ),
        // An unsupported version.
        (
            format!("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{key}Sec-WebSocket-Version: 8\r\n\r\n"),
            426,
            Some(("sec-websocket-version", "13")),
        ),
        // The application refuses the Origin.
        (
            String::from_utf8(upgrade_request("/ws/origin", "Origin: https://evil.example\r\n")).unwrap(),
            403,
            None,
        ),
    ];
    for (req, status, header) in cases {
        let mut http = server.http().unwrap();
        http.send_raw(req.as_bytes()).unwrap();
        let res = http.read_response().unwrap();
        assert_eq!(res.status, status, "for {req:?}");
        if let Some((name, value)) = header {
            assert_eq!(res.header(name), Some(value), "for {req:?}");
        }
    }
    // The good Origin and a chosen subprotocol are accepted.
    let mut http = server.http().unwrap();
    http.send_raw(&upgrade_request(
        "/ws/origin",
        "Origin: https://good.example\r\n",
    ))
    .unwrap();
    assert_eq!(http.read_response().unwrap().status, 101);
    let ws = berth::testing::WsClient::connect(addr, "/ws/proto", &["a", "b"]).unwrap();
    assert_eq!(ws.protocol(), Some("b"));
    // The same through tungstenite, which checks the choice against its offer.
    let mut request = format!("ws://{addr}/ws/proto")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "a, b".parse().unwrap());
    let (mut ws, response) = tungstenite::client(request, tcp(addr)).unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "b");
    ws.send(Message::text("chosen")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text("chosen"));
    let mut http = server.http().unwrap();
    http.send_raw(&upgrade_request(
        "/ws/proto",
        "Sec-WebSocket-Protocol: a, b\r\n",
    ))
    .unwrap();
    let res = http.read_response().unwrap();
    assert_eq!(res.status, 101);
    assert_eq!(res.header("sec-websocket-protocol"), Some("b"));
    assert_eq!(
        res.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    server.shutdown().unwrap();
}

#[test]
fn publish_reaches_every_subscriber_on_every_worker() {
    let (server, _) = start(test_config());
    let addr = server.addr();
    let mut clients: Vec<_> = (0..6).map(|_| ws_connect(addr, "/ws/chat")).collect();
    // Subscriptions happen in on_open, which ran before the 101 was flushed.
    clients[0].send(Message::text("hi all")).unwrap();
    for ws in &mut clients {
        assert_eq!(next_message(ws), Message::text("hi all"));
    }
    // From outside any connection, through the Control handle.
    server
        .control()
        .publish("room", berth::server::Message::Binary(b"from outside"));
    for ws in &mut clients {
        assert_eq!(next_message(ws), Message::binary(b"from outside".to_vec()));
    }
    server.shutdown().unwrap();
}

#[test]
fn on_close_can_tell_the_others_through_control() {
    let (server, seen) = start(test_config());
    let addr = server.addr();
    let mut stays = ws_connect(addr, "/ws/presence");
    let mut polite = ws_connect(addr, "/ws/presence");
    let abrupt = ws_connect(addr, "/ws/presence");
    wait_until("three open", || seen.opened.load(Ordering::SeqCst) == 3);
    polite.close(None).unwrap();
    while polite.read().is_ok() {}
    let first = next_message(&mut stays);
    assert!(
        first.to_text().unwrap().starts_with("left: "),
        "unexpected {first:?}"
    );
    // A connection that just goes away (no close handshake) is reported too.
    drop(abrupt);
    let second = next_message(&mut stays);
    assert!(
        second.to_text().unwrap().starts_with("left: "),
        "unexpected {second:?}"
    );
    assert_ne!(first, second, "each departure names its own connection");
    server.shutdown().unwrap();
}

#[test]
fn a_sender_reaches_its_connection_from_another_thread() {
    let (server, seen) = start(test_config());
    let addr = server.addr();
    let mut ws = ws_connect(addr, "/ws/sender");
    wait_until("the sender", || !seen.senders.lock().unwrap().is_empty());
    let sender = seen.senders.lock().unwrap()[0].clone();
    std::thread::spawn(move || {
        sender.send_text("pushed").unwrap();
        sender
            .close(berth::ws::CloseCode::from(4002), "done")
            .unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(next_message(&mut ws), Message::text("pushed"));
    assert_eq!(close_code(&mut ws), Some(4002));
    server.shutdown().unwrap();
}

#[test]
fn a_slow_reader_is_held_to_the_bounded_buffer_and_closed() {
    let mut config = test_config();
    config.max_write_buffer = 256 * 1024;
    config.write_high_water = 64 * 1024;
    config.timeouts.write = Duration::from_millis(300);
    let (server, seen) = start(config);
    let addr = server.addr();
    // Connect and never read: the server floods until the buffer is at its bound.
    let mut stream = server.raw().unwrap();
    stream.write(&upgrade_request("/ws/flood", "")).unwrap();
    wait_until("the slow consumer to be closed", || {
        seen.closes
            .lock()
            .unwrap()
            .iter()
            .any(|c| c == "SlowConsumer")
    });
    let max = seen.max_buffered.load(Ordering::SeqCst);
    assert!(max > 0 && max <= 256 * 1024, "buffered {max}");
    // Other connections are served all along.
    let mut ws = ws_connect(addr, "/ws");
    ws.send(Message::text("still here")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text("still here"));
    drop(stream);
    server.shutdown().unwrap();
}

#[test]
fn idle_connections_are_pinged_and_dead_ones_closed() {
    let ping = Duration::from_millis(200);
    let pong = Duration::from_millis(200);
    let mut config = test_config();
    config.timeouts.ping = Some(ping);
    config.timeouts.pong = pong;
    let (server, seen) = start(config);
    let addr = server.addr();

    // A client that upgrades and then never reads or writes: pinged after `ping` of silence,
    // and closed `pong` after that without an answer. The server just closes the socket (no
    // Close frame: the peer is presumed dead), in order, as nothing it sent is unread.
    let from = now();
    let mut silent = server.raw().unwrap();
    silent.write(&upgrade_request("/ws", "")).unwrap();
    let silent = std::thread::spawn(move || silent.read_until_close().unwrap());

    // A client that answers every ping (tungstenite queues the pong and writes it on the next
    // read) is pinged again each time it has been silent for `ping`, and stays connected for
    // several ping + pong periods.
    let mut last = now();
    let mut ws = ws_connect(addr, "/ws");
    for i in 0..6 {
        match ws.read().unwrap() {
            Message::Ping(payload) => assert!(payload.is_empty()),
            other => panic!("expected ping {i}, got {other:?}"),
        }
        // The next ping comes `ping` after the server read our last frame, which was after
        // the previous ping arrived here.
        assert_at(&format!("ping {i}"), now(), last, ping);
        last = now();
    }
    ws.send(Message::text("still here")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text("still here"));

    let end = silent.join().unwrap();
    let head_end = end
        .bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no upgrade response")
        + 4;
    assert!(end.bytes.starts_with(b"HTTP/1.1 101 "), "{:?}", end.bytes);
    // Exactly one ping (FIN, opcode 9, unmasked, empty), and no Close frame.
    assert_eq!(end.bytes[head_end..], [0x89, 0x00]);
    assert_closed_at("the silent client", &end, HowClosed::Fin, from, ping + pong);
    // Only the silent one was closed, as timed out.
    assert_eq!(*seen.closes.lock().unwrap(), ["Timeout"]);
    ws.close(None).unwrap();
    assert_eq!(close_code(&mut ws), None);
    server.shutdown().unwrap();
}

#[test]
fn shutdown_closes_websockets_with_1001() {
    let (server, seen) = start(test_config());
    let addr = server.addr();
    let mut ws = ws_connect(addr, "/ws");
    ws.send(Message::text("before")).unwrap();
    assert_eq!(next_message(&mut ws), Message::text("before"));
    server.control().shutdown();
    assert_eq!(close_code(&mut ws), Some(1001));
    server.shutdown().unwrap();
    assert!(seen.closes.lock().unwrap().iter().any(|c| c == "Shutdown"));
}
