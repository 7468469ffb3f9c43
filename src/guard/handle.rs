//! [`GuardHandle`]: what an operator (or an admin endpoint) does to the
//! guard's state while it runs.

use std::sync::Arc;
use std::time::Duration;

use super::shared::Shared;
use crate::actor::{Actor, ActorKey};
use crate::config::{Config, ConfigError};
use crate::detect::Detector;
use crate::state::Verdict;

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
    /// The verdict the actor holds now (on any probe).
    pub verdict: Verdict,
}

/// A live verdict, as [`GuardHandle::verdicts`] lists it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ActiveVerdict {
    /// The actor (addresses in clear, sessions and accounts as hashes).
    pub actor: ActorKey,
    /// The verdict: kind, reason, time remaining, strikes.
    pub verdict: Verdict,
    /// The probe it was caught on (`None` for a manual ban, which covers
    /// every request).
    pub probe: Option<String>,
}

/// The stronger of two verdicts: a block over a throttle over nothing,
/// then the longer.
fn stronger(a: Verdict, b: Verdict) -> Verdict {
    let rank = |v: &Verdict| match v {
        Verdict::Allow => (0, Duration::ZERO),
        Verdict::Throttle { remaining, .. } => (1, *remaining),
        Verdict::Block { remaining, .. } => (2, *remaining),
    };
    if rank(&b) > rank(&a) { b } else { a }
}

impl GuardHandle {
    /// The key the guard uses for `actor`.
    pub fn key(&self, actor: &Actor) -> ActorKey {
        let policy = self.shared.core().policy();
        match actor {
            Actor::Ip(ip) => policy.ip_key(*ip),
            Actor::Subnet(ip) => policy.subnet_key(*ip),
            Actor::Session(token) => policy.session_key_of(token.as_bytes()),
            Actor::Account(a) => a.key(),
        }
    }

    /// Blocks `actor` for `duration` (refused at once, the inner service is
    /// not called). Replaces a shorter verdict; a longer block stays.
    pub fn ban(&self, actor: &Actor, duration: Duration) {
        let now = self.shared.now();
        let nanos = duration.as_nanos().min(u64::MAX as u128) as u64;
        self.shared.core().ban(self.key(actor), now, nanos.max(1));
    }

    /// Lifts any verdict on `actor` and forgets its signals and strikes.
    /// Returns whether it had a verdict.
    pub fn unban(&self, actor: &Actor) -> bool {
        self.shared.core().unban(self.key(actor))
    }

    /// The verdict the gate holds against `actor` now: for an address,
    /// the stronger of its own and its subnet's (an address inside a banned
    /// /24 reads `Block`). A detected (not manual) verdict on an address or
    /// subnet refuses only anonymous requests to a probe; one on a session
    /// or an account refuses everything (a block) or its probe requests
    /// over the quota (a throttle).
    pub fn verdict(&self, actor: &Actor) -> Verdict {
        let now = self.shared.now();
        let core = self.shared.core();
        let own = core.verdict_of(&self.key(actor), now);
        match actor {
            Actor::Ip(ip) => {
                let subnet = core.policy().subnet_key(*ip);
                stronger(own, core.verdict_of(&subnet, now))
            }
            _ => own,
        }
    }

    /// (actor, probe) signal records tracked now.
    pub fn tracked(&self) -> usize {
        self.shared.core().tracked()
    }

    /// The bound on tracked records.
    pub fn capacity(&self) -> usize {
        self.shared.core().capacity()
    }

    /// Every live verdict (detected, linked and manual), longest remaining
    /// first. Walks the verdict table: for admin use, not per request.
    pub fn verdicts(&self) -> Vec<ActiveVerdict> {
        let now = self.shared.now();
        let mut out: Vec<ActiveVerdict> = self
            .shared
            .core()
            .live_verdicts(now)
            .into_iter()
            .map(|c| ActiveVerdict {
                actor: c.actor,
                verdict: c.verdict(),
                probe: c.probe.map(|p| p.to_string()),
            })
            .collect();
        out.sort_by_key(|v| {
            std::cmp::Reverse(match v.verdict {
                Verdict::Block { remaining, .. } | Verdict::Throttle { remaining, .. } => remaining,
                Verdict::Allow => Duration::ZERO,
            })
        });
        out
    }

