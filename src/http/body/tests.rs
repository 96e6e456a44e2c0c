//! Unit tests for the chunked decoder.

// Limits are built the way users outside the crate must: `#[non_exhaustive]` rules out
// struct-update syntax there.
#![allow(clippy::field_reassign_with_default)]

use super::*;

/// Decoded data, trailers, and bytes consumed.
type Decoded = (Vec<u8>, Vec<(String, Vec<u8>)>, usize);

/// Decode all of `input` in one buffer; returns the data and trailers, or the error.
fn decode_all(limits: &Limits, input: &[u8]) -> Result<Decoded, ParseError> {
    let mut dec = ChunkedDecoder::new(limits);
    let mut data = Vec::new();
    let mut pos = 0;
    loop {
        let (used, chunk) = dec.decode(&input[pos..])?;
        assert!(used <= input.len() - pos);
        pos += used;
        match chunk {
            Chunk::Data(d) => data.extend_from_slice(d),
            Chunk::NeedData => panic!("incomplete: {:?}", String::from_utf8_lossy(input)),
            Chunk::End(t) => {
                let trailers = t.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect();
                assert!(dec.is_done());
                return Ok((data, trailers, pos));
            }
        }
    }
}

/// Decode `input` offered one byte more at a time, as a runtime holding unconsumed bytes does.
fn decode_dripped(limits: &Limits, input: &[u8]) -> Result<Decoded, ParseError> {
    let mut dec = ChunkedDecoder::new(limits);
    let mut data = Vec::new();
    let mut start = 0;
    let mut end = 0;
    loop {
        let (used, chunk) = dec.decode(&input[start..end])?;
        start += used;
        match chunk {
            Chunk::Data(d) => data.extend_from_slice(d),
            Chunk::NeedData if end < input.len() => end += 1,
            Chunk::NeedData => panic!("incomplete"),
            Chunk::End(t) => {
                let trailers = t.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect();
                return Ok((data, trailers, start));
            }
        }
    }
}

fn ok(input: &[u8]) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let whole = decode_all(&Limits::default(), input).unwrap();
    let dripped = decode_dripped(&Limits::default(), input).unwrap();
    assert_eq!(whole, dripped);
    assert_eq!(whole.2, input.len(), "consumed everything");
    (whole.0, whole.1)
}

fn err(input: &[u8]) -> ParseError {
    let whole = decode_all(&Limits::default(), input).unwrap_err();
    let dripped = decode_dripped(&Limits::default(), input).unwrap_err();
    assert_eq!(whole, dripped);
    whole
}

macro_rules! rejects {
    ($($name:ident: $input:expr => $err:ident $status:literal;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(err($input), ParseError::$err);
            assert_eq!(ParseError::$err.status(), $status);
        }
    )*};
}

#[test]
fn decodes_chunks_without_copying() {
    let input = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let mut dec = ChunkedDecoder::new(&Limits::default());
    let (used, chunk) = dec.decode(input).unwrap();
    let Chunk::Data(d) = chunk else { panic!() };
    // The slice is the caller's own memory.
    assert_eq!(d.as_ptr(), input[3..].as_ptr());
    assert_eq!(used, 8);
    assert_eq!(ok(input).0, b"hello world");
}

#[test]
fn hex_sizes_in_either_case_with_leading_zeros() {
    assert_eq!(ok(b"A\r\n0123456789\r\n0\r\n\r\n").0.len(), 10);
    assert_eq!(ok(b"0a\r\n0123456789\r\n000\r\n\r\n").0.len(), 10);
    assert_eq!(ok(b"00000000000000000001\r\nx\r\n0\r\n\r\n").0, b"x");
}

#[test]
fn extensions_are_parsed_and_skipped() {
    let (data, _) = ok(b"3;name\r\nabc\r\n3 ; a=b ;c = \"q\\\"d;\"\r\nxyz\r\n0;last=1\r\n\r\n");
    assert_eq!(data, b"abcxyz");
}

