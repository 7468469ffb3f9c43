//! Reading a config from TOML, with errors that name the field, the value
//! and the line.

use std::path::Path;

use super::{Config, ConfigError, ConfigErrorKind};

impl Config {
    /// Parses and validates a TOML document.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field and value at fault.
    pub fn from_toml_str(s: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(s).map_err(|e| ConfigError::from_toml(s, &e))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file.
    ///
    /// # Errors
    /// A [`ConfigError`] if the file cannot be read or is not valid.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            kind: ConfigErrorKind::Io,
            field: None,
            value: Some(path.display().to_string()),
            message: format!("cannot read {}: {e}", path.display()),
            file: None,
        })?;
        Self::from_toml_str(&text).map_err(|mut e| {
            e.file = Some(path.display().to_string());
            e
        })
    }
}

impl Config {
    /// The config with every default written out, as the guard runs it:
    /// each probe's `self_target`, `oversized` and thresholds in full
    /// (`enumguard check-config` prints it). Loading it back gives the same
    /// policy.
    ///
    /// # Errors
    /// A probe's threshold overrides are invalid.
    pub fn effective(&self) -> Result<Config, ConfigError> {
        let probes = self
            .probes
            .iter()
            .enumerate()
            .map(|(i, p)| p.effective(i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            probes,
            ..self.clone()
        })
    }

    /// The config as a TOML document.
    ///
    /// # Errors
    /// A value TOML cannot hold (none that a valid config has).
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError {
            kind: ConfigErrorKind::Parse,
            field: None,
            value: None,
            message: format!("cannot write the config as TOML: {e}"),
            file: None,
        })
    }
}

impl ConfigError {
    fn from_toml(src: &str, e: &toml::de::Error) -> Self {
        let msg = e.message();
        let Some(span) = e.span() else {
            return Self {
                kind: ConfigErrorKind::Parse,
                field: None,
                value: None,
                message: msg.to_owned(),
                file: None,
            };
        };
        let pos = span.start.min(src.len());
        // The table the error is in: the last header at or before it.
        let mut prefix = String::new();
        let mut arrays: Vec<(String, usize)> = Vec::new();
        let mut offset = 0usize;
        let mut error_line = "";
        for line in src.split_inclusive('\n') {
            if offset > pos {
                break;
            }
            let t = line.trim();
            if pos < offset + line.len().max(1) {
                error_line = line;
            }
            if let Some(rest) = t.strip_prefix("[[") {
                let name = rest.split("]]").next().unwrap_or("").trim().to_owned();
                let n = match arrays.iter_mut().find(|(a, _)| *a == name) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        arrays.push((name.clone(), 0));
                        0
                    }
                };
                prefix = format!("{name}[{n}].");
            } else if let Some(rest) = t.strip_prefix('[') {
                let name = rest.split(']').next().unwrap_or("").trim();
                // A sub-table of an array element: `[probes.thresholds]`.
                prefix = match arrays
                    .iter()
                    .find(|(a, _)| name.starts_with(&format!("{a}.")))
                {
                    Some((a, n)) => format!("{a}[{n}].{}.", &name[a.len() + 1..]),
                    None => format!("{name}."),
                };
            }
            offset += line.len();
        }
        let named = |marker: &str| {
            msg.split_once(marker)
                .and_then(|(_, rest)| rest.split('`').next())
                .map(str::to_owned)
        };
        let line_key = error_line
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_owned())
            .filter(|k| !k.is_empty() && !k.starts_with('['));
        let (key, value) = if let Some(k) = named("missing field `") {
            (Some(k), None)
        } else if let Some(k) = named("unknown field `") {
            (Some(k), None)
        } else {
            let value = src
                .get(span.start..span.end.min(src.len()))
                .map(|v| v.trim().to_owned());
            (line_key, value)
        };
        let line = src[..pos].matches('\n').count() + 1;
        // An unknown *table* (`[[probe]]`, `[limit]`): the error is at its
        // header, whose name ended the prefix. Name the table, not a field
        // inside it, and the known name it is closest to.
        if let Some(k) = named("unknown field `") {
            let parent = prefix
                .strip_suffix('.')
                .map(|p| {
                    p.strip_suffix(']')
                        .and_then(|p| p.rsplit_once('['))
                        .map_or(p, |(p, _)| p)
                })
                .filter(|p| p.rsplit('.').next() == Some(k.as_str()));
            if let Some(table) = parent {
                let hint = msg
                    .split_once("expected one of ")
                    .map(|(_, list)| {
                        list.split(", ")
                            .map(|c| c.trim_matches('`'))
                            .collect::<Vec<_>>()
                    })
                    .and_then(|known| closest(&k, &known))
                    .map(|c| format!(", did you mean `{c}`?"))
                    .unwrap_or_default();
                return Self {
                    kind: ConfigErrorKind::Parse,
                    field: Some(table.to_owned()),
                    value: None,
                    message: format!("line {line}: unknown table `{k}`{hint}"),
                    file: None,
                };
            }
        }
        Self {
            kind: ConfigErrorKind::Parse,
            field: key.map(|k| format!("{prefix}{k}")),
            value,
            message: format!("line {line}: {msg}"),
            file: None,
        }
    }
}

