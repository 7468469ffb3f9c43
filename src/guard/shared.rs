//! What every clone of the layer, the service and the handle share: the
//! detector and what only code can give it; and a tracked request on its
//! way through the response future.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};

use super::access::{AccessFn, Seen};
use super::response::{DefaultRefusal, OnRefusal};
use crate::actor::{AccountId, has_peer, peer_addr};
use crate::clock::{Nanos, SharedClock};
use crate::detect::{Detector, Head, Hooks, Policy, Refusal, Ticket};

pub(crate) type AccountFn = Arc<dyn Fn(&Parts) -> Option<AccountId> + Send + Sync>;
/// The ownership hook: `(parts, probe name, target) -> the caller owns it`.
pub(crate) type OwnsFn = Arc<dyn Fn(&Parts, &str, &[u8]) -> bool + Send + Sync>;

/// What every clone of the layer, the service and the handle share: the
/// detector, and what only code can give it (the clock, the account
/// source, the ownership hook, the refusal responses).
pub(crate) struct Shared {
    pub(crate) core: Arc<Detector>,
    pub(crate) clock: SharedClock,
    account: Option<AccountFn>,
    owns: Option<OwnsFn>,
    /// The refusal hook; `None` is [`DefaultRefusal`] with the statuses of
    /// the policy in force.
    responder: Option<Arc<dyn OnRefusal>>,
    /// The access-log hook, and the wall-clock time of the clock's origin.
    pub(crate) access: Option<(AccessFn, std::time::SystemTime)>,
    /// The cluster sync's state, when replicas share verdicts.
    #[cfg(feature = "redis")]
    pub(crate) cluster: Option<Arc<crate::cluster::Status>>,
    /// The guard's own time per request, sampled.
    pub(crate) timing: super::timing::Timing,
}

impl Shared {
    pub(crate) fn new(
        core: Arc<Detector>,
        clock: SharedClock,
        account: Option<AccountFn>,
        owns: Option<OwnsFn>,
        responder: Option<Arc<dyn OnRefusal>>,
    ) -> Self {
        Self {
            core,
            clock,
            account,
            owns,
            responder,
            access: None,
            timing: Default::default(),
            #[cfg(feature = "redis")]
            cluster: None,
        }
    }

    pub(crate) fn core(&self) -> &Detector {
        &self.core
    }

    pub(crate) fn now(&self) -> Nanos {
        self.clock.now()
    }

    /// The refusal's response, with the [`Refusal`] in its extensions.
    pub(crate) fn refusal_response(&self, r: Refusal) -> Response<Bytes> {
        let mut res = match &self.responder {
            Some(hook) => hook.response(&r),
            None => {
                let policy = self.core.policy();
                let statuses = &policy.config().responses;
                let status =
                    |s: u16| StatusCode::from_u16(s).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
                DefaultRefusal::new(
                    status(statuses.block_status),
                    status(statuses.throttle_status),
                )
                .response(&r)
            }
        };
        res.extensions_mut().insert(r);
        res
    }

    /// What the access log carries for a request read at `now`, if the
    /// log is on.
    pub(crate) fn seen(
        &self,
        policy: &Arc<Policy>,
        parts: (&http::Method, &http::Uri),
        now: u64,
    ) -> Option<Box<Seen>> {
        let (hook, origin) = self.access.as_ref()?;
        Some(Seen::new(hook, *origin, now, parts, policy))
    }
}

/// The application's hooks, as the core asks for them.
impl Hooks<Parts> for Shared {
    fn account(&self, parts: &Parts) -> Option<AccountId> {
        self.account.as_ref().and_then(|f| f(parts))
    }

    fn owns(&self, parts: &Parts, probe: &str, target: &[u8]) -> Option<bool> {
        self.owns.as_ref().map(|f| f(parts, probe, target))
    }
}

/// A request as the core's fast path reads it (before it is taken apart).
impl<B> Head for http::Request<B> {
    #[inline]
    fn method(&self) -> &http::Method {
        self.method()
    }
    #[inline]
    fn path(&self) -> &str {
        self.uri().path()
    }
    #[inline]
    fn query(&self) -> Option<&str> {
        self.uri().query()
    }
    #[inline]
    fn headers(&self) -> &http::HeaderMap {
        self.headers()
    }
    #[inline]
    fn peer(&self) -> Option<std::net::IpAddr> {
        peer_addr(self.extensions())
    }
    #[inline]
    fn has_peer(&self) -> bool {
        has_peer(self.extensions())
    }
    #[inline]
    fn standing(&self) -> Option<crate::Standing> {
        self.extensions().get::<crate::Standing>().copied()
    }
}

/// A request head as the core reads it.
impl Head for Parts {
    #[inline]
    fn method(&self) -> &http::Method {
        &self.method
    }
    #[inline]
    fn path(&self) -> &str {
        self.uri.path()
    }
    #[inline]
    fn query(&self) -> Option<&str> {
        self.uri.query()
    }
    #[inline]
    fn headers(&self) -> &http::HeaderMap {
        &self.headers
    }
    #[inline]
    fn peer(&self) -> Option<std::net::IpAddr> {
        peer_addr(&self.extensions)
    }
    #[inline]
    fn has_peer(&self) -> bool {
        has_peer(&self.extensions)
    }
    #[inline]
    fn standing(&self) -> Option<crate::Standing> {
        self.extensions.get::<crate::Standing>().copied()
    }
}

/// A tracked request on its way: the ticket, and the detector to hand it
/// back to.
pub(crate) struct Tracked {
    /// Taken when the answer is handed back.
    pub(crate) ticket: Option<Ticket>,
    pub(crate) shared: Arc<Shared>,
    /// On a sampled request, the guard's time before the inner service in
    /// nanoseconds (at least 1; saturating); 0 on the others. Four bytes:
    /// the tracked request is moved whole, and every byte of it costs.
    pub(crate) spent_ns: u32,
}

/// A request dropped before its answer (the client went away, the inner
/// service failed) gives back what its ticket held as pending.
impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            if t.admitted() {
                self.shared.core().release(&t);
            }
        }
    }
}

impl Tracked {
    /// A tracked request, with a sampled request's time so far (since
    /// `start`).
    #[inline]
    pub(crate) fn new(
        ticket: Ticket,
        shared: &Arc<Shared>,
        start: Option<std::time::Instant>,
    ) -> Self {
        Self {
            ticket: Some(ticket),
            shared: shared.clone(),
            spent_ns: Self::spent_ns(start),
        }
    }

    /// A sampled request's time since `start` (see `spent_ns`); 0 if not
    /// sampled.
    #[inline]
    pub(crate) fn spent_ns(start: Option<std::time::Instant>) -> u32 {
        start.map_or(0, |t| {
            u32::try_from(t.elapsed().as_nanos()).map_or(u32::MAX, |n| n.max(1))
        })
    }
}
