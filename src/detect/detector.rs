//! [`Detector`]: the sans-IO detection core. It knows nothing of tower,
//! hyper or bodies: adapters give it plain facts and the time, and it
//! answers. It holds the compiled [`Policy`] (swapped whole by a reload)
//! apart from the live state (records, verdicts, service-wide views), which
//! a reload keeps.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::{ArcSwap, Guard};

use super::change::{ChangeKind, VerdictChange, VerdictListener};
use super::policy::Policy;
use super::probes::ProbeLive;
use crate::actor::{AccountId, ActorKey};
use crate::clock::secs_to_nanos;
use crate::config::{Config, ConfigDiff, ConfigError, ReloadError};
use crate::probe::TargetInfo;
use crate::state::record::Evidence;
use crate::state::remote::Remote;
use crate::state::store::{Store, StoreKey};
use crate::state::verdict::Table;

/// The detection core. Cheap to share (`Arc`); every method takes `&self`
/// and the time, in nanoseconds of the adapter's clock.
///
/// A request crosses it in two calls (see [`request`](super::Head) for an
/// adapter written out): [`before`](Self::before) reads the request head
/// and says pass, refuse or track; [`after`](Self::after) takes a tracked
/// request's answer. A probe whose target is in the body takes one more,
/// [`body`](Self::body), with the body's first bytes. The tower
/// [`Guard`](crate::Guard) and `enumguard replay` are adapters of a few
/// dozen lines each.
pub struct Detector {
    policy: ArcSwap<Policy>,
    /// Bumped by every reload, after the swap.
    generation: AtomicU64,
    pub(crate) store: Store,
    pub(crate) verdicts: Table,
    /// Secret key of the distinct-target sketch: fixed for the detector's
    /// life (records depend on it).
    target_key: (u64, u64),
    /// The session key used when the config sets none.
    random_session_key: (u64, u64),
    pub(crate) warned_missing_peer: AtomicBool,
    /// Probe names by slot, and the config to roll back to; locked for the
    /// whole of a reload, so reloads take turns.
    reloads: Mutex<Reloads>,
    /// Told of every verdict change made here (set once).
    listener: OnceLock<Box<dyn VerdictListener>>,
    /// What other replicas saw of each (actor, probe).
    pub(crate) remote: Remote,
    /// Told of every (actor, probe slot) record a request updated (set
    /// once, by the cluster sync).
    touched: OnceLock<Box<Touched>>,
    /// Numbers the targets requests hide (see [`Detector::opaque_target`]).
    opaque: AtomicU64,
}

/// What is told of the records one request updated (up to its four
/// actors) on a probe slot.
pub(crate) type Touched = dyn Fn(&[Option<ActorKey>; 4], u8) + Send + Sync;

/// What reloads keep between them.
#[derive(Default)]
struct Reloads {
    /// Probe names by slot, for the life of the detector: a slot freed by
    /// a reload is reused only once every other slot has been used.
    slots: Slots,
    /// The config the last reload that changed anything replaced.
    previous: Option<Arc<Config>>,
}

#[derive(Default, Clone)]
struct Slots {
    names: Vec<Option<Arc<str>>>,
    /// Freed slots, oldest first.
    freed: std::collections::VecDeque<u8>,
}

