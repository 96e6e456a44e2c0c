//! WebSocket decoding and encoding: berth against `tungstenite` on the same bytes, and a plain
//! copy as the memory-speed reference.
//!
//! Run with `cargo bench --bench ws_codec`; see `benches/README.md` for recorded numbers.
//!
//! Each `ws_decode` group decodes one batch of masked client frames (what a server receives) of one kind and
//! size, about 64 KiB of payload per batch:
//! - `berth`: `ws::Conn::handle_input` on the receive buffer: header decode, unmask in place,
//!   UTF-8 check for text, the message handed out borrowed;
//! - `tungstenite`: `WebSocket::read` from an in-memory stream over the same bytes (its cost
//!   includes copying them into its own buffer, as reading a socket would);
//! - `copy` (64 KiB groups only): `copy_from_slice` of the payload, the memory-speed reference.
//!
//! Text of 16 B is an ASCII JSON object; larger text mixes ASCII with 2- and 3-byte characters,
//! and `text_ascii/65536` is the same size all in ASCII.
//!
//! Setup (restoring the masked input, building tungstenite's stream) is excluded from timing.
//!
//! Each `ws_encode` group writes one batch of binary messages of one size (about 64 KiB of
//! payload) as a server (unmasked) or a client (masked) sends them:
//! - `berth`: `ws::Conn::send_binary` into a reused `Vec` (header, payload copy, mask);
//! - `tungstenite`: `WebSocket::write` of each message and one `flush` into an in-memory stream
//!   that discards what it is given; its messages share one `Bytes`, so its cost includes one
//!   copy of each payload (into its write buffer), as berth's does.
//!
//! The client-role berth connection masks with a fixed key from its mask source; tungstenite
//! draws a random key per frame, as it always does.

use std::hint::black_box;
use std::io::{self, Cursor, Read, Write};

use berth::ws::{Conn, Event, MessageKind};
use berth::Limits;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tungstenite::protocol::{Role, WebSocket};
use tungstenite::{Bytes, Message};

/// An in-memory stream: reads from a cursor, discards writes (tungstenite's `MockIo` idea).
struct MockIo(Cursor<Vec<u8>>);

impl Read for MockIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for MockIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `count` masked frames of `size` payload bytes each.
fn batch(kind: MessageKind, size: usize, count: usize, ascii: bool) -> Vec<u8> {
    let mut state = 0x2545_f491u32;
    let mut client = Conn::client(
        &Limits::default(),
        Box::new(move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_ne_bytes()
        }),
    );
    // Text: a small message is an ASCII JSON object, as most small WebSocket messages are;
    // larger ones are chat-like JSON mixing ASCII with 2- and 3-byte characters, so the UTF-8
    // check does real work.
    let pattern = if size <= 64 || ascii {
        r#"{"op":"tick","seq":42,"ok":true}"#
    } else {
        r#"{"from":"zoë","text":"on my way ✓ see you at the café","ts":1700000000},"#
    };
    let mut text = String::with_capacity(size);
    for ch in pattern.chars().cycle() {
        if text.len() + ch.len_utf8() > size {
            break;
        }
        text.push(ch);
    }
    while text.len() < size {
        text.push(' ');
    }
    let binary: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
    let mut wire = Vec::new();
    for _ in 0..count {
        match kind {
            MessageKind::Text => client.send_text(&text, &mut wire).unwrap(),
            MessageKind::Binary => client.send_binary(&binary, &mut wire).unwrap(),
        }
    }
    wire
}

fn limits() -> Limits {
    let mut l = Limits::default();
    l.max_message = 1 << 20;
    l
}

