//! WebSocket promises of the runtime, over real loopback sockets, each asserted where it can
//! be broken: a panicking callback closes its own connection only; a peer that never answers
//! our Close is dropped at `Timeouts::close`, counted once the Close has reached the socket;
//! a producer paused by a stalled reader resumes on `on_drain`, and every message arrives in
//! order, byte-exact.
//!
//! Raw sockets judge what goes on the wire (no Close, FIN or reset); tungstenite is the
//! well-behaved peer. Every wait is bounded.

mod util;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth::http::Request;
use berth::server::{Closed, Config, Control, Handler, Message, Responder, SendError, WebSocket};
use berth::testing::{HttpClient, TestServer};
use berth::ws::CloseCode;
use tungstenite::protocol::frame::coding::CloseCode as TCode;
use tungstenite::protocol::CloseFrame;

use util::{upgrade_request, wait_until, WAIT};

/// The longest sequence message.
const SEQ_MAX_LEN: usize = 512 + 4096;
/// What `/bulk` queues: more than the kernel's socket buffers hold.
const BULK: usize = 8 << 20;

/// What the application saw.
#[derive(Debug, Default)]
struct Seen {
    /// `on_close` calls: the route and the reason.
    closes: Mutex<Vec<(&'static str, String)>>,
    /// `on_drain` calls.
    drains: AtomicUsize,
    /// Sends that failed with `SendError::Full`.
    fulls: AtomicUsize,
    /// `ws.buffered()` when the last send failed with `Full`.
    buffered_at_full: AtomicUsize,
    /// Sequence messages queued so far.
    sent: AtomicU64,
}

impl Seen {
    fn closes(&self) -> Vec<(&'static str, String)> {
        self.closes.lock().unwrap().clone()
    }
}

/// The test application. Routes:
///
/// - `GET /hello`: 200 `hello`.
/// - `/echo`: WebSocket echo.
/// - `/panic/open`, `/panic/message`: that callback panics.
/// - `/panic/drain`: sends the sequence until the buffer is full; `on_drain` panics.
/// - `/panic/close`: echo; `on_close` panics (after recording the call).
/// - `/close`: the text `close` makes the server close with 4000 `bye`.
/// - `/seq`: sends the sequence ([`seq_message`]) until the buffer is full, and more on each
///   `on_drain`, until the connection closes.
/// - `/bulk`: sends [`BULK`] bytes of the sequence at once, on open.
/// - `/bulk/close`: as `/bulk`, then closes with 4000 `bye`.
#[derive(Debug, Default)]
struct App {
    seen: Arc<Seen>,
}

#[derive(Debug, Default)]
struct State {
    route: &'static str,
    next: u64,
}

impl Handler for App {
    type State = State;

    fn on_request(&self, state: &mut State, req: &Request<'_, '_>, res: &mut Responder<'_>) {
        state.route = match req.path() {
            "/echo" => "echo",
            "/panic/open" => "panic/open",
            "/panic/message" => "panic/message",
            "/panic/drain" => "panic/drain",
            "/panic/close" => "panic/close",
            "/close" => "close",
            "/seq" => "seq",
            "/bulk" => "bulk",
            "/bulk/close" => "bulk/close",
            _ => {
                let _ = res.send(200, &[], b"hello");
                return;
            }
        };
        res.websocket(req);
    }

    fn on_open(&self, state: &mut State, ws: &mut WebSocket<'_>) {
        match state.route {
            "panic/open" => panic!("on_open panics (on purpose)"),
            "seq" | "panic/drain" => pump(state, ws, &self.seen),
            "bulk" | "bulk/close" => {
                let mut bytes = 0;
                while bytes < BULK {
                    let msg = seq_message(state.next);
                    ws.send_binary(&msg).unwrap();
                    bytes += msg.len();
                    state.next += 1;
                }
                self.seen.sent.store(state.next, Ordering::SeqCst);
                if state.route == "bulk/close" {
                    ws.close(CloseCode::from(4000), "bye").unwrap();
                }
            }
            _ => {}
        }
    }

