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

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::actor::{AccountId, Actor, ActorKey, ActorKind};
use crate::config::{Config, ConfigDiff, ConfigError, ReloadError};
use crate::guard::{ActiveVerdict, GuardHandle, Suspect};
use crate::state::{Verdict, VerdictReason};

/// The largest request body read (a config or a ban), in bytes.
pub const MAX_BODY: usize = 1 << 20;
/// The longest ban, in seconds (a year).
pub const MAX_BAN_SECS: u64 = 365 * 24 * 3600;

/// The shortest bearer token [`AdminService::new`] accepts, in bytes.
pub const MIN_TOKEN_LEN: usize = 16;
/// The longest bearer token [`AdminService::new`] accepts, in bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The admin service: see the [module docs](self). Cheap to clone.
#[derive(Clone)]
pub struct AdminService {
    handle: GuardHandle,
    auth: Auth,
}

#[derive(Clone)]
enum Auth {
    /// The keyed hash of the token, and its key (random per service).
    Token { key: (u64, u64), digest: u128 },
    /// No token: the application's own auth is in front.
    Insecure,
}

impl std::fmt::Debug for AdminService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match self.auth {
            Auth::Token { .. } => "bearer token <set>",
            Auth::Insecure => "none (insecure_without_token)",
        };
        f.debug_struct("AdminService")
            .field("auth", &auth)
            .finish_non_exhaustive()
    }
}

/// Why [`AdminService::new`] refused a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError(String);

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "enumguard admin token: {}", self.0)
    }
}

impl std::error::Error for TokenError {}

impl AdminService {
    /// The service over a guard's handle, requiring
    /// `Authorization: Bearer <token>` on every request (401 otherwise).
    ///
    /// # Errors
    /// A token shorter than [`MIN_TOKEN_LEN`] bytes (an empty one
    /// included), longer than [`MAX_TOKEN_LEN`], or with characters other
    /// than visible ASCII (it must fit a header unchanged). For a service
    /// with its own auth in front, and no token, say so:
    /// [`insecure_without_token`](Self::insecure_without_token).
    pub fn new(handle: GuardHandle, token: impl AsRef<str>) -> Result<Self, TokenError> {
        let token = token.as_ref();
        if token.len() < MIN_TOKEN_LEN {
            return Err(TokenError(format!(
                "at least {MIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 16`); \
                 for no token at all, with your own auth in front, use \
                 AdminService::insecure_without_token"
            )));
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError(format!("at most {MAX_TOKEN_LEN} characters")));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError(
                "visible ASCII characters only, no spaces (it travels in a header)".into(),
            ));
        }
        let key = random_key();
        Ok(Self {
            handle,
            auth: Auth::Token {
                key,
                digest: hash128(key, token.as_bytes()),
            },
        })
    }

    /// The service with **no auth of its own**: whoever reaches it can lift
    /// any block and replace the config. Only behind the application's own
    /// auth, on an internal listener. Writes still need a JSON or TOML
    /// content type (the defence against cross-site requests when that
    /// auth is a cookie). Logs a warning when made.
    pub fn insecure_without_token(handle: GuardHandle) -> Self {
        tracing::warn!(
            target: "enumguard",
            "enumguard admin service WITHOUT a token: anyone who reaches it can lift blocks \
             and replace the config; put your own auth in front of it"
        );
        Self {
            handle,
            auth: Auth::Insecure,
        }
    }

    fn authorized<B>(&self, req: &Request<B>) -> bool {
        let Auth::Token { key, digest } = &self.auth else {
            return true;
        };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .and_then(|v| (v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ")).then(|| &v[7..]))
            .unwrap_or(b"");
        // Fixed-size keyed hashes of both: the comparison takes the same
        // time whatever the given token's content and length.
        constant_time_eq(&hash128(*key, given).to_le_bytes(), &digest.to_le_bytes())
    }
}

/// A random key per service, from the standard library's randomly seeded
/// hasher.
fn random_key() -> (u64, u64) {
    use std::hash::{BuildHasher, Hasher};
    let s = std::collections::hash_map::RandomState::new();
    let mut a = s.build_hasher();
    a.write_u64(0x61_646d_696e);
    let mut b = s.build_hasher();
    b.write_u64(0x74_6f6b_656e);
    (a.finish(), b.finish())
}

fn hash128(key: (u64, u64), bytes: &[u8]) -> u128 {
    use siphasher::sip128::{Hasher128, SipHasher13};
    use std::hash::Hasher;
    let mut h = SipHasher13::new_with_keys(key.0, key.1);
    h.write(bytes);
    h.finish128().as_u128()
}

/// Equal 16-byte digests, in time independent of where they differ.
fn constant_time_eq(a: &[u8; 16], b: &[u8; 16]) -> bool {
    std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, body: Value) -> Answer {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Answer {
    answer(status, json!({ "error": message.to_string() }))
}

impl<B> tower_service::Service<Request<B>> for AdminService
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Answer;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            if !this.authorized(&req) {
                let mut res = error(StatusCode::UNAUTHORIZED, "a bearer token is required");
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                return Ok(res);
            }
            if let Err(refused) = write_allowed(&req) {
                return Ok(*refused);
            }
            Ok(this.route(req).await)
        })
    }
}

