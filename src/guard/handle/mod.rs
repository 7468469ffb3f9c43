//! [`GuardHandle`]: what an operator (or an admin endpoint) does to the
//! guard's state while it runs.

use std::sync::Arc;
use std::time::Duration;

use super::shared::Shared;
use crate::actor::{Actor, ActorKey, ActorKind};
use crate::detect::Detector;
use crate::state::Verdict;

/// A handle on a guard's shared state, from [`GuardLayer::handle`](crate::GuardLayer::handle).
/// Cheap to clone.
///
/// ```
/// use enumguard::{Actor, GuardLayer, Verdict};
/// use std::time::Duration;
///
/// let layer = GuardLayer::builder().build().unwrap();
/// let handle = layer.handle();
/// let ip: std::net::IpAddr = "203.0.113.9".parse().unwrap();
/// handle.ban(&Actor::ip(ip), Duration::from_secs(600));
/// assert!(matches!(handle.verdict(&Actor::ip(ip)), Verdict::Block { .. }));
/// assert!(handle.unban(&Actor::ip(ip)));
/// assert_eq!(handle.verdict(&Actor::ip(ip)), Verdict::Allow);
/// ```
#[derive(Clone)]
pub struct GuardHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for GuardHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardHandle").finish_non_exhaustive()
    }
}

/// One suspect, as [`GuardHandle::suspects`] lists it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Suspect {
    /// The actor (addresses in clear, sessions and accounts as hashes).
    pub actor: ActorKey,
    /// The probe.
    pub probe: String,
    /// Suspicion at its last update (1.0 is a block).
    pub score: f64,
    /// Times blocked.
    pub strikes: u32,
    /// The verdict the actor holds now (on any probe).
    pub verdict: Verdict,
}

/// A live verdict, as [`GuardHandle::verdicts`] lists it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ActiveVerdict {
    /// The actor (addresses in clear, sessions and accounts as hashes).
    pub actor: ActorKey,
    /// The verdict: kind, reason, time remaining, strikes.
    pub verdict: Verdict,
    /// The probe it was caught on (`None` for a manual ban, which covers
    /// every request).
    pub probe: Option<String>,
    /// What the operator wrote when banning (see
    /// [`GuardHandle::ban_key`]); `None` for a detected verdict or a ban
    /// without one.
    pub note: Option<String>,
}

/// The stronger of two verdicts: a block over a throttle over nothing,
/// then the longer.
fn stronger(a: Verdict, b: Verdict) -> Verdict {
    let rank = |v: &Verdict| match v {
        Verdict::Allow => (0, Duration::ZERO),
        Verdict::Throttle { remaining, .. } => (1, *remaining),
        Verdict::Block { remaining, .. } => (2, *remaining),
    };
    if rank(&b) > rank(&a) { b } else { a }
}

mod config;

impl GuardHandle {
    /// The key the guard uses for `actor`.
    ///
    /// ```
    /// use enumguard::{AccountId, Actor, GuardLayer};
    ///
    /// let handle = GuardLayer::builder().build().unwrap().handle();
    /// let ip = handle.key(&Actor::ip([203, 0, 113, 9]));
    /// assert_eq!(ip.to_string(), "ip:203.0.113.9");
    /// let subnet = handle.key(&Actor::subnet([203, 0, 113, 9]));
    /// assert_eq!(subnet.to_string(), "subnet:203.0.113.0/24");
    /// let account = handle.key(&Actor::account(42u64));
    /// assert_eq!(account, AccountId::from(42u64).key());
    /// assert!(account.to_string().starts_with("account:#"));
    /// ```
    pub fn key(&self, actor: &Actor) -> ActorKey {
        let policy = self.shared.core().policy();
        match actor {
            Actor::Ip(ip) => policy.ip_key(*ip),
            Actor::Subnet(ip) => policy.subnet_key(*ip),
            Actor::Session(token) => policy.session_key_of(token.as_bytes()),
            Actor::Account(a) => a.key(),
        }
    }

