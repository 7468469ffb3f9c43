//! The [`Report`] put together when a replay ends: the tallies per probe,
//! the collateral actors, the suspects the detector's store still holds,
//! and the plot's data.

use super::options::Options;
use super::output::Output;
use super::report::{Collateral, CollateralWhy, ProbeReport, Report, SuspectReport};
use super::tally::Tallies;
use super::time::format_rfc3339;
use super::timeline::Timeline;
use crate::detect::{Detector, Policy};
use crate::state::Verdict;

/// What a report is made of.
pub(super) struct Parts<'a> {
    pub(super) tally: &'a Tallies,
    pub(super) out: &'a Output,
    pub(super) detector: &'a Detector,
    pub(super) policy: &'a Policy,
    pub(super) opts: &'a Options,
    /// The times of the first and the last line replayed.
    pub(super) first_time: Option<i64>,
    pub(super) last_time: Option<i64>,
    pub(super) timeline: Option<&'a Timeline>,
}

impl Parts<'_> {
    pub(super) fn report(&self) -> Report {
        let Self {
            tally, out, opts, ..
        } = self;
        let end = self.last_time.unwrap_or(0);
        let probes = out
            .probes()
            .iter()
            .zip(&tally.probes)
            .map(|(name, t)| ProbeReport {
                name: name.clone(),
                requests: t.requests,
                refused: t.refused,
                by_reason: t
                    .by_reason
                    .iter()
                    .map(|((r, k), n)| (r.clone(), k.clone(), *n))
                    .collect(),
                hits: t.outcomes[0],
                misses: t.outcomes[1],
                denied: t.outcomes[2],
                unclassified: t.outcomes[3],
                first_block: t.first_block.clone(),
                not_in_log: t.not_in_log.map(str::to_owned),
            })
            .collect();
        let mut collateral: Vec<Collateral> = tally
            .actors
            .iter()
            .filter_map(|(k, t)| Some((k, t, tally.collateral_why(t)?)))
            .map(|(k, t, why)| Collateral {
                actor: out.actor(k, t.name.as_deref()),
                why,
                probe_requests: t.probe_requests,
                ordinary: t.ordinary,
                refused: t.refused,
                first_refused: t
                    .first_refused
                    .map(|(time, file, line)| (format_rfc3339(time), out.file(file), line)),
            })
            .collect();
        collateral.sort_by(|a, b| {
            b.refused
                .cmp(&a.refused)
                .then_with(|| a.actor.cmp(&b.actor))
        });
        let collateral_total = collateral.len();
        let collateral_unowned = collateral
            .iter()
            .filter(|c| c.why == CollateralWhy::OwnersUnknown)
            .count();
        collateral.truncate(opts.top);
        let mut suspects = Vec::new();
        let policy = self.policy;
        let clock = end.max(0) as u64;
        self.detector.store.for_each(|key, r| {
            let Some(p) = policy.by_slot(key.probe()) else {
                return;
            };
            if r.last_score() <= 0.0 && r.strikes == 0 {
                return;
            }
            let s = r.signals(r.last_seen, p.window, p.long);
            let actor = key.actor();
            suspects.push(SuspectReport {
                actor: out.actor(&actor, tally.name(&actor)),
                probe: p.name.to_string(),
                score: r.last_score(),
                strikes: u32::from(r.strikes),
                verdict: verdict_word(self.detector.verdict_of(&actor, clock)),
                foreign: s.foreign,
                misses: s.misses,
                denied: s.denied,
                requests: s.requests,
                seq_run: s.seq_run,
                regular: s.regular,
                long_foreign: s.long_foreign,
                long_misses: s.long_misses,
            });
        });
        suspects.sort_by(|a, b| {
            b.strikes
                .cmp(&a.strikes)
                .then(b.score.total_cmp(&a.score))
                .then_with(|| (&a.actor, &a.probe).cmp(&(&b.actor, &b.probe)))
        });
        let suspects_total = suspects.len();
        suspects.truncate(opts.top);
        Report {
            lines_read: tally.lines_read,
            parsed: tally.parsed,
            skipped: tally
                .skipped
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            failed: tally.failed,
            failures: tally.failures.clone(),
            late: tally.late,
            reorder_secs: opts.reorder_secs,
            first_time: self.first_time.map(format_rfc3339),
            last_time: self.last_time.map(format_rfc3339),
            other_requests: tally.other_requests,
            other_refused: tally
                .other_refused
                .iter()
                .map(|((r, k), n)| (r.clone(), k.clone(), *n))
                .collect(),
            probes,
            verdicts: tally.verdict_counts.clone(),
            collateral,
            collateral_total,
            collateral_unowned,
            owners_in_log: tally.owners_in_log,
            suspects,
            suspects_total,
            untracked_actors: tally.untracked_actors,
            sessions_ignored: tally.sessions_ignored,
            plot: self.timeline.map(|t| t.data(out.probes())),
        }
    }
}

fn verdict_word(v: Verdict) -> String {
    match v {
        Verdict::Allow => "allow".into(),
        Verdict::Throttle { remaining, .. } => format!("throttle {}s", remaining.as_secs()),
        Verdict::Block { remaining, .. } => format!("block {}s", remaining.as_secs()),
    }
}
