//! The steps of a request through the detector, each in one place:
//! lists, the gate (verdicts), the pre-check (would this target cross a
//! block threshold?), and learning from the answer.
//!
//! Observe mode takes every step exactly as enforce mode does, verdicts,
//! strikes, escalation, events and metrics included; only the refusal is
//! left out. A request enforce mode would refuse is therefore passed
//! without a ticket: nothing is learned from its answer, as nothing is in
//! enforce mode, where it never reaches the service.

use super::facts::{Answer, BodyTarget, Facts, Pending, ProbeId, Step, Target, Tracking};
use super::learn::Lesson;
use super::live::ProbeLive;
use super::policy::Policy;
use super::probes::Probe;
use super::refusal::{Refusal, RefusalKind};
use super::score;
use super::{Detector, context};
use crate::actor::{ActorKey, ActorKind, Actors, in_any};
use crate::clock::{Nanos, Span};
use crate::config::{Mode, Oversized};
use crate::probe::{Outcome, TargetInfo};
use crate::state::record::Record;
use crate::state::verdict::{Gate, Scope, VerdictReason};

impl Detector {
    /// Everything before the inner service: the allow and deny lists, the
    /// actors' verdicts, and for a probe request with a known target the
    /// pre-check. See [`Step`].
    pub(crate) fn check(&self, policy: &Policy, facts: &Facts<'_>, now: Nanos) -> Step {
        let actors = facts.actors;
        let account = actors.account.map(|a| a.hash());
        if !policy.no_lists {
            if actors.addr.is_some_and(|ip| in_any(&policy.allow, ip))
                || account.is_some_and(|h| policy.allow_accounts.contains(&h))
            {
                return Step::Pass;
            }
            let denied_ip = actors.addr.is_some_and(|ip| in_any(&policy.deny, ip));
            if denied_ip || account.is_some_and(|h| policy.deny_accounts.contains(&h)) {
                let kind = if denied_ip {
                    ActorKind::Ip
                } else {
                    ActorKind::Account
                };
                return self.refuse(
                    policy,
                    Refusal::new(RefusalKind::Denylisted, Some(kind), None, None),
                );
            }
        }
        let probe = facts
            .probe
            .and_then(|ProbeId(i)| policy.probes.get(i as usize));
        if let Some(p) = probe {
            // The records this request will read or update, before and
            // after the inner service: their cache misses overlap.
            self.store.prefetch(
                actors
                    .keys()
                    .map(|k| crate::state::store::Key::new(k, p.slot)),
            );
        }
        let target = match (facts.target, probe) {
            (Target::Known(t), _) => Some(t),
            // A probe request whose head lacks its target (no query
            // parameter, no header) still reaches the handler, which may
            // read it elsewhere: it counts as a new target of its own.
            (Target::None, Some(p)) => Some(self.opaque_target(p)),
            _ => None,
        };
        if self.has_verdicts() {
            if let Some(r) = self.gate(policy, actors, now, probe) {
                // Pressing on against a throttle with new targets is
                // evidence too: it moves the actor toward a block.
                if r.kind() == RefusalKind::Throttled {
                    if let (Some(p), Some(_)) = (probe, target) {
                        let lesson = Lesson {
                            probe: p,
                            now,
                            actors,
                            target,
                            outcome: None,
                            admitted: false,
                        };
                        self.learn(policy, lesson);
                    }
                }
                return self.refuse(policy, r);
            }
        }
        let Some(probe) = probe else {
            return Step::Pass;
        };
        match target {
            Some(t) => self.prechecked(policy, probe, now, actors, t),
            None => Step::Track(Tracking {
                slot: probe.slot,
                target: None,
                admitted: false,
            }),
        }
    }

