//! One connection: a socket, its buffers, and the phase state machine that pumps bytes
//! through the sans-I/O core.
//!
//! ```text
//!   accept ─► Http ──101──► Ws ──Close/error/timeout──┐
//!              │                                      ▼
//!              └──error/close/timeout────────────► Linger ──EOF or timeout──► removed
//! ```
//!
//! `Linger` is the tail of every orderly close: the output is flushed, the write side shut
//! down, and whatever the peer still sends is read and dropped until its EOF, so that a final
//! response (a 400, a Close echo) is not destroyed by a reset on unread input.
//!
//! A session holds a read buffer only while it has unconsumed input (a head or frame that
//! arrived in pieces), and a write buffer only while the socket has not taken its output;
//! both come from the worker's pool. Input is otherwise read into the worker's shared
//! scratch buffer and handed to the core in place.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;

use super::buffer::Pool;
use super::handler::{
    CloseReason, Closed, ConnId, Exchange, Handler, Message, Responder, WebSocket, WsCtl,
};
use super::timer::{Entry, TimerWheel};
use super::worker::{Topics, WorkerShared};
use super::{Config, Control, Stats};
use crate::http::{self, header_slots, DateCache, ServerConn};
use crate::ws::{self, write_frame, CloseCode, OpCode, ProtocolError, Role};

/// Header fields a request may have, at most (further ones are refused with 431).
const MAX_HEADER_SLOTS: usize = 256;
/// Reads from one socket per readiness event before other connections get a turn.
const MAX_READS: usize = 16;
/// Bytes read and dropped from a lingering connection before it is simply closed.
const MAX_LINGER_BYTES: usize = 1 << 20;

/// What a session needs from its worker while it is driven.
pub(crate) struct Env<'a, H: Handler> {
    pub(crate) handler: &'a H,
    pub(crate) config: &'a Config,
    pub(crate) control: &'a Control,
    pub(crate) me: &'a Arc<WorkerShared>,
    pub(crate) date: &'a DateCache,
    pub(crate) now: Instant,
    pub(crate) pool: &'a mut Pool,
    pub(crate) topics: &'a mut Topics,
    pub(crate) wheel: &'a mut TimerWheel,
    pub(crate) stats: &'a mut Stats,
    pub(crate) resume: &'a mut Vec<usize>,
    pub(crate) draining: bool,
    /// The worker's listening addresses, by listener index.
    pub(crate) local_addrs: &'a [SocketAddr],
}

/// The HTTP phase: the core's connection and the exchange in progress.
#[derive(Debug)]
struct HttpPhase {
    conn: ServerConn,
    exchange: Exchange,
    /// Between a request head and the end of its body.
    in_body: bool,
    /// The application ended its response before the request body was read; the core's
    /// `write_end` waits for the body's end.
    end_pending: bool,
}

/// The WebSocket phase.
#[derive(Debug)]
struct WsPhase {
    conn: ws::Conn,
    ctl: WsCtl,
    /// Why the connection is closing, once known (the first cause wins).
    reason: Option<Ended>,
    /// `on_close` was called.
    reported: bool,
}

/// A [`CloseReason`] without borrowed parts, kept until it is reported.
#[derive(Debug, Clone, Copy)]
enum Ended {
    Local(CloseCode),
    Protocol(ProtocolError),
    Timeout,
    SlowConsumer,
    Shutdown,
}

impl Ended {
    fn as_reason(self) -> CloseReason<'static> {
        match self {
            Ended::Local(code) => CloseReason::Local(code),
            Ended::Protocol(e) => CloseReason::Protocol(e),
            Ended::Timeout => CloseReason::Timeout,
            Ended::SlowConsumer => CloseReason::SlowConsumer,
            Ended::Shutdown => CloseReason::Shutdown,
        }
    }
}

#[derive(Debug)]
enum Phase {
    Http(Box<HttpPhase>),
    Ws(Box<WsPhase>),
    Linger,
}

/// One connection.
pub(crate) struct Session<S> {
    stream: TcpStream,
    /// The TLS layer between the socket and the core, on a TLS listener.
    tls: Tls,
    peer: SocketAddr,
    /// Which of the worker's listeners accepted the connection.
    listener: u16,
    id: ConnId,
    phase: Phase,
    state: S,
    /// Unconsumed input in `inbuf[..in_len]`; `inbuf` is empty (no capacity) when none.
    inbuf: Vec<u8>,
    in_len: usize,
    /// Output in `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
    /// Topics this connection is subscribed to (indexes into the worker's `Topics`).
    subs: Vec<u32>,
    /// The tick of this session's live timer-wheel entry.
    timer_tick: Option<u64>,
    /// When bytes last arrived.
    last_read: Instant,
    /// When the current wait began: the accept, a head's first byte, idleness after a
    /// response, a ping, a close.
    since: Instant,
    /// Since when output has been waiting without the socket taking any.
    stalled_since: Option<Instant>,
    /// A request head has started (or the first request is awaited); `since` times it.
    head_pending: bool,
    /// A ping is unanswered; `since` times it.
    ping_outstanding: bool,
    /// Reading stopped: the output is over the high-water mark.
    read_paused: bool,
    /// `inbuf` holds pipelined requests left unparsed because the output was over the
    /// high-water mark; they are parsed, before anything more is read, once reading resumes.
    held: bool,
    /// `on_drain` is owed once the output falls below the low-water mark.
    owe_drain: bool,
    /// Close once the output is flushed.
    close_after_flush: bool,
    /// The peer's side is closed (EOF or error): nothing more will be read.
    eof: bool,
    /// Remove the session now, flushed or not (I/O error, panic in a handler).
    kill: bool,
    /// The last readiness event said the peer hung up; read until EOF.
    hup: bool,
    lingered: usize,
}

