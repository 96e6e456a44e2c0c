//! Frame header tests, including every example of RFC 6455 §5.7.

use super::*;

fn decode(buf: &[u8]) -> (usize, FrameHeader) {
    match FrameHeader::decode(buf).unwrap() {
        Status::Complete(found) => found,
        Status::Partial => panic!("partial"),
    }
}

fn header(fin: bool, opcode: OpCode, mask: Option<[u8; 4]>, len: u64) -> FrameHeader {
    FrameHeader {
        fin,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask,
        payload_len: len,
    }
}

/// Decoding every proper prefix is Partial, the whole is the header, and encoding gives the
/// bytes back.
fn check_example(bytes: &[u8], expected: FrameHeader) {
    for end in 0..bytes.len() {
        assert_eq!(
            FrameHeader::decode(&bytes[..end]),
            Ok(Status::Partial),
            "prefix {end}"
        );
    }
    assert_eq!(decode(bytes), (bytes.len(), expected));
    let mut out = [0u8; MAX_HEADER_LEN];
    let n = expected.encode(&mut out);
    assert_eq!(&out[..n], bytes);
    assert_eq!(expected.encoded_len(), n);
}

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

#[test]
fn rfc6455_single_frame_unmasked_text() {
    check_example(&[0x81, 0x05], header(true, OpCode::Text, None, 5));
}

#[test]
fn rfc6455_single_frame_masked_text() {
    check_example(
        &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d],
        header(true, OpCode::Text, Some(MASK), 5),
    );
    let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
    crate::ws::apply_mask(&mut payload, MASK);
    assert_eq!(&payload, b"Hello");
}

#[test]
fn rfc6455_fragmented_unmasked_text() {
    check_example(&[0x01, 0x03], header(false, OpCode::Text, None, 3));
    check_example(&[0x80, 0x02], header(true, OpCode::Continuation, None, 2));
}

#[test]
fn rfc6455_unmasked_ping_and_masked_pong() {
    check_example(&[0x89, 0x05], header(true, OpCode::Ping, None, 5));
    check_example(
        &[0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d],
        header(true, OpCode::Pong, Some(MASK), 5),
    );
}

#[test]
fn rfc6455_256_byte_binary_uses_16_bit_length() {
    check_example(
        &[0x82, 0x7e, 0x01, 0x00],
        header(true, OpCode::Binary, None, 256),
    );
}

#[test]
fn rfc6455_64kib_binary_uses_64_bit_length() {
    check_example(
        &[0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00],
        header(true, OpCode::Binary, None, 65536),
    );
}

#[test]
fn length_edges_use_the_minimal_form() {
    for (len, header_len) in [
        (0, 2),
        (125, 2),
        (126, 4),
        (65535, 4),
        (65536, 10),
        (u64::MAX >> 1, 10),
    ] {
        let h = header(true, OpCode::Binary, Some([1, 2, 3, 4]), len);
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut out);
        assert_eq!(n, header_len + 4);
        assert_eq!(decode(&out[..n]), (n, h));
    }
}

#[test]
fn rsv_bits_are_reported() {
    let (_, h) = decode(&[0xf1, 0x00]);
    assert!(h.rsv1 && h.rsv2 && h.rsv3);
}

#[test]
fn rejects_reserved_opcodes() {
    for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
        assert_eq!(
            FrameHeader::decode(&[0x80 | op, 0]),
            Err(ProtocolError::ReservedOpcode)
        );
    }
}

#[test]
fn rejects_fragmented_control_frames() {
    assert_eq!(
        FrameHeader::decode(&[0x09, 0]),
        Err(ProtocolError::FragmentedControl)
    );
}

#[test]
fn rejects_control_payload_over_125() {
    assert_eq!(
        FrameHeader::decode(&[0x89, 126]),
        Err(ProtocolError::ControlTooLong)
    );
    assert_eq!(
        FrameHeader::decode(&[0x88, 127]),
        Err(ProtocolError::ControlTooLong)
    );
    assert!(FrameHeader::decode(&[0x89, 125]).is_ok());
}

#[test]
fn rejects_64_bit_length_with_top_bit_set() {
    let bytes = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        FrameHeader::decode(&bytes),
        Err(ProtocolError::LengthOverflow)
    );
    assert_eq!(ProtocolError::LengthOverflow.close_code().as_u16(), 1002);
}

#[test]
fn rejects_non_minimal_lengths() {
    assert_eq!(
        FrameHeader::decode(&[0x82, 0x7e, 0, 125]),
        Err(ProtocolError::NonMinimalLength)
    );
    assert_eq!(
        FrameHeader::decode(&[0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff]),
        Err(ProtocolError::NonMinimalLength)
    );
}
