//! [`ResponseFuture`]: reads a probe's JSON body when it has to (and hands
//! its target to the detector), forwards to the inner service, and reports
//! the answer's head.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::request::Parts;
use http::{Request, Response};
use http_body::{Body, Frame};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::access::Seen;
use super::body::{GuardBody, ResponseBody, to_bytes_frame};
use super::shared::Tracked;
use crate::detect::{Answered, BodyRead, Decision, Refusal};

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
            learn: Option<Tracked>,
        },
        // Forward, with the access log on (its own state: without the log
        // the common future carries nothing for it).
        Logged {
            #[pin]
            fut: S::Future,
            learn: Option<Tracked>,
            log: Option<Box<Seen>>,
        },
        Refused {
            res: Option<Response<Bytes>>,
            log: Option<Box<Seen>>,
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
    tracked: Option<Tracked>,
    log: Option<Box<Seen>>,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<GuardBody<B>>>,
    B: Body,
{
    /// Forwarded, nothing to learn nor log.
    #[inline]
    pub(crate) fn pass(fut: S::Future) -> Self {
        Self {
            state: State::Forward { fut, learn: None },
        }
    }

    #[inline]
    pub(crate) fn forward(fut: S::Future, learn: Option<Tracked>, log: Option<Box<Seen>>) -> Self {
        let state = match log {
            None => State::Forward { fut, learn },
            log => State::Logged { fut, learn, log },
        };
        Self { state }
    }

    pub(crate) fn refused(res: Response<Bytes>, log: Option<Box<Seen>>) -> Self {
        Self {
            state: State::Refused {
                res: Some(res),
                log,
            },
        }
    }

    pub(crate) fn read_body(
        inner: S,
        parts: Parts,
        body: B,
        tracked: Tracked,
        log: Option<Box<Seen>>,
    ) -> Self {
        Self {
            state: State::Reading {
                reading: Box::new(Reading {
                    body: Some(Box::pin(body)),
                    frames: VecDeque::new(),
                    read: 0,
                    parts: Some(parts),
                    inner: Some(inner),
                    tracked: Some(tracked),
                    log,
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
                    if let Some(t) = learn.as_mut() {
                        learn_from(t, &res);
                    }
                    *learn = None;
                    return Poll::Ready(Ok(res.map(ResponseBody::inner)));
                }
                StateProj::Logged { fut, learn, log } => {
                    let res = ready!(fut.poll(cx))?;
                    if let Some(t) = learn.as_mut() {
                        learn_from(t, &res);
                    }
                    *learn = None;
                    if let Some(s) = log.take() {
                        let refused = res.extensions().get::<Refusal>().map(|r| r.kind());
                        s.emit(res.status(), res.extensions(), refused);
                    }
                    return Poll::Ready(Ok(res.map(ResponseBody::inner)));
                }
                StateProj::Refused { res, log } => {
                    let res = res.take().expect("ResponseFuture polled after completion");
                    if let Some(s) = log.take() {
                        let refused = res.extensions().get::<Refusal>().map(|r| r.kind());
                        s.emit(res.status(), res.extensions(), refused);
                    }
                    return Poll::Ready(Ok(res.map(ResponseBody::refusal)));
                }
                StateProj::Reading { reading } => {
                    let Reading {
                        body,
                        frames,
                        read,
                        parts,
                        inner,
                        tracked,
                        log,
                    } = &mut **reading;
                    let limit = tracked
                        .as_ref()
                        .and_then(|t| t.ticket.as_ref()?.body_limit())
                        .unwrap_or(0);
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
                    let mut tracked = tracked.take().expect("ticket taken once");
                    let ticket = tracked.ticket.take().expect("ticket taken once");
                    let parts = parts.take().expect("parts taken once");
                    let mut inner = inner.take().expect("inner service taken once");
                    // After a read error the body is done: it is not polled again.
                    let rest = if ended || errored { None } else { body.take() };
                    let mut json = Vec::new();
                    let read_ = if *read > limit {
                        BodyRead::Oversized
                    } else if ended && !errored {
                        json.reserve_exact(*read);
                        for d in frames
                            .iter()
                            .filter_map(|f| f.as_ref().ok().and_then(|f| f.data_ref()))
                        {
                            json.extend_from_slice(d);
                        }
                        BodyRead::Read(&json)
                    } else {
                        BodyRead::Failed
                    };
                    let noted = log.as_deref_mut().map(|s| &mut s.noted);
                    let decision = tracked.shared.core().body(ticket, read_, noted);
                    let log = log.take();
                    let learn = match decision {
                        Decision::Refuse(r) => {
                            let res = tracked.shared.refusal_response(r);
                            self.as_mut().project().state.set(State::Refused {
                                res: Some(res),
                                log,
                            });
                            continue;
                        }
                        Decision::Track(ticket) => {
                            tracked.ticket = Some(ticket);
                            Some(tracked)
                        }
                        Decision::Pass => None,
                    };
                    let frames = std::mem::take(frames);
                    let req = Request::from_parts(parts, GuardBody::replay(frames, rest));
                    let fut = inner.call(req);
                    let state = match log {
                        None => State::Forward { fut, learn },
                        log => State::Logged { fut, learn, log },
                    };
                    self.as_mut().project().state.set(state);
                }
            }
        }
    }
}

/// Hands a tracked request's answer back to the detector (which reads it
/// by the policy the request was decided by; a reload meanwhile applies from
/// the next one). The ticket is read where it is, then dropped.
#[inline]
fn learn_from<T>(t: &mut Tracked, res: &Response<T>) {
    if let Some(ticket) = &t.ticket {
        let start = (t.spent_ns > 0).then(std::time::Instant::now);
        let answer = Answered::read(res.status(), res.extensions());
        t.shared.core().answered(ticket, &answer);
        t.ticket = None;
        if let Some(start) = start {
            let before = std::time::Duration::from_nanos(u64::from(t.spent_ns));
            t.shared.timing.record(before + start.elapsed());
        }
    }
}
