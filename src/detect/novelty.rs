//! Which targets of a probe the service was asked for recently, by anyone:
//! the long tail that a guesser or a list validator walks, against the
//! targets people share.
//!
//! A person's lookups go to addresses other people also use (contacts
//! overlap); a guesser's candidates are each asked once. So a *miss* on a
//! target somebody asked for recently tells the asker nothing the service
//! was not already telling others, and is not counted as evidence (see
//! `Detector::learn`); a miss on a target nobody asked for is. Hits always
//! count: a validator of a list of real people's addresses asks for
//! targets others ask for too, and what it gets out is the hits.
//!
//! # The filter
//! A keyed Bloom filter (the targets' hashes are keyed per process, so an
//! outsider cannot aim at its bits): `BITS` bits (64 KiB), three bits per
//! target, in two generations of one period each (the probe's long
//! half-life): "recently" is the last one to two periods. At 50,000
//! distinct targets in a generation a target nobody asked for looks asked
//! 1.5% of the time. A generation more than half full (a flood of
//! distinct targets, meant to make every target look asked) says nothing:
//! every miss counts again, which is the safe side. The rotation clears
//! the generation that becomes current: 64 KiB, once per period, on the
//! request that finds the period over.
//!
//! Where it does not separate: a new or small service, where few people
//! ask for the same targets; there, misses count as they did without it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::clock::{Nanos, Span};

const BITS: usize = 1 << 19;
const WORDS: usize = BITS / 64;
/// A generation with more bits set than this says nothing.
const FULL: u32 = (BITS / 2) as u32;

struct Generation {
    words: Box<[AtomicU64]>,
    /// Bits set (each counted by the request that set it).
    set: AtomicU32,
}

impl Generation {
    fn new() -> Self {
        Self {
            words: (0..WORDS).map(|_| AtomicU64::new(0)).collect(),
            set: AtomicU32::new(0),
        }
    }

    fn has(&self, bits: &[(usize, u64); 3]) -> bool {
        self.set.load(Ordering::Relaxed) <= FULL
            && bits
                .iter()
                .all(|(w, m)| self.words[*w].load(Ordering::Relaxed) & m != 0)
    }

    fn clear(&self) {
        for w in self.words.iter() {
            w.store(0, Ordering::Relaxed);
        }
        self.set.store(0, Ordering::Relaxed);
    }
}

pub(crate) struct Novelty {
    gens: [Generation; 2],
    /// The period the current generation holds.
    period: AtomicU64,
    /// The period's length (set when made, and when its slot goes to
    /// another probe).
    period_nanos: AtomicU64,
}

/// The three bits of a target: double hashing of its keyed hash.
fn bits(hash: u64) -> [(usize, u64); 3] {
    let h1 = hash;
    let h2 = hash.rotate_left(29) | 1;
    std::array::from_fn(|i| {
        let b = (h1.wrapping_add((i as u64).wrapping_mul(h2)) >> 13) as usize % BITS;
        (b / 64, 1u64 << (b % 64))
    })
}

impl Novelty {
    pub(crate) fn new(period: Span) -> Self {
        Self {
            gens: [Generation::new(), Generation::new()],
            period: AtomicU64::new(0),
            period_nanos: AtomicU64::new(period.get().max(1)),
        }
    }

    /// Forgets every target, with periods of `period` from now on (for a
    /// slot that a reload gives to another probe).
    pub(crate) fn restart(&self, period: Span) {
        self.period_nanos
            .store(period.get().max(1), Ordering::Relaxed);
        self.period.store(0, Ordering::Release);
        for g in &self.gens {
            g.clear();
        }
    }

    fn period_of(&self, now: Nanos) -> u64 {
        now / Span::new(self.period_nanos.load(Ordering::Relaxed))
    }

    /// The generation of period `p`.
    fn of(&self, p: u64) -> &Generation {
        &self.gens[(p % 2) as usize]
    }

    /// Moves to the period of `now`, clearing what is older than the
    /// previous period.
    fn rotate(&self, now: Nanos) -> u64 {
        let p = self.period_of(now);
        let old = self.period.load(Ordering::Acquire);
        if p > old
            && self
                .period
                .compare_exchange(old, p, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // The generation of `p` last held `p - 2` (or is older still);
            // after a gap of two periods or more both are stale.
            self.of(p).clear();
            if p - old >= 2 {
                self.of(p + 1).clear();
            }
        }
        p.max(old)
    }

    /// Whether somebody asked for the target in the current or the
    /// previous period.
    pub(crate) fn asked(&self, hash: u64, now: Nanos) -> bool {
        let p = self.period_of(now);
        let cur = self.period.load(Ordering::Acquire);
        let b = bits(hash);
        match p.saturating_sub(cur) {
            0 => self.of(cur).has(&b) || (cur > 0 && self.of(cur - 1).has(&b)),
            // Not rotated yet: the current generation is the previous one.
            1 => self.of(cur).has(&b),
            _ => false,
        }
    }

    /// Notes that the target was asked for now; returns whether somebody
    /// asked for it before (as [`asked`](Self::asked) would have said), from
    /// the same pass over its bits.
    pub(crate) fn note(&self, hash: u64, now: Nanos) -> bool {
        let p = self.rotate(now);
        let b = bits(hash);
        let g = self.of(p);
        let full = g.set.load(Ordering::Relaxed) > FULL;
        let mut new = 0;
        for (w, m) in b {
            if g.words[w].fetch_or(m, Ordering::Relaxed) & m == 0 {
                new += 1;
            }
        }
        if new > 0 {
            g.set.fetch_add(new, Ordering::Relaxed);
        }
        (new == 0 && !full) || (p > 0 && self.of(p - 1).has(&b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(nanos: u64) -> Nanos {
        Nanos::new(nanos)
    }

    const H: u64 = 3600 * 1_000_000_000;

    fn hash(i: u64) -> u64 {
        crate::actor::hash128((7, 11), &i.to_le_bytes()) as u64
    }

    #[test]
    fn asked_targets_are_remembered_for_one_to_two_periods() {
        let n = Novelty::new(Span::new(H));
        assert!(!n.asked(hash(1), at(10)));
        assert!(!n.note(hash(1), at(10)), "nobody asked before");
        assert!(n.note(hash(1), at(10)), "asked once before");
        assert!(n.asked(hash(1), at(11)));
        assert!(n.asked(hash(1), at(H + 5)));
        // Another target noted in the next period rotates; the first is
        // still there (previous generation).
        n.note(hash(2), at(H + 6));
        assert!(n.asked(hash(1), at(H + 7)));
        n.note(hash(3), at(2 * H + 1));
        assert!(
            !n.asked(hash(1), at(2 * H + 2)),
            "two periods later it is gone"
        );
        assert!(n.asked(hash(2), at(2 * H + 2)));
        // A long silence forgets everything.
        n.note(hash(4), at(10 * H));
        assert!(!n.asked(hash(3), at(10 * H)));
    }

    #[test]
    fn few_false_alarms_and_a_flood_says_nothing() {
        let n = Novelty::new(Span::new(H));
        for i in 0..50_000 {
            n.note(hash(i), at(1));
        }
        let false_alarms = (1_000_000..1_010_000)
            .filter(|i| n.asked(hash(*i), at(2)))
            .count();
        assert!(false_alarms < 300, "{false_alarms} of 10,000");
        // A flood of distinct targets fills the filter: it stops saying
        // "asked", so every miss counts again.
        for i in 0..400_000 {
            n.note(hash(i), at(1));
        }
        assert!(!n.asked(hash(5), at(2)));
    }
}
