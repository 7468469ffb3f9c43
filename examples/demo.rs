//! The whole point of enumguard in one command:
//!
//! ```text
//! cargo run --release --example demo [-- --quick] [--only WORD] [--config FILE]
//! ```
//!
//! Starts mailroom (see `examples/mailroom.rs`) in-process on an ephemeral
//! loopback port, once per scenario and guard setting, and plays over real
//! HTTP the attacks enumguard exists for (an account scraping address books
//! by id; the same attacker coming back with a new account, new addresses
//! and another pace; email guessing through the recipient lookup and
//! through password reset, from one address and spread over many) beside
//! ordinary users (300 behind one NAT address, then the same with a scraper
//! among them; businesses making many lookups; people at home beside every
//! attack). Each scenario runs on a fresh server unprotected (guard off) and
//! protected (guard enforcing `examples/mailroom.toml`); the table compares
//! them. Client connections leave from addresses across 127.0.0.0/8 (Linux
//! routes all of it to loopback).
//!
//! Exits non-zero if protection fails: an ordinary user refused, or an
//! attack that still gets more than 10% of what it gets unprotected.
//! `--quick` is the short version `tests/demo.rs` runs; `--only` picks
//! scenarios; `--config` tries another guard configuration;
//! `DEMO_DEBUG=1` prints the guard's verdict changes and suspects.

#[allow(dead_code)]
#[path = "mailroom/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "mailroom/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "mailroom/replicas.rs"]
mod replicas;
#[allow(dead_code)]
#[path = "mailroom/scenarios.rs"]
mod scenarios;

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "usage: demo [--quick] [--only WORD] [--config FILE]\n\
                     --only: the scenarios whose title contains WORD (e.g. NAT)\n\
                     --config: protect with this guard config instead of examples/mailroom.toml\n\
                     DEMO_DEBUG=1 prints the guard's verdict changes and suspects";

fn main() -> ExitCode {
    let mut quick = false;
    let mut only: Option<String> = None;
    let mut config = app::default_config();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.len()) {
            ("--quick", _) => quick = true,
            ("--only", 1..) => only = args.next(),
            ("--config", 1..) => {
                let file = args.next().unwrap_or_default();
                match enumguard::Config::from_file(&file) {
                    Ok(c) => config = c,
                    Err(e) => {
                        eprintln!("demo: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            _ => {
                eprintln!("demo: unexpected argument {arg}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let size = if quick {
        scenarios::Size::quick()
    } else {
        scenarios::Size::full()
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("demo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if std::env::var_os("DEMO_DEBUG").is_some() {
        app::log_verdicts_to_stderr();
    }
    let t0 = Instant::now();
    println!(
        "enumguard demo: mailroom with {} accounts; every scenario runs unprotected, then protected\n",
        size.accounts
    );
    let progress = |piece: &str| {
        print!("{piece}");
        let _ = std::io::stdout().flush();
    };
    let rows = match runtime.block_on(scenarios::run_all(
        &size,
        &config,
        only.as_deref(),
        &progress,
    )) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("\n{}", scenarios::table(&rows, size.nat_users));
    let mut failures: Vec<String> = rows.iter().flat_map(scenarios::Row::failures).collect();
    // Three replicas behind a balancer, a scraper round-robining them.
    if only.as_deref().is_none_or(|w| "replicas".contains(w)) {
        let opts = app::Options {
            config: config.clone(),
            accounts: size.accounts,
            ..app::Options::new()
        };
        match runtime.block_on(replicas::run(&opts, size.scrape_ids)) {
            Ok(o) => {
                println!(
                    "three replicas, a scraper round-robining them ({} ids): sharing nothing, {} books out",
                    size.scrape_ids, o.alone
                );
                match o.shared {
                    Ok(n) => {
                        println!("  sharing verdicts and evidence through Redis, {n} books out");
                        if n > 25 {
                            failures
                                .push(format!("replicas sharing through Redis leaked {n} books"));
                        }
                    }
                    Err(why) => println!("  sharing through Redis: {why}"),
                }
                println!();
            }
            Err(e) => failures.push(format!("replicas scenario: {e}")),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    if failures.is_empty() {
        println!("PASS: every attack stopped, no ordinary user refused ({secs:.1} s)");
        ExitCode::SUCCESS
    } else {
        println!("FAIL ({secs:.1} s):");
        for f in &failures {
            println!("  - {f}");
        }
        ExitCode::FAILURE
    }
}
