//! The detection core without tower: a trivial adapter drives the
//! [`Detector`] straight from a list of requests in simulated time, and the
//! tests check the rules that live behind it (thresholds, escalation,
//! links, the watch on a suspect address), that observe mode predicts
//! enforce mode, what the verdict events say, and reloads.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::events::{Capture, Fields};
use enumguard::detect::{Answered, Decision, Detector, Hooks};
use enumguard::{AccountId, ActorKind, Config, Outcome, RefusalKind, Verdict, VerdictReason};
use http::Method;

const S: u64 = 1_000_000_000;

/// One request of a scenario.
#[derive(Debug, Clone)]
struct Req {
    /// Seconds since the scenario began.
    at: u64,
    ip: Ipv4Addr,
    session: Option<String>,
    account: Option<u64>,
    path: String,
    /// What the service answers.
    answer: Outcome,
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Served,
    Refused(RefusalKind, Option<ActorKind>),
}

/// A request of the scenario as the core reads a head: its path, its
/// address, its session in the header the config names.
struct Head<'a> {
    r: &'a Req,
    headers: http::HeaderMap,
}

impl enumguard::detect::Head for Head<'_> {
    fn method(&self) -> &Method {
        &Method::GET
    }
    fn path(&self) -> &str {
        self.r.path.split('?').next().unwrap_or_default()
    }
    fn query(&self) -> Option<&str> {
        self.r.path.split_once('?').map(|(_, q)| q)
    }
    fn headers(&self) -> &http::HeaderMap {
        &self.headers
    }
    fn peer(&self) -> Option<IpAddr> {
        Some(IpAddr::V4(self.r.ip))
    }
}

/// The account is the scenario's.
impl Hooks<Head<'_>> for Req {
    fn account(&self, _: &Head<'_>) -> Option<AccountId> {
        self.account.map(AccountId::from)
    }
}

/// The test adapter: each request through the core's two calls, the
/// answer the scenario says for tracked requests. Time is the scenario's.
fn replay(detector: &Detector, reqs: &[Req]) -> Vec<Seen> {
    reqs.iter()
        .map(|r| {
            let policy = detector.policy_arc();
            let now = (3600 + r.at) * S;
            let mut headers = http::HeaderMap::new();
            if let Some(s) = &r.session {
                headers.insert("x-session", s.parse().unwrap());
            }
            let head = Head { r, headers };
            match detector.before(&policy, &head, r, || now, None) {
                Decision::Refuse(x) => Seen::Refused(x.kind(), x.actor_kind()),
                Decision::Pass => Seen::Served,
                Decision::Track(t) => {
                    let answer = Answered {
                        outcome: Some(r.answer),
                        ..Answered::status(http::StatusCode::OK)
                    };
                    detector.after(t, &answer);
                    Seen::Served
                }
            }
        })
        .collect()
}

const BOOK: &str = r#"
session = { header = "x-session" }
[[probes]]
name = "book"
path = "/accounts/{id}/book"
target = { path = "id" }
"#;

/// A detector for the book probe, its keys from a fixed seed: two
/// detectors name the same session alike and count the same targets alike.
fn detector(extra: &str) -> Detector {
    let config = format!("{extra}\n{BOOK}");
    Detector::with_seed(Config::from_toml_str(&config).unwrap(), 7).unwrap()
}

const X: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

/// `n` reads of other accounts' books by `account` (with `session`) from
/// `ip`, from `start` on, at irregular gaps of 7 to 17 s, ids neither in
/// order nor repeated (`seed` keeps walks apart).
fn walk(
    account: u64,
    session: Option<&str>,
    ip: Ipv4Addr,
    start: u64,
    n: u64,
    seed: u64,
) -> Vec<Req> {
    let mut at = start;
    (0..n)
        .map(|k| {
            at += 7 + (k * 13 + seed) % 11;
            Req {
                at,
                ip,
                session: session.map(str::to_owned),
                account: Some(account),
                path: format!("/accounts/{}/book", 10_000 + seed * 1_000 + (k * 37) % 997),
                answer: Outcome::Hit,
            }
        })
        .collect()
}

fn own(account: u64, ip: Ipv4Addr, at: u64) -> Req {
    Req {
        at,
        ip,
        session: None,
        account: Some(account),
        path: format!("/accounts/{account}/book"),
        answer: Outcome::Hit,
    }
}

