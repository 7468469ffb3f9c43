//! The guard's own time per request, sampled, as the histogram
//! [`GUARD_SECONDS`](crate::metrics::GUARD_SECONDS): what the guard spent
//! before the inner service and after its answer (the inner service's
//! time excluded), for requests it takes apart (a probe request, or any
//! request while a verdict or a list needs it). The fast path of a request
//! no probe concerns is not timed.
//!
//! One such request in [`SAMPLE_EVERY`] per thread is timed: two or three
//! clock reads on a sampled request, a thread-local count on the others
//! (a fraction of a percent of the probe path; see BENCHMARKS.md).

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One request in this many (of those the guard takes apart, per thread)
/// is timed.
pub(crate) const SAMPLE_EVERY: u32 = 64;

thread_local! {
    static TICK: Cell<u32> = const { Cell::new(0) };
}

/// The start of a request the guard takes apart, if it is sampled.
#[inline]
pub(crate) fn start() -> Option<Instant> {
    TICK.with(|t| {
        let n = t.get().wrapping_add(1);
        t.set(n);
        (n % SAMPLE_EVERY == 0).then(Instant::now)
    })
}

/// The histogram's handle, registered at its first sample.
#[derive(Default)]
pub(crate) struct Timing(OnceLock<metrics::Histogram>);

impl Timing {
    /// Records a sampled request's time in the guard.
    pub(crate) fn record(&self, spent: Duration) {
        self.0
            .get_or_init(|| metrics::histogram!(crate::metrics::GUARD_SECONDS))
            .record(spent.as_secs_f64());
    }

    /// Records the time since `start`, for a request the guard is done with
    /// before the inner service (passed on untracked, or refused).
    #[inline]
    pub(crate) fn done(&self, start: Option<Instant>) {
        if let Some(t) = start {
            self.record(t.elapsed());
        }
    }
}
