//! [`Replay`]: log lines in, in time order, through the detector; the
//! tallies the report is made of, and the `--decisions` / `--verdicts`
//! lines as it goes.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use http::{HeaderMap, Method, StatusCode};

use super::input::Line;
use super::line::{self, Entry, Parsed};
use super::plot::{PlotData, ProbeSeries};
use super::report::{
    Collateral, CollateralWhy, Failure, FirstBlock, ProbeReport, Report, SuspectReport,
    VerdictCounts,
};
use super::time::format_rfc3339;
use super::{Format, Options};
use crate::actor::{AccountId, ActorKey, ActorKind, Actors};
use crate::config::{Config, ConfigError, Mode};
use crate::detect::{
    Answered, BodyRead, ChangeKind, Decision, Detector, Head, Hooks, Noted, Policy, VerdictChange,
};
use crate::actor::Standing;
use crate::probe::{Outcome, TargetSource};

/// Lines held for reordering at most; past it the earliest is replayed.
const MAX_PENDING: usize = 1 << 20;
/// Actors whose requests are tallied (for the collateral) at most.
const MAX_ACTORS: usize = 1 << 20;
/// Failures kept with their line number (all are counted).
const MAX_FAILURES: usize = 20;
/// Verdict intervals kept for the plot.
const MAX_INTERVALS: usize = 1 << 20;
/// Plot buckets: the bucket doubles past this many.
const MAX_BUCKETS: usize = 2048;

struct Pending {
    time: i64,
    seq: u64,
    file: u32,
    line: u64,
    entry: Entry,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.time, self.seq) == (o.time, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(o.time, o.seq))
    }
}

/// A log line as the core reads a request head: the logged address is the
/// client's (no proxy headers), the session and a body's or header's
/// target are the logged ones.
struct LineHead<'a> {
    entry: &'a Entry,
    headers: &'a HeaderMap,
}

impl Head for LineHead<'_> {
    fn method(&self) -> &Method {
        &self.entry.method
    }
    fn path(&self) -> &str {
        self.entry.path()
    }
    fn query(&self) -> Option<&str> {
        self.entry.query()
    }
    fn headers(&self) -> &HeaderMap {
        self.headers
    }
    fn peer(&self) -> Option<std::net::IpAddr> {
        Some(self.entry.addr)
    }
    fn standing(&self) -> Option<Standing> {
        (self.entry.standing != Standing::Unknown).then_some(self.entry.standing)
    }
    fn session_token(&self) -> Option<&[u8]> {
        self.entry.session.as_deref().map(str::as_bytes)
    }
    fn logged_target(&self) -> Option<&[u8]> {
        self.entry.target.as_deref().map(str::as_bytes)
    }
}

/// What the log says the application said: the account (`GuardBuilder::account`)
/// and the ownership hook's `own`.
impl Hooks<LineHead<'_>> for LineHead<'_> {
    fn account(&self, head: &LineHead<'_>) -> Option<AccountId> {
        head.entry.account.as_deref().map(AccountId::new)
    }
    fn owns(&self, head: &LineHead<'_>, _probe: &str, _target: &[u8]) -> Option<bool> {
        head.entry.own.then_some(true)
    }
}

/// What one probe request tells of its actors, for the collateral.
#[derive(Clone, Copy)]
struct Seen {
    ordinary: bool,
    bad: bool,
    unowned: bool,
}

/// What is tallied per actor (for the collateral list).
#[derive(Default)]
struct ActorTally {
    /// Its name in clear, from the log (accounts and sessions; kept only
    /// with `reveal`).
    name: Option<Box<str>>,
    probe_requests: u32,
    /// Requests to its own objects (objects probes; by id, by the
    /// ownership hook or by the owner the application gave), targets it
    /// knows, or hits (identities).
    ordinary: u32,
    /// Probe requests answered with a miss or a denial.
    bad: u32,
    /// Requests to objects probes whose target was not its own by id, and
    /// for which the log said nothing of the owner.
    unowned: u32,
    refused: u32,
    first_refused: Option<(i64, u32, u64)>,
    throttled: bool,
    blocked: bool,
}

#[derive(Default)]
struct ProbeTally {
    requests: u64,
    refused: u64,
    by_reason: BTreeMap<(String, String), u64>,
    outcomes: [u64; 4],
    first_block: Option<FirstBlock>,
    /// Why its targets cannot be read from this log, once seen.
    not_in_log: Option<&'static str>,
}

