//! Configuration: the same settings from code ([`GuardBuilder`](crate::GuardBuilder))
//! or from TOML ([`Config::from_toml_str`], [`Config::from_file`]).
//!
//! Every field has a documented default, so an empty file is a valid config:
//!
//! ```
//! let config = enumguard::Config::from_toml_str("").unwrap();
//! assert_eq!(config.mode, enumguard::Mode::Enforce);
//! ```
//!
//! Errors name the field and the bad value:
//!
//! ```
//! let err = enumguard::Config::from_toml_str(r#"trusted_proxies = ["10.0.0.0/33"]"#).unwrap_err();
//! assert_eq!(err.field(), Some("trusted_proxies[0]"));
//! assert_eq!(err.value(), Some("10.0.0.0/33"));
//! ```

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::actor::Cidr;
use crate::probe::{PathPattern, StatusSpec};

/// Enforce verdicts, or only compute and report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Refuse blocked and throttled actors. The default.
    #[default]
    Enforce,
    /// Compute every verdict, log and count what would have been refused,
    /// refuse nothing.
    Observe,
}

/// What to do with a request that carries no peer address (the server did
/// not put `ConnectInfo<SocketAddr>`, a [`SocketAddr`](std::net::SocketAddr)
/// or a [`PeerAddr`](crate::PeerAddr) into its extensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingPeer {
    /// Refuse with 500 and a body that says why, and log an error once: the
    /// server is wired wrong, and every request would otherwise share one
    /// actor. The default. In observe mode (which refuses nothing) such
    /// requests are logged once and counted as `ip:unknown`.
    #[default]
    Refuse,
    /// Count such requests as one `ip:unknown` actor (and no subnet). Use
    /// this only where a missing peer address is expected (unix sockets,
    /// in-process tests).
    Unknown,
}

/// Where the session token is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SessionSource {
    /// A request header, e.g. `authorization` or `x-session`.
    Header(String),
    /// A cookie, e.g. `sid`.
    Cookie(String),
}

/// Allowlists and denylists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListConfig {
    /// Networks in CIDR notation. Defaults to none.
    pub cidrs: Vec<String>,
    /// Account ids. Defaults to none.
    pub accounts: Vec<String>,
}

/// Memory bounds. Each map whose keys an attacker chooses has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Most (actor, probe) signal records kept. When full, idle and
    /// unsuspicious records are evicted first; suspects and blocked actors
    /// are never evicted to make room for new keys. Defaults to 200,000.
    pub max_actors: usize,
    /// Most verdicts (throttles and blocks) kept. When full, expired
    /// verdicts go first, then throttles, then the blocks that end soonest.
    /// Defaults to 100,000.
    pub max_verdicts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_actors: 200_000,
            max_verdicts: 100_000,
        }
    }
}

/// The quota of a throttled actor (a governor GCRA quota).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Requests a throttled actor may make per minute. Defaults to 6.
    pub per_minute: u32,
    /// Burst allowance on top of the rate. Defaults to 3.
    pub burst: u32,
    /// How long a throttle lasts after the last evidence for it, in
    /// seconds. Defaults to 600.
    pub duration_secs: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            per_minute: 6,
            burst: 3,
            duration_secs: 600,
        }
    }
}

/// How long blocks last and how they grow for repeat offenders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlockConfig {
    /// The first block, in seconds. Defaults to 900 (15 minutes).
    pub base_secs: u64,
    /// Each further block of the same actor is this many times longer.
    /// Defaults to 4.
    pub factor: u32,
    /// No block is longer than this, in seconds. Defaults to 86,400 (a day).
    pub max_secs: u64,
}

impl Default for BlockConfig {
    fn default() -> Self {
        Self {
            base_secs: 900,
            factor: 4,
            max_secs: 86_400,
        }
    }
}

/// Status codes of refusals (the rest of a refusal can be replaced with
/// [`GuardBuilder::on_refusal`](crate::GuardBuilder::on_refusal)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponseConfig {
    /// Status of a refusal of a blocked actor. Defaults to 429 (so that
    /// clients back off and read `Retry-After`); 403 is the other usual
    /// choice.
    pub block_status: u16,
    /// Status of a refusal of a throttled actor. Defaults to 429.
    pub throttle_status: u16,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        Self {
            block_status: 429,
            throttle_status: 429,
        }
    }
}

/// How suspicion spreads between linked actors and how long it is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkConfig {
    /// Suspicion added to each actor of the request that got an actor
    /// blocked (its ip, subnet, session and account), as a fraction of a
    /// block. Defaults to 0.5.
    pub boost: f64,
    /// A new account or session (no history) acting from a suspect address
    /// (an ip or subnet that carries suspicion from a blocked actor on this
    /// probe) is *watched*: on a probe with own objects, its foreign-object
    /// threshold is multiplied by this. It inherits no suspicion: it is judged on its own evidence,
    /// so the ordinary users of a NAT where a scraper was caught (reading
    /// their own objects, mistyping a lookup, signing up) are never refused
    /// for it, while the scraper's comeback with a new account there is
    /// stopped at its first foreign reads. 1 turns the watch off. Defaults
    /// to 0.06 (a foreign-object threshold of 15 becomes 0.9: the first
    /// foreign read of a watched account is refused).
    pub watch_factor: f64,
    /// Carried suspicion halves every this many seconds. Defaults to 21,600
    /// (6 hours).
    pub half_life_secs: u64,
    /// An actor is "new" (has no history) until it is this old, in seconds,
    /// or has had `history_hits` history hits on the probe (hits on its own
    /// objects; on a probe without own objects, hits on a target it found
    /// before). The watch on a suspect address goes by age alone. Defaults
    /// to 86,400.
    pub new_actor_secs: u64,
    /// History hits on a probe after which an actor has history. Defaults
    /// to 5.
    pub history_hits: u32,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            boost: 0.5,
            watch_factor: 0.06,
            half_life_secs: 21_600,
            new_actor_secs: 86_400,
            history_hits: 5,
        }
    }
}

