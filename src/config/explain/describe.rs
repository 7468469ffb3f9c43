//! The description: where each actor kind comes from, what verdicts do,
//! and each probe as the guard runs it, every default resolved.

use super::explanation::{ActorSource, ProbeExplanation, factor};
use crate::actor::{ActorKind, ForwardedHeader};
use crate::config::validate::ProbeParts;
use crate::config::{
    Config, ConfigError, ListConfig, MissingPeer, ProbeConfig, ProbeStyle, SessionSource,
    Thresholds,
};
use crate::probe::Methods;

impl Config {
    pub(super) fn actor_sources(&self) -> Vec<ActorSource> {
        let from = if self.trusted_proxies.is_empty() {
            "the TCP peer address (no proxy is trusted: X-Forwarded-For and Forwarded are ignored)"
                .to_owned()
        } else {
            format!(
                "the address in {} that the trusted proxies ({}) wrote, walked from the right past \
                 them; the TCP peer address when the peer is not one of them",
                header_name(self.forwarded_header),
                self.trusted_proxies
                    .iter()
                    .map(|c| c.escape_debug().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let missing = match self.missing_peer {
            MissingPeer::Refuse => "a request without one is refused with 500",
            MissingPeer::Unknown => "a request without one counts as the one actor ip:unknown",
        };
        let mut actors = vec![
            ActorSource {
                kind: ActorKind::Ip,
                source: format!(
                    "one IPv4 /{} or IPv6 /{}, from {from}; {missing}",
                    self.ip_v4_prefix, self.ip_v6_prefix
                ),
            },
            ActorSource {
                kind: ActorKind::Subnet,
                source: format!(
                    "the IPv4 /{} or IPv6 /{} around it",
                    self.subnet_v4_prefix, self.subnet_v6_prefix
                ),
            },
        ];
        if let Some(s) = &self.session {
            let (what, name) = match s {
                SessionSource::Header(h) => ("header", h),
                SessionSource::Cookie(c) => ("cookie", c),
            };
            actors.push(ActorSource {
                kind: ActorKind::Session,
                source: format!(
                    "the {what} `{}`, kept as a keyed hash{}",
                    name.escape_debug(),
                    if self.session_key.is_some() {
                        " (key set: alike on every replica)"
                    } else {
                        " (a random key per process)"
                    }
                ),
            });
        }
        actors.push(ActorSource {
            kind: ActorKind::Account,
            source: "the application's account hook (in code: GuardBuilder::account), \
                     when it gives one"
                .to_owned(),
        });
        actors
    }

    pub(super) fn verdict_lines(&self) -> Vec<String> {
        let t = &self.throttle;
        let b = &self.blocks;
        let mut lines = vec![
            format!(
                "a throttle allows {} requests a minute after a burst of {}, on the probe it was \
                 earned on, for {} s after the last evidence (status {})",
                t.per_minute, t.burst, t.duration_secs, self.responses.throttle_status
            ),
            format!(
                "a block lasts {} s, {}x longer each time the same actor is blocked again, at \
                 most {} s (status {})",
                b.base_secs, b.factor, b.max_secs, self.responses.block_status
            ),
        ];
        let list =
            |l: &ListConfig| format!("{} networks, {} accounts", l.cidrs.len(), l.accounts.len());
        if self.allow != Default::default() {
            lines.push(format!("never counted nor refused: {}", list(&self.allow)));
        }
        if self.deny != Default::default() {
            lines.push(format!("always refused: {}", list(&self.deny)));
        }
        if let Some(c) = &self.cluster {
            // Never the URLs: they may hold a password.
            lines.push(format!(
                "verdicts and evidence shared with other replicas through Redis (key prefix `{}`, \
                 every {} ms)",
                c.key_prefix.escape_debug(),
                c.sync_interval_ms
            ));
        }
        lines
    }
}

fn header_name(h: ForwardedHeader) -> &'static str {
    match h {
        ForwardedHeader::XForwardedFor => "X-Forwarded-For",
        ForwardedHeader::Forwarded => "Forwarded",
    }
}

pub(super) fn explain_probe(
    c: &Config,
    i: usize,
    p: &ProbeConfig,
    parts: &ProbeParts,
) -> Result<ProbeExplanation, ConfigError> {
    let written_head = p
        .method
        .split(',')
        .any(|m| m.trim().eq_ignore_ascii_case("HEAD"));
    let (methods, head_with_get) = match &parts.method {
        Methods::Any => (Vec::new(), false),
        Methods::List(l) => (
            l.iter().map(|m| m.as_str().to_owned()).collect(),
            l.contains(&http::Method::HEAD) && !written_head,
        ),
    };
    let t = &parts.thresholds;
    // People first, then addresses.
    let kinds = [
        ActorKind::Account,
        ActorKind::Session,
        ActorKind::Ip,
        ActorKind::Subnet,
    ]
    .into_iter()
    .filter(|k| *k != ActorKind::Session || c.session.is_some())
    .map(|k| (k, factor(&t.kind_factors, k)))
    .collect();
    Ok(ProbeExplanation {
        index: i,
        name: p.name.clone(),
        style: p.style,
        methods,
        head_with_get,
        path: p.path.clone(),
        target: p.target.clone(),
        outcome: p.outcome.clone(),
        self_target: parts.self_target,
        self_target_set: p.self_target.is_some(),
        body_limit: p.body_limit,
        oversized: parts.oversized,
        oversized_set: p.oversized.is_some(),
        needs_login: p.needs_login,
        overrides: overrides(i, p.style, t)?,
        thresholds: t.clone(),
        kinds,
    })
}

/// The thresholds that differ from the style's, flattened
/// (`kind_factors.ip`), as TOML values.
fn overrides(
    i: usize,
    style: ProbeStyle,
    t: &Thresholds,
) -> Result<Vec<(String, String, String)>, ConfigError> {
    let table = |t: &Thresholds| {
        toml::Table::try_from(t)
            .map_err(|e| ConfigError::invalid(format!("probes[{i}].thresholds"), "", e.to_string()))
    };
    let (now, default) = (table(t)?, table(&Thresholds::for_style(style))?);
    let mut out = Vec::new();
    for (k, v) in &now {
        match (v, default.get(k)) {
            (toml::Value::Table(sub), Some(toml::Value::Table(dsub))) => {
                for (k2, v2) in sub {
                    if dsub.get(k2) != Some(v2) {
                        let d = dsub.get(k2).map(ToString::to_string).unwrap_or_default();
                        out.push((format!("{k}.{k2}"), v2.to_string(), d));
                    }
                }
            }
            (v, d) if d != Some(v) => {
                let d = d.map(ToString::to_string).unwrap_or_default();
                out.push((k.clone(), v.to_string(), d));
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::{ClusterConfig, Config, Explanation, SessionSource};

    #[test]
    fn no_secret_is_part_of_an_explanation() {
        let key = "0123456789abcdef0123456789abcdef";
        let c = Config {
            session_key: Some(key.into()),
            session: Some(SessionSource::Cookie("sid".into())),
            cluster: Some(ClusterConfig {
                redis_url: "redis://:hunter2@10.0.0.5:6379/0".into(),
                ..Default::default()
            }),
            ..Config::default()
        };
        // Valid only with the redis feature; the explanation is made from
        // the parts either way.
        let e = Explanation {
            mode: c.mode,
            actors: c.actor_sources(),
            probes: Vec::new(),
            warnings: Vec::new(),
            verdicts: c.verdict_lines(),
        };
        let text = format!("{e}{e:?}");
        assert!(
            !text.contains("0123456789abcdef") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(text.contains("cookie `sid`"), "{text}");
    }
}
