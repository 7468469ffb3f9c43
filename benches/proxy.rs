//! `enumguard proxy` against nginx, side by side in one run (issue 25,
//! item 4), on loopback only, driven by `wrk`.
//!
//! ```text
//! apt-get install -y wrk nginx      # and taskset (util-linux)
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench --features proxy --bench proxy
//! ```
//!
//! One upstream and four ways to reach it, every one on a 127.0.0.1
//! ephemeral port:
//! - `direct`: the upstream itself, a hyper HTTP/1.1 server on one thread
//!   (a current-thread tokio runtime) answering 200 with a short JSON body
//!   on `GET /api/accounts/{id}/addressbook` and `GET /hello`;
//! - `nginx`: nginx as a reverse proxy to it (`nginx -p DIR -c
//!   DIR/nginx.conf`, written into a temp dir: `daemon off`,
//!   `master_process off`, one worker, `access_log off`, an `upstream` with
//!   `keepalive 32`, `proxy_http_version 1.1`, `Connection ""`, client and
//!   upstream `keepalive_requests` raised so neither side reconnects every
//!   1,000 requests), when `nginx` is on the PATH; skipped with a message
//!   otherwise, killed at the end (also on a panic);
//! - `proxy idle`: `enumguard::proxy::Proxy` in process, on one thread of
//!   its own, with a config that has no probes: the guard's fast path only;
//! - `proxy on`: the same with the probes of `examples/mailroom.toml`
//!   (`Config::from_file`, enforce mode), the session from `x-session` and
//!   the account from the request header `x-user-id` (`[proxy] account = {
//!   request_header = "x-user-id" }`).
//!
//! wrk runs one thread (`wrk -t1 -c<C> -d<S>s --latency`) with a Lua script
//! (written to the temp dir) that makes every request an ordinary probe
//! request of the guarded proxy: 16 users per wrk thread, user `N` reading
//! its own address book (`GET /api/accounts/N/addressbook`, `x-user-id: N`,
//! `x-session: s-N`), the users taken in turn request by request. The same
//! script drives every target. A refused request would make the figures
//! those of a refusal: wrk's non-2xx count must be 0 (a loud warning
//! otherwise), as must its socket errors.
//!
//! With `taskset` on the PATH and two CPUs, the servers (the upstream, nginx
//! and the two proxies) are pinned to CPU 0 and wrk to CPU 1
//! (`ENUMGUARD_PROXY_PIN`: `0` for no pinning, or `SERVER,CLIENT` CPUs;
//! default `0,1`), so a proxy and the upstream share one core, as nginx and
//! the upstream do, and wrk never takes it from them.
//!
//! After a warm-up of every target (1 s each), `ENUMGUARD_PROXY_ROUNDS`
//! rounds (default 5; 0 skips the comparison) are interleaved: in each, a
//! run with one connection (`-c1`: one request at a time, so the latency
//! the guard adds is its own, without queueing) of every target in turn
//! (direct, nginx, proxy idle, proxy on; the next round rotated by one),
//! then a fixed-concurrency run (`-c16`), then a saturation run (`-c64`) of
//! every target in the same order, each
//! `ENUMGUARD_PROXY_SECS` seconds (default 5). Per run: requests/s (wrk's
//! `Requests/sec`), p50 and p99 latency (wrk's `Latency Distribution`
//! lines, to the microsecond from a `done` hook in the script: wrk's text
//! rounds to 10 µs above 1 ms), the CPU time per request of the front
//! (nginx's process, a proxy's thread) and of the upstream's thread (from
//! `schedstat`), and the 1-minute load average it started at. The table
//! gives the median over rounds per target and concurrency, then the ratios
//! within each round (medians over rounds): proxy idle / nginx and proxy
//! on / proxy idle in requests/s, and the differences of their p50 and p99
//! in µs, against the targets of issue 25 (the proxy alone at least 0.9x
//! nginx's throughput; the guard at most 5% of throughput and 1 µs of
//! median latency over the proxy alone).
//!
//! `ENUMGUARD_PROXY_SOAK_SECS` (off by default; 600 for the issue's
//! 10-minute soak): after the comparison, wrk drives the guarded proxy in
//! 5-second runs (new connections each run, keep-alive within it,
//! alternately 16 and 64 connections), and every 30 s the bench prints this
//! process's RSS (`VmRSS`, `VmHWM` of `/proc/self/status`: the upstream and
//! both proxies live here; nginx does not) with the guard's tracked records,
//! then the change from the first sample to the last.
//!
//! Outside `cargo bench` (`cargo test --benches --features proxy`) the
//! defaults are 1 s and 1 round. Every loop is bounded (rounds, soak
//! chunks, start-up polls); every wait on a child or a socket has a
//! deadline.

