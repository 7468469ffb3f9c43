//! The actor routes: suspects, live verdicts, one actor; bans and their
//! lifting, each logged with who asked.

use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::answer::{Answer, active_json, answer, error, suspect_json, verdict_json};
use super::naming::{Named, named};
use super::request::json_body;
use crate::guard::GuardHandle;

/// The longest ban, in seconds (a year).
pub const MAX_BAN_SECS: u64 = 365 * 24 * 3600;

const BAN_BODY: &str =
    r#"{"actor": {"kind": "ip", "value": "203.0.113.9"}, "secs": 600, "reason": "..."}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BanRequest {
    actor: Value,
    secs: u64,
    #[serde(default, alias = "note")]
    reason: String,
}

/// `GET /suspects?min_score=...`: actors by suspicion.
pub(super) fn suspects(handle: &GuardHandle, query: &str) -> Answer {
    let mut min_score = 0.0;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("min_score", v)) => match v.parse::<f64>() {
                Ok(x) if x.is_finite() => min_score = x,
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("min_score = `{v}`: want a number"),
                    );
                }
            },
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown query parameter `{pair}` (want min_score)"),
                );
            }
        }
    }
    let list: Vec<Value> = handle
        .suspects(min_score)
        .iter()
        .map(|s| suspect_json(handle, s))
        .collect();
    answer(StatusCode::OK, json!({ "suspects": list }))
}

/// `GET /verdicts`: every live verdict.
pub(super) fn verdicts(handle: &GuardHandle) -> Answer {
    let list: Vec<Value> = handle.verdicts().iter().map(active_json).collect();
    answer(StatusCode::OK, json!({ "verdicts": list }))
}

/// One actor: its verdict as the gate reads it, and its records.
pub(super) fn actor(handle: &GuardHandle, named: &Named) -> Answer {
    let key = named.key;
    let records: Vec<Value> = handle
        .suspects(f64::NEG_INFINITY)
        .iter()
        .filter(|s| s.actor == key)
        .map(|s| suspect_json(handle, s))
        .collect();
    let verdict = match &named.actor {
        Some(actor) => handle.verdict(actor),
        None => handle.verdict_key(key),
    };
    answer(
        StatusCode::OK,
        json!({
            "actor": key.to_string(),
            "kind": key.kind().as_str(),
            "verdict": verdict_json(&verdict, handle.ban_note(key).as_deref()),
            "records": records,
        }),
    )
}

/// `POST /bans`: the actor the body names is blocked for `secs`, its
/// reason kept as the ban's note.
pub(super) fn ban(handle: &GuardHandle, body: &[u8], who: &str) -> Answer {
    let ban: BanRequest = match json_body(body, BAN_BODY) {
        Ok(b) => b,
        Err(e) => return *e,
    };
    if !(1..=MAX_BAN_SECS).contains(&ban.secs) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("secs = {}: want 1..={MAX_BAN_SECS}", ban.secs),
        );
    }
    let named = match named(handle, &ban.actor) {
        Ok(n) => n,
        Err(e) => return *e,
    };
    let key = named.key;
    handle.ban_key(key, Duration::from_secs(ban.secs), &ban.reason);
    let note = handle.ban_note(key);
    tracing::warn!(
        target: "enumguard",
        action = "ban",
        actor = %key,
        secs = ban.secs,
        note = note.as_deref().unwrap_or(""),
        by = %who,
        "enumguard admin: ban"
    );
    answer(
        StatusCode::CREATED,
        json!({ "banned": key.to_string(), "secs": ban.secs, "note": note }),
    )
}

/// Lifts the actor's verdict (404 if it had none).
pub(super) fn unban(handle: &GuardHandle, named: &Named, who: &str) -> Answer {
    let key = named.key;
    let note = handle.ban_note(key);
    let lifted = handle.unban_key(key);
    tracing::warn!(
        target: "enumguard",
        action = "unban",
        actor = %key,
        lifted,
        note = note.as_deref().unwrap_or(""),
        by = %who,
        "enumguard admin: unban"
    );
    if lifted {
        answer(
            StatusCode::OK,
            json!({ "unbanned": key.to_string(), "note": note }),
        )
    } else {
        error(StatusCode::NOT_FOUND, format!("{key} had no verdict"))
    }
}
