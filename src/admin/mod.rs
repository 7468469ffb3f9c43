//! The admin service (feature `admin`): a tower service speaking JSON that
//! an application mounts where it wants, on its own listener, to list
//! suspects and verdicts, inspect an actor, ban, unban, read, reload and
//! roll back the config while the guard runs.
//!
//! **Never expose it publicly**: whoever reaches it can lift any block and
//! replace the guard's config. Mount it on an internal listener. It needs
//! a bearer token ([`AdminService::new`]); without one it must be asked for
//! by name, [`AdminService::insecure_without_token`], for a service that
//! puts its own auth in front.
//!
//! | file | role |
//! |---|---|
//! | `service.rs` | [`AdminService`]: its construction, the tower service, the routing of a request to its answer |
//! | `auth.rs` | who may ask: the bearer token (a keyed hash, compared in constant time), [`TokenError`]; the writes a browser could send from another site, refused |
//! | `request.rs` | reading a request: its body (at most [`MAX_BODY`] bytes), a JSON body with its values left out of errors, who asked |
//! | `naming.rs` | naming an actor: by kind and id, as the listings write it (`kind:value`), or by its hash; in a body or a URL path |
//! | `actors.rs` | the actor routes: suspects, verdicts, one actor, bans and their lifting |
//! | `reload.rs` | the config routes: `GET /config`, reloads (dry run, probe removal), rollback |
//! | `answer.rs` | the answers: JSON (TOML for the config), never cached; errors; how verdicts and suspects are written |
//!
//! What it serves:
//!
//! | request | answer |
//! |---|---|
//! | `GET /suspects?min_score=0.5` | actors by suspicion, with strikes and verdict |
//! | `GET /verdicts` | every live verdict: actor, kind, reason, time remaining, probe, and a ban's `note` |
//! | `GET /actors/{kind}/{value}` | one actor's verdict (as the gate reads it) and records |
//! | `GET /actors/{actor}` | the same for an actor as the listings write it: `account:%23e7634a0c5b1d2f39` |
//! | `POST /actors/lookup` | the same for `{"kind": "session", "value": "..."}` or `{"actor": "session:#..."}` |
//! | `POST /bans` | `{"actor": {"kind": "ip", "value": "203.0.113.9"}, "secs": 600, "reason": "..."}` (or `"actor": "account:#..."`); the reason is kept as the ban's `note` |
//! | `DELETE /bans/{kind}/{value}`, `DELETE /bans/{actor}` | lifts the actor's verdict (404 if it had none) |
//! | `POST /bans/lift` | the same for `{"actor": {"kind": "session", "value": "..."}}` or `{"actor": "session:#..."}` |
//! | `GET /config` | the running config as TOML, every default written out, secrets `<redacted>` |
//! | `POST /reload` | the body is a whole TOML config; answers what changed; refused (409) if it removes probes |
//! | `POST /reload?remove_probes=true` | the same, removing the probes the config no longer has |
//! | `POST /reload?dry_run=true` | what the reload would change, without applying it |
//! | `POST /rollback` | back to the config that ran before the last change (`?dry_run=true`: what would change) |
//!
//! # Naming an actor
//! `kind` is `ip`, `subnet`, `session` or `account`; `value` is the address,
//! the session token or the account id as the application names it, or,
//! for a session or an account, the hash the listings show (`#` and 16 hex
//! digits: `#e7634a0c5b1d2f39`). A hash names only an actor the guard
//! knows (one it holds records or a verdict for; 404 otherwise): it keeps
//! part of the key, so a new actor is named by its id. Wherever an actor is
//! named, the `actor` a listing shows (`account:#e7634a0c5b1d2f39`,
//! `subnet:198.51.100.0/24`) is taken as it is: as one string in a body,
//! as one path segment in a URL.
//!
//! In a URL path, values are percent-encoded: `#` starts a URL's fragment,
//! which clients never send, so write it `%23`
//! (`DELETE /bans/account/%23e7634a0c5b1d2f39`, or
//! `DELETE /bans/account:%23e7634a0c5b1d2f39`), and `/` as `%2F`
//! (`/bans/subnet/198.51.100.0%2F24`). A session token never goes in a path;
//! a session's hash may.
//!
//! # Reloads
//! A reload answers what changed (`{"reloaded": true, "changed": true,
//! "summary": "...", "changes": [...]}`, each change as
//! [`Change`](crate::config::Change) writes it; `"changed": false` and
//! `"summary": "no change"` for a config that changes nothing), and logs it.
//! A config that lacks a probe the running one has is refused with 409 and
//! the probes it would remove (a file that lost its `[[probes]]` would
//! otherwise disarm the guard); to remove them, resend it to
//! `/reload?remove_probes=true`. `GET /config` gives the running config to
//! edit and send back: its `<redacted>` secrets (`session_key`, the
//! passwords of Redis URLs) stand for the running ones. `POST /rollback`
//! goes back to the config the last change replaced (a second rollback
//! undoes the first); records and verdicts stay.
//!
//! Paths are relative to where the service is mounted (axum's
//! `nest_service("/admin", ...)` strips the prefix). Every change (ban,
//! unban, reload, rollback, and a refused reload) is logged as a `warn`
//! event on target `enumguard` with the action, the actor or what changed,
//! the note, and who asked (the `X-Operator` header, else `unknown`).
//!
//! # Security
//! - Every request needs `Authorization: Bearer <token>` (401 otherwise).
//!   Tokens are compared as keyed 128-bit hashes of both, in constant
//!   time, so neither the content nor the length of the token leaks through
//!   timing.
//! - Every write (any method but `GET` and `HEAD`) needs
//!   `Content-Type: application/json` (`/rollback` included, whose body is
//!   empty), or `application/toml` for `/reload` (415 otherwise), and a
//!   write marked
//!   `Sec-Fetch-Site: cross-site` is refused (403): a page on another site
//!   can make a browser send a form (`text/plain`, urlencoded, multipart)
//!   with the operator's cookies, but not these types without a CORS
//!   preflight, which this service never grants. That is the defence when
//!   the auth in front is a cookie.
//! - A raw session token is never echoed: answers and logs name sessions
//!   by their keyed hash (`session:#...`), error messages leave values out,
//!   and a session token is refused in a URL path (where proxies and access
//!   logs keep it): name it in a body (`POST /actors/lookup`, `POST /bans`,
//!   `POST /bans/lift`), or by its hash.
//! - `GET /config` never shows a secret (the session key, Redis
//!   passwords), so a stolen token does not lead to them; a reload that
//!   removes probes must say so in its URL, and every change is logged
//!   with what it changed and who asked.
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use enumguard::{GuardLayer, admin::AdminService};
//! let layer = GuardLayer::builder().build().unwrap();
//! let admin = AdminService::new(layer.handle(), "s3cret-token-0123456789").unwrap();
//! // On an internal listener only:
//! let internal: axum::Router = axum::Router::new().nest_service("/admin", admin);
//! # }
//! ```
//!
//! A config that lost its probes is refused, and the answer says how to
//! force it:
//!
//! ```
//! use enumguard::{GuardLayer, ProbeConfig, TargetConfig, admin::AdminService};
//! use tower::ServiceExt;
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let layer = GuardLayer::builder()
//!     .probe(ProbeConfig::objects("book", "GET", "/book/{id}", TargetConfig::path("id")))
//!     .build()
//!     .unwrap();
//! let admin = AdminService::new(layer.handle(), "s3cret-token-0123456789").unwrap();
//! let reload = |uri: &str| {
//!     http::Request::post(uri)
//!         .header("authorization", "Bearer s3cret-token-0123456789")
//!         .header("content-type", "application/toml")
//!         .body(http_body_util::Full::new(bytes::Bytes::from("mode = \"observe\"")))
//!         .unwrap()
//! };
//! let res = admin.clone().oneshot(reload("/reload")).await.unwrap();
//! assert_eq!(res.status(), 409);
//! assert_eq!(layer.handle().config().probes.len(), 1, "still watched");
//! let res = admin.oneshot(reload("/reload?remove_probes=true")).await.unwrap();
//! assert_eq!(res.status(), 200);
//! assert!(layer.handle().config().probes.is_empty());
//! # });
//! ```

mod actors;
mod answer;
mod auth;
mod naming;
mod reload;
mod request;
mod service;

pub use actors::MAX_BAN_SECS;
pub use auth::{MAX_TOKEN_LEN, MIN_TOKEN_LEN, TokenError};
pub use request::MAX_BODY;
pub use service::AdminService;