/// The allocator the `enumguard` binary runs `enumguard proxy` with. (The
/// in-process upstream gets it too, for every target alike.)
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use enumguard::proxy::Proxy;
use enumguard::{Config, GuardHandle};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// Users per wrk thread: user `N` reads its own address book.
const USERS: usize = 16;
/// The concurrencies: one request at a time (no queueing: the latency
/// the guard adds by itself), then the fixed concurrency and the saturating
/// one, where the one-thread proxy is flat out and each microsecond of CPU
/// it spends shows in the median about as many times as requests wait.
const CONNS: [usize; 3] = [1, 16, 64];
/// The concurrencies of the warm-up and of the soak's alternating runs.
const LOADED: [usize; 2] = [16, 64];
/// Soak: the length of one wrk run, and how often RSS is printed.
const SOAK_CHUNK_SECS: u64 = 5;
const SOAK_EVERY: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- helpers

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

fn thread_id() -> u64 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

/// Pins the calling thread (and the threads it starts) to `cpu`.
fn pin_thread(cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    let tid = thread_id();
    let ok = Command::new("taskset")
        .args(["-p", "-c", &cpu.to_string(), &tid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("could not pin thread {tid} to CPU {cpu}: running it unpinned");
    }
}

/// Whose CPU time a run charges to a target.
#[derive(Clone, Copy)]
enum Cpu {
    None,
    /// A thread of this process.
    Thread(u64),
    /// A single-threaded child process (nginx).
    Process(u32),
}

/// On-CPU time in nanoseconds (the first field of `schedstat`).
fn cpu_ns(c: Cpu) -> Option<u64> {
    let path = match c {
        Cpu::None => return None,
        Cpu::Thread(tid) => format!("/proc/self/task/{tid}/schedstat"),
        Cpu::Process(pid) => format!("/proc/{pid}/schedstat"),
    };
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.retain(|x| !x.is_nan());
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// A temp dir of this run, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("enumguard-proxy-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One request over a fresh connection (`Connection: close`), as user 1;
/// the status, within 5 s.
fn status_of(addr: SocketAddr) -> Result<u16, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .and_then(|()| s.set_write_timeout(Some(Duration::from_secs(5))))
        .map_err(|e| e.to_string())?;
    s.write_all(
        b"GET /api/accounts/1/addressbook HTTP/1.1\r\nHost: 127.0.0.1\r\n\
          x-user-id: 1\r\nx-session: s-1\r\nConnection: close\r\n\r\n",
    )
    .map_err(|e| format!("write {addr}: {e}"))?;
    let mut buf = Vec::new();
    s.take(64 * 1024)
        .read_to_end(&mut buf)
        .map_err(|e| format!("read {addr}: {e}"))?;
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{addr}: no status line in {head:?}"))
}

// --------------------------------------------------------------- upstream

/// The upstream's answers: 200 and a short JSON body, 404 otherwise.
async fn app(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    let body = if req.method() != Method::GET {
        None
    } else if path == "/hello" {
        Some(Bytes::from_static(b"{\"hello\":\"world\"}"))
    } else {
        path.strip_prefix("/api/accounts/")
            .and_then(|rest| rest.strip_suffix("/addressbook"))
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .map(|id| Bytes::from(format!("{{\"account\":{id},\"contacts\":[]}}")))
    };
    let mut res = match body {
        Some(b) => Response::new(Full::new(b)),
        None => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"{\"error\":\"not found\"}")));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

