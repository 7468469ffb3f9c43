//! Time for the guard: a [`Clock`] trait, the [`SystemClock`] used in
//! production and a [`ManualClock`] that tests advance by hand.
//!
//! All windows, verdict expiries and throttle quotas read time through one
//! clock, so a test can replay hours of traffic in microseconds:
//!
//! ```
//! use enumguard::{Clock, ManualClock};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let t0 = clock.now_nanos();
//! clock.advance(Duration::from_secs(90));
//! assert_eq!(clock.now_nanos() - t0, 90_000_000_000);
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The furthest a clock may be from its origin when the guard is built, in
/// seconds: half the range of the records' 32-bit seconds.
pub(crate) const MAX_ORIGIN_SECS: u64 = u32::MAX as u64 / 2;

/// A monotonic source of time, in nanoseconds since an arbitrary origin.
///
/// Implementations must never go backwards. The guard reads the clock at most
/// once per request. The origin may be at most about 68 years before the
/// guard is built ([`GuardBuilder::build`](crate::GuardBuilder::build)
/// refuses a clock further from its origin): records keep coarse times as
/// 32-bit seconds of the clock, which last 136 years from its origin.
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds since this clock's origin.
    fn now_nanos(&self) -> u64;
}

/// The production clock: [`Instant`] relative to the moment it was created.
#[derive(Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SystemClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemClock").finish_non_exhaustive()
    }
}

impl Clock for SystemClock {
    fn now_nanos(&self) -> u64 {
        // u64 nanoseconds last 584 years from the origin.
        self.origin.elapsed().as_nanos() as u64
    }
}

/// A clock that moves only when told to. Clones share the same time.
///
/// Starts at one hour past its origin, so that "an hour ago" is never
/// before the origin in tests.
#[derive(Clone)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A manual clock reading one hour.
    pub fn new() -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(3_600_000_000_000)),
        }
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.nanos
            .fetch_add(by.as_nanos().min(u64::MAX as u128) as u64, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("nanos", &self.nanos.load(Ordering::Relaxed))
            .finish()
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> u64 {
        self.nanos.load(Ordering::SeqCst)
    }
}

/// The clock as the guard holds it, adapted to governor's clock trait.
#[derive(Clone)]
pub(crate) struct SharedClock(pub(crate) Arc<dyn Clock>);

impl SharedClock {
    /// The clock's reading: where [`Clock::now_nanos`] becomes a [`Nanos`].
    pub(crate) fn now(&self) -> Nanos {
        Nanos(self.0.now_nanos())
    }
}

impl fmt::Debug for SharedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedClock")
    }
}

impl governor::clock::Clock for SharedClock {
    type Instant = governor::nanos::Nanos;

    fn now(&self) -> Self::Instant {
        governor::nanos::Nanos::from(self.0.now_nanos())
    }
}

pub(crate) const NANOS_PER_SEC: u64 = 1_000_000_000;

/// An instant on the guard's clock: nanoseconds since the clock's origin
/// (what [`Clock::now_nanos`] reads).
///
/// Instants and lengths of time are two types so that the compiler catches
/// what the bare `u64` let through: an instant minus an instant is a
/// [`Span`], an instant plus a span is an instant, and an instant is never
/// added to another or compared with a span. Both wrap a `u64` and cost
/// nothing over it; the operators keep `u64`'s overflow rules (the
/// `saturating_*` methods where the code needs them).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Nanos(u64);

/// A length of time on the guard's clock, in nanoseconds: a window, a
/// half-life, a block's or a throttle's duration. See [`Nanos`].
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Span(u64);

impl Nanos {
    /// The clock's origin.
    pub(crate) const ZERO: Nanos = Nanos(0);
    /// The end of time: a verdict held until it never ends.
    pub(crate) const MAX: Nanos = Nanos(u64::MAX);

    /// The instant `nanos` after the clock's origin (a value stored as
    /// bits: an atomic, the wire, a test's literal).
    #[inline]
    pub(crate) const fn new(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the clock's origin (to store as bits).
    #[inline]
    pub(crate) const fn get(self) -> u64 {
        self.0
    }

    /// The time since the clock's origin.
    #[inline]
    pub(crate) const fn since_origin(self) -> Span {
        Span(self.0)
    }

    /// The instant `secs` whole seconds after the clock's origin.
    #[inline]
    pub(crate) const fn from_secs_u32(secs: u32) -> Self {
        Self(secs as u64 * NANOS_PER_SEC)
    }

    /// Whole seconds since the clock's origin, saturating: a `u32` holds
    /// 136 years from the origin (the process start for
    /// [`SystemClock`]).
    #[inline]
    pub(crate) fn to_secs_u32(self) -> u32 {
        (self.0 / NANOS_PER_SEC).min(u32::MAX as u64) as u32
    }

    /// The time from `earlier` to this instant, 0 if `earlier` is later
    /// (a racing request's older clock reading).
    #[inline]
    pub(crate) const fn saturating_sub(self, earlier: Nanos) -> Span {
        Span(self.0.saturating_sub(earlier.0))
    }

    /// The instant `span` later, at most [`Nanos::MAX`].
    #[inline]
    pub(crate) const fn saturating_add(self, span: Span) -> Nanos {
        Nanos(self.0.saturating_add(span.0))
    }
}

impl Span {
    /// A span of `nanos` nanoseconds.
    #[inline]
    pub(crate) const fn new(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Its nanoseconds (to store as bits, or for arithmetic in `f64`).
    #[inline]
    pub(crate) const fn get(self) -> u64 {
        self.0
    }

    /// A span of `secs` seconds, saturating.
    #[inline]
    pub(crate) const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(NANOS_PER_SEC))
    }

