//! Helpers for testing an application built on berth: run its [`Handler`] on `127.0.0.1:0`
//! in-process, and talk to it with small blocking clients.
//!
//! - [`TestServer`] starts the handler on a free loopback port and shuts it down when dropped.
//! - [`HttpClient`] sends requests on one keep-alive connection and reads whole responses
//!   (`Content-Length` or chunked).
//! - [`WsClient`] is a WebSocket client built on berth's own client role: send messages,
//!   expect messages and close codes.
//! - [`RawClient`] writes hand-made (or malformed) bytes and reads what comes back, and tells
//!   how and when the server ended the connection: an orderly close (FIN) or a reset (RST).
//!
//! Every read waits at most [`TIMEOUT`] by default, so a test that expects something the
//! server never sends fails instead of hanging. This module does I/O, like
//! [`server`](crate::server), and is meant for tests, not for production clients.
//!
//! ```
//! use berth::http::Request;
//! use berth::server::{Handler, Message, Responder, WebSocket};
//! use berth::testing::TestServer;
//!
//! struct App;
//! impl Handler for App {
//!     type State = ();
//!     fn on_request(&self, _: &mut (), req: &Request<'_, '_>, res: &mut Responder<'_>) {
//!         match req.path() {
//!             "/ws" => { res.websocket(req); }
//!             _ => { let _ = res.send(200, &[], b"hi"); }
//!         }
//!     }
//!     fn on_message(&self, _: &mut (), ws: &mut WebSocket<'_>, msg: Message<'_>) {
//!         let _ = ws.send(msg);
//!     }
//! }
//!
//! let server = TestServer::start(App)?;
//! let response = server.http()?.get("/")?;
//! assert_eq!((response.status, response.body.as_slice()), (200, &b"hi"[..]));
//!
//! let mut ws = server.websocket("/ws")?;
//! ws.send_text("echo?")?;
//! ws.expect_text("echo?")?;
//! ws.close(1000, "done")?;
//! ws.expect_close(1000)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::handshake::ClientHandshake;
use crate::http::header_slots;
use crate::server::{Config, Control, Handler, Server, ServerHandle};
use crate::ws::{self, CloseCode, Role};
use crate::{Limits, Status};

/// How long a client waits for the server by default.
pub const TIMEOUT: Duration = Duration::from_secs(10);

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Random bytes from std's randomly keyed hasher: enough for masking keys and handshake
/// nonces in tests.
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x6265_7274_6874_6573);
    hasher.finish()
}

/// An application's handler running on `127.0.0.1:<free port>` in this process.
///
/// Dropping it shuts the server down and waits for its workers.
#[derive(Debug)]
pub struct TestServer {
    handle: Option<ServerHandle>,
    control: Control,
    addr: SocketAddr,
}

impl TestServer {
    /// Start `handler` with a test configuration: one worker, default limits, and a short
    /// close linger (so a shutdown with clients still connected is quick).
    ///
    /// # Errors
    ///
    /// An I/O error binding the port or starting the worker.
    pub fn start<H: Handler>(handler: H) -> io::Result<Self> {
        let mut config = Config {
            workers: 1,
            ..Config::default()
        };
        config.timeouts.close = Duration::from_millis(500);
        Self::with_config(config, handler)
    }

