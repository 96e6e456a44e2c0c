//! Frame encoding (RFC 6455 §5.2): the one place a frame to send is turned into bytes.
//!
//! [`write_frame`] serves both roles and every sender: [`Conn`](super::Conn) for its messages,
//! pings, pongs and Close frames, and the runtime for messages sent from other threads, topic
//! publishing (a frame encoded once, copied to every subscriber) and keep-alive pings.
//! [`Conn::data_header`](super::Conn::data_header) takes the header alone from [`header`], for
//! a vectored write.
//!
//! Sans-I/O like the rest of `ws`: a frame is appended to the caller's `Vec<u8>`, which is the
//! only memory written or allocated. The encoder writes what it is given; the rules of a
//! connection (control payloads of at most 125 bytes, fragment order, nothing after Close) are
//! checked by `Conn` before it calls in.

use super::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use super::mask::apply_mask;

/// The header of a frame this crate sends: `fin`, `opcode` and `mask` as given, the RSV bits
/// clear (no extension is negotiated yet), and `payload_len`.
#[inline]
pub(super) const fn header(
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    payload_len: u64,
) -> FrameHeader {
    FrameHeader {
        fin,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask,
        payload_len,
    }
}

/// Append one frame to `out`: its header (FIN as given, RSV bits clear, the length in its
/// minimal form), then `payload`, masked with `mask` if there is one.
///
/// The mask is the role (RFC 6455 §5.1): `None` for a server's frames; for a client's, a fresh
/// key per frame that a script cannot predict (§5.3, §10.3).
///
/// The frame is written as given. The connection's rules (a control frame carries at most 125
/// bytes and has FIN set, fragments follow their message, nothing follows Close) are
/// [`Conn`](super::Conn)'s to enforce; use it unless you track them yourself.
///
/// Only `out` grows; nothing else is allocated, so a buffer with room for the frame allocates
/// nothing.
///
/// ```
/// use berth::ws::{write_frame, OpCode};
/// let mut out = Vec::new();
/// // RFC 6455 §5.7: "Hello" as a server sends it, unmasked...
/// write_frame(OpCode::Text, true, None, b"Hello", &mut out);
/// assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
/// // ...and as a client sends it, masked.
/// out.clear();
/// write_frame(OpCode::Text, true, Some([0x37, 0xfa, 0x21, 0x3d]), b"Hello", &mut out);
/// assert_eq!(out, [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// ```
#[inline]
pub fn write_frame(
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = header(opcode, fin, mask, payload.len() as u64).encode(&mut head);
    // No `reserve` of the whole frame first: its check costs two instructions a frame (callgrind)
    // and would only save a second reallocation while the buffer is still growing.
    out.extend_from_slice(head.get(..n).unwrap_or_default());
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(out.get_mut(start..).unwrap_or_default(), key);
    }
}

#[cfg(test)]
mod tests;