/// The known name `name` is most likely a misspelling of: a plural or
/// singular of it, or one at most two edits away.
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let distance = |a: &str, b: &str| -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    };
    known
        .iter()
        .map(|k| (distance(name, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Thresholds;

    #[test]
    fn empty_is_default() {
        assert_eq!(Config::from_toml_str("").unwrap(), Config::default());
    }

    #[test]
    fn bad_cidr_names_field_and_value() {
        let e =
            Config::from_toml_str("[allow]\ncidrs = [\"10.0.0.0/8\", \"300.1.1.1\"]").unwrap_err();
        assert_eq!(e.kind(), ConfigErrorKind::Invalid);
        assert_eq!(e.field(), Some("allow.cidrs[1]"));
        assert_eq!(e.value(), Some("300.1.1.1"));
        assert!(e.to_string().contains("allow.cidrs[1]"), "{e}");
    }

    #[test]
    fn wrong_type_names_key() {
        let e = Config::from_toml_str("[limits]\nmax_actors = \"lots\"\n").unwrap_err();
        assert_eq!(e.kind(), ConfigErrorKind::Parse);
        assert_eq!(e.field(), Some("limits.max_actors"));
        assert_eq!(e.value(), Some("\"lots\""));
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn history_hits_fit_the_record() {
        let e = Config::from_toml_str("[links]\nhistory_hits = 70000\n").unwrap_err();
        assert_eq!(e.field(), Some("links.history_hits"));
        assert_eq!(e.value(), Some("70000"));
        assert!(Config::from_toml_str("[links]\nhistory_hits = 65535\n").is_ok());
    }

    /// `[[probe]]` for `[[probes]]`: the table is named, with the fix.
    #[test]
    fn an_unknown_table_is_named_with_the_likely_fix() {
        let e = Config::from_toml_str(
            "[[probe]]\nname = \"a\"\npath = \"/a/{id}\"\ntarget = { path = \"id\" }\n",
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("probe"));
        assert!(
            e.to_string()
                .contains("unknown table `probe`, did you mean `probes`?"),
            "{e}"
        );
        let e = Config::from_toml_str("[limit]\nmax_actors = 5\n").unwrap_err();
        assert_eq!(e.field(), Some("limit"));
        assert!(e.to_string().contains("did you mean `limits`?"), "{e}");
        let e = Config::from_toml_str(
            "[[probes]]\nname = \"a\"\npath = \"/a/{id}\"\ntarget = { path = \"id\" }\n[probes.threshold]\nforeign_block = 1\n",
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("probes[0].threshold"));
        assert!(e.to_string().contains("did you mean `thresholds`?"), "{e}");
        // A misspelt key (not a table) keeps its own message.
        let e = Config::from_toml_str("mdoe = \"observe\"").unwrap_err();
        assert_eq!(e.field(), Some("mdoe"));
    }

    #[test]
    fn unknown_field_is_an_error() {
        let e = Config::from_toml_str("mood = \"observe\"").unwrap_err();
        assert!(e.to_string().contains("mood"), "{e}");
    }

    /// `links.inherit` (suspicion handed to new accounts) is gone: a config
    /// that still sets it is refused with its name, not silently read.
    #[test]
    fn the_precision_settings_are_checked() {
        let e = Config::from_toml_str("[links]\ninherit = 0.5\n").unwrap_err();
        assert!(e.to_string().contains("inherit"), "{e}");
        let e = Config::from_toml_str("[links]\nwatch_factor = 0\n").unwrap_err();
        assert_eq!(e.field(), Some("links.watch_factor"));
        let e = Config::from_toml_str("[service_view]\nper_address = 0\n").unwrap_err();
        assert_eq!(e.field(), Some("service_view.per_address"));
        let bad = |field: &str, value: &str| {
            let toml = format!(
                "[[probes]]\nname = \"p\"\npath = \"/p/{{id}}\"\ntarget = {{ path = \"id\" }}\n[probes.thresholds]\n{field} = {value}\n"
            );
            Config::from_toml_str(&toml)
                .and_then(|c| crate::GuardLayer::from_config(c).map(|_| ()))
                .unwrap_err()
        };
        assert_eq!(
            bad("miss_cap", "0.5").field(),
            Some("probes[0].thresholds.miss_cap")
        );
        assert_eq!(
            bad("repeat_miss_ratio", "1.5").field(),
            Some("probes[0].thresholds.repeat_miss_ratio")
        );
        assert_eq!(
            bad("stranger_factor", "0").field(),
            Some("probes[0].thresholds.stranger_factor")
        );
        assert_eq!(
            bad("sequential_run", "256").field(),
            Some("probes[0].thresholds.sequential_run")
        );
    }

    #[test]
    fn bad_mode_is_an_error() {
        let e = Config::from_toml_str("mode = \"lenient\"").unwrap_err();
        assert_eq!(e.field(), Some("mode"));
        assert!(e.to_string().contains("lenient"), "{e}");
    }

    #[test]
    fn ranges_are_checked() {
        let e = Config::from_toml_str("ip_v6_prefix = 129").unwrap_err();
        assert_eq!(e.field(), Some("ip_v6_prefix"));
        let e = Config::from_toml_str("[responses]\nblock_status = 200").unwrap_err();
        assert_eq!(e.field(), Some("responses.block_status"));
        let e = Config::from_toml_str("session_key = \"abc\"").unwrap_err();
        assert_eq!(e.field(), Some("session_key"));
        assert!(
            !e.to_string().contains("abc"),
            "the key is never echoed: {e}"
        );
    }

    #[test]
    fn missing_file_is_io_error() {
        let e = Config::from_file("/nonexistent/enumguard.toml").unwrap_err();
        assert_eq!(e.kind(), ConfigErrorKind::Io);
        assert!(e.to_string().contains("/nonexistent/enumguard.toml"));
    }

    #[test]
    fn probe_threshold_override_merges() {
        let c = Config::from_toml_str(
            r#"
            [[probes]]
            name = "book"
            path = "/a/{id}"
            target = { path = "id" }
            [probes.thresholds]
            foreign_block = 7
            kind_factors = { ip = 3.0 }
            "#,
        )
        .unwrap();
        let t = c.probes[0].effective_thresholds(0).unwrap();
        assert_eq!(t.foreign_block, 7);
        assert_eq!(t.kind_factors.ip, 3.0);
        assert_eq!(t.kind_factors.subnet, 4.0);
        assert_eq!(t.miss_block, Thresholds::objects().miss_block);
        let e = Config::from_toml_str(
            r#"
            [[probes]]
            name = "book"
            path = "/a/{id}"
            target = { path = "id" }
            [probes.thresholds]
            foriegn_block = 7
            "#,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("probes[0].thresholds.foriegn_block"));
    }
}
