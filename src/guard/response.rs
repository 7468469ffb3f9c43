//! Refusal responses: the [`OnRefusal`] hook that turns a detector's
//! [`Refusal`] into an HTTP response, and the default one.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::detect::{Refusal, RefusalKind};

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
            RefusalKind::Throttled | RefusalKind::InFlight => self.throttle_status,
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
    use crate::clock::Span;

    #[test]
    fn retry_after_rounds_up_never_zero() {
        let r = Refusal::new(RefusalKind::Throttled, None, Some(Span::new(1)), None);
        assert_eq!(r.retry_after_secs(), Some(1));
        let r = Refusal::new(
            RefusalKind::Blocked,
            None,
            Some(Span::new(1_000_000_001)),
            None,
        );
        assert_eq!(r.retry_after_secs(), Some(2));
        let r = Refusal::new(
            RefusalKind::Blocked,
            None,
            Some(Span::new(2_000_000_000)),
            None,
        );
        assert_eq!(r.retry_after_secs(), Some(2));
        let r = Refusal::new(RefusalKind::Blocked, None, Some(Span::new(0)), None);
        assert_eq!(r.retry_after_secs(), Some(1));
        let res = DefaultRefusal::default().response(&r);
        assert_eq!(res.headers()["retry-after"], "1");
        assert_eq!(res.status(), 429);
    }
}
