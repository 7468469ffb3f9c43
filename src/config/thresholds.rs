//! The thresholds that turn a probe's signals into suspicion, their
//! defaults per probe style, and their checks.

use serde::{Deserialize, Serialize};

use super::checks::duration;
use super::{ConfigError, ProbeStyle};

/// Per actor kind multipliers of a probe's thresholds: a shared address
/// (NAT, office) is many people, so it gets more room than one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct KindFactors {
    /// Defaults to 2.
    pub ip: f64,
    /// Defaults to 4.
    pub subnet: f64,
    /// Defaults to 1.
    pub session: f64,
    /// Defaults to 1.
    pub account: f64,
}

impl Default for KindFactors {
    fn default() -> Self {
        Self {
            ip: 2.0,
            subnet: 4.0,
            session: 1.0,
            account: 1.0,
        }
    }
}

/// The thresholds that turn a probe's signals into suspicion. A signal at
/// its threshold is a suspicion of 1.0, which is a block; `throttle_at` is
/// the suspicion at which an actor is throttled. Thresholds are counts per
/// window for one account or session; an `ip` or `subnet` gets
/// `kind_factors` times more. A threshold of 0 turns its signal off.
///
/// In TOML, a probe's `[probes.thresholds]` table overrides single fields of
/// its style's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Thresholds {
    /// The sliding window, in seconds.
    pub window_secs: u64,
    /// Half-life of the long view, in seconds: distinct targets also add to
    /// sums that halve this often, so a scraper slower than the window adds
    /// up too.
    pub long_half_life_secs: u64,
    /// Distinct foreign targets (not the actor's own) that block.
    pub foreign_block: u32,
    /// Distinct targets that were misses (404, "no such account") that block,
    /// when at least `miss_ratio` of the distinct targets were misses.
    pub miss_block: u32,
    /// See `miss_block`.
    pub miss_ratio: f64,
    /// Misses count only when they are also at least this share of the
    /// distinct targets *plus the repeated hits* (the same target found
    /// again): a person who keeps looking up the same few contacts and
    /// mistypes now and then is ordinary use; a guesser never repeats a hit,
    /// and one that pads every guess with a lookup it already knows still
    /// misses on almost half of its answers.
    pub repeat_miss_ratio: f64,
    /// Distinct misses at `miss_cap` times `miss_block` block whatever the
    /// ratios (and throttle from `throttle_at` of that): the bound on an
    /// attacker that pads its guesses with many repeated known hits. 0
    /// turns it off.
    pub miss_cap: f64,
    /// Misses count toward `miss_ratio` only once the actor tried this many
    /// distinct targets, so that one early typo is not a 100% miss ratio.
    pub min_targets: u32,
    /// Distinct hits (targets found) that block, added to the misses: on
    /// an identities probe what an attacker wants is the hits, so
    /// `misses / miss_block + hits / hit_block` at 1 blocks, whatever the
    /// miss ratio (a validator of a leaked list, mostly registered, is
    /// stopped by its finds). Both count in full once misses are 22% of
    /// everything the actor was answered (repeats included), not at all at
    /// 12% or less (a business looking up its customers again and again, a
    /// NAT of people resetting their own passwords; between, in
    /// proportion); from 10 times `hit_block` (times the kind factor) finds
    /// count whatever the misses (300 for an account, by default). An
    /// address's hits are judged as one person's (no kind factor): the
    /// room an address gets is for its people's typos. 0 turns it off
    /// (and misses need `miss_ratio`, as on objects probes).
    pub hit_block: u32,
    /// Distinct targets answered 401/403 that block.
    pub denied_block: u32,
    /// Suspicion at which an actor is throttled (0..1).
    pub throttle_at: f64,
    /// Suspicion is multiplied by this while the actor walks numeric
    /// targets in order (`sequential_run` steps of +-1 in a row).
    pub sequential_factor: f64,
    /// See `sequential_factor`.
    pub sequential_run: u32,
    /// Suspicion is multiplied by this while the actor's requests come at a
    /// machine-regular cadence (at least 8 gaps whose mean deviation is
    /// under 10% of their mean).
    pub cadence_factor: f64,
    /// While the service-wide view is anomalous, thresholds of actors with
    /// no history are multiplied by this (instead of their kind factor).
    /// 1 turns the tightening off for this probe.
    pub anomaly_factor: f64,
    /// The miss ratio the service-wide view assumes for this probe until
    /// calm traffic has shown its own. Set it near the real rate for
    /// endpoints where misses are normal (a sign-up form: most addresses
    /// are new).
    pub baseline_miss_ratio: f64,
    /// The foreign-target ratio the view assumes until it has seen calm
    /// traffic.
    pub baseline_foreign_ratio: f64,
    /// Thresholds of an actor that was blocked before are multiplied by this
    /// once for each earlier block, at most five times (a thirty-second of
    /// the room, by default, from the fifth block on); from its third block
    /// on, an actor's misses count from the first (no `min_targets`).
    pub repeat_factor: f64,
    /// On a probe with own objects (`self_target`), the foreign-object
    /// threshold of a *stranger* (an actor with no history that has read
    /// none of its own objects) is multiplied by this while the
    /// service-wide view is anomalous, on top of `anomaly_factor`: what a
    /// scrape spread over many fresh accounts looks like. 1 turns it off.
    pub stranger_factor: f64,
    /// Multipliers per actor kind.
    pub kind_factors: KindFactors,
}

