//! What the replay counts as it goes, that the [`Report`](super::Report)
//! is made of: the lines, each probe's requests and refusals, each actor's
//! requests and verdicts; and the collateral rule that reads them.

use std::collections::{BTreeMap, HashMap};

use super::line::Entry;
use super::report::{CollateralWhy, Failure, FirstBlock, VerdictCounts};
use crate::actor::{ActorKey, ActorKind, Actors};
use crate::detect::{ChangeKind, VerdictChange};
use crate::probe::Outcome;

/// Actors whose requests are tallied (for the collateral) at most.
const MAX_ACTORS: usize = 1 << 20;
/// Failures kept with their line number (all are counted).
const MAX_FAILURES: usize = 20;

/// What one probe request tells of its actors, for the collateral.
#[derive(Clone, Copy)]
pub(super) struct Seen {
    pub(super) ordinary: bool,
    pub(super) bad: bool,
    pub(super) unowned: bool,
}

/// What is tallied per actor (for the collateral list).
#[derive(Default)]
pub(super) struct ActorTally {
    /// Its name in clear, from the log (accounts and sessions; kept only
    /// with `reveal`).
    pub(super) name: Option<Box<str>>,
    pub(super) probe_requests: u32,
    /// Requests to its own objects (objects probes; by id, by the
    /// ownership hook or by the owner the application gave), targets it
    /// knows, or hits (identities).
    pub(super) ordinary: u32,
    /// Probe requests answered with a miss or a denial.
    pub(super) bad: u32,
    /// Requests to objects probes whose target was not its own by id, and
    /// for which the log said nothing of the owner.
    pub(super) unowned: u32,
    pub(super) refused: u32,
    pub(super) first_refused: Option<(i64, u32, u64)>,
    throttled: bool,
    blocked: bool,
}

#[derive(Default)]
pub(super) struct ProbeTally {
    pub(super) requests: u64,
    pub(super) refused: u64,
    pub(super) by_reason: BTreeMap<(String, String), u64>,
    pub(super) outcomes: [u64; 4],
    pub(super) first_block: Option<FirstBlock>,
    /// Why its targets cannot be read from this log, once seen.
    pub(super) not_in_log: Option<&'static str>,
}

/// Everything counted over a replay.
pub(super) struct Tallies {
    pub(super) lines_read: u64,
    pub(super) parsed: u64,
    pub(super) skipped: BTreeMap<&'static str, u64>,
    pub(super) failed: u64,
    pub(super) failures: Vec<Failure>,
    pub(super) late: u64,
    pub(super) other_requests: u64,
    pub(super) other_refused: BTreeMap<(String, String), u64>,
    /// One per probe, in config order.
    pub(super) probes: Vec<ProbeTally>,
    pub(super) actors: HashMap<ActorKey, ActorTally, ahash::RandomState>,
    pub(super) untracked_actors: u64,
    pub(super) verdict_counts: VerdictCounts,
    pub(super) sessions_ignored: bool,
    /// Some line said who owned its object (`owner` or `own`).
    pub(super) owners_in_log: bool,
    /// Actors' names in clear are kept (`reveal`).
    keep_names: bool,
}

impl Tallies {
    /// Nothing counted yet, on `probes` probes.
    pub(super) fn new(probes: usize, keep_names: bool) -> Self {
        Self {
            lines_read: 0,
            parsed: 0,
            skipped: BTreeMap::new(),
            failed: 0,
            failures: Vec::new(),
            late: 0,
            other_requests: 0,
            other_refused: BTreeMap::new(),
            probes: (0..probes).map(|_| ProbeTally::default()).collect(),
            actors: HashMap::default(),
            untracked_actors: 0,
            verdict_counts: VerdictCounts::default(),
            sessions_ignored: false,
            owners_in_log: false,
            keep_names,
        }
    }

    /// Counts a line that failed to parse; the first few are kept, as
    /// `failure` makes them.
    pub(super) fn failure(&mut self, failure: impl FnOnce() -> Failure) {
        self.failed += 1;
        if self.failures.len() < MAX_FAILURES {
            self.failures.push(failure());
        }
    }

