//! Request heads: the incremental [`RequestParser`], the borrowed [`Request`] view it returns, and
//! the body-framing decision of RFC 9112 §6.3.
//!
//! The parser hands complete heads to `httparse` exactly once. While a head is incomplete it
//! scans only the bytes that arrived since the previous call for the end of the head, checking
//! line limits as it goes, so a peer dripping one byte at a time costs linear, not quadratic,
//! work (the slow-drip attack of CVE-2023-43669).

use core::mem::MaybeUninit;

use super::body::BodyKind;
use super::token::{
    alnum_and, is_field_value_byte, is_tchar, list_elements, parse_decimal, trim_ows,
};
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

/// Which part of a line the scanner is in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Part {
    /// The method token (also: before the request line, where empty lines may be skipped).
    #[default]
    Method,
    /// The request target.
    Target,
    /// The protocol version.
    Version,
    /// A field name, up to its colon.
    Name,
    /// A field value, after the colon.
    Value,
}

/// Where the incremental scan stopped, so the next call resumes instead of starting over.
#[derive(Debug, Clone, Copy, Default)]
struct HeadScan {
    /// Bytes of the current head already examined.
    scanned: usize,
    /// Offset of the first byte of the line being scanned.
    line_start: usize,
    /// Offset of the first byte of the current part of the line.
    part_start: usize,
    part: Part,
    /// A non-empty first line (the request line) has been seen.
    past_request_line: bool,
    /// Field lines completed.
    fields: usize,
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
/// connection closed. Errors are reported as early as the bytes allow (a request line over its
/// limit is refused before its end arrives, a byte that cannot appear where it is is refused when
/// it arrives), and the error does not depend on how the bytes were split: the first problem in
/// byte order wins, then the checks that need the whole head.
///
/// # Background
///
/// The common case, a whole head in one read, costs one `httparse` pass plus checks per field
/// line. Only a head that arrives in pieces is scanned byte by byte, each byte once, which keeps
/// a peer dripping one byte at a time to linear work (the slow-drip attack of CVE-2023-43669).
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
    #[inline]
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

