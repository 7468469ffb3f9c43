//! The demo's scenarios: the attacks enumguard exists for and ordinary
//! users beside them, each played over real HTTP against a fresh mailroom,
//! once unprotected (guard off) and once protected (guard enforcing the
//! built-in `examples/mailroom.toml`).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::app::{self, GuardChoice, Options, Rng, email_of, password_of};
use crate::client::{Client, Error, Link, Resp, encode};

/// How big each scenario is.
#[derive(Debug, Clone)]
pub struct Size {
    /// Seeded accounts.
    pub accounts: u64,
    /// Address books the scraper tries (ids `1..=n`), and the comeback
    /// (the next `n` ids).
    pub scrape_ids: u64,
    /// Pause between the comeback's requests, in ms (uniform in the range).
    pub comeback_pause_ms: (u64, u64),
    /// Guesses of a guesser from one address.
    pub guesses: usize,
    /// Bots of a spread guesser, and guesses per bot.
    pub bots: usize,
    pub guesses_per_bot: usize,
    /// Ordinary users behind one NAT address.
    pub nat_users: usize,
    /// Business accounts in one office, and lookups each.
    pub business_users: usize,
    pub business_lookups: usize,
    /// People signing up from one office address in a wave.
    pub signup_wave: usize,
    /// Heavy users with short contact lists, and lookups each.
    pub short_list_users: usize,
    pub short_list_lookups: usize,
    /// Ordinary users (one address each) active beside every attack.
    pub background: usize,
    /// Concurrent clients at most.
    pub concurrency: usize,
    /// No scenario run may take longer.
    pub deadline: Duration,
    /// Salts the traffic's own randomness (who does what, the guessers'
    /// lists, the pauses): 0 is the demo's traffic, the same on every run.
    pub seed: u64,
}

impl Size {
    /// The full demo: well under a minute in release on two cores.
    pub fn full() -> Self {
        Self {
            accounts: 10_000,
            scrape_ids: 500,
            comeback_pause_ms: (1, 6),
            guesses: 1_500,
            bots: 100,
            guesses_per_bot: 20,
            nat_users: 300,
            business_users: 8,
            business_lookups: 150,
            signup_wave: 150,
            short_list_users: 20,
            short_list_lookups: 150,
            background: 30,
            concurrency: 32,
            deadline: Duration::from_secs(25),
            seed: 0,
        }
    }

    /// A short version for CI (debug builds).
    pub fn quick() -> Self {
        Self {
            accounts: 2_000,
            scrape_ids: 150,
            comeback_pause_ms: (0, 2),
            guesses: 400,
            bots: 40,
            guesses_per_bot: 15,
            nat_users: 120,
            business_users: 4,
            business_lookups: 80,
            signup_wave: 60,
            short_list_users: 8,
            short_list_lookups: 60,
            background: 12,
            concurrency: 16,
            deadline: Duration::from_secs(40),
            seed: 0,
        }
    }
}

impl Size {
    /// A generator seed of the traffic, salted with [`Size::seed`] (`k`
    /// itself when that is 0).
    fn salted(&self, k: u64) -> u64 {
        match self.seed {
            0 => k,
            s => k ^ Rng::new(s).next_u64(),
        }
    }

    /// The scraper's account.
    fn scraper_account(&self) -> u64 {
        self.accounts / 2 + 7
    }

    /// The account of the guesser from one address.
    fn guesser_account(&self) -> u64 {
        self.accounts / 3 + 1
    }

    /// The compromised account of spread bot `b`.
    fn bot_account(&self, b: usize) -> u64 {
        self.accounts - b as u64
    }

    /// The accounts the attacker of `kind` holds.
    fn attacker_accounts(&self, kind: Kind) -> Vec<u64> {
        match kind {
            Kind::Scrape | Kind::NatScrape => vec![self.scraper_account()],
            Kind::LookupOne => vec![self.guesser_account()],
            Kind::LookupSpread => (0..self.bots).map(|b| self.bot_account(b)).collect(),
            _ => Vec::new(),
        }
    }

    /// A random ordinary user's account: never one of `attackers` (whose
    /// user would rightly be refused beside them).
    fn ordinary_account(&self, rng: &mut Rng, attackers: &[u64]) -> u64 {
        let mut id = 1 + rng.below(self.accounts);
        for _ in 0..64 {
            if !attackers.contains(&id) {
                break;
            }
            id = 1 + rng.below(self.accounts);
        }
        id
    }
}

