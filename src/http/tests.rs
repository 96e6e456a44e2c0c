//! Unit tests for request parsing, the framing decision and `ServerConn`.

// Limits are built the way users outside the crate must: `#[non_exhaustive]` rules out
// struct-update syntax there.
#![allow(clippy::field_reassign_with_default)]

use super::*;
use crate::Limits;

/// Parse a complete head with default limits; panics on Partial.
fn parse_with(limits: &Limits, input: &[u8]) -> Result<OwnedRequest, ParseError> {
    let mut parser = RequestParser::new(limits);
    let mut slots = header_slots::<128>();
    match parser.parse(input, &mut slots)? {
        Status::Complete((len, req)) => Ok(OwnedRequest::from(len, &req)),
        Status::Partial => panic!("partial: {:?}", String::from_utf8_lossy(input)),
    }
}

fn parse(input: &[u8]) -> Result<OwnedRequest, ParseError> {
    parse_with(&Limits::default(), input)
}

/// Feed `input` one byte more at a time, as a slow peer would; the error or result when the
/// parser stops saying Partial.
fn drip(limits: &Limits, input: &[u8]) -> Result<Option<OwnedRequest>, ParseError> {
    let mut parser = RequestParser::new(limits);
    for end in 1..=input.len() {
        let mut slots = header_slots::<128>();
        if let Status::Complete((len, req)) = parser.parse(&input[..end], &mut slots)? {
            return Ok(Some(OwnedRequest::from(len, &req)));
        }
    }
    Ok(None)
}

#[derive(Debug, PartialEq, Eq)]
struct OwnedRequest {
    len: usize,
    method: String,
    target: String,
    version: Version,
    headers: Vec<(String, Vec<u8>)>,
    body: BodyKind,
    keep_alive: bool,
    expect_continue: bool,
    upgrade: Option<Vec<u8>>,
}

impl OwnedRequest {
    fn from(len: usize, r: &Request<'_, '_>) -> Self {
        OwnedRequest {
            len,
            method: r.method.into(),
            target: r.target.into(),
            version: r.version,
            headers: r
                .headers
                .iter()
                .map(|h| (h.name.into(), h.value.into()))
                .collect(),
            body: r.body,
            keep_alive: r.keep_alive,
            expect_continue: r.expect_continue,
            upgrade: r.upgrade.map(Into::into),
        }
    }
}

fn get(extra: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: example.com\r\n{extra}\r\n").into_bytes()
}

/// Each request is refused with the error and status shown, both fed whole and dripped.
macro_rules! rejects {
    ($($name:ident: $input:expr => $err:ident $status:literal;)*) => {$(
        #[test]
        fn $name() {
            let input: Vec<u8> = $input.into();
            assert_eq!(parse(&input).map(|r| r.len), Err(ParseError::$err), "whole");
            assert_eq!(ParseError::$err.status(), $status);
            assert_eq!(drip(&Limits::default(), &input).map(|_| ()), Err(ParseError::$err), "drip");
        }
    )*};
}

rejects! {
    rejects_content_length_with_transfer_encoding:
        get("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n") => ContentLengthWithTransferEncoding 400;
    rejects_transfer_encoding_before_content_length:
        get("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n") => ContentLengthWithTransferEncoding 400;
    rejects_transfer_encoding_without_chunked:
        get("Transfer-Encoding: gzip\r\n") => ChunkedNotFinal 400;
    rejects_chunked_that_is_not_final:
        get("Transfer-Encoding: chunked, gzip\r\n") => ChunkedNotFinal 400;
    rejects_unknown_coding_before_chunked_with_501:
        get("Transfer-Encoding: x-custom, chunked\r\n") => UnsupportedTransferCoding 501;
    rejects_gzip_before_chunked_with_501:
        get("Transfer-Encoding: gzip, chunked\r\n") => UnsupportedTransferCoding 501;
    rejects_repeated_transfer_encoding_lines:
        get("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n") => RepeatedTransferEncoding 400;
    rejects_chunked_listed_twice:
        get("Transfer-Encoding: chunked, chunked\r\n") => RepeatedTransferEncoding 400;
    rejects_chunked_with_parameters:
        get("Transfer-Encoding: chunked;q=1\r\n") => ChunkedNotFinal 400;
    rejects_empty_transfer_encoding:
        get("Transfer-Encoding: ,\r\n") => ChunkedNotFinal 400;
    rejects_malformed_transfer_coding:
        get("Transfer-Encoding: \"chunked\"\r\n") => ChunkedNotFinal 400;
    rejects_transfer_encoding_on_http10:
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" => TransferEncodingOnHttp10 400;
    rejects_content_length_with_letters:
        get("Content-Length: 5a\r\n") => InvalidContentLength 400;
    rejects_content_length_with_sign:
        get("Content-Length: +5\r\n") => InvalidContentLength 400;
    rejects_negative_content_length:
        get("Content-Length: -1\r\n") => InvalidContentLength 400;
    rejects_hex_content_length:
        get("Content-Length: 0x10\r\n") => InvalidContentLength 400;
    rejects_content_length_with_inner_space:
        get("Content-Length: 1 0\r\n") => InvalidContentLength 400;
    rejects_empty_content_length:
        get("Content-Length: \r\n") => InvalidContentLength 400;
    rejects_overflowing_content_length:
        get("Content-Length: 18446744073709551616\r\n") => InvalidContentLength 400;
    rejects_differing_content_length_values_in_one_line:
        get("Content-Length: 5, 6\r\n") => ConflictingContentLength 400;
    rejects_differing_content_length_lines:
        get("Content-Length: 5\r\nContent-Length: 6\r\n") => ConflictingContentLength 400;
    rejects_bare_lf_after_request_line:
        "GET / HTTP/1.1\nHost: a\r\n\r\n" => BareNewline 400;
    rejects_bare_lf_after_header:
        "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n" => BareNewline 400;
    rejects_bare_lf_ending_head:
        "GET / HTTP/1.1\r\nHost: a\r\n\n" => BareNewline 400;
    rejects_bare_lf_leading_line:
        "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n" => BareNewline 400;
    rejects_bare_cr_in_header_value:
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n" => BareNewline 400;
    rejects_bare_cr_in_request_line:
        "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n" => InvalidRequestLine 400;
    rejects_whitespace_before_colon:
        get("X-Thing : value\r\n") => InvalidHeaderName 400;
    rejects_tab_before_colon:
        get("Content-Length\t: 5\r\n") => InvalidHeaderName 400;
    rejects_obs_fold:
        get("X-Thing: a\r\n  continued\r\n") => InvalidHeaderName 400;
    rejects_space_before_first_header:
        "GET / HTTP/1.1\r\n Host: a\r\n\r\n" => InvalidHeaderName 400;
    rejects_control_byte_in_value:
        get("X-Thing: a\x01b\r\n") => InvalidHeaderValue 400;
    rejects_nul_in_value:
        get("X-Thing: a\x00b\r\n") => InvalidHeaderValue 400;
    rejects_del_in_value:
        get("X-Thing: a\x7fb\r\n") => InvalidHeaderValue 400;
    rejects_missing_host_on_http11:
        "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n" => MissingHost 400;
    rejects_repeated_host:
        get("Host: other.example\r\n") => DuplicateHost 400;
    rejects_repeated_host_on_http10:
        "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n" => DuplicateHost 400;
    rejects_host_with_whitespace:
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n" => InvalidHost 400;
    rejects_host_with_slash:
        "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n" => InvalidHost 400;
    rejects_http2_version_with_505:
        "GET / HTTP/2.0\r\nHost: a\r\n\r\n" => UnsupportedVersion 505;
    rejects_http12_version_with_505:
        "GET / HTTP/1.2\r\nHost: a\r\n\r\n" => UnsupportedVersion 505;
    rejects_malformed_version:
        "GET / HTTPS/1.1\r\nHost: a\r\n\r\n" => InvalidVersion 400;
    rejects_double_space_in_request_line:
        "GET  / HTTP/1.1\r\nHost: a\r\n\r\n" => InvalidRequestLine 400;
    rejects_asterisk_for_get:
        "GET * HTTP/1.1\r\nHost: a\r\n\r\n" => InvalidTarget 400;
    rejects_relative_target:
        "GET index.html HTTP/1.1\r\nHost: a\r\n\r\n" => InvalidTarget 400;
    rejects_origin_form_for_connect:
        "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n" => InvalidTarget 400;
    rejects_unknown_expectation_with_417:
        get("Expect: 200-ok\r\n") => UnsupportedExpectation 417;
}

