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
//!
//! The inputs are in `benches/support/http_requests.rs`, shared with the `callgrind` bench,
//! which counts the instructions of the same parses (`benches/callgrind.sh`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

use berth::http::{header_slots, Event, RequestParser, ServerConn, Status};
use berth::Limits;

#[path = "support/http_requests.rs"]
mod requests;
use requests::INPUTS;

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
    for (name, input) in INPUTS {
        // The group names carry the sizes; keep them honest.
        assert!(name.ends_with(&format!("_{}b", input.len())), "{name}");
        bench_input(c, name, input);
    }
}

criterion_group!(benches, http_parse);
criterion_main!(benches);
