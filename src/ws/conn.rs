//! [`Conn`]: one WebSocket connection, either role, as a sans-I/O state machine.
//!
//! Received bytes go in through [`Conn::handle_input`], which unmasks them in place and returns
//! one [`Event`] at a time; outgoing frames are written into the caller's buffer by the `send_*`
//! methods and [`Conn::poll_transmit`] (automatic pongs and close replies). See `LIFECYCLE.md`
//! beside this file for the close handshake.
//!
//! A message whose frame sits whole in the receive buffer is handed out as a slice of that
//! buffer: no copy. Fragmented messages, and frames larger than what has arrived, are copied
//! piece by piece into one reassembly buffer bounded by [`Limits::max_message`], so the
//! runtime's receive buffer never has to hold a whole large frame.
//!
//! Extension hook: no extension is negotiated yet, so every RSV bit is refused in `check`.
//! permessage-deflate (RFC 7692) will allow RSV1 on a message's first frame there, send such
//! messages through the streaming path (never the borrowed fast path), and decompress into the
//! reassembly buffer.

use super::close::{CloseCode, CloseFrame};
use super::encoder;
use super::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use super::mask::{apply_mask, apply_mask_at};
use super::utf8::{as_text, Reassembly};
use super::{ProtocolError, SendError};
use crate::limits::MAX_CONTROL_PAYLOAD;
use crate::{Limits, Status};

/// Which end of the connection this is (RFC 6455 §5.1: clients mask, servers do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepts masked frames and sends unmasked ones.
    Server,
    /// Accepts unmasked frames and masks every frame it sends.
    Client,
}

/// The two kinds of data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// UTF-8 text.
    Text,
    /// Arbitrary bytes.
    Binary,
}

/// Behaviour that is not a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Answer every ping with a pong automatically (the pong is queued for
    /// [`Conn::poll_transmit`]). Default `true`. When `false`, the application answers with
    /// [`Conn::send_pong`].
    pub auto_pong: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { auto_pong: true }
    }
}

