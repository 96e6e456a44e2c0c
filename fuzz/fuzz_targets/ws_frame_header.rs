//! Fuzz `FrameHeader::decode` and `FrameHeader::encode`.
//!
//! Two properties per input:
//!
//! - **Decode.** The input is decoded as the start of a frame. It never panics, and:
//!   - on `Complete((n, h))`: `n <= len`, `n == h.encoded_len()`, and `h.encode()` writes
//!     exactly the first `n` input bytes (a fixed point: decode accepts only the minimal length
//!     encoding, which is the one encode writes); `h` obeys the rules decode enforces (control
//!     frames are final and at most 125 bytes, the length's top bit is clear); every proper
//!     prefix of the `n` bytes is `Partial`, and every longer prefix gives the same header;
//!   - on `Partial`: the input is shorter than `MAX_HEADER_LEN` and every prefix is `Partial`;
//!   - on an error: its close code is 1002 (every header error is a protocol error), and every
//!     prefix is `Partial` or that same error, which the first 10 bytes already show (the mask
//!     key cannot make a header invalid).
//! - **Encode.** A valid header built from the input's bytes (every opcode, flag combination,
//!   mask and length form, with the 0/125/126/65535/65536 edges) is encoded and decoded again,
//!   alone and followed by the rest of the input: the same header and length come back.
#![no_main]

use berth::ws::{CloseCode, FrameHeader, OpCode, ProtocolError, MAX_HEADER_LEN};
use berth::Status;
use libfuzzer_sys::fuzz_target;

type Decoded = Result<Status<(usize, FrameHeader)>, ProtocolError>;

fn check_decode(data: &[u8]) {
    let result = FrameHeader::decode(data);
    // `decode` reads at most `MAX_HEADER_LEN` bytes, so longer prefixes all decode alike.
    let prefixes = || (0..=data.len().min(MAX_HEADER_LEN + 1)).map(|m| (m, &data[..m]));
    match result {
        Ok(Status::Complete((n, header))) => {
            assert!(n <= data.len(), "consumed {n} of {} bytes", data.len());
            assert_eq!(n, header.encoded_len(), "length of {header:?}");
            let mut out = [0u8; MAX_HEADER_LEN];
            let written = header.encode(&mut out);
            assert_eq!(written, n, "encode of {header:?}");
            assert_eq!(&out[..n], &data[..n], "decode→encode of {header:?}");
            if header.opcode.is_control() {
                assert!(header.fin, "fragmented control frame accepted");
                assert!(header.payload_len <= 125, "long control frame accepted");
            }
            assert_eq!(
                header.payload_len >> 63,
                0,
                "64-bit length with the top bit set"
            );
            for (m, prefix) in prefixes() {
                let expected: Decoded = if m < n { Ok(Status::Partial) } else { result };
                assert_eq!(FrameHeader::decode(prefix), expected, "prefix of {m} bytes");
            }
        }
        Ok(Status::Partial) => {
            assert!(
                data.len() < MAX_HEADER_LEN,
                "{} bytes are Partial",
                data.len()
            );
            for (m, prefix) in prefixes() {
                assert_eq!(
                    FrameHeader::decode(prefix),
                    Ok(Status::Partial),
                    "prefix of {m} bytes"
                );
            }
        }
        Err(e) => {
            assert_eq!(e.close_code(), CloseCode::PROTOCOL, "close code of {e:?}");
            let mut failed = false;
            for (m, prefix) in prefixes() {
                match FrameHeader::decode(prefix) {
                    Ok(Status::Partial) => {
                        assert!(
                            !failed,
                            "prefix of {m} bytes is Partial after a shorter failed"
                        );
                    }
                    Err(again) => {
                        assert_eq!(again, e, "prefix of {m} bytes");
                        failed = true;
                    }
                    other => panic!("prefix of {m} bytes gave {other:?}, the whole {e:?}"),
                }
            }
            let first10 = &data[..data.len().min(10)];
            assert_eq!(FrameHeader::decode(first10), Err(e), "not seen in 10 bytes");
        }
    }
}

/// A valid header chosen by the bytes of `data`.
fn header_from(data: &[u8]) -> FrameHeader {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let b0 = byte(0);
    let opcode = [
        OpCode::Continuation,
        OpCode::Text,
        OpCode::Binary,
        OpCode::Close,
        OpCode::Ping,
        OpCode::Pong,
    ][usize::from(b0 % 6)];
    let b1 = byte(1);
    let mask = (b1 & 0x80 != 0).then(|| [byte(2), byte(3), byte(4), byte(5)]);
    let mut raw = [0u8; 8];
    for (i, r) in raw.iter_mut().enumerate() {
        *r = byte(6 + i);
    }
    let raw = u64::from_be_bytes(raw);
    // The three length forms, each with any value, or one of the edges between them.
    const EDGES: [u64; 6] = [0, 125, 126, 0xffff, 0x1_0000, (1 << 63) - 1];
    let payload_len = match b1 % 9 {
        0 => raw % 126,
        1 => 126 + raw % (0x1_0000 - 126),
        2 => 0x1_0000 + raw % ((1 << 63) - 0x1_0000),
        edge => EDGES[usize::from(edge - 3)],
    };
    let control = opcode.is_control();
    FrameHeader {
        fin: control || b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        rsv2: b0 & 0x20 != 0,
        rsv3: b0 & 0x10 != 0,
        opcode,
        mask,
        payload_len: if control {
            payload_len % 126
        } else {
            payload_len
        },
    }
}

fn check_encode(data: &[u8]) {
    let header = header_from(data);
    let mut out = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut out);
    assert_eq!(n, header.encoded_len(), "encoded length of {header:?}");
    let expected: Decoded = Ok(Status::Complete((n, header)));
    assert_eq!(FrameHeader::decode(&out[..n]), expected, "encode→decode");
    let mut followed = out[..n].to_vec();
    followed.extend_from_slice(data);
    assert_eq!(
        FrameHeader::decode(&followed),
        expected,
        "encode→decode, then more"
    );
}

fuzz_target!(|data: &[u8]| {
    check_decode(data);
    check_encode(data);
});
