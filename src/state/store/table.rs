//! The store's table: a fixed number of buckets of `WAYS` slots, allocated
//! once at start, each bucket behind its own lock.
//!
//! A key's hash picks its bucket (its high bits, by multiply-shift, so any
//! number of buckets works) and its tag (its low 16 bits). A bucket's head
//! (the lock, which ways are used and their tags) is one cache line; its
//! slots follow, each a key and its record side by side, so that a lookup
//! reads the head and the one slot whose tag matches. Nothing grows: the
//! table's memory is its capacity times a slot (plus a head per `WAYS`
//! slots), from start to end. It is allocated zeroed, which is an empty
//! table: the operating system maps its pages as keys first land in them,
//! so a guard starts in microseconds and a store that holds few records
//! costs little resident memory (a table built by writing every slot took
//! 25 ms and its whole size in resident memory at the default
//! `max_actors`, for every guard made).
//!
//! # Safety
//! This is the crate's only `unsafe` code: a zeroed allocation, and a lock
//! around each bucket (what a mutex does, in one byte, so that a zeroed
//! bucket is an unlocked one).
//! - A zeroed [`Bucket`] is valid and empty: `lock` is an unlocked
//!   `AtomicU8`, `used`, `closed` and the tags are integers (no way used,
//!   every way open), and the slots are `MaybeUninit`.
//! - A bucket's `ways` is reached only through [`Locked`], which exists only
//!   while its thread holds the bucket's lock (acquired by a compare-exchange
//!   with `Acquire`, released on drop with `Release`, panics included): one
//!   thread at a time, each seeing the last holder's writes.
//! - A slot is read only while its bit in `used` is set, which `put` sets
//!   after writing the slot. Slots hold no heap memory (asserted at compile
//!   time), so one overwritten or forgotten needs no drop.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU8, AtomicU16, Ordering};

use super::Key;
use crate::state::record::Record;

/// Slots per bucket: a new key that finds its bucket full evicts one of
/// these (the work one request does for eviction: `WAYS` records judged).
/// 16 fills the table to about 90% before the first bucket overflows
/// (with 8, about 80%), and makes a bucket full of current suspects, the
/// only case where a suspect gives its place, rarer.
pub(super) const WAYS: usize = 16;

const _: () = assert!(!std::mem::needs_drop::<Slot>());

const _: () = assert!(WAYS <= 16, "`used` and `closed` are u16 masks");

/// A key and its record, side by side (the record's hot fields follow the
/// key in the same cache line).
#[repr(C)]
struct Slot {
    key: Key,
    record: Record,
}

/// What a bucket's lock guards.
type Ways = [MaybeUninit<Slot>; WAYS];

/// A bucket: its head (the lock, `used`, the tags) in its first cache line,
/// then its slots. `used` and the tags change only under the lock; they
/// are atomics so that [`Table::prefetch_slot`] may read them without it.
#[repr(C, align(64))]
struct Bucket {
    /// 0: free; 1: held.
    lock: AtomicU8,
    /// Bit `i`: way `i` may not hold a key (the ways past the capacity, in
    /// the last bucket of a capacity that is not a multiple of `WAYS`).
    closed: u16,
    /// Bit `i`: way `i` holds a key.
    used: AtomicU16,
    /// The low 16 bits of each used way's key hash.
    tags: [AtomicU16; WAYS],
    ways: UnsafeCell<Ways>,
}

/// The buckets.
pub(super) struct Table {
    buckets: Box<[Bucket]>,
    /// Slots in all (the capacity asked for).
    slots: usize,
}

// SAFETY: a bucket's `ways` is reached only through `Locked`, which holds
// the bucket's lock (see the module).
unsafe impl Sync for Table {}
// SAFETY: the slots hold plain data (no thread-bound values).
unsafe impl Send for Table {}

impl Table {
    /// An empty table of `cap` slots (at least one), in buckets of `WAYS`
    /// but the last.
    pub(super) fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        let n = cap.div_ceil(WAYS);
        let mut buckets = zeroed_buckets(n);
        let rest = cap - (n - 1) * WAYS;
        if rest < WAYS {
            buckets[n - 1].closed = u16::MAX << rest;
        }
        Self {
            buckets,
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

    /// Asks the processor to bring bucket `i`'s head into cache, without
    /// waiting for it (so that the misses of the few buckets a request
    /// needs overlap instead of coming one after the other).
    #[inline(always)]
    pub(super) fn prefetch_head(&self, i: usize) {
        prefetch(std::ptr::from_ref(&self.buckets[i]).cast());
    }

    /// Asks the processor to bring the slot of the key with this `tag` in
    /// bucket `i` into cache, if its tag is there (read without the lock: a
    /// hint only). Its head should be in cache already
    /// ([`prefetch_head`](Self::prefetch_head)).
    #[inline(always)]
    pub(super) fn prefetch_slot(&self, i: usize, tag: u16) {
        let bucket = &self.buckets[i];
        let mut used = bucket.used.load(Ordering::Relaxed);
        while used != 0 {
            let w = used.trailing_zeros() as usize;
            used &= used - 1;
            if bucket.tags[w].load(Ordering::Relaxed) == tag {
                prefetch_way(bucket, w);
                return;
            }
        }
    }

    /// Locks bucket `i` (held for one record's update or one eviction:
    /// well under a microsecond).
    #[inline]
    pub(super) fn lock(&self, i: usize) -> Locked<'_> {
        let bucket = &self.buckets[i];
        if bucket
            .lock
            .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            lock_slow(&bucket.lock);
        }
        Locked { bucket }
    }
}

