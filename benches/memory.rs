//! Memory: bytes per tracked actor, and the resident memory of a guarded
//! process while a flood of fresh IPs and session tokens hits it.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench memory
//! ```
//!
//! Each part runs in a child process of its own (the same binary, with
//! `ENUMGUARD_MEM_PART` set), so that its peak RSS is its own. Outside
//! `cargo bench` (`cargo test --benches`) every size is divided by 100
//! (`ENUMGUARD_MEM_SCALE`).
//!
//! - `per_actor`: for `max_actors` 100,000, 250,000, 500,000 and 1,000,000,
//!   one guard (objects probe on `GET /api/accounts/{id}/addressbook`,
//!   session from `x-session`, account from `x-account`) filled with as
//!   many new records: users arrive one request each, every one with a
//!   fresh IP in its own /24, a fresh session and a fresh account reading
//!   its own object, four records (ip, subnet, session, account) per user.
//!   The live heap (a counting global allocator) and RSS
//!   (`/proc/self/statm`) from before the guard is built (its table is
//!   allocated at start) are divided by `handle.tracked()` (about 90% of
//!   the keys: the buckets fill unevenly). tower_governor's keyed state
//!   (per-IP) is measured the same way for reference.
//! - `flood`: one guard with `max_actors(200_000)` in enforce mode. A
//!   scraper gets itself blocked first; then one million requests each from
//!   a fresh IP, then one million requests each with a fresh session token
//!   (from 1,000 addresses). `handle.tracked()` is checked against
//!   `handle.capacity()` every 1% of the flood; the table gives the RSS
//!   before, at the end and at its peak (`VmHWM`), and whether the scraper's
//!   block and record survived. Each request is timed (in-process: the guard
//!   and a trivial service), first two million from known actors (no new
//!   key, no eviction), then the flood's; the lines
//!   `no_flood_latency_us p50=.. p99=.. p999=.. max=..` and
//!   `flood_latency_us ...` are for scripts (the target: p99.9 and max during
//!   the flood within 2x of without).
//!
//! `per_actor` ends with the line `bytes_per_record max=N min=N` (heap bytes
//! per tracked record over its checkpoints).

/// The guard pieces the tests use too (the account header, the probe).
#[path = "../tests/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use enumguard::{Actor, GuardBody, GuardLayer, Refusal, Verdict};
use http::{Request, Response};
use http_body_util::Full;
use tower::{Layer, Service, service_fn};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn heap() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Resident set size, in bytes.
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Peak resident set size (`VmHWM`), in bytes.
fn peak_rss() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<usize>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

fn mib(b: f64) -> f64 {
    b / (1024.0 * 1024.0)
}

fn ok<B>(_req: Request<B>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
    std::future::ready(Ok(Response::new(Full::new(Bytes::new()))))
}

fn guard(max_actors: usize) -> GuardLayer {
    GuardLayer::builder()
        .probe(common::addressbook())
        .session_header("x-session")
        .account(common::account_from_header)
        .max_actors(max_actors)
        .build()
        .expect("valid enumguard config")
}

fn request(
    ip: Ipv4Addr,
    account: Option<&str>,
    session: Option<&str>,
    id: &str,
) -> Request<Full<Bytes>> {
    let mut b = Request::get(format!("/api/accounts/{id}/addressbook"));
    if let Some(a) = account {
        b = b.header("x-account", a);
    }
    if let Some(s) = session {
        b = b.header("x-session", s);
    }
    let mut req = b.body(Full::new(Bytes::new())).expect("request");
    req.extensions_mut()
        .insert(SocketAddr::new(IpAddr::V4(ip), 50_000));
    req
}

/// Calls a service whose future is ready at once; returns whether it was
/// refused.
fn call<S, B>(svc: &mut S, req: Request<Full<Bytes>>) -> bool
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    match pin!(svc.call(req)).poll(&mut cx) {
        Poll::Ready(Ok(res)) => res.extensions().get::<Refusal>().is_some(),
        Poll::Ready(Err(e)) => panic!("service error: {e:?}"),
        Poll::Pending => panic!("the trivial service never waits"),
    }
}

/// A fresh address for user `i`, in its own /24.
fn own_subnet_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(0x0B00_0001u32 + ((i as u32) << 8))
}

