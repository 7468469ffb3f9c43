//! The bounded signal store: (actor, probe) -> [`Record`], sharded and
//! lock-free across shards (dashmap).
//!
//! # Bound and eviction
//! The store holds at most `limits.max_actors` records. A new key that finds
//! it full triggers a sweep (by one thread at a time) that removes about an
//! eighth of the capacity, least recently seen first: records with nothing
//! against them first (no strike, no carried suspicion, a low score), then
//! mildly suspect ones (below a throttle, or strikes long past), never a
//! current suspect (a recent strike, carried suspicion, or a score at a
//! throttle or above: its probe's `throttle_at`;
//! see [`eviction_class`]). A flood of fresh keys
//! therefore evicts other fresh keys, never a suspect. If everything left is
//! suspect, the new key is not tracked (counted in
//! `enumguard_untracked_total`); verdicts still apply to it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;

use super::record::Record;
use super::sweep::Sweep;
use crate::actor::{ActorKey, ActorKind};

/// Carried suspicion at which a record is never evicted: a quarter of a
/// block, i.e. a blocked co-actor within about two half-lives. Lower keeps
/// more records of the people around a caught scraper (and less room for
/// new keys); higher forgets a comeback's address sooner.
const KEEP_CARRY: f64 = 0.25;
/// Below this carried suspicion (and half the keep score, with no strike) a
/// record has nothing against it and goes first.
const FREE_CARRY: f64 = 0.05;
/// Each sweep frees this fraction of the capacity: larger sweeps are rarer
/// but longer (one pass over the map either way).
const SWEEP_FRACTION: usize = 8;
/// The keep score of a slot no probe has set (the default `throttle_at`).
const DEFAULT_KEEP_SCORE: f64 = 0.6;
/// Last-seen times sampled to find a sweep's cutoff: enough for a cutoff
/// within a fraction of a percent of the wanted share.
const SWEEP_SAMPLE: usize = 1024;

/// The store's key: one actor and one probe (its index), packed into 24
/// bytes. A plain `(ActorKey, u8)` would take 32: the probe cannot use the
/// actor key's padding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct StoreKey {
    hi: u64,
    lo: u64,
    kind: ActorKind,
    prefix: u8,
    probe: u8,
}

pub(crate) type Key = StoreKey;

impl StoreKey {
    pub(crate) fn new(actor: ActorKey, probe: u8) -> Self {
        let (kind, prefix, hi, lo) = actor.parts();
        Self {
            hi,
            lo,
            kind,
            prefix,
            probe,
        }
    }

    /// The actor.
    pub(crate) fn actor(&self) -> ActorKey {
        ActorKey::from_parts(self.kind, self.prefix, self.hi, self.lo)
    }

    /// The probe's index.
    pub(crate) fn probe(&self) -> u8 {
        self.probe
    }
}

impl From<(ActorKey, u8)> for StoreKey {
    fn from((actor, probe): (ActorKey, u8)) -> Self {
        Self::new(actor, probe)
    }
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({:?}, {})", self.actor(), self.probe)
    }
}

pub(crate) struct Store {
    map: DashMap<Key, Record, ahash::RandomState>,
    len: AtomicUsize,
    cap: usize,
    sweeping: AtomicBool,
    /// New keys to turn away without sweeping, after a sweep that found
    /// little to evict: keeps a store full of suspects from costing a full
    /// scan per request.
    cooldown: AtomicUsize,
    /// How long a strike keeps a record from eviction after its last
    /// activity (twice the longest block; set again on reload).
    strike_memory: AtomicU64,
    /// Per probe slot, the score (f64 bits) from which a record is a current
    /// suspect, never evicted: that probe's `throttle_at`.
    keep_scores: Box<[AtomicU64]>,
    pub(crate) evicted: AtomicUsize,
    /// The `enumguard_tracked_actors` gauge, registered at the first
    /// change of the count and set at every one since.
    gauge: std::sync::OnceLock<metrics::Gauge>,
}

