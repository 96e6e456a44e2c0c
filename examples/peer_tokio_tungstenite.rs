//! Peer for the end-to-end benchmark: a WebSocket echo server on tokio (multi-thread runtime)
//! and tokio-tungstenite, on 127.0.0.1. Any path is accepted; text and binary messages come back
//! as they came, and pings and the close handshake are answered by tungstenite itself. No HTTP
//! endpoint: tokio-tungstenite speaks only the upgrade.
//!
//! ```text
//! cargo run --release --example peer_tokio_tungstenite -- 9001 [WORKER_THREADS]
//! cargo run --release --example load -- ws-echo --url ws://127.0.0.1:9001/ --duration 5
//! ```
//!
//! Limits are raised so that 16 MiB messages pass (tungstenite's default frame limit is
//! exactly 16 MiB). Stop it with Ctrl-C or SIGTERM.

use futures_util::{future, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Largest message and frame the peer accepts: room for the 16 MiB messages of the benchmark.
const MAX_MESSAGE: usize = 64 << 20;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| std::io::Error::other("usage: peer_tokio_tungstenite PORT [THREADS]"))?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.next().and_then(|t| t.parse().ok()) {
        runtime.worker_threads(threads);
    }
    runtime.enable_all().build()?.block_on(serve(port))
}

async fn serve(port: u16) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!(
        "peer_tokio_tungstenite: ws://{}/ (echo)",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(echo(stream));
    }
}

/// The echo loop of tokio-tungstenite's own example: `forward` feeds each message to the sink
/// and flushes when the stream has nothing ready, so pipelined messages share writes.
async fn echo(stream: TcpStream) {
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
