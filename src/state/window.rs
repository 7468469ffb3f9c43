//! The sliding window a record counts in, as two halves: [`Halves`] keeps
//! what the current half and the one before saw (the counts, the
//! distinct-target sketches), and rolls them by time; the window at any
//! time is both halves, then the current one alone, then nothing. The
//! window length is the probe's, passed in (the record does not keep it).

use super::sketch::{DistinctSketch, WORDS};
use crate::clock::{Nanos, Span};

/// Counts over one half-window, each saturating at `u16::MAX` (the
/// thresholds that matter are tens of targets; the sketch itself saturates
/// near 1,400).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Counts {
    pub(crate) requests: u16,
    /// Distinct (new in the window) foreign targets.
    pub(crate) targets: u16,
    pub(crate) hits: u16,
    pub(crate) misses: u16,
    pub(crate) denied: u16,
}

impl Counts {
    pub(crate) fn add(&self, o: &Counts) -> Counts {
        Counts {
            requests: self.requests.saturating_add(o.requests),
            targets: self.targets.saturating_add(o.targets),
            hits: self.hits.saturating_add(o.hits),
            misses: self.misses.saturating_add(o.misses),
            denied: self.denied.saturating_add(o.denied),
        }
    }

    /// Distinct targets with a classified answer.
    pub(crate) fn classified(&self) -> u32 {
        u32::from(self.hits) + u32::from(self.misses) + u32::from(self.denied)
    }
}

/// What one replica saw of an actor on a probe in its window: the window's
/// distinct-target sketch (the union of its halves, as its words) and
/// counts. Merged by union and sum; 40 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Evidence {
    pub(crate) bits: [u64; WORDS],
    pub(crate) counts: Counts,
}

impl Evidence {
    /// The evidence of a window's sketch and counts.
    #[cfg(any(test, feature = "redis"))]
    pub(crate) fn new(sketch: DistinctSketch, counts: Counts) -> Self {
        Self {
            bits: sketch.words(),
            counts,
        }
    }

    /// Its distinct-target sketch.
    #[inline]
    pub(crate) fn sketch(&self) -> DistinctSketch {
        DistinctSketch::from_words(self.bits)
    }

    /// This evidence and `o`'s together.
    pub(crate) fn merge(&mut self, o: &Evidence) {
        self.bits = self.sketch().union(&o.sketch()).words();
        self.counts = self.counts.add(&o.counts);
    }

    /// Nothing seen.
    pub(crate) fn is_empty(&self) -> bool {
        self.counts.requests == 0
    }
}

/// What a half-window keeps: empty by default, and two halves make a
/// window.
pub(crate) trait Half: Copy + Default {
    /// What both halves saw.
    fn join(&self, o: &Self) -> Self;
}

impl Half for Counts {
    #[inline]
    fn join(&self, o: &Self) -> Self {
        self.add(o)
    }
}

impl Half for DistinctSketch {
    #[inline]
    fn join(&self, o: &Self) -> Self {
        self.union(o)
    }
}

/// The two halves of a window: the current half and the one before it.
/// `repr(C)`: the current half first (the record's layout places it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[repr(C)]
pub(crate) struct Halves<T> {
    pub(crate) cur: T,
    pub(crate) prev: T,
}

/// The length of a half of a window (at least 1 nanosecond).
#[inline]
pub(crate) fn half(window: Span) -> Span {
    (window / 2).max(Span::new(1))
}

/// Whole halves of a window of length `window` from `start` (the
/// start of the current half) to `now`: 0 while the current half runs
/// (and for a time before `start`, a racing request's older clock
/// reading).
#[inline]
pub(crate) fn halves_since(start: Nanos, now: Nanos, window: Span) -> u64 {
    now.saturating_sub(start) / half(window)
}

impl<T: Half> Halves<T> {
    /// Moves on by `k` halves (at least one): after one, the current half
    /// is the previous one; after more, both are empty.
    #[inline]
    pub(crate) fn roll(&mut self, k: u64) {
        self.prev = if k == 1 { self.cur } else { T::default() };
        self.cur = T::default();
    }

    /// The window as it stands `k` halves after the current half began
    /// (see [`halves_since`]), rolled or not: both halves during the
    /// current one, the current one alone during the next, then nothing.
    #[inline]
    pub(crate) fn at(&self, k: u64) -> T {
        match k {
            0 => self.cur.join(&self.prev),
            1 => self.cur,
            _ => T::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(requests: u16) -> Counts {
        Counts {
            requests,
            ..Counts::default()
        }
    }

    #[test]
    fn the_window_slides_by_halves() {
        let mut h = Halves {
            cur: counts(3),
            prev: counts(2),
        };
        assert_eq!(h.at(0).requests, 5);
        assert_eq!(h.at(1).requests, 3, "the previous half slid out");
        assert_eq!(h.at(2).requests, 0);
        h.roll(1);
        assert_eq!((h.cur.requests, h.prev.requests), (0, 3));
        h.cur = counts(4);
        h.roll(2);
        assert_eq!(h, Halves::default(), "two halves on: nothing left");
    }

    #[test]
    fn halves_are_counted_from_the_current_half() {
        let (w, at) = (Span::new(100), Nanos::new);
        assert_eq!(halves_since(at(1_000), at(1_049), w), 0);
        assert_eq!(halves_since(at(1_000), at(1_050), w), 1);
        assert_eq!(halves_since(at(1_000), at(1_175), w), 3);
        // An older clock reading is in the current half.
        assert_eq!(halves_since(at(1_000), at(900), w), 0);
        // A window of 0 or 1 nanosecond has halves of one.
        assert_eq!(halves_since(at(0), at(5), Span::new(1)), 5);
    }

    #[test]
    fn evidence_merges_by_union_and_sum() {
        let mut a = DistinctSketch::default();
        a.insert(1 << 56);
        let mut b = DistinctSketch::default();
        b.insert(1 << 56);
        b.insert(2 << 56);
        let mut e = Evidence::new(a, counts(1));
        e.merge(&Evidence::new(b, counts(2)));
        assert_eq!(e.sketch(), a.union(&b));
        assert_eq!(e.counts.requests, 3);
        assert!(!e.is_empty());
        assert!(Evidence::default().is_empty());
    }
}
