//! Actors as an operator names them.

use std::net::IpAddr;

use super::AccountId;

/// An actor as an operator names it: what [`GuardHandle::ban`](crate::GuardHandle::ban)
/// and friends take.
#[derive(Debug, Clone, PartialEq, Eq)]
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
