//! The plain text an explanation prints (`enumguard check-config` shows
//! it above the effective config): `Display` for [`Explanation`], each
//! [`ProbeExplanation`] and each [`Warning`].

use std::fmt;

use super::explanation::{Explanation, ProbeExplanation, Warning, factor, num, style_name};
use crate::actor::ActorKind;
use crate::config::{Mode, Oversized, ProbeStyle, TargetConfig};
use crate::probe::StatusSpec;

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            Mode::Enforce => writeln!(f, "mode: enforce (verdicts refuse requests)")?,
            Mode::Observe => writeln!(f, "mode: observe (verdicts are logged; nothing refused)")?,
        }
        writeln!(f, "actors (a request counts against each it has):")?;
        for a in &self.actors {
            writeln!(f, "  {}: {}", a.kind.as_str(), a.source)?;
        }
        writeln!(f, "verdicts:")?;
        for v in &self.verdicts {
            writeln!(f, "  {v}")?;
        }
        if self.probes.is_empty() {
            writeln!(
                f,
                "\nno probes: only the lists and verdicts set through the handle or admin \
                 service are enforced"
            )?;
        } else {
            writeln!(
                f,
                "\nprobes (a request counts as the first whose methods and path it matches):"
            )?;
        }
        for p in &self.probes {
            write!(f, "\n{p}")?;
        }
        if self.warnings.is_empty() {
            writeln!(f, "\nwarnings: none")?;
        } else {
            writeln!(f, "\nwarnings ({}):", self.warnings.len())?;
            for w in &self.warnings {
                writeln!(f, "{w}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "- {}", self.field)?;
        if let Some(p) = &self.probe {
            write!(f, " (probe {p:?})")?;
        }
        write!(f, ": {}\n  fix: {}", self.why, self.fix)
    }
}

fn specs(list: &[StatusSpec]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl ProbeExplanation {
    /// What `v` comes to for each kind, kinds with the same room together:
    /// `15 (account, session), 30 (ip), 60 (subnet)`.
    fn room(&self, v: u32, personal: bool) -> String {
        let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
        for (k, x) in &self.kinds {
            let x = if personal { x.min(1.0) } else { *x };
            let n = num(f64::from(v) * x);
            match groups.iter_mut().find(|(m, _)| *m == n) {
                Some((_, ks)) => ks.push(k.as_str()),
                None => groups.push((n, vec![k.as_str()])),
            }
        }
        if let [(n, _)] = groups.as_slice() {
            return format!("{n} (every actor)");
        }
        groups
            .iter()
            .map(|(n, ks)| format!("{n} ({})", ks.join(", ")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn fmt_target(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.target;
        write!(f, "  target: ")?;
        match t {
            TargetConfig::Path(n) => {
                write!(f, "path segment {{{}}}, percent-decoded", n.escape_debug())?;
            }
            TargetConfig::Query(n) => write!(
                f,
                "query parameter `{}`, percent-decoded (absent or given twice with different \
                 values: the whole query)",
                n.escape_debug()
            )?,
            TargetConfig::Header(n) => write!(
                f,
                "header `{}` (given several times: all its values together)",
                n.escape_debug()
            )?,
            TargetConfig::Json(n) => write!(
                f,
                "JSON body field `{}`, read from the first {} bytes before the handler runs \
                 (absent, or a key given twice: the whole body)",
                n.escape_debug(),
                self.body_limit
            )?,
        }
        writeln!(f)?;
        writeln!(
            f,
            "    a request without it reaches the handler and counts as a new target of its own"
        )?;
        if matches!(t, TargetConfig::Json(_)) {
            let how = match self.oversized {
                Oversized::Pass => "forwarded unread, counted as a new target each time",
                Oversized::Refuse => "refused with 413",
            };
            let whence = if self.oversized_set {
                "set"
            } else {
                "the default"
            };
            writeln!(
                f,
                "  larger bodies: {how} (oversized is {:?}, {whence})",
                oversized_name(self.oversized)
            )?;
        } else {
            writeln!(
                f,
                "  body: never read (the target is in the request head: body_limit and \
                 oversized do not apply)"
            )?;
        }
        Ok(())
    }
}

fn oversized_name(o: Oversized) -> &'static str {
    match o {
        Oversized::Pass => "pass",
        Oversized::Refuse => "refuse",
    }
}

impl fmt::Display for ProbeExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let identities = self.style == ProbeStyle::Identities;
        let tell = if identities {
            "the tell is misses and finds"
        } else {
            "the tell is foreign objects"
        };
        writeln!(
            f,
            "probe {:?} (probes[{}]), {}: {tell}",
            self.name,
            self.index,
            style_name(self.style)
        )?;
        if self.methods.is_empty() {
            writeln!(f, "  methods: every method (*)")?;
        } else {
            write!(f, "  methods: {}", self.methods.join(", "))?;
            if self.head_with_get {
                write!(
                    f,
                    " (HEAD rides with GET: routers answer it with the GET handler)"
                )?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "  path: {} (segment by segment as written: a trailing slash or another spelling \
             is not this probe)",
            self.path.escape_debug()
        )?;
        self.fmt_target(f)?;
        let o = &self.outcome;
        writeln!(
            f,
            "  outcome: miss {}; denied {}; hit {}; other statuses count as requests only \
             (an Outcome the handler puts in the response wins; exact codes before classes)",
            specs(&o.miss),
            specs(&o.denied),
            specs(&o.hit)
        )?;
        let set = |s: bool| if s { "set" } else { "the default" };
        if identities {
            write!(
                f,
                "  not counted: a target the handler marks Known (the caller's contacts)"
            )?;
            if self.self_target {
                write!(f, ", and one equal to the caller's account id")?;
            }
            writeln!(
                f,
                " (self_target is {}, {})",
                self.self_target,
                set(self.self_target_set)
            )?;
        } else if self.self_target {
            writeln!(
                f,
                "  own objects (not counted): a target equal to the caller's account id \
                 (self_target is true, {}), or what an Owner in the response or the owns hook says",
                set(self.self_target_set)
            )?;
        } else {
            writeln!(
                f,
                "  own objects (not counted): only what an Owner in the response or the owns \
                 hook says (self_target is false, {}): without them every read is foreign",
                set(self.self_target_set)
            )?;
        }
        let kinds: Vec<&str> = self.kinds.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "  actors: {}; ", kinds.join(", "))?;
        match self.needs_login {
            Some(false) => writeln!(
                f,
                "needs_login is false: an address holds every request, with an account or not"
            )?,
            Some(true) => writeln!(
                f,
                "needs_login is true: an address holds its anonymous requests only, the accounts \
                 behind it are judged on their own"
            )?,
            None => writeln!(
                f,
                "needs_login unset: an address holds its anonymous requests only, and every \
                 request once the probe has answered an anonymous one with a hit or a miss"
            )?,
        }
        let t = &self.thresholds;
        writeln!(
            f,
            "  blocks (per {} s window; a long view halving every {} s adds up slower actors):",
            t.window_secs, t.long_half_life_secs
        )?;
        if t.foreign_block > 0 {
            writeln!(
                f,
                "    foreign objects: {}",
                self.room(t.foreign_block, false)
            )?;
        }
        if t.hit_block > 0 {
            if t.miss_block > 0 {
                writeln!(
                    f,
                    "    misses and finds add up, weighed by the share of answers that missed: \
                     misses {} plus finds {} (misses once {} targets were answered; an \
                     address's finds count as one person's)",
                    self.room(t.miss_block, false),
                    self.room(t.hit_block, true),
                    t.min_targets
                )?;
            } else {
                writeln!(f, "    finds: {}", self.room(t.hit_block, true))?;
            }
        } else if t.miss_block > 0 {
            writeln!(
                f,
                "    misses: {}, once at least {} distinct targets were tried and {}% of them \
                 missed",
                self.room(t.miss_block, false),
                t.min_targets,
                num(t.miss_ratio * 100.0)
            )?;
        }
        if t.miss_cap > 0.0 && t.miss_block > 0 {
            let cap = (t.miss_cap * f64::from(t.miss_block)).round() as u32;
            writeln!(
                f,
                "    misses whatever the ratios (miss_cap {}): {}",
                num(t.miss_cap),
                self.room(cap, false)
            )?;
        }
        if t.denied_block > 0 {
            writeln!(
                f,
                "    denied answers (from the second): {}",
                self.room(t.denied_block, false)
            )?;
        }
        let (first, noun) = if t.foreign_block > 0 {
            (t.foreign_block, "foreign objects")
        } else if t.miss_block > 0 {
            (t.miss_block, "misses")
        } else {
            (t.denied_block, "denied answers")
        };
        writeln!(
            f,
            "  throttles at {} of a block (an account: {} {noun}); ids walked in order ({} \
             steps) count {}x; a machine cadence {}x",
            num(t.throttle_at),
            num(f64::from(first) * t.throttle_at * factor(&t.kind_factors, ActorKind::Account)),
            t.sequential_run,
            num(t.sequential_factor),
            num(t.cadence_factor)
        )?;
        write!(
            f,
            "  during a service-wide anomaly an actor without history gets {} of an account's \
             room",
            num(t.anomaly_factor)
        )?;
        if !identities && t.stranger_factor < 1.0 {
            write!(
                f,
                " ({} of that on foreign objects if it read none of its own)",
                num(t.stranger_factor)
            )?;
        }
        writeln!(
            f,
            "; each earlier block leaves {} of the room",
            num(t.repeat_factor)
        )?;
        if self.overrides.is_empty() {
            writeln!(f, "  thresholds: the {} defaults", style_name(self.style))?;
        } else {
            let list: Vec<String> = self
                .overrides
                .iter()
                .map(|(k, v, d)| format!("{k} is {v} (default {d})"))
                .collect();
            writeln!(f, "  overrides: {}", list.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ProbeConfig, TargetConfig};

    /// Names and paths are escaped: an explanation is printed as comment
    /// lines, which a control character would break.
    #[test]
    fn control_characters_are_escaped() {
        let c = Config {
            probes: vec![ProbeConfig::objects(
                "a\nb\u{7}",
                "GET",
                "/x\r/{id}",
                TargetConfig::path("id"),
            )],
            ..Config::default()
        };
        let text = c.explain().unwrap().to_string();
        assert!(
            !text.chars().any(|ch| ch.is_control() && ch != '\n'),
            "{text:?}"
        );
        assert!(text.contains(r#"probe "a\nb\u{7}""#), "{text}");
    }
}
