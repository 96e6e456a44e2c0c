//! One worker: a thread with its own `mio::Poll`, listeners, sessions, timer wheel and
//! buffer pool. Workers share nothing on the hot path; other threads reach a worker through
//! its command queue and waker.

use std::collections::HashMap;
use std::io;
use std::net::TcpListener as StdListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use super::buffer::Pool;
use super::clock::Clock;
use super::handler::{Handler, SendError};
use super::session::{Env, Session};
use super::timer::{Entry, TimerWheel};
use super::transport::Transport;
use super::{Config, Control, ListenerTls, Stats};
use crate::http::DateCache;
use crate::ws::CloseCode;

/// The waker's token; listeners count down from just below it, sessions up from zero.
pub(crate) const WAKER: Token = Token(usize::MAX);
const LISTENER_BASE: usize = usize::MAX - 1;
/// Commands a worker's queue holds before senders get [`SendError::Busy`].
const MAX_QUEUED: usize = 1 << 16;
/// How long accepting pauses after an accept error such as EMFILE.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How often a persisting accept error is logged.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);
/// Events taken from the poll at once.
const EVENTS: usize = 1024;

/// A message published to a topic: the encoded frame, shared by every worker.
#[derive(Debug)]
pub(crate) struct Published {
    pub(crate) topic: Box<str>,
    pub(crate) frame: Vec<u8>,
}

/// Work sent to a worker from another thread.
#[derive(Debug)]
pub(crate) enum Command {
    /// Append an encoded frame to a connection's output.
    Frame { key: u32, gen: u32, frame: Vec<u8> },
    /// Close a WebSocket connection.
    Close {
        key: u32,
        gen: u32,
        code: CloseCode,
        reason: Box<str>,
    },
    /// Deliver a frame to a topic's subscribers.
    Publish(Arc<Published>),
}

/// Counters a worker publishes once per loop turn.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    connections: AtomicU64,
    websockets: AtomicU64,
    accepted: AtomicU64,
    requests: AtomicU64,
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Counters {
    fn store(&self, s: &Stats) {
        self.connections.store(s.connections, Ordering::Relaxed);
        self.websockets.store(s.websockets, Ordering::Relaxed);
        self.accepted.store(s.accepted, Ordering::Relaxed);
        self.requests.store(s.requests, Ordering::Relaxed);
        self.messages_in.store(s.messages_in, Ordering::Relaxed);
        self.bytes_in.store(s.bytes_in, Ordering::Relaxed);
        self.bytes_out.store(s.bytes_out, Ordering::Relaxed);
    }

    pub(crate) fn add_to(&self, s: &mut Stats) {
        s.connections += self.connections.load(Ordering::Relaxed);
        s.websockets += self.websockets.load(Ordering::Relaxed);
        s.accepted += self.accepted.load(Ordering::Relaxed);
        s.requests += self.requests.load(Ordering::Relaxed);
        s.messages_in += self.messages_in.load(Ordering::Relaxed);
        s.bytes_in += self.bytes_in.load(Ordering::Relaxed);
        s.bytes_out += self.bytes_out.load(Ordering::Relaxed);
    }
}

/// The part of a worker other threads see.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub(crate) index: usize,
    waker: Waker,
    queue: Mutex<Vec<Command>>,
    pub(crate) counters: Counters,
}

impl WorkerShared {
    pub(crate) fn new(index: usize, waker: Waker) -> Self {
        WorkerShared {
            index,
            waker,
            queue: Mutex::new(Vec::new()),
            counters: Counters::default(),
        }
    }

    /// Queue a command and wake the worker if the queue was empty.
    pub(crate) fn push(&self, command: Command) -> Result<(), SendError> {
        let was_empty = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            if queue.len() >= MAX_QUEUED {
                return Err(SendError::Busy);
            }
            queue.push(command);
            queue.len() == 1
        };
        if was_empty {
            self.wake();
        }
        Ok(())
    }

    pub(crate) fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::warn!("worker {}: wake failed: {e}", self.index);
        }
    }

    fn take(&self, into: &mut Vec<Command>) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut *queue, into);
    }
}

/// A topic's subscribers on this worker.
#[derive(Debug)]
struct Topic {
    name: Box<str>,
    subs: Vec<(u32, u32)>,
}

/// This worker's topics: name to subscribers.
#[derive(Debug, Default)]
pub(crate) struct Topics {
    index: HashMap<Box<str>, u32>,
    topics: Slab<Topic>,
}

