//! One enumerable endpoint: [`ProbeConfig`] and what it is made of.

use serde::{Deserialize, Serialize};

use super::Thresholds;
use super::thresholds::ThresholdOverrides;
use crate::probe::StatusSpec;

/// What kind of enumeration a probe guards against; it picks the default
/// thresholds (see [`Thresholds::objects`] and [`Thresholds::identities`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProbeStyle {
    /// Objects with owners, addressed by id (address books, orders):
    /// the tell is foreign targets. The default.
    #[default]
    Objects,
    /// Identities (emails, usernames) on an endpoint that answers
    /// differently for registered ones: the tell is misses.
    Identities,
}

/// Where a probe's target is in the request. In TOML, a table with one
/// key: `target = { path = "id" }`, `{ query = "email" }`,
/// `{ header = "x-user" }` or `{ json = "user.email" }`.
///
/// ```
/// use enumguard::{Config, TargetConfig};
///
/// let config = Config::from_toml_str(r#"
///     [[probes]]
///     name = "reset"
///     method = "POST"
///     path = "/password-reset"
///     target = { json = "user.email" }
/// "#).unwrap();
/// assert_eq!(config.probes[0].target, TargetConfig::json("user.email"));
/// // None, or two, is an error that says so.
/// let two = r#"
///     [[probes]]
///     name = "p"
///     path = "/a/{id}"
///     target = { path = "id", query = "id" }
/// "#;
/// let e = Config::from_toml_str(two).unwrap_err();
/// assert!(e.to_string().contains("exactly one of path, query, header, json"), "{e}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TargetTable", into = "TargetTable")]
#[non_exhaustive]
pub enum TargetConfig {
    /// A named parameter of the path pattern, e.g. `id` for `/a/{id}`.
    Path(String),
    /// A query parameter (percent-decoded).
    Query(String),
    /// A request header.
    Header(String),
    /// A field of a JSON object body; dots name nested fields (`user.email`).
    Json(String),
}

/// [`TargetConfig`] as written: one of four keys.
#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TargetTable {
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    json: Option<String>,
}

impl TryFrom<TargetTable> for TargetConfig {
    type Error = String;

    fn try_from(t: TargetTable) -> Result<Self, String> {
        match (t.path, t.query, t.header, t.json) {
            (Some(n), None, None, None) => Ok(Self::Path(n)),
            (None, Some(n), None, None) => Ok(Self::Query(n)),
            (None, None, Some(n), None) => Ok(Self::Header(n)),
            (None, None, None, Some(n)) => Ok(Self::Json(n)),
            (p, q, h, j) => {
                let set = [p.is_some(), q.is_some(), h.is_some(), j.is_some()]
                    .into_iter()
                    .filter(|b| *b)
                    .count();
                Err(format!(
                    "{set} target sources: set exactly one of path, query, header, json"
                ))
            }
        }
    }
}

impl From<TargetConfig> for TargetTable {
    fn from(t: TargetConfig) -> Self {
        let mut out = Self::default();
        match t {
            TargetConfig::Path(n) => out.path = Some(n),
            TargetConfig::Query(n) => out.query = Some(n),
            TargetConfig::Header(n) => out.header = Some(n),
            TargetConfig::Json(n) => out.json = Some(n),
        }
        out
    }
}

