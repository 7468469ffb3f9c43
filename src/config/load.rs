//! Reading a config from TOML, with errors that name the field, the value
//! and the line.

use std::path::Path;

use super::validate::{REDACTED, redact};
use super::{Config, ConfigError, ConfigErrorKind, ProbeConfig};

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
    pub fn effective(&self) -> Config {
        Config {
            probes: self.probes.iter().map(ProbeConfig::effective).collect(),
            ..self.clone()
        }
    }

    /// The config with its secrets replaced by `<redacted>`: `session_key`,
    /// and the credentials in Redis URLs (`redis://<redacted>@host:6379`).
    /// For printing (`enumguard check-config` prints this); a redacted
    /// `session_key` does not load back, on purpose.
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        if c.session_key.is_some() {
            c.session_key = Some(REDACTED.to_owned());
        }
        if let Some(cluster) = &mut c.cluster {
            if !cluster.redis_url.is_empty() {
                cluster.redis_url = redact(&cluster.redis_url);
            }
            for u in &mut cluster.redis_cluster {
                *u = redact(u);
            }
        }
        if let Some(p) = &c.proxy {
            c.proxy = Some(p.redacted());
        }
        c
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
        let field = key.map(|k| format!("{prefix}{k}"));
        let mut message = format!("line {line}: {msg}");
        let mut value = value;
        // A secret that did not parse is not echoed: neither as the value
        // nor inside the parser's message.
        if field.as_deref().is_some_and(is_secret) {
            if let Some(v) = value.take().filter(|v| !v.is_empty()) {
                message = message.replace(&v, REDACTED);
                let inner = v.trim_matches(|c| c == '"' || c == '\'');
                if !inner.is_empty() {
                    message = message.replace(inner, REDACTED);
                }
            }
            value = Some(REDACTED.to_owned());
        }
        Self {
            kind: ConfigErrorKind::Parse,
            field,
            value,
            message,
            file: None,
        }
    }
}

