//! mailroom: a small mail service with the access-control flaw that got its
//! address books scraped, and enumguard in front of it.
//!
//! ```text
//! cargo run --release --example mailroom -- --listen 127.0.0.1:3000 \
//!     [--accounts N] [--guard enforce|observe|off] [--config FILE] [--patched] \
//!     [--replicas N [--redis URL | --redis-cluster URL,URL...]] \
//!     [--admin ADDR --admin-token TOKEN] [--access-log FILE]
//! ```
//!
//! `--access-log FILE` appends the guard's access log to FILE (every
//! replica's): one JSON line per answered request
//! (`GuardBuilder::access_log`, `AccessRecord::to_json_line`) with what the
//! guard saw: the resolved address, the account and its standing, the
//! session's hash, the probe, the email of a JSON body, `own`, the outcome,
//! `Known`, the refusal. `enumguard replay --format jsonl --config
//! examples/mailroom.toml FILE` reads it. It holds emails: personal data.
//! (No `Owner`: the owner of address book `{id}` is account `{id}`, which
//! the guard and the replay read from the path.) The lines go through a
//! bounded queue to a writer thread (see [`AccessLog`]); on Ctrl-C or
//! SIGTERM the servers stop taking requests, finish those in flight (for up
//! to 5 s) and the log is flushed.
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
pub(crate) mod app;

use std::future::IntoFuture;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use app::{GuardChoice, Options};

const USAGE: &str = "usage: mailroom [--listen ADDR] [--accounts N] [--guard enforce|observe|off] \
                     [--config FILE] [--patched] [--proxy-headers] \
                     [--replicas N [--redis URL | --redis-cluster URL,URL...]] \
                     [--admin ADDR --admin-token TOKEN] [--access-log FILE]";

/// How long a stop waits for the requests in flight (whose lines the
/// access log still takes).
const DRAIN: Duration = Duration::from_secs(5);

/// How long a stop waits for the access log to be written out: its queue
/// takes milliseconds; longer, and a write is stuck (a full disk, a hung
/// network file system), which must not keep the process from stopping.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

struct Args {
    listen: SocketAddr,
    opts: Options,
    replicas: u16,
    redis: Option<String>,
    admin: Option<(SocketAddr, String)>,
    access_log: Option<PathBuf>,
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
    let mut access_log: Option<PathBuf> = None;
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
            "--proxy-headers" => opts.proxy_headers = true,
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
            "--access-log" => {
                let v = value("--access-log")?;
                if v.is_empty() {
                    return Err("--access-log needs a file name".into());
                }
                access_log = Some(PathBuf::from(v));
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
        let mut cluster = match cluster_nodes.is_empty() {
            true => enumguard::config::ClusterConfig::redis(url.clone()),
            false => enumguard::config::ClusterConfig::redis_cluster(cluster_nodes),
        };
        cluster.key_prefix = "mailroom".into();
        opts.config.cluster = Some(cluster);
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
        access_log,
    })
}

/// The guard's access log, appended to a file as JSON lines.
///
/// The guard calls its hook on the request's task, once the head of the
/// answer is known: the hook only formats the line and offers it to a
/// bounded queue (`try_send`, which never waits). A writer thread takes the
/// lines from the queue and appends them through a `BufWriter`, flushing
/// when the queue has been idle for a second and at least once a second
/// while it is busy (a reader of the file is at most a second or two
/// behind), and on [`AccessLog::close`]. Why a queue and not a
/// `Mutex<BufWriter<File>>`: under the mutex every request would take a
/// lock that all of them contend on, and whichever request found the
/// buffer full would write it out to the disk on its own task; a slow or
/// stalled disk would then stall the service. Why dropping and not
/// blocking when the queue is full: a blocking send would hold the tokio
/// worker thread, and with it every request that thread serves. A full
/// queue (the disk is slower than the traffic, for longer than the queue
/// lasts) drops the line and counts it; the writer reports the count on
/// stderr as it grows, and `close` returns it.
pub(crate) struct AccessLog {
    tx: SyncSender<Entry>,
    dropped: Arc<AtomicU64>,
    writer: std::thread::JoinHandle<(u64, io::Result<()>)>,
    path: PathBuf,
}

/// What the writer thread is handed.
enum Entry {
    Line(String),
    /// Flush what came before and stop.
    Close,
}

