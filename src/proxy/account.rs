//! Who the actor is, for an application the proxy cannot see into: a
//! request header a trusted gateway sets, a verified JWT claim, or the
//! account the upstream names in a response header (bound to the session
//! for the requests that follow).

use std::sync::Arc;

use dashmap::DashMap;
use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::AccountId;
use crate::actor::{cookie_values, ends, header_ends};
use crate::config::{AccountSource, Config, JwtConfig, SessionSource};

/// The most session-to-account bindings kept (a response-header account
/// source); past it the oldest half is dropped.
pub const MAX_BINDINGS: usize = 100_000;

/// What [`Accounts::caller`] kept of a request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Caller {
    value: Option<HeaderValue>,
    /// The session's keyed hash (response-header source only).
    pub(crate) session: Option<u128>,
}

/// How the proxy reads a request's account (and session).
pub(crate) struct Accounts {
    source: Source,
    session: Option<SessionSource>,
    session_header: Option<HeaderName>,
    /// The key sessions are hashed with here (never leaves the process).
    key: (u64, u64),
    /// Session hash to (account, when bound), for a response-header source.
    bound: DashMap<u128, (AccountId, u64), ahash::RandomState>,
    clock: std::sync::atomic::AtomicU64,
}

enum Source {
    None,
    RequestHeader(HeaderName),
    ResponseHeader(HeaderName),
    Jwt(Box<Jwt>),
}

struct Jwt {
    claim: String,
    keys: Vec<(Option<String>, DecodingKey)>,
    validation: Validation,
    insecure: bool,
}

/// A secret given as `env:NAME`, or as itself.
pub(crate) fn secret(v: &str) -> Result<String, String> {
    match v.strip_prefix("env:") {
        Some(name) => {
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
        }
        None => Ok(v.to_owned()),
    }
}