/// The service-wide view of each probe: its miss rate and foreign-target
/// rate against a slowly moving baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceViewConfig {
    /// Length of one bucket, in seconds. The view compares the last two
    /// buckets with the baseline. Defaults to 60.
    pub bucket_secs: u64,
    /// Requests in the last two buckets before the view may call the
    /// service anomalous. Defaults to 40.
    pub min_requests: u32,
    /// Requests of one address (its `ip` actor) per probe window that the
    /// view counts; the rest of that address's requests are left out. One
    /// busy address (an office signing up its staff, a NAT) is judged by its
    /// own thresholds and its kind factor, and cannot make the service look
    /// anomalous by itself: the view is for attacks spread over many
    /// addresses. Defaults to 10.
    pub per_address: u32,
    /// A rate is anomalous when it is at least `ratio` times the baseline
    /// and at least `margin` above it. Defaults to 3.0.
    pub ratio: f64,
    /// See `ratio`. Defaults to 0.25.
    pub margin: f64,
    /// Weight of each bucket in the baseline (an EWMA). The baseline learns
    /// from the requests of established people (accounts and sessions with
    /// history) in every bucket where there were enough of them, anomalous
    /// or not, else from calm buckets only: an attack by actors without
    /// history cannot teach it. Defaults to 0.05.
    pub alpha: f64,
}

impl Default for ServiceViewConfig {
    fn default() -> Self {
        Self {
            bucket_secs: 60,
            min_requests: 40,
            per_address: 10,
            ratio: 3.0,
            margin: 0.25,
            alpha: 0.05,
        }
    }
}

/// What kind of enumeration a probe guards against; it picks the default
/// thresholds (see [`Thresholds::objects`] and [`Thresholds::identities`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeStyle {
    /// Objects with owners, addressed by id (address books, orders):
    /// the tell is foreign targets. The default.
    #[default]
    Objects,
    /// Identities (emails, usernames) on an endpoint that answers
    /// differently for registered ones: the tell is misses.
    Identities,
}

/// Where a probe's target is in the request. Exactly one field is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetConfig {
    /// A named parameter of the path pattern, e.g. `id` for `/a/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A query parameter (percent-decoded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// A request header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// A field of a JSON object body; dots name nested fields (`user.email`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<String>,
}

impl TargetConfig {
    /// The target is path parameter `name`.
    pub fn path(name: impl Into<String>) -> Self {
        Self {
            path: Some(name.into()),
            ..Self::default()
        }
    }
    /// The target is query parameter `name`.
    pub fn query(name: impl Into<String>) -> Self {
        Self {
            query: Some(name.into()),
            ..Self::default()
        }
    }
    /// The target is header `name`.
    pub fn header(name: impl Into<String>) -> Self {
        Self {
            header: Some(name.into()),
            ..Self::default()
        }
    }
    /// The target is JSON body field `name`.
    pub fn json(name: impl Into<String>) -> Self {
        Self {
            json: Some(name.into()),
            ..Self::default()
        }
    }
}

/// How a response is classified when the application put no
/// [`Outcome`](crate::Outcome) into its extensions. Status specs are codes
/// (`404`) or classes (`"2xx"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutcomeConfig {
    /// Statuses that mean the target exists and was served. Defaults to `["2xx"]`.
    pub hit: Vec<StatusSpec>,
    /// Statuses that mean the target does not exist. Defaults to `[404]`.
    pub miss: Vec<StatusSpec>,
    /// Statuses that mean the actor may not see the target. Defaults to `[401, 403]`.
    pub denied: Vec<StatusSpec>,
}

impl Default for OutcomeConfig {
    fn default() -> Self {
        Self {
            hit: vec![StatusSpec::Class(2)],
            miss: vec![StatusSpec::Code(404)],
            denied: vec![StatusSpec::Code(401), StatusSpec::Code(403)],
        }
    }
}

/// What to do with a body larger than the probe's `body_limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Oversized {
    /// Count no target and pass the request through untouched (the default
    /// for `objects` probes).
    Pass,
    /// Refuse with 413 (the default for `identities` probes).
    Refuse,
}

/// Per actor kind multipliers of a probe's thresholds: a shared address
/// (NAT, office) is many people, so it gets more room than one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KindFactors {
    /// Defaults to 2.
    pub ip: f64,
    /// Defaults to 4.
    pub subnet: f64,
    /// Defaults to 1.
    pub session: f64,
    /// Defaults to 1.
    pub account: f64,
}

impl Default for KindFactors {
    fn default() -> Self {
        Self {
            ip: 2.0,
            subnet: 4.0,
            session: 1.0,
            account: 1.0,
        }
    }
}

