//! One Redis server or a Redis Cluster, behind the few operations the sync
//! needs: write a batch, scan keys on every node, read values with their
//! expiry, subscribe.
//!
//! One server takes a batch as one pipeline. A Redis Cluster refuses a
//! pipeline whose keys hash to different slots, so there each command goes
//! alone, all of them at once on the multiplexed node connections (one
//! round trip per node, as a pipeline). Classic pub/sub is broadcast to
//! every node of a cluster: subscribing on any one node hears every
//! replica's messages.
//!
//! Every operation the sync awaits is bounded ([`within`]): a paused or
//! overloaded Redis is met like a dead one, and the connection is made
//! again.

use std::future::Future;
use std::time::Duration;

use futures_util::future::try_join_all;
use redis::aio::{MultiplexedConnection, PubSub};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, RedisError, Value};

use crate::config::{ClusterConfig, ConfigError, redact};

/// How long a Redis command may take before the connection is given up:
/// a paused or overloaded Redis is met like a dead one.
pub(super) const TIMEOUT: Duration = Duration::from_millis(500);

/// Why a connection ended.
pub(super) enum Ended {
    /// The guard is gone: the task ends.
    Closed,
    /// Redis failed: reconnect.
    Failed(String),
}

impl From<RedisError> for Ended {
    fn from(e: RedisError) -> Self {
        Ended::Failed(e.to_string())
    }
}

