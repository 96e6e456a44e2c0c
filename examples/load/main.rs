//! berth's load generator: WebSocket echo, handshake churn, idle connections and HTTP/1.1 GET
//! load against a server on loopback, built on berth's own client role
//! ([`berth::handshake::ClientHandshake`] and [`berth::ws::Conn`] in `Role::Client`) over mio.
//!
//! Run it against any server on 127.0.0.0/8, for example a peer from this directory:
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
//! this code cannot avoid (see [`Tls`]).
//!
//! Linux only: CPU time and memory come from `/proc`, and the read loop relies on how Linux's
//! epoll reports edge-triggered sockets (see `Client::on_ready`).
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use berth::handshake::ClientHandshake;
use berth::http::header_slots;
use berth::ws::{CloseCode, Conn, Event as WsEvent, MessageKind};
use berth::{Limits, Status};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
use serde_json::json;
use socket2::{Domain, Protocol, Socket, Type};
// rustls through tokio-rustls's re-export: the same rustls 0.23 (ring provider) as berth's `tls`
// feature, and there for the examples whichever of berth's features are on.
use tokio_rustls::rustls::{self, pki_types, ClientConfig, ClientConnection, HandshakeKind};

const HELP: &str = "\
berth load generator: sends load to a server on loopback (127.0.0.0/8) only.

usage: load MODE --url URL [options]        (or --mode MODE; --addr IP:PORT [--path P])
       load MODE --url wss://localhost:PORT/ --ca CERT.pem [options]      (TLS)

modes:
  ws-echo     --conns WebSocket connections, each keeping --in-flight messages of --size
              bytes outstanding; every echo is checked (length and content)
  handshake   --conns concurrent loops of connect, upgrade, Close 1000, wait for the
              close reply or EOF; reports handshakes/s
  idle        --idle N WebSocket connections opened and held for --duration; with
              --server-pid, the server's RSS before and after and per connection
  http        --conns keep-alive connections, each with --pipeline GETs in flight

options:
  --url URL             ws://127.0.0.1:PORT/path (or http://...); loopback IPv4 or localhost;
                        wss:// and https:// run over TLS (needs --ca)
  --ca PATH             PEM certificates to trust for TLS (e.g. the server's self-signed one);
                        the server's name is checked against the URL's host
  --tls-resume          let TLS connections resume earlier sessions (default: every handshake
                        is a full one)
  --addr IP:PORT        the target without a URL; --path sets the request target (default /)
  --threads N           event loops, one per thread (default 1)
  --conns N             connections (default 100)
  --idle N              connections for idle mode (default: --conns, else 1000)
  --size BYTES          ws-echo message size; k and m suffixes are KiB and MiB (default 16)
  --in-flight N         ws-echo messages outstanding per connection (default 1)
  --pipeline N          http requests outstanding per connection (default 1)
  --text | --binary     ws-echo message type (default binary)
  --duration SECS       measured window (default 10)
  --warmup SECS         load before the window, not counted (default 1 for ws-echo and
                        http, 0 otherwise)
  --connect-timeout S   bound on opening all connections (default 30)
  --no-spread           connect from the default source address instead of spreading
                        connections over 127.0.0.2..127.0.0.200
  --server-pid PID      also report that process's CPU time and RSS (and, in idle mode,
                        its memory per connection)
  --json                print the report as one JSON object on stdout
  --quiet               no progress line on stderr
";

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
            if report.errors.total() > 0 {
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

// ───────────────────────────── arguments ─────────────────────────────

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    WsEcho,
    Handshake,
    Idle,
    Http,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::WsEcho => "ws-echo",
            Mode::Handshake => "handshake",
            Mode::Idle => "idle",
            Mode::Http => "http",
        }
    }

    /// What one counted operation is.
    fn op(self) -> &'static str {
        match self {
            Mode::WsEcho => "message",
            Mode::Handshake => "handshake",
            Mode::Idle => "connection",
            Mode::Http => "request",
        }
    }
}

/// What `--url wss://...` (or `https://`) and `--ca` ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TlsArgs {
    ca: PathBuf,
    /// The URL's host: a DNS name, sent as SNI and checked against the certificate, or an IP
    /// address, checked against the certificate's IP addresses (no SNI).
    server_name: String,
    resume: bool,
}

#[derive(Debug, Clone)]
struct Args {
    mode: Mode,
    target: SocketAddrV4,
    /// The `Host` header: the target as written.
    host: String,
    path: String,
    /// TLS (wss://, https://): the certificates to trust and the name to verify and send as
    /// SNI (the URL's host without the port).
    tls: Option<TlsArgs>,
    threads: usize,
    /// Connections (idle mode: the `--idle` count).
    conns: usize,
    size: usize,
    in_flight: usize,
    pipeline: usize,
    kind: MessageKind,
    duration: Duration,
    warmup: Duration,
    connect_timeout: Duration,
    spread: bool,
    server_pid: Option<u32>,
    json: bool,
    quiet: bool,
}

