//! Runtime promises for HTTP over real loopback sockets, pinned down before the session is
//! redesigned: the connection limit, a panicking handler, the body timeout, the drain
//! deadline, read pause under large pipelined responses, HEAD / HTTP/1.0 persistence, and an
//! answer given before the request body arrived.
//!
//! Each test asserts what the runtime actually does on the wire (bytes, EOF or reset, and
//! when), so that a change in behaviour fails it. Waits are bounded; a negative assertion
//! ("nothing arrives") waits a fixed short window, which a correct server passes however
//! slowly it runs.

mod util;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::http::{Request, ResponseBody, ResponseHead};
use berth::server::{Config, Handler, Responder};
use berth::testing::TestServer;

use util::{wait_until, WAIT};

/// Bytes of each `/big/N` response body.
const BIG: usize = 256 * 1024;

/// What the application saw, for assertions.
#[derive(Debug, Default)]
struct Seen {
    /// `/big/N` requests whose handler has run.
    big_started: AtomicUsize,
    /// Handler callbacks about to panic.
    panics: AtomicUsize,
}

#[derive(Debug, Default)]
struct App {
    seen: Arc<Seen>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Route {
    #[default]
    None,
    Echo,
    PanicInBody,
    PanicAtEnd,
}

#[derive(Debug, Default)]
struct State {
    route: Route,
    body: Vec<u8>,
}

/// The body of `/big/{index}`: 16-byte lines `IIII/LLLLLLLLLL\n`, so that every response, and
/// every offset in it, is distinguishable.
fn big_body(index: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(BIG);
    for line in 0..BIG / 16 {
        body.extend_from_slice(format!("{index:04}/{line:010}\n").as_bytes());
    }
    body
}

impl Handler for App {
    type State = State;

    fn on_request(&self, state: &mut State, req: &Request<'_, '_>, res: &mut Responder<'_>) {
        state.route = Route::None;
        state.body.clear();
        let path = req.path();
        match (req.method, path) {
            ("GET" | "HEAD", "/hello") => {
                let _ = res.send(200, &[("Content-Type", b"text/plain")], b"hello");
            }
            ("GET", _) if path.starts_with("/big/") => {
                self.seen.big_started.fetch_add(1, Ordering::SeqCst);
                let index: usize = path["/big/".len()..].parse().unwrap();
                let _ = res.send(200, &[], &big_body(index));
            }
            ("POST", "/echo") => state.route = Route::Echo,
            // Answered from the head alone, before any of the body arrives.
            ("POST", "/early") => {
                let _ = res.send(200, &[], b"early");
            }
            ("POST", "/early-chunked") => {
                let head = ResponseHead {
                    status: 200,
                    headers: &[],
                    body: ResponseBody::Chunked,
                    close: false,
                };
                let _ = res.start(&head);
                let _ = res.write(b"early");
                let _ = res.end();
            }
            (_, "/panic/request") => {
                self.seen.panics.fetch_add(1, Ordering::SeqCst);
                panic!("on_request panics, as the test asked");
            }
            (_, "/panic/body") => state.route = Route::PanicInBody,
            (_, "/panic/end") => state.route = Route::PanicAtEnd,
            _ => {
                let _ = res.send(404, &[], b"not found");
            }
        }
    }

    fn on_body(&self, state: &mut State, data: &[u8], _: &mut Responder<'_>) {
        if state.route == Route::PanicInBody {
            self.seen.panics.fetch_add(1, Ordering::SeqCst);
            panic!("on_body panics, as the test asked");
        }
        state.body.extend_from_slice(data);
    }