/// A server on a thread of its own (a current-thread runtime), stopped and
/// joined when dropped.
struct InProcess {
    name: &'static str,
    addr: SocketAddr,
    tid: u64,
    /// The guard's handle (the proxies).
    handle: Option<GuardHandle>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Started = Result<(SocketAddr, u64, Option<GuardHandle>), String>;

impl InProcess {
    /// Starts `serve` on a new thread pinned to `cpu`; `serve` reports its
    /// address and runs until the stop signal.
    fn start<F, Fut>(name: &'static str, cpu: Option<usize>, serve: F) -> Result<Self, String>
    where
        F: FnOnce(std::sync::mpsc::Sender<Started>, tokio::sync::oneshot::Receiver<()>) -> Fut
            + Send
            + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.replace(' ', "-"))
            .spawn(move || {
                pin_thread(cpu);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(serve(tx, stop_rx));
            })
            .map_err(|e| e.to_string())?;
        let mut this = Self {
            name,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tid: 0,
            handle: None,
            stop: Some(stop),
            thread: Some(thread),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok((addr, tid, handle))) => {
                this.addr = addr;
                this.tid = tid;
                this.handle = handle;
                Ok(this)
            }
            Ok(Err(e)) => Err(format!("{name}: {e}")),
            Err(e) => Err(format!("{name}: did not start: {e}")),
        }
    }

    fn upstream(cpu: Option<usize>) -> Result<Self, String> {
        Self::start("upstream", cpu, |tx, mut stop| async move {
            let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(format!("bind 127.0.0.1:0: {e}")));
                    return;
                }
            };
            let addr = listener.local_addr().expect("local addr");
            let _ = tx.send(Ok((addr, thread_id(), None)));
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    conn = listener.accept() => {
                        let Ok((stream, _)) = conn else { continue };
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(async move {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service_fn(app))
                                .await;
                        });
                    }
                }
            }
        })
    }

    fn proxy(name: &'static str, config: Config, cpu: Option<usize>) -> Result<Self, String> {
        Self::start(name, cpu, |tx, stop| async move {
            match Proxy::start(config, None).await {
                Ok(p) => {
                    let _ = tx.send(Ok((p.addr(), thread_id(), Some(p.handle().clone()))));
                    let _ = stop.await;
                    p.shutdown().await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })
    }
}

/// The `[proxy]` table both proxies share, and the idle proxy's whole
/// config: no probes.
fn idle_config(upstream: SocketAddr) -> Config {
    Config::from_toml_str(&format!(
        r#"
mode = "enforce"
session = {{ header = "x-session" }}

[proxy]
listen = "127.0.0.1:0"
upstream = "http://{upstream}"
pool_idle_secs = 30
grace_secs = 0
account = {{ request_header = "x-user-id" }}
"#
    ))
    .expect("the idle proxy's config")
}

/// The mailroom's probes (and the rest of its config) with the idle
/// proxy's session and `[proxy]` table.
fn guarded_config(upstream: SocketAddr) -> Config {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/mailroom.toml");
    let mut c = Config::from_file(&file).expect("examples/mailroom.toml");
    let idle = idle_config(upstream);
    c.session = idle.session;
    c.proxy = idle.proxy;
    assert!(!c.probes.is_empty(), "mailroom.toml has probes");
    c
}

// ------------------------------------------------------------------ nginx

/// nginx, our child, killed when dropped (also while a panic unwinds).
struct Nginx {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn start(dir: &Path, upstream: SocketAddr, cpu: Option<usize>) -> Result<Self, String> {
        // A free port: bound once, then given to nginx.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a free port: {e}"))?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let d = dir.display();
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    upstream app {{
        server {upstream};
        keepalive 32;
        keepalive_requests 1000000;
    }}
    server {{
        listen {addr};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"#
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(|e| format!("write nginx.conf: {e}"))?;
        let mut cmd = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &cpu.to_string(), "nginx"]);
                c
            }
            None => Command::new("nginx"),
        };
        let child = cmd
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn nginx: {e}"))?;
        let mut nginx = Self { child, addr };
        let log = || std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        // Up to 10 s for it to answer.
        for _ in 0..100 {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                return Err(format!("nginx exited at start ({status}):\n{}", log()));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(nginx);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = nginx.child.kill();
        Err(format!(
            "nginx did not listen on {addr} within 10 s:\n{}",
            log()
        ))
    }
}

// -------------------------------------------------------------------- wrk

/// The wrk script: every request user `N` reading its own address book,
/// `USERS` users per wrk thread taken in turn; the `done` hook prints the
/// exact percentiles (µs).
fn wrk_lua() -> String {
    format!(
        r#"-- enumguard benches/proxy.rs: every request an ordinary probe request.
local users = {USERS}
local reqs = {{}}
local i = 0
local threads = 0

function setup(thread)
  thread:set("first", threads * users + 1)
  threads = threads + 1
end

function init(args)
  local base = first or 1
  for k = 0, users - 1 do
    local n = base + k
    reqs[k + 1] = wrk.format("GET", "/api/accounts/" .. n .. "/addressbook",
      {{ ["x-user-id"] = tostring(n), ["x-session"] = "s-" .. n }})
  end
end

function request()
  i = i % users + 1
  return reqs[i]
end

function done(summary, latency, requests)
  io.write(string.format("EGRESULT %d %d %d %d %d\n",
    latency:percentile(50), latency:percentile(99),
    summary.requests, summary.duration, summary.errors.status))
end
"#
    )
}

