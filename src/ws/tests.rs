//! `Conn` tests: messages, fragmentation, control frames, the close handshake, roles, limits,
//! and every protocol error with its close code. Two connections are driven against each other
//! in memory, with no sockets.

// Limits are built the way users outside the crate must: `#[non_exhaustive]` rules out
// struct-update syntax there.
#![allow(clippy::field_reassign_with_default)]

use super::*;
use crate::Limits;

#[derive(Debug, PartialEq, Eq, Clone)]
enum Ev {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
    Closed,
}

/// Feed `input` to `conn` and collect events until NeedData; an error ends the list.
fn events(conn: &mut Conn, input: &[u8]) -> (Vec<Ev>, Option<ProtocolError>) {
    let mut buf = input.to_vec();
    let mut evs = Vec::new();
    loop {
        let len = buf.len();
        let (used, ev) = match conn.handle_input(&mut buf) {
            Ok(found) => found,
            Err(e) => return (evs, Some(e)),
        };
        assert!(used <= len);
        let ev = match ev {
            Event::Text(t) => Ev::Text(t.into()),
            Event::Binary(b) => Ev::Binary(b.into()),
            Event::Ping(p) => Ev::Ping(p.into()),
            Event::Pong(p) => Ev::Pong(p.into()),
            Event::Close(c) => Ev::Close(c.map(|c| (c.code.as_u16(), c.reason.into()))),
            Event::Closed => Ev::Closed,
            Event::NeedData => return (evs, None),
        };
        buf.drain(..used);
        let closed = ev == Ev::Closed;
        evs.push(ev);
        if closed {
            return (evs, None);
        }
    }
}

fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    frame(opcode, fin, Some([0xa1, 0xb2, 0xc3, 0xd4]), payload)
}

fn frame(opcode: u8, fin: bool, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let h = FrameHeader {
        fin,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode: OpCode::from_u8(opcode).unwrap(),
        mask,
        payload_len: payload.len() as u64,
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = h.encode(&mut head);
    let mut out = head[..n].to_vec();
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key);
    }
    out
}

fn server() -> Conn {
    Conn::server(&Limits::default())
}

fn client() -> Conn {
    let mut n = 0u32;
    Conn::client(
        &Limits::default(),
        Box::new(move || {
            n = n.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            n.to_ne_bytes()
        }),
    )
}

/// The close code the failed connection queued, read back by a peer.
fn queued_close_code(conn: &mut Conn) -> Option<u16> {
    let mut out = Vec::new();
    conn.poll_transmit(&mut out);
    let (evs, _) = events(
        &mut Conn::new(Role::Client, &Limits::default(), Config::default(), None),
        &out,
    );
    evs.into_iter().find_map(|e| match e {
        Ev::Close(Some((code, _))) => Some(code),
        _ => None,
    })
}

/// Each input makes a server fail with the error and close code shown.
macro_rules! server_rejects {
    ($($name:ident: $input:expr => $err:ident $code:literal;)*) => {$(
        #[test]
        fn $name() {
            let mut s = server();
            let input: Vec<u8> = $input;
            let (_, e) = events(&mut s, &input);
            assert_eq!(e, Some(ProtocolError::$err));
            assert_eq!(ProtocolError::$err.close_code().as_u16(), $code);
            assert_eq!(queued_close_code(&mut s), Some($code));
            assert!(s.is_closed());
            // Failed stays failed.
            assert_eq!(s.handle_input(&mut masked(1, true, b"x")).map(|_| ()), Err(ProtocolError::$err));
        }
    )*};
}

