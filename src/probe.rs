//! Probes: the endpoints an operator marks as enumerable, where their target
//! is, and how their outcome is read.

use std::fmt;

use http::{HeaderMap, Method, StatusCode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::actor::{AccountId, hash128};
use crate::config::{ConfigError, Oversized, ProbeConfig, Thresholds, positive};

/// How a probe request turned out, as the application tells the guard by
/// putting this into the response extensions. It overrides the status
/// classes, which is what an endpoint that answers 200 either way needs:
///
/// ```
/// let mut res = http::Response::new(());
/// res.extensions_mut().insert(enumguard::Outcome::Miss);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The target exists and was served (or: the identity is registered).
    Hit,
    /// The target does not exist (or: no such identity).
    Miss,
    /// The actor may not see the target.
    Denied,
}

impl Outcome {
    /// The lower-case name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Denied => "denied",
        }
    }
}

/// Whose object a probe request was about, as the application tells the
/// guard by putting this into the response extensions: the handler usually
/// knows the owner of the object it loaded (even when it forgot to check
/// it). The guard compares it with the request's account: an object the
/// caller owns is its own and never counts as foreign, however many distinct
/// ones it reads (a customer's orders, whose ids are not account ids); one
/// owned by anyone else is foreign, whatever its id.
///
/// ```
/// use enumguard::{AccountId, Owner};
/// let order_owner = AccountId::from(42u64); // loaded with the order
/// let mut res = http::Response::new(());
/// res.extensions_mut().insert(Owner(order_owner));
/// ```
///
/// A response without an `Owner` is judged as before: a target equal to the
/// caller's account id is its own (`self_target`). See also
/// [`GuardBuilder::owns`](crate::GuardBuilder::owns), which tells before the
/// handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner(pub AccountId);

impl From<AccountId> for Owner {
    fn from(a: AccountId) -> Self {
        Owner(a)
    }
}

/// A status code (`404`) or class (`"4xx"`) in an outcome rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusSpec {
    /// One status code.
    Code(u16),
    /// A class: `2` is every 2xx status.
    Class(u8),
}

impl StatusSpec {
    fn matches(self, status: StatusCode) -> bool {
        match self {
            StatusSpec::Code(c) => status.as_u16() == c,
            StatusSpec::Class(c) => status.as_u16() / 100 == c as u16,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() == 3 && (b'1'..=b'5').contains(&b[0]) && b[1..].eq_ignore_ascii_case(b"xx") {
            return Some(StatusSpec::Class(b[0] - b'0'));
        }
        s.parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
            .map(StatusSpec::Code)
    }
}

impl fmt::Display for StatusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusSpec::Code(c) => write!(f, "{c}"),
            StatusSpec::Class(c) => write!(f, "{c}xx"),
        }
    }
}

impl Serialize for StatusSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StatusSpec::Code(c) => s.serialize_u16(*c),
            StatusSpec::Class(_) => s.serialize_str(&self.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for StatusSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Str(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Int(i) => i.to_string(),
            Raw::Str(s) => s,
        };
        StatusSpec::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a status code (100..=599) or class (\"2xx\")"
            ))
        })
    }
}

