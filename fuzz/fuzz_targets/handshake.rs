//! Fuzz the opening handshake: `Upgrade::parse` and its answer on the server side,
//! `ClientHandshake::parse_response` on the client side.
//!
//! The whole input is the bytes a peer sent; nothing is reserved for control, so every seed is
//! a plain request or response head. Each input is checked three ways:
//!
//! - **Server.** The input goes through `ServerConn::handle_input` (the `RequestParser` a runtime
//!   uses); when it is a request head, `Upgrade::parse` judges it.
//!   - A refusal has status 400, 405 or 426 (403 and 500 are the application's to give), the
//!     header fields its status calls for (`Allow: GET` with 405, `Sec-WebSocket-Version: 13`
//!     with 426, nothing else), and is justified: the request really breaks the rule the error
//!     names, and passes every rule `parse` checks before it.
//!   - An acceptance is justified the same way (GET, HTTP/1.1, `Upgrade: websocket` with
//!     `Connection: upgrade`, no body, one `Sec-WebSocket-Version: 13`, one key that is the
//!     canonical base64 of 16 bytes, checked by a decoder written here). Its
//!     `Sec-WebSocket-Accept` is 28 bytes of padded base64 and equals `accept_key` of the key.
//!     `protocols()` and `extensions()` (and each offer's `params()`) end within a bound set by
//!     the input's size, and every subprotocol, extension name and parameter name they yield is
//!     a non-empty RFC 9110 token (no separators, no whitespace). `accept(Some(p))` succeeds
//!     exactly for the offered `p` and adds `Sec-WebSocket-Protocol: p`. `origin()` is one of
//!     the `Origin` values. Finally `ServerConn::write_head` writes the 101, after which the
//!     connection reports `Upgraded`, and berth's own client, built from the nonce the key
//!     decodes to, accepts that answer whole, with the chosen subprotocol.
//! - **Client.** The input, as a response to a `ClientHandshake` that offered `chat` and
//!   `superchat`, never panics, and every outcome is checked:
//!   - `Complete((len, accepted))`: `0 < len <= input length`, `len <= MAX_RESPONSE_HEAD`,
//!     `len` is where a head split here (independently of berth and httparse) ends, and a judge
//!     written here from RFC 6455 §4.1 accepts that head with the same subprotocol; the head
//!     alone gives the same answer and shorter prefixes are `Partial`;
//!   - `Partial` only for input within `MAX_RESPONSE_HEAD`, and its prefixes are `Partial`;
//!   - `InvalidResponse` stays so when more bytes (an empty line) follow;
//!   - every other error (a status other than 101, no upgrade, a wrong accept key, a
//!     subprotocol not offered or a second one, any extension) comes with a whole head, is the
//!     one the judge finds first, and stays the same whatever follows the head;
//!   - the caller-misuse error `InvalidRequest` never.
//! - **Round trip.** A client with a nonce and subprotocol tokens taken from the input writes
//!   its request; the server accepts it with exactly those subprotocols and the right key, and
//!   the client accepts the server's 101.
//!
//! Two findings of this target are fixed and kept as regression seeds in `corpus/handshake/`:
//! a `Sec-WebSocket-Protocol` element that is not a token is now refused with 400
//! (`protocol-not-a-token-regression`), and `ExtensionOffer::params()` no longer splits inside
//! quoted strings (`extension-param-quoted-semicolon-regression`,
//! `extension-param-count-regression`).
#![no_main]

use berth::handshake::{
    accept_key, client_key, Accepted, ClientError, ClientHandshake, HandshakeError, Upgrade,
    MAX_EXTENSION_ITEMS, MAX_RESPONSE_HEAD,
};
use berth::http::{
    header_slots, BodyKind, DateCache, Event, Request, ResponseBody, ResponseHead, ServerConn,
    Version,
};
use berth::{Limits, Status};
use libfuzzer_sys::fuzz_target;

/// Header slots for a request head: fewer than the default `Limits::max_headers` (100), so
/// running out of slots is reachable too.
const SLOTS: usize = 64;

/// The client side's nonce: RFC 6455 §1.3's, so a response carrying its accept key
/// (`s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`) gets past the key check and the rest of the head is fuzzed.
const NONCE: [u8; 16] = *b"the sample nonce";