/// `Ok(None)` asks for the help text.
fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut mode = None;
    let (mut url, mut addr, mut path) = (None::<String>, None::<String>, None::<String>);
    let (mut threads, mut conns, mut idle) = (1usize, None, None);
    let (mut size, mut in_flight, mut pipeline) = (16usize, 1usize, 1usize);
    let mut kind = MessageKind::Binary;
    let (mut duration, mut warmup, mut connect_timeout) = (10.0f64, None, 30.0f64);
    let (mut spread, mut json, mut quiet) = (true, false, false);
    let mut server_pid = None;
    let (mut ca, mut tls_resume) = (None::<PathBuf>, false);

    while let Some(arg) = argv.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| argv.next())
                .ok_or_else(|| format!("{key} needs a value"))
        };
        match key.as_str() {
            "-h" | "--help" => return Ok(None),
            "--mode" => mode = Some(parse_mode(&value()?)?),
            "--url" => url = Some(value()?),
            "--addr" => addr = Some(value()?),
            "--path" => path = Some(value()?),
            "--threads" => threads = number(&key, &value()?, 1, 64)?,
            "--conns" => conns = Some(number(&key, &value()?, 1, 1_000_000)?),
            "--idle" => idle = Some(number(&key, &value()?, 1, 1_000_000)?),
            "--size" => size = byte_size(&value()?)?,
            "--in-flight" => in_flight = number(&key, &value()?, 1, 65_536)?,
            "--pipeline" => pipeline = number(&key, &value()?, 1, 1024)?,
            "--text" => kind = MessageKind::Text,
            "--binary" => kind = MessageKind::Binary,
            "--duration" => duration = seconds(&key, &value()?, 0.1, 3600.0)?,
            "--warmup" => warmup = Some(seconds(&key, &value()?, 0.0, 600.0)?),
            "--connect-timeout" => connect_timeout = seconds(&key, &value()?, 0.1, 600.0)?,
            "--no-spread" => spread = false,
            "--server-pid" => server_pid = Some(number(&key, &value()?, 1, u32::MAX)?),
            "--ca" => ca = Some(PathBuf::from(value()?)),
            "--tls-resume" => tls_resume = true,
            "--json" => json = true,
            "--quiet" => quiet = true,
            positional if !positional.starts_with('-') && mode.is_none() => {
                mode = Some(parse_mode(positional)?)
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }

    let mode = mode.ok_or("no mode given (ws-echo, handshake, idle or http)")?;
    let (target, host, url_path, secure) = match (url, addr) {
        (Some(_), Some(_)) => return Err("give --url or --addr, not both".into()),
        (None, None) => return Err("no target: give --url or --addr".into()),
        (Some(url), None) => parse_url(&url)?,
        (None, Some(addr)) => {
            let target = parse_host_port(&addr)?;
            (target, addr, None, false)
        }
    };
    let tls = match (secure, ca) {
        (true, Some(ca)) => Some(TlsArgs {
            ca,
            server_name: host.rsplit_once(':').map_or(&*host, |(h, _)| h).to_string(),
            resume: tls_resume,
        }),
        (true, None) => {
            return Err("a wss:// or https:// URL needs --ca (the certificate to trust)".into())
        }
        (false, Some(_)) => return Err("--ca is for wss:// and https:// URLs".into()),
        (false, None) if tls_resume => {
            return Err("--tls-resume is for wss:// and https:// URLs".into())
        }
        (false, None) => None,
    };
    let path = match (path, url_path) {
        (Some(_), Some(_)) => return Err("the URL already has a path; drop --path".into()),
        (Some(p), None) | (None, Some(p)) => p,
        (None, None) => "/".to_string(),
    };
    // ClientHandshake::write_request copies the target as given, so it is checked here.
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{path:?}: the path must start with / and be visible ASCII"
        ));
    }
    let conns = match mode {
        Mode::Idle => idle.or(conns).unwrap_or(1000),
        _ if idle.is_some() => return Err("--idle is for idle mode; use --conns".into()),
        _ => conns.unwrap_or(100),
    };
    if size > 64 * 1024 * 1024 {
        return Err("--size is at most 64m".into());
    }
    let warmup = warmup.unwrap_or(match mode {
        Mode::WsEcho | Mode::Http => 1.0,
        Mode::Handshake | Mode::Idle => 0.0,
    });
    Ok(Some(Args {
        mode,
        target,
        host,
        path,
        tls,
        threads: threads.min(conns),
        conns,
        size,
        in_flight,
        pipeline,
        kind,
        duration: Duration::from_secs_f64(duration),
        warmup: Duration::from_secs_f64(warmup),
        connect_timeout: Duration::from_secs_f64(connect_timeout),
        spread,
        server_pid,
        json,
        quiet,
    }))
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Ok(match s {
        "ws-echo" | "echo" => Mode::WsEcho,
        "handshake" => Mode::Handshake,
        "idle" => Mode::Idle,
        "http" => Mode::Http,
        _ => {
            return Err(format!(
                "unknown mode {s:?} (ws-echo, handshake, idle or http)"
            ))
        }
    })
}

/// `ws://host:port/path` or `http://host:port/path` (`wss://`, `https://` for TLS): the
/// target, the `Host` value, the path, and whether the scheme is a TLS one.
fn parse_url(url: &str) -> Result<(SocketAddrV4, String, Option<String>, bool), String> {
    let (rest, secure) = [
        ("ws://", false),
        ("http://", false),
        ("wss://", true),
        ("https://", true),
    ]
    .iter()
    .find_map(|&(scheme, secure)| Some((url.strip_prefix(scheme)?, secure)))
    .ok_or_else(|| format!("{url}: only ws://, wss://, http:// and https:// URLs"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_string())),
        None => (rest, None),
    };
    Ok((
        parse_host_port(authority)?,
        authority.to_string(),
        path,
        secure,
    ))
}

/// The one gate on where load goes: an IPv4 address in 127.0.0.0/8, or `localhost`. Names are
/// not resolved, so nothing outside the machine can be reached through one.
fn parse_host_port(s: &str) -> Result<SocketAddrV4, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s}: give host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{s}: bad port {port:?}"))?;
    let ip = if host.eq_ignore_ascii_case("localhost") {
        Ipv4Addr::LOCALHOST
    } else {
        host.parse::<Ipv4Addr>().map_err(|_| {
            format!("{host}: the target must be an IPv4 address in 127.0.0.0/8 or localhost")
        })?
    };
    if !ip.is_loopback() {
        return Err(format!(
            "refusing {ip}: load goes only to loopback addresses (127.0.0.0/8)"
        ));
    }
    if port == 0 {
        return Err(format!("{s}: port 0"));
    }
    Ok(SocketAddrV4::new(ip, port))
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    key: &str,
    s: &str,
    min: T,
    max: T,
) -> Result<T, String> {
    let n: T = s
        .parse()
        .map_err(|_| format!("{key}: {s:?} is not a number"))?;
    if n < min || n > max {
        return Err(format!("{key}: {n} is outside {min}..={max}"));
    }
    Ok(n)
}

