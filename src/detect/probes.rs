//! The compiled probe: pattern, target source, outcome rules, thresholds
//! and view settings in the units the hot path uses. Plain data: its live
//! state is the detector's, by slot (see `live.rs`).

use std::ops::Range;
use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode};

use super::view::ViewParams;
use crate::clock::Span;
use crate::config::{Oversized, ProbeConfig, ProbeParts, ServiceViewConfig, Thresholds};
use crate::probe::{Methods, Outcome, OutcomeRules, PathPattern, TARGET_BUF, TargetSource};

/// A probe, compiled.
pub(crate) struct Probe {
    /// Shared with every refusal that names it (no allocation per refusal).
    pub(crate) name: Arc<str>,
    /// Its slot in the state: the byte in each record's key. Kept by name
    /// across reloads.
    pub(crate) slot: u8,
    method: Methods,
    pattern: PathPattern,
    pub(crate) source: TargetSource,
    pub(crate) self_target: bool,
    /// `needs_login` as configured (`None`: learned).
    pub(crate) needs_login: Option<bool>,
    rules: OutcomeRules,
    pub(crate) body_limit: usize,
    pub(crate) oversized: Oversized,
    pub(crate) thresholds: Thresholds,
    /// `thresholds.window_secs` and `long_half_life_secs`, in nanoseconds.
    pub(crate) window: Span,
    pub(crate) long: Span,
    /// Foreign targets are this probe's tell (a foreign threshold: objects
    /// with owners): the service-wide view watches their rate, and a young
    /// account at a suspect address is watched on them.
    pub(crate) watch_foreign: bool,
    /// The service-wide view's settings for this probe.
    pub(crate) view: ViewParams,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("name", &self.name)
            .field("method", &self.method)
            .field("path", &self.pattern.to_pattern_string())
            .finish_non_exhaustive()
    }
}

impl Probe {
    /// Compiles a probe from its parsed parts, into slot `slot`.
    pub(crate) fn compile(
        parts: ProbeParts,
        p: &ProbeConfig,
        slot: u8,
        view_cfg: &ServiceViewConfig,
    ) -> Self {
        let t = parts.thresholds;
        // Objects with owners (by id, an `Owner` or the ownership hook):
        // foreign reads are the tell.
        let watch_foreign = t.foreign_block > 0;
        Self {
            name: Arc::from(p.name.as_str()),
            slot,
            method: parts.method,
            pattern: parts.pattern,
            source: parts.source,
            self_target: parts.self_target,
            needs_login: p.needs_login,
            rules: OutcomeRules::new(
                p.outcome.hit.clone(),
                p.outcome.miss.clone(),
                p.outcome.denied.clone(),
            ),
            body_limit: p.body_limit,
            oversized: parts.oversized,
            window: Span::from_secs(t.window_secs),
            long: Span::from_secs(t.long_half_life_secs),
            thresholds: t,
            watch_foreign,
            view: ViewParams::new(view_cfg, watch_foreign),
        }
    }

    /// The path pattern as written.
    pub(crate) fn pattern(&self) -> String {
        self.pattern.to_pattern_string()
    }

    /// Whether the request is for this probe; if so, where its path target
    /// lies in `path` (for path probes), as a byte range.
    #[inline]
    pub(crate) fn matches(&self, method: &Method, path: &str) -> Option<Option<Range<usize>>> {
        if !self.method.contains(method) {
            return None;
        }
        self.pattern.matches(path, self.source.path_param())
    }

    /// Whether the target is in the body.
    pub(crate) fn needs_body(&self) -> bool {
        self.source.in_body()
    }

