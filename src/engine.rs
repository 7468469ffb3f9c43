//! The detection engine: probes, signal store, service-wide views and the
//! verdict table, and the two steps of a probe request: the pre-check before
//! the inner service runs and the learning step after it answered.

use crate::actor::{ActorKey, ActorKind, Actors};
use crate::clock::secs_to_nanos;
use crate::config::{Config, Mode};
use crate::policy::{self, Context, Level};
use crate::probe::{Outcome, Probe, TargetInfo};
use crate::signal::Record;
use crate::store::Store;
use crate::verdict::{Table, VerdictReason};
use crate::view::View;

/// The signals an actor is judged by: an address's cadence is that of
/// everyone behind it, so only a person's (a session's, an account's)
/// machine-regular cadence counts; an office signing up its staff can look
/// regular by chance.
fn judged(kind: ActorKind, mut s: crate::signal::Signals) -> crate::signal::Signals {
    if !kind.is_personal() {
        s.regular = false;
    }
    s
}

pub(crate) struct Engine {
    pub(crate) probes: Vec<Probe>,
    views: Vec<View>,
    /// Per probe: the application has reported an [`Owner`](crate::Owner)
    /// in a response, so ownership is known only after the handler.
    owner_reported: Vec<std::sync::atomic::AtomicBool>,
    pub(crate) store: Store,
    pub(crate) verdicts: Table,
    pub(crate) mode: Mode,
    block_base: u64,
    block_factor: u64,
    block_max: u64,
    throttle_for: u64,
    boost: f64,
    watch_factor: f64,
    per_address: u32,
    half_life: u64,
    new_actor: u64,
    history_hits: u32,
}

/// A refusal decided by the pre-check.
pub(crate) struct PreRefusal {
    pub(crate) actor: ActorKey,
    pub(crate) retry_after: u64,
}

impl Engine {
    pub(crate) fn new(config: &Config, probes: Vec<Probe>, verdicts: Table) -> Self {
        let views = probes
            .iter()
            .map(|p| {
                View::new(
                    &config.service_view,
                    p.self_target && p.thresholds.foreign_block > 0,
                    p.thresholds.baseline_miss_ratio,
                    p.thresholds.baseline_foreign_ratio,
                )
            })
            .collect();
        Self {
            owner_reported: probes
                .iter()
                .map(|_| std::sync::atomic::AtomicBool::new(false))
                .collect(),
            probes,
            views,
            store: Store::new(
                config.limits.max_actors,
                secs_to_nanos(config.blocks.max_secs).saturating_mul(2),
            ),
            verdicts,
            mode: config.mode,
            block_base: secs_to_nanos(config.blocks.base_secs),
            block_factor: config.blocks.factor as u64,
            block_max: secs_to_nanos(config.blocks.max_secs),
            throttle_for: secs_to_nanos(config.throttle.duration_secs),
            boost: config.links.boost,
            watch_factor: config.links.watch_factor,
            per_address: config.service_view.per_address,
            half_life: secs_to_nanos(config.links.half_life_secs),
            new_actor: secs_to_nanos(config.links.new_actor_secs),
            history_hits: config.links.history_hits,
        }
    }

    fn is_new(&self, r: &Record, now: u64) -> bool {
        self.is_young(r, now) && r.hits_total() < self.history_hits
    }

    /// Younger than `links.new_actor_secs`, whatever it did: what the watch
    /// on a suspect address goes by, since history hits (reading one's own
    /// object five times) cost an attacker nothing.
    fn is_young(&self, r: &Record, now: u64) -> bool {
        now.saturating_sub(r.first_seen()) < self.new_actor
    }

