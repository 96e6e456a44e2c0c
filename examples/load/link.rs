//! One TCP connection's plumbing, shared by the WebSocket and HTTP clients: the socket, the
//! receive buffer, and the outbox of control bytes and pre-encoded units still to write.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::Instant;

use mio::net::TcpStream;
use tokio_rustls::rustls::ClientConnection;

use crate::report::Fail;
use crate::tls::{CloseNotify, Tls};
use crate::MAX_IO_PER_EVENT;

/// What a connection still has to write.
pub(crate) struct Outbox {
    /// Bytes that are not pre-encoded units: the upgrade request, Close frames, automatic
    /// pongs. They go out only between two units, never inside one.
    pub(crate) ctrl: Vec<u8>,
    ctrl_off: usize,
    /// Bytes of pre-encoded units still to write.
    pub(crate) owed: usize,
    /// Offset of the next unit byte within its unit.
    pos: usize,
    /// When each unit not yet answered was queued, oldest first: echoes and responses come
    /// back in order. Capacity for the whole pipeline is reserved up front.
    pub(crate) sent_at: VecDeque<Instant>,
}

impl Outbox {
    fn new(in_flight: usize) -> Self {
        Outbox {
            ctrl: Vec::with_capacity(256),
            ctrl_off: 0,
            owed: 0,
            pos: 0,
            sent_at: VecDeque::with_capacity(in_flight),
        }
    }

    pub(crate) fn owe(&mut self, n: usize, unit: usize, now: Instant) {
        if unit == 0 {
            return;
        }
        self.owed += n * unit;
        for _ in 0..n {
            self.sent_at.push_back(now);
        }
    }

    /// Forget the units queued but not started; the one being written is finished, since a
    /// frame cannot be cut short.
    pub(crate) fn cancel_unsent(&mut self, unit: usize) {
        if unit == 0 {
            return;
        }
        let partial = (unit - self.pos) % unit;
        let unsent = (self.owed - partial) / unit;
        self.owed = partial;
        for _ in 0..unsent {
            self.sent_at.pop_back();
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.owed == 0 && self.ctrl_off == self.ctrl.len()
    }

    /// The next bytes to write and whether they are control bytes; `None` when nothing is
    /// owed. `wire` holds whole copies of the unit, so the owed bytes, which repeat with period
    /// `unit`, are always one contiguous slice of it starting at `pos`.
    pub(crate) fn next_chunk<'w>(&'w self, wire: &'w [u8]) -> Option<(&'w [u8], bool)> {
        if self.pos == 0 && self.ctrl_off < self.ctrl.len() {
            Some((&self.ctrl[self.ctrl_off..], true))
        } else if self.owed > 0 {
            Some((
                &wire[self.pos..(self.pos + self.owed).min(wire.len())],
                false,
            ))
        } else {
            None
        }
    }

    /// `n` bytes of the chunk [`Outbox::next_chunk`] gave were written.
    pub(crate) fn advance(&mut self, n: usize, ctrl: bool, unit: usize) {
        if ctrl {
            self.ctrl_off += n;
            if self.ctrl_off == self.ctrl.len() {
                self.ctrl.clear();
                self.ctrl_off = 0;
            }
        } else {
            self.owed -= n;
            self.pos = (self.pos + n) % unit;
        }
    }
}

/// One TCP connection's plumbing, shared by both clients.
pub(crate) struct Link {
    stream: TcpStream,
    /// The TLS session over `stream` (wss://, https://); `None` for plain TCP. Boxed so that
    /// a plain connection does not carry its size.
    tls: Option<Box<Tls>>,
    pub(crate) rbuf: Box<[u8]>,
    pub(crate) rlen: usize,
    pub(crate) out: Outbox,
}

/// The result of one read.
pub(crate) enum Got {
    /// Bytes arrived; `true` if they filled less than the free space, so the socket is
    /// drained for now (see [`Client::on_ready`]). Over TLS the bytes that arrived may have
    /// made no plaintext yet (see [`Tls::read`]).
    ///
    /// [`Client::on_ready`]: crate::runner::Client::on_ready
    Bytes(bool),
    Blocked,
    Eof,
}

impl Link {
    pub(crate) fn new(
        stream: TcpStream,
        tls: Option<Box<Tls>>,
        rbuf: usize,
        in_flight: usize,
    ) -> Self {
        Link {
            stream,
            tls,
            rbuf: vec![0; rbuf].into_boxed_slice(),
            rlen: 0,
            out: Outbox::new(in_flight),
        }
    }