/// Refuses a write (any method but GET and HEAD) a browser could have
/// sent from another site: without a JSON or TOML content type (415), or
/// marked `Sec-Fetch-Site: cross-site` (403).
fn write_allowed<B>(req: &Request<B>) -> Result<(), Refused> {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return Ok(());
    }
    if req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "a cross-site request cannot change the guard",
        )));
    }
    let reload = req.uri().path().trim_end_matches('/').ends_with("/reload")
        || req.uri().path().trim_end_matches('/') == "reload";
    let want = if reload {
        "application/toml"
    } else {
        "application/json"
    };
    let given = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let ok = given
        .as_deref()
        .is_some_and(|t| t == want || (*req.method() == Method::DELETE && t == "application/toml"));
    if ok {
        return Ok(());
    }
    Err(Box::new(error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "a {} needs `Content-Type: {want}` (a form or text/plain, which another site can \
             make a browser send, is never accepted)",
            req.method()
        ),
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LiftRequest {
    actor: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BanRequest {
    actor: Value,
    secs: u64,
    #[serde(default, alias = "note")]
    reason: String,
}

/// An actor named by a request: resolved to its key, and, when named by
/// its id (not its hash), the actor itself (the gate reads an address
/// with its subnet).
struct Named {
    key: ActorKey,
    actor: Option<Actor>,
}

/// What a reload or a rollback was asked to do, from its query.
#[derive(Default)]
struct ReloadQuery {
    remove_probes: bool,
    dry_run: bool,
}

impl ReloadQuery {
    /// `remove_probes=true`, `dry_run=true` (alone, a name means `true`),
    /// the first only where `removal` is served.
    fn parse(query: &str, removal: bool) -> Result<Self, Refused> {
        let mut q = Self::default();
        let want = if removal {
            "want remove_probes=true or dry_run=true"
        } else {
            "want dry_run=true"
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, "true"));
            let on = match value {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(bad(format!("a query flag is true or false: {want}"))),
            };
            match name {
                "remove_probes" if removal => q.remove_probes = on,
                "dry_run" => q.dry_run = on,
                // Not repeated: a query is no place for values to echo.
                _ => return Err(bad(format!("unknown query parameter: {want}"))),
            }
        }
        Ok(q)
    }
}