    fn on_message(&self, state: &mut State, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        match state.route {
            "panic/message" => panic!("on_message panics (on purpose)"),
            "close" => {
                if msg == Message::Text("close") {
                    ws.close(CloseCode::from(4000), "bye").unwrap();
                }
            }
            _ => {
                let _ = ws.send(msg);
            }
        }
    }

    fn on_drain(&self, state: &mut State, ws: &mut WebSocket<'_>) {
        self.seen.drains.fetch_add(1, Ordering::SeqCst);
        match state.route {
            "panic/drain" => panic!("on_drain panics (on purpose)"),
            "seq" => pump(state, ws, &self.seen),
            _ => {}
        }
    }

    fn on_close(&self, state: &mut State, closed: Closed<'_>) {
        self.seen
            .closes
            .lock()
            .unwrap()
            .push((state.route, format!("{:?}", closed.reason())));
        if state.route == "panic/close" {
            panic!("on_close panics (on purpose)");
        }
    }
}

/// Message `n` of the sequence: 512 to 4,607 bytes, `n` first, the rest derived from `n`.
fn seq_message(n: u64) -> Vec<u8> {
    let len = 512 + (n.wrapping_mul(2_654_435_761) % 4096) as usize;
    let mut msg = vec![0u8; len];
    msg[..8].copy_from_slice(&n.to_le_bytes());
    for (i, b) in msg.iter_mut().enumerate().skip(8) {
        *b = (n as u8) ^ (i as u8).wrapping_mul(31) ^ (i >> 8) as u8;
    }
    msg
}

/// Send the sequence until the write buffer is full (or the connection is closing).
fn pump(state: &mut State, ws: &mut WebSocket<'_>, seen: &Seen) {
    loop {
        match ws.send_binary(&seq_message(state.next)) {
            Ok(()) => state.next += 1,
            Err(SendError::Full) => {
                seen.fulls.fetch_add(1, Ordering::SeqCst);
                seen.buffered_at_full.store(ws.buffered(), Ordering::SeqCst);
                break;
            }
            Err(SendError::Closed) => break,
            Err(e) => panic!("send failed: {e}"),
        }
    }
    seen.sent.store(state.next, Ordering::SeqCst);
}

fn config() -> Config {
    let mut config = Config::default();
    config.workers = 1;
    config.max_write_buffer = 256 * 1024;
    config.write_high_water = 64 * 1024;
    config.timeouts.ping = None;
    config.timeouts.close = Duration::from_millis(500);
    config
}

fn start(config: Config) -> (TestServer, Arc<Seen>) {
    let app = App::default();
    let seen = Arc::clone(&app.seen);
    (TestServer::with_config(config, app).unwrap(), seen)
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

fn ws_connect(addr: SocketAddr, path: &str) -> tungstenite::WebSocket<TcpStream> {
    let (ws, response) = tungstenite::client(format!("ws://{addr}{path}"), tcp(addr)).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// A raw WebSocket connection: upgraded by hand, with the bytes after the `101` kept.
struct Raw {
    stream: TcpStream,
    pending: Vec<u8>,
}

/// What [`Raw::frame`] read.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    /// A whole frame: its first byte (FIN, opcode) and payload.
    Frame(u8, Vec<u8>),
    /// The server closed the connection (FIN), with this many bytes of a frame unfinished.
    Eof(usize),
}

impl Raw {
    fn upgrade(addr: SocketAddr, path: &str) -> Raw {
        Raw::upgrade_on(tcp(addr), path)
    }

    /// Upgrade on a connected `stream`.
    fn upgrade_on(mut stream: TcpStream, path: &str) -> Raw {
        stream.write_all(&upgrade_request(path, "")).unwrap();
        let mut pending = Vec::new();
        let end = loop {
            if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "closed during the handshake: {pending:?}");
            pending.extend_from_slice(&buf[..n]);
        };
        assert!(
            pending.starts_with(b"HTTP/1.1 101 "),
            "{:?}",
            String::from_utf8_lossy(&pending)
        );
        pending.drain(..end);
        Raw { stream, pending }
    }

    /// Send a masked client frame (payload under 126 bytes).
    fn send(&mut self, opcode: u8, payload: &[u8]) {
        assert!(payload.len() < 126);
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).unwrap();
    }