    /// The target of a ticket that [awaited the body](Pending::awaits_body),
    /// as the adapter read it: the pre-check runs now.
    pub(crate) fn body_step(
        &self,
        policy: &Policy,
        probe: &Probe,
        ticket: &Pending,
        body: BodyTarget,
    ) -> Step {
        let t = match body {
            BodyTarget::Found(t) => t,
            BodyTarget::Unseen => {
                return Step::Track(Tracking {
                    slot: ticket.slot,
                    target: ticket.target,
                    admitted: ticket.admitted,
                });
            }
            BodyTarget::Oversized if probe.oversized == Oversized::Refuse => {
                return self.refuse(
                    policy,
                    Refusal::new(RefusalKind::BodyTooLarge, None, None, Some(&probe.name)),
                );
            }
            // Padding past the limit, or a body with nothing to read, still
            // reaches the handler: a new target of its own, never none.
            BodyTarget::Oversized | BodyTarget::Nothing => self.opaque_target(probe),
        };
        self.prechecked(policy, probe, ticket.now, &ticket.actors, t)
    }

    /// A ticket that will get no answer (the request was dropped, or an
    /// inner layer refused it): what it held as pending is let go, and
    /// nothing is learned.
    pub(crate) fn release_pending(&self, probe: &Probe, ticket: &Pending) {
        if ticket.admitted {
            self.settle_all(probe, &ticket.actors);
        }
    }

    /// Settles one pending request in each actor's record (a record
    /// evicted meanwhile has nothing to settle).
    fn settle_all(&self, probe: &Probe, actors: &Actors) {
        for key in actors.keys() {
            self.store
                .update_existing((key, probe.slot), Record::settle);
        }
    }

    /// The answer to a tracked request: folded into every actor's record,
    /// and verdicts changed where a threshold was crossed.
    pub(crate) fn learn_answer(
        &self,
        policy: &Policy,
        probe: &Probe,
        ticket: &Pending,
        answer: Answer,
    ) {
        let mut target = ticket.target;
        // What the application says of the object's owner wins over ids.
        if let (Some(t), Some(owner)) = (target.as_mut(), answer.owner) {
            t.is_self = ticket
                .actors
                .account
                .is_some_and(|a| a.hash() == owner.hash());
            ProbeLive::note(&self.live.of(probe.slot).owner_reported);
        }
        // A target the caller knows (its contacts) is no guess: counted as
        // its own, never as a miss or a find.
        if let (Some(t), true) = (target.as_mut(), answer.known) {
            t.is_self = true;
        }
        let lesson = Lesson {
            probe,
            now: ticket.now,
            actors: &ticket.actors,
            target,
            outcome: answer.outcome,
            admitted: ticket.admitted,
        };
        self.learn(policy, lesson);
    }

    /// A refusal, as the mode has it: enforce refuses; observe counts it
    /// and passes the request (without a ticket: see the module docs).
    pub(crate) fn refuse(&self, policy: &Policy, r: Refusal) -> Step {
        let actor_kind = r.actor_kind().map_or("none", ActorKind::as_str);
        if policy.mode == Mode::Observe {
            metrics::counter!(crate::metrics::WOULD_REFUSE, "reason" => r.kind().as_str(), "actor_kind" => actor_kind).increment(1);
            tracing::debug!(target: "enumguard", reason = r.kind().as_str(), actor_kind, "observe mode: would refuse");
            return Step::Pass;
        }
        metrics::counter!(crate::metrics::REFUSED, "reason" => r.kind().as_str(), "actor_kind" => actor_kind).increment(1);
        tracing::debug!(target: "enumguard", reason = r.kind().as_str(), actor_kind, "refused");
        Step::Refuse(r)
    }