/// The plot's counts, in buckets that double in length to stay few.
struct Timeline {
    start: i64,
    bucket: i64,
    counts: Vec<Vec<(u64, u64)>>,
    intervals: Vec<(usize, i64, i64)>,
    open: HashMap<(ActorKey, usize), usize>,
}

impl Timeline {
    fn new(probes: usize, start: i64) -> Self {
        Self {
            start,
            bucket: 1,
            counts: vec![Vec::new(); probes],
            intervals: Vec::new(),
            open: HashMap::new(),
        }
    }

    fn add(&mut self, probe: usize, secs: i64, refused: bool) {
        let mut i = ((secs - self.start).max(0) / self.bucket) as usize;
        while i >= MAX_BUCKETS {
            self.bucket *= 2;
            for c in &mut self.counts {
                let halved: Vec<(u64, u64)> = c
                    .chunks(2)
                    .map(|p| p.iter().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)))
                    .collect();
                *c = halved;
            }
            i = ((secs - self.start).max(0) / self.bucket) as usize;
        }
        let c = &mut self.counts[probe];
        if c.len() <= i {
            c.resize(i + 1, (0, 0));
        }
        c[i].0 += 1;
        c[i].1 += u64::from(refused);
    }

    fn verdict(&mut self, key: ActorKey, probe: usize, from: i64, until: i64) {
        if let Some(&i) = self.open.get(&(key, probe)) {
            let end = &mut self.intervals[i].2;
            *end = (*end).min(from);
        }
        if self.intervals.len() < MAX_INTERVALS {
            self.open.insert((key, probe), self.intervals.len());
            self.intervals.push((probe, from, until));
        }
    }

    fn data(&self, names: &[String]) -> PlotData {
        let len = self.counts.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut probes: Vec<ProbeSeries> = names
            .iter()
            .zip(&self.counts)
            .map(|(name, c)| ProbeSeries {
                name: name.clone(),
                requests: (0..len).map(|i| c.get(i).map_or(0, |x| x.0)).collect(),
                refusals: (0..len).map(|i| c.get(i).map_or(0, |x| x.1)).collect(),
                verdicts: vec![0; len],
            })
            .collect();
        // Active verdicts per bucket: a difference array over the buckets
        // each interval touches.
        let mut diff = vec![vec![0i64; len + 1]; probes.len()];
        for &(p, from, until) in &self.intervals {
            let a = ((from / 1_000_000_000 - self.start).max(0) / self.bucket) as usize;
            let b = (((until - 1) / 1_000_000_000 - self.start).max(0) / self.bucket) as usize;
            if until <= from || a >= len {
                continue;
            }
            diff[p][a] += 1;
            diff[p][(b + 1).min(len)] -= 1;
        }
        for (s, d) in probes.iter_mut().zip(&diff) {
            let mut run = 0i64;
            for (i, v) in s.verdicts.iter_mut().enumerate() {
                run += d[i];
                *v = run.max(0) as u64;
            }
        }
        PlotData {
            start_secs: self.start,
            bucket_secs: self.bucket,
            probes,
        }
    }
}

/// A replay of access logs through the detector. Feed it lines
/// ([`feed`](Self::feed)), in the order of the files; [`finish`](Self::finish)
/// replays what is still held for reordering and gives the [`Report`].
pub struct Replay {
    detector: Detector,
    policy: Arc<Policy>,
    opts: Options,
    changes: Arc<Mutex<Vec<VerdictChange>>>,
    pending: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    max_time: i64,
    last_time: Option<i64>,
    first_time: Option<i64>,
    hash_keys: (u64, u64),
    names: Vec<String>,
    files: Vec<String>,
    // Tallies.
    lines_read: u64,
    parsed: u64,
    skipped: BTreeMap<&'static str, u64>,
    failed: u64,
    failures: Vec<Failure>,
    late: u64,
    other_requests: u64,
    other_refused: BTreeMap<(String, String), u64>,
    probes: Vec<ProbeTally>,
    actors: HashMap<ActorKey, ActorTally, ahash::RandomState>,
    untracked_actors: u64,
    verdict_counts: VerdictCounts,
    sessions_ignored: bool,
    /// The headers of a log line: none (the log holds what the guard read
    /// of them).
    no_headers: HeaderMap,
    /// Some line said who owned its object (`owner` or `own`).
    owners_in_log: bool,
    decisions: Option<Box<dyn Write>>,
    verdicts: Option<Box<dyn Write>>,
    timeline: Option<Timeline>,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("lines_read", &self.lines_read)
            .finish_non_exhaustive()
    }
}

