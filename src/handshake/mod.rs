//! The sans-I/O WebSocket opening handshake (RFC 6455 §4): validating an upgrade request and
//! answering it, subprotocol and extension offers, and the client side.
//!
//! The server side works on a [`Request`](crate::http::Request) parsed by [`crate::http`]; its
//! answer is a set of header fields for a `101` written through
//! [`ServerConn::write_head`](crate::http::ServerConn::write_head), after which the connection's
//! remaining bytes belong to a [`ws::Conn`](crate::ws::Conn). Nothing here allocates: offers are
//! parsed lazily, in one linear pass, with a bound on how many are looked at.
//!
//! ```text
//!   Request ──Upgrade::parse──► Upgrade { protocols(), extensions(), origin() }
//!                                  │ app chooses a protocol / checks the origin
//!                                  ▼
//!                 accept(protocol).headers() ──► 101 via ServerConn::write_head ──► ws::Conn
//!   refusals: HandshakeError::{status(), headers()} ──► 400 / 403 / 405 / 426
//! ```
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod accept_key;
mod client;
mod negotiate;
mod server;

use core::fmt;

pub use accept_key::{accept_key, client_key};
pub use client::{Accepted, ClientHandshake, MAX_RESPONSE_HEAD};
pub use negotiate::{ExtensionOffer, MAX_EXTENSION_ITEMS};
pub use server::{Accept, AcceptHeaders, Upgrade};

/// Why a server refuses an upgrade request. Answer with [`status`](HandshakeError::status) and
/// [`headers`](HandshakeError::headers), then close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The upgrade request's method is not GET. 405 with `Allow: GET`.
    MethodNotAllowed,
    /// The request is not HTTP/1.1. 400.
    NotHttp11,
    /// No `Upgrade: websocket` with `Connection: upgrade`. 400.
    NotAnUpgrade,
    /// The upgrade request has a body. 400.
    BodyNotAllowed,
    /// `Sec-WebSocket-Version` missing, repeated or not 13. 426 with
    /// `Sec-WebSocket-Version: 13` (RFC 6455 §4.4).
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` missing, repeated, or not base64 of 16 bytes. 400.
    InvalidKey,
    /// `Sec-WebSocket-Extensions` malformed or with too many offers or parameters. 400.
    InvalidExtensions,
    /// A `Sec-WebSocket-Protocol` element that is not a token (RFC 6455 §4.1). 400.
    InvalidProtocols,
    /// The application refused the `Origin`. 403.
    OriginRejected,
    /// The application chose a subprotocol the client did not offer (a bug in the caller). 500.
    ProtocolNotOffered,
}

impl HandshakeError {
    /// The status code of the refusal.
    ///
    /// ```
    /// use berth::handshake::HandshakeError;
    /// assert_eq!(HandshakeError::UnsupportedVersion.status(), 426);
    /// assert_eq!(HandshakeError::UnsupportedVersion.headers(), [("Sec-WebSocket-Version", &b"13"[..])]);
    /// ```
    pub const fn status(self) -> u16 {
        use HandshakeError::*;
        match self {
            MethodNotAllowed => 405,
            UnsupportedVersion => 426,
            OriginRejected => 403,
            ProtocolNotOffered => 500,
            NotHttp11 | NotAnUpgrade | BodyNotAllowed | InvalidKey | InvalidExtensions
            | InvalidProtocols => 400,
        }
    }

    /// Header fields the refusal must carry.
    pub const fn headers(self) -> &'static [(&'static str, &'static [u8])] {
        match self {
            HandshakeError::MethodNotAllowed => &[("Allow", b"GET")],
            HandshakeError::UnsupportedVersion => &[("Sec-WebSocket-Version", b"13")],
            _ => &[],
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use HandshakeError::*;
        let text = match self {
            MethodNotAllowed => "upgrade request method is not GET",
            NotHttp11 => "upgrade request is not HTTP/1.1",
            NotAnUpgrade => "not a WebSocket upgrade request",
            BodyNotAllowed => "upgrade request has a body",
            UnsupportedVersion => "unsupported Sec-WebSocket-Version",
            InvalidKey => "invalid Sec-WebSocket-Key",
            InvalidExtensions => "invalid Sec-WebSocket-Extensions",
            InvalidProtocols => "invalid Sec-WebSocket-Protocol",
            OriginRejected => "origin not allowed",
            ProtocolNotOffered => "chosen subprotocol was not offered",
        };
        write!(f, "{text} ({})", self.status())
    }
}

impl core::error::Error for HandshakeError {}

/// Why a client rejects the server's answer to its upgrade request. The connection must be
/// closed (RFC 6455 §4.1: "the client MUST Fail the WebSocket Connection").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientError {
    /// The response head is malformed or over [`MAX_RESPONSE_HEAD`].
    InvalidResponse,
    /// The status is not 101; the code is given (0 if absent).
    UnexpectedStatus(u16),
    /// No `Upgrade: websocket` with `Connection: upgrade`.
    NotAnUpgrade,
    /// `Sec-WebSocket-Accept` missing or wrong for the key sent.
    AcceptMismatch,
    /// A subprotocol that was not offered, or more than one.
    ProtocolNotOffered,
    /// An extension, when none was offered.
    ExtensionNotOffered,
    /// The host, target, a subprotocol or a header field given to
    /// [`ClientHandshake::write_request`] would make a malformed request (a caller bug).
    InvalidRequest,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ClientError::*;
        match self {
            InvalidResponse => f.write_str("malformed handshake response"),
            UnexpectedStatus(code) => write!(f, "handshake answered with status {code}"),
            NotAnUpgrade => f.write_str("handshake response does not upgrade to websocket"),
            AcceptMismatch => f.write_str("wrong Sec-WebSocket-Accept"),
            InvalidRequest => f.write_str("invalid host, target, subprotocol or header field"),
            ProtocolNotOffered => f.write_str("server chose a subprotocol that was not offered"),
            ExtensionNotOffered => f.write_str("server chose an extension that was not offered"),
        }
    }
}

impl core::error::Error for ClientError {}

#[cfg(test)]
mod tests;
