//! What the policy knows of an actor besides its signals: its kind, its
//! history, and whether the address it acts from carries suspicion. Pure.

use super::policy::Policy;
use super::probes::Probe;
use super::score::Context;
use crate::actor::{ActorKind, Standing};
use crate::clock::Nanos;
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

/// No history: young, and fewer history hits than `links.history_hits`;
/// or what the application said of a person's standing.
pub(crate) fn is_new(policy: &Policy, r: &Record, now: Nanos, standing: Standing) -> bool {
    match standing {
        Standing::Established => false,
        Standing::New => true,
        _ => is_young(policy, r, now, standing) && r.hits_total() < policy.history_hits,
    }
}

/// Younger than `links.new_actor_secs`, whatever it did: what the watch on
/// a suspect address goes by, since history hits (reading one's own object
/// five times) cost an attacker nothing. What the application said of a
/// person's standing wins.
pub(crate) fn is_young(policy: &Policy, r: &Record, now: Nanos, standing: Standing) -> bool {
    match standing {
        Standing::Established => false,
        Standing::New => true,
        _ => now.saturating_sub(r.first_seen()) < policy.new_actor,
    }
}

/// The standing that applies to an actor of a request: the account's, for
/// its account and session actors (a session is the account's login); an
/// address is many people, and goes by its own record.
pub(crate) fn standing_of(kind: ActorKind, actors: &crate::actor::Actors) -> Standing {
    match (kind.is_personal(), actors.account()) {
        (true, Some(a)) => a.standing(),
        _ => Standing::Unknown,
    }
}

/// The share of one link boost an address must still carry for the new
/// accounts and sessions beside it to be watched: half, i.e. a blocked
/// person used the address within about the last half-life. Lower watches
/// an address longer after a block (more of its newcomers meet the watch);
/// higher lets a comeback through sooner.
const SUSPECT_SHARE: f64 = 0.5;

/// Whether an address's record on a probe makes the new accounts and
/// sessions beside it watched (see [`SUSPECT_SHARE`]).
pub(crate) fn suspect_address(policy: &Policy, kind: ActorKind, carry: f64) -> bool {
    !kind.is_personal() && carry > 0.0 && carry >= policy.boost * SUSPECT_SHARE
}

/// What the addresses of a request say of the people behind them on a
/// probe (read off the address records, which the request visits first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Beside {
    /// An address carries suspicion (a blocked actor used it): a young
    /// account or session there is watched on foreign objects.
    pub(crate) suspect: bool,
    /// An address guesses (see [`guessing_address`]: its misses, 0 if
    /// not): a young account or session there is watched on misses, when
    /// others made them.
    pub(crate) guessing: u32,
    /// What the application said of the account's standing (see
    /// [`standing_of`]: set for the account and session actors).
    pub(crate) standing: Standing,
}

/// The share of an address's answers that misses must reach for the
/// address to be taken for a guessing one: a guesser's list is mostly
/// addresses that are not registered (95% at a 5% hit rate); people who
/// check which of their contacts joined find some (a fifth or more) and
/// share the rest with others (misses on addresses others asked for do not
/// count).
const GUESSING_SHARE: f64 = 0.85;

/// Whether an address's answers on the probe are mostly misses: in its
/// window at least its sample of answers (`min_targets` times its kind
/// factor) and misses at least `GUESSING_SHARE` of them. The people behind a
/// shared address find what they look up (a busy office mistypes one in
/// seven); accounts made by the dozen to guess do not.
pub(crate) fn guessing_address(probe: &Probe, kind: ActorKind, r: &Record, now: Nanos) -> u32 {
    let t = &probe.thresholds;
    if kind.is_personal() || t.miss_block == 0 {
        return 0;
    }
    let c = r.window_counts(now, probe.window);
    let misses = f64::from(c.misses);
    if misses < 2.0 {
        return 0;
    }
    let answered = misses + f64::from(c.hits) + f64::from(c.denied);
    let f = &t.kind_factors;
    let sample = t.min_targets as f64
        * if kind == ActorKind::Subnet {
            f.subnet
        } else {
            f.ip
        };
    // Repeats are people: a guesser never asks for what it found before,
    // and a NAT of heavy users with short lists mostly does.
    let repeats = || {
        let l = r.signals(now, probe.window, probe.long);
        l.long_repeats > 0.25 * l.long_classified
    };
    if answered >= sample.max(2.0) && misses >= GUESSING_SHARE * answered && !repeats() {
        u32::from(c.misses)
    } else {
        0
    }
}

