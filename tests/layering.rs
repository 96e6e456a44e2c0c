//! The layering rule (STYLE.md §1), checked on the source: the sans-I/O core, every `.rs` file
//! under `src/http`, `src/ws` and `src/handshake` (their unit tests included), names nothing
//! that does I/O, reads a clock, talks TLS, starts a thread or belongs to the runtime, however
//! the path is spelled.
//!
//! # The rule
//!
//! The core takes bytes and a time as arguments and writes into buffers the caller owns, so
//! it may use anything that only computes: `core`, `alloc`, `std::collections`, `std::sync`
//! (the mask fallback keeps a `OnceLock` and an atomic counter), `std::fmt`, the `Duration` of
//! `core::time` or `std::time`, and its pure dependencies (httparse, simdutf8, sha1, base64).
//! Forbidden, with everything under each path:
//!
//! - `mio`, `socket2`, `signal_hook`, `rustls`, `rustls_pki_types`, `tokio`: the runtime's
//!   crates, and an async runtime.
//! - `std::io`, all of it: nothing in the core uses it today. Its `Read` and `Write` are the
//!   traits sockets and files implement, so code generic over them is the "reader" shape the
//!   core rejects, and `io::Error` cannot live in the core's `Copy + Eq` errors. The core
//!   writes with `Vec::extend_from_slice` and formats with `core::fmt`.
//! - `std::net` and `core::net` (sockets and their addresses), `std::fs`, `std::path` (a
//!   `Path` reads the file system through `exists` and `metadata`), `std::env`, `std::os`,
//!   `std::process`, `std::thread`.
//! - `std::time::Instant`, `std::time::SystemTime` and `std::time::UNIX_EPOCH`: the core takes
//!   the time as an argument (Unix seconds, a `Duration`), so it never holds a clock value
//!   whose `elapsed()` would read the clock. Any path ending in `Instant::now` or
//!   `SystemTime::now` is refused whatever its prefix (clippy.toml refuses both methods too).
//! - `crate::server`, `crate::platform`, `crate::testing`: the layers above the core.
//! - The macros `print!`, `println!`, `eprint!`, `eprintln!` and `dbg!`, which write to the
//!   process's stdout and stderr without naming `std::io`.
//! - `include!` and `#[path = ...]`, which would bring in code this test does not read.
//!
//! # How paths are found
//!
//! A small tokenizer drops comments (nested block comments too), string, byte-string, raw-string
//! and character literals, and lifetimes. Then every `use` tree is expanded into full paths
//! (`use std::{io::{self, Read as R}, net};` gives `std::io`, `std::io::Read` and `std::net`),
//! as is every `extern crate`, and every other path in the file is collected: in expressions,
//! types, patterns, attributes and macro arguments (`<T as std::io::Read>::read`,
//! `::std::net::TcpStream::connect`, `Vec<std::fs::File>`). Paths are resolved before they are
//! judged: a leading `::` or `$crate` is dropped or read as `crate`, `self` and `super` follow
//! the module the file and any inline `mod` make, and a path that starts with a name a `use`
//! or `extern crate` bound (`use std as s;` then `s::net::TcpStream`) starts with what that
//! name stands for. A glob import is refused when it reaches a forbidden path
//! (`use std::io::prelude::*`, but also `use std::time::*` or `use crate::*`).
//!
//! Names bound by `use` are taken as visible in the whole file, whatever block they are in: a
//! name that stood for a forbidden module in one function and for something else in another
//! would be refused in both, a false alarm on the safe side. What escapes this check is an item
//! re-exported under another name by a module outside the core, and a forbidden item reached
//! through a type's methods without being named (a `Path` from a function's return value);
//! clippy's `disallowed_methods` covers the clock reads there.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The core's folders, relative to the crate root.
const CORE: [&str; 3] = ["src/http", "src/ws", "src/handshake"];