    fn on_body_end(&self, state: &mut State, res: &mut Responder<'_>) {
        match state.route {
            Route::Echo => {
                let _ = res.send(200, &[], &state.body);
            }
            Route::PanicAtEnd => {
                self.seen.panics.fetch_add(1, Ordering::SeqCst);
                panic!("on_body_end panics, as the test asked");
            }
            Route::None | Route::PanicInBody => {}
        }
    }
}

/// One worker (so that every connection shares it) and a short close linger.
fn config() -> Config {
    let mut config = Config::default();
    config.workers = 1;
    config.timeouts.close = Duration::from_millis(500);
    config
}

fn start(config: Config) -> (TestServer, Arc<Seen>) {
    let app = App::default();
    let seen = Arc::clone(&app.seen);
    (TestServer::with_config(config, app).unwrap(), seen)
}

#[allow(clippy::disallowed_methods)] // Tests time the server against the wall clock.
fn now() -> Instant {
    Instant::now()
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The response head to `GET /hello` (Date masked) and its body.
const HELLO_HEAD: &str =
    "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n";

/// A raw client socket that reads responses byte-exact: heads as text (with the Date value
/// masked), bodies by length, and tells a clean EOF from a reset or a timeout.
struct Client {
    stream: TcpStream,
    /// Bytes read and not yet taken.
    pending: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).unwrap())
    }

    /// A connection whose receive buffer is small and fixed (no autotuning), so that the
    /// kernel holds little of what the server sends while the client does not read.
    fn with_small_receive_buffer(addr: SocketAddr) -> Client {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        socket.set_recv_buffer_size(64 * 1024).unwrap();
        socket.connect(&addr.into()).unwrap();
        Client::from_stream(socket.into())
    }

    fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            pending: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Read more into `pending`; panics on EOF, error or timeout, naming `what` was awaited.
    fn fill(&mut self, what: &str) {
        let mut buf = [0u8; 64 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => panic!(
                "EOF while waiting for {what}; had {:?}",
                String::from_utf8_lossy(&self.pending)
            ),
            Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "{e} while waiting for {what}; had {:?}",
                String::from_utf8_lossy(&self.pending)
            ),
        }
    }

    /// The next response head, through its empty line, with the Date value masked.
    fn head(&mut self) -> String {
        let end = loop {
            if let Some(at) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            self.fill("a response head");
        };
        let head: Vec<u8> = self.pending.drain(..end).collect();
        mask_date(&String::from_utf8(head).unwrap())
    }

    /// The next `n` bytes.
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        while self.pending.len() < n {
            self.fill("a response body");
        }
        self.pending.drain(..n).collect()
    }

    /// A response framed by Content-Length (no body without one): its masked head and body.
    fn response(&mut self) -> (String, Vec<u8>) {
        let head = self.head();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |v| v.parse().unwrap());
        (head, self.bytes(len))
    }

    /// `GET /hello` on this connection must be answered byte-exact.
    fn hello(&mut self) {
        self.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        let (head, body) = self.response();
        assert_eq!(head, format!("{HELLO_HEAD}\r\n"));
        assert_eq!(body, b"hello");
    }

    /// What ends the stream after the bytes already taken: `Ok(rest)` for a clean EOF (FIN)
    /// after `rest`, `Err` for a reset or a timeout.
    fn end(&mut self) -> io::Result<Vec<u8>> {
        let mut rest = std::mem::take(&mut self.pending);
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(rest),
                Ok(n) => rest.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Everything up to the server's clean close (FIN), as text with Date values masked.
    fn until_close(&mut self) -> String {
        match self.end() {
            Ok(rest) => mask_date(&String::from_utf8(rest).unwrap()),
            Err(e) => panic!("expected the server to close after its response, got {e}"),
        }
    }

    /// The server closes the connection cleanly (FIN, not a reset) with nothing more sent.
    fn expect_clean_eof(&mut self) {
        match self.end() {
            Ok(rest) => assert!(
                rest.is_empty(),
                "bytes before EOF: {:?}",
                String::from_utf8_lossy(&rest)
            ),
            Err(e) => panic!("expected a clean EOF, got {e}"),
        }
    }

    /// Nothing at all arrives for `window` (no byte, no EOF).
    fn expect_silence(&mut self, window: Duration) {
        assert!(self.pending.is_empty());
        self.stream.set_read_timeout(Some(window)).unwrap();
        let mut buf = [0u8; 1024];
        match self.stream.read(&mut buf) {
            Err(e) if is_timeout(&e) => {}
            Ok(0) => panic!("expected silence for {window:?}, got EOF"),
            Ok(n) => panic!(
                "expected silence for {window:?}, got {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) => panic!("expected silence for {window:?}, got {e}"),
        }
        self.stream.set_read_timeout(Some(WAIT)).unwrap();
    }
}

/// `head` with the value of its Date field replaced by `<date>` (after checking its shape,
/// IMF-fixdate: 29 characters ending in GMT).
fn mask_date(head: &str) -> String {
    head.split_inclusive("\r\n")
        .map(|line| match line.strip_prefix("Date: ") {
            Some(value) => {
                let value = value.trim_end_matches("\r\n");
                assert!(
                    value.len() == 29 && value.ends_with(" GMT"),
                    "Date: {value:?}"
                );
                "Date: <date>\r\n".to_string()
            }
            None => line.to_string(),
        })
        .collect()
}

/// Wait until `read()` has not changed for `quiet` (bounded by [`WAIT`]); returns its value.
fn settled(quiet: Duration, mut read: impl FnMut() -> usize) -> usize {
    let start = now();
    let mut value = read();
    let mut since = now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let next = read();
        if next != value {
            value = next;
            since = now();
        } else if since.elapsed() >= quiet {
            return value;
        }
        assert!(start.elapsed() < WAIT, "never settled (last {value})");
    }
}

