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
//! - `ServerConn`, driven as a runtime drives it (each request answered at its `End`, or
//!   early as below, in a shape chosen by the input: 200 with a length or chunked, 204, 404
//!   with `close`, or a 101 for an upgrade request): consumed <= remaining, the first event
//!   agrees with the parser, it finishes within a bound, and every event is one that can come
//!   next. A request's body events add up to its `Content-Length` (chunked: at most
//!   `max_body`) and trailers come only with a chunked body; `NeedData` comes only when the
//!   rest is a partial head or body; `Closed` only after an exchange that was not to persist
//!   (the request's keep-alive, the response's `close`, a chunked answer to HTTP/1.0 unless
//!   to `HEAD`), `Upgraded` only after a 101, and `Paused` never. Every response write must
//!   succeed, and an ended response is complete in the output (a chunked one with its last
//!   chunk). Once failed, it keeps returning the same error, and `write_error` writes the
//!   error's status with `Connection: close` exactly once;
//! - early answers: some requests are answered from the head alone, before their body. The
//!   response is complete at once and nothing more can be written for it; the body is still
//!   reported in full, the connection stays open until its `End`, and there the exchange ends
//!   with the same persistence checks as above (the next request follows without a pause). An
//!   error in the rest of such a body is not answered;
//! - timeouts: some inputs end in `handle_timeout` where `NeedData` left them waiting. It
//!   fails the connection with `ParseError::Timeout` (sticky, no keep-alive), and
//!   `write_error` answers 408 exactly when no response has started, once.
#![no_main]