/// Sizes are divided by this outside `cargo bench` (a smoke run).
fn scale() -> usize {
    std::env::var("ENUMGUARD_MEM_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn per_actor() {
    // One guard first, so lazily made statics are not counted.
    {
        let layer = guard(16);
        let mut svc = layer.layer(service_fn(ok::<GuardBody<Full<Bytes>>>));
        call(
            &mut svc,
            request(own_subnet_ip(0), Some("0"), Some("s-0"), "0"),
        );
    }
    println!();
    println!(
        "## Bytes per tracked record: a store of `max_actors` records, filled by as many new records (users with a fresh ip in its own /24, a session and an account, reading their own object: 4 records each)"
    );
    println!();
    println!(
        "| max_actors | users | tracked records | heap delta | heap B/record | RSS delta | RSS B/record |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut per_record = Vec::new();
    let mut user = 1usize;
    for cap in [100_000usize, 250_000, 500_000, 1_000_000] {
        let cap = cap / scale();
        let (heap0, rss0) = (heap(), rss());
        let layer = guard(cap);
        let handle = layer.handle();
        let mut svc = layer.layer(service_fn(ok::<GuardBody<Full<Bytes>>>));
        let users = cap / 4;
        for _ in 0..users {
            let id = user.to_string();
            let session = format!("s-{user}");
            let refused = call(
                &mut svc,
                request(own_subnet_ip(user), Some(&id), Some(&session), &id),
            );
            assert!(!refused, "a user reading its own object was refused");
            user += 1;
        }
        let tracked = handle.tracked();
        assert!(tracked <= handle.capacity());
        let dh = heap().saturating_sub(heap0) as f64;
        let dr = rss().saturating_sub(rss0) as f64;
        per_record.push(dh / tracked as f64);
        println!(
            "| {} | {} | {} | {:.1} MiB | {:.0} | {:.1} MiB | {:.0} |",
            cap,
            users,
            tracked,
            mib(dh),
            dh / tracked as f64,
            mib(dr),
            dr / tracked as f64,
        );
    }
    let min = per_record.iter().copied().fold(f64::INFINITY, f64::min);
    let max = per_record.iter().copied().fold(0.0, f64::max);
    println!();
    println!(
        "target (at most 128 bytes per tracked record): heap {min:.0}..{max:.0} B/record -> {}",
        if max <= 128.0 { "met" } else { "MISSED" }
    );
    // One line for scripts.
    println!("bytes_per_record max={max:.0} min={min:.0}");

    // tower_governor's per-IP state, for reference.
    use tower_governor::governor::GovernorConfigBuilder;
    let config = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(u32::MAX)
        .finish()
        .expect("valid governor config");
    let limiter = config.limiter().clone();
    let (heap0, rss0) = (heap(), rss());
    let n = 1_000_000 / scale();
    for i in 0..n {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0C00_0001u32 + i as u32));
        assert!(limiter.check_key(&ip).is_ok());
    }
    println!(
        "reference, tower_governor keyed state: {} IPs, heap {:.0} B/IP, RSS {:.0} B/IP",
        limiter.len(),
        heap().saturating_sub(heap0) as f64 / n as f64,
        rss().saturating_sub(rss0) as f64 / n as f64
    );
    println!();
}

