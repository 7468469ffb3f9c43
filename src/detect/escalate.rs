//! Verdicts: throttles, blocks with escalating durations, the links a
//! block makes to the request's other actors, and the event and metric of
//! every change. Operators' bans and unbans go through here too.

use super::Detector;
use super::change::{ChangeKind, VerdictChange};
use super::policy::Policy;
use super::probes::Probe;
use super::score::{self, Level};
use crate::actor::{ActorKey, Actors};
use crate::clock::{Nanos, Span};
use crate::config::Mode;
use crate::state::decay::growth;
use crate::state::record::MAX_CARRY;
use crate::state::verdict::VerdictReason;

/// Carried suspicion a block leaves at its *end*: half a block, so that an
/// actor back from a block is stopped sooner. Higher stops a comeback at
/// its first target; lower gives a person who tripped a block by accident
/// more room afterwards.
const BLOCK_CARRY: f64 = 0.5;
/// Carried suspicion a block leaves at its start, at most: a repeat
/// offender is not forgotten while it waits, and a day-long block reaches
/// this (the most a record carries).
const MAX_BLOCK_CARRY: f64 = MAX_CARRY;

/// The request a verdict is decided in: the policy and the probe it was
/// judged by, its time, and its actors (whom a block links).
#[derive(Clone, Copy)]
pub(crate) struct Scene<'a> {
    pub(crate) policy: &'a Policy,
    pub(crate) probe: &'a Probe,
    pub(crate) now: Nanos,
    pub(crate) actors: &'a Actors,
}

/// A verdict change, for its event and metric.
struct Announcement {
    actor: ActorKey,
    kind: ChangeKind,
    reason: VerdictReason,
    score: f64,
    /// Times blocked, this block included (0 for a throttle).
    strikes: u32,
}

impl Detector {
    /// Throttles `key` in `at` (a new throttle is announced; a live one
    /// extended).
    pub(crate) fn throttle_in(&self, at: &Scene<'_>, key: ActorKey, score: f64) {
        let Scene {
            policy, probe, now, ..
        } = *at;
        if self.verdicts.throttle(
            key,
            now.saturating_add(policy.throttle_for),
            VerdictReason::Detected,
            Some(probe.slot),
            now,
            policy.quota,
        ) {
            self.announce(
                at,
                Announcement {
                    actor: key,
                    kind: ChangeKind::Throttle,
                    reason: VerdictReason::Detected,
                    score,
                    strikes: 0,
                },
            );
        }
    }

    /// The learning step found `key` at block level (the worst of the
    /// request): every other actor of the request at block level is blocked
    /// too, then `key`, which links.
    pub(crate) fn block_crossed_in(&self, at: &Scene<'_>, key: ActorKey, score: f64) {
        let Scene {
            probe, now, actors, ..
        } = *at;
        let t = &probe.thresholds;
        for other in actors.keys() {
            if other == key {
                continue;
            }
            let s = self
                .store
                .read(&(other, probe.slot), |r| r.last_score())
                .unwrap_or(0.0);
            if score::level(t, s) == Level::Block && !self.is_blocked(other, now) {
                self.block_one(at, other, s, VerdictReason::Detected);
            }
        }
        if !self.is_blocked(key, now) {
            self.block_in(at, key, score, VerdictReason::Detected);
        }
    }

    pub(crate) fn is_blocked(&self, key: ActorKey, now: Nanos) -> bool {
        matches!(
            self.verdicts.verdict(&key, now),
            crate::state::Verdict::Block { .. }
        )
    }

    /// Blocks `actor` and raises the suspicion of the other actors of the
    /// request (linking). Returns the end of the block.
    ///
    /// Links go from a person to its addresses and its other identities
    /// (an account to its session and the reverse), never from an address
    /// to the people behind it: a blocked ip or subnet (many people) adds
    /// nothing to the accounts and sessions of the request, and an address
    /// that carries suspicion only makes the *new* accounts and sessions
    /// beside it watched (see `context`).
    pub(crate) fn block_in(
        &self,
        at: &Scene<'_>,
        actor: ActorKey,
        score: f64,
        reason: VerdictReason,
    ) -> Nanos {
        let Scene {
            policy,
            probe,
            now,
            actors,
        } = *at;
        let until = self.block_one(at, actor, score, reason);
        let t = &probe.thresholds;
        let from_person = actor.kind().is_personal();
        for other in actors.keys() {
            if other == actor || (other.kind().is_personal() && !from_person) {
                continue;
            }
            let linked = self
                .store
                .update((other, probe.slot), now, policy.half_life, |r| {
                    r.raise_carry(now, policy.half_life, policy.boost, 0.0);
                    let s = r.last_score() + policy.boost;
                    r.set_score(s);
                    s
                });
            if let Some(s) = linked {
                if score::level(t, s) == Level::Block && !self.is_blocked(other, now) {
                    self.block_one(at, other, s, VerdictReason::Linked);
                }
            }
        }
        until
    }

