//! What a config means: [`Config::explain`] describes each probe as the
//! guard runs it, from the same parsing the guard compiles it with, and
//! warns of settings that leave an enumerator room the defaults would not.
//! `enumguard check-config` prints it above the effective config.
//!
//! ```
//! let config = enumguard::Config::from_toml_str(
//!     r#"
//!     mode = "observe"
//!     [[probes]]
//!     name = "reset"
//!     method = "POST"
//!     path = "/api/password-reset"
//!     target = { json = "email" }
//!     style = "identities"
//!     oversized = "pass"
//!     "#,
//! )
//! .unwrap();
//! let explained = config.explain().unwrap();
//! assert_eq!(explained.probes[0].methods, ["POST"]);
//! use enumguard::config::WarningKind;
//! let kinds: Vec<WarningKind> = explained.warnings.iter().map(|w| w.kind).collect();
//! assert!(kinds.contains(&WarningKind::ObserveMode));
//! assert!(kinds.contains(&WarningKind::OversizedPass));
//! assert!(kinds.contains(&WarningKind::LoginNotHeld));
//! ```
//!
//! Nothing it prints is secret: the session key and Redis URLs are never
//! part of an explanation.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | [`Config::explain`]: the entry point, which puts the parts together |
//! | `explanation.rs` | what an explanation is made of: [`Explanation`], [`ProbeExplanation`], [`ActorSource`], [`Warning`], [`WarningKind`]; what counts as loose; how it writes its figures |
//! | `describe.rs` | the description: where each actor kind comes from, what verdicts do, each probe with every default resolved |
//! | `service_warnings.rs` | the service-wide warnings: mode, peers, proxies, allow lists, actor prefixes, the store, verdicts, the view |
//! | `probe_warnings.rs` | a probe's warnings: its body, its login rule, an earlier probe that hides it, its outcome rules |
//! | `threshold_warnings.rs` | a probe's thresholds: signals or defences turned off, room well over the style's default |
//! | `text.rs` | the plain text `check-config` prints (`Display`) |

mod describe;
mod explanation;
mod probe_warnings;
mod service_warnings;
mod text;
mod threshold_warnings;

pub use explanation::{ActorSource, Explanation, ProbeExplanation, Warning, WarningKind};

use super::{Config, ConfigError};
use describe::explain_probe;
use probe_warnings::probe_warnings;

