//! The bounded signal store: (actor, probe) -> [`Record`], in a table of
//! fixed size allocated at start (see [`table`]).
//!
//! # Bound and eviction
//! The store holds at most `limits.max_actors` records, in buckets of 16
//! slots (the last one smaller if need be); a key's bucket is picked by a
//! keyed hash, so no one can choose keys that crowd one bucket. A new actor
//! is always tracked: a new key that finds its bucket full evicts one of
//! its 16 records. That is all a request ever does for eviction (16 records
//! judged, under one bucket's lock, about a microsecond), whatever the
//! store's size and however many fresh keys arrive: there is no sweep.
//!
//! The record that goes is, in the bucket, one that is not a current
//! suspect, but never the most recently seen of those (so that a new key
//! is not evicted by the next new key before it came back): the least
//! recently seen of those with nothing against them (no strike, no carried
//! suspicion, a low score); if none, the lowest decayed score of the
//! mildly suspect (below a throttle, or strikes long past), so that a flood
//! of keys held at a lower score cannot push out a record at a higher one.
//! A current suspect (a recent strike, carried suspicion, or a score at a
//! throttle or above: its probe's `throttle_at`; see
//! `evict::eviction_class`) gives its place only when nothing else may: the
//! least suspect of them (see `evict::victim_rank`: actors likely under a
//! live block last, then those with a recent strike, the others by decayed
//! score). A flood of fresh keys therefore evicts other fresh keys and idle
//! records, never a suspect, unless 15 of the 16 records of the suspect's
//! bucket are suspects; then each such bucket gives up its two least
//! suspect, once (the fresh keys that took their places then evict each
//! other). So an enumerator that arrives at a store full of suspects is
//! counted from its first request and blocked like any other, and the cap
//! holds. A blocked actor whose record goes keeps its block (the verdict
//! table holds it); it loses its strikes (a later block starts from the
//! first), which is why a record with strikes goes after every suspect
//! without: erasing one's history takes filling its bucket with blocked
//! identities.
//!
//! The buckets fill unevenly: the first evictions come when the store is
//! about 90% full on average, and a full store holds a little under its
//! capacity.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::record::Record;
use crate::actor::{ActorKey, ActorKind};
use crate::clock::{Nanos, Span};

mod evict;
mod table;

use table::Table;

/// Carried suspicion at which a record is never evicted: a quarter of a
/// block, i.e. a blocked co-actor within about two half-lives. Lower keeps
/// more records of the people around a caught scraper (and less room for
/// new keys); higher forgets a comeback's address sooner.
const KEEP_CARRY: f64 = 0.25;
/// Below this carried suspicion (and half the keep score, with no strike) a
/// record has nothing against it and goes first.
const FREE_CARRY: f64 = 0.05;
/// The keep score of a slot no probe has set (the default `throttle_at`).
const DEFAULT_KEEP_SCORE: f64 = 0.6;
/// Carried suspicion from which a record's actor is likely under a live
/// block: a block leaves half a block (`BLOCK_CARRY` in `detect::escalate`)
/// at its end, more before. Such records are victims last.
const HELD_CARRY: f64 = 0.5;

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

/// A key's keyed hash: two folded multiplies (the 128-bit product's halves
/// xored, as in ahash's fallback and wyhash) of its bits with the store's
/// secret keys; its high bits pick the bucket, its low 16 the tag. About
/// ten instructions, where a `Hash`-derived hasher writes the key's five
/// fields one at a time.
#[inline(always)]
fn keyed_hash(key: &Key, secret: &[u64; 4]) -> u64 {
    #[inline(always)]
    fn fold(a: u64, b: u64) -> u64 {
        let p = u128::from(a) * u128::from(b);
        (p as u64) ^ ((p >> 64) as u64)
    }
    let small = (key.kind as u64) | (u64::from(key.prefix) << 8) | (u64::from(key.probe) << 16);
    let h = fold(key.hi ^ secret[0], key.lo ^ secret[1]);
    fold(h ^ small ^ secret[2], secret[3])
}