/// What [`Conn::handle_input`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A complete text message, validated as UTF-8.
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A ping with its payload. With [`Config::auto_pong`], the pong is already queued.
    Ping(&'a [u8]),
    /// A pong with its payload: the answer to [`Conn::send_ping`] (or unsolicited).
    Pong(&'a [u8]),
    /// The peer's Close frame; `None` if it carried no status code (reported as 1005). If this
    /// side had not sent Close yet, the reply is queued for [`Conn::poll_transmit`].
    Close(Option<CloseFrame<'a>>),
    /// More bytes are needed.
    NeedData,
    /// The close handshake is over: nothing more will be read. Flush and close the socket.
    Closed,
}

/// Where the close handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// This side sent Close and waits for the peer's.
    CloseSent,
    /// The peer sent Close; this side's reply is queued.
    CloseReceived,
    /// Both Close frames have been exchanged.
    Closed,
    /// The peer broke the protocol; a Close with the error's code is queued or sent.
    Failed(ProtocolError),
}

/// A data frame whose payload is being copied into the reassembly buffer.
#[derive(Debug, Clone, Copy)]
struct Streaming {
    remaining: u64,
    mask: Option<[u8; 4]>,
    /// Payload bytes of this frame already seen (the mask phase).
    offset: usize,
    fin: bool,
}

/// A control frame waiting to be sent.
#[derive(Debug, Clone, Copy)]
struct Pending {
    len: usize,
    payload: [u8; MAX_CONTROL_PAYLOAD],
}

impl Pending {
    fn new(parts: &[&[u8]]) -> Self {
        let mut p = Pending {
            len: 0,
            payload: [0; MAX_CONTROL_PAYLOAD],
        };
        for part in parts {
            let end = (p.len + part.len()).min(MAX_CONTROL_PAYLOAD);
            let n = end - p.len;
            if let (Some(dst), Some(src)) = (p.payload.get_mut(p.len..end), part.get(..n)) {
                dst.copy_from_slice(src);
            }
            p.len = end;
        }
        p
    }

    fn as_slice(&self) -> &[u8] {
        self.payload.get(..self.len).unwrap_or_default()
    }
}

/// What one call to `step` found, as offsets, so the borrow of the input is taken once at the
/// end.
enum Step {
    NeedData,
    /// The close handshake is over: nothing more is read.
    Closed,
    /// A whole message in `input[start..end]`.
    Input(MessageKind, usize, usize),
    /// A whole message in the reassembly buffer.
    Buffered(MessageKind),
    Ping(usize, usize),
    Pong(usize, usize),
    /// A close frame; the reason is `input[start..end]`.
    Close(Option<CloseCode>, usize, usize),
}

/// A frame [`Conn::small_message`] recognised: payload range, kind and mask.
struct SmallFrame {
    start: usize,
    end: usize,
    kind: MessageKind,
    mask: Option<[u8; 4]>,
}

/// The source of masking keys for the client role: fresh, unpredictable four bytes per frame
/// (RFC 6455 §10.3).
pub type MaskSource = Box<dyn FnMut() -> [u8; 4] + Send>;

/// One WebSocket connection, without I/O.
///
/// ```
/// use berth::ws::{Conn, Event};
/// let mut server = Conn::server(&berth::Limits::default());
/// // RFC 6455 §5.7: a masked "Hello" from a client.
/// let mut input = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
/// let (used, event) = server.handle_input(&mut input)?;
/// assert_eq!((used, event), (11, Event::Text("Hello")));
///
/// let mut out = Vec::new();
/// server.send_text("Hello", &mut out).unwrap();
/// assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
/// # Ok::<(), berth::ws::ProtocolError>(())
/// ```
pub struct Conn {
    config: Config,
    max_frame_payload: u64,
    max_message: usize,
    max_fragments: u32,
    /// The kind of the fragmented (or streamed) message being received, if any.
    receiving: Option<MessageKind>,
    fragments: u32,
    streaming: Option<Streaming>,
    message: Reassembly,
    /// The reassembly buffer holds a message handed out by the previous call.
    delivered: bool,
    /// The close handshake and the sending side.
    tx: Writer,
}

/// A [`Conn`]'s sending side and where its close handshake stands: what sends, closes and
/// [`Conn::poll_transmit`] need. Borrowed from the connection with [`Conn::writer`], or beside
/// an event with [`Conn::handle_input_split`], so that a message borrowed from the connection
/// can be answered while it is still held.
pub struct Writer {
    role: Role,
    state: State,
    /// The kind of the fragmented message being sent, if any.
    sending: Option<MessageKind>,
    pending_pong: Option<Pending>,
    pending_close: Option<Pending>,
    mask_source: Option<MaskSource>,
}

impl core::fmt::Debug for Writer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Writer")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("sending", &self.sending)
            .finish_non_exhaustive()
    }
}