/// Declares [`ThresholdOverrides`] from the fields of [`Thresholds`] (each
/// named once here): the `[probes.thresholds]` table as written, each field
/// an `Option` merged over the style's defaults field by field.
macro_rules! overrides {
    ($($field:ident: $ty:ty,)*) => {
        /// A probe's `[probes.thresholds]` table as written: the fields it
        /// sets, each merged over its style's defaults.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub(crate) struct ThresholdOverrides {
            $(
                #[serde(skip_serializing_if = "Option::is_none")]
                $field: Option<$ty>,
            )*
            #[serde(skip_serializing_if = "Option::is_none")]
            kind_factors: Option<KindFactorOverrides>,
        }

        impl ThresholdOverrides {
            /// Sets every field that is set here.
            pub(crate) fn apply(&self, t: &mut Thresholds) {
                $(
                    if let Some(v) = self.$field {
                        t.$field = v;
                    }
                )*
                if let Some(k) = &self.kind_factors {
                    k.apply(&mut t.kind_factors);
                }
            }

            /// Every field of `t`: thresholds given in full.
            pub(crate) fn all(t: &Thresholds) -> Self {
                Self {
                    $($field: Some(t.$field),)*
                    kind_factors: Some(KindFactorOverrides {
                        ip: Some(t.kind_factors.ip),
                        subnet: Some(t.kind_factors.subnet),
                        session: Some(t.kind_factors.session),
                        account: Some(t.kind_factors.account),
                    }),
                }
            }
        }
    };
}

overrides! {
    window_secs: u64,
    long_half_life_secs: u64,
    foreign_block: u32,
    miss_block: u32,
    miss_ratio: f64,
    repeat_miss_ratio: f64,
    miss_cap: f64,
    min_targets: u32,
    hit_block: u32,
    denied_block: u32,
    throttle_at: f64,
    sequential_factor: f64,
    sequential_run: u32,
    cadence_factor: f64,
    anomaly_factor: f64,
    baseline_miss_ratio: f64,
    baseline_foreign_ratio: f64,
    repeat_factor: f64,
    stranger_factor: f64,
}

/// The `kind_factors` table of a probe's overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct KindFactorOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subnet: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<f64>,
}

impl KindFactorOverrides {
    fn apply(&self, k: &mut KindFactors) {
        for (to, from) in [
            (&mut k.ip, self.ip),
            (&mut k.subnet, self.subnet),
            (&mut k.session, self.session),
            (&mut k.account, self.account),
        ] {
            if let Some(v) = from {
                *to = v;
            }
        }
    }
}