/// Forbidden paths, each with the reason given when it is hit; everything under them is too.
const FORBIDDEN: &[(&str, &str)] = &[
    ("mio", "the runtime's event loop"),
    ("socket2", "the runtime's sockets"),
    ("signal_hook", "the runtime's signal handling"),
    ("rustls", "TLS belongs to the runtime"),
    ("rustls_pki_types", "TLS belongs to the runtime"),
    ("tokio", "an async runtime"),
    ("std::io", "I/O: readers, writers, stdio"),
    ("std::net", "sockets"),
    ("core::net", "socket addresses belong to the runtime"),
    ("std::fs", "the file system"),
    ("std::path", "paths read the file system"),
    ("std::env", "the process environment"),
    ("std::os", "OS handles"),
    ("std::process", "processes"),
    ("std::thread", "threads"),
    ("std::time::Instant", "a clock value: time is an argument"),
    (
        "std::time::SystemTime",
        "a clock value: time is an argument",
    ),
    (
        "std::time::UNIX_EPOCH",
        "a clock value: time is an argument",
    ),
    ("crate::server", "the runtime is the layer above"),
    ("crate::platform", "the platform module is above the core"),
    ("crate::testing", "the test helpers do I/O"),
];

/// Macros that do I/O or bring in unread code, by their last path segment.
const FORBIDDEN_MACROS: &[(&str, &str)] = &[
    ("print", "writes to stdout"),
    ("println", "writes to stdout"),
    ("eprint", "writes to stderr"),
    ("eprintln", "writes to stderr"),
    ("dbg", "writes to stderr"),
    ("include", "brings in code this check does not read"),
];

/// Two path segments that read a clock wherever the type comes from.
const CLOCK_READS: &[[&str; 2]] = &[["Instant", "now"], ["SystemTime", "now"]];

/// One breach of the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Violation {
    line: usize,
    /// What was written, resolved (`std::io::Read`, `println!`, `#[path]`).
    what: String,
    why: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: `{}` ({})", self.line, self.what, self.why)
    }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An identifier or keyword; raw identifiers (`r#use`) without their `r#`.
    Ident(String),
    /// `::`
    PathSep,
    /// Any other punctuation, one character at a time.
    Punct(char),
    /// A string, character or number literal (its content is not code).
    Literal,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Split Rust source into tokens, dropping whitespace, comments and literal contents.