    /// Verdicts held now (including expired ones not yet purged).
    pub fn verdict_count(&self) -> usize {
        self.shared.core().verdicts.len()
    }

    /// Drops expired verdicts; returns how many. The table also does this
    /// itself when it is full, so calling it is optional.
    pub fn purge_expired(&self) -> usize {
        let now = self.shared.now();
        self.shared.core().verdicts.purge_expired(now)
    }

    /// Actors with a suspicion of at least `min_score`, most suspect first.
    /// Walks the whole store: for admin use, not per request.
    pub fn suspects(&self, min_score: f64) -> Vec<Suspect> {
        let core = self.shared.core();
        let policy = core.policy();
        let now = self.shared.now();
        let mut out = Vec::new();
        core.store.for_each(|key, r| {
            if r.last_score() >= min_score || r.strikes > 0 {
                out.push(Suspect {
                    actor: key.actor(),
                    probe: policy
                        .by_slot(key.probe())
                        .map(|p| p.name.to_string())
                        .unwrap_or_default(),
                    score: r.last_score(),
                    strikes: u32::from(r.strikes),
                    verdict: core.verdict_of(&key.actor(), now),
                });
            }
        });
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out
    }

    /// Replaces the guard's settings with `config` while it runs: new
    /// thresholds, probes, lists and mode apply from the next request on;
    /// records, verdicts and strikes stay (see [`Detector::reload`] for
    /// what a removed probe loses). What only code gives (the account
    /// source, the ownership hook, the clock, the refusal responses) stays
    /// as built. Everything the builder's other calls set (probes, lists,
    /// trusted proxies, mode...) is part of the config: a reload replaces
    /// it with what `config` says. To change one setting, start from the
    /// config in force, [`config`](Self::config), which includes them.
    ///
    /// # Errors
    /// An invalid config is refused with its first invalid field, and the
    /// running one is kept.
    ///
    /// ```
    /// use enumguard::{Config, GuardLayer, Mode};
    /// let layer = GuardLayer::builder().build().unwrap();
    /// let handle = layer.handle();
    /// let observe = Config::from_toml_str("mode = \"observe\"").unwrap();
    /// handle.reload(observe).unwrap();
    /// assert_eq!(handle.config().mode, Mode::Observe);
    /// let mut bad = Config::default();
    /// bad.limits.max_verdicts = 1;
    /// assert!(handle.reload(bad).is_err());
    /// assert_eq!(handle.config().mode, Mode::Observe, "the old config runs on");
    /// ```
    ///
    /// [`Detector::reload`]: crate::detect::Detector::reload
    pub fn reload(&self, config: Config) -> Result<(), ConfigError> {
        self.shared.core().reload(config)
    }

    /// The settings in force now.
    pub fn config(&self) -> Config {
        self.shared.core().policy().config().clone()
    }

    /// Whether the cluster sync (feature `redis`) has no working Redis
    /// connection now: `None` without a `[cluster]`. Detection goes on
    /// locally meanwhile; the gauge `enumguard_cluster_degraded` says the
    /// same.
    #[cfg(feature = "redis")]
    pub fn cluster_degraded(&self) -> Option<bool> {
        self.shared.cluster.as_ref().map(|s| s.degraded())
    }

    /// Verdict changes the cluster sync dropped because its queue was full
    /// (`enumguard_cluster_dropped_total`); `None` without a `[cluster]`.
    #[cfg(feature = "redis")]
    pub fn cluster_dropped(&self) -> Option<u64> {
        self.shared.cluster.as_ref().map(|s| s.dropped())
    }

    /// The detection core, for adapters of your own (a log replay, say).
    pub fn detector(&self) -> &Detector {
        self.shared.core()
    }
}