    /// Start `handler` with `config` (its worker count, limits and timeouts as given).
    ///
    /// # Errors
    ///
    /// As [`TestServer::start`].
    pub fn with_config<H: Handler>(config: Config, handler: H) -> io::Result<Self> {
        let handle = Server::new(config).listen("127.0.0.1:0")?.spawn(handler)?;
        let addr = handle.local_addrs()[0];
        Ok(TestServer {
            control: handle.control(),
            handle: Some(handle),
            addr,
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's [`Control`]: publish, counters, shutdown.
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// A new HTTP connection.
    ///
    /// # Errors
    ///
    /// An I/O error connecting.
    pub fn http(&self) -> io::Result<HttpClient> {
        HttpClient::connect(self.addr)
    }

    /// A new WebSocket connection to `path` (the handshake is done).
    ///
    /// # Errors
    ///
    /// An I/O error, or [`io::ErrorKind::InvalidData`] if the server refused the upgrade.
    pub fn websocket(&self, path: &str) -> io::Result<WsClient> {
        WsClient::connect(self.addr, path, &[])
    }

    /// A new raw connection.
    ///
    /// # Errors
    ///
    /// An I/O error connecting.
    pub fn raw(&self) -> io::Result<RawClient> {
        RawClient::connect(self.addr)
    }

    /// Shut down gracefully (see [`Control::shutdown`]) and wait for the workers.
    ///
    /// # Errors
    ///
    /// The error a worker ended with.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        match self.handle.take() {
            Some(handle) => {
                handle.shutdown();
                handle.join()
            }
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A connection for raw bytes: write anything, read what comes back.
#[derive(Debug)]
pub struct RawClient {
    stream: TcpStream,
}

impl RawClient {
    /// Connect to `addr`, with reads and writes bounded by [`TIMEOUT`].
    ///
    /// # Errors
    ///
    /// An I/O error connecting.
    pub fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(RawClient { stream })
    }

    /// Change how long reads wait.
    ///
    /// # Errors
    ///
    /// An I/O error from the socket.
    pub fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))
    }

    /// Write all of `bytes`.
    ///
    /// # Errors
    ///
    /// An I/O error (for example, the server closed the connection).
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Read what is available (at least one byte); an empty vector means EOF.
    ///
    /// # Errors
    ///
    /// An I/O error, or [`io::ErrorKind::WouldBlock`]/[`io::ErrorKind::TimedOut`] if nothing
    /// arrived in time.
    pub fn read_some(&mut self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 16 * 1024];
        let n = self.stream.read(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Read until the server closes the connection in order (its FIN), and return what
    /// arrived before.
    ///
    /// # Errors
    ///
    /// An I/O error: [`io::ErrorKind::ConnectionReset`] if the server reset the connection
    /// (an abortive close is not a close here; use [`RawClient::read_until_close`] to accept
    /// either and be told which), or a timeout if the server keeps the connection open.
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        self.stream.read_to_end(&mut all)?;
        Ok(all)
    }

    /// Read until the connection ends, whether the server closed it in order (FIN) or reset
    /// it (RST), and report the bytes read, how it ended and when.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::net::TcpListener;
    /// use berth::testing::{HowClosed, RawClient};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let mut client = RawClient::connect(listener.local_addr()?)?;
    /// let (mut server_side, _) = listener.accept()?;
    /// server_side.write_all(b"bye")?;
    /// drop(server_side); // close(2) with nothing unread: a FIN
    /// let end = client.read_until_close()?;
    /// assert_eq!((end.bytes.as_slice(), end.how), (&b"bye"[..], HowClosed::Fin));
    ///
    /// let mut client = RawClient::connect(listener.local_addr()?)?;
    /// let (server_side, _) = listener.accept()?;
    /// client.write(b"never read")?;
    /// server_side.peek(&mut [0u8; 1])?; // the bytes have arrived...
    /// drop(server_side); // ...and close(2) with bytes unread sends a reset
    /// assert_eq!(client.read_until_close()?.how, HowClosed::Reset);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// An I/O error other than a reset, or a timeout (nothing for [`TIMEOUT`], or the
    /// timeout set with [`RawClient::set_timeout`]) if the server keeps the connection open.
    pub fn read_until_close(&mut self) -> io::Result<Ending> {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(Ending::now(bytes, HowClosed::Fin)),
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Ok(Ending::now(bytes, HowClosed::Reset))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The socket, for anything else.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Read more bytes into `pending`; fails on EOF.
    fn fill(&mut self, pending: &mut Vec<u8>, what: &str) -> io::Result<()> {
        let mut buf = [0u8; 16 * 1024];
        let n = self.stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("connection closed while reading {what}"),
            ));
        }
        pending.extend_from_slice(&buf[..n]);
        Ok(())
    }
}

