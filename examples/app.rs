//! Run: `cargo run --release --example app`, then open http://127.0.0.1:8080/ in two tabs.
//!
//! The example app, as the hosting platform runs it: HTTP and WebSocket on the platform's port.
//!
//! It listens on 0.0.0.0 at the port from `PORT`, else `PORT_WWW`, else 8080, and on every
//! other `PORT_<NAME>` the platform assigns (from the process environment or `environment.json`,
//! see [`berth::platform`]), serving the same routes on each:
//!
//! - `GET /`: a one-page chat (inline HTML and script, no external assets) using `/ws/chat`.
//! - `/ws/chat`: a broadcast room. Each text message goes to every member, on every worker, as
//!   `{"name": ..., "text": ...}`. The page sends that shape; other text is taken as the text
//!   of an anonymous message. A message over 4 KiB closes the connection with 1009, and a
//!   binary message with 1003: the page never sends either, so a client that does is broken.
//! - `/ws/echo`: sends every message back.
//! - `GET /health`: `200 ok`. `GET /stats`: the server's and the app's counters as JSON.
//! - `POST /echo-body`: reads the body and answers with its length in bytes.
//! - Anything else is 404; another method on a known path is 405 with `Allow`.
//!
//! Every request body is read (and counted), so a badly framed request is answered 400 by the
//! server rather than left in the stream. A malformed `environment.json` or port variable
//! stops the app with an error message and exit status 1. SIGTERM or SIGINT drains: open
//! WebSockets are closed with 1001 and in-flight requests finish. `BERTH_LOG=debug` logs
//! every request and WebSocket.
//!
//! TLS: with a certificate it also serves `https://` and `wss://` on a second port (8443, or
//! `BERTH_TLS_PORT`). Give the PEM files with `--tls-cert CERT --tls-key KEY` (or
//! `BERTH_TLS_CERT` / `BERTH_TLS_KEY`); SIGHUP reloads them without a restart (connections
//! already open keep the old ones). For a local trial, `--self-signed` makes a certificate for
//! `localhost` in memory (browsers will warn about it).

#[path = "support/stderr_log.rs"]
mod stderr_log;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use berth::http::Request;
use berth::platform::{Environment, PlatformError};
use berth::server::{
    CertSet, Closed, Config, Handler, Message, Responder, Server, TlsConfig, WebSocket,
};
use berth::ws::CloseCode;

/// The chat room's topic.
const CHAT_TOPIC: &str = "chat";
/// The largest chat message accepted, in bytes. The server-wide message limit
/// (`Limits::max_message`, 1 MiB) still applies to `/ws/echo`; this one is the room's own, so
/// that one member cannot make every other member download megabytes.
const MAX_CHAT_MESSAGE: usize = 4 * 1024;
/// Names longer than this many characters are cut.
const MAX_NAME_CHARS: usize = 32;

/// The chat page. The script builds `ws://` or `wss://` from `location`, so it works behind
/// any host name and port, and writes every received string with `textContent`, never as
/// markup.
const INDEX_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>berth chat</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
  #log { list-style: none; padding: .5rem; height: 60vh; overflow-y: auto; border: 1px solid #ccc; }
  #log li { overflow-wrap: anywhere; }
  #status { color: #666; }
  form { display: flex; gap: .5rem; margin-top: .5rem; }
  #text { flex: 1; }
  #name { width: 8rem; }
</style>
</head>
<body>
<h1>berth chat</h1>
<p id="status">connecting...</p>
<ul id="log"></ul>
<form id="form">
  <input id="name" placeholder="name" maxlength="32" autocomplete="nickname">
  <input id="text" placeholder="message" autocomplete="off" required>
  <button>Send</button>
</form>
<script>
"use strict";
const MAX_BYTES = 4096, MAX_LINES = 500;
const log = document.getElementById("log"), status = document.getElementById("status");
const nameInput = document.getElementById("name"), textInput = document.getElementById("text");
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/chat";
let ws, retries = 0;

function show(name, text) {
  const li = document.createElement("li"), who = document.createElement("b");
  who.textContent = name + ": ";
  li.append(who, document.createTextNode(text));
  log.append(li);
  while (log.children.length > MAX_LINES) log.firstElementChild.remove();
  log.scrollTop = log.scrollHeight;
}

function connect() {
  ws = new WebSocket(url);
  ws.onopen = () => { retries = 0; status.textContent = "connected to " + url; };
  ws.onmessage = (e) => {
    try {
      const m = JSON.parse(e.data);
      show(String(m.name), String(m.text));
    } catch (_) { /* not a chat message */ }
  };
  ws.onclose = (e) => {
    const delay = Math.min(10000, 500 * 2 ** retries++);
    status.textContent = "disconnected (" + e.code + "), retrying in " + delay / 1000 + " s";
    setTimeout(connect, delay);
  };
}

