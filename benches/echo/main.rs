//! End-to-end benchmark: berth's `examples/echo.rs` against echo servers built on the peers
//! (`tokio-tungstenite`, `fastwebsockets`; `hyper` for HTTP), all driven by the same load
//! generator (`examples/load/`) in one run.
//!
//! ```text
//! cargo bench --bench echo                      # every scenario, 3 rounds of 5 s
//! cargo bench --bench echo -- --rounds 5 --duration 10 --only echo-16b
//! cargo bench --bench echo -- --out benches/echo-latest.md
//! ```
//!
//! On a machine with two or more cores, each server runs pinned to core 1 with one worker
//! thread and the load generator to core 0 (`taskset`). Rounds alternate the servers
//! (A B C A B C ...), each round on a freshly started server. Every figure is the median over
//! the rounds, reported both raw (operations per second of wall time) and per server
//! CPU-second (read from `/proc/PID/stat`): on two cores the load generator can saturate its
//! core before a fast server saturates its own, and then only the per-CPU figure ranks the
//! servers. Ratios are berth / peer (above 1 is berth ahead; for memory, below 1 is). The
//! "client cost" column is the load generator's own CPU time per operation.
//!
//! The `tls-*` scenarios run over TLS: the bench makes a self-signed certificate for
//! `localhost` once per run (`examples/gen_cert.rs`, into a directory under
//! `std::env::temp_dir()`, removed at the end), starts each server with `--tls-cert` and
//! `--tls-key`, and points the load generator at `wss://localhost:PORT/` with `--ca`. Every
//! TLS handshake is a full one (the load generator does not resume sessions). A server that
//! exits at start because it rejects the TLS flags (a build without TLS support) is skipped
//! with a message, not counted as a failure.
//!
//! ```text
//! cargo bench --bench echo -- --only tls        # the TLS scenarios (tls-echo-16b, tls-handshakes)
//! ```
//!
//! A row of the table is one whole round: the round whose primary figure (the rate, or memory
//! per connection) is the median of the server's rounds, with that round's CPU times and client
//! cost beside it (`sample.rs`, `median_round`), never figures from different rounds.
//!
//! A round counts as a sample only if the load generator exited with success, reported zero
//! errors and produced the figure (`sample.rs`, `sample_from_report`). A round that fails
//! (errors reported, a server that would not start, a load generator that failed) is printed
//! as it happens, left out of the medians (a row from fewer rounds says so, e.g. `berth (2 of 3
//! rounds)`), and the run goes on, so that a long run still reports what it measured; at the
//! end every failed round is listed again with its reason and the bench exits with failure.
//!
//! `--test` (what `cargo bench -- --test` passes to every bench) is a self-check, not a
//! measurement: every scenario against every server once, with a few connections and a short
//! window (each scenario's `check` load, message sizes unchanged, no warm-up), on servers built
//! with the dev profile, which `cargo test` has already built. It fails as a full run does if
//! any server did not answer, or answered with an error; it prints no table.
//!
//! ```text
//! cargo bench --bench echo -- --test            # the self-check: 23 short runs, about 10 s
//! ```
//!
//! `--baseline PATH` compares two builds of berth: the echo binary at PATH (`examples/echo`
//! built from another commit, e.g. in a `git worktree`; see `benches/README.md`) runs as one more
//! server, `berth-baseline`, right after berth in every scenario berth runs in (WebSocket, HTTP,
//! TLS), with berth's arguments, in the same alternating rounds. Its row's ratio columns then read
//! berth / berth-baseline (above 1 is this build ahead; for memory, below 1 is), and a second
//! table repeats them per scenario with both builds' figures, its ratios to three places since a
//! regression budget such as 0.97 sits at the second. `--test` runs the baseline too, as built
//! (the self-check's dev profile applies only to this build's examples). `--servers A,B` keeps
//! only the named servers (a scenario left with none is skipped), e.g. to compare the two builds
//! without the peers:
//!
//! ```text
//! cargo bench --bench echo -- --baseline ../baseline/target/release/examples/echo \
//!     --servers berth,berth-baseline --rounds 5
//! ```
//!
//! Only loopback is used; every wait is bounded.

