//! What other replicas saw of each (actor, probe), as of their last sync:
//! bounded, and merged into this replica's own window when it decides.
//!
//! Evidence that another replica sent at once (the actor was near its
//! throttle level there: see `cluster/sync.rs`) is *hot*: while it lives,
//! each time this replica reads it (a request of that actor here, in its
//! pre-check and when it is answered) the `asked` hook is told, and the
//! cluster sync sends this replica's own evidence of the actor at once,
//! with what is in flight. A scraper round-robined over the replicas is
//! then seen whole by each of them within one evidence round trip.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;

use super::record::Evidence;
use super::store::StoreKey;
use super::sweep::Sweep;
use crate::clock::Nanos;

/// Replicas whose evidence is kept per (actor, probe), at most: more
/// replicas than this share verdicts but each counts the evidence of
/// these only.
const MAX_REPLICAS: usize = 16;
/// A purge of a full map frees at least this fraction of its capacity
/// (expired entries, then those that end soonest): one pass over the map
/// per that many new keys, at most.
const PURGE_FRACTION: usize = 8;
/// Ends sampled to find a purge's cutoff.
const PURGE_SAMPLE: usize = 1024;

struct Seen {
    by: Vec<Part>,
}

/// What one replica saw.
struct Part {
    replica: u64,
    ev: Evidence,
    /// Until when it counts.
    until: Nanos,
    /// Sent at once: a request of the actor here is told to `asked`.
    hot: bool,
}

/// Told of a request here of an actor with hot evidence (see the module).
pub(crate) type Asked = dyn Fn(StoreKey) + Send + Sync;

/// The evidence other replicas sent.
pub(crate) struct Remote {
    map: DashMap<StoreKey, Seen, ahash::RandomState>,
    len: AtomicUsize,
    cap: usize,
    /// One purge at a time.
    sweeping: AtomicBool,
    /// Purges of a full map so far (each one or two passes over it).
    purges: AtomicU64,
    /// New keys dropped: the map was full and another thread was purging.
    dropped: AtomicU64,
    /// Told of each read of hot evidence (set once, by the cluster sync).
    asked: OnceLock<Box<Asked>>,
}

