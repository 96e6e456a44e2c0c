//! Interop with `tungstenite` over an in-memory duplex: tungstenite's client against our server
//! role, and our client role against tungstenite's server. Text, binary, fragmented messages,
//! ping/pong and the close handshake, with no sockets.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;

use berth::ws::{CloseCode, Conn, Event, MessageKind};
use berth::Limits;
use tungstenite::protocol::frame::coding::{CloseCode as TCloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame};
use tungstenite::protocol::Role as TRole;
use tungstenite::{Message, WebSocket};

/// One direction of the duplex.
#[derive(Clone, Default)]
struct Pipe(Rc<RefCell<VecDeque<u8>>>);

impl Pipe {
    fn take(&self) -> Vec<u8> {
        self.0.borrow_mut().drain(..).collect()
    }

    fn put(&self, bytes: &[u8]) {
        self.0.borrow_mut().extend(bytes);
    }
}

/// tungstenite's end: reads from `rx`, writes to `tx`; an empty pipe is WouldBlock.
struct Duplex {
    rx: Pipe,
    tx: Pipe,
}

impl io::Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut q = self.rx.0.borrow_mut();
        if q.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(q.len());
        for (dst, src) in buf.iter_mut().zip(q.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }
}

impl io::Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx.put(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Our end of the duplex, driving a `Conn` and echoing every data message.
struct Ours {
    conn: Conn,
    rx: Pipe,
    tx: Pipe,
    inbox: Vec<u8>,
    seen: Vec<String>,
}

impl Ours {
    /// Move bytes from the pipe through the connection; echo data messages; log the rest.
    fn pump(&mut self, echo: bool) {
        self.inbox.extend(self.rx.take());
        // Messages to echo, collected first: events borrow the connection and the inbox.
        let mut echoes: Vec<(MessageKind, Vec<u8>)> = Vec::new();
        loop {
            let (used, event) = self
                .conn
                .handle_input(&mut self.inbox)
                .expect("protocol error");
            let done = matches!(event, Event::NeedData | Event::Closed);
            match event {
                Event::Text(t) => {
                    self.seen.push(format!("text {}", t.len()));
                    if echo {
                        echoes.push((MessageKind::Text, t.as_bytes().to_vec()));
                    }
                }
                Event::Binary(b) => {
                    self.seen.push(format!("binary {}", b.len()));
                    if echo {
                        echoes.push((MessageKind::Binary, b.to_vec()));
                    }
                }
                Event::Ping(p) => self
                    .seen
                    .push(format!("ping {}", String::from_utf8_lossy(p))),
                Event::Pong(p) => self
                    .seen
                    .push(format!("pong {}", String::from_utf8_lossy(p))),
                Event::Close(c) => self.seen.push(format!(
                    "close {:?}",
                    c.map(|c| (c.code.as_u16(), c.reason.to_string()))
                )),
                Event::Closed => self.seen.push("closed".into()),
                _ => {}
            }
            self.inbox.drain(..used);
            if done {
                break;
            }
        }
        let mut wire = Vec::new();
        self.conn.poll_transmit(&mut wire);
        for (kind, payload) in echoes {
            self.conn.send(kind, &payload, true, &mut wire).unwrap();
        }
        self.tx.put(&wire);
    }
}

fn duplex(conn: Conn) -> (WebSocket<Duplex>, Ours, TRole) {
    let to_ours = Pipe::default();
    let to_theirs = Pipe::default();
    let role = match conn.role() {
        berth::ws::Role::Server => TRole::Client,
        berth::ws::Role::Client => TRole::Server,
    };
    let theirs = WebSocket::from_raw_socket(
        Duplex {
            rx: to_theirs.clone(),
            tx: to_ours.clone(),
        },
        role,
        None,
    );
    let ours = Ours {
        conn,
        rx: to_ours,
        tx: to_theirs,
        inbox: Vec::new(),
        seen: Vec::new(),
    };
    (theirs, ours, role)
}

/// Read every message tungstenite has available now.
fn drain(ws: &mut WebSocket<Duplex>) -> Vec<Message> {
    let mut got = Vec::new();
    loop {
        match ws.read() {
            Ok(m) => got.push(m),
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return got,
            Err(tungstenite::Error::ConnectionClosed) => return got,
            Err(e) => panic!("tungstenite: {e}"),
        }
    }
}

#[test]
fn tungstenite_client_against_our_server() {
    let (mut theirs, mut ours, _) = duplex(Conn::server(&Limits::default()));
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();

    theirs.send(Message::text("hello")).unwrap();
    theirs.send(Message::binary(vec![1u8, 2, 3])).unwrap();
    theirs
        .send(Message::Frame(Frame::message(
            "Hel",
            OpCode::Data(Data::Text),
            false,
        )))
        .unwrap();
    theirs.send(Message::Ping("p".into())).unwrap();
    theirs
        .send(Message::Frame(Frame::message(
            "lo ✓",
            OpCode::Data(Data::Continue),
            true,
        )))
        .unwrap();
    theirs.send(Message::binary(big.clone())).unwrap();
    ours.pump(true);
    assert_eq!(
        ours.seen,
        ["text 5", "binary 3", "ping p", "text 9", "binary 100000"],
    );

    let mut wire = Vec::new();
    ours.conn.send_ping(b"srv", &mut wire).unwrap();
    ours.tx.put(&wire);
    let got = drain(&mut theirs);
    // The automatic pong is written before the echoes of the same batch.
    let expected = [
        Message::Pong("p".into()),
        Message::text("hello"),
        Message::binary(vec![1u8, 2, 3]),
        Message::text("Hello ✓"),
        Message::binary(big),
        Message::Ping("srv".into()),
    ];
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert!(g == e, "message {i} differs: got {} bytes", g.len());
    }
    // tungstenite answers our ping when it next flushes.
    theirs.flush().unwrap();
    ours.pump(false);
    assert_eq!(ours.seen.last().unwrap(), "pong srv");

    // tungstenite closes; we echo; it sees the echo and the connection ends.
    theirs
        .close(Some(CloseFrame {
            code: TCloseCode::Normal,
            reason: "bye".into(),
        }))
        .unwrap();
    ours.pump(false);
    assert_eq!(
        &ours.seen[ours.seen.len() - 2..],
        ["close Some((1000, \"bye\"))", "closed"]
    );
    assert!(ours.conn.is_closed());
    let got = drain(&mut theirs);
    assert!(
        matches!(&got[..], [Message::Close(Some(f))] if f.code == TCloseCode::Normal),
        "{got:?}"
    );
}

