//! The HTTP core's errors: [`ParseError`] when the peer misbehaved, [`ResponseError`] when the
//! application misused the response writer.
//!
//! Both are `Copy + Eq` and allocation-free. Every [`ParseError`] knows the status code that
//! answers it on the wire ([`ParseError::status`]); after one, the connection is closed.

use core::fmt;

/// The peer sent something that is not an acceptable HTTP/1.1 request, or did not send it in
/// time.
///
/// The connection that produced it must be answered with [`ParseError::status`] (when no
/// response has started yet) and then closed: once a [`ServerConn`](super::ServerConn) has
/// failed it keeps returning the same error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseError {
    /// A line ended in a bare LF, or a CR was not followed by LF (RFC 9112 §2.2). 400.
    BareNewline,
    /// The method or request target contains a byte that is not allowed there. 400.
    InvalidRequestLine,
    /// The request target is not in a form the method allows (RFC 9112 §3.2). 400.
    InvalidTarget,
    /// The version is not `HTTP/` followed by two digits. 400.
    InvalidVersion,
    /// A well-formed version this server does not speak, such as `HTTP/2.0`. 505.
    UnsupportedVersion,
    /// A field name contains a byte that is not a token character; this includes whitespace
    /// between the name and the colon and obs-fold continuation lines (RFC 9112 §5). 400.
    InvalidHeaderName,
    /// A field value contains a control byte (RFC 9110 §5.5). 400.
    InvalidHeaderValue,
    /// An HTTP/1.1 request without a `Host` field (RFC 9112 §3.2). 400.
    MissingHost,
    /// More than one `Host` field line (RFC 9112 §3.2). 400.
    DuplicateHost,
    /// The `Host` value is not a valid `uri-host [ ":" port ]`. 400.
    InvalidHost,
    /// A `Content-Length` value that is not only digits, or does not fit in 64 bits. 400.
    InvalidContentLength,
    /// Several `Content-Length` values that differ (RFC 9112 §6.3, rule 5). 400.
    ConflictingContentLength,
    /// Both `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.1: a smuggling vector). 400.
    ContentLengthWithTransferEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 request (RFC 9112 §6.1). 400.
    TransferEncodingOnHttp10,
    /// More than one `Transfer-Encoding` field line, or `chunked` listed more than once. 400.
    RepeatedTransferEncoding,
    /// `Transfer-Encoding` whose final coding is not `chunked` (RFC 9112 §6.3, rule 4), or
    /// that is not a well-formed list of codings. 400.
    ChunkedNotFinal,
    /// A transfer coding other than `chunked`, which berth does not decode (RFC 9112 §6.1). 501.
    UnsupportedTransferCoding,
    /// An `Expect` value other than `100-continue` (RFC 9110 §10.1.1). 417.
    UnsupportedExpectation,
    /// A chunk size that is empty, not hexadecimal, or has malformed extensions. 400.
    InvalidChunkSize,
    /// A chunk size that does not fit in 64 bits. 400.
    ChunkSizeOverflow,
    /// Chunk data not followed by CRLF. 400.
    MissingChunkCrlf,
    /// A chunk-size line, extensions included, over [`Limits::max_chunk_line`](crate::Limits). 400.
    ChunkLineTooLong,
    /// A malformed trailer field line. 400.
    InvalidTrailer,
    /// A trailer section over [`Limits::max_trailers`](crate::Limits) bytes or
    /// [`Limits::max_headers`](crate::Limits) fields. 431.
    TrailersTooLarge,
    /// A request line over [`Limits::max_request_line`](crate::Limits). 414.
    RequestLineTooLong,
    /// More field lines than [`Limits::max_headers`](crate::Limits) or the header slots. 431.
    TooManyHeaders,
    /// A field line over [`Limits::max_header_line`](crate::Limits). 431.
    HeaderLineTooLong,
    /// A request head over [`Limits::max_head`](crate::Limits). 431.
    HeadTooLarge,
    /// A body over [`Limits::max_body`](crate::Limits); refused before it is read. 413.
    BodyTooLarge,
    /// The request head or body did not arrive in time. The core keeps no clock: the runtime
    /// reports a deadline that passed with
    /// [`ServerConn::handle_timeout`](super::ServerConn::handle_timeout). 408.
    Timeout,
}