document.getElementById("form").onsubmit = (e) => {
  e.preventDefault();
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  const data = JSON.stringify({ name: nameInput.value, text: textInput.value });
  if (new TextEncoder().encode(data).length > MAX_BYTES) {
    status.textContent = "message too long (at most " + MAX_BYTES + " bytes)";
    return;
  }
  ws.send(data);
  textInput.value = "";
};

connect();
</script>
</body>
</html>
"#;

/// What a connection is doing, kept between its callbacks.
#[derive(Debug, Default)]
struct Conn {
    route: Route,
    /// Bytes of the current request's body read so far.
    body_len: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Plain HTTP, or a request already answered.
    #[default]
    Http,
    /// `POST /echo-body`: the answer waits for the end of the body.
    EchoBody,
    /// Upgraded on `/ws/chat`; `joined` once subscribed.
    Chat { joined: bool },
    /// Upgraded on `/ws/echo`.
    Echo,
}

/// The app's own counters; the server's come from `Control::stats`.
#[derive(Debug, Default)]
struct App {
    /// Chat connections open now.
    chat_members: AtomicU64,
    /// Chat messages published to the room.
    chat_published: AtomicU64,
    /// Chat connections closed with 1009 for a message over [`MAX_CHAT_MESSAGE`].
    chat_too_big: AtomicU64,
    /// Chat connections closed with 1003 for a binary message.
    chat_binary: AtomicU64,
    /// Messages sent back on `/ws/echo`.
    echoed: AtomicU64,
    /// Request bodies read to their end that had at least one byte.
    bodies: AtomicU64,
    /// Request body bytes read, whole bodies or not.
    body_bytes: AtomicU64,
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Answer a known path with a method it does not take.
fn method_not_allowed(res: &mut Responder<'_>, allow: &str) {
    let _ = res.send(
        405,
        &[("Allow", allow.as_bytes()), ("Content-Type", b"text/plain")],
        b"method not allowed\n",
    );
}

impl App {
    fn stats_json(&self, res: &Responder<'_>) -> Vec<u8> {
        let server = res.control().stats();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let body = serde_json::json!({
            "connections": server.connections,
            "websockets": server.websockets,
            "accepted": server.accepted,
            "requests": server.requests,
            "messages": server.messages_in,
            "bytes_in": server.bytes_in,
            "bytes_out": server.bytes_out,
            "chat": {
                "members": load(&self.chat_members),
                "published": load(&self.chat_published),
                "closed_too_big": load(&self.chat_too_big),
                "closed_binary": load(&self.chat_binary),
            },
            "echoed": load(&self.echoed),
            "request_bodies": {
                "count": load(&self.bodies),
                "bytes": load(&self.body_bytes),
            },
        });
        let mut text = body.to_string().into_bytes();
        text.push(b'\n');
        text
    }

    /// Accept a WebSocket upgrade for `route`; a plain GET is told to upgrade (426).
    fn websocket(
        &self,
        conn: &mut Conn,
        req: &Request<'_, '_>,
        res: &mut Responder<'_>,
        route: Route,
    ) {
        if req.upgrade.is_none() {
            let _ = res.send(
                426,
                &[("Upgrade", b"websocket"), ("Content-Type", b"text/plain")],
                b"this path speaks WebSocket\n",
            );
        } else if res.websocket(req) {
            conn.route = route;
        }
    }

    /// A chat message: publish it to the room as `{"name", "text"}`.
    fn chat(&self, ws: &mut WebSocket<'_>, text: &str) {
        if text.len() > MAX_CHAT_MESSAGE {
            count(&self.chat_too_big);
            log::debug!("{}: chat message of {} bytes; closing", ws.id(), text.len());
            let _ = ws.close(CloseCode::TOO_BIG, "chat messages are at most 4 KiB");
            return;
        }
        let (name, text) = parse_chat(text);
        if text.is_empty() {
            return;
        }
        let out = serde_json::json!({ "name": name, "text": text }).to_string();
        ws.publish(CHAT_TOPIC, Message::Text(&out));
        count(&self.chat_published);
    }
}

/// The name and text of a chat message: the page's `{"name", "text"}`, or else the whole
/// message as the text of an anonymous one.
fn parse_chat(raw: &str) -> (String, String) {
    let (name, text) = match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(mut m)) => match m.remove("text") {
            Some(serde_json::Value::String(text)) => {
                let name = match m.remove("name") {
                    Some(serde_json::Value::String(name)) => name,
                    _ => String::new(),
                };
                (name, text)
            }
            _ => (String::new(), raw.to_string()),
        },
        _ => (String::new(), raw.to_string()),
    };
    let name: String = name.trim().chars().take(MAX_NAME_CHARS).collect();
    let name = if name.is_empty() {
        "anonymous".to_string()
    } else {
        name
    };
    (name, text)
}

