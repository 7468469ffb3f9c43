//! Configuration: the same settings from code ([`GuardBuilder`](crate::GuardBuilder))
//! or from TOML ([`Config::from_toml_str`], [`Config::from_file`]).
//!
//! Every field has a documented default, so an empty file is a valid config:
//!
//! ```
//! let config = enumguard::Config::from_toml_str("").unwrap();
//! assert_eq!(config.mode, enumguard::Mode::Enforce);
//! ```
//!
//! Errors name the field and the bad value:
//!
//! ```
//! let err = enumguard::Config::from_toml_str(r#"trusted_proxies = ["10.0.0.0/33"]"#).unwrap_err();
//! assert_eq!(err.field(), Some("trusted_proxies[0]"));
//! assert_eq!(err.value(), Some("10.0.0.0/33"));
//! ```
//!
//! | file | role |
//! |---|---|
//! | `schema.rs` | [`Config`] and its sections, with their defaults |
//! | `proxy.rs` | [`ProxyConfig`]: the `[proxy]` table of `enumguard proxy` |
//! | `probe.rs` | [`ProbeConfig`]: one enumerable endpoint |
//! | `thresholds.rs` | [`Thresholds`]: defaults per probe style, and their checks |
//! | `load.rs` | reading TOML, errors with line and field |
//! | `validate.rs` | every check a config must pass |
//! | `checks.rs` | checks the sections share (a duration's range) |
//! | `error.rs` | [`ConfigError`] |
//! | `diff.rs` | [`ConfigDiff`]: what a reload changes; [`ReloadError`] |
//! | `explain/` | [`Config::explain`]: what a config means, and its holes |

mod checks;
mod diff;
mod error;
mod explain;
mod load;
mod probe;
mod proxy;
mod schema;
mod thresholds;
mod validate;

pub use diff::{Change, ConfigDiff, ReloadError};
pub use error::{ConfigError, ConfigErrorKind};
pub use explain::{ActorSource, Explanation, ProbeExplanation, Warning, WarningKind};
pub use probe::{OutcomeConfig, Oversized, ProbeConfig, ProbeStyle, TargetConfig};
pub use proxy::{AccountSource, JwtConfig, ProxyConfig};
pub use schema::{
    BlockConfig, ClusterConfig, Config, Limits, LinkConfig, ListConfig, MissingPeer, Mode,
    ResponseConfig, ServiceViewConfig, SessionSource, ThrottleConfig,
};
pub use thresholds::{KindFactors, Thresholds};
#[cfg(feature = "redis")]
pub(crate) use validate::redact;
pub(crate) use validate::{MAX_PROBES, ProbeParts, parse_key};
