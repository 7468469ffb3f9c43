//! Every check a config must pass before a guard is built from it, and
//! the one parse of what it holds as text (CIDRs, keys, header names,
//! probes): [`Config::validate`] and the detector's compile both read
//! [`Parsed`].

use super::checks::duration;
use super::thresholds::check_thresholds;
use super::{
    Config, ConfigError, Oversized, ProbeConfig, ProbeStyle, SessionSource, TargetConfig,
    Thresholds,
};
use crate::actor::Cidr;
use crate::probe::{PathPattern, TargetSource};

/// Bodies larger than this are never buffered, whatever a probe says.
pub(crate) const MAX_BODY_LIMIT: usize = 1 << 20;

/// The most probes one guard holds (their index is a byte in each record's key).
pub(crate) const MAX_PROBES: usize = 255;

/// What a config holds as text, parsed: made once, by [`Config::parse`].
pub(crate) struct Parsed {
    pub(crate) trusted: Vec<Cidr>,
    pub(crate) allow: Vec<Cidr>,
    pub(crate) deny: Vec<Cidr>,
    /// The session header's name (a `&str` lookup parses it on every
    /// request).
    pub(crate) session_header: Option<http::HeaderName>,
    pub(crate) session_key: Option<(u64, u64)>,
    /// Each probe's parts, in config order.
    pub(crate) probes: Vec<ProbeParts>,
}