mod sample;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use sample::{median_round, sample_from_report, Metric, Sample};

/// One server under test.
#[derive(Clone, Copy)]
struct Server {
    name: &'static str,
    example: &'static str,
    /// Arguments after the port.
    args: &'static [&'static str],
    /// A binary from outside this build (`--baseline`), run instead of `example`.
    path: Option<&'static Path>,
}

impl Server {
    /// The program to start: this build's example, or the outside binary.
    fn program(&self, bin: &Path) -> PathBuf {
        self.path
            .map_or_else(|| bin.join(self.example), Path::to_path_buf)
    }
}

const BERTH: Server = Server {
    name: "berth",
    example: "echo",
    args: &["--workers", "1"],
    path: None,
};
const TOKIO_TUNGSTENITE: Server = Server {
    name: "tokio-tungstenite",
    example: "peer_tokio_tungstenite",
    args: &["1"],
    path: None,
};
const FASTWEBSOCKETS: Server = Server {
    name: "fastwebsockets",
    example: "peer_fastwebsockets",
    args: &["1"],
    path: None,
};
const HYPER: Server = Server {
    name: "hyper",
    example: "peer_hyper",
    args: &["1"],
    path: None,
};

/// One measurement: a load-generator invocation against a set of servers.
struct Scenario {
    name: &'static str,
    what: &'static str,
    servers: &'static [Server],
    /// Load-generator arguments (the target, `--json` and `--server-pid` are added).
    load: &'static [&'static str],
    /// The same load, scaled down for the `--test` self-check: a few connections, the same
    /// message sizes.
    check: &'static [&'static str],
    /// The figure compared: `ops_per_s`, or `server_rss_bytes_per_conn` for memory.
    metric: Metric,
    scheme: &'static str,
    /// Over TLS: the servers get `--tls-cert` and `--tls-key`, the load generator `--ca`.
    tls: bool,
}

/// The name `--baseline`'s server runs under.
const BASELINE: &str = "berth-baseline";

