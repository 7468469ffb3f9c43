//! The TCP peer address, from what the server put into the extensions.

use std::net::{IpAddr, SocketAddr};

/// The peer address of a request, from the extensions a server puts there:
/// axum's `ConnectInfo<SocketAddr>` (feature `axum`), a plain [`SocketAddr`],
/// or a [`PeerAddr`].
pub(crate) fn peer_addr(ext: &http::Extensions) -> Option<IpAddr> {
    if let Some(p) = ext.get::<PeerAddr>() {
        return Some(p.0.ip());
    }
    #[cfg(feature = "axum")]
    if let Some(ci) = ext.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(ci.0.ip());
    }
    ext.get::<SocketAddr>().map(|s| s.ip())
}

/// Whether the request carries a peer address at all (any of the
/// extensions [`peer_addr`] reads; the common one first).
pub(crate) fn has_peer(ext: &http::Extensions) -> bool {
    #[cfg(feature = "axum")]
    if ext
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .is_some()
    {
        return true;
    }
    ext.get::<PeerAddr>().is_some() || ext.get::<SocketAddr>().is_some()
}

/// The peer address of a connection, for servers that are not axum: insert
/// it (or a plain [`SocketAddr`]) into each request's extensions.
///
/// ```
/// use enumguard::PeerAddr;
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(PeerAddr("127.0.0.1:50000".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);
