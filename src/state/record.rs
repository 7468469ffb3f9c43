//! Per (actor, probe) signals in one fixed-size record: the sliding
//! window's counts and distinct-target sketches (two halves, see
//! [`window`](super::window) and [`DistinctSketch`]), the long view, the
//! sequential walk, the cadence and carried suspicion.
//!
//! Distinct targets are counted by the sketch of each half-window; the
//! window's count is the estimate over the union of both halves (its error
//! is stated in [`sketch`](super::sketch)). Counts of misses and denials
//! among the distinct targets are kept exactly and scaled by the same
//! collision correction.

use super::decay::{decay, weight};
use super::sketch::DistinctSketch;
// The wire's path to the sketch's size (feature `redis`).
#[cfg(feature = "redis")]
pub(crate) use super::sketch::WORDS;
pub(crate) use super::window::{Counts, Evidence};
use super::window::{Halves, half, halves_since};
use crate::clock::{Nanos, Span};
use crate::probe::{Outcome, TargetInfo};

/// Weight of each new gap in the cadence's moving mean and deviation:
/// higher follows a change of pace sooner, lower is fooled less by one odd
/// gap.
const CADENCE_WEIGHT: f32 = 0.25;
/// Gaps seen before a cadence can be called machine-regular: fewer, and a
/// person's short burst of steady clicks would look like a script.
const CADENCE_MIN_GAPS: u8 = 8;
/// A cadence is machine-regular when the mean deviation of its gaps is
/// under this share of their mean: people vary by far more than 10%;
/// scripts with jitter added escape it (and meet the other signals).
const CADENCE_REGULAR: f32 = 0.1;
/// `last_numeric` before any numeric target (a 20-digit number, which a
/// target of at most 19 digits never is).
const NO_NUMERIC: u64 = u64::MAX;
/// The most carried suspicion a record holds (four blocks' worth).
pub(crate) const MAX_CARRY: f64 = 4.0;

/// What the policy reads off a record.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Signals {
    /// Estimated distinct foreign targets in the window: targets that are
    /// not the actor's own and were not misses (a mistyped id is nobody's
    /// object).
    pub(crate) foreign: f64,
    /// Estimated distinct targets that were misses.
    pub(crate) misses: f64,
    /// Estimated distinct targets that were denied.
    pub(crate) denied: f64,
    /// Estimated distinct targets with a classified outcome.
    pub(crate) classified: f64,
    /// Requests in the window.
    pub(crate) requests: u32,
    /// Consecutive +-1 steps through numeric targets.
    pub(crate) seq_run: u32,
    /// Machine-regular cadence.
    pub(crate) regular: bool,
    /// The long view: distinct foreign targets, misses, denials and
    /// classified targets, each a sum decaying with the long half-life, so
    /// that a scraper slower than the window still adds up.
    pub(crate) long_foreign: f64,
    /// See `long_foreign`.
    pub(crate) long_misses: f64,
    /// See `long_foreign`.
    pub(crate) long_denied: f64,
    /// See `long_foreign`.
    pub(crate) long_classified: f64,
    /// Hits on targets the actor had already touched in the window (the
    /// same contact looked up again), as a sum decaying with the long
    /// half-life: ordinary use, which a guesser never shows.
    pub(crate) long_repeats: f64,
}

impl Signals {
    /// Distinct finds (classified targets neither missed nor denied), in
    /// the window or the long view, whichever holds more.
    #[inline]
    pub(crate) fn finds(&self) -> f64 {
        (self.classified - self.misses - self.denied)
            .max(self.long_classified - self.long_misses - self.long_denied)
    }

    /// The signals if one more new distinct target, with `outcome`, were
    /// counted now (the pre-check's question), without touching the record.
    #[cfg(test)]
    pub(crate) fn with_new_target(&self, outcome: Outcome, seq_run: u32) -> Signals {
        self.with_new_targets(outcome, seq_run, 1)
    }

