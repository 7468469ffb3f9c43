//! The policy: signals and context in, suspicion out. Pure and sync.
//!
//! A signal at its threshold is a suspicion of 1.0, a block; `throttle_at`
//! (0.6 by default) is a throttle. Each threshold is scaled by the actor
//! kind (an address is many people), tightened for an actor with no history
//! while the service-wide view is anomalous, and halved for each earlier
//! block of the actor (down to a thirty-second). The foreign and denied
//! thresholds are tightened further for a
//! watched actor (a new account or session on an address that a blocked
//! actor used) and for a stranger (a new actor that has read none of its
//! own objects) during an anomaly: those are judged on their own evidence,
//! but with less room. A sequential walk or a machine cadence multiplies
//! the suspicion. Carried suspicion (from its own earlier blocks and from
//! blocked co-actors, decaying with a half-life) adds on top.
//!
//! # Misses and repeated use (objects probes)
//! Misses count as evidence only when three things hold: enough distinct
//! targets were tried (`min_targets`), most of them missed (`miss_ratio` of
//! the distinct targets), and misses are a real share of *everything* the
//! actor was answered (`repeat_miss_ratio` of the distinct targets plus the
//! repeated hits). A person comes back to the same few objects and
//! mistypes now and then; a prober never repeats. Heavier padding is met
//! by `miss_cap`: that many times `miss_block` distinct misses block
//! whatever the ratios.
//!
//! # Misses and finds (identities probes, `hit_block` set)
//! What an attacker wants from an identities probe is the finds, so misses
//! and finds add up, `misses / miss_block + hits / hit_block`, whatever the
//! miss ratio: a guesser with a 5% list is stopped by its misses, a
//! validator of a leaked list (mostly registered) by its finds. Both are
//! weighed by how much of *everything* the actor was answered missed,
//! repeats included, read as a lower confidence bound: in full from 22%,
//! not at all at 12% or less. That is what separates people: a business
//! looking up its customers again and again, a heavy user with a short
//! list and a few typos, a NAT of people resetting their own passwords
//! miss on a few percent of their answers; a guesser on 95%, a validator
//! of a 60% list on 40%, a person checking which of its contacts joined
//! on most (but those contacts are asked for by others too, and misses on
//! targets others asked for recently never reach the record: see
//! `novelty.rs`). Padding with known lookups dilutes the share at the
//! price of the padding, and `miss_cap` bounds it; finds at 10 times
//! `hit_block` block whatever the misses (a list almost all registered).
//! Distinct finds are a budget of their own (`budget_used`): as fresh
//! finds (never asked again) add up to `hit_block`, the share is read at
//! one standard error instead of two and counts from 8% instead of 12%, so
//! a validator whose list starts 80% registered is stopped within a few
//! dozen finds, while people who come back to their contacts, and a new
//! business whose first 40 customers come with a few typos, are not.
//! An address's finds are judged as one person's: its room (the kind
//! factor) is for the typos of the many people behind it.

use crate::config::Thresholds;
use crate::state::record::Signals;

/// What the policy knows about the actor besides its signals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Context {
    /// The kind factor of the actor (ip 2, subnet 4, ...).
    pub(crate) kind_factor: f64,
    /// The service-wide view is anomalous and the actor has no history.
    pub(crate) tightened: bool,
    /// How many times the actor was blocked before.
    pub(crate) strikes: u32,
    /// Carried suspicion, already decayed.
    pub(crate) carry: f64,
    /// Extra factor (at most 1) on the foreign threshold: the watch on a new
    /// actor at a suspect address, the stranger factor.
    pub(crate) foreign_factor: f64,
    /// Extra factor (at most 1) on the miss threshold and the sample it
    /// needs: the watch on a new actor at an address that guesses.
    pub(crate) miss_factor: f64,
}

impl Context {
    /// An actor with nothing special about it.
    #[cfg(test)]
    pub(crate) fn plain(kind_factor: f64) -> Self {
        Self {
            kind_factor,
            tightened: false,
            strikes: 0,
            carry: 0.0,
            foreign_factor: 1.0,
            miss_factor: 1.0,
        }
    }
}

/// The levels a suspicion maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Allow,
    Throttle,
    Block,
}

pub(crate) fn level(t: &Thresholds, score: f64) -> Level {
    if score >= 1.0 {
        Level::Block
    } else if score >= t.throttle_at {
        Level::Throttle
    } else {
        Level::Allow
    }
}

