//! [`GuardBuilder`]: the settings of a [`GuardLayer`], from code and config.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | the builder, its base config, mode, forwarding, sessions, limits, clock, keys, hooks for refusals and the access log, `build` |
//! | `hooks.rs` | who the caller is and what it owns: the account and ownership hooks |
//! | `lists.rs` | probes, and the allow and deny lists |

use std::sync::Arc;

use super::response::OnRefusal;
use super::shared::{AccountFn, OwnsFn, Shared};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::{Config, ConfigError, MissingPeer, Mode, SessionSource};
use crate::detect::Detector;

use super::layer::GuardLayer;

mod hooks;
mod lists;

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

/// The layer's constructors live beside the builder they use (the
/// builder names the layer it builds; the layer does not name the builder).
impl GuardLayer {
    /// A builder with every default (see [`Config`]).
    ///
    /// ```
    /// use enumguard::{GuardLayer, Mode};
    ///
    /// let handle = GuardLayer::builder().build().unwrap().handle();
    /// assert_eq!(handle.config().mode, Mode::Enforce);
    /// assert_eq!(handle.capacity(), 200_000);
    /// ```
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
    ///
    /// ```
    /// use enumguard::{Config, GuardLayer};
    ///
    /// let toml = r#"
    ///     [[probes]]
    ///     name = "book"
    ///     path = "/books/{id}"
    ///     target = { path = "id" }
    /// "#;
    /// let layer = GuardLayer::from_config(Config::from_toml_str(toml).unwrap()).unwrap();
    /// assert_eq!(layer.handle().config().probes[0].name, "book");
    /// // An invalid setting is refused, naming its field.
    /// let mut bad = Config::default();
    /// bad.trusted_proxies = vec!["10.0.0.0/33".into()];
    /// let e = GuardLayer::from_config(bad).unwrap_err();
    /// assert_eq!(e.field(), Some("trusted_proxies[0]"));
    /// ```
    pub fn from_config(config: Config) -> Result<Self, ConfigError> {
        GuardBuilder::default().config(config).build()
    }
}

impl GuardBuilder {
    /// Starts from `config` (from TOML, say). The other calls change it
    /// further whether they come before or after this one: a probe added
    /// with [`probe`](Self::probe) is added to `config`'s probes, a
    /// [`mode`](Self::mode) replaces `config`'s mode. Called twice, the last
    /// config is the base.
    ///
    /// ```
    /// use enumguard::{Config, GuardLayer, Mode};
    ///
    /// let file = Config::from_toml_str("limits.max_actors = 5000").unwrap();
    /// let builder = GuardLayer::builder().mode(Mode::Observe).config(file);
    /// // The file's limit and the call's mode, though the call came first.
    /// assert_eq!(builder.config_ref().limits.max_actors, 5000);
    /// assert_eq!(builder.config_ref().mode, Mode::Observe);
    /// ```
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
    ///
    /// In `Observe` the guard decides and logs as in `Enforce`, but refuses
    /// nothing:
    ///
    /// ```
    /// # fn send(layer: &enumguard::GuardLayer, req: http::request::Builder) -> u16 {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let app = tower::service_fn(|_: http::Request<_>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #     });
    /// #     let req = req.body(String::new()).unwrap();
    /// #     let rt = tokio::runtime::Builder::new_current_thread().build();
    /// #     let res = rt.unwrap().block_on(layer.layer(app).oneshot(req));
    /// #     res.unwrap().status().as_u16()
    /// # }
    /// # fn peer(ip: [u8; 4]) -> std::net::SocketAddr {
    /// #     (ip, 4000).into()
    /// # }
    /// use enumguard::{Actor, GuardLayer, Mode, Verdict};
    /// use std::time::Duration;
    ///
    /// let layer = GuardLayer::builder().mode(Mode::Observe).build().unwrap();
    /// let ip = Actor::ip([203, 0, 113, 9]);
    /// layer.handle().ban(&ip, Duration::from_secs(60));
    /// assert!(matches!(layer.handle().verdict(&ip), Verdict::Block { .. }));
    /// let req = http::Request::get("/").extension(peer([203, 0, 113, 9]));
    /// assert_eq!(send(&layer, req), 200);
    /// ```
    pub fn mode(self, mode: Mode) -> Self {
        self.edit(move |c| c.mode = mode)
    }

