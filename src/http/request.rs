//! Request heads: the incremental [`RequestParser`], the borrowed [`Request`] view it returns, and
//! the body-framing decision of RFC 9112 §6.3.
//!
//! The parser hands complete heads to `httparse` exactly once. While a head is incomplete it
//! scans only the bytes that arrived since the previous call for the end of the head, checking
//! line limits as it goes, so a peer dripping one byte at a time costs linear, not quadratic,
//! work (the slow-drip attack of CVE-2023-43669).

use core::mem::MaybeUninit;

use super::body::BodyKind;
use super::token::{is_tchar, list_elements, parse_decimal, trim_ows};
use super::{ParseError, Status};
use crate::Limits;

/// One header field of a parsed head: `name` and `value` borrow the receive buffer.
///
/// This is [`httparse::Header`]; `value` is raw bytes because field values may carry
/// `obs-text` (bytes 0x80-0xFF).
pub use httparse::Header;

/// Storage for one parsed [`Header`], supplied by the caller so the parser never allocates.
pub type HeaderSlot<'b> = MaybeUninit<Header<'b>>;

/// An array of `N` uninitialised header slots, cheap to create on the stack for every parse.
///
/// ```
/// let mut slots = berth::http::header_slots::<64>();
/// let mut parser = berth::http::RequestParser::new(&berth::Limits::default());
/// let status = parser.parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &mut slots)?;
/// assert!(status.is_complete());
/// # Ok::<(), berth::http::ParseError>(())
/// ```
#[inline]
pub const fn header_slots<'b, const N: usize>() -> [HeaderSlot<'b>; N] {
    [const { MaybeUninit::uninit() }; N]
}

/// The HTTP version of a request. Only HTTP/1.0 and HTTP/1.1 are accepted; any other
/// well-formed version is refused with 505.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `HTTP/1.0`: connections close after each response unless the client asks for keep-alive.
    Http10,
    /// `HTTP/1.1`: connections persist unless either side sends `Connection: close`.
    Http11,
}

/// A complete, validated request head, borrowing the receive buffer (`'b`) and the caller's
/// header slots (`'h`).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Request<'h, 'b> {
    /// The method token, case-sensitive as RFC 9110 §9.1 says (`GET`, `POST`, ...).
    pub method: &'b str,
    /// The request target exactly as sent (origin-form `/path?query` in almost every request).
    pub target: &'b str,
    /// The protocol version.
    pub version: Version,
    /// Every header field in the order received.
    pub headers: &'h [Header<'b>],
    /// How the body is framed: none, a `Content-Length`, or chunked.
    pub body: BodyKind,
    /// Whether the client allows the connection to stay open after the response: HTTP/1.1
    /// unless `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue` (ignored on HTTP/1.0, as RFC 9110 §10.1.1 says)
    /// and waits for an interim `100 Continue` before it sends the body.
    pub expect_continue: bool,
    /// The `Upgrade` value when the client asked to switch protocols: an HTTP/1.1 request with
    /// `upgrade` among its `Connection` options (RFC 9110 §7.8).
    pub upgrade: Option<&'b [u8]>,
}

impl<'b> Request<'_, 'b> {
    /// Is this a `HEAD` request, whose response carries no body?
    #[inline]
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// The value of the first header named `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The path part of the target: everything before the first `?`.
    pub fn path(&self) -> &'b str {
        self.target
            .split_once('?')
            .map_or(self.target, |(path, _)| path)
    }

    /// The query part of the target, after the first `?`, if there is one.
    pub fn query(&self) -> Option<&'b str> {
        self.target.split_once('?').map(|(_, query)| query)
    }
}

/// Where the end-of-head scan stopped, so the next call resumes instead of starting over.
#[derive(Debug, Clone, Copy, Default)]
struct HeadScan {
    /// Bytes of the current head already examined.
    scanned: usize,
    /// Offset of the first byte of the line being scanned.
    line_start: usize,
    /// A non-empty first line (the request line) has been seen.
    past_request_line: bool,
}

/// The incremental request-head parser.
///
/// Feed it the bytes received so far, starting at the first byte of the head; it answers
/// [`Status::Partial`] until the head is complete, then [`Status::Complete`] with the number of
/// bytes the head took and the [`Request`]. Between calls that return `Partial`, pass the same
/// bytes with more appended; after `Complete` the parser is ready for the next head, which
/// starts `consumed` bytes later.
///
/// # Errors
///
/// Any [`ParseError`]; the request must then be answered with [`ParseError::status`] and the
/// connection closed. Errors are reported as early as the bytes allow: a request line that
/// exceeds its limit is refused before its end arrives.
#[derive(Debug, Clone)]
pub struct RequestParser {
    limits: Limits,
    scan: HeadScan,
    /// The error this parser failed with; it is returned again until [`RequestParser::reset`].
    failed: Option<ParseError>,
}