/// How readily a record may be evicted to make room: 0 first (nothing
/// against it), 1 next (mild suspicion below a throttle, or strikes long
/// past), `KEEP` never (a recent strike, carried suspicion, or suspicion at a
/// throttle or above). Suspicion is read decayed to `now`, so a record that
/// went quiet long ago does not hold its place forever.
pub(crate) fn eviction_class(
    r: &Record,
    now: u64,
    half_life: u64,
    strike_memory: u64,
    keep_score: f64,
) -> u8 {
    let idle = now.saturating_sub(r.last_seen.max(r.first_seen()).max(r.carry_raised()));
    let score = r.last_score() * 0.5f64.powf(idle as f64 / half_life.max(1) as f64);
    let carry = r.carry_at(now, half_life);
    let recent_strike = r.strikes > 0 && idle < strike_memory;
    if recent_strike || score >= keep_score || carry >= KEEP_CARRY {
        KEEP
    } else if r.strikes == 0 && score < keep_score / 2.0 && carry < FREE_CARRY {
        0
    } else {
        1
    }
}

pub(crate) const KEEP: u8 = 2;

impl Store {
    pub(crate) fn new(cap: usize, strike_memory: u64) -> Self {
        Self {
            map: DashMap::with_capacity_and_hasher_and_shard_amount(
                0,
                ahash::RandomState::new(),
                (std::thread::available_parallelism().map_or(4, |n| n.get()) * 16)
                    .next_power_of_two(),
            ),
            len: AtomicUsize::new(0),
            cap,
            sweeping: AtomicBool::new(false),
            cooldown: AtomicUsize::new(0),
            strike_memory: AtomicU64::new(strike_memory),
            gauge: std::sync::OnceLock::new(),
            keep_scores: (0..=u8::MAX)
                .map(|_| AtomicU64::new(DEFAULT_KEEP_SCORE.to_bits()))
                .collect(),
            evicted: AtomicUsize::new(0),
        }
    }

    /// Records of probe slot `probe` scored at `score` or above are current
    /// suspects, never evicted (that probe's `throttle_at`; set again on
    /// reload).
    pub(crate) fn set_keep_score(&self, probe: u8, score: f64) {
        self.keep_scores[usize::from(probe)].store(score.to_bits(), Ordering::Relaxed);
    }

    fn keep_score(&self, probe: u8) -> f64 {
        f64::from_bits(self.keep_scores[usize::from(probe)].load(Ordering::Relaxed))
    }

    /// How long a strike keeps a record from eviction.
    pub(crate) fn set_strike_memory(&self, nanos: u64) {
        self.strike_memory.store(nanos, Ordering::Relaxed);
    }

    /// Drops every record of probe slot `probe` (a probe a reload removed);
    /// returns how many went.
    pub(crate) fn drop_probe(&self, probe: u8) -> usize {
        let mut removed = 0usize;
        self.map.retain(|k, _| {
            let gone = k.probe == probe;
            removed += usize::from(gone);
            !gone
        });
        self.len.fetch_sub(removed, Ordering::Relaxed);
        self.publish_len();
        removed
    }

    /// Sets the gauge to the count (an atomic store on a kept handle).
    fn publish_len(&self) {
        self.gauge
            .get_or_init(|| metrics::gauge!(crate::metrics::TRACKED))
            .set(self.len.load(Ordering::Relaxed) as f64);
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    /// Reads a record.
    pub(crate) fn read<R>(
        &self,
        key: &(impl Into<Key> + Copy),
        f: impl FnOnce(&Record) -> R,
    ) -> Option<R> {
        self.map.get(&(*key).into()).map(|r| f(&r))
    }

    /// Updates a record, creating it if there is room. Returns `None` if the
    /// key is not tracked (the store is full of suspects).
    pub(crate) fn update<R>(
        &self,
        key: impl Into<Key>,
        now: u64,
        half_life: u64,
        f: impl FnOnce(&mut Record) -> R,
    ) -> Option<R> {
        let key = key.into();
        // Fast path: the record exists (governor's get-before-entry habit).
        if let Some(mut r) = self.map.get_mut(&key) {
            return Some(f(&mut r));
        }
        if self.len.load(Ordering::Relaxed) >= self.cap {
            self.make_room(now, half_life);
            if self.len.load(Ordering::Relaxed) >= self.cap {
                metrics::counter!(crate::metrics::UNTRACKED).increment(1);
                return None;
            }
        }
        let mut created = false;
        let out = {
            let mut entry = self.map.entry(key).or_insert_with(|| {
                created = true;
                Record::new(now)
            });
            f(&mut entry)
        };
        if created {
            self.len.fetch_add(1, Ordering::Relaxed);
            self.publish_len();
        }
        Some(out)
    }

    pub(crate) fn remove(&self, key: &(impl Into<Key> + Copy)) -> bool {
        if self.map.remove(&(*key).into()).is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
            self.publish_len();
            true
        } else {
            false
        }
    }

