//! One thread's event loop: the connections it owns, the stages of a run (opening, ready,
//! running, draining), and what a client connection provides to be driven by it.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use berth::ws::{Conn, MessageKind};
use berth::Limits;
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
use socket2::{Domain, Protocol, Socket, Type};

use crate::args::{Args, Mode};
use crate::http::HttpClient;
use crate::link::Link;
use crate::report::{Errors, Fail, ThreadReport};
use crate::tls::TlsSetup;
use crate::ws::WsClient;
use crate::{now, BATCH_BYTES, DRAIN, MAX_CONNECTING, MAX_FAILURES_IN_ROW, RETRY_DELAY};

/// What every thread reads: the arguments, and the start of the run, set by the main thread
/// once every thread has opened its connections.
pub(crate) struct Shared {
    pub(crate) args: Args,
    pub(crate) start: OnceLock<Instant>,
    /// The TLS client configuration, for wss:// and https://.
    pub(crate) tls: Option<TlsSetup>,
}

/// One thread's live counters, for the progress line. Each thread stores its running totals
/// once per loop iteration; only the main thread reads them.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Progress {
    pub(crate) ops: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) open: AtomicU64,
    pub(crate) ready: AtomicBool,
    pub(crate) finished: AtomicBool,
}

pub(crate) fn thread_main(
    shared: &Shared,
    me: &Progress,
    index: usize,
) -> Result<ThreadReport, String> {
    let a = &shared.args;
    let threads = a.threads;
    // Connection i of the whole run belongs to thread i % threads.
    let slots: Vec<usize> = (index..a.conns).step_by(threads).collect();
    let source = |slot: usize| {
        a.spread
            .then(|| Ipv4Addr::new(127, 0, 0, 2 + (slot % 199) as u8))
    };
    let mut rng = Rng::new(index as u64);
    match a.mode {
        Mode::Http => {
            let request = format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", a.path, a.host);
            let (wire, unit) = repeat_unit(request.as_bytes(), a.pipeline);
            let make = |i: usize, registry: &Registry, at: Instant| -> io::Result<HttpClient> {
                let stream = connect(a.target, source(slots[i]), registry, Token(i))?;
                let tls = shared.tls.as_ref().map(TlsSetup::connect).transpose()?;
                let link = Link::new(stream, tls, 64 * 1024, a.pipeline);
                Ok(HttpClient::new(link, at, a.connect_timeout))
            };
            Runner::new(shared, me, slots.len(), make, &wire, unit, &[])?.run()
        }
        Mode::WsEcho | Mode::Handshake | Mode::Idle => {
            let mut limits = Limits::default();
            limits.max_frame_payload = limits.max_frame_payload.max(a.size as u64);
            limits.max_message = limits.max_message.max(a.size);
            let expected = payload(a.size, index);
            let (wire, unit) = if a.mode == Mode::WsEcho {
                // A fixed masking key per thread. Masking exists so that a script in a browser
                // cannot choose the bytes an intermediary's cache sees (RFC 6455 §10.3); a
                // load generator on loopback has no such script and no intermediary, and one
                // key lets every message be the same pre-masked frame, encoded once.
                let key = (0x5a17_c38e_u32 ^ index as u32).to_be_bytes();
                let mut encoder = Conn::client(&limits, Box::new(move || key));
                let mut frame = Vec::with_capacity(a.size + berth::ws::MAX_HEADER_LEN);
                encoder
                    .send(a.kind, &expected, true, &mut frame)
                    .map_err(|e| format!("encoding the message: {e}"))?;
                repeat_unit(&frame, a.in_flight)
            } else {
                (Vec::new(), 0)
            };
            let rbuf = match a.mode {
                Mode::WsEcho => 64 * 1024,
                Mode::Handshake => 16 * 1024,
                // Enough for a 101 response; idle connections receive nothing else of size.
                _ => 4 * 1024,
            };
            let in_flight = if a.mode == Mode::WsEcho {
                a.in_flight
            } else {
                0
            };
            let make = |i: usize, registry: &Registry, at: Instant| -> io::Result<WsClient> {
                let stream = connect(a.target, source(slots[i]), registry, Token(i))?;
                let tls = shared.tls.as_ref().map(TlsSetup::connect).transpose()?;
                Ok(WsClient::new(
                    Link::new(stream, tls, rbuf, in_flight),
                    &limits,
                    &mut rng,
                    (&a.host, &a.path),
                    at,
                    a.connect_timeout,
                ))
            };
            Runner::new(shared, me, slots.len(), make, &wire, unit, &expected)?.run()
        }
    }
}

