//! What the application implements ([`Handler`]) and the views it is handed: [`Responder`]
//! for an HTTP exchange, [`WebSocket`] for a WebSocket connection.
//!
//! Callbacks run on the worker thread that owns the connection, one at a time per connection,
//! and must not block: a callback that sleeps stalls every connection of its worker. Whatever
//! they send is appended to the connection's write buffer and written when the callback
//! returns; nothing is allocated per message once the buffers are warm.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::handshake::{HandshakeError, Upgrade};
use crate::http::{DateCache, Request, ResponseBody, ResponseError, ResponseHead, ServerConn};
use crate::ws::{self, write_frame, CloseCode, MessageKind, OpCode, ProtocolError, MAX_HEADER_LEN};

use super::worker::{Command, Topics, WorkerShared};
use super::Control;

/// An application: how it answers HTTP requests and what it does with WebSocket messages.
///
/// One value serves every connection on every worker thread, so it is `Send + Sync`; state
/// that belongs to one connection lives in [`Handler::State`], which the server creates when it
/// accepts the connection and hands to every callback for it.
///
/// # Examples
///
/// ```no_run
/// use berth::http::Request;
/// use berth::server::{Config, Handler, Message, Responder, Server, WebSocket};
///
/// struct App;
///
/// impl Handler for App {
///     type State = ();
///
///     fn on_request(&self, _: &mut (), req: &Request<'_, '_>, res: &mut Responder<'_>) {
///         match req.path() {
///             "/ws" => {
///                 res.websocket(req);
///             }
///             _ => {
///                 let _ = res.send(200, &[("Content-Type", b"text/plain")], b"hello\n");
///             }
///         }
///     }
///
///     fn on_message(&self, _: &mut (), ws: &mut WebSocket<'_>, msg: Message<'_>) {
///         let _ = ws.send(msg); // echo
///     }
/// }
///
/// Server::new(Config::default()).listen("127.0.0.1:8080")?.run(App)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Per-connection application state, created with `Default` when the connection is
    /// accepted and dropped when it closes. Use `()` when there is none.
    type State: Default + Send + 'static;

    /// A request head arrived. Answer with [`Responder::send`] (or
    /// [`Responder::start`]/[`write`](Responder::write)/[`end`](Responder::end)), or accept a
    /// WebSocket upgrade with [`Responder::websocket`] or [`Responder::upgrade`]. The answer may
    /// also wait for the body: its bytes arrive in [`Handler::on_body`], its end in
    /// [`Handler::on_body_end`]. A request still unanswered when its body ends gets a 500.
    fn on_request(&self, state: &mut Self::State, req: &Request<'_, '_>, res: &mut Responder<'_>);

    /// A piece of the current request's body (already de-chunked). The default ignores it.
    fn on_body(&self, state: &mut Self::State, data: &[u8], res: &mut Responder<'_>) {
        let _ = (state, data, res);
    }

    /// The current request's body is complete (immediately after `on_request` for a request
    /// without one). The default does nothing.
    fn on_body_end(&self, state: &mut Self::State, res: &mut Responder<'_>) {
        let _ = (state, res);
    }

    /// A WebSocket connection is open (the `101` was written). The default does nothing.
    fn on_open(&self, state: &mut Self::State, ws: &mut WebSocket<'_>) {
        let _ = (state, ws);
    }

    /// A whole message arrived. The slice borrows the receive buffer: copy what must outlive
    /// the call. The default does nothing.
    fn on_message(&self, state: &mut Self::State, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let _ = (state, ws, msg);
    }

    /// The WebSocket connection's write buffer drained below its low-water mark after having
    /// been above its high-water mark: a producer that paused may resume. The default does
    /// nothing.
    fn on_drain(&self, state: &mut Self::State, ws: &mut WebSocket<'_>) {
        let _ = (state, ws);
    }

    /// The WebSocket connection is closing or closed, for the reason given; called once per
    /// connection that was opened. Topic subscriptions are dropped by the server. Nothing
    /// more can be sent on this connection, but [`Closed::control`] reaches everyone else (to
    /// tell a room that someone left, for instance).
    fn on_close(&self, state: &mut Self::State, closed: Closed<'_>) {
        let _ = (state, closed);
    }
}

