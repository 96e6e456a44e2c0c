//! UTF-8 validation of text messages: whole, or incrementally as a message arrives in pieces.
//!
//! Each piece is checked as it arrives (with `simdutf8`), carrying at most three bytes of a code
//! point split across pieces, so invalid text fails at the piece that holds the first bad
//! byte rather than when the message ends (RFC 6455 §8.1; Autobahn cases 6.4.*).
//!
//! # Unsafe
//!
//! This is the crate's one module with `unsafe` code: two calls to
//! `core::str::from_utf8_unchecked`, each on bytes this module has proven to be UTF-8.
//! `benches/ws_codec.rs` shows why: validating a short text message a second time only to
//! obtain a `&str` cost more than decoding its frame, and a reassembled message was validated
//! piece by piece already. The invariant is that [`as_text`] and [`Reassembly::text`] return a
//! `&str` only for bytes that passed validation; [`Reassembly`]'s fields are private to this
//! module so nothing else can add bytes behind the validator's back. The unit tests below and
//! the `ws_server`/`ws_client` fuzz targets exercise both.
#![allow(unsafe_code)]

/// Below this length a text message is checked for ASCII first: one word-at-a-time pass.
const SHORT: usize = 64;

/// `bytes` as `&str` if they are UTF-8.
#[inline]
pub(crate) fn as_text(bytes: &[u8]) -> Option<&str> {
    if bytes.len() < SHORT && bytes.is_ascii() {
        // SAFETY: `is_ascii` just checked every byte is below 0x80, and ASCII is UTF-8.
        return Some(unsafe { core::str::from_utf8_unchecked(bytes) });
    }
    simdutf8::basic::from_utf8(bytes).ok()
}

/// Validation state across the pieces of one message.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Utf8Validator {
    /// The start of a code point the previous piece ended inside.
    partial: [u8; 4],
    partial_len: usize,
}

/// The bytes were not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid;

impl Utf8Validator {
    /// Check the next piece.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), Invalid> {
        if self.partial_len > 0 {
            // Finish the split code point before checking the rest.
            let width: usize = match self.partial[0] {
                0xc2..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf4 => 4,
                _ => return Err(Invalid),
            };
            let need = width.saturating_sub(self.partial_len);
            let take = need.min(bytes.len());
            let (head, rest) = bytes.split_at_checked(take).ok_or(Invalid)?;
            let total = self.partial_len + take;
            let mut tmp = self.partial;
            tmp.get_mut(self.partial_len..total)
                .ok_or(Invalid)?
                .copy_from_slice(head);
            let candidate = tmp.get(..total).ok_or(Invalid)?;
            match simdutf8::compat::from_utf8(candidate) {
                Ok(_) if take == need => {}
                // Still a valid prefix, and this piece ran out.
                Err(e) if e.error_len().is_none() && take < need => {
                    self.partial = tmp;
                    self.partial_len = total;
                    return Ok(());
                }
                _ => return Err(Invalid),
            }
            self.partial_len = 0;
            bytes = rest;
        }
        match simdutf8::compat::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = bytes.get(e.valid_up_to()..).ok_or(Invalid)?;
                let dst = self.partial.get_mut(..tail.len()).ok_or(Invalid)?;
                dst.copy_from_slice(tail);
                self.partial_len = tail.len();
                Ok(())
            }
            Err(_) => Err(Invalid),
        }
    }

    /// The message ended: no code point may be left unfinished.
    pub(crate) fn finish(&mut self) -> Result<(), Invalid> {
        let ok = self.partial_len == 0;
        *self = Utf8Validator::default();
        if ok {
            Ok(())
        } else {
            Err(Invalid)
        }
    }
}

/// The reassembly buffer of a fragmented (or streamed) message. Text is validated as it is
/// appended.
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    /// INVARIANT: when `text` is set, `bytes` is exactly what went through `validator.feed`
    /// since the last `start`, every call having succeeded.
    bytes: Vec<u8>,
    validator: Utf8Validator,
    text: bool,
    /// INVARIANT: set only by `finish` after `validator.finish` succeeded for a text message;
    /// cleared by every change to `bytes`.
    complete_text: bool,
}

impl Reassembly {
    /// Begin a message; keeps the allocation.
    pub(crate) fn start(&mut self, text: bool) {
        self.bytes.clear();
        self.validator = Utf8Validator::default();
        self.text = text;
        self.complete_text = false;
    }

    /// Forget the delivered message; keeps the allocation.
    pub(crate) fn clear(&mut self) {
        self.start(false);
    }

    /// Give the buffer's memory back to the allocator, keeping what it holds.
    pub(crate) fn shrink(&mut self) {
        self.bytes.shrink_to_fit();
    }

    /// Bytes of memory the buffer holds on to.
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Append a piece, validating it first if this is text.
    pub(crate) fn push(&mut self, piece: &[u8]) -> Result<(), Invalid> {
        self.complete_text = false;
        if self.text {
            self.validator.feed(piece)?;
        }
        self.bytes.extend_from_slice(piece);
        Ok(())
    }