    /// The next server frame, or the end of the connection. A reset is an error.
    fn frame(&mut self) -> io::Result<Got> {
        loop {
            if let Some((first, start, len)) = header(&self.pending) {
                if self.pending.len() >= start + len {
                    let payload = self.pending[start..start + len].to_vec();
                    self.pending.drain(..start + len);
                    return Ok(Got::Frame(first, payload));
                }
            }
            let mut buf = [0u8; 64 * 1024];
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Ok(Got::Eof(self.pending.len()));
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
    }
}

/// A server frame's header: first byte, payload start, payload length.
fn header(b: &[u8]) -> Option<(u8, usize, usize)> {
    let (&first, &second) = (b.first()?, b.get(1)?);
    assert_eq!(second & 0x80, 0, "a server frame is never masked");
    let (start, len) = match second & 0x7f {
        126 => (
            4,
            usize::from(u16::from_be_bytes(b.get(2..4)?.try_into().unwrap())),
        ),
        127 => (
            10,
            usize::try_from(u64::from_be_bytes(b.get(2..10)?.try_into().unwrap())).unwrap(),
        ),
        n => (2, usize::from(n)),
    };
    Some((first, start, len))
}

const FIN_BINARY: u8 = 0x82;
const FIN_CLOSE: u8 = 0x88;

/// The connections that must outlive a neighbour's panic: a WebSocket echo and an HTTP
/// keep-alive connection, both on the same (single) worker.
struct Bystanders {
    ws: tungstenite::WebSocket<TcpStream>,
    http: HttpClient,
    round: usize,
}

impl Bystanders {
    fn open(server: &TestServer) -> Bystanders {
        let mut bystanders = Bystanders {
            ws: ws_connect(server.addr(), "/echo"),
            http: server.http().unwrap(),
            round: 0,
        };
        bystanders.still_served();
        bystanders
    }