impl Accounts {
    /// The account source of `config`'s `[proxy]` table.
    ///
    /// # Errors
    /// A secret that is not there, a key file that cannot be read or
    /// parsed.
    pub(crate) fn new(config: &Config) -> Result<Self, String> {
        let proxy = config.proxy.clone().unwrap_or_default();
        let header = |h: &str| HeaderName::from_bytes(h.as_bytes()).map_err(|e| e.to_string());
        let source = match &proxy.account {
            None => Source::None,
            Some(AccountSource::RequestHeader(h)) => Source::RequestHeader(header(h)?),
            Some(AccountSource::ResponseHeader(h)) => Source::ResponseHeader(header(h)?),
            Some(AccountSource::Jwt(j)) => Source::Jwt(Box::new(Jwt::new(j)?)),
        };
        let session_header = match &config.session {
            Some(SessionSource::Header(h)) => Some(header(h)?),
            _ => None,
        };
        Ok(Self {
            source,
            session: config.session.clone(),
            session_header,
            key: crate::detect::random_key(),
            bound: DashMap::with_hasher(ahash::RandomState::new()),
            clock: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The request's session, as a keyed hash (its first value).
    pub(crate) fn session_of(&self, headers: &HeaderMap) -> Option<u128> {
        let first = match &self.session {
            Some(SessionSource::Header(_)) => {
                header_ends(headers, self.session_header.as_ref()?).map(|(f, _)| f)
            }
            Some(SessionSource::Cookie(c)) => ends(cookie_values(headers, c)).map(|(f, _)| f),
            None => None,
        }?;
        Some(crate::actor::hash128(self.key, first))
    }

    /// What the source reads of a request, kept to name its caller later:
    /// the header value (a reference count, no copy), or the session's hash
    /// for a response-header source. Nothing is verified or looked up yet.
    pub(crate) fn caller(&self, headers: &HeaderMap) -> Caller {
        match &self.source {
            Source::None => Caller::default(),
            Source::RequestHeader(h) => Caller {
                value: headers.get(h).cloned(),
                session: None,
            },
            Source::Jwt(_) => Caller {
                value: headers.get(header::AUTHORIZATION).cloned(),
                session: None,
            },
            Source::ResponseHeader(_) => Caller {
                value: None,
                session: self.session_of(headers),
            },
        }
    }

    /// The caller's account, by the configured source.
    pub(crate) fn account_of(&self, caller: &Caller) -> Option<AccountId> {
        match &self.source {
            Source::None => None,
            Source::RequestHeader(_) => caller
                .value
                .as_ref()
                .map(|v| v.as_bytes())
                .filter(|v| !v.is_empty())
                .map(AccountId::new),
            Source::ResponseHeader(_) => self.bound.get(&caller.session?).map(|e| e.0),
            Source::Jwt(j) => j.account(caller.value.as_ref()?),
        }
    }

    /// Binds the session to the account a response names, and strips the
    /// header (response-header source only).
    pub(crate) fn bind_from_response(&self, headers: &mut HeaderMap, session: Option<u128>) {
        let Source::ResponseHeader(h) = &self.source else {
            return;
        };
        let Some(v) = headers.remove(h) else {
            return;
        };
        let Some(session) = session else {
            return;
        };
        if v.is_empty() {
            // The upstream says: no account (a logout).
            self.bound.remove(&session);
            return;
        }
        let n = self
            .clock
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.bound.len() >= MAX_BINDINGS && !self.bound.contains_key(&session) {
            // Full: the older half goes (a bound session that comes back
            // is bound again by its next authenticated answer).
            let cut = n.saturating_sub((MAX_BINDINGS / 2) as u64);
            self.bound.retain(|_, (_, at)| *at >= cut);
        }
        self.bound
            .insert(session, (AccountId::new(v.as_bytes()), n));
    }

    /// The account hook the guard is built with.
    pub(crate) fn hook(
        self: &Arc<Self>,
    ) -> impl Fn(&http::request::Parts) -> Option<AccountId> + Send + Sync + 'static {
        let me = self.clone();
        move |parts| me.account_of(&me.caller(&parts.headers))
    }
}

impl Jwt {
    fn new(c: &JwtConfig) -> Result<Self, String> {
        let mut keys = Vec::new();
        let mut algs = Vec::new();
        if let Some(s) = &c.hs256_secret {
            keys.push((None, DecodingKey::from_secret(secret(s)?.as_bytes())));
            algs.push(Algorithm::HS256);
        }
        if let Some(f) = &c.public_key_file {
            let pem = std::fs::read(f).map_err(|e| format!("{f}: {e}"))?;
            if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                keys.push((None, k));
                algs.push(Algorithm::RS256);
            } else {
                let k = DecodingKey::from_ec_pem(&pem)
                    .map_err(|e| format!("{f}: neither an RSA nor an EC public key: {e}"))?;
                keys.push((None, k));
                algs.push(Algorithm::ES256);
            }
        }
        if let Some(f) = &c.jwks_file {
            let text = std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))?;
            let set: jsonwebtoken::jwk::JwkSet =
                serde_json::from_str(&text).map_err(|e| format!("{f}: not a JWKS: {e}"))?;
            for jwk in &set.keys {
                let k = DecodingKey::from_jwk(jwk).map_err(|e| format!("{f}: {e}"))?;
                keys.push((jwk.common.key_id.clone(), k));
            }
            algs.extend([Algorithm::RS256, Algorithm::ES256]);
        }
        let mut validation = Validation::new(algs.first().copied().unwrap_or(Algorithm::HS256));
        validation.algorithms = algs;
        validation.leeway = c.leeway_secs;
        validation.validate_nbf = true;
        validation.required_spec_claims = ["exp".to_owned()].into_iter().collect();
        if let Some(iss) = &c.issuer {
            validation.set_issuer(&[iss]);
        }
        match &c.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if c.insecure_skip_verification {
            validation.insecure_disable_signature_validation();
        }
        Ok(Self {
            claim: c.claim.clone(),
            keys,
            validation,
            insecure: c.insecure_skip_verification,
        })
    }

    /// The claim of a bearer token that passes verification; none for a
    /// token that does not (never the claimed account).
    fn account(&self, authorization: &HeaderValue) -> Option<AccountId> {
        let auth = authorization.to_str().ok()?;
        let token = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))?
            .trim();
        let claims = if self.insecure {
            let key = DecodingKey::from_secret(&[]);
            jsonwebtoken::decode::<serde_json::Value>(token, &key, &self.validation).ok()?
        } else {
            let kid = jsonwebtoken::decode_header(token).ok()?.kid;
            self.keys
                .iter()
                .filter(|(k, _)| k.is_none() || *k == kid)
                .find_map(|(_, key)| {
                    jsonwebtoken::decode::<serde_json::Value>(token, key, &self.validation).ok()
                })?
        };
        let v = claims.claims.get(&self.claim)?;
        let id = match v {
            serde_json::Value::String(s) if !s.is_empty() => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return None,
        };
        Some(AccountId::new(id))
    }
}
