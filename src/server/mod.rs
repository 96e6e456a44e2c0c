//! The runtime: mio event loops that move bytes between sockets and the sans-I/O core.
//!
//! This is the only I/O layer of the crate: it reads and writes sockets, reads the clock (in
//! `clock.rs` alone) and runs threads; it never interprets bytes itself, which is what
//! [`http`](crate::http), [`ws`](crate::ws) and [`handshake`](crate::handshake) are for.
//!
//! ```text
//!   Server::listen ─► one SO_REUSEPORT listener per worker per address
//!   worker thread (one per core) ── mio::Poll ── Slab<Session> ── timer wheel, buffer pool
//!       Session = { Transport, Phase::Http(ServerConn) | Phase::Ws(ws::Conn) | Phase::Linger }
//!       Transport = { socket (plain | rustls), pooled read buffer, pooled write buffer }
//!       readable ─► read until WouldBlock ─► core events ─► Handler callbacks ─► write buffer
//!       writable ─► write until WouldBlock (above the high-water mark, reading pauses)
//!   Control / Sender (any thread) ── Mutex<Vec<Command>> + mio::Waker ──► worker
//! ```
//!
//! An application implements [`Handler`]; [`Server`] binds the listeners and runs it:
//!
//! ```no_run
//! # use berth::server::{Config, Handler, Responder, Server};
//! # struct App;
//! # impl Handler for App {
//! #     type State = ();
//! #     fn on_request(&self, _: &mut (), _: &berth::http::Request<'_, '_>, res: &mut Responder<'_>) {
//! #         let _ = res.send(204, &[], b"");
//! #     }
//! # }
//! // 8080 unless PORT, PORT_WWW or environment.json say otherwise.
//! let port = berth::platform::Environment::load()?.http_port()?;
//! Server::new(Config::default())
//!     .listen(("0.0.0.0", port))?
//!     .run(App)?; // until SIGTERM or SIGINT, then a graceful drain
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every connection error closes that connection alone; accept errors (such as running out
//! of file descriptors) pause accepting briefly instead of spinning.

mod buffer;
mod clock;
mod handler;
mod session;
mod session_timer;
#[cfg(test)]
mod tests;
mod timer;
#[cfg(feature = "tls")]
mod tls;
mod transport;
mod worker;

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use handler::{
    CloseReason, Closed, ConnId, Handler, Message, Responder, SendError, Sender, WebSocket,
};

#[cfg(feature = "tls")]
pub use tls::{CertSet, TlsConfig, TlsError};

use crate::ws::MAX_HEADER_LEN;
use crate::Limits;
use worker::{Command, Published, Worker, WorkerShared};

/// How long each kind of wait may last. A connection that overstays is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// A request head must arrive whole within this time of its first byte, and a new
    /// connection's first request within this time of the accept; else 408 and close.
    /// Slow-drip heads are cut off by this however steadily they drip. Default 10 s.
    pub header: Duration,
    /// An HTTP connection with no request in progress is closed after this. Default 60 s.
    pub keep_alive: Duration,
    /// A request body that stops arriving for this long is abandoned (408). Default 30 s.
    pub body: Duration,
    /// A WebSocket connection silent for this long is pinged; `None` never pings.
    /// Default 30 s.
    pub ping: Option<Duration>,
    /// A ping unanswered for this long (no frame at all from the peer) closes the connection
    /// as dead. Default 15 s.
    pub pong: Duration,
    /// Output that the peer does not read for this long closes the connection as a slow
    /// consumer (1008 for WebSocket). Default 30 s.
    pub write: Duration,
    /// The peer must finish a close (its Close frame, or its EOF after our response) within
    /// this time. Default 5 s.
    pub close: Duration,
    /// A graceful shutdown force-closes whatever is still open after this. Default 10 s.
    pub shutdown: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header: Duration::from_secs(10),
            keep_alive: Duration::from_secs(60),
            body: Duration::from_secs(30),
            ping: Some(Duration::from_secs(30)),
            pong: Duration::from_secs(15),
            write: Duration::from_secs(30),
            close: Duration::from_secs(5),
            shutdown: Duration::from_secs(10),
        }
    }
}