#[test]
fn parses_a_simple_get() {
    let input = b"GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    let r = parse(input).unwrap();
    assert_eq!(r.len, input.len());
    assert_eq!(r.method, "GET");
    assert_eq!(r.target, "/a/b?c=d");
    assert_eq!(r.version, Version::Http11);
    assert_eq!(r.headers.len(), 2);
    assert_eq!(r.headers[1], ("Accept".into(), b"*/*".to_vec()));
    assert_eq!(r.body, BodyKind::Empty);
    assert!(r.keep_alive);
    assert!(!r.expect_continue);
    assert_eq!(r.upgrade, None);
}

#[test]
fn request_accessors_split_path_and_query() {
    let input = b"GET /p/q?x=1&y HTTP/1.1\r\nHost: a\r\nX-Case: v\r\n\r\n";
    let mut parser = RequestParser::new(&Limits::default());
    let mut slots = header_slots::<8>();
    let Status::Complete((_, req)) = parser.parse(input, &mut slots).unwrap() else {
        panic!("partial")
    };
    assert_eq!(req.path(), "/p/q");
    assert_eq!(req.query(), Some("x=1&y"));
    assert_eq!(req.header("x-case"), Some(&b"v"[..]));
    assert_eq!(req.header("missing"), None);
    assert!(!req.is_head());
}

#[test]
fn stops_at_end_of_head_and_leaves_body_and_next_request() {
    let input = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n";
    let r = parse(input).unwrap();
    assert_eq!(&input[r.len..], b"abcGET / HTTP/1.1\r\n");
    assert_eq!(r.body, BodyKind::Length(3));
}

#[test]
fn partial_until_the_empty_line_arrives() {
    let input = get("Accept: */*\r\n");
    let mut parser = RequestParser::new(&Limits::default());
    for end in 0..input.len() {
        let mut slots = header_slots::<16>();
        assert!(
            parser
                .parse(&input[..end], &mut slots)
                .unwrap()
                .is_partial(),
            "{end}"
        );
    }
    let mut slots = header_slots::<16>();
    assert!(parser.parse(&input, &mut slots).unwrap().is_complete());
}

#[test]
fn dripped_head_parses_the_same_as_whole() {
    let input = get("Content-Length: 4\r\nX-A: 1\r\nX-B: two words\r\n");
    assert_eq!(
        drip(&Limits::default(), &input).unwrap(),
        Some(parse(&input).unwrap())
    );
}

#[test]
fn slow_drip_resumes_where_the_last_scan_stopped() {
    // The parser remembers how far it scanned, so each byte of a slow peer is examined once
    // (CVE-2023-43669 was a full re-scan per byte).
    let input = get(&"X-Pad: 0123456789\r\n".repeat(50));
    let mut parser = RequestParser::new(&Limits::default());
    for end in 1..input.len() {
        let mut slots = header_slots::<128>();
        assert!(parser
            .parse(&input[..end], &mut slots)
            .unwrap()
            .is_partial());
        assert_eq!(parser.scanned(), end);
    }
}

#[test]
fn skips_empty_lines_before_the_request_line() {
    let input = b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let r = parse(input).unwrap();
    assert_eq!(r.len, input.len());
    assert_eq!(drip(&Limits::default(), input).unwrap(), Some(r));
}

#[test]
fn framing_decision_follows_rfc_9112() {
    assert_eq!(parse(&get("")).unwrap().body, BodyKind::Empty);
    assert_eq!(
        parse(&get("Content-Length: 0\r\n")).unwrap().body,
        BodyKind::Empty
    );
    assert_eq!(
        parse(&get("Content-Length: 007\r\n")).unwrap().body,
        BodyKind::Length(7)
    );
    assert_eq!(
        parse(&get("Transfer-Encoding: chunked\r\n")).unwrap().body,
        BodyKind::Chunked
    );
    assert_eq!(
        parse(&get("Transfer-Encoding:  Chunked \r\n"))
            .unwrap()
            .body,
        BodyKind::Chunked
    );
    // Identical values, in one line or several, are one length (RFC 9110 §8.6).
    assert_eq!(
        parse(&get("Content-Length: 5, 5\r\n")).unwrap().body,
        BodyKind::Length(5)
    );
    assert_eq!(
        parse(&get("Content-Length: 5\r\ncontent-length: 5\r\n"))
            .unwrap()
            .body,
        BodyKind::Length(5)
    );
}

