//! Many replicas (feature `redis`): every verdict change a replica makes is
//! written to Redis with its expiry and published; every replica applies
//! what the others publish, loads all live verdicts when it starts and
//! after every reconnect, and reloads them every few seconds in case a
//! message was lost. All Redis work runs on one background task fed by a
//! bounded channel: the request path never waits on Redis, and when the
//! channel is full a change is dropped and counted.
//!
//! | file | role |
//! |---|---|
//! | `wire.rs` | key names (keyed hashes, never an address or a token) and the message format |
//! | `link.rs` | one Redis server or a Redis Cluster: batches, per-node scans, the subscription |
//! | `sync.rs` | the background task: batches, publish, subscribe, load, reconnect with backoff |

mod link;
mod sync;
mod wire;

pub(crate) use sync::{Status, start};