    /// Blocks `actor` for `duration` (refused at once, the inner service is
    /// not called). Replaces a shorter verdict; a longer block stays.
    ///
    /// See the example on [`GuardHandle`]; a shorter ban leaves a longer one:
    ///
    /// ```
    /// use enumguard::{Actor, GuardLayer, ManualClock, Verdict};
    /// use std::time::Duration;
    ///
    /// let layer = GuardLayer::builder().clock(ManualClock::new());
    /// let (handle, ip) = (layer.build().unwrap().handle(), Actor::ip([203, 0, 113, 9]));
    /// handle.ban(&ip, Duration::from_secs(600));
    /// handle.ban(&ip, Duration::from_secs(60));
    /// let Verdict::Block { remaining, .. } = handle.verdict(&ip) else {
    ///     panic!("blocked")
    /// };
    /// assert_eq!(remaining, Duration::from_secs(600));
    /// ```
    pub fn ban(&self, actor: &Actor, duration: Duration) {
        self.ban_key(self.key(actor), duration, "");
    }

    /// The longest note kept with a ban, in bytes (see
    /// [`ban_key`](Self::ban_key)).
    pub const MAX_NOTE_BYTES: usize = 200;

    /// Blocks the actor of `key` for `duration`, as [`ban`](Self::ban)
    /// does, keeping `note` (why, who, a ticket) with the ban, to show in
    /// [`verdicts`](Self::verdicts) and [`ban_note`](Self::ban_note). The
    /// key is one [`key`](Self::key) gives, or one a listing shows
    /// ([`suspects`](Self::suspects), [`verdicts`](Self::verdicts), found
    /// again from its hash with [`known_key`](Self::known_key)), so that an
    /// account or a session listed only by its hash can be banned.
    ///
    /// The note is cut to [`MAX_NOTE_BYTES`](Self::MAX_NOTE_BYTES), with
    /// control characters (line breaks included) written as spaces. It is
    /// kept with the ban and goes with it (lifted, ended, replaced); this
    /// replica's only (the cluster sync does not carry it). An empty note
    /// keeps the one the actor's ban had.
    ///
    /// ```
    /// use enumguard::{Actor, ActorKind, GuardLayer};
    /// use std::time::Duration;
    ///
    /// let handle = GuardLayer::builder().build().unwrap().handle();
    /// let key = handle.key(&Actor::account(42u64));
    /// let note = "ticket 1234: scraping";
    /// handle.ban_key(key, Duration::from_secs(600), note);
    /// assert_eq!(handle.ban_note(key).as_deref(), Some(note));
    /// // A listing shows the account by its hash only ("account:#..."),
    /// let listed = handle.verdicts()[0].actor.to_string();
    /// assert_eq!(handle.verdicts()[0].note, handle.ban_note(key));
    /// // which names it again.
    /// assert_eq!(handle.known_key(ActorKind::Account, &listed), Some(key));
    /// assert!(handle.unban_key(key));
    /// assert_eq!(handle.ban_note(key), None);
    /// ```
    pub fn ban_key(&self, key: ActorKey, duration: Duration, note: &str) {
        let now = self.shared.now();
        let nanos = duration.as_nanos().min(u64::MAX as u128) as u64;
        let core = self.shared.core();
        let note = clean_note(note)
            .map(std::sync::Arc::new)
            .or_else(|| core.verdicts.note(&key));
        core.ban(key, now.get(), nanos.max(1));
        if let Some(note) = note {
            core.verdicts.set_note(&key, note, now);
        }
    }

    /// The note kept with the ban of the actor of `key`, if any.
    ///
    /// See the example on [`ban_key`](Self::ban_key).
    pub fn ban_note(&self, key: ActorKey) -> Option<String> {
        self.shared
            .core()
            .verdicts
            .note(&key)
            .map(|n| n.to_string())
    }

    /// Lifts any verdict on `actor` and forgets its signals and strikes.
    /// Returns whether it had a verdict.
    ///
    /// See the example on [`GuardHandle`].
    pub fn unban(&self, actor: &Actor) -> bool {
        self.unban_key(self.key(actor))
    }

    /// [`unban`](Self::unban) by key (see [`ban_key`](Self::ban_key)).
    ///
    /// See the example on [`ban_key`](Self::ban_key).
    pub fn unban_key(&self, key: ActorKey) -> bool {
        self.shared.core().unban(key)
    }

