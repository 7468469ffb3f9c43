//! Many replicas sharing verdicts through a real Redis (feature `redis`):
//! three guarded axum servers on loopback ports, each with its own guard
//! and state, sharing nothing but a `redis-server` that the test starts on
//! an ephemeral port. Waits are bounded polls: propagation through Redis
//! takes real time.
#![cfg(feature = "redis")]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::{Router, routing::get};
use bytes::Bytes;
use common::redis::RedisServer;
use enumguard::{AccountId, Actor, Config, GuardHandle, GuardLayer};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

const SESSION_KEY: &str = "000102030405060708090a0b0c0d0e0f";

struct Replica {
    addr: SocketAddr,
    handle: GuardHandle,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn replica(redis: &str) -> Replica {
    let config = Config::from_toml_str(&format!(
        r#"
session_key = "{SESSION_KEY}"
[cluster]
redis_url = "{redis}"
key_prefix = "test"
sync_interval_ms = 20
[[probes]]
name = "addressbook"
path = "/api/accounts/{{id}}/addressbook"
target = {{ path = "id" }}
"#
    ))
    .unwrap();
    let layer = GuardLayer::builder()
        .config(config)
        .account(common::account_from_header)
        .build()
        .unwrap();
    let handle = layer.handle();
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/api/accounts/{id}/addressbook", get(|| async { "book" }))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Replica {
        addr,
        handle,
        server,
    }
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The status of `GET path` on `r` as `account`.
async fn status(
    c: &Client<HttpConnector, Empty<Bytes>>,
    r: &Replica,
    path: &str,
    account: u64,
) -> u16 {
    let req = http::Request::get(format!("http://{}{path}", r.addr))
        .header("x-account", account.to_string())
        .body(Empty::new())
        .unwrap();
    c.request(req)
        .await
        .map(|res| res.status().as_u16())
        .unwrap_or(0)
}

/// Polls `f` every 10 ms until it holds or `within` has passed; how long it took.
async fn until<F, Fut>(within: Duration, mut f: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if f().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

async fn connected(replicas: &[&Replica]) {
    for r in replicas {
        let ok = until(Duration::from_secs(5), || async {
            r.handle.cluster_degraded() == Some(false)
        })
        .await;
        assert!(ok.is_some(), "a replica did not connect to Redis");
    }
}

fn account(id: u64) -> Actor {
    Actor::account(AccountId::from(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_and_an_unban_on_one_replica_reach_the_others_within_a_second() {
    let redis = RedisServer::start();
    let rs = [
        replica(&redis.url()).await,
        replica(&redis.url()).await,
        replica(&redis.url()).await,
    ];
    connected(&rs.iter().collect::<Vec<_>>()).await;
    let c = client();
    for r in &rs {
        assert_eq!(status(&c, r, "/hello", 7).await, 200);
    }
    rs[0].handle.ban(&account(7), Duration::from_secs(600));
    assert_eq!(status(&c, &rs[0], "/hello", 7).await, 429);
    for r in &rs[1..] {
        let took = until(Duration::from_secs(1), || async {
            status(&c, r, "/hello", 7).await == 429
        })
        .await;
        assert!(took.is_some(), "the ban did not reach a replica within 1 s");
        // Another account is not affected.
        assert_eq!(status(&c, r, "/hello", 8).await, 200);
    }
    // Unban on another replica: lifted everywhere.
    assert!(rs[1].handle.unban(&account(7)));
    for r in [&rs[0], &rs[2]] {
        let took = until(Duration::from_secs(1), || async {
            status(&c, r, "/hello", 7).await == 200
        })
        .await;
        assert!(
            took.is_some(),
            "the unban did not reach a replica within 1 s"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_gets_the_live_verdicts_back() {
    let redis = RedisServer::start();
    let a = replica(&redis.url()).await;
    connected(&[&a]).await;
    a.handle.ban(&account(7), Duration::from_secs(600));
    let c = client();
    // A replica that starts afterwards (or comes back from a restart).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b = replica(&redis.url()).await;
    connected(&[&b]).await;
    let took = until(Duration::from_secs(1), || async {
        status(&c, &b, "/hello", 7).await == 429
    })
    .await;
    assert!(took.is_some(), "the new replica did not load the live ban");
    assert!(matches!(
        b.handle.verdict(&account(7)),
        enumguard::Verdict::Block { .. }
    ));
}

/// Redis killed in the middle of load: no request fails, detection goes on
/// locally, the replicas say they are degraded; Redis back: sharing
/// resumes, and a ban made meanwhile reaches the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_and_back_costs_no_request_and_loses_no_verdict() {
    let mut redis = RedisServer::start();
    let rs = [
        replica(&redis.url()).await,
        replica(&redis.url()).await,
        replica(&redis.url()).await,
    ];
    connected(&rs.iter().collect::<Vec<_>>()).await;
    let c = client();
    let mut failed = 0;
    let load = |n: u64| {
        let c = c.clone();
        let rs = &rs;
        async move {
            let mut bad = 0;
            for i in 0..n {
                let r = &rs[(i % 3) as usize];
                // Account 9 reads its own book, and says hello.
                if status(&c, r, "/api/accounts/9/addressbook", 9).await != 200 {
                    bad += 1;
                }
                if status(&c, r, "/hello", 9).await != 200 {
                    bad += 1;
                }
            }
            bad
        }
    };
    failed += load(30).await;
    redis.stop();
    for r in &rs {
        let down = until(Duration::from_secs(5), || async {
            r.handle.cluster_degraded() == Some(true)
        })
        .await;
        assert!(down.is_some(), "a replica did not notice Redis was gone");
    }
    failed += load(30).await;
    // A ban while Redis is away holds where it was made.
    rs[0].handle.ban(&account(8), Duration::from_secs(600));
    assert_eq!(status(&c, &rs[0], "/hello", 8).await, 429);
    redis.restart();
    connected(&rs.iter().collect::<Vec<_>>()).await;
    failed += load(30).await;
    assert_eq!(failed, 0, "requests failed while Redis was away");
    for r in &rs[1..] {
        let took = until(Duration::from_secs(2), || async {
            status(&c, r, "/hello", 8).await == 429
        })
        .await;
        assert!(
            took.is_some(),
            "the ban made while Redis was away did not reach a replica"
        );
    }
}

/// A scraper round-robined over three replicas: each replica counts what
/// the others saw of it (as of their last sync, every 20 ms here), so it is
/// stopped near the single-replica bound (15 foreign books) instead of
/// three times it, and then refused on every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scraper_round_robined_over_three_replicas_is_stopped_near_one_replicas_bound() {
    let redis = RedisServer::start();
    let rs = [
        replica(&redis.url()).await,
        replica(&redis.url()).await,
        replica(&redis.url()).await,
    ];
    connected(&rs.iter().collect::<Vec<_>>()).await;
    let c = client();
    let mut served = 0;
    let mut refused_in_a_row = 0;
    for k in 0..90u64 {
        let r = &rs[(k % 3) as usize];
        let path = format!("/api/accounts/{}/addressbook", 1_000 + k * 37);
        match status(&c, r, &path, 7).await {
            200 => {
                served += 1;
                refused_in_a_row = 0;
            }
            429 => refused_in_a_row += 1,
            s => panic!("status {s}"),
        }
        if refused_in_a_row >= 6 {
            break;
        }
        // About 200 requests a second over the three.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("round-robin scraper over 3 replicas: {served} foreign books served");
    assert!(served >= 12, "{served}");
    assert!(
        served <= 15 + 6,
        "{served}: more than one replica's bound plus a sync interval's worth"
    );
    for r in &rs {
        let took = until(Duration::from_secs(1), || async {
            status(&c, r, "/api/accounts/5/addressbook", 7).await == 429
        })
        .await;
        assert!(took.is_some(), "a replica does not refuse the scraper");
    }
}

/// A replica that starts while a scrape is under way counts what the
/// others saw of the scraper already (loaded from Redis when it connects).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_starts_late_counts_what_the_others_saw() {
    let redis = RedisServer::start();
    let a = replica(&redis.url()).await;
    connected(&[&a]).await;
    let c = client();
    for k in 0..10u64 {
        let path = format!("/api/accounts/{}/addressbook", 2_000 + k * 37);
        assert_eq!(status(&c, &a, &path, 7).await, 200);
    }
    // A's evidence goes out at its next sync (every 20 ms).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b = replica(&redis.url()).await;
    connected(&[&b]).await;
    let mut served = 0;
    for k in 10..40u64 {
        let path = format!("/api/accounts/{}/addressbook", 2_000 + k * 37);
        if status(&c, &b, &path, 7).await == 200 {
            served += 1;
        } else {
            break;
        }
    }
    // 15 in all: B lets through what is left of the bound, not 15 more.
    assert!(served <= 7, "{served}");
}

#[test]
fn a_cluster_needs_a_shared_session_key_and_a_redis_url() {
    let e =
        Config::from_toml_str("[cluster]\nredis_url = \"redis://127.0.0.1:6379\"\n").unwrap_err();
    assert_eq!(e.field(), Some("session_key"));
    assert!(e.to_string().contains("every replica"), "{e}");
    let e = Config::from_toml_str(&format!(
        "session_key = \"{SESSION_KEY}\"\n[cluster]\nredis_url = \"http://:secret@10.0.0.1\"\n"
    ))
    .unwrap_err();
    assert_eq!(e.field(), Some("cluster.redis_url"));
    assert!(
        !e.to_string().contains("secret"),
        "the password is never echoed: {e}"
    );
    // Outside a tokio runtime the sync has nowhere to run.
    let config = Config::from_toml_str(&format!(
        "session_key = \"{SESSION_KEY}\"\n[cluster]\nredis_url = \"redis://127.0.0.1:1\"\n"
    ))
    .unwrap();
    let e = GuardLayer::from_config(config).unwrap_err();
    assert_eq!(e.field(), Some("cluster"));
}
