//! Fuzz `RequestParser::parse` and the `ServerConn` that drives it.
//!
//! The whole input is the bytes a peer sent; nothing is reserved for control, so every seed is
//! a plain request. Each input is run under the default limits and under tight ones (so the
//! limit checks are reachable with short inputs) and checked for:
//!
//! - totality and `consumed <= len`;
//! - split invariance: the whole input, the input split once at a position taken from its first
//!   byte, and the input dripped in small steps (re-feeding the growing prefix, as a runtime
//!   does) give the same outcome: the same request and bytes consumed, or both `Partial`, or
//!   the same error (the first problem in byte order), however the bytes were split;
//! - a fixed point: a parsed head, serialised again, parses to the same request;
//! - `ServerConn`: consumed <= remaining, the first event agrees with the parser, it finishes
//!   within a bound, and once failed it keeps returning the same error. Some requests are
//!   answered from the head alone, before their body (the exchange then ends at the body's
//!   End, and the next request follows without a pause); some inputs end in a timeout, which is
//!   answered with a 408 exactly when no response has started.
#![no_main]

use berth::http::{
    header_slots, BodyKind, DateCache, Event, HeaderSlot, ParseError, Request, RequestParser,
    ResponseBody, ResponseHead, ServerConn, Status, Version,
};
use berth::Limits;
use libfuzzer_sys::fuzz_target;

/// Header slots handed to every parse; the tight profile uses fewer.
const SLOTS: usize = 64;

/// An owned copy of a parsed [`Request`], so outcomes of different parses can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    method: String,
    target: String,
    version: Version,
    headers: Vec<(String, Vec<u8>)>,
    body: BodyKind,
    keep_alive: bool,
    expect_continue: bool,
    upgrade: Option<Vec<u8>>,
}

impl Head {
    fn of(req: &Request<'_, '_>) -> Self {
        Head {
            method: req.method.to_owned(),
            target: req.target.to_owned(),
            version: req.version,
            headers: req
                .headers
                .iter()
                .map(|h| (h.name.to_owned(), h.value.to_owned()))
                .collect(),
            body: req.body,
            keep_alive: req.keep_alive,
            expect_continue: req.expect_continue,
            upgrade: req.upgrade.map(<[u8]>::to_vec),
        }
    }

