//! The verdict table: what the detector (or an operator) holds for an
//! actor now. It holds only throttled and blocked actors (expired ones are
//! removed when the gate meets them), so the allow path of a quiet service
//! reads one atomic and no map.
//!
//! Which verdicts a request is subject to is [`covers`], the one rule that
//! both the gate and the table's count of verdicts that can refuse a
//! request matching no probe go by.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use governor::{Quota, RateLimiter, state::InMemoryState, state::NotKeyed};

use super::sweep::Sweep;
use crate::actor::{ActorKey, ActorKind};

type Limiter = RateLimiter<
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
    fn at(&self, now: u64) {
        self.0.fetch_max(now, Ordering::AcqRel);
    }

    /// A throttle's check at `now`.
    fn check_at(
        &self,
        l: &Limiter,
        now: u64,
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

/// The request a verdict is asked about: which probe it matched, and
/// whether it has an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scope {
    /// The probe (its slot) the request matched, if any.
    pub(crate) probe: Option<u8>,
    /// The request has no account.
    pub(crate) anonymous: bool,
}

/// Whether a verdict held for an actor of kind `kind` applies to a request
/// of `scope`. The one place this rule is written:
///
/// - an operator's ban refuses everything;
/// - a verdict that detection put on a *shared* actor (an ip or a subnet:
///   a NAT, an office) applies only to anonymous requests to the probe it
///   was caught on (or to any probe, for a verdict without one): the people
///   behind that address can still log in and use the service, each judged
///   on its own account;
/// - a throttle of a person (session, account) is a reduced quota on the
///   enumerable endpoints (probe requests only); a block refuses everything.
pub(crate) fn covers(
    kind: ActorKind,
    throttle: bool,
    reason: VerdictReason,
    verdict_probe: Option<u8>,
    scope: Scope,
) -> bool {
    if reason == VerdictReason::Manual {
        return true;
    }
    if !kind.is_personal() {
        return scope.anonymous
            && scope.probe.is_some()
            && (verdict_probe.is_none() || verdict_probe == scope.probe);
    }
    !throttle || scope.probe.is_some()
}

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

impl Entry {
    pub(crate) fn is_throttle(&self) -> bool {
        matches!(self.state, State::Throttle(_))
    }
}

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) state: State,
    pub(crate) until: u64,
    pub(crate) reason: VerdictReason,
    pub(crate) strikes: u32,
    pub(crate) probe: Option<u8>,
}

/// Whether a verdict can refuse a request that matches no probe, with an
/// account or without: [`covers`] for such requests. The fast path of a
/// request without a probe skips the gate while no such verdict is live.
fn is_wide(key: &ActorKey, e: &Entry) -> bool {
    let throttle = matches!(e.state, State::Throttle(_));
    [true, false].into_iter().any(|anonymous| {
        covers(
            key.kind(),
            throttle,
            e.reason,
            e.probe,
            Scope {
                probe: None,
                anonymous,
            },
        )
    })
}

/// What the gate found for one actor.
pub(crate) enum Gate {
    Pass,
    Blocked { retry_after: u64, probe: Option<u8> },
    Throttled { retry_after: u64, probe: Option<u8> },
}

pub(crate) struct Table {
    map: DashMap<ActorKey, Entry, ahash::RandomState>,
    len: AtomicUsize,
    /// How many held verdicts can refuse a request that matches no probe
    /// (see [`is_wide`]), kept by every change to the map under the entry's
    /// lock; and the latest end of any of them. While there are none, or
    /// all have ended, such requests need no identification at all.
    wide: AtomicIsize,
    wide_until: AtomicU64,
    cap: usize,
    sweeping: AtomicBool,
    clock: StepClock,
}

impl Table {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            map: DashMap::with_hasher(ahash::RandomState::new()),
            len: AtomicUsize::new(0),
            wide: AtomicIsize::new(0),
            wide_until: AtomicU64::new(0),
            cap,
            sweeping: AtomicBool::new(false),
            clock: StepClock::default(),
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

