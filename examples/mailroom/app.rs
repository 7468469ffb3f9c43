//! The mailroom service: a small mail service with in-memory, seeded data
//! and the access-control flaw that gets address books scraped, with
//! enumguard in front of it.
//!
//! Shared by `examples/mailroom.rs` (the command line) and
//! `examples/demo.rs` (which starts one in-process server per scenario).

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::hash::{BuildHasher, BuildHasherDefault};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dashmap::DashMap;
use enumguard::{
    AccountId, Config, ConfigError, GuardBuilder, GuardHandle, GuardLayer, Known, Mode, Standing,
};
use serde_json::{Value, json};

/// The built-in guard configuration: `examples/mailroom.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("../mailroom.toml");

/// The seed of the generated data: the same accounts and address books on
/// every run.
pub const SEED: u64 = 0x6d61_696c_726f_6f6d;

/// Whether and how the guard runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardChoice {
    /// Refuse enumerators.
    Enforce,
    /// Compute verdicts, log them, refuse nothing.
    Observe,
    /// No guard at all: the service as it was when it was scraped.
    Off,
}

impl GuardChoice {
    /// Parses `enforce`, `observe` or `off`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enforce" => Some(Self::Enforce),
            "observe" => Some(Self::Observe),
            "off" => Some(Self::Off),
            _ => None,
        }
    }
}

/// How to build a mailroom.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seeded accounts, ids `1..=accounts`.
    pub accounts: u64,
    /// Answer 403 for a foreign address book (the fix of the flaw).
    pub patched: bool,
    /// The guard.
    pub guard: GuardChoice,
    /// The guard's configuration (its `mode` is replaced by `guard`).
    pub config: Config,
    /// Tell a proxy in front what only the application knows, as response
    /// headers (for `enumguard proxy`, with the guard off here):
    /// `x-account-id` on every answer to a logged-in request,
    /// `x-enumguard-owner` on an address book, `x-enumguard-outcome:
    /// known` on a lookup of the caller's own contact.
    pub proxy_headers: bool,
}