impl RequestParser {
    /// A parser that enforces `limits`.
    pub fn new(limits: &Limits) -> Self {
        RequestParser {
            limits: *limits,
            scan: HeadScan::default(),
            failed: None,
        }
    }

    /// Has part of a head been seen, without its end?
    pub fn is_mid_head(&self) -> bool {
        self.scan.scanned > 0
    }

    /// Forget any partially scanned head and any error.
    pub fn reset(&mut self) {
        self.scan = HeadScan::default();
        self.failed = None;
    }

    /// Parse the request head at the start of `buf` into `slots`.
    ///
    /// # Errors
    ///
    /// See [the type's docs](RequestParser#errors). Once a parse has failed, every later call
    /// returns the same error until [`RequestParser::reset`].
    pub fn parse<'h, 'b>(
        &mut self,
        buf: &'b [u8],
        slots: &'h mut [HeaderSlot<'b>],
    ) -> Result<Status<(usize, Request<'h, 'b>)>, ParseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let result = self.parse_inner(buf, slots);
        if let Err(e) = result {
            self.failed = Some(e);
        }
        result
    }

    fn parse_inner<'h, 'b>(
        &mut self,
        buf: &'b [u8],
        slots: &'h mut [HeaderSlot<'b>],
    ) -> Result<Status<(usize, Request<'h, 'b>)>, ParseError> {
        // Fast path: nothing of this head has been seen before, which is the common case of a
        // whole head arriving in one read. httparse scans it once; we scan only on a miss.
        let fresh = self.scan.scanned == 0;
        let head = if fresh {
            buf
        } else {
            match self.scan(buf)? {
                Some(end) => buf.get(..end).unwrap_or_default(),
                None => return Ok(Status::Partial),
            }
        };

        let max_slots = slots.len().min(self.limits.max_headers);
        let slots = slots.get_mut(..max_slots).unwrap_or_default();
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(head, slots) {
            Ok(httparse::Status::Complete(len)) => {
                self.scan = HeadScan::default();
                let request = self.validate(buf, len, req)?;
                Ok(Status::Complete((len, request)))
            }
            Ok(httparse::Status::Partial) if fresh => match self.scan(buf)? {
                // httparse found no end of head where the scanner found one: the line
                // structure is broken in a way only httparse noticed.
                Some(_) => Err(ParseError::InvalidRequestLine),
                None => Ok(Status::Partial),
            },
            Ok(httparse::Status::Partial) => Err(ParseError::InvalidRequestLine),
            Err(e) => Err(map_httparse_error(e, buf)),
        }
    }

    /// Scan `buf` from where the previous call stopped for the empty line that ends the head.
    /// Returns the head's length once it is found.
    fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ParseError> {
        let mut pos = self.scan.scanned;
        while let Some(rel) = buf
            .get(pos..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        {
            let lf = pos + rel;
            let before = lf.checked_sub(1).and_then(|i| buf.get(i));
            if before != Some(&b'\r') {
                return Err(ParseError::BareNewline);
            }
            if lf >= self.limits.max_head {
                return Err(ParseError::HeadTooLarge);
            }
            let line_len = (lf - 1).saturating_sub(self.scan.line_start);
            self.check_line(line_len)?;
            if line_len == 0 {
                if self.scan.past_request_line {
                    return Ok(Some(lf + 1));
                }
                // An empty line before the request line: RFC 9112 §2.2 lets a server skip it.
            } else {
                self.scan.past_request_line = true;
            }
            self.scan.line_start = lf + 1;
            pos = lf + 1;
        }
        self.scan.scanned = buf.len();
        // The unfinished line: a trailing CR is not content yet.
        let tail = buf.len().saturating_sub(self.scan.line_start);
        let tail = if buf.last() == Some(&b'\r') {
            tail.saturating_sub(1)
        } else {
            tail
        };
        self.check_line(tail)?;
        if buf.len() > self.limits.max_head {
            return Err(ParseError::HeadTooLarge);
        }
        Ok(None)
    }

    fn check_line(&self, len: usize) -> Result<(), ParseError> {
        if !self.scan.past_request_line {
            if len > self.limits.max_request_line {
                return Err(ParseError::RequestLineTooLong);
            }
        } else if len > self.limits.max_header_line {
            return Err(ParseError::HeaderLineTooLong);
        }
        Ok(())
    }

    /// Checks httparse does not make, then the framing decision.
    fn validate<'h, 'b>(
        &self,
        buf: &'b [u8],
        len: usize,
        req: httparse::Request<'h, 'b>,
    ) -> Result<Request<'h, 'b>, ParseError> {
        let head = buf.get(..len).unwrap_or_default();
        if len > self.limits.max_head {
            return Err(ParseError::HeadTooLarge);
        }
        // httparse accepts a bare LF as a line ending and rejects every other stray CR or LF,
        // so the head is all CRLF exactly when it holds as many CRs as LFs.
        if !crlf_balanced(head) {
            return Err(ParseError::BareNewline);
        }
        let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
            return Err(ParseError::InvalidRequestLine);
        };
        let version = match minor {
            0 => Version::Http10,
            1 => Version::Http11,
            _ => return Err(ParseError::UnsupportedVersion),
        };
        // httparse requires single spaces, so the line ends 9 bytes (" HTTP/1.x") after the
        // target.
        let line_len = (offset(buf, target.as_bytes()) + target.len() + 9)
            .saturating_sub(offset(buf, method.as_bytes()));
        if line_len > self.limits.max_request_line {
            return Err(ParseError::RequestLineTooLong);
        }
        check_target(method, target.as_bytes())?;
        let headers: &'h [Header<'b>] = req.headers;
        let framing = decide_framing(version, headers, buf, len, &self.limits)?;
        Ok(Request {
            method,
            target,
            version,
            headers,
            body: framing.body,
            keep_alive: framing.keep_alive,
            expect_continue: framing.expect_continue,
            upgrade: framing.upgrade,
        })
    }
}

