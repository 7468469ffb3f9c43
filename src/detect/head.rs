//! What an adapter hands the core: a request head ([`Head`]), the
//! application's hooks ([`Hooks`]), and, for an access log, what the core
//! noted of the request ([`Noted`]).

use std::net::IpAddr;

use http::{HeaderMap, Method};

use crate::actor::{AccountId, Actors, Standing};

/// A request head, as the core reads it. The tower guard implements it for
/// `http::request::Parts`; a log replay for its log lines; a test for
/// whatever it drives.
pub trait Head {
    /// The method.
    fn method(&self) -> &Method;
    /// The path, not decoded.
    fn path(&self) -> &str;
    /// The query, if any.
    fn query(&self) -> Option<&str>;
    /// The headers (forwarding headers, the session, header targets).
    fn headers(&self) -> &HeaderMap;
    /// The TCP peer's address (before the trusted proxies' headers are
    /// read); `None` if the server did not say.
    fn peer(&self) -> Option<IpAddr>;
    /// Whether [`peer`](Self::peer) would give an address (the fast path
    /// asks only this).
    fn has_peer(&self) -> bool {
        self.peer().is_some()
    }
    /// What an authentication layer said of the account's standing.
    fn standing(&self) -> Option<Standing> {
        None
    }
    /// The session token, for an adapter that knows it other than by the
    /// policy's session header or cookie (a log's session field); when
    /// `Some`, the headers are not read for it.
    fn session_token(&self) -> Option<&[u8]> {
        None
    }
    /// The target as a log recorded it, for a probe whose target the head
    /// does not hold (a JSON body field, a header the log left out): a
    /// replay of the guard's access log. Live requests have none.
    fn logged_target(&self) -> Option<&[u8]> {
        None
    }
}

/// What only the application can say of a request: its account, and
/// whether a target is the caller's own. Both default to "cannot say".
pub trait Hooks<H: ?Sized> {
    /// The request's account.
    fn account(&self, _head: &H) -> Option<AccountId> {
        None
    }
    /// Whether the caller owns `target` of probe `probe`; `None` if the
    /// application does not say (then an account id equal to the target,
    /// or an [`Owner`](crate::Owner) in the answer, decides).
    fn owns(&self, _head: &H, _probe: &str, _target: &[u8]) -> Option<bool> {
        None
    }
}

/// No hooks: anonymous requests, ownership by account id and `Owner` only.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl<H: ?Sized> Hooks<H> for NoHooks {}

/// What the core noted of a request for an access log, when asked.
#[derive(Debug, Clone, Default)]
pub struct Noted {
    /// The index of the probe matched, in the policy given.
    pub(crate) probe: Option<u8>,
    pub(crate) actors: Option<Actors>,
    pub(crate) target: Option<Box<[u8]>>,
    pub(crate) own: bool,
}

impl Noted {
    /// The request's actors, as far as the core identified them (an
    /// address at least, when the request had one).
    pub fn actors(&self) -> Option<&Actors> {
        self.actors.as_ref()
    }
    /// The target as read from a body or a header (what a log of the path
    /// and query would not hold).
    pub fn target(&self) -> Option<&[u8]> {
        self.target.as_deref()
    }
    /// The ownership hook (or the account id) made the target the caller's.
    pub fn own(&self) -> bool {
        self.own
    }
}
