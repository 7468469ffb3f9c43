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
use governor::{Quota, RateLimiter};

use super::sweep::Sweep;
use crate::actor::{ActorKey, ActorKind};
use crate::clock::{Nanos, Span};

mod room;
mod step;

use step::{Limiter, StepClock};

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
///   probe it was caught on (on every probe, for a throttle without one);
///   a block refuses everything.
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
    !throttle
        || (scope.probe.is_some() && (verdict_probe.is_none() || verdict_probe == scope.probe))
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
    pub(crate) until: Nanos,
    pub(crate) reason: VerdictReason,
    pub(crate) strikes: u32,
    pub(crate) probe: Option<u8>,
    /// An operator's words on a ban (see [`Table::set_note`]): kept with
    /// the entry, so it goes when the ban does. A thin pointer (8 bytes in
    /// every entry, where an `Arc<str>` would take 16).
    pub(crate) note: Option<Arc<String>>,
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

/// How much of an actor's traffic a block refuses, for merging two blocks
/// of one actor (see [`covers`]): an operator's ban refuses everything and
/// is never evicted (3); a detected block of a person refuses everything
/// (2); of an address, anonymous requests to any probe (1) or to one
/// probe (0).
fn breadth(kind: ActorKind, e: &Entry) -> u8 {
    if e.reason == VerdictReason::Manual {
        3
    } else if kind.is_personal() {
        2
    } else if e.probe.is_none() {
        1
    } else {
        0
    }
}

/// Whether block `a` refuses every request block `b` refuses.
fn contains(kind: ActorKind, a: &Entry, b: &Entry) -> bool {
    let (x, y) = (breadth(kind, a), breadth(kind, b));
    x > y || (x == y && (x != 0 || a.probe == b.probe))
}

/// A new block `new` of an actor of kind `kind` that holds the live block
/// or throttle `old`: what the entry becomes (`None`: it stays). By scope
/// first, then by end:
/// - over a throttle, the block;
/// - the broader block wins whatever its end: an operator's one-hour ban
///   of an address that holds a four-hour detected block of one probe
///   refuses everything for that hour (the rest of the narrower block is
///   not kept: detection finds the address again, with its strikes);
/// - where both refuse the same requests (the same scope, or a ban and a
///   detected block of a person, which both refuse everything), the later
///   end, kept by the broader one: a detected block (a remote one
///   included) never turns a ban into an evictable detected block;
/// - two blocks of an address on different probes: the later end.
///
/// Strikes never go down.
fn merge_block(kind: ActorKind, old: &Entry, new: Entry) -> Option<Entry> {
    if old.is_throttle() {
        return Some(new);
    }
    let strikes = new.strikes.max(old.strikes);
    let (wider, narrower) = (contains(kind, &new, old), contains(kind, old, &new));
    // Both refuse everything (a person's blocks) or exactly the same.
    let same_effect = (wider && narrower) || (kind.is_personal() && (wider || narrower));
    if same_effect {
        // A strictly wider block (a ban over a person's detected block)
        // takes over; otherwise only a later end changes anything.
        let takes_over = wider && !narrower;
        if !takes_over && new.until <= old.until {
            return None;
        }
        let until = new.until.max(old.until);
        let keep = if wider { new } else { old.clone() };
        return Some(Entry {
            until,
            strikes,
            ..keep
        });
    }
    if wider || (!narrower && new.until > old.until) {
        return Some(Entry { strikes, ..new });
    }
    None
}

/// What the gate found for one actor.
pub(crate) enum Gate {
    Pass,
    Blocked {
        retry_after: Span,
        probe: Option<u8>,
    },
    Throttled {
        retry_after: Span,
        probe: Option<u8>,
    },
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
    /// New verdicts that find the table full and sweep nothing, after a
    /// sweep that found nothing to evict.
    cooldown: AtomicUsize,
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
            cooldown: AtomicUsize::new(0),
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
    pub(crate) fn no_wide(&self, now: impl FnOnce() -> Nanos) -> bool {
        if self.wide.load(Ordering::Acquire) <= 0 {
            return true;
        }
        let now = now();
        if now < Nanos::new(self.wide_until.load(Ordering::Acquire)) {
            return false;
        }
        self.clear_ended(now);
        true
    }

