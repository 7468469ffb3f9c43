//! What the policy knows of an actor besides its signals: its kind, its
//! history, and whether the address it acts from carries suspicion. Pure.

use super::policy::Policy;
use super::probes::Probe;
use super::score::Context;
use crate::actor::ActorKind;
use crate::state::record::{Record, Signals};

/// The signals an actor is judged by: an address's cadence is that of
/// everyone behind it, so only a person's (a session's, an account's)
/// machine-regular cadence counts; an office signing up its staff can look
/// regular by chance.
pub(crate) fn judged(kind: ActorKind, mut s: Signals) -> Signals {
    if !kind.is_personal() {
        s.regular = false;
    }
    s
}

/// No history: young, and fewer history hits than `links.history_hits`.
pub(crate) fn is_new(policy: &Policy, r: &Record, now: u64) -> bool {
    is_young(policy, r, now) && r.hits_total() < policy.history_hits
}

/// Younger than `links.new_actor_secs`, whatever it did: what the watch on
/// a suspect address goes by, since history hits (reading one's own object
/// five times) cost an attacker nothing.
pub(crate) fn is_young(policy: &Policy, r: &Record, now: u64) -> bool {
    now.saturating_sub(r.first_seen()) < policy.new_actor
}

/// Whether an address's record on a probe makes the new accounts and
/// sessions beside it watched: a carry of at least half of one link boost,
/// i.e. a blocked person used the address within about the last half-life.
pub(crate) fn suspect_address(policy: &Policy, kind: ActorKind, carry: f64) -> bool {
    !kind.is_personal() && carry > 0.0 && carry >= policy.boost * 0.5
}

/// The policy's context for one actor's record. `anomalous`: the
/// service-wide view is; `watched`: an address of the request carries
/// suspicion on this probe (a blocked actor used it).
pub(crate) fn context(
    policy: &Policy,
    probe: &Probe,
    kind: ActorKind,
    r: &Record,
    now: u64,
    anomalous: bool,
    watched: bool,
) -> Context {
    let t = &probe.thresholds;
    let f = &t.kind_factors;
    let kind_factor = match kind {
        ActorKind::Ip => f.ip,
        ActorKind::Subnet => f.subnet,
        ActorKind::Session => f.session,
        ActorKind::Account => f.account,
    };
    let new = is_new(policy, r, now);
    // The tightening is for actors the service knows nothing of. An address
    // that has shown it is busy (more distinct targets this window than the
    // view counts of one address: an office, a NAT) keeps the kind factor
    // the operator set. Busy means distinct targets, not requests:
    // repeating one known target is free, and a spread attack's address is
    // blocked at its third or so new target, long before it could get busy.
    let busy = !kind.is_personal() && r.window_targets(now, probe.window) > policy.per_address;
    let tightened = anomalous && new && !busy && t.anomaly_factor < 1.0;
    let mut foreign_factor = 1.0;
    // A new account or session at a suspect address: watched, judged on
    // its own evidence with less room (it inherits no suspicion).
    if watched && is_young(policy, r, now) && kind.is_personal() && probe.self_target {
        foreign_factor *= policy.watch_factor;
    }
    // A stranger during an anomaly: a new account or session that has read
    // none of its own objects (an address is many people, and an anonymous
    // request owns nothing).
    if tightened && kind.is_personal() && probe.self_target && r.own_reads() == 0 {
        foreign_factor *= t.stranger_factor;
    }
    Context {
        kind_factor,
        tightened,
        strikes: u32::from(r.strikes),
        carry: r.carry_at(now, policy.half_life),
        foreign_factor,
    }
}
