//! HTTP/1.1 over real loopback sockets: keep-alive, pipelining, bodies, errors, timeouts and
//! graceful shutdown, driven through berth's testing kit (`HttpClient`, `RawClient`).

mod util;

use std::io::Read;
use std::time::Duration;

use berth::http::Request;
use berth::server::{Handler, Responder};
use berth::testing::{HowClosed, RawClient};
use util::{assert_at, assert_closed_at, now, start, test_config, wait_until};

/// What [`masked`] puts in place of each `Date` value: 29 bytes, as long as an IMF-fixdate.
const DATE: &str = "Www, DD Mmm YYYY HH:MM:SS GMT";

/// Is `v` an IMF-fixdate (RFC 9110 §5.6.7), such as `Sun, 06 Nov 1994 08:49:37 GMT`?
fn is_imf_fixdate(v: &[u8]) -> bool {
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let digits = |r: std::ops::Range<usize>| v[r].iter().all(u8::is_ascii_digit);
    v.len() == 29
        && DAYS.contains(&&v[0..3])
        && &v[3..5] == b", "
        && digits(5..7)
        && v[7] == b' '
        && MONTHS.contains(&&v[8..11])
        && v[11] == b' '
        && digits(12..16)
        && v[16] == b' '
        && digits(17..19)
        && v[19] == b':'
        && digits(20..22)
        && v[22] == b':'
        && digits(23..25)
        && &v[25..] == b" GMT"
}

/// `bytes` as text, with each `Date` field's value checked and replaced by [`DATE`], so that
/// whole responses can be compared with literal bytes.
fn masked(bytes: &[u8]) -> String {
    let mut out = bytes.to_vec();
    let mut from = 0;
    while let Some(i) = out[from..].windows(8).position(|w| w == b"\r\nDate: ") {
        let at = from + i + 8;
        let value = out.get(at..at + 29).unwrap_or(&out[at..]);
        assert!(
            is_imf_fixdate(value),
            "a Date that is not an IMF-fixdate: {:?}",
            String::from_utf8_lossy(value)
        );
        out[at..at + 29].copy_from_slice(DATE.as_bytes());
        from = at + 29;
    }
    String::from_utf8(out).expect("a response that is not UTF-8")
}

/// Read exactly as many bytes as `expected` has (its `Date`s counted at 29 bytes), and
/// compare them with it.
#[track_caller]
fn expect_bytes(raw: &mut RawClient, expected: &str) {
    let mut got = vec![0u8; expected.len()];
    raw.stream().read_exact(&mut got).unwrap();
    assert_eq!(masked(&got), expected);
}

/// The response [`util::TestApp`] gives `GET /hello`; `close` adds `Connection: close`.
fn hello(close: bool) -> String {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!(
        "HTTP/1.1 200 OK\r\nDate: {DATE}\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\
         {connection}\r\nhello"
    )
}