    /// The verdict held against the actor of `key` itself (for an address,
    /// [`verdict`](Self::verdict) also reads its subnet's).
    ///
    /// See the example on [`verdict`](Self::verdict).
    pub fn verdict_key(&self, key: ActorKey) -> Verdict {
        self.shared.core().verdict_of(&key, self.shared.now().get())
    }

    /// The key of a session or an account the guard knows (holds a record
    /// or a live verdict for), from the hash a listing shows:
    /// `#e7634a0c5b1d2f39` (16 hex digits, as [`ActorKey`]'s `Display`
    /// writes it), with or without its `account:` or `session:` prefix.
    /// `None` if no such actor is known, or `hash` is not of that form: a
    /// hash keeps only part of the key, so an actor the guard has never
    /// seen cannot be named by one (name it by its id, [`key`](Self::key)).
    /// Walks the store: for admin use, not per request.
    ///
    /// See the example on [`ban_key`](Self::ban_key). An address, or an actor
    /// the guard does not know, has none:
    ///
    /// ```
    /// use enumguard::{ActorKind, GuardLayer};
    ///
    /// let handle = GuardLayer::builder().build().unwrap().handle();
    /// let unknown = handle.known_key(ActorKind::Account, "#0123456789abcdef");
    /// assert_eq!(unknown, None);
    /// assert_eq!(handle.known_key(ActorKind::Ip, "ip:203.0.113.9"), None);
    /// ```
    pub fn known_key(&self, kind: ActorKind, hash: &str) -> Option<ActorKey> {
        if !kind.is_personal() {
            return None;
        }
        let hash = hash
            .strip_prefix(kind.as_str())
            .and_then(|h| h.strip_prefix(':'))
            .unwrap_or(hash);
        let hex = hash.strip_prefix('#')?;
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let hi = u64::from_str_radix(hex, 16).ok()?;
        let is = |key: &ActorKey| {
            let (k, _, h, _) = key.parts();
            k == kind && h == hi
        };
        let core = self.shared.core();
        let now = self.shared.now();
        if let Some((key, _)) = core.verdicts.live(now).into_iter().find(|(k, _)| is(k)) {
            return Some(key);
        }
        let mut found = None;
        core.store.for_each(|key, _| {
            let actor = key.actor();
            if found.is_none() && is(&actor) {
                found = Some(actor);
            }
        });
        found
    }

    /// The verdict the gate holds against `actor` now: for an address,
    /// the stronger of its own and its subnet's (an address inside a banned
    /// /24 reads `Block`). A detected (not manual) verdict on an address or
    /// subnet refuses only anonymous requests to a probe; one on a session
    /// or an account refuses everything (a block) or its probe requests
    /// over the quota (a throttle).
    ///
    /// ```
    /// use enumguard::{Actor, GuardLayer, Verdict};
    /// use std::time::Duration;
    ///
    /// let handle = GuardLayer::builder().build().unwrap().handle();
    /// handle.ban(&Actor::subnet([203, 0, 113, 0]), Duration::from_secs(60));
    /// let ip = Actor::ip([203, 0, 113, 9]);
    /// // The gate reads the address's /24 too,
    /// assert!(matches!(handle.verdict(&ip), Verdict::Block { .. }));
    /// // while the address's own key holds nothing.
    /// assert_eq!(handle.verdict_key(handle.key(&ip)), Verdict::Allow);
    /// ```
    pub fn verdict(&self, actor: &Actor) -> Verdict {
        let now = self.shared.now();
        let core = self.shared.core();
        let own = core.verdict_of(&self.key(actor), now.get());
        match actor {
            Actor::Ip(ip) => {
                let subnet = core.policy().subnet_key(*ip);
                stronger(own, core.verdict_of(&subnet, now.get()))
            }
            _ => own,
        }
    }