    /// Both are served, on their original connections.
    fn still_served(&mut self) {
        self.round += 1;
        let text = format!("still here {}", self.round);
        self.ws
            .send(tungstenite::Message::text(text.clone()))
            .unwrap();
        match self.ws.read() {
            Ok(tungstenite::Message::Text(echo)) => assert_eq!(echo.as_str(), text),
            other => panic!("the bystander WebSocket got {other:?}"),
        }
        let res = self
            .http
            .get("/hello")
            .expect("the bystander keep-alive connection is served");
        assert_eq!((res.status, res.body.as_slice()), (200, &b"hello"[..]));
    }
}

/// The connection count, once the worker has finished with the panicked one.
fn wait_connections(server: &TestServer, n: u64) {
    let control = server.control();
    wait_until(&format!("{n} connections"), || {
        control.stats().connections == n
    });
}

#[test]
fn a_panic_in_on_open_aborts_that_connection_before_its_101() {
    let (server, seen) = start(config());
    let mut bystanders = Bystanders::open(&server);
    // The 101 is still in the write buffer when `on_open` runs; the panic drops it: the
    // client sees the connection end (FIN) with no response at all.
    let mut stream = tcp(server.addr());
    stream
        .write_all(&upgrade_request("/panic/open", ""))
        .unwrap();
    let mut got = Vec::new();
    stream
        .read_to_end(&mut got)
        .expect("a clean end of the connection, not a reset or a timeout");
    assert_eq!(String::from_utf8_lossy(&got), "");
    bystanders.still_served();
    wait_connections(&server, 2);
    // The WebSocket was opened, so `on_close` reports it, once, as abnormal.
    assert_eq!(seen.closes(), [("panic/open", "Abnormal".to_string())]);
    drop(bystanders);
    server.shutdown().unwrap();
}

#[test]
fn a_panic_in_on_message_aborts_that_connection_without_a_close_frame() {
    let (server, seen) = start(config());
    let mut bystanders = Bystanders::open(&server);
    let mut raw = Raw::upgrade(server.addr(), "/panic/message");
    raw.send(0x1, b"boom");
    // No Close frame (no 1011): the connection just ends, with a FIN.
    assert_eq!(raw.frame().unwrap(), Got::Eof(0));
    bystanders.still_served();
    wait_connections(&server, 2);
    assert_eq!(seen.closes(), [("panic/message", "Abnormal".to_string())]);
    // A second one, to be sure the first panic left the worker whole.
    let mut raw = Raw::upgrade(server.addr(), "/panic/message");
    raw.send(0x2, b"boom");
    assert_eq!(raw.frame().unwrap(), Got::Eof(0));
    bystanders.still_served();
    wait_connections(&server, 2);
    drop(bystanders);
    server.shutdown().unwrap();
}

#[test]
fn a_panic_in_on_drain_ends_that_connection_after_what_was_flushed() {
    let (server, seen) = start(config());
    let mut bystanders = Bystanders::open(&server);
    // `on_open` fills the buffer to its bound; as the client reads, the buffer drains and
    // `on_drain` panics. What the socket already took still arrives, intact and in order;
    // then the connection ends (FIN) mid-stream, with no Close frame.
    let mut raw = Raw::upgrade(server.addr(), "/panic/drain");
    let mut n = 0u64;
    let unfinished = loop {
        match raw.frame().unwrap() {
            Got::Frame(FIN_BINARY, payload) => {
                assert!(payload == seq_message(n), "message {n} differs");
                n += 1;
            }
            Got::Frame(first, payload) => {
                panic!("unexpected frame {first:#x} {payload:?} after {n} messages")
            }
            Got::Eof(unfinished) => break unfinished,
        }
    };
    assert_eq!(seen.drains.load(Ordering::SeqCst), 1);
    let sent = seen.sent.load(Ordering::SeqCst);
    assert!(n > 0 && n <= sent, "received {n} of {sent}");
    assert!(
        unfinished < SEQ_MAX_LEN + 14,
        "{unfinished} bytes of a frame"
    );
    bystanders.still_served();
    wait_connections(&server, 2);
    assert_eq!(seen.closes(), [("panic/drain", "Abnormal".to_string())]);
    drop(bystanders);
    server.shutdown().unwrap();
}

#[test]
fn a_panic_in_on_close_does_not_stop_the_close_handshake_or_the_worker() {
    let (server, seen) = start(config());
    let mut bystanders = Bystanders::open(&server);
    // The peer closes: `on_close` runs (and panics) as the Close arrives; the Close is still
    // echoed and the connection ends cleanly.
    let mut ws = ws_connect(server.addr(), "/panic/close");
    ws.close(Some(CloseFrame {
        code: TCode::Normal,
        reason: "bye".into(),
    }))
    .unwrap();
    match ws.read() {
        Ok(tungstenite::Message::Close(Some(frame))) => assert_eq!(frame.code, TCode::Normal),
        other => panic!("expected the Close echo, got {other:?}"),
    }
    match ws.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        other => panic!("expected the end of the connection, got {other:?}"),
    }
    bystanders.still_served();
    wait_connections(&server, 2);
    // The peer vanishes: `on_close` runs (and panics) as the session is removed.
    let ws = ws_connect(server.addr(), "/panic/close");
    drop(ws);
    wait_connections(&server, 2);
    bystanders.still_served();
    assert_eq!(
        seen.closes(),
        [
            (
                "panic/close",
                "Peer(Some(CloseCode(1000)), \"bye\")".to_string()
            ),
            ("panic/close", "Abnormal".to_string()),
        ]
    );
    drop(bystanders);
    server.shutdown().unwrap();
}

