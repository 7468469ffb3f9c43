//! The core in two calls: [`Detector::before`] reads a request head and
//! says pass, refuse or track; [`Detector::after`] takes the tracked
//! request's answer. Between them, for a probe whose target is in the body,
//! [`Detector::body`] takes the body's first bytes. Routing, attribution,
//! target extraction and ownership, the choice of what to identify and the
//! classification of the answer all happen inside; an adapter only
//! translates its request into a [`Head`] and its answer into an
//! [`Answered`].
//!
//! ```
//! use enumguard::Config;
//! use enumguard::detect::{Answered, Decision, Detector, Head, NoHooks};
//! use http::{HeaderMap, Method, StatusCode};
//! use std::net::IpAddr;
//!
//! /// A request as this adapter knows it.
//! struct Req { path: String, from: IpAddr, headers: HeaderMap }
//!
//! impl Head for Req {
//!     fn method(&self) -> &Method { &Method::GET }
//!     fn path(&self) -> &str { &self.path }
//!     fn query(&self) -> Option<&str> { None }
//!     fn headers(&self) -> &HeaderMap { &self.headers }
//!     fn peer(&self) -> Option<IpAddr> { Some(self.from) }
//! }
//!
//! let config = Config::from_toml_str(r#"
//!     [[probes]]
//!     name = "book"
//!     path = "/accounts/{id}/book"
//!     target = { path = "id" }
//! "#).unwrap();
//! let detector = Detector::with_seed(config, 7).unwrap();
//! let policy = detector.policy_arc();
//! let mut refused = 0;
//! for id in 100..160u64 {
//!     let now = id * 1_000_000_000;
//!     let req = Req {
//!         path: format!("/accounts/{id}/book"),
//!         from: "203.0.113.9".parse().unwrap(),
//!         headers: HeaderMap::new(),
//!     };
//!     match detector.before(&policy, &req, &NoHooks, || now, None) {
//!         Decision::Refuse(_) => refused += 1,
//!         Decision::Track(ticket) => {
//!             detector.after(ticket, &Answered::status(StatusCode::OK));
//!         }
//!         Decision::Pass => {}
//!     }
//! }
//! // An anonymous address walking 60 address books is stopped.
//! assert!(refused > 0);
//! ```

use std::sync::Arc;

use super::Detector;
use super::facts::{
    Answer, Answered, BodyRead, BodyTarget, Decision, Facts, Pending, Step, Target, Ticket,
};
use super::head::{Head, Hooks, Noted};
use super::identify::{self, Need};
use super::policy::Policy;
use crate::clock::Nanos;
use crate::probe::Outcome;

/// What [`Detector::route`] says: decided already, or go on.
#[derive(Debug)]
pub enum Route {
    /// Forward it (the fast path: no probe, nothing held).
    Pass,
    /// Refuse it (no peer address, and `missing_peer = "refuse"`).
    Refuse(super::Refusal),
    /// Go on with [`Detector::before_routed`].
    Go(Routed),
}

/// A request [`Detector::route`] matched (or not) to a probe, with the time
/// if it was read.
#[derive(Debug)]
pub struct Routed {
    matched: Option<super::policy::Match>,
    now: Option<Nanos>,
}

impl Detector {
    /// The policy in force, as a shared handle to keep (one reference
    /// count): what [`before`](Self::before) takes.
    pub fn policy_arc(&self) -> Arc<Policy> {
        self.snapshot().1
    }

    /// Call one, before the inner service: the request's probe, its actors
    /// (as far as anything will read them), its target, the lists, the
    /// actors' verdicts and the pre-check. `now` is the adapter's clock,
    /// read at most once and only if something needs the time; `noted`,
    /// when given, receives what an access log keeps (and the request is
    /// then identified in full, its account included).
    ///
    /// An adapter that must take its request apart to hand it over (the
    /// tower guard: the hooks take `Parts`) may split this call in two:
    /// [`route`](Self::route) first, on the request as it is, then
    /// [`before_routed`](Self::before_routed) only when it says to go on.
    pub fn before<H, K, C>(
        &self,
        policy: &Arc<Policy>,
        head: &H,
        hooks: &K,
        now: C,
        noted: Option<&mut Noted>,
    ) -> Decision
    where
        H: Head + ?Sized,
        K: Hooks<H>,
        C: FnOnce() -> u64,
    {
        match self.route(policy, head, now, noted.is_some()) {
            Route::Pass => Decision::Pass,
            Route::Refuse(r) => Decision::Refuse(r),
            Route::Go(r) => self.before_routed(policy, r, head, hooks, noted),
        }
    }

