//! One log line to one request: the combined format and JSON lines.

use std::net::{IpAddr, SocketAddr};

use http::Method;
use serde_json::Value;

use super::time;
use crate::actor::Standing;
use crate::probe::Outcome;

/// One request, as a log line tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Nanoseconds since the Unix epoch.
    pub(crate) time: i64,
    pub(crate) addr: IpAddr,
    pub(crate) method: Method,
    /// Path and query, as logged (not decoded: the guard matches the raw
    /// path too).
    pub(crate) uri: Box<str>,
    pub(crate) status: u16,
    pub(crate) account: Option<Box<str>>,
    pub(crate) session: Option<Box<str>>,
    /// The JSON body, as text.
    pub(crate) body: Option<Box<str>>,
    /// What the application said of the account's standing.
    pub(crate) standing: Standing,
    /// The target, as the guard read it (a body field or a header that
    /// the log does not otherwise hold).
    pub(crate) target: Option<Box<str>>,
    /// The application's ownership hook said the target was the caller's.
    pub(crate) own: bool,
    /// The outcome as the guard classified it (else: by the status).
    pub(crate) outcome: Option<Outcome>,
    /// The [`Owner`](crate::Owner) the application gave.
    pub(crate) owner: Option<Box<str>>,
    /// The application said the caller knows the target.
    pub(crate) known: bool,
}

impl Entry {
    /// The path, without the query.
    pub(crate) fn path(&self) -> &str {
        self.uri.split_once('?').map_or(&self.uri, |(p, _)| p)
    }

    /// The query, if any.
    pub(crate) fn query(&self) -> Option<&str> {
        self.uri.split_once('?').map(|(_, q)| q)
    }
}

/// What became of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    Request(Entry),
    /// Not a request to replay (a blank line, a bad request the server
    /// logged without a request line): counted by reason.
    Skipped(&'static str),
    /// Malformed: counted, with the line number and this reason.
    Failed(String),
}

/// The JSON field names of each part of a request (`--field KEY=NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// The time: RFC 3339, or epoch seconds or milliseconds.
    pub time: String,
    /// The client address (a port after it is ignored).
    pub remote_addr: String,
    /// The HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The response status.
    pub status: String,
    /// The account (optional).
    pub account: String,
    /// The session token (optional).
    pub session: String,
    /// The JSON body, as an object or a string holding one (optional).
    pub body: String,
    /// The account's standing, `established` or `new` (optional).
    pub standing: String,
    /// The target as the guard read it, for a probe whose target is in a
    /// body field or a header (optional).
    pub target: String,
    /// `true` when the application's ownership hook said the target was
    /// the caller's (optional).
    pub own: String,
    /// The outcome as the guard classified it, `hit`, `miss` or `denied`
    /// (optional; without it the status is classified by the config's
    /// rules).
    pub outcome: String,
    /// The owner of the object, as the application said with
    /// [`Owner`](crate::Owner) (optional).
    pub owner: String,
    /// `true` when the application said the caller knows the target
    /// ([`Known`](crate::Known); optional).
    pub known: String,
}

impl Default for Fields {
    fn default() -> Self {
        Self {
            time: "time".into(),
            remote_addr: "remote_addr".into(),
            method: "method".into(),
            uri: "uri".into(),
            status: "status".into(),
            account: "account".into(),
            session: "session".into(),
            body: "body".into(),
            standing: "standing".into(),
            target: "target".into(),
            own: "own".into(),
            outcome: "outcome".into(),
            owner: "owner".into(),
            known: "known".into(),
        }
    }
}

impl Fields {
    /// The keys `--field` accepts.
    pub const KEYS: [&'static str; 14] = [
        "time",
        "remote_addr",
        "method",
        "uri",
        "status",
        "account",
        "session",
        "body",
        "standing",
        "target",
        "own",
        "outcome",
        "owner",
        "known",
    ];

    /// Applies one `KEY=NAME` mapping.
    ///
    /// # Errors
    /// No `=`, an empty name, or a key that is not one of [`Fields::KEYS`].
    pub fn set(&mut self, mapping: &str) -> Result<(), String> {
        let (key, name) = mapping
            .split_once('=')
            .ok_or_else(|| format!("--field {mapping:?}: expected KEY=NAME"))?;
        if name.is_empty() {
            return Err(format!("--field {mapping:?}: the name is empty"));
        }
        let slot = match key {
            "time" => &mut self.time,
            "remote_addr" => &mut self.remote_addr,
            "method" => &mut self.method,
            "uri" => &mut self.uri,
            "status" => &mut self.status,
            "account" => &mut self.account,
            "session" => &mut self.session,
            "body" => &mut self.body,
            "standing" => &mut self.standing,
            "target" => &mut self.target,
            "own" => &mut self.own,
            "outcome" => &mut self.outcome,
            "owner" => &mut self.owner,
            "known" => &mut self.known,
            _ => {
                return Err(format!(
                    "--field {mapping:?}: unknown key {key:?} (one of: {})",
                    Self::KEYS.join(", ")
                ));
            }
        };
        *slot = name.to_owned();
        Ok(())
    }
}