#[test]
fn trailers_are_validated_and_exposed() {
    let (data, trailers) = ok(b"1\r\nx\r\n0\r\nX-Checksum: abc \r\nX-Other:\tv w\r\n\r\n");
    assert_eq!(data, b"x");
    assert_eq!(
        trailers,
        [
            ("X-Checksum".to_string(), b"abc".to_vec()),
            ("X-Other".to_string(), b"v w".to_vec())
        ]
    );
}

#[test]
fn data_split_at_every_point_is_reassembled() {
    let input = b"1a\r\nabcdefghijklmnopqrstuvwxyz\r\n3\r\n123\r\n0\r\nT: 1\r\n\r\n";
    for split in 0..input.len() {
        let mut dec = ChunkedDecoder::new(&Limits::default());
        let mut data = Vec::new();
        let mut buf = input[..split].to_vec();
        let mut fed = false;
        loop {
            let (used, chunk) = dec.decode(&buf).unwrap();
            let (end, need) = match chunk {
                Chunk::Data(d) => {
                    data.extend_from_slice(d);
                    (false, false)
                }
                Chunk::End(_) => (true, false),
                Chunk::NeedData => (false, true),
            };
            buf.drain(..used);
            if end {
                break;
            }
            if need {
                assert!(!fed, "stalled at split {split}");
                fed = true;
                buf.extend_from_slice(&input[split..]);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(data, b"abcdefghijklmnopqrstuvwxyz123", "split {split}");
    }
}

rejects! {
    rejects_empty_chunk_size: b";x\r\n" => InvalidChunkSize 400;
    rejects_junk_chunk_size: b"g\r\nx\r\n" => InvalidChunkSize 400;
    rejects_signed_chunk_size: b"+1\r\nx\r\n" => InvalidChunkSize 400;
    rejects_hex_prefix: b"0x1\r\nx\r\n" => InvalidChunkSize 400;
    rejects_trailing_whitespace_after_size: b"1 \r\nx\r\n0\r\n\r\n" => InvalidChunkSize 400;
    rejects_extension_without_name: b"1;\r\nx\r\n" => InvalidChunkSize 400;
    rejects_extension_with_empty_value: b"1;a=\r\nx\r\n" => InvalidChunkSize 400;
    rejects_unterminated_quoted_extension: b"1;a=\"x\r\nx\r\n" => InvalidChunkSize 400;
    rejects_chunk_size_overflow: b"10000000000000000\r\n" => ChunkSizeOverflow 400;
    rejects_missing_crlf_after_data: b"3\r\nabcd\r\n0\r\n\r\n" => MissingChunkCrlf 400;
    rejects_lf_only_after_data: b"3\r\nabc\n0\r\n\r\n" => MissingChunkCrlf 400;
    rejects_cr_only_after_data: b"3\r\nabc\rX" => MissingChunkCrlf 400;
    rejects_bare_lf_after_size: b"3\nabc\r\n" => BareNewline 400;
    rejects_bare_cr_after_size: b"3\rabc\r\n" => BareNewline 400;
    rejects_bare_lf_in_extension: b"3;a\nabc\r\n" => BareNewline 400;
    rejects_bare_lf_in_trailers: b"0\r\nX: 1\n\r\n" => BareNewline 400;
    rejects_bare_cr_in_trailers: b"0\r\nX: 1\rY: 2\r\n\r\n" => BareNewline 400;
    rejects_trailer_without_colon: b"0\r\nnot a field\r\n\r\n" => InvalidTrailer 400;
    rejects_trailer_with_space_before_colon: b"0\r\nX : 1\r\n\r\n" => InvalidTrailer 400;
    rejects_trailer_with_control_byte: b"0\r\nX: a\x01\r\n\r\n" => InvalidTrailer 400;
    rejects_obs_fold_in_trailers: b"0\r\nX: a\r\n b\r\n\r\n" => InvalidTrailer 400;
}

#[test]
fn chunk_line_over_limit_is_refused_before_its_end() {
    let mut l = Limits::default();
    l.max_chunk_line = 16;
    let mut dec = ChunkedDecoder::new(&l);
    let line = format!("1;{}", "a".repeat(20));
    assert_eq!(
        dec.decode(line.as_bytes()),
        Err(ParseError::ChunkLineTooLong)
    );
    let mut dec = ChunkedDecoder::new(&l);
    assert!(dec.decode(b"1;aaaaaaaaaaaaaa\r\nx\r\n0\r\n\r\n").is_ok());
}

#[test]
fn body_limit_is_checked_before_the_data_is_read() {
    let mut l = Limits::default();
    l.max_body = 10;
    let mut dec = ChunkedDecoder::new(&l);
    // The size line alone is enough to refuse: no data has arrived.
    assert_eq!(dec.decode(b"b\r\n"), Err(ParseError::BodyTooLarge));
    // Exactly the limit, over several chunks, is fine; one byte more is not.
    assert!(decode_all(&l, b"5\r\n12345\r\n5\r\n12345\r\n0\r\n\r\n").is_ok());
    assert_eq!(
        decode_all(&l, b"5\r\n12345\r\n6\r\n123456\r\n0\r\n\r\n").map(|_| ()),
        Err(ParseError::BodyTooLarge)
    );
    // A chunk size near u64::MAX cannot overflow the running total.
    let mut l = Limits::default();
    l.max_body = u64::MAX;
    let mut dec = ChunkedDecoder::new(&l);
    let (used, _) = dec.decode(b"1\r\nx\r\n").unwrap();
    assert_eq!(used, 4);
    assert_eq!(
        dec.decode(b"\r\nffffffffffffffff\r\n"),
        Err(ParseError::BodyTooLarge)
    );
}

#[test]
fn trailer_limits_are_431() {
    let mut l = Limits::default();
    l.max_trailers = 32;
    let big = format!("0\r\nX: {}\r\n\r\n", "v".repeat(40));
    assert_eq!(
        decode_all(&l, big.as_bytes()).map(|_| ()),
        Err(ParseError::TrailersTooLarge)
    );
    assert_eq!(
        decode_dripped(&l, big.as_bytes()).map(|_| ()),
        Err(ParseError::TrailersTooLarge)
    );
    let mut l = Limits::default();
    l.max_headers = 2;
    let many = b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(
        decode_all(&l, many).map(|_| ()),
        Err(ParseError::TrailersTooLarge)
    );
    assert_eq!(ParseError::TrailersTooLarge.status(), 431);
}

#[test]
fn errors_are_sticky() {
    let mut dec = ChunkedDecoder::new(&Limits::default());
    assert_eq!(dec.decode(b"z"), Err(ParseError::InvalidChunkSize));
    assert_eq!(
        dec.decode(b"1\r\nx\r\n0\r\n\r\n"),
        Err(ParseError::InvalidChunkSize)
    );
}

#[test]
fn end_is_reported_again_after_completion() {
    let mut dec = ChunkedDecoder::new(&Limits::default());
    let input = b"0\r\n\r\nNEXT";
    let (used, chunk) = dec.decode(input).unwrap();
    assert_eq!(used, 5);
    assert!(matches!(chunk, Chunk::End(t) if t.is_empty()));
    assert_eq!(dec.decode(b"NEXT").unwrap().0, 0);
    assert_eq!(dec.body_len(), 0);
}

#[test]
fn trailer_errors_come_in_byte_order_however_the_bytes_are_split() {
    let mut l = Limits::default();
    l.max_trailers = 8;
    for input in [
        &b"0\r\nX: a\rbcdefgh"[..],
        b"0\r\nX: aaaaaaaaaaaa\rb\r\n\r\n",
        b"0\r\nbad line!\r\n\r\n",
    ] {
        let mut whole = ChunkedDecoder::new(&l);
        let expected = whole.decode(input).map(|(n, _)| n);
        assert!(expected.is_err(), "{input:?}");
        for split in 0..input.len() {
            let mut dec = ChunkedDecoder::new(&l);
            let got = dec
                .decode(&input[..split])
                .and_then(|(used, _)| dec.decode(&input[used..]).map(|(n, _)| n));
            assert_eq!(got, expected, "{input:?} split at {split}");
        }
    }
}
