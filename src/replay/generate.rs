//! A mailroom access log with known attacks and known ordinary users
//! (`enumguard generate`): the worked example of the README's "Tuning
//! thresholds", the tests' input and the bench's. Deterministic: the same
//! options give the same lines.
//!
//! Its actors, over `minutes` of traffic from 2026-11-30T08:00:00Z, on the
//! probes of `examples/mailroom.toml`:
//!
//! - `users` ordinary accounts (ids `1`..., emails `user1@mail.example`...),
//!   each reading its own address
//!   book, looking up a few contacts (found; now and then a typo, not
//!   found), resetting a forgotten password, and browsing pages that are no
//!   probe. A fifth of them sit behind one NAT address (`198.51.100.10`),
//!   the others on addresses of their own.
//! - a heavy user (account `9001`): reading its own address book and looking up its
//!   contacts all day long, far more than anyone.
//! - a scraper (account `7001`, from minute 10): logged in, walks other
//!   accounts' address books in id order from 1, one every 2 s, from
//!   `203.0.113.7` (past the last account, 404); at minute 25 it comes
//!   back as account `7002` from `203.0.113.8`, going on where it was.
//! - an anonymous email oracle (from minute 20): guesses addresses on the
//!   lookup endpoint, about one a second, mostly not registered, rotating
//!   through `192.0.2.0/24`; and through the password-reset endpoint (its
//!   target is in the body: only the JSON-lines log has it).
//!
//! JSON lines also carry what the application tells the guard, as the
//! access-log hook writes it: the `owner` of each address book read, and
//! `known` on a lookup of the caller's own contact.

use std::net::Ipv4Addr;

use super::options::Format;
use super::time::{format_clf, format_rfc3339};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// The format of the lines.
    pub format: Format,
    /// Minutes of traffic.
    pub minutes: u32,
    /// Ordinary accounts.
    pub users: u32,
    /// Seeds the randomness (times, typos, choices).
    pub seed: u64,
}

impl Default for GenOptions {
    fn default() -> Self {
        Self {
            format: Format::Combined,
            minutes: 60,
            users: 200,
            seed: 1,
        }
    }
}

/// Who is who in a generated log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Truth {
    /// The attackers' accounts.
    pub attacker_accounts: Vec<String>,
    /// The attackers' addresses.
    pub attacker_addrs: Vec<Ipv4Addr>,
    /// The ordinary accounts (the heavy user included).
    pub ordinary_accounts: Vec<String>,
    /// Lines generated.
    pub lines: u64,
}

/// The log's first second: 2026-11-30T08:00:00Z.
pub const START_SECS: i64 = 1_796_025_600;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

struct Req {
    /// Milliseconds from the start.
    ms: i64,
    addr: Ipv4Addr,
    method: &'static str,
    uri: String,
    status: u16,
    account: Option<String>,
    body: Option<String>,
    /// Whose address book was read (the application's `Owner`).
    owner: Option<u64>,
    /// A lookup of the caller's own contact (the application's `Known`).
    known: bool,
}

