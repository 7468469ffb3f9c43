//! Verdict changes as data: what the detector tells a listener (the
//! cluster sync, a log of verdicts) each time it throttles, blocks or lifts
//! a verdict, and what it applies when another replica made the change.

use std::sync::Arc;

use crate::actor::ActorKey;
use crate::state::VerdictReason;

/// What a verdict became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeKind {
    /// Throttled.
    Throttle,
    /// Blocked.
    Block,
    /// Lifted (an operator's unban).
    Allow,
}

impl ChangeKind {
    /// The lower-case name used in logs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Throttle => "throttle",
            ChangeKind::Block => "block",
            ChangeKind::Allow => "allow",
        }
    }
}

/// One verdict change.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VerdictChange {
    /// The actor.
    pub actor: ActorKey,
    /// What its verdict became.
    pub kind: ChangeKind,
    /// Why.
    pub reason: VerdictReason,
    /// Times blocked (0 for a throttle).
    pub strikes: u32,
    /// How long the verdict lasts from the change, in nanoseconds (0 for
    /// `Allow`).
    pub remaining: u64,
    /// The probe it was caught on, by name.
    pub probe: Option<Arc<str>>,
}

impl VerdictChange {
    /// The verdict it set, as [`Verdict`](crate::Verdict) says it.
    pub fn verdict(&self) -> crate::state::Verdict {
        use crate::state::Verdict;
        let remaining = std::time::Duration::from_nanos(self.remaining);
        match self.kind {
            ChangeKind::Block => Verdict::Block {
                remaining,
                reason: self.reason,
                strikes: self.strikes,
            },
            ChangeKind::Throttle => Verdict::Throttle {
                remaining,
                reason: self.reason,
            },
            ChangeKind::Allow => Verdict::Allow,
        }
    }
}

/// Receives every verdict change the detector makes itself (not those it
/// applies for another replica). Called on the request path: it must not
/// block (hand the change to a channel).
pub trait VerdictListener: Send + Sync + 'static {
    /// A change was made.
    fn changed(&self, change: &VerdictChange);
}

impl<F> VerdictListener for F
where
    F: Fn(&VerdictChange) + Send + Sync + 'static,
{
    fn changed(&self, change: &VerdictChange) {
        self(change)
    }
}