impl Config {
    /// What this config means, as the guard runs it: each probe's methods,
    /// path, target, outcome rule, thresholds per actor kind and the
    /// defaults it got, and warnings for settings that leave an enumerator
    /// room. `enumguard check-config` prints it.
    ///
    /// It is read from the same parsing the guard compiles probes with, so
    /// it cannot drift from what the guard does. It holds no secret.
    ///
    /// # Errors
    /// The config is not valid (the first invalid field).
    pub fn explain(&self) -> Result<Explanation, ConfigError> {
        let parsed = self.parse()?;
        let parts = parsed.probes;
        let mut probes = Vec::with_capacity(self.probes.len());
        for (i, (p, part)) in self.probes.iter().zip(&parts).enumerate() {
            probes.push(explain_probe(self, i, p, part)?);
        }
        let mut warnings = self.service_warnings(&parsed.trusted)?;
        for (i, (p, part)) in self.probes.iter().zip(&parts).enumerate() {
            probe_warnings(self, i, p, part, &parts[..i], &mut warnings)?;
        }
        Ok(Explanation {
            mode: self.mode,
            actors: self.actor_sources(),
            probes,
            warnings,
            verdicts: self.verdict_lines(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Oversized, ProbeConfig, TargetConfig, Thresholds};

    fn explain(toml: &str) -> Explanation {
        Config::from_toml_str(toml)
            .unwrap_or_else(|e| panic!("{e}"))
            .explain()
            .unwrap()
    }

    fn kinds(e: &Explanation) -> Vec<(WarningKind, String)> {
        e.warnings
            .iter()
            .map(|w| (w.kind, w.field.clone()))
            .collect()
    }

    fn mailroom() -> Explanation {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/mailroom.toml"
        ))
        .unwrap();
        explain(&text)
    }

    #[test]
    fn the_mailroom_probes_are_described_as_the_guard_runs_them() {
        let e = mailroom();
        let names: Vec<&str> = e.probes.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["addressbook", "lookup", "password-reset", "register"]
        );
        let book = &e.probes[0];
        assert_eq!(book.methods, ["GET", "HEAD"]);
        assert!(book.head_with_get);
        assert!(book.self_target && !book.self_target_set);
        assert_eq!(book.thresholds, Thresholds::objects());
        assert!(book.overrides.is_empty());
        let reset = &e.probes[2];
        assert_eq!(reset.methods, ["POST"]);
        assert!(!reset.head_with_get);
        assert_eq!(reset.oversized, Oversized::Refuse);
        let lookup = &e.probes[1];
        assert_eq!(
            lookup.overrides,
            [(
                "baseline_miss_ratio".to_owned(),
                "0.25".to_owned(),
                "0.1".to_owned()
            )]
        );
        let text = e.to_string();
        for needle in [
            "probe \"addressbook\" (probes[0]), objects",
            "methods: GET, HEAD (HEAD rides with GET",
            "path: /api/accounts/{id}/addressbook",
            "target: path segment {id}",
            "foreign objects: 15 (account, session), 30 (ip), 60 (subnet)",
            "finds 30 (every actor)",
            "throttles at 0.6 of a block (an account: 9 foreign objects)",
            "target: query parameter `email`",
            "target: JSON body field `email`, read from the first 16384 bytes",
            "larger bodies: refused with 413 (oversized is \"refuse\", set)",
            "outcome: miss 2xx; denied none; hit 409",
            "needs_login is false: an address holds every request",
            "overrides: kind_factors.ip is 30.0 (default 2.0)",
        ] {
            assert!(text.contains(needle), "{needle}:\n{text}");
        }
    }

    /// The mailroom's one warning is its deliberate room for an office
    /// signing up its staff (register: 30x per address), stated with its
    /// real figure; nothing else it chose is flagged.
    #[test]
    fn the_mailroom_warns_only_of_its_deliberate_signup_room() {
        let e = mailroom();
        assert_eq!(
            kinds(&e),
            [(
                WarningKind::Looser,
                "probes[3].thresholds.kind_factors.ip".to_owned()
            )]
        );
        assert_eq!(e.warnings[0].probe.as_deref(), Some("register"));
        assert!(
            e.warnings[0]
                .why
                .contains("one ip gets 600 misses per 3600 s window before a block, 15x"),
            "{}",
            e.warnings[0]
        );
    }