    /// A request without a peer address, by `missing_peer`: `Ok` counts it
    /// as `ip:unknown` (see [`Actors::unknown_ip`]); `Err` refuses it
    /// (enforce mode with `missing_peer = "refuse"`). Logged once.
    pub(crate) fn missing_peer(&self, policy: &Policy) -> Result<(), Refusal> {
        use crate::config::MissingPeer;
        match policy.missing_peer {
            MissingPeer::Unknown => Ok(()),
            MissingPeer::Refuse if policy.mode == Mode::Observe => {
                if self.warn_missing_peer_once() {
                    tracing::error!(
                        target: "enumguard",
                        "request without a peer address (observe mode: counted as `ip:unknown`); \
                         in enforce mode such requests are refused with 500. Serve with \
                         `into_make_service_with_connect_info::<SocketAddr>()` (axum) or insert \
                         `enumguard::PeerAddr` into request extensions."
                    );
                }
                metrics::counter!(crate::metrics::WOULD_REFUSE, "reason" => "missing_peer", "actor_kind" => "none").increment(1);
                Ok(())
            }
            MissingPeer::Refuse => {
                metrics::counter!(crate::metrics::REFUSED, "reason" => "missing_peer", "actor_kind" => "none").increment(1);
                if self.warn_missing_peer_once() {
                    tracing::error!(
                        target: "enumguard",
                        "request without a peer address: serve with `into_make_service_with_connect_info::<SocketAddr>()` \
                         (axum) or insert `enumguard::PeerAddr` / `SocketAddr` into request extensions; \
                         or set `missing_peer = \"unknown\"`. Refusing such requests with 500."
                    );
                }
                Err(Refusal::new(RefusalKind::MissingPeer, None, None, None))
            }
        }
    }

    /// Looks up each actor's verdict; the first that applies (see
    /// [`covers`](crate::state::verdict::covers)) refuses.
    ///
    /// An address's detected verdict covers anonymous requests, and every
    /// request to a probe that answers without a login (see
    /// [`address_holds_all`]).
    fn gate(
        &self,
        policy: &Policy,
        actors: &Actors,
        now: Nanos,
        probe: Option<&Probe>,
    ) -> Option<Refusal> {
        let scope = Scope {
            probe: probe.map(|p| p.slot),
            anonymous: self.address_holds_all(actors, probe),
        };
        for key in actors.keys() {
            let (kind, retry, slot) = match self.verdicts.check(&key, now, scope) {
                Gate::Pass => continue,
                Gate::Blocked { retry_after, probe } => (RefusalKind::Blocked, retry_after, probe),
                Gate::Throttled { retry_after, probe } => {
                    (RefusalKind::Throttled, retry_after, probe)
                }
            };
            let name = slot.and_then(|s| policy.by_slot(s)).map(|p| &p.name);
            return Some(Refusal::new(kind, Some(key.kind()), Some(retry), name));
        }
        None
    }

    /// The pre-check, then the ticket (admitted: pending in its actors'
    /// records until its answer) or the refusal.
    fn prechecked(
        &self,
        policy: &Policy,
        probe: &Probe,
        now: Nanos,
        actors: &Actors,
        target: TargetInfo,
    ) -> Step {
        let tracking = |admitted| {
            Step::Track(Tracking {
                slot: probe.slot,
                target: Some(target),
                admitted,
            })
        };
        match self.precheck(policy, probe, now, actors, &target) {
            Precheck::Admitted => tracking(true),
            Precheck::Own => tracking(false),
            Precheck::InFlight(actor) => self.refuse(
                policy,
                Refusal::new(
                    RefusalKind::InFlight,
                    Some(actor.kind()),
                    Some(Span::from_secs(1)),
                    Some(&probe.name),
                ),
            ),
            Precheck::Blocked(actor, retry_after) => self.refuse(
                policy,
                Refusal::new(
                    RefusalKind::Blocked,
                    Some(actor.kind()),
                    Some(retry_after),
                    Some(&probe.name),
                ),
            ),
        }
    }