/// `unit` repeated so that `wanted` copies can go out in one write, within [`BATCH_BYTES`]
/// (and at least one copy).
fn repeat_unit(unit: &[u8], wanted: usize) -> (Vec<u8>, usize) {
    let copies = wanted.clamp(1, (BATCH_BYTES / unit.len().max(1)).max(1));
    (unit.repeat(copies), unit.len())
}

/// The message every connection of thread `index` sends: printable ASCII (so it is valid text),
/// different per thread so that crossed wires show up as mismatches.
fn payload(size: usize, index: usize) -> Vec<u8> {
    (0..size)
        .map(|i| b'!' + ((i * 7 + index * 13) % 94) as u8)
        .collect()
}

/// A non-blocking connect from `source` (port chosen by the kernel), registered for both
/// readiness kinds once: edge-triggered, so no re-registration is ever needed.
fn connect(
    target: SocketAddrV4,
    source: Option<Ipv4Addr>,
    registry: &Registry,
    token: Token,
) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    if let Some(ip) = source {
        socket.bind(&SocketAddrV4::new(ip, 0).into())?;
    }
    match socket.connect(&target.into()) {
        Ok(()) => {}
        // EINPROGRESS (Linux): the connect completes later and is reported as writable.
        Err(e) if e.raw_os_error() == Some(115) || e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    let mut stream = TcpStream::from_std(std::net::TcpStream::from(socket));
    registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
    Ok(stream)
}

/// xorshift64*: handshake nonces and masking keys for control frames. A load generator needs
/// distinct values, not unpredictable ones.
pub(crate) struct Rng(u64);

impl Rng {
    fn new(index: u64) -> Self {
        let t = std::time::UNIX_EPOCH
            .elapsed()
            .map_or(0, |d| d.as_nanos() as u64);
        Rng((t ^ (index.wrapping_add(1)).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn nonce(&mut self) -> [u8; 16] {
        let mut n = [0; 16];
        n[..8].copy_from_slice(&self.next().to_le_bytes());
        n[8..].copy_from_slice(&self.next().to_le_bytes());
        n
    }
}

/// Where a connection is. Both clients use the same phases (http skips `Upgrading` and
/// `Lingering`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Connecting,
    Upgrading,
    Open,
    /// This side is ending the connection: its Close is sent (ws), or it waits for the
    /// answers still in flight (http).
    Closing,
    /// The close handshake is done; waiting for the server to close TCP.
    Lingering,
    Done,
}

impl Phase {
    fn is_pending(self) -> bool {
        matches!(self, Phase::Connecting | Phase::Upgrading)
    }
}

/// What a connection needs from its thread while it handles one readiness event.
pub(crate) struct Ctx<'a> {
    pub(crate) now: Instant,
    /// Inside the measured window: completed operations count.
    pub(crate) counting: bool,
    /// Answer each echo or response with a new message or request.
    pub(crate) refill: bool,
    /// Handshake mode: a finished close handshake is the operation, and the upgrade's latency
    /// (connect to 101) goes into the histogram.
    pub(crate) cycles: bool,
    pub(crate) expected: &'a [u8],
    pub(crate) kind: MessageKind,
    pub(crate) unit: usize,
    ops: &'a mut u64,
    all_ops: &'a mut u64,
    bytes: &'a mut u64,
    pub(crate) errors: &'a mut Errors,
    pub(crate) hist: &'a mut Histogram<u64>,
    pub(crate) clean_closes: &'a mut u64,
}

impl Ctx<'_> {
    /// One operation finished; `since` is when it started.
    pub(crate) fn complete(&mut self, bytes: usize, since: Option<Instant>) {
        *self.all_ops += 1;
        if self.counting {
            *self.ops += 1;
            *self.bytes += bytes as u64;
            if let Some(t) = since {
                self.hist
                    .saturating_record(self.now.saturating_duration_since(t).as_nanos() as u64);
            }
        }
    }
}