    #[cold]
    fn clear_ended(&self, now: Nanos) {
        if let Some(_sweep) = Sweep::try_begin(&self.sweeping) {
            self.purge_expired(now);
        }
    }

    /// Accounts for a change of `key`'s entry from `old` to `new`.
    fn changed(&self, key: &ActorKey, old: Option<&Entry>, new: Option<&Entry>) {
        let was = old.is_some_and(|e| is_wide(key, e));
        let is = new.is_some_and(|e| is_wide(key, e));
        if let Some(e) = new.filter(|_| is) {
            self.wide_until.fetch_max(e.until.get(), Ordering::AcqRel);
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
    pub(crate) fn check(&self, key: &ActorKey, now: Nanos, scope: Scope) -> Gate {
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
                                .wait_time_from(governor::nanos::Nanos::from(now.get()))
                                .as_nanos() as u64;
                            Gate::Throttled {
                                retry_after: Span::new(wait.max(1)),
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
    pub(crate) fn verdict(&self, key: &ActorKey, now: Nanos) -> Verdict {
        match self.map.get(key) {
            Some(e) if e.until > now => {
                let remaining = (e.until - now).as_duration();
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

    /// Blocks `key` until `until`, merged with the verdict it holds by
    /// scope, then by end (see [`merge_block`]): a broader block (an
    /// operator's ban over a detected address block) takes effect even if
    /// the narrower one ends later; a narrower one (a detected or remote
    /// block over a ban) never replaces a broader one. Returns whether the
    /// verdict changed.
    pub(crate) fn block(
        &self,
        key: ActorKey,
        until: Nanos,
        reason: VerdictReason,
        strikes: u32,
        probe: Option<u8>,
        now: Nanos,
    ) -> bool {
        let new = Entry {
            state: State::Block,
            until,
            reason,
            strikes,
            probe,
            note: None,
        };
        self.upsert(key, now, |old| match old {
            Some(e) if e.until > now => merge_block(key.kind(), e, new),
            _ => Some(new),
        })
    }

    /// Blocks `key` unless it holds a live block already (of any scope),
    /// checked and set under the entry's lock: of concurrent requests that
    /// cross a threshold together, exactly one starts the block (and adds
    /// the strike). `Err` holds the end of the block it already had.
    pub(crate) fn block_new(
        &self,
        key: ActorKey,
        until: Nanos,
        reason: VerdictReason,
        strikes: u32,
        probe: Option<u8>,
        now: Nanos,
    ) -> Result<(), Nanos> {
        let mut held = None;
        self.upsert(key, now, |old| match old {
            Some(e) if e.until > now && !e.is_throttle() => {
                held = Some(e.until);
                None
            }
            _ => Some(Entry {
                state: State::Block,
                until,
                reason,
                strikes,
                probe,
                note: None,
            }),
        });
        held.map_or(Ok(()), Err)
    }

    /// Throttles `key` until `until` to `quota`, unless it is blocked.
    /// Returns whether this is a new throttle.
    pub(crate) fn throttle(
        &self,
        key: ActorKey,
        until: Nanos,
        reason: VerdictReason,
        probe: Option<u8>,
        now: Nanos,
        quota: Quota,
    ) -> bool {
        let mut fresh = false;
        self.upsert(key, now, |old| match old {
            // Keep the limiter (and its state); extend a live throttle
            // (its new end counted like any change, so that the fast path
            // of requests without a probe sees it), leave a live block
            // alone.
            Some(e) if e.until > now => {
                (e.is_throttle() && until > e.until).then(|| Entry { until, ..e.clone() })
            }
            old => {
                fresh = true;
                Some(Entry {
                    state: State::Throttle(self.limiter(now, quota)),
                    until,
                    reason,
                    strikes: old.map_or(0, |e| e.strikes),
                    probe,
                    note: None,
                })
            }
        });
        fresh
    }

    fn limiter(&self, now: Nanos, quota: Quota) -> Arc<Limiter> {
        self.clock.at(now);
        Arc::new(RateLimiter::direct_with_clock(quota, self.clock.clone()))
    }

    /// Keeps `note` with `key`'s verdict if it is a live operator's ban
    /// (the note goes with the entry: when the ban is lifted, ends or is
    /// replaced by another verdict). Returns whether it was kept.
    pub(crate) fn set_note(&self, key: &ActorKey, note: Arc<String>, now: Nanos) -> bool {
        match self.map.get_mut(key) {
            Some(mut e) if e.until > now && e.reason == VerdictReason::Manual => {
                e.note = Some(note);
                true
            }
            _ => false,
        }
    }

    /// The note kept with `key`'s verdict, if any.
    pub(crate) fn note(&self, key: &ActorKey) -> Option<Arc<String>> {
        self.map.get(key).and_then(|e| e.note.clone())
    }

    /// Every verdict still live at `now`.
    pub(crate) fn live(&self, now: Nanos) -> Vec<(ActorKey, Entry)> {
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

    /// Changes `key`'s entry to what `decide` makes of the current one
    /// (`None`: leave it), under the entry's lock, so that the count of
    /// wide verdicts and their latest end follow every change (an extended
    /// end included). Makes room first if the key is new and the table is
    /// full. Returns whether the entry changed.
    fn upsert(
        &self,
        key: ActorKey,
        now: Nanos,
        decide: impl FnOnce(Option<&Entry>) -> Option<Entry>,
    ) -> bool {
        if self.len.load(Ordering::Relaxed) >= self.cap && !self.map.contains_key(&key) {
            self.make_room(now);
        }
        let mut slot = self.map.entry(key);
        let inserted = match &mut slot {
            dashmap::Entry::Occupied(o) => {
                let Some(new) = decide(Some(o.get())) else {
                    return false;
                };
                self.changed(&key, Some(o.get()), Some(&new));
                o.insert(new);
                false
            }
            dashmap::Entry::Vacant(_) => {
                let Some(new) = decide(None) else {
                    return false;
                };
                self.changed(&key, None, Some(&new));
                slot.or_insert(new);
                self.len.fetch_add(1, Ordering::Relaxed);
                true
            }
        };
        if inserted {
            metrics::gauge!(crate::metrics::VERDICTS_ACTIVE).set(self.len() as f64);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(nanos: u64) -> Nanos {
        Nanos::new(nanos)
    }
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
                            t.throttle(key, at(100), reason, probe, at(1), Q());
                        } else {
                            t.block(key, at(100), reason, 1, probe, at(1));
                        }
                        let e = t.get(&key).unwrap();
                        let refuses_unprobed = [true, false].into_iter().any(|anonymous| {
                            matches!(
                                t.check(
                                    &key,
                                    at(2),
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
        assert!(t.block(banned, at(10), VerdictReason::Manual, 1, None, at(1)));
        // The attacker's own first block ends soonest of the detected ones.
        let first = ActorKey::ip("198.51.100.0".parse().unwrap(), 24, 48, ActorKind::Subnet);
        t.block(first, at(1_000), VerdictReason::Detected, 1, Some(0), at(1));
        for i in 100..400u32 {
            t.block(
                ip(i),
                at(2_000 + i as u64),
                VerdictReason::Detected,
                1,
                Some(0),
                at(2),
            );
            assert!(t.len() <= 17, "{}", t.len());
        }
        assert!(matches!(t.verdict(&banned, at(5)), Verdict::Block { .. }));
        // Subnets are evicted last: the early subnet block survives a flood
        // of address blocks.
        assert!(matches!(t.verdict(&first, at(5)), Verdict::Block { .. }));
        assert_eq!(t.len(), t.map.len());
    }

    fn recount(t: &Table) -> (isize, u64) {
        let mut n = 0;
        let mut until = 0;
        for e in t.map.iter() {
            if is_wide(e.key(), e.value()) {
                n += 1;
                until = until.max(e.until.get());
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
                    0 => { t.block(key, at(now + dur), VerdictReason::Detected, 1, Some(0), at(now)); }
                    1 => { t.block(key, at(now + dur), VerdictReason::Manual, 1, None, at(now)); }
                    2 => { t.throttle(key, at(now + dur), VerdictReason::Detected, Some(0), at(now), Q()); }
                    3 => { t.remove(&key); }
                    4 => { t.check(&key, at(now), ANY); }
                    _ => { now += dur; t.purge_expired(at(now)); }
                }
                let (n, until) = recount(&t);
                proptest::prop_assert_eq!(t.wide.load(Ordering::Relaxed), n);
                proptest::prop_assert!(t.wide_until.load(Ordering::Relaxed) >= until);
                // A live wide verdict always keeps the fast path shut.
                let live = t.map.iter().any(|e| is_wide(e.key(), e.value()) && e.until > at(now));
                if live {
                    proptest::prop_assert!(!t.no_wide(|| at(now)));
                }
                proptest::prop_assert_eq!(t.len(), t.map.len());
            }
        }
    }

    #[test]
    fn expired_verdicts_leave_when_met() {
        let t = table(16);
        t.block(ip(1), at(10), VerdictReason::Detected, 1, None, at(1));
        assert!(!t.is_empty());
        assert!(matches!(t.check(&ip(1), at(11), ANY), Gate::Pass));
        assert!(t.is_empty());
    }

    /// Extending a live throttle that can refuse requests without a probe
    /// (a ban-like throttle) moves the fast path's end with it: past the
    /// first end, requests without a probe still meet the gate.
    #[test]
    fn extending_a_wide_throttle_keeps_the_fast_path_shut() {
        let t = table(16);
        let key = ip(9);
        assert!(t.throttle(key, at(100), VerdictReason::Manual, None, at(1), Q()));
        assert!(!t.no_wide(|| at(50)));
        // Extended at 50 to 300: not a new throttle.
        assert!(!t.throttle(key, at(300), VerdictReason::Manual, None, at(50), Q()));
        assert!(
            !t.no_wide(|| at(150)),
            "the fast path skipped a live throttle"
        );
        assert!(matches!(t.verdict(&key, at(150)), Verdict::Throttle { .. }));
        assert!(t.no_wide(|| at(300)));
    }

    fn detected_probe_block(t: &Table, key: ActorKey, until: u64) {
        assert!(t.block(key, at(until), VerdictReason::Detected, 1, Some(0), at(1)));
    }

    const H: u64 = 3_600_000_000_000;

    /// An operator's ban is broader than a detected block of an address
    /// (one probe, anonymous requests): it takes effect even when the
    /// detected block ends later.
    #[test]
    fn a_ban_over_a_longer_narrower_block_takes_effect() {
        let t = table(16);
        let key = ip(1);
        detected_probe_block(&t, key, 4 * H);
        assert!(t.block(key, at(H), VerdictReason::Manual, 1, None, at(2)));
        let with_account = Scope {
            probe: Some(0),
            anonymous: false,
        };
        let other_probe = Scope {
            probe: Some(1),
            anonymous: true,
        };
        let no_probe = Scope {
            probe: None,
            anonymous: false,
        };
        for scope in [with_account, other_probe, no_probe, ANY] {
            assert!(
                matches!(t.check(&key, at(10), scope), Gate::Blocked { .. }),
                "{scope:?}"
            );
        }
        assert!(!t.no_wide(|| at(10)), "a ban shuts the fast path");
        assert!(matches!(
            t.verdict(&key, at(10)),
            Verdict::Block {
                reason: VerdictReason::Manual,
                ..
            }
        ));
    }

    /// A detected block (from another replica, say) never replaces a ban,
    /// however long it is; of a person, whose detected block refuses
    /// everything too, it makes the ban last as long, still a ban.
    #[test]
    fn a_detected_block_never_replaces_a_ban() {
        let t = table(16);
        let addr = ip(2);
        assert!(t.block(addr, at(H), VerdictReason::Manual, 1, None, at(1)));
        assert!(!t.block(addr, at(4 * H), VerdictReason::Detected, 3, Some(0), at(2)));
        assert!(!t.block(addr, at(4 * H), VerdictReason::Detected, 3, None, at(2)));
        assert!(matches!(
            t.verdict(&addr, at(2)),
            Verdict::Block {
                reason: VerdictReason::Manual,
                remaining,
                ..
            } if remaining.as_nanos() == u128::from(H - 2)
        ));
        let account = ActorKey::hashed(ActorKind::Account, 77);
        assert!(t.block(account, at(H), VerdictReason::Manual, 1, None, at(1)));
        assert!(t.block(
            account,
            at(4 * H),
            VerdictReason::Detected,
            2,
            Some(0),
            at(2)
        ));
        assert_eq!(
            t.verdict(&account, at(2)),
            Verdict::Block {
                remaining: Duration::from_nanos(4 * H - 2),
                reason: VerdictReason::Manual,
                strikes: 2
            }
        );
        // And a ban of a person over a longer detected block: the ban,
        // for the later end.
        let session = ActorKey::hashed(ActorKind::Session, 78);
        t.block(
            session,
            at(4 * H),
            VerdictReason::Detected,
            1,
            Some(0),
            at(1),
        );
        assert!(t.block(session, at(H), VerdictReason::Manual, 1, None, at(2)));
        assert!(matches!(
            t.verdict(&session, at(2)),
            Verdict::Block {
                reason: VerdictReason::Manual,
                remaining,
                ..
            } if remaining.as_nanos() == u128::from(4 * H - 2)
        ));
        // Same scope: the later end; a shorter ban changes nothing.
        assert!(!t.block(addr, at(H / 2), VerdictReason::Manual, 1, None, at(3)));
        assert!(t.block(addr, at(2 * H), VerdictReason::Manual, 1, None, at(3)));
        // A broader detected block of an address (every probe) over a
        // narrower one (one probe), and two probes: the later end.
        let other = ip(3);
        detected_probe_block(&t, other, 4 * H);
        assert!(t.block(other, at(H), VerdictReason::Detected, 1, None, at(2)));
        assert_eq!(t.get(&other).unwrap().probe, None);
        let third = ip(4);
        detected_probe_block(&t, third, 2 * H);
        assert!(!t.block(third, at(H), VerdictReason::Detected, 1, Some(1), at(2)));
        assert!(t.block(third, at(3 * H), VerdictReason::Detected, 1, Some(1), at(2)));
        assert_eq!(t.get(&third).unwrap().probe, Some(1));
    }

    /// Of many concurrent first blocks of one actor, exactly one is taken.
    #[test]
    fn concurrent_first_blocks_start_one_episode() {
        let t = Arc::new(table(64));
        let key = ip(5);
        let taken = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let t = t.clone();
                    s.spawn(move || {
                        t.block_new(
                            key,
                            at(1_000 + i),
                            VerdictReason::Detected,
                            1,
                            Some(0),
                            at(1),
                        )
                        .is_ok()
                    })
                })
                .collect();
            hs.into_iter()
                .filter_map(|h| h.join().unwrap().then_some(()))
                .count()
        });
        assert_eq!(taken, 1);
        // A throttle is no block: a block replaces it.
        let other = ip(6);
        t.throttle(other, at(500), VerdictReason::Detected, Some(0), at(1), Q());
        assert!(
            t.block_new(other, at(900), VerdictReason::Detected, 1, Some(0), at(2))
                .is_ok()
        );
        assert_eq!(
            t.block_new(other, at(950), VerdictReason::Detected, 2, Some(0), at(3)),
            Err(at(900))
        );
        // Once it ended, a new episode.
        assert!(
            t.block_new(
                other,
                at(2_000),
                VerdictReason::Detected,
                2,
                Some(0),
                at(901)
            )
            .is_ok()
        );
    }

    /// A full table evicts in bounded steps: one sweep drops the expired
    /// and at most an eighth of its capacity, throttles first, never every
    /// throttle at once and never a ban.
    #[test]
    fn a_full_table_evicts_a_bounded_step_by_rank() {
        let cap = 64;
        let t = table(cap);
        for i in 0..8u32 {
            assert!(t.block(
                ip(1_000 + i),
                at(10_000),
                VerdictReason::Manual,
                1,
                None,
                at(1)
            ));
        }
        for i in 0..28u32 {
            t.block(
                ip(i),
                at(5_000 + u64::from(i)),
                VerdictReason::Detected,
                1,
                Some(0),
                at(1),
            );
        }
        for i in 0..28u32 {
            t.throttle(
                ip(100 + i),
                at(2_000 + u64::from(i)),
                VerdictReason::Detected,
                Some(0),
                at(1),
                Q(),
            );
        }
        assert_eq!(t.len(), cap);
        // One more: one sweep of cap / 8 = 8, the soonest-ending throttles.
        t.block(
            ip(500),
            at(9_000),
            VerdictReason::Detected,
            1,
            Some(0),
            at(2),
        );
        assert_eq!(t.len(), cap - 8 + 1);
        let throttles = t.map.iter().filter(|e| e.is_throttle()).count();
        assert_eq!(throttles, 20, "only a step of the throttles went");
        for i in 0..8u32 {
            assert!(t.get(&ip(100 + i)).is_none(), "the soonest-ending go first");
            assert!(t.get(&ip(1_000 + i)).is_some(), "a ban stays");
        }
        // A table of bans only: a sweep finds nothing and the next verdicts
        // do not sweep again.
        let bans = table(16);
        for i in 0..16u32 {
            bans.block(ip(i), at(10_000), VerdictReason::Manual, 1, None, at(1));
        }
        bans.block(
            ip(99),
            at(5_000),
            VerdictReason::Detected,
            1,
            Some(0),
            at(2),
        );
        assert_eq!(bans.cooldown.load(Ordering::Relaxed), 2);
        bans.block(
            ip(98),
            at(5_000),
            VerdictReason::Detected,
            1,
            Some(0),
            at(2),
        );
        assert_eq!(bans.cooldown.load(Ordering::Relaxed), 1);
    }

    /// Ends at the far end of time: nothing overflows.
    #[test]
    fn huge_ends_saturate() {
        let t = table(16);
        let now = u64::MAX - 5;
        t.block(
            ip(1),
            at(u64::MAX),
            VerdictReason::Detected,
            1,
            None,
            at(now),
        );
        t.throttle(
            ip(2),
            at(u64::MAX),
            VerdictReason::Manual,
            None,
            at(now),
            Q(),
        );
        t.throttle(
            ip(2),
            at(u64::MAX),
            VerdictReason::Manual,
            None,
            at(now),
            Q(),
        );
        assert!(matches!(
            t.check(&ip(1), at(now), ANY),
            Gate::Blocked { retry_after, .. } if retry_after == Span::new(5)
        ));
        assert!(matches!(
            t.verdict(&ip(2), at(now)),
            Verdict::Throttle { .. }
        ));
        assert!(!t.no_wide(|| at(now)));
    }

    /// An operator's note is kept with the ban it was given with: through
    /// a detected block over it, gone when the ban is lifted or ends, never
    /// kept on a detected verdict.
    #[test]
    fn a_note_lives_and_goes_with_its_ban() {
        let t = table(16);
        let note = Arc::new(String::from("scraper, ticket 42"));
        detected_probe_block(&t, ip(1), H);
        assert!(
            !t.set_note(&ip(1), note.clone(), at(2)),
            "not on a detected block"
        );
        assert!(t.block(ip(2), at(H), VerdictReason::Manual, 1, None, at(1)));
        assert!(t.set_note(&ip(2), note.clone(), at(2)));
        assert!(!t.block(ip(2), at(4 * H), VerdictReason::Detected, 2, Some(0), at(3)));
        assert_eq!(
            t.note(&ip(2)).as_deref().map(String::as_str),
            Some("scraper, ticket 42")
        );
        assert!(t.remove(&ip(2)));
        assert_eq!(t.note(&ip(2)), None);
        assert!(t.block(ip(3), at(10), VerdictReason::Manual, 1, None, at(1)));
        assert!(!t.set_note(&ip(3), note, at(10)), "ended");
        t.purge_expired(at(10));
        assert_eq!(t.note(&ip(3)), None);
    }
}
