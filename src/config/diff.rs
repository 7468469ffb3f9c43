//! [`ConfigDiff`]: what a reload changes, setting by setting, and
//! [`ReloadError`]: why a reload (or a rollback) was refused.
//!
//! ```
//! use enumguard::config::{Change, ConfigDiff};
//! use enumguard::Config;
//!
//! let old = Config::from_toml_str(r#"
//!     [[probes]]
//!     name = "book"
//!     path = "/accounts/{id}/book"
//!     target = { path = "id" }
//! "#).unwrap();
//! let new = Config::from_toml_str(r#"
//!     mode = "observe"
//!     [[probes]]
//!     name = "book"
//!     path = "/accounts/{id}/book"
//!     target = { path = "id" }
//!     thresholds = { foreign_block = 5 }
//! "#).unwrap();
//! let diff = ConfigDiff::between(&old, &new);
//! assert_eq!(
//!     diff.to_string(),
//!     "mode enforce -> observe; probe `book`: thresholds.foreign_block 15 -> 5"
//! );
//! assert!(diff.removed_probes().next().is_none());
//! assert!(ConfigDiff::between(&new, &new).is_empty());
//! assert_eq!(ConfigDiff::between(&new, &new).to_string(), "no change");
//! ```

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Config, ConfigError, Mode};

/// One change a reload makes. Values are written as in JSON (`15`,
/// `"x-session"`, `["10.0.0.0/8"]`); `None` is a setting that is not set.
/// A secret (`session_key`, the credentials of Redis URLs) is never
/// written: it shows as `"<redacted>"` on both sides.
///
/// As JSON (the admin service's answer), each change is an object tagged
/// by `change`: `{"change": "threshold", "probe": "book", "field":
/// "foreign_block", "from": "15", "to": "5"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Change {
    /// `enforce` or `observe`.
    Mode {
        /// The running mode.
        from: Mode,
        /// The new mode.
        to: Mode,
    },
    /// A probe the new config no longer has: its requests stop being
    /// watched, its records are dropped (and the address verdicts and
    /// throttles caught on it); a person's block stays.
    ProbeRemoved {
        /// The probe's name.
        probe: String,
    },
    /// A probe the running config does not have.
    ProbeAdded {
        /// The probe's name.
        probe: String,
    },
    /// One of a probe's thresholds, as the probe runs it (its style's
    /// default when not overridden).
    Threshold {
        /// The probe's name.
        probe: String,
        /// The threshold, as named in `[probes.thresholds]`
        /// (`foreign_block`, `kind_factors.ip`).
        field: String,
        /// The running value.
        from: Option<String>,
        /// The new value.
        to: Option<String>,
    },
    /// One of a probe's other settings (`path`, `method`, `outcome.miss`,
    /// `self_target`...), as the probe runs it.
    ProbeSetting {
        /// The probe's name.
        probe: String,
        /// The setting, as named in the probe's TOML table.
        field: String,
        /// The running value.
        from: Option<String>,
        /// The new value.
        to: Option<String>,
    },
    /// The probes' order (a request is the first probe it matches).
    ProbeOrder {
        /// The running order of the probes both configs have.
        from: Vec<String>,
        /// Their new order.
        to: Vec<String>,
    },
    /// Any other setting, by its TOML path (`throttle.per_minute`,
    /// `trusted_proxies`).
    Setting {
        /// The setting.
        field: String,
        /// The running value.
        from: Option<String>,
        /// The new value.
        to: Option<String>,
    },
}

/// What a reload changes: every setting whose value differs between the
/// running config and the new one, both read as the guard runs them
/// (every default written out, see [`Config::effective`]), so that a
/// config that only writes out a default the running one left implicit
/// changes nothing. Probes are matched by name.
///
/// Its `Display` is one line for a log (`no change` when empty); as JSON
/// it is the list of its [`Change`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ConfigDiff {
    changes: Vec<Change>,
}

