//! Property tests for the sans-I/O HTTP/1.1 core, through the public API only (STYLE.md §2.8).
//!
//! - **Split invariance**: a valid input fed in any number of pieces (the growing-prefix
//!   protocol of [`RequestParser::parse`], the unconsumed-bytes buffer of
//!   [`ServerConn::handle_input`] and [`ChunkedDecoder::decode`]) gives the same result as
//!   the input fed whole, and both equal the model the input was generated from; the
//!   response bytes also equal the ones a model of the responses spells out, so a framing
//!   bug that whole and split runs share does not pass unseen.
//! - **Round trip**: chunked encoding with random chunk sizes, extensions and trailers
//!   decodes to the data and trailers it was built from.
//! - **Totality**: arbitrary bytes, and valid inputs with a few bytes mutated, never panic;
//!   `consumed <= len` on every call; an error is reported again on the next call.
//! - **Limits hold**: with small [`Limits`], nothing over a limit is accepted, everything
//!   under every limit is, the error names the limit that was crossed, and the bytes a peer
//!   can leave buffered without completing an event stay under `max_head`/`max_trailers`.
//!
//! Each property runs proptest's default 256 cases; set `PROPTEST_CASES` to run more. Failing
//! cases are saved to `proptest-regressions/prop_http.txt` and replayed first on every run.

use std::ops::RangeInclusive;

use berth::http::{
    header_slots, BodyKind, Chunk, ChunkedDecoder, DateCache, Event, ParseError, Request,
    RequestParser, ResponseBody, ResponseHead, ServerConn, Status, Trailers, Version,
};
use berth::Limits;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::FileFailurePersistence;

/// Default case count (256, or `PROPTEST_CASES`), failures saved where STYLE.md §2.8 wants them.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/prop_http.txt",
        ))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Byte classes (RFC 9110 §5.6, RFC 3986 §3.3)
// ---------------------------------------------------------------------------------------------

const TCHARS: &[u8] =
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// pchar and `/`, without `?` (which starts the query).
const PATH_CHARS: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@%/";
const HOST_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-.";
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PURGE",
];
/// Field names the generator places itself, because they change framing or connection state.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
    "upgrade",
];
const OWS: &[&str] = &["", "", " ", "\t", "  ", " \t"];
const NO_OWS: &[&str] = &[""];
const BWS: &[&str] = &["", "", "", " ", "\t"];
const CONTENT_LENGTH_NAMES: &[&str] = &["Content-Length", "content-length", "CONTENT-LENGTH"];
const TRANSFER_ENCODING_NAMES: &[&str] = &["Transfer-Encoding", "transfer-encoding"];
const CHUNKED_VALUES: &[&str] = &["chunked", "Chunked", "CHUNKED"];
/// `Connection` values and what they mean: (value, close, keep-alive).
const CONNECTION_VALUES: &[(&str, bool, bool)] = &[
    ("close", true, false),
    ("Close", true, false),
    ("keep-alive", false, true),
    ("Keep-Alive", false, true),
    ("x-hop, keep-alive", false, true),
    ("keep-alive, close", true, true),
    ("x-hop", false, false),
];

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Generated requests: the model each test compares the parser's results against
// ---------------------------------------------------------------------------------------------

/// One field line: `name ":" pre value post CRLF`.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    value: Vec<u8>,
    pre: &'static str,
    post: &'static str,
}

impl Field {
    fn plain(name: &str, value: &str) -> Self {
        Field {
            name: name.to_owned(),
            value: value.as_bytes().to_vec(),
            pre: " ",
            post: "",
        }
    }

