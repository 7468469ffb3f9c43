//! [`Guard`]: identify -> gate -> pre-check -> forward | refuse.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::actor::{
    AccountId, ActorKey, ActorKind, Actors, Cidr, client_ip, cookie, has_peer, hash128, in_any,
    peer_addr,
};
use crate::body::{GuardBody, ResponseBody};

use crate::clock::SharedClock;
use crate::config::{MissingPeer, Mode, SessionSource};
use crate::engine::Engine;
use crate::future::{Learn, ResponseFuture};
use crate::probe::{TARGET_BUF, TargetInfo};
use crate::response::{OnRefusal, Refusal, RefusalKind};
use crate::verdict::{Gate, VerdictReason};

pub(crate) type AccountFn = Arc<dyn Fn(&Parts) -> Option<AccountId> + Send + Sync>;
/// The ownership hook: `(parts, probe name, target) -> the caller owns it`.
pub(crate) type OwnsFn = Arc<dyn Fn(&Parts, &str, &[u8]) -> bool + Send + Sync>;

/// State shared by every clone of the layer and the service.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) clock: SharedClock,
    pub(crate) mode: Mode,
    pub(crate) missing_peer: MissingPeer,
    pub(crate) ip_prefix: (u8, u8),
    pub(crate) subnet_prefix: (u8, u8),
    pub(crate) trusted: Vec<Cidr>,
    pub(crate) forwarded_header: crate::actor::ForwardedHeader,
    pub(crate) allow: Vec<Cidr>,
    pub(crate) deny: Vec<Cidr>,
    pub(crate) allow_accounts: Vec<u128>,
    pub(crate) deny_accounts: Vec<u128>,
    pub(crate) session: Option<SessionSource>,
    /// The session header's name, parsed once (a `&str` lookup parses it
    /// on every request).
    pub(crate) session_header: Option<http::HeaderName>,
    pub(crate) session_key: (u64, u64),
    /// Secret key of the distinct-target sketch.
    pub(crate) target_key: (u64, u64),
    pub(crate) account: Option<AccountFn>,
    pub(crate) owns: Option<OwnsFn>,
    pub(crate) responder: Arc<dyn OnRefusal>,
    pub(crate) warned_missing_peer: AtomicBool,
    pub(crate) hot: crate::metrics::Hot,
}

/// How much of a request's attribution a step needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Only that the peer address is known (a request no probe, verdict or
    /// list concerns).
    Peer,
    /// The address actors (ip, subnet).
    Addr,
    /// Every actor, session and account included.
    Full,
}

/// The outcome of [`Shared::route`].
pub(crate) enum Route {
    /// Nothing concerns the request: forward it as it is.
    Pass,
    Refuse(Refusal),
    /// The full steps, for this probe (if any), with the clock if it was
    /// read already.
    Full(Option<Matched>, Option<u64>),
}

/// A matched probe: its index, and the byte range of its path capture.
pub(crate) type Matched = (usize, Option<(usize, usize)>);

/// The outcome of the steps before the inner service.
pub(crate) enum Step {
    Forward(Option<Learn>),
    Refuse(Refusal),
    /// A JSON-body probe: read the body first.
    ReadBody(Learn),
}

impl Shared {
    pub(crate) fn unknown_ip() -> ActorKey {
        ActorKey::hashed(ActorKind::Ip, 0)
    }

    /// Attributes the request to its actors, as far as `need` asks: the
    /// session hash, the account closure and even the forwarding headers
    /// are skipped where nothing would read them.
    pub(crate) fn identify(&self, parts: &Parts, need: Need) -> Result<Actors, Refusal> {
        let mut actors = Actors::default();
        match peer_addr(&parts.extensions) {
            Some(peer) => {
                let ip = client_ip(peer, &parts.headers, &self.trusted, self.forwarded_header);
                actors.addr = Some(ip);
                actors.ip = Some(ActorKey::ip(
                    ip,
                    self.ip_prefix.0,
                    self.ip_prefix.1,
                    ActorKind::Ip,
                ));
                actors.subnet = Some(ActorKey::ip(
                    ip,
                    self.subnet_prefix.0,
                    self.subnet_prefix.1,
                    ActorKind::Subnet,
                ));
            }
            None => actors.ip = Some(self.missing_peer()?),
        }
        if need != Need::Full {
            return Ok(actors);
        }
        if let Some(src) = &self.session {
            let token = match src {
                SessionSource::Header(_) => self
                    .session_header
                    .as_ref()
                    .and_then(|h| parts.headers.get(h))
                    .map(|v| v.as_bytes()),
                SessionSource::Cookie(c) => cookie(&parts.headers, c),
            };
            if let Some(t) = token.filter(|t| !t.is_empty()) {
                actors.session = Some(ActorKey::hashed(
                    ActorKind::Session,
                    hash128(self.session_key, t),
                ));
            }
        }
        if let Some(f) = &self.account {
            actors.account = f(parts);
        }
        Ok(actors)
    }

