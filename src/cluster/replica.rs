//! This replica as the sync sees it, shared by the task, the inbox and
//! the outbox: its detector and clock, its name, the names and keys of
//! what it shares, and its status.

use std::sync::{Arc, Weak};

use super::seal::Seal;
use super::status::Status;
use super::wire::Names;
use crate::clock::{Nanos, SharedClock};
use crate::detect::Detector;

/// This replica.
pub(super) struct Replica {
    /// The detector; gone when the guard is (the sync then ends).
    core: Weak<Detector>,
    clock: SharedClock,
    /// Its name, in every message and evidence key: what it sent itself
    /// is skipped.
    pub(super) name: String,
    pub(super) names: Names,
    /// The keys of the MACs and of the actors' encryption.
    pub(super) seal: Seal,
    pub(super) status: Arc<Status>,
}

impl Replica {
    pub(super) fn new(
        core: Weak<Detector>,
        clock: SharedClock,
        name: String,
        seal: Seal,
        prefix: &str,
        status: Arc<Status>,
    ) -> Self {
        Self {
            core,
            clock,
            name,
            names: Names::new(prefix, seal.names()),
            seal,
            status,
        }
    }

    /// The detector, while the guard is there.
    pub(super) fn core(&self) -> Option<Arc<Detector>> {
        self.core.upgrade()
    }

    /// Counts a message or value from Redis not applied (see
    /// [`Status::reject`]).
    pub(super) fn reject(&self, why: &'static str) {
        self.status.reject(why);
    }

    /// The guard's clock (nanoseconds).
    pub(super) fn now(&self) -> Nanos {
        self.clock.now()
    }
}
