//! Many replicas (feature `redis`): every verdict change a replica makes is
//! written to Redis with its expiry and published; every replica applies
//! what the others publish, loads all live verdicts when it starts and
//! after every reconnect, and reloads them every few seconds in case a
//! message was lost. All Redis work runs on one background task fed by a
//! bounded channel: the request path never waits on Redis, and when the
//! channel is full a change is dropped and counted.
//!
//! Redis is not trusted: whoever can read it or publish on its channels
//! (without the shared `session_key`) learns no actor and changes no
//! verdict. Every message and stored value is authenticated (HMAC-SHA256,
//! keyed from the `session_key`; see `seal.rs`) and anything else is
//! dropped and counted (`enumguard_cluster_rejected_total`); the actor in
//! each value is encrypted; messages older than 30 s or seen before are
//! dropped; a remote verdict is held at most `blocks.max_secs` past the
//! last message or load that confirmed it.
//!
//! | file | role |
//! |---|---|
//! | `seal.rs` | the keys derived from the `session_key`: the MAC of messages and values, the actor's encryption |
//! | `wire.rs` | key names (keyed hashes, never an address or a token) and the message format |
//! | `link.rs` | one Redis server or a Redis Cluster: batches, per-node scans, the subscription; every operation within its time |
//! | `status.rs` | what the handle reads (degraded, dropped) and what is counted as rejected |
//! | `replica.rs` | this replica as the task, the inbox and the outbox share it: detector, clock, name, names and keys, status |
//! | `outbox.rs` | publishing: verdict changes, and evidence at the tick or at once (with what is in flight) |
//! | `inbox.rs` | receiving: messages applied as they arrive on a task of their own (authentic, fresh, not replayed); loads of what Redis holds |
//! | `merge.rs` | what arrives, as this replica keeps it: verdicts bounded, evidence merged or held hot |
//! | `sync.rs` | the background task: the hooks that feed it, connect, send and load, reconnect with backoff |

mod inbox;
mod link;
mod merge;
mod outbox;
mod replica;
mod seal;
mod status;
mod sync;
mod wire;

pub(crate) use status::Status;
pub(crate) use sync::start;
