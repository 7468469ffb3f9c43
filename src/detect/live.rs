//! The live state of each probe slot, owned by the [`Detector`](super::Detector)
//! apart from the policy: the service-wide view, the novelty filter, what
//! the application showed of the probe, the per-probe counters. A request
//! reaches it by its probe's slot (one index, where the policy's probe once
//! held an `Arc`); a reload keeps it for each probe that keeps its name,
//! and starts it over for a slot that goes to another probe.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use metrics::Counter;

use super::novelty::Novelty;
use super::policy::Policy;
use super::probes::Probe;
use super::view::View;
use crate::clock::Span;
use crate::config::MAX_PROBES;

/// Requests a thread counts before it adds them to the detector's count.
const UNMATCHED_CHECK_EVERY: u32 = 4096;
/// Requests after which a probe that matched none is warned about (then
/// after four times as many, and so on: a rate-limited warning).
const UNMATCHED_WARN_AFTER: u64 = 16_384;

thread_local! {
    static SEEN: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// What one probe slot keeps across reloads.
pub(crate) struct ProbeLive {
    pub(crate) view: View,
    /// The application has reported an [`Owner`](crate::Owner) in a
    /// response: ownership is known only after the handler.
    pub(crate) owner_reported: AtomicBool,
    /// A request has matched the probe (for the warning about probes that
    /// match nothing).
    pub(crate) matched: AtomicBool,
    /// An anonymous request was answered with a hit or a miss: the probe
    /// needs no login, so its addresses' verdicts hold every request.
    pub(crate) answers_anonymous: AtomicBool,
    /// Which targets were asked for recently (identities probes, made on
    /// first use: see `novelty.rs`).
    novelty: OnceLock<Novelty>,
    /// The probe's outcome counters (hit, miss, denied, other), registered
    /// on first use under the name they were made for (see
    /// [`metrics`](crate::metrics)): handles, so that no key is built or
    /// looked up per request.
    outcomes: OnceLock<(Arc<str>, [Counter; 4])>,
}

impl ProbeLive {
    fn new() -> Self {
        Self {
            view: View::new(0.0, 0.0),
            owner_reported: AtomicBool::new(false),
            matched: AtomicBool::new(false),
            answers_anonymous: AtomicBool::new(false),
            novelty: OnceLock::new(),
            outcomes: OnceLock::new(),
        }
    }

    /// The slot's novelty filter, with generations of `period` (made on
    /// first use; a reload keeps the first period).
    pub(crate) fn novelty(&self, period: Span) -> &Novelty {
        self.novelty.get_or_init(|| Novelty::new(period))
    }

    /// Notes a flag once: a load, and a store only the first time (no
    /// shared line written per request).
    pub(crate) fn note(flag: &AtomicBool) {
        if !flag.load(Ordering::Relaxed) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Counts an answer of `probe` (0 hit, 1 miss, 2 denied, 3 other).
    #[inline]
    pub(crate) fn count_outcome(&self, probe: &Probe, i: usize) {
        let (name, counters) = self
            .outcomes
            .get_or_init(|| (probe.name.clone(), outcome_counters(&probe.name)));
        if *name == probe.name {
            counters[i].increment(1);
        } else {
            // The slot went to another probe after every slot had been
            // used (255 probe names in the detector's life): its counters
            // are looked up per answer.
            outcome_counters(&probe.name)[i].increment(1);
        }
    }

    /// Starts the slot over for `probe`, which did not have it before.
    fn restart(&self, probe: &Probe) {
        let t = &probe.thresholds;
        self.view
            .restart(t.baseline_miss_ratio, t.baseline_foreign_ratio);
        for flag in [&self.owner_reported, &self.matched, &self.answers_anonymous] {
            flag.store(false, Ordering::Relaxed);
        }
        if let Some(n) = self.novelty.get() {
            n.restart(probe.long);
        }
    }
}

fn outcome_counters(probe: &str) -> [Counter; 4] {
    ["hit", "miss", "denied", "other"].map(|o| {
        metrics::counter!(crate::metrics::PROBE_REQUESTS, "probe" => probe.to_owned(), "outcome" => o)
    })
}

/// The live state of every slot, and the detector-wide counters.
pub(crate) struct Live {
    slots: Box<[ProbeLive]>,
    /// Every request that reached the guard (registered on first use).
    requests: OnceLock<Counter>,
    /// Requests counted for the unmatched-probe warning, and when the next
    /// warning is due.
    seen: AtomicU64,
    next_warning: AtomicU64,
}

impl Live {
    pub(crate) fn new() -> Self {
        Self {
            slots: (0..MAX_PROBES).map(|_| ProbeLive::new()).collect(),
            requests: OnceLock::new(),
            seen: AtomicU64::new(0),
            next_warning: AtomicU64::new(UNMATCHED_WARN_AFTER),
        }
    }

    /// The live state of probe slot `slot`.
    #[inline]
    pub(crate) fn of(&self, slot: u8) -> &ProbeLive {
        &self.slots[usize::from(slot)]
    }

    /// Readies the slots of `new` before it is swapped in: a probe that
    /// keeps its name keeps its slot's state (its view started over, from
    /// what it learned, if the view's settings changed); a slot that goes
    /// to another probe starts over with that probe's priors.
    pub(crate) fn adopt(&self, old: Option<&Policy>, new: &Policy) {
        for p in &new.probes {
            let live = self.of(p.slot);
            let kept = old.and_then(|o| o.probes.iter().find(|q| q.slot == p.slot));
            match kept {
                Some(q) if q.name == p.name => {
                    if q.view != p.view {
                        let (miss, foreign) = live.view.baselines();
                        live.view.restart(miss, foreign);
                    }
                }
                _ => live.restart(p),
            }
        }
    }

    /// The counter of requests that reached the guard.
    #[inline]
    pub(crate) fn requests(&self) -> &Counter {
        self.requests
            .get_or_init(|| metrics::counter!(crate::metrics::REQUESTS))
    }

    /// Counts a request that reached the guard, for the warning about
    /// probes that match none: a per-thread count, added to the detector's
    /// own every [`UNMATCHED_CHECK_EVERY`] requests (no shared line written
    /// per request).
    #[inline]
    pub(crate) fn note_request(&self, policy: &Policy) {
        if policy.probes.is_empty() {
            return;
        }
        SEEN.with(|c| {
            let n = c.get() + 1;
            if n >= UNMATCHED_CHECK_EVERY {
                c.set(0);
                self.check_unmatched(policy, u64::from(n));
            } else {
                c.set(n);
            }
        });
    }

    #[cold]
    fn check_unmatched(&self, policy: &Policy, n: u64) {
        let seen = self.seen.fetch_add(n, Ordering::Relaxed) + n;
        let next = self.next_warning.load(Ordering::Relaxed);
        if seen < next
            || self
                .next_warning
                .compare_exchange(
                    next,
                    next.saturating_mul(4),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        for p in &policy.probes {
            if !self.of(p.slot).matched.load(Ordering::Relaxed) {
                tracing::warn!(
                    target: "enumguard",
                    probe = %p.name,
                    path = %p.pattern(),
                    requests = seen,
                    "enumguard probe has matched none of the requests that reached the guard: \
                     check its method and path against the service's routes"
                );
            }
        }
    }
}
