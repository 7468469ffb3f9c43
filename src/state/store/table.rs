//! The store's table: a fixed number of buckets of `WAYS` slots, allocated
//! once at start, each bucket behind its own lock.
//!
//! A key's hash picks its bucket (its high bits, by multiply-shift, so any
//! number of buckets works) and its tag (its low 16 bits). A bucket's head
//! (the lock, which ways are used and their tags: 40 bytes) starts a cache
//! line; its slots follow, each a key and its record side by side (184
//! bytes, so a slot spans three or four lines), so that a lookup reads the
//! head and the one slot whose tag matches. Nothing grows: the table's
//! memory is its capacity times a slot (plus 64 bytes per `WAYS` slots),
//! from start to end. It is allocated zeroed, which is an empty table: the
//! operating system maps its pages as keys first land in them, so a guard
//! starts in microseconds and a store that holds few records costs little
//! resident memory (a table built by writing every slot took 25 ms and its
//! whole size in resident memory at the default `max_actors`, for every
//! guard made).
//!
//! # Safety
//! This is the crate's only `unsafe` code: a zeroed allocation
//! ([`Buckets`]), a lock around each bucket (what a mutex does, in one
//! byte, so that a zeroed bucket is an unlocked one), and prefetch hints.
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

/// A key and its record, side by side (the record's hot fields right after
/// the key).
#[repr(C)]
struct Slot {
    key: Key,
    record: Record,
}

/// What a bucket's lock guards.
type Ways = [MaybeUninit<Slot>; WAYS];

/// A bucket: its head (the lock, `used`, the tags) at the start of its
/// first cache line, then its slots. `used` and the tags change only under the lock; they
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
    buckets: Buckets,
    /// Slots in all (the capacity asked for).
    slots: usize,
}

/// The buckets' memory: `n` buckets, 64-byte aligned inside an allocation
/// made at the allocator's smallest alignment. Only such an allocation is
/// `calloc`'s (fresh pages, mapped when first touched); one aligned to 64
/// is `posix_memalign`'s, then written with zeroes whole, which made every
/// guard pay for its whole table at start (25 ms, and all its memory
/// resident, at the default `max_actors`).
struct Buckets {
    base: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
    first: std::ptr::NonNull<Bucket>,
    n: usize,
}

// SAFETY: a bucket's `ways` is reached only through `Locked`, which holds
// the bucket's lock (see the module); the rest are atomics. The slots hold
// keys and records, which are plain data (asserted below).
unsafe impl Sync for Buckets {}
// SAFETY: as above; the allocation is owned, freed once by `Drop`.
unsafe impl Send for Buckets {}
const _: () = {
    const fn plain<T: Send + Sync>() {}
    plain::<Key>();
    plain::<Record>();
};

impl Buckets {
    /// `n` (at least one) empty buckets, zeroed.
    fn zeroed(n: usize) -> Self {
        let align = std::mem::align_of::<Bucket>();
        let size = n
            .checked_mul(std::mem::size_of::<Bucket>())
            .and_then(|s| s.checked_add(align))
            .expect("the table fits in memory");
        let layout = std::alloc::Layout::from_size_align(size, std::mem::align_of::<u64>())
            .expect("the table fits in memory");
        // SAFETY: the layout's size is not zero.
        let base = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(base) = std::ptr::NonNull::new(base) else {
            std::alloc::handle_alloc_error(layout);
        };
        let offset = base.as_ptr().align_offset(align);
        assert!(offset < align, "an address can be aligned");
        // SAFETY: `offset + n * size_of::<Bucket>() <= size`: in bounds.
        let first = unsafe { base.add(offset) }.cast::<Bucket>();
        Self {
            base,
            layout,
            first,
            n,
        }
    }

    #[inline(always)]
    fn as_slice(&self) -> &[Bucket] {
        // SAFETY: `first` is aligned, in bounds for `n` buckets, zeroed at
        // first (an empty bucket), and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.first.as_ptr(), self.n) }
    }

    fn as_mut_slice(&mut self) -> &mut [Bucket] {
        // SAFETY: as `as_slice`, and `&mut self` is the only access.
        unsafe { std::slice::from_raw_parts_mut(self.first.as_ptr(), self.n) }
    }
}

impl Drop for Buckets {
    fn drop(&mut self) {
        // SAFETY: `base` was allocated with `layout` by the global
        // allocator; buckets hold nothing to drop.
        unsafe { std::alloc::dealloc(self.base.as_ptr(), self.layout) }
    }
}

