//! Property tests for the WebSocket core: round trips at the length edges (through `Conn` and
//! through the frame encoder alone), split invariance, masking, totality on arbitrary bytes,
//! masked garbage against a model of RFC 6455, the refusal of unmasked client frames, and
//! limits.

use berth::ws::{
    apply_mask_at, apply_mask_bytewise, write_frame, Conn, Event, FrameHeader, MessageKind, OpCode,
    ProtocolError, MAX_HEADER_LEN,
};
use berth::{Limits, Status};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// An owned event, for comparing runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
    Closed,
}

fn own(ev: Event<'_>) -> Option<Ev> {
    Some(match ev {
        Event::Text(t) => Ev::Text(t.into()),
        Event::Binary(b) => Ev::Binary(b.into()),
        Event::Ping(p) => Ev::Ping(p.into()),
        Event::Pong(p) => Ev::Pong(p.into()),
        Event::Close(c) => Ev::Close(c.map(|c| (c.code.as_u16(), c.reason.into()))),
        Event::Closed => Ev::Closed,
        _ => return None,
    })
}

/// Feed `input` in pieces ending at `cuts` (sorted offsets), keeping unconsumed bytes the way a
/// runtime does. Returns the events, and the error if one ended the run.
fn run(conn: &mut Conn, input: &[u8], cuts: &[usize]) -> (Vec<Ev>, Option<ProtocolError>) {
    let mut evs = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        let cut = cut.clamp(fed, input.len());
        buf.extend_from_slice(&input[fed..cut]);
        fed = cut;
        loop {
            let len = buf.len();
            let (used, ev) = match conn.handle_input(&mut buf) {
                Ok(found) => found,
                Err(e) => return (evs, Some(e)),
            };
            assert!(used <= len, "consumed {used} of {len}");
            let ev = own(ev);
            buf.drain(..used);
            match ev {
                None => break,
                Some(Ev::Closed) => return (evs, None),
                Some(ev) => evs.push(ev),
            }
        }
    }
    (evs, None)
}

#[derive(Debug, Clone)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
}

fn length_edge() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(125),
        Just(126),
        Just(127),
        Just(65535),
        Just(65536),
        0usize..300,
    ]
}

fn message() -> impl Strategy<Value = Msg> {
    prop_oneof![
        "\\PC{0,40}".prop_map(Msg::Text),
        length_edge()
            .prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n))
            .prop_map(Msg::Binary),
        proptest::collection::vec(any::<u8>(), 0..=125).prop_map(Msg::Ping),
    ]
}

fn expected(msgs: &[Msg]) -> Vec<Ev> {
    msgs.iter()
        .map(|m| match m {
            Msg::Text(t) => Ev::Text(t.clone()),
            Msg::Binary(b) => Ev::Binary(b.clone()),
            Msg::Ping(p) => Ev::Ping(p.clone()),
        })
        .collect()
}

/// Encode messages with a client, each data message split into `frags` fragments.
fn encode(msgs: &[Msg], frags: usize, seed: u32) -> Vec<u8> {
    let mut state = seed | 1;
    let mut client = Conn::client(
        &Limits::default(),
        Box::new(move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_ne_bytes()
        }),
    );
    let mut wire = Vec::new();
    for m in msgs {
        let (kind, bytes) = match m {
            Msg::Text(t) => (MessageKind::Text, t.as_bytes()),
            Msg::Binary(b) => (MessageKind::Binary, &b[..]),
            Msg::Ping(p) => {
                client.send_ping(p, &mut wire).unwrap();
                continue;
            }
        };
        let size = bytes.len().div_ceil(frags).max(1);
        let pieces: Vec<&[u8]> = if bytes.is_empty() {
            vec![&[][..]]
        } else {
            bytes.chunks(size).collect()
        };
        let last = pieces.len() - 1;
        for (i, piece) in pieces.into_iter().enumerate() {
            client.send(kind, piece, i == last, &mut wire).unwrap();
        }
    }
    wire
}

fn big_limits() -> Limits {
    let mut l = Limits::default();
    l.max_fragments = 100_000;
    l
}

// ---------------------------------------------------------------------------------------------
// Masked garbage and the model that says what the server must make of it
// ---------------------------------------------------------------------------------------------

