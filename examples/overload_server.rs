//! Overload: a plain axum app at saturation on loopback, with and without
//! the guard, driven by `wrk`.
//!
//! ```text
//! apt-get install -y wrk            # and taskset (util-linux)
//! CARGO_TARGET_DIR=/tmp/target-overload cargo build --release --example overload_server
//! /tmp/target-overload/release/examples/overload_server bench \
//!     --rounds 3 --secs 20 --conns 64,512
//! ```
//!
//! `overload_server serve MODE [--listen 127.0.0.1:PORT]` runs one server
//! (one thread, a current-thread tokio runtime; it exits by itself after
//! `--max-secs`, default 3600) in one of three modes:
//! - `bare`: the app alone (`GET /api/accounts/{id}/addressbook` answers
//!   `{"account":ID,"contacts":[]}`; `GET /` answers `ok`);
//! - `guarded`: the app under enumguard in enforce mode, configured as an
//!   application would be: an objects probe on the address book (path
//!   target, default thresholds), the account from `x-account` and the
//!   session from `x-session`. The load is one client reading its own
//!   address book, so every request is a probe request (the guard's dearer
//!   path) and none is refused: ordinary traffic, admitted;
//! - `refusing`: the same guard with the client's account banned by the
//!   operator (`GuardHandle::ban`), so every request is refused by the guard
//!   (429) before the app runs.
//!
//! `overload_server bench` is the measurement: it starts the three servers
//! pinned to CPU 0 (`taskset -c 0`) and drives each with `wrk` pinned to
//! CPU 1 (`taskset -c 1 wrk -t2 -c<C> -d<S>s --latency`), so the two never
//! share a core of this two-core machine. For each connection count it runs
//! `--rounds` interleaved rounds (bare, guarded, refusing, then the next
//! round in a rotated order) after a warm-up of every server. Before each
//! run it waits, polling every 20 s for at most `--quiet-wait` seconds
//! (default 600; `--quiet-total`, default 1800, bounds all the waiting
//! together), until the 1-minute load average is below `--quiet-load`
//! (default 0.7), and records the load it started at. Per run: requests/s,
//! p50, p99, p99.9 and max latency (wrk's, through a `done` hook in Lua),
//! the server's CPU time per request (`/proc/PID/stat`), and the non-2xx
//! count, which must be 0 for `bare` and `guarded` and every request for
//! `refusing` (checked). The table gives min / median / max over rounds.
//! Every loop is bounded in count and in time; only 127.0.0.1 is used.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::{Router, routing::get};
use enumguard::{AccountId, Actor, GuardLayer, ProbeConfig, TargetConfig};

const MODES: [&str; 3] = ["bare", "guarded", "refusing"];
/// The client the load generator plays: its account and session.
const ACCOUNT: &str = "1";
const SESSION: &str = "s-1";
const PATH: &str = "/api/accounts/1/addressbook";

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("bench") => bench(&args[1..]),
        _ => Err(
            "usage: overload_server serve bare|guarded|refusing [--listen ADDR] [--max-secs N]\n       \
             overload_server bench [--rounds N] [--secs S] [--conns C1,C2] [--threads T] \
             [--quiet-load L] [--quiet-wait S] [--quiet-total S] [--server-cpu N] [--client-cpu N]"
                .into(),
        ),
    }
}

/// `--name value` from `args`, or `default`.
fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, Error> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name}: missing or invalid value").into()),
    }
}

// ---------------------------------------------------------------- server

async fn addressbook(Path(id): Path<u64>) -> String {
    format!("{{\"account\":{id},\"contacts\":[]}}")
}

fn serve(args: &[String]) -> Result<(), Error> {
    let mode = args.first().map(String::as_str).unwrap_or("");
    if !MODES.contains(&mode) {
        return Err(format!("serve: mode must be one of {MODES:?}").into());
    }
    let listen: SocketAddr = flag(args, "--listen", SocketAddr::from(([127, 0, 0, 1], 0)))?;
    if !listen.ip().is_loopback() {
        return Err("serve: --listen must be a loopback address".into());
    }
    let max_secs: u64 = flag(args, "--max-secs", 3600)?;

    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/api/accounts/{id}/addressbook", get(addressbook));
    let app = if mode == "bare" {
        app
    } else {
        let guard = GuardLayer::builder()
            .probe(ProbeConfig::objects(
                "addressbook",
                "GET",
                "/api/accounts/{id}/addressbook",
                TargetConfig::path("id"),
            ))
            .session_header("x-session")
            // The account as an auth proxy would pass it (a real service
            // takes it from a verified session, never from the client).
            .account(|parts| {
                let id = parts.headers.get("x-account")?.to_str().ok()?;
                Some(AccountId::new(id))
            })
            .build()?;
        if mode == "refusing" {
            guard.handle().ban(
                &Actor::Account(AccountId::new(ACCOUNT)),
                Duration::from_secs(max_secs + 60),
            );
        }
        app.layer(guard)
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        println!("listening on http://{}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let server = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        );
        // Bounded in time: the server ends by itself.
        match tokio::time::timeout(Duration::from_secs(max_secs), server).await {
            Ok(res) => res?,
            Err(_) => eprintln!("overload_server: --max-secs {max_secs} reached, exiting"),
        }
        Ok(())
    })
}