    /// One read into the free end of the receive buffer. WouldBlock means the kernel has
    /// nothing more: with edge-triggered readiness the next event says when it has. A short
    /// read says the same one syscall earlier.
    pub(crate) fn read_once(&mut self) -> io::Result<Got> {
        let Some(free) = self.rbuf.get_mut(self.rlen..).filter(|f| !f.is_empty()) else {
            return Err(io::Error::other("receive buffer full"));
        };
        if let Some(tls) = self.tls.as_deref_mut() {
            let got = tls.read(&mut self.stream, free);
            if let Ok((n, _)) = got {
                self.rlen += n;
            }
            return got.map(|(_, got)| got);
        }
        loop {
            match self.stream.read(free) {
                Ok(0) => return Ok(Got::Eof),
                Ok(n) => {
                    let short = n < free.len();
                    self.rlen += n;
                    return Ok(Got::Bytes(short));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Got::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Drop the first `n` bytes of the receive buffer.
    pub(crate) fn consume(&mut self, n: usize) {
        self.rbuf.copy_within(n..self.rlen, 0);
        self.rlen -= n;
    }

    /// Write control bytes and owed units until there are none or the socket would block
    /// (then the next writable event resumes). `Ok(true)`: stopped early with more to write.
    pub(crate) fn flush(&mut self, wire: &[u8], unit: usize) -> io::Result<bool> {
        if let Some(tls) = self.tls.as_deref_mut() {
            return tls.flush(&mut self.stream, &mut self.out, wire, unit);
        }
        let out = &mut self.out;
        for _ in 0..MAX_IO_PER_EVENT {
            let Some((chunk, ctrl)) = out.next_chunk(wire) else {
                return Ok(false);
            };
            let chunk_len = chunk.len();
            match self.stream.write(chunk) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    out.advance(n, ctrl, unit);
                    // A short write of units means the socket buffer is full: the writable
                    // edge that follows when it drains resumes here, so the WouldBlock write
                    // is skipped.
                    if !ctrl && n < chunk_len {
                        return Ok(false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(!out.is_empty())
    }

    /// Has the non-blocking connect finished? `Ok(false)`: not yet (a spurious event).
    pub(crate) fn connected(&mut self) -> Result<bool, Fail> {
        if let Ok(Some(_)) | Err(_) = self.stream.take_error() {
            return Err(Fail::Connect);
        }
        match self.stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(_) => Err(Fail::Connect),
        }
    }

    /// The connection is ending cleanly (its last frame is queued): over TLS, send
    /// close_notify once everything queued before it is written.
    pub(crate) fn close_notify(&mut self) {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.close_notify = tls.close_notify.max(CloseNotify::Queued);
        }
    }

    /// The session, the first time this is asked after its TLS handshake completed (once per
    /// connection), for the report.
    pub(crate) fn take_handshake(&mut self) -> Option<&ClientConnection> {
        let tls = self.tls.as_deref_mut()?;
        if tls.handshake_seen || tls.conn.is_handshaking() {
            return None;
        }
        tls.handshake_seen = true;
        Some(&tls.conn)
    }

    /// Why the TLS session failed, in words for the report.
    pub(crate) fn tls_error(&self) -> Option<String> {
        let tls = self.tls.as_ref()?;
        Some(match &tls.error {
            Some(e) => e.to_string(),
            None if tls.conn.is_handshaking() => {
                "the server closed the connection during the TLS handshake".to_string()
            }
            None => "a TLS failure rustls did not describe".to_string(),
        })
    }

    /// Is the TLS handshake still going?
    pub(crate) fn is_tls_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.conn.is_handshaking())
    }

    /// The connection ends cleanly now and the socket is about to be dropped: over TLS, send
    /// close_notify, in one write attempt (a socket that cannot take a few dozen bytes now
    /// will not be waited for).
    pub(crate) fn end_tls(&mut self) {
        if let Some(tls) = self.tls.as_deref_mut() {
            if tls.close_notify != CloseNotify::Sent {
                tls.conn.send_close_notify();
                tls.close_notify = CloseNotify::Sent;
            }
            let _ = tls.conn.write_tls(&mut self.stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::now;

    #[test]
    fn cancelling_keeps_the_unit_being_written() {
        let t = now();
        let mut out = Outbox::new(4);
        out.owe(3, 10, t);
        // Four bytes of the first unit are written.
        out.owed -= 4;
        out.pos = 4;
        out.cancel_unsent(10);
        assert_eq!((out.owed, out.sent_at.len()), (6, 1));
        // At a unit boundary nothing is left.
        out.owed = 0;
        out.pos = 0;
        out.owe(2, 10, t);
        out.cancel_unsent(10);
        assert_eq!((out.owed, out.sent_at.len()), (0, 1));
    }
}
