//! A probe's warnings: a body it forwards unread, a login rule that lets
//! throwaway accounts out of their address, an earlier probe that hides
//! it, outcome rules that never apply; then its thresholds.

use super::explanation::{Warning, WarningKind};
use super::threshold_warnings::threshold_warnings;
use crate::config::validate::ProbeParts;
use crate::config::{Config, ConfigError, Oversized, ProbeConfig, ProbeStyle};
use crate::probe::{Methods, Outcome, OutcomeRules};

/// The probe's outcome rules, as the guard classifies with them.
fn rules(p: &ProbeConfig) -> OutcomeRules {
    OutcomeRules::new(
        p.outcome.hit.clone(),
        p.outcome.miss.clone(),
        p.outcome.denied.clone(),
    )
}

/// The statuses (100..=599) the rules classify as `o`, with no `Outcome`
/// in the response.
fn classified_as(r: &OutcomeRules, o: Outcome) -> impl Iterator<Item = u16> + '_ {
    let ext = http::Extensions::new();
    (100..=599u16).filter(move |s| {
        http::StatusCode::from_u16(*s).is_ok_and(|s| r.classify(s, &ext) == Some(o))
    })
}

/// Words of endpoints that answer without a login: password resets,
/// sign-ups, logins, availability checks.
const ANONYMOUS_WORDS: &[&str] = &[
    "reset", "forgot", "recover", "register", "signup", "sign-up", "sign_up", "join", "login",
    "log-in", "signin", "sign-in", "sign_in", "password", "availab", "exists",
];

fn looks_anonymous(path: &str) -> bool {
    path.split('/')
        .filter(|s| !s.starts_with('{'))
        .map(str::to_ascii_lowercase)
        .any(|s| ANONYMOUS_WORDS.iter().any(|w| s.contains(w)))
}

/// A path both patterns match (the literal of either where one has a
/// parameter), if they can match one path at all: checked with the
/// guard's own matcher.
fn common_path(a: &ProbeParts, pa: &str, b: &ProbeParts, pb: &str) -> Option<String> {
    let (sa, sb): (Vec<&str>, Vec<&str>) = (pa.split('/').collect(), pb.split('/').collect());
    if sa.len() != sb.len() {
        return None;
    }
    let param = |s: &str| s.starts_with('{');
    let segs: Vec<&str> = sa
        .iter()
        .zip(&sb)
        .map(|(x, y)| match (param(x), param(y)) {
            (true, true) => "1",
            (true, false) => y,
            _ => x,
        })
        .collect();
    let path = segs.join("/");
    (a.pattern.matches(&path, None).is_some() && b.pattern.matches(&path, None).is_some())
        .then_some(path)
}

/// A method both probes count, if any.
fn common_method(a: &Methods, b: &Methods) -> Option<String> {
    match (a, b) {
        (Methods::Any, Methods::Any) => Some("GET".into()),
        (Methods::Any, Methods::List(l)) | (Methods::List(l), Methods::Any) => {
            l.first().map(|m| m.as_str().to_owned())
        }
        (Methods::List(x), Methods::List(y)) => x
            .iter()
            .find(|m| y.contains(m))
            .map(|m| m.as_str().to_owned()),
    }
}

pub(super) fn probe_warnings(
    c: &Config,
    i: usize,
    p: &ProbeConfig,
    parts: &ProbeParts,
    earlier: &[ProbeParts],
    out: &mut Vec<Warning>,
) -> Result<(), ConfigError> {
    let mut warn = |kind, field: String, why: String, fix: String| {
        out.push(Warning {
            kind,
            field,
            probe: Some(p.name.clone()),
            why,
            fix,
        });
    };
    let f = |name: &str| format!("probes[{i}].{name}");
    let identities = p.style == ProbeStyle::Identities;
    if identities && parts.source.in_body() && parts.oversized == Oversized::Pass {
        warn(
            WarningKind::OversizedPass,
            f("oversized"),
            format!(
                "a body padded past {} bytes reaches the handler unread: the guard never sees \
                 which identity it asks (it counts as a target nobody else asked for), and the \
                 handler parses bodies of any size",
                p.body_limit
            ),
            "set oversized = \"refuse\" (the identities default: 413), raising body_limit if \
             real requests are larger"
                .into(),
        );
    }
    if p.needs_login != Some(false) && looks_anonymous(&p.path) {
        let why = match p.needs_login {
            Some(_) => "needs_login is true on a path that looks like it answers without a \
                        login: an address then holds only its anonymous requests, so a guesser \
                        sends each guess with another throwaway account's token and its \
                        address never holds it"
                .to_owned(),
            None => "needs_login is unset on a path that looks like it answers without a login: \
                     the guard learns that only from the first anonymous hit or miss after each \
                     start; until then a guesser sending each guess with another throwaway \
                     account's token escapes its address"
                .to_owned(),
        };
        warn(
            WarningKind::LoginNotHeld,
            f("needs_login"),
            why,
            "set needs_login = false if the endpoint answers anonymous requests (true only if \
             it refuses them)"
                .into(),
        );
    }
    for (j, e) in earlier.iter().enumerate() {
        let (Some(m), Some(path)) = (
            common_method(&e.method, &parts.method),
            common_path(e, &c.probes[j].path, parts, &p.path),
        ) else {
            continue;
        };
        warn(
            WarningKind::Shadowed,
            f("path"),
            format!(
                "`{m} {}` matches probe {:?} (probes[{j}]) first: such requests count as that \
                 probe, with its target and thresholds, never as this one",
                path.escape_debug(),
                c.probes[j].name
            ),
            "put the more specific probe first, or narrow the earlier one's path or methods".into(),
        );
    }
    let r = rules(p);
    for (list, name, o) in [
        (&p.outcome.miss, "miss", Outcome::Miss),
        (&p.outcome.denied, "denied", Outcome::Denied),
        (&p.outcome.hit, "hit", Outcome::Hit),
    ] {
        for (k, spec) in list.iter().enumerate() {
            let ext = http::Extensions::new();
            let dead = (100..=599u16)
                .filter_map(|s| http::StatusCode::from_u16(s).ok())
                .filter(|s| spec.matches(*s))
                .all(|s| r.classify(s, &ext) != Some(o));
            if dead {
                warn(
                    WarningKind::Outcome,
                    f(&format!("outcome.{name}[{k}]")),
                    format!(
                        "{spec} is listed as {name} but every status it covers is classified \
                         otherwise (exact codes before classes; then miss, denied, hit)"
                    ),
                    "list each status once".into(),
                );
            }
        }
    }
    if identities {
        let misses = classified_as(&r, Outcome::Miss).count();
        let hits = classified_as(&r, Outcome::Hit).count();
        if misses == 0 {
            warn(
                WarningKind::Outcome,
                f("outcome.miss"),
                "no status is a miss: unless the handler puts Outcome::Miss in its responses, a \
                 guesser's misses never count, and its finds weigh nothing without them"
                    .into(),
                "list the status that says \"no such account\" (404, or \"2xx\" on a sign-up)"
                    .into(),
            );
        }
        if hits == 0 {
            warn(
                WarningKind::Outcome,
                f("outcome.hit"),
                "no status is a hit: unless the handler puts Outcome::Hit in its responses, a \
                 validator of a leaked list (mostly registered) is never stopped by its finds"
                    .into(),
                "list the status that says the account exists (2xx, or 409 on a sign-up)".into(),
            );
        }
    }
    threshold_warnings(i, p, parts, &mut warn);
    Ok(())
}