impl Slots {
    /// The slot of probe `name`: the one it had before (taken back out of
    /// `freed`), else a fresh one while any is left, else the slot freed
    /// longest ago that neither this config (`taken`) nor the running policy
    /// (`in_use`: its requests may be in flight) uses. `None`: no slot left.
    fn slot_for(&mut self, name: &str, taken: &[u8], in_use: &[u8]) -> Option<u8> {
        if let Some(i) = self.names.iter().position(|n| n.as_deref() == Some(name)) {
            let slot = i as u8;
            self.freed.retain(|s| *s != slot);
            return Some(slot);
        }
        let slot = if self.names.len() < crate::config::MAX_PROBES {
            self.names.push(None);
            (self.names.len() - 1) as u8
        } else {
            let pos = self
                .freed
                .iter()
                .position(|s| !taken.contains(s) && !in_use.contains(s))?;
            self.freed.remove(pos)?
        };
        self.names[usize::from(slot)] = Some(Arc::from(name));
        Some(slot)
    }
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("policy", &*self.policy.load())
            .field("tracked", &self.store.len())
            .field("verdicts", &self.verdicts.len())
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// A detector for `config`.
    ///
    /// # Errors
    /// The config's first invalid field.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        // Replicas merge each other's distinct-target sketches: they must
        // set the same bits for the same target, so the sketch key derives
        // from the secret they share.
        let shared = config.cluster.as_ref().and(config.session_key.as_deref());
        let target_key = match shared.and_then(crate::config::parse_key) {
            Some(secret) => {
                let h = crate::actor::hash128(secret, b"enumguard sketch key");
                ((h >> 64) as u64, h as u64)
            }
            None => random_key(),
        };
        Self::with_keys(config, target_key, random_key())
    }

    /// A detector whose secret keys (of the distinct-target sketch, and of
    /// sessions when the config sets no `session_key`) derive from `seed`:
    /// the same input gives the same decisions, run after run. For replays
    /// and tests; a service uses [`new`](Self::new), whose random keys an
    /// attacker cannot know (knowing the sketch key, one could pick targets
    /// that count as one).
    ///
    /// # Errors
    /// The config's first invalid field.
    pub fn with_seed(config: Config, seed: u64) -> Result<Self, ConfigError> {
        let key = |n: u64| {
            let h = crate::actor::hash128((seed, n), b"enumguard seed");
            ((h >> 64) as u64, h as u64)
        };
        Self::with_keys(config, key(1), key(2))
    }

    fn with_keys(
        config: Config,
        target_key: (u64, u64),
        random_session_key: (u64, u64),
    ) -> Result<Self, ConfigError> {
        let mut slots = Slots::default();
        let policy = compile(&mut slots, config, random_session_key, None)?;
        let c = &policy.config;
        let store = Store::new(c.limits.max_actors, strike_memory(c));
        for p in &policy.probes {
            store.set_keep_score(p.slot, p.thresholds.throttle_at);
        }
        let verdicts = Table::new(c.limits.max_verdicts);
        let c_max_actors = c.limits.max_actors;
        announce_probes(&policy);
        Ok(Self {
            policy: ArcSwap::from_pointee(policy),
            generation: AtomicU64::new(0),
            store,
            verdicts,
            target_key,
            random_session_key,
            warned_missing_peer: AtomicBool::new(false),
            reloads: Mutex::new(Reloads {
                slots,
                previous: None,
            }),
            listener: OnceLock::new(),
            remote: Remote::new(c_max_actors),
            touched: OnceLock::new(),
            opaque: AtomicU64::new(0),
        })
    }

    /// The current policy. Hold it for one request (it is a cheap, lock-free
    /// snapshot), not across awaits.
    #[inline]
    pub fn policy(&self) -> Guard<Arc<Policy>> {
        self.policy.load()
    }

    /// The current policy with its generation, for an adapter that keeps
    /// its own copy (one per service clone, say) and checks
    /// [`generation`](Self::generation) per request: a read of a line that
    /// only a reload writes.
    pub fn snapshot(&self) -> (u64, Arc<Policy>) {
        let generation = self.generation();
        (generation, self.policy.load_full())
    }

    /// Bumped by every reload, once the new policy is in place.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Replaces the policy with `config`, compiled, and returns what
    /// changed. New thresholds apply from the next request on; records,
    /// verdicts and strikes stay, and so do the service-wide views of the
    /// probes that keep their name. A probe the new config no longer has
    /// loses its records (a probe's records are keyed by its name's slot):
    /// a reload may remove probes; for a config that comes from outside the
    /// code, [`reload_keeping_probes`](Self::reload_keeping_probes) refuses
    /// that. An invalid config is refused and the old policy keeps running.
    ///
    /// The reload is atomic (reloads take turns; requests see the old
    /// policy or the new one, never a mix), logged at `warn` on target
    /// `enumguard` with the [`ConfigDiff`] (at `info` when it changes
    /// nothing, and then the running policy is left as it is), and the
    /// config it replaced is kept for [`rollback`](Self::rollback).
    ///
    /// `limits` (the bounds on records and verdicts) are fixed when the
    /// detector is made; a reload that changes them is refused. A changed
    /// `session_key` keys sessions anew from the next request on. A
    /// [`Ticket`](super::Ticket) decided before a reload is answered by the
    /// new policy (a probe it removed learns nothing). Each probe name takes one of 255 slots
    /// for the detector's life; a reload that would need more is refused.
    ///
    /// # Errors
    /// The new config's first invalid field.
    pub fn reload(&self, config: Config) -> Result<ConfigDiff, ConfigError> {
        let mut state = self.reloads.lock().unwrap_or_else(|e| e.into_inner());
        self.apply_config(&mut state, config, true, "reloaded")
            .map_err(|e| match e {
                ReloadError::Invalid(e) => e,
                // Removal is allowed, and this is no rollback.
                other => ConfigError::invalid("probes", "", other.to_string()),
            })
    }

    /// [`reload`](Self::reload), refused if the new config lacks a probe
    /// the running one has: a config that forgot its `[[probes]]` (or a
    /// probe renamed by a typo) would otherwise stop watching those
    /// endpoints. The check and the swap happen under one lock, so no other
    /// reload comes in between.
    ///
    /// # Errors
    /// [`ReloadError::RemovesProbes`] with the probes it would remove and
    /// everything it would change; [`ReloadError::Invalid`] for an invalid
    /// config.
    pub fn reload_keeping_probes(&self, config: Config) -> Result<ConfigDiff, ReloadError> {
        let mut state = self.reloads.lock().unwrap_or_else(|e| e.into_inner());
        self.apply_config(&mut state, config, false, "reloaded")
    }

    /// Goes back to the config the last reload (or rollback) that changed
    /// anything replaced, as a reload that may remove probes (those the
    /// last reload added); returns what changed. Records, verdicts and
    /// strikes stay, as in any reload (a probe the last reload removed
    /// comes back without the records it had). A second rollback undoes
    /// the first.
    ///
    /// # Errors
    /// [`ReloadError::NothingToRollBack`] before any reload changed the
    /// config.
    pub fn rollback(&self) -> Result<ConfigDiff, ReloadError> {
        let mut state = self.reloads.lock().unwrap_or_else(|e| e.into_inner());
        let Some(previous) = state.previous.clone() else {
            return Err(ReloadError::NothingToRollBack);
        };
        self.apply_config(&mut state, Config::clone(&previous), true, "rolled back")
    }

    /// The config [`rollback`](Self::rollback) would go back to, if any.
    pub fn previous_config(&self) -> Option<Config> {
        let state = self.reloads.lock().unwrap_or_else(|e| e.into_inner());
        state.previous.as_deref().cloned()
    }

    /// What a [`reload`](Self::reload) to `config` would change, with the
    /// same checks, without applying it (a dry run).
    ///
    /// # Errors
    /// The config's first invalid field, as the reload would refuse it.
    pub fn diff(&self, config: &Config) -> Result<ConfigDiff, ConfigError> {
        let state = self.reloads.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.policy.load_full();
        fixed_settings(&old.config, config)?;
        // Compiled on a copy of the slots: the checks of a reload, no
        // effect.
        let mut slots = state.slots.clone();
        compile(
            &mut slots,
            config.clone(),
            self.random_session_key,
            Some(&old),
        )?;
        Ok(ConfigDiff::between(&old.config, config))
    }

    /// The steps of a reload, under the reload lock (`state`).
    fn apply_config(
        &self,
        state: &mut Reloads,
        config: Config,
        allow_removal: bool,
        what: &'static str,
    ) -> Result<ConfigDiff, ReloadError> {
        let old = self.policy.load_full();
        fixed_settings(&old.config, &config)?;
        config.validate()?;
        let diff = ConfigDiff::between(&old.config, &config);
        if !allow_removal && diff.removed_probes().next().is_some() {
            return Err(ReloadError::RemovesProbes {
                removed: diff.removed_probes().map(str::to_owned).collect(),
                diff,
            });
        }
        if diff.is_empty() {
            tracing::info!(target: "enumguard", "enumguard config {what}: no change");
            return Ok(diff);
        }
        let mut new = compile(
            &mut state.slots,
            config,
            self.random_session_key,
            Some(&old),
        )?;
        let removed: Vec<(u8, Arc<str>)> = old
            .probes
            .iter()
            .filter(|p| new.by_slot(p.slot).is_none_or(|q| q.name != p.name))
            .map(|p| (p.slot, p.name.clone()))
            .collect();
        // While both policies may be read, eviction keeps what either would.
        for p in &new.probes {
            let before = old
                .by_slot(p.slot)
                .map_or(1.0, |o| o.thresholds.throttle_at);
            self.store
                .set_keep_score(p.slot, p.thresholds.throttle_at.min(before));
        }
        self.store
            .set_strike_memory(strike_memory(&new.config).max(strike_memory(&old.config)));
        announce_probes(&new);
        let memory = strike_memory(&new.config);
        let keep: Vec<(u8, f64)> = new
            .probes
            .iter()
            .map(|p| (p.slot, p.thresholds.throttle_at))
            .collect();
        new.generation = self.generation() + 1;
        self.policy.store(Arc::new(new));
        self.generation.fetch_add(1, Ordering::AcqRel);
        state.previous = Some(Arc::new(old.config.clone()));
        for (slot, score) in keep {
            self.store.set_keep_score(slot, score);
        }
        self.store.set_strike_memory(memory);
        for (slot, probe) in removed {
            // Its records, and the verdicts that could only ever apply to
            // its requests (address verdicts and throttles); a person's
            // block stays, wherever it was earned.
            let records = self.store.drop_probe(slot);
            self.remote.drop_probe(slot);
            let verdicts = self.verdicts.drop_probe(slot);
            state.slots.freed.push_back(slot);
            tracing::info!(target: "enumguard", probe = %probe, slot, records, verdicts, "probe removed by reload: its records are dropped");
        }
        tracing::warn!(
            target: "enumguard",
            changes = diff.len(),
            diff = %diff,
            "enumguard config {what}"
        );
        Ok(diff)
    }

    /// A probe request's target, reduced to what the signals keep: a keyed
    /// hash (the key is this detector's secret), its number, and whether it
    /// is the caller's own account id (for probes with `self_target`).
    #[inline]
    pub(crate) fn target_of(
        &self,
        probe: &super::probes::Probe,
        bytes: &[u8],
        account: Option<&AccountId>,
    ) -> TargetInfo {
        TargetInfo::new(bytes, account, probe.self_target, self.target_key)
            .owned_objects(probe.watch_foreign)
    }

    /// The target of a probe request that hides it (the head lacks it, the
    /// body is empty or padded past the probe's limit): a new target every
    /// time, unknown to be anyone's, so that leaving the target out never
    /// hides a request from the count.
    pub(crate) fn opaque_target(&self, probe: &super::probes::Probe) -> TargetInfo {
        let n = self.opaque.fetch_add(1, Ordering::Relaxed);
        let mut bytes = [0u8; 9];
        // A leading 0xff: no UTF-8 text, so no target a request names.
        bytes[0] = 0xff;
        bytes[1..].copy_from_slice(&n.to_le_bytes());
        TargetInfo::new(&bytes, None, false, self.target_key).owned_objects(probe.watch_foreign)
    }

    /// Nothing held can refuse a request that matches no probe (no list,
    /// no live ban nor personal block): such a request needs no
    /// identification. `now` is read only if a verdict might.
    #[inline]
    pub fn quiet(&self, policy: &Policy, now: impl FnOnce() -> u64) -> bool {
        policy.no_lists && self.verdicts.no_wide(now)
    }

    /// Whether any verdict is held at all (one atomic read).
    #[inline]
    pub(crate) fn has_verdicts(&self) -> bool {
        !self.verdicts.is_empty()
    }

    /// (actor, probe) records tracked now.
    pub fn tracked(&self) -> usize {
        self.store.len()
    }

    /// The bound on tracked records.
    pub fn capacity(&self) -> usize {
        self.store.capacity()
    }

    /// The verdict held for an actor key now.
    pub fn verdict_of(&self, key: &ActorKey, now: u64) -> crate::state::Verdict {
        self.verdicts.verdict(key, now)
    }

    /// Sets the listener told of every verdict change made here (once;
    /// `false` if one was set already).
    pub fn set_listener(&self, listener: impl VerdictListener) -> bool {
        self.listener.set(Box::new(listener)).is_ok()
    }

    /// Tells the listener, if any.
    pub(crate) fn changed(&self, change: impl FnOnce() -> VerdictChange) {
        if let Some(l) = self.listener.get() {
            l.changed(&change());
        }
    }

    /// Applies a verdict change another replica made (the listener is not
    /// told: it is not this detector's). A block raises the actor's strikes
    /// on its probe to the change's, so that a later block here escalates
    /// from there.
    pub fn apply(&self, change: &VerdictChange, now: u64) {
        let policy = self.policy();
        let slot = change
            .probe
            .as_deref()
            .and_then(|name| policy.probes.iter().find(|p| &*p.name == name))
            .map(|p| p.slot);
        let until = now.saturating_add(change.remaining.max(1));
        match change.kind {
            ChangeKind::Block => {
                if let Some(slot) = slot {
                    let strikes = change.strikes.min(u32::from(u8::MAX)) as u8;
                    self.store
                        .update((change.actor, slot), now, policy.half_life, |r| {
                            r.strikes = r.strikes.max(strikes);
                        });
                }
                self.verdicts.block(
                    change.actor,
                    until,
                    change.reason,
                    change.strikes,
                    slot,
                    now,
                );
            }
            ChangeKind::Throttle => {
                self.verdicts
                    .throttle(change.actor, until, change.reason, slot, now, policy.quota);
            }
            ChangeKind::Allow => {
                self.verdicts.remove(&change.actor);
                self.forget(change.actor);
            }
        }
    }

    /// Every verdict live at `now`, as changes (for a replica that starts,
    /// or one that reconnects).
    pub fn live_verdicts(&self, now: u64) -> Vec<VerdictChange> {
        let policy = self.policy();
        self.verdicts
            .live(now)
            .into_iter()
            .map(|(actor, e)| VerdictChange {
                actor,
                kind: if e.is_throttle() {
                    ChangeKind::Throttle
                } else {
                    ChangeKind::Block
                },
                reason: e.reason,
                strikes: e.strikes,
                remaining: e.until - now,
                probe: e
                    .probe
                    .and_then(|s| policy.by_slot(s))
                    .map(|p| p.name.clone()),
            })
            .collect()
    }

    #[cfg(feature = "redis")]
    /// Sets what is told of every record a request updated (once).
    pub(crate) fn set_touched(
        &self,
        f: impl Fn(&[Option<ActorKey>; 4], u8) + Send + Sync + 'static,
    ) -> bool {
        self.touched.set(Box::new(f)).is_ok()
    }

    /// Who wants to hear of updated records, if anyone.
    #[inline]
    pub(crate) fn touched(&self) -> Option<&Touched> {
        self.touched.get().map(|f| &**f)
    }

    /// Whether other replicas sent any evidence (one atomic read).
    #[inline]
    pub(crate) fn sharing(&self) -> bool {
        !self.remote.is_empty()
    }

    /// What other replicas saw of `key` on probe slot `slot`, merged.
    #[inline]
    pub(crate) fn remote_of(&self, key: ActorKey, slot: u8, now: u64) -> Option<Evidence> {
        self.remote.get(StoreKey::new(key, slot), now)
    }

    #[cfg(feature = "redis")]
    /// What this replica saw of `key` on probe slot `slot` in its window, to
    /// send to the others, with the probe's name and window.
    pub(crate) fn evidence_of(
        &self,
        key: ActorKey,
        slot: u8,
        now: u64,
    ) -> Option<(Evidence, Arc<str>, u64)> {
        let policy = self.policy();
        let probe = policy.by_slot(slot)?;
        let ev = self
            .store
            .read(&(key, slot), |r| r.evidence(now, probe.window))?;
        Some((ev, probe.name.clone(), probe.window))
    }

    #[cfg(feature = "redis")]
    /// Keeps what `replica` saw of `key` on the probe named `probe`: counted
    /// with this replica's own evidence until `now + valid`.
    pub(crate) fn merge_evidence(
        &self,
        key: ActorKey,
        probe: &str,
        replica: u64,
        ev: Evidence,
        valid: u64,
        now: u64,
    ) {
        let policy = self.policy();
        let Some(p) = policy.probes.iter().find(|p| &*p.name == probe) else {
            return;
        };
        self.remote.put(
            StoreKey::new(key, p.slot),
            replica,
            ev,
            now.saturating_add(valid.min(p.window)),
            now,
        );
    }

    pub(crate) fn warn_missing_peer_once(&self) -> bool {
        !self.warned_missing_peer.swap(true, Ordering::Relaxed)
    }
}