/// The subprotocols the client side offered.
const OFFERED: &[&str] = &["chat", "superchat"];

/// The date any 101 is written with.
const NOW: u64 = 1_700_000_000;

/// An RFC 9110 `tchar`, spelled out here rather than borrowed from berth.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A non-empty RFC 9110 `token`: no separators, no whitespace, no control or non-ASCII bytes.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// `s` without leading and trailing SP and HTAB.
fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t');
    let end = s.iter().rposition(|&b| b != b' ' && b != b'\t');
    match (start, end) {
        (Some(start), Some(end)) => &s[start..=end],
        _ => &[],
    }
}

/// The values of every field named `name` (case-insensitive), in order.
fn values<'b>(req: &Request<'_, 'b>, name: &str) -> Vec<&'b [u8]> {
    req.headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
        .collect()
}

fn base64_digit(c: u8) -> Option<u32> {
    let d = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(d))
}

/// The 16 bytes `key` encodes, if it is their canonical padded base64 (22 digits, the last
/// with its 4 spare bits clear, then `==`): the only keys RFC 6455 §4.2.1 allows.
fn decode_key(key: &[u8]) -> Option<[u8; 16]> {
    let (digits, pad) = key.split_at_checked(22)?;
    if pad != b"==" {
        return None;
    }
    let mut out = [0u8; 16];
    let (mut acc, mut bits, mut n) = (0u32, 0, 0);
    for &c in digits {
        acc = (acc << 6) | base64_digit(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out[n] = (acc >> bits) as u8;
            n += 1;
            acc &= (1 << bits) - 1;
        }
    }
    (n == 16 && acc == 0).then_some(out)
}

/// Is `accept` 27 base64 digits and one `=`, the padded encoding of a 20-byte SHA-1?
fn is_accept_shaped(accept: &[u8]) -> bool {
    accept.len() == 28
        && accept[..27].iter().all(|&c| base64_digit(c).is_some())
        && accept[27] == b'='
}

/// What `Upgrade::parse` checks, in its order, judged independently of it.
struct Facts<'b> {
    get: bool,
    http11: bool,
    websocket: bool,
    empty_body: bool,
    version_13: bool,
    /// The nonce, when there is exactly one key and it is valid.
    nonce: Option<[u8; 16]>,
    key: Option<&'b [u8]>,
    extension_lines: usize,
    /// Every `Sec-WebSocket-Protocol` list element is a token.
    protocols_ok: bool,
}

impl<'b> Facts<'b> {
    fn of(req: &Request<'_, 'b>) -> Self {
        let versions = values(req, "sec-websocket-version");
        let keys = values(req, "sec-websocket-key");
        let key = match keys[..] {
            [key] => Some(key),
            _ => None,
        };
        Facts {
            get: req.method == "GET",
            http11: req.version == Version::Http11,
            // `Request::upgrade` is set only with `upgrade` among the `Connection` options.
            websocket: req.upgrade.is_some_and(|u| {
                u.split(|&b| b == b',')
                    .any(|e| trim(e).eq_ignore_ascii_case(b"websocket"))
            }),
            empty_body: req.body == BodyKind::Empty,
            version_13: versions[..] == [&b"13"[..]],
            nonce: key.and_then(decode_key),
            key,
            extension_lines: values(req, "sec-websocket-extensions").len(),
            protocols_ok: values(req, "sec-websocket-protocol").iter().all(|v| {
                v.split(|&b| b == b',')
                    .map(trim)
                    .filter(|e| !e.is_empty())
                    .all(|e| e.iter().all(|&b| is_tchar(b)))
            }),
        }
    }
}

fn check_server(data: &[u8]) {
    let limits = Limits::default();
    let mut conn = ServerConn::new(&limits);
    let mut slots = header_slots::<SLOTS>();
    let (used, req) = match conn.handle_input(data, &mut slots) {
        Ok((used, Event::Request(req))) => (used, req),
        // Not a whole request head yet, or not a valid one: `http_request` checks those.
        Ok((0, Event::NeedData)) | Err(_) => return,
        Ok((used, other)) => panic!("a new connection gave {other:?} after {used} bytes"),
    };
    assert!(
        used <= data.len(),
        "consumed {used} of {} bytes",
        data.len()
    );
    let facts = Facts::of(&req);
    match Upgrade::parse(&req) {
        Ok(upgrade) => check_accepted(&req, &facts, &upgrade, conn, &data[used..]),
        Err(e) => check_refused(&facts, e),
    }
}

