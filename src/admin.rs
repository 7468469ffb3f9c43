//! The admin service (feature `admin`): a tower service speaking JSON that
//! an application mounts where it wants, on its own listener, to list
//! suspects and verdicts, inspect an actor, ban, unban and reload the
//! config while the guard runs.
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
//! | `GET /verdicts` | every live verdict: actor, kind, reason, time remaining, probe |
//! | `GET /actors/{kind}/{value}` | one actor's verdict (as the gate reads it) and records (not for sessions) |
//! | `POST /actors/lookup` | the same for `{"kind": "session", "value": "..."}` (or any kind) |
//! | `POST /bans` | `{"actor": {"kind": "ip", "value": "203.0.113.9"}, "secs": 600, "reason": "..."}` |
//! | `DELETE /bans/{kind}/{value}` | lifts the actor's verdict (404 if it had none; not for sessions) |
//! | `POST /bans/lift` | the same for `{"actor": {"kind": "session", "value": "..."}}` (or any kind) |
//! | `POST /reload` | the body is a whole TOML config; refused with its first invalid field |
//!
//! `kind` is `ip`, `subnet`, `session` or `account`; `value` is the address,
//! the session token or the account id as the application names it
//! (percent-encoded in a path). Paths are relative to where the service is
//! mounted (axum's `nest_service("/admin", ...)` strips the prefix). Every
//! change (ban, unban, reload) is logged as a `warn` event on target
//! `enumguard` with the action, the actor, the reason and who asked (the
//! `X-Operator` header, else `unknown`).
//!
//! # Security
//! - Every request needs `Authorization: Bearer <token>` (401 otherwise).
//!   Tokens are compared as keyed 128-bit hashes of both, in constant
//!   time, so neither the content nor the length of the token leaks through
//!   timing.
//! - Every write (any method but `GET` and `HEAD`) needs
//!   `Content-Type: application/json`, or `application/toml` for
//!   `/reload` (415 otherwise), and a write marked
//!   `Sec-Fetch-Site: cross-site` is refused (403): a page on another site
//!   can make a browser send a form (`text/plain`, urlencoded, multipart)
//!   with the operator's cookies, but not these types without a CORS
//!   preflight, which this service never grants. That is the defence when
//!   the auth in front is a cookie.
//! - A raw session token is never echoed: answers and logs name sessions
//!   by their keyed hash (`session:#...`), error messages leave values out,
//!   and a session token is refused in a URL path (where proxies and access
//!   logs keep it): name it in a body (`POST /actors/lookup`, `POST /bans`,
//!   `POST /bans/lift`).
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

use crate::actor::{AccountId, Actor, ActorKey};
use crate::config::Config;
use crate::guard::{ActiveVerdict, GuardHandle, Suspect};
use crate::state::Verdict;

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