/// One frame as generated: any header fields (reserved opcodes and RSV bits included), and
/// the payload before masking. Lengths are always in their minimal form.
#[derive(Debug, Clone)]
struct GenFrame {
    fin: bool,
    /// RSV1..3 as the three bits under FIN.
    rsv: u8,
    /// Any four-bit opcode.
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
}

impl GenFrame {
    /// The frame on the wire, written here rather than by berth's encoder.
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![u8::from(self.fin) << 7 | (self.rsv & 7) << 4 | (self.opcode & 0xf)];
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let len = self.payload.len();
        match len {
            0..=125 => out.push(mask_bit | len as u8),
            126..=0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        match self.mask {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => out.extend_from_slice(&self.payload),
        }
        out
    }
}

/// Small limits, so that the garbage crosses them: frame payload, message, fragments.
fn model_limits() -> Limits {
    let mut l = Limits::default();
    l.max_frame_payload = 100;
    l.max_message = 150;
    l.max_fragments = 3;
    l
}

/// Close codes an endpoint may send (RFC 6455 §7.4.1, §7.4.2 and the IANA registry).
fn sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// What a server must make of `frames` under [`model_limits`]: the events, and the close
/// code of the error that ends the run, if one does. Written from RFC 6455, not from berth.
fn model(frames: &[GenFrame]) -> (Vec<Ev>, Option<u16>) {
    let limits = model_limits();
    let mut evs = Vec::new();
    // The message being received: text?, its bytes so far, its frames so far.
    let mut receiving: Option<(bool, Vec<u8>, u32)> = None;
    for f in frames {
        let len = f.payload.len();
        let control = f.opcode >= 8;
        // §5.2: reserved opcodes; §5.5: control frames are whole and at most 125 bytes;
        // §5.1: a client masks every frame; §5.2: no RSV bit without an extension.
        if matches!(f.opcode, 3..=7 | 11..=15)
            || (control && (!f.fin || len > 125))
            || f.mask.is_none()
            || f.rsv != 0
        {
            return (evs, Some(1002));
        }
        match f.opcode {
            9 => evs.push(Ev::Ping(f.payload.clone())),
            10 => evs.push(Ev::Pong(f.payload.clone())),
            8 => {
                // §5.5.1, §7.4: no payload, or a sendable code and a UTF-8 reason.
                let close = match &f.payload[..] {
                    [] => None,
                    [_] => return (evs, Some(1002)),
                    [hi, lo, reason @ ..] => {
                        let code = u16::from_be_bytes([*hi, *lo]);
                        if !sendable(code) {
                            return (evs, Some(1002));
                        }
                        let Ok(reason) = std::str::from_utf8(reason) else {
                            return (evs, Some(1007));
                        };
                        Some((code, reason.to_owned()))
                    }
                };
                // Nothing after the peer's Close is read.
                evs.push(Ev::Close(close));
                return (evs, None);
            }
            op => {
                // §5.4: continuations continue a message; a new one waits for the last's end.
                let (text, mut bytes, count) = match (op, receiving.take()) {
                    (0, Some(message)) => message,
                    (1 | 2, None) => (op == 1, Vec::new(), 0),
                    _ => return (evs, Some(1002)),
                };
                if len as u64 > limits.max_frame_payload || bytes.len() + len > limits.max_message {
                    return (evs, Some(1009));
                }
                if count + 1 > limits.max_fragments {
                    return (evs, Some(1008));
                }
                bytes.extend_from_slice(&f.payload);
                // §8.1: text fails at the first byte that cannot begin valid UTF-8.
                if text {
                    if let Err(e) = std::str::from_utf8(&bytes) {
                        if e.error_len().is_some() || f.fin {
                            return (evs, Some(1007));
                        }
                    }
                }
                if f.fin {
                    evs.push(if text {
                        Ev::Text(String::from_utf8(bytes).unwrap())
                    } else {
                        Ev::Binary(bytes)
                    });
                } else {
                    receiving = Some((text, bytes, count + 1));
                }
            }
        }
    }
    (evs, None)
}