    /// The signals if `n` more new distinct targets, each with `outcome`,
    /// were counted now: a request and the `n - 1` admitted before it whose
    /// answers have not come back.
    pub(crate) fn with_new_targets(&self, outcome: Outcome, seq_run: u32, n: u32) -> Signals {
        let mut s = *self;
        let k = f64::from(n);
        s.requests = s.requests.saturating_add(n);
        if outcome != Outcome::Miss {
            s.foreign += k;
            s.long_foreign += k;
        }
        s.classified += k;
        s.long_classified += k;
        match outcome {
            Outcome::Miss => {
                s.misses += k;
                s.long_misses += k;
            }
            Outcome::Denied => {
                s.denied += k;
                s.long_denied += k;
            }
            Outcome::Hit => {}
        }
        s.seq_run = seq_run;
        s
    }
}

/// The long view: sums decaying with the probe's long half-life, each
/// kept as of the record's `long_secs` (see [`decay`](super::decay)).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
struct Long {
    /// Distinct targets (misses included).
    targets: f32,
    misses: f32,
    denied: f32,
    /// Distinct targets with a classified answer.
    classified: f32,
    /// Hits on targets found before.
    repeats: f32,
}

impl Long {
    /// Counts one new distinct target with `outcome`, weighing `one`.
    #[inline]
    fn add_target(&mut self, one: f32, outcome: Option<Outcome>) {
        self.targets += one;
        match outcome {
            Some(Outcome::Miss) => {
                self.misses += one;
                self.classified += one;
            }
            Some(Outcome::Denied) => {
                self.denied += one;
                self.classified += one;
            }
            Some(Outcome::Hit) => self.classified += one,
            None => {}
        }
    }

    /// Whether no target was counted (repeats aside).
    fn is_empty(&self) -> bool {
        self.targets == 0.0 && self.misses == 0.0 && self.denied == 0.0 && self.classified == 0.0
    }
}

/// One (actor, probe) record. Fixed size: 160 bytes.
///
/// The window length is not kept: the caller passes its probe's window to
/// [`learn`](Self::learn), [`roll`](Self::roll) and
/// [`signals`](Self::signals). `win_start` and `last_seen` are [`Nanos`]
/// (windows and cadence gaps can be short); the times that need no
/// sub-second precision are whole seconds of the clock (`u32`, saturating
/// at 136 years from the clock's origin: [`Nanos::to_secs_u32`]). The
/// decaying sums (the long view and the carried suspicion) are kept as of
/// such a whole second, which loses nothing (see [`decay`](super::decay)).
#[derive(Debug, Clone)]
// `repr(C)` in this order: the fields every probe request touches (the
// window, the cadence, the counts, what `no_evidence` reads) come first and
// share one or two cache lines; the sketches, touched only by foreign
// targets, come last. With many actors each lookup is a cache miss, so
// how many lines an update touches is what it costs.
#[repr(C)]
pub(crate) struct Record {
    /// When the current half-window began.
    win_start: Nanos,
    /// The last request (the clock's origin: none yet).
    pub(crate) last_seen: Nanos,
    counts: Halves<Counts>,
    /// The score at the last update (for eviction and listing), in
    /// thousandths, saturating at 65.5.
    score_milli: u16,
    /// History hits (saturating at 255): hits on the actor's own objects,
    /// or, on a probe without own objects (identities), hits on a target
    /// it had found before.
    hits_total: u8,
    /// Probe requests admitted and not answered yet (saturating at 255):
    /// the pre-check counts them as the worst answers they could bring,
    /// so that the bound holds however many are sent at once. Forgotten
    /// when the window rolls over them entirely (an answer that never
    /// came back must not hold an actor for ever).
    pending: u8,
    gap_mean_ms: f32,
    gap_dev_ms: f32,
    carry: f32,
    /// Consecutive +-1 steps (saturating at 255).
    seq_run: u8,
    /// Own objects read and found (saturating at 255).
    own: u8,
    gaps: u8,
    pub(crate) strikes: u8,
    long: Long,
    /// Whole seconds: when the record was created.
    first_secs: u32,
    /// Whole seconds: the time `carry` is kept as of (at or before the last
    /// raise).
    carry_secs: u32,
    /// Whole seconds: the time `long` is kept as of.
    long_secs: u32,
    /// The last numeric target, `NO_NUMERIC` if none yet.
    last_numeric: u64,
    sketches: Halves<DistinctSketch>,
}