    /// Bytes of the line without its CRLF.
    fn line_len(&self) -> usize {
        self.name.len() + 1 + self.pre.len() + self.value.len() + self.post.len()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.name.as_bytes());
        out.push(b':');
        out.extend_from_slice(self.pre.as_bytes());
        out.extend_from_slice(&self.value);
        out.extend_from_slice(self.post.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    fn pair(&self) -> (String, Vec<u8>) {
        (self.name.clone(), self.value.clone())
    }
}

/// A chunked body as it goes on the wire: size lines (with extensions), data, trailers.
#[derive(Debug, Clone)]
struct GenChunked {
    /// (chunk-size line without CRLF, chunk data); the data is never empty.
    chunks: Vec<(Vec<u8>, Vec<u8>)>,
    /// The last-chunk line without CRLF: one or more `0`s and extensions.
    last: Vec<u8>,
    trailers: Vec<Field>,
}

impl GenChunked {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (line, data) in &self.chunks {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&self.last);
        out.extend_from_slice(b"\r\n");
        for field in &self.trailers {
            field.encode(&mut out);
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    fn data(&self) -> Vec<u8> {
        self.chunks.iter().flat_map(|(_, d)| d.clone()).collect()
    }

    fn trailer_pairs(&self) -> Vec<(String, Vec<u8>)> {
        self.trailers.iter().map(Field::pair).collect()
    }

    /// The longest chunk-size line, CRLF excluded.
    fn max_line(&self) -> usize {
        self.chunks
            .iter()
            .map(|(line, _)| line.len())
            .chain([self.last.len()])
            .max()
            .unwrap_or(0)
    }

    /// The trailer section in bytes, line endings and the final empty line included.
    fn trailer_section_len(&self) -> usize {
        self.trailers
            .iter()
            .map(|f| f.line_len() + 2)
            .sum::<usize>()
            + 2
    }
}

#[derive(Debug, Clone)]
enum GenBody {
    None,
    Length(Vec<u8>),
    Chunked(GenChunked),
}

#[derive(Debug, Clone)]
struct GenRequest {
    /// An empty line before the request line, which RFC 9112 §2.2 lets a server skip.
    leading_crlf: bool,
    method: &'static str,
    target: String,
    version: Version,
    /// Every field line in wire order, framing fields included.
    fields: Vec<Field>,
    keep_alive: bool,
    expect_continue: bool,
    body: GenBody,
}

impl GenRequest {
    fn head(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.leading_crlf {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(match self.version {
            Version::Http10 => b" HTTP/1.0\r\n",
            Version::Http11 => b" HTTP/1.1\r\n",
        });
        for field in &self.fields {
            field.encode(&mut out);
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            GenBody::None => Vec::new(),
            GenBody::Length(data) => data.clone(),
            GenBody::Chunked(chunked) => chunked.encode(),
        }
    }

    fn wire(&self) -> Vec<u8> {
        let mut out = self.head();
        out.extend_from_slice(&self.body_bytes());
        out
    }

    fn body_data(&self) -> Vec<u8> {
        match &self.body {
            GenBody::None => Vec::new(),
            GenBody::Length(data) => data.clone(),
            GenBody::Chunked(chunked) => chunked.data(),
        }
    }

    fn trailers(&self) -> Vec<(String, Vec<u8>)> {
        match &self.body {
            GenBody::Chunked(chunked) => chunked.trailer_pairs(),
            _ => Vec::new(),
        }
    }

    fn request_line_len(&self) -> usize {
        self.method.len() + 1 + self.target.len() + 9
    }

    fn expected_head(&self) -> HeadOut {
        HeadOut {
            consumed: self.head().len(),
            method: self.method.to_owned(),
            target: self.target.clone(),
            version: self.version,
            headers: self.fields.iter().map(Field::pair).collect(),
            body: match &self.body {
                GenBody::None => BodyKind::Empty,
                GenBody::Length(data) if data.is_empty() => BodyKind::Empty,
                GenBody::Length(data) => BodyKind::Length(data.len() as u64),
                GenBody::Chunked(_) => BodyKind::Chunked,
            },
            keep_alive: self.keep_alive,
            expect_continue: self.expect_continue,
            upgrade: None,
        }
    }

    fn expected_exchange(&self) -> Exchange {
        Exchange {
            head: self.expected_head(),
            body: self.body_data(),
            trailers: Some(self.trailers()),
        }
    }

    /// The errors allowed for this request's head under `limits` with `slots` header slots:
    /// one for every limit it crosses. Empty when the head must be accepted.
    fn head_violations(&self, limits: &Limits, slots: usize) -> Vec<ParseError> {
        let mut errors = Vec::new();
        if self.head().len() > limits.max_head {
            errors.push(ParseError::HeadTooLarge);
        }
        if self.request_line_len() > limits.max_request_line {
            errors.push(ParseError::RequestLineTooLong);
        }
        if self
            .fields
            .iter()
            .any(|f| f.line_len() > limits.max_header_line)
        {
            errors.push(ParseError::HeaderLineTooLong);
        }
        if self.fields.len() > limits.max_headers.min(slots) {
            errors.push(ParseError::TooManyHeaders);
        }
        if let GenBody::Length(data) = &self.body {
            if data.len() as u64 > limits.max_body {
                errors.push(ParseError::BodyTooLarge);
            }
        }
        errors
    }
}

/// Size knobs for the generators, so the limit tests can aim at the limits.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    target: usize,
    value: usize,
    extra_fields: usize,
    body: usize,
    trailers: usize,
    exts: usize,
    /// Allow OWS after field values (which the parser trims).
    post_ows: bool,
}

const SIZES: Sizes = Sizes {
    target: 40,
    value: 40,
    extra_fields: 12,
    body: 300,
    trailers: 3,
    exts: 2,
    post_ows: true,
};

fn bytes_of(set: &'static [u8], len: RangeInclusive<usize>) -> impl Strategy<Value = Vec<u8>> {
    vec(select(set), len)
}

fn string_of(set: &'static [u8], len: RangeInclusive<usize>) -> impl Strategy<Value = String> {
    bytes_of(set, len).prop_map(|b| String::from_utf8(b).expect("ASCII"))
}

fn token(len: RangeInclusive<usize>) -> impl Strategy<Value = String> {
    string_of(TCHARS, len)
}

/// A field value without surrounding whitespace: VCHAR, obs-text, and SP/HTAB inside.
fn field_value(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![
            8 => 0x21u8..=0x7e,
            1 => 0x80u8..=0xff,
            1 => Just(b' '),
            1 => Just(b'\t'),
        ],
        0..=max,
    )
    .prop_map(|v| trim_ows(&v).to_vec())
}

fn field(max_value: usize, post_ows: bool) -> impl Strategy<Value = Field> {
    (
        token(1..=12),
        field_value(max_value),
        select(OWS),
        select(if post_ows { OWS } else { NO_OWS }),
    )
        .prop_map(|(name, value, pre, post)| Field {
            name,
            value,
            pre,
            post,
        })
}

/// An extra header field whose name means nothing to the parser.
fn extra_field(max_value: usize, post_ows: bool) -> impl Strategy<Value = Field> {
    field(max_value, post_ows).prop_filter("reserved field name", |f| {
        !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(&f.name))
    })
}

fn target(max: usize) -> impl Strategy<Value = String> {
    (
        string_of(PATH_CHARS, 0..=max),
        prop::option::weighted(0.3, string_of(PATH_CHARS, 0..=max / 2)),
    )
        .prop_map(|(path, query)| match query {
            Some(query) => format!("/{path}?{query}"),
            None => format!("/{path}"),
        })
}

fn host() -> impl Strategy<Value = String> {
    (
        string_of(HOST_CHARS, 1..=20),
        prop::option::weighted(0.3, 1u16..),
    )
        .prop_map(|(name, port)| match port {
            Some(port) => format!("{name}:{port}"),
            None => name,
        })
}

/// A `quoted-string` chunk-extension value: qdtext and quoted-pairs.
fn quoted_string() -> impl Strategy<Value = Vec<u8>> {
    let qdtext = prop_oneof![
        Just(b'\t'),
        Just(b' '),
        Just(b'!'),
        0x23u8..=0x5b,
        0x5du8..=0x7e,
        0x80u8..=0xff,
    ]
    .prop_map(|b| vec![b]);
    let quoted_pair = prop_oneof![Just(b'\t'), Just(b' '), 0x21u8..=0x7e, 0x80u8..=0xff]
        .prop_map(|b| vec![b'\\', b]);
    vec(prop_oneof![4 => qdtext, 1 => quoted_pair], 0..=10).prop_map(|parts| {
        let mut out = vec![b'"'];
        out.extend(parts.into_iter().flatten());
        out.push(b'"');
        out
    })
}

/// One `BWS ";" BWS name [ BWS "=" BWS value ]` chunk extension.
fn chunk_ext() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![token(1..=8).prop_map(String::into_bytes), quoted_string()];
    (
        select(BWS),
        select(BWS),
        token(1..=8),
        prop::option::of((select(BWS), select(BWS), value)),
    )
        .prop_map(|(b1, b2, name, value)| {
            let mut out = format!("{b1};{b2}{name}").into_bytes();
            if let Some((b3, b4, value)) = value {
                out.extend_from_slice(format!("{b3}={b4}").as_bytes());
                out.extend_from_slice(&value);
            }
            out
        })
}

/// How one chunk-size line is spelled: hex case, leading zeros, extensions.
#[derive(Debug, Clone)]
struct SizeSpelling {
    upper: bool,
    zeros: usize,
    exts: Vec<Vec<u8>>,
}

