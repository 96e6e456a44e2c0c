//! One connection: the phase state machine that pumps bytes between its transport and the
//! sans-I/O core.
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
//! The socket, its TLS layer and the pooled read and write buffers are the session's
//! [`Transport`] (`transport.rs`): the session decides when to read, what the core makes of the
//! input and when to flush, close or linger; the transport moves the bytes. Input is read into
//! the worker's shared scratch buffer and handed to the core in place; the transport keeps
//! only what the core leaves unconsumed.

use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use super::buffer::Pool;
use super::handler::{CloseReason, Closed, ConnId, Ended, Handler, Message, Responder, WebSocket};
use super::session_timer::{Timer, TimerTable};
use super::timer::{Entry, TimerWheel};
use super::transport::{Recv, Transport};
use super::worker::{Topics, WorkerShared};
use super::{Config, Control, Stats};
use crate::http::{self, header_slots, DateCache, ServerConn};
use crate::ws::{self, write_frame, CloseCode, OpCode, Role};

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

/// The WebSocket phase: the core's connection holds where the close handshake stands; the
/// runtime adds only why it is closing and whether `on_close` was called.
#[derive(Debug)]
struct WsPhase {
    conn: ws::Conn,
    /// Why the connection is closing, once known (the first cause wins).
    reason: Option<Ended>,
    /// `on_close` was called.
    reported: bool,
}

#[derive(Debug)]
enum Phase {
    /// The core's connection holds the exchange in progress: where the request body and the
    /// response stand.
    Http(Box<ServerConn>),
    Ws(Box<WsPhase>),
    Linger,
}