use berth::http::{
    header_slots, BodyKind, DateCache, Event, HeaderSlot, ParseError, Request, RequestParser,
    ResponseBody, ResponseError, ResponseHead, ServerConn, Status, Version,
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

/// The request being read by `check_conn`: what its head declared, its body so far, and
/// whether it was answered before its body ended.
#[derive(Debug)]
struct Pending {
    upgrade: bool,
    version: Version,
    /// A `HEAD` request: its response carries no body.
    head: bool,
    body: BodyKind,
    received: u64,
    /// Will the connection persist after this exchange, as the request asks?
    keep_alive: bool,
    /// Answered from its head alone, before its body was read: whether the connection persists
    /// after that response. The exchange still ends at the body's `End`.
    early: Option<bool>,
}

impl Pending {
    /// Has the response to this request been written already (so an error is not answered)?
    fn is_answered(pending: &Option<Pending>) -> bool {
        pending.as_ref().is_some_and(|p| p.early.is_some())
    }
}

fn check_conn(profile: &Profile, data: &[u8], whole: &Outcome) {
    let mut conn = ServerConn::new(&profile.limits);
    let date = DateCache::new(1_700_000_000);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut requests = 0usize;
    let mut pending: Option<Pending> = None;
    // How the last answered exchange ended: `Some(true)` if it asked the connection to persist,
    // `Some(false)` if it or its response closed it; and whether that response was a 101.
    let mut last_keep_alive: Option<bool> = None;
    let mut switched = false;
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
                assert!(!switched, "{e:?} after the 101");
                // A response is complete before the next input is read, so none has started
                // unless the request being read was answered early: then the error in the
                // rest of its body is not answered.
                check_failed(
                    &mut conn,
                    rest,
                    e,
                    Pending::is_answered(&pending),
                    &date,
                    &mut out,
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
                assert!(used > 0, "a request head of zero bytes");
                assert_ne!(
                    last_keep_alive,
                    Some(false),
                    "a request read after the connection was to close"
                );
                assert!(conn.wants_body() && conn.wants_response() && !conn.is_response_open());
                let mut p = Pending {
                    upgrade: req.upgrade.is_some(),
                    version: req.version,
                    head: req.is_head(),
                    body: req.body,
                    received: 0,
                    keep_alive: req.keep_alive,
                    early: None,
                };
                if req.expect_continue && salt.is_multiple_of(2) {
                    // 100 Continue only when there is a body to wait for.
                    assert_eq!(conn.write_continue(&mut out), req.body != BodyKind::Empty);
                }
                if (salt + requests) % 5 == 4 {
                    p.early = Some(answer_early(
                        &mut conn,
                        &date,
                        &mut out,
                        &p,
                        salt + requests,
                    ));
                }
                pending = Some(p);
            }
            Event::Data(bytes) => {
                let Some(p) = pending.as_mut() else {
                    panic!("body bytes outside a request");
                };
                assert!(!bytes.is_empty() && bytes.len() <= used);
                assert!(conn.wants_body());
                assert_eq!(conn.wants_response(), p.early.is_none());
                p.received += bytes.len() as u64;
                match p.body {
                    BodyKind::Empty => panic!("body bytes for a request without a body"),
                    BodyKind::Length(n) => assert!(p.received <= n, "{} of {n} bytes", p.received),
                    BodyKind::Chunked => assert!(p.received <= profile.limits.max_body),
                }
            }
            Event::End(trailers) => {
                let Some(p) = pending.take() else {
                    panic!("End outside a request");
                };
                match p.body {
                    BodyKind::Empty => assert_eq!((p.received, used), (0, 0)),
                    BodyKind::Length(n) => {
                        assert_eq!(p.received, n, "End before the whole body");
                        assert_eq!(used, 0);
                    }
                    BodyKind::Chunked => {}
                }
                assert!(
                    trailers.is_empty() || p.body == BodyKind::Chunked,
                    "trailers without a chunked body"
                );
                assert!(!conn.wants_body() && !conn.is_response_open());
                // An early answer's exchange ends with the body; any other waits for its
                // response now.
                assert_eq!(conn.wants_response(), p.early.is_none(), "after {p:?}");
                let answer = match p.early {
                    Some(persists) => Answer::Response { persists },
                    None => respond(&mut conn, &date, &mut out, &p, true, salt + requests),
                };
                match answer {
                    Answer::Switched => switched = true,
                    Answer::Response { persists } => {
                        last_keep_alive = Some(persists);
                        assert_eq!(conn.is_keep_alive(), persists, "keep-alive after {p:?}");
                        assert_eq!(conn.is_closed(), !persists, "closed after {p:?}");
                    }
                }
                requests += 1;
            }
            Event::NeedData => {
                // The whole input was given: what is left is an unfinished head or body.
                match &pending {
                    None => {
                        assert_eq!(used, 0, "a NeedData that consumed bytes between requests");
                        let mut parser = RequestParser::new(&profile.limits);
                        let mut slots = header_slots::<SLOTS>();
                        assert_eq!(
                            Outcome::of(
                                parser.parse(rest, &mut slots[..profile.slots]),
                                rest.len()
                            ),
                            Outcome::Partial,
                            "NeedData on {} bytes that are not a partial head",
                            rest.len()
                        );
                    }
                    Some(Pending {
                        body: BodyKind::Length(n),
                        received,
                        ..
                    }) => {
                        assert!(received < n, "NeedData with the body complete");
                        assert_eq!(pos, data.len(), "NeedData with body bytes left");
                    }
                    Some(Pending {
                        body: BodyKind::Empty,
                        ..
                    }) => panic!("NeedData for a request without a body"),
                    Some(_) => {}
                }
                if salt % 3 == 1 {
                    // The runtime's deadline for the rest passes while it waits: the core
                    // fails, and answers 408 exactly when no response has started.
                    let answered = Pending::is_answered(&pending);
                    conn.handle_timeout();
                    assert!(!conn.is_keep_alive(), "keep-alive after a timeout");
                    let written = check_failed(
                        &mut conn,
                        &data[pos..],
                        ParseError::Timeout,
                        answered,
                        &date,
                        &mut out,
                    );
                    assert!(
                        answered || written.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"),
                        "{:?}",
                        String::from_utf8_lossy(&written)
                    );
                }
                return;
            }
            Event::Closed => {
                assert_eq!(used, 0);
                assert!(pending.is_none(), "closed in the middle of a request");
                assert_eq!(
                    last_keep_alive,
                    Some(false),
                    "closed, yet the last exchange asked to persist"
                );
                assert!(conn.is_closed());
                assert!(!switched);
                return;
            }
            Event::Upgraded => {
                assert_eq!(used, 0);
                assert!(switched, "Upgraded without a 101");
                assert!(pending.is_none());
                return;
            }
            Event::Paused => panic!("paused although every request was answered at its End"),
            // `Event` is `#[non_exhaustive]`: a new kind of event needs new checks here.
            other => panic!("an event this target does not know: {other:?}"),
        }
    }
}

