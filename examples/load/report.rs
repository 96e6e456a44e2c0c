//! What a run measured: errors by kind, the TLS sessions, the latency histogram, and the
//! report printed at the end, for a person or as one JSON object.

use std::io;
use std::time::Duration;

use berth::ws::MessageKind;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio_rustls::rustls::{self, ClientConnection, HandshakeKind};

use crate::args::{Args, Mode};

/// Errors by kind. Every one counts against a clean run.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Errors {
    /// The TCP connect failed.
    pub(crate) connect: u64,
    /// The upgrade failed: a bad or refused answer, or the server closed during it.
    handshake: u64,
    /// The server broke the WebSocket or HTTP protocol.
    pub(crate) protocol: u64,
    /// An echo differed from the message sent (length, content or type), or came unasked.
    pub(crate) mismatch: u64,
    /// The server closed a connection that was in use.
    pub(crate) closed: u64,
    /// A connect, upgrade, close or answer took longer than its bound.
    pub(crate) timeout: u64,
    /// A socket error other than the above.
    pub(crate) io: u64,
    /// An HTTP response other than 200.
    pub(crate) status: u64,
    /// The TLS layer failed: a certificate that does not verify, an alert from the server, a
    /// record that does not decrypt.
    pub(crate) tls: u64,
}

