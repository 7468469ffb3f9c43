//! Reloads: a new config compiled against the running one, checked, applied
//! atomically with its diff logged, and the previous config kept to roll
//! back to.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Detector;
use super::compile::{Reloads, announce_probes, compile, fixed_settings, strike_memory};
use crate::config::{Config, ConfigDiff, ConfigError, ReloadError};

impl Detector {
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
        // Compiled on a copy of the slots, kept only if the reload goes on.
        let mut slots = state.slots.clone();
        let mut new = compile(&mut slots, config, self.random_session_key, Some(&old))?;
        let diff = ConfigDiff::between(&old.config, &new.config);
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
        state.slots = slots;
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
        self.live.adopt(Some(&old), &new);
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