/// Does `head` hold as many CRs as LFs? Branch-free so it vectorises.
#[inline]
fn crlf_balanced(head: &[u8]) -> bool {
    let (mut cr, mut lf) = (0usize, 0usize);
    for &b in head {
        cr += usize::from(b == b'\r');
        lf += usize::from(b == b'\n');
    }
    cr == lf
}

/// Offset of `part` inside `buf`. Both come from the same allocation; pointer-to-integer
/// casts are safe, and wrapping keeps a broken assumption from panicking.
#[inline]
fn offset(buf: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize)
}

fn map_httparse_error(e: httparse::Error, buf: &[u8]) -> ParseError {
    match e {
        httparse::Error::HeaderName => ParseError::InvalidHeaderName,
        httparse::Error::HeaderValue => ParseError::InvalidHeaderValue,
        httparse::Error::NewLine => ParseError::BareNewline,
        httparse::Error::TooManyHeaders => ParseError::TooManyHeaders,
        httparse::Error::Version => classify_version(buf),
        _ => ParseError::InvalidRequestLine,
    }
}

/// httparse reports every version but 1.0 and 1.1 alike. A well-formed `HTTP/x.y` we do not
/// speak is a 505; anything else is a malformed request line (400).
fn classify_version(buf: &[u8]) -> ParseError {
    let line_end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len());
    let line = buf.get(..line_end).unwrap_or_default();
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            ParseError::UnsupportedVersion
        }
        _ => ParseError::InvalidVersion,
    }
}

/// RFC 9112 §3.2: the four target forms and the methods that may use them.
///
/// ```notrust
/// request-target = origin-form / absolute-form / authority-form / asterisk-form
/// ```
fn check_target(method: &str, target: &[u8]) -> Result<(), ParseError> {
    let ok = match target {
        [b'/', ..] => method != "CONNECT",
        b"*" => method == "OPTIONS",
        // authority-form: host ":" port, only for CONNECT.
        _ if method == "CONNECT" => target.iter().all(|&b| is_host_byte(b)),
        // absolute-form: scheme ":" hier-part; scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
        [first, ..] if first.is_ascii_alphabetic() => target
            .iter()
            .position(|&b| b == b':')
            .and_then(|colon| target.get(..colon))
            .is_some_and(|scheme| {
                scheme
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            }),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ParseError::InvalidTarget)
    }
}

/// Bytes of `uri-host [ ":" port ]` (RFC 3986 §3.2.2): unreserved, pct-encoded, sub-delims,
/// and the `:` `[` `]` of ports and IP literals.
#[inline]
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
        )
}

/// What the header fields say about the message's framing and the connection.
struct Framing<'b> {
    body: BodyKind,
    keep_alive: bool,
    expect_continue: bool,
    upgrade: Option<&'b [u8]>,
}