impl AdminService {
    async fn route<B>(&self, req: Request<B>) -> Answer
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let who = req
            .headers()
            .get("x-operator")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .unwrap_or("unknown")
            .to_owned();
        let method = req.method().clone();
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let answer = |r: Result<Answer, Refused>| r.unwrap_or_else(|e| *e);
        match (&method, parts.as_slice()) {
            (&Method::GET, ["suspects"]) => self.suspects(&query),
            (&Method::GET, ["verdicts"]) => self.verdicts(),
            (&Method::GET, ["config"]) => self.config(),
            (&Method::POST, ["actors", "lookup"]) => answer(
                async {
                    let body = read(req).await?;
                    let named = self.lookup_body(&body)?;
                    Ok(self.actor(&named))
                }
                .await,
            ),
            (&Method::POST, ["bans", "lift"]) => answer(
                async {
                    let body = read(req).await?;
                    let lift: LiftRequest = json_body(&body, LIFT_BODY)?;
                    let named = self.named(&lift.actor)?;
                    Ok(self.unban(&named, &who))
                }
                .await,
            ),
            (&Method::GET, ["actors", kind, value]) => {
                answer(self.in_path(kind, value, LOOKUP).map(|n| self.actor(&n)))
            }
            (&Method::GET, ["actors", listed]) if *listed != "lookup" => answer(
                split_listed(listed)
                    .and_then(|(kind, value)| self.in_path(kind, value, LOOKUP))
                    .map(|n| self.actor(&n)),
            ),
            (&Method::POST, ["bans"]) => match read(req).await {
                Ok(body) => self.ban(&body, &who),
                Err(e) => *e,
            },
            (&Method::DELETE, ["bans", kind, value]) => answer(
                self.in_path(kind, value, LIFT)
                    .map(|n| self.unban(&n, &who)),
            ),
            (&Method::DELETE, ["bans", listed]) if *listed != "lift" => answer(
                split_listed(listed)
                    .and_then(|(kind, value)| self.in_path(kind, value, LIFT))
                    .map(|n| self.unban(&n, &who)),
            ),
            (&Method::POST, ["reload"]) => answer(
                async {
                    let q = ReloadQuery::parse(&query, true)?;
                    let body = read(req).await?;
                    Ok(self.reload(&body, &q, &who))
                }
                .await,
            ),
            (&Method::POST, ["rollback"]) => {
                answer(ReloadQuery::parse(&query, false).map(|q| self.rollback(q.dry_run, &who)))
            }
            (_, ["suspects" | "verdicts" | "bans" | "reload" | "rollback" | "config"])
            | (_, ["actors" | "bans", _])
            | (_, ["actors" | "bans", _, _]) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not served here"),
            ),
            _ => error(
                StatusCode::NOT_FOUND,
                "no such admin resource: see /suspects, /verdicts, /actors/{kind}/{value}, /bans, \
                 /config, /reload, /rollback",
            ),
        }
    }

    fn suspects(&self, query: &str) -> Answer {
        let mut min_score = 0.0;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("min_score", v)) => match v.parse::<f64>() {
                    Ok(x) if x.is_finite() => min_score = x,
                    _ => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            format!("min_score = `{v}`: want a number"),
                        );
                    }
                },
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("unknown query parameter `{pair}` (want min_score)"),
                    );
                }
            }
        }
        let list: Vec<Value> = self
            .handle
            .suspects(min_score)
            .iter()
            .map(|s| self.suspect_json(s))
            .collect();
        answer(StatusCode::OK, json!({ "suspects": list }))
    }

    fn verdicts(&self) -> Answer {
        let list: Vec<Value> = self.handle.verdicts().iter().map(active_json).collect();
        answer(StatusCode::OK, json!({ "verdicts": list }))
    }

    /// The actor a body of `POST /actors/lookup` names: `{"kind": ...,
    /// "value": ...}` or `{"actor": ...}`.
    fn lookup_body(&self, body: &[u8]) -> Result<Named, Refused> {
        let v: Value = json_body(body, LOOKUP_BODY)?;
        match v.as_object() {
            Some(o) if o.len() == 1 && o.contains_key("actor") => self.named(&o["actor"]),
            _ => self.named(&v),
        }
    }

    /// The actor a body names: `{"kind": ..., "value": ...}`, or one string
    /// as the listings write it (`account:#e7634a0c5b1d2f39`). Errors never
    /// repeat the value.
    fn named(&self, v: &Value) -> Result<Named, Refused> {
        let (kind, value) = match v {
            Value::String(listed) => split_listed(listed)?,
            Value::Object(o) => match (o.get("kind"), o.get("value")) {
                (Some(Value::String(k)), Some(Value::String(v))) if o.len() == 2 => {
                    (k.as_str(), v.as_str())
                }
                _ => return Err(bad(format!("actor: {WANT_ACTOR}"))),
            },
            _ => return Err(bad(format!("actor: {WANT_ACTOR}"))),
        };
        self.resolve(kind, value)
    }

    /// The actor a URL path names. A session token is refused there
    /// (proxies and access logs keep URLs: it goes in the body of
    /// `body_route`); a session's hash is not a secret and is taken.
    fn in_path(&self, kind: &str, value: &str, body_route: &str) -> Result<Named, Refused> {
        if kind == "session" && !percent_decode(value).is_some_and(|v| is_hash(&v)) {
            return Err(bad(format!(
                "a session token does not go in a URL (proxies and access logs keep URLs): \
                 send it in the body of {body_route}, or name the session by its hash \
                 (`/session/%23...`, as the listings write it)"
            )));
        }
        self.resolve(kind, value)
    }

    /// The key of the actor `kind` and `value` (percent-encoded or not)
    /// name: by its id, or, for a session or an account, by the hash the
    /// listings show (404 if no known actor has it).
    fn resolve(&self, kind: &str, value: &str) -> Result<Named, Refused> {
        let hashed = match kind {
            "account" => Some(ActorKind::Account),
            "session" => Some(ActorKind::Session),
            "ip" | "subnet" => None,
            // Not repeated: a token put in the wrong field is still a token.
            _ => return Err(bad("actor kind: want ip, subnet, session or account".into())),
        };
        let value = percent_decode(value)
            .ok_or_else(|| bad(format!("{kind}: the value's percent-encoding is bad")))?;
        if let Some(kind) = hashed.filter(|_| is_hash(&value)) {
            return match self.handle.known_key(kind, &value) {
                Some(key) => Ok(Named { key, actor: None }),
                // A hash is what the listings show, not a secret.
                None => Err(Box::new(error(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no {kind} known as {value}: a hash names only an actor the guard \
                         holds records or a verdict for (name a new one by its id)"
                    ),
                ))),
            };
        }
        let actor = actor(kind, &value).map_err(bad)?;
        let key = self.handle.key(&actor);
        // `ip:2001:db8:1:2::/64` as listed is that ip actor; any other
        // prefix is a network, which an ip actor is not.
        if kind == "ip" && value.contains('/') && key.to_string() != format!("ip:{value}") {
            return Err(bad(format!(
                "ip `{value}`: an ip actor is one address (for IPv6, its prefix as the \
                 listings write it); for a network, use kind subnet"
            )));
        }
        Ok(Named {
            key,
            actor: Some(actor),
        })
    }

    fn actor(&self, named: &Named) -> Answer {
        let key = named.key;
        let records: Vec<Value> = self
            .handle
            .suspects(f64::NEG_INFINITY)
            .iter()
            .filter(|s| s.actor == key)
            .map(|s| self.suspect_json(s))
            .collect();
        let verdict = match &named.actor {
            Some(actor) => self.handle.verdict(actor),
            None => self.handle.verdict_key(key),
        };
        answer(
            StatusCode::OK,
            json!({
                "actor": key.to_string(),
                "kind": key.kind().as_str(),
                "verdict": verdict_json(&verdict, self.handle.ban_note(key).as_deref()),
                "records": records,
            }),
        )
    }

    fn ban(&self, body: &[u8], who: &str) -> Answer {
        let ban: BanRequest = match json_body(body, BAN_BODY) {
            Ok(b) => b,
            Err(e) => return *e,
        };
        if !(1..=MAX_BAN_SECS).contains(&ban.secs) {
            return error(
                StatusCode::BAD_REQUEST,
                format!("secs = {}: want 1..={MAX_BAN_SECS}", ban.secs),
            );
        }
        let named = match self.named(&ban.actor) {
            Ok(n) => n,
            Err(e) => return *e,
        };
        let key = named.key;
        self.handle
            .ban_key(key, Duration::from_secs(ban.secs), &ban.reason);
        let note = self.handle.ban_note(key);
        tracing::warn!(
            target: "enumguard",
            action = "ban",
            actor = %key,
            secs = ban.secs,
            note = note.as_deref().unwrap_or(""),
            by = %who,
            "enumguard admin: ban"
        );
        answer(
            StatusCode::CREATED,
            json!({ "banned": key.to_string(), "secs": ban.secs, "note": note }),
        )
    }

    fn unban(&self, named: &Named, who: &str) -> Answer {
        let key = named.key;
        let note = self.handle.ban_note(key);
        let lifted = self.handle.unban_key(key);
        tracing::warn!(
            target: "enumguard",
            action = "unban",
            actor = %key,
            lifted,
            note = note.as_deref().unwrap_or(""),
            by = %who,
            "enumguard admin: unban"
        );
        if lifted {
            answer(
                StatusCode::OK,
                json!({ "unbanned": key.to_string(), "note": note }),
            )
        } else {
            error(StatusCode::NOT_FOUND, format!("{key} had no verdict"))
        }
    }

    /// The running config as TOML: every default written out, secrets
    /// redacted.
    fn config(&self) -> Answer {
        let toml = self
            .handle
            .config()
            .effective()
            .and_then(|c| c.redacted().to_toml_string());
        match toml {
            Ok(text) => {
                let body = format!(
                    "# The running config of this guard, every default written out.\n\
                     # Secrets read <redacted>: sent back to POST /reload, they keep the running ones.\n\n{text}"
                );
                let mut res = Response::new(Full::new(Bytes::from(body)));
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/toml; charset=utf-8"),
                );
                res.headers_mut().insert(
                    header::CACHE_CONTROL,
                    header::HeaderValue::from_static("no-store"),
                );
                res
            }
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }

    fn reload(&self, body: &[u8], q: &ReloadQuery, who: &str) -> Answer {
        let text = match std::str::from_utf8(body) {
            Ok(t) => t,
            Err(_) => return error(StatusCode::BAD_REQUEST, "the config is not UTF-8"),
        };
        let config = match parse_reload(text, &self.handle.config()) {
            Ok(c) => c,
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        };
        if q.dry_run {
            return match self.handle.diff(&config) {
                Ok(diff) => {
                    let mut a = diff_json(&diff);
                    a["dry_run"] = json!(true);
                    a["reloaded"] = json!(false);
                    a["removed"] = json!(diff.removed_probes().collect::<Vec<_>>());
                    answer(StatusCode::OK, a)
                }
                Err(e) => error(StatusCode::BAD_REQUEST, e),
            };
        }
        let result = if q.remove_probes {
            self.handle.reload(config).map_err(ReloadError::Invalid)
        } else {
            self.handle.reload_keeping_probes(config)
        };
        match result {
            Ok(diff) => {
                tracing::warn!(
                    target: "enumguard",
                    action = "reload",
                    changes = diff.len(),
                    diff = %diff,
                    by = %who,
                    "enumguard admin: config reloaded"
                );
                let mut a = diff_json(&diff);
                a["reloaded"] = json!(true);
                answer(StatusCode::OK, a)
            }
            Err(ReloadError::RemovesProbes { removed, diff }) => {
                tracing::warn!(
                    target: "enumguard",
                    action = "reload",
                    refused = "removes probes",
                    removed = %removed.join(", "),
                    by = %who,
                    "enumguard admin: reload refused"
                );
                let mut a = diff_json(&diff);
                a["error"] = json!(format!(
                    "the config removes the probe{s} `{names}`, whose requests would no longer \
                     be watched: nothing was changed. If that is meant, send it again to \
                     POST /reload?remove_probes=true",
                    s = if removed.len() == 1 { "" } else { "s" },
                    names = removed.join("`, `"),
                ));
                a["removed"] = json!(removed);
                a["reloaded"] = json!(false);
                answer(StatusCode::CONFLICT, a)
            }
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        }
    }

    fn rollback(&self, dry_run: bool, who: &str) -> Answer {
        let Some(previous) = self.handle.previous_config() else {
            return error(StatusCode::CONFLICT, NOTHING_TO_ROLL_BACK);
        };
        if dry_run {
            return match self.handle.diff(&previous) {
                Ok(diff) => {
                    let mut a = diff_json(&diff);
                    a["dry_run"] = json!(true);
                    a["rolled_back"] = json!(false);
                    answer(StatusCode::OK, a)
                }
                Err(e) => error(StatusCode::CONFLICT, e),
            };
        }
        match self.handle.rollback() {
            Ok(diff) => {
                tracing::warn!(
                    target: "enumguard",
                    action = "rollback",
                    changes = diff.len(),
                    diff = %diff,
                    by = %who,
                    "enumguard admin: config rolled back"
                );
                let mut a = diff_json(&diff);
                a["rolled_back"] = json!(true);
                answer(StatusCode::OK, a)
            }
            Err(ReloadError::NothingToRollBack) => {
                error(StatusCode::CONFLICT, NOTHING_TO_ROLL_BACK)
            }
            Err(e) => error(StatusCode::CONFLICT, e),
        }
    }

    fn suspect_json(&self, s: &Suspect) -> Value {
        let (actor, kind) = key_json(&s.actor);
        let note = match s.verdict {
            Verdict::Block {
                reason: VerdictReason::Manual,
                ..
            } => self.handle.ban_note(s.actor),
            _ => None,
        };
        json!({
            "actor": actor,
            "kind": kind,
            "probe": s.probe,
            "score": s.score,
            "strikes": s.strikes,
            "verdict": verdict_json(&s.verdict, note.as_deref()),
        })
    }
}

