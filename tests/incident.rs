//! The two incidents at full scale, in simulated time, through the layer
//! with the mailroom example's configuration, among the ordinary and
//! business users of a real service. `cargo test --release --test incident
//! -- --nocapture` prints the figures of the README.
// The long simulations run in one build of CI's feature sets: the default
// one (the feature sets do not change detection; `.ci/run` runs each set).
#![cfg(all(feature = "axum", not(feature = "redis")))]

mod common;

use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::time::Duration;

use common::sim::*;

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;

/// One scheduled request of an ordinary or business user, in milliseconds
/// of simulated time (a min-heap by time through `Reverse`).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    at: std::cmp::Reverse<u64>,
    user: u64,
    kind: u8,
}

/// The users of a real service over `span` ms: 10,000 ordinary users (own
/// address book, lookups of their ~10 contacts with 5% typos, now and then a
/// password reset), five to an address (homes, small NATs), and 200
/// business users making bursts of lookups of their 30 customers.
fn population(rng: &mut Rng, span: u64) -> BinaryHeap<Event> {
    let mut events = BinaryHeap::new();
    for user in 1..=10_000u64 {
        // Two to six visits, each a few requests.
        for _ in 0..(2 + rng.below(5)) {
            let mut at = rng.below(span);
            for _ in 0..(1 + rng.below(4)) {
                at += 1_000 + rng.below(60_000);
                let kind = match rng.below(10) {
                    0..=5 => 0, // own book
                    6..=8 => 1, // lookup
                    _ => 2,     // password reset
                };
                events.push(Event {
                    at: std::cmp::Reverse(at),
                    user,
                    kind,
                });
            }
        }
    }
    for b in 0..200u64 {
        let user = 20_001 + b;
        for _ in 0..2 {
            let mut at = rng.below(span);
            for _ in 0..100 {
                at += 100 + rng.below(600);
                events.push(Event {
                    at: std::cmp::Reverse(at),
                    user,
                    kind: 3,
                });
            }
        }
    }
    events
}

fn user_ip(user: u64) -> IpAddr {
    if user > 20_000 {
        // Business users: ten to an office.
        let o = (user - 20_001) / 10;
        v4(198, 18, o as u8, 1)
    } else {
        let home = user / 5;
        v4(
            10,
            (home / 65_536) as u8 + 1,
            (home / 256 % 256) as u8,
            (home % 256) as u8,
        )
    }
}

/// Plays one user event; `true` if the guard refused it.
async fn play(sim: &Sim, rng: &mut Rng, e: &Event) -> bool {
    let ip = user_ip(e.user);
    match e.kind {
        0 => sim.book(ip, e.user, e.user).await,
        1 => {
            let email = if rng.chance(0.05) {
                typo(rng)
            } else {
                contact(1 + (e.user * 31 + rng.below(10) * 977) % ACCOUNTS)
            };
            sim.lookup(ip, e.user, &email).await
        }
        2 => sim.reset(ip, &contact(e.user)).await,
        _ => {
            let email = if rng.chance(0.03) {
                typo(rng)
            } else {
                contact(1 + (e.user * 7 + rng.below(30) * 131) % ACCOUNTS)
            };
            sim.lookup(ip, e.user, &email).await
        }
    }
}

/// How the scraper comes back after each block: (account, address,
/// session, gap between reads in ms, shuffled order).
fn technique(n: u64) -> (u64, IpAddr, String, u64, bool) {
    let home = v4(198, 51, 100, 7);
    match n % 8 {
        // The first way in: its own account, in id order, fast.
        0 => (90_001, home, format!("s{n}"), 200, false),
        // A new session on the same account.
        1 => (90_001, home, format!("s{n}"), 500, true),
        // A new account from the same address.
        2 => (90_002 + n, home, format!("s{n}"), 1_000, true),
        // A new account from another address of the same network.
        3 => (
            90_002 + n,
            v4(198, 51, 100, 50 + n as u8),
            format!("s{n}"),
            2_000,
            true,
        ),
        // The first account from a new network, slower, shuffled.
        4 => (
            90_001,
            v4(203, 0, 113, n as u8),
            format!("s{n}"),
            20_000,
            true,
        ),
        // A new account from a new network, at a human pace.
        5 => (
            90_002 + n,
            v4(192, 0, 2, n as u8),
            format!("s{n}"),
            45_000,
            true,
        ),
        // A new account on a new address of an earlier network.
        6 => (
            90_002 + n,
            v4(203, 0, 113, 100 + n as u8),
            format!("s{n}"),
            5_000,
            true,
        ),
        // Back to the first account and address, slow.
        _ => (90_001, home, format!("s{n}"), 60_000, true),
    }
}