impl Config {
    /// Checks every field: what [`GuardBuilder::build`](crate::GuardBuilder::build)
    /// runs. The same parse as [`Config::compile`], whose result it drops.
    ///
    /// ```
    /// let mut config = enumguard::Config::default();
    /// config.trusted_proxies = vec!["10.0.0.0/8".into()];
    /// assert!(config.validate().is_ok());
    /// config.trusted_proxies.push("10.0.0.0/33".into());
    /// assert_eq!(config.validate().unwrap_err().field(), Some("trusted_proxies[1]"));
    /// ```
    ///
    /// # Errors
    /// The first invalid field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.parse().map(drop)
    }

    /// Checks every field and parses what is text, once.
    pub(crate) fn parse(&self) -> Result<Parsed, ConfigError> {
        let prefix = |field: &str, v: u8, max: u8| {
            if v > max {
                Err(ConfigError::invalid(
                    field,
                    v.to_string(),
                    format!("must be 0..={max}"),
                ))
            } else {
                Ok(v)
            }
        };
        prefix("ip_v4_prefix", self.ip_v4_prefix, 32)?;
        prefix("ip_v6_prefix", self.ip_v6_prefix, 128)?;
        prefix("subnet_v4_prefix", self.subnet_v4_prefix, 32)?;
        prefix("subnet_v6_prefix", self.subnet_v6_prefix, 128)?;
        for (field, subnet, ip) in [
            ("subnet_v4_prefix", self.subnet_v4_prefix, self.ip_v4_prefix),
            ("subnet_v6_prefix", self.subnet_v6_prefix, self.ip_v6_prefix),
        ] {
            if subnet > ip {
                return Err(ConfigError::invalid(
                    field,
                    subnet.to_string(),
                    format!("must be at most the ip prefix ({ip}): a subnet holds its addresses"),
                ));
            }
        }
        let trusted = parse_cidrs("trusted_proxies", &self.trusted_proxies)?;
        if let Some(p) = &self.proxy {
            p.validate(self.session.is_some())?;
        }
        let allow = parse_cidrs("allow.cidrs", &self.allow.cidrs)?;
        let deny = parse_cidrs("deny.cidrs", &self.deny.cidrs)?;
        let mut session_header = None;
        if let Some(SessionSource::Header(h) | SessionSource::Cookie(h)) = &self.session {
            let header = matches!(self.session, Some(SessionSource::Header(_)));
            let field = if header {
                "session.header"
            } else {
                "session.cookie"
            };
            let name = (!h.is_empty())
                .then(|| http::HeaderName::from_bytes(h.as_bytes()).ok())
                .flatten()
                .ok_or_else(|| {
                    ConfigError::invalid(field, h.clone(), "not a valid header or cookie name")
                })?;
            session_header = header.then_some(name);
        }
        let session_key = match &self.session_key {
            Some(k) => Some(parse_key(k).ok_or_else(|| {
                ConfigError::invalid("session_key", REDACTED, "must be exactly 32 hex digits")
            })?),
            None => None,
        };
        if self.limits.max_actors < 16 {
            return Err(ConfigError::invalid(
                "limits.max_actors",
                self.limits.max_actors.to_string(),
                "must be at least 16",
            ));
        }
        if self.limits.max_verdicts < 16 {
            return Err(ConfigError::invalid(
                "limits.max_verdicts",
                self.limits.max_verdicts.to_string(),
                "must be at least 16",
            ));
        }
        // `throttle.per_minute`, `throttle.burst`, `blocks.factor`,
        // `service_view.min_requests` and `per_address` are `NonZeroU32`: a 0
        // is refused while the file is read, naming the field.
        duration("throttle.duration_secs", self.throttle.duration_secs)?;
        duration("blocks.base_secs", self.blocks.base_secs)?;
        duration("blocks.max_secs", self.blocks.max_secs)?;
        if self.blocks.max_secs < self.blocks.base_secs {
            return Err(ConfigError::invalid(
                "blocks.max_secs",
                self.blocks.max_secs.to_string(),
                "must be at least blocks.base_secs",
            ));
        }
        if self.throttle.duration_secs > self.blocks.max_secs {
            return Err(ConfigError::invalid(
                "throttle.duration_secs",
                self.throttle.duration_secs.to_string(),
                format!(
                    "must be at most blocks.max_secs ({}): a throttle is the milder verdict",
                    self.blocks.max_secs
                ),
            ));
        }
        for (field, status) in [
            ("responses.block_status", self.responses.block_status),
            ("responses.throttle_status", self.responses.throttle_status),
        ] {
            if !(400..=599).contains(&status) {
                return Err(ConfigError::invalid(
                    field,
                    status.to_string(),
                    "must be a 4xx or 5xx status",
                ));
            }
        }
        unit("links.boost", self.links.boost)?;
        if !(self.links.watch_factor.is_finite()
            && self.links.watch_factor > 0.0
            && self.links.watch_factor <= 1.0)
        {
            return Err(ConfigError::invalid(
                "links.watch_factor",
                self.links.watch_factor.to_string(),
                "must be in (0, 1]",
            ));
        }
        duration("links.half_life_secs", self.links.half_life_secs)?;
        duration("links.new_actor_secs", self.links.new_actor_secs)?;
        // A record counts history hits up to 255.
        if !(1..=u32::from(u8::MAX)).contains(&self.links.history_hits) {
            return Err(ConfigError::invalid(
                "links.history_hits",
                self.links.history_hits.to_string(),
                format!(
                    "must be 1..={} (0 would give every actor history at its first request)",
                    u8::MAX
                ),
            ));
        }
        duration("service_view.bucket_secs", self.service_view.bucket_secs)?;
        if !(self.service_view.ratio.is_finite() && self.service_view.ratio >= 1.0) {
            return Err(ConfigError::invalid(
                "service_view.ratio",
                self.service_view.ratio.to_string(),
                "must be at least 1 (a rate at or above the baseline times this)",
            ));
        }
        unit("service_view.margin", self.service_view.margin)?;
        if !(self.service_view.alpha.is_finite()
            && self.service_view.alpha > 0.0
            && self.service_view.alpha <= 1.0)
        {
            return Err(ConfigError::invalid(
                "service_view.alpha",
                self.service_view.alpha.to_string(),
                "must be in (0, 1] (0 would never learn a baseline)",
            ));
        }
        if let Some(c) = &self.cluster {
            self.check_cluster(c)?;
        }
        if self.probes.len() > MAX_PROBES {
            return Err(ConfigError::invalid(
                "probes",
                self.probes.len().to_string(),
                format!("at most {MAX_PROBES} probes"),
            ));
        }
        let mut probes = Vec::with_capacity(self.probes.len());
        for (i, p) in self.probes.iter().enumerate() {
            if self.probes[..i].iter().any(|q| q.name == p.name) {
                return Err(ConfigError::invalid(
                    format!("probes[{i}].name"),
                    p.name.clone(),
                    "another probe has this name",
                ));
            }
            probes.push(probe_parts(i, p)?);
        }
        Ok(Parsed {
            trusted,
            allow,
            deny,
            session_header,
            session_key,
            probes,
        })
    }
}

