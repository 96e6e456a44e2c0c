//! [`ServerConn`]: the server side of one HTTP/1.1 connection as a sans-I/O state machine.
//!
//! The runtime feeds it received bytes with [`ServerConn::handle_input`] and gets
//! [`Event`]s back; the application answers through the `write_*` methods, which serialise into
//! the runtime's write buffer. Requests are answered strictly in order: once a request has been
//! read, the next pipelined one is not parsed until its response is complete
//! ([`Event::Paused`]). See `LIFECYCLE.md` beside this file for the state diagram.

use super::body::{BodyKind, Chunk, ChunkedDecoder, Trailers};
use super::request::{HeaderSlot, Request, RequestParser, Version};
use super::response::{
    check_headers, write_decimal, write_header, write_hex, write_status_line, DateCache,
    ResponseBody, ResponseHead,
};
use super::{ParseError, ResponseError, Status};
use crate::Limits;

/// What [`ServerConn::handle_input`] found in the bytes.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Event<'h, 'b> {
    /// A complete request head. Body events follow, then [`Event::End`].
    Request(Request<'h, 'b>),
    /// Request body bytes, borrowed from the input.
    Data(&'b [u8]),
    /// The request, body and trailers included, is complete.
    End(Trailers<'b>),
    /// More bytes are needed to make progress.
    NeedData,
    /// A request has been read and its response is not complete yet; bytes that follow (a
    /// pipelined request) wait until it is.
    Paused,
    /// A `101 Switching Protocols` response was written: bytes from here on belong to the new
    /// protocol, and this connection object is finished.
    Upgraded,
    /// No further request will be read: the runtime closes once its write buffer is flushed.
    Closed,
}

/// The receiving half: where the connection is in reading requests.
#[derive(Debug, Clone)]
enum Recv {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Reading a body delimited by a `Content-Length`; bytes left.
    Length(u64),
    /// Reading a chunked body.
    Chunked(ChunkedDecoder),
    /// The request is complete; waiting for its response to finish.
    Done,
    /// Switched protocols.
    Upgraded,
    /// No more requests.
    Closed,
    /// The peer broke the protocol; every later call reports the same error.
    Failed(ParseError),
}

/// How the body of the response being written is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutBody {
    /// Bytes left of a `Content-Length`.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Raw bytes ended by closing the connection (chunked body to an HTTP/1.0 client).
    UntilClose,
    /// A body the wire must not carry (HEAD, 304); bytes written are discarded.
    Suppressed,
    /// A status that has no body at all (204); writing bytes is an error.
    Forbidden,
}

/// The sending half: where the connection is in answering the current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Send {
    /// No request is waiting for a response.
    Idle,
    /// A request head was read; its response head is not written yet.
    Ready,
    /// The response head is written; the body is in progress.
    Body(OutBody),
    /// The response is complete but the request body is still arriving: the exchange ends,
    /// and the next request is read, once the body has ended.
    Ended,
}

/// Facts about the request being answered that the response writer needs.
#[derive(Debug, Clone, Copy)]
struct Current {
    version: Version,
    head: bool,
    expect_continue: bool,
    continue_sent: bool,
    upgrade: bool,
}

/// One HTTP/1.1 server connection, without I/O.
///
/// ```
/// use berth::http::{header_slots, DateCache, Event, ResponseBody, ResponseHead, ServerConn};
/// let mut conn = ServerConn::new(&berth::Limits::default());
/// let date = DateCache::new(784_111_777);
/// let input = b"GET /hello HTTP/1.1\r\nHost: example.com\r\n\r\n";
/// let mut out = Vec::new();
///
/// let mut slots = header_slots::<32>();
/// let (used, event) = conn.handle_input(input, &mut slots)?;
/// let Event::Request(req) = event else { panic!("expected a request") };
/// assert_eq!(req.path(), "/hello");
/// let mut slots = header_slots::<32>();
/// let (_, event) = conn.handle_input(&input[used..], &mut slots)?;
/// assert!(matches!(event, Event::End(_)));
///
/// let head = ResponseHead { status: 200, headers: &[], body: ResponseBody::Length(2), close: false };
/// conn.write_head(&head, &date, &mut out).unwrap();
/// conn.write_body(b"hi", &mut out).unwrap();
/// conn.write_end(&mut out).unwrap();
/// assert!(out.starts_with(b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
/// assert!(out.ends_with(b"Content-Length: 2\r\n\r\nhi"));
/// # Ok::<(), berth::http::ParseError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ServerConn {
    limits: Limits,
    parser: RequestParser,
    recv: Recv,
    send: Send,
    current: Current,
    /// The connection continues after the current exchange.
    keep_alive: bool,
    /// The server is shutting down: answer what is in flight, then close.
    draining: bool,
    /// [`ServerConn::write_error`] has written its response.
    error_written: bool,
}

