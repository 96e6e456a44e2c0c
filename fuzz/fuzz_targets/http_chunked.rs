//! Fuzz `ChunkedDecoder::decode`.
//!
//! Two properties per input:
//!
//! - **Split invariance.** The input, taken as a chunked body, is decoded whole, in pieces whose
//!   sizes come from its first bytes, and one byte at a time. All three must give the same data,
//!   the same end (trailers, or more data needed) and the same bytes consumed, or all fail;
//!   every call consumes at most what it was given, the data never exceeds `Limits::max_body`,
//!   and a failed decoder keeps returning its error, the same one however the bytes were
//!   split. This runs under the default limits and
//!   under tight ones, so the limit checks are reachable with short inputs.
//! - **Reference.** The whole decode equals that of a reference decoder written here from
//!   RFC 9112 §7.1 and the rules berth documents, in another shape (recursive descent over the
//!   whole input): the same data, the same trailers and bytes consumed, or the same error
//!   after the same data, under both limit profiles.
//! - **Round trip.** The input, taken as a payload, is encoded as a valid chunked body (chunk
//!   sizes, hex spelling, extensions and trailers chosen from its bytes); decoding that gives
//!   back exactly the payload and the trailers.
#![no_main]

use berth::http::{Chunk, ChunkedDecoder, ParseError};
use berth::Limits;
use libfuzzer_sys::fuzz_target;

/// How a decode ended, and how many bytes it had consumed by then.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// `Chunk::End`, with the trailer fields as owned `(name, value)` pairs.
    Done {
        consumed: usize,
        trailers: Vec<(String, Vec<u8>)>,
    },
    /// All input was given and the decoder still wants more.
    NeedData { consumed: usize },
    /// An error. How much was consumed before it depends on the pieces the bytes came in: an
    /// error is reported as soon as the offending byte arrives, without a consumed count.
    Failed(ParseError),
}

/// Everything a decode produced: the body bytes of all `Data` chunks, then its end.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decoded {
    data: Vec<u8>,
    end: End,
}

/// Decode `input` as a runtime would: bytes arrive in pieces of the sizes `arrivals` yields
/// (the last piece takes whatever is left), and each call gets the bytes not yet consumed.
fn decode(limits: &Limits, input: &[u8], mut arrivals: impl Iterator<Item = usize>) -> Decoded {
    let mut decoder = ChunkedDecoder::new(limits);
    let mut arrive = |received: usize| {
        let piece = arrivals.next().unwrap_or(usize::MAX).max(1);
        received.saturating_add(piece).min(input.len())
    };
    let (mut consumed, mut received) = (0, arrive(0));
    let mut data = Vec::new();
    // Each call consumes a byte, or asks for bytes that then arrive, or ends.
    let bound = 2 * input.len() + 4;
    for _ in 0..=bound {
        let buf = &input[consumed..received];
        let (used, chunk) = match decoder.decode(buf) {
            Ok(ok) => ok,
            Err(e) => {
                assert_eq!(decoder.decode(buf), Err(e), "error not sticky");
                assert_eq!(decoder.decode(b""), Err(e), "error not sticky");
                return Decoded {
                    data,
                    end: End::Failed(e),
                };
            }
        };
        assert!(used <= buf.len(), "consumed {used} of {} bytes", buf.len());
        consumed += used;
        match chunk {
            Chunk::Data(bytes) => {
                assert!(!bytes.is_empty(), "empty Data");
                assert!(bytes.len() <= used, "Data longer than the bytes consumed");
                data.extend_from_slice(bytes);
                assert!(
                    data.len() as u64 <= limits.max_body,
                    "{} body bytes over max_body {}",
                    data.len(),
                    limits.max_body
                );
                assert_eq!(decoder.body_len(), data.len() as u64);
            }
            Chunk::NeedData if received == input.len() => {
                return Decoded {
                    data,
                    end: End::NeedData { consumed },
                }
            }
            Chunk::NeedData => received = arrive(received),
            Chunk::End(trailers) => {
                assert!(decoder.is_done());
                assert_eq!(decoder.body_len(), data.len() as u64);
                let fields: Vec<_> = trailers
                    .iter()
                    .map(|(name, value)| (name.to_owned(), value.to_owned()))
                    .collect();
                return Decoded {
                    data,
                    end: End::Done {
                        consumed,
                        trailers: fields,
                    },
                };
            }
        }
    }
    panic!("decoder made no progress in {bound} calls");
}