/// The server's settings. Start from `Config::default()` and change fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Worker threads, each with its own event loop and listeners. `0` (the default) means
    /// one per available core.
    pub workers: usize,
    /// What peers may send; see [`Limits`].
    pub limits: Limits,
    /// Timeouts; see [`Timeouts`].
    pub timeouts: Timeouts,
    /// Connections open at once, over all workers (each worker takes its share). Past it,
    /// accepting pauses until connections close. Default 16,384.
    pub max_connections: usize,
    /// Above this many unsent bytes a connection is no longer read until its output drains
    /// to half of it. Default 256 KiB.
    pub write_high_water: usize,
    /// The most a connection may have queued: a send past it fails with [`SendError::Full`],
    /// and a broadcast or cross-thread send past it closes the connection as a slow
    /// consumer. Must exceed `limits.max_message` to echo the largest message. Default 8 MiB.
    pub max_write_buffer: usize,
    /// Bytes read from a socket at once, into a buffer each worker shares among its
    /// connections. A message that arrives whole within one read is handed out in place,
    /// without a copy, so this is sized above common large messages. Default 256 KiB.
    pub read_buffer: usize,
    /// The `listen(2)` backlog. Default 1024.
    pub backlog: i32,
    /// Set `TCP_NODELAY` on accepted sockets. Default `true`.
    pub nodelay: bool,
    /// Let [`Server::listen`] bind a port another process is already listening on with
    /// `SO_REUSEPORT` (another berth server, say), so the two share it. That is how a new
    /// version can take over a port while the old one drains (a zero-downtime restart).
    /// Default `false`: such a port is reported as in use, as any other would be.
    pub share_port: bool,
    /// Slots in each worker's timer wheel, one 100 ms tick each; a deadline further away than
    /// the wheel's span fires early and is re-armed. Not a public setting: the crate's own
    /// tests shorten the span to exercise that re-arming. Default 512 (51.2 s).
    pub(crate) timer_slots: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: 0,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            max_connections: 16_384,
            write_high_water: 256 * 1024,
            max_write_buffer: 8 * 1024 * 1024,
            read_buffer: 256 * 1024,
            backlog: 1024,
            nodelay: true,
            share_port: false,
            timer_slots: timer::DEFAULT_SLOTS,
        }
    }
}

/// A server being set up: its configuration and bound listeners.
#[derive(Debug)]
pub struct Server {
    config: Config,
    listeners: Vec<TcpListener>,
    /// The TLS settings of each listener (`None`: plaintext), by index.
    tls: Vec<Option<ListenerTls>>,
}

/// What a TLS listener hands each connection it accepts.
#[cfg(feature = "tls")]
pub(crate) type ListenerTls = TlsConfig;
#[cfg(not(feature = "tls"))]
pub(crate) type ListenerTls = core::convert::Infallible;

impl Server {
    /// A server with `config` and no listeners yet.
    pub fn new(config: Config) -> Self {
        Server {
            config,
            listeners: Vec::new(),
            tls: Vec::new(),
        }
    }