/// What one run of one scenario saw.
pub struct Tally {
    start: Mutex<Instant>,
    leaked: Mutex<HashSet<String>>,
    attack_requests: AtomicU64,
    refused: AtomicU64,
    /// Microseconds from the start to the first refusal of the attacker;
    /// `u64::MAX` if none.
    first_refusal_us: AtomicU64,
    /// Records leaked before the first refusal.
    leaked_before_refusal: AtomicU64,
    ordinary_users: AtomicU64,
    ordinary_requests: AtomicU64,
    ordinary_refused_requests: AtomicU64,
    ordinary_refused_users: AtomicU64,
    /// Who they were.
    refused_who: Mutex<Vec<String>>,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Tally {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Mutex::new(Instant::now()),
            leaked: Mutex::new(HashSet::new()),
            attack_requests: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            first_refusal_us: AtomicU64::new(u64::MAX),
            leaked_before_refusal: AtomicU64::new(0),
            ordinary_users: AtomicU64::new(0),
            ordinary_requests: AtomicU64::new(0),
            ordinary_refused_requests: AtomicU64::new(0),
            ordinary_refused_users: AtomicU64::new(0),
            refused_who: Mutex::new(Vec::new()),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
        })
    }

    /// The attack starts now (times are measured from here).
    fn attack_starts(&self) {
        *self.start.lock().expect("tally lock") = Instant::now();
    }

    /// An attacker's request and its answer.
    fn attack(&self, r: &Resp) {
        self.attack_requests.fetch_add(1, Ordering::Relaxed);
        if r.refused() {
            self.refused.fetch_add(1, Ordering::Relaxed);
            let us = self.start.lock().expect("tally lock").elapsed().as_micros() as u64;
            if self.first_refusal_us.fetch_min(us, Ordering::Relaxed) == u64::MAX {
                self.leaked_before_refusal
                    .store(self.leaked(), Ordering::Relaxed);
            }
        }
    }

    /// Something got out: a foreign address book, a valid email.
    fn leak(&self, what: String) {
        self.leaked.lock().expect("tally lock").insert(what);
    }

    /// An ordinary user's request: `true` if it was refused.
    fn ordinary(&self, r: &Resp) -> bool {
        self.ordinary_requests.fetch_add(1, Ordering::Relaxed);
        if r.refused() {
            self.ordinary_refused_requests
                .fetch_add(1, Ordering::Relaxed);
        }
        r.refused()
    }

    /// An ordinary user is done: counts it as refused if it was, and its
    /// error unless a refusal explains it (a refusal makes the next step
    /// fail).
    fn ordinary_done(&self, refused: bool, res: Result<(), Error>, who: &str) {
        if refused {
            self.ordinary_refused_users.fetch_add(1, Ordering::Relaxed);
            self.refused_who
                .lock()
                .expect("tally lock")
                .push(who.to_owned());
        }
        if let Err(e) = res {
            if !refused {
                self.error(format!("{who}: {e}"));
            }
        }
    }

    fn error(&self, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .expect("tally lock")
            .get_or_insert(e);
    }

    pub fn leaked(&self) -> u64 {
        self.leaked.lock().expect("tally lock").len() as u64
    }

    /// What got out: the books' ids, the emails confirmed.
    pub fn leaked_items(&self) -> HashSet<String> {
        self.leaked.lock().expect("tally lock").clone()
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn attack_requests(&self) -> u64 {
        self.attack_requests.load(Ordering::Relaxed)
    }

    pub fn first_refusal(&self) -> Option<Duration> {
        match self.first_refusal_us.load(Ordering::Relaxed) {
            u64::MAX => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    pub fn ordinary_users(&self) -> u64 {
        self.ordinary_users.load(Ordering::Relaxed)
    }

    pub fn ordinary_refused_users(&self) -> u64 {
        self.ordinary_refused_users.load(Ordering::Relaxed)
    }

    /// The ordinary users refused, by name.
    pub fn refused_who(&self) -> Vec<String> {
        self.refused_who.lock().expect("tally lock").clone()
    }

    pub fn ordinary_refused_requests(&self) -> u64 {
        self.ordinary_refused_requests.load(Ordering::Relaxed)
    }

    pub fn ordinary_requests(&self) -> u64 {
        self.ordinary_requests.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().expect("tally lock").clone()
    }
}

/// A mailroom served on an ephemeral loopback port; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub guard: Option<enumguard::GuardHandle>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a mailroom and waits until `/healthz` answers.
pub async fn start(opts: &Options) -> Result<Server, Error> {
    let app = app::app(opts)?;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let router = app.router;
    let task = tokio::spawn(async move {
        let _ = app::serve(listener, router).await;
    });
    let server = Server {
        addr,
        guard: app.guard,
        task,
    };
    let mut c = Client::new(addr, Ipv4Addr::LOCALHOST);
    for _ in 0..100 {
        if c.get("/healthz").await.is_ok_and(|r| r.status == 200) {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err("mailroom did not become healthy".into())
}

/// The kinds of scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One account walks address-book ids in order, then (same server,
    /// blocked) comes back with a new account, new addresses, random order
    /// and a jittered, slower pace. Two rows.
    Scrape,
    /// Email guessing through the recipient lookup, one account, one address.
    LookupOne,
    /// The same, spread over many bots (an address and an account each).
    LookupSpread,
    /// Email guessing through password reset, one address.
    ResetOne,
    /// The same, spread over many addresses.
    ResetSpread,
    /// Ordinary users sharing one NAT address.
    Nat,
    /// A scraper behind the same NAT address as ordinary users.
    NatScrape,
    /// Business accounts in one office making many lookups.
    Business,
    /// A company signs up its staff from one office address at once; they
    /// log in, read their own book and look up colleagues.
    SignupWave,
    /// Heavy users looking up the same few contacts again and again, with
    /// typos; half of them behind one NAT address.
    ShortLists,
}

/// One row of the table.
pub struct Row {
    pub name: &'static str,
    /// What leaks: "books" or "emails"; `None` for ordinary-only rows.
    pub unit: Option<&'static str>,
    pub off: Arc<Tally>,
    pub on: Arc<Tally>,
}

impl Row {
    /// Why protection failed in this row, if it did.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let on = &self.on;
        if on.ordinary_refused_users() > 0 {
            out.push(format!(
                "{}: {} of {} ordinary users refused ({} requests)",
                self.name,
                on.ordinary_refused_users(),
                on.ordinary_users(),
                on.ordinary_refused_requests()
            ));
        }
        if let Some(unit) = self.unit {
            let (off, on) = (self.off.leaked(), self.on.leaked());
            if off == 0 {
                out.push(format!(
                    "{}: the attack leaked nothing even unprotected",
                    self.name
                ));
            } else if self.on.refused() == 0 || on * 10 > off {
                out.push(format!(
                    "{}: attack not stopped: {on} {unit} leaked protected vs {off} unprotected \
                     (the bar is at most 10%), {} requests refused",
                    self.name,
                    self.on.refused()
                ));
            }
        }
        for (run, t) in [("unprotected", &self.off), ("protected", &self.on)] {
            if t.errors() > 0 {
                out.push(format!(
                    "{} ({run}): {} unexpected answers or errors, first: {}",
                    self.name,
                    t.errors(),
                    t.first_error().unwrap_or_default()
                ));
            }
        }
        out
    }
}

/// Runs every scenario (or those whose title contains `only`), unprotected
/// then protected (guard enforcing `config`), calling `progress` with a
/// piece of a progress line (no newline until the scenario ends) as each
/// scenario starts and each run ends.
pub async fn run_all(
    size: &Size,
    config: &enumguard::Config,
    only: Option<&str>,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<Row>, Error> {
    // The clients need source addresses across 127.0.0.0/8.
    let probe = tokio::net::TcpSocket::new_v4()?;
    if let Err(e) = probe.bind(SocketAddr::new(Ipv4Addr::new(127, 66, 0, 6).into(), 0)) {
        return Err(format!(
            "cannot bind a client to 127.66.0.6 ({e}): the demo plays many clients from \
             addresses across 127.0.0.0/8, which Linux routes to loopback by default \
             (macOS has only 127.0.0.1 unless aliases are added to lo0)"
        )
        .into());
    }
    drop(probe);
    let kinds: Vec<Kind> = ALL
        .into_iter()
        .filter(|k| only.is_none_or(|w| title(*k).contains(w)))
        .collect();
    let mut rows = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let title = title(*kind);
        let mut runs: Vec<Vec<Arc<Tally>>> = Vec::new();
        progress(&format!("[{}/{}] {title}:", i + 1, kinds.len()));
        for guard in [GuardChoice::Off, GuardChoice::Enforce] {
            let t0 = Instant::now();
            let tallies = tokio::time::timeout(size.deadline, run(*kind, guard, size, config))
                .await
                .map_err(|_| format!("{title}: took longer than {:?}", size.deadline))??;
            let label = if guard == GuardChoice::Off {
                "unprotected"
            } else {
                "protected"
            };
            let leaked: Vec<String> = tallies.iter().map(|t| t.leaked().to_string()).collect();
            progress(&format!(
                " {label} {:.1} s, leaked {}{}",
                t0.elapsed().as_secs_f64(),
                leaked.join(" + "),
                if guard == GuardChoice::Off { ";" } else { "\n" },
            ));
            runs.push(tallies);
        }
        let on = runs.pop().expect("two runs");
        let off = runs.pop().expect("two runs");
        rows.extend(rows_of(*kind, off, on));
    }
    Ok(rows)
}

/// A scenario's rows from its two runs' tallies.
fn rows_of(kind: Kind, off: Vec<Arc<Tally>>, on: Vec<Arc<Tally>>) -> Vec<Row> {
    names(kind)
        .into_iter()
        .zip(off.into_iter().zip(on))
        .map(|((name, unit), (off, on))| Row {
            name,
            unit,
            off,
            on,
        })
        .collect()
}

/// Every scenario, in the demo's order.
pub const ALL: [Kind; 10] = [
    Kind::Scrape,
    Kind::LookupOne,
    Kind::LookupSpread,
    Kind::ResetOne,
    Kind::ResetSpread,
    Kind::Nat,
    Kind::NatScrape,
    Kind::Business,
    Kind::SignupWave,
    Kind::ShortLists,
];

/// One scenario in simulated time: the very traffic [`run_all`] plays over
/// HTTP, unprotected then protected, each request handed to a fresh
/// in-process mailroom's router (guard included) as a tower service instead
/// of a socket. Its rows, judged by [`Row::failures`] as the demo's are.
/// A scenario of ordinary users only is not played unprotected (nothing
/// leaks there: the run only shows that the traffic works), so its rows'
/// `off` tallies are empty.
///
/// Call it on a current-thread runtime whose time is paused
/// (`start_paused`): the traffic's sleeps then take no real time (the
/// runtime jumps to the next timer when every task waits), each request
/// takes `latency` of simulated time, one at a time (a server busy with
/// one request at a time), and the guard's clock (a
/// [`ManualClock`](enumguard::ManualClock)) is moved to the runtime's time
/// before each request. Tasks interleave the same way every run, so the
/// rows depend only on the guard's key `seed` (which also seeds the
/// mailroom's login tokens) and the traffic's `size.seed`.
pub async fn simulate(
    kind: Kind,
    size: &Size,
    config: &enumguard::Config,
    seed: u64,
    latency: Duration,
) -> Result<Vec<Row>, Error> {
    let mut runs = Vec::new();
    for guard in [GuardChoice::Off, GuardChoice::Enforce] {
        if guard == GuardChoice::Off && names(kind).iter().all(|(_, unit)| unit.is_none()) {
            runs.push(names(kind).iter().map(|_| Tally::new()).collect());
            continue;
        }
        let opts = Options {
            accounts: size.accounts,
            patched: false,
            guard,
            config: config.clone(),
            ..Options::new()
        };
        let link = local(&opts, seed, latency)?;
        runs.push(play(kind, link, size).await);
    }
    let on = runs.pop().expect("two runs");
    let off = runs.pop().expect("two runs");
    Ok(rows_of(kind, off, on))
}

/// A fresh mailroom in this process on simulated time (see [`simulate`]):
/// its guard's keys and its tokens from `seed`.
fn local(opts: &Options, seed: u64, latency: Duration) -> Result<Link, Error> {
    use tower::ServiceExt as _;

    let clock = enumguard::ManualClock::new();
    let state = Arc::new(app::Mailroom::seeded(opts.accounts, opts.patched).with_token_seed(seed));
    let guard_clock = clock.clone();
    let router = app::app_with_guard(opts, state, |b| b.clock(guard_clock).seed(seed))?.router;
    // How far the guard's clock has been moved, from the runtime's time at
    // `epoch`.
    let epoch = Instant::now();
    let moved = Arc::new(Mutex::new(Duration::ZERO));
    let send: crate::client::Local = Arc::new(move |source, mut req| {
        let (router, clock, moved) = (router.clone(), clock.clone(), moved.clone());
        Box::pin(async move {
            // The request's time in the server: the whole runtime's clock
            // moves (and the tasks whose sleeps end by then run).
            tokio::time::advance(latency).await;
            {
                let now = epoch.elapsed();
                let mut moved = moved.lock().expect("clock lock");
                if now > *moved {
                    clock.advance(now - *moved);
                    *moved = now;
                }
            }
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(SocketAddr::new(
                    source.into(),
                    40_000,
                )));
            let res = router.oneshot(req).await?;
            let status = res.status().as_u16();
            let body = http_body_util::BodyExt::collect(res.into_body())
                .await?
                .to_bytes();
            Ok(Resp { status, body })
        })
    });
    Ok(Link::Local(send))
}

/// A scenario's title (what `--only` matches).
pub fn title(kind: Kind) -> &'static str {
    match kind {
        Kind::Scrape => "address-book scrape, then comeback",
        Kind::LookupOne => "email guessing via lookup, one address",
        Kind::LookupSpread => "email guessing via lookup, spread over bots",
        Kind::ResetOne => "email guessing via password reset, one address",
        Kind::ResetSpread => "email guessing via password reset, spread",
        Kind::Nat => "ordinary users behind one NAT address",
        Kind::NatScrape => "a scraper behind the NAT, among its users",
        Kind::Business => "business users with many lookups",
        Kind::SignupWave => "a sign-up wave from one office address",
        Kind::ShortLists => "heavy users with short contact lists and typos",
    }
}

