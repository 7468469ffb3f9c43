//! The demo's replicas scenario: three mailroom replicas behind a load
//! balancer (here: a scraper that round-robins them itself), each with its
//! own guard, sharing nothing, then sharing through a real Redis.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::{self, Mailroom, Options, email_of, password_of};
use crate::client::{Client, Error};

/// What the scraper got out, round-robining three replicas.
pub struct Outcome {
    pub alone: u64,
    pub shared: Result<u64, String>,
}

/// Runs the scraper against three replicas sharing nothing, then (when
/// this build has the `redis` feature and `redis-server` is installed)
/// three sharing through a Redis started on a loopback port.
pub async fn run(opts: &Options, ids: u64) -> Result<Outcome, Error> {
    let alone = scrape(opts, ids, None).await?;
    let shared = if !cfg!(feature = "redis") {
        Err("skipped: built without the `redis` feature \
             (cargo run --release --example demo --features redis)"
            .to_string())
    } else {
        match Redis::start() {
            Ok(redis) => {
                let r = scrape(opts, ids, Some(redis.url())).await;
                drop(redis);
                r.map_err(|e| e.to_string())
            }
            Err(e) => Err(format!("skipped: {e}")),
        }
    };
    Ok(Outcome { alone, shared })
}

async fn scrape(opts: &Options, ids: u64, redis: Option<String>) -> Result<u64, Error> {
    let state = Arc::new(Mailroom::seeded(opts.accounts, false));
    let mut servers = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..3 {
        let mut o = opts.clone();
        if let Some(url) = &redis {
            if o.config.session_key.is_none() {
                o.config.session_key = Some("6d61696c726f6f6d2d7265706c696361".into());
            }
            let mut cluster = enumguard::config::ClusterConfig::redis(url.clone());
            cluster.key_prefix = "demo".into();
            cluster.sync_interval_ms = 50;
            cluster.replica_id = Some(format!("replica-{i}"));
            o.config.cluster = Some(cluster);
        }
        let a = app::app_with(&o, state.clone())?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        addrs.push(listener.local_addr()?);
        let router = a.router;
        let handle = a.guard;
        servers.push((
            tokio::spawn(async move {
                let _ = app::serve(listener, router).await;
            }),
            handle,
        ));
    }
    // The guards connect to Redis first.
    if redis.is_some() {
        let deadline = Instant::now() + Duration::from_secs(5);
        for (_, h) in &servers {
            while h.as_ref().and_then(cluster_degraded) != Some(false) {
                if Instant::now() > deadline {
                    return Err("the replicas did not connect to Redis".into());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let me = opts.accounts / 2 + 11;
    let mut clients: Vec<Client> = addrs
        .iter()
        .map(|a: &SocketAddr| Client::new(*a, Ipv4Addr::new(127, 66, 0, 9)))
        .collect();
    for c in &mut clients {
        c.login(&email_of(me), &password_of(me)).await?;
    }
    let mut leaked = 0;
    for id in 1..=ids {
        if id == me {
            continue;
        }
        let c = &mut clients[(id % 3) as usize];
        let r = c.get(&format!("/api/accounts/{id}/addressbook")).await?;
        if r.status == 200 {
            leaked += 1;
        }
        // About 200 requests a second over the three.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for (task, _) in servers {
        task.abort();
    }
    Ok(leaked)
}

#[cfg(feature = "redis")]
fn cluster_degraded(h: &enumguard::GuardHandle) -> Option<bool> {
    h.cluster_degraded()
}

#[cfg(not(feature = "redis"))]
fn cluster_degraded(_: &enumguard::GuardHandle) -> Option<bool> {
    None
}

/// A `redis-server` on a free loopback port, killed on drop.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start() -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| e.to_string())?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|_| {
                "redis-server is not installed (apt-get install redis-server)".to_string()
            })?;
        let r = Redis { port, child };
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("redis-server did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(r)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
