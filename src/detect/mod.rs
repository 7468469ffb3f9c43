//! The detection core, sans IO: [`Detector`] takes a request head (any
//! type that is a [`Head`]) and a time, and answers pass, refuse or track;
//! later the tracked request's answer. It knows nothing of tower, hyper or
//! bodies; the tower [`Guard`](crate::Guard) is one adapter, a log replay or
//! a test driving it from a list of events is another.
//!
//! | file | role |
//! |---|---|
//! | `detector.rs` | [`Detector`]: the policy (swapped whole by a reload) apart from the live state |
//! | `compile.rs` | a config compiled against the running policy: probe slots kept by name |
//! | `reload.rs` | reloads: checked, applied atomically with their diff, rolled back |
//! | `policy.rs` | [`Policy`] and [`Config::compile`](crate::Config::compile): a config parsed and compiled once into plain data (probes, prefixes, lists, durations in nanoseconds); deriving actor keys |
//! | `probes.rs` | the compiled probe: matching, target extraction, outcome rules, view settings (plain data) |
//! | `live.rs` | the live state of each probe slot (view, novelty filter, what the application showed, counters), kept by the detector across reloads |
//! | `head.rs` | what an adapter hands in: [`Head`], [`Hooks`]; [`Noted`] for an access log |
//! | `request.rs` | the two calls: a head in, [`Decision`] out; the [`Ticket`] and its [`Answered`] back |
//! | `identify.rs` | the facts of a head: its actors (as far as needed) and its probe's target |
//! | `facts.rs` | what crosses the boundary ([`Decision`], [`Ticket`], [`BodyRead`], [`Answered`]) and the facts the steps work on |
//! | `steps.rs` | the steps: lists, the gate, the pre-check; how observe mode predicts enforce mode |
//! | `learn.rs` | learning from an answer: records, scores, verdicts, the service-wide view |
//! | `context.rs` | what is known of an actor besides its signals: kind, history, a suspect address |
//! | `score.rs` | the scoring: signals and context in, suspicion out (pure) |
//! | `escalate.rs` | throttles, escalating blocks, links, operators' bans; the event and metric of each change |
//! | `view.rs` | the service-wide view of each probe |
//! | `novelty.rs` | which targets of a probe anyone asked for recently (the long tail a guesser walks) |
//! | `change.rs` | [`VerdictChange`]: verdict changes as data, for listeners and replicas |
//! | `refusal.rs` | [`Refusal`]: why a request was refused, and for how long |

mod change;
mod compile;
mod context;
mod detector;
mod escalate;
mod facts;
mod head;
mod identify;
mod learn;
mod live;
mod novelty;
mod policy;
pub(crate) mod probes;
mod refusal;
mod reload;
mod request;
pub(crate) mod score;
mod steps;
mod view;

pub use change::{ChangeKind, VerdictChange, VerdictListener};
pub use detector::Detector;
pub use facts::{Answered, BodyRead, Decision, Ticket};
pub use head::{Head, Hooks, NoHooks, Noted};
#[cfg(any(feature = "admin", feature = "redis", feature = "proxy"))]
pub(crate) use policy::random_key;
pub use policy::{Match, Policy};
pub use refusal::{Refusal, RefusalKind};
pub use request::{Route, Routed};