/// Generates the log, handing each line (without a newline) to `out`, in
/// time order but for a few neighbours swapped by a second or two (as a
/// busy server's log has them).
pub fn generate(opts: &GenOptions, mut out: impl FnMut(&str)) -> Truth {
    let mut rng = Rng(opts.seed ^ 0x6d61_696c_726f_6f6d);
    let span_ms = i64::from(opts.minutes.max(1)) * 60_000;
    let mut reqs: Vec<Req> = Vec::new();
    let nat = Ipv4Addr::new(198, 51, 100, 10);
    let mut truth = Truth::default();
    let users = opts.users.max(1);
    for u in 1..=users {
        // The account id is the number in its address book's path.
        let name = u.to_string();
        let addr = if u % 5 == 0 {
            nat
        } else {
            Ipv4Addr::new(10, 20 + (u / 250) as u8, (u % 250) as u8, 1 + (u % 7) as u8)
        };
        // An ordinary account: an id of its own, a few contacts.
        let id = u64::from(u);
        let contacts: Vec<u64> = (0..1 + rng.below(4))
            .map(|_| 1 + rng.below(u64::from(users)))
            .collect();
        let mut t = rng.below(120_000) as i64;
        while t < span_ms {
            let account = Some(name.clone());
            match rng.below(10) {
                0..=3 => reqs.push(Req {
                    ms: t,
                    addr,
                    method: "GET",
                    uri: format!("/api/accounts/{id}/addressbook"),
                    status: 200,
                    account,
                    body: None,
                    owner: Some(id),
                    known: false,
                }),
                4..=5 => {
                    let c = contacts[rng.below(contacts.len() as u64) as usize];
                    let (email, status) = if rng.chance(8) {
                        (format!("usr{c}@mail.example"), 404)
                    } else {
                        (format!("user{c}@mail.example"), 200)
                    };
                    reqs.push(Req {
                        ms: t,
                        addr,
                        method: "GET",
                        uri: format!("/api/recipients/lookup?email={email}"),
                        status,
                        account,
                        body: None,
                        owner: None,
                        // A contact's address; a typo is nobody's.
                        known: status == 200,
                    });
                }
                6 if rng.chance(5) => reqs.push(Req {
                    ms: t,
                    addr,
                    method: "POST",
                    uri: "/api/password-reset".into(),
                    status: 202,
                    account: None,
                    body: Some(format!(r#"{{"email":"user{name}@mail.example"}}"#)),
                    owner: None,
                    known: false,
                }),
                _ => reqs.push(Req {
                    ms: t,
                    addr,
                    method: "GET",
                    uri: ["/", "/api/inbox", "/static/app.js", "/api/me"][rng.below(4) as usize]
                        .into(),
                    status: 200,
                    account,
                    body: None,
                    owner: None,
                    known: false,
                }),
            }
            t += 20_000 + rng.below(160_000) as i64;
        }
        truth.ordinary_accounts.push(name);
    }
    // The heavy user: its own book and its contacts, every few seconds.
    let heavy_addr = Ipv4Addr::new(10, 99, 0, 5);
    let mut t = 1_000;
    while t < span_ms {
        let (uri, status, owner) = if rng.chance(50) {
            ("/api/accounts/9001/addressbook".to_owned(), 200, Some(9001))
        } else {
            let c = 1 + rng.below(20);
            (
                format!("/api/recipients/lookup?email=user{c}@mail.example"),
                200,
                None,
            )
        };
        reqs.push(Req {
            ms: t,
            addr: heavy_addr,
            method: "GET",
            uri,
            status,
            account: Some("9001".into()),
            body: None,
            owner,
            known: owner.is_none(),
        });
        t += 2_000 + rng.below(4_000) as i64;
    }
    truth.ordinary_accounts.push("9001".into());
    // The scraper, then its second account.
    let mut next_id = 1u64;
    for (name, addr, from, until) in [
        ("7001", Ipv4Addr::new(203, 0, 113, 7), 10, 25),
        ("7002", Ipv4Addr::new(203, 0, 113, 8), 25, 40),
    ] {
        let mut t = i64::from(from) * 60_000;
        while t < (i64::from(until) * 60_000).min(span_ms) {
            reqs.push(Req {
                ms: t,
                addr,
                method: "GET",
                uri: format!("/api/accounts/{next_id}/addressbook"),
                // Past the last account, no such address book.
                status: if next_id <= u64::from(users) {
                    200
                } else {
                    404
                },
                account: Some(name.into()),
                body: None,
                owner: (next_id <= u64::from(users)).then_some(next_id),
                known: false,
            });
            next_id += 1;
            t += 1_500 + rng.below(1_000) as i64;
        }
        truth.attacker_accounts.push(name.into());
        truth.attacker_addrs.push(addr);
    }
    // The oracle: anonymous guesses from a rotating /24.
    let mut t = 20 * 60_000i64;
    let mut n = 0u64;
    while t < span_ms {
        let addr = Ipv4Addr::new(192, 0, 2, 10 + (n % 40) as u8);
        let registered = rng.chance(5);
        let email = if registered {
            format!("user{}@mail.example", 1 + rng.below(u64::from(users)))
        } else {
            format!("guess{n}@mail.example")
        };
        if n % 4 == 3 {
            reqs.push(Req {
                ms: t,
                addr,
                method: "POST",
                uri: "/api/password-reset".into(),
                status: if registered { 202 } else { 404 },
                account: None,
                body: Some(format!(r#"{{"email":"{email}"}}"#)),
                owner: None,
                known: false,
            });
        } else {
            reqs.push(Req {
                ms: t,
                addr,
                method: "GET",
                uri: format!("/api/recipients/lookup?email={email}"),
                status: if registered { 200 } else { 404 },
                account: None,
                body: None,
                owner: None,
                known: false,
            });
        }
        if !truth.attacker_addrs.contains(&addr) {
            truth.attacker_addrs.push(addr);
        }
        n += 1;
        t += 700 + rng.below(600) as i64;
    }
    reqs.sort_by_key(|r| r.ms);
    // A few neighbours out of order by up to two seconds.
    for i in 1..reqs.len() {
        if rng.chance(1) && reqs[i].ms - reqs[i - 1].ms < 2_000 {
            reqs.swap(i - 1, i);
        }
    }
    let mut line = String::with_capacity(256);
    for r in &reqs {
        line.clear();
        let nanos = (START_SECS * 1000 + r.ms) * 1_000_000;
        match opts.format {
            Format::Combined => {
                use std::fmt::Write;
                let _ = write!(
                    line,
                    r#"{} - {} [{}] "{} {} HTTP/1.1" {} {} "-" "Mozilla/5.0""#,
                    r.addr,
                    r.account.as_deref().unwrap_or("-"),
                    format_clf(nanos),
                    r.method,
                    r.uri,
                    r.status,
                    200 + r.uri.len() * 7,
                );
            }
            Format::Jsonl => {
                let mut v = serde_json::json!({
                    "time": format_rfc3339(nanos),
                    "remote_addr": r.addr.to_string(),
                    "method": r.method,
                    "uri": r.uri,
                    "status": r.status,
                });
                if let Some(a) = &r.account {
                    v["account"] = a.as_str().into();
                    v["session"] = format!("tok-{a}").into();
                }
                if let Some(b) = &r.body {
                    v["body"] = serde_json::from_str(b).unwrap_or_default();
                }
                // What the application told the guard, as its access-log
                // hook writes it.
                if let Some(o) = r.owner {
                    v["owner"] = o.to_string().into();
                }
                if r.known {
                    v["known"] = true.into();
                }
                line.push_str(&v.to_string());
            }
        }
        out(&line);
        truth.lines += 1;
    }
    truth
}