const WS_SERVERS: &[Server] = &[BERTH, TOKIO_TUNGSTENITE, FASTWEBSOCKETS];
const HTTP_SERVERS: &[Server] = &[BERTH, HYPER];
/// The servers that serve wss://.
const TLS_SERVERS: &[Server] = &[BERTH, TOKIO_TUNGSTENITE];

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "echo-16b",
        what: "echo msgs/s, 100 conns x 16 B, 1 in flight",
        servers: WS_SERVERS,
        load: &[
            "ws-echo",
            "--conns",
            "100",
            "--size",
            "16",
            "--in-flight",
            "1",
        ],
        check: &[
            "ws-echo",
            "--conns",
            "2",
            "--size",
            "16",
            "--in-flight",
            "1",
        ],
        metric: Metric::Rate,
        scheme: "ws",
        tls: false,
    },
    Scenario {
        name: "echo-16b-x16",
        what: "echo msgs/s, 100 conns x 16 B, 16 in flight",
        servers: WS_SERVERS,
        load: &[
            "ws-echo",
            "--conns",
            "100",
            "--size",
            "16",
            "--in-flight",
            "16",
        ],
        check: &[
            "ws-echo",
            "--conns",
            "2",
            "--size",
            "16",
            "--in-flight",
            "16",
        ],
        metric: Metric::Rate,
        scheme: "ws",
        tls: false,
    },
    Scenario {
        name: "echo-64k",
        what: "echo msgs/s, 10 conns x 64 KiB, 1 in flight",
        servers: WS_SERVERS,
        load: &[
            "ws-echo",
            "--conns",
            "10",
            "--size",
            "64k",
            "--in-flight",
            "1",
        ],
        check: &[
            "ws-echo",
            "--conns",
            "2",
            "--size",
            "64k",
            "--in-flight",
            "1",
        ],
        metric: Metric::Rate,
        scheme: "ws",
        tls: false,
    },
    Scenario {
        name: "handshakes",
        what: "handshakes/s (connect, upgrade, close), 50 concurrent",
        servers: WS_SERVERS,
        load: &["handshake", "--conns", "50"],
        check: &["handshake", "--conns", "2"],
        metric: Metric::Rate,
        scheme: "ws",
        tls: false,
    },
    Scenario {
        name: "idle-10k",
        what: "server RSS per idle WebSocket, 10,000 conns (bytes)",
        servers: WS_SERVERS,
        load: &["idle", "--idle", "10000", "--duration", "2"],
        check: &["idle", "--idle", "20", "--duration", "0.2"],
        metric: Metric::Memory,
        scheme: "ws",
        tls: false,
    },
    Scenario {
        name: "http",
        what: "HTTP plaintext req/s, 100 conns, no pipelining",
        servers: HTTP_SERVERS,
        load: &["http", "--conns", "100", "--pipeline", "1"],
        check: &["http", "--conns", "2", "--pipeline", "1"],
        metric: Metric::Rate,
        scheme: "http",
        tls: false,
    },
    Scenario {
        name: "http-pipelined",
        what: "HTTP plaintext req/s, 100 conns, 16 pipelined",
        servers: HTTP_SERVERS,
        load: &["http", "--conns", "100", "--pipeline", "16"],
        check: &["http", "--conns", "2", "--pipeline", "16"],
        metric: Metric::Rate,
        scheme: "http",
        tls: false,
    },
    Scenario {
        name: "tls-echo-16b",
        what: "TLS echo msgs/s, 100 conns x 16 B, 1 in flight",
        servers: TLS_SERVERS,
        load: &[
            "ws-echo",
            "--conns",
            "100",
            "--size",
            "16",
            "--in-flight",
            "1",
        ],
        check: &[
            "ws-echo",
            "--conns",
            "2",
            "--size",
            "16",
            "--in-flight",
            "1",
        ],
        metric: Metric::Rate,
        scheme: "wss",
        tls: true,
    },
    Scenario {
        name: "tls-handshakes",
        what: "TLS + WebSocket handshakes/s (connect, TLS, upgrade, close), 50 concurrent",
        servers: TLS_SERVERS,
        load: &["handshake", "--conns", "50"],
        check: &["handshake", "--conns", "2"],
        metric: Metric::Rate,
        scheme: "wss",
        tls: true,
    },
];

/// The certificate and key the TLS scenarios use, made once per run.
struct Certs {
    dir: PathBuf,
    cert: String,
    key: String,
}

impl Certs {
    /// Run `examples/gen_cert.rs` into a fresh directory under the system's temporary one.
    fn make(bin: &Path) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("berth-echo-bench-{}", std::process::id()));
        let status = Command::new(bin.join("gen_cert"))
            .arg(&dir)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("start gen_cert: {e}"))?;
        if !status.success() {
            return Err(format!("gen_cert failed: {status}"));
        }
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        Ok(Certs {
            cert: path("cert.pem"),
            key: path("key.pem"),
            dir,
        })
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Why a round has no sample.
enum NoSample {
    /// Something went wrong: reported as a failure.
    Failed(String),
    /// The server does not take the TLS flags: skipped, with the reason.
    NoTls(String),
}

struct Options {
    rounds: usize,
    duration: f64,
    only: Vec<String>,
    out: Option<PathBuf>,
    /// `--test`: the self-check (one short round of each scenario's `check` load, no table).
    test: bool,
    /// `--baseline PATH`: another build's echo binary, run as `berth-baseline`.
    baseline: Option<PathBuf>,
    /// `--servers A,B`: only these servers (empty: all).
    servers: Vec<String>,
}

