//! # berth
//!
//! HTTP/1.1 and WebSocket at the edge of your app, fast and safely, with nothing in front of it
//! but a TCP load balancer.
//!
//! berth is built in two layers. The lower layer decides what bytes mean; the upper layer moves
//! them. The lower layer — [`http`], [`ws`] and [`handshake`] — is *sans-I/O*: it never touches
//! a socket, a clock, TLS or a thread. It takes the bytes received so far and returns events and the number of
//! bytes it consumed; it writes what must be sent into a buffer the caller owns. That is what
//! lets it be tested deterministically, fuzzed without sockets, and benchmarked alone.
//!
//! ```text
//!   socket ──read──► [ receive buffer ] ──&[u8]──► http::ServerConn ──► Event::{Request, Data, End}
//!                                                        │                      │
//!                                                        │ consumed: discard     ▼
//!   socket ◄─write── [ write buffer ] ◄──Vec<u8>── write_head / write_body ◄── application
//! ```
//!
//! Every limit on what a peer may send lives in [`Limits`], and every way a peer can break the
//! protocol is an error that knows its answer: [`http::ParseError::status`],
//! [`ws::ProtocolError::close_code`], [`handshake::HandshakeError::status`]. Nothing a peer sends
//! can panic the core or make it grow without bound.
//!
//! The upper layer, [`server`], is the runtime: `mio` event loops (one per core) that read
//! sockets into buffers, hand the bytes to the core, call the application's
//! [`server::Handler`], and write what it answers. It is the only code that does I/O.
//! [`platform`] reads the hosting platform's conventions (the HTTP port, `environment.json`).
//!
//! ## Example
//!
//! Parse a request and answer it, all in memory:
//!
//! ```
//! use berth::http::{header_slots, DateCache, Event, ResponseBody, ResponseHead, ServerConn};
//!
//! let mut conn = ServerConn::new(&berth::Limits::default());
//! let date = DateCache::new(1_700_000_000);
//! let mut out = Vec::new();
//! let mut input: &[u8] = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
//!
//! loop {
//!     let mut slots = header_slots::<64>();
//!     let (used, event) = conn.handle_input(input, &mut slots)?;
//!     input = &input[used..];
//!     match event {
//!         Event::Request(req) => assert_eq!(req.target, "/"),
//!         Event::End(_) => {
//!             let head = ResponseHead {
//!                 status: 200,
//!                 headers: &[("Content-Type", b"text/plain")],
//!                 body: ResponseBody::Length(6),
//!                 close: false,
//!             };
//!             conn.write_head(&head, &date, &mut out).unwrap();
//!             conn.write_body(b"hello\n", &mut out).unwrap();
//!             conn.write_end(&mut out).unwrap();
//!         }
//!         _ => break,
//!     }
//! }
//! assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
//! # Ok::<(), berth::http::ParseError>(())
//! ```
#![deny(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unsafe_code,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]
#![cfg_attr(test, deny(warnings))]
#![doc(test(attr(deny(warnings))))]

pub mod features;
pub mod handshake;
pub mod http;
pub mod limits;
pub mod platform;
pub mod server;
pub mod testing;
pub mod ws;

pub use limits::Limits;

/// The result of feeding bytes to a push parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// The input held a complete item.
    Complete(T),
    /// The input ends before the item does: call again with more bytes. Not an error.
    Partial,
}

impl<T> Status<T> {
    /// Is this [`Status::Complete`]?
    pub fn is_complete(&self) -> bool {
        matches!(self, Status::Complete(_))
    }

    /// Is this [`Status::Partial`]?
    pub fn is_partial(&self) -> bool {
        matches!(self, Status::Partial)
    }
}

/// The README's example, compiled and run as a doctest so the README stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