    /// Blocks `actor` unless it holds a live block already, and counts
    /// the strike of the block it starts. Of requests that cross a
    /// threshold at the same time, only the one whose block the table took
    /// counts a strike (the record's strikes are set to this block's, not
    /// added to), so a burst of concurrent crossings is one strike, not
    /// one each. Returns the end of the actor's block.
    fn block_one(
        &self,
        at: &Scene<'_>,
        actor: ActorKey,
        score: f64,
        reason: VerdictReason,
    ) -> Nanos {
        let Scene {
            policy, probe, now, ..
        } = *at;
        // The strike this block would be: read, counted only if it starts.
        let strikes = self
            .store
            .read(&(actor, probe.slot), |r| r.strikes)
            .unwrap_or(0)
            .saturating_add(1);
        let d = policy.block_duration(u32::from(strikes));
        let until = now.saturating_add(d);
        if let Err(held) = self.verdicts.block_new(
            actor,
            until,
            reason,
            u32::from(strikes),
            Some(probe.slot),
            now,
        ) {
            return held;
        }
        self.store
            .update((actor, probe.slot), now, policy.half_life, |r| {
                r.strikes = r.strikes.max(strikes);
                // A blocked actor comes back with half a block of carried
                // suspicion when its block *ends*, however long the block
                // was: a repeat offender is not forgotten while it waits.
                let floor = BLOCK_CARRY * growth(d, policy.half_life);
                r.raise_carry(now, policy.half_life, 0.0, floor.min(MAX_BLOCK_CARRY));
                r.set_score(r.last_score().max(1.0));
            });
        self.announce(
            at,
            Announcement {
                actor,
                kind: ChangeKind::Block,
                reason,
                score,
                strikes: u32::from(strikes),
            },
        );
        until
    }

    /// The tracing event and metric of a verdict change.
    fn announce(&self, at: &Scene<'_>, change: Announcement) {
        let Scene {
            policy,
            probe,
            now,
            actors,
        } = *at;
        let Announcement {
            actor,
            kind,
            reason,
            score,
            strikes,
        } = change;
        let verdict = kind.as_str();
        let t = &probe.thresholds;
        let signals = self
            .store
            .read(&(actor, probe.slot), |r| {
                r.signals(now, probe.window, probe.long)
            })
            .unwrap_or_default();
        // The account's id, for an account actor only.
        let account = actors
            .account
            .filter(|a| a.key() == actor)
            .map(|a| a.to_string());
        let remaining = match self.verdicts.verdict(&actor, now) {
            crate::state::Verdict::Block { remaining, .. }
            | crate::state::Verdict::Throttle { remaining, .. } => remaining,
            _ => std::time::Duration::ZERO,
        };
        let secs = remaining.as_secs();
        // The listener (a replay's log of verdicts, the cluster sync) hears
        // of every change made here, detected ones as well as bans.
        self.changed(|| VerdictChange {
            actor,
            kind,
            reason,
            strikes,
            remaining: Span::from_duration(remaining).get(),
            probe: Some(probe.name.clone()),
        });
        tracing::warn!(
            target: "enumguard",
            actor = %actor,
            account = account.as_deref(),
            probe = %probe.name,
            verdict,
            reason = reason.as_str(),
            mode = if policy.mode == Mode::Observe { "observe" } else { "enforce" },
            score = format_args!("{score:.2}"),
            foreign = format_args!("{:.1}", signals.foreign.max(0.0) + 0.0),
            misses = format_args!("{:.1}", signals.misses.max(0.0) + 0.0),
            denied = format_args!("{:.1}", signals.denied.max(0.0) + 0.0),
            seq_run = signals.seq_run,
            regular = signals.regular,
            foreign_block = t.foreign_block,
            miss_block = t.miss_block,
            denied_block = t.denied_block,
            strikes,
            secs,
            "enumguard verdict changed"
        );
        metrics::counter!(
            crate::metrics::VERDICTS,
            "verdict" => verdict,
            "actor_kind" => actor.kind().as_str(),
            "reason" => reason.as_str(),
            "probe" => probe.name.to_string()
        )
        .increment(1);
    }

    /// An operator's ban of `key` for `dur` nanoseconds from `now`. It
    /// refuses everything, so it takes effect over any narrower block (a
    /// detected block of an address covers one probe and anonymous
    /// requests), however long that one lasts; over a longer ban, or a
    /// longer detected block of a person (which refuses everything too),
    /// the later end stays. See `merge_block` in `state::verdict`.
    pub fn ban(&self, key: ActorKey, now: u64, dur: u64) {
        let (now, dur) = (Nanos::new(now), Span::new(dur));
        let strikes = match self.verdicts.get(&key) {
            Some(e) => e.strikes.max(1),
            None => 1,
        };
        if self.verdicts.block(
            key,
            now.saturating_add(dur),
            VerdictReason::Manual,
            strikes,
            None,
            now,
        ) {
            // What the table holds now (a person's longer detected block
            // extends the ban).
            let remaining = match self.verdicts.verdict(&key, now) {
                crate::state::Verdict::Block { remaining, .. } => Span::from_duration(remaining),
                _ => dur,
            };
            tracing::warn!(target: "enumguard", actor = %key, verdict = "block", reason = "manual", secs = remaining.as_secs(), "enumguard verdict changed");
            self.changed(|| VerdictChange {
                actor: key,
                kind: ChangeKind::Block,
                reason: VerdictReason::Manual,
                strikes,
                remaining: remaining.get(),
                probe: None,
            });
            metrics::counter!(crate::metrics::VERDICTS, "verdict" => "block", "actor_kind" => key.kind().as_str(), "reason" => "manual", "probe" => "").increment(1);
        }
    }