fn options() -> Options {
    let mut o = Options {
        rounds: 3,
        duration: 5.0,
        only: Vec::new(),
        out: None,
        test: false,
        baseline: None,
        servers: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => o.rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or(3),
            "--duration" => o.duration = args.next().and_then(|v| v.parse().ok()).unwrap_or(5.0),
            "--only" => o.only.extend(args.next()),
            "--out" => o.out = args.next().map(PathBuf::from),
            "--test" => o.test = true,
            "--baseline" => o.baseline = args.next().map(PathBuf::from),
            "--servers" => o.servers.extend(
                args.next()
                    .iter()
                    .flat_map(|v| v.split(','))
                    .filter(|name| !name.is_empty())
                    .map(str::to_string),
            ),
            // `cargo bench` passes `--bench`; a name filter is taken as --only.
            "--bench" => {}
            other if !other.starts_with('-') => o.only.push(other.to_string()),
            _ => {}
        }
    }
    if o.test {
        // Long enough for every connection to open and trade a few messages.
        o.rounds = 1;
        o.duration = 0.3;
    }
    o
}

fn main() -> ExitCode {
    let opts = options();
    // The other build's echo, checked before the build and the run rather than failing every
    // round of it. Leaked: it lives as long as the run, and `Server` stays `Copy`.
    let baseline = match &opts.baseline {
        Some(path) if !path.is_file() => {
            eprintln!(
                "echo bench: --baseline {}: no such file (build it with `cargo build --release \
                 --example echo` in a worktree of the other commit)",
                path.display()
            );
            return ExitCode::FAILURE;
        }
        Some(path) => {
            eprintln!("{BASELINE}: {}", path.display());
            Some(Server {
                name: BASELINE,
                path: Some(Box::leak(path.clone().into_boxed_path())),
                ..BERTH
            })
        }
        None => None,
    };
    let known: Vec<&str> = [BERTH, TOKIO_TUNGSTENITE, FASTWEBSOCKETS, HYPER]
        .iter()
        .chain(&baseline)
        .map(|s| s.name)
        .collect();
    if let Some(unknown) = opts.servers.iter().find(|n| !known.contains(&n.as_str())) {
        eprintln!("echo bench: --servers: no server {unknown:?} (there are {known:?})");
        return ExitCode::FAILURE;
    }
    // A scenario's servers in round order: the baseline right after berth, then `--servers`.
    let servers_of = |scenario: &Scenario| -> Vec<Server> {
        scenario
            .servers
            .iter()
            .flat_map(|s| {
                let after = baseline.filter(|_| s.name == BERTH.name);
                std::iter::once(*s).chain(after)
            })
            .filter(|s| opts.servers.is_empty() || opts.servers.iter().any(|n| n == s.name))
            .collect()
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // The self-check needs servers that answer correctly, not fast ones: the dev profile,
    // which `cargo test` builds anyway, instead of a second optimised build of every crate.
    let (profile, profile_dir) = if opts.test {
        ("dev", "debug")
    } else {
        ("release", "release")
    };
    eprintln!("building the examples ({profile} profile)...");
    let mut build = Command::new(&cargo);
    build
        .current_dir(root)
        .args(["build", "--profile", profile]);
    // Cargo gives this process the package's variables (CARGO_MANIFEST_DIR, CARGO_PKG_*, ...).
    // Passed on to the inner cargo they reach build scripts that watch them (ring's does), which
    // would then rebuild, and again at the next plain `cargo build`.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&&*key)
        {
            build.env_remove(&*key);
        }
    }
    for example in ["echo", "load", "gen_cert"]
        .into_iter()
        .chain([TOKIO_TUNGSTENITE, FASTWEBSOCKETS, HYPER].map(|s| s.example))
    {
        build.args(["--example", example]);
    }
    let built = build.status().expect("run cargo");
    assert!(built.success(), "building the examples failed");
    // This bench runs from TARGET/release/deps, so TARGET is the target directory even when
    // CARGO_TARGET_DIR moves it.
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join(profile_dir).join("examples");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = cores >= 2 && Command::new("taskset").arg("-V").output().is_ok();
    let machine = machine_line(cores, pin);
    eprintln!("{machine}");

    let mut table = String::new();
    table.push_str(&format!(
        "{machine}\n{} rounds of {} s per server and scenario; each row is the server's median \
         round (by the first figure).\n\n",
        opts.rounds, opts.duration
    ));
    table.push_str(
        "| scenario | server | raw | per server CPU-s | server CPU | client CPU | client cost | berth / server (raw) | berth / server (per CPU) |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    // `--only NAME`: a whole scenario name picks that one (`echo-16b` is not also
    // `tls-echo-16b`); any other text picks every scenario whose name contains it (`tls`).
    let picks = |s: &Scenario, o: &str| {
        if SCENARIOS.iter().any(|t| t.name == o) {
            s.name == o
        } else {
            s.name.contains(o)
        }
    };
    let selected: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| opts.only.is_empty() || opts.only.iter().any(|o| picks(s, o)))
        .filter(|s| !servers_of(s).is_empty())
        .collect();
    if selected.is_empty() {
        eprintln!(
            "echo bench: no scenario matches {:?} with servers {:?}",
            opts.only, opts.servers
        );
        return ExitCode::FAILURE;
    }
    // One certificate for every TLS scenario of the run; its directory goes when `certs` drops.
    let certs = if selected.iter().any(|s| s.tls) {
        match Certs::make(&bin) {
            Ok(certs) => Some(certs),
            Err(e) => panic!("making the TLS certificate: {e}"),
        }
    } else {
        None
    };
    // Servers found not to take the TLS flags, with the reason: skipped for the rest of the run.
    let mut no_tls: Vec<(&'static str, String)> = Vec::new();
    // What each server's TLS sessions negotiated, as the load generator reported it.
    let mut tls_notes: Vec<String> = Vec::new();
    // Every round that failed, with its reason: they fail the run.
    let mut failures: Vec<String> = Vec::new();
    // Rounds that counted, for the self-check's summary.
    let mut passed = 0usize;
    // `--baseline`: berth / berth-baseline per scenario, the second table.
    let mut versus = String::new();
    let mut port = 19_100u16;
    for scenario in selected {
        eprintln!("== {}", scenario.what);
        let servers = servers_of(scenario);
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); servers.len()];
        for round in 0..opts.rounds {
            for (i, server) in servers.iter().enumerate() {
                let tls = if scenario.tls { certs.as_ref() } else { None };
                if tls.is_some() && no_tls.iter().any(|(name, _)| *name == server.name) {
                    continue;
                }
                port += 1;
                let load = if opts.test {
                    scenario.check
                } else {
                    scenario.load
                };
                let run = (load, opts.duration, opts.test, pin);
                match run_once(&bin, scenario, server, port, run, tls) {
                    Ok((sample, session)) => {
                        eprintln!(
                            "   round {} {:>18}: {:>12.0}  ({:.0} per server CPU-s)",
                            round + 1,
                            server.name,
                            sample.value,
                            sample.per_server_cpu
                        );
                        samples[i].push(sample);
                        passed += 1;
                        if let Some(session) = session {
                            let note = format!("{}: {session}", server.name);
                            if !tls_notes.contains(&note) {
                                tls_notes.push(note);
                            }
                        }
                    }
                    Err(NoSample::Failed(e)) => {
                        eprintln!("   round {} {:>18}: FAILED: {e}", round + 1, server.name);
                        failures.push(format!(
                            "{} / {} / round {}: {e}",
                            scenario.name,
                            server.name,
                            round + 1
                        ));
                    }
                    Err(NoSample::NoTls(why)) => {
                        eprintln!(
                            "   {:>26}: skipped for the TLS scenarios: {why}",
                            server.name
                        );
                        no_tls.push((server.name, why));
                    }
                }
            }
        }
        // Each server's median round, reported whole.
        let medians: Vec<Option<Sample>> = samples
            .iter()
            .map(|s| median_round(s).map(|i| s[i]))
            .collect();
        let median_of = |name: &str| {
            servers
                .iter()
                .position(|s| s.name == name)
                .and_then(|i| medians[i])
        };
        let berth = median_of(BERTH.name);
        if baseline.is_some() {
            versus.push_str(&versus_row(
                scenario,
                berth,
                median_of(BASELINE),
                servers.iter().any(|s| s.name == BASELINE),
            ));
        }
        for ((server, m), counted) in servers.iter().zip(&medians).zip(&samples) {
            if scenario.tls && no_tls.iter().any(|(name, _)| *name == server.name) {
                table.push_str(&format!(
                    "| {} | {} | skipped: no TLS flags | | | | | | |\n",
                    scenario.what, server.name
                ));
                continue;
            }
            let Some(m) = m else {
                table.push_str(&format!(
                    "| {} | {} | failed | | | | | | |\n",
                    scenario.what, server.name
                ));
                continue;
            };
            // A row from fewer rounds than asked for says so.
            let name = if counted.len() < opts.rounds {
                format!(
                    "{} ({} of {} rounds)",
                    server.name,
                    counted.len(),
                    opts.rounds
                )
            } else {
                server.name.to_string()
            };
            let (raw_ratio, cpu_ratio) = match (berth, scenario.metric) {
                (Some(_), _) if server.name == "berth" => (String::new(), String::new()),
                (Some(b), Metric::Rate) => (
                    format!("{:.2}x", b.value / m.value),
                    format!("{:.2}x", b.per_server_cpu / m.per_server_cpu),
                ),
                (Some(b), Metric::Memory) => (format!("{:.2}x", b.value / m.value), String::new()),
                (None, _) => (String::new(), String::new()),
            };
            let (per_cpu, client_cost) = match scenario.metric {
                Metric::Rate if m.per_client_cpu > 0.0 => (
                    format!("{:.0}", m.per_server_cpu),
                    format!("{:.2} µs", 1e6 / m.per_client_cpu),
                ),
                _ => (String::new(), String::new()),
            };
            table.push_str(&format!(
                "| {} | {} | {:.0} | {} | {:.2} s | {:.2} s | {} | {} | {} |\n",
                scenario.what,
                name,
                m.value,
                per_cpu,
                m.server_cpu,
                m.client_cpu,
                client_cost,
                raw_ratio,
                cpu_ratio
            ));
        }
    }
    if !versus.is_empty() {
        table.push_str(&format!(
            "\nThis build against `--baseline` ({BASELINE}), from the rows above (above 1 is this \
             build ahead; for memory, below 1 is):\n\n\
             | scenario | berth | {BASELINE} | berth / {BASELINE} (raw) | berth per server CPU-s | \
             {BASELINE} per server CPU-s | berth / {BASELINE} (per CPU) |\n\
             |---|---:|---:|---:|---:|---:|---:|\n{versus}"
        ));
    }
    if !tls_notes.is_empty() {
        table
            .push_str("\nTLS sessions (full handshakes; self-signed ECDSA P-256 certificate):\n\n");
        for note in &tls_notes {
            table.push_str(&format!("- {note}\n"));
        }
    }
    for (name, why) in &no_tls {
        table.push_str(&format!(
            "\n{name} skipped the TLS scenarios: it rejected the TLS flags ({why}).\n"
        ));
    }
    if !failures.is_empty() {
        table.push_str(&format!(
            "\n{} failed and left out of the medians:\n\n",
            rounds(failures.len())
        ));
        for failure in &failures {
            table.push_str(&format!("- {failure}\n"));
        }
    }
    if opts.test {
        // A 0.3 s window on debug builds measures nothing worth a table.
        eprintln!(
            "\necho bench self-check: {passed} runs answered with no errors, {} failed",
            failures.len()
        );
    } else {
        println!("\n{table}");
        if let Some(out) = opts.out {
            std::fs::write(&out, &table).expect("write the table");
            eprintln!("table written to {}", out.display());
        }
    }
    if failures.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "\necho bench FAILED: {} did not give a clean sample:",
        rounds(failures.len())
    );
    for failure in &failures {
        eprintln!("  {failure}");
    }
    ExitCode::FAILURE
}

