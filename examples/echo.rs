//! A minimal WebSocket echo server: the conformance target for the Autobahn TestSuite and the
//! berth side of the end-to-end benchmarks (where it also answers plain HTTP requests with
//! `Hello, World!`).
//!
//! Run: `cargo run --release --example echo -- 9001` (the port; default 9001), then point a
//! client at `ws://127.0.0.1:9001/` (any path). It binds to loopback only; `--workers N` sets
//! the worker threads (default one per core). SIGTERM or SIGINT drains and exits.
//!
//! Its limits admit what the Autobahn cases send: messages up to 16 MiB, in as many as 65,536
//! fragments of 64 bytes.
//!
//! With `--tls-cert CERT.pem --tls-key KEY.pem` it serves `wss://` (and `https://`) on the
//! port instead (`cargo run --example gen_cert -- DIR` makes a self-signed pair for
//! `localhost`).

#[path = "support/stderr_log.rs"]
mod stderr_log;

use berth::http::Request;
use berth::server::{CertSet, Config, Handler, Message, Responder, Server, TlsConfig, WebSocket};

struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_request(&self, _: &mut (), req: &Request<'_, '_>, res: &mut Responder<'_>) {
        if req.upgrade.is_some() {
            res.websocket(req);
        } else {
            // The TechEmpower plaintext answer, as the HTTP peer in the benchmarks gives it.
            let _ = res.send(200, &[("Content-Type", b"text/plain")], b"Hello, World!");
        }
    }

    fn on_message(&self, _: &mut (), ws: &mut WebSocket<'_>, msg: Message<'_>) {
        // Sending fails only when the connection is closing or over its buffer bound; the
        // message is dropped then, as the connection is going away.
        let _ = ws.send(msg);
    }
}

fn main() -> std::io::Result<()> {
    stderr_log::init();
    let mut port: u16 = 9001;
    let mut config = Config::default();
    let (mut cert, mut key) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--workers" => {
                config.workers = args.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            }
            "--tls-cert" => cert = args.next(),
            "--tls-key" => key = args.next(),
            other => {
                port = other.parse().map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!(
                            "usage: echo [PORT] [--workers N] [--tls-cert PEM --tls-key PEM]; \
                             bad argument {other:?}"
                        ),
                    )
                })?;
            }
        }
    }
    config.limits.max_message = 16 << 20;
    config.limits.max_frame_payload = 16 << 20;
    config.limits.max_fragments = 65_536;
    config.max_write_buffer = 40 << 20;
    let server = Server::new(config);
    let server = match (cert, key) {
        (Some(cert), Some(key)) => {
            let tls = TlsConfig::new(CertSet::from_pem_files(cert, key)?)?;
            let server = server.listen_tls(("127.0.0.1", port), &tls)?;
            log::info!("echo server on wss://{}/", server.local_addrs()[0]);
            server
        }
        (None, None) => {
            let server = server.listen(("127.0.0.1", port))?;
            log::info!("echo server on ws://{}/", server.local_addrs()[0]);
            server
        }
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "--tls-cert and --tls-key go together",
            ))
        }
    };
    server.run(Echo)
}
