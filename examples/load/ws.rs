//! The WebSocket client: the upgrade, echoes checked against the message sent, and the close
//! handshake.

use std::io;
use std::time::{Duration, Instant};

use berth::handshake::ClientHandshake;
use berth::http::header_slots;
use berth::ws::{CloseCode, Conn, Event as WsEvent, MessageKind};
use berth::{Limits, Status};

use crate::link::{Got, Link, Outbox};
use crate::report::{fail_of, Fail};
use crate::runner::{Client, Ctx, Phase, Rng};
use crate::{CLOSE_WAIT, LINGER, MAX_IO_PER_EVENT};

pub(crate) struct WsClient {
    link: Link,
    phase: Phase,
    handshake: ClientHandshake,
    conn: Conn,
    started: Instant,
    /// The current phase must end by then (none while open).
    deadline: Option<Instant>,
}

impl WsClient {
    pub(crate) fn new(
        mut link: Link,
        limits: &Limits,
        rng: &mut Rng,
        (host, path): (&str, &str),
        at: Instant,
        connect_timeout: Duration,
    ) -> Self {
        let handshake = ClientHandshake::new(rng.nonce());
        handshake
            .write_request(host, path, &[], &mut link.out.ctrl)
            .expect("the host and path were checked when the arguments were parsed");
        // Keys for this connection's control frames (Close, pongs). Data frames are the
        // thread's pre-masked ones.
        let mut state = rng.next() | 1;
        let mask = Box::new(move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state as u32).to_ne_bytes()
        });
        WsClient {
            link,
            phase: Phase::Connecting,
            handshake,
            conn: Conn::client(limits, mask),
            started: at,
            deadline: Some(at + connect_timeout),
        }
    }

    /// Check the server's answer to the upgrade request. `Ok(false)`: not all here yet.
    fn upgrade(&mut self, ctx: &mut Ctx<'_>) -> Result<bool, Fail> {
        let buf = &self.link.rbuf[..self.link.rlen];
        let mut slots = header_slots::<32>();
        match self.handshake.parse_response(buf, &[], &mut slots) {
            Ok(Status::Complete((len, _))) => {
                self.link.consume(len);
                self.phase = Phase::Open;
                self.deadline = None;
                if ctx.cycles && ctx.counting {
                    let ns = ctx.now.saturating_duration_since(self.started).as_nanos();
                    ctx.hist.saturating_record(ns as u64);
                }
                Ok(true)
            }
            Ok(Status::Partial) if self.link.rlen == self.link.rbuf.len() => Err(Fail::Handshake),
            Ok(Status::Partial) => Ok(false),
            Err(_) => Err(Fail::Handshake),
        }
    }

    /// Hand every complete frame in the receive buffer to the connection and act on it.
    fn frames(&mut self, ctx: &mut Ctx<'_>) -> Result<(), Fail> {
        let WsClient {
            link,
            conn,
            phase,
            deadline,
            ..
        } = self;
        let mut off = 0;
        let result = loop {
            let input = &mut link.rbuf[off..link.rlen];
            let (used, event) = match conn.handle_input(input) {
                Ok(found) => found,
                Err(_) => break Err(Fail::Protocol),
            };
            off += used;
            match event {
                WsEvent::Binary(got) => {
                    echo(&mut link.out, (got, MessageKind::Binary), *phase, ctx)
                }
                WsEvent::Text(got) => echo(
                    &mut link.out,
                    (got.as_bytes(), MessageKind::Text),
                    *phase,
                    ctx,
                ),
                WsEvent::Close(_) => {
                    if *phase == Phase::Open {
                        // The server ended a connection in use. Its reply, queued below, is
                        // the last frame sent: the messages not yet started are dropped.
                        ctx.errors.closed += 1;
                        link.out.cancel_unsent(ctx.unit);
                    } else {
                        if ctx.cycles {
                            ctx.complete(0, None);
                        }
                        *ctx.clean_closes += 1;
                    }
                    *phase = Phase::Lingering;
                    *deadline = Some(ctx.now + LINGER);
                    // The server closed first: the reply queued below is the last thing sent.
                    link.close_notify();
                }
                WsEvent::NeedData | WsEvent::Closed => break Ok(()),
                _ => {}
            }
        };
        link.consume(off);
        // Automatic pongs, the close reply, or the Close after a protocol error.
        if conn.wants_transmit() {
            conn.poll_transmit(&mut link.out.ctrl);
        }
        result
    }

    fn on_eof(&mut self, ctx: &mut Ctx<'_>) -> Result<(), Fail> {
        match self.phase {
            // A server that does not speak TLS (or refuses the ClientHello) hangs up here.
            Phase::Upgrading if self.link.is_tls_handshaking() => Err(Fail::Tls),
            Phase::Connecting | Phase::Upgrading => Err(Fail::Handshake),
            Phase::Open => Err(Fail::Closed),
            Phase::Closing => {
                // EOF instead of a Close reply ends the close handshake too.
                if ctx.cycles {
                    ctx.complete(0, None);
                }
                *ctx.clean_closes += 1;
                self.phase = Phase::Done;
                Ok(())
            }
            Phase::Lingering | Phase::Done => {
                self.phase = Phase::Done;
                Ok(())
            }
        }
    }
}