impl Record {
    pub(crate) fn new(now: Nanos) -> Self {
        let secs = now.to_secs_u32();
        Self {
            win_start: now,
            counts: Halves::default(),
            sketches: Halves::default(),
            last_numeric: NO_NUMERIC,
            last_seen: Nanos::ZERO,
            first_secs: secs,
            carry_secs: secs,
            long_secs: secs,
            long: Long::default(),
            gap_mean_ms: 0.0,
            gap_dev_ms: 0.0,
            carry: 0.0,
            score_milli: 0,
            hits_total: 0,
            seq_run: 0,
            own: 0,
            gaps: 0,
            strikes: 0,
            pending: 0,
        }
    }

    /// The score at the last update (for eviction, listing and linking).
    pub(crate) fn last_score(&self) -> f64 {
        f64::from(self.score_milli) / 1000.0
    }

    /// Keeps `score` as the last score (to a thousandth, at most 65.5).
    pub(crate) fn set_score(&mut self, score: f64) {
        self.score_milli = (score.max(0.0) * 1000.0).round().min(f64::from(u16::MAX)) as u16;
    }

    /// Reads of the actor's own objects on this probe (saturating at 255).
    pub(crate) fn own_reads(&self) -> u32 {
        u32::from(self.own)
    }

    /// When the record was created, in clock nanoseconds (to the second
    /// before).
    pub(crate) fn first_seen(&self) -> Nanos {
        Nanos::from_secs_u32(self.first_secs)
    }

    /// When carried suspicion was last raised (or the record created), in
    /// clock nanoseconds (to the second before).
    pub(crate) fn carry_raised(&self) -> Nanos {
        Nanos::from_secs_u32(self.carry_secs)
    }

    /// History hits over the record's life (saturating): hits on its own
    /// objects, or, where the probe has no own objects, repeated hits.
    pub(crate) fn hits_total(&self) -> u32 {
        u32::from(self.hits_total)
    }

    /// Rotates the half-windows up to `now`.
    pub(crate) fn roll(&mut self, now: Nanos, window: Span) {
        let k = halves_since(self.win_start, now, window);
        if k == 0 {
            return;
        }
        self.counts.roll(k);
        self.sketches.roll(k);
        if k > 1 {
            self.pending = 0;
        }
        self.win_start += k * half(window);
    }

    /// A probe request admitted: its answer is pending.
    #[inline]
    pub(crate) fn admit(&mut self, now: Nanos, window: Span) {
        self.roll(now, window);
        self.pending = self.pending.saturating_add(1);
    }

    /// An admitted request answered (or abandoned).
    #[inline]
    pub(crate) fn settle(&mut self) {
        self.pending = self.pending.saturating_sub(1);
    }

    /// Requests admitted and not answered, as of `now`: none once a whole
    /// window has passed since the window they were admitted in.
    #[inline]
    pub(crate) fn pending_at(&self, now: Nanos, window: Span) -> u32 {
        if now.saturating_sub(self.win_start) < window.max(Span::new(1)) {
            u32::from(self.pending)
        } else {
            0
        }
    }

    /// Whether a target with this hash may have been seen in the window
    /// (see [`DistinctSketch::contains`]).
    #[inline]
    pub(crate) fn seen(&self, hash: u64) -> bool {
        self.sketches.cur.contains(hash) || self.sketches.prev.contains(hash)
    }

