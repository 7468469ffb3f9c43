//! Per-request overhead of enumguard through `tower::Service::call` on a
//! trivial inner service, next to the bare service and tower_governor's
//! per-IP limiter, all in one run.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench overhead
//! ```
//!
//! # What runs
//! - Criterion group `overhead`: `bare`, `tower_governor`, `no_probe`,
//!   `probe`, `observe`, each with parameter `1` (one hot actor) or `100000`
//!   (requests rotate through 100,000 distinct actors), on one thread.
//! - Group `overhead_contended`: the same ids, two threads calling clones of
//!   one service at once; the time is per request per thread.
//! - Group `pieces`: configurations that isolate the hot-path pieces, which
//!   are crate-private (see [`pieces`]).
//! - Then an interleaved A/B table (the design's cost model: criterion alone
//!   is noisy on shared machines): every configuration runs a batch in turn,
//!   round after round. This machine alternates between a fast and a slow
//!   mode (about 1.4x apart, for every configuration alike), so the table
//!   gives each configuration's lower quartile over rounds (its fast mode)
//!   and its median; overheads are differences of lower quartiles, with the
//!   paired median (the difference within each round) as a cross-check. It
//!   is the figure to compare configurations by. `ENUMGUARD_AB=0` skips it,
//!   `ENUMGUARD_AB_ROUNDS` (default 40) and `ENUMGUARD_AB_BATCH` (default
//!   10,000 requests) size it.
//! - `ENUMGUARD_ONLY=overhead/probe/1,...` builds only the named
//!   configurations, and prints how many requests ran (to turn a profile
//!   into a cost per request).
//!
//! # The requests
//! Every request is built inside the timed loop, the same way for every
//! configuration (`bare` included, so `bare` is the construction baseline):
//! `GET /api/accounts/{id}/addressbook` with `x-account: {id}`,
//! `x-session: s-{id}` and axum's `ConnectInfo<SocketAddr>` (read by both
//! enumguard and tower_governor's `PeerIpKeyExtractor`). Paths and header
//! values are precomputed per actor (static, so cloning them is free) and
//! read once while building (a server has just parsed them: they are in
//! cache); the construction cost is a `HeaderMap` and an `Extensions`
//! allocation.
//! Actor `i` has its own IPv4 address in its own /24 (11.0.0.1 + i·256), so
//! with 100,000 actors every ip, subnet, session and account key is
//! distinct: the worst case for the maps. Each response's status is checked:
//! a refusal fails the benchmark.
//!
//! # The configurations
//! - `bare`: the inner service (`service_fn`, answers 200 at once).
//! - `tower_governor`: `GovernorLayer` keyed by peer IP
//!   (`PeerIpKeyExtractor`), one cell replenished every nanosecond with a
//!   burst of `u32::MAX`: it refuses nothing.
//! - enumguard, as an application would configure it: one objects probe on
//!   `GET /api/accounts/{id}/addressbook` (path target `id`, default
//!   thresholds, so every signal is on), session from `x-session`, account
//!   from `x-account`, `max_actors(1_000_000)` so that 100,000 actors (four
//!   records each) fit without eviction, the system clock.
//!   - `no_probe`: the request goes to `/api/accounts/{id}/profile`, which
//!     matches no probe.
//!   - `probe`: the probe, each actor reading its own object (account ==
//!     target id), so nothing is ever refused whatever the thresholds.
//!   - `observe`: the same as `probe` in `Mode::Observe`.
//!
//! The 100,000-actor configurations are warmed with one pass over every
//! actor first, so the maps hold them all: the figures are steady state, not
//! inserts.

/// The guard pieces the tests use too (the account header, the probe).
#[path = "../tests/common/mod.rs"]
mod common;

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use criterion::{BenchmarkId, Criterion};
use enumguard::{
    Actor, GuardBody, GuardBuilder, GuardLayer, Mode, ProbeConfig, TargetConfig, Thresholds,
};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use tower::{Layer, Service, service_fn};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;