/// A path pattern with `{name}` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathPattern {
    segments: Vec<Segment>,
    /// The literal text every matching path starts with (`/api/accounts/`
    /// for `/api/accounts/{id}/addressbook`): most paths are turned away
    /// by this compare alone, before any segment is looked at.
    prefix: String,
    /// The literal text every matching path ends with (`/addressbook`), or
    /// empty when the last segment is a parameter.
    suffix: String,
    /// The segments `prefix` and `suffix` do not cover: `lead..end`.
    lead: usize,
    end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl PathPattern {
    fn parse(pattern: &str) -> Result<Self, String> {
        if !pattern.starts_with('/') {
            return Err("must start with `/`".into());
        }
        let mut segments = Vec::new();
        for seg in pattern[1..].split('/') {
            if let Some(inner) = seg.strip_prefix('{') {
                let name = inner
                    .strip_suffix('}')
                    .ok_or_else(|| format!("segment `{seg}` opens `{{` without closing it"))?;
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(format!(
                        "parameter `{seg}` must be `{{name}}` with letters, digits or `_`"
                    ));
                }
                if segments
                    .iter()
                    .any(|s| matches!(s, Segment::Param(p) if p == name))
                {
                    return Err(format!("parameter `{name}` appears twice"));
                }
                segments.push(Segment::Param(name.to_owned()));
            } else if seg.contains('{') || seg.contains('}') {
                return Err(format!(
                    "segment `{seg}`: a parameter must be a whole segment"
                ));
            } else {
                segments.push(Segment::Literal(seg.to_owned()));
            }
        }
        let mut prefix = String::from("/");
        for seg in &segments {
            match seg {
                Segment::Literal(l) => {
                    prefix.push_str(l);
                    prefix.push('/');
                }
                Segment::Param(_) => break,
            }
        }
        if segments.iter().all(|s| matches!(s, Segment::Literal(_))) {
            // All literal: the whole path, without the last `/` pushed.
            prefix.pop();
        }
        let lead = segments
            .iter()
            .take_while(|s| matches!(s, Segment::Literal(_)))
            .count();
        let (suffix, end) = match segments.last() {
            // A trailing literal after a parameter.
            Some(Segment::Literal(l)) if lead < segments.len() => {
                (format!("/{l}"), segments.len() - 1)
            }
            _ => (String::new(), segments.len()),
        };
        Ok(Self {
            segments,
            prefix,
            suffix,
            lead,
            end,
        })
    }

    fn has_param(&self, name: &str) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Param(p) if p == name))
    }

    /// Matches `path`; on a match, returns the value of parameter number
    /// `capture` (the index into segments), if asked.
    fn matches<'a>(&self, path: &'a str, capture: Option<usize>) -> Option<Option<&'a str>> {
        if self.lead == self.segments.len() {
            // No parameter: the path is the literal.
            return (path == self.prefix).then_some(None);
        }
        // The literal prefix and suffix are byte compares; only the middle
        // (`42` in `/api/accounts/42/addressbook`) is split into segments.
        let inner_len = path
            .len()
            .checked_sub(self.prefix.len() + self.suffix.len())?;
        if !path.starts_with(self.prefix.as_str()) || !path.ends_with(self.suffix.as_str()) {
            return None;
        }
        let mut rest = &path[self.prefix.len()..self.prefix.len() + inner_len];
        let mut captured = None;
        for i in self.lead..self.end {
            let (part, tail) = match rest.as_bytes().iter().position(|&b| b == b'/') {
                Some(j) => (&rest[..j], Some(&rest[j + 1..])),
                None => (rest, None),
            };
            match &self.segments[i] {
                Segment::Literal(l) => {
                    if part != l {
                        return None;
                    }
                }
                Segment::Param(_) => {
                    if part.is_empty() {
                        return None;
                    }
                    if capture == Some(i) {
                        captured = Some(part);
                    }
                }
            }
            match tail {
                // More segments in the path than in the pattern.
                Some(_) if i + 1 == self.end => return None,
                Some(t) => rest = t,
                // Fewer.
                None if i + 1 < self.end => return None,
                None => {}
            }
        }
        Some(captured)
    }
}

#[derive(Debug, Clone)]
pub(crate) enum TargetSource {
    Path(usize),
    Query(String),
    Header(http::HeaderName),
    Json(Vec<String>),
}

/// A compiled probe.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    /// Shared with every refusal that names it (no allocation per refusal).
    pub(crate) name: std::sync::Arc<str>,
    method: Option<Method>,
    pattern: PathPattern,
    pub(crate) source: TargetSource,
    pub(crate) self_target: bool,
    hit: Vec<StatusSpec>,
    miss: Vec<StatusSpec>,
    denied: Vec<StatusSpec>,
    pub(crate) body_limit: usize,
    pub(crate) oversized: Oversized,
    pub(crate) thresholds: Thresholds,
}

/// Bodies larger than this are never buffered, whatever a probe says.
pub(crate) const MAX_BODY_LIMIT: usize = 1 << 20;

