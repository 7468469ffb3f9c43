//! What a config means: [`Config::explain`] describes each probe as the
//! guard runs it, from the same parsing the guard compiles it with, and
//! warns of settings that leave an enumerator room the defaults would not.
//! `enumguard check-config` prints it above the effective config.
//!
//! ```
//! let config = enumguard::Config::from_toml_str(
//!     r#"
//!     mode = "observe"
//!     [[probes]]
//!     name = "reset"
//!     method = "POST"
//!     path = "/api/password-reset"
//!     target = { json = "email" }
//!     style = "identities"
//!     oversized = "pass"
//!     "#,
//! )
//! .unwrap();
//! let explained = config.explain().unwrap();
//! assert_eq!(explained.probes[0].methods, ["POST"]);
//! use enumguard::config::WarningKind;
//! let kinds: Vec<WarningKind> = explained.warnings.iter().map(|w| w.kind).collect();
//! assert!(kinds.contains(&WarningKind::ObserveMode));
//! assert!(kinds.contains(&WarningKind::OversizedPass));
//! assert!(kinds.contains(&WarningKind::LoginNotHeld));
//! ```
//!
//! Nothing it prints is secret: the session key and Redis URLs are never
//! part of an explanation.

use std::fmt;

use super::validate::{ProbeParts, parse_cidrs, probe_parts};
use super::{
    Config, ConfigError, KindFactors, MissingPeer, Mode, OutcomeConfig, Oversized, ProbeConfig,
    ProbeStyle, SessionSource, TargetConfig, Thresholds,
};
use crate::actor::{ActorKind, ForwardedHeader};
use crate::probe::{Methods, Outcome, OutcomeRules, StatusSpec};

/// A setting this many times looser than its default is worth a warning.
/// Twice the room is a tuning choice (the ip and subnet kind factors are
/// 2 and 4); three times the room is what an enumerator notices first.
const LOOSE: f64 = 3.0;

/// What a config means, as the guard runs it: made by [`Config::explain`].
///
/// Its `Display` is plain text: the service-wide settings, each probe,
/// then the warnings, each with why and how to fix it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Explanation {
    /// `enforce` or `observe`.
    pub mode: Mode,
    /// The actor kinds the config can count, and where each comes from.
    pub actors: Vec<ActorSource>,
    /// Each probe, in config order (the order a request is matched in).
    pub probes: Vec<ProbeExplanation>,
    /// Settings that leave an enumerator room the defaults would not.
    pub warnings: Vec<Warning>,
    /// What verdicts do: throttle, blocks, refusal statuses, lists,
    /// replicas (one line each).
    pub verdicts: Vec<String>,
}

/// One actor kind and where the guard finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActorSource {
    /// The kind.
    pub kind: ActorKind,
    /// Where it comes from, in words.
    pub source: String,
}

/// One probe, as the guard runs it: every default resolved.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProbeExplanation {
    /// Its index in `probes`.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// Its style (which picked the default thresholds).
    pub style: ProbeStyle,
    /// The methods it counts, upper case, `HEAD` included when `GET` brought
    /// it; empty for `*` (every method).
    pub methods: Vec<String>,
    /// `HEAD` is counted because `GET` is (not written in the config):
    /// routers answer `HEAD` with the `GET` handler.
    pub head_with_get: bool,
    /// The path pattern.
    pub path: String,
    /// Where the target is, as configured.
    pub target: TargetConfig,
    /// How answers are classified when the handler puts no
    /// [`Outcome`](crate::Outcome) in the response.
    pub outcome: OutcomeConfig,
    /// Whether a target equal to the caller's account id is its own.
    pub self_target: bool,
    /// `self_target` was written in the config (else: its default).
    pub self_target_set: bool,
    /// Bytes of body read for a JSON target.
    pub body_limit: usize,
    /// What happens to a larger body (JSON targets only).
    pub oversized: Oversized,
    /// `oversized` was written in the config (else: the style's default).
    pub oversized_set: bool,
    /// `needs_login` as configured (`None`: learned).
    pub needs_login: Option<bool>,
    /// The thresholds it runs with: the style's defaults and the overrides.
    pub thresholds: Thresholds,
    /// The thresholds that differ from the style's defaults, as
    /// `(field, value, default)`.
    pub overrides: Vec<(String, String, String)>,
    /// The actor kinds that count on it, with their kind factors.
    pub kinds: Vec<(ActorKind, f64)>,
}

/// A setting that leaves an enumerator room the defaults would not.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Warning {
    /// What kind of hole.
    pub kind: WarningKind,
    /// The setting at fault, as a path (`probes[2].oversized`).
    pub field: String,
    /// The probe it concerns, by name, if one.
    pub probe: Option<String>,
    /// What it leaves open, in one line.
    pub why: String,
    /// How to close it, in one line.
    pub fix: String,
}

/// What kind of hole a [`Warning`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WarningKind {
    /// `mode = "observe"`: nothing is refused.
    ObserveMode,
    /// `missing_peer = "unknown"` while enforcing: a server wired without
    /// peer addresses lumps every client into one actor.
    MissingPeerCounted,
    /// A forwarding header is chosen but no proxy is trusted, so it is
    /// never read.
    ForwardedUnread,
    /// A trusted proxy range so wide that clients are in it: they write
    /// their own address.
    ClientsTrusted,
    /// An allow range that is very wide, or that may hold the proxy every
    /// request comes through.
    WideAllow,
    /// The `ip` or `subnet` actor is narrower than what one client holds.
    NarrowActor,
    /// The store is small enough for a flood of fresh actors to evict an
    /// enumerator's record before it is suspect.
    SmallStore,
    /// A throttle, escalation or watch that no longer slows anyone.
    WeakVerdicts,
    /// The service-wide view hardly ever turns anomalous.
    QuietView,
    /// An identities probe forwards bodies past its limit unread.
    OversizedPass,
    /// An endpoint that seems to answer without a login, where an address
    /// does not (or not yet) hold the requests that carry an account.
    LoginNotHeld,
    /// Requests that match this probe may be counted as an earlier one.
    Shadowed,
    /// An outcome rule that never applies, or a probe that cannot see the
    /// answer an enumerator wants.
    Outcome,
    /// A signal or defence the style has is turned off.
    Off,
    /// A threshold at least three times looser than the style's default.
    Looser,
}

impl Config {
    /// What this config means, as the guard runs it: each probe's methods,
    /// path, target, outcome rule, thresholds per actor kind and the
    /// defaults it got, and warnings for settings that leave an enumerator
    /// room. `enumguard check-config` prints it.
    ///
    /// It is read from the same parsing the guard compiles probes with, so
    /// it cannot drift from what the guard does. It holds no secret.
    ///
    /// # Errors
    /// The config is not valid (the first invalid field).
    pub fn explain(&self) -> Result<Explanation, ConfigError> {
        self.validate()?;
        let mut probes = Vec::with_capacity(self.probes.len());
        let mut parts = Vec::with_capacity(self.probes.len());
        for (i, p) in self.probes.iter().enumerate() {
            let part = probe_parts(i, p)?;
            probes.push(explain_probe(self, i, p, &part)?);
            parts.push(part);
        }
        let mut warnings = self.service_warnings()?;
        for (i, (p, part)) in self.probes.iter().zip(&parts).enumerate() {
            probe_warnings(self, i, p, part, &parts[..i], &mut warnings)?;
        }
        Ok(Explanation {
            mode: self.mode,
            actors: self.actor_sources(),
            probes,
            warnings,
            verdicts: self.verdict_lines(),
        })
    }