/// How a connection ended, as [`RawClient::read_until_close`] saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HowClosed {
    /// An orderly close: the server's FIN arrived after everything it sent (a read returned 0).
    Fin,
    /// An abortive close: the server's RST (`ECONNRESET`), as `close(2)` sends when bytes it
    /// never read are still queued; bytes it sent that were not yet read here may be lost.
    Reset,
}

/// What [`RawClient::read_until_close`] read, and how and when the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// The bytes read before the end.
    pub bytes: Vec<u8>,
    /// How the connection ended.
    pub how: HowClosed,
    /// When the end was seen (just after the read that reported it returned).
    pub at: Instant,
}

impl Ending {
    // A timestamp for the test's own assertions, not a time the runtime runs on.
    #[allow(clippy::disallowed_methods)]
    fn now(bytes: Vec<u8>, how: HowClosed) -> Self {
        Ending {
            bytes,
            how,
            at: Instant::now(),
        }
    }
}

/// An HTTP response as the test client read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header fields, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of the header `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| core::str::from_utf8(v).ok())
    }
}

/// A keep-alive HTTP/1.1 connection.
#[derive(Debug)]
pub struct HttpClient {
    raw: RawClient,
    pending: Vec<u8>,
}

impl HttpClient {
    /// A keep-alive connection to `addr` (any HTTP/1.1 server).
    ///
    /// # Errors
    ///
    /// An I/O error connecting.
    pub fn connect(addr: SocketAddr) -> io::Result<Self> {
        Ok(HttpClient {
            raw: RawClient::connect(addr)?,
            pending: Vec::new(),
        })
    }

    /// `GET path` and read the response.
    ///
    /// # Errors
    ///
    /// An I/O error, a timeout, or [`io::ErrorKind::InvalidData`] for a malformed response.
    pub fn get(&mut self, path: &str) -> io::Result<Response> {
        self.request("GET", path, &[], b"")
    }

    /// Send a request with `headers` and a `Content-Length` body, and read the response.
    ///
    /// # Errors
    ///
    /// As [`HttpClient::get`].
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.raw.write(&bytes)?;
        self.read_response()
    }

    /// Write raw bytes (several pipelined requests, say) without reading.
    ///
    /// # Errors
    ///
    /// An I/O error.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.raw.write(bytes)
    }

    /// Read one response; bytes after it stay for the next call.
    ///
    /// # Errors
    ///
    /// As [`HttpClient::get`].
    pub fn read_response(&mut self) -> io::Result<Response> {
        let head_len = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(&self.pending) {
                Ok(httparse::Status::Complete(len)) => break len,
                Ok(httparse::Status::Partial) => self.raw.fill(&mut self.pending, "a response")?,
                Err(e) => return Err(invalid(format!("malformed response head: {e}"))),
            }
        };
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        let _ = parsed.parse(&self.pending);
        let status = parsed.code.unwrap_or(0);
        let headers: Vec<(String, Vec<u8>)> = parsed
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect();
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        self.pending.drain(..head_len);
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            response.body = self.read_chunked()?;
        } else if let Some(len) = response.header("content-length") {
            let len: usize = len
                .trim()
                .parse()
                .map_err(|_| invalid("bad Content-Length"))?;
            while self.pending.len() < len {
                self.raw.fill(&mut self.pending, "a response body")?;
            }
            response.body = self.pending.drain(..len).collect();
        }
        Ok(response)
    }

    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let Some(line) = self.pending.windows(2).position(|w| w == b"\r\n") else {
                self.raw.fill(&mut self.pending, "a chunk size")?;
                continue;
            };
            let size_text = core::str::from_utf8(&self.pending[..line])
                .map_err(|_| invalid("bad chunk size"))?;
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size =
                usize::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                // The last chunk; trailers end with an empty line.
                loop {
                    if let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        self.pending.drain(..end + 4);
                        return Ok(body);
                    }
                    if self.pending.get(line..line + 4) == Some(b"\r\n\r\n") {
                        self.pending.drain(..line + 4);
                        return Ok(body);
                    }
                    self.raw.fill(&mut self.pending, "the trailers")?;
                }
            }
            let need = line + 2 + size + 2;
            while self.pending.len() < need {
                self.raw.fill(&mut self.pending, "a chunk")?;
            }
            body.extend_from_slice(&self.pending[line + 2..line + 2 + size]);
            self.pending.drain(..need);
        }
    }

    /// Read until the connection ends, as [`RawClient::read_until_close`]; the bytes include
    /// any this client had read past the last response.
    ///
    /// # Errors
    ///
    /// As [`RawClient::read_until_close`].
    pub fn read_until_close(&mut self) -> io::Result<Ending> {
        let mut ending = self.raw.read_until_close()?;
        let mut bytes = core::mem::take(&mut self.pending);
        bytes.append(&mut ending.bytes);
        ending.bytes = bytes;
        Ok(ending)
    }

    /// The underlying raw connection.
    pub fn raw(&mut self) -> &mut RawClient {
        &mut self.raw
    }
}