impl<S> Session<S> {
    pub(crate) fn gen(&self) -> u32 {
        self.id.gen
    }

    pub(crate) fn owns_timer(&self, entry: &Entry) -> bool {
        entry.gen == self.id.gen && self.timer_tick == Some(entry.tick)
    }

    fn unsent(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Is there output not yet taken by the socket (plaintext, or TLS records)?
    fn pending(&self) -> bool {
        self.unsent() > 0 || self.tls_pending()
    }

    fn local<H: Handler>(&self, env: &Env<'_, H>) -> SocketAddr {
        env.local_addrs
            .get(usize::from(self.listener))
            .copied()
            .unwrap_or(self.peer)
    }
}

impl<S: Default + Send + 'static> Session<S> {
    #[allow(clippy::too_many_arguments)] // Called from one place, with everything a session is.
    pub(crate) fn new(
        stream: TcpStream,
        tls: Tls,
        peer: SocketAddr,
        listener: u16,
        key: u32,
        gen: u32,
        worker: u32,
        config: &Config,
        now: Instant,
    ) -> Self {
        Session {
            stream,
            tls,
            peer,
            listener,
            id: ConnId { worker, key, gen },
            phase: Phase::Http(Box::new(HttpPhase {
                conn: ServerConn::new(&config.limits),
                exchange: Exchange::default(),
                in_body: false,
                end_pending: false,
            })),
            state: S::default(),
            inbuf: Vec::new(),
            in_len: 0,
            out: Vec::new(),
            out_pos: 0,
            subs: Vec::new(),
            timer_tick: None,
            last_read: now,
            since: now,
            stalled_since: None,
            head_pending: true,
            ping_outstanding: false,
            read_paused: false,
            held: false,
            owe_drain: false,
            close_after_flush: false,
            eof: false,
            kill: false,
            hup: false,
            lingered: 0,
        }
    }

    /// Handle readiness. Returns `true` when the session is finished and must be removed.
    pub(crate) fn ready<H: Handler<State = S>>(
        &mut self,
        env: &mut Env<'_, H>,
        scratch: &mut [u8],
        readable: bool,
        writable: bool,
        hup: bool,
    ) -> bool {
        self.hup |= hup;
        if writable {
            self.flush(env);
        }
        if readable {
            self.read(env, scratch);
        }
        self.after(env)
    }

    /// A timer entry of this session fired. Returns `true` to remove the session.
    pub(crate) fn timer<H: Handler<State = S>>(&mut self, env: &mut Env<'_, H>) -> bool {
        self.timer_tick = None;
        let now = env.now;
        let t = &env.config.timeouts;
        if self
            .stalled_since
            .is_some_and(|since| now >= since + t.write)
        {
            log::debug!("{}: peer stopped reading; closing", self.id);
            if let Phase::Ws(ws) = &mut self.phase {
                ws.reason.get_or_insert(Ended::SlowConsumer);
            }
            return self.teardown(env);
        }
        match &mut self.phase {
            Phase::Http(h) => {
                if h.in_body {
                    if now >= self.last_read + t.body {
                        self.write_timeout_response(env.date);
                    }
                } else if self.head_pending {
                    if now >= self.since + t.header {
                        if self.is_handshaking() {
                            log::debug!("{}: TLS handshake timed out", self.id);
                            return self.teardown(env);
                        }
                        self.write_timeout_response(env.date);
                    }
                } else if !self.pending() && now >= self.since + t.keep_alive {
                    return self.teardown(env);
                }
            }
            Phase::Ws(ws) => {
                if ws.ctl.closing {
                    // Once the peer's Close is in, nothing is awaited from the peer: only
                    // our output, which the write timeout bounds.
                    if !ws.conn.is_closed() && now >= self.since + t.close {
                        ws.reason.get_or_insert(Ended::Timeout);
                        return self.teardown(env);
                    }
                } else if self.ping_outstanding {
                    if now >= self.since + t.pong {
                        log::debug!("{}: no pong; closing", self.id);
                        ws.reason.get_or_insert(Ended::Timeout);
                        return self.teardown(env);
                    }
                } else if let Some(ping) = t.ping {
                    if now >= self.last_read + ping {
                        take_buffer(&mut self.out, env.pool);
                        write_frame(OpCode::Ping, true, None, b"", &mut self.out);
                        self.ping_outstanding = true;
                        self.since = now;
                    }
                }
            }
            Phase::Linger => {
                if now >= self.since + t.close {
                    return self.teardown(env);
                }
            }
        }
        self.after(env)
    }