/// The server closes (the app calls `ws.close`); the peer never sends its Close and never
/// closes the TCP connection. The server must drop it at `Timeouts::close`, with a FIN, and
/// report it once as the app's own close. A peer that keeps sending data instead of its Close
/// does not push that deadline.
#[test]
#[allow(clippy::disallowed_methods)] // The test times the server against the clock.
fn a_peer_that_never_answers_our_close_is_dropped_at_the_close_timeout() {
    let close = Duration::from_millis(1000);
    let mut config = config();
    config.timeouts.close = close;
    let (server, seen) = start(config);
    let addr = server.addr();
    // Not earlier than the deadline (it starts after the client's message was sent), and not
    // more than a few ticks later on a loaded machine.
    let late = Duration::from_millis(2500);

    let chatty = std::thread::spawn(move || {
        let mut raw = Raw::upgrade(addr, "/close");
        let sent = Instant::now();
        raw.send(0x1, b"close");
        assert_eq!(
            raw.frame().unwrap(),
            Got::Frame(FIN_CLOSE, [&4000u16.to_be_bytes()[..], b"bye"].concat())
        );
        // Keep talking, never Close: data every 100 ms until the server is gone.
        raw.stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let ended = loop {
            assert!(sent.elapsed() < close + late + WAIT, "never dropped");
            if raw.stream.write_all(&[0x81, 0x84, 0, 0, 0, 0]).is_ok() {
                let _ = raw.stream.write_all(b"chat");
            }
            let mut buf = [0u8; 64];
            match raw.stream.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => panic!("unexpected bytes after the Close: {:?}", &buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                // The server closed while our data was unread, or this side wrote after
                // its FIN: either way it is gone.
                Err(e) => break Err(e.kind()),
            }
        };
        (sent.elapsed(), ended)
    });

    let mut raw = Raw::upgrade(addr, "/close");
    let sent = Instant::now();
    raw.send(0x1, b"close");
    assert_eq!(
        raw.frame().unwrap(),
        Got::Frame(FIN_CLOSE, [&4000u16.to_be_bytes()[..], b"bye"].concat())
    );
    let got_close = Instant::now();
    // Silent from here on; the read waits for the server to give up.
    let ended = raw.frame();
    let (after_send, after_close) = (sent.elapsed(), got_close.elapsed());
    assert_eq!(
        ended.expect("the server dropped the connection with a reset, or never"),
        Got::Eof(0),
        "FIN, nothing more"
    );
    assert!(
        after_send >= close,
        "dropped {after_send:?} after the close, before the {close:?} timeout"
    );
    assert!(after_close < close + late, "dropped after {after_close:?}");

    let (chatty_after, chatty_end) = chatty.join().unwrap();
    assert!(
        chatty_after >= close && chatty_after < close + late,
        "the chatty peer was dropped after {chatty_after:?} ({chatty_end:?})"
    );

    wait_connections(&server, 0);
    let local = "Local(CloseCode(4000))".to_string();
    assert_eq!(
        seen.closes(),
        [("close", local.clone()), ("close", local)],
        "on_close once per connection, as the app's own close"
    );
    server.shutdown().unwrap();
}

/// A tungstenite client of `path` with a small receive window, so that the kernel holds
/// little of the stream on this side.
fn small_window_client(addr: SocketAddr, path: &str) -> tungstenite::WebSocket<TcpStream> {
    let (ws, _) = tungstenite::client(format!("ws://{addr}{path}"), small_window(addr)).unwrap();
    ws
}

/// A connection with a small receive window (set before the connect, so that it holds).
fn small_window(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// Wait until the server has stalled against a client that does not read: messages were
/// queued, and then nothing moves (bytes written, drains, messages queued) for a while.
/// Returns the bytes written, the drains and the messages queued by then.
fn wait_stall(server: &TestServer, seen: &Seen) -> (u64, usize, u64) {
    let control = server.control();
    let mut last = (u64::MAX, usize::MAX, u64::MAX);
    let mut still = 0;
    wait_until("the server to stall against the unread socket", || {
        let now = (
            control.stats().bytes_out,
            seen.drains.load(Ordering::SeqCst),
            seen.sent.load(Ordering::SeqCst),
        );
        if now == last && now.2 > 0 {
            still += 1;
        } else {
            (last, still) = (now, 0);
        }
        still >= 40
    });
    last
}

/// Read the rest of `/seq` from message `n` on, up to the server's Close and the end of the
/// connection; returns how many messages there were in all.
fn read_to_close(ws: &mut tungstenite::WebSocket<TcpStream>, mut n: u64) -> u64 {
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Binary(payload)) => {
                assert!(payload[..] == seq_message(n)[..], "message {n} differs");
                n += 1;
            }
            Ok(tungstenite::Message::Close(_)) => continue,
            Err(tungstenite::Error::ConnectionClosed) => return n,
            other => panic!("no clean close after {n} messages: {other:?}"),
        }
    }
}