fn served(seen: &[Seen]) -> usize {
    seen.iter().filter(|s| **s == Seen::Served).count()
}

fn account_verdict(d: &Detector, id: u64, at: u64) -> Verdict {
    d.verdict_of(&AccountId::from(id).key(), (3600 + at) * S)
}

/// A scraping account is stopped at its threshold (15 foreign books), and
/// when it comes back after its block it has half the room, and a block
/// four times as long.
#[test]
fn a_scraper_is_stopped_at_its_threshold_and_escalates_when_it_returns() {
    let d = detector("");
    let first = walk(7, None, X, 0, 40, 0);
    let seen = replay(&d, &first);
    assert!(served(&seen) <= 15, "{seen:?}");
    assert!(served(&seen) >= 12, "{seen:?}");
    assert_eq!(
        seen.last(),
        Some(&Seen::Refused(
            RefusalKind::Blocked,
            Some(ActorKind::Account)
        ))
    );
    let end = first.last().unwrap().at;
    match account_verdict(&d, 7, end) {
        Verdict::Block {
            strikes: 1,
            reason: VerdictReason::Detected,
            ..
        } => {}
        v => panic!("{v:?}"),
    }
    // After the 15-minute block, again.
    let back = walk(7, None, X, end + 901, 40, 1);
    let seen = replay(&d, &back);
    assert!(
        served(&seen) <= 8,
        "half the room, less what it carries: {seen:?}"
    );
    match account_verdict(&d, 7, back.last().unwrap().at) {
        Verdict::Block {
            strikes: 2,
            remaining,
            ..
        } => {
            assert!(
                remaining.as_secs() > 3000 && remaining.as_secs() <= 3600,
                "{remaining:?}"
            );
        }
        v => panic!("{v:?}"),
    }
}

/// The scenario of the links: an established user (C) and a scraper (A,
/// with a session) share an address; A is blocked, its session with it;
/// the address carries suspicion. A new account there (B) is refused at its
/// first foreign read, while C goes on untouched, and anonymous probe
/// requests from the address are refused.
fn links_scenario() -> (Vec<Req>, u64) {
    let mut reqs: Vec<Req> = (0..6).map(|i| own(500, X, i * 10)).collect();
    // Two days later (C is established by then).
    let t = 2 * 86_400;
    reqs.extend(walk(7, Some("s-7"), X, t, 30, 0));
    let t = reqs.last().unwrap().at + 60;
    // B, new, at the same address: one foreign read.
    let mut b = walk(8, None, X, t, 1, 2);
    reqs.append(&mut b);
    // C: its own book, and one foreign book.
    reqs.push(own(500, X, t + 30));
    reqs.extend(walk(500, None, X, t + 40, 1, 3));
    // Anonymous: from the address, and from elsewhere.
    for ip in [X, Ipv4Addr::new(203, 0, 113, 50)] {
        reqs.push(Req {
            at: t + 60,
            ip,
            session: None,
            account: None,
            path: "/accounts/123/book".into(),
            answer: Outcome::Hit,
        });
    }
    (reqs, t)
}

#[test]
fn a_block_links_the_scrapers_session_and_watches_new_accounts_at_its_address() {
    let d = detector("");
    let (reqs, t) = links_scenario();
    let seen = replay(&d, &reqs);
    let n = seen.len();
    assert!(seen[..6].iter().all(|s| *s == Seen::Served));
    let session = d.policy().session_key_of(b"s-7");
    assert!(
        matches!(
            d.verdict_of(&session, (3600 + t) * S),
            Verdict::Block { .. }
        ),
        "the scraper's session is blocked with it"
    );
    // B's first foreign read.
    assert_eq!(
        seen[n - 5],
        Seen::Refused(RefusalKind::Blocked, Some(ActorKind::Account))
    );
    // C: served.
    assert_eq!(seen[n - 4], Seen::Served);
    assert_eq!(seen[n - 3], Seen::Served);
    // Anonymous from the address: refused (the address is blocked for
    // anonymous probe requests); from elsewhere: served.
    assert_eq!(
        seen[n - 2],
        Seen::Refused(RefusalKind::Blocked, Some(ActorKind::Ip))
    );
    assert_eq!(seen[n - 1], Seen::Served);
}

