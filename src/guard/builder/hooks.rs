//! The builder's hooks: who the caller is, and what it owns.

use std::sync::Arc;

use http::request::Parts;

use crate::actor::{AccountId, AsAccountId};

use super::GuardBuilder;

impl GuardBuilder {
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
    /// use enumguard::{AccountId, Actor, GuardLayer};
    /// use std::time::Duration;
    ///
    /// let layer = GuardLayer::builder()
    ///     // Here a header an authenticating proxy sets; usually a session lookup.
    ///     .account(|parts| parts.headers.get("x-user-id").map(AccountId::new))
    ///     .build()
    ///     .unwrap();
    /// layer
    ///     .handle()
    ///     .ban(&Actor::account(7u64), Duration::from_secs(60));
    /// let req = |user| {
    ///     let req = http::Request::get("/").extension(peer([192, 0, 2, 1]));
    ///     req.header("x-user-id", user)
    /// };
    /// assert_eq!(send(&layer, req("7")), 429);
    /// assert_eq!(send(&layer, req("8")), 200);
    /// ```
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
    /// use enumguard::{AccountId, GuardLayer, ProbeConfig, TargetConfig};
    ///
    /// let orders = ProbeConfig::objects("orders", "GET", "/orders/{id}", TargetConfig::path("id"));
    /// let layer = GuardLayer::builder()
    ///     .probe(orders)
    ///     .account(|parts| parts.headers.get("x-user-id").map(AccountId::new))
    ///     // Order ids carry their owner: order "42-0017" is account 42's.
    ///     .owns(|parts, _probe, target| {
    ///         let user = parts.headers.get("x-user-id").map(|v| v.as_bytes());
    ///         user.is_some_and(|u| target.starts_with(u) && target.get(u.len()) == Some(&b'-'))
    ///     })
    ///     .build()
    ///     .unwrap();
    /// let read = |order: String| {
    ///     let req = http::Request::get(format!("/orders/{order}"));
    ///     req.extension(peer([192, 0, 2, 1]))
    ///         .header("x-user-id", "42")
    /// };
    /// // However many of its own orders account 42 reads, none counts.
    /// for k in 0..40 {
    ///     assert_eq!(send(&layer, read(format!("42-{k:04}"))), 200);
    /// }
    /// // Other accounts' orders are foreign: some of 20 are refused.
    /// let refused = (0..20).filter(|k| send(&layer, read(format!("7-{k:04}"))) == 429);
    /// assert!(refused.count() > 0);
    /// ```
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
    /// use enumguard::{AccountId, Actor, AsAccountId, GuardLayer};
    /// use std::time::Duration;
    ///
    /// /// What the authentication layer inserts.
    /// #[derive(Clone)]
    /// struct User {
    ///     id: u64,
    /// }
    ///
    /// impl AsAccountId for User {
    ///     fn account_id(&self) -> AccountId {
    ///         AccountId::from(self.id)
    ///     }
    /// }
    ///
    /// let layer = GuardLayer::builder().account_from_extension::<User>();
    /// let layer = layer.build().unwrap();
    /// layer
    ///     .handle()
    ///     .ban(&Actor::account(7u64), Duration::from_secs(60));
    /// let req = http::Request::get("/")
    ///     .extension(peer([192, 0, 2, 1]))
    ///     .extension(User { id: 7 });
    /// assert_eq!(send(&layer, req), 429);
    /// ```
    pub fn account_from_extension<T>(self) -> Self
    where
        T: AsAccountId + Send + Sync + 'static,
    {
        self.account(|parts| parts.extensions.get::<T>().map(AsAccountId::account_id))
    }
}
