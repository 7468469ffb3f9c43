//! The guard and `enumguard replay` agree (feature `cli`): a shop behind the
//! tower layer (orders whose ids are not account ids, reported through
//! `Owner`; a password-reset oracle with its target in the JSON body; a
//! lookup whose handler says `Known`), driven in simulated time, writes its
//! access log through the access-log hook; replaying that log gives the
//! same decision for every request, and tells the truth about collateral:
//! none with the owners, the customers without them.

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use enumguard::replay::{CollateralWhy, Format, Options, Replay};
use enumguard::{AccountId, Clock, Config, GuardLayer, Known, ManualClock, Owner, Standing};
use tower::ServiceExt;

const BIN: &str = env!("CARGO_BIN_EXE_enumguard");

const CONFIG: &str = r#"
mode = "enforce"
session = { header = "x-session" }

[[probes]]
name = "orders"
method = "GET"
path = "/api/orders/{id}"
target = { path = "id" }
style = "objects"

[[probes]]
name = "reset"
method = "POST"
path = "/api/password-reset"
target = { json = "email" }
style = "identities"

[[probes]]
name = "lookup"
method = "GET"
path = "/api/users/lookup"
target = { query = "email" }
style = "identities"
"#;

/// 2026-11-30T08:00:00Z, in seconds since the epoch: the clock starts there,
/// so the log's times are the guard's clock.
const START: u64 = 1_796_025_600;
const CUSTOMERS: u64 = 30;
/// Order ids: 5000.. (not account ids); each has an owner among the
/// customers.
const FIRST_ORDER: u64 = 5000;
const ORDERS: u64 = 3000;

fn owner_of(order: u64) -> u64 {
    (order * 7919) % CUSTOMERS
}

fn customer(i: u64) -> String {
    format!("customer{i}")
}

/// The shop: order reads say whose order it was; a password reset answers
/// 202 for a registered address (`customerN@shop.example`), 404 otherwise;
/// a lookup is `Known` when the address is the caller's contact (every
/// customer knows the customers).
fn shop() -> Router {
    Router::new()
        .route(
            "/api/orders/{id}",
            get(|Path(id): Path<u64>| async move {
                if !(FIRST_ORDER..FIRST_ORDER + ORDERS).contains(&id) {
                    return StatusCode::NOT_FOUND.into_response();
                }
                let mut res = "{\"order\":1}".into_response();
                res.extensions_mut()
                    .insert(Owner(AccountId::new(customer(owner_of(id)))));
                res
            }),
        )
        .route(
            "/api/password-reset",
            post(|body: String| async move {
                let registered = body.contains("\"customer");
                if registered {
                    StatusCode::ACCEPTED
                } else {
                    StatusCode::NOT_FOUND
                }
            }),
        )
        .route(
            "/api/users/lookup",
            get(
                |Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    let email = q.get("email").cloned().unwrap_or_default();
                    let mut res: Response = if email.starts_with("customer") {
                        "{}".into_response()
                    } else {
                        StatusCode::NOT_FOUND.into_response()
                    };
                    if email.starts_with("customer") {
                        res.extensions_mut().insert(Known);
                    }
                    res
                },
            ),
        )
}

/// A small deterministic generator (xorshift), so the traffic is the same
/// on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One request of the simulation.
struct Call {
    from: [u8; 4],
    account: Option<String>,
    session: Option<String>,
    method: &'static str,
    uri: String,
    body: Option<String>,
}

