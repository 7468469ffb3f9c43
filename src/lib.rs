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
//! use enumguard::{GuardLayer, ProbeConfig, TargetConfig, AccountId};
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
//! # let _ = app; let _: Option<SocketAddr> = None;
//! ```
//!
//! On an `objects` probe a target equal to the caller's account id is its
//! own; where object ids are not account ids, the handler reports the owner
//! with an [`Owner`] in the response (see [`ProbeConfig::objects`]).
//!
//! # Deployment caveat
//! The guard keys on the TCP peer address. Behind a proxy or load balancer,
//! list it in [`GuardBuilder::trusted_proxies`]; headers from anyone else
//! are ignored. See [`actor`].
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
#![deny(unreachable_pub, unsafe_code)]

pub mod actor;
mod body;
mod clock;
pub mod config;
mod engine;
mod future;
mod handle;
mod layer;
pub mod metrics;
mod policy;
mod probe;
mod response;
mod service;
mod signal;
mod store;
mod verdict;
mod view;

pub use actor::{
    AccountId, Actor, ActorKey, ActorKind, AsAccountId, Cidr, ForwardedHeader, PeerAddr,
};
pub use body::{GuardBody, ResponseBody};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    BlockConfig, Config, ConfigError, ConfigErrorKind, KindFactors, Limits, LinkConfig, ListConfig,
    MissingPeer, Mode, OutcomeConfig, Oversized, ProbeConfig, ProbeStyle, ResponseConfig,
    ServiceViewConfig, SessionSource, TargetConfig, Thresholds, ThrottleConfig,
};
pub use future::ResponseFuture;
pub use handle::{GuardHandle, Suspect};
pub use layer::{GuardBuilder, GuardLayer};
pub use probe::{Outcome, Owner, StatusSpec};
pub use response::{DefaultRefusal, OnRefusal, Refusal, RefusalKind};
pub use service::Guard;
pub use verdict::{Verdict, VerdictReason};