fn check_refused(f: &Facts<'_>, e: HandshakeError) {
    let status = e.status();
    assert!(
        [400, 403, 405, 426, 500].contains(&status),
        "{e:?} has status {status}"
    );
    let expected: &[(&str, &[u8])] = match status {
        405 => &[("Allow", b"GET")],
        426 => &[("Sec-WebSocket-Version", b"13")],
        _ => &[],
    };
    assert_eq!(e.headers(), expected, "header fields of {e:?}");
    assert!(e.to_string().contains(&status.to_string()), "{e}");
    // Each refusal names the first rule, in `parse`'s order, that the request breaks.
    let before = match e {
        HandshakeError::MethodNotAllowed => !f.get,
        HandshakeError::NotHttp11 => f.get && !f.http11,
        HandshakeError::NotAnUpgrade => f.get && f.http11 && !f.websocket,
        HandshakeError::BodyNotAllowed => f.get && f.http11 && f.websocket && !f.empty_body,
        HandshakeError::UnsupportedVersion => {
            f.get && f.http11 && f.websocket && f.empty_body && !f.version_13
        }
        HandshakeError::InvalidKey => {
            f.get && f.http11 && f.websocket && f.empty_body && f.version_13 && f.nonce.is_none()
        }
        HandshakeError::InvalidProtocols => {
            f.get
                && f.http11
                && f.websocket
                && f.empty_body
                && f.version_13
                && f.nonce.is_some()
                && !f.protocols_ok
        }
        HandshakeError::InvalidExtensions => {
            f.get
                && f.http11
                && f.websocket
                && f.empty_body
                && f.version_13
                && f.nonce.is_some()
                && f.protocols_ok
                && f.extension_lines > 0
        }
        other => panic!("Upgrade::parse refused with the application's {other:?}"),
    };
    assert!(before, "{e:?} is not the first rule the request breaks");
}

