//! The byte mover: one connection's socket, its TLS layer if it has one, and its pooled read
//! and write buffers.
//!
//! Layer: the I/O runtime. This is the only code that reads or writes a connection's socket or
//! calls its `rustls::ServerConnection`; the session above it decides what the bytes are for
//! and never sees the socket, and the core below never sees either. Like hyper's `Buffered`
//! (`proto/h1/io.rs`), the transport owns the buffers around the socket and lends them out.
//!
//! ```text
//!   socket ─► [TLS: read_tls ─► process_new_packets ─► reader()] ─► scratch or inbuf ─► session
//!   session ─► out ─► [TLS: writer() (64 KiB held at most) ─► write_tls] ─► socket
//! ```
//!
//! Invariants:
//! - `inbuf[..in_len]` is input the core left unconsumed (a head or frame that arrived in
//!   pieces). While `in_len` is 0, input is read into the worker's shared scratch buffer and
//!   handed to the core in place; only the leftovers are stashed in a pooled `inbuf`, which
//!   goes back to the pool once it is empty again.
//! - `out[out_pos..]` is output the socket has not taken. `out` is a pooled buffer while it
//!   holds output and has no capacity once the socket (and rustls) have taken it all.
//! - Reading is edge-triggered: the session reads until `WouldBlock`, or until a read comes
//!   back short of the room it was offered, which says the socket is drained ([`Recv::Data`]
//!   `drained`). A short read of plaintext through TLS says nothing about the socket, so over
//!   TLS no read counts as drained.
//! - A clean close sends TLS close_notify (once the handshake is done); after an error none is
//!   sent.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;

use super::buffer::Pool;

/// The socket, and the TLS layer between it and the plaintext, on a TLS listener.
enum Link {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(TcpStream, Box<rustls::ServerConnection>),
}

/// What one read brought.
#[derive(Debug)]
pub(crate) enum Recv {
    /// `n` bytes arrived: at the front of the scratch buffer, or (`held`) after the held
    /// input. `drained`: the read came back short, so the socket has nothing more for now.
    Data { n: usize, held: bool, drained: bool },
    /// The end of the stream: a TCP EOF, or TLS close_notify.
    Eof,
    /// The held input is at its bound, with no room to read into.
    Full,
}

/// One connection's socket, TLS layer and buffers.
pub(crate) struct Transport {
    link: Link,
    /// Unconsumed input in `inbuf[..in_len]`; `inbuf` is empty (no capacity) when none.
    inbuf: Vec<u8>,
    in_len: usize,
    /// Output in `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
}

impl Transport {
    /// A plaintext connection.
    pub(crate) fn plain(stream: TcpStream) -> Self {
        Self::new(Link::Plain(stream))
    }

    /// A connection accepted on a TLS listener; its handshake starts with the first read.
    #[cfg(feature = "tls")]
    pub(crate) fn tls(stream: TcpStream, config: &super::TlsConfig) -> Result<Self, rustls::Error> {
        let mut conn = rustls::ServerConnection::new(std::sync::Arc::clone(&config.server))?;
        // Bounds the plaintext rustls holds before the handshake ends and the records it holds
        // for the socket, like the session's own write buffer.
        conn.set_buffer_limit(Some(64 * 1024));
        Ok(Self::new(Link::Tls(stream, Box::new(conn))))
    }

    fn new(link: Link) -> Self {
        Transport {
            link,
            inbuf: Vec::new(),
            in_len: 0,
            out: Vec::new(),
            out_pos: 0,
        }
    }