impl Probe {
    pub(crate) fn compile(i: usize, p: &ProbeConfig) -> Result<Self, ConfigError> {
        let field = |f: &str| format!("probes[{i}].{f}");
        if p.name.is_empty() || p.name.len() > 64 {
            return Err(ConfigError::invalid(
                field("name"),
                p.name.clone(),
                "must be 1..=64 characters",
            ));
        }
        let method = if p.method == "*" {
            None
        } else {
            Some(
                Method::from_bytes(p.method.to_ascii_uppercase().as_bytes()).map_err(|_| {
                    ConfigError::invalid(field("method"), p.method.clone(), "not an HTTP method")
                })?,
            )
        };
        let pattern = PathPattern::parse(&p.path)
            .map_err(|m| ConfigError::invalid(field("path"), p.path.clone(), m))?;
        let t = &p.target;
        let set = [
            t.path.is_some(),
            t.query.is_some(),
            t.header.is_some(),
            t.json.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set != 1 {
            return Err(ConfigError::invalid(
                field("target"),
                format!("{set} sources"),
                "set exactly one of path, query, header, json",
            ));
        }
        let source = if let Some(name) = &t.path {
            if !pattern.has_param(name) {
                return Err(ConfigError::invalid(
                    field("target.path"),
                    name.clone(),
                    format!("the path `{}` has no parameter `{{{name}}}`", p.path),
                ));
            }
            let idx = pattern
                .segments
                .iter()
                .position(|s| matches!(s, Segment::Param(n) if n == name))
                .unwrap_or(0);
            TargetSource::Path(idx)
        } else if let Some(q) = &t.query {
            if q.is_empty() {
                return Err(ConfigError::invalid(
                    field("target.query"),
                    "",
                    "must not be empty",
                ));
            }
            TargetSource::Query(q.clone())
        } else if let Some(h) = &t.header {
            TargetSource::Header(http::HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                ConfigError::invalid(field("target.header"), h.clone(), "not a header name")
            })?)
        } else {
            let j = t.json.as_deref().unwrap_or_default();
            if j.is_empty() || j.split('.').any(str::is_empty) {
                return Err(ConfigError::invalid(
                    field("target.json"),
                    j,
                    "must be a field name, dots between nested names",
                ));
            }
            TargetSource::Json(j.split('.').map(str::to_owned).collect())
        };
        if p.body_limit == 0 || p.body_limit > MAX_BODY_LIMIT {
            return Err(ConfigError::invalid(
                field("body_limit"),
                p.body_limit.to_string(),
                format!("must be 1..={MAX_BODY_LIMIT}"),
            ));
        }
        let thresholds = p.effective_thresholds(i)?;
        check_thresholds(i, &thresholds)?;
        let self_target = p
            .self_target
            .unwrap_or(matches!(p.style, crate::config::ProbeStyle::Objects));
        Ok(Self {
            name: std::sync::Arc::from(p.name.as_str()),
            method,
            pattern,
            source,
            self_target,
            hit: p.outcome.hit.clone(),
            miss: p.outcome.miss.clone(),
            denied: p.outcome.denied.clone(),
            body_limit: p.body_limit,
            oversized: p.oversized.unwrap_or(match p.style {
                crate::config::ProbeStyle::Identities => Oversized::Refuse,
                crate::config::ProbeStyle::Objects => Oversized::Pass,
            }),
            thresholds,
        })
    }

    /// Whether the request is for this probe; if so, the path target (for
    /// path probes).
    pub(crate) fn matches<'a>(&self, method: &Method, path: &'a str) -> Option<Option<&'a str>> {
        if let Some(m) = &self.method {
            if m != method {
                return None;
            }
        }
        let capture = match self.source {
            TargetSource::Path(i) => Some(i),
            _ => None,
        };
        self.pattern.matches(path, capture)
    }

    pub(crate) fn needs_body(&self) -> bool {
        matches!(self.source, TargetSource::Json(_))
    }

    /// The target bytes from the request head (not for JSON targets).
    pub(crate) fn head_target<'a>(
        &self,
        path_capture: Option<&'a str>,
        query: Option<&'a str>,
        headers: &'a HeaderMap,
        buf: &'a mut [u8; TARGET_BUF],
    ) -> Option<&'a [u8]> {
        match &self.source {
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
                let v = headers.get(h)?.as_bytes().trim_ascii();
                if v.is_empty() { None } else { Some(v) }
            }
            TargetSource::Json(_) => None,
        }
    }

    /// The target from a JSON body. A body that is not JSON or lacks the
    /// field counts as its whole self, so hiding the target never hides the
    /// request (an empty body counts nothing).
    pub(crate) fn json_target_or_body(
        &self,
        body: &[u8],
        account: Option<&AccountId>,
        key: (u64, u64),
    ) -> Option<TargetInfo> {
        self.json_target(body, account, key).or_else(|| {
            (!body.trim_ascii().is_empty())
                .then(|| TargetInfo::new(body, account, self.self_target, key))
        })
    }

    /// The target from a JSON body, as bytes hashed into `TargetInfo`.
    pub(crate) fn json_target(
        &self,
        body: &[u8],
        account: Option<&AccountId>,
        key: (u64, u64),
    ) -> Option<TargetInfo> {
        let TargetSource::Json(path) = &self.source else {
            return None;
        };
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let mut v = &value;
        for name in path {
            v = v.get(name)?;
        }
        match v {
            serde_json::Value::String(s) if !s.is_empty() => Some(TargetInfo::new(
                s.as_bytes(),
                account,
                self.self_target,
                key,
            )),
            serde_json::Value::Number(n) => Some(TargetInfo::new(
                n.to_string().as_bytes(),
                account,
                self.self_target,
                key,
            )),
            _ => None,
        }
    }

    /// How the response turned out; `None` for statuses in no class.
    pub(crate) fn classify(&self, status: StatusCode, ext: &http::Extensions) -> Option<Outcome> {
        if let Some(o) = ext.get::<Outcome>() {
            return Some(*o);
        }
        // Specific codes win over classes: `miss = [404]` beats `denied = ["4xx"]`.
        let exact = |list: &[StatusSpec]| {
            list.iter()
                .any(|s| matches!(s, StatusSpec::Code(c) if *c == status.as_u16()))
        };
        let any = |list: &[StatusSpec]| list.iter().any(|s| s.matches(status));
        if exact(&self.miss) {
            return Some(Outcome::Miss);
        }
        if exact(&self.denied) {
            return Some(Outcome::Denied);
        }
        if exact(&self.hit) {
            return Some(Outcome::Hit);
        }
        if any(&self.miss) {
            return Some(Outcome::Miss);
        }
        if any(&self.denied) {
            return Some(Outcome::Denied);
        }
        if any(&self.hit) {
            return Some(Outcome::Hit);
        }
        None
    }
}