/// One connection.
pub(crate) struct Session<S> {
    /// The socket, its TLS layer if any, and the pooled read and write buffers.
    io: Transport,
    peer: SocketAddr,
    /// Which of the worker's listeners accepted the connection.
    listener: u16,
    id: ConnId,
    phase: Phase,
    state: S,
    /// Topics this connection is subscribed to (indexes into the worker's `Topics`).
    subs: Vec<u32>,
    /// The tick of this session's live timer-wheel entry.
    timer_tick: Option<u64>,
    /// The waits that run, each set by the transition that starts it.
    timers: TimerTable,
    /// Reading stopped: the output is over the high-water mark.
    read_paused: bool,
    /// The transport's read buffer holds pipelined requests left unparsed because the output
    /// was over the high-water mark; they are parsed, before anything more is read, once
    /// reading resumes.
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
        io: Transport,
        peer: SocketAddr,
        listener: u16,
        key: u32,
        gen: u32,
        worker: u32,
        config: &Config,
        now: Instant,
    ) -> Self {
        Session {
            io,
            peer,
            listener,
            id: ConnId { worker, key, gen },
            phase: Phase::Http(Box::new(ServerConn::new(&config.limits))),
            state: S::default(),
            subs: Vec::new(),
            timer_tick: None,
            timers: TimerTable::new(now),
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
        // The entry may fire early (the deadline moved later, or lies past the wheel's
        // span): then nothing is due and the session re-arms.
        match self.timers.expired(now, &env.config.timeouts) {
            None => {}
            Some(Timer::Write) => {
                log::debug!("{}: peer stopped reading; closing", self.id);
                if let Phase::Ws(ws) = &mut self.phase {
                    ws.reason.get_or_insert(Ended::SlowConsumer);
                }
                return self.teardown(env);
            }
            Some(Timer::Header) => {
                if self.io.is_handshaking() {
                    log::debug!("{}: TLS handshake timed out", self.id);
                    return self.teardown(env);
                }
                self.request_timed_out(env.date, env.pool);
            }
            Some(Timer::Body) => self.request_timed_out(env.date, env.pool),
            // A response still being written is timed by `write`; once it is out, the idle
            // connection closes.
            Some(Timer::KeepAlive) if !self.io.pending() => return self.teardown(env),
            Some(Timer::KeepAlive) => {}
            Some(Timer::Ping) => {
                write_frame(OpCode::Ping, true, None, b"", self.io.out_from(env.pool));
                self.timers.set(Timer::Pong, now);
            }
            Some(Timer::Pong) => {
                log::debug!("{}: no pong; closing", self.id);
                if let Phase::Ws(ws) = &mut self.phase {
                    ws.reason.get_or_insert(Ended::Timeout);
                }
                return self.teardown(env);
            }
            Some(Timer::Close) => {
                if let Phase::Ws(ws) = &mut self.phase {
                    ws.reason.get_or_insert(Ended::Timeout);
                }
                return self.teardown(env);
            }
            Some(Timer::Linger) => return self.teardown(env),
        }
        self.after(env)
    }

    /// A head or body did not arrive in time: the core fails the connection, answers 408
    /// unless a response has started, and reports itself closed.
    fn request_timed_out(&mut self, date: &DateCache, pool: &mut Pool) {
        // Nothing more is awaited from the peer: the core is failed for good.
        self.timers.stop(Timer::Header);
        self.timers.stop(Timer::Body);
        if let Phase::Http(conn) = &mut self.phase {
            conn.handle_timeout();
            conn.write_error(date, self.io.out_from(pool));
        }
        log::debug!("{}: request timed out", self.id);
    }

    /// Arm this session's timer for its next deadline, if it has none that early.
    pub(crate) fn arm<H: Handler>(&mut self, env: &mut Env<'_, H>) {
        let Some(deadline) = self.timers.next(&env.config.timeouts) else {
            return;
        };
        let tick = env.wheel.tick_for(deadline);
        if self.timer_tick.map_or(true, |armed| tick < armed) {
            self.timer_tick = Some(env.wheel.arm(self.id.key, self.id.gen, deadline));
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
            if self.io.unsent() > high {
                self.owe_drain = true;
            }
            self.flush(env);
            if self.kill {
                return self.teardown(env);
            }
            let unsent = self.io.unsent();
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
            Phase::Http(conn) => conn.is_closed() || self.close_after_flush,
            Phase::Ws(ws) => ws.conn.is_closed() || self.close_after_flush,
            Phase::Linger => false,
        };
        if finished {
            if matches!(&self.phase, Phase::Ws(ws) if ws.conn.is_closed() && ws.conn.error().is_none())
                && !self.io.pending()
                && !self.io.is_tls()
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
                if !self.io.pending() || matches!(self.phase, Phase::Ws(_)) {
                    return self.teardown(env);
                }
            } else if !self.io.pending() {
                self.linger(env);
            }
        } else if self.eof {
            match self.phase {
                Phase::Ws(_) | Phase::Linger => return self.teardown(env),
                Phase::Http(_) if !self.io.pending() => return self.teardown(env),
                Phase::Http(_) => self.close_after_flush = true,
            }
        }
        self.io.release_input(env.pool);
        self.arm(env);
        false
    }

    /// Enter `Linger`: the output is flushed; shut down the write side and wait for EOF.
    fn linger<H: Handler<State = S>>(&mut self, env: &mut Env<'_, H>) {
        self.report_close(env);
        self.leave_ws(env);
        self.io.close_notify();
        self.io.shutdown_write();
        self.phase = Phase::Linger;
        self.timers.set(Timer::Linger, env.now);
        self.io.drop_input();
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
            self.io.close_notify();
        }
        self.report_close(env);
        self.leave_ws(env);
        self.phase = Phase::Linger;
        self.io.release(env.pool);
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
            out_pos: self.io.out_pos(),
            out: self.io.out(),
            subs: &mut self.subs,
            state: &mut self.state,
        };
        let writer = ws.conn.writer();
        if !ws_callback(env, parts, writer, &mut ws.reason, what, callback) {
            self.kill = true;
        }
        closed_by_app(writer, &mut self.timers);
    }

    /// Write queued output until the socket would block, and time a stall.
    fn flush<H: Handler>(&mut self, env: &mut Env<'_, H>) {
        let (written, result) = self.io.flush(env.pool);
        env.stats.bytes_out += written as u64;
        let progress = written > 0;
        if let Err(e) = result {
            log::debug!("{}: write failed: {e}", self.id);
            self.kill = true;
        }
        if !self.io.pending() {
            self.timers.stop(Timer::Write);
            if let Phase::Ws(ws) = &mut self.phase {
                if ws.conn.is_awaiting_close() && !self.timers.is_set(Timer::Close) {
                    // Our Close is out (nothing is queued after it): the wait for the
                    // peer's Close starts now, once (it stops only when that Close is in,
                    // which closes the connection).
                    self.timers.set(Timer::Close, env.now);
                }
            }
            return;
        }
        if progress || !self.timers.is_set(Timer::Write) {
            self.timers.set(Timer::Write, env.now);
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
            self.process_inbuf(env);
        }
        // What the core can leave unconsumed: a head at its limit, or part of a frame.
        let max_held = env.config.limits.max_head.max(1024) + 64 * 1024;
        for _ in 0..MAX_READS {
            if self.read_paused || self.eof || self.kill {
                return;
            }
            let lingering = matches!(self.phase, Phase::Linger);
            let (n, held, drained) = match self.io.recv(scratch, lingering, max_held) {
                Ok(Recv::Data { n, held, drained }) => (n, held, drained),
                Ok(Recv::Eof) => {
                    self.on_eof();
                    return;
                }
                Ok(Recv::Full) => {
                    // Only a peer breaking the core's bounds gets here; the core reports
                    // its own limit errors before the buffer is full.
                    self.kill = true;
                    return;
                }
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
            self.timers.read_at(env.now);
            if lingering {
                self.lingered += n;
                if self.lingered > MAX_LINGER_BYTES {
                    self.kill = true;
                    return;
                }
                if drained && !self.hup {
                    return;
                }
                continue;
            }
            if held {
                self.process_inbuf(env);
            } else {
                let data = scratch.get_mut(..n).unwrap_or_default();
                let used = self.process(env, data);
                let rest = data.get(used..).unwrap_or_default();
                if !rest.is_empty() && !matches!(self.phase, Phase::Linger) {
                    self.io.stash(env.pool, rest);
                }
            }
            if drained && !self.hup {
                // A short read drained the socket, and a new arrival raises a new edge. (With
                // the peer's FIN already reported, read on to see the EOF. Through TLS a short
                // read of plaintext says nothing about the socket: the transport never reports
                // one drained.)
                return;
            }
        }
        env.resume.push(self.id.key as usize);
    }

    /// Feed the held input to the core and keep what it leaves.
    fn process_inbuf<H: Handler<State = S>>(&mut self, env: &mut Env<'_, H>) {
        let (mut buf, len) = self.io.lend_input();
        let used = self.process(env, buf.get_mut(..len).unwrap_or_default());
        self.io.restore_input(buf, len, used);
        if matches!(self.phase, Phase::Linger) {
            self.io.drop_input();
        }
    }

    fn on_eof(&mut self) {
        self.eof = true;
        match &mut self.phase {
            Phase::Http(conn) => {
                // The rest of a body will not come (a response still being written is timed
                // by `write`).
                self.timers.stop(Timer::Body);
                if conn.handle_eof() {
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
        let Phase::Http(conn) = &mut self.phase else {
            return (data.len(), false);
        };
        let conn = &mut **conn;
        let mut pos = 0;
        loop {
            if !conn.wants_body()
                && pos < data.len()
                && self.io.unsent() > env.config.write_high_water
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
            let (used, event) = match conn.handle_input(input, &mut slots) {
                Ok(found) => found,
                Err(e) => {
                    log::debug!("{}: bad request: {e}", self.id);
                    // The core failed for good: nothing more is awaited from the peer.
                    self.timers.stop(Timer::Header);
                    self.timers.stop(Timer::Body);
                    conn.write_error(env.date, self.io.out_from(env.pool));
                    return (data.len(), false);
                }
            };
            pos += used;
            let buffered = self.io.unsent();
            let mut res = Responder {
                conn,
                out: self.io.out_from(env.pool),
                date: env.date,
                peer: self.peer,
                local,
                buffered,
                control: env.control,
                broken: false,
            };
            let (handler, state) = (env.handler, &mut self.state);
            let ok = match event {
                http::Event::Request(req) => {
                    env.stats.requests += 1;
                    // The head is in. What follows is a body, or the handler's answer (the
                    // End comes at once).
                    self.timers.stop(Timer::Header);
                    let ok = catch_unwind(AssertUnwindSafe(|| {
                        handler.on_request(state, &req, &mut res);
                    }))
                    .is_ok();
                    if res.conn.wants_body() {
                        // From now: the read that brought the head, or (for a head held back
                        // while the output drained) the moment reading resumed.
                        self.timers.set(Timer::Body, env.now);
                    }
                    // Only if the request is still waiting for its answer and asked for it.
                    res.conn.write_continue(res.out);
                    ok
                }
                http::Event::Data(body) => {
                    catch_unwind(AssertUnwindSafe(|| handler.on_body(state, body, &mut res)))
                        .is_ok()
                }
                http::Event::End(_) => {
                    let ok =
                        catch_unwind(AssertUnwindSafe(|| handler.on_body_end(state, &mut res)))
                            .is_ok();
                    finish_response(&mut res);
                    self.timers.set(Timer::KeepAlive, env.now);
                    ok
                }
                http::Event::NeedData => {
                    if pos < data.len()
                        && !res.conn.wants_body()
                        && !self.timers.is_set(Timer::Header)
                    {
                        // A head has started: it must be whole within `header` of now.
                        self.timers.set(Timer::Header, env.now);
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
            if res.broken {
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
            reason: None,
            reported: false,
        }));
        env.stats.websockets += 1;
        self.timers.set(Timer::Ping, env.now);
        if env.draining {
            self.start_drain(env);
            return;
        }
        self.io.out_from(env.pool);
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
        self.io.out_from(env.pool);
        let mut pos = 0;
        while pos < data.len() && !self.kill {
            let input = data.get_mut(pos..).unwrap_or_default();
            let (used, event, writer) = match ws.conn.handle_input_split(input) {
                Ok(found) => found,
                Err(e) => {
                    log::debug!("{}: protocol error: {e}", self.id);
                    ws.reason.get_or_insert(Ended::Protocol(e));
                    // Our Close carries the error (unless one was sent: then the connection
                    // is closed), and nothing more is awaited from the peer.
                    stop_ws_waits(&mut self.timers);
                    self.timers.stop(Timer::Close);
                    pos = data.len();
                    break;
                }
            };
            pos += used;
            if self.timers.is_set(Timer::Pong) {
                // Any frame answers a ping: silence is timed from this read again.
                self.timers.set(Timer::Ping, env.now);
            }
            let msg = match event {
                ws::Event::Text(text) => Message::Text(text),
                ws::Event::Binary(bytes) => Message::Binary(bytes),
                ws::Event::Ping(_) => {
                    // Answer each ping before the next frame, so pongs keep their order
                    // relative to echoes and none is coalesced away.
                    writer.poll_transmit(self.io.out());
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
                    // The peer's Close is in: its echo (or our Close before it) is timed by
                    // `write`, and the close wait, if ours was out, is over.
                    stop_ws_waits(&mut self.timers);
                    self.timers.stop(Timer::Close);
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
                out_pos: self.io.out_pos(),
                out: self.io.out(),
                subs: &mut self.subs,
                state: &mut self.state,
            };
            let on_message = |h: &H, s: &mut S, v: &mut WebSocket<'_>| h.on_message(s, v, msg);
            if !ws_callback(env, parts, writer, &mut ws.reason, "on_message", on_message) {
                self.kill = true;
            }
            closed_by_app(writer, &mut self.timers);
        }
        ws.conn.poll_transmit(self.io.out());
        pos
    }

    /// Queue an encoded frame from another thread or a publish.
    pub(crate) fn push_frame<H: Handler>(&mut self, env: &mut Env<'_, H>, frame: &[u8]) {
        let Phase::Ws(ws) = &mut self.phase else {
            return;
        };
        if ws.conn.is_closing() {
            return;
        }
        if self.io.unsent() + frame.len() > env.config.max_write_buffer {
            log::debug!("{}: write buffer over its bound; closing", self.id);
            ws.reason.get_or_insert(Ended::SlowConsumer);
            let _ = ws
                .conn
                .close(CloseCode::POLICY, "slow consumer", self.io.out());
            stop_ws_waits(&mut self.timers);
            return;
        }
        self.io.out_from(env.pool).extend_from_slice(frame);
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
        if ws.conn.is_closing() {
            return;
        }
        if ws
            .conn
            .close(code, reason, self.io.out_from(env.pool))
            .is_ok()
        {
            ws.reason.get_or_insert(Ended::Local(code));
            stop_ws_waits(&mut self.timers);
        }
    }

    /// The server is shutting down.
    pub(crate) fn start_drain<H: Handler>(&mut self, env: &mut Env<'_, H>) {
        match &mut self.phase {
            Phase::Http(conn) => conn.start_drain(),
            Phase::Ws(ws) => {
                if !ws.conn.is_closing() {
                    let out = self.io.out_from(env.pool);
                    if ws
                        .conn
                        .close(CloseCode::GOING_AWAY, "server shutting down", out)
                        .is_ok()
                    {
                        ws.reason.get_or_insert(Ended::Shutdown);
                        stop_ws_waits(&mut self.timers);
                    }
                }
            }
            Phase::Linger => {}
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
    writer: &mut ws::Writer,
    ended: &mut Option<Ended>,
    what: &str,
    callback: impl FnOnce(&H, &mut H::State, &mut WebSocket<'_>),
) -> bool {
    let mut view = WebSocket {
        id: parts.id,
        writer,
        ended,
        out_pos: parts.out_pos,
        out: parts.out,
        max_write_buffer: env.config.max_write_buffer,
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

/// After a WebSocket callback: if the connection is closing (the callback closed it, through
/// the core), the waits of an open connection are over. Stopping them again is harmless.
fn closed_by_app(writer: &ws::Writer, timers: &mut TimerTable) {
    if writer.is_closing() {
        stop_ws_waits(timers);
    }
}

/// A WebSocket starts closing (a Close is queued or received): no more pings, and no pong
/// awaited. Until our Close reaches the socket only `write` times the output; then
/// [`Timer::Close`] starts (in `flush`).
fn stop_ws_waits(timers: &mut TimerTable) {
    timers.stop(Timer::Ping);
    timers.stop(Timer::Pong);
}

/// After the request body ended (and `on_body_end` returned): answer 500 if the handler gave
/// no response, and end a response it started and left open. A response it ended already
/// (before the body's end, too) is complete in the core.
fn finish_response(res: &mut Responder<'_>) {
    if res.conn.wants_response() {
        log::error!("request left unanswered by the handler; answering 500");
        let _ = res.send(500, &[], b"");
    } else if res.conn.is_response_open() {
        if let Err(e) = res.conn.write_end(res.out) {
            log::error!("response not finished properly: {e}; closing");
            res.broken = true;
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
        let http = core::mem::size_of::<crate::http::ServerConn>();
        assert!(session + ws <= 1024, "session {session} + ws {ws}");
        assert!(session + http <= 1024, "session {session} + http {http}");
    }
}
