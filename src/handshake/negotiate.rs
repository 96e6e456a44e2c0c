//! `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` offers, parsed lazily in one linear
//! pass each, without allocating.
//!
//! ```notrust
//! Sec-WebSocket-Extensions = extension-list
//! extension-list  = 1#extension
//! extension       = extension-token *( ";" extension-param )
//! extension-param = token [ "=" (token / quoted-string) ]
//! ```

use super::HandshakeError;
use crate::http::token::{is_tchar, list_elements};
use crate::http::Header;

/// Most extension offers (or parameters of one offer) berth looks at before refusing the
/// handshake: real clients send one or two, each with a few parameters.
pub const MAX_EXTENSION_ITEMS: usize = 16;

/// The subprotocols a client offered, across every `Sec-WebSocket-Protocol` line, in order.
pub(crate) fn protocols<'h, 'b>(headers: &'h [Header<'b>]) -> impl Iterator<Item = &'b str> + 'h {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-protocol"))
        .flat_map(|h| list_elements(h.value))
        .filter_map(|p| core::str::from_utf8(p).ok())
}

/// Is every element of every `Sec-WebSocket-Protocol` line a token?
///
/// ```notrust
/// Sec-WebSocket-Protocol = 1#token     ; RFC 6455 §4.3, with RFC 9110 §5.6.2 token
/// ```
pub(crate) fn protocols_are_tokens(headers: &[Header<'_>]) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-protocol"))
        .flat_map(|h| list_elements(h.value))
        .all(|p| p.iter().all(|&b| is_tchar(b)))
}

/// One extension offer: its name and its raw parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionOffer<'b> {
    /// The extension token, such as `permessage-deflate`.
    pub name: &'b str,
    /// The validated parameter text after the name (`; a=1; b`), for [`ExtensionOffer::params`].
    params: &'b [u8],
}

impl<'b> ExtensionOffer<'b> {
    /// The parameters as `(name, value)`, with quotes removed from quoted values (escapes, which
    /// no registered extension uses, are left as they are).
    pub fn params(&self) -> impl Iterator<Item = (&'b str, Option<&'b str>)> {
        Params { rest: self.params }
    }
}

/// Iterates over an offer's parameter text, which [`parse_offer`] validated:
/// `*( OWS ";" OWS token [ OWS "=" OWS ( token / quoted-string ) ] ) OWS`. A `;` inside a
/// quoted string belongs to the value.
#[derive(Debug)]
struct Params<'b> {
    rest: &'b [u8],
}

impl<'b> Iterator for Params<'b> {
    type Item = (&'b str, Option<&'b str>);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.rest;
        let mut i = skip_ows(s, 0);
        if s.get(i) != Some(&b';') {
            self.rest = &[];
            return None;
        }
        i = skip_ows(s, i + 1);
        let name_start = i;
        while s.get(i).is_some_and(|&b| is_tchar(b)) {
            i += 1;
        }
        let name = s.get(name_start..i)?;
        i = skip_ows(s, i);
        let mut value = None;
        if s.get(i) == Some(&b'=') {
            i = skip_ows(s, i + 1);
            let (start, end) = if s.get(i) == Some(&b'"') {
                i += 1;
                let start = i;
                loop {
                    match s.get(i) {
                        Some(b'"') | None => break,
                        Some(b'\\') => i += 2,
                        Some(_) => i += 1,
                    }
                }
                let end = i.min(s.len());
                i += 1;
                (start, end)
            } else {
                let start = i;
                while s.get(i).is_some_and(|&b| is_tchar(b)) {
                    i += 1;
                }
                (start, i)
            };
            value = Some(core::str::from_utf8(s.get(start..end)?).ok()?);
        }
        self.rest = s.get(i.min(s.len())..).unwrap_or_default();
        Some((core::str::from_utf8(name).ok()?, value))
    }
}

