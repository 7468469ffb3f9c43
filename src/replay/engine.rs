//! [`Replay`]: log lines in, held for reordering and replayed in time
//! order through the detector, each line translated to what the core
//! reads of a request and its answer; what the detector decides goes to
//! the tallies, the plot's timeline and the `--decisions` / `--verdicts`
//! lines as it goes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use http::{HeaderMap, Method, StatusCode};

use super::assemble::Parts;
use super::input::Line;
use super::line::{self, Entry, Parsed};
use super::options::{Format, Options};
use super::output::Output;
use super::report::{Failure, FirstBlock, Report};
use super::tally::{Seen, Tallies};
use super::time::format_rfc3339;
use super::timeline::Timeline;
use crate::actor::{AccountId, ActorKind, Standing};
use crate::config::{Config, ConfigError, Mode};
use crate::detect::{
    Answered, BodyRead, ChangeKind, Decision, Detector, Head, Hooks, Noted, Policy, VerdictChange,
};
use crate::probe::{Outcome, TargetSource};

/// Lines held for reordering at most; past it the earliest is replayed.
const MAX_PENDING: usize = 1 << 20;

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
    tally: Tallies,
    /// The headers of a log line: none (the log holds what the guard read
    /// of them).
    no_headers: HeaderMap,
    out: Output,
    timeline: Option<Timeline>,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("lines_read", &self.tally.lines_read)
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
        Ok(Self {
            tally: Tallies::new(names.len(), opts.reveal),
            out: Output::new(names, opts.seed, opts.reveal),
            detector,
            policy,
            changes,
            pending: BinaryHeap::new(),
            seq: 0,
            max_time: i64::MIN,
            last_time: None,
            first_time: None,
            opts,
            no_headers: HeaderMap::new(),
            timeline: None,
        })
    }

    /// Writes one JSON line per request to `w`, in replay (time) order.
    pub fn decisions_to(&mut self, w: impl Write + 'static) {
        self.out.decisions_to(w);
    }

    /// Writes one JSON line per verdict change to `w`.
    pub fn verdicts_to(&mut self, w: impl Write + 'static) {
        self.out.verdicts_to(w);
    }

    /// Keeps the counts the plot needs ([`Report::plot`]).
    pub fn keep_plot(&mut self) {
        self.timeline = Some(Timeline::new(self.out.probes().len(), 0));
    }

    /// Names the files, in the order their index is given to
    /// [`feed`](Self::feed); with more than one, decisions and failures
    /// name the file.
    pub fn set_files(&mut self, files: Vec<String>) {
        self.out.set_files(files);
    }

    /// One line of file number `file` (its index in [`set_files`](Self::set_files)),
    /// `line` its number there (from 1).
    ///
    /// # Errors
    /// Writing a decision or verdict line failed.
    pub fn feed(&mut self, file: u32, line: u64, text: Line<'_>) -> io::Result<()> {
        self.tally.lines_read += 1;
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
                self.tally.parsed += 1;
                self.hold(file, line, entry)
            }
            Parsed::Skipped(why) => {
                *self.tally.skipped.entry(why).or_default() += 1;
                Ok(())
            }
            Parsed::Failed(reason) => {
                let out = &self.out;
                self.tally.failure(|| Failure {
                    file: out.file(file),
                    line,
                    reason,
                });
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
        self.out.flush()?;
        Ok(Parts {
            tally: &self.tally,
            out: &self.out,
            detector: &self.detector,
            policy: &self.policy,
            opts: &self.opts,
            first_time: self.first_time,
            last_time: self.last_time,
            timeline: self.timeline.as_ref(),
        }
        .report())
    }

    fn replay(&mut self, p: Pending) -> io::Result<()> {
        let Pending {
            file, line, entry, ..
        } = p;
        // Monotonic time: a line later than the reorder window is replayed
        // at the time reached.
        let now = match self.last_time {
            Some(t) if entry.time < t => {
                self.tally.late += 1;
                t
            }
            _ => entry.time,
        };
        self.last_time = Some(now);
        let start = *self.first_time.get_or_insert(now);
        if let Some(t) = &mut self.timeline {
            t.starts_at(start);
        }
        let clock = now.max(0) as u64;
        let policy = self.policy.clone();
        if policy.session.is_none() && entry.session.is_some() {
            self.tally.sessions_ignored = true;
        }
        let owner = entry.owner.as_deref().map(AccountId::new);
        self.tally.owners_in_log |= owner.is_some() || entry.own;
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
                self.tally.probes[i].not_in_log.get_or_insert(
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
                        self.tally.probes[i].not_in_log.get_or_insert(
                            "its target is in the JSON body, which this log does not hold (jsonl: log it as `body`): its requests count without a target",
                        );
                    }
                    self.detector
                        .body(ticket, BodyRead::Unseen, Some(&mut noted))
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
        self.tally.count_request(pi, outcome, why.as_ref());
        if let (Some(i), Some(tl)) = (pi, &mut self.timeline) {
            tl.add(i, now.div_euclid(1_000_000_000), refused);
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
        self.tally
            .count_actors(&actors, &entry, seen, refused, (now, file, line));
        if self.out.writes_decisions() {
            self.out
                .decision(file, line, &entry, &actors, pi, why.as_ref())?;
        }
        self.drain_changes(now, file, line)
    }

    /// Takes the verdict changes the line made to the tallies, the first
    /// block of each probe, the plot and the `--verdicts` lines.
    fn drain_changes(&mut self, now: i64, file: u32, line: u64) -> io::Result<()> {
        let changes = std::mem::take(&mut *self.changes.lock().unwrap_or_else(|e| e.into_inner()));
        for c in changes {
            self.tally.count_verdict(&c);
            let shown = self.out.actor(&c.actor, self.tally.name(&c.actor));
            let pi = c.probe.as_deref().and_then(|n| self.out.probe_index(n));
            if let (ChangeKind::Block, Some(i)) = (c.kind, pi) {
                if self.tally.probes[i].first_block.is_none() {
                    let start = self.first_time.unwrap_or(now);
                    self.tally.probes[i].first_block = Some(FirstBlock {
                        time: format_rfc3339(now),
                        after_secs: (now - start) as f64 / 1e9,
                        file: self.out.file(file),
                        line,
                        actor: shown.clone(),
                    });
                }
            }
            if let (Some(tl), Some(i)) = (&mut self.timeline, pi) {
                let until = now.saturating_add(c.remaining.min(i64::MAX as u64) as i64);
                tl.verdict(c.actor, i, now, until);
            }
            self.out.verdict(line, now, &shown, &c)?;
        }
        Ok(())
    }
}
