//! TLS for the runtime (`wss://`, `https://`), on rustls's buffered connection API.
//!
//! A [`TlsConfig`] holds the certificates a TLS listener presents: a default one and any
//! number chosen by SNI name. It is a cheap, cloneable handle: [`TlsConfig::reload`] swaps the
//! whole set, so new connections get the new certificates while existing connections keep the
//! ones they were given. The server speaks TLS 1.2 and 1.3 (rustls's safe defaults, the `ring`
//! provider) and advertises ALPN `http/1.1`.
//!
//! ```no_run
//! use berth::server::{Config, Server, TlsConfig, CertSet};
//! # use berth::server::{Handler, Responder};
//! # struct App;
//! # impl Handler for App {
//! #     type State = ();
//! #     fn on_request(&self, _: &mut (), _: &berth::http::Request<'_, '_>, res: &mut Responder<'_>) {
//! #         let _ = res.send(204, &[], b"");
//! #     }
//! # }
//! let certs = CertSet::from_pem_files("cert.pem", "key.pem")?
//!     .with_sni_pem_files("api.example.com", "api-cert.pem", "api-key.pem")?;
//! let tls = TlsConfig::new(certs)?;
//! let server = Server::new(Config::default())
//!     .listen(("0.0.0.0", 8080))?
//!     .listen_tls(("0.0.0.0", 8443), &tls)?;
//! // Later, from any thread (on SIGHUP, say): new connections get the new set.
//! tls.reload(CertSet::from_pem_files("cert.pem", "key.pem")?);
//! server.run(App)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Inside a session the TLS layer sits between the socket and the HTTP/WebSocket core: bytes
//! read are fed to `read_tls`/`process_new_packets` and the plaintext drained from `reader()`;
//! output goes to `writer()` (bounded by rustls's buffer limit, so the encrypted backlog is
//! bounded like the plaintext one) and out with `write_tls`.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why certificates could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed; the path (or "PEM data") and the cause.
    Pem(String, rustls_pki_types::pem::Error),
    /// The PEM held no certificate.
    NoCertificate(String),
    /// The key is not one rustls can sign with, or does not match the certificate.
    Key(String, rustls::Error),
    /// rustls refused the configuration.
    Config(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Pem(source, e) => write!(f, "{source}: {e}"),
            TlsError::NoCertificate(source) => write!(f, "{source}: no certificate in it"),
            TlsError::Key(source, e) => write!(f, "{source}: unusable key: {e}"),
            TlsError::Config(e) => write!(f, "TLS configuration refused: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<TlsError> for std::io::Error {
    fn from(e: TlsError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A set of certificates: a default, and others chosen by the SNI name the client sends.
#[derive(Debug, Clone, Default)]
pub struct CertSet {
    default: Option<Arc<CertifiedKey>>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

fn certified_key(
    source: &str,
    chain: Result<Vec<CertificateDer<'static>>, rustls_pki_types::pem::Error>,
    key: Result<PrivateKeyDer<'static>, rustls_pki_types::pem::Error>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = chain.map_err(|e| TlsError::Pem(source.to_string(), e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(source.to_string()));
    }
    let key = key.map_err(|e| TlsError::Pem(source.to_string(), e))?;
    CertifiedKey::from_der(chain, key, &provider())
        .map(Arc::new)
        .map_err(|e| TlsError::Key(source.to_string(), e))
}

fn from_files(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let source = format!("{} / {}", cert.display(), key.display());
    let chain = CertificateDer::pem_file_iter(cert).and_then(|iter| iter.collect());
    let key = PrivateKeyDer::from_pem_file(key);
    certified_key(&source, chain, key)
}

fn from_pem(cert: &[u8], key: &[u8]) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert).collect();
    let key = PrivateKeyDer::from_pem_slice(key);
    certified_key("PEM data", chain, key)
}

impl CertSet {
    /// A set whose default is the chain in `cert` (PEM, leaf first) with the key in `key`.
    ///
    /// # Errors
    ///
    /// A [`TlsError`] naming the files and the problem.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, TlsError> {
        Ok(CertSet {
            default: Some(from_files(cert.as_ref(), key.as_ref())?),
            by_name: HashMap::new(),
        })
    }

    /// A set whose default is the PEM chain and key given in memory.
    ///
    /// # Errors
    ///
    /// As [`CertSet::from_pem_files`].
    pub fn from_pem(cert: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        Ok(CertSet {
            default: Some(from_pem(cert, key)?),
            by_name: HashMap::new(),
        })
    }

    /// Add a certificate presented to clients that ask for `name` by SNI (case-insensitive).
    ///
    /// # Errors
    ///
    /// As [`CertSet::from_pem_files`].
    pub fn with_sni_pem_files(
        mut self,
        name: &str,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let key = from_files(cert.as_ref(), key.as_ref())?;
        self.by_name.insert(name.to_ascii_lowercase(), key);
        Ok(self)
    }

    /// Add a certificate for the SNI `name`, from PEM in memory.
    ///
    /// # Errors
    ///
    /// As [`CertSet::from_pem_files`].
    pub fn with_sni_pem(mut self, name: &str, cert: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let key = from_pem(cert, key)?;
        self.by_name.insert(name.to_ascii_lowercase(), key);
        Ok(self)
    }

    fn resolve(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        name.and_then(|n| {
            // SNI names arrive lower-cased from rustls; be safe with mixed case anyway.
            self.by_name
                .get(n)
                .or_else(|| self.by_name.get(&n.to_ascii_lowercase()))
        })
        .or(self.default.as_ref())
        .cloned()
    }
}

