//! mailroom: a small mail service with the access-control flaw that got its
//! address books scraped, and enumguard in front of it.
//!
//! ```text
//! cargo run --release --example mailroom -- --listen 127.0.0.1:3000 \
//!     [--accounts N] [--guard enforce|observe|off] [--config FILE] [--patched] \
//!     [--replicas N [--redis URL | --redis-cluster URL,URL...]] \
//!     [--admin ADDR --admin-token TOKEN]
//! ```
//!
//! `--admin ADDR` serves, on a second listener, the admin service under
//! `/admin/` (every request needs `Authorization: Bearer TOKEN`; 401
//! otherwise) and Prometheus metrics at `GET /metrics`. With several
//! replicas it administers the first one (on PORT).
//!
//! `--replicas N` serves N replicas in this process on ports PORT, PORT+1,
//! ..., each with its own guard and guard state, over the same data (as
//! replicas over one database). With `--redis URL` (build with
//! `--features redis`) the guards share verdicts and evidence through that
//! Redis (`--redis-cluster` names some nodes of a Redis Cluster instead);
//! without it they share nothing, which shows the dilution: a
//! scraper round-robined over them gets N times the room.
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

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::process::ExitCode;

use app::{GuardChoice, Options};

const USAGE: &str = "usage: mailroom [--listen ADDR] [--accounts N] [--guard enforce|observe|off] \
                     [--config FILE] [--patched] \
                     [--replicas N [--redis URL | --redis-cluster URL,URL...]] \
                     [--admin ADDR --admin-token TOKEN]";