fn names(kind: Kind) -> Vec<(&'static str, Option<&'static str>)> {
    match kind {
        Kind::Scrape => vec![
            ("scrape: 1 account walks ids", Some("books")),
            ("comeback: new acct+IPs, slower", Some("books")),
        ],
        Kind::LookupOne => vec![("guess via lookup, 1 IP", Some("emails"))],
        Kind::LookupSpread => vec![("guess via lookup, spread", Some("emails"))],
        Kind::ResetOne => vec![("guess via reset, 1 IP", Some("emails"))],
        Kind::ResetSpread => vec![("guess via reset, spread", Some("emails"))],
        Kind::Nat => vec![("NAT: users on one address", None)],
        Kind::NatScrape => vec![("scraper behind that NAT", Some("books"))],
        Kind::Business => vec![("business: many lookups", None)],
        Kind::SignupWave => vec![("sign-up wave, one office", None)],
        Kind::ShortLists => vec![("short contact lists, typos", None)],
    }
}

/// The table a person reads at a glance.
pub fn table(rows: &[Row], nat_users: usize) -> String {
    let mut s = String::new();
    let header = [
        "scenario",
        "leaked unprotected",
        "leaked protected",
        "refused",
        "ordinary refused",
        "first block after",
    ];
    let mut lines: Vec<[String; 6]> = vec![header.map(str::to_owned)];
    for r in rows {
        let (off, on) = match r.unit {
            Some(unit) => (
                format!("{} {unit}", r.off.leaked()),
                format!("{} {unit}", r.on.leaked()),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let refused = if r.unit.is_some() {
            format!("{}/{}", r.on.refused(), r.on.attack_requests())
        } else {
            "-".to_owned()
        };
        let ordinary = format!(
            "{}/{}",
            r.on.ordinary_refused_users(),
            r.on.ordinary_users()
        );
        let first = match (r.unit, r.on.first_refusal()) {
            (None, _) => "-".to_owned(),
            (Some(_), None) => "never".to_owned(),
            (Some(unit), Some(d)) => format!(
                "{}, {} {unit}",
                human(d),
                r.on.leaked_before_refusal.load(Ordering::Relaxed)
            ),
        };
        lines.push([r.name.to_owned(), off, on, refused, ordinary, first]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, l) in lines.iter().enumerate() {
        let cells: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c == 0 {
                    format!("{v:<w$}", w = widths[c])
                } else {
                    format!("{v:>w$}", w = widths[c])
                }
            })
            .collect();
        let _ = writeln!(s, "{}", cells.join(" | ").trim_end());
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            let _ = writeln!(s, "{}", rule.join("-|-"));
        }
    }
    let _ = writeln!(
        s,
        "\nleaked: foreign address books read, or registered emails confirmed, by the attacker.\n\
         refused: the attacker's requests refused (429) / made, protected.\n\
         ordinary refused: ordinary users refused at least once / active (protected); \
         the NAT row is {nat_users} users on one address.\n\
         first block after: from the attack's start to its first refusal (throttle or block), and what had\n  leaked by then."
    );
    s
}