/// RFC 9112 §6.3 for requests, strict where leniency lets two parsers disagree about where a
/// message ends (request smuggling).
fn decide_framing<'b>(
    version: Version,
    headers: &[Header<'b>],
    buf: &[u8],
    head_len: usize,
    limits: &Limits,
) -> Result<Framing<'b>, ParseError> {
    let mut hosts = 0u32;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    let mut te_lines = 0u32;
    let (mut close, mut keep_alive, mut conn_upgrade) = (false, false, false);
    let mut expect_continue = false;
    let mut upgrade = None;

    for (i, h) in headers.iter().enumerate() {
        let name = h.name.as_bytes();
        let value = h.value;
        // The line runs to the CRLF before the next field, or before the head's final CRLF
        // CRLF: trailing whitespace counts, exactly as when the head is scanned in pieces.
        let end = headers
            .get(i + 1)
            .map_or(head_len.saturating_sub(4), |next| {
                offset(buf, next.name.as_bytes()).saturating_sub(2)
            });
        let line_len = end.saturating_sub(offset(buf, name));
        if line_len > limits.max_header_line {
            return Err(ParseError::HeaderLineTooLong);
        }
        // Dispatch on length first: one compare rejects almost every other field.
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                hosts += 1;
                if !value.iter().all(|&b| is_host_byte(b)) {
                    return Err(ParseError::InvalidHost);
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let mut any = false;
                for element in list_elements(value) {
                    any = true;
                    let n = parse_decimal(element).ok_or(ParseError::InvalidContentLength)?;
                    match content_length {
                        Some(previous) if previous != n => {
                            return Err(ParseError::ConflictingContentLength)
                        }
                        _ => content_length = Some(n),
                    }
                }
                if !any {
                    return Err(ParseError::InvalidContentLength);
                }
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                te_lines += 1;
                transfer_encoding = Some(value);
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for option in list_elements(value) {
                    close |= option.eq_ignore_ascii_case(b"close");
                    keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                    conn_upgrade |= option.eq_ignore_ascii_case(b"upgrade");
                }
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                for expectation in list_elements(value) {
                    if !expectation.eq_ignore_ascii_case(b"100-continue") {
                        return Err(ParseError::UnsupportedExpectation);
                    }
                    expect_continue = version == Version::Http11;
                }
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => {
                upgrade = upgrade.or(Some(value));
            }
            _ => {}
        }
    }

    match (version, hosts) {
        (_, 2..) => return Err(ParseError::DuplicateHost),
        (Version::Http11, 0) => return Err(ParseError::MissingHost),
        _ => {}
    }

    let body = match (transfer_encoding, content_length) {
        (Some(te), cl) => {
            if te_lines > 1 {
                return Err(ParseError::RepeatedTransferEncoding);
            }
            if cl.is_some() {
                return Err(ParseError::ContentLengthWithTransferEncoding);
            }
            if version == Version::Http10 {
                return Err(ParseError::TransferEncodingOnHttp10);
            }
            check_transfer_codings(te)?;
            BodyKind::Chunked
        }
        (None, Some(0)) | (None, None) => BodyKind::Empty,
        (None, Some(n)) if n > limits.max_body => return Err(ParseError::BodyTooLarge),
        (None, Some(n)) => BodyKind::Length(n),
    };

    Ok(Framing {
        body,
        keep_alive: match version {
            Version::Http11 => !close,
            Version::Http10 => keep_alive && !close,
        },
        expect_continue,
        upgrade: upgrade.filter(|_| conn_upgrade && version == Version::Http11),
    })
}

/// The only coding berth decodes is `chunked`, and it must come last and once.
///
/// ```notrust
/// Transfer-Encoding = #transfer-coding
/// transfer-coding   = token *( OWS ";" OWS transfer-parameter )
/// ```
fn check_transfer_codings(value: &[u8]) -> Result<(), ParseError> {
    let (mut chunked, mut last_is_chunked, mut other, mut any) = (0u32, false, false, false);
    for coding in list_elements(value) {
        any = true;
        let (name, has_params) = match coding.iter().position(|&b| b == b';') {
            Some(i) => (trim_ows(coding.get(..i).unwrap_or_default()), true),
            None => (coding, false),
        };
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(ParseError::ChunkedNotFinal);
        }
        last_is_chunked = name.eq_ignore_ascii_case(b"chunked");
        if last_is_chunked {
            if has_params {
                return Err(ParseError::ChunkedNotFinal);
            }
            chunked += 1;
        } else {
            other = true;
        }
    }
    if chunked > 1 {
        return Err(ParseError::RepeatedTransferEncoding);
    }
    if !any || !last_is_chunked {
        return Err(ParseError::ChunkedNotFinal);
    }
    if other {
        return Err(ParseError::UnsupportedTransferCoding);
    }
    Ok(())
}

#[cfg(test)]
impl RequestParser {
    /// How many bytes of the current head have been scanned (for the no-rescan test).
    pub(crate) fn scanned(&self) -> usize {
        self.scan.scanned
    }
}
