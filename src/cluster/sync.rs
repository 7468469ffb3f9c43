//! The background task that shares verdicts through Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::link::{Link, Source};
use super::seal::{Kind, Seal};
use super::wire::{Batch, EvidenceBatch, EvidenceWire, Names, Wire};
use crate::actor::ActorKey;
use crate::clock::SharedClock;
use crate::config::{ClusterConfig, ConfigError};
use crate::detect::{ChangeKind, Detector, VerdictChange};
use crate::state::VerdictReason;
use crate::state::record::Evidence;
use crate::state::store::StoreKey;

/// Changes waiting for the task, at most; more are dropped and counted.
const CHANNEL: usize = 4096;
/// Records touched between two syncs that are sent, at most (the queue of
/// notices holds as many).
const MAX_TOUCHED: usize = 65_536;
/// Changes sent in one pipeline and one message, at most.
const MAX_BATCH: usize = 512;
/// Notices of records to send at once (see [`AT_ONCE`]) waiting for the
/// task, at most; more go with the next sync, or are dropped and counted.
const URGENT: usize = 1024;
/// A record whose last score reaches this share of its probe's
/// `throttle_at` is sent to the other replicas at once, not at the next
/// sync: a scraper round-robined over `n` replicas shows each of them a
/// `1/n` share of its evidence, so for the shared view to reach the
/// throttle level before any one replica's own does (and to stop a scraper
/// faster than the sync interval near one replica's bound), each must send
/// from well below it. A third covers three replicas evenly, more with
/// the cascade: a record that has counted another replica's evidence
/// reaches the level sooner, and is then sent at once too.
const AT_ONCE: f64 = 1.0 / 3.0;
/// Requests in flight counted into evidence sent at once, at most.
const MAX_IN_FLIGHT: u32 = 64;
/// All live verdicts are read again this often, for messages lost while
/// a replica was away.
const RESYNC: Duration = Duration::from_secs(5);
/// How long a Redis command may take before the connection is given up:
/// a paused or overloaded Redis is met like a dead one.
const TIMEOUT: Duration = Duration::from_millis(500);
/// Reconnect backoff: from, to.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
/// A lost connection is warned about at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);
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

use crate::metrics::{
    CLUSTER_DEGRADED as DEGRADED, CLUSTER_DROPPED as DROPPED, CLUSTER_REJECTED as REJECTED,
};

/// Milliseconds since the Unix epoch, by the wall clock (shared by the
/// replicas, unlike the guard's clock, whose origin is each one's own).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64)
}

/// What the handle can read of the sync.
#[derive(Debug, Default)]
pub(crate) struct Status {
    degraded: AtomicBool,
    dropped: AtomicU64,
}

impl Status {
    pub(crate) fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Counts a message or value from Redis not applied (see [`REJECTED`]).
    fn reject(&self, why: &'static str) {
        metrics::counter!(REJECTED, "reason" => why).increment(1);
    }

    fn set_degraded(&self, on: bool) {
        self.degraded.store(on, Ordering::Relaxed);
        metrics::gauge!(DEGRADED).set(if on { 1.0 } else { 0.0 });
    }
}

