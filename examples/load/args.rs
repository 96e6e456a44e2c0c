//! The command line: the modes, the options and their defaults, and the one gate that keeps
//! load on loopback ([`parse_host_port`]).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use berth::ws::MessageKind;

pub(crate) const HELP: &str = "\
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    WsEcho,
    Handshake,
    Idle,
    Http,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::WsEcho => "ws-echo",
            Mode::Handshake => "handshake",
            Mode::Idle => "idle",
            Mode::Http => "http",
        }
    }

    /// What one counted operation is.
    pub(crate) fn op(self) -> &'static str {
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
pub(crate) struct TlsArgs {
    pub(crate) ca: PathBuf,
    /// The URL's host: a DNS name, sent as SNI and checked against the certificate, or an IP
    /// address, checked against the certificate's IP addresses (no SNI).
    pub(crate) server_name: String,
    pub(crate) resume: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Args {
    pub(crate) mode: Mode,
    pub(crate) target: SocketAddrV4,
    /// The `Host` header: the target as written.
    pub(crate) host: String,
    pub(crate) path: String,
    /// TLS (wss://, https://): the certificates to trust and the name to verify and send as
    /// SNI (the URL's host without the port).
    pub(crate) tls: Option<TlsArgs>,
    pub(crate) threads: usize,
    /// Connections (idle mode: the `--idle` count).
    pub(crate) conns: usize,
    pub(crate) size: usize,
    pub(crate) in_flight: usize,
    pub(crate) pipeline: usize,
    pub(crate) kind: MessageKind,
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) spread: bool,
    pub(crate) server_pid: Option<u32>,
    pub(crate) json: bool,
    pub(crate) quiet: bool,
}

/// `Ok(None)` asks for the help text.
pub(crate) fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
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
}