fn seconds(key: &str, s: &str, min: f64, max: f64) -> Result<f64, String> {
    number(key, s.strip_suffix('s').unwrap_or(s), min, max)
}

/// Bytes, with an optional `k`/`m` (KiB/MiB) suffix.
fn byte_size(s: &str) -> Result<usize, String> {
    let lower = s.to_ascii_lowercase();
    let lower = lower.strip_suffix("ib").unwrap_or(&lower);
    let (digits, unit) = match lower.as_bytes().last() {
        Some(b'k') => (&lower[..lower.len() - 1], 1024),
        Some(b'm') => (&lower[..lower.len() - 1], 1024 * 1024),
        _ => (lower, 1),
    };
    let n: usize = number("--size", digits, 0, 64 * 1024 * 1024)?;
    n.checked_mul(unit)
        .ok_or_else(|| format!("--size: {s} is too large"))
}

// ───────────────────────────── the run ─────────────────────────────

/// What every thread reads: the arguments, and the start of the run, set by the main thread
/// once every thread has opened its connections.
struct Shared {
    args: Args,
    start: OnceLock<Instant>,
    /// The TLS client configuration, for wss:// and https://.
    tls: Option<TlsSetup>,
}

/// One thread's live counters, for the progress line. Each thread stores its running totals
/// once per loop iteration; only the main thread reads them.
#[repr(align(128))]
#[derive(Default)]
struct Progress {
    ops: AtomicU64,
    errors: AtomicU64,
    open: AtomicU64,
    ready: AtomicBool,
    finished: AtomicBool,
}

/// Errors by kind. Every one counts against a clean run.
#[derive(Debug, Default, Clone, Copy)]
struct Errors {
    /// The TCP connect failed.
    connect: u64,
    /// The upgrade failed: a bad or refused answer, or the server closed during it.
    handshake: u64,
    /// The server broke the WebSocket or HTTP protocol.
    protocol: u64,
    /// An echo differed from the message sent (length, content or type), or came unasked.
    mismatch: u64,
    /// The server closed a connection that was in use.
    closed: u64,
    /// A connect, upgrade, close or answer took longer than its bound.
    timeout: u64,
    /// A socket error other than the above.
    io: u64,
    /// An HTTP response other than 200.
    status: u64,
    /// The TLS layer failed: a certificate that does not verify, an alert from the server, a
    /// record that does not decrypt.
    tls: u64,
}

impl Errors {
    fn total(&self) -> u64 {
        self.connect
            + self.handshake
            + self.protocol
            + self.mismatch
            + self.closed
            + self.timeout
            + self.io
            + self.status
            + self.tls
    }

    fn count(&mut self, fail: Fail) {
        *match fail {
            Fail::Connect => &mut self.connect,
            Fail::Handshake => &mut self.handshake,
            Fail::Protocol => &mut self.protocol,
            Fail::Closed => &mut self.closed,
            Fail::Timeout => &mut self.timeout,
            Fail::Io => &mut self.io,
            Fail::Tls => &mut self.tls,
        } += 1;
    }

    fn add(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.handshake += o.handshake;
        self.protocol += o.protocol;
        self.mismatch += o.mismatch;
        self.closed += o.closed;
        self.timeout += o.timeout;
        self.io += o.io;
        self.status += o.status;
        self.tls += o.tls;
    }
}

/// Why a connection ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    Connect,
    Handshake,
    Protocol,
    Closed,
    Timeout,
    Io,
    Tls,
}

/// What one thread measured.
struct ThreadReport {
    /// Operations completed inside the window.
    ops: u64,
    /// Payload bytes (ws-echo) or response body bytes (http) received inside the window.
    bytes: u64,
    errors: Errors,
    hist: Histogram<u64>,
    /// Connections that completed the upgrade (or the TCP connect, in http mode).
    opened: u64,
    /// Connections open when the window closed.
    open_at_end: u64,
    /// From the thread's start to every connection being open (or given up on).
    open_time: Duration,
    /// Close handshakes that finished (the peer's Close arrived, or it closed TCP).
    clean_closes: u64,
    tls: TlsReport,
}

/// What the TLS sessions were (wss://, https://).
#[derive(Debug, Default)]
struct TlsReport {
    /// Connections whose TLS handshake completed as a full handshake.
    full: u64,
    /// Connections whose TLS handshake resumed an earlier session (`--tls-resume`).
    resumed: u64,
    /// The first completed session's parameters.
    session: Option<TlsSession>,
    /// The first TLS failure, as rustls words it.
    first_error: Option<String>,
}

/// What one TLS session negotiated.
#[derive(Debug, Clone)]
struct TlsSession {
    version: String,
    cipher_suite: String,
    key_exchange: String,
    alpn: Option<String>,
}

impl TlsReport {
    /// A connection's TLS handshake completed (once per connection).
    fn note(&mut self, conn: &ClientConnection) {
        if conn.handshake_kind() == Some(HandshakeKind::Resumed) {
            self.resumed += 1;
        } else {
            self.full += 1;
        }
        if self.session.is_none() {
            let unknown = || "?".to_string();
            self.session = Some(TlsSession {
                version: conn
                    .protocol_version()
                    .map_or_else(unknown, |v| format!("{v:?}")),
                cipher_suite: conn
                    .negotiated_cipher_suite()
                    .map_or_else(unknown, |s| format!("{:?}", s.suite())),
                key_exchange: conn
                    .negotiated_key_exchange_group()
                    .map_or_else(unknown, |g| format!("{:?}", g.name())),
                alpn: conn
                    .alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
            });
        }
    }

    fn add(&mut self, o: TlsReport) {
        self.full += o.full;
        self.resumed += o.resumed;
        self.session = self.session.take().or(o.session);
        self.first_error = self.first_error.take().or(o.first_error);
    }
}

