//! Loopback load: a hyper server with the guard on, in observe mode, and off,
//! driven by an in-process hyper client over 127.0.0.1.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench loopback
//! ```
//!
//! The server runs on one thread (a current-thread tokio runtime) and the
//! load generator on another, so each has a core of this two-core machine.
//! Three servers listen on 127.0.0.1 ephemeral ports:
//! - `off`: the trivial handler (200, `{"ok":true}`);
//! - `guard`: the handler under enumguard in enforce mode, configured as an
//!   application would: one objects probe on
//!   `GET /api/accounts/{id}/addressbook` (path target, default thresholds),
//!   session from `x-session`, account from `x-account`;
//! - `observe`: the same in `Mode::Observe`.
//!
//! Every server puts the TCP peer into the request as axum's
//! `ConnectInfo<SocketAddr>`. The client keeps `ENUMGUARD_LOOPBACK_CONNS`
//! (default 16) HTTP/1.1 keep-alive connections, each a closed loop of
//! requests from one user (account `n`, session `s-n`) reading its own
//! address book: every request is a probe request (the guard's dearer path)
//! and none may be refused (checked).
//!
//! Runs are interleaved (off, guard, observe, then the next round in a
//! rotated order), each `ENUMGUARD_LOOPBACK_SECS` seconds (default 0.5)
//! after a warm-up, for `ENUMGUARD_LOOPBACK_ROUNDS` rounds (default 25):
//! the machine is shared, so each ratio to the unguarded server is taken
//! within a round (runs a second apart) and the table shows the median over
//! rounds. Per server: requests/s,
//! p50 and p99 latency, and the server thread's CPU time per request (from
//! `/proc/self/task/<tid>/schedstat`) with the busy share of the server and
//! client threads. When the client thread is the busier one, it sets the
//! pace, and the server CPU time per request is the figure that isolates
//! the guard's cost.

/// The guard pieces the tests use too (the account header, the probe).
#[path = "../tests/common/mod.rs"]
mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use bytes::Bytes;
use enumguard::{GuardHandle, GuardLayer, Mode};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, Service, ServiceBuilder, service_fn};

type Ready = std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>;

fn handler<B>(_req: Request<B>) -> Ready {
    std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(
        b"{\"ok\":true}",
    )))))
}

fn guard_layer(mode: Mode) -> GuardLayer {
    GuardLayer::builder()
        .probe(common::addressbook())
        .session_header("x-session")
        .account(common::account_from_header)
        .mode(mode)
        .build()
        .expect("valid enumguard config")
}

/// Accepts connections forever, serving each with `svc` and the peer
/// address in the request extensions.
async fn serve<S, B>(listener: TcpListener, svc: S)
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = ServiceBuilder::new()
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            })
            .service(svc.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                .await;
        });
    }
}

struct Servers {
    addrs: [(&'static str, SocketAddr); 3],
    /// The server thread's id, for its CPU time.
    tid: u64,
    guard: GuardHandle,
    observe: GuardHandle,
}

fn thread_id() -> u64 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time of a thread of this process, in nanoseconds.
fn thread_cpu(tid: u64) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn start_servers() -> Servers {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let bind = || async {
                TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1")
            };
            let (off, guard, observe) = (bind().await, bind().await, bind().await);
            let addr = |l: &TcpListener| l.local_addr().expect("local addr");
            let guard_l = guard_layer(Mode::Enforce);
            let observe_l = guard_layer(Mode::Observe);
            tx.send(Servers {
                addrs: [
                    ("off", addr(&off)),
                    ("guard", addr(&guard)),
                    ("observe", addr(&observe)),
                ],
                tid: thread_id(),
                guard: guard_l.handle(),
                observe: observe_l.handle(),
            })
            .expect("send addresses");
            tokio::spawn(serve(off, service_fn(handler::<Incoming>)));
            tokio::spawn(serve(
                guard,
                guard_l.layer(service_fn(handler::<enumguard::GuardBody<Incoming>>)),
            ));
            serve(
                observe,
                observe_l.layer(service_fn(handler::<enumguard::GuardBody<Incoming>>)),
            )
            .await;
        });
    });
    rx.recv().expect("servers started")
}

#[derive(Default)]
struct Run {
    requests: u64,
    refused: u64,
    errors: u64,
    wall: Duration,
    server_cpu: Duration,
    client_cpu: Duration,
    latencies: Vec<u32>,
}

/// One keep-alive connection of user `user`, in a closed loop until
/// `deadline`.
async fn user(addr: SocketAddr, user: usize, deadline: Instant) -> Run {
    let mut run = Run::default();
    let Ok(stream) = TcpStream::connect(addr).await else {
        run.errors += 1;
        return run;
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        run.errors += 1;
        return run;
    };
    tokio::spawn(conn);
    let uri = format!("/api/accounts/{user}/addressbook");
    let (acct, session) = (user.to_string(), format!("s-{user}"));
    while Instant::now() < deadline {
        let req = Request::get(uri.as_str())
            .header(http::header::HOST, "127.0.0.1")
            .header("x-account", acct.as_str())
            .header("x-session", session.as_str())
            .body(Empty::<Bytes>::new())
            .expect("request");
        let start = Instant::now();
        let Ok(res) = sender.send_request(req).await else {
            run.errors += 1;
            break;
        };
        let status = res.status();
        if res.into_body().collect().await.is_err() {
            run.errors += 1;
            break;
        }
        let nanos = start.elapsed().as_nanos().min(u32::MAX as u128) as u32;
        run.latencies.push(nanos);
        run.requests += 1;
        run.refused += u64::from(status != StatusCode::OK);
    }
    run
}

