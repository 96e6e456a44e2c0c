//! Frame headers (RFC 6455 §5.2): decoding from received bytes and encoding into a fixed
//! 14-byte buffer.
//!
//! ```notrust
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```
//!
//! Header decoding enforces what is true of every frame (reserved opcodes, control frame rules,
//! minimal length encoding); what depends on the connection (role, extensions, fragmentation
//! state, limits) is checked by [`Conn`](super::Conn).

use super::ProtocolError;
use crate::limits::MAX_CONTROL_PAYLOAD;
use crate::Status;

/// The longest possible frame header: 2 + 8 (64-bit length) + 4 (mask key).
pub const MAX_HEADER_LEN: usize = 14;

/// A frame's opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: a text message (UTF-8).
    Text,
    /// 0x2: a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// The opcode for the low four bits `n`, or `None` for a reserved value.
    pub const fn from_u8(n: u8) -> Option<OpCode> {
        match n {
            0x0 => Some(OpCode::Continuation),
            0x1 => Some(OpCode::Text),
            0x2 => Some(OpCode::Binary),
            0x8 => Some(OpCode::Close),
            0x9 => Some(OpCode::Ping),
            0xA => Some(OpCode::Pong),
            _ => None,
        }
    }

    /// The four-bit wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Is this a control opcode (close, ping, pong)?
    pub const fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// This is the final frame of its message.
    pub fin: bool,
    /// RSV1: defined by an extension (permessage-deflate marks compressed messages with it).
    pub rsv1: bool,
    /// RSV2: no extension berth knows defines it.
    pub rsv2: bool,
    /// RSV3: no extension berth knows defines it.
    pub rsv3: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on every frame a client sends and on none a server sends.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Decode a frame header from the start of `buf`, returning its length and value.
    ///
    /// ```
    /// use berth::ws::{FrameHeader, OpCode};
    /// // RFC 6455 §5.7: a single-frame masked text message "Hello".
    /// let frame = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    /// let berth::Status::Complete((len, header)) = FrameHeader::decode(&frame)? else { panic!() };
    /// assert_eq!(len, 6);
    /// assert_eq!(header.opcode, OpCode::Text);
    /// assert_eq!(header.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
    /// assert_eq!(header.payload_len, 5);
    /// # Ok::<(), berth::ws::ProtocolError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A reserved opcode, a fragmented or over-long control frame, a non-minimal or
    /// overflowing length.
    pub fn decode(buf: &[u8]) -> Result<Status<(usize, FrameHeader)>, ProtocolError> {
        let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
            return Ok(Status::Partial);
        };
        let opcode = OpCode::from_u8(b0 & 0x0f).ok_or(ProtocolError::ReservedOpcode)?;
        let fin = b0 & 0x80 != 0;
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7f;
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolError::FragmentedControl);
            }
            if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::ControlTooLong);
            }
        }
        let (payload_len, mut pos) = match len7 {
            126 => {
                let Some(&[a, b]) = buf.get(2..4).and_then(|s| <&[u8; 2]>::try_from(s).ok()) else {
                    return Ok(Status::Partial);
                };
                let n = u16::from_be_bytes([a, b]);
                if n < 126 {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (u64::from(n), 4)
            }
            127 => {
                let Some(bytes) = buf.get(2..10).and_then(|s| <[u8; 8]>::try_from(s).ok()) else {
                    return Ok(Status::Partial);
                };
                let n = u64::from_be_bytes(bytes);
                if n >> 63 != 0 {
                    return Err(ProtocolError::LengthOverflow);
                }
                if n <= 0xffff {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (n, 10)
            }
            n => (u64::from(n), 2),
        };
        let mask = if masked {
            let Some(key) = buf
                .get(pos..pos + 4)
                .and_then(|s| <[u8; 4]>::try_from(s).ok())
            else {
                return Ok(Status::Partial);
            };
            pos += 4;
            Some(key)
        } else {
            None
        };
        Ok(Status::Complete((
            pos,
            FrameHeader {
                fin,
                rsv1: b0 & 0x40 != 0,
                rsv2: b0 & 0x20 != 0,
                rsv3: b0 & 0x10 != 0,
                opcode,
                mask,
                payload_len,
            },
        )))
    }

    /// The number of bytes this header takes on the wire.
    pub const fn encoded_len(&self) -> usize {
        let len = match self.payload_len {
            0..=125 => 2,
            126..=0xffff => 4,
            _ => 10,
        };
        if self.mask.is_some() {
            len + 4
        } else {
            len
        }
    }

    /// Encode this header into `out`, returning the number of bytes written (2 to 14), always
    /// in the minimal length form.
    ///
    /// ```
    /// use berth::ws::{FrameHeader, OpCode};
    /// let header = FrameHeader {
    ///     fin: true, rsv1: false, rsv2: false, rsv3: false,
    ///     opcode: OpCode::Binary, mask: None, payload_len: 256,
    /// };
    /// let mut out = [0u8; berth::ws::MAX_HEADER_LEN];
    /// let n = header.encode(&mut out);
    /// assert_eq!(&out[..n], &[0x82, 0x7e, 0x01, 0x00]); // RFC 6455 §5.7
    /// ```
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = u8::from(self.fin) << 7
            | u8::from(self.rsv1) << 6
            | u8::from(self.rsv2) << 5
            | u8::from(self.rsv3) << 4
            | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut pos = match self.payload_len {
            n @ 0..=125 => {
                out[1] = mask_bit | n as u8;
                2
            }
            n @ 126..=0xffff => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                4
            }
            n => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&n.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            if let Some(dst) = out.get_mut(pos..pos + 4) {
                dst.copy_from_slice(&key);
            }
            pos += 4;
        }
        pos
    }
}

#[cfg(test)]
mod tests;