/// `n` (at least one) empty buckets, zeroed: no page of them is touched.
fn zeroed_buckets(n: usize) -> Box<[Bucket]> {
    let layout = std::alloc::Layout::array::<Bucket>(n).expect("the table fits in memory");
    assert!(layout.size() > 0);
    // SAFETY: the layout's size is not zero.
    let p = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<Bucket>();
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `p` is an allocation of the global allocator with the layout
    // of `[Bucket; n]`, as a `Box<[Bucket]>` expects, and all zeroes is an
    // empty bucket (see the module).
    unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n)) }
}

/// Prefetches the cache lines of way `w` (`< WAYS`) of `bucket`. (Its
/// first lines only, the key and the fields every update touches, measured
/// no better.)
#[inline(always)]
fn prefetch_way(bucket: &Bucket, w: usize) {
    // Only the address is computed (in bounds: `w < WAYS`).
    let slot = bucket
        .ways
        .get()
        .cast::<MaybeUninit<Slot>>()
        .wrapping_add(w);
    let start = slot.cast::<u8>();
    for line in (0..std::mem::size_of::<Slot>()).step_by(64) {
        prefetch(start.wrapping_add(line));
    }
}

/// A prefetch hint for the cache line at `p` (nothing is read: any
/// address is fine).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch has no effect on memory, whatever the address;
    // SSE is in every x86_64 processor. (An `unsafe fn` before Rust 1.87.)
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Waits for a held lock: spins a little (the holder is updating one
/// record), then yields to let a preempted holder run.
#[cold]
#[inline(never)]
fn lock_slow(lock: &AtomicU8) {
    let mut spins = 0u32;
    loop {
        if lock.load(Ordering::Relaxed) == 0
            && lock
                .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return;
        }
        if spins < 64 {
            spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// A locked bucket: its ways, until dropped.
pub(super) struct Locked<'a> {
    bucket: &'a Bucket,
}

impl Drop for Locked<'_> {
    #[inline]
    fn drop(&mut self) {
        self.bucket.lock.store(0, Ordering::Release);
    }
}

impl Locked<'_> {
    #[inline(always)]
    fn ways(&self) -> &Ways {
        // SAFETY: the lock is held (see the module).
        unsafe { &*self.bucket.ways.get() }
    }

    #[inline(always)]
    fn ways_mut(&mut self) -> &mut Ways {
        // SAFETY: the lock is held, and `&mut self` is the only access.
        unsafe { &mut *self.bucket.ways.get() }
    }

    /// The used ways (bits).
    #[inline(always)]
    fn used(&self) -> u16 {
        self.bucket.used.load(Ordering::Relaxed)
    }

    /// The way holding `key` (whose hash has this `tag`).
    #[inline(always)]
    pub(super) fn find(&self, key: &Key, tag: u16) -> Option<usize> {
        let w = self.ways();
        let mut used = self.used();
        while used != 0 {
            let i = used.trailing_zeros() as usize;
            used &= used - 1;
            if self.bucket.tags[i].load(Ordering::Relaxed) == tag
                // SAFETY: way `i` is used: written under this lock.
                && unsafe { &w[i].assume_init_ref().key } == key
            {
                return Some(i);
            }
        }
        None
    }

    /// The record in used way `i`.
    #[inline(always)]
    pub(super) fn record(&self, i: usize) -> &Record {
        assert!(self.used() & (1 << i) != 0, "way {i} is not used");
        // SAFETY: way `i` is used.
        unsafe { &self.ways()[i].assume_init_ref().record }
    }

    /// The record in used way `i`, to update.
    #[inline(always)]
    pub(super) fn record_mut(&mut self, i: usize) -> &mut Record {
        assert!(self.used() & (1 << i) != 0, "way {i} is not used");
        // SAFETY: way `i` is used.
        unsafe { &mut self.ways_mut()[i].assume_init_mut().record }
    }

    /// A way no key uses.
    #[inline]
    pub(super) fn free(&self) -> Option<usize> {
        let free = !(self.used() | self.bucket.closed);
        (free != 0).then(|| free.trailing_zeros() as usize)
    }

    /// Puts `key` and `record` in way `i` (free, or a victim's).
    #[inline]
    pub(super) fn put(&mut self, i: usize, key: Key, tag: u16, record: Record) {
        self.ways_mut()[i] = MaybeUninit::new(Slot { key, record });
        self.bucket.tags[i].store(tag, Ordering::Relaxed);
        let used = self.used() | (1 << i);
        self.bucket.used.store(used, Ordering::Relaxed);
    }

    /// Empties way `i`.
    #[inline]
    pub(super) fn clear(&mut self, i: usize) {
        let used = self.used() & !(1 << i);
        self.bucket.used.store(used, Ordering::Relaxed);
    }

    /// The used ways, with their keys and records.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, &Key, &Record)> + '_ {
        let (w, used) = (self.ways(), self.used());
        (0..WAYS)
            .filter(move |i| used & (1 << i) != 0)
            .map(move |i| {
                // SAFETY: way `i` is used.
                let s = unsafe { w[i].assume_init_ref() };
                (i, &s.key, &s.record)
            })
    }

    /// How many ways are used.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.used().count_ones() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::{ActorKey, ActorKind};
    use crate::clock::Nanos;

    fn key(i: u32) -> Key {
        Key::new(
            ActorKey::ip(std::net::Ipv4Addr::from(i).into(), 32, 64, ActorKind::Ip),
            0,
        )
    }

    #[test]
    fn a_bucket_head_is_one_cache_line() {
        // The lock, which ways are used and their tags.
        assert!(std::mem::offset_of!(Bucket, ways) <= 64);
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
