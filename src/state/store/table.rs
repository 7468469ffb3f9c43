//! The store's table: a fixed number of buckets of `WAYS` slots, allocated
//! once at start, each bucket behind its own lock.
//!
//! A key's hash picks its bucket (its high bits, by multiply-shift, so any
//! number of buckets works) and its tag (its low 16 bits). A bucket's head
//! (the lock, which ways are used and their tags) is one cache line; its
//! slots follow, each a key and its record side by side, so that a lookup
//! reads the head and the one slot whose tag matches. Nothing grows: the
//! table's memory is its capacity times a slot (plus a head per `WAYS`
//! slots), from start to end.

use parking_lot::{Mutex, MutexGuard};

use super::Key;
use crate::clock::Nanos;
use crate::state::record::Record;

/// Slots per bucket: a new key that finds its bucket full evicts one of
/// these (the work one request does for eviction: `WAYS` records judged).
/// 16 fills the table to about 90% before the first bucket overflows
/// (with 8, about 80%), and makes a bucket full of current suspects, the
/// only case where a suspect gives its place, rarer.
pub(super) const WAYS: usize = 16;

/// A key and its record, side by side (the record's hot fields follow the
/// key in the same cache line).
#[repr(C)]
struct Slot {
    key: Key,
    record: Record,
}

/// What a bucket's lock guards. A slot whose bit in `used` is clear holds
/// nothing (its old contents are overwritten when it is used again).
#[repr(C)]
pub(super) struct Ways {
    /// Bit `i`: way `i` holds a key.
    used: u16,
    /// Bit `i`: way `i` may hold a key (all but in the last bucket of a
    /// capacity that is not a multiple of `WAYS`).
    open: u16,
    /// The low 16 bits of each used way's key hash.
    tags: [u16; WAYS],
    slots: [Slot; WAYS],
}

/// A bucket: its head (the lock, `used`, the tags) in its first cache line.
#[repr(align(64))]
struct Bucket(Mutex<Ways>);

impl Bucket {
    /// An empty bucket of `ways` ways (1 to `WAYS`).
    fn empty(ways: usize) -> Self {
        let unused = Slot {
            key: Key::EMPTY,
            record: Record::new(Nanos::new(0)),
        };
        Bucket(Mutex::new(Ways {
            used: 0,
            open: (u16::MAX >> (WAYS - ways)),
            tags: [0; WAYS],
            slots: std::array::from_fn(|_| Slot {
                key: unused.key,
                record: unused.record.clone(),
            }),
        }))
    }
}

/// The buckets.
pub(super) struct Table {
    buckets: Box<[Bucket]>,
    /// Slots in all (the capacity asked for).
    slots: usize,
}

impl Table {
    /// An empty table of `cap` slots (at least one), in buckets of `WAYS`
    /// but the last.
    pub(super) fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        let n = cap.div_ceil(WAYS);
        Self {
            buckets: (0..n)
                .map(|i| Bucket::empty((cap - i * WAYS).min(WAYS)))
                .collect(),
            slots: cap,
        }
    }

    /// Slots in all.
    pub(super) fn slots(&self) -> usize {
        self.slots
    }

    pub(super) fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// The bucket a hash picks: its high bits, scaled to the bucket count.
    #[inline(always)]
    pub(super) fn bucket_of(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.buckets.len() as u128) >> 64) as usize
    }

    /// Locks bucket `i` (held for one record's update or one eviction).
    #[inline]
    pub(super) fn lock(&self, i: usize) -> Locked<'_> {
        Locked(self.buckets[i].0.lock())
    }
}

/// A locked bucket: its ways, until dropped.
pub(super) struct Locked<'a>(MutexGuard<'a, Ways>);