fn tokenize(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        let start_line = line;
        let mut push = |tok: Tok| {
            tokens.push(Token {
                tok,
                line: start_line,
            })
        };
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            // Block comments nest.
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if let Some(end) = raw_string_end(&chars, i) {
            line += chars[i..end].iter().filter(|&&c| c == '\n').count();
            i = end;
            push(Tok::Literal);
        } else if c == '"' || (matches!(c, 'b' | 'c') && at(i + 1) == '"') {
            i += if c == '"' { 1 } else { 2 };
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if at(i) == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 1;
            push(Tok::Literal);
        } else if c == '\'' || (c == 'b' && at(i + 1) == '\'') {
            // A character literal, or a lifetime (`'a` with no closing quote after one char).
            let q = if c == 'b' { i + 1 } else { i };
            if at(q + 1) == '\\' {
                // Past the backslash and the character it escapes, to the closing quote.
                let mut j = q + 3;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
                push(Tok::Literal);
            } else if at(q + 2) == '\'' {
                i = q + 3;
                push(Tok::Literal);
            } else {
                // A lifetime or label: skip the quote and its name.
                i = q + 1;
                while i < chars.len() && is_ident_continue(chars[i]) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() {
            while i < chars.len()
                && (is_ident_continue(chars[i]) || (chars[i] == '.' && at(i + 1).is_ascii_digit()))
            {
                i += 1;
            }
            push(Tok::Literal);
        } else if is_ident_start(c) {
            let raw = c == 'r' && at(i + 1) == '#' && is_ident_start(at(i + 2));
            if raw {
                i += 2;
            }
            let start = i;
            while i < chars.len() && is_ident_continue(chars[i]) {
                i += 1;
            }
            push(Tok::Ident(chars[start..i].iter().collect()));
        } else if c == ':' && at(i + 1) == ':' {
            i += 2;
            push(Tok::PathSep);
        } else {
            i += 1;
            push(Tok::Punct(c));
        }
    }
    tokens
}

/// If a raw string literal (`r"…"`, `r#"…"#`, `br"…"`, `cr#"…"#`) starts at `i`, the index just
/// past it.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if matches!(chars.get(j), Some('b' | 'c')) {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|&&c| c == '#').count();
    j += hashes;
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"' && chars[j + 1..].iter().take_while(|&&c| c == '#').count() >= hashes {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}

// ---------------------------------------------------------------------------------------------
// Paths

/// A path as written: its segments, whether it began with `::`, and its line.
#[derive(Debug, Clone)]
struct Written {
    segments: Vec<String>,
    global: bool,
    /// A glob import (`use a::b::*`): everything under `segments`.
    glob: bool,
    line: usize,
}

/// A `use` tree expanded: the paths it names, and the names it binds.
fn expand_use(
    tokens: &[Token],
    mut i: usize,
    prefix: &[String],
    global: bool,
    out: &mut Vec<(Written, Option<String>)>,
) -> usize {
    let mut segments = prefix.to_vec();
    let mut global = global;
    if tokens.get(i).map(|t| &t.tok) == Some(&Tok::PathSep) {
        if segments.is_empty() {
            global = true;
        }
        i += 1;
    }
    loop {
        let Some(token) = tokens.get(i) else {
            return i;
        };
        let line = token.line;
        match &token.tok {
            Tok::Punct('{') => {
                i += 1;
                loop {
                    match tokens.get(i).map(|t| &t.tok) {
                        None => return i,
                        Some(Tok::Punct('}')) => return i + 1,
                        Some(Tok::Punct(',')) => i += 1,
                        Some(_) => i = expand_use(tokens, i, &segments, global, out),
                    }
                }
            }
            Tok::Punct('*') => {
                let written = Written {
                    segments,
                    global,
                    glob: true,
                    line,
                };
                out.push((written, None));
                return i + 1;
            }
            Tok::Ident(name) => {
                i += 1;
                // `self` in a group names the group's prefix.
                let is_group_self = name == "self" && !segments.is_empty();
                if !is_group_self {
                    segments.push(name.clone());
                }
                if tokens.get(i).map(|t| &t.tok) == Some(&Tok::PathSep) {
                    i += 1;
                    continue;
                }
                let mut binding = segments.last().cloned();
                if matches!(tokens.get(i).map(|t| &t.tok), Some(Tok::Ident(a)) if a == "as") {
                    binding = match tokens.get(i + 1).map(|t| &t.tok) {
                        Some(Tok::Ident(alias)) if alias != "_" => Some(alias.clone()),
                        _ => None,
                    };
                    i += 2;
                }
                let written = Written {
                    segments,
                    global,
                    glob: false,
                    line,
                };
                out.push((written, binding));
                return i;
            }
            _ => return i + 1,
        }
    }
}

/// Everything found in one file before resolution.
#[derive(Debug, Default)]
struct Found {
    /// Paths with the module (as `crate::…` segments) they appear in.
    paths: Vec<(Written, Vec<String>)>,
    /// Names bound by `use` and `extern crate`, with the module they were bound in.
    bindings: Vec<(String, Written, Vec<String>)>,
    /// Macro calls, `#[path]` and the like, already judged.
    violations: Vec<Violation>,
}

/// Collect the paths of a file whose module is `module` (`["crate", "ws", "conn"]`).
fn collect(tokens: &[Token], module: &[String]) -> Found {
    let mut found = Found::default();
    // Inline modules: the module path, with the brace depth each was opened at.
    let mut modules: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let current = |modules: &[(String, usize)]| {
        let mut m = module.to_vec();
        m.extend(modules.iter().map(|(name, _)| name.clone()));
        m
    };
    let tok = |i: usize| tokens.get(i).map(|t| &t.tok);
    let mut i = 0;
    while i < tokens.len() {
        let line = tokens[i].line;
        match &tokens[i].tok {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if modules.last().is_some_and(|&(_, d)| d == depth) {
                    modules.pop();
                }
                i += 1;
            }
            Tok::Punct('#') => {
                // `#[path = "…"]`, `#![path = "…"]`, or `path = "…"` anywhere in the
                // attribute (`#[cfg_attr(unix, path = "…")]`).
                let mut j = i + 1;
                if tok(j) == Some(&Tok::Punct('!')) {
                    j += 1;
                }
                if tok(j) == Some(&Tok::Punct('[')) {
                    let mut brackets = 0;
                    while let Some(t) = tok(j) {
                        match t {
                            Tok::Punct('[') => brackets += 1,
                            Tok::Punct(']') => brackets -= 1,
                            Tok::Ident(n)
                                if n == "path"
                                    && matches!(tok(j - 1), Some(Tok::Punct('[' | '(' | ',')))
                                    && tok(j + 1) == Some(&Tok::Punct('='))
                                    && tok(j + 2) == Some(&Tok::Literal) =>
                            {
                                found.violations.push(Violation {
                                    line: tokens[j].line,
                                    what: "#[path]".into(),
                                    why: "a module from elsewhere, which this check does not read"
                                        .into(),
                                });
                            }
                            _ => {}
                        }
                        if brackets == 0 {
                            break;
                        }
                        j += 1;
                    }
                }
                // The attribute's own paths (`#[allow(clippy::x)]`) are read like any others.
                i += 1;
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Punct('{'))) = (tok(i + 1), tok(i + 2)) {
                    modules.push((name.clone(), depth));
                    depth += 1;
                    i += 3;
                } else {
                    i += 1;
                }
            }
            Tok::Ident(kw) if kw == "use" => {
                let mut out = Vec::new();
                let mut j = i + 1;
                while j < tokens.len() && tok(j) != Some(&Tok::Punct(';')) {
                    j = expand_use(tokens, j, &[], false, &mut out);
                }
                let m = current(&modules);
                for (written, binding) in out {
                    if let Some(name) = binding {
                        found.bindings.push((name, written.clone(), m.clone()));
                    }
                    found.paths.push((written, m.clone()));
                }
                i = j + 1;
            }
            Tok::Ident(kw)
                if kw == "extern" && matches!(tok(i + 1), Some(Tok::Ident(c)) if c == "crate") =>
            {
                if let Some(Tok::Ident(name)) = tok(i + 2) {
                    let written = Written {
                        segments: vec![name.clone()],
                        global: true,
                        glob: false,
                        line,
                    };
                    let binding = match (tok(i + 3), tok(i + 4)) {
                        (Some(Tok::Ident(a)), Some(Tok::Ident(alias))) if a == "as" => {
                            alias.clone()
                        }
                        _ => name.clone(),
                    };
                    let m = current(&modules);
                    found.bindings.push((binding, written.clone(), m.clone()));
                    found.paths.push((written, m));
                }
                i += 3;
            }
            Tok::Ident(_) | Tok::PathSep => {
                // A path starts here unless it continues one (`a::b`, handled whole) or follows
                // `$` (`$crate`, read as `crate`).
                let global = tokens[i].tok == Tok::PathSep;
                let mut j = if global { i + 1 } else { i };
                let mut segments = Vec::new();
                while let Some(Tok::Ident(name)) = tok(j) {
                    segments.push(name.clone());
                    if tok(j + 1) == Some(&Tok::PathSep)
                        && matches!(tok(j + 2), Some(Tok::Ident(_)))
                    {
                        j += 2;
                    } else {
                        j += 1;
                        break;
                    }
                }
                if segments.is_empty() {
                    i += 1;
                    continue;
                }
                let is_macro = tok(j) == Some(&Tok::Punct('!'))
                    && matches!(tok(j + 1), Some(Tok::Punct('(' | '[' | '{')));
                let last = segments.last().cloned().unwrap_or_default();
                if is_macro {
                    if let Some((_, why)) = FORBIDDEN_MACROS.iter().find(|(m, _)| *m == last) {
                        found.violations.push(Violation {
                            line,
                            what: format!("{}!", segments.join("::")),
                            why: (*why).into(),
                        });
                    }
                }
                // A name alone is a local item or a variable; a crate or module is only reached
                // through a path of two segments or more (or a `use`, handled above).
                if segments.len() > 1 {
                    let written = Written {
                        segments,
                        global,
                        glob: false,
                        line,
                    };
                    found.paths.push((written, current(&modules)));
                }
                i = j;
            }
            _ => i += 1,
        }
    }
    found
}