/// Distinct finds at this many times `hit_block` (times the kind factor)
/// block whatever the misses: the bound on a validator whose list is
/// almost all registered (300 for an account, by default, a throttle from
/// 180: a business may look up 150 distinct customers in an hour).
const HIT_CAP: f64 = 10.0;

/// Earlier blocks that shrink an actor's room (`repeat_factor` each): a
/// thirty-second of it, by default, from the fifth block on.
const MAX_STRIKES: u32 = 5;

/// The threshold scale for this actor.
pub(crate) fn scale(t: &Thresholds, c: &Context) -> f64 {
    // A new actor during an anomaly gets the tight threshold whatever its
    // kind: a fresh address with no history is not known to be a NAT.
    let mut s = if c.tightened {
        t.anomaly_factor
    } else {
        c.kind_factor
    };
    // Each earlier block halves the room again (by default), down to an
    // eighth: a third comeback is judged on its first misses.
    s *= strike_factor(t, c.strikes);
    s
}

/// What `strikes` earlier blocks leave of an actor's room:
/// `repeat_factor` per block, up to [`MAX_STRIKES`].
fn strike_factor(t: &Thresholds, strikes: u32) -> f64 {
    t.repeat_factor.powi(strikes.min(MAX_STRIKES) as i32)
}

/// The threshold scale for what one person does, whatever the actor's
/// kind: `scale` with a kind factor of at most 1. An address's room is for
/// the typos of the many people behind it; its finds are its people's own
/// addresses, which hit once each and weigh nothing while misses are few.
fn personal_scale(t: &Thresholds, c: &Context) -> f64 {
    scale(
        t,
        &Context {
            kind_factor: c.kind_factor.min(1.0),
            ..*c
        },
    )
}

/// Without a repeated hit the distinct share (`miss_ratio`, at least
/// `repeat_miss_ratio`) already says it: the bound is for actors that do
/// repeat, whose share over a few answers is noisy.
///
/// A lower bound of the share `count / n` (Wilson's score interval, two
/// standard errors): few answers say little, so a person's unlucky streak
/// of typos (8 in 16 lookups, which a 10% typist shows now and then) is not
/// taken for a 30% miss share, while a guesser's 10 misses in 10 answers
/// are, and a guesser padding each guess with a known lookup is by its 15th
/// miss.
fn share_lower_bound(count: f64, n: f64) -> f64 {
    share_bound(count, n, 2.0)
}

/// The lower bound of `count / n` at `z` standard errors (Wilson).
fn share_bound(count: f64, n: f64, z: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    let p = (count / n).clamp(0.0, 1.0);
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).max(0.0)
}

/// How much of its budget of distinct finds an actor used, 0 to 1: full
/// at `budget` (`hit_block`, 30 by default, for an account or an address,
/// halved by each earlier block but not tightened by an anomaly), less the
/// finds it came back to.
///
/// Why: a validator's finds are weighed by its miss share, read as a
/// lower bound so that a person's short unlucky streak of typos is not a
/// rate; but a list whose first entries are 80% registered shows few
/// misses, and the bound at two standard errors let its finds through (63
/// confirmed on the worst seed). A few dozen *distinct* finds is a sample,
/// not a streak: as they add up, the bound is read at fewer standard errors
/// (2 down to 1) and counts from a lower share (12% down to 8%). Distinct
/// finds that were never asked again are what a validator collects; people
/// come back to theirs (repeats at half the finds or more leave the budget
/// unused: heavy users, a NAT, a business's regular customers), and a new
/// business's 40 first customers with its 3% of typos stay under 8% (its
/// bound at one standard error is about 4%).
fn budget_used(finds: f64, repeats: f64, budget: f64) -> f64 {
    if budget <= 0.0 || finds <= 0.0 {
        return 0.0;
    }
    let fresh = (1.0 - 2.0 * repeats.max(0.0) / finds).clamp(0.0, 1.0);
    (finds / budget).clamp(0.0, 1.0) * fresh
}