impl core::fmt::Debug for Conn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Conn")
            .field("role", &self.tx.role)
            .field("state", &self.tx.state)
            .field("receiving", &self.receiving)
            .field("buffered", &self.message.len())
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// A server-role connection with the default [`Config`].
    pub fn server(limits: &Limits) -> Self {
        Self::new(Role::Server, limits, Config::default(), None)
    }

    /// A client-role connection; `mask_source` supplies a fresh masking key per frame.
    pub fn client(limits: &Limits, mask_source: MaskSource) -> Self {
        Self::new(Role::Client, limits, Config::default(), Some(mask_source))
    }

    /// A connection with an explicit role and config. A client without a `mask_source` masks
    /// with keys from SipHash under std's per-process random keys (unpredictable, as RFC 6455
    /// §5.3 requires, at a hash per frame); pass a faster source of randomness if you have one.
    pub fn new(
        role: Role,
        limits: &Limits,
        config: Config,
        mask_source: Option<MaskSource>,
    ) -> Self {
        Conn {
            config,
            max_frame_payload: limits.max_frame_payload,
            max_message: limits.max_message,
            max_fragments: limits.max_fragments,
            receiving: None,
            fragments: 0,
            streaming: None,
            message: Reassembly::default(),
            delivered: false,
            tx: Writer {
                role,
                state: State::Open,
                sending: None,
                pending_pong: None,
                pending_close: None,
                mask_source,
            },
        }
    }

    /// This connection's role.
    pub fn role(&self) -> Role {
        self.tx.role
    }

    /// Bytes of memory the reassembly buffer holds on to, whether or not a message is in it.
    /// It grows to the largest fragmented message seen (at most [`Limits::max_message`]) and
    /// keeps that capacity so later messages reassemble without allocating.
    pub fn buffer_capacity(&self) -> usize {
        self.message.capacity()
    }

    /// Give the reassembly buffer's memory back, for a connection going idle. A message in
    /// progress keeps its bytes; a delivered one is dropped.
    pub fn shrink_buffers(&mut self) {
        if self.delivered {
            self.message.clear();
            self.delivered = false;
        }
        self.message.shrink();
    }

    /// Bytes of a partly received message held in the reassembly buffer.
    pub fn buffered(&self) -> usize {
        if self.delivered {
            0
        } else {
            self.message.len()
        }
    }

    /// Is the connection finished (close handshake done, or failed with its Close written)?
    /// The runtime flushes its write buffer and closes the socket.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Has this side sent (or queued) a Close frame, so that no more data may be sent?
    pub fn is_closing(&self) -> bool {
        self.tx.is_closing()
    }

    /// Is this side's Close written and the peer's still awaited? See
    /// [`Writer::is_awaiting_close`].
    pub fn is_awaiting_close(&self) -> bool {
        self.tx.is_awaiting_close()
    }

    /// Does [`Conn::poll_transmit`] have a frame to write?
    pub fn wants_transmit(&self) -> bool {
        self.tx.wants_transmit()
    }

    /// The error the connection failed with, if it did.
    pub fn error(&self) -> Option<ProtocolError> {
        self.tx.error()
    }

    /// The sending side and the close handshake, borrowed apart from the receiving side.
    pub fn writer(&mut self) -> &mut Writer {
        &mut self.tx
    }

    /// Write queued control frames; see [`Writer::poll_transmit`].
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        self.tx.poll_transmit(out)
    }

    /// Write a whole text message; see [`Writer::send_text`].
    ///
    /// # Errors
    ///
    /// As [`Writer::send_text`].
    pub fn send_text(&mut self, text: &str, out: &mut Vec<u8>) -> Result<(), SendError> {
        self.tx.send_text(text, out)
    }

    /// Write a whole binary message; see [`Writer::send_binary`].
    ///
    /// # Errors
    ///
    /// As [`Writer::send_text`].
    pub fn send_binary(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        self.tx.send_binary(data, out)
    }

    /// Write one fragment of a message; see [`Writer::send`].
    ///
    /// # Errors
    ///
    /// As [`Writer::send`].
    pub fn send(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        self.tx.send(kind, payload, fin, out)
    }

    /// The header for an unmasked data frame; see [`Writer::data_header`].
    ///
    /// # Errors
    ///
    /// As [`Writer::data_header`].
    pub fn data_header(
        &mut self,
        kind: MessageKind,
        len: u64,
        fin: bool,
    ) -> Result<([u8; MAX_HEADER_LEN], usize), SendError> {
        self.tx.data_header(kind, len, fin)
    }

    /// Write a ping; see [`Writer::send_ping`].
    ///
    /// # Errors
    ///
    /// As [`Writer::send_ping`].
    pub fn send_ping(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        self.tx.send_ping(payload, out)
    }

    /// Write a pong; see [`Writer::send_pong`].
    ///
    /// # Errors
    ///
    /// As [`Writer::send_ping`].
    pub fn send_pong(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        self.tx.send_pong(payload, out)
    }

    /// Start (or answer) the close handshake; see [`Writer::close`].
    ///
    /// # Errors
    ///
    /// As [`Writer::close`].
    pub fn close(
        &mut self,
        code: CloseCode,
        reason: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        self.tx.close(code, reason, out)
    }

    /// Read from `buf`, the received bytes not yet consumed, unmasking them in place.
    ///
    /// Returns how many bytes were consumed (discard them before the next call) and one event;
    /// call again until [`Event::NeedData`]. After an error, a Close frame with
    /// [`ProtocolError::close_code`] is queued: write it with [`Conn::poll_transmit`], then
    /// close the socket.
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`]; the connection stays failed and returns it again.
    #[inline]
    pub fn handle_input<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> Result<(usize, Event<'a>), ProtocolError> {
        let (used, event, _) = self.handle_input_split(buf)?;
        Ok((used, event))
    }

    /// As [`Conn::handle_input`], with the connection's [`Writer`] beside the event: a message
    /// may borrow the connection's reassembly buffer, and the writer answers it (sends,
    /// closes) while it is held.
    ///
    /// # Errors
    ///
    /// As [`Conn::handle_input`].
    #[inline]
    pub fn handle_input_split<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> Result<(usize, Event<'a>, &'a mut Writer), ProtocolError> {
        let (used, step) = self.advance(buf)?;
        let tx = &mut self.tx;
        let message = &self.message;
        let input: &'a [u8] = buf;
        let event = match step {
            Step::NeedData => Event::NeedData,
            Step::Closed => Event::Closed,
            Step::Input(MessageKind::Binary, start, end) => {
                Event::Binary(input.get(start..end).unwrap_or_default())
            }
            Step::Input(MessageKind::Text, start, end) => {
                match as_text(input.get(start..end).unwrap_or_default()) {
                    Some(text) => Event::Text(text),
                    None => return Err(tx.fail(ProtocolError::InvalidUtf8)),
                }
            }
            Step::Buffered(MessageKind::Binary) => Event::Binary(message.bytes()),
            // `finish_message` finished the text, so this is always `Some`.
            Step::Buffered(MessageKind::Text) => Event::Text(message.text().unwrap_or_default()),
            Step::Ping(start, end) => Event::Ping(input.get(start..end).unwrap_or_default()),
            Step::Pong(start, end) => Event::Pong(input.get(start..end).unwrap_or_default()),
            Step::Close(code, start, end) => Event::Close(code.map(|code| {
                CloseFrame {
                    code,
                    // Validated in `on_close`.
                    reason: core::str::from_utf8(input.get(start..end).unwrap_or_default())
                        .unwrap_or_default(),
                }
            })),
        };
        Ok((used, event, tx))
    }

    /// Consume what `buf` holds of the next event, unmasking in place, and say where it lies.
    #[inline]
    fn advance(&mut self, buf: &mut [u8]) -> Result<(usize, Step), ProtocolError> {
        match self.tx.state {
            State::Failed(e) => return Err(e),
            State::CloseReceived | State::Closed => return Ok((buf.len(), Step::Closed)),
            State::Open | State::CloseSent => {}
        }
        // The fast path: one whole small message at the front of the buffer.
        if !self.delivered && self.streaming.is_none() {
            if let Some(frame) = self.small_message(buf) {
                if let Some(key) = frame.mask {
                    apply_mask(buf.get_mut(frame.start..frame.end).unwrap_or_default(), key);
                }
                return Ok((frame.end, Step::Input(frame.kind, frame.start, frame.end)));
            }
        }
        self.advance_general(buf)
    }

    /// Everything but the fast path: fragments, partial frames, control frames, errors.
    #[inline(never)]
    fn advance_general(&mut self, buf: &mut [u8]) -> Result<(usize, Step), ProtocolError> {
        if self.delivered {
            self.message.clear();
            self.delivered = false;
        }
        let (used, step) = match self.step(buf) {
            Ok(found) => found,
            Err(e) => return Err(self.tx.fail(e)),
        };
        if let Step::Buffered(_) = step {
            self.delivered = true;
        }
        Ok((used, step))
    }

    fn step(&mut self, buf: &mut [u8]) -> Result<(usize, Step), ProtocolError> {
        let mut pos = 0;
        loop {
            if let Some(frame) = &mut self.streaming {
                let available = buf.len().saturating_sub(pos);
                let n = usize::try_from(frame.remaining).map_or(available, |r| r.min(available));
                if n > 0 {
                    let chunk = buf.get_mut(pos..pos + n).unwrap_or_default();
                    if let Some(key) = frame.mask {
                        apply_mask_at(chunk, key, frame.offset);
                    }
                    self.message
                        .push(chunk)
                        .map_err(|_| ProtocolError::InvalidUtf8)?;
                    frame.remaining -= n as u64;
                    frame.offset += n;
                    pos += n;
                }
                if frame.remaining > 0 {
                    return Ok((pos, Step::NeedData));
                }
                let fin = frame.fin;
                self.streaming = None;
                if fin {
                    let kind = self.finish_message()?;
                    return Ok((pos, Step::Buffered(kind)));
                }
                continue;
            }

            let rest = buf.get(pos..).unwrap_or_default();
            let (header_len, header) = match FrameHeader::decode(rest)? {
                Status::Partial => return Ok((pos, Step::NeedData)),
                Status::Complete(found) => found,
            };
            self.check(&header)?;
            // `check` bounded the length by limits that fit in memory.
            let len =
                usize::try_from(header.payload_len).map_err(|_| ProtocolError::FrameTooLarge)?;
            let start = pos + header_len;
            let whole = rest.len() >= header_len + len;

            if header.opcode.is_control() {
                if !whole {
                    return Ok((pos, Step::NeedData));
                }
                let end = start + len;
                let payload = buf.get_mut(start..end).unwrap_or_default();
                if let Some(key) = header.mask {
                    apply_mask(payload, key);
                }
                let step = match header.opcode {
                    OpCode::Ping => {
                        if self.config.auto_pong && self.tx.state == State::Open {
                            self.tx.pending_pong = Some(Pending::new(&[payload]));
                        }
                        Step::Ping(start, end)
                    }
                    OpCode::Pong => Step::Pong(start, end),
                    _ => self.on_close(payload, start)?,
                };
                return Ok((end, step));
            }

            let kind = match header.opcode {
                OpCode::Text => Some(MessageKind::Text),
                OpCode::Binary => Some(MessageKind::Binary),
                _ => None,
            };
            if let Some(kind) = kind {
                if header.fin && whole {
                    // The common case: a whole message in one frame, already in the buffer.
                    let end = start + len;
                    if let Some(key) = header.mask {
                        apply_mask(buf.get_mut(start..end).unwrap_or_default(), key);
                    }
                    return Ok((end, Step::Input(kind, start, end)));
                }
                self.receiving = Some(kind);
                self.message.start(kind == MessageKind::Text);
                self.fragments = 0;
            }
            self.fragments = self.fragments.saturating_add(1);
            self.streaming = Some(Streaming {
                remaining: header.payload_len,
                mask: header.mask,
                offset: 0,
                fin: header.fin,
            });
            pos = start;
        }
    }

    /// The fast path for the most common frame: a whole unfragmented text or binary message
    /// with a 7-bit length at the start of `buf`, masked as the role requires, no RSV bits,
    /// within the limits, and no fragmented message in progress. `None` sends the frame through
    /// the general path, which decides everything this skips.
    #[inline]
    fn small_message(&self, buf: &[u8]) -> Option<SmallFrame> {
        let &[b0, b1, ..] = buf else { return None };
        let kind = match b0 {
            0x81 => MessageKind::Text,
            0x82 => MessageKind::Binary,
            _ => return None,
        };
        let len = usize::from(b1 & 0x7f);
        let mask = match (self.tx.role, b1 & 0x80 != 0) {
            (Role::Server, true) => Some(<[u8; 4]>::try_from(buf.get(2..6)?).ok()?),
            (Role::Client, false) => None,
            _ => return None,
        };
        let start = if mask.is_some() { 6 } else { 2 };
        let fits = len < 126
            && self.receiving.is_none()
            && len as u64 <= self.max_frame_payload
            && len <= self.max_message
            && self.max_fragments >= 1
            && buf.len() >= start + len;
        fits.then_some(SmallFrame {
            start,
            end: start + len,
            kind,
            mask,
        })
    }

    /// The connection-level rules a frame header must satisfy, checked before any payload is
    /// read or any memory reserved for it.
    fn check(&self, h: &FrameHeader) -> Result<(), ProtocolError> {
        match (self.tx.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        let starts_message = matches!(h.opcode, OpCode::Text | OpCode::Binary);
        if h.rsv1 || h.rsv2 || h.rsv3 {
            return Err(ProtocolError::ReservedBits);
        }
        if h.opcode.is_control() {
            return Ok(());
        }
        match (h.opcode, self.receiving) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation)
            }
            _ => {}
        }
        if h.payload_len > self.max_frame_payload {
            return Err(ProtocolError::FrameTooLarge);
        }
        let so_far = if starts_message {
            0
        } else {
            self.message.len() as u64
        };
        if so_far.saturating_add(h.payload_len) > self.max_message as u64 {
            return Err(ProtocolError::MessageTooLarge);
        }
        let fragments = if starts_message {
            1
        } else {
            self.fragments.saturating_add(1)
        };
        if fragments > self.max_fragments {
            return Err(ProtocolError::TooManyFragments);
        }
        Ok(())
    }

    /// The last frame of a reassembled message arrived.
    fn finish_message(&mut self) -> Result<MessageKind, ProtocolError> {
        let kind = self.receiving.take().unwrap_or(MessageKind::Binary);
        self.message
            .finish()
            .map_err(|_| ProtocolError::InvalidUtf8)?;
        self.fragments = 0;
        Ok(kind)
    }

    /// A Close frame arrived (RFC 6455 §5.5.1, §7.1.5, §7.4).
    fn on_close(&mut self, payload: &[u8], start: usize) -> Result<Step, ProtocolError> {
        let code = match payload {
            [] => None,
            [_] => return Err(ProtocolError::InvalidClosePayload),
            [hi, lo, reason @ ..] => {
                let code = CloseCode::from(u16::from_be_bytes([*hi, *lo]));
                if !code.is_sendable() {
                    return Err(ProtocolError::InvalidCloseCode);
                }
                if simdutf8::basic::from_utf8(reason).is_err() {
                    return Err(ProtocolError::InvalidUtf8);
                }
                Some(code)
            }
        };
        self.tx.state = match self.tx.state {
            State::Open => {
                // Echo the status code (RFC 6455 §5.5.1), without the reason.
                let echo = code.map(|c| c.as_u16().to_be_bytes());
                self.tx.pending_close = Some(Pending::new(&[echo.as_ref().map_or(&[][..], |e| e)]));
                self.tx.pending_pong = None;
                State::CloseReceived
            }
            _ => State::Closed,
        };
        Ok(Step::Close(
            code,
            start + 2.min(payload.len()),
            start + payload.len(),
        ))
    }
}

impl Writer {
    /// Is the connection finished (close handshake done, or failed with its Close written)?
    /// The runtime flushes its write buffer and closes the socket.
    pub fn is_closed(&self) -> bool {
        match self.state {
            State::Closed => true,
            State::Failed(_) => self.pending_close.is_none(),
            _ => false,
        }
    }

    /// Has this side sent (or queued) a Close frame, so that no more data may be sent?
    pub fn is_closing(&self) -> bool {
        self.state != State::Open
    }

    /// Is this side's Close written and the peer's still awaited? The close handshake then
    /// waits on the peer alone: a runtime times that wait once the Close reached the socket.
    pub fn is_awaiting_close(&self) -> bool {
        self.state == State::CloseSent
    }

    /// Does [`Writer::poll_transmit`] have a frame to write?
    pub fn wants_transmit(&self) -> bool {
        self.pending_close.is_some() || (self.pending_pong.is_some() && self.state == State::Open)
    }

    /// The error the connection failed with, if it did.
    pub fn error(&self) -> Option<ProtocolError> {
        match self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Fail the connection with `e`: queue a Close carrying its code, unless one was sent.
    fn fail(&mut self, e: ProtocolError) -> ProtocolError {
        if self.state == State::Open {
            let code = e.close_code().as_u16().to_be_bytes();
            self.pending_close = Some(Pending::new(&[&code]));
        }
        self.pending_pong = None;
        self.state = State::Failed(e);
        e
    }

    /// Write queued control frames (an automatic pong, a close reply or a close after an
    /// error) into `out`. Returns whether anything was written.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        let mut wrote = false;
        if let Some(pong) = self.pending_pong.take() {
            if self.state == State::Open {
                self.write_frame(OpCode::Pong, true, pong.as_slice(), out);
                wrote = true;
            }
        }
        if let Some(close) = self.pending_close.take() {
            self.write_frame(OpCode::Close, true, close.as_slice(), out);
            if self.state == State::CloseReceived {
                self.state = State::Closed;
            }
            wrote = true;
        }
        wrote
    }

    /// Write a whole text message.
    ///
    /// # Errors
    ///
    /// [`SendError::Closing`] after Close was sent or received;
    /// [`SendError::FragmentMismatch`] inside a fragmented message.
    pub fn send_text(&mut self, text: &str, out: &mut Vec<u8>) -> Result<(), SendError> {
        self.send(MessageKind::Text, text.as_bytes(), true, out)
    }

    /// Write a whole binary message.
    ///
    /// # Errors
    ///
    /// As [`Conn::send_text`].
    pub fn send_binary(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        self.send(MessageKind::Binary, data, true, out)
    }

    /// Write one fragment of a message of `kind`; `fin` marks the last. The first fragment
    /// carries the kind's opcode, the rest are continuations. Text fragments may split a
    /// UTF-8 code point; the whole message must be UTF-8.
    ///
    /// # Errors
    ///
    /// [`SendError::Closing`] after Close; [`SendError::FragmentMismatch`] if `kind` differs
    /// from the message in progress.
    pub fn send(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        let opcode = self.start_data_frame(kind, fin)?;
        self.write_frame(opcode, fin, payload, out);
        Ok(())
    }

    /// The opcode of the next data frame of `kind`, checked against the message in progress;
    /// records whether a fragmented message continues after it.
    fn start_data_frame(&mut self, kind: MessageKind, fin: bool) -> Result<OpCode, SendError> {
        if self.state != State::Open {
            return Err(SendError::Closing);
        }
        let opcode = match (self.sending, kind) {
            (None, MessageKind::Text) => OpCode::Text,
            (None, MessageKind::Binary) => OpCode::Binary,
            (Some(current), kind) if current == kind => OpCode::Continuation,
            _ => return Err(SendError::FragmentMismatch),
        };
        self.sending = if fin { None } else { Some(kind) };
        Ok(opcode)
    }

    /// The header for an unmasked data frame of `len` bytes, for a server that sends header
    /// and payload as two slices (a vectored write) instead of copying the payload.
    ///
    /// # Errors
    ///
    /// As [`Conn::send`], and [`SendError::MaskRequired`] in the client role, whose frames are
    /// masked and so must be copied anyway: use [`Conn::send`] there.
    pub fn data_header(
        &mut self,
        kind: MessageKind,
        len: u64,
        fin: bool,
    ) -> Result<([u8; MAX_HEADER_LEN], usize), SendError> {
        if self.role == Role::Client {
            return Err(SendError::MaskRequired);
        }
        let opcode = self.start_data_frame(kind, fin)?;
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = encoder::header(opcode, fin, None, len).encode(&mut out);
        Ok((out, n))
    }

    /// Write a ping. Its pong arrives as [`Event::Pong`].
    ///
    /// # Errors
    ///
    /// [`SendError::ControlTooLong`] over 125 bytes; [`SendError::Closing`] after Close.
    pub fn send_ping(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        self.send_control(OpCode::Ping, payload, out)
    }

    /// Write a pong (unsolicited, or the answer to a ping when `auto_pong` is off).
    ///
    /// # Errors
    ///
    /// As [`Conn::send_ping`].
    pub fn send_pong(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        self.send_control(OpCode::Pong, payload, out)
    }

    fn send_control(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::Closing);
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlTooLong);
        }
        self.write_frame(opcode, true, payload, out);
        Ok(())
    }

    /// Start (or answer) the close handshake with `code` and `reason`. After it no data may be
    /// sent; messages that were already in flight may still arrive until the peer's Close.
    ///
    /// # Errors
    ///
    /// [`SendError::InvalidCloseCode`] for a code that may not be sent;
    /// [`SendError::ControlTooLong`] if the reason is over 123 bytes;
    /// [`SendError::Closing`] if this side already sent Close.
    pub fn close(
        &mut self,
        code: CloseCode,
        reason: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        if !code.is_sendable() {
            return Err(SendError::InvalidCloseCode);
        }
        if reason.len() + 2 > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlTooLong);
        }
        let next = match self.state {
            State::Open => State::CloseSent,
            // The application answers the peer's Close itself, replacing the automatic echo.
            State::CloseReceived => State::Closed,
            _ => return Err(SendError::Closing),
        };
        self.pending_close = None;
        self.pending_pong = None;
        let payload = Pending::new(&[&code.as_u16().to_be_bytes(), reason.as_bytes()]);
        self.write_frame(OpCode::Close, true, payload.as_slice(), out);
        self.state = next;
        Ok(())
    }

    fn next_mask(&mut self) -> Option<[u8; 4]> {
        match self.role {
            Role::Server => None,
            Role::Client => Some(match &mut self.mask_source {
                Some(source) => source(),
                None => fallback_mask(),
            }),
        }
    }

    /// Append one frame to `out`, masked with a fresh key in the client role.
    fn write_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8], out: &mut Vec<u8>) {
        let mask = self.next_mask();
        encoder::write_frame(opcode, fin, mask, payload, out);
    }
}

/// A key for a client built without a mask source: SipHash, keyed by std's per-process
/// random `RandomState`, over a per-call counter. RFC 6455 §5.3 wants keys a script cannot
/// predict; this gives that without a dependency, at the cost of a hash per frame. A caller
/// with a faster source of randomness passes it as the mask source.
fn fallback_mask() -> [u8; 4] {
    use core::hash::{BuildHasher, Hasher};
    use core::sync::atomic::{AtomicU64, Ordering};
    use std::collections::hash_map::RandomState;
    use std::sync::OnceLock;
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = KEYS.get_or_init(RandomState::new).build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (hasher.finish() as u32).to_ne_bytes()
}