/// The thresholds that turn a probe's signals into suspicion. A signal at
/// its threshold is a suspicion of 1.0, which is a block; `throttle_at` is
/// the suspicion at which an actor is throttled. Thresholds are counts per
/// window for one account or session; an `ip` or `subnet` gets
/// `kind_factors` times more. A threshold of 0 turns its signal off.
///
/// In TOML, a probe's `[probes.thresholds]` table overrides single fields of
/// its style's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// The sliding window, in seconds.
    pub window_secs: u64,
    /// Half-life of the long view, in seconds: distinct targets also add to
    /// sums that halve this often, so a scraper slower than the window adds
    /// up too.
    pub long_half_life_secs: u64,
    /// Distinct foreign targets (not the actor's own) that block.
    pub foreign_block: u32,
    /// Distinct targets that were misses (404, "no such account") that block,
    /// when at least `miss_ratio` of the distinct targets were misses.
    pub miss_block: u32,
    /// See `miss_block`.
    pub miss_ratio: f64,
    /// Misses count only when they are also at least this share of the
    /// distinct targets *plus the repeated hits* (the same target found
    /// again): a person who keeps looking up the same few contacts and
    /// mistypes now and then is ordinary use; a guesser never repeats a hit,
    /// and one that pads every guess with a lookup it already knows still
    /// misses on almost half of its answers.
    pub repeat_miss_ratio: f64,
    /// Distinct misses at `miss_cap` times `miss_block` block whatever the
    /// ratios (and throttle from `throttle_at` of that): the bound on an
    /// attacker that pads its guesses with many repeated known hits. 0
    /// turns it off.
    pub miss_cap: f64,
    /// Misses count toward `miss_ratio` only once the actor tried this many
    /// distinct targets, so that one early typo is not a 100% miss ratio.
    pub min_targets: u32,
    /// Distinct targets answered 401/403 that block.
    pub denied_block: u32,
    /// Suspicion at which an actor is throttled (0..1).
    pub throttle_at: f64,
    /// Suspicion is multiplied by this while the actor walks numeric
    /// targets in order (`sequential_run` steps of +-1 in a row).
    pub sequential_factor: f64,
    /// See `sequential_factor`.
    pub sequential_run: u32,
    /// Suspicion is multiplied by this while the actor's requests come at a
    /// machine-regular cadence (at least 8 gaps whose mean deviation is
    /// under 10% of their mean).
    pub cadence_factor: f64,
    /// While the service-wide view is anomalous, thresholds of actors with
    /// no history are multiplied by this (instead of their kind factor).
    /// 1 turns the tightening off for this probe.
    pub anomaly_factor: f64,
    /// The miss ratio the service-wide view assumes for this probe until
    /// calm traffic has shown its own. Set it near the real rate for
    /// endpoints where misses are normal (a sign-up form: most addresses
    /// are new).
    pub baseline_miss_ratio: f64,
    /// The foreign-target ratio the view assumes until it has seen calm
    /// traffic.
    pub baseline_foreign_ratio: f64,
    /// Thresholds of an actor that was blocked before are multiplied by this
    /// once for each earlier block, at most three times (an eighth of the
    /// room, by default, from the third block on).
    pub repeat_factor: f64,
    /// On a probe with own objects (`self_target`), the foreign-object
    /// threshold of a *stranger* (an actor with no history that has read
    /// none of its own objects) is multiplied by this while the
    /// service-wide view is anomalous, on top of `anomaly_factor`: what a
    /// scrape spread over many fresh accounts looks like. 1 turns it off.
    pub stranger_factor: f64,
    /// Multipliers per actor kind.
    pub kind_factors: KindFactors,
}

impl Thresholds {
    /// Defaults for objects addressed by id (the address-book scrape).
    ///
    /// | field | value | why |
    /// |---|---|---|
    /// | `window_secs` | 3600 | a scrape shows within an hour |
    /// | `long_half_life_secs` | 21600 | slower than the window, it still adds up: one read per 10 minutes blocks within 3 hours |
    /// | `foreign_block` | 15 | an owner reads its own objects, which do not count; 15 foreign ones is no accident, and keeps a scrape under 20 records |
    /// | `miss_block` / `miss_ratio` | 20 / 0.5 | probing ids that do not exist; typos by an owner are few and mixed with hits |
    /// | `min_targets` | 4 | a first typo is not a 100% miss ratio |
    /// | `denied_block` | 10 | 403s on other people's ids are a hunt for a hole |
    /// | `throttle_at` | 0.6 | throttle from 9 foreign objects: slows a scrape while evidence builds |
    /// | `sequential_factor` / `sequential_run` | 1.5 / 4 | ids walked in order are a script: block at 10 |
    /// | `cadence_factor` | 1.25 | a machine-regular cadence is a script |
    /// | `anomaly_factor` | 0.2 | during a service-wide spike of foreign reads, a new account blocks at 3 |
    /// | `baseline_miss_ratio` / `baseline_foreign_ratio` | 0.1 / 0.05 | what the service-wide view assumes until calm minutes show the real rates |
    /// | `repeat_miss_ratio` / `miss_cap` | 0.3 / 8 | repeated hits are ordinary use (a heavy user mistypes 0-10% of its lookups, and a streak of bad luck stays under 30%); padding buys no room: a guesser padding each guess with a known lookup is stopped a few guesses later, heavier padding by the cap of 8 x `miss_block` distinct misses (160 here, 80 for identities; see the policy) |
    /// | `repeat_factor` | 0.5 | an actor blocked before gets half the room, then a quarter, then an eighth |
    /// | `stranger_factor` | 0.3 | during a spike of foreign reads, a new account that has read none of its own objects is refused its first foreign read |
    /// | `kind_factors` | ip 2, subnet 4 | a NAT address is many people |
    pub fn objects() -> Self {
        Self {
            window_secs: 3600,
            long_half_life_secs: 21_600,
            foreign_block: 15,
            miss_block: 20,
            miss_ratio: 0.5,
            repeat_miss_ratio: 0.3,
            miss_cap: 8.0,
            min_targets: 4,
            denied_block: 10,
            throttle_at: 0.6,
            sequential_factor: 1.5,
            sequential_run: 4,
            cadence_factor: 1.25,
            anomaly_factor: 0.2,
            baseline_miss_ratio: 0.1,
            baseline_foreign_ratio: 0.05,
            repeat_factor: 0.5,
            stranger_factor: 0.3,
            kind_factors: KindFactors::default(),
        }
    }

