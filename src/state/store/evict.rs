//! Making room in a full store: which records go (`eviction_class`,
//! `victim_rank`), the sweep of one segment, the background sweeper's
//! work, and a new key's turn at a full store (`make_room`).

use std::sync::atomic::Ordering;

use super::super::record::Record;
use super::super::sweep::{Background, Sweep, SweepAhead};
use super::*;
use crate::state::decay::decay;

impl SweepAhead for Records {
    fn background(&self) -> &Background {
        &self.background
    }

    fn sweep_ahead(&self, now: Nanos, half_life: Span) -> usize {
        self.sweep_segments(now, half_life)
    }
}

/// How readily a record may be evicted to make room: 0 first (nothing
/// against it), 1 next (mild suspicion below a throttle, or strikes long
/// past), `KEEP` never (a recent strike, carried suspicion, or suspicion at a
/// throttle or above). Suspicion is read decayed to `now`, so a record that
/// went quiet long ago does not hold its place forever.
pub(crate) fn eviction_class(
    r: &Record,
    now: Nanos,
    half_life: Span,
    strike_memory: Span,
    keep_score: f64,
) -> u8 {
    let idle = now.saturating_sub(r.last_seen.max(r.first_seen()).max(r.carry_raised()));
    let score = r.last_score() * decay(idle, half_life);
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

/// How readily a current suspect gives its place to a new key in a store
/// full of them, lowest first: those likely under a live block (carried
/// suspicion of a block, `HELD_CARRY`) last, the soonest-ending first;
/// the others by decayed score plus carried suspicion. As `u64`s that sort
/// like the pairs (`held`, suspicion): a positive `f64`'s bits sort like it.
pub(crate) fn victim_rank(r: &Record, now: Nanos, half_life: Span) -> u64 {
    let idle = now.saturating_sub(r.last_seen.max(r.first_seen()).max(r.carry_raised()));
    let score = r.last_score() * decay(idle, half_life);
    let carry = r.carry_at(now, half_life);
    let held = carry >= HELD_CARRY;
    let suspicion = if held { carry } else { score + carry };
    let bits = if suspicion.is_nan() {
        f64::MAX.to_bits()
    } else {
        suspicion.max(0.0).to_bits()
    };
    (u64::from(held) << 63) | bits
}

impl Records {
    /// The background sweeper's work: sweeps segment after segment until the
    /// store is `LOW_WATER` full, one pass over the store at most. Returns
    /// how many records went.
    fn sweep_segments(&self, now: Nanos, half_life: Span) -> usize {
        let low = self.cap / 32 * LOW_WATER;
        let mut total = 0;
        for _ in 0..self.segments.len() {
            if self.len.load(Ordering::Relaxed) <= low {
                break;
            }
            let removed = self.sweep(now, half_life);
            self.removed(removed);
            total += removed;
        }
        total
    }

    /// Counts `removed` records gone by a sweep.
    fn removed(&self, removed: usize) {
        if removed > 0 {
            self.len.fetch_sub(removed, Ordering::Relaxed);
            self.evicted.fetch_add(removed, Ordering::Relaxed);
            metrics::counter!(crate::metrics::EVICTIONS).increment(removed as u64);
            self.publish_len();
        }
    }

    /// Makes room for one new key: takes a victim the last sweep picked,
    /// or sweeps a segment no other thread is sweeping. Returns whether
    /// there is room.
    pub(super) fn make_room(&self, now: Nanos, half_life: Span) -> bool {
        if self.take_victim(now, half_life) {
            return true;
        }
        // Turn this key away after a sweep that found nothing at all.
        if self
            .cooldown
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1))
            .is_ok()
        {
            return false;
        }
        // Another thread may have swept (or freed room) just before.
        if self.len.load(Ordering::Relaxed) < self.cap || self.take_victim(now, half_life) {
            return true;
        }
        // A segment with nothing to evict nor pick: one more, at most.
        let mut removed = self.sweep(now, half_life);
        if removed == 0 && self.victim_len.load(Ordering::Acquire) == 0 && self.segments.len() > 1 {
            removed = self.sweep(now, half_life);
        }
        self.removed(removed);
        if self.len.load(Ordering::Relaxed) < self.cap || self.take_victim(now, half_life) {
            return true;
        }
        let share = (self.cap / self.segments.len()).max(1);
        self.cooldown
            .store((share / SWEEP_FRACTION).max(1), Ordering::Relaxed);
        false
    }

    /// Evicts the next victim the last sweep picked, unless it grew more
    /// suspect since (then the next, `VICTIM_TRIES` at most). Returns
    /// whether one went.
    pub(super) fn take_victim(&self, now: Nanos, half_life: Span) -> bool {
        let Some(slots) = self.victims.get() else {
            return false;
        };
        for _ in 0..VICTIM_TRIES {
            let Ok(i) = self
                .victim_next
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |i| {
                    (i < self.victim_len.load(Ordering::Acquire)).then_some(i + 1)
                })
            else {
                return false;
            };
            let taken = slots[i].lock().map(|mut v| v.take()).unwrap_or(None);
            let Some((key, rank)) = taken else {
                continue;
            };
            if self
                .segment_of(&key)
                .remove_if(&key, |_, r| victim_rank(r, now, half_life) <= rank)
                .is_some()
            {
                self.len.fetch_sub(1, Ordering::Relaxed);
                self.evicted.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(crate::metrics::EVICTIONS).increment(1);
                return true;
            }
        }
        false
    }

    /// One sweep of a full store, over the next segment (round robin):
    /// evicts up to an eighth of a segment's share of the capacity, class 0
    /// then class 1, least recently seen first, at most the less recently
    /// seen half of each class; if that is less than a 32nd of the share,
    /// picks the rest of that as victims among the suspects, lowest
    /// [`victim_rank`] first. One pass over the segment copies its records
    /// out under each shard's read lock in turn; the classes, samples and
    /// cutoffs are worked out from the copy with no lock held; each
    /// eviction then takes its record's shard lock once, and spares a
    /// record a request touched since the copy. Returns how many it
    /// removed.
    pub(super) fn sweep(&self, now: Nanos, half_life: Span) -> usize {
        // The next segment no one is sweeping.
        let n = self.segments.len();
        let Some((map, _segment)) = (0..n).find_map(|_| {
            let i = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
            Sweep::try_begin(&self.busy[i]).map(|g| (&self.segments[i], g))
        }) else {
            return 0;
        };
        // Victims are picked by one sweep at a time.
        let picker = Sweep::try_begin(&self.sweeping);
        let share = (self.cap / self.segments.len()).max(1);
        let memory = Span::new(self.strike_memory.load(Ordering::Relaxed));
        let target = (share / SWEEP_FRACTION).max(1);
        let room = (share / ROOM_FRACTION).max(1);
        let stride = (share / SWEEP_SAMPLE).max(1);
        let mut samples: [Vec<u64>; 3] = std::array::from_fn(|_| Vec::with_capacity(SWEEP_SAMPLE));
        let mut counts = [0usize; 3];
        let seen = |r: &Record| r.last_seen.max(r.first_seen());
        let class_of = |k: &Key, r: &Record| {
            usize::from(eviction_class(
                r,
                now,
                half_life,
                memory,
                self.keep_score(k.probe),
            ))
        };
        // One pass under the shards' read locks copies the segment out (a few
        // dozen records a lock, no arithmetic): what to evict is worked out
        // with no lock held, and each eviction takes its shard's lock once,
        // for that record, only if it was not touched since the copy.
        // The copy's buffer is kept for the next sweep (hundreds of KiB: a new
        // one each time would map and unmap memory, which stalls the other
        // cores' requests); a sweep that finds it taken makes its own.
        let mut kept = self.copy_buffer.try_lock().ok();
        let mut own = Vec::new();
        let copy: &mut Vec<(Key, Record)> = match kept.as_deref_mut() {
            Some(b) => b,
            None => &mut own,
        };
        copy.clear();
        copy.reserve(map.len() + 64);
        for e in map.iter() {
            copy.push((*e.key(), e.value().clone()));
        }
        let mut judged: Vec<(usize, u64)> = Vec::with_capacity(copy.len());
        for (k, r) in copy.iter() {
            let c = class_of(k, r);
            let value = if c == usize::from(KEEP) {
                victim_rank(r, now, half_life)
            } else {
                seen(r).get()
            };
            if counts[c] % stride == 0 && samples[c].len() < SWEEP_SAMPLE {
                samples[c].push(value);
            }
            counts[c] += 1;
            judged.push((c, value));
        }
        let mut cutoff = |c: usize, want: usize| -> u64 {
            let sample = &mut samples[c];
            if want == 0 || sample.is_empty() {
                return 0;
            }
            if want >= counts[c] {
                return u64::MAX;
            }
            sample.sort_unstable();
            let frac = want as f64 / counts[c] as f64;
            let idx = ((sample.len() as f64 * frac).ceil() as usize).clamp(1, sample.len()) - 1;
            sample[idx]
        };
        // Of each class, at most the less recently seen half: a new key
        // (class 0 at first) is not evicted by the next new key before it
        // came back, when it is the only one of its class (a store full of
        // suspects).
        let want0 = target.min(counts[0] / 2);
        let want1 = (target - want0).min(counts[1] / 2);
        let want_victims = if picker.is_some() {
            room.saturating_sub(want0 + want1).min(counts[2])
        } else {
            0
        };
        let cuts = [cutoff(0, want0), cutoff(1, want1), cutoff(2, want_victims)];
        let wants = [want0, want1, want_victims];
        let slots = (want_victims > 0).then(|| {
            self.victims
                .get_or_init(|| (0..room).map(|_| std::sync::Mutex::new(None)).collect())
        });
        // Victims are published once all are in.
        if picker.is_some() {
            self.victim_len.store(0, Ordering::Release);
            self.victim_next.store(0, Ordering::Release);
        }
        let mut done = [0usize; 3];
        let mut removed = 0;
        for ((k, r), &(c, value)) in copy.iter().zip(judged.iter()) {
            if done[c] >= wants[c] || value > cuts[c] {
                continue;
            }
            if c == usize::from(KEEP) {
                if let Some(slot) = slots.and_then(|s| s.get(done[c])) {
                    if let Ok(mut v) = slot.lock() {
                        *v = Some((*k, value));
                        done[c] += 1;
                    }
                }
                continue;
            }
            done[c] += 1;
            // Unless a request touched it since the copy (it is then as
            // recent as can be).
            let unchanged = |_: &Key, now: &Record| {
                now.last_seen == r.last_seen
                    && now.strikes == r.strikes
                    && now.carry_raised() == r.carry_raised()
                    && now.last_score() == r.last_score()
            };
            removed += usize::from(map.remove_if(k, unchanged).is_some());
        }
        if picker.is_some() {
            self.victim_len.store(done[2], Ordering::Release);
        }
        let visited = copy.len() + done[0] + done[1];
        self.longest_sweep.fetch_max(visited, Ordering::Relaxed);
        removed
    }
}