/// `written`, seen in `module`, as a path from the crate root or an external crate, with the
/// names in `bindings` replaced by what they stand for.
fn resolve(
    written: &Written,
    module: &[String],
    bindings: &HashMap<String, Vec<String>>,
) -> Vec<String> {
    let segs = &written.segments;
    if written.global {
        return segs.clone();
    }
    let first = segs.first().map(String::as_str).unwrap_or("");
    match first {
        "crate" => segs.clone(),
        "self" => {
            let mut path = module.to_vec();
            path.extend(segs[1..].iter().cloned());
            path
        }
        "super" => {
            let ups = segs.iter().take_while(|s| *s == "super").count();
            let mut path = module[..module.len().saturating_sub(ups).max(1)].to_vec();
            path.extend(segs[ups..].iter().cloned());
            path
        }
        // A name bound by `use`: substituted when something follows it, or for a glob. A
        // single name is its own `use`, judged there.
        _ if segs.len() > 1 || written.glob => match bindings.get(first) {
            Some(target) => {
                let mut path = target.clone();
                path.extend(segs[1..].iter().cloned());
                path
            }
            None => segs.clone(),
        },
        _ => segs.clone(),
    }
}

/// Why `path` (a glob of everything under it if `glob`) breaks the rule, if it does.
fn judge(path: &[String], glob: bool) -> Option<String> {
    for (forbidden, why) in FORBIDDEN {
        let f: Vec<&str> = forbidden.split("::").collect();
        let under = path.len() >= f.len() && path.iter().zip(&f).all(|(a, b)| a == b);
        // A glob of a module above a forbidden path brings that path into scope.
        let above = glob && path.len() < f.len() && path.iter().zip(&f).all(|(a, b)| a == b);
        if under || above {
            return Some(format!("{forbidden}: {why}"));
        }
    }
    for read in CLOCK_READS {
        if path.windows(2).any(|w| w[0] == read[0] && w[1] == read[1]) {
            return Some(format!("{}::{}: reads the clock", read[0], read[1]));
        }
    }
    None
}