fn check_accepted(
    req: &Request<'_, '_>,
    f: &Facts<'_>,
    upgrade: &Upgrade<'_, '_>,
    conn: ServerConn,
    rest: &[u8],
) {
    assert!(
        f.get && f.http11 && f.websocket && f.empty_body && f.version_13,
        "accepted a request that is not a version 13 upgrade"
    );
    let (Some(key), Some(nonce)) = (f.key, f.nonce) else {
        panic!("accepted without exactly one valid key");
    };
    assert_eq!(&client_key(nonce)[..], key, "a key decodes to another");

    // The answer without a subprotocol.
    let plain = upgrade.accept(None).expect("accept(None)");
    let plain = plain.headers();
    let accept = accept_key(key);
    assert!(is_accept_shaped(&accept), "{accept:?}");
    assert_eq!(
        &plain[..],
        [
            ("Upgrade", &b"websocket"[..]),
            ("Sec-WebSocket-Accept", &accept[..])
        ]
    );

    // Subprotocols: each element of a `Sec-WebSocket-Protocol` list is at least one byte
    // followed by a comma, so there are at most (bytes + 1) / 2 of them.
    let bound: usize = values(req, "sec-websocket-protocol")
        .iter()
        .map(|v| v.len().div_ceil(2))
        .sum();
    let offered: Vec<&str> = upgrade.protocols().take(bound + 1).collect();
    assert!(offered.len() <= bound, "protocols() does not end");
    for p in &offered {
        assert!(is_token(p), "subprotocol {p:?} is not a token");
        let with = upgrade.accept(Some(p)).expect("accept an offered protocol");
        let with = with.headers();
        assert_eq!(with.len(), 3);
        assert_eq!(with[..2], plain[..]);
        assert_eq!(with[2], ("Sec-WebSocket-Protocol", p.as_bytes()));
    }
    let mut others = vec![String::new(), "chat".to_owned(), "x".to_owned()];
    for p in &offered {
        others.push(format!("{p}x"));
        others.push(p.to_ascii_uppercase());
        others.push(p.to_ascii_lowercase());
        others.extend(p.get(1..).map(str::to_owned));
    }
    for other in &others {
        match upgrade.accept(Some(other)) {
            Ok(_) => assert!(offered.contains(&other.as_str()), "accepted {other:?}"),
            Err(e) => {
                assert_eq!(e, HandshakeError::ProtocolNotOffered);
                assert_eq!((e.status(), e.headers()), (500, &[][..]));
                assert!(!offered.contains(&other.as_str()), "refused {other:?}");
            }
        }
    }

    // Extensions: the offer count is capped, and so is the parameter count of each offer.
    let lines = values(req, "sec-websocket-extensions");
    let offers: Vec<_> = upgrade.extensions().take(MAX_EXTENSION_ITEMS + 1).collect();
    assert!(
        offers.len() <= MAX_EXTENSION_ITEMS,
        "{} offers",
        offers.len()
    );
    for offer in offers {
        assert!(
            is_token(offer.name),
            "extension {:?} is not a token",
            offer.name
        );
        assert!(
            lines.iter().any(|l| l
                .windows(offer.name.len())
                .any(|w| w == offer.name.as_bytes())),
            "extension {:?} was not sent",
            offer.name
        );
        let params: Vec<_> = offer.params().take(MAX_EXTENSION_ITEMS + 1).collect();
        assert!(
            params.len() <= MAX_EXTENSION_ITEMS,
            "{} parameters in {offer:?}",
            params.len()
        );
        for (name, _) in &params {
            assert!(
                is_token(name),
                "parameter {name:?} of {:?} is not a token ({params:?})",
                offer.name
            );
        }
    }

    // The origin is one that was sent.
    let origins = values(req, "origin");
    match upgrade.origin() {
        Some(origin) => assert!(origins.contains(&origin), "origin {origin:?} not sent"),
        None => assert!(origins.is_empty(), "origin {origins:?} not reported"),
    }

    // The 101, with no subprotocol and with the first offered, is one a client accepts.
    let mut choices = vec![None];
    choices.extend(offered.first().map(|&p| Some(p)));
    for choice in choices {
        let answer = upgrade.accept(choice).expect("accept an offered protocol");
        let out = switch(conn.clone(), &answer.headers(), rest);
        let client = ClientHandshake::new(nonce);
        assert_eq!(&client.key()[..], key);
        let mut slots = header_slots::<16>();
        assert_eq!(
            client.parse_response(&out, &offered, &mut slots),
            Ok(Status::Complete((out.len(), Accepted { protocol: choice }))),
            "the client refuses {:?}",
            String::from_utf8_lossy(&out)
        );
    }
}

