//! Runtime tests that need crate-private settings, each against a real server on
//! 127.0.0.1:0. Every wait is bounded.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{Config, Handler, Responder, Server};
use crate::http::Request;

/// Any single read waits at most this long.
const WAIT: Duration = Duration::from_secs(6);

/// Answers every request with 200 `hi`.
struct Hello;

impl Handler for Hello {
    type State = ();

    fn on_request(&self, _: &mut (), _: &Request<'_, '_>, res: &mut Responder<'_>) {
        let _ = res.send(200, &[], b"hi");
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// One keep-alive `GET /`; panics unless the whole `200 hi` response arrives.
fn get(stream: &mut TcpStream) {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\r\n\r\nhi") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before a whole response: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"), "{got:?}");
}

/// Read until the server closes; returns when that was seen, or the read's error.
#[allow(clippy::disallowed_methods)] // The test times the server against the clock.
fn closed_at(stream: &mut TcpStream) -> io::Result<Instant> {
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf)?;
    let at = Instant::now();
    if n > 0 {
        return Err(io::Error::other(format!(
            "unexpected bytes: {:?}",
            &buf[..n]
        )));
    }
    Ok(at)
}

/// With a wheel of 8 ticks (0.8 s) and a 2 s keep-alive, the keep-alive deadline is past the
/// wheel's reach: its entry fires early, the session finds its deadline has not come and
/// re-arms. An idle connection must close at 2 s, not at the span and not never; one that
/// keeps making requests more than a span apart stays open past 2 s.
#[test]
#[allow(clippy::disallowed_methods)] // The test times the server against the clock.
fn a_keep_alive_longer_than_the_wheel_span_is_re_armed_until_it_passes() {
    let keep_alive = Duration::from_secs(2);
    let mut config = Config {
        workers: 1,
        timer_slots: 8,
        ..Config::default()
    };
    config.timeouts.keep_alive = keep_alive;
    config.timeouts.header = Duration::from_secs(30);
    let handle = Server::new(config)
        .listen("127.0.0.1:0")
        .unwrap()
        .spawn(Hello)
        .unwrap();
    let addr = handle.local_addrs()[0];
    // The window asserted: no earlier than the deadline (`since` is taken after the request
    // was sent), and not more than a few ticks late even on a loaded machine.
    let late = Duration::from_millis(2500);

    let idle = std::thread::spawn(move || {
        let mut stream = connect(addr);
        let sent = Instant::now();
        get(&mut stream);
        let closed = closed_at(&mut stream).map(|at| at - sent);
        let closed = closed.expect("the idle keep-alive connection was never closed");
        assert!(
            closed >= keep_alive,
            "the idle connection closed after {closed:?}, before its {keep_alive:?} keep-alive"
        );
        assert!(closed < keep_alive + late, "closed after {closed:?}");
    });

    // Requests 1 s apart: each is more than a span after the last, and the connection lives
    // past the keep-alive (3 s) because each one pushes the deadline.
    let mut busy = connect(addr);
    let gap = Duration::from_secs(1);
    let mut sent = Instant::now();
    for i in 0..4 {
        if i > 0 {
            std::thread::sleep(gap.saturating_sub(sent.elapsed()));
        }
        sent = Instant::now();
        get(&mut busy);
    }
    let closed = closed_at(&mut busy)
        .map(|at| at - sent)
        .expect("the busy connection was never closed after its last request");
    assert!(
        closed >= keep_alive,
        "closed {closed:?} after the last request"
    );
    assert!(closed < keep_alive + late, "closed after {closed:?}");

    idle.join().unwrap();
    handle.shutdown();
    handle.join().unwrap();
}