impl ConfigDiff {
    /// What changes from `old` to `new`. Secrets are compared but never
    /// written (see [`Change`]).
    pub fn between(old: &Config, new: &Config) -> ConfigDiff {
        let (a, b) = (as_json(old), as_json(new));
        let mut changes = Vec::new();
        if old.mode != new.mode {
            changes.push(Change::Mode {
                from: old.mode,
                to: new.mode,
            });
        }
        let probes = |v: &Value| -> Vec<(String, Map<String, Value>)> {
            v.get("probes")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(|p| {
                            let p = p.as_object()?;
                            Some((p.get("name")?.as_str()?.to_owned(), p.clone()))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let (pa, pb) = (probes(&a), probes(&b));
        let has =
            |list: &[(String, Map<String, Value>)], name: &str| list.iter().any(|(n, _)| n == name);
        for (name, _) in pa.iter().filter(|(n, _)| !has(&pb, n)) {
            changes.push(Change::ProbeRemoved {
                probe: name.clone(),
            });
        }
        for (name, _) in pb.iter().filter(|(n, _)| !has(&pa, n)) {
            changes.push(Change::ProbeAdded {
                probe: name.clone(),
            });
        }
        for (name, before) in &pa {
            let Some((_, after)) = pb.iter().find(|(n, _)| n == name) else {
                continue;
            };
            let mut leaves = Vec::new();
            walk("", before, after, &mut leaves);
            for (field, from, to) in leaves {
                changes.push(match field.strip_prefix("thresholds.") {
                    Some(t) => Change::Threshold {
                        probe: name.clone(),
                        field: t.to_owned(),
                        from,
                        to,
                    },
                    None => Change::ProbeSetting {
                        probe: name.clone(),
                        field,
                        from,
                        to,
                    },
                });
            }
        }
        let common = |x: &[(String, Map<String, Value>)], y: &[(String, Map<String, Value>)]| {
            x.iter()
                .filter(|(n, _)| has(y, n))
                .map(|(n, _)| n.clone())
                .collect::<Vec<_>>()
        };
        let (order_a, order_b) = (common(&pa, &pb), common(&pb, &pa));
        if order_a != order_b {
            changes.push(Change::ProbeOrder {
                from: order_a,
                to: order_b,
            });
        }
        let rest = |v: &Value| {
            let mut m = v.as_object().cloned().unwrap_or_default();
            m.remove("probes");
            m.remove("mode");
            m
        };
        let mut leaves = Vec::new();
        walk("", &rest(&a), &rest(&b), &mut leaves);
        // The values compared above are redacted: a changed secret shows
        // only as changed.
        let secret = |c: &Config| c.session_key.as_ref().map(|_| REDACTED.to_owned());
        if old.session_key != new.session_key {
            leaves.retain(|(f, _, _)| f != "session_key");
            leaves.push(("session_key".into(), secret(old), secret(new)));
        }
        if old.cluster != new.cluster && !leaves.iter().any(|(f, _, _)| f.starts_with("cluster")) {
            leaves.push((
                "cluster".into(),
                Some(REDACTED.to_owned()),
                Some(REDACTED.to_owned()),
            ));
        }
        for (field, from, to) in leaves {
            changes.push(Change::Setting { field, from, to });
        }
        ConfigDiff { changes }
    }

    /// The changes, in this order: the mode, probes removed, probes
    /// added, each probe's settings, the probes' order, other settings.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// How many settings change.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// The names of the probes the new config no longer has.
    pub fn removed_probes(&self) -> impl Iterator<Item = &str> {
        self.changes.iter().filter_map(|c| match c {
            Change::ProbeRemoved { probe } => Some(probe.as_str()),
            _ => None,
        })
    }

    /// The names of the probes the new config adds.
    pub fn added_probes(&self) -> impl Iterator<Item = &str> {
        self.changes.iter().filter_map(|c| match c {
            Change::ProbeAdded { probe } => Some(probe.as_str()),
            _ => None,
        })
    }
}

const REDACTED: &str = "<redacted>";

/// The config as the guard runs it, secrets redacted, as JSON.
fn as_json(c: &Config) -> Value {
    let c = c.effective().redacted();
    serde_json::to_value(&c).unwrap_or(Value::Null)
}

/// The leaves that differ between `a` and `b`, by dotted path under
/// `prefix`: objects are walked, anything else (arrays included) is
/// compared whole.
fn walk(
    prefix: &str,
    a: &Map<String, Value>,
    b: &Map<String, Value>,
    out: &mut Vec<(String, Option<String>, Option<String>)>,
) {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let (x, y) = (
            a.get(k).filter(|v| !v.is_null()),
            b.get(k).filter(|v| !v.is_null()),
        );
        match (x, y) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => walk(&path, x, y, out),
            (Some(Value::Object(x)), None) => walk(&path, x, &Map::new(), out),
            (None, Some(Value::Object(y))) => walk(&path, &Map::new(), y, out),
            (x, y) if x != y => out.push((path, x.map(Value::to_string), y.map(Value::to_string))),
            _ => {}
        }
    }
}

/// A probe's name on one line: its control characters escaped (values
/// are JSON, escaped already), so that a diff stays one log line.
struct Name<'a>(&'a str);

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".into());
        let names = |list: &[String]| {
            list.iter()
                .map(|n| Name(n).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Change::Mode { from, to } => write!(f, "mode {} -> {}", mode(*from), mode(*to)),
            Change::ProbeRemoved { probe } => write!(f, "probe `{}` removed", Name(probe)),
            Change::ProbeAdded { probe } => write!(f, "probe `{}` added", Name(probe)),
            Change::Threshold {
                probe,
                field,
                from,
                to,
            } => write!(
                f,
                "probe `{}`: thresholds.{field} {} -> {}",
                Name(probe),
                value(from),
                value(to)
            ),
            Change::ProbeSetting {
                probe,
                field,
                from,
                to,
            } => write!(
                f,
                "probe `{}`: {field} {} -> {}",
                Name(probe),
                value(from),
                value(to)
            ),
            Change::ProbeOrder { from, to } => {
                write!(f, "probe order {} -> {}", names(from), names(to))
            }
            Change::Setting { field, from, to } => {
                write!(f, "{field} {} -> {}", value(from), value(to))
            }
        }
    }
}

