//! The client side of the opening handshake (RFC 6455 §4.1): write the upgrade request and
//! check the server's answer.

use super::accept_key::{accept_key, client_key};
use super::ClientError;
use crate::http::token::{is_tchar, list_elements};
use crate::http::HeaderSlot;
use crate::Status;

/// Largest response head the client accepts, in bytes.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// One client handshake: the key it sent and the answer it expects.
///
/// ```
/// use berth::handshake::ClientHandshake;
/// let hs = ClientHandshake::new(*b"the sample nonce");
/// let mut out = Vec::new();
/// hs.write_request("server.example.com", "/chat", &["chat"], &mut out)?;
/// assert!(out.starts_with(b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\n"));
///
/// let answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///                Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
/// let mut slots = berth::http::header_slots::<16>();
/// let berth::Status::Complete((len, accepted)) = hs.parse_response(answer, &["chat"], &mut slots)? else {
///     panic!("partial")
/// };
/// assert_eq!((len, accepted.protocol), (answer.len(), Some("chat")));
/// # Ok::<(), berth::handshake::ClientError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    key: [u8; 24],
    accept: [u8; 28],
}

/// What the server agreed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted<'b> {
    /// The subprotocol the server chose, if any.
    pub protocol: Option<&'b str>,
}

impl ClientHandshake {
    /// A handshake whose key is built from `nonce`, which must be 16 random bytes chosen
    /// afresh for each connection (RFC 6455 §4.1).
    pub fn new(nonce: [u8; 16]) -> Self {
        let key = client_key(nonce);
        ClientHandshake {
            key,
            accept: accept_key(&key),
        }
    }

    /// The `Sec-WebSocket-Key` this handshake sends.
    pub fn key(&self) -> &[u8; 24] {
        &self.key
    }

    /// Write the upgrade request for `target` on `host`, offering `protocols`.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidRequest`] if `host` or `target` is empty or holds a space or a
    /// control byte, or a protocol is not a token: written as given, they would break or
    /// inject into the request. Nothing is written then.
    pub fn write_request(
        &self,
        host: &str,
        target: &str,
        protocols: &[&str],
        out: &mut Vec<u8>,
    ) -> Result<(), ClientError> {
        self.write_request_with(host, target, protocols, &[], out)
    }

    /// As [`write_request`](ClientHandshake::write_request), with extra header fields
    /// (`Origin`, `Authorization`, cookies).
    ///
    /// # Errors
    ///
    /// As [`write_request`](ClientHandshake::write_request), and for a header name that is not
    /// a token or a value with CR, LF or another control byte other than tab.
    pub fn write_request_with(
        &self,
        host: &str,
        target: &str,
        protocols: &[&str],
        headers: &[(&str, &[u8])],
        out: &mut Vec<u8>,
    ) -> Result<(), ClientError> {
        let visible = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        let token = |s: &str| !s.is_empty() && s.bytes().all(is_tchar);
        let value = |v: &[u8]| v.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f));
        if !visible(host)
            || !visible(target)
            || !protocols.iter().all(|p| token(p))
            || !headers.iter().all(|(n, v)| token(n) && value(v))
        {
            return Err(ClientError::InvalidRequest);
        }
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(
            b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ",
        );
        out.extend_from_slice(&self.key);
        out.extend_from_slice(b"\r\n");
        for (i, p) in protocols.iter().enumerate() {
            out.extend_from_slice(if i == 0 {
                b"Sec-WebSocket-Protocol: "
            } else {
                b", "
            });
            out.extend_from_slice(p.as_bytes());
        }
        if !protocols.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
        for (name, value) in headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// Check the server's response head at the start of `buf`. `offered` is the list given to
    /// [`write_request`](ClientHandshake::write_request). The bytes after the head are
    /// WebSocket frames.
    ///
    /// # Errors
    ///
    /// A [`ClientError`] naming what the server got wrong; the connection must be closed.
    pub fn parse_response<'b>(
        &self,
        buf: &'b [u8],
        offered: &[&str],
        slots: &mut [HeaderSlot<'b>],
    ) -> Result<Status<(usize, Accepted<'b>)>, ClientError> {
        let mut res = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, buf, slots)
        {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
                return Err(ClientError::InvalidResponse)
            }
            Ok(httparse::Status::Partial) => return Ok(Status::Partial),
            Err(_) => return Err(ClientError::InvalidResponse),
        };
        if len > MAX_RESPONSE_HEAD {
            return Err(ClientError::InvalidResponse);
        }
        let status = res.code.unwrap_or(0);
        if status != 101 {
            return Err(ClientError::UnexpectedStatus(status));
        }
        let (mut upgrade, mut connection) = (false, false);
        // The accept key, if exactly one `Sec-WebSocket-Accept` field carried it: several
        // fields combine into a list (RFC 9110 §5.3), which is never the key (RFC 6455 §4.1).
        let mut accepts = 0u8;
        let mut accept_ok = false;
        let mut protocol = None;
        for h in res.headers.iter() {
            let has = |token: &[u8]| list_elements(h.value).any(|p| p.eq_ignore_ascii_case(token));
            if h.name.eq_ignore_ascii_case("upgrade") {
                upgrade |= has(b"websocket");
            } else if h.name.eq_ignore_ascii_case("connection") {
                connection |= has(b"upgrade");
            } else if h.name.eq_ignore_ascii_case("sec-websocket-accept") {
                accepts = accepts.saturating_add(1);
                accept_ok = accepts == 1 && h.value == self.accept;
            } else if h.name.eq_ignore_ascii_case("sec-websocket-protocol") {
                let p =
                    core::str::from_utf8(h.value).map_err(|_| ClientError::ProtocolNotOffered)?;
                if protocol.is_some() || !offered.contains(&p) {
                    return Err(ClientError::ProtocolNotOffered);
                }
                protocol = Some(p);
            } else if h.name.eq_ignore_ascii_case("sec-websocket-extensions") {
                return Err(ClientError::ExtensionNotOffered);
            }
        }
        if !upgrade || !connection {
            return Err(ClientError::NotAnUpgrade);
        }
        if !accept_ok {
            return Err(ClientError::AcceptMismatch);
        }
        Ok(Status::Complete((len, Accepted { protocol })))
    }
}