/// The module of the file at `rel` (`src/ws/frame/tests.rs` → `crate::ws::frame::tests`).
fn module_of(rel: &Path) -> Vec<String> {
    let mut module = vec!["crate".to_owned()];
    let parts: Vec<String> = rel
        .iter()
        .skip(1)
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    for (n, part) in parts.iter().enumerate() {
        let last = n + 1 == parts.len();
        match part.strip_suffix(".rs") {
            Some("mod") if last => {}
            Some(stem) if last => module.push(stem.to_owned()),
            _ => module.push(part.clone()),
        }
    }
    module
}

/// Every breach of the rule in `src`, the text of a file whose module is `module`.
fn scan(src: &str, module: &[String]) -> Vec<Violation> {
    let tokens = tokenize(src);
    let found = collect(&tokens, module);
    // Bindings resolve in order, so one may build on an earlier one (`use std::time; use
    // time::Instant;`).
    let mut bindings: HashMap<String, Vec<String>> = HashMap::new();
    for (name, written, m) in &found.bindings {
        let target = resolve(written, m, &bindings);
        bindings.insert(name.clone(), target);
    }
    let mut violations = found.violations;
    for (written, m) in &found.paths {
        let path = resolve(written, m, &bindings);
        if let Some(why) = judge(&path, written.glob) {
            let mut what = path.join("::");
            if written.glob {
                what.push_str("::*");
            }
            violations.push(Violation {
                line: written.line,
                what,
                why,
            });
        }
    }
    violations.sort_by_key(|v| v.line);
    violations.dedup();
    violations
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_core_names_no_io_clock_tls_thread_or_runtime() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut report = Vec::new();
    let mut files = 0;
    for dir in CORE {
        let mut paths = Vec::new();
        rust_files(&root.join(dir), &mut paths);
        assert!(
            !paths.is_empty(),
            "no .rs file under {dir}: is the core elsewhere now?"
        );
        paths.sort();
        for path in paths {
            let rel = path.strip_prefix(root).expect("under the crate root");
            let src = std::fs::read_to_string(&path).expect("a UTF-8 source file");
            files += 1;
            for v in scan(&src, &module_of(rel)) {
                report.push(format!(
                    "{}:{}",
                    rel.display(),
                    v.to_string().trim_start_matches("line ")
                ));
            }
        }
    }
    assert!(files >= 20, "only {files} files in the core");
    assert!(
        report.is_empty(),
        "the sans-I/O core must not do I/O, read the clock, talk TLS, start threads or reach \
         the runtime (tests/layering.rs says why):\n  {}",
        report.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// The scanner's own tests

fn module(path: &str) -> Vec<String> {
    path.split("::").map(str::to_owned).collect()
}

/// The resolved paths `scan` refuses in `src`, seen in `crate::ws::conn`.
fn refused(src: &str) -> Vec<String> {
    scan(src, &module("crate::ws::conn"))
        .into_iter()
        .map(|v| v.what)
        .collect()
}

#[test]
fn grouped_nested_and_renamed_use_trees() {
    assert_eq!(
        refused("use std::{io::{Read as R}, fs};"),
        ["std::io::Read", "std::fs"]
    );
    assert_eq!(
        refused("use std::{io::{self, Read}, net};"),
        ["std::io", "std::io::Read", "std::net"]
    );
    assert_eq!(
        refused("use std::{io::{self, Read}};"),
        ["std::io", "std::io::Read"]
    );
    assert_eq!(
        refused("pub(crate) use ::std::fs::File as F;"),
        ["std::fs::File"]
    );
    assert_eq!(
        refused("use std::{thread, time::{Duration, Instant}};"),
        ["std::thread", "std::time::Instant"]
    );
    assert_eq!(refused("use mio::net::TcpStream;"), ["mio::net::TcpStream"]);
    assert_eq!(refused("extern crate rustls as tls;"), ["rustls"]);
}

#[test]
fn globs_that_reach_a_forbidden_path() {
    assert_eq!(refused("use std::io::prelude::*;"), ["std::io::prelude::*"]);
    assert_eq!(refused("use std::time::*;"), ["std::time::*"]);
    assert_eq!(refused("use std::{*};"), ["std::*"]);
    assert_eq!(refused("use crate::*;"), ["crate::*"]);
    assert!(refused("use std::collections::*; use super::*; use core::fmt::*;").is_empty());
}

#[test]
fn paths_in_expressions_types_and_macros() {
    assert_eq!(
        refused("fn f() { let s = ::std::net::TcpStream::connect(\"a:1\"); }"),
        ["std::net::TcpStream::connect"]
    );
    assert_eq!(
        refused("fn f<T: Copy>(x: Vec<std::fs::File>) {}"),
        ["std::fs::File"]
    );
    assert_eq!(
        refused("fn f(s: &mut S) { <S as std::io::Write>::flush(s); }"),
        ["std::io::Write"]
    );
    assert_eq!(
        refused("fn f() { let t = std::time::Instant::now(); }"),
        ["std::time::Instant::now"]
    );
    assert_eq!(
        refused("fn f() { let t = Instant::now(); }"),
        ["Instant::now"]
    );
    assert_eq!(
        refused("fn f() { let t = time::SystemTime::now(); }"),
        ["time::SystemTime::now"]
    );
    assert_eq!(
        refused("fn f() { vec![std::thread::spawn(|| ())]; }"),
        ["std::thread::spawn"]
    );
    assert_eq!(refused("fn f() { println!(\"{}\", 1); }"), ["println!"]);
    assert_eq!(refused("fn f() { std::dbg!(1); }"), ["std::dbg!"]);
    assert_eq!(refused("include!(\"../server/clock.rs\");"), ["include!"]);
    assert_eq!(
        refused("#[path = \"../server/clock.rs\"]\nmod clock;"),
        ["#[path]"]
    );
    assert_eq!(
        refused("#[cfg_attr(unix, path = \"../server/clock.rs\")]\nmod clock;"),
        ["#[path]"]
    );
    assert!(refused("#[doc = \"path = x\"]\n#[cfg(feature = \"path\")]\nfn path() {}").is_empty());
}

#[test]
fn names_bound_by_use_are_followed() {
    assert_eq!(
        refused("use std as s;\nfn f() { s::net::TcpStream::connect(\"a:1\"); }"),
        ["std::net::TcpStream::connect"]
    );
    assert_eq!(
        refused("use std::time;\nfn f() { time::Instant::now(); }"),
        ["std::time::Instant::now"]
    );
    assert_eq!(
        refused("use std::{self as s};\nuse s::time as t;\nfn f(_: t::SystemTime) {}"),
        ["std::time::SystemTime"]
    );
    assert_eq!(
        refused("extern crate std as s2;\nfn f() { s2::fs::read(\"x\"); }"),
        ["std::fs::read"]
    );
}

#[test]
fn relative_paths_resolve_against_the_module() {
    assert_eq!(
        refused("use super::super::server::Server;"),
        ["crate::server::Server"]
    );
    assert_eq!(
        refused("fn f() { crate::platform::Environment::load(); }"),
        ["crate::platform::Environment::load"]
    );
    assert_eq!(
        refused("fn f() { $crate::testing::TestServer::start(); }"),
        ["crate::testing::TestServer::start"]
    );
    // From an inline module one level deeper, `super::super` is `crate::ws`.
    assert!(refused("mod tests {\n use super::super::server::X;\n}").is_empty());
    assert_eq!(
        refused("mod tests {\n use super::super::super::server::X;\n}"),
        ["crate::server::X"]
    );
    // ... and the inline module ends with its brace.
    assert_eq!(
        refused("mod a { }\nuse super::super::server::X;"),
        ["crate::server::X"]
    );
}

#[test]
fn comments_strings_and_characters_are_not_code() {
    let src = r####"
        // use std::net::TcpStream;
        /// Reads like `std::io::Read`, with `println!`.
        /* std::fs::read /* nested: std::thread */ std::process::exit(1) */
        //! mio::Poll
        fn f<'a>(x: &'a str) -> &'a str {
            let _ = "std::net::TcpStream \" std::fs";
            let _ = b"std::io::Read";
            let _ = r#"std::thread::spawn "quoted" "#;
            let _ = br##"std::env::var"#"##;
            let _ = ['"', '\'', '\\', b'"'];
            let _ = 'outer: loop { break 'outer; };
            x
        }
    "####;
    assert!(refused(src).is_empty(), "{:?}", refused(src));
    // Code after all of that is still seen, on its line.
    let after = format!("{src}\nuse std::fs;");
    let found = scan(&after, &module("crate::ws::conn"));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].what, "std::fs");
    assert_eq!(found[0].line, src.lines().count() + 1);
}

#[test]
fn what_the_core_may_use() {
    let src = r#"
        use core::fmt;
        use core::time::Duration;
        use std::time::Duration as D;
        use std::collections::hash_map::RandomState;
        use std::sync::{atomic::{AtomicU64, Ordering}, OnceLock};
        use super::{body, ParseError};
        use crate::{http::token, Limits};
        use base64::engine::general_purpose::STANDARD;
        fn f(out: &mut Vec<u8>, now: u64, d: Duration) -> fmt::Result {
            out.extend_from_slice(b"x");
            let _ = (now, d, D::from_secs(1), self::g, core::str::from_utf8(out));
            assert!(1 != 2, "{}", format!("{now}"));
            write!(f, "x")
        }
    "#;
    assert!(refused(src).is_empty(), "{:?}", refused(src));
}

#[test]
fn file_modules() {
    assert_eq!(
        module_of(Path::new("src/ws/conn.rs")),
        module("crate::ws::conn")
    );
    assert_eq!(module_of(Path::new("src/ws/mod.rs")), module("crate::ws"));
    assert_eq!(
        module_of(Path::new("src/ws/frame/tests.rs")),
        module("crate::ws::frame::tests")
    );
}