/// Start `server` on `port`, run `load` against it for `duration` seconds (`test`: with no
/// warm-up), stop it; the load's JSON as a sample, and for TLS what the sessions negotiated.
/// `tls` runs the scenario over TLS with those certificates.
fn run_once(
    bin: &Path,
    scenario: &Scenario,
    server: &Server,
    port: u16,
    (load, duration, test, pin): (&[&str], f64, bool, bool),
    tls: Option<&Certs>,
) -> Result<(Sample, Option<String>), NoSample> {
    let failed = NoSample::Failed;
    let port_arg = port.to_string();
    let mut server_args: Vec<&str> = std::iter::once(port_arg.as_str())
        .chain(server.args.iter().copied())
        .collect();
    // Over TLS the server's stderr goes to a file, so that a server that exits at start can be
    // told apart: one that rejects the TLS flags is skipped, any other exit is a failure.
    let mut stderr_log = None;
    if let Some(certs) = tls {
        server_args.extend(["--tls-cert", &certs.cert, "--tls-key", &certs.key]);
        stderr_log = Some(certs.dir.join(format!("{}-{port}.stderr", server.name)));
    }
    let stderr = match &stderr_log {
        Some(path) => File::create(path)
            .map(Stdio::from)
            .map_err(|e| failed(format!("{}: {e}", path.display())))?,
        None => Stdio::inherit(),
    };
    let mut child = spawn(
        pin.then_some("1"),
        &server.program(bin),
        &server_args,
        (Stdio::null(), stderr),
    )
    .map_err(|e| failed(format!("start {}: {e}", server.example)))?;
    let result = (|| {
        if let Err(e) = wait_listening(port, &mut child) {
            let said = stderr_log
                .as_ref()
                .and_then(|path| std::fs::read_to_string(path).ok())
                .unwrap_or_default();
            let said = said.trim();
            return Err(if rejects_tls_flags(said) {
                NoSample::NoTls(format!("it exited at start saying: {said}"))
            } else if said.is_empty() {
                failed(e)
            } else {
                failed(format!("{e}; it said: {said}"))
            });
        }
        // TLS verifies the name, so the URL names the certificate's `localhost`.
        let host = if tls.is_some() {
            "localhost"
        } else {
            "127.0.0.1"
        };
        let url = format!("{}://{host}:{port}/", scenario.scheme);
        let pid = child.id().to_string();
        let duration = duration.to_string();
        let mut args: Vec<&str> = load.to_vec();
        args.extend(["--url", &url, "--json", "--quiet", "--server-pid", &pid]);
        if !load.contains(&"--duration") {
            args.extend(["--duration", &duration]);
        }
        if test {
            args.extend(["--warmup", "0"]);
        }
        if let Some(certs) = tls {
            args.extend(["--ca", &certs.cert]);
        }
        let load = spawn(
            pin.then_some("0"),
            &bin.join("load"),
            &args,
            (Stdio::piped(), Stdio::inherit()),
        )
        .map_err(|e| failed(format!("start the load generator: {e}")))?;
        let output = load
            .wait_with_output()
            .map_err(|e| failed(format!("load generator: {e}")))?;
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|e| {
            failed(format!(
                "load generator output is not JSON ({e}; it exited with {})",
                output.status
            ))
        })?;
        let sample =
            sample_from_report(&report, output.status.code(), scenario.metric).map_err(failed)?;
        let session = report["tls"]["version"].as_str().map(|version| {
            let field = |key: &str| report["tls"][key].as_str().unwrap_or("?").to_string();
            format!(
                "{version}, {}, {}, ALPN {}",
                field("cipher_suite"),
                field("key_exchange"),
                field("alpn")
            )
        });
        Ok((sample, session))
    })();
    stop(&mut child);
    // What the server said during the run, where the plain scenarios would have shown it.
    if let Some(said) = stderr_log.and_then(|path| std::fs::read_to_string(path).ok()) {
        if result.is_ok() && !said.trim().is_empty() {
            eprint!("{said}");
        }
    }
    result
}

