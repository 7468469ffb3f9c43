//! What the test suites build their guards from.
//!
//! Each suite uses a part of it (`mod common;`), so unused items are fine.
#![allow(dead_code)]

pub mod adversary;
pub mod events;
#[cfg(feature = "redis")]
pub mod redis;
pub mod sim;

use enumguard::{AccountId, ProbeConfig, TargetConfig};
use http::HeaderName;
use http::request::Parts;

/// The header the tests' clients put their account in.
pub const X_ACCOUNT: HeaderName = HeaderName::from_static("x-account");

/// The account of a test request: its `x-account` header. (Tests only: a
/// service takes the account from a verified session, never from a header
/// the client writes.)
pub fn account_from_header(parts: &Parts) -> Option<AccountId> {
    parts
        .headers
        .get(&X_ACCOUNT)?
        .to_str()
        .ok()
        .map(AccountId::new)
}

/// The objects probe on `GET /api/accounts/{id}/addressbook`, target `id`.
pub fn addressbook() -> ProbeConfig {
    ProbeConfig::objects(
        "addressbook",
        "GET",
        "/api/accounts/{id}/addressbook",
        TargetConfig::path("id"),
    )
}