    /// A span of `millis` milliseconds, saturating (the cluster's wire
    /// counts in milliseconds).
    #[cfg(feature = "redis")]
    #[inline]
    pub(crate) const fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(1_000_000))
    }

    /// A [`Duration`] as a span, saturating at [`Span::MAX`].
    #[inline]
    pub(crate) fn from_duration(d: Duration) -> Self {
        Self(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Whole seconds (rounded down).
    #[inline]
    pub(crate) const fn as_secs(self) -> u64 {
        self.0 / NANOS_PER_SEC
    }

    /// Whole milliseconds (rounded down).
    #[inline]
    pub(crate) const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// As a [`Duration`].
    #[inline]
    pub(crate) const fn as_duration(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// `n` times this span, saturating.
    #[inline]
    pub(crate) const fn saturating_mul(self, n: u64) -> Span {
        Span(self.0.saturating_mul(n))
    }

    /// How many times `unit` goes into this span, as a real number (for
    /// decay exponents); a `unit` of 0 is taken as 1 nanosecond.
    #[inline]
    pub(crate) fn ratio(self, unit: Span) -> f64 {
        self.0 as f64 / unit.0.max(1) as f64
    }
}

impl std::ops::Sub for Nanos {
    type Output = Span;

    /// The time from `earlier` to `self` (which must not be before it).
    #[inline]
    fn sub(self, earlier: Nanos) -> Span {
        Span(self.0 - earlier.0)
    }
}

impl std::ops::Add<Span> for Nanos {
    type Output = Nanos;

    #[inline]
    fn add(self, span: Span) -> Nanos {
        Nanos(self.0 + span.0)
    }
}

impl std::ops::AddAssign<Span> for Nanos {
    #[inline]
    fn add_assign(&mut self, span: Span) {
        self.0 += span.0;
    }
}

impl std::ops::Sub<Span> for Nanos {
    type Output = Nanos;

    #[inline]
    fn sub(self, span: Span) -> Nanos {
        Nanos(self.0 - span.0)
    }
}

/// The number of whole `unit`s since the clock's origin (a bucket's
/// number).
impl std::ops::Div<Span> for Nanos {
    type Output = u64;

    #[inline]
    fn div(self, unit: Span) -> u64 {
        self.0 / unit.0
    }
}

impl std::ops::Add for Span {
    type Output = Span;

    #[inline]
    fn add(self, o: Span) -> Span {
        Span(self.0 + o.0)
    }
}

impl std::ops::Sub for Span {
    type Output = Span;

    #[inline]
    fn sub(self, o: Span) -> Span {
        Span(self.0 - o.0)
    }
}

/// How many whole `unit`s fit in this span.
impl std::ops::Div for Span {
    type Output = u64;

    #[inline]
    fn div(self, unit: Span) -> u64 {
        self.0 / unit.0
    }
}

impl std::ops::Div<u64> for Span {
    type Output = Span;

    #[inline]
    fn div(self, n: u64) -> Span {
        Span(self.0 / n)
    }
}

impl std::ops::Mul<u64> for Span {
    type Output = Span;

    #[inline]
    fn mul(self, n: u64) -> Span {
        Span(self.0 * n)
    }
}

impl std::ops::Mul<Span> for u64 {
    type Output = Span;

    #[inline]
    fn mul(self, span: Span) -> Span {
        Span(self * span.0)
    }
}

/// The civil date of a day count from 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// RFC 3339 in UTC with `digits` (0 to 9) of the second's fraction:
/// `2026-11-30T08:00:00.250Z` with 3.
pub(crate) fn rfc3339(nanos: i64, digits: u32) -> String {
    let digits = digits.min(9);
    let secs = nanos.div_euclid(NANOS_PER_SEC as i64);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        t / 3600,
        t / 60 % 60,
        t % 60
    );
    if digits > 0 {
        let frac = nanos.rem_euclid(NANOS_PER_SEC as i64) / 10i64.pow(9 - digits);
        s.push_str(&format!(".{frac:0w$}", w = digits as usize));
    }
    s.push('Z');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_clones_share_time() {
        let a = ManualClock::new();
        let b = a.clone();
        let t0 = b.now_nanos();
        a.advance(Duration::from_millis(5));
        assert_eq!(b.now_nanos() - t0, 5_000_000);
    }

    #[test]
    fn system_clock_is_monotonic() {
        let c = SystemClock::new();
        let a = c.now_nanos();
        let b = c.now_nanos();
        assert!(b >= a);
    }
}
