//! The handle's config calls: reload, rollback, the diff and the config in
//! force.

use crate::config::{Config, ConfigDiff, ConfigError, ReloadError};

use super::GuardHandle;

impl GuardHandle {
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
    ///
    /// See the example on [`reload`](Self::reload).
    pub fn rollback(&self) -> Result<ConfigDiff, ReloadError> {
        self.shared.core().rollback()
    }

    /// The config [`rollback`](Self::rollback) would go back to, if any.
    ///
    /// ```
    /// use enumguard::{GuardLayer, Mode};
    ///
    /// let handle = GuardLayer::builder().build().unwrap().handle();
    /// assert!(handle.previous_config().is_none());
    /// let mut observe = handle.config();
    /// observe.mode = Mode::Observe;
    /// handle.reload(observe).unwrap();
    /// assert_eq!(handle.previous_config().unwrap().mode, Mode::Enforce);
    /// ```
    pub fn previous_config(&self) -> Option<Config> {
        self.shared.core().previous_config()
    }

    /// What a reload to `config` would change, checked as a reload checks
    /// it, without applying it.
    ///
    /// # Errors
    /// The config's first invalid field, as a reload would refuse it.
    ///
    /// ```
    /// use enumguard::{GuardLayer, ProbeConfig, TargetConfig};
    ///
    /// let handle = GuardLayer::builder().build().unwrap().handle();
    /// let mut next = handle.config();
    /// let book = ProbeConfig::objects("book", "GET", "/books/{id}", TargetConfig::path("id"));
    /// next.probes.push(book);
    /// let diff = handle.diff(&next).unwrap();
    /// assert_eq!(diff.added_probes().collect::<Vec<_>>(), ["book"]);
    /// assert!(handle.config().probes.is_empty(), "nothing applied");
    /// // What only a new guard can change is refused, as by a reload.
    /// next.limits.max_actors = 50_000;
    /// assert!(handle.diff(&next).is_err());
    /// ```
    pub fn diff(&self, config: &Config) -> Result<ConfigDiff, ConfigError> {
        self.shared.core().diff(config)
    }

    /// The settings in force now, as given (see [`Config::effective`] for
    /// every default written out, [`Config::redacted`] to print them).
    ///
    /// What the builder set is part of it, so one setting changes thus:
    ///
    /// ```
    /// use enumguard::{GuardLayer, Mode, ProbeConfig, TargetConfig};
    ///
    /// let book = ProbeConfig::objects("book", "GET", "/books/{id}", TargetConfig::path("id"));
    /// let handle = GuardLayer::builder().probe(book).build().unwrap().handle();
    /// let mut config = handle.config();
    /// config.mode = Mode::Observe;
    /// handle.reload(config).unwrap();
    /// assert_eq!(handle.config().mode, Mode::Observe);
    /// assert_eq!(handle.config().probes[0].name, "book", "the probe stays");
    /// ```
    pub fn config(&self) -> Config {
        self.shared.core().policy().config().clone()
    }
}
