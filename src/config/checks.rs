//! Checks shared by the config's sections: a duration's range.

use super::ConfigError;

/// The longest duration any setting may have, in seconds (10 years). Times
/// are u64 nanoseconds of a clock whose origin may lie up to 68 years back,
/// so `now + duration` stays far from overflow, and nothing the guard does
/// needs longer.
pub(crate) const MAX_DURATION_SECS: u64 = 10 * 365 * 24 * 3600;

/// A duration in seconds: at least 1, at most [`MAX_DURATION_SECS`].
pub(crate) fn duration(field: &str, secs: u64) -> Result<(), ConfigError> {
    if (1..=MAX_DURATION_SECS).contains(&secs) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            field,
            secs.to_string(),
            format!("must be 1..={MAX_DURATION_SECS} seconds (10 years)"),
        ))
    }
}
