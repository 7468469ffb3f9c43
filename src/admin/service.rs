//! [`AdminService`]: its construction, the tower service (the token and
//! the cross-site check first), and the routing of each request to its
//! answer.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Method, Request, StatusCode, header};
use http_body::Body;

use super::answer::{Answer, Refused, error};
use super::auth::{Auth, TokenError, write_allowed};
use super::request::{operator, read};
use super::{actors, naming, reload};
use crate::guard::GuardHandle;

/// The admin service: see the [module docs](super). Cheap to clone.
#[derive(Clone)]
pub struct AdminService {
    handle: GuardHandle,
    auth: Auth,
}

impl std::fmt::Debug for AdminService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminService")
            .field("auth", &self.auth.describe())
            .finish_non_exhaustive()
    }
}

impl AdminService {
    /// The service over a guard's handle, requiring
    /// `Authorization: Bearer <token>` on every request (401 otherwise).
    ///
    /// # Errors
    /// A token shorter than [`MIN_TOKEN_LEN`](super::MIN_TOKEN_LEN) bytes
    /// (an empty one included), longer than
    /// [`MAX_TOKEN_LEN`](super::MAX_TOKEN_LEN), or with characters other
    /// than visible ASCII (it must fit a header unchanged). For a service
    /// with its own auth in front, and no token, say so:
    /// [`insecure_without_token`](Self::insecure_without_token).
    pub fn new(handle: GuardHandle, token: impl AsRef<str>) -> Result<Self, TokenError> {
        Ok(Self {
            handle,
            auth: Auth::token(token.as_ref())?,
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
            if !this.auth.allows(&req) {
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

const LOOKUP: &str = "POST /actors/lookup";
const LIFT: &str = "POST /bans/lift";

impl AdminService {
    /// The answer to a request that passed the checks: by its method and
    /// path.
    async fn route<B>(&self, req: Request<B>) -> Answer
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let who = operator(&req);
        let handle = &self.handle;
        let method = req.method().clone();
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let answer = |r: Result<Answer, Refused>| r.unwrap_or_else(|e| *e);
        match (&method, parts.as_slice()) {
            (&Method::GET, ["suspects"]) => actors::suspects(handle, &query),
            (&Method::GET, ["verdicts"]) => actors::verdicts(handle),
            (&Method::GET, ["config"]) => reload::config(handle),
            (&Method::POST, ["actors", "lookup"]) => answer(
                async {
                    let body = read(req).await?;
                    let named = naming::lookup_body(handle, &body)?;
                    Ok(actors::actor(handle, &named))
                }
                .await,
            ),
            (&Method::POST, ["bans", "lift"]) => answer(
                async {
                    let body = read(req).await?;
                    let named = naming::lift_body(handle, &body)?;
                    Ok(actors::unban(handle, &named, &who))
                }
                .await,
            ),
            (&Method::GET, ["actors", kind, value]) => answer(
                naming::in_path(handle, kind, value, LOOKUP).map(|n| actors::actor(handle, &n)),
            ),
            (&Method::GET, ["actors", listed]) if *listed != "lookup" => answer(
                naming::split_listed(listed)
                    .and_then(|(kind, value)| naming::in_path(handle, kind, value, LOOKUP))
                    .map(|n| actors::actor(handle, &n)),
            ),
            (&Method::POST, ["bans"]) => match read(req).await {
                Ok(body) => actors::ban(handle, &body, &who),
                Err(e) => *e,
            },
            (&Method::DELETE, ["bans", kind, value]) => answer(
                naming::in_path(handle, kind, value, LIFT).map(|n| actors::unban(handle, &n, &who)),
            ),
            (&Method::DELETE, ["bans", listed]) if *listed != "lift" => answer(
                naming::split_listed(listed)
                    .and_then(|(kind, value)| naming::in_path(handle, kind, value, LIFT))
                    .map(|n| actors::unban(handle, &n, &who)),
            ),
            (&Method::POST, ["reload"]) => answer(
                async {
                    let q = reload::ReloadQuery::parse(&query, true)?;
                    let body = read(req).await?;
                    Ok(reload::reload(handle, &body, &q, &who))
                }
                .await,
            ),
            (&Method::POST, ["rollback"]) => answer(
                reload::ReloadQuery::parse(&query, false)
                    .map(|q| reload::rollback(handle, q.dry_run, &who)),
            ),
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
}
