//! Room in a full table: which live verdicts go first, and the bounded
//! sweep that drops them; what a reload or housekeeping removes.

use super::*;

/// Each sweep of a full table evicts up to this fraction of its capacity.
const SWEEP_FRACTION: usize = 8;
/// Ranks sampled to find a sweep's cutoff.
const SWEEP_SAMPLE: usize = 1024;

/// The order in which a full table evicts live verdicts, lowest first:
/// throttles before blocks; then those an attacker can mint most cheaply
/// (sessions, then addresses, then accounts, then subnets); then the
/// soonest-ending. `None` for an operator's ban: never evicted.
fn evict_rank(key: &ActorKey, e: &Entry) -> Option<(u8, u8, Nanos)> {
    if e.reason == VerdictReason::Manual {
        return None;
    }
    let kind = match key.kind() {
        ActorKind::Session => 0u8,
        ActorKind::Ip => 1,
        ActorKind::Account => 2,
        ActorKind::Subnet => 3,
    };
    Some((u8::from(!e.is_throttle()), kind, e.until))
}

impl Table {
    /// Makes room for more verdicts, in one bounded step: drops expired
    /// verdicts, then up to an eighth of the capacity by rank (see
    /// [`evict_rank`]): throttles before blocks, those an attacker can mint
    /// most cheaply first, the soonest-ending first. An operator's ban is
    /// never evicted. One thread sweeps at a time (two passes over the
    /// table, a bounded sample in between); a sweep that finds nothing to
    /// evict (a table of bans) turns the next sweeps away until as many
    /// verdicts came, so no request pays a scan per verdict.
    pub(super) fn make_room(&self, now: Nanos) {
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
        let want = (self.cap / SWEEP_FRACTION).max(1);
        // Pass 1: the expired (all go), and a sample of the live ranks.
        let mut expired = 0usize;
        let mut count = 0usize;
        let stride = (self.cap / SWEEP_SAMPLE).max(1);
        let mut sample: Vec<(u8, u8, Nanos)> = Vec::with_capacity(SWEEP_SAMPLE.min(self.cap));
        for e in self.map.iter() {
            if e.until <= now {
                expired += 1;
            } else if let Some(rank) = evict_rank(e.key(), e.value()) {
                if count % stride == 0 && sample.len() < SWEEP_SAMPLE {
                    sample.push(rank);
                }
                count += 1;
            }
        }
        let more = want.saturating_sub(expired).min(count);
        let cutoff = if more == 0 || sample.is_empty() {
            None
        } else {
            sample.sort_unstable();
            let frac = more as f64 / count as f64;
            let idx = ((sample.len() as f64 * frac).ceil() as usize).clamp(1, sample.len()) - 1;
            Some(if more >= count {
                (u8::MAX, u8::MAX, Nanos::MAX)
            } else {
                sample[idx]
            })
        };
        // Pass 2: remove them, at most `more` live ones.
        let mut ranked = 0usize;
        let removed = self.drop_where(|k, e| {
            if e.until <= now {
                return true;
            }
            let evict =
                ranked < more && cutoff.is_some_and(|c| evict_rank(k, e).is_some_and(|r| r <= c));
            ranked += usize::from(evict);
            evict
        });
        if removed > 0 {
            self.len.fetch_sub(removed, Ordering::Relaxed);
            metrics::counter!(crate::metrics::EVICTIONS).increment(removed as u64);
        } else {
            self.cooldown.store(want, Ordering::Relaxed);
        }
    }

    /// Drops the verdicts that only ever apply to requests of probe slot
    /// `probe` (address verdicts and throttles caught there): a probe a
    /// reload removed. Returns how many went.
    pub(crate) fn drop_probe(&self, probe: u8) -> usize {
        let removed = self.drop_where(|k, e| e.probe == Some(probe) && !is_wide(k, e));
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Drops expired verdicts (housekeeping).
    pub(crate) fn purge_expired(&self, now: Nanos) -> usize {
        let removed = self.drop_where(|_, e| e.until <= now);
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Removes the verdicts `gone` picks, keeping the count of those that
    /// can refuse a request without a probe; returns how many went (the
    /// caller adjusts `len`).
    pub(super) fn drop_where(&self, mut gone: impl FnMut(&ActorKey, &Entry) -> bool) -> usize {
        let mut removed = 0usize;
        self.map.retain(|k, e| {
            if !gone(k, e) {
                return true;
            }
            removed += 1;
            self.changed(k, Some(e), None);
            false
        });
        removed
    }
}