/// Assert two decodes of the same bytes agree exactly, errors included.
fn assert_same(whole: &Decoded, other: &Decoded, what: &str) {
    assert_eq!(whole, other, "{what}");
}

/// Piece sizes 1..=16 taken from the first bytes of `input`, cycled.
fn split_sizes(input: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let ctl = input.get(..input.len().min(8)).unwrap_or_default();
    (0..).map(move |i| {
        ctl.get(i % ctl.len().max(1))
            .map_or(1, |&b| usize::from(b % 16) + 1)
    })
}

fn tight_limits() -> Limits {
    let mut tight = Limits::default();
    tight.max_body = 64;
    tight.max_chunk_line = 16;
    tight.max_trailers = 64;
    tight.max_headers = 3;
    tight
}

fn check_split_invariance(limits: &Limits, input: &[u8]) {
    let whole = decode(limits, input, core::iter::once(input.len()));
    assert_eq!(
        whole,
        reference(limits, input),
        "berth vs the reference decoder on {:?}",
        String::from_utf8_lossy(input)
    );
    let split = decode(limits, input, split_sizes(input));
    assert_same(&whole, &split, "whole vs split");
    let drip = decode(limits, input, core::iter::repeat(1));
    assert_same(&whole, &drip, "whole vs one byte at a time");
}

/// Why the reference decoder stopped before the end of the body.
enum Stop {
    /// The input ended first.
    Incomplete,
    Failed(ParseError),
}

/// The oracle: a chunked-body decoder written from the grammar in RFC 9112 §7.1 and the rules
/// berth documents, in another shape than berth's (recursive descent over the whole input,
/// where berth steps a state machine one byte at a time, keeping state between calls):
///
/// ```text
/// chunked-body = *chunk last-chunk trailer-section CRLF
/// chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// chunk-size   = 1*HEXDIG                        ; leading zeros allowed, must fit in a u64
/// chunk-ext    = [ 1*WS ] *( ";" *WS ext-name [ *WS "=" *WS ( token / quoted-string ) ] *WS )
///                                                ; berth takes whitespace before the first
///                                                ; ";" only when a ";" follows
/// trailer-section = *( field-name ":" *field-vchar CRLF )
/// ```
///
/// Problems are reported at the byte that shows them, the first in byte order: a size line
/// longer than `max_chunk_line` (its CR and LF not counted), a size that overflows, a byte off
/// the grammar (`BareNewline` if it is an LF, or any byte after a CR but LF; else
/// `InvalidChunkSize`; `MissingChunkCrlf` after chunk data), a body over `max_body` at the end
/// of the size line that declares it, a trailer section over `max_trailers` bytes or
/// `max_headers` fields, and a field line that is not `name: value` at its end.
struct Reference<'a> {
    input: &'a [u8],
    limits: &'a Limits,
    pos: usize,
    data: Vec<u8>,
    /// Bytes of the current size line, its CRLF not counted.
    line: usize,
    /// Where the trailer section starts, once the last chunk is read.
    trailers_at: Option<usize>,
}

