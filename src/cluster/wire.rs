//! What goes to Redis: key names and messages.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::actor::{ActorKey, ActorKind, hash128};
use crate::detect::{ChangeKind, VerdictChange};
use crate::state::VerdictReason;
use crate::state::record::{Counts, Evidence, WORDS};

/// Names in Redis, all under the configured prefix.
pub(crate) struct Names {
    prefix: String,
    /// The secret the key names are hashed with (the shared session key):
    /// a key name says nothing of the actor to whoever reads Redis.
    secret: (u64, u64),
}

impl Names {
    pub(crate) fn new(prefix: &str, secret: (u64, u64)) -> Self {
        Self {
            prefix: prefix.to_owned(),
            secret,
        }
    }

    /// The channel verdict changes are published on.
    pub(crate) fn channel(&self) -> String {
        format!("{}:verdicts", self.prefix)
    }

    /// The channel evidence is published on.
    pub(crate) fn evidence_channel(&self) -> String {
        format!("{}:evidence", self.prefix)
    }

    /// The key of what `replica` saw of an actor on a probe.
    pub(crate) fn evidence(&self, actor: &ActorKey, probe: &str, replica: &str) -> String {
        let v = self.verdict(actor);
        let hash = v.rsplit(':').next().unwrap_or_default();
        let p = hash128(self.secret, probe.as_bytes()) as u64;
        format!("{}:e:{hash}:{p:016x}:{replica}", self.prefix)
    }

    /// The key of an actor's verdict.
    pub(crate) fn verdict(&self, actor: &ActorKey) -> String {
        let (kind, prefix, hi, lo) = actor.parts();
        let mut bytes = [0u8; 18];
        bytes[0] = kind_code(kind);
        bytes[1] = prefix;
        bytes[2..10].copy_from_slice(&hi.to_be_bytes());
        bytes[10..18].copy_from_slice(&lo.to_be_bytes());
        format!("{}:v:{:032x}", self.prefix, hash128(self.secret, &bytes))
    }

    /// The pattern of every evidence key.
    pub(crate) fn evidence_pattern(&self) -> String {
        format!("{}:e:*", self.prefix)
    }

    /// The pattern of every verdict key.
    pub(crate) fn verdict_pattern(&self) -> String {
        format!("{}:v:*", self.prefix)
    }
}

fn kind_code(k: ActorKind) -> u8 {
    match k {
        ActorKind::Ip => 0,
        ActorKind::Subnet => 1,
        ActorKind::Session => 2,
        ActorKind::Account => 3,
    }
}

fn kind_of(code: u8) -> Option<ActorKind> {
    Some(match code {
        0 => ActorKind::Ip,
        1 => ActorKind::Subnet,
        2 => ActorKind::Session,
        3 => ActorKind::Account,
        _ => return None,
    })
}

/// One verdict change on the wire (and a verdict's value in Redis).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Wire {
    /// kind, prefix, high and low 64 bits of the actor key.
    a: (u8, u8, u64, u64),
    k: String,
    r: String,
    s: u32,
    /// Remaining, in milliseconds, when sent.
    ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<String>,
}

impl Wire {
    pub(crate) fn from_change(c: &VerdictChange) -> Self {
        let (kind, prefix, hi, lo) = c.actor.parts();
        Self {
            a: (kind_code(kind), prefix, hi, lo),
            k: c.kind.as_str().to_owned(),
            r: c.reason.as_str().to_owned(),
            s: c.strikes,
            ms: c.remaining.div_ceil(1_000_000),
            p: c.probe.as_deref().map(str::to_owned),
        }
    }

    /// The change, with `remaining_ms` (Redis's own count, when loaded)
    /// in place of the one sent. `None` for anything malformed.
    pub(crate) fn to_change(&self, remaining_ms: Option<u64>) -> Option<VerdictChange> {
        let (kind, prefix, hi, lo) = self.a;
        let kind_ = kind_of(kind)?;
        if prefix > 128 {
            return None;
        }
        let kind = match self.k.as_str() {
            "block" => ChangeKind::Block,
            "throttle" => ChangeKind::Throttle,
            "allow" => ChangeKind::Allow,
            _ => return None,
        };
        let reason = match self.r.as_str() {
            "manual" => VerdictReason::Manual,
            "detected" => VerdictReason::Detected,
            "linked" => VerdictReason::Linked,
            _ => return None,
        };
        Some(VerdictChange {
            actor: ActorKey::from_parts(kind_, prefix, hi, lo),
            kind,
            reason,
            strikes: self.s,
            remaining: remaining_ms.unwrap_or(self.ms).saturating_mul(1_000_000),
            probe: self.p.as_deref().map(Arc::from),
        })
    }
}