/// Something a [`WsClient`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping (already answered with a pong).
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// The server's Close: its code (if any) and reason.
    Close(Option<u16>, String),
}

/// A blocking WebSocket client on berth's client role.
pub struct WsClient {
    raw: RawClient,
    conn: ws::Conn,
    pending: Vec<u8>,
    out: Vec<u8>,
    protocol: Option<String>,
}

impl core::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WsClient")
            .field("conn", &self.conn)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl WsClient {
    /// Connect to `addr`, upgrade `path`, offering `protocols`.
    ///
    /// # Errors
    ///
    /// An I/O error, or [`io::ErrorKind::InvalidData`] if the server refused the upgrade (the
    /// message names the status).
    pub fn connect(addr: SocketAddr, path: &str, protocols: &[&str]) -> io::Result<Self> {
        let mut raw = RawClient::connect(addr)?;
        let nonce_bits = u128::from(random_u64()) << 64 | u128::from(random_u64());
        let handshake = ClientHandshake::new(nonce_bits.to_le_bytes());
        let mut request = Vec::new();
        handshake
            .write_request(&addr.to_string(), path, protocols, &mut request)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        raw.write(&request)?;
        let mut pending = Vec::new();
        let (used, protocol) = loop {
            let mut slots = header_slots::<64>();
            match handshake.parse_response(&pending, protocols, &mut slots) {
                Ok(Status::Complete((used, accepted))) => {
                    break (used, accepted.protocol.map(str::to_owned))
                }
                Ok(Status::Partial) => raw.fill(&mut pending, "the handshake response")?,
                Err(e) => return Err(invalid(format!("upgrade refused: {e}"))),
            }
        };
        pending.drain(..used);
        let limits = Limits {
            max_message: 64 << 20,
            max_frame_payload: 64 << 20,
            max_fragments: 1 << 20,
            ..Limits::default()
        };
        let mask: ws::MaskSource = Box::new(|| (random_u64() as u32).to_ne_bytes());
        let conn = ws::Conn::new(Role::Client, &limits, ws::Config::default(), Some(mask));
        Ok(WsClient {
            raw,
            conn,
            pending,
            out: Vec::new(),
            protocol,
        })
    }

    /// The subprotocol the server chose.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.raw.write(&self.out);
        self.out.clear();
        result
    }

    fn sent(&mut self, result: Result<(), ws::SendError>) -> io::Result<()> {
        result.map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        self.flush()
    }

    /// Send a text message.
    ///
    /// # Errors
    ///
    /// An I/O error, or [`io::ErrorKind::InvalidInput`] after Close.
    pub fn send_text(&mut self, text: &str) -> io::Result<()> {
        let result = self.conn.send_text(text, &mut self.out);
        self.sent(result)
    }

    /// Send a binary message.
    ///
    /// # Errors
    ///
    /// As [`WsClient::send_text`].
    pub fn send_binary(&mut self, data: &[u8]) -> io::Result<()> {
        let result = self.conn.send_binary(data, &mut self.out);
        self.sent(result)
    }

    /// Send a ping.
    ///
    /// # Errors
    ///
    /// As [`WsClient::send_text`].
    pub fn send_ping(&mut self, payload: &[u8]) -> io::Result<()> {
        let result = self.conn.send_ping(payload, &mut self.out);
        self.sent(result)
    }

    /// Start the close handshake.
    ///
    /// # Errors
    ///
    /// As [`WsClient::send_text`], and for a code that may not be sent.
    pub fn close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        let result = self
            .conn
            .close(CloseCode::from(code), reason, &mut self.out);
        self.sent(result)
    }

    /// Send raw bytes on the connection (a hand-made frame, say).
    ///
    /// # Errors
    ///
    /// An I/O error.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.raw.write(bytes)
    }

    /// Wait for the next message, ping, pong or close. Pings are answered automatically.
    ///
    /// # Errors
    ///
    /// An I/O error, a timeout, [`io::ErrorKind::UnexpectedEof`] if the connection ended
    /// without a Close, or [`io::ErrorKind::InvalidData`] if the server broke the protocol.
    pub fn recv(&mut self) -> io::Result<Received> {
        loop {
            let event = self
                .conn
                .handle_input(&mut self.pending)
                .map_err(|e| invalid(format!("server broke the protocol: {e}")));
            let (used, received) = match event? {
                (used, ws::Event::Text(t)) => (used, Some(Received::Text(t.to_owned()))),
                (used, ws::Event::Binary(b)) => (used, Some(Received::Binary(b.to_vec()))),
                (used, ws::Event::Ping(p)) => (used, Some(Received::Ping(p.to_vec()))),
                (used, ws::Event::Pong(p)) => (used, Some(Received::Pong(p.to_vec()))),
                (used, ws::Event::Close(frame)) => (
                    used,
                    Some(match frame {
                        Some(f) => Received::Close(Some(f.code.as_u16()), f.reason.to_owned()),
                        None => Received::Close(None, String::new()),
                    }),
                ),
                (used, ws::Event::NeedData) => (used, None),
                (_, ws::Event::Closed) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection is closed",
                    ))
                }
            };
            self.pending.drain(..used);
            if self.conn.poll_transmit(&mut self.out) {
                // A pong or the Close reply; the server may already have gone.
                let _ = self.flush();
            }
            if let Some(received) = received {
                return Ok(received);
            }
            self.raw.fill(&mut self.pending, "a frame")?;
        }
    }

    /// Wait for the next data message or Close, skipping pings and pongs.
    ///
    /// # Errors
    ///
    /// As [`WsClient::recv`].
    pub fn recv_message(&mut self) -> io::Result<Received> {
        loop {
            match self.recv()? {
                Received::Ping(_) | Received::Pong(_) => continue,
                other => return Ok(other),
            }
        }
    }

    /// Expect the next message to be the text `expected`.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidData`] naming what arrived instead, or as [`WsClient::recv`].
    pub fn expect_text(&mut self, expected: &str) -> io::Result<()> {
        match self.recv_message()? {
            Received::Text(t) if t == expected => Ok(()),
            other => Err(invalid(format!(
                "expected text {expected:?}, got {other:?}"
            ))),
        }
    }

    /// Expect the next message to be the binary `expected`.
    ///
    /// # Errors
    ///
    /// As [`WsClient::expect_text`].
    pub fn expect_binary(&mut self, expected: &[u8]) -> io::Result<()> {
        match self.recv_message()? {
            Received::Binary(b) if b == expected => Ok(()),
            Received::Binary(b) => Err(invalid(format!(
                "expected {} binary bytes, got {} different ones",
                expected.len(),
                b.len()
            ))),
            other => Err(invalid(format!("expected binary, got {other:?}"))),
        }
    }

    /// Expect the server's Close with `code`, skipping messages still in flight.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidData`] for another code, or as [`WsClient::recv`].
    pub fn expect_close(&mut self, code: u16) -> io::Result<()> {
        loop {
            match self.recv()? {
                Received::Close(Some(c), _) if c == code => return Ok(()),
                Received::Close(other, reason) => {
                    return Err(invalid(format!(
                        "expected close {code}, got {other:?} {reason:?}"
                    )))
                }
                _ => continue,
            }
        }
    }

    /// The underlying raw connection.
    pub fn raw(&mut self) -> &mut RawClient {
        &mut self.raw
    }
}