/// `op`, given `limit` to answer: a Redis error, or `what` timing out,
/// ends the connection.
pub(super) async fn within<T>(
    limit: Duration,
    what: &str,
    op: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, Ended> {
    let answer = tokio::time::timeout(limit, op)
        .await
        .map_err(|_| Ended::Failed(format!("{what} timed out")))?;
    Ok(answer?)
}

/// Where Redis is: a client for each way of reaching it.
pub(super) enum Source {
    One(redis::Client),
    Cluster {
        client: ClusterClient,
        /// One client per configured node, for the subscription.
        seeds: Vec<redis::Client>,
    },
}

/// A working connection.
pub(super) enum Link {
    One(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// A node to scan: `None` on one server.
pub(super) type Node = Option<(String, u16)>;

impl Source {
    /// Clients for `config`; an error names the field whose URL is wrong.
    pub(super) fn new(config: &ClusterConfig, timeout: Duration) -> Result<Self, ConfigError> {
        let open = |field: String, url: &str| {
            insecure_allowed(&field, url)?;
            redis::Client::open(url.trim())
                .map_err(|e| ConfigError::invalid(field, redact(url), e.to_string()))
        };
        if config.redis_cluster.is_empty() {
            return Ok(Source::One(open(
                "cluster.redis_url".into(),
                &config.redis_url,
            )?));
        }
        let seeds = config
            .redis_cluster
            .iter()
            .enumerate()
            .map(|(i, url)| open(format!("cluster.redis_cluster[{i}]"), url))
            .collect::<Result<Vec<_>, _>>()?;
        let client = ClusterClient::builder(config.redis_cluster.iter().map(|u| u.trim()))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            // A failed command fails the connection, which is made again
            // with the sync's own backoff.
            .retries(1)
            .build()
            .map_err(|e| {
                ConfigError::invalid(
                    "cluster.redis_cluster",
                    redact(&config.redis_cluster[0]),
                    e.to_string(),
                )
            })?;
        Ok(Source::Cluster { client, seeds })
    }

    /// What the log says of where Redis is (passwords left out).
    pub(super) fn describe(config: &ClusterConfig) -> String {
        if config.redis_cluster.is_empty() {
            redact(&config.redis_url)
        } else {
            let nodes: Vec<String> = config.redis_cluster.iter().map(|u| redact(u)).collect();
            format!("cluster [{}]", nodes.join(", "))
        }
    }

    /// A connection for commands.
    pub(super) async fn connect(&self, timeout: Duration) -> Result<Link, RedisError> {
        match self {
            Source::One(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout);
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(Link::One(conn))
            }
            Source::Cluster { client, .. } => {
                Ok(Link::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// A subscription, on the server or on the first configured node of
    /// the cluster that answers, starting at `turn` (so that a dead node is
    /// not tried first every time).
    pub(super) async fn pubsub(&self, turn: usize) -> Result<PubSub, RedisError> {
        match self {
            Source::One(client) => client.get_async_pubsub().await,
            Source::Cluster { seeds, .. } => {
                let mut last = None;
                for k in 0..seeds.len() {
                    match seeds[(turn + k) % seeds.len()].get_async_pubsub().await {
                        Ok(p) => return Ok(p),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    RedisError::from((redis::ErrorKind::ClientError, "no cluster node given"))
                }))
            }
        }
    }
}

/// Whether `url` asks for TLS without certificate checks (`#insecure`).
fn is_insecure(url: &str) -> bool {
    url.trim()
        .split_once('#')
        .is_some_and(|(_, fragment)| fragment.eq_ignore_ascii_case("insecure"))
}

/// `#insecure` turns off the checks of the server's certificate: anyone on
/// the path could then read and rewrite what the replicas share. It takes
/// the feature `redis-insecure-tls`, named for what it does; without it
/// such a URL is refused here, when the guard is built, instead of failing
/// on every connection later. With it, a warning says so at start.
fn insecure_allowed(field: &str, url: &str) -> Result<(), ConfigError> {
    if !is_insecure(url) {
        return Ok(());
    }
    if cfg!(feature = "redis-insecure-tls") {
        tracing::warn!(
            target: "enumguard",
            redis = %redact(url),
            "enumguard cluster: `#insecure`: TLS to Redis WITHOUT certificate checks (feature `redis-insecure-tls`); for tests only"
        );
        return Ok(());
    }
    Err(ConfigError::invalid(
        field,
        redact(url),
        "`#insecure` (TLS without certificate checks) needs the feature `redis-insecure-tls`, \
         off by default: give Redis a certificate the system trusts instead",
    ))
}

impl Link {
    /// Runs `cmds`, answers ignored.
    pub(super) async fn exec(&mut self, cmds: Vec<Cmd>) -> Result<(), RedisError> {
        match self {
            Link::One(conn) => {
                let mut pipe = redis::pipe();
                for c in cmds {
                    pipe.add_command(c).ignore();
                }
                pipe.query_async::<()>(conn).await
            }
            Link::Cluster(conn) => {
                try_join_all(cmds.into_iter().map(|c| {
                    let mut conn = conn.clone();
                    async move { c.query_async::<()>(&mut conn).await }
                }))
                .await?;
                Ok(())
            }
        }
    }

    /// The nodes that hold keys: every primary of a cluster.
    pub(super) async fn nodes(&mut self) -> Result<Vec<Node>, RedisError> {
        let Link::Cluster(conn) = self else {
            return Ok(vec![None]);
        };
        // CLUSTER SLOTS: [[start, end, [host, port, id?], replicas...], ...]
        let slots: Vec<Value> = redis::from_redis_value(
            &conn
                .route_command(
                    &redis::cmd("CLUSTER").arg("SLOTS").clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                )
                .await?,
        )?;
        let mut nodes: Vec<Node> = Vec::new();
        for range in &slots {
            let Value::Array(parts) = range else { continue };
            let Some(Value::Array(primary)) = parts.get(2) else {
                continue;
            };
            let host = primary
                .first()
                .and_then(|h| redis::from_redis_value::<String>(h).ok());
            let port = primary
                .get(1)
                .and_then(|p| redis::from_redis_value::<u16>(p).ok());
            if let (Some(host), Some(port)) = (host, port) {
                let node = Some((host, port));
                if !nodes.contains(&node) {
                    nodes.push(node);
                }
            }
        }
        Ok(nodes)
    }

    /// One SCAN step on `node`: the next cursor and the keys.
    pub(super) async fn scan(
        &mut self,
        node: &Node,
        cursor: u64,
        pattern: &str,
        count: usize,
    ) -> Result<(u64, Vec<String>), RedisError> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count);
        match (self, node) {
            (Link::Cluster(conn), Some((host, port))) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                });
                redis::from_redis_value(&conn.route_command(&cmd, routing).await?)
            }
            (Link::One(conn), _) => cmd.query_async(conn).await,
            (Link::Cluster(conn), None) => cmd.query_async(conn).await,
        }
    }

    /// Each key's value and remaining time in milliseconds (`None` for a
    /// key gone or without an expiry).
    pub(super) async fn read(
        &mut self,
        keys: &[&String],
    ) -> Result<Vec<Option<(String, u64)>>, RedisError> {
        fn pair(value: &Value, ttl: Option<&Value>) -> Option<(String, u64)> {
            let value = redis::from_redis_value::<Option<String>>(value).ok()??;
            let ttl = redis::from_redis_value::<i64>(ttl?).ok()?;
            (ttl > 0).then_some((value, ttl as u64))
        }
        let of = |k: &str| {
            let mut pipe = redis::pipe();
            pipe.get(k).cmd("PTTL").arg(k);
            pipe
        };
        match self {
            Link::One(conn) => {
                let mut pipe = redis::pipe();
                for k in keys {
                    pipe.get(*k).cmd("PTTL").arg(*k);
                }
                let values: Vec<Value> = pipe.query_async(conn).await?;
                Ok(values.chunks(2).map(|p| pair(&p[0], p.get(1))).collect())
            }
            Link::Cluster(conn) => {
                // GET and PTTL of one key hash to one slot: a pipeline each.
                try_join_all(keys.iter().map(|k| {
                    let mut conn = conn.clone();
                    let pipe = of(k);
                    async move {
                        let values: Vec<Value> = pipe.query_async(&mut conn).await?;
                        Ok::<_, RedisError>(values.first().and_then(|v| pair(v, values.get(1))))
                    }
                }))
                .await
            }
        }
    }

    /// Calls `f(key, value, remaining ms)` for each live key matching
    /// `pattern` that `wanted` keeps (scanning at most `most` keys),
    /// scanning and reading in batches, each within [`TIMEOUT`].
    pub(super) async fn for_each_live(
        &mut self,
        pattern: &str,
        most: usize,
        wanted: impl Fn(&str) -> bool,
        mut f: impl FnMut(&str, &str, u64),
    ) -> Result<(), Ended> {
        let nodes = within(TIMEOUT, "reading the cluster's nodes", self.nodes()).await?;
        let mut seen = 0usize;
        // Every node holds its own keys: each is scanned to its end.
        for node in &nodes {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys) =
                    within(TIMEOUT, "a scan", self.scan(node, cursor, pattern, 1000)).await?;
                let keys_wanted: Vec<&String> = keys.iter().filter(|k| wanted(k)).collect();
                if !keys_wanted.is_empty() {
                    let values = within(TIMEOUT, "a load", self.read(&keys_wanted)).await?;
                    for (k, v) in keys_wanted.iter().zip(values) {
                        if let Some((value, ttl)) = v {
                            f(k, &value, ttl);
                        }
                    }
                }
                seen += keys.len();
                cursor = next;
                if seen >= most {
                    return Ok(());
                }
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_tls_takes_its_own_feature() {
        let config = ClusterConfig {
            redis_url: "rediss://:s3cret@10.0.0.5:6380/#insecure".into(),
            ..ClusterConfig::default()
        };
        let built = Source::new(&config, Duration::from_millis(10));
        if cfg!(feature = "redis-insecure-tls") {
            assert!(built.is_ok());
        } else {
            let e = built.err().expect("an error without the feature");
            assert_eq!(e.field(), Some("cluster.redis_url"));
            assert!(e.to_string().contains("redis-insecure-tls"), "{e}");
            assert!(!e.to_string().contains("s3cret"), "{e}");
        }
        // Checked TLS needs nothing more.
        let checked = ClusterConfig {
            redis_url: "rediss://10.0.0.5:6380/".into(),
            ..ClusterConfig::default()
        };
        assert!(Source::new(&checked, Duration::from_millis(10)).is_ok());
        assert!(is_insecure("rediss://a:1/#INSECURE "));
        assert!(!is_insecure("rediss://a:1/"));
    }

    #[test]
    fn what_the_log_says_of_redis_has_no_password() {
        let one = ClusterConfig {
            redis_url: "rediss://:s3cret@10.0.0.5:6380/#insecure".into(),
            ..ClusterConfig::default()
        };
        let said = Source::describe(&one);
        assert!(
            !said.contains("s3cret") && said.contains("10.0.0.5:6380"),
            "{said}"
        );
        let cluster = ClusterConfig {
            redis_cluster: vec!["redis://:pw1@a:7000".into(), "redis://:pw1@b:7001".into()],
            ..ClusterConfig::default()
        };
        let said = Source::describe(&cluster);
        assert!(!said.contains("pw") && said.contains("b:7001"), "{said}");
        if let Err(e) = Source::new(&cluster, Duration::from_millis(10)) {
            panic!("{e}");
        }
        // Every node of one cluster takes the same credentials.
        let mixed = ClusterConfig {
            redis_cluster: vec!["redis://:pw1@a:7000".into(), "redis://u:pw2@b:7001".into()],
            ..ClusterConfig::default()
        };
        let e = Source::new(&mixed, Duration::from_millis(10))
            .err()
            .expect("an error");
        assert_eq!(e.field(), Some("cluster.redis_cluster"));
        assert!(!e.to_string().contains("pw"), "{e}");
    }
}
