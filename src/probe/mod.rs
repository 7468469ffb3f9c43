//! Probes: the endpoints an operator marks as enumerable. This module holds
//! the parts a probe is made of, each in one file, with no state and no
//! policy:
//!
//! | file | role |
//! |---|---|
//! | `method.rs` | the methods a probe answers to (`GET` brings `HEAD`) |
//! | `pattern.rs` | path patterns with `{name}` parameters; the capture as a byte range |
//! | `target.rs` | where the target is (path, query, header, JSON body), how it is decoded, and [`TargetInfo`], what the signals keep of it |
//! | `status.rs` | [`StatusSpec`]: status codes and classes in outcome rules |
//! | `outcome.rs` | [`Outcome`], [`Owner`] and [`Known`]: what the application tells the guard, and classifying a response |
//!
//! The compiled probe, which puts these together with its thresholds, is
//! part of the detector's policy (`detect/probes.rs`).

mod method;
mod outcome;
mod pattern;
mod status;
mod target;

pub(crate) use method::Methods;
pub(crate) use outcome::OutcomeRules;
pub use outcome::{Known, Outcome, Owner};
pub(crate) use pattern::PathPattern;
pub use status::StatusSpec;
pub(crate) use target::TargetInfo;
pub(crate) use target::{TARGET_BUF, TargetSource};