impl Config {
    fn check_cluster(&self, c: &super::ClusterConfig) -> Result<(), ConfigError> {
        if !cfg!(feature = "redis") {
            return Err(ConfigError::invalid(
                "cluster",
                "",
                "this build of enumguard has no `redis` feature: build it with `--features redis`",
            ));
        }
        let schemes: &[&str] = &["redis://", "rediss://", "unix://", "redis+unix://"];
        let well_formed = |url: &str, schemes: &[&str]| {
            schemes
                .iter()
                .any(|s| url.starts_with(s) && url.len() > s.len())
        };
        match (c.redis_url.trim(), c.redis_cluster.as_slice()) {
            ("", []) => {
                return Err(ConfigError::invalid(
                    "cluster.redis_url",
                    "",
                    "a cluster needs `redis_url` (one Redis server) or `redis_cluster` (nodes of a Redis Cluster)",
                ));
            }
            (url, []) => {
                if !well_formed(url, schemes) {
                    return Err(ConfigError::invalid(
                        "cluster.redis_url",
                        redact(url),
                        "must be redis://host:port, rediss://host:port (TLS) or unix:///path",
                    ));
                }
            }
            ("", nodes) => {
                if nodes.len() > MAX_SEEDS {
                    return Err(ConfigError::invalid(
                        "cluster.redis_cluster",
                        nodes.len().to_string(),
                        format!("at most {MAX_SEEDS} nodes: the others are found from them"),
                    ));
                }
                for (i, url) in nodes.iter().enumerate() {
                    if !well_formed(url.trim(), &schemes[..2]) {
                        return Err(ConfigError::invalid(
                            format!("cluster.redis_cluster[{i}]"),
                            redact(url),
                            "must be redis://host:port or rediss://host:port (TLS)",
                        ));
                    }
                }
            }
            (url, _) => {
                return Err(ConfigError::invalid(
                    "cluster.redis_url",
                    redact(url),
                    "give `redis_url` (one Redis server) or `redis_cluster` (a Redis Cluster), not both",
                ));
            }
        }
        if c.key_prefix.is_empty()
            || c.key_prefix.len() > 64
            || c.key_prefix
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b == b'*')
        {
            return Err(ConfigError::invalid(
                "cluster.key_prefix",
                c.key_prefix.clone(),
                "must be 1..=64 characters, without spaces or `*`",
            ));
        }
        if !(10..=10_000).contains(&c.sync_interval_ms) {
            return Err(ConfigError::invalid(
                "cluster.sync_interval_ms",
                c.sync_interval_ms.to_string(),
                "must be 10..=10000",
            ));
        }
        if c.replica_id
            .as_ref()
            .is_some_and(|r| r.is_empty() || r.len() > 64)
        {
            return Err(ConfigError::invalid(
                "cluster.replica_id",
                c.replica_id.clone().unwrap_or_default(),
                "must be 1..=64 characters",
            ));
        }
        if self.session_key.is_none() {
            return Err(ConfigError::invalid(
                "session_key",
                "",
                "a cluster needs a `session_key` (32 hex digits) set alike on every replica: \
                 otherwise each replica names the same session (and the same actor in Redis) differently",
            ));
        }
        Ok(())
    }
}

/// Seed nodes of a Redis Cluster, at most.
const MAX_SEEDS: usize = 64;

/// What a secret prints as.
pub(crate) const REDACTED: &str = "<redacted>";

/// A Redis URL with its credentials left out, for errors, logs and
/// printed configs: the user info before `@`
/// (`redis://:pw@host` is `redis://<redacted>@host`) and the value of a
/// `pass` or `password` query parameter (`unix:///s?pass=pw`).
pub(crate) fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://{REDACTED}@{}", &base[..scheme], &base[at + 1..])
        }
        _ => base.to_owned(),
    };
    if let Some(q) = query {
        out.push('?');
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _))
                    if k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password") =>
                {
                    format!("{k}={REDACTED}")
                }
                _ => p.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

