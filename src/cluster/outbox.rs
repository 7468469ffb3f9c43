//! What this replica sends the others: verdict changes (each under its
//! key with its expiry, and published), and the evidence of the records
//! requests touched (each under its key for the probe's window, and
//! published), every value and message sealed.

use std::sync::Arc;

use super::link::{Ended, Link, TIMEOUT, within};
use super::replica::Replica;
use super::seal::Kind;
use super::wire::{Batch, EvidenceBatch, EvidenceWire, Wire, unix_ms};
use crate::actor::ActorKey;
use crate::clock::Nanos;
use crate::detect::{ChangeKind, Detector, VerdictChange};
use crate::state::record::Evidence;

/// Changes sent in one pipeline and one message, at most.
pub(super) const MAX_BATCH: usize = 512;
/// Requests in flight counted into evidence sent at once, at most.
const MAX_IN_FLIGHT: u32 = 64;

/// Sends to Redis, for the other replicas.
pub(super) struct Outbox {
    replica: Arc<Replica>,
    /// Where this replica's in-flight sketch bits start (from its name).
    in_flight_from: usize,
}

impl Outbox {
    /// Sends what `replica`'s detector decides and sees.
    pub(super) fn new(replica: Arc<Replica>) -> Self {
        Self {
            in_flight_from: crate::actor::hash128((0, 0), replica.name.as_bytes()) as usize,
            replica,
        }
    }

    /// Writes a batch (each verdict under its key with its expiry; an
    /// unban deletes the key) and publishes it, each value and the message
    /// sealed.
    pub(super) async fn send(
        &self,
        conn: &mut Link,
        changes: &[VerdictChange],
    ) -> Result<(), Ended> {
        if changes.is_empty() {
            return Ok(());
        }
        let t = unix_ms();
        let wires: Vec<Wire> = changes
            .iter()
            .map(|c| Wire::from_change(c, &self.replica.seal, t))
            .collect();
        let mut cmds = Vec::with_capacity(changes.len() + 1);
        for (c, w) in changes.iter().zip(&wires) {
            let key = self.replica.names.verdict(&c.actor);
            match c.kind {
                ChangeKind::Allow => cmds.push(redis::Cmd::del(key)),
                _ => {
                    let ms = c.remaining.div_ceil(1_000_000).max(1);
                    let value = serde_json::to_string(w).unwrap_or_default();
                    let value = self.replica.seal.seal(Kind::Value, &key, &value);
                    cmds.push(set_px(key, value, ms));
                }
            }
        }
        let message = serde_json::to_string(&Batch {
            from: self.replica.name.clone(),
            t,
            changes: wires,
        })
        .unwrap_or_default();
        let channel = self.replica.names.channel();
        let message = self.replica.seal.seal(Kind::Message, &channel, &message);
        cmds.push(redis::Cmd::publish(channel, message));
        within(TIMEOUT, "a write", conn.exec(cmds)).await
    }

    /// Sends what this replica saw of the `touched` records (those touched
    /// since the last sync, or `at_once`: records at the level to share
    /// at once, with what is in flight, marked hot): each under its own key
    /// with the probe's window as expiry, and one message to the others,
    /// all sealed.
    pub(super) async fn send_evidence(
        &self,
        conn: &mut Link,
        touched: Vec<(ActorKey, u8)>,
        at_once: bool,
    ) -> Result<(), Ended> {
        let Some(core) = self.replica.core() else {
            return Err(Ended::Closed);
        };
        let now = self.replica.now();
        let t = unix_ms();
        let mut items = Vec::with_capacity(touched.len());
        for (key, slot) in touched {
            if let Some((mut ev, probe, window)) = core.evidence_of(key, slot, now) {
                if at_once {
                    self.with_in_flight(&core, key, slot, now, &mut ev);
                }
                if !ev.is_empty() {
                    let mut w = EvidenceWire::new(&key, &probe, &ev, window, &self.replica.seal, t);
                    w.h = at_once;
                    items.push((key, w));
                }
            }
        }
        drop(core);
        let channel = self.replica.names.evidence_channel();
        for chunk in items.chunks(MAX_BATCH) {
            let mut cmds = Vec::with_capacity(chunk.len() + 1);
            for (actor, w) in chunk {
                let key = self.replica.names.evidence(actor, &w.p, &self.replica.name);
                let value = serde_json::to_string(w).unwrap_or_default();
                let value = self.replica.seal.seal(Kind::Value, &key, &value);
                cmds.push(set_px(key, value, w.w.max(1)));
            }
            let message = serde_json::to_string(&EvidenceBatch {
                from: self.replica.name.clone(),
                t,
                items: chunk.iter().map(|(_, w)| w.clone_wire()).collect(),
            })
            .unwrap_or_default();
            let message = self.replica.seal.seal(Kind::Message, &channel, &message);
            cmds.push(redis::Cmd::publish(channel.clone(), message));
            within(TIMEOUT, "a write", conn.exec(cmds)).await?;
        }
        Ok(())
    }

    /// Counts the requests of `key` still in flight here (at most
    /// [`MAX_IN_FLIGHT`]) into `ev` as new targets with the worst answer (a
    /// foreign object where foreign objects are the tell, else a miss),
    /// as this replica's own pre-check counts them: the others then refuse
    /// what would cross with them, as this one does. Each is a sketch bit
    /// the record has not set, picked from this replica's own sequence (so
    /// that two replicas' do not coincide); the next send replaces them by
    /// what the answers brought.
    fn with_in_flight(
        &self,
        core: &Detector,
        key: ActorKey,
        slot: u8,
        now: Nanos,
        ev: &mut Evidence,
    ) {
        let policy = core.policy();
        let Some(probe) = policy.by_slot(slot) else {
            return;
        };
        let pending = core
            .store
            .read(&(key, slot), |r| r.pending_at(now, probe.window))
            .unwrap_or(0)
            .min(MAX_IN_FLIGHT);
        let bits = ev.bits.len() * 64;
        let mut bit = self.in_flight_from % bits;
        let mut added: u16 = 0;
        for _ in 0..bits {
            if u32::from(added) >= pending {
                break;
            }
            let (word, mask) = (bit / 64, 1u64 << (bit % 64));
            if ev.bits[word] & mask == 0 {
                ev.bits[word] |= mask;
                added += 1;
            }
            // An odd stride visits every bit once.
            bit = (bit + 97) % bits;
        }
        let c = &mut ev.counts;
        c.requests = c.requests.saturating_add(added);
        c.targets = c.targets.saturating_add(added);
        if probe.watch_foreign {
            c.hits = c.hits.saturating_add(added);
        } else {
            c.misses = c.misses.saturating_add(added);
        }
    }
}

/// `SET key value PX ms`.
fn set_px(key: String, value: String, ms: u64) -> redis::Cmd {
    let mut c = redis::cmd("SET");
    c.arg(key).arg(value).arg("PX").arg(ms);
    c
}