server_rejects! {
    rejects_unmasked_client_frame: frame(1, true, None, b"hi") => UnmaskedFrame 1002;
    rejects_reserved_opcode: vec![0x83, 0x80, 0, 0, 0, 0] => ReservedOpcode 1002;
    rejects_rsv1_without_extension: { let mut f = masked(1, true, b"x"); f[0] |= 0x40; f } => ReservedBits 1002;
    rejects_rsv2: { let mut f = masked(2, true, b"x"); f[0] |= 0x20; f } => ReservedBits 1002;
    rejects_rsv3_on_control: { let mut f = masked(9, true, b""); f[0] |= 0x10; f } => ReservedBits 1002;
    rejects_fragmented_ping: masked(9, false, b"") => FragmentedControl 1002;
    rejects_ping_over_125: vec![0x89, 0xfe, 0, 126, 1, 2, 3, 4] => ControlTooLong 1002;
    rejects_continuation_without_start: masked(0, true, b"x") => UnexpectedContinuation 1002;
    rejects_new_message_inside_fragmented_one:
        [masked(1, false, b"a"), masked(1, true, b"b")].concat() => ExpectedContinuation 1002;
    rejects_one_byte_close: masked(8, true, &[3]) => InvalidClosePayload 1002;
    rejects_close_code_1005: masked(8, true, &1005u16.to_be_bytes()) => InvalidCloseCode 1002;
    rejects_close_code_1006: masked(8, true, &1006u16.to_be_bytes()) => InvalidCloseCode 1002;
    rejects_close_code_1015: masked(8, true, &1015u16.to_be_bytes()) => InvalidCloseCode 1002;
    rejects_close_code_999: masked(8, true, &999u16.to_be_bytes()) => InvalidCloseCode 1002;
    rejects_close_code_1004: masked(8, true, &1004u16.to_be_bytes()) => InvalidCloseCode 1002;
    rejects_close_code_2999: masked(8, true, &2999u16.to_be_bytes()) => InvalidCloseCode 1002;
    rejects_close_code_5000: masked(8, true, &5000u16.to_be_bytes()) => InvalidCloseCode 1002;
    rejects_invalid_utf8_text: masked(1, true, b"ok \xff") => InvalidUtf8 1007;
    rejects_invalid_utf8_close_reason: masked(8, true, b"\x03\xe8\xc0\xaf") => InvalidUtf8 1007;
    rejects_unfinished_code_point_at_message_end:
        [masked(1, false, b"\xe2\x82"), masked(0, true, b"")].concat() => InvalidUtf8 1007;
    rejects_64_bit_length_with_top_bit: vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4] => LengthOverflow 1002;
    rejects_non_minimal_length: vec![0x82, 0xfe, 0, 5, 1, 2, 3, 4] => NonMinimalLength 1002;
}

#[test]
fn invalid_utf8_fails_at_the_bad_fragment_not_at_the_end() {
    let mut s = server();
    // The second fragment is invalid; the message never ends.
    let input = [
        masked(1, false, b"hello"),
        masked(
            0,
            false,
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
        ),
    ]
    .concat();
    let (evs, e) = events(&mut s, &input);
    assert!(evs.is_empty());
    assert_eq!(e, Some(ProtocolError::InvalidUtf8));
    // Also inside one large frame that has only partly arrived.
    let mut s = server();
    let mut big = vec![b'a'; 1000];
    big[10] = 0xff;
    let f = masked(1, true, &big);
    let (_, e) = events(&mut s, &f[..40]);
    assert_eq!(e, Some(ProtocolError::InvalidUtf8));
}

#[test]
fn client_rejects_masked_server_frame() {
    let mut c = client();
    let (_, e) = events(&mut c, &masked(1, true, b"x"));
    assert_eq!(e, Some(ProtocolError::MaskedFrame));
    assert_eq!(ProtocolError::MaskedFrame.close_code().as_u16(), 1002);
}

#[test]
fn whole_message_is_borrowed_from_the_input() {
    let mut s = server();
    let mut input = masked(2, true, b"abc");
    let start = input.as_ptr() as usize + 6;
    let (used, ev) = s.handle_input(&mut input).unwrap();
    assert_eq!(used, 9);
    let Event::Binary(data) = ev else { panic!() };
    assert_eq!(data, b"abc");
    assert_eq!(data.as_ptr() as usize, start);
}