    /// Visits every record (admin listing; takes each shard's read lock in turn).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Key, &Record)) {
        for r in self.map.iter() {
            f(r.key(), r.value());
        }
    }

    fn make_room(&self, now: u64, half_life: u64) {
        // Cooling down after a fruitless sweep: turn this key away.
        if self
            .cooldown
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1))
            .is_ok()
        {
            return;
        }
        let Some(_sweep) = Sweep::try_begin(&self.sweeping) else {
            return;
        };
        let target = (self.cap / SWEEP_FRACTION).max(1);
        let mut removed = 0usize;
        for class in [0u8, 1] {
            if removed >= target {
                break;
            }
            removed += self.evict_class(class, target - removed, now, half_life);
        }
        if removed > 0 {
            self.len.fetch_sub(removed, Ordering::Relaxed);
            self.evicted.fetch_add(removed, Ordering::Relaxed);
            metrics::counter!(crate::metrics::EVICTIONS).increment(removed as u64);
        }
        if removed * 4 < target {
            self.cooldown.store(target, Ordering::Relaxed);
        }
        self.publish_len();
    }

    /// Evicts up to `want` records of eviction class `class`, least recently
    /// seen first. Two passes over the map: one to sample the last-seen
    /// times and find the cutoff, one to remove.
    fn evict_class(&self, class: u8, want: usize, now: u64, half_life: u64) -> usize {
        let memory = self.strike_memory.load(Ordering::Relaxed);
        let mut sample: Vec<u64> = Vec::with_capacity(SWEEP_SAMPLE);
        let mut count = 0usize;
        let stride = (self.cap / SWEEP_SAMPLE).max(1);
        for r in self.map.iter() {
            let keep = self.keep_score(r.key().probe);
            if eviction_class(r.value(), now, half_life, memory, keep) == class {
                if count % stride == 0 && sample.len() < SWEEP_SAMPLE {
                    sample.push(r.value().last_seen.max(r.value().first_seen()));
                }
                count += 1;
            }
        }
        if count == 0 || sample.is_empty() {
            return 0;
        }
        sample.sort_unstable();
        let frac = (want as f64 / count as f64).min(1.0);
        let idx = ((sample.len() as f64 * frac).ceil() as usize).clamp(1, sample.len()) - 1;
        let cutoff = if frac >= 1.0 { u64::MAX } else { sample[idx] };
        let mut removed = 0usize;
        self.map.retain(|k, r| {
            let evict = removed < want
                && r.last_seen.max(r.first_seen()) <= cutoff
                && eviction_class(r, now, half_life, memory, self.keep_score(k.probe)) == class;
            if evict {
                removed += 1;
            }
            !evict
        });
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> Key {
        Key::new(
            ActorKey::ip(std::net::Ipv4Addr::from(i).into(), 32, 64, ActorKind::Ip),
            0,
        )
    }

    #[test]
    fn key_is_compact() {
        assert!(
            std::mem::size_of::<Key>() <= 24,
            "{}",
            std::mem::size_of::<Key>()
        );
        let actor = ActorKey::hashed(ActorKind::Account, u128::MAX - 7);
        let k = Key::from((actor, 3));
        assert_eq!((k.actor(), k.probe()), (actor, 3));
        assert_ne!(k, Key::new(actor, 4));
        assert_ne!(
            k,
            Key::new(ActorKey::hashed(ActorKind::Session, u128::MAX - 7), 3)
        );
    }

    #[test]
    fn flood_keeps_bound_and_suspects() {
        let s = Store::new(1000, 1_000_000_000);
        let hl = 1_000_000_000;
        // A suspect, seen first.
        s.update(key(1), 1, hl, |r| {
            r.strikes = 1;
            r.set_score(1.0);
        });
        for i in 2..100_000u32 {
            s.update(key(i), i as u64, hl, |r| {
                r.learn(i as u64, 10, 10, None, None)
            });
            assert!(s.len() <= 1000);
        }
        assert!(
            s.read(&key(1), |r| r.strikes).is_some(),
            "the suspect survived"
        );
        assert!(s.evicted.load(Ordering::Relaxed) > 90_000);
        assert_eq!(s.len(), s.map.len());
    }

    #[test]
    fn full_of_suspects_refuses_new_keys() {
        let s = Store::new(16, 1_000_000_000);
        for i in 0..16u32 {
            s.update(key(i), 1, 1, |r| r.strikes = 1);
        }
        assert!(s.update(key(99), 2, 1, |_| ()).is_none());
        assert_eq!(s.len(), 16);
        // Cooling down: the next keys are turned away without a sweep.
        assert!(s.cooldown.load(Ordering::Relaxed) > 0);
        assert!(s.update(key(100), 3, 1, |_| ()).is_none());
    }

    #[test]
    fn old_strikes_and_stale_scores_age_out() {
        let s = Store::new(16, 1_000);
        for i in 0..16u32 {
            s.update(key(i), 1, 100, |r| {
                r.strikes = 1;
                r.set_score(1.0);
            });
        }
        // Soon after: all kept, new keys turned away.
        assert!(s.update(key(99), 2, 100, |_| ()).is_none());
        // Long after (strike memory and many half-lives past): room again.
        s.cooldown.store(0, Ordering::Relaxed);
        assert!(s.update(key(100), 100_000, 100, |_| ()).is_some());
    }

    /// With `throttle_at = 0.4`, a throttled actor (score 0.45) is a
    /// current suspect: a flood of fresh keys, each mildly suspect (a few
    /// foreign reads: 0.35), does not evict its record. Under a keep score
    /// of 0.6 (the old fixed value) it would go first, being the oldest.
    #[test]
    fn the_keep_score_follows_throttle_at() {
        let hl = 1_000_000_000_000;
        let flood = |keep: Option<f64>| {
            let s = Store::new(64, 1_000_000_000);
            if let Some(k) = keep {
                s.set_keep_score(0, k);
            }
            s.update(key(1), 1, hl, |r| r.set_score(0.45));
            for i in 2..10_000u32 {
                s.update(key(i), 1 + i as u64, hl, |r| r.set_score(0.35));
                assert!(s.len() <= 64);
            }
            assert!(s.evicted.load(Ordering::Relaxed) > 9_000);
            s.read(&key(1), |_| ()).is_some()
        };
        assert!(flood(Some(0.4)), "the throttled record survived");
        assert!(!flood(Some(0.6)), "at 0.6, 0.45 is only mildly suspect");
    }

    #[test]
    fn mild_suspects_go_before_suspects() {
        let s = Store::new(16, 1_000_000_000);
        for i in 0..8u32 {
            s.update(key(i), 1, 1_000, |r| r.strikes = 1);
        }
        for i in 8..16u32 {
            s.update(key(i), 1, 1_000, |r| r.set_score(0.4));
        }
        assert!(s.update(key(99), 2, 1_000, |_| ()).is_some());
        for i in 0..8u32 {
            assert!(
                s.read(&key(i), |_| ()).is_some(),
                "a struck record was evicted"
            );
        }
    }
}