    #[inline]
    fn parse_inner<'h, 'b>(
        &mut self,
        buf: &'b [u8],
        slots: &'h mut [HeaderSlot<'b>],
    ) -> Result<Status<(usize, Request<'h, 'b>)>, ParseError> {
        // Fast path: nothing of this head has been seen before, which is the common case of a
        // whole head arriving in one read. httparse looks at it once; the scanner only runs on
        // a miss or an error.
        let fresh = self.scan.scanned == 0;
        let max_fields = slots.len().min(self.limits.max_headers);
        let head = if fresh {
            buf
        } else {
            match self.scan(buf, max_fields)? {
                Some(end) => buf.get(..end).unwrap_or_default(),
                None => return Ok(Status::Partial),
            }
        };

        let slots = slots.get_mut(..max_fields).unwrap_or_default();
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(head, slots) {
            Ok(httparse::Status::Complete(len)) => match self.validate(buf, len, req) {
                Ok(request) => {
                    if !fresh {
                        self.scan = HeadScan::default();
                    }
                    Ok(Status::Complete((len, request)))
                }
                Err(e) => Err(self.first_error(buf, len, max_fields).unwrap_or(e)),
            },
            Ok(httparse::Status::Partial) if fresh => match self.scan(buf, max_fields)? {
                // httparse found no end of head where the scanner found one: the line
                // structure is broken in a way only httparse noticed.
                Some(_) => Err(ParseError::InvalidRequestLine),
                None => Ok(Status::Partial),
            },
            Ok(httparse::Status::Partial) => Err(ParseError::InvalidRequestLine),
            Err(e) => {
                if let Some(first) = self.first_error(buf, head.len(), max_fields) {
                    return Err(first);
                }
                match map_httparse_error(e, head) {
                    Some(e) => Err(e),
                    // Undecided until the line ends: remember what was seen and wait.
                    None => match self.scan(buf, max_fields)? {
                        Some(_) => Err(ParseError::InvalidVersion),
                        None => Ok(Status::Partial),
                    },
                }
            }
        }
    }

    /// The error a byte-by-byte scan of `buf[..end]` from the start finds first, if any. This
    /// is what a peer sending the same bytes in pieces would have been told.
    #[cold]
    #[inline(never)]
    fn first_error(&self, buf: &[u8], end: usize, max_fields: usize) -> Option<ParseError> {
        let mut fresh = RequestParser::new(&self.limits);
        fresh
            .scan(buf.get(..end).unwrap_or_default(), max_fields)
            .err()
    }

    /// Scan `buf` from where the previous call stopped, one byte at a time: the head's size,
    /// line endings, each line's length and each byte's class are checked as every byte
    /// arrives, so the first error in byte order is the one reported however the bytes were
    /// split. Returns the head's length once its final empty line is in.
    #[inline(never)]
    fn scan(&mut self, buf: &[u8], max_fields: usize) -> Result<Option<usize>, ParseError> {
        let mut pos = self.scan.scanned;
        while let Some(&b) = buf.get(pos) {
            if pos >= self.limits.max_head {
                return Err(ParseError::HeadTooLarge);
            }
            let after_cr = pos.checked_sub(1).and_then(|i| buf.get(i)) == Some(&b'\r');
            match b {
                b'\n' if !after_cr => return Err(ParseError::BareNewline),
                b'\n' => {
                    let line_len = (pos - 1).saturating_sub(self.scan.line_start);
                    if line_len == 0 {
                        if self.scan.past_request_line {
                            return Ok(Some(pos + 1));
                        }
                        // An empty line before the request line: RFC 9112 §2.2 lets a server
                        // skip it.
                    } else {
                        if self.scan.past_request_line {
                            self.scan.fields += 1;
                            if self.scan.fields > max_fields {
                                return Err(ParseError::TooManyHeaders);
                            }
                        }
                        self.scan.past_request_line = true;
                        self.scan.part = Part::Name;
                    }
                    self.scan.line_start = pos + 1;
                    self.scan.part_start = pos + 1;
                }
                _ if after_cr => return Err(ParseError::BareNewline),
                // Its LF is checked with the next byte.
                b'\r' => self.line_end(buf, pos)?,
                _ => {
                    self.check_line(pos + 1 - self.scan.line_start)?;
                    self.classify(buf, b, pos)?;
                }
            }
            pos += 1;
        }
        self.scan.scanned = buf.len();
        Ok(None)
    }

    /// A CR: where a line may end, check what the line holds so far; anywhere else it is an
    /// error at this byte, as httparse would report it.
    fn line_end(&self, buf: &[u8], pos: usize) -> Result<(), ParseError> {
        let empty_line = pos == self.scan.line_start;
        match self.scan.part {
            Part::Method | Part::Name if empty_line => Ok(()),
            Part::Method | Part::Target => Err(ParseError::InvalidRequestLine),
            Part::Name => Err(ParseError::InvalidHeaderName),
            Part::Value => Ok(()),
            Part::Version => match buf.get(self.scan.part_start..pos).unwrap_or_default() {
                b"HTTP/1.0" | b"HTTP/1.1" => Ok(()),
                v if v.len() == VERSION_SHAPE.len() => Err(ParseError::UnsupportedVersion),
                _ => Err(ParseError::InvalidVersion),
            },
        }
    }

    /// Check one byte (not CR or LF) against the part of the line it is in, with exactly the
    /// byte classes httparse uses, so the scan never refuses what httparse accepts.
    #[inline]
    fn classify(&mut self, buf: &[u8], b: u8, pos: usize) -> Result<(), ParseError> {
        let empty = pos == self.scan.part_start;
        let next = match self.scan.part {
            Part::Method if b == b' ' && !empty => Part::Target,
            Part::Method if is_tchar(b) => Part::Method,
            Part::Method => return Err(ParseError::InvalidRequestLine),
            // The target is handed out as `&str`: httparse checks it is UTF-8 where it ends.
            Part::Target if b == b' ' && !empty => {
                let target = buf.get(self.scan.part_start..pos).unwrap_or_default();
                if core::str::from_utf8(target).is_err() {
                    return Err(ParseError::InvalidRequestLine);
                }
                Part::Version
            }
            Part::Target if (0x21..=0x7e).contains(&b) || b >= 0x80 => Part::Target,
            Part::Target => return Err(ParseError::InvalidRequestLine),
            Part::Version if fits_version_shape(pos - self.scan.part_start, b) => Part::Version,
            Part::Version => return Err(ParseError::InvalidVersion),
            Part::Name if b == b':' && !empty => Part::Value,
            Part::Name if is_tchar(b) => Part::Name,
            Part::Name => return Err(ParseError::InvalidHeaderName),
            Part::Value if is_field_value_byte(b) => Part::Value,
            Part::Value => return Err(ParseError::InvalidHeaderValue),
        };
        if next != self.scan.part {
            self.scan.part = next;
            self.scan.part_start = pos + 1;
        }
        Ok(())
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

    /// Checks httparse does not make, then the framing decision. On the fast path this is the
    /// only code besides httparse that looks at the head, so it works per line, not per byte.
    #[inline]
    fn validate<'h, 'b>(
        &self,
        buf: &'b [u8],
        len: usize,
        req: httparse::Request<'h, 'b>,
    ) -> Result<Request<'h, 'b>, ParseError> {
        if len > self.limits.max_head {
            return Err(ParseError::HeadTooLarge);
        }
        let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
            return Err(ParseError::InvalidRequestLine);
        };
        let version = match minor {
            0 => Version::Http10,
            1 => Version::Http11,
            _ => return Err(ParseError::UnsupportedVersion),
        };
        let start = offset(buf, method.as_bytes());
        // httparse requires single spaces, so the line ends 9 bytes (" HTTP/1.x") after the
        // target.
        let line_end = offset(buf, target.as_bytes()) + target.len() + 9;
        if line_end.saturating_sub(start) > self.limits.max_request_line {
            return Err(ParseError::RequestLineTooLong);
        }
        // httparse accepts a bare LF as a line ending (and rejects every other stray CR or LF),
        // so check that each LF it accepted follows a CR: the empty lines it skipped before the
        // request line, the request line's, the last line's and the head's final one (each
        // field line's is checked in `decide_framing`).
        // A head ends in LF LF at the least, so ending in CR LF CR LF covers the last two.
        let head = buf.get(..len).unwrap_or_default();
        let crlf = (start == 0 || leading_crlfs(head, start))
            && head.get(line_end) == Some(&b'\r')
            && head.ends_with(b"\r\n\r\n");
        if !crlf {
            return Err(ParseError::BareNewline);
        }
        // Origin form, by far the most common, is checked here; the rest out of line.
        if !(target.as_bytes().first() == Some(&b'/') && method != "CONNECT") {
            check_target(method, target.as_bytes())?;
        }
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

/// Are the `start` bytes before the request line all CR LF pairs (the empty lines RFC 9112
/// §2.2 lets a server skip), rather than bare LFs?
#[cold]
fn leading_crlfs(head: &[u8], start: usize) -> bool {
    head.get(..start)
        .is_some_and(|leading| leading.chunks(2).all(|pair| pair == b"\r\n"))
}

/// Offset of `part` inside `buf`. Both come from the same allocation; pointer-to-integer
/// casts are safe, and wrapping keeps a broken assumption from panicking.
#[inline]
fn offset(buf: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize)
}

