//! What goes to Redis: key names and messages.

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::seal::{Seal, actor_bytes};
use crate::actor::{ActorKey, hash128};
use crate::clock::Span;
use crate::detect::{ChangeKind, VerdictChange};
use crate::state::VerdictReason;
use crate::state::record::{Counts, Evidence, WORDS};

/// Milliseconds since the Unix epoch, by the wall clock (shared by the
/// replicas, unlike the guard's clock, whose origin is each one's own):
/// the time a message or value says it was sent.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64)
}

/// Names in Redis, all under the configured prefix.
pub(crate) struct Names {
    prefix: String,
    /// The secret the key names are hashed with (derived from the shared
    /// session key): a key name says nothing of the actor to whoever reads
    /// Redis.
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
        let bytes = actor_bytes(actor);
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

/// One verdict change on the wire (and a verdict's value in Redis).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Wire {
    /// The actor, encrypted ([`Seal::hide`]): no address, session or
    /// account in Redis.
    a: String,
    k: String,
    r: String,
    s: u32,
    /// Remaining, in milliseconds, when sent.
    ms: u64,
    /// When it was sent (milliseconds since the Unix epoch): with `ms`, the
    /// end a stored value can never outlive, whatever its key's expiry says.
    #[serde(default)]
    t: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<String>,
}

impl Wire {
    /// `c` on the wire, sent at `t` (ms since the Unix epoch).
    pub(crate) fn from_change(c: &VerdictChange, seal: &Seal, t: u64) -> Self {
        Self {
            a: seal.hide(&c.actor),
            k: c.kind.as_str().to_owned(),
            r: c.reason.as_str().to_owned(),
            s: c.strikes,
            ms: c.remaining.div_ceil(1_000_000),
            t,
            p: c.probe.as_deref().map(str::to_owned),
        }
    }

    /// How long it has left at `now` (ms since the Unix epoch) by its own
    /// word: what was sent, less the time since.
    pub(crate) fn left_ms(&self, now: u64) -> u64 {
        self.t.saturating_add(self.ms).saturating_sub(now)
    }

    /// The change, with `remaining_ms` (Redis's own count, when loaded)
    /// in place of the one sent. `None` for anything malformed.
    pub(crate) fn to_change(
        &self,
        seal: &Seal,
        remaining_ms: Option<u64>,
    ) -> Option<VerdictChange> {
        let actor = seal.reveal(&self.a)?;
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
            actor,
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
    /// The actor, encrypted ([`Seal::hide`]).
    pub(crate) a: String,
    pub(crate) p: String,
    /// The window's distinct-target sketch.
    pub(crate) b: [u64; WORDS],
    /// requests, targets, hits, misses, denied.
    pub(crate) c: [u16; 5],
    /// The probe's window, in milliseconds: how long this counts.
    pub(crate) w: u64,
    /// When it was sent (ms since the Unix epoch).
    #[serde(default)]
    pub(crate) t: u64,
    /// Sent at once, with what was in flight counted as its worst answer
    /// (see `state/remote.rs`): the receiver sends its own at once too
    /// when the actor comes to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) h: bool,
}

impl EvidenceWire {
    pub(crate) fn new(
        actor: &ActorKey,
        probe: &str,
        ev: &Evidence,
        window: Span,
        seal: &Seal,
        t: u64,
    ) -> Self {
        let c = &ev.counts;
        Self {
            a: seal.hide(actor),
            p: probe.to_owned(),
            b: ev.bits,
            c: [c.requests, c.targets, c.hits, c.misses, c.denied],
            w: window.get().div_ceil(1_000_000),
            t,
            h: false,
        }
    }

    pub(crate) fn clone_wire(&self) -> Self {
        Self {
            a: self.a.clone(),
            p: self.p.clone(),
            b: self.b,
            c: self.c,
            w: self.w,
            t: self.t,
            h: self.h,
        }
    }

    /// How long it counts from `now` (ms since the Unix epoch) by its own
    /// word.
    pub(crate) fn left_ms(&self, now: u64) -> u64 {
        self.t.saturating_add(self.w).saturating_sub(now)
    }

