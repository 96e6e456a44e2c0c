//! The driver shared by the `ws_server` and `ws_client` targets (not a target itself: each
//! includes it with `mod ws_common;`). [`check`] feeds the input to a `ws::Conn` of the given
//! role as the bytes its peer sent, and asserts everything listed in those targets' docs.
//!
//! A run plays the runtime: bytes arrive in pieces, the connection is handed the bytes not yet
//! consumed (a `Vec` it unmasks in place, so every run works on its own copy of the input),
//! every data message is echoed back, and queued control frames are written with
//! `poll_transmit` whenever the connection asks for more bytes, after an error and at the
//! end. All that is written goes into one `out` buffer, which a connection of the other role
//! then decodes: it must give back exactly the frames the run expected to have sent.

use berth::ws::{CloseCode, Conn, Event, FrameHeader, MaskSource, ProtocolError, Role, SendError};
use berth::{Limits, Status};

/// An owned copy of an [`Event`] other than `NeedData`, so runs can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The code and reason, if the frame had a code.
    Close(Option<(u16, String)>),
    Closed,
}

impl Ev {
    /// The owned copy, `None` for `NeedData`. Checks what holds for every event whatever the
    /// limits: text is UTF-8, control payloads fit in 125 bytes, close codes are sendable.
    fn of(event: Event<'_>) -> Option<Ev> {
        Some(match event {
            Event::Text(text) => {
                assert!(
                    std::str::from_utf8(text.as_bytes()).is_ok(),
                    "Text that is not UTF-8: {:x?}",
                    text.as_bytes()
                );
                Ev::Text(text.to_owned())
            }
            Event::Binary(data) => Ev::Binary(data.to_vec()),
            Event::Ping(data) => {
                assert!(data.len() <= 125, "Ping of {} bytes", data.len());
                Ev::Ping(data.to_vec())
            }
            Event::Pong(data) => {
                assert!(data.len() <= 125, "Pong of {} bytes", data.len());
                Ev::Pong(data.to_vec())
            }
            Event::Close(frame) => Ev::Close(frame.map(|frame| {
                assert!(frame.code.is_sendable(), "Close with code {}", frame.code);
                assert!(
                    frame.reason.len() <= 123,
                    "reason of {}",
                    frame.reason.len()
                );
                assert!(std::str::from_utf8(frame.reason.as_bytes()).is_ok());
                (frame.code.as_u16(), frame.reason.to_owned())
            })),
            Event::Closed => Ev::Closed,
            Event::NeedData => return None,
            // `Event` is `#[non_exhaustive]`: a new kind of event needs new checks here.
            other => panic!("an event this target does not know: {other:?}"),
        })
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// All input was given and the connection wants more; `consumed` input bytes were
    /// consumed, `buffered` of them sit in the reassembly buffer.
    NeedData { consumed: usize, buffered: usize },
    /// `Event::Closed`: the close handshake is over.
    Closed,
    /// The peer broke the protocol.
    Failed(ProtocolError),
}

/// Everything a run saw: its events (without `NeedData` and `Closed`) and its end.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    events: Vec<Ev>,
    end: End,
}

/// A limit profile, and whether the connection starts the close handshake itself.
struct Setup {
    limits: Limits,
    /// Once this many events have arrived, send Close (1000, "bye"); if the peer's Close is
    /// the last of them, that answers it in place of the automatic echo.
    close_after: Option<usize>,
}

fn setups(data: &[u8]) -> [Setup; 3] {
    let mut tight = Limits::default();
    tight.max_frame_payload = 64;
    tight.max_message = 128;
    tight.max_fragments = 4;
    let close_after = usize::from(data.last().copied().unwrap_or(0) % 4);
    [
        Setup {
            limits: Limits::default(),
            close_after: None,
        },
        Setup {
            limits: tight,
            close_after: None,
        },
        Setup {
            limits: Limits::default(),
            close_after: Some(close_after),
        },
    ]
}

/// Deterministic masking keys: a 32-bit xorshift.
fn mask_source(seed: u32) -> MaskSource {
    let mut x = seed | 1;
    Box::new(move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x.to_le_bytes()
    })
}

fn new_conn(role: Role, limits: &Limits) -> Conn {
    match role {
        Role::Server => Conn::server(limits),
        Role::Client => Conn::client(limits, mask_source(0x2545_f491)),
    }
}

fn peer_of(role: Role) -> Role {
    match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    }
}

/// The frames a run must have written to `out`, as its peer will decode them.
#[derive(Debug, Default)]
struct Sent {
    frames: Vec<Ev>,
    /// The payload of the latest ping received while open: its automatic pong is queued.
    pong: Option<Vec<u8>>,
    /// The Close frame queued for `poll_transmit` (an echo, or the answer to an error).
    close: Option<Ev>,
}