#[test]
fn rfc6455_examples_decode_in_both_roles() {
    // Unmasked "Hello" to a client; masked "Hello" to a server.
    let (evs, e) = events(&mut client(), &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!((evs, e), (vec![Ev::Text("Hello".into())], None));
    let (evs, _) = events(
        &mut server(),
        &[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ],
    );
    assert_eq!(evs, [Ev::Text("Hello".into())]);
    // Fragmented "Hel" + "lo".
    let (evs, _) = events(
        &mut client(),
        &[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f],
    );
    assert_eq!(evs, [Ev::Text("Hello".into())]);
    // Ping "Hello" to a client; masked pong "Hello" to a server.
    let (evs, _) = events(&mut client(), &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(evs, [Ev::Ping(b"Hello".to_vec())]);
    let (evs, _) = events(
        &mut server(),
        &[
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ],
    );
    assert_eq!(evs, [Ev::Pong(b"Hello".to_vec())]);
    // 256 bytes and 64 KiB binary, unmasked, to a client.
    for len in [256usize, 65536] {
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let (evs, _) = events(&mut client(), &frame(2, true, None, &data));
        assert_eq!(evs, [Ev::Binary(data)]);
    }
}

#[test]
fn control_frames_may_interleave_fragments() {
    let mut s = server();
    let input = [
        masked(1, false, b"fra"),
        masked(9, true, b"p1"),
        masked(0, false, b"gme"),
        masked(10, true, b"p2"),
        masked(0, true, b"nts"),
    ]
    .concat();
    let (evs, e) = events(&mut s, &input);
    assert_eq!(e, None);
    assert_eq!(
        evs,
        [
            Ev::Ping(b"p1".to_vec()),
            Ev::Pong(b"p2".to_vec()),
            Ev::Text("fragments".into())
        ]
    );
    // The ping was answered.
    let mut out = Vec::new();
    assert!(s.poll_transmit(&mut out));
    assert_eq!(out, [0x8a, 0x02, b'p', b'1']);
}

#[test]
fn auto_pong_can_be_turned_off() {
    let mut config = Config::default();
    config.auto_pong = false;
    let mut s = Conn::new(Role::Server, &Limits::default(), config, None);
    let (evs, _) = events(&mut s, &masked(9, true, b"x"));
    assert_eq!(evs, [Ev::Ping(b"x".to_vec())]);
    assert!(!s.wants_transmit());
    let mut out = Vec::new();
    s.send_pong(b"x", &mut out).unwrap();
    assert_eq!(out, [0x8a, 0x01, b'x']);
}

#[test]
fn split_input_gives_the_same_events_at_every_split() {
    let input = [
        masked(1, true, "héllo".as_bytes()),
        masked(2, false, &[1; 300]),
        masked(9, true, b"ping"),
        masked(0, true, &[2; 70000]),
        masked(1, true, b""),
    ]
    .concat();
    let (expected, e) = events(&mut server(), &input);
    assert_eq!(e, None);
    assert_eq!(expected.len(), 4);
    for split in (0..input.len()).step_by(97).chain(1..20) {
        let mut s = server();
        let mut got = Vec::new();
        let mut buf = input[..split].to_vec();
        for more in [&input[split..], &[][..]] {
            loop {
                let (used, ev) = s.handle_input(&mut buf).unwrap();
                let ev = match ev {
                    Event::NeedData => {
                        buf.drain(..used);
                        break;
                    }
                    Event::Text(t) => Ev::Text(t.into()),
                    Event::Binary(b) => Ev::Binary(b.into()),
                    Event::Ping(p) => Ev::Ping(p.into()),
                    other => panic!("{other:?}"),
                };
                got.push(ev);
                buf.drain(..used);
            }
            buf.extend_from_slice(more);
        }
        assert_eq!(got, expected, "split {split}");
    }
}

#[test]
fn partial_large_frame_is_streamed_not_buffered_by_the_caller() {
    let mut s = server();
    let data = vec![7u8; 10_000];
    let f = masked(2, true, &data);
    let mut consumed = 0;
    let mut got = None;
    for piece in f.chunks(1000) {
        let mut buf = piece.to_vec();
        let (used, ev) = s.handle_input(&mut buf).unwrap();
        // Everything offered is taken: the runtime's buffer never has to hold the frame.
        assert_eq!(used, piece.len());
        consumed += used;
        if let Event::Binary(b) = ev {
            got = Some(b.to_vec());
        }
    }
    assert_eq!(consumed, f.len());
    assert_eq!(got, Some(data));
}

#[test]
fn frame_and_message_limits_close_with_1009_before_reading_the_payload() {
    let mut limits = Limits::default();
    limits.max_frame_payload = 100;
    limits.max_message = 150;
    let mut s = Conn::server(&limits);
    // Only the header of a 101-byte frame: refused from the header alone.
    let f = masked(2, true, &[0; 101]);
    let (_, e) = events(&mut s, &f[..6]);
    assert_eq!(e, Some(ProtocolError::FrameTooLarge));
    assert_eq!(queued_close_code(&mut s), Some(1009));

    let mut s = Conn::server(&limits);
    let input = [masked(2, false, &[0; 100]), masked(0, true, &[0; 51])].concat();
    let (_, e) = events(&mut s, &input[..106 + 6]);
    assert_eq!(e, Some(ProtocolError::MessageTooLarge));
    assert!(s.buffered() <= 150);

    let mut s = Conn::server(&limits);
    let input = [masked(2, false, &[0; 100]), masked(0, true, &[0; 50])].concat();
    let (evs, e) = events(&mut s, &input);
    assert_eq!((evs.len(), e), (1, None));
}

#[test]
fn fragment_floods_close_with_1008() {
    let mut limits = Limits::default();
    limits.max_fragments = 3;
    let mut s = Conn::server(&limits);
    let input = [
        masked(2, false, b""),
        masked(0, false, b""),
        masked(0, false, b""),
        masked(0, true, b""),
    ]
    .concat();
    let (evs, e) = events(&mut s, &input);
    assert!(evs.is_empty());
    assert_eq!(e, Some(ProtocolError::TooManyFragments));
    assert_eq!(queued_close_code(&mut s), Some(1008));
    // Three fragments are fine.
    let mut s = Conn::server(&limits);
    let input = [
        masked(2, false, b"a"),
        masked(0, false, b"b"),
        masked(0, true, b"c"),
    ]
    .concat();
    assert_eq!(events(&mut s, &input).0, [Ev::Binary(b"abc".to_vec())]);
}

#[test]
fn peer_close_is_echoed_and_ends_the_connection() {
    let mut s = server();
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice("bye ✓".as_bytes());
    let (evs, _) = events(
        &mut s,
        &[masked(8, true, &payload), masked(1, true, b"ignored")].concat(),
    );
    assert_eq!(evs, [Ev::Close(Some((1000, "bye ✓".into()))), Ev::Closed]);
    assert!(!s.is_closed());
    assert_eq!(
        s.send_text("late", &mut Vec::new()),
        Err(SendError::Closing)
    );
    let mut out = Vec::new();
    assert!(s.poll_transmit(&mut out));
    assert_eq!(out, [0x88, 0x02, 0x03, 0xe8]);
    assert!(s.is_closed());
}

#[test]
fn empty_close_is_reported_without_a_code_and_echoed_empty() {
    let mut s = server();
    let (evs, _) = events(&mut s, &masked(8, true, b""));
    assert_eq!(evs[0], Ev::Close(None));
    let mut out = Vec::new();
    s.poll_transmit(&mut out);
    assert_eq!(out, [0x88, 0x00]);
}

#[test]
fn after_sending_close_messages_still_arrive_until_the_peer_closes() {
    let mut s = server();
    let mut out = Vec::new();
    s.close(CloseCode::GOING_AWAY, "shutdown", &mut out)
        .unwrap();
    assert_eq!(&out[..4], &[0x88, 0x0a, 0x03, 0xe9]);
    assert_eq!(s.send_binary(b"x", &mut out), Err(SendError::Closing));
    assert_eq!(s.send_ping(b"x", &mut out), Err(SendError::Closing));
    assert_eq!(
        s.close(CloseCode::NORMAL, "", &mut out),
        Err(SendError::Closing)
    );
    let (evs, _) = events(
        &mut s,
        &[
            masked(1, true, b"in flight"),
            masked(8, true, &1001u16.to_be_bytes()),
        ]
        .concat(),
    );
    assert_eq!(evs[0], Ev::Text("in flight".into()));
    assert_eq!(evs[1], Ev::Close(Some((1001, String::new()))));
    assert!(s.is_closed());
    let mut more = Vec::new();
    assert!(!s.poll_transmit(&mut more));
}

#[test]
fn only_a_close_sent_first_awaits_the_peers_close() {
    // This side closes first: awaited from the Close until the peer's arrives.
    let mut s = server();
    assert!(!s.is_awaiting_close());
    s.close(CloseCode::NORMAL, "", &mut Vec::new()).unwrap();
    assert!(s.is_awaiting_close() && s.is_closing());
    events(&mut s, &masked(8, true, &1000u16.to_be_bytes()));
    assert!(!s.is_awaiting_close() && s.is_closed());

    // The peer closes first: its Close is in, so nothing is awaited, before or after the echo.
    let mut s = server();
    events(&mut s, &masked(8, true, b""));
    assert!(s.is_closing() && !s.is_awaiting_close());
    s.poll_transmit(&mut Vec::new());
    assert!(!s.is_awaiting_close());

    // A protocol error: the Close carrying it ends the connection, with no wait of its own.
    let mut s = server();
    let (_, err) = events(&mut s, &frame(1, true, None, b"unmasked"));
    assert!(err.is_some() && !s.is_awaiting_close());
}

#[test]
fn close_refuses_unsendable_codes_and_long_reasons() {
    let mut s = server();
    let mut out = Vec::new();
    for code in [1005u16, 1006, 1015, 0, 2000, 5000] {
        assert_eq!(
            s.close(code.into(), "", &mut out),
            Err(SendError::InvalidCloseCode)
        );
    }
    assert_eq!(
        s.close(CloseCode::NORMAL, &"x".repeat(124), &mut out),
        Err(SendError::ControlTooLong)
    );
    assert!(out.is_empty());
    s.close(CloseCode::NORMAL, &"x".repeat(123), &mut out)
        .unwrap();
    assert_eq!(out.len(), 2 + 125);
}

#[test]
fn send_refuses_misuse() {
    let mut s = server();
    let mut out = Vec::new();
    assert_eq!(
        s.send_ping(&[0; 126], &mut out),
        Err(SendError::ControlTooLong)
    );
    s.send(MessageKind::Text, b"a", false, &mut out).unwrap();
    assert_eq!(
        s.send(MessageKind::Binary, b"b", true, &mut out),
        Err(SendError::FragmentMismatch)
    );
    // Control frames may go out between fragments.
    s.send_ping(b"", &mut out).unwrap();
    s.send(MessageKind::Text, b"b", true, &mut out).unwrap();
    assert_eq!(out, [0x01, 0x01, b'a', 0x89, 0x00, 0x80, 0x01, b'b']);
}

#[test]
fn client_and_server_talk_in_memory() {
    let mut c = client();
    let mut s = server();
    let mut wire = Vec::new();
    c.send_text("hello", &mut wire).unwrap();
    c.send(MessageKind::Binary, &[1, 2], false, &mut wire)
        .unwrap();
    c.send_ping(b"are you there", &mut wire).unwrap();
    c.send(MessageKind::Binary, &[3], true, &mut wire).unwrap();
    // Client frames are masked: the text does not appear on the wire.
    assert!(!wire.windows(5).any(|w| w == b"hello"));
    let (evs, e) = events(&mut s, &wire);
    assert_eq!(e, None);
    assert_eq!(
        evs,
        [
            Ev::Text("hello".into()),
            Ev::Ping(b"are you there".to_vec()),
            Ev::Binary(vec![1, 2, 3])
        ]
    );
    let mut back = Vec::new();
    s.poll_transmit(&mut back);
    s.send_text("hi", &mut back).unwrap();
    s.close(CloseCode::NORMAL, "done", &mut back).unwrap();
    let (evs, _) = events(&mut c, &back);
    assert_eq!(
        evs,
        [
            Ev::Pong(b"are you there".to_vec()),
            Ev::Text("hi".into()),
            Ev::Close(Some((1000, "done".into()))),
            Ev::Closed
        ]
    );
    let mut reply = Vec::new();
    c.poll_transmit(&mut reply);
    assert!(c.is_closed());
    let (evs, _) = events(&mut s, &reply);
    assert_eq!(evs, [Ev::Close(Some((1000, String::new()))), Ev::Closed]);
    assert!(s.is_closed());
}

#[test]
fn data_header_lets_a_server_send_the_payload_separately() {
    let mut s = server();
    let (head, n) = s.data_header(MessageKind::Binary, 70_000, true).unwrap();
    assert_eq!(&head[..n], &[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    assert_eq!(
        client()
            .data_header(MessageKind::Binary, 1, true)
            .map(|_| ()),
        Err(SendError::MaskRequired)
    );
}

#[test]
fn an_idle_connection_can_give_its_reassembly_memory_back() {
    let mut s = server();
    let input = [masked(2, false, &[1; 5000]), masked(0, true, &[2; 5000])].concat();
    let (evs, _) = events(&mut s, &input);
    assert_eq!(evs.len(), 1);
    assert!(s.buffer_capacity() >= 10_000);
    s.shrink_buffers();
    assert_eq!(s.buffer_capacity(), 0);
    // A message in progress keeps its bytes.
    let (_, e) = events(&mut s, &masked(2, false, b"part"));
    assert_eq!(e, None);
    s.shrink_buffers();
    assert_eq!(s.buffered(), 4);
    let (evs, _) = events(&mut s, &masked(0, true, b"!"));
    assert_eq!(evs, [Ev::Binary(b"part!".to_vec())]);
}