    /// Proxies (CIDRs) whose forwarding headers are believed. Defaults to
    /// none. See the proxy caveat in the [`actor`](crate::actor) docs.
    ///
    /// ```
    /// # fn send(layer: &enumguard::GuardLayer, req: http::request::Builder) -> u16 {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let app = tower::service_fn(|_: http::Request<_>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #     });
    /// #     let req = req.body(String::new()).unwrap();
    /// #     let rt = tokio::runtime::Builder::new_current_thread().build();
    /// #     let res = rt.unwrap().block_on(layer.layer(app).oneshot(req));
    /// #     res.unwrap().status().as_u16()
    /// # }
    /// # fn peer(ip: [u8; 4]) -> std::net::SocketAddr {
    /// #     (ip, 4000).into()
    /// # }
    /// use enumguard::{Actor, GuardLayer};
    /// use std::time::Duration;
    ///
    /// let layer = GuardLayer::builder().trusted_proxies(["10.0.0.0/8"]);
    /// let layer = layer.build().unwrap();
    /// let client = Actor::ip([203, 0, 113, 9]);
    /// layer.handle().ban(&client, Duration::from_secs(60));
    /// // Through the proxy at 10.0.0.2, the client is the address the proxy
    /// // appended (the rightmost untrusted one), whatever the client wrote before it.
    /// let via_proxy = http::Request::get("/")
    ///     .extension(peer([10, 0, 0, 2]))
    ///     .header("x-forwarded-for", "198.51.100.1, 203.0.113.9");
    /// assert_eq!(send(&layer, via_proxy), 429);
    /// // From any other peer the header is ignored: the peer is the client.
    /// let direct = http::Request::get("/")
    ///     .extension(peer([198, 51, 100, 1]))
    ///     .header("x-forwarded-for", "203.0.113.9");
    /// assert_eq!(send(&layer, direct), 200);
    /// ```
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
    ///
    /// ```
    /// # fn send(layer: &enumguard::GuardLayer, req: http::request::Builder) -> u16 {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let app = tower::service_fn(|_: http::Request<_>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #     });
    /// #     let req = req.body(String::new()).unwrap();
    /// #     let rt = tokio::runtime::Builder::new_current_thread().build();
    /// #     let res = rt.unwrap().block_on(layer.layer(app).oneshot(req));
    /// #     res.unwrap().status().as_u16()
    /// # }
    /// # fn peer(ip: [u8; 4]) -> std::net::SocketAddr {
    /// #     (ip, 4000).into()
    /// # }
    /// use enumguard::{Actor, ForwardedHeader, GuardLayer};
    /// use std::time::Duration;
    ///
    /// let layer = GuardLayer::builder()
    ///     .trusted_proxies(["10.0.0.0/8"])
    ///     .forwarded_header(ForwardedHeader::Forwarded)
    ///     .build()
    ///     .unwrap();
    /// let client = Actor::ip([203, 0, 113, 9]);
    /// layer.handle().ban(&client, Duration::from_secs(60));
    /// let via_proxy = |name, value| {
    ///     let req = http::Request::get("/").extension(peer([10, 0, 0, 2]));
    ///     req.header(name, value)
    /// };
    /// assert_eq!(send(&layer, via_proxy("forwarded", "for=203.0.113.9")), 429);
    /// // The other header is never read.
    /// assert_eq!(
    ///     send(&layer, via_proxy("x-forwarded-for", "203.0.113.9")),
    ///     200
    /// );
    /// ```
    pub fn forwarded_header(self, which: crate::actor::ForwardedHeader) -> Self {
        self.edit(move |c| c.forwarded_header = which)
    }

    /// The session token is this header's value (hashed). Defaults to none.
    ///
    /// ```
    /// # fn send(layer: &enumguard::GuardLayer, req: http::request::Builder) -> u16 {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let app = tower::service_fn(|_: http::Request<_>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #     });
    /// #     let req = req.body(String::new()).unwrap();
    /// #     let rt = tokio::runtime::Builder::new_current_thread().build();
    /// #     let res = rt.unwrap().block_on(layer.layer(app).oneshot(req));
    /// #     res.unwrap().status().as_u16()
    /// # }
    /// # fn peer(ip: [u8; 4]) -> std::net::SocketAddr {
    /// #     (ip, 4000).into()
    /// # }
    /// use enumguard::{Actor, GuardLayer};
    /// use std::time::Duration;
    ///
    /// let layer = GuardLayer::builder().session_header("x-session");
    /// let layer = layer.build().unwrap();
    /// let token = Actor::session("tok-123");
    /// layer.handle().ban(&token, Duration::from_secs(60));
    /// let req = |token| {
    ///     let req = http::Request::get("/").extension(peer([192, 0, 2, 1]));
    ///     req.header("x-session", token)
    /// };
    /// assert_eq!(send(&layer, req("tok-123")), 429);
    /// assert_eq!(send(&layer, req("tok-456")), 200);
    /// ```
    pub fn session_header(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.edit(move |c| c.session = Some(SessionSource::Header(name.clone())))
    }