/// What a verdict event says, without the mode.
fn verdict_events(c: &Capture) -> Vec<Fields> {
    c.with_message("enumguard verdict changed")
        .into_iter()
        .map(|mut e| {
            e.remove("mode");
            e
        })
        .collect()
}

/// The decisions as the log has them: what was refused (enforce) or would
/// have been (observe), in order.
fn refusal_events(c: &Capture) -> Vec<(String, String)> {
    c.events()
        .into_iter()
        .filter(|e| {
            e.get("message")
                .is_some_and(|m| m == "refused" || m == "observe mode: would refuse")
        })
        .map(|e| (e["reason"].clone(), e["actor_kind"].clone()))
        .collect()
}

/// Observe mode holds the would-be verdicts exactly as enforce mode holds
/// the real ones: the same verdicts, strikes and escalation, the same
/// events, the same refusals (as would-be refusals); only the refusal of
/// the request is left out.
#[test]
fn observe_mode_predicts_enforce_mode() {
    let (mut reqs, t) = links_scenario();
    // The scraper comes back after its block, twice.
    let end = reqs.last().unwrap().at;
    reqs.extend(walk(7, Some("s-7"), X, end + 901, 30, 4));
    let end = reqs.last().unwrap().at;
    reqs.extend(walk(7, Some("s-7"), X, end + 3601, 30, 5));
    let run = |mode: &str| {
        let d = detector(&format!("mode = \"{mode}\""));
        let c = Capture::default();
        let seen = c.run(|| replay(&d, &reqs));
        let end = reqs.last().unwrap().at;
        let verdict = account_verdict(&d, 7, end);
        (seen, c, verdict, d.tracked())
    };
    let (enforced, ce, ve, te) = run("enforce");
    let (observed, co, vo, to) = run("observe");
    assert!(observed.iter().all(|s| *s == Seen::Served));
    assert!(enforced.iter().filter(|s| **s != Seen::Served).count() > 30);
    let (re, ro) = (refusal_events(&ce), refusal_events(&co));
    if re != ro {
        let first = re.iter().zip(&ro).position(|(a, b)| a != b);
        eprintln!("first difference at {first:?}\nenforce {re:?}\nobserve {ro:?}");
    }
    assert_eq!(verdict_events(&ce), verdict_events(&co));
    assert_eq!(re, ro);
    assert_eq!(
        refusal_events(&ce).len(),
        enforced.iter().filter(|s| **s != Seen::Served).count()
    );
    assert_eq!(ve, vo);
    assert!(matches!(ve, Verdict::Block { strikes: 3, .. }), "{ve:?}");
    assert_eq!(te, to);
    let _ = t;
}

/// Every verdict event has a real score (also for an actor blocked beside
/// another in the same request), and an `account` field only for accounts.
#[test]
fn verdict_events_give_real_scores_and_accounts_only_for_accounts() {
    let d = detector("");
    let (reqs, _) = links_scenario();
    let c = Capture::default();
    c.run(|| replay(&d, &reqs));
    let events = verdict_events(&c);
    assert!(events.len() >= 4, "{events:#?}");
    for e in &events {
        let score: f64 = e["score"].parse().unwrap();
        assert!(score.is_finite() && score >= 0.6, "{e:?}");
        match e["actor"].strip_prefix("account:") {
            Some(_) => assert!(e.contains_key("account"), "{e:?}"),
            None => assert!(!e.contains_key("account"), "{e:?}"),
        }
    }
    let blocked_accounts: Vec<&str> = events
        .iter()
        .filter(|e| e["verdict"] == "block")
        .filter_map(|e| e.get("account").map(String::as_str))
        .collect();
    assert_eq!(blocked_accounts, ["7", "8"]);
    // The session was blocked in the same request as its account.
    assert!(
        events
            .iter()
            .any(|e| e["actor"].starts_with("session:") && e["verdict"] == "block"),
        "{events:#?}"
    );
}

fn with_threshold(foreign_block: u32, extra_probe: bool) -> Config {
    let lookup = if extra_probe {
        "[[probes]]\nname = \"lookup\"\npath = \"/lookup\"\ntarget = { query = \"email\" }\nstyle = \"identities\"\n"
    } else {
        ""
    };
    Config::from_toml_str(&format!(
        "{BOOK}[probes.thresholds]\nforeign_block = {foreign_block}\n{lookup}"
    ))
    .unwrap()
}