fn method(s: &str) -> Option<Method> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Method::from_bytes(s.as_bytes()).ok()
}

/// The path and query of a request target: an absolute form
/// (`http://host/path`) loses its scheme and authority.
fn origin_form(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return Some(target);
    }
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    Some(rest.find('/').map_or("/", |i| &rest[i..]))
}

fn address(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            s.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))?
                .parse()
                .ok()
        })
}

/// Splits off the next space-separated token.
fn token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches(' ');
    if s.is_empty() {
        return None;
    }
    Some(s.split_once(' ').unwrap_or((s, "")))
}

/// A quoted field: its text (escapes kept as written) and the rest.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches(' ').strip_prefix('"')?;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some((&s[..i], &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// The combined (or common) log format:
/// `%h %l %u [%t] "%r" %>s %b ["%{Referer}i" "%{User-agent}i"]`. The
/// remote user (`%u`), when not `-`, is the account.
pub(crate) fn combined(line: &str) -> Parsed {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Parsed::Skipped("blank line");
    }
    let fail = |why: &str| Parsed::Failed(why.to_owned());
    let Some((host, rest)) = token(line) else {
        return fail("no remote address");
    };
    let Some(addr) = address(host) else {
        return Parsed::Failed(format!("remote address {host:?} is not an IP address"));
    };
    let Some((_ident, rest)) = token(rest) else {
        return fail("truncated after the remote address");
    };
    let Some((user, rest)) = token(rest) else {
        return fail("truncated after the ident field");
    };
    let Some(rest) = rest.trim_start_matches(' ').strip_prefix('[') else {
        return fail("no [time]");
    };
    let Some((stamp, rest)) = rest.split_once(']') else {
        return fail("unclosed [time");
    };
    let Some(time) = time::parse_clf(stamp) else {
        return Parsed::Failed(format!("time {stamp:?} is not dd/Mon/yyyy:hh:mm:ss +zzzz"));
    };
    let Some((request, rest)) = quoted(rest) else {
        return fail("no quoted request line");
    };
    let Some((status, _rest)) = token(rest) else {
        return fail("no status");
    };
    let status = match status.parse::<u16>() {
        Ok(s) if (100..=999).contains(&s) => s,
        _ => return Parsed::Failed(format!("status {status:?} is not a 3-digit number")),
    };
    if request == "-" || request.is_empty() {
        return Parsed::Skipped("no request line (the server could not read one)");
    }
    let mut parts = request.split(' ');
    let (Some(m), Some(target)) = (parts.next(), parts.next()) else {
        return Parsed::Skipped("request line is not METHOD TARGET PROTOCOL");
    };
    let Some(m) = method(m) else {
        return Parsed::Skipped("request line is not METHOD TARGET PROTOCOL");
    };
    let Some(uri) = origin_form(target) else {
        return Parsed::Skipped("request target is not a path (CONNECT, OPTIONS *)");
    };
    Parsed::Request(Entry {
        time,
        addr,
        method: m,
        uri: uri.into(),
        status,
        account: (user != "-").then(|| user.into()),
        session: None,
        body: None,
        standing: Standing::Unknown,
        target: None,
        own: false,
        outcome: None,
        owner: None,
        known: false,
    })
}

