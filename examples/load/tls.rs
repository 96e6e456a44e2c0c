//! TLS for wss:// and https://: the client configuration, built once per run, and each
//! connection's rustls session, read and written over the same edge-triggered socket.

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
// rustls through tokio-rustls's re-export: the same rustls 0.23 (ring provider) as berth's `tls`
// feature, and there for the examples whichever of berth's features are on.
use tokio_rustls::rustls::{self, pki_types, ClientConfig, ClientConnection};

use crate::args::TlsArgs;
use crate::link::{Got, Outbox};
use crate::{BATCH_BYTES, MAX_IO_PER_EVENT};

/// The TLS client configuration for a run: built once, shared by every connection.
pub(crate) struct TlsSetup {
    config: Arc<ClientConfig>,
    name: pki_types::ServerName<'static>,
}

impl TlsSetup {
    /// Trust the certificates in `args.ca`, and nothing else; offer ALPN `http/1.1`.
    pub(crate) fn new(args: &TlsArgs) -> Result<Self, String> {
        let ca = args.ca.display();
        let mut roots = rustls::RootCertStore::empty();
        let certs =
            <pki_types::CertificateDer<'_> as pki_types::pem::PemObject>::pem_file_iter(&args.ca)
                .map_err(|e| format!("--ca {ca}: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("--ca {ca}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("--ca {ca}: a certificate rustls cannot use: {e}"))?;
        }
        if roots.is_empty() {
            return Err(format!("--ca {ca}: no PEM certificate in it"));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        if !args.resume {
            // Every handshake a full one: the cost a new visitor brings, and a figure that
            // does not depend on how many sessions the server caches.
            config.resumption = rustls::client::Resumption::disabled();
        }
        let name = pki_types::ServerName::try_from(args.server_name.clone())
            .map_err(|e| format!("{}: not a server name for TLS: {e}", args.server_name))?;
        Ok(TlsSetup {
            config: Arc::new(config),
            name,
        })
    }

    /// A client session for one new connection; its ClientHello is queued at once.
    pub(crate) fn connect(&self) -> io::Result<Box<Tls>> {
        let mut conn = ClientConnection::new(Arc::clone(&self.config), self.name.clone())
            .map_err(io::Error::other)?;
        // Room for a whole batch of pre-encoded units in one write into rustls (its default
        // is 64 KiB, less than one 64 KiB frame with its header).
        conn.set_buffer_limit(Some(BATCH_BYTES));
        Ok(Box::new(Tls {
            conn,
            drained: false,
            close_notify: CloseNotify::No,
            handshake_seen: false,
            error: None,
        }))
    }
}

/// Where close_notify stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum CloseNotify {
    No,
    /// To be sent once the bytes queued before it are handed to rustls.
    Queued,
    Sent,
}

/// One connection's TLS session, on rustls's buffered API: `read_tls` moves socket bytes into
/// rustls, `process_new_packets` decrypts them, `reader()` hands out plaintext; `writer()`
/// takes plaintext and encrypts it, `write_tls` moves the records to the socket. The mio
/// registration stays edge-triggered for both directions, as for plain TCP: nothing is
/// re-registered from `wants_read`/`wants_write`; a read drains the socket and a flush
/// writes until rustls is empty or the socket is full, and the next edge resumes either.
///
/// Allocations per message. This code allocates nothing per message over TLS either: the
/// plaintext goes from the shared pre-encoded buffer into `writer()` and from `reader()` into
/// the connection's receive buffer, and the socket adapters below live on the stack. rustls
/// 0.23's buffered API allocates inside, though: `writer()` encrypts each record into a new
/// `Vec` (queued for `write_tls`), and `process_new_packets` moves each received
/// application-data record into a new `Vec` of plaintext for `reader()`. That is two
/// allocations per record: with one 16 B message per record (one in flight), two per message
/// (valgrind's DHAT, 10 connections for 2 s: 43,121 echoes, 43,122 and 43,152 blocks from
/// those two sites, 1,304 from everything else together, setup included); units written
/// together share records.
/// Its receive buffer also shrinks to 4 KiB whenever it empties, so larger records regrow it:
/// a 64 KiB echo costs about 15 allocations (5 records each way, 4 regrowths). Only rustls's
/// unbuffered API, in which the caller owns the buffers, avoids these, and berth does not
/// build on it (STYLE.md §1.2).
pub(crate) struct Tls {
    pub(crate) conn: ClientConnection,
    /// The last socket read returned less than it had room for (or nothing): the socket is
    /// drained until the next readable edge.
    drained: bool,
    pub(crate) close_notify: CloseNotify,
    /// The handshake's end has been reported (see [`Link::take_handshake`]).
    ///
    /// [`Link::take_handshake`]: crate::link::Link::take_handshake
    pub(crate) handshake_seen: bool,
    /// Why the session failed, for the report.
    pub(crate) error: Option<rustls::Error>,
}