/// Drives `addr` with `conns` users for `secs`.
fn load(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    conns: usize,
    secs: f64,
    server_tid: u64,
) -> Run {
    let client_tid = thread_id();
    let (s0, c0) = (thread_cpu(server_tid), thread_cpu(client_tid));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let runs = rt.block_on(async {
        let tasks: Vec<_> = (1..=conns)
            .map(|u| tokio::spawn(user(addr, u, deadline)))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("user task"));
        }
        out
    });
    let wall = start.elapsed();
    let mut total = Run {
        wall,
        server_cpu: Duration::from_nanos(thread_cpu(server_tid).saturating_sub(s0)),
        client_cpu: Duration::from_nanos(thread_cpu(client_tid).saturating_sub(c0)),
        ..Run::default()
    };
    for r in runs {
        total.requests += r.requests;
        total.refused += r.refused;
        total.errors += r.errors;
        total.latencies.extend(r.latencies);
    }
    total
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    // `cargo bench` passes `--bench`; anything else (`cargo test --benches`)
    // gets a short smoke run.
    let full = args.iter().any(|a| a == "--bench");
    let secs = env_f64("ENUMGUARD_LOOPBACK_SECS", if full { 0.5 } else { 0.2 });
    let rounds = env_f64("ENUMGUARD_LOOPBACK_ROUNDS", if full { 25.0 } else { 1.0 }) as usize;
    let conns = env_f64("ENUMGUARD_LOOPBACK_CONNS", 16.0) as usize;

    let servers = start_servers();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");

    // Warm-up: every server, then the measured rounds.
    for (_, addr) in servers.addrs {
        load(&rt, addr, conns, (secs / 4.0).max(0.1), servers.tid);
    }
    let mut results: Vec<(&str, Vec<Run>)> = servers
        .addrs
        .iter()
        .map(|(n, _)| (*n, Vec::new()))
        .collect();
    for round in 0..rounds.max(1) {
        for k in 0..3 {
            let i = (k + round) % 3;
            let run = load(&rt, servers.addrs[i].1, conns, secs, servers.tid);
            assert_eq!(run.errors, 0, "{}: connection errors", servers.addrs[i].0);
            assert_eq!(
                run.refused, 0,
                "{}: requests were refused",
                servers.addrs[i].0
            );
            results[i].1.push(run);
        }
    }

    /// One run's figures: req/s, p50 and p99 (µs), server CPU µs/request,
    /// server and client busy shares.
    fn figures(r: &Run) -> [f64; 6] {
        let mut lat = r.latencies.clone();
        lat.sort_unstable();
        let wall = r.wall.as_secs_f64();
        [
            r.requests as f64 / wall,
            percentile(&lat, 0.50) / 1000.0,
            percentile(&lat, 0.99) / 1000.0,
            r.server_cpu.as_secs_f64() * 1e6 / r.requests.max(1) as f64,
            r.server_cpu.as_secs_f64() / wall,
            r.client_cpu.as_secs_f64() / wall,
        ]
    }
    let figs: Vec<Vec<[f64; 6]>> = results
        .iter()
        .map(|(_, runs)| runs.iter().map(figures).collect())
        .collect();
    // Each figure: the median over rounds; each ratio: the median over
    // rounds of the ratio to the unguarded run of the same round.
    let med = |server: usize, f: usize| {
        median(&mut figs[server].iter().map(|x| x[f]).collect::<Vec<_>>())
    };
    let ratio = |server: usize, f: usize| {
        median(
            &mut figs[server]
                .iter()
                .zip(&figs[0])
                .map(|(x, off)| x[f] / off[f])
                .collect::<Vec<_>>(),
        )
    };
    println!();
    println!(
        "## Loopback: {conns} keep-alive connections on 127.0.0.1, {rounds} interleaved rounds of {secs} s per server"
    );
    println!(
        "## (server: 1 thread; client: in-process hyper, 1 thread; every request a probe request)"
    );
    println!("## medians over rounds; ratios are medians of per-round ratios to `off`");
    println!();
    println!(
        "| server | req/s | ratio | p50 µs | ratio | p99 µs | ratio | server CPU µs/req | ratio | server busy | client busy | requests |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, (name, runs)) in results.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.3} | {:.1} | {:.3} | {:.1} | {:.3} | {:.2} | {:.3} | {:.0}% | {:.0}% | {} |",
            name,
            med(i, 0),
            ratio(i, 0),
            med(i, 1),
            ratio(i, 1),
            med(i, 2),
            ratio(i, 2),
            med(i, 3),
            ratio(i, 3),
            med(i, 4) * 100.0,
            med(i, 5) * 100.0,
            runs.iter().map(|r| r.requests).sum::<u64>()
        );
    }
    println!();
    println!(
        "guard: {} records tracked, {} verdicts; observe: {} records tracked, {} verdicts",
        servers.guard.tracked(),
        servers.guard.verdict_count(),
        servers.observe.tracked(),
        servers.observe.verdict_count()
    );
    for (i, (name, _)) in results.iter().enumerate().skip(1) {
        let r = ratio(i, 0);
        println!(
            "target (throughput within 5% of unguarded): {name} {:+.1}% -> {}",
            (r - 1.0) * 100.0,
            if r >= 0.95 { "met" } else { "MISSED" }
        );
    }
    println!();
}
