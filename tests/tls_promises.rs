//! TLS promises of the runtime over real loopback sockets, with rustls as the client and
//! certificates made at test time: a server-side close sends close_notify before the FIN,
//! and a peer's EOF without close_notify (between requests or in the middle of one) is
//! cleaned up like any EOF, while other connections carry on. Every wait is bounded.

mod util;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth::http::Request;
use berth::server::{Config, Control, Handler, Responder, Server, ServerHandle, TlsConfig};
use util::tls::{ca, read_response, server_tls, Ca, TlsStream};
use util::wait_until;

/// `GET /hello`: 200 `hello`; `POST /echo`: 200 with the request body, once it is whole.
#[derive(Debug, Default)]
struct App {
    /// Request heads seen.
    requests: Arc<AtomicUsize>,
}

impl Handler for App {
    type State = Vec<u8>;

    fn on_request(&self, body: &mut Vec<u8>, req: &Request<'_, '_>, res: &mut Responder<'_>) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        body.clear();
        if req.path() != "/echo" {
            let _ = res.send(200, &[], b"hello");
        }
    }

    fn on_body(&self, body: &mut Vec<u8>, data: &[u8], _: &mut Responder<'_>) {
        body.extend_from_slice(data);
    }

    fn on_body_end(&self, body: &mut Vec<u8>, res: &mut Responder<'_>) {
        if !res.is_started() {
            let _ = res.send(200, &[], body);
        }
    }
}

/// A connection to the server's `a.example` certificate, handshake done.
fn tls_connect(addr: SocketAddr, ca: &Ca) -> TlsStream {
    util::tls::tls_connect(addr, ca, "a.example").unwrap()
}

/// One keep-alive `GET /hello`, answered.
fn get(stream: &mut TlsStream) {
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .unwrap();
    let (head, body) = read_response(stream);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"hello");
}

fn start(config: Config, tls: &TlsConfig) -> (ServerHandle, SocketAddr, Arc<AtomicUsize>) {
    let app = App::default();
    let requests = Arc::clone(&app.requests);
    let handle = Server::new(config)
        .listen_tls("127.0.0.1:0", tls)
        .unwrap()
        .spawn(app)
        .unwrap();
    let addr = handle.local_addrs()[0];
    (handle, addr, requests)
}

fn config() -> Config {
    let mut config = Config::default();
    config.workers = 1;
    config.timeouts.close = Duration::from_millis(500);
    config
}

/// After the last record, the TCP stream ends with a FIN: no more bytes, no reset.
fn assert_fin(stream: &mut TlsStream) {
    let mut rest = Vec::new();
    match stream.sock.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{} bytes after close_notify", rest.len()),
        Err(e) => panic!("the TCP stream did not end with a FIN: {e}"),
    }
}

/// A request with `Connection: close` is answered, and then the server's close is a clean
/// TLS close: close_notify, then the FIN. A rustls client sees the end of the stream as
/// `Ok(0)`, not as the `UnexpectedEof` error a truncation gives.
#[test]
fn a_connection_close_over_https_ends_with_close_notify_before_the_fin() {
    let ca = ca();
    let (handle, addr, _) = start(config(), &server_tls(&ca, &["a.example"]));
    let mut stream = tls_connect(addr, &ca);
    get(&mut stream);
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (head, body) = read_response(&mut stream);
    assert!(head.contains("\r\nConnection: close"), "{head}");
    assert_eq!(body, b"hello");
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("bytes after the response: {:?}", &buf[..n]),
        Err(e) => panic!("no close_notify: {e} ({:?})", e.kind()),
    }
    assert_fin(&mut stream);
    handle.shutdown();
    handle.join().unwrap();
}