impl Errors {
    pub(crate) fn total(&self) -> u64 {
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

    pub(crate) fn count(&mut self, fail: Fail) {
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

    pub(crate) fn add(&mut self, o: &Errors) {
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
pub(crate) enum Fail {
    Connect,
    Handshake,
    Protocol,
    Closed,
    Timeout,
    Io,
    Tls,
}

/// What one thread measured.
pub(crate) struct ThreadReport {
    /// Operations completed inside the window.
    pub(crate) ops: u64,
    /// Payload bytes (ws-echo) or response body bytes (http) received inside the window.
    pub(crate) bytes: u64,
    pub(crate) errors: Errors,
    pub(crate) hist: Histogram<u64>,
    /// Connections that completed the upgrade (or the TCP connect, in http mode).
    pub(crate) opened: u64,
    /// Connections open when the window closed.
    pub(crate) open_at_end: u64,
    /// From the thread's start to every connection being open (or given up on).
    pub(crate) open_time: Duration,
    /// Close handshakes that finished (the peer's Close arrived, or it closed TCP).
    pub(crate) clean_closes: u64,
    pub(crate) tls: TlsReport,
}

impl ThreadReport {
    /// Nothing measured yet.
    pub(crate) fn new() -> Self {
        ThreadReport {
            ops: 0,
            bytes: 0,
            errors: Errors::default(),
            hist: new_histogram(),
            opened: 0,
            open_at_end: 0,
            open_time: Duration::ZERO,
            clean_closes: 0,
            tls: TlsReport::default(),
        }
    }

    /// Add another thread's measurements: counts add up, the open time is the slowest.
    pub(crate) fn add(&mut self, t: ThreadReport) {
        self.ops += t.ops;
        self.bytes += t.bytes;
        self.errors.add(&t.errors);
        let _ = self.hist.add(&t.hist);
        self.opened += t.opened;
        self.open_at_end += t.open_at_end;
        self.open_time = self.open_time.max(t.open_time);
        self.clean_closes += t.clean_closes;
        self.tls.add(t.tls);
    }
}

/// What the TLS sessions were (wss://, https://).
#[derive(Debug, Default)]
pub(crate) struct TlsReport {
    /// Connections whose TLS handshake completed as a full handshake.
    pub(crate) full: u64,
    /// Connections whose TLS handshake resumed an earlier session (`--tls-resume`).
    pub(crate) resumed: u64,
    /// The first completed session's parameters.
    pub(crate) session: Option<TlsSession>,
    /// The first TLS failure, as rustls words it.
    pub(crate) first_error: Option<String>,
}

/// What one TLS session negotiated.
#[derive(Debug, Clone)]
pub(crate) struct TlsSession {
    pub(crate) version: String,
    cipher_suite: String,
    key_exchange: String,
    pub(crate) alpn: Option<String>,
}

impl TlsReport {
    /// A connection's TLS handshake completed (once per connection).
    pub(crate) fn note(&mut self, conn: &ClientConnection) {
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

    pub(crate) fn add(&mut self, o: TlsReport) {
        self.full += o.full;
        self.resumed += o.resumed;
        self.session = self.session.take().or(o.session);
        self.first_error = self.first_error.take().or(o.first_error);
    }
}

/// The error kind a failed read counts as: rustls's errors (wrapped by [`Tls::read`]) are TLS
/// failures, the rest socket errors.
///
/// [`Tls::read`]: crate::tls::Tls::read
pub(crate) fn fail_of(e: &io::Error) -> Fail {
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        Fail::Tls
    } else {
        Fail::Io
    }
}

pub(crate) fn new_histogram() -> Histogram<u64> {
    // Nanoseconds, from 1 ns to 60 s, with 3 significant figures.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant histogram bounds")
}

/// The whole run's result.
pub(crate) struct Report {
    pub(crate) args: Args,
    pub(crate) window: Duration,
    /// Every thread's measurements, added up.
    pub(crate) measured: ThreadReport,
    pub(crate) client_cpu: Option<f64>,
    pub(crate) server_cpu: Option<f64>,
    pub(crate) rss_before_kib: Option<u64>,
    pub(crate) rss_after_kib: Option<u64>,
}

impl Report {
    fn rate(&self) -> f64 {
        self.measured.ops as f64 / self.window.as_secs_f64()
    }

    fn per_cpu(&self, cpu: Option<f64>) -> Option<f64> {
        cpu.filter(|&c| c > 0.0)
            .map(|c| self.measured.ops as f64 / c)
    }

    fn quantile_us(&self, q: f64) -> Option<f64> {
        (!self.measured.hist.is_empty())
            .then(|| self.measured.hist.value_at_quantile(q) as f64 / 1000.0)
    }

    /// Server memory per open connection, in bytes (idle mode with `--server-pid`).
    fn rss_per_conn(&self) -> Option<f64> {
        if self.args.mode != Mode::Idle {
            return None;
        }
        let (before, after) = self.rss_before_kib.zip(self.rss_after_kib)?;
        (self.measured.open_at_end > 0)
            .then(|| (after as f64 - before as f64) * 1024.0 / self.measured.open_at_end as f64)
    }

    fn to_json(&self) -> serde_json::Value {
        let a = &self.args;
        let e = &self.measured.errors;
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
            "opened": self.measured.opened,
            "open_at_end": self.measured.open_at_end,
            "open_time_s": self.measured.open_time.as_secs_f64(),
            "clean_closes": self.measured.clean_closes,
            "ops": self.measured.ops,
            "ops_per_s": self.rate(),
            "bytes": self.measured.bytes,
            "mb_per_s": self.measured.bytes as f64 / 1e6 / self.window.as_secs_f64(),
            "latency_us": {
                "count": self.measured.hist.len(),
                "p50": self.quantile_us(0.5),
                "p99": self.quantile_us(0.99),
                "p999": self.quantile_us(0.999),
                "max": self.quantile_us(1.0),
                "mean": (!self.measured.hist.is_empty()).then(|| self.measured.hist.mean() / 1000.0),
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
                let session = self.measured.tls.session.as_ref();
                json!({
                    "server_name": t.server_name,
                    "resumption_allowed": t.resume,
                    "full_handshakes": self.measured.tls.full,
                    "resumed_handshakes": self.measured.tls.resumed,
                    "version": session.map(|s| &s.version),
                    "cipher_suite": session.map(|s| &s.cipher_suite),
                    "key_exchange": session.map(|s| &s.key_exchange),
                    "alpn": session.and_then(|s| s.alpn.as_ref()),
                    "first_error": self.measured.tls.first_error,
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

    pub(crate) fn print(&self) {
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
            writeln!(s, "{} upgrades in all", self.measured.opened)
        } else {
            writeln!(
                s,
                "{} conns open after {:.2} s, {} open at the end, {} opened in all",
                a.conns.min(self.measured.opened as usize),
                self.measured.open_time.as_secs_f64(),
                self.measured.open_at_end,
                self.measured.opened,
            )
        };
        if a.mode != Mode::Idle {
            let _ = write!(
                s,
                "  {:<11} {} ({:.0}/s",
                format!("{}s", a.mode.op()),
                self.measured.ops,
                self.rate()
            );
            match a.mode {
                Mode::WsEcho => {
                    let _ = write!(
                        s,
                        ", {:.2} MB/s of payload each way",
                        self.measured.bytes as f64 / 1e6 / self.window.as_secs_f64()
                    );
                }
                Mode::Http => {
                    let _ = write!(
                        s,
                        ", {:.2} MB/s of body",
                        self.measured.bytes as f64 / 1e6 / self.window.as_secs_f64()
                    );
                }
                _ => {}
            }
            let _ = writeln!(s, ")");
        }
        if !self.measured.hist.is_empty() {
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
                self.measured.tls.full, self.measured.tls.resumed
            );
            if let Some(session) = &self.measured.tls.session {
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
            if let Some(error) = &self.measured.tls.first_error {
                let _ = writeln!(s, "  tls error   {error}");
            }
        }
        let e = &self.measured.errors;
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