/// What an access log wrote, when closed.
#[derive(Debug)]
pub(crate) struct AccessLogSummary {
    /// Lines appended to the file.
    pub(crate) written: u64,
    /// Lines dropped: the queue was full, or the writer had stopped.
    pub(crate) dropped: u64,
    /// Why the writer stopped early, if it did.
    pub(crate) error: Option<io::Error>,
}

impl AccessLog {
    /// Lines the queue holds: about 300 bytes each, so at most a few MiB,
    /// and seconds of traffic at thousands of requests a second, enough to
    /// ride out a slow write.
    pub(crate) const QUEUE: usize = 16_384;
    /// The writer flushes at least this often while lines come.
    pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);

    /// Opens `path` to append to (created if absent) and starts its writer
    /// thread.
    ///
    /// # Errors
    /// The file cannot be opened, or the thread not started.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(Self::QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = {
            let dropped = dropped.clone();
            let shown = path.display().to_string();
            std::thread::Builder::new()
                .name("mailroom-access-log".into())
                .spawn(move || {
                    let mut written = 0;
                    let out = BufWriter::with_capacity(1 << 16, file);
                    let r = write_lines(out, &rx, &dropped, &mut written);
                    if let Err(e) = &r {
                        // Stop taking lines: what is queued, and what the
                        // hook offers from now on, is dropped (counted).
                        let queued = rx.try_iter().filter(|e| matches!(e, Entry::Line(_)));
                        dropped.fetch_add(queued.count() as u64, Ordering::Relaxed);
                        drop(rx);
                        eprintln!("mailroom: access log {shown}: {e}; later lines are dropped");
                    }
                    (written, r)
                })?
        };
        Ok(Self {
            tx,
            dropped,
            writer,
            path: path.to_owned(),
        })
    }

    /// The file it appends to.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The hook for [`enumguard::GuardBuilder::access_log`]: formats the
    /// record and offers it to the queue, dropping (and counting) it when
    /// the queue is full.
    pub(crate) fn hook(&self) -> impl Fn(&enumguard::AccessRecord<'_>) + Send + Sync + 'static {
        let tx = self.tx.clone();
        let dropped = self.dropped.clone();
        move |r| match tx.try_send(Entry::Line(r.to_json_line())) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Writes out every line queued before it, flushes the file and stops
    /// the writer. Blocks until the queue has drained (for as long as a
    /// stuck write lasts): call it once the servers have stopped, off the
    /// async runtime's threads. Lines that a request answered later still
    /// offers are dropped (and counted).
    pub(crate) fn close(self) -> AccessLogSummary {
        // Waits for room in the queue: the Close goes after every line.
        // It fails only if the writer has stopped already.
        let _ = self.tx.send(Entry::Close);
        drop(self.tx);
        let (written, error) = match self.writer.join() {
            Ok((n, r)) => (n, r.err()),
            Err(_) => (0, Some(io::Error::other("the writer thread panicked"))),
        };
        AccessLogSummary {
            written,
            dropped: self.dropped.load(Ordering::Relaxed),
            error,
        }
    }
}

/// The writer thread: appends the queued lines until [`Entry::Close`] (or
/// every sender is gone), counting them in `written`.
fn write_lines(
    mut out: BufWriter<std::fs::File>,
    rx: &Receiver<Entry>,
    dropped: &AtomicU64,
    written: &mut u64,
) -> io::Result<()> {
    let mut dirty = false;
    let mut flushed = Instant::now();
    let mut reported = 0u64;
    loop {
        let idle = match rx.recv_timeout(AccessLog::FLUSH_EVERY) {
            Ok(Entry::Line(line)) => {
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
                *written += 1;
                dirty = true;
                false
            }
            Ok(Entry::Close) | Err(RecvTimeoutError::Disconnected) => return out.flush(),
            Err(RecvTimeoutError::Timeout) => true,
        };
        if dirty && (idle || flushed.elapsed() >= AccessLog::FLUSH_EVERY) {
            out.flush()?;
            dirty = false;
            flushed = Instant::now();
            let now = dropped.load(Ordering::Relaxed);
            if now > reported {
                eprintln!(
                    "mailroom: access log: {now} lines dropped so far (the writer fell \
                     behind; {} queued at most)",
                    AccessLog::QUEUE
                );
                reported = now;
            }
        }
    }
}

/// Builds replica `opts` over `state`, with the access log's hook on its
/// guard when there is one.
///
/// # Errors
/// The guard's configuration is invalid.
pub(crate) fn replica(
    opts: &Options,
    state: Arc<app::Mailroom>,
    access_log: Option<&AccessLog>,
) -> Result<app::App, enumguard::ConfigError> {
    app::app_with_guard(opts, state, |b| match access_log {
        Some(log) => b.access_log(log.hook()),
        None => b,
    })
}

/// Resolves at Ctrl-C, or SIGTERM on Unix.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Resolves once `stop` says so (or its sender is gone).
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
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
    let access_log = match &args.access_log {
        Some(path) => match AccessLog::open(path) {
            Ok(log) => {
                println!(
                    "mailroom access log: JSON lines appended to {}",
                    log.path().display()
                );
                Some(log)
            }
            Err(e) => {
                eprintln!("mailroom: --access-log {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let state = std::sync::Arc::new(app::Mailroom::seeded(args.opts.accounts, args.opts.patched));
    let guard = match args.opts.guard {
        GuardChoice::Enforce => "enforce",
        GuardChoice::Observe => "observe",
        GuardChoice::Off => "off",
    };
    // The recorder goes in before any guard serves (the guard registers
    // its counters at its first request).
    let metrics = match &args.admin {
        Some(_) => match metrics_exporter_prometheus::PrometheusBuilder::new()
            // The guard's own time as a histogram that replicas aggregate.
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(
                    enumguard::metrics::GUARD_SECONDS.into(),
                ),
                enumguard::metrics::GUARD_SECONDS_BUCKETS,
            )
            .and_then(|b| b.install_recorder())
        {
            Ok(h) => Some(h),
            Err(e) => {
                eprintln!("mailroom: cannot install the metrics recorder: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    // Tells the servers to stop taking connections and finish what they
    // serve.
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    for i in 0..args.replicas {
        let mut opts = args.opts.clone();
        if let Some(c) = opts.config.cluster.as_mut() {
            c.replica_id = Some(format!("mailroom-{i}"));
        }
        let app = match replica(&opts, state.clone(), access_log.as_ref()) {
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
                .with_graceful_shutdown(stopped(stop_rx.clone()))
                .into_future(),
            );
        }
        servers.spawn(
            axum::serve(
                listener,
                app.router
                    .into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
        );
    }
    let failed = tokio::select! {
        _ = stop_signal() => None,
        r = servers.join_next() => Some(match r {
            Some(Ok(Err(e))) => e.to_string(),
            Some(Err(e)) => e.to_string(),
            _ => "it ended".into(),
        }),
    };
    // Stop taking connections; the requests in flight are answered (and
    // logged), for up to DRAIN, or until a second Ctrl-C.
    let _ = stop.send(true);
    tokio::select! {
        _ = async { while servers.join_next().await.is_some() {} } => {}
        _ = tokio::time::sleep(DRAIN) => {
            eprintln!("mailroom: requests still in flight after {DRAIN:?}; stopping anyway");
        }
        _ = stop_signal() => {}
    }
    servers.shutdown().await;
    if let Some(log) = access_log {
        let path = log.path().display().to_string();
        // On a thread of its own, not the runtime's blocking pool: the
        // runtime waits for those when it shuts down, and a stuck write
        // must not hold the process.
        let (done, closed) = tokio::sync::oneshot::channel();
        let dropped = log.dropped.clone();
        std::thread::spawn(move || {
            let _ = done.send(log.close());
        });
        tokio::select! {
            r = closed => match r {
                Ok(s) => eprintln!(
                    "mailroom: access log {path}: {} lines written, {} dropped{}",
                    s.written,
                    s.dropped,
                    s.error.map(|e| format!(" ({e})")).unwrap_or_default()
                ),
                Err(_) => eprintln!("mailroom: access log {path}: the writer failed"),
            },
            _ = tokio::time::sleep(CLOSE_WAIT) => eprintln!(
                "mailroom: access log {path}: a write has not returned in {CLOSE_WAIT:?}; \
                 stopping without the lines still queued ({} dropped before)",
                dropped.load(Ordering::Relaxed)
            ),
            _ = stop_signal() => eprintln!(
                "mailroom: access log {path}: stopping without the lines still queued ({} \
                 dropped before)",
                dropped.load(Ordering::Relaxed)
            ),
        }
    }
    match failed {
        None => ExitCode::SUCCESS,
        Some(why) => {
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