    /// The last piece arrived: a text message must not end inside a code point.
    pub(crate) fn finish(&mut self) -> Result<(), Invalid> {
        if self.text {
            self.validator.finish()?;
            self.complete_text = true;
        }
        Ok(())
    }

    /// Bytes held.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The message's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The finished text message, or `None` if the buffer does not hold one.
    pub(crate) fn text(&self) -> Option<&str> {
        if !self.complete_text {
            return None;
        }
        debug_assert!(simdutf8::basic::from_utf8(&self.bytes).is_ok());
        // SAFETY: `complete_text` is set only after every byte of `bytes` went through
        // `validator.feed` without error (both happen in `push`, the only writer) and
        // `validator.finish` found no code point left open; any later `push` or `start`
        // clears it.
        Some(unsafe { core::str::from_utf8_unchecked(&self.bytes) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_text_accepts_exactly_utf8() {
        assert_eq!(as_text(b"short ascii"), Some("short ascii"));
        assert_eq!(as_text("héllo".as_bytes()), Some("héllo"));
        assert_eq!(as_text(&[b'a'; 200]).map(str::len), Some(200));
        assert_eq!(as_text(b"bad \xff"), None);
        assert_eq!(as_text(b"\x80"), None);
        let mut long = vec![b'a'; 100];
        long[99] = 0xc3;
        assert_eq!(as_text(&long), None);
        // Every byte value alone: only ASCII is UTF-8.
        for b in 0..=255u8 {
            assert_eq!(as_text(&[b]).is_some(), b < 0x80, "{b:#x}");
        }
    }

    #[test]
    fn reassembled_text_is_only_what_was_validated() {
        let text = "pièce ✓ par pièce 😀";
        let mut r = Reassembly::default();
        r.start(true);
        for piece in text.as_bytes().chunks(3) {
            assert_eq!(r.text(), None);
            r.push(piece).unwrap();
        }
        assert_eq!(r.text(), None, "not finished");
        r.finish().unwrap();
        assert_eq!(r.text(), Some(text));
        // Invalid bytes are refused and never become text.
        r.start(true);
        r.push(b"ok").unwrap();
        assert_eq!(r.push(b"\xff"), Err(Invalid));
        assert_eq!(r.len(), 2);
        // A message ending inside a code point is refused.
        r.start(true);
        r.push(b"\xe2\x82").unwrap();
        assert_eq!(r.finish(), Err(Invalid));
        assert_eq!(r.text(), None);
        // Binary is never text.
        r.start(false);
        r.push(b"\xff").unwrap();
        r.finish().unwrap();
        assert_eq!((r.text(), r.bytes()), (None, &b"\xff"[..]));
    }

    fn pieces_valid(pieces: &[&[u8]]) -> bool {
        let mut v = Utf8Validator::default();
        pieces.iter().all(|p| v.feed(p).is_ok()) && v.finish().is_ok()
    }

    #[test]
    fn accepts_code_points_split_at_every_byte() {
        let text = "aé€😀z".as_bytes();
        for i in 0..=text.len() {
            for j in i..=text.len() {
                assert!(
                    pieces_valid(&[&text[..i], &text[i..j], &text[j..]]),
                    "{i} {j}"
                );
            }
        }
    }

    #[test]
    fn fails_at_the_piece_with_the_first_bad_byte() {
        let mut v = Utf8Validator::default();
        assert!(v.feed(b"hello ").is_ok());
        // 0xC0 can never start a valid sequence: refused now, not at the end.
        assert_eq!(v.feed(b"\xc0"), Err(Invalid));
        let mut v = Utf8Validator::default();
        // Overlong / surrogate prefixes fail as soon as the second byte shows them.
        assert_eq!(v.feed(b"\xe0\x80"), Err(Invalid));
        let mut v = Utf8Validator::default();
        assert!(v.feed(b"\xed").is_ok());
        assert_eq!(v.feed(b"\xa0\x80"), Err(Invalid));
        let mut v = Utf8Validator::default();
        assert!(v.feed(b"\xf4").is_ok());
        assert_eq!(v.feed(b"\x90"), Err(Invalid));
    }

    #[test]
    fn a_completed_code_point_may_be_followed_by_another_split_one() {
        assert!(pieces_valid(&[b"\xe2", b"\x82\xac\xe2\x82", b"\xac"]));
        assert!(pieces_valid(&[
            b"\xf0\x9f",
            b"\x98\x80\xf0",
            b"\x9f\x98\x80"
        ]));
    }

    #[test]
    fn a_split_point_followed_by_ascii_is_invalid() {
        assert!(!pieces_valid(&[b"\xe2\x82", b"a"]));
        assert!(!pieces_valid(&[b"\xe2", b"\x82a"]));
    }

    #[test]
    fn unfinished_code_point_at_the_end_is_invalid() {
        assert!(!pieces_valid(&[b"ok\xe2\x82"]));
        assert!(!pieces_valid(&[b"\xf0", b"\x9f", b"\x98"]));
        assert!(pieces_valid(&[b"\xf0", b"\x9f", b"\x98", b"\x80"]));
    }
}
