//! [`Live`]: the settings of the `[proxy]` table a reload changes while
//! the proxy runs (timeouts, the health path, the account source, the
//! outcome and owner header names, the trusted forwarding options), built
//! whole from a config and swapped in at once; and what is not
//! ([`RESTART_ONLY`]: the listeners and the upstream).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderName;
use http::uri::Authority;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;

use super::account::Accounts;
use super::pool::Pool;
use crate::actor::Cidr;
use crate::config::{Config, ProxyConfig};
use crate::{AccountId, GuardBody};

/// The `[proxy]` fields a reload leaves as they are: the listeners, the
/// upstream and how it is spoken to, the admin token. A change is logged
/// and takes a restart.
pub(crate) const RESTART_ONLY: [&str; 5] = [
    "listen",
    "upstream",
    "upstream_h2c",
    "admin_listen",
    "admin_token",
];

/// The upstream client: a pool of HTTP/1.1 connections, or hyper-util's
/// client for HTTP/2 (prior knowledge), every request multiplexed on few
/// connections.
#[derive(Clone)]
pub(crate) enum UpstreamClient {
    Http1(Arc<Pool>),
    H2c(Box<Client<HttpConnector, GuardBody<Incoming>>>),
}

impl UpstreamClient {
    /// The upstream client: HTTP/1.1 connections pooled ([`Pool`]), none
    /// used once idle `pool_idle` (below the upstream's keep-alive, or a
    /// pooled connection races its close), each timing its requests'
    /// answers by `timeout` (the upstream timeout); `h2c`: HTTP/2 with prior
    /// knowledge through hyper-util's client, every request multiplexed on
    /// few connections (its pool timer is what makes its idle timeout work
    /// at all).
    pub(crate) fn new(
        upstream: &http::uri::Authority,
        connect: Duration,
        pool_idle: Duration,
        timeout: Duration,
        h2c: bool,
    ) -> UpstreamClient {
        if !h2c {
            return UpstreamClient::Http1(Pool::new(upstream, connect, pool_idle, timeout));
        }
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect));
        http.set_nodelay(true);
        UpstreamClient::H2c(Box::new(
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(pool_idle)
                .http2_only(h2c)
                .build(http),
        ))
    }
}

/// What a reload may change, read by every request.
pub(crate) struct Live {
    /// The guard's reload generation this was built for.
    pub(crate) generation: u64,
    /// The `[proxy]` table this was built from, as given.
    pub(crate) table: ProxyConfig,
    pub(crate) health: String,
    pub(crate) header_read: Duration,
    pub(crate) grace: Duration,
    /// From a request sent upstream to its answer's head.
    pub(crate) timeout: Duration,
    /// Rebuilt only when its connect, idle or upstream timeout changes (a
    /// new client starts with an empty pool).
    pub(crate) client: UpstreamClient,
    pub(crate) client_ip_header: Option<HeaderName>,
    pub(crate) trusted: Vec<Cidr>,
    pub(crate) outcome_header: HeaderName,
    pub(crate) owner_header: HeaderName,
    pub(crate) accounts: Arc<Accounts>,
}