fn payload(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..=max.min(20)),
        proptest::collection::vec(any::<u8>(), 0..=max),
    ]
}

/// Text that is mostly UTF-8: valid text, with a byte sometimes changed.
fn text_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        "\\PC{0,40}",
        proptest::option::weighted(0.1, (any::<prop::sample::Index>(), any::<u8>())),
    )
        .prop_map(|(text, change)| {
            let mut bytes = text.into_bytes();
            if let Some((at, b)) = change {
                if !bytes.is_empty() {
                    let at = at.index(bytes.len());
                    bytes[at] = b;
                }
            }
            bytes
        })
}

/// A Close payload: empty, one byte, or a code (sendable or not) and a reason (UTF-8 or not).
fn close_payload() -> impl Strategy<Value = Vec<u8>> {
    let code = prop_oneof![
        4 => prop::sample::select(vec![
            999u16, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012,
            1013, 1014, 1015, 1016, 2999, 3000, 4999, 5000,
        ]),
        1 => any::<u16>(),
    ];
    prop_oneof![
        1 => Just(Vec::new()),
        1 => any::<u8>().prop_map(|b| vec![b]),
        4 => (code, text_bytes()).prop_map(|(code, reason)| {
            let mut p = code.to_be_bytes().to_vec();
            p.extend(reason.into_iter().take(123));
            p
        }),
    ]
}

fn key() -> impl Strategy<Value = [u8; 4]> {
    any::<[u8; 4]>()
}

/// A control frame with a valid header, masked.
fn control_frame() -> impl Strategy<Value = GenFrame> {
    (
        prop::sample::select(vec![8u8, 9, 10]),
        key(),
        payload(125),
        close_payload(),
    )
        .prop_map(|(opcode, key, payload, close)| GenFrame {
            fin: true,
            rsv: 0,
            opcode,
            mask: Some(key),
            payload: if opcode == 8 { close } else { payload },
        })
}

/// A frame with a valid header (masked), of any kind; mostly a whole message.
fn valid_frame() -> impl Strategy<Value = GenFrame> {
    prop_oneof![
        control_frame(),
        (
            prop::bool::weighted(0.9),
            any::<bool>(),
            key(),
            text_bytes(),
            payload(140)
        )
            .prop_map(|(fin, text, key, text_data, binary_data)| GenFrame {
                fin,
                rsv: 0,
                opcode: if text { 1 } else { 2 },
                mask: Some(key),
                payload: if text { text_data } else { binary_data },
            }),
    ]
}

/// A message cut into fragments at arbitrary byte offsets (code points may be split), with
/// control frames between them.
fn fragmented() -> impl Strategy<Value = Vec<GenFrame>> {
    (
        any::<bool>(),
        text_bytes(),
        payload(200),
        proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        proptest::collection::vec(proptest::option::weighted(0.3, control_frame()), 4),
        key(),
    )
        .prop_map(|(text, text_data, binary_data, cuts, controls, key)| {
            let data = if text { text_data } else { binary_data };
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
            points.sort_unstable();
            points.push(data.len());
            let mut frames = Vec::new();
            let mut start = 0;
            for (i, &end) in points.iter().enumerate() {
                let opcode = match (i, text) {
                    (0, true) => 1,
                    (0, false) => 2,
                    _ => 0,
                };
                frames.push(GenFrame {
                    fin: i == points.len() - 1,
                    rsv: 0,
                    opcode,
                    mask: Some(key),
                    payload: data[start..end].to_vec(),
                });
                start = end;
                if let Some(control) = &controls[i.min(controls.len() - 1)] {
                    if i < points.len() - 1 {
                        frames.push(control.clone());
                    }
                }
            }
            frames
        })
}

/// A frame with any header fields at all (still masked, mostly).
fn garbage_frame() -> impl Strategy<Value = GenFrame> {
    (
        prop::bool::weighted(0.7),
        prop_oneof![8 => Just(0u8), 1 => 1u8..8],
        0u8..16,
        proptest::option::weighted(0.85, key()),
        payload(140),
    )
        .prop_map(|(fin, rsv, opcode, mask, payload)| GenFrame {
            fin,
            rsv,
            opcode,
            mask,
            payload,
        })
}