/// `poll_transmit`, which must write exactly the queued pong and Close, in that order.
fn poll(conn: &mut Conn, out: &mut Vec<u8>, sent: &mut Sent) {
    let want = sent.pong.is_some() || sent.close.is_some();
    assert_eq!(
        conn.wants_transmit(),
        want,
        "wants_transmit, expecting {sent:?}"
    );
    let before = out.len();
    assert_eq!(
        conn.poll_transmit(out),
        want,
        "poll_transmit, expecting {sent:?}"
    );
    assert_eq!(
        out.len() > before,
        want,
        "poll_transmit's return and output disagree"
    );
    sent.frames.extend(sent.pong.take().map(Ev::Pong));
    sent.frames.extend(sent.close.take());
    assert!(
        !conn.wants_transmit(),
        "still wants to transmit after poll_transmit"
    );
}

/// `NeedData` must mean it: the bytes left unconsumed hold no whole frame, only a partial
/// header or a control frame whose payload has not all arrived (a data frame's payload is
/// consumed as it arrives).
fn check_needs_data(rest: &[u8]) {
    match FrameHeader::decode(rest) {
        Ok(Status::Partial) => {}
        Ok(Status::Complete((n, header))) => assert!(
            header.opcode.is_control() && (rest.len() as u64) < n as u64 + header.payload_len,
            "NeedData with {} bytes left, starting with {header:?}",
            rest.len()
        ),
        Err(e) => panic!(
            "NeedData with {} bytes left that fail with {e:?}",
            rest.len()
        ),
    }
}

/// Feed `input` to a new connection of `role` as a runtime would: bytes arrive in pieces of
/// the sizes `arrivals` yields (the last piece takes whatever is left), and each call gets the
/// bytes not yet consumed.
fn run(role: Role, setup: &Setup, input: &[u8], mut arrivals: impl Iterator<Item = usize>) -> Run {
    let limits = &setup.limits;
    let mut conn = new_conn(role, limits);
    let mut arrive = |received: usize| {
        let piece = arrivals.next().unwrap_or(usize::MAX).max(1);
        received.saturating_add(piece).min(input.len())
    };
    let mut received = arrive(0);
    let mut pending = input[..received].to_vec();
    let mut consumed = 0;
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut sent = Sent::default();
    let (mut we_closed, mut peer_closed) = (false, false);
    // Every event but `NeedData` consumes a byte, and every `NeedData` brings a byte more.
    let bound = 2 * input.len() + 4;
    let mut calls = 0;
    let end = loop {
        calls += 1;
        assert!(calls <= bound, "no progress in {bound} calls");
        if !we_closed && setup.close_after.is_some_and(|k| events.len() >= k) {
            conn.close(CloseCode::NORMAL, "bye", &mut out)
                .expect("close before sending or receiving a Close");
            we_closed = true;
            sent.pong = None;
            sent.close = None;
            sent.frames.push(Ev::Close(Some((1000, "bye".to_owned()))));
        }
        let len = pending.len();
        let (used, event) = match conn.handle_input(&mut pending) {
            Ok((used, event)) => (used, Ev::of(event)),
            Err(e) => {
                assert_eq!(conn.handle_input(&mut pending).err(), Some(e), "not sticky");
                assert_eq!(conn.handle_input(&mut []).err(), Some(e), "not sticky");
                assert_eq!(conn.error(), Some(e));
                assert!(conn.is_closing());
                // The Close answering the error, unless this side had sent one already.
                sent.pong = None;
                let queued = !we_closed;
                assert_eq!(conn.wants_transmit(), queued, "Close queued after {e:?}");
                assert_eq!(
                    conn.is_closed(),
                    !queued,
                    "is_closed before the Close is written"
                );
                let mut tail = Vec::new();
                assert_eq!(conn.poll_transmit(&mut tail), queued);
                assert!(conn.is_closed(), "not closed once the Close is written");
                assert!(!conn.poll_transmit(&mut tail), "written twice");
                let close = Ev::Close(Some((e.close_code().as_u16(), String::new())));
                let expected = if queued {
                    vec![close.clone(), Ev::Closed]
                } else {
                    Vec::new()
                };
                assert_eq!(
                    decode(peer_of(role), &tail),
                    expected,
                    "the Close after {e:?}"
                );
                out.extend_from_slice(&tail);
                sent.frames.extend(queued.then_some(close));
                break End::Failed(e);
            }
        };
        assert!(used <= len, "consumed {used} of {len} bytes");
        pending.drain(..used);
        consumed += used;
        assert!(
            conn.buffered() <= limits.max_message,
            "{} bytes buffered, max_message {}",
            conn.buffered(),
            limits.max_message
        );
        assert!(conn.error().is_none());
        let Some(ev) = event else {
            check_needs_data(&pending);
            poll(&mut conn, &mut out, &mut sent);
            if received == input.len() {
                assert!(!conn.is_closed(), "closed, yet asking for more bytes");
                break End::NeedData {
                    consumed,
                    buffered: conn.buffered(),
                };
            }
            let next = arrive(received);
            pending.extend_from_slice(&input[received..next]);
            received = next;
            continue;
        };
        if ev == Ev::Closed {
            assert!(peer_closed, "Closed before the peer's Close");
            assert_eq!(used, len, "Closed left bytes unconsumed");
            assert_eq!(conn.handle_input(&mut []), Ok((0, Event::Closed)));
            poll(&mut conn, &mut out, &mut sent);
            assert!(
                conn.is_closed(),
                "not closed after Closed and poll_transmit"
            );
            break End::Closed;
        }
        assert!(!peer_closed, "{ev:?} after the peer's Close");
        match &ev {
            Ev::Text(text) => {
                assert!(text.len() <= limits.max_message, "Text of {}", text.len());
                let result = conn.send_text(text, &mut out);
                echoed(result, we_closed, &ev, &mut sent);
            }
            Ev::Binary(data) => {
                assert!(data.len() <= limits.max_message, "Binary of {}", data.len());
                let result = conn.send_binary(data, &mut out);
                echoed(result, we_closed, &ev, &mut sent);
            }
            Ev::Ping(data) if !we_closed => sent.pong = Some(data.clone()),
            Ev::Close(frame) => {
                peer_closed = true;
                sent.pong = None;
                if !we_closed {
                    // The echo carries the code without the reason.
                    let code = frame.as_ref().map(|&(code, _)| (code, String::new()));
                    sent.close = Some(Ev::Close(code));
                }
            }
            Ev::Ping(_) | Ev::Pong(_) | Ev::Closed => {}
        }
        assert_eq!(conn.is_closing(), we_closed || peer_closed);
        events.push(ev);
    };

    // Everything written decodes, in the other role, to exactly the frames expected.
    let mut expected = sent.frames;
    if matches!(expected.last(), Some(Ev::Close(_))) {
        expected.push(Ev::Closed);
    }
    assert_eq!(decode(peer_of(role), &out), expected, "echo round trip");
    Run { events, end }
}