    /// The policy's context for one actor's record. `watched`: an address
    /// of the request carries suspicion on this probe (a blocked actor used
    /// it).
    fn context(
        &self,
        probe: &Probe,
        kind: ActorKind,
        r: &Record,
        now: u64,
        anomalous: bool,
        watched: bool,
    ) -> Context {
        let t = &probe.thresholds;
        let f = &t.kind_factors;
        let kind_factor = match kind {
            ActorKind::Ip => f.ip,
            ActorKind::Subnet => f.subnet,
            ActorKind::Session => f.session,
            ActorKind::Account => f.account,
        };
        let new = self.is_new(r, now);
        // The tightening is for actors the service knows nothing of. An
        // address that has shown it is busy (more requests this window than
        // the view counts of one address: an office, a NAT) keeps the kind
        // factor the operator set; a spread attack's addresses are blocked
        // long before they get there.
        // Busy means distinct targets, not requests: repeating one known
        // target is free, and a spread attack's address is blocked at its
        // third or so new target, long before it could get busy.
        let busy = !kind.is_personal()
            && r.window_targets(now, secs_to_nanos(t.window_secs)) > self.per_address;
        let tightened = anomalous && new && !busy && t.anomaly_factor < 1.0;
        let mut foreign_factor = 1.0;
        // A new account or session at a suspect address: watched, judged on
        // its own evidence with less room (it inherits no suspicion).
        if watched && self.is_young(r, now) && kind.is_personal() && probe.self_target {
            foreign_factor *= self.watch_factor;
        }
        // A stranger during an anomaly: a new account or session that has
        // read none of its own objects (an address is many people, and an
        // anonymous request owns nothing).
        if tightened && kind.is_personal() && probe.self_target && r.own_reads() == 0 {
            foreign_factor *= t.stranger_factor;
        }
        Context {
            kind_factor,
            tightened,
            strikes: u32::from(r.strikes),
            carry: r.carry_at(now, self.half_life),
            foreign_factor,
        }
    }

    /// Whether an address's record on a probe makes the new accounts and
    /// sessions beside it watched.
    /// The carry at which that is so: half of one link boost, i.e. a
    /// blocked person used the address within about the last half-life.
    fn suspect_address(&self, kind: ActorKind, carry: f64) -> bool {
        !kind.is_personal() && carry > 0.0 && carry >= self.boost * 0.5
    }

    fn block_duration(&self, strikes: u32) -> u64 {
        let mut d = self.block_base;
        for _ in 1..strikes {
            d = d.saturating_mul(self.block_factor);
            if d >= self.block_max {
                break;
            }
        }
        d.min(self.block_max)
    }

