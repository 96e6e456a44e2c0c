//! Request bodies: the framing a head declares ([`BodyKind`]) and the streaming
//! [`ChunkedDecoder`] for `Transfer-Encoding: chunked` (RFC 9112 §7.1).
//!
//! The decoder keeps the chunk-size line in its state as the bytes arrive, so it never asks the
//! caller to buffer a partial line and never re-reads one. Chunk data is handed out as slices of
//! the caller's buffer, without copying. Only the trailer section must arrive whole before it is
//! reported, and it is bounded by [`Limits::max_trailers`](crate::Limits).

use super::token::{is_field_value_byte, is_tchar, trim_ows};
use super::ParseError;
use crate::Limits;

/// How a request's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyKind {
    /// No body: neither `Content-Length` nor `Transfer-Encoding`, or `Content-Length: 0`.
    Empty,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// A chunked body, decoded by [`ChunkedDecoder`].
    Chunked,
}

/// One step of chunked decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk<'b> {
    /// Body bytes, borrowed from the input. More may follow.
    Data(&'b [u8]),
    /// The input ended inside the chunked framing; call again with more bytes.
    NeedData,
    /// The last chunk and the trailer section have been read: the body is complete.
    End(Trailers<'b>),
}

/// The trailer section of a chunked body: validated field lines, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trailers<'b> {
    /// The field lines, each ending in CRLF; without the final empty line.
    raw: &'b [u8],
}

impl<'b> Trailers<'b> {
    /// Is the trailer section empty (the common case)?
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The trailer fields as `(name, value)` pairs, values trimmed of surrounding whitespace.
    pub fn iter(&self) -> impl Iterator<Item = (&'b str, &'b [u8])> {
        self.raw.split(|&b| b == b'\n').filter_map(|line| {
            let line = line.strip_suffix(b"\r")?;
            let colon = line.iter().position(|&b| b == b':')?;
            let (name, value) = line.split_at_checked(colon)?;
            let name = core::str::from_utf8(name).ok()?;
            Some((name, trim_ows(value.get(1..).unwrap_or_default())))
        })
    }
}

/// Where the decoder is in the chunked grammar:
///
/// ```notrust
/// chunked-body   = *chunk last-chunk trailer-section CRLF
/// chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// chunk-size     = 1*HEXDIG
/// last-chunk     = 1*("0") [ chunk-ext ] CRLF
/// chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
/// chunk-ext-val  = token / quoted-string
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size; `any` once one has been read.
    Size { any: bool },
    /// Whitespace after the size: only `;` may follow.
    SizeWs,
    /// After `;`, before the extension name.
    ExtPre,
    /// Inside an extension name.
    ExtName,
    /// Whitespace after an extension name.
    ExtNameWs,
    /// After `=`, before the extension value.
    ExtValuePre,
    /// Inside a token extension value.
    ExtValueToken,
    /// Inside a quoted-string extension value.
    ExtValueQuoted,
    /// Just after a backslash inside a quoted string.
    ExtValueEscape,
    /// Whitespace after an extension value.
    ExtValueWs,
    /// The size line's CR was read; LF must follow.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// Chunk data ended; CR must follow.
    DataCr,
    /// Chunk data's CR was read; LF must follow.
    DataLf,
    /// After the last chunk: collecting the trailer section.
    Trailers,
    /// The body is complete.
    Done,
}