fn check_thresholds(i: usize, t: &Thresholds) -> Result<(), ConfigError> {
    let f = |name: &str| format!("probes[{i}].thresholds.{name}");
    if t.window_secs == 0 {
        return Err(ConfigError::invalid(
            f("window_secs"),
            "0",
            "must be at least 1",
        ));
    }
    if t.long_half_life_secs == 0 {
        return Err(ConfigError::invalid(
            f("long_half_life_secs"),
            "0",
            "must be at least 1",
        ));
    }
    for (name, v) in [("miss_ratio", t.miss_ratio), ("throttle_at", t.throttle_at)] {
        if !(v.is_finite() && v > 0.0 && v <= 1.0) {
            return Err(ConfigError::invalid(
                f(name),
                v.to_string(),
                "must be in (0, 1]",
            ));
        }
    }
    for (name, v) in [
        ("sequential_factor", t.sequential_factor),
        ("cadence_factor", t.cadence_factor),
    ] {
        if !(v.is_finite() && v >= 1.0) {
            return Err(ConfigError::invalid(
                f(name),
                v.to_string(),
                "must be at least 1",
            ));
        }
    }
    if t.sequential_run > u8::MAX as u32 {
        return Err(ConfigError::invalid(
            f("sequential_run"),
            t.sequential_run.to_string(),
            format!("must be at most {} (0 turns it off)", u8::MAX),
        ));
    }
    if !(t.miss_cap.is_finite() && (t.miss_cap == 0.0 || t.miss_cap >= 1.0)) {
        return Err(ConfigError::invalid(
            f("miss_cap"),
            t.miss_cap.to_string(),
            "must be 0 (off) or at least 1",
        ));
    }
    for (name, v) in [
        ("baseline_miss_ratio", t.baseline_miss_ratio),
        ("baseline_foreign_ratio", t.baseline_foreign_ratio),
        ("repeat_miss_ratio", t.repeat_miss_ratio),
    ] {
        if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
            return Err(ConfigError::invalid(
                f(name),
                v.to_string(),
                "must be in [0, 1]",
            ));
        }
    }
    for (name, v) in [
        ("anomaly_factor", t.anomaly_factor),
        ("repeat_factor", t.repeat_factor),
        ("stranger_factor", t.stranger_factor),
    ] {
        if !(v.is_finite() && v > 0.0 && v <= 1.0) {
            return Err(ConfigError::invalid(
                f(name),
                v.to_string(),
                "must be in (0, 1]",
            ));
        }
    }
    positive(&f("kind_factors.ip"), t.kind_factors.ip)?;
    positive(&f("kind_factors.subnet"), t.kind_factors.subnet)?;
    positive(&f("kind_factors.session"), t.kind_factors.session)?;
    positive(&f("kind_factors.account"), t.kind_factors.account)?;
    if t.foreign_block == 0 && t.miss_block == 0 && t.denied_block == 0 {
        return Err(ConfigError::invalid(
            f("foreign_block"),
            "0",
            "at least one of foreign_block, miss_block, denied_block must be set",
        ));
    }
    Ok(())
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