impl Handler for App {
    type State = Conn;

    fn on_request(&self, conn: &mut Conn, req: &Request<'_, '_>, res: &mut Responder<'_>) {
        log::debug!("{} {} {}", res.peer_addr(), req.method, req.target);
        conn.route = Route::Http;
        conn.body_len = 0;
        let get = matches!(req.method, "GET" | "HEAD");
        match req.path() {
            "/" if get => {
                let _ = res.send(
                    200,
                    &[("Content-Type", b"text/html; charset=utf-8")],
                    INDEX_HTML.as_bytes(),
                );
            }
            "/health" if get => {
                let _ = res.send(200, &[("Content-Type", b"text/plain")], b"ok");
            }
            "/stats" if get => {
                let body = self.stats_json(res);
                let _ = res.send(
                    200,
                    &[
                        ("Content-Type", b"application/json"),
                        ("Cache-Control", b"no-store"),
                    ],
                    &body,
                );
            }
            "/" | "/health" | "/stats" => method_not_allowed(res, "GET, HEAD"),
            "/ws/chat" if req.method == "GET" => {
                self.websocket(conn, req, res, Route::Chat { joined: false });
            }
            "/ws/echo" if req.method == "GET" => self.websocket(conn, req, res, Route::Echo),
            "/ws/chat" | "/ws/echo" => method_not_allowed(res, "GET"),
            // The answer is written in `on_body_end`, once the whole body has been read.
            "/echo-body" if req.method == "POST" => conn.route = Route::EchoBody,
            "/echo-body" => method_not_allowed(res, "POST"),
            _ => {
                let _ = res.send(404, &[("Content-Type", b"text/plain")], b"not found\n");
            }
        }
    }

    fn on_body(&self, conn: &mut Conn, data: &[u8], _: &mut Responder<'_>) {
        // Bodies of requests already answered are read too (and dropped), so the connection
        // stays in step for the next request.
        conn.body_len += data.len() as u64;
        self.body_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
    }

    fn on_body_end(&self, conn: &mut Conn, res: &mut Responder<'_>) {
        if conn.body_len > 0 {
            count(&self.bodies);
        }
        if conn.route == Route::EchoBody {
            conn.route = Route::Http;
            let answer = format!("{}\n", conn.body_len);
            let _ = res.send(200, &[("Content-Type", b"text/plain")], answer.as_bytes());
        }
    }

    fn on_open(&self, conn: &mut Conn, ws: &mut WebSocket<'_>) {
        let path = match &mut conn.route {
            Route::Chat { joined } => {
                ws.subscribe(CHAT_TOPIC);
                *joined = true;
                count(&self.chat_members);
                "/ws/chat"
            }
            _ => "/ws/echo",
        };
        log::debug!("{}: {path} open, from {}", ws.id(), ws.peer_addr());
    }

    fn on_message(&self, conn: &mut Conn, ws: &mut WebSocket<'_>, msg: Message<'_>) {
        match (conn.route, msg) {
            (Route::Chat { .. }, Message::Text(text)) => self.chat(ws, text),
            (Route::Chat { .. }, Message::Binary(_)) => {
                count(&self.chat_binary);
                let _ = ws.close(CloseCode::UNSUPPORTED, "the chat takes text messages");
            }
            (Route::Echo, msg) => {
                // Fails only when the connection is closing or over its buffer bound; the
                // message is dropped then.
                if ws.send(msg).is_ok() {
                    count(&self.echoed);
                }
            }
            (Route::Http | Route::EchoBody, _) => {}
        }
    }

    fn on_close(&self, conn: &mut Conn, closed: Closed<'_>) {
        log::debug!("{}: WebSocket closed: {:?}", closed.id(), closed.reason());
        if let Route::Chat { joined: true } = conn.route {
            let left = self
                .chat_members
                .fetch_sub(1, Ordering::Relaxed)
                .saturating_sub(1);
            // Tell the room, unless everyone is being sent away anyway.
            if !closed.control().is_shutting_down() {
                let text = format!("a member left ({left} here)");
                let out = serde_json::json!({ "name": "berth", "text": text }).to_string();
                closed.control().publish(CHAT_TOPIC, Message::Text(&out));
            }
        }
        conn.route = Route::Http;
    }
}

/// The ports to listen on, in port order, each with the platform names it serves: `http` for
/// the HTTP port, and the lower-cased `<NAME>` of every `PORT_<NAME>`. Two names for one port
/// (`PORT_WWW` is usually the HTTP port too) share a listener.
fn listen_plan(env: &Environment) -> Result<BTreeMap<u16, Vec<String>>, PlatformError> {
    let http = env.http_port()?;
    let mut plan: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    plan.entry(http).or_default().push("http".into());
    for (name, port) in env.ports()? {
        plan.entry(port).or_default().push(name);
    }
    Ok(plan)
}