    #[test]
    fn each_hole_gets_its_warning() {
        let probe = |extra: &str| {
            format!(
                "[[probes]]\nname = \"reset\"\nmethod = \"POST\"\npath = \"/api/password-reset\"\n\
                 target = {{ json = \"email\" }}\nstyle = \"identities\"\nneeds_login = false\n{extra}"
            )
        };
        let cases: &[(&str, WarningKind, &str)] = &[
            ("mode = \"observe\"", WarningKind::ObserveMode, "mode"),
            (
                "missing_peer = \"unknown\"",
                WarningKind::MissingPeerCounted,
                "missing_peer",
            ),
            (
                "forwarded_header = \"forwarded\"",
                WarningKind::ForwardedUnread,
                "forwarded_header",
            ),
            (
                "trusted_proxies = [\"0.0.0.0/0\"]",
                WarningKind::ClientsTrusted,
                "trusted_proxies[0]",
            ),
            (
                "trusted_proxies = [\"10.0.0.0/8\", \"::/0\"]",
                WarningKind::ClientsTrusted,
                "trusted_proxies[1]",
            ),
            (
                "[allow]\ncidrs = [\"10.0.0.0/8\"]",
                WarningKind::WideAllow,
                "allow.cidrs[0]",
            ),
            (
                "[allow]\ncidrs = [\"0.0.0.0/1\"]",
                WarningKind::WideAllow,
                "allow.cidrs[0]",
            ),
            (
                "ip_v6_prefix = 128",
                WarningKind::NarrowActor,
                "ip_v6_prefix",
            ),
            (
                "subnet_v4_prefix = 32",
                WarningKind::NarrowActor,
                "subnet_v4_prefix",
            ),
            (
                "[limits]\nmax_actors = 5000",
                WarningKind::SmallStore,
                "limits.max_actors",
            ),
            (
                "[throttle]\nper_minute = 600",
                WarningKind::WeakVerdicts,
                "throttle.per_minute",
            ),
            (
                "[blocks]\nfactor = 1",
                WarningKind::WeakVerdicts,
                "blocks.factor",
            ),
            (
                "[links]\nwatch_factor = 1.0",
                WarningKind::WeakVerdicts,
                "links.watch_factor",
            ),
            (
                "[service_view]\nratio = 20.0",
                WarningKind::QuietView,
                "service_view.ratio",
            ),
        ];
        for (toml, kind, field) in cases {
            let e = explain(&format!("{toml}\n{}", probe("")));
            assert!(
                kinds(&e).contains(&(*kind, (*field).to_owned())),
                "{toml}: {:?}",
                kinds(&e)
            );
        }
        let probe_cases: &[(&str, WarningKind, &str)] = &[
            (
                "oversized = \"pass\"",
                WarningKind::OversizedPass,
                "probes[0].oversized",
            ),
            (
                "outcome = { hit = [200], miss = [], denied = [] }",
                WarningKind::Outcome,
                "probes[0].outcome.miss",
            ),
            (
                "outcome = { hit = [], miss = [404], denied = [] }",
                WarningKind::Outcome,
                "probes[0].outcome.hit",
            ),
            (
                "outcome = { hit = [404], miss = [404], denied = [] }",
                WarningKind::Outcome,
                "probes[0].outcome.hit[0]",
            ),
            (
                "[probes.thresholds]\nhit_block = 0",
                WarningKind::Off,
                "probes[0].thresholds.hit_block",
            ),
            (
                "[probes.thresholds]\nmiss_cap = 0.0",
                WarningKind::Off,
                "probes[0].thresholds.miss_cap",
            ),
            (
                "[probes.thresholds]\nanomaly_factor = 1.0",
                WarningKind::Off,
                "probes[0].thresholds.anomaly_factor",
            ),
            (
                "[probes.thresholds]\nrepeat_factor = 1.0",
                WarningKind::Off,
                "probes[0].thresholds.repeat_factor",
            ),
            (
                "[probes.thresholds]\nanomaly_factor = 0.5",
                WarningKind::Looser,
                "probes[0].thresholds.anomaly_factor",
            ),
            (
                "[probes.thresholds]\nmiss_block = 100",
                WarningKind::Looser,
                "probes[0].thresholds.miss_block",
            ),
            (
                "[probes.thresholds]\nmin_targets = 50",
                WarningKind::Looser,
                "probes[0].thresholds.min_targets",
            ),
            (
                "[probes.thresholds]\nwindow_secs = 600\nlong_half_life_secs = 600",
                WarningKind::Looser,
                "probes[0].thresholds.long_half_life_secs",
            ),
        ];
        for (toml, kind, field) in probe_cases {
            let e = explain(&probe(toml));
            assert!(
                kinds(&e).contains(&(*kind, (*field).to_owned())),
                "{toml}: {:?}",
                kinds(&e)
            );
        }
        // The defaults of that probe: no warning at all.
        assert_eq!(kinds(&explain(&probe(""))), []);
    }

