//! The bounded signal store: (actor, probe) -> [`Record`], sharded and
//! lock-free across shards (dashmap).
//!
//! # Bound and eviction
//! The store holds at most `limits.max_actors` records. A new key that finds
//! it full triggers a sweep (by one thread at a time) that removes about an
//! eighth of the capacity: first idle records, then the least recently seen,
//! and only ever records that are *unsuspicious* (no strike, no carried
//! suspicion, a low last score). A flood of fresh keys therefore evicts
//! other fresh keys, never a suspect. If everything left is suspect, the new
//! key is not tracked (counted in `enumguard_untracked_total`); verdicts
//! still apply to it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use dashmap::DashMap;

use crate::actor::ActorKey;
use crate::signal::Record;

pub(crate) type Key = (ActorKey, u8);

pub(crate) struct Store {
    map: DashMap<Key, Record, ahash::RandomState>,
    len: AtomicUsize,
    cap: usize,
    sweeping: AtomicBool,
    pub(crate) evicted: AtomicUsize,
}

/// Whether a record may be evicted to make room.
pub(crate) fn evictable(r: &Record, now: u64, half_life: u64) -> bool {
    r.strikes == 0 && r.last_score < 0.3 && r.carry_at(now, half_life) < 0.05
}

impl Store {
    pub(crate) fn new(cap: usize) -> Self {
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
            evicted: AtomicUsize::new(0),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    /// Reads a record.
    pub(crate) fn read<R>(&self, key: &Key, f: impl FnOnce(&Record) -> R) -> Option<R> {
        self.map.get(key).map(|r| f(&r))
    }

    /// Updates a record, creating it if there is room. Returns `None` if the
    /// key is not tracked (the store is full of suspects).
    pub(crate) fn update<R>(
        &self,
        key: Key,
        now: u64,
        half_life: u64,
        f: impl FnOnce(&mut Record) -> R,
    ) -> Option<R> {
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
        }
        Some(out)
    }

    pub(crate) fn remove(&self, key: &Key) -> bool {
        if self.map.remove(key).is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
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
        if self
            .sweeping
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let target = (self.cap / 8).max(1);
        // Sample the last-seen times of evictable records to find the cutoff
        // below which about `target` of them lie.
        let mut sample: Vec<u64> = Vec::with_capacity(1024);
        let mut evictable_count = 0usize;
        let stride = (self.cap / 1024).max(1);
        let mut i = 0usize;
        for r in self.map.iter() {
            if evictable(r.value(), now, half_life) {
                evictable_count += 1;
                if i % stride == 0 && sample.len() < 1024 {
                    sample.push(r.value().last_seen.max(r.value().first_seen));
                }
                i += 1;
            }
        }
        let removed = if evictable_count == 0 || sample.is_empty() {
            0
        } else {
            sample.sort_unstable();
            let frac = (target as f64 / evictable_count as f64).min(1.0);
            let idx = ((sample.len() as f64 * frac).ceil() as usize).clamp(1, sample.len()) - 1;
            let cutoff = sample[idx];
            let mut removed = 0usize;
            self.map.retain(|_, r| {
                let evict = removed < target
                    && r.last_seen.max(r.first_seen) <= cutoff
                    && evictable(r, now, half_life);
                if evict {
                    removed += 1;
                }
                !evict
            });
            removed
        };
        if removed > 0 {
            self.len.fetch_sub(removed, Ordering::Relaxed);
            self.evicted.fetch_add(removed, Ordering::Relaxed);
            metrics::counter!(crate::metrics::EVICTIONS).increment(removed as u64);
        }
        metrics::gauge!(crate::metrics::TRACKED).set(self.len.load(Ordering::Relaxed) as f64);
        self.sweeping.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::ActorKind;

    fn key(i: u32) -> Key {
        (
            ActorKey::ip(std::net::Ipv4Addr::from(i).into(), 32, 64, ActorKind::Ip),
            0,
        )
    }

    #[test]
    fn flood_keeps_bound_and_suspects() {
        let s = Store::new(1000);
        let hl = 1_000_000_000;
        // A suspect, seen first.
        s.update(key(1), 1, hl, |r| {
            r.strikes = 1;
            r.last_score = 1.0;
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
        let s = Store::new(16);
        for i in 0..16u32 {
            s.update(key(i), 1, 1, |r| r.strikes = 1);
        }
        assert!(s.update(key(99), 2, 1, |_| ()).is_none());
        assert_eq!(s.len(), 16);
    }
}
