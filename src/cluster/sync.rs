//! The background task that shares verdicts through Redis: started with
//! the hooks on the request path that feed it through bounded channels
//! (verdict changes, records touched, records to send at once), it
//! connects, sends what this replica holds and loads what Redis holds,
//! then sends changes as they come and evidence at each tick or at once,
//! and reconnects with backoff when Redis fails.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::inbox::Inbox;
use super::link::{Ended, Link, Source, TIMEOUT, within};
use super::outbox::{MAX_BATCH, Outbox};
use super::replica::Replica;
use super::seal::Seal;
use super::status::Status;
use crate::actor::ActorKey;
use crate::clock::SharedClock;
use crate::config::{ClusterConfig, ConfigError};
use crate::detect::{ChangeKind, Detector, VerdictChange};
use crate::state::store::StoreKey;

/// Changes waiting for the task, at most; more are dropped and counted.
const CHANNEL: usize = 4096;
/// Records touched between two syncs that are sent, at most (the queue of
/// notices holds as many).
const MAX_TOUCHED: usize = 65_536;
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
/// All live verdicts are read again this often, for messages lost while
/// a replica was away.
const RESYNC: Duration = Duration::from_secs(5);
/// Reconnect backoff: from, to.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
/// A lost connection is warned about at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

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
            on_full.drop_one();
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
            on_full.drop_one();
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
            on_full.drop_one();
        }
    });
    let name = config
        .replica_id
        .clone()
        .unwrap_or_else(|| format!("{:016x}", crate::detect::random_key().0));
    let replica = Arc::new(Replica::new(
        Arc::downgrade(core),
        clock,
        name,
        Seal::derive(secret),
        &config.key_prefix,
        status.clone(),
    ));
    let task = Task {
        source,
        turn: 0,
        inbox: Arc::new(tokio::sync::Mutex::new(Inbox::new(replica.clone()))),
        outbox: Outbox::new(replica.clone()),
        replica,
        interval: Duration::from_millis(config.sync_interval_ms),
        url: Source::describe(config),
        last_warning: None,
        pending: Vec::new(),
        touched: HashSet::new(),
        touched_rx,
        urgent_rx,
    };
    runtime.spawn(task.run(rx));
    Ok(status)
}

struct Task {
    source: Source,
    /// Connections made: which cluster node is asked for the subscription.
    turn: usize,
    /// What comes from the others (kept across reconnects: what it has
    /// seen is still dropped as a replay).
    inbox: Arc<tokio::sync::Mutex<Inbox>>,
    /// What goes to the others.
    outbox: Outbox,
    replica: Arc<Replica>,
    interval: Duration,
    url: String,
    last_warning: Option<Instant>,
    /// Unbans made while Redis was away, sent after the reconnect (the
    /// live verdicts are pushed then anyway).
    pending: Vec<VerdictChange>,
    /// Records requests updated since the last sync, whose evidence goes
    /// to the other replicas.
    touched: HashSet<(ActorKey, u8)>,
    touched_rx: mpsc::Receiver<Notice>,
    /// Records to send at once (see [`AT_ONCE`]).
    urgent_rx: mpsc::Receiver<Notice>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<VerdictChange>) {
        let mut backoff = BACKOFF.0;
        loop {
            let began = Instant::now();
            match self.connected(&mut rx).await {
                Ended::Closed => return,
                Ended::Failed(why) => {
                    self.replica.status.set_degraded(true);
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

    async fn connect(&mut self) -> Result<(Link, redis::aio::PubSub), Ended> {
        let conn = within(TIMEOUT * 2, "connect", self.source.connect(TIMEOUT)).await?;
        self.turn = self.turn.wrapping_add(1);
        let mut pubsub = within(TIMEOUT * 2, "subscribe", self.source.pubsub(self.turn)).await?;
        let channels = [
            self.replica.names.channel(),
            self.replica.names.evidence_channel(),
        ];
        within(TIMEOUT, "subscribe", pubsub.subscribe(&channels[..])).await?;
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
        let Some(core) = self.replica.core() else {
            return Ended::Closed;
        };
        let mut held = core.live_verdicts(self.replica.now().get());
        held.append(&mut self.pending);
        drop(core);
        for chunk in held.chunks(MAX_BATCH) {
            if let Err(e) = self.outbox.send(&mut conn, chunk).await {
                return e;
            }
        }
        {
            // No message is applied yet (see `Inbox::run`).
            let inbox = self.inbox.lock().await;
            if let Err(e) = inbox.load(&mut conn).await {
                return e;
            }
            // And what the others saw lately (evidence sent while this
            // replica was away or not yet started).
            if let Err(e) = inbox.load_evidence(&mut conn).await {
                return e;
            }
        }
        // From here what comes is applied as it comes, on its own task.
        let mut receiving = Receiving(tokio::spawn(Inbox::run(self.inbox.clone(), messages)));
        self.replica.status.set_degraded(false);
        tracing::info!(target: "enumguard", redis = %self.url, replica = %self.replica.name, "enumguard cluster: connected");
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
                        if let Err(e) = self.outbox.send(&mut conn, &batch).await {
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
                        if let Err(e) = self.outbox.send(&mut conn, &batch).await {
                            self.keep_allows(&batch);
                            return e;
                        }
                        batch.clear();
                    }
                    if !self.touched.is_empty() {
                        let touched: Vec<(ActorKey, u8)> = self.touched.drain().collect();
                        if let Err(e) = self.outbox.send_evidence(&mut conn, touched, false).await {
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
                    if let Err(e) = self.outbox.send_evidence(&mut conn, urgent, true).await {
                        return e;
                    }
                }
                _ = &mut receiving.0 => return Ended::Failed("the subscription ended".into()),
                _ = resync.tick() => {
                    // Messages wait meanwhile (see `Inbox::run`).
                    let inbox = self.inbox.lock().await;
                    if let Err(e) = inbox.load(&mut conn).await {
                        return e;
                    }
                }
            }
        }
    }

    /// The records to send at once: `first` and those queued behind it (a
    /// few thousand at most), each once.
    fn drain_urgent(&mut self, first: Notice) -> Vec<(ActorKey, u8)> {
        let mut out = HashSet::new();
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

/// Aborts the task receiving messages when a connection ends.
struct Receiving(tokio::task::JoinHandle<()>);

impl Drop for Receiving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The records one request updated, on a probe slot.
type Notice = ([Option<ActorKey>; 4], u8);

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
