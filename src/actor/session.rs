//! Session tokens from a header or a cookie, and the rules for a value
//! given several times.
//!
//! # Several values
//! Frameworks disagree on which of several values wins (the first, the
//! last, a comma-joined list), so the guard never lets the client choose:
//!
//! - A session header or cookie with several distinct values counts as its
//!   first value and as its last ([`ends`]), the two a framework takes: the
//!   request counts against both sessions, and a verdict on either refuses
//!   it. A rotating decoy beside a real token never hides the token (its
//!   session is counted and blocked wherever it stands), and a banned token
//!   beside a decoy is refused. Repeats of one value, and empty values, are
//!   one value.
//! - A header target with several distinct values is read as one value
//!   derived from all of them, in order ([`one_of`]): a decoy beside each
//!   guess makes each guess a distinct target, never one.

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

/// Every value of cookie `name`, in order: every pair with that name
/// (names trimmed, values unquoted as RFC 6265 allows) in every `Cookie`
/// line.
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

/// The first and the last of a session's values (each trimmed, empty ones
/// skipped; the same value twice when there is one): the two a framework
/// takes. The request counts against both, and a verdict on either refuses
/// it.
pub(crate) fn ends<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<(&'a [u8], &'a [u8])> {
    let mut values = values.map(<[u8]>::trim_ascii).filter(|v| !v.is_empty());
    let first = values.next()?;
    Some((first, values.last().unwrap_or(first)))
}

/// [`ends`] of header `name`'s lines, with a fast path for the usual one
/// line (the request path reads the session header on every probe
/// request).
pub(crate) fn header_ends<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Option<(&'a [u8], &'a [u8])> {
    let mut lines = headers.get_all(name).iter();
    let first = lines.next()?.as_bytes();
    match lines.next() {
        None => {
            let v = first.trim_ascii();
            (!v.is_empty()).then_some((v, v))
        }
        Some(second) => ends(
            [first, second.as_bytes()]
                .into_iter()
                .chain(lines.map(|v| v.as_bytes())),
        ),
    }
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

    fn cookie_of(h: &HeaderMap, name: &str) -> Option<(Vec<u8>, Vec<u8>)> {
        ends(cookie_values(h, name)).map(|(a, b)| (a.to_vec(), b.to_vec()))
    }

    fn session_of(h: &HeaderMap, name: &str) -> Option<(Vec<u8>, Vec<u8>)> {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        header_ends(h, &name).map(|(a, b)| (a.to_vec(), b.to_vec()))
    }

    fn header_of(h: &HeaderMap, name: &str) -> Option<Vec<u8>> {
        let mut buf = [0u8; COMBINED_LEN];
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        header(h, &name, &mut buf).map(<[u8]>::to_vec)
    }

    fn one(v: &str) -> Option<(Vec<u8>, Vec<u8>)> {
        Some((v.as_bytes().to_vec(), v.as_bytes().to_vec()))
    }

    #[test]
    fn cookie_lookup() {
        let h = headers(&[("cookie", "a=1; sid=abc ; b=2"), ("cookie", "c=3")]);
        assert_eq!(cookie_of(&h, "sid"), one("abc"));
        assert_eq!(cookie_of(&h, "c"), one("3"));
        assert_eq!(cookie_of(&h, "nope"), None);
        // Quoted is the same value (RFC 6265); a spaced name is the name.
        let h = headers(&[("cookie", "sid =\"abc\"; sid=; x")]);
        assert_eq!(cookie_of(&h, "sid"), one("abc"));
    }

    #[test]
    fn one_value_given_twice_is_that_value() {
        let h = headers(&[("cookie", "sid=abc; sid=abc"), ("cookie", "sid=abc")]);
        assert_eq!(cookie_of(&h, "sid"), one("abc"));
        let h = headers(&[
            ("x-session", "abc"),
            ("x-session", " abc "),
            ("x-session", ""),
        ]);
        assert_eq!(session_of(&h, "x-session"), one("abc"));
        assert_eq!(header_of(&h, "x-session").as_deref(), Some(&b"abc"[..]));
    }

    #[test]
    fn a_session_given_several_times_is_its_first_and_its_last() {
        let h = headers(&[
            ("x-session", "decoy"),
            ("x-session", "mid"),
            ("x-session", "real"),
        ]);
        let (first, last) = session_of(&h, "x-session").unwrap();
        assert_eq!((&first[..], &last[..]), (&b"decoy"[..], &b"real"[..]));
        // One line or two, the same cookie values.
        let two = headers(&[("cookie", "sid=a"), ("cookie", "sid=b")]);
        let one_line = headers(&[("cookie", "sid=a; sid=b")]);
        assert_eq!(cookie_of(&two, "sid"), cookie_of(&one_line, "sid"));
    }

    #[test]
    fn several_header_target_values_are_derived_from_all_of_them() {
        // Whichever position a rotating decoy takes, the value changes with
        // it, and it is neither the decoy nor the real value.
        let real = "real-target";
        let mut seen = std::collections::HashSet::new();
        for i in 0..50 {
            let decoy = format!("decoy{i}");
            for (a, b) in [(real, decoy.as_str()), (decoy.as_str(), real)] {
                let h = headers(&[("x-email", a), ("x-email", b)]);
                let v = header_of(&h, "x-email").unwrap();
                assert_eq!(v.len(), COMBINED_LEN);
                assert_ne!(v, real.as_bytes());
                assert_ne!(v, decoy.as_bytes());
                assert!(seen.insert(v.clone()), "a repeated key for {a} + {b}");
            }
        }
        // The same pair, in the same order, is the same value each time.
        let pair = headers(&[("x", "a"), ("x", "b")]);
        assert_eq!(header_of(&pair, "x"), header_of(&pair, "x"));
        // Lists that join to the same bytes stay apart.
        let h1 = headers(&[("x", "ab"), ("x", "c")]);
        let h2 = headers(&[("x", "a"), ("x", "bc")]);
        assert_ne!(header_of(&h1, "x"), header_of(&h2, "x"));
    }
}
