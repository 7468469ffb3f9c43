//! The settings and their defaults: [`Config`] and its sections.

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

use super::ProbeConfig;
use super::validate::{REDACTED, redact};

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
#[non_exhaustive]
pub enum SessionSource {
    /// A request header, e.g. `authorization` or `x-session`.
    Header(String),
    /// A cookie, e.g. `sid`.
    Cookie(String),
}

/// Allowlists and denylists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ListConfig {
    /// Networks in CIDR notation. Defaults to none.
    pub cidrs: Vec<String>,
    /// Account ids. Defaults to none.
    pub accounts: Vec<String>,
}

/// Memory bounds. Each map whose keys an attacker chooses has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// Most (actor, probe) signal records kept, in a table of this many
    /// slots (188 bytes each) allocated when the guard is built, its pages
    /// mapped as keys land in them. A new key whose bucket (16 slots) is
    /// full evicts one of its records: idle and unsuspicious ones first;
    /// current suspects only where 15 of the 16 are suspects. Defaults
    /// to 200,000.
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

/// The quota of a throttled actor (a governor GCRA quota), on the probe it
/// was throttled on: the first step for an actor whose evidence is still
/// short of a block. It slows that endpoint only, and leaves a person at
/// human pace room (one request every two or three seconds, after a burst),
/// while a script's pace is refused; an actor that presses on with new
/// targets is blocked as before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ThrottleConfig {
    /// Requests a throttled actor may make per minute: at least 1 (a 0 in
    /// TOML is an error naming the field). Defaults to 20.
    pub per_minute: NonZeroU32,
    /// Burst allowance on top of the rate: at least 1 (0 is an error, not
    /// read as 1). Defaults to 10.
    pub burst: NonZeroU32,
    /// How long a throttle lasts after the last evidence for it, in
    /// seconds. Defaults to 600.
    pub duration_secs: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            per_minute: nonzero(20),
            burst: nonzero(10),
            duration_secs: 600,
        }
    }
}

/// How long blocks last and how they grow for repeat offenders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BlockConfig {
    /// The first block, in seconds. Defaults to 900 (15 minutes).
    pub base_secs: u64,
    /// Each further block of the same actor is this many times longer: at
    /// least 1 (1 keeps every block as long as the first). Defaults to 4.
    pub factor: NonZeroU32,
    /// No block is longer than this, in seconds. Defaults to 86,400 (a day).
    pub max_secs: u64,
}

impl Default for BlockConfig {
    fn default() -> Self {
        Self {
            base_secs: 900,
            factor: nonzero(4),
            max_secs: 86_400,
        }
    }
}

/// Status codes of refusals (the rest of a refusal can be replaced with
/// [`GuardBuilder::on_refusal`](crate::GuardBuilder::on_refusal)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct ServiceViewConfig {
    /// Length of one bucket, in seconds. The view compares the last two
    /// buckets with the baseline. Defaults to 60.
    pub bucket_secs: u64,
    /// Requests in the last two buckets before the view may call the
    /// service anomalous: at least 1. Defaults to 40.
    pub min_requests: NonZeroU32,
    /// Requests of one address (its `ip` actor) per probe window that the
    /// view counts; the rest of that address's requests are left out. One
    /// busy address (an office signing up its staff, a NAT) is judged by its
    /// own thresholds and its kind factor, and cannot make the service look
    /// anomalous by itself: the view is for attacks spread over many
    /// addresses. At least 1. Defaults to 10.
    pub per_address: NonZeroU32,
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
            min_requests: nonzero(40),
            per_address: nonzero(10),
            ratio: 3.0,
            margin: 0.25,
            alpha: 0.05,
        }
    }
}