/// The error kind a failed read counts as: rustls's errors (wrapped by [`Tls::read`]) are TLS
/// failures, the rest socket errors.
fn fail_of(e: &io::Error) -> Fail {
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        Fail::Tls
    } else {
        Fail::Io
    }
}

fn new_histogram() -> Histogram<u64> {
    // Nanoseconds, from 1 ns to 60 s, with 3 significant figures.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant histogram bounds")
}

/// The whole run's result.
struct Report {
    args: Args,
    window: Duration,
    ops: u64,
    bytes: u64,
    errors: Errors,
    hist: Histogram<u64>,
    opened: u64,
    open_at_end: u64,
    open_time: Duration,
    clean_closes: u64,
    tls: TlsReport,
    client_cpu: Option<f64>,
    server_cpu: Option<f64>,
    rss_before_kib: Option<u64>,
    rss_after_kib: Option<u64>,
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
        ops: 0,
        bytes: 0,
        errors: Errors::default(),
        hist: new_histogram(),
        opened: 0,
        open_at_end: 0,
        open_time: Duration::ZERO,
        clean_closes: 0,
        tls: TlsReport::default(),
        client_cpu: cpu_between(cpu0.0, cpu1.0),
        server_cpu: cpu_between(cpu0.1, cpu1.1),
        rss_before_kib,
        rss_after_kib,
    };
    let mut failures = Vec::new();
    for handle in handles {
        match handle.join() {
            Ok(Ok(t)) => {
                report.ops += t.ops;
                report.bytes += t.bytes;
                report.errors.add(&t.errors);
                let _ = report.hist.add(&t.hist);
                report.opened += t.opened;
                report.open_at_end += t.open_at_end;
                report.open_time = report.open_time.max(t.open_time);
                report.clean_closes += t.clean_closes;
                report.tls.add(t.tls);
            }
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

fn thread_main(shared: &Shared, me: &Progress, index: usize) -> Result<ThreadReport, String> {
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
struct Rng(u64);

impl Rng {
    fn new(index: u64) -> Self {
        let t = std::time::UNIX_EPOCH
            .elapsed()
            .map_or(0, |d| d.as_nanos() as u64);
        Rng((t ^ (index.wrapping_add(1)).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn nonce(&mut self) -> [u8; 16] {
        let mut n = [0; 16];
        n[..8].copy_from_slice(&self.next().to_le_bytes());
        n[8..].copy_from_slice(&self.next().to_le_bytes());
        n
    }
}

// ───────────────────────────── the event loop ─────────────────────────────

/// Where a connection is. Both clients use the same phases (http skips `Upgrading` and
/// `Lingering`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
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
struct Ctx<'a> {
    now: Instant,
    /// Inside the measured window: completed operations count.
    counting: bool,
    /// Answer each echo or response with a new message or request.
    refill: bool,
    /// Handshake mode: a finished close handshake is the operation, and the upgrade's latency
    /// (connect to 101) goes into the histogram.
    cycles: bool,
    expected: &'a [u8],
    kind: MessageKind,
    unit: usize,
    ops: &'a mut u64,
    all_ops: &'a mut u64,
    bytes: &'a mut u64,
    errors: &'a mut Errors,
    hist: &'a mut Histogram<u64>,
    clean_closes: &'a mut u64,
}

impl Ctx<'_> {
    /// One operation finished; `since` is when it started.
    fn complete(&mut self, bytes: usize, since: Option<Instant>) {
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
trait Client {
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
            report: ThreadReport {
                ops: 0,
                bytes: 0,
                errors: Errors::default(),
                hist: new_histogram(),
                opened: 0,
                open_at_end: 0,
                open_time: Duration::ZERO,
                clean_closes: 0,
                tls: TlsReport::default(),
            },
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

// ───────────────────────────── bytes in and out ─────────────────────────────

/// What a connection still has to write.
struct Outbox {
    /// Bytes that are not pre-encoded units: the upgrade request, Close frames, automatic
    /// pongs. They go out only between two units, never inside one.
    ctrl: Vec<u8>,
    ctrl_off: usize,
    /// Bytes of pre-encoded units still to write.
    owed: usize,
    /// Offset of the next unit byte within its unit.
    pos: usize,
    /// When each unit not yet answered was queued, oldest first: echoes and responses come
    /// back in order. Capacity for the whole pipeline is reserved up front.
    sent_at: VecDeque<Instant>,
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

    fn owe(&mut self, n: usize, unit: usize, now: Instant) {
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
    fn cancel_unsent(&mut self, unit: usize) {
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

    fn is_empty(&self) -> bool {
        self.owed == 0 && self.ctrl_off == self.ctrl.len()
    }

    /// The next bytes to write and whether they are control bytes; `None` when nothing is
    /// owed. `wire` holds whole copies of the unit, so the owed bytes, which repeat with period
    /// `unit`, are always one contiguous slice of it starting at `pos`.
    fn next_chunk<'w>(&'w self, wire: &'w [u8]) -> Option<(&'w [u8], bool)> {
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
    fn advance(&mut self, n: usize, ctrl: bool, unit: usize) {
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
struct Link {
    stream: TcpStream,
    /// The TLS session over `stream` (wss://, https://); `None` for plain TCP. Boxed so that
    /// a plain connection does not carry its size.
    tls: Option<Box<Tls>>,
    rbuf: Box<[u8]>,
    rlen: usize,
    out: Outbox,
}

/// The result of one read.
enum Got {
    /// Bytes arrived; `true` if they filled less than the free space, so the socket is
    /// drained for now (see [`Client::on_ready`]). Over TLS the bytes that arrived may have
    /// made no plaintext yet (see [`Tls::read`]).
    Bytes(bool),
    Blocked,
    Eof,
}

impl Link {
    fn new(stream: TcpStream, tls: Option<Box<Tls>>, rbuf: usize, in_flight: usize) -> Self {
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
    fn read_once(&mut self) -> io::Result<Got> {
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
    fn consume(&mut self, n: usize) {
        self.rbuf.copy_within(n..self.rlen, 0);
        self.rlen -= n;
    }

    /// Write control bytes and owed units until there are none or the socket would block
    /// (then the next writable event resumes). `Ok(true)`: stopped early with more to write.
    fn flush(&mut self, wire: &[u8], unit: usize) -> io::Result<bool> {
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
    fn connected(&mut self) -> Result<bool, Fail> {
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
    fn close_notify(&mut self) {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.close_notify = tls.close_notify.max(CloseNotify::Queued);
        }
    }

    /// The session, the first time this is asked after its TLS handshake completed (once per
    /// connection), for the report.
    fn take_handshake(&mut self) -> Option<&ClientConnection> {
        let tls = self.tls.as_deref_mut()?;
        if tls.handshake_seen || tls.conn.is_handshaking() {
            return None;
        }
        tls.handshake_seen = true;
        Some(&tls.conn)
    }

    /// Why the TLS session failed, in words for the report.
    fn tls_error(&self) -> Option<String> {
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
    fn is_tls_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.conn.is_handshaking())
    }

    /// The connection ends cleanly now and the socket is about to be dropped: over TLS, send
    /// close_notify, in one write attempt (a socket that cannot take a few dozen bytes now
    /// will not be waited for).
    fn end_tls(&mut self) {
        if let Some(tls) = self.tls.as_deref_mut() {
            if tls.close_notify != CloseNotify::Sent {
                tls.conn.send_close_notify();
                tls.close_notify = CloseNotify::Sent;
            }
            let _ = tls.conn.write_tls(&mut self.stream);
        }
    }
}

// ───────────────────────────── TLS ─────────────────────────────

/// The TLS client configuration for a run: built once, shared by every connection.
struct TlsSetup {
    config: Arc<ClientConfig>,
    name: pki_types::ServerName<'static>,
}

impl TlsSetup {
    /// Trust the certificates in `args.ca`, and nothing else; offer ALPN `http/1.1`.
    fn new(args: &TlsArgs) -> Result<Self, String> {
        let ca = args.ca.display();
        let mut roots = rustls::RootCertStore::empty();
        let certs =
            <pki_types::CertificateDer<'_> as pki_types::pem::PemObject>::pem_file_iter(&args.ca)
                .map_err(|e| format!("--ca {ca}: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("--ca {ca}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("--ca {ca}: a certificate rustls cannot use: {e}"))?;
        }
        if roots.is_empty() {
            return Err(format!("--ca {ca}: no PEM certificate in it"));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        if !args.resume {
            // Every handshake a full one: the cost a new visitor brings, and a figure that
            // does not depend on how many sessions the server caches.
            config.resumption = rustls::client::Resumption::disabled();
        }
        let name = pki_types::ServerName::try_from(args.server_name.clone())
            .map_err(|e| format!("{}: not a server name for TLS: {e}", args.server_name))?;
        Ok(TlsSetup {
            config: Arc::new(config),
            name,
        })
    }

    /// A client session for one new connection; its ClientHello is queued at once.
    fn connect(&self) -> io::Result<Box<Tls>> {
        let mut conn = ClientConnection::new(Arc::clone(&self.config), self.name.clone())
            .map_err(io::Error::other)?;
        // Room for a whole batch of pre-encoded units in one write into rustls (its default
        // is 64 KiB, less than one 64 KiB frame with its header).
        conn.set_buffer_limit(Some(BATCH_BYTES));
        Ok(Box::new(Tls {
            conn,
            drained: false,
            close_notify: CloseNotify::No,
            handshake_seen: false,
            error: None,
        }))
    }
}

/// Where close_notify stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CloseNotify {
    No,
    /// To be sent once the bytes queued before it are handed to rustls.
    Queued,
    Sent,
}

/// One connection's TLS session, on rustls's buffered API: `read_tls` moves socket bytes into
/// rustls, `process_new_packets` decrypts them, `reader()` hands out plaintext; `writer()`
/// takes plaintext and encrypts it, `write_tls` moves the records to the socket. The mio
/// registration stays edge-triggered for both directions, as for plain TCP: nothing is
/// re-registered from `wants_read`/`wants_write`; a read drains the socket and a flush
/// writes until rustls is empty or the socket is full, and the next edge resumes either.
///
/// Allocations per message. This code allocates nothing per message over TLS either: the
/// plaintext goes from the shared pre-encoded buffer into `writer()` and from `reader()` into
/// the connection's receive buffer, and the socket adapters below live on the stack. rustls
/// 0.23's buffered API allocates inside, though: `writer()` encrypts each record into a new
/// `Vec` (queued for `write_tls`), and `process_new_packets` moves each received
/// application-data record into a new `Vec` of plaintext for `reader()`. That is two
/// allocations per record: with one 16 B message per record (one in flight), two per message
/// (valgrind's DHAT, 10 connections for 2 s: 43,121 echoes, 43,122 and 43,152 blocks from
/// those two sites, 1,304 from everything else together, setup included); units written
/// together share records.
/// Its receive buffer also shrinks to 4 KiB whenever it empties, so larger records regrow it:
/// a 64 KiB echo costs about 15 allocations (5 records each way, 4 regrowths). Only rustls's
/// unbuffered API, in which the caller owns the buffers, avoids these, and berth does not
/// build on it (STYLE.md §1.2).
struct Tls {
    conn: ClientConnection,
    /// The last socket read returned less than it had room for (or nothing): the socket is
    /// drained until the next readable edge.
    drained: bool,
    close_notify: CloseNotify,
    /// The handshake's end has been reported (see [`Link::take_handshake`]).
    handshake_seen: bool,
    /// Why the session failed, for the report.
    error: Option<rustls::Error>,
}

impl Tls {
    /// Fill `free` with plaintext: what rustls holds, else what socket reads bring once
    /// decrypted. Returns the bytes copied (possibly none) and what to tell
    /// [`Client::on_ready`]: `Bytes(true)` only when rustls has no more plaintext and the last
    /// socket read was short, so that the caller stops reading exactly when a plain connection
    /// would.
    fn read(&mut self, stream: &mut TcpStream, free: &mut [u8]) -> io::Result<(usize, Got)> {
        // Each round either hands out plaintext or reads the socket; a record is at most
        // 16 KiB and rustls reads the socket in steps of at least 4 KiB, so a few rounds see
        // a record through.
        let mut read_socket = false;
        for _ in 0..MAX_IO_PER_EVENT {
            match self.conn.reader().read(free) {
                // The server's close_notify: a clean end of the stream.
                Ok(0) => return Ok((0, Got::Eof)),
                Ok(n) => return Ok((n, Got::Bytes(n < free.len() && self.drained))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // TCP closed without close_notify. Servers commonly do that once the WebSocket
                // close handshake is done, and every message was already checked, so it is an
                // end of stream like any other here.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok((0, Got::Eof)),
                Err(e) => return Err(e),
            }
            if read_socket && self.drained {
                // What the short read brought made no plaintext (a handshake message, part of
                // a record). Reported as a short read, not as WouldBlock, so that the caller
                // still reads on to the EOF when the event also carried the peer's FIN.
                return Ok((0, Got::Bytes(true)));
            }
            let mut socket = SocketRead {
                stream,
                drained: false,
            };
            read_socket = true;
            match self.conn.read_tls(&mut socket) {
                // Ok(0) is TCP's end: the reader says next round whether it was clean.
                Ok(_) => self.drained = socket.drained,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.drained = true;
                    return Ok((0, Got::Blocked));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.conn.process_new_packets() {
                // rustls has queued an alert for the server; the caller's `fail` writes it.
                self.error.get_or_insert(e.clone());
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        // Still mid-record after all those rounds: come back soon.
        Ok((0, Got::Bytes(false)))
    }

    /// Hand owed bytes to rustls and its records to the socket, until both are empty or the
    /// socket is full. `Ok(true)`: stopped early with more to write.
    fn flush(
        &mut self,
        stream: &mut TcpStream,
        out: &mut Outbox,
        wire: &[u8],
        unit: usize,
    ) -> io::Result<bool> {
        for _ in 0..MAX_IO_PER_EVENT {
            // Plaintext in: encrypted at once, or held until the TLS handshake is done (the
            // upgrade request, written right after the connect).
            let mut stalled = false;
            if let Some((chunk, ctrl)) = out.next_chunk(wire) {
                let n = self.conn.writer().write(chunk)?;
                out.advance(n, ctrl, unit);
                stalled = n == 0;
            } else if self.close_notify == CloseNotify::Queued {
                self.conn.send_close_notify();
                self.close_notify = CloseNotify::Sent;
            }
            if !self.conn.wants_write() {
                if out.is_empty() || stalled {
                    // All written; or rustls takes no more before its handshake ends, and the
                    // read that ends it flushes again.
                    return Ok(false);
                }
                continue;
            }
            // Records out, in one writev of up to 64 of them.
            let mut socket = SocketWrite {
                stream,
                full: false,
            };
            match self.conn.write_tls(&mut socket) {
                // A short write means the socket buffer is full: the writable edge that
                // follows resumes here.
                Ok(_) if socket.full => return Ok(false),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(!out.is_empty() || self.conn.wants_write())
    }
}

/// The socket as rustls reads it, noting a short read: the socket is drained, and the next
/// readable edge says when more has come (see [`Client::on_ready`]).
struct SocketRead<'a> {
    stream: &'a mut TcpStream,
    drained: bool,
}

impl Read for SocketRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.drained = n < buf.len();
        Ok(n)
    }
}

/// The socket as rustls writes to it, noting a short write: the socket buffer is full.
struct SocketWrite<'a> {
    stream: &'a mut TcpStream,
    full: bool,
}

impl Write for SocketWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.stream.write(buf)?;
        self.full = n < buf.len();
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = self.stream.write_vectored(bufs)?;
        self.full = n < bufs.iter().map(|b| b.len()).sum();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ───────────────────────────── WebSocket client ─────────────────────────────

struct WsClient {
    link: Link,
    phase: Phase,
    handshake: ClientHandshake,
    conn: Conn,
    started: Instant,
    /// The current phase must end by then (none while open).
    deadline: Option<Instant>,
}

impl WsClient {
    fn new(
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

// ───────────────────────────── HTTP client ─────────────────────────────

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

struct HttpClient {
    link: Link,
    phase: Phase,
    reader: ResponseReader,
    /// The server said `Connection: close`: the connection ends after that response.
    close_after: bool,
    deadline: Option<Instant>,
}

impl HttpClient {
    fn new(link: Link, at: Instant, connect_timeout: Duration) -> Self {
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

// ───────────────────────────── /proc ─────────────────────────────

/// User plus system CPU time of process `pid` ("self" for this one), all threads, in clock
/// ticks of 10 ms.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces; fields after it start
    // with the state (field 3). utime and stime are fields 14 and 15, in clock ticks.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU seconds between two [`cpu_ticks`] readings. The ticks are USER_HZ, which Linux fixes at
/// 100 on every architecture this runs on.
fn cpu_between(before: Option<u64>, after: Option<u64>) -> Option<f64> {
    let (before, after) = before.zip(after)?;
    Some(after.saturating_sub(before) as f64 / 100.0)
}

/// Resident set size of process `pid` in KiB (`VmRSS`).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// Refuse a run whose connections would not fit under the open-file limit, rather than fail
/// halfway with EMFILE.
fn check_fd_limit(args: &Args) -> Result<(), String> {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return Ok(());
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|s| s.parse::<u64>().ok());
    match soft {
        Some(soft) if args.conns as u64 + SPARE_FDS > soft => Err(format!(
            "{} connections need about {} file descriptors, over the limit of {soft}: \
             raise it (ulimit -n) in the shell that starts the load generator",
            args.conns,
            args.conns as u64 + SPARE_FDS
        )),
        _ => Ok(()),
    }
}

// ───────────────────────────── the report ─────────────────────────────

impl Report {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.window.as_secs_f64()
    }

    fn per_cpu(&self, cpu: Option<f64>) -> Option<f64> {
        cpu.filter(|&c| c > 0.0).map(|c| self.ops as f64 / c)
    }

    fn quantile_us(&self, q: f64) -> Option<f64> {
        (!self.hist.is_empty()).then(|| self.hist.value_at_quantile(q) as f64 / 1000.0)
    }

    /// Server memory per open connection, in bytes (idle mode with `--server-pid`).
    fn rss_per_conn(&self) -> Option<f64> {
        if self.args.mode != Mode::Idle {
            return None;
        }
        let (before, after) = self.rss_before_kib.zip(self.rss_after_kib)?;
        (self.open_at_end > 0)
            .then(|| (after as f64 - before as f64) * 1024.0 / self.open_at_end as f64)
    }

    fn to_json(&self) -> serde_json::Value {
        let a = &self.args;
        let e = &self.errors;
        json!({
            "mode": a.mode.name(),
            "op": a.mode.op(),
            "target": a.target.to_string(),
            "path": a.path,
            "threads": a.threads,
            "conns": a.conns,
            "size_bytes": a.size,
            "kind": match a.kind { MessageKind::Text => "text", _ => "binary" },
            "in_flight": a.in_flight,
            "pipeline": a.pipeline,
            "warmup_s": a.warmup.as_secs_f64(),
            "window_s": self.window.as_secs_f64(),
            "opened": self.opened,
            "open_at_end": self.open_at_end,
            "open_time_s": self.open_time.as_secs_f64(),
            "clean_closes": self.clean_closes,
            "ops": self.ops,
            "ops_per_s": self.rate(),
            "bytes": self.bytes,
            "mb_per_s": self.bytes as f64 / 1e6 / self.window.as_secs_f64(),
            "latency_us": {
                "count": self.hist.len(),
                "p50": self.quantile_us(0.5),
                "p99": self.quantile_us(0.99),
                "p999": self.quantile_us(0.999),
                "max": self.quantile_us(1.0),
                "mean": (!self.hist.is_empty()).then(|| self.hist.mean() / 1000.0),
            },
            "errors": {
                "total": e.total(),
                "connect": e.connect,
                "handshake": e.handshake,
                "protocol": e.protocol,
                "mismatch": e.mismatch,
                "closed": e.closed,
                "timeout": e.timeout,
                "io": e.io,
                "status": e.status,
                "tls": e.tls,
            },
            "tls": a.tls.as_ref().map(|t| {
                let session = self.tls.session.as_ref();
                json!({
                    "server_name": t.server_name,
                    "resumption_allowed": t.resume,
                    "full_handshakes": self.tls.full,
                    "resumed_handshakes": self.tls.resumed,
                    "version": session.map(|s| &s.version),
                    "cipher_suite": session.map(|s| &s.cipher_suite),
                    "key_exchange": session.map(|s| &s.key_exchange),
                    "alpn": session.and_then(|s| s.alpn.as_ref()),
                    "first_error": self.tls.first_error,
                })
            }),
            "client_cpu_s": self.client_cpu,
            "server_pid": a.server_pid,
            "server_cpu_s": self.server_cpu,
            "ops_per_client_cpu_s": self.per_cpu(self.client_cpu),
            "ops_per_server_cpu_s": self.per_cpu(self.server_cpu),
            "server_rss_kib_before": self.rss_before_kib,
            "server_rss_kib_after": self.rss_after_kib,
            "server_rss_bytes_per_conn": self.rss_per_conn(),
        })
    }

    fn print(&self) {
        if self.args.json {
            eprint!("{}", self.summary());
            println!("{}", self.to_json());
        } else {
            print!("{}", self.summary());
        }
    }

    fn summary(&self) -> String {
        use std::fmt::Write as _;
        let a = &self.args;
        let mut s = String::new();
        let what = match a.mode {
            Mode::WsEcho => format!(
                "{} B {} messages, {} conns x {} in flight",
                a.size,
                if a.kind == MessageKind::Text {
                    "text"
                } else {
                    "binary"
                },
                a.conns,
                a.in_flight
            ),
            Mode::Handshake => format!("{} concurrent connect-upgrade-close loops", a.conns),
            Mode::Idle => format!("{} idle connections", a.conns),
            Mode::Http => format!("{} conns x {} pipelined GETs", a.conns, a.pipeline),
        };
        let _ = writeln!(
            s,
            "load {} -> {}{}{}: {what}, {} thread(s)",
            a.mode.name(),
            a.target,
            a.path,
            if a.tls.is_some() { " over TLS" } else { "" },
            a.threads
        );
        let _ = write!(
            s,
            "  window      {:.2} s after {:.2} s warm-up; ",
            self.window.as_secs_f64(),
            a.warmup.as_secs_f64(),
        );
        let _ = if a.mode == Mode::Handshake {
            writeln!(s, "{} upgrades in all", self.opened)
        } else {
            writeln!(
                s,
                "{} conns open after {:.2} s, {} open at the end, {} opened in all",
                a.conns.min(self.opened as usize),
                self.open_time.as_secs_f64(),
                self.open_at_end,
                self.opened,
            )
        };
        if a.mode != Mode::Idle {
            let _ = write!(
                s,
                "  {:<11} {} ({:.0}/s",
                format!("{}s", a.mode.op()),
                self.ops,
                self.rate()
            );
            match a.mode {
                Mode::WsEcho => {
                    let _ = write!(
                        s,
                        ", {:.2} MB/s of payload each way",
                        self.bytes as f64 / 1e6 / self.window.as_secs_f64()
                    );
                }
                Mode::Http => {
                    let _ = write!(
                        s,
                        ", {:.2} MB/s of body",
                        self.bytes as f64 / 1e6 / self.window.as_secs_f64()
                    );
                }
                _ => {}
            }
            let _ = writeln!(s, ")");
        }
        if !self.hist.is_empty() {
            let q = |q| self.quantile_us(q).unwrap_or(0.0);
            let _ = writeln!(
                s,
                "  latency     p50 {:.1} us  p99 {:.1} us  p99.9 {:.1} us  max {:.1} us{}",
                q(0.5),
                q(0.99),
                q(0.999),
                q(1.0),
                if a.mode == Mode::Handshake {
                    " (connect to 101)"
                } else {
                    ""
                }
            );
        }
        if let Some(t) = &a.tls {
            let _ = write!(
                s,
                "  tls         {} full and {} resumed handshakes",
                self.tls.full, self.tls.resumed
            );
            if let Some(session) = &self.tls.session {
                let _ = write!(
                    s,
                    "; {}, {}, {}, ALPN {}, name {}",
                    session.version,
                    session.cipher_suite,
                    session.key_exchange,
                    session.alpn.as_deref().unwrap_or("none"),
                    t.server_name
                );
            }
            let _ = writeln!(s);
            if let Some(error) = &self.tls.first_error {
                let _ = writeln!(s, "  tls error   {error}");
            }
        }
        let e = &self.errors;
        let _ = writeln!(
            s,
            "  errors      {} (connect {}, handshake {}, protocol {}, mismatch {}, closed {}, \
             timeout {}, io {}, status {}, tls {})",
            e.total(),
            e.connect,
            e.handshake,
            e.protocol,
            e.mismatch,
            e.closed,
            e.timeout,
            e.io,
            e.status,
            e.tls
        );
        let cpu_line = |who: &str, cpu: Option<f64>| -> String {
            match (cpu, self.per_cpu(cpu)) {
                (Some(c), Some(per)) if a.mode != Mode::Idle => format!(
                    "  {who:<11} {c:.2} s CPU ({per:.0} {}s per CPU-second)\n",
                    a.mode.op()
                ),
                (Some(c), _) => format!("  {who:<11} {c:.2} s CPU\n"),
                (None, _) => String::new(),
            }
        };
        s.push_str(&cpu_line("client", self.client_cpu));
        s.push_str(&cpu_line("server", self.server_cpu));
        if let (Some(before), Some(after)) = (self.rss_before_kib, self.rss_after_kib) {
            let _ = write!(
                s,
                "  server RSS  {before} KiB before, {after} KiB with the connections open"
            );
            if let Some(per) = self.rss_per_conn() {
                let _ = write!(s, " ({per:.0} bytes per connection)");
            }
            let _ = writeln!(s);
        }
        s
    }
}

#[cfg(test)]
#[path = "../support/load_tls_tests.rs"]
mod tls_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Args, String> {
        parse_args(line.split_whitespace().map(String::from)).map(|a| a.expect("not --help"))
    }

    #[test]
    fn refuses_every_target_off_loopback() {
        for bad in [
            "10.0.0.1:80",
            "192.168.1.1:80",
            "172.16.0.1:80",
            "8.8.8.8:53",
            "0.0.0.0:80",
            "[::1]:80",
            "example.com:80",
            "127.0.0.1",
            "127.0.0.1:0",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad} was accepted");
        }
        assert_eq!(
            parse_host_port("localhost:9001"),
            Ok(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9001))
        );
        assert_eq!(
            parse_host_port("127.4.5.6:80"),
            Ok(SocketAddrV4::new(Ipv4Addr::new(127, 4, 5, 6), 80))
        );
        assert!(args("ws-echo --url ws://10.1.2.3:80/").is_err());
        assert!(args("http --url ftp://127.0.0.1:443/").is_err());
    }

    #[test]
    fn parses_modes_targets_and_defaults() {
        let a = args("ws-echo --url ws://127.0.0.1:9001/chat?x=1 --size 16k --text").unwrap();
        assert_eq!(
            (a.mode, a.target.port(), a.path.as_str()),
            (Mode::WsEcho, 9001, "/chat?x=1")
        );
        assert_eq!(
            (a.size, a.kind, a.host.as_str()),
            (16 * 1024, MessageKind::Text, "127.0.0.1:9001")
        );
        assert_eq!(a.warmup, Duration::from_secs(1));

        let a = args("--mode=idle --addr 127.0.0.1:9001 --idle 500 --threads 8").unwrap();
        assert_eq!(
            (a.mode, a.conns, a.threads, a.path.as_str()),
            (Mode::Idle, 500, 8, "/")
        );
        assert_eq!(a.warmup, Duration::ZERO);

        // More threads than connections would leave threads with nothing to do.
        assert_eq!(
            args("handshake --addr 127.0.0.1:1 --conns 2 --threads 4")
                .unwrap()
                .threads,
            2
        );
        assert!(args("ws-echo --url ws://127.0.0.1:1/a --path /b").is_err());
        assert!(args("ws-echo --addr 127.0.0.1:1 --path nohost").is_err());
        assert!(args("ws-echo --addr 127.0.0.1:1 --idle 5").is_err());
        assert!(args("ws-echo --addr 127.0.0.1:1 --in-flight 0").is_err());
        assert!(args("ws-echo --addr 127.0.0.1:1 --frobnicate").is_err());
        assert!(parse_args(["--help".to_string()].into_iter())
            .unwrap()
            .is_none());
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(byte_size("16"), Ok(16));
        assert_eq!(byte_size("64k"), Ok(64 * 1024));
        assert_eq!(byte_size("16M"), Ok(16 << 20));
        assert_eq!(byte_size("16MiB"), Ok(16 << 20));
        assert!(byte_size("1g").is_err());
        assert!(byte_size("x").is_err());
    }

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
