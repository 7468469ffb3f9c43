//! Naming an actor: by kind and id, as the listings write it
//! (`account:#e7634a0c5b1d2f39`), or by the hash the listings show; in a
//! body or in a URL path, percent-encoded.

use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::answer::{Refused, bad, error};
use super::request::json_body;
use crate::actor::{AccountId, Actor, ActorKey, ActorKind};
use crate::guard::GuardHandle;

/// An actor named by a request: resolved to its key, and, when named by
/// its id (not its hash), the actor itself (the gate reads an address
/// with its subnet).
pub(super) struct Named {
    pub(super) key: ActorKey,
    pub(super) actor: Option<Actor>,
}

const LOOKUP_BODY: &str = r#"{"kind": "session", "value": "..."} or {"actor": "account:#..."}"#;
const LIFT_BODY: &str = r#"{"actor": {"kind": "session", "value": "..."}}"#;
const WANT_ACTOR: &str = r#"want {"kind": "...", "value": "..."} (both strings) or one string `kind:value` as the listings write it (`account:#e7634a0c5b1d2f39`)"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LiftRequest {
    actor: Value,
}

/// The actor a body of `POST /actors/lookup` names: `{"kind": ...,
/// "value": ...}` or `{"actor": ...}`.
pub(super) fn lookup_body(handle: &GuardHandle, body: &[u8]) -> Result<Named, Refused> {
    let v: Value = json_body(body, LOOKUP_BODY)?;
    match v.as_object() {
        Some(o) if o.len() == 1 && o.contains_key("actor") => named(handle, &o["actor"]),
        _ => named(handle, &v),
    }
}

/// The actor a body names: `{"kind": ..., "value": ...}`, or one string
/// as the listings write it (`account:#e7634a0c5b1d2f39`). Errors never
/// repeat the value.
pub(super) fn named(handle: &GuardHandle, v: &Value) -> Result<Named, Refused> {
    let (kind, value) = match v {
        Value::String(listed) => split_listed(listed)?,
        Value::Object(o) => match (o.get("kind"), o.get("value")) {
            (Some(Value::String(k)), Some(Value::String(v))) if o.len() == 2 => {
                (k.as_str(), v.as_str())
            }
            _ => return Err(bad(format!("actor: {WANT_ACTOR}"))),
        },
        _ => return Err(bad(format!("actor: {WANT_ACTOR}"))),
    };
    resolve(handle, kind, value)
}

/// The actor a URL path names. A session token is refused there
/// (proxies and access logs keep URLs: it goes in the body of
/// `body_route`); a session's hash is not a secret and is taken.
pub(super) fn in_path(
    handle: &GuardHandle,
    kind: &str,
    value: &str,
    body_route: &str,
) -> Result<Named, Refused> {
    if kind == "session" && !percent_decode(value).is_some_and(|v| is_hash(&v)) {
        return Err(bad(format!(
            "a session token does not go in a URL (proxies and access logs keep URLs): \
             send it in the body of {body_route}, or name the session by its hash \
             (`/session/%23...`, as the listings write it)"
        )));
    }
    resolve(handle, kind, value)
}

/// The key of the actor `kind` and `value` (percent-encoded or not)
/// name: by its id, or, for a session or an account, by the hash the
/// listings show (404 if no known actor has it).
fn resolve(handle: &GuardHandle, kind: &str, value: &str) -> Result<Named, Refused> {
    let hashed = match kind {
        "account" => Some(ActorKind::Account),
        "session" => Some(ActorKind::Session),
        "ip" | "subnet" => None,
        // Not repeated: a token put in the wrong field is still a token.
        _ => return Err(bad("actor kind: want ip, subnet, session or account".into())),
    };
    let value = percent_decode(value)
        .ok_or_else(|| bad(format!("{kind}: the value's percent-encoding is bad")))?;
    if let Some(kind) = hashed.filter(|_| is_hash(&value)) {
        return match handle.known_key(kind, &value) {
            Some(key) => Ok(Named { key, actor: None }),
            // A hash is what the listings show, not a secret.
            None => Err(Box::new(error(
                StatusCode::NOT_FOUND,
                format!(
                    "no {kind} known as {value}: a hash names only an actor the guard \
                     holds records or a verdict for (name a new one by its id)"
                ),
            ))),
        };
    }
    let actor = actor(kind, &value).map_err(bad)?;
    let key = handle.key(&actor);
    // `ip:2001:db8:1:2::/64` as listed is that ip actor; any other
    // prefix is a network, which an ip actor is not.
    if kind == "ip" && value.contains('/') && key.to_string() != format!("ip:{value}") {
        return Err(bad(format!(
            "ip `{value}`: an ip actor is one address (for IPv6, its prefix as the \
             listings write it); for a network, use kind subnet"
        )));
    }
    Ok(Named {
        key,
        actor: Some(actor),
    })
}

