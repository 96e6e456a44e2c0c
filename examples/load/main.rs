//! berth's load generator: WebSocket echo, handshake churn, idle connections and HTTP/1.1 GET
//! load against a server on loopback, built on berth's own client role
//! ([`berth::handshake::ClientHandshake`] and [`berth::ws::Conn`] in `Role::Client`) over mio.
//!
//! Run it against any server on 127.0.0.0/8, for example a peer from `examples/`:
//!
//! ```text
//! cargo run --release --example peer_tokio_tungstenite -- 9001 &
//! cargo run --release --example load -- ws-echo --url ws://127.0.0.1:9001/ \
//!     --conns 100 --size 16 --in-flight 1 --duration 5
//! cargo run --release --example load -- --help
//! ```
//!
//! Modes: `ws-echo` (messages echoed and checked byte for byte), `handshake` (connect, upgrade,
//! close, repeat), `idle` (open connections and hold them, with the server's memory per
//! connection when `--server-pid` is given) and `http` (pipelined keep-alive GETs).
//!
//! TLS: a `wss://` or `https://` URL runs every mode over TLS (rustls, ring provider, TLS 1.3
//! or 1.2, ALPN `http/1.1`, SNI from the URL's host), trusting only the certificates in `--ca`
//! (there is no network here, so no public roots). In handshake mode each loop is then a TCP
//! connect, a full TLS handshake (session resumption is off unless `--tls-resume`), the
//! upgrade and the close. A clean close sends TLS close_notify. For a certificate to try it
//! with, see `examples/gen_cert.rs`:
//!
//! ```text
//! cargo run --example gen_cert -- certs
//! cargo run --release --example peer_tokio_tungstenite -- 9001 1 \
//!     --tls-cert certs/cert.pem --tls-key certs/key.pem &
//! cargo run --release --example load -- handshake --url wss://localhost:9001/ \
//!     --ca certs/cert.pem --conns 50 --duration 5
//! ```
//!
//! For an orchestrator: `--json` prints the report as one JSON object on stdout and sends
//! everything else to stderr. Exit status: 0 for a clean run, 1 for bad arguments or a setup
//! failure (nothing was measured), 2 for a run that finished but counted errors.
//!
//! How it stays cheap per message: one mio event loop per thread (`--threads`); every outgoing
//! message is the same pre-encoded, pre-masked frame (or request), written from one shared buffer
//! with no copy; everything a connection needs is allocated when it opens; each readiness event
//! reads until the socket is drained and then writes every answer it owes in one batch. Over TLS
//! the frames go through rustls, which encrypts them into records, and that costs allocations
//! this code cannot avoid (see [`tls::Tls`]).
//!
//! Linux only: CPU time and memory come from `/proc`, and the read loop relies on how Linux's
//! epoll reports edge-triggered sockets (see `Client::on_ready`).
#![forbid(unsafe_code)]

mod args;
mod http;
mod link;
mod procfs;
mod report;
mod runner;
mod tls;
mod ws;

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use args::{parse_args, Args, Mode, HELP};
use procfs::{check_fd_limit, cpu_between, cpu_ticks, rss_kib};
use report::{Report, ThreadReport};
use runner::{thread_main, Progress, Shared};
use tls::TlsSetup;

/// Bytes of pre-encoded messages kept per thread (at least one whole message).
const BATCH_BYTES: usize = 256 * 1024;
/// Connections a thread has connecting or upgrading at once while opening: enough to keep a
/// server's accept loop busy without overflowing its listen backlog.
const MAX_CONNECTING: usize = 512;
/// Reads (or writes) for one connection per readiness event before others get a turn; the
/// connection is then served again on the next loop iteration.
const MAX_IO_PER_EVENT: usize = 64;
/// How long a connection waits for the peer's Close after sending its own.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How long a closed connection waits for the server to close TCP first (RFC 6455 §7.1.1), so
/// the TIME_WAIT state lands on the server, before closing it itself.
const LINGER: Duration = Duration::from_secs(1);
/// How long the end of the run waits for answers still in flight and close handshakes.
const DRAIN: Duration = Duration::from_secs(3);
/// Connections in a row that end without completing an operation, after which a thread stops
/// reconnecting (the server is gone or refuses).
const MAX_FAILURES_IN_ROW: u32 = 1000;
/// How long a connection that ended without completing an operation waits before its
/// successor is started, so that a refusing server is not hammered in a tight loop.
const RETRY_DELAY: Duration = Duration::from_millis(10);
/// File descriptors kept free beyond the connections (stdio, epoll, /proc reads).
const SPARE_FDS: u64 = 64;