/// The second table's row for `scenario`: berth's and berth-baseline's median rounds side by
/// side, with berth / berth-baseline raw and per server CPU-second (none per CPU for memory).
/// Empty when `--servers` left the baseline out of the scenario.
fn versus_row(
    scenario: &Scenario,
    berth: Option<Sample>,
    base: Option<Sample>,
    has_base: bool,
) -> String {
    if !has_base {
        return String::new();
    }
    let figure = |m: Option<Sample>| {
        m.map_or("failed or not run".to_string(), |m| {
            format!("{:.0}", m.value)
        })
    };
    let per_cpu = |m: Option<Sample>| match (scenario.metric, m) {
        (Metric::Rate, Some(m)) => format!("{:.0}", m.per_server_cpu),
        _ => String::new(),
    };
    let (raw, cpu) = match (berth, base, scenario.metric) {
        (Some(b), Some(o), Metric::Rate) => (
            format!("{:.3}x", b.value / o.value),
            format!("{:.3}x", b.per_server_cpu / o.per_server_cpu),
        ),
        (Some(b), Some(o), Metric::Memory) => (format!("{:.3}x", b.value / o.value), String::new()),
        _ => (String::new(), String::new()),
    };
    format!(
        "| {} | {} | {} | {raw} | {} | {} | {cpu} |\n",
        scenario.what,
        figure(berth),
        figure(base),
        per_cpu(berth),
        per_cpu(base)
    )
}

