//! The server side of the WebSocket opening handshake: berth against `tungstenite` on the same
//! request bytes, and the bare `Sec-WebSocket-Accept` computation of each.
//!
//! Run with `cargo bench --bench handshake`; see `benches/README.md` for recorded numbers.
//!
//! Group `server_<n>b`, one browser upgrade request in, one `101` head out:
//! - `berth`: a fresh `ServerConn::handle_input` (the `RequestParser` on 64 uninitialised header
//!   slots), `Upgrade::parse` (the checks, the extension offers and the accept key),
//!   `accept(None)`, and `ServerConn::write_head` of the 101 into a reused `Vec`;
//! - `berth_parse`: the same without the connection and the write: `RequestParser::parse`,
//!   `Upgrade::parse` and `accept(None)`, for information;
//! - `tungstenite`: what its `ServerHandshake` does with the same bytes:
//!   `server::Request::try_parse` (httparse into an `http::Request` with a `HeaderMap`),
//!   `create_response` (the checks and `derive_accept_key`), and `write_response` of the 101
//!   into a reused `Vec`.
//!
//! Group `accept_key`: `berth::handshake::accept_key` (into a `[u8; 28]`) against
//! `tungstenite::handshake::derive_accept_key` (into a `String`) on one 24-byte key.
//!
//! berth's 101 carries a `Date` field (from a `DateCache`, as the runtime's) and tungstenite's
//! does not; both carry `Upgrade`, `Connection` and `Sec-WebSocket-Accept`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

use berth::handshake::{accept_key, Upgrade};
use berth::http::{
    header_slots, DateCache, Event, RequestParser, ResponseBody, ResponseHead, ServerConn,
};
use berth::{Limits, Status};
use tungstenite::handshake::machine::TryParse;
use tungstenite::handshake::{derive_accept_key, server};

/// A Chrome WebSocket upgrade, fields in the order it sends them: 572 bytes, 13 fields.
const BROWSER_UPGRADE: &[u8] = b"\
GET /socket?room=lobby HTTP/1.1\r\n\
Host: www.example.com\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: https://www.example.com\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Cookie: session_id=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n\
Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

/// The key in [`BROWSER_UPGRADE`], and its accept value.
const KEY: &[u8] = b"x3JJHMbDL1EzLkh9GBhXDw==";
const ACCEPT: &[u8] = b"HSmrc0sMlYUkAGmm5OPpG2HaGWk=";

fn server(c: &mut Criterion) {
    let input = BROWSER_UPGRADE;
    let mut group = c.benchmark_group(format!("server_{}b", input.len()));
    group.throughput(Throughput::Bytes(input.len() as u64));
    let limits = Limits::default();
    let date = DateCache::new(1_700_000_000);

    group.bench_function("berth", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            let buf = black_box(input);
            out.clear();
            let mut slots = header_slots::<64>();
            // A fresh connection per iteration, as each handshake is a new connection.
            let mut conn = ServerConn::new(&limits);
            let Ok((used, Event::Request(req))) = conn.handle_input(buf, &mut slots) else {
                panic!("benchmark input must parse");
            };
            let upgrade = Upgrade::parse(&req).expect("benchmark input is an upgrade");
            let answer = upgrade.accept(None).expect("no subprotocol");
            let head = ResponseHead {
                status: 101,
                headers: &answer.headers(),
                body: ResponseBody::Empty,
                close: false,
            };
            conn.write_head(&head, &date, &mut out)
                .expect("write the 101");
            black_box((used, out.len()))
        })
    });

    group.bench_function("berth_parse", |b| {
        let mut parser = RequestParser::new(&limits);
        b.iter(|| {
            let buf = black_box(input);
            let mut slots = header_slots::<64>();
            let Ok(Status::Complete((used, req))) = parser.parse(buf, &mut slots) else {
                panic!("benchmark input must parse");
            };
            let upgrade = Upgrade::parse(&req).expect("benchmark input is an upgrade");
            let answer = upgrade.accept(None).expect("no subprotocol");
            black_box((used, answer.headers().len()))
        })
    });

    group.bench_function("tungstenite", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            let buf = black_box(input);
            out.clear();
            let Ok(Some((used, req))) = server::Request::try_parse(buf) else {
                panic!("benchmark input must parse");
            };
            let response = server::create_response(&req).expect("an upgrade");
            server::write_response(&mut out, &response).expect("write the 101");
            black_box((used, out.len()))
        })
    });

    group.finish();
}

fn accept(c: &mut Criterion) {
    let mut group = c.benchmark_group("accept_key");
    group.throughput(Throughput::Bytes(KEY.len() as u64));
    group.bench_function("berth", |b| b.iter(|| accept_key(black_box(KEY))));
    group.bench_function("tungstenite", |b| {
        b.iter(|| derive_accept_key(black_box(KEY)))
    });
    group.finish();
}

/// Both sides compute the same answer from the same bytes, before anything is timed.
fn check_inputs() {
    assert_eq!(
        BROWSER_UPGRADE.len(),
        572,
        "the group name carries the size"
    );
    assert_eq!(&accept_key(KEY)[..], ACCEPT);
    assert_eq!(derive_accept_key(KEY).as_bytes(), ACCEPT);

    let mut slots = header_slots::<64>();
    let mut conn = ServerConn::new(&Limits::default());
    let Ok((_, Event::Request(req))) = conn.handle_input(BROWSER_UPGRADE, &mut slots) else {
        panic!("benchmark input must parse");
    };
    let upgrade = Upgrade::parse(&req).expect("an upgrade");
    let answer = upgrade.accept(None).expect("no subprotocol");
    let mut ours = Vec::new();
    let head = ResponseHead {
        status: 101,
        headers: &answer.headers(),
        body: ResponseBody::Empty,
        close: false,
    };
    conn.write_head(&head, &DateCache::new(1_700_000_000), &mut ours)
        .expect("write the 101");

    let (_, req) = server::Request::try_parse(BROWSER_UPGRADE)
        .expect("parse")
        .expect("complete");
    let mut theirs = Vec::new();
    server::write_response(
        &mut theirs,
        &server::create_response(&req).expect("an upgrade"),
    )
    .expect("write the 101");

    for out in [&ours, &theirs] {
        let text = String::from_utf8_lossy(out).to_ascii_lowercase();
        assert!(
            text.starts_with("http/1.1 101 switching protocols\r\n"),
            "{text}"
        );
        let accept = String::from_utf8_lossy(ACCEPT).to_ascii_lowercase();
        for field in [
            "upgrade: websocket\r\n".to_owned(),
            "connection: upgrade\r\n".to_owned(),
            format!("sec-websocket-accept: {accept}\r\n"),
        ] {
            assert!(text.contains(&field), "{field:?} missing from {text:?}");
        }
        assert!(text.ends_with("\r\n\r\n"));
    }
}

fn handshake(c: &mut Criterion) {
    check_inputs();
    server(c);
    accept(c);
}

criterion_group!(benches, handshake);
criterion_main!(benches);
