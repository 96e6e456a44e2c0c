//! Every bound berth enforces on peer input, in one place.
//!
//! The sans-I/O core ([`crate::http`], [`crate::ws`]) checks each limit *before* it reserves memory or copies
//! bytes, so a hostile peer can make berth refuse a request but never make it grow without bound.
//! Each field documents its unit, its default, and the status a peer gets for exceeding it.

/// Default for [`Limits::max_request_line`]: 8 KiB, the minimum RFC 9112 §3 recommends supporting.
pub const DEFAULT_MAX_REQUEST_LINE: usize = 8 * 1024;
/// Default for [`Limits::max_headers`]: 100 field lines, as hyper's `DEFAULT_MAX_HEADERS`.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default for [`Limits::max_header_line`]: 8 KiB for one field line.
pub const DEFAULT_MAX_HEADER_LINE: usize = 8 * 1024;
/// Default for [`Limits::max_head`]: 32 KiB for a whole request head (nginx's 4 x 8 KiB).
pub const DEFAULT_MAX_HEAD: usize = 32 * 1024;
/// Default for [`Limits::max_body`]: 1 MiB of request body (nginx's `client_max_body_size`).
pub const DEFAULT_MAX_BODY: u64 = 1024 * 1024;
/// Default for [`Limits::max_chunk_line`]: 1 KiB for a chunk-size line with its extensions.
pub const DEFAULT_MAX_CHUNK_LINE: usize = 1024;
/// Default for [`Limits::max_trailers`]: 8 KiB for the trailer section of a chunked body.
pub const DEFAULT_MAX_TRAILERS: usize = 8 * 1024;

/// Default for [`Limits::max_frame_payload`]: 1 MiB for one WebSocket frame's payload.
pub const DEFAULT_MAX_FRAME_PAYLOAD: u64 = 1024 * 1024;
/// Default for [`Limits::max_message`]: 1 MiB for one reassembled WebSocket message.
pub const DEFAULT_MAX_MESSAGE: usize = 1024 * 1024;
/// Default for [`Limits::max_fragments`]: 1024 frames in one WebSocket message.
pub const DEFAULT_MAX_FRAGMENTS: u32 = 1024;
/// The largest payload a WebSocket control frame may carry (RFC 6455 §5.5); not configurable.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The bounds applied to everything a peer sends.
///
/// Build one with [`Limits::default`] and change the fields you need:
///
/// ```
/// let mut limits = berth::Limits::default();
/// limits.max_body = 16 * 1024 * 1024;
/// assert_eq!(limits.max_headers, berth::limits::DEFAULT_MAX_HEADERS);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest request line (method, target and version, without the CRLF), in bytes.
    /// Exceeding it is answered with 414 URI Too Long. Default [`DEFAULT_MAX_REQUEST_LINE`].
    pub max_request_line: usize,
    /// Most header field lines in one request head, in field lines. Exceeding it is answered
    /// with 431. The header slots the caller passes to the parser bound this too: the effective
    /// limit is the smaller of the two. Default [`DEFAULT_MAX_HEADERS`].
    pub max_headers: usize,
    /// Longest single header field line (name, colon, value and any whitespace around the
    /// value, without the CRLF), in bytes. Exceeding it is
    /// answered with 431. Default [`DEFAULT_MAX_HEADER_LINE`].
    pub max_header_line: usize,
    /// Largest request head (request line, all field lines and the empty line), in bytes.
    /// Exceeding it is answered with 431. This is also how many bytes of an incomplete head the
    /// runtime buffers for one connection. Default [`DEFAULT_MAX_HEAD`].
    pub max_head: usize,
    /// Largest request body, in bytes of decoded content. A `Content-Length` above it is
    /// answered with 413 before any of the body is read; a chunked body is refused with 413 at
    /// the first chunk that would cross it. Default [`DEFAULT_MAX_BODY`].
    pub max_body: u64,
    /// Longest chunk-size line, extensions included and the CRLF excluded, in bytes. Exceeding
    /// it is answered with 400. Default [`DEFAULT_MAX_CHUNK_LINE`].
    pub max_chunk_line: usize,
    /// Largest trailer section of a chunked body, in bytes including line endings. Exceeding it
    /// is answered with 431. Trailer fields also count against [`Limits::max_headers`].
    /// Default [`DEFAULT_MAX_TRAILERS`].
    pub max_trailers: usize,
    /// Largest WebSocket frame payload, in bytes. A frame header declaring more closes the
    /// connection with 1009 before any of the payload is read or buffered.
    /// Default [`DEFAULT_MAX_FRAME_PAYLOAD`].
    pub max_frame_payload: u64,
    /// Largest WebSocket message, in bytes of payload summed over its fragments. Exceeding it
    /// closes with 1009 as soon as a frame header shows the sum would. This also bounds the
    /// per-connection reassembly buffer. Default [`DEFAULT_MAX_MESSAGE`].
    pub max_message: usize,
    /// Most frames in one WebSocket message, in frames. Exceeding it closes with 1008: a flood
    /// of tiny (or empty) fragments costs the server work without growing the message.
    /// Default [`DEFAULT_MAX_FRAGMENTS`].
    pub max_fragments: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: DEFAULT_MAX_REQUEST_LINE,
            max_headers: DEFAULT_MAX_HEADERS,
            max_header_line: DEFAULT_MAX_HEADER_LINE,
            max_head: DEFAULT_MAX_HEAD,
            max_body: DEFAULT_MAX_BODY,
            max_chunk_line: DEFAULT_MAX_CHUNK_LINE,
            max_trailers: DEFAULT_MAX_TRAILERS,
            max_frame_payload: DEFAULT_MAX_FRAME_PAYLOAD,
            max_message: DEFAULT_MAX_MESSAGE,
            max_fragments: DEFAULT_MAX_FRAGMENTS,
        }
    }
}
