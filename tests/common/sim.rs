//! A simulated mailroom with a shop beside it, guarded with the mailroom
//! example's configuration (`examples/mailroom.toml`) plus an orders probe,
//! driven in simulated time: what `tests/precision.rs` and
//! `tests/incident.rs` run their populations and attacks through.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use enumguard::{
    AccountId, Config, GuardBody, GuardLayer, ManualClock, Owner, ProbeConfig, Refusal,
    TargetConfig,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneService;
use tower::{Layer, ServiceExt, service_fn};

use super::X_ACCOUNT;

/// Accounts `1..=ACCOUNTS` exist (`user{id}@mailroom.test` registered).
pub const ACCOUNTS: u64 = 100_000;

pub fn registered(email: &str) -> bool {
    email
        .strip_prefix("user")
        .and_then(|r| r.strip_suffix("@mailroom.test"))
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|id| (1..=ACCOUNTS).contains(&id))
}

/// The owner of an order: order ids are unrelated to account ids (the shop
/// keeps a table; here a formula stands for it).
pub fn order_owner(order: u64) -> u64 {
    (order / 7919) % ACCOUNTS + 1
}

/// An order id of `account`'s `k`-th order.
pub fn order_of(account: u64, k: u64) -> u64 {
    // order / 7919 % ACCOUNTS + 1 == account
    ((account - 1) + (k % 50 + 1) * ACCOUNTS) * 7919 + (11 * (k % 7919)) % 7919
}

pub fn email_in(req_body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(req_body)
        .ok()
        .and_then(|v| v.get("email")?.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The mail service with the incident's flaw, plus a shop's orders: every
/// order is served to any logged-in account, and the handler reports the
/// order's true owner.
pub async fn app(
    req: Request<GuardBody<Full<Bytes>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let logged_in = req.headers().contains_key(&X_ACCOUNT);
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut owner = None;
    let status = if let Some(rest) = path.strip_prefix("/api/accounts/") {
        let id = rest
            .strip_suffix("/addressbook")
            .and_then(|i| i.parse::<u64>().ok());
        match (logged_in, id) {
            (false, _) => StatusCode::UNAUTHORIZED,
            (true, Some(id)) if (1..=ACCOUNTS).contains(&id) => StatusCode::OK,
            _ => StatusCode::NOT_FOUND,
        }
    } else if let Some(id) = path.strip_prefix("/api/orders/") {
        match (logged_in, id.parse::<u64>()) {
            (false, _) => StatusCode::UNAUTHORIZED,
            (true, Ok(id)) => {
                owner = Some(Owner(AccountId::from(order_owner(id))));
                StatusCode::OK
            }
            _ => StatusCode::NOT_FOUND,
        }
    } else if path == "/api/recipients/lookup" {
        let email = query.strip_prefix("email=").unwrap_or("");
        match (logged_in, registered(email)) {
            (false, _) => StatusCode::UNAUTHORIZED,
            (true, true) => StatusCode::OK,
            (true, false) => StatusCode::NOT_FOUND,
        }
    } else if path == "/api/password-reset" && method == Method::POST {
        if registered(&email_in(&body)) {
            StatusCode::ACCEPTED
        } else {
            StatusCode::NOT_FOUND
        }
    } else if path == "/api/register" && method == Method::POST {
        if registered(&email_in(&body)) {
            StatusCode::CONFLICT
        } else {
            StatusCode::CREATED
        }
    } else {
        StatusCode::OK
    };
    let mut res = Response::new(Full::new(Bytes::from_static(b"{}")));
    *res.status_mut() = status;
    if let Some(o) = owner {
        res.extensions_mut().insert(o);
    }
    Ok(res)
}

type Svc = BoxCloneService<
    Request<Full<Bytes>>,
    Response<enumguard::ResponseBody<Full<Bytes>>>,
    Infallible,
>;

pub struct Sim {
    svc: Svc,
    /// The simulated time.
    pub clock: ManualClock,
    /// The guard's handle.
    pub handle: enumguard::GuardHandle,
}

thread_local! {
    /// The guards a test builds are seeded 0, 1, 2... in the order it
    /// builds them (each test runs on a thread of its own): the same run
    /// gives the same figures every time.
    static NEXT_SEED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// Whether `Sim::new` gives the guard the application's hints (see
    /// [`with_hints`]).
    static HINTS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every `Sim::new` of this thread built as
/// [`Sim::hinted`] (the application states its accounts' standing), and
/// every row `report` prints marked so: a population run both ways must be
/// refused by neither.
pub fn with_hints<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            HINTS.with(|h| h.set(self.0));
        }
    }
    let _reset = Reset(HINTS.with(|h| h.replace(true)));
    f()
}

/// Runs `f` to completion on a current-thread runtime of its own (a
/// simulation in simulated time: no timers, no I/O).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(f)
}

/// Whether this thread runs under [`with_hints`].
pub fn hints() -> bool {
    HINTS.with(|h| h.get())
}

impl Sim {
    /// The guard with the mailroom configuration; under [`with_hints`],
    /// [`Sim::hinted`].
    pub fn new() -> Self {
        if hints() {
            return Self::hinted();
        }
        Self::with(|b| b)
    }