impl Replay {
    /// A replay of `config` (run in enforce mode whatever its `mode`).
    ///
    /// # Errors
    /// The config's first invalid field.
    pub fn new(mut config: Config, opts: Options) -> Result<Self, ConfigError> {
        config.mode = Mode::Enforce;
        // Nothing is shared with replicas: the replay is offline.
        config.cluster = None;
        let detector = Detector::with_seed(config, opts.seed)?;
        let changes: Arc<Mutex<Vec<VerdictChange>>> = Arc::default();
        let sink = changes.clone();
        detector.set_listener(move |c: &VerdictChange| {
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(c.clone());
        });
        let policy = detector.policy().clone();
        let names: Vec<String> = policy.probe_names().map(str::to_owned).collect();
        let h = crate::actor::hash128((opts.seed, 3u64), b"enumguard replay actors");
        Ok(Self {
            probes: names.iter().map(|_| ProbeTally::default()).collect(),
            names,
            detector,
            policy,
            changes,
            pending: BinaryHeap::new(),
            seq: 0,
            max_time: i64::MIN,
            last_time: None,
            first_time: None,
            hash_keys: ((h >> 64) as u64, h as u64),
            files: Vec::new(),
            opts,
            lines_read: 0,
            parsed: 0,
            skipped: BTreeMap::new(),
            failed: 0,
            failures: Vec::new(),
            late: 0,
            other_requests: 0,
            other_refused: BTreeMap::new(),
            actors: HashMap::default(),
            untracked_actors: 0,
            verdict_counts: VerdictCounts::default(),
            sessions_ignored: false,
            no_headers: HeaderMap::new(),
            owners_in_log: false,
            decisions: None,
            verdicts: None,
            timeline: None,
        })
    }

    /// Writes one JSON line per request to `w`, in replay (time) order.
    pub fn decisions_to(&mut self, w: impl Write + 'static) {
        self.decisions = Some(Box::new(w));
    }

    /// Writes one JSON line per verdict change to `w`.
    pub fn verdicts_to(&mut self, w: impl Write + 'static) {
        self.verdicts = Some(Box::new(w));
    }

    /// Keeps the counts the plot needs ([`Report::plot`]).
    pub fn keep_plot(&mut self) {
        self.timeline = Some(Timeline::new(self.names.len(), 0));
    }

    /// Names the files, in the order their index is given to
    /// [`feed`](Self::feed); with more than one, decisions and failures
    /// name the file.
    pub fn set_files(&mut self, files: Vec<String>) {
        self.files = files;
    }

    /// One line of file number `file` (its index in [`set_files`](Self::set_files)),
    /// `line` its number there (from 1).
    ///
    /// # Errors
    /// Writing a decision or verdict line failed.
    pub fn feed(&mut self, file: u32, line: u64, text: Line<'_>) -> io::Result<()> {
        self.lines_read += 1;
        let parsed = match text {
            Line::Text(s) => match self.opts.format {
                Format::Combined => line::combined(s),
                Format::Jsonl => line::json(s, &self.opts.fields),
            },
            Line::NotUtf8 => Parsed::Failed("not UTF-8".into()),
            Line::TooLong => Parsed::Failed(format!(
                "longer than {} bytes (skipped)",
                super::input::MAX_LINE
            )),
        };
        match parsed {
            Parsed::Request(entry) => {
                self.parsed += 1;
                self.hold(file, line, entry)
            }
            Parsed::Skipped(why) => {
                *self.skipped.entry(why).or_default() += 1;
                Ok(())
            }
            Parsed::Failed(reason) => {
                self.failed += 1;
                if self.failures.len() < MAX_FAILURES {
                    self.failures.push(Failure {
                        file: self.file_name(file),
                        line,
                        reason,
                    });
                }
                Ok(())
            }
        }
    }

    /// [`feed`](Self::feed) for a line as text.
    ///
    /// # Errors
    /// Writing a decision or verdict line failed.
    pub fn feed_text(&mut self, file: u32, line: u64, text: &str) -> io::Result<()> {
        self.feed(file, line, Line::Text(text))
    }

    fn file_name(&self, file: u32) -> Option<String> {
        (self.files.len() > 1).then(|| self.files[file as usize].clone())
    }

