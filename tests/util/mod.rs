//! Helpers shared by the loopback tests: a test application, a server on 127.0.0.1:0, and a
//! raw HTTP client with timeouts. Every wait is bounded in time.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth::handshake::{HandshakeError, Upgrade};
use berth::http::Request;
use berth::server::{Closed, Config, Handler, Message, Responder, Sender, WebSocket};
use berth::testing::{Ending, HowClosed, TestServer};
use berth::ws::CloseCode;

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// How late past its deadline a timeout may be seen to act: the runtime's timer tick (100 ms),
/// plus the scheduling delays of a loaded machine. A timeout acting early is never allowed.
pub const LATE: Duration = Duration::from_millis(1000);

/// What the test application saw, for assertions.
#[derive(Debug, Default)]
pub struct Seen {
    pub closes: Mutex<Vec<String>>,
    pub senders: Mutex<Vec<Sender>>,
    pub max_buffered: AtomicUsize,
    pub opened: AtomicUsize,
}

/// The application the loopback tests run.
///
/// - `GET /hello`: 200 `hello`; `GET /stream`: a chunked body in three writes.
/// - `POST /echo`: 200 with the request body (collected per connection).
/// - `GET /late`: answered only when the body ends (after `on_body_end`).
/// - `/ws`: WebSocket echo; `/ws/chat`: subscribes to `room`, publishes what it receives;
///   `/ws/proto`: picks the subprotocol `b` if offered; `/ws/origin`: only Origin
///   `https://good.example`; `/ws/flood`: on open, sends until the write buffer is full, and
///   again on each drain; `/ws/sender`: registers a cross-thread `Sender`; `/ws/presence`:
///   subscribes to `presence`, and when it closes publishes `left: <id>` there.
/// - A text message `close:CODE` makes the server close with that code.
#[derive(Debug, Default)]
pub struct TestApp {
    pub seen: Arc<Seen>,
}

/// Per-connection state of [`TestApp`].
#[derive(Debug, Default)]
pub struct State {
    body: Vec<u8>,
    route: &'static str,
}

impl Handler for TestApp {
    type State = State;

    fn on_request(&self, state: &mut State, req: &Request<'_, '_>, res: &mut Responder<'_>) {
        state.body.clear();
        state.route = "";
        match (req.method, req.path()) {
            ("GET", "/hello") => {
                let _ = res.send(200, &[("Content-Type", b"text/plain")], b"hello");
            }
            ("GET", "/stream") => {
                let head = berth::http::ResponseHead {
                    status: 200,
                    headers: &[],
                    body: berth::http::ResponseBody::Chunked,
                    close: false,
                };
                res.start(&head).unwrap();
                for part in [&b"one "[..], b"two ", b"three"] {
                    res.write(part).unwrap();
                }
                res.end().unwrap();
            }
            ("GET", "/where") => {
                let _ = res.send(200, &[], res.local_addr().to_string().as_bytes());
            }
            ("POST", "/echo") => state.route = "echo",
            ("GET", "/late") => state.route = "late",
            (_, "/ws" | "/ws/chat" | "/ws/flood" | "/ws/sender" | "/ws/presence") => {
                res.websocket(req);
            }
            (_, "/ws/proto") => match Upgrade::parse(req) {
                Ok(up) => {
                    let chosen = up.protocols().find(|p| *p == "b");
                    let _ = res.upgrade(&up, chosen);
                }
                Err(e) => res.reject(e),
            },
            (_, "/ws/origin") => match Upgrade::parse(req) {
                Ok(up) if up.origin() == Some(&b"https://good.example"[..]) => {
                    let _ = res.upgrade(&up, None);
                }
                Ok(_) => res.reject(HandshakeError::OriginRejected),
                Err(e) => res.reject(e),
            },
            _ => {
                let _ = res.send(404, &[], b"not found");
            }
        }
        if req.path().starts_with("/ws") {
            state.route = match req.path() {
                "/ws/chat" => "chat",
                "/ws/flood" => "flood",
                "/ws/sender" => "sender",
                "/ws/presence" => "presence",
                _ => "ws",
            };
        }
    }

    fn on_body(&self, state: &mut State, data: &[u8], _: &mut Responder<'_>) {
        state.body.extend_from_slice(data);
    }