    /// The guard told what the application knows of its accounts (the
    /// hints of `enumguard::Standing`): the service's own accounts
    /// (`1..=ACCOUNTS`) are established, any other (made for the run, by
    /// people or attackers) new.
    pub fn hinted() -> Self {
        Self::with(|b| b.account(account_with_standing))
    }

    /// The guard with more settings on top of the mailroom configuration.
    pub fn with(more: impl FnOnce(enumguard::GuardBuilder) -> enumguard::GuardBuilder) -> Self {
        let clock = ManualClock::new();
        let config = Config::from_file(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/mailroom.toml"
        ))
        .expect("examples/mailroom.toml is valid");
        let builder = GuardLayer::builder()
            .config(config)
            .probe(ProbeConfig::objects(
                "orders",
                "GET",
                "/api/orders/{id}",
                TargetConfig::path("id"),
            ))
            .account(super::account_from_header)
            .clock(clock.clone())
            .seed(NEXT_SEED.with(|s| s.replace(s.get() + 1)));
        let layer = more(builder).build().expect("valid config");
        Self {
            handle: layer.handle(),
            svc: BoxCloneService::new(layer.layer(service_fn(app))),
            clock,
        }
    }

    /// Sends one request; `true` if the guard refused it. Panics if the
    /// service's answer was altered.
    pub async fn send(
        &self,
        ip: IpAddr,
        account: Option<u64>,
        method: Method,
        uri: &str,
        body: &str,
    ) -> bool {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(a) = account {
            b = b
                .header(X_ACCOUNT, a.to_string())
                .header("authorization", format!("Bearer t-{a}-{ip}"));
        }
        let mut req = b.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
        req.extensions_mut().insert(SocketAddr::new(ip, 40000));
        let res = self.svc.clone().oneshot(req).await.unwrap();
        res.extensions().get::<Refusal>().is_some()
    }

    /// A book read with its own session token (a new login).
    pub async fn book_in(&self, ip: IpAddr, account: u64, session: &str, id: u64) -> bool {
        let mut req = Request::builder()
            .uri(format!("/api/accounts/{id}/addressbook"))
            .header(X_ACCOUNT, account.to_string())
            .header("authorization", format!("Bearer {session}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        req.extensions_mut().insert(SocketAddr::new(ip, 40000));
        let res = self.svc.clone().oneshot(req).await.unwrap();
        res.extensions().get::<Refusal>().is_some()
    }

    pub async fn book(&self, ip: IpAddr, account: u64, id: u64) -> bool {
        let uri = format!("/api/accounts/{id}/addressbook");
        self.send(ip, Some(account), Method::GET, &uri, "").await
    }

    pub async fn lookup(&self, ip: IpAddr, account: u64, email: &str) -> bool {
        let uri = format!("/api/recipients/lookup?email={email}");
        self.send(ip, Some(account), Method::GET, &uri, "").await
    }

    pub async fn order(&self, ip: IpAddr, account: u64, order: u64) -> bool {
        let uri = format!("/api/orders/{order}");
        self.send(ip, Some(account), Method::GET, &uri, "").await
    }

    pub async fn register(&self, ip: IpAddr, email: &str) -> bool {
        let body = format!("{{\"email\":\"{email}\",\"password\":\"x\"}}");
        self.send(ip, None, Method::POST, "/api/register", &body)
            .await
    }

    pub async fn reset(&self, ip: IpAddr, email: &str) -> bool {
        let body = format!("{{\"email\":\"{email}\"}}");
        self.send(ip, None, Method::POST, "/api/password-reset", &body)
            .await
    }

    pub fn tick(&self, d: Duration) {
        self.clock.advance(d);
    }
}

/// The request's account, with its standing: established for the
/// service's own accounts, new for any other.
pub fn account_with_standing(parts: &http::request::Parts) -> Option<AccountId> {
    let a = super::account_from_header(parts)?;
    let own = a
        .to_string()
        .parse::<u64>()
        .is_ok_and(|id| (1..=ACCOUNTS).contains(&id));
    Some(a.with_standing(if own {
        enumguard::Standing::Established
    } else {
        enumguard::Standing::New
    }))
}

pub fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// A deterministic pseudo-random sequence (xorshift), seeded per run.
pub struct Rng(pub u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1_000_000.0 < p
    }
}

pub fn contact(n: u64) -> String {
    format!("user{n}@mailroom.test")
}

pub fn typo(rng: &mut Rng) -> String {
    format!("usr{}@mailroom.test", rng.next() % 1_000_000_007)
}

/// Distinct users refused at least once.
#[derive(Default)]
pub struct Refused(pub std::collections::HashSet<u64>);
impl Refused {
    pub fn note(&mut self, user: u64, refused: bool) {
        if refused {
            self.0.insert(user);
        }
    }
    pub fn count(&self) -> usize {
        self.0.len()
    }
}

/// min / median / max of per-seed figures.
pub fn spread(mut v: Vec<usize>) -> (usize, usize, usize) {
    v.sort_unstable();
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

pub fn report(what: &str, of: &str, v: Vec<usize>) -> (usize, usize, usize) {
    let (lo, med, hi) = spread(v);
    let hinted = if hints() {
        ", with the application's hints"
    } else {
        ""
    };
    println!("| {what}{hinted} | {of} | {lo} / {med} / {hi} |");
    (lo, med, hi)
}
