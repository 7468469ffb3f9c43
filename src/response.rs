//! Refusals: the [`Refusal`] reason put into the response extensions, and
//! the [`OnRefusal`] hook that builds the response.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::actor::ActorKind;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalKind {
    /// An actor of the request is blocked (or this request would have
    /// crossed a block threshold).
    Blocked,
    /// An actor of the request is throttled and over its quota.
    Throttled,
    /// The request's address or account is on a denylist.
    Denylisted,
    /// The request carries no peer address and
    /// [`MissingPeer::Refuse`](crate::MissingPeer::Refuse) is configured.
    MissingPeer,
    /// A probe needed the body, it was larger than the probe's limit, and
    /// [`Oversized::Refuse`](crate::Oversized::Refuse) is configured.
    BodyTooLarge,
}

impl RefusalKind {
    /// The lower-case name used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalKind::Blocked => "blocked",
            RefusalKind::Throttled => "throttled",
            RefusalKind::Denylisted => "denylisted",
            RefusalKind::MissingPeer => "missing_peer",
            RefusalKind::BodyTooLarge => "body_too_large",
        }
    }
}

/// The reason of a refusal; the guard puts it into the extensions of every
/// response it makes itself, so outer layers and tests can tell a refusal
/// from the application's own 429 or 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    kind: RefusalKind,
    actor_kind: Option<ActorKind>,
    retry_after: Option<Duration>,
    probe: Option<Arc<str>>,
}

impl Refusal {
    pub(crate) fn new(
        kind: RefusalKind,
        actor_kind: Option<ActorKind>,
        retry_after_nanos: Option<u64>,
        probe: Option<&Arc<str>>,
    ) -> Self {
        Self {
            kind,
            actor_kind,
            retry_after: retry_after_nanos.map(Duration::from_nanos),
            probe: probe.cloned(),
        }
    }

    /// Why.
    pub fn kind(&self) -> RefusalKind {
        self.kind
    }

    /// The kind of actor whose verdict refused the request.
    pub fn actor_kind(&self) -> Option<ActorKind> {
        self.actor_kind
    }

    /// How long until the request may succeed, if known.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// `Retry-After` in whole seconds: rounded up, never 0.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|d| {
            let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            s.max(1)
        })
    }

    /// The probe whose signals led to the verdict, if any.
    pub fn probe(&self) -> Option<&str> {
        self.probe.as_deref()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused: {}", self.kind.as_str())?;
        if let Some(k) = self.actor_kind {
            write!(f, " ({k})")?;
        }
        Ok(())
    }
}

/// Builds the response of a refusal. Implemented for [`DefaultRefusal`]
/// and for closures `Fn(&Refusal) -> Response<Bytes>`.
///
/// ```
/// use enumguard::{GuardLayer, Refusal};
/// let layer = GuardLayer::builder()
///     .on_refusal(|r: &Refusal| {
///         let mut res = http::Response::new(bytes::Bytes::from_static(b"{\"error\":\"slow down\"}"));
///         *res.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
///         if let Some(s) = r.retry_after_secs() {
///             res.headers_mut().insert("retry-after", s.into());
///         }
///         res
///     })
///     .build()
///     .unwrap();
/// # let _ = layer;
/// ```
pub trait OnRefusal: Send + Sync + 'static {
    /// The response for `refusal`. The guard adds the [`Refusal`] to its
    /// extensions afterwards.
    fn response(&self, refusal: &Refusal) -> Response<Bytes>;
}

impl<F> OnRefusal for F
where
    F: Fn(&Refusal) -> Response<Bytes> + Send + Sync + 'static,
{
    fn response(&self, refusal: &Refusal) -> Response<Bytes> {
        self(refusal)
    }
}

/// The default refusal: the configured status (429 for blocks and
/// throttles by default), `Retry-After` in whole seconds (rounded up, never
/// 0), `Cache-Control: no-store`, and a one-line text body that says
/// nothing about the detector.
#[derive(Debug, Clone)]
pub struct DefaultRefusal {
    block_status: StatusCode,
    throttle_status: StatusCode,
}

impl DefaultRefusal {
    /// With these statuses for blocks and throttles.
    pub fn new(block_status: StatusCode, throttle_status: StatusCode) -> Self {
        Self {
            block_status,
            throttle_status,
        }
    }
}

impl Default for DefaultRefusal {
    fn default() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, StatusCode::TOO_MANY_REQUESTS)
    }
}

impl OnRefusal for DefaultRefusal {
    fn response(&self, refusal: &Refusal) -> Response<Bytes> {
        let status = match refusal.kind() {
            RefusalKind::Blocked | RefusalKind::Denylisted => self.block_status,
            RefusalKind::Throttled => self.throttle_status,
            RefusalKind::MissingPeer => StatusCode::INTERNAL_SERVER_ERROR,
            RefusalKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            #[allow(unreachable_patterns)]
            _ => self.block_status,
        };
        let body: &'static [u8] = match refusal.kind() {
            RefusalKind::MissingPeer => {
                b"server misconfigured: enumguard got no peer address (see enumguard::MissingPeer)\n"
            }
            RefusalKind::BodyTooLarge => b"request body too large\n",
            _ => match status {
                StatusCode::TOO_MANY_REQUESTS => b"too many requests; retry later\n",
                StatusCode::FORBIDDEN => b"forbidden\n",
                _ => b"request refused\n",
            },
        };
        let mut res = Response::new(Bytes::from_static(body));
        *res.status_mut() = status;
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = refusal.retry_after_secs() {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_never_zero() {
        let r = Refusal::new(RefusalKind::Throttled, None, Some(1), None);
        assert_eq!(r.retry_after_secs(), Some(1));
        let r = Refusal::new(RefusalKind::Blocked, None, Some(1_000_000_001), None);
        assert_eq!(r.retry_after_secs(), Some(2));
        let r = Refusal::new(RefusalKind::Blocked, None, Some(2_000_000_000), None);
        assert_eq!(r.retry_after_secs(), Some(2));
        let r = Refusal::new(RefusalKind::Blocked, None, Some(0), None);
        assert_eq!(r.retry_after_secs(), Some(1));
        let res = DefaultRefusal::default().response(&r);
        assert_eq!(res.headers()["retry-after"], "1");
        assert_eq!(res.status(), 429);
    }
}