    /// Folds one probe request into the record. (Inlined into its one
    /// caller, the detector's learning step.)
    #[inline]
    pub(crate) fn learn(
        &mut self,
        now: Nanos,
        window: Span,
        long_half_life: Span,
        target: Option<TargetInfo>,
        outcome: Option<Outcome>,
    ) {
        self.roll(now, window);
        if self.last_seen != Nanos::ZERO && now > self.last_seen {
            let gap = (now - self.last_seen).as_millis() as f32;
            if self.gaps == 0 {
                self.gap_mean_ms = gap;
                self.gap_dev_ms = 0.0;
            } else {
                let dev = (gap - self.gap_mean_ms).abs();
                self.gap_mean_ms += CADENCE_WEIGHT * (gap - self.gap_mean_ms);
                self.gap_dev_ms += CADENCE_WEIGHT * (dev - self.gap_dev_ms);
            }
            self.gaps = self.gaps.saturating_add(1);
        }
        self.last_seen = now;
        self.counts.cur.requests = self.counts.cur.requests.saturating_add(1);
        let hit = outcome == Some(Outcome::Hit);
        // A request without a target is no history: leaving the target out
        // must not make an actor established.
        let Some(t) = target else { return };
        if t.is_self && hit {
            self.own = self.own.saturating_add(1);
        }
        // History: hits on its own objects, or (where there are no own
        // objects) a hit on a target it found before: coming back to the
        // same contacts is what people do, and guessers never do.
        let seen = self.seen(t.hash);
        if hit && (t.is_self || (!t.self_target && seen)) {
            self.hits_total = self.hits_total.saturating_add(1);
        }
        if t.is_self {
            if hit && !t.self_target {
                // A target the application said the caller knows (`Known`),
                // found: ordinary use, like a contact found again.
                self.long.repeats += self.long_unit(now, long_half_life);
            }
            return;
        }
        if seen {
            if hit {
                // The same target again, found again: ordinary use.
                self.long.repeats += self.long_unit(now, long_half_life);
            }
        } else {
            self.sketches.cur.insert(t.hash);
            let c = &mut self.counts.cur;
            c.targets = c.targets.saturating_add(1);
            match outcome {
                Some(Outcome::Hit) => c.hits = c.hits.saturating_add(1),
                Some(Outcome::Miss) => c.misses = c.misses.saturating_add(1),
                Some(Outcome::Denied) => c.denied = c.denied.saturating_add(1),
                None => {}
            }
            let one = self.long_unit(now, long_half_life);
            self.long.add_target(one, outcome);
        }
        if let Some(n) = t.numeric {
            if self.last_numeric != NO_NUMERIC && n.abs_diff(self.last_numeric) == 1 {
                self.seq_run = self.seq_run.saturating_add(1);
            } else if n != self.last_numeric {
                self.seq_run = 0;
            }
            self.last_numeric = n;
        }
    }

    /// Moves the long view's sums to the whole second of `now`, and
    /// returns what one unit added now weighs in them.
    #[inline]
    fn long_unit(&mut self, now: Nanos, half_life: Span) -> f32 {
        let secs = now.to_secs_u32();
        if secs > self.long_secs {
            let dt = Nanos::from_secs_u32(secs) - Nanos::from_secs_u32(self.long_secs);
            let f = decay(dt, half_life) as f32;
            let l = &mut self.long;
            for v in [
                &mut l.targets,
                &mut l.misses,
                &mut l.denied,
                &mut l.classified,
                &mut l.repeats,
            ] {
                *v *= f;
            }
            self.long_secs = secs;
        }
        weight(now, Nanos::from_secs_u32(self.long_secs), half_life) as f32
    }

    /// The sequential run if `t` were visited next.
    pub(crate) fn seq_run_after(&self, t: &TargetInfo) -> u32 {
        match t.numeric {
            Some(n) if self.last_numeric != NO_NUMERIC && n.abs_diff(self.last_numeric) == 1 => {
                (self.seq_run as u32 + 1).min(u8::MAX as u32)
            }
            Some(n) if n != self.last_numeric => 0,
            _ => self.seq_run as u32,
        }
    }

