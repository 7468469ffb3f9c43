//! What an adapter tells the detector about a request, and what it answers.

use super::policy::Match;
use super::refusal::Refusal;
use crate::actor::{AccountId, Actors};
use crate::probe::{Outcome, TargetInfo};

/// A probe of the current policy, as [`Policy::route`](super::Policy::route)
/// matched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeId(pub(crate) u8);

impl ProbeId {
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

impl Match {
    /// The probe matched.
    pub fn probe(&self) -> ProbeId {
        ProbeId(self.index)
    }
}

/// A request's target, as far as the adapter knows it before the inner
/// service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// No target: the request matched no probe, or the head lacks it (a
    /// probe request without its target counts as a new target of its
    /// own: leaving the target out never hides a request from the count).
    None,
    /// The probe's target is in the body: the adapter reads it and reports
    /// it with [`Detector::body`](super::Detector::body).
    InBody,
    /// The target, from the request head.
    Known(TargetInfo),
}

/// The facts of one request, before the inner service runs.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// Who made it ([`Policy::actors`](super::Policy::actors)).
    pub actors: &'a Actors,
    /// The probe it matched, if any.
    pub probe: Option<ProbeId>,
    /// Its target.
    pub target: Target,
}

/// What the detector says of a request.
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
    /// Forward it and report its answer with the ticket
    /// ([`Detector::outcome`](super::Detector::outcome)); if the ticket
    /// [awaits the body](Ticket::awaits_body), read the target first and
    /// report it with [`Detector::body`](super::Detector::body).
    Track(Ticket),
}

/// A tracked probe request, handed back with its answer. Fixed size, no heap.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    pub(crate) slot: u8,
    pub(crate) actors: Actors,
    pub(crate) now: u64,
    pub(crate) target: Option<TargetInfo>,
    pub(crate) awaits_body: bool,
    /// Counted as pending in its actors' records until its answer (or
    /// [`Detector::release`](super::Detector::release)) settles it.
    pub(crate) admitted: bool,
}

impl Ticket {
    /// The probe's target is in the body, which the adapter must read and
    /// report before forwarding.
    pub fn awaits_body(&self) -> bool {
        self.awaits_body
    }

    /// The request's actors.
    pub fn actors(&self) -> &Actors {
        &self.actors
    }

    /// The request was admitted as pending: it must be handed back, with
    /// its answer ([`Detector::outcome`](super::Detector::outcome)) or
    /// without one ([`Detector::release`](super::Detector::release)), or
    /// its actors carry it as in flight until their window rolls over it.
    pub fn admitted(&self) -> bool {
        self.admitted
    }
}

/// What the adapter found in a body it read for a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyTarget {
    /// The target.
    Found(TargetInfo),
    /// No target in it (an empty body, or the body failed to read).
    Nothing,
    /// The body was larger than the probe's `body_limit`.
    Oversized,
    /// The adapter cannot see bodies (a log that does not hold them): the
    /// request counts without a target. (A tower adapter always sees the
    /// body, and reports `Nothing` or `Oversized` for one it cannot read:
    /// those count as a new target each, so that an attacker who hides the
    /// target is still counted.)
    Unseen,
}

/// The answer to a tracked request, as the adapter read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answer {
    /// Hit, miss or denied; `None` for a status in no outcome rule.
    pub outcome: Option<Outcome>,
    /// Whose object it was, when the application said
    /// ([`Owner`](crate::Owner)).
    pub owner: Option<AccountId>,
    /// The application said the caller already knows the target
    /// ([`Known`](crate::Known)): not a guess, never counted.
    pub known: bool,
}
