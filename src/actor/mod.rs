//! Actors: who a request is attributed to.
//!
//! Every request counts against each actor it has:
//!
//! | kind | key | from |
//! |---|---|---|
//! | `ip` | the client address; IPv6 grouped by /64 (configurable) | the peer address, or a trusted proxy's header |
//! | `subnet` | IPv4 /24, IPv6 /48 (configurable) | the same address |
//! | `session` | a keyed 128-bit hash of a header or cookie, never the raw token | [`SessionSource`](crate::SessionSource) |
//! | `account` | the application's account id | a closure or a request extension |
//!
//! # Deployment caveat: proxies
//! The peer address is the TCP peer. Behind a load balancer every request has
//! the balancer's address, so list the balancer in
//! [`trusted_proxies`](crate::GuardBuilder::trusted_proxies): the guard then
//! walks `X-Forwarded-For` / `Forwarded` from the right past trusted hops and
//! takes the first untrusted address. A header from an untrusted peer is
//! ignored, because any client can write it.
//!
//! | file | role |
//! |---|---|
//! | `key.rs` | [`ActorKind`], [`ActorKey`] |
//! | `account.rs` | [`AccountId`], [`AsAccountId`], [`Standing`] |
//! | `actors.rs` | [`Actors`]: the actors of one request |
//! | `named.rs` | [`Actor`]: an actor as an operator names it |
//! | `cidr.rs` | [`Cidr`] |
//! | `peer.rs` | [`PeerAddr`] and reading the peer address |
//! | `forwarded.rs` | [`ForwardedHeader`] and the walk of forwarding headers |
//! | `session.rs` | session tokens from a header or cookie; one value from several |

mod account;
mod actors;
mod cidr;
mod forwarded;
mod key;
mod named;
mod peer;
mod session;

pub(crate) use account::{ACCOUNT_KEYS, hash128};
pub use account::{AccountId, AsAccountId, Standing};
pub use actors::Actors;
pub(crate) use cidr::in_any;
pub use cidr::{Cidr, CidrParseError};
pub use forwarded::ForwardedHeader;
pub(crate) use forwarded::client_ip;
pub use key::{ActorKey, ActorKind};
pub use named::Actor;
pub use peer::PeerAddr;
pub(crate) use peer::{has_peer, peer_addr};
pub(crate) use session::{COMBINED_LEN, cookie_values, ends, header as header_value, header_ends};
