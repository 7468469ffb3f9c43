//! What crosses the core's boundary: the [`Decision`] and its [`Ticket`],
//! what the adapter read of a body ([`BodyRead`]) and of the answer
//! ([`Answered`]); and, inside the core, the facts its steps work on.

use std::sync::Arc;

use http::{Extensions, StatusCode};

use super::policy::{Match, Policy};
use super::probes::Probe;
use super::refusal::Refusal;
use crate::actor::{AccountId, Actors};
use crate::clock::Nanos;
use crate::probe::{Known, Outcome, Owner, TargetInfo};

/// A probe of one policy, by its index there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProbeId(pub(crate) u8);

impl Match {
    /// The probe matched.
    pub(crate) fn probe(&self) -> ProbeId {
        ProbeId(self.index)
    }
}

/// A request's target, as far as the head tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// No target: the request matched no probe, or the head lacks it (a
    /// probe request without its target counts as a new target of its
    /// own: leaving the target out never hides a request from the count).
    None,
    /// The probe's target is in the body.
    InBody,
    /// The target, from the request head.
    Known(TargetInfo),
}

/// The facts of one request, before the inner service runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts<'a> {
    pub(crate) actors: &'a Actors,
    pub(crate) probe: Option<ProbeId>,
    pub(crate) target: Target,
}

/// What a step of the core says of a request.
#[derive(Debug)]
pub(crate) enum Step {
    Pass,
    Refuse(Refusal),
    Track(Tracking),
}

/// What a step decided of a request it tracks: the caller holds the rest
/// of its [`Pending`] (the actors, the time), so that the actors are
/// written once into the ticket and never moved from step to step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tracking {
    /// The probe's slot.
    pub(crate) slot: u8,
    /// See [`Pending::target`].
    pub(crate) target: Option<TargetInfo>,
    /// See [`Pending::admitted`].
    pub(crate) admitted: bool,
}

/// A tracked request inside the core: fixed size, no heap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    pub(crate) slot: u8,
    pub(crate) actors: Actors,
    pub(crate) now: Nanos,
    pub(crate) target: Option<TargetInfo>,
    pub(crate) awaits_body: bool,
    /// Counted as pending in its actors' records until its answer (or its
    /// release) settles it.
    pub(crate) admitted: bool,
}

/// What the body told, inside the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyTarget {
    Found(TargetInfo),
    Nothing,
    Oversized,
    Unseen,
}

/// The answer inside the core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) outcome: Option<Outcome>,
    pub(crate) owner: Option<AccountId>,
    pub(crate) known: bool,
}

/// What the core says of a request, before the inner service
/// ([`Detector::before`](super::Detector::before)).
#[derive(Debug)]
#[must_use]
// The ticket is the large variant and the common one: boxing it would
// allocate on every probe request.
#[allow(clippy::large_enum_variant)]
pub enum Decision {
    /// Forward it; nothing is learned from its answer.
    Pass,
    /// Refuse it (enforce mode only: observe mode passes it, counting what
    /// it would have refused).
    Refuse(Refusal),
    /// Forward it and hand its answer back with the ticket
    /// ([`Detector::after`](super::Detector::after)); if the ticket
    /// [wants the body](Ticket::body_limit), read that much of it first and
    /// hand it over with [`Detector::body`](super::Detector::body).
    Track(Ticket),
}

/// A tracked probe request, handed back with its answer: the request's
/// facts as the core decided them, and the policy it was decided by (a
/// reload meanwhile applies from the next request). No heap; one reference
/// count on the policy.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub(crate) pending: Pending,
    pub(crate) policy: Arc<Policy>,
    /// The probe's index in `policy`.
    pub(crate) index: u8,
}

impl Ticket {
    /// How many bytes of the body the core wants before the request goes
    /// on (the probe's target is in a JSON body): read at most one byte
    /// more than this, then hand it to [`Detector::body`](super::Detector::body).
    /// `None`: forward the request as it is.
    pub fn body_limit(&self) -> Option<usize> {
        self.pending
            .awaits_body
            .then(|| self.probe().map_or(0, |p| p.body_limit))
    }

    /// The request's actors.
    pub fn actors(&self) -> &Actors {
        &self.pending.actors
    }

    /// The request was admitted as pending: it must be handed back, with
    /// its answer ([`Detector::after`](super::Detector::after)) or without
    /// one ([`Detector::release`](super::Detector::release)), or its actors
    /// carry it as in flight until their window rolls over it.
    pub fn admitted(&self) -> bool {
        self.pending.admitted
    }

    /// The name of the probe the request matched.
    pub fn probe_name(&self) -> &str {
        self.probe().map_or("", |p| &p.name)
    }

    pub(crate) fn probe(&self) -> Option<&Probe> {
        self.policy.probes.get(self.index as usize)
    }
}

/// What the adapter read of a probe request's body, for
/// [`Detector::body`](super::Detector::body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRead<'a> {
    /// The whole body, no longer than [`Ticket::body_limit`].
    Read(&'a [u8]),
    /// The body was longer than [`Ticket::body_limit`].
    Oversized,
    /// The body could not be read (a read error, a client gone).
    Failed,
    /// The adapter cannot see bodies (a log that does not hold them): the
    /// request counts without a target.
    Unseen,
}

/// The answer to a tracked request, as the adapter read it, for
/// [`Detector::after`](super::Detector::after): the status, and what the
/// application put into the response. The core classifies it by the
/// probe's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    /// The response status.
    pub status: StatusCode,
    /// The [`Outcome`] the application gave (it wins over the status).
    pub outcome: Option<Outcome>,
    /// The [`Owner`] the application gave.
    pub owner: Option<AccountId>,
    /// The application said the caller knows the target ([`Known`]).
    pub known: bool,
    /// An inner guard or limiter refused the request (a [`Refusal`] in
    /// the response): it says nothing of the target, and is not learned.
    pub refused: bool,
}

impl Answered {
    /// The answer of a status alone.
    pub fn status(status: StatusCode) -> Self {
        Self {
            status,
            outcome: None,
            owner: None,
            known: false,
            refused: false,
        }
    }

    /// The answer of a response head: its status and extensions.
    #[inline]
    pub fn read(status: StatusCode, ext: &Extensions) -> Self {
        Self {
            status,
            outcome: ext.get::<Outcome>().copied(),
            owner: ext.get::<Owner>().map(|o| o.0),
            known: ext.get::<Known>().is_some(),
            refused: ext.get::<Refusal>().is_some(),
        }
    }
}