impl ServerConn {
    /// A connection waiting for its first request, enforcing `limits`.
    pub fn new(limits: &Limits) -> Self {
        ServerConn {
            limits: *limits,
            parser: RequestParser::new(limits),
            recv: Recv::Head,
            send: Send::Idle,
            current: Current {
                version: Version::Http11,
                head: false,
                expect_continue: false,
                continue_sent: false,
                upgrade: false,
            },
            keep_alive: true,
            draining: false,
            error_written: false,
        }
    }

    /// Read from `buf`, the bytes received and not yet consumed, and report what they hold.
    ///
    /// Returns how many bytes were consumed (discard them before the next call) and the event.
    /// Header fields of a [`Event::Request`] go into `slots`.
    ///
    /// # Errors
    ///
    /// A [`ParseError`] when the peer broke the protocol or a limit. Answer it with
    /// [`ServerConn::write_error`] and close; the connection stays failed.
    pub fn handle_input<'h, 'b>(
        &mut self,
        buf: &'b [u8],
        slots: &'h mut [HeaderSlot<'b>],
    ) -> Result<(usize, Event<'h, 'b>), ParseError> {
        let result = self.handle_input_inner(buf, slots);
        if let Err(e) = result {
            self.recv = Recv::Failed(e);
        }
        result
    }

    fn handle_input_inner<'h, 'b>(
        &mut self,
        buf: &'b [u8],
        slots: &'h mut [HeaderSlot<'b>],
    ) -> Result<(usize, Event<'h, 'b>), ParseError> {
        match &mut self.recv {
            Recv::Failed(e) => Err(*e),
            Recv::Closed => Ok((0, Event::Closed)),
            Recv::Upgraded => Ok((0, Event::Upgraded)),
            Recv::Done => Ok((0, Event::Paused)),
            Recv::Head => match self.parser.parse(buf, slots)? {
                Status::Partial => Ok((0, Event::NeedData)),
                Status::Complete((len, req)) => {
                    self.start_request(&req);
                    Ok((len, Event::Request(req)))
                }
            },
            Recv::Length(0) => {
                self.end_body();
                Ok((0, Event::End(Trailers::default())))
            }
            Recv::Length(remaining) => {
                if buf.is_empty() {
                    return Ok((0, Event::NeedData));
                }
                let n = usize::try_from(*remaining).map_or(buf.len(), |r| r.min(buf.len()));
                *remaining -= n as u64;
                Ok((n, Event::Data(buf.get(..n).unwrap_or_default())))
            }
            Recv::Chunked(decoder) => match decoder.decode(buf)? {
                (used, Chunk::Data(data)) => Ok((used, Event::Data(data))),
                (used, Chunk::NeedData) => Ok((used, Event::NeedData)),
                (used, Chunk::End(trailers)) => {
                    self.end_body();
                    Ok((used, Event::End(trailers)))
                }
            },
        }
    }

    fn start_request(&mut self, req: &Request<'_, '_>) {
        self.current = Current {
            version: req.version,
            head: req.is_head(),
            expect_continue: req.expect_continue,
            continue_sent: false,
            upgrade: req.upgrade.is_some(),
        };
        self.keep_alive = req.keep_alive && !self.draining;
        self.send = Send::Ready;
        self.recv = match req.body {
            BodyKind::Empty => Recv::Length(0),
            BodyKind::Length(n) => Recv::Length(n),
            BodyKind::Chunked => Recv::Chunked(ChunkedDecoder::new(&self.limits)),
        };
    }

    /// The request body has been read to its end.
    fn end_body(&mut self) {
        self.recv = Recv::Done;
        if self.send == Send::Ended {
            self.end_exchange();
        }
    }

    /// The response is complete: wait for the next request if both the request was read to
    /// its end and the connection persists, else close.
    fn end_exchange(&mut self) {
        self.send = Send::Idle;
        self.recv = match self.recv {
            Recv::Done if self.keep_alive => Recv::Head,
            Recv::Failed(e) => Recv::Failed(e),
            _ => {
                self.keep_alive = false;
                Recv::Closed
            }
        };
    }

    /// The peer closed its sending side. Returns `true` if that cut a request short.
    pub fn handle_eof(&mut self) -> bool {
        let cut = match self.recv {
            Recv::Head => self.parser.is_mid_head(),
            Recv::Length(_) | Recv::Chunked(_) => true,
            _ => false,
        };
        if !matches!(self.recv, Recv::Failed(_) | Recv::Upgraded) {
            self.recv = Recv::Closed;
        }
        if self.send == Send::Ended {
            // The response is out; the rest of its request will not come.
            self.send = Send::Idle;
        }
        self.keep_alive = false;
        cut
    }

    /// The peer did not send the request in time: the runtime's deadline for a request head
    /// (or for the first request after the accept), or for the rest of a body, passed. The core
    /// keeps no clock, so the runtime owns those deadlines and reports the one that passed.
    ///
    /// The connection fails with [`ParseError::Timeout`], as if the peer had sent something
    /// unacceptable: answer it with [`ServerConn::write_error`] (a `408`, unless a response has
    /// started) and close. A connection that has already failed keeps its first error, and one
    /// that has switched protocols is not affected.
    pub fn handle_timeout(&mut self) {
        if !matches!(self.recv, Recv::Failed(_) | Recv::Upgraded) {
            self.recv = Recv::Failed(ParseError::Timeout);
            self.keep_alive = false;
        }
    }

    /// Start draining for a graceful shutdown: responses from now on carry
    /// `Connection: close`, and a connection between requests closes at once.
    pub fn start_drain(&mut self) {
        self.draining = true;
        self.keep_alive = false;
        if matches!(self.recv, Recv::Head) && self.send == Send::Idle {
            self.recv = Recv::Closed;
        }
    }

    /// Is the connection finished, so that the runtime should close it once its write buffer
    /// is flushed?
    pub fn is_closed(&self) -> bool {
        match self.recv {
            Recv::Closed => self.send == Send::Idle,
            Recv::Failed(_) => true,
            _ => false,
        }
    }

    /// Will the connection stay open after the current exchange, as far as is known now?
    pub fn is_keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Is a request body being read: a request head was read and [`Event::End`] has not been
    /// reported yet? Input goes to the body until it is (the runtime times it with its body
    /// deadline rather than its header deadline).
    pub fn wants_body(&self) -> bool {
        matches!(self.recv, Recv::Length(_) | Recv::Chunked(_))
    }

    /// Is a request waiting for its response head ([`ServerConn::write_head`])?
    pub fn wants_response(&self) -> bool {
        self.send == Send::Ready
    }

    /// Has the current response been started and not yet ended: its head is written and
    /// [`ServerConn::write_end`] is still due?
    pub fn is_response_open(&self) -> bool {
        matches!(self.send, Send::Body(_))
    }

    /// The error the connection failed with, if it did.
    pub fn error(&self) -> Option<ParseError> {
        match self.recv {
            Recv::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Write `HTTP/1.1 100 Continue` if the current request asked for it and it has not been
    /// sent, before the final response. Returns whether it wrote anything.
    ///
    /// Call it when the application decides to read the body (RFC 9110 §10.1.1).
    pub fn write_continue(&mut self, out: &mut Vec<u8>) -> bool {
        let wanted = self.send == Send::Ready
            && self.current.expect_continue
            && !self.current.continue_sent
            && matches!(self.recv, Recv::Length(1..) | Recv::Chunked(_));
        if wanted {
            out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            self.current.continue_sent = true;
        }
        wanted
    }

    /// Write the response head for the current request into `out`.
    ///
    /// The writer adds `Date`, the framing field (`Content-Length` or
    /// `Transfer-Encoding: chunked`) and the `Connection` field the exchange needs. A `101`
    /// answers an upgrade request; after it the connection reports [`Event::Upgraded`].
    ///
    /// # Errors
    ///
    /// A [`ResponseError`] if no request is waiting for a head, or the head is invalid; nothing
    /// is written then.
    pub fn write_head(
        &mut self,
        head: &ResponseHead<'_>,
        date: &DateCache,
        out: &mut Vec<u8>,
    ) -> Result<(), ResponseError> {
        if self.send != Send::Ready {
            return Err(ResponseError::NoRequest);
        }
        let status = head.status;
        if !(100..=999).contains(&status) || (status < 200 && status != 101) {
            return Err(ResponseError::InvalidStatus);
        }
        check_headers(head.headers)?;
        let bodiless = status == 101 || status == 204;
        if bodiless && head.body != ResponseBody::Empty {
            return Err(ResponseError::BodyNotAllowed);
        }
        if status == 101 {
            // Only a request with no body left to read can switch protocols.
            let complete = matches!(self.recv, Recv::Done | Recv::Length(0));
            if !self.current.upgrade || !complete || head.close {
                return Err(ResponseError::NotAnUpgrade);
            }
        }

        self.keep_alive &= !head.close && !self.draining;
        let http10 = self.current.version == Version::Http10;
        let out_body = if status == 204 {
            OutBody::Forbidden
        } else if self.current.head || status == 304 {
            OutBody::Suppressed
        } else {
            match head.body {
                ResponseBody::Empty => OutBody::Length(0),
                ResponseBody::Length(n) => OutBody::Length(n),
                ResponseBody::Chunked if http10 => OutBody::UntilClose,
                ResponseBody::Chunked => OutBody::Chunked,
            }
        };
        if out_body == OutBody::UntilClose {
            self.keep_alive = false;
        }

        write_status_line(out, status);
        write_header(out, b"Date", date.as_bytes());
        for &(name, value) in head.headers {
            write_header(out, name.as_bytes(), value);
        }
        match (status, head.body) {
            // A 304's Content-Length describes the representation it stands for, so an
            // application that gives none gets none rather than a misleading 0.
            (101 | 204, _) | (304, ResponseBody::Empty) => {}
            (_, ResponseBody::Empty) => out.extend_from_slice(b"Content-Length: 0\r\n"),
            (_, ResponseBody::Length(n)) => {
                out.extend_from_slice(b"Content-Length: ");
                write_decimal(out, n);
                out.extend_from_slice(b"\r\n");
            }
            (_, ResponseBody::Chunked) if http10 => {}
            (_, ResponseBody::Chunked) => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            }
        }
        if status == 101 {
            out.extend_from_slice(b"Connection: Upgrade\r\n\r\n");
            self.send = Send::Idle;
            self.recv = Recv::Upgraded;
            return Ok(());
        }
        match (http10, self.keep_alive) {
            (false, false) => out.extend_from_slice(b"Connection: close\r\n"),
            (true, true) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
            _ => {}
        }
        out.extend_from_slice(b"\r\n");
        self.send = Send::Body(out_body);
        Ok(())
    }

    /// Write body bytes of the current response into `out`: copied as they are, or framed as
    /// one chunk. For a response to `HEAD` (and a 304) the bytes are checked and dropped.
    ///
    /// # Errors
    ///
    /// [`ResponseError::NoResponse`] before [`ServerConn::write_head`];
    /// [`ResponseError::BodyTooLong`] past the declared length;
    /// [`ResponseError::BodyNotAllowed`] for a 204.
    pub fn write_body(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), ResponseError> {
        let Send::Body(body) = &mut self.send else {
            return Err(ResponseError::NoResponse);
        };
        match body {
            OutBody::Length(remaining) => {
                let len = data.len() as u64;
                if len > *remaining {
                    return Err(ResponseError::BodyTooLong);
                }
                *remaining -= len;
                out.extend_from_slice(data);
            }
            OutBody::Chunked if data.is_empty() => {}
            OutBody::Chunked => {
                write_hex(out, data.len() as u64);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            OutBody::UntilClose => out.extend_from_slice(data),
            OutBody::Suppressed => {}
            OutBody::Forbidden if data.is_empty() => {}
            OutBody::Forbidden => return Err(ResponseError::BodyNotAllowed),
        }
        Ok(())
    }

    /// Finish the current response: write the last chunk if chunked, and make the connection
    /// ready for the next request (or closed, if it will not persist).
    ///
    /// A response may end before its request body has been read to its end (an early answer,
    /// such as a 413 or a redirect). The response is then complete on the wire, and the
    /// connection goes on reporting the body, which must be read to tell it apart from the
    /// next request; after its [`Event::End`] the next request is read as usual (or the
    /// connection closes, if it will not persist).
    ///
    /// # Errors
    ///
    /// [`ResponseError::NoResponse`] before [`ServerConn::write_head`];
    /// [`ResponseError::BodyTooShort`] before the declared length was written.
    pub fn write_end(&mut self, out: &mut Vec<u8>) -> Result<(), ResponseError> {
        let Send::Body(body) = self.send else {
            return Err(ResponseError::NoResponse);
        };
        match body {
            OutBody::Length(remaining) if remaining > 0 => return Err(ResponseError::BodyTooShort),
            OutBody::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
            _ => {}
        }
        if self.wants_body() {
            self.send = Send::Ended;
        } else {
            self.end_exchange();
        }
        Ok(())
    }

    /// After [`handle_input`](ServerConn::handle_input) failed, or
    /// [`handle_timeout`](ServerConn::handle_timeout) was called, write the error response the
    /// [`ParseError`] calls for (`Connection: close`, no body). Returns whether anything was
    /// written: nothing is when the connection has not failed, a response had already started,
    /// or the error response was already written, in which case the runtime just closes.
    pub fn write_error(&mut self, date: &DateCache, out: &mut Vec<u8>) -> bool {
        let Recv::Failed(e) = self.recv else {
            return false;
        };
        if matches!(self.send, Send::Body(_) | Send::Ended) || self.error_written {
            return false;
        }
        write_status_line(out, e.status());
        write_header(out, b"Date", date.as_bytes());
        out.extend_from_slice(b"Content-Length: 0\r\nConnection: close\r\n\r\n");
        self.send = Send::Idle;
        self.keep_alive = false;
        self.error_written = true;
        true
    }
}
