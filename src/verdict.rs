//! The verdict table: what the policy (or an operator) holds for an actor
//! now. It holds only throttled and blocked actors, so the allow path of a
//! quiet service reads one atomic and no map.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use governor::{Quota, RateLimiter, state::InMemoryState, state::NotKeyed};

use crate::actor::ActorKey;
use crate::clock::SharedClock;

type Limiter = RateLimiter<
    NotKeyed,
    InMemoryState,
    SharedClock,
    governor::middleware::NoOpMiddleware<governor::nanos::Nanos>,
>;

/// Why an actor has its verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerdictReason {
    /// An operator called [`GuardHandle::ban`](crate::GuardHandle::ban).
    Manual,
    /// Its own signals crossed a threshold.
    Detected,
    /// A linked actor (same request) was blocked, and the suspicion it
    /// carried over crossed a threshold.
    Linked,
}

impl VerdictReason {
    /// The lower-case name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictReason::Manual => "manual",
            VerdictReason::Detected => "detected",
            VerdictReason::Linked => "linked",
        }
    }
}

/// What the guard holds for an actor now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Requests pass.
    Allow,
    /// Requests pass within a reduced quota; over it, 429 with `Retry-After`.
    Throttle {
        /// Time left.
        remaining: Duration,
        /// Why.
        reason: VerdictReason,
    },
    /// Requests are refused.
    Block {
        /// Time left.
        remaining: Duration,
        /// Why.
        reason: VerdictReason,
        /// How many times this actor has been blocked (1 for the first).
        strikes: u32,
    },
}

#[derive(Clone)]
pub(crate) enum State {
    Throttle(Arc<Limiter>),
    Block,
}

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) state: State,
    pub(crate) until: u64,
    pub(crate) reason: VerdictReason,
    pub(crate) strikes: u32,
    pub(crate) probe: Option<u8>,
}

/// What the gate found for one actor.
pub(crate) enum Gate {
    Pass,
    Blocked {
        retry_after: u64,
        probe: Option<u8>,
        manual: bool,
    },
    Throttled {
        retry_after: u64,
        probe: Option<u8>,
    },
}

pub(crate) struct Table {
    map: DashMap<ActorKey, Entry, ahash::RandomState>,
    len: AtomicUsize,
    cap: usize,
    quota: Quota,
    clock: SharedClock,
}

impl Table {
    pub(crate) fn new(cap: usize, quota: Quota, clock: SharedClock) -> Self {
        Self {
            map: DashMap::with_hasher(ahash::RandomState::new()),
            len: AtomicUsize::new(0),
            cap,
            quota,
            clock,
        }
    }

    /// No verdicts at all: the gate has nothing to look up.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub(crate) fn check(&self, key: &ActorKey, now: u64) -> Gate {
        let Some(e) = self.map.get(key) else {
            return Gate::Pass;
        };
        if e.until <= now {
            return Gate::Pass;
        }
        match &e.state {
            State::Block => Gate::Blocked {
                retry_after: e.until - now,
                probe: e.probe,
                manual: e.reason == VerdictReason::Manual,
            },
            State::Throttle(l) => match l.check() {
                Ok(()) => Gate::Pass,
                Err(not_until) => {
                    let wait = not_until
                        .wait_time_from(governor::nanos::Nanos::from(now))
                        .as_nanos() as u64;
                    Gate::Throttled {
                        retry_after: wait.max(1),
                        probe: e.probe,
                    }
                }
            },
        }
    }

    pub(crate) fn get(&self, key: &ActorKey) -> Option<Entry> {
        self.map.get(key).map(|e| e.clone())
    }

    /// The verdict as the public API shows it.
    pub(crate) fn verdict(&self, key: &ActorKey, now: u64) -> Verdict {
        match self.map.get(key) {
            Some(e) if e.until > now => {
                let remaining = Duration::from_nanos(e.until - now);
                match e.state {
                    State::Block => Verdict::Block {
                        remaining,
                        reason: e.reason,
                        strikes: e.strikes,
                    },
                    State::Throttle(_) => Verdict::Throttle {
                        remaining,
                        reason: e.reason,
                    },
                }
            }
            _ => Verdict::Allow,
        }
    }

    /// Blocks `key` until `until`. Returns false if it was already blocked
    /// at least that long.
    pub(crate) fn block(
        &self,
        key: ActorKey,
        until: u64,
        reason: VerdictReason,
        strikes: u32,
        probe: Option<u8>,
        now: u64,
    ) -> bool {
        if let Some(mut e) = self.map.get_mut(&key) {
            if matches!(e.state, State::Block) && e.until >= until {
                return false;
            }
            *e = Entry {
                state: State::Block,
                until,
                reason,
                strikes,
                probe,
            };
            return true;
        }
        self.insert(
            key,
            Entry {
                state: State::Block,
                until,
                reason,
                strikes,
                probe,
            },
            now,
        )
    }

    /// Throttles `key` until `until`, unless it is blocked. Returns whether
    /// this is a new throttle.
    pub(crate) fn throttle(
        &self,
        key: ActorKey,
        until: u64,
        reason: VerdictReason,
        probe: Option<u8>,
        now: u64,
    ) -> bool {
        if let Some(mut e) = self.map.get_mut(&key) {
            if e.until > now {
                // Keep the limiter (and its state); extend a live throttle,
                // leave a live block alone.
                if matches!(e.state, State::Throttle(_)) {
                    e.until = e.until.max(until);
                }
                return false;
            }
            e.state = State::Throttle(Arc::new(RateLimiter::direct_with_clock(
                self.quota,
                self.clock.clone(),
            )));
            e.until = until;
            e.reason = reason;
            e.probe = probe;
            return true;
        }
        self.insert(
            key,
            Entry {
                state: State::Throttle(Arc::new(RateLimiter::direct_with_clock(
                    self.quota,
                    self.clock.clone(),
                ))),
                until,
                reason,
                strikes: 0,
                probe,
            },
            now,
        )
    }

    pub(crate) fn remove(&self, key: &ActorKey) -> bool {
        if self.map.remove(key).is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    fn insert(&self, key: ActorKey, entry: Entry, now: u64) -> bool {
        if self.len.load(Ordering::Relaxed) >= self.cap {
            self.make_room(now);
        }
        if self.map.insert(key, entry).is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        metrics::gauge!(crate::metrics::VERDICTS_ACTIVE).set(self.len() as f64);
        true
    }

    /// Drops expired verdicts; if that is not enough, throttles, then the
    /// blocks that end soonest.
    fn make_room(&self, now: u64) {
        let before = self.map.len();
        self.map.retain(|_, e| e.until > now);
        if self.map.len() >= self.cap {
            self.map.retain(|_, e| matches!(e.state, State::Block));
        }
        if self.map.len() >= self.cap {
            let mut untils: Vec<u64> = self.map.iter().map(|e| e.until).collect();
            untils.sort_unstable();
            let cutoff = untils[(self.cap / 8).min(untils.len() - 1)];
            self.map.retain(|_, e| e.until > cutoff);
        }
        let after = self.map.len();
        self.len.store(after, Ordering::Relaxed);
        if before > after {
            metrics::counter!(crate::metrics::EVICTIONS).increment((before - after) as u64);
        }
    }

    /// Drops expired verdicts (housekeeping).
    pub(crate) fn purge_expired(&self, now: u64) -> usize {
        let before = self.map.len();
        self.map.retain(|_, e| e.until > now);
        let after = self.map.len();
        self.len.store(after, Ordering::Relaxed);
        before - after
    }
}