// ---- 1. max_connections ----

#[test]
fn past_max_connections_a_connection_waits_unserved_until_one_closes() {
    let mut config = config();
    config.max_connections = 2;
    let (server, _) = start(config);
    let control = server.control();
    let addr = server.addr();

    let mut a = Client::connect(addr);
    a.hello();
    let mut b = Client::connect(addr);
    b.hello();
    wait_until("two open connections", || control.stats().connections == 2);

    // The third connects (the kernel's backlog completes the handshake) but is not
    // accepted: its request gets nothing, not even a refusal, while the limit is held.
    let mut c = Client::connect(addr);
    c.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    c.expect_silence(Duration::from_millis(500));
    let stats = control.stats();
    assert_eq!((stats.accepted, stats.connections), (2, 2));
    // The connections held are still served meanwhile.
    a.hello();

    // One closes: the waiting connection is accepted and its request answered.
    drop(a);
    let (head, body) = c.response();
    assert_eq!(
        (head, body),
        (format!("{HELLO_HEAD}\r\n"), b"hello".to_vec())
    );
    wait_until("the third accepted", || control.stats().accepted == 3);

    // At the limit again (b and c): the next one waits in turn, then is served once both go.
    let mut d = Client::connect(addr);
    d.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    d.expect_silence(Duration::from_millis(300));
    b.hello();
    drop(b);
    drop(c);
    let (head, _) = d.response();
    assert_eq!(head, format!("{HELLO_HEAD}\r\n"));
    // Recovered: new connections are served as usual, two at a time.
    let mut e = Client::connect(addr);
    e.hello();
    d.hello();
    drop((d, e));
    wait_until("all closed", || control.stats().connections == 0);
    let mut f = Client::connect(addr);
    f.hello();
    wait_until("six accepted in all", || control.stats().accepted == 6);
    server.shutdown().unwrap();
}

// ---- 2. panicking handler ----

#[test]
fn a_panicking_handler_closes_only_its_own_connection() {
    let (server, seen) = start(config());
    let addr = server.addr();
    // Opened and served before any panic, kept alive throughout, on the same (only) worker.
    let mut keep = Client::connect(addr);
    keep.hello();

    let cases: [(&str, &[u8]); 3] = [
        (
            "on_request",
            b"GET /panic/request HTTP/1.1\r\nHost: t\r\n\r\n",
        ),
        (
            "on_body",
            b"POST /panic/body HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde",
        ),
        (
            "on_body_end",
            b"POST /panic/end HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde",
        ),
    ];
    for (i, (callback, request)) in cases.into_iter().enumerate() {
        let mut victim = Client::connect(addr);
        victim.hello();
        victim.send(request);
        // The connection is closed at once with nothing written: no 500 (not even the one
        // queued for an unanswered request after on_body_end), and a FIN, not a reset.
        match victim.end() {
            Ok(rest) => assert!(
                rest.is_empty(),
                "{callback}: got {:?}",
                String::from_utf8_lossy(&rest)
            ),
            Err(e) => panic!("{callback}: expected a clean close, got {e}"),
        }
        assert_eq!(seen.panics.load(Ordering::SeqCst), i + 1, "{callback}");
        // The other connection on the same worker carries on, and new ones are served.
        keep.hello();
        Client::connect(addr).hello();
    }
    // The worker survived: the shutdown joins it without a panic to report.
    server.shutdown().unwrap();
}

// ---- 3. body timeout ----

#[test]
fn a_stalled_body_gets_408_and_a_clean_close_after_the_body_timeout() {
    let mut config = config();
    config.timeouts.body = Duration::from_secs(1);
    let (server, _) = start(config);
    let mut client = Client::connect(server.addr());
    client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf-");
    let sent = now();
    let head = client.head();
    let waited = sent.elapsed();
    assert_eq!(
        head,
        "HTTP/1.1 408 Request Timeout\r\nDate: <date>\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited <= Duration::from_secs(3),
        "408 after {waited:?}, for a 1 s body timeout"
    );
    // Then a FIN (the server shuts its side down and lingers), not a reset.
    client.expect_clean_eof();
    server.shutdown().unwrap();
}