/// The store.
pub(crate) struct Store {
    table: Table,
    /// The secret keys of the keyed hash that picks a key's bucket and tag
    /// (random per store: no one can choose keys that crowd a bucket).
    secret: [u64; 4],
    len: AtomicUsize,
    /// How long a strike keeps a record from eviction after its last
    /// activity (twice the longest block; set again on reload).
    strike_memory: AtomicU64,
    /// Per probe slot, the score (f64 bits) from which a record is a current
    /// suspect, evicted last: that probe's `throttle_at`.
    keep_scores: Box<[AtomicU64]>,
    pub(crate) evicted: AtomicUsize,
    /// The `enumguard_tracked_actors` gauge, registered at the first
    /// change of the count and set at every one since.
    gauge: std::sync::OnceLock<metrics::Gauge>,
    /// The `enumguard_evictions_total` counter, registered at the first
    /// eviction.
    evictions: std::sync::OnceLock<metrics::Counter>,
}

/// What [`Store::insert`] did to make a key's record.
enum Inserted {
    /// It took a free way: the count grew.
    Created,
    /// It took the way of a record that went.
    Evicted,
}

impl Store {
    pub(crate) fn new(cap: usize, strike_memory: Span) -> Self {
        Self {
            table: Table::new(cap),
            secret: {
                let r = ahash::RandomState::new();
                std::array::from_fn(|i| r.hash_one(i as u64) | 1)
            },
            len: AtomicUsize::new(0),
            strike_memory: AtomicU64::new(strike_memory.get()),
            keep_scores: (0..=u8::MAX)
                .map(|_| AtomicU64::new(DEFAULT_KEEP_SCORE.to_bits()))
                .collect(),
            evicted: AtomicUsize::new(0),
            gauge: std::sync::OnceLock::new(),
            evictions: std::sync::OnceLock::new(),
        }
    }

    /// Records of probe slot `probe` scored at `score` or above are current
    /// suspects, evicted last (that probe's `throttle_at`; set again on
    /// reload).
    pub(crate) fn set_keep_score(&self, probe: u8, score: f64) {
        self.keep_scores[usize::from(probe)].store(score.to_bits(), Ordering::Relaxed);
    }

    fn keep_score(&self, probe: u8) -> f64 {
        f64::from_bits(self.keep_scores[usize::from(probe)].load(Ordering::Relaxed))
    }

    /// How long a strike keeps a record from eviction.
    pub(crate) fn set_strike_memory(&self, memory: Span) {
        self.strike_memory.store(memory.get(), Ordering::Relaxed);
    }

