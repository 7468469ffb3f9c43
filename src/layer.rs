//! [`GuardLayer`] and its [`GuardBuilder`].

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use http::StatusCode;
use http::request::Parts;
use tower_layer::Layer;

use crate::actor::{AccountId, AsAccountId};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::{Config, ConfigError, MissingPeer, Mode, ProbeConfig, SessionSource};
use crate::engine::Engine;
use crate::handle::GuardHandle;
use crate::response::{DefaultRefusal, OnRefusal};
use crate::service::{AccountFn, Guard, Shared};
use crate::verdict::Table;

/// The enumguard layer. Wrap a router or any
/// `Service<Request<GuardBody<B>>>` with it.
///
/// Clones share one state: every service the layer makes sees the same
/// actors and verdicts, and so does the [`GuardHandle`].
///
/// ```
/// use enumguard::{GuardLayer, ProbeConfig, TargetConfig};
///
/// let layer = GuardLayer::builder()
///     .probe(ProbeConfig::objects("addressbook", "GET", "/api/accounts/{id}/addressbook", TargetConfig::path("id")))
///     .account(|parts| {
///         parts.headers.get("x-account").and_then(|v| v.to_str().ok()).map(enumguard::AccountId::new)
///     })
///     .build()
///     .expect("valid config");
/// let router: axum::Router = axum::Router::new().layer(layer);
/// # let _ = router;
/// ```
#[derive(Clone)]
#[must_use]
pub struct GuardLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for GuardLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardLayer")
            .field("mode", &self.shared.mode)
            .field("probes", &self.shared.engine.probes.len())
            .finish_non_exhaustive()
    }
}

impl GuardLayer {
    /// A builder with every default (see [`Config`]).
    pub fn builder() -> GuardBuilder {
        GuardBuilder::default()
    }

    /// A layer from a validated config (no account source, system clock).
    ///
    /// # Errors
    /// The config's first invalid field.
    pub fn from_config(config: Config) -> Result<Self, ConfigError> {
        GuardBuilder::default().config(config).build()
    }

