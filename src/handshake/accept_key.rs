//! `Sec-WebSocket-Accept` (RFC 6455 §4.2.2): base64 of the SHA-1 of the client's key and a
//! fixed GUID.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID RFC 6455 §1.3 appends to the key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`: 28 ASCII bytes.
///
/// ```
/// let accept = berth::handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
/// assert_eq!(&accept, b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="); // RFC 6455 §1.3
/// ```
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    let digest = sha.finalize();
    let mut out = [0u8; 28];
    // 20 bytes always encode to exactly 28 with padding.
    let _ = STANDARD.encode_slice(digest, &mut out);
    out
}

/// The `Sec-WebSocket-Key` for a 16-byte nonce: 24 ASCII bytes.
pub fn client_key(nonce: [u8; 16]) -> [u8; 24] {
    let mut out = [0u8; 24];
    // 16 bytes always encode to exactly 24 with padding.
    let _ = STANDARD.encode_slice(nonce, &mut out);
    out
}

/// Does `key` decode as base64 to exactly 16 bytes (RFC 6455 §4.2.1, item 5)?
pub(crate) fn is_valid_key(key: &[u8]) -> bool {
    let mut out = [0u8; 18];
    key.len() == 24 && STANDARD.decode_slice(key, &mut out) == Ok(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_section_1_3_example() {
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn client_keys_are_valid_keys() {
        let key = client_key(*b"the sample nonce");
        assert_eq!(&key, b"dGhlIHNhbXBsZSBub25jZQ==");
        assert!(is_valid_key(&key));
    }

    #[test]
    fn keys_must_decode_to_16_bytes() {
        assert!(!is_valid_key(b""));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ")); // unpadded
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZXg=")); // 17 bytes
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25j!Q==")); // not base64
        assert!(!is_valid_key(b"c2hvcnQ=")); // 5 bytes
    }
}