/// A target, reduced to what the signals need: a hash, its numeric value if
/// it is a number, and whether it is the actor's own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TargetInfo {
    pub(crate) hash: u64,
    pub(crate) numeric: Option<u64>,
    /// The target is the actor's own object: its account id (for a probe
    /// with `self_target`), or what the application said (an
    /// [`Owner`](crate::Owner) in the response, or the ownership hook).
    pub(crate) is_self: bool,
    /// The probe has own objects (`self_target`): only hits on own objects
    /// are history there; elsewhere, hits on a target found before.
    pub(crate) self_target: bool,
}

impl TargetInfo {
    /// `key` is the guard's secret sketch key: which sketch bit a target
    /// sets must not be predictable, or an attacker could pick targets that
    /// all share one bit and count as one.
    pub(crate) fn new(
        bytes: &[u8],
        account: Option<&AccountId>,
        self_target: bool,
        key: (u64, u64),
    ) -> Self {
        let h = hash128(crate::actor::ACCOUNT_KEYS_PUB, bytes);
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OutcomeConfig, TargetConfig};

    const K: (u64, u64) = (1, 2);

    fn probe(path: &str, target: TargetConfig) -> Probe {
        Probe::compile(0, &ProbeConfig::objects("p", "GET", path, target)).unwrap()
    }