impl Thresholds {
    /// Defaults for objects addressed by id (the address-book scrape).
    ///
    /// | field | value | why |
    /// |---|---|---|
    /// | `window_secs` | 3600 | a scrape shows within an hour |
    /// | `long_half_life_secs` | 21600 | slower than the window, it still adds up: one read per 10 minutes blocks within 3 hours |
    /// | `foreign_block` | 15 | an owner reads its own objects, which do not count; 15 foreign ones is no accident, and keeps a scrape under 20 records |
    /// | `miss_block` / `miss_ratio` | 20 / 0.5 | probing ids that do not exist; typos by an owner are few and mixed with hits |
    /// | `min_targets` | 4 | a first typo is not a 100% miss ratio |
    /// | `denied_block` | 10 | 403s on other people's ids are a hunt for a hole |
    /// | `throttle_at` | 0.6 | throttle from 9 foreign objects: slows a scrape while evidence builds |
    /// | `sequential_factor` / `sequential_run` | 1.5 / 4 | ids walked in order are a script: block at 10 |
    /// | `cadence_factor` | 1.25 | a machine-regular cadence is a script |
    /// | `anomaly_factor` | 0.2 | during a service-wide spike of foreign reads, a new account blocks at 3 |
    /// | `baseline_miss_ratio` / `baseline_foreign_ratio` | 0.1 / 0.05 | what the service-wide view assumes until calm minutes show the real rates |
    /// | `repeat_miss_ratio` / `miss_cap` | 0.3 / 8 | repeated hits are ordinary use (a heavy user mistypes 0-10% of its lookups, and a streak of bad luck stays under 30%); padding buys no room: a guesser padding each guess with a known lookup is stopped a few guesses later, heavier padding by the cap of 8 x `miss_block` distinct misses (160 here, 80 for identities; see the policy) |
    /// | `repeat_factor` | 0.5 | an actor blocked before gets half the room, then a quarter, down to a thirty-second |
    /// | `stranger_factor` | 0.3 | during a spike of foreign reads, a new account that has read none of its own objects is refused its first foreign read |
    /// | `kind_factors` | ip 2, subnet 4 | a NAT address is many people |
    pub fn objects() -> Self {
        Self {
            window_secs: 3600,
            long_half_life_secs: 21_600,
            foreign_block: 15,
            miss_block: 20,
            miss_ratio: 0.5,
            repeat_miss_ratio: 0.3,
            miss_cap: 8.0,
            hit_block: 0,
            min_targets: 4,
            denied_block: 10,
            throttle_at: 0.6,
            sequential_factor: 1.5,
            sequential_run: 4,
            cadence_factor: 1.25,
            anomaly_factor: 0.2,
            baseline_miss_ratio: 0.1,
            baseline_foreign_ratio: 0.05,
            repeat_factor: 0.5,
            stranger_factor: 0.3,
            kind_factors: KindFactors::default(),
        }
    }

    /// Defaults for identity lookups (email guessing through lookup,
    /// password reset or registration).
    ///
    /// | field | value | why |
    /// |---|---|---|
    /// | `window_secs` | 3600 | as for objects |
    /// | `foreign_block` | 0 (off) | every identity but one's own is foreign: the tell is misses and finds |
    /// | `miss_block` / `hit_block` | 20 / 30 | misses and finds add up (`misses/20 + hits/30`): a guesser with a 5% list is stopped at 20 misses (one find), a validator of a 60% list at about 15 finds (one account; about 20 from one address); a person checking which of 30 contacts joined (most of them not registered, but asked for by others too) stays under a throttle; misses on targets others asked for recently do not count (see the novelty filter in the README) |
    /// | `miss_ratio` | 0.6 | unused while `hit_block` is set |
    /// | `miss_cap` | 5 | padding dilutes the miss share at the price of the padding; 100 distinct misses block whatever the share (a throttle from 60) |
    /// | `min_targets` | 5 | a first typo is not a 100% miss ratio |
    /// | `denied_block` | 10 | |
    /// | `throttle_at` | 0.6 | a throttle (of this probe only) from 12 misses |
    /// | `anomaly_factor` | 0.12 | during a service-wide spike of misses, a new address or account blocks at its third miss or fifth find (spread guessing) |
    /// | `stranger_factor` | 1 (off) | identities have no own objects |
    /// | others | as objects | |
    pub fn identities() -> Self {
        Self {
            foreign_block: 0,
            miss_block: 20,
            hit_block: 30,
            miss_cap: 5.0,
            miss_ratio: 0.6,
            min_targets: 5,
            anomaly_factor: 0.12,
            stranger_factor: 1.0,
            ..Self::objects()
        }
    }

