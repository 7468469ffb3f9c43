//! [`Report`]: what a replay found, and its text summary (its `Display`).

use std::collections::BTreeMap;
use std::fmt;

use super::plot::PlotData;

/// A line that could not be read, with where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The file, when several were read.
    pub file: Option<String>,
    /// Its line number (from 1).
    pub line: u64,
    /// What was wrong with it.
    pub reason: String,
}

/// When a probe's first block came.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstBlock {
    /// The log's time of the request that set it (RFC 3339).
    pub time: String,
    /// Seconds from the log's first request.
    pub after_secs: f64,
    /// The file, when several were read.
    pub file: Option<String>,
    /// The line of the request that set it.
    pub line: u64,
    /// The actor blocked.
    pub actor: String,
}

/// One probe's tallies.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    /// Its name.
    pub name: String,
    /// Requests to it.
    pub requests: u64,
    /// Of which enforce mode would have refused.
    pub refused: u64,
    /// Refusals by (refusal, actor kind).
    pub by_reason: Vec<(String, String, u64)>,
    /// Logged answers: hits.
    pub hits: u64,
    /// Logged answers: misses.
    pub misses: u64,
    /// Logged answers: denied.
    pub denied: u64,
    /// Logged answers in no outcome class.
    pub unclassified: u64,
    /// Its first block, if any.
    pub first_block: Option<FirstBlock>,
    /// Why its targets could not be read from the log, if they could not.
    pub not_in_log: Option<String>,
}

/// An actor that was refused although most of its probe requests were
/// ordinary: its own objects (objects probes) or hits (identities probes).
/// The false positives to look at first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collateral {
    /// The actor.
    pub actor: String,
    /// Why it is listed.
    pub why: CollateralWhy,
    /// Its probe requests.
    pub probe_requests: u32,
    /// Of which ordinary.
    pub ordinary: u32,
    /// Its requests enforce mode would have refused.
    pub refused: u32,
    /// The first of them: time, file (when several), line.
    pub first_refused: Option<(String, Option<String>, u64)>,
}

/// Why a refused actor is counted as collateral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CollateralWhy {
    /// Most of its probe requests were ordinary by the detector's rules:
    /// objects of its own (by id, by the ownership hook, or owned as the
    /// log's `owner` says), targets it knows (`known`), finds on an
    /// identities probe.
    Ordinary,
    /// It read only existing objects that are not its own by id, and the
    /// log says nothing of owners: a customer reading its orders, whose ids
    /// are not account ids, looks exactly so (and so does a scraper
    /// through a broken access check; the count of its requests tells
    /// them apart). Log owners ([`GuardBuilder::access_log`](crate::GuardBuilder::access_log))
    /// to know.
    OwnersUnknown,
}

impl CollateralWhy {
    /// The word the summary shows.
    pub fn as_str(self) -> &'static str {
        match self {
            CollateralWhy::Ordinary => "ordinary",
            CollateralWhy::OwnersUnknown => "owner?",
        }
    }
}

/// A suspect: an (actor, probe) record with suspicion or strikes at the
/// end of the replay, with its signals as of its last request.
#[derive(Debug, Clone, PartialEq)]
pub struct SuspectReport {
    /// The actor.
    pub actor: String,
    /// The probe.
    pub probe: String,
    /// Suspicion at its last request (1.0 is a block).
    pub score: f64,
    /// Times blocked.
    pub strikes: u32,
    /// Its verdict at the end of the log.
    pub verdict: String,
    /// Distinct foreign targets in the window.
    pub foreign: f64,
    /// Distinct targets that were misses.
    pub misses: f64,
    /// Distinct targets that were denied.
    pub denied: f64,
    /// Requests in the window.
    pub requests: u32,
    /// Consecutive +-1 steps through numeric targets.
    pub seq_run: u32,
    /// Machine-regular cadence.
    pub regular: bool,
    /// The long view's foreign targets.
    pub long_foreign: f64,
    /// The long view's misses.
    pub long_misses: f64,
}

/// Verdict changes, and distinct actors throttled and blocked per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerdictCounts {
    /// Blocks set (escalations included).
    pub blocks: u64,
    /// Throttles set.
    pub throttles: u64,
    /// Distinct actors blocked, by kind.
    pub blocked: BTreeMap<&'static str, u64>,
    /// Distinct actors throttled, by kind.
    pub throttled: BTreeMap<&'static str, u64>,
}

