//! [`ConfigError`]: what was wrong, where.

use std::fmt;

/// What went wrong with a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Io,
    /// The TOML did not parse, or a value has the wrong type.
    Parse,
    /// A value parsed but is not acceptable.
    Invalid,
}

/// A configuration error that names the field and the bad value.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub(super) kind: ConfigErrorKind,
    pub(super) field: Option<String>,
    pub(super) value: Option<String>,
    pub(super) message: String,
    pub(super) file: Option<String>,
}

impl ConfigError {
    pub(crate) fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind: ConfigErrorKind::Invalid,
            field: Some(field.into()),
            value: Some(value.into()),
            message: message.into(),
            file: None,
        }
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// The field at fault, as a path (`probes[0].target`), when known.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The bad value, when known.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// The file the config came from, for [`Config::from_file`](crate::Config::from_file).
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("enumguard config: ")?;
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "`{field}`")?;
            if let Some(v) = &self.value {
                write!(f, " = `{v}`")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}