/// Starts sharing `core`'s verdicts as `config` says, on the current tokio
/// runtime. `secret` is the shared session key: every key that names,
/// authenticates and encrypts what goes to Redis derives from it.
pub(crate) fn start(
    core: &Arc<Detector>,
    clock: SharedClock,
    config: &ClusterConfig,
    secret: (u64, u64),
) -> Result<Arc<Status>, ConfigError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        ConfigError::invalid(
            "cluster",
            "",
            "the cluster sync runs on a tokio runtime: build the guard inside one",
        )
    })?;
    let source = Source::new(config, TIMEOUT)?;
    let (tx, rx) = mpsc::channel::<VerdictChange>(CHANNEL);
    let status = Arc::new(Status::default());
    // Degraded until the first connection works.
    status.set_degraded(true);
    let on_full = status.clone();
    core.set_listener(move |c: &VerdictChange| {
        if tx.try_send(c.clone()).is_err() {
            on_full.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(DROPPED).increment(1);
        }
    });
    let (touched_tx, touched_rx) = mpsc::channel::<Notice>(MAX_TOUCHED / 4);
    let (urgent_tx, urgent_rx) = mpsc::channel::<Notice>(URGENT);
    let urgent_tx_asked = urgent_tx.clone();
    let on_full = status.clone();
    let weak = Arc::downgrade(core);
    core.set_touched(move |keys, slot| {
        // A record at the level to share at once wakes the task (the
        // channel is its wake-up); everything else waits for the tick,
        // and so does an urgent one that finds the channel full.
        let urgent = weak
            .upgrade()
            .is_some_and(|core| at_once(&core, keys, slot));
        if urgent && urgent_tx.try_send((*keys, slot)).is_ok() {
            return;
        }
        if touched_tx.try_send((*keys, slot)).is_err() {
            on_full.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(DROPPED).increment(1);
        }
    });
    // A request here of an actor another replica sent at once: this
    // replica's evidence of it goes at once too.
    let on_full = status.clone();
    let asked_tx = urgent_tx_asked;
    core.remote.set_asked(move |key: StoreKey| {
        if asked_tx
            .try_send(([Some(key.actor()), None, None, None], key.probe()))
            .is_err()
        {
            on_full.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(DROPPED).increment(1);
        }
    });
    let replica = config
        .replica_id
        .clone()
        .unwrap_or_else(|| format!("{:016x}", crate::detect::random_key().0));
    let seal = Arc::new(Seal::derive(secret));
    let names = Arc::new(Names::new(&config.key_prefix, seal.names()));
    let inbox = Inbox {
        core: Arc::downgrade(core),
        clock: clock.clone(),
        names: names.clone(),
        seal: seal.clone(),
        seen: HashMap::new(),
        purged: 0,
        replica: replica.clone(),
        status: status.clone(),
    };
    let task = Task {
        core: Arc::downgrade(core),
        clock,
        source,
        turn: 0,
        names,
        seal,
        inbox: Arc::new(tokio::sync::Mutex::new(inbox)),
        replica: replica.clone(),
        interval: Duration::from_millis(config.sync_interval_ms),
        url: Source::describe(config),
        status: status.clone(),
        last_warning: None,
        pending: Vec::new(),
        touched: std::collections::HashSet::new(),
        touched_rx,
        urgent_rx,
        in_flight_from: crate::actor::hash128((0, 0), replica.as_bytes()) as usize,
    };
    runtime.spawn(task.run(rx));
    Ok(status)
}

struct Task {
    core: Weak<Detector>,
    clock: SharedClock,
    source: Source,
    /// Connections made: which cluster node is asked for the subscription.
    turn: usize,
    names: Arc<Names>,
    /// The keys of the MACs and of the actors' encryption.
    seal: Arc<Seal>,
    /// What comes from the others (kept across reconnects: what it has
    /// seen is still dropped as a replay).
    inbox: Arc<tokio::sync::Mutex<Inbox>>,
    replica: String,
    interval: Duration,
    url: String,
    status: Arc<Status>,
    last_warning: Option<Instant>,
    /// Unbans made while Redis was away, sent after the reconnect (the
    /// live verdicts are pushed then anyway).
    pending: Vec<VerdictChange>,
    /// Records requests updated since the last sync, whose evidence goes
    /// to the other replicas.
    touched: std::collections::HashSet<(ActorKey, u8)>,
    touched_rx: mpsc::Receiver<Notice>,
    /// Records to send at once (see [`AT_ONCE`]).
    urgent_rx: mpsc::Receiver<Notice>,
    /// Where this replica's in-flight sketch bits start (from its name).
    in_flight_from: usize,
}

/// Why a connection ended.
enum Ended {
    /// The guard is gone: the task ends.
    Closed,
    /// Redis failed: reconnect.
    Failed(String),
}