/// A streaming decoder for a chunked request body.
///
/// Call [`decode`](ChunkedDecoder::decode) with the unconsumed bytes; discard the bytes it
/// reports consumed before the next call.
///
/// ```
/// use berth::http::{Chunk, ChunkedDecoder};
/// let mut decoder = ChunkedDecoder::new(&berth::Limits::default());
/// let input = b"5\r\nhello\r\n0\r\n\r\n";
/// let (used, chunk) = decoder.decode(input)?;
/// assert_eq!(chunk, Chunk::Data(b"hello"));
/// let (_, chunk) = decoder.decode(&input[used..])?;
/// assert!(matches!(chunk, Chunk::End(trailers) if trailers.is_empty()));
/// # Ok::<(), berth::http::ParseError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Size of the chunk being read (in `Size` and extension states) or bytes left of its data.
    remaining: u64,
    /// Decoded body bytes so far, including the current chunk's declared size.
    total: u64,
    /// Bytes of the current chunk-size line so far.
    line_len: usize,
    /// Trailer section: bytes examined, start of the current line, fields seen.
    trailer_scanned: usize,
    trailer_line_start: usize,
    trailer_fields: usize,
    max_body: u64,
    max_chunk_line: usize,
    max_trailers: usize,
    max_trailer_fields: usize,
    failed: Option<ParseError>,
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body, enforcing `limits`.
    pub fn new(limits: &Limits) -> Self {
        ChunkedDecoder {
            state: State::Size { any: false },
            remaining: 0,
            total: 0,
            line_len: 0,
            trailer_scanned: 0,
            trailer_line_start: 0,
            trailer_fields: 0,
            max_body: limits.max_body,
            max_chunk_line: limits.max_chunk_line,
            max_trailers: limits.max_trailers,
            max_trailer_fields: limits.max_headers,
            failed: None,
        }
    }

    /// Has the whole body, trailers included, been decoded?
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decoded body bytes so far.
    pub fn body_len(&self) -> u64 {
        self.total.saturating_sub(if self.state == State::Data {
            self.remaining
        } else {
            0
        })
    }

    /// Decode from `buf`, returning how many bytes were consumed and what they held.
    ///
    /// At most one [`Chunk::Data`] slice is returned per call; call again with the rest.
    ///
    /// # Errors
    ///
    /// A [`ParseError`] for malformed framing or an exceeded limit. The decoder stays failed:
    /// later calls return the same error.
    pub fn decode<'b>(&mut self, buf: &'b [u8]) -> Result<(usize, Chunk<'b>), ParseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let result = self.decode_inner(buf);
        if let Err(e) = result {
            self.failed = Some(e);
        }
        result
    }

    fn decode_inner<'b>(&mut self, buf: &'b [u8]) -> Result<(usize, Chunk<'b>), ParseError> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Done => return Ok((pos, Chunk::End(Trailers::default()))),
                State::Data => {
                    let rest = buf.get(pos..).unwrap_or_default();
                    if rest.is_empty() {
                        return Ok((pos, Chunk::NeedData));
                    }
                    let n =
                        usize::try_from(self.remaining).map_or(rest.len(), |r| r.min(rest.len()));
                    let data = rest.get(..n).unwrap_or_default();
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok((pos + n, Chunk::Data(data)));
                }
                State::Trailers => {
                    let section = buf.get(pos..).unwrap_or_default();
                    return match self.scan_trailers(section)? {
                        Some((raw, len)) => {
                            self.state = State::Done;
                            Ok((pos + len, Chunk::End(Trailers { raw })))
                        }
                        None => Ok((pos, Chunk::NeedData)),
                    };
                }
                _ => {
                    let Some(&b) = buf.get(pos) else {
                        return Ok((pos, Chunk::NeedData));
                    };
                    pos += 1;
                    self.step(b)?;
                }
            }
        }
    }

    /// Advance the framing state machine by one byte outside chunk data and trailers.
    fn step(&mut self, b: u8) -> Result<(), ParseError> {
        use State::*;
        if matches!(self.state, DataCr | DataLf) {
            self.state = match (self.state, b) {
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => Size { any: false },
                _ => return Err(ParseError::MissingChunkCrlf),
            };
            self.line_len = 0;
            return Ok(());
        }
        // Every other byte belongs to a chunk-size line; its CRLF does not count.
        if self.state != SizeLf && b != b'\r' {
            self.line_len += 1;
            if self.line_len > self.max_chunk_line {
                return Err(ParseError::ChunkLineTooLong);
            }
        }
        self.state = match (self.state, b) {
            (Size { .. }, _) if b.is_ascii_hexdigit() => {
                let digit = u64::from(hex_value(b));
                self.remaining = self
                    .remaining
                    .checked_mul(16)
                    .and_then(|n| n.checked_add(digit))
                    .ok_or(ParseError::ChunkSizeOverflow)?;
                Size { any: true }
            }
            (Size { any: false }, _) => return Err(ParseError::InvalidChunkSize),
            (Size { .. } | SizeWs, b' ' | b'\t') => SizeWs,
            (Size { .. } | SizeWs | ExtNameWs | ExtValueToken | ExtValueWs, b';')
            | (ExtName, b';') => ExtPre,
            (Size { .. } | ExtName | ExtNameWs | ExtValueToken | ExtValueWs, b'\r') => SizeLf,
            (ExtPre, b' ' | b'\t') => ExtPre,
            (ExtPre | ExtName, _) if is_tchar(b) => ExtName,
            (ExtName | ExtNameWs, b' ' | b'\t') => ExtNameWs,
            (ExtName | ExtNameWs, b'=') => ExtValuePre,
            (ExtValuePre, b' ' | b'\t') => ExtValuePre,
            (ExtValuePre, b'"') => ExtValueQuoted,
            (ExtValuePre | ExtValueToken, _) if is_tchar(b) => ExtValueToken,
            (ExtValueToken | ExtValueWs, b' ' | b'\t') => ExtValueWs,
            (ExtValueQuoted, b'"') => ExtValueWs,
            (ExtValueQuoted, b'\\') => ExtValueEscape,
            (ExtValueQuoted | ExtValueEscape, _) if is_field_value_byte(b) => ExtValueQuoted,
            (SizeLf, b'\n') => {
                self.line_len = 0;
                return self.start_chunk();
            }
            (SizeLf, _) | (_, b'\n') => return Err(ParseError::BareNewline),
            _ => return Err(ParseError::InvalidChunkSize),
        };
        Ok(())
    }

    /// The size line is complete: check the body limit before reading any data.
    fn start_chunk(&mut self) -> Result<(), ParseError> {
        if self.remaining == 0 {
            self.state = State::Trailers;
            return Ok(());
        }
        self.total = self
            .total
            .checked_add(self.remaining)
            .filter(|&t| t <= self.max_body)
            .ok_or(ParseError::BodyTooLarge)?;
        self.state = State::Data;
        Ok(())
    }

    /// Look for the end of the trailer section in `section`, one byte at a time so that the
    /// first error in byte order is reported however the bytes were split. Returns the field
    /// lines and the section's length once the final empty line is in.
    fn scan_trailers<'b>(
        &mut self,
        section: &'b [u8],
    ) -> Result<Option<(&'b [u8], usize)>, ParseError> {
        let mut pos = self.trailer_scanned;
        while let Some(&b) = section.get(pos) {
            if pos >= self.max_trailers {
                return Err(ParseError::TrailersTooLarge);
            }
            let after_cr = pos.checked_sub(1).and_then(|i| section.get(i)) == Some(&b'\r');
            match b {
                b'\n' if !after_cr => return Err(ParseError::BareNewline),
                b'\n' => {
                    let line = section
                        .get(self.trailer_line_start..pos - 1)
                        .unwrap_or_default();
                    if line.is_empty() {
                        let raw = section.get(..self.trailer_line_start).unwrap_or_default();
                        return Ok(Some((raw, pos + 1)));
                    }
                    self.trailer_fields += 1;
                    if self.trailer_fields > self.max_trailer_fields {
                        return Err(ParseError::TrailersTooLarge);
                    }
                    check_field_line(line)?;
                    self.trailer_line_start = pos + 1;
                }
                _ if after_cr => return Err(ParseError::BareNewline),
                _ => {}
            }
            pos += 1;
        }
        self.trailer_scanned = section.len();
        Ok(None)
    }
}

/// ```notrust
/// field-line = field-name ":" OWS field-value OWS
/// ```
fn check_field_line(line: &[u8]) -> Result<(), ParseError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(ParseError::InvalidTrailer)?;
    let (name, value) = line
        .split_at_checked(colon)
        .ok_or(ParseError::InvalidTrailer)?;
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(ParseError::InvalidTrailer);
    }
    if !value
        .get(1..)
        .unwrap_or_default()
        .iter()
        .all(|&b| is_field_value_byte(b))
    {
        return Err(ParseError::InvalidTrailer);
    }
    Ok(())
}

#[inline]
fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