// ----------------------------------------------------------------- bench

/// A server child process and its address.
struct Server {
    mode: &'static str,
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(mode: &'static str, cpu: usize, max_secs: u64) -> Result<Server, Error> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new("taskset")
        .arg("-c")
        .arg(cpu.to_string())
        .arg(exe)
        .args(["serve", mode, "--max-secs", &max_secs.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    // The first line names the address; the child prints nothing else.
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|a| a.parse().ok());
    let Some(addr) = addr else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("{mode}: server did not start: {line:?}").into());
    };
    Ok(Server { mode, child, addr })
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = stat.rsplit_once(')').ok_or("bad stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Waits (polling every 20 s, at most `max_wait`) until the 1-minute load
/// is below `below`; returns the load it ends at and whether it was quiet.
fn wait_quiet(below: f64, max_wait: Duration) -> (f64, bool) {
    let start = Instant::now();
    loop {
        let l = loadavg();
        if l < below {
            return (l, true);
        }
        if start.elapsed() >= max_wait {
            eprintln!("  load {l:.2} still >= {below} after {max_wait:?}: measuring anyway");
            return (l, false);
        }
        eprintln!("  load {l:.2} >= {below}: waiting");
        std::thread::sleep(Duration::from_secs(20).min(max_wait.saturating_sub(start.elapsed())));
    }
}

/// wrk's `done` hook: one machine-readable line.
const WRK_LUA: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("EGRESULT %d %d %d %d %d %d %d %d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"#;

#[derive(Clone, Copy, Default)]
struct Run {
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    cpu_us: f64,
    load: f64,
    quiet: bool,
}

struct Wrk<'a> {
    cpu: usize,
    threads: usize,
    conns: usize,
    secs: u64,
    script: &'a std::path::Path,
}

/// One wrk run against `server`; checks the statuses.
fn run_wrk(server: &Server, wrk: &Wrk) -> Result<Run, Error> {
    let url = format!("http://{}{PATH}", server.addr);
    let pid = server.child.id();
    let ticks0 = cpu_ticks(pid)?;
    let out = Command::new("taskset")
        .arg("-c")
        .arg(wrk.cpu.to_string())
        .arg("wrk")
        .arg(format!("-t{}", wrk.threads))
        .arg(format!("-c{}", wrk.conns))
        .arg(format!("-d{}s", wrk.secs))
        .arg("--latency")
        .arg("--timeout")
        .arg("10s")
        .args(["-H", &format!("x-account: {ACCOUNT}")])
        .args(["-H", &format!("x-session: {SESSION}")])
        .arg("-s")
        .arg(wrk.script)
        .arg(&url)
        .stdin(Stdio::null())
        .output()?;
    let ticks1 = cpu_ticks(pid)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("EGRESULT "))
        .ok_or_else(|| format!("no result line in wrk output:\n{stdout}"))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN))
        .collect();
    let (requests, duration_us) = (v[0], v[1]);
    let (non2xx, sock_errors) = (v[6], v[7]);
    if sock_errors > 0.0 {
        return Err(format!("{}: {sock_errors} socket errors", server.mode).into());
    }
    let expected = if server.mode == "refusing" {
        requests
    } else {
        0.0
    };
    if non2xx != expected {
        return Err(format!(
            "{}: {non2xx} non-2xx of {requests} requests (expected {expected})",
            server.mode
        )
        .into());
    }
    // Clock ticks: USER_HZ, 100 on Linux.
    let cpu_secs = (ticks1 - ticks0) as f64 / 100.0;
    Ok(Run {
        rps: requests / (duration_us / 1e6),
        p50: v[2],
        p99: v[3],
        p999: v[4],
        max: v[5],
        cpu_us: cpu_secs * 1e6 / requests.max(1.0),
        ..Run::default()
    })
}

