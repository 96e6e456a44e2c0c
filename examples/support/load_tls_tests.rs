//! The load generator's TLS client against an in-process TLS server on 127.0.0.1:0: every mode
//! runs for a fraction of a second, counts no error, and ends its connections with
//! close_notify. The server is blocking rustls (a thread per connection) with tungstenite for
//! the WebSocket modes, and a minimal keep-alive responder for `http`; its certificate comes
//! from rcgen at test time.

use super::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::thread::JoinHandle;
use tokio_rustls::rustls::{self, pki_types, ServerConfig, ServerConnection, StreamOwned};

/// How long any test socket waits for the peer before giving up.
const PATIENCE: Duration = Duration::from_secs(10);

/// What the test server does with each connection.
#[derive(Clone, Copy)]
enum Serve {
    /// The WebSocket upgrade, then echo.
    WsEcho,
    /// `Hello, World!` for each request head.
    Http,
}

struct TestServer {
    port: u16,
    /// A directory holding `cert.pem`, to pass as `--ca`.
    dir: PathBuf,
    /// Connections that ended with the client's close_notify.
    clean_closes: Arc<AtomicU64>,
    /// Connections that ended any other way after the TLS handshake.
    unclean_closes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl TestServer {
    fn start(serve: Serve, name: &str) -> Self {
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let dir = std::env::temp_dir().join(format!("berth-load-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), pair.cert.pem()).unwrap();
        let key = pki_types::PrivateKeyDer::Pkcs8(pair.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![pair.cert.der().clone()], key)
            .unwrap();
        let config = Arc::new(config);

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (clean, unclean) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (clean, unclean, stop) = (clean.clone(), unclean.clone(), stop.clone());
            std::thread::spawn(move || {
                let live = Arc::new(AtomicUsize::new(0));
                // Bounded: the test sets `stop`, and no test runs for a minute.
                let give_up = now() + Duration::from_secs(60);
                while !stop.load(Ordering::Acquire) && now() < give_up {
                    let Ok((tcp, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    };
                    let (config, clean, unclean) = (config.clone(), clean.clone(), unclean.clone());
                    let live = live.clone();
                    live.fetch_add(1, Ordering::AcqRel);
                    std::thread::spawn(move || {
                        match connection(tcp, config, serve) {
                            Some(true) => clean.fetch_add(1, Ordering::Relaxed),
                            Some(false) => unclean.fetch_add(1, Ordering::Relaxed),
                            None => 0,
                        };
                        live.fetch_sub(1, Ordering::AcqRel);
                    });
                }
                // Let the connection threads finish their counts (each is bounded by PATIENCE).
                let by = now() + PATIENCE;
                while live.load(Ordering::Acquire) > 0 && now() < by {
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        TestServer {
            port,
            dir,
            clean_closes: clean,
            unclean_closes: unclean,
            stop,
            accept: Some(accept),
        }
    }

    fn run(&self, mode_and_options: &str) -> Report {
        let line = format!(
            "{mode_and_options} --ca {} --duration 0.3 --warmup 0 --quiet --no-spread",
            self.dir.join("cert.pem").display()
        );
        let line = line.replace("PORT", &self.port.to_string());
        run(args(&line).unwrap()).unwrap()
    }

    /// Stop accepting, wait for the connections, and return (clean, unclean) closes.
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Release);
        if let Some(accept) = self.accept.take() {
            accept.join().unwrap();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        (
            self.clean_closes.load(Ordering::Relaxed),
            self.unclean_closes.load(Ordering::Relaxed),
        )
    }
}

/// Serve one connection; after the TLS handshake, whether it ended with close_notify.
fn connection(tcp: std::net::TcpStream, config: Arc<ServerConfig>, serve: Serve) -> Option<bool> {
    tcp.set_nonblocking(false).ok()?;
    tcp.set_read_timeout(Some(PATIENCE)).ok()?;
    tcp.set_nodelay(true).ok()?;
    let mut tls = StreamOwned::new(ServerConnection::new(config).ok()?, tcp);
    // Finish the handshake first, so that a connection the client drops before it (the end of
    // a run) is not counted either way.
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).ok()?;
    }
    match serve {
        Serve::WsEcho => {
            let mut ws = tungstenite::accept(tls).ok()?;
            loop {
                match ws.read() {
                    Ok(msg) if msg.is_text() || msg.is_binary() => {
                        if ws.send(msg).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            Some(read_to_end_clean(ws.get_mut()))
        }
        Serve::Http => {
            let mut buf = vec![0; 16 * 1024];
            let mut len = 0;
            loop {
                match tls.read(&mut buf[len..]) {
                    Ok(0) => return Some(true),
                    Ok(n) => len += n,
                    Err(_) => return Some(false),
                }
                while let Some(end) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
                    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";
                    if tls.write_all(answer).is_err() {
                        return Some(false);
                    }
                    buf.copy_within(end + 4..len, 0);
                    len -= end + 4;
                }
                if len == buf.len() {
                    return Some(false);
                }
            }
        }
    }
}

/// Read what is left: `true` if the stream ends with close_notify, `false` for a TCP close
/// without it, an error or a timeout.
fn read_to_end_clean(tls: &mut StreamOwned<ServerConnection, std::net::TcpStream>) -> bool {
    let mut sink = [0; 256];
    for _ in 0..64 {
        match tls.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

fn args(line: &str) -> Result<Args, String> {
    parse_args(line.split_whitespace().map(String::from)).map(|a| a.expect("not --help"))
}

fn assert_clean(report: &Report) {
    assert_eq!(
        report.measured.errors.total(),
        0,
        "errors: {:?}",
        report.measured.errors
    );
    assert!(
        report.measured.ops > 0,
        "no {} completed",
        report.args.mode.op()
    );
    assert!(report.measured.tls.full > 0 && report.measured.tls.resumed == 0);
    let session = report.measured.tls.session.as_ref().expect("a TLS session");
    assert_eq!(session.version, "TLSv1_3");
    assert_eq!(report.measured.tls.first_error, None);
}

#[test]
fn echoes_over_tls_and_closes_with_close_notify() {
    let server = TestServer::start(Serve::WsEcho, "echo");
    let report = server.run("ws-echo --url wss://localhost:PORT/ --conns 4 --in-flight 4");
    assert_clean(&report);
    assert_eq!(report.measured.tls.full, 4);
    assert_eq!(report.measured.clean_closes, 4);
    // 64 KiB messages: several TLS records each, and more than rustls's default buffer.
    let big = server.run("ws-echo --url wss://localhost:PORT/ --conns 2 --size 64k --text");
    assert_clean(&big);
    assert_eq!(server.finish(), (6, 0));
}

#[test]
fn handshake_and_idle_modes_over_tls() {
    let server = TestServer::start(Serve::WsEcho, "handshake");
    let report = server.run("handshake --url wss://localhost:PORT/ --conns 4");
    assert_clean(&report);
    // Every loop did a full TLS handshake; those cut off by the end of the run did not finish.
    assert!(report.measured.tls.full >= report.measured.ops);
    let idle = server.run("idle --url wss://localhost:PORT/ --idle 8");
    assert_eq!(
        idle.measured.errors.total(),
        0,
        "errors: {:?}",
        idle.measured.errors
    );
    assert_eq!(
        (idle.measured.open_at_end, idle.measured.clean_closes),
        (8, 8)
    );
    let (clean, unclean) = server.finish();
    assert_eq!(unclean, 0);
    assert!(clean >= report.measured.ops + 8, "{clean} clean closes");
}

#[test]
fn https_requests_and_close_notify() {
    let server = TestServer::start(Serve::Http, "http");
    let report = server.run("http --url https://localhost:PORT/ --conns 3 --pipeline 4");
    assert_clean(&report);
    assert_eq!(report.measured.tls.session.as_ref().unwrap().alpn, None);
    assert_eq!(server.finish(), (3, 0));
}

#[test]
fn a_certificate_not_trusted_is_a_tls_error() {
    let server = TestServer::start(Serve::WsEcho, "untrusted");
    let other = TestServer::start(Serve::WsEcho, "other");
    // The other server's certificate: the same names, a different key.
    let line = format!(
        "ws-echo --url wss://localhost:{}/ --ca {} --conns 2 --duration 0.2 --warmup 0 --quiet \
         --connect-timeout 2",
        server.port,
        other.dir.join("cert.pem").display()
    );
    let report = run(args(&line).unwrap()).unwrap();
    assert_eq!(report.measured.errors.tls, 2);
    assert_eq!(report.measured.errors.total(), 2);
    let error = report.measured.tls.first_error.unwrap();
    assert!(error.contains("invalid peer certificate"), "{error}");
    server.finish();
    other.finish();
}

#[test]
fn parses_tls_urls() {
    let a = args("handshake --url wss://localhost:9001/chat --ca c.pem").unwrap();
    let tls = a.tls.unwrap();
    assert_eq!(
        (tls.server_name.as_str(), tls.resume, a.host.as_str()),
        ("localhost", false, "localhost:9001")
    );
    let a = args("http --url https://127.0.0.1:8443/ --ca c.pem --tls-resume").unwrap();
    let tls = a.tls.unwrap();
    assert_eq!((tls.server_name.as_str(), tls.resume), ("127.0.0.1", true));
    assert!(args("ws-echo --url ws://127.0.0.1:9001/")
        .unwrap()
        .tls
        .is_none());
    // TLS needs a certificate to trust, and only TLS takes one.
    assert!(args("ws-echo --url wss://localhost:9001/").is_err());
    assert!(args("ws-echo --url ws://localhost:9001/ --ca c.pem").is_err());
    assert!(args("ws-echo --addr 127.0.0.1:9001 --tls-resume").is_err());
    // The loopback gate holds for TLS URLs too.
    assert!(args("ws-echo --url wss://10.0.0.1:443/ --ca c.pem").is_err());
    assert!(args("ws-echo --url wss://example.com:443/ --ca c.pem").is_err());
}