fn flood() {
    let (cap, fresh) = (200_000 / scale(), 1_000_000 / scale());
    let layer = guard(cap);
    let handle = layer.handle();
    let mut svc = layer.layer(service_fn(ok::<GuardBody<Full<Bytes>>>));

    // A scraper: account 4242 walks other accounts' address books.
    let scraper_ip = Ipv4Addr::new(198, 51, 100, 7);
    let mut scraper_refused = 0;
    for id in 1..=40 {
        let id = id.to_string();
        scraper_refused += u32::from(call(
            &mut svc,
            request(scraper_ip, Some("4242"), Some("scraper"), &id),
        ));
    }
    let blocked = |h: &enumguard::GuardHandle| {
        matches!(h.verdict(&Actor::account("4242")), Verdict::Block { .. })
    };
    assert!(blocked(&handle), "the scraper is blocked before the flood");
    assert!(scraper_refused > 0);
    // Latency of each request (ns), without the flood first: requests from
    // a fixed set of known actors (their records exist; nothing is evicted),
    // as many as the flood sends. Touched before the RSS is read.
    let mut lat: Vec<u32> = vec![0; 2 * fresh];
    let known = (cap / 8).max(1);
    for i in 0..known {
        let ip = Ipv4Addr::from(0x0A00_0001u32 + i as u32);
        call(&mut svc, request(ip, None, None, "1"));
    }
    for (i, slot) in lat.iter_mut().enumerate() {
        let ip = Ipv4Addr::from(0x0A00_0001u32 + (i % known) as u32);
        let req = request(ip, None, None, "1");
        let t = Instant::now();
        call(&mut svc, req);
        *slot = t.elapsed().as_nanos().min(u32::MAX as u128) as u32;
    }
    let quiet = Percentiles::of(&mut lat);
    assert!(blocked(&handle), "the scraper is still blocked");
    let rss0 = rss();
    let start = Instant::now();
    let mut max_tracked = 0;
    let mut refused = 0u64;
    let every = (fresh / 100).max(1);
    let mut check = |h: &enumguard::GuardHandle, i: usize| {
        if i % every == 0 {
            let t = h.tracked();
            assert!(t <= h.capacity(), "tracked {t} > capacity");
            max_tracked = max_tracked.max(t);
        }
    };
    // One million fresh IPs, one request each (no session, no account).
    for (i, slot) in lat[..fresh].iter_mut().enumerate() {
        let ip = Ipv4Addr::from(0x0B00_0001u32 + (i as u32).wrapping_mul(97));
        let req = request(ip, None, None, "1");
        let t = Instant::now();
        refused += u64::from(call(&mut svc, req));
        *slot = t.elapsed().as_nanos().min(u32::MAX as u128) as u32;
        check(&handle, i);
    }
    let after_ips = (handle.tracked(), rss());
    // One million fresh session tokens, from 1,000 addresses.
    for (i, slot) in lat[fresh..].iter_mut().enumerate() {
        let ip = Ipv4Addr::new(100, 64, (i % 1000 / 250) as u8, (i % 250) as u8 + 1);
        let token = format!("flood-{i}");
        let req = request(ip, None, Some(&token), "1");
        let t = Instant::now();
        refused += u64::from(call(&mut svc, req));
        *slot = t.elapsed().as_nanos().min(u32::MAX as u128) as u32;
        check(&handle, i);
    }
    let elapsed = start.elapsed();
    let flooded = Percentiles::of(&mut lat);
    let survived = handle
        .suspects(0.9)
        .iter()
        .any(|s| s.actor == handle.key(&Actor::account("4242")));
    println!();
    println!(
        "## Flood: max_actors({cap}); {fresh} fresh IPs then {fresh} fresh session tokens, one probe request each"
    );
    println!();
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| RSS before the flood | {:.1} MiB |", mib(rss0 as f64));
    println!(
        "| RSS after the fresh IPs | {:.1} MiB |",
        mib(after_ips.1 as f64)
    );
    println!("| RSS at the end | {:.1} MiB |", mib(rss() as f64));
    println!("| peak RSS (VmHWM) | {:.1} MiB |", mib(peak_rss() as f64));
    println!(
        "| tracked after the IPs / at the end / max seen | {} / {} / {} |",
        after_ips.0,
        handle.tracked(),
        max_tracked
    );
    println!("| capacity | {} |", handle.capacity());
    println!("| flood requests refused | {refused} |");
    println!(
        "| scraper still blocked / its record kept | {} / {} |",
        blocked(&handle),
        survived
    );
    println!(
        "| flood time | {:.2} s ({:.2} µs/request) |",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / (2 * fresh) as f64
    );
    println!();
    // One line each for scripts: per request, in-process (the guard and a
    // trivial service), without and during the flood.
    println!("no_flood_latency_us {quiet}");
    println!("flood_latency_us {flooded}");
    let within = flooded.p999 <= 2.0 * quiet.p999 && flooded.max <= 2.0 * quiet.max;
    println!(
        "target (p99.9 and max during the flood within 2x of without): {} (p99.9 {:.1} vs {:.1} µs, max {:.1} vs {:.1} µs)",
        if within { "met" } else { "MISSED" },
        flooded.p999,
        quiet.p999,
        flooded.max,
        quiet.max
    );
    println!();
    let bound = handle.tracked() <= handle.capacity() && max_tracked <= handle.capacity();
    println!(
        "target (bound respected under the flood): tracked max {max_tracked} <= {} -> {}",
        handle.capacity(),
        if bound { "met" } else { "MISSED" }
    );
    println!();
}

/// Latency percentiles in microseconds.
struct Percentiles {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Percentiles {
    /// Of per-request nanoseconds (sorts them).
    fn of(ns: &mut [u32]) -> Self {
        ns.sort_unstable();
        let at = |q: f64| {
            let i = ((ns.len() as f64 * q).ceil() as usize).clamp(1, ns.len()) - 1;
            f64::from(ns[i]) / 1000.0
        };
        Self {
            p50: at(0.5),
            p99: at(0.99),
            p999: at(0.999),
            max: at(1.0),
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50={:.1} p99={:.1} p999={:.1} max={:.1}",
            self.p50, self.p99, self.p999, self.max
        )
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    match std::env::var("ENUMGUARD_MEM_PART").as_deref() {
        Ok("per_actor") => per_actor(),
        Ok("flood") => flood(),
        _ => {
            // `cargo bench` passes `--bench`; anything else (`cargo test
            // --benches`) gets a smoke run at 1/100 of the sizes.
            let scale = if args.iter().any(|a| a == "--bench") {
                "1"
            } else {
                "100"
            };
            let exe = std::env::current_exe().expect("own path");
            for part in ["per_actor", "flood"] {
                let status = std::process::Command::new(&exe)
                    .env("ENUMGUARD_MEM_PART", part)
                    .env("ENUMGUARD_MEM_SCALE", scale)
                    .status()
                    .expect("run a memory part");
                assert!(status.success(), "memory part {part} failed");
            }
        }
    }
}
