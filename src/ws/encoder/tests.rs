//! The encoder writes the same bytes as the three frame writers it replaced, and the bytes
//! RFC 6455 §5.2 lays out.

use super::*;
use crate::ws::{apply_mask_bytewise, Conn, MessageKind};
use crate::Limits;

const OPCODES: [OpCode; 6] = [
    OpCode::Continuation,
    OpCode::Text,
    OpCode::Binary,
    OpCode::Close,
    OpCode::Ping,
    OpCode::Pong,
];

const LENGTHS: [usize; 5] = [0, 125, 126, 65535, 65536];

/// Each role: the server's no mask, a client's key.
const MASKS: [Option<[u8; 4]>; 2] = [None, Some([0x37, 0xfa, 0x21, 0x3d])];

/// `Conn`'s private `write_frame` before the encoder, given the mask `next_mask` drew.
fn old_conn_frame(
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    let header = FrameHeader {
        fin,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut head);
    out.extend_from_slice(head.get(..n).unwrap_or_default());
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = header.mask {
        apply_mask(out.get_mut(start..).unwrap_or_default(), key);
    }
}

/// The runtime's `server::handler::write_frame` before the encoder (server role, FIN set).
fn old_server_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    let header = FrameHeader {
        fin: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask: None,
        payload_len: payload.len() as u64,
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut head);
    out.extend_from_slice(head.get(..n).unwrap_or_default());
    out.extend_from_slice(payload);
}

/// `Conn::data_header`'s header before the encoder.
fn old_data_header(opcode: OpCode, fin: bool, len: u64) -> Vec<u8> {
    let mut out = [0u8; MAX_HEADER_LEN];
    let header = FrameHeader {
        fin,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask: None,
        payload_len: len,
    };
    let n = header.encode(&mut out);
    out[..n].to_vec()
}

/// The frame as RFC 6455 §5.2 draws it, byte by byte, with no code shared with the crate's
/// encoder.
fn by_the_rfc(opcode: OpCode, fin: bool, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::from(fin) << 7 | opcode.as_u8()];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len <= 125 {
        out.push(mask_bit | len as u8);
    } else if len <= 0xffff {
        out.extend_from_slice(&[mask_bit | 126, (len >> 8) as u8, len as u8]);
    } else {
        out.push(mask_bit | 127);
        out.extend((0..8).rev().map(|i| ((len as u64) >> (8 * i)) as u8));
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask_bytewise(&mut out[start..], key, 0);
    }
    out
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

#[test]
fn writes_the_old_bytes_for_every_opcode_length_edge_and_role() {
    for len in LENGTHS {
        let payload = payload(len);
        for opcode in OPCODES {
            for mask in MASKS {
                for fin in [true, false] {
                    let what = format!("{opcode:?} len {len} mask {mask:?} fin {fin}");
                    let mut new = Vec::new();
                    write_frame(opcode, fin, mask, &payload, &mut new);
                    let mut old = Vec::new();
                    old_conn_frame(opcode, fin, mask, &payload, &mut old);
                    assert_eq!(new, old, "{what}: Conn's writer");
                    assert_eq!(new, by_the_rfc(opcode, fin, mask, &payload), "{what}: RFC");
                    let head_len = header(opcode, fin, mask, len as u64).encoded_len();
                    assert_eq!(new.len(), head_len + len, "{what}: length");
                    if mask.is_none() {
                        assert_eq!(
                            new[..head_len],
                            old_data_header(opcode, fin, len as u64),
                            "{what}: data_header"
                        );
                    }
                    if mask.is_none() && fin {
                        let mut old = Vec::new();
                        old_server_frame(&mut old, opcode, &payload);
                        assert_eq!(new, old, "{what}: the runtime's writer");
                    }
                }
            }
        }
    }
}

#[test]
fn appends_after_what_the_buffer_holds() {
    let key = [1, 2, 3, 4];
    let mut out = b"queued".to_vec();
    write_frame(OpCode::Binary, true, Some(key), b"abcdefghij", &mut out);
    write_frame(OpCode::Ping, true, None, b"", &mut out);
    let mut expected = b"queued".to_vec();
    expected.extend(by_the_rfc(OpCode::Binary, true, Some(key), b"abcdefghij"));
    expected.extend([0x89, 0x00]);
    assert_eq!(out, expected);
}

#[test]
fn a_buffer_with_room_is_not_reallocated() {
    let payload = payload(70_000);
    let mut out = Vec::with_capacity(payload.len() + MAX_HEADER_LEN);
    let before = out.as_ptr();
    write_frame(OpCode::Binary, true, Some([9, 8, 7, 6]), &payload, &mut out);
    assert_eq!(out.as_ptr(), before);
    assert_eq!(out.len(), payload.len() + MAX_HEADER_LEN);
}

#[test]
fn conn_writes_through_the_encoder_in_both_roles() {
    let keys = [[0x11, 0x22, 0x33, 0x44], [0x55, 0x66, 0x77, 0x88]];
    let mut next = keys.into_iter().cycle();
    let mut client = Conn::client(&Limits::default(), Box::new(move || next.next().unwrap()));
    let mut server = Conn::server(&Limits::default());
    for len in LENGTHS {
        let payload = payload(len);
        let mut out = Vec::new();
        client
            .send(MessageKind::Binary, &payload, false, &mut out)
            .unwrap();
        client
            .send(MessageKind::Binary, &payload, true, &mut out)
            .unwrap();
        let mut expected = Vec::new();
        write_frame(
            OpCode::Binary,
            false,
            Some(keys[0]),
            &payload,
            &mut expected,
        );
        write_frame(
            OpCode::Continuation,
            true,
            Some(keys[1]),
            &payload,
            &mut expected,
        );
        assert_eq!(out, expected, "client, len {len}");

        let mut out = Vec::new();
        server.send_binary(&payload, &mut out).unwrap();
        let (head, n) = server
            .data_header(MessageKind::Binary, len as u64, true)
            .unwrap();
        let mut expected = Vec::new();
        write_frame(OpCode::Binary, true, None, &payload, &mut expected);
        assert_eq!(out, expected, "server, len {len}");
        assert_eq!(head[..n], expected[..n], "server data_header, len {len}");
    }
}