    /// Notes that the application reports owners on this probe's responses.
    pub(crate) fn note_owner_reported(&self, pi: u8) {
        use std::sync::atomic::Ordering;
        if let Some(f) = self.owner_reported.get(pi as usize) {
            if !f.load(Ordering::Relaxed) {
                f.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Would counting `target` for these actors cross a block threshold?
    /// If so, the actor is blocked now and the request refused before the
    /// inner service runs.
    pub(crate) fn precheck(
        &self,
        now: u64,
        actors: &Actors,
        pi: u8,
        target: &TargetInfo,
    ) -> Option<PreRefusal> {
        if target.is_self {
            return None;
        }
        let probe = self.probes.get(pi as usize)?;
        let t = &probe.thresholds;
        let long = secs_to_nanos(t.long_half_life_secs);
        // Read only if some record meets a new target.
        let anomalous = std::cell::OnceCell::new();
        let mut watched = false;
        let anonymous = actors.account.is_none();
        // Where the application tells ownership only in the response, the
        // target may be the actor's own: an actor with no evidence yet is
        // not refused on a guess (its first foreign read is then learned,
        // and the next one refused), so that new users reading their own
        // objects during a spike are never refused.
        // (An anonymous request owns nothing: no exemption there.)
        let owner_later = !anonymous
            && self
                .owner_reported
                .get(pi as usize)
                .is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed));
        let mut crossing: Option<(ActorKey, f64)> = None;
        for key in actors.keys() {
            let eval = |r: &Record| -> Option<f64> {
                if r.seen(target.hash) || (owner_later && r.no_evidence()) {
                    // Not a new target: counting it adds nothing.
                    return None;
                }
                let anomalous = *anomalous.get_or_init(|| self.views[pi as usize].anomalous(now));
                let ctx = self.context(probe, key.kind(), r, now, anomalous, watched);
                // One new distinct target, with the outcome that would
                // weigh most (unknown until the inner service answers).
                let now_signals = judged(
                    key.kind(),
                    r.signals(now, secs_to_nanos(t.window_secs), long),
                );
                let seq = r.seq_run_after(target);
                let worst = [Outcome::Miss, Outcome::Denied]
                    .into_iter()
                    .map(|o| policy::score(t, &now_signals.with_new_target(o, seq), &ctx))
                    .fold(0.0f64, f64::max);
                Some(worst)
            };
            let (score, carry) = match self
                .store
                .read(&(key, pi), |r| (eval(r), r.carry_at(now, self.half_life)))
            {
                Some(v) => v,
                None => (eval(&Record::new(now)), 0.0),
            };
            watched |= self.suspect_address(key.kind(), carry);
            // An address's verdict refuses only anonymous requests (see the
            // gate): a request with an account is refused for what its own
            // actors would cross.
            if !anonymous && !key.kind().is_personal() {
                continue;
            }
            if let Some(s) = score {
                if s >= 1.0 && crossing.is_none_or(|(_, best)| s > best) {
                    crossing = Some((key, s));
                }
            }
        }
        let (actor, score) = crossing?;
        if let crate::Verdict::Block { remaining, .. } = self.verdicts.verdict(&actor, now) {
            // Already blocked (observe mode lets its requests through): no
            // new strike, no second count in the view.
            return Some(PreRefusal {
                actor,
                retry_after: (remaining.as_nanos() as u64).max(1),
            });
        }
        // The attempt counts in the service-wide view as what the pre-check
        // took it for, the worst answer (a foreign object where foreign
        // objects are the tell, else a miss): refusing attempts must not
        // hide an attack from the view. In observe mode the request goes on
        // and is learned, and counted there instead.
        if self.mode == Mode::Enforce {
            let foreign = probe.self_target && t.foreign_block > 0;
            self.views[pi as usize].record(now, !foreign, foreign, false);
        }
        let until = self.block(now, actors, pi, actor, score, VerdictReason::Detected);
        Some(PreRefusal {
            actor,
            retry_after: until.saturating_sub(now).max(1),
        })
    }

    /// Folds the answer to a probe request into every actor's record and
    /// changes verdicts that crossed a threshold.
    pub(crate) fn learn(
        &self,
        now: u64,
        actors: &Actors,
        pi: u8,
        target: Option<TargetInfo>,
        outcome: Option<Outcome>,
    ) {
        let Some(probe) = self.probes.get(pi as usize) else {
            return;
        };
        let t = &probe.thresholds;
        let window = secs_to_nanos(t.window_secs);
        let long = secs_to_nanos(t.long_half_life_secs);
        let view = &self.views[pi as usize];
        // Read only if some record has evidence to score.
        let anomalous = std::cell::OnceCell::new();
        let mut watched = false;
        // Requests of the address in its window, for the view; whether a
        // person with history made the request.
        let mut address_requests = 0u32;
        let mut established = false;
        let mut worst: Option<(ActorKey, f64, Level)> = None;
        for key in actors.keys() {
            let res = self.store.update((key, pi), now, self.half_life, |r| {
                r.learn(now, window, long, target, outcome);
                let requests = r.window_requests(now, window);
                let person_with_history = key.kind().is_personal() && !self.is_new(r, now);
                if r.no_evidence() {
                    // Nothing of its own to score (own objects read, no
                    // foreign target yet, nothing carried): no suspicion,
                    // whatever its address did.
                    r.set_score(0.0);
                    return (0.0, 0.0, requests, person_with_history);
                }
                let anomalous = *anomalous.get_or_init(|| view.anomalous(now));
                let ctx = self.context(probe, key.kind(), r, now, anomalous, watched);
                let s = policy::score(t, &judged(key.kind(), r.signals(now, window, long)), &ctx);
                r.set_score(s);
                (
                    s,
                    r.carry_at(now, self.half_life),
                    requests,
                    person_with_history,
                )
            });
            let Some((score, carry, requests, with_history)) = res else {
                continue;
            };
            established |= with_history;
            if key.kind() == ActorKind::Ip {
                address_requests = requests;
            }
            watched |= self.suspect_address(key.kind(), carry);
            let lvl = policy::level(t, score);
            match lvl {
                Level::Block => {
                    if worst.is_none_or(|(_, s, _)| score > s) {
                        worst = Some((key, score, lvl));
                    }
                }
                Level::Throttle => {
                    if self.verdicts.throttle(
                        key,
                        now + self.throttle_for,
                        VerdictReason::Detected,
                        Some(pi),
                        now,
                    ) {
                        self.announce(
                            key,
                            actors,
                            pi,
                            "throttle",
                            VerdictReason::Detected,
                            score,
                            now,
                            0,
                        );
                    }
                }
                Level::Allow => {}
            }
        }
        // One busy address counts for a bounded share of the view: the view
        // is for attacks spread over many addresses (see
        // `ServiceViewConfig::per_address`).
        if address_requests <= self.per_address {
            view.record(
                now,
                outcome == Some(Outcome::Miss),
                target.is_some_and(|t| !t.is_self) && outcome != Some(Outcome::Miss),
                established,
            );
        }
        if let Some((key, score, _)) = worst {
            // Every actor at block level is blocked; the worst one links.
            for other in actors.keys() {
                if other == key {
                    continue;
                }
                let lvl = self
                    .store
                    .read(&(other, pi), |r| policy::level(t, r.last_score()))
                    .unwrap_or(Level::Allow);
                if lvl == Level::Block && !self.is_blocked(other, now) {
                    self.block_one(now, actors, pi, other, f64::NAN, VerdictReason::Detected);
                }
            }
            if !self.is_blocked(key, now) {
                self.block(now, actors, pi, key, score, VerdictReason::Detected);
            }
        }
    }

    fn is_blocked(&self, key: ActorKey, now: u64) -> bool {
        matches!(
            self.verdicts.verdict(&key, now),
            crate::Verdict::Block { .. }
        )
    }

    /// Blocks `actor` and raises the suspicion of the other actors of the
    /// request (linking). Returns the end of the block.
    ///
    /// Links go from a person to its addresses and its other identities
    /// (an account to its session and the reverse), never from an address
    /// to the people behind it: a blocked ip or subnet (many people) adds
    /// nothing to the accounts and sessions of the request, and an address
    /// that carries suspicion only makes the *new* accounts and sessions
    /// beside it watched (see `context`).
    fn block(
        &self,
        now: u64,
        actors: &Actors,
        pi: u8,
        actor: ActorKey,
        score: f64,
        reason: VerdictReason,
    ) -> u64 {
        let until = self.block_one(now, actors, pi, actor, score, reason);
        let t = &self.probes[pi as usize].thresholds;
        let from_person = actor.kind().is_personal();
        for other in actors.keys() {
            if other == actor || (other.kind().is_personal() && !from_person) {
                continue;
            }
            let linked = self.store.update((other, pi), now, self.half_life, |r| {
                r.raise_carry(now, self.half_life, self.boost, 0.0);
                let s = r.last_score() + self.boost;
                r.set_score(s);
                s
            });
            if let Some(s) = linked {
                if policy::level(t, s) == Level::Block && !self.is_blocked(other, now) {
                    self.block_one(now, actors, pi, other, s, VerdictReason::Linked);
                }
            }
        }
        until
    }

    fn block_one(
        &self,
        now: u64,
        actors: &Actors,
        pi: u8,
        actor: ActorKey,
        score: f64,
        reason: VerdictReason,
    ) -> u64 {
        let strikes = self
            .store
            .update((actor, pi), now, self.half_life, |r| {
                r.strikes = r.strikes.saturating_add(1);
                // A blocked actor comes back with half a block of carried
                // suspicion when its block *ends*, however long the block
                // was: a repeat offender is not forgotten while it waits
                // (at most 4, which a day-long block reaches).
                let d = self.block_duration(u32::from(r.strikes));
                let floor = 0.5 * 2f64.powf(d as f64 / self.half_life.max(1) as f64);
                r.raise_carry(now, self.half_life, 0.0, floor.min(4.0));
                r.set_score(r.last_score().max(1.0));
                r.strikes as u32
            })
            .unwrap_or(1);
        let until = now.saturating_add(self.block_duration(strikes));
        if self
            .verdicts
            .block(actor, until, reason, strikes, Some(pi), now)
        {
            self.announce(actor, actors, pi, "block", reason, score, now, strikes);
        }
        until
    }

    /// The tracing event and metric of a verdict change.
    #[allow(clippy::too_many_arguments)]
    fn announce(
        &self,
        actor: ActorKey,
        actors: &Actors,
        pi: u8,
        verdict: &'static str,
        reason: VerdictReason,
        score: f64,
        now: u64,
        strikes: u32,
    ) {
        let probe = &self.probes[pi as usize];
        let t = &probe.thresholds;
        let signals = self
            .store
            .read(&(actor, pi), |r| {
                r.signals(
                    now,
                    secs_to_nanos(t.window_secs),
                    secs_to_nanos(t.long_half_life_secs),
                )
            })
            .unwrap_or_default();
        let account = actors
            .account
            .filter(|a| a.key() == actor)
            .map(|a| a.to_string());
        let until_secs = match self.verdicts.verdict(&actor, now) {
            crate::Verdict::Block { remaining, .. }
            | crate::Verdict::Throttle { remaining, .. } => remaining.as_secs(),
            _ => 0,
        };
        tracing::warn!(
            target: "enumguard",
            actor = %actor,
            account = account.as_deref().unwrap_or(""),
            probe = %probe.name,
            verdict,
            reason = reason.as_str(),
            mode = if self.mode == Mode::Observe { "observe" } else { "enforce" },
            score = format_args!("{score:.2}"),
            foreign = format_args!("{:.1}", signals.foreign),
            misses = format_args!("{:.1}", signals.misses),
            denied = format_args!("{:.1}", signals.denied),
            seq_run = signals.seq_run,
            regular = signals.regular,
            foreign_block = t.foreign_block,
            miss_block = t.miss_block,
            denied_block = t.denied_block,
            strikes,
            secs = until_secs,
            "enumguard verdict changed"
        );
        metrics::counter!(
            crate::metrics::VERDICTS,
            "verdict" => verdict,
            "actor_kind" => actor.kind().as_str(),
            "reason" => reason.as_str(),
            "probe" => probe.name.to_string()
        )
        .increment(1);
    }

    /// Forgets an actor's records (after an operator's unban).
    pub(crate) fn forget(&self, key: ActorKey) {
        for pi in 0..self.probes.len() {
            self.store.remove(&(key, pi as u8));
        }
    }

    pub(crate) fn manual_block(&self, key: ActorKey, now: u64, dur: u64) {
        let strikes = match self.verdicts.get(&key) {
            Some(e) => e.strikes.max(1),
            None => 1,
        };
        if self.verdicts.block(
            key,
            now.saturating_add(dur),
            VerdictReason::Manual,
            strikes,
            None,
            now,
        ) {
            tracing::warn!(target: "enumguard", actor = %key, verdict = "block", reason = "manual", secs = dur / 1_000_000_000, "enumguard verdict changed");
            metrics::counter!(crate::metrics::VERDICTS, "verdict" => "block", "actor_kind" => key.kind().as_str(), "reason" => "manual", "probe" => "").increment(1);
        }
    }
}
