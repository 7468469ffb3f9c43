//! [`GuardLayer`]: the layer a service wraps around its router (built by
//! [`GuardBuilder`]).

use std::sync::Arc;

use tower_layer::Layer;

use super::handle::GuardHandle;
use super::service::Guard;
use super::shared::Shared;

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