/// Write the 101 with `headers` on `conn`, which has just read an upgrade request followed by
/// `rest`; the connection is upgraded after it. Returns what was written.
fn switch(mut conn: ServerConn, headers: &[(&'static str, &[u8])], rest: &[u8]) -> Vec<u8> {
    let head = ResponseHead {
        status: 101,
        headers,
        body: ResponseBody::Empty,
        close: false,
    };
    let mut out = Vec::new();
    conn.write_head(&head, &DateCache::new(NOW), &mut out)
        .expect("write the 101");
    assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    let mut slots = header_slots::<SLOTS>();
    assert!(
        matches!(
            conn.handle_input(rest, &mut slots),
            Ok((0, Event::Upgraded))
        ),
        "not upgraded after the 101"
    );
    out
}

/// A response head split into its status code and fields, independently of berth (and of the
/// httparse it uses): lines end at LF, a CR before it dropped; the status code is the three
/// digits after the first space; a field is split at its first colon, its value trimmed of SP
/// and HTAB; the head ends at the first empty line. Only used on heads berth's parser took
/// whole, so it need not judge malformed ones. `None` when there is no complete head.
struct Head<'b> {
    len: usize,
    status: u16,
    fields: Vec<(&'b [u8], &'b [u8])>,
}

impl<'b> Head<'b> {
    fn scan(data: &'b [u8]) -> Option<Self> {
        let mut lines: Vec<&[u8]> = Vec::new();
        let mut start = 0;
        for (i, &b) in data.iter().enumerate() {
            if b != b'\n' {
                continue;
            }
            let line = &data[start..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            start = i + 1;
            // Empty lines before the status line are skipped, as RFC 9112 §2.2 allows.
            if line.is_empty() && lines.is_empty() {
                continue;
            }
            if line.is_empty() {
                let (status_line, fields) = lines.split_first()?;
                let status = Self::status(status_line)?;
                let fields = fields
                    .iter()
                    .map(|line: &&[u8]| {
                        let colon = line.iter().position(|&b| b == b':')?;
                        Some((&line[..colon], trim(&line[colon + 1..])))
                    })
                    .collect::<Option<_>>()?;
                return Some(Head {
                    len: start,
                    status,
                    fields,
                });
            }
            lines.push(line);
        }
        None
    }

    fn status(line: &[u8]) -> Option<u16> {
        let space = line.iter().position(|&b| b == b' ')?;
        let rest = &line[space..];
        let digits = &rest[rest.iter().position(|&b| b != b' ')?..];
        let code = digits.get(..3)?;
        code.iter().try_fold(0u16, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u16::from(d - b'0'))
        })
    }

    /// The comma-separated elements of every field named `name`, trimmed.
    fn elements<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b [u8]> + 's {
        let name = name.as_bytes();
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .map(trim)
    }

    /// What a client that offered `offered`, with `NONCE`, must make of this head (RFC 6455
    /// §4.1 and `ClientError`'s docs), judged here in the order berth reports problems: the
    /// status, then field by field a subprotocol that was not offered (or a second one) or any
    /// extension, then the upgrade fields, then the accept key.
    ///
    /// Several `Sec-WebSocket-Accept` fields fail (RFC 6455 §4.1): their combined value
    /// (RFC 9110 §5.3) is never the key.
    fn judge(&self, offered: &[&str]) -> Result<Option<&'b str>, ClientError> {
        if self.status != 101 {
            return Err(ClientError::UnexpectedStatus(self.status));
        }
        let mut protocol = None;
        let mut accept = None;
        let mut accepts = 0;
        for &(name, value) in &self.fields {
            if name.eq_ignore_ascii_case(b"sec-websocket-protocol") {
                let p = core::str::from_utf8(value).map_err(|_| ClientError::ProtocolNotOffered)?;
                if protocol.is_some() || !offered.contains(&p) {
                    return Err(ClientError::ProtocolNotOffered);
                }
                protocol = Some(p);
            } else if name.eq_ignore_ascii_case(b"sec-websocket-extensions") {
                return Err(ClientError::ExtensionNotOffered);
            } else if name.eq_ignore_ascii_case(b"sec-websocket-accept") {
                accept = Some(value);
                accepts += 1;
            }
        }
        let upgrade = self
            .elements("upgrade")
            .any(|e| e.eq_ignore_ascii_case(b"websocket"));
        let connection = self
            .elements("connection")
            .any(|e| e.eq_ignore_ascii_case(b"upgrade"));
        if !upgrade || !connection {
            return Err(ClientError::NotAnUpgrade);
        }
        if accepts != 1 || accept != Some(&accept_key(&client_key(NONCE))[..]) {
            return Err(ClientError::AcceptMismatch);
        }
        Ok(protocol)
    }
}