/// Parse every `Sec-WebSocket-Extensions` line into offers, validating the grammar.
///
/// # Errors
///
/// [`HandshakeError::InvalidExtensions`] for malformed text or more than
/// [`MAX_EXTENSION_ITEMS`] offers or parameters in one offer.
pub(crate) fn extensions<'b, const N: usize>(
    headers: &[Header<'b>],
    out: &mut [Option<ExtensionOffer<'b>>; N],
) -> Result<usize, HandshakeError> {
    let mut count = 0;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
    {
        let mut rest = h.value;
        loop {
            let (offer, next) = parse_offer(rest)?;
            if let Some(offer) = offer {
                let slot = out
                    .get_mut(count)
                    .ok_or(HandshakeError::InvalidExtensions)?;
                *slot = Some(offer);
                count += 1;
            }
            match next {
                Some(next) => rest = next,
                None => break,
            }
        }
    }
    Ok(count)
}

/// Parse one offer from the start of `s`; return it (None for an empty list element) and the
/// text after its comma, if any.
#[allow(clippy::type_complexity)]
fn parse_offer(s: &[u8]) -> Result<(Option<ExtensionOffer<'_>>, Option<&[u8]>), HandshakeError> {
    let bad = HandshakeError::InvalidExtensions;
    let mut i = skip_ows(s, 0);
    let name_start = i;
    while s.get(i).is_some_and(|&b| is_tchar(b)) {
        i += 1;
    }
    let name = s.get(name_start..i).unwrap_or_default();
    let params_start = i;
    let mut params = 0;
    loop {
        i = skip_ows(s, i);
        match s.get(i) {
            None | Some(b',') => break,
            Some(b';') if !name.is_empty() => {
                params += 1;
                if params > MAX_EXTENSION_ITEMS {
                    return Err(bad);
                }
                i = skip_ows(s, i + 1);
                let start = i;
                while s.get(i).is_some_and(|&b| is_tchar(b)) {
                    i += 1;
                }
                if i == start {
                    return Err(bad);
                }
                i = skip_ows(s, i);
                if s.get(i) == Some(&b'=') {
                    i = skip_ows(s, i + 1);
                    if s.get(i) == Some(&b'"') {
                        i += 1;
                        loop {
                            match s.get(i) {
                                Some(b'"') => break,
                                Some(b'\\') => i += 2,
                                Some(_) => i += 1,
                                None => return Err(bad),
                            }
                        }
                        i += 1;
                    } else {
                        let start = i;
                        while s.get(i).is_some_and(|&b| is_tchar(b)) {
                            i += 1;
                        }
                        if i == start {
                            return Err(bad);
                        }
                    }
                }
            }
            Some(_) => return Err(bad),
        }
    }
    let params_text = s.get(params_start..i).unwrap_or_default();
    let next = if s.get(i) == Some(&b',') {
        s.get(i + 1..)
    } else {
        None
    };
    if name.is_empty() {
        return if params_text.iter().all(|&b| b == b' ' || b == b'\t') {
            Ok((None, next))
        } else {
            Err(bad)
        };
    }
    let name = core::str::from_utf8(name).map_err(|_| bad)?;
    Ok((
        Some(ExtensionOffer {
            name,
            params: params_text,
        }),
        next,
    ))
}

fn skip_ows(s: &[u8], mut i: usize) -> usize {
    while matches!(s.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An offer's name and parameters, owned.
    type Owned = (String, Vec<(String, Option<String>)>);

    fn offers(value: &[u8]) -> Result<Vec<Owned>, HandshakeError> {
        let headers = [Header {
            name: "Sec-WebSocket-Extensions",
            value,
        }];
        let mut out = [None; MAX_EXTENSION_ITEMS];
        let n = extensions(&headers, &mut out)?;
        Ok(out[..n]
            .iter()
            .flatten()
            .map(|o| {
                let params = o
                    .params()
                    .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                    .collect();
                (o.name.to_string(), params)
            })
            .collect())
    }

    #[test]
    fn parses_permessage_deflate_offers() {
        let got = offers(b"permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits=\"10\" ;server_no_context_takeover").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            (
                "permessage-deflate".into(),
                vec![("client_max_window_bits".into(), None)]
            )
        );
        assert_eq!(
            got[1].1,
            [
                ("server_max_window_bits".into(), Some("10".into())),
                ("server_no_context_takeover".into(), None)
            ]
        );
    }

    #[test]
    fn empty_elements_are_skipped() {
        assert_eq!(offers(b" , x ,").unwrap().len(), 1);
        assert_eq!(offers(b"").unwrap().len(), 0);
    }

    #[test]
    fn malformed_offers_are_refused() {
        for bad in [
            &b"x;"[..],
            b"x; =1",
            b"x; a=",
            b"x; a=\"open",
            b";a",
            b"x y",
            b"x; a b",
        ] {
            assert_eq!(
                offers(bad).map(|_| ()),
                Err(HandshakeError::InvalidExtensions),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn too_many_offers_or_params_are_refused_quickly() {
        let many = "x,".repeat(MAX_EXTENSION_ITEMS + 1);
        assert_eq!(
            offers(many.as_bytes()).map(|_| ()),
            Err(HandshakeError::InvalidExtensions)
        );
        let params = format!("x{}", ";a".repeat(MAX_EXTENSION_ITEMS + 1));
        assert_eq!(
            offers(params.as_bytes()).map(|_| ()),
            Err(HandshakeError::InvalidExtensions)
        );
        // A pathological 64 KiB value is one linear pass.
        let huge = format!("x; a=\"{}\"", "\\\\".repeat(32 * 1024));
        assert_eq!(offers(huge.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn protocols_across_lines_in_order() {
        let headers = [
            Header {
                name: "Sec-WebSocket-Protocol",
                value: b"chat, superchat",
            },
            Header {
                name: "Other",
                value: b"x",
            },
            Header {
                name: "sec-websocket-protocol",
                value: b" v2 ,,",
            },
        ];
        assert_eq!(
            protocols(&headers).collect::<Vec<_>>(),
            ["chat", "superchat", "v2"]
        );
    }
}