    /// Whether no held verdict can refuse a request that matches no probe:
    /// none is held, or all have ended (`now` is read only then). The first
    /// call that finds them all ended clears the expired verdicts out (one
    /// pass over the table, by one thread), so the count drops back to zero.
    #[inline]
    pub(crate) fn no_wide(&self, now: impl FnOnce() -> u64) -> bool {
        if self.wide.load(Ordering::Acquire) <= 0 {
            return true;
        }
        let now = now();
        if now < self.wide_until.load(Ordering::Acquire) {
            return false;
        }
        self.clear_ended(now);
        true
    }

    #[cold]
    fn clear_ended(&self, now: u64) {
        if let Some(_sweep) = Sweep::try_begin(&self.sweeping) {
            self.purge_expired(now);
        }
    }

    /// Accounts for a change of `key`'s entry from `old` to `new`.
    fn changed(&self, key: &ActorKey, old: Option<&Entry>, new: Option<&Entry>) {
        let was = old.is_some_and(|e| is_wide(key, e));
        let is = new.is_some_and(|e| is_wide(key, e));
        if let Some(e) = new.filter(|_| is) {
            self.wide_until.fetch_max(e.until, Ordering::AcqRel);
        }
        match (was, is) {
            (false, true) => {
                self.wide.fetch_add(1, Ordering::AcqRel);
            }
            (true, false) => {
                self.wide.fetch_sub(1, Ordering::AcqRel);
            }
            _ => {}
        }
    }

    /// The gate for one actor, for a request of `scope` (see [`covers`]).
    /// Whether the verdict applies is asked before a throttle's quota is
    /// spent, so requests a verdict does not cover never use it up. An
    /// expired verdict found here is removed.
    pub(crate) fn check(&self, key: &ActorKey, now: u64, scope: Scope) -> Gate {
        let expired = {
            let Some(e) = self.map.get(key) else {
                return Gate::Pass;
            };
            if e.until > now {
                let throttle = matches!(e.state, State::Throttle(_));
                if !covers(key.kind(), throttle, e.reason, e.probe, scope) {
                    return Gate::Pass;
                }
                return match &e.state {
                    State::Block => Gate::Blocked {
                        retry_after: e.until - now,
                        probe: e.probe,
                    },
                    State::Throttle(l) => match self.clock.check_at(l, now) {
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
                };
            }
            true
        };
        if expired {
            if let Some((k, e)) = self.map.remove_if(key, |_, e| e.until <= now) {
                self.len.fetch_sub(1, Ordering::Relaxed);
                self.changed(&k, Some(&e), None);
            }
        }
        Gate::Pass
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
            let new = Entry {
                state: State::Block,
                until,
                reason,
                strikes,
                probe,
            };
            // Under the entry's lock, so the count follows the map.
            self.changed(&key, Some(&e), Some(&new));
            *e = new;
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

    /// Throttles `key` until `until` to `quota`, unless it is blocked.
    /// Returns whether this is a new throttle.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn throttle(
        &self,
        key: ActorKey,
        until: u64,
        reason: VerdictReason,
        probe: Option<u8>,
        now: u64,
        quota: Quota,
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
            let new = Entry {
                state: State::Throttle(self.limiter(now, quota)),
                until,
                reason,
                strikes: e.strikes,
                probe,
            };
            self.changed(&key, Some(&e), Some(&new));
            *e = new;
            return true;
        }
        self.insert(
            key,
            Entry {
                state: State::Throttle(self.limiter(now, quota)),
                until,
                reason,
                strikes: 0,
                probe,
            },
            now,
        )
    }

    fn limiter(&self, now: u64, quota: Quota) -> Arc<Limiter> {
        self.clock.at(now);
        Arc::new(RateLimiter::direct_with_clock(quota, self.clock.clone()))
    }

    /// Every verdict still live at `now`.
    pub(crate) fn live(&self, now: u64) -> Vec<(ActorKey, Entry)> {
        self.map
            .iter()
            .filter(|e| e.until > now)
            .map(|e| (*e.key(), e.value().clone()))
            .collect()
    }

    pub(crate) fn remove(&self, key: &ActorKey) -> bool {
        if let Some((k, e)) = self.map.remove(key) {
            self.len.fetch_sub(1, Ordering::Relaxed);
            self.changed(&k, Some(&e), None);
            true
        } else {
            false
        }
    }