const LOOKUP: &str = "POST /actors/lookup";
const LIFT: &str = "POST /bans/lift";
const LOOKUP_BODY: &str = r#"{"kind": "session", "value": "..."} or {"actor": "account:#..."}"#;
const LIFT_BODY: &str = r#"{"actor": {"kind": "session", "value": "..."}}"#;
const BAN_BODY: &str =
    r#"{"actor": {"kind": "ip", "value": "203.0.113.9"}, "secs": 600, "reason": "..."}"#;
const WANT_ACTOR: &str = r#"want {"kind": "...", "value": "..."} (both strings) or one string `kind:value` as the listings write it (`account:#e7634a0c5b1d2f39`)"#;
const NOTHING_TO_ROLL_BACK: &str =
    "nothing to roll back to: no reload has changed the config since the guard was built";

/// A reload's answer: whether anything changed, a one-line summary, and
/// each change.
fn diff_json(diff: &ConfigDiff) -> Value {
    json!({
        "changed": !diff.is_empty(),
        "summary": diff.to_string(),
        "changes": diff,
    })
}

/// The config a reload's body holds. Its `<redacted>` secrets (as
/// `GET /config` writes them) stand for the running config's, so that the
/// running config can be fetched, edited and sent back.
fn parse_reload(text: &str, running: &Config) -> Result<Config, ConfigError> {
    let Ok(mut config) = toml::from_str::<Config>(text) else {
        // Parsed again for its error, which names the field and the line.
        return Config::from_toml_str(text);
    };
    let shown = running.redacted();
    if running.session_key.is_some() && config.session_key == shown.session_key {
        config.session_key = running.session_key.clone();
    }
    if running.cluster.is_some() && config.cluster == shown.cluster {
        config.cluster = running.cluster.clone();
    }
    config.validate()?;
    Ok(config)
}