fn bench_case(c: &mut Criterion, kind: MessageKind, size: usize, ascii: bool) {
    let count = (65_536 / size).max(1);
    let wire = batch(kind, size, count, ascii);
    let name = format!(
        "ws_decode/{}/{size}",
        match kind {
            MessageKind::Text if ascii => "text_ascii",
            MessageKind::Text => "text",
            MessageKind::Binary => "binary",
        }
    );
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes((size * count) as u64));

    let mut conn = Conn::server(&limits());
    group.bench_function("berth", |b| {
        b.iter_batched_ref(
            || wire.clone(),
            |buf| {
                let mut pos = 0;
                let mut seen = 0;
                while pos < buf.len() {
                    let (used, event) = conn.handle_input(&mut buf[pos..]).unwrap();
                    match event {
                        Event::Text(t) => seen += t.len(),
                        Event::Binary(d) => seen += d.len(),
                        _ => unreachable!(),
                    }
                    pos += used;
                }
                assert_eq!(seen, size * count);
                black_box(seen)
            },
            BatchSize::LargeInput,
        )
    });

    group.bench_function("tungstenite", |b| {
        let mut config = tungstenite::protocol::WebSocketConfig::default();
        config.max_message_size = Some(1 << 20);
        b.iter_batched_ref(
            || {
                WebSocket::from_raw_socket(
                    MockIo(Cursor::new(wire.clone())),
                    Role::Server,
                    Some(config),
                )
            },
            |ws| {
                let mut seen = 0;
                for _ in 0..count {
                    seen += ws.read().unwrap().len();
                }
                assert_eq!(seen, size * count);
                black_box(seen)
            },
            BatchSize::LargeInput,
        )
    });

    if size == 65_536 {
        let source = vec![0xa5u8; size];
        let mut dest = vec![0u8; size];
        group.bench_function("copy", |b| {
            b.iter(|| {
                dest.copy_from_slice(black_box(&source));
                black_box(dest.as_ptr())
            })
        });
    }
    group.finish();
}

fn ws_decode(c: &mut Criterion) {
    for kind in [MessageKind::Text, MessageKind::Binary] {
        for size in [16, 1024, 65_536] {
            bench_case(c, kind, size, false);
        }
    }
}

/// Text that is all ASCII (JSON, mostly), where validation can run at memory speed.
fn ws_decode_ascii(c: &mut Criterion) {
    bench_case(c, MessageKind::Text, 65_536, true);
}

/// A stream that keeps what is written to it, for checking what tungstenite encodes.
struct Sink(Vec<u8>);

impl Read for Sink {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn encode_case(c: &mut Criterion, role: Role, size: usize) {
    let count = (65_536 / size).max(1);
    let payload: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
    let shared = Bytes::from(payload.clone());
    let side = match role {
        Role::Server => "server",
        Role::Client => "client",
    };
    let new_conn = || match role {
        Role::Server => Conn::server(&limits()),
        Role::Client => Conn::client(&limits(), Box::new(|| [0x37, 0xfa, 0x21, 0x3d])),
    };

    // Both write the same frames: the same bytes unmasked, the same length masked.
    let mut ours = Vec::new();
    let mut conn = new_conn();
    for _ in 0..count {
        conn.send_binary(&payload, &mut ours).unwrap();
    }
    let mut peer = WebSocket::from_raw_socket(Sink(Vec::new()), role, None);
    for _ in 0..count {
        peer.write(Message::Binary(shared.clone())).unwrap();
    }
    peer.flush().unwrap();
    let theirs = &peer.get_ref().0;
    match role {
        Role::Server => assert!(ours == *theirs, "server frames differ from tungstenite's"),
        Role::Client => assert_eq!(ours.len(), theirs.len()),
    }

    let mut group = c.benchmark_group(format!("ws_encode/{side}/{size}"));
    group.throughput(Throughput::Bytes((size * count) as u64));

    let mut conn = new_conn();
    let mut out = Vec::with_capacity(ours.len());
    group.bench_function("berth", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..count {
                conn.send_binary(black_box(&payload), &mut out).unwrap();
            }
            black_box(out.len())
        })
    });

    let mut ws = WebSocket::from_raw_socket(MockIo(Cursor::new(Vec::new())), role, None);
    group.bench_function("tungstenite", |b| {
        b.iter(|| {
            for _ in 0..count {
                ws.write(Message::Binary(black_box(&shared).clone()))
                    .unwrap();
            }
            ws.flush().unwrap();
        })
    });
    group.finish();
}

fn ws_encode(c: &mut Criterion) {
    for role in [Role::Server, Role::Client] {
        for size in [16, 1024, 65_536] {
            encode_case(c, role, size);
        }
    }
}

criterion_group!(benches, ws_decode, ws_decode_ascii, ws_encode);
criterion_main!(benches);
