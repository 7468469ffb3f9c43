//! Metric names, emitted through the [`metrics`](https://docs.rs/metrics)
//! facade. Install any recorder (Prometheus, StatsD...) to collect them.
//! Labels are low-cardinality: never an address, a session or an account.
//!
//! The per-request counters ([`REQUESTS`], [`PROBE_REQUESTS`]) are
//! registered once, when the guard sees its first request, and kept as
//! handles (no key is built or looked up per request): install the recorder
//! before the server starts serving, as exporters' setup does anyway.

/// Counter: requests seen by the guard.
pub const REQUESTS: &str = "enumguard_requests_total";
/// Counter: requests refused. Labels: `reason` (`blocked`, `throttled`,
/// `denylisted`, `missing_peer`, `body_too_large`), `actor_kind`.
pub const REFUSED: &str = "enumguard_refused_total";
/// Counter: requests observe mode would have refused. Same labels as
/// [`REFUSED`].
pub const WOULD_REFUSE: &str = "enumguard_would_refuse_total";
/// Counter: verdict changes. Labels: `verdict` (`throttle`, `block`),
/// `actor_kind`, `reason` (`detected`, `linked`, `manual`), `probe`.
pub const VERDICTS: &str = "enumguard_verdicts_total";
/// Counter: probe requests answered by the inner service, by `probe` (its
/// name) and `outcome` (`hit`, `miss`, `denied`, `other`).
pub const PROBE_REQUESTS: &str = "enumguard_probe_requests_total";
/// Gauge: (actor, probe) records tracked.
pub const TRACKED: &str = "enumguard_tracked_actors";
/// Gauge: verdicts held.
pub const VERDICTS_ACTIVE: &str = "enumguard_verdicts_active";
/// Counter: records and verdicts evicted to stay within the bounds.
pub const EVICTIONS: &str = "enumguard_evictions_total";
/// Counter: new actors not tracked. Not counted any more: a new key always
/// takes a place in its bucket of the store (see `limits.max_actors`); the
/// name stays for the dashboards that read it.
pub const UNTRACKED: &str = "enumguard_untracked_total";
/// Gauge (feature `redis`): 1 while the cluster sync has no working Redis
/// connection, 0 while it has one.
pub const CLUSTER_DEGRADED: &str = "enumguard_cluster_degraded";
/// Counter (feature `redis`): verdict changes and evidence notices not
/// shared because the sync's queue was full.
pub const CLUSTER_DROPPED: &str = "enumguard_cluster_dropped_total";
/// Counter (feature `redis`): messages and stored values from Redis not
/// applied. Label `reason`: `unauthenticated` (no valid MAC under the
/// shared `session_key`: forged, altered, or from a replica with another
/// key), `stale` (a message over 30 s old), `replayed` (a message seen
/// before), `malformed`, `full` (a remote operator's ban while the verdict
/// table is full; the next load tries it again).
pub const CLUSTER_REJECTED: &str = "enumguard_cluster_rejected_total";

/// Gauge: 1 while the service-wide view of a probe is anomalous (a spread
/// attack under way: actors with no history get the tight thresholds), 0
/// once it is calm again. Label `probe`. Set when the view changes, as it
/// is read for scoring; a `warn` event of target `enumguard` goes with each
/// change, so an operator sees what the guard sees even while it refuses
/// no one.
pub const SERVICE_VIEW_ANOMALOUS: &str = "enumguard_service_view_anomalous";

/// Histogram: the guard's own time per request, in seconds (before the
/// inner service plus after its answer; the inner service's time is not
/// in it), for requests the guard takes apart (a probe request, or any
/// request while a verdict or a list needs it), one in 64 per thread
/// sampled. For replicas to aggregate it, give it the same buckets
/// everywhere, [`GUARD_SECONDS_BUCKETS`]:
///
/// ```
/// use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
///
/// let builder = PrometheusBuilder::new()
///     .set_buckets_for_metric(
///         Matcher::Full(enumguard::metrics::GUARD_SECONDS.into()),
///         enumguard::metrics::GUARD_SECONDS_BUCKETS,
///     )
///     .expect("buckets are not empty");
/// # let _ = builder;
/// ```
pub const GUARD_SECONDS: &str = "enumguard_guard_seconds";

/// The buckets (seconds) to give [`GUARD_SECONDS`]: from 250 ns (a probe
/// request on a warm record) to 10 ms (a request that waited for a core
/// the scheduler gave elsewhere).
pub const GUARD_SECONDS_BUCKETS: &[f64] = &[
    250e-9, 500e-9, 1e-6, 2e-6, 5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 1e-3, 10e-3,
];

/// Every metric the crate emits, by name (for dashboards and alerts to be
/// checked against).
pub const ALL: &[&str] = &[
    REQUESTS,
    REFUSED,
    WOULD_REFUSE,
    VERDICTS,
    PROBE_REQUESTS,
    TRACKED,
    VERDICTS_ACTIVE,
    EVICTIONS,
    UNTRACKED,
    CLUSTER_DEGRADED,
    CLUSTER_DROPPED,
    CLUSTER_REJECTED,
    SERVICE_VIEW_ANOMALOUS,
    GUARD_SECONDS,
];