    /// The session token is this cookie's value (hashed). Defaults to none.
    ///
    /// ```
    /// # fn send(layer: &enumguard::GuardLayer, req: http::request::Builder) -> u16 {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let app = tower::service_fn(|_: http::Request<_>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #     });
    /// #     let req = req.body(String::new()).unwrap();
    /// #     let rt = tokio::runtime::Builder::new_current_thread().build();
    /// #     let res = rt.unwrap().block_on(layer.layer(app).oneshot(req));
    /// #     res.unwrap().status().as_u16()
    /// # }
    /// # fn peer(ip: [u8; 4]) -> std::net::SocketAddr {
    /// #     (ip, 4000).into()
    /// # }
    /// use enumguard::{Actor, GuardLayer};
    /// use std::time::Duration;
    ///
    /// let layer = GuardLayer::builder().session_cookie("sid").build().unwrap();
    /// let token = Actor::session("tok-123");
    /// layer.handle().ban(&token, Duration::from_secs(60));
    /// let req = http::Request::get("/")
    ///     .extension(peer([192, 0, 2, 1]))
    ///     .header("cookie", "theme=dark; sid=tok-123");
    /// assert_eq!(send(&layer, req), 429);
    /// ```
    pub fn session_cookie(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.edit(move |c| c.session = Some(SessionSource::Cookie(name.clone())))
    }

    /// Most signal records kept (`limits.max_actors`). Defaults to 200,000.
    ///
    /// A record is one (actor, probe) pair, not one client: an anonymous
    /// request on one probe makes two (its ip and its subnet), a logged-in
    /// one up to four (and a session's second value a fifth). Size it as
    /// clients x actors per client x probes they touch; each record is about
    /// 300 bytes with the table's slack.
    ///
    /// At least 16: a smaller number is a [`ConfigError`] at [`build`](Self::build).
    ///
    /// ```
    /// use enumguard::GuardLayer;
    ///
    /// let layer = GuardLayer::builder().max_actors(16).build().unwrap();
    /// assert_eq!(layer.handle().capacity(), 16);
    /// let e = GuardLayer::builder().max_actors(8).build().unwrap_err();
    /// assert_eq!(e.field(), Some("limits.max_actors"));
    /// ```
    pub fn max_actors(self, n: usize) -> Self {
        self.edit(move |c| c.limits.max_actors = n)
    }

    /// Most verdicts kept. Defaults to 100,000.
    ///
    /// At least 16: a smaller number is a [`ConfigError`] at [`build`](Self::build).
    ///
    /// ```
    /// use enumguard::GuardLayer;
    ///
    /// let builder = GuardLayer::builder().max_verdicts(1_000);
    /// assert_eq!(builder.config_ref().limits.max_verdicts, 1_000);
    /// let e = GuardLayer::builder().max_verdicts(8).build().unwrap_err();
    /// assert_eq!(e.field(), Some("limits.max_verdicts"));
    /// ```
    pub fn max_verdicts(self, n: usize) -> Self {
        self.edit(move |c| c.limits.max_verdicts = n)
    }

    /// What happens without a peer address. Defaults to
    /// [`MissingPeer::Refuse`].
    ///
    /// ```
    /// # fn send(layer: &enumguard::GuardLayer, req: http::request::Builder) -> u16 {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let app = tower::service_fn(|_: http::Request<_>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #     });
    /// #     let req = req.body(String::new()).unwrap();
    /// #     let rt = tokio::runtime::Builder::new_current_thread().build();
    /// #     let res = rt.unwrap().block_on(layer.layer(app).oneshot(req));
    /// #     res.unwrap().status().as_u16()
    /// # }
    /// # fn peer(ip: [u8; 4]) -> std::net::SocketAddr {
    /// #     (ip, 4000).into()
    /// # }
    /// use enumguard::{GuardLayer, MissingPeer};
    ///
    /// // No peer address in the request's extensions (a server wired without it).
    /// let refuse = GuardLayer::builder().build().unwrap();
    /// assert_eq!(send(&refuse, http::Request::get("/")), 500);
    /// let unknown = GuardLayer::builder().missing_peer(MissingPeer::Unknown);
    /// let unknown = unknown.build().unwrap();
    /// assert_eq!(send(&unknown, http::Request::get("/")), 200);
    /// ```
    pub fn missing_peer(self, m: MissingPeer) -> Self {
        self.edit(move |c| c.missing_peer = m)
    }

