//! The HTTP and WebSocket cores allocate nothing in steady state (STYLE.md §2.6): "Zero-alloc is tested, not
//! assumed."
//!
//! A counting global allocator wraps [`System`] and counts `alloc`, `alloc_zeroed` and
//! `realloc` calls, but only on the thread that is measuring and only while it measures, so
//! other tests running in parallel on other threads cannot disturb the count.
//!
//! The measured work is what a runtime does for a connection: drive a [`ServerConn`] over a
//! realistic pipelined batch (GETs with browser-sized heads, a `Content-Length` POST, a chunked
//! POST with extensions and a trailer, HEAD, DELETE), with header slots on the stack, answering
//! each request with `Content-Length` and chunked responses into a reused `Vec<u8>`, and
//! refreshing the [`DateCache`]. The batch arrives whole and in 7-byte pieces.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use berth::http::{header_slots, DateCache, Event, ResponseBody, ResponseHead, ServerConn};
use berth::Limits;

struct CountingAllocator;

thread_local! {
    /// Whether this thread is inside [`allocations_during`]. `const`-initialised and without a
    /// destructor, so reading it never allocates.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with`: the allocator may run while thread-locals are being torn down.
    let measuring = MEASURING.try_with(Cell::get).unwrap_or(false);
    if measuring {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; counting touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded unchanged; `ptr` was allocated by `System` through this type.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` was allocated by `System` through this type.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// How many allocations (and reallocations) this thread makes while running `f`.
fn allocations_during<R>(f: impl FnOnce() -> R) -> (u64, R) {
    ALLOCATIONS.with(|n| n.set(0));
    MEASURING.with(|m| m.set(true));
    let result = f();
    MEASURING.with(|m| m.set(false));
    (ALLOCATIONS.with(Cell::get), result)
}

/// Eight keep-alive requests as a browser and an API client would pipeline them.
fn pipelined_batch() -> Vec<u8> {
    const BROWSER_FIELDS: &str = "Host: shop.example.com\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
        Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
        Accept-Language: en-US,en;q=0.5\r\n\
        Accept-Encoding: gzip, deflate, br, zstd\r\n\
        Referer: https://shop.example.com/catalog?page=2\r\n\
        Cookie: session=7f3a9c2e4b1d8f60; theme=dark; consent=1\r\n\
        Cache-Control: max-age=0\r\n\
        Sec-Fetch-Mode: navigate\r\n\
        Connection: keep-alive\r\n";
    let json = r#"{"name":"berth","qty":3}"#;
    let requests = [
        format!("GET / HTTP/1.1\r\n{BROWSER_FIELDS}\r\n"),
        format!("GET /static/app.js?v=3 HTTP/1.1\r\n{BROWSER_FIELDS}\r\n"),
        format!(
            "POST /api/items HTTP/1.1\r\nHost: shop.example.com\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             X-Request-Id: 6c1e0d4a\r\n\r\n{json}",
            json.len()
        ),
        format!("GET /api/items/42 HTTP/1.1\r\n{BROWSER_FIELDS}If-None-Match: \"v42\"\r\n\r\n"),
        "POST /upload HTTP/1.1\r\nHost: shop.example.com\r\n\
         Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\
         Trailer: Digest\r\n\r\n\
         10;part=1\r\n0123456789abcdef\r\n\
         8\r\nghijklmn\r\n\
         1A;name=\"last part\"\r\nopqrstuvwxyzABCDEFGHIJKLMN\r\n\
         0\r\nDigest: sha-256=47DEQpj8HBSa\r\n\r\n"
            .to_owned(),
        "HEAD /health HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: probe/1.0\r\n\r\n"
            .to_owned(),
        format!("GET /search?q=berth&sort=price HTTP/1.1\r\n{BROWSER_FIELDS}\r\n"),
        "DELETE /api/items/42 HTTP/1.1\r\nHost: shop.example.com\r\n\
         Authorization: Bearer abc.def.ghi\r\nContent-Length: 0\r\n\r\n"
            .to_owned(),
    ];
    requests.concat().into_bytes()
}

const REQUESTS: usize = 8;
const REQUEST_BODY_BYTES: usize = 24 + 16 + 8 + 26;
const RESPONSE: &[u8] = b"{\"id\":42,\"name\":\"berth\",\"qty\":3}\n";

#[derive(Debug, Default, PartialEq, Eq)]
struct Served {
    requests: usize,
    header_fields: usize,
    body_bytes: usize,
    trailer_fields: usize,
}

/// Answer the `n`th request: `Content-Length` for even `n`, chunked in two pieces for odd.
fn respond(conn: &mut ServerConn, n: usize, date: &DateCache, out: &mut Vec<u8>) {
    let headers: [(&str, &[u8]); 2] = [
        ("Content-Type", b"application/json"),
        ("Cache-Control", b"no-store"),
    ];
    let chunked = n % 2 == 1;
    let head = ResponseHead {
        status: 200,
        headers: &headers,
        body: if chunked {
            ResponseBody::Chunked
        } else {
            ResponseBody::Length(RESPONSE.len() as u64)
        },
        close: false,
    };
    conn.write_head(&head, date, out).expect("write_head");
    if chunked {
        let (first, second) = RESPONSE.split_at(10);
        conn.write_body(first, out).expect("write_body");
        conn.write_body(second, out).expect("write_body");
    } else {
        conn.write_body(RESPONSE, out).expect("write_body");
    }
    conn.write_end(out).expect("write_end");
}

/// Serve the whole batch on `conn`, the bytes arriving `step` at a time into a window of the
/// batch (a receive buffer without the copying), answering into `out`.
fn serve(
    conn: &mut ServerConn,
    batch: &[u8],
    step: usize,
    date: &DateCache,
    out: &mut Vec<u8>,
) -> Served {
    let mut served = Served::default();
    let (mut start, mut end) = (0, step.min(batch.len()));
    loop {
        let mut slots = header_slots::<64>();
        let (used, event) = conn
            .handle_input(&batch[start..end], &mut slots)
            .expect("the batch is valid");
        start += used;
        match event {
            Event::Request(req) => {
                served.requests += 1;
                served.header_fields += req.headers.len();
                assert!(req.keep_alive && req.header("host").is_some());
                black_box((req.path(), req.query(), req.is_head()));
            }
            Event::Data(data) => served.body_bytes += black_box(data).len(),
            Event::End(trailers) => {
                served.trailer_fields += trailers.iter().count();
                respond(conn, served.requests, date, out);
            }
            Event::NeedData if end == batch.len() => break,
            Event::NeedData => end = (end + step).min(batch.len()),
            _ => panic!("unexpected event"),
        }
    }
    assert_eq!(start, batch.len(), "the whole batch is consumed");
    served
}

#[test]
fn counter_sees_allocations() {
    let (boxed, _) = allocations_during(|| black_box(Box::new(black_box(7u64))));
    assert!(boxed >= 1, "a Box was not counted");

    let mut v: Vec<u8> = Vec::with_capacity(1);
    let (grown, _) = allocations_during(|| {
        v.extend_from_slice(black_box(&[1, 2, 3, 4, 5, 6, 7, 8, 9]));
        black_box(&v);
    });
    assert!(grown >= 1, "a Vec growing was not counted");

    let (none, _) = allocations_during(|| black_box(1 + black_box(2)));
    assert_eq!(none, 0, "the counter counts what is not an allocation");
}

#[test]
fn serving_a_pipelined_batch_allocates_nothing() {
    let batch = pipelined_batch();
    let limits = Limits::default();
    let now = 1_700_000_000;
    let mut date = DateCache::new(now);
    let mut persistent = ServerConn::new(&limits);
    let mut out_whole = Vec::new();
    let mut out_split = Vec::new();
    let expected = Served {
        requests: REQUESTS,
        header_fields: 10 + 10 + 4 + 11 + 4 + 2 + 10 + 3,
        body_bytes: REQUEST_BODY_BYTES,
        trailer_fields: 1,
    };

    // Warm up: the output buffers grow to the size the batch needs, once.
    let warm = serve(&mut persistent, &batch, batch.len(), &date, &mut out_whole);
    assert_eq!(warm, expected);
    let mut conn = ServerConn::new(&limits);
    let warm = serve(&mut conn, &batch, 7, &date, &mut out_split);
    assert_eq!(warm, expected);
    assert_eq!(out_whole, out_split);

    for round in 1..=5 {
        let (allocations, (whole, split)) = allocations_during(|| {
            date.update(now + round);
            out_whole.clear();
            out_split.clear();
            // One keep-alive connection, the batch arriving in one read.
            let whole = serve(&mut persistent, &batch, batch.len(), &date, &mut out_whole);
            // A new connection, the batch arriving 7 bytes at a time.
            let mut conn = ServerConn::new(&limits);
            let split = serve(&mut conn, &batch, 7, &date, &mut out_split);
            (whole, split)
        });
        assert_eq!(allocations, 0, "round {round} allocated");
        assert_eq!(whole, expected);
        assert_eq!(split, expected);
        assert_eq!(out_whole, out_split);
        assert_eq!(
            out_whole.windows(9).filter(|w| w == b"HTTP/1.1 ").count(),
            REQUESTS
        );
    }
}

/// Drive `conn` over every frame in `buf` (unmasking in place), answering data messages with
/// an echo and pings with the automatic pong, into `out`. Returns (messages, bytes).
fn echo_all(conn: &mut berth::ws::Conn, buf: &mut [u8], out: &mut Vec<u8>) -> (usize, usize) {
    use berth::ws::{Event as WsEvent, MessageKind};
    let (mut messages, mut bytes, mut pos) = (0, 0, 0);
    loop {
        // Copy the reply's kind and length out of the event, then echo from the buffer, which
        // still holds the unmasked payload.
        let (used, reply) = match conn.handle_input(&mut buf[pos..]).unwrap() {
            (used, WsEvent::Text(t)) => (used, Some((MessageKind::Text, t.len()))),
            (used, WsEvent::Binary(b)) => (used, Some((MessageKind::Binary, b.len()))),
            (used, WsEvent::NeedData) => {
                assert_eq!(pos + used, buf.len(), "a whole batch leaves nothing behind");
                break;
            }
            (used, _) => (used, None),
        };
        if let Some((kind, len)) = reply {
            let payload = &buf[pos + used - len..pos + used];
            conn.send(kind, payload, true, out).unwrap();
            messages += 1;
            bytes += len;
        }
        pos += used;
    }
    conn.poll_transmit(out);
    (messages, bytes)
}

/// The WebSocket core allocates nothing per message in steady state: decoding, unmasking and
/// UTF-8-checking unfragmented text and binary messages from 16 B to 64 KiB, a ping with its
/// automatic pong, and encoding the replies (unmasked by the server, masked by the client) into
/// reused buffers.
#[test]
fn websocket_messages_allocate_nothing() {
    use berth::ws::Conn;
    let limits = Limits::default();
    let mut seed = 0x1234_5678u32;
    let mut client = Conn::client(
        &limits,
        Box::new(move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed.to_ne_bytes()
        }),
    );
    let text_16 = "sixteen bytes ok";
    let text_64k = "κόσμε, ".repeat(65_536 / 13);
    let binary_1k: Vec<u8> = (0..1024u32).map(|i| (i * 31) as u8).collect();
    let binary_64k = vec![0x5au8; 65_536];

    // What a client sends: masked frames.
    let mut wire = Vec::new();
    for _ in 0..4 {
        client.send_text(text_16, &mut wire).unwrap();
        client.send_binary(&binary_1k, &mut wire).unwrap();
        client.send_text(&text_64k, &mut wire).unwrap();
        client.send_binary(&binary_64k, &mut wire).unwrap();
        client.send_ping(b"tick", &mut wire).unwrap();
    }
    let expected_bytes = 4 * (text_16.len() + binary_1k.len() + text_64k.len() + binary_64k.len());

    let mut server = Conn::server(&limits);
    let mut buf = wire.clone();
    let mut out = Vec::new();
    let mut back = Vec::new();
    // Warm-up: buffers reach their steady capacity.
    echo_all(&mut server, &mut buf, &mut out);
    echo_all(&mut client, &mut out.clone(), &mut back);

    for round in 0..5 {
        buf.copy_from_slice(&wire);
        out.clear();
        let (allocs, (messages, bytes)) =
            allocations_during(|| echo_all(&mut server, &mut buf, &mut out));
        assert_eq!((messages, bytes), (16, expected_bytes));
        assert_eq!(allocs, 0, "server round {round}");

        // The client decodes the server's unmasked replies and masks its own echoes.
        let mut replies = out.clone();
        back.clear();
        let (allocs, (messages, _)) =
            allocations_during(|| echo_all(&mut client, &mut replies, &mut back));
        assert_eq!(messages, 16);
        assert_eq!(allocs, 0, "client round {round}");
        black_box(&back);
    }
}
