//! What comes from the other replicas: their messages as they arrive (on
//! a task of its own: a send awaiting Redis never holds them back), and
//! what Redis holds, read when a connection is made and every few
//! seconds. Nothing is applied that is not authentic; a message must
//! also be fresh and not seen before.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::link::{Ended, Link};
use super::merge::{bounded, keep_evidence};
use super::replica::Replica;
use super::seal::Kind;
use super::wire::{Batch, Envelope, EvidenceBatch, EvidenceWire, Wire, unix_ms};
use crate::clock::Span;
use crate::detect::Detector;

/// Verdict keys read per load, at most (the table holds no more anyway).
const MAX_LOAD: usize = 200_000;
/// A message sent longer ago than this (ms, by the sender's wall clock
/// against this replica's: replicas' clocks must agree within it) is
/// dropped; within it, one seen before is dropped.
const FRESH_MS: u64 = 30_000;
/// Messages remembered to drop a replay, at most (16 bytes of tag and a
/// time each). Beyond it (only replicas can mint new messages) a message is
/// applied without being remembered.
const MAX_SEEN: usize = 1 << 18;

/// What comes from the others, applied as it arrives; kept across
/// reconnects (what it has seen is still dropped as a replay).
pub(super) struct Inbox {
    replica: Arc<Replica>,
    /// The messages seen in the last `FRESH_MS` (the start of their tag,
    /// when sent), to drop a replay.
    seen: HashMap<u128, u64>,
    /// When `seen` was last purged (ms since the epoch).
    purged: u64,
}

impl Inbox {
    /// Applies to `replica`'s detector what the others send.
    pub(super) fn new(replica: Arc<Replica>) -> Self {
        Self {
            replica,
            seen: HashMap::new(),
            purged: 0,
        }
    }

    /// Applies what comes on the subscription until it ends. A load holds
    /// the inbox meanwhile (messages wait, as they did before), so that a
    /// newer message is never undone by an older value read by a load.
    pub(super) async fn run(
        inbox: Arc<tokio::sync::Mutex<Inbox>>,
        messages: impl futures_util::Stream<Item = redis::Msg>,
    ) {
        let mut messages = std::pin::pin!(messages);
        while let Some(m) = messages.next().await {
            let mut inbox = inbox.lock().await;
            if m.get_channel_name().ends_with(":evidence") {
                inbox.received_evidence(m.get_payload_bytes());
            } else {
                inbox.received(m.get_payload_bytes());
            }
        }
    }