    #[cfg(feature = "redis")]
    /// What this record saw in its window as it stands at `now`: the
    /// window's distinct-target sketch and counts, for another replica.
    pub(crate) fn evidence(&self, now: Nanos, window: Span) -> Evidence {
        let k = halves_since(self.win_start, now, window);
        Evidence::new(self.sketches.at(k), self.counts.at(k))
    }

    /// The signals at `now`, with what other replicas saw of the same
    /// actor in their windows (`remote`) merged into the window's: their
    /// sketches by union (a target seen by two replicas counts once), their
    /// counts added. The long view stays this replica's.
    #[inline]
    pub(crate) fn signals_with(
        &self,
        now: Nanos,
        window: Span,
        long_half_life: Span,
        remote: Option<&Evidence>,
    ) -> Signals {
        let Some(remote) = remote else {
            return self.signals(now, window, long_half_life);
        };
        let mut s = self.signals(now, window, long_half_life);
        let k = halves_since(self.win_start, now, window);
        let sum = self.counts.at(k).add(&remote.counts);
        let estimate = self.sketches.at(k).union(&remote.sketch()).estimate();
        // Counts of targets seen on two replicas are in both sums: scale
        // them to the union's estimate (down as well as up).
        let scale = if sum.targets == 0 {
            1.0
        } else {
            estimate / sum.targets as f64
        };
        s.misses = sum.misses as f64 * scale;
        s.denied = sum.denied as f64 * scale;
        s.classified = sum.classified() as f64 * scale;
        s.foreign = (estimate - s.misses).max(0.0);
        s.requests = u32::from(sum.requests);
        s
    }

    /// The signals at `now`, for a probe with this `window` and long
    /// half-life (the ones the record learns with).
    pub(crate) fn signals(&self, now: Nanos, window: Span, long_half_life: Span) -> Signals {
        let decay = decay(
            now.saturating_sub(Nanos::from_secs_u32(self.long_secs)),
            long_half_life,
        );
        // Read the window as it stands at `now`, rolled or not.
        let k = halves_since(self.win_start, now, window);
        let sum = self.counts.at(k);
        let estimate = self.sketches.at(k).estimate();
        // Scale the exact per-outcome counts by the collision correction.
        let scale = if sum.targets == 0 {
            1.0
        } else {
            (estimate / sum.targets as f64).max(1.0)
        };
        let misses = sum.misses as f64 * scale;
        let l = &self.long;
        let long_misses = l.misses as f64 * decay;
        Signals {
            foreign: (estimate.max(sum.targets as f64) - misses).max(0.0),
            misses,
            denied: sum.denied as f64 * scale,
            classified: sum.classified() as f64 * scale,
            requests: u32::from(sum.requests),
            seq_run: self.seq_run as u32,
            regular: self.gaps >= CADENCE_MIN_GAPS
                && self.gap_mean_ms > 0.0
                && self.gap_dev_ms < CADENCE_REGULAR * self.gap_mean_ms,
            long_foreign: (l.targets as f64 * decay - long_misses).max(0.0),
            long_misses,
            long_denied: l.denied as f64 * decay,
            long_classified: l.classified as f64 * decay,
            long_repeats: l.repeats as f64 * decay,
        }
    }

    /// The counts of the window as it stands at `now`, rolled or not.
    pub(crate) fn window_counts(&self, now: Nanos, window: Span) -> Counts {
        self.counts.at(halves_since(self.win_start, now, window))
    }

    /// Distinct targets (not its own) in the window as it stands at `now`.
    pub(crate) fn window_targets(&self, now: Nanos, window: Span) -> u32 {
        u32::from(self.window_counts(now, window).targets)
    }

