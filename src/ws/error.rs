//! The WebSocket core's errors: [`ProtocolError`] when the peer broke RFC 6455 or a limit, and
//! [`SendError`] when the application misused the sending API.
//!
//! Both are `Copy + Eq` and allocation-free. Every [`ProtocolError`] knows the close code that
//! answers it ([`ProtocolError::close_code`]).

use core::fmt;

use super::CloseCode;

/// The peer sent something RFC 6455 (or a configured limit) does not allow. The connection
/// answers with a Close frame carrying [`ProtocolError::close_code`] and then closes; once
/// failed, a [`Conn`](super::Conn) keeps returning the same error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An opcode RFC 6455 reserves (3-7, 0xB-0xF). 1002.
    ReservedOpcode,
    /// An RSV bit set without an extension that defines it. 1002.
    ReservedBits,
    /// A payload length not in its shortest form (RFC 6455 §5.2: "the minimal number of bytes
    /// MUST be used"). 1002.
    NonMinimalLength,
    /// A 64-bit payload length with its most significant bit set. 1002.
    LengthOverflow,
    /// A control frame without FIN (control frames cannot be fragmented). 1002.
    FragmentedControl,
    /// A control frame payload over 125 bytes. 1002.
    ControlTooLong,
    /// A client frame without a mask (a server must fail it, RFC 6455 §5.1). 1002.
    UnmaskedFrame,
    /// A server frame with a mask (a client must fail it, RFC 6455 §5.1). 1002.
    MaskedFrame,
    /// A continuation frame with no fragmented message in progress. 1002.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is still in progress. 1002.
    ExpectedContinuation,
    /// A Close frame with a one-byte payload. 1002.
    InvalidClosePayload,
    /// A Close frame with a code that may not be sent on the wire. 1002.
    InvalidCloseCode,
    /// Text (or a close reason) that is not UTF-8, detected at the first bad byte. 1007.
    InvalidUtf8,
    /// A frame payload over [`Limits::max_frame_payload`](crate::Limits). 1009.
    FrameTooLarge,
    /// A message over [`Limits::max_message`](crate::Limits). 1009.
    MessageTooLarge,
    /// A message of more frames than [`Limits::max_fragments`](crate::Limits). 1008.
    TooManyFragments,
}

impl ProtocolError {
    /// The close code that answers this error (RFC 6455 §7.4.1).
    ///
    /// ```
    /// use berth::ws::{CloseCode, ProtocolError};
    /// assert_eq!(ProtocolError::InvalidUtf8.close_code(), CloseCode::INVALID_PAYLOAD);
    /// assert_eq!(ProtocolError::MessageTooLarge.close_code().as_u16(), 1009);
    /// ```
    pub const fn close_code(self) -> CloseCode {
        use ProtocolError::*;
        match self {
            InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            FrameTooLarge | MessageTooLarge => CloseCode::TOO_BIG,
            TooManyFragments => CloseCode::POLICY,
            ReservedOpcode
            | ReservedBits
            | NonMinimalLength
            | LengthOverflow
            | FragmentedControl
            | ControlTooLong
            | UnmaskedFrame
            | MaskedFrame
            | UnexpectedContinuation
            | ExpectedContinuation
            | InvalidClosePayload
            | InvalidCloseCode => CloseCode::PROTOCOL,
        }
    }

    fn description(self) -> &'static str {
        use ProtocolError::*;
        match self {
            ReservedOpcode => "reserved opcode",
            ReservedBits => "reserved bits set",
            NonMinimalLength => "payload length not minimally encoded",
            LengthOverflow => "64-bit payload length with the top bit set",
            FragmentedControl => "fragmented control frame",
            ControlTooLong => "control frame payload over 125 bytes",
            UnmaskedFrame => "unmasked frame from a client",
            MaskedFrame => "masked frame from a server",
            UnexpectedContinuation => "continuation frame outside a fragmented message",
            ExpectedContinuation => "new message inside a fragmented message",
            InvalidClosePayload => "close frame with a one-byte payload",
            InvalidCloseCode => "invalid close code",
            InvalidUtf8 => "invalid UTF-8 in text",
            FrameTooLarge => "frame too large",
            MessageTooLarge => "message too large",
            TooManyFragments => "too many fragments in one message",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (close {})",
            self.description(),
            self.close_code().as_u16()
        )
    }
}

impl core::error::Error for ProtocolError {}

/// The application asked for something the connection cannot send. These are caller bugs; the
/// connection state is unchanged and nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SendError {
    /// A Close frame has been sent (or the connection failed): no more data frames may follow
    /// (RFC 6455 §5.5.1).
    Closing,
    /// A control payload (ping, pong, close reason plus code) over 125 bytes.
    ControlTooLong,
    /// A close code that must not be sent: 1005, 1006, 1015, or outside the valid ranges.
    InvalidCloseCode,
    /// A fragment of a different kind than the message in progress, or a new message while a
    /// fragmented one is unfinished.
    FragmentMismatch,
    /// An unmasked header was asked of a client, which must mask every frame.
    MaskRequired,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SendError::*;
        f.write_str(match self {
            Closing => "the connection is closing",
            ControlTooLong => "control payload over 125 bytes",
            InvalidCloseCode => "this close code may not be sent",
            FragmentMismatch => "fragment does not continue the message in progress",
            MaskRequired => "a client must mask every frame",
        })
    }
}

impl core::error::Error for SendError {}