impl SizeSpelling {
    fn line(&self, size: usize) -> Vec<u8> {
        let hex = if self.upper {
            format!("{size:X}")
        } else {
            format!("{size:x}")
        };
        let mut out = "0".repeat(self.zeros).into_bytes();
        out.extend_from_slice(hex.as_bytes());
        for ext in &self.exts {
            out.extend_from_slice(ext);
        }
        out
    }
}

fn size_spelling(exts: usize) -> impl Strategy<Value = SizeSpelling> {
    (
        any::<bool>(),
        prop_oneof![6 => Just(0usize), 1 => 1usize..=3],
        vec(chunk_ext(), 0..=exts),
    )
        .prop_map(|(upper, zeros, exts)| SizeSpelling { upper, zeros, exts })
}

const MAX_CHUNKS: usize = 9;

fn chunked(s: Sizes) -> impl Strategy<Value = GenChunked> {
    (
        vec(any::<u8>(), 0..=s.body),
        vec(any::<Index>(), 0..MAX_CHUNKS),
        vec(size_spelling(s.exts), MAX_CHUNKS + 1),
        vec(field(s.value, s.post_ows), 0..=s.trailers),
    )
        .prop_map(|(data, cuts, mut spellings, trailers)| {
            let mut bounds: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
            bounds.extend([0, data.len()]);
            bounds.sort_unstable();
            bounds.dedup();
            let last = spellings.pop().expect("MAX_CHUNKS + 1 spellings").line(0);
            let chunks = bounds
                .windows(2)
                .zip(&spellings)
                .map(|(w, spelling)| {
                    let piece = data[w[0]..w[1]].to_vec();
                    (spelling.line(piece.len()), piece)
                })
                .collect();
            GenChunked {
                chunks,
                last,
                trailers,
            }
        })
}

fn gen_body(s: Sizes) -> impl Strategy<Value = (GenBody, &'static str)> {
    prop_oneof![
        2 => Just((GenBody::None, "")),
        2 => (vec(any::<u8>(), 0..=s.body), select(CONTENT_LENGTH_NAMES))
            .prop_map(|(data, name)| (GenBody::Length(data), name)),
        2 => (chunked(s), select(TRANSFER_ENCODING_NAMES))
            .prop_map(|(c, name)| (GenBody::Chunked(c), name)),
    ]
}

fn request(s: Sizes) -> impl Strategy<Value = GenRequest> {
    (
        prop::bool::weighted(0.1),
        select(METHODS),
        target(s.target),
        prop::bool::weighted(0.8),
        (host(), prop::bool::weighted(0.5)),
        vec(extra_field(s.value, s.post_ows), 0..=s.extra_fields),
        prop::option::weighted(0.3, select(CONNECTION_VALUES)),
        prop::bool::weighted(0.15),
        (gen_body(s), select(CHUNKED_VALUES)),
        vec(any::<Index>(), 4),
    )
        .prop_map(
            |(
                leading_crlf,
                method,
                target,
                http11,
                (host, host_on_10),
                mut fields,
                connection,
                expect,
                ((body, framing_name), chunked_value),
                positions,
            )| {
                let version = if http11 {
                    Version::Http11
                } else {
                    Version::Http10
                };
                // HTTP/1.0 has no chunked framing: send the same data with a length.
                let (body, framing_name) = match (body, framing_name) {
                    (GenBody::Chunked(c), _) if !http11 => {
                        (GenBody::Length(c.data()), "Content-Length")
                    }
                    other => other,
                };
                let mut insert = |field: Field, at: &Index| {
                    let i = at.index(fields.len() + 1);
                    fields.insert(i, field);
                };
                if http11 || host_on_10 {
                    insert(Field::plain("Host", &host), &positions[0]);
                }
                let (mut close, mut keep_alive_option) = (false, false);
                if let Some((value, c, k)) = connection {
                    insert(Field::plain("Connection", value), &positions[1]);
                    (close, keep_alive_option) = (c, k);
                }
                if expect {
                    insert(Field::plain("Expect", "100-continue"), &positions[2]);
                }
                match &body {
                    GenBody::None => {}
                    GenBody::Length(data) => insert(
                        Field::plain(framing_name, &data.len().to_string()),
                        &positions[3],
                    ),
                    GenBody::Chunked(_) => {
                        insert(Field::plain(framing_name, chunked_value), &positions[3])
                    }
                }
                GenRequest {
                    leading_crlf,
                    method,
                    target,
                    version,
                    fields,
                    keep_alive: match version {
                        Version::Http11 => !close,
                        Version::Http10 => keep_alive_option && !close,
                    },
                    expect_continue: expect && http11,
                    body,
                }
            },
        )
}

/// Several requests, one after another on one connection.
fn batch(s: Sizes, count: RangeInclusive<usize>) -> impl Strategy<Value = Vec<GenRequest>> {
    vec(request(s), count)
}

fn batch_wire(requests: &[GenRequest]) -> Vec<u8> {
    requests.iter().flat_map(GenRequest::wire).collect()
}

/// The exchanges a server must see for a batch: up to and including the first request that
/// does not keep the connection alive. Returns them and whether the connection then closes.
fn expected_exchanges(requests: &[GenRequest]) -> (Vec<Exchange>, Stop) {
    let mut exchanges = Vec::new();
    for req in requests {
        exchanges.push(req.expected_exchange());
        if !req.keep_alive {
            return (exchanges, Stop::Closed);
        }
    }
    (exchanges, Stop::NeedData)
}

// ---------------------------------------------------------------------------------------------
// Feeding: how an input is cut into the pieces that "arrive"
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Feed {
    /// Cut at these points (duplicates and empty pieces included).
    Cuts(Vec<Index>),
    /// Pieces of this many bytes (1 is the slow drip).
    Step(usize),
}

fn feed() -> impl Strategy<Value = Feed> {
    prop_oneof![
        4 => vec(any::<Index>(), 1..16).prop_map(Feed::Cuts),
        1 => (1usize..=5).prop_map(Feed::Step),
    ]
}

impl Feed {
    /// Ascending end offsets of the pieces; the last is `len`.
    fn points(&self, len: usize) -> Vec<usize> {
        let mut points: Vec<usize> = match self {
            Feed::Cuts(cuts) => cuts.iter().map(|i| i.index(len + 1)).collect(),
            Feed::Step(step) => (0..len).step_by(*step).collect(),
        };
        points.push(len);
        points.sort_unstable();
        points
    }
}

fn whole(len: usize) -> Vec<usize> {
    vec![len]
}

// ---------------------------------------------------------------------------------------------
// Owned views of the parser's results, so runs can be compared
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct HeadOut {
    consumed: usize,
    method: String,
    target: String,
    version: Version,
    headers: Vec<(String, Vec<u8>)>,
    body: BodyKind,
    keep_alive: bool,
    expect_continue: bool,
    upgrade: Option<Vec<u8>>,
}

