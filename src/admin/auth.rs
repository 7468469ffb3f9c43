//! Who may ask: the bearer token, kept as a keyed hash and compared in
//! constant time; and the writes a browser could send from another site,
//! refused.

use http::{Method, Request, StatusCode, header};

use super::answer::{Refused, error};

/// The shortest bearer token [`AdminService::new`](super::AdminService::new)
/// accepts, in bytes.
pub const MIN_TOKEN_LEN: usize = 16;
/// The longest bearer token [`AdminService::new`](super::AdminService::new)
/// accepts, in bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// How a request proves it may ask.
#[derive(Clone)]
pub(super) enum Auth {
    /// The keyed hash of the token, and its key (random per service).
    Token { key: (u64, u64), digest: u128 },
    /// No token: the application's own auth is in front.
    Insecure,
}

/// Why [`AdminService::new`](super::AdminService::new) refused a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError(String);

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "enumguard admin token: {}", self.0)
    }
}

impl std::error::Error for TokenError {}

impl Auth {
    /// A bearer token, kept as its keyed hash under a key random per
    /// service; refused as [`AdminService::new`](super::AdminService::new)
    /// says.
    pub(super) fn token(token: &str) -> Result<Self, TokenError> {
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
        let key = crate::detect::random_key();
        Ok(Self::Token {
            key,
            digest: crate::actor::hash128(key, token.as_bytes()),
        })
    }

    /// What `Debug` shows: whether a token is set, never the token.
    pub(super) fn describe(&self) -> &'static str {
        match self {
            Self::Token { .. } => "bearer token <set>",
            Self::Insecure => "none (insecure_without_token)",
        }
    }

    /// Whether the request carries the token (always, with no token).
    pub(super) fn allows<B>(&self, req: &Request<B>) -> bool {
        let Self::Token { key, digest } = self else {
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
        constant_time_eq(
            &crate::actor::hash128(*key, given).to_le_bytes(),
            &digest.to_le_bytes(),
        )
    }
}

/// Equal 16-byte digests, in time independent of where they differ.
fn constant_time_eq(a: &[u8; 16], b: &[u8; 16]) -> bool {
    std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

/// Refuses a write (any method but GET and HEAD) a browser could have
/// sent from another site: without a JSON or TOML content type (415), or
/// marked `Sec-Fetch-Site: cross-site` (403).
pub(super) fn write_allowed<B>(req: &Request<B>) -> Result<(), Refused> {
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