impl Topics {
    /// Subscribe the session `key`/`gen`; returns the topic's index.
    pub(crate) fn subscribe(&mut self, name: &str, key: u32, gen: u32) -> u32 {
        let index = match self.index.get(name) {
            Some(&i) => i,
            None => {
                let i = self.topics.insert(Topic {
                    name: name.into(),
                    subs: Vec::new(),
                }) as u32;
                self.index.insert(name.into(), i);
                i
            }
        };
        if let Some(topic) = self.topics.get_mut(index as usize) {
            if !topic.subs.iter().any(|&(k, _)| k == key) {
                topic.subs.push((key, gen));
            }
        }
        index
    }

    /// Unsubscribe the session `key` from `name`; returns the topic's index if it was
    /// subscribed.
    pub(crate) fn unsubscribe(&mut self, name: &str, key: u32) -> Option<u32> {
        let index = *self.index.get(name)?;
        self.remove(index, key);
        Some(index)
    }

    /// Unsubscribe `key` from the topic `index`, dropping the topic once it has no one.
    pub(crate) fn remove(&mut self, index: u32, key: u32) {
        let Some(topic) = self.topics.get_mut(index as usize) else {
            return;
        };
        topic.subs.retain(|&(k, _)| k != key);
        if topic.subs.is_empty() {
            let topic = self.topics.remove(index as usize);
            self.index.remove(&topic.name);
        }
    }

    fn subscribers(&self, name: &str) -> &[(u32, u32)] {
        self.index
            .get(name)
            .and_then(|&i| self.topics.get(i as usize))
            .map_or(&[], |t| &t.subs)
    }
}

/// A worker and everything it owns.
pub(crate) struct Worker<H: Handler> {
    index: usize,
    poll: Poll,
    listeners: Vec<Option<TcpListener>>,
    /// Each listener's TLS settings (`None` for plaintext).
    listener_tls: Vec<Option<ListenerTls>>,
    local_addrs: Vec<std::net::SocketAddr>,
    sessions: Slab<Session<H::State>>,
    handler: Arc<H>,
    config: Arc<Config>,
    control: Control,
    me: Arc<WorkerShared>,
    clock: Clock,
    date: DateCache,
    wheel: TimerWheel,
    pool: Pool,
    scratch: Vec<u8>,
    topics: Topics,
    stats: Stats,
    next_gen: u32,
    max_sessions: usize,
    accept_paused_until: Option<Instant>,
    accept_warned: Option<Instant>,
    drain_deadline: Option<Instant>,
    /// Sessions whose reads were cut short for fairness, to continue next turn.
    resume: Vec<usize>,
    /// Sessions with output queued outside their own events (commands, publishes).
    dirty: Vec<usize>,
}

impl<H: Handler> Worker<H> {
    pub(crate) fn new(
        index: usize,
        poll: Poll,
        listeners: Vec<StdListener>,
        listener_tls: Vec<Option<ListenerTls>>,
        handler: Arc<H>,
        config: Arc<Config>,
        control: Control,
    ) -> io::Result<Self> {
        let mut registered = Vec::with_capacity(listeners.len());
        let mut local_addrs = Vec::with_capacity(listeners.len());
        for (i, listener) in listeners.into_iter().enumerate() {
            local_addrs.push(listener.local_addr()?);
            listener.set_nonblocking(true)?;
            let mut listener = TcpListener::from_std(listener);
            poll.registry().register(
                &mut listener,
                Token(LISTENER_BASE - i),
                Interest::READABLE,
            )?;
            registered.push(Some(listener));
        }
        let me = Arc::clone(
            control
                .shared
                .workers
                .get(index)
                .ok_or_else(|| io::Error::other("worker index out of range"))?,
        );
        let clock = Clock::new();
        let workers = config.workers.max(1);
        let wheel = TimerWheel::new(clock.now(), config.timer_slots);
        Ok(Worker {
            index,
            poll,
            listeners: registered,
            listener_tls,
            local_addrs,
            sessions: Slab::new(),
            handler,
            max_sessions: config.max_connections.div_ceil(workers).max(1),
            pool: Pool::new(16 * 1024, 1024),
            scratch: vec![0; config.read_buffer],
            config,
            control,
            me,
            date: DateCache::new(clock.unix_secs()),
            wheel,
            clock,
            topics: Topics::default(),
            stats: Stats::default(),
            next_gen: 0,
            accept_paused_until: None,
            accept_warned: None,
            drain_deadline: None,
            resume: Vec::new(),
            dirty: Vec::new(),
        })
    }