fn human(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} us", d.as_micros())
    } else if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// One run of one scenario on a fresh server: a tally per row.
async fn run(
    kind: Kind,
    guard: GuardChoice,
    size: &Size,
    config: &enumguard::Config,
) -> Result<Vec<Arc<Tally>>, Error> {
    let opts = Options {
        accounts: size.accounts,
        patched: false,
        guard,
        config: config.clone(),
        ..Options::new()
    };
    let server = start(&opts).await?;
    let out = play(kind, Link::Http(server.addr), size).await;
    if std::env::var_os("DEMO_DEBUG").is_some() {
        if let Some(g) = &server.guard {
            for s in g.suspects(0.3).iter().take(12) {
                eprintln!(
                    "  suspect {} probe={} score={:.2} strikes={}",
                    s.actor, s.probe, s.score, s.strikes
                );
            }
        }
    }
    drop(server);
    Ok(out)
}

/// The traffic of one scenario against the mailroom behind `link`: a tally
/// per row.
async fn play(kind: Kind, link: Link, size: &Size) -> Vec<Arc<Tally>> {
    let size = Arc::new(size.clone());
    // The accounts ordinary users never are.
    let attackers = size.attacker_accounts(kind);
    match kind {
        Kind::Scrape => {
            let t1 = Tally::new();
            let bg = background(&link, &size, &attackers, &t1, 1);
            scrape(&link, Ipv4Addr::new(127, 66, 0, 6), &size, &t1).await;
            let t2 = Tally::new();
            let bg2 = background(&link, &size, &attackers, &t2, 2);
            comeback(&link, &size, &t2).await;
            join(bg, &t1).await;
            join(bg2, &t2).await;
            vec![t1, t2]
        }
        Kind::LookupOne | Kind::LookupSpread | Kind::ResetOne | Kind::ResetSpread => {
            let t = Tally::new();
            let bg = background(&link, &size, &attackers, &t, kind as u64 + 10);
            match kind {
                Kind::LookupOne => guess_one(&link, &size, &t, Via::Lookup).await,
                Kind::ResetOne => guess_one(&link, &size, &t, Via::Reset).await,
                Kind::LookupSpread => guess_spread(&link, &size, &t, Via::Lookup).await,
                _ => guess_spread(&link, &size, &t, Via::Reset).await,
            }
            join(bg, &t).await;
            vec![t]
        }
        Kind::Nat => {
            let t = Tally::new();
            let users = nat_users(&link, &size, &attackers, &t, Duration::ZERO);
            join(users, &t).await;
            vec![t]
        }
        Kind::NatScrape => {
            let t = Tally::new();
            let users = nat_users(&link, &size, &attackers, &t, Duration::from_millis(1_500));
            tokio::time::sleep(Duration::from_millis(300)).await;
            scrape(&link, NAT, &size, &t).await;
            join(users, &t).await;
            vec![t]
        }
        Kind::Business => {
            let t = Tally::new();
            let bg = background(&link, &size, &attackers, &t, 3);
            let mut set = JoinSet::new();
            for b in 0..size.business_users {
                let id = 100 + b as u64 * 37;
                let (t, size, link) = (t.clone(), size.clone(), link.clone());
                set.spawn(async move {
                    let script = Script {
                        lookups: size.business_lookups,
                        business: true,
                        ..Script::default()
                    };
                    ordinary(
                        &link,
                        Ipv4Addr::new(127, 40, 0, 1),
                        id,
                        size.salted(id),
                        &size,
                        &t,
                        script,
                    )
                    .await;
                });
            }
            join(set, &t).await;
            join(bg, &t).await;
            vec![t]
        }
        Kind::SignupWave => {
            let t = Tally::new();
            let bg = background(&link, &size, &attackers, &t, 4);
            signup_wave(&link, &size, &t).await;
            join(bg, &t).await;
            vec![t]
        }
        Kind::ShortLists => {
            let t = Tally::new();
            let bg = background(&link, &size, &attackers, &t, 5);
            let mut set = JoinSet::new();
            for u in 0..size.short_list_users {
                let (t, size, link) = (t.clone(), size.clone(), link.clone());
                set.spawn(async move { short_list_user(&link, u, &size, &t).await });
            }
            join(set, &t).await;
            join(bg, &t).await;
            vec![t]
        }
    }
}