#[test]
fn a_body_trickling_within_the_body_timeout_is_not_cut() {
    let mut config = config();
    config.timeouts.body = Duration::from_secs(1);
    let (server, _) = start(config);
    let mut client = Client::connect(server.addr());
    client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n");
    let start = now();
    // One byte every 250 ms: 2.5 s in all, well past the timeout, yet never 1 s apart.
    for b in b"trickling!" {
        std::thread::sleep(Duration::from_millis(250));
        if let Err(e) = client.stream.write_all(&[*b]) {
            let sent = String::from_utf8_lossy(&client.end().unwrap_or_default()).into_owned();
            panic!(
                "cut after {:?} ({e}); the server sent {sent:?}",
                start.elapsed()
            );
        }
    }
    assert!(start.elapsed() > Duration::from_millis(2000));
    let (head, body) = client.response();
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Length: 10\r\n\r\n"
    );
    assert_eq!(body, b"trickling!");
    client.hello();
    server.shutdown().unwrap();
}

// ---- 4. drain deadline ----

#[test]
fn a_drain_answers_in_flight_requests_closes_idle_ones_and_cuts_the_rest_at_the_deadline() {
    const DEADLINE: Duration = Duration::from_secs(2);
    let mut config = config();
    config.timeouts.shutdown = DEADLINE;
    let (server, _) = start(config);
    let addr = server.addr();

    let mut idle = Client::connect(addr);
    idle.hello();
    // Two requests whose bodies are half sent. `100 Continue` shows the server has read
    // the head (the handler waits for the body), so the drain finds them in flight.
    let half = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\
                 Expect: 100-continue\r\n\r\nhalf-";
    let mut finishing = Client::connect(addr);
    let mut stuck = Client::connect(addr);
    for client in [&mut finishing, &mut stuck] {
        client.send(half);
        assert_eq!(client.head(), "HTTP/1.1 100 Continue\r\n\r\n");
    }

    let start = now();
    server.control().shutdown();

    // The idle keep-alive connection is closed at once, without a response.
    idle.expect_clean_eof();
    let idle_closed = start.elapsed();
    assert!(
        idle_closed < DEADLINE * 3 / 4,
        "idle closed after {idle_closed:?}"
    );

    // The request completed in time is answered, with Connection: close, then a FIN.
    finishing.send(b"done!");
    let (head, body) = finishing.response();
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(body, b"half-done!");
    finishing.expect_clean_eof();
    assert!(start.elapsed() < DEADLINE * 3 / 4);

    // The one never completed is cut at the deadline, not before and not never: closed
    // (FIN) with nothing written.
    stuck.expect_clean_eof();
    let cut = start.elapsed();
    assert!(
        cut >= DEADLINE * 9 / 10 && cut <= DEADLINE + Duration::from_secs(3),
        "cut after {cut:?}, for a {DEADLINE:?} drain deadline"
    );
    // The worker has ended: the join is immediate and clean.
    server.shutdown().unwrap();
}

// ---- 5. read pause under large pipelined responses ----