    /// Forgets `key`'s records on every probe (after an unban, here or on
    /// another replica).
    pub(crate) fn forget(&self, key: ActorKey) {
        for slot in self.policy().probes.iter().map(|p| p.slot) {
            self.store.remove(&(key, slot));
        }
    }

    /// Lifts any verdict on `key` and forgets its records (signals and
    /// strikes). Returns whether it had a verdict.
    pub fn unban(&self, key: ActorKey) -> bool {
        let had = self.verdicts.remove(&key);
        self.forget(key);
        if had {
            tracing::warn!(target: "enumguard", actor = %key, verdict = "allow", reason = "manual", "enumguard verdict changed");
            self.changed(|| VerdictChange {
                actor: key,
                kind: ChangeKind::Allow,
                reason: VerdictReason::Manual,
                strikes: 0,
                remaining: 0,
                probe: None,
            });
            metrics::counter!(crate::metrics::VERDICTS, "verdict" => "allow", "actor_kind" => key.kind().as_str(), "reason" => "manual", "probe" => "").increment(1);
        }
        had
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::ActorKind;
    use crate::config::Config;
    use crate::state::Verdict;
    use crate::{ProbeConfig, TargetConfig};

    fn detector() -> Detector {
        Detector::new(Config {
            probes: vec![ProbeConfig::identities(
                "lookup",
                "GET",
                "/api/lookup",
                TargetConfig::query("email"),
            )],
            ..Config::default()
        })
        .unwrap()
    }

    fn no_actors() -> Actors {
        Actors {
            addr: None,
            ip: None,
            subnet: None,
            session: None,
            session_alt: None,
            account: None,
        }
    }

    /// The request on the detector's one probe at `now`.
    fn at<'a>(policy: &'a Policy, now: Nanos, actors: &'a Actors) -> Scene<'a> {
        Scene {
            policy,
            probe: &policy.probes[0],
            now,
            actors,
        }
    }

    const SEC: Span = Span::from_secs(1);

    /// Eight requests of one account cross the block threshold at the same
    /// instant, each past the "not blocked yet" check: one block, one
    /// strike, the first block's duration; the next block, after it ends,
    /// is the second strike.
    #[test]
    fn concurrent_crossings_add_one_strike() {
        let d = detector();
        let policy = d.policy();
        let probe = &policy.probes[0];
        let key = ActorKey::hashed(ActorKind::Account, 5);
        let now = Nanos::ZERO + 10 * SEC;
        let actors = no_actors();
        let gate = std::sync::Barrier::new(8);
        let ends: Vec<Nanos> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        gate.wait();
                        d.block_one(
                            &at(&policy, now, &actors),
                            key,
                            1.5,
                            VerdictReason::Detected,
                        )
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let first = policy.block_duration(1);
        assert!(ends.iter().all(|&e| e == now + first), "{ends:?}");
        assert_eq!(d.store.read(&(key, probe.slot), |r| r.strikes), Some(1));
        assert_eq!(
            d.verdicts.verdict(&key, now),
            Verdict::Block {
                remaining: first.as_duration(),
                reason: VerdictReason::Detected,
                strikes: 1
            }
        );
        // After it ended: the second strike, a longer block.
        let later = now + first + SEC;
        let end = d.block_one(
            &at(&policy, later, &actors),
            key,
            1.5,
            VerdictReason::Detected,
        );
        assert_eq!(end, later + policy.block_duration(2));
        assert!(policy.block_duration(2) > first);
        assert_eq!(d.store.read(&(key, probe.slot), |r| r.strikes), Some(2));
    }

    /// At the far end of the clock, a throttle's and a block's ends
    /// saturate instead of overflowing.
    #[test]
    fn ends_saturate_at_the_end_of_time() {
        let d = detector();
        let policy = d.policy();
        let key = ActorKey::hashed(ActorKind::Session, 6);
        let now = Nanos::MAX - SEC;
        let actors = no_actors();
        d.throttle_in(&at(&policy, now, &actors), key, 0.8);
        d.throttle_in(&at(&policy, now + Span::new(1), &actors), key, 0.8);
        assert!(matches!(
            d.verdicts.verdict(&key, now),
            Verdict::Throttle { remaining, .. } if remaining.as_nanos() == u128::from(SEC.get())
        ));
        let other = ActorKey::hashed(ActorKind::Account, 7);
        let end = d.block_one(
            &at(&policy, now, &actors),
            other,
            1.5,
            VerdictReason::Detected,
        );
        assert_eq!(end, Nanos::MAX);
        d.ban(other, now.get(), u64::MAX);
        assert!(matches!(
            d.verdicts.verdict(&other, now),
            Verdict::Block {
                reason: VerdictReason::Manual,
                ..
            }
        ));
    }
}
