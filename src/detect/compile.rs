//! A config compiled against the running policy: probe slots kept by name
//! for the detector's life (the live state of a slot is the detector's:
//! `live.rs`), and what a reload may not change.

use std::sync::Arc;

use super::policy::Policy;
use crate::clock::Span;
use crate::config::{Config, ConfigError};

/// What reloads keep between them.
#[derive(Default)]
pub(super) struct Reloads {
    /// Probe names by slot, for the life of the detector: a slot freed by
    /// a reload is reused only once every other slot has been used.
    pub(super) slots: Slots,
    /// The config the last reload that changed anything replaced.
    pub(super) previous: Option<Arc<Config>>,
}

#[derive(Default, Clone)]
pub(super) struct Slots {
    pub(super) names: Vec<Option<Arc<str>>>,
    /// Freed slots, oldest first.
    pub(super) freed: std::collections::VecDeque<u8>,
}

impl Slots {
    /// The slot of probe `name`: the one it had before (taken back out of
    /// `freed`), else a fresh one while any is left, else the slot freed
    /// longest ago that neither this config (`taken`) nor the running policy
    /// (`in_use`: its requests may be in flight) uses. `None`: no slot left.
    pub(super) fn slot_for(&mut self, name: &str, taken: &[u8], in_use: &[u8]) -> Option<u8> {
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

/// Compiles `config`, giving each probe its slot by name (`old`, the
/// running policy, holds slots whose requests may be in flight).
pub(super) fn compile(
    slots: &mut Slots,
    config: Config,
    random_session_key: (u64, u64),
    old: Option<&Policy>,
) -> Result<Policy, ConfigError> {
    let mut taken = Vec::with_capacity(config.probes.len());
    let in_use: Vec<u8> = old.map_or_else(Vec::new, |o| o.probes.iter().map(|p| p.slot).collect());
    let slot_of = |name: &str, i: usize| {
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
        Ok(slot)
    };
    Policy::compile(config, random_session_key, slot_of)
}

/// Refuses a change of what is fixed when the detector is made: the
/// bounds on records and verdicts, and the cluster.
pub(super) fn fixed_settings(old: &Config, new: &Config) -> Result<(), ConfigError> {
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
pub(super) fn strike_memory(c: &Config) -> Span {
    Span::from_secs(c.blocks.max_secs).saturating_mul(2)
}

/// Logs the compiled probes: how many (info), and each pattern (debug).
pub(super) fn announce_probes(policy: &Policy) {
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
}
