//! The sans-I/O WebSocket core (RFC 6455): frame headers, masking, messages, the close
//! handshake, and the per-connection state machine for both roles.
//!
//! Like [`crate::http`], this module never touches a socket, a clock or a thread. Received bytes
//! go into [`Conn::handle_input`] as `&mut [u8]` (they are unmasked in place) and come back as
//! [`Event`]s borrowing them; frames to send are appended to a caller's `Vec<u8>`.
//!
//! ```text
//!   bytes ──► Conn::handle_input ──► FrameHeader::decode ──► unmask ──► UTF-8 ──► Event
//!                  │ whole frame in the buffer: borrowed, no copy
//!                  │ fragments / partial frames: bounded reassembly buffer
//!   app ───► send_text / send_binary / send_ping / close ──► write_frame ──► caller's buffer
//!                  └─ poll_transmit: automatic pongs, close replies
//! ```
//!
//! [`write_frame`] is the one frame encoder, for both roles: `Conn` writes through it, and so
//! does the runtime for what it sends outside a `Conn` (messages from other threads, topic
//! publishing, keep-alive pings).
//!
//! Every way a peer can break the protocol is a [`ProtocolError`] that knows its close code
//! (1002, 1007, 1008, 1009); after one the connection stays failed.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod close;
mod conn;
mod encoder;
mod error;
mod frame;
mod mask;
mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use conn::{Config, Conn, Event, MaskSource, MessageKind, Role, Writer};
pub use encoder::write_frame;
pub use error::{ProtocolError, SendError};
pub use frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
pub use mask::{apply_mask, apply_mask_at, apply_mask_bytewise};

#[cfg(test)]
mod tests;