/// An actor as the listings write it, `kind:value` (the value still
/// percent-encoded, if it was): split at the first `:` (`%3A` in a path).
fn split_listed(listed: &str) -> Result<(&str, &str), Refused> {
    let at = listed
        .find(':')
        .map(|i| (i, 1))
        .or_else(|| listed.to_ascii_lowercase().find("%3a").map(|i| (i, 3)));
    match at {
        Some((i, len)) if matches!(&listed[..i], "ip" | "subnet" | "session" | "account") => {
            Ok((&listed[..i], &listed[i + len..]))
        }
        // Not repeated: a session token may be in the wrong place.
        _ => Err(bad(format!("actor: {WANT_ACTOR}"))),
    }
}

/// Whether `value` is a hash as the listings write it: `#` and 16 hex
/// digits.
fn is_hash(value: &str) -> bool {
    value
        .strip_prefix('#')
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An answer that ends a request early (boxed: a response is large).
type Refused = Box<Answer>;

fn bad(message: String) -> Refused {
    Box::new(error(StatusCode::BAD_REQUEST, message))
}

/// A JSON body as `T`; a 400 that says what was wanted, with the values
/// of the body left out (they may be session tokens).
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], want: &str) -> Result<T, Refused> {
    serde_json::from_slice(body)
        .map_err(|e| bad(format!("{}: want {want}", without_strings(&e.to_string()))))
}