    pub(crate) fn for_style(style: ProbeStyle) -> Self {
        match style {
            ProbeStyle::Objects => Self::objects(),
            ProbeStyle::Identities => Self::identities(),
        }
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Self::objects()
    }
}

pub(crate) fn check_thresholds(i: usize, t: &Thresholds) -> Result<(), ConfigError> {
    let f = |name: &str| format!("probes[{i}].thresholds.{name}");
    duration(&f("window_secs"), t.window_secs)?;
    duration(&f("long_half_life_secs"), t.long_half_life_secs)?;
    for (name, v) in [("miss_ratio", t.miss_ratio), ("throttle_at", t.throttle_at)] {
        if !(v.is_finite() && v > 0.0 && v <= 1.0) {
            return Err(ConfigError::invalid(
                f(name),
                v.to_string(),
                "must be in (0, 1]",
            ));
        }
    }
    for (name, v) in [
        ("sequential_factor", t.sequential_factor),
        ("cadence_factor", t.cadence_factor),
    ] {
        if !(v.is_finite() && v >= 1.0) {
            return Err(ConfigError::invalid(
                f(name),
                v.to_string(),
                "must be at least 1",
            ));
        }
    }
    if t.sequential_run > u8::MAX as u32 {
        return Err(ConfigError::invalid(
            f("sequential_run"),
            t.sequential_run.to_string(),
            format!("must be at most {} (0 turns it off)", u8::MAX),
        ));
    }
    if !(t.miss_cap.is_finite() && (t.miss_cap == 0.0 || t.miss_cap >= 1.0)) {
        return Err(ConfigError::invalid(
            f("miss_cap"),
            t.miss_cap.to_string(),
            "must be 0 (off) or at least 1",
        ));
    }
    for (name, v) in [
        ("baseline_miss_ratio", t.baseline_miss_ratio),
        ("baseline_foreign_ratio", t.baseline_foreign_ratio),
        ("repeat_miss_ratio", t.repeat_miss_ratio),
    ] {
        if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
            return Err(ConfigError::invalid(
                f(name),
                v.to_string(),
                "must be in [0, 1]",
            ));
        }
    }
    for (name, v) in [
        ("anomaly_factor", t.anomaly_factor),
        ("repeat_factor", t.repeat_factor),
        ("stranger_factor", t.stranger_factor),
    ] {
        if !(v.is_finite() && v > 0.0 && v <= 1.0) {
            return Err(ConfigError::invalid(
                f(name),
                v.to_string(),
                "must be in (0, 1]",
            ));
        }
    }
    positive(&f("kind_factors.ip"), t.kind_factors.ip)?;
    positive(&f("kind_factors.subnet"), t.kind_factors.subnet)?;
    positive(&f("kind_factors.session"), t.kind_factors.session)?;
    positive(&f("kind_factors.account"), t.kind_factors.account)?;
    if t.foreign_block == 0 && t.miss_block == 0 && t.denied_block == 0 {
        return Err(ConfigError::invalid(
            f("foreign_block"),
            "0",
            "at least one of foreign_block, miss_block, denied_block must be set",
        ));
    }
    Ok(())
}

pub(crate) fn positive(field: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            field,
            v.to_string(),
            "must be a positive number",
        ))
    }
}