impl Table {
    /// An empty table of `cap` slots (at least one), in buckets of `WAYS`
    /// but the last.
    pub(super) fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        let n = cap.div_ceil(WAYS);
        let mut buckets = Buckets::zeroed(n);
        let rest = cap - (n - 1) * WAYS;
        if rest < WAYS {
            buckets.as_mut_slice()[n - 1].closed = u16::MAX << rest;
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
        self.buckets.n
    }

    /// The bucket a hash picks: its high bits, scaled to the bucket count.
    #[inline(always)]
    pub(super) fn bucket_of(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.buckets.n as u128) >> 64) as usize
    }

    /// Asks the processor to bring bucket `i`'s head into cache, without
    /// waiting for it (so that the misses of the few buckets a request
    /// needs overlap instead of coming one after the other).
    #[inline(always)]
    pub(super) fn prefetch_head(&self, i: usize) {
        prefetch(std::ptr::from_ref(&self.buckets.as_slice()[i]).cast());
    }

    /// Asks the processor to bring the slot of the key with this `tag` in
    /// bucket `i` into cache, if its tag is there (read without the lock: a
    /// hint only). Its head should be in cache already
    /// ([`prefetch_head`](Self::prefetch_head)).
    #[inline(always)]
    pub(super) fn prefetch_slot(&self, i: usize, tag: u16) {
        let bucket = &self.buckets.as_slice()[i];
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

    /// Whether bucket `i` holds no key now (read without its lock: a key
    /// may be arriving). Reading it maps no memory of its own: an untouched
    /// page reads as the system's shared zero page.
    #[inline]
    pub(super) fn unused(&self, i: usize) -> bool {
        self.buckets.as_slice()[i].used.load(Ordering::Relaxed) == 0
    }

    /// Locks bucket `i` (held for one record's update or one eviction:
    /// well under a microsecond).
    #[inline]
    pub(super) fn lock(&self, i: usize) -> Locked<'_> {
        let bucket = &self.buckets.as_slice()[i];
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

/// Prefetches the cache lines way `w` (`< WAYS`) of `bucket` spans (three
/// or four: a slot is 184 bytes, not aligned to a line). Only its first
/// lines, the key and the fields every update touches, measured no better.
#[inline(always)]
fn prefetch_way(bucket: &Bucket, w: usize) {
    // Only addresses are computed (in bounds: `w < WAYS`).
    let slot = bucket
        .ways
        .get()
        .cast::<MaybeUninit<Slot>>()
        .wrapping_add(w)
        .cast::<u8>();
    // The lines of its first byte, of the next two 64 bytes on, and of its
    // last byte: every line it spans (at most four), with no loop.
    prefetch(slot);
    prefetch(slot.wrapping_add(64));
    prefetch(slot.wrapping_add(128));
    prefetch(slot.wrapping_add(std::mem::size_of::<Slot>() - 1));
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
        debug_assert!(self.bucket.closed & (1 << i) == 0, "way {i} is closed");
        self.ways_mut()[i] = MaybeUninit::new(Slot { key, record });
        self.bucket.tags[i].store(tag, Ordering::Relaxed);
        let used = self.used() | (1 << i);
        self.bucket.used.store(used, Ordering::Relaxed);
    }

    /// Empties way `i`.
    #[inline]
    pub(super) fn clear(&mut self, i: usize) {
        debug_assert!(i < WAYS);
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

    /// A large table costs no resident memory until keys land in it: its
    /// allocation is the zeroed pages of `calloc`, not written at start.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_new_table_is_not_resident() {
        fn rss() -> usize {
            std::fs::read_to_string("/proc/self/statm")
                .ok()
                .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
                .map_or(0, |pages| pages * 4096)
        }
        let before = rss();
        let t = Table::new(2_000_000);
        let size = t.buckets() * std::mem::size_of::<Bucket>();
        assert!(size > 350 << 20, "{size}");
        // Other tests run beside this one in the process: far less than
        // the table's 376 MB, not nothing.
        let grew = rss().saturating_sub(before);
        assert!(grew < 64 << 20, "{grew} bytes resident after a new table");
        // Its last bucket is usable.
        let mut b = t.lock(t.buckets() - 1);
        assert!(b.free().is_some());
        b.put(0, key(1), 1, Record::new(Nanos::new(1)));
        assert_eq!(b.find(&key(1), 1), Some(0));
    }
}
