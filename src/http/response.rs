//! Responses: what the application declares ([`ResponseHead`], [`ResponseBody`]), the cached
//! `Date` value ([`DateCache`]), and the serialisation helpers [`ServerConn`](super::ServerConn)
//! uses to write them into a caller-supplied buffer.
//!
//! The writer owns the framing fields (`Content-Length`, `Transfer-Encoding`, `Connection`,
//! `Date`) so the application cannot contradict the connection state, and it refuses header
//! names and values that would inject lines (response splitting).

use super::token::{is_field_value_byte, is_token};
use super::ResponseError;

/// How the response body will be delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseBody {
    /// No body. Written as `Content-Length: 0` where a length is meaningful.
    Empty,
    /// Exactly this many bytes, announced with `Content-Length`.
    Length(u64),
    /// Streamed in chunks of unknown total length. To an HTTP/1.0 client, which cannot decode
    /// chunked, the body is sent raw and delimited by closing the connection.
    Chunked,
}

/// A response head as the application describes it.
///
/// ```
/// use berth::http::{ResponseBody, ResponseHead};
/// let head = ResponseHead {
///     status: 200,
///     headers: &[("Content-Type", b"text/plain")],
///     body: ResponseBody::Length(5),
///     close: false,
/// };
/// # let _ = head;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ResponseHead<'a> {
    /// The status code, 101 or 200..=999 (interim 100 is written by
    /// [`ServerConn::write_continue`](super::ServerConn::write_continue)).
    pub status: u16,
    /// Header fields other than the framing ones, in order.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// How the body is delimited.
    pub body: ResponseBody,
    /// Close the connection after this response even if the client would keep it open.
    pub close: bool,
}

/// The current time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7),
/// formatted at most once per second.
///
/// The clock is not read here: pass the Unix time in seconds to [`DateCache::update`] (the
/// runtime does so from its single clock).
///
/// ```
/// let mut date = berth::http::DateCache::new(784_111_777);
/// assert_eq!(date.as_str(), "Sun, 06 Nov 1994 08:49:37 GMT");
/// date.update(784_111_777 + 86_400);
/// assert_eq!(date.as_str(), "Mon, 07 Nov 1994 08:49:37 GMT");
/// ```
#[derive(Debug, Clone)]
pub struct DateCache {
    secs: u64,
    text: [u8; 29],
}

/// The latest instant an IMF-fixdate's four-digit year can show: 9999-12-31T23:59:59Z.
const MAX_DATE_SECS: u64 = 253_402_300_799;

impl DateCache {
    /// A cache holding the date for `unix_secs`.
    pub fn new(unix_secs: u64) -> Self {
        let mut cache = DateCache {
            secs: unix_secs,
            text: [b' '; 29],
        };
        cache.format();
        cache
    }

    /// Move the cache to `unix_secs`; formats only when the second changed.
    #[inline]
    pub fn update(&mut self, unix_secs: u64) {
        if unix_secs != self.secs {
            self.secs = unix_secs;
            self.format();
        }
    }

    /// The formatted date, 29 ASCII bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8; 29] {
        &self.text
    }

    /// The formatted date.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.text).unwrap_or("Thu, 01 Jan 1970 00:00:00 GMT")
    }

    fn format(&mut self) {
        let secs = self.secs.min(MAX_DATE_SECS);
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        // 1970-01-01 was a Thursday; 0 is Sunday.
        let weekday = (days + 4) % 7;
        let t = &mut self.text;
        t[..3].copy_from_slice(weekday_name(weekday));
        t[3] = b',';
        t[4] = b' ';
        two_digits(&mut t[5..7], day);
        t[7] = b' ';
        t[8..11].copy_from_slice(month_name(month));
        t[11] = b' ';
        two_digits(&mut t[12..14], year / 100);
        two_digits(&mut t[14..16], year % 100);
        t[16] = b' ';
        two_digits(&mut t[17..19], rem / 3600);
        t[19] = b':';
        two_digits(&mut t[20..22], rem % 3600 / 60);
        t[22] = b':';
        two_digits(&mut t[23..25], rem % 60);
        t[25..29].copy_from_slice(b" GMT");
    }
}

fn two_digits(out: &mut [u8], n: u64) {
    if let [tens, ones] = out {
        *tens = b'0' + (n / 10 % 10) as u8;
        *ones = b'0' + (n % 10) as u8;
    }
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), for dates from 1970 on.
/// The proleptic Gregorian algorithm of H. Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn weekday_name(d: u64) -> &'static [u8; 3] {
    match d {
        0 => b"Sun",
        1 => b"Mon",
        2 => b"Tue",
        3 => b"Wed",
        4 => b"Thu",
        5 => b"Fri",
        _ => b"Sat",
    }
}