/// A request on one probe, as its actors are judged: the policy and the
/// probe, the time, and whether the probe's service-wide view is
/// anomalous (tightening the thresholds of actors with no history).
#[derive(Clone, Copy)]
pub(crate) struct Judging<'a> {
    pub(crate) policy: &'a Policy,
    pub(crate) probe: &'a Probe,
    pub(crate) now: Nanos,
    pub(crate) anomalous: bool,
}

impl Judging<'_> {
    /// The policy's context for the record `r` of an actor of kind `kind`,
    /// with what the request's addresses say (`beside`).
    pub(crate) fn context(&self, kind: ActorKind, r: &Record, beside: Beside) -> Context {
        let Judging {
            policy,
            probe,
            now,
            anomalous,
        } = *self;
        let watched = beside.suspect;
        let t = &probe.thresholds;
        let f = &t.kind_factors;
        let kind_factor = match kind {
            ActorKind::Ip => f.ip,
            ActorKind::Subnet => f.subnet,
            ActorKind::Session => f.session,
            ActorKind::Account => f.account,
        };
        let standing = beside.standing;
        let new = is_new(policy, r, now, standing);
        let young = is_young(policy, r, now, standing);
        // The tightening is for actors the service knows nothing of. An address
        // that has shown it is busy (more distinct targets this window than the
        // view counts of one address: an office, a NAT) keeps the kind factor
        // the operator set. Busy means distinct targets, not requests:
        // repeating one known target is free, and a spread attack's address is
        // blocked at its third or so new target, long before it could get busy.
        let busy = !kind.is_personal() && r.window_targets(now, probe.window) > policy.per_address;
        // An actor blocked before on this probe is no newcomer to trust: while
        // the view is anomalous it comes back to the tight thresholds whatever
        // its age (a guessing network returning after its day-long block).
        let tightened = anomalous && (new || r.strikes > 0) && !busy && t.anomaly_factor < 1.0;
        let mut foreign_factor = 1.0;
        // A new account or session at a suspect address: watched, judged on its
        // own evidence with less room (it inherits no suspicion).
        if watched && young && kind.is_personal() && probe.watch_foreign {
            foreign_factor *= policy.watch_factor;
        }
        // A stranger during an anomaly: a new account or session that has read
        // none of its own objects (an address is many people, and an anonymous
        // request owns nothing).
        if tightened && kind.is_personal() && probe.watch_foreign && r.own_reads() == 0 {
            foreign_factor *= t.stranger_factor;
        }
        // A new account or session at an address that guesses: watched on
        // misses (its own; it inherits nothing). Accounts made by the dozen at
        // one address each take a guess or two, not a threshold each. (Misses
        // of others: a person alone on its address, checking which of its
        // contacts joined, is the address's guesser itself, and is judged on
        // its own room.)
        let others_guess =
            beside.guessing > u32::from(r.window_counts(now, probe.window).misses) + 1;
        let miss_factor = if others_guess && kind.is_personal() && young {
            policy.watch_factor
        } else {
            1.0
        };
        // An address blocked before on this probe, and not busy, has shown what
        // it is: it comes back judged as one actor, without the room of the
        // many people an address may be (a guessing network returning after its
        // block gets a guess, not a kind factor's worth).
        let kind_factor = if r.strikes > 0 && !busy {
            kind_factor.min(1.0)
        } else if standing == Standing::Established && t.hit_block > 0 {
            // A customer with a history gets twice the room on identities
            // probes: checking which contacts joined, mistyping a few.
            kind_factor * 2.0
        } else {
            kind_factor
        };
        Context {
            kind_factor,
            tightened,
            strikes: u32::from(r.strikes),
            carry: r.carry_at(now, policy.half_life),
            foreign_factor,
            miss_factor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Span;
    use crate::config::{Config, ProbeConfig, TargetConfig};
    use crate::probe::TargetInfo;

    const S: u64 = 1_000_000_000;

    fn policy() -> Policy {
        let mut c = Config::default();
        c.probes.push(ProbeConfig::objects(
            "book",
            "GET",
            "/a/{id}",
            TargetConfig::path("id"),
        ));
        Policy::compile(c, (1, 2), |_, _| Ok(0)).unwrap()
    }

    /// A record first seen at `born`, with `own` own-object reads.
    fn record(born: u64, own: u32) -> Record {
        let born = Nanos::new(born);
        let mut r = Record::new(born);
        let me = crate::actor::AccountId::new("9");
        for _ in 0..own {
            let t = TargetInfo::new(b"9", Some(&me), true, (1, 2));
            r.learn(
                born,
                Span::from_secs(3600),
                Span::from_secs(21_600),
                Some(t),
                Some(crate::Outcome::Hit),
            );
        }
        r
    }

    /// Judging on the policy's one probe at `now`.
    fn judging(policy: &Policy, now: u64, anomalous: bool) -> Judging<'_> {
        Judging {
            policy,
            probe: &policy.probes[0],
            now: Nanos::new(now),
            anomalous,
        }
    }

    const SUSPECT: Beside = Beside {
        suspect: true,
        guessing: 0,
        standing: Standing::Unknown,
    };
    const NOTHING: Beside = Beside {
        suspect: false,
        guessing: 0,
        standing: Standing::Unknown,
    };

    #[test]
    fn a_young_person_at_a_suspect_address_is_watched_an_old_one_is_not() {
        let p = policy();
        let now = 10 * 86_400 * S;
        let calm = judging(&p, now, false);
        let young = record(now - 3600 * S, 0);
        let old = record(now - 3 * 86_400 * S, 0);
        let c = calm.context(ActorKind::Account, &young, SUSPECT);
        assert_eq!(c.foreign_factor, p.watch_factor);
        let c = calm.context(ActorKind::Account, &old, SUSPECT);
        assert_eq!(c.foreign_factor, 1.0);
        // An address is never watched itself.
        let c = calm.context(ActorKind::Ip, &young, SUSPECT);
        assert_eq!(c.foreign_factor, 1.0);
        // Nor is anyone where nothing is suspect.
        let c = calm.context(ActorKind::Account, &young, NOTHING);
        assert_eq!(c.foreign_factor, 1.0);
    }

    #[test]
    fn during_an_anomaly_a_stranger_gets_less_room_than_a_newcomer_reading_its_own() {
        let p = policy();
        let probe = &p.probes[0];
        let now = 10 * 86_400 * S;
        let (calm, anomaly) = (judging(&p, now, false), judging(&p, now, true));
        let stranger = record(now - 60 * S, 0);
        let reader = record(now - 60 * S, 1);
        let c = anomaly.context(ActorKind::Account, &stranger, NOTHING);
        assert!(c.tightened);
        assert_eq!(c.foreign_factor, probe.thresholds.stranger_factor);
        let c = anomaly.context(ActorKind::Account, &reader, NOTHING);
        assert!(c.tightened);
        assert_eq!(c.foreign_factor, 1.0);
        // No anomaly: neither is tightened.
        let c = calm.context(ActorKind::Account, &stranger, NOTHING);
        assert!(!c.tightened);
    }

    #[test]
    fn a_suspect_address_carries_at_least_half_a_boost() {
        let p = policy();
        assert!(suspect_address(&p, ActorKind::Ip, p.boost * 0.5));
        assert!(!suspect_address(&p, ActorKind::Ip, p.boost * 0.49));
        assert!(!suspect_address(&p, ActorKind::Account, p.boost));
    }

    #[test]
    fn blocks_grow_fourfold_up_to_a_day() {
        let p = policy();
        let mins: Vec<u64> = (1..=6)
            .map(|s| p.block_duration(s).as_secs() / 60)
            .collect();
        assert_eq!(mins, [15, 60, 240, 960, 1440, 1440]);
    }
}
