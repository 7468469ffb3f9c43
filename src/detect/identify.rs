//! The facts of a request head, as the steps want them: its actors and its
//! probe's target. Reads only; never alters the request.

use crate::actor::{AccountId, Actors, client_ip, cookie_values, ends, header_ends};
use crate::config::SessionSource;
use crate::probe::{TARGET_BUF, TargetSource};

use super::Detector;
use super::facts::Target;
use super::head::{Head, Hooks, Noted};
use super::policy::{Match, Policy};
use super::refusal::Refusal;

/// How much of a request's attribution a step needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Only that the peer address is known (a request no probe, verdict or
    /// list concerns).
    Peer,
    /// The address actors (ip, subnet), for the address lists.
    Addr,
    /// Every actor, session and account included.
    Full,
}

impl Need {
    pub(crate) fn of(policy: &Policy, probe: bool, verdicts: bool) -> Self {
        if probe
            || verdicts
            || !policy.allow_accounts.is_empty()
            || !policy.deny_accounts.is_empty()
        {
            Need::Full
        } else if !policy.allow.is_empty() || !policy.deny.is_empty() {
            Need::Addr
        } else {
            Need::Peer
        }
    }
}

/// The request's peer address ([`Head::peer`]), or the refusal of a
/// request without one (see [`MissingPeer`](crate::MissingPeer): without
/// the refusal it is `ip:unknown`).
#[inline(always)]
pub(crate) fn peer<H: Head + ?Sized>(
    core: &Detector,
    policy: &Policy,
    head: &H,
) -> Result<Option<std::net::IpAddr>, Refusal> {
    match head.peer() {
        Some(peer) => Ok(Some(peer)),
        None => core.missing_peer(policy).map(|()| None),
    }
}

/// The request's actors, as far as `need` asks: the session hash, the
/// account hook and even the forwarding headers are skipped where nothing
/// would read them. `peer` is what [`peer`] said. The account hook runs
/// only when `need` asks for every actor. (Infallible, and so returned as
/// it is: a `Result` around it would be one more copy of the actors per
/// request.)
#[inline(always)]
pub(crate) fn actors<H: Head + ?Sized>(
    policy: &Policy,
    head: &H,
    peer: Option<std::net::IpAddr>,
    need: Need,
    hooks: &impl Hooks<H>,
) -> Actors {
    let addr = peer.map(|peer| {
        client_ip(
            peer,
            head.headers(),
            &policy.trusted,
            policy.forwarded_header,
        )
    });
    if need != Need::Full {
        return policy.actors(addr, None, None);
    }
    let headers = head.headers();
    // A session given several times counts as its first value and, if it
    // differs, its last (`actor/session.rs`): the two a framework takes.
    let ends = match &policy.session {
        Some(_) if head.session_token().is_some() => head.session_token().map(|t| (t, t)),
        Some(SessionSource::Header(_)) => policy
            .session_header
            .as_ref()
            .and_then(|h| header_ends(headers, h)),
        Some(SessionSource::Cookie(c)) => ends(cookie_values(headers, c)),
        None => None,
    };
    // What an authentication layer said of the account's standing, unless
    // the account hook said it.
    let account = hooks
        .account(head)
        .map(|a: AccountId| match head.standing() {
            Some(s) if a.standing() == crate::Standing::Unknown => a.with_standing(s),
            _ => a,
        });
    let mut actors = policy.actors(addr, ends.map(|(first, _)| first), account);
    if let Some((first, last)) = ends {
        // One value: the same slice, no compare.
        if !std::ptr::eq(first, last) && first != last {
            policy.add_last_session(&mut actors, last);
        }
    }
    actors
}

/// The target of a probe request from its head (`Target::InBody` for a
/// JSON-body probe whose head holds no logged target). The path capture is
/// read from the path the probe matched, by the byte range the matcher
/// returned; a range that does not slice the path (which cannot happen with
/// an unchanged request) counts the whole path, so a target is never
/// dropped silently. The ownership hook decides where it answers.
#[inline(always)]
pub(crate) fn target<H: Head + ?Sized>(
    core: &Detector,
    policy: &Policy,
    head: &H,
    m: &Match,
    actors: &Actors,
    hooks: &impl Hooks<H>,
    noted: Option<&mut Noted>,
) -> Target {
    let Some(probe) = policy.probes.get(m.probe_index()) else {
        return Target::None;
    };
    let logged = head.logged_target();
    let in_head_line = matches!(probe.source, TargetSource::Path(_) | TargetSource::Query(_));
    if probe.needs_body() && logged.is_none() {
        return Target::InBody;
    }
    let path = head.path();
    let capture = m.capture().map(|r| path.get(r).unwrap_or(path));
    let mut buf = [0u8; TARGET_BUF];
    let bytes = match logged {
        Some(b) if !in_head_line => Some(b),
        _ => probe.head_target(capture, head.query(), head.headers(), &mut buf),
    };
    let Some(bytes) = bytes else {
        return Target::None;
    };
    let account = actors.account();
    let t = core.target_of(probe, bytes, account.as_ref());
    let t = if t.is_own() {
        t
    } else {
        // The application's ownership hook decides, both ways.
        match hooks.owns(head, &probe.name, bytes) {
            Some(own) => t.with_own(own),
            None => t,
        }
    };
    if let Some(n) = noted {
        if !in_head_line {
            n.target = Some(bytes.into());
        }
        n.own = t.is_own();
    }
    Target::Known(t)
}
