//! Byte classes and list syntax from RFC 9110 §5.6, shared by the request parser, the chunked
//! decoder and the response writer. Private to `http`.

/// A 256-entry byte class: ASCII letters and digits, and the bytes of `extra`.
// `i < 256` indexes a 256-entry array; `extra[j]` is a `u8`.
#[allow(clippy::indexing_slicing)]
pub(crate) const fn alnum_and(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).is_ascii_alphanumeric();
        i += 1;
    }
    let mut j = 0;
    while j < extra.len() {
        t[extra[j] as usize] = true;
        j += 1;
    }
    t
}

/// ```notrust
/// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
///         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
/// ```
static TCHAR: [bool; 256] = alnum_and(b"!#$%&'*+-.^_`|~");

/// Is `b` a `tchar`?
#[inline]
// A `u8` cannot index past a 256-entry table.
#[allow(clippy::indexing_slicing)]
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// Is `s` a non-empty `token`?
#[inline]
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// ```notrust
/// field-vchar = VCHAR / obs-text ; plus SP and HTAB inside a field value
/// ```
#[inline]
pub(crate) fn is_field_value_byte(b: u8) -> bool {
    b == b'\t' || (b >= b' ' && b != 0x7f)
}

/// Is `b` optional whitespace (`OWS = *( SP / HTAB )`)?
#[inline]
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` without leading and trailing OWS.
#[inline]
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ows(b)).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
}

/// The non-empty elements of a comma-separated list (`#element`, RFC 9110 §5.6.1), trimmed of
/// OWS. Empty elements are skipped, as the RFC requires recipients to do.
#[inline]
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// Parse `1*DIGIT` into a `u64`; `None` for anything else, overflow included.
#[inline]
pub(crate) fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tchar_table_is_exactly_the_rfc_9110_set() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), expected, "{b:#04x}");
        }
    }

    #[test]
    fn tokens_follow_rfc_9110() {
        assert!(is_token(b"chunked"));
        assert!(is_token(b"x-Custom_1.2~"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a:b"));
        assert!(!is_token(b"a\"b"));
    }

    #[test]
    fn lists_skip_empty_elements_and_trim_ows() {
        let v: Vec<&[u8]> = list_elements(b" ,a ,\tb,, c ,").collect();
        assert_eq!(v, [&b"a"[..], b"b", b"c"]);
    }

    #[test]
    fn decimal_rejects_signs_spaces_and_overflow() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"0042"), Some(42));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_decimal(b"+1"), None);
        assert_eq!(parse_decimal(b"1 2"), None);
        assert_eq!(parse_decimal(b""), None);
    }
}
