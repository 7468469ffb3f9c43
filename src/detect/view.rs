//! The service-wide view of one probe: how often its answers are misses and
//! its targets foreign, over the last two buckets, against a baseline that
//! moves with what established people (accounts and sessions with history)
//! did in each bucket, anomaly or not, or else with calm buckets: an attack
//! by actors without history cannot teach it that attacks are normal, and a
//! wrong prior is corrected by ordinary users. While the view is anomalous, actors with no history get tighter
//! thresholds: that is what catches an attack spread thin over many fresh
//! accounts or addresses.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::clock::{Nanos, Span};
use crate::config::ServiceViewConfig;

const REQ: usize = 0;
const MISS: usize = 1;
const FOREIGN: usize = 2;
/// The same counts for requests of *established* actors (a person with
/// history): what the baseline learns from, anomaly or not.
const EREQ: usize = 3;
const EMISS: usize = 4;
const EFOREIGN: usize = 5;
const COUNTS: usize = 6;

/// One stripe of the current bucket's counters, on a cache line of its
/// own: threads count on different stripes, so counting on every probe
/// request does not bounce one line between cores.
#[derive(Default)]
#[repr(align(64))]
struct Stripe([AtomicU32; COUNTS]);

const STRIPES: usize = 8;

/// The weight a closed bucket keeps in the slow view per bucket that
/// follows: about the last ten buckets count (a mean age of about six and
/// a half). A probe whose traffic is too thin for two buckets to reach
/// `min_requests` (a password reset guessed from a thousand addresses at
/// two tries an hour each) is judged on them: minutes, not hours.
const SLOW_DECAY: f32 = 0.85;

/// This thread's stripe.
fn stripe() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    MINE.with(|m| {
        if m.get() == usize::MAX {
            m.set(NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES);
        }
        m.get()
    })
}

/// What a request tells the view: a miss, a foreign target, or neither
/// (the actor's own object, a request without a target, a miss on a
/// target others asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    Miss,
    Foreign,
    Neither,
}

/// One request as the view counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counted {
    pub(crate) seen: Seen,
    /// A person with history made it: the baseline learns from these.
    pub(crate) established: bool,
}

/// A view's settings, compiled into its probe: plain data, read on every
/// call (the view itself holds only counts).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ViewParams {
    bucket: Span,
    min_requests: u32,
    ratio: f64,
    margin: f64,
    alpha: f64,
    watch_foreign: bool,
}

impl ViewParams {
    pub(crate) fn new(cfg: &ServiceViewConfig, watch_foreign: bool) -> Self {
        Self {
            bucket: Span::from_secs(cfg.bucket_secs).max(Span::new(1)),
            min_requests: cfg.min_requests.get(),
            ratio: cfg.ratio,
            margin: cfg.margin,
            alpha: cfg.alpha,
            watch_foreign,
        }
    }
}

/// The live counts of one probe's view (its settings are the probe's
/// [`ViewParams`]): kept by the detector, per probe slot.
pub(crate) struct View {
    bucket: AtomicU64,
    cur: [Stripe; STRIPES],
    prev: [AtomicU32; 3],
    /// The slow view: requests, misses and foreign targets of the closed
    /// buckets, each bucket's weight shrinking by `SLOW_DECAY` per bucket
    /// (as f32 bits; written only by the thread that wins a rotation).
    slow: [AtomicU32; 3],
    /// Baselines as f32 bits.
    base_miss: AtomicU32,
    base_foreign: AtomicU32,
    /// What the view was last seen to be (see [`View::note`]).
    alert: std::sync::atomic::AtomicBool,
}

