//! [`GuardHandle`]: what an operator (or an admin endpoint) does to the
//! guard's state while it runs.

use std::sync::Arc;
use std::time::Duration;

use super::shared::Shared;
use crate::actor::{Actor, ActorKey, ActorKind};
use crate::config::{Config, ConfigDiff, ConfigError, ReloadError};
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
    /// What the operator wrote when banning (see
    /// [`GuardHandle::ban_key`]); `None` for a detected verdict or a ban
    /// without one.
    pub note: Option<String>,
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
        self.ban_key(self.key(actor), duration, "");
    }

    /// The longest note kept with a ban, in bytes (see
    /// [`ban_key`](Self::ban_key)).
    pub const MAX_NOTE_BYTES: usize = 200;

    /// Blocks the actor of `key` for `duration`, as [`ban`](Self::ban)
    /// does, keeping `note` (why, who, a ticket) with the ban, to show in
    /// [`verdicts`](Self::verdicts) and [`ban_note`](Self::ban_note). The
    /// key is one [`key`](Self::key) gives, or one a listing shows
    /// ([`suspects`](Self::suspects), [`verdicts`](Self::verdicts), found
    /// again from its hash with [`known_key`](Self::known_key)), so that an
    /// account or a session listed only by its hash can be banned.
    ///
    /// The note is cut to [`MAX_NOTE_BYTES`](Self::MAX_NOTE_BYTES), with
    /// control characters (line breaks included) written as spaces. It is
    /// kept with the ban and goes with it (lifted, ended, replaced); this
    /// replica's only (the cluster sync does not carry it). An empty note
    /// keeps the one the actor's ban had.
    pub fn ban_key(&self, key: ActorKey, duration: Duration, note: &str) {
        let now = self.shared.now();
        let nanos = duration.as_nanos().min(u64::MAX as u128) as u64;
        let core = self.shared.core();
        let note = clean_note(note)
            .map(std::sync::Arc::new)
            .or_else(|| core.verdicts.note(&key));
        core.ban(key, now, nanos.max(1));
        if let Some(note) = note {
            core.verdicts.set_note(&key, note, now);
        }
    }

    /// The note kept with the ban of the actor of `key`, if any.
    pub fn ban_note(&self, key: ActorKey) -> Option<String> {
        self.shared
            .core()
            .verdicts
            .note(&key)
            .map(|n| n.to_string())
    }

    /// Lifts any verdict on `actor` and forgets its signals and strikes.
    /// Returns whether it had a verdict.
    pub fn unban(&self, actor: &Actor) -> bool {
        self.unban_key(self.key(actor))
    }

    /// [`unban`](Self::unban) by key (see [`ban_key`](Self::ban_key)).
    pub fn unban_key(&self, key: ActorKey) -> bool {
        self.shared.core().unban(key)
    }

    /// The verdict held against the actor of `key` itself (for an address,
    /// [`verdict`](Self::verdict) also reads its subnet's).
    pub fn verdict_key(&self, key: ActorKey) -> Verdict {
        self.shared.core().verdict_of(&key, self.shared.now())
    }

    /// The key of a session or an account the guard knows (holds a record
    /// or a live verdict for), from the hash a listing shows:
    /// `#e7634a0c5b1d2f39` (16 hex digits, as [`ActorKey`]'s `Display`
    /// writes it), with or without its `account:` or `session:` prefix.
    /// `None` if no such actor is known, or `hash` is not of that form: a
    /// hash keeps only part of the key, so an actor the guard has never
    /// seen cannot be named by one (name it by its id, [`key`](Self::key)).
    /// Walks the store: for admin use, not per request.
    pub fn known_key(&self, kind: ActorKind, hash: &str) -> Option<ActorKey> {
        if !kind.is_personal() {
            return None;
        }
        let hash = hash
            .strip_prefix(kind.as_str())
            .and_then(|h| h.strip_prefix(':'))
            .unwrap_or(hash);
        let hex = hash.strip_prefix('#')?;
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let hi = u64::from_str_radix(hex, 16).ok()?;
        let is = |key: &ActorKey| {
            let (k, _, h, _) = key.parts();
            k == kind && h == hi
        };
        let core = self.shared.core();
        let now = self.shared.now();
        if let Some((key, _)) = core.verdicts.live(now).into_iter().find(|(k, _)| is(k)) {
            return Some(key);
        }
        let mut found = None;
        core.store.for_each(|key, _| {
            let actor = key.actor();
            if found.is_none() && is(&actor) {
                found = Some(actor);
            }
        });
        found
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
                note: self.ban_note(c.actor),
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

    /// Replaces the guard's settings with `config` while it runs, and
    /// returns what changed ([`ConfigDiff`]; empty when nothing did): new
    /// thresholds, probes, lists and mode apply from the next request on;
    /// records, verdicts and strikes stay (see [`Detector::reload`] for
    /// what a removed probe loses). What only code gives (the account
    /// source, the ownership hook, the clock, the refusal responses) stays
    /// as built. Everything the builder's other calls set (probes, lists,
    /// trusted proxies, mode...) is part of the config: a reload replaces
    /// it with what `config` says. To change one setting, start from the
    /// config in force, [`config`](Self::config), which includes them.
    ///
    /// The reload is atomic, logged at `warn` (target `enumguard`) with
    /// what changed, and the config it replaced is kept for
    /// [`rollback`](Self::rollback). [`diff`](Self::diff) shows what a
    /// reload would change without applying it.
    ///
    /// This reload **may remove probes**: code that builds a config means
    /// what it says. A config that comes from outside the code (a file an
    /// operator edits, a request) may have lost its probes by mistake: load
    /// it with [`reload_keeping_probes`](Self::reload_keeping_probes),
    /// which refuses that (the admin service does).
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
    /// let diff = handle.reload(observe.clone()).unwrap();
    /// assert_eq!(diff.to_string(), "mode enforce -> observe");
    /// assert_eq!(handle.config().mode, Mode::Observe);
    /// assert!(handle.reload(observe).unwrap().is_empty(), "nothing changes twice");
    /// let mut bad = Config::default();
    /// bad.limits.max_verdicts = 1;
    /// assert!(handle.reload(bad).is_err());
    /// assert_eq!(handle.config().mode, Mode::Observe, "the old config runs on");
    /// // Back to what ran before the last change.
    /// handle.rollback().unwrap();
    /// assert_eq!(handle.config().mode, Mode::Enforce);
    /// ```
    ///
    /// [`Detector::reload`]: crate::detect::Detector::reload
    pub fn reload(&self, config: Config) -> Result<ConfigDiff, ConfigError> {
        self.shared.core().reload(config)
    }

    /// [`reload`](Self::reload), refused if `config` lacks a probe the
    /// running config has: a config file that lost its `[[probes]]` (or
    /// renamed one by a typo) would otherwise stop watching those
    /// endpoints without a word. To remove probes on purpose, use
    /// [`reload`](Self::reload). Checked and applied under one lock.
    ///
    /// # Errors
    /// [`ReloadError::RemovesProbes`], with the probes and everything the
    /// config would change; [`ReloadError::Invalid`] for an invalid config.
    /// Either way the running config is kept.
    ///
    /// ```
    /// use enumguard::config::ReloadError;
    /// use enumguard::{Config, GuardLayer, ProbeConfig, TargetConfig};
    /// let layer = GuardLayer::builder()
    ///     .probe(ProbeConfig::objects("book", "GET", "/book/{id}", TargetConfig::path("id")))
    ///     .build()
    ///     .unwrap();
    /// let handle = layer.handle();
    /// let forgot = Config::from_toml_str("mode = \"enforce\"").unwrap();
    /// let e = handle.reload_keeping_probes(forgot).unwrap_err();
    /// assert!(matches!(&e, ReloadError::RemovesProbes { removed, .. } if removed == &["book"]));
    /// assert_eq!(handle.config().probes.len(), 1, "still watched");
    /// ```
    pub fn reload_keeping_probes(&self, config: Config) -> Result<ConfigDiff, ReloadError> {
        self.shared.core().reload_keeping_probes(config)
    }

    /// Goes back to the config that ran before the last reload that
    /// changed anything (a second rollback undoes the first), and returns
    /// what changed. Records, verdicts and strikes stay, as in any reload;
    /// a probe the last reload removed comes back without the records it
    /// had. Logged at `warn` like a reload.
    ///
    /// # Errors
    /// [`ReloadError::NothingToRollBack`] before any reload changed the
    /// config.
    pub fn rollback(&self) -> Result<ConfigDiff, ReloadError> {
        self.shared.core().rollback()
    }

    /// The config [`rollback`](Self::rollback) would go back to, if any.
    pub fn previous_config(&self) -> Option<Config> {
        self.shared.core().previous_config()
    }

    /// What a reload to `config` would change, checked as a reload checks
    /// it, without applying it.
    ///
    /// # Errors
    /// The config's first invalid field, as a reload would refuse it.
    pub fn diff(&self, config: &Config) -> Result<ConfigDiff, ConfigError> {
        self.shared.core().diff(config)
    }

    /// The settings in force now, as given (see [`Config::effective`] for
    /// every default written out, [`Config::redacted`] to print them).
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

/// A ban's note as kept: control characters as spaces, trimmed, cut to
/// [`GuardHandle::MAX_NOTE_BYTES`] on a character boundary; `None` if
/// nothing is left.
fn clean_note(note: &str) -> Option<String> {
    let mut out = String::with_capacity(note.len().min(GuardHandle::MAX_NOTE_BYTES));
    for c in note
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
    {
        if out.len() + c.len_utf8() > GuardHandle::MAX_NOTE_BYTES {
            break;
        }
        out.push(c);
    }
    let out = out.trim_end();
    (!out.is_empty()).then(|| out.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_one_bounded_line() {
        assert_eq!(clean_note(""), None);
        assert_eq!(clean_note(" \n\t "), None);
        assert_eq!(
            clean_note("scraper\nFAKE LOG LINE").as_deref(),
            Some("scraper FAKE LOG LINE")
        );
        let long = "é".repeat(GuardHandle::MAX_NOTE_BYTES);
        let kept = clean_note(&long).unwrap();
        assert!(kept.len() <= GuardHandle::MAX_NOTE_BYTES);
        assert_eq!(kept.len(), GuardHandle::MAX_NOTE_BYTES);
        assert!(kept.chars().all(|c| c == 'é'));
    }
}