/// A client connection, as the event loop drives it.
pub(crate) trait Client {
    fn phase(&self) -> Phase;
    /// Handle readiness: finish the connect, read until the socket is drained and act on what
    /// arrived. `Ok(true)`: stopped early with more to read; serve again soon.
    ///
    /// Drained means a read would block, or, unless `hup`, a read returned less than it had
    /// room for: Linux's epoll signals an edge-triggered socket again for every segment that
    /// arrives, so nothing that comes after a short read goes unnoticed, and the read that
    /// would only say WouldBlock is saved. With `hup` (the event also reported the peer's FIN,
    /// which no later edge will repeat) the loop reads on until WouldBlock or EOF.
    fn on_ready(&mut self, ctx: &mut Ctx<'_>, hup: bool) -> Result<bool, Fail>;
    fn link(&mut self) -> &mut Link;
    /// Queue `n` more messages or requests.
    fn kick(&mut self, n: usize, unit: usize, now: Instant) {
        if self.phase() == Phase::Open {
            self.link().out.owe(n, unit, now);
        }
    }
    /// Stop sending and end the connection politely.
    fn begin_close(&mut self, unit: usize, now: Instant);
    /// The phase's deadline passed: the error to count, if any. Leaves the client `Done`.
    fn expire(&mut self, now: Instant) -> Option<Fail>;
    /// The connection failed: write what it owes the peer if the socket takes it, then stop.
    fn fail(&mut self);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Opening this thread's connections.
    Opening,
    /// Open; waiting for the main thread to start the run.
    Ready,
    /// Load is running (warm-up, then the window).
    Running,
    /// The window is over: collecting answers in flight and closing.
    Draining,
}

struct Runner<'a, C, F> {
    shared: &'a Shared,
    me: &'a Progress,
    poll: Poll,
    slots: Vec<Option<C>>,
    make: F,
    wire: &'a [u8],
    unit: usize,
    expected: &'a [u8],
    stage: Stage,
    /// The measured window, once the run has started.
    window: Option<(Instant, Instant)>,
    began: Instant,
    next_open: usize,
    pending: usize,
    open: usize,
    live: usize,
    failures_in_row: u32,
    /// `all_ops` when the last connection ended, to tell whether the next one made progress.
    ops_at_last_end: u64,
    /// Slots waiting for [`RETRY_DELAY`] before reconnecting, in time order.
    retry: VecDeque<(Instant, usize)>,
    /// Connections to serve again without waiting for an event (they stopped early).
    again: Vec<usize>,
    /// The list being served while `again` collects the next; swapped, so neither reallocates.
    serving: Vec<usize>,
    report: ThreadReport,
    all_ops: u64,
}

impl<'a, C: Client, F: FnMut(usize, &Registry, Instant) -> io::Result<C>> Runner<'a, C, F> {
    fn new(
        shared: &'a Shared,
        me: &'a Progress,
        n: usize,
        make: F,
        wire: &'a [u8],
        unit: usize,
        expected: &'a [u8],
    ) -> Result<Self, String> {
        let poll = Poll::new().map_err(|e| format!("creating the event loop: {e}"))?;
        Ok(Runner {
            shared,
            me,
            poll,
            slots: (0..n).map(|_| None).collect(),
            make,
            wire,
            unit,
            expected,
            // Handshake mode opens nothing until the run starts.
            stage: if shared.args.mode == Mode::Handshake {
                Stage::Ready
            } else {
                Stage::Opening
            },
            window: None,
            began: now(),
            next_open: 0,
            pending: 0,
            open: 0,
            live: 0,
            failures_in_row: 0,
            ops_at_last_end: 0,
            retry: VecDeque::new(),
            again: Vec::new(),
            serving: Vec::new(),
            report: ThreadReport::new(),
            all_ops: 0,
        })
    }

