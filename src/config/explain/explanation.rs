//! What an explanation is made of: the probes, actors and warnings
//! [`Config::explain`](crate::config::Config::explain) fills in, and how
//! it writes its figures.

use crate::actor::ActorKind;
use crate::config::{
    KindFactors, Mode, OutcomeConfig, Oversized, ProbeStyle, TargetConfig, Thresholds,
};

/// A setting this many times looser than its default is worth a warning.
/// Twice the room is a tuning choice (the ip and subnet kind factors are
/// 2 and 4); three times the room is what an enumerator notices first.
pub(super) const LOOSE: f64 = 3.0;

/// What a config means, as the guard runs it: made by
/// [`Config::explain`](crate::config::Config::explain).
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

/// A number as people write it: `30`, `7.5`, `0.06`.
pub(super) fn num(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The kind factor of `kind`: how many times an account's room it gets.
pub(super) fn factor(f: &KindFactors, kind: ActorKind) -> f64 {
    match kind {
        ActorKind::Ip => f.ip,
        ActorKind::Subnet => f.subnet,
        ActorKind::Session => f.session,
        ActorKind::Account => f.account,
    }
}

/// The style as the config writes it.
pub(super) fn style_name(s: ProbeStyle) -> &'static str {
    match s {
        ProbeStyle::Objects => "objects",
        ProbeStyle::Identities => "identities",
    }
}
