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
                assert_eq!(fields.is_empty(), trailers.is_empty());
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
    let split = decode(limits, input, split_sizes(input));
    assert_same(&whole, &split, "whole vs split");
    let drip = decode(limits, input, core::iter::repeat(1));
    assert_same(&whole, &drip, "whole vs one byte at a time");
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