fn check_client(data: &[u8]) {
    let client = ClientHandshake::new(NONCE);
    let parse = |bytes: &[u8]| {
        let mut slots = header_slots::<16>();
        // Owned, so results for different inputs can be compared.
        client
            .parse_response(bytes, OFFERED, &mut slots)
            .map(|status| match status {
                Status::Complete((len, a)) => {
                    Status::Complete((len, a.protocol.map(str::to_owned)))
                }
                Status::Partial => Status::Partial,
            })
    };
    let result = parse(data);
    match result {
        Ok(Status::Complete((len, ref protocol))) => {
            assert!(
                0 < len && len <= data.len(),
                "consumed {len} of {}",
                data.len()
            );
            assert!(len <= MAX_RESPONSE_HEAD, "a head of {len} bytes");
            let head = Head::scan(data).expect("a complete head");
            assert_eq!(head.len, len, "the head's length");
            assert_eq!(
                head.judge(OFFERED).map(|p| p.map(str::to_owned)),
                Ok(protocol.clone()),
                "accepted {:?}",
                String::from_utf8_lossy(&data[..len])
            );
            assert_eq!(parse(&data[..len]), result, "the head alone");
            for end in [0, len / 2, len - 1] {
                assert_eq!(
                    parse(&data[..end]),
                    Ok(Status::Partial),
                    "a prefix of {end} bytes"
                );
            }
        }
        Ok(Status::Partial) => {
            assert!(
                data.len() <= MAX_RESPONSE_HEAD,
                "{} bytes Partial",
                data.len()
            );
            let half = data.len() / 2;
            assert_eq!(
                parse(&data[..half]),
                Ok(Status::Partial),
                "a prefix of {half} bytes"
            );
        }
        // Malformed, or no head within `MAX_RESPONSE_HEAD`: more bytes cannot mend that.
        Err(ClientError::InvalidResponse) => {
            let mut more = data.to_vec();
            more.extend_from_slice(b"\r\n\r\n");
            assert_eq!(parse(&more), result, "mended by more bytes");
        }
        // Everything else is a judgement on a whole head, which the judge must share.
        Err(
            e @ (ClientError::UnexpectedStatus(_)
            | ClientError::NotAnUpgrade
            | ClientError::AcceptMismatch
            | ClientError::ProtocolNotOffered
            | ClientError::ExtensionNotOffered),
        ) => {
            let head = Head::scan(data).expect("a judgement without a complete head");
            assert_eq!(
                head.judge(OFFERED),
                Err(e),
                "of {:?}",
                String::from_utf8_lossy(&data[..head.len])
            );
            let mut more = data[..head.len].to_vec();
            more.extend_from_slice(b"after the head");
            assert_eq!(parse(&more), result, "the head followed by other bytes");
        }
        Err(ClientError::InvalidRequest) => panic!("parse_response gave the caller's error"),
        // `ClientError` is `#[non_exhaustive]`: a new error needs a new check here.
        Err(other) => panic!("an error this target does not know: {other:?}"),
    }
}

fn check_round_trip(data: &[u8]) {
    let mut nonce = [0u8; 16];
    let (seed, tail) = data.split_at(data.len().min(16));
    nonce[..seed.len()].copy_from_slice(seed);
    let protocols: Vec<&str> = tail
        .split(|&b| !is_tchar(b))
        .filter(|t| !t.is_empty())
        .take(4)
        .map(|t| core::str::from_utf8(&t[..t.len().min(24)]).expect("tchars are ASCII"))
        .collect();
    let client = ClientHandshake::new(nonce);
    let mut request = Vec::new();
    client
        .write_request("example.com", "/chat?room=1", &protocols, &mut request)
        .expect("tokens are valid subprotocols");

    let mut conn = ServerConn::new(&Limits::default());
    let mut slots = header_slots::<SLOTS>();
    let (used, req) = match conn.handle_input(&request, &mut slots) {
        Ok((used, Event::Request(req))) => (used, req),
        other => panic!(
            "the client's request {:?} gave {other:?}",
            String::from_utf8_lossy(&request)
        ),
    };
    assert_eq!(used, request.len());
    let upgrade = Upgrade::parse(&req).expect("the client's request is an upgrade");
    assert_eq!(upgrade.protocols().collect::<Vec<_>>(), protocols);
    assert_eq!(upgrade.extensions().count(), 0);
    let choice = protocols
        .get(usize::from(nonce[0]) % (protocols.len() + 1))
        .copied();
    let answer = upgrade.accept(choice).expect("accept an offered protocol");
    assert!(answer
        .headers()
        .contains(&("Sec-WebSocket-Accept", &accept_key(client.key())[..])));
    let out = switch(conn, &answer.headers(), &[]);
    let mut slots = header_slots::<16>();
    assert_eq!(
        client.parse_response(&out, &protocols, &mut slots),
        Ok(Status::Complete((out.len(), Accepted { protocol: choice })))
    );
}

fuzz_target!(|data: &[u8]| {
    check_server(data);
    check_client(data);
    check_round_trip(data);
});