/// The keep-alive timeout closes an idle connection the same way: close_notify, then FIN.
#[test]
fn an_idle_timeout_over_https_ends_with_close_notify_before_the_fin() {
    let ca = ca();
    let mut config = config();
    config.timeouts.keep_alive = Duration::from_millis(300);
    let (handle, addr, _) = start(config, &server_tls(&ca, &["a.example"]));
    let mut stream = tls_connect(addr, &ca);
    get(&mut stream);
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("bytes on an idle connection: {:?}", &buf[..n]),
        Err(e) => panic!("no close_notify: {e} ({:?})", e.kind()),
    }
    assert_fin(&mut stream);
    handle.shutdown();
    handle.join().unwrap();
}

/// Wait until the worker has `n` connections open, and bytes_in has reached `bytes_in`.
fn wait_stats(control: &Control, n: u64, bytes_in: u64) {
    wait_until(&format!("{n} connections, {bytes_in} bytes in"), || {
        let stats = control.stats();
        stats.connections == n && stats.bytes_in >= bytes_in
    });
}

/// A TCP FIN without close_notify, from a peer between requests, or in the middle of a head
/// or a body: the server closes that connection (without a response or a close_notify of
/// its own, since no one reads them) and frees it; the worker does not panic, and a
/// keep-alive connection opened before is served throughout.
#[test]
fn a_peer_eof_without_close_notify_is_cleaned_up_between_and_during_requests() {
    let ca = ca();
    let mut config = config();
    // Far beyond the waits below: only the EOF can close these connections in time.
    config.timeouts.keep_alive = Duration::from_secs(60);
    config.timeouts.header = Duration::from_secs(60);
    config.timeouts.body = Duration::from_secs(60);
    let (handle, addr, requests) = start(config, &server_tls(&ca, &["a.example"]));
    let control = handle.control();
    let mut keeper = tls_connect(addr, &ca);
    get(&mut keeper);
    wait_stats(&control, 1, 0);

    // What is sent before the end, and how the TCP connection ends: a FIN (this side's
    // write half shut, reading on) or a reset (SO_LINGER 0).
    let whole: &[u8] = b"GET /hello HTTP/1.1\r\nHost: a.example\r\n\r\n";
    let head: &[u8] = b"GET /hel";
    let body: &[u8] =
        b"POST /echo HTTP/1.1\r\nHost: a.example\r\nContent-Length: 100\r\n\r\nten bytes.";
    let cases = [
        (whole, "FIN"),
        (whole, "RST"),
        (head, "FIN"),
        (head, "RST"),
        (body, "FIN"),
        (body, "RST"),
    ];
    for (i, (sent, end)) in cases.into_iter().enumerate() {
        let what = format!("case {i}: {:?} then {end}", String::from_utf8_lossy(sent));
        let before = control.stats();
        let heads = requests.load(Ordering::SeqCst);
        let mut stream = tls_connect(addr, &ca);
        stream.write_all(sent).unwrap();
        stream.flush().unwrap();
        if sent.ends_with(b"\r\n\r\n") {
            let (head, _) = read_response(&mut stream);
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{what}: {head}");
        }
        // The server has read every byte (and seen the head, if it is whole): the EOF comes
        // between requests or in the middle of one, not with it.
        wait_stats(&control, 2, before.bytes_in + sent.len() as u64);
        if sent.starts_with(b"POST") {
            wait_until(&what, || requests.load(Ordering::SeqCst) > heads);
        }
        match end {
            "FIN" => {
                stream.sock.shutdown(Shutdown::Write).unwrap();
                // The server closes its side too, with no response: nothing but the records
                // rustls may still owe (session tickets; close_notify or not), then the FIN.
                let mut rest = Vec::new();
                match stream.read_to_end(&mut rest) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
                    Err(e) => panic!("{what}: {e}"),
                }
                assert_eq!(String::from_utf8_lossy(&rest), "", "{what}");
                assert_fin(&mut stream);
            }
            _ => {
                socket2::SockRef::from(&stream.sock)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
                drop(stream);
            }
        }
        wait_stats(&control, 1, 0);
        get(&mut keeper);
    }
    assert_eq!(control.stats().connections, 1);
    drop(keeper);
    handle.shutdown();
    handle
        .join()
        .expect("the worker ended cleanly (no panic, no I/O error)");
}
