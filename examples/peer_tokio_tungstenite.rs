//! Peer for the end-to-end benchmark: a WebSocket echo server on tokio (multi-thread runtime)
//! and tokio-tungstenite, on 127.0.0.1, over plain TCP or, with `--tls-cert` and `--tls-key`,
//! over TLS with tokio-rustls (wss://). Any path is accepted; text and binary messages come back
//! as they came, and pings and the close handshake are answered by tungstenite itself. No HTTP
//! endpoint: tokio-tungstenite speaks only the upgrade.
//!
//! ```text
//! cargo run --release --example peer_tokio_tungstenite -- 9001 [WORKER_THREADS]
//! cargo run --release --example load -- ws-echo --url ws://127.0.0.1:9001/ --duration 5
//!
//! cargo run --example gen_cert -- certs
//! cargo run --release --example peer_tokio_tungstenite -- 9001 1 \
//!     --tls-cert certs/cert.pem --tls-key certs/key.pem
//! cargo run --release --example load -- ws-echo --url wss://localhost:9001/ --ca certs/cert.pem
//! ```
//!
//! TLS: rustls with the ring provider, TLS 1.3 and 1.2, ALPN `http/1.1`, and rustls's server
//! defaults otherwise (an in-memory cache of 256 sessions; after a TLS 1.3 handshake, two
//! session tickets). `--tls-cert` is a PEM chain, leaf first; `--tls-key` a PEM private key.
//!
//! Limits are raised so that 16 MiB messages pass (tungstenite's default frame limit is
//! exactly 16 MiB). Stop it with Ctrl-C or SIGTERM.

use std::sync::Arc;

use futures_util::{future, StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, crypto::ring};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Largest message and frame the peer accepts: room for the 16 MiB messages of the benchmark.
const MAX_MESSAGE: usize = 64 << 20;

const USAGE: &str = "usage: peer_tokio_tungstenite PORT [THREADS] [--tls-cert PEM --tls-key PEM]";

fn main() -> std::io::Result<()> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let (mut port, mut threads) = (None::<u16>, None::<usize>);
    let (mut cert, mut key) = (None::<String>, None::<String>);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tls-cert" => cert = args.next(),
            "--tls-key" => key = args.next(),
            other => {
                let bad_arg = || bad(format!("{USAGE}; bad argument {other:?}"));
                if port.is_none() {
                    port = Some(other.parse().ok().filter(|&p| p != 0).ok_or_else(bad_arg)?);
                } else if threads.is_none() {
                    threads = Some(other.parse().ok().filter(|&t| t > 0).ok_or_else(bad_arg)?);
                } else {
                    return Err(bad_arg());
                }
            }
        }
    }
    let port = port.ok_or_else(|| bad(USAGE.into()))?;
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(acceptor(&cert, &key)?),
        (None, None) => None,
        _ => return Err(bad(format!("{USAGE}; give both --tls-cert and --tls-key"))),
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        runtime.worker_threads(threads);
    }
    runtime.enable_all().build()?.block_on(serve(port, tls))
}

/// A TLS acceptor for the certificate chain and key in the PEM files `cert` and `key`.
fn acceptor(cert: &str, key: &str) -> std::io::Result<TlsAcceptor> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(format!("--tls-cert {cert}: {e}")))?;
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(format!("--tls-key {key}: {e}")))?;
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
            .map_err(|e| invalid(format!("TLS configuration: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn serve(port: u16, tls: Option<TlsAcceptor>) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!(
        "peer_tokio_tungstenite: {}://{}/ (echo)",
        if tls.is_some() { "wss" } else { "ws" },
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        match &tls {
            None => {
                tokio::spawn(echo(stream));
            }
            Some(acceptor) => {
                let accept = acceptor.accept(stream);
                tokio::spawn(async move {
                    // A failed TLS handshake ends the connection; so does the load generator's
                    // readiness probe, which connects and closes at once.
                    if let Ok(stream) = accept.await {
                        echo(stream).await;
                    }
                });
            }
        }
    }
}

/// The echo loop of tokio-tungstenite's own example: `forward` feeds each message to the sink
/// and flushes when the stream has nothing ready, so pipelined messages share writes.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (write, read) = ws.split();
    // Errors end the connection; a load generator's closing connection is one of them.
    let _ = read
        .try_filter(|msg| future::ready(msg.is_text() || msg.is_binary()))
        .forward(write)
        .await;
}