/// The NAT address.
const NAT: Ipv4Addr = Ipv4Addr::new(127, 30, 0, 1);

/// `size.nat_users` ordinary users on the NAT address (none on one of the
/// `attackers`' accounts), 5% of them signing up, starting over `spread`.
fn nat_users(
    link: &Link,
    size: &Arc<Size>,
    attackers: &[u64],
    t: &Arc<Tally>,
    spread: Duration,
) -> JoinSet<()> {
    let sem = Arc::new(Semaphore::new(size.concurrency));
    let mut set = JoinSet::new();
    let mut rng = Rng::new(size.salted(0x004e_4154));
    let n = size.nat_users as u64;
    for i in 0..size.nat_users {
        let id = size.ordinary_account(&mut rng, attackers);
        let (t, sem, size, link) = (t.clone(), sem.clone(), size.clone(), link.clone());
        let seed = rng.next_u64();
        let delay = spread.mul_f64(i as f64 / n as f64);
        set.spawn(async move {
            tokio::time::sleep(delay).await;
            let _permit = sem.acquire().await;
            let script = Script {
                register: Some(format!("nat{i}")),
                ..Script::default()
            };
            ordinary(&link, NAT, id, seed, &size, &t, script).await;
        });
    }
    set
}

async fn join(mut set: JoinSet<()>, t: &Tally) {
    while let Some(r) = set.join_next().await {
        if let Err(e) = r {
            t.error(format!("task failed: {e}"));
        }
    }
}

/// The office of the sign-up wave.
const OFFICE: Ipv4Addr = Ipv4Addr::new(127, 50, 0, 1);

