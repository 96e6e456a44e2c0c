//! The sans-I/O HTTP/1.1 server core: request heads, body framing, responses, and the
//! per-connection state machine that ties them together.
//!
//! This module never touches a socket, a clock or a thread. Input is `&[u8]` (the bytes
//! received and not yet consumed) and output is bytes appended to a caller's `Vec<u8>`; the
//! current time arrives as a [`DateCache`] the runtime keeps up to date. Parsed values borrow
//! the input, and header storage is supplied by the caller ([`header_slots`]), so the steady
//! state allocates nothing.
//!
//! Strictness is the point. RFC 9112 lets a server be lenient in places where two parsers
//! being lenient differently lets an attacker smuggle a request past one of them; berth
//! rejects those inputs, and every rejection names its status code ([`ParseError::status`]).
//!
//! ```text
//!   bytes ──► ServerConn::handle_input ──► Event::Request ─► Data* ─► End ─► (Paused)
//!                    │ RequestParser (httparse, once per head)
//!                    │ ChunkedDecoder / Content-Length
//!   app ────► write_head / write_body / write_end ──► bytes in the caller's buffer
//! ```
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod body;
mod conn;
mod error;
mod request;
mod response;
pub(crate) mod token;

pub use body::{BodyKind, Chunk, ChunkedDecoder, Trailers};
pub use conn::{Event, ServerConn};
pub use error::{ParseError, ResponseError};
pub use request::{header_slots, Header, HeaderSlot, Request, RequestParser, Version};
pub use response::{reason_phrase, DateCache, ResponseBody, ResponseHead};

pub use crate::Status;

#[cfg(test)]
mod tests;
