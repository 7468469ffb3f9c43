//! The guide: enumguard's long-form documentation, chapter by chapter.
//!
//! The chapters are the Markdown files of `docs/guide/` in the repository,
//! rendered here; every Rust example in them is compiled by `cargo test
//! --doc`. The operator's manual (deployment, replay and tuning, the admin
//! service, metrics, the proxy in production) is `docs/operating.md`.
//!
//! | chapter | what it covers |
//! |---|---|
//! | [`concepts`] | vocabulary, what happens to a request, the proxy caveat, the architecture, memory, features |
//! | [`detection`] | the signals, the policy, the defaults of the two probe styles and why, what the guard promises |
//! | [`ownership`] | whose object it was (`Owner`, the `owns` hook), `Known` contacts, an account's `Standing` |
//! | [`configuration`] | the full TOML reference, probes, errors, numbers and secrets |
//! | [`wiring`] | axum, hyper, tonic, refusals, the handle, the admin service, the access log |
//! | [`cluster`] | many replicas sharing verdicts and evidence through Redis |

#[doc = include_str!("../../docs/guide/concepts.md")]
pub mod concepts {}

#[doc = include_str!("../../docs/guide/detection.md")]
pub mod detection {}

#[doc = include_str!("../../docs/guide/ownership.md")]
pub mod ownership {}

#[doc = include_str!("../../docs/guide/configuration.md")]
pub mod configuration {}

#[doc = include_str!("../../docs/guide/wiring.md")]
pub mod wiring {}

#[doc = include_str!("../../docs/guide/cluster.md")]
pub mod cluster {}

/// The README's Rust snippets, compiled by `cargo test --doc` so that the
/// first code a reader copies builds.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The operator's manual's Rust snippets (`docs/operating.md`), compiled
/// the same way.
#[cfg(doctest)]
#[doc = include_str!("../../docs/operating.md")]
pub struct OperatingDoctests;
