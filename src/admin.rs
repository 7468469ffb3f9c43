//! The admin service (feature `admin`): a tower service speaking JSON that
//! an application mounts where it wants, on its own listener and behind
//! its own auth, to list suspects and verdicts, inspect an actor, ban,
//! unban and reload the config while the guard runs.
//!
//! **Never expose it publicly**: whoever reaches it can lift any block and
//! replace the guard's config. Mount it on an internal listener, and set a
//! [bearer token](AdminService::bearer_token) (or put your own auth in
//! front).
//!
//! | request | answer |
//! |---|---|
//! | `GET /suspects?min_score=0.5` | actors by suspicion, with strikes and verdict |
//! | `GET /verdicts` | every live verdict: actor, kind, reason, time remaining, probe |
//! | `GET /actors/{kind}/{value}` | one actor's verdict (as the gate reads it) and records |
//! | `POST /bans` | `{"actor": {"kind": "ip", "value": "203.0.113.9"}, "secs": 600, "reason": "..."}` |
//! | `DELETE /bans/{kind}/{value}` | lifts the actor's verdict (404 if it had none) |
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
//! ```
//! # #[cfg(feature = "axum")] {
//! use enumguard::{GuardLayer, admin::AdminService};
//! let layer = GuardLayer::builder().build().unwrap();
//! let admin = AdminService::new(layer.handle()).bearer_token("s3cret-token");
//! // On an internal listener only:
//! let internal: axum::Router = axum::Router::new().nest_service("/admin", admin);
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
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

/// The admin service: see the [module docs](self). Cheap to clone.
#[derive(Clone)]
pub struct AdminService {
    handle: GuardHandle,
    token: Option<Arc<str>>,
}

impl std::fmt::Debug for AdminService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminService")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl AdminService {
    /// The service over a guard's handle, with no auth of its own.
    pub fn new(handle: GuardHandle) -> Self {
        Self {
            handle,
            token: None,
        }
    }

    /// Requires `Authorization: Bearer <token>` on every request (401
    /// otherwise); compared in constant time.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Arc::from(token.into()));
        self
    }

    fn authorized<B>(&self, req: &Request<B>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        constant_time_eq(given.as_bytes(), token.as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
            Ok(this.route(req).await)
        })
    }
}

/// An actor as the admin API names it.
#[derive(Debug, Deserialize)]
struct ActorRef {
    kind: String,
    value: String,
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
            (&Method::GET, ["actors", kind, value]) => match actor(kind, value) {
                Ok(a) => self.actor(&a),
                Err(e) => error(StatusCode::BAD_REQUEST, e),
            },
            (&Method::POST, ["bans"]) => match read(req).await {
                Ok(body) => self.ban(&body, &who),
                Err(e) => e,
            },
            (&Method::DELETE, ["bans", kind, value]) => match actor(kind, value) {
                Ok(a) => self.unban(&a, &who),
                Err(e) => error(StatusCode::BAD_REQUEST, e),
            },
            (&Method::POST, ["reload"]) => match read(req).await {
                Ok(body) => self.reload(&body, &who),
                Err(e) => e,
            },
            (_, ["suspects" | "verdicts" | "bans" | "reload"]) | (_, ["actors" | "bans", _, _]) => {
                error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{method} is not served here"),
                )
            }
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
        let ban: BanRequest = match serde_json::from_slice(body) {
            Ok(b) => b,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "{e}: want {{\"actor\": {{\"kind\": \"ip\", \"value\": \"203.0.113.9\"}}, \"secs\": 600, \"reason\": \"...\"}}"
                    ),
                );
            }
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

/// Reads a body of at most [`MAX_BODY`] bytes.
async fn read<B>(req: Request<B>) -> Result<Bytes, Answer>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {MAX_BODY} bytes"),
        )),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, e)),
    }
}

/// The actor an API path or body names.
fn actor(kind: &str, value: &str) -> Result<Actor, String> {
    let value = percent_decode(value).ok_or_else(|| format!("`{value}`: bad percent-encoding"))?;
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
        _ => Err(format!(
            "actor kind `{kind}`: want ip, subnet, session or account"
        )),
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
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"abc", b"ab"));
    }
}
