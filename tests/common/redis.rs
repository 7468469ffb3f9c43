//! A real `redis-server` for the cluster tests: started on an ephemeral
//! loopback port with a temporary directory, stopped (killed) on drop; with
//! a password, with TLS, or as the nodes of a Redis Cluster.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    /// The plain (non-TLS) port.
    pub port: u16,
    pub dir: PathBuf,
    /// More arguments of `redis-server`.
    args: Vec<String>,
    child: Option<Child>,
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl RedisServer {
    /// Starts one on a free port. Panics, saying what is missing, when
    /// `redis-server` is not installed.
    pub fn start() -> Self {
        Self::start_with(|_| Vec::new())
    }

    /// Starts one with more arguments, made from its directory.
    pub fn start_with(args: impl FnOnce(&std::path::Path) -> Vec<String>) -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("enumguard-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let args = args(&dir);
        let mut s = Self {
            port,
            dir,
            args,
            child: None,
        };
        s.restart();
        s
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `redis-cli` on this server, with `args`: its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli (it comes with redis-server)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// (Re)starts the server on the same port, and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `redis-server` ({e}): the cluster tests need a real Redis. \
                     Install it (`apt-get install -y redis-server`; `.ci/run` does) or run \
                     `cargo test` without `--features redis`."
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server on port {} did not answer within 10 s",
            self.port
        );
    }

    /// Kills the server (as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        // +PONG, or -NOAUTH from a server with a password: it answers.
        let mut buf = [0u8; 1];
        s.read_exact(&mut buf).is_ok() && (buf[0] == b'+' || buf[0] == b'-')
    }
}

/// A Redis Cluster of `n` primaries (no replicas), each a `redis-server`
/// with cluster mode on, joined with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(n: usize) -> Self {
        let nodes: Vec<RedisServer> = (0..n)
            .map(|_| {
                RedisServer::start_with(|_| {
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-port",
                        &free_port().to_string(),
                    ]
                    .map(String::from)
                    .to_vec()
                })
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli (it comes with redis-server)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if nodes
                .iter()
                .all(|s| s.cli(&["cluster", "info"]).contains("cluster_state:ok"))
            {
                return Self { nodes };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the Redis Cluster did not come up within 20 s");
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