const DISTINCT: usize = 100_000;
const PARAMS: [usize; 2] = [1, DISTINCT];
/// Foreign objects walked by `pieces/probe_foreign`.
const FOREIGN_TARGETS: usize = 4096;

const X_ACCOUNT: HeaderName = HeaderName::from_static("x-account");
const X_SESSION: HeaderName = HeaderName::from_static("x-session");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The peer of the proxy configurations (a trusted proxy).
const PROXY: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 40_000);

// ---------------------------------------------------------------------------
// Requests

/// What one actor's requests carry, precomputed.
struct ActorReq {
    peer: ConnectInfo<SocketAddr>,
    /// `/api/accounts/{id}/addressbook`: the probe, its own object.
    probe: Uri,
    /// `/api/accounts/{id}/profile`: matches no probe.
    other: Uri,
    account: HeaderValue,
    session: HeaderValue,
    /// `{ip}, 127.0.0.2`: the client, then a second trusted proxy.
    xff: HeaderValue,
}

struct Pool {
    actors: Vec<ActorReq>,
    /// Paths of objects no actor owns.
    foreign: Vec<Uri>,
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn actor_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(0x0B00_0001u32 + ((i as u32) << 8))
}

fn build_pool(n: usize) -> Pool {
    let actors = (0..n)
        .map(|i| {
            let id = i + 1;
            let ip = actor_ip(i);
            ActorReq {
                peer: ConnectInfo(SocketAddr::new(IpAddr::V4(ip), 50_000)),
                probe: Uri::from_static(leak(format!("/api/accounts/{id}/addressbook"))),
                other: Uri::from_static(leak(format!("/api/accounts/{id}/profile"))),
                account: HeaderValue::from_static(leak(id.to_string())),
                session: HeaderValue::from_static(leak(format!("s-{id}"))),
                xff: HeaderValue::from_static(leak(format!("{ip}, 127.0.0.2"))),
            }
        })
        .collect();
    let foreign = (0..FOREIGN_TARGETS)
        .map(|k| Uri::from_static(leak(format!("/api/accounts/{}/addressbook", 5_000_000 + k))))
        .collect();
    Pool { actors, foreign }
}

fn pool(n: usize) -> Arc<Pool> {
    static ONE: OnceLock<Arc<Pool>> = OnceLock::new();
    static MANY: OnceLock<Arc<Pool>> = OnceLock::new();
    let cell = if n == 1 { &ONE } else { &MANY };
    cell.get_or_init(|| Arc::new(build_pool(n))).clone()
}

#[derive(Clone, Copy)]
enum Shape {
    /// The probe path, the actor's own object.
    Probe,
    /// A path that matches no probe.
    NoProbe,
    /// The probe path, a foreign object; each actor walks them in order.
    Foreign,
    /// As `Probe`, from a trusted proxy with `X-Forwarded-For`.
    Xff,
}

fn touch(bytes: &[u8]) {
    std::hint::black_box(bytes.iter().fold(0u8, |a, b| a ^ b));
}

/// Builds the requests of one thread, rotating through the pool's actors.
struct Gen {
    pool: Arc<Pool>,
    shape: Shape,
    i: usize,
    visit: usize,
}

impl Gen {
    fn new(pool: Arc<Pool>, shape: Shape, start: usize) -> Self {
        let i = start % pool.actors.len();
        Self {
            pool,
            shape,
            i,
            visit: 0,
        }
    }

    fn next(&mut self) -> Request<String> {
        let a = &self.pool.actors[self.i];
        let uri = match self.shape {
            Shape::Probe | Shape::Xff => a.probe.clone(),
            Shape::NoProbe => a.other.clone(),
            Shape::Foreign => self.pool.foreign[(self.i + self.visit) % FOREIGN_TARGETS].clone(),
        };
        // A server has just parsed these bytes: they are in cache. Read them
        // so that the precomputed pool does not charge cache misses to
        // whoever reads the request first.
        touch(uri.path().as_bytes());
        touch(a.account.as_bytes());
        touch(a.session.as_bytes());
        let mut req = Request::new(String::new());
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        h.insert(X_ACCOUNT, a.account.clone());
        h.insert(X_SESSION, a.session.clone());
        let peer = if matches!(self.shape, Shape::Xff) {
            touch(a.xff.as_bytes());
            h.insert(X_FORWARDED_FOR, a.xff.clone());
            ConnectInfo(PROXY)
        } else {
            a.peer
        };
        req.extensions_mut().insert(peer);
        self.i += 1;
        if self.i == self.pool.actors.len() {
            self.i = 0;
            self.visit += 1;
        }
        req
    }
}

