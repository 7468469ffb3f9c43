//! Half-life decay, in one place: the long view's sums, carried
//! suspicion, a record's last score and a block's carry all halve every
//! half-life (clock nanoseconds; a half-life of 0 is taken as 1).
//!
//! A decaying sum can be kept as of a fixed time `at` rather than as of
//! its last update: a unit added at `now` is stored as [`weight`]`(now,
//! at)` and the sum read at `t` as the stored value times
//! [`decay`]`(t - at)`. Exponential decay has no memory, so this reads
//! the same as decaying at every update, and the time kept needs no
//! sub-second precision (the record keeps whole seconds).

/// The share left after `dt` of something that halves every `half_life`:
/// `2^(-dt / half_life)`.
#[inline]
pub(crate) fn decay(dt: u64, half_life: u64) -> f64 {
    0.5f64.powf(dt as f64 / half_life.max(1) as f64)
}

/// What something that halves every `half_life` weighed `dt` before it
/// was worth 1: `2^(dt / half_life)`, the exponent capped at 64 (it only
/// reaches it for half-lives under a second, where nothing is kept that
/// long).
#[inline]
pub(crate) fn growth(dt: u64, half_life: u64) -> f64 {
    2f64.powf((dt as f64 / half_life.max(1) as f64).min(64.0))
}

/// What one unit added at `now` weighs as of `at` (before or after it):
/// `2^((now - at) / half_life)`, the exponent capped at 64.
#[inline]
pub(crate) fn weight(now: u64, at: u64, half_life: u64) -> f64 {
    if now >= at {
        growth(now - at, half_life)
    } else {
        2f64.powf((-((at - now) as f64) / half_life.max(1) as f64).min(64.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_every_half_life() {
        assert_eq!(decay(0, 10), 1.0);
        assert_eq!(decay(10, 10), 0.5);
        assert_eq!(decay(30, 10), 0.125);
        assert_eq!(growth(20, 10), 4.0);
        // A half-life of 0 is 1 nanosecond, not a division by zero.
        assert_eq!(decay(2, 0), 0.25);
        // The exponent is capped.
        assert_eq!(growth(1000, 1), 2f64.powi(64));
    }

    #[test]
    fn a_sum_kept_as_of_a_fixed_time_reads_as_one_decayed_at_each_step() {
        let h = 7_000;
        let (at, adds, read) = (1_000u64, [1_500u64, 4_200, 9_999], 12_345u64);
        let kept: f64 = adds.iter().map(|&t| weight(t, at, h)).sum::<f64>() * decay(read - at, h);
        let exact: f64 = adds.iter().map(|&t| decay(read - t, h)).sum();
        assert!((kept - exact).abs() < 1e-12, "{kept} vs {exact}");
        // Kept as of a time after the unit was added: it weighs less.
        assert!((weight(at, at + h, h) - 0.5).abs() < 1e-12);
    }
}