    /// A request without a peer address: `ip:unknown`, or a refusal.
    #[cold]
    fn missing_peer(&self) -> Result<ActorKey, Refusal> {
        match self.missing_peer {
            MissingPeer::Unknown => Ok(Self::unknown_ip()),
            // Observe mode refuses nothing, not even this.
            MissingPeer::Refuse if self.mode == Mode::Observe => {
                if !self.warned_missing_peer.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        target: "enumguard",
                        "request without a peer address (observe mode: counted as `ip:unknown`); \
                         in enforce mode such requests are refused with 500. Serve with \
                         `into_make_service_with_connect_info::<SocketAddr>()` (axum) or insert \
                         `enumguard::PeerAddr` into request extensions."
                    );
                }
                metrics::counter!(crate::metrics::WOULD_REFUSE, "reason" => "missing_peer", "actor_kind" => "none").increment(1);
                Ok(Self::unknown_ip())
            }
            MissingPeer::Refuse => {
                metrics::counter!(crate::metrics::REFUSED, "reason" => "missing_peer", "actor_kind" => "none").increment(1);
                if !self.warned_missing_peer.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        target: "enumguard",
                        "request without a peer address: serve with `into_make_service_with_connect_info::<SocketAddr>()` \
                         (axum) or insert `enumguard::PeerAddr` / `SocketAddr` into request extensions; \
                         or set `missing_peer = \"unknown\"`. Refusing such requests with 500."
                    );
                }
                Err(Refusal::new(RefusalKind::MissingPeer, None, None, None))
            }
        }
    }

    pub(crate) fn session_key_of(&self, token: &str) -> ActorKey {
        ActorKey::hashed(
            ActorKind::Session,
            hash128(self.session_key, token.as_bytes()),
        )
    }

    /// The first look at a request, before its head is taken apart: which
    /// probe it is for, and whether anything concerns it at all. Most
    /// requests of a service match no probe and, while no list is configured
    /// and no ban or account/session block is held, stop here.
    #[inline]
    pub(crate) fn route(&self, method: &Method, path: &str, ext: &http::Extensions) -> Route {
        // The clock, if read here, is handed on rather than read again.
        let mut now = None;
        // The probe and where its path capture lies in `path`.
        let probe = self.engine.probes.iter().enumerate().find_map(|(i, p)| {
            let capture = p.matches(method, path)?;
            Some((
                i,
                capture.map(|c| {
                    let start = c.as_ptr().addr() - path.as_ptr().addr();
                    (start, start + c.len())
                }),
            ))
        });
        // Without a probe, only a ban or an account's or session's block can
        // refuse the request (address verdicts and throttles cover probe
        // requests only): while none is held, nothing needs identifying.
        if probe.is_none()
            && self.allow.is_empty()
            && self.deny.is_empty()
            && self.allow_accounts.is_empty()
            && self.deny_accounts.is_empty()
            && self
                .engine
                .verdicts
                .no_wide(|| *now.insert(self.clock.now()))
        {
            // Nothing concerns this request: it only needs a known peer.
            if !has_peer(ext) {
                if let Err(r) = self.missing_peer() {
                    return Route::Refuse(r);
                }
            }
            return Route::Pass;
        }
        Route::Full(probe, now)
    }

    /// Everything before the inner service, for a request whose head is
    /// `parts` and that [`route`](Self::route) matched to `probe`.
    pub(crate) fn before(&self, parts: &Parts, probe: Option<Matched>, now: Option<u64>) -> Step {
        let engine = &self.engine;
        // The capture, from the same path `route` read.
        let matched = probe.map(|(i, range)| {
            (
                i,
                range.and_then(|(start, end)| parts.uri.path().get(start..end)),
            )
        });
        let verdicts = !engine.verdicts.is_empty();
        let need = if matched.is_some()
            || verdicts
            || !self.allow_accounts.is_empty()
            || !self.deny_accounts.is_empty()
        {
            Need::Full
        } else if !self.allow.is_empty() || !self.deny.is_empty() {
            Need::Addr
        } else {
            Need::Peer
        };
        if need == Need::Peer {
            // Nothing concerns this request: it only needs a known peer.
            if !has_peer(&parts.extensions) {
                if let Err(r) = self.missing_peer() {
                    return Step::Refuse(r);
                }
            }
            return Step::Forward(None);
        }
        // The clock is read once, and only when something will use it.
        let now = if matched.is_some() || verdicts {
            now.unwrap_or_else(|| self.clock.now())
        } else {
            0
        };
        let actors = match self.identify(parts, need) {
            Ok(a) => a,
            Err(r) => return Step::Refuse(r),
        };
        let account_hash = actors.account.map(|a| a.hash());
        if actors.addr.is_some_and(|ip| in_any(&self.allow, ip))
            || account_hash.is_some_and(|h| self.allow_accounts.contains(&h))
        {
            return Step::Forward(None);
        }
        if actors.addr.is_some_and(|ip| in_any(&self.deny, ip))
            || account_hash.is_some_and(|h| self.deny_accounts.contains(&h))
        {
            let kind = if actors.addr.is_some_and(|ip| in_any(&self.deny, ip)) {
                ActorKind::Ip
            } else {
                ActorKind::Account
            };
            if let Some(r) = self.refuse_or_observe(Refusal::new(
                RefusalKind::Denylisted,
                Some(kind),
                None,
                None,
            )) {
                return Step::Refuse(r);
            }
        }
        // The probe's target, when the head holds it.
        let mut learn: Option<Learn> = None;
        if let Some((i, capture)) = matched {
            let probe = &engine.probes[i];
            let mut l = Learn {
                probe: i as u8,
                target: None,
                actors,
                now,
            };
            if !probe.needs_body() {
                let mut buf = [0u8; TARGET_BUF];
                if let Some(bytes) =
                    probe.head_target(capture, parts.uri.query(), &parts.headers, &mut buf)
                {
                    let mut target = TargetInfo::new(
                        bytes,
                        actors.account.as_ref(),
                        probe.self_target,
                        self.target_key,
                    );
                    if !target.is_self {
                        if let Some(owns) = &self.owns {
                            target.is_self = owns(parts, &probe.name, bytes);
                        }
                    }
                    l.target = Some(target);
                }
            }
            learn = Some(l);
        }
        if !engine.verdicts.is_empty() {
            if let Some(r) = self.gate(&actors, now, learn.map(|l| l.probe)) {
                if let Some(r) = self.refuse_or_observe(r) {
                    // Pressing on against a throttle with new targets is
                    // evidence too: it moves the actor toward a block.
                    if r.kind() == RefusalKind::Throttled {
                        if let Some(l) = learn.filter(|l| l.target.is_some()) {
                            engine.learn(now, &actors, l.probe, l.target, None);
                        }
                    }
                    return Step::Refuse(r);
                }
            }
        }
        let Some(learn) = learn else {
            return Step::Forward(None);
        };
        if engine.probes[learn.probe as usize].needs_body() {
            return Step::ReadBody(learn);
        }
        if let Some(target) = learn.target {
            if let Some(r) = self.precheck(&learn, &target) {
                return Step::Refuse(r);
            }
        }
        Step::Forward(Some(learn))
    }

    /// The pre-check of a probe request with its target; `Some` refuses.
    pub(crate) fn precheck(&self, learn: &Learn, target: &TargetInfo) -> Option<Refusal> {
        let pre = self
            .engine
            .precheck(learn.now, &learn.actors, learn.probe, target)?;
        let name = &self.engine.probes[learn.probe as usize].name;
        self.refuse_or_observe(Refusal::new(
            RefusalKind::Blocked,
            Some(pre.actor.kind()),
            Some(pre.retry_after),
            Some(name),
        ))
    }

    /// Looks up each actor's verdict.
    ///
    /// A block on an account or session refuses every request of that
    /// actor; a throttle limits its probe requests. A verdict that detection put on a *shared* actor (an ip or a
    /// subnet: a NAT, an office) refuses only anonymous requests (no
    /// account) to the probe it was caught on: the people behind that
    /// address can still log in and use the service, each judged on its own
    /// account (a new account there inherits no suspicion but is watched:
    /// see `Engine::context`). An operator's ban refuses everything.
    fn gate(&self, actors: &Actors, now: u64, this_probe: Option<u8>) -> Option<Refusal> {
        let engine = &self.engine;
        let anonymous = actors.account.is_none();
        for key in actors.keys() {
            let shared = matches!(key.kind(), ActorKind::Ip | ActorKind::Subnet);
            let applies = |throttle: bool, reason: VerdictReason, probe: Option<u8>| {
                if reason == VerdictReason::Manual {
                    return true;
                }
                if shared {
                    // See above: only anonymous requests to the probe the
                    // address was caught on.
                    return anonymous
                        && this_probe.is_some()
                        && (probe.is_none() || probe == this_probe);
                }
                // A throttle is a reduced quota on the enumerable endpoints;
                // a block refuses everything.
                !throttle || this_probe.is_some()
            };
            let (kind, retry, probe) = match engine.verdicts.check(&key, now, applies) {
                Gate::Pass => continue,
                Gate::Blocked { retry_after, probe } => (RefusalKind::Blocked, retry_after, probe),
                Gate::Throttled { retry_after, probe } => {
                    (RefusalKind::Throttled, retry_after, probe)
                }
            };
            let name = probe
                .and_then(|p| engine.probes.get(p as usize))
                .map(|p| &p.name);
            return Some(Refusal::new(kind, Some(key.kind()), Some(retry), name));
        }
        None
    }

    /// In enforce mode, the refusal; in observe mode, counts it and lets the
    /// request through.
    pub(crate) fn refuse_or_observe(&self, r: Refusal) -> Option<Refusal> {
        let actor_kind = r.actor_kind().map_or("none", ActorKind::as_str);
        if self.mode == Mode::Observe && r.kind() != RefusalKind::MissingPeer {
            metrics::counter!(crate::metrics::WOULD_REFUSE, "reason" => r.kind().as_str(), "actor_kind" => actor_kind).increment(1);
            tracing::debug!(target: "enumguard", reason = r.kind().as_str(), actor_kind, "observe mode: would refuse");
            return None;
        }
        metrics::counter!(crate::metrics::REFUSED, "reason" => r.kind().as_str(), "actor_kind" => actor_kind).increment(1);
        tracing::debug!(target: "enumguard", reason = r.kind().as_str(), actor_kind, "refused");
        Some(r)
    }

    /// The refusal's response, with the [`Refusal`] in its extensions.
    pub(crate) fn refusal_response(&self, r: Refusal) -> Response<Bytes> {
        let mut res = self.responder.response(&r);
        res.extensions_mut().insert(r);
        res
    }
}

