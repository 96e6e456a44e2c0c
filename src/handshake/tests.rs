//! Handshake tests: every refusal with its status, the accepted answer, the client side, and
//! the whole upgrade driven in memory from request bytes to WebSocket messages.

use super::*;
use crate::http::{header_slots, DateCache, Event, ResponseBody, ResponseHead, ServerConn};
use crate::ws::{self, Conn};
use crate::{Limits, Status};

const GOOD: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Parse `raw` and check it as an upgrade; the error or the protocols and origin.
fn check(raw: &str) -> Result<(Vec<String>, Option<Vec<u8>>), HandshakeError> {
    let mut slots = header_slots::<32>();
    let mut parser = crate::http::RequestParser::new(&Limits::default());
    let Status::Complete((_, req)) = parser.parse(raw.as_bytes(), &mut slots).unwrap() else {
        panic!("partial")
    };
    let up = Upgrade::parse(&req)?;
    Ok((
        up.protocols().map(String::from).collect(),
        up.origin().map(<[u8]>::to_vec),
    ))
}

fn replace(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

macro_rules! refuses {
    ($($name:ident: $raw:expr => $err:ident $status:literal;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(check(&$raw), Err(HandshakeError::$err));
            assert_eq!(HandshakeError::$err.status(), $status);
        }
    )*};
}

refuses! {
    refuses_post_with_405: replace("GET /chat", "POST /chat") => MethodNotAllowed 405;
    refuses_http10: replace("HTTP/1.1\r\nHost", "HTTP/1.0\r\nHost") => NotHttp11 400;
    refuses_missing_upgrade: replace("Upgrade: websocket\r\n", "") => NotAnUpgrade 400;
    refuses_other_upgrade: replace("Upgrade: websocket", "Upgrade: h2c") => NotAnUpgrade 400;
    refuses_missing_connection_upgrade: replace("Connection: Upgrade", "Connection: keep-alive") => NotAnUpgrade 400;
    refuses_body: replace("Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Version: 13\r\nContent-Length: 1\r\n") => BodyNotAllowed 400;
    refuses_version_8_with_426: replace("Version: 13", "Version: 8") => UnsupportedVersion 426;
    refuses_missing_version_with_426: replace("Sec-WebSocket-Version: 13\r\n", "") => UnsupportedVersion 426;
    refuses_repeated_version: replace("Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n") => UnsupportedVersion 426;
    refuses_missing_key: replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "") => InvalidKey 400;
    refuses_short_key: replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=") => InvalidKey 400;
    refuses_non_base64_key: replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25j!Q==") => InvalidKey 400;
    refuses_repeated_key: replace("Origin", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin") => InvalidKey 400;
    refuses_bad_extensions: replace("Origin", "Sec-WebSocket-Extensions: permessage-deflate; =\r\nOrigin") => InvalidExtensions 400;
    refuses_a_protocol_that_is_not_a_token: replace("chat, superchat", "chat, super chat") => InvalidProtocols 400;
    refuses_a_protocol_with_a_separator: replace("chat, superchat", "v1.j)son") => InvalidProtocols 400;
}

#[test]
fn accepts_the_rfc_example_with_case_insensitive_tokens() {
    let (protocols, origin) = check(GOOD).unwrap();
    assert_eq!(protocols, ["chat", "superchat"]);
    assert_eq!(origin.as_deref(), Some(&b"http://example.com"[..]));
    let raw = replace("Upgrade: websocket", "upgrade: WebSocket")
        .replace("Connection: Upgrade", "connection: keep-alive, UPGRADE");
    assert!(check(&raw).is_ok());
}

#[test]
fn refusal_headers_follow_the_status() {
    assert_eq!(
        HandshakeError::MethodNotAllowed.headers(),
        [("Allow", &b"GET"[..])]
    );
    assert!(HandshakeError::InvalidKey.headers().is_empty());
    assert_eq!(HandshakeError::OriginRejected.status(), 403);
}