fn mode(m: Mode) -> &'static str {
    match m {
        Mode::Enforce => "enforce",
        Mode::Observe => "observe",
    }
}

impl fmt::Display for ConfigDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return f.write_str("no change");
        }
        for (i, c) in self.changes.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// Why a reload or a rollback was refused; the running config stays.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ReloadError {
    /// The config is invalid, or changes what only a new guard can
    /// (`limits`, `cluster`): its first invalid field.
    Invalid(ConfigError),
    /// The config removes probes, and the reload was one that keeps them
    /// ([`GuardHandle::reload_keeping_probes`](crate::GuardHandle::reload_keeping_probes)):
    /// a config that forgot its `[[probes]]` would otherwise disarm the
    /// guard without a word.
    RemovesProbes {
        /// The probes it would remove.
        removed: Vec<String>,
        /// Everything it would change.
        diff: ConfigDiff,
    },
    /// A rollback with nothing to go back to: no reload has changed the
    /// config since the guard was built.
    NothingToRollBack,
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadError::Invalid(e) => e.fmt(f),
            ReloadError::RemovesProbes { removed, .. } => write!(
                f,
                "enumguard reload refused: the new config removes the probe{} `{}`, whose \
                 requests would no longer be watched; to remove {}, reload with probe removal \
                 allowed (GuardHandle::reload)",
                if removed.len() == 1 { "" } else { "s" },
                removed.join("`, `"),
                if removed.len() == 1 { "it" } else { "them" },
            ),
            ReloadError::NothingToRollBack => f.write_str(
                "enumguard rollback: no earlier config: no reload has changed the config since \
                 the guard was built",
            ),
        }
    }
}

