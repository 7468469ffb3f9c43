//! The attack shapes of the two incidents, and ordinary users beside them,
//! driven through the layer in simulated time (a `ManualClock`), against an
//! in-process service with 10,000 accounts and the default thresholds of the
//! two probe styles. Each test prints what got out, so `cargo test --test
//! detection -- --nocapture` gives the figures.

mod common;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use enumguard::{
    AccountId, Actor, GuardBody, GuardLayer, ManualClock, Mode, OutcomeConfig, ProbeConfig,
    Refusal, StatusSpec, TargetConfig, Verdict,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneService;
use tower::{Layer, ServiceExt, service_fn};

const ACCOUNTS: u64 = 10_000;

fn registered(email: &str) -> Option<u64> {
    let id: u64 = email
        .strip_prefix("user")?
        .strip_suffix("@mailroom.test")?
        .parse()
        .ok()?;
    (1..=ACCOUNTS).contains(&id).then_some(id)
}

/// The mail service with the flaw: any logged-in account reads any address book.
async fn app(req: Request<GuardBody<Full<Bytes>>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let account = req.headers().get("x-account").is_some();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let status = if let Some(rest) = path.strip_prefix("/api/accounts/") {
        let id = rest
            .strip_suffix("/addressbook")
            .and_then(|i| i.parse::<u64>().ok());
        match (account, id) {
            (false, _) => StatusCode::UNAUTHORIZED,
            (true, Some(id)) if (1..=ACCOUNTS).contains(&id) => StatusCode::OK,
            _ => StatusCode::NOT_FOUND,
        }
    } else if path == "/api/recipients/lookup" {
        let email = query
            .strip_prefix("email=")
            .unwrap_or("")
            .replace("%40", "@");
        match (account, registered(&email)) {
            (false, _) => StatusCode::UNAUTHORIZED,
            (true, Some(_)) => StatusCode::OK,
            (true, None) => StatusCode::NOT_FOUND,
        }
    } else if path == "/api/password-reset" && method == Method::POST {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        match v.get("email").and_then(|e| e.as_str()).and_then(registered) {
            Some(_) => StatusCode::ACCEPTED,
            None => StatusCode::NOT_FOUND,
        }
    } else {
        StatusCode::OK
    };
    let mut res = Response::new(Full::new(Bytes::from_static(b"{}")));
    *res.status_mut() = status;
    Ok(res)
}

type Svc = BoxCloneService<
    Request<Full<Bytes>>,
    Response<enumguard::ResponseBody<Full<Bytes>>>,
    Infallible,
>;

struct Sim {
    svc: Svc,
    clock: ManualClock,
    handle: enumguard::GuardHandle,
    calls: Arc<AtomicUsize>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Served(StatusCode),
    Refused,
}

fn guard(clock: &ManualClock, mode: Mode) -> GuardLayer {
    GuardLayer::builder()
        .probe(common::addressbook())
        .probe(ProbeConfig::identities(
            "lookup",
            "GET",
            "/api/recipients/lookup",
            TargetConfig::query("email"),
        ))
        .probe(
            ProbeConfig::identities(
                "password-reset",
                "POST",
                "/api/password-reset",
                TargetConfig::json("email"),
            )
            .outcome(OutcomeConfig::new(
                [StatusSpec::Code(202)],
                [StatusSpec::Code(404)],
                [StatusSpec::Code(401), StatusSpec::Code(403)],
            )),
        )
        .session_header("x-session")
        .account(common::account_from_header)
        .clock(clock.clone())
        .mode(mode)
        .build()
        .expect("valid config")
}

impl Sim {
    fn new() -> Self {
        Self::with_mode(Mode::Enforce)
    }

    fn with_mode(mode: Mode) -> Self {
        let clock = ManualClock::new();
        let layer = guard(&clock, mode);
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let inner = service_fn(move |req| {
            c.fetch_add(1, Ordering::Relaxed);
            app(req)
        });
        Self {
            handle: layer.handle(),
            svc: BoxCloneService::new(layer.layer(inner)),
            clock,
            calls,
        }
    }