/// A stream of frames: whole and fragmented messages, control frames and garbage.
fn frames() -> impl Strategy<Value = Vec<GenFrame>> {
    proptest::collection::vec(
        prop_oneof![
            3 => valid_frame().prop_map(|f| vec![f]),
            2 => fragmented(),
            1 => garbage_frame().prop_map(|f| vec![f]),
        ],
        0..6,
    )
    .prop_map(|units| units.into_iter().flatten().collect())
}

proptest! {
    // Failures are saved where STYLE.md section 2.8 wants them.
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/prop_ws.txt",
        ))),
        ..ProptestConfig::default()
    })]

    /// Encoding then decoding is the identity, at every length edge, whole or fragmented.
    #[test]
    fn encode_then_decode_is_identity(
        msgs in proptest::collection::vec(message(), 1..6),
        frags in 1usize..5,
        seed in any::<u32>(),
    ) {
        let wire = encode(&msgs, frags, seed);
        let (evs, err) = run(&mut Conn::server(&big_limits()), &wire, &[]);
        prop_assert_eq!(err, None);
        prop_assert_eq!(evs, expected(&msgs));
    }

    /// Any split of a valid stream into chunks decodes to the same events.
    #[test]
    fn split_invariance(
        msgs in proptest::collection::vec(message(), 1..5),
        frags in 1usize..4,
        mut cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let wire = encode(&msgs, frags, 7);
        let mut offsets: Vec<usize> = cuts.drain(..).map(|i| i.index(wire.len() + 1)).collect();
        offsets.sort_unstable();
        let (whole, e1) = run(&mut Conn::server(&big_limits()), &wire, &[]);
        let (split, e2) = run(&mut Conn::server(&big_limits()), &wire, &offsets);
        prop_assert_eq!(e1, None);
        prop_assert_eq!(e2, None);
        prop_assert_eq!(split, whole);
    }

    /// Frame headers round-trip through encode and decode for every field combination.
    #[test]
    fn frame_header_round_trip(
        fin in any::<bool>(), rsv in 0u8..8, op in prop::sample::select(vec![0u8, 1, 2]),
        mask in proptest::option::of(any::<[u8; 4]>()), len in prop_oneof![0u64..=70_000, Just(u64::MAX >> 1)],
    ) {
        let h = FrameHeader {
            fin, rsv1: rsv & 4 != 0, rsv2: rsv & 2 != 0, rsv3: rsv & 1 != 0,
            opcode: OpCode::from_u8(op).unwrap(), mask, payload_len: len,
        };
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut out);
        prop_assert_eq!(n, h.encoded_len());
        prop_assert_eq!(FrameHeader::decode(&out[..n]), Ok(Status::Complete((n, h))));
        for end in 0..n {
            prop_assert_eq!(FrameHeader::decode(&out[..end]), Ok(Status::Partial));
        }
    }

    /// What `write_frame` writes, for every opcode, both roles and payloads at every length
    /// edge, is the frame as an independent writer lays it out; the header decoder gives back
    /// its fields and unmasking gives back the payload; and a connection of the other role
    /// reads a whole message or control frame back as the event it stands for.
    #[test]
    fn write_frame_decodes_back_to_the_frame(
        op in prop::sample::select(vec![0u8, 1, 2, 8, 9, 10]),
        fin in any::<bool>(),
        mask in proptest::option::of(key()),
        data in prop_oneof![
            length_edge().prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n)),
            "\\PC{0,200}".prop_map(String::into_bytes),
        ],
        control in payload(125),
    ) {
        let opcode = OpCode::from_u8(op).unwrap();
        let fin = fin || opcode.is_control();
        let payload = if opcode.is_control() { control } else { data };
        let mut wire = b"before".to_vec();
        write_frame(opcode, fin, mask, &payload, &mut wire);
        prop_assert_eq!(&wire[..6], b"before");
        let wire = wire.split_off(6);
        let written = GenFrame { fin, rsv: 0, opcode: op, mask, payload: payload.clone() };
        prop_assert_eq!(&wire, &written.encode());

        let header = FrameHeader {
            fin, rsv1: false, rsv2: false, rsv3: false, opcode, mask,
            payload_len: payload.len() as u64,
        };
        let n = header.encoded_len();
        prop_assert_eq!(FrameHeader::decode(&wire), Ok(Status::Complete((n, header))));
        let mut body = wire[n..].to_vec();
        if let Some(key) = mask {
            apply_mask_at(&mut body, key, 0);
        }
        prop_assert_eq!(&body, &payload);

        let event = match opcode {
            OpCode::Binary if fin => Some(Ev::Binary(payload.clone())),
            OpCode::Text if fin => String::from_utf8(payload.clone()).ok().map(Ev::Text),
            OpCode::Ping => Some(Ev::Ping(payload.clone())),
            OpCode::Pong => Some(Ev::Pong(payload.clone())),
            _ => None,
        };
        if let Some(event) = event {
            let mut reader = match mask {
                Some(_) => Conn::server(&Limits::default()),
                None => Conn::client(&Limits::default(), Box::new(|| [1, 2, 3, 4])),
            };
            let (evs, err) = run(&mut reader, &wire, &[]);
            prop_assert_eq!(err, None);
            prop_assert_eq!(evs, vec![event]);
        }
    }

    /// Masking is an involution, and the word-at-a-time path equals the bytewise one for any
    /// length, offset and alignment.
    #[test]
    fn mask_fast_path_equals_bytewise(
        data in proptest::collection::vec(any::<u8>(), 0..200),
        key in any::<[u8; 4]>(), offset in 0usize..8, start in 0usize..8,
    ) {
        let start = start.min(data.len());
        let mut fast = data.clone();
        let mut slow = data.clone();
        apply_mask_at(&mut fast[start..], key, offset);
        apply_mask_bytewise(&mut slow[start..], key, offset);
        prop_assert_eq!(&fast, &slow);
        apply_mask_at(&mut fast[start..], key, offset);
        prop_assert_eq!(fast, data);
    }

    /// Arbitrary bytes never panic either role, consumption stays within the input, and a
    /// failure is sticky.
    #[test]
    fn arbitrary_bytes_never_panic(
        input in proptest::collection::vec(any::<u8>(), 0..400),
        mut cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        client in any::<bool>(),
    ) {
        let mut offsets: Vec<usize> = cuts.drain(..).map(|i| i.index(input.len() + 1)).collect();
        offsets.sort_unstable();
        let mut conn = if client {
            Conn::client(&Limits::default(), Box::new(|| [1, 2, 3, 4]))
        } else {
            Conn::server(&Limits::default())
        };
        let (_, err) = run(&mut conn, &input, &offsets);
        if let Some(e) = err {
            prop_assert!(matches!(e.close_code().as_u16(), 1002 | 1007 | 1008 | 1009), "{:?}", e);
            let mut again = input.clone();
            prop_assert_eq!(conn.handle_input(&mut again).map(|_| ()), Err(e));
            let mut out = Vec::new();
            conn.poll_transmit(&mut out);
            prop_assert!(conn.is_closed());
        }
    }

    /// Random bytes after a valid prefix: the prefix's events come first and unchanged, and
    /// whatever the bytes do after it, a failure carries a code from the set a peer's errors
    /// map to, stays failed, and writes a Close with that code.
    #[test]
    fn valid_prefix_then_garbage_fails_with_a_valid_code(
        msgs in proptest::collection::vec(message(), 0..3),
        tail in proptest::collection::vec(any::<u8>(), 0..200),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut wire = encode(&msgs, 2, 3);
        wire.extend_from_slice(&tail);
        let mut conn = Conn::server(&Limits::default());
        let (evs, err) = run(&mut conn, &wire, &[cut.index(wire.len() + 1)]);
        let want = expected(&msgs);
        prop_assert!(evs.len() >= want.len() && evs[..want.len()] == want[..], "{:?}", evs);
        if let Some(e) = err {
            let code = e.close_code().as_u16();
            prop_assert!(matches!(code, 1002 | 1007 | 1008 | 1009), "{:?}", e);
            prop_assert_eq!(conn.handle_input(&mut tail.clone()).map(|_| ()), Err(e));
            let mut out = Vec::new();
            prop_assert!(conn.poll_transmit(&mut out));
            let [hi, lo] = code.to_be_bytes();
            prop_assert_eq!(out, vec![0x88, 0x02, hi, lo]);
        }
    }

    /// A frame a client sent unmasked is refused by the server with 1002 (RFC 6455 §5.1),
    /// whatever the frame, and after any valid masked frames; the frames before it are
    /// delivered.
    #[test]
    fn an_unmasked_frame_to_the_server_is_refused_with_1002(
        msgs in proptest::collection::vec(message(), 0..3),
        frame in valid_frame(),
    ) {
        let mut wire = encode(&msgs, 1, 5);
        wire.extend_from_slice(&GenFrame { mask: None, ..frame }.encode());
        let mut conn = Conn::server(&Limits::default());
        let (evs, err) = run(&mut conn, &wire, &[]);
        prop_assert_eq!(evs, expected(&msgs));
        prop_assert_eq!(err, Some(ProtocolError::UnmaskedFrame));
        let mut out = Vec::new();
        prop_assert!(conn.poll_transmit(&mut out));
        prop_assert_eq!(out, vec![0x88, 0x02, 0x03, 0xea]);
        prop_assert!(conn.is_closed());
    }

    /// Limits hold: no message over `max_message` is delivered and the reassembly buffer never
    /// exceeds it; an over-limit stream fails with 1009 or 1008.
    #[test]
    fn limits_hold(
        sizes in proptest::collection::vec(0usize..200, 1..8),
        max_message in 1usize..400,
        max_fragments in 1u32..6,
    ) {
        let mut limits = Limits::default();
        limits.max_message = max_message;
        limits.max_frame_payload = 150;
        limits.max_fragments = max_fragments;
        let mut client = Conn::client(&Limits::default(), Box::new(|| [9, 8, 7, 6]));
        let mut wire = Vec::new();
        let last = sizes.len() - 1;
        for (i, n) in sizes.iter().enumerate() {
            client.send(MessageKind::Binary, &vec![0xab; *n], i == last, &mut wire).unwrap();
        }
        let mut server = Conn::server(&limits);
        let mut buf = wire.clone();
        let mut pos = 0;
        loop {
            let (used, ev) = match server.handle_input(&mut buf[pos..]) {
                Ok(found) => found,
                Err(e) => {
                    prop_assert!(matches!(e.close_code().as_u16(), 1008 | 1009), "{:?}", e);
                    break;
                }
            };
            if let Event::Binary(b) = ev {
                prop_assert!(b.len() <= max_message);
                prop_assert_eq!(b.len(), sizes.iter().sum::<usize>());
            }
            let need = matches!(ev, Event::NeedData);
            pos += used;
            prop_assert!(server.buffered() <= max_message);
            if need {
                break;
            }
        }
    }
}

