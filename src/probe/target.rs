//! Where a probe's target is in a request, how it is read (decoded, without
//! allocating), and what the signals keep of it ([`TargetInfo`]).

use http::HeaderMap;

use crate::actor::{ACCOUNT_KEYS, AccountId, COMBINED_LEN, hash128};

/// Where a probe's target is.
#[derive(Debug, Clone)]
pub(crate) enum TargetSource {
    /// Path parameter number `n` (its index among the pattern's segments).
    Path(usize),
    /// A query parameter.
    Query(String),
    /// A request header.
    Header(http::HeaderName),
    /// A field of a JSON body, by its path of names.
    Json(Vec<String>),
}

impl TargetSource {
    /// Whether the target is in the body (read before the inner service).
    pub(crate) fn in_body(&self) -> bool {
        matches!(self, TargetSource::Json(_))
    }

    /// The path parameter the matcher should capture.
    pub(crate) fn path_param(&self) -> Option<usize> {
        match self {
            TargetSource::Path(i) => Some(*i),
            _ => None,
        }
    }

    /// The target bytes from the request head (never for JSON targets):
    /// `path_capture` is the path parameter's raw text, as the matcher
    /// found it.
    pub(crate) fn head_target<'a>(
        &self,
        path_capture: Option<&'a str>,
        query: Option<&'a str>,
        headers: &'a HeaderMap,
        buf: &'a mut [u8; TARGET_BUF],
    ) -> Option<&'a [u8]> {
        match self {
            TargetSource::Path(_) => {
                let raw = path_capture?;
                Some(percent_decode(raw.as_bytes(), false, buf))
            }
            TargetSource::Query(name) => {
                let q = query?;
                // Keys are compared decoded (`%65mail` is `email`, as the
                // application's parser sees it). A name given twice with
                // different values is ambiguous (parsers disagree on which
                // wins): the whole query is then the target. A query without
                // the name also counts as its whole self, so hiding the
                // target never hides the request.
                let mut found: Option<&str> = None;
                for pair in q.split('&') {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let mut kbuf = [0u8; TARGET_BUF];
                    if percent_decode(k.as_bytes(), true, &mut kbuf) == name.as_bytes() {
                        match found {
                            Some(prev) if prev != v => return Some(q.as_bytes()),
                            _ => found = Some(v),
                        }
                    }
                }
                match found {
                    Some(v) if !v.is_empty() => Some(percent_decode(v.as_bytes(), true, buf)),
                    _ if !q.is_empty() => Some(q.as_bytes()),
                    _ => None,
                }
            }
            TargetSource::Header(h) => {
                // Every line of the header: several distinct values are one
                // target derived from all of them (`actor/session.rs`), so
                // a decoy beside the guess never hides it.
                let buf = buf.first_chunk_mut::<COMBINED_LEN>()?;
                crate::actor::header_value(headers, h, buf)
            }
            TargetSource::Json(_) => None,
        }
    }

    /// The target from a JSON body: the named field if the body is a JSON
    /// object that has it (a string or a number); otherwise, a body that is
    /// not empty counts as its whole self, so hiding the target never hides
    /// the request. An empty body counts nothing.
    pub(crate) fn json_target<R>(&self, body: &[u8], f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let TargetSource::Json(path) = self else {
            return None;
        };
        if let Some(field) = json_field(body, path) {
            return Some(f(field.as_bytes()));
        }
        (!body.trim_ascii().is_empty()).then(|| f(body))
    }
}

/// The field at `path` of a JSON body, as text (a string's value, a
/// number's digits). `None` if the body is not JSON, lacks the field, or
/// names it twice on the way (`{"email": "a", "email": "b"}`): parsers
/// disagree on which of two equal keys wins, so a decoy beside the guess
/// must not choose the target (the whole body is then the target).
pub(crate) fn json_field(body: &[u8], path: &[String]) -> Option<String> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(body);
    match (FieldSeed { path }).deserialize(&mut de) {
        Ok(Found::One(v)) if de.end().is_ok() => Some(v),
        _ => None,
    }
}

/// What [`FieldSeed`] found.
enum Found {
    None,
    One(String),
    /// The field (or an object on its path) given more than once.
    Twice,
}