    fn on_body_end(&self, state: &mut State, res: &mut Responder<'_>) {
        match state.route {
            "echo" => {
                let _ = res.send(200, &[], &state.body);
            }
            "late" => {
                let _ = res.send(200, &[], b"late");
            }
            _ => {}
        }
    }

    fn on_open(&self, state: &mut State, ws: &mut WebSocket<'_>) {
        self.seen.opened.fetch_add(1, Ordering::SeqCst);
        match state.route {
            "chat" => ws.subscribe("room"),
            "presence" => ws.subscribe("presence"),
            "flood" => flood(ws, &self.seen),
            "sender" => self.seen.senders.lock().unwrap().push(ws.sender()),
            _ => {}
        }
    }

    fn on_message(&self, state: &mut State, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        if let Message::Text(text) = msg {
            if let Some(code) = text.strip_prefix("close:") {
                let code: u16 = code.parse().unwrap();
                ws.close(CloseCode::from(code), "asked to").unwrap();
                return;
            }
        }
        match state.route {
            "chat" => {
                ws.publish("room", msg);
            }
            _ => {
                let _ = ws.send(msg);
            }
        }
    }

    fn on_drain(&self, state: &mut State, ws: &mut WebSocket<'_>) {
        if state.route == "flood" {
            flood(ws, &self.seen);
        }
    }

    fn on_close(&self, state: &mut State, closed: Closed<'_>) {
        self.seen
            .closes
            .lock()
            .unwrap()
            .push(format!("{:?}", closed.reason()));
        if state.route == "presence" {
            let left = format!("left: {}", closed.id());
            closed.control().publish("presence", Message::Text(&left));
        }
    }
}

fn flood(ws: &mut WebSocket<'_>, seen: &Seen) {
    let chunk = [b'x'; 16 * 1024];
    while ws.send_binary(&chunk).is_ok() {
        seen.max_buffered.fetch_max(ws.buffered(), Ordering::SeqCst);
    }
    seen.max_buffered.fetch_max(ws.buffered(), Ordering::SeqCst);
}

/// A config for tests: two workers and short timeouts.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.workers = 2;
    // Lingering closes wait for the client's EOF; tests keep clients open past shutdown.
    config.timeouts.close = Duration::from_millis(500);
    config
}

/// Start [`TestApp`] on 127.0.0.1:0 with `config`, through berth's own testing kit.
pub fn start(config: Config) -> (TestServer, Arc<Seen>) {
    let app = TestApp::default();
    let seen = Arc::clone(&app.seen);
    (TestServer::with_config(config, app).unwrap(), seen)
}

/// A valid upgrade request for `path`, with extra header lines.
pub fn upgrade_request(path: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// Poll `cond` every few milliseconds until it holds or [`WAIT`] passes (then panic).
#[allow(clippy::disallowed_methods)] // Tests bound their waits by the clock.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The clock, for tests that check when something happened.
#[allow(clippy::disallowed_methods)] // Tests measure the runtime from outside.
pub fn now() -> Instant {
    Instant::now()
}

/// Assert that `end` is a close of kind `how` seen no earlier than `timeout` after `from` and
/// no later than [`LATE`] after that. `from` must be taken before whatever starts the
/// runtime's deadline (the connect, the request), so that the lower bound is exact.
#[track_caller]
pub fn assert_closed_at(
    what: &str,
    end: &Ending,
    how: HowClosed,
    from: Instant,
    timeout: Duration,
) {
    assert_eq!(
        end.how, how,
        "{what}: the connection ended by {:?}",
        end.how
    );
    assert_at(what, end.at, from, timeout);
}

/// Assert that `at` is no earlier than `timeout` after `from`, and at most [`LATE`] after that.
#[track_caller]
pub fn assert_at(what: &str, at: Instant, from: Instant, timeout: Duration) {
    let after = at.saturating_duration_since(from);
    assert!(
        after >= timeout && after <= timeout + LATE,
        "{what}: seen {after:?} after the start, outside [{timeout:?}, {:?}]",
        timeout + LATE
    );
}

#[path = "../../examples/support/stderr_log.rs"]
pub mod stderr_log;

#[cfg(feature = "tls")]
pub mod tls;