// ---------------------------------------------------------------------------
// Services and runners

type Ready = std::future::Ready<Result<Response<Body>, Infallible>>;
type Handler<B> = fn(Request<B>) -> Ready;

/// The trivial inner service's handler: 200, empty body, at once.
fn ok<B>(_req: Request<B>) -> Ready {
    std::future::ready(Ok(Response::new(Body::empty())))
}

/// The bare service (a function pointer, like the guarded one).
fn bare() -> tower::util::ServiceFn<Handler<String>> {
    service_fn(ok::<String>)
}

/// Requests run so far (printed with `ENUMGUARD_ONLY`, to turn a profile
/// into a cost per request).
static RAN: AtomicU64 = AtomicU64::new(0);

/// Runs `n` requests through its service; returns how many were not 200.
type Runner = Box<dyn FnMut(u64) -> u64 + Send>;

fn runner<S, B>(mut svc: S, mut requests: Gen) -> Runner
where
    S: Service<Request<String>, Response = Response<B>> + Send + 'static,
    S::Error: Debug,
{
    Box::new(move |n| {
        let mut cx = Context::from_waker(Waker::noop());
        let mut refused = 0;
        for _ in 0..n {
            let req = requests.next();
            if !matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))) {
                panic!("service not ready");
            }
            let fut = pin!(svc.call(req));
            match fut.poll(&mut cx) {
                Poll::Ready(Ok(res)) => refused += u64::from(res.status() != StatusCode::OK),
                Poll::Ready(Err(e)) => panic!("service error: {e:?}"),
                Poll::Pending => panic!("the trivial service never waits"),
            }
        }
        RAN.fetch_add(n, Ordering::Relaxed);
        refused
    })
}

/// One configuration: makes a runner per thread over clones of one service
/// (so threads share its state).
struct Variant {
    group: &'static str,
    id: &'static str,
    param: usize,
    make: Box<dyn Fn(usize) -> Runner>,
}

impl Variant {
    fn new<S, B>(group: &'static str, id: &'static str, param: usize, svc: S, shape: Shape) -> Self
    where
        S: Service<Request<String>, Response = Response<B>> + Clone + Send + 'static,
        S::Error: Debug,
    {
        let pool = pool(param);
        let v = Variant {
            group,
            id,
            param,
            make: Box::new(move |thread| {
                let start = thread * pool.actors.len() / 2;
                runner(svc.clone(), Gen::new(pool.clone(), shape, start))
            }),
        };
        // Warm up: every actor once, so the maps hold them all.
        let refused = (v.make)(0)(param.max(1000) as u64);
        assert_eq!(
            refused, 0,
            "{}/{}/{param}: refused while warming",
            group, id
        );
        v
    }

    fn name(&self) -> String {
        format!("{}/{}/{}", self.group, self.id, self.param)
    }
}

/// The application's configuration: the probe, session and account.
fn app_guard(probe: ProbeConfig) -> GuardBuilder {
    GuardLayer::builder()
        .probe(probe)
        .session_header("x-session")
        .account(common::account_from_header)
        .max_actors(1_000_000)
}

fn guard<S>(builder: GuardBuilder, inner: S) -> enumguard::Guard<S> {
    builder
        .build()
        .expect("valid enumguard config")
        .layer(inner)
}

/// The inner service under the guard.
fn inner() -> tower::util::ServiceFn<Handler<GuardBody<String>>> {
    service_fn(ok::<GuardBody<String>>)
}