/// An echo must succeed until this side has sent Close, and then fail with `Closing`.
fn echoed(result: Result<(), SendError>, we_closed: bool, ev: &Ev, sent: &mut Sent) {
    if we_closed {
        assert_eq!(result, Err(SendError::Closing), "echo after Close");
    } else {
        assert_eq!(result, Ok(()), "echo");
        sent.frames.push(ev.clone());
    }
}

/// Decode what a connection wrote with a connection of the other (`role`) role: every byte
/// must decode, and nothing may follow a Close.
fn decode(role: Role, bytes: &[u8]) -> Vec<Ev> {
    let mut limits = Limits::default();
    limits.max_frame_payload = u64::MAX >> 1;
    limits.max_message = usize::MAX >> 1;
    let mut conn = new_conn(role, &limits);
    let mut buf = bytes.to_vec();
    let mut events = Vec::new();
    for _ in 0..=bytes.len() {
        let len = buf.len();
        let (used, event) = match conn.handle_input(&mut buf) {
            Ok((used, event)) => (used, Ev::of(event)),
            Err(e) => panic!("our own output fails to decode: {e:?} after {events:?}"),
        };
        assert!(used <= len, "consumed {used} of {len} bytes");
        buf.drain(..used);
        match event {
            None => {
                assert!(
                    buf.is_empty(),
                    "{} bytes of a partial frame written",
                    buf.len()
                );
                return events;
            }
            Some(Ev::Closed) => {
                assert_eq!(used, 0, "{used} bytes written after Close");
                events.push(Ev::Closed);
                return events;
            }
            Some(ev) => events.push(ev),
        }
    }
    panic!("decoding {} bytes made no progress", bytes.len());
}

/// Piece sizes 1..=16 taken from the first bytes of `input`, cycled.
fn split_sizes(input: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let ctl = input.get(..input.len().min(8)).unwrap_or_default();
    (0..).map(move |i| {
        ctl.get(i % ctl.len().max(1))
            .map_or(1, |&b| usize::from(b % 16) + 1)
    })
}

/// Run `data` through a connection of `role` whole, split and one byte at a time, under each
/// setup: all three runs must agree exactly.
pub fn check(role: Role, data: &[u8]) {
    for setup in &setups(data) {
        let whole = run(role, setup, data, core::iter::once(data.len()));
        let split = run(role, setup, data, split_sizes(data));
        assert_eq!(whole, split, "whole vs split");
        let drip = run(role, setup, data, core::iter::repeat(1));
        assert_eq!(whole, drip, "whole vs one byte at a time");
    }
}
