//! [`GuardLayer`] and its [`GuardBuilder`].

use std::sync::Arc;

use http::request::Parts;
use tower_layer::Layer;

use super::handle::GuardHandle;
use super::response::OnRefusal;
use super::service::Guard;
use super::shared::{AccountFn, OwnsFn, Shared};
use crate::actor::{AccountId, AsAccountId};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::{Config, ConfigError, MissingPeer, Mode, ProbeConfig, SessionSource};
use crate::detect::Detector;

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
            .field("policy", &*self.shared.core().policy())
            .finish_non_exhaustive()
    }
}

impl GuardLayer {
    /// A builder with every default (see [`Config`]).
    pub fn builder() -> GuardBuilder {
        GuardBuilder::default()
    }

    /// A layer from a config, with no account source and the system
    /// clock. To add what only code gives (the account source, the
    /// ownership hook, a clock), use the builder: `GuardLayer::builder()
    /// .config(config).account(...)`, in any order.
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
        Guard::new(inner, self.shared.clone())
    }
}

/// Builds a [`GuardLayer`]: the settings of [`Config`] plus what only code
/// can give (the account source, the clock, the refusal hook).
#[derive(Default)]
#[must_use]
pub struct GuardBuilder {
    /// The settings: [`config`](Self::config)'s, with every other call's
    /// change applied over them.
    config: Config,
    /// The changes the other calls made, in order: replayed over a config
    /// given later, so that the order of the calls does not matter.
    edits: Vec<Edit>,
    account: Option<AccountFn>,
    owns: Option<OwnsFn>,
    clock: Option<Arc<dyn Clock>>,
    responder: Option<Arc<dyn OnRefusal>>,
    seed: Option<u64>,
    access: Option<super::access::AccessFn>,
}

type Edit = Arc<dyn Fn(&mut Config) + Send + Sync>;

