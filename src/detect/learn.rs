//! Learning from an answer: every actor's record updated, scored in its
//! context, and the verdicts of those that crossed a threshold changed;
//! the service-wide view told.

use super::escalate::Scene;
use super::live::ProbeLive;
use super::probes::Probe;
use super::score::{self, Level};
use super::view::{Counted, Seen};
use super::{Detector, Policy, context};
use crate::actor::{ActorKey, ActorKind, Actors};
use crate::clock::Nanos;
use crate::probe::{Outcome, TargetInfo};

/// What one answer teaches: the request's probe, time, actors, target and
/// outcome; `admitted`: the request was pending in its actors' records
/// (and is settled now).
#[derive(Clone, Copy)]
pub(crate) struct Lesson<'a> {
    pub(crate) probe: &'a Probe,
    pub(crate) now: Nanos,
    pub(crate) actors: &'a Actors,
    pub(crate) target: Option<TargetInfo>,
    pub(crate) outcome: Option<Outcome>,
    pub(crate) admitted: bool,
}

/// What one record said once it learned.
#[derive(Default)]
struct Learned {
    /// Its suspicion.
    score: f64,
    /// The suspicion it carries to its address (see `context`).
    carry: f64,
    /// Requests in its window.
    requests: u32,
    /// A person with history (not new).
    with_history: bool,
    /// It had evidence to score.
    evidence: bool,
    /// Others' guesses seen at its address (see `context::guessing_address`).
    guessing: u32,
}

impl Detector {
    /// Folds the answer to a probe request into every actor's record and
    /// changes verdicts that crossed a threshold; `admitted`: the request
    /// was pending in those records, and is settled now.
    pub(crate) fn learn(&self, policy: &Policy, lesson: Lesson<'_>) {
        let Lesson {
            probe,
            now,
            actors,
            target,
            outcome,
            admitted,
        } = lesson;
        let live = self.live.of(probe.slot);
        if actors.account.is_none() && matches!(outcome, Some(Outcome::Hit | Outcome::Miss)) {
            ProbeLive::note(&live.answers_anonymous);
        }
        let t = &probe.thresholds;
        let (window, long) = (probe.window, probe.long);
        let view = &live.view;
        // On a probe that counts finds, a miss on a target somebody asked
        // for recently tells the asker nothing the service was not telling
        // others: the records count the request, not the target (see
        // `novelty.rs`).
        let mut target = target;
        let mut shared_miss = false;
        // A target the caller knows (`Known`) is asked for too: a contact
        // that one person looks up as theirs is no stranger's guess for the
        // next (left out, a contact known to everyone would look novel, and
        // the next person's lookup of it would be held as a possible miss).
        if let (true, Some(tg), Some(Outcome::Hit | Outcome::Miss)) =
            (t.hit_block > 0, target, outcome)
        {
            let asked = live.novelty(long).note(tg.hash, now);
            if !tg.is_self && outcome == Some(Outcome::Miss) && asked {
                shared_miss = true;
                target = None;
            }
        }
        // Read only if some record has evidence to score.
        let anomalous = std::cell::OnceCell::new();
        let mut beside = context::Beside::default();
        // Requests of the address in its window, for the view; whether a
        // person with history made the request.
        let mut address_requests = 0u32;
        let mut established = false;
        let mut worst: Option<(ActorKey, f64)> = None;
        // Read once per request: whether other replicas sent evidence, and
        // whether anyone wants to hear of updated records (only the cluster
        // sync does: without the `redis` feature neither is read at all).
        let sharing = cfg!(feature = "redis") && self.sharing();
        let touched = if cfg!(feature = "redis") {
            self.touched()
        } else {
            None
        };
        // Where a verdict is decided.
        let scene = Scene {
            policy,
            probe,
            now,
            actors,
        };
        // The records this request updated: one notice per request.
        let mut updated: [Option<ActorKey>; 4] = [None; 4];
        for key in actors.keys() {
            let remote = if sharing {
                self.remote_of(key, probe.slot, now)
            } else {
                None
            };
            let res = self
                .store
                .update((key, probe.slot), now, policy.half_life, |r| {
                    if admitted {
                        r.settle();
                    }
                    r.learn(now, window, long, target, outcome);
                    let requests = r.window_requests(now, window);
                    let standing = context::standing_of(key.kind(), actors);
                    let with_history =
                        key.kind().is_personal() && !context::is_new(policy, r, now, standing);
                    if r.no_evidence() {
                        // Nothing of its own to score (own objects read, no
                        // foreign target yet, nothing carried): no
                        // suspicion, whatever its address did.
                        r.set_score(0.0);
                        return Learned {
                            requests,
                            with_history,
                            ..Learned::default()
                        };
                    }
                    let anomalous = *anomalous.get_or_init(|| self.read_view(probe, now));
                    let ctx = context::Judging {
                        policy,
                        probe,
                        now,
                        anomalous,
                    }
                    .context(
                        key.kind(),
                        r,
                        context::Beside { standing, ..beside },
                    );
                    let signals = r.signals_with(now, window, long, remote.as_ref());
                    let s = score::score(t, &context::judged(key.kind(), signals), &ctx);
                    r.set_score(s);
                    Learned {
                        score: s,
                        carry: r.carry_at(now, policy.half_life),
                        requests,
                        with_history,
                        evidence: true,
                        guessing: context::guessing_address(probe, key.kind(), r, now),
                    }
                });
            let Some(Learned {
                score,
                carry,
                requests,
                with_history,
                evidence,
                guessing,
            }) = res
            else {
                continue;
            };
            // Only records with evidence are worth sharing: one that only
            // read its own objects adds nothing to another replica's view.
            if evidence && touched.is_some() {
                if let Some(k) = updated.iter_mut().find(|k| k.is_none()) {
                    *k = Some(key);
                }
            }
            established |= with_history;
            if key.kind() == ActorKind::Ip {
                address_requests = requests;
            }
            beside.suspect |= context::suspect_address(policy, key.kind(), carry);
            beside.guessing = beside.guessing.max(guessing);
            match score::level(t, score) {
                Level::Block => {
                    if worst.is_none_or(|(_, s)| score > s) {
                        worst = Some((key, score));
                    }
                }
                Level::Throttle => self.throttle_in(&scene, key, score),
                Level::Allow => {}
            }
        }
        if let (Some(f), true) = (touched, updated[0].is_some()) {
            f(&updated, probe.slot);
        }
        // One busy address counts for a bounded share of the view: the view
        // is for attacks spread over many addresses (see
        // `ServiceViewConfig::per_address`).
        if address_requests <= policy.per_address {
            let seen = if outcome == Some(Outcome::Miss) {
                if shared_miss {
                    Seen::Neither
                } else {
                    Seen::Miss
                }
            } else if target.is_some_and(|t| !t.is_self) {
                Seen::Foreign
            } else {
                Seen::Neither
            };
            view.count(&probe.view, now, Counted { seen, established });
        }
        if let Some((key, score)) = worst {
            self.block_crossed_in(&scene, key, score);
        }
    }
}

impl Detector {
    /// Whether the probe's service-wide view is anomalous now, with the
    /// change noted for operators (see `View::note`).
    pub(crate) fn read_view(&self, probe: &Probe, now: Nanos) -> bool {
        let view = &self.live.of(probe.slot).view;
        let a = view.anomalous(&probe.view, now);
        view.note(a, &probe.name);
        a
    }
}