/// The current certificate set, swapped whole by a reload.
#[derive(Debug)]
struct Store {
    current: RwLock<Arc<CertSet>>,
}

impl ResolvesServerCert for Store {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self
            .current
            .read()
            .map(|set| Arc::clone(&set))
            .unwrap_or_else(|poisoned| Arc::clone(&poisoned.into_inner()));
        let chosen = set.resolve(hello.server_name());
        if chosen.is_none() {
            log::debug!(
                "TLS: no certificate for {:?}; refusing the handshake",
                hello.server_name()
            );
        }
        chosen
    }
}

/// The TLS settings of one or more listeners: certificates (see [`CertSet`]) and the rustls
/// server configuration. Clones share the certificates, so a reload through any clone is seen
/// by every listener using it.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    store: Arc<Store>,
    pub(crate) server: Arc<ServerConfig>,
}

impl TlsConfig {
    /// TLS 1.2 and 1.3 with rustls's safe defaults, no client certificates, ALPN `http/1.1`,
    /// presenting `certs`.
    ///
    /// # Errors
    ///
    /// [`TlsError::Config`] if rustls refuses the configuration.
    pub fn new(certs: CertSet) -> Result<Self, TlsError> {
        let store = Arc::new(Store {
            current: RwLock::new(Arc::new(certs)),
        });
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&store) as Arc<dyn ResolvesServerCert>);
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig {
            store,
            server: Arc::new(server),
        })
    }

    /// Replace the certificates: connections accepted from now on get `certs`; connections
    /// already open keep theirs.
    pub fn reload(&self, certs: CertSet) {
        let mut current = self
            .store
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = Arc::new(certs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_pair(name: &str) -> (String, String) {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (cert.cert.pem(), cert.signing_key.serialize_pem())
    }

    #[test]
    fn sni_chooses_the_named_certificate_and_falls_back_to_the_default() {
        let (a_cert, a_key) = pem_pair("a.example");
        let (b_cert, b_key) = pem_pair("b.example");
        let set = CertSet::from_pem(a_cert.as_bytes(), a_key.as_bytes())
            .unwrap()
            .with_sni_pem("B.example", b_cert.as_bytes(), b_key.as_bytes())
            .unwrap();
        let default = set.resolve(None).unwrap();
        let b = set.resolve(Some("b.example")).unwrap();
        assert!(!Arc::ptr_eq(&default, &b));
        assert!(Arc::ptr_eq(
            &set.resolve(Some("c.example")).unwrap(),
            &default
        ));
    }

    #[test]
    fn bad_pem_and_mismatched_keys_are_clear_errors() {
        let (a_cert, a_key) = pem_pair("a.example");
        let (_, b_key) = pem_pair("b.example");
        let e = CertSet::from_pem(b"not pem", a_key.as_bytes()).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate(_)), "{e}");
        let e = CertSet::from_pem(a_cert.as_bytes(), b_key.as_bytes()).unwrap_err();
        assert!(matches!(e, TlsError::Key(..)), "{e}");
        let e = CertSet::from_pem_files("missing-cert.pem", "missing-key.pem").unwrap_err();
        assert!(e.to_string().contains("missing-cert.pem"), "{e}");
    }
}