impl std::error::Error for ReloadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReloadError::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ConfigError> for ReloadError {
    fn from(e: ConfigError) -> Self {
        ReloadError::Invalid(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProbeConfig, TargetConfig, Thresholds};

    fn probe(name: &str) -> ProbeConfig {
        ProbeConfig::objects(
            name,
            "GET",
            format!("/{name}/{{id}}"),
            TargetConfig::path("id"),
        )
    }

    fn with(probes: Vec<ProbeConfig>) -> Config {
        Config {
            probes,
            ..Config::default()
        }
    }

    #[test]
    fn probes_are_matched_by_name() {
        let old = with(vec![probe("a"), probe("b")]);
        let new = with(vec![probe("c"), probe("b")]);
        let d = ConfigDiff::between(&old, &new);
        assert_eq!(d.removed_probes().collect::<Vec<_>>(), ["a"]);
        assert_eq!(d.added_probes().collect::<Vec<_>>(), ["c"]);
        assert_eq!(d.len(), 2, "{d}");
        assert_eq!(d.to_string(), "probe `a` removed; probe `c` added");
        // A reorder of the same probes is a change (the first match wins).
        let d = ConfigDiff::between(&old, &with(vec![probe("b"), probe("a")]));
        assert_eq!(d.to_string(), "probe order a, b -> b, a");
    }

    #[test]
    fn thresholds_given_in_code_and_in_toml_compare_as_run() {
        let code = with(vec![probe("a").thresholds(Thresholds {
            foreign_block: 4,
            ..Thresholds::objects()
        })]);
        let toml = Config::from_toml_str(
            "[[probes]]\nname = \"a\"\npath = \"/a/{id}\"\ntarget = { path = \"id\" }\n\
             thresholds = { foreign_block = 4 }",
        )
        .unwrap();
        assert!(ConfigDiff::between(&code, &toml).is_empty());
        // Written out in full, nothing changes either.
        assert!(ConfigDiff::between(&toml, &toml.effective()).is_empty());
        let d = ConfigDiff::between(&with(vec![probe("a")]), &code);
        assert_eq!(
            d.changes(),
            [Change::Threshold {
                probe: "a".into(),
                field: "foreign_block".into(),
                from: Some("15".into()),
                to: Some("4".into()),
            }]
        );
    }

    #[test]
    fn settings_are_named_by_their_toml_path_and_secrets_never_shown() {
        let old = Config::default();
        let mut new = Config::default();
        new.throttle.per_minute = std::num::NonZeroU32::new(10).unwrap();
        new.trusted_proxies = vec!["10.0.0.0/8".into()];
        new.session_key = Some("00112233445566778899aabbccddeeff".into());
        let d = ConfigDiff::between(&old, &new);
        let s = d.to_string();
        assert!(s.contains("throttle.per_minute 20 -> 10"), "{s}");
        assert!(s.contains(r#"trusted_proxies [] -> ["10.0.0.0/8"]"#), "{s}");
        assert!(s.contains("session_key (unset) -> <redacted>"), "{s}");
        assert!(!s.contains("0011"), "{s}");
        let json = serde_json::to_string(&d).unwrap();
        assert!(!json.contains("0011"), "{json}");
        assert!(
            json.contains(
                r#"{"change":"setting","field":"throttle.per_minute","from":"20","to":"10"}"#
            ),
            "{json}"
        );
        // Another key: changed, still not shown.
        let mut other = new.clone();
        other.session_key = Some("ffeeddccbbaa99887766554433221100".into());
        let d = ConfigDiff::between(&new, &other);
        assert_eq!(d.to_string(), "session_key <redacted> -> <redacted>");
    }

    #[test]
    fn a_diff_is_one_log_line() {
        let d = ConfigDiff::between(&with(vec![probe("a\nFAKE LINE")]), &with(vec![]));
        assert_eq!(d.to_string(), "probe `a\\nFAKE LINE` removed");
    }

    #[test]
    fn a_removal_reads_well_as_an_error() {
        let e = ReloadError::RemovesProbes {
            removed: vec!["a".into(), "b".into()],
            diff: ConfigDiff::default(),
        };
        assert!(e.to_string().contains("probes `a`, `b`"), "{e}");
        assert!(e.to_string().contains("remove them"), "{e}");
    }
}