/// The traffic: 30 customers (each on its own address, some behind one
/// NAT) reading their own orders, checking contacts, now and then
/// resetting their own password; an account made to scrape walking the
/// orders; a guesser of registered addresses through the password reset,
/// on rotating addresses. About 40 minutes, a request every 1-2 s.
fn traffic() -> Vec<(u64, Call)> {
    let mut rng = Rng(0x5eed_1234_abcd);
    let mut calls = Vec::new();
    let mut t = 0u64;
    let mine: Vec<Vec<u64>> = (0..CUSTOMERS)
        .map(|c| {
            (FIRST_ORDER..FIRST_ORDER + ORDERS)
                .filter(|o| owner_of(*o) == c)
                .collect()
        })
        .collect();
    let mut scraped = FIRST_ORDER;
    let mut guess = 0u64;
    for step in 0..2_000u64 {
        t += 1 + rng.below(2);
        let c = rng.below(CUSTOMERS);
        // Customers 0-9 share a NAT address; the others have their own.
        let from = if c < 10 {
            [198, 51, 100, 1]
        } else {
            [192, 0, 2, c as u8]
        };
        let account = Some(customer(c));
        let session = Some(format!("s-{c}"));
        let call = match (step % 5, rng.below(20)) {
            (0, _) => {
                // The scraper: one order after the other, every 5th step.
                scraped += 1;
                Call {
                    from: [203, 0, 113, 50],
                    account: Some("mallory".into()),
                    session: Some("s-mallory".into()),
                    method: "GET",
                    uri: format!("/api/orders/{scraped}"),
                    body: None,
                }
            }
            (1, _) => {
                // The guesser, from 64 addresses in turn.
                guess += 1;
                Call {
                    from: [100, 64, (guess % 64) as u8, 7],
                    account: None,
                    session: None,
                    method: "POST",
                    uri: "/api/password-reset".into(),
                    body: Some(format!("{{\"email\":\"guess{guess}@shop.example\"}}")),
                }
            }
            (_, 0) => Call {
                from,
                account: None,
                session: None,
                method: "POST",
                uri: "/api/password-reset".into(),
                body: Some(format!("{{\"email\":\"{}@shop.example\"}}", customer(c))),
            },
            (_, 1..=3) => Call {
                from,
                account,
                session,
                method: "GET",
                uri: format!(
                    "/api/users/lookup?email={}%40shop.example",
                    customer(rng.below(CUSTOMERS))
                ),
                body: None,
            },
            _ => {
                let own = &mine[c as usize];
                Call {
                    from,
                    account,
                    session,
                    method: "GET",
                    uri: format!("/api/orders/{}", own[rng.below(own.len() as u64) as usize]),
                    body: None,
                }
            }
        };
        calls.push((t, call));
    }
    calls
}

/// Runs the traffic through the guarded shop; returns the access log's lines.
async fn guarded_log() -> Vec<String> {
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(START) - Duration::from_nanos(clock.now_nanos()));
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let layer = GuardLayer::builder()
        .config(Config::from_toml_str(CONFIG).unwrap())
        .account(|parts| {
            let a = parts.headers.get("x-account")?.to_str().ok()?;
            let standing = if a == "mallory" {
                Standing::New
            } else {
                Standing::Established
            };
            Some(AccountId::new(a).with_standing(standing))
        })
        .clock(clock.clone())
        .seed(7)
        .access_log(move |r| {
            // The replay reads the guard's clock as the log's time.
            let line = {
                let mut r = r.clone();
                r.time = std::time::UNIX_EPOCH + Duration::from_nanos(r.clock_nanos);
                r.to_json_line()
            };
            sink.lock().unwrap().push(line);
        })
        .build()
        .unwrap();
    let app = shop().layer(layer);
    let start = clock.now_nanos();
    for (t, call) in traffic() {
        let target = start + t * 1_000_000_000;
        clock.advance(Duration::from_nanos(target - clock.now_nanos()));
        let mut req = Request::builder().method(call.method).uri(&call.uri);
        if let Some(a) = &call.account {
            req = req.header("x-account", a);
        }
        if let Some(s) = &call.session {
            req = req.header("x-session", s);
        }
        if call.body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let mut req = req
            .body(Body::from(call.body.clone().unwrap_or_default()))
            .unwrap();
        req.extensions_mut()
            .insert(SocketAddr::from((call.from, 40000)));
        let res = app.clone().oneshot(req).await.unwrap();
        // Read the answer to its end, as a client would.
        let _ = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
    }
    lines.lock().unwrap().clone()
}

