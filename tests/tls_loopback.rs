//! TLS over real loopback sockets, with certificates made at test time (a test CA and leaf
//! certificates from rcgen) and rustls as the client: https, wss with tungstenite, SNI, a
//! certificate reload, plaintext sent to the TLS port, and a stalled handshake.

mod util;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use berth::server::{CertSet, Config, Server, ServerHandle, TlsConfig};
use berth::testing::HowClosed;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::CertificateError;
use tungstenite::Message;

use util::tls::{ca, leaf, read_response, tls_connect, TlsStream};
use util::{assert_closed_at, now, test_config, wait_until, TestApp, WAIT};

/// One keep-alive GET; returns the status line and body of a `Content-Length` response.
fn get(stream: &mut TlsStream, path: &str) -> (String, Vec<u8>) {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    stream.flush().unwrap();
    let (head, body) = read_response(stream);
    (head.lines().next().unwrap().to_string(), body)
}

fn start_tls(config: Config, tls: &TlsConfig) -> (ServerHandle, SocketAddr) {
    let (handle, addr, _) = start_tls_seen(config, tls);
    (handle, addr)
}

fn start_tls_seen(config: Config, tls: &TlsConfig) -> (ServerHandle, SocketAddr, Arc<util::Seen>) {
    let app = TestApp::default();
    let seen = Arc::clone(&app.seen);
    let handle = Server::new(config)
        .listen_tls("127.0.0.1:0", tls)
        .unwrap()
        .spawn(app)
        .unwrap();
    let addr = handle.local_addrs()[0];
    (handle, addr, seen)
}

fn stop(handle: ServerHandle) {
    handle.shutdown();
    handle.join().unwrap();
}

#[test]
fn https_requests_are_served_over_tls_with_alpn_http11() {
    let ca = ca();
    let (cert, key) = leaf(&ca, &["a.example"]);
    let tls = TlsConfig::new(CertSet::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()).unwrap();
    let (handle, addr) = start_tls(test_config(), &tls);
    let mut stream = tls_connect(addr, &ca, "a.example").unwrap();
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    for _ in 0..3 {
        let (status, body) = get(&mut stream, "/hello");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, b"hello");
    }
    stop(handle);
}

#[test]
fn wss_echo_with_tungstenite_over_rustls() {
    let ca = ca();
    let (cert, key) = leaf(&ca, &["a.example"]);
    let tls = TlsConfig::new(CertSet::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()).unwrap();
    let (handle, addr) = start_tls(test_config(), &tls);
    let stream = tls_connect(addr, &ca, "a.example").unwrap();
    let (mut ws, response) = tungstenite::client("wss://a.example/ws", stream).unwrap();
    assert_eq!(response.status(), 101);
    ws.send(Message::text("secret")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("secret"));
    let big = vec![7u8; 1 << 20];
    ws.send(Message::binary(big.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(big));
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(e) => panic!("no close reply: {e}"),
        }
    }
    stop(handle);
}