    /// (actor, probe) signal records tracked now.
    ///
    /// ```
    /// # fn send(layer: &enumguard::GuardLayer, req: http::request::Builder) -> u16 {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let app = tower::service_fn(|_: http::Request<_>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #     });
    /// #     let req = req.body(String::new()).unwrap();
    /// #     let rt = tokio::runtime::Builder::new_current_thread().build();
    /// #     let res = rt.unwrap().block_on(layer.layer(app).oneshot(req));
    /// #     res.unwrap().status().as_u16()
    /// # }
    /// # fn peer(ip: [u8; 4]) -> std::net::SocketAddr {
    /// #     (ip, 4000).into()
    /// # }
    /// use enumguard::{GuardLayer, ProbeConfig, TargetConfig};
    ///
    /// let book = ProbeConfig::objects("book", "GET", "/books/{id}", TargetConfig::path("id"));
    /// let layer = GuardLayer::builder().probe(book).max_actors(1_000);
    /// let layer = layer.build().unwrap();
    /// let handle = layer.handle();
    /// assert_eq!((handle.tracked(), handle.capacity()), (0, 1_000));
    /// let req = http::Request::get("/books/1").extension(peer([192, 0, 2, 1]));
    /// assert_eq!(send(&layer, req), 200);
    /// // One record for the address, one for its subnet.
    /// assert_eq!(handle.tracked(), 2);
    /// // A request to no probe is not tracked.
    /// let other = http::Request::get("/").extension(peer([192, 0, 2, 7]));
    /// assert_eq!(send(&layer, other), 200);
    /// assert_eq!(handle.tracked(), 2);
    /// ```
    pub fn tracked(&self) -> usize {
        self.shared.core().tracked()
    }

    /// The bound on tracked records.
    ///
    /// See the example on [`tracked`](Self::tracked), and
    /// [`GuardBuilder::max_actors`](crate::GuardBuilder::max_actors).
    pub fn capacity(&self) -> usize {
        self.shared.core().capacity()
    }

    /// Every live verdict (detected, linked and manual), longest remaining
    /// first. Walks the verdict table: for admin use, not per request.
    ///
    /// ```
    /// use enumguard::{Actor, GuardLayer, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let layer = GuardLayer::builder().clock(clock.clone()).build().unwrap();
    /// let handle = layer.handle();
    /// handle.ban(&Actor::ip([203, 0, 113, 9]), Duration::from_secs(60));
    /// handle.ban(&Actor::account(7u64), Duration::from_secs(600));
    /// let listed = handle.verdicts();
    /// assert_eq!(listed[0].actor, handle.key(&Actor::account(7u64)));
    /// assert_eq!(listed[0].probe, None); // a manual ban covers every request
    /// clock.advance(Duration::from_secs(120));
    /// assert_eq!(handle.verdicts().len(), 1);
    /// // The expired ban is held until purged.
    /// assert_eq!(handle.verdict_count(), 2);
    /// assert_eq!(handle.purge_expired(), 1);
    /// assert_eq!(handle.verdict_count(), 1);
    /// ```
    pub fn verdicts(&self) -> Vec<ActiveVerdict> {
        let now = self.shared.now();
        let mut out: Vec<ActiveVerdict> = self
            .shared
            .core()
            .live_verdicts(now.get())
            .into_iter()
            .map(|c| ActiveVerdict {
                actor: c.actor,
                verdict: c.verdict(),
                probe: c.probe.map(|p| p.to_string()),
                note: self.ban_note(c.actor),
            })
            .collect();
        out.sort_by_key(|v| {
            std::cmp::Reverse(match v.verdict {
                Verdict::Block { remaining, .. } | Verdict::Throttle { remaining, .. } => remaining,
                Verdict::Allow => Duration::ZERO,
            })
        });
        out
    }

    /// Verdicts held now (including expired ones not yet purged).
    ///
    /// See the example on [`verdicts`](Self::verdicts).
    pub fn verdict_count(&self) -> usize {
        self.shared.core().verdicts.len()
    }

    /// Drops expired verdicts; returns how many. The table also does this
    /// itself when it is full, so calling it is optional.
    ///
    /// See the example on [`verdicts`](Self::verdicts).
    pub fn purge_expired(&self) -> usize {
        let now = self.shared.now();
        self.shared.core().verdicts.purge_expired(now)
    }