/// What a replay found. Its `Display` is the summary `enumguard replay`
/// prints.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Report {
    /// Lines read, of every kind.
    pub lines_read: u64,
    /// Lines that were requests (and were replayed).
    pub parsed: u64,
    /// Lines skipped, by reason.
    pub skipped: Vec<(String, u64)>,
    /// Lines that could not be read.
    pub failed: u64,
    /// The first of them, with line numbers.
    pub failures: Vec<Failure>,
    /// Requests more than `reorder_secs` out of order (replayed at the
    /// time reached).
    pub late: u64,
    /// The reorder window, in seconds.
    pub reorder_secs: u64,
    /// The first request's time.
    pub first_time: Option<String>,
    /// The last request's time.
    pub last_time: Option<String>,
    /// Requests that matched no probe.
    pub other_requests: u64,
    /// Of which refused, by (refusal, actor kind).
    pub other_refused: Vec<(String, String, u64)>,
    /// Per probe, in config order.
    pub probes: Vec<ProbeReport>,
    /// Verdicts.
    pub verdicts: VerdictCounts,
    /// The collateral, most refused first (at most `top`).
    pub collateral: Vec<Collateral>,
    /// How many actors are collateral in all.
    pub collateral_total: usize,
    /// Of which [`CollateralWhy::OwnersUnknown`].
    pub collateral_unowned: usize,
    /// Some line of the log said who owned its object.
    pub owners_in_log: bool,
    /// The top suspects (at most `top`).
    pub suspects: Vec<SuspectReport>,
    /// How many suspects in all.
    pub suspects_total: usize,
    /// Actors not tallied for the collateral (past the bound).
    pub untracked_actors: u64,
    /// The log has sessions, but the config names no session source: as
    /// in the layer, sessions were not actors.
    pub sessions_ignored: bool,
    /// The plot's data, when kept.
    pub plot: Option<PlotData>,
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn at(file: &Option<String>, line: u64) -> String {
    match file {
        Some(f) => format!("{f}:{line}"),
        None => format!("line {line}"),
    }
}

