//! The live state the detector keeps: bounded, lock-free across shards, and
//! independent of the policy that reads it (a reload swaps the policy and
//! keeps all of this).
//!
//! | file | role |
//! |---|---|
//! | `record.rs` | the per (actor, probe) signal record: window counts, the long view, sequence, cadence and carried suspicion |
//! | `window.rs` | the window's two halves ([`Halves`](window::Halves)), rolled by time; the counts of a half |
//! | `sketch.rs` | [`DistinctSketch`](sketch::DistinctSketch): distinct targets in 32 bytes, its error stated |
//! | `decay.rs` | half-life decay, in one place |
//! | `store/` | the bounded record store (`mod.rs`), its fixed table of locked 16-way buckets (`table.rs`), and which record of a full bucket gives its place (`evict.rs`) |
//! | `verdict/` | the verdict table, and [`covers`](verdict::covers): which verdicts a request is subject to; `room.rs`: what a full table drops; `step.rs`: the throttles' limiter and the clock it reads |
//! | `remote.rs` | what other replicas saw of each actor (feature `redis`), bounded |
//! | `sweep.rs` | one sweeper at a time, reset on drop |

pub(crate) mod decay;
pub(crate) mod record;
// Filled only by the cluster sync (feature `redis`); read on every probe request.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) mod remote;
pub(crate) mod sketch;
pub(crate) mod store;
mod sweep;
pub(crate) mod verdict;
pub(crate) mod window;

pub use verdict::{Verdict, VerdictReason};