    /// Requests in the window as it stands at `now`.
    pub(crate) fn window_requests(&self, now: Nanos, window: Span) -> u32 {
        u32::from(self.window_counts(now, window).requests)
    }

    /// Whether the record holds no evidence of its own: no foreign target in
    /// the window or the long view, no carried suspicion. Its score is then
    /// 0 whatever the thresholds: a new account inherits nothing from its
    /// address (it is watched instead; see the engine).
    pub(crate) fn no_evidence(&self) -> bool {
        self.counts.cur.targets == 0
            && self.counts.prev.targets == 0
            && self.long.is_empty()
            && self.carry <= 0.0
    }

    /// Carried suspicion, decayed to `now` (at most [`MAX_CARRY`]).
    pub(crate) fn carry_at(&self, now: Nanos, half_life: Span) -> f64 {
        if self.carry <= 0.0 {
            return 0.0;
        }
        let left = decay(now.saturating_sub(self.carry_raised()), half_life);
        // Kept as of the second before the raise: only a read from before
        // the raise (a racing request's older clock reading) could see more
        // than was set, and never more than the cap.
        (self.carry as f64 * left).min(MAX_CARRY)
    }

    /// Raises carried suspicion by `add`, to at least `floor` and at most
    /// [`MAX_CARRY`].
    pub(crate) fn raise_carry(&mut self, now: Nanos, half_life: Span, add: f64, floor: f64) {
        let c = (self.carry_at(now, half_life) + add)
            .max(floor)
            .min(MAX_CARRY);
        self.carry_secs = now.to_secs_u32();
        self.carry = (c * weight(now, self.carry_raised(), half_life)) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Span = Span::new(3_600_000_000_000);
    const LH: Span = Span::new(6 * W.get());

    fn at(nanos: u64) -> Nanos {
        Nanos::new(nanos)
    }

    fn t(n: u64) -> TargetInfo {
        TargetInfo::new(n.to_string().as_bytes(), None, true, (3, 4))
    }

    #[test]
    fn record_is_small() {
        assert!(
            std::mem::size_of::<Record>() <= 160,
            "{}",
            std::mem::size_of::<Record>()
        );
        // The sketches, touched only by new foreign targets, stay last:
        // what every request touches fits in the first 96 bytes.
        assert_eq!(std::mem::offset_of!(Record, sketches), 96);
    }

    #[test]
    fn repeated_target_counts_once() {
        let mut r = Record::new(at(1));
        for _ in 0..10 {
            r.learn(at(2), W, LH, Some(t(7)), Some(Outcome::Miss));
        }
        let s = r.signals(at(0), W, LH);
        assert_eq!(s.requests, 10);
        // A miss is nobody's object: not foreign.
        assert_eq!(s.foreign, 0.0);
        assert!((s.misses - 1.0).abs() < 0.01);
        // Repeated misses are no repeated use; repeated hits are.
        assert_eq!(s.long_repeats, 0.0);
        for _ in 0..5 {
            r.learn(at(3), W, LH, Some(t(8)), Some(Outcome::Hit));
        }
        let s = r.signals(at(3), W, LH);
        assert!((s.foreign - 1.0).abs() < 0.01);
        assert!((s.long_repeats - 4.0).abs() < 0.01, "{s:?}");
    }

    #[test]
    fn window_slides() {
        let mut r = Record::new(at(0));
        for i in 0..10 {
            r.learn(at(1), W, LH, Some(t(i)), Some(Outcome::Hit));
        }
        r.learn(at(W.get() / 2 + 1), W, LH, Some(t(100)), Some(Outcome::Hit));
        assert!(
            r.signals(at(0), W, LH).foreign >= 10.5,
            "previous half still counts"
        );
        r.learn(at(W.get() + 2), W, LH, Some(t(101)), Some(Outcome::Hit));
        assert!(
            r.signals(at(W.get() + 2), W, LH).foreign < 2.6,
            "{}",
            r.signals(at(W.get() + 2), W, LH).foreign
        );
        r.learn(at(5 * W.get()), W, LH, None, None);
        let s = r.signals(at(5 * W.get()), W, LH);
        assert_eq!(s.foreign, 0.0);
        // The long view remembers, decayed: 12 targets, about 5 hours ago.
        assert!(
            s.long_foreign > 6.0 && s.long_foreign < 12.0,
            "{}",
            s.long_foreign
        );
    }

    #[test]
    fn sequential_walk() {
        let mut r = Record::new(at(0));
        for i in 100..110 {
            r.learn(at(1), W, LH, Some(t(i)), Some(Outcome::Hit));
        }
        assert_eq!(r.signals(at(0), W, LH).seq_run, 9);
        r.learn(at(1), W, LH, Some(t(500)), Some(Outcome::Hit));
        assert_eq!(r.signals(at(0), W, LH).seq_run, 0);
    }

    #[test]
    fn regular_cadence() {
        let mut r = Record::new(at(0));
        for i in 1..20u64 {
            r.learn(
                at(i * 1_000_000_000),
                W,
                LH,
                Some(t(i * 7)),
                Some(Outcome::Hit),
            );
        }
        assert!(r.signals(at(0), W, LH).regular);
        let mut r = Record::new(at(0));
        let mut now = 0;
        for i in 1..20u64 {
            now += (i % 5 + 1) * 700_000_000;
            r.learn(at(now), W, LH, Some(t(i * 7)), Some(Outcome::Hit));
        }
        assert!(!r.signals(at(0), W, LH).regular);
    }

    #[test]
    fn sketch_error_at_thresholds() {
        // The record's count of distinct targets, through learning and the
        // collision correction, keeps the sketch's error (see `sketch.rs`):
        // on deterministic pseudo-random targets, within 5% (or one target)
        // of the truth on average, and within 25% (or one target) at worst.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for n in [3usize, 10, 15, 20, 30, 60] {
            let mut total_err = 0.0;
            let mut worst: f64 = 0.0;
            let trials = 200;
            for _ in 0..trials {
                let mut r = Record::new(at(0));
                for _ in 0..n {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    r.learn(at(1), W, LH, Some(t(seed)), Some(Outcome::Denied));
                }
                let s = r.signals(at(0), W, LH);
                let err = s.foreign - n as f64;
                total_err += err.abs();
                worst = worst.max(err.abs());
                // Denials scale with the same correction.
                assert!((s.denied - s.foreign).abs() < 1e-9);
            }
            let mean = total_err / trials as f64;
            assert!(
                mean <= (0.05 * n as f64).max(1.0),
                "n={n}: mean error {mean}"
            );
            assert!(
                worst <= (0.25 * n as f64).max(1.0) + 1e-9,
                "n={n}: worst error {worst}"
            );
        }
    }