/// A writer the test can read after the replay took it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn the_guard_and_the_replay_of_its_log_decide_alike() {
    let lines = guarded_log().await;
    assert_eq!(lines.len(), 2_000, "one line per request");
    let logged: Vec<serde_json::Value> = lines.iter().map(|l| json(l)).collect();
    // The log holds what a replay needs: owners, outcomes, the body's
    // target, the standing, the session's hash (never the token).
    let has = |f: &str| logged.iter().filter(|v| v.get(f).is_some()).count();
    assert!(has("owner") > 800, "owners logged: {}", has("owner"));
    assert!(
        has("target") >= 300,
        "reset targets logged: {}",
        has("target")
    );
    let counts = [
        has("known"),
        has("standing"),
        has("outcome"),
        has("session"),
    ];
    assert!(
        counts[0] > 50 && counts[1] > 1_000 && counts[2] > 1_000 && counts[3] > 1_000,
        "known, standing, outcome, session: {counts:?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("s-mallory") && !l.contains("\"s-1"))
    );
    let refused_by = |who: &str| {
        logged
            .iter()
            .filter(|v| v["account"] == who && v.get("refused").is_some())
            .count()
    };
    // The guard: the scraper and the guesser stopped, no customer refused.
    assert!(refused_by("mallory") > 300, "{}", refused_by("mallory"));
    let customers_refused: usize = (0..CUSTOMERS).map(|c| refused_by(&customer(c))).sum();
    assert_eq!(customers_refused, 0);
    let guesses_refused = logged
        .iter()
        .filter(|v| v["target"].as_str().is_some_and(|t| t.starts_with("guess")))
        .filter(|v| v.get("refused").is_some())
        .count();
    assert!(guesses_refused > 100, "{guesses_refused}");

    // The replay of the same log, with the same seed.
    let decisions = Shared::default();
    let opts = Options {
        format: Format::Jsonl,
        seed: 7,
        ..Options::default()
    };
    let mut replay = Replay::new(Config::from_toml_str(CONFIG).unwrap(), opts).unwrap();
    replay.decisions_to(decisions.clone());
    for (i, l) in lines.iter().enumerate() {
        replay.feed_text(0, i as u64 + 1, l).unwrap();
    }
    let report = replay.finish().unwrap();
    let out = String::from_utf8(decisions.0.lock().unwrap().clone()).unwrap();
    let replayed: Vec<serde_json::Value> = out.lines().map(json).collect();
    assert_eq!(replayed.len(), lines.len());
    let mut differ = Vec::new();
    for (g, r) in logged.iter().zip(&replayed) {
        let guard = g.get("refused").and_then(|v| v.as_str());
        let replay = r["reason"].as_str();
        if guard != replay {
            differ.push(format!(
                "line {}: guard {guard:?}, replay {replay:?}",
                r["line"]
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{} differ: {:?}",
        differ.len(),
        &differ[..differ.len().min(10)]
    );
    let per_probe: Vec<(String, u64)> = report
        .probes
        .iter()
        .map(|p| (p.name.clone(), p.refused))
        .collect();
    for (name, n) in &per_probe {
        let guard = logged
            .iter()
            .filter(|v| v["probe"] == name.as_str() && v.get("refused").is_some())
            .count() as u64;
        assert_eq!(guard, *n, "{name}");
    }
    // With the owners, the collateral is real: none.
    assert!(report.owners_in_log);
    assert_eq!(report.collateral_total, 0, "{report}");
    assert!(
        !report.probes.iter().any(|p| p.not_in_log.is_some()),
        "{report}"
    );
}

/// The same log without its owners (an ordinary access log): the replay
/// cannot tell that the customers read their own orders, refuses them, and
/// says so: they are listed as collateral, not hidden.
#[tokio::test(flavor = "current_thread")]
async fn without_owners_the_replay_lists_the_customers_as_collateral() {
    let lines = guarded_log().await;
    let dir = std::env::temp_dir().join(format!("enumguard-agreement-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (config, log) = (dir.join("shop.toml"), dir.join("access.jsonl"));
    std::fs::write(&config, CONFIG).unwrap();
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let replay = |extra: &[&str]| {
        let out = Command::new(BIN)
            .args([
                "replay",
                "-c",
                config.to_str().unwrap(),
                "--format",
                "jsonl",
            ])
            .args(["--seed", "7", "--reveal"])
            .args(extra)
            .arg(&log)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let with = replay(&[]);
    assert!(with.contains("collateral (refused"), "{with}");
    assert!(
        with.lines()
            .any(|l| l.starts_with("collateral") && l.ends_with(": 0")),
        "{with}"
    );
    assert!(
        with.contains("account:mallory"),
        "the scraper is a suspect:\n{with}"
    );
    // The owner and own fields read from names the log does not have.
    let without = replay(&[
        "--field",
        "owner=absent",
        "--field",
        "own=absent",
        "--top",
        "100",
    ]);
    let listed: Vec<&str> = without
        .lines()
        .filter(|l| l.trim_start().starts_with("account:customer") && l.contains("owner?"))
        .collect();
    assert!(
        listed.len() >= 20,
        "{} customers listed:\n{without}",
        listed.len()
    );
    assert!(
        without.contains("this log says nothing of owners"),
        "{without}"
    );
    // The library's report says the same, with the reason.
    let mut r = Replay::new(
        Config::from_toml_str(CONFIG).unwrap(),
        Options {
            format: Format::Jsonl,
            seed: 7,
            reveal: true,
            top: 100,
            fields: {
                let mut f = enumguard::replay::Fields::default();
                f.set("owner=absent").unwrap();
                f.set("own=absent").unwrap();
                f
            },
            ..Options::default()
        },
    )
    .unwrap();
    for (i, l) in lines.iter().enumerate() {
        r.feed_text(0, i as u64 + 1, l).unwrap();
    }
    let report = r.finish().unwrap();
    assert!(!report.owners_in_log);
    assert!(report.collateral_unowned >= 20, "{report}");
    assert!(
        report
            .collateral
            .iter()
            .filter(|c| c.actor.starts_with("account:customer"))
            .all(|c| c.why == CollateralWhy::OwnersUnknown)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