/// `size.signup_wave` new people sign up from one office address within a
/// few seconds, log in, read their own address book and look up three
/// colleagues each (one lookup in five mistyped).
async fn signup_wave(link: &Link, size: &Arc<Size>, t: &Arc<Tally>) {
    let sem = Arc::new(Semaphore::new(size.concurrency.min(8)));
    let mut set = JoinSet::new();
    let n = size.signup_wave;
    for i in 0..n {
        let (t, sem, link) = (t.clone(), sem.clone(), link.clone());
        let seed = size.salted(0x5167 ^ i as u64);
        set.spawn(async move {
            tokio::time::sleep(Duration::from_millis(i as u64 * 20)).await;
            let _permit = sem.acquire().await;
            t.ordinary_users.fetch_add(1, Ordering::Relaxed);
            let mut rng = Rng::new(seed);
            let mut c = Client::new(link.clone(), OFFICE);
            let mut refused = false;
            let res = async {
                let email = format!("staff{i}@company.test");
                let r = c
                    .post(
                        "/api/register",
                        &json!({ "email": email, "password": "correct horse" }),
                    )
                    .await?;
                refused |= t.ordinary(&r);
                expect(&r, &[201], "register")?;
                let r = c.login(&email, "correct horse").await?;
                refused |= t.ordinary(&r);
                expect(&r, &[200], "login after register")?;
                let id = r.json()["id"].as_u64().unwrap_or(0);
                let r = c.get(&format!("/api/accounts/{id}/addressbook")).await?;
                refused |= t.ordinary(&r);
                expect(&r, &[200], "own address book")?;
                for _ in 0..3 {
                    let colleague = format!("staff{}@company.test", rng.below(i as u64 + 1));
                    let email = if rng.percent(20) {
                        typo(&colleague, &mut rng)
                    } else {
                        colleague
                    };
                    lookup(&mut c, &email, &t, &mut refused).await?;
                }
                Ok::<_, Error>(())
            }
            .await;
            t.ordinary_done(refused, res, &format!("new member {i}"));
        });
    }
    join(set, t).await;
}

