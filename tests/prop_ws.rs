//! Property tests for the WebSocket core: round trips at the length edges, split invariance,
//! masking, totality on arbitrary bytes, and limits.

use berth::ws::{
    apply_mask_at, apply_mask_bytewise, Conn, Event, FrameHeader, MessageKind, OpCode,
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
            let mut again = input.clone();
            prop_assert_eq!(conn.handle_input(&mut again).map(|_| ()), Err(e));
            let mut out = Vec::new();
            conn.poll_transmit(&mut out);
            prop_assert!(conn.is_closed());
        }
    }

    /// Masked garbage after a valid prefix: same, with the server's framing exercised deeper.
    #[test]
    fn valid_prefix_then_garbage_never_panics(
        msgs in proptest::collection::vec(message(), 0..3),
        tail in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut wire = encode(&msgs, 2, 3);
        wire.extend_from_slice(&tail);
        let _ = run(&mut Conn::server(&Limits::default()), &wire, &[wire.len() / 2]);
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