    async fn send(
        &self,
        ip: IpAddr,
        account: Option<u64>,
        session: Option<&str>,
        method: Method,
        uri: &str,
        body: &str,
    ) -> Answer {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(a) = account {
            b = b.header("x-account", a.to_string());
        }
        if let Some(s) = session {
            b = b.header("x-session", s);
        }
        let mut req = b.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
        req.extensions_mut().insert(SocketAddr::new(ip, 40000));
        let res = self.svc.clone().oneshot(req).await.unwrap();
        if res.extensions().get::<Refusal>().is_some() {
            Answer::Refused
        } else {
            Answer::Served(res.status())
        }
    }

    async fn book(&self, ip: IpAddr, account: u64, session: &str, id: u64) -> Answer {
        self.send(
            ip,
            Some(account),
            Some(session),
            Method::GET,
            &format!("/api/accounts/{id}/addressbook"),
            "",
        )
        .await
    }

    async fn lookup(&self, ip: IpAddr, account: u64, email: &str) -> Answer {
        self.send(
            ip,
            Some(account),
            None,
            Method::GET,
            &format!("/api/recipients/lookup?email={email}"),
            "",
        )
        .await
    }

    async fn reset(&self, ip: IpAddr, email: &str) -> Answer {
        self.send(
            ip,
            None,
            None,
            Method::POST,
            "/api/password-reset",
            &format!("{{\"email\":\"{email}\"}}"),
        )
        .await
    }