    /// Drops every record of probe slot `probe` (a probe a reload removed);
    /// returns how many went.
    pub(crate) fn drop_probe(&self, probe: u8) -> usize {
        let mut removed = 0usize;
        for i in 0..self.table.buckets() {
            if self.table.unused(i) {
                continue;
            }
            let mut b = self.table.lock(i);
            // The ways to empty, as bits (no allocation under the lock).
            let gone = b
                .iter()
                .filter(|(_, k, _)| k.probe == probe)
                .fold(0u32, |bits, (w, _, _)| bits | (1 << w));
            for w in 0..table::WAYS {
                if gone & (1 << w) != 0 {
                    b.clear(w);
                }
            }
            removed += gone.count_ones() as usize;
        }
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

    /// The most records held: `max_actors`.
    pub(crate) fn capacity(&self) -> usize {
        self.table.slots()
    }

    /// A key's bucket and tag, from one keyed hash.
    #[inline(always)]
    fn place(&self, key: &Key) -> (usize, u16) {
        let h = keyed_hash(key, &self.secret);
        (self.table.bucket_of(h), h as u16)
    }

    /// Brings the records of these keys (up to four: a request's actors)
    /// toward the cache without waiting: their buckets' heads first, all at
    /// once, then each record found there. The updates that follow then
    /// wait for about two cache misses in all instead of two a record, one
    /// after the other. A hint: it reads only atomics and changes nothing.
    #[inline]
    pub(crate) fn prefetch(&self, keys: impl Iterator<Item = Key>) {
        let mut places = [(0usize, 0u16); 4];
        let mut n = 0;
        for (place, key) in places.iter_mut().zip(keys) {
            *place = self.place(&key);
            self.table.prefetch_head(place.0);
            n += 1;
        }
        for &(bucket, tag) in &places[..n] {
            self.table.prefetch_slot(bucket, tag);
        }
    }

    /// Records held, counted bucket by bucket (tests compare it with
    /// [`len`](Self::len)).
    #[cfg(test)]
    fn counted(&self) -> usize {
        (0..self.table.buckets())
            .map(|i| self.table.lock(i).len())
            .sum()
    }

    /// Reads a record.
    #[inline]
    pub(crate) fn read<R>(
        &self,
        key: &(impl Into<Key> + Copy),
        f: impl FnOnce(&Record) -> R,
    ) -> Option<R> {
        let key = (*key).into();
        let (bucket, tag) = self.place(&key);
        let b = self.table.lock(bucket);
        b.find(&key, tag).map(|w| f(b.record(w)))
    }

    /// Updates a record, creating it, and making room in its bucket if that
    /// is full. Always `Some`: the `Option` is for callers that cannot tell
    /// (a store that may not track a key).
    #[inline]
    pub(crate) fn update<R>(
        &self,
        key: impl Into<Key>,
        now: Nanos,
        half_life: Span,
        f: impl FnOnce(&mut Record) -> R,
    ) -> Option<R> {
        let key = key.into();
        let (bucket, tag) = self.place(&key);
        let mut b = self.table.lock(bucket);
        // `f` is called from one place, so that it is inlined into its
        // caller (a closure called from two is not, and its captures are
        // then stored for it on every call).
        let (way, inserted) = match b.find(&key, tag) {
            Some(w) => (w, None),
            None => self.insert(&mut b, key, tag, now, half_life),
        };
        let out = f(b.record_mut(way));
        drop(b);
        // The counts changed under the lock (a panicking `f` leaves them
        // right); what reads them is told now.
        match inserted {
            Some(Inserted::Created) => self.publish_len(),
            Some(Inserted::Evicted) => self
                .evictions
                .get_or_init(|| metrics::counter!(crate::metrics::EVICTIONS))
                .increment(1),
            None => {}
        }
        Some(out)
    }

    /// The slow path of [`update`](Self::update): puts a new record for
    /// `key` in a free way of its bucket, or in the place of the record
    /// that goes (see the module), and counts it. Returns the way.
    #[inline(never)]
    fn insert(
        &self,
        b: &mut table::Locked<'_>,
        key: Key,
        tag: u16,
        now: Nanos,
        half_life: Span,
    ) -> (usize, Option<Inserted>) {
        let (way, inserted) = match b.free() {
            Some(w) => {
                self.len.fetch_add(1, Ordering::Relaxed);
                (w, Inserted::Created)
            }
            None => {
                let memory = Span::new(self.strike_memory.load(Ordering::Relaxed));
                let w = evict::victim(b, now, half_life, memory, |p| self.keep_score(p));
                self.evicted.fetch_add(1, Ordering::Relaxed);
                (w, Inserted::Evicted)
            }
        };
        b.put(way, key, tag, Record::new(now));
        (way, Some(inserted))
    }

    /// Updates a record only if it is tracked (never creates one, never
    /// evicts).
    pub(crate) fn update_existing(&self, key: impl Into<Key>, f: impl FnOnce(&mut Record)) {
        let key = key.into();
        let (bucket, tag) = self.place(&key);
        let mut b = self.table.lock(bucket);
        if let Some(w) = b.find(&key, tag) {
            f(b.record_mut(w));
        }
    }

    pub(crate) fn remove(&self, key: &(impl Into<Key> + Copy)) -> bool {
        let key = (*key).into();
        let (bucket, tag) = self.place(&key);
        let mut b = self.table.lock(bucket);
        let Some(w) = b.find(&key, tag) else {
            return false;
        };
        b.clear(w);
        drop(b);
        self.len.fetch_sub(1, Ordering::Relaxed);
        self.publish_len();
        true
    }

    /// Visits every record (admin listing; takes each used bucket's lock in
    /// turn: `f` must not use the store). A bucket no key ever used is
    /// passed over without its lock, so its page stays unmapped.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Key, &Record)) {
        for i in 0..self.table.buckets() {
            if self.table.unused(i) {
                continue;
            }
            let b = self.table.lock(i);
            for (_, k, r) in b.iter() {
                f(k, r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::table::WAYS;
    use super::*;

    fn at(nanos: u64) -> Nanos {
        Nanos::new(nanos)
    }

    fn key(i: u32) -> Key {
        Key::new(
            ActorKey::ip(std::net::Ipv4Addr::from(i).into(), 32, 64, ActorKind::Ip),
            0,
        )
    }

    /// Keys `from..` that land in `bucket`, `n` of them.
    fn keys_in(s: &Store, bucket: usize, from: u32, n: usize) -> Vec<Key> {
        (from..)
            .map(key)
            .filter(|k| s.place(k).0 == bucket)
            .take(n)
            .collect()
    }

    fn held(s: &Store, k: &Key) -> bool {
        s.read(k, |_| ()).is_some()
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

    /// The capacity is `max_actors`, the last bucket smaller if need be;
    /// what the store holds never exceeds it.
    #[test]
    fn the_capacity_is_max_actors_in_whole_buckets() {
        assert_eq!(Store::new(16, Span::new(1)).capacity(), 16);
        assert_eq!(Store::new(1000, Span::new(1)).capacity(), 1000);
        assert_eq!(Store::new(200_000, Span::new(1)).capacity(), 200_000);
    }

    #[test]
    fn update_read_remove() {
        let s = Store::new(64, Span::new(1_000));
        let hl = Span::new(1_000);
        assert!(!held(&s, &key(1)));
        let sec = 1_000_000_000;
        assert_eq!(s.update(key(1), at(5 * sec), hl, |r| r.strikes), Some(0));
        s.update(key(1), at(6 * sec), hl, |r| r.strikes = 3);
        assert_eq!(
            s.read(&key(1), |r| (r.strikes, r.first_seen())),
            Some((3, at(5 * sec)))
        );
        s.update_existing(key(1), |r| r.strikes = 4);
        s.update_existing(key(2), |r| r.strikes = 4);
        assert_eq!(s.read(&key(1), |r| r.strikes), Some(4));
        assert!(!held(&s, &key(2)), "update_existing creates nothing");
        assert_eq!((s.len(), s.counted()), (1, 1));
        assert!(s.remove(&key(1)));
        assert!(!s.remove(&key(1)));
        assert_eq!((s.len(), s.counted()), (0, 0));
    }

    #[test]
    fn flood_keeps_bound_and_suspects() {
        let s = Store::new(1000, Span::new(1_000_000_000));
        let hl = Span::new(1_000_000_000);
        // A suspect, seen first.
        s.update(key(1), at(1), hl, |r| {
            r.strikes = 1;
            r.set_score(1.0);
        });
        for i in 2..100_000u32 {
            s.update(key(i), at(i as u64), hl, |r| {
                r.learn(at(i as u64), Span::new(10), Span::new(10), None, None)
            });
            assert!(s.len() <= s.capacity());
        }
        assert!(held(&s, &key(1)), "the suspect survived");
        assert!(s.evicted.load(Ordering::Relaxed) > 90_000);
        assert_eq!(s.len(), s.counted());
        // The last keys of the flood are all there: a new key is evicted
        // only after the older ones of its bucket.
        for i in 99_900..100_000u32 {
            assert!(held(&s, &key(i)), "key {i}");
        }
    }

    /// A new key at a full bucket evicts one record of that bucket, the
    /// least recently seen with nothing against it, and nothing else: the
    /// work one request does for eviction is one bucket's.
    #[test]
    fn a_new_key_evicts_one_record_of_its_own_bucket() {
        let hl = Span::new(1_000_000_000);
        let s = Store::new(4 * WAYS, Span::new(1_000_000_000));
        let mut all = Vec::new();
        for b in 0..4 {
            for (n, k) in keys_in(&s, b, 0, WAYS).into_iter().enumerate() {
                // Seen in a shuffled order: way order is not age order.
                let seen = 10 + ((n * 7) % WAYS) as u64;
                s.update(k, at(seen), hl, |r| r.last_seen = at(seen));
                all.push((b, seen, k));
            }
        }
        assert_eq!((s.len(), s.capacity()), (4 * WAYS, 4 * WAYS));
        let newcomer = keys_in(&s, 2, 1_000_000, 1)[0];
        s.update(newcomer, at(100), hl, |_| ());
        let gone: Vec<_> = all.iter().filter(|(_, _, k)| !held(&s, k)).collect();
        assert_eq!(gone.len(), 1, "{gone:?}");
        // Of bucket 2, the least recently seen.
        assert_eq!((gone[0].0, gone[0].1), (2, 10));
        assert!(held(&s, &newcomer));
        assert_eq!(s.len(), 4 * WAYS);
        assert_eq!(s.evicted.load(Ordering::Relaxed), 1);
    }

    /// A bucket full of suspects still tracks a new key: it takes the
    /// place of the least suspect record of that bucket, and the cap holds.
    #[test]
    fn a_bucket_full_of_suspects_still_tracks_a_newcomer() {
        let hl = Span::new(1_000_000_000_000);
        let s = Store::new(2 * WAYS, Span::new(1_000_000_000_000));
        let keys = keys_in(&s, 1, 0, WAYS);
        for (i, k) in keys.iter().enumerate() {
            // Scores 1.0 up, the least suspect in the middle of the ways.
            let score = 1.0 + ((i + 5) % WAYS) as f64 / 10.0;
            s.update(*k, at(1), hl, |r| {
                r.strikes = 1;
                r.set_score(score);
            });
        }
        let newcomer = keys_in(&s, 1, 1_000_000, 1)[0];
        assert_eq!(s.update(newcomer, at(2), hl, |r| r.strikes), Some(0));
        let gone: Vec<usize> = (0..WAYS).filter(|i| !held(&s, &keys[*i])).collect();
        assert_eq!(gone, [WAYS - 5], "the least suspect (score 1.0) went");
        assert_eq!(s.len(), WAYS);
        // Its next requests find its record.
        s.update(newcomer, at(3), hl, |r| r.strikes = 9);
        assert_eq!(s.read(&newcomer, |r| r.strikes), Some(9));
    }

    /// A flood of fresh keys into a store full of suspects: every key is
    /// tracked, the cap holds, and each bucket gives up two suspects, its
    /// least suspect, once (the first fresh key is not evicted by the
    /// second); then the fresh keys evict each other.
    #[test]
    fn a_flood_into_a_store_full_of_suspects_costs_two_suspects_a_bucket() {
        let hl = Span::new(1_000_000_000_000);
        let buckets = 8;
        let s = Store::new(buckets * WAYS, Span::new(1_000_000_000_000));
        let mut suspects = Vec::new();
        for b in 0..buckets {
            for (i, k) in keys_in(&s, b, 0, WAYS).into_iter().enumerate() {
                s.update(k, at(1), hl, |r| {
                    r.strikes = 1;
                    r.set_score(1.0 + i as f64 / 100.0);
                });
                suspects.push((i, k));
            }
        }
        for i in 0..50_000u32 {
            let k = key(1_000_000 + i);
            assert!(s.update(k, at(2 + u64::from(i)), hl, |_| ()).is_some());
            assert!(s.len() <= s.capacity());
        }
        let lost: Vec<usize> = suspects
            .iter()
            .filter(|(_, k)| !held(&s, k))
            .map(|(i, _)| *i)
            .collect();
        let each: Vec<usize> = (0..buckets).flat_map(|_| [0, 1]).collect();
        assert_eq!(lost, each, "each bucket's two least suspect, once");
        assert_eq!(s.len(), s.counted());
        assert_eq!(s.len(), s.capacity());
    }

    /// Records likely under a live block (the carry a block leaves) give
    /// their place last.
    #[test]
    fn records_under_a_block_go_last() {
        let hl = Span::new(1_000_000_000_000);
        let s = Store::new(WAYS, Span::new(1_000_000_000_000));
        let keys = keys_in(&s, 0, 0, WAYS);
        for (i, k) in keys.iter().enumerate() {
            s.update(*k, at(1), hl, |r| {
                r.strikes = 1;
                // The most suspect of all, but none under a block.
                r.set_score(if i == 3 { 9.0 } else { 1.0 });
                if i != 3 {
                    r.raise_carry(at(1), hl, 0.0, 2.0);
                }
            });
        }
        s.update(key(1_000_000), at(2), hl, |_| ());
        assert!(!held(&s, &keys[3]), "the one not held went first");
        assert_eq!(s.len(), WAYS);
    }

    #[test]
    fn old_strikes_and_stale_scores_age_out() {
        let hl = Span::new(100);
        let s = Store::new(WAYS, Span::new(1_000));
        let keys = keys_in(&s, 0, 0, WAYS);
        let struck = |t: u64, score: f64| {
            move |r: &mut Record| {
                r.last_seen = at(t);
                r.strikes = 1;
                r.set_score(score);
            }
        };
        // The least recently seen is the most suspect.
        for (i, k) in keys.iter().enumerate() {
            s.update(
                *k,
                at(1 + i as u64),
                hl,
                struck(1 + i as u64, (WAYS - i) as f64),
            );
        }
        // Soon after: all are current suspects; the least suspect gives its
        // place.
        s.update(key(1_000_000), at(20), hl, struck(20, 50.0));
        assert!(!held(&s, &keys[WAYS - 1]));
        // Long after (strike memory and many half-lives past), their strikes
        // no longer hold them: they are mild suspects, and the lowest
        // decayed score goes (the least suspect, not the oldest).
        s.update(key(1_000_001), at(100_000), hl, struck(100_000, 50.0));
        assert!(!held(&s, &keys[WAYS - 2]));
        assert!(held(&s, &keys[0]) && held(&s, &key(1_000_000)));
        assert_eq!(s.evicted.load(Ordering::Relaxed), 2);
    }

    /// With `throttle_at = 0.4`, a throttled actor (score 0.45) is a
    /// current suspect: a flood of fresh keys, each mildly suspect (a few
    /// foreign reads: 0.35), does not evict its record. Under a keep score
    /// of 0.6 (the default) it is only mildly suspect: it goes before a
    /// flood's keys at 0.5, but a flood held lower (0.35) cannot push it
    /// out.
    #[test]
    fn the_keep_score_follows_throttle_at() {
        let hl = Span::new(1_000_000_000_000);
        let flood = |keep: f64, others: f64| {
            let s = Store::new(WAYS, Span::new(1_000_000_000));
            s.set_keep_score(0, keep);
            s.update(key(1), at(1), hl, |r| {
                r.last_seen = at(1);
                r.set_score(0.45)
            });
            for i in 2..1_000u32 {
                let t = at(1 + u64::from(i));
                s.update(key(i), t, hl, |r| {
                    r.last_seen = t;
                    r.set_score(others)
                });
            }
            held(&s, &key(1))
        };
        assert!(flood(0.4, 0.35), "the throttled record survived");
        assert!(
            !flood(0.6, 0.5),
            "at 0.6 it is the least suspect of its class"
        );
        assert!(flood(0.6, 0.35), "a flood held lower does not push it out");
        let mut r = Record::new(at(1));
        r.set_score(0.45);
        let class = |keep| evict::eviction_class(&r, at(1), hl, Span::new(1_000_000_000), keep);
        assert_eq!(class(0.4), evict::KEEP);
        assert_eq!(class(0.6), 1, "at 0.6, 0.45 is only mildly suspect");
    }

    #[test]
    fn mild_suspects_go_before_suspects_and_idle_before_mild() {
        let hl = Span::new(1_000);
        let s = Store::new(WAYS, Span::new(1_000_000_000));
        let keys = keys_in(&s, 0, 0, WAYS);
        // The oldest are struck, then mild suspects, then the newest idle.
        for (i, k) in keys.iter().enumerate() {
            s.update(*k, at(1 + i as u64), hl, |r| {
                r.last_seen = at(1 + i as u64);
                match i {
                    0..6 => r.strikes = 1,
                    6..12 => r.set_score(0.4),
                    _ => {}
                }
            });
        }
        for n in 0..6u32 {
            let t = at(100 + u64::from(n));
            s.update(key(1_000_000 + n), t, hl, |r| r.last_seen = t);
        }
        let gone: Vec<usize> = (0..WAYS).filter(|i| !held(&s, &keys[*i])).collect();
        // The four idle (12..16) first; then the newcomers evict each
        // other (nothing against them either), the mild suspects stay.
        assert_eq!(gone, [12, 13, 14, 15]);
        let newcomers: Vec<bool> = (0..6u32).map(|n| held(&s, &key(1_000_000 + n))).collect();
        assert_eq!(newcomers, [false, false, true, true, true, true]);
    }

    /// A reload that removes a probe drops its records, and only those.
    #[test]
    fn drop_probe_drops_its_records() {
        let s = Store::new(4096, Span::new(1_000));
        let hl = Span::new(1_000);
        for i in 0..100u32 {
            let actor = key(i).actor();
            s.update(Key::new(actor, 0), at(1), hl, |_| ());
            s.update(Key::new(actor, 2), at(1), hl, |_| ());
        }
        let before = s.len();
        assert_eq!(s.drop_probe(2), before - s.len());
        assert_eq!(s.len(), s.counted());
        assert!((0..100u32).all(|i| held(&s, &key(i))));
        assert!((0..100u32).all(|i| !held(&s, &Key::new(key(i).actor(), 2))));
        let mut visited = 0;
        s.for_each(|k, _| {
            assert_eq!(k.probe(), 0);
            visited += 1;
        });
        assert_eq!(visited, s.len());
    }

    /// Keys spread over the buckets, however alike they are: a table
    /// filled to its capacity holds about 90% of it (the first overflow
    /// comes late) with sequential addresses, addresses one bit apart in
    /// the high half of an IPv6 address, accounts, or one actor's records
    /// of many probes.
    #[test]
    fn a_filled_table_holds_most_of_its_capacity() {
        let hl = Span::new(1_000);
        type Family = (&'static str, Box<dyn Fn(u32) -> Key>);
        let families: [Family; 4] = [
            ("sequential ipv4", Box::new(key)),
            (
                "ipv6 prefixes",
                Box::new(|i| {
                    let ip = std::net::Ipv6Addr::from(u128::from(i) << 64);
                    Key::new(ActorKey::ip(ip.into(), 32, 64, ActorKind::Ip), 0)
                }),
            ),
            (
                "accounts",
                Box::new(|i| Key::new(ActorKey::hashed(ActorKind::Account, u128::from(i)), 1)),
            ),
            (
                "probes",
                Box::new(|i| Key::new(key(i / 200).actor(), (i % 200) as u8)),
            ),
        ];
        for (name, make) in families {
            let s = Store::new(16_000, Span::new(1_000));
            for i in 0..16_000u32 {
                s.update(make(i), at(1), hl, |_| ());
            }
            let held = s.len() as f64 / s.capacity() as f64;
            assert!((0.86..0.95).contains(&held), "{name}: {held}");
        }
    }

    /// The hash is keyed per store: the same keys land in other buckets in
    /// another store (no one can work out, offline, keys that share one).
    #[test]
    fn the_buckets_are_keyed_per_store() {
        let (a, b) = (
            Store::new(16_000, Span::new(1)),
            Store::new(16_000, Span::new(1)),
        );
        let same = (0..1_000u32)
            .filter(|i| a.place(&key(*i)).0 == b.place(&key(*i)).0)
            .count();
        // 1,000 buckets: about one key in a thousand by chance.
        assert!(same < 20, "{same} of 1,000 keys in the same bucket");
    }

    /// A closure that panics while it updates a new record leaves the count
    /// right (the record is there, and counted), and the bucket unlocked.
    #[test]
    fn a_panicking_update_leaves_the_count_right() {
        let s = Store::new(64, Span::new(1_000));
        let hl = Span::new(1_000);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            s.update(key(1), at(1), hl, |_| panic!("in the closure"));
        }));
        assert!(r.is_err());
        assert_eq!((s.len(), s.counted()), (1, 1));
        assert!(s.remove(&key(1)));
        assert_eq!((s.len(), s.counted()), (0, 0));
    }

    /// An actor blocked before keeps its record (and so its strikes: a
    /// later block starts from them) against a bucket filled with throttled
    /// keys that were never blocked, even ones scored higher: the attack of
    /// someone who would erase its history with cheap identities.
    #[test]
    fn a_struck_record_outlasts_throttled_fillers() {
        let hl = Span::new(1_000_000);
        let s = Store::new(WAYS, Span::new(1_000_000_000));
        s.update(key(1), at(1), hl, |r| {
            r.last_seen = at(1);
            r.strikes = 3;
            r.set_score(1.0);
        });
        // One half-life later, fillers at 0.9 (a throttle, no strike).
        for i in 0..500u32 {
            let t = at(1_000_000 + u64::from(i));
            s.update(key(1_000 + i), t, hl, |r| {
                r.last_seen = t;
                r.set_score(0.9);
            });
        }
        assert_eq!(s.read(&key(1), |r| r.strikes), Some(3));
    }

    /// A bucket with suspects and two records that are not: one of those
    /// two goes, never a suspect.
    #[test]
    fn two_records_that_are_not_suspects_go_before_a_suspect() {
        let hl = Span::new(1_000_000_000);
        let s = Store::new(WAYS, Span::new(1_000_000_000));
        let keys = keys_in(&s, 0, 0, WAYS);
        for (i, k) in keys.iter().enumerate() {
            s.update(*k, at(1), hl, |r| {
                r.last_seen = at(1 + i as u64);
                match i {
                    0 => {}                // idle
                    1 => r.set_score(0.4), // mildly suspect
                    _ => r.set_score(1.0), // suspects
                }
            });
        }
        s.update(key(1_000_000), at(100), hl, |r| r.last_seen = at(100));
        let gone: Vec<usize> = (0..WAYS).filter(|i| !held(&s, &keys[*i])).collect();
        // The most recently seen of the two is spared: the idle one goes.
        assert_eq!(gone, [0]);
    }
}
