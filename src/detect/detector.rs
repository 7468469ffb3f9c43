//! [`Detector`]: the sans-IO detection core. It knows nothing of tower,
//! hyper or bodies: adapters give it plain facts and the time, and it
//! answers. It holds the compiled [`Policy`] (swapped whole by a reload)
//! apart from the live state (records, verdicts, service-wide views), which
//! a reload keeps.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::{ArcSwap, Guard};

use super::change::{ChangeKind, VerdictChange, VerdictListener};
use super::compile::{Reloads, Slots, announce_probes, compile, strike_memory};
use super::live::Live;
use super::policy::{Policy, random_key};
use crate::actor::{AccountId, ActorKey};
use crate::clock::{Nanos, Span};
use crate::config::{Config, ConfigError};
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
    pub(super) policy: ArcSwap<Policy>,
    /// Bumped by every reload, after the swap.
    pub(super) generation: AtomicU64,
    pub(crate) store: Store,
    pub(crate) verdicts: Table,
    /// The live state of each probe slot (views, novelty, what the
    /// application showed of the probe), apart from the policy.
    pub(crate) live: Live,
    /// Secret key of the distinct-target sketch: fixed for the detector's
    /// life (records depend on it).
    target_key: (u64, u64),
    /// The session key used when the config sets none.
    pub(super) random_session_key: (u64, u64),
    pub(crate) warned_missing_peer: AtomicBool,
    /// Probe names by slot, and the config to roll back to; locked for the
    /// whole of a reload, so reloads take turns.
    pub(super) reloads: Mutex<Reloads>,
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
        let live = Live::new();
        live.adopt(None, &policy);
        announce_probes(&policy);
        Ok(Self {
            policy: ArcSwap::from_pointee(policy),
            generation: AtomicU64::new(0),
            store,
            verdicts,
            live,
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
        policy.no_lists && self.verdicts.no_wide(|| Nanos::new(now()))
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
        self.verdicts.verdict(key, Nanos::new(now))
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
        let now = Nanos::new(now);
        let policy = self.policy();
        let slot = change
            .probe
            .as_deref()
            .and_then(|name| policy.probes.iter().find(|p| &*p.name == name))
            .map(|p| p.slot);
        let until = now.saturating_add(Span::new(change.remaining.max(1)));
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
        let now = Nanos::new(now);
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
                remaining: (e.until - now).get(),
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
    pub(crate) fn remote_of(&self, key: ActorKey, slot: u8, now: Nanos) -> Option<Evidence> {
        self.remote.get(StoreKey::new(key, slot), now)
    }

    #[cfg(feature = "redis")]
    /// What this replica saw of `key` on probe slot `slot` in its window, to
    /// send to the others, with the probe's name and window.
    pub(crate) fn evidence_of(
        &self,
        key: ActorKey,
        slot: u8,
        now: Nanos,
    ) -> Option<(Evidence, Arc<str>, Span)> {
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
        valid: Span,
        now: Nanos,
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