    use proptest::prelude::*;

    proptest! {
        /// Suspicion never grows without new evidence: with no request in
        /// between, a later look never scores higher.
        #[test]
        fn no_growth_without_evidence(
            steps in prop::collection::vec((0u64..5, 0u64..120_000, 0u8..4), 1..60),
            later in prop::collection::vec(1u64..10_000_000, 1..8),
            carry in 0.0..1.5f64,
        ) {
            let th = crate::config::Thresholds::objects();
            let (w, lh) = (Span::from_secs(th.window_secs), Span::from_secs(th.long_half_life_secs));
            let mut r = Record::new(at(0));
            let mut now = 0u64;
            for (target, gap_ms, outcome) in steps {
                now += gap_ms * 1_000_000;
                let outcome = [None, Some(Outcome::Hit), Some(Outcome::Miss), Some(Outcome::Denied)][outcome as usize];
                r.learn(at(now), w, lh, Some(t(target)), outcome);
            }
            r.raise_carry(at(now), lh, carry, 0.0);
            let score_at = |t: u64| {
                let ctx = crate::detect::score::Context { carry: r.carry_at(at(t), lh), ..crate::detect::score::Context::plain(1.0) };
                crate::detect::score::score(&th, &r.signals(at(t), w, lh), &ctx)
            };
            let mut prev = score_at(now);
            let mut at = now;
            for dt_ms in later {
                at += dt_ms * 1_000_000;
                let s = score_at(at);
                prop_assert!(s <= prev + 1e-9, "score rose from {} to {} without evidence", prev, s);
                prev = s;
            }
        }
    }

