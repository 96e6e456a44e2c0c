//! Peer for the end-to-end benchmark: a hyper 1.x HTTP/1.1 server on tokio's multi-thread
//! runtime, on 127.0.0.1, answering every request with a small plaintext body,
//! "Hello, World!" (the TechEmpower plaintext shape). Keep-alive is on, and pipelined
//! responses are flushed together (`pipeline_flush`).
//!
//! ```text
//! cargo run --release --example peer_hyper -- 9003 [WORKER_THREADS]
//! cargo run --release --example load -- http --url http://127.0.0.1:9003/ --pipeline 16 --duration 5
//! ```
//!
//! Stop it with Ctrl-C or SIGTERM.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| std::io::Error::other("usage: peer_hyper PORT [THREADS]"))?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.next().and_then(|t| t.parse().ok()) {
        runtime.worker_threads(threads);
    }
    runtime.enable_all().build()?.block_on(serve(port))
}

async fn serve(port: u16) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("peer_hyper: http://{}/ (plaintext)", listener.local_addr()?);
    let mut builder = http1::Builder::new();
    builder.keep_alive(true).pipeline_flush(true);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let connection = builder.serve_connection(TokioIo::new(stream), service_fn(hello));
        // A client that goes away mid-request is not the server's error.
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from_static(b"Hello, World!")))
        .expect("constant response"))
}