fn month_name(m: u64) -> &'static [u8; 3] {
    match m {
        1 => b"Jan",
        2 => b"Feb",
        3 => b"Mar",
        4 => b"Apr",
        5 => b"May",
        6 => b"Jun",
        7 => b"Jul",
        8 => b"Aug",
        9 => b"Sep",
        10 => b"Oct",
        11 => b"Nov",
        _ => b"Dec",
    }
}

/// The reason phrase berth writes for `status` (RFC 9110 §15); empty for unregistered codes,
/// which the grammar allows.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// `HTTP/1.1 NNN Reason\r\n`.
pub(crate) fn write_status_line(out: &mut Vec<u8>, status: u16) {
    let digits = [
        b'0' + (status / 100 % 10) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ];
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&digits);
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `name: value\r\n`.
#[inline]
pub(crate) fn write_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `n` in decimal, without allocating.
#[inline]
pub(crate) fn write_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(i..).unwrap_or_default());
}

/// `n` in lowercase hex, as a chunk size.
#[inline]
pub(crate) fn write_hex(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b"0123456789abcdef"
                .get((n & 0xf) as usize)
                .copied()
                .unwrap_or(b'0');
        }
        n >>= 4;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(i..).unwrap_or_default());
}

/// Check the application's header fields: tokens for names, no control bytes in values, and
/// none of the fields the writer owns.
pub(crate) fn check_headers(headers: &[(&str, &[u8])]) -> Result<(), ResponseError> {
    for &(name, value) in headers {
        if !is_token(name.as_bytes()) || !value.iter().all(|&b| is_field_value_byte(b)) {
            return Err(ResponseError::InvalidHeader);
        }
        let reserved = match name.len() {
            4 => name.eq_ignore_ascii_case("date"),
            10 => name.eq_ignore_ascii_case("connection"),
            14 => name.eq_ignore_ascii_case("content-length"),
            17 => name.eq_ignore_ascii_case("transfer-encoding"),
            _ => false,
        };
        if reserved {
            return Err(ResponseError::ReservedHeader);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_matches_rfc_9110_example() {
        assert_eq!(
            DateCache::new(784_111_777).as_str(),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    #[test]
    fn date_handles_epoch_leap_days_and_far_future() {
        assert_eq!(DateCache::new(0).as_str(), "Thu, 01 Jan 1970 00:00:00 GMT");
        // 2024-02-29T23:59:59Z, a leap day.
        assert_eq!(
            DateCache::new(1_709_251_199).as_str(),
            "Thu, 29 Feb 2024 23:59:59 GMT"
        );
        // 2000-03-01, after the 400-year leap day.
        assert_eq!(
            DateCache::new(951_868_800).as_str(),
            "Wed, 01 Mar 2000 00:00:00 GMT"
        );
        assert_eq!(
            DateCache::new(u64::MAX).as_str(),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
    }

    #[test]
    fn date_update_reformats_only_on_change() {
        let mut d = DateCache::new(784_111_777);
        d.update(784_111_778);
        assert_eq!(d.as_str(), "Sun, 06 Nov 1994 08:49:38 GMT");
    }

    #[test]
    fn numbers_serialise_without_allocating_helpers() {
        let mut out = Vec::new();
        write_decimal(&mut out, 0);
        out.push(b' ');
        write_decimal(&mut out, u64::MAX);
        out.push(b' ');
        write_hex(&mut out, 0);
        out.push(b' ');
        write_hex(&mut out, 0x1a2b);
        out.push(b' ');
        write_hex(&mut out, u64::MAX);
        assert_eq!(out, b"0 18446744073709551615 0 1a2b ffffffffffffffff");
    }

    #[test]
    fn status_line_has_reason_or_empty_phrase() {
        let mut out = Vec::new();
        write_status_line(&mut out, 404);
        write_status_line(&mut out, 599);
        assert_eq!(out, b"HTTP/1.1 404 Not Found\r\nHTTP/1.1 599 \r\n");
    }

    #[test]
    fn header_checks_refuse_injection_and_reserved_names() {
        assert_eq!(check_headers(&[("X-A", b"ok\tvalue")]), Ok(()));
        assert_eq!(
            check_headers(&[("X-A", b"a\r\nSet-Cookie: x")]),
            Err(ResponseError::InvalidHeader)
        );
        assert_eq!(
            check_headers(&[("X A", b"v")]),
            Err(ResponseError::InvalidHeader)
        );
        assert_eq!(
            check_headers(&[("content-length", b"5")]),
            Err(ResponseError::ReservedHeader)
        );
        assert_eq!(
            check_headers(&[("Date", b"x")]),
            Err(ResponseError::ReservedHeader)
        );
    }
}