impl Options {
    /// 10,000 accounts, unpatched, guard enforcing the built-in config.
    pub fn new() -> Self {
        Self {
            accounts: 10_000,
            patched: false,
            guard: GuardChoice::Enforce,
            config: default_config(),
            proxy_headers: false,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

/// The built-in config, parsed.
pub fn default_config() -> Config {
    Config::from_toml_str(DEFAULT_CONFIG).expect("examples/mailroom.toml is valid")
}

/// The email of seeded account `id`.
pub fn email_of(id: u64) -> String {
    format!("user{id}@mailroom.test")
}

/// The password of seeded account `id`.
pub fn password_of(id: u64) -> String {
    format!("pass-{id}")
}

struct Account {
    email: String,
    password: String,
}

/// The service's in-memory state.
pub struct Mailroom {
    seeded: u64,
    patched: bool,
    /// Account `id` is at index `id - 1`.
    accounts: RwLock<Vec<Account>>,
    by_email: DashMap<String, u64>,
    /// Bearer token -> account id.
    tokens: DashMap<String, u64>,
    token_hasher: RandomState,
    /// Tokens from this seed instead of `token_hasher`'s random keys.
    token_seed: Option<u64>,
    token_counter: AtomicU64,
}

impl Mailroom {
    /// Seeds accounts `1..=accounts`.
    pub fn seeded(accounts: u64, patched: bool) -> Self {
        let list: Vec<Account> = (1..=accounts)
            .map(|id| Account {
                email: email_of(id),
                password: password_of(id),
            })
            .collect();
        let by_email = DashMap::with_capacity(list.len());
        for (i, a) in list.iter().enumerate() {
            by_email.insert(a.email.clone(), i as u64 + 1);
        }
        Self {
            seeded: accounts,
            patched,
            accounts: RwLock::new(list),
            by_email,
            tokens: DashMap::new(),
            token_hasher: RandomState::new(),
            token_seed: None,
            token_counter: AtomicU64::new(0),
        }
    }

    /// Hands out the same tokens on every run (for a simulation that must
    /// repeat itself: the guard keys a session on its token).
    pub fn with_token_seed(mut self, seed: u64) -> Self {
        self.token_seed = Some(seed);
        self
    }

    /// Accounts now (seeded and registered).
    pub fn accounts(&self) -> u64 {
        self.accounts.read().expect("accounts lock").len() as u64
    }

    /// The account id of an email, if registered.
    pub fn id_of(&self, email: &str) -> Option<u64> {
        self.by_email.get(email).map(|r| *r)
    }

    /// What mailroom knows of an account, for the guard: seeded accounts
    /// have a history here, registered ones were made while it runs.
    pub fn standing(&self, id: u64) -> Standing {
        if id <= self.seeded {
            Standing::Established
        } else {
            Standing::New
        }
    }

    /// Whether `email` is in account `id`'s address book (the guard is told,
    /// `Known`: looking up one's own contacts is no guess).
    pub fn knows(&self, id: u64, email: &str) -> bool {
        self.contacts(id).iter().any(|c| c.email == email)
    }

    /// The account behind an `Authorization: Bearer` header.
    pub fn account_of(&self, headers: &HeaderMap) -> Option<u64> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let token = value.strip_prefix("Bearer ")?;
        self.tokens.get(token).map(|r| *r)
    }

    fn new_token(&self, id: u64) -> String {
        let n = self.token_counter.fetch_add(1, Ordering::Relaxed);
        let (a, b) = match self.token_seed {
            Some(seed) => {
                let h = BuildHasherDefault::<DefaultHasher>::default();
                (
                    h.hash_one((seed, n, id, 1u8)),
                    h.hash_one((seed, n, id, 2u8)),
                )
            }
            None => (
                self.token_hasher.hash_one((n, id, 1u8)),
                self.token_hasher.hash_one((n, id, 2u8)),
            ),
        };
        let token = format!("{a:016x}{b:016x}");
        self.tokens.insert(token.clone(), id);
        token
    }

    /// The address book of account `id`: generated from the seed for seeded
    /// accounts (5..=40 contacts, most of them other accounts), empty for
    /// registered ones.
    pub fn contacts(&self, id: u64) -> Vec<Contact> {
        if id == 0 || id > self.seeded {
            return Vec::new();
        }
        let mut rng = Rng::new(SEED ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let n = rng.range(5, 40);
        (0..n)
            .map(|_| {
                let first = FIRST[rng.below(FIRST.len() as u64) as usize];
                let last = LAST[rng.below(LAST.len() as u64) as usize];
                // 85% of contacts are mailroom accounts; the rest live
                // elsewhere (and are not registered here).
                let email = if rng.below(100) < 85 && self.seeded > 1 {
                    let mut other = 1 + rng.below(self.seeded);
                    if other == id {
                        other = other % self.seeded + 1;
                    }
                    email_of(other)
                } else {
                    format!(
                        "{}.{}{}@elsewhere.test",
                        first.to_lowercase(),
                        last.to_lowercase(),
                        rng.below(100)
                    )
                };
                Contact {
                    name: format!("{first} {last}"),
                    email,
                    phone: format!("+1-555-{:04}", rng.below(10_000)),
                    address: format!(
                        "{} {} St, {}",
                        1 + rng.below(999),
                        STREETS[rng.below(STREETS.len() as u64) as usize],
                        TOWNS[rng.below(TOWNS.len() as u64) as usize]
                    ),
                }
            })
            .collect()
    }
}

/// One address book entry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Contact {
    pub name: String,
    pub email: String,
    pub phone: String,
    pub address: String,
}

const FIRST: &[&str] = &[
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemi",
    "Liam", "Maya", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera",
    "Wen", "Yusuf",
];
const LAST: &[&str] = &[
    "Abbott", "Baker", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Larsen", "Moreau", "Novak", "Okafor", "Petrov", "Rossi", "Silva", "Tanaka",
    "Weber",
];
const STREETS: &[&str] = &[
    "Elm", "Harbour", "Kings", "Mill", "Oak", "Station", "Union", "Willow",
];
const TOWNS: &[&str] = &[
    "Northfield",
    "Eastbridge",
    "Lakeside",
    "Westmoor",
    "Southport",
];

/// A small deterministic generator (splitmix64): the seed data and the
/// demo's traffic come out the same on every run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A built mailroom: the router (guard layered on, unless off), the
/// guard's handle and the state.
pub struct App {
    /// Serve it with [`serve`] (the guard needs the peer address).
    pub router: Router,
    /// The guard's handle, unless the guard is off.
    pub guard: Option<GuardHandle>,
    /// The data.
    pub state: Arc<Mailroom>,
}

/// Builds the service.
///
/// # Errors
/// The guard's configuration is invalid.
pub fn app(opts: &Options) -> Result<App, ConfigError> {
    app_with(
        opts,
        Arc::new(Mailroom::seeded(opts.accounts, opts.patched)),
    )
}

/// Builds the service on data of its own or shared with other replicas.
///
/// # Errors
/// The guard's configuration is invalid.
pub fn app_with(opts: &Options, state: Arc<Mailroom>) -> Result<App, ConfigError> {
    app_with_guard(opts, state, |b| b)
}

/// [`app_with`], with more guard settings on top of `opts` (a clock, a
/// seed).
///
/// # Errors
/// The guard's configuration is invalid.
pub fn app_with_guard(
    opts: &Options,
    state: Arc<Mailroom>,
    more: impl FnOnce(GuardBuilder) -> GuardBuilder,
) -> Result<App, ConfigError> {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/register", post(register))
        .route("/api/login", post(login))
        .route("/api/password-reset", post(password_reset))
        .route("/api/accounts/{id}/addressbook", get(addressbook))
        .route("/api/recipients/lookup", get(lookup))
        .with_state(state.clone());
    let router = if opts.proxy_headers {
        router.layer(axum::middleware::map_response(proxy_headers))
    } else {
        router
    };
    let mode = match opts.guard {
        GuardChoice::Off => {
            return Ok(App {
                router,
                guard: None,
                state,
            });
        }
        GuardChoice::Enforce => Mode::Enforce,
        GuardChoice::Observe => Mode::Observe,
    };
    let accounts = state.clone();
    let builder = GuardLayer::builder()
        .config(opts.config.clone())
        .mode(mode)
        // The account behind the Bearer token: one map lookup per request,
        // with what mailroom knows of it (`Standing`): the accounts it was
        // seeded with are established, accounts registered while it runs
        // are new.
        .account(move |parts| {
            accounts
                .account_of(&parts.headers)
                .map(|id| AccountId::from(id).with_standing(accounts.standing(id)))
        });
    let layer = more(builder).build()?;
    let handle = layer.handle();
    Ok(App {
        router: router.layer(layer),
        guard: Some(handle),
        state,
    })
}

/// What a proxy in front cannot see, said in response headers (see
/// [`Options::proxy_headers`]): the account of a logged-in request, the
/// owner of an address book, a lookup of one's own contact (what the
/// handlers tell an in-process guard by the path and by `Known`).
async fn proxy_headers(mut res: Response) -> Response {
    let owner = res.extensions().get::<BookOwner>().map(|o| o.0.to_string());
    let known = res.extensions().get::<Known>().is_some();
    let account = res.extensions().get::<CallerId>().map(|c| c.0);
    let h = res.headers_mut();
    if let Some(id) = account {
        if let Ok(v) = id.to_string().parse() {
            h.insert("x-account-id", v);
        }
    }
    if let Some(o) = owner.and_then(|o| o.parse().ok()) {
        h.insert("x-enumguard-owner", o);
    }
    if known {
        h.insert(
            "x-enumguard-outcome",
            http::HeaderValue::from_static("known"),
        );
    }
    res
}

/// The caller's account, put into the response by the handlers for
/// [`proxy_headers`].
#[derive(Clone, Copy)]
struct CallerId(u64);

/// The owner of the address book answered, for [`proxy_headers`] (not an
/// `enumguard::Owner`: the in-process guard reads ownership from the path).
#[derive(Clone, Copy)]
struct BookOwner(u64);

/// Serves `router` on `listener` with the TCP peer address in each
/// request's extensions, which is what the guard keys on.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn bad_input(what: &str) -> Response {
    reply(StatusCode::BAD_REQUEST, json!({ "error": what }))
}

/// The `{"email", "password"}` (or just `{"email"}`) of a request body, or
/// what is wrong with it.
fn credentials(body: &Bytes, need_password: bool) -> Result<(String, String), &'static str> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "body must be JSON")?;
    let email = v
        .get("email")
        .and_then(Value::as_str)
        .ok_or("email is required")?;
    let password = v.get("password").and_then(Value::as_str).unwrap_or("");
    if need_password && password.is_empty() {
        return Err("password is required");
    }
    Ok((email.to_owned(), password.to_owned()))
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    e.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
}