/// The server streams numbered messages, pausing on `SendError::Full` and resuming on
/// `on_drain`; the client stalls until the server is stuck at its bound, then reads on: every
/// message arrives, in order and byte-exact, and `on_drain` refilled the buffer twice over
/// after the stall.
///
/// The bound (4 MiB) is above what the kernel takes from one wakeup to the next, so that the
/// socket takes the output in pieces and the runtime keeps a partly written buffer.
#[test]
fn after_a_stall_on_drain_resumes_the_stream_and_every_message_arrives_intact() {
    const BOUND: usize = 4 << 20;
    let mut config = config();
    config.max_write_buffer = BOUND;
    config.write_high_water = 1 << 20;
    config.timeouts.write = Duration::from_secs(60);
    // The close at the end flushes megabytes before the Close echo; the close timeout is not
    // what this test is about (see the next test).
    config.timeouts.close = WAIT;
    let (server, seen) = start(config);
    let mut ws = small_window_client(server.addr(), "/seq");
    let (_, drains_at_stall, sent_at_stall) = wait_stall(&server, &seen);
    assert!(seen.fulls.load(Ordering::SeqCst) > 0);
    let at_full = seen.buffered_at_full.load(Ordering::SeqCst);
    assert!(
        at_full > BOUND - SEQ_MAX_LEN - 14,
        "the last Full came at {at_full} bytes buffered"
    );

    // Read on until `on_drain` has produced two buffers' worth after the stall.
    let mut after = 0;
    let mut n = 0;
    while n < sent_at_stall || after < 2 * BOUND {
        match ws.read() {
            Ok(tungstenite::Message::Binary(payload)) => {
                assert!(payload[..] == seq_message(n)[..], "message {n} differs");
            }
            other => panic!("message {n}: got {other:?}"),
        }
        if n >= sent_at_stall {
            after += seq_message(n).len();
        }
        n += 1;
    }
    let drains = seen.drains.load(Ordering::SeqCst);
    assert!(
        drains >= drains_at_stall + 2,
        "on_drain was called {drains} times, {drains_at_stall} of them before the stall"
    );

    // Close; what the server queued before our Close still arrives, in order.
    ws.close(None).unwrap();
    let n = read_to_close(&mut ws, n);
    assert_eq!(
        n,
        seen.sent.load(Ordering::SeqCst),
        "messages lost at the end"
    );
    server.shutdown().unwrap();
}

/// The peer's Close arrives while the server still has output queued for it (the peer is
/// reading slowly). The peer has done its part of the close handshake, so `Timeouts::close`
/// (which bounds the wait for the peer's Close) does not apply: the server flushes what it
/// queued, then its Close echo, then ends the connection. Only `Timeouts::write` bounds a
/// peer that stops reading.
#[test]
fn a_peer_close_behind_queued_output_gets_the_output_and_the_echo() {
    let close = Duration::from_millis(300);
    let mut config = config();
    // Room for the bulk, and no pause in reading: the server sees the Close at once.
    config.max_write_buffer = 2 * BULK;
    config.write_high_water = 2 * BULK;
    config.timeouts.close = close;
    let mut slow_reader = config.clone();
    // Far above the reader's pause (the stall, then three close timeouts), however loaded
    // the machine.
    slow_reader.timeouts.write = Duration::from_secs(60);
    let (server, seen) = start(slow_reader);
    let mut ws = small_window_client(server.addr(), "/bulk");
    let (bytes_out, _, sent) = wait_stall(&server, &seen);
    let queued: usize = (0..sent).map(|n| seq_message(n).len() + 4).sum();
    assert!(
        (bytes_out as usize) < queued,
        "the kernel took all {queued} bytes: nothing is left queued in the server"
    );
    ws.close(None).unwrap();
    wait_until("the peer's Close to arrive", || !seen.closes().is_empty());
    let peer_close = [("bulk", "Peer(None, \"\")".to_string())];
    assert_eq!(seen.closes(), peer_close);
    // The peer reads nothing for several close timeouts, then everything.
    std::thread::sleep(3 * close);
    let n = read_to_close(&mut ws, 0);
    assert_eq!(n, sent, "messages lost at the end");
    wait_connections(&server, 0);
    assert_eq!(seen.closes(), peer_close);
    server.shutdown().unwrap();

    // A peer that sends its Close and never reads again is dropped at the write timeout.
    let mut non_reader = config;
    non_reader.timeouts.write = Duration::from_secs(2);
    let (server, seen) = start(non_reader);
    let mut ws = small_window_client(server.addr(), "/bulk");
    ws.close(None).unwrap();
    wait_until("the peer's Close to arrive", || !seen.closes().is_empty());
    wait_connections(&server, 0);
    assert_eq!(seen.closes(), peer_close);
    server.shutdown().unwrap();
}

