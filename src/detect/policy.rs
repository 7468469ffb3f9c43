//! The compiled policy: a [`Config`], validated once and turned into what
//! the hot path reads (probes, prefixes, lists, durations in nanoseconds).
//! Immutable: a reload compiles a new one and swaps it in whole.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use governor::Quota;
use http::Method;
use metrics::Counter;

use super::probes::{Probe, ProbeLive};
use crate::actor::{AccountId, ActorKey, ActorKind, Actors, Cidr, ForwardedHeader, hash128};
use crate::clock::secs_to_nanos;
use crate::config::{
    Config, ConfigError, MissingPeer, Mode, SessionSource, parse_cidrs, parse_key,
};

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

/// Requests a thread counts before it adds them to the policy's count.
const UNMATCHED_CHECK_EVERY: u32 = 4096;
/// Requests after which a probe that matched none is warned about (then
/// after four times as many, and so on: a rate-limited warning).
const UNMATCHED_WARN_AFTER: u64 = 16_384;

thread_local! {
    static SEEN: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The per-request counters, registered on first use (see
/// [`metrics`](crate::metrics)): kept as handles, so that no key is built
/// or looked up per request.
#[derive(Default)]
pub(crate) struct Hot {
    cell: OnceLock<HotCounters>,
}

pub(crate) struct HotCounters {
    pub(crate) requests: Counter,
    /// Per probe: hit, miss, denied, other.
    pub(crate) outcomes: Vec<[Counter; 4]>,
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
    pub(crate) block_base: u64,
    pub(crate) block_factor: u64,
    pub(crate) block_max: u64,
    pub(crate) throttle_for: u64,
    pub(crate) quota: Quota,
    pub(crate) boost: f64,
    pub(crate) watch_factor: f64,
    pub(crate) per_address: u32,
    pub(crate) half_life: u64,
    pub(crate) new_actor: u64,
    pub(crate) history_hits: u32,
    /// The config it was compiled from.
    pub(crate) config: Config,
    pub(crate) hot: Hot,
    /// The detector's generation this policy is (0 for the first; a
    /// reload's is the next).
    pub(crate) generation: u64,
    /// Requests counted for the unmatched-probe warning, and when the next
    /// warning is due.
    seen: std::sync::atomic::AtomicU64,
    next_warning: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("mode", &self.mode)
            .field("probes", &self.probes)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Validates `config` and compiles it. `slot_of` gives each probe its
    /// slot and the live state it keeps (by name, across reloads).
    pub(crate) fn compile(
        config: Config,
        random_session_key: (u64, u64),
        mut slot_of: impl FnMut(
            &str,
            &Config,
            usize,
        ) -> Result<(u8, Option<Arc<ProbeLive>>), ConfigError>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let c = &config;
        let mut probes = Vec::with_capacity(c.probes.len());
        for (i, p) in c.probes.iter().enumerate() {
            let (slot, live) = slot_of(&p.name, c, i)?;
            probes.push(Probe::compile(i, p, slot, &c.service_view, live)?);
        }
        let hashes = |list: &[String]| -> Vec<u128> {
            list.iter().map(|a| AccountId::new(a).hash()).collect()
        };
        let allow = parse_cidrs("allow.cidrs", &c.allow.cidrs)?;
        let deny = parse_cidrs("deny.cidrs", &c.deny.cidrs)?;
        let allow_accounts = hashes(&c.allow.accounts);
        let deny_accounts = hashes(&c.deny.accounts);
        // Validated above; never clamped: a 0 is the config's error.
        let nonzero = |field: &str, v: u32| {
            NonZeroU32::new(v).ok_or_else(|| ConfigError::invalid(field, "0", "must be at least 1"))
        };
        let per_minute = nonzero("throttle.per_minute", c.throttle.per_minute)?;
        let burst = nonzero("throttle.burst", c.throttle.burst)?;
        Ok(Self {
            mode: c.mode,
            missing_peer: c.missing_peer,
            ip_prefix: (c.ip_v4_prefix, c.ip_v6_prefix),
            subnet_prefix: (c.subnet_v4_prefix, c.subnet_v6_prefix),
            trusted: parse_cidrs("trusted_proxies", &c.trusted_proxies)?,
            forwarded_header: c.forwarded_header,
            no_lists: allow.is_empty()
                && deny.is_empty()
                && allow_accounts.is_empty()
                && deny_accounts.is_empty(),
            allow,
            deny,
            allow_accounts,
            deny_accounts,
            session_header: match &c.session {
                Some(SessionSource::Header(h)) => http::HeaderName::from_bytes(h.as_bytes()).ok(),
                _ => None,
            },
            session: c.session.clone(),
            session_key: c
                .session_key
                .as_deref()
                .and_then(parse_key)
                .unwrap_or(random_session_key),
            probes,
            block_base: secs_to_nanos(c.blocks.base_secs),
            block_factor: u64::from(c.blocks.factor),
            block_max: secs_to_nanos(c.blocks.max_secs),
            throttle_for: secs_to_nanos(c.throttle.duration_secs),
            quota: Quota::per_minute(per_minute).allow_burst(burst),
            boost: c.links.boost,
            watch_factor: c.links.watch_factor,
            per_address: c.service_view.per_address,
            half_life: secs_to_nanos(c.links.half_life_secs),
            new_actor: secs_to_nanos(c.links.new_actor_secs),
            history_hits: c.links.history_hits,
            hot: Hot::default(),
            generation: 0,
            seen: Default::default(),
            next_warning: std::sync::atomic::AtomicU64::new(UNMATCHED_WARN_AFTER),
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
            ProbeLive::note(&p.live.matched);
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

    /// The per-request counters.
    #[inline]
    pub(crate) fn hot(&self) -> &HotCounters {
        self.hot.cell.get_or_init(|| HotCounters {
            requests: metrics::counter!(crate::metrics::REQUESTS),
            outcomes: self
                .probes
                .iter()
                .map(|p| {
                    ["hit", "miss", "denied", "other"].map(|o| {
                        metrics::counter!(crate::metrics::PROBE_REQUESTS, "probe" => p.name.to_string(), "outcome" => o)
                    })
                })
                .collect(),
        })
    }

    /// The probe in slot `slot`, if this policy has it.
    pub(crate) fn by_slot(&self, slot: u8) -> Option<&Probe> {
        self.probes.iter().find(|p| p.slot == slot)
    }

    /// Counts a request that reached the guard, for the warning about
    /// probes that match none: a per-thread count, added to the policy's
    /// own every [`UNMATCHED_CHECK_EVERY`] requests (no shared line written
    /// per request).
    #[inline]
    pub(crate) fn note_request(&self) {
        if self.probes.is_empty() {
            return;
        }
        SEEN.with(|c| {
            let n = c.get() + 1;
            if n >= UNMATCHED_CHECK_EVERY {
                c.set(0);
                self.check_unmatched(u64::from(n));
            } else {
                c.set(n);
            }
        });
    }

    #[cold]
    fn check_unmatched(&self, n: u64) {
        use std::sync::atomic::Ordering;
        let seen = self.seen.fetch_add(n, Ordering::Relaxed) + n;
        let next = self.next_warning.load(Ordering::Relaxed);
        if seen < next
            || self
                .next_warning
                .compare_exchange(
                    next,
                    next.saturating_mul(4),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        for p in &self.probes {
            if !p.live.matched.load(Ordering::Relaxed) {
                tracing::warn!(
                    target: "enumguard",
                    probe = %p.name,
                    path = %p.pattern(),
                    requests = seen,
                    "enumguard probe has matched none of the requests that reached the guard: \
                     check its method and path against the service's routes"
                );
            }
        }
    }

    /// How long the `strikes`-th block lasts.
    pub(crate) fn block_duration(&self, strikes: u32) -> u64 {
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