    #[test]
    fn an_objects_probe_that_stops_counting_foreign_reads_is_warned_of() {
        let e = explain(
            "[[probes]]\nname = \"orders\"\npath = \"/api/orders/{id}\"\ntarget = { path = \"id\" }\n\
             [probes.thresholds]\nforeign_block = 0\nstranger_factor = 1.0\n",
        );
        let k = kinds(&e);
        assert!(
            k.contains(&(
                WarningKind::Off,
                "probes[0].thresholds.foreign_block".into()
            )),
            "{k:?}"
        );
        assert!(
            k.contains(&(
                WarningKind::Off,
                "probes[0].thresholds.stranger_factor".into()
            )),
            "{k:?}"
        );
        // Order ids are not account ids: no own object but by Owner.
        assert!(!e.probes[0].self_target);
        assert!(e.to_string().contains("without them every read is foreign"));
    }

    /// A reset probe whose login rule is left to be learned, or said to be
    /// needed: throwaway accounts slip out of their address.
    #[test]
    fn an_anonymous_endpoint_whose_address_does_not_hold_accounts_is_warned_of() {
        for needs in ["", "needs_login = true\n"] {
            let e = explain(&format!(
                "[[probes]]\nname = \"reset\"\nmethod = \"POST\"\npath = \"/auth/forgot-password\"\n\
                 target = {{ json = \"email\" }}\nstyle = \"identities\"\n{needs}"
            ));
            assert_eq!(
                kinds(&e),
                [(WarningKind::LoginNotHeld, "probes[0].needs_login".into())],
                "{needs}"
            );
        }
        // A lookup behind a login: not flagged.
        let e = explain(
            "[[probes]]\nname = \"lookup\"\npath = \"/api/recipients/lookup\"\n\
             target = { query = \"email\" }\nstyle = \"identities\"\n",
        );
        assert_eq!(kinds(&e), []);
    }

    #[test]
    fn a_probe_behind_an_earlier_one_is_warned_of_with_a_request_that_shows_it() {
        let e = explain(
            "[[probes]]\nname = \"any\"\nmethod = \"*\"\npath = \"/api/{kind}/{id}\"\ntarget = { path = \"id\" }\n\
             [[probes]]\nname = \"orders\"\npath = \"/api/orders/{id}\"\ntarget = { path = \"id\" }\n\
             [[probes]]\nname = \"other\"\nmethod = \"POST\"\npath = \"/api/orders/{id}/x\"\ntarget = { path = \"id\" }\n",
        );
        assert_eq!(
            kinds(&e),
            [(WarningKind::Shadowed, "probes[1].path".into())]
        );
        assert!(
            e.warnings[0]
                .why
                .contains("`GET /api/orders/1` matches probe \"any\""),
            "{}",
            e.warnings[0]
        );
    }

    #[test]
    fn a_method_list_and_any_method_are_described() {
        let e = explain(
            "[[probes]]\nname = \"a\"\nmethod = \"get, post\"\npath = \"/a/{id}\"\ntarget = { path = \"id\" }\n\
             [[probes]]\nname = \"b\"\nmethod = \"*\"\npath = \"/b/{id}\"\ntarget = { path = \"id\" }\n\
             [[probes]]\nname = \"c\"\nmethod = \"GET, HEAD\"\npath = \"/c/{id}\"\ntarget = { path = \"id\" }\n",
        );
        assert_eq!(e.probes[0].methods, ["GET", "POST", "HEAD"]);
        assert!(e.probes[0].head_with_get);
        assert!(e.probes[1].methods.is_empty());
        assert!(e.to_string().contains("methods: every method (*)"));
        assert!(!e.probes[2].head_with_get, "HEAD written, not brought");
    }

    #[test]
    fn an_invalid_config_is_an_error_naming_the_field() {
        let mut c = Config::default();
        c.probes.push(ProbeConfig::objects(
            "p",
            "GET",
            "/p/:id",
            TargetConfig::path("id"),
        ));
        let e = c.explain().unwrap_err();
        assert_eq!(e.field(), Some("probes[0].target.path"));
    }
}