/// A `Content-Length` response with no other fields.
fn plain(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nDate: {DATE}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The response to a request the server refuses: no body, and the connection closes.
fn refusal(status: &str) -> String {
    format!("HTTP/1.1 {status}\r\nDate: {DATE}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

#[test]
fn masked_checks_and_hides_the_date() {
    let response = b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
    assert_eq!(
        masked(response),
        format!("HTTP/1.1 200 OK\r\nDate: {DATE}\r\n\r\n")
    );
    let bad = b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 UTC\r\n\r\n";
    assert!(std::panic::catch_unwind(|| masked(bad)).is_err());
}

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
    // The same exchange, byte for byte.
    let mut raw = server.raw().unwrap();
    for _ in 0..2 {
        raw.write(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        expect_bytes(&mut raw, &hello(false));
    }
    server.shutdown().unwrap();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (server, _) = start(test_config());
    let pipeline = b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n\
        POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nfirst\
        GET /stream HTTP/1.1\r\nHost: t\r\n\r\n\
        POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nsec\r\n3\r\nond\r\n0\r\nTrailer: x\r\n\r\n\
        GET /missing HTTP/1.1\r\nHost: t\r\n\r\n\
        GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let mut http = server.http().unwrap();
    http.send_raw(pipeline).unwrap();
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
    // The last request asked to close: the server does, in order, after its response.
    let end = http.read_until_close().unwrap();
    assert_eq!((end.bytes.as_slice(), end.how), (&b""[..], HowClosed::Fin));

    // The same, byte for byte: each response's framing, then the FIN.
    let mut raw = server.raw().unwrap();
    raw.write(pipeline).unwrap();
    let end = raw.read_until_close().unwrap();
    let expected = [
        hello(false),
        plain("200 OK", "first"),
        format!(
            "HTTP/1.1 200 OK\r\nDate: {DATE}\r\nTransfer-Encoding: chunked\r\n\r\n\
             4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n"
        ),
        plain("200 OK", "second"),
        plain("404 Not Found", "not found"),
        hello(true),
    ]
    .concat();
    assert_eq!(masked(&end.bytes), expected);
    assert_eq!(end.how, HowClosed::Fin);
    server.shutdown().unwrap();
}

#[test]
fn a_request_split_into_single_bytes_is_served() {
    let (server, _) = start(test_config());
    let mut raw = server.raw().unwrap();
    for b in b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\ndrip" {
        raw.write(&[*b]).unwrap();
    }
    expect_bytes(&mut raw, &plain("200 OK", "drip"));
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
    let cases: [(&[u8], &str); 8] = [
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n",
            "400 Bad Request",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "400 Bad Request",
        ),
        (b"GET / HTTP/1.1\r\n\r\n", "400 Bad Request"),
        (
            b"GET / HTTP/2.0\r\nHost: t\r\n\r\n",
            "505 HTTP Version Not Supported",
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999\r\n\r\n",
            "413 Content Too Large",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n",
            "400 Bad Request",
        ),
        (long_target.as_bytes(), "414 URI Too Long"),
        (many.as_bytes(), "431 Request Header Fields Too Large"),
    ];
    for (input, status) in cases {
        let shown = String::from_utf8_lossy(&input[..input.len().min(60)]).into_owned();
        let mut raw = server.raw().unwrap();
        raw.write(input).unwrap();
        // The refusal, then an orderly close: the unread rest of the request (if any) is
        // drained, not answered with a reset that could destroy the refusal unread.
        let end = raw.read_until_close().unwrap();
        assert_eq!(masked(&end.bytes), refusal(status), "for {shown:?}");
        assert_eq!(end.how, HowClosed::Fin, "for {shown:?}");
    }
    // The server still serves others.
    assert_eq!(server.http().unwrap().get("/hello").unwrap().status, 200);
    server.shutdown().unwrap();
}

#[test]
fn a_refusal_with_bytes_still_arriving_behind_it_ends_in_order() {
    let mut config = test_config();
    // The linger waits for the client's FIN however slowly the client gets there.
    config.timeouts.close = util::WAIT;
    let (server, _) = start(config);
    let mut raw = server.raw().unwrap();
    // A head the server refuses, and then a lot more it will not parse: it is still arriving
    // (or unread) when the server has answered, so a server that closed at once would reset
    // the connection. Lingering, it reads and drops the rest until the client's FIN.
    let mut writer = raw.stream().try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        let mut bytes = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n".to_vec();
        bytes.resize(bytes.len() + (512 << 10), b'j');
        std::io::Write::write_all(&mut writer, &bytes).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let end = raw.read_until_close().unwrap();
    assert_eq!(masked(&end.bytes), refusal("400 Bad Request"));
    assert_eq!(end.how, HowClosed::Fin);
    sending.join().unwrap();
    server.shutdown().unwrap();
}

#[test]
fn expect_continue_gets_100_before_the_body_is_sent() {
    let (server, _) = start(test_config());
    let mut raw = server.raw().unwrap();
    raw.write(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    expect_bytes(&mut raw, "HTTP/1.1 100 Continue\r\n\r\n");
    raw.write(b"ok").unwrap();
    expect_bytes(&mut raw, &plain("200 OK", "ok"));
    server.shutdown().unwrap();
}

#[test]
fn a_response_can_wait_for_the_end_of_the_body() {
    let (server, _) = start(test_config());
    let control = server.control();
    // Without a body, the body ends with the head.
    let mut raw = server.raw().unwrap();
    raw.write(b"GET /late HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    expect_bytes(&mut raw, &plain("200 OK", "late"));
    // With one, nothing is sent until its last byte: the server has read the head and half
    // the body (it counted them) and written nothing for them.
    let head = b"GET /late HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nha";
    // The counters are published at the end of a turn of the worker's loop, which may come
    // after the response left: wait for the first exchange to be counted.
    wait_until("the first request to be counted", || {
        control.stats().requests == 1
    });
    let before = control.stats();
    raw.write(head).unwrap();
    wait_until("the head and half the body to be read", || {
        control.stats().bytes_in == before.bytes_in + head.len() as u64
    });
    assert_eq!(control.stats().bytes_out, before.bytes_out);
    raw.write(b"lf").unwrap();
    expect_bytes(&mut raw, &plain("200 OK", "late"));
    server.shutdown().unwrap();
}

#[test]
fn slow_drip_headers_time_out_with_408() {
    let header = Duration::from_millis(300);
    let mut config = test_config();
    config.timeouts.header = header;
    let (server, _) = start(config);
    // The head's deadline runs from the accept, which follows the connect.
    let from = now();
    let mut raw = server.raw().unwrap();
    raw.write(b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .unwrap();
    raw.set_timeout(Duration::from_millis(50)).unwrap();
    // Keep dripping: each byte is activity, but the head's deadline does not move.
    let mut dripped = 0;
    let mut response = Vec::new();
    let mut answered_at = None;
    while dripped < 200 && answered_at.is_none() {
        raw.write(b"a").unwrap();
        dripped += 1;
        match raw.read_some() {
            Ok(bytes) => {
                assert!(!bytes.is_empty(), "closed without a response");
                answered_at = Some(now());
                response = bytes;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("after {dripped} drips: {e}"),
        }
    }
    let answered_at = answered_at.expect("the drip was never cut off");
    assert_at("the 408", answered_at, from, header);
    // The 408, then an orderly close (the drips that crossed it are drained, not reset).
    raw.set_timeout(util::WAIT).unwrap();
    let end = raw.read_until_close().unwrap();
    response.extend_from_slice(&end.bytes);
    assert_eq!(masked(&response), refusal("408 Request Timeout"));
    assert_eq!(end.how, HowClosed::Fin);
    assert_at("the close after the 408", end.at, from, header);
    server.shutdown().unwrap();
}

#[test]
fn a_connection_that_sends_nothing_gets_408_at_the_header_timeout() {
    let header = Duration::from_millis(300);
    let mut config = test_config();
    config.timeouts.header = header;
    let (server, _) = start(config);
    let from = now();
    let mut raw = server.raw().unwrap();
    let end = raw.read_until_close().unwrap();
    assert_eq!(masked(&end.bytes), refusal("408 Request Timeout"));
    assert_closed_at("the silent connection", &end, HowClosed::Fin, from, header);
    server.shutdown().unwrap();
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let keep_alive = Duration::from_millis(300);
    let mut config = test_config();
    config.timeouts.keep_alive = keep_alive;
    let (server, _) = start(config);
    let mut http = server.http().unwrap();
    let from = now();
    assert_eq!(http.get("/hello").unwrap().status, 200);
    // Nothing more is sent: the server closes the connection, silently and in order, once
    // the keep-alive timeout has passed since the response.
    let end = http.read_until_close().unwrap();
    assert!(end.bytes.is_empty(), "{:?}", masked(&end.bytes));
    assert_closed_at(
        "the idle connection",
        &end,
        HowClosed::Fin,
        from,
        keep_alive,
    );
    server.shutdown().unwrap();
}

#[test]
fn shutdown_lets_an_in_flight_request_finish_and_closes_idle_ones() {
    let (server, _) = start(test_config());
    let addr = server.addr();
    let control = server.control();
    let mut idle = server.http().unwrap();
    assert_eq!(idle.get("/hello").unwrap().status, 200);

    let mut busy = server.http().unwrap();
    busy.send_raw(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf-")
        .unwrap();
    // The drain starts once the server has taken the head (it counts it as a request).
    wait_until("the in-flight head to be read", || {
        control.stats().requests == 2
    });
    let from = now();
    control.shutdown();
    // The idle keep-alive connection is closed at once, in order.
    let end = idle.read_until_close().unwrap();
    assert!(end.bytes.is_empty(), "{:?}", masked(&end.bytes));
    assert_closed_at(
        "the idle connection",
        &end,
        HowClosed::Fin,
        from,
        Duration::ZERO,
    );
    // The in-flight request completes, with Connection: close.
    busy.send_raw(b"done!").unwrap();
    let res = busy.read_response().unwrap();
    assert_eq!((res.status, res.body.as_slice()), (200, &b"half-done!"[..]));
    assert_eq!(res.header("connection"), Some("close"));
    let end = busy.read_until_close().unwrap();
    assert_eq!((end.bytes.as_slice(), end.how), (&b""[..], HowClosed::Fin));
    server.shutdown().unwrap();
    // The listeners are closed.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

/// A handler that answers every request with its name and the address it was reached on.
struct Named(&'static str);

impl Handler for Named {
    type State = ();

    fn on_request(&self, _: &mut (), _: &Request<'_, '_>, res: &mut Responder<'_>) {
        let body = format!("{} {}", self.0, res.local_addr());
        let _ = res.send(200, &[], body.as_bytes());
    }
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
    // does). The first answers `/where` with the address a request came in on; the second,
    // another handler, with its name too.
    let mut config = test_config();
    config.share_port = true;
    let second = berth::server::Server::new(config)
        .listen(addr)
        .unwrap()
        .spawn(Named("second"))
        .unwrap();
    assert_eq!(second.local_addrs(), [addr]);
    let first_body = addr.to_string().into_bytes();
    let second_body = format!("second {addr}").into_bytes();
    // The kernel spreads new connections over both servers' listeners: each serves some.
    let (mut firsts, mut seconds) = (0, 0);
    for _ in 0..200 {
        let body = server.http().unwrap().get("/where").unwrap().body;
        if body == first_body {
            firsts += 1;
        } else if body == second_body {
            seconds += 1;
        } else {
            panic!("unexpected {:?}", String::from_utf8_lossy(&body));
        }
        if firsts > 0 && seconds > 0 {
            break;
        }
    }
    assert!(
        firsts > 0 && seconds > 0,
        "{firsts} to the first, {seconds} to the second"
    );
    // Once the second has shut down, the first serves every new connection.
    second.shutdown();
    second.join().unwrap();
    for _ in 0..20 {
        let body = server.http().unwrap().get("/where").unwrap().body;
        assert_eq!(body, first_body);
    }
    server.shutdown().unwrap();
}