/// What a replica saw of one (actor, probe) in its window.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EvidenceWire {
    pub(crate) a: (u8, u8, u64, u64),
    pub(crate) p: String,
    /// The window's distinct-target sketch.
    pub(crate) b: [u64; WORDS],
    /// requests, targets, hits, misses, denied.
    pub(crate) c: [u16; 5],
    /// The probe's window, in milliseconds: how long this counts.
    pub(crate) w: u64,
}

impl EvidenceWire {
    pub(crate) fn new(actor: &ActorKey, probe: &str, ev: &Evidence, window: u64) -> Self {
        let (kind, prefix, hi, lo) = actor.parts();
        let c = &ev.counts;
        Self {
            a: (kind_code(kind), prefix, hi, lo),
            p: probe.to_owned(),
            b: ev.bits,
            c: [c.requests, c.targets, c.hits, c.misses, c.denied],
            w: window.div_ceil(1_000_000),
        }
    }

    pub(crate) fn clone_wire(&self) -> Self {
        Self {
            a: self.a,
            p: self.p.clone(),
            b: self.b,
            c: self.c,
            w: self.w,
        }
    }

    /// The actor, the probe's name, what was seen and for how long it
    /// counts (nanoseconds); `None` for anything malformed.
    pub(crate) fn parts(&self) -> Option<(ActorKey, &str, Evidence, u64)> {
        let (kind, prefix, hi, lo) = self.a;
        if prefix > 128 {
            return None;
        }
        let actor = ActorKey::from_parts(kind_of(kind)?, prefix, hi, lo);
        let [requests, targets, hits, misses, denied] = self.c;
        let ev = Evidence {
            bits: self.b,
            counts: Counts {
                requests,
                targets,
                hits,
                misses,
                denied,
            },
        };
        Some((actor, &self.p, ev, self.w.saturating_mul(1_000_000)))
    }
}

/// A batch of evidence from one replica.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EvidenceBatch {
    pub(crate) from: String,
    pub(crate) items: Vec<EvidenceWire>,
}

/// A batch of changes from one replica.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Batch {
    pub(crate) from: String,
    pub(crate) changes: Vec<Wire>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_survives_the_wire_and_names_say_nothing_of_the_actor() {
        let actor = ActorKey::ip("203.0.113.9".parse().unwrap(), 32, 64, ActorKind::Ip);
        let c = VerdictChange {
            actor,
            kind: ChangeKind::Block,
            reason: VerdictReason::Detected,
            strikes: 2,
            remaining: 3_600_000_000_000,
            probe: Some(Arc::from("book")),
        };
        let json = serde_json::to_string(&Wire::from_change(&c)).unwrap();
        let back: Wire = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_change(None), Some(c.clone()));
        // Redis's own remaining time wins.
        assert_eq!(back.to_change(Some(5)).unwrap().remaining, 5_000_000);
        let names = Names::new("eg", (1, 2));
        let key = names.verdict(&actor);
        assert!(key.starts_with("eg:v:") && !key.contains("203"), "{key}");
        assert_ne!(key, Names::new("eg", (1, 3)).verdict(&actor));
        // Garbage is refused, never a panic.
        for bad in [
            r#"{"a":[9,0,0,0],"k":"block","r":"detected","s":1,"ms":1}"#,
            r#"{"a":[0,200,0,0],"k":"block","r":"detected","s":1,"ms":1}"#,
            r#"{"a":[0,32,0,0],"k":"ban","r":"detected","s":1,"ms":1}"#,
        ] {
            let w: Wire = serde_json::from_str(bad).unwrap();
            assert!(w.to_change(None).is_none(), "{bad}");
        }
    }
}
