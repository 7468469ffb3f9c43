//! [`GuardLayer`]: the layer a service wraps around its router (built by
//! [`GuardBuilder`]).

use std::sync::Arc;

use tower_layer::Layer;

use super::handle::GuardHandle;
use super::service::Guard;
use super::shared::Shared;
use crate::config::{Config, ConfigError};

use super::builder::GuardBuilder;

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
    pub(super) shared: Arc<Shared>,
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

    /// The operator's handle: ban, unban, inspect.
    ///
    /// Clones of the layer share one state, so the handle of any clone acts on
    /// the service a router holds (see the example on [`GuardHandle`]):
    ///
    /// ```
    /// use enumguard::{Actor, GuardLayer, Verdict};
    /// use std::time::Duration;
    ///
    /// let layer = GuardLayer::builder().build().unwrap();
    /// let served = layer.clone(); // the one the router holds
    /// let seven = Actor::account(7u64);
    /// layer.handle().ban(&seven, Duration::from_secs(60));
    /// assert!(matches!(
    ///     served.handle().verdict(&seven),
    ///     Verdict::Block { .. }
    /// ));
    /// ```
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