    /// The first half of [`before`](Self::before): the probe, and the fast
    /// path of a request that matches none while nothing is held (one
    /// atomic load), which is decided here. `noting`: an access log will
    /// want the request's facts (no fast path).
    #[inline]
    pub fn route<H, C>(&self, policy: &Policy, head: &H, now: C, noting: bool) -> Route
    where
        H: Head + ?Sized,
        C: FnOnce() -> u64,
    {
        self.live.requests().increment(1);
        self.live.note_request(policy);
        let matched = policy.route(head.method(), head.path());
        if let Some(m) = &matched {
            let probe = &policy.probes[m.probe_index()];
            super::live::ProbeLive::note(&self.live.of(probe.slot).matched);
        }
        // Without a probe, only a ban or an account's or session's block can
        // refuse the request (and the lists): while none is held, nothing
        // needs identifying.
        if matched.is_none() && !noting && policy.no_lists {
            let mut read = None;
            if self.quiet(policy, || read.insert(Nanos::new(now())).get()) {
                return match self.peer_only(policy, head) {
                    Ok(()) => Route::Pass,
                    Err(r) => Route::Refuse(r),
                };
            }
            // Not quiet: a wide verdict is live, and the time was read.
            return Route::Go(Routed { matched, now: read });
        }
        // The time, read only if something will use it: a probe, or a verdict.
        let now = (matched.is_some() || self.has_verdicts()).then(|| Nanos::new(now()));
        Route::Go(Routed { matched, now })
    }

    /// The second half of [`before`](Self::before), for a request
    /// [`route`](Self::route) said to go on with.
    #[inline]
    pub fn before_routed<H, K>(
        &self,
        policy: &Arc<Policy>,
        routed: Routed,
        head: &H,
        hooks: &K,
        mut noted: Option<&mut Noted>,
    ) -> Decision
    where
        H: Head + ?Sized,
        K: Hooks<H>,
    {
        let Routed { matched, now } = routed;
        if let Some(n) = noted.as_deref_mut() {
            n.probe = matched.as_ref().map(|m| m.index);
        }
        let verdicts = self.has_verdicts();
        // A request noted for an access log is identified in full (its
        // account too, whatever it asked for).
        let need = match noted {
            Some(_) => Need::Full,
            None => Need::of(policy, matched.is_some(), verdicts),
        };
        if need == Need::Peer {
            // Nothing concerns this request: it only needs a known peer.
            return match self.peer_only(policy, head) {
                Ok(()) => Decision::Pass,
                Err(r) => Decision::Refuse(r),
            };
        }
        let peer = match identify::peer(self, policy, head) {
            Ok(p) => p,
            Err(r) => return Decision::Refuse(r),
        };
        let actors = identify::actors(policy, head, peer, need, hooks);
        if let Some(n) = noted.as_deref_mut() {
            n.actors = Some(actors);
        }
        let now = now.unwrap_or(Nanos::ZERO);
        let target = match &matched {
            Some(m) => identify::target(self, policy, head, m, &actors, hooks, noted),
            None => Target::None,
        };
        let facts = Facts {
            actors: &actors,
            probe: matched.as_ref().map(|m| m.probe()),
            target,
        };
        match self.check(policy, &facts, now) {
            Step::Pass => Decision::Pass,
            Step::Refuse(r) => Decision::Refuse(r),
            // The ticket is put together here, where the actors are: they
            // are copied once, into it.
            Step::Track(t) => Decision::Track(Ticket {
                pending: Pending {
                    slot: t.slot,
                    actors,
                    now,
                    target: t.target,
                    awaits_body: target == Target::InBody,
                    admitted: t.admitted,
                },
                policy: policy.clone(),
                index: matched.as_ref().map_or(0, |m| m.index),
            }),
        }
    }