    /// Bind and listen on `addr` now (so that a port in use is reported here). Port 0 picks a
    /// free port; see [`Server::local_addrs`].
    ///
    /// # Errors
    ///
    /// The I/O error from resolving, binding or listening.
    pub fn listen(mut self, addr: impl ToSocketAddrs) -> io::Result<Self> {
        let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on")
        })?;
        if !self.config.share_port && addr.port() != 0 {
            check_port_free(addr)?;
        }
        self.listeners
            .push(bind_listener(addr, self.config.backlog)?);
        self.tls.push(None);
        Ok(self)
    }

    /// As [`Server::listen`], for a listener that speaks TLS (`https://`, `wss://`) with the
    /// certificates of `tls`. A TLS handshake must finish within [`Timeouts::header`] of the
    /// accept; a client that sends plaintext HTTP to it is closed at once.
    ///
    /// # Errors
    ///
    /// As [`Server::listen`].
    #[cfg(feature = "tls")]
    pub fn listen_tls(self, addr: impl ToSocketAddrs, tls: &TlsConfig) -> io::Result<Self> {
        let mut server = self.listen(addr)?;
        if let Some(last) = server.tls.last_mut() {
            *last = Some(tls.clone());
        }
        Ok(server)
    }

    /// The addresses the listeners are bound to, in the order they were added.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Start the worker threads serving `handler` and return at once.
    ///
    /// # Errors
    ///
    /// An I/O error creating the event loops or the per-worker listeners;
    /// [`io::ErrorKind::InvalidInput`] without any listener.
    pub fn spawn<H: Handler>(self, handler: H) -> io::Result<ServerHandle> {
        if self.listeners.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the server has no listener: call Server::listen first",
            ));
        }
        let addrs = self.local_addrs();
        let mut config = self.config;
        if config.workers == 0 {
            config.workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        }
        config.max_write_buffer = config
            .max_write_buffer
            .max(config.write_high_water)
            .max(MAX_HEADER_LEN + 125);
        config.read_buffer = config.read_buffer.max(4096);

        // Every worker gets a listener per address: the one bound in `listen` for worker 0,
        // fresh SO_REUSEPORT sockets on the same port for the others.
        let mut per_worker: Vec<Vec<TcpListener>> = vec![self.listeners];
        for _ in 1..config.workers {
            let mut set = Vec::with_capacity(addrs.len());
            for (i, addr) in addrs.iter().enumerate() {
                set.push(worker_listener(&per_worker[0][i], *addr, config.backlog)?);
            }
            per_worker.push(set);
        }

        let mut polls = Vec::with_capacity(config.workers);
        let mut shared_workers = Vec::with_capacity(config.workers);
        for index in 0..config.workers {
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), worker::WAKER)?;
            shared_workers.push(Arc::new(WorkerShared::new(index, waker)));
            polls.push(poll);
        }
        let control = Control {
            shared: Arc::new(Shared {
                workers: shared_workers,
                shutdown: AtomicBool::new(false),
            }),
        };
        let config = Arc::new(config);
        let handler = Arc::new(handler);
        let mut threads = Vec::with_capacity(polls.len());
        for (index, (poll, listeners)) in polls.into_iter().zip(per_worker).enumerate() {
            let worker = Worker::new(
                index,
                poll,
                listeners,
                self.tls.clone(),
                Arc::clone(&handler),
                Arc::clone(&config),
                control.clone(),
            )?;
            let thread = std::thread::Builder::new()
                .name(format!("berth-worker-{index}"))
                .spawn(move || worker.run())?;
            threads.push(thread);
        }
        Ok(ServerHandle {
            control,
            threads,
            addrs,
        })
    }

    /// Serve `handler` until SIGTERM or SIGINT, then drain gracefully (see
    /// [`Control::shutdown`]) and return. A second signal during the drain ends the process
    /// at once (exit status 128 + the signal), as an impatient operator expects.
    ///
    /// # Errors
    ///
    /// As [`Server::spawn`], or an error installing the signal handlers.
    pub fn run<H: Handler>(self, handler: H) -> io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        // The handlers (and the descriptors they use) come first: once the workers run they
        // accept connections, and a burst at startup can take every descriptor left.
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
        let handle = self.spawn(handler)?;
        let stop = signals.handle();
        let control = handle.control();
        let watcher = std::thread::Builder::new()
            .name("berth-signals".into())
            .spawn(move || {
                let mut signals = signals.forever();
                if let Some(signal) = signals.next() {
                    log::info!("signal {signal}: draining");
                    control.shutdown();
                }
                if let Some(signal) = signals.next() {
                    log::warn!("signal {signal} during the drain: exiting now");
                    std::process::exit(128 + signal);
                }
            })?;
        let result = handle.join();
        stop.close();
        let _ = watcher.join();
        result
    }
}