/// What one target is, for a run.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    front: Cpu,
}

#[derive(Clone, Copy)]
struct Run {
    rps: f64,
    p50: f64,
    p99: f64,
    requests: u64,
    non2xx: u64,
    socket_errors: u64,
    front_cpu: f64,
    upstream_cpu: f64,
    load: f64,
}

/// A wrk duration (`180.00us`, `1.20ms`, `2.00s`, `1.00m`) in µs.
fn wrk_us(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v,
        "ms" => v * 1e3,
        "s" => v * 1e6,
        "m" => v * 60e6,
        "h" => v * 3600e6,
        _ => return None,
    })
}

/// Requests/sec, the 50% and 99% latency lines (µs), non-2xx and socket
/// errors from wrk's text; the `done` hook's exact percentiles when there.
fn parse_wrk(out: &str) -> Result<(f64, f64, f64, u64, u64, u64), String> {
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    let (mut non2xx, mut socket_errors, mut requests) = (0, 0, 0);
    for line in out.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if let Some(v) = l.strip_prefix("50%") {
            p50 = wrk_us(v.trim());
        } else if let Some(v) = l.strip_prefix("99%") {
            p99 = wrk_us(v.trim());
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            non2xx = v.trim().parse().unwrap_or(u64::MAX);
        } else if let Some(v) = l.strip_prefix("Socket errors:") {
            // connect A, read B, write C, timeout D
            socket_errors = v
                .split(',')
                .filter_map(|f| f.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if let Some(v) = l.strip_prefix("EGRESULT ") {
            let f: Vec<u64> = v
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if let [a, b, reqs, _duration, status] = f[..] {
                p50 = Some(a as f64);
                p99 = Some(b as f64);
                requests = reqs;
                non2xx = non2xx.max(status);
            }
        }
    }
    match (rps, p50, p99) {
        (Some(r), Some(a), Some(b)) => Ok((r, a, b, requests, non2xx, socket_errors)),
        _ => Err(format!(
            "no Requests/sec or latency lines in wrk output:\n{out}"
        )),
    }
}

struct Wrk {
    cpu: Option<usize>,
    script: PathBuf,
}

impl Wrk {
    /// One run against `t` with `conns` connections for `secs`.
    fn run(&self, t: &Target, upstream: Cpu, conns: usize, secs: u64) -> Result<Run, String> {
        let mut cmd = match self.cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &cpu.to_string(), "wrk"]);
                c
            }
            None => Command::new("wrk"),
        };
        let load = loadavg();
        let (f0, u0) = (cpu_ns(t.front), cpu_ns(upstream));
        let out = cmd
            .arg("-t1")
            .arg(format!("-c{conns}"))
            .arg(format!("-d{secs}s"))
            .arg("--latency")
            .args(["--timeout", "10s"])
            .arg("-s")
            .arg(&self.script)
            .arg(format!("http://{}/", t.addr))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run wrk: {e}"))?;
        let (f1, u1) = (cpu_ns(t.front), cpu_ns(upstream));
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "wrk failed ({}):\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let (rps, p50, p99, requests, non2xx, socket_errors) = parse_wrk(&stdout)?;
        let requests = if requests > 0 {
            requests
        } else {
            (rps * secs as f64) as u64
        };
        let per_req = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) if requests > 0 => {
                b.saturating_sub(a) as f64 / 1e3 / requests as f64
            }
            _ => f64::NAN,
        };
        Ok(Run {
            rps,
            p50,
            p99,
            requests,
            non2xx,
            socket_errors,
            front_cpu: per_req(f0, f1),
            upstream_cpu: per_req(u0, u1),
            load,
        })
    }
}