/// Where the TLS certificate comes from, if TLS is on.
enum TlsSource {
    Files(String, String),
    SelfSigned,
}

/// TLS settings from the command line, then the environment.
fn tls_source() -> Result<Option<(TlsSource, u16)>, String> {
    let (mut cert, mut key, mut self_signed) = (None, None, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tls-cert" => cert = args.next(),
            "--tls-key" => key = args.next(),
            "--self-signed" => self_signed = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?} (--tls-cert, --tls-key, --self-signed)"
                ))
            }
        }
    }
    let cert = cert.or_else(|| std::env::var("BERTH_TLS_CERT").ok());
    let key = key.or_else(|| std::env::var("BERTH_TLS_KEY").ok());
    let port = match std::env::var("BERTH_TLS_PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| format!("BERTH_TLS_PORT: {p:?} is not a port"))?,
        Err(_) => 8443,
    };
    Ok(match (cert, key, self_signed) {
        (Some(cert), Some(key), false) => Some((TlsSource::Files(cert, key), port)),
        (None, None, true) => Some((TlsSource::SelfSigned, port)),
        (None, None, false) => None,
        _ => return Err("give --tls-cert with --tls-key, or --self-signed alone".into()),
    })
}

fn load_certs(source: &TlsSource) -> Result<CertSet, String> {
    match source {
        TlsSource::Files(cert, key) => {
            CertSet::from_pem_files(cert, key).map_err(|e| e.to_string())
        }
        TlsSource::SelfSigned => {
            let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
                .map_err(|e| e.to_string())?;
            CertSet::from_pem(
                pair.cert.pem().as_bytes(),
                pair.signing_key.serialize_pem().as_bytes(),
            )
            .map_err(|e| e.to_string())
        }
    }
}

/// Reload the certificate files on SIGHUP, for as long as the process runs.
fn reload_on_sighup(tls: TlsConfig, cert: String, key: String) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    std::thread::Builder::new()
        .name("tls-reload".into())
        .spawn(move || {
            for _ in signals.forever() {
                match CertSet::from_pem_files(&cert, &key) {
                    Ok(certs) => {
                        tls.reload(certs);
                        log::info!("SIGHUP: reloaded {cert} and {key}");
                    }
                    Err(e) => log::error!("SIGHUP: keeping the old certificate: {e}"),
                }
            }
        })?;
    Ok(())
}

fn main() -> ExitCode {
    stderr_log::init();
    let tls = match tls_source() {
        Ok(tls) => tls,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let env = match Environment::load() {
        Ok(env) => env,
        Err(e) => {
            log::error!("platform environment: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(file) = env.file() {
        log::info!("platform variables from {}", file.display());
    }
    let plan = match listen_plan(&env) {
        Ok(plan) => plan,
        Err(e) => {
            log::error!("platform environment: {e}");
            return ExitCode::FAILURE;
        }
    };

    let mut server = Server::new(Config::default());
    let mut names = Vec::with_capacity(plan.len());
    for (port, port_names) in plan {
        let addr = SocketAddr::from(([0, 0, 0, 0], port));
        server = match server.listen(addr) {
            Ok(server) => server,
            Err(e) => {
                log::error!("cannot listen on {addr} ({}): {e}", port_names.join(", "));
                return ExitCode::FAILURE;
            }
        };
        names.push(port_names);
    }
    // `local_addrs` is in `listen` order, so it lines up with `names`.
    for (addr, port_names) in server.local_addrs().iter().zip(&names) {
        log::info!("listening on http://{addr}/ for {}", port_names.join(", "));
    }
    if let Some((source, port)) = tls {
        let config = match load_certs(&source)
            .and_then(|certs| TlsConfig::new(certs).map_err(|e| e.to_string()))
        {
            Ok(config) => config,
            Err(e) => {
                log::error!("TLS: {e}");
                return ExitCode::FAILURE;
            }
        };
        let addr = SocketAddr::from(([0, 0, 0, 0], port));
        server = match server.listen_tls(addr, &config) {
            Ok(server) => server,
            Err(e) => {
                log::error!("cannot listen on {addr} (tls): {e}");
                return ExitCode::FAILURE;
            }
        };
        log::info!("listening on https://{addr}/ for tls");
        if let TlsSource::Files(cert, key) = source {
            if let Err(e) = reload_on_sighup(config, cert, key) {
                log::error!("cannot watch SIGHUP: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    match server.run(App::default()) {
        Ok(()) => {
            log::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("server failed: {e}");
            ExitCode::FAILURE
        }
    }
}
