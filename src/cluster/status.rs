//! What the handle reads of the sync (degraded, changes dropped), and the
//! counts it keeps in metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::metrics::{
    CLUSTER_DEGRADED as DEGRADED, CLUSTER_DROPPED as DROPPED, CLUSTER_REJECTED as REJECTED,
};

/// What the handle can read of the sync.
#[derive(Debug, Default)]
pub(crate) struct Status {
    degraded: AtomicBool,
    dropped: AtomicU64,
}

impl Status {
    pub(crate) fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Counts a change or notice dropped: the task's channel was full.
    pub(super) fn drop_one(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(DROPPED).increment(1);
    }

    /// Counts a message or value from Redis not applied (see [`REJECTED`]).
    pub(super) fn reject(&self, why: &'static str) {
        metrics::counter!(REJECTED, "reason" => why).increment(1);
    }

    pub(super) fn set_degraded(&self, on: bool) {
        self.degraded.store(on, Ordering::Relaxed);
        metrics::gauge!(DEGRADED).set(if on { 1.0 } else { 0.0 });
    }
}