/// Loud, so that nobody takes refusals' figures for a proxy's.
fn check(name: &str, conns: usize, r: &Run) {
    if r.non2xx > 0 {
        eprintln!();
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!(
            "!!! WARNING: {name} -c{conns}: {} non-2xx responses of {} requests: requests were",
            r.non2xx, r.requests
        );
        eprintln!("!!! refused; these figures are NOT those of ordinary traffic");
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!();
    }
    if r.socket_errors > 0 {
        eprintln!(
            "!!! WARNING: {name} -c{conns}: {} socket errors (connect, read, write, timeout)",
            r.socket_errors
        );
    }
}

fn fmt(v: f64, decimals: usize) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{v:.decimals$}")
    }
}

// ------------------------------------------------------------------- main

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    // `cargo bench` passes `--bench`; anything else (`cargo test --benches`)
    // gets a short smoke run.
    let full = args.iter().any(|a| a == "--bench");
    let secs = env_u64("ENUMGUARD_PROXY_SECS", if full { 5 } else { 1 }).clamp(1, 600);
    let rounds = env_u64("ENUMGUARD_PROXY_ROUNDS", if full { 5 } else { 1 }).min(100) as usize;
    let soak_secs = env_u64("ENUMGUARD_PROXY_SOAK_SECS", 0).min(24 * 3600);

    if !on_path("wrk") {
        println!("wrk is not on the PATH: skipping the proxy benchmark (apt-get install -y wrk)");
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let pin = match std::env::var("ENUMGUARD_PROXY_PIN").ok().as_deref() {
        Some("0") => None,
        Some(v) => {
            let p: Vec<usize> = v.split(',').filter_map(|c| c.trim().parse().ok()).collect();
            match p[..] {
                [s, c] if on_path("taskset") => Some((s, c)),
                _ => {
                    eprintln!(
                        "ENUMGUARD_PROXY_PIN={v}: want 0 or SERVER,CLIENT (and taskset): not pinning"
                    );
                    None
                }
            }
        }
        None => (on_path("taskset") && cpus >= 2).then_some((0, 1)),
    };
    let (server_cpu, client_cpu) = (pin.map(|p| p.0), pin.map(|p| p.1));

    let dir = TempDir::new();
    let script = dir.0.join("probe.lua");
    std::fs::write(&script, wrk_lua()).expect("write the wrk script");
    let wrk = Wrk {
        cpu: client_cpu,
        script,
    };

    let upstream = InProcess::upstream(server_cpu).expect("the upstream");
    let up_cpu = Cpu::Thread(upstream.tid);
    let nginx = if on_path("nginx") {
        match Nginx::start(&dir.0, upstream.addr, server_cpu) {
            Ok(n) => Some(n),
            Err(e) => {
                eprintln!("!!! nginx did not start: the table goes without it\n{e}");
                None
            }
        }
    } else {
        println!("nginx is not on the PATH: skipping nginx (apt-get install -y nginx)");
        None
    };
    let idle = InProcess::proxy("proxy idle", idle_config(upstream.addr), server_cpu)
        .expect("the idle proxy");
    let on = InProcess::proxy("proxy on", guarded_config(upstream.addr), server_cpu)
        .expect("the guarded proxy");

    let mut targets = vec![Target {
        name: "direct",
        addr: upstream.addr,
        front: Cpu::None,
    }];
    if let Some(n) = &nginx {
        targets.push(Target {
            name: "nginx",
            addr: n.addr,
            front: Cpu::Process(n.child.id()),
        });
    }
    for p in [&idle, &on] {
        targets.push(Target {
            name: p.name,
            addr: p.addr,
            front: Cpu::Thread(p.tid),
        });
    }
    for t in &targets {
        match status_of(t.addr) {
            Ok(200) => {}
            other => panic!("{} ({}): GET the address book: {other:?}", t.name, t.addr),
        }
    }
    eprintln!(
        "targets: {}; {}",
        targets
            .iter()
            .map(|t| format!("{} {}", t.name, t.addr))
            .collect::<Vec<_>>()
            .join(", "),
        match pin {
            Some((s, c)) => format!("servers on CPU {s}, wrk on CPU {c}"),
            None => "not pinned".into(),
        }
    );

    if rounds > 0 {
        compare(&targets, &wrk, up_cpu, secs, rounds, pin);
    }
    if soak_secs > 0 {
        let t = targets.last().expect("the guarded proxy");
        let handle = on.handle.as_ref().expect("the guard's handle");
        soak(t, handle, &wrk, up_cpu, soak_secs);
    }
    if let Some(h) = &on.handle {
        println!(
            "proxy on: {} records tracked, {} verdicts held",
            h.tracked(),
            h.verdict_count()
        );
    }
    // Stopped in this order: the proxies, nginx, the upstream, the temp dir.
    drop(on);
    drop(idle);
    drop(nginx);
    drop(upstream);
    drop(dir);
}