impl TargetConfig {
    /// The target is path parameter `name`.
    ///
    /// ```
    /// let t = enumguard::TargetConfig::path("id");
    /// assert_eq!((t.key(), t.name()), ("path", "id"));
    /// ```
    pub fn path(name: impl Into<String>) -> Self {
        Self::Path(name.into())
    }
    /// The target is query parameter `name`.
    ///
    /// ```
    /// use enumguard::{ProbeConfig, TargetConfig};
    ///
    /// let lookup = TargetConfig::query("email"); // GET /lookup?email=a%40example.com
    /// let code = ProbeConfig::identities("lookup", "GET", "/lookup", lookup);
    /// let text = r#"
    ///     name = "lookup"
    ///     path = "/lookup"
    ///     style = "identities"
    ///     target = { query = "email" }
    /// "#;
    /// let file: ProbeConfig = toml::from_str(text).unwrap();
    /// assert_eq!(code, file);
    /// ```
    pub fn query(name: impl Into<String>) -> Self {
        Self::Query(name.into())
    }
    /// The target is header `name`.
    ///
    /// ```
    /// let t = enumguard::TargetConfig::header("x-username");
    /// assert_eq!((t.key(), t.name()), ("header", "x-username"));
    /// ```
    pub fn header(name: impl Into<String>) -> Self {
        Self::Header(name.into())
    }
    /// The target is JSON body field `name`.
    ///
    /// Dots name nested fields:
    ///
    /// ```
    /// // POST /password-reset with {"user": {"email": "a@example.com"}}
    /// let t = enumguard::TargetConfig::json("user.email");
    /// assert_eq!((t.key(), t.name()), ("json", "user.email"));
    /// ```
    pub fn json(name: impl Into<String>) -> Self {
        Self::Json(name.into())
    }

    /// The name it reads: the parameter, header or field.
    ///
    /// ```
    /// let t = enumguard::TargetConfig::query("email");
    /// assert_eq!(t.name(), "email");
    /// ```
    pub fn name(&self) -> &str {
        match self {
            Self::Path(n) | Self::Query(n) | Self::Header(n) | Self::Json(n) => n,
        }
    }

    /// Its key in TOML: `path`, `query`, `header` or `json`.
    ///
    /// ```
    /// let t = enumguard::TargetConfig::query("email");
    /// assert_eq!(t.key(), "query"); // as in `target = { query = "email" }`
    /// ```
    pub fn key(&self) -> &'static str {
        match self {
            Self::Path(_) => "path",
            Self::Query(_) => "query",
            Self::Header(_) => "header",
            Self::Json(_) => "json",
        }
    }
}

/// How a response is classified when the application put no
/// [`Outcome`](crate::Outcome) into its extensions. Status specs are codes
/// (`404`) or classes (`"2xx"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct OutcomeConfig {
    /// Statuses that mean the target exists and was served. Defaults to `["2xx"]`.
    pub hit: Vec<StatusSpec>,
    /// Statuses that mean the target does not exist. Defaults to `[404]`.
    pub miss: Vec<StatusSpec>,
    /// Statuses that mean the actor may not see the target. Defaults to `[401, 403]`.
    pub denied: Vec<StatusSpec>,
}

impl OutcomeConfig {
    /// A classification by these statuses.
    ///
    /// ```
    /// use enumguard::{OutcomeConfig, ProbeConfig, StatusSpec, TargetConfig};
    ///
    /// // A password reset that answers 202 for a registered address.
    /// let probe = ProbeConfig::identities("reset", "POST", "/reset", TargetConfig::json("email"))
    ///     .outcome(OutcomeConfig::new(
    ///         [StatusSpec::Code(202)],
    ///         [StatusSpec::Code(404)],
    ///         [StatusSpec::Code(401), StatusSpec::Code(403)],
    ///     ));
    /// assert_eq!(probe.outcome.hit, [StatusSpec::Code(202)]);
    /// ```
    pub fn new(
        hit: impl IntoIterator<Item = StatusSpec>,
        miss: impl IntoIterator<Item = StatusSpec>,
        denied: impl IntoIterator<Item = StatusSpec>,
    ) -> Self {
        Self {
            hit: hit.into_iter().collect(),
            miss: miss.into_iter().collect(),
            denied: denied.into_iter().collect(),
        }
    }
}

impl Default for OutcomeConfig {
    fn default() -> Self {
        Self {
            hit: vec![StatusSpec::Class(2)],
            miss: vec![StatusSpec::Code(404)],
            denied: vec![StatusSpec::Code(401), StatusSpec::Code(403)],
        }
    }
}

