//! The actors of one request.

use std::net::IpAddr;

use super::{AccountId, ActorKey, ActorKind};

/// The actors one request is attributed to, as keys: fixed size, on the
/// stack. Built by the detector's policy from plain facts (see
/// [`Policy::actors`](crate::detect::Policy::actors)), so every adapter
/// derives the same keys the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actors {
    pub(crate) addr: Option<IpAddr>,
    pub(crate) ip: Option<ActorKey>,
    pub(crate) subnet: Option<ActorKey>,
    pub(crate) session: Option<ActorKey>,
    /// When a session was given several distinct values, `session` is the
    /// first one's and this the last one's (see `actor/session.rs`).
    pub(crate) session_alt: Option<ActorKey>,
    pub(crate) account: Option<AccountId>,
}

impl Actors {
    /// The `ip` actor of a request whose peer address is unknown
    /// (see [`MissingPeer::Unknown`](crate::MissingPeer::Unknown)).
    pub fn unknown_ip() -> ActorKey {
        ActorKey::hashed(ActorKind::Ip, 0)
    }

    /// The client address, when known.
    pub fn addr(&self) -> Option<IpAddr> {
        self.addr
    }

    /// The account, when the request has one.
    pub fn account(&self) -> Option<AccountId> {
        self.account
    }

    /// Whether the request has no account (an anonymous request owns
    /// nothing, and address verdicts apply to it).
    pub fn is_anonymous(&self) -> bool {
        self.account.is_none()
    }

    /// Each actor key present, in kind order (ip, subnet, session, the last
    /// of several session values, account).
    pub fn keys(&self) -> impl Iterator<Item = ActorKey> + '_ {
        Keys {
            actors: self,
            next: 0,
        }
    }
}

/// The iterator of [`Actors::keys`]: reads each key where it is (an array
/// of the five, flattened, copied 120 bytes and tested each twice; every
/// probe request walks its keys two or three times).
struct Keys<'a> {
    actors: &'a Actors,
    /// The next slot to look at: ip, subnet, session, session_alt, account.
    next: u8,
}

impl Iterator for Keys<'_> {
    type Item = ActorKey;

    #[inline]
    fn next(&mut self) -> Option<ActorKey> {
        let a = self.actors;
        while self.next < 5 {
            let i = self.next;
            self.next += 1;
            let key = match i {
                0 => a.ip,
                1 => a.subnet,
                2 => a.session,
                3 => a.session_alt,
                _ => a.account.map(|a| a.key()),
            };
            if key.is_some() {
                return key;
            }
        }
        None
    }
}
