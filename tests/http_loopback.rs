//! HTTP/1.1 over real loopback sockets: keep-alive, pipelining, bodies, errors, timeouts and
//! graceful shutdown, with a raw `TcpStream` as the client.

mod util;

use std::io::{Read, Write};
use std::time::Duration;

use util::{connect, read_response, read_to_end, request, start, test_config};

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let (handle, addr, _) = start(test_config());
    let mut stream = connect(addr);
    let mut pending = Vec::new();
    for _ in 0..3 {
        stream
            .write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let res = read_response(&mut stream, &mut pending);
        assert_eq!(res.status, 200);
        assert_eq!(res.body, b"hello");
        assert_eq!(res.header("connection"), None);
        assert!(res.header("date").is_some());
    }
    handle.shutdown();
    handle.join().unwrap();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (handle, addr, _) = start(test_config());
    let mut stream = connect(addr);
    let batch = b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n\
        POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nfirst\
        GET /stream HTTP/1.1\r\nHost: t\r\n\r\n\
        POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nsec\r\n3\r\nond\r\n0\r\nTrailer: x\r\n\r\n\
        GET /missing HTTP/1.1\r\nHost: t\r\n\r\n\
        GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    stream.write_all(batch).unwrap();
    let mut pending = Vec::new();
    let expected: [(u16, &[u8]); 6] = [
        (200, b"hello"),
        (200, b"first"),
        (200, b"one two three"),
        (200, b"second"),
        (404, b"not found"),
        (200, b"hello"),
    ];
    for (status, body) in expected {
        let res = read_response(&mut stream, &mut pending);
        assert_eq!((res.status, res.body.as_slice()), (status, body));
    }
    // The last request asked to close: the server does, after its response.
    assert!(read_to_end(&mut stream).is_empty());
    assert!(pending.is_empty());
    handle.shutdown();
    handle.join().unwrap();
}

#[test]
fn a_request_split_into_single_bytes_is_served() {
    let (handle, addr, _) = start(test_config());
    let mut stream = connect(addr);
    for b in b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\ndrip" {
        stream.write_all(&[*b]).unwrap();
    }
    let res = read_response(&mut stream, &mut Vec::new());
    assert_eq!((res.status, res.body.as_slice()), (200, &b"drip"[..]));
    handle.shutdown();
    handle.join().unwrap();
}

#[test]
fn bad_requests_get_their_status_and_a_close() {
    let (handle, addr, _) = start(test_config());
    let cases: [(&[u8], u16); 6] = [
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
    ];
    for (input, status) in cases {
        let mut stream = connect(addr);
        stream.write_all(input).unwrap();
        let mut pending = Vec::new();
        let res = read_response(&mut stream, &mut pending);
        assert_eq!(
            res.status,
            status,
            "for {:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(res.header("connection"), Some("close"));
        assert!(read_to_end(&mut stream).is_empty());
    }
    // A head over the limit is 431, a long request line 414.
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    assert_eq!(request(addr, long_target.as_bytes()).status, 414);
    let many = format!(
        "GET / HTTP/1.1\r\nHost: t\r\n{}\r\n",
        "X-A: b\r\n".repeat(101)
    );
    assert_eq!(request(addr, many.as_bytes()).status, 431);
    // The server still serves others.
    assert_eq!(
        request(addr, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );
    handle.shutdown();
    handle.join().unwrap();
}

#[test]
fn expect_continue_gets_100_before_the_body_is_sent() {
    let (handle, addr, _) = start(test_config());
    let mut stream = connect(addr);
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let mut pending = Vec::new();
    let interim = read_response(&mut stream, &mut pending);
    assert_eq!(interim.status, 100);
    stream.write_all(b"ok").unwrap();
    let res = read_response(&mut stream, &mut pending);
    assert_eq!((res.status, res.body.as_slice()), (200, &b"ok"[..]));
    handle.shutdown();
    handle.join().unwrap();
}

#[test]
fn slow_drip_headers_time_out_with_408() {
    let mut config = test_config();
    config.timeouts.header = Duration::from_millis(300);
    let (handle, addr, _) = start(config);
    let mut stream = connect(addr);
    let head = b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ";
    stream.write_all(head).unwrap();
    // Keep dripping: each byte is activity, but the head's deadline does not move.
    let mut dripped = 0;
    let mut response = Vec::new();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 1024];
    for _ in 0..200 {
        if stream.write_all(b"a").is_err() {
            break;
        }
        dripped += 1;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
        if response.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&response);
    assert!(
        text.starts_with("HTTP/1.1 408 "),
        "got {text:?} after {dripped} drips"
    );
    assert!(text.contains("Connection: close"));
    assert!(dripped < 200, "the drip was never cut off");
    handle.shutdown();
    handle.join().unwrap();
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let mut config = test_config();
    config.timeouts.keep_alive = Duration::from_millis(200);
    let (handle, addr, _) = start(config);
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut pending = Vec::new();
    assert_eq!(read_response(&mut stream, &mut pending).status, 200);
    // Nothing more is sent: the server closes the connection, silently.
    assert!(read_to_end(&mut stream).is_empty());
    handle.shutdown();
    handle.join().unwrap();
}

#[test]
fn shutdown_lets_an_in_flight_request_finish_and_closes_idle_ones() {
    let (handle, addr, _) = start(test_config());
    let mut idle = connect(addr);
    idle.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut idle_pending = Vec::new();
    assert_eq!(read_response(&mut idle, &mut idle_pending).status, 200);

    let mut busy = connect(addr);
    busy.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf-")
        .unwrap();
    // Let the server take the head before the drain starts.
    std::thread::sleep(Duration::from_millis(100));
    let control = handle.control();
    control.shutdown();
    // The idle keep-alive connection is closed.
    assert!(read_to_end(&mut idle).is_empty());
    // The in-flight request completes, with Connection: close.
    busy.write_all(b"done!").unwrap();
    let mut pending = Vec::new();
    let res = read_response(&mut busy, &mut pending);
    assert_eq!((res.status, res.body.as_slice()), (200, &b"half-done!"[..]));
    assert_eq!(res.header("connection"), Some("close"));
    assert!(read_to_end(&mut busy).is_empty());
    // New connections are refused once the listeners are closed.
    handle.join().unwrap();
    assert!(std::net::TcpStream::connect(addr).is_err());
}