/// One JSON object a line, with the field names of `fields`.
pub(crate) fn json(line: &str, fields: &Fields) -> Parsed {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Parsed::Skipped("blank line");
    }
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return Parsed::Failed(format!("not JSON: {e}")),
    };
    let Value::Object(obj) = value else {
        return Parsed::Failed("not a JSON object".into());
    };
    let get = |name: &str| obj.get(name).filter(|v| !v.is_null());
    let text = |name: &str| -> Option<String> {
        match get(name)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let missing = |name: &str| Parsed::Failed(format!("no field {name:?}"));
    let Some(t) = get(&fields.time) else {
        return missing(&fields.time);
    };
    let time = match t {
        Value::Number(n) => n.as_f64().and_then(time::from_epoch),
        Value::String(s) => {
            time::parse_rfc3339(s).or_else(|| s.parse::<f64>().ok().and_then(time::from_epoch))
        }
        _ => None,
    };
    let Some(time) = time else {
        return Parsed::Failed(format!(
            "field {:?} = {t} is not RFC 3339 nor epoch seconds or milliseconds",
            fields.time
        ));
    };
    let Some(a) = text(&fields.remote_addr) else {
        return missing(&fields.remote_addr);
    };
    let Some(addr) = address(&a) else {
        return Parsed::Failed(format!(
            "field {:?} = {a:?} is not an IP address",
            fields.remote_addr
        ));
    };
    let Some(m) = text(&fields.method) else {
        return missing(&fields.method);
    };
    let Some(m) = method(&m) else {
        return Parsed::Failed(format!("field {:?} = {m:?} is not a method", fields.method));
    };
    let Some(u) = text(&fields.uri) else {
        return missing(&fields.uri);
    };
    let Some(uri) = origin_form(&u) else {
        return Parsed::Failed(format!("field {:?} = {u:?} is not a path", fields.uri));
    };
    let status = match get(&fields.status) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        Some(_) => None,
        None => return missing(&fields.status),
    };
    let status = match status {
        Some(s) if (100..=999).contains(&s) => s as u16,
        _ => {
            return Parsed::Failed(format!("field {:?} is not a 3-digit status", fields.status));
        }
    };
    let body = match get(&fields.body) {
        None => None,
        Some(Value::String(s)) => Some(s.as_str().into()),
        Some(v @ (Value::Object(_) | Value::Array(_))) => Some(v.to_string().into()),
        Some(_) => {
            return Parsed::Failed(format!(
                "field {:?} is neither a JSON object nor a string",
                fields.body
            ));
        }
    };
    let flag = |name: &str| match get(name) {
        None | Some(Value::Bool(false)) => Ok(false),
        Some(Value::Bool(true)) => Ok(true),
        Some(v) => Err(format!("field {name:?} = {v} is not true or false")),
    };
    let (own, known) = match (flag(&fields.own), flag(&fields.known)) {
        (Ok(o), Ok(k)) => (o, k),
        (Err(e), _) | (_, Err(e)) => return Parsed::Failed(e),
    };
    let standing = match get(&fields.standing) {
        None => Standing::Unknown,
        Some(Value::String(s)) if s == "established" => Standing::Established,
        Some(Value::String(s)) if s == "new" => Standing::New,
        Some(Value::String(s)) if s == "unknown" => Standing::Unknown,
        Some(v) => {
            return Parsed::Failed(format!(
                "field {:?} = {v} is not \"established\", \"new\" or \"unknown\"",
                fields.standing
            ));
        }
    };
    let outcome = match get(&fields.outcome) {
        None => None,
        Some(Value::String(s)) if s == "hit" => Some(Outcome::Hit),
        Some(Value::String(s)) if s == "miss" => Some(Outcome::Miss),
        Some(Value::String(s)) if s == "denied" => Some(Outcome::Denied),
        Some(v) => {
            return Parsed::Failed(format!(
                "field {:?} = {v} is not \"hit\", \"miss\" or \"denied\"",
                fields.outcome
            ));
        }
    };
    Parsed::Request(Entry {
        time,
        addr,
        method: m,
        uri: uri.into(),
        status,
        account: text(&fields.account).map(Into::into),
        session: text(&fields.session).map(Into::into),
        body,
        standing,
        target: text(&fields.target).map(Into::into),
        own,
        outcome,
        owner: text(&fields.owner).map(Into::into),
        known,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(p: Parsed) -> Entry {
        match p {
            Parsed::Request(e) => e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn combined_lines() {
        let e = request(combined(
            r#"203.0.113.9 - alice [10/Oct/2000:13:55:36 -0700] "GET /api/accounts/7/addressbook?x=1 HTTP/1.1" 200 2326 "-" "curl/8""#,
        ));
        assert_eq!(e.addr, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(e.method, Method::GET);
        assert_eq!(e.path(), "/api/accounts/7/addressbook");
        assert_eq!(e.query(), Some("x=1"));
        assert_eq!(e.status, 200);
        assert_eq!(e.account.as_deref(), Some("alice"));
        assert_eq!(e.time, 971_211_336_000_000_000);
        // Common format, IPv6, absolute form, anonymous.
        let e = request(combined(
            r#"2001:db8::1 - - [10/Oct/2000:13:55:36 +0000] "POST http://mail.example/api/x HTTP/1.0" 404 -"#,
        ));
        assert_eq!(e.uri.as_ref(), "/api/x");
        assert_eq!(e.account, None);
        // An escaped quote inside the request line.
        let e = request(combined(
            r#"192.0.2.1 - - [10/Oct/2000:13:55:36 +0000] "GET /a?q=\"x\" HTTP/1.1" 200 1 "r" "u""#,
        ));
        assert_eq!(e.query(), Some(r#"q=\"x\""#));
    }

    #[test]
    fn combined_failures_and_skips() {
        let t = "[10/Oct/2000:13:55:36 +0000]";
        for (line, want) in [
            ("", "skip"),
            ("   ", "skip"),
            (&format!(r#"192.0.2.1 - - {t} "-" 400 0"#) as &str, "skip"),
            (
                &format!(r#"192.0.2.1 - - {t} "\x16\x03\x01" 400 0"#),
                "skip",
            ),
            (&format!(r#"192.0.2.1 - - {t} "GET" 400 0"#), "skip"),
            (
                &format!(r#"mail.example - - {t} "GET / HTTP/1.1" 200 0"#),
                "fail",
            ),
            (
                r#"192.0.2.1 - - [10/Oct/2000] "GET / HTTP/1.1" 200 0"#,
                "fail",
            ),
            (
                r#"192.0.2.1 - - 10/Oct/2000:13:55:36 +0000 "GET / HTTP/1.1" 200 0"#,
                "fail",
            ),
            (
                &format!(r#"192.0.2.1 - - {t} "GET / HTTP/1.1" abc 0"#),
                "fail",
            ),
            (&format!(r#"192.0.2.1 - - {t} "GET / HTTP/1.1"#), "fail"),
            (&format!(r#"192.0.2.1 - - {t} "GET / HTTP/1.1""#), "fail"),
            ("192.0.2.1", "fail"),
            ("192.0.2.1 - -", "fail"),
            ("garbage", "fail"),
        ] {
            let got = match combined(line) {
                Parsed::Request(_) => "request",
                Parsed::Skipped(_) => "skip",
                Parsed::Failed(_) => "fail",
            };
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn json_lines() {
        let f = Fields::default();
        let e = request(json(
            r#"{"time":"2000-10-10T20:55:36Z","remote_addr":"198.51.100.7:4431","method":"POST","uri":"/api/password-reset","status":202,"account":42,"session":"tok","body":{"email":"a@b.example"}}"#,
            &f,
        ));
        assert_eq!(e.addr, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(e.account.as_deref(), Some("42"));
        assert_eq!(e.session.as_deref(), Some("tok"));
        assert_eq!(e.body.as_deref(), Some(r#"{"email":"a@b.example"}"#));
        assert_eq!(e.time, 971_211_336_000_000_000);
        // Epoch milliseconds, a body as a string, a renamed field.
        let mut f = Fields::default();
        f.set("remote_addr=client_ip").unwrap();
        let e = request(json(
            r#"{"time":971211336250,"client_ip":"::1","method":"GET","uri":"/x","status":"404","body":"{\"k\":1}"}"#,
            &f,
        ));
        assert_eq!(e.time, 971_211_336_250_000_000);
        assert_eq!(e.status, 404);
        assert_eq!(e.body.as_deref(), Some(r#"{"k":1}"#));
        assert!(f.set("nope=x").is_err());
        assert!(f.set("time").is_err());
        assert!(f.set("time=").is_err());
    }

    #[test]
    fn json_failures() {
        let f = Fields::default();
        let ok = r#""time":1,"remote_addr":"192.0.2.1","method":"GET","uri":"/","status":200"#;
        assert!(matches!(json(&format!("{{{ok}}}"), &f), Parsed::Request(_)));
        for line in [
            "{",
            "[1,2]",
            "\"text\"",
            r#"{"remote_addr":"192.0.2.1","method":"GET","uri":"/","status":200}"#,
            r#"{"time":"yesterday","remote_addr":"192.0.2.1","method":"GET","uri":"/","status":200}"#,
            r#"{"time":1,"remote_addr":"host","method":"GET","uri":"/","status":200}"#,
            r#"{"time":1,"remote_addr":"192.0.2.1","method":"get me","uri":"/","status":200}"#,
            r#"{"time":1,"remote_addr":"192.0.2.1","method":"GET","uri":"x","status":200}"#,
            r#"{"time":1,"remote_addr":"192.0.2.1","method":"GET","uri":"/","status":2000}"#,
            r#"{"time":1,"remote_addr":"192.0.2.1","method":"GET","uri":"/"}"#,
            r#"{"time":1,"remote_addr":"192.0.2.1","method":"GET","uri":"/","status":200,"body":5}"#,
        ] {
            assert!(matches!(json(line, &f), Parsed::Failed(_)), "{line}");
        }
        assert_eq!(json("", &f), Parsed::Skipped("blank line"));
    }
}