fn head_out(consumed: usize, req: &Request<'_, '_>) -> HeadOut {
    HeadOut {
        consumed,
        method: req.method.to_owned(),
        target: req.target.to_owned(),
        version: req.version,
        headers: req
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect(),
        body: req.body,
        keep_alive: req.keep_alive,
        expect_continue: req.expect_continue,
        upgrade: req.upgrade.map(<[u8]>::to_vec),
    }
}

fn trailer_pairs(trailers: &Trailers<'_>) -> Vec<(String, Vec<u8>)> {
    trailers
        .iter()
        .map(|(name, value)| (name.to_owned(), value.to_vec()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Drivers
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum HeadResult {
    /// The head, and the length of the prefix it completed on.
    Complete(HeadOut, usize),
    Partial,
    Failed(ParseError),
}

/// Feed growing prefixes of `buf` (ending at each of `points`) to one `RequestParser`, the way
/// a runtime does while a head arrives, until it completes or fails.
fn parse_prefixes(limits: &Limits, buf: &[u8], points: &[usize], slots: usize) -> HeadResult {
    let mut parser = RequestParser::new(limits);
    for &end in points {
        let prefix = &buf[..end];
        let mut storage = header_slots::<64>();
        match parser.parse(prefix, &mut storage[..slots]) {
            Ok(Status::Partial) => {}
            Ok(Status::Complete((consumed, req))) => {
                assert!(consumed <= prefix.len(), "consumed {consumed} of {end}");
                assert!(!parser.is_mid_head(), "a complete head resets the parser");
                return HeadResult::Complete(head_out(consumed, &req), end);
            }
            Err(e) => return HeadResult::Failed(e),
        }
    }
    HeadResult::Partial
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Exchange {
    head: HeadOut,
    body: Vec<u8>,
    /// `Some` once the request ended.
    trailers: Option<Vec<(String, Vec<u8>)>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stop {
    /// All input was used and the connection waits for more.
    NeedData,
    /// The connection will read no further request.
    Closed,
    Failed(ParseError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Transcript {
    exchanges: Vec<Exchange>,
    /// Everything the server wrote.
    out: Vec<u8>,
    stop: Stop,
}

/// What a `handle_input` call reported, copied out of the borrowed buffer.
enum Step {
    Request(HeadOut),
    Data(Vec<u8>),
    End(Vec<(String, Vec<u8>)>),
    NeedData,
    Closed,
}

/// Answer request number `index`: echo its body, as a `Content-Length` body for even indexes
/// and a chunked one for odd ones.
fn respond(
    conn: &mut ServerConn,
    index: usize,
    ex: &Exchange,
    date: &DateCache,
    out: &mut Vec<u8>,
) {
    let index_text = index.to_string();
    let headers: [(&str, &[u8]); 2] = [
        ("Content-Type", b"application/octet-stream"),
        ("X-Request", index_text.as_bytes()),
    ];
    // Chunked to an HTTP/1.0 client is delimited by closing: keep those connections alive.
    let body = if index % 2 == 0 || ex.head.version == Version::Http10 {
        ResponseBody::Length(ex.body.len() as u64)
    } else {
        ResponseBody::Chunked
    };
    let head = ResponseHead {
        status: 200,
        headers: &headers,
        body,
        close: false,
    };
    conn.write_head(&head, date, out).expect("write_head");
    let (first, second) = ex.body.split_at(ex.body.len() / 2);
    conn.write_body(first, out).expect("write_body");
    conn.write_body(second, out).expect("write_body");
    conn.write_end(out).expect("write_end");
}

/// The bytes [`respond`] must make [`ServerConn`] write for `exchanges`, spelled out from
/// RFC 9112 rather than taken from the writer: each response's status line, fields and
/// framing, a `100 Continue` before it when one was asked for and a body is coming, and
/// `Connection` as the request's persistence requires.
fn expected_out(exchanges: &[Exchange]) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, ex) in exchanges.iter().enumerate() {
        let head = &ex.head;
        if head.expect_continue && head.body != BodyKind::Empty {
            out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let http10 = head.version == Version::Http10;
        let chunked = index % 2 == 1 && !http10;
        out.extend_from_slice(
            format!(
                "HTTP/1.1 200 OK\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\n\
                 Content-Type: application/octet-stream\r\nX-Request: {index}\r\n"
            )
            .as_bytes(),
        );
        if chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        } else {
            out.extend_from_slice(format!("Content-Length: {}\r\n", ex.body.len()).as_bytes());
        }
        match (http10, head.keep_alive) {
            (false, false) => out.extend_from_slice(b"Connection: close\r\n"),
            (true, true) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
            _ => {}
        }
        out.extend_from_slice(b"\r\n");
        // A response to HEAD has the fields of the one to GET, and no body (RFC 9110 §9.3.2).
        if head.method == "HEAD" {
            continue;
        }
        if chunked {
            let (first, second) = ex.body.split_at(ex.body.len() / 2);
            for half in [first, second] {
                if !half.is_empty() {
                    out.extend_from_slice(format!("{:x}\r\n", half.len()).as_bytes());
                    out.extend_from_slice(half);
                    out.extend_from_slice(b"\r\n");
                }
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            out.extend_from_slice(&ex.body);
        }
    }
    out
}

/// Drive a `ServerConn` the way a runtime does: append each arriving piece to a buffer of
/// unconsumed bytes, call `handle_input` until it needs data, discard what it consumed, and
/// answer each request as soon as it ends. Returns the transcript and the most bytes ever
/// left buffered when the connection asked for more.
fn drive_conn(limits: &Limits, input: &[u8], points: &[usize]) -> (Transcript, usize) {
    let date = DateCache::new(1_700_000_000);
    let mut conn = ServerConn::new(limits);
    let mut pending: Vec<u8> = Vec::new();
    let mut exchanges: Vec<Exchange> = Vec::new();
    let mut out = Vec::new();
    let mut max_pending = 0;
    let mut start = 0;
    // Every call consumes bytes or changes state, so this many calls means a livelock.
    let mut budget = 4 * input.len() + 64 * points.len() + 1000;
    for &end in points {
        pending.extend_from_slice(&input[start..end]);
        start = end;
        loop {
            budget = budget
                .checked_sub(1)
                .expect("handle_input made no progress");
            let mut slots = header_slots::<64>();
            let (used, step) = match conn.handle_input(&pending, &mut slots) {
                Ok((used, event)) => {
                    assert!(
                        used <= pending.len(),
                        "consumed {used} of {}",
                        pending.len()
                    );
                    let step = match event {
                        Event::Request(req) => {
                            assert!(used > 0);
                            Step::Request(head_out(used, &req))
                        }
                        Event::Data(data) => {
                            assert!(!data.is_empty() && used >= data.len());
                            Step::Data(data.to_vec())
                        }
                        Event::End(trailers) => Step::End(trailer_pairs(&trailers)),
                        Event::NeedData => Step::NeedData,
                        Event::Closed => Step::Closed,
                        other => panic!("unexpected event {other:?}"),
                    };
                    (used, step)
                }
                Err(e) => {
                    // The connection stays failed, and answers with the error's status once.
                    let mut slots = header_slots::<64>();
                    assert_eq!(conn.handle_input(&pending, &mut slots).err(), Some(e));
                    assert_eq!(conn.handle_input(b"", &mut slots).err(), Some(e));
                    assert_eq!(conn.error(), Some(e));
                    assert!(conn.is_closed());
                    let at = out.len();
                    assert!(conn.write_error(&date, &mut out));
                    let status_line = format!("HTTP/1.1 {} ", e.status());
                    assert!(out[at..].starts_with(status_line.as_bytes()));
                    assert!(!conn.write_error(&date, &mut out));
                    let transcript = Transcript {
                        exchanges,
                        out,
                        stop: Stop::Failed(e),
                    };
                    return (transcript, max_pending);
                }
            };
            pending.drain(..used);
            match step {
                Step::Request(head) => {
                    let expect_continue = head.expect_continue;
                    let has_body = head.body != BodyKind::Empty;
                    exchanges.push(Exchange {
                        head,
                        body: Vec::new(),
                        trailers: None,
                    });
                    if expect_continue {
                        // 100 Continue only when there is a body to wait for.
                        assert_eq!(conn.write_continue(&mut out), has_body);
                    }
                }
                Step::Data(data) => {
                    let ex = exchanges.last_mut().expect("data before a request");
                    assert!(ex.trailers.is_none(), "data after the end");
                    ex.body.extend_from_slice(&data);
                }
                Step::End(trailers) => {
                    let index = exchanges.len() - 1;
                    let ex = exchanges.last_mut().expect("end before a request");
                    assert!(ex.trailers.is_none(), "two ends");
                    ex.trailers = Some(trailers);
                    let ex = ex.clone();
                    respond(&mut conn, index, &ex, &date, &mut out);
                }
                Step::NeedData => {
                    max_pending = max_pending.max(pending.len());
                    break;
                }
                Step::Closed => {
                    assert!(conn.is_closed());
                    let transcript = Transcript {
                        exchanges,
                        out,
                        stop: Stop::Closed,
                    };
                    return (transcript, max_pending);
                }
            }
        }
    }
    let transcript = Transcript {
        exchanges,
        out,
        stop: Stop::NeedData,
    };
    (transcript, max_pending)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Decoded {
    data: Vec<u8>,
    /// Bytes consumed in all.
    consumed: usize,
    /// `Some` once the body ended.
    trailers: Option<Vec<(String, Vec<u8>)>>,
    error: Option<ParseError>,
}

/// Drive a `ChunkedDecoder` over `input` arriving in pieces, keeping unconsumed bytes.
fn drive_decoder(limits: &Limits, input: &[u8], points: &[usize]) -> Decoded {
    let mut decoder = ChunkedDecoder::new(limits);
    let mut pending: Vec<u8> = Vec::new();
    let mut decoded = Decoded {
        data: Vec::new(),
        consumed: 0,
        trailers: None,
        error: None,
    };
    let mut start = 0;
    for &end in points {
        pending.extend_from_slice(&input[start..end]);
        start = end;
        loop {
            let (used, trailers, more) = match decoder.decode(&pending) {
                Ok((used, chunk)) => {
                    assert!(
                        used <= pending.len(),
                        "consumed {used} of {}",
                        pending.len()
                    );
                    match chunk {
                        Chunk::Data(data) => {
                            assert!(!data.is_empty() && used >= data.len());
                            decoded.data.extend_from_slice(data);
                            (used, None, true)
                        }
                        Chunk::NeedData => (used, None, false),
                        Chunk::End(trailers) => (used, Some(trailer_pairs(&trailers)), false),
                    }
                }
                Err(e) => {
                    // The decoder stays failed.
                    assert_eq!(decoder.decode(&pending), Err(e));
                    assert_eq!(decoder.decode(b"\r\n"), Err(e));
                    assert!(decoded.data.len() as u64 <= limits.max_body);
                    decoded.error = Some(e);
                    return decoded;
                }
            };
            pending.drain(..used);
            decoded.consumed += used;
            assert_eq!(decoder.body_len(), decoded.data.len() as u64);
            assert!(decoder.body_len() <= limits.max_body);
            if let Some(trailers) = trailers {
                assert!(decoder.is_done());
                // A finished decoder consumes nothing more.
                assert_eq!(
                    decoder.decode(&pending),
                    Ok((0, Chunk::End(Trailers::default())))
                );
                decoded.trailers = Some(trailers);
                return decoded;
            }
            if !more {
                break;
            }
        }
    }
    assert!(!decoder.is_done());
    decoded
}

// ---------------------------------------------------------------------------------------------
// Mutations, for the totality tests
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
    Append(Vec<u8>),
}

/// Bytes that matter to the grammar, to make mutations bite more often than random bytes.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => select(b"\r\n :;=\"\\\t,0fF9-".as_slice()),
        1 => any::<u8>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), interesting_byte()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        4 => (any::<Index>(), interesting_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => any::<Index>().prop_map(Mutation::Delete),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => vec(any::<u8>(), 0..64).prop_map(Mutation::Append),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        match m {
            Mutation::Replace(i, b) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                bytes[i] = *b;
            }
            Mutation::Insert(i, b) => {
                let i = i.index(bytes.len() + 1);
                bytes.insert(i, *b);
            }
            Mutation::Delete(i) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                bytes.remove(i);
            }
            Mutation::Truncate(i) => {
                let i = i.index(bytes.len() + 1);
                bytes.truncate(i);
            }
            Mutation::Append(tail) => bytes.extend_from_slice(tail),
            _ => {}
        }
    }
    bytes
}

/// Inputs for the totality tests: random bytes, or valid requests with a few mutations.
fn hostile_requests() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => vec(any::<u8>(), 0..512),
        1 => (select(METHODS), vec(any::<u8>(), 0..256))
            .prop_map(|(m, rest)| [m.as_bytes(), b" /".as_slice(), rest.as_slice()].concat()),
        4 => (batch(SIZES, 1..=3), vec(mutation(), 1..6))
            .prop_map(|(reqs, muts)| mutate(batch_wire(&reqs), &muts)),
    ]
}