#[test]
fn accept_refuses_a_protocol_that_was_not_offered() {
    let mut slots = header_slots::<32>();
    let mut parser = crate::http::RequestParser::new(&Limits::default());
    let Status::Complete((_, req)) = parser.parse(GOOD.as_bytes(), &mut slots).unwrap() else {
        panic!()
    };
    let up = Upgrade::parse(&req).unwrap();
    assert_eq!(
        up.accept(Some("mqtt")).map(|_| ()),
        Err(HandshakeError::ProtocolNotOffered)
    );
    let none = up.accept(None).unwrap();
    assert_eq!(none.headers().len(), 2);
    let chat = up.accept(Some("superchat")).unwrap();
    assert_eq!(
        chat.headers()[2],
        ("Sec-WebSocket-Protocol", &b"superchat"[..])
    );
}

#[test]
fn extension_offers_are_exposed() {
    let raw = replace(
        "Origin",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo\r\nOrigin",
    );
    let mut slots = header_slots::<32>();
    let mut parser = crate::http::RequestParser::new(&Limits::default());
    let Status::Complete((_, req)) = parser.parse(raw.as_bytes(), &mut slots).unwrap() else {
        panic!()
    };
    let up = Upgrade::parse(&req).unwrap();
    let names: Vec<&str> = up.extensions().map(|e| e.name).collect();
    assert_eq!(names, ["permessage-deflate", "x-foo"]);
}

#[test]
fn extension_parameters_keep_quoted_semicolons_in_their_value() {
    let raw = replace(
        "Origin",
        "Sec-WebSocket-Extensions: permessage-deflate; x=\"1;=2\" ; server_no_context_takeover;y=tok\r\nOrigin",
    );
    let mut slots = header_slots::<32>();
    let mut parser = crate::http::RequestParser::new(&Limits::default());
    let Status::Complete((_, req)) = parser.parse(raw.as_bytes(), &mut slots).unwrap() else {
        panic!()
    };
    let up = Upgrade::parse(&req).unwrap();
    let offer = up.extensions().next().unwrap();
    let params: Vec<_> = offer.params().collect();
    assert_eq!(
        params,
        [
            ("x", Some("1;=2")),
            ("server_no_context_takeover", None),
            ("y", Some("tok"))
        ]
    );
}

#[test]
fn client_request_refuses_injection_and_carries_extra_headers() {
    let hs = ClientHandshake::new(*b"the sample nonce");
    let mut out = Vec::new();
    for (host, target, protocol) in [
        ("a\r\nX: y", "/", "chat"),
        ("a", "/ HTTP/1.1\r\nX: y", "chat"),
        ("a", "/x y", "chat"),
        ("", "/", "chat"),
        ("a", "/", "super chat"),
    ] {
        assert_eq!(
            hs.write_request(host, target, &[protocol], &mut out),
            Err(ClientError::InvalidRequest)
        );
    }
    assert_eq!(
        hs.write_request_with("a", "/", &[], &[("Origin", b"x\r\nEvil: 1")], &mut out),
        Err(ClientError::InvalidRequest)
    );
    assert!(out.is_empty());
    hs.write_request_with("a", "/", &[], &[("Origin", b"https://a.example")], &mut out)
        .unwrap();
    assert!(out.ends_with(b"\r\nOrigin: https://a.example\r\n\r\n"));
}

fn response(lines: &str) -> String {
    format!("HTTP/1.1 101 Switching Protocols\r\n{lines}\r\n")
}