async fn register(State(s): State<Arc<Mailroom>>, body: Bytes) -> Response {
    let (email, password) = match credentials(&body, true) {
        Ok(c) => c,
        Err(what) => return bad_input(what),
    };
    if !valid_email(&email) {
        return bad_input("not an email address");
    }
    if password.len() < 4 || password.len() > 128 {
        return bad_input("password must be 4..=128 characters");
    }
    let mut accounts = s.accounts.write().expect("accounts lock");
    if s.by_email.contains_key(&email) {
        return reply(
            StatusCode::CONFLICT,
            json!({ "error": "already registered" }),
        );
    }
    accounts.push(Account {
        email: email.clone(),
        password,
    });
    let id = accounts.len() as u64;
    s.by_email.insert(email, id);
    reply(StatusCode::CREATED, json!({ "id": id }))
}

async fn login(State(s): State<Arc<Mailroom>>, body: Bytes) -> Response {
    let (email, password) = match credentials(&body, true) {
        Ok(c) => c,
        Err(what) => return bad_input(what),
    };
    let ok = s.id_of(&email).filter(|id| {
        let accounts = s.accounts.read().expect("accounts lock");
        accounts
            .get(*id as usize - 1)
            .is_some_and(|a| a.password == password)
    });
    match ok {
        Some(id) => reply(
            StatusCode::OK,
            json!({ "token": s.new_token(id), "id": id }),
        ),
        None => reply(
            StatusCode::UNAUTHORIZED,
            json!({ "error": "wrong email or password" }),
        ),
    }
}

