//! The config routes: `GET /config` (secrets redacted), `POST /reload`
//! (a dry run, or removing probes, asked for in its query) and
//! `POST /rollback`, each change logged with who asked.

use http::StatusCode;
use serde_json::{Value, json};

use super::answer::{Answer, Refused, answer, bad, error, typed};
use crate::config::{Config, ConfigDiff, ConfigError, ReloadError};
use crate::guard::GuardHandle;

const NOTHING_TO_ROLL_BACK: &str =
    "nothing to roll back to: no reload has changed the config since the guard was built";

/// A change to the running config, as it is logged and answered.
struct ConfigChange {
    /// The log's `action`.
    action: &'static str,
    /// The log's message: `enumguard admin: config {done}`.
    done: &'static str,
    /// The answer's flag, `true` once the change is made.
    flag: &'static str,
}

const RELOAD: ConfigChange = ConfigChange {
    action: "reload",
    done: "reloaded",
    flag: "reloaded",
};
const ROLLBACK: ConfigChange = ConfigChange {
    action: "rollback",
    done: "rolled back",
    flag: "rolled_back",
};

impl ConfigChange {
    /// The change made: logged with what changed and who asked, and
    /// answered with the diff and the flag set.
    fn made(&self, diff: &ConfigDiff, who: &str) -> Answer {
        tracing::warn!(
            target: "enumguard",
            action = self.action,
            changes = diff.len(),
            diff = %diff,
            by = %who,
            "enumguard admin: config {}",
            self.done
        );
        let mut a = diff_json(diff);
        a[self.flag] = json!(true);
        answer(StatusCode::OK, a)
    }
}

/// What a reload or a rollback was asked to do, from its query.
#[derive(Default)]
pub(super) struct ReloadQuery {
    pub(super) remove_probes: bool,
    pub(super) dry_run: bool,
}

impl ReloadQuery {
    /// `remove_probes=true`, `dry_run=true` (alone, a name means `true`),
    /// the first only where `removal` is served.
    pub(super) fn parse(query: &str, removal: bool) -> Result<Self, Refused> {
        let mut q = Self::default();
        let want = if removal {
            "want remove_probes=true or dry_run=true"
        } else {
            "want dry_run=true"
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, "true"));
            let on = match value {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(bad(format!("a query flag is true or false: {want}"))),
            };
            match name {
                "remove_probes" if removal => q.remove_probes = on,
                "dry_run" => q.dry_run = on,
                // Not repeated: a query is no place for values to echo.
                _ => return Err(bad(format!("unknown query parameter: {want}"))),
            }
        }
        Ok(q)
    }
}

/// The running config as TOML: every default written out, secrets
/// redacted.
pub(super) fn config(handle: &GuardHandle) -> Answer {
    let toml = handle.config().effective().redacted().to_toml_string();
    match toml {
        Ok(text) => {
            let body = format!(
                "# The running config of this guard, every default written out.\n\
                 # Secrets read <redacted>: sent back to POST /reload, they keep the running ones.\n\n{text}"
            );
            typed(StatusCode::OK, "application/toml; charset=utf-8", body)
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// `POST /reload`: the body is a whole TOML config.
pub(super) fn reload(handle: &GuardHandle, body: &[u8], q: &ReloadQuery, who: &str) -> Answer {
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(_) => return error(StatusCode::BAD_REQUEST, "the config is not UTF-8"),
    };
    let config = match parse_reload(text, &handle.config()) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if q.dry_run {
        return match handle.diff(&config) {
            Ok(diff) => {
                let mut a = diff_json(&diff);
                a["dry_run"] = json!(true);
                a["reloaded"] = json!(false);
                a["removed"] = json!(diff.removed_probes().collect::<Vec<_>>());
                answer(StatusCode::OK, a)
            }
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        };
    }
    let result = if q.remove_probes {
        handle.reload(config).map_err(ReloadError::Invalid)
    } else {
        handle.reload_keeping_probes(config)
    };
    match result {
        Ok(diff) => RELOAD.made(&diff, who),
        Err(ReloadError::RemovesProbes { removed, diff }) => {
            tracing::warn!(
                target: "enumguard",
                action = "reload",
                refused = "removes probes",
                removed = %removed.join(", "),
                by = %who,
                "enumguard admin: reload refused"
            );
            let mut a = diff_json(&diff);
            a["error"] = json!(format!(
                "the config removes the probe{s} `{names}`, whose requests would no longer \
                 be watched: nothing was changed. If that is meant, send it again to \
                 POST /reload?remove_probes=true",
                s = if removed.len() == 1 { "" } else { "s" },
                names = removed.join("`, `"),
            ));
            a["removed"] = json!(removed);
            a["reloaded"] = json!(false);
            answer(StatusCode::CONFLICT, a)
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// `POST /rollback`: back to the config the last change replaced.
pub(super) fn rollback(handle: &GuardHandle, dry_run: bool, who: &str) -> Answer {
    let Some(previous) = handle.previous_config() else {
        return error(StatusCode::CONFLICT, NOTHING_TO_ROLL_BACK);
    };
    if dry_run {
        return match handle.diff(&previous) {
            Ok(diff) => {
                let mut a = diff_json(&diff);
                a["dry_run"] = json!(true);
                a["rolled_back"] = json!(false);
                answer(StatusCode::OK, a)
            }
            Err(e) => error(StatusCode::CONFLICT, e),
        };
    }
    match handle.rollback() {
        Ok(diff) => ROLLBACK.made(&diff, who),
        Err(ReloadError::NothingToRollBack) => error(StatusCode::CONFLICT, NOTHING_TO_ROLL_BACK),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

/// A reload's answer: whether anything changed, a one-line summary, and
/// each change.
fn diff_json(diff: &ConfigDiff) -> Value {
    json!({
        "changed": !diff.is_empty(),
        "summary": diff.to_string(),
        "changes": diff,
    })
}

/// The config a reload's body holds. Its `<redacted>` secrets (as
/// `GET /config` writes them) stand for the running config's, so that the
/// running config can be fetched, edited and sent back.
fn parse_reload(text: &str, running: &Config) -> Result<Config, ConfigError> {
    let Ok(mut config) = toml::from_str::<Config>(text) else {
        // Parsed again for its error, which names the field and the line.
        return Config::from_toml_str(text);
    };
    let shown = running.redacted();
    if running.session_key.is_some() && config.session_key == shown.session_key {
        config.session_key = running.session_key.clone();
    }
    if running.cluster.is_some() && config.cluster == shown.cluster {
        config.cluster = running.cluster.clone();
    }
    config.validate()?;
    Ok(config)
}
