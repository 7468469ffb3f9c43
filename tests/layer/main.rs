//! The guard as a tower service, without TCP: `service_fn` inner services,
//! `oneshot` calls, time through a `ManualClock`.
//!
//! Covers the gate (bans by ip, account, session; expiry; unban), the lists,
//! observe mode, a missing peer address, inner errors, the refusal hook,
//! shared state between clones, IPv6 grouping, hostile proxy headers, and
//! JSON-body probes handing the body to the inner service unchanged.

//!
//! One file per part: `bans.rs`, `lists.rs`, `errors.rs`, `proxies.rs`,
//! `bodies.rs`, `reload.rs`, `state.rs`, `hints.rs`, `access.rs`.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod bans;
mod bodies;
mod errors;
mod hints;
mod lists;
mod proxies;
mod reload;
mod state;

pub(crate) use std::collections::VecDeque;
pub(crate) use std::convert::Infallible;
pub(crate) use std::fmt;
pub(crate) use std::net::{IpAddr, SocketAddr};
pub(crate) use std::pin::Pin;
pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};
pub(crate) use std::sync::{Arc, Mutex};
pub(crate) use std::task::{Context, Poll};
pub(crate) use std::time::Duration;

pub(crate) use bytes::Bytes;
pub(crate) use enumguard::{
    AccountId, Actor, ActorKind, GuardBody, GuardLayer, ManualClock, MissingPeer, Mode, Oversized,
    ProbeConfig, Refusal, RefusalKind, TargetConfig, Verdict, VerdictReason,
};
pub(crate) use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
pub(crate) use http_body::{Body, Frame, SizeHint};
pub(crate) use http_body_util::{BodyExt, Full};
pub(crate) use tower::{Layer, Service, ServiceExt, service_fn};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A GET request from `peer` (a plain `SocketAddr` in the extensions).
pub(crate) fn get_from(peer: &str) -> Request<Full<Bytes>> {
    let mut req = Request::get("/hello")
        .body(Full::new(Bytes::new()))
        .unwrap();
    req.extensions_mut()
        .insert(SocketAddr::new(ip(peer), 40000));
    req
}

pub(crate) fn with_header(
    mut req: Request<Full<Bytes>>,
    name: &'static str,
    value: &str,
) -> Request<Full<Bytes>> {
    req.headers_mut()
        .append(name, HeaderValue::from_str(value).unwrap());
    req
}

/// An inner service that counts its calls and answers 200 "ok".
#[allow(clippy::type_complexity)]
pub(crate) fn counting<B>(
    calls: Arc<AtomicUsize>,
) -> impl Service<
    Request<GuardBody<B>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>,
> + Clone
where
    B: Body,
{
    service_fn(move |_req: Request<GuardBody<B>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
    })
}

/// One request through the guard from `layer` over a counting service:
/// the response, its body read, and the refusal it carries, if any.
pub(crate) async fn call(
    layer: &GuardLayer,
    calls: &Arc<AtomicUsize>,
    req: Request<Full<Bytes>>,
) -> (Response<Bytes>, Option<Refusal>) {
    let svc = layer.layer(counting::<Full<Bytes>>(calls.clone()));
    let res = svc.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let refusal = parts.extensions.get::<Refusal>().cloned();
    (Response::from_parts(parts, bytes), refusal)
}
