//! Timeouts without a timer per request: the header read timeout of a
//! client connection ([`HeadWait`]) and the upstream timeout of a pooled
//! connection ([`Deadline`]) are kept as a time in an atomic, which a
//! request sets and clears, and each connection has one timer of its own
//! ([`until`]) that looks at it when it goes off and is set again for the
//! next time that matters. A timer armed and dropped per request (hyper's
//! header read timer, `tokio::time::timeout`) costs a boxed sleep, a
//! timer-wheel insertion and removal, and often a write to the runtime's
//! wake-up descriptor: about a tenth of the proxy's own work per request.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

/// What a connection's timer says when it goes off.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Close the connection: its time is up.
    Close,
    /// Look again then.
    At(Instant),
    /// Nothing to watch any more (the connection is served to its end).
    Off,
}

/// Runs `fut` until it ends (`Some`), or until `check`, asked each time
/// the connection's timer goes off (first at `first`; never when `None`),
/// says [`Check::Close`] (`None`: `fut` is dropped, which closes the
/// connection).
///
/// The timer keeps the task's waker from its last poll, so it is polled
/// again only once it went off (or was set again): a poll of the task for
/// the connection's own work does not touch it.
pub(crate) async fn until<F: Future>(
    fut: F,
    first: Option<Instant>,
    mut check: impl FnMut() -> Check,
) -> Option<F::Output> {
    let Some(first) = first else {
        return Some(fut.await);
    };
    let mut fut = pin!(fut);
    let mut sleep = pin!(tokio::time::sleep_until(first.into()));
    // The timer holds the task's waker (polled to `Pending`, not reset
    // since).
    let mut armed = false;
    let mut on = true;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        while on && (!armed || sleep.is_elapsed()) {
            // Out of the task's budget: a `Pending` here always means the
            // timer was registered.
            let fired = std::pin::Pin::new(&mut tokio::task::unconstrained(std::future::poll_fn(
                |cx| sleep.as_mut().poll(cx),
            )))
            .poll(cx)
            .is_ready();
            if !fired {
                armed = true;
                break;
            }
            match check() {
                Check::Close => return Poll::Ready(None),
                Check::At(t) => {
                    sleep.as_mut().reset(t.into());
                    armed = false;
                }
                Check::Off => on = false,
            }
        }
        Poll::Pending
    })
    .await
}

/// Nanoseconds from `base` to `t` (0 before it), below the markers.
fn nanos(base: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(base).as_nanos())
        .map_or(u64::MAX - 2, |n| n.min(u64::MAX - 2))
}

/// A client connection's wait for its next request head: since when (the
/// connection's start, or the end of the last answer), or none while a
/// request is served. hyper's header read timeout, which runs from the
/// moment hyper starts to wait for a head, without its timer per request.
#[derive(Debug)]
pub(crate) struct HeadWait {
    base: Instant,
    /// Nanoseconds since `base`, or [`BUSY`], or [`OFF`].
    since: AtomicU64,
}

/// A request is being served: no head is awaited.
const BUSY: u64 = u64::MAX;
/// An HTTP/2 connection: its requests are not timed (hyper's header read
/// timeout is HTTP/1's).
const OFF: u64 = u64::MAX - 1;

impl HeadWait {
    /// Waiting for the first head since now.
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
            since: AtomicU64::new(0),
        }
    }

    /// When the timer first looks: `header_read` after the start.
    pub(crate) fn first(&self, header_read: Duration) -> Option<Instant> {
        self.base.checked_add(header_read)
    }

    /// A request head came (`h2`: on an HTTP/2 connection, never timed).
    pub(crate) fn request(&self, h2: bool) {
        self.since
            .store(if h2 { OFF } else { BUSY }, Ordering::Relaxed);
    }

    /// The answer ended: the next head is awaited from now.
    pub(crate) fn answered(&self) {
        if self.since.load(Ordering::Relaxed) != OFF {
            self.since
                .store(nanos(self.base, Instant::now()), Ordering::Relaxed);
        }
    }

    /// What the timer does when it goes off.
    pub(crate) fn check(&self, header_read: Duration) -> Check {
        let now = Instant::now();
        match self.since.load(Ordering::Relaxed) {
            OFF => Check::Off,
            BUSY => now.checked_add(header_read).map_or(Check::Off, Check::At),
            since => match (self.base + Duration::from_nanos(since)).checked_add(header_read) {
                None => Check::Off,
                Some(due) if now >= due => Check::Close,
                Some(due) => Check::At(due),
            },
        }
    }
}