/// Compiles `config`, giving each probe its slot by name and, where an
/// older policy had a probe of that name, its live state (a fresh view if
/// the view's settings changed, seeded with what the old one learned).
fn compile(
    slots: &mut Slots,
    config: Config,
    random_session_key: (u64, u64),
    old: Option<&Policy>,
) -> Result<Policy, ConfigError> {
    let mut taken = Vec::with_capacity(config.probes.len());
    let in_use: Vec<u8> = old.map_or_else(Vec::new, |o| o.probes.iter().map(|p| p.slot).collect());
    let mut slot_of = |name: &str, c: &Config, i: usize| {
        let slot = slots.slot_for(name, &taken, &in_use).ok_or_else(|| {
            ConfigError::invalid(
                format!("probes[{i}].name"),
                name,
                format!(
                    "no probe slot left: this guard has had {} different probe names; build a new guard",
                    crate::config::MAX_PROBES
                ),
            )
        })?;
        taken.push(slot);
        let live = old.and_then(|o| {
            let p = o.probes.iter().find(|p| &*p.name == name)?;
            let t = c.probes[i].effective_thresholds(i).ok()?;
            let watch = t.foreign_block > 0;
            if o.config.service_view == c.service_view && p.watch_foreign == watch {
                return Some(p.live.clone());
            }
            // New view settings: a new view, seeded with what the old one
            // learned, and what the application showed of the probe.
            let (miss, foreign) = p.live.view.baselines();
            let live = ProbeLive::new(super::view::View::new(
                &c.service_view,
                watch,
                miss,
                foreign,
            ));
            for (to, from) in [
                (&live.owner_reported, &p.live.owner_reported),
                (&live.matched, &p.live.matched),
            ] {
                to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            Some(Arc::new(live))
        });
        Ok((slot, live))
    };
    Policy::compile(config, random_session_key, &mut slot_of)
}

/// Refuses a change of what is fixed when the detector is made: the
/// bounds on records and verdicts, and the cluster.
fn fixed_settings(old: &Config, new: &Config) -> Result<(), ConfigError> {
    if new.limits != old.limits {
        return Err(ConfigError::invalid(
            "limits",
            format!(
                "max_actors = {}, max_verdicts = {}",
                new.limits.max_actors, new.limits.max_verdicts
            ),
            "the bounds on records and verdicts are set when the guard is built; build a new guard to change them",
        ));
    }
    if new.cluster != old.cluster {
        return Err(ConfigError::invalid(
            "cluster",
            "",
            "the cluster settings are set when the guard is built; build a new guard to change them",
        ));
    }
    Ok(())
}

/// How long a strike keeps a record from eviction after its last activity:
/// twice the longest block.
fn strike_memory(c: &Config) -> u64 {
    secs_to_nanos(c.blocks.max_secs).saturating_mul(2)
}

/// Logs the compiled probes: how many (info), and each pattern (debug).
fn announce_probes(policy: &Policy) {
    tracing::info!(target: "enumguard", probes = policy.probes.len(), mode = ?policy.mode, "enumguard policy compiled");
    for p in &policy.probes {
        tracing::debug!(
            target: "enumguard",
            probe = %p.name,
            path = %p.pattern(),
            target = ?p.source,
            "enumguard probe"
        );
    }
}

/// A random key per process, from the standard library's randomly seeded
/// hasher (no extra dependency).
pub(crate) fn random_key() -> (u64, u64) {
    use std::hash::{BuildHasher, Hasher};
    let s = std::collections::hash_map::RandomState::new();
    let mut a = s.build_hasher();
    a.write_u64(0x5e55_1011);
    let mut b = s.build_hasher();
    b.write_u64(0x6b65_7973);
    (a.finish(), b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name keeps its slot, taken back out of the freed ones; once every
    /// slot has been used, a new name gets the slot freed longest ago that
    /// nothing uses, and none while every freed slot is in use.
    #[test]
    fn slots_are_kept_by_name_and_never_shared() {
        let mut s = Slots::default();
        let max = crate::config::MAX_PROBES;
        for i in 0..max {
            assert_eq!(s.slot_for(&format!("p{i}"), &[], &[]), Some(i as u8));
        }
        // All used: a new name needs a freed slot.
        assert_eq!(s.slot_for("new", &[], &[]), None);
        s.freed.extend([3u8, 7]);
        // p3 comes back: its own slot, no longer free.
        assert_eq!(s.slot_for("p3", &[], &[]), Some(3));
        assert_eq!(s.freed, [7]);
        // Slot 7 is still in use by the running policy: not given out.
        assert_eq!(s.slot_for("new", &[], &[7]), None);
        assert_eq!(s.slot_for("new", &[], &[]), Some(7));
        assert!(s.freed.is_empty());
        // "p7" lost its slot to "new": it would need another one.
        assert_eq!(s.slot_for("p7", &[7], &[]), None);
    }

    #[test]
    fn a_reload_that_needs_more_slots_than_are_left_is_refused() {
        let probe = |name: String| {
            crate::ProbeConfig::objects(name, "GET", "/a/{id}", crate::TargetConfig::path("id"))
        };
        let config = |prefix: &str, n: usize| Config {
            probes: (0..n).map(|i| probe(format!("{prefix}{i}"))).collect(),
            ..Config::default()
        };
        let d = Detector::new(config("a", 128)).unwrap();
        let e = d.reload(config("b", 128)).unwrap_err();
        assert!(e.to_string().contains("no probe slot left"), "{e}");
        assert_eq!(d.policy().probes.len(), 128);
        assert!(d.policy().probe_names().all(|n| n.starts_with('a')));
        // Fewer new names fit.
        d.reload(config("b", 127)).unwrap();
    }
}
