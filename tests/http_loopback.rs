//! HTTP/1.1 over real loopback sockets: keep-alive, pipelining, bodies, errors, timeouts and
//! graceful shutdown, driven through berth's testing kit (`HttpClient`, `RawClient`).

mod util;

use std::time::Duration;

use util::{start, test_config};

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let (server, _) = start(test_config());
    let mut http = server.http().unwrap();
    for _ in 0..3 {
        let res = http.get("/hello").unwrap();
        assert_eq!((res.status, res.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(res.header("connection"), None);
        assert_eq!(res.header("date").map(str::len), Some(29));
    }
    server.shutdown().unwrap();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (server, _) = start(test_config());
    let mut http = server.http().unwrap();
    http.send_raw(
        b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n\
        POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nfirst\
        GET /stream HTTP/1.1\r\nHost: t\r\n\r\n\
        POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nsec\r\n3\r\nond\r\n0\r\nTrailer: x\r\n\r\n\
        GET /missing HTTP/1.1\r\nHost: t\r\n\r\n\
        GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let expected: [(u16, &[u8]); 6] = [
        (200, b"hello"),
        (200, b"first"),
        (200, b"one two three"),
        (200, b"second"),
        (404, b"not found"),
        (200, b"hello"),
    ];
    for (status, body) in expected {
        let res = http.read_response().unwrap();
        assert_eq!((res.status, res.body.as_slice()), (status, body));
    }
    // The last request asked to close: the server does, after its response.
    assert!(http.raw().read_to_end().unwrap().is_empty());
    server.shutdown().unwrap();
}

#[test]
fn a_request_split_into_single_bytes_is_served() {
    let (server, _) = start(test_config());
    let mut http = server.http().unwrap();
    for b in b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\ndrip" {
        http.send_raw(&[*b]).unwrap();
    }
    let res = http.read_response().unwrap();
    assert_eq!((res.status, res.body.as_slice()), (200, &b"drip"[..]));
    server.shutdown().unwrap();
}

#[test]
fn bad_requests_get_their_status_and_a_close() {
    let (server, _) = start(test_config());
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    let many = format!(
        "GET / HTTP/1.1\r\nHost: t\r\n{}\r\n",
        "X-A: b\r\n".repeat(101)
    );
    let cases: [(&[u8], u16); 8] = [
        (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n", 400),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999\r\n\r\n",
            413,
        ),
        (b"GET / HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n", 400),
        (long_target.as_bytes(), 414),
        (many.as_bytes(), 431),
    ];
    for (input, status) in cases {
        let mut http = server.http().unwrap();
        http.send_raw(input).unwrap();
        let res = http.read_response().unwrap();
        let shown = String::from_utf8_lossy(&input[..input.len().min(60)]).into_owned();
        assert_eq!(res.status, status, "for {shown:?}");
        assert_eq!(res.header("connection"), Some("close"), "for {shown:?}");
        assert!(
            http.raw().read_to_end().unwrap().is_empty(),
            "for {shown:?}"
        );
    }
    // The server still serves others.
    assert_eq!(server.http().unwrap().get("/hello").unwrap().status, 200);
    server.shutdown().unwrap();
}

#[test]
fn expect_continue_gets_100_before_the_body_is_sent() {
    let (server, _) = start(test_config());
    let mut http = server.http().unwrap();
    http.send_raw(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    assert_eq!(http.read_response().unwrap().status, 100);
    http.send_raw(b"ok").unwrap();
    let res = http.read_response().unwrap();
    assert_eq!((res.status, res.body.as_slice()), (200, &b"ok"[..]));
    server.shutdown().unwrap();
}

#[test]
fn slow_drip_headers_time_out_with_408() {
    let mut config = test_config();
    config.timeouts.header = Duration::from_millis(300);
    let (server, _) = start(config);
    let mut raw = server.raw().unwrap();
    raw.write(b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .unwrap();
    raw.set_timeout(Duration::from_millis(50)).unwrap();
    // Keep dripping: each byte is activity, but the head's deadline does not move.
    let mut dripped = 0;
    let mut response = Vec::new();
    while dripped < 200 && !response.windows(4).any(|w| w == b"\r\n\r\n") {
        if raw.write(b"a").is_err() {
            break;
        }
        dripped += 1;
        match raw.read_some() {
            Ok(bytes) if bytes.is_empty() => break,
            Ok(bytes) => response.extend_from_slice(&bytes),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&response);
    assert!(
        text.starts_with("HTTP/1.1 408 "),
        "got {text:?} after {dripped} drips"
    );
    assert!(text.contains("Connection: close"));
    assert!(dripped < 200, "the drip was never cut off");
    server.shutdown().unwrap();
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let mut config = test_config();
    config.timeouts.keep_alive = Duration::from_millis(200);
    let (server, _) = start(config);
    let mut http = server.http().unwrap();
    assert_eq!(http.get("/hello").unwrap().status, 200);
    // Nothing more is sent: the server closes the connection, silently.
    assert!(http.raw().read_to_end().unwrap().is_empty());
    server.shutdown().unwrap();
}

#[test]
fn shutdown_lets_an_in_flight_request_finish_and_closes_idle_ones() {
    let (server, _) = start(test_config());
    let addr = server.addr();
    let mut idle = server.http().unwrap();
    assert_eq!(idle.get("/hello").unwrap().status, 200);

    let mut busy = server.http().unwrap();
    busy.send_raw(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf-")
        .unwrap();
    // Let the server take the head before the drain starts.
    std::thread::sleep(Duration::from_millis(100));
    server.control().shutdown();
    // The idle keep-alive connection is closed.
    assert!(idle.raw().read_to_end().unwrap().is_empty());
    // The in-flight request completes, with Connection: close.
    busy.send_raw(b"done!").unwrap();
    let res = busy.read_response().unwrap();
    assert_eq!((res.status, res.body.as_slice()), (200, &b"half-done!"[..]));
    assert_eq!(res.header("connection"), Some("close"));
    assert!(busy.raw().read_to_end().unwrap().is_empty());
    server.shutdown().unwrap();
    // The listeners are closed.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn a_port_in_use_is_reported_unless_sharing_is_asked_for() {
    let (server, _) = start(test_config());
    let addr = server.addr();
    let err = berth::server::Server::new(test_config())
        .listen(addr)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    // With share_port, a second server takes the same port (as a zero-downtime handover
    // does), and the connection's local address tells which port a request came in on.
    let mut config = test_config();
    config.share_port = true;
    let second = berth::server::Server::new(config)
        .listen(addr)
        .unwrap()
        .spawn(util::TestApp::default())
        .unwrap();
    assert_eq!(second.local_addrs(), [addr]);
    let res = server.http().unwrap().get("/where").unwrap();
    assert_eq!(res.body, addr.to_string().as_bytes());
    second.shutdown();
    second.join().unwrap();
    server.shutdown().unwrap();
}