    /// The head as a client would send it: request line, one line per field, empty line.
    fn serialise(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(match self.version {
            Version::Http10 => b" HTTP/1.0\r\n",
            Version::Http11 => b" HTTP/1.1\r\n",
        });
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Complete(usize, Head),
    Partial,
    Failed(ParseError),
}

impl Outcome {
    fn of(result: Result<Status<(usize, Request<'_, '_>)>, ParseError>, len: usize) -> Self {
        match result {
            Ok(Status::Complete((used, req))) => {
                assert!(used <= len, "consumed {used} of {len} bytes");
                assert!(used > 0, "a complete head of zero bytes");
                Outcome::Complete(used, Head::of(&req))
            }
            Ok(Status::Partial) => Outcome::Partial,
            Err(e) => Outcome::Failed(e),
        }
    }
}

/// Assert two parses of the same bytes agree exactly, errors included.
fn assert_same(whole: &Outcome, other: &Outcome, what: &str) {
    assert_eq!(whole, other, "{what}");
}

/// A limit profile and the number of header slots that goes with it.
struct Profile {
    limits: Limits,
    slots: usize,
}

fn profiles() -> [Profile; 2] {
    let mut tight = Limits::default();
    tight.max_request_line = 48;
    tight.max_headers = 8;
    tight.max_header_line = 64;
    tight.max_head = 256;
    tight.max_body = 64;
    tight.max_chunk_line = 16;
    tight.max_trailers = 64;
    [
        Profile {
            limits: Limits::default(),
            slots: SLOTS,
        },
        // Fewer slots than `max_headers`: the slots are the binding bound.
        Profile {
            limits: tight,
            slots: 6,
        },
    ]
}

/// Parse `data[..end]` for each `end` in `ends` (increasing, the last being `data.len()`) with
/// one parser, stopping at the first outcome that is not `Partial`.
fn parse_growing(profile: &Profile, data: &[u8], ends: impl IntoIterator<Item = usize>) -> Outcome {
    let mut parser = RequestParser::new(&profile.limits);
    let mut outcome = Outcome::Partial;
    for end in ends {
        let prefix = &data[..end];
        let mut slots = header_slots::<SLOTS>();
        outcome = Outcome::of(parser.parse(prefix, &mut slots[..profile.slots]), end);
        if outcome != Outcome::Partial {
            break;
        }
    }
    outcome
}

fn check_parser(profile: &Profile, data: &[u8]) -> Outcome {
    let len = data.len();
    let whole = parse_growing(profile, data, [len]);

    let first = usize::from(data.first().copied().unwrap_or(0));
    let split_at = first * (len + 1) / 256;
    let split = parse_growing(profile, data, [split_at, len]);
    assert_same(&whole, &split, &format!("whole vs split at {split_at}"));

    let step = first % 7 + 1;
    let drip = parse_growing(profile, data, (1..=len).step_by(step).chain([len]));
    assert_same(
        &whole,
        &drip,
        &format!("whole vs dripped in steps of {step}"),
    );

    if let Outcome::Complete(_, head) = &whole {
        check_fixed_point(profile, head);
    }
    whole
}

/// Serialising a parsed head and parsing it again gives the same request.
fn check_fixed_point(profile: &Profile, head: &Head) {
    let bytes = head.serialise();
    // Re-serialising can lengthen a line by the space after the colon, so only the count
    // and body limits, which it cannot change, stay as they were.
    let mut limits = profile.limits;
    limits.max_request_line = usize::MAX / 4;
    limits.max_header_line = usize::MAX / 4;
    limits.max_head = usize::MAX / 4;
    let mut parser = RequestParser::new(&limits);
    let mut slots = header_slots::<SLOTS>();
    let again = Outcome::of(
        parser.parse(&bytes, &mut slots[..profile.slots]),
        bytes.len(),
    );
    assert_eq!(
        again,
        Outcome::Complete(bytes.len(), head.clone()),
        "not a fixed point: {:?}",
        String::from_utf8_lossy(&bytes)
    );
}

fn check_conn(profile: &Profile, data: &[u8], whole: &Outcome) {
    let mut conn = ServerConn::new(&profile.limits);
    let date = DateCache::new(1_700_000_000);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut requests = 0usize;
    // The request being read: (it asked to upgrade, it was answered before its body ended).
    let mut pending: Option<(bool, bool)> = None;
    let salt = usize::from(data.first().copied().unwrap_or(0));
    // Every request consumes at least one byte and yields at most Request, Data per byte and End.
    let bound = 3 * data.len() + 8;

    for iteration in 0.. {
        assert!(
            iteration <= bound,
            "ServerConn made no progress in {bound} calls"
        );
        let rest = &data[pos..];
        let mut slots: [HeaderSlot<'_>; SLOTS] = header_slots();
        let result = conn.handle_input(rest, &mut slots[..profile.slots]);
        if iteration == 0 {
            // The first call is a plain parse of the whole input.
            let expected = match result {
                Ok((used, Event::Request(req))) => Outcome::Complete(used, Head::of(&req)),
                Ok((0, Event::NeedData)) => Outcome::Partial,
                Ok((used, ref event)) => panic!("first event {event:?} after {used} bytes"),
                Err(e) => Outcome::Failed(e),
            };
            assert_eq!(&expected, whole, "ServerConn and RequestParser disagree");
        }
        let (used, event) = match result {
            Ok(ok) => ok,
            Err(e) => {
                let mut slots: [HeaderSlot<'_>; SLOTS] = header_slots();
                assert_eq!(conn.handle_input(rest, &mut slots).err(), Some(e));
                let mut slots: [HeaderSlot<'_>; SLOTS] = header_slots();
                assert_eq!(conn.handle_input(b"", &mut slots).err(), Some(e));
                assert_eq!(conn.error(), Some(e));
                assert!(conn.is_closed());
                conn.write_error(&date, &mut out);
                assert!(
                    !conn.write_error(&date, &mut out),
                    "error response written twice"
                );
                return;
            }
        };
        assert!(
            used <= rest.len(),
            "consumed {used} of {} bytes",
            rest.len()
        );
        pos += used;
        match event {
            Event::Request(req) => {
                assert!(pending.is_none(), "a request before the previous one ended");
                assert!(conn.wants_body() && conn.wants_response());
                if req.expect_continue && salt.is_multiple_of(2) {
                    // 100 Continue only when there is a body to wait for.
                    assert_eq!(conn.write_continue(&mut out), req.body != BodyKind::Empty);
                }
                let early = (salt + requests) % 5 == 4;
                if early {
                    respond(&mut conn, &date, &mut out, false, salt + requests);
                    assert!(!conn.wants_response() && !conn.is_response_open());
                    assert!(!conn.is_closed(), "closed before the body was read");
                }
                pending = Some((req.upgrade.is_some(), early));
            }
            Event::Data(bytes) => {
                assert!(pending.is_some(), "body bytes outside a request");
                assert!(conn.wants_body());
                assert!(!bytes.is_empty() && bytes.len() <= used);
            }
            Event::End(_) => {
                let Some((upgrade, answered)) = pending.take() else {
                    panic!("End outside a request");
                };
                assert!(!conn.wants_body());
                // An early answer's exchange ended with the body; any other waits for one.
                assert_eq!(conn.wants_response(), !answered);
                if !answered {
                    respond(&mut conn, &date, &mut out, upgrade, salt + requests);
                }
                requests += 1;
            }
            Event::NeedData if salt % 3 == 1 => {
                // The runtime's deadline passes while it waits for more.
                let answered = matches!(pending, Some((_, true)));
                conn.handle_timeout();
                assert_eq!(conn.error(), Some(ParseError::Timeout));
                assert!(conn.is_closed());
                let before = out.len();
                assert_eq!(conn.write_error(&date, &mut out), !answered);
                if !answered {
                    assert!(out[before..].starts_with(b"HTTP/1.1 408 Request Timeout\r\n"));
                }
                assert!(!conn.write_error(&date, &mut out), "408 written twice");
                let mut slots: [HeaderSlot<'_>; SLOTS] = header_slots();
                assert_eq!(
                    conn.handle_input(&data[pos..], &mut slots).err(),
                    Some(ParseError::Timeout)
                );
                return;
            }
            Event::NeedData | Event::Closed | Event::Upgraded => return,
            Event::Paused => panic!("paused although every request was answered at its End"),
            _ => return,
        }
    }
}

/// Answer the request that just ended, in one of a few shapes chosen by `pick`; an `upgrade`
/// request is sometimes switched.
fn respond(conn: &mut ServerConn, date: &DateCache, out: &mut Vec<u8>, upgrade: bool, pick: usize) {
    if upgrade && pick.is_multiple_of(3) {
        let head = ResponseHead {
            status: 101,
            headers: &[("Upgrade", b"websocket")],
            body: ResponseBody::Empty,
            close: false,
        };
        conn.write_head(&head, date, out)
            .expect("101 for an upgrade request");
        return;
    }
    let (status, body, close) = match pick % 4 {
        0 => (200, ResponseBody::Length(5), false),
        1 => (200, ResponseBody::Chunked, false),
        2 => (204, ResponseBody::Empty, false),
        _ => (404, ResponseBody::Length(5), true),
    };
    let head = ResponseHead {
        status,
        headers: &[("Content-Type", b"text/plain")],
        body,
        close,
    };
    conn.write_head(&head, date, out)
        .expect("head for a waiting request");
    if body != ResponseBody::Empty {
        conn.write_body(b"he", out).expect("body within its length");
        conn.write_body(b"llo", out)
            .expect("body within its length");
    }
    conn.write_end(out).expect("complete response");
}

fuzz_target!(|data: &[u8]| {
    for profile in &profiles() {
        let whole = check_parser(profile, data);
        check_conn(profile, data, &whole);
    }
});