    /// Counts a request: on the probe of index `probe`, or on none;
    /// `why` it was refused (reason, actor kind), if it was.
    pub(super) fn count_request(
        &mut self,
        probe: Option<usize>,
        outcome: Option<Outcome>,
        why: Option<&(String, String)>,
    ) {
        match probe {
            Some(i) => {
                let t = &mut self.probes[i];
                t.requests += 1;
                let o = match outcome {
                    Some(Outcome::Hit) => 0,
                    Some(Outcome::Miss) => 1,
                    Some(Outcome::Denied) => 2,
                    None => 3,
                };
                t.outcomes[o] += 1;
                if let Some(w) = why {
                    t.refused += 1;
                    *t.by_reason.entry(w.clone()).or_default() += 1;
                }
            }
            None => {
                self.other_requests += 1;
                if let Some(w) = why {
                    *self.other_refused.entry(w.clone()).or_default() += 1;
                }
            }
        }
    }

    /// Counts a request for each of its actors (up to [`MAX_ACTORS`]
    /// actors; more are counted as untracked): `seen` on a probe,
    /// `refused` at `at` (time, file, line).
    pub(super) fn count_actors(
        &mut self,
        actors: &Actors,
        entry: &Entry,
        seen: Option<Seen>,
        refused: bool,
        at: (i64, u32, u64),
    ) {
        for key in actors.keys() {
            let full = self.actors.len() >= MAX_ACTORS;
            let t = match self.actors.get_mut(&key) {
                Some(t) => t,
                None if full => {
                    self.untracked_actors += 1;
                    continue;
                }
                None => self.actors.entry(key).or_default(),
            };
            if self.keep_names && t.name.is_none() {
                t.name = match key.kind() {
                    ActorKind::Account => entry.account.clone(),
                    ActorKind::Session => entry.session.clone(),
                    _ => None,
                };
            }
            if let Some(s) = seen {
                t.probe_requests += 1;
                t.ordinary += u32::from(s.ordinary);
                t.bad += u32::from(s.bad);
                t.unowned += u32::from(s.unowned);
            }
            if refused {
                t.refused += 1;
                t.first_refused.get_or_insert(at);
            }
        }
    }

    /// Counts a verdict change: every block and throttle, and each actor
    /// tallied the first time it is blocked or throttled.
    pub(super) fn count_verdict(&mut self, c: &VerdictChange) {
        let t = self.actors.get_mut(&c.actor);
        let counts = &mut self.verdict_counts;
        let (all, by_kind, already) = match c.kind {
            ChangeKind::Block => (
                &mut counts.blocks,
                &mut counts.blocked,
                t.map(|t| &mut t.blocked),
            ),
            ChangeKind::Throttle => (
                &mut counts.throttles,
                &mut counts.throttled,
                t.map(|t| &mut t.throttled),
            ),
            _ => return,
        };
        *all += 1;
        *by_kind.entry(c.actor.kind().as_str()).or_default() +=
            u64::from(already.as_ref().is_some_and(|a| !**a));
        if let Some(a) = already {
            *a = true;
        }
    }

    /// An actor's name in clear, if it is kept.
    pub(super) fn name(&self, key: &ActorKey) -> Option<&str> {
        self.actors.get(key).and_then(|t| t.name.as_deref())
    }

    /// Why a refused actor is collateral, if it is: most of its probe
    /// requests were ordinary by the detector's rules; or, where the log
    /// says nothing of owners, it read only existing objects that are not
    /// its own by id (a customer reading its orders, whose ids are not
    /// account ids, looks exactly so).
    pub(super) fn collateral_why(&self, t: &ActorTally) -> Option<CollateralWhy> {
        if t.refused == 0 {
            None
        } else if u64::from(t.ordinary) * 2 > u64::from(t.probe_requests) {
            Some(CollateralWhy::Ordinary)
        } else if !self.owners_in_log
            && t.unowned > 0
            && u64::from(t.bad) * 10 <= u64::from(t.probe_requests)
        {
            Some(CollateralWhy::OwnersUnknown)
        } else {
            None
        }
    }
}
