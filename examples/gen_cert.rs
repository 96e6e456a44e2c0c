//! Make a self-signed certificate and its key for `localhost` and `127.0.0.1`, for the TLS runs
//! of the end-to-end benchmark and for trying wss:// and https:// by hand.
//!
//! ```text
//! cargo run --example gen_cert -- DIR
//! cargo run --release --example peer_tokio_tungstenite -- 9001 1 \
//!     --tls-cert DIR/cert.pem --tls-key DIR/key.pem
//! cargo run --release --example load -- ws-echo --url wss://localhost:9001/ --ca DIR/cert.pem
//! ```
//!
//! It writes `DIR/cert.pem` (the certificate, which is also what a client trusts: `--ca`) and
//! `DIR/key.pem` (a PKCS#8 ECDSA P-256 key, readable by its owner only), creating `DIR` if
//! needed and replacing files of those names. The subject alternative names are the DNS name
//! `localhost` and the IP address `127.0.0.1`, so both `wss://localhost:PORT/` (with SNI) and
//! `wss://127.0.0.1:PORT/` (without) verify. The certificate is not a CA and is for tests only:
//! its key is written unencrypted.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: gen_cert DIR   (writes DIR/cert.pem and DIR/key.pem)");
        return ExitCode::from(1);
    };
    match generate(Path::new(&dir)) {
        Ok(()) => {
            eprintln!("gen_cert: wrote {dir}/cert.pem and {dir}/key.pem (localhost, 127.0.0.1)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen_cert: {e}");
            ExitCode::from(1)
        }
    }
}

fn generate(dir: &Path) -> Result<(), String> {
    // rcgen takes a name that parses as an IP address as an iPAddress SAN, the rest as DNS names.
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let pair = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("generating the certificate: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    write(&dir.join("cert.pem"), pair.cert.pem().as_bytes(), 0o644)?;
    write(
        &dir.join("key.pem"),
        pair.signing_key.serialize_pem().as_bytes(),
        0o600,
    )
}

/// Replace `path` with `bytes`. `mode` applies when the file is created; an existing file is
/// removed first so that an old, wider mode does not carry over to a new key.
fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("{}: {e}", path.display()))
}