/// Walks a JSON value down `path` without building it, noticing a key
/// given twice on the way.
struct FieldSeed<'p> {
    path: &'p [String],
}

impl<'de> serde::de::DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Found;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Found, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FieldSeed<'_> {
    type Value = Found;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        use serde::de::IgnoredAny;
        let Some((name, rest)) = self.path.split_first() else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Found::None);
        };
        let mut found: Option<Found> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == name.as_str() {
                let v = map.next_value_seed(FieldSeed { path: rest })?;
                found = Some(match found {
                    None => v,
                    Some(_) => Found::Twice,
                });
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found.unwrap_or(Found::None))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Found, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Found::None)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Found, E> {
        Ok(if self.path.is_empty() && !v.is_empty() {
            Found::One(v.to_owned())
        } else {
            Found::None
        })
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Found, E> {
        Ok(self.number(v.to_string()))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Found, E> {
        Ok(self.number(v.to_string()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Found, E> {
        Ok(
            self.number(
                serde_json::Number::from_f64(v).map_or_else(String::new, |n| n.to_string()),
            ),
        )
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Found, E> {
        Ok(Found::None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Found, E> {
        Ok(Found::None)
    }
}

impl FieldSeed<'_> {
    fn number(&self, digits: String) -> Found {
        if self.path.is_empty() && !digits.is_empty() {
            Found::One(digits)
        } else {
            Found::None
        }
    }
}

/// Stack buffer for a decoded target; longer targets are hashed raw.
pub(crate) const TARGET_BUF: usize = 256;

fn percent_decode<'a>(
    raw: &'a [u8],
    plus_is_space: bool,
    buf: &'a mut [u8; TARGET_BUF],
) -> &'a [u8] {
    if !raw
        .iter()
        .any(|b| *b == b'%' || (plus_is_space && *b == b'+'))
    {
        return raw;
    }
    if raw.len() > TARGET_BUF {
        return raw;
    }
    let mut n = 0;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        let out = if b == b'%' && i + 2 < raw.len() {
            match (hex(raw[i + 1]), hex(raw[i + 2])) {
                (Some(h), Some(l)) => {
                    i += 2;
                    h << 4 | l
                }
                _ => b,
            }
        } else if plus_is_space && b == b'+' {
            b' '
        } else {
            b
        };
        buf[n] = out;
        n += 1;
        i += 1;
    }
    &buf[..n]
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A target, reduced to what the signals need: a keyed hash, its numeric
/// value if it is a number, and whether it is the actor's own. Made by the
/// core from the bytes of a request's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TargetInfo {
    pub(crate) hash: u64,
    pub(crate) numeric: Option<u64>,
    /// The target is the actor's own object: its account id (for a probe
    /// with `self_target`), or what the application said (an
    /// [`Owner`](crate::Owner) in the response, or the ownership hook).
    pub(crate) is_self: bool,
    /// The probe has objects with owners (an `objects` probe, ids account
    /// ids or not): only hits on own objects are history there; elsewhere,
    /// hits on a target found before.
    pub(crate) self_target: bool,
    /// Whose object it is was decided before the handler ran (the target
    /// is the actor's account id, or the application's ownership hook
    /// answered): an [`Owner`](crate::Owner) in the response is then not
    /// waited for.
    pub(crate) decided: bool,
}

impl TargetInfo {
    /// Whether the target is the actor's own object.
    pub(crate) fn is_own(&self) -> bool {
        self.is_self
    }

    /// The same target, marked as the actor's own (or not): what the
    /// application said of its owner. Either answer decides ownership
    /// before the handler runs.
    pub(crate) fn with_own(mut self, own: bool) -> Self {
        self.is_self = own;
        self.decided = true;
        self
    }

    /// The same target, on a probe whose objects have owners (or not),
    /// whether or not ids are account ids: what history means there.
    #[inline]
    pub(crate) fn owned_objects(mut self, on: bool) -> Self {
        self.self_target = on;
        self
    }

    /// `key` is the guard's secret sketch key: which sketch bit a target
    /// sets must not be predictable, or an attacker could pick targets that
    /// all share one bit and count as one.
    pub(crate) fn new(
        bytes: &[u8],
        account: Option<&AccountId>,
        self_target: bool,
        key: (u64, u64),
    ) -> Self {
        let h = match account {
            Some(a) => a.hash_of(bytes),
            None => hash128(ACCOUNT_KEYS, bytes),
        };
        let is_self = self_target && account.is_some_and(|a| a.hash() == h);
        // Up to 19 decimal digits always fit a u64.
        let numeric =
            if !bytes.is_empty() && bytes.len() <= 19 && bytes.iter().all(u8::is_ascii_digit) {
                Some(bytes.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
            } else {
                None
            };
        // A keyed fold of the public hash: cheap, and not predictable
        // without the key.
        let m = ((h as u64) ^ key.0) as u128 * (((h >> 64) as u64) ^ key.1 | 1) as u128;
        Self {
            hash: (m as u64) ^ ((m >> 64) as u64),
            numeric,
            is_self,
            self_target,
            decided: is_self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: (u64, u64) = (1, 2);

    #[test]
    fn colliding_targets_chosen_offline_do_not_collide_under_another_key() {
        // An attacker who knew the key could pick targets that all set one
        // sketch bit (and count as one). Under the guard's own random key,
        // the same picks spread over the map.
        let bit = |t: &[u8], key| (TargetInfo::new(t, None, false, key).hash >> 56) as u8;
        let picked: Vec<String> = (0..200_000)
            .map(|i| format!("guess{i}@x.test"))
            .filter(|t| bit(t.as_bytes(), (1, 2)) == 7)
            .take(200)
            .collect();
        assert_eq!(picked.len(), 200);
        let mut spread = std::collections::HashSet::new();
        for t in &picked {
            spread.insert(bit(t.as_bytes(), (0x9e37_79b9, 0x7f4a_7c15)));
        }
        assert!(spread.len() > 100, "{}", spread.len());
    }

    #[test]
    fn self_target_uses_account() {
        let me = AccountId::from(42u64);
        assert!(TargetInfo::new(b"42", Some(&me), true, K).is_self);
        assert!(!TargetInfo::new(b"42", Some(&me), false, K).is_self);
        assert!(!TargetInfo::new(b"43", Some(&me), true, K).is_self);
        assert_eq!(TargetInfo::new(b"43", None, true, K).numeric, Some(43));
    }

    fn header_target(lines: &[&str]) -> Option<Vec<u8>> {
        let mut h = HeaderMap::new();
        for v in lines {
            h.append("x-email", http::HeaderValue::from_str(v).unwrap());
        }
        let src = TargetSource::Header(http::HeaderName::from_static("x-email"));
        let mut buf = [0u8; TARGET_BUF];
        src.head_target(None, None, &h, &mut buf)
            .map(<[u8]>::to_vec)
    }

    #[test]
    fn a_header_target_given_several_times_is_all_of_them() {
        assert_eq!(
            header_target(&["a@x.test"]).as_deref(),
            Some(&b"a@x.test"[..])
        );
        assert_eq!(
            header_target(&["a@x.test", " a@x.test", ""]).as_deref(),
            Some(&b"a@x.test"[..]),
            "one value repeated is that value"
        );
        assert_eq!(header_target(&[]), None);
        assert_eq!(header_target(&[" "]), None);
        // A fixed decoy first or last, the guess in the other line: each
        // guess is its own target (none hides behind the decoy), and no
        // guess is read as the decoy.
        let mut seen = std::collections::HashSet::new();
        for i in 0..100 {
            let guess = format!("guess{i}@x.test");
            for lines in [
                ["decoy@x.test", guess.as_str()],
                [guess.as_str(), "decoy@x.test"],
            ] {
                let t = header_target(&lines).unwrap();
                assert_ne!(t, b"decoy@x.test");
                assert!(seen.insert(t), "{lines:?} counted as a target seen before");
            }
        }
    }

    #[test]
    fn numeric_targets() {
        let n = |b: &[u8]| TargetInfo::new(b, None, true, K).numeric;
        assert_eq!(n(b"0042"), Some(42));
        assert_eq!(n(b"9999999999999999999"), Some(9_999_999_999_999_999_999));
        assert_eq!(n(b"18446744073709551615"), None, "20 digits: not numeric");
        assert_eq!(n(b""), None);
        assert_eq!(n(b"-1"), None);
        assert_eq!(n(b"4 2"), None);
        assert_eq!(n(b"\xd9\xa3"), None, "non-ASCII digits");
    }
}