fn bind_listener(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Fail with `AddrInUse` if something listens on `addr`, even with `SO_REUSEPORT` (which
/// would otherwise let our own `SO_REUSEPORT` bind succeed and silently share the port).
fn check_port_free(addr: SocketAddr) -> io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into()).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{addr} is already in use (set Config::share_port to share it)"),
            )
        } else {
            e
        }
    })
}

/// A further worker's listener: a new SO_REUSEPORT socket where the kernel supports spreading
/// connections over them, else a clone of the first (all workers then race for accepts).
fn worker_listener(first: &TcpListener, addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    if cfg!(all(
        unix,
        not(any(target_os = "solaris", target_os = "illumos"))
    )) {
        bind_listener(addr, backlog)
    } else {
        first.try_clone()
    }
}

/// State every worker and every [`Control`] shares.
#[derive(Debug)]
pub(crate) struct Shared {
    workers: Vec<Arc<WorkerShared>>,
    shutdown: AtomicBool,
}

/// The server-wide handle, usable from any thread: publish to topics, read counters, start
/// the graceful shutdown. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Control {
    shared: Arc<Shared>,
}

/// Counters over all workers, as of each worker's last loop turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections open now (HTTP and WebSocket).
    pub connections: u64,
    /// WebSocket connections open now.
    pub websockets: u64,
    /// Connections accepted since start.
    pub accepted: u64,
    /// HTTP requests received since start.
    pub requests: u64,
    /// WebSocket messages received since start.
    pub messages_in: u64,
    /// Bytes read from sockets since start.
    pub bytes_in: u64,
    /// Bytes written to sockets since start.
    pub bytes_out: u64,
}

impl Control {
    /// Send `msg` to every connection subscribed to `topic` (see [`WebSocket::subscribe`]),
    /// on every worker. The frame is encoded once; each worker copies it into its
    /// subscribers' write buffers. A subscriber whose buffer is over its bound is closed as a
    /// slow consumer. Returns how many workers were reached (a full queue skips a worker).
    pub fn publish(&self, topic: &str, msg: Message<'_>) -> usize {
        let published = Arc::new(Published {
            topic: topic.into(),
            frame: handler::message_frame(msg),
        });
        self.shared
            .workers
            .iter()
            .filter(|w| w.push(Command::Publish(Arc::clone(&published))).is_ok())
            .count()
    }

    /// Start the graceful shutdown: stop accepting, let in-flight requests finish (their
    /// responses say `Connection: close`), close idle keep-alive connections, close every
    /// WebSocket with 1001, and end each worker once its connections are gone or
    /// [`Timeouts::shutdown`] has passed.
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for w in &self.shared.workers {
            w.wake();
        }
    }

    /// Has [`Control::shutdown`] been called?
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown.load(Ordering::SeqCst)
    }

    /// The counters summed over the workers.
    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for w in &self.shared.workers {
            w.counters.add_to(&mut total);
        }
        total
    }
}

/// A running server: its addresses, its [`Control`], and its threads to join.
#[derive(Debug)]
pub struct ServerHandle {
    control: Control,
    threads: Vec<JoinHandle<io::Result<()>>>,
    addrs: Vec<SocketAddr>,
}

impl ServerHandle {
    /// The listening addresses, in the order they were added.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// A handle for publishing, counters and shutdown, to give to other threads.
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// Start the graceful shutdown; see [`Control::shutdown`].
    pub fn shutdown(&self) {
        self.control.shutdown();
    }

    /// Wait for every worker to end (after a shutdown).
    ///
    /// # Errors
    ///
    /// The first I/O error a worker's event loop failed with; a worker that panicked (a bug
    /// in a handler) is reported as an error too.
    pub fn join(self) -> io::Result<()> {
        let mut result = Ok(());
        for thread in self.threads {
            let outcome = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a worker thread panicked")));
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }
}
