//! What other replicas saw of each (actor, probe), as of their last sync:
//! bounded, and merged into this replica's own window when it decides.

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

use super::record::Evidence;
use super::store::StoreKey;

/// Replicas whose evidence is kept per (actor, probe), at most: more
/// replicas than this share verdicts but each counts the evidence of
/// these only.
const MAX_REPLICAS: usize = 16;

struct Seen {
    /// (replica, what it saw, until when it counts).
    by: Vec<(u64, Evidence, u64)>,
}

/// The evidence other replicas sent.
pub(crate) struct Remote {
    map: DashMap<StoreKey, Seen, ahash::RandomState>,
    len: AtomicUsize,
    cap: usize,
}

impl Remote {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            map: DashMap::with_hasher(ahash::RandomState::new()),
            len: AtomicUsize::new(0),
            cap,
        }
    }

    /// Nothing from other replicas: the request path skips the lookups.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }

    /// What the other replicas saw of `key`, merged, as of `now`.
    pub(crate) fn get(&self, key: StoreKey, now: u64) -> Option<Evidence> {
        let seen = self.map.get(&key)?;
        let mut out = Evidence::default();
        for (_, ev, until) in &seen.by {
            if *until > now {
                out.merge(ev);
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// Keeps what `replica` saw of `key` until `until`. When full, expired
    /// entries go first; if none has, the new one is not kept (sharing is
    /// reduced, local detection is not).
    pub(crate) fn put(&self, key: StoreKey, replica: u64, ev: Evidence, until: u64, now: u64) {
        if let Some(mut seen) = self.map.get_mut(&key) {
            match seen.by.iter_mut().find(|(r, _, _)| *r == replica) {
                Some(slot) => *slot = (replica, ev, until),
                None => {
                    seen.by.retain(|(_, _, u)| *u > now);
                    if seen.by.len() < MAX_REPLICAS {
                        seen.by.push((replica, ev, until));
                    }
                }
            }
            return;
        }
        if self.len.load(Ordering::Relaxed) >= self.cap {
            self.purge(now);
            if self.len.load(Ordering::Relaxed) >= self.cap {
                return;
            }
        }
        if self
            .map
            .insert(
                key,
                Seen {
                    by: vec![(replica, ev, until)],
                },
            )
            .is_none()
        {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops what has expired.
    pub(crate) fn purge(&self, now: u64) {
        let mut removed = 0usize;
        self.map.retain(|_, seen| {
            seen.by.retain(|(_, _, u)| *u > now);
            let keep = !seen.by.is_empty();
            removed += usize::from(!keep);
            keep
        });
        self.len.fetch_sub(removed, Ordering::Relaxed);
    }

    /// Drops everything of probe slot `probe`.
    pub(crate) fn drop_probe(&self, probe: u8) {
        let mut removed = 0usize;
        self.map.retain(|k, _| {
            let gone = k.probe() == probe;
            removed += usize::from(gone);
            !gone
        });
        self.len.fetch_sub(removed, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::{ActorKey, ActorKind};

    fn key(i: u128) -> StoreKey {
        StoreKey::new(ActorKey::hashed(ActorKind::Account, i), 0)
    }

    fn ev(requests: u16, bit: usize) -> Evidence {
        let mut e = Evidence::default();
        e.counts.requests = requests;
        e.counts.targets = requests;
        e.bits[bit / 64] |= 1 << (bit % 64);
        e
    }

    #[test]
    fn replicas_merge_and_expire_and_the_map_stays_bounded() {
        let r = Remote::new(16);
        assert!(r.is_empty());
        r.put(key(1), 10, ev(3, 1), 100, 0);
        r.put(key(1), 11, ev(2, 2), 50, 0);
        // A replica's newer evidence replaces its older.
        r.put(key(1), 10, ev(4, 1), 100, 0);
        let m = r.get(key(1), 10).unwrap();
        assert_eq!(m.counts.requests, 6);
        assert_eq!(m.bits[0], 0b110);
        // Replica 11's has expired by 60.
        assert_eq!(r.get(key(1), 60).unwrap().counts.requests, 4);
        assert!(r.get(key(1), 200).is_none());
        for i in 2..100 {
            r.put(key(i), 1, ev(1, 0), 1_000, 0);
        }
        assert!(r.len.load(Ordering::Relaxed) <= 16);
        // Once the old ones expire, new keys find room.
        r.put(key(500), 1, ev(1, 0), 5_000, 2_000);
        assert!(r.get(key(500), 2_001).is_some());
    }
}
