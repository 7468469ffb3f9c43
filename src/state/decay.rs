//! Half-life decay, in one place: the long view's sums, carried
//! suspicion, a record's last score and a block's carry all halve every
//! half-life (a half-life of 0 is taken as 1 nanosecond).
//!
//! A decaying sum can be kept as of a fixed time `at` rather than as of
//! its last update: a unit added at `now` is stored as [`weight`]`(now,
//! at)` and the sum read at `t` as the stored value times
//! [`decay`]`(t - at)`. Exponential decay has no memory, so this reads
//! the same as decaying at every update, and the time kept needs no
//! sub-second precision (the record keeps whole seconds).

use crate::clock::{Nanos, Span};

/// The share left after `dt` of something that halves every `half_life`:
/// `2^(-dt / half_life)`.
#[inline]
pub(crate) fn decay(dt: Span, half_life: Span) -> f64 {
    0.5f64.powf(dt.ratio(half_life))
}

/// What something that halves every `half_life` weighed `dt` before it
/// was worth 1: `2^(dt / half_life)`, the exponent capped at 64 (it only
/// reaches it for half-lives under a second, where nothing is kept that
/// long).
#[inline]
pub(crate) fn growth(dt: Span, half_life: Span) -> f64 {
    2f64.powf(dt.ratio(half_life).min(64.0))
}

/// What one unit added at `now` weighs as of `at` (before or after it):
/// `2^((now - at) / half_life)`, the exponent capped at 64.
#[inline]
pub(crate) fn weight(now: Nanos, at: Nanos, half_life: Span) -> f64 {
    if now >= at {
        growth(now - at, half_life)
    } else {
        2f64.powf((-(at - now).ratio(half_life)).min(64.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_every_half_life() {
        let ns = Span::new;
        assert_eq!(decay(ns(0), ns(10)), 1.0);
        assert_eq!(decay(ns(10), ns(10)), 0.5);
        assert_eq!(decay(ns(30), ns(10)), 0.125);
        assert_eq!(growth(ns(20), ns(10)), 4.0);
        // A half-life of 0 is 1 nanosecond, not a division by zero.
        assert_eq!(decay(ns(2), ns(0)), 0.25);
        // The exponent is capped.
        assert_eq!(growth(ns(1000), ns(1)), 2f64.powi(64));
    }

    #[test]
    fn a_sum_kept_as_of_a_fixed_time_reads_as_one_decayed_at_each_step() {
        let h = Span::new(7_000);
        let (at, read) = (Nanos::new(1_000), Nanos::new(12_345));
        let adds = [1_500, 4_200, 9_999].map(Nanos::new);
        let kept: f64 = adds.iter().map(|&t| weight(t, at, h)).sum::<f64>() * decay(read - at, h);
        let exact: f64 = adds.iter().map(|&t| decay(read - t, h)).sum();
        assert!((kept - exact).abs() < 1e-12, "{kept} vs {exact}");
        // Kept as of a time after the unit was added: it weighs less.
        assert!((weight(at, at + h, h) - 0.5).abs() < 1e-12);
    }
}