    /// The operator's handle: ban, unban, inspect.
    pub fn handle(&self) -> GuardHandle {
        GuardHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Builds a [`GuardLayer`]: the settings of [`Config`] plus what only code
/// can give (the account source, the clock, the refusal hook).
#[derive(Default)]
#[must_use]
pub struct GuardBuilder {
    config: Config,
    account: Option<AccountFn>,
    owns: Option<crate::service::OwnsFn>,
    clock: Option<Arc<dyn Clock>>,
    responder: Option<Arc<dyn OnRefusal>>,
}

impl std::fmt::Debug for GuardBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl GuardBuilder {
    /// Replaces every setting with `config` (from TOML, say). Builder calls
    /// after this one change it further.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// `Enforce` or `Observe`. Defaults to `Enforce`.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.config.mode = mode;
        self
    }

    /// Proxies (CIDRs) whose forwarding headers are believed. Defaults to
    /// none. See the proxy caveat in the [`actor`](crate::actor) docs.
    pub fn trusted_proxies<I, T>(mut self, cidrs: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.config.trusted_proxies = cidrs.into_iter().map(Into::into).collect();
        self
    }

    /// The header trusted proxies write. Defaults to
    /// [`ForwardedHeader::XForwardedFor`](crate::actor::ForwardedHeader).
    pub fn forwarded_header(mut self, which: crate::actor::ForwardedHeader) -> Self {
        self.config.forwarded_header = which;
        self
    }

    /// The session token is this header's value (hashed). Defaults to none.
    pub fn session_header(mut self, name: impl Into<String>) -> Self {
        self.config.session = Some(SessionSource::Header(name.into()));
        self
    }

    /// The session token is this cookie's value (hashed). Defaults to none.
    pub fn session_cookie(mut self, name: impl Into<String>) -> Self {
        self.config.session = Some(SessionSource::Cookie(name.into()));
        self
    }

    /// The account of a request, from its head. Runs on requests the guard
    /// needs it for (probe requests, and all requests while a ban or an
    /// account/session block is held or account lists exist): keep it cheap
    /// (a token lookup). Defaults to none.
    ///
    /// # Security
    /// The account must come from something the client cannot forge (a
    /// verified session or token), never from a header the client writes:
    /// a target equal to the account is the actor's *own* and is not
    /// counted, so a forged account would make every target "own".
    pub fn account<F>(mut self, f: F) -> Self
    where
        F: Fn(&Parts) -> Option<AccountId> + Send + Sync + 'static,
    {
        self.account = Some(Arc::new(f));
        self
    }

    /// Tells, before the handler runs, whether a probe request's target is
    /// the caller's own object: `f(parts, probe_name, target)` (the target
    /// as it appears in the path, query or header, decoded). Use it when the
    /// application can tell cheaply from the request (an order id that
    /// carries its owner, a small cache of the caller's ids); an own object
    /// never counts as foreign, however many distinct ones a user reads.
    /// It runs for probe requests whose target is not already the caller's
    /// own account id, and not for JSON body targets (put an [`Owner`] in
    /// the response there). Defaults to none.
    ///
    /// Where ownership is known only after the handler has loaded the
    /// object, put an [`Owner`] into the response extensions instead. The
    /// hook has one advantage: the pre-check, which runs before the handler,
    /// knows too. Once a probe's responses carry an `Owner`, the pre-check
    /// no longer refuses an actor that has no evidence yet on a guess (its
    /// target may be its own), so a fresh scraping account gets its first
    /// foreign read out, and is stopped at the next.
    ///
    /// [`Owner`]: crate::Owner
    pub fn owns<F>(mut self, f: F) -> Self
    where
        F: Fn(&Parts, &str, &[u8]) -> bool + Send + Sync + 'static,
    {
        self.owns = Some(Arc::new(f));
        self
    }

    /// The account of a request is a `T` that an authentication layer put
    /// into the request extensions. That layer must run before the guard:
    /// in axum, add it with `.layer(...)` *after* the guard's `.layer(...)`.
    pub fn account_from_extension<T>(self) -> Self
    where
        T: AsAccountId + Send + Sync + 'static,
    {
        self.account(|parts| parts.extensions.get::<T>().map(AsAccountId::account_id))
    }

    /// Adds a probe.
    pub fn probe(mut self, probe: ProbeConfig) -> Self {
        self.config.probes.push(probe);
        self
    }

    /// Never counts nor refuses these networks.
    pub fn allow_cidr(mut self, cidr: impl Into<String>) -> Self {
        self.config.allow.cidrs.push(cidr.into());
        self
    }

    /// Always refuses these networks.
    pub fn deny_cidr(mut self, cidr: impl Into<String>) -> Self {
        self.config.deny.cidrs.push(cidr.into());
        self
    }

    /// Never counts nor refuses this account.
    pub fn allow_account(mut self, id: impl Into<String>) -> Self {
        self.config.allow.accounts.push(id.into());
        self
    }

    /// Always refuses this account.
    pub fn deny_account(mut self, id: impl Into<String>) -> Self {
        self.config.deny.accounts.push(id.into());
        self
    }

    /// Most signal records kept. Defaults to 200,000.
    pub fn max_actors(mut self, n: usize) -> Self {
        self.config.limits.max_actors = n;
        self
    }

    /// Most verdicts kept. Defaults to 100,000.
    pub fn max_verdicts(mut self, n: usize) -> Self {
        self.config.limits.max_verdicts = n;
        self
    }

    /// What happens without a peer address. Defaults to
    /// [`MissingPeer::Refuse`].
    pub fn missing_peer(mut self, m: MissingPeer) -> Self {
        self.config.missing_peer = m;
        self
    }

    /// The clock. Defaults to [`SystemClock`]; tests pass a
    /// [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Builds refusal responses. Defaults to [`DefaultRefusal`] with the
    /// configured statuses.
    pub fn on_refusal(mut self, hook: impl OnRefusal) -> Self {
        self.responder = Some(Arc::new(hook));
        self
    }

    /// The settings so far.
    pub fn config_ref(&self) -> &Config {
        &self.config
    }

    /// Validates the settings and builds the layer.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid field.
    pub fn build(self) -> Result<GuardLayer, ConfigError> {
        let c = self.config;
        let compiled = c.compile()?;
        let clock = SharedClock(self.clock.unwrap_or_else(|| Arc::new(SystemClock::new())));
        // Records keep coarse times as u32 seconds of the clock.
        let secs = clock.now() / 1_000_000_000;
        if secs > crate::clock::MAX_ORIGIN_SECS {
            return Err(ConfigError::invalid(
                "clock",
                format!("{secs} s since its origin"),
                format!(
                    "the clock's origin must be at most {} s (about 68 years) in the past",
                    crate::clock::MAX_ORIGIN_SECS
                ),
            ));
        }
        let per_minute = NonZeroU32::new(c.throttle.per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(c.throttle.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = governor::Quota::per_minute(per_minute).allow_burst(burst);
        let table = Table::new(c.limits.max_verdicts, quota, clock.clone());
        let engine = Engine::new(&c, compiled.probes, table);
        let responder = self.responder.unwrap_or_else(|| {
            Arc::new(DefaultRefusal::new(
                StatusCode::from_u16(c.responses.block_status)
                    .unwrap_or(StatusCode::TOO_MANY_REQUESTS),
                StatusCode::from_u16(c.responses.throttle_status)
                    .unwrap_or(StatusCode::TOO_MANY_REQUESTS),
            ))
        });
        let session_key = compiled.session_key.unwrap_or_else(random_key);
        let shared = Shared {
            engine,
            clock,
            mode: c.mode,
            missing_peer: c.missing_peer,
            ip_prefix: (c.ip_v4_prefix, c.ip_v6_prefix),
            subnet_prefix: (c.subnet_v4_prefix, c.subnet_v6_prefix),
            trusted: compiled.trusted,
            forwarded_header: c.forwarded_header,
            allow: compiled.allow,
            deny: compiled.deny,
            allow_accounts: c
                .allow
                .accounts
                .iter()
                .map(|a| AccountId::new(a).hash())
                .collect(),
            deny_accounts: c
                .deny
                .accounts
                .iter()
                .map(|a| AccountId::new(a).hash())
                .collect(),
            session_header: match &c.session {
                Some(SessionSource::Header(h)) => http::HeaderName::from_bytes(h.as_bytes()).ok(),
                _ => None,
            },
            session: c.session.clone(),
            session_key,
            target_key: random_key(),
            account: self.account,
            owns: self.owns,
            responder,
            warned_missing_peer: AtomicBool::new(false),
            hot: crate::metrics::Hot::default(),
        };
        Ok(GuardLayer {
            shared: Arc::new(shared),
        })
    }
}

/// A random key per process, from the standard library's randomly seeded
/// hasher (no extra dependency).
fn random_key() -> (u64, u64) {
    use std::hash::{BuildHasher, Hasher};
    let s = std::collections::hash_map::RandomState::new();
    let mut a = s.build_hasher();
    a.write_u64(0x5e55_1011);
    let mut b = s.build_hasher();
    b.write_u64(0x6b65_7973);
    (a.finish(), b.finish())
}