    /// Defaults for identity lookups (email guessing through lookup,
    /// password reset or registration).
    ///
    /// | field | value | why |
    /// |---|---|---|
    /// | `window_secs` | 3600 | as for objects |
    /// | `foreign_block` | 0 (off) | every identity but one's own is foreign: the tell is misses |
    /// | `miss_block` / `miss_ratio` | 10 / 0.6 | a guesser misses most of the time (95% at a 5% hit rate); a person who mistypes an address hits on the next try |
    /// | `min_targets` | 5 | a first typo is not a 100% miss ratio |
    /// | `denied_block` | 10 | |
    /// | `throttle_at` | 0.6 | throttle from 6 misses |
    /// | `anomaly_factor` | 0.25 | during a service-wide spike of misses, a new address blocks at 3 misses (spread guessing) |
    /// | `stranger_factor` | 1 (off) | identities have no own objects |
    /// | others | as objects | |
    pub fn identities() -> Self {
        Self {
            foreign_block: 0,
            miss_block: 10,
            miss_ratio: 0.6,
            min_targets: 5,
            anomaly_factor: 0.25,
            stranger_factor: 1.0,
            ..Self::objects()
        }
    }

    pub(crate) fn for_style(style: ProbeStyle) -> Self {
        match style {
            ProbeStyle::Objects => Self::objects(),
            ProbeStyle::Identities => Self::identities(),
        }
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Self::objects()
    }
}

/// One enumerable endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// A short name, used in metrics labels and logs.
    pub name: String,
    /// The HTTP method, or `*` for any. Defaults to `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// The path pattern, with `{name}` parameters: `/api/accounts/{id}`.
    pub path: String,
    /// Where the target is.
    pub target: TargetConfig,
    /// Picks default thresholds. Defaults to `objects`.
    #[serde(default)]
    pub style: ProbeStyle,
    /// Whether a target equal to the actor's own account id is its own
    /// object (not counted). Defaults to true for `objects`, false for
    /// `identities`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_target: Option<bool>,
    /// How the response is classified.
    #[serde(default)]
    pub outcome: OutcomeConfig,
    /// Most bytes of body read for a `json` target. Defaults to 16,384.
    #[serde(default = "default_body_limit")]
    pub body_limit: usize,
    /// What happens to a larger body. Defaults to `refuse` for
    /// `identities` (padding a body past the limit would otherwise hide
    /// every guess) and `pass` for `objects`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oversized: Option<Oversized>,
    /// Overrides of the style's thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<toml::Table>,
    /// Thresholds given in code (the builder); wins over `thresholds`.
    #[serde(skip)]
    pub resolved: Option<Thresholds>,
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_body_limit() -> usize {
    16 * 1024
}

impl ProbeConfig {
    /// A probe with the defaults of `style`.
    pub fn new(
        name: impl Into<String>,
        method: impl Into<String>,
        path: impl Into<String>,
        target: TargetConfig,
        style: ProbeStyle,
    ) -> Self {
        Self {
            name: name.into(),
            method: method.into(),
            path: path.into(),
            target,
            style,
            self_target: None,
            outcome: OutcomeConfig::default(),
            body_limit: default_body_limit(),
            oversized: None,
            thresholds: None,
            resolved: None,
        }
    }

    /// An objects probe (see [`Thresholds::objects`]): the tell is
    /// *foreign* objects, so the guard must know which objects are the
    /// caller's own. By default a target equal to the caller's account id
    /// is its own (`/api/accounts/{id}/addressbook`). Where ids are not
    /// account ids (orders, invoices, documents), the handler says whose
    /// object it served with an [`Owner`](crate::Owner) in the response
    /// (or [`GuardBuilder::owns`](crate::GuardBuilder::owns) tells before
    /// the handler runs); an own object never counts, however many:
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use enumguard::{AccountId, GuardLayer, Owner, ProbeConfig, TargetConfig};
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// // Order 7000 + k belongs to account 42; order ids are not account ids.
    /// let owner_of = |order: u64| if order >= 7000 { 42u64 } else { 1 };
    /// let app = service_fn(move |req: http::Request<_>| async move {
    ///     let id: u64 = req.uri().path().rsplit('/').next().unwrap().parse().unwrap();
    ///     let mut res = http::Response::new(String::from("{...}"));
    ///     res.extensions_mut().insert(Owner(AccountId::from(owner_of(id))));
    ///     Ok::<_, std::convert::Infallible>(res)
    /// });
    /// let guard = GuardLayer::builder()
    ///     .probe(ProbeConfig::objects("orders", "GET", "/api/orders/{id}", TargetConfig::path("id")))
    ///     .account(|parts| parts.headers.get("x-user-id")?.to_str().ok().map(AccountId::new))
    ///     .build()
    ///     .unwrap();
    /// let svc = guard.layer(app);
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// // Account 42 reads 40 of its own orders: none is foreign, none refused
    /// // (15 foreign ones would block it).
    /// for k in 0..40 {
    ///     let mut req = http::Request::get(format!("/api/orders/{}", 7000 + k))
    ///         .header("x-user-id", "42")
    ///         .body(String::new())
    ///         .unwrap();
    ///     req.extensions_mut().insert(SocketAddr::from(([127, 0, 0, 1], 4000)));
    ///     let res = svc.clone().oneshot(req).await.unwrap();
    ///     assert_eq!(res.status(), 200);
    /// }
    /// # });
    /// ```
    pub fn objects(
        name: impl Into<String>,
        method: impl Into<String>,
        path: impl Into<String>,
        target: TargetConfig,
    ) -> Self {
        Self::new(name, method, path, target, ProbeStyle::Objects)
    }

