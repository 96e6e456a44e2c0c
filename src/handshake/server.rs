//! The server side of the opening handshake (RFC 6455 §4.2): validate an upgrade request and
//! build the `101 Switching Protocols` answer.

use super::accept_key::{accept_key, is_valid_key};
use super::negotiate::{
    extensions, protocols, protocols_are_tokens, ExtensionOffer, MAX_EXTENSION_ITEMS,
};
use super::HandshakeError;
use crate::http::token::list_elements;
use crate::http::{BodyKind, Header, Request, Version};

/// A validated WebSocket upgrade request, borrowing the parsed [`Request`].
///
/// ```
/// use berth::handshake::Upgrade;
/// use berth::http::{header_slots, RequestParser};
/// use berth::Status;
///
/// let raw = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
///             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///             Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// let mut slots = header_slots::<16>();
/// let mut parser = RequestParser::new(&berth::Limits::default());
/// let Status::Complete((_, req)) = parser.parse(raw, &mut slots).unwrap() else { panic!() };
/// let upgrade = Upgrade::parse(&req)?;
/// assert_eq!(upgrade.protocols().collect::<Vec<_>>(), ["chat", "superchat"]);
/// let answer = upgrade.accept(Some("chat"))?;
/// assert!(answer.headers().contains(&("Sec-WebSocket-Accept", &b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="[..])));
/// # Ok::<(), berth::handshake::HandshakeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Upgrade<'h, 'b> {
    headers: &'h [Header<'b>],
    accept: [u8; 28],
    origin: Option<&'b [u8]>,
    extensions: [Option<ExtensionOffer<'b>>; MAX_EXTENSION_ITEMS],
    extension_count: usize,
}

impl<'h, 'b> Upgrade<'h, 'b> {
    /// Check `req` against RFC 6455 §4.2.1.
    ///
    /// # Errors
    ///
    /// A [`HandshakeError`] whose [`status`](HandshakeError::status) and
    /// [`headers`](HandshakeError::headers) make the refusal.
    pub fn parse(req: &Request<'h, 'b>) -> Result<Self, HandshakeError> {
        if req.method != "GET" {
            return Err(HandshakeError::MethodNotAllowed);
        }
        if req.version != Version::Http11 {
            return Err(HandshakeError::NotHttp11);
        }
        let is_websocket = req
            .upgrade
            .is_some_and(|u| list_elements(u).any(|p| p.eq_ignore_ascii_case(b"websocket")));
        if !is_websocket {
            return Err(HandshakeError::NotAnUpgrade);
        }
        if req.body != BodyKind::Empty {
            return Err(HandshakeError::BodyNotAllowed);
        }
        let mut version = None;
        let mut key = None;
        let mut keys = 0;
        let mut origin = None;
        for h in req.headers {
            let name = h.name;
            if name.eq_ignore_ascii_case("sec-websocket-version") {
                version = match version {
                    None => Some(h.value),
                    Some(_) => Some(&b""[..]),
                };
            } else if name.eq_ignore_ascii_case("sec-websocket-key") {
                keys += 1;
                key = Some(h.value);
            } else if name.eq_ignore_ascii_case("origin") {
                origin = Some(h.value);
            }
        }
        if version != Some(&b"13"[..]) {
            return Err(HandshakeError::UnsupportedVersion);
        }
        let key = key
            .filter(|k| keys == 1 && is_valid_key(k))
            .ok_or(HandshakeError::InvalidKey)?;
        if !protocols_are_tokens(req.headers) {
            return Err(HandshakeError::InvalidProtocols);
        }
        let mut offers = [None; MAX_EXTENSION_ITEMS];
        let extension_count = extensions(req.headers, &mut offers)?;
        Ok(Upgrade {
            headers: req.headers,
            accept: accept_key(key),
            origin,
            extensions: offers,
            extension_count,
        })
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn protocols(&self) -> impl Iterator<Item = &'b str> + 'h {
        protocols(self.headers)
    }

    /// The extensions the client offered, in order.
    pub fn extensions(&self) -> impl Iterator<Item = &ExtensionOffer<'b>> {
        self.extensions.iter().take(self.extension_count).flatten()
    }

    /// The `Origin` the client sent, if any: browsers always send it. Refuse an origin you do
    /// not trust with [`HandshakeError::OriginRejected`] (403).
    pub fn origin(&self) -> Option<&'b [u8]> {
        self.origin
    }

    /// The answer that accepts the upgrade, speaking `protocol` if one was chosen.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::ProtocolNotOffered`] if `protocol` is not one the client offered: the
    /// client would fail the connection (RFC 6455 §4.1).
    pub fn accept<'a>(&'a self, protocol: Option<&'a str>) -> Result<Accept<'a>, HandshakeError> {
        if let Some(p) = protocol {
            if !self.protocols().any(|offered| offered == p) {
                return Err(HandshakeError::ProtocolNotOffered);
            }
        }
        Ok(Accept {
            accept: &self.accept,
            protocol,
        })
    }
}

/// The header fields of a `101 Switching Protocols` answer; give
/// [`headers`](Accept::headers) to [`ServerConn::write_head`](crate::http::ServerConn::write_head)
/// with status 101 (which adds `Connection: Upgrade`).
#[derive(Debug, Clone, Copy)]
pub struct Accept<'a> {
    accept: &'a [u8; 28],
    protocol: Option<&'a str>,
}

impl<'a> Accept<'a> {
    /// `Upgrade`, `Sec-WebSocket-Accept` and, if chosen, `Sec-WebSocket-Protocol`.
    pub fn headers(&self) -> AcceptHeaders<'a> {
        let mut fields = [("", &b""[..]); 3];
        fields[0] = ("Upgrade", b"websocket");
        fields[1] = ("Sec-WebSocket-Accept", &self.accept[..]);
        let len = match self.protocol {
            Some(p) => {
                fields[2] = ("Sec-WebSocket-Protocol", p.as_bytes());
                3
            }
            None => 2,
        };
        AcceptHeaders { fields, len }
    }
}

/// The header fields of an [`Accept`], as a slice through `Deref`.
#[derive(Debug, Clone, Copy)]
pub struct AcceptHeaders<'a> {
    fields: [(&'static str, &'a [u8]); 3],
    len: usize,
}

impl<'a> core::ops::Deref for AcceptHeaders<'a> {
    type Target = [(&'static str, &'a [u8])];

    fn deref(&self) -> &Self::Target {
        self.fields.get(..self.len).unwrap_or_default()
    }
}