/// A WebSocket message, borrowed from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message, already checked to be UTF-8.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Text or binary.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Text(_) => MessageKind::Text,
            Message::Binary(_) => MessageKind::Binary,
        }
    }
}

/// A WebSocket connection that has ended, as given to [`Handler::on_close`]: which one, why,
/// and the server's [`Control`].
#[derive(Debug, Clone, Copy)]
pub struct Closed<'a> {
    pub(crate) id: ConnId,
    pub(crate) reason: CloseReason<'a>,
    pub(crate) control: &'a Control,
}

impl<'a> Closed<'a> {
    /// The connection that ended.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Why it ended.
    pub fn reason(&self) -> CloseReason<'a> {
        self.reason
    }

    /// The server-wide handle: publish to topics, read counters, start a shutdown.
    pub fn control(&self) -> &'a Control {
        self.control
    }
}

/// Why a WebSocket connection ended, as given to [`Handler::on_close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason<'a> {
    /// The peer sent Close, with this code and reason (none if its Close had no payload).
    Peer(Option<CloseCode>, &'a str),
    /// The application closed the connection with this code.
    Local(CloseCode),
    /// The peer broke the protocol; a Close with [`ProtocolError::close_code`] was sent.
    Protocol(ProtocolError),
    /// The peer did not answer a ping in time, or did not finish the close handshake.
    Timeout,
    /// The peer did not read what was sent to it in time, or more was queued for it than
    /// [`Config::max_write_buffer`](super::Config::max_write_buffer) allows (1008 was sent).
    SlowConsumer,
    /// The server is shutting down (1001 was sent).
    Shutdown,
    /// The TCP connection ended without a close handshake (1006): reset, or EOF.
    Abnormal,
}

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closing or closed (a Close was sent or received): nothing more may
    /// be sent on it. Drop the message.
    Closed,
    /// The connection's write buffer would go past
    /// [`Config::max_write_buffer`](super::Config::max_write_buffer); the message was not queued.
    /// The peer is reading slowly: wait for [`Handler::on_drain`], or drop messages.
    Full,
    /// A control frame payload over 125 bytes, a Close reason over 123, or a close code that
    /// may not be sent (a caller bug).
    Invalid,
    /// The server's command queue to the connection's worker is full (cross-thread sends).
    Busy,
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SendError::Closed => "connection is closing or closed",
            SendError::Full => "write buffer full",
            SendError::Invalid => "invalid control frame or close code",
            SendError::Busy => "worker command queue full",
        })
    }
}

impl std::error::Error for SendError {}

/// A connection's identity: its worker, slab key and generation. Unique among the
/// connections open at one time; a closed connection's id is not reused for a long while.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) worker: u32,
    pub(crate) key: u32,
    pub(crate) gen: u32,
}

impl core::fmt::Display for ConnId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}.{}", self.worker, self.key, self.gen)
    }
}

/// The answer to the current HTTP request, written into the connection's write buffer.
///
/// The writer owns the framing headers (`Content-Length`, `Transfer-Encoding`,
/// `Connection`, `Date`), answers `HEAD` without a body and adds `Connection: close` when the
/// connection will close. Where the exchange stands is the core's [`ServerConn`] state; the
/// view keeps none of its own beyond the callback it is lent to.
pub struct Responder<'a> {
    pub(crate) conn: &'a mut ServerConn,
    pub(crate) out: &'a mut Vec<u8>,
    pub(crate) date: &'a DateCache,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) buffered: usize,
    pub(crate) control: &'a Control,
    /// During this callback the response could not be ended with its declared length: its
    /// framing is broken, so the session closes the connection once the output is flushed.
    pub(crate) broken: bool,
}

impl core::fmt::Debug for Responder<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Responder")
            .field("peer", &self.peer)
            .field("started", &self.is_started())
            .field("open", &self.conn.is_response_open())
            .finish_non_exhaustive()
    }
}