#[test]
fn after_the_close_handshake_a_tls_session_waits_for_the_peers_close_notify() {
    let ca = ca();
    let (cert, key) = leaf(&ca, &["a.example"]);
    let tls = TlsConfig::new(CertSet::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()).unwrap();
    let mut config = test_config();
    // One worker, so that a request on another connection orders its turns after ours.
    config.workers = 1;
    // A linger longer than any wait here: a close seen in this test is never its timer.
    config.timeouts.close = 3 * WAIT;
    let (handle, addr) = start_tls(config, &tls);
    let control = handle.control();
    let stream = tls_connect(addr, &ca, "a.example").unwrap();
    let (mut ws, _) = tungstenite::client("wss://a.example/ws", stream).unwrap();
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => continue,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("no clean close: {e}"),
        }
    }
    // The server's Close, its close_notify and its FIN have all arrived, and our close_notify
    // has not been sent. A request on a second connection is served in a later turn of the
    // worker's loop than the one that sent them, and the counters published once it is
    // counted show whether the server still holds the first connection.
    let mut other = tls_connect(addr, &ca, "a.example").unwrap();
    assert_eq!(get(&mut other, "/hello").0, "HTTP/1.1 200 OK");
    wait_until("the second connection's request to be counted", || {
        control.stats().requests == 2
    });
    assert_eq!(
        control.stats().connections,
        2,
        "closed before the peer's EOF"
    );
    // So a late close_notify from here meets a socket that reads it rather than a reset, and
    // the connection ends at our EOF (not at the linger's timer).
    let mut stream = ws.into_inner();
    stream.conn.send_close_notify();
    stream.conn.complete_io(&mut stream.sock).unwrap();
    stream.sock.shutdown(std::net::Shutdown::Write).unwrap();
    wait_until("the close after the peer's EOF", || {
        control.stats().connections == 1
    });
    assert!(
        stream.sock.take_error().unwrap().is_none(),
        "the server reset the connection"
    );
    drop(other);
    stop(handle);
}

