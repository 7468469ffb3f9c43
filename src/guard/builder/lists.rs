//! The builder's probes and lists.

use crate::config::ProbeConfig;

use super::GuardBuilder;

impl GuardBuilder {
    /// Adds a probe.
    ///
    /// ```
    /// use enumguard::{GuardLayer, ProbeConfig, TargetConfig};
    ///
    /// let book = ProbeConfig::objects("book", "GET", "/books/{id}", TargetConfig::path("id"));
    /// let lookup = ProbeConfig::identities("lookup", "GET", "/lookup", TargetConfig::query("q"));
    /// let builder = GuardLayer::builder().probe(book).probe(lookup);
    /// let probes = &builder.config_ref().probes;
    /// assert_eq!([&probes[0].name, &probes[1].name], ["book", "lookup"]);
    /// assert!(builder.build().is_ok());
    /// ```
    ///
    /// The [crate example](crate) drives a probe to a block.
    pub fn probe(self, probe: ProbeConfig) -> Self {
        self.edit(move |c| c.probes.push(probe.clone()))
    }

    /// Never counts nor refuses these networks.
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
    /// let book = ProbeConfig::objects("book", "GET", "/books/{id}", TargetConfig::path("id"));
    /// let layer = GuardLayer::builder()
    ///     .probe(book)
    ///     .account(|parts| parts.headers.get("x-user-id").map(AccountId::new))
    ///     .allow_cidr("192.0.2.0/24") // the office, whose tools read every book
    ///     .build()
    ///     .unwrap();
    /// for id in 100..140 {
    ///     let req = http::Request::get(format!("/books/{id}")).header("x-user-id", "7");
    ///     assert_eq!(send(&layer, req.extension(peer([192, 0, 2, 10]))), 200);
    /// }
    /// ```
    pub fn allow_cidr(self, cidr: impl Into<String>) -> Self {
        let cidr = cidr.into();
        self.edit(move |c| c.allow.cidrs.push(cidr.clone()))
    }

    /// Always refuses these networks.
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
    /// use enumguard::GuardLayer;
    ///
    /// let layer = GuardLayer::builder().deny_cidr("198.51.100.0/24");
    /// let layer = layer.build().unwrap();
    /// let from = |ip| http::Request::get("/").extension(peer(ip));
    /// assert_eq!(send(&layer, from([198, 51, 100, 7])), 429);
    /// assert_eq!(send(&layer, from([192, 0, 2, 1])), 200);
    /// ```
    pub fn deny_cidr(self, cidr: impl Into<String>) -> Self {
        let cidr = cidr.into();
        self.edit(move |c| c.deny.cidrs.push(cidr.clone()))
    }

    /// Never counts nor refuses this account.
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
    /// let book = ProbeConfig::objects("book", "GET", "/books/{id}", TargetConfig::path("id"));
    /// let layer = GuardLayer::builder()
    ///     .probe(book)
    ///     .account(|parts| parts.headers.get("x-user-id").map(AccountId::new))
    ///     .allow_account("7") // the support team's account
    ///     .build()
    ///     .unwrap();
    /// for id in 100..140 {
    ///     let req = http::Request::get(format!("/books/{id}")).header("x-user-id", "7");
    ///     assert_eq!(send(&layer, req.extension(peer([192, 0, 2, 10]))), 200);
    /// }
    /// ```
    pub fn allow_account(self, id: impl Into<String>) -> Self {
        let id = id.into();
        self.edit(move |c| c.allow.accounts.push(id.clone()))
    }

    /// Always refuses this account.
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
    /// use enumguard::{AccountId, GuardLayer};
    ///
    /// let layer = GuardLayer::builder()
    ///     .account(|parts| parts.headers.get("x-user-id").map(AccountId::new))
    ///     .deny_account("7")
    ///     .build()
    ///     .unwrap();
    /// let req = |user| {
    ///     let req = http::Request::get("/").extension(peer([192, 0, 2, 1]));
    ///     req.header("x-user-id", user)
    /// };
    /// assert_eq!(send(&layer, req("7")), 429);
    /// assert_eq!(send(&layer, req("8")), 200);
    /// ```
    pub fn deny_account(self, id: impl Into<String>) -> Self {
        let id = id.into();
        self.edit(move |c| c.deny.accounts.push(id.clone()))
    }
}