#[test]
fn our_server_closes_with_a_custom_code() {
    let (mut theirs, mut ours, _) = duplex(Conn::server(&Limits::default()));
    let mut wire = Vec::new();
    ours.conn
        .close(CloseCode::from(4000), "custom", &mut wire)
        .unwrap();
    ours.tx.put(&wire);
    let got = drain(&mut theirs);
    assert!(
        matches!(&got[..], [Message::Close(Some(f))] if u16::from(f.code) == 4000 && f.reason == "custom"),
        "{got:?}"
    );
    assert!(matches!(
        theirs.flush(),
        Err(tungstenite::Error::ConnectionClosed) | Ok(())
    ));
    ours.pump(false);
    assert_eq!(ours.seen, ["close Some((4000, \"custom\"))", "closed"]);
    assert!(ours.conn.is_closed());
}

#[test]
fn our_client_against_tungstenite_server() {
    let mut n = 7u32;
    let client = Conn::client(
        &Limits::default(),
        Box::new(move || {
            n ^= n << 13;
            n ^= n >> 17;
            n ^= n << 5;
            n.to_ne_bytes()
        }),
    );
    let (mut theirs, mut ours, _) = duplex(client);
    let mut wire = Vec::new();
    ours.conn.send_text("hi there", &mut wire).unwrap();
    ours.conn
        .send(MessageKind::Binary, &[9; 70_000], false, &mut wire)
        .unwrap();
    ours.conn.send_ping(b"c", &mut wire).unwrap();
    ours.conn
        .send(MessageKind::Binary, &[8; 10], true, &mut wire)
        .unwrap();
    ours.tx.put(&wire);

    // tungstenite echoes every data message.
    let got = drain(&mut theirs);
    assert_eq!(got.len(), 3, "{got:?}");
    for m in got {
        if m.is_text() || m.is_binary() {
            theirs.send(m).unwrap();
        }
    }
    theirs.flush().unwrap();
    ours.pump(false);
    assert_eq!(ours.seen, ["pong c", "text 8", "binary 70010"]);

    let mut wire = Vec::new();
    ours.conn
        .close(CloseCode::NORMAL, "done", &mut wire)
        .unwrap();
    ours.tx.put(&wire);
    let got = drain(&mut theirs);
    assert!(
        matches!(&got[..], [Message::Close(Some(f))] if f.reason == "done"),
        "{got:?}"
    );
    // tungstenite has queued its reply; flushing it reports the handshake as finished.
    assert!(matches!(
        theirs.flush(),
        Err(tungstenite::Error::ConnectionClosed) | Ok(())
    ));
    ours.pump(false);
    assert_eq!(ours.seen.last().unwrap(), "closed");
    assert!(ours.conn.is_closed());
}