impl View {
    pub(crate) fn new(prior_miss: f64, prior_foreign: f64) -> Self {
        Self {
            bucket: AtomicU64::new(0),
            cur: Default::default(),
            prev: Default::default(),
            slow: Default::default(),
            base_miss: AtomicU32::new((prior_miss as f32).to_bits()),
            base_foreign: AtomicU32::new((prior_foreign as f32).to_bits()),
            alert: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Starts the view over with these baselines: no bucket counted, calm.
    /// For a slot that a reload gives to a probe (with its priors), or
    /// whose view settings changed (with what the view learned).
    pub(crate) fn restart(&self, base_miss: f64, base_foreign: f64) {
        self.bucket.store(0, Ordering::Release);
        for stripe in &self.cur {
            for c in &stripe.0 {
                c.store(0, Ordering::Relaxed);
            }
        }
        for c in self.prev.iter().chain(&self.slow) {
            c.store(0, Ordering::Relaxed);
        }
        self.base_miss
            .store((base_miss as f32).to_bits(), Ordering::Relaxed);
        self.base_foreign
            .store((base_foreign as f32).to_bits(), Ordering::Relaxed);
        self.alert.store(false, Ordering::Relaxed);
    }

    /// Notes what the view was read to be; on a change (one thread wins
    /// it), a `warn` event and the probe's gauge
    /// ([`SERVICE_VIEW_ANOMALOUS`](crate::metrics::SERVICE_VIEW_ANOMALOUS)).
    /// A load when nothing changed: no shared line written per request.
    /// Returns whether this call saw the change.
    pub(crate) fn note(&self, anomalous: bool, probe: &str) -> bool {
        if self.alert.load(Ordering::Relaxed) == anomalous
            || self
                .alert
                .compare_exchange(!anomalous, anomalous, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        let (miss, foreign) = self.baselines();
        if anomalous {
            tracing::warn!(
                target: "enumguard",
                probe,
                baseline_miss = miss,
                baseline_foreign = foreign,
                "service-wide view anomalous: a spread attack may be under way; actors with no history get the tight thresholds"
            );
        } else {
            tracing::warn!(target: "enumguard", probe, "service-wide view calm again");
        }
        metrics::gauge!(crate::metrics::SERVICE_VIEW_ANOMALOUS, "probe" => probe.to_owned())
            .set(if anomalous { 1.0 } else { 0.0 });
        true
    }

    fn roll(&self, p: &ViewParams, now: Nanos) {
        let b = now / p.bucket;
        let old = self.bucket.load(Ordering::Acquire);
        if b == old {
            return;
        }
        if b < old
            || self
                .bucket
                .compare_exchange(old, b, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        // This thread won the rotation.
        let closed: [u32; COUNTS] = std::array::from_fn(|i| {
            self.cur
                .iter()
                .map(|s| s.0[i].swap(0, Ordering::AcqRel))
                .fold(0u32, u32::saturating_add)
        });
        let calm = !self.rates_anomalous(
            p,
            closed[REQ] as u64,
            closed[MISS] as u64,
            closed[FOREIGN] as u64,
            p.min_requests as u64 / 2,
        );
        let enough = (p.min_requests as u64 / 2).max(1);
        // What established people did is what is normal, anomaly or not: a
        // wrong prior is corrected by them, and an attack by actors without
        // history cannot teach it. Without enough of them, a calm bucket's
        // whole traffic.
        // Thin established traffic teaches in proportion to its size: a
        // probe with a few lookups a minute still learns its people's rate.
        let learn = if calm && closed[REQ] as u64 >= enough {
            Some((closed[REQ], closed[MISS], closed[FOREIGN], 1.0))
        } else if closed[EREQ] > 0 {
            let weight = (closed[EREQ] as f64 / enough as f64).min(1.0);
            Some((closed[EREQ], closed[EMISS], closed[EFOREIGN], weight))
        } else {
            None
        };
        let learn = match learn {
            // Enough established requests: theirs, anomaly or not.
            _ if closed[EREQ] as u64 >= enough => {
                Some((closed[EREQ], closed[EMISS], closed[EFOREIGN], 1.0))
            }
            other => other,
        };
        if let Some((req, miss, foreign, weight)) = learn {
            let req = req as f64;
            for (base, count) in [(&self.base_miss, miss), (&self.base_foreign, foreign)] {
                let old = f32::from_bits(base.load(Ordering::Relaxed)) as f64;
                let new = old + p.alpha * weight * (count as f64 / req - old);
                base.store((new as f32).to_bits(), Ordering::Relaxed);
            }
        }
        let keep = b == old + 1;
        for (i, c) in closed.iter().take(3).enumerate() {
            self.prev[i].store(if keep { *c } else { 0 }, Ordering::Release);
        }
        // The closed bucket joins the slow view; the buckets skipped (no
        // request at all) age it too.
        let skipped = (b - old).min(64) as i32;
        for (i, c) in closed.iter().take(3).enumerate() {
            let old = f32::from_bits(self.slow[i].load(Ordering::Relaxed));
            let new = old * SLOW_DECAY.powi(skipped) + *c as f32 * SLOW_DECAY.powi(skipped - 1);
            self.slow[i].store(new.to_bits(), Ordering::Relaxed);
        }
    }

    /// Counts one request.
    pub(crate) fn count(&self, p: &ViewParams, now: Nanos, request: Counted) {
        self.roll(p, now);
        let cur = &self.cur[stripe()].0;
        cur[REQ].fetch_add(1, Ordering::Relaxed);
        // The count it adds to, and the same for established people.
        let tell = match request.seen {
            Seen::Miss => Some((MISS, EMISS)),
            Seen::Foreign => Some((FOREIGN, EFOREIGN)),
            Seen::Neither => None,
        };
        if let Some((all, _)) = tell {
            cur[all].fetch_add(1, Ordering::Relaxed);
        }
        if request.established {
            cur[EREQ].fetch_add(1, Ordering::Relaxed);
            if let Some((_, established)) = tell {
                cur[established].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts an attempt the pre-check refused as what it was taken for,
    /// the worst answer: a foreign object where foreign objects are the
    /// tell, else a miss (refusing attempts must not hide an attack from
    /// the view); by an actor without history.
    pub(crate) fn count_refused(&self, p: &ViewParams, now: Nanos) {
        let seen = if p.watch_foreign {
            Seen::Foreign
        } else {
            Seen::Miss
        };
        self.count(
            p,
            now,
            Counted {
                seen,
                established: false,
            },
        );
    }

    fn rates_anomalous(&self, p: &ViewParams, req: u64, miss: u64, foreign: u64, min: u64) -> bool {
        if req < min.max(1) {
            return false;
        }
        // At least `margin` above the baseline, and either `ratio` times it
        // or, where the baseline is high (a lookup where a quarter of the
        // addresses people ask for live elsewhere), a third of the way from
        // it to all: 25% misses to 50% is as clear a change as 10% to 30%.
        let anomalous = |count: u64, base: &AtomicU32| {
            let rate = count as f64 / req as f64;
            let base = f32::from_bits(base.load(Ordering::Relaxed)) as f64;
            rate >= base + p.margin && (rate >= base * p.ratio || rate >= base + (1.0 - base) / 3.0)
        };
        anomalous(miss, &self.base_miss)
            || (p.watch_foreign && anomalous(foreign, &self.base_foreign))
    }

    /// Whether the last two buckets are anomalous, or, where they are too
    /// few requests to tell, the slow view with the current bucket.
    pub(crate) fn anomalous(&self, p: &ViewParams, now: Nanos) -> bool {
        let b = now / p.bucket;
        let cur_bucket = self.bucket.load(Ordering::Acquire);
        let get = |i: usize| -> u64 {
            let c: u64 = self
                .cur
                .iter()
                .map(|s| s.0[i].load(Ordering::Relaxed) as u64)
                .sum();
            let p = self.prev[i].load(Ordering::Relaxed) as u64;
            match b.saturating_sub(cur_bucket) {
                0 => c + p,
                // The current bucket is now the previous one.
                1 => c,
                _ => 0,
            }
        };
        let req = get(REQ);
        if req >= p.min_requests as u64 {
            return self.rates_anomalous(p, req, get(MISS), get(FOREIGN), p.min_requests as u64);
        }
        // Thin traffic: the last ten or so buckets, and this one.
        let stale = b.saturating_sub(cur_bucket).min(64) as i32;
        // (A current bucket not rotated yet is as old as the time since.)
        let slow = |i: usize| -> u64 {
            let cur: u32 = self
                .cur
                .iter()
                .map(|s| s.0[i].load(Ordering::Relaxed))
                .fold(0u32, u32::saturating_add);
            let s = f32::from_bits(self.slow[i].load(Ordering::Relaxed)) * SLOW_DECAY.powi(stale)
                + cur as f32 * SLOW_DECAY.powi(stale);
            s.round() as u64
        };
        self.rates_anomalous(
            p,
            slow(REQ),
            slow(MISS),
            slow(FOREIGN),
            p.min_requests as u64,
        )
    }

    /// The learned baselines (miss, foreign).
    pub(crate) fn baselines(&self) -> (f64, f64) {
        (
            f32::from_bits(self.base_miss.load(Ordering::Relaxed)) as f64,
            f32::from_bits(self.base_foreign.load(Ordering::Relaxed)) as f64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    /// A view with the default settings, called as its probe calls it.
    struct Probed {
        view: View,
        p: ViewParams,
    }

    impl Probed {
        fn count(&self, now: u64, c: Counted) {
            self.view.count(&self.p, Nanos::new(now), c);
        }
        fn count_refused(&self, now: u64) {
            self.view.count_refused(&self.p, Nanos::new(now));
        }
        fn anomalous(&self, now: u64) -> bool {
            self.view.anomalous(&self.p, Nanos::new(now))
        }
    }

    impl std::ops::Deref for Probed {
        type Target = View;
        fn deref(&self) -> &View {
            &self.view
        }
    }

    fn view(watch_foreign: bool, prior_miss: f64, prior_foreign: f64) -> Probed {
        Probed {
            view: View::new(prior_miss, prior_foreign),
            p: ViewParams::new(&ServiceViewConfig::default(), watch_foreign),
        }
    }

    /// A request of an actor without history: a miss, or neither.
    fn ask(v: &Probed, now: u64, miss: bool) {
        let seen = if miss { Seen::Miss } else { Seen::Neither };
        v.count(
            now,
            Counted {
                seen,
                established: false,
            },
        );
    }

    /// The same of a person with history.
    fn ask_established(v: &Probed, now: u64, miss: bool) {
        let seen = if miss { Seen::Miss } else { Seen::Neither };
        v.count(
            now,
            Counted {
                seen,
                established: true,
            },
        );
    }

    /// The current bucket's count `i`, over the stripes.
    fn current(v: &Probed, i: usize) -> u32 {
        v.cur.iter().map(|s| s.0[i].load(Ordering::Relaxed)).sum()
    }

    /// A refused attempt counts as the worst answer: a foreign target
    /// where those are watched, else a miss.
    #[test]
    fn a_refused_attempt_counts_as_the_worst_answer() {
        for (watch, tell) in [(true, FOREIGN), (false, MISS)] {
            let v = view(watch, 0.1, 0.05);
            v.count_refused(S);
            let counts = || [REQ, MISS, FOREIGN, EREQ, EMISS, EFOREIGN].map(|i| current(&v, i));
            let once = counts();
            assert_eq!(
                (once[0], current(&v, tell), once[1] + once[2], once[3]),
                (1, 1, 1, 0)
            );
            let seen = if watch { Seen::Foreign } else { Seen::Miss };
            v.count(
                S,
                Counted {
                    seen,
                    established: false,
                },
            );
            assert_eq!(counts(), once.map(|c| 2 * c), "{watch}");
        }
    }

    /// Each request adds to its counts, and to the established ones when
    /// a person with history made it.
    #[test]
    fn counts_follow_what_the_request_was() {
        let v = view(true, 0.1, 0.05);
        for (seen, established) in [
            (Seen::Miss, false),
            (Seen::Foreign, true),
            (Seen::Neither, true),
            (Seen::Miss, true),
        ] {
            v.count(S, Counted { seen, established });
        }
        let got = [REQ, MISS, FOREIGN, EREQ, EMISS, EFOREIGN].map(|i| current(&v, i));
        assert_eq!(got, [4, 2, 1, 3, 1, 1]);
    }

    /// Ten calm minutes from one thread (10% misses); returns the time.
    fn calm(v: &Probed) -> u64 {
        let mut now = 0;
        for minute in 0..10u64 {
            for i in 0..100u64 {
                now = minute * 60 * S + i * S / 2;
                ask(v, now, i % 10 == 0);
            }
        }
        now
    }

    /// Counts from many threads land on different stripes; a spike spread
    /// over threads is seen whole, and the bucket closes with every stripe.
    #[test]
    fn stripes_add_up() {
        let v = view(true, 0.1, 0.05);
        let now = calm(&v);
        assert!(!v.anomalous(now));
        // A spike split over 8 threads, each too small alone.
        let t = now + S;
        std::thread::scope(|sc| {
            for _ in 0..8 {
                sc.spawn(|| {
                    for _ in 0..16 {
                        ask(&v, t, true);
                    }
                });
            }
        });
        assert!(v.anomalous(t));
        // Two buckets later it has all rolled out, stripes included.
        let later = t + 3 * ServiceViewConfig::default().bucket_secs * S;
        ask(&v, later, false);
        assert!(!v.anomalous(later));
    }

    #[test]
    fn calm_then_spike() {
        let v = view(true, 0.1, 0.05);
        let now = calm(&v);
        assert!(!v.anomalous(now));
        assert!((v.baselines().0 - 0.1).abs() < 0.02);
        // A spike of misses.
        for i in 0..60u64 {
            ask(&v, now + i * S / 4, true);
        }
        assert!(v.anomalous(now + 60 * S / 4));
        // Two quiet buckets later the spike is gone.
        assert!(!v.anomalous(now + 400 * S));
        // The spike did not move the baseline.
        assert!(v.baselines().0 < 0.15);
    }

    #[test]
    fn a_probe_whose_misses_are_normal_sets_its_prior() {
        // A sign-up form: most addresses are new (misses).
        let v = view(false, 0.9, 0.05);
        for i in 0..100u64 {
            ask(&v, i * S / 2, i % 10 != 0);
        }
        assert!(!v.anomalous(50 * S));
    }

    /// A prior below a probe's real miss rate keeps the view anomalous on
    /// ordinary traffic; established people's own rate corrects it, while
    /// an attack by actors without history never teaches the baseline.
    #[test]
    fn established_traffic_corrects_a_wrong_prior() {
        let v = view(false, 0.05, 0.05);
        // People with history, missing two times in five (contacts
        // elsewhere, typos): anomalous against the prior at first.
        let mut now = 0;
        for i in 0..60u64 {
            ask_established(&v, i * S, i % 5 < 2);
        }
        assert!(
            v.anomalous(59 * S),
            "the wrong prior flags ordinary traffic"
        );
        for minute in 1..60u64 {
            for i in 0..60u64 {
                now = minute * 60 * S + i * S;
                ask_established(&v, now, i % 5 < 2);
            }
        }
        assert!((v.baselines().0 - 0.4).abs() < 0.05, "{:?}", v.baselines());
        assert!(!v.anomalous(now));
        // New actors guessing for an hour (95% misses), three of their
        // requests to one of the people's: never learned.
        let base = v.baselines().0;
        for minute in 60..120u64 {
            for i in 0..60u64 {
                now = minute * 60 * S + i * S;
                ask_established(&v, now, i % 5 < 2);
                for k in 0..3 {
                    ask(&v, now, (i + k) % 20 != 0);
                }
            }
        }
        assert!((v.baselines().0 - base).abs() < 0.02, "{:?}", v.baselines());
    }

    /// Thin traffic (a password reset guessed from a thousand addresses at
    /// two tries an hour each: 17 requests a minute, under `min_requests`
    /// in two minutes) is judged on the slow view: anomalous within a few
    /// minutes, calm again some ten minutes after it stops.
    #[test]
    fn thin_traffic_is_judged_on_the_slow_view() {
        let v = view(false, 0.1, 0.05);
        let mut now = 0;
        let mut turned = None;
        for minute in 0..10u64 {
            for i in 0..17u64 {
                now = minute * 60 * S + i * 3 * S;
                // 95% misses: a guesser with a 5% list.
                ask(&v, now, i % 20 != 0);
            }
            if turned.is_none() && v.anomalous(now) {
                turned = Some(minute);
            }
        }
        assert!(turned.is_some_and(|m| m <= 3), "turned at {turned:?}");
        // Ordinary thin traffic (5% misses) after it: calm again.
        for minute in 10..30u64 {
            for i in 0..17u64 {
                now = minute * 60 * S + i * 3 * S;
                ask(&v, now, i % 20 == 0);
            }
        }
        assert!(!v.anomalous(now));
    }

    /// Where the baseline is high (a quarter of a lookup's answers miss),
    /// a third of the way to all is anomalous (50%), not three times it.
    #[test]
    fn a_high_baseline_turns_a_third_of_the_way_to_all() {
        for (rate, anomalous) in [(0.45, false), (0.55, true)] {
            let v = view(false, 0.25, 0.05);
            for i in 0..100u64 {
                ask(&v, i * S / 2, (i as f64) < rate * 100.0);
            }
            assert_eq!(v.anomalous(50 * S), anomalous, "{rate}");
        }
    }

    /// The change to anomalous and back is noted once each (one event,
    /// one gauge update), whoever reads the view.
    #[test]
    fn a_change_is_noted_once() {
        let v = view(false, 0.1, 0.05);
        assert!(!v.note(false, "lookup"));
        assert!(v.note(true, "lookup"));
        assert!(!v.note(true, "lookup"));
        assert!(v.note(false, "lookup"));
        assert!(!v.note(false, "lookup"));
    }

    #[test]
    fn foreign_rate_only_when_watched() {
        let on = view(true, 0.1, 0.05);
        let off = view(false, 0.1, 0.05);
        for i in 0..50u64 {
            let foreign = Counted {
                seen: Seen::Foreign,
                established: false,
            };
            on.count(i * S, foreign);
            off.count(i * S, foreign);
        }
        assert!(on.anomalous(50 * S));
        assert!(!off.anomalous(50 * S));
    }
}
