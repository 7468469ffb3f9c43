//! One sweeper at a time, and never none for good.

use std::sync::atomic::{AtomicBool, Ordering};

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