    /// The target bytes from the request head (not for JSON targets).
    pub(crate) fn head_target<'a>(
        &self,
        path_capture: Option<&'a str>,
        query: Option<&'a str>,
        headers: &'a HeaderMap,
        buf: &'a mut [u8; TARGET_BUF],
    ) -> Option<&'a [u8]> {
        self.source.head_target(path_capture, query, headers, buf)
    }

    /// How the response turned out; `None` for statuses in no class.
    pub(crate) fn classify(&self, status: StatusCode, ext: &http::Extensions) -> Option<Outcome> {
        self.rules.classify(status, ext)
    }

    /// How a status turned out by the rules alone.
    pub(crate) fn classify_status(&self, status: StatusCode) -> Option<Outcome> {
        self.rules.classify_status(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;
    use crate::config::{OutcomeConfig, TargetConfig};

    fn probe(path: &str, target: TargetConfig) -> Probe {
        compile(&ProbeConfig::objects("p", "GET", path, target)).unwrap()
    }

    fn compile(p: &ProbeConfig) -> Result<Probe, ConfigError> {
        let mut config = crate::Config::default();
        config.probes.push(p.clone());
        let parts = config.parse()?.probes.remove(0);
        Ok(Probe::compile(parts, p, 0, &ServiceViewConfig::default()))
    }

    fn capture<'a>(p: &Probe, m: &Method, path: &'a str) -> Option<Option<&'a str>> {
        p.matches(m, path).map(|c| c.map(|r| &path[r]))
    }

    #[test]
    fn path_pattern_matches() {
        let p = probe("/api/accounts/{id}/addressbook", TargetConfig::path("id"));
        assert_eq!(
            capture(&p, &Method::GET, "/api/accounts/42/addressbook"),
            Some(Some("42"))
        );
        assert_eq!(
            capture(&p, &Method::POST, "/api/accounts/42/addressbook"),
            None
        );
        assert_eq!(capture(&p, &Method::GET, "/api/accounts/42"), None);
        assert_eq!(
            capture(&p, &Method::GET, "/api/accounts//addressbook"),
            None
        );
        assert_eq!(
            capture(&p, &Method::GET, "/api/accounts/42/addressbook/x"),
            None
        );
        let two = probe("/a/{x}/b/{id}", TargetConfig::path("id"));
        assert_eq!(capture(&two, &Method::GET, "/a/xx/b/77"), Some(Some("77")));
    }

    #[test]
    fn bad_patterns_are_config_errors() {
        for (path, target) in [
            ("api/{id}", TargetConfig::path("id")),
            ("/api/{id", TargetConfig::path("id")),
            ("/api/x{id}", TargetConfig::path("id")),
            ("/api/{id}", TargetConfig::path("other")),
        ] {
            let e = compile(&ProbeConfig::objects("p", "GET", path, target)).unwrap_err();
            assert!(e.field().unwrap().starts_with("probes[0]."), "{e}");
        }
    }

    /// A path in another router's syntax gets a hint at ours.
    #[test]
    fn a_colon_parameter_hints_at_braces() {
        let e = compile(&ProbeConfig::objects(
            "p",
            "GET",
            "/orders/:id",
            TargetConfig::path("id"),
        ))
        .unwrap_err();
        assert_eq!(e.field(), Some("probes[0].target.path"));
        assert!(e.to_string().contains("`{id}`, not `:id`"), "{e}");
    }

    #[test]
    fn query_target_is_decoded() {
        let p = probe("/lookup", TargetConfig::query("email"));
        let h = HeaderMap::new();
        let t = |q: Option<&str>| {
            let mut buf = [0u8; TARGET_BUF];
            p.head_target(None, q, &h, &mut buf).map(|b| b.to_vec())
        };
        assert_eq!(
            t(Some("x=1&email=a%40b.test&y")).as_deref(),
            Some(&b"a@b.test"[..])
        );
        // Without the name, the whole query is the target.
        assert_eq!(t(Some("x=1")).as_deref(), Some(&b"x=1"[..]));
        assert_eq!(t(None), None);
        // An encoded key is the same key.
        assert_eq!(
            t(Some("%65mail=guess%40x")).as_deref(),
            Some(&b"guess@x"[..])
        );
        // A name given twice with different values: the whole query.
        assert_eq!(
            t(Some("email=decoy&email=guess")).as_deref(),
            Some(&b"email=decoy&email=guess"[..])
        );
        assert_eq!(
            t(Some("email=same&email=same")).as_deref(),
            Some(&b"same"[..])
        );
        // A broken escape is kept as is, never a panic.
        assert_eq!(t(Some("email=%4")).as_deref(), Some(&b"%4"[..]));
        assert_eq!(t(Some("email=%zz%")).as_deref(), Some(&b"%zz%"[..]));
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
        p.rules = OutcomeRules::new(oc.hit, oc.miss, oc.denied);
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
        let p = compile(&ProbeConfig::identities(
            "p",
            "POST",
            "/reset",
            TargetConfig::json("user.email"),
        ))
        .unwrap();
        let t = |b: &[u8]| p.source.json_target(b, |t| t.to_vec());
        assert_eq!(
            t(br#"{"user":{"email":"a@b"}}"#).as_deref(),
            Some(&b"a@b"[..])
        );
        assert_eq!(t(br#"{"user":{"email":42}}"#).as_deref(), Some(&b"42"[..]));
        // Unreadable bodies, or without the field, count as themselves;
        // empty ones count nothing.
        assert_eq!(t(b"not json").as_deref(), Some(&b"not json"[..]));
        assert_eq!(
            t(br#"{"user":{}}"#).as_deref(),
            Some(&br#"{"user":{}}"#[..])
        );
        assert_eq!(t(b"  "), None);
        // A key given twice (however it is escaped): parsers disagree on
        // which wins, so a decoy beside the guess never chooses the target;
        // the whole body counts.
        for body in [
            &br#"{"user":{"email":"decoy","email":"guess1"}}"#[..],
            br#"{"user":{"\u0065mail":"guess1","email":"decoy"}}"#,
            br#"{"user":{"email":"decoy"},"user":{"email":"guess1"}}"#,
        ] {
            assert_eq!(
                t(body).as_deref(),
                Some(body),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Other keys twice are nobody's business; trailing bytes make it
        // not JSON (the whole body).
        assert_eq!(
            t(br#"{"pad":1,"pad":2,"user":{"email":"a@b"}}"#).as_deref(),
            Some(&b"a@b"[..])
        );
        assert_eq!(
            t(br#"{"user":{"email":"a@b"}} x"#).as_deref(),
            Some(&br#"{"user":{"email":"a@b"}} x"#[..])
        );
    }
}
