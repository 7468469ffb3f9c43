//! [`ResponseFuture`]: reads a probe's JSON body when it has to, forwards
//! to the inner service, and learns from the response head.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::request::Parts;
use http::{Request, Response};
use http_body::{Body, Frame};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::actor::Actors;
use crate::body::{GuardBody, ResponseBody, to_bytes_frame};
use crate::config::Oversized;
use crate::probe::{Outcome, Owner, TargetInfo};
use crate::response::{Refusal, RefusalKind};
use crate::service::Shared;

/// What the learning step needs of a probe request. Fixed size, no heap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Learn {
    pub(crate) probe: u8,
    pub(crate) target: Option<TargetInfo>,
    pub(crate) actors: Actors,
    pub(crate) now: u64,
}

pin_project! {
    /// The future of [`Guard`](crate::Guard).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<GuardBody<B>>>,
        B: Body,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<GuardBody<B>>>,
        B: Body,
    {
        Forward {
            #[pin]
            fut: S::Future,
            learn: Option<(Learn, Arc<Shared>)>,
        },
        Refused {
            res: Option<Response<Bytes>>,
        },
        Reading {
            // Boxed: only JSON-body probes read, and the common future
            // stays small.
            reading: Box<Reading<S, B>>,
        },
    }
}

/// The state of a JSON-body probe request while its body is read.
struct Reading<S, B: Body> {
    body: Option<Pin<Box<B>>>,
    frames: VecDeque<Result<Frame<Bytes>, B::Error>>,
    read: usize,
    parts: Option<Parts>,
    inner: Option<S>,
    learn: Learn,
    shared: Arc<Shared>,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<GuardBody<B>>>,
    B: Body,
{
    pub(crate) fn forward(fut: S::Future, learn: Option<(Learn, Arc<Shared>)>) -> Self {
        Self {
            state: State::Forward { fut, learn },
        }
    }

    pub(crate) fn refused(res: Response<Bytes>) -> Self {
        Self {
            state: State::Refused { res: Some(res) },
        }
    }

    pub(crate) fn read_body(
        inner: S,
        parts: Parts,
        body: B,
        learn: Learn,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            state: State::Reading {
                reading: Box::new(Reading {
                    body: Some(Box::pin(body)),
                    frames: VecDeque::new(),
                    read: 0,
                    parts: Some(parts),
                    inner: Some(inner),
                    learn,
                    shared,
                }),
            },
        }
    }
}

impl<S, B> std::fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<GuardBody<B>>>,
    B: Body,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<GuardBody<B>>, Response = Response<ResBody>>,
    B: Body,
    B::Data: Buf,
    ResBody: Body,
    ResBody::Data: From<Bytes>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let this = self.as_mut().project();
            match this.state.project() {
                StateProj::Forward { fut, learn } => {
                    let res = ready!(fut.poll(cx))?;
                    if let Some((l, shared)) = learn.take() {
                        learn_from(&shared, &l, &res);
                    }
                    return Poll::Ready(Ok(res.map(ResponseBody::inner)));
                }
                StateProj::Refused { res } => {
                    let res = res.take().expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(res.map(ResponseBody::refusal)));
                }
                StateProj::Reading { reading } => {
                    let Reading {
                        body,
                        frames,
                        read,
                        parts,
                        inner,
                        learn,
                        shared,
                    } = &mut **reading;
                    let probe = &shared.engine.probes[learn.probe as usize];
                    let limit = probe.body_limit;
                    let mut ended = false;
                    let mut errored = false;
                    if let Some(b) = body.as_mut() {
                        loop {
                            if b.is_end_stream() {
                                ended = true;
                                break;
                            }
                            match ready!(b.as_mut().poll_frame(cx)) {
                                Some(Ok(frame)) => {
                                    let frame = to_bytes_frame(frame);
                                    if let Some(d) = frame.data_ref() {
                                        *read += d.len();
                                    }
                                    frames.push_back(Ok(frame));
                                    if *read > limit {
                                        break;
                                    }
                                }
                                Some(Err(e)) => {
                                    frames.push_back(Err(e));
                                    errored = true;
                                    break;
                                }
                                None => {
                                    ended = true;
                                    break;
                                }
                            }
                        }
                    }
                    let oversized = *read > limit;
                    let learn = *learn;
                    let shared = shared.clone();
                    let parts = parts.take().expect("parts taken once");
                    let mut inner = inner.take().expect("inner service taken once");
                    // After a read error the body is done: it is not polled again.
                    let rest = if ended || errored { None } else { body.take() };
                    let mut learn_ctx = learn;
                    let mut refusal: Option<Refusal> = None;
                    if oversized {
                        if probe.oversized == Oversized::Refuse {
                            refusal = shared.refuse_or_observe(Refusal::new(
                                RefusalKind::BodyTooLarge,
                                None,
                                None,
                                Some(&probe.name),
                            ));
                        }
                    } else if ended && !errored {
                        let mut json = Vec::with_capacity(*read);
                        for d in frames
                            .iter()
                            .filter_map(|f| f.as_ref().ok().and_then(|f| f.data_ref()))
                        {
                            json.extend_from_slice(d);
                        }
                        if let Some(target) = probe.json_target_or_body(
                            &json,
                            learn.actors.account.as_ref(),
                            shared.target_key,
                        ) {
                            learn_ctx.target = Some(target);
                            refusal = shared.precheck(&learn_ctx, &target);
                        }
                    }
                    if let Some(r) = refusal {
                        let res = shared.refusal_response(r);
                        self.as_mut()
                            .project()
                            .state
                            .set(State::Refused { res: Some(res) });
                        continue;
                    }
                    let frames = std::mem::take(frames);
                    let req = Request::from_parts(parts, GuardBody::replay(frames, rest));
                    let fut = inner.call(req);
                    self.as_mut().project().state.set(State::Forward {
                        fut,
                        learn: Some((learn_ctx, shared)),
                    });
                }
            }
        }
    }
}

fn learn_from<T>(shared: &Shared, l: &Learn, res: &Response<T>) {
    let probe = &shared.engine.probes[l.probe as usize];
    let outcome = probe.classify(res.status(), res.extensions());
    // A refusal from an inner guard or limiter says nothing of the target.
    if res.extensions().get::<Refusal>().is_some() {
        return;
    }
    let i = match outcome {
        Some(Outcome::Hit) => 0,
        Some(Outcome::Miss) => 1,
        Some(Outcome::Denied) => 2,
        None => 3,
    };
    if let Some(c) = shared
        .hot
        .get(&shared.engine.probes)
        .outcomes
        .get(l.probe as usize)
    {
        c[i].increment(1);
    }
    // What the application says of the object's owner wins over ids.
    let mut target = l.target;
    if let (Some(t), Some(owner)) = (target.as_mut(), res.extensions().get::<Owner>()) {
        t.is_self = l.actors.account.is_some_and(|a| a.hash() == owner.0.hash());
        shared.engine.note_owner_reported(l.probe);
    }
    shared
        .engine
        .learn(l.now, &l.actors, l.probe, target, outcome);
}