/// The error httparse's `e` means for `buf`, or `None` if it cannot be decided until more
/// bytes arrive.
#[cold]
#[inline(never)]
fn map_httparse_error(e: httparse::Error, buf: &[u8]) -> Option<ParseError> {
    Some(match e {
        httparse::Error::HeaderName => ParseError::InvalidHeaderName,
        httparse::Error::HeaderValue => ParseError::InvalidHeaderValue,
        httparse::Error::NewLine => ParseError::BareNewline,
        httparse::Error::TooManyHeaders => ParseError::TooManyHeaders,
        httparse::Error::Version => return classify_version(buf),
        _ => ParseError::InvalidRequestLine,
    })
}

/// The shape of `HTTP-version`, with `0` standing for any digit.
const VERSION_SHAPE: &[u8; 8] = b"HTTP/0.0";

/// May `b` be byte `i` of an `HTTP-version`?
#[inline]
fn fits_version_shape(i: usize, b: u8) -> bool {
    match VERSION_SHAPE.get(i) {
        Some(b'0') => b.is_ascii_digit(),
        Some(&s) => b == s,
        None => false,
    }
}

/// httparse reports every version but 1.0 and 1.1 alike. A well-formed `HTTP/x.y` we do not
/// speak is a 505; anything else is a malformed request line (400). Until the request line
/// ends, a version that may still become well-formed is undecided (`None`), so the answer
/// does not depend on where the bytes were split.
///
/// ```notrust
/// HTTP-version = HTTP-name "/" DIGIT "." DIGIT
/// ```
fn classify_version(buf: &[u8]) -> Option<ParseError> {
    const SHAPE: &[u8; 8] = VERSION_SHAPE;
    let fits = |v: &[u8]| {
        v.len() <= SHAPE.len() && v.iter().enumerate().all(|(i, &b)| fits_version_shape(i, b))
    };
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let rest = buf.get(start..).unwrap_or_default();
    let line_end = rest.iter().position(|&b| b == b'\r' || b == b'\n');
    let line = rest
        .get(..line_end.unwrap_or(rest.len()))
        .unwrap_or_default();
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    match line_end {
        None if fits(version) => None,
        _ if version.len() == SHAPE.len() && fits(version) => Some(ParseError::UnsupportedVersion),
        _ => Some(ParseError::InvalidVersion),
    }
}

