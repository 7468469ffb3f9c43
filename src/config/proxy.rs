//! [`ProxyConfig`]: the `[proxy]` table, read by `enumguard proxy` (feature
//! `proxy`): where it listens, where it forwards, its timeouts and limits,
//! and who the actor is for an application the proxy cannot see into. The
//! library itself ignores the table; `check-config` and the admin service
//! show it.

use serde::{Deserialize, Serialize};

/// The `[proxy]` table. Every field has a default; `listen` and
/// `upstream` are usually given (or passed as flags). A reload (SIGHUP,
/// the admin service) applies every field while the proxy runs but
/// `listen`, `upstream`, `upstream_h2c`, `admin_listen` and `admin_token`:
/// a change to those is logged and takes a restart.
///
/// ```toml
/// [proxy]
/// listen = "0.0.0.0:8080"
/// upstream = "http://127.0.0.1:3000"
/// account = { request_header = "x-user-id" }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// The address the proxy listens on. Defaults to `127.0.0.1:8080`.
    pub listen: String,
    /// The service behind it: `http://host:port` (a path prefix is
    /// prepended to every request's path). Defaults to
    /// `http://127.0.0.1:3000`.
    pub upstream: String,
    /// Answered by the proxy itself, never forwarded: 200, or 503 while it
    /// drains. Defaults to `/healthz`.
    pub health_path: String,
    /// Connecting to the upstream, in seconds (502 past it). Defaults to 5.
    pub connect_timeout_secs: u64,
    /// From a request sent upstream to its answer's head, in seconds (504
    /// past it). Defaults to 60.
    pub upstream_timeout_secs: u64,
    /// A client's request head must arrive within this, in seconds: the
    /// first from the connection's start (a client that sends nothing is
    /// cut off too), each next one from its first byte. Defaults to 10.
    pub header_read_timeout_secs: u64,
    /// A pooled upstream connection idle this long is closed, in seconds:
    /// keep it below the upstream's own keep-alive timeout, or a pooled
    /// connection may race the upstream's close. Defaults to 30.
    pub pool_idle_secs: u64,
    /// Speak HTTP/2 to the upstream (cleartext, prior knowledge: `h2c`)
    /// rather than HTTP/1.1. Upgrades (WebSocket) need HTTP/1.1. Defaults
    /// to false.
    pub upstream_h2c: bool,
    /// On SIGTERM or ctrl-c: requests in flight are served for up to this
    /// long (the health path answers 503 meanwhile), then the proxy stops.
    /// Defaults to 10.
    pub grace_secs: u64,
    /// The client address from a header an edge already resolved (say
    /// `cf-connecting-ip`), believed only from `trusted_proxies`. Defaults
    /// to none: the guard's own rule (`forwarded_header`).
    pub client_ip_header: Option<String>,
    /// Who the actor is. Defaults to no account (sessions and addresses
    /// only).
    pub account: Option<AccountSource>,
    /// A response header the upstream may set on a probe's answer:
    /// `hit`, `miss`, `denied`, `own` (the caller's own object) or `known`
    /// (a target the caller knows, as `Known`), for endpoints that answer
    /// 200 either way. Stripped before the client
    /// sees it. Defaults to `x-enumguard-outcome`.
    pub outcome_header: String,
    /// A response header the upstream may set with the account that owns
    /// the object answered (the proxy's `Owner`). Stripped. Defaults to
    /// `x-enumguard-owner`.
    pub owner_header: String,
    /// The admin service and Prometheus `/metrics`, on their own listener
    /// (never the public one). Defaults to none.
    pub admin_listen: Option<String>,
    /// The admin service's bearer token, or `env:NAME` to read it from an
    /// environment variable. Required with `admin_listen`.
    pub admin_token: Option<String>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            upstream: "http://127.0.0.1:3000".into(),
            health_path: "/healthz".into(),
            connect_timeout_secs: 5,
            upstream_timeout_secs: 60,
            header_read_timeout_secs: 10,
            pool_idle_secs: 30,
            upstream_h2c: false,
            grace_secs: 10,
            client_ip_header: None,
            account: None,
            outcome_header: "x-enumguard-outcome".into(),
            owner_header: "x-enumguard-owner".into(),
            admin_listen: None,
            admin_token: None,
        }
    }
}

/// Where the proxy reads a request's account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
#[non_exhaustive]
pub enum AccountSource {
    /// A request header a trusted authentication gateway sets in front of
    /// the proxy (the client's own value must never reach the proxy:
    /// strip it at the gateway): `{ request_header = "x-user-id" }`.
    RequestHeader(String),
    /// A response header the upstream sets on an authenticated answer:
    /// the proxy binds the request's session to that account for the
    /// requests that follow, and strips the header:
    /// `{ response_header = "x-account-id" }`. Needs a `session` source.
    ResponseHeader(String),
    /// A claim of the `Authorization: Bearer` JWT, its signature and expiry
    /// verified: `{ jwt = { hs256_secret = "env:JWT_SECRET" } }`. A token
    /// that fails verification is no account (never the claimed one).
    Jwt(JwtConfig),
}