proptest! {
    // More cases: each is cheap, and the garbage takes many to reach the deeper rules.
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/prop_ws.txt",
        ))),
        ..ProptestConfig::default()
    })]

    /// Arbitrary masked frames (garbage fields, payloads and fragmentation, with valid
    /// messages and control frames among them), fed to the server in any pieces, give exactly
    /// the events and the error an independent model of RFC 6455 predicts, and a failure
    /// writes a Close with its code.
    #[test]
    fn masked_frames_decode_as_the_model_says(
        frames in frames(),
        mut cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let wire: Vec<u8> = frames.iter().flat_map(GenFrame::encode).collect();
        let mut offsets: Vec<usize> = cuts.drain(..).map(|i| i.index(wire.len() + 1)).collect();
        offsets.sort_unstable();
        let mut conn = Conn::server(&model_limits());
        let (evs, err) = run(&mut conn, &wire, &offsets);
        let (model_evs, model_code) = model(&frames);
        prop_assert_eq!(evs, model_evs);
        prop_assert_eq!(err.map(|e| e.close_code().as_u16()), model_code);
        if let Some(code) = model_code {
            let mut out = Vec::new();
            prop_assert!(conn.poll_transmit(&mut out));
            let [hi, lo] = code.to_be_bytes();
            prop_assert_eq!(out, vec![0x88, 0x02, hi, lo]);
            prop_assert!(conn.is_closed());
        }
    }
}
