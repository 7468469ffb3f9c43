//! The answers: JSON (TOML for the config) with `Cache-Control:
//! no-store`, errors as `{"error": ...}`, and how verdicts, suspects and
//! live verdicts are written.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::actor::ActorKey;
use crate::guard::{ActiveVerdict, GuardHandle, Suspect};
use crate::state::{Verdict, VerdictReason};

/// What every route answers.
pub(super) type Answer = Response<Full<Bytes>>;

/// A JSON answer.
pub(super) fn answer(status: StatusCode, body: Value) -> Answer {
    typed(status, "application/json", body.to_string())
}

/// An answer of the given content type, never cached (answers name actors,
/// verdicts and the config).
pub(super) fn typed(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Answer {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

/// An error: `{"error": message}`.
pub(super) fn error(status: StatusCode, message: impl std::fmt::Display) -> Answer {
    answer(status, json!({ "error": message.to_string() }))
}

/// An answer that ends a request early (boxed: a response is large).
pub(super) type Refused = Box<Answer>;

/// A 400 that ends a request early.
pub(super) fn bad(message: String) -> Refused {
    Box::new(error(StatusCode::BAD_REQUEST, message))
}

/// A verdict, with the note of an operator's ban.
pub(super) fn verdict_json(v: &Verdict, note: Option<&str>) -> Value {
    let mut out = match v {
        Verdict::Allow => return json!({ "kind": "allow" }),
        Verdict::Throttle { remaining, reason } => json!({
            "kind": "throttle",
            "reason": reason.as_str(),
            "remaining_secs": remaining.as_secs_f64(),
        }),
        Verdict::Block {
            remaining,
            reason,
            strikes,
        } => json!({
            "kind": "block",
            "reason": reason.as_str(),
            "remaining_secs": remaining.as_secs_f64(),
            "strikes": strikes,
        }),
    };
    if let Some(note) = note {
        out["note"] = json!(note);
    }
    out
}

fn key_json(key: &ActorKey) -> (String, &'static str) {
    (key.to_string(), key.kind().as_str())
}

pub(super) fn active_json(v: &ActiveVerdict) -> Value {
    let (actor, kind) = key_json(&v.actor);
    json!({
        "actor": actor,
        "kind": kind,
        "verdict": verdict_json(&v.verdict, v.note.as_deref()),
        "probe": v.probe,
    })
}

/// A suspect as the listings write it, with the note of an operator's ban.
pub(super) fn suspect_json(handle: &GuardHandle, s: &Suspect) -> Value {
    let (actor, kind) = key_json(&s.actor);
    let note = match s.verdict {
        Verdict::Block {
            reason: VerdictReason::Manual,
            ..
        } => handle.ban_note(s.actor),
        _ => None,
    };
    json!({
        "actor": actor,
        "kind": kind,
        "probe": s.probe,
        "score": s.score,
        "strikes": s.strikes,
        "verdict": verdict_json(&s.verdict, note.as_deref()),
    })
}