    fn stream(&self) -> &TcpStream {
        match &self.link {
            Link::Plain(stream) => stream,
            #[cfg(feature = "tls")]
            Link::Tls(stream, _) => stream,
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        match &self.link {
            Link::Plain(_) => false,
            #[cfg(feature = "tls")]
            Link::Tls(..) => true,
        }
    }

    /// Is the TLS handshake still in progress?
    pub(crate) fn is_handshaking(&self) -> bool {
        match &self.link {
            Link::Plain(_) => false,
            #[cfg(feature = "tls")]
            Link::Tls(_, tls) => tls.is_handshaking(),
        }
    }

    /// Does the TLS layer hold records the socket has not taken?
    fn tls_pending(&self) -> bool {
        match &self.link {
            Link::Plain(_) => false,
            #[cfg(feature = "tls")]
            Link::Tls(_, tls) => tls.wants_write(),
        }
    }

    /// Output bytes the socket has not taken (not counting TLS records).
    pub(crate) fn unsent(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Where the unsent output starts in [`out`](Self::out).
    pub(crate) fn out_pos(&self) -> usize {
        self.out_pos
    }

    /// Is there output not yet taken by the socket (plaintext, or TLS records)?
    pub(crate) fn pending(&self) -> bool {
        self.unsent() > 0 || self.tls_pending()
    }

    /// The output buffer, to append to; the socket takes `out[out_pos..]`.
    pub(crate) fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// The output buffer, given a pooled buffer first if it has none.
    pub(crate) fn out_from(&mut self, pool: &mut Pool) -> &mut Vec<u8> {
        if self.out.capacity() == 0 {
            self.out = pool.take();
        }
        &mut self.out
    }

    /// Read once: into `scratch` when no input is held (or when `discard`ing, for input that
    /// is read only to be dropped), else after the held input, doubling its buffer up to
    /// `max_held` bytes.
    ///
    /// # Errors
    ///
    /// The socket's or the TLS layer's error, `WouldBlock` included; a TLS error is
    /// `InvalidData`, after the alert rustls prepared has been written.
    pub(crate) fn recv(
        &mut self,
        scratch: &mut [u8],
        discard: bool,
        max_held: usize,
    ) -> io::Result<Recv> {
        let held = self.in_len > 0 && !discard;
        let (result, asked) = if held {
            if self.in_len == self.inbuf.len() && !self.grow_inbuf(max_held) {
                return Ok(Recv::Full);
            }
            let room = self.inbuf.get_mut(self.in_len..).unwrap_or_default();
            let asked = room.len();
            (self.link.read(room), asked)
        } else {
            (self.link.read(scratch), scratch.len())
        };
        let n = result?;
        if n == 0 {
            return Ok(Recv::Eof);
        }
        if held {
            self.in_len += n;
        }
        let drained = n < asked && !self.is_tls();
        Ok(Recv::Data { n, held, drained })
    }

    /// Double the read buffer, up to `max` bytes.
    fn grow_inbuf(&mut self, max: usize) -> bool {
        let len = self.inbuf.len();
        if len >= max {
            return false;
        }
        self.inbuf.resize((len * 2).clamp(4096, max), 0);
        true
    }

    /// Keep unconsumed input that arrived in the shared scratch buffer, in a pooled buffer.
    pub(crate) fn stash(&mut self, pool: &mut Pool, rest: &[u8]) {
        let mut buf = pool.take();
        let size = pool.size().max(rest.len() * 2);
        buf.resize(size, 0);
        if let Some(dst) = buf.get_mut(..rest.len()) {
            dst.copy_from_slice(rest);
        }
        self.inbuf = buf;
        self.in_len = rest.len();
    }

    /// Lend out the held input, `buf[..len]`, for the core to read in place while the output
    /// buffer is written; give it back with [`restore_input`](Self::restore_input).
    pub(crate) fn lend_input(&mut self) -> (Vec<u8>, usize) {
        (std::mem::take(&mut self.inbuf), self.in_len)
    }

    /// Take back the input lent out, of which the first `used` of `len` bytes were consumed:
    /// the rest is kept at the front.
    pub(crate) fn restore_input(&mut self, mut buf: Vec<u8>, len: usize, used: usize) {
        buf.copy_within(used..len, 0);
        self.in_len = len - used;
        self.inbuf = buf;
    }

    /// Forget the held input (the connection is lingering: it is read only to be dropped).
    pub(crate) fn drop_input(&mut self) {
        self.in_len = 0;
    }

    /// Give the read buffer back to the pool if it holds no input.
    pub(crate) fn release_input(&mut self, pool: &mut Pool) {
        if self.in_len == 0 && !self.inbuf.is_empty() {
            pool.give(std::mem::take(&mut self.inbuf));
        }
    }

    /// Write queued output until the socket would block (through the TLS layer, if any).
    /// Returns the bytes written to the socket, and the error that stopped it, if one did.
    /// Once nothing is pending the output buffer goes back to the pool; else the part the
    /// socket took is dropped from its front when that is at least half of it.
    pub(crate) fn flush(&mut self, pool: &mut Pool) -> (usize, io::Result<()>) {
        let sent = match &mut self.link {
            Link::Plain(stream) => write_plain(stream, &self.out, &mut self.out_pos),
            #[cfg(feature = "tls")]
            Link::Tls(stream, tls) => send_tls(tls, stream, &self.out, &mut self.out_pos),
        };
        if !self.pending() {
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > 0 {
                pool.give(std::mem::take(&mut self.out));
            }
        } else if self.out_pos >= self.out.len() / 2 {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        sent
    }

    /// Queue TLS close_notify and try to write it (a clean close).
    pub(crate) fn close_notify(&mut self) {
        #[cfg(feature = "tls")]
        if let Link::Tls(stream, tls) = &mut self.link {
            if !tls.is_handshaking() {
                tls.send_close_notify();
                let _ = send_tls(tls, stream, &[], &mut 0);
            }
        }
    }

    /// Shut down the socket's write side (a FIN after the output already written).
    pub(crate) fn shutdown_write(&mut self) {
        let _ = self.stream().shutdown(Shutdown::Write);
    }

    /// The connection is being removed: its buffers go back to the pool.
    pub(crate) fn release(&mut self, pool: &mut Pool) {
        if self.out.capacity() > 0 {
            pool.give(std::mem::take(&mut self.out));
        }
        if self.inbuf.capacity() > 0 {
            pool.give(std::mem::take(&mut self.inbuf));
        }
    }
}

impl Link {
    /// Read plaintext: from the socket, or through the TLS layer. `Ok(0)` is the end of the
    /// stream (a TCP EOF, or TLS close_notify).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Link::Plain(stream) => stream.read(buf),
            #[cfg(feature = "tls")]
            Link::Tls(stream, tls) => recv_tls(tls, stream, buf),
        }
    }
}

/// Write `out[*pos..]` until the socket would block; returns the bytes written and the error
/// that stopped it, if one did.
fn write_plain(stream: &mut TcpStream, out: &[u8], pos: &mut usize) -> (usize, io::Result<()>) {
    let mut written = 0;
    while *pos < out.len() {
        match stream.write(out.get(*pos..).unwrap_or_default()) {
            Ok(0) => return (written, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                *pos += n;
                written += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (written, Err(e)),
        }
    }
    (written, Ok(()))
}

/// Read plaintext through TLS: drain what rustls has decrypted, else read records from the
/// socket and process them, writing any handshake records rustls wants to send.
#[cfg(feature = "tls")]
fn recv_tls(
    tls: &mut rustls::ServerConnection,
    stream: &mut TcpStream,
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The TCP stream ended without close_notify: an EOF all the same.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        if tls.read_tls(stream)? == 0 {
            return Ok(0);
        }
        if let Err(e) = tls.process_new_packets() {
            // Send the alert rustls queued, then fail the connection.
            let _ = tls.write_tls(stream);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        while tls.wants_write() {
            match tls.write_tls(stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Encrypt `out[*pos..]` as far as rustls's buffer limit allows and write the records until
/// the socket would block; loop while both make progress.
#[cfg(feature = "tls")]
fn send_tls(
    tls: &mut rustls::ServerConnection,
    stream: &mut TcpStream,
    out: &[u8],
    pos: &mut usize,
) -> (usize, io::Result<()>) {
    let mut written = 0;
    loop {
        let mut progress = false;
        if *pos < out.len() {
            match tls.writer().write(out.get(*pos..).unwrap_or_default()) {
                Ok(n) => {
                    *pos += n;
                    progress |= n > 0;
                }
                Err(e) => return (written, Err(e)),
            }
        }
        while tls.wants_write() {
            match tls.write_tls(stream) {
                Ok(0) => return (written, Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    written += n;
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (written, Ok(())),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (written, Err(e)),
            }
        }
        if *pos == out.len() || !progress {
            return (written, Ok(()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream as StdStream};

    use super::*;

    /// A plaintext transport over a blocking loopback socket (so that every read waits for its
    /// bytes), and the peer's end.
    fn pair() -> (Transport, StdStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = StdStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        (Transport::plain(TcpStream::from_std(ours)), peer)
    }

    #[test]
    fn input_goes_to_scratch_and_only_leftovers_are_held() {
        let (mut io, mut peer) = pair();
        let mut pool = Pool::new(64, 4);
        let mut scratch = [0; 8];
        peer.write_all(b"abcdefgh").unwrap();
        let read = io.recv(&mut scratch, false, 1024).unwrap();
        assert!(matches!(
            read,
            Recv::Data {
                n: 8,
                held: false,
                drained: false
            }
        ));
        // The core took 6 bytes: the last 2 are stashed in a pooled buffer.
        io.stash(&mut pool, &scratch[6..]);
        peer.write_all(b"ij").unwrap();
        // Later input goes after the held input, and a short read says the socket is drained.
        let read = io.recv(&mut scratch, false, 1024).unwrap();
        assert!(matches!(
            read,
            Recv::Data {
                n: 2,
                held: true,
                drained: true
            }
        ));
        let (buf, len) = io.lend_input();
        assert_eq!(&buf[..len], b"ghij");
        io.restore_input(buf, len, 3);
        let (buf, len) = io.lend_input();
        assert_eq!(&buf[..len], b"j");
        io.restore_input(buf, len, 1);
        // Empty again: the buffer goes back to the pool, and input goes to scratch again.
        io.release_input(&mut pool);
        assert_eq!(io.inbuf.capacity(), 0);
        peer.write_all(b"k").unwrap();
        let read = io.recv(&mut scratch, false, 1024).unwrap();
        assert!(matches!(
            read,
            Recv::Data {
                n: 1,
                held: false,
                drained: true
            }
        ));
        drop(peer);
        assert!(matches!(
            io.recv(&mut scratch, false, 1024).unwrap(),
            Recv::Eof
        ));
    }

    #[test]
    fn held_input_grows_to_its_bound_and_no_further() {
        let (mut io, mut peer) = pair();
        let mut pool = Pool::new(16, 4);
        let mut scratch = [0; 8];
        // 16 bytes held in a buffer of 32: reads fill it, then double it (to at least 4096
        // bytes) up to the bound of 5000, and then stop.
        io.stash(&mut pool, &[b'x'; 16]);
        peer.write_all(&[b'y'; 5000 - 16]).unwrap();
        let mut total = 0;
        loop {
            match io.recv(&mut scratch, false, 5000).unwrap() {
                Recv::Data { n, held: true, .. } => total += n,
                Recv::Full => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(total, 5000 - 16);
        assert_eq!(io.inbuf.len(), 5000);
        // Input read only to be dropped goes to scratch, past the held input.
        peer.write_all(b"z").unwrap();
        let read = io.recv(&mut scratch, true, 5000).unwrap();
        assert!(matches!(
            read,
            Recv::Data {
                n: 1,
                held: false,
                drained: true
            }
        ));
        io.release(&mut pool);
        assert_eq!(io.inbuf.capacity(), 0);
    }

    #[test]
    fn flushed_output_gives_its_buffer_back_and_shutdown_sends_a_fin() {
        let (mut io, mut peer) = pair();
        let mut pool = Pool::new(64, 4);
        io.out_from(&mut pool).extend_from_slice(b"hello");
        assert_eq!(io.unsent(), 5);
        let (written, result) = io.flush(&mut pool);
        assert!(result.is_ok());
        assert_eq!(written, 5);
        assert!(!io.pending());
        assert_eq!(io.out.capacity(), 0);
        io.close_notify();
        io.shutdown_write();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"hello");
    }
}