/// The guard service; see [`GuardLayer`](crate::GuardLayer).
///
/// Every clone shares the same state. A refusal is a response (with a
/// [`Refusal`] in its extensions), never an error; errors of the inner
/// service pass through unchanged.
pub struct Guard<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S: Clone> Clone for Guard<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
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
        self.shared
            .hot
            .get(&self.shared.engine.probes)
            .requests
            .increment(1);
        let (probe, now) = match self
            .shared
            .route(req.method(), req.uri().path(), req.extensions())
        {
            Route::Pass => {
                let fut = self.inner.call(req.map(GuardBody::new));
                return ResponseFuture::forward(fut, None);
            }
            Route::Refuse(r) => return ResponseFuture::refused(self.shared.refusal_response(r)),
            Route::Full(probe, now) => (probe, now),
        };
        let (parts, body) = req.into_parts();
        match self.shared.before(&parts, probe, now) {
            Step::Forward(learn) => {
                let req = Request::from_parts(parts, GuardBody::new(body));
                let fut = self.inner.call(req);
                ResponseFuture::forward(fut, learn.map(|l| (l, self.shared.clone())))
            }
            Step::Refuse(r) => ResponseFuture::refused(self.shared.refusal_response(r)),
            Step::ReadBody(learn) => {
                // The inner service is called once the body is read: take
                // the ready service, leave a clone in its place.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::read_body(inner, parts, body, learn, self.shared.clone())
            }
        }
    }
}
