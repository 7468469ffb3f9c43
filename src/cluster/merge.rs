//! What the other replicas send, as this replica keeps it: a verdict held
//! at most `blocks.max_secs`, an operator's ban only while the table has
//! room; evidence merged into the detector's remote view, or held as sent
//! when it came at once.

use super::status::Status;
use crate::actor::ActorKey;
use crate::clock::{Nanos, Span};
use crate::detect::{ChangeKind, Detector, VerdictChange};
use crate::state::VerdictReason;
use crate::state::record::Evidence;
use crate::state::store::StoreKey;

/// A remote change as this replica applies it: held at most
/// `blocks.max_secs` (past the message or load that brought it; the
/// next load extends it while Redis still holds it); an operator's ban
/// of an actor the table does not hold yet only while the table has
/// room, since such a ban is never evicted (`None`, counted: the next
/// load tries again).
pub(super) fn bounded(
    core: &Detector,
    status: &Status,
    mut c: VerdictChange,
) -> Option<VerdictChange> {
    let policy = core.policy();
    c.remaining = c.remaining.min(policy.block_max.get());
    if c.reason == VerdictReason::Manual
        && c.kind != ChangeKind::Allow
        && core.verdicts.get(&c.actor).is_none()
        && core.verdicts.len() >= policy.config().limits.max_verdicts
    {
        status.reject("full");
        return None;
    }
    Some(c)
}

/// Keeps what `replica` saw of `actor` on the probe named `probe`, as
/// [`Detector::merge_evidence`] does; `hot`: sent at once (see
/// `state/remote.rs`).
pub(super) fn keep_evidence(
    core: &Detector,
    (actor, probe): (ActorKey, &str),
    replica: u64,
    ev: Evidence,
    valid: Span,
    now: Nanos,
    hot: bool,
) {
    if !hot {
        core.merge_evidence(actor, probe, replica, ev, valid, now);
        return;
    }
    let policy = core.policy();
    let Some(p) = policy.probes.iter().find(|p| &*p.name == probe) else {
        return;
    };
    let until = now.saturating_add(valid.min(p.window));
    core.remote
        .put_from(StoreKey::new(actor, p.slot), replica, ev, until, now, true);
}