/// What to do with a body larger than the probe's `body_limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Oversized {
    /// Pass the request through untouched, counted as a new target of its
    /// own (the target it hides cannot be read, but the request is still
    /// counted: padding never hides a guess). The default for `objects`
    /// probes.
    Pass,
    /// Refuse with 413 (the default for `identities` probes).
    Refuse,
}

/// One enumerable endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProbeConfig {
    /// A short name, used in metrics labels and logs.
    pub name: String,
    /// The HTTP method, several separated by commas (`"GET, POST"`), or `*`
    /// for any. Defaults to `GET`. `GET` brings `HEAD` with it: routers
    /// answer `HEAD` with the `GET` handler (the same status, no body), so
    /// a `HEAD` request is the same guess. Name every method that reaches
    /// the probe's handler; a method your router sends to another handler
    /// (or answers 405) is not this probe and is not counted as it.
    #[serde(default = "default_method")]
    pub method: String,
    /// The path pattern, with `{name}` parameters: `/api/accounts/{id}`.
    pub path: String,
    /// Where the target is.
    pub target: TargetConfig,
    /// Picks default thresholds. Defaults to `objects`.
    #[serde(default)]
    pub style: ProbeStyle,
    /// Whether a target equal to the actor's own account id is its own
    /// object (not counted). Defaults to true for an `objects` probe whose
    /// target names an account (see [`ProbeConfig::self_target_or_default`]),
    /// false otherwise: on `/orders/{id}`, order 7 is not account 7's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_target: Option<bool>,
    /// How the response is classified.
    #[serde(default)]
    pub outcome: OutcomeConfig,
    /// Most bytes of body read for a `json` target. Defaults to 16,384.
    #[serde(default = "default_body_limit")]
    pub body_limit: usize,
    /// What happens to a larger body. Defaults to `refuse` for
    /// `identities` (a padded guess is refused outright) and `pass` for
    /// `objects` (forwarded, and counted as a new target each time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oversized: Option<Oversized>,
    /// Whether the endpoint needs a login. An address is many people, so
    /// what an address did holds only its anonymous requests, not the
    /// accounts behind it; on an endpoint that needs no login (a password
    /// reset, a sign-up) an account on the request is the caller's choice,
    /// and the address holds every request (else a guesser would send each
    /// guess with another throwaway account's token). Unset: learned, as
    /// needing none from the first anonymous request it answers with a hit
    /// or a miss. Set `false` where anonymous requests are answered, so the
    /// rule holds from the first request after a start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_login: Option<bool>,
    /// Overrides of the style's thresholds, as written in TOML (the
    /// `[probes.thresholds]` table); read them merged with
    /// [`ProbeConfig::resolved_thresholds`].
    #[serde(
        default,
        rename = "thresholds",
        skip_serializing_if = "Option::is_none"
    )]
    overrides: Option<ThresholdOverrides>,
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_body_limit() -> usize {
    16 * 1024
}

impl ProbeConfig {
    /// A probe with the defaults of `style`.
    ///
    /// ```
    /// use enumguard::{ProbeConfig, ProbeStyle, TargetConfig};
    ///
    /// let style = ProbeStyle::Identities;
    /// let probe = ProbeConfig::new("lookup", "GET", "/lookup", TargetConfig::query("q"), style);
    /// let same = ProbeConfig::identities("lookup", "GET", "/lookup", TargetConfig::query("q"));
    /// assert_eq!(probe, same);
    /// ```
    pub fn new(
        name: impl Into<String>,
        method: impl Into<String>,
        path: impl Into<String>,
        target: TargetConfig,
        style: ProbeStyle,
    ) -> Self {
        Self {
            name: name.into(),
            method: method.into(),
            path: path.into(),
            target,
            style,
            self_target: None,
            outcome: OutcomeConfig::default(),
            body_limit: default_body_limit(),
            oversized: None,
            needs_login: None,
            overrides: None,
        }
    }