#[test]
fn client_checks_every_part_of_the_answer() {
    let hs = ClientHandshake::new(*b"the sample nonce");
    let ok = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
    let parse = |raw: &str, offered: &[&str]| {
        let mut slots = header_slots::<16>();
        hs.parse_response(raw.as_bytes(), offered, &mut slots)
            .map(|s| match s {
                Status::Complete((_, a)) => a.protocol.map(String::from),
                Status::Partial => Some("partial".into()),
            })
    };
    assert_eq!(parse(&response(ok), &[]), Ok(None));
    assert_eq!(parse(&response(ok)[..20], &[]), Ok(Some("partial".into())));
    assert_eq!(
        parse(
            &response(ok).replace("101 Switching Protocols", "403 Forbidden"),
            &[]
        ),
        Err(ClientError::UnexpectedStatus(403))
    );
    assert_eq!(
        parse(&response(&ok.replace("s3pP", "XXXX")), &[]),
        Err(ClientError::AcceptMismatch)
    );
    // Several accept fields fail, whether the right key comes first or last (RFC 6455 §4.1:
    // their combined value is never the key).
    let wrong = "Sec-WebSocket-Accept: XXXXLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
    assert_eq!(
        parse(&response(&format!("{ok}{wrong}")), &[]),
        Err(ClientError::AcceptMismatch)
    );
    assert_eq!(
        parse(&response(&format!("{wrong}{ok}")), &[]),
        Err(ClientError::AcceptMismatch)
    );
    assert_eq!(
        parse(
            &response(&format!(
                "{ok}Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            )),
            &[]
        ),
        Err(ClientError::AcceptMismatch)
    );
    assert_eq!(
        parse(&response(&ok.replace("Upgrade: websocket\r\n", "")), &[]),
        Err(ClientError::NotAnUpgrade)
    );
    assert_eq!(
        parse(
            &response(&format!("{ok}Sec-WebSocket-Protocol: chat\r\n")),
            &[]
        ),
        Err(ClientError::ProtocolNotOffered)
    );
    assert_eq!(
        parse(
            &response(&format!("{ok}Sec-WebSocket-Protocol: chat\r\n")),
            &["chat"]
        ),
        Ok(Some("chat".into()))
    );
    assert_eq!(
        parse(
            &response(&format!(
                "{ok}Sec-WebSocket-Extensions: permessage-deflate\r\n"
            )),
            &[]
        ),
        Err(ClientError::ExtensionNotOffered)
    );
    assert_eq!(
        parse("garbage\r\n\r\n", &[]),
        Err(ClientError::InvalidResponse)
    );
}

#[test]
fn whole_upgrade_in_memory_from_request_bytes_to_messages() {
    let limits = Limits::default();
    let date = DateCache::new(0);
    let hs = ClientHandshake::new([7; 16]);
    let mut wire = Vec::new();
    hs.write_request("localhost", "/echo", &["v1"], &mut wire)
        .unwrap();
    // The client sends its first frame right behind the request.
    let mut client = Conn::client(&limits, Box::new(|| [1, 2, 3, 4]));
    client.send_text("first", &mut wire).unwrap();

    // Server: HTTP, then the handshake, then the 101, then WebSocket on the leftover bytes.
    let mut http = ServerConn::new(&limits);
    let mut answer = Vec::new();
    let mut slots = header_slots::<32>();
    let (used, event) = http.handle_input(&wire, &mut slots).unwrap();
    let Event::Request(req) = event else {
        panic!("{event:?}")
    };
    let up = Upgrade::parse(&req).unwrap();
    let accept = up.accept(Some("v1")).unwrap();
    let head = ResponseHead {
        status: 101,
        headers: &accept.headers(),
        body: ResponseBody::Empty,
        close: false,
    };
    http.write_head(&head, &date, &mut answer).unwrap();
    let mut rest = wire[used..].to_vec();
    assert!(matches!(
        http.handle_input(&rest, &mut header_slots::<4>()),
        Ok((0, Event::Upgraded))
    ));

    let mut server = Conn::server(&limits);
    let total = rest.len();
    let (n, ev) = server.handle_input(&mut rest).unwrap();
    assert_eq!((n, ev), (total, ws::Event::Text("first")));
    server.send_text("hello back", &mut answer).unwrap();

    // Client: the 101, then frames.
    let mut slots = header_slots::<16>();
    let Status::Complete((len, accepted)) =
        hs.parse_response(&answer, &["v1"], &mut slots).unwrap()
    else {
        panic!("partial")
    };
    assert_eq!(accepted.protocol, Some("v1"));
    let mut frames = answer[len..].to_vec();
    let (_, ev) = client.handle_input(&mut frames).unwrap();
    assert_eq!(ev, ws::Event::Text("hello back"));
}
