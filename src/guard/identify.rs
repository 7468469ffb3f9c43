//! The facts of an `http` request head, as the detector wants them: its
//! actors and its probe's target. Reads only; never alters the request.

use http::request::Parts;

use crate::actor::{AccountId, Actors, client_ip, cookie_values, ends, header_ends, peer_addr};
use crate::config::SessionSource;
use crate::detect::{Detector, Match, Policy, Refusal, Target};
use crate::probe::{TARGET_BUF, TargetSource};

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

/// The request's actors, as far as `need` asks: the session hash, the
/// account closure and even the forwarding headers are skipped where
/// nothing would read them. A request without a peer address is
/// `ip:unknown`, or refused (see [`MissingPeer`](crate::MissingPeer)).
/// `account` is the application's account source, run only when `need`
/// asks for every actor.
pub(crate) fn actors(
    core: &Detector,
    policy: &Policy,
    parts: &Parts,
    need: Need,
    account: impl FnOnce(&Parts) -> Option<AccountId>,
) -> Result<Actors, Refusal> {
    let addr = match peer_addr(&parts.extensions) {
        Some(peer) => Some(client_ip(
            peer,
            &parts.headers,
            &policy.trusted,
            policy.forwarded_header,
        )),
        None => {
            core.missing_peer(policy)?;
            None
        }
    };
    if need != Need::Full {
        return Ok(policy.actors(addr, None, None));
    }
    // A session given several times counts as its first value and, if it
    // differs, its last (`actor/session.rs`): the two a framework takes.
    let ends = match &policy.session {
        Some(SessionSource::Header(_)) => policy
            .session_header
            .as_ref()
            .and_then(|h| header_ends(&parts.headers, h)),
        Some(SessionSource::Cookie(c)) => ends(cookie_values(&parts.headers, c)),
        None => None,
    };
    // What an authentication layer said of the account's standing, as a
    // request extension, unless the account source said it.
    let account = account(parts).map(|a| match parts.extensions.get::<crate::Standing>() {
        Some(s) if a.standing() == crate::Standing::Unknown => a.with_standing(*s),
        _ => a,
    });
    let mut actors = policy.actors(addr, ends.map(|(first, _)| first), account);
    if let Some((first, last)) = ends {
        // One value: the same slice, no compare.
        if !std::ptr::eq(first, last) && first != last {
            policy.add_last_session(&mut actors, last);
        }
    }
    Ok(actors)
}

/// The target of a probe request from its head (`Target::InBody` for a
/// JSON-body probe). The path capture is read from the path the probe
/// matched, by the byte range the matcher returned; a range that does not
/// slice the path (which cannot happen with an unchanged request) counts
/// the whole path, so a target is never dropped silently. `owns` is the
/// application's ownership hook, if any: `(parts, probe, target) -> own`.
pub(crate) fn target(
    core: &Detector,
    policy: &Policy,
    parts: &Parts,
    m: &Match,
    actors: &Actors,
    owns: Option<impl FnOnce(&Parts, &str, &[u8]) -> bool>,
    seen: Option<&mut super::access::Seen>,
) -> Target {
    let Some(probe) = policy.probes.get(m.probe_index()) else {
        return Target::None;
    };
    if probe.needs_body() {
        return Target::InBody;
    }
    let path = parts.uri.path();
    let capture = m.capture().map(|r| path.get(r).unwrap_or(path));
    let mut buf = [0u8; TARGET_BUF];
    let Some(bytes) = probe.head_target(capture, parts.uri.query(), &parts.headers, &mut buf)
    else {
        return Target::None;
    };
    let account = actors.account();
    let t = core.target(policy, m.probe(), bytes, account.as_ref());
    let t = match owns {
        // The application's ownership hook decides, both ways.
        Some(owns) if !t.is_own() => t.with_own(owns(parts, &probe.name, bytes)),
        _ => t,
    };
    if let Some(s) = seen {
        s.keep_target(bytes, !matches!(probe.source, TargetSource::Header(_)));
        s.own = t.is_own();
    }
    Target::Known(t)
}