    /// Holds the entry until every line that may come before it has come.
    fn hold(&mut self, file: u32, line: u64, entry: Entry) -> io::Result<()> {
        let time = entry.time;
        self.max_time = self.max_time.max(time);
        self.seq += 1;
        self.pending.push(Reverse(Pending {
            time,
            seq: self.seq,
            file,
            line,
            entry,
        }));
        let horizon = self
            .max_time
            .saturating_sub((self.opts.reorder_secs as i64).saturating_mul(1_000_000_000));
        while let Some(Reverse(top)) = self.pending.peek() {
            if top.time > horizon && self.pending.len() <= MAX_PENDING {
                break;
            }
            let Some(Reverse(p)) = self.pending.pop() else {
                break;
            };
            self.replay(p)?;
        }
        Ok(())
    }

    /// Replays everything still held and gives the report.
    ///
    /// # Errors
    /// Writing a decision or verdict line failed.
    pub fn finish(mut self) -> io::Result<Report> {
        while let Some(Reverse(p)) = self.pending.pop() {
            self.replay(p)?;
        }
        if let Some(w) = &mut self.decisions {
            w.flush()?;
        }
        if let Some(w) = &mut self.verdicts {
            w.flush()?;
        }
        Ok(self.report())
    }

    /// An actor as the output shows it: a keyed hash, or in clear.
    fn show(&self, key: &ActorKey, name: Option<&str>) -> String {
        if self.opts.reveal {
            return match (key.kind(), name) {
                (ActorKind::Account | ActorKind::Session, Some(n)) => format!("{}:{n}", key.kind()),
                _ => key.to_string(),
            };
        }
        let mut h = siphasher::sip::SipHasher13::new_with_keys(self.hash_keys.0, self.hash_keys.1);
        key.hash(&mut h);
        format!("{}:#{:016x}", key.kind(), h.finish())
    }

