//! # enumguard
//!
//! A tower layer that catches enumeration attacks while they happen (an
//! account walking other accounts' object ids, a script guessing which
//! emails are registered) and stops them on the request path.
//!
//! Per request it attributes the request to its actors (ip, subnet, session,
//! account), keeps bounded per-actor signals for the endpoints you mark as
//! enumerable ([probes](ProbeConfig)): distinct targets, foreign targets,
//! misses, denials, sequential ids, cadence. It throttles or blocks actors
//! whose pattern is enumeration, with escalating and linked verdicts.
//!
//! ```
//! use std::net::SocketAddr;
//! use axum::{Router, routing::get};
//! use enumguard::{AccountId, GuardLayer, ProbeConfig, Refusal, TargetConfig};
//! use tower::ServiceExt;
//!
//! let guard = GuardLayer::builder()
//!     .probe(ProbeConfig::objects(
//!         "addressbook", "GET", "/api/accounts/{id}/addressbook", TargetConfig::path("id"),
//!     ))
//!     .probe(ProbeConfig::identities(
//!         "lookup", "GET", "/api/recipients/lookup", TargetConfig::query("email"),
//!     ))
//!     // Who is calling: here a header an authenticating proxy sets (never
//!     // one the client can write); usually your session lookup.
//!     .account(|parts| parts.headers.get("x-user-id")?.to_str().ok().map(AccountId::new))
//!     .build()
//!     .expect("valid enumguard config");
//!
//! let app: Router = Router::new()
//!     .route("/api/accounts/{id}/addressbook", get(|| async { "..." }))
//!     .layer(guard);
//! // Serve with the peer address, which the guard needs:
//! // axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // Account 7 walks other accounts' address books: throttled from the
//! // 9th, blocked by the 15th.
//! let mut statuses = Vec::new();
//! for id in 100..120 {
//!     let mut req = http::Request::get(format!("/api/accounts/{id}/addressbook"))
//!         .header("x-user-id", "7")
//!         .body(axum::body::Body::empty())
//!         .unwrap();
//!     req.extensions_mut().insert(SocketAddr::from(([127, 0, 0, 1], 40000)));
//!     let res = app.clone().oneshot(req).await.unwrap();
//!     statuses.push(res.status().as_u16());
//!     if res.status() == 429 {
//!         assert!(res.extensions().get::<Refusal>().is_some());
//!         assert!(res.headers().contains_key("retry-after"));
//!     }
//! }
//! assert_eq!(statuses[..9], [200; 9]);
//! assert!(statuses.iter().filter(|s| **s == 200).count() <= 15);
//! assert_eq!(statuses[15..], [429; 5]);
//! # });
//! ```
//!
//! On an `objects` probe a target equal to the caller's account id is its
//! own; where object ids are not account ids, the handler reports the owner
//! with an [`Owner`] in the response (see [`ProbeConfig::objects`]).
//!
//! What the application knows and the guard cannot is prior trust, never a
//! requirement: the account's [`Standing`] (established or new, through
//! [`AccountId::with_standing`] or a request extension), and [`Known`] in
//! the response of an identities probe when the caller already knows the
//! target (its contacts). Without them every bound holds.
//!
//! # Architecture
//! One sans-IO core, [`detect::Detector`], decides; adapters feed it facts.
//! The tower [`Guard`] is the adapter of this crate. Modules, one role each:
//!
//! | module | role |
//! |---|---|
//! | [`actor`] | who a request is attributed to: keys, accounts, CIDRs, the peer address, forwarding headers, sessions |
//! | [`config`] | the settings, their defaults, TOML loading, validation, errors |
//! | `probe` | the parts of a probe: path patterns, target extraction, outcome classification |
//! | `state` | the live state: signal records, the bounded store, the verdict table |
//! | [`detect`] | the core: the compiled policy, the steps, scoring, escalation, the service-wide view |
//! | `guard` | the tower adapter: layer, service, future, bodies, refusal responses, handle |
//! | `cluster` | feature `redis`: verdicts and evidence shared by replicas through Redis |
//! | `proxy` | feature `proxy`: the guard as a reverse proxy in front of any HTTP service (`enumguard proxy`) |
//! | `replay` | feature `cli`: access logs through the detector in the log's own time (`enumguard replay`) |
//!
//! # Deployment caveat
//! The guard keys on the TCP peer address. Behind a proxy or load balancer,
//! list it in [`GuardBuilder::trusted_proxies`]; headers from anyone else
//! are ignored. See [`actor`].
//!
//! # Where to read next
//! The [guide](_guide) takes each part in turn: [concepts](_guide::concepts),
//! [detection and its reasoning](_guide::detection),
//! [ownership and the application's hints](_guide::ownership),
//! [configuration](_guide::configuration) (the full TOML reference),
//! [wiring](_guide::wiring) (axum, hyper, tonic, the handle) and
//! [the cluster](_guide::cluster). Operating the guard (observe then
//! enforce, replay, the admin service, metrics, the proxy in production) is
//! the repository's `docs/operating.md`; measured figures are in
//! `EVALUATION.md` and `BENCHMARKS.md`.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
#![deny(unreachable_pub, unsafe_code)]

pub mod _guide;
pub mod actor;
#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod admin;
mod clock;
#[cfg(feature = "redis")]
mod cluster;
pub mod config;
pub mod detect;
mod guard;
pub mod metrics;
mod probe;
#[cfg(feature = "proxy")]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy")))]
pub mod proxy;
#[cfg(feature = "cli")]
#[cfg_attr(docsrs, doc(cfg(feature = "cli")))]
pub mod replay;
mod state;

// The crate root holds what an application touches: the layer and its
// builder, the handle, the hooks and what they take and return, the config
// a probe is written with, and what a refusal carries. The sections of a
// config (`config::ThrottleConfig`, ...), the sans-IO core (`detect`) and
// the actor keys' parts (`actor::Cidr`) are reached through their modules.
pub use actor::{
    AccountId, Actor, ActorKey, ActorKind, AsAccountId, ForwardedHeader, PeerAddr, Standing,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    Config, ConfigError, ConfigErrorKind, MissingPeer, Mode, OutcomeConfig, Oversized, ProbeConfig,
    ProbeStyle, SessionSource, TargetConfig, Thresholds,
};
pub use detect::{Refusal, RefusalKind};
pub use guard::{
    AccessRecord, ActiveVerdict, DefaultRefusal, Guard, GuardBody, GuardBuilder, GuardHandle,
    GuardLayer, OnRefusal, ResponseBody, ResponseFuture, Suspect,
};
pub use probe::{Known, Outcome, Owner, StatusSpec};
pub use state::{Verdict, VerdictReason};