    /// The actor, the probe's name, what was seen and for how long it
    /// counts; `None` for anything malformed.
    pub(crate) fn parts(&self, seal: &Seal) -> Option<(ActorKey, &str, Evidence, Span)> {
        let actor = seal.reveal(&self.a)?;
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
        Some((actor, &self.p, ev, Span::from_millis(self.w)))
    }
}

/// A batch of evidence from one replica.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EvidenceBatch {
    pub(crate) from: String,
    /// When it was sent (ms since the Unix epoch).
    #[serde(default)]
    pub(crate) t: u64,
    pub(crate) items: Vec<EvidenceWire>,
}

/// A batch of changes from one replica.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Batch {
    pub(crate) from: String,
    /// When it was sent (ms since the Unix epoch).
    #[serde(default)]
    pub(crate) t: u64,
    pub(crate) changes: Vec<Wire>,
}

/// What every message says of itself: which replica sent it, and when
/// (ms since the Unix epoch).
pub(crate) trait Envelope {
    fn sender(&self) -> &str;
    fn sent_ms(&self) -> u64;
}

impl Envelope for Batch {
    fn sender(&self) -> &str {
        &self.from
    }
    fn sent_ms(&self) -> u64 {
        self.t
    }
}

impl Envelope for EvidenceBatch {
    fn sender(&self) -> &str {
        &self.from
    }
    fn sent_ms(&self) -> u64 {
        self.t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::ActorKind;

    #[test]
    fn a_change_survives_the_wire_and_neither_names_nor_values_say_who() {
        let actor = ActorKey::ip("203.0.113.9".parse().unwrap(), 32, 64, ActorKind::Ip);
        let c = VerdictChange {
            actor,
            kind: ChangeKind::Block,
            reason: VerdictReason::Detected,
            strikes: 2,
            remaining: 3_600_000_000_000,
            probe: Some(Arc::from("book")),
        };
        let seal = Seal::derive((1, 2));
        let json = serde_json::to_string(&Wire::from_change(&c, &seal, 1_000)).unwrap();
        // 203.0.113.9: cb007109, and its mapped form as a u64 in decimal.
        let lo = actor.parts().3.to_string();
        assert!(
            !json.contains("cb007109") && !json.contains(&lo) && !json.contains("203."),
            "{json}"
        );
        let back: Wire = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_change(&seal, None), Some(c.clone()));
        assert_eq!(back.to_change(&Seal::derive((1, 3)), None), None);
        // Redis's own remaining time wins; a hostile one saturates.
        assert_eq!(back.to_change(&seal, Some(5)).unwrap().remaining, 5_000_000);
        assert_eq!(
            back.to_change(&seal, Some(u64::MAX)).unwrap().remaining,
            u64::MAX
        );
        // Its own word bounds it: 3,600,000 ms from t = 1,000.
        assert_eq!(back.left_ms(1_000), 3_600_000);
        assert_eq!(back.left_ms(3_600_999), 1);
        assert_eq!(back.left_ms(u64::MAX), 0);
        let names = Names::new("eg", seal.names());
        let key = names.verdict(&actor);
        assert!(key.starts_with("eg:v:") && !key.contains("203"), "{key}");
        assert_ne!(key, Names::new("eg", (1, 3)).verdict(&actor));
        // Garbage is refused, never a panic.
        let a = seal.hide(&actor);
        for bad in [
            r#"{"a":"00","k":"block","r":"detected","s":1,"ms":1}"#.to_owned(),
            format!(r#"{{"a":"{a}","k":"ban","r":"detected","s":1,"ms":1}}"#),
            format!(r#"{{"a":"{a}","k":"block","r":"whim","s":1,"ms":1}}"#),
        ] {
            let w: Wire = serde_json::from_str(&bad).unwrap();
            assert!(w.to_change(&seal, None).is_none(), "{bad}");
        }
        // The old form, with the actor in the clear, is not read.
        assert!(
            serde_json::from_str::<Wire>(
                r#"{"a":[0,128,0,281473978503433],"k":"block","r":"manual","s":1,"ms":1}"#
            )
            .is_err()
        );
    }
}