    fn replay(&mut self, p: Pending) -> io::Result<()> {
        let Pending {
            file, line, entry, ..
        } = p;
        // Monotonic time: a line later than the reorder window is replayed
        // at the time reached.
        let now = match self.last_time {
            Some(t) if entry.time < t => {
                self.late += 1;
                t
            }
            _ => entry.time,
        };
        self.last_time = Some(now);
        let start = *self.first_time.get_or_insert(now);
        if let Some(t) = &mut self.timeline {
            if t.counts.iter().all(Vec::is_empty) && t.intervals.is_empty() {
                t.start = start.div_euclid(1_000_000_000);
            }
        }
        let clock = now.max(0) as u64;
        let policy = self.policy.clone();
        if policy.session.is_none() && entry.session.is_some() {
            self.sessions_ignored = true;
        }
        let owner = entry.owner.as_deref().map(AccountId::new);
        self.owners_in_log |= owner.is_some() || entry.own;
        let head = LineHead {
            entry: &entry,
            headers: &self.no_headers,
        };
        let mut noted = Noted::default();
        let mut decision = self
            .detector
            .before(&policy, &head, &head, || clock, Some(&mut noted));
        let pi = noted.probe.map(usize::from);
        let probe = pi.and_then(|i| policy.probes.get(i));
        if let (Decision::Track(_), Some(i), Some(p)) = (&decision, pi, probe) {
            if matches!(p.source, TargetSource::Header(_)) && entry.target.is_none() {
                self.probes[i].not_in_log.get_or_insert(
                    "its target is a request header, which access logs do not hold: its requests count without a target",
                );
            }
        }
        if let Decision::Track(ticket) = decision {
            decision = match (ticket.body_limit(), &entry.body) {
                (None, _) => Decision::Track(ticket),
                (Some(_), Some(b)) => {
                    self.detector
                        .body(ticket, BodyRead::Read(b.as_bytes()), Some(&mut noted))
                }
                (Some(_), None) => {
                    if let Some(i) = pi {
                        self.probes[i].not_in_log.get_or_insert(
                            "its target is in the JSON body, which this log does not hold (jsonl: log it as `body`): its requests count without a target",
                        );
                    }
                    self.detector.body(ticket, BodyRead::Unseen, Some(&mut noted))
                }
            };
        }
        let actors = noted.actors().copied().unwrap_or_default();
        let own = noted.own();
        let status = StatusCode::from_u16(entry.status).ok();
        // The guard's own classification when the log holds it (it heard
        // the application's `Outcome`), else the config's status rules.
        let outcome = match (probe, status) {
            (Some(_), _) if entry.outcome.is_some() => entry.outcome,
            (Some(p), Some(s)) => p.classify_status(s),
            _ => None,
        };
        let account = actors.account();
        let refusal = match decision {
            Decision::Refuse(r) => Some(r),
            Decision::Track(ticket) => {
                let answer = Answered {
                    status: status.unwrap_or(StatusCode::OK),
                    outcome,
                    owner,
                    known: entry.known,
                    refused: false,
                };
                self.detector.after(ticket, &answer);
                None
            }
            Decision::Pass => None,
        };
        let refused = refusal.is_some();
        let why = refusal.as_ref().map(|r| {
            (
                r.kind().as_str().to_owned(),
                r.actor_kind().map_or("-", ActorKind::as_str).to_owned(),
            )
        });
        // Tallies.
        match pi {
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
                if let Some(w) = &why {
                    t.refused += 1;
                    *t.by_reason.entry(w.clone()).or_default() += 1;
                }
                if let Some(tl) = &mut self.timeline {
                    tl.add(i, now.div_euclid(1_000_000_000), refused);
                }
            }
            None => {
                self.other_requests += 1;
                if let Some(w) = &why {
                    *self.other_refused.entry(w.clone()).or_default() += 1;
                }
            }
        }
        // Ordinary by the detector's rules: an object of its own (by id, by
        // the ownership hook, or owned as the application said), a target it
        // knows, a find on an identities probe.
        let owned = owner.is_some() && owner == account;
        // (On a probe whose tell is foreign targets, a find of somebody
        // else's object is the scraper's signature, not ordinary use.)
        let ordinary = probe.is_some_and(|p| {
            entry.known
                || if p.watch_foreign {
                    own || owned
                } else {
                    outcome == Some(Outcome::Hit)
                }
        });
        let seen = probe.map(|p| Seen {
            ordinary,
            bad: matches!(outcome, Some(Outcome::Miss | Outcome::Denied)),
            unowned: p.watch_foreign && !own && owner.is_none(),
        });
        self.tally_actors(&actors, &entry, seen, refused, (now, file, line));
        if self.decisions.is_some() {
            self.write_decision(file, line, &entry, &actors, pi, why.as_ref())?;
        }
        self.drain_changes(now, file, line)
    }

    fn tally_actors(
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
            if self.opts.reveal && t.name.is_none() {
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

    fn write_decision(
        &mut self,
        file: u32,
        line: u64,
        entry: &Entry,
        actors: &Actors,
        probe: Option<usize>,
        why: Option<&(String, String)>,
    ) -> io::Result<()> {
        let mut a = serde_json::Map::new();
        for key in actors.keys() {
            let name = match key.kind() {
                ActorKind::Account => entry.account.as_deref(),
                ActorKind::Session => entry.session.as_deref(),
                _ => None,
            };
            a.insert(key.kind().as_str().into(), self.show(&key, name).into());
        }
        let mut v = serde_json::Map::new();
        if let Some(f) = self.file_name(file) {
            v.insert("file".into(), f.into());
        }
        v.insert("line".into(), line.into());
        v.insert("time".into(), format_rfc3339(entry.time).into());
        v.insert(
            "decision".into(),
            if why.is_some() { "refuse" } else { "pass" }.into(),
        );
        v.insert(
            "reason".into(),
            why.map_or(serde_json::Value::Null, |w| w.0.clone().into()),
        );
        if let Some(w) = why {
            v.insert("refused_actor".into(), w.1.clone().into());
        }
        v.insert(
            "probe".into(),
            probe.map_or(serde_json::Value::Null, |i| self.names[i].clone().into()),
        );
        v.insert("status".into(), entry.status.into());
        v.insert("actors".into(), a.into());
        let Some(w) = self.decisions.as_mut() else {
            return Ok(());
        };
        serde_json::to_writer(&mut *w, &v)?;
        w.write_all(b"\n")
    }

    fn drain_changes(&mut self, now: i64, file: u32, line: u64) -> io::Result<()> {
        let changes = std::mem::take(&mut *self.changes.lock().unwrap_or_else(|e| e.into_inner()));
        for c in changes {
            let kind = c.actor.kind();
            let t = self.actors.get_mut(&c.actor);
            match c.kind {
                ChangeKind::Block => {
                    self.verdict_counts.blocks += 1;
                    *self
                        .verdict_counts
                        .blocked
                        .entry(kind.as_str())
                        .or_default() += u64::from(t.as_ref().is_some_and(|t| !t.blocked));
                    if let Some(t) = t {
                        t.blocked = true;
                    }
                }
                ChangeKind::Throttle => {
                    self.verdict_counts.throttles += 1;
                    *self
                        .verdict_counts
                        .throttled
                        .entry(kind.as_str())
                        .or_default() += u64::from(t.as_ref().is_some_and(|t| !t.throttled));
                    if let Some(t) = t {
                        t.throttled = true;
                    }
                }
                _ => {}
            }
            let name = self.actors.get(&c.actor).and_then(|t| t.name.as_deref());
            let shown = self.show(&c.actor, name);
            let pi = c
                .probe
                .as_deref()
                .and_then(|n| self.names.iter().position(|x| x == n));
            if let (ChangeKind::Block, Some(i)) = (c.kind, pi) {
                if self.probes[i].first_block.is_none() {
                    let start = self.first_time.unwrap_or(now);
                    self.probes[i].first_block = Some(FirstBlock {
                        time: format_rfc3339(now),
                        after_secs: (now - start) as f64 / 1e9,
                        file: self.file_name(file),
                        line,
                        actor: shown.clone(),
                    });
                }
            }
            if let (Some(tl), Some(i)) = (&mut self.timeline, pi) {
                let until = now.saturating_add(c.remaining.min(i64::MAX as u64) as i64);
                tl.verdict(c.actor, i, now, until);
            }
            if let Some(w) = &mut self.verdicts {
                let v = serde_json::json!({
                    "line": line,
                    "time": format_rfc3339(now),
                    "actor": shown,
                    "actor_kind": kind.as_str(),
                    "verdict": c.kind.as_str(),
                    "reason": c.reason.as_str(),
                    "probe": c.probe.as_deref(),
                    "secs": c.remaining as f64 / 1e9,
                    "strikes": c.strikes,
                });
                serde_json::to_writer(&mut *w, &v)?;
                w.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    /// Why a refused actor is collateral, if it is: most of its probe
    /// requests were ordinary by the detector's rules; or, where the log
    /// says nothing of owners, it read only existing objects that are not
    /// its own by id (a customer reading its orders, whose ids are not
    /// account ids, looks exactly so).
    fn collateral_why(&self, t: &ActorTally) -> Option<CollateralWhy> {
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

    fn report(&self) -> Report {
        let end = self.last_time.unwrap_or(0);
        let probes = self
            .names
            .iter()
            .zip(&self.probes)
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
        let mut collateral: Vec<Collateral> = self
            .actors
            .iter()
            .filter_map(|(k, t)| Some((k, t, self.collateral_why(t)?)))
            .map(|(k, t, why)| Collateral {
                actor: self.show(k, t.name.as_deref()),
                why,
                probe_requests: t.probe_requests,
                ordinary: t.ordinary,
                refused: t.refused,
                first_refused: t
                    .first_refused
                    .map(|(time, file, line)| (format_rfc3339(time), self.file_name(file), line)),
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
        collateral.truncate(self.opts.top);
        let mut suspects = Vec::new();
        let policy = &self.policy;
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
            let name = self.actors.get(&actor).and_then(|t| t.name.as_deref());
            suspects.push(SuspectReport {
                actor: self.show(&actor, name),
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
        suspects.truncate(self.opts.top);
        Report {
            lines_read: self.lines_read,
            parsed: self.parsed,
            skipped: self
                .skipped
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            failed: self.failed,
            failures: self.failures.clone(),
            late: self.late,
            reorder_secs: self.opts.reorder_secs,
            first_time: self.first_time.map(format_rfc3339),
            last_time: self.last_time.map(format_rfc3339),
            other_requests: self.other_requests,
            other_refused: self
                .other_refused
                .iter()
                .map(|((r, k), n)| (r.clone(), k.clone(), *n))
                .collect(),
            probes,
            verdicts: self.verdict_counts.clone(),
            collateral,
            collateral_total,
            collateral_unowned,
            owners_in_log: self.owners_in_log,
            suspects,
            suspects_total,
            untracked_actors: self.untracked_actors,
            sessions_ignored: self.sessions_ignored,
            plot: self.timeline.as_ref().map(|t| t.data(&self.names)),
        }
    }
}

fn verdict_word(v: crate::state::Verdict) -> String {
    use crate::state::Verdict;
    match v {
        Verdict::Allow => "allow".into(),
        Verdict::Throttle { remaining, .. } => format!("throttle {}s", remaining.as_secs()),
        Verdict::Block { remaining, .. } => format!("block {}s", remaining.as_secs()),
    }
}
