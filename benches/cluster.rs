//! What the cluster sync (feature `redis`) costs on the request path, and
//! that the request path never waits on Redis:
//!
//! ```text
//! cargo bench --features redis --bench cluster
//! ```
//!
//! Starts a `redis-server` on an ephemeral loopback port (it must be
//! installed), builds two guards over the same trivial service, one without
//! a cluster and one with (its sync connected to that Redis), and times
//! probe requests (an account reading its own address book, as the
//! overhead bench does) through both, interleaved: `ENUMGUARD_CLUSTER_ROUNDS`
//! rounds (default 30) of `ENUMGUARD_CLUSTER_BATCH` requests (default
//! 20,000) each. Then the latency of single requests through the clustered
//! guard with Redis up, paused (SIGSTOP) and down (killed): p50, p99, max.
//! `cargo test --benches --features redis` runs it once, small.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use enumguard::{Config, GuardBody, GuardLayer, PeerAddr};
use http::{Request, Response};
use tower::{Layer, ServiceExt, service_fn};

const SESSION_KEY: &str = "000102030405060708090a0b0c0d0e0f";

fn config(cluster: Option<u16>) -> Config {
    let cluster = cluster
        .map(|port| {
            format!(
                "[cluster]\nredis_url = \"redis://127.0.0.1:{port}/\"\nkey_prefix = \"bench\"\n"
            )
        })
        .unwrap_or_default();
    // Thresholds out of reach: the foreign-read rounds must not block.
    Config::from_toml_str(&format!(
        "session_key = \"{SESSION_KEY}\"\n{cluster}[[probes]]\nname = \"addressbook\"\npath = \"/api/accounts/{{id}}/addressbook\"\ntarget = {{ path = \"id\" }}\n[probes.thresholds]\nforeign_block = 60000\nsequential_factor = 1.0\ncadence_factor = 1.0\n[probes.thresholds.kind_factors]\nip = 1000.0\nsubnet = 1000.0\n"
    ))
    .expect("valid bench config")
}

async fn ok(
    _req: Request<GuardBody<String>>,
) -> Result<Response<String>, std::convert::Infallible> {
    Ok(Response::new(String::from("ok")))
}

/// Account `1 + k % 1000` reads its own address book, or (`foreign`)
/// another account's.
fn request(k: u64, foreign: bool) -> Request<String> {
    let id = 1 + k % 1000;
    let book = if foreign { 10_000 + k % 50_000 } else { id };
    let mut req = Request::get(format!("/api/accounts/{book}/addressbook"))
        .header("x-account", id.to_string())
        .body(String::new())
        .expect("a request");
    req.extensions_mut().insert(PeerAddr(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(11, (id >> 8) as u8, id as u8, 1)),
        50_000,
    )));
    req
}

fn account(parts: &http::request::Parts) -> Option<enumguard::AccountId> {
    parts
        .headers
        .get("x-account")?
        .to_str()
        .ok()
        .map(enumguard::AccountId::new)
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut r = Redis { port, child: None };
        r.restart();
        r
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for this bench (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.signal("-CONT");
        self.stop();
    }
}

fn lower_quartile(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 4]
}

fn percentile(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

fn main() {
    let small = std::env::args().any(|a| a == "--test");
    let rounds = if small {
        2
    } else {
        env_or("ENUMGUARD_CLUSTER_ROUNDS", 30)
    } as usize;
    let batch = if small {
        200
    } else {
        env_or("ENUMGUARD_CLUSTER_BATCH", 20_000)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut redis = Redis::start();
    rt.block_on(async {
        let off = GuardLayer::builder()
            .config(config(None))
            .account(account)
            .build()
            .expect("a guard");
        let on = GuardLayer::builder()
            .config(config(Some(redis.port)))
            .account(account)
            .build()
            .expect("a clustered guard");
        let handle = on.handle();
        let deadline = Instant::now() + Duration::from_secs(5);
        while handle.cluster_degraded() != Some(false) {
            assert!(Instant::now() < deadline, "the sync did not connect");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let off_svc = off.layer(service_fn(ok));
        let on_svc = on.layer(service_fn(ok));
        let mut k = 0u64;
        for (what, foreign) in [("own object", false), ("foreign object", true)] {
            let mut times = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                for (svc, out) in [(&off_svc, &mut times.0), (&on_svc, &mut times.1)] {
                    let start = Instant::now();
                    for _ in 0..batch {
                        k += 1;
                        let req = request(k, foreign);
                        let res = svc.clone().oneshot(req).await.expect("a response");
                        assert_eq!(res.status(), 200);
                    }
                    out.push(start.elapsed().as_nanos() as f64 / batch as f64);
                }
            }
            let (a, b) = (lower_quartile(times.0), lower_quartile(times.1));
            println!(
                "probe request ({what}), cluster off: {a:.0} ns; on (Redis up): {b:.0} ns; ratio {:.3}",
                b / a
            );
        }
        // Latency through the clustered guard: Redis up, paused, down.
        let n = if small { 200 } else { 20_000 };
        for state in ["up", "paused", "down"] {
            match state {
                "paused" => redis.signal("-STOP"),
                "down" => {
                    redis.signal("-CONT");
                    redis.stop();
                }
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut lat = Vec::with_capacity(n);
            for _ in 0..n {
                k += 1;
                let start = Instant::now();
                let res = on_svc
                    .clone()
                    .oneshot(request(k, false))
                    .await
                    .expect("a response");
                lat.push(start.elapsed().as_nanos() as u64);
                assert_eq!(res.status(), 200, "a request failed with Redis {state}");
            }
            let p50 = percentile(&mut lat, 0.5);
            let p99 = percentile(&mut lat, 0.99);
            let max = *lat.iter().max().unwrap_or(&0);
            println!(
                "latency with Redis {state:>6}: p50 {:.1} us, p99 {:.1} us, max {:.1} us; degraded: {:?}",
                p50 as f64 / 1e3,
                p99 as f64 / 1e3,
                max as f64 / 1e3,
                handle.cluster_degraded()
            );
        }
    });
}