/// A reload applies its thresholds to the next request, on the records
/// kept from before it; verdicts survive it; an invalid config is refused
/// and the old one runs on.
#[test]
fn a_reload_keeps_records_and_verdicts_and_refuses_an_invalid_config() {
    let d = Detector::with_seed(with_threshold(15, false), 7).unwrap();
    let reqs = walk(7, None, X, 0, 10, 0);
    assert_eq!(served(&replay(&d, &reqs[..4])), 4);
    d.reload(with_threshold(5, false)).unwrap();
    // The fifth foreign book crosses the new threshold: the four before
    // the reload were kept.
    let seen = replay(&d, &reqs[4..5]);
    assert_eq!(
        seen,
        [Seen::Refused(
            RefusalKind::Blocked,
            Some(ActorKind::Account)
        )]
    );
    d.reload(with_threshold(15, false)).unwrap();
    assert!(matches!(
        account_verdict(&d, 7, reqs[5].at),
        Verdict::Block { .. }
    ));
    // Invalid: no signal left on.
    let bad =
        format!("{BOOK}[probes.thresholds]\nforeign_block = 0\nmiss_block = 0\ndenied_block = 0\n");
    let bad: Config = toml::from_str(&bad).unwrap();
    let e = d.reload(bad).unwrap_err();
    assert_eq!(e.field(), Some("probes[0].thresholds.foreign_block"));
    assert_eq!(
        d.policy().config().probes[0]
            .resolved_thresholds()
            .foreign_block,
        15
    );
    // The bounds are fixed at build.
    let mut bigger = with_threshold(15, false);
    bigger.limits.max_actors *= 2;
    assert_eq!(d.reload(bigger).unwrap_err().field(), Some("limits"));
}

/// A probe the reload removes loses its records; a probe added back starts
/// afresh; the probes that stay keep theirs.
#[test]
fn a_probe_removed_by_a_reload_loses_its_records() {
    let d = Detector::with_seed(with_threshold(15, true), 7).unwrap();
    let mut reqs = walk(7, None, X, 0, 3, 0);
    for (i, email) in ["a@x.test", "b@x.test", "c@x.test"].iter().enumerate() {
        reqs.push(Req {
            at: 100 + i as u64,
            ip: Ipv4Addr::new(203, 0, 113, 9),
            session: None,
            account: None,
            path: format!("/lookup?email={email}"),
            answer: Outcome::Miss,
        });
    }
    // The lookup's target is in the query, which this adapter does not
    // read: its requests are tracked without a target.
    replay(&d, &reqs);
    let both = d.tracked();
    // book: ip, subnet, account; lookup: ip, subnet.
    assert_eq!(both, 5);
    d.reload(with_threshold(15, false)).unwrap();
    assert_eq!(d.tracked(), 3, "the lookup's records are gone");
    d.reload(with_threshold(15, true)).unwrap();
    assert_eq!(d.tracked(), 3, "and do not come back");
    replay(&d, &reqs[..3]);
    assert_eq!(d.tracked(), 3, "the book's records stayed");
}

/// The listener (the cluster sync, a log of verdicts) hears of detected
/// verdicts, not only of an operator's bans: each is a change that the
/// other replicas must apply.
#[test]
fn the_listener_hears_detected_verdicts() {
    let d = detector("");
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = heard.clone();
    assert!(d.set_listener(move |c: &enumguard::detect::VerdictChange| {
        h.lock().unwrap().push(c.clone());
    }));
    let seen = replay(&d, &walk(7, None, X, 0, 40, 0));
    assert!(
        seen.iter().any(|s| *s != Seen::Served),
        "the walk was not refused"
    );
    let heard = heard.lock().unwrap();
    let block = heard
        .iter()
        .find(|c| c.kind == enumguard::detect::ChangeKind::Block)
        .expect("a detected block told to the listener");
    assert_eq!(block.reason, VerdictReason::Detected);
    assert_eq!(block.probe.as_deref(), Some("book"));
    assert!(block.remaining > 0 && block.strikes >= 1);
}