impl From<redis::RedisError> for Ended {
    fn from(e: redis::RedisError) -> Self {
        Ended::Failed(e.to_string())
    }
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<VerdictChange>) {
        let mut backoff = BACKOFF.0;
        loop {
            let began = Instant::now();
            match self.connected(&mut rx).await {
                Ended::Closed => return,
                Ended::Failed(why) => {
                    self.status.set_degraded(true);
                    if self.last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                        self.last_warning = Some(Instant::now());
                        tracing::warn!(
                            target: "enumguard",
                            redis = %self.url,
                            error = %why,
                            "enumguard cluster: no working Redis connection; detection goes on locally, reconnecting"
                        );
                    }
                }
            }
            // A connection that worked a while starts the backoff afresh.
            if began.elapsed() > BACKOFF.1 {
                backoff = BACKOFF.0;
            }
            // Keep draining while waiting, so that the guard's going is seen.
            let wait = tokio::time::sleep(backoff);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    c = rx.recv() => match c {
                        None => return,
                        // Kept for after the reconnect: the live ones are
                        // pushed then anyway; an unban is sent as is.
                        Some(c) if c.kind == ChangeKind::Allow => self.pending.push(c),
                        Some(_) => {}
                    },
                }
            }
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }

    fn core(&self) -> Option<Arc<Detector>> {
        self.core.upgrade()
    }

    async fn connect(&mut self) -> Result<(Link, redis::aio::PubSub), Ended> {
        let conn = tokio::time::timeout(TIMEOUT * 2, self.source.connect(TIMEOUT))
            .await
            .map_err(|_| Ended::Failed("connect timed out".into()))??;
        self.turn = self.turn.wrapping_add(1);
        let mut pubsub = tokio::time::timeout(TIMEOUT * 2, self.source.pubsub(self.turn))
            .await
            .map_err(|_| Ended::Failed("subscribe timed out".into()))??;
        let channels = [self.names.channel(), self.names.evidence_channel()];
        tokio::time::timeout(TIMEOUT, pubsub.subscribe(&channels[..]))
            .await
            .map_err(|_| Ended::Failed("subscribe timed out".into()))??;
        Ok((conn, pubsub))
    }

    async fn connected(&mut self, rx: &mut mpsc::Receiver<VerdictChange>) -> Ended {
        let (mut conn, pubsub) = match self.connect().await {
            Ok(c) => c,
            Err(e) => return e,
        };
        let messages = pubsub.into_on_message();
        // What this replica holds goes up (made while Redis was away, or
        // before this replica knew of it), then what Redis holds comes down.
        let Some(core) = self.core() else {
            return Ended::Closed;
        };
        let mut held = core.live_verdicts(self.clock.now());
        held.append(&mut self.pending);
        drop(core);
        for chunk in held.chunks(MAX_BATCH) {
            if let Err(e) = self.send(&mut conn, chunk).await {
                return e;
            }
        }
        if let Err(e) = self.load(&mut conn).await {
            return e;
        }
        // And what the others saw lately (evidence sent while this replica
        // was away or not yet started).
        if let Err(e) = self.load_evidence(&mut conn).await {
            return e;
        }
        // From here what comes is applied as it comes, on its own task.
        let mut receiving = Receiving(tokio::spawn(Inbox::run(self.inbox.clone(), messages)));
        self.status.set_degraded(false);
        tracing::info!(target: "enumguard", redis = %self.url, replica = %self.replica, "enumguard cluster: connected");
        let mut flush = tokio::time::interval(self.interval);
        let mut resync = tokio::time::interval(RESYNC);
        resync.reset();
        let mut batch: Vec<VerdictChange> = Vec::new();
        loop {
            tokio::select! {
                c = rx.recv() => match c {
                    None => return Ended::Closed,
                    Some(c) => {
                        // A verdict goes at once, with those queued behind
                        // it: a scraper faster than the sync interval meets
                        // it on the other replicas within a round trip.
                        batch.push(c);
                        while batch.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(c) => batch.push(c),
                                Err(_) => break,
                            }
                        }
                        if let Err(e) = self.send(&mut conn, &batch).await {
                            self.keep_allows(&batch);
                            return e;
                        }
                        batch.clear();
                    }
                },
                _ = flush.tick() => {
                    // Notices are taken at the tick, not as they come: the
                    // request path then never wakes this task.
                    self.drain_notices();
                    if !batch.is_empty() {
                        if let Err(e) = self.send(&mut conn, &batch).await {
                            self.keep_allows(&batch);
                            return e;
                        }
                        batch.clear();
                    }
                    if !self.touched.is_empty() {
                        let touched: Vec<(ActorKey, u8)> = self.touched.drain().collect();
                        if let Err(e) = self.send_evidence(&mut conn, touched, false).await {
                            return e;
                        }
                    }
                }
                // A record at the level to share at once: it goes now, with
                // every other such record queued meanwhile (while a send
                // awaits Redis, those that come are taken by the next one).
                n = self.urgent_rx.recv() => {
                    let Some(first) = n else {
                        return Ended::Closed;
                    };
                    let urgent = self.drain_urgent(first);
                    if let Err(e) = self.send_evidence(&mut conn, urgent, true).await {
                        return e;
                    }
                }
                _ = &mut receiving.0 => return Ended::Failed("the subscription ended".into()),
                _ = resync.tick() => {
                    // Messages wait meanwhile (see `Inbox::run`).
                    let inbox = self.inbox.clone();
                    let _held = inbox.lock().await;
                    if let Err(e) = self.load(&mut conn).await {
                        return e;
                    }
                }
            }
        }
    }

    /// Writes a batch (each verdict under its key with its expiry; an
    /// unban deletes the key) and publishes it, each value and the message
    /// sealed.
    async fn send(&self, conn: &mut Link, changes: &[VerdictChange]) -> Result<(), Ended> {
        if changes.is_empty() {
            return Ok(());
        }
        let t = unix_ms();
        let wires: Vec<Wire> = changes
            .iter()
            .map(|c| Wire::from_change(c, &self.seal, t))
            .collect();
        let mut cmds = Vec::with_capacity(changes.len() + 1);
        for (c, w) in changes.iter().zip(&wires) {
            let key = self.names.verdict(&c.actor);
            match c.kind {
                ChangeKind::Allow => cmds.push(redis::Cmd::del(key)),
                _ => {
                    let ms = c.remaining.div_ceil(1_000_000).max(1);
                    let value = serde_json::to_string(w).unwrap_or_default();
                    let value = self.seal.seal(Kind::Value, &key, &value);
                    cmds.push(set_px(key, value, ms));
                }
            }
        }
        let message = serde_json::to_string(&Batch {
            from: self.replica.clone(),
            t,
            changes: wires,
        })
        .unwrap_or_default();
        let channel = self.names.channel();
        let message = self.seal.seal(Kind::Message, &channel, &message);
        cmds.push(redis::Cmd::publish(channel, message));
        tokio::time::timeout(TIMEOUT, conn.exec(cmds))
            .await
            .map_err(|_| Ended::Failed("a write timed out".into()))??;
        Ok(())
    }

    /// Sends what this replica saw of the `touched` records (those touched
    /// since the last sync, or `at_once`: records at the level to share
    /// at once, with what is in flight, marked hot): each under its own key
    /// with the probe's window as expiry, and one message to the others,
    /// all sealed.
    async fn send_evidence(
        &mut self,
        conn: &mut Link,
        touched: Vec<(ActorKey, u8)>,
        at_once: bool,
    ) -> Result<(), Ended> {
        let Some(core) = self.core() else {
            return Err(Ended::Closed);
        };
        let now = self.clock.now();
        let t = unix_ms();
        let mut items = Vec::with_capacity(touched.len());
        for (key, slot) in touched {
            if let Some((mut ev, probe, window)) = core.evidence_of(key, slot, now) {
                if at_once {
                    self.with_in_flight(&core, key, slot, now, &mut ev);
                }
                if !ev.is_empty() {
                    let mut w = EvidenceWire::new(&key, &probe, &ev, window, &self.seal, t);
                    w.h = at_once;
                    items.push((key, w));
                }
            }
        }
        drop(core);
        let channel = self.names.evidence_channel();
        for chunk in items.chunks(MAX_BATCH) {
            let mut cmds = Vec::with_capacity(chunk.len() + 1);
            for (actor, w) in chunk {
                let key = self.names.evidence(actor, &w.p, &self.replica);
                let value = serde_json::to_string(w).unwrap_or_default();
                let value = self.seal.seal(Kind::Value, &key, &value);
                cmds.push(set_px(key, value, w.w.max(1)));
            }
            let message = serde_json::to_string(&EvidenceBatch {
                from: self.replica.clone(),
                t,
                items: chunk.iter().map(|(_, w)| w.clone_wire()).collect(),
            })
            .unwrap_or_default();
            let message = self.seal.seal(Kind::Message, &channel, &message);
            cmds.push(redis::Cmd::publish(channel.clone(), message));
            tokio::time::timeout(TIMEOUT, conn.exec(cmds))
                .await
                .map_err(|_| Ended::Failed("a write timed out".into()))??;
        }
        Ok(())
    }

    /// Reads the other replicas' live evidence from Redis and keeps it.
    async fn load_evidence(&self, conn: &mut Link) -> Result<(), Ended> {
        let Some(core) = self.core() else {
            return Err(Ended::Closed);
        };
        let pattern = self.names.evidence_pattern();
        // The replica is the last part of the key; this one's own are skipped.
        let others = |key: &str| key.rsplit(':').next() != Some(self.replica.as_str());
        let unix = unix_ms();
        self.for_each_live(conn, &pattern, others, |key, value, ttl_ms| {
            let Some((_, value)) = self.seal.open(Kind::Value, key, value.as_bytes()) else {
                self.status.reject("unauthenticated");
                return;
            };
            let Ok(w) = serde_json::from_slice::<EvidenceWire>(value) else {
                self.status.reject("malformed");
                return;
            };
            // Redis's expiry, never past what the value itself says.
            let left = ttl_ms.min(w.left_ms(unix));
            let from = key.rsplit(':').next().unwrap_or_default();
            let from = crate::actor::hash128((0, 0), from.as_bytes()) as u64;
            match w.parts(&self.seal) {
                Some((actor, probe, ev, _)) if left > 0 => {
                    let now = self.clock.now();
                    let valid = left.saturating_mul(1_000_000);
                    keep_evidence(&core, (actor, probe), from, ev, valid, now, w.h);
                }
                Some(_) => {}
                None => self.status.reject("malformed"),
            }
        })
        .await
    }

    /// Reads every live verdict from Redis and applies it.
    async fn load(&self, conn: &mut Link) -> Result<(), Ended> {
        let Some(core) = self.core() else {
            return Err(Ended::Closed);
        };
        let pattern = self.names.verdict_pattern();
        let unix = unix_ms();
        self.for_each_live(
            conn,
            &pattern,
            |_| true,
            |key, value, ttl_ms| {
                let Some((_, value)) = self.seal.open(Kind::Value, key, value.as_bytes()) else {
                    self.status.reject("unauthenticated");
                    return;
                };
                let Ok(w) = serde_json::from_slice::<Wire>(value) else {
                    self.status.reject("malformed");
                    return;
                };
                // Redis's expiry, never past what the value itself says.
                let left = ttl_ms.min(w.left_ms(unix));
                if left == 0 {
                    return;
                }
                let Some(c) = w.to_change(&self.seal, Some(left)) else {
                    self.status.reject("malformed");
                    return;
                };
                if let Some(c) = bounded(&core, &self.status, c) {
                    core.apply(&c, self.clock.now());
                }
            },
        )
        .await
    }

    /// Calls `f(key, value, remaining ms)` for each live key matching
    /// `pattern` that `wanted` keeps (at most `MAX_LOAD` keys), scanning
    /// and reading in batches.
    async fn for_each_live(
        &self,
        conn: &mut Link,
        pattern: &str,
        wanted: impl Fn(&str) -> bool,
        mut f: impl FnMut(&str, &str, u64),
    ) -> Result<(), Ended> {
        let nodes = tokio::time::timeout(TIMEOUT, conn.nodes())
            .await
            .map_err(|_| Ended::Failed("reading the cluster's nodes timed out".into()))??;
        let mut seen = 0usize;
        // Every node holds its own keys: each is scanned to its end.
        for node in &nodes {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys) =
                    tokio::time::timeout(TIMEOUT, conn.scan(node, cursor, pattern, 1000))
                        .await
                        .map_err(|_| Ended::Failed("a scan timed out".into()))??;
                let keys_wanted: Vec<&String> = keys.iter().filter(|k| wanted(k)).collect();
                if !keys_wanted.is_empty() {
                    let values = tokio::time::timeout(TIMEOUT, conn.read(&keys_wanted))
                        .await
                        .map_err(|_| Ended::Failed("a load timed out".into()))??;
                    for (k, v) in keys_wanted.iter().zip(values) {
                        if let Some((value, ttl)) = v {
                            f(k, &value, ttl);
                        }
                    }
                }
                seen += keys.len();
                cursor = next;
                if seen >= MAX_LOAD {
                    return Ok(());
                }
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// What comes from the other replicas, applied as it arrives on a task of
/// its own: a send awaiting Redis never holds it back.
struct Inbox {
    core: Weak<Detector>,
    clock: SharedClock,
    names: Arc<Names>,
    seal: Arc<Seal>,
    /// The messages seen in the last `FRESH_MS` (the start of their tag,
    /// when sent), to drop a replay.
    seen: HashMap<u128, u64>,
    /// When `seen` was last purged (ms since the epoch).
    purged: u64,
    replica: String,
    status: Arc<Status>,
}

impl Inbox {
    /// Applies what comes on the subscription until it ends. A load holds
    /// the inbox meanwhile (messages wait, as they did before), so that a
    /// newer message is never undone by an older value read by a load.
    async fn run(
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
        let Some((id, body)) = self.seal.open(Kind::Message, channel, payload) else {
            self.status.reject("unauthenticated");
            return None;
        };
        Some(body).filter(|_| self.first_seen(id))
    }

    /// Whether a message is new: `false` (counted) for a replay.
    fn first_seen(&mut self, id: u128) -> bool {
        let now = unix_ms();
        if self.seen.contains_key(&id) {
            self.status.reject("replayed");
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
            self.status.reject("stale");
        }
        ok
    }

    /// Keeps evidence another replica sent.
    fn received_evidence(&mut self, payload: &[u8]) {
        let channel = self.names.evidence_channel();
        let Some(body) = self.admit_message(&channel, payload) else {
            return;
        };
        let Ok(batch) = serde_json::from_slice::<EvidenceBatch>(body) else {
            self.status.reject("malformed");
            return;
        };
        if batch.from == self.replica || !self.fresh(batch.t) {
            return;
        }
        let Some(core) = self.core.upgrade() else {
            return;
        };
        let from = crate::actor::hash128((0, 0), batch.from.as_bytes()) as u64;
        let now = self.clock.now();
        for w in &batch.items {
            match w.parts(&self.seal) {
                Some((actor, probe, ev, valid)) => {
                    keep_evidence(&core, (actor, probe), from, ev, valid, now, w.h);
                }
                None => self.status.reject("malformed"),
            }
        }
    }

    /// Applies a message from another replica.
    fn received(&mut self, payload: &[u8]) {
        let channel = self.names.channel();
        let Some(body) = self.admit_message(&channel, payload) else {
            return;
        };
        let Ok(batch) = serde_json::from_slice::<Batch>(body) else {
            self.status.reject("malformed");
            return;
        };
        if batch.from == self.replica || !self.fresh(batch.t) {
            return;
        }
        let Some(core) = self.core.upgrade() else {
            return;
        };
        let now = self.clock.now();
        for w in &batch.changes {
            let Some(c) = w.to_change(&self.seal, None) else {
                self.status.reject("malformed");
                continue;
            };
            if let Some(c) = bounded(&core, &self.status, c) {
                core.apply(&c, now);
            }
        }
    }
}

/// Aborts the task receiving messages when a connection ends.
struct Receiving(tokio::task::JoinHandle<()>);

impl Drop for Receiving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A remote change as this replica applies it: held at most
/// `blocks.max_secs` (past the message or load that brought it; the
/// next load extends it while Redis still holds it); an operator's ban
/// of an actor the table does not hold yet only while the table has
/// room, since such a ban is never evicted (`None`, counted: the next
/// load tries again).
fn bounded(core: &Detector, status: &Status, mut c: VerdictChange) -> Option<VerdictChange> {
    let policy = core.policy();
    c.remaining = c.remaining.min(policy.block_max);
    if c.reason == VerdictReason::Manual
        && c.kind != ChangeKind::Allow
        && core.verdicts.get(&c.actor).is_none()
        && core.verdicts.len() >= policy.config().limits.max_verdicts
    {
        status.reject("full");
        return None;
    }
    Some(c)
}

/// `SET key value PX ms`.
fn set_px(key: String, value: String, ms: u64) -> redis::Cmd {
    let mut c = redis::cmd("SET");
    c.arg(key).arg(value).arg("PX").arg(ms);
    c
}

/// The records one request updated, on a probe slot.
type Notice = ([Option<ActorKey>; 4], u8);

/// Keeps what `replica` saw of `actor` on the probe named `probe`, as
/// [`Detector::merge_evidence`] does; `hot`: sent at once (see
/// `state/remote.rs`).
fn keep_evidence(
    core: &Detector,
    (actor, probe): (ActorKey, &str),
    replica: u64,
    ev: Evidence,
    valid: u64,
    now: u64,
    hot: bool,
) {
    if !hot {
        core.merge_evidence(actor, probe, replica, ev, valid, now);
        return;
    }
    let policy = core.policy();
    let Some(p) = policy.probes.iter().find(|p| &*p.name == probe) else {
        return;
    };
    let until = now.saturating_add(valid.min(p.window));
    core.remote
        .put_from(StoreKey::new(actor, p.slot), replica, ev, until, now, true);
}

/// Whether one of the records a request updated on probe slot `slot`
/// (their scores just set) is at the level to share at once: a record read
/// per key, no allocation, no lock beyond the store's shard.
fn at_once(core: &Detector, keys: &[Option<ActorKey>; 4], slot: u8) -> bool {
    let Some(level) = core
        .policy()
        .by_slot(slot)
        .map(|p| p.thresholds.throttle_at * AT_ONCE)
    else {
        return false;
    };
    keys.iter().flatten().any(|&key| {
        core.store
            .read(&(key, slot), |r| r.last_score() >= level)
            .unwrap_or(false)
    })
}

impl Task {
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
        now: u64,
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

    /// The records to send at once: `first` and those queued behind it (a
    /// few thousand at most), each once.
    fn drain_urgent(&mut self, first: Notice) -> Vec<(ActorKey, u8)> {
        let mut out = std::collections::HashSet::new();
        let mut add = |(keys, slot): Notice| {
            out.extend(keys.into_iter().flatten().map(|key| (key, slot)));
        };
        add(first);
        for _ in 0..URGENT {
            match self.urgent_rx.try_recv() {
                Ok(n) => add(n),
                Err(_) => break,
            }
        }
        out.into_iter().collect()
    }

    fn drain_notices(&mut self) {
        while let Ok(t) = self.touched_rx.try_recv() {
            self.note(t);
        }
    }

    fn note(&mut self, (keys, slot): Notice) {
        for key in keys.into_iter().flatten() {
            if self.touched.len() < MAX_TOUCHED {
                self.touched.insert((key, slot));
            }
        }
    }

    fn keep_allows(&mut self, batch: &[VerdictChange]) {
        self.pending.extend(
            batch
                .iter()
                .filter(|c| c.kind == ChangeKind::Allow)
                .cloned(),
        );
    }
}
