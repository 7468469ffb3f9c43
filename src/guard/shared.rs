//! What every clone of the layer, the service and the handle share: the
//! detector and what only code can give it; and a tracked request on its
//! way through the response future.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};

use super::access::{AccessFn, Seen};
use super::identify::{self, Need};
use super::response::{DefaultRefusal, OnRefusal};
use crate::actor::{AccountId, has_peer};
use crate::clock::SharedClock;
use crate::detect::{Decision, Detector, Facts, Match, Policy, Refusal, Target, Ticket};

pub(crate) type AccountFn = Arc<dyn Fn(&Parts) -> Option<AccountId> + Send + Sync>;
/// The ownership hook: `(parts, probe name, target) -> the caller owns it`.
pub(crate) type OwnsFn = Arc<dyn Fn(&Parts, &str, &[u8]) -> bool + Send + Sync>;

/// What every clone of the layer, the service and the handle share: the
/// detector, and what only code can give it (the clock, the account
/// source, the ownership hook, the refusal responses).
pub(crate) struct Shared {
    pub(crate) core: Arc<Detector>,
    pub(crate) clock: SharedClock,
    account: Option<AccountFn>,
    owns: Option<OwnsFn>,
    /// The refusal hook; `None` is [`DefaultRefusal`] with the statuses of
    /// the policy in force.
    responder: Option<Arc<dyn OnRefusal>>,
    /// The access-log hook, and the wall-clock time of the clock's origin.
    pub(crate) access: Option<(AccessFn, std::time::SystemTime)>,
    /// The cluster sync's state, when replicas share verdicts.
    #[cfg(feature = "redis")]
    pub(crate) cluster: Option<Arc<crate::cluster::Status>>,
}

impl Shared {
    pub(crate) fn new(
        core: Arc<Detector>,
        clock: SharedClock,
        account: Option<AccountFn>,
        owns: Option<OwnsFn>,
        responder: Option<Arc<dyn OnRefusal>>,
    ) -> Self {
        Self {
            core,
            clock,
            account,
            owns,
            responder,
            access: None,
            #[cfg(feature = "redis")]
            cluster: None,
        }
    }

    pub(crate) fn core(&self) -> &Detector {
        &self.core
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.now()
    }

    pub(crate) fn account(&self, parts: &Parts) -> Option<AccountId> {
        self.account.as_ref().and_then(|f| f(parts))
    }

    /// The refusal's response, with the [`Refusal`] in its extensions.
    pub(crate) fn refusal_response(&self, r: Refusal) -> Response<Bytes> {
        let mut res = match &self.responder {
            Some(hook) => hook.response(&r),
            None => {
                let policy = self.core.policy();
                let statuses = &policy.config().responses;
                let status =
                    |s: u16| StatusCode::from_u16(s).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
                DefaultRefusal::new(
                    status(statuses.block_status),
                    status(statuses.throttle_status),
                )
                .response(&r)
            }
        };
        res.extensions_mut().insert(r);
        res
    }

    /// What the access log carries for a request read at `now`, if the
    /// log is on.
    pub(crate) fn seen(
        &self,
        policy: &Arc<Policy>,
        parts: (&http::Method, &http::Uri),
        matched: Option<&Match>,
        now: u64,
    ) -> Option<Box<Seen>> {
        let (hook, origin) = self.access.as_ref()?;
        Some(Seen::new(
            hook,
            *origin,
            now,
            parts,
            policy,
            matched.map(Match::probe_index),
        ))
    }

    /// The address actors of a request no step needed to identify, for
    /// the access log.
    pub(crate) fn seen_addr(&self, policy: &Policy, parts: &Parts, seen: &mut Seen) {
        if let Ok(a) = identify::actors(&self.core, policy, parts, Need::Addr, |_| None) {
            seen.actors = Some(a);
        }
    }

    /// Everything before the inner service, for a request whose head is
    /// `parts`, matched to `matched`; `now` if the clock was read already;
    /// what the access log keeps goes into `seen`.
    pub(crate) fn before(
        &self,
        policy: &Policy,
        parts: &Parts,
        matched: Option<Match>,
        now: Option<u64>,
        mut seen: Option<&mut Seen>,
    ) -> Decision {
        let verdicts = self.core.has_verdicts();
        let need = Need::of(policy, matched.is_some(), verdicts);
        if need == Need::Peer {
            if let Some(s) = seen {
                self.seen_addr(policy, parts, s);
            }
            // Nothing concerns this request: it only needs a known peer.
            return match self.peer_known(policy, &parts.extensions) {
                Ok(()) => Decision::Pass,
                Err(r) => Decision::Refuse(r),
            };
        }
        let actors = match identify::actors(&self.core, policy, parts, need, |p| self.account(p)) {
            Ok(a) => a,
            Err(r) => {
                if let Some(s) = seen {
                    self.seen_addr(policy, parts, s);
                }
                return Decision::Refuse(r);
            }
        };
        if let Some(s) = seen.as_deref_mut() {
            s.actors = Some(actors);
        }
        // The clock is read once, and only when something will use it.
        let now = if matched.is_some() || verdicts {
            now.unwrap_or_else(|| self.clock.now())
        } else {
            0
        };
        let target = match &matched {
            Some(m) => identify::target(
                &self.core,
                policy,
                parts,
                m,
                &actors,
                self.owns
                    .as_ref()
                    .map(|f| |p: &Parts, n: &str, t: &[u8]| f(p, n, t)),
                seen,
            ),
            None => Target::None,
        };
        let facts = Facts {
            actors: &actors,
            probe: matched.as_ref().map(Match::probe),
            target,
        };
        self.core.check(policy, &facts, now)
    }

    /// `Ok` if the request has a peer address, or may go without one.
    #[inline]
    pub(crate) fn peer_known(
        &self,
        policy: &Policy,
        ext: &http::Extensions,
    ) -> Result<(), Refusal> {
        if has_peer(ext) {
            Ok(())
        } else {
            self.core.missing_peer(policy)
        }
    }
}

/// A tracked request on its way: the ticket, and what reporting its answer
/// needs (the detector, and the policy it was decided by).
pub(crate) struct Tracked {
    pub(crate) ticket: Ticket,
    pub(crate) shared: Arc<Shared>,
    /// The policy the request was decided by, and its generation: while
    /// no reload came between, its answer is read by the same rules
    /// without reading the detector's current policy again.
    pub(crate) policy: Arc<Policy>,
    pub(crate) generation: u64,
}

/// A request dropped before its answer (the client went away, the inner
/// service failed) gives back what its ticket held as pending.
impl Drop for Tracked {
    fn drop(&mut self) {
        if self.ticket.admitted() {
            self.shared.core().release(&self.policy, self.ticket);
        }
    }
}

impl Tracked {
    pub(crate) fn new(
        ticket: Ticket,
        shared: &Arc<Shared>,
        policy: &Arc<Policy>,
        generation: u64,
    ) -> Self {
        Self {
            ticket,
            shared: shared.clone(),
            policy: policy.clone(),
            generation,
        }
    }
}