    /// An identities probe (see [`Thresholds::identities`]).
    pub fn identities(
        name: impl Into<String>,
        method: impl Into<String>,
        path: impl Into<String>,
        target: TargetConfig,
    ) -> Self {
        Self::new(name, method, path, target, ProbeStyle::Identities)
    }

    /// Sets the outcome classification.
    pub fn outcome(mut self, outcome: OutcomeConfig) -> Self {
        self.outcome = outcome;
        self
    }

    /// Sets the thresholds (replacing the style's defaults).
    pub fn thresholds(mut self, thresholds: Thresholds) -> Self {
        self.resolved = Some(thresholds);
        self
    }

    /// Sets whether a target equal to the actor's account is its own.
    pub fn self_target(mut self, on: bool) -> Self {
        self.self_target = Some(on);
        self
    }

    /// Sets the body limit for `json` targets.
    pub fn body_limit(mut self, bytes: usize, oversized: Oversized) -> Self {
        self.body_limit = bytes;
        self.oversized = Some(oversized);
        self
    }

    pub(crate) fn effective_thresholds(&self, index: usize) -> Result<Thresholds, ConfigError> {
        if let Some(t) = &self.resolved {
            return Ok(t.clone());
        }
        let mut t = Thresholds::for_style(self.style);
        if let Some(over) = &self.thresholds {
            // Merge the override table over the defaults, field by field.
            let base = toml::Table::try_from(&t).map_err(|e| {
                ConfigError::invalid(format!("probes[{index}].thresholds"), "", e.to_string())
            })?;
            let mut merged = base;
            for (k, v) in over {
                if !merged.contains_key(k) {
                    return Err(ConfigError::invalid(
                        format!("probes[{index}].thresholds.{k}"),
                        v.to_string(),
                        "unknown threshold",
                    ));
                }
                if let (Some(toml::Value::Table(dst)), toml::Value::Table(src)) =
                    (merged.get_mut(k), v)
                {
                    for (k2, v2) in src {
                        if !dst.contains_key(k2) {
                            return Err(ConfigError::invalid(
                                format!("probes[{index}].thresholds.{k}.{k2}"),
                                v2.to_string(),
                                "unknown field",
                            ));
                        }
                        dst.insert(k2.clone(), v2.clone());
                    }
                } else {
                    merged.insert(k.clone(), v.clone());
                }
            }
            t = merged.try_into().map_err(|e: toml::de::Error| {
                ConfigError::invalid(
                    format!("probes[{index}].thresholds"),
                    over.to_string().trim().to_owned(),
                    e.message().to_owned(),
                )
            })?;
        }
        Ok(t)
    }
}

