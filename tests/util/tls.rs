//! TLS for the loopback tests: a certificate authority and leaf certificates made at test time
//! with rcgen, and a rustls client that trusts only that authority. Every read is bounded by
//! [`WAIT`](super::WAIT).

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use berth::server::{CertSet, TlsConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A test certificate authority.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    /// Its certificate, PEM.
    pub pem: String,
}

/// A new certificate authority.
pub fn ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "berth test CA");
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

/// A leaf certificate for `names`, signed by `ca`: (certificate PEM, key PEM).
pub fn leaf(ca: &Ca, names: &[&str]) -> (String, String) {
    let params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A server's TLS settings with one certificate for `names`, signed by `ca`.
pub fn server_tls(ca: &Ca, names: &[&str]) -> TlsConfig {
    let (cert, key) = leaf(ca, names);
    TlsConfig::new(CertSet::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()).unwrap()
}

/// A rustls client configuration trusting only `ca`, offering ALPN `http/1.1`.
pub fn client_config(ca: &Ca) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A blocking TLS client connection.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Connect to `addr` as `name` and finish the handshake, so that a refusal shows here.
pub fn tls_connect(addr: SocketAddr, ca: &Ca, name: &str) -> io::Result<TlsStream> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(super::WAIT))?;
    tcp.set_write_timeout(Some(super::WAIT))?;
    let conn = ClientConnection::new(
        client_config(ca),
        ServerName::try_from(name.to_string()).unwrap(),
    )
    .unwrap();
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// Read one `Content-Length` response and nothing after it; returns its head and body.
pub fn read_response(stream: &mut TlsStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "EOF before a whole response: {got:?}");
        got.extend_from_slice(&buf[..n]);
        let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&got[..end]).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |v| v.parse().unwrap());
        if got.len() >= end + 4 + len {
            assert_eq!(got.len(), end + 4 + len, "bytes after the response");
            return (head, got[end + 4..].to_vec());
        }
    }
}