    /// The body of a message on `channel` if it is authentic, fresh and
    /// not seen before; otherwise `None`, counted.
    fn admit_message<'a>(&mut self, channel: &str, payload: &'a [u8]) -> Option<&'a [u8]> {
        let Some((id, body)) = self.replica.seal.open(Kind::Message, channel, payload) else {
            self.replica.reject("unauthenticated");
            return None;
        };
        Some(body).filter(|_| self.first_seen(id))
    }

    /// Whether a message is new: `false` (counted) for a replay.
    fn first_seen(&mut self, id: u128) -> bool {
        let now = unix_ms();
        if self.seen.contains_key(&id) {
            self.replica.reject("replayed");
            return false;
        }
        if self.seen.len() >= MAX_SEEN && now.saturating_sub(self.purged) >= 1_000 {
            self.purged = now;
            self.seen
                .retain(|_, t| t.saturating_add(2 * FRESH_MS) >= now);
        }
        if self.seen.len() < MAX_SEEN {
            self.seen.insert(id, now);
        }
        true
    }

    /// Whether a message sent at `t` (ms since the epoch) is recent
    /// enough to apply; `false` is counted.
    fn fresh(&self, t: u64) -> bool {
        let now = unix_ms();
        let ok = t.saturating_add(FRESH_MS) >= now && t <= now.saturating_add(FRESH_MS);
        if !ok {
            self.replica.reject("stale");
        }
        ok
    }

    /// The batch a message on `channel` carries, and the detector to apply
    /// it to: `None` for a message not admitted or malformed (counted),
    /// this replica's own or stale, or when the guard is gone.
    fn opened<T: Envelope + DeserializeOwned>(
        &mut self,
        channel: &str,
        payload: &[u8],
    ) -> Option<(T, Arc<Detector>)> {
        let body = self.admit_message(channel, payload)?;
        let Ok(batch) = serde_json::from_slice::<T>(body) else {
            self.replica.reject("malformed");
            return None;
        };
        if batch.sender() == self.replica.name || !self.fresh(batch.sent_ms()) {
            return None;
        }
        let core = self.replica.core()?;
        Some((batch, core))
    }

    /// Keeps evidence another replica sent.
    fn received_evidence(&mut self, payload: &[u8]) {
        let channel = self.replica.names.evidence_channel();
        let Some((batch, core)) = self.opened::<EvidenceBatch>(&channel, payload) else {
            return;
        };
        let from = crate::actor::hash128((0, 0), batch.from.as_bytes()) as u64;
        let now = self.replica.now();
        for w in &batch.items {
            match w.parts(&self.replica.seal) {
                Some((actor, probe, ev, valid)) => {
                    keep_evidence(&core, (actor, probe), from, ev, valid, now, w.h);
                }
                None => self.replica.reject("malformed"),
            }
        }
    }

    /// Applies a message from another replica.
    fn received(&mut self, payload: &[u8]) {
        let channel = self.replica.names.channel();
        let Some((batch, core)) = self.opened::<Batch>(&channel, payload) else {
            return;
        };
        let now = self.replica.now();
        for w in &batch.changes {
            let Some(c) = w.to_change(&self.replica.seal, None) else {
                self.replica.reject("malformed");
                continue;
            };
            if let Some(c) = bounded(&core, &self.replica.status, c) {
                core.apply(&c, now.get());
            }
        }
    }

    /// A value read from Redis under `key`, if it is authentic and well
    /// formed; otherwise `None`, counted.
    fn open_value<T: DeserializeOwned>(&self, key: &str, value: &str) -> Option<T> {
        let Some((_, value)) = self.replica.seal.open(Kind::Value, key, value.as_bytes()) else {
            self.replica.reject("unauthenticated");
            return None;
        };
        let Ok(w) = serde_json::from_slice::<T>(value) else {
            self.replica.reject("malformed");
            return None;
        };
        Some(w)
    }

    /// Reads every live verdict from Redis and applies it.
    pub(super) async fn load(&self, conn: &mut Link) -> Result<(), Ended> {
        let Some(core) = self.replica.core() else {
            return Err(Ended::Closed);
        };
        let pattern = self.replica.names.verdict_pattern();
        let unix = unix_ms();
        conn.for_each_live(
            &pattern,
            MAX_LOAD,
            |_| true,
            |key, value, ttl_ms| {
                let Some(w) = self.open_value::<Wire>(key, value) else {
                    return;
                };
                // Redis's expiry, never past what the value itself says.
                let left = ttl_ms.min(w.left_ms(unix));
                if left == 0 {
                    return;
                }
                let Some(c) = w.to_change(&self.replica.seal, Some(left)) else {
                    self.replica.reject("malformed");
                    return;
                };
                if let Some(c) = bounded(&core, &self.replica.status, c) {
                    core.apply(&c, self.replica.now().get());
                }
            },
        )
        .await
    }

    /// Reads the other replicas' live evidence from Redis and keeps it.
    pub(super) async fn load_evidence(&self, conn: &mut Link) -> Result<(), Ended> {
        let Some(core) = self.replica.core() else {
            return Err(Ended::Closed);
        };
        let pattern = self.replica.names.evidence_pattern();
        // The replica is the last part of the key; this one's own are skipped.
        let others = |key: &str| key.rsplit(':').next() != Some(self.replica.name.as_str());
        let unix = unix_ms();
        conn.for_each_live(&pattern, MAX_LOAD, others, |key, value, ttl_ms| {
            let Some(w) = self.open_value::<EvidenceWire>(key, value) else {
                return;
            };
            // Redis's expiry, never past what the value itself says.
            let left = ttl_ms.min(w.left_ms(unix));
            let from = key.rsplit(':').next().unwrap_or_default();
            let from = crate::actor::hash128((0, 0), from.as_bytes()) as u64;
            match w.parts(&self.replica.seal) {
                Some((actor, probe, ev, _)) if left > 0 => {
                    let now = self.replica.now();
                    let valid = Span::from_millis(left);
                    keep_evidence(&core, (actor, probe), from, ev, valid, now, w.h);
                }
                Some(_) => {}
                None => self.replica.reject("malformed"),
            }
        })
        .await
    }
}