impl ParseError {
    /// The status code that answers this error on the wire.
    ///
    /// ```
    /// use berth::http::ParseError;
    /// assert_eq!(ParseError::RequestLineTooLong.status(), 414);
    /// assert_eq!(ParseError::UnsupportedTransferCoding.status(), 501);
    /// ```
    pub const fn status(self) -> u16 {
        use ParseError::*;
        match self {
            UnsupportedVersion => 505,
            UnsupportedTransferCoding => 501,
            UnsupportedExpectation => 417,
            RequestLineTooLong => 414,
            BodyTooLarge => 413,
            Timeout => 408,
            TooManyHeaders | HeaderLineTooLong | HeadTooLarge | TrailersTooLarge => 431,
            BareNewline
            | InvalidRequestLine
            | InvalidTarget
            | InvalidVersion
            | InvalidHeaderName
            | InvalidHeaderValue
            | MissingHost
            | DuplicateHost
            | InvalidHost
            | InvalidContentLength
            | ConflictingContentLength
            | ContentLengthWithTransferEncoding
            | TransferEncodingOnHttp10
            | RepeatedTransferEncoding
            | ChunkedNotFinal
            | InvalidChunkSize
            | ChunkSizeOverflow
            | MissingChunkCrlf
            | ChunkLineTooLong
            | InvalidTrailer => 400,
        }
    }

    fn description(self) -> &'static str {
        use ParseError::*;
        match self {
            BareNewline => "bare CR or LF in a line ending",
            InvalidRequestLine => "invalid byte in the request line",
            InvalidTarget => "request target not in a form the method allows",
            InvalidVersion => "malformed HTTP version",
            UnsupportedVersion => "unsupported HTTP version",
            InvalidHeaderName => "invalid field name",
            InvalidHeaderValue => "invalid byte in a field value",
            MissingHost => "HTTP/1.1 request without Host",
            DuplicateHost => "more than one Host field",
            InvalidHost => "malformed Host value",
            InvalidContentLength => "malformed Content-Length",
            ConflictingContentLength => "conflicting Content-Length values",
            ContentLengthWithTransferEncoding => "both Content-Length and Transfer-Encoding",
            TransferEncodingOnHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            RepeatedTransferEncoding => "repeated Transfer-Encoding",
            ChunkedNotFinal => "Transfer-Encoding does not end in chunked",
            UnsupportedTransferCoding => "unsupported transfer coding",
            UnsupportedExpectation => "unsupported expectation",
            InvalidChunkSize => "malformed chunk size line",
            ChunkSizeOverflow => "chunk size overflows 64 bits",
            MissingChunkCrlf => "chunk data not followed by CRLF",
            ChunkLineTooLong => "chunk size line too long",
            InvalidTrailer => "malformed trailer field",
            TrailersTooLarge => "trailer section too large",
            RequestLineTooLong => "request line too long",
            TooManyHeaders => "too many header fields",
            HeaderLineTooLong => "header field line too long",
            HeadTooLarge => "request head too large",
            BodyTooLarge => "request body too large",
            Timeout => "request timed out",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.description(), self.status())
    }
}

impl core::error::Error for ParseError {}

/// The application used the response writer out of order or with values that would corrupt the
/// stream. These are bugs in the caller, not the peer's fault; the connection state is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResponseError {
    /// There is no request waiting for a response, or its response head was already written.
    NoRequest,
    /// Body bytes or the end of the body were written before a response head.
    NoResponse,
    /// The status code is not in 100..=999, or a 1xx other than 101 was given as a final status.
    InvalidStatus,
    /// A header name is not a token, or a value holds CR, LF or another control byte (which
    /// would let the value inject header lines).
    InvalidHeader,
    /// The application set a framing header (`Content-Length`, `Transfer-Encoding`,
    /// `Connection`, `Date`) that the writer owns; use [`ResponseBody`](super::ResponseBody) and
    /// [`ResponseHead::close`](super::ResponseHead) instead.
    ReservedHeader,
    /// A body was declared for a status that cannot have one (1xx, 204).
    BodyNotAllowed,
    /// More body bytes than the declared `Content-Length`.
    BodyTooLong,
    /// The body ended before the declared `Content-Length`.
    BodyTooShort,
    /// `101 Switching Protocols` for a request that did not ask to upgrade.
    NotAnUpgrade,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ResponseError::*;
        f.write_str(match self {
            NoRequest => "no request is waiting for a response head",
            NoResponse => "no response head has been written",
            InvalidStatus => "invalid status code",
            InvalidHeader => "invalid header name or value",
            ReservedHeader => "framing header set by the application",
            BodyNotAllowed => "this status cannot have a body",
            BodyTooLong => "body longer than its Content-Length",
            BodyTooShort => "body shorter than its Content-Length",
            NotAnUpgrade => "101 for a request that did not ask to upgrade",
        })
    }
}

impl core::error::Error for ResponseError {}