    /// Actors with a suspicion of at least `min_score`, most suspect first.
    /// Walks the whole store: for admin use, not per request.
    ///
    /// ```
    /// # fn send(layer: &enumguard::GuardLayer, req: http::request::Builder) -> u16 {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let app = tower::service_fn(|_: http::Request<_>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #     });
    /// #     let req = req.body(String::new()).unwrap();
    /// #     let rt = tokio::runtime::Builder::new_current_thread().build();
    /// #     let res = rt.unwrap().block_on(layer.layer(app).oneshot(req));
    /// #     res.unwrap().status().as_u16()
    /// # }
    /// # fn peer(ip: [u8; 4]) -> std::net::SocketAddr {
    /// #     (ip, 4000).into()
    /// # }
    /// use enumguard::{AccountId, Actor, GuardLayer, ProbeConfig, TargetConfig, Verdict};
    ///
    /// let path = "/api/accounts/{id}/addressbook";
    /// let book = ProbeConfig::objects("addressbook", "GET", path, TargetConfig::path("id"));
    /// let layer = GuardLayer::builder()
    ///     .probe(book)
    ///     .account(|parts| parts.headers.get("x-user-id").map(AccountId::new))
    ///     .build()
    ///     .unwrap();
    /// // Account 7 walks other accounts' address books.
    /// for id in 100..120 {
    ///     let uri = format!("/api/accounts/{id}/addressbook");
    ///     let req = http::Request::get(uri).header("x-user-id", "7");
    ///     send(&layer, req.extension(peer([192, 0, 2, 1])));
    /// }
    /// let handle = layer.handle();
    /// let seven = handle.key(&Actor::account(7u64));
    /// let suspects = handle.suspects(0.5);
    /// let s = suspects.iter().find(|s| s.actor == seven).unwrap();
    /// assert_eq!((s.probe.as_str(), s.strikes), ("addressbook", 1));
    /// assert!(matches!(s.verdict, Verdict::Block { .. }));
    /// ```
    pub fn suspects(&self, min_score: f64) -> Vec<Suspect> {
        let core = self.shared.core();
        let policy = core.policy();
        let now = self.shared.now();
        let mut out = Vec::new();
        core.store.for_each(|key, r| {
            if r.last_score() >= min_score || r.strikes > 0 {
                out.push(Suspect {
                    actor: key.actor(),
                    probe: policy
                        .by_slot(key.probe())
                        .map(|p| p.name.to_string())
                        .unwrap_or_default(),
                    score: r.last_score(),
                    strikes: u32::from(r.strikes),
                    verdict: core.verdict_of(&key.actor(), now.get()),
                });
            }
        });
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out
    }

    /// Whether the cluster sync (feature `redis`) has no working Redis
    /// connection now: `None` without a `[cluster]`. Detection goes on
    /// locally meanwhile; the gauge `enumguard_cluster_degraded` says the
    /// same.
    #[cfg(feature = "redis")]
    pub fn cluster_degraded(&self) -> Option<bool> {
        self.shared.cluster.as_ref().map(|s| s.degraded())
    }

    /// Verdict changes the cluster sync dropped because its queue was full
    /// (`enumguard_cluster_dropped_total`); `None` without a `[cluster]`.
    #[cfg(feature = "redis")]
    pub fn cluster_dropped(&self) -> Option<u64> {
        self.shared.cluster.as_ref().map(|s| s.dropped())
    }

    /// The detection core, for adapters of your own (a log replay, say).
    pub fn detector(&self) -> &Detector {
        self.shared.core()
    }
}

/// A ban's note as kept: control characters as spaces, trimmed, cut to
/// [`GuardHandle::MAX_NOTE_BYTES`] on a character boundary; `None` if
/// nothing is left.
fn clean_note(note: &str) -> Option<String> {
    let mut out = String::with_capacity(note.len().min(GuardHandle::MAX_NOTE_BYTES));
    for c in note
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
    {
        if out.len() + c.len_utf8() > GuardHandle::MAX_NOTE_BYTES {
            break;
        }
        out.push(c);
    }
    let out = out.trim_end();
    (!out.is_empty()).then(|| out.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_one_bounded_line() {
        assert_eq!(clean_note(""), None);
        assert_eq!(clean_note(" \n\t "), None);
        assert_eq!(
            clean_note("scraper\nFAKE LOG LINE").as_deref(),
            Some("scraper FAKE LOG LINE")
        );
        let long = "é".repeat(GuardHandle::MAX_NOTE_BYTES);
        let kept = clean_note(&long).unwrap();
        assert!(kept.len() <= GuardHandle::MAX_NOTE_BYTES);
        assert_eq!(kept.len(), GuardHandle::MAX_NOTE_BYTES);
        assert!(kept.chars().all(|c| c == 'é'));
    }
}