impl Responder<'_> {
    /// A whole response: status, header fields and body.
    ///
    /// # Errors
    ///
    /// A [`ResponseError`] if a response was already started or a header is not allowed
    /// (framing headers belong to the writer; CR/LF in values is refused). Nothing is written.
    pub fn send(
        &mut self,
        status: u16,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> Result<(), ResponseError> {
        self.start(&ResponseHead {
            status,
            headers,
            body: ResponseBody::Length(body.len() as u64),
            close: false,
        })?;
        self.write(body)?;
        self.end()
    }

    /// Start a response whose body follows in [`write`](Responder::write) calls, with the
    /// framing `head.body` declares (`Chunked` for a length not known in advance).
    ///
    /// # Errors
    ///
    /// As [`Responder::send`].
    pub fn start(&mut self, head: &ResponseHead<'_>) -> Result<(), ResponseError> {
        self.conn.write_head(head, self.date, self.out)
    }

    /// A piece of the body of a started response.
    ///
    /// # Errors
    ///
    /// [`ResponseError::NoResponse`] before [`start`](Responder::start);
    /// [`ResponseError::BodyTooLong`] past a declared length.
    pub fn write(&mut self, data: &[u8]) -> Result<(), ResponseError> {
        self.conn.write_body(data, self.out)
    }

    /// End the body of a started response.
    ///
    /// The response may end before the request body has been read to its end: it is complete
    /// on the wire at once, the rest of the body still arrives in [`Handler::on_body`], and
    /// the connection carries on to the next request after it.
    ///
    /// # Errors
    ///
    /// [`ResponseError::NoResponse`] before [`start`](Responder::start) or after the response
    /// ended; [`ResponseError::BodyTooShort`] before a declared length was written (the
    /// connection will close, since its framing is broken).
    pub fn end(&mut self) -> Result<(), ResponseError> {
        let result = self.conn.write_end(self.out);
        if result == Err(ResponseError::BodyTooShort) {
            self.broken = true;
        }
        result
    }

    /// Accept the request as a WebSocket upgrade with no subprotocol, or answer it with the
    /// refusal its [`HandshakeError`] calls for (400, 405 or 426). Returns whether the
    /// connection switches to WebSocket (after which [`Handler::on_open`] is called).
    pub fn websocket(&mut self, req: &Request<'_, '_>) -> bool {
        match Upgrade::parse(req) {
            Ok(up) => self.upgrade(&up, None).is_ok(),
            Err(e) => {
                self.reject(e);
                false
            }
        }
    }

    /// Accept a validated upgrade, speaking `protocol` (one the client offered, see
    /// [`Upgrade::protocols`]). Check [`Upgrade::origin`] first where browsers connect.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::ProtocolNotOffered`] if `protocol` was not offered; a 500 is written.
    pub fn upgrade(
        &mut self,
        up: &Upgrade<'_, '_>,
        protocol: Option<&str>,
    ) -> Result<(), HandshakeError> {
        let accept = match up.accept(protocol) {
            Ok(accept) => accept,
            Err(e) => {
                self.reject(e);
                return Err(e);
            }
        };
        let head = ResponseHead {
            status: 101,
            headers: &accept.headers(),
            body: ResponseBody::Empty,
            close: false,
        };
        // The request had a body or the response was already started: a caller bug.
        self.start(&head).map_err(|_| HandshakeError::NotAnUpgrade)
    }

    /// Refuse an upgrade with the status and header fields `e` calls for, and close.
    pub fn reject(&mut self, e: HandshakeError) {
        let head = ResponseHead {
            status: e.status(),
            headers: e.headers(),
            body: ResponseBody::Length(0),
            close: true,
        };
        if self.start(&head).is_ok() {
            let _ = self.end();
        }
    }

    /// Has a response head been written for this request?
    pub fn is_started(&self) -> bool {
        !self.conn.wants_response()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The listening address the connection came in on (which of several ports, say).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Bytes queued on this connection and not yet taken by the socket, before this call's
    /// writes.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// The server-wide handle: publish to topics, read counters, shut down.
    pub fn control(&self) -> &Control {
        self.control
    }
}

/// A [`CloseReason`] without borrowed parts, kept by the runtime until it is reported: why the
/// connection is closing, once known (the first cause wins).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ended {
    Local(CloseCode),
    Protocol(ProtocolError),
    Timeout,
    SlowConsumer,
    Shutdown,
}