impl Locked<'_> {
    /// The way holding `key` (whose hash has this `tag`).
    #[inline(always)]
    pub(super) fn find(&self, key: &Key, tag: u16) -> Option<usize> {
        let w = &*self.0;
        let mut used = w.used;
        while used != 0 {
            let i = used.trailing_zeros() as usize;
            used &= used - 1;
            if w.tags[i] == tag && w.slots[i].key == *key {
                return Some(i);
            }
        }
        None
    }

    /// The record in used way `i`.
    #[inline(always)]
    pub(super) fn record(&self, i: usize) -> &Record {
        debug_assert!(self.0.used & (1 << i) != 0);
        &self.0.slots[i].record
    }

    /// The record in used way `i`, to update.
    #[inline(always)]
    pub(super) fn record_mut(&mut self, i: usize) -> &mut Record {
        debug_assert!(self.0.used & (1 << i) != 0);
        &mut self.0.slots[i].record
    }

    /// A way no key uses.
    #[inline]
    pub(super) fn free(&self) -> Option<usize> {
        let free = self.0.open & !self.0.used;
        (free != 0).then(|| free.trailing_zeros() as usize)
    }

    /// Puts `key` and `record` in way `i` (free, or a victim's).
    #[inline]
    pub(super) fn put(&mut self, i: usize, key: Key, tag: u16, record: Record) {
        let w = &mut *self.0;
        w.slots[i] = Slot { key, record };
        w.tags[i] = tag;
        w.used |= 1 << i;
    }

    /// Empties way `i`.
    #[inline]
    pub(super) fn clear(&mut self, i: usize) {
        self.0.used &= !(1 << i);
    }

    /// The used ways, with their keys and records.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, &Key, &Record)> + '_ {
        let w = &*self.0;
        (0..WAYS)
            .filter(move |i| w.used & (1 << i) != 0)
            .map(move |i| (i, &w.slots[i].key, &w.slots[i].record))
    }

    /// How many ways are used.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.used.count_ones() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::{ActorKey, ActorKind};

    fn key(i: u32) -> Key {
        Key::new(
            ActorKey::ip(std::net::Ipv4Addr::from(i).into(), 32, 64, ActorKind::Ip),
            0,
        )
    }

    #[test]
    fn a_bucket_head_is_one_cache_line() {
        // The lock (one byte, first), which ways are used and their tags.
        assert!(std::mem::size_of::<Mutex<Ways>>() - std::mem::size_of::<Ways>() <= 8);
        assert!(std::mem::offset_of!(Ways, slots) + 8 <= 64);
        assert_eq!(std::mem::align_of::<Bucket>(), 64);
    }

    #[test]
    fn put_find_clear() {
        let t = Table::new(2 * WAYS);
        assert_eq!(t.slots(), 2 * WAYS);
        let mut b = t.lock(1);
        assert_eq!(b.find(&key(1), 7), None);
        let i = b.free().unwrap();
        b.put(i, key(1), 7, Record::new(Nanos::new(5)));
        assert_eq!(b.find(&key(1), 7), Some(i));
        // Same tag, another key; same key, another tag: not it.
        assert_eq!(b.find(&key(2), 7), None);
        assert_eq!(b.find(&key(1), 8), None);
        assert_eq!(b.record(i).first_seen(), Nanos::new(0));
        assert_eq!(b.len(), 1);
        for j in 0..WAYS as u32 - 1 {
            let f = b.free().unwrap();
            b.put(f, key(100 + j), 9, Record::new(Nanos::new(5)));
        }
        assert_eq!(b.free(), None);
        assert_eq!(b.iter().count(), WAYS);
        b.clear(i);
        assert_eq!(b.find(&key(1), 7), None);
        assert_eq!(b.free(), Some(i));
        assert_eq!(b.len(), WAYS - 1);
    }

    /// A capacity that is not a multiple of `WAYS`: the last bucket has
    /// the rest, and never holds more.
    #[test]
    fn the_last_bucket_holds_the_rest() {
        let t = Table::new(WAYS + 3);
        assert_eq!((t.slots(), t.buckets()), (WAYS + 3, 2));
        let mut b = t.lock(1);
        for j in 0..3u32 {
            let f = b.free().unwrap();
            b.put(f, key(j), 1, Record::new(Nanos::new(1)));
        }
        assert_eq!(b.free(), None);
        assert_eq!(b.iter().count(), 3);
        drop(b);
        assert_eq!(t.lock(0).free(), Some(0));
    }

    /// Two threads update the same records under the buckets' locks: no
    /// update is lost.
    #[test]
    fn the_lock_loses_no_update() {
        let t = Table::new(64);
        {
            let mut b = t.lock(0);
            for i in 0..4u32 {
                b.put(i as usize, key(i), i as u16, Record::new(Nanos::new(1)));
            }
        }
        const ROUNDS: u32 = 20_000;
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for n in 0..ROUNDS {
                        let mut b = t.lock(0);
                        let w = (n % 4) as usize;
                        b.record_mut(w).strikes = b.record(w).strikes.wrapping_add(1);
                        b.record_mut(w).last_seen = Nanos::new(u64::from(n));
                    }
                });
            }
        });
        let b = t.lock(0);
        // Each way got 2 * ROUNDS / 4 increments (counted modulo 256).
        let expect = 2 * ROUNDS / 4 % 256;
        for w in 0..4 {
            assert_eq!(u32::from(b.record(w).strikes), expect, "way {w}");
        }
    }
}