/// A peer reading the `/bulk/close` stream. While the server still holds output (its bytes-out
/// counter is short of all the frames) it keeps a steady pace: a [`Steady::PAUSE`] per
/// [`Steady::BYTES`] read, at most about 1.6 MB/s, so the server's flush takes seconds whatever
/// the machine. Once our Close has reached the socket, it reads at full speed: `close` times
/// the wait for its answer from then, and the kernel still holds megabytes before the Close.
struct Steady {
    control: Control,
    /// The server's bytes-out count once every frame has reached the socket (give or take the
    /// 101, which it leaves out).
    done: u64,
    /// When the server was last seen holding output.
    held: Instant,
    unpaused: usize,
    /// Messages read.
    n: u64,
}

#[allow(clippy::disallowed_methods)] // It times the server against the clock.
impl Steady {
    const BYTES: usize = 16 * 1024;
    const PAUSE: Duration = Duration::from_millis(10);

    /// For a connection just opened, whose `on_open` queued `sent` messages and the Close; the
    /// server had written `before` bytes when it connected.
    fn new(control: Control, before: u64, sent: u64) -> Steady {
        let frames: usize = (0..sent).map(|n| seq_message(n).len() + 4).sum();
        Steady {
            control,
            // The Close: 2 bytes of header, 4000 and `bye`.
            done: before + frames as u64 + 7,
            held: Instant::now(),
            unpaused: 0,
            n: 0,
        }
    }

    /// The next message arrived; it must be the next of the sequence.
    fn message(&mut self, payload: &[u8]) {
        assert!(payload == seq_message(self.n), "message {} differs", self.n);
        self.n += 1;
        let now = Instant::now();
        if self.control.stats().bytes_out < self.done {
            self.held = now;
            self.unpaused += payload.len();
            if self.unpaused >= Self::BYTES {
                self.unpaused = 0;
                std::thread::sleep(Self::PAUSE);
            }
        }
    }
}