    /// An objects probe (see [`Thresholds::objects`]): the tell is
    /// *foreign* objects, so the guard must know which objects are the
    /// caller's own. By default a target equal to the caller's account id
    /// is its own (`/api/accounts/{id}/addressbook`). Where ids are not
    /// account ids (orders, invoices, documents), the handler says whose
    /// object it served with an [`Owner`](crate::Owner) in the response
    /// (or [`GuardBuilder::owns`](crate::GuardBuilder::owns) tells before
    /// the handler runs); an own object never counts, however many:
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use enumguard::{AccountId, GuardLayer, Owner, ProbeConfig, TargetConfig};
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// // Order 7000 + k belongs to account 42; order ids are not account ids.
    /// let owner_of = |order: u64| if order >= 7000 { 42u64 } else { 1 };
    /// let app = service_fn(move |req: http::Request<_>| async move {
    ///     let id: u64 = req.uri().path().rsplit('/').next().unwrap().parse().unwrap();
    ///     let mut res = http::Response::new(String::from("{...}"));
    ///     res.extensions_mut().insert(Owner(AccountId::from(owner_of(id))));
    ///     Ok::<_, std::convert::Infallible>(res)
    /// });
    /// let guard = GuardLayer::builder()
    ///     .probe(ProbeConfig::objects("orders", "GET", "/api/orders/{id}", TargetConfig::path("id")))
    ///     .account(|parts| parts.headers.get("x-user-id")?.to_str().ok().map(AccountId::new))
    ///     .build()
    ///     .unwrap();
    /// let svc = guard.layer(app);
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// // Account 42 reads 40 of its own orders: none is foreign, none refused
    /// // (15 foreign ones would block it).
    /// for k in 0..40 {
    ///     let mut req = http::Request::get(format!("/api/orders/{}", 7000 + k))
    ///         .header("x-user-id", "42")
    ///         .body(String::new())
    ///         .unwrap();
    ///     req.extensions_mut().insert(SocketAddr::from(([127, 0, 0, 1], 4000)));
    ///     let res = svc.clone().oneshot(req).await.unwrap();
    ///     assert_eq!(res.status(), 200);
    /// }
    /// # });
    /// ```
    pub fn objects(
        name: impl Into<String>,
        method: impl Into<String>,
        path: impl Into<String>,
        target: TargetConfig,
    ) -> Self {
        Self::new(name, method, path, target, ProbeStyle::Objects)
    }

    /// An identities probe (see [`Thresholds::identities`]).
    ///
    /// ```
    /// use enumguard::{ProbeConfig, ProbeStyle, TargetConfig, Thresholds};
    ///
    /// let lookup = TargetConfig::query("email");
    /// let probe = ProbeConfig::identities("lookup", "GET", "/lookup", lookup);
    /// assert_eq!(probe.style, ProbeStyle::Identities);
    /// assert_eq!(probe.resolved_thresholds(), Thresholds::identities());
    /// assert!(!probe.self_target_or_default()); // an email is no one's own
    /// ```
    pub fn identities(
        name: impl Into<String>,
        method: impl Into<String>,
        path: impl Into<String>,
        target: TargetConfig,
    ) -> Self {
        Self::new(name, method, path, target, ProbeStyle::Identities)
    }

    /// Sets the outcome classification.
    ///
    /// See the example on [`OutcomeConfig::new`].
    pub fn outcome(mut self, outcome: OutcomeConfig) -> Self {
        self.outcome = outcome;
        self
    }

    /// Sets the thresholds (replacing the style's defaults).
    ///
    /// ```
    /// use enumguard::{ProbeConfig, TargetConfig, Thresholds};
    ///
    /// let mut strict = Thresholds::objects();
    /// strict.foreign_block = 5;
    /// let book = ProbeConfig::objects("book", "GET", "/books/{id}", TargetConfig::path("id"));
    /// let book = book.thresholds(strict.clone());
    /// assert_eq!(book.resolved_thresholds(), strict);
    /// ```
    pub fn thresholds(mut self, thresholds: Thresholds) -> Self {
        self.overrides = Some(ThresholdOverrides::all(&thresholds));
        self
    }