/// RFC 9112 §3.2: the four target forms and the methods that may use them.
///
/// ```notrust
/// request-target = origin-form / absolute-form / authority-form / asterisk-form
/// ```
#[cold]
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
static HOST_BYTE: [bool; 256] = alnum_and(b"-._~%!$&'()*+,;=:[]");

#[inline]
// A `u8` cannot index past a 256-entry table.
#[allow(clippy::indexing_slicing)]
fn is_host_byte(b: u8) -> bool {
    HOST_BYTE[usize::from(b)]
}

/// Is every byte of `value` a [host byte](is_host_byte)? Eight bytes per step without
/// branches, the last step overlapping the one before it rather than looping over a
/// remainder: a Host value is checked on every request.
#[inline]
fn is_host(value: &[u8]) -> bool {
    let Some(last) = value.last_chunk::<8>() else {
        return value.iter().fold(true, |ok, &b| ok & is_host_byte(b));
    };
    let mut ok = last.iter().fold(true, |ok, &b| ok & is_host_byte(b));
    for word in value.chunks_exact(8) {
        ok = word.iter().fold(ok, |ok, &b| ok & is_host_byte(b));
    }
    ok
}

/// `name == lower` ignoring ASCII case, for a `lower` of lowercase letters and `-`, and a
/// `name` that holds no CR (every field name and value): OR-ing 0x20 folds the case of letters
/// and maps no other byte but CR onto a letter or `-`. Compares whole words, two overlapping
/// loads per side, so with a literal `lower` it is a handful of instructions.
#[inline]
fn eq_lower(name: &[u8], lower: &[u8]) -> bool {
    const FOLD8: u64 = 0x2020_2020_2020_2020;
    const FOLD4: u32 = 0x2020_2020;
    if name.len() != lower.len() {
        return false;
    }
    if let (Some(a), Some(b), Some(c), Some(d)) = (
        name.first_chunk::<8>(),
        lower.first_chunk::<8>(),
        name.last_chunk::<8>(),
        lower.last_chunk::<8>(),
    ) {
        return (u64::from_le_bytes(*a) | FOLD8) == u64::from_le_bytes(*b)
            && (u64::from_le_bytes(*c) | FOLD8) == u64::from_le_bytes(*d);
    }
    if let (Some(a), Some(b), Some(c), Some(d)) = (
        name.first_chunk::<4>(),
        lower.first_chunk::<4>(),
        name.last_chunk::<4>(),
        lower.last_chunk::<4>(),
    ) {
        return (u32::from_le_bytes(*a) | FOLD4) == u32::from_le_bytes(*b)
            && (u32::from_le_bytes(*c) | FOLD4) == u32::from_le_bytes(*d);
    }
    name.iter().zip(lower).all(|(&a, &b)| a | 0x20 == b)
}

