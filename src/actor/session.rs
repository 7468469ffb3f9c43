//! Session tokens from a header or a cookie, and the one rule for a value
//! given several times.
//!
//! # Several values
//! Frameworks disagree on which of several values wins (the first, the
//! last, a comma-joined list), so the guard never picks one: a header, a
//! cookie or a header target that appears with several distinct values is
//! read as one value derived from all of them, in order ([`one_of`]). An
//! attacker who sends a rotating decoy next to its real token therefore
//! never keeps a stable key by choosing where the decoy goes: the same pair
//! is the same key, a changed decoy a fresh one, and the request still
//! counts against its address (and its account). Repeats of one value, and
//! empty values, are one value.
//!
//! Several session values are evidence, not a way to choose: the request
//! also counts against the first and the last value's own sessions (the
//! two a framework takes, see [`ends`]), and a verdict on either refuses
//! it. A banned token sent beside a decoy is refused wherever it stands,
//! and a real token that guessed beside decoys is blocked itself.

use std::hash::Hasher;

use http::{HeaderMap, HeaderName};
use siphasher::sip128::{Hasher128, SipHasher13};

/// How long a value derived from several is: a marker byte (`\n`, which no
/// header value holds) then a 128-bit hash.
pub(crate) const COMBINED_LEN: usize = 17;

/// One value from `values` (each trimmed; empty ones skipped): the value
/// itself if every value is the same, or, if they differ, a value derived
/// from all of them in order ([`COMBINED_LEN`] bytes, written to `buf`,
/// and never equal to a single header value). `None` if there is none.
pub(crate) fn one_of<'a>(
    values: impl Iterator<Item = &'a [u8]>,
    buf: &'a mut [u8; COMBINED_LEN],
) -> Option<&'a [u8]> {
    let mut first: Option<&'a [u8]> = None;
    let mut repeats = 0usize;
    let mut hasher: Option<SipHasher13> = None;
    for v in values {
        let v = v.trim_ascii();
        if v.is_empty() {
            continue;
        }
        match (&mut hasher, first) {
            (None, None) => first = Some(v),
            (None, Some(f)) if f == v => repeats += 1,
            (None, Some(f)) => {
                let mut h = SipHasher13::new_with_keys(0x656e_756d, 0x67_7561_7264);
                for _ in 0..=repeats {
                    feed(&mut h, f);
                }
                feed(&mut h, v);
                hasher = Some(h);
            }
            (Some(h), _) => feed(h, v),
        }
    }
    match hasher {
        None => first,
        Some(h) => {
            buf[0] = b'\n';
            buf[1..].copy_from_slice(&h.finish128().as_u128().to_le_bytes());
            Some(&buf[..])
        }
    }
}

/// One value, length first, so that no two lists feed the same bytes.
fn feed(h: &mut SipHasher13, v: &[u8]) {
    h.write_usize(v.len());
    h.write(v);
}

/// Header `name`, every line of it, as one value ([`one_of`]). Lines are
/// not split at commas: a comma-joined line is one value.
pub(crate) fn header<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    buf: &'a mut [u8; COMBINED_LEN],
) -> Option<&'a [u8]> {
    one_of(headers.get_all(name).iter().map(|v| v.as_bytes()), buf)
}

/// The value of cookie `name` in the request's `Cookie` headers: every
/// pair with that name (names trimmed, values unquoted as RFC 6265 allows)
/// in every `Cookie` line, as one value ([`one_of`]).
pub(crate) fn cookie<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
    buf: &'a mut [u8; COMBINED_LEN],
) -> Option<&'a [u8]> {
    one_of(cookie_values(headers, name), buf)
}

/// Every value of cookie `name`, in order.
pub(crate) fn cookie_values<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    let name = name.as_bytes();
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|line| line.as_bytes().split(|b| *b == b';'))
        .filter_map(move |pair| {
            let eq = pair.iter().position(|b| *b == b'=')?;
            (pair[..eq].trim_ascii() == name).then(|| unquote(pair[eq + 1..].trim_ascii()))
        })
}

/// Whether `value` is one [`one_of`] derived from several distinct values.
pub(crate) fn is_combined(value: &[u8]) -> bool {
    value.len() == COMBINED_LEN && value[0] == b'\n'
}