fn hostile_chunked() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => vec(any::<u8>(), 0..512),
        1 => vec(select(b"0123456789abcdefABCDEF;= \t\r\n\"\\x:".as_slice()), 0..256),
        4 => (chunked(SIZES), vec(mutation(), 1..6))
            .prop_map(|(c, muts)| mutate(c.encode(), &muts)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Small limits for the limit tests
// ---------------------------------------------------------------------------------------------

fn small_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_head = 256;
    limits.max_request_line = 64;
    limits.max_header_line = 48;
    limits.max_headers = 8;
    limits.max_body = 100;
    limits.max_chunk_line = 24;
    limits.max_trailers = 64;
    limits
}

/// Requests sized to land on both sides of [`small_limits`]. No OWS after values: the header
/// line limit is checked on the trimmed line by one path and the raw line by another (see
/// `header_line_limit_counts_trailing_ows_alike_whole_and_split`).
const NEAR_SMALL_LIMITS: Sizes = Sizes {
    target: 45,
    value: 40,
    extra_fields: 6,
    body: 130,
    trailers: 4,
    exts: 1,
    post_ows: false,
};

/// The exchanges and stop a connection under `limits` must produce for `requests`: requests
/// are served in order until one crosses a limit, which fails the connection with one of the
/// errors of the limits it crosses.
fn expected_under_limits(
    limits: &Limits,
    requests: &[GenRequest],
) -> (Vec<Exchange>, Stop, Vec<ParseError>) {
    let mut exchanges = Vec::new();
    for req in requests {
        let head_errors = req.head_violations(limits, 64);
        if !head_errors.is_empty() {
            return (exchanges, Stop::Failed(head_errors[0]), head_errors);
        }
        let mut ex = req.expected_exchange();
        if let GenBody::Chunked(c) = &req.body {
            let mut body = Vec::new();
            let lines = c.chunks.iter().map(|(line, data)| (line, Some(data)));
            for (line, data) in lines.chain([(&c.last, None)]) {
                let error = if line.len() > limits.max_chunk_line {
                    Some(ParseError::ChunkLineTooLong)
                } else if data.is_some_and(|d| (body.len() + d.len()) as u64 > limits.max_body) {
                    Some(ParseError::BodyTooLarge)
                } else {
                    None
                };
                if let Some(e) = error {
                    ex.body = body;
                    ex.trailers = None;
                    exchanges.push(ex);
                    return (exchanges, Stop::Failed(e), vec![e]);
                }
                body.extend_from_slice(data.map_or(&[][..], Vec::as_slice));
            }
            if c.trailer_section_len() > limits.max_trailers
                || c.trailers.len() > limits.max_headers
            {
                ex.trailers = None;
                exchanges.push(ex);
                let e = ParseError::TrailersTooLarge;
                return (exchanges, Stop::Failed(e), vec![e]);
            }
        }
        exchanges.push(ex);
        if !req.keep_alive {
            return (exchanges, Stop::Closed, Vec::new());
        }
    }
    (exchanges, Stop::NeedData, Vec::new())
}