impl Tls {
    /// Fill `free` with plaintext: what rustls holds, else what socket reads bring once
    /// decrypted. Returns the bytes copied (possibly none) and what to tell
    /// [`Client::on_ready`]: `Bytes(true)` only when rustls has no more plaintext and the last
    /// socket read was short, so that the caller stops reading exactly when a plain connection
    /// would.
    ///
    /// [`Client::on_ready`]: crate::runner::Client::on_ready
    pub(crate) fn read(
        &mut self,
        stream: &mut TcpStream,
        free: &mut [u8],
    ) -> io::Result<(usize, Got)> {
        // Each round either hands out plaintext or reads the socket; a record is at most
        // 16 KiB and rustls reads the socket in steps of at least 4 KiB, so a few rounds see
        // a record through.
        let mut read_socket = false;
        for _ in 0..MAX_IO_PER_EVENT {
            match self.conn.reader().read(free) {
                // The server's close_notify: a clean end of the stream.
                Ok(0) => return Ok((0, Got::Eof)),
                Ok(n) => return Ok((n, Got::Bytes(n < free.len() && self.drained))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // TCP closed without close_notify. Servers commonly do that once the WebSocket
                // close handshake is done, and every message was already checked, so it is an
                // end of stream like any other here.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok((0, Got::Eof)),
                Err(e) => return Err(e),
            }
            if read_socket && self.drained {
                // What the short read brought made no plaintext (a handshake message, part of
                // a record). Reported as a short read, not as WouldBlock, so that the caller
                // still reads on to the EOF when the event also carried the peer's FIN.
                return Ok((0, Got::Bytes(true)));
            }
            let mut socket = SocketRead {
                stream,
                drained: false,
            };
            read_socket = true;
            match self.conn.read_tls(&mut socket) {
                // Ok(0) is TCP's end: the reader says next round whether it was clean.
                Ok(_) => self.drained = socket.drained,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.drained = true;
                    return Ok((0, Got::Blocked));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.conn.process_new_packets() {
                // rustls has queued an alert for the server; the caller's `fail` writes it.
                self.error.get_or_insert(e.clone());
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        // Still mid-record after all those rounds: come back soon.
        Ok((0, Got::Bytes(false)))
    }

    /// Hand owed bytes to rustls and its records to the socket, until both are empty or the
    /// socket is full. `Ok(true)`: stopped early with more to write.
    pub(crate) fn flush(
        &mut self,
        stream: &mut TcpStream,
        out: &mut Outbox,
        wire: &[u8],
        unit: usize,
    ) -> io::Result<bool> {
        for _ in 0..MAX_IO_PER_EVENT {
            // Plaintext in: encrypted at once, or held until the TLS handshake is done (the
            // upgrade request, written right after the connect).
            let mut stalled = false;
            if let Some((chunk, ctrl)) = out.next_chunk(wire) {
                let n = self.conn.writer().write(chunk)?;
                out.advance(n, ctrl, unit);
                stalled = n == 0;
            } else if self.close_notify == CloseNotify::Queued {
                self.conn.send_close_notify();
                self.close_notify = CloseNotify::Sent;
            }
            if !self.conn.wants_write() {
                if out.is_empty() || stalled {
                    // All written; or rustls takes no more before its handshake ends, and the
                    // read that ends it flushes again.
                    return Ok(false);
                }
                continue;
            }
            // Records out, in one writev of up to 64 of them.
            let mut socket = SocketWrite {
                stream,
                full: false,
            };
            match self.conn.write_tls(&mut socket) {
                // A short write means the socket buffer is full: the writable edge that
                // follows resumes here.
                Ok(_) if socket.full => return Ok(false),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(!out.is_empty() || self.conn.wants_write())
    }
}

/// The socket as rustls reads it, noting a short read: the socket is drained, and the next
/// readable edge says when more has come (see [`Client::on_ready`]).
///
/// [`Client::on_ready`]: crate::runner::Client::on_ready
struct SocketRead<'a> {
    stream: &'a mut TcpStream,
    drained: bool,
}

impl Read for SocketRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.drained = n < buf.len();
        Ok(n)
    }
}

/// The socket as rustls writes to it, noting a short write: the socket buffer is full.
struct SocketWrite<'a> {
    stream: &'a mut TcpStream,
    full: bool,
}

impl Write for SocketWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.stream.write(buf)?;
        self.full = n < buf.len();
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = self.stream.write_vectored(bufs)?;
        self.full = n < bufs.iter().map(|b| b.len()).sum();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