    /// Sets whether a target equal to the actor's account is its own.
    ///
    /// Unset, it is guessed from the path (see
    /// [`self_target_or_default`](Self::self_target_or_default)):
    ///
    /// ```
    /// use enumguard::{ProbeConfig, TargetConfig};
    ///
    /// let by_id = |path| ProbeConfig::objects("p", "GET", path, TargetConfig::path("id"));
    /// assert!(by_id("/profiles/{id}").self_target_or_default());
    /// assert!(!by_id("/orders/{id}").self_target_or_default());
    /// // An inbox addressed by its owner's account id, which the path does not say.
    /// let inbox = by_id("/inbox/{id}").self_target(true);
    /// assert!(inbox.self_target_or_default());
    /// ```
    pub fn self_target(mut self, on: bool) -> Self {
        self.self_target = Some(on);
        self
    }

    /// Sets whether the endpoint needs a login (see
    /// [`needs_login`](Self::needs_login)).
    ///
    /// ```
    /// use enumguard::{ProbeConfig, TargetConfig};
    ///
    /// let email = TargetConfig::json("email");
    /// let reset = ProbeConfig::identities("reset", "POST", "/reset", email).needs_login(false);
    /// assert_eq!(reset.needs_login, Some(false));
    /// ```
    pub fn needs_login(mut self, on: bool) -> Self {
        self.needs_login = Some(on);
        self
    }

    /// Sets the body limit for `json` targets.
    ///
    /// ```
    /// # fn send(layer: &enumguard::GuardLayer, body: String) -> u16 {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let app = tower::service_fn(|_: http::Request<_>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #     });
    /// #     let req = http::Request::post("/reset").header("content-type", "application/json");
    /// #     let req = req.extension(std::net::SocketAddr::from(([192, 0, 2, 1], 4000)));
    /// #     let rt = tokio::runtime::Builder::new_current_thread().build();
    /// #     let fut = layer.layer(app).oneshot(req.body(body).unwrap());
    /// #     let res = rt.unwrap().block_on(fut);
    /// #     res.unwrap().status().as_u16()
    /// # }
    /// use enumguard::{GuardLayer, Oversized, ProbeConfig, TargetConfig};
    ///
    /// let email = TargetConfig::json("email");
    /// let reset = ProbeConfig::identities("reset", "POST", "/reset", email);
    /// let reset = reset.body_limit(256, Oversized::Refuse);
    /// let layer = GuardLayer::builder().probe(reset).build().unwrap();
    /// assert_eq!(send(&layer, r#"{"email": "a@example.com"}"#.into()), 200);
    /// // A guess hidden behind padding is refused.
    /// let pad = "x".repeat(300);
    /// let padded = format!(r#"{{"pad": "{pad}", "email": "b@example.com"}}"#);
    /// assert_eq!(send(&layer, padded), 413);
    /// ```
    pub fn body_limit(mut self, bytes: usize, oversized: Oversized) -> Self {
        self.body_limit = bytes;
        self.oversized = Some(oversized);
        self
    }

    /// The thresholds this probe runs with: the style's defaults with the
    /// overrides (TOML's `[probes.thresholds]`, or those given in code)
    /// merged in, field by field.
    ///
    /// ```
    /// let p: enumguard::ProbeConfig = toml::from_str(r#"
    ///     name = "book"
    ///     path = "/books/{id}"
    ///     target = { path = "id" }
    ///     thresholds = { foreign_block = 4, kind_factors = { ip = 3.0 } }
    /// "#).unwrap();
    /// let t = p.resolved_thresholds();
    /// assert_eq!((t.foreign_block, t.kind_factors.ip), (4, 3.0));
    /// assert_eq!(t.miss_block, enumguard::Thresholds::objects().miss_block);
    /// ```
    pub fn resolved_thresholds(&self) -> Thresholds {
        let mut t = Thresholds::for_style(self.style);
        if let Some(over) = &self.overrides {
            over.apply(&mut t);
        }
        t
    }

