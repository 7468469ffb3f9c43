//! One sweeper at a time, and never none for good; and the background
//! sweeper that keeps a large store from filling, so that requests do not
//! sweep.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{OnceLock, Weak};
use std::thread::Thread;
use std::time::Duration;

use crate::clock::{Nanos, Span};

/// A store the background sweeper can keep from filling.
pub(crate) trait SweepAhead: Send + Sync + 'static {
    /// Its sweeper's state.
    fn background(&self) -> &Background;
    /// Sweeps until there is room ahead (bounded work); returns how many
    /// records went.
    fn sweep_ahead(&self, now: Nanos, half_life: Span) -> usize;
}

/// The background sweeper of one store: a thread started at the store's
/// first need (a store that never fills starts none), parked while the
/// store has room, and gone within a second of the store. A request only
/// stores the time and unparks it (an atomic swap; a system call when it
/// sleeps), and only while it is not sweeping already. If no thread can be
/// started, requests sweep when the store is full, as without it.
#[derive(Debug, Default)]
pub(crate) struct Background {
    thread: OnceLock<Option<Thread>>,
    /// Woken and not done yet (requests do not wake it again meanwhile).
    busy: AtomicBool,
    /// The time and half-life of the request that woke it: what the sweep
    /// decays suspicion to.
    now: AtomicU64,
    half_life: AtomicU64,
    closed: AtomicBool,
}

/// How long the sweeper sleeps at most before it checks whether its store
/// is gone.
const IDLE_CHECK: Duration = Duration::from_secs(1);

impl Background {
    /// Asks for a sweep ahead of need, as of `now`.
    #[inline]
    pub(crate) fn wake<S: SweepAhead>(&self, store: &Weak<S>, now: Nanos, half_life: Span) {
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        self.now.store(now.get(), Ordering::Relaxed);
        self.half_life.store(half_life.get(), Ordering::Relaxed);
        let thread = self.thread.get_or_init(|| {
            let store = store.clone();
            std::thread::Builder::new()
                .name("enumguard-sweep".into())
                .spawn(move || run(store))
                .ok()
                .map(|h| h.thread().clone())
        });
        // No thread: stay busy, so no request tries again.
        if let Some(t) = thread {
            t.unpark();
        }
    }

    /// Waits (five seconds at most) until the sweeper is not sweeping, for
    /// tests that compare counts it changes.
    #[cfg(test)]
    pub(crate) fn settle(&self) {
        let start = std::time::Instant::now();
        while self.busy.load(Ordering::Acquire)
            && self.thread.get().is_some_and(Option::is_some)
            && start.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The store is going: the thread ends.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(Some(t)) = self.thread.get() {
            t.unpark();
        }
    }
}

/// The sweeper's loop: sweeps when woken, ends when its store is gone.
fn run<S: SweepAhead>(store: Weak<S>) {
    loop {
        std::thread::park_timeout(IDLE_CHECK);
        let Some(store) = store.upgrade() else {
            return;
        };
        let bg = store.background();
        if bg.closed.load(Ordering::Acquire) {
            return;
        }
        if bg.busy.load(Ordering::Acquire) {
            let (now, half_life) = (
                Nanos::new(bg.now.load(Ordering::Relaxed)),
                Span::new(bg.half_life.load(Ordering::Relaxed)),
            );
            store.sweep_ahead(now, half_life);
            bg.busy.store(false, Ordering::Release);
        }
    }
}

/// The right to sweep a map, held by one thread at a time. Dropping it
/// (however the sweep ends, a panic included) hands the right back, so a
/// panic mid-sweep cannot turn eviction off for good.
pub(crate) struct Sweep<'a>(&'a AtomicBool);

impl<'a> Sweep<'a> {
    /// The right to sweep, if no other thread holds it.
    pub(crate) fn try_begin(flag: &'a AtomicBool) -> Option<Self> {
        flag.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Sweep(flag))
    }
}

impl Drop for Sweep<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_mid_sweep_hands_the_right_back() {
        let flag = AtomicBool::new(false);
        let r = std::panic::catch_unwind(|| {
            let _s = Sweep::try_begin(&flag).unwrap();
            assert!(Sweep::try_begin(&flag).is_none(), "one sweeper at a time");
            panic!("mid-sweep");
        });
        assert!(r.is_err());
        assert!(
            Sweep::try_begin(&flag).is_some(),
            "sweeping is possible again"
        );
    }
}