/// The server closes (the app, with 4000) behind megabytes of output that the peer reads at
/// a steady pace, for several close timeouts. `Timeouts::close` bounds the wait for the
/// peer's Close, so it counts from when our Close has reached the socket, not from the app's
/// call: the peer gets every message, then the Close, and its answer ends the connection
/// cleanly. A peer that reads it all but never answers is dropped `close` after our Close
/// reached the socket; a peer that stops reading, by the write timeout.
#[test]
#[allow(clippy::disallowed_methods)] // The test times the server against the clock.
fn our_close_behind_queued_output_waits_for_the_flush_then_the_close_timeout() {
    let close = Duration::from_millis(500);
    // How late a timer may fire on a loaded machine.
    let late = Duration::from_millis(2500);
    let mut config = config();
    config.max_write_buffer = 2 * BULK;
    config.write_high_water = 2 * BULK;
    config.timeouts.close = close;
    let mut steady = config.clone();
    // The steady reader never pauses for long; this is far above any pause, however loaded
    // the machine.
    steady.timeouts.write = Duration::from_secs(60);
    let (server, seen) = start(steady);
    let control = server.control();
    let local = "Local(CloseCode(4000))".to_string();

    // A steady reader: everything, in order, then the Close; its answer ends the connection.
    let before = control.stats().bytes_out;
    let started = Instant::now();
    let mut ws = small_window_client(server.addr(), "/bulk/close");
    // Set in `on_open`, before the 101 left.
    let sent = seen.sent.load(Ordering::SeqCst);
    let mut reader = Steady::new(control.clone(), before, sent);
    let frame = loop {
        match ws.read() {
            Ok(tungstenite::Message::Binary(payload)) => reader.message(&payload),
            Ok(tungstenite::Message::Close(frame)) => break frame,
            other => panic!("after {} of {sent} messages: {other:?}", reader.n),
        }
    };
    let flushing = reader.held - started;
    assert_eq!(reader.n, sent, "messages lost");
    assert!(
        flushing >= 3 * close,
        "the server flushed in {flushing:?}: not several close timeouts, so this proves nothing"
    );
    let frame = frame.expect("a Close with a code");
    assert_eq!(
        (u16::from(frame.code), frame.reason.as_str()),
        (4000, "bye")
    );
    // The next read sends the answer; the server then ends the connection (a FIN).
    match ws.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        other => panic!("expected the end of the close handshake, got {other:?}"),
    }
    let mut rest = [0u8; 64];
    assert_eq!(
        ws.get_mut()
            .read(&mut rest)
            .expect("a FIN, not a reset or a timeout"),
        0
    );
    wait_connections(&server, 0);
    assert_eq!(seen.closes(), [("bulk/close", local.clone())]);

    // A peer that reads it all but never answers is dropped `close` after our Close reached
    // the socket, which it did after the reader last saw the server holding output (less the
    // counter's lag: it is stored once per turn of the worker).
    let before = control.stats().bytes_out;
    let mut raw = Raw::upgrade_on(small_window(server.addr()), "/bulk/close");
    let mut reader = Steady::new(control.clone(), before, sent);
    loop {
        match raw.frame().unwrap() {
            Got::Frame(FIN_BINARY, payload) => reader.message(&payload),
            Got::Frame(FIN_CLOSE, payload) => {
                assert_eq!(payload, [&4000u16.to_be_bytes()[..], b"bye"].concat());
                break;
            }
            other => panic!("after {} of {sent} messages: {other:?}", reader.n),
        }
    }
    let got_close = Instant::now();
    assert_eq!(reader.n, sent, "messages lost");
    // Silent from here on; the read waits for the server to give up.
    let ended = raw.frame();
    let (after_held, after_close) = (reader.held.elapsed(), got_close.elapsed());
    assert_eq!(
        ended.expect("the server dropped the connection with a reset, or never"),
        Got::Eof(0),
        "FIN, nothing more"
    );
    let lag = Duration::from_millis(100);
    assert!(
        after_held + lag >= close,
        "dropped {after_held:?} after the server last held output: before the close timeout"
    );
    assert!(
        after_close < close + late,
        "dropped {after_close:?} after the Close arrived"
    );
    wait_connections(&server, 0);
    let both = [("bulk/close", local.clone()), ("bulk/close", local.clone())];
    assert_eq!(seen.closes(), both);
    server.shutdown().unwrap();

    // A peer that stops reading: the write timeout drops it, with our Close still queued.
    let write = Duration::from_secs(2);
    let mut non_reader = config;
    non_reader.timeouts.write = write;
    let (server, seen) = start(non_reader);
    let connected = Instant::now();
    let ws = small_window_client(server.addr(), "/bulk/close");
    wait_connections(&server, 1);
    wait_connections(&server, 0);
    let after = connected.elapsed();
    assert!(
        after >= write,
        "dropped after {after:?}, before the write timeout"
    );
    assert!(after < write + late, "dropped after {after:?}");
    assert_eq!(seen.closes(), [("bulk/close", local)]);
    drop(ws);
    server.shutdown().unwrap();
}