/// A heavy user with a short contact list: logs in, reads its own book and
/// looks up one to eight of its contacts `size.short_list_lookups` times,
/// mistyping one lookup in ten. Even users share one NAT address.
async fn short_list_user(link: &Link, u: usize, size: &Size, t: &Tally) {
    t.ordinary_users.fetch_add(1, Ordering::Relaxed);
    let mut rng = Rng::new(size.salted(0x5407 ^ (u as u64).wrapping_mul(0x9e37)));
    let id = 1 + rng.below(size.accounts);
    let source = if u % 2 == 0 {
        Ipv4Addr::new(127, 31, 0, 1)
    } else {
        Ipv4Addr::new(127, 32, u as u8, 1)
    };
    let mut c = Client::new(link.clone(), source);
    let mut refused = false;
    let res = async {
        let r = c.login(&email_of(id), &password_of(id)).await?;
        refused |= t.ordinary(&r);
        expect(&r, &[200], "login")?;
        let r = c.get(&format!("/api/accounts/{id}/addressbook")).await?;
        refused |= t.ordinary(&r);
        expect(&r, &[200], "own address book")?;
        let contacts: Vec<String> = r.json()["contacts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["email"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let keep = (1 + rng.below(8) as usize).min(contacts.len());
        let list = &contacts[..keep];
        if list.is_empty() {
            return Ok(());
        }
        for _ in 0..size.short_list_lookups {
            tokio::time::sleep(Duration::from_micros(rng.below(2_000))).await;
            let mut email = list[rng.below(list.len() as u64) as usize].clone();
            if rng.percent(10) {
                email = typo(&email, &mut rng);
            }
            lookup(&mut c, &email, t, &mut refused).await?;
        }
        Ok::<_, Error>(())
    }
    .await;
    t.ordinary_done(refused, res, &format!("short-list user {u}"));
}

/// What an ordinary user does.
#[derive(Default, Clone)]
struct Script {
    /// Lookups (0: a person's 0..=3).
    lookups: usize,
    /// Looks up customers: registered emails, a few stale ones.
    business: bool,
    /// Some users sign up instead: this tags their new email.
    register: Option<String>,
}

/// An ordinary user: logs in, reads its own address book, looks up a few
/// of its contacts (some of whom are not on mailroom; now and then with a
/// typo), sometimes resets its password or signs up a new account.
async fn ordinary(
    link: &Link,
    source: Ipv4Addr,
    id: u64,
    seed: u64,
    size: &Size,
    t: &Tally,
    script: Script,
) {
    t.ordinary_users.fetch_add(1, Ordering::Relaxed);
    let mut rng = Rng::new(seed ^ 0x0bd1_a4a7);
    let mut c = Client::new(link.clone(), source);
    let mut refused = false;
    let res = async {
        // 5% of users sign up (when the script allows it).
        if let Some(tag) = &script.register {
            if rng.percent(5) {
                let email = format!("new.{tag}.{}@example.test", rng.below(1_000_000));
                let r = c
                    .post(
                        "/api/register",
                        &json!({ "email": email, "password": "correct horse" }),
                    )
                    .await?;
                refused |= t.ordinary(&r);
                expect(&r, &[201], "register")?;
                let r = c.login(&email, "correct horse").await?;
                refused |= t.ordinary(&r);
                expect(&r, &[200], "login after register")?;
                return Ok::<_, Error>(());
            }
        }
        let r = c.login(&email_of(id), &password_of(id)).await?;
        refused |= t.ordinary(&r);
        expect(&r, &[200], "login")?;
        let r = c.get(&format!("/api/accounts/{id}/addressbook")).await?;
        refused |= t.ordinary(&r);
        expect(&r, &[200], "own address book")?;
        let contacts: Vec<String> = r.json()["contacts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["email"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let n = if script.lookups > 0 {
            script.lookups
        } else {
            rng.below(4) as usize
        };
        for _ in 0..n {
            if contacts.is_empty() && !script.business {
                break;
            }
            let email = if script.business {
                // Customers: registered, but 5% have left.
                if rng.percent(5) {
                    format!("former.customer{}@mailroom.test", rng.below(100_000))
                } else {
                    email_of(1 + rng.below(size.accounts))
                }
            } else {
                let mut e = contacts[rng.below(contacts.len() as u64) as usize].clone();
                if rng.percent(8) {
                    e = typo(&e, &mut rng);
                }
                e
            };
            lookup(&mut c, &email, t, &mut refused).await?;
        }
        // 8% forgot their password; a quarter of those mistype it first.
        if !script.business && rng.percent(8) {
            if rng.percent(25) {
                let r = c
                    .post(
                        "/api/password-reset",
                        &json!({ "email": typo(&email_of(id), &mut rng) }),
                    )
                    .await?;
                refused |= t.ordinary(&r);
                expect(&r, &[202, 404], "password reset")?;
            }
            let r = c
                .post("/api/password-reset", &json!({ "email": email_of(id) }))
                .await?;
            refused |= t.ordinary(&r);
            expect(&r, &[202], "password reset")?;
        }
        Ok(())
    }
    .await;
    t.ordinary_done(refused, res, &format!("ordinary user {id} at {source}"));
}

/// An ordinary user's recipient lookup (registered or not); sets
/// `refused` if the guard refused it (before the answer is checked).
async fn lookup(c: &mut Client, email: &str, t: &Tally, refused: &mut bool) -> Result<(), Error> {
    let r = c
        .get(&format!("/api/recipients/lookup?email={}", encode(email)))
        .await?;
    *refused |= t.ordinary(&r);
    expect(&r, &[200, 404], "lookup")
}

fn expect(r: &Resp, ok: &[u16], what: &str) -> Result<(), Error> {
    if ok.contains(&r.status) {
        Ok(())
    } else {
        Err(format!("{what}: unexpected {}", r.status).into())
    }
}

/// A typo: one letter of the local part dropped or doubled.
fn typo(email: &str, rng: &mut Rng) -> String {
    let at = email.find('@').unwrap_or(email.len()).max(1);
    let i = rng.below(at as u64) as usize;
    let mut s = email.to_owned();
    if rng.percent(50) {
        s.remove(i);
    } else {
        let ch = s[i..].chars().next().unwrap_or('x');
        s.insert(i, ch);
    }
    s
}

/// Ordinary users on addresses of their own (none on one of the
/// `attackers`' accounts), starting over the first second or so of the
/// attack.
fn background(
    link: &Link,
    size: &Arc<Size>,
    attackers: &[u64],
    t: &Arc<Tally>,
    salt: u64,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    let mut rng = Rng::new(size.salted(0xb4c6 ^ salt.wrapping_mul(0x9e37_79b9)));
    for i in 0..size.background {
        let id = size.ordinary_account(&mut rng, attackers);
        let delay = Duration::from_millis(rng.below(1_000));
        let seed = rng.next_u64();
        let source = Ipv4Addr::new(127, 20 + (i / 250) as u8, (i % 250) as u8, 1 + salt as u8);
        let (t, size, link) = (t.clone(), size.clone(), link.clone());
        set.spawn(async move {
            tokio::time::sleep(delay).await;
            ordinary(&link, source, id, seed, &size, &t, Script::default()).await;
        });
    }
    set
}

/// The scraper: its own account, one address, ids in order, as fast as
/// the server answers.
async fn scrape(link: &Link, source: Ipv4Addr, size: &Size, t: &Tally) {
    t.attack_starts();
    let me = size.scraper_account();
    let mut c = Client::new(link.clone(), source);
    let res = async {
        let r = c.login(&email_of(me), &password_of(me)).await?;
        expect(&r, &[200], "scraper login")?;
        for id in 1..=size.scrape_ids {
            if id == me {
                continue;
            }
            let r = c.get(&format!("/api/accounts/{id}/addressbook")).await?;
            t.attack(&r);
            if r.status == 200 {
                t.leak(id.to_string());
            }
        }
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = res {
        t.error(format!("scraper: {e}"));
    }
}

/// The same attacker after its block: signs up a new account from new
/// addresses (other /24s), rotates over 16 of them, reads the next ids in
/// random order at a slower, jittered pace.
async fn comeback(link: &Link, size: &Size, t: &Tally) {
    let pool: Vec<Ipv4Addr> = (0..16u8)
        .map(|i| Ipv4Addr::new(127, 77, i / 4, 1 + i % 4))
        .collect();
    let mut rng = Rng::new(size.salted(0xc0e_bac));
    let mut ids: Vec<u64> = (size.scrape_ids + 1..=2 * size.scrape_ids).collect();
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut c = Client::new(link.clone(), pool[0]);
    let res = async {
        let email = "quiet.reader@proton.test";
        let r = c
            .post(
                "/api/register",
                &json!({ "email": email, "password": "hunter22" }),
            )
            .await?;
        t.attack(&r);
        if r.refused() {
            return Ok(());
        }
        expect(&r, &[201], "comeback register")?;
        let r = c.login(email, "hunter22").await?;
        t.attack(&r);
        if r.refused() {
            return Ok(());
        }
        expect(&r, &[200], "comeback login")?;
        let (lo, hi) = size.comeback_pause_ms;
        for (n, id) in ids.iter().enumerate() {
            if n % 5 == 0 {
                c.set_source(pool[rng.below(pool.len() as u64) as usize]);
            }
            tokio::time::sleep(Duration::from_micros(rng.range(lo * 1000, hi * 1000))).await;
            let r = c.get(&format!("/api/accounts/{id}/addressbook")).await?;
            t.attack(&r);
            if r.status == 200 {
                t.leak(id.to_string());
            }
        }
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = res {
        t.error(format!("comeback: {e}"));
    }
}

#[derive(Clone, Copy)]
enum Via {
    Lookup,
    Reset,
}

/// A guesser's list: about 10% registered mailroom addresses, the rest
/// plausible ones that are not, all distinct.
fn wordlist(n: usize, accounts: u64, seed: u64) -> Vec<String> {
    const FIRST: &[&str] = &[
        "alex", "sam", "jo", "chris", "pat", "kim", "lee", "max", "nic", "ron",
    ];
    const LAST: &[&str] = &[
        "smith", "jones", "brown", "lee", "khan", "wong", "diaz", "muller",
    ];
    let mut rng = Rng::new(seed);
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n && seen.len() < n * 4 {
        let e = if rng.percent(10) {
            email_of(1 + rng.below(accounts))
        } else {
            let f = FIRST[rng.below(FIRST.len() as u64) as usize];
            let l = LAST[rng.below(LAST.len() as u64) as usize];
            match rng.below(3) {
                0 => format!("{f}.{l}{}@mailroom.test", rng.below(1000)),
                1 => format!("{f}{}@mailroom.test", rng.below(10_000)),
                _ => format!("{}{l}@mailroom.test", &f[..1]),
            }
        };
        if seen.insert(e.clone()) {
            out.push(e);
        }
    }
    out
}

/// Sends one guess; records a leak when it confirms a registered email.
async fn guess(c: &mut Client, via: Via, email: &str, t: &Tally) -> Result<(), Error> {
    let r = match via {
        Via::Lookup => {
            c.get(&format!("/api/recipients/lookup?email={}", encode(email)))
                .await?
        }
        Via::Reset => {
            c.post("/api/password-reset", &json!({ "email": email }))
                .await?
        }
    };
    t.attack(&r);
    match (via, r.status) {
        (Via::Lookup, 200) | (Via::Reset, 202) => t.leak(email.to_owned()),
        (_, 404 | 429) => {}
        (_, s) => return Err(format!("guess: unexpected {s}").into()),
    }
    Ok(())
}

/// One guesser, one address (and for the lookup, one account), flat out.
async fn guess_one(link: &Link, size: &Size, t: &Tally, via: Via) {
    let words = wordlist(size.guesses, size.accounts, size.salted(0x9e55_0001));
    let mut c = Client::new(link.clone(), Ipv4Addr::new(127, 66, 1, 6));
    let res = async {
        if let Via::Lookup = via {
            let me = size.guesser_account();
            let r = c.login(&email_of(me), &password_of(me)).await?;
            expect(&r, &[200], "guesser login")?;
        }
        for w in &words {
            guess(&mut c, via, w, t).await?;
        }
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = res {
        t.error(format!("guesser: {e}"));
    }
}

/// Many bots, each with an address in a /24 of its own (and for the
/// lookup, a compromised account of its own), a few guesses each, all at
/// once with a jittered pace.
/// The spread guessers' lists, bot by bot.
pub fn bot_lists(size: &Size) -> Vec<Vec<String>> {
    let words = wordlist(
        size.bots * size.guesses_per_bot,
        size.accounts,
        size.salted(0x9e55_0002),
    );
    (0..size.bots)
        .map(|b| {
            words
                .iter()
                .skip(b)
                .step_by(size.bots)
                .take(size.guesses_per_bot)
                .cloned()
                .collect()
        })
        .collect()
}

async fn guess_spread(link: &Link, size: &Arc<Size>, t: &Arc<Tally>, via: Via) {
    let mut set = JoinSet::new();
    for (b, mine) in bot_lists(size).into_iter().enumerate() {
        let (t, size, link) = (t.clone(), size.clone(), link.clone());
        let source = Ipv4Addr::new(127, 100 + (b / 250) as u8, (b % 250) as u8, 9);
        set.spawn(async move {
            let mut rng = Rng::new(size.salted(0xb07 + b as u64));
            let mut c = Client::new(link.clone(), source);
            let res = async {
                if let Via::Lookup = via {
                    // An account of its own, made for the attack (as in the
                    // incident): registered, then logged in.
                    let email = format!("bot{b}.{}@attacker.test", size.salted(0xacc7));
                    let password = format!("pw-{b}");
                    let r = c
                        .post(
                            "/api/register",
                            &json!({ "email": email, "password": password }),
                        )
                        .await?;
                    t.attack(&r);
                    if r.refused() {
                        return Ok(());
                    }
                    expect(&r, &[201], "bot registration")?;
                    let r = c.login(&email, &password).await?;
                    t.attack(&r);
                    if r.refused() {
                        return Ok(());
                    }
                    expect(&r, &[200], "bot login")?;
                }
                for w in &mine {
                    tokio::time::sleep(Duration::from_micros(rng.below(3_000))).await;
                    guess(&mut c, via, w, &t).await?;
                }
                Ok::<_, Error>(())
            }
            .await;
            if let Err(e) = res {
                t.error(format!("bot {b}: {e}"));
            }
        });
    }
    join(set, t).await;
}