    /// The matcher's meaning, written the plain way: split on `/`, as
    /// many parts as segments, literals equal, parameters non-empty.
    fn reference_match<'a>(
        pattern: &PathPattern,
        path: &'a str,
        capture: Option<usize>,
    ) -> Option<Option<&'a str>> {
        let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        if parts.len() != pattern.segments.len() {
            return None;
        }
        let mut captured = None;
        for (i, (seg, part)) in pattern.segments.iter().zip(&parts).enumerate() {
            match seg {
                Segment::Literal(l) if part != l => return None,
                Segment::Param(_) if part.is_empty() => return None,
                Segment::Param(_) if capture == Some(i) => captured = Some(*part),
                _ => {}
            }
        }
        Some(captured)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        /// The prefix/suffix fast path never changes what matches.
        #[test]
        fn matcher_agrees_with_reference(
            pattern in proptest::sample::select(vec![
                "/", "/a", "/a/b", "/a/{id}", "/{id}", "/{id}/a", "/a/{id}/b",
                "/a/{id}/", "/a//{id}", "/a/{x}/{y}/b", "/ab/{id}/ab",
            ]),
            path in "(/(a|b|ab|x|1|)){0,5}",
            capture in 0usize..4,
        ) {
            let pat = PathPattern::parse(pattern).unwrap();
            for p in [path.as_str(), path.trim_start_matches('/')] {
                proptest::prop_assert_eq!(
                    pat.matches(p, Some(capture)),
                    reference_match(&pat, p, Some(capture)),
                    "pattern {} path {:?}", pattern, p
                );
            }
        }
    }

    #[test]
    fn path_pattern_matches() {
        let p = probe("/api/accounts/{id}/addressbook", TargetConfig::path("id"));
        assert_eq!(
            p.matches(&Method::GET, "/api/accounts/42/addressbook"),
            Some(Some("42"))
        );
        assert_eq!(
            p.matches(&Method::POST, "/api/accounts/42/addressbook"),
            None
        );
        assert_eq!(p.matches(&Method::GET, "/api/accounts/42"), None);
        assert_eq!(p.matches(&Method::GET, "/api/accounts//addressbook"), None);
        assert_eq!(
            p.matches(&Method::GET, "/api/accounts/42/addressbook/x"),
            None
        );
    }

    #[test]
    fn bad_patterns_are_config_errors() {
        for (path, target) in [
            ("api/{id}", TargetConfig::path("id")),
            ("/api/{id", TargetConfig::path("id")),
            ("/api/x{id}", TargetConfig::path("id")),
            ("/api/{id}", TargetConfig::path("other")),
        ] {
            let e = Probe::compile(0, &ProbeConfig::objects("p", "GET", path, target)).unwrap_err();
            assert!(e.field().unwrap().starts_with("probes[0]."), "{e}");
        }
        let mut two = TargetConfig::path("id");
        two.query = Some("q".into());
        let e = Probe::compile(0, &ProbeConfig::objects("p", "GET", "/a/{id}", two)).unwrap_err();
        assert_eq!(e.field(), Some("probes[0].target"));
    }

    #[test]
    fn query_target_is_decoded() {
        let p = probe("/lookup", TargetConfig::query("email"));
        let h = HeaderMap::new();
        let mut buf = [0u8; TARGET_BUF];
        let t = p.head_target(None, Some("x=1&email=a%40b.test&y"), &h, &mut buf);
        assert_eq!(t, Some(&b"a@b.test"[..]));
        // Without the name, the whole query is the target.
        let mut buf = [0u8; TARGET_BUF];
        assert_eq!(
            p.head_target(None, Some("x=1"), &h, &mut buf),
            Some(&b"x=1"[..])
        );
        let mut buf = [0u8; TARGET_BUF];
        assert_eq!(p.head_target(None, None, &h, &mut buf), None);
        // An encoded key is the same key.
        let mut buf = [0u8; TARGET_BUF];
        assert_eq!(
            p.head_target(None, Some("%65mail=guess%40x"), &h, &mut buf),
            Some(&b"guess@x"[..])
        );
        // A name given twice with different values: the whole query.
        let mut buf = [0u8; TARGET_BUF];
        assert_eq!(
            p.head_target(None, Some("email=decoy&email=guess"), &h, &mut buf),
            Some(&b"email=decoy&email=guess"[..])
        );
        let mut buf = [0u8; TARGET_BUF];
        assert_eq!(
            p.head_target(None, Some("email=same&email=same"), &h, &mut buf),
            Some(&b"same"[..])
        );
        let mut buf = [0u8; TARGET_BUF];
        // A broken escape is kept as is, never a panic.
        assert_eq!(
            p.head_target(None, Some("email=%4"), &h, &mut buf),
            Some(&b"%4"[..])
        );
        let mut buf = [0u8; TARGET_BUF];
        assert_eq!(
            p.head_target(None, Some("email=%zz%"), &h, &mut buf),
            Some(&b"%zz%"[..])
        );
    }

    #[test]
    fn classify_prefers_extension_then_exact_codes() {
        let mut p = probe("/a/{id}", TargetConfig::path("id"));
        let ext = http::Extensions::new();
        assert_eq!(p.classify(StatusCode::OK, &ext), Some(Outcome::Hit));
        assert_eq!(p.classify(StatusCode::NOT_FOUND, &ext), Some(Outcome::Miss));
        assert_eq!(
            p.classify(StatusCode::FORBIDDEN, &ext),
            Some(Outcome::Denied)
        );
        assert_eq!(p.classify(StatusCode::INTERNAL_SERVER_ERROR, &ext), None);
        let mut ext2 = http::Extensions::new();
        ext2.insert(Outcome::Miss);
        assert_eq!(p.classify(StatusCode::OK, &ext2), Some(Outcome::Miss));
        let oc: OutcomeConfig =
            toml::from_str("hit = [409]\nmiss = [\"2xx\"]\ndenied = [\"4xx\"]").unwrap();
        p.hit = oc.hit;
        p.miss = oc.miss;
        p.denied = oc.denied;
        assert_eq!(p.classify(StatusCode::CONFLICT, &ext), Some(Outcome::Hit));
        assert_eq!(p.classify(StatusCode::CREATED, &ext), Some(Outcome::Miss));
        assert_eq!(
            p.classify(StatusCode::UNAUTHORIZED, &ext),
            Some(Outcome::Denied)
        );
    }

    #[test]
    fn status_spec_rejects_nonsense() {
        assert!(toml::from_str::<OutcomeConfig>("hit = [\"7xx\"]").is_err());
        assert!(toml::from_str::<OutcomeConfig>("hit = [99]").is_err());
    }

    #[test]
    fn json_target() {
        let p = Probe::compile(
            0,
            &ProbeConfig::identities("p", "POST", "/reset", TargetConfig::json("user.email")),
        )
        .unwrap();
        let t = p
            .json_target(br#"{"user":{"email":"a@b"}}"#, None, K)
            .unwrap();
        assert_eq!(t.hash, TargetInfo::new(b"a@b", None, false, K).hash);
        assert!(p.json_target(b"not json", None, K).is_none());
        // Unreadable bodies count as themselves; empty ones count nothing.
        assert!(p.json_target_or_body(b"not json", None, K).is_some());
        assert!(p.json_target_or_body(b"  ", None, K).is_none());
        assert!(p.json_target(br#"{"user":{}}"#, None, K).is_none());
    }

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