#[test]
fn sni_chooses_between_two_certificates() {
    let ca = ca();
    let (a_cert, a_key) = leaf(&ca, &["a.example"]);
    let (b_cert, b_key) = leaf(&ca, &["b.example"]);
    let set = CertSet::from_pem(a_cert.as_bytes(), a_key.as_bytes())
        .unwrap()
        .with_sni_pem("b.example", b_cert.as_bytes(), b_key.as_bytes())
        .unwrap();
    let tls = TlsConfig::new(set).unwrap();
    let (handle, addr) = start_tls(test_config(), &tls);
    let presented = |name: &str| {
        let stream = tls_connect(addr, &ca, name).unwrap();
        stream.conn.peer_certificates().unwrap()[0].to_vec()
    };
    let a_der = CertificateDer::from_pem_slice(a_cert.as_bytes()).unwrap();
    let b_der = CertificateDer::from_pem_slice(b_cert.as_bytes()).unwrap();
    assert_eq!(presented("a.example"), a_der.to_vec());
    assert_eq!(presented("b.example"), b_der.to_vec());
    // A name with no certificate of its own gets the default: a certificate from the trusted
    // CA (so the handshake got that far), which the client refuses for its name.
    let err = tls_connect(addr, &ca, "c.example").unwrap_err();
    let cause = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(
            cause,
            Some(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{err:?}"
    );
    stop(handle);
}

#[test]
fn a_reload_is_seen_by_new_connections_only() {
    let ca = ca();
    let (old_cert, old_key) = leaf(&ca, &["a.example"]);
    let (new_cert, new_key) = leaf(&ca, &["a.example"]);
    let tls = TlsConfig::new(CertSet::from_pem(old_cert.as_bytes(), old_key.as_bytes()).unwrap())
        .unwrap();
    let (handle, addr) = start_tls(test_config(), &tls);
    let old_der = CertificateDer::from_pem_slice(old_cert.as_bytes()).unwrap();
    let new_der = CertificateDer::from_pem_slice(new_cert.as_bytes()).unwrap();

    let mut before = tls_connect(addr, &ca, "a.example").unwrap();
    assert_eq!(get(&mut before, "/hello").0, "HTTP/1.1 200 OK");
    tls.reload(CertSet::from_pem(new_cert.as_bytes(), new_key.as_bytes()).unwrap());

    let mut after = tls_connect(addr, &ca, "a.example").unwrap();
    assert_eq!(after.conn.peer_certificates().unwrap()[0], new_der);
    assert_eq!(get(&mut after, "/hello").0, "HTTP/1.1 200 OK");
    // The connection opened before the reload carries on, with its certificate.
    assert_eq!(before.conn.peer_certificates().unwrap()[0], old_der);
    assert_eq!(get(&mut before, "/hello").0, "HTTP/1.1 200 OK");
    stop(handle);
}

#[test]
fn plaintext_http_on_the_tls_port_is_closed_promptly() {
    let ca = ca();
    let (cert, key) = leaf(&ca, &["a.example"]);
    let tls = TlsConfig::new(CertSet::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()).unwrap();
    let (handle, addr) = start_tls(test_config(), &tls);
    let mut raw = berth::testing::RawClient::connect(addr).unwrap();
    let from = now();
    raw.write(b"GET /hello HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .unwrap();
    // One fatal decode_error alert record (RFC 8446 §6: content type 21, two bytes: level 2,
    // description 50), never an HTTP response; then an orderly close at once, well before
    // the header timeout (10 s here).
    let end = raw.read_until_close().unwrap();
    assert!(
        matches!(
            end.bytes[..],
            [0x15, 0x03, 0x01 | 0x03, 0x00, 0x02, 0x02, 50]
        ),
        "not a fatal decode_error alert: {:x?}",
        end.bytes
    );
    assert_closed_at(
        "the plaintext client",
        &end,
        HowClosed::Fin,
        from,
        Duration::ZERO,
    );
    // The listener still serves TLS.
    let mut stream = tls_connect(addr, &ca, "a.example").unwrap();
    assert_eq!(get(&mut stream, "/hello").0, "HTTP/1.1 200 OK");
    stop(handle);
}

#[test]
fn a_handshake_that_stalls_is_closed_at_the_timeout() {
    let ca = ca();
    let (cert, key) = leaf(&ca, &["a.example"]);
    let tls = TlsConfig::new(CertSet::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()).unwrap();
    let header = Duration::from_millis(300);
    let mut config = test_config();
    config.timeouts.header = header;
    let (handle, addr) = start_tls(config, &tls);
    // The deadline runs from the accept, which follows the connect. No 408 (there is no
    // channel for it): the server closes, in order, with nothing sent.
    let from = now();
    // The first bytes of a ClientHello record, and then nothing.
    let mut stalled = berth::testing::RawClient::connect(addr).unwrap();
    stalled
        .write(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    // A client that connects and sends nothing at all fares the same.
    let silent = berth::testing::RawClient::connect(addr).unwrap();
    let ends: Vec<_> = [stalled, silent]
        .map(|mut raw| std::thread::spawn(move || raw.read_until_close().unwrap()))
        .into_iter()
        .map(|reader| reader.join().unwrap())
        .collect();
    for (what, end) in ["the stalled handshake", "the silent client"]
        .iter()
        .zip(ends)
    {
        assert!(end.bytes.is_empty(), "{what}: {:x?}", end.bytes);
        assert_closed_at(what, &end, HowClosed::Fin, from, header);
    }
    stop(handle);
}

#[test]
fn a_slow_reader_over_tls_is_held_to_the_bounded_buffers_and_closed() {
    let ca = ca();
    let (cert, key) = leaf(&ca, &["a.example"]);
    let tls = TlsConfig::new(CertSet::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()).unwrap();
    let mut config = test_config();
    config.max_write_buffer = 256 * 1024;
    config.write_high_water = 64 * 1024;
    config.timeouts.write = Duration::from_millis(300);
    let (handle, addr, seen) = start_tls_seen(config, &tls);
    // Upgrade over TLS, then never read: the server floods until its buffers are full.
    let mut stream = tls_connect(addr, &ca, "a.example").unwrap();
    stream
        .write_all(&util::upgrade_request("/ws/flood", ""))
        .unwrap();
    stream.flush().unwrap();
    util::wait_until("the slow consumer to be closed", || {
        seen.closes
            .lock()
            .unwrap()
            .iter()
            .any(|c| c == "SlowConsumer")
    });
    let max = seen.max_buffered.load(std::sync::atomic::Ordering::SeqCst);
    assert!(max > 0 && max <= 256 * 1024, "buffered {max}");
    drop(stream);
    stop(handle);
}
