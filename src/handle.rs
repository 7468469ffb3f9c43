//! [`GuardHandle`]: what an operator (or an admin endpoint) does to the
//! guard's state while it runs.

use std::sync::Arc;
use std::time::Duration;

use crate::actor::{Actor, ActorKey, ActorKind};
use crate::service::Shared;
use crate::verdict::Verdict;

/// A handle on a guard's shared state, from [`GuardLayer::handle`](crate::GuardLayer::handle).
/// Cheap to clone.
///
/// ```
/// use enumguard::{Actor, GuardLayer, Verdict};
/// use std::time::Duration;
///
/// let layer = GuardLayer::builder().build().unwrap();
/// let handle = layer.handle();
/// let ip: std::net::IpAddr = "203.0.113.9".parse().unwrap();
/// handle.ban(&Actor::ip(ip), Duration::from_secs(600));
/// assert!(matches!(handle.verdict(&Actor::ip(ip)), Verdict::Block { .. }));
/// assert!(handle.unban(&Actor::ip(ip)));
/// assert_eq!(handle.verdict(&Actor::ip(ip)), Verdict::Allow);
/// ```
#[derive(Clone)]
pub struct GuardHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for GuardHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardHandle").finish_non_exhaustive()
    }
}

/// One suspect, as [`GuardHandle::suspects`] lists it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Suspect {
    /// The actor (addresses in clear, sessions and accounts as hashes).
    pub actor: ActorKey,
    /// The probe.
    pub probe: String,
    /// Suspicion at its last update (1.0 is a block).
    pub score: f64,
    /// Times blocked.
    pub strikes: u32,
}

impl GuardHandle {
    /// The key the guard uses for `actor`.
    pub fn key(&self, actor: &Actor) -> ActorKey {
        let s = &self.shared;
        match actor {
            Actor::Ip(ip) => ActorKey::ip(*ip, s.ip_prefix.0, s.ip_prefix.1, ActorKind::Ip),
            Actor::Subnet(ip) => {
                ActorKey::ip(*ip, s.subnet_prefix.0, s.subnet_prefix.1, ActorKind::Subnet)
            }
            Actor::Session(token) => s.session_key_of(token),
            Actor::Account(a) => a.key(),
        }
    }

    /// Blocks `actor` for `duration` (refused at once, the inner service is
    /// not called). Replaces a shorter verdict; a longer block stays.
    pub fn ban(&self, actor: &Actor, duration: Duration) {
        let now = self.shared.clock.now();
        let nanos = duration.as_nanos().min(u64::MAX as u128) as u64;
        self.shared
            .engine
            .manual_block(self.key(actor), now, nanos.max(1));
    }

    /// Lifts any verdict on `actor` and forgets its signals and strikes.
    /// Returns whether it had a verdict.
    pub fn unban(&self, actor: &Actor) -> bool {
        let key = self.key(actor);
        let had = self.shared.engine.verdicts.remove(&key);
        self.shared.engine.forget(key);
        if had {
            tracing::warn!(target: "enumguard", actor = %key, verdict = "allow", reason = "manual", "enumguard verdict changed");
            metrics::counter!(crate::metrics::VERDICTS, "verdict" => "allow", "actor_kind" => key.kind().as_str(), "reason" => "manual", "probe" => "").increment(1);
        }
        had
    }

    /// The verdict held for `actor` now.
    pub fn verdict(&self, actor: &Actor) -> Verdict {
        let now = self.shared.clock.now();
        self.shared.engine.verdicts.verdict(&self.key(actor), now)
    }

    /// (actor, probe) signal records tracked now.
    pub fn tracked(&self) -> usize {
        self.shared.engine.store.len()
    }

    /// The bound on tracked records.
    pub fn capacity(&self) -> usize {
        self.shared.engine.store.capacity()
    }

    /// Verdicts held now (including expired ones not yet purged).
    pub fn verdicts(&self) -> usize {
        self.shared.engine.verdicts.len()
    }

    /// Drops expired verdicts; returns how many. The table also does this
    /// itself when it is full, so calling it is optional.
    pub fn purge_expired(&self) -> usize {
        let now = self.shared.clock.now();
        self.shared.engine.verdicts.purge_expired(now)
    }

    /// Actors with a suspicion of at least `min_score`, most suspect first.
    /// Walks the whole store: for admin use, not per request.
    pub fn suspects(&self, min_score: f64) -> Vec<Suspect> {
        let engine = &self.shared.engine;
        let mut out = Vec::new();
        engine.store.for_each(|key, r| {
            if r.last_score() >= min_score || r.strikes > 0 {
                out.push(Suspect {
                    actor: key.actor(),
                    probe: engine
                        .probes
                        .get(key.probe() as usize)
                        .map(|p| p.name.to_string())
                        .unwrap_or_default(),
                    score: r.last_score(),
                    strikes: r.strikes as u32,
                });
            }
        });
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out
    }
}