impl Ended {
    pub(crate) fn as_reason(self) -> CloseReason<'static> {
        match self {
            Ended::Local(code) => CloseReason::Local(code),
            Ended::Protocol(e) => CloseReason::Protocol(e),
            Ended::Timeout => CloseReason::Timeout,
            Ended::SlowConsumer => CloseReason::SlowConsumer,
            Ended::Shutdown => CloseReason::Shutdown,
        }
    }
}

/// A WebSocket connection, as seen from a callback: send to it, close it, subscribe it to
/// topics, or take a [`Sender`] to reach it from elsewhere.
///
/// Whether the connection is open or closing is the core's state: the view borrows the
/// connection's [`ws::Writer`] (its sending side and close handshake) and drives it; a send
/// checks it, and [`close`](WebSocket::close) writes the Close through it at once.
pub struct WebSocket<'a> {
    pub(crate) id: ConnId,
    pub(crate) writer: &'a mut ws::Writer,
    /// Why the connection is closing, for [`Handler::on_close`]; set here when the application
    /// closes it first.
    pub(crate) ended: &'a mut Option<Ended>,
    pub(crate) out: &'a mut Vec<u8>,
    /// Bytes at the front of `out` the socket has already taken.
    pub(crate) out_pos: usize,
    pub(crate) max_write_buffer: usize,
    pub(crate) topics: &'a mut Topics,
    pub(crate) subs: &'a mut Vec<u32>,
    pub(crate) worker: &'a Arc<WorkerShared>,
    pub(crate) control: &'a Control,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
}

impl core::fmt::Debug for WebSocket<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WebSocket")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("buffered", &self.buffered())
            .finish_non_exhaustive()
    }
}

/// `msg` as one server-role frame in a buffer of its own, for a message that leaves the
/// callback: a [`Sender`]'s, or a topic's (encoded once, copied to every subscriber).
pub(crate) fn message_frame(msg: Message<'_>) -> Vec<u8> {
    let payload = msg.as_bytes();
    let mut frame = Vec::with_capacity(payload.len() + MAX_HEADER_LEN);
    write_frame(opcode_of(msg.kind()), true, None, payload, &mut frame);
    frame
}

/// The core's refusal as the application sees it. The view checks the connection's state and
/// the payload first, so only a caller bug the view does not check gets here.
fn send_error(e: ws::SendError) -> SendError {
    match e {
        ws::SendError::Closing => SendError::Closed,
        _ => SendError::Invalid,
    }
}

fn opcode_of(kind: MessageKind) -> OpCode {
    match kind {
        MessageKind::Text => OpCode::Text,
        MessageKind::Binary => OpCode::Binary,
    }
}