    fn tick(&self, d: Duration) {
        self.clock.advance(d);
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// A deterministic pseudo-random sequence.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Default)]
struct Scrape {
    /// Foreign address books served.
    leaked: usize,
    refused: usize,
    /// Foreign records out before the first refusal.
    before_block: usize,
    blocked: bool,
}

/// One account reads foreign address books; ids come from `ids`.
async fn scrape(
    sim: &Sim,
    ip: IpAddr,
    account: u64,
    session: &str,
    ids: &mut dyn Iterator<Item = u64>,
    n: usize,
    step: Duration,
) -> Scrape {
    let mut s = Scrape::default();
    for id in ids.take(n) {
        sim.tick(step);
        match sim.book(ip, account, session, id).await {
            Answer::Served(StatusCode::OK) if id != account => {
                s.leaked += 1;
                if !s.blocked {
                    s.before_block += 1;
                }
            }
            Answer::Refused => {
                s.refused += 1;
                s.blocked = true;
            }
            _ => {}
        }
    }
    s
}

#[tokio::test]
async fn one_account_scraping_in_order_fast() {
    let sim = Sim::new();
    let mut ids = 1..=ACCOUNTS;
    let s = scrape(
        &sim,
        v4(198, 51, 100, 7),
        4242,
        "s1",
        &mut ids,
        600,
        Duration::from_millis(200),
    )
    .await;
    println!("fast in-order scrape: {s:?}");
    assert!(s.blocked);
    assert!(s.leaked <= 20, "{s:?}");
    assert!(matches!(
        sim.handle.verdict(&Actor::account(4242u64)),
        Verdict::Block { .. }
    ));
}

#[tokio::test]
async fn one_account_scraping_random_order_with_jitter() {
    let sim = Sim::new();
    let mut rng = Rng(7);
    let mut ids = std::iter::from_fn(|| Some(1 + rng.below(ACCOUNTS)));
    let mut leaked = 0;
    let mut blocked = false;
    for _ in 0..400 {
        let step = 500 + (ids.next().unwrap() % 5000);
        let s = scrape(
            &sim,
            v4(198, 51, 100, 7),
            4242,
            "s1",
            &mut ids,
            1,
            Duration::from_millis(step),
        )
        .await;
        leaked += s.leaked;
        blocked |= s.blocked;
    }
    println!("random-order scrape with jitter: leaked {leaked}");
    assert!(blocked);
    assert!(leaked <= 20, "leaked {leaked}");
}

#[tokio::test]
async fn one_account_scraping_slowly() {
    // One foreign read every ten minutes: slower than the one-hour window
    // can see; the long view adds it up. 300 reads = 50 hours, through
    // block expiries: every comeback adds at most 10.
    let sim = Sim::new();
    let mut ids = 1..=ACCOUNTS;
    let mut episodes = Vec::new();
    let mut current = 0usize;
    let mut was_refused = false;
    for id in (&mut ids).take(300) {
        sim.tick(Duration::from_secs(600));
        match sim.book(v4(198, 51, 100, 9), 77, "slow", id).await {
            Answer::Served(StatusCode::OK) if id != 77 => {
                if was_refused {
                    episodes.push(current);
                    current = 0;
                    was_refused = false;
                }
                current += 1;
            }
            Answer::Refused => was_refused = true,
            _ => {}
        }
    }
    episodes.push(current);
    println!("slow scrape, records out per episode (first, then comebacks): {episodes:?}");
    assert!(episodes[0] <= 20, "{episodes:?}");
    assert!(episodes[1..].iter().all(|e| *e <= 10), "{episodes:?}");
    assert!(episodes.iter().sum::<usize>() < 60, "{episodes:?}");
}

#[tokio::test]
async fn comebacks_after_a_block() {
    let sim = Sim::new();
    let ip1 = v4(198, 51, 100, 7);
    let mut ids = (1..=ACCOUNTS).filter(|i| ![4242, 5001, 5002].contains(i));
    let step = Duration::from_millis(300);
    let first = scrape(&sim, ip1, 4242, "s1", &mut ids, 100, step).await;
    assert!(first.blocked && first.before_block <= 20, "{first:?}");
    let new_session = scrape(&sim, ip1, 4242, "s2", &mut ids, 100, step).await;
    let new_ip = scrape(&sim, v4(203, 0, 113, 50), 4242, "s3", &mut ids, 100, step).await;
    let new_account_same_ip = scrape(&sim, ip1, 5001, "s4", &mut ids, 100, step).await;
    let new_account_same_24 =
        scrape(&sim, v4(198, 51, 100, 99), 5002, "s5", &mut ids, 100, step).await;
    // The block runs out; the attacker comes back slower, from another address.
    sim.tick(Duration::from_secs(3600));
    let after_expiry = scrape(
        &sim,
        v4(192, 0, 2, 10),
        4242,
        "s6",
        &mut ids,
        100,
        Duration::from_secs(20),
    )
    .await;
    println!(
        "comebacks: first {} | new session {} | new ip {} | new account same ip {} | new account same /24 {} | after expiry, slower {}",
        first.before_block,
        new_session.leaked,
        new_ip.leaked,
        new_account_same_ip.leaked,
        new_account_same_24.leaked,
        after_expiry.leaked
    );
    for (name, s) in [
        ("new session", &new_session),
        ("new ip", &new_ip),
        ("new account same ip", &new_account_same_ip),
        ("new account same /24", &new_account_same_24),
        ("after expiry", &after_expiry),
    ] {
        assert!(s.leaked <= 10, "{name}: {s:?}");
        assert!(s.blocked, "{name}: {s:?}");
    }
}

#[tokio::test]
async fn one_account_behind_256_rotating_ips() {
    let sim = Sim::new();
    let mut leaked = 0;
    for i in 0..1000u64 {
        sim.tick(Duration::from_millis(250));
        let ip = v4(
            100,
            64 + (i % 256 / 64) as u8,
            (i % 256) as u8,
            1 + (i % 7) as u8,
        );
        if let Answer::Served(StatusCode::OK) = sim.book(ip, 31337, "rot", 1 + i).await {
            leaked += 1;
        }
    }
    println!("one account behind 256 rotating IPs: leaked {leaked}");
    assert!(leaked <= 30, "leaked {leaked}");
}

#[tokio::test]
async fn fifty_new_accounts_from_one_24() {
    let sim = Sim::new();
    let mut leaked = 0;
    let mut next_id = 1u64;
    for a in 0..50u64 {
        let account = 9000 + a;
        let ip = v4(192, 0, 2, 1 + a as u8);
        for _ in 0..40 {
            sim.tick(Duration::from_millis(400));
            if let Answer::Served(StatusCode::OK) =
                sim.book(ip, account, &format!("sess-{a}"), next_id).await
            {
                leaked += 1;
            }
            next_id += 1;
        }
    }
    println!("50 new accounts from one /24, 40 reads each: leaked {leaked} of 2000");
    assert!(leaked <= 200, "leaked {leaked}");
}

#[tokio::test]
async fn two_hundred_accounts_each_on_its_own_ip() {
    let sim = Sim::new();
    // A little ordinary traffic first, as on any service.
    for u in 0..100u64 {
        sim.tick(Duration::from_millis(500));
        sim.book(
            v4(10, 200, (u % 200) as u8, 1),
            1 + u,
            &format!("own-{u}"),
            1 + u,
        )
        .await;
    }
    let mut leaked = 0;
    let mut rng = Rng(99);
    for a in 0..200u64 {
        let account = 8000 + a;
        let ip = v4(100, (a / 100) as u8 + 1, (a % 100) as u8, 10);
        for _ in 0..10 {
            sim.tick(Duration::from_millis(300));
            let id = 1 + rng.below(ACCOUNTS);
            if id == account {
                continue;
            }
            if let Answer::Served(StatusCode::OK) =
                sim.book(ip, account, &format!("s-{a}"), id).await
            {
                leaked += 1;
            }
        }
    }
    println!("200 accounts on 200 IPs, 10 foreign reads each: leaked {leaked} of 2000");
    assert!(leaked <= 700, "leaked {leaked} of 2000");
}

fn guess(i: u64) -> String {
    // Every 20th guess is a registered address (5%).
    if i % 20 == 0 {
        format!("user{}@mailroom.test", 1 + (i * 7919) % ACCOUNTS)
    } else {
        format!("guess{i}@mailroom.test")
    }
}

#[tokio::test]
async fn identity_guessing_from_one_ip() {
    let sim = Sim::new();
    let ip = v4(203, 0, 113, 66);
    let mut found_reset = 0;
    for i in 0..5000u64 {
        sim.tick(Duration::from_millis(1000));
        if sim.reset(ip, &guess(i)).await == Answer::Served(StatusCode::ACCEPTED) {
            found_reset += 1;
        }
    }
    let sim = Sim::new();
    let mut found_lookup = 0;
    for i in 0..5000u64 {
        sim.tick(Duration::from_millis(1000));
        if sim.lookup(ip, 4444, &guess(i)).await == Answer::Served(StatusCode::OK) {
            found_lookup += 1;
        }
    }
    println!(
        "identity guessing from one IP, 5000 guesses (250 registered): found {found_reset} via password reset, {found_lookup} via lookup"
    );
    assert!(found_reset <= 10, "{found_reset}");
    assert!(found_lookup <= 10, "{found_lookup}");
}

#[tokio::test]
async fn identity_guessing_spread_over_256_ips() {
    let sim = Sim::new();
    // Ordinary resets first: a service with a history.
    for u in 0..200u64 {
        sim.tick(Duration::from_millis(2000));
        sim.reset(
            v4(10, 100, (u % 250) as u8, 3),
            &format!("user{}@mailroom.test", 1 + u),
        )
        .await;
    }
    let mut found = 0;
    for i in 0..(256 * 20u64) {
        sim.tick(Duration::from_millis(100));
        let n = i % 256;
        let ip = v4(100, 100 + (n / 64) as u8, (n * 3 % 256) as u8, 20);
        if sim.reset(ip, &guess(i)).await == Answer::Served(StatusCode::ACCEPTED) {
            found += 1;
        }
    }
    println!("identity guessing over 256 IPs x 20 guesses (256 registered): found {found}");
    assert!(found <= 64, "{found}");
}

#[tokio::test]
async fn three_hundred_users_behind_one_nat() {
    let sim = Sim::new();
    let nat = v4(203, 0, 113, 7);
    let mut rng = Rng(2024);
    let mut refused = 0;
    let mut altered = 0;
    let mut requests = 0;
    for _ in 0..(300 * 12) {
        sim.tick(Duration::from_millis(1000));
        let user = 1 + rng.below(300) * 31;
        let session = format!("nat-{user}");
        let (answer, expected) = match rng.below(10) {
            // Their own address book.
            0..=4 => (sim.book(nat, user, &session, user).await, StatusCode::OK),
            // A lookup of a contact; one in ten mistyped.
            5..=8 => {
                if rng.below(10) == 0 {
                    (
                        sim.lookup(nat, user, &format!("typo{}@mailroom.test", rng.next()))
                            .await,
                        StatusCode::NOT_FOUND,
                    )
                } else {
                    let contact = 1 + rng.below(ACCOUNTS);
                    (
                        sim.lookup(nat, user, &format!("user{contact}@mailroom.test"))
                            .await,
                        StatusCode::OK,
                    )
                }
            }
            // A password reset of their own address, now and then mistyped.
            _ => {
                if rng.below(20) == 0 {
                    (
                        sim.reset(nat, &format!("usr{user}@mailroom.test")).await,
                        StatusCode::NOT_FOUND,
                    )
                } else {
                    (
                        sim.reset(nat, &format!("user{user}@mailroom.test")).await,
                        StatusCode::ACCEPTED,
                    )
                }
            }
        };
        requests += 1;
        match answer {
            Answer::Refused => refused += 1,
            Answer::Served(s) if s != expected => altered += 1,
            _ => {}
        }
    }
    println!("300 users behind one NAT: {requests} requests, {refused} refused, {altered} altered");
    assert_eq!(refused, 0);
    assert_eq!(altered, 0);
    assert_eq!(sim.calls.load(Ordering::Relaxed), requests);
}

#[tokio::test]
async fn business_users_with_many_lookups() {
    let sim = Sim::new();
    let office = v4(198, 18, 0, 1);
    let mut rng = Rng(5);
    let mut refused = 0;
    let mut requests = 0;
    for _ in 0..(20 * 300) {
        sim.tick(Duration::from_millis(500));
        let user = 100 + rng.below(20);
        // Their contacts: 200 addresses each, looked up again and again.
        let contact = 1 + (user * 977 + rng.below(200) * 13) % ACCOUNTS;
        let email = if rng.below(33) == 0 {
            format!("user{contact}@mailroom.tset")
        } else {
            format!("user{contact}@mailroom.test")
        };
        let ip = if user % 2 == 0 {
            office
        } else {
            v4(198, 18, 1, user as u8)
        };
        requests += 1;
        if sim.lookup(ip, user, &email).await == Answer::Refused {
            refused += 1;
        }
    }
    println!("20 business users, {requests} lookups: {refused} refused");
    assert_eq!(refused, 0);
}

#[tokio::test]
async fn own_objects_never_raise_suspicion() {
    let sim = Sim::new();
    let mut rng = Rng(11);
    for _ in 0..3000 {
        sim.tick(Duration::from_millis(1 + rng.below(2000)));
        let user = 1 + rng.below(50);
        assert_ne!(
            sim.book(v4(203, 0, 113, 7), user, "x", user).await,
            Answer::Refused
        );
    }
    assert!(
        sim.handle.suspects(0.01).is_empty(),
        "{:?}",
        sim.handle.suspects(0.01)
    );
}

#[tokio::test]
async fn observe_mode_refuses_nothing_but_holds_the_verdict() {
    let sim = Sim::with_mode(Mode::Observe);
    let mut ids = 1..=ACCOUNTS;
    let s = scrape(
        &sim,
        v4(198, 51, 100, 7),
        4242,
        "s1",
        &mut ids,
        100,
        Duration::from_millis(200),
    )
    .await;
    assert_eq!(s.refused, 0);
    assert_eq!(s.leaked, 100);
    // One block, as enforce mode would have: the requests observe mode lets
    // through after it are not new strikes.
    assert!(matches!(
        sim.handle.verdict(&Actor::account(4242u64)),
        Verdict::Block { strikes: 1, .. }
    ));
    assert_eq!(sim.calls.load(Ordering::Relaxed), 100);
}

#[tokio::test]
async fn a_scraper_among_three_hundred_nat_users() {
    // One of the people behind the NAT scrapes. The scraper is stopped;
    // the others, including new users who arrive after the block, are not
    // refused: a detected verdict on a shared address refuses only
    // anonymous probe requests, and each account is judged on its own.
    let sim = Sim::new();
    let nat = v4(203, 0, 113, 7);
    let mut rng = Rng(77);
    let mut refused_users = 0;
    let mut scraper_leaked = 0;
    let mut scraper_refused = 0;
    let mut next_id = 1u64;
    for step in 0..(300 * 8u64) {
        sim.tick(Duration::from_millis(500));
        // Users 1..=150 are active from the start, 151..=300 only later.
        let pool = if step < 1200 { 150 } else { 300 };
        let user = 1 + rng.below(pool) * 17;
        let answer = if rng.below(2) == 0 {
            sim.book(nat, user, &format!("nat-{user}"), user).await
        } else {
            let contact = 1 + rng.below(ACCOUNTS);
            sim.lookup(nat, user, &format!("user{contact}@mailroom.test"))
                .await
        };
        if answer == Answer::Refused {
            refused_users += 1;
        }
        // The scraper, account 9999, reads the next id every other step.
        if step % 2 == 0 && step < 1600 {
            if next_id == 9999 {
                next_id += 1;
            }
            match sim.book(nat, 9999, "scraper", next_id).await {
                Answer::Served(StatusCode::OK) => scraper_leaked += 1,
                Answer::Refused => scraper_refused += 1,
                _ => {}
            }
            next_id += 1;
        }
    }
    println!(
        "scraper among 300 NAT users: scraper leaked {scraper_leaked}, users refused {refused_users}"
    );
    assert!(scraper_leaked <= 20, "{scraper_leaked}");
    assert_eq!(refused_users, 0);
    assert!(scraper_refused > 700, "{scraper_refused}");
}

#[tokio::test]
async fn pressing_against_a_throttle_ends_in_a_block() {
    // Random order (no sequential bonus) at a human-ish cadence: the
    // scraper is throttled first; its refused attempts at new targets are
    // evidence too, so it is blocked soon after.
    let sim = Sim::new();
    let mut rng = Rng(4321);
    let mut leaked = 0;
    let mut saw_throttle = false;
    for _ in 0..200 {
        sim.tick(Duration::from_millis(300 + rng.below(900)));
        let id = 1 + rng.below(ACCOUNTS);
        match sim.book(v4(198, 51, 100, 70), 606, "p", id).await {
            Answer::Served(StatusCode::OK) if id != 606 => leaked += 1,
            _ => {}
        }
        saw_throttle |= matches!(
            sim.handle.verdict(&Actor::account(606u64)),
            Verdict::Throttle { .. }
        );
    }
    println!("throttled scraper: leaked {leaked}");
    assert!(saw_throttle);
    assert!(matches!(
        sim.handle.verdict(&Actor::account(606u64)),
        Verdict::Block { .. }
    ));
    assert!(leaked <= 20, "{leaked}");
}

/// Accounts scraping from one address get it blocked. A brand-new account
/// there inherits no suspicion: its own reads pass and leave it at 0 (the
/// people behind a NAT are not refused for a scraper among them), but it is
/// watched, so its first foreign read is refused: the scraper's comeback
/// with yet another account gets nothing.
#[tokio::test]
async fn a_new_account_at_a_suspect_address_is_watched_not_punished() {
    let sim = Sim::new();
    let ip = v4(198, 51, 100, 7);
    let mut ids = (1..=ACCOUNTS).filter(|i| !(4240..4250).contains(i) && *i != 8888);
    for (k, account) in (4240..4244u64).enumerate() {
        let s = scrape(
            &sim,
            ip,
            account,
            &format!("s{k}"),
            &mut ids,
            100,
            Duration::from_millis(300),
        )
        .await;
        assert!(s.blocked, "{account}: {s:?}");
    }
    assert!(matches!(
        sim.handle.verdict(&Actor::ip(ip)),
        Verdict::Block { .. }
    ));
    let newcomer = Actor::account(8888u64);
    for _ in 0..20 {
        sim.tick(Duration::from_secs(2));
        assert_eq!(
            sim.book(ip, 8888, "s-new", 8888).await,
            Answer::Served(StatusCode::OK)
        );
    }
    assert!(matches!(sim.handle.verdict(&newcomer), Verdict::Allow));
    let suspect = sim
        .handle
        .suspects(0.0)
        .into_iter()
        .find(|s| s.actor == AccountId::from(8888u64).key());
    assert!(
        suspect.as_ref().is_none_or(|s| s.score == 0.0),
        "{suspect:?}"
    );
    // Another brand-new account there reads a foreign book: refused. So
    // is the first one, although its own reads gave it history: the watch
    // goes by age, and reading one's own object costs nothing.
    assert_eq!(sim.book(ip, 8889, "s-new2", 17).await, Answer::Refused);
    assert_eq!(sim.book(ip, 8888, "s-new", 18).await, Answer::Refused);
}
