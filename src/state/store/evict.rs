//! Making room in a full bucket: which record goes (`eviction_class`,
//! `victim_rank`, `victim`).

use super::table::Locked;
use super::*;
use crate::state::decay::decay;

/// How readily a record may be evicted to make room: 0 first (nothing
/// against it), 1 next (mild suspicion below a throttle, or strikes long
/// past), `KEEP` never (a recent strike, carried suspicion, or suspicion at a
/// throttle or above). Suspicion is read decayed to `now`, so a record that
/// went quiet long ago does not hold its place forever.
pub(crate) fn eviction_class(
    r: &Record,
    now: Nanos,
    half_life: Span,
    strike_memory: Span,
    keep_score: f64,
) -> u8 {
    let idle = now.saturating_sub(r.last_seen.max(r.first_seen()).max(r.carry_raised()));
    let score = r.last_score() * decay(idle, half_life);
    let carry = r.carry_at(now, half_life);
    let recent_strike = r.strikes > 0 && idle < strike_memory;
    if recent_strike || score >= keep_score || carry >= KEEP_CARRY {
        KEEP
    } else if r.strikes == 0 && score < keep_score / 2.0 && carry < FREE_CARRY {
        0
    } else {
        1
    }
}

pub(crate) const KEEP: u8 = 2;

/// How readily a current suspect gives its place to a new key in a store
/// full of them, lowest first: those likely under a live block (carried
/// suspicion of a block, `HELD_CARRY`) last, the soonest-ending first;
/// the others by decayed score plus carried suspicion. As `u64`s that sort
/// like the pairs (`held`, suspicion): a positive `f64`'s bits sort like it.
pub(crate) fn victim_rank(r: &Record, now: Nanos, half_life: Span) -> u64 {
    let idle = now.saturating_sub(r.last_seen.max(r.first_seen()).max(r.carry_raised()));
    let score = r.last_score() * decay(idle, half_life);
    let carry = r.carry_at(now, half_life);
    let held = carry >= HELD_CARRY;
    let suspicion = if held { carry } else { score + carry };
    let bits = if suspicion.is_nan() {
        f64::MAX.to_bits()
    } else {
        suspicion.max(0.0).to_bits()
    };
    (u64::from(held) << 63) | bits
}

/// The way of a full bucket whose record gives its place to a new key:
/// the least recently seen record of the least readily kept class (see
/// [`eviction_class`]) that has two records or more in the bucket: a
/// class's only record (a new key, say) is not evicted by the next new
/// key before it came back. Failing that, of the current suspects, the
/// lowest [`victim_rank`]; failing that (a bucket of one or two ways), the
/// least recently seen.
pub(super) fn victim(
    b: &Locked<'_>,
    now: Nanos,
    half_life: Span,
    strike_memory: Span,
    keep_score: impl Fn(u8) -> f64,
) -> usize {
    // Per class: how many, and the least value (last seen; for suspects,
    // the victim rank) with its way.
    let mut count = [0usize; 3];
    let mut least = [(u64::MAX, 0usize); 3];
    let mut oldest = (u64::MAX, 0usize);
    for (w, k, r) in b.iter() {
        let class = eviction_class(r, now, half_life, strike_memory, keep_score(k.probe()));
        let seen = r.last_seen.max(r.first_seen()).get();
        let value = if class == KEEP {
            victim_rank(r, now, half_life)
        } else {
            seen
        };
        let c = usize::from(class);
        count[c] += 1;
        least[c] = least[c].min((value, w));
        oldest = oldest.min((seen, w));
    }
    if count[0] >= 2 {
        least[0].1
    } else if count[1] >= 2 {
        least[1].1
    } else if count[2] >= 1 {
        least[2].1
    } else {
        oldest.1
    }
}