    /// 408 and close, for a head or body that did not arrive in time.
    fn write_timeout_response(&mut self, date: &DateCache) {
        if let Phase::Http(h) = &self.phase {
            if !h.exchange.started {
                self.out
                    .extend_from_slice(b"HTTP/1.1 408 Request Timeout\r\nDate: ");
                self.out.extend_from_slice(date.as_bytes());
                self.out
                    .extend_from_slice(b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        }
        log::debug!("{}: request timed out", self.id);
        self.close_after_flush = true;
    }

    /// Arm this session's timer for its next deadline, if it has none that early.
    pub(crate) fn arm<H: Handler>(&mut self, env: &mut Env<'_, H>) {
        let Some(deadline) = self.deadline(env.config) else {
            return;
        };
        let tick = env.wheel.tick_for(deadline);
        if self.timer_tick.map_or(true, |armed| tick < armed) {
            self.timer_tick = Some(env.wheel.arm(self.id.key, self.id.gen, deadline));
        }
    }

    fn deadline(&self, config: &Config) -> Option<Instant> {
        let t = &config.timeouts;
        let phase = match &self.phase {
            Phase::Http(h) if h.in_body => Some(self.last_read + t.body),
            Phase::Http(_) if self.head_pending => Some(self.since + t.header),
            Phase::Http(_) => Some(self.since + t.keep_alive),
            // The close handshake is done on the peer's side; the flush is timed by `write`.
            Phase::Ws(ws) if ws.conn.is_closed() => None,
            Phase::Ws(ws) if ws.ctl.closing => Some(self.since + t.close),
            Phase::Ws(_) if self.ping_outstanding => Some(self.since + t.pong),
            Phase::Ws(_) => t.ping.map(|p| self.last_read + p),
            Phase::Linger => Some(self.since + t.close),
        };
        let write = self.stalled_since.map(|s| s + t.write);
        match (phase, write) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// After any activity: flush, apply backpressure, move towards closing, re-arm the
    /// timer. Returns `true` when the session must be removed.
    fn after<H: Handler<State = S>>(&mut self, env: &mut Env<'_, H>) -> bool {
        if self.kill {
            return self.teardown(env);
        }
        let high = env.config.write_high_water;
        // A drain callback may queue more; loop while the socket keeps taking it, and let
        // other connections have a turn after a few rounds.
        let mut rounds = 0;
        loop {
            if self.unsent() > high {
                self.owe_drain = true;
            }
            self.flush(env);
            if self.kill {
                return self.teardown(env);
            }
            let unsent = self.unsent();
            if unsent > high {
                self.read_paused = true;
                break;
            }
            if unsent > high / 2 {
                break;
            }
            if self.read_paused {
                self.read_paused = false;
                // Edge-triggered: bytes that arrived while paused raise no new event.
                env.resume.push(self.id.key as usize);
            }
            if !self.owe_drain {
                break;
            }
            rounds += 1;
            if rounds > 4 {
                env.resume.push(self.id.key as usize);
                break;
            }
            self.owe_drain = false;
            self.drained(env);
        }

        let finished = match &self.phase {
            Phase::Http(h) => h.conn.is_closed() || self.close_after_flush,
            Phase::Ws(ws) => ws.conn.is_closed() || self.close_after_flush,
            Phase::Linger => false,
        };
        if finished {
            if matches!(&self.phase, Phase::Ws(ws) if ws.conn.is_closed() && ws.conn.error().is_none())
                && !self.pending()
                && !self.is_tls()
            {
                // The close handshake is complete: the peer sends nothing more, so the server
                // closes the TCP connection at once (RFC 6455 §7.1.1), without lingering. After
                // a protocol error it is not: the peer still answers our Close with its own,
                // and closing before that arrives would answer it with a reset. Over
                // TLS the peer still owes its close_notify, which may arrive after our Close:
                // closing now would answer it with a reset that can destroy our Close frame
                // unread at the peer, so a TLS session lingers (below) until the peer's EOF.
                return self.teardown(env);
            }
            if self.eof {
                // The peer is gone: write what it may still read, and stop.
                if !self.pending() || matches!(self.phase, Phase::Ws(_)) {
                    return self.teardown(env);
                }
            } else if !self.pending() {
                self.linger(env);
            }
        } else if self.eof {
            match self.phase {
                Phase::Ws(_) | Phase::Linger => return self.teardown(env),
                Phase::Http(_) if !self.pending() => return self.teardown(env),
                Phase::Http(_) => self.close_after_flush = true,
            }
        }
        if self.in_len == 0 && !self.inbuf.is_empty() {
            env.pool.give(std::mem::take(&mut self.inbuf));
        }
        self.arm(env);
        false
    }

    /// Enter `Linger`: the output is flushed; shut down the write side and wait for EOF.
    fn linger<H: Handler<State = S>>(&mut self, env: &mut Env<'_, H>) {
        self.report_close(env);
        self.leave_ws(env);
        self.close_notify();
        let _ = self.stream.shutdown(Shutdown::Write);
        self.phase = Phase::Linger;
        self.since = env.now;
        self.in_len = 0;
    }

    /// Call `on_close` if this is an open WebSocket that has not had it.
    fn report_close<H: Handler<State = S>>(&mut self, env: &mut Env<'_, H>) {
        if let Phase::Ws(ws) = &mut self.phase {
            if !ws.reported {
                ws.reported = true;
                let reason = ws.reason.map_or(CloseReason::Abnormal, Ended::as_reason);
                call_on_close(env, &mut self.state, self.id, reason);
            }
        }
    }

    /// Leaving the WebSocket phase: drop subscriptions, count it closed.
    fn leave_ws<H: Handler>(&mut self, env: &mut Env<'_, H>) {
        if matches!(self.phase, Phase::Ws(_)) {
            for index in self.subs.drain(..) {
                env.topics.remove(index, self.id.key);
            }
            env.stats.websockets = env.stats.websockets.saturating_sub(1);
        }
    }

    /// The session is being removed: last callbacks, buffers back to the pool.
    pub(crate) fn finish<H: Handler<State = S>>(&mut self, env: &mut Env<'_, H>) {
        if !self.eof && !matches!(self.phase, Phase::Linger) {
            self.close_notify();
        }
        self.report_close(env);
        self.leave_ws(env);
        self.phase = Phase::Linger;
        if self.out.capacity() > 0 {
            env.pool.give(std::mem::take(&mut self.out));
        }
        if self.inbuf.capacity() > 0 {
            env.pool.give(std::mem::take(&mut self.inbuf));
        }
    }

    /// Returns `true`: remove the session.
    fn teardown<H: Handler<State = S>>(&mut self, env: &mut Env<'_, H>) -> bool {
        self.report_close(env);
        true
    }

    fn drained<H: Handler<State = S>>(&mut self, env: &mut Env<'_, H>) {
        self.ws_event(env, "on_drain", |h, s, v| h.on_drain(s, v));
    }

    /// Run `on_open` or `on_drain` (`what`) on an open WebSocket, then carry out a close the
    /// callback asked for. A panic kills the connection.
    fn ws_event<H: Handler<State = S>>(
        &mut self,
        env: &mut Env<'_, H>,
        what: &str,
        callback: impl FnOnce(&H, &mut S, &mut WebSocket<'_>),
    ) {
        let local = self.local(env);
        let Phase::Ws(ws) = &mut self.phase else {
            return;
        };
        let parts = Parts {
            id: self.id,
            peer: self.peer,
            local,
            out: &mut self.out,
            out_pos: self.out_pos,
            subs: &mut self.subs,
            state: &mut self.state,
        };
        if !ws_callback(env, parts, &mut ws.ctl, what, callback) {
            self.kill = true;
        }
        apply_close_request(ws, &mut self.out, env.now, &mut self.since);
    }

    /// Write queued output until the socket would block.
    fn flush<H: Handler>(&mut self, env: &mut Env<'_, H>) {
        let (written, result) = self.write_out();
        env.stats.bytes_out += written as u64;
        let progress = written > 0;
        if let Err(e) = result {
            log::debug!("{}: write failed: {e}", self.id);
            self.kill = true;
        }
        if !self.tls_pending() && self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            self.stalled_since = None;
            if self.out.capacity() > 0 {
                env.pool.give(std::mem::take(&mut self.out));
            }
            return;
        }
        {
            if progress || self.stalled_since.is_none() {
                self.stalled_since = Some(env.now);
            }
            if self.out_pos >= self.out.len() / 2 {
                self.out.drain(..self.out_pos);
                self.out_pos = 0;
            }
        }
    }

    /// Read until the socket would block (or the fairness bound), feeding the core.
    fn read<H: Handler<State = S>>(&mut self, env: &mut Env<'_, H>, scratch: &mut [u8]) {
        if self.held {
            if self.read_paused || self.kill {
                return;
            }
            // Input already read comes first; it may be held again.
            self.held = false;
            self.process_inbuf(env, self.in_len);
        }
        for _ in 0..MAX_READS {
            if self.read_paused || self.eof || self.kill {
                return;
            }
            let lingering = matches!(self.phase, Phase::Linger);
            let asked;
            let result = if self.in_len == 0 || lingering {
                asked = scratch.len();
                self.recv(scratch)
            } else {
                if self.in_len == self.inbuf.len() && !self.grow_inbuf(env.config) {
                    // Only a peer breaking the core's bounds gets here; the core reports
                    // its own limit errors before the buffer is full.
                    self.kill = true;
                    return;
                }
                let mut spare = std::mem::take(&mut self.inbuf);
                let room = spare.get_mut(self.in_len..).unwrap_or_default();
                asked = room.len();
                let result = self.recv(room);
                self.inbuf = spare;
                result
            };
            let n = match result {
                Ok(0) => {
                    self.on_eof();
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("{}: read failed: {e}", self.id);
                    self.eof = true;
                    self.kill = true;
                    return;
                }
            };
            env.stats.bytes_in += n as u64;
            self.last_read = env.now;
            if lingering {
                self.lingered += n;
                if self.lingered > MAX_LINGER_BYTES {
                    self.kill = true;
                    return;
                }
                if n < asked && !self.hup && !self.is_tls() {
                    return;
                }
                continue;
            }
            if self.in_len == 0 {
                let data = scratch.get_mut(..n).unwrap_or_default();
                let used = self.process(env, data);
                let rest = data.get(used..).unwrap_or_default();
                if !rest.is_empty() && !matches!(self.phase, Phase::Linger) {
                    self.stash(env.pool, rest);
                }
            } else {
                self.process_inbuf(env, self.in_len + n);
            }
            if n < asked && !self.hup && !self.is_tls() {
                // A short read drained the socket, and a new arrival raises a new edge. (With
                // the peer's FIN already reported, read on to see the EOF. Through TLS a short
                // read of plaintext says nothing about the socket.)
                return;
            }
        }
        env.resume.push(self.id.key as usize);
    }

    /// Feed `inbuf[..len]` to the core and keep what it leaves at the front of `inbuf`.
    fn process_inbuf<H: Handler<State = S>>(&mut self, env: &mut Env<'_, H>, len: usize) {
        let mut buf = std::mem::take(&mut self.inbuf);
        let used = self.process(env, buf.get_mut(..len).unwrap_or_default());
        buf.copy_within(used..len, 0);
        self.in_len = len - used;
        self.inbuf = buf;
        if matches!(self.phase, Phase::Linger) {
            self.in_len = 0;
        }
    }

    /// Keep unconsumed input that arrived in the shared scratch buffer.
    fn stash(&mut self, pool: &mut Pool, rest: &[u8]) {
        let mut buf = pool.take();
        let size = pool.size().max(rest.len() * 2);
        buf.resize(size, 0);
        if let Some(dst) = buf.get_mut(..rest.len()) {
            dst.copy_from_slice(rest);
        }
        self.inbuf = buf;
        self.in_len = rest.len();
    }

    /// Double the read buffer, up to what the core can leave unconsumed.
    fn grow_inbuf(&mut self, config: &Config) -> bool {
        let max = config.limits.max_head.max(1024) + 64 * 1024;
        let len = self.inbuf.len();
        if len >= max {
            return false;
        }
        self.inbuf.resize((len * 2).clamp(4096, max), 0);
        true
    }

    fn on_eof(&mut self) {
        self.eof = true;
        match &mut self.phase {
            Phase::Http(h) => {
                if h.conn.handle_eof() {
                    log::debug!("{}: peer closed mid-request", self.id);
                }
            }
            Phase::Ws(_) | Phase::Linger => {}
        }
    }

    /// Feed `data` to the core; returns the bytes consumed.
    fn process<H: Handler<State = S>>(&mut self, env: &mut Env<'_, H>, data: &mut [u8]) -> usize {
        let mut used = 0;
        if matches!(self.phase, Phase::Http(_)) {
            let (n, upgraded) = self.process_http(env, data);
            used = n;
            if !upgraded {
                return used;
            }
            self.open_ws(env);
        }
        if matches!(self.phase, Phase::Ws(_)) {
            used += self.process_ws(env, data.get_mut(used..).unwrap_or_default());
            return used;
        }
        data.len()
    }

    fn process_http<H: Handler<State = S>>(
        &mut self,
        env: &mut Env<'_, H>,
        data: &[u8],
    ) -> (usize, bool) {
        let local = self.local(env);
        let Phase::Http(h) = &mut self.phase else {
            return (data.len(), false);
        };
        let h = &mut **h;
        let mut pos = 0;
        loop {
            if !h.in_body
                && pos < data.len()
                && self.out.len() - self.out_pos > env.config.write_high_water
            {
                // The next pipelined request waits, as unread bytes in the socket do, until
                // the output drains: else one read of small requests could queue any amount
                // of output.
                self.held = true;
                self.read_paused = true;
                break;
            }
            let mut slots = header_slots::<MAX_HEADER_SLOTS>();
            let input = data.get(pos..).unwrap_or_default();
            let (used, event) = match h.conn.handle_input(input, &mut slots) {
                Ok(found) => found,
                Err(e) => {
                    log::debug!("{}: bad request: {e}", self.id);
                    take_buffer(&mut self.out, env.pool);
                    h.conn.write_error(env.date, &mut self.out);
                    self.close_after_flush = true;
                    return (data.len(), false);
                }
            };
            pos += used;
            let buffered = self.out.len() - self.out_pos;
            take_buffer(&mut self.out, env.pool);
            let mut res = Responder {
                conn: &mut h.conn,
                out: &mut self.out,
                date: env.date,
                exchange: &mut h.exchange,
                peer: self.peer,
                local,
                buffered,
                control: env.control,
                body_done: false,
                end_pending: &mut h.end_pending,
            };
            let (handler, state) = (env.handler, &mut self.state);
            let ok = match event {
                http::Event::Request(req) => {
                    env.stats.requests += 1;
                    self.head_pending = false;
                    *res.exchange = Exchange::default();
                    *res.end_pending = false;
                    h.in_body = true;
                    let ok = catch_unwind(AssertUnwindSafe(|| {
                        handler.on_request(state, &req, &mut res);
                    }))
                    .is_ok();
                    if !res.exchange.started {
                        res.conn.write_continue(res.out);
                    }
                    ok
                }
                http::Event::Data(body) => {
                    catch_unwind(AssertUnwindSafe(|| handler.on_body(state, body, &mut res)))
                        .is_ok()
                }
                http::Event::End(_) => {
                    h.in_body = false;
                    res.body_done = true;
                    let ok =
                        catch_unwind(AssertUnwindSafe(|| handler.on_body_end(state, &mut res)))
                            .is_ok();
                    finish_response(&mut res);
                    self.since = env.now;
                    ok
                }
                http::Event::NeedData => {
                    if pos < data.len() && !h.in_body && !self.head_pending {
                        self.head_pending = true;
                        self.since = env.now;
                    }
                    break;
                }
                http::Event::Paused => break,
                http::Event::Upgraded => return (pos, true),
                http::Event::Closed => return (data.len(), false),
            };
            if !ok {
                log::error!("{}: handler panicked; closing the connection", self.id);
                self.kill = true;
                return (data.len(), false);
            }
            if h.exchange.broken {
                self.close_after_flush = true;
                return (data.len(), false);
            }
        }
        (pos, false)
    }

    /// The `101` was written: become a WebSocket and tell the application.
    fn open_ws<H: Handler<State = S>>(&mut self, env: &mut Env<'_, H>) {
        self.phase = Phase::Ws(Box::new(WsPhase {
            conn: ws::Conn::new(
                Role::Server,
                &env.config.limits,
                ws::Config::default(),
                None,
            ),
            ctl: WsCtl::default(),
            reason: None,
            reported: false,
        }));
        env.stats.websockets += 1;
        self.since = env.now;
        self.head_pending = false;
        self.ping_outstanding = false;
        if env.draining {
            self.start_drain(env);
            return;
        }
        take_buffer(&mut self.out, env.pool);
        self.ws_event(env, "on_open", |h, s, v| h.on_open(s, v));
    }

    fn process_ws<H: Handler<State = S>>(
        &mut self,
        env: &mut Env<'_, H>,
        data: &mut [u8],
    ) -> usize {
        let local = self.local(env);
        let Phase::Ws(ws) = &mut self.phase else {
            return data.len();
        };
        let ws = &mut **ws;
        take_buffer(&mut self.out, env.pool);
        let mut pos = 0;
        while pos < data.len() && !self.kill {
            ws.ctl.closing |= ws.conn.is_closing();
            let input = data.get_mut(pos..).unwrap_or_default();
            let (used, event) = match ws.conn.handle_input(input) {
                Ok(found) => found,
                Err(e) => {
                    log::debug!("{}: protocol error: {e}", self.id);
                    ws.reason.get_or_insert(Ended::Protocol(e));
                    ws.ctl.closing = true;
                    self.since = env.now;
                    pos = data.len();
                    break;
                }
            };
            pos += used;
            self.ping_outstanding = false;
            let msg = match event {
                ws::Event::Text(text) => Message::Text(text),
                ws::Event::Binary(bytes) => Message::Binary(bytes),
                ws::Event::Ping(_) => {
                    // Answer each ping before the next frame, so pongs keep their order
                    // relative to echoes and none is coalesced away.
                    ws.conn.poll_transmit(&mut self.out);
                    continue;
                }
                ws::Event::Pong(_) => continue,
                ws::Event::Close(frame) => {
                    if !ws.reported {
                        ws.reported = true;
                        let reason = match ws.reason {
                            Some(ended) => ended.as_reason(),
                            None => match frame {
                                Some(f) => CloseReason::Peer(Some(f.code), f.reason),
                                None => CloseReason::Peer(None, ""),
                            },
                        };
                        call_on_close(env, &mut self.state, self.id, reason);
                    }
                    if !ws.ctl.closing {
                        self.since = env.now;
                    }
                    ws.ctl.closing = true;
                    continue;
                }
                ws::Event::NeedData => break,
                ws::Event::Closed => {
                    pos = data.len();
                    break;
                }
            };
            env.stats.messages_in += 1;
            let parts = Parts {
                id: self.id,
                peer: self.peer,
                local,
                out: &mut self.out,
                out_pos: self.out_pos,
                subs: &mut self.subs,
                state: &mut self.state,
            };
            let on_message = |h: &H, s: &mut S, v: &mut WebSocket<'_>| h.on_message(s, v, msg);
            if !ws_callback(env, parts, &mut ws.ctl, "on_message", on_message) {
                self.kill = true;
            }
            apply_close_request(ws, &mut self.out, env.now, &mut self.since);
        }
        ws.conn.poll_transmit(&mut self.out);
        pos
    }

    /// Queue an encoded frame from another thread or a publish.
    pub(crate) fn push_frame<H: Handler>(&mut self, env: &mut Env<'_, H>, frame: &[u8]) {
        let Phase::Ws(ws) = &mut self.phase else {
            return;
        };
        if ws.ctl.closing || ws.conn.is_closing() {
            return;
        }
        if self.out.len() - self.out_pos + frame.len() > env.config.max_write_buffer {
            log::debug!("{}: write buffer over its bound; closing", self.id);
            ws.reason.get_or_insert(Ended::SlowConsumer);
            let _ = ws
                .conn
                .close(CloseCode::POLICY, "slow consumer", &mut self.out);
            ws.ctl.closing = true;
            self.since = env.now;
            return;
        }
        take_buffer(&mut self.out, env.pool);
        self.out.extend_from_slice(frame);
    }

    /// Close a WebSocket at another thread's request.
    pub(crate) fn close_ws<H: Handler>(
        &mut self,
        env: &mut Env<'_, H>,
        code: CloseCode,
        reason: &str,
    ) {
        let Phase::Ws(ws) = &mut self.phase else {
            return;
        };
        if ws.ctl.closing {
            return;
        }
        take_buffer(&mut self.out, env.pool);
        if ws.conn.close(code, reason, &mut self.out).is_ok() {
            ws.reason.get_or_insert(Ended::Local(code));
            ws.ctl.closing = true;
            self.since = env.now;
        }
    }

    /// The server is shutting down.
    pub(crate) fn start_drain<H: Handler>(&mut self, env: &mut Env<'_, H>) {
        match &mut self.phase {
            Phase::Http(h) => h.conn.start_drain(),
            Phase::Ws(ws) => {
                if !ws.ctl.closing {
                    take_buffer(&mut self.out, env.pool);
                    if ws
                        .conn
                        .close(CloseCode::GOING_AWAY, "server shutting down", &mut self.out)
                        .is_ok()
                    {
                        ws.reason.get_or_insert(Ended::Shutdown);
                        ws.ctl.closing = true;
                        self.since = env.now;
                    }
                }
            }
            Phase::Linger => {}
        }
    }
}

/// The TLS layer of a session, if its listener speaks TLS.
#[cfg(feature = "tls")]
pub(crate) type Tls = Option<Box<rustls::ServerConnection>>;
/// Without the `tls` feature there is never a TLS layer.
#[cfg(not(feature = "tls"))]
pub(crate) type Tls = Option<core::convert::Infallible>;

impl<S> Session<S> {
    fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    #[cfg(feature = "tls")]
    fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    #[cfg(not(feature = "tls"))]
    fn is_handshaking(&self) -> bool {
        false
    }

    /// Does the TLS layer hold records the socket has not taken?
    #[cfg(feature = "tls")]
    fn tls_pending(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    #[cfg(not(feature = "tls"))]
    fn tls_pending(&self) -> bool {
        false
    }

    /// Read plaintext: from the socket, or through the TLS layer. `Ok(0)` is the end of the
    /// stream (a TCP EOF, or TLS close_notify).
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return recv_tls(tls, &mut self.stream, buf);
        }
        self.stream.read(buf)
    }

    /// Write `out[out_pos..]` until the socket would block (through the TLS layer, if any).
    /// Returns the bytes written to the socket, and the error that stopped it, if one did.
    fn write_out(&mut self) -> (usize, io::Result<()>) {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return send_tls(tls, &mut self.stream, &self.out, &mut self.out_pos);
        }
        let mut written = 0;
        while self.out_pos < self.out.len() {
            match self
                .stream
                .write(self.out.get(self.out_pos..).unwrap_or_default())
            {
                Ok(0) => return (written, Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.out_pos += n;
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (written, Err(e)),
            }
        }
        (written, Ok(()))
    }

    /// Queue TLS close_notify and try to write it (a clean close).
    fn close_notify(&mut self) {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut().filter(|t| !t.is_handshaking()) {
            tls.send_close_notify();
            let _ = send_tls(tls, &mut self.stream, &[], &mut 0);
        }
    }
}

/// Read plaintext through TLS: drain what rustls has decrypted, else read records from the
/// socket and process them, writing any handshake records rustls wants to send.
#[cfg(feature = "tls")]
fn recv_tls(
    tls: &mut rustls::ServerConnection,
    stream: &mut TcpStream,
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The TCP stream ended without close_notify: an EOF all the same.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        if tls.read_tls(stream)? == 0 {
            return Ok(0);
        }
        if let Err(e) = tls.process_new_packets() {
            // Send the alert rustls queued, then fail the connection.
            let _ = tls.write_tls(stream);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        while tls.wants_write() {
            match tls.write_tls(stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Encrypt `out[*pos..]` as far as rustls's buffer limit allows and write the records until
/// the socket would block; loop while both make progress.
#[cfg(feature = "tls")]
fn send_tls(
    tls: &mut rustls::ServerConnection,
    stream: &mut TcpStream,
    out: &[u8],
    pos: &mut usize,
) -> (usize, io::Result<()>) {
    let mut written = 0;
    loop {
        let mut progress = false;
        if *pos < out.len() {
            match tls.writer().write(out.get(*pos..).unwrap_or_default()) {
                Ok(n) => {
                    *pos += n;
                    progress |= n > 0;
                }
                Err(e) => return (written, Err(e)),
            }
        }
        while tls.wants_write() {
            match tls.write_tls(stream) {
                Ok(0) => return (written, Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    written += n;
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (written, Ok(())),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (written, Err(e)),
            }
        }
        if *pos == out.len() || !progress {
            return (written, Ok(()));
        }
    }
}

/// The parts of a session a WebSocket callback sees, borrowed apart from its phase.
struct Parts<'a, S> {
    id: ConnId,
    peer: SocketAddr,
    local: SocketAddr,
    out: &'a mut Vec<u8>,
    out_pos: usize,
    subs: &'a mut Vec<u32>,
    state: &'a mut S,
}

/// Run a WebSocket callback (`what` names it in the log) with its [`WebSocket`] view; returns
/// `false` if it panicked, so that the caller closes the connection.
fn ws_callback<H: Handler>(
    env: &mut Env<'_, H>,
    parts: Parts<'_, H::State>,
    ctl: &mut WsCtl,
    what: &str,
    callback: impl FnOnce(&H, &mut H::State, &mut WebSocket<'_>),
) -> bool {
    let mut view = WebSocket {
        id: parts.id,
        out_pos: parts.out_pos,
        out: parts.out,
        max_write_buffer: env.config.max_write_buffer,
        ctl,
        topics: env.topics,
        subs: parts.subs,
        worker: env.me,
        control: env.control,
        peer: parts.peer,
        local: parts.local,
    };
    let handler = env.handler;
    let state = parts.state;
    let ok = catch_unwind(AssertUnwindSafe(|| callback(handler, state, &mut view))).is_ok();
    if !ok {
        log::error!("{}: {what} panicked; closing the connection", parts.id);
    }
    ok
}

/// Call [`Handler::on_close`], containing a panic (the connection is ending anyway).
fn call_on_close<H: Handler>(
    env: &Env<'_, H>,
    state: &mut H::State,
    id: ConnId,
    reason: CloseReason<'_>,
) {
    let closed = Closed {
        id,
        reason,
        control: env.control,
    };
    let handler = env.handler;
    if catch_unwind(AssertUnwindSafe(|| handler.on_close(state, closed))).is_err() {
        log::error!("{id}: on_close panicked");
    }
}

/// Give `out` a pooled buffer if it has none.
fn take_buffer(out: &mut Vec<u8>, pool: &mut Pool) {
    if out.capacity() == 0 {
        *out = pool.take();
    }
}

/// Apply a Close the application asked for in a callback.
fn apply_close_request(ws: &mut WsPhase, out: &mut Vec<u8>, now: Instant, since: &mut Instant) {
    if let Some(req) = ws.ctl.close.take() {
        if ws.conn.close(req.code, req.reason(), out).is_ok() {
            ws.reason.get_or_insert(Ended::Local(req.code));
            *since = now;
        }
    }
}

/// After the request body ended: write the end of the response the application finished
/// early, or a 500 if it gave none.
fn finish_response(res: &mut Responder<'_>) {
    if !res.exchange.started {
        log::error!("request left unanswered by the handler; answering 500");
        let _ = res.send(500, &[], b"");
        return;
    }
    if *res.end_pending || !res.exchange.ended {
        *res.end_pending = false;
        match res.conn.write_end(res.out) {
            Ok(()) => res.exchange.ended = true,
            Err(e) => {
                log::error!("response not finished properly: {e}; closing");
                res.exchange.broken = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// An idle WebSocket connection holds its slab entry and its boxed phase, and no
    /// buffers; keep that well under the 2 KiB per connection budget (the slab's spare
    /// capacity and the allocator's overhead come on top).
    #[test]
    fn an_idle_connection_fits_its_memory_budget() {
        let session = core::mem::size_of::<super::Session<()>>();
        let ws = core::mem::size_of::<super::WsPhase>();
        let http = core::mem::size_of::<super::HttpPhase>();
        assert!(session + ws <= 1024, "session {session} + ws {ws}");
        assert!(session + http <= 1024, "session {session} + http {http}");
    }
}