/// A limit probed exactly at its edge by [`edge_case`].
#[derive(Debug, Clone, Copy)]
enum Edge {
    Head,
    RequestLine,
    HeaderLine,
    ContentLength,
    ChunkedBody,
    ChunkLine,
    Trailers,
}

fn edge() -> impl Strategy<Value = Edge> {
    select(
        &[
            Edge::Head,
            Edge::RequestLine,
            Edge::HeaderLine,
            Edge::ContentLength,
            Edge::ChunkedBody,
            Edge::ChunkLine,
            Edge::Trailers,
        ][..],
    )
}

/// A request that is `size` units long in the measure of `edge`, with that one limit set to
/// `limit` and every other at its default; and the error for crossing it.
fn edge_case(edge: Edge, limit: usize, size: usize) -> (Limits, Vec<u8>, ParseError) {
    let mut limits = Limits::default();
    let pad = |n: usize| "a".repeat(n);
    let chunked = |body: &str| {
        format!("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
    };
    let (wire, error) = match edge {
        Edge::Head => {
            limits.max_head = limit;
            let base = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: \r\n\r\n".len();
            let head = format!(
                "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: {}\r\n\r\n",
                pad(size - base)
            );
            (head, ParseError::HeadTooLarge)
        }
        Edge::RequestLine => {
            limits.max_request_line = limit;
            let target = pad(size - "GET / HTTP/1.1".len());
            let head = format!("GET /{target} HTTP/1.1\r\nHost: h\r\n\r\n");
            (head, ParseError::RequestLineTooLong)
        }
        Edge::HeaderLine => {
            limits.max_header_line = limit;
            let head = format!(
                "GET / HTTP/1.1\r\nX-Pad: {}\r\nHost: h\r\n\r\n",
                pad(size - 7)
            );
            (head, ParseError::HeaderLineTooLong)
        }
        Edge::ContentLength => {
            limits.max_body = limit as u64;
            let head = format!(
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {size}\r\n\r\n{}",
                pad(size)
            );
            (head, ParseError::BodyTooLarge)
        }
        Edge::ChunkedBody => {
            limits.max_body = limit as u64;
            let (first, second) = (size / 2, size - size / 2);
            let body = format!(
                "{first:x}\r\n{}\r\n{second:x}\r\n{}\r\n0\r\n\r\n",
                pad(first),
                pad(second)
            );
            (chunked(&body), ParseError::BodyTooLarge)
        }
        Edge::ChunkLine => {
            limits.max_chunk_line = limit;
            let body = format!("3;{}\r\nabc\r\n0\r\n\r\n", pad(size - 2));
            (chunked(&body), ParseError::ChunkLineTooLong)
        }
        Edge::Trailers => {
            limits.max_trailers = limit;
            let body = format!("3\r\nabc\r\n0\r\nX-T:{}\r\n\r\n", pad(size - 8));
            (chunked(&body), ParseError::TrailersTooLarge)
        }
    };
    (limits, wire.into_bytes(), error)
}

// ---------------------------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// A valid head parses to exactly what was generated, whether it arrives whole or as a
    /// growing prefix cut anywhere; the prefix it completes on is the first that holds it all.
    #[test]
    fn head_parse_is_split_invariant(req in request(SIZES), feed in feed()) {
        let wire = req.wire();
        let head_len = req.head().len();
        let limits = Limits::default();

        let whole_result = parse_prefixes(&limits, &wire, &whole(wire.len()), 64);
        let points = feed.points(wire.len());
        let split_result = parse_prefixes(&limits, &wire, &points, 64);

        let expected = req.expected_head();
        prop_assert_eq!(&whole_result, &HeadResult::Complete(expected.clone(), wire.len()));
        let first_complete = points.iter().copied().find(|&p| p >= head_len).unwrap();
        prop_assert_eq!(&split_result, &HeadResult::Complete(expected, first_complete));
    }

    /// A pipelined batch with bodies of every framing gives the same requests, bodies,
    /// trailers and response bytes however it is cut, and those are the ones generated and
    /// the bytes the model of the responses spells out.
    #[test]
    fn conn_is_split_invariant(reqs in batch(SIZES, 1..=5), feed in feed()) {
        let wire = batch_wire(&reqs);
        let limits = Limits::default();
        let (whole_run, _) = drive_conn(&limits, &wire, &whole(wire.len()));
        let (split_run, _) = drive_conn(&limits, &wire, &feed.points(wire.len()));

        let (exchanges, stop) = expected_exchanges(&reqs);
        prop_assert_eq!(&whole_run.exchanges, &exchanges);
        prop_assert_eq!(&whole_run.stop, &stop);
        prop_assert_eq!(&split_run.exchanges, &exchanges);
        prop_assert_eq!(&split_run.stop, &stop);
        prop_assert!(split_run.out == whole_run.out, "response bytes differ");
        let expected = expected_out(&exchanges);
        prop_assert!(
            whole_run.out == expected,
            "response bytes differ from the model:\n{}\nexpected:\n{}",
            String::from_utf8_lossy(&whole_run.out),
            String::from_utf8_lossy(&expected)
        );
    }

    /// Chunked encoding with random chunk sizes, hex spellings, extensions (token and quoted
    /// values, BWS) and trailers decodes back to its data and trailers, consuming exactly the
    /// encoding, whole or cut anywhere.
    #[test]
    fn chunked_round_trips_and_is_split_invariant(
        c in chunked(Sizes { body: 2000, trailers: 4, exts: 3, ..SIZES }),
        after in prop_oneof![Just(Vec::new()), Just(b"GET / HTTP/1.1\r\n".to_vec()), vec(any::<u8>(), 0..32)],
        feed in feed(),
    ) {
        let encoded = c.encode();
        let input = [encoded.as_slice(), &after].concat();
        let limits = Limits::default();
        let expected = Decoded {
            data: c.data(),
            consumed: encoded.len(),
            trailers: Some(c.trailer_pairs()),
            error: None,
        };
        prop_assert_eq!(&drive_decoder(&limits, &input, &whole(input.len())), &expected);
        prop_assert_eq!(&drive_decoder(&limits, &input, &feed.points(input.len())), &expected);
    }

    /// Nothing makes the head parser panic, and it never claims more bytes than it was given.
    #[test]
    fn head_parser_is_total(input in hostile_requests(), feed in feed(), slots in 0usize..=64) {
        let limits = Limits::default();
        for points in [whole(input.len()), feed.points(input.len())] {
            if let HeadResult::Complete(head, end) = parse_prefixes(&limits, &input, &points, slots) {
                prop_assert!(head.consumed <= end);
                prop_assert!(head.headers.len() <= slots);
            }
        }
        let small = small_limits();
        if let HeadResult::Complete(head, _) =
            parse_prefixes(&small, &input, &feed.points(input.len()), slots)
        {
            prop_assert!(head.consumed <= small.max_head);
        }
    }

    /// Nothing makes the chunked decoder panic; `drive_decoder` checks `consumed <= len`,
    /// `body_len`, and that an error repeats.
    #[test]
    fn chunked_decoder_is_total(input in hostile_chunked(), feed in feed()) {
        for limits in [Limits::default(), small_limits()] {
            drive_decoder(&limits, &input, &whole(input.len()));
            drive_decoder(&limits, &input, &feed.points(input.len()));
        }
    }

    /// Nothing makes the connection panic or livelock; `drive_conn` checks `consumed <= len`,
    /// that an error repeats on every later call, and that it is answered with its status.
    #[test]
    fn conn_is_total(input in hostile_requests(), feed in feed()) {
        for limits in [Limits::default(), small_limits()] {
            drive_conn(&limits, &input, &whole(input.len()));
            let (run, max_pending) = drive_conn(&limits, &input, &feed.points(input.len()));
            prop_assert!(max_pending <= limits.max_head.max(limits.max_trailers));
            for ex in &run.exchanges {
                prop_assert!(ex.head.consumed <= limits.max_head);
                prop_assert!(ex.body.len() as u64 <= limits.max_body);
            }
        }
    }

    /// With small limits, a head is accepted exactly when it is within every limit (the
    /// slots count as a limit on fields), and otherwise refused with the error of a limit it
    /// crosses; whole or cut.
    #[test]
    fn head_limits_hold(
        req in request(NEAR_SMALL_LIMITS),
        feed in feed(),
        slots in prop_oneof![Just(64usize), 1usize..=8],
    ) {
        let limits = small_limits();
        let wire = req.wire();
        let violations = req.head_violations(&limits, slots);
        for points in [whole(wire.len()), feed.points(wire.len())] {
            match parse_prefixes(&limits, &wire, &points, slots) {
                HeadResult::Complete(head, _) => {
                    prop_assert!(violations.is_empty(), "accepted despite {:?}", violations);
                    prop_assert!(head.consumed <= limits.max_head);
                    prop_assert_eq!(head, req.expected_head());
                }
                HeadResult::Failed(e) => {
                    prop_assert!(violations.contains(&e), "{:?} not in {:?}", e, violations);
                }
                HeadResult::Partial => prop_assert!(false, "a complete head was left partial"),
            }
        }
    }

    /// With small limits, a pipelined batch is served until the first request that crosses a
    /// limit (a head limit, `max_body` by `Content-Length` or by chunks, `max_chunk_line`,
/// `max_trailers`),
    /// which fails the connection with that limit's error after exactly the body bytes under
    /// `max_body`; buffered bytes never exceed `max_head`/`max_trailers`.
    #[test]
    fn conn_limits_hold(reqs in batch(NEAR_SMALL_LIMITS, 1..=4), feed in feed()) {
        let limits = small_limits();
        let wire = batch_wire(&reqs);
        let (exchanges, stop, allowed) = expected_under_limits(&limits, &reqs);
        for points in [whole(wire.len()), feed.points(wire.len())] {
            let (run, max_pending) = drive_conn(&limits, &wire, &points);
            prop_assert_eq!(&run.exchanges, &exchanges);
            match (&run.stop, &stop) {
                (Stop::Failed(e), Stop::Failed(_)) => {
                    prop_assert!(allowed.contains(e), "{:?} not in {:?}", e, allowed);
                }
                (got, want) => prop_assert_eq!(got, want),
            }
            prop_assert!(max_pending <= limits.max_head.max(limits.max_trailers));
        }
    }

    /// Every limit accepts an input exactly its size and refuses one a byte over, with the
    /// error the limit documents, whole or cut.
    #[test]
    fn limits_are_exact_at_the_edge(edge in edge(), delta in -2i64..=2, feed in feed()) {
        let limit = 60;
        let size = (limit as i64 + delta) as usize;
        let (limits, wire, error) = edge_case(edge, limit, size);
        for points in [whole(wire.len()), feed.points(wire.len())] {
            let (run, _) = drive_conn(&limits, &wire, &points);
            if size > limit {
                prop_assert_eq!(run.stop, Stop::Failed(error));
            } else {
                prop_assert_eq!(run.stop, Stop::NeedData);
                prop_assert_eq!(run.exchanges.len(), 1);
                prop_assert!(run.exchanges[0].trailers.is_some());
            }
        }
    }

    /// A chunk-size line is accepted exactly when it is within `max_chunk_line` (extensions
    /// included, CRLF excluded).
    #[test]
    fn chunk_line_limit_holds(c in chunked(Sizes { body: 60, exts: 2, ..SIZES }), feed in feed()) {
        let mut limits = Limits::default();
        limits.max_chunk_line = 12;
        let input = c.encode();
        for points in [whole(input.len()), feed.points(input.len())] {
            let decoded = drive_decoder(&limits, &input, &points);
            if c.max_line() > limits.max_chunk_line {
                prop_assert_eq!(decoded.error, Some(ParseError::ChunkLineTooLong));
            } else {
                prop_assert_eq!(decoded.error, None);
                prop_assert_eq!(&decoded.data, &c.data());
            }
        }
    }

    /// The trailer section is accepted exactly when it is within `max_trailers` bytes (line
    /// endings and the final empty line included) and `max_headers` fields.
    #[test]
    fn trailer_limits_hold(
        c in chunked(Sizes { body: 20, trailers: 6, value: 20, ..SIZES }),
        feed in feed(),
    ) {
        let mut limits = Limits::default();
        limits.max_trailers = 64;
        limits.max_headers = 4;
        let input = c.encode();
        let over = c.trailer_section_len() > limits.max_trailers
            || c.trailers.len() > limits.max_headers;
        for points in [whole(input.len()), feed.points(input.len())] {
            let decoded = drive_decoder(&limits, &input, &points);
            if over {
                prop_assert_eq!(decoded.error, Some(ParseError::TrailersTooLarge));
                prop_assert_eq!(&decoded.data, &c.data());
            } else {
                prop_assert_eq!(decoded.trailers, Some(c.trailer_pairs()));
            }
        }
    }

    /// A chunked body is refused at the first chunk that would take it over `max_body`,
    /// before any of that chunk is handed out.
    #[test]
    fn chunked_body_limit_holds(c in chunked(Sizes { body: 200, ..SIZES }), feed in feed()) {
        let mut limits = Limits::default();
        limits.max_body = 100;
        let input = c.encode();
        let mut under = Vec::new();
        let mut over = false;
        for (_, data) in &c.chunks {
            if (under.len() + data.len()) as u64 > limits.max_body {
                over = true;
                break;
            }
            under.extend_from_slice(data);
        }
        for points in [whole(input.len()), feed.points(input.len())] {
            let decoded = drive_decoder(&limits, &input, &points);
            prop_assert_eq!(&decoded.data, &under);
            prop_assert_eq!(decoded.error, over.then_some(ParseError::BodyTooLarge));
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Split invariance at the header-line limit when values carry trailing OWS: the whole
    /// head and the same head cut must be accepted or refused alike.
    #[test]

    fn header_line_limit_is_split_invariant_with_trailing_ows(
        req in request(Sizes { post_ows: true, ..NEAR_SMALL_LIMITS }),
        feed in feed(),
    ) {
        let limits = small_limits();
        let wire = req.wire();
        let whole_result = parse_prefixes(&limits, &wire, &whole(wire.len()), 64);
        let split_result = parse_prefixes(&limits, &wire, &feed.points(wire.len()), 64);
        prop_assert_eq!(
            matches!(whole_result, HeadResult::Complete(..)),
            matches!(split_result, HeadResult::Complete(..)),
            "whole: {:?}, split: {:?}", whole_result, split_result
        );
    }

    /// After an error, parsing the same bytes again reports the same error.
    #[test]

    fn head_parser_repeats_its_error(input in hostile_requests(), feed in feed()) {
        let limits = small_limits();
        let mut parser = RequestParser::new(&limits);
        for end in feed.points(input.len()) {
            let mut slots = header_slots::<64>();
            match parser.parse(&input[..end], &mut slots) {
                Ok(Status::Partial) => continue,
                Ok(Status::Complete(_)) => break,
                Err(e) => {
                    let mut slots = header_slots::<64>();
                    prop_assert_eq!(parser.parse(&input[..end], &mut slots).err(), Some(e));
                    break;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Minimal reproducers for what the properties found
// ---------------------------------------------------------------------------------------------

/// `max_header_line` is checked on the raw line (trailing OWS included) by the incremental
/// scanner, but on `name: value` with the value trimmed when httparse sees the whole head, so
/// the same bytes are accepted whole and refused when they arrive in two pieces.
#[test]

fn header_line_limit_counts_trailing_ows_alike_whole_and_split() {
    let mut limits = Limits::default();
    limits.max_header_line = 10;
    let head = b"GET / HTTP/1.1\r\nHost: a\r\nX: abcdefg   \r\n\r\n";

    let whole_result = parse_prefixes(&limits, head, &whole(head.len()), 64);
    let split_result = parse_prefixes(&limits, head, &[16, head.len()], 64);
    assert_eq!(
        matches!(whole_result, HeadResult::Complete(..)),
        matches!(split_result, HeadResult::Complete(..)),
        "whole: {whole_result:?}, split: {split_result:?}"
    );
}

/// A `RequestParser` that failed in its line scan resumes from a half-updated scan state:
/// parsing the same bytes again reports a different error.
#[test]

fn head_parser_retry_reports_the_same_error() {
    let mut limits = Limits::default();
    limits.max_header_line = 5;
    let head = b"GET / HTTP/1.1\r\nHost: abcdefgh\r\n";
    let mut parser = RequestParser::new(&limits);
    let first = parser.parse(head, &mut header_slots::<8>()).err();
    let second = parser.parse(head, &mut header_slots::<8>()).err();
    assert_eq!(first, Some(ParseError::HeaderLineTooLong));
    assert_eq!(second, first);
}
