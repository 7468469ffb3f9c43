//! The compiled policy: a [`Config`], parsed once and turned into what
//! the hot path reads (probes, prefixes, lists, durations in nanoseconds).
//! Plain data: a reload compiles a new one and swaps it in whole, and the
//! live state stays with the detector (see `live.rs`).

use std::net::IpAddr;
use std::ops::Range;

use governor::Quota;
use http::Method;

use super::probes::Probe;
use crate::actor::{AccountId, ActorKey, ActorKind, Actors, Cidr, ForwardedHeader, hash128};
use crate::clock::Span;
use crate::config::{Config, ConfigError, MissingPeer, Mode, SessionSource};

/// A request matched to a probe: which one, and where its path target lies
/// in the request's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub(crate) index: u8,
    pub(crate) capture: Option<Range<usize>>,
}

impl Match {
    pub(crate) fn probe_index(&self) -> usize {
        self.index as usize
    }

    /// The byte range of the path target in the path the probe matched
    /// (path probes only).
    pub fn capture(&self) -> Option<Range<usize>> {
        self.capture.clone()
    }
}

/// A validated, compiled [`Config`]: what a [`Detector`](super::Detector)
/// decides by. Get the current one with
/// [`Detector::policy`](super::Detector::policy).
pub struct Policy {
    pub(crate) mode: Mode,
    pub(crate) missing_peer: MissingPeer,
    ip_prefix: (u8, u8),
    subnet_prefix: (u8, u8),
    pub(crate) trusted: Vec<Cidr>,
    pub(crate) forwarded_header: ForwardedHeader,
    pub(crate) allow: Vec<Cidr>,
    pub(crate) deny: Vec<Cidr>,
    pub(crate) allow_accounts: Vec<u128>,
    pub(crate) deny_accounts: Vec<u128>,
    /// Neither allow nor deny lists: the common case, one test.
    pub(crate) no_lists: bool,
    pub(crate) session: Option<SessionSource>,
    /// The session header's name, parsed once (a `&str` lookup parses it
    /// on every request).
    pub(crate) session_header: Option<http::HeaderName>,
    session_key: (u64, u64),
    pub(crate) probes: Vec<Probe>,
    pub(crate) block_base: Span,
    pub(crate) block_factor: u64,
    pub(crate) block_max: Span,
    pub(crate) throttle_for: Span,
    pub(crate) quota: Quota,
    pub(crate) boost: f64,
    pub(crate) watch_factor: f64,
    pub(crate) per_address: u32,
    pub(crate) half_life: Span,
    pub(crate) new_actor: Span,
    pub(crate) history_hits: u32,
    /// The config it was compiled from.
    pub(crate) config: Config,
    /// The detector's generation this policy is (0 for the first; a
    /// reload's is the next).
    pub(crate) generation: u64,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("mode", &self.mode)
            .field("probes", &self.probes)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Checks this config and compiles it into the [`Policy`] a
    /// [`Detector`](super::Detector) decides by: the one parse of what it
    /// holds as text (CIDRs, keys, patterns, thresholds), which
    /// [`validate`](Config::validate) runs too. Sessions are keyed with a
    /// random key when the config sets no `session_key`.
    ///
    /// ```
    /// use enumguard::{Config, ProbeConfig, TargetConfig};
    ///
    /// let mut config = Config::default();
    /// config.probes.push(ProbeConfig::objects(
    ///     "orders", "GET", "/orders/{id}", TargetConfig::path("id"),
    /// ));
    /// let policy = config.compile().unwrap();
    /// assert_eq!(policy.probe_names().collect::<Vec<_>>(), ["orders"]);
    /// assert!(policy.route(&http::Method::GET, "/orders/7").is_some());
    /// ```
    ///
    /// # Errors
    /// The first invalid field.
    pub fn compile(&self) -> Result<Policy, ConfigError> {
        Policy::compile(self.clone(), random_key(), |_, i| Ok(i as u8))
    }
}