/// A message with the values a body held left out: the content of every
/// double-quoted string (serde quotes the values it could not use:
/// `invalid type: string "...", expected u64`), and of every backquoted
/// name that is not a plain short field name (`unknown field `...``).
fn without_strings(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(['"', '`']) {
        let quote = rest.as_bytes()[i] as char;
        out.push_str(&rest[..=i]);
        let inner = &rest[i + 1..];
        // The end of the quoted text (a `"` string may escape its quotes).
        let mut end = None;
        let mut escaped = false;
        for (j, c) in inner.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' && quote == '"' {
                escaped = true;
            } else if c == quote {
                end = Some(j);
                break;
            }
        }
        let text = &inner[..end.unwrap_or(inner.len())];
        let plain_name = quote == '`'
            && !text.is_empty()
            && text.len() <= 24
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        out.push_str(if plain_name { text } else { "<redacted>" });
        out.push(quote);
        rest = match end {
            Some(j) => &inner[j + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// Reads a body of at most [`MAX_BODY`] bytes.
async fn read<B>(req: Request<B>) -> Result<Bytes, Refused>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Box::new(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {MAX_BODY} bytes"),
        ))),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// The actor `kind` and (percent-decoded) `value` name, by its id. Errors
/// never hold the value of a session or an account.
fn actor(kind: &str, value: &str) -> Result<Actor, String> {
    // `198.51.100.0/24` (or any address inside it) for a subnet; an ip as
    // listed may carry its prefix (`2001:db8:1:2::/64`).
    let addr = value.split('/').next().unwrap_or_default();
    let ip = || {
        addr.parse::<std::net::IpAddr>()
            .map_err(|_| format!("{kind} `{value}`: want an IP address"))
    };
    match kind {
        "ip" => Ok(Actor::ip(ip()?)),
        "subnet" => addr
            .parse::<std::net::IpAddr>()
            .map(Actor::subnet)
            .map_err(|_| format!("subnet `{value}`: want an address in it")),
        "session" if !value.is_empty() => Ok(Actor::session(value)),
        "account" if !value.is_empty() => Ok(Actor::account(AccountId::from(value))),
        "session" | "account" => Err(format!("{kind}: the value is empty")),
        // Not repeated: a token put in the wrong field is still a token.
        _ => Err("actor kind: want ip, subnet, session or account".into()),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A verdict, with the note of an operator's ban.
fn verdict_json(v: &Verdict, note: Option<&str>) -> Value {
    let mut out = match v {
        Verdict::Allow => return json!({ "kind": "allow" }),
        Verdict::Throttle { remaining, reason } => json!({
            "kind": "throttle",
            "reason": reason.as_str(),
            "remaining_secs": remaining.as_secs_f64(),
        }),
        Verdict::Block {
            remaining,
            reason,
            strikes,
        } => json!({
            "kind": "block",
            "reason": reason.as_str(),
            "remaining_secs": remaining.as_secs_f64(),
            "strikes": strikes,
        }),
    };
    if let Some(note) = note {
        out["note"] = json!(note);
    }
    out
}

fn key_json(key: &ActorKey) -> (String, &'static str) {
    (key.to_string(), key.kind().as_str())
}

fn active_json(v: &ActiveVerdict) -> Value {
    let (actor, kind) = key_json(&v.actor);
    json!({
        "actor": actor,
        "kind": kind,
        "verdict": verdict_json(&v.verdict, v.note.as_deref()),
        "probe": v.probe,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_are_named_as_the_api_says_and_bad_names_are_refused() {
        assert!(matches!(actor("ip", "203.0.113.9"), Ok(Actor::Ip(_))));
        assert!(matches!(actor("ip", "2001:db8::1"), Ok(Actor::Ip(_))));
        let subnet = percent_decode("198.51.100.0%2F24").unwrap();
        assert!(matches!(actor("subnet", &subnet), Ok(Actor::Subnet(_))));
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert!(matches!(actor("session", "a b"), Ok(Actor::Session(s)) if s == "a b"));
        assert!(matches!(actor("account", "42"), Ok(Actor::Account(_))));
        for (k, v) in [("ip", "nope"), ("user", "1"), ("session", "")] {
            assert!(actor(k, v).is_err(), "{k} {v}");
        }
        for bad in ["%zz", "%c3", "%", "%2"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
        // The listed form: split at the first colon (written `%3A` or not).
        for (listed, kind, value) in [
            (
                "account:%23e7634a0c5b1d2f39",
                "account",
                "%23e7634a0c5b1d2f39",
            ),
            ("ip:2001:db8::1", "ip", "2001:db8::1"),
            ("subnet%3A10.0.0.0%2F24", "subnet", "10.0.0.0%2F24"),
        ] {
            assert_eq!(split_listed(listed).ok(), Some((kind, value)), "{listed}");
        }
        for bad in ["", ":", "nokind", "user:1", "sess-token-without-a-kind"] {
            assert!(split_listed(bad).is_err(), "{bad}");
        }
        assert!(is_hash("#e7634a0c5b1d2f39"));
        assert!(is_hash("#E7634A0C5B1D2F39"));
        for not in [
            "e7634a0c5b1d2f39",
            "#e7634a0c5b1d2f3",
            "#e7634a0c5b1d2f39a",
            "#g7634a0c5b1d2f39",
        ] {
            assert!(!is_hash(not), "{not}");
        }
        assert_eq!(
            without_strings(r#"invalid type: string "tok\"en", expected u64 at line 1"#),
            r#"invalid type: string "<redacted>", expected u64 at line 1"#
        );
        assert_eq!(without_strings(r#"open "tok"#), r#"open "<redacted>""#);
        assert_eq!(
            without_strings("unknown field `Tok-3n`, expected one of `actor`, `secs` at line 1"),
            "unknown field `<redacted>`, expected one of `actor`, `secs` at line 1"
        );
        assert_eq!(without_strings("no quotes"), "no quotes");
    }
}