fn reference(limits: &Limits, input: &[u8]) -> Decoded {
    let mut r = Reference {
        input,
        limits,
        pos: 0,
        data: Vec::new(),
        line: 0,
        trailers_at: None,
    };
    let mut trailers = Vec::new();
    let end = match r.body(&mut trailers) {
        Ok(consumed) => End::Done { consumed, trailers },
        Err(Stop::Incomplete) => End::NeedData {
            // Size lines and chunk data are consumed as they arrive; a trailer section only
            // once it is whole.
            consumed: r.trailers_at.unwrap_or(input.len()),
        },
        Err(Stop::Failed(e)) => End::Failed(e),
    };
    Decoded { data: r.data, end }
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A `tchar` of RFC 9110 §5.6.2, spelled out here.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A byte allowed in a field value or quoted string: HTAB, SP, VCHAR, obs-text.
fn is_vchar(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// The error for `b` where the grammar does not allow it.
fn off_grammar(b: u8) -> Stop {
    Stop::Failed(if b == b'\n' {
        ParseError::BareNewline
    } else {
        ParseError::InvalidChunkSize
    })
}

impl Reference<'_> {
    /// The next byte, not counted in the size line.
    fn next(&mut self) -> Result<u8, Stop> {
        let b = *self.input.get(self.pos).ok_or(Stop::Incomplete)?;
        self.pos += 1;
        Ok(b)
    }

    /// The next byte of a size line, counted unless it is a CR.
    fn line_byte(&mut self) -> Result<u8, Stop> {
        let b = self.next()?;
        if b != b'\r' {
            self.line += 1;
            if self.line > self.limits.max_chunk_line {
                return Err(Stop::Failed(ParseError::ChunkLineTooLong));
            }
        }
        Ok(b)
    }

    /// From `b` on, the first byte of the size line that is not SP or HTAB.
    fn skip_ws(&mut self, mut b: u8) -> Result<u8, Stop> {
        while is_ws(b) {
            b = self.line_byte()?;
        }
        Ok(b)
    }

    /// From `b` on, the first byte of the size line that is not a `tchar`.
    fn skip_token(&mut self, mut b: u8) -> Result<u8, Stop> {
        while is_tchar(b) {
            b = self.line_byte()?;
        }
        Ok(b)
    }

    /// A chunk-size line with its extensions and CRLF; returns the size.
    fn size_line(&mut self) -> Result<u64, Stop> {
        self.line = 0;
        let mut b = self.line_byte()?;
        if !b.is_ascii_hexdigit() {
            return Err(Stop::Failed(ParseError::InvalidChunkSize));
        }
        let mut size = 0u64;
        while let Some(digit) = char::from(b).to_digit(16) {
            size = size
                .checked_mul(16)
                .and_then(|n| n.checked_add(u64::from(digit)))
                .ok_or(Stop::Failed(ParseError::ChunkSizeOverflow))?;
            b = self.line_byte()?;
        }
        if is_ws(b) {
            b = self.skip_ws(b)?;
            if b != b';' {
                return Err(off_grammar(b));
            }
        }
        while b == b';' {
            b = self.line_byte()?;
            b = self.skip_ws(b)?;
            if !is_tchar(b) {
                return Err(off_grammar(b));
            }
            b = self.skip_token(b)?;
            b = self.skip_ws(b)?;
            if b != b'=' {
                continue;
            }
            b = self.line_byte()?;
            b = self.skip_ws(b)?;
            if b == b'"' {
                loop {
                    b = self.line_byte()?;
                    match b {
                        b'"' => break,
                        b'\\' => {
                            b = self.line_byte()?;
                            if !is_vchar(b) {
                                return Err(off_grammar(b));
                            }
                        }
                        _ if is_vchar(b) => {}
                        _ => return Err(off_grammar(b)),
                    }
                }
                b = self.line_byte()?;
            } else if is_tchar(b) {
                b = self.skip_token(b)?;
            } else {
                return Err(off_grammar(b));
            }
            b = self.skip_ws(b)?;
        }
        if b != b'\r' {
            return Err(off_grammar(b));
        }
        match self.next()? {
            b'\n' => Ok(size),
            _ => Err(Stop::Failed(ParseError::BareNewline)),
        }
    }

    /// The whole body; returns the bytes it spans and fills `trailers`.
    fn body(&mut self, trailers: &mut Vec<(String, Vec<u8>)>) -> Result<usize, Stop> {
        loop {
            let size = self.size_line()?;
            if size == 0 {
                break;
            }
            let total = (self.data.len() as u64).checked_add(size);
            if total.is_none_or(|t| t > self.limits.max_body) {
                return Err(Stop::Failed(ParseError::BodyTooLarge));
            }
            let rest = &self.input[self.pos..];
            let take = usize::try_from(size).map_or(rest.len(), |size| size.min(rest.len()));
            self.data.extend_from_slice(&rest[..take]);
            self.pos += take;
            if (take as u64) < size {
                return Err(Stop::Incomplete);
            }
            for expected in [b'\r', b'\n'] {
                if self.next()? != expected {
                    return Err(Stop::Failed(ParseError::MissingChunkCrlf));
                }
            }
        }
        let start = self.pos;
        self.trailers_at = Some(start);
        let input = self.input;
        let section = &input[start..];
        let max = self.limits.max_trailers;
        let at = |k: usize| match section.get(k) {
            None => Err(Stop::Incomplete),
            Some(_) if k >= max => Err(Stop::Failed(ParseError::TrailersTooLarge)),
            Some(&b) => Ok(b),
        };
        let mut line_start = 0;
        loop {
            let mut k = line_start;
            while !matches!(at(k)?, b'\r' | b'\n') {
                k += 1;
            }
            if at(k)? == b'\n' || at(k + 1)? != b'\n' {
                return Err(Stop::Failed(ParseError::BareNewline));
            }
            let line = &section[line_start..k];
            if line.is_empty() {
                return Ok(start + k + 2);
            }
            if trailers.len() == self.limits.max_headers {
                return Err(Stop::Failed(ParseError::TrailersTooLarge));
            }
            let colon = line.iter().position(|&b| b == b':');
            let Some((name, value)) = colon.map(|c| (&line[..c], &line[c + 1..])) else {
                return Err(Stop::Failed(ParseError::InvalidTrailer));
            };
            if name.is_empty()
                || !name.iter().all(|&b| is_tchar(b))
                || !value.iter().all(|&b| is_vchar(b))
            {
                return Err(Stop::Failed(ParseError::InvalidTrailer));
            }
            let start = value.iter().position(|&b| !is_ws(b)).unwrap_or(value.len());
            let end = value
                .iter()
                .rposition(|&b| !is_ws(b))
                .map_or(start, |i| i + 1);
            let name = String::from_utf8(name.to_vec()).expect("a tchar is ASCII");
            trailers.push((name, value[start..end].to_vec()));
            line_start = k + 2;
        }
    }
}

/// Encode `payload` as a valid chunked body; returns it and the trailer fields it carries.
fn encode(payload: &[u8]) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let ctl = payload.get(..payload.len().min(8)).unwrap_or_default();
    let pick = |i: usize| ctl.get(i % ctl.len().max(1)).copied().unwrap_or(0);
    let mut out = Vec::new();
    let mut rest = payload;
    let mut i = 0;
    while !rest.is_empty() {
        let c = pick(i);
        i += 1;
        // Mostly small chunks, sometimes large ones.
        let size = usize::from(c % 64) + 1;
        let size = if c & 0x80 != 0 { size * 37 } else { size };
        let size = size.min(rest.len());
        let (data, tail) = rest.split_at(size);
        rest = tail;
        if c & 0x20 != 0 {
            out.extend_from_slice(b"00");
        }
        let hex = if c & 0x40 != 0 {
            format!("{size:X}")
        } else {
            format!("{size:x}")
        };
        out.extend_from_slice(hex.as_bytes());
        if c & 0x10 != 0 {
            out.extend_from_slice(b";ext");
        }
        if c & 0x08 != 0 {
            out.extend_from_slice(b";name=\"quoted \\\" value\"");
        }
        if c & 0x04 != 0 {
            out.extend_from_slice(b" ; a = b");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    let last = pick(i);
    out.extend_from_slice(if last & 1 != 0 { b"000" } else { b"0" });
    if last & 2 != 0 {
        out.extend_from_slice(b";last=1");
    }
    out.extend_from_slice(b"\r\n");
    let mut trailers = Vec::new();
    if last & 4 != 0 {
        let len = payload.len().to_string();
        out.extend_from_slice(format!("Body-Length:  {len} \r\n").as_bytes());
        trailers.push(("Body-Length".to_owned(), len.into_bytes()));
    }
    if last & 8 != 0 {
        out.extend_from_slice(b"X-Empty:\r\n");
        trailers.push(("X-Empty".to_owned(), Vec::new()));
    }
    out.extend_from_slice(b"\r\n");
    (out, trailers)
}

fn check_round_trip(payload: &[u8]) {
    let (encoded, trailers) = encode(payload);
    let mut limits = Limits::default();
    limits.max_body = u64::MAX;
    let expected = Decoded {
        data: payload.to_vec(),
        end: End::Done {
            consumed: encoded.len(),
            trailers,
        },
    };
    let whole = decode(&limits, &encoded, core::iter::once(encoded.len()));
    assert_eq!(
        whole,
        expected,
        "round trip of {:?}",
        String::from_utf8_lossy(&encoded)
    );
    let split = decode(&limits, &encoded, split_sizes(payload));
    assert_eq!(split, expected, "split round trip");
}

fuzz_target!(|data: &[u8]| {
    check_split_invariance(&Limits::default(), data);
    check_split_invariance(&tight_limits(), data);
    check_round_trip(data);
});