/// Verdicts shared by many replicas through Redis (feature `redis`): one
/// server (`redis_url`) or a Redis Cluster (`redis_cluster`), never both.
///
/// ```toml
/// [cluster]
/// redis_url = "redis://:password@10.0.0.5:6379/0"   # rediss:// for TLS
/// # or, for a Redis Cluster, some of its nodes:
/// # redis_cluster = ["redis://10.0.0.5:7000", "redis://10.0.0.6:7000"]
/// key_prefix = "enumguard:mailroom"
/// ```
///
/// Its `Debug` shows the URLs with their passwords redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// The Redis server: `redis://[:password@]host:port[/db]`, `rediss://`
    /// for TLS (`rediss://host:port/#insecure` accepts any certificate, only
    /// with the feature `redis-insecure-tls`; without it, a config error), or
    /// `unix:///path`. Required unless `redis_cluster` is given.
    pub redis_url: String,
    /// Some nodes of a Redis Cluster (cluster mode), each
    /// `redis://[:password@]host:port` or `rediss://...`: the others are
    /// found from them. Instead of `redis_url`.
    pub redis_cluster: Vec<String>,
    /// Prefix of every key and channel, so that several services can share
    /// one Redis. Defaults to `enumguard`.
    pub key_prefix: String,
    /// How often, at most, a replica's batched changes are sent, in
    /// milliseconds. Defaults to 100.
    pub sync_interval_ms: u64,
    /// This replica's name in messages. Defaults to a random one.
    pub replica_id: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: String::new(),
            redis_cluster: Vec::new(),
            key_prefix: "enumguard".into(),
            sync_interval_ms: 100,
            replica_id: None,
        }
    }
}

impl ClusterConfig {
    /// Replicas that share one Redis server at `url`; the other settings at
    /// their defaults (set them on the value).
    ///
    /// ```
    /// let mut cluster = enumguard::config::ClusterConfig::redis("redis://10.0.0.5:6379");
    /// cluster.key_prefix = "enumguard:mailroom".into();
    /// let mut config = enumguard::Config::default();
    /// config.cluster = Some(cluster);
    /// assert_eq!(config.cluster.unwrap().sync_interval_ms, 100);
    /// ```
    pub fn redis(url: impl Into<String>) -> Self {
        Self {
            redis_url: url.into(),
            ..Self::default()
        }
    }

    /// Replicas that share a Redis Cluster, found from some of its `nodes`.
    pub fn redis_cluster(nodes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            redis_cluster: nodes.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }
}

/// All settings of a guard. Build one in code with
/// [`GuardBuilder`](crate::GuardBuilder), or read it from TOML.
///
/// Its `Debug` never shows a secret: `session_key` and the passwords in
/// Redis URLs print as `<redacted>` (so does [`Config::redacted`], which
/// `enumguard check-config` prints).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
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
    /// Replicas sharing verdicts through Redis. Defaults to none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConfig>,
    /// `enumguard proxy`'s own settings (feature `proxy`); the library
    /// ignores them. Defaults to none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<super::ProxyConfig>,
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
            cluster: None,
            proxy: None,
        }
    }
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes: Vec<String> = self.redis_cluster.iter().map(|u| redact(u)).collect();
        f.debug_struct("ClusterConfig")
            .field("redis_url", &redact(&self.redis_url))
            .field("redis_cluster", &nodes)
            .field("key_prefix", &self.key_prefix)
            .field("sync_interval_ms", &self.sync_interval_ms)
            .field("replica_id", &self.replica_id)
            .finish()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("mode", &self.mode)
            .field("missing_peer", &self.missing_peer)
            .field("ip_v4_prefix", &self.ip_v4_prefix)
            .field("ip_v6_prefix", &self.ip_v6_prefix)
            .field("subnet_v4_prefix", &self.subnet_v4_prefix)
            .field("subnet_v6_prefix", &self.subnet_v6_prefix)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("forwarded_header", &self.forwarded_header)
            .field("session", &self.session)
            .field("session_key", &self.session_key.as_ref().map(|_| REDACTED))
            .field("allow", &self.allow)
            .field("deny", &self.deny)
            .field("limits", &self.limits)
            .field("throttle", &self.throttle)
            .field("blocks", &self.blocks)
            .field("responses", &self.responses)
            .field("links", &self.links)
            .field("service_view", &self.service_view)
            .field("probes", &self.probes)
            .field("cluster", &self.cluster)
            .field("proxy", &self.proxy.as_ref().map(|p| p.redacted()))
            .finish()
    }
}

/// A default that is not zero (a constant: the `expect` cannot fire).
const fn nonzero(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => panic!("a zero default"),
    }
}