    /// The clock. Defaults to [`SystemClock`]; tests pass a
    /// [`ManualClock`](crate::ManualClock).
    ///
    /// ```
    /// use enumguard::{Actor, GuardLayer, ManualClock, Verdict};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let layer = GuardLayer::builder().clock(clock.clone()).build().unwrap();
    /// let (handle, ip) = (layer.handle(), Actor::ip([203, 0, 113, 9]));
    /// handle.ban(&ip, Duration::from_secs(60));
    /// clock.advance(Duration::from_secs(59));
    /// let left = Duration::from_secs(1);
    /// assert!(matches!(handle.verdict(&ip), Verdict::Block { remaining, .. } if remaining == left));
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(handle.verdict(&ip), Verdict::Allow);
    /// ```
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
    ///
    /// ```
    /// use enumguard::{Actor, GuardLayer};
    ///
    /// let seeded = || GuardLayer::builder().seed(7).build().unwrap().handle();
    /// let token = Actor::session("tok-123");
    /// assert_eq!(seeded().key(&token), seeded().key(&token));
    /// let random = GuardLayer::builder().build().unwrap().handle();
    /// assert_ne!(random.key(&token), seeded().key(&token));
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Builds refusal responses. Defaults to [`DefaultRefusal`](crate::DefaultRefusal) with the
    /// configured statuses.
    ///
    /// A closure works too (see [`OnRefusal`]):
    ///
    /// ```
    /// # fn send(layer: &enumguard::GuardLayer, req: http::request::Builder) -> u16 {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let app = tower::service_fn(|_: http::Request<_>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #     });
    /// #     let req = req.body(String::new()).unwrap();
    /// #     let rt = tokio::runtime::Builder::new_current_thread().build();
    /// #     let res = rt.unwrap().block_on(layer.layer(app).oneshot(req));
    /// #     res.unwrap().status().as_u16()
    /// # }
    /// # fn peer(ip: [u8; 4]) -> std::net::SocketAddr {
    /// #     (ip, 4000).into()
    /// # }
    /// use enumguard::{DefaultRefusal, GuardLayer};
    /// use http::StatusCode;
    ///
    /// let layer = GuardLayer::builder()
    ///     .deny_cidr("198.51.100.0/24")
    ///     .on_refusal(DefaultRefusal::new(
    ///         StatusCode::FORBIDDEN,
    ///         StatusCode::TOO_MANY_REQUESTS,
    ///     ))
    ///     .build()
    ///     .unwrap();
    /// let req = http::Request::get("/").extension(peer([198, 51, 100, 7]));
    /// assert_eq!(send(&layer, req), 403);
    /// ```
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
    ///
    /// ```
    /// use enumguard::GuardLayer;
    ///
    /// let builder = GuardLayer::builder().max_actors(10_000);
    /// let builder = builder.allow_account("support");
    /// assert_eq!(builder.config_ref().limits.max_actors, 10_000);
    /// assert_eq!(builder.config_ref().allow.accounts, ["support"]);
    /// ```
    pub fn config_ref(&self) -> &Config {
        &self.config
    }

    /// Validates the settings and builds the layer.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid field.
    ///
    /// ```
    /// use enumguard::GuardLayer;
    ///
    /// let proxies = |cidr| GuardLayer::builder().trusted_proxies([cidr]).build();
    /// assert!(proxies("10.0.0.0/8").is_ok());
    /// let e = proxies("10.0.0.0/33").unwrap_err();
    /// assert_eq!(e.field(), Some("trusted_proxies[0]"));
    /// assert!(e.to_string().contains("10.0.0.0/33"), "{e}");
    /// ```
    pub fn build(self) -> Result<GuardLayer, ConfigError> {
        let c = self.config;
        let clock = SharedClock(self.clock.unwrap_or_else(|| Arc::new(SystemClock::new())));
        // Records keep coarse times as u32 seconds of the clock.
        let secs = clock.now().since_origin().as_secs();
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
                .checked_sub(shared.clock.now().since_origin().as_duration())
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
