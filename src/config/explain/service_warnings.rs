//! The service-wide warnings: the mode, peer addresses, trusted proxies,
//! allow lists, actor prefixes, the store, verdicts and the view.

use super::explanation::{LOOSE, Warning, WarningKind, num};
use crate::actor::Cidr;
use crate::actor::ForwardedHeader;
use crate::config::{
    Config, ConfigError, Limits, MissingPeer, Mode, ServiceViewConfig, ThrottleConfig,
};

impl Config {
    pub(super) fn service_warnings(&self, trusted: &[Cidr]) -> Result<Vec<Warning>, ConfigError> {
        let mut out = Vec::new();
        let mut warn = |kind, field: &str, why: String, fix: &str| {
            out.push(Warning {
                kind,
                field: field.to_owned(),
                probe: None,
                why,
                fix: fix.to_owned(),
            });
        };
        if self.mode == Mode::Observe {
            warn(
                WarningKind::ObserveMode,
                "mode",
                "observe mode refuses nothing: every verdict is computed and logged, and every \
                 enumerator gets every answer"
                    .into(),
                "once the logs (or `enumguard replay`) show no collateral, set mode = \"enforce\"",
            );
        }
        if self.missing_peer == MissingPeer::Unknown && self.mode == Mode::Enforce {
            warn(
                WarningKind::MissingPeerCounted,
                "missing_peer",
                "requests without a peer address all count as one actor (ip:unknown): on a \
                 server wired without peer addresses, the first block refuses every client, and \
                 no address is told apart"
                    .into(),
                "keep missing_peer = \"unknown\" only where no peer address exists (unix \
                 sockets, tests); else serve with peer addresses and set \"refuse\"",
            );
        }
        if trusted.is_empty() && self.forwarded_header == ForwardedHeader::Forwarded {
            warn(
                WarningKind::ForwardedUnread,
                "forwarded_header",
                "forwarded_header names the header proxies write, but no proxy is trusted: it \
                 is never read, and behind a proxy every client is the proxy's one address"
                    .into(),
                "list the proxies' networks in trusted_proxies (or drop forwarded_header if \
                 clients connect directly)",
            );
        }
        for (i, text) in self.trusted_proxies.iter().enumerate() {
            if prefix_len(text) < wide_prefix(text) && !private_network(text) {
                warn(
                    WarningKind::ClientsTrusted,
                    &format!("trusted_proxies[{i}]"),
                    format!(
                        "`{}` trusts addresses anyone can connect from: a client there writes \
                         its own X-Forwarded-For / Forwarded and is a new ip and subnet actor at \
                         every request",
                        text.escape_debug()
                    ),
                    "trust only your proxies' own networks",
                );
            }
        }
        for (i, text) in self.allow.cidrs.iter().enumerate() {
            let field = format!("allow.cidrs[{i}]");
            let private = private_network(text);
            if prefix_len(text) < wide_prefix(text) + 8 && !private {
                warn(
                    WarningKind::WideAllow,
                    &field,
                    format!(
                        "`{}` is never counted nor refused, and it is a public /{}: anyone \
                         connecting from it enumerates freely",
                        text.escape_debug(),
                        prefix_len(text)
                    ),
                    "allow only the few addresses of your own monitors",
                );
            } else if trusted.is_empty() && private {
                warn(
                    WarningKind::WideAllow,
                    &field,
                    format!(
                        "`{}` holds private addresses and no proxy is trusted: if a load \
                         balancer or proxy there fronts the service, every request comes from \
                         it and is never counted",
                        text.escape_debug()
                    ),
                    "list such a proxy in trusted_proxies (the allow list then sees the \
                     client's address), or narrow the range to your monitors",
                );
            }
        }
        if self.ip_v6_prefix > 64 {
            warn(
                WarningKind::NarrowActor,
                "ip_v6_prefix",
                format!(
                    "a client usually holds a whole IPv6 /64: at /{} each of its 2^{} addresses \
                     is a new ip actor",
                    self.ip_v6_prefix,
                    self.ip_v6_prefix - 64
                ),
                "set ip_v6_prefix = 64",
            );
        }
        for (field, subnet, ip) in [
            ("subnet_v4_prefix", self.subnet_v4_prefix, self.ip_v4_prefix),
            ("subnet_v6_prefix", self.subnet_v6_prefix, self.ip_v6_prefix),
        ] {
            if subnet == ip {
                warn(
                    WarningKind::NarrowActor,
                    field,
                    format!(
                        "the subnet actor is the ip actor (both /{ip}): an enumerator rotating \
                         addresses in one network is never seen as one"
                    ),
                    "leave the subnet prefixes at their defaults (24 and 48)",
                );
            }
        }
        let limits = Limits::default();
        if self.limits.max_actors * 10 < limits.max_actors {
            warn(
                WarningKind::SmallStore,
                "limits.max_actors",
                format!(
                    "{} records: a flood of that many fresh addresses or sessions (cheap in \
                     IPv6) evicts the records of enumerators not yet suspect, which start over",
                    self.limits.max_actors
                ),
                "keep the default (200,000 records of 160 bytes: 32 MB) or more",
            );
        }
        let throttle = ThrottleConfig::default();
        if f64::from(self.throttle.per_minute.get()) >= LOOSE * f64::from(throttle.per_minute.get())
        {
            warn(
                WarningKind::WeakVerdicts,
                "throttle.per_minute",
                format!(
                    "a throttled actor still gets {} requests a minute (default {}): a script \
                     keeps its pace while evidence builds",
                    self.throttle.per_minute, throttle.per_minute
                ),
                "keep a human pace: the default 20",
            );
        }
        if self.blocks.factor.get() == 1 {
            warn(
                WarningKind::WeakVerdicts,
                "blocks.factor",
                "blocks never grow: an enumerator that waits out each block comes back for the \
                 same short wait every time"
                    .into(),
                "set a factor above 1 (default 4)",
            );
        }
        if self.links.watch_factor >= 1.0 {
            warn(
                WarningKind::WeakVerdicts,
                "links.watch_factor",
                "the watch is off: a blocked scraper comes back from the same address with a \
                 new account and gets a full threshold again"
                    .into(),
                "keep the default 0.06",
            );
        }
        let view = ServiceViewConfig::default();
        if self.service_view.ratio >= LOOSE * view.ratio {
            warn(
                WarningKind::QuietView,
                "service_view.ratio",
                format!(
                    "the view turns anomalous only at {}x its baseline (default {}x): a guesser \
                     spread over many addresses, a few guesses each, is never tightened",
                    num(self.service_view.ratio),
                    num(view.ratio)
                ),
                "keep the default 3.0",
            );
        }
        Ok(out)
    }
}

/// The prefix length written in a CIDR (a bare address is a host).
fn prefix_len(text: &str) -> u32 {
    match text.trim().split_once('/') {
        Some((_, l)) => l.parse().unwrap_or(0),
        None if text.contains(':') => 128,
        None => 32,
    }
}

/// Below this prefix length a range holds a large part of the internet (an
/// IPv4 /8, an IPv6 /16): no proxy fleet is that big.
fn wide_prefix(text: &str) -> u32 {
    if text.contains(':') { 16 } else { 8 }
}

/// Whether a CIDR's network address is private, loopback, link-local or
/// shared (CGNAT): where proxies and load balancers live.
fn private_network(text: &str) -> bool {
    let addr = text.trim().split('/').next().unwrap_or_default();
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => {
            a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || (a.octets()[0] == 100 && a.octets()[1] & 0xc0 == 64)
        }
        Ok(std::net::IpAddr::V6(a)) => {
            a.is_loopback()
                || a.segments()[0] & 0xfe00 == 0xfc00
                || a.segments()[0] & 0xffc0 == 0xfe80
        }
        Err(_) => false,
    }
}
