//! The HTTP/1.1 client: pipelined keep-alive GETs, and response framing read from whatever
//! part of a response has arrived.

use std::time::{Duration, Instant};

use crate::link::{Got, Link};
use crate::report::{fail_of, Fail};
use crate::runner::{Client, Ctx, Phase};
use crate::{CLOSE_WAIT, MAX_IO_PER_EVENT};

/// Where the response being read stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Head,
    Fixed(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    /// No framing: the body ends when the server closes.
    UntilEof,
}

/// A response read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Response {
    status: u16,
    /// Body bytes, after chunked decoding.
    body_bytes: usize,
    /// The server said `Connection: close`: it closes after this response.
    close: bool,
}

/// HTTP/1.1 response framing (RFC 9112 §6): Content-Length, chunked, or until the close; read
/// incrementally from whatever part of the response has arrived. No socket: it only sees bytes.
#[derive(Debug)]
struct ResponseReader {
    body: Body,
    response: Response,
}

impl ResponseReader {
    fn new() -> Self {
        ResponseReader {
            body: Body::Head,
            response: Response {
                status: 0,
                body_bytes: 0,
                close: false,
            },
        }
    }

    /// Read what `buf` holds of the current response: the bytes consumed and, if it ended, the
    /// response. `(0, None)` means more bytes are needed; `full` says no more can fit, which
    /// turns an incomplete head or trailer line into an error.
    fn read(&mut self, buf: &[u8], full: bool) -> Result<(usize, Option<Response>), Fail> {
        if buf.is_empty() {
            return Ok((0, None));
        }
        match self.body {
            Body::Head => {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut res = httparse::Response::new(&mut headers);
                let n = match res.parse(buf) {
                    Ok(httparse::Status::Complete(n)) => n,
                    Ok(httparse::Status::Partial) if full => return Err(Fail::Protocol),
                    Ok(httparse::Status::Partial) => return Ok((0, None)),
                    Err(_) => return Err(Fail::Protocol),
                };
                let status = res.code.unwrap_or(0);
                if (100..200).contains(&status) {
                    return Ok((n, None)); // an interim response; the real one follows
                }
                let (mut length, mut chunked, mut close) = (None, false, false);
                for h in res.headers.iter() {
                    let has = |token: &[u8]| {
                        h.value
                            .split(|&b| b == b',')
                            .any(|v| v.trim_ascii().eq_ignore_ascii_case(token))
                    };
                    if h.name.eq_ignore_ascii_case("content-length") {
                        let value = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.parse().ok());
                        length = Some(value.ok_or(Fail::Protocol)?);
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = has(b"chunked");
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        close |= has(b"close");
                    }
                }
                self.response = Response {
                    status,
                    body_bytes: 0,
                    close,
                };
                self.body = match (status, chunked, length) {
                    (204 | 304, _, _) | (_, false, Some(0)) => return Ok((n, Some(self.end()))),
                    (_, true, _) => Body::ChunkSize,
                    (_, false, Some(len)) => Body::Fixed(len),
                    (_, false, None) => Body::UntilEof,
                };
                Ok((n, None))
            }
            Body::Fixed(left) | Body::ChunkData(left) => {
                let n = left.min(buf.len() as u64);
                self.response.body_bytes += n as usize;
                let left = left - n;
                match (self.body, left) {
                    (Body::Fixed(_), 0) => return Ok((n as usize, Some(self.end()))),
                    (Body::Fixed(_), _) => self.body = Body::Fixed(left),
                    (_, 0) => self.body = Body::ChunkEnd,
                    _ => self.body = Body::ChunkData(left),
                }
                Ok((n as usize, None))
            }
            Body::ChunkSize => match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((n, size))) => {
                    self.body = if size == 0 {
                        Body::Trailers
                    } else {
                        Body::ChunkData(size)
                    };
                    Ok((n, None))
                }
                Ok(httparse::Status::Partial) if full => Err(Fail::Protocol),
                Ok(httparse::Status::Partial) => Ok((0, None)),
                Err(_) => Err(Fail::Protocol),
            },
            Body::ChunkEnd => match buf {
                [b'\r', b'\n', ..] => {
                    self.body = Body::ChunkSize;
                    Ok((2, None))
                }
                [b'\r'] => Ok((0, None)),
                _ => Err(Fail::Protocol),
            },
            // The trailer section: field lines up to an empty line.
            Body::Trailers => match buf.windows(2).position(|w| w == b"\r\n") {
                Some(0) => Ok((2, Some(self.end()))),
                Some(line) => Ok((line + 2, None)),
                None if full => Err(Fail::Protocol),
                None => Ok((0, None)),
            },
            Body::UntilEof => {
                self.response.body_bytes += buf.len();
                Ok((buf.len(), None))
            }
        }
    }

    /// The server closed the connection: the response it ended, if its body was delimited by
    /// the close.
    fn at_eof(&mut self) -> Option<Response> {
        (self.body == Body::UntilEof).then(|| self.end())
    }

    fn end(&mut self) -> Response {
        self.body = Body::Head;
        self.response
    }
}

pub(crate) struct HttpClient {
    link: Link,
    phase: Phase,
    reader: ResponseReader,
    /// The server said `Connection: close`: the connection ends after that response.
    close_after: bool,
    deadline: Option<Instant>,
}

impl HttpClient {
    pub(crate) fn new(link: Link, at: Instant, connect_timeout: Duration) -> Self {
        HttpClient {
            link,
            phase: Phase::Connecting,
            reader: ResponseReader::new(),
            close_after: false,
            deadline: Some(at + connect_timeout),
        }
    }