/// Did a server that exited before listening reject the TLS flags themselves (a build that
/// predates TLS support), rather than fail with them (a bad certificate, a busy port)? Judged
/// from its error output: it names a `--tls-` flag as an argument it does not know.
fn rejects_tls_flags(said: &str) -> bool {
    let said = said.to_ascii_lowercase();
    said.contains("--tls-")
        && [
            "bad argument",
            "unknown argument",
            "unexpected argument",
            "unrecognized",
            "unknown option",
            "invalid option",
        ]
        .iter()
        .any(|w| said.contains(w))
}

/// Run `program` with a raised descriptor limit (the idle scenario holds 10,000 sockets on
/// each side), pinned to `core` when given.
fn spawn(
    core: Option<&str>,
    program: &Path,
    args: &[&str],
    (stdout, stderr): (Stdio, Stdio),
) -> std::io::Result<Child> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"ulimit -n 19000 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@""#)
        .arg("sh");
    if let Some(core) = core {
        cmd.args(["taskset", "-c", core]);
    }
    cmd.arg(program)
        .args(args)
        .env("BERTH_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
}

fn wait_listening(port: u16, child: &mut Child) -> Result<(), String> {
    for _ in 0..500 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the server exited: {status}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err("the server did not listen within 10 s".into())
}

/// SIGTERM, then SIGKILL if it lingers.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// "1 round", "2 rounds".
fn rounds(n: usize) -> String {
    format!("{n} round{}", if n == 1 { "" } else { "s" })
}

fn machine_line(cores: usize, pin: bool) -> String {
    let cpu = std::fs::File::open("/proc/cpuinfo")
        .ok()
        .and_then(|f| {
            BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .find(|l| l.starts_with("model name"))
        })
        .and_then(|l| l.split(':').nth(1).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!(
        "Machine: {cpu}, {cores} cores, Linux {kernel}; {}.",
        if pin {
            "server pinned to core 1 (one worker thread), load generator to core 0"
        } else {
            "no pinning (fewer than two cores or no taskset)"
        }
    )
}