/// How a bearer JWT is verified, and which claim is the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct JwtConfig {
    /// The claim that names the account. Defaults to `sub`.
    pub claim: String,
    /// HS256 with this secret (or `env:NAME`).
    pub hs256_secret: Option<String>,
    /// RS256 or ES256 with this PEM public key file.
    pub public_key_file: Option<String>,
    /// The public keys of this JWKS file: each verifies the one algorithm
    /// its `alg` names, or its type says (RS256 for RSA, ES256 for P-256,
    /// ES384 for P-384, EdDSA for Ed25519); a token with a `kid` is checked
    /// with that key only, one without with each key of its algorithm.
    /// Encryption keys are skipped; a secret (`oct`) key is refused.
    pub jwks_file: Option<String>,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    pub audience: Option<String>,
    /// Seconds of clock skew allowed on `exp` and `nbf`. Defaults to 30.
    pub leeway_secs: u64,
    /// Reads the claim WITHOUT verifying the signature: only for a token a
    /// gateway in front already verified. Off by default.
    pub insecure_skip_verification: bool,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            claim: "sub".into(),
            hs256_secret: None,
            public_key_file: None,
            jwks_file: None,
            issuer: None,
            audience: None,
            leeway_secs: 30,
            insecure_skip_verification: false,
        }
    }
}

impl ProxyConfig {
    /// Checks the table: addresses, the upstream URL, header names, and
    /// that each secret is there. `session`: whether the config names a
    /// session source (a response-header account needs one).
    ///
    /// # Errors
    /// The first invalid field (`proxy.listen`, ...), its value left out
    /// where it is a secret.
    pub(crate) fn validate(&self, session: bool) -> Result<(), super::ConfigError> {
        use super::ConfigError;
        let addr = |field: &str, v: &str| {
            v.parse::<std::net::SocketAddr>().map(drop).map_err(|_| {
                ConfigError::invalid(
                    field,
                    v,
                    "want an address and a port, like 127.0.0.1:8080 or [::]:8080",
                )
            })
        };
        addr("proxy.listen", &self.listen)?;
        if let Some(a) = &self.admin_listen {
            addr("proxy.admin_listen", a)?;
            if self.admin_token.as_deref().is_none_or(str::is_empty) {
                return Err(ConfigError::invalid(
                    "proxy.admin_token",
                    "",
                    "the admin listener needs a bearer token (or `env:NAME`)",
                ));
            }
        }
        let uri: http::Uri = self
            .upstream
            .parse()
            .map_err(|_| ConfigError::invalid("proxy.upstream", &self.upstream, "not a URL"))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() || uri.query().is_some() {
            return Err(ConfigError::invalid(
                "proxy.upstream",
                &self.upstream,
                "want http://host:port, with an optional path prefix (https upstreams: put a local TLS terminator in between)",
            ));
        }
        if !self.health_path.starts_with('/') {
            return Err(ConfigError::invalid(
                "proxy.health_path",
                &self.health_path,
                "a path, starting with /",
            ));
        }
        for (field, secs) in [
            ("proxy.connect_timeout_secs", self.connect_timeout_secs),
            ("proxy.upstream_timeout_secs", self.upstream_timeout_secs),
            (
                "proxy.header_read_timeout_secs",
                self.header_read_timeout_secs,
            ),
            ("proxy.pool_idle_secs", self.pool_idle_secs),
        ] {
            if secs == 0 || secs > 86_400 {
                return Err(ConfigError::invalid(
                    field,
                    secs.to_string(),
                    "want 1..=86400 seconds",
                ));
            }
        }
        if self.grace_secs > 3600 {
            return Err(ConfigError::invalid(
                "proxy.grace_secs",
                self.grace_secs.to_string(),
                "want at most 3600 seconds",
            ));
        }
        let header = |field: &str, v: &str| {
            http::HeaderName::from_bytes(v.as_bytes())
                .map(drop)
                .map_err(|_| ConfigError::invalid(field, v, "not a valid header name"))
        };
        header("proxy.outcome_header", &self.outcome_header)?;
        header("proxy.owner_header", &self.owner_header)?;
        if let Some(h) = &self.client_ip_header {
            header("proxy.client_ip_header", h)?;
        }
        match &self.account {
            Some(AccountSource::RequestHeader(h)) => header("proxy.account.request_header", h)?,
            Some(AccountSource::ResponseHeader(h)) => {
                header("proxy.account.response_header", h)?;
                if !session {
                    return Err(ConfigError::invalid(
                        "proxy.account.response_header",
                        h,
                        "binds a session to the account the upstream names: set `session` (a header or cookie) too",
                    ));
                }
            }
            Some(AccountSource::Jwt(j)) => {
                let keys = [
                    j.hs256_secret.is_some(),
                    j.public_key_file.is_some(),
                    j.jwks_file.is_some(),
                ]
                .iter()
                .filter(|k| **k)
                .count();
                if keys != 1 && !j.insecure_skip_verification {
                    return Err(ConfigError::invalid(
                        "proxy.account.jwt",
                        "",
                        "give exactly one of hs256_secret, public_key_file, jwks_file (or, for a token a gateway already verified, insecure_skip_verification = true)",
                    ));
                }
                if j.claim.is_empty() {
                    return Err(ConfigError::invalid(
                        "proxy.account.jwt.claim",
                        "",
                        "a claim name",
                    ));
                }
            }
            None => {}
        }
        Ok(())
    }

    /// The same table with its secrets shown as `<redacted>`.
    pub(crate) fn redacted(&self) -> Self {
        let mut p = self.clone();
        let hide = |s: &mut Option<String>| {
            if let Some(v) = s {
                if !v.starts_with("env:") {
                    *v = super::validate::REDACTED.to_owned();
                }
            }
        };
        hide(&mut p.admin_token);
        if let Some(AccountSource::Jwt(j)) = &mut p.account {
            hide(&mut j.hs256_secret);
        }
        p
    }
}