    fn insert(&self, key: ActorKey, entry: Entry, now: u64) -> bool {
        if self.len.load(Ordering::Relaxed) >= self.cap {
            self.make_room(now);
        }
        // The count is adjusted under the entry's lock: `entry` holds it
        // while the change is made, then the old value is known.
        let mut slot = self.map.entry(key);
        match &mut slot {
            dashmap::Entry::Occupied(o) => {
                self.changed(&key, Some(o.get()), Some(&entry));
                o.insert(entry);
            }
            dashmap::Entry::Vacant(_) => {
                self.changed(&key, None, Some(&entry));
                slot.or_insert(entry);
                self.len.fetch_add(1, Ordering::Relaxed);
            }
        }
        metrics::gauge!(crate::metrics::VERDICTS_ACTIVE).set(self.len() as f64);
        true
    }

    /// Makes room for one more verdict: drops expired verdicts; if that is
    /// not enough, throttles; then detected blocks, those an attacker can
    /// mint most cheaply first (sessions, then addresses, then accounts,
    /// then subnets), the soonest-ending first. An operator's ban is never
    /// evicted. One thread sweeps at a time; removals are counted exactly.
    fn make_room(&self, now: u64) {
        let Some(_sweep) = Sweep::try_begin(&self.sweeping) else {
            return;
        };
        let mut removed = self.drop_where(|_, e| e.until <= now);
        if self.map.len() >= self.cap {
            removed += self.drop_where(|_, e| matches!(e.state, State::Throttle(_)));
        }
        if self.map.len() >= self.cap {
            let rank = |k: &ActorKey| match k.kind() {
                ActorKind::Session => 0u8,
                ActorKind::Ip => 1,
                ActorKind::Account => 2,
                ActorKind::Subnet => 3,
            };
            let mut order: Vec<(u8, u64)> = self
                .map
                .iter()
                .filter(|e| e.reason != VerdictReason::Manual)
                .map(|e| (rank(e.key()), e.until))
                .collect();
            order.sort_unstable();
            if let Some(&cutoff) = order.get((self.cap / 8).min(order.len().saturating_sub(1))) {
                removed += self.drop_where(|k, e| {
                    e.reason != VerdictReason::Manual && (rank(k), e.until) <= cutoff
                });
            }
        }
        if removed > 0 {
            self.len.fetch_sub(removed, Ordering::Relaxed);
            metrics::counter!(crate::metrics::EVICTIONS).increment(removed as u64);
        }
    }

