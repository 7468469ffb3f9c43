//! The live state the detector keeps: bounded, lock-free across shards, and
//! independent of the policy that reads it (a reload swaps the policy and
//! keeps all of this).
//!
//! | file | role |
//! |---|---|
//! | `record.rs` | the per (actor, probe) signal record: window counters, the distinct-target sketch, sequence and cadence |
//! | `store.rs` | the bounded record store and its eviction classes |
//! | `verdict.rs` | the verdict table, and [`covers`](verdict::covers): which verdicts a request is subject to |
//! | `remote.rs` | what other replicas saw of each actor (feature `redis`), bounded |
//! | `sweep.rs` | one sweeper at a time, reset on drop |

pub(crate) mod record;
// Filled only by the cluster sync (feature `redis`); read on every probe request.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) mod remote;
pub(crate) mod store;
mod sweep;
pub(crate) mod verdict;

pub use verdict::{Verdict, VerdictReason};