impl WebSocket<'_> {
    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The listening address the connection came in on (which of several ports, say).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Bytes queued for this connection and not yet taken by the socket.
    pub fn buffered(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Can `len` more payload bytes be queued? [`SendError::Closed`] once this side sent or
    /// received Close, then [`SendError::Full`] past the write buffer's bound.
    fn check_send(&self, len: usize) -> Result<(), SendError> {
        if self.writer.is_closing() {
            return Err(SendError::Closed);
        }
        if self.buffered() + len + MAX_HEADER_LEN > self.max_write_buffer {
            return Err(SendError::Full);
        }
        Ok(())
    }

    /// Queue a whole message of `kind` through the core.
    fn message(&mut self, kind: MessageKind, payload: &[u8]) -> Result<(), SendError> {
        self.check_send(payload.len())?;
        self.writer
            .send(kind, payload, true, self.out)
            .map_err(send_error)
    }

    /// Queue a message (text or binary, as given).
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] once Close was sent or received; [`SendError::Full`] past the
    /// write buffer's bound.
    pub fn send(&mut self, msg: Message<'_>) -> Result<(), SendError> {
        self.message(msg.kind(), msg.as_bytes())
    }

    /// Queue a text message.
    ///
    /// # Errors
    ///
    /// As [`WebSocket::send`].
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.message(MessageKind::Text, text.as_bytes())
    }

    /// Queue a binary message.
    ///
    /// # Errors
    ///
    /// As [`WebSocket::send`].
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.message(MessageKind::Binary, data)
    }

    /// Queue a ping; the server also pings idle connections by itself
    /// ([`Timeouts::ping`](super::Timeouts::ping)).
    ///
    /// # Errors
    ///
    /// [`SendError::Invalid`] over 125 bytes, else as [`WebSocket::send`].
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        if payload.len() > crate::limits::MAX_CONTROL_PAYLOAD {
            return Err(SendError::Invalid);
        }
        self.check_send(payload.len())?;
        self.writer.send_ping(payload, self.out).map_err(send_error)
    }

    /// Start the close handshake with `code` and `reason` (at most 123 bytes). Messages the
    /// peer sent before its Close still arrive; [`Handler::on_close`] follows with
    /// [`CloseReason::Local`].
    ///
    /// # Errors
    ///
    /// [`SendError::Invalid`] for a code that may not be sent or a long reason;
    /// [`SendError::Closed`] if Close was already sent or received.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        if !code.is_sendable() || reason.len() > 123 {
            return Err(SendError::Invalid);
        }
        // Checked here, not left to the core: after the peer's Close the core would take
        // this Close as the answer to it.
        if self.writer.is_closing() {
            return Err(SendError::Closed);
        }
        self.writer
            .close(code, reason, self.out)
            .map_err(send_error)?;
        self.ended.get_or_insert(Ended::Local(code));
        Ok(())
    }

    /// Subscribe this connection to `topic`; see [`Control::publish`].
    pub fn subscribe(&mut self, topic: &str) {
        let index = self.topics.subscribe(topic, self.id.key, self.id.gen);
        if !self.subs.contains(&index) {
            self.subs.push(index);
        }
    }

    /// Unsubscribe this connection from `topic`.
    pub fn unsubscribe(&mut self, topic: &str) {
        if let Some(index) = self.topics.unsubscribe(topic, self.id.key) {
            self.subs.retain(|&t| t != index);
        }
    }

    /// Publish a message to every subscriber of `topic` on every worker, this connection
    /// included if it is subscribed. Shorthand for [`Control::publish`].
    pub fn publish(&self, topic: &str, msg: Message<'_>) {
        self.control.publish(topic, msg);
    }

    /// A handle that reaches this connection from any thread.
    pub fn sender(&self) -> Sender {
        Sender {
            worker: Arc::clone(self.worker),
            id: self.id,
        }
    }

    /// The server-wide handle: publish to topics, read counters, shut down.
    pub fn control(&self) -> &Control {
        self.control
    }
}

/// Reaches one WebSocket connection from any thread: cheap to clone, safe to keep after the
/// connection closed (sends then fail with [`SendError::Closed`] or are dropped).
///
/// Each send copies the message into one allocation and wakes the connection's worker.
#[derive(Clone)]
pub struct Sender {
    pub(crate) worker: Arc<WorkerShared>,
    pub(crate) id: ConnId,
}

impl core::fmt::Debug for Sender {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sender").field("id", &self.id).finish()
    }
}

impl Sender {
    /// The connection this sender reaches.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Queue a message. Delivery is asynchronous: a connection that closed in the meantime
    /// drops it, and one whose buffer is over its bound is closed as a slow consumer.
    ///
    /// # Errors
    ///
    /// [`SendError::Busy`] if the worker's command queue is full.
    pub fn send(&self, msg: Message<'_>) -> Result<(), SendError> {
        self.worker.push(Command::Frame {
            key: self.id.key,
            gen: self.id.gen,
            frame: message_frame(msg),
        })
    }

    /// Queue a text message; see [`Sender::send`].
    ///
    /// # Errors
    ///
    /// As [`Sender::send`].
    pub fn send_text(&self, text: &str) -> Result<(), SendError> {
        self.send(Message::Text(text))
    }

    /// Queue a binary message; see [`Sender::send`].
    ///
    /// # Errors
    ///
    /// As [`Sender::send`].
    pub fn send_binary(&self, data: &[u8]) -> Result<(), SendError> {
        self.send(Message::Binary(data))
    }

    /// Close the connection with `code` and `reason` (at most 123 bytes).
    ///
    /// # Errors
    ///
    /// [`SendError::Invalid`] for a code that may not be sent or a long reason;
    /// [`SendError::Busy`] if the worker's queue is full.
    pub fn close(&self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        if !code.is_sendable() || reason.len() > 123 {
            return Err(SendError::Invalid);
        }
        self.worker.push(Command::Close {
            key: self.id.key,
            gen: self.id.gen,
            code,
            reason: reason.into(),
        })
    }
}