#[test]
fn connection_persistence_by_version_and_options() {
    assert!(parse(&get("")).unwrap().keep_alive);
    assert!(!parse(&get("Connection: close\r\n")).unwrap().keep_alive);
    assert!(
        !parse(&get("Connection: keep-alive, Close\r\n"))
            .unwrap()
            .keep_alive
    );
    assert!(!parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
    assert!(
        parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .keep_alive
    );
    assert!(
        !parse(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n")
            .unwrap()
            .keep_alive
    );
}

#[test]
fn http10_needs_no_host() {
    let r = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(r.version, Version::Http10);
}

#[test]
fn expect_continue_only_on_http11() {
    assert!(
        parse(&get("Expect: 100-Continue\r\n"))
            .unwrap()
            .expect_continue
    );
    let r = parse(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").unwrap();
    assert!(!r.expect_continue);
}

#[test]
fn upgrade_needs_the_connection_option_and_http11() {
    let r = parse(&get(
        "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n",
    ))
    .unwrap();
    assert_eq!(r.upgrade.as_deref(), Some(&b"websocket"[..]));
    assert_eq!(parse(&get("Upgrade: websocket\r\n")).unwrap().upgrade, None);
    let r = parse(b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n").unwrap();
    assert_eq!(r.upgrade, None);
}

#[test]
fn accepts_every_target_form_where_allowed() {
    assert!(parse(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
    assert!(parse(b"GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n").is_ok());
    assert!(parse(b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n").is_ok());
    assert!(parse(b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").is_ok());
    assert!(parse(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").is_ok());
}

#[test]
fn accepts_obs_text_in_values() {
    let r = parse(&get("X-Name: caf\u{e9}\r\n")).unwrap();
    assert_eq!(r.headers[1].1, "café".as_bytes());
}

fn small_limits() -> Limits {
    let mut l = Limits::default();
    l.max_request_line = 32;
    l.max_headers = 4;
    l.max_header_line = 40;
    l.max_head = 200;
    l.max_body = 100;
    l
}

#[test]
fn request_line_over_limit_is_414_whole_and_before_it_ends() {
    let l = small_limits();
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(40));
    assert_eq!(
        parse_with(&l, long.as_bytes()).map(|_| ()),
        Err(ParseError::RequestLineTooLong)
    );
    // 40 bytes of target and no line end yet: refused without waiting for the rest.
    let mut parser = RequestParser::new(&l);
    let mut slots = header_slots::<8>();
    let partial = &long.as_bytes()[..45];
    assert_eq!(
        parser.parse(partial, &mut slots).map(|_| ()),
        Err(ParseError::RequestLineTooLong)
    );
    assert_eq!(ParseError::RequestLineTooLong.status(), 414);
}

#[test]
fn request_line_at_the_limit_is_accepted() {
    let l = small_limits();
    // "GET /" + 18 + " HTTP/1.1" = 32 bytes.
    let line = format!("GET /{} HTTP/1.1", "a".repeat(18));
    assert_eq!(line.len(), 32);
    assert!(parse_with(&l, format!("{line}\r\nHost: a\r\n\r\n").as_bytes()).is_ok());
    assert!(drip(&l, format!("{line}\r\nHost: a\r\n\r\n").as_bytes())
        .unwrap()
        .is_some());
}

#[test]
fn too_many_headers_is_431() {
    let l = small_limits();
    let input = get("A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n");
    assert_eq!(
        parse_with(&l, &input).map(|_| ()),
        Err(ParseError::TooManyHeaders)
    );
    assert_eq!(ParseError::TooManyHeaders.status(), 431);
    // Four fields fit.
    assert!(parse_with(&l, &get("A: 1\r\nB: 2\r\nC: 3\r\n")).is_ok());
}

#[test]
fn header_slots_bound_the_count_too() {
    let mut parser = RequestParser::new(&Limits::default());
    let input = get("A: 1\r\nB: 2\r\n");
    let mut slots = header_slots::<2>();
    let r = parser.parse(&input, &mut slots);
    assert_eq!(r.map(|_| ()), Err(ParseError::TooManyHeaders));
}

#[test]
fn header_line_over_limit_is_431_whole_and_before_it_ends() {
    let l = small_limits();
    let input = get(&format!("X-Long: {}\r\n", "v".repeat(40)));
    assert_eq!(
        parse_with(&l, &input).map(|_| ()),
        Err(ParseError::HeaderLineTooLong)
    );
    assert_eq!(
        drip(&l, &input).map(|_| ()),
        Err(ParseError::HeaderLineTooLong)
    );
    assert_eq!(ParseError::HeaderLineTooLong.status(), 431);
}

#[test]
fn head_over_limit_is_431() {
    let mut l = small_limits();
    l.max_headers = 100;
    let input = get(&"X-Pad: 0123456789012345678\r\n".repeat(6));
    assert!(input.len() > 200);
    assert_eq!(
        parse_with(&l, &input).map(|_| ()),
        Err(ParseError::HeadTooLarge)
    );
    assert_eq!(drip(&l, &input).map(|_| ()), Err(ParseError::HeadTooLarge));
    // Empty lines before the request line count too.
    let blank = "\r\n".repeat(150);
    assert_eq!(
        drip(&l, blank.as_bytes()).map(|_| ()),
        Err(ParseError::HeadTooLarge)
    );
}

#[test]
fn content_length_over_limit_is_413_before_the_body() {
    let l = small_limits();
    let input = get("Content-Length: 101\r\n");
    assert_eq!(
        parse_with(&l, &input).map(|_| ()),
        Err(ParseError::BodyTooLarge)
    );
    assert_eq!(ParseError::BodyTooLarge.status(), 413);
    assert_eq!(
        parse_with(&l, &get("Content-Length: 100\r\n"))
            .unwrap()
            .body,
        BodyKind::Length(100)
    );
}

#[test]
fn every_error_has_a_client_or_server_error_status() {
    use ParseError::*;
    for e in [
        BareNewline,
        InvalidRequestLine,
        InvalidTarget,
        InvalidVersion,
        UnsupportedVersion,
        InvalidHeaderName,
        InvalidHeaderValue,
        MissingHost,
        DuplicateHost,
        InvalidHost,
        InvalidContentLength,
        ConflictingContentLength,
        ContentLengthWithTransferEncoding,
        TransferEncodingOnHttp10,
        RepeatedTransferEncoding,
        ChunkedNotFinal,
        UnsupportedTransferCoding,
        UnsupportedExpectation,
        InvalidChunkSize,
        ChunkSizeOverflow,
        MissingChunkCrlf,
        ChunkLineTooLong,
        InvalidTrailer,
        TrailersTooLarge,
        RequestLineTooLong,
        TooManyHeaders,
        HeaderLineTooLong,
        HeadTooLarge,
        BodyTooLarge,
        Timeout,
    ] {
        assert!(matches!(e.status(), 400..=505), "{e:?}");
        assert!(!reason_phrase(e.status()).is_empty(), "{e:?}");
        assert!(e.to_string().contains(&e.status().to_string()));
    }
}

// ---------------------------------------------------------------------------------------------
// ServerConn

/// A test driver: keeps the unconsumed input, records events as owned values.
struct Driver {
    conn: ServerConn,
    input: Vec<u8>,
    out: Vec<u8>,
    date: DateCache,
}

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Request(String, String),
    Data(Vec<u8>),
    End(Vec<(String, Vec<u8>)>),
    NeedData,
    Paused,
    Upgraded,
    Closed,
}

impl Driver {
    fn new(input: &[u8]) -> Self {
        Self::with_limits(input, &Limits::default())
    }

    fn with_limits(input: &[u8], limits: &Limits) -> Self {
        Driver {
            conn: ServerConn::new(limits),
            input: input.to_vec(),
            out: Vec::new(),
            date: DateCache::new(784_111_777),
        }
    }

    fn next(&mut self) -> Result<Ev, ParseError> {
        let mut slots = header_slots::<64>();
        let (used, ev) = self.conn.handle_input(&self.input, &mut slots)?;
        assert!(used <= self.input.len());
        let ev = match ev {
            Event::Request(r) => Ev::Request(r.method.into(), r.target.into()),
            Event::Data(d) => Ev::Data(d.to_vec()),
            Event::End(t) => Ev::End(t.iter().map(|(n, v)| (n.into(), v.into())).collect()),
            Event::NeedData => Ev::NeedData,
            Event::Paused => Ev::Paused,
            Event::Upgraded => Ev::Upgraded,
            Event::Closed => Ev::Closed,
        };
        self.input.drain(..used);
        Ok(ev)
    }

    /// Events until one of NeedData / Paused / Closed / Upgraded, with body data merged.
    fn run(&mut self) -> Result<Vec<Ev>, ParseError> {
        let mut evs: Vec<Ev> = Vec::new();
        loop {
            let ev = self.next()?;
            let stop = matches!(ev, Ev::NeedData | Ev::Paused | Ev::Closed | Ev::Upgraded);
            match (evs.last_mut(), ev) {
                (Some(Ev::Data(acc)), Ev::Data(more)) => acc.extend(more),
                (_, ev) => evs.push(ev),
            }
            if stop {
                return Ok(evs);
            }
        }
    }

    fn respond(&mut self, status: u16, body: &[u8]) {
        let head = ResponseHead {
            status,
            headers: &[("Content-Type", b"text/plain")],
            body: ResponseBody::Length(body.len() as u64),
            close: false,
        };
        self.conn
            .write_head(&head, &self.date, &mut self.out)
            .unwrap();
        self.conn.write_body(body, &mut self.out).unwrap();
        self.conn.write_end(&mut self.out).unwrap();
    }

    fn take_out(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.out)).unwrap()
    }
}

fn req(method: &str, target: &str) -> Ev {
    Ev::Request(method.into(), target.into())
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut d = Driver::new(
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(
        d.run().unwrap(),
        [req("GET", "/1"), Ev::End(vec![]), Ev::Paused]
    );
    // Still paused: the response has not been written.
    assert_eq!(d.next().unwrap(), Ev::Paused);
    d.respond(200, b"one");
    assert_eq!(
        d.run().unwrap(),
        [
            req("POST", "/2"),
            Ev::Data(b"hi".to_vec()),
            Ev::End(vec![]),
            Ev::Paused
        ]
    );
    d.respond(200, b"two");
    assert_eq!(
        d.run().unwrap(),
        [req("GET", "/3"), Ev::End(vec![]), Ev::Paused]
    );
    d.respond(200, b"three");
    assert_eq!(d.run().unwrap(), [Ev::NeedData]);
    let out = d.take_out();
    let bodies: Vec<&str> = out
        .split("\r\n\r\n")
        .skip(1)
        .map(|s| &s[..s.find('H').unwrap_or(s.len())])
        .collect();
    assert_eq!(bodies, ["one", "two", "three"]);
    assert_eq!(out.matches("HTTP/1.1 200 OK\r\n").count(), 3);
    assert!(!out.contains("Connection:"));
}

#[test]
fn response_head_carries_date_length_and_app_headers() {
    let mut d = Driver::new(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    d.run().unwrap();
    d.respond(200, b"hello");
    assert_eq!(
        d.take_out(),
        "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
    );
}

#[test]
fn connection_close_request_gets_close_and_ends_the_connection() {
    let mut d = Driver::new(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\nHost: a\r\n\r\n");
    d.run().unwrap();
    assert!(!d.conn.is_keep_alive());
    d.respond(200, b"");
    assert!(d.take_out().contains("\r\nConnection: close\r\n"));
    assert!(d.conn.is_closed());
    assert_eq!(d.next().unwrap(), Ev::Closed);
}

#[test]
fn app_can_close_after_a_response() {
    let mut d = Driver::new(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    d.run().unwrap();
    let head = ResponseHead {
        status: 503,
        headers: &[],
        body: ResponseBody::Empty,
        close: true,
    };
    d.conn.write_head(&head, &d.date, &mut d.out).unwrap();
    d.conn.write_end(&mut d.out).unwrap();
    let out = d.take_out();
    assert!(
        out.contains("Content-Length: 0\r\nConnection: close\r\n\r\n"),
        "{out}"
    );
    assert!(d.conn.is_closed());
}

#[test]
fn http10_closes_unless_keep_alive_was_asked() {
    let mut d = Driver::new(b"GET / HTTP/1.0\r\n\r\n");
    d.run().unwrap();
    d.respond(200, b"x");
    let out = d.take_out();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(!out.contains("Connection:"));
    assert!(d.conn.is_closed());

    let mut d =
        Driver::new(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n");
    d.run().unwrap();
    d.respond(200, b"x");
    assert!(d.take_out().contains("\r\nConnection: keep-alive\r\n"));
    assert_eq!(
        d.run().unwrap(),
        [req("GET", "/2"), Ev::End(vec![]), Ev::Paused]
    );
}

#[test]
fn head_response_has_length_but_no_body() {
    let mut d = Driver::new(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    d.run().unwrap();
    d.respond(200, b"hello");
    let out = d.take_out();
    assert!(out.ends_with("Content-Length: 5\r\n\r\n"), "{out}");
    assert!(!d.conn.is_closed());
}

#[test]
fn no_content_and_not_modified_carry_no_body() {
    let mut d = Driver::new(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    d.run().unwrap();
    let bad = ResponseHead {
        status: 204,
        headers: &[],
        body: ResponseBody::Length(1),
        close: false,
    };
    assert_eq!(
        d.conn.write_head(&bad, &d.date, &mut d.out),
        Err(ResponseError::BodyNotAllowed)
    );
    assert!(d.out.is_empty());
    let ok = ResponseHead {
        status: 204,
        headers: &[],
        body: ResponseBody::Empty,
        close: false,
    };
    d.conn.write_head(&ok, &d.date, &mut d.out).unwrap();
    assert_eq!(
        d.conn.write_body(b"x", &mut d.out),
        Err(ResponseError::BodyNotAllowed)
    );
    d.conn.write_end(&mut d.out).unwrap();
    let out = d.take_out();
    assert!(!out.contains("Content-Length"), "{out}");

    d.run().unwrap();
    let nm = ResponseHead {
        status: 304,
        headers: &[],
        body: ResponseBody::Length(10),
        close: false,
    };
    d.conn.write_head(&nm, &d.date, &mut d.out).unwrap();
    d.conn.write_body(b"ignored", &mut d.out).unwrap();
    d.conn.write_end(&mut d.out).unwrap();
    assert!(d.take_out().ends_with("Content-Length: 10\r\n\r\n"));

    let mut d = Driver::new(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    d.run().unwrap();
    let nm = ResponseHead {
        status: 304,
        headers: &[],
        body: ResponseBody::Empty,
        close: false,
    };
    d.conn.write_head(&nm, &d.date, &mut d.out).unwrap();
    d.conn.write_end(&mut d.out).unwrap();
    assert!(!d.take_out().contains("Content-Length"));
}

#[test]
fn chunked_response_frames_each_write() {
    let mut d = Driver::new(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    d.run().unwrap();
    let head = ResponseHead {
        status: 200,
        headers: &[],
        body: ResponseBody::Chunked,
        close: false,
    };
    d.conn.write_head(&head, &d.date, &mut d.out).unwrap();
    d.conn.write_body(b"hello ", &mut d.out).unwrap();
    d.conn.write_body(b"", &mut d.out).unwrap();
    d.conn.write_body(&[b'x'; 20], &mut d.out).unwrap();
    d.conn.write_end(&mut d.out).unwrap();
    let out = d.take_out();
    assert!(
        out.ends_with("Transfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n14\r\nxxxxxxxxxxxxxxxxxxxx\r\n0\r\n\r\n"),
        "{out}"
    );
    // The chunked output decodes back with our own decoder.
    let body = &out.as_bytes()[out.find("\r\n\r\n").unwrap() + 4..];
    let mut dec = ChunkedDecoder::new(&Limits::default());
    let mut data = Vec::new();
    let mut rest = body;
    loop {
        match dec.decode(rest).unwrap() {
            (n, Chunk::Data(d)) => {
                data.extend_from_slice(d);
                rest = &rest[n..];
            }
            (n, Chunk::End(_)) => {
                assert_eq!(n, rest.len());
                break;
            }
            (_, Chunk::NeedData) => panic!("truncated"),
        }
    }
    assert_eq!(data, [&b"hello "[..], &[b'x'; 20]].concat());
}

#[test]
fn chunked_response_to_http10_is_delimited_by_close() {
    let mut d = Driver::new(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    d.run().unwrap();
    let head = ResponseHead {
        status: 200,
        headers: &[],
        body: ResponseBody::Chunked,
        close: false,
    };
    d.conn.write_head(&head, &d.date, &mut d.out).unwrap();
    d.conn.write_body(b"raw", &mut d.out).unwrap();
    d.conn.write_end(&mut d.out).unwrap();
    let out = d.take_out();
    assert!(
        !out.contains("Transfer-Encoding") && !out.contains("Connection: keep-alive"),
        "{out}"
    );
    assert!(out.ends_with("\r\n\r\nraw"));
    assert!(d.conn.is_closed());
}

#[test]
fn body_length_is_enforced_on_the_writer() {
    let mut d = Driver::new(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    d.run().unwrap();
    let head = ResponseHead {
        status: 200,
        headers: &[],
        body: ResponseBody::Length(3),
        close: false,
    };
    d.conn.write_head(&head, &d.date, &mut d.out).unwrap();
    assert_eq!(
        d.conn.write_body(b"abcd", &mut d.out),
        Err(ResponseError::BodyTooLong)
    );
    d.conn.write_body(b"ab", &mut d.out).unwrap();
    assert_eq!(
        d.conn.write_end(&mut d.out),
        Err(ResponseError::BodyTooShort)
    );
    d.conn.write_body(b"c", &mut d.out).unwrap();
    d.conn.write_end(&mut d.out).unwrap();
}

#[test]
fn writer_calls_out_of_order_are_refused() {
    let mut d = Driver::new(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let head = ResponseHead {
        status: 200,
        headers: &[],
        body: ResponseBody::Empty,
        close: false,
    };
    assert_eq!(
        d.conn.write_head(&head, &d.date, &mut d.out),
        Err(ResponseError::NoRequest)
    );
    assert_eq!(
        d.conn.write_body(b"x", &mut d.out),
        Err(ResponseError::NoResponse)
    );
    assert_eq!(d.conn.write_end(&mut d.out), Err(ResponseError::NoResponse));
    d.run().unwrap();
    let bad = ResponseHead { status: 99, ..head };
    assert_eq!(
        d.conn.write_head(&bad, &d.date, &mut d.out),
        Err(ResponseError::InvalidStatus)
    );
    let bad = ResponseHead {
        status: 100,
        ..head
    };
    assert_eq!(
        d.conn.write_head(&bad, &d.date, &mut d.out),
        Err(ResponseError::InvalidStatus)
    );
    let bad = ResponseHead {
        headers: &[("Content-Length", b"1")],
        ..head
    };
    assert_eq!(
        d.conn.write_head(&bad, &d.date, &mut d.out),
        Err(ResponseError::ReservedHeader)
    );
    let bad = ResponseHead {
        headers: &[("X", b"a\nb")],
        ..head
    };
    assert_eq!(
        d.conn.write_head(&bad, &d.date, &mut d.out),
        Err(ResponseError::InvalidHeader)
    );
    let bad = ResponseHead {
        status: 101,
        ..head
    };
    assert_eq!(
        d.conn.write_head(&bad, &d.date, &mut d.out),
        Err(ResponseError::NotAnUpgrade)
    );
    assert!(d.out.is_empty());
    d.conn.write_head(&head, &d.date, &mut d.out).unwrap();
    assert_eq!(
        d.conn.write_head(&head, &d.date, &mut d.out),
        Err(ResponseError::NoRequest)
    );
}

#[test]
fn switching_protocols_hands_over_the_rest_of_the_bytes() {
    let mut d = Driver::new(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00",
    );
    assert_eq!(d.next().unwrap(), req("GET", "/ws"));
    let head = ResponseHead {
        status: 101,
        headers: &[("Upgrade", b"websocket")],
        body: ResponseBody::Empty,
        close: false,
    };
    d.conn.write_head(&head, &d.date, &mut d.out).unwrap();
    assert!(d
        .take_out()
        .ends_with("Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"));
    assert_eq!(d.next().unwrap(), Ev::Upgraded);
    assert_eq!(d.input, b"\x81\x00");
}

#[test]
fn expect_continue_is_written_once_before_the_final_response() {
    let mut d = Driver::new(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    );
    assert_eq!(d.next().unwrap(), req("POST", "/"));
    assert!(d.conn.write_continue(&mut d.out));
    assert!(!d.conn.write_continue(&mut d.out));
    assert_eq!(d.take_out(), "HTTP/1.1 100 Continue\r\n\r\n");
    d.input.extend_from_slice(b"ok");
    assert_eq!(
        d.run().unwrap(),
        [Ev::Data(b"ok".to_vec()), Ev::End(vec![]), Ev::Paused]
    );
    d.respond(200, b"");
    assert!(!d.conn.write_continue(&mut d.out));

    let mut d = Driver::new(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n");
    d.next().unwrap();
    assert!(!d.conn.write_continue(&mut d.out));

    // No body to wait for: nothing to continue.
    let mut d = Driver::new(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n");
    d.next().unwrap();
    assert!(!d.conn.write_continue(&mut d.out));
}

#[test]
fn a_response_ended_before_the_body_is_read_keeps_the_connection_alive() {
    let mut d = Driver::new(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(d.next().unwrap(), req("POST", "/"));
    assert!(d.conn.wants_body() && d.conn.wants_response());
    d.respond(200, b"early");
    assert!(!d.conn.wants_response() && !d.conn.is_response_open());
    assert!(!d.conn.is_closed() && d.conn.is_keep_alive());
    assert_eq!(
        d.take_out(),
        "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nearly"
    );
    // The rest of the body is still reported (it must be read to find the next request)...
    assert_eq!(d.run().unwrap(), [Ev::Data(b"abc".to_vec()), Ev::NeedData]);
    assert!(d.conn.wants_body());
    // ...and the request after it is read without waiting for another response.
    d.input
        .extend_from_slice(b"defghijGET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        d.run().unwrap(),
        [
            Ev::Data(b"defghij".to_vec()),
            Ev::End(vec![]),
            req("GET", "/next"),
            Ev::End(vec![]),
            Ev::Paused
        ]
    );
    d.respond(200, b"next");
    assert!(d.take_out().ends_with("Content-Length: 4\r\n\r\nnext"));
    assert_eq!(d.next().unwrap(), Ev::NeedData);
    assert!(!d.conn.is_closed());
}

#[test]
fn an_early_chunked_response_ends_on_the_wire_at_once() {
    let mut d = Driver::new(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    );
    assert_eq!(d.next().unwrap(), req("POST", "/"));
    let head = ResponseHead {
        status: 200,
        headers: &[],
        body: ResponseBody::Chunked,
        close: false,
    };
    d.conn.write_head(&head, &d.date, &mut d.out).unwrap();
    assert!(d.conn.is_response_open());
    d.conn.write_body(b"hi", &mut d.out).unwrap();
    d.conn.write_end(&mut d.out).unwrap();
    assert!(d.take_out().ends_with("\r\n\r\n2\r\nhi\r\n0\r\n\r\n"));
    // The response is over: nothing more may be written for it.
    assert_eq!(
        d.conn.write_body(b"x", &mut d.out),
        Err(ResponseError::NoResponse)
    );
    assert_eq!(d.conn.write_end(&mut d.out), Err(ResponseError::NoResponse));
    assert!(!d.conn.write_continue(&mut d.out));
    assert!(d.out.is_empty());
    d.input.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(
        d.run().unwrap(),
        [Ev::Data(b"abc".to_vec()), Ev::End(vec![]), Ev::NeedData]
    );
    assert!(!d.conn.wants_body() && !d.conn.wants_response());
}

#[test]
fn an_early_response_that_closes_still_reads_the_body_then_closes() {
    let mut d = Driver::new(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nab");
    assert_eq!(d.next().unwrap(), req("POST", "/"));
    let head = ResponseHead {
        status: 413,
        headers: &[],
        body: ResponseBody::Empty,
        close: true,
    };
    d.conn.write_head(&head, &d.date, &mut d.out).unwrap();
    d.conn.write_end(&mut d.out).unwrap();
    assert!(d.take_out().ends_with("Connection: close\r\n\r\n"));
    assert!(!d.conn.is_closed());
    assert_eq!(d.run().unwrap(), [Ev::Data(b"ab".to_vec()), Ev::NeedData]);
    d.input.extend_from_slice(b"cGET / HTTP/1.1\r\n");
    assert_eq!(
        d.run().unwrap(),
        [Ev::Data(b"c".to_vec()), Ev::End(vec![]), Ev::Closed]
    );
    assert!(d.conn.is_closed());
    assert_eq!(d.input, b"GET / HTTP/1.1\r\n");
}

#[test]
fn after_an_early_response_errors_and_eof_are_not_answered() {
    // The rest of the body is malformed: the response is out, so no error response follows.
    let mut d = Driver::new(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",
    );
    assert_eq!(d.next().unwrap(), req("POST", "/"));
    d.respond(200, b"ok");
    d.take_out();
    assert_eq!(d.run(), Err(ParseError::InvalidChunkSize));
    assert!(!d.conn.write_error(&d.date, &mut d.out));
    assert!(d.conn.is_closed());

    // So does a timeout.
    let mut d = Driver::new(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab");
    d.run().unwrap();
    d.respond(200, b"ok");
    d.take_out();
    d.conn.handle_timeout();
    assert!(!d.conn.write_error(&d.date, &mut d.out));
    assert!(d.out.is_empty());
    assert!(d.conn.is_closed());

    // The peer stops sending: the body was cut short, and the connection is finished.
    let mut d = Driver::new(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab");
    d.run().unwrap();
    d.respond(200, b"ok");
    assert!(d.conn.handle_eof());
    assert!(d.conn.is_closed());
    assert_eq!(d.next().unwrap(), Ev::Closed);
}

#[test]
fn a_short_early_end_is_refused_at_once() {
    let mut d = Driver::new(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab");
    d.next().unwrap();
    let head = ResponseHead {
        status: 200,
        headers: &[],
        body: ResponseBody::Length(4),
        close: false,
    };
    d.conn.write_head(&head, &d.date, &mut d.out).unwrap();
    d.conn.write_body(b"abc", &mut d.out).unwrap();
    assert_eq!(
        d.conn.write_end(&mut d.out),
        Err(ResponseError::BodyTooShort)
    );
    assert!(d.conn.is_response_open());
    d.conn.write_body(b"d", &mut d.out).unwrap();
    d.conn.write_end(&mut d.out).unwrap();
    assert!(!d.conn.is_response_open());
}

#[test]
fn exchange_predicates_follow_the_request_and_the_response() {
    let mut d = Driver::new(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let state = |c: &ServerConn| (c.wants_body(), c.wants_response(), c.is_response_open());
    assert_eq!(state(&d.conn), (false, false, false));
    assert_eq!(d.next().unwrap(), req("GET", "/"));
    // An empty body has not ended until its End is reported.
    assert_eq!(state(&d.conn), (true, true, false));
    assert_eq!(d.next().unwrap(), Ev::End(vec![]));
    assert_eq!(state(&d.conn), (false, true, false));
    let head = ResponseHead {
        status: 200,
        headers: &[],
        body: ResponseBody::Length(1),
        close: false,
    };
    d.conn.write_head(&head, &d.date, &mut d.out).unwrap();
    assert_eq!(state(&d.conn), (false, false, true));
    d.conn.write_body(b"x", &mut d.out).unwrap();
    d.conn.write_end(&mut d.out).unwrap();
    assert_eq!(state(&d.conn), (false, false, false));
}

#[test]
fn content_length_body_arrives_in_pieces() {
    let mut d = Driver::new(b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nab");
    assert_eq!(
        d.run().unwrap(),
        [req("PUT", "/x"), Ev::Data(b"ab".to_vec()), Ev::NeedData]
    );
    d.input.extend_from_slice(b"cdefGET");
    assert_eq!(
        d.run().unwrap(),
        [Ev::Data(b"cdef".to_vec()), Ev::End(vec![]), Ev::Paused]
    );
    assert_eq!(d.input, b"GET");
}

#[test]
fn chunked_request_body_with_trailers() {
    let mut d = Driver::new(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n",
    );
    assert_eq!(
        d.run().unwrap(),
        [
            req("POST", "/"),
            Ev::Data(b"abcde".to_vec()),
            Ev::End(vec![("X-Sum".into(), b"5".to_vec())]),
            Ev::Paused
        ]
    );
}

#[test]
fn parse_errors_are_sticky_and_answered_once() {
    let mut d = Driver::new(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n");
    assert_eq!(d.next(), Err(ParseError::InvalidContentLength));
    assert_eq!(d.next(), Err(ParseError::InvalidContentLength));
    assert_eq!(d.conn.error(), Some(ParseError::InvalidContentLength));
    assert!(d.conn.write_error(&d.date, &mut d.out));
    assert!(!d.conn.write_error(&d.date, &mut d.out));
    assert_eq!(
        d.take_out(),
        "HTTP/1.1 400 Bad Request\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert!(d.conn.is_closed());
}

const TIMEOUT_408: &str = "HTTP/1.1 408 Request Timeout\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

#[test]
fn a_timeout_after_a_partial_head_is_answered_408_and_closes() {
    let mut d = Driver::new(b"GET / HTTP/1.1\r\nHo");
    assert_eq!(d.next().unwrap(), Ev::NeedData);
    d.conn.handle_timeout();
    assert_eq!(d.conn.error(), Some(ParseError::Timeout));
    assert!(d.conn.is_closed());
    assert!(!d.conn.is_keep_alive());
    assert!(d.conn.write_error(&d.date, &mut d.out));
    assert_eq!(d.take_out(), TIMEOUT_408);
}

#[test]
fn a_timeout_before_any_byte_or_mid_body_is_answered_408() {
    // The first request never came.
    let mut d = Driver::new(b"");
    d.conn.handle_timeout();
    assert!(d.conn.write_error(&d.date, &mut d.out));
    assert_eq!(d.take_out(), TIMEOUT_408);

    // The body stopped arriving before anything was answered.
    let mut d = Driver::new(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc");
    assert_eq!(
        d.run().unwrap(),
        [req("POST", "/"), Ev::Data(b"abc".to_vec()), Ev::NeedData]
    );
    d.conn.handle_timeout();
    assert!(d.conn.write_error(&d.date, &mut d.out));
    assert_eq!(d.take_out(), TIMEOUT_408);
    assert!(d.conn.is_closed());
}

#[test]
fn a_timeout_is_not_answered_once_a_response_has_started() {
    let mut d = Driver::new(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc");
    d.run().unwrap();
    let head = ResponseHead {
        status: 200,
        headers: &[],
        body: ResponseBody::Chunked,
        close: false,
    };
    d.conn.write_head(&head, &d.date, &mut d.out).unwrap();
    d.take_out();
    d.conn.handle_timeout();
    assert!(!d.conn.write_error(&d.date, &mut d.out));
    assert!(d.out.is_empty());
    assert!(d.conn.is_closed());
    assert_eq!(d.conn.error(), Some(ParseError::Timeout));
}

#[test]
fn the_timeout_error_is_sticky_and_does_not_replace_an_earlier_one() {
    let mut d = Driver::new(b"GET / HTTP/1.1\r\n");
    d.next().unwrap();
    d.conn.handle_timeout();
    // Bytes that arrive after the deadline are not parsed.
    d.input.extend_from_slice(b"Host: a\r\n\r\n");
    assert_eq!(d.next(), Err(ParseError::Timeout));
    assert_eq!(d.next(), Err(ParseError::Timeout));
    assert!(!d.conn.handle_eof());
    assert_eq!(d.conn.error(), Some(ParseError::Timeout));
    assert!(d.conn.write_error(&d.date, &mut d.out));
    d.conn.handle_timeout();
    assert!(!d.conn.write_error(&d.date, &mut d.out));
    assert_eq!(d.take_out(), TIMEOUT_408);

    // A parse error came first: it stays, and is answered once.
    let mut d = Driver::new(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n");
    assert_eq!(d.next(), Err(ParseError::InvalidContentLength));
    d.conn.handle_timeout();
    assert_eq!(d.conn.error(), Some(ParseError::InvalidContentLength));
    assert!(d.conn.write_error(&d.date, &mut d.out));
    d.conn.handle_timeout();
    assert!(!d.conn.write_error(&d.date, &mut d.out));
    assert!(d.take_out().starts_with("HTTP/1.1 400 Bad Request\r\n"));
}

#[test]
fn a_timeout_does_not_touch_a_switched_connection() {
    let mut d = Driver::new(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    d.next().unwrap();
    let head = ResponseHead {
        status: 101,
        headers: &[("Upgrade", b"websocket")],
        body: ResponseBody::Empty,
        close: false,
    };
    d.conn.write_head(&head, &d.date, &mut d.out).unwrap();
    d.take_out();
    d.conn.handle_timeout();
    assert_eq!(d.conn.error(), None);
    assert!(!d.conn.write_error(&d.date, &mut d.out));
    assert_eq!(d.next().unwrap(), Ev::Upgraded);
}

#[test]
fn chunked_body_over_limit_is_413_mid_stream() {
    let mut l = Limits::default();
    l.max_body = 4;
    let mut d = Driver::with_limits(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n",
        &l,
    );
    assert_eq!(d.next().unwrap(), req("POST", "/"));
    assert_eq!(d.next().unwrap(), Ev::Data(b"abc".to_vec()));
    assert_eq!(d.next(), Err(ParseError::BodyTooLarge));
    // No response had started, so the 413 goes out.
    assert!(d.conn.write_error(&d.date, &mut d.out));
    assert!(d
        .take_out()
        .starts_with("HTTP/1.1 413 Content Too Large\r\n"));
}

#[test]
fn errors_after_the_response_started_are_not_answered() {
    let mut d =
        Driver::new(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    assert_eq!(d.next().unwrap(), req("POST", "/"));
    let head = ResponseHead {
        status: 200,
        headers: &[],
        body: ResponseBody::Chunked,
        close: false,
    };
    d.conn.write_head(&head, &d.date, &mut d.out).unwrap();
    assert_eq!(d.next(), Err(ParseError::InvalidChunkSize));
    assert!(!d.conn.write_error(&d.date, &mut d.out));
    assert!(d.conn.is_closed());
}

#[test]
fn draining_closes_idle_connections_and_marks_responses() {
    let mut d = Driver::new(b"");
    d.conn.start_drain();
    assert!(d.conn.is_closed());
    assert_eq!(d.next().unwrap(), Ev::Closed);

    let mut d = Driver::new(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    d.run().unwrap();
    d.conn.start_drain();
    d.respond(200, b"");
    assert!(d.take_out().contains("Connection: close\r\n"));
    assert_eq!(d.next().unwrap(), Ev::Closed);
}

#[test]
fn eof_reports_whether_a_request_was_cut_short() {
    let mut d = Driver::new(b"");
    assert!(!d.conn.handle_eof());
    assert_eq!(d.next().unwrap(), Ev::Closed);

    let mut d = Driver::new(b"GET / HT");
    assert_eq!(d.next().unwrap(), Ev::NeedData);
    assert!(d.conn.handle_eof());

    let mut d = Driver::new(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab");
    d.run().unwrap();
    assert!(d.conn.handle_eof());

    // A complete request whose client half-closed still gets its response.
    let mut d = Driver::new(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    d.run().unwrap();
    assert!(!d.conn.handle_eof());
    assert!(!d.conn.is_closed());
    d.respond(200, b"late");
    assert!(d.conn.is_closed());
}

#[test]
fn header_line_limit_counts_trailing_whitespace_whole_and_dripped() {
    let mut l = Limits::default();
    l.max_header_line = 20;
    // "X-Pad: v" plus 13 spaces is 21 bytes of line; the value itself is one byte.
    let input = get(&format!("X-Pad: v{}\r\nX-B: 1\r\n", " ".repeat(13)));
    assert_eq!(
        parse_with(&l, &input).map(|_| ()),
        Err(ParseError::HeaderLineTooLong)
    );
    assert_eq!(
        drip(&l, &input).map(|_| ()),
        Err(ParseError::HeaderLineTooLong)
    );
    // The same as the last field line.
    let input = get(&format!("X-Pad: v{}\r\n", " ".repeat(13)));
    assert_eq!(
        parse_with(&l, &input).map(|_| ()),
        Err(ParseError::HeaderLineTooLong)
    );
    let input = get(&format!("X-Pad: v{}\r\n", " ".repeat(12)));
    assert!(parse_with(&l, &input).is_ok());
    assert!(drip(&l, &input).unwrap().is_some());
}

#[test]
fn parser_errors_are_sticky_until_reset() {
    let mut parser = RequestParser::new(&Limits::default());
    let mut slots = header_slots::<8>();
    let bad = b"GET / HTTP/1.1\nHost: a\r\n\r\n";
    assert_eq!(
        parser.parse(bad, &mut slots).map(|_| ()),
        Err(ParseError::BareNewline)
    );
    let good = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut slots = header_slots::<8>();
    assert_eq!(
        parser.parse(good, &mut slots).map(|_| ()),
        Err(ParseError::BareNewline)
    );
    parser.reset();
    let mut slots = header_slots::<8>();
    assert!(parser.parse(good, &mut slots).unwrap().is_complete());
}

/// The outcome of parsing `input` fed in two pieces split at `at` (re-feeding the prefix).
fn split_outcome(
    limits: &Limits,
    input: &[u8],
    at: usize,
) -> Result<Option<OwnedRequest>, ParseError> {
    let mut parser = RequestParser::new(limits);
    for end in [at, input.len()] {
        let mut slots = header_slots::<128>();
        if let Status::Complete((len, req)) = parser.parse(&input[..end], &mut slots)? {
            return Ok(Some(OwnedRequest::from(len, &req)));
        }
    }
    Ok(None)
}

#[test]
fn the_outcome_does_not_depend_on_how_the_bytes_are_split() {
    let mut tight = Limits::default();
    tight.max_request_line = 48;
    let long_line_then_bad_name = format!(
        "GET /{} HTTP/1.1\r\nBad Name: x\r\nHost: a\r\n\r\n",
        "a".repeat(60)
    );
    let cases: Vec<(Limits, Vec<u8>)> = vec![
        (Limits::default(), b"\n\0".to_vec()),
        (Limits::default(), b"T\xff".to_vec()),
        (
            Limits::default(),
            b"GET / HTTP/1.1\r\nHost: a\r\nX\x01: y\r\n\r\n".to_vec(),
        ),
        (
            Limits::default(),
            b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n".to_vec(),
        ),
        (
            Limits::default(),
            b"GET / HTTP/9.9\r\nHost: a\r\n\r\n".to_vec(),
        ),
        (
            Limits::default(),
            b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n".to_vec(),
        ),
        (
            Limits::default(),
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n".to_vec(),
        ),
        (
            Limits::default(),
            b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ),
        (Limits::default(), b"GET /\r\nHost: a\r\n".to_vec()),
        (
            Limits::default(),
            b"GET / HTTP/1.1x\r\nHost: a\r\n".to_vec(),
        ),
        (
            Limits::default(),
            b"GET / HTTP/1.2\r\nHost: a\r\n\r\n".to_vec(),
        ),
        (
            Limits::default(),
            b"GET / HTTP/1\r\nHost: a\r\n\r\n".to_vec(),
        ),
        (Limits::default(), b"GET\r\nHost: a\r\n".to_vec()),
        (Limits::default(), b"GET / HTTP/1.1\r\nHost\r\n".to_vec()),
        (tight, long_line_then_bad_name.into_bytes()),
    ];
    let mut few = Limits::default();
    few.max_headers = 2;
    let mut cases = cases;
    cases.push((
        few,
        b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC".to_vec(),
    ));
    cases.push((
        few,
        b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n".to_vec(),
    ));
    for (limits, input) in &cases {
        let mut slots = header_slots::<128>();
        let whole = RequestParser::new(limits)
            .parse(input, &mut slots)
            .map(|s| match s {
                Status::Complete((len, req)) => Some(OwnedRequest::from(len, &req)),
                Status::Partial => None,
            });
        for at in 0..=input.len() {
            assert_eq!(
                split_outcome(limits, input, at),
                whole,
                "{:?} split at {at}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(
            drip(limits, input),
            whole,
            "{:?} dripped",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn junk_is_refused_as_it_arrives_not_when_the_head_ends() {
    let mut parser = RequestParser::new(&Limits::default());
    let mut slots = header_slots::<8>();
    assert!(parser.parse(b"T", &mut slots).unwrap().is_partial());
    let mut slots = header_slots::<8>();
    assert_eq!(
        parser.parse(b"T\xff", &mut slots).map(|_| ()),
        Err(ParseError::InvalidRequestLine)
    );
    let mut parser = RequestParser::new(&Limits::default());
    let mut slots = header_slots::<8>();
    assert!(parser
        .parse(b"GET / HTTP/1.1\r\nHost: a\r\nX-A", &mut slots)
        .unwrap()
        .is_partial());
    let mut slots = header_slots::<8>();
    let more = b"GET / HTTP/1.1\r\nHost: a\r\nX-A\x00";
    assert_eq!(
        parser.parse(more, &mut slots).map(|_| ()),
        Err(ParseError::InvalidHeaderName)
    );
}
