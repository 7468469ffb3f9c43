//! Refusals: why the detector refused a request, and for how long. The
//! adapter turns one into a response (the tower guard with its
//! [`OnRefusal`](crate::OnRefusal) hook) and puts it into the response
//! extensions.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::actor::ActorKind;
use crate::clock::Span;

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
    /// An actor of the request has so many probe requests in flight that
    /// one more could cross a block threshold if their answers came back
    /// as misses: retry once they have (no verdict, no strike).
    InFlight,
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
            RefusalKind::InFlight => "in_flight",
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
        retry_after: Option<Span>,
        probe: Option<&Arc<str>>,
    ) -> Self {
        Self {
            kind,
            actor_kind,
            retry_after: retry_after.map(Span::as_duration),
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