/// The interleaved rounds and the table.
fn compare(
    targets: &[Target],
    wrk: &Wrk,
    up_cpu: Cpu,
    secs: u64,
    rounds: usize,
    pin: Option<(usize, usize)>,
) {
    let n = targets.len();
    eprintln!("warm-up: 1 s per target");
    for t in targets {
        let r = wrk.run(t, up_cpu, LOADED[0], 1).expect("warm-up");
        check(t.name, LOADED[0], &r);
    }
    // runs[c][target]: one Run per round.
    let mut runs: Vec<Vec<Vec<Run>>> = vec![vec![Vec::new(); n]; CONNS.len()];
    for round in 0..rounds {
        for (c, &conns) in CONNS.iter().enumerate() {
            for k in 0..n {
                let i = (k + round) % n;
                let t = &targets[i];
                let r = wrk.run(t, up_cpu, conns, secs).expect("wrk run");
                eprintln!(
                    "round {}/{rounds} -c{conns} {:>10}: {:>8.0} req/s  p50 {:>6.0} µs  p99 {:>6.0} µs  front {} µs/req  upstream {} µs/req  non-2xx {}  (load {:.2})",
                    round + 1,
                    t.name,
                    r.rps,
                    r.p50,
                    r.p99,
                    fmt(r.front_cpu, 2),
                    fmt(r.upstream_cpu, 2),
                    r.non2xx,
                    r.load
                );
                check(t.name, conns, &r);
                runs[c][i].push(r);
            }
        }
    }

    let idx = |name: &str| targets.iter().position(|t| t.name == name);
    println!();
    println!(
        "## Proxy: the same upstream direct, through nginx and through enumguard proxy, on 127.0.0.1; \
         {rounds} interleaved rounds of {secs} s per target and concurrency"
    );
    println!(
        "## wrk -t1 -c<C> --latency ({}); upstream: hyper, 1 thread; nginx: 1 worker, keepalive 32; \
         each proxy: 1 thread",
        match pin {
            Some((s, c)) => format!("wrk on CPU {c}, the servers on CPU {s}"),
            None => "not pinned".into(),
        }
    );
    println!(
        "## every request GET /api/accounts/N/addressbook, x-user-id: N, x-session: s-N ({USERS} users); \
         medians over rounds; CPU per request from schedstat"
    );
    println!();
    println!(
        "| target | -c | req/s | p50 µs | p99 µs | front CPU µs/req | upstream CPU µs/req | non-2xx | requests |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (c, &conns) in CONNS.iter().enumerate() {
        for (i, t) in targets.iter().enumerate() {
            let rs = &runs[c][i];
            let med = |f: fn(&Run) -> f64| median(rs.iter().map(f).collect());
            println!(
                "| {} | {conns} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} |",
                t.name,
                med(|r| r.rps),
                med(|r| r.p50),
                med(|r| r.p99),
                fmt(med(|r| r.front_cpu), 2),
                fmt(med(|r| r.upstream_cpu), 2),
                rs.iter().map(|r| r.non2xx).sum::<u64>(),
                rs.iter().map(|r| r.requests).sum::<u64>(),
            );
        }
    }

    // Within each round: a / b in req/s, a - b in latency.
    let ratio = |c: usize, a: usize, b: usize| {
        median(
            runs[c][a]
                .iter()
                .zip(&runs[c][b])
                .map(|(x, y)| x.rps / y.rps)
                .collect(),
        )
    };
    let diff = |c: usize, a: usize, b: usize, f: fn(&Run) -> f64| {
        median(
            runs[c][a]
                .iter()
                .zip(&runs[c][b])
                .map(|(x, y)| f(x) - f(y))
                .collect(),
        )
    };
    let (ng, pi, po) = (idx("nginx"), idx("proxy idle"), idx("proxy on"));
    let (Some(pi), Some(po)) = (pi, po) else {
        return;
    };
    println!();
    println!("## per-round ratios and differences, medians over rounds");
    println!();
    println!(
        "| -c | proxy idle / nginx req/s | p50 µs idle - nginx | p99 µs idle - nginx | proxy on / proxy idle req/s | p50 µs on - idle | p99 µs on - idle |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (c, &conns) in CONNS.iter().enumerate() {
        let vs_nginx = |f: &dyn Fn(usize) -> String| ng.map_or_else(|| "n/a".to_string(), f);
        println!(
            "| {conns} | {} | {} | {} | {:.3} | {:+.0} | {:+.0} |",
            vs_nginx(&|g| format!("{:.3}", ratio(c, pi, g))),
            vs_nginx(&|g| format!("{:+.0}", diff(c, pi, g, |r| r.p50))),
            vs_nginx(&|g| format!("{:+.0}", diff(c, pi, g, |r| r.p99))),
            ratio(c, po, pi),
            diff(c, po, pi, |r| r.p50),
            diff(c, po, pi, |r| r.p99),
        );
    }
    println!();
    for (c, &conns) in CONNS.iter().enumerate() {
        match ng {
            Some(g) => {
                let r = ratio(c, pi, g);
                println!(
                    "target (proxy alone at least 0.9x nginx's throughput), -c{conns}: {r:.3} -> {}",
                    if r >= 0.9 { "met" } else { "MISSED" }
                );
            }
            None => println!(
                "target (proxy alone at least 0.9x nginx's throughput), -c{conns}: nginx not run"
            ),
        }
        let r = ratio(c, po, pi);
        println!(
            "target (guard at most 5% of the proxy's throughput), -c{conns}: {:+.1}% -> {}",
            (r - 1.0) * 100.0,
            if r >= 0.95 { "met" } else { "MISSED" }
        );
        let d = diff(c, po, pi, |r| r.p50);
        println!(
            "target (guard at most 1 µs of median latency), -c{conns}: {d:+.0} µs -> {}",
            if d <= 1.0 { "met" } else { "MISSED" }
        );
    }
    let refused: u64 = runs.iter().flatten().flatten().map(|r| r.non2xx).sum();
    if refused > 0 {
        println!(
            "!!! WARNING: {refused} non-2xx responses in the measured runs: see the warnings above"
        );
    } else {
        println!("every measured request answered 2xx (no refusal)");
    }
    println!();
}