    fn run(mut self) -> Result<ThreadReport, String> {
        let a = &self.shared.args;
        let mut events = Events::with_capacity(1024);
        // Every stage is bounded in time; this is the bound on the whole loop.
        let hard_end = self.began
            + a.connect_timeout
            + Duration::from_secs(10)
            + a.warmup
            + a.duration
            + DRAIN
            + Duration::from_secs(2);
        let open_by = self.began + a.connect_timeout;
        let mut drain_by = hard_end;
        let mut next_scan = self.began;
        loop {
            let t = now();
            if t >= hard_end {
                break;
            }
            match self.stage {
                Stage::Opening => {
                    self.open_more(t);
                    if (self.next_open == self.slots.len() && self.pending == 0) || t >= open_by {
                        self.report.open_time = t - self.began;
                        self.stage = Stage::Ready;
                        self.me.ready.store(true, Ordering::Release);
                    }
                }
                Stage::Ready => {
                    self.me.ready.store(true, Ordering::Release);
                    if let Some(&start) = self.shared.start.get() {
                        let window_start = start + a.warmup;
                        self.window = Some((window_start, window_start + a.duration));
                        self.stage = Stage::Running;
                        self.start_load(t);
                    }
                }
                Stage::Running => {
                    if self.window.is_some_and(|(_, end)| t >= end) {
                        self.report.open_at_end = self.open as u64;
                        self.stage = Stage::Draining;
                        drain_by = t + DRAIN;
                        for i in 0..self.slots.len() {
                            self.with_slot(i, t, |c, unit, t| c.begin_close(unit, t));
                        }
                    }
                }
                Stage::Draining => {
                    if self.live == 0 || t >= drain_by {
                        break;
                    }
                }
            }
            if t >= next_scan {
                self.expire(t);
                next_scan = t + Duration::from_millis(100);
            }
            while self.stage == Stage::Running && self.retry.front().is_some_and(|r| r.0 <= t) {
                if let Some((_, i)) = self.retry.pop_front() {
                    self.open_slot(i, t);
                }
            }

            let timeout = if !self.again.is_empty() {
                Duration::ZERO
            } else if let Some(&(at, _)) = self.retry.front() {
                at.saturating_duration_since(t)
                    .min(Duration::from_millis(20))
            } else {
                Duration::from_millis(20)
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
            for event in events.iter() {
                // A writable-only event needs no read (except to finish a connect).
                let hup = event.is_read_closed() || event.is_error();
                self.serve(event.token().0, event.is_readable() || hup, hup);
            }
            std::mem::swap(&mut self.again, &mut self.serving);
            for k in 0..self.serving.len() {
                self.serve(self.serving[k], true, true);
            }
            self.serving.clear();
            self.me.ops.store(self.all_ops, Ordering::Relaxed);
            self.me
                .errors
                .store(self.report.errors.total(), Ordering::Relaxed);
            self.me.open.store(self.open as u64, Ordering::Relaxed);
        }
        // Whatever is left is dropped here, which closes its socket.
        let mode = self.shared.args.mode;
        for slot in self.slots.iter_mut().filter_map(Option::as_mut) {
            if mode != Mode::Handshake && slot.phase() == Phase::Closing {
                self.report.errors.timeout += 1;
            }
        }
        Ok(self.report)
    }

    /// Start connects while fewer than [`MAX_CONNECTING`] are pending.
    fn open_more(&mut self, t: Instant) {
        while self.pending < MAX_CONNECTING && self.next_open < self.slots.len() {
            let i = self.next_open;
            self.next_open += 1;
            self.open_slot(i, t);
        }
    }

    fn open_slot(&mut self, i: usize, t: Instant) {
        if self.failures_in_row >= MAX_FAILURES_IN_ROW {
            return;
        }
        match (self.make)(i, self.poll.registry(), t) {
            Ok(client) => {
                self.slots[i] = Some(client);
                self.pending += 1;
                self.live += 1;
            }
            Err(_) => {
                self.report.errors.connect += 1;
                self.failures_in_row += 1;
                if self.stage == Stage::Running {
                    self.retry.push_back((t + RETRY_DELAY, i));
                }
            }
        }
    }

    /// The run starts: queue the first messages, or start the handshake loops.
    fn start_load(&mut self, t: Instant) {
        let a = &self.shared.args;
        match a.mode {
            Mode::WsEcho | Mode::Http => {
                let n = if a.mode == Mode::WsEcho {
                    a.in_flight
                } else {
                    a.pipeline
                };
                for i in 0..self.slots.len() {
                    self.with_slot(i, t, |c, unit, t| c.kick(n, unit, t));
                }
            }
            Mode::Handshake => {
                for i in 0..self.slots.len() {
                    self.open_slot(i, t);
                }
            }
            Mode::Idle => {}
        }
    }

    /// Apply `f` to slot `i` if it is live, then write what it owes and account for the
    /// phase change.
    fn with_slot(&mut self, i: usize, t: Instant, f: impl FnOnce(&mut C, usize, Instant)) {
        let unit = self.unit;
        let Some(c) = self.slots.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let before = c.phase();
        f(c, unit, t);
        self.flush(i);
        self.settle(i, before, t);
    }

    /// Check every live connection's deadline.
    fn expire(&mut self, t: Instant) {
        for i in 0..self.slots.len() {
            let Some(c) = self.slots[i].as_mut() else {
                continue;
            };
            let before = c.phase();
            if let Some(fail) = c.expire(t) {
                self.report.errors.count(fail);
            }
            self.settle(i, before, t);
        }
    }

    /// Handle a readiness event (or a retry) for slot `i`: read if `read` (or the connect is
    /// in progress), then write. `hup`: see [`Client::on_ready`].
    fn serve(&mut self, i: usize, read: bool, hup: bool) {
        let t = now();
        let counting = self
            .window
            .is_some_and(|(start, end)| t >= start && t < end);
        let a = &self.shared.args;
        let Runner {
            slots,
            report,
            all_ops,
            ..
        } = self;
        let Some(c) = slots.get_mut(i).and_then(Option::as_mut) else {
            // An event for a connection already dropped (or its successor on the same
            // token): spurious, and harmless.
            return;
        };
        let before = c.phase();
        if !read && before != Phase::Connecting {
            self.flush(i);
            self.settle(i, before, t);
            return;
        }
        let mut ctx = Ctx {
            now: t,
            counting,
            refill: self.stage == Stage::Running && matches!(a.mode, Mode::WsEcho | Mode::Http),
            cycles: a.mode == Mode::Handshake,
            expected: self.expected,
            kind: a.kind,
            unit: self.unit,
            ops: &mut report.ops,
            all_ops,
            bytes: &mut report.bytes,
            errors: &mut report.errors,
            hist: &mut report.hist,
            clean_closes: &mut report.clean_closes,
        };
        let result = c.on_ready(&mut ctx, hup);
        if let Some(session) = c.link().take_handshake() {
            self.report.tls.note(session);
        }
        match result {
            Ok(true) => self.again.push(i),
            Ok(false) => {}
            Err(fail) => {
                self.report.errors.count(fail);
                if fail == Fail::Tls && self.report.tls.first_error.is_none() {
                    self.report.tls.first_error = c.link().tls_error();
                }
                c.fail();
            }
        }
        self.flush(i);
        self.settle(i, before, t);
    }

    /// Write what slot `i` owes, in as few writes as the socket allows.
    fn flush(&mut self, i: usize) {
        let Some(c) = self.slots.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        if c.phase() == Phase::Connecting || c.phase() == Phase::Done {
            return;
        }
        match c.link().flush(self.wire, self.unit) {
            Ok(true) => self.again.push(i),
            Ok(false) => {}
            Err(_) => {
                self.report.errors.io += 1;
                c.fail();
            }
        }
    }

    /// Account for slot `i` moving from `before` to its current phase; drop it when done, and
    /// start its successor where the mode loops.
    fn settle(&mut self, i: usize, before: Phase, t: Instant) {
        let a = &self.shared.args;
        let Some(c) = self.slots[i].as_mut() else {
            return;
        };
        if before == c.phase() {
            return;
        }
        if before.is_pending() && !c.phase().is_pending() {
            self.pending -= 1;
            if c.phase() != Phase::Done {
                self.report.opened += 1;
            }
            if c.phase() == Phase::Open && self.stage == Stage::Running {
                match a.mode {
                    // Opened late (or reopened): it joins the load.
                    Mode::WsEcho => c.kick(a.in_flight, self.unit, t),
                    Mode::Http => c.kick(a.pipeline, self.unit, t),
                    // The upgrade is the point: close straight away.
                    Mode::Handshake => c.begin_close(self.unit, t),
                    Mode::Idle => {}
                }
                self.flush(i);
            }
        }
        let after = self.slots[i].as_ref().map_or(Phase::Done, |c| c.phase());
        if before == Phase::Open && after != Phase::Open {
            self.open -= 1;
        } else if before != Phase::Open && after == Phase::Open {
            self.open += 1;
        }
        if after == Phase::Done {
            self.slots[i] = None;
            self.live -= 1;
            let progressed = self.all_ops != self.ops_at_last_end;
            self.ops_at_last_end = self.all_ops;
            if progressed {
                self.failures_in_row = 0;
            } else {
                self.failures_in_row += 1;
            }
            if matches!(a.mode, Mode::Handshake | Mode::Http) && self.stage == Stage::Running {
                if progressed {
                    self.open_slot(i, t);
                } else {
                    self.retry.push_back((t + RETRY_DELAY, i));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth::ws::Event as WsEvent;

    #[test]
    fn pre_encoded_frames_decode_to_the_payload() {
        let limits = Limits::default();
        let payload = payload(300, 1);
        let key = [1, 2, 3, 4];
        let mut encoder = Conn::client(&limits, Box::new(move || key));
        let mut frame = Vec::new();
        encoder
            .send(MessageKind::Text, &payload, true, &mut frame)
            .unwrap();
        let (mut wire, unit) = repeat_unit(&frame, 3);
        assert_eq!((unit, wire.len()), (frame.len(), 3 * frame.len()));
        // The same masked bytes, three times over, are three valid messages.
        let mut server = Conn::server(&limits);
        let mut off = 0;
        for _ in 0..3 {
            let (used, event) = server.handle_input(&mut wire[off..]).unwrap();
            assert_eq!(event, WsEvent::Text(std::str::from_utf8(&payload).unwrap()));
            off += used;
        }
        assert_eq!(off, wire.len());
    }
}