    #[test]
    fn hypothetical_matches_learning() {
        let th = crate::config::Thresholds::objects();
        let (w, lh) = (
            Span::from_secs(th.window_secs),
            Span::from_secs(th.long_half_life_secs),
        );
        let ctx = crate::detect::score::Context::plain(1.0);
        let mut r = Record::new(at(0));
        for i in 0..12u64 {
            r.learn(
                at(i * 1_000_000_000),
                w,
                lh,
                Some(t(100 + i)),
                Some(Outcome::Hit),
            );
        }
        for outcome in [Outcome::Hit, Outcome::Miss, Outcome::Denied] {
            let now = 12_000_000_000;
            let next = t(112);
            let predicted = r
                .signals(at(now), w, lh)
                .with_new_target(outcome, r.seq_run_after(&next));
            let mut h = r.clone();
            h.learn(at(now), w, lh, Some(next), Some(outcome));
            let actual = h.signals(at(now), w, lh);
            let (p, a) = (
                crate::detect::score::score(&th, &predicted, &ctx),
                crate::detect::score::score(&th, &actual, &ctx),
            );
            assert!(
                (p - a).abs() < 0.02,
                "{outcome:?}: predicted {p}, learned {a}"
            );
        }
    }

    #[test]
    fn whole_second_times_lose_nothing() {
        // Carried suspicion raised mid-second reads as set, then halves.
        let s = 1_000_000_000u64;
        let mut r = Record::new(at(s / 3));
        r.raise_carry(at(7 * s + s / 2), Span::new(10 * s), 0.5, 0.0);
        assert!((r.carry_at(at(7 * s + s / 2), Span::new(10 * s)) - 0.5).abs() < 1e-6);
        assert!((r.carry_at(at(17 * s + s / 2), Span::new(10 * s)) - 0.25).abs() < 1e-6);
        r.raise_carry(at(17 * s + s / 2), Span::new(10 * s), 0.5, 0.0);
        assert!((r.carry_at(at(17 * s + s / 2), Span::new(10 * s)) - 0.75).abs() < 1e-6);
        assert!(r.carry_raised() <= at(17 * s + s / 2));
        // The long view: targets at fractional seconds, each decayed exactly.
        let lh = Span::new(20 * s);
        let mut r = Record::new(at(0));
        let times = [s / 4, 3 * s + s / 2, 3 * s + 9 * s / 10, 11 * s + 1];
        for (i, time) in times.into_iter().enumerate() {
            r.learn(at(time), W, lh, Some(t(i as u64 * 10)), Some(Outcome::Miss));
        }
        let now = 30 * s + s / 7;
        let exact: f64 = times
            .iter()
            .map(|time| 0.5f64.powf((now - time) as f64 / lh.get() as f64))
            .sum();
        let got = r.signals(at(now), W, lh);
        assert!((got.long_misses - exact).abs() < 1e-5, "{got:?} vs {exact}");
        assert!((got.long_classified - exact).abs() < 1e-5);
        assert_eq!(got.long_foreign, 0.0, "misses are not foreign");
        assert_eq!(r.first_seen(), Nanos::ZERO);
    }

    #[test]
    fn carry_decays() {
        let mut r = Record::new(at(0));
        r.raise_carry(at(0), Span::new(100), 0.5, 0.0);
        assert!((r.carry_at(at(100), Span::new(100)) - 0.25).abs() < 1e-6);
        assert!(r.carry_at(at(1000), Span::new(100)) < 0.001);
    }
}