/// Check every field line against [`Limits::max_header_line`]. A line runs to the CRLF before
/// the next field, or before the head's final CRLF CRLF: trailing whitespace counts, exactly as
/// when the head is scanned in pieces.
#[cold]
fn check_line_lengths(
    headers: &[Header<'_>],
    buf: &[u8],
    head_len: usize,
    limits: &Limits,
) -> Result<(), ParseError> {
    for (i, h) in headers.iter().enumerate() {
        let start = offset(buf, h.name.as_bytes());
        let end = headers
            .get(i + 1)
            .map_or(head_len.saturating_sub(4), |next| {
                offset(buf, next.name.as_bytes()).saturating_sub(2)
            });
        if end.saturating_sub(start) > limits.max_header_line {
            return Err(ParseError::HeaderLineTooLong);
        }
    }
    Ok(())
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
#[inline]
fn decide_framing<'b>(
    version: Version,
    headers: &[Header<'b>],
    buf: &[u8],
    head_len: usize,
    limits: &Limits,
) -> Result<Framing<'b>, ParseError> {
    // No line can be longer than the head, so lines are measured only in heads over the limit.
    if head_len > limits.max_header_line {
        check_line_lengths(headers, buf, head_len, limits)?;
    }
    // One pass over the fields notes where the framing fields are; what they say is read after
    // it, mostly from the single line of each kind that a normal request has.
    let (mut host, mut hosts) = (None, 0u32);
    let (mut connection, mut connections) = (None, 0u32);
    let (mut transfer_encoding, mut te_lines) = (None, 0u32);
    let (mut content_lengths, mut expects) = (0u32, 0u32);
    let mut upgrade = None;
    for h in headers {
        let name = h.name.as_bytes();
        // The LF httparse accepted before this line must follow a CR. (The last line's is
        // checked with the head's end in `validate`.) Wrapping turns a start below 2 into an
        // index past the end.
        if buf.get(offset(buf, name).wrapping_sub(2)) != Some(&b'\r') {
            return Err(ParseError::BareNewline);
        }
        // Dispatch on length and first letter: one jump rejects almost every other field.
        let first = name.first().map_or(0, |&b| b | 0x20);
        match (name.len(), first) {
            (4, b'h') if eq_lower(name, b"host") => {
                hosts += 1;
                host = host.or(Some(h.value));
            }
            (10, b'c') if eq_lower(name, b"connection") => {
                connections += 1;
                connection = connection.or(Some(h.value));
            }
            (14, b'c') if eq_lower(name, b"content-length") => content_lengths += 1,
            (17, b't') if eq_lower(name, b"transfer-encoding") => {
                te_lines += 1;
                transfer_encoding = transfer_encoding.or(Some(h.value));
            }
            (6, b'e') if eq_lower(name, b"expect") => expects += 1,
            (7, b'u') if eq_lower(name, b"upgrade") => upgrade = upgrade.or(Some(h.value)),
            _ => {}
        }
    }

    match (version, hosts) {
        (_, 2..) => return Err(ParseError::DuplicateHost),
        (Version::Http11, 0) => return Err(ParseError::MissingHost),
        _ => {}
    }
    if !host.map_or(true, is_host) {
        return Err(ParseError::InvalidHost);
    }

    let (mut close, mut keep_alive, mut conn_upgrade) = (false, false, false);
    match (connections, connection) {
        // Almost every client sends exactly one option.
        (1, Some(v)) if eq_lower(v, b"keep-alive") => keep_alive = true,
        (1, Some(v)) if eq_lower(v, b"close") => close = true,
        (0, _) => {}
        _ => {
            for option in field_values(headers, "connection").flat_map(list_elements) {
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                conn_upgrade |= option.eq_ignore_ascii_case(b"upgrade");
            }
        }
    }

    let content_length = if content_lengths > 0 {
        content_length(headers)?
    } else {
        None
    };

    let mut expect_continue = false;
    if expects > 0 {
        for expectation in field_values(headers, "expect").flat_map(list_elements) {
            if !expectation.eq_ignore_ascii_case(b"100-continue") {
                return Err(ParseError::UnsupportedExpectation);
            }
            expect_continue = version == Version::Http11;
        }
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

/// The values of every field named `name` (lowercase), in order.
fn field_values<'h, 'b>(
    headers: &'h [Header<'b>],
    name: &'static str,
) -> impl Iterator<Item = &'b [u8]> + 'h {
    headers
        .iter()
        .filter(move |h| eq_lower(h.name.as_bytes(), name.as_bytes()))
        .map(|h| h.value)
}

/// The `Content-Length` of the request: every element of every line must be digits, and all of
/// them the same number (RFC 9112 §6.3, rule 5; RFC 9110 §8.6).
#[cold]
fn content_length(headers: &[Header<'_>]) -> Result<Option<u64>, ParseError> {
    let mut length = None;
    for value in field_values(headers, "content-length") {
        let mut any = false;
        for element in list_elements(value) {
            any = true;
            let n = parse_decimal(element).ok_or(ParseError::InvalidContentLength)?;
            match length {
                Some(previous) if previous != n => {
                    return Err(ParseError::ConflictingContentLength)
                }
                _ => length = Some(n),
            }
        }
        if !any {
            return Err(ParseError::InvalidContentLength);
        }
    }
    Ok(length)
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
