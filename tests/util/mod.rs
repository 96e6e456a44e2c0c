//! Helpers shared by the loopback tests: a test application, a server on 127.0.0.1:0, and a
//! raw HTTP client with timeouts. Every wait is bounded in time.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth::handshake::{HandshakeError, Upgrade};
use berth::http::Request;
use berth::server::{
    CloseReason, Config, ConnId, Handler, Message, Responder, Sender, ServerHandle, WebSocket,
};
use berth::ws::CloseCode;

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

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
///   again on each drain; `/ws/sender`: registers a cross-thread `Sender`.
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
            ("POST", "/echo") => state.route = "echo",
            ("GET", "/late") => state.route = "late",
            (_, "/ws") | (_, "/ws/chat") | (_, "/ws/flood") | (_, "/ws/sender") => {
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

    fn on_close(&self, _: &mut State, _: ConnId, reason: CloseReason<'_>) {
        self.seen.closes.lock().unwrap().push(format!("{reason:?}"));
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

/// Start [`TestApp`] on 127.0.0.1:0 with `config`.
pub fn start(config: Config) -> (ServerHandle, SocketAddr, Arc<Seen>) {
    let app = TestApp::default();
    let seen = Arc::clone(&app.seen);
    let server = berth::server::Server::new(config)
        .listen("127.0.0.1:0")
        .unwrap();
    let handle = server.spawn(app).unwrap();
    let addr = handle.local_addrs()[0];
    (handle, addr, seen)
}

/// A connected socket with read and write timeouts of [`WAIT`].
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Read until EOF (or the timeout, which fails the test).
pub fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return all,
            Err(e) => panic!("read failed after {} bytes: {e}", all.len()),
        }
    }
}

/// One parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Read exactly one response (Content-Length or chunked body) from `stream`, keeping any
/// bytes that follow in `pending`.
pub fn read_response(stream: &mut TcpStream, pending: &mut Vec<u8>) -> Response {
    let mut buf = [0u8; 8192];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head_len) = parsed.parse(pending).unwrap() {
            let status = parsed.code.unwrap();
            let headers: Vec<(String, String)> = parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let mut response = Response {
                status,
                headers,
                body: Vec::new(),
            };
            let chunked = response
                .header("transfer-encoding")
                .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
            pending.drain(..head_len);
            if chunked {
                response.body = read_chunked(stream, pending);
            } else {
                let len: usize = response
                    .header("content-length")
                    .map_or(0, |v| v.parse().unwrap());
                while pending.len() < len {
                    let n = stream.read(&mut buf).unwrap();
                    assert!(n > 0, "EOF inside a response body");
                    pending.extend_from_slice(&buf[..n]);
                }
                response.body = pending.drain(..len).collect();
            }
            return response;
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "EOF before a response head; got {:?}",
            String::from_utf8_lossy(pending)
        );
        pending.extend_from_slice(&buf[..n]);
    }
}

fn read_chunked(stream: &mut TcpStream, pending: &mut Vec<u8>) -> Vec<u8> {
    let mut body = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(line_end) = pending.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(
                std::str::from_utf8(&pending[..line_end]).unwrap().trim(),
                16,
            )
            .unwrap();
            let need = line_end + 2 + size + 2;
            if pending.len() >= need {
                body.extend_from_slice(&pending[line_end + 2..line_end + 2 + size]);
                pending.drain(..need);
                if size == 0 {
                    return body;
                }
                continue;
            }
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "EOF inside a chunked body");
        pending.extend_from_slice(&buf[..n]);
    }
}

/// Send `request` on a new connection and read one response.
pub fn request(addr: SocketAddr, request: &[u8]) -> Response {
    let mut stream = connect(addr);
    stream.write_all(request).unwrap();
    read_response(&mut stream, &mut Vec::new())
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

#[path = "../../examples/support/stderr_log.rs"]
pub mod stderr_log;