    /// Would counting `target` for these actors cross a block threshold?
    /// If so, the actor is blocked now and the request refused before the
    /// inner service runs. Otherwise the request is admitted: pending in
    /// each actor's record until its answer, and counted, while pending,
    /// as the worst answer it could bring; a request that would cross only
    /// with those pending answers is refused for now
    /// ([`RefusalKind::InFlight`]). So what an actor gets out is bounded
    /// however many requests it sends at once.
    fn precheck(
        &self,
        policy: &Policy,
        probe: &Probe,
        now: Nanos,
        actors: &Actors,
        target: &TargetInfo,
    ) -> Precheck {
        if target.is_self {
            return Precheck::Own;
        }
        let t = &probe.thresholds;
        let window = probe.window;
        // Read only if some record meets a new target.
        let anomalous = std::cell::OnceCell::new();
        let novel = std::cell::OnceCell::new();
        let counts_finds = t.hit_block > 0;
        let live = self.live.of(probe.slot);
        let asked = |hash: u64| live.novelty(probe.long).asked(hash, now);
        let mut beside = context::Beside::default();
        let anonymous = actors.account.is_none();
        // Where the application tells ownership only in the response, the
        // target may be the actor's own: an actor with no evidence yet and
        // nothing in flight is not refused on a guess (its first foreign
        // read is then learned, and the next one refused), so that new
        // users reading their own objects during a spike are never
        // refused. (An anonymous request owns nothing; an ownership hook
        // that answered decides before the handler.)
        let owner_later = !anonymous
            && !target.decided
            && live
                .owner_reported
                .load(std::sync::atomic::Ordering::Relaxed);
        // The worst crossing of a personal actor, and of an address.
        let mut crossing: Option<(ActorKey, f64)> = None;
        let mut address_crossing: Option<(ActorKey, f64)> = None;
        let mut in_flight: Option<ActorKey> = None;
        let mut address_in_flight: Option<ActorKey> = None;
        let sharing = cfg!(feature = "redis") && self.sharing();
        for key in actors.keys() {
            let remote = if sharing {
                self.remote_of(key, probe.slot, now)
            } else {
                None
            };
            // (settled, with what is in flight): the score if the target
            // were counted now with the worst answer, alone and with the
            // requests still pending.
            let standing = context::standing_of(key.kind(), actors);
            let eval = |r: &Record| -> Option<(f64, f64)> {
                let pending = r.pending_at(now, window);
                // At a suspect address a young account gets no benefit of
                // the doubt: accounts made by the dozen would each get one
                // foreign object out.
                let exempt = owner_later
                    && pending == 0
                    && r.no_evidence()
                    && !(beside.suspect && context::is_young(policy, r, now, standing));
                if r.seen(target.hash) || exempt {
                    // Not a new target: counting it adds nothing.
                    return None;
                }
                let anomalous = *anomalous.get_or_init(|| self.read_view(probe, now));
                let ctx = context::Judging {
                    policy,
                    probe,
                    now,
                    anomalous,
                }
                .context(key.kind(), r, context::Beside { standing, ..beside });
                let signals = context::judged(
                    key.kind(),
                    r.signals_with(now, window, probe.long, remote.as_ref()),
                );
                let seq = r.seq_run_after(target);
                // The answers it could bring: a denial; on a probe that
                // counts finds, a find, and a miss only where it would
                // count (nobody asked for the target recently) and where it
                // is held against the actor. A first-timer that found
                // something is not held to a miss before its second settled
                // one: a person's retry after a typo is answered (a miss
                // leaks nothing; it is learned after). A guesser that found
                // nothing is held from its first, and so are an address
                // asking anonymously (many people; a person resetting its
                // password after a typo is under the threshold anyway), an
                // actor blocked before, and an account the application says
                // is new (made, maybe, for the attack). Elsewhere a miss or
                // a denial (a foreign object).
                let misses = signals.misses.max(signals.long_misses);
                let finds = signals.finds();
                let held = r.strikes > 0
                    || (!key.kind().is_personal() && actors.account.is_none())
                    || misses >= 2.0
                    || finds < 1.0
                    || standing == crate::Standing::New;
                let worst = |n: u32| {
                    let miss =
                        !counts_finds || (held && *novel.get_or_init(|| !asked(target.hash)));
                    [Outcome::Miss, Outcome::Denied, Outcome::Hit]
                        .into_iter()
                        .filter(|o| match o {
                            Outcome::Miss => miss,
                            Outcome::Hit => counts_finds,
                            Outcome::Denied => true,
                        })
                        .map(|o| score::score(t, &signals.with_new_targets(o, seq, n), &ctx))
                        .fold(0.0f64, f64::max)
                };
                let settled = worst(1);
                let flying = if pending == 0 {
                    settled
                } else {
                    worst(pending + 1)
                };
                Some((settled, flying))
            };
            let (score, carry, guessing) = self
                .store
                .update((key, probe.slot), now, policy.half_life, |r| {
                    let out = (
                        eval(r),
                        r.carry_at(now, policy.half_life),
                        context::guessing_address(probe, key.kind(), r, now),
                    );
                    r.admit(now, window);
                    out
                })
                // The store is full and making room: judged as new.
                .unwrap_or_else(|| (eval(&Record::new(now)), 0.0, 0));
            beside.suspect |= context::suspect_address(policy, key.kind(), carry);
            beside.guessing = beside.guessing.max(guessing);
            let Some((settled, flying)) = score else {
                continue;
            };
            let (cross, fly) = if key.kind().is_personal() {
                (&mut crossing, &mut in_flight)
            } else {
                (&mut address_crossing, &mut address_in_flight)
            };
            if settled >= 1.0 && cross.is_none_or(|(_, best)| settled > best) {
                *cross = Some((key, settled));
            } else if flying >= 1.0 && fly.is_none() {
                *fly = Some(key);
            }
        }
        // An address's evidence holds anonymous requests, and all requests
        // to a probe that answers without a login (see `gate`).
        let address_holds = self.address_holds_all(actors, Some(probe));
        let crossing = match (crossing, address_crossing) {
            (Some(c), Some(a)) if address_holds => Some(if a.1 > c.1 { a } else { c }),
            (None, Some(a)) if address_holds => Some(a),
            (c, _) => c,
        };
        let in_flight = in_flight.or(if address_holds {
            address_in_flight
        } else {
            None
        });
        if crossing.is_none() && in_flight.is_none() {
            return Precheck::Admitted;
        }
        // Not admitted after all.
        self.settle_all(probe, actors);
        let Some((actor, score)) = crossing else {
            return Precheck::InFlight(in_flight.expect("checked above"));
        };
        if let crate::state::Verdict::Block { remaining, .. } = self.verdicts.verdict(&actor, now) {
            // Already blocked (its verdict did not cover this request, or
            // it came in between): no new strike, no second count.
            return Precheck::Blocked(actor, Span::from_duration(remaining).max(Span::new(1)));
        }
        // The attempt counts in the service-wide view as what the pre-check
        // took it for, the worst answer (a foreign object where foreign
        // objects are the tell, else a miss): refusing attempts must not
        // hide an attack from the view.
        self.live
            .of(probe.slot)
            .view
            .count_refused(&probe.view, now);
        let scene = super::escalate::Scene {
            policy,
            probe,
            now,
            actors,
        };
        let until = self.block_in(&scene, actor, score, VerdictReason::Detected);
        Precheck::Blocked(actor, until.saturating_sub(now).max(Span::new(1)))
    }
}

/// What the pre-check says of a probe request.
enum Precheck {
    /// Admitted: pending in its actors' records.
    Admitted,
    /// The actor's own object: nothing to count or hold.
    Own,
    /// Refused for now: with its pending answers it could cross.
    InFlight(ActorKey),
    /// Refused, the actor blocked (and when to retry).
    Blocked(ActorKey, Span),
}

/// Whether an address's verdicts and evidence hold this request. An
/// address is many people, so what it did holds its anonymous requests
/// only, never the accounts behind it, on a probe that needs a login. A
/// probe that needs none (`needs_login = false`, or, unset, it has answered
/// an anonymous request with a hit or a miss: a password reset, a sign-up)
/// leaves the account on a request to the caller's choice: held like an
/// anonymous one, or a guesser would send each guess with another
/// account's token to slip out of its address's block.
impl Detector {
    fn address_holds_all(&self, actors: &Actors, probe: Option<&Probe>) -> bool {
        actors.account.is_none()
            || probe.is_some_and(|p| match p.needs_login {
                Some(needs) => !needs,
                None => self
                    .live
                    .of(p.slot)
                    .answers_anonymous
                    .load(std::sync::atomic::Ordering::Relaxed),
            })
    }
}
