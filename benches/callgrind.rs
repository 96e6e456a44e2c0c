//! Instruction counts for the `http_parse` bench: loops of berth's `RequestParser::parse` and of
//! bare `httparse` for callgrind, which counts the instructions each parse executes. Wall time
//! on a shared VM moves by 10-20% between runs; the instruction count does not.
//!
//! `benches/callgrind.sh` builds this target with the bench profile (fat LTO, one codegen unit,
//! as every bench) and runs it under `valgrind --tool=callgrind` once per function and input,
//! then prints the instructions per parse. See `benches/README.md`.
//!
//! ```text
//! benches/callgrind.sh                     # 100,000 parses per function and input
//! callgrind FUNCTION INPUT ITERATIONS      # one loop: what the script runs under valgrind
//! cargo bench --bench callgrind            # checks only: every function parses every input
//! ```
//!
//! FUNCTION is `httparse` or `berth_parse`, INPUT `plaintext_147b` or `browser_694b` (the
//! `http_parse` inputs, from `benches/support/http_requests.rs`). Each iteration does what an
//! iteration of the criterion bench of the same name does: 64 uninitialised header slots, the
//! parse, a check that it is complete, and `black_box` on what it returned. It is one call of a
//! function kept out of line (`httparse_once`, `berth_parse_once`), so callgrind can report the
//! instructions inside that call apart from the loop around it.

use std::hint::black_box;
use std::process::ExitCode;

use berth::http::{header_slots, RequestParser, Status};
use berth::Limits;

#[path = "support/http_requests.rs"]
mod requests;

/// The measured functions, by the names the `http_parse` bench gives them.
const FUNCTIONS: [&str; 2] = ["httparse", "berth_parse"];

/// One parse by bare `httparse`; the number of fields.
#[inline(never)]
fn httparse_once(buf: &[u8]) -> usize {
    let mut slots = header_slots::<64>();
    let mut req = httparse::Request::new(&mut []);
    let status = req.parse_with_uninit_headers(buf, &mut slots);
    assert!(matches!(status, Ok(httparse::Status::Complete(_))));
    black_box(req.headers.len())
}

/// One parse by berth's `RequestParser`; the number of fields.
#[inline(never)]
fn berth_parse_once(parser: &mut RequestParser, buf: &[u8]) -> usize {
    let mut slots = header_slots::<64>();
    let Ok(Status::Complete((used, req))) = parser.parse(buf, &mut slots) else {
        panic!("benchmark input must parse");
    };
    black_box((used, req.body, req.keep_alive));
    black_box(req.headers.len())
}

/// `iterations` parses of `input` by `function`.
#[inline(never)]
fn run_loop(function: &str, input: &[u8], iterations: u64) {
    match function {
        "httparse" => {
            for _ in 0..iterations {
                black_box(httparse_once(black_box(input)));
            }
        }
        "berth_parse" => {
            let limits = Limits::default();
            let mut parser = RequestParser::new(&limits);
            for _ in 0..iterations {
                black_box(berth_parse_once(&mut parser, black_box(input)));
            }
        }
        other => unreachable!("unknown function {other}"),
    }
}

/// Every function parses every input to the same number of fields, and the sizes in the input
/// names are the sizes of the inputs.
fn check() -> Result<(), String> {
    let limits = Limits::default();
    for (name, input) in requests::INPUTS {
        let size = format!("_{}b", input.len());
        if !name.ends_with(&size) {
            return Err(format!("{name} is {} bytes", input.len()));
        }
        let bare = httparse_once(input);
        let berth = berth_parse_once(&mut RequestParser::new(&limits), input);
        if bare != berth {
            return Err(format!("{name}: httparse saw {bare} fields, berth {berth}"));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        [function, input, iterations] if !function.starts_with('-') => {
            let Some(&(_, bytes)) = requests::INPUTS.iter().find(|(name, _)| *name == input) else {
                eprintln!("callgrind: no input {input:?}");
                return ExitCode::from(2);
            };
            if !FUNCTIONS.contains(&function) {
                eprintln!("callgrind: no function {function:?} (one of {FUNCTIONS:?})");
                return ExitCode::from(2);
            }
            let Ok(iterations) = iterations.parse() else {
                eprintln!("callgrind: {iterations:?} is not a count");
                return ExitCode::from(2);
            };
            run_loop(function, bytes, iterations);
            ExitCode::SUCCESS
        }
        // What `cargo bench` runs (`--bench`, with `--test` for the self-check): the checks.
        _ => match check() {
            Ok(()) => {
                eprintln!("callgrind: every function parses every input");
                if !args.contains(&"--test") {
                    eprintln!("(instruction counts: benches/callgrind.sh, which needs valgrind)");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("callgrind: check failed: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
