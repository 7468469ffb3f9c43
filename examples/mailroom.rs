//! mailroom: a small mail service with the access-control flaw that got its
//! address books scraped, and enumguard in front of it.
//!
//! ```text
//! cargo run --release --example mailroom -- --listen 127.0.0.1:3000 \
//!     [--accounts N] [--guard enforce|observe|off] [--config FILE] [--patched]
//! ```
//!
//! Seed: accounts `1..=N` (default 10,000), email `user{id}@mailroom.test`,
//! password `pass-{id}`, each with an address book of 5..=40 contacts.
//! The guard's configuration is `examples/mailroom.toml` (built in) unless
//! `--config` names another file; `--guard` overrides its `mode`.
//!
//! ```text
//! POST /api/register {"email","password"}   201 {"id"} | 409 | 400
//! POST /api/login {"email","password"}      200 {"token","id"} | 401
//! POST /api/password-reset {"email"}        202 | 404
//! GET  /api/accounts/{id}/addressbook       200 {"owner","contacts"} | 401 | 404
//!      (any account reads any id: the flaw; --patched answers 403)
//! GET  /api/recipients/lookup?email=E       200 {"exists":true,"id"} | 404 | 401
//! GET  /healthz                             200
//! ```
//!
//! The guard's verdict changes (`tracing` events of target `enumguard`) are
//! printed to stderr, one line each, naming the actor, the probe and the
//! signals behind the verdict.

#[allow(dead_code)]
#[path = "mailroom/app.rs"]
mod app;

use std::net::SocketAddr;
use std::process::ExitCode;

use app::{GuardChoice, Options};

const USAGE: &str = "usage: mailroom [--listen ADDR] [--accounts N] [--guard enforce|observe|off] \
                     [--config FILE] [--patched]";

struct Args {
    listen: SocketAddr,
    opts: Options,
}

fn parse_args() -> Result<Args, String> {
    let mut listen: SocketAddr = "127.0.0.1:3000".parse().expect("valid default address");
    let mut opts = Options::new();
    let mut guard: Option<GuardChoice> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                listen = v
                    .parse()
                    .map_err(|e| format!("--listen {v}: {e} (want IP:PORT)"))?;
            }
            "--accounts" => {
                let v = value("--accounts")?;
                opts.accounts = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=10_000_000).contains(n))
                    .ok_or_else(|| format!("--accounts {v}: want a number in 1..=10000000"))?;
            }
            "--guard" => {
                let v = value("--guard")?;
                guard = Some(
                    GuardChoice::parse(&v)
                        .ok_or_else(|| format!("--guard {v}: want enforce, observe or off"))?,
                );
            }
            "--config" => {
                let v = value("--config")?;
                opts.config = enumguard::Config::from_file(&v).map_err(|e| e.to_string())?;
            }
            "--patched" => opts.patched = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    // Without --guard, the config's own mode decides.
    opts.guard = guard.unwrap_or(match opts.config.mode {
        enumguard::Mode::Enforce => GuardChoice::Enforce,
        enumguard::Mode::Observe => GuardChoice::Observe,
    });
    Ok(Args { listen, opts })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mailroom: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    app::log_verdicts_to_stderr();
    let app = match app::app(&args.opts) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mailroom: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mailroom: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(args.listen);
    let guard = match args.opts.guard {
        GuardChoice::Enforce => "enforce",
        GuardChoice::Observe => "observe",
        GuardChoice::Off => "off",
    };
    println!(
        "mailroom listening on http://{addr} ({} accounts, guard {guard}{})",
        args.opts.accounts,
        if args.opts.patched { ", patched" } else { "" }
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let served = axum::serve(
        listener,
        app.router
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mailroom: {e}");
            ExitCode::FAILURE
        }
    }
}