/// The configurations of one group. `ENUMGUARD_ONLY=<names>` (comma
/// separated, e.g. `overhead/probe/1`) builds only those (for profiling).
struct Set {
    group: &'static str,
    only: Option<String>,
    out: Vec<Variant>,
}

impl Set {
    fn new(group: &'static str) -> Self {
        Self {
            group,
            only: std::env::var("ENUMGUARD_ONLY").ok(),
            out: Vec::new(),
        }
    }

    fn add<S, B>(&mut self, id: &'static str, param: usize, shape: Shape, make: impl FnOnce() -> S)
    where
        S: Service<Request<String>, Response = Response<B>> + Clone + Send + 'static,
        S::Error: Debug,
    {
        let name = format!("{}/{id}/{param}", self.group);
        if self
            .only
            .as_ref()
            .is_some_and(|o| !o.split(',').any(|n| n.trim() == name))
        {
            return;
        }
        self.out
            .push(Variant::new(self.group, id, param, make(), shape));
    }
}

fn overhead_variants(group: &'static str) -> Vec<Variant> {
    let mut set = Set::new(group);
    for param in PARAMS {
        set.add("bare", param, Shape::Probe, bare);
        set.add("tower_governor", param, Shape::Probe, || {
            let config = GovernorConfigBuilder::default()
                .per_nanosecond(1)
                .burst_size(u32::MAX)
                .finish()
                .expect("valid governor config");
            GovernorLayer::new(config).layer(bare())
        });
        set.add("no_probe", param, Shape::NoProbe, || {
            guard(app_guard(common::addressbook()), inner())
        });
        set.add("probe", param, Shape::Probe, || {
            guard(app_guard(common::addressbook()), inner())
        });
        set.add("observe", param, Shape::Probe, || {
            guard(
                app_guard(common::addressbook()).mode(Mode::Observe),
                inner(),
            )
        });
    }
    set.out
}

/// The hot-path pieces are crate-private; these configurations isolate
/// them through the public service (compare each with its baseline):
///
/// | id | what differs from its baseline | baseline |
/// |---|---|---|
/// | `ip_only` | a guard with no probe, no session, no account, an empty verdict table, and a deny list of one network no actor is in (192.0.2.0/24): every request's address is read, its ip and subnet keys built and the list checked. (Without any list, such a request only has its peer's presence checked: that is `overhead/no_probe`.) | `overhead/bare` |
/// | `ip_session_account` | as `ip_only` with a session header and an account closure configured; with no verdict held and no account list they are not computed | `ip_only` |
/// | `gate_1` | as `ip_session_account` with one ban (of another address) in the verdict table: every request is fully identified (session: keyed SipHash of the header; account: the closure) and its four keys looked up | `ip_session_account` |
/// | `gate_10k` | as `gate_1` with 10,000 bans: the lookups in a bigger table | `gate_1` |
/// | `bare_xff` | the bare service with an `X-Forwarded-For` header in the request | `overhead/bare` |
/// | `xff_trusted` | `ip_only` (with its deny list) from a trusted proxy (127.0.0.0/8): walks `X-Forwarded-For` (`{client}, 127.0.0.2`) from the right | `bare_xff` |
/// | `probe_foreign` | the `probe` configuration with thresholds of 10^9 (every signal on, none ever crossed), each actor walking foreign ids in order: the pre-check scores every actor on every request, the worst case | `overhead/probe` |
/// | `identities_plain` | `probe_foreign`'s requests through an identities probe with thresholds of 10^9 and `hit_block = 0` (no novelty filter) | `probe_foreign` |
/// | `identities_novelty` | as `identities_plain` with the novelty filter on (`hit_block` set, the identities default): three bit reads in the pre-check, three bit writes per answer | `identities_plain` |
fn pieces(group: &'static str) -> Vec<Variant> {
    let mut set = Set::new(group);
    // A list of one network no actor is in: requests are identified.
    let listed = || GuardLayer::builder().deny_cidr("192.0.2.0/24");
    let ids = move || {
        listed()
            .session_header("x-session")
            .account(common::account_from_header)
    };
    for param in PARAMS {
        set.add("ip_only", param, Shape::Probe, move || {
            guard(listed(), inner())
        });
        set.add("ip_session_account", param, Shape::Probe, || {
            guard(ids(), inner())
        });
        set.add("bare_xff", param, Shape::Xff, bare);
        set.add("xff_trusted", param, Shape::Xff, || {
            guard(listed().trusted_proxies(["127.0.0.0/8"]), inner())
        });
        for (id, bans) in [("gate_1", 1u32), ("gate_10k", 10_000)] {
            set.add(id, param, Shape::Probe, || {
                let layer = ids().build().expect("valid enumguard config");
                let handle = layer.handle();
                for k in 0..bans {
                    // 198.18.0.0/15: no actor's address.
                    let ip = Ipv4Addr::from(0xC612_0000u32 + k);
                    handle.ban(&Actor::ip(ip), Duration::from_secs(3600));
                }
                assert_eq!(handle.verdict_count(), bans as usize);
                layer.layer(inner())
            });
        }
        // An identities probe on the same requests (every answer a find,
        // every target new): with its novelty filter (`hit_block` set, the
        // identities default) and without (`hit_block = 0`).
        for (id, hit_block) in [
            ("identities_novelty", 1_000_000_000u32),
            ("identities_plain", 0),
        ] {
            set.add(id, param, Shape::Foreign, move || {
                let mut huge = Thresholds::identities();
                huge.miss_block = 1_000_000_000;
                huge.denied_block = 1_000_000_000;
                huge.hit_block = hit_block;
                let probe = ProbeConfig::identities(
                    "addressbook",
                    "GET",
                    "/api/accounts/{id}/addressbook",
                    TargetConfig::path("id"),
                );
                guard(app_guard(probe.thresholds(huge)), inner())
            });
        }
        set.add("probe_foreign", param, Shape::Foreign, || {
            let mut huge = Thresholds::objects();
            huge.foreign_block = 1_000_000_000;
            huge.miss_block = 1_000_000_000;
            huge.denied_block = 1_000_000_000;
            guard(app_guard(common::addressbook().thresholds(huge)), inner())
        });
    }
    set.out
}

// ---------------------------------------------------------------------------
// Timing

/// Runs `iters` requests on each of `threads` threads at once; returns the
/// longest thread's time and the refusals.
fn timed(runners: &mut [Runner], iters: u64) -> (Duration, u64) {
    if let [one] = runners {
        let start = Instant::now();
        let refused = one(iters);
        return (start.elapsed(), refused);
    }
    let barrier = Barrier::new(runners.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = runners
            .iter_mut()
            .map(|r| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let refused = r(iters);
                    (start.elapsed(), refused)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .fold((Duration::ZERO, 0), |(d, n), (d2, n2)| (d.max(d2), n + n2))
    })
}

fn criterion_group(c: &mut Criterion, name: &str, variants: &[Variant], threads: usize) {
    let mut group = c.benchmark_group(name);
    for v in variants {
        let mut runners: Vec<Runner> = (0..threads).map(|t| (v.make)(t)).collect();
        group.bench_function(BenchmarkId::new(v.id, v.param), |b| {
            b.iter_custom(|iters| {
                let (d, refused) = timed(&mut runners, iters);
                assert_eq!(refused, 0, "{}: requests were refused", v.name());
                d
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// Interleaved A/B rounds

struct Ab {
    name: String,
    samples: Vec<f64>,
}

impl Ab {
    fn median(&self) -> f64 {
        quantile(&self.samples, 0.5)
    }
}

fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn interleaved(sets: &[(&[Variant], usize)], rounds: usize, batch: u64) -> Vec<Ab> {
    let mut slots: Vec<(Vec<Runner>, Ab)> = Vec::new();
    for (variants, threads) in sets {
        for v in *variants {
            let runners = (0..*threads).map(|t| (v.make)(t)).collect();
            slots.push((
                runners,
                Ab {
                    name: v.name(),
                    samples: Vec::new(),
                },
            ));
        }
    }
    let n = slots.len();
    for round in 0..rounds {
        // Rotate the order so no configuration always follows the same one.
        for k in 0..n {
            let (runners, ab) = &mut slots[(k + round * 7) % n];
            let (d, refused) = timed(runners, batch);
            assert_eq!(refused, 0, "{}: requests were refused", ab.name);
            ab.samples.push(d.as_nanos() as f64 / batch as f64);
        }
    }
    slots.into_iter().map(|(_, ab)| ab).collect()
}

fn report(abs: &[Ab], rounds: usize, batch: u64) {
    let find = |name: &str| abs.iter().find(|a| a.name == name);
    // This machine runs in two modes (about 1.4x apart, whatever the
    // configuration: a busy neighbour). The lower quartile over rounds is
    // each configuration in the fast mode; overheads are differences of
    // lower quartiles. The paired figure (median over rounds of the
    // difference within a round) is shown as a cross-check.
    let p25 = |name: &str| find(name).map_or(f64::NAN, |a| quantile(&a.samples, 0.25));
    let diff = |a: &str, b: &str| p25(a) - p25(b);
    let paired = |a: &str, b: &str| -> f64 {
        let (Some(a), Some(b)) = (find(a), find(b)) else {
            return f64::NAN;
        };
        let d: Vec<f64> = a
            .samples
            .iter()
            .zip(&b.samples)
            .map(|(x, y)| x - y)
            .collect();
        quantile(&d, 0.5)
    };
    println!();
    println!(
        "## Interleaved A/B: {rounds} rounds x {batch} requests per configuration (per thread), ns/request"
    );
    println!(
        "## p25: lower quartile over rounds (the machine's fast mode); overhead: p25 - the baseline's p25; paired: median over rounds of (configuration - baseline) within a round"
    );
    println!();
    println!(
        "| benchmark | p25 | median | baseline | overhead | paired | overhead / tower_governor's |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|");
    for a in abs {
        let parts: Vec<&str> = a.name.split('/').collect();
        let (group, id, param) = (parts[0], parts[1], parts[2]);
        let base_group = if group == "pieces" { "overhead" } else { group };
        let bare = format!("{base_group}/bare/{param}");
        let baseline = match id {
            "xff_trusted" => format!("pieces/bare_xff/{param}"),
            "ip_session_account" => format!("pieces/ip_only/{param}"),
            "gate_1" => format!("pieces/ip_session_account/{param}"),
            "gate_10k" => format!("pieces/gate_1/{param}"),
            "probe_foreign" => format!("overhead/probe/{param}"),
            _ => bare.clone(),
        };
        let gov = diff(&format!("{base_group}/tower_governor/{param}"), &bare);
        let (shown, over, pair, ratio) = if a.name == baseline {
            (String::new(), String::new(), String::new(), String::new())
        } else {
            let o = diff(&a.name, &baseline);
            (
                baseline.clone(),
                format!("{o:+.1}"),
                format!("{:+.1}", paired(&a.name, &baseline)),
                format!("{:.2}", o / gov),
            )
        };
        println!(
            "| {} | {:.1} | {:.1} | {shown} | {over} | {pair} | {ratio} |",
            a.name,
            quantile(&a.samples, 0.25),
            a.median(),
        );
    }
    println!();
    println!("### Pieces (differences of lower quartiles, ns per request)");
    println!();
    println!("| piece | 1 | 100000 |");
    println!("|---|---:|---:|");
    let pieces: [(&str, &dyn Fn(usize) -> f64); 7] = [
        (
            "address identification with a one-network deny list, no probe matched (pieces/ip_only - bare)",
            &|p| {
                diff(
                    &format!("pieces/ip_only/{p}"),
                    &format!("overhead/bare/{p}"),
                )
            },
        ),
        (
            "session + account configured, nothing held (ip_session_account - ip_only)",
            &|p| {
                diff(
                    &format!("pieces/ip_session_account/{p}"),
                    &format!("pieces/ip_only/{p}"),
                )
            },
        ),
        (
            "non-empty table: full identification + 4 lookups, 1 ban (gate_1 - ip_session_account)",
            &|p| {
                diff(
                    &format!("pieces/gate_1/{p}"),
                    &format!("pieces/ip_session_account/{p}"),
                )
            },
        ),
        (
            "verdict lookups with 10,000 bans instead of 1 (gate_10k - gate_1)",
            &|p| {
                diff(
                    &format!("pieces/gate_10k/{p}"),
                    &format!("pieces/gate_1/{p}"),
                )
            },
        ),
        (
            "trusted-proxy XFF walk ((xff_trusted - bare_xff) - (ip_only - bare))",
            &|p| {
                diff(
                    &format!("pieces/xff_trusted/{p}"),
                    &format!("pieces/bare_xff/{p}"),
                ) - diff(
                    &format!("pieces/ip_only/{p}"),
                    &format!("overhead/bare/{p}"),
                )
            },
        ),
        (
            "probe request: identification, target, signal update of 4 actors (probe - no_probe)",
            &|p| {
                diff(
                    &format!("overhead/probe/{p}"),
                    &format!("overhead/no_probe/{p}"),
                )
            },
        ),
        (
            "pre-check of a new foreign target (probe_foreign - probe)",
            &|p| {
                diff(
                    &format!("pieces/probe_foreign/{p}"),
                    &format!("overhead/probe/{p}"),
                )
            },
        ),
    ];
    for (label, f) in pieces {
        println!("| {label} | {:+.1} | {:+.1} |", f(1), f(DISTINCT));
    }
    println!();
    println!("### Targets (overheads over bare: p25 differences, paired medians in brackets)");
    println!();
    for group in ["overhead", "overhead_contended"] {
        for param in PARAMS {
            let bare = format!("{group}/bare/{param}");
            let o = |id: &str| diff(&format!("{group}/{id}/{param}"), &bare);
            let q = |id: &str| paired(&format!("{group}/{id}/{param}"), &bare);
            let (gov, no_probe, probe) = (o("tower_governor"), o("no_probe"), o("probe"));
            if gov.is_nan() {
                continue;
            }
            let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
            println!(
                "- {group}/{param}: no_probe {no_probe:+.1} ns [{:+.1}] vs tower_governor {gov:+.1} ns [{:+.1}] -> {} (<= 1x); probe {probe:+.1} ns [{:+.1}] = {:.2}x tower_governor -> {} (< 2x)",
                q("no_probe"),
                q("tower_governor"),
                verdict(no_probe <= gov),
                q("probe"),
                probe / gov,
                verdict(probe < 2.0 * gov)
            );
        }
    }
    println!();
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Criterion runs each benchmark once as a test without `--bench`
    // (`cargo test --benches`) or with `--test`; the A/B rounds are for
    // `cargo bench` only (not `--list`, `--test` nor `--profile-time`).
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let test_mode = !has("--bench") || has("--test") || has("--list") || has("--profile-time");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
        .without_plots()
        .configure_from_args();

    let single = overhead_variants("overhead");
    let contended = overhead_variants("overhead_contended");
    let parts = pieces("pieces");

    RAN.store(0, Ordering::Relaxed);
    criterion_group(&mut c, "overhead", &single, 1);
    criterion_group(&mut c, "overhead_contended", &contended, 2);
    criterion_group(&mut c, "pieces", &parts, 1);
    c.final_summary();
    if std::env::var("ENUMGUARD_ONLY").is_ok() {
        eprintln!("requests run: {}", RAN.load(Ordering::Relaxed));
    }

    if test_mode || std::env::var("ENUMGUARD_AB").is_ok_and(|v| v == "0") {
        return;
    }
    let rounds = env_or("ENUMGUARD_AB_ROUNDS", 40) as usize;
    let batch = env_or("ENUMGUARD_AB_BATCH", 10_000);
    let abs = interleaved(
        &[(&single, 1), (&contended, 2), (&parts, 1)],
        rounds.max(1),
        batch.max(1),
    );
    report(&abs, rounds, batch);
}
