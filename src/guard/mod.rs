//! The tower adapter: [`GuardLayer`] wraps a service; each [`Guard`] turns
//! an `http::Request` into facts for the [`Detector`](crate::detect::Detector),
//! forwards or refuses, and reports the answer.
//!
//! | file | role |
//! |---|---|
//! | `layer.rs` | [`GuardLayer`]: the layer |
//! | `builder/` | [`GuardBuilder`]: building the guard (its hooks in `hooks.rs`, probes and lists in `lists.rs`) |
//! | `service.rs` | [`Guard`]: the request path, from matching to forwarding |
//! | `shared.rs` | what every clone shares: the detector, the clock, the hooks; the steps before the inner service |
//! | `future.rs` | [`ResponseFuture`]: reading a JSON body, reporting the answer |
//! | `body.rs` | [`GuardBody`], [`ResponseBody`]: bodies passed through untouched |
//! | `response.rs` | [`OnRefusal`], [`DefaultRefusal`]: refusal responses |
//! | `access.rs` | [`AccessRecord`]: the access-log hook's record, as the replay reads it |
//! | `handle/` | [`GuardHandle`]: bans and inspection (`mod.rs`), reload, rollback and the config in force (`config.rs`) |
//! | `timing.rs` | the guard's own time per request, sampled, as a histogram |

mod access;
mod body;
mod builder;
mod future;
mod handle;
mod layer;
mod response;
mod service;
mod shared;
mod timing;

pub use access::AccessRecord;
pub use body::{GuardBody, ResponseBody};
pub use builder::GuardBuilder;
pub use future::ResponseFuture;
pub use handle::{ActiveVerdict, GuardHandle, Suspect};
pub use layer::GuardLayer;
pub use response::{DefaultRefusal, OnRefusal};
pub use service::Guard;