    /// A request that only needs a known peer address.
    #[inline]
    fn peer_only<H: Head + ?Sized>(&self, policy: &Policy, head: &H) -> Result<(), super::Refusal> {
        if head.has_peer() {
            Ok(())
        } else {
            self.missing_peer(policy)
        }
    }

    /// Between the two calls, for a ticket that [wants the
    /// body](Ticket::body_limit): what the adapter read of it. The target
    /// is read from it here, and the pre-check runs.
    pub fn body(
        &self,
        mut ticket: Ticket,
        body: BodyRead<'_>,
        noted: Option<&mut Noted>,
    ) -> Decision {
        let Some(probe) = ticket.probe() else {
            return Decision::Pass;
        };
        let account = ticket.pending.actors.account();
        let found = match body {
            BodyRead::Read(bytes) if bytes.len() > probe.body_limit => BodyTarget::Oversized,
            BodyRead::Read(bytes) => probe
                .source
                .json_target(bytes, |t| {
                    if let Some(n) = noted {
                        n.target = Some(t.into());
                    }
                    self.target_of(probe, t, account.as_ref())
                })
                .map_or(BodyTarget::Nothing, BodyTarget::Found),
            BodyRead::Oversized => BodyTarget::Oversized,
            BodyRead::Failed => BodyTarget::Nothing,
            BodyRead::Unseen => BodyTarget::Unseen,
        };
        match self.body_step(&ticket.policy, probe, &ticket.pending, found) {
            Step::Pass => Decision::Pass,
            Step::Refuse(r) => Decision::Refuse(r),
            Step::Track(t) => {
                let p = &mut ticket.pending;
                p.awaits_body = false;
                p.target = t.target;
                p.admitted = t.admitted;
                Decision::Track(ticket)
            }
        }
    }

    /// Call two: the answer to a tracked request, classified by the
    /// probe's rules (the application's [`Outcome`] first), folded into
    /// its actors' records, and verdicts changed where a threshold was
    /// crossed. Returns the outcome as classified. A reload since the
    /// request was decided applies: a probe it removed learns nothing.
    #[inline]
    pub fn after(&self, ticket: Ticket, answer: &Answered) -> Option<Outcome> {
        self.answered(&ticket, answer)
    }

    /// [`after`](Self::after), on a ticket the adapter keeps where it is
    /// (the tower guard's response future): the ticket is read in place,
    /// never moved; the adapter drops it after.
    #[inline]
    pub(crate) fn answered(&self, ticket: &Ticket, answer: &Answered) -> Option<Outcome> {
        if answer.refused {
            // A refusal from an inner guard or limiter says nothing of the
            // target: what the ticket held as pending is let go.
            self.release(ticket);
            return None;
        }
        let current;
        let (policy, index) = if self.generation() == ticket.policy.generation {
            (&*ticket.policy, ticket.index as usize)
        } else {
            current = self.policy_arc();
            let slot = ticket.pending.slot;
            match current.probes.iter().position(|p| p.slot == slot) {
                Some(i) => (&*current, i),
                None => return None,
            }
        };
        let probe = policy.probes.get(index)?;
        let outcome = answer
            .outcome
            .or_else(|| probe.classify_status(answer.status));
        let i = match outcome {
            Some(Outcome::Hit) => 0,
            Some(Outcome::Miss) => 1,
            Some(Outcome::Denied) => 2,
            None => 3,
        };
        self.live.of(probe.slot).count_outcome(probe, i);
        let answer = Answer {
            outcome,
            owner: answer.owner,
            known: answer.known,
        };
        self.learn_answer(policy, probe, &ticket.pending, answer);
        outcome
    }

    /// A ticket that will get no answer (the request was dropped, the inner
    /// service failed): what it held as pending is let go, and nothing is
    /// learned.
    pub fn release(&self, ticket: &Ticket) {
        if let Some(probe) = ticket.probe() {
            self.release_pending(probe, &ticket.pending);
        }
    }
}