/// An actor as the admin API names it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActorRef {
    kind: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LiftRequest {
    actor: ActorRef,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BanRequest {
    actor: ActorRef,
    secs: u64,
    #[serde(default)]
    reason: String,
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
        match (&method, parts.as_slice()) {
            (&Method::GET, ["suspects"]) => self.suspects(&query),
            (&Method::GET, ["verdicts"]) => self.verdicts(),
            (&Method::GET, ["actors", kind, value]) => match path_actor(kind, value, LOOKUP) {
                Ok(a) => self.actor(&a),
                Err(e) => *e,
            },
            (&Method::POST, ["actors", "lookup"]) => match read(req).await {
                Ok(body) => match json_body::<ActorRef>(&body, LOOKUP_BODY)
                    .and_then(|r| actor(&r.kind, &r.value).map_err(bad))
                {
                    Ok(a) => self.actor(&a),
                    Err(e) => *e,
                },
                Err(e) => *e,
            },
            (&Method::POST, ["bans"]) => match read(req).await {
                Ok(body) => self.ban(&body, &who),
                Err(e) => *e,
            },
            (&Method::DELETE, ["bans", kind, value]) => match path_actor(kind, value, LIFT) {
                Ok(a) => self.unban(&a, &who),
                Err(e) => *e,
            },
            (&Method::POST, ["bans", "lift"]) => match read(req).await {
                Ok(body) => match json_body::<LiftRequest>(&body, LIFT_BODY)
                    .and_then(|r| actor(&r.actor.kind, &r.actor.value).map_err(bad))
                {
                    Ok(a) => self.unban(&a, &who),
                    Err(e) => *e,
                },
                Err(e) => *e,
            },
            (&Method::POST, ["reload"]) => match read(req).await {
                Ok(body) => self.reload(&body, &who),
                Err(e) => *e,
            },
            (_, ["suspects" | "verdicts" | "bans" | "reload"])
            | (_, ["actors", "lookup"] | ["bans", "lift"])
            | (_, ["actors" | "bans", _, _]) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not served here"),
            ),
            _ => error(
                StatusCode::NOT_FOUND,
                "no such admin resource: see /suspects, /verdicts, /actors/{kind}/{value}, /bans, /reload",
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
            .map(suspect_json)
            .collect();
        answer(StatusCode::OK, json!({ "suspects": list }))
    }

    fn verdicts(&self) -> Answer {
        let list: Vec<Value> = self.handle.verdicts().iter().map(active_json).collect();
        answer(StatusCode::OK, json!({ "verdicts": list }))
    }

    fn actor(&self, actor: &Actor) -> Answer {
        let key = self.handle.key(actor);
        let records: Vec<Value> = self
            .handle
            .suspects(f64::NEG_INFINITY)
            .iter()
            .filter(|s| s.actor == key)
            .map(suspect_json)
            .collect();
        answer(
            StatusCode::OK,
            json!({
                "actor": key.to_string(),
                "kind": key.kind().as_str(),
                "verdict": verdict_json(&self.handle.verdict(actor)),
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
        let actor = match actor(&ban.actor.kind, &ban.actor.value) {
            Ok(a) => a,
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        };
        self.handle.ban(&actor, Duration::from_secs(ban.secs));
        let key = self.handle.key(&actor);
        tracing::warn!(
            target: "enumguard",
            action = "ban",
            actor = %key,
            secs = ban.secs,
            reason = %ban.reason,
            by = %who,
            "enumguard admin: ban"
        );
        answer(
            StatusCode::CREATED,
            json!({ "banned": key.to_string(), "secs": ban.secs }),
        )
    }

    fn unban(&self, actor: &Actor, who: &str) -> Answer {
        let key = self.handle.key(actor);
        let lifted = self.handle.unban(actor);
        tracing::warn!(
            target: "enumguard",
            action = "unban",
            actor = %key,
            lifted,
            by = %who,
            "enumguard admin: unban"
        );
        if lifted {
            answer(StatusCode::OK, json!({ "unbanned": key.to_string() }))
        } else {
            error(StatusCode::NOT_FOUND, format!("{key} had no verdict"))
        }
    }

    fn reload(&self, body: &[u8], who: &str) -> Answer {
        let text = match std::str::from_utf8(body) {
            Ok(t) => t,
            Err(_) => return error(StatusCode::BAD_REQUEST, "the config is not UTF-8"),
        };
        let config = match Config::from_toml_str(text) {
            Ok(c) => c,
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        };
        match self.handle.reload(config) {
            Ok(()) => {
                tracing::warn!(
                    target: "enumguard",
                    action = "reload",
                    by = %who,
                    "enumguard admin: config reloaded"
                );
                answer(StatusCode::OK, json!({ "reloaded": true }))
            }
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        }
    }
}

const LOOKUP: &str = "POST /actors/lookup";
const LIFT: &str = "POST /bans/lift";
const LOOKUP_BODY: &str = r#"{"kind": "session", "value": "..."}"#;
const LIFT_BODY: &str = r#"{"actor": {"kind": "session", "value": "..."}}"#;
const BAN_BODY: &str =
    r#"{"actor": {"kind": "ip", "value": "203.0.113.9"}, "secs": 600, "reason": "..."}"#;

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

/// The actor a URL path names. A session token is refused there: proxies
/// and access logs keep URLs, so it goes in a body (`body_route`).
fn path_actor(kind: &str, value: &str, body_route: &str) -> Result<Actor, Refused> {
    if kind == "session" {
        return Err(bad(format!(
            "a session token does not go in a URL (proxies and access logs keep URLs): \
             send it in the body of {body_route}"
        )));
    }
    actor(kind, value).map_err(bad)
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

/// The actor an API path or body names. Errors never hold the value of a
/// session or an account.
fn actor(kind: &str, value: &str) -> Result<Actor, String> {
    let value = percent_decode(value)
        .ok_or_else(|| format!("{kind}: the value's percent-encoding is bad"))?;
    let ip = || {
        value
            .parse::<std::net::IpAddr>()
            .map_err(|_| format!("{kind} `{value}`: want an IP address"))
    };
    match kind {
        "ip" => Ok(Actor::ip(ip()?)),
        "subnet" => {
            // `198.51.100.0/24` or any address inside it.
            let addr = value.split('/').next().unwrap_or_default();
            addr.parse::<std::net::IpAddr>()
                .map(Actor::subnet)
                .map_err(|_| format!("subnet `{value}`: want an address in it"))
        }
        "session" if !value.is_empty() => Ok(Actor::session(value)),
        "account" if !value.is_empty() => Ok(Actor::account(AccountId::from(value.as_str()))),
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

fn verdict_json(v: &Verdict) -> Value {
    match v {
        Verdict::Allow => json!({ "kind": "allow" }),
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
    }
}

fn key_json(key: &ActorKey) -> (String, &'static str) {
    (key.to_string(), key.kind().as_str())
}

fn suspect_json(s: &Suspect) -> Value {
    let (actor, kind) = key_json(&s.actor);
    json!({
        "actor": actor,
        "kind": kind,
        "probe": s.probe,
        "score": s.score,
        "strikes": s.strikes,
        "verdict": verdict_json(&s.verdict),
    })
}

fn active_json(v: &ActiveVerdict) -> Value {
    let (actor, kind) = key_json(&v.actor);
    json!({
        "actor": actor,
        "kind": kind,
        "verdict": verdict_json(&v.verdict),
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
        assert!(matches!(
            actor("subnet", "198.51.100.0%2F24"),
            Ok(Actor::Subnet(_))
        ));
        assert!(matches!(actor("session", "a%20b"), Ok(Actor::Session(s)) if s == "a b"));
        assert!(matches!(actor("account", "42"), Ok(Actor::Account(_))));
        for (k, v) in [
            ("ip", "nope"),
            ("user", "1"),
            ("session", ""),
            ("ip", "%zz"),
            ("ip", "%c3"),
        ] {
            assert!(actor(k, v).is_err(), "{k} {v}");
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