/// The actor a body of `POST /bans/lift` names: `{"actor": ...}`.
pub(super) fn lift_body(handle: &GuardHandle, body: &[u8]) -> Result<Named, Refused> {
    let lift: LiftRequest = json_body(body, LIFT_BODY)?;
    named(handle, &lift.actor)
}

/// An actor as the listings write it, `kind:value` (the value still
/// percent-encoded, if it was): split at the first `:` (`%3A` in a path).
pub(super) fn split_listed(listed: &str) -> Result<(&str, &str), Refused> {
    let at = listed
        .find(':')
        .map(|i| (i, 1))
        .or_else(|| listed.to_ascii_lowercase().find("%3a").map(|i| (i, 3)));
    match at {
        Some((i, len)) if matches!(&listed[..i], "ip" | "subnet" | "session" | "account") => {
            Ok((&listed[..i], &listed[i + len..]))
        }
        // Not repeated: a session token may be in the wrong place.
        _ => Err(bad(format!("actor: {WANT_ACTOR}"))),
    }
}

/// Whether `value` is a hash as the listings write it: `#` and 16 hex
/// digits.
fn is_hash(value: &str) -> bool {
    value
        .strip_prefix('#')
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The actor `kind` and (percent-decoded) `value` name, by its id. Errors
/// never hold the value of a session or an account.
fn actor(kind: &str, value: &str) -> Result<Actor, String> {
    // `198.51.100.0/24` (or any address inside it) for a subnet; an ip as
    // listed may carry its prefix (`2001:db8:1:2::/64`).
    let addr = value.split('/').next().unwrap_or_default();
    let ip = || {
        addr.parse::<std::net::IpAddr>()
            .map_err(|_| format!("{kind} `{value}`: want an IP address"))
    };
    match kind {
        "ip" => Ok(Actor::ip(ip()?)),
        "subnet" => addr
            .parse::<std::net::IpAddr>()
            .map(Actor::subnet)
            .map_err(|_| format!("subnet `{value}`: want an address in it")),
        "session" if !value.is_empty() => Ok(Actor::session(value)),
        "account" if !value.is_empty() => Ok(Actor::account(AccountId::from(value))),
        "session" | "account" => Err(format!("{kind}: the value is empty")),
        // Not repeated: a token put in the wrong field is still a token.
        _ => Err("actor kind: want ip, subnet, session or account".into()),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_are_named_as_the_api_says_and_bad_names_are_refused() {
        assert!(matches!(actor("ip", "203.0.113.9"), Ok(Actor::Ip(_))));
        assert!(matches!(actor("ip", "2001:db8::1"), Ok(Actor::Ip(_))));
        let subnet = percent_decode("198.51.100.0%2F24").unwrap();
        assert!(matches!(actor("subnet", &subnet), Ok(Actor::Subnet(_))));
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert!(matches!(actor("session", "a b"), Ok(Actor::Session(s)) if s == "a b"));
        assert!(matches!(actor("account", "42"), Ok(Actor::Account(_))));
        for (k, v) in [("ip", "nope"), ("user", "1"), ("session", "")] {
            assert!(actor(k, v).is_err(), "{k} {v}");
        }
        for bad in ["%zz", "%c3", "%", "%2"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
        // The listed form: split at the first colon (written `%3A` or not).
        for (listed, kind, value) in [
            (
                "account:%23e7634a0c5b1d2f39",
                "account",
                "%23e7634a0c5b1d2f39",
            ),
            ("ip:2001:db8::1", "ip", "2001:db8::1"),
            ("subnet%3A10.0.0.0%2F24", "subnet", "10.0.0.0%2F24"),
        ] {
            assert_eq!(split_listed(listed).ok(), Some((kind, value)), "{listed}");
        }
        for bad in ["", ":", "nokind", "user:1", "sess-token-without-a-kind"] {
            assert!(split_listed(bad).is_err(), "{bad}");
        }
        assert!(is_hash("#e7634a0c5b1d2f39"));
        assert!(is_hash("#E7634A0C5B1D2F39"));
        for not in [
            "e7634a0c5b1d2f39",
            "#e7634a0c5b1d2f3",
            "#e7634a0c5b1d2f39a",
            "#g7634a0c5b1d2f39",
        ] {
            assert!(!is_hash(not), "{not}");
        }
    }
}