/// An echo arrived: check it against what was sent, count it, and send the next one if the
/// connection is still open.
fn echo(out: &mut Outbox, (got, kind): (&[u8], MessageKind), phase: Phase, ctx: &mut Ctx<'_>) {
    let sent = out.sent_at.pop_front();
    if sent.is_none() || kind != ctx.kind || got != ctx.expected {
        ctx.errors.mismatch += 1;
    } else {
        ctx.complete(got.len(), sent);
    }
    if ctx.refill && phase == Phase::Open && sent.is_some() {
        out.owe(1, ctx.unit, ctx.now);
    }
}

impl Client for WsClient {
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
            // The upgrade request is already in the outbox; the event loop writes it next.
            self.phase = Phase::Upgrading;
        }
        for _ in 0..MAX_IO_PER_EVENT {
            if self.phase == Phase::Done {
                return Ok(false);
            }
            match self.link.read_once() {
                Ok(Got::Bytes(short)) => {
                    if self.phase != Phase::Upgrading || self.upgrade(ctx)? {
                        self.frames(ctx)?;
                    }
                    if short && !hup {
                        return Ok(false);
                    }
                }
                Ok(Got::Blocked) => return Ok(false),
                Ok(Got::Eof) => return self.on_eof(ctx).map(|()| false),
                // The close handshake is over and the server closed abortively (it had unread
                // bytes): as good as its FIN here.
                Err(e)
                    if self.phase == Phase::Lingering
                        && e.kind() == io::ErrorKind::ConnectionReset =>
                {
                    self.phase = Phase::Done;
                    return Ok(false);
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
                // Only fails if a Close was already sent, which the phase rules out.
                let _ = self
                    .conn
                    .close(CloseCode::NORMAL, "", &mut self.link.out.ctrl);
                // Nothing is sent after the Close, so close_notify goes right behind it, in the
                // same write: a server that closes TCP as soon as it has answered the Close
                // has then read everything, and its kernel sends FIN, not RST.
                self.link.close_notify();
                self.phase = Phase::Closing;
                self.deadline = Some(now + CLOSE_WAIT);
            }
            // Not open yet: dropped when the run ends, not counted. Over TLS that is still
            // no error, so the session ends with close_notify.
            Phase::Upgrading => {
                self.link.end_tls();
                self.phase = Phase::Done;
            }
            Phase::Connecting => self.phase = Phase::Done,
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
            Phase::Connecting | Phase::Upgrading | Phase::Closing => Some(Fail::Timeout),
            Phase::Open | Phase::Lingering | Phase::Done => None,
        }
    }

    fn fail(&mut self) {
        if self.conn.wants_transmit() {
            self.conn.poll_transmit(&mut self.link.out.ctrl);
        }
        // Only the Close is written: no more data, so the unit stream can be dropped.
        self.link.out.owed = 0;
        let _ = self.link.flush(&[], 1);
        self.phase = Phase::Done;
    }
}