impl std::fmt::Debug for GuardBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl GuardBuilder {
    /// Starts from `config` (from TOML, say). The other calls change it
    /// further whether they come before or after this one: a probe added
    /// with [`probe`](Self::probe) is added to `config`'s probes, a
    /// [`mode`](Self::mode) replaces `config`'s mode. Called twice, the last
    /// config is the base.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        for e in &self.edits {
            e(&mut self.config);
        }
        self
    }

    /// Applies a change now, and again over a config given later.
    fn edit(mut self, f: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        f(&mut self.config);
        self.edits.push(Arc::new(f));
        self
    }

    /// `Enforce` or `Observe`. Defaults to `Enforce`.
    pub fn mode(self, mode: Mode) -> Self {
        self.edit(move |c| c.mode = mode)
    }

    /// Proxies (CIDRs) whose forwarding headers are believed. Defaults to
    /// none. See the proxy caveat in the [`actor`](crate::actor) docs.
    pub fn trusted_proxies<I, T>(self, cidrs: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let cidrs: Vec<String> = cidrs.into_iter().map(Into::into).collect();
        self.edit(move |c| c.trusted_proxies = cidrs.clone())
    }

    /// The header trusted proxies write. Defaults to
    /// [`ForwardedHeader::XForwardedFor`](crate::actor::ForwardedHeader).
    pub fn forwarded_header(self, which: crate::actor::ForwardedHeader) -> Self {
        self.edit(move |c| c.forwarded_header = which)
    }

    /// The session token is this header's value (hashed). Defaults to none.
    pub fn session_header(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.edit(move |c| c.session = Some(SessionSource::Header(name.clone())))
    }

    /// The session token is this cookie's value (hashed). Defaults to none.
    pub fn session_cookie(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.edit(move |c| c.session = Some(SessionSource::Cookie(name.clone())))
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
    pub fn probe(self, probe: ProbeConfig) -> Self {
        self.edit(move |c| c.probes.push(probe.clone()))
    }

    /// Never counts nor refuses these networks.
    pub fn allow_cidr(self, cidr: impl Into<String>) -> Self {
        let cidr = cidr.into();
        self.edit(move |c| c.allow.cidrs.push(cidr.clone()))
    }

    /// Always refuses these networks.
    pub fn deny_cidr(self, cidr: impl Into<String>) -> Self {
        let cidr = cidr.into();
        self.edit(move |c| c.deny.cidrs.push(cidr.clone()))
    }

    /// Never counts nor refuses this account.
    pub fn allow_account(self, id: impl Into<String>) -> Self {
        let id = id.into();
        self.edit(move |c| c.allow.accounts.push(id.clone()))
    }

    /// Always refuses this account.
    pub fn deny_account(self, id: impl Into<String>) -> Self {
        let id = id.into();
        self.edit(move |c| c.deny.accounts.push(id.clone()))
    }

    /// Most signal records kept. Defaults to 200,000.
    pub fn max_actors(self, n: usize) -> Self {
        self.edit(move |c| c.limits.max_actors = n)
    }

    /// Most verdicts kept. Defaults to 100,000.
    pub fn max_verdicts(self, n: usize) -> Self {
        self.edit(move |c| c.limits.max_verdicts = n)
    }

    /// What happens without a peer address. Defaults to
    /// [`MissingPeer::Refuse`].
    pub fn missing_peer(self, m: MissingPeer) -> Self {
        self.edit(move |c| c.missing_peer = m)
    }

    /// The clock. Defaults to [`SystemClock`]; tests pass a
    /// [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Derives the guard's secret keys (the distinct-target sketch's, and
    /// the sessions' when the config sets no `session_key`) from `seed`, so
    /// that the same traffic gives the same decisions run after run: for
    /// tests and replays. A service leaves it unset: random keys, which an
    /// attacker cannot know (knowing the sketch key, one could pick targets
    /// that count as one). See [`Detector::with_seed`](crate::detect::Detector::with_seed).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Builds refusal responses. Defaults to [`DefaultRefusal`](crate::DefaultRefusal) with the
    /// configured statuses.
    pub fn on_refusal(mut self, hook: impl OnRefusal) -> Self {
        self.responder = Some(Arc::new(hook));
        self
    }

    /// Hands every answered request to `hook` as an [`AccessRecord`]: what
    /// the guard saw of it (the client address it resolved, the account
    /// and its standing, the session's hash, the probe, a target a log
    /// would not hold) and of its answer (the status, the outcome, the
    /// [`Owner`](crate::Owner) and [`Known`](crate::Known) the handler
    /// gave, the refusal). [`AccessRecord::to_json_line`] writes the line
    /// `enumguard replay --format jsonl` reads, so a replay judges the
    /// requests by the facts the guard had (owners included: without them
    /// a replay cannot tell a customer reading its own orders from a
    /// scraper). Off by default. The hook runs on the request's task when
    /// the head of its answer is known: hand the line to a buffered
    /// writer or a channel; a request whose inner service fails (no
    /// response) is not logged.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::sync::{Arc, Mutex};
    /// let log = Arc::new(Mutex::new(std::io::BufWriter::new(std::io::sink())));
    /// let layer = enumguard::GuardLayer::builder()
    ///     .access_log(move |r| {
    ///         let mut w = log.lock().unwrap();
    ///         let _ = writeln!(w, "{}", r.to_json_line());
    ///     })
    ///     .build()
    ///     .unwrap();
    /// ```
    ///
    /// [`AccessRecord`]: crate::AccessRecord
    /// [`AccessRecord::to_json_line`]: crate::AccessRecord::to_json_line
    pub fn access_log<F>(mut self, hook: F) -> Self
    where
        F: Fn(&crate::AccessRecord<'_>) + Send + Sync + 'static,
    {
        self.access = Some(Arc::new(hook));
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
        let core = Arc::new(match self.seed {
            Some(seed) => Detector::with_seed(c, seed)?,
            None => Detector::new(c)?,
        });
        let mut shared = Shared::new(core, clock, self.account, self.owns, self.responder);
        if let Some(hook) = self.access {
            // The wall-clock time of the clock's origin.
            let origin = std::time::SystemTime::now()
                .checked_sub(std::time::Duration::from_nanos(shared.clock.now()))
                .unwrap_or(std::time::UNIX_EPOCH);
            shared.access = Some((hook, origin));
        }
        #[cfg(feature = "redis")]
        {
            let policy = shared.core.policy();
            if let Some(cluster) = &policy.config().cluster {
                // Validated: a cluster has a session key.
                let secret = policy.session_secret();
                shared.cluster = Some(crate::cluster::start(
                    &shared.core,
                    shared.clock.clone(),
                    cluster,
                    secret,
                )?);
            }
        }
        Ok(GuardLayer {
            shared: Arc::new(shared),
        })
    }
}