#[test]
fn large_pipelined_responses_pause_reading_and_all_arrive_in_order() {
    const REQUESTS: usize = 64;
    let (server, seen) = start(config());
    let control = server.control();
    let mut client = Client::with_small_receive_buffer(server.addr());
    let mut requests = Vec::new();
    for i in 0..REQUESTS {
        requests.extend_from_slice(format!("GET /big/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    }
    // 64 requests in one write (2.6 KB, taken whole by the kernel) asking for 16 MiB.
    client.send(&requests);
    wait_until("the first request", || {
        seen.big_started.load(Ordering::SeqCst) > 0
    });
    // While nothing is read, the server stops once its output is over the high-water
    // mark: it must not have run every handler and buffered all 16 MiB.
    let started = settled(Duration::from_millis(500), || {
        seen.big_started.load(Ordering::SeqCst)
    });
    let out = control.stats().bytes_out as usize;
    assert!(
        started < REQUESTS,
        "all {started} requests handled while the client read nothing ({out} bytes written)"
    );
    // What it holds is about the high-water mark plus the response that crossed it.
    let queued = (started * BIG).saturating_sub(out);
    assert!(
        queued <= Config::default().write_high_water + BIG,
        "{queued} bytes queued for a client that reads nothing"
    );

    // Now read: every response arrives, complete, in order, byte-exact.
    for i in 0..REQUESTS {
        let head = client.head();
        assert_eq!(
            head,
            format!("HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Length: {BIG}\r\n\r\n"),
            "response {i}"
        );
        let body = client.bytes(BIG);
        assert!(body == big_body(i), "response {i}: body differs");
    }
    assert_eq!(seen.big_started.load(Ordering::SeqCst), REQUESTS);
    // Nothing more, and the connection still serves.
    client.hello();
    server.shutdown().unwrap();
}

// ---- 6. HEAD and HTTP/1.0 persistence ----

#[test]
fn head_gets_the_get_headers_and_no_body_and_the_connection_goes_on() {
    let (server, _) = start(config());
    let mut client = Client::connect(server.addr());
    client.hello();
    // HEAD: the same head as GET (Content-Length of the GET body), and no body: the next
    // response on the socket starts right after the head's empty line.
    client.send(b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.head(), format!("{HELLO_HEAD}\r\n"));
    client.hello();
    // The same, pipelined: HEAD then GET then a closing GET in one write.
    client.send(
        b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /hello HTTP/1.1\r\nHost: t\r\n\r\n\
          HEAD /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let expected =
        format!("{HELLO_HEAD}\r\n{HELLO_HEAD}\r\nhello{HELLO_HEAD}Connection: close\r\n\r\n");
    assert_eq!(client.until_close(), expected);
    server.shutdown().unwrap();
}

#[test]
fn http_1_0_closes_unless_keep_alive_is_asked_for_and_says_so_when_it_stays() {
    let (server, _) = start(config());
    let addr = server.addr();

    // HTTP/1.0 without keep-alive: the response, no Connection field (closing is the
    // default there), then a clean close.
    let mut client = Client::connect(addr);
    client.send(b"GET /hello HTTP/1.0\r\n\r\n");
    assert_eq!(client.until_close(), format!("{HELLO_HEAD}\r\nhello"));

    // HTTP/1.0 with keep-alive: the response says it persists (RFC 9112 §9.3), and it does.
    let mut client = Client::connect(addr);
    for _ in 0..2 {
        client.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let (head, body) = client.response();
        assert_eq!(head, format!("{HELLO_HEAD}Connection: keep-alive\r\n\r\n"));
        assert_eq!(body, b"hello");
    }
    client.send(b"GET /hello HTTP/1.0\r\n\r\n");
    assert_eq!(client.until_close(), format!("{HELLO_HEAD}\r\nhello"));

    // HTTP/1.1 with Connection: close: the response says so, then a clean close.
    let mut client = Client::connect(addr);
    client.hello();
    client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(
        client.until_close(),
        format!("{HELLO_HEAD}Connection: close\r\n\r\nhello")
    );
    server.shutdown().unwrap();
}

// ---- 7. an answer before the body ----

#[test]
fn an_answer_before_the_body_is_complete_at_once_and_the_connection_goes_on() {
    let mut config = config();
    config.timeouts.body = Duration::from_secs(1);
    let (server, _) = start(config);
    let mut client = Client::connect(server.addr());

    // The whole response arrives while the body has not been sent, the chunked one with its
    // last chunk; then the body is read and dropped, and the connection persists.
    client.send(b"POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n");
    let (head, body) = client.response();
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\nDate: <date>\r\nContent-Length: 5\r\n\r\n"
    );
    assert_eq!(body, b"early");
    client.send(b"01234");
    client.send(b"56789");
    client.hello();

    client.send(b"POST /early-chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    let head = client.head();
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\nDate: <date>\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    assert_eq!(client.bytes(15), b"5\r\nearly\r\n0\r\n\r\n");
    client.send(b"3\r\nabc\r\n0\r\n\r\n");
    client.hello();

    // A body that stalls after the answer gets no 408 (the response is out): at the body
    // timeout the connection just closes, cleanly.
    client.send(b"POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf-");
    let (_, body) = client.response();
    assert_eq!(body, b"early");
    let stalled = now();
    client.expect_clean_eof();
    let waited = stalled.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited <= Duration::from_secs(3),
        "closed after {waited:?}, for a 1 s body timeout"
    );
    server.shutdown().unwrap();
}
