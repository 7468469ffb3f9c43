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
    /// Kept across reloads while the session source stays.
    bindings: Arc<Bindings>,
}

/// The sessions bound to an account (a response-header source).
struct Bindings {
    /// The key sessions are hashed with here (never leaves the process).
    key: (u64, u64),
    /// Session hash to (account, when bound).
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
    keys: Vec<JwtKey>,
    /// Reads the claims without a signature check
    /// (`insecure_skip_verification`).
    insecure: Option<Validation>,
}

/// One verifying key, with the checks of the one algorithm it verifies
/// (jsonwebtoken refuses a key whose family is not every listed
/// algorithm's: an RSA key with `[RS256, ES256]` verifies nothing, and an
/// algorithm listed for a key of another family is how HS256 tokens
/// signed with an RSA public key get in).
struct JwtKey {
    /// The JWKS `kid`; `None` for a key file or a secret.
    kid: Option<String>,
    key: DecodingKey,
    validation: Validation,
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
    /// The account source of `config`'s `[proxy]` table (its secrets and
    /// key files read now). The sessions `previous` bound stay bound when
    /// the session source is the same.
    ///
    /// # Errors
    /// A secret that is not there, a key file that cannot be read or
    /// parsed.
    pub(crate) fn new(config: &Config, previous: Option<&Accounts>) -> Result<Self, String> {
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
        let bindings = match previous {
            Some(p) if p.session == config.session => p.bindings.clone(),
            _ => Arc::new(Bindings {
                key: crate::detect::random_key(),
                bound: DashMap::with_hasher(ahash::RandomState::new()),
                clock: std::sync::atomic::AtomicU64::new(0),
            }),
        };
        Ok(Self {
            source,
            session: config.session.clone(),
            session_header,
            bindings,
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
        Some(crate::actor::hash128(self.bindings.key, first))
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
            Source::ResponseHeader(_) => self.bindings.bound.get(&caller.session?).map(|e| e.0),
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
        let b = &self.bindings;
        if v.is_empty() {
            // The upstream says: no account (a logout).
            b.bound.remove(&session);
            return;
        }
        let n = b.clock.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if b.bound.len() >= MAX_BINDINGS && !b.bound.contains_key(&session) {
            // Full: the older half goes (a bound session that comes back
            // is bound again by its next authenticated answer).
            let cut = n.saturating_sub((MAX_BINDINGS / 2) as u64);
            b.bound.retain(|_, (_, at)| *at >= cut);
        }
        b.bound.insert(session, (AccountId::new(v.as_bytes()), n));
    }
}

impl Jwt {
    fn new(c: &JwtConfig) -> Result<Self, String> {
        let mut keys = Vec::new();
        let checks = |alg: Algorithm| {
            let mut v = Validation::new(alg);
            v.leeway = c.leeway_secs;
            v.validate_nbf = true;
            v.required_spec_claims = ["exp".to_owned()].into_iter().collect();
            if let Some(iss) = &c.issuer {
                v.set_issuer(&[iss]);
            }
            match &c.audience {
                Some(aud) => v.set_audience(&[aud]),
                None => v.validate_aud = false,
            }
            v
        };
        let mut push = |kid: Option<String>, key: DecodingKey, alg: Algorithm| {
            keys.push(JwtKey {
                kid,
                key,
                validation: checks(alg),
            });
        };
        if let Some(s) = &c.hs256_secret {
            push(
                None,
                DecodingKey::from_secret(secret(s)?.as_bytes()),
                Algorithm::HS256,
            );
        }
        if let Some(f) = &c.public_key_file {
            let pem = std::fs::read(f).map_err(|e| format!("{f}: {e}"))?;
            if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                push(None, k, Algorithm::RS256);
            } else {
                let k = DecodingKey::from_ec_pem(&pem)
                    .map_err(|e| format!("{f}: neither an RSA nor an EC public key: {e}"))?;
                push(None, k, Algorithm::ES256);
            }
        }
        if let Some(f) = &c.jwks_file {
            let text = std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))?;
            let set: jsonwebtoken::jwk::JwkSet =
                serde_json::from_str(&text).map_err(|e| format!("{f}: not a JWKS: {e}"))?;
            for jwk in &set.keys {
                let kid = jwk.common.key_id.clone();
                let at = || format!("{f}, key {}", kid.as_deref().unwrap_or("without a kid"));
                if jwk.common.public_key_use == Some(jsonwebtoken::jwk::PublicKeyUse::Encryption) {
                    // An encryption key verifies no signature.
                    continue;
                }
                let Some(alg) = jwk_algorithm(jwk).map_err(|e| format!("{}: {e}", at()))? else {
                    continue;
                };
                let k = DecodingKey::from_jwk(jwk).map_err(|e| format!("{}: {e}", at()))?;
                push(kid, k, alg);
            }
            if keys.is_empty() {
                return Err(format!("{f}: no signing key"));
            }
        }
        let insecure = c.insecure_skip_verification.then(|| {
            let mut v = checks(Algorithm::HS256);
            v.insecure_disable_signature_validation();
            v
        });
        Ok(Self {
            claim: c.claim.clone(),
            keys,
            insecure,
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
        let claims = if let Some(validation) = &self.insecure {
            let key = DecodingKey::from_secret(&[]);
            jsonwebtoken::decode::<serde_json::Value>(token, &key, validation).ok()?
        } else {
            let header = jsonwebtoken::decode_header(token).ok()?;
            // The keys of the token's algorithm (its `kid`'s, when both
            // name one): each verifies with its own algorithm only.
            self.keys
                .iter()
                .filter(|k| k.validation.algorithms.contains(&header.alg))
                .filter(|k| match (&k.kid, &header.kid) {
                    (Some(key), Some(token)) => key == token,
                    _ => true,
                })
                .find_map(|k| {
                    jsonwebtoken::decode::<serde_json::Value>(token, &k.key, &k.validation).ok()
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

/// The algorithm a JWKS key verifies: the one it names, if of its family;
/// else RS256 for RSA, ES256 or ES384 by curve, EdDSA for Ed25519. `None`
/// for a key that names an encryption algorithm.
fn jwk_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Result<Option<Algorithm>, String> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve};
    let named = match jwk.common.key_algorithm {
        None => None,
        Some(a) => match a.to_string().parse::<Algorithm>() {
            Ok(a) => Some(a),
            // An encryption algorithm (RSA-OAEP, ...): no signature key.
            Err(_) => return Ok(None),
        },
    };
    let (default, family): (Algorithm, &[Algorithm]) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (
            Algorithm::RS256,
            &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
        ),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => (Algorithm::ES256, &[Algorithm::ES256]),
            EllipticCurve::P384 => (Algorithm::ES384, &[Algorithm::ES384]),
            _ => return Err("an elliptic curve other than P-256 and P-384".into()),
        },
        AlgorithmParameters::OctetKeyPair(_) => (Algorithm::EdDSA, &[Algorithm::EdDSA]),
        AlgorithmParameters::OctetKey(_) => {
            return Err("a secret key: a JWKS file holds public keys (use hs256_secret)".into());
        }
    };
    match named {
        Some(a) if family.contains(&a) => Ok(Some(a)),
        Some(a) => Err(format!("{a:?} does not go with its key type")),
        None => Ok(Some(default)),
    }
}
