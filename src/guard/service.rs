//! [`Guard`]: the tower adapter of the detector. Per request: match the
//! probe, identify the actors, read the target, ask the detector, forward
//! or refuse; the [`ResponseFuture`] reads a JSON body when the probe needs
//! it and reports the answer.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::body::{GuardBody, ResponseBody};
use super::future::ResponseFuture;
use super::shared::{Shared, Tracked};
use crate::detect::{Decision, Policy, Route};

/// The guard service; see [`GuardLayer`](crate::GuardLayer).
///
/// Every clone shares the same state. A refusal is a response (with a
/// [`Refusal`](crate::Refusal) in its extensions), never an error; errors of the inner
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
    /// A clone of a service built before a reload (a router's template,
    /// cloned per request) takes the current policy rather than the stale
    /// one: one reference count either way.
    fn clone(&self) -> Self {
        let (generation, policy) = if self.shared.core.generation() == self.generation {
            (self.generation, self.policy.clone())
        } else {
            self.shared.core.snapshot()
        };
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            policy,
            generation,
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
        let clock = &shared.clock;
        let logging = shared.access.is_some();
        let mut now = None;
        // The fast path decides on the request as it is; the rest takes it
        // apart (the hooks take its `Parts`).
        let routed =
            match shared
                .core
                .route(policy, &req, || *now.insert(clock.now().get()), logging)
            {
                Route::Go(r) => r,
                Route::Pass => return ResponseFuture::pass(inner.call(req.map(GuardBody::new))),
                Route::Refuse(r) => {
                    return ResponseFuture::refused(shared.refusal_response(r), None);
                }
            };
        let timer = super::timing::start();
        let (parts, body) = req.into_parts();
        let mut seen = None;
        if logging {
            let t = now.unwrap_or_else(|| clock.now().get());
            seen = shared.seen(policy, (&parts.method, &parts.uri), t);
        }
        let noted = seen.as_deref_mut().map(|s| &mut s.noted);
        match shared
            .core
            .before_routed(policy, routed, &parts, shared.as_ref(), noted)
        {
            Decision::Pass => {
                shared.timing.done(timer);
                let req = Request::from_parts(parts, GuardBody::new(body));
                ResponseFuture::forward(inner.call(req), None, seen)
            }
            Decision::Refuse(r) => {
                let res = shared.refusal_response(r);
                shared.timing.done(timer);
                ResponseFuture::refused(res, seen)
            }
            Decision::Track(ticket) if ticket.body_limit().is_none() => {
                let spent_ns = Tracked::spent_ns(timer);
                // The ticket is held before the inner service is called: if
                // its `call` panics, the ticket's drop settles what it
                // holds pending (the actors are not left with a request in
                // flight until their window rolls).
                let tracked = Tracked {
                    ticket: Some(ticket),
                    shared: shared.clone(),
                    spent_ns,
                };
                let req = Request::from_parts(parts, GuardBody::new(body));
                let fut = inner.call(req);
                ResponseFuture::forward(fut, Some(tracked), seen)
            }
            Decision::Track(ticket) => {
                // The inner service is called once the body is read: take
                // the ready service, leave a clone in its place.
                let clone = inner.clone();
                let ready = std::mem::replace(inner, clone);
                let tracked = Tracked::new(ticket, shared, timer);
                ResponseFuture::read_body(ready, parts, body, tracked, seen)
            }
        }
    }
}