    fn actor_sources(&self) -> Vec<ActorSource> {
        let from = if self.trusted_proxies.is_empty() {
            "the TCP peer address (no proxy is trusted: X-Forwarded-For and Forwarded are ignored)"
                .to_owned()
        } else {
            format!(
                "the address in {} that the trusted proxies ({}) wrote, walked from the right past \
                 them; the TCP peer address when the peer is not one of them",
                header_name(self.forwarded_header),
                self.trusted_proxies
                    .iter()
                    .map(|c| c.escape_debug().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let missing = match self.missing_peer {
            MissingPeer::Refuse => "a request without one is refused with 500",
            MissingPeer::Unknown => "a request without one counts as the one actor ip:unknown",
        };
        let mut actors = vec![
            ActorSource {
                kind: ActorKind::Ip,
                source: format!(
                    "one IPv4 /{} or IPv6 /{}, from {from}; {missing}",
                    self.ip_v4_prefix, self.ip_v6_prefix
                ),
            },
            ActorSource {
                kind: ActorKind::Subnet,
                source: format!(
                    "the IPv4 /{} or IPv6 /{} around it",
                    self.subnet_v4_prefix, self.subnet_v6_prefix
                ),
            },
        ];
        if let Some(s) = &self.session {
            let (what, name) = match s {
                SessionSource::Header(h) => ("header", h),
                SessionSource::Cookie(c) => ("cookie", c),
            };
            actors.push(ActorSource {
                kind: ActorKind::Session,
                source: format!(
                    "the {what} `{}`, kept as a keyed hash{}",
                    name.escape_debug(),
                    if self.session_key.is_some() {
                        " (key set: alike on every replica)"
                    } else {
                        " (a random key per process)"
                    }
                ),
            });
        }
        actors.push(ActorSource {
            kind: ActorKind::Account,
            source: "the application's account hook (in code: GuardBuilder::account), \
                     when it gives one"
                .to_owned(),
        });
        actors
    }

    fn verdict_lines(&self) -> Vec<String> {
        let t = &self.throttle;
        let b = &self.blocks;
        let mut lines = vec![
            format!(
                "a throttle allows {} requests a minute after a burst of {}, on the probe it was \
                 earned on, for {} s after the last evidence (status {})",
                t.per_minute, t.burst, t.duration_secs, self.responses.throttle_status
            ),
            format!(
                "a block lasts {} s, {}x longer each time the same actor is blocked again, at \
                 most {} s (status {})",
                b.base_secs, b.factor, b.max_secs, self.responses.block_status
            ),
        ];
        let list = |l: &super::ListConfig| {
            format!("{} networks, {} accounts", l.cidrs.len(), l.accounts.len())
        };
        if self.allow != Default::default() {
            lines.push(format!("never counted nor refused: {}", list(&self.allow)));
        }
        if self.deny != Default::default() {
            lines.push(format!("always refused: {}", list(&self.deny)));
        }
        if let Some(c) = &self.cluster {
            // Never the URLs: they may hold a password.
            lines.push(format!(
                "verdicts and evidence shared with other replicas through Redis (key prefix `{}`, \
                 every {} ms)",
                c.key_prefix.escape_debug(),
                c.sync_interval_ms
            ));
        }
        lines
    }

    fn service_warnings(&self) -> Result<Vec<Warning>, ConfigError> {
        let mut out = Vec::new();
        let mut warn = |kind, field: &str, why: String, fix: &str| {
            out.push(Warning {
                kind,
                field: field.to_owned(),
                probe: None,
                why,
                fix: fix.to_owned(),
            });
        };
        if self.mode == Mode::Observe {
            warn(
                WarningKind::ObserveMode,
                "mode",
                "observe mode refuses nothing: every verdict is computed and logged, and every \
                 enumerator gets every answer"
                    .into(),
                "once the logs (or `enumguard replay`) show no collateral, set mode = \"enforce\"",
            );
        }
        if self.missing_peer == MissingPeer::Unknown && self.mode == Mode::Enforce {
            warn(
                WarningKind::MissingPeerCounted,
                "missing_peer",
                "requests without a peer address all count as one actor (ip:unknown): on a \
                 server wired without peer addresses, the first block refuses every client, and \
                 no address is told apart"
                    .into(),
                "keep missing_peer = \"unknown\" only where no peer address exists (unix \
                 sockets, tests); else serve with peer addresses and set \"refuse\"",
            );
        }
        let trusted = parse_cidrs("trusted_proxies", &self.trusted_proxies)?;
        if trusted.is_empty() && self.forwarded_header == ForwardedHeader::Forwarded {
            warn(
                WarningKind::ForwardedUnread,
                "forwarded_header",
                "forwarded_header names the header proxies write, but no proxy is trusted: it \
                 is never read, and behind a proxy every client is the proxy's one address"
                    .into(),
                "list the proxies' networks in trusted_proxies (or drop forwarded_header if \
                 clients connect directly)",
            );
        }
        for (i, text) in self.trusted_proxies.iter().enumerate() {
            if prefix_len(text) < wide_prefix(text) && !private_network(text) {
                warn(
                    WarningKind::ClientsTrusted,
                    &format!("trusted_proxies[{i}]"),
                    format!(
                        "`{}` trusts addresses anyone can connect from: a client there writes \
                         its own X-Forwarded-For / Forwarded and is a new ip and subnet actor at \
                         every request",
                        text.escape_debug()
                    ),
                    "trust only your proxies' own networks",
                );
            }
        }
        for (i, text) in self.allow.cidrs.iter().enumerate() {
            let field = format!("allow.cidrs[{i}]");
            let private = private_network(text);
            if prefix_len(text) < wide_prefix(text) + 8 && !private {
                warn(
                    WarningKind::WideAllow,
                    &field,
                    format!(
                        "`{}` is never counted nor refused, and it is a public /{}: anyone \
                         connecting from it enumerates freely",
                        text.escape_debug(),
                        prefix_len(text)
                    ),
                    "allow only the few addresses of your own monitors",
                );
            } else if trusted.is_empty() && private {
                warn(
                    WarningKind::WideAllow,
                    &field,
                    format!(
                        "`{}` holds private addresses and no proxy is trusted: if a load \
                         balancer or proxy there fronts the service, every request comes from \
                         it and is never counted",
                        text.escape_debug()
                    ),
                    "list such a proxy in trusted_proxies (the allow list then sees the \
                     client's address), or narrow the range to your monitors",
                );
            }
        }
        if self.ip_v6_prefix > 64 {
            warn(
                WarningKind::NarrowActor,
                "ip_v6_prefix",
                format!(
                    "a client usually holds a whole IPv6 /64: at /{} each of its 2^{} addresses \
                     is a new ip actor",
                    self.ip_v6_prefix,
                    self.ip_v6_prefix - 64
                ),
                "set ip_v6_prefix = 64",
            );
        }
        for (field, subnet, ip) in [
            ("subnet_v4_prefix", self.subnet_v4_prefix, self.ip_v4_prefix),
            ("subnet_v6_prefix", self.subnet_v6_prefix, self.ip_v6_prefix),
        ] {
            if subnet == ip {
                warn(
                    WarningKind::NarrowActor,
                    field,
                    format!(
                        "the subnet actor is the ip actor (both /{ip}): an enumerator rotating \
                         addresses in one network is never seen as one"
                    ),
                    "leave the subnet prefixes at their defaults (24 and 48)",
                );
            }
        }
        let limits = super::Limits::default();
        if self.limits.max_actors * 10 < limits.max_actors {
            warn(
                WarningKind::SmallStore,
                "limits.max_actors",
                format!(
                    "{} records: a flood of that many fresh addresses or sessions (cheap in \
                     IPv6) evicts the records of enumerators not yet suspect, which start over",
                    self.limits.max_actors
                ),
                "keep the default (200,000 records of 160 bytes: 32 MB) or more",
            );
        }
        let throttle = super::ThrottleConfig::default();
        if f64::from(self.throttle.per_minute) >= LOOSE * f64::from(throttle.per_minute) {
            warn(
                WarningKind::WeakVerdicts,
                "throttle.per_minute",
                format!(
                    "a throttled actor still gets {} requests a minute (default {}): a script \
                     keeps its pace while evidence builds",
                    self.throttle.per_minute, throttle.per_minute
                ),
                "keep a human pace: the default 20",
            );
        }
        if self.blocks.factor == 1 {
            warn(
                WarningKind::WeakVerdicts,
                "blocks.factor",
                "blocks never grow: an enumerator that waits out each block comes back for the \
                 same short wait every time"
                    .into(),
                "set a factor above 1 (default 4)",
            );
        }
        if self.links.watch_factor >= 1.0 {
            warn(
                WarningKind::WeakVerdicts,
                "links.watch_factor",
                "the watch is off: a blocked scraper comes back from the same address with a \
                 new account and gets a full threshold again"
                    .into(),
                "keep the default 0.06",
            );
        }
        let view = super::ServiceViewConfig::default();
        if self.service_view.ratio >= LOOSE * view.ratio {
            warn(
                WarningKind::QuietView,
                "service_view.ratio",
                format!(
                    "the view turns anomalous only at {}x its baseline (default {}x): a guesser \
                     spread over many addresses, a few guesses each, is never tightened",
                    num(self.service_view.ratio),
                    num(view.ratio)
                ),
                "keep the default 3.0",
            );
        }
        Ok(out)
    }
}

/// The prefix length written in a CIDR (a bare address is a host).
fn prefix_len(text: &str) -> u32 {
    match text.trim().split_once('/') {
        Some((_, l)) => l.parse().unwrap_or(0),
        None if text.contains(':') => 128,
        None => 32,
    }
}

/// Below this prefix length a range holds a large part of the internet (an
/// IPv4 /8, an IPv6 /16): no proxy fleet is that big.
fn wide_prefix(text: &str) -> u32 {
    if text.contains(':') { 16 } else { 8 }
}

/// Whether a CIDR's network address is private, loopback, link-local or
/// shared (CGNAT): where proxies and load balancers live.
fn private_network(text: &str) -> bool {
    let addr = text.trim().split('/').next().unwrap_or_default();
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => {
            a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || (a.octets()[0] == 100 && a.octets()[1] & 0xc0 == 64)
        }
        Ok(std::net::IpAddr::V6(a)) => {
            a.is_loopback()
                || a.segments()[0] & 0xfe00 == 0xfc00
                || a.segments()[0] & 0xffc0 == 0xfe80
        }
        Err(_) => false,
    }
}

fn header_name(h: ForwardedHeader) -> &'static str {
    match h {
        ForwardedHeader::XForwardedFor => "X-Forwarded-For",
        ForwardedHeader::Forwarded => "Forwarded",
    }
}

/// A number as people write it: `30`, `7.5`, `0.06`.
fn num(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn factor(f: &KindFactors, kind: ActorKind) -> f64 {
    match kind {
        ActorKind::Ip => f.ip,
        ActorKind::Subnet => f.subnet,
        ActorKind::Session => f.session,
        ActorKind::Account => f.account,
    }
}

fn style_name(s: ProbeStyle) -> &'static str {
    match s {
        ProbeStyle::Objects => "objects",
        ProbeStyle::Identities => "identities",
    }
}

fn explain_probe(
    c: &Config,
    i: usize,
    p: &ProbeConfig,
    parts: &ProbeParts,
) -> Result<ProbeExplanation, ConfigError> {
    let written_head = p
        .method
        .split(',')
        .any(|m| m.trim().eq_ignore_ascii_case("HEAD"));
    let (methods, head_with_get) = match &parts.method {
        Methods::Any => (Vec::new(), false),
        Methods::List(l) => (
            l.iter().map(|m| m.as_str().to_owned()).collect(),
            l.contains(&http::Method::HEAD) && !written_head,
        ),
    };
    let t = &parts.thresholds;
    // People first, then addresses.
    let kinds = [
        ActorKind::Account,
        ActorKind::Session,
        ActorKind::Ip,
        ActorKind::Subnet,
    ]
    .into_iter()
    .filter(|k| *k != ActorKind::Session || c.session.is_some())
    .map(|k| (k, factor(&t.kind_factors, k)))
    .collect();
    Ok(ProbeExplanation {
        index: i,
        name: p.name.clone(),
        style: p.style,
        methods,
        head_with_get,
        path: p.path.clone(),
        target: p.target.clone(),
        outcome: p.outcome.clone(),
        self_target: parts.self_target,
        self_target_set: p.self_target.is_some(),
        body_limit: p.body_limit,
        oversized: parts.oversized,
        oversized_set: p.oversized.is_some(),
        needs_login: p.needs_login,
        overrides: overrides(i, p.style, t)?,
        thresholds: t.clone(),
        kinds,
    })
}

/// The thresholds that differ from the style's, flattened
/// (`kind_factors.ip`), as TOML values.
fn overrides(
    i: usize,
    style: ProbeStyle,
    t: &Thresholds,
) -> Result<Vec<(String, String, String)>, ConfigError> {
    let table = |t: &Thresholds| {
        toml::Table::try_from(t)
            .map_err(|e| ConfigError::invalid(format!("probes[{i}].thresholds"), "", e.to_string()))
    };
    let (now, default) = (table(t)?, table(&Thresholds::for_style(style))?);
    let mut out = Vec::new();
    for (k, v) in &now {
        match (v, default.get(k)) {
            (toml::Value::Table(sub), Some(toml::Value::Table(dsub))) => {
                for (k2, v2) in sub {
                    if dsub.get(k2) != Some(v2) {
                        let d = dsub.get(k2).map(ToString::to_string).unwrap_or_default();
                        out.push((format!("{k}.{k2}"), v2.to_string(), d));
                    }
                }
            }
            (v, d) if d != Some(v) => {
                let d = d.map(ToString::to_string).unwrap_or_default();
                out.push((k.clone(), v.to_string(), d));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The probe's outcome rules, as the guard classifies with them.
fn rules(p: &ProbeConfig) -> OutcomeRules {
    OutcomeRules {
        hit: p.outcome.hit.clone(),
        miss: p.outcome.miss.clone(),
        denied: p.outcome.denied.clone(),
    }
}

/// The statuses (100..=599) the rules classify as `o`, with no `Outcome`
/// in the response.
fn classified_as(r: &OutcomeRules, o: Outcome) -> impl Iterator<Item = u16> + '_ {
    let ext = http::Extensions::new();
    (100..=599u16).filter(move |s| {
        http::StatusCode::from_u16(*s).is_ok_and(|s| r.classify(s, &ext) == Some(o))
    })
}

/// Words of endpoints that answer without a login: password resets,
/// sign-ups, logins, availability checks.
const ANONYMOUS_WORDS: &[&str] = &[
    "reset", "forgot", "recover", "register", "signup", "sign-up", "sign_up", "join", "login",
    "log-in", "signin", "sign-in", "sign_in", "password", "availab", "exists",
];

fn looks_anonymous(path: &str) -> bool {
    path.split('/')
        .filter(|s| !s.starts_with('{'))
        .map(str::to_ascii_lowercase)
        .any(|s| ANONYMOUS_WORDS.iter().any(|w| s.contains(w)))
}

/// A path both patterns match (the literal of either where one has a
/// parameter), if they can match one path at all: checked with the
/// guard's own matcher.
fn common_path(a: &ProbeParts, pa: &str, b: &ProbeParts, pb: &str) -> Option<String> {
    let (sa, sb): (Vec<&str>, Vec<&str>) = (pa.split('/').collect(), pb.split('/').collect());
    if sa.len() != sb.len() {
        return None;
    }
    let param = |s: &str| s.starts_with('{');
    let segs: Vec<&str> = sa
        .iter()
        .zip(&sb)
        .map(|(x, y)| match (param(x), param(y)) {
            (true, true) => "1",
            (true, false) => y,
            _ => x,
        })
        .collect();
    let path = segs.join("/");
    (a.pattern.matches(&path, None).is_some() && b.pattern.matches(&path, None).is_some())
        .then_some(path)
}

/// A method both probes count, if any.
fn common_method(a: &Methods, b: &Methods) -> Option<String> {
    match (a, b) {
        (Methods::Any, Methods::Any) => Some("GET".into()),
        (Methods::Any, Methods::List(l)) | (Methods::List(l), Methods::Any) => {
            l.first().map(|m| m.as_str().to_owned())
        }
        (Methods::List(x), Methods::List(y)) => x
            .iter()
            .find(|m| y.contains(m))
            .map(|m| m.as_str().to_owned()),
    }
}

fn probe_warnings(
    c: &Config,
    i: usize,
    p: &ProbeConfig,
    parts: &ProbeParts,
    earlier: &[ProbeParts],
    out: &mut Vec<Warning>,
) -> Result<(), ConfigError> {
    let mut warn = |kind, field: String, why: String, fix: String| {
        out.push(Warning {
            kind,
            field,
            probe: Some(p.name.clone()),
            why,
            fix,
        });
    };
    let f = |name: &str| format!("probes[{i}].{name}");
    let identities = p.style == ProbeStyle::Identities;
    if identities && parts.source.in_body() && parts.oversized == Oversized::Pass {
        warn(
            WarningKind::OversizedPass,
            f("oversized"),
            format!(
                "a body padded past {} bytes reaches the handler unread: the guard never sees \
                 which identity it asks (it counts as a target nobody else asked for), and the \
                 handler parses bodies of any size",
                p.body_limit
            ),
            "set oversized = \"refuse\" (the identities default: 413), raising body_limit if \
             real requests are larger"
                .into(),
        );
    }
    if p.needs_login != Some(false) && looks_anonymous(&p.path) {
        let why = match p.needs_login {
            Some(_) => "needs_login is true on a path that looks like it answers without a \
                        login: an address then holds only its anonymous requests, so a guesser \
                        sends each guess with another throwaway account's token and its \
                        address never holds it"
                .to_owned(),
            None => "needs_login is unset on a path that looks like it answers without a login: \
                     the guard learns that only from the first anonymous hit or miss after each \
                     start; until then a guesser sending each guess with another throwaway \
                     account's token escapes its address"
                .to_owned(),
        };
        warn(
            WarningKind::LoginNotHeld,
            f("needs_login"),
            why,
            "set needs_login = false if the endpoint answers anonymous requests (true only if \
             it refuses them)"
                .into(),
        );
    }
    for (j, e) in earlier.iter().enumerate() {
        let (Some(m), Some(path)) = (
            common_method(&e.method, &parts.method),
            common_path(e, &c.probes[j].path, parts, &p.path),
        ) else {
            continue;
        };
        warn(
            WarningKind::Shadowed,
            f("path"),
            format!(
                "`{m} {}` matches probe {:?} (probes[{j}]) first: such requests count as that \
                 probe, with its target and thresholds, never as this one",
                path.escape_debug(),
                c.probes[j].name
            ),
            "put the more specific probe first, or narrow the earlier one's path or methods".into(),
        );
    }
    let r = rules(p);
    for (list, name, o) in [
        (&p.outcome.miss, "miss", Outcome::Miss),
        (&p.outcome.denied, "denied", Outcome::Denied),
        (&p.outcome.hit, "hit", Outcome::Hit),
    ] {
        for (k, spec) in list.iter().enumerate() {
            let ext = http::Extensions::new();
            let dead = (100..=599u16)
                .filter_map(|s| http::StatusCode::from_u16(s).ok())
                .filter(|s| spec.matches(*s))
                .all(|s| r.classify(s, &ext) != Some(o));
            if dead {
                warn(
                    WarningKind::Outcome,
                    f(&format!("outcome.{name}[{k}]")),
                    format!(
                        "{spec} is listed as {name} but every status it covers is classified \
                         otherwise (exact codes before classes; then miss, denied, hit)"
                    ),
                    "list each status once".into(),
                );
            }
        }
    }
    if identities {
        let misses = classified_as(&r, Outcome::Miss).count();
        let hits = classified_as(&r, Outcome::Hit).count();
        if misses == 0 {
            warn(
                WarningKind::Outcome,
                f("outcome.miss"),
                "no status is a miss: unless the handler puts Outcome::Miss in its responses, a \
                 guesser's misses never count, and its finds weigh nothing without them"
                    .into(),
                "list the status that says \"no such account\" (404, or \"2xx\" on a sign-up)"
                    .into(),
            );
        }
        if hits == 0 {
            warn(
                WarningKind::Outcome,
                f("outcome.hit"),
                "no status is a hit: unless the handler puts Outcome::Hit in its responses, a \
                 validator of a leaked list (mostly registered) is never stopped by its finds"
                    .into(),
                "list the status that says the account exists (2xx, or 409 on a sign-up)".into(),
            );
        }
    }
    threshold_warnings(i, p, parts, &mut warn);
    Ok(())
}

/// Signals turned off, defences off, and room at least [`LOOSE`] times
/// the style's default.
fn threshold_warnings(
    i: usize,
    p: &ProbeConfig,
    parts: &ProbeParts,
    warn: &mut impl FnMut(WarningKind, String, String, String),
) {
    let t = &parts.thresholds;
    let d = Thresholds::for_style(p.style);
    let f = |name: &str| format!("probes[{i}].thresholds.{name}");
    let style = style_name(p.style);
    for (name, v, dv, what) in [
        (
            "foreign_block",
            t.foreign_block,
            d.foreign_block,
            "reads of others' objects never block: a scraper reading objects that exist is \
             stopped only by its misses and denials, which it need not have",
        ),
        (
            "miss_block",
            t.miss_block,
            d.miss_block,
            "misses never block: a guesser walking a list of identities or ids is never stopped \
             by what it does not find",
        ),
        (
            "hit_block",
            t.hit_block,
            d.hit_block,
            "finds never block: a validator of a leaked list (mostly registered) is stopped only \
             by its few misses",
        ),
        (
            "denied_block",
            t.denied_block,
            d.denied_block,
            "401/403 answers never block: a hunt for an access-control hole goes on",
        ),
    ] {
        if v == 0 && dv > 0 {
            warn(
                WarningKind::Off,
                f(name),
                format!("{name} is 0: {what}"),
                format!("keep the {style} default ({dv})"),
            );
        }
    }
    for (name, v, dv, what) in [
        (
            "miss_cap",
            t.miss_cap,
            d.miss_cap,
            "padding guesses with known lookups buys unlimited misses",
        ),
        (
            "anomaly_factor",
            t.anomaly_factor,
            d.anomaly_factor,
            "a guesser spread over many fresh addresses keeps each address's full room while \
             the service-wide view is anomalous",
        ),
        (
            "repeat_factor",
            t.repeat_factor,
            d.repeat_factor,
            "an actor blocked before comes back with its full room every time",
        ),
        (
            "stranger_factor",
            t.stranger_factor,
            d.stranger_factor,
            "during a scrape spread over fresh accounts, each new account reads a full \
             threshold of foreign objects",
        ),
    ] {
        let off = if name == "miss_cap" {
            v == 0.0 && dv > 0.0
        } else {
            v >= 1.0 && dv < 1.0
        };
        if off {
            warn(
                WarningKind::Off,
                f(name),
                format!("{name} at {} turns it off: {what}", num(v)),
                format!("keep the {style} default ({})", num(dv)),
            );
        } else if dv > 0.0 && v >= LOOSE * dv {
            warn(
                WarningKind::Looser,
                f(name),
                format!(
                    "{name} at {} is {}x the {style} default ({}): {what}, nearly",
                    num(v),
                    num(v / dv),
                    num(dv)
                ),
                format!("keep it near the default ({})", num(dv)),
            );
        }
    }
    if f64::from(t.min_targets) >= LOOSE * f64::from(d.min_targets) {
        warn(
            WarningKind::Looser,
            f("min_targets"),
            format!(
                "misses count only after {} distinct targets (default {}): every actor, and \
                 every fresh address of a spread guesser, gets that many guesses free",
                t.min_targets, d.min_targets
            ),
            format!("keep it near the default ({})", d.min_targets),
        );
    }
    if t.long_half_life_secs.max(t.window_secs) as f64 * LOOSE
        <= d.long_half_life_secs.max(d.window_secs) as f64
    {
        warn(
            WarningKind::Looser,
            f("long_half_life_secs"),
            format!(
                "evidence is forgotten within about {} s (default {} s): an enumerator pacing \
                 itself slower adds up to nothing",
                t.long_half_life_secs.max(t.window_secs),
                d.long_half_life_secs.max(d.window_secs)
            ),
            "keep the default window and long view".into(),
        );
    }
    // The room of each actor kind on each signal, against the default's.
    let mut worst: Option<(f64, String, String)> = None;
    for (name, v, dv, noun) in [
        (
            "foreign_block",
            t.foreign_block,
            d.foreign_block,
            "foreign objects",
        ),
        ("miss_block", t.miss_block, d.miss_block, "misses"),
        ("hit_block", t.hit_block, d.hit_block, "finds"),
        (
            "denied_block",
            t.denied_block,
            d.denied_block,
            "denied answers",
        ),
    ] {
        if v == 0 || dv == 0 {
            continue;
        }
        for kind in ActorKind::ALL {
            let (mut k, mut dk) = (factor(&t.kind_factors, kind), factor(&d.kind_factors, kind));
            if name == "hit_block" {
                // An address's finds are judged as one person's.
                (k, dk) = (k.min(1.0), dk.min(1.0));
            }
            let (room, droom) = (f64::from(v) * k, f64::from(dv) * dk);
            let ratio = room / droom;
            if ratio >= LOOSE && worst.as_ref().is_none_or(|(r, _, _)| ratio > *r) {
                let field = if f64::from(v) / f64::from(dv) >= k / dk {
                    f(name)
                } else {
                    f(&format!("kind_factors.{}", kind.as_str()))
                };
                let why = format!(
                    "one {} gets {} {noun} per {} s window before a block, {}x the {style} \
                     default ({})",
                    kind.as_str(),
                    num(room),
                    t.window_secs,
                    num(ratio),
                    num(droom)
                );
                worst = Some((ratio, field, why));
            }
        }
    }
    if let Some((_, field, why)) = worst {
        warn(
            WarningKind::Looser,
            field,
            why,
            "keep the room to what the busiest honest actor needs (the replay shows it)".into(),
        );
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            Mode::Enforce => writeln!(f, "mode: enforce (verdicts refuse requests)")?,
            Mode::Observe => writeln!(f, "mode: observe (verdicts are logged; nothing refused)")?,
        }
        writeln!(f, "actors (a request counts against each it has):")?;
        for a in &self.actors {
            writeln!(f, "  {}: {}", a.kind.as_str(), a.source)?;
        }
        writeln!(f, "verdicts:")?;
        for v in &self.verdicts {
            writeln!(f, "  {v}")?;
        }
        if self.probes.is_empty() {
            writeln!(
                f,
                "\nno probes: only the lists and verdicts set through the handle or admin \
                 service are enforced"
            )?;
        } else {
            writeln!(
                f,
                "\nprobes (a request counts as the first whose methods and path it matches):"
            )?;
        }
        for p in &self.probes {
            write!(f, "\n{p}")?;
        }
        if self.warnings.is_empty() {
            writeln!(f, "\nwarnings: none")?;
        } else {
            writeln!(f, "\nwarnings ({}):", self.warnings.len())?;
            for w in &self.warnings {
                writeln!(f, "{w}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "- {}", self.field)?;
        if let Some(p) = &self.probe {
            write!(f, " (probe {p:?})")?;
        }
        write!(f, ": {}\n  fix: {}", self.why, self.fix)
    }
}

fn specs(list: &[StatusSpec]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl ProbeExplanation {
    /// What `v` comes to for each kind, kinds with the same room together:
    /// `15 (account, session), 30 (ip), 60 (subnet)`.
    fn room(&self, v: u32, personal: bool) -> String {
        let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
        for (k, x) in &self.kinds {
            let x = if personal { x.min(1.0) } else { *x };
            let n = num(f64::from(v) * x);
            match groups.iter_mut().find(|(m, _)| *m == n) {
                Some((_, ks)) => ks.push(k.as_str()),
                None => groups.push((n, vec![k.as_str()])),
            }
        }
        if let [(n, _)] = groups.as_slice() {
            return format!("{n} (every actor)");
        }
        groups
            .iter()
            .map(|(n, ks)| format!("{n} ({})", ks.join(", ")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn fmt_target(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.target;
        write!(f, "  target: ")?;
        if let Some(n) = &t.path {
            write!(f, "path segment {{{}}}, percent-decoded", n.escape_debug())?;
        } else if let Some(n) = &t.query {
            write!(
                f,
                "query parameter `{}`, percent-decoded (absent or given twice with different \
                 values: the whole query)",
                n.escape_debug()
            )?;
        } else if let Some(n) = &t.header {
            write!(
                f,
                "header `{}` (given several times: all its values together)",
                n.escape_debug()
            )?;
        } else if let Some(n) = &t.json {
            write!(
                f,
                "JSON body field `{}`, read from the first {} bytes before the handler runs \
                 (absent, or a key given twice: the whole body)",
                n.escape_debug(),
                self.body_limit
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "    a request without it reaches the handler and counts as a new target of its own"
        )?;
        if t.json.is_some() {
            let how = match self.oversized {
                Oversized::Pass => "forwarded unread, counted as a new target each time",
                Oversized::Refuse => "refused with 413",
            };
            let whence = if self.oversized_set {
                "set"
            } else {
                "the default"
            };
            writeln!(
                f,
                "  larger bodies: {how} (oversized is {:?}, {whence})",
                oversized_name(self.oversized)
            )?;
        } else {
            writeln!(
                f,
                "  body: never read (the target is in the request head: body_limit and \
                 oversized do not apply)"
            )?;
        }
        Ok(())
    }
}

fn oversized_name(o: Oversized) -> &'static str {
    match o {
        Oversized::Pass => "pass",
        Oversized::Refuse => "refuse",
    }
}

impl fmt::Display for ProbeExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let identities = self.style == ProbeStyle::Identities;
        let tell = if identities {
            "the tell is misses and finds"
        } else {
            "the tell is foreign objects"
        };
        writeln!(
            f,
            "probe {:?} (probes[{}]), {}: {tell}",
            self.name,
            self.index,
            style_name(self.style)
        )?;
        if self.methods.is_empty() {
            writeln!(f, "  methods: every method (*)")?;
        } else {
            write!(f, "  methods: {}", self.methods.join(", "))?;
            if self.head_with_get {
                write!(
                    f,
                    " (HEAD rides with GET: routers answer it with the GET handler)"
                )?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "  path: {} (segment by segment as written: a trailing slash or another spelling \
             is not this probe)",
            self.path.escape_debug()
        )?;
        self.fmt_target(f)?;
        let o = &self.outcome;
        writeln!(
            f,
            "  outcome: miss {}; denied {}; hit {}; other statuses count as requests only \
             (an Outcome the handler puts in the response wins; exact codes before classes)",
            specs(&o.miss),
            specs(&o.denied),
            specs(&o.hit)
        )?;
        let set = |s: bool| if s { "set" } else { "the default" };
        if identities {
            write!(
                f,
                "  not counted: a target the handler marks Known (the caller's contacts)"
            )?;
            if self.self_target {
                write!(f, ", and one equal to the caller's account id")?;
            }
            writeln!(
                f,
                " (self_target is {}, {})",
                self.self_target,
                set(self.self_target_set)
            )?;
        } else if self.self_target {
            writeln!(
                f,
                "  own objects (not counted): a target equal to the caller's account id \
                 (self_target is true, {}), or what an Owner in the response or the owns hook says",
                set(self.self_target_set)
            )?;
        } else {
            writeln!(
                f,
                "  own objects (not counted): only what an Owner in the response or the owns \
                 hook says (self_target is false, {}): without them every read is foreign",
                set(self.self_target_set)
            )?;
        }
        let kinds: Vec<&str> = self.kinds.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "  actors: {}; ", kinds.join(", "))?;
        match self.needs_login {
            Some(false) => writeln!(
                f,
                "needs_login is false: an address holds every request, with an account or not"
            )?,
            Some(true) => writeln!(
                f,
                "needs_login is true: an address holds its anonymous requests only, the accounts \
                 behind it are judged on their own"
            )?,
            None => writeln!(
                f,
                "needs_login unset: an address holds its anonymous requests only, and every \
                 request once the probe has answered an anonymous one with a hit or a miss"
            )?,
        }
        let t = &self.thresholds;
        writeln!(
            f,
            "  blocks (per {} s window; a long view halving every {} s adds up slower actors):",
            t.window_secs, t.long_half_life_secs
        )?;
        if t.foreign_block > 0 {
            writeln!(
                f,
                "    foreign objects: {}",
                self.room(t.foreign_block, false)
            )?;
        }
        if t.hit_block > 0 {
            if t.miss_block > 0 {
                writeln!(
                    f,
                    "    misses and finds add up, weighed by the share of answers that missed: \
                     misses {} plus finds {} (misses once {} targets were answered; an \
                     address's finds count as one person's)",
                    self.room(t.miss_block, false),
                    self.room(t.hit_block, true),
                    t.min_targets
                )?;
            } else {
                writeln!(f, "    finds: {}", self.room(t.hit_block, true))?;
            }
        } else if t.miss_block > 0 {
            writeln!(
                f,
                "    misses: {}, once at least {} distinct targets were tried and {}% of them \
                 missed",
                self.room(t.miss_block, false),
                t.min_targets,
                num(t.miss_ratio * 100.0)
            )?;
        }
        if t.miss_cap > 0.0 && t.miss_block > 0 {
            let cap = (t.miss_cap * f64::from(t.miss_block)).round() as u32;
            writeln!(
                f,
                "    misses whatever the ratios (miss_cap {}): {}",
                num(t.miss_cap),
                self.room(cap, false)
            )?;
        }
        if t.denied_block > 0 {
            writeln!(
                f,
                "    denied answers (from the second): {}",
                self.room(t.denied_block, false)
            )?;
        }
        let (first, noun) = if t.foreign_block > 0 {
            (t.foreign_block, "foreign objects")
        } else if t.miss_block > 0 {
            (t.miss_block, "misses")
        } else {
            (t.denied_block, "denied answers")
        };
        writeln!(
            f,
            "  throttles at {} of a block (an account: {} {noun}); ids walked in order ({} \
             steps) count {}x; a machine cadence {}x",
            num(t.throttle_at),
            num(f64::from(first) * t.throttle_at * factor(&t.kind_factors, ActorKind::Account)),
            t.sequential_run,
            num(t.sequential_factor),
            num(t.cadence_factor)
        )?;
        write!(
            f,
            "  during a service-wide anomaly an actor without history gets {} of an account's \
             room",
            num(t.anomaly_factor)
        )?;
        if !identities && t.stranger_factor < 1.0 {
            write!(
                f,
                " ({} of that on foreign objects if it read none of its own)",
                num(t.stranger_factor)
            )?;
        }
        writeln!(
            f,
            "; each earlier block leaves {} of the room",
            num(t.repeat_factor)
        )?;
        if self.overrides.is_empty() {
            writeln!(f, "  thresholds: the {} defaults", style_name(self.style))?;
        } else {
            let list: Vec<String> = self
                .overrides
                .iter()
                .map(|(k, v, d)| format!("{k} is {v} (default {d})"))
                .collect();
            writeln!(f, "  overrides: {}", list.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explain(toml: &str) -> Explanation {
        Config::from_toml_str(toml)
            .unwrap_or_else(|e| panic!("{e}"))
            .explain()
            .unwrap()
    }

    fn kinds(e: &Explanation) -> Vec<(WarningKind, String)> {
        e.warnings
            .iter()
            .map(|w| (w.kind, w.field.clone()))
            .collect()
    }

    fn mailroom() -> Explanation {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/mailroom.toml"
        ))
        .unwrap();
        explain(&text)
    }

    #[test]
    fn the_mailroom_probes_are_described_as_the_guard_runs_them() {
        let e = mailroom();
        let names: Vec<&str> = e.probes.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["addressbook", "lookup", "password-reset", "register"]
        );
        let book = &e.probes[0];
        assert_eq!(book.methods, ["GET", "HEAD"]);
        assert!(book.head_with_get);
        assert!(book.self_target && !book.self_target_set);
        assert_eq!(book.thresholds, Thresholds::objects());
        assert!(book.overrides.is_empty());
        let reset = &e.probes[2];
        assert_eq!(reset.methods, ["POST"]);
        assert!(!reset.head_with_get);
        assert_eq!(reset.oversized, Oversized::Refuse);
        let lookup = &e.probes[1];
        assert_eq!(
            lookup.overrides,
            [(
                "baseline_miss_ratio".to_owned(),
                "0.25".to_owned(),
                "0.1".to_owned()
            )]
        );
        let text = e.to_string();
        for needle in [
            "probe \"addressbook\" (probes[0]), objects",
            "methods: GET, HEAD (HEAD rides with GET",
            "path: /api/accounts/{id}/addressbook",
            "target: path segment {id}",
            "foreign objects: 15 (account, session), 30 (ip), 60 (subnet)",
            "finds 30 (every actor)",
            "throttles at 0.6 of a block (an account: 9 foreign objects)",
            "target: query parameter `email`",
            "target: JSON body field `email`, read from the first 16384 bytes",
            "larger bodies: refused with 413 (oversized is \"refuse\", set)",
            "outcome: miss 2xx; denied none; hit 409",
            "needs_login is false: an address holds every request",
            "overrides: kind_factors.ip is 30.0 (default 2.0)",
        ] {
            assert!(text.contains(needle), "{needle}:\n{text}");
        }
    }

    /// The mailroom's one warning is its deliberate room for an office
    /// signing up its staff (register: 30x per address), stated with its
    /// real figure; nothing else it chose is flagged.
    #[test]
    fn the_mailroom_warns_only_of_its_deliberate_signup_room() {
        let e = mailroom();
        assert_eq!(
            kinds(&e),
            [(
                WarningKind::Looser,
                "probes[3].thresholds.kind_factors.ip".to_owned()
            )]
        );
        assert_eq!(e.warnings[0].probe.as_deref(), Some("register"));
        assert!(
            e.warnings[0]
                .why
                .contains("one ip gets 600 misses per 3600 s window before a block, 15x"),
            "{}",
            e.warnings[0]
        );
    }

    #[test]
    fn each_hole_gets_its_warning() {
        let probe = |extra: &str| {
            format!(
                "[[probes]]\nname = \"reset\"\nmethod = \"POST\"\npath = \"/api/password-reset\"\n\
                 target = {{ json = \"email\" }}\nstyle = \"identities\"\nneeds_login = false\n{extra}"
            )
        };
        let cases: &[(&str, WarningKind, &str)] = &[
            ("mode = \"observe\"", WarningKind::ObserveMode, "mode"),
            (
                "missing_peer = \"unknown\"",
                WarningKind::MissingPeerCounted,
                "missing_peer",
            ),
            (
                "forwarded_header = \"forwarded\"",
                WarningKind::ForwardedUnread,
                "forwarded_header",
            ),
            (
                "trusted_proxies = [\"0.0.0.0/0\"]",
                WarningKind::ClientsTrusted,
                "trusted_proxies[0]",
            ),
            (
                "trusted_proxies = [\"10.0.0.0/8\", \"::/0\"]",
                WarningKind::ClientsTrusted,
                "trusted_proxies[1]",
            ),
            (
                "[allow]\ncidrs = [\"10.0.0.0/8\"]",
                WarningKind::WideAllow,
                "allow.cidrs[0]",
            ),
            (
                "[allow]\ncidrs = [\"0.0.0.0/1\"]",
                WarningKind::WideAllow,
                "allow.cidrs[0]",
            ),
            (
                "ip_v6_prefix = 128",
                WarningKind::NarrowActor,
                "ip_v6_prefix",
            ),
            (
                "subnet_v4_prefix = 32",
                WarningKind::NarrowActor,
                "subnet_v4_prefix",
            ),
            (
                "[limits]\nmax_actors = 5000",
                WarningKind::SmallStore,
                "limits.max_actors",
            ),
            (
                "[throttle]\nper_minute = 600",
                WarningKind::WeakVerdicts,
                "throttle.per_minute",
            ),
            (
                "[blocks]\nfactor = 1",
                WarningKind::WeakVerdicts,
                "blocks.factor",
            ),
            (
                "[links]\nwatch_factor = 1.0",
                WarningKind::WeakVerdicts,
                "links.watch_factor",
            ),
            (
                "[service_view]\nratio = 20.0",
                WarningKind::QuietView,
                "service_view.ratio",
            ),
        ];
        for (toml, kind, field) in cases {
            let e = explain(&format!("{toml}\n{}", probe("")));
            assert!(
                kinds(&e).contains(&(*kind, (*field).to_owned())),
                "{toml}: {:?}",
                kinds(&e)
            );
        }
        let probe_cases: &[(&str, WarningKind, &str)] = &[
            (
                "oversized = \"pass\"",
                WarningKind::OversizedPass,
                "probes[0].oversized",
            ),
            (
                "outcome = { hit = [200], miss = [], denied = [] }",
                WarningKind::Outcome,
                "probes[0].outcome.miss",
            ),
            (
                "outcome = { hit = [], miss = [404], denied = [] }",
                WarningKind::Outcome,
                "probes[0].outcome.hit",
            ),
            (
                "outcome = { hit = [404], miss = [404], denied = [] }",
                WarningKind::Outcome,
                "probes[0].outcome.hit[0]",
            ),
            (
                "[probes.thresholds]\nhit_block = 0",
                WarningKind::Off,
                "probes[0].thresholds.hit_block",
            ),
            (
                "[probes.thresholds]\nmiss_cap = 0.0",
                WarningKind::Off,
                "probes[0].thresholds.miss_cap",
            ),
            (
                "[probes.thresholds]\nanomaly_factor = 1.0",
                WarningKind::Off,
                "probes[0].thresholds.anomaly_factor",
            ),
            (
                "[probes.thresholds]\nrepeat_factor = 1.0",
                WarningKind::Off,
                "probes[0].thresholds.repeat_factor",
            ),
            (
                "[probes.thresholds]\nanomaly_factor = 0.5",
                WarningKind::Looser,
                "probes[0].thresholds.anomaly_factor",
            ),
            (
                "[probes.thresholds]\nmiss_block = 100",
                WarningKind::Looser,
                "probes[0].thresholds.miss_block",
            ),
            (
                "[probes.thresholds]\nmin_targets = 50",
                WarningKind::Looser,
                "probes[0].thresholds.min_targets",
            ),
            (
                "[probes.thresholds]\nwindow_secs = 600\nlong_half_life_secs = 600",
                WarningKind::Looser,
                "probes[0].thresholds.long_half_life_secs",
            ),
        ];
        for (toml, kind, field) in probe_cases {
            let e = explain(&probe(toml));
            assert!(
                kinds(&e).contains(&(*kind, (*field).to_owned())),
                "{toml}: {:?}",
                kinds(&e)
            );
        }
        // The defaults of that probe: no warning at all.
        assert_eq!(kinds(&explain(&probe(""))), []);
    }

    #[test]
    fn an_objects_probe_that_stops_counting_foreign_reads_is_warned_of() {
        let e = explain(
            "[[probes]]\nname = \"orders\"\npath = \"/api/orders/{id}\"\ntarget = { path = \"id\" }\n\
             [probes.thresholds]\nforeign_block = 0\nstranger_factor = 1.0\n",
        );
        let k = kinds(&e);
        assert!(
            k.contains(&(
                WarningKind::Off,
                "probes[0].thresholds.foreign_block".into()
            )),
            "{k:?}"
        );
        assert!(
            k.contains(&(
                WarningKind::Off,
                "probes[0].thresholds.stranger_factor".into()
            )),
            "{k:?}"
        );
        // Order ids are not account ids: no own object but by Owner.
        assert!(!e.probes[0].self_target);
        assert!(e.to_string().contains("without them every read is foreign"));
    }

    /// A reset probe whose login rule is left to be learned, or said to be
    /// needed: throwaway accounts slip out of their address.
    #[test]
    fn an_anonymous_endpoint_whose_address_does_not_hold_accounts_is_warned_of() {
        for needs in ["", "needs_login = true\n"] {
            let e = explain(&format!(
                "[[probes]]\nname = \"reset\"\nmethod = \"POST\"\npath = \"/auth/forgot-password\"\n\
                 target = {{ json = \"email\" }}\nstyle = \"identities\"\n{needs}"
            ));
            assert_eq!(
                kinds(&e),
                [(WarningKind::LoginNotHeld, "probes[0].needs_login".into())],
                "{needs}"
            );
        }
        // A lookup behind a login: not flagged.
        let e = explain(
            "[[probes]]\nname = \"lookup\"\npath = \"/api/recipients/lookup\"\n\
             target = { query = \"email\" }\nstyle = \"identities\"\n",
        );
        assert_eq!(kinds(&e), []);
    }

    #[test]
    fn a_probe_behind_an_earlier_one_is_warned_of_with_a_request_that_shows_it() {
        let e = explain(
            "[[probes]]\nname = \"any\"\nmethod = \"*\"\npath = \"/api/{kind}/{id}\"\ntarget = { path = \"id\" }\n\
             [[probes]]\nname = \"orders\"\npath = \"/api/orders/{id}\"\ntarget = { path = \"id\" }\n\
             [[probes]]\nname = \"other\"\nmethod = \"POST\"\npath = \"/api/orders/{id}/x\"\ntarget = { path = \"id\" }\n",
        );
        assert_eq!(
            kinds(&e),
            [(WarningKind::Shadowed, "probes[1].path".into())]
        );
        assert!(
            e.warnings[0]
                .why
                .contains("`GET /api/orders/1` matches probe \"any\""),
            "{}",
            e.warnings[0]
        );
    }

    #[test]
    fn a_method_list_and_any_method_are_described() {
        let e = explain(
            "[[probes]]\nname = \"a\"\nmethod = \"get, post\"\npath = \"/a/{id}\"\ntarget = { path = \"id\" }\n\
             [[probes]]\nname = \"b\"\nmethod = \"*\"\npath = \"/b/{id}\"\ntarget = { path = \"id\" }\n\
             [[probes]]\nname = \"c\"\nmethod = \"GET, HEAD\"\npath = \"/c/{id}\"\ntarget = { path = \"id\" }\n",
        );
        assert_eq!(e.probes[0].methods, ["GET", "POST", "HEAD"]);
        assert!(e.probes[0].head_with_get);
        assert!(e.probes[1].methods.is_empty());
        assert!(e.to_string().contains("methods: every method (*)"));
        assert!(!e.probes[2].head_with_get, "HEAD written, not brought");
    }

    /// Names and paths are escaped: an explanation is printed as comment
    /// lines, which a control character would break.
    #[test]
    fn control_characters_are_escaped() {
        let c = Config {
            probes: vec![ProbeConfig::objects(
                "a\nb\u{7}",
                "GET",
                "/x\r/{id}",
                TargetConfig::path("id"),
            )],
            ..Config::default()
        };
        let text = c.explain().unwrap().to_string();
        assert!(
            !text.chars().any(|ch| ch.is_control() && ch != '\n'),
            "{text:?}"
        );
        assert!(text.contains(r#"probe "a\nb\u{7}""#), "{text}");
    }

    #[test]
    fn no_secret_is_part_of_an_explanation() {
        let key = "0123456789abcdef0123456789abcdef";
        let c = Config {
            session_key: Some(key.into()),
            session: Some(SessionSource::Cookie("sid".into())),
            cluster: Some(crate::config::ClusterConfig {
                redis_url: "redis://:hunter2@10.0.0.5:6379/0".into(),
                ..Default::default()
            }),
            ..Config::default()
        };
        // Valid only with the redis feature; the explanation is made from
        // the parts either way.
        let e = Explanation {
            mode: c.mode,
            actors: c.actor_sources(),
            probes: Vec::new(),
            warnings: Vec::new(),
            verdicts: c.verdict_lines(),
        };
        let text = format!("{e}{e:?}");
        assert!(
            !text.contains("0123456789abcdef") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(text.contains("cookie `sid`"), "{text}");
    }

    #[test]
    fn an_invalid_config_is_an_error_naming_the_field() {
        let mut c = Config::default();
        c.probes.push(ProbeConfig::objects(
            "p",
            "GET",
            "/p/:id",
            TargetConfig::path("id"),
        ));
        let e = c.explain().unwrap_err();
        assert_eq!(e.field(), Some("probes[0].target.path"));
    }
}