fn reasons(r: &[(String, String, u64)]) -> String {
    r.iter()
        .map(|(why, kind, n)| format!("{why} ({kind}) {}", thousands(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn per_kind(m: &BTreeMap<&'static str, u64>) -> String {
    let parts: Vec<String> = m
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {}", thousands(*n)))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "enumguard replay (what enforce mode would have done)")?;
        write!(f, "lines read: {}", thousands(self.lines_read))?;
        if let (Some(a), Some(b)) = (&self.first_time, &self.last_time) {
            write!(f, ", requests from {a} to {b}")?;
        }
        writeln!(f)?;
        let skipped: u64 = self.skipped.iter().map(|(_, n)| n).sum();
        writeln!(
            f,
            "  parsed {}, skipped {}, failed {}",
            thousands(self.parsed),
            thousands(skipped),
            thousands(self.failed)
        )?;
        for (why, n) in &self.skipped {
            writeln!(f, "  skipped {}: {why}", thousands(*n))?;
        }
        if self.failed > 0 {
            writeln!(f, "  failed lines (the first {}):", self.failures.len())?;
            for x in &self.failures {
                writeln!(f, "    {}: {}", at(&x.file, x.line), x.reason)?;
            }
            if self.failed > self.failures.len() as u64 {
                writeln!(
                    f,
                    "    ... and {} more",
                    thousands(self.failed - self.failures.len() as u64)
                )?;
            }
        }
        if self.late > 0 {
            writeln!(
                f,
                "  {} requests came more than --reorder-secs {} out of order: replayed at the time reached",
                thousands(self.late),
                self.reorder_secs
            )?;
        }
        if self.sessions_ignored {
            writeln!(
                f,
                "  note: the log has sessions but the config names no `session` source: as in the layer, sessions are not actors"
            )?;
        }
        writeln!(f)?;
        writeln!(f, "probes")?;
        writeln!(
            f,
            "  {:<20} {:>10} {:>9} {:>9} {:>9} {:>9}",
            "probe", "requests", "hits", "misses", "denied", "refused"
        )?;
        for p in &self.probes {
            writeln!(
                f,
                "  {:<20} {:>10} {:>9} {:>9} {:>9} {:>9}",
                p.name,
                thousands(p.requests),
                thousands(p.hits),
                thousands(p.misses),
                thousands(p.denied),
                thousands(p.refused)
            )?;
        }
        for p in &self.probes {
            if p.refused > 0 {
                writeln!(f, "  {} refused: {}", p.name, reasons(&p.by_reason))?;
            }
            match &p.first_block {
                Some(b) => writeln!(
                    f,
                    "  {} first block: {} ({:.0} s into the log, {}), {}",
                    p.name,
                    b.time,
                    b.after_secs,
                    at(&b.file, b.line),
                    b.actor
                )?,
                None => writeln!(f, "  {} first block: none", p.name)?,
            }
            if let Some(n) = &p.not_in_log {
                writeln!(f, "  {} warning: {n}", p.name)?;
            }
        }
        write!(
            f,
            "  other requests (no probe): {}",
            thousands(self.other_requests)
        )?;
        if self.other_refused.is_empty() {
            writeln!(f)?;
        } else {
            writeln!(f, ", refused: {}", reasons(&self.other_refused))?;
        }
        writeln!(f)?;
        let v = &self.verdicts;
        writeln!(
            f,
            "verdicts: {} blocks, {} throttles",
            thousands(v.blocks),
            thousands(v.throttles)
        )?;
        writeln!(f, "  actors blocked: {}", per_kind(&v.blocked))?;
        writeln!(f, "  actors throttled: {}", per_kind(&v.throttled))?;
        writeln!(f)?;
        writeln!(
            f,
            "collateral (refused, yet most of their probe requests were to their own objects, known targets or hits): {}",
            self.collateral_total
        )?;
        if self.collateral_unowned > 0 {
            writeln!(
                f,
                "  of which {} read only existing objects that are not their account id, and this log says nothing of owners: \
                 they may be customers reading their own (log owners: GuardBuilder::access_log), or scrapers through a broken access check",
                self.collateral_unowned
            )?;
        } else if self.collateral_total == 0 && !self.owners_in_log {
            writeln!(
                f,
                "  (this log says nothing of owners: an object is the caller's own only when its id is the account id)"
            )?;
        }
        if !self.collateral.is_empty() {
            writeln!(
                f,
                "  {:<36} {:<8} {:>9} {:>9} {:>8}  first refused",
                "actor", "why", "probe req", "ordinary", "refused"
            )?;
        }
        for c in &self.collateral {
            let first = c
                .first_refused
                .as_ref()
                .map(|(t, file, line)| format!("{t} ({})", at(file, *line)))
                .unwrap_or_default();
            writeln!(
                f,
                "  {:<36} {:<8} {:>9} {:>9} {:>8}  {first}",
                c.actor,
                c.why.as_str(),
                c.probe_requests,
                c.ordinary,
                c.refused
            )?;
        }
        if self.untracked_actors > 0 {
            writeln!(
                f,
                "  ({} actor sightings past the tally's bound were not tallied)",
                thousands(self.untracked_actors)
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "top suspects ({} of {}; signals as of their last request)",
            self.suspects.len(),
            self.suspects_total
        )?;
        if !self.suspects.is_empty() {
            writeln!(
                f,
                "  {:<36} {:<16} {:>6} {:>3} {:<12} {:>7} {:>6} {:>6} {:>5} {:>4} {:>7} {:>8} {:>8}",
                "actor",
                "probe",
                "score",
                "str",
                "verdict",
                "foreign",
                "misses",
                "denied",
                "reqs",
                "seq",
                "cadence",
                "long fgn",
                "long mss"
            )?;
        }
        for s in &self.suspects {
            writeln!(
                f,
                "  {:<36} {:<16} {:>6.2} {:>3} {:<12} {:>7.1} {:>6.1} {:>6.1} {:>5} {:>4} {:>7} {:>8.1} {:>8.1}",
                s.actor,
                s.probe,
                s.score,
                s.strikes,
                s.verdict,
                s.foreign,
                s.misses,
                s.denied,
                s.requests,
                s.seq_run,
                if s.regular { "regular" } else { "-" },
                s.long_foreign,
                s.long_misses
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