    /// `self_target` as set, or its default: true for an `objects` probe
    /// whose target names an account (a parameter, query field, header or
    /// JSON field whose name holds `account` or `user`, or a path parameter
    /// right after an `accounts`, `users`, `customers`, `members` or
    /// `profiles` segment, singular or plural), false otherwise. Object ids
    /// that are not account ids (`/orders/{id}`) must not count order *k*
    /// as account *k*'s own; set it explicitly where the guess is wrong.
    pub fn self_target_or_default(&self) -> bool {
        if let Some(on) = self.self_target {
            return on;
        }
        if self.style != ProbeStyle::Objects {
            return false;
        }
        let names_account = |n: &str| {
            let n = n.to_ascii_lowercase();
            n.contains("account") || n.contains("user")
        };
        let name = self.target.name();
        if let TargetConfig::Path(name) = &self.target {
            if names_account(name) {
                return true;
            }
            let before = self
                .path
                .split('/')
                .take_while(|seg| *seg != format!("{{{name}}}"))
                .last()
                .unwrap_or("")
                .to_ascii_lowercase();
            let stem = before.strip_suffix('s').unwrap_or(&before);
            return matches!(stem, "account" | "user" | "customer" | "member" | "profile");
        }
        names_account(name)
    }

    /// This probe with every default written out: `self_target`,
    /// `oversized`, and the thresholds in full (as a `[probes.thresholds]`
    /// table).
    pub(crate) fn effective(&self) -> ProbeConfig {
        let objects = matches!(self.style, ProbeStyle::Objects);
        ProbeConfig {
            self_target: Some(self.self_target_or_default()),
            oversized: Some(self.oversized.unwrap_or(if objects {
                Oversized::Pass
            } else {
                Oversized::Refuse
            })),
            overrides: Some(ThresholdOverrides::all(&self.resolved_thresholds())),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    /// The enum reads and writes the same TOML as the four keys did; none
    /// or two is an error on the target's field.
    #[test]
    fn target_reads_and_writes_one_key() {
        for (toml, t) in [
            ("{ path = \"id\" }", TargetConfig::path("id")),
            ("{ query = \"email\" }", TargetConfig::query("email")),
            ("{ header = \"x-user\" }", TargetConfig::header("x-user")),
            (
                "{ json = \"user.email\" }",
                TargetConfig::json("user.email"),
            ),
        ] {
            let text = format!("[[probes]]\nname = \"p\"\npath = \"/a/{{id}}\"\ntarget = {toml}\n");
            let c = Config::from_toml_str(&text).unwrap();
            assert_eq!(c.probes[0].target, t);
            let back = toml::to_string(&c.probes[0]).unwrap();
            assert!(
                back.contains(&format!("[target]\n{} = ", t.key())),
                "{back}"
            );
            let again: ProbeConfig = toml::from_str(&back).unwrap();
            assert_eq!(again.target, t);
        }
        for toml in ["{}", "{ path = \"id\", query = \"q\" }"] {
            let text = format!("[[probes]]\nname = \"p\"\npath = \"/a/{{id}}\"\ntarget = {toml}\n");
            let e = Config::from_toml_str(&text).unwrap_err();
            assert_eq!(e.field(), Some("probes[0].target"), "{e}");
            assert!(
                e.to_string()
                    .contains("set exactly one of path, query, header, json"),
                "{e}"
            );
        }
        let text = "[[probes]]\nname = \"p\"\npath = \"/a\"\ntarget = { cookie = \"c\" }\n";
        let e = Config::from_toml_str(text).unwrap_err();
        assert!(e.to_string().contains("cookie"), "{e}");
    }
}
