//! The runtime allocates nothing per request or per message in steady state.
//!
//! A counting global allocator counts every allocation in the process while it is switched
//! on. This file holds a single test, so nothing else runs in its process: while counting,
//! the test thread only writes pre-encoded bytes to loopback sockets and reads the answers
//! into a fixed buffer (neither allocates), so every allocation counted is the server's.
//!
//! Measured: 2,000 batches of 16 pipelined WebSocket text messages (masked, 16 bytes each)
//! echoed, and 1,000 batches of 8 pipelined keep-alive GETs answered, after a warm-up that
//! fills the worker's buffer pool.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use berth::http::Request;
use berth::server::{Config, Handler, Message, Responder, Server, WebSocket};

struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn count() {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: defers every operation to `System`, only counting calls.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is passed through unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_request(&self, _: &mut (), req: &Request<'_, '_>, res: &mut Responder<'_>) {
        if req.path() == "/ws" {
            res.websocket(req);
        } else {
            let _ = res.send(200, &[("Content-Type", b"text/plain")], b"hello");
        }
    }

    fn on_message(&self, _: &mut (), ws: &mut WebSocket<'_>, msg: Message<'_>) {
        let _ = ws.send(msg);
    }
}

/// Write `batch`, then read exactly `expect` bytes into `buf`.
fn round_trip(stream: &mut TcpStream, batch: &[u8], buf: &mut [u8], expect: usize) {
    stream.write_all(batch).unwrap();
    let mut got = 0;
    while got < expect {
        let n = stream.read(&mut buf[got..expect]).unwrap();
        assert!(n > 0, "server closed");
        got += n;
    }
}

#[test]
fn echo_and_keep_alive_requests_allocate_nothing_in_steady_state() {
    let mut config = Config::default();
    config.workers = 1;
    let handle = Server::new(config)
        .listen("127.0.0.1:0")
        .unwrap()
        .spawn(Echo)
        .unwrap();
    let addr = handle.local_addrs()[0];
    let mut buf = vec![0u8; 1 << 16];

    // WebSocket: upgrade, then batches of 16 masked 16-byte text frames.
    let mut ws = TcpStream::connect(addr).unwrap();
    ws.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    ws.set_nodelay(true).unwrap();
    ws.write_all(
        b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let n = ws.read(&mut buf[..1]).unwrap();
        assert_eq!(n, 1);
        head.push(buf[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "));
    let payload = b"0123456789abcdef";
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    let batch: Vec<u8> = frame.repeat(16);
    let echo_len = 16 * (2 + payload.len());

    // HTTP: batches of 8 pipelined GETs on one keep-alive connection.
    let mut http = TcpStream::connect(addr).unwrap();
    http.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    http.set_nodelay(true).unwrap();
    let get = b"GET /plaintext HTTP/1.1\r\nHost: t\r\nUser-Agent: alloc-test\r\n\r\n";
    http.write_all(get).unwrap();
    let mut one = Vec::new();
    while !one.ends_with(b"hello") {
        let n = http.read(&mut buf).unwrap();
        assert!(n > 0);
        one.extend_from_slice(&buf[..n]);
    }
    let response_len = one.len(); // Fixed: the Date header is always 29 bytes.
    let gets: Vec<u8> = get.repeat(8);

    for _ in 0..200 {
        round_trip(&mut ws, &batch, &mut buf, echo_len);
        round_trip(&mut http, &gets, &mut buf, 8 * response_len);
    }

    COUNTING.store(true, Ordering::SeqCst);
    for i in 0..2000 {
        round_trip(&mut ws, &batch, &mut buf, echo_len);
        if i % 2 == 0 {
            round_trip(&mut http, &gets, &mut buf, 8 * response_len);
        }
    }
    COUNTING.store(false, Ordering::SeqCst);
    let counted = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(&buf[2..18], payload);
    round_trip(&mut http, &gets, &mut buf, 8 * response_len);
    assert!(buf.starts_with(b"HTTP/1.1 200 OK\r\n"));

    drop(ws);
    drop(http);
    handle.shutdown();
    handle.join().unwrap();
    assert_eq!(
        counted, 0,
        "{counted} allocations while echoing 32,000 messages and answering 8,000 requests"
    );
}