/// `conn` has failed with `e`: it keeps failing with it, and `write_error` writes the error's
/// status with `Connection: close` exactly once, or nothing at all if the request was
/// `answered` already. Returns what it wrote.
fn check_failed(
    conn: &mut ServerConn,
    rest: &[u8],
    e: ParseError,
    answered: bool,
    date: &DateCache,
    out: &mut Vec<u8>,
) -> Vec<u8> {
    let mut slots: [HeaderSlot<'_>; SLOTS] = header_slots();
    assert_eq!(conn.handle_input(rest, &mut slots).err(), Some(e));
    let mut slots: [HeaderSlot<'_>; SLOTS] = header_slots();
    assert_eq!(conn.handle_input(b"", &mut slots).err(), Some(e));
    assert_eq!(conn.error(), Some(e));
    assert!(conn.is_closed());
    let before = out.len();
    let wrote = conn.write_error(date, out);
    let written = out[before..].to_vec();
    if answered {
        assert!(
            !wrote && written.is_empty(),
            "{e:?} answered after the response"
        );
    } else {
        assert!(wrote, "no error response for {e:?}");
        let status_line = format!("HTTP/1.1 {} ", e.status());
        assert!(
            written.starts_with(status_line.as_bytes())
                && written.ends_with(b"Content-Length: 0\r\nConnection: close\r\n\r\n"),
            "error response {:?} for {e:?}",
            String::from_utf8_lossy(&written)
        );
    }
    assert!(!conn.write_error(date, out), "error response written twice");
    assert_eq!(out[before..], written, "a failed write_error wrote");
    written
}

/// Answer the request just read from its head alone, before its body (as a handler refusing
/// it or redirecting it does), and check the exchange stays open for the rest of the body:
/// the response is complete and nothing more can be written for it, the body is still read,
/// and the connection neither closes nor changes its mind about persisting. Returns whether
/// it persists.
fn answer_early(
    conn: &mut ServerConn,
    date: &DateCache,
    out: &mut Vec<u8>,
    req: &Pending,
    pick: usize,
) -> bool {
    let Answer::Response { persists } = respond(conn, date, out, req, false, pick) else {
        panic!("switched protocols before the request body was read");
    };
    assert!(!conn.wants_response() && !conn.is_response_open());
    assert!(
        conn.wants_body(),
        "the body is not read after an early answer"
    );
    assert!(!conn.is_closed(), "closed before the body was read");
    assert_eq!(
        conn.is_keep_alive(),
        persists,
        "keep-alive after an early answer to {req:?}"
    );
    let before = out.len();
    assert!(!conn.write_continue(out), "100 Continue after the response");
    let again = ResponseHead {
        status: 200,
        headers: &[],
        body: ResponseBody::Empty,
        close: false,
    };
    assert_eq!(
        conn.write_head(&again, date, out),
        Err(ResponseError::NoRequest)
    );
    assert_eq!(conn.write_body(b"x", out), Err(ResponseError::NoResponse));
    assert_eq!(conn.write_end(out), Err(ResponseError::NoResponse));
    assert_eq!(out.len(), before, "written after the response ended");
    persists
}

/// How `respond` answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// A 101: the connection switched protocols.
    Switched,
    /// A complete response, after which the connection persists or closes.
    Response { persists: bool },
}

/// Answer the current request in one of a few shapes chosen by `pick`; an upgrade request is
/// sometimes switched, if `may_switch` (its body has ended). Every write must succeed, the
/// head must start with the status line chosen, and once ended the response must be complete
/// in `out` (a chunked one with its last chunk), even when the request body is still unread.
fn respond(
    conn: &mut ServerConn,
    date: &DateCache,
    out: &mut Vec<u8>,
    req: &Pending,
    may_switch: bool,
    pick: usize,
) -> Answer {
    let start = out.len();
    if req.upgrade && may_switch && pick.is_multiple_of(3) {
        let head = ResponseHead {
            status: 101,
            headers: &[("Upgrade", b"websocket")],
            body: ResponseBody::Empty,
            close: false,
        };
        conn.write_head(&head, date, out)
            .expect("101 for an upgrade request");
        assert!(out[start..].starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(out.ends_with(b"Connection: Upgrade\r\n\r\n"));
        return Answer::Switched;
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
    let status_line = format!("HTTP/1.1 {status} ");
    assert!(
        out[start..].starts_with(status_line.as_bytes()),
        "{:?}",
        String::from_utf8_lossy(&out[start..])
    );
    if body != ResponseBody::Empty {
        conn.write_body(b"he", out).expect("body within its length");
        conn.write_body(b"llo", out)
            .expect("body within its length");
    }
    conn.write_end(out).expect("complete response");
    // A chunked body to an HTTP/1.0 client is ended by closing the connection; a response to
    // HEAD has no body to end, so it does not close.
    let until_close = body == ResponseBody::Chunked && req.version == Version::Http10 && !req.head;
    let tail: &[u8] = if req.head || body == ResponseBody::Empty {
        b"\r\n\r\n"
    } else if body == ResponseBody::Chunked && !until_close {
        b"\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"
    } else {
        b"\r\n\r\nhello"
    };
    assert!(
        out[start..].ends_with(tail),
        "response not complete at its end: {:?}",
        String::from_utf8_lossy(&out[start..])
    );
    Answer::Response {
        persists: req.keep_alive && !close && !until_close,
    }
}

fuzz_target!(|data: &[u8]| {
    for profile in &profiles() {
        let whole = check_parser(profile, data);
        check_conn(profile, data, &whole);
    }
});