fn bench(args: &[String]) -> Result<(), Error> {
    let rounds: usize = flag(args, "--rounds", 3)?;
    let secs: u64 = flag(args, "--secs", 20)?;
    let conns: String = flag(args, "--conns", "64,512".to_string())?;
    let threads: usize = flag(args, "--threads", 2)?;
    let quiet_load: f64 = flag(args, "--quiet-load", 0.7)?;
    let quiet_wait = Duration::from_secs(flag(args, "--quiet-wait", 600)?);
    // All the waiting together is bounded too.
    let quiet_total = Duration::from_secs(flag(args, "--quiet-total", 1800)?);
    let mut waited = Duration::ZERO;
    let server_cpu: usize = flag(args, "--server-cpu", 0)?;
    let client_cpu: usize = flag(args, "--client-cpu", 1)?;
    let conns: Vec<usize> = conns
        .split(',')
        .map(|c| c.trim().parse())
        .collect::<Result<_, _>>()?;
    if rounds == 0 || rounds > 50 || secs == 0 || secs > 600 || conns.is_empty() {
        return Err("bench: 1..=50 rounds of 1..=600 s, at least one --conns".into());
    }

    let script = std::env::temp_dir().join(format!("overload_server-{}.lua", std::process::id()));
    std::fs::write(&script, WRK_LUA)?;
    // Every server outlives the whole measurement, with a margin; they are
    // killed when it ends.
    let total = (rounds * 3 + 1) as u64 * (secs + quiet_wait.as_secs() + 10) * conns.len() as u64;
    let servers: Vec<Server> = MODES
        .iter()
        .map(|m| start_server(m, server_cpu, total + 600))
        .collect::<Result<_, _>>()?;
    eprintln!(
        "servers on CPU {server_cpu}: {}; wrk on CPU {client_cpu}",
        servers
            .iter()
            .map(|s| format!("{} {}", s.mode, s.addr))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut tables = Vec::new();
    for &c in &conns {
        let wrk = Wrk {
            cpu: client_cpu,
            threads,
            conns: c,
            secs,
            script: &script,
        };
        // Warm-up: every server, a fifth of a run (at least 2 s).
        let warm = Wrk {
            secs: (secs / 5).max(2),
            ..wrk
        };
        for s in &servers {
            run_wrk(s, &warm)?;
        }
        let mut runs: Vec<Vec<Run>> = vec![Vec::new(); 3];
        for round in 0..rounds {
            for k in 0..3 {
                let i = (k + round) % 3;
                let t = Instant::now();
                let (load, quiet) = wait_quiet(
                    quiet_load,
                    quiet_wait.min(quiet_total.saturating_sub(waited)),
                );
                waited += t.elapsed();
                let mut run = run_wrk(&servers[i], &wrk)?;
                run.load = load;
                run.quiet = quiet;
                eprintln!(
                    "  c{c} round {} {:9}: {:8.0} req/s  p50 {:6.0} µs  p99 {:6.0} µs  p99.9 {:6.0} µs  \
                     max {:7.0} µs  server {:.2} µs/req  (load {load:.2}{})",
                    round + 1,
                    MODES[i],
                    run.rps,
                    run.p50,
                    run.p99,
                    run.p999,
                    run.max,
                    run.cpu_us,
                    if quiet { "" } else { ", NOT quiet" }
                );
                runs[i].push(run);
            }
        }
        tables.push((c, runs));
    }
    let _ = std::fs::remove_file(&script);
    drop(servers);

    // min / median / max over rounds
    fn mmm(runs: &[Run], f: fn(&Run) -> f64, digits: usize) -> String {
        let mut xs: Vec<f64> = runs.iter().map(f).collect();
        xs.sort_by(f64::total_cmp);
        let (lo, mid, hi) = (xs[0], xs[xs.len() / 2], xs[xs.len() - 1]);
        format!("{lo:.digits$} / **{mid:.digits$}** / {hi:.digits$}")
    }
    println!();
    println!(
        "## wrk -t{threads} -c<C> -d{secs}s --latency on CPU {client_cpu}, server (1 thread) on CPU {server_cpu}; \
         {rounds} interleaved rounds; min / **median** / max over rounds"
    );
    println!();
    println!(
        "| -c | server | req/s | p50 µs | p99 µs | p99.9 µs | max µs | server CPU µs/req | load at start (quiet runs) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---|");
    for (c, runs) in &tables {
        for (i, r) in runs.iter().enumerate() {
            let loads: Vec<String> = r.iter().map(|x| format!("{:.2}", x.load)).collect();
            println!(
                "| {c} | {} | {} | {} | {} | {} | {} | {} | {} ({}/{}) |",
                MODES[i],
                mmm(r, |x| x.rps, 0),
                mmm(r, |x| x.p50, 0),
                mmm(r, |x| x.p99, 0),
                mmm(r, |x| x.p999, 0),
                mmm(r, |x| x.max, 0),
                mmm(r, |x| x.cpu_us, 2),
                loads.join(", "),
                r.iter().filter(|x| x.quiet).count(),
                r.len()
            );
        }
    }
    Ok(())
}
