//! Status codes and classes in outcome rules.

use std::fmt;

use http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A status code (`404`) or class (`"4xx"`) in an outcome rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusSpec {
    /// One status code.
    Code(u16),
    /// A class: `2` is every 2xx status.
    Class(u8),
}

impl StatusSpec {
    pub(crate) fn matches(self, status: StatusCode) -> bool {
        match self {
            StatusSpec::Code(c) => status.as_u16() == c,
            StatusSpec::Class(c) => status.as_u16() / 100 == c as u16,
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() == 3 && (b'1'..=b'5').contains(&b[0]) && b[1..].eq_ignore_ascii_case(b"xx") {
            return Some(StatusSpec::Class(b[0] - b'0'));
        }
        s.parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
            .map(StatusSpec::Code)
    }
}

impl fmt::Display for StatusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusSpec::Code(c) => write!(f, "{c}"),
            StatusSpec::Class(c) => write!(f, "{c}xx"),
        }
    }
}

impl Serialize for StatusSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StatusSpec::Code(c) => s.serialize_u16(*c),
            StatusSpec::Class(_) => s.serialize_str(&self.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for StatusSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Str(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Int(i) => i.to_string(),
            Raw::Str(s) => s,
        };
        StatusSpec::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a status code (100..=599) or class (\"2xx\")"
            ))
        })
    }
}