impl Policy {
    /// Checks and compiles `config`. `slot_of` gives each probe (by name
    /// and index) its slot: the byte in each record's key.
    pub(crate) fn compile(
        config: Config,
        random_session_key: (u64, u64),
        mut slot_of: impl FnMut(&str, usize) -> Result<u8, ConfigError>,
    ) -> Result<Self, ConfigError> {
        let parsed = config.parse()?;
        let c = &config;
        let mut probes = Vec::with_capacity(c.probes.len());
        for (i, (p, parts)) in c.probes.iter().zip(parsed.probes).enumerate() {
            let slot = slot_of(&p.name, i)?;
            probes.push(Probe::compile(parts, p, slot, &c.service_view));
        }
        let hashes = |list: &[String]| -> Vec<u128> {
            list.iter().map(|a| AccountId::new(a).hash()).collect()
        };
        let allow_accounts = hashes(&c.allow.accounts);
        let deny_accounts = hashes(&c.deny.accounts);
        // Never 0: the types say so.
        let (per_minute, burst) = (c.throttle.per_minute, c.throttle.burst);
        Ok(Self {
            mode: c.mode,
            missing_peer: c.missing_peer,
            ip_prefix: (c.ip_v4_prefix, c.ip_v6_prefix),
            subnet_prefix: (c.subnet_v4_prefix, c.subnet_v6_prefix),
            trusted: parsed.trusted,
            forwarded_header: c.forwarded_header,
            no_lists: parsed.allow.is_empty()
                && parsed.deny.is_empty()
                && allow_accounts.is_empty()
                && deny_accounts.is_empty(),
            allow: parsed.allow,
            deny: parsed.deny,
            allow_accounts,
            deny_accounts,
            session_header: parsed.session_header,
            session: c.session.clone(),
            session_key: parsed.session_key.unwrap_or(random_session_key),
            probes,
            block_base: Span::from_secs(c.blocks.base_secs),
            block_factor: u64::from(c.blocks.factor.get()),
            block_max: Span::from_secs(c.blocks.max_secs),
            throttle_for: Span::from_secs(c.throttle.duration_secs),
            quota: Quota::per_minute(per_minute).allow_burst(burst),
            boost: c.links.boost,
            watch_factor: c.links.watch_factor,
            per_address: c.service_view.per_address.get(),
            half_life: Span::from_secs(c.links.half_life_secs),
            new_actor: Span::from_secs(c.links.new_actor_secs),
            history_hits: c.links.history_hits,
            generation: 0,
            config,
        })
    }

    /// `Enforce` or `Observe`.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The config this policy was compiled from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The probes' names, in config order.
    pub fn probe_names(&self) -> impl Iterator<Item = &str> {
        self.probes.iter().map(|p| &*p.name)
    }

    /// The first probe a request with this method and path is for.
    #[inline]
    pub fn route(&self, method: &Method, path: &str) -> Option<Match> {
        self.probes.iter().enumerate().find_map(|(i, p)| {
            let capture = p.matches(method, path)?;
            Some(Match {
                index: i as u8,
                capture,
            })
        })
    }

    /// The actors of a request from plain facts: the client address (after
    /// the forwarding walk; `None` when the peer is unknown), the raw
    /// session token, the account. Every adapter derives keys here, so the
    /// tower guard, a replay and an operator's ban agree on them.
    pub fn actors(
        &self,
        addr: Option<IpAddr>,
        session_token: Option<&[u8]>,
        account: Option<AccountId>,
    ) -> Actors {
        let mut actors = Actors::default();
        match addr {
            Some(ip) => {
                actors.addr = Some(ip);
                actors.ip = Some(self.ip_key(ip));
                actors.subnet = Some(self.subnet_key(ip));
            }
            None => actors.ip = Some(Actors::unknown_ip()),
        }
        actors.session = session_token
            .filter(|t| !t.is_empty())
            .map(|t| self.session_key_of(t));
        actors.account = account;
        actors
    }

    /// Adds the session of the last of several distinct session values
    /// (the first is the request's session; see `actor/session.rs`).
    pub(crate) fn add_last_session(&self, actors: &mut Actors, last: &[u8]) {
        actors.session_alt = Some(self.session_key_of(last));
    }

    /// The `ip` actor of an address.
    pub fn ip_key(&self, ip: IpAddr) -> ActorKey {
        ActorKey::ip(ip, self.ip_prefix.0, self.ip_prefix.1, ActorKind::Ip)
    }

    /// The `subnet` actor of an address.
    pub fn subnet_key(&self, ip: IpAddr) -> ActorKey {
        ActorKey::ip(
            ip,
            self.subnet_prefix.0,
            self.subnet_prefix.1,
            ActorKind::Subnet,
        )
    }

    /// The `session` actor of a raw token (a keyed hash; the token is not kept).
    pub fn session_key_of(&self, token: &[u8]) -> ActorKey {
        ActorKey::hashed(ActorKind::Session, hash128(self.session_key, token))
    }

    /// The key sessions are hashed with (the config's `session_key`, parsed
    /// once, or the detector's random one).
    #[cfg(feature = "redis")]
    pub(crate) fn session_secret(&self) -> (u64, u64) {
        self.session_key
    }

    /// The probe in slot `slot`, if this policy has it.
    pub(crate) fn by_slot(&self, slot: u8) -> Option<&Probe> {
        self.probes.iter().find(|p| p.slot == slot)
    }

    /// How long the `strikes`-th block lasts.
    pub(crate) fn block_duration(&self, strikes: u32) -> Span {
        let mut d = self.block_base;
        for _ in 1..strikes {
            d = d.saturating_mul(self.block_factor);
            if d >= self.block_max {
                break;
            }
        }
        d.min(self.block_max)
    }
}

/// A random key per process, from the standard library's randomly seeded
/// hasher (no extra dependency).
pub(crate) fn random_key() -> (u64, u64) {
    use std::hash::{BuildHasher, Hasher};
    let s = std::collections::hash_map::RandomState::new();
    let mut a = s.build_hasher();
    a.write_u64(0x5e55_1011);
    let mut b = s.build_hasher();
    b.write_u64(0x6b65_7973);
    (a.finish(), b.finish())
}