    /// The event loop, until shutdown completes.
    pub(crate) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS);
        let mut expired: Vec<Entry> = Vec::new();
        let mut commands: Vec<Command> = Vec::new();
        let mut resuming: Vec<usize> = Vec::new();
        loop {
            let timeout = self.poll_timeout();
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let now = self.clock.update();
            self.date.update(self.clock.unix_secs());
            // Before this turn's events: a request that arrives after the shutdown began is
            // answered as draining (Connection: close) even if the wake-up is still queued.
            if self.drain_deadline.is_none() && self.control.is_shutting_down() {
                self.start_drain(now);
            }

            let mut woken = false;
            for event in events.iter() {
                match event.token() {
                    WAKER => woken = true,
                    Token(t) if t > LISTENER_BASE - self.listeners.len() => {
                        self.accept(LISTENER_BASE - t);
                    }
                    Token(key) => {
                        let writable = event.is_writable() || event.is_write_closed();
                        let hup = event.is_read_closed() || event.is_error();
                        let readable = event.is_readable() || hup;
                        self.ready(key, readable, writable, hup);
                    }
                }
            }
            if woken {
                self.me.take(&mut commands);
                for command in commands.drain(..) {
                    self.command(command);
                }
            }
            if !self.resume.is_empty() {
                std::mem::swap(&mut self.resume, &mut resuming);
                for key in resuming.drain(..) {
                    self.ready(key, true, true, false);
                }
            }
            if self.accept_paused_until.is_some_and(|t| now >= t) {
                self.accept_paused_until = None;
                for i in 0..self.listeners.len() {
                    self.accept(i);
                }
            }
            self.wheel.expire(now, &mut expired);
            for entry in expired.drain(..) {
                self.timer(entry);
            }
            while let Some(key) = self.dirty.pop() {
                self.ready(key, false, true, false);
            }
            self.me.counters.store(&self.stats);
            if let Some(deadline) = self.drain_deadline {
                if self.sessions.is_empty() {
                    return Ok(());
                }
                if now >= deadline {
                    log::warn!(
                        "worker {}: shutdown deadline passed with {} connections open; closing them",
                        self.index,
                        self.sessions.len()
                    );
                    let keys: Vec<usize> = self.sessions.iter().map(|(k, _)| k).collect();
                    for key in keys {
                        self.remove(key);
                    }
                    self.me.counters.store(&self.stats);
                    return Ok(());
                }
            }
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.resume.is_empty() || !self.dirty.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = self.clock.now();
        let mut timeout = self.wheel.timeout(now);
        for t in [self.accept_paused_until, self.drain_deadline]
            .into_iter()
            .flatten()
        {
            let d = t.saturating_duration_since(now);
            timeout = Some(timeout.map_or(d, |x| x.min(d)));
        }
        timeout
    }

    #[allow(clippy::type_complexity)]
    fn env(&mut self) -> (Env<'_, H>, &mut Slab<Session<H::State>>, &mut [u8]) {
        let env = Env {
            handler: &*self.handler,
            config: &self.config,
            control: &self.control,
            me: &self.me,
            date: &self.date,
            now: self.clock.now(),
            pool: &mut self.pool,
            topics: &mut self.topics,
            wheel: &mut self.wheel,
            stats: &mut self.stats,
            resume: &mut self.resume,
            draining: self.drain_deadline.is_some(),
            local_addrs: &self.local_addrs,
        };
        (env, &mut self.sessions, &mut self.scratch)
    }

    /// Drive the session `key` after readiness; remove it if it finished.
    fn ready(&mut self, key: usize, readable: bool, writable: bool, hup: bool) {
        let (mut env, sessions, scratch) = self.env();
        let Some(session) = sessions.get_mut(key) else {
            return;
        };
        let done = session.ready(&mut env, scratch, readable, writable, hup);
        if done {
            self.remove(key);
        }
    }

    fn timer(&mut self, entry: Entry) {
        let key = entry.key as usize;
        let (mut env, sessions, _) = self.env();
        let Some(session) = sessions.get_mut(key) else {
            return;
        };
        if !session.owns_timer(&entry) {
            return;
        }
        if session.timer(&mut env) {
            self.remove(key);
        }
    }

    fn remove(&mut self, key: usize) {
        if !self.sessions.contains(key) {
            return;
        }
        let mut session = self.sessions.remove(key);
        let (mut env, _, _) = self.env();
        session.finish(&mut env);
        // No deregister: the socket is closed when the session drops, and epoll forgets a
        // closed descriptor by itself (none is ever duplicated), which saves a system call.
        self.stats.connections = self.stats.connections.saturating_sub(1);
        if self.accept_paused_until.is_none() && self.sessions.len() + 1 == self.max_sessions {
            // Accepting stopped at the connection limit; there is room again.
            for i in 0..self.listeners.len() {
                self.accept(i);
            }
        }
    }

    fn accept(&mut self, index: usize) {
        if self.drain_deadline.is_some() || self.accept_paused_until.is_some() {
            return;
        }
        loop {
            if self.sessions.len() >= self.max_sessions {
                return;
            }
            let Some(Some(listener)) = self.listeners.get(index) else {
                return;
            };
            let (stream, peer) = match listener.accept() {
                Ok(found) => found,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connection stays queued, and
                    // retrying at once would spin. Try again after a pause.
                    let now = self.clock.now();
                    let quiet = self
                        .accept_warned
                        .is_some_and(|t| now.saturating_duration_since(t) < ACCEPT_WARN_EVERY);
                    if !quiet {
                        log::warn!(
                            "worker {}: accept failed: {e}; pausing accepts for {:?} at a time",
                            self.index,
                            ACCEPT_BACKOFF
                        );
                        self.accept_warned = Some(now);
                    }
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            };
            self.add(stream, peer, index);
        }
    }

    fn add(&mut self, mut stream: TcpStream, peer: std::net::SocketAddr, listener: usize) {
        if self.config.nodelay {
            let _ = stream.set_nodelay(true);
        }
        let entry = self.sessions.vacant_entry();
        let key = entry.key();
        if u32::try_from(key).is_err() {
            return;
        }
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("worker {}: register failed: {e}", self.index);
            return;
        }
        let io = match self.listener_tls.get(listener) {
            #[cfg(feature = "tls")]
            Some(Some(config)) => match Transport::tls(stream, config) {
                Ok(io) => io,
                Err(e) => {
                    log::warn!("worker {}: TLS session refused: {e}", self.index);
                    return;
                }
            },
            _ => Transport::plain(stream),
        };
        self.next_gen = self.next_gen.wrapping_add(1);
        let now = self.clock.now();
        entry.insert(Session::new(
            io,
            peer,
            u16::try_from(listener).unwrap_or(u16::MAX),
            key as u32,
            self.next_gen,
            self.index as u32,
            &self.config,
            now,
        ));
        self.stats.accepted += 1;
        self.stats.connections += 1;
        // Read whatever arrived with the connection; edge-triggered readiness for it may
        // already have been reported before registration.
        self.ready(key, true, false, false);
        let (mut env, sessions, _) = self.env();
        if let Some(session) = sessions.get_mut(key) {
            session.arm(&mut env);
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Frame { key, gen, frame } => {
                let (mut env, sessions, _) = self.env();
                if let Some(s) = sessions.get_mut(key as usize) {
                    if s.gen() == gen {
                        s.push_frame(&mut env, &frame);
                        self.dirty.push(key as usize);
                    }
                }
            }
            Command::Close {
                key,
                gen,
                code,
                reason,
            } => {
                let (mut env, sessions, _) = self.env();
                if let Some(s) = sessions.get_mut(key as usize) {
                    if s.gen() == gen {
                        s.close_ws(&mut env, code, &reason);
                        self.dirty.push(key as usize);
                    }
                }
            }
            Command::Publish(published) => {
                let subs = self.topics.subscribers(&published.topic).len();
                for i in 0..subs {
                    let Some(&(key, gen)) = self.topics.subscribers(&published.topic).get(i) else {
                        break;
                    };
                    let (mut env, sessions, _) = self.env();
                    if let Some(s) = sessions.get_mut(key as usize) {
                        if s.gen() == gen {
                            s.push_frame(&mut env, &published.frame);
                            self.dirty.push(key as usize);
                        }
                    }
                }
            }
        }
    }

    fn start_drain(&mut self, now: Instant) {
        log::info!(
            "worker {}: draining {} connections",
            self.index,
            self.sessions.len()
        );
        self.drain_deadline = Some(now + self.config.timeouts.shutdown);
        for listener in self.listeners.iter_mut() {
            if let Some(mut l) = listener.take() {
                let _ = self.poll.registry().deregister(&mut l);
            }
        }
        let keys: Vec<usize> = self.sessions.iter().map(|(k, _)| k).collect();
        for key in keys {
            let (mut env, sessions, _) = self.env();
            if let Some(s) = sessions.get_mut(key) {
                s.start_drain(&mut env);
                self.dirty.push(key);
            }
        }
    }
}

impl<H: Handler> core::fmt::Debug for Worker<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}