async fn password_reset(State(s): State<Arc<Mailroom>>, body: Bytes) -> Response {
    let (email, _) = match credentials(&body, false) {
        Ok(c) => c,
        Err(what) => return bad_input(what),
    };
    // The leak: the answer says whether the account exists.
    match s.id_of(&email) {
        Some(_) => reply(
            StatusCode::ACCEPTED,
            json!({ "status": "reset email sent" }),
        ),
        None => reply(StatusCode::NOT_FOUND, json!({ "error": "no such account" })),
    }
}

fn unauthorized() -> Response {
    reply(StatusCode::UNAUTHORIZED, json!({ "error": "log in first" }))
}

async fn addressbook(
    State(s): State<Arc<Mailroom>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(me) = s.account_of(&headers) else {
        return unauthorized();
    };
    let Ok(id) = id.parse::<u64>() else {
        return reply(StatusCode::NOT_FOUND, json!({ "error": "no such account" }));
    };
    if s.patched && id != me {
        return reply(
            StatusCode::FORBIDDEN,
            json!({ "error": "not your address book" }),
        );
    }
    // The flaw: any logged-in account reads any id.
    if id == 0 || id > s.accounts() {
        return reply(StatusCode::NOT_FOUND, json!({ "error": "no such account" }));
    }
    let mut res = reply(
        StatusCode::OK,
        json!({ "owner": id, "contacts": s.contacts(id) }),
    );
    res.extensions_mut().insert(CallerId(me));
    res.extensions_mut().insert(BookOwner(id));
    res
}

#[derive(serde::Deserialize)]
struct LookupQuery {
    email: Option<String>,
}

async fn lookup(
    State(s): State<Arc<Mailroom>>,
    Query(q): Query<LookupQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(caller) = s.account_of(&headers) else {
        return unauthorized();
    };
    let Some(email) = q.email else {
        return bad_input("email is required");
    };
    let mut res = match s.id_of(&email) {
        Some(id) => reply(StatusCode::OK, json!({ "exists": true, "id": id })),
        None => reply(StatusCode::NOT_FOUND, json!({ "exists": false })),
    };
    // An address in the caller's own book is no guess: say so.
    if s.knows(caller, &email) {
        res.extensions_mut().insert(Known);
    }
    res.extensions_mut().insert(CallerId(caller));
    res
}

/// Prints the guard's verdict changes (`tracing` events of target
/// `enumguard`) to stderr, one line each, without a subscriber dependency.
pub fn log_verdicts_to_stderr() {
    struct Stderr;
    impl tracing::Subscriber for Stderr {
        fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
            m.target() == "enumguard" && *m.level() <= tracing::Level::WARN
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, e: &tracing::Event<'_>) {
            struct Line(String);
            impl tracing::field::Visit for Line {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    use std::fmt::Write;
                    if f.name() == "message" {
                        let _ = write!(self.0, " {v:?}");
                    } else {
                        let _ = write!(self.0, " {}={v:?}", f.name());
                    }
                }
                fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                    use std::fmt::Write;
                    if f.name() == "message" {
                        let _ = write!(self.0, " {v}");
                    } else {
                        let _ = write!(self.0, " {}={v}", f.name());
                    }
                }
            }
            let mut line = Line(format!(
                "{} {}:",
                e.metadata().level(),
                e.metadata().target()
            ));
            e.record(&mut line);
            eprintln!("{}", line.0);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }
    let _ = tracing::subscriber::set_global_default(Stderr);
}
