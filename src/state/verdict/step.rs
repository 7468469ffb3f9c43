//! The throttles' rate limiter (governor's, not keyed) and the clock it
//! reads: the time the table was last told.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::{RateLimiter, state::InMemoryState, state::NotKeyed};

use crate::clock::Nanos;

pub(super) type Limiter = RateLimiter<
    NotKeyed,
    InMemoryState,
    StepClock,
    governor::middleware::NoOpMiddleware<governor::nanos::Nanos>,
>;

/// The throttles' clock: the latest time the table was told (the detector
/// is sans-IO: time comes with each request, never from a clock of its
/// own). Only throttle checks move it, so the hot path writes no shared
/// line.
#[derive(Clone, Default)]
pub(crate) struct StepClock(Arc<AtomicU64>);

impl StepClock {
    pub(super) fn at(&self, now: Nanos) {
        self.0.fetch_max(now.get(), Ordering::AcqRel);
    }

    /// A throttle's check at `now`.
    pub(super) fn check_at(
        &self,
        l: &Limiter,
        now: Nanos,
    ) -> Result<(), governor::NotUntil<governor::nanos::Nanos>> {
        self.at(now);
        l.check()
    }
}

impl governor::clock::Clock for StepClock {
    type Instant = governor::nanos::Nanos;

    fn now(&self) -> Self::Instant {
        governor::nanos::Nanos::from(self.0.load(Ordering::Acquire))
    }
}