    /// Drops the verdicts that only ever apply to requests of probe slot
    /// `probe` (address verdicts and throttles caught there): a probe a
    /// reload removed. Returns how many went.
    pub(crate) fn drop_probe(&self, probe: u8) -> usize {
        let removed = self.drop_where(|k, e| e.probe == Some(probe) && !is_wide(k, e));
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Drops expired verdicts (housekeeping).
    pub(crate) fn purge_expired(&self, now: u64) -> usize {
        let removed = self.drop_where(|_, e| e.until <= now);
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Removes the verdicts `gone` picks, keeping the count of those that
    /// can refuse a request without a probe; returns how many went (the
    /// caller adjusts `len`).
    fn drop_where(&self, mut gone: impl FnMut(&ActorKey, &Entry) -> bool) -> usize {
        let mut removed = 0usize;
        self.map.retain(|k, e| {
            if !gone(k, e) {
                return true;
            }
            removed += 1;
            self.changed(k, Some(e), None);
            false
        });
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn table(cap: usize) -> Table {
        Table::new(cap)
    }

    const Q: fn() -> Quota = || Quota::per_minute(NonZeroU32::MIN);

    const ANY: Scope = Scope {
        probe: Some(0),
        anonymous: true,
    };

    /// The fast path of requests without a probe and the gate go by one
    /// rule: a verdict counts as one that can refuse such a request exactly
    /// when the gate would apply it to one, with an account or without.
    #[test]
    fn the_fast_path_and_the_gate_agree() {
        let t = table(64);
        let reasons = [
            VerdictReason::Manual,
            VerdictReason::Detected,
            VerdictReason::Linked,
        ];
        let mut n = 0u128;
        for kind in ActorKind::ALL {
            for reason in reasons {
                for probe in [None, Some(0u8), Some(1)] {
                    for throttle in [false, true] {
                        n += 1;
                        let key = ActorKey::hashed(kind, n);
                        if throttle {
                            t.throttle(key, 100, reason, probe, 1, Q());
                        } else {
                            t.block(key, 100, reason, 1, probe, 1);
                        }
                        let e = t.get(&key).unwrap();
                        let refuses_unprobed = [true, false].into_iter().any(|anonymous| {
                            matches!(
                                t.check(
                                    &key,
                                    2,
                                    Scope {
                                        probe: None,
                                        anonymous
                                    }
                                ),
                                Gate::Blocked { .. } | Gate::Throttled { .. }
                            )
                        });
                        assert_eq!(
                            is_wide(&key, &e),
                            refuses_unprobed,
                            "{kind:?} {reason:?} {probe:?} throttle={throttle}"
                        );
                    }
                }
            }
        }
    }

    fn ip(i: u32) -> ActorKey {
        ActorKey::ip(std::net::Ipv4Addr::from(i).into(), 32, 64, ActorKind::Ip)
    }

    #[test]
    fn a_flood_of_blocks_never_evicts_an_operator_ban() {
        let t = table(16);
        let banned = ip(1);
        assert!(t.block(banned, 10, VerdictReason::Manual, 1, None, 1));
        // The attacker's own first block ends soonest of the detected ones.
        let first = ActorKey::ip("198.51.100.0".parse().unwrap(), 24, 48, ActorKind::Subnet);
        t.block(first, 1_000, VerdictReason::Detected, 1, Some(0), 1);
        for i in 100..400u32 {
            t.block(
                ip(i),
                2_000 + i as u64,
                VerdictReason::Detected,
                1,
                Some(0),
                2,
            );
            assert!(t.len() <= 17, "{}", t.len());
        }
        assert!(matches!(t.verdict(&banned, 5), Verdict::Block { .. }));
        // Subnets are evicted last: the early subnet block survives a flood
        // of address blocks.
        assert!(matches!(t.verdict(&first, 5), Verdict::Block { .. }));
        assert_eq!(t.len(), t.map.len());
    }

    fn recount(t: &Table) -> (isize, u64) {
        let mut n = 0;
        let mut until = 0;
        for e in t.map.iter() {
            if is_wide(e.key(), e.value()) {
                n += 1;
                until = until.max(e.until);
            }
        }
        (n, until)
    }

    proptest::proptest! {
        /// The count of verdicts that can refuse a request without a probe
        /// follows the table through every kind of change, evictions
        /// included, and their latest end is never underestimated: the
        /// no-probe fast path can never skip a live block.
        #[test]
        fn wide_count_follows_the_table(
            ops in proptest::collection::vec((0u8..6, 0u8..4, 0u32..12, 1u64..50), 1..120),
        ) {
            let t = table(8);
            let mut now = 1u64;
            for (op, kind, who, dur) in ops {
                let kind = [ActorKind::Ip, ActorKind::Subnet, ActorKind::Session, ActorKind::Account][kind as usize];
                let key = ActorKey::hashed(kind, who as u128);
                match op {
                    0 => { t.block(key, now + dur, VerdictReason::Detected, 1, Some(0), now); }
                    1 => { t.block(key, now + dur, VerdictReason::Manual, 1, None, now); }
                    2 => { t.throttle(key, now + dur, VerdictReason::Detected, Some(0), now, Q()); }
                    3 => { t.remove(&key); }
                    4 => { t.check(&key, now, ANY); }
                    _ => { now += dur; t.purge_expired(now); }
                }
                let (n, until) = recount(&t);
                proptest::prop_assert_eq!(t.wide.load(Ordering::Relaxed), n);
                proptest::prop_assert!(t.wide_until.load(Ordering::Relaxed) >= until);
                // A live wide verdict always keeps the fast path shut.
                let live = t.map.iter().any(|e| is_wide(e.key(), e.value()) && e.until > now);
                if live {
                    proptest::prop_assert!(!t.no_wide(|| now));
                }
                proptest::prop_assert_eq!(t.len(), t.map.len());
            }
        }
    }

    #[test]
    fn expired_verdicts_leave_when_met() {
        let t = table(16);
        t.block(ip(1), 10, VerdictReason::Detected, 1, None, 1);
        assert!(!t.is_empty());
        assert!(matches!(t.check(&ip(1), 11, ANY), Gate::Pass));
        assert!(t.is_empty());
    }
}