    /// Read every complete piece of response in the receive buffer.
    fn responses(&mut self, ctx: &mut Ctx<'_>) -> Result<(), Fail> {
        let mut off = 0;
        let result = loop {
            if self.phase == Phase::Done {
                break Ok(());
            }
            let full = self.link.rlen == self.link.rbuf.len();
            let buf = &self.link.rbuf[off..self.link.rlen];
            match self.reader.read(buf, full && off == 0) {
                Ok((used, done)) => {
                    off += used;
                    if let Some(response) = done {
                        self.done_response(response, ctx);
                    } else if used == 0 {
                        break Ok(());
                    }
                }
                Err(fail) => break Err(fail),
            }
        };
        self.link.consume(off);
        result
    }

    fn done_response(&mut self, response: Response, ctx: &mut Ctx<'_>) {
        let out = &mut self.link.out;
        let sent = out.sent_at.pop_front();
        if sent.is_none() {
            // A response nobody asked for.
            ctx.errors.protocol += 1;
        } else {
            if response.status != 200 {
                ctx.errors.status += 1;
            }
            ctx.complete(response.body_bytes, sent);
        }
        if response.close {
            // The server closes after this one; the requests behind it are lost by design.
            self.close_after = true;
            self.phase = Phase::Done;
            self.link.end_tls();
        } else if ctx.refill && sent.is_some() {
            out.owe(1, ctx.unit, ctx.now);
        } else if self.phase == Phase::Closing && out.sent_at.is_empty() {
            self.phase = Phase::Done;
            self.link.end_tls();
        }
    }
}

impl Client for HttpClient {
    fn phase(&self) -> Phase {
        self.phase
    }

    fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    fn on_ready(&mut self, ctx: &mut Ctx<'_>, hup: bool) -> Result<bool, Fail> {
        if self.phase == Phase::Connecting {
            if !self.link.connected()? {
                return Ok(false);
            }
            self.phase = Phase::Open;
            self.deadline = None;
        }
        for _ in 0..MAX_IO_PER_EVENT {
            if self.phase == Phase::Done {
                return Ok(false);
            }
            match self.link.read_once() {
                Ok(Got::Bytes(short)) => {
                    self.responses(ctx)?;
                    if short && !hup {
                        return Ok(false);
                    }
                }
                Ok(Got::Blocked) => return Ok(false),
                Ok(Got::Eof) => {
                    if let Some(response) = self.reader.at_eof() {
                        self.done_response(response, ctx);
                    }
                    let lost = !self.link.out.sent_at.is_empty();
                    self.phase = Phase::Done;
                    return if self.link.is_tls_handshaking() {
                        Err(Fail::Tls)
                    } else if lost && !self.close_after {
                        Err(Fail::Closed)
                    } else {
                        Ok(false)
                    };
                }
                Err(e) => return Err(fail_of(&e)),
            }
        }
        Ok(true)
    }

    fn begin_close(&mut self, unit: usize, now: Instant) {
        match self.phase {
            Phase::Open => {
                self.link.out.cancel_unsent(unit);
                if self.link.out.sent_at.is_empty() {
                    self.phase = Phase::Done;
                    self.link.end_tls();
                } else {
                    self.phase = Phase::Closing;
                }
                self.deadline = Some(now + CLOSE_WAIT);
            }
            Phase::Connecting | Phase::Upgrading => self.phase = Phase::Done,
            Phase::Closing | Phase::Lingering | Phase::Done => {}
        }
    }

    fn expire(&mut self, now: Instant) -> Option<Fail> {
        let deadline = self.deadline?;
        if now < deadline {
            return None;
        }
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        match phase {
            Phase::Connecting | Phase::Closing => Some(Fail::Timeout),
            _ => None,
        }
    }

    fn fail(&mut self) {
        self.phase = Phase::Done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `input` to a reader `step` bytes at a time, as a receive buffer would.
    fn responses(input: &[u8], step: usize) -> Result<Vec<Response>, Fail> {
        let mut reader = ResponseReader::new();
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        for chunk in input.chunks(step) {
            buf.extend_from_slice(chunk);
            loop {
                let (used, done) = reader.read(&buf, false)?;
                buf.drain(..used);
                match done {
                    Some(response) => out.push(response),
                    None if used == 0 => break,
                    None => {}
                }
            }
        }
        out.extend(reader.at_eof());
        Ok(out)
    }

    fn response(status: u16, body_bytes: usize, close: bool) -> Response {
        Response {
            status,
            body_bytes,
            close,
        }
    }

    #[test]
    fn reads_responses_whatever_the_split() {
        let input: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!\
            HTTP/1.1 204 No Content\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n\
            HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n\
            5;ext=1\r\nHello\r\n8\r\n, World!\r\n0\r\nX-Trailer: yes\r\n\r\n\
            HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\nok";
        let expected = [
            response(200, 13, false),
            response(204, 0, false),
            response(200, 0, false),
            response(404, 13, false),
            response(200, 2, true),
        ];
        for step in 1..=input.len() {
            assert_eq!(responses(input, step), Ok(expected.to_vec()), "step {step}");
        }
    }

    #[test]
    fn a_body_without_framing_ends_at_the_close() {
        let input = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end";
        assert_eq!(responses(input, 4), Ok(vec![response(200, 13, true)]));
    }

    #[test]
    fn refuses_broken_framing() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
            b"HTTP/1.1 2000 OK\r\n\r\n",
        ] {
            assert_eq!(responses(bad, bad.len()), Err(Fail::Protocol));
        }
        // An incomplete head that fills the whole receive buffer can never complete.
        let mut reader = ResponseReader::new();
        assert_eq!(
            reader.read(b"HTTP/1.1 200 OK\r\nX: ", true),
            Err(Fail::Protocol)
        );
    }
}
