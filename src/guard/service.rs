//! [`Guard`]: the tower adapter of the detector. Per request: match the
//! probe, identify the actors, read the target, ask the detector, forward
//! or refuse; the [`ResponseFuture`] reads a JSON body when the probe needs
//! it and reports the answer.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;

use super::body::{GuardBody, ResponseBody};
use super::future::ResponseFuture;
use super::identify::{self, Need};
use super::response::{DefaultRefusal, OnRefusal};
use crate::actor::{AccountId, has_peer};
use crate::clock::SharedClock;
use crate::detect::{Decision, Detector, Facts, Match, Policy, Refusal, Target, Ticket};

pub(crate) type AccountFn = Arc<dyn Fn(&Parts) -> Option<AccountId> + Send + Sync>;
/// The ownership hook: `(parts, probe name, target) -> the caller owns it`.
pub(crate) type OwnsFn = Arc<dyn Fn(&Parts, &str, &[u8]) -> bool + Send + Sync>;

/// What every clone of the layer, the service and the handle share: the
/// detector, and what only code can give it (the clock, the account
/// source, the ownership hook, the refusal responses).
pub(crate) struct Shared {
    core: Detector,
    clock: SharedClock,
    account: Option<AccountFn>,
    owns: Option<OwnsFn>,
    /// The refusal hook; `None` is [`DefaultRefusal`] with the statuses of
    /// the policy in force.
    responder: Option<Arc<dyn OnRefusal>>,
}

impl Shared {
    pub(crate) fn new(
        core: Detector,
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
        }
    }

    pub(crate) fn core(&self) -> &Detector {
        &self.core
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.now()
    }

    pub(crate) fn account(&self, parts: &Parts) -> Option<AccountId> {
        self.account.as_ref().and_then(|f| f(parts))
    }

    pub(crate) fn owns(&self, parts: &Parts, probe: &str, target: &[u8]) -> bool {
        self.owns.as_ref().is_some_and(|f| f(parts, probe, target))
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

    /// Everything before the inner service, for a request whose head is
    /// `parts`, matched to `matched`; `now` if the clock was read already.
    fn before(
        &self,
        policy: &Policy,
        parts: &Parts,
        matched: Option<Match>,
        now: Option<u64>,
    ) -> Decision {
        let verdicts = self.core.has_verdicts();
        let need = Need::of(policy, matched.is_some(), verdicts);
        if need == Need::Peer {
            // Nothing concerns this request: it only needs a known peer.
            return match self.peer_known(policy, &parts.extensions) {
                Ok(()) => Decision::Pass,
                Err(r) => Decision::Refuse(r),
            };
        }
        let actors = match identify::actors(self, policy, parts, need) {
            Ok(a) => a,
            Err(r) => return Decision::Refuse(r),
        };
        // The clock is read once, and only when something will use it.
        let now = if matched.is_some() || verdicts {
            now.unwrap_or_else(|| self.clock.now())
        } else {
            0
        };
        let target = match &matched {
            Some(m) => identify::target(self, policy, parts, m, &actors),
            None => Target::None,
        };
        let facts = Facts {
            actors: &actors,
            probe: matched.as_ref().map(Match::probe),
            target,
        };
        self.core.check(policy, &facts, now)
    }

    /// `Ok` if the request has a peer address, or may go without one.
    #[inline]
    fn peer_known(&self, policy: &Policy, ext: &http::Extensions) -> Result<(), Refusal> {
        if has_peer(ext) {
            Ok(())
        } else {
            self.core.missing_peer(policy)
        }
    }
}

/// The guard service; see [`GuardLayer`](crate::GuardLayer).
///
/// Every clone shares the same state. A refusal is a response (with a
/// [`Refusal`] in its extensions), never an error; errors of the inner
/// service pass through unchanged.
pub struct Guard<S> {
    inner: S,
    shared: Arc<Shared>,
    /// The detector's policy as of `generation`, checked per request: a
    /// reload is seen by the next request, and a request reads no shared
    /// reference count.
    policy: Arc<Policy>,
    generation: u64,
}

impl<S> Guard<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        let (generation, policy) = shared.core.snapshot();
        Self {
            inner,
            shared,
            policy,
            generation,
        }
    }

    /// The policy in force, refreshed if a reload happened.
    #[inline]
    fn refresh(&mut self) {
        if self.shared.core.generation() != self.generation {
            (self.generation, self.policy) = self.shared.core.snapshot();
        }
    }
}

impl<S: Clone> Clone for Guard<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            policy: self.policy.clone(),
            generation: self.generation,
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Guard<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for Guard<S>
where
    S: Service<Request<GuardBody<B>>, Response = Response<ResBody>> + Clone,
    B: Body,
    B::Data: bytes::Buf,
    ResBody: Body,
    ResBody::Data: From<Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.refresh();
        let Guard {
            inner,
            shared,
            policy,
            ..
        } = self;
        policy.hot().requests.increment(1);
        policy.note_request();
        let matched = policy.route(req.method(), req.uri().path());
        // Without a probe, only a ban or an account's or session's block can
        // refuse the request (and the lists): while none is held, nothing
        // needs identifying. The clock, if read here, is handed on.
        let mut now = None;
        if matched.is_none()
            && shared
                .core
                .quiet(policy, || *now.insert(shared.clock.now()))
        {
            return match shared.peer_known(policy, req.extensions()) {
                Ok(()) => ResponseFuture::forward(inner.call(req.map(GuardBody::new)), None),
                Err(r) => ResponseFuture::refused(shared.refusal_response(r)),
            };
        }
        let (parts, body) = req.into_parts();
        match shared.before(policy, &parts, matched, now) {
            Decision::Pass => {
                let req = Request::from_parts(parts, GuardBody::new(body));
                ResponseFuture::forward(inner.call(req), None)
            }
            Decision::Track(ticket) if !ticket.awaits_body() => {
                let req = Request::from_parts(parts, GuardBody::new(body));
                let fut = inner.call(req);
                ResponseFuture::forward(fut, Some(Tracked::new(ticket, shared, policy)))
            }
            Decision::Refuse(r) => ResponseFuture::refused(shared.refusal_response(r)),
            Decision::Track(ticket) => {
                // The inner service is called once the body is read: take
                // the ready service, leave a clone in its place.
                let clone = inner.clone();
                let ready = std::mem::replace(inner, clone);
                ResponseFuture::read_body(ready, parts, body, Tracked::new(ticket, shared, policy))
            }
        }
    }
}

/// A tracked request on its way: the ticket, and what reporting its answer
/// needs (the detector, and the policy it was decided by).
pub(crate) struct Tracked {
    pub(crate) ticket: Ticket,
    pub(crate) shared: Arc<Shared>,
    pub(crate) policy: Arc<Policy>,
}

impl Tracked {
    fn new(ticket: Ticket, shared: &Arc<Shared>, policy: &Arc<Policy>) -> Self {
        Self {
            ticket,
            shared: shared.clone(),
            policy: policy.clone(),
        }
    }
}
