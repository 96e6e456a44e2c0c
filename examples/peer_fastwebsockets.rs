//! Peer for the end-to-end benchmark: a WebSocket echo server on fastwebsockets, upgraded
//! through hyper (fastwebsockets' `upgrade` feature) on tokio's multi-thread runtime, on
//! 127.0.0.1. Any path upgrades; text and binary messages come back as they came, with
//! fastwebsockets' automatic pongs and close replies on. A GET that is not an upgrade gets a
//! plaintext "Hello, World!" from the same hyper server.
//!
//! ```text
//! cargo run --release --example peer_fastwebsockets -- 9002 [WORKER_THREADS]
//! cargo run --release --example load -- ws-echo --url ws://127.0.0.1:9002/ --duration 5
//! ```
//!
//! fastwebsockets' default message limit (64 MiB) already lets 16 MiB messages pass. Stop it
//! with Ctrl-C or SIGTERM.

use bytes::Bytes;
use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Largest message the peer accepts: room for the 16 MiB messages of the benchmark.
const MAX_MESSAGE: usize = 64 << 20;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| std::io::Error::other("usage: peer_fastwebsockets PORT [THREADS]"))?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.next().and_then(|t| t.parse().ok()) {
        runtime.worker_threads(threads);
    }
    runtime.enable_all().build()?.block_on(serve(port))
}

async fn serve(port: u16) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!(
        "peer_fastwebsockets: ws://{0}/ (echo), http://{0}/ (plaintext)",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(route))
                .with_upgrades();
            // A client that goes away mid-request is not the server's error.
            let _ = connection.await;
        });
    }
}

/// Upgrade requests become echo connections; anything else gets the plaintext answer.
async fn route(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, WebSocketError> {
    if !upgrade::is_upgrade_request(&req) {
        return Ok(Response::builder()
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Full::new(Bytes::from_static(b"Hello, World!")))
            .expect("constant response"));
    }
    let (response, upgraded) = upgrade::upgrade(&mut req)?;
    tokio::spawn(async move {
        // fastwebsockets' own echo example runs the connection unconstrained by tokio's
        // cooperative budget; so does this peer.
        let _ = tokio::task::unconstrained(echo(upgraded)).await;
    });
    Ok(response.map(|_| Full::new(Bytes::new())))
}

async fn echo(upgraded: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = upgraded.await?;
    ws.set_auto_pong(true);
    ws.set_auto_close(true);
    ws.set_max_message_size(MAX_MESSAGE);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            // The close reply has been sent (auto-close): the connection is over.
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}