#[tokio::test]
async fn the_address_book_scrape_at_full_size() {
    let span = 48 * HOUR;
    let sim = Sim::new();
    let mut rng = Rng::new(2025);
    let mut users = population(&mut rng, span);
    let mut refused = Refused::default();
    let mut user_requests = 0u64;
    // The scraper's walk over 70,000 foreign books.
    let mut targets = (1..=70_000u64).map(|i| 1 + (i * 7_919) % ACCOUNTS);
    let mut now = 0u64;
    let (mut leaked, mut episodes, mut attempts) = (0usize, 0u64, 0u64);
    let mut per_episode = vec![0usize];
    let mut tech = technique(0);
    let mut scraper_at = 10 * MINUTE;
    let mut pending: Option<u64> = targets.next();
    loop {
        let next_user = users.peek().map(|e| e.at.0);
        let scraper_due = pending.is_some() && scraper_at < span;
        let user_first = match (next_user, scraper_due) {
            (Some(u), true) => u <= scraper_at,
            (Some(_), false) => true,
            (None, true) => false,
            (None, false) => break,
        };
        if user_first {
            let e = users.pop().unwrap();
            sim.tick(Duration::from_millis(e.at.0 - now));
            now = e.at.0;
            user_requests += 1;
            let r = play(&sim, &mut rng, &e).await;
            refused.note(e.user, r);
            continue;
        }
        sim.tick(Duration::from_millis(scraper_at - now));
        now = scraper_at;
        let id = pending.unwrap();
        let (account, ip, session, gap, shuffled) = &tech;
        let id = if *shuffled {
            1 + (id * 104_729) % ACCOUNTS
        } else {
            id
        };
        attempts += 1;
        if sim.book_in(*ip, *account, session, id).await {
            // Refused: it waits out the block (15 minutes at first, then
            // longer) and comes back another way.
            episodes += 1;
            per_episode.push(0);
            tech = technique(episodes);
            scraper_at = now + 15 * MINUTE * (1 + episodes % 4);
        } else {
            if id != *account {
                leaked += 1;
                *per_episode.last_mut().unwrap() += 1;
            }
            pending = targets.next();
            scraper_at = now + gap + rng.below(gap / 2 + 1);
        }
    }
    println!(
        "2025 scrape over 48 h: {leaked} of 70,000 books out in {episodes} comebacks \
         ({attempts} attempts; per episode {per_episode:?}); ordinary and business users \
         refused: {} ({user_requests} requests)",
        refused.count()
    );
    assert!(leaked <= 70, "{leaked} books out");
    assert_eq!(refused.count(), 0, "users refused: {:?}", refused.0);
}

#[tokio::test]
async fn the_email_guessing_at_full_size() {
    // 145,000 candidate emails, 5% registered, over 3 days through lookup
    // (40 accounts the attacker made) and password reset, spread over 1,000
    // addresses in 200 networks: each address at about 2 guesses an hour,
    // under any per-address rate limit.
    let span = 72 * HOUR;
    let sim = Sim::new();
    let mut rng = Rng::new(7249);
    let mut users = population(&mut rng, span);
    let mut refused = Refused::default();
    let total = 145_000u64;
    let step = span / total;
    let (mut found, mut registered_tried, mut now) = (0usize, 0usize, 0u64);
    let mut via = [0usize; 2];
    let mut first_refusal: [Option<u64>; 2] = [None; 2];
    for i in 0..total {
        let at = i * step + rng.below(step);
        while users.peek().is_some_and(|e| e.at.0 <= at) {
            let e = users.pop().unwrap();
            sim.tick(Duration::from_millis(e.at.0.saturating_sub(now)));
            now = now.max(e.at.0);
            let r = play(&sim, &mut rng, &e).await;
            refused.note(e.user, r);
        }
        sim.tick(Duration::from_millis(at.saturating_sub(now)));
        now = now.max(at);
        // One candidate in 20 is registered, in pairs (one even, one odd),
        // so that registered candidates reach both oracles.
        let real = (i / 2) % 20 == 0;
        let email = if real {
            registered_tried += 1;
            contact(1 + (i * 7_919) % ACCOUNTS)
        } else {
            format!("cand{i}@mailroom.test")
        };
        let addr = rng.below(1_000);
        let net = addr % 200;
        let ip = v4(
            100,
            100 + (net / 100) as u8,
            (net % 100) as u8,
            (addr / 200) as u8 + 1,
        );
        // Accounts the attacker made for it (not among the service's
        // established ones).
        let acct = 2 * ACCOUNTS + rng.below(40);
        let answered = if i % 2 == 0 {
            !sim.lookup(ip, acct, &email).await
        } else {
            !sim.reset(ip, &email).await
        };
        if !answered {
            first_refusal[(i % 2) as usize].get_or_insert(at);
        }
        if answered && real {
            found += 1;
            via[(i % 2) as usize] += 1;
        }
    }
    while let Some(e) = users.pop() {
        sim.tick(Duration::from_millis(e.at.0.saturating_sub(now)));
        now = now.max(e.at.0);
        let r = play(&sim, &mut rng, &e).await;
        refused.note(e.user, r);
    }
    let minutes = |t: Option<u64>| t.map_or(f64::INFINITY, |t| t as f64 / MINUTE as f64);
    let first = [minutes(first_refusal[0]), minutes(first_refusal[1])];
    println!(
        "email guessing over 3 days: {found} of {registered_tried} registered found \
         ({} via lookup, {} via password reset); first refusal {:.1} min (lookup), \
         {:.1} min (password reset) into the attack; ordinary and business users refused: {}",
        via[0],
        via[1],
        first[0],
        first[1],
        refused.count()
    );
    assert!(found <= 72, "{found} found");
    assert!(
        first.iter().all(|m| *m <= 15.0),
        "first refusals {first:?} minutes in"
    );
    assert_eq!(refused.count(), 0, "users refused: {:?}", refused.0);
}
