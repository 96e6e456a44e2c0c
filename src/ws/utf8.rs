//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! Each piece is checked as it arrives (with `simdutf8`), carrying at most three bytes of a code
//! point split across pieces, so invalid text fails at the piece that holds the first bad
//! byte rather than when the message ends (RFC 6455 §8.1; Autobahn cases 6.4.*).

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

#[cfg(test)]
mod tests {
    use super::*;

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
