//! Making room in a full bucket: which record goes (`eviction_class`,
//! `victim_rank`, `victim`).

use super::table::Locked;
use super::*;
use crate::state::decay::decay;

/// A record as eviction sees it at `now`.
struct Judged {
    /// See [`eviction_class`].
    class: u8,
    /// Suspicion decayed to `now` (for class 0, as last scored: it is not
    /// read).
    score: f64,
    carry: f64,
    /// A strike within the strike memory.
    struck: bool,
    /// The last request (or the record's making).
    seen: Nanos,
}

fn judge(r: &Record, now: Nanos, half_life: Span, strike_memory: Span, keep_score: f64) -> Judged {
    let seen = r.last_seen.max(r.first_seen());
    let carry = r.carry_at(now, half_life);
    let raw = r.last_score();
    // Decay only lowers a score: one already low enough for class 0 is not
    // decayed (most records of a full bucket under a flood of fresh keys;
    // a decay is a `powf`).
    if r.strikes == 0 && raw < keep_score / 2.0 && carry < FREE_CARRY {
        return Judged {
            class: 0,
            score: raw,
            carry,
            struck: false,
            seen,
        };
    }
    let idle = now.saturating_sub(seen.max(r.carry_raised()));
    let score = raw * decay(idle, half_life);
    let struck = r.strikes > 0 && idle < strike_memory;
    let class = if struck || score >= keep_score || carry >= KEEP_CARRY {
        KEEP
    } else if r.strikes == 0 && score < keep_score / 2.0 && carry < FREE_CARRY {
        0
    } else {
        1
    };
    Judged {
        class,
        score,
        carry,
        struck,
        seen,
    }
}

/// How readily a record may be evicted to make room: 0 first (nothing
/// against it), 1 next (mild suspicion below a throttle, or strikes long
/// past), `KEEP` last (a recent strike, carried suspicion, or suspicion at
/// a throttle or above: a current suspect). Suspicion is read decayed to
/// `now`, so a record that went quiet long ago does not hold its place
/// forever.
#[cfg(test)]
pub(crate) fn eviction_class(
    r: &Record,
    now: Nanos,
    half_life: Span,
    strike_memory: Span,
    keep_score: f64,
) -> u8 {
    judge(r, now, half_life, strike_memory, keep_score).class
}

pub(crate) const KEEP: u8 = 2;

/// How readily a current suspect gives its place to a new key in a bucket
/// full of them, lowest first: those likely under a live block (carried
/// suspicion of a block, `HELD_CARRY`) last, the soonest-ending first;
/// then those with a recent strike (blocked before: a later block starts
/// from the strikes it keeps); the others by decayed score plus carried
/// suspicion. As `u64`s that sort like the triples (`held`, `struck`,
/// suspicion): a positive `f64`'s bits sort like it.
fn victim_rank(j: &Judged) -> u64 {
    let held = j.carry >= HELD_CARRY;
    let suspicion = if held { j.carry } else { j.score + j.carry };
    let bits = if suspicion.is_nan() {
        f64::MAX.to_bits()
    } else {
        suspicion.max(0.0).to_bits()
    };
    (u64::from(held) << 63) | (u64::from(j.struck) << 62) | (bits >> 2)
}

/// The way of a full bucket whose record gives its place to a new key.
/// Of the records that are not current suspects, all but the most recently
/// seen (so that a new key is not evicted by the next new key before it
/// came back) may go: the first of them with nothing against it, least
/// recently seen first; else the mildly suspect, lowest decayed score
/// first (so that a flood of keys held at a lower score cannot push out a
/// record at a higher one). Only if none may go does a current suspect:
/// the lowest [`victim_rank`]; failing that (a bucket of one or two ways),
/// the least recently seen.
pub(super) fn victim(
    b: &Locked<'_>,
    now: Nanos,
    half_life: Span,
    strike_memory: Span,
    keep_score: impl Fn(u8) -> f64,
) -> usize {
    // Of the records that are not suspects, by (class, value, seen): the
    // two least (the least may be the newest, which is spared), and the
    // newest.
    type Candidate = (u8, u64, Nanos, usize);
    let mut least: [Option<Candidate>; 2] = [None, None];
    let mut newest: Option<(Nanos, usize)> = None;
    let mut suspect = (u64::MAX, 0usize);
    let mut oldest = (Nanos::new(u64::MAX), 0usize);
    for (w, k, r) in b.iter() {
        let j = judge(r, now, half_life, strike_memory, keep_score(k.probe()));
        oldest = oldest.min((j.seen, w));
        if j.class == KEEP {
            suspect = suspect.min((victim_rank(&j), w));
            continue;
        }
        let value = if j.class == 0 {
            j.seen.get()
        } else {
            j.score.max(0.0).to_bits()
        };
        let c = (j.class, value, j.seen, w);
        if least[0].is_none_or(|l| c < l) {
            least = [Some(c), least[0]];
        } else if least[1].is_none_or(|l| c < l) {
            least[1] = Some(c);
        }
        if newest.is_none_or(|(seen, _)| j.seen >= seen) {
            newest = Some((j.seen, w));
        }
    }
    let spared = newest.map(|(_, w)| w);
    let evictable = least.into_iter().flatten().find(|c| Some(c.3) != spared);
    match evictable {
        Some(c) => c.3,
        None if suspect.0 != u64::MAX => suspect.1,
        None => oldest.1,
    }
}