impl Remote {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            map: DashMap::with_hasher(ahash::RandomState::new()),
            len: AtomicUsize::new(0),
            cap,
            sweeping: AtomicBool::new(false),
            purges: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            asked: OnceLock::new(),
        }
    }

    /// Sets what is told of each read of hot evidence (once).
    #[cfg(feature = "redis")]
    pub(crate) fn set_asked(&self, f: impl Fn(StoreKey) + Send + Sync + 'static) -> bool {
        self.asked.set(Box::new(f)).is_ok()
    }

    /// Nothing from other replicas: the request path skips the lookups.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }

    /// What the other replicas saw of `key`, merged, as of `now`. Hot
    /// evidence among it is told to the `asked` hook (after the map's
    /// shard is released).
    pub(crate) fn get(&self, key: StoreKey, now: Nanos) -> Option<Evidence> {
        let mut out = Evidence::default();
        let mut hot = false;
        {
            let seen = self.map.get(&key)?;
            for f in &seen.by {
                if f.until > now {
                    out.merge(&f.ev);
                    hot |= f.hot;
                }
            }
        }
        if hot {
            if let Some(asked) = self.asked.get() {
                asked(key);
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// Keeps what `replica` saw of `key` until `until`. When full, a purge
    /// (by one thread at a time) drops the expired entries and, if that is
    /// less than `cap / 8`, the entries that end soonest up to that many:
    /// the work is amortised, at most one purge (two passes) per `cap / 8`
    /// new keys, never a pass per key. A new key that finds the map full
    /// while another thread purges is dropped and counted (sharing is
    /// reduced, local detection is not).
    pub(crate) fn put(&self, key: StoreKey, replica: u64, ev: Evidence, until: Nanos, now: Nanos) {
        self.put_from(key, replica, ev, until, now, false);
    }

    /// As [`Remote::put`]; `hot`: sent at once (see the module).
    pub(crate) fn put_from(
        &self,
        key: StoreKey,
        replica: u64,
        ev: Evidence,
        until: Nanos,
        now: Nanos,
        hot: bool,
    ) {
        let from = Part {
            replica,
            ev,
            until,
            hot,
        };
        if let Some(mut seen) = self.map.get_mut(&key) {
            match seen.by.iter_mut().find(|f| f.replica == replica) {
                Some(slot) => *slot = from,
                None => {
                    seen.by.retain(|f| f.until > now);
                    if seen.by.len() < MAX_REPLICAS {
                        seen.by.push(from);
                    }
                }
            }
            return;
        }
        if self.len.load(Ordering::Relaxed) >= self.cap {
            self.make_room(now);
            if self.len.load(Ordering::Relaxed) >= self.cap {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(crate::metrics::CLUSTER_DROPPED).increment(1);
                return;
            }
        }
        if self.map.insert(key, Seen { by: vec![from] }).is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Makes room in a full map, unless another thread is doing it.
    fn make_room(&self, now: Nanos) {
        let Some(_sweep) = Sweep::try_begin(&self.sweeping) else {
            return;
        };
        if self.len.load(Ordering::Relaxed) < self.cap {
            return;
        }
        self.purges.fetch_add(1, Ordering::Relaxed);
        let step = (self.cap / PURGE_FRACTION).max(1);
        // Pass 1: drop the expired, sample the ends of the rest.
        let mut count = 0usize;
        let stride = (self.cap / PURGE_SAMPLE).max(1);
        let mut sample = Vec::with_capacity(PURGE_SAMPLE.min(self.cap));
        let mut removed = 0usize;
        self.map.retain(|_, seen| {
            seen.by.retain(|f| f.until > now);
            let Some(end) = seen.by.iter().map(|f| f.until).max() else {
                removed += 1;
                return false;
            };
            if count % stride == 0 && sample.len() < PURGE_SAMPLE {
                sample.push(end);
            }
            count += 1;
            true
        });
        self.len.fetch_sub(removed, Ordering::Relaxed);
        let want = step.saturating_sub(removed).min(count);
        if want == 0 || sample.is_empty() {
            return;
        }
        // Pass 2: the soonest-ending, `want` at most.
        sample.sort_unstable();
        let frac = want as f64 / count as f64;
        let idx = ((sample.len() as f64 * frac).ceil() as usize).clamp(1, sample.len()) - 1;
        let cutoff = if want >= count {
            Nanos::MAX
        } else {
            sample[idx]
        };
        let mut evicted = 0usize;
        self.map.retain(|_, seen| {
            let end = seen.by.iter().map(|f| f.until).max().unwrap_or(Nanos::ZERO);
            let evict = evicted < want && end <= cutoff;
            evicted += usize::from(evict);
            !evict
        });
        self.len.fetch_sub(evicted, Ordering::Relaxed);
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

    fn at(nanos: u64) -> Nanos {
        Nanos::new(nanos)
    }
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
        r.put(key(1), 10, ev(3, 1), at(100), at(0));
        r.put(key(1), 11, ev(2, 2), at(50), at(0));
        // A replica's newer evidence replaces its older.
        r.put(key(1), 10, ev(4, 1), at(100), at(0));
        let m = r.get(key(1), at(10)).unwrap();
        assert_eq!(m.counts.requests, 6);
        assert_eq!(m.bits[0], 0b110);
        // Replica 11's has expired by 60.
        assert_eq!(r.get(key(1), at(60)).unwrap().counts.requests, 4);
        assert!(r.get(key(1), at(200)).is_none());
        for i in 2..100 {
            r.put(key(i), 1, ev(1, 0), at(1_000), at(0));
        }
        assert!(r.len.load(Ordering::Relaxed) <= 16);
        // Once the old ones expire, new keys find room.
        r.put(key(500), 1, ev(1, 0), at(5_000), at(2_000));
        assert!(r.get(key(500), at(2_001)).is_some());
    }

    /// Hot evidence (sent at once) tells the hook of each read while it
    /// lives; other evidence never does.
    #[cfg(feature = "redis")]
    #[test]
    fn a_read_of_hot_evidence_is_told() {
        use std::sync::Arc;
        let r = Remote::new(16);
        let told = Arc::new(AtomicUsize::new(0));
        let t = told.clone();
        assert!(r.set_asked(move |_| {
            t.fetch_add(1, Ordering::Relaxed);
        }));
        r.put(key(1), 10, ev(3, 1), at(100), at(0));
        assert!(r.get(key(1), at(10)).is_some());
        assert_eq!(told.load(Ordering::Relaxed), 0);
        r.put_from(key(1), 11, ev(2, 2), at(50), at(0), true);
        assert_eq!(r.get(key(1), at(10)).unwrap().counts.requests, 5);
        assert_eq!(told.load(Ordering::Relaxed), 1);
        // Once the hot part has expired, reads are not told.
        assert!(r.get(key(1), at(60)).is_some());
        assert_eq!(told.load(Ordering::Relaxed), 1);
    }

    /// A map full of live evidence makes room by its soonest-ending
    /// entries, a step of `cap / 8` at a time: one purge per that many new
    /// keys, not a pass per key; new evidence is kept, not dropped.
    #[test]
    fn a_full_map_of_live_evidence_costs_one_purge_per_step() {
        let cap = 64;
        let r = Remote::new(cap);
        for i in 0..cap as u128 {
            r.put(key(i), 1, ev(1, 0), at(1_000 + i as u64), at(0));
        }
        assert_eq!(r.len.load(Ordering::Relaxed), cap);
        let news = 10 * cap as u128;
        for i in 0..news {
            r.put(key(1_000 + i), 1, ev(1, 0), at(100_000 + i as u64), at(1));
            assert!(r.len.load(Ordering::Relaxed) <= cap);
            assert!(r.get(key(1_000 + i), at(2)).is_some(), "new evidence kept");
        }
        let purges = r.purges.load(Ordering::Relaxed);
        assert_eq!(purges, news as u64 / (cap as u64 / 8), "one per step");
        assert_eq!(r.dropped.load(Ordering::Relaxed), 0);
        // The soonest-ending went first: the first ones, then the oldest
        // of the new ones.
        assert!(r.get(key(0), at(2)).is_none());
        assert!(r.get(key(1_000 + news - 1), at(2)).is_some());
        // One purger at a time: while it holds the right, new keys are
        // dropped and counted.
        {
            let _held = Sweep::try_begin(&r.sweeping).unwrap();
            r.put(key(5_000), 1, ev(1, 0), at(200_000), at(3));
            assert!(r.get(key(5_000), at(4)).is_none());
            assert_eq!(r.dropped.load(Ordering::Relaxed), 1);
        }
        // Evidence already known is still updated when full.
        r.put(key(1_000 + news - 1), 2, ev(2, 1), at(200_000), at(5));
        assert_eq!(
            r.get(key(1_000 + news - 1), at(6)).unwrap().counts.requests,
            3
        );
        assert_eq!(r.len.load(Ordering::Relaxed), r.map.len());
    }
}