/// Suspicion from signals and context.
pub(crate) fn score(t: &Thresholds, s: &Signals, c: &Context) -> f64 {
    let k = scale(t, c);
    let kf = k * c.foreign_factor.clamp(0.0, 1.0);
    let part = |count: f64, threshold: u32, k: f64| {
        if threshold == 0 {
            0.0
        } else {
            count / (threshold as f64 * k)
        }
    };
    let foreign = part(s.foreign.max(s.long_foreign), t.foreign_block, kf);
    let km = k * c.miss_factor.clamp(0.0, 1.0);
    // A first typo is not a rate, unless the actor was blocked twice
    // before: a guesser's third comeback is judged on its first miss.
    let floor = if c.strikes >= 2 { 1.0 } else { 2.0 };
    let min_targets = (t.min_targets as f64 * km).max(floor);
    // The share over all answers, read on the long view, where misses,
    // distinct targets and repeats decay together (so the test only loosens
    // as time passes): an actor that never repeated a hit is judged by the
    // distinct share alone.
    // (Computed only where the distinct test passed.)
    let share_ok = || {
        s.long_repeats <= 0.0
            || share_lower_bound(s.long_misses, s.long_classified + s.long_repeats)
                >= t.repeat_miss_ratio
    };
    let miss_part = |misses: f64, classified: f64| {
        if classified >= min_targets && misses >= t.miss_ratio * classified && share_ok() {
            part(misses, t.miss_block, km)
        } else {
            0.0
        }
    };
    let mut misses = if t.hit_block == 0 {
        miss_part(s.misses, s.classified).max(miss_part(s.long_misses, s.long_classified))
    } else {
        // Misses and finds add up (identities): see `Thresholds::hit_block`.
        let kh = personal_scale(t, c);
        // Both count in proportion to how much of what the actor was
        // answered missed, over *all* its answers, repeats included: fully
        // from 22% (a guesser, a validator of a list of real addresses, a
        // person checking which contacts joined), not at all at 12% or less
        // (a business looking up its customers again and again, a NAT of
        // people resetting their own passwords, a heavy user's typos),
        // read as a lower bound so that a short unlucky streak is not a
        // rate. Padding with known lookups dilutes it, at the price of the
        // padding (and `miss_cap`).
        // A newcomer during a service-wide spike gets less benefit of the
        // doubt (one standard error, not two): a spread attack gives each
        // actor a few tries.
        let z: f64 = if c.tightened { 1.5 } else { 2.0 };
        // The budget of distinct finds (see `budget_used`): the more fresh
        // finds, the less benefit of the doubt. Not tightened by an
        // anomaly: a newcomer's first few finds during a spike are already
        // weighed against 0.12 of the room, and a business's first burst
        // must not meet the budget too.
        let budget = t.hit_block as f64 * c.kind_factor.min(1.0) * strike_factor(t, c.strikes);
        let mix = |misses: f64, denied: f64, classified: f64| {
            let hits = (classified - misses - denied).max(0.0);
            let used = budget_used(hits, s.long_repeats, budget);
            let z: f64 = z - (z - 1.0f64).max(0.0) * used;
            let share = share_bound(misses, classified + s.long_repeats, z);
            let (floor, span) = (0.12 - 0.04 * used, 0.1 - 0.02 * used);
            let w = ((share - floor) / span).clamp(0.0, 1.0);
            let m = if t.miss_block > 0 && classified >= min_targets {
                misses * w / (t.miss_block as f64 * km)
            } else {
                0.0
            };
            m + hits * w / (t.hit_block as f64 * kh)
        };
        let mut mixed = mix(s.misses, s.denied, s.classified).max(mix(
            s.long_misses,
            s.long_denied,
            s.long_classified,
        ));
        {
            // Whatever the misses: from a throttle's worth of the cap on.
            // Not tightened by an anomaly: the people of a new address
            // resetting their own passwords find what they ask for.
            let cap = HIT_CAP * t.hit_block as f64 * c.kind_factor * strike_factor(t, c.strikes);
            let hits = s.finds().max(0.0);
            if hits >= cap * t.throttle_at {
                mixed = mixed.max(hits / cap);
            }
        }
        mixed
    };
    if t.miss_cap > 0.0 && t.miss_block > 0 {
        // Whatever the ratios: from a throttle's worth of the cap on.
        let cap = t.miss_cap * t.miss_block as f64 * k;
        let m = s.misses.max(s.long_misses);
        if m >= cap * t.throttle_at {
            misses = misses.max(m / cap);
        }
    }
    // One denied answer is an accident (a stale link, a session that
    // expired), not a hunt for a hole: denials count from the second.
    let denied = s.denied.max(s.long_denied);
    let denied = if denied >= 2.0 {
        part(denied, t.denied_block, k)
    } else {
        0.0
    };
    let mut base = foreign.max(misses).max(denied);
    if t.sequential_run > 0 && s.seq_run >= t.sequential_run {
        base *= t.sequential_factor;
    }
    if s.regular {
        base *= t.cadence_factor;
    }
    base + c.carry.max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ctx() -> Context {
        Context::plain(1.0)
    }

    #[test]
    fn objects_block_at_foreign_threshold() {
        let t = Thresholds::objects();
        let s = Signals {
            foreign: 15.0,
            ..Signals::default()
        };
        assert_eq!(level(&t, score(&t, &s, &ctx())), Level::Block);
        let s = Signals {
            foreign: 14.0,
            ..Signals::default()
        };
        assert_eq!(level(&t, score(&t, &s, &ctx())), Level::Throttle);
        let ip = Context {
            kind_factor: 2.0,
            ..ctx()
        };
        assert_eq!(level(&t, score(&t, &s, &ip)), Level::Allow);
    }

    #[test]
    fn misses_and_finds_need_a_share_and_a_sample() {
        let t = Thresholds::identities();
        // Mostly finds, a few typos: a business user (120 customers).
        let s = Signals {
            foreign: 120.0,
            misses: 7.0,
            classified: 127.0,
            ..Signals::default()
        };
        assert_eq!(score(&t, &s, &ctx()), 0.0);
        // Mostly misses: a guesser, blocked at 20.
        let s = Signals {
            misses: 20.0,
            classified: 20.0,
            ..Signals::default()
        };
        assert!(score(&t, &s, &ctx()) >= 1.0);
        // One early typo is not a 100% miss ratio.
        let s = Signals {
            misses: 1.0,
            classified: 1.0,
            ..Signals::default()
        };
        assert_eq!(score(&t, &s, &ctx()), 0.0);
    }

    #[test]
    fn a_validator_is_stopped_by_its_finds() {
        let t = Thresholds::identities();
        // A leaked list 60% registered: 40% misses. Not blocked at 10
        // finds, blocked by 20.
        assert!(score(&t, &lookups(10.0, 7.0, 0.0), &ctx()) < 1.0);
        assert!(score(&t, &lookups(20.0, 13.0, 0.0), &ctx()) >= 1.0);
        // The same finds with a business's few typos are no evidence.
        assert_eq!(score(&t, &lookups(20.0, 1.0, 0.0), &ctx()), 0.0);
        // A list almost all registered meets the cap: 300 finds.
        assert!(score(&t, &lookups(299.0, 5.0, 0.0), &ctx()) < 1.0);
        assert!(score(&t, &lookups(300.0, 5.0, 0.0), &ctx()) >= 1.0);
    }

    #[test]
    fn a_budget_of_distinct_finds_stops_a_rich_list() {
        let t = Thresholds::identities();
        let ip = Context::plain(2.0);
        // A list whose first entries are 77% registered: 26 finds and 8
        // misses block an account and an address (before the budget they
        // scored 0.03, and the worst seed got 63 out).
        assert!(score(&t, &lookups(26.0, 8.0, 0.0), &ctx()) >= 1.0);
        assert!(score(&t, &lookups(26.0, 8.0, 0.0), &ip) >= 1.0);
        // A new business's first customers, with an unlucky streak of
        // typos early (5 in 21) or late (7 in 47): not even a throttle.
        for (hits, misses) in [(16.0, 5.0), (30.0, 5.0), (40.0, 6.0), (40.0, 7.0)] {
            let s = score(&t, &lookups(hits, misses, 0.0), &ctx());
            assert!(s < t.throttle_at, "{hits} finds, {misses} misses: {s}");
        }
        // Finds people come back to use no budget: the same counts with
        // repeats are judged as before.
        assert_eq!(score(&t, &lookups(30.0, 9.0, 15.0), &ctx()), 0.0);
    }

    #[test]
    fn the_budget_counts_fresh_distinct_finds() {
        assert_eq!(budget_used(0.0, 0.0, 30.0), 0.0);
        assert!((budget_used(15.0, 0.0, 30.0) - 0.5).abs() < 1e-9);
        assert_eq!(budget_used(30.0, 0.0, 30.0), 1.0);
        assert_eq!(budget_used(300.0, 0.0, 30.0), 1.0);
        // Repeats at half the finds or more: none of it used.
        assert!((budget_used(30.0, 5.0, 30.0) - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(budget_used(30.0, 15.0, 30.0), 0.0);
        // No budget (no `hit_block`): nothing used.
        assert_eq!(budget_used(30.0, 0.0, 0.0), 0.0);
    }

    /// Identities signals: `hits` distinct hits, `misses` distinct misses,
    /// `repeats` repeated hits, in the window and the long view alike.
    fn lookups(hits: f64, misses: f64, repeats: f64) -> Signals {
        Signals {
            foreign: hits,
            misses,
            classified: hits + misses,
            long_foreign: hits,
            long_misses: misses,
            long_classified: hits + misses,
            long_repeats: repeats,
            ..Signals::default()
        }
    }

    #[test]
    fn repeated_use_is_ordinary_use() {
        let t = Thresholds::identities();
        // One contact looked up 300 times with 15 typos: a 94% distinct
        // miss ratio, but 5% of everything it was answered.
        let heavy = lookups(1.0, 15.0, 284.0);
        assert_eq!(score(&t, &heavy, &ctx()), 0.0);
        // Without the repeats, the same distinct counts are a guesser's
        // under a throttle; 20 misses block.
        assert!(score(&t, &lookups(1.0, 15.0, 0.0), &ctx()) >= t.throttle_at);
        assert!(score(&t, &lookups(0.5, 20.0, 0.0), &ctx()) >= 1.0);
        // An unlucky streak (8 typos in 16 lookups, 4 of them repeats) is
        // not a rate yet.
        assert!(score(&t, &lookups(4.0, 8.0, 4.0), &ctx()) < t.throttle_at);
    }

    #[test]
    fn padding_buys_little_room() {
        let t = Thresholds::identities();
        // A known lookup between every two guesses: blocked at the same
        // 20 misses.
        assert!(score(&t, &lookups(1.0, 20.0, 20.0), &ctx()) >= 1.0);
        // Heavy padding (six known lookups per guess) dilutes the share
        // under 12%, and meets the cap instead: a throttle from 60
        // distinct misses, a block at 100.
        assert!(score(&t, &lookups(1.0, 59.0, 354.0), &ctx()) < t.throttle_at);
        let at_60 = score(&t, &lookups(1.0, 60.0, 360.0), &ctx());
        assert!((t.throttle_at..1.0).contains(&at_60), "{at_60}");
        assert!(score(&t, &lookups(1.0, 100.0, 600.0), &ctx()) >= 1.0);
    }

    #[test]
    fn the_watch_and_the_stranger_factor_tighten_foreign_reads_only() {
        let t = Thresholds::objects();
        let watched = Context {
            foreign_factor: 0.06,
            ..ctx()
        };
        let one_foreign = Signals {
            foreign: 1.0,
            classified: 1.0,
            ..Signals::default()
        };
        assert!(score(&t, &one_foreign, &watched) >= 1.0);
        assert!(score(&t, &one_foreign, &ctx()) < t.throttle_at);
        // Misses are judged with the actor's own thresholds.
        let typos = Signals {
            misses: 3.0,
            classified: 4.0,
            long_misses: 3.0,
            long_classified: 4.0,
            ..Signals::default()
        };
        assert_eq!(score(&t, &typos, &watched), score(&t, &typos, &ctx()));
    }

    #[test]
    fn the_watch_at_a_guessing_address_tightens_misses() {
        let t = Thresholds::identities();
        let watched = Context {
            miss_factor: 0.06,
            ..ctx()
        };
        let misses = |m: f64, n: f64| Signals {
            misses: m,
            classified: n,
            long_misses: m,
            long_classified: n,
            ..Signals::default()
        };
        // Two misses of two answers: a guesser's start, blocked when watched.
        assert!(score(&t, &misses(2.0, 2.0), &watched) >= 1.0);
        assert!(score(&t, &misses(2.0, 2.0), &ctx()) < t.throttle_at);
        // One miss, or a miss beside a find, is not.
        assert!(score(&t, &misses(1.0, 1.0), &watched) < t.throttle_at);
        assert!(score(&t, &misses(1.0, 2.0), &watched) < t.throttle_at);
    }

    fn signals() -> impl Strategy<Value = Signals> {
        (
            0.0..200.0f64,
            0.0..1.0f64,
            0.0..1.0f64,
            0u32..20,
            any::<bool>(),
        )
            .prop_map(
                |(foreign, miss_share, denied_share, seq_run, regular)| Signals {
                    foreign,
                    misses: foreign * miss_share,
                    denied: foreign * denied_share * (1.0 - miss_share),
                    classified: foreign,
                    requests: foreign as u32,
                    seq_run,
                    regular,
                    long_foreign: foreign * 0.5,
                    long_misses: foreign * miss_share * 0.5,
                    long_denied: foreign * denied_share * (1.0 - miss_share) * 0.5,
                    long_classified: foreign * 0.5,
                    long_repeats: 0.0,
                },
            )
    }

    fn contexts() -> impl Strategy<Value = Context> {
        (
            prop::sample::select(vec![1.0, 2.0, 4.0]),
            any::<bool>(),
            any::<bool>(),
            0.0..2.0f64,
        )
            .prop_map(|(kind_factor, tightened, repeat, carry)| Context {
                kind_factor,
                tightened,
                strikes: u32::from(repeat),
                carry,
                foreign_factor: 1.0,
                miss_factor: 1.0,
            })
    }

    proptest! {
        /// More evidence never lowers suspicion.
        #[test]
        fn monotone_in_evidence(s in signals(), c in contexts(), more in 0.0..50.0f64) {
            for t in [Thresholds::objects(), Thresholds::identities()] {
                let before = score(&t, &s, &c);
                let mut s2 = s;
                s2.foreign += more;
                s2.classified += more;
                s2.denied += more * (s.denied / s.foreign.max(1.0));
                s2.misses += more * (s.misses / s.foreign.max(1.0));
                s2.long_foreign += more;
                s2.long_classified += more;
                s2.long_misses += more * (s.long_misses / s.long_classified.max(1.0));
                s2.long_denied += more * (s.long_denied / s.long_classified.max(1.0));
                // Keep the miss ratio: more of the same evidence.
                prop_assert!(score(&t, &s2, &c) >= before - 1e-9);
            }
        }

        /// Repeated hits never raise suspicion.
        #[test]
        fn repeats_never_raise(s in signals(), c in contexts(), more in 0.0..500.0f64) {
            for t in [Thresholds::objects(), Thresholds::identities()] {
                let mut s2 = s;
                s2.long_repeats += more;
                prop_assert!(score(&t, &s2, &c) <= score(&t, &s, &c) + 1e-9);
            }
        }

        /// Without signals and carry there is no suspicion.
        #[test]
        fn nothing_is_nothing(c in contexts()) {
            let c = Context { carry: 0.0, ..c };
            for t in [Thresholds::objects(), Thresholds::identities()] {
                prop_assert_eq!(score(&t, &Signals::default(), &c), 0.0);
            }
        }

        /// A record the learning step skips scoring for (`no_evidence`, and
        /// then set to 0) scores exactly its context's carried suspicion,
        /// which for such a record is 0, however it was fed: own objects,
        /// unreadable targets, any outcome, any cadence. The context's carry
        /// stands for any carry at all: the skip is exact.
        #[test]
        fn no_evidence_scores_zero(
            steps in prop::collection::vec((0u64..5_000, 0u8..4, any::<bool>()), 1..40),
            c in contexts(),
        ) {
            use crate::probe::{Outcome, TargetInfo};
            use crate::state::record::Record;
            use crate::clock::{Nanos, Span};
            const S: u64 = 1_000_000_000;
            let (window, long) = (Span::from_secs(3600), Span::from_secs(6 * 3600));
            let account = crate::actor::AccountId::new("7");
            let own = TargetInfo::new(b"7", Some(&account), true, (1, 2));
            prop_assert!(own.is_self);
            let mut r = Record::new(Nanos::ZERO);
            let mut now = Nanos::ZERO;
            for (gap, o, readable) in &steps {
                now += Span::new(gap * S / 10);
                let outcome = [None, Some(Outcome::Hit), Some(Outcome::Miss), Some(Outcome::Denied)][*o as usize];
                r.learn(now, window, long, readable.then_some(own), outcome);
            }
            prop_assert!(r.no_evidence());
            prop_assert_eq!(r.carry_at(now, Span::from_secs(1)), 0.0);
            // `c.carry` stands for any carried suspicion (0..2).
            for t in [Thresholds::objects(), Thresholds::identities()] {
                prop_assert_eq!(score(&t, &r.signals(now, window, long), &c), c.carry);
            }
            // One foreign target is evidence.
            let foreign = TargetInfo::new(b"8", Some(&account), true, (1, 2));
            r.learn(now, window, long, Some(foreign), Some(Outcome::Hit));
            prop_assert!(!r.no_evidence());
        }

        /// A repeat offender or a tightened actor is never judged more
        /// leniently than a first-timer.
        #[test]
        fn tighter_context_never_lowers(s in signals(), c in contexts()) {
            for t in [Thresholds::objects(), Thresholds::identities()] {
                let base = Context { strikes: 0, ..c };
                let repeat = Context { strikes: c.strikes + 1, ..c };
                let (hi, lo) = (score(&t, &s, &repeat), score(&t, &s, &base));
                prop_assert!(hi >= lo - 1e-9);
            }
        }
    }
}
