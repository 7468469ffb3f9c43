//! Actors as an operator names them.

use std::net::IpAddr;

use super::AccountId;

/// An actor as an operator names it: what [`GuardHandle::ban`](crate::GuardHandle::ban)
/// and friends take. Its `Debug` never shows a session token (a session
/// is a credential): `Session(<redacted, 40 bytes>)`.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Actor {
    /// A client address; grouped by the configured IPv6 prefix.
    Ip(IpAddr),
    /// The subnet an address is in (IPv4 /24, IPv6 /48 by default).
    Subnet(IpAddr),
    /// A raw session token, as it appears in the header or cookie.
    Session(String),
    /// An account id.
    Account(AccountId),
}

impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Ip(a) => f.debug_tuple("Ip").field(a).finish(),
            Actor::Subnet(a) => f.debug_tuple("Subnet").field(a).finish(),
            Actor::Session(t) => write!(f, "Session(<redacted, {} bytes>)", t.len()),
            Actor::Account(a) => f.debug_tuple("Account").field(a).finish(),
        }
    }
}

impl Actor {
    /// An `ip` actor.
    pub fn ip(addr: impl Into<IpAddr>) -> Self {
        Actor::Ip(addr.into())
    }

    /// A `subnet` actor for the subnet that contains `addr`.
    pub fn subnet(addr: impl Into<IpAddr>) -> Self {
        Actor::Subnet(addr.into())
    }

    /// A `session` actor for a raw token.
    pub fn session(token: impl Into<String>) -> Self {
        Actor::Session(token.into())
    }

    /// An `account` actor.
    pub fn account(id: impl Into<AccountId>) -> Self {
        Actor::Account(id.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_session_token() {
        let shown = format!("{:?}", Actor::session("secret-token-123"));
        assert!(!shown.contains("secret"), "{shown}");
        assert_eq!(shown, "Session(<redacted, 16 bytes>)");
        assert!(format!("{:?}", Actor::account(7u64)).starts_with("Account("));
    }
}