/// The first and the last of several values (each trimmed, empty ones
/// skipped), the two a framework takes: besides the value derived from
/// all of them, the request counts against both, and a verdict on either
/// refuses it, so that a banned token sent beside a decoy (in front of it
/// or behind it) is still refused.
pub(crate) fn ends<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<(&'a [u8], &'a [u8])> {
    let mut ends: Option<(&[u8], &[u8])> = None;
    for v in values.map(<[u8]>::trim_ascii).filter(|v| !v.is_empty()) {
        ends = Some(match ends {
            None => (v, v),
            Some((first, _)) => (first, v),
        });
    }
    ends
}

/// A cookie value without its surrounding double quotes (`"abc"` is `abc`).
fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn cookie_of(h: &HeaderMap, name: &str) -> Option<Vec<u8>> {
        let mut buf = [0u8; COMBINED_LEN];
        cookie(h, name, &mut buf).map(<[u8]>::to_vec)
    }

    fn header_of(h: &HeaderMap, name: &str) -> Option<Vec<u8>> {
        let mut buf = [0u8; COMBINED_LEN];
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        header(h, &name, &mut buf).map(<[u8]>::to_vec)
    }

    #[test]
    fn cookie_lookup() {
        let h = headers(&[("cookie", "a=1; sid=abc ; b=2"), ("cookie", "c=3")]);
        assert_eq!(cookie_of(&h, "sid").as_deref(), Some(&b"abc"[..]));
        assert_eq!(cookie_of(&h, "c").as_deref(), Some(&b"3"[..]));
        assert_eq!(cookie_of(&h, "nope"), None);
        // Quoted is the same value (RFC 6265); a spaced name is the name.
        let h = headers(&[("cookie", "sid =\"abc\"; sid=; x")]);
        assert_eq!(cookie_of(&h, "sid").as_deref(), Some(&b"abc"[..]));
    }

    #[test]
    fn one_value_given_twice_is_that_value() {
        let h = headers(&[("cookie", "sid=abc; sid=abc"), ("cookie", "sid=abc")]);
        assert_eq!(cookie_of(&h, "sid").as_deref(), Some(&b"abc"[..]));
        let h = headers(&[
            ("x-session", "abc"),
            ("x-session", " abc "),
            ("x-session", ""),
        ]);
        assert_eq!(header_of(&h, "x-session").as_deref(), Some(&b"abc"[..]));
    }

    #[test]
    fn several_values_are_derived_from_all_of_them() {
        // Whichever position a rotating decoy takes, the value changes with
        // it, and it is neither the decoy nor the real token.
        let real = "real-token";
        let mut seen = std::collections::HashSet::new();
        for i in 0..50 {
            let decoy = format!("decoy{i}");
            for (a, b) in [(real, decoy.as_str()), (decoy.as_str(), real)] {
                let h = headers(&[("x-session", a), ("x-session", b)]);
                let v = header_of(&h, "x-session").unwrap();
                assert_eq!(v.len(), COMBINED_LEN);
                assert_ne!(v, real.as_bytes());
                assert_ne!(v, decoy.as_bytes());
                assert!(seen.insert(v.clone()), "a repeated key for {a} + {b}");
                let h = headers(&[
                    ("cookie", &format!("sid={a}")),
                    ("cookie", &format!("sid={b}")),
                ]);
                let c = cookie_of(&h, "sid").unwrap();
                let h = headers(&[("cookie", &format!("sid={a}; sid={b}"))]);
                assert_eq!(cookie_of(&h, "sid").unwrap(), c, "one line or two");
                // A cookie given twice is read by the same rule as a header.
                assert_eq!(c, v);
            }
        }
        // The same pair, in the same order, is the same value each time.
        let pair = headers(&[("x-session", "a"), ("x-session", "b")]);
        assert_eq!(header_of(&pair, "x-session"), header_of(&pair, "x-session"));
        // Lists that join to the same bytes stay apart.
        let h1 = headers(&[("x", "ab"), ("x", "c")]);
        let h2 = headers(&[("x", "a"), ("x", "bc")]);
        assert_ne!(header_of(&h1, "x"), header_of(&h2, "x"));
    }
}
