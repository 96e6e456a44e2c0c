//! Request-head parsing: berth against bare `httparse`, which sets our overhead budget.
//!
//! Run with `cargo bench --bench http_parse`; see `benches/README.md` for recorded numbers.
//!
//! One group per input, each with three functions:
//! - `httparse`: bare `httparse::Request::parse_with_uninit_headers`, nothing else;
//! - `berth_parse`: `RequestParser::parse`, the full head parse plus berth's checks and the
//!   framing decision (target: at most 1.15x `httparse`);
//! - `berth_conn`: the same through `ServerConn::handle_input`, for information.
//!
//! Both parsers get 64 uninitialised header slots made the same way in each iteration, so
//! neither pays for initialising headers the other skips.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

use berth::http::{header_slots, Event, RequestParser, ServerConn, Status};
use berth::Limits;

/// A TechEmpower-plaintext-style request: 147 bytes, 3 headers.
const PLAINTEXT: &[u8] = b"\
GET /plaintext HTTP/1.1\r\n\
Host: localhost:8080\r\n\
Accept: text/plain,text/html;q=0.9,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n\
Connection: keep-alive\r\n\r\n";

/// A browser navigation: 694 bytes, 14 headers.
const BROWSER: &[u8] = b"\
GET /articles/2024/sans-io-http-servers?ref=home&page=2 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/\r\n\
Connection: keep-alive\r\n\
Cookie: session_id=8f14e45fceea167a5a36dedd4bea2543; theme=dark; consent=1; _ga=GA1.2.1234567890.1700000000; lang=en-US; tz=Europe%2FBerlin\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-User: ?1\r\n\
Priority: u=0, i\r\n\r\n";

fn bench_input(c: &mut Criterion, name: &str, input: &'static [u8]) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(input.len() as u64));

    group.bench_function("httparse", |b| {
        b.iter(|| {
            let buf = black_box(input);
            let mut slots = header_slots::<64>();
            let mut req = httparse::Request::new(&mut []);
            let status = req.parse_with_uninit_headers(buf, &mut slots);
            assert!(matches!(status, Ok(httparse::Status::Complete(_))));
            black_box(req.headers.len());
            black_box(status).is_ok()
        })
    });

    let limits = Limits::default();
    group.bench_function("berth_parse", |b| {
        let mut parser = RequestParser::new(&limits);
        b.iter(|| {
            let buf = black_box(input);
            let mut slots = header_slots::<64>();
            let status = parser.parse(buf, &mut slots);
            let Ok(Status::Complete((used, req))) = status else {
                panic!("benchmark input must parse");
            };
            black_box(req.headers.len());
            black_box((used, req.body, req.keep_alive))
        })
    });

    group.bench_function("berth_conn", |b| {
        let mut conn = ServerConn::new(&limits);
        b.iter(|| {
            let buf = black_box(input);
            let mut slots = header_slots::<64>();
            // A fresh connection per iteration: one that has read a request waits for its
            // response before it parses the next head.
            conn = ServerConn::new(&limits);
            let result = conn.handle_input(buf, &mut slots);
            let Ok((used, Event::Request(req))) = result else {
                panic!("benchmark input must parse");
            };
            black_box(req.headers.len());
            black_box((used, req.body, req.keep_alive))
        })
    });

    group.finish();
}

fn http_parse(c: &mut Criterion) {
    // The group names carry the sizes; keep them honest.
    assert_eq!((PLAINTEXT.len(), BROWSER.len()), (147, 694));
    bench_input(c, "plaintext_147b", PLAINTEXT);
    bench_input(c, "browser_694b", BROWSER);
}

criterion_group!(benches, http_parse);
criterion_main!(benches);
