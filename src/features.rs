//! The crate's Cargo features (documentation only).
//!
//! - **`tls`** (default): TLS listeners for `https://` and `wss://` through rustls, with the
//!   `ring` provider: [`Server::listen_tls`](crate::server::Server::listen_tls),
//!   [`TlsConfig`](crate::server::TlsConfig) and [`CertSet`](crate::server::CertSet)
//!   (certificates from PEM, several chosen by SNI, reloaded without a restart). Without it the
//!   runtime serves plaintext only and does not depend on rustls.
//!
//! The sans-I/O core ([`http`](crate::http), [`ws`](crate::ws),
//! [`handshake`](crate::handshake)) has no features: it is always the same code.