/// The clock. A load generator is a measuring tool outside the sans-I/O core, and this is its
/// one place that reads the time.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("load: {e}\n(load --help lists the options)");
            return ExitCode::from(1);
        }
    };
    match run(args) {
        Ok(report) => {
            report.print();
            if report.measured.errors.total() > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Args) -> Result<Report, String> {
    check_fd_limit(&args)?;
    if let Some(pid) = args.server_pid {
        cpu_ticks(&pid.to_string())
            .ok_or_else(|| format!("--server-pid {pid}: no such process in /proc"))?;
    }
    let rss_before_kib = args.server_pid.and_then(rss_kib);
    let threads = args.threads;
    let tls = args.tls.as_ref().map(TlsSetup::new).transpose()?;
    let shared = Arc::new(Shared {
        args,
        start: OnceLock::new(),
        tls,
    });
    let progress: Vec<Arc<Progress>> = (0..threads).map(|_| Arc::default()).collect();
    let mut handles = Vec::with_capacity(threads);
    for (index, me) in progress.iter().enumerate() {
        let (shared, me) = (Arc::clone(&shared), Arc::clone(me));
        let handle = std::thread::Builder::new()
            .name(format!("load-{index}"))
            .spawn(move || {
                let result = thread_main(&shared, &me, index);
                me.ready.store(true, Ordering::Release);
                me.finished.store(true, Ordering::Release);
                result
            })
            .map_err(|e| format!("spawning a thread: {e}"))?;
        handles.push(handle);
    }

    let args = &shared.args;
    let mut ticker = Ticker::new(args, &progress);
    // Opening: every thread connects its share; bounded by the connect timeout.
    let ready_by = now() + args.connect_timeout + Duration::from_secs(5);
    while !progress.iter().all(|p| p.ready.load(Ordering::Acquire)) && now() < ready_by {
        std::thread::sleep(Duration::from_millis(20));
        ticker.tick("opening");
    }
    let start = now();
    let _ = shared.start.set(start);
    let window_start = start + args.warmup;
    let window_end = window_start + args.duration;
    ticker.sleep_until(window_start, "warm-up");
    let pid = args.server_pid.map(|p| p.to_string());
    let cpu0 = (cpu_ticks("self"), pid.as_deref().and_then(cpu_ticks));
    ticker.sleep_until(window_end, "running");
    let cpu1 = (cpu_ticks("self"), pid.as_deref().and_then(cpu_ticks));
    let rss_after_kib = args.server_pid.and_then(rss_kib);
    ticker.sleep_until(now() + DRAIN + Duration::from_secs(1), "draining");

    let mut report = Report {
        args: args.clone(),
        window: args.duration,
        measured: ThreadReport::new(),
        client_cpu: cpu_between(cpu0.0, cpu1.0),
        server_cpu: cpu_between(cpu0.1, cpu1.1),
        rss_before_kib,
        rss_after_kib,
    };
    let mut failures = Vec::new();
    for handle in handles {
        match handle.join() {
            Ok(Ok(t)) => report.measured.add(t),
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("a load thread panicked".to_string()),
        }
    }
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }
    Ok(report)
}

/// Prints the progress line once a second while the main thread waits.
struct Ticker<'a> {
    quiet: bool,
    mode: Mode,
    conns: usize,
    progress: &'a [Arc<Progress>],
    began: Instant,
    last: Instant,
    last_ops: u64,
}

impl<'a> Ticker<'a> {
    fn new(args: &Args, progress: &'a [Arc<Progress>]) -> Self {
        let t = now();
        Ticker {
            quiet: args.quiet,
            mode: args.mode,
            conns: args.conns,
            progress,
            began: t,
            last: t,
            last_ops: 0,
        }
    }

    /// Sleep in short steps until `deadline` (bounded by it), ticking.
    fn sleep_until(&mut self, deadline: Instant, stage: &str) {
        loop {
            let t = now();
            if t >= deadline {
                break;
            }
            std::thread::sleep((deadline - t).min(Duration::from_millis(50)));
            self.tick(stage);
            if self
                .progress
                .iter()
                .all(|p| p.finished.load(Ordering::Acquire))
            {
                break;
            }
        }
    }

    fn tick(&mut self, stage: &str) {
        let t = now();
        let elapsed = t - self.last;
        if elapsed < Duration::from_secs(1) {
            return;
        }
        let sum = |f: fn(&Progress) -> u64| -> u64 { self.progress.iter().map(|p| f(p)).sum() };
        let ops = sum(|p| p.ops.load(Ordering::Relaxed));
        let rate = (ops - self.last_ops.min(ops)) as f64 / elapsed.as_secs_f64();
        if !self.quiet {
            eprintln!(
                "[{:6.1}s] {:<9} {:>12.0} {}/s  open {}/{}  errors {}",
                (t - self.began).as_secs_f64(),
                stage,
                rate,
                self.mode.op(),
                sum(|p| p.open.load(Ordering::Relaxed)),
                self.conns,
                sum(|p| p.errors.load(Ordering::Relaxed)),
            );
        }
        self.last = t;
        self.last_ops = ops;
    }
}

#[cfg(test)]
#[path = "../support/load_tls_tests.rs"]
mod tls_tests;