/// Parses a list of CIDRs; an error names the entry (`allow.cidrs[1]`).
pub(crate) fn parse_cidrs(field: &str, list: &[String]) -> Result<Vec<Cidr>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<Cidr>().map_err(|e| {
                ConfigError::invalid(format!("{field}[{i}]"), s.clone(), e.to_string())
            })
        })
        .collect()
}

/// A probe's settings, checked and parsed.
pub(crate) struct ProbeParts {
    pub(crate) method: crate::probe::Methods,
    pub(crate) pattern: PathPattern,
    pub(crate) source: TargetSource,
    pub(crate) thresholds: Thresholds,
    pub(crate) self_target: bool,
    pub(crate) oversized: Oversized,
}

/// Checks probe number `i` and parses what it is made of.
pub(crate) fn probe_parts(i: usize, p: &ProbeConfig) -> Result<ProbeParts, ConfigError> {
    let field = |f: &str| format!("probes[{i}].{f}");
    if p.name.is_empty() || p.name.len() > 64 {
        return Err(ConfigError::invalid(
            field("name"),
            p.name.clone(),
            "must be 1..=64 characters",
        ));
    }
    let method = crate::probe::Methods::parse(&p.method)
        .map_err(|m| ConfigError::invalid(field("method"), p.method.clone(), m))?;
    let pattern = PathPattern::parse(&p.path).map_err(|m| {
        ConfigError::invalid(
            field("path"),
            p.path.clone(),
            format!("{m}{}", colon_hint(&p.path)),
        )
    })?;
    let source = match &p.target {
        TargetConfig::Path(name) => {
            let Some(idx) = pattern.param(name) else {
                return Err(ConfigError::invalid(
                    field("target.path"),
                    name.clone(),
                    format!(
                        "the path `{}` has no parameter `{{{name}}}`{}",
                        p.path,
                        colon_hint(&p.path)
                    ),
                ));
            };
            TargetSource::Path(idx)
        }
        TargetConfig::Query(q) => {
            if q.is_empty() {
                return Err(ConfigError::invalid(
                    field("target.query"),
                    "",
                    "must not be empty",
                ));
            }
            TargetSource::Query(q.clone())
        }
        TargetConfig::Header(h) => {
            TargetSource::Header(http::HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                ConfigError::invalid(field("target.header"), h.clone(), "not a header name")
            })?)
        }
        TargetConfig::Json(j) => {
            if j.is_empty() || j.split('.').any(str::is_empty) {
                return Err(ConfigError::invalid(
                    field("target.json"),
                    j.clone(),
                    "must be a field name, dots between nested names",
                ));
            }
            TargetSource::Json(j.split('.').map(str::to_owned).collect())
        }
    };
    if p.body_limit == 0 || p.body_limit > MAX_BODY_LIMIT {
        return Err(ConfigError::invalid(
            field("body_limit"),
            p.body_limit.to_string(),
            format!("must be 1..={MAX_BODY_LIMIT}"),
        ));
    }
    let thresholds = p.resolved_thresholds();
    check_thresholds(i, &thresholds)?;
    Ok(ProbeParts {
        method,
        pattern,
        source,
        thresholds,
        self_target: p.self_target_or_default(),
        oversized: p.oversized.unwrap_or(match p.style {
            ProbeStyle::Identities => Oversized::Refuse,
            ProbeStyle::Objects => Oversized::Pass,
        }),
    })
}

/// A hint for a path written in another router's syntax: `/orders/:id`
/// (or `*rest`) is `/orders/{id}` here.
fn colon_hint(path: &str) -> String {
    let seg = path
        .split('/')
        .find(|s| s.starts_with(':') || s.starts_with('*'))
        .filter(|s| s.len() > 1);
    match seg {
        Some(s) => format!(" (parameters are written `{{{}}}`, not `{s}`)", &s[1..]),
        None => String::new(),
    }
}

fn unit(field: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            field,
            v.to_string(),
            "must be between 0 and 1",
        ))
    }
}

/// A 32-hex-digit key.
pub(crate) fn parse_key(k: &str) -> Option<(u64, u64)> {
    if k.len() != 32 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let a = u64::from_str_radix(&k[..16], 16).ok()?;
    let b = u64::from_str_radix(&k[16..], 16).ok()?;
    Some((a, b))
}