impl Live {
    /// The settings of `config` (its `[proxy]` table, its session source
    /// and trusted proxies): key files and secrets read again; from
    /// `previous`, the upstream client when its timeouts are the same, and
    /// the sessions bound to an account. `upstream` and `h2c`: where and
    /// how the client speaks (fixed at start).
    ///
    /// # Errors
    /// A header name, a CIDR, a secret or a key file that is not right.
    pub(crate) fn new(
        config: &Config,
        upstream: &Authority,
        h2c: bool,
        previous: Option<&Live>,
        generation: u64,
    ) -> Result<Self, String> {
        let p = config.proxy.clone().unwrap_or_default();
        let header = |h: &str| HeaderName::from_bytes(h.as_bytes()).map_err(|e| e.to_string());
        // The config's one parse (its probes too: a reload parses once more
        // here than the guard does, at no request's cost).
        let trusted = config.parse().map_err(|e| e.to_string())?.trusted;
        let accounts = Arc::new(Accounts::new(config, previous.map(|l| &*l.accounts))?);
        let same_client = previous.is_some_and(|l| {
            l.table.connect_timeout_secs == p.connect_timeout_secs
                && l.table.pool_idle_secs == p.pool_idle_secs
                && l.table.upstream_timeout_secs == p.upstream_timeout_secs
        });
        let client = match previous {
            Some(l) if same_client => l.client.clone(),
            _ => UpstreamClient::new(
                upstream,
                Duration::from_secs(p.connect_timeout_secs),
                Duration::from_secs(p.pool_idle_secs),
                Duration::from_secs(p.upstream_timeout_secs),
                h2c,
            ),
        };
        Ok(Self {
            generation,
            health: p.health_path.clone(),
            header_read: Duration::from_secs(p.header_read_timeout_secs),
            grace: Duration::from_secs(p.grace_secs),
            timeout: Duration::from_secs(p.upstream_timeout_secs),
            client,
            client_ip_header: p.client_ip_header.as_deref().map(header).transpose()?,
            trusted,
            outcome_header: header(&p.outcome_header)?,
            owner_header: header(&p.owner_header)?,
            accounts,
            table: p,
        })
    }

    /// The same settings, marked as seen at `generation` (a reload whose
    /// table could not be applied is not tried again).
    pub(crate) fn seen_at(&self, generation: u64) -> Self {
        Self {
            generation,
            table: self.table.clone(),
            health: self.health.clone(),
            header_read: self.header_read,
            grace: self.grace,
            timeout: self.timeout,
            client: self.client.clone(),
            client_ip_header: self.client_ip_header.clone(),
            trusted: self.trusted.clone(),
            outcome_header: self.outcome_header.clone(),
            owner_header: self.owner_header.clone(),
            accounts: self.accounts.clone(),
        }
    }
}

/// The account hook the guard is built with: the account source in force.
pub(crate) fn account_hook(
    live: &Arc<ArcSwap<Live>>,
) -> impl Fn(&http::request::Parts) -> Option<AccountId> + Send + Sync + 'static {
    let live = live.clone();
    move |parts| {
        let accounts = &live.load().accounts;
        accounts.account_of(&accounts.caller(&parts.headers))
    }
}

/// The names of the `[proxy]` fields that differ between `a` and `b`
/// (names only: a secret's value is never shown).
pub(crate) fn changed_fields(a: &ProxyConfig, b: &ProxyConfig) -> Vec<String> {
    let (Ok(Value::Object(a)), Ok(Value::Object(b))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return Vec::new();
    };
    let mut names: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(b.keys().filter(|k| !a.contains_key(*k)).cloned())
        .collect();
    names.sort();
    names
}

/// `table` with the restart-only fields of `running`: what runs after a
/// reload.
pub(crate) fn keeping_restart_only(mut table: ProxyConfig, running: &ProxyConfig) -> ProxyConfig {
    table.listen.clone_from(&running.listen);
    table.upstream.clone_from(&running.upstream);
    table.upstream_h2c = running.upstream_h2c;
    table.admin_listen.clone_from(&running.admin_listen);
    table.admin_token.clone_from(&running.admin_token);
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_fields_name_what_differs_and_restart_only_fields_are_kept() {
        let a = ProxyConfig::default();
        let mut b = a.clone();
        b.health_path = "/alive".into();
        b.listen = "127.0.0.1:9".into();
        b.admin_token = Some("secret".into());
        assert_eq!(
            changed_fields(&a, &b),
            ["admin_token", "health_path", "listen"]
        );
        let kept = keeping_restart_only(b, &a);
        assert_eq!(changed_fields(&a, &kept), ["health_path"]);
        let every = RESTART_ONLY.iter().all(|f| {
            serde_json::to_value(&a)
                .unwrap()
                .as_object()
                .unwrap()
                .contains_key(*f)
        });
        assert!(every, "each restart-only name is a field");
    }
}