struct Args {
    listen: SocketAddr,
    opts: Options,
    replicas: u16,
    redis: Option<String>,
    admin: Option<(SocketAddr, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut listen: SocketAddr = "127.0.0.1:3000".parse().expect("valid default address");
    let mut opts = Options::new();
    let mut guard: Option<GuardChoice> = None;
    let mut replicas = 1u16;
    let mut redis = None;
    let mut cluster_nodes: Vec<String> = Vec::new();
    let mut admin: Option<SocketAddr> = None;
    let mut admin_token: Option<String> = None;
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
            "--replicas" => {
                let v = value("--replicas")?;
                replicas = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=16).contains(n))
                    .ok_or_else(|| format!("--replicas {v}: want a number in 1..=16"))?;
            }
            "--redis" | "--redis-cluster" => {
                let v = value(&arg)?;
                if !cfg!(feature = "redis") {
                    return Err(format!(
                        "{arg} needs the `redis` feature: cargo run --release --example mailroom \
                         --features redis -- ..."
                    ));
                }
                if redis.is_some() {
                    return Err("give --redis or --redis-cluster, once".into());
                }
                if arg == "--redis-cluster" {
                    cluster_nodes = v.split(',').map(|u| u.trim().to_owned()).collect();
                }
                redis = Some(v);
            }
            "--admin" => {
                let v = value("--admin")?;
                admin = Some(
                    v.parse()
                        .map_err(|e| format!("--admin {v}: {e} (want IP:PORT)"))?,
                );
            }
            "--admin-token" => {
                let v = value("--admin-token")?;
                if v.len() < enumguard::admin::MIN_TOKEN_LEN
                    || !v.bytes().all(|b| b.is_ascii_graphic())
                {
                    return Err(format!(
                        "--admin-token: at least {} visible characters, no spaces",
                        enumguard::admin::MIN_TOKEN_LEN
                    ));
                }
                admin_token = Some(v);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    // Without --guard, the config's own mode decides.
    opts.guard = guard.unwrap_or(match opts.config.mode {
        enumguard::Mode::Enforce => GuardChoice::Enforce,
        enumguard::Mode::Observe => GuardChoice::Observe,
    });
    if let Some(url) = &redis {
        // Replicas must name sessions alike: one key for all of them (here
        // one process; replicas in several processes set the same
        // `session_key` in their config).
        if opts.config.session_key.is_none() {
            let key: u128 = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos())
                .wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834);
            opts.config.session_key = Some(format!("{key:032x}"));
        }
        let (redis_url, redis_cluster) = match cluster_nodes.is_empty() {
            true => (url.clone(), Vec::new()),
            false => (String::new(), cluster_nodes),
        };
        opts.config.cluster = Some(enumguard::ClusterConfig {
            redis_url,
            redis_cluster,
            key_prefix: "mailroom".into(),
            ..enumguard::ClusterConfig::default()
        });
    }
    let admin = match (admin, admin_token) {
        (Some(a), Some(t)) => Some((a, t)),
        (None, None) => None,
        (Some(_), None) => return Err("--admin needs --admin-token TOKEN".into()),
        (None, Some(_)) => return Err("--admin-token goes with --admin ADDR".into()),
    };
    Ok(Args {
        listen,
        opts,
        replicas,
        redis,
        admin,
    })
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
    let state = std::sync::Arc::new(app::Mailroom::seeded(args.opts.accounts, args.opts.patched));
    let guard = match args.opts.guard {
        GuardChoice::Enforce => "enforce",
        GuardChoice::Observe => "observe",
        GuardChoice::Off => "off",
    };
    // The recorder goes in before any guard serves (the guard registers
    // its counters at its first request).
    let metrics = match &args.admin {
        Some(_) => match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
            Ok(h) => Some(h),
            Err(e) => {
                eprintln!("mailroom: cannot install the metrics recorder: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let mut servers = tokio::task::JoinSet::new();
    for i in 0..args.replicas {
        let mut opts = args.opts.clone();
        if let Some(c) = opts.config.cluster.as_mut() {
            c.replica_id = Some(format!("mailroom-{i}"));
        }
        let app = match app::app_with(&opts, state.clone()) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("mailroom: {e}");
                return ExitCode::from(2);
            }
        };
        let at = SocketAddr::new(args.listen.ip(), args.listen.port().saturating_add(i));
        let listener = match tokio::net::TcpListener::bind(at).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("mailroom: cannot listen on {at}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().unwrap_or(at);
        println!(
            "mailroom listening on http://{addr} ({} accounts, guard {guard}{}{})",
            args.opts.accounts,
            if args.opts.patched { ", patched" } else { "" },
            match (&args.redis, args.replicas) {
                (Some(_), n) if n > 1 =>
                    format!(", replica {} of {n} sharing through Redis", i + 1),
                (Some(_), _) => ", sharing through Redis".to_string(),
                (None, n) if n > 1 => format!(", replica {} of {n}, sharing nothing", i + 1),
                (None, _) => String::new(),
            }
        );
        if let (0, Some((at, token)), Some(metrics), Some(handle)) =
            (i, &args.admin, &metrics, &app.guard)
        {
            let listener = match tokio::net::TcpListener::bind(at).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("mailroom: cannot listen on {at} (--admin): {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!(
                "mailroom admin on http://{}/admin/ (bearer token), metrics on /metrics",
                listener.local_addr().unwrap_or(*at)
            );
            servers.spawn(
                axum::serve(
                    listener,
                    admin_router(handle.clone(), token, metrics.clone()),
                )
                .into_future(),
            );
        }
        servers.spawn(
            axum::serve(
                listener,
                app.router
                    .into_make_service_with_connect_info::<SocketAddr>(),
            )
            .into_future(),
        );
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
        r = servers.join_next() => {
            let why = match r {
                Some(Ok(Err(e))) => e.to_string(),
                Some(Err(e)) => e.to_string(),
                _ => "it ended".into(),
            };
            eprintln!("mailroom: a replica stopped: {why}");
            ExitCode::FAILURE
        }
    }
}

/// The admin listener's routes: the admin service under `/admin/` and the
/// Prometheus text at `/metrics`, with the exporter's upkeep every 5 s.
fn admin_router(
    handle: enumguard::GuardHandle,
    token: &str,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> axum::Router {
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    // The token was checked with the arguments.
    let admin = enumguard::admin::AdminService::new(handle, token)
        .unwrap_or_else(|e| panic!("--admin-token: {e}"));
    axum::Router::new().nest_service("/admin", admin).route(
        "/metrics",
        axum::routing::get(move || {
            let text = metrics.render();
            async move { ([("content-type", "text/plain; version=0.0.4")], text) }
        }),
    )
}