/// Fields whose values are secrets (a key, URLs that may hold a password).
fn is_secret(field: &str) -> bool {
    field == "session_key"
        || field.starts_with("cluster.redis_url")
        || field.starts_with("cluster.redis_cluster")
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

    /// The shipped example's config passes every check.
    #[test]
    fn the_mailroom_example_config_loads() {
        let c = Config::from_toml_str(include_str!("../../examples/mailroom.toml")).unwrap();
        let _layer = crate::GuardLayer::from_config(c).unwrap();
    }

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
        let e = Config::from_toml_str("[links]\nhistory_hits = 256\n").unwrap_err();
        assert_eq!(e.field(), Some("links.history_hits"));
        assert_eq!(e.value(), Some("256"));
        assert!(Config::from_toml_str("[links]\nhistory_hits = 255\n").is_ok());
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

    /// A config whose settings at `table` are `body`, with one probe.
    fn with(table: &str, body: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(&format!(
            "[[probes]]\nname = \"p\"\npath = \"/p/{{id}}\"\ntarget = {{ path = \"id\" }}\n[{table}]\n{body}\n"
        ))
    }

    /// Every number that 0 (or a value out of its range) would make
    /// meaningless, or that the guard would silently clamp, is an error
    /// that names it, never a quiet substitute: `burst = 0` was read as 1.
    #[test]
    fn zeros_and_nonsense_numbers_are_errors_that_name_the_field() {
        for (table, body, field) in [
            ("throttle", "burst = 0", "throttle.burst"),
            ("throttle", "per_minute = 0", "throttle.per_minute"),
            ("throttle", "duration_secs = 0", "throttle.duration_secs"),
            ("blocks", "base_secs = 0", "blocks.base_secs"),
            ("blocks", "factor = 0", "blocks.factor"),
            ("blocks", "max_secs = 0", "blocks.max_secs"),
            ("links", "half_life_secs = 0", "links.half_life_secs"),
            ("links", "new_actor_secs = 0", "links.new_actor_secs"),
            ("links", "history_hits = 0", "links.history_hits"),
            ("links", "boost = 1.5", "links.boost"),
            ("links", "watch_factor = nan", "links.watch_factor"),
            (
                "service_view",
                "bucket_secs = 0",
                "service_view.bucket_secs",
            ),
            (
                "service_view",
                "min_requests = 0",
                "service_view.min_requests",
            ),
            (
                "service_view",
                "per_address = 0",
                "service_view.per_address",
            ),
            ("service_view", "ratio = 0.5", "service_view.ratio"),
            ("service_view", "ratio = inf", "service_view.ratio"),
            ("service_view", "margin = -0.1", "service_view.margin"),
            ("service_view", "margin = nan", "service_view.margin"),
            ("service_view", "alpha = 0", "service_view.alpha"),
            ("service_view", "alpha = 1.5", "service_view.alpha"),
            ("limits", "max_actors = 0", "limits.max_actors"),
            ("limits", "max_verdicts = 0", "limits.max_verdicts"),
            (
                "probes.thresholds",
                "window_secs = 0",
                "probes[0].thresholds.window_secs",
            ),
            (
                "probes.thresholds",
                "long_half_life_secs = 0",
                "probes[0].thresholds.long_half_life_secs",
            ),
            (
                "probes.thresholds",
                "miss_ratio = 0",
                "probes[0].thresholds.miss_ratio",
            ),
            (
                "probes.thresholds",
                "throttle_at = 1.5",
                "probes[0].thresholds.throttle_at",
            ),
            (
                "probes.thresholds",
                "repeat_factor = 0",
                "probes[0].thresholds.repeat_factor",
            ),
            (
                "probes.thresholds",
                "kind_factors = { ip = 0.0 }",
                "probes[0].thresholds.kind_factors.ip",
            ),
        ] {
            let e = with(table, body).expect_err(body);
            assert_eq!(e.field(), Some(field), "{body}: {e}");
            // The `NonZeroU32` fields refuse a 0 while the file is read.
            let nonzero = [
                "throttle.burst",
                "throttle.per_minute",
                "blocks.factor",
                "service_view.min_requests",
                "service_view.per_address",
            ];
            if nonzero.contains(&field) {
                assert_eq!(e.kind(), ConfigErrorKind::Parse, "{body}: {e}");
                assert!(e.to_string().contains("nonzero"), "{e}");
            } else {
                assert_eq!(e.kind(), ConfigErrorKind::Invalid, "{body}: {e}");
            }
            assert!(e.to_string().contains(field), "{e}");
        }
        // A subnet smaller than the ip actor holds no address.
        let e = Config::from_toml_str("ip_v4_prefix = 24\nsubnet_v4_prefix = 28").unwrap_err();
        assert_eq!(e.field(), Some("subnet_v4_prefix"));
        // The smallest sensible values load.
        for (table, body) in [
            ("throttle", "burst = 1\nper_minute = 1\nduration_secs = 1"),
            (
                "service_view",
                "min_requests = 1\nratio = 1.0\nmargin = 0.0\nalpha = 1.0",
            ),
            ("links", "history_hits = 1\nnew_actor_secs = 1"),
        ] {
            with(table, body).unwrap_or_else(|e| panic!("{body}: {e}"));
        }
    }

    /// Durations beyond what the clock's nanoseconds hold (or longer than
    /// any block) are errors naming the field, not overflows later.
    #[test]
    fn durations_beyond_the_maximum_are_errors_that_name_the_field() {
        use crate::config::checks::MAX_DURATION_SECS;
        let huge = u64::MAX.to_string();
        for (table, key, field) in [
            ("throttle", "duration_secs", "throttle.duration_secs"),
            ("blocks", "base_secs", "blocks.base_secs"),
            ("blocks", "max_secs", "blocks.max_secs"),
            ("links", "half_life_secs", "links.half_life_secs"),
            ("links", "new_actor_secs", "links.new_actor_secs"),
            ("service_view", "bucket_secs", "service_view.bucket_secs"),
            (
                "probes.thresholds",
                "window_secs",
                "probes[0].thresholds.window_secs",
            ),
            (
                "probes.thresholds",
                "long_half_life_secs",
                "probes[0].thresholds.long_half_life_secs",
            ),
        ] {
            // u64::MAX does not fit TOML's i64: the parser names the field.
            let e = with(table, &format!("{key} = {huge}")).unwrap_err();
            assert_eq!(e.field(), Some(field), "{key}: {e}");
            for secs in [MAX_DURATION_SECS + 1, i64::MAX as u64] {
                let e = with(table, &format!("{key} = {secs}")).unwrap_err();
                assert_eq!(e.field(), Some(field), "{key} = {secs}: {e}");
                assert_eq!(e.value(), Some(secs.to_string().as_str()));
            }
        }
        // The longest allowed: a block of 10 years, escalated, saturates.
        let c = with(
            "blocks",
            &format!("base_secs = {MAX_DURATION_SECS}\nmax_secs = {MAX_DURATION_SECS}"),
        )
        .unwrap();
        let _layer = crate::GuardLayer::from_config(c).unwrap();
        // A throttle outlasting the longest block.
        let e = Config::from_toml_str(
            "[throttle]\nduration_secs = 7200\n[blocks]\nbase_secs = 60\nmax_secs = 3600\n",
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("throttle.duration_secs"));
        assert!(e.to_string().contains("blocks.max_secs"), "{e}");
    }

    /// A secret that fails to parse is not echoed in the error.
    #[test]
    fn a_secret_that_does_not_parse_is_not_echoed() {
        for toml in [
            "session_key = 0123456789abcdef0123456789abcdef",
            "session_key = 123456789012345678",
            "session_key = [\"0123456789abcdef0123456789abcdef\"]",
            "[cluster]\nredis_url = [\"redis://:hunter2@10.0.0.5\"]",
        ] {
            let e = Config::from_toml_str(toml).unwrap_err();
            let text = format!("{e} {e:?}");
            for secret in ["0123456789abcdef", "123456789012345678", "hunter2"] {
                assert!(!text.contains(secret), "{toml}: {text}");
            }
            assert!(e.field().is_some(), "{toml}: {e}");
        }
    }

    /// `Debug` and [`Config::redacted`] never show the session key or a
    /// Redis password; `redacted` keeps everything else.
    #[test]
    fn debug_and_redacted_hide_the_secrets() {
        let key = "0123456789abcdef0123456789abcdef";
        let c = Config {
            session_key: Some(key.into()),
            cluster: Some(crate::config::ClusterConfig {
                redis_url: "redis://:hunter2@10.0.0.5:6379/0".into(),
                redis_cluster: vec![
                    "rediss://ops:s3cr3t@10.0.0.6:7000".into(),
                    "unix:///run/redis.sock?db=1&pass=s3cr3t".into(),
                ],
                ..Default::default()
            }),
            ..Config::default()
        };
        let r = c.redacted();
        for text in [
            format!("{c:?}"),
            format!("{c:#?}"),
            format!("{r:?}"),
            r.to_toml_string().unwrap(),
        ] {
            for secret in [key, "hunter2", "s3cr3t"] {
                assert!(!text.contains(secret), "{secret}: {text}");
            }
            assert!(text.contains("10.0.0.5:6379/0"), "{text}");
            assert!(text.contains("db=1"), "{text}");
        }
        assert_eq!(r.session_key.as_deref(), Some("<redacted>"));
        assert_eq!(
            r.cluster.as_ref().unwrap().redis_url,
            "redis://<redacted>@10.0.0.5:6379/0"
        );
        assert_eq!(
            Config {
                session_key: None,
                cluster: None,
                ..r.clone()
            },
            Config::default()
        );
        // Nothing secret: nothing changes.
        assert_eq!(Config::default().redacted(), Config::default());
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
        let t = c.probes[0].resolved_thresholds();
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