/// All settings of a guard. Build one in code with
/// [`GuardBuilder`](crate::GuardBuilder), or read it from TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `enforce` (default) or `observe`.
    pub mode: Mode,
    /// What to do without a peer address. Defaults to `refuse`.
    pub missing_peer: MissingPeer,
    /// IPv4 prefix of an `ip` actor. Defaults to 32.
    pub ip_v4_prefix: u8,
    /// IPv6 prefix of an `ip` actor: one customer usually holds a /64.
    /// Defaults to 64.
    pub ip_v6_prefix: u8,
    /// IPv4 prefix of a `subnet` actor. Defaults to 24.
    pub subnet_v4_prefix: u8,
    /// IPv6 prefix of a `subnet` actor. Defaults to 48.
    pub subnet_v6_prefix: u8,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` headers are believed,
    /// in CIDR notation. Defaults to none: headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// The header trusted proxies write: `x-forwarded-for` (default) or
    /// `forwarded` (RFC 7239). Only this one is read; a client-written copy
    /// of the other, which proxies pass through untouched, is ignored.
    pub forwarded_header: crate::actor::ForwardedHeader,
    /// Where the session token is. Defaults to none (no session actor).
    pub session: Option<SessionSource>,
    /// The key that session tokens are hashed with, 32 hex digits. Set it
    /// to share session actors across replicas. Defaults to a random key
    /// per process.
    pub session_key: Option<String>,
    /// Never counted nor refused.
    pub allow: ListConfig,
    /// Always refused (as blocked).
    pub deny: ListConfig,
    /// Memory bounds.
    pub limits: Limits,
    /// Quota of throttled actors.
    pub throttle: ThrottleConfig,
    /// Block durations and escalation.
    pub blocks: BlockConfig,
    /// Refusal statuses.
    pub responses: ResponseConfig,
    /// Linked suspicion.
    pub links: LinkConfig,
    /// The service-wide view.
    pub service_view: ServiceViewConfig,
    /// The enumerable endpoints. Defaults to none (the guard then only
    /// enforces verdicts set through the handle and the lists).
    pub probes: Vec<ProbeConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Enforce,
            missing_peer: MissingPeer::Refuse,
            ip_v4_prefix: 32,
            ip_v6_prefix: 64,
            subnet_v4_prefix: 24,
            subnet_v6_prefix: 48,
            trusted_proxies: Vec::new(),
            forwarded_header: crate::actor::ForwardedHeader::XForwardedFor,
            session: None,
            session_key: None,
            allow: ListConfig::default(),
            deny: ListConfig::default(),
            limits: Limits::default(),
            throttle: ThrottleConfig::default(),
            blocks: BlockConfig::default(),
            responses: ResponseConfig::default(),
            links: LinkConfig::default(),
            service_view: ServiceViewConfig::default(),
            probes: Vec::new(),
        }
    }
}

impl Config {
    /// Parses and validates a TOML document.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field and value at fault.
    pub fn from_toml_str(s: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(s).map_err(|e| ConfigError::from_toml(s, &e))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file.
    ///
    /// # Errors
    /// A [`ConfigError`] if the file cannot be read or is not valid.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            kind: ConfigErrorKind::Io,
            field: None,
            value: Some(path.display().to_string()),
            message: format!("cannot read {}: {e}", path.display()),
            file: None,
        })?;
        Self::from_toml_str(&text).map_err(|mut e| {
            e.file = Some(path.display().to_string());
            e
        })
    }

    /// Checks every field; what [`GuardBuilder::build`](crate::GuardBuilder::build)
    /// runs.
    ///
    /// # Errors
    /// The first invalid field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.compile().map(|_| ())
    }

    pub(crate) fn compile(&self) -> Result<Compiled, ConfigError> {
        let prefix = |field: &str, v: u8, max: u8| {
            if v > max {
                Err(ConfigError::invalid(
                    field,
                    v.to_string(),
                    format!("must be 0..={max}"),
                ))
            } else {
                Ok(v)
            }
        };
        prefix("ip_v4_prefix", self.ip_v4_prefix, 32)?;
        prefix("ip_v6_prefix", self.ip_v6_prefix, 128)?;
        prefix("subnet_v4_prefix", self.subnet_v4_prefix, 32)?;
        prefix("subnet_v6_prefix", self.subnet_v6_prefix, 128)?;
        let cidrs = |field: &str, list: &[String]| -> Result<Vec<Cidr>, ConfigError> {
            list.iter()
                .enumerate()
                .map(|(i, s)| {
                    s.parse::<Cidr>().map_err(|e| {
                        ConfigError::invalid(format!("{field}[{i}]"), s.clone(), e.to_string())
                    })
                })
                .collect()
        };
        let trusted = cidrs("trusted_proxies", &self.trusted_proxies)?;
        let allow = cidrs("allow.cidrs", &self.allow.cidrs)?;
        let deny = cidrs("deny.cidrs", &self.deny.cidrs)?;
        if let Some(SessionSource::Header(h) | SessionSource::Cookie(h)) = &self.session {
            let field = match &self.session {
                Some(SessionSource::Header(_)) => "session.header",
                _ => "session.cookie",
            };
            if h.is_empty() || http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(ConfigError::invalid(
                    field,
                    h.clone(),
                    "not a valid header or cookie name",
                ));
            }
        }
        let session_key = match &self.session_key {
            None => None,
            Some(k) => Some(parse_key(k).ok_or_else(|| {
                ConfigError::invalid("session_key", "<redacted>", "must be exactly 32 hex digits")
            })?),
        };
        if self.limits.max_actors < 16 {
            return Err(ConfigError::invalid(
                "limits.max_actors",
                self.limits.max_actors.to_string(),
                "must be at least 16",
            ));
        }
        if self.limits.max_verdicts < 16 {
            return Err(ConfigError::invalid(
                "limits.max_verdicts",
                self.limits.max_verdicts.to_string(),
                "must be at least 16",
            ));
        }
        if self.throttle.per_minute == 0 {
            return Err(ConfigError::invalid(
                "throttle.per_minute",
                "0",
                "must be at least 1",
            ));
        }
        if self.blocks.base_secs == 0 {
            return Err(ConfigError::invalid(
                "blocks.base_secs",
                "0",
                "must be at least 1",
            ));
        }
        if self.blocks.factor == 0 {
            return Err(ConfigError::invalid(
                "blocks.factor",
                "0",
                "must be at least 1",
            ));
        }
        if self.blocks.max_secs < self.blocks.base_secs {
            return Err(ConfigError::invalid(
                "blocks.max_secs",
                self.blocks.max_secs.to_string(),
                "must be at least blocks.base_secs",
            ));
        }
        for (field, status) in [
            ("responses.block_status", self.responses.block_status),
            ("responses.throttle_status", self.responses.throttle_status),
        ] {
            if !(400..=599).contains(&status) {
                return Err(ConfigError::invalid(
                    field,
                    status.to_string(),
                    "must be a 4xx or 5xx status",
                ));
            }
        }
        unit("links.boost", self.links.boost)?;
        if !(self.links.watch_factor.is_finite()
            && self.links.watch_factor > 0.0
            && self.links.watch_factor <= 1.0)
        {
            return Err(ConfigError::invalid(
                "links.watch_factor",
                self.links.watch_factor.to_string(),
                "must be in (0, 1]",
            ));
        }
        if self.service_view.per_address == 0 {
            return Err(ConfigError::invalid(
                "service_view.per_address",
                "0",
                "must be at least 1",
            ));
        }
        if self.links.history_hits > u16::MAX as u32 {
            return Err(ConfigError::invalid(
                "links.history_hits",
                self.links.history_hits.to_string(),
                format!("must be at most {}", u16::MAX),
            ));
        }
        if self.links.half_life_secs == 0 {
            return Err(ConfigError::invalid(
                "links.half_life_secs",
                "0",
                "must be at least 1",
            ));
        }
        if self.service_view.bucket_secs == 0 {
            return Err(ConfigError::invalid(
                "service_view.bucket_secs",
                "0",
                "must be at least 1",
            ));
        }
        unit("service_view.alpha", self.service_view.alpha)?;
        positive("service_view.ratio", self.service_view.ratio)?;
        let mut probes = Vec::with_capacity(self.probes.len());
        if self.probes.len() > 255 {
            return Err(ConfigError::invalid(
                "probes",
                self.probes.len().to_string(),
                "at most 255 probes",
            ));
        }
        for (i, p) in self.probes.iter().enumerate() {
            if self.probes[..i].iter().any(|q| q.name == p.name) {
                return Err(ConfigError::invalid(
                    format!("probes[{i}].name"),
                    p.name.clone(),
                    "another probe has this name",
                ));
            }
            probes.push(crate::probe::Probe::compile(i, p)?);
        }
        Ok(Compiled {
            trusted,
            allow,
            deny,
            session_key,
            probes,
        })
    }
}

fn unit(field: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            field,
            v.to_string(),
            "must be between 0 and 1",
        ))
    }
}

pub(crate) fn positive(field: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            field,
            v.to_string(),
            "must be a positive number",
        ))
    }
}

fn parse_key(k: &str) -> Option<(u64, u64)> {
    if k.len() != 32 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let a = u64::from_str_radix(&k[..16], 16).ok()?;
    let b = u64::from_str_radix(&k[16..], 16).ok()?;
    Some((a, b))
}

pub(crate) struct Compiled {
    pub(crate) trusted: Vec<Cidr>,
    pub(crate) allow: Vec<Cidr>,
    pub(crate) deny: Vec<Cidr>,
    pub(crate) session_key: Option<(u64, u64)>,
    pub(crate) probes: Vec<crate::probe::Probe>,
}

// Keep the compiled path pattern type referenced for docs.
#[allow(dead_code)]
type _Pattern = PathPattern;

/// What went wrong with a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Io,
    /// The TOML did not parse, or a value has the wrong type.
    Parse,
    /// A value parsed but is not acceptable.
    Invalid,
}

/// A configuration error that names the field and the bad value.
#[derive(Debug, Clone)]
pub struct ConfigError {
    kind: ConfigErrorKind,
    field: Option<String>,
    value: Option<String>,
    message: String,
    file: Option<String>,
}

impl ConfigError {
    pub(crate) fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind: ConfigErrorKind::Invalid,
            field: Some(field.into()),
            value: Some(value.into()),
            message: message.into(),
            file: None,
        }
    }

    fn from_toml(src: &str, e: &toml::de::Error) -> Self {
        let msg = e.message();
        let Some(span) = e.span() else {
            return Self {
                kind: ConfigErrorKind::Parse,
                field: None,
                value: None,
                message: msg.to_owned(),
                file: None,
            };
        };
        let pos = span.start.min(src.len());
        // The table the error is in: the last header at or before it.
        let mut prefix = String::new();
        let mut arrays: Vec<(String, usize)> = Vec::new();
        let mut offset = 0usize;
        let mut error_line = "";
        for line in src.split_inclusive('\n') {
            if offset > pos {
                break;
            }
            let t = line.trim();
            if pos < offset + line.len().max(1) {
                error_line = line;
            }
            if let Some(rest) = t.strip_prefix("[[") {
                let name = rest.split("]]").next().unwrap_or("").trim().to_owned();
                let n = match arrays.iter_mut().find(|(a, _)| *a == name) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        arrays.push((name.clone(), 0));
                        0
                    }
                };
                prefix = format!("{name}[{n}].");
            } else if let Some(rest) = t.strip_prefix('[') {
                let name = rest.split(']').next().unwrap_or("").trim();
                // A sub-table of an array element: `[probes.thresholds]`.
                prefix = match arrays
                    .iter()
                    .find(|(a, _)| name.starts_with(&format!("{a}.")))
                {
                    Some((a, n)) => format!("{a}[{n}].{}.", &name[a.len() + 1..]),
                    None => format!("{name}."),
                };
            }
            offset += line.len();
        }
        let named = |marker: &str| {
            msg.split_once(marker)
                .and_then(|(_, rest)| rest.split('`').next())
                .map(str::to_owned)
        };
        let line_key = error_line
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_owned())
            .filter(|k| !k.is_empty() && !k.starts_with('['));
        let (key, value) = if let Some(k) = named("missing field `") {
            (Some(k), None)
        } else if let Some(k) = named("unknown field `") {
            (Some(k), None)
        } else {
            let value = src
                .get(span.start..span.end.min(src.len()))
                .map(|v| v.trim().to_owned());
            (line_key, value)
        };
        let line = src[..pos].matches('\n').count() + 1;
        Self {
            kind: ConfigErrorKind::Parse,
            field: key.map(|k| format!("{prefix}{k}")),
            value,
            message: format!("line {line}: {msg}"),
            file: None,
        }
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// The field at fault, as a path (`probes[0].target`), when known.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The bad value, when known.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// The file the config came from, for [`Config::from_file`].
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("enumguard config: ")?;
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "`{field}`")?;
            if let Some(v) = &self.value {
                write!(f, " = `{v}`")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_default() {
        assert_eq!(Config::from_toml_str("").unwrap(), Config::default());
    }

    #[test]
    fn bad_cidr_names_field_and_value() {
        let e =
            Config::from_toml_str("[allow]\ncidrs = [\"10.0.0.0/8\", \"300.1.1.1\"]").unwrap_err();
        assert_eq!(e.kind(), ConfigErrorKind::Invalid);
        assert_eq!(e.field(), Some("allow.cidrs[1]"));
        assert_eq!(e.value(), Some("300.1.1.1"));
        assert!(e.to_string().contains("allow.cidrs[1]"), "{e}");
    }

    #[test]
    fn wrong_type_names_key() {
        let e = Config::from_toml_str("[limits]\nmax_actors = \"lots\"\n").unwrap_err();
        assert_eq!(e.kind(), ConfigErrorKind::Parse);
        assert_eq!(e.field(), Some("limits.max_actors"));
        assert_eq!(e.value(), Some("\"lots\""));
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn history_hits_fit_the_record() {
        let e = Config::from_toml_str("[links]\nhistory_hits = 70000\n").unwrap_err();
        assert_eq!(e.field(), Some("links.history_hits"));
        assert_eq!(e.value(), Some("70000"));
        assert!(Config::from_toml_str("[links]\nhistory_hits = 65535\n").is_ok());
    }

    #[test]
    fn unknown_field_is_an_error() {
        let e = Config::from_toml_str("mood = \"observe\"").unwrap_err();
        assert!(e.to_string().contains("mood"), "{e}");
    }

    /// `links.inherit` (suspicion handed to new accounts) is gone: a config
    /// that still sets it is refused with its name, not silently read.
    #[test]
    fn the_precision_settings_are_checked() {
        let e = Config::from_toml_str("[links]\ninherit = 0.5\n").unwrap_err();
        assert!(e.to_string().contains("inherit"), "{e}");
        let e = Config::from_toml_str("[links]\nwatch_factor = 0\n").unwrap_err();
        assert_eq!(e.field(), Some("links.watch_factor"));
        let e = Config::from_toml_str("[service_view]\nper_address = 0\n").unwrap_err();
        assert_eq!(e.field(), Some("service_view.per_address"));
        let bad = |field: &str, value: &str| {
            let toml = format!(
                "[[probes]]\nname = \"p\"\npath = \"/p/{{id}}\"\ntarget = {{ path = \"id\" }}\n[probes.thresholds]\n{field} = {value}\n"
            );
            Config::from_toml_str(&toml)
                .and_then(|c| crate::GuardLayer::from_config(c).map(|_| ()))
                .unwrap_err()
        };
        assert_eq!(
            bad("miss_cap", "0.5").field(),
            Some("probes[0].thresholds.miss_cap")
        );
        assert_eq!(
            bad("repeat_miss_ratio", "1.5").field(),
            Some("probes[0].thresholds.repeat_miss_ratio")
        );
        assert_eq!(
            bad("stranger_factor", "0").field(),
            Some("probes[0].thresholds.stranger_factor")
        );
        assert_eq!(
            bad("sequential_run", "256").field(),
            Some("probes[0].thresholds.sequential_run")
        );
    }

    #[test]
    fn bad_mode_is_an_error() {
        let e = Config::from_toml_str("mode = \"lenient\"").unwrap_err();
        assert_eq!(e.field(), Some("mode"));
        assert!(e.to_string().contains("lenient"), "{e}");
    }

    #[test]
    fn ranges_are_checked() {
        let e = Config::from_toml_str("ip_v6_prefix = 129").unwrap_err();
        assert_eq!(e.field(), Some("ip_v6_prefix"));
        let e = Config::from_toml_str("[responses]\nblock_status = 200").unwrap_err();
        assert_eq!(e.field(), Some("responses.block_status"));
        let e = Config::from_toml_str("session_key = \"abc\"").unwrap_err();
        assert_eq!(e.field(), Some("session_key"));
        assert!(
            !e.to_string().contains("abc"),
            "the key is never echoed: {e}"
        );
    }

    #[test]
    fn missing_file_is_io_error() {
        let e = Config::from_file("/nonexistent/enumguard.toml").unwrap_err();
        assert_eq!(e.kind(), ConfigErrorKind::Io);
        assert!(e.to_string().contains("/nonexistent/enumguard.toml"));
    }

    #[test]
    fn probe_threshold_override_merges() {
        let c = Config::from_toml_str(
            r#"
            [[probes]]
            name = "book"
            path = "/a/{id}"
            target = { path = "id" }
            [probes.thresholds]
            foreign_block = 7
            kind_factors = { ip = 3.0 }
            "#,
        )
        .unwrap();
        let t = c.probes[0].effective_thresholds(0).unwrap();
        assert_eq!(t.foreign_block, 7);
        assert_eq!(t.kind_factors.ip, 3.0);
        assert_eq!(t.kind_factors.subnet, 4.0);
        assert_eq!(t.miss_block, Thresholds::objects().miss_block);
        let e = Config::from_toml_str(
            r#"
            [[probes]]
            name = "book"
            path = "/a/{id}"
            target = { path = "id" }
            [probes.thresholds]
            foriegn_block = 7
            "#,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("probes[0].thresholds.foriegn_block"));
    }
}