/// A pooled upstream connection's request in flight: when its answer's
/// head is due. The upstream timeout, without a timer per request.
#[derive(Debug)]
pub(crate) struct Deadline {
    base: Instant,
    /// Nanoseconds since `base`, or [`IDLE`].
    due: AtomicU64,
    timed_out: AtomicBool,
}

/// No request in flight (or one with no deadline).
const IDLE: u64 = u64::MAX;

impl Deadline {
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
            due: AtomicU64::new(IDLE),
            timed_out: AtomicBool::new(false),
        }
    }

    /// A request goes out, its answer's head due at `due` (`None`: never).
    pub(crate) fn set(&self, due: Option<Instant>) {
        let d = due.map_or(IDLE, |d| nanos(self.base, d));
        self.due.store(d, Ordering::Relaxed);
    }

    /// The answer's head came (or the request failed).
    pub(crate) fn clear(&self) {
        self.due.store(IDLE, Ordering::Relaxed);
    }

    /// Whether the connection was closed for a request's timeout.
    pub(crate) fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Acquire)
    }

    /// What the timer does when it goes off: `every` is the longest a
    /// request's deadline can be from its start (the upstream timeout), so
    /// that a request always meets a look before its deadline.
    pub(crate) fn check(&self, every: Duration) -> Check {
        let now = Instant::now();
        match self.due.load(Ordering::Relaxed) {
            IDLE => now.checked_add(every).map_or(Check::Off, Check::At),
            due => {
                let due = self.base + Duration::from_nanos(due);
                if now >= due {
                    self.timed_out.store(true, Ordering::Release);
                    Check::Close
                } else {
                    Check::At(due)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_wait_times_the_wait_only() {
        let w = HeadWait::new();
        let long = Duration::from_secs(3600);
        assert!(matches!(w.check(long), Check::At(_)));
        assert_eq!(w.check(Duration::ZERO), Check::Close);
        w.request(false);
        assert!(
            matches!(w.check(Duration::ZERO), Check::At(_)),
            "a request in flight is never cut"
        );
        w.answered();
        assert_eq!(w.check(Duration::ZERO), Check::Close);
        w.request(true);
        w.answered();
        assert_eq!(w.check(Duration::ZERO), Check::Off, "HTTP/2 is not timed");
        assert_eq!(HeadWait::new().check(Duration::MAX), Check::Off);
    }

    #[test]
    fn a_deadline_closes_only_a_request_past_it() {
        let d = Deadline::new();
        assert!(matches!(d.check(Duration::ZERO), Check::At(_)));
        d.set(Instant::now().checked_add(Duration::from_secs(3600)));
        assert!(matches!(d.check(Duration::ZERO), Check::At(_)));
        assert!(!d.timed_out());
        d.set(Some(Instant::now()));
        assert_eq!(d.check(Duration::ZERO), Check::Close);
        assert!(d.timed_out());
        d.clear();
        assert!(matches!(d.check(Duration::from_secs(1)), Check::At(_)));
    }

    #[tokio::test]
    async fn until_closes_when_the_check_says_so_and_not_before() {
        let t = Instant::now();
        let mut looks = 0;
        let out = until(
            std::future::pending::<()>(),
            Some(t + Duration::from_millis(20)),
            || {
                looks += 1;
                if looks < 3 {
                    Check::At(Instant::now() + Duration::from_millis(20))
                } else {
                    Check::Close
                }
            },
        )
        .await;
        assert!(out.is_none());
        assert_eq!(looks, 3);
        assert!(t.elapsed() >= Duration::from_millis(60));
        let out = until(async { 7 }, Some(t), || Check::Close).await;
        assert_eq!(out, Some(7));
        let out = until(
            tokio::time::sleep(Duration::from_millis(30)),
            Some(Instant::now()),
            || Check::Off,
        )
        .await;
        assert!(out.is_some());
    }
}