/// The soak: the guarded proxy under wrk, new connections every
/// `SOAK_CHUNK_SECS`, RSS every `SOAK_EVERY`.
fn soak(t: &Target, handle: &GuardHandle, wrk: &Wrk, up_cpu: Cpu, secs: u64) {
    let chunks = secs.div_ceil(SOAK_CHUNK_SECS);
    println!(
        "## Soak: {} for {secs} s, wrk -t1 in {SOAK_CHUNK_SECS}-s runs (new connections each run, \
         alternately -c{} and -c{}); this process's memory (upstream and both proxies) every {} s",
        t.name,
        LOADED[0],
        LOADED[1],
        SOAK_EVERY.as_secs()
    );
    println!();
    println!(
        "| t s | VmRSS KiB | VmHWM KiB | records tracked | req/s (last run) | non-2xx so far |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let start = Instant::now();
    let row = |rps: f64, refused: u64| {
        let rss = status_kib("VmRSS");
        println!(
            "| {:.0} | {rss} | {} | {} | {} | {refused} |",
            start.elapsed().as_secs_f64(),
            status_kib("VmHWM"),
            handle.tracked(),
            fmt(rps, 0),
        );
        rss
    };
    let mut samples = vec![row(f64::NAN, 0)];
    let mut next = SOAK_EVERY;
    let mut refused = 0;
    for chunk in 0..chunks {
        let conns = LOADED[(chunk % 2) as usize];
        let r = match wrk.run(t, up_cpu, conns, SOAK_CHUNK_SECS) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("!!! soak: {e}");
                break;
            }
        };
        check(t.name, conns, &r);
        refused += r.non2xx;
        if start.elapsed() >= next || chunk + 1 == chunks {
            samples.push(row(r.rps, refused));
            while next <= start.elapsed() {
                next += SOAK_EVERY;
            }
        }
    }
    // The first sample under load (the pools and tables have grown) against
    // the last.
    let under_load = samples.get(1).copied().unwrap_or(samples[0]);
    let last = *samples.last().expect("a sample");
    let max = samples.iter().copied().max().unwrap_or(0);
    println!();
    println!(
        "soak: VmRSS {under_load} KiB at the first sample under load, {last} KiB at the end \
         ({:+} KiB), at most {max} KiB; {refused} non-2xx",
        last as i64 - under_load as i64
    );
    println!();
}
