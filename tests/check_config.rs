//! `enumguard check-config` (feature `cli`) run as an operator runs it: it
//! says what a config means (each probe's methods, path, target, outcome
//! rule, thresholds and actors) and warns of the settings that leave an
//! enumerator room, above the effective config, which still loads as TOML.

use std::path::PathBuf;
use std::process::{Command, Output};

use enumguard::Config;

const BIN: &str = env!("CARGO_BIN_EXE_enumguard");
const MAILROOM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/mailroom.toml");

/// `text` written to a fresh file for one test.
fn file(name: &str, text: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("enumguard-check-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join(format!("{name}.toml"));
    std::fs::write(&f, text).unwrap();
    f
}

fn check(path: &str) -> Output {
    Command::new(BIN)
        .args(["check-config", path])
        .output()
        .unwrap()
}

/// The output of a valid config: exit 0, UTF-8.
fn explained(path: &str) -> String {
    let out = check(path);
    assert!(
        out.status.success(),
        "check-config {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The comment block above the TOML: what the config means.
fn meaning(text: &str) -> String {
    let end = text
        .find("# Every setting, defaults filled in:")
        .expect("the TOML's header");
    let block = &text[..end];
    for line in block.lines() {
        assert!(line.starts_with('#'), "not a comment: {line:?}");
    }
    block.to_owned()
}

/// The warnings, one entry per warning (its first line).
fn warnings(meaning: &str) -> Vec<String> {
    meaning
        .lines()
        .filter_map(|l| l.strip_prefix("# - "))
        .map(str::to_owned)
        .collect()
}

/// The block of one probe, from its heading to the next blank comment.
fn probe<'a>(meaning: &'a str, name: &str) -> &'a str {
    let head = format!("# probe \"{name}\"");
    let start = meaning.find(&head).unwrap_or_else(|| panic!("{name}"));
    let rest = &meaning[start..];
    &rest[..rest.find("\n#\n").unwrap_or(rest.len())]
}

#[test]
fn the_mailroom_is_explained_probe_by_probe() {
    let text = explained(MAILROOM);
    let m = meaning(&text);
    let book = probe(&m, "addressbook");
    for needle in [
        "objects: the tell is foreign objects",
        "methods: GET, HEAD (HEAD rides with GET",
        "path: /api/accounts/{id}/addressbook",
        "target: path segment {id}",
        "body: never read",
        "outcome: miss 404; denied 401, 403; hit 2xx",
        "a target equal to the caller's account id (self_target is true, the default)",
        "foreign objects: 15 (account, session), 30 (ip), 60 (subnet)",
        "per 3600 s window",
    ] {
        assert!(book.contains(needle), "{needle}:\n{book}");
    }
    let lookup = probe(&m, "lookup");
    for needle in [
        "identities: the tell is misses and finds",
        "target: query parameter `email`",
        "misses 20 (account, session), 40 (ip), 80 (subnet) plus finds 30 (every actor) \
         (misses once 5 targets were answered",
        "overrides: baseline_miss_ratio is 0.25 (default 0.1)",
    ] {
        assert!(lookup.contains(needle), "{needle}:\n{lookup}");
    }
    let reset = probe(&m, "password-reset");
    for needle in [
        "methods: POST\n",
        "target: JSON body field `email`, read from the first 16384 bytes",
        "larger bodies: refused with 413",
        "outcome: miss 404; denied 401, 403; hit 202",
        "needs_login is false: an address holds every request",
    ] {
        assert!(reset.contains(needle), "{needle}:\n{reset}");
    }
    let register = probe(&m, "register");
    for needle in [
        "outcome: miss 2xx; denied none; hit 409",
        "misses 20 (account, session), 600 (ip), 1200 (subnet)",
        "oversized is \"refuse\", the default",
    ] {
        assert!(register.contains(needle), "{needle}:\n{register}");
    }
    // Where the actors come from, once for all probes.
    assert!(m.contains("session: the header `authorization`"), "{m}");
    assert!(m.contains("no proxy is trusted"), "{m}");
}

/// The mailroom's deliberate choices raise no warning, but one: the room
/// it gives an office signing up its staff, stated with the figure the
/// guard runs with (600 sign-ups an hour from one address).
#[test]
fn the_mailroom_has_one_warning_its_deliberate_signup_room() {
    let m = meaning(&explained(MAILROOM));
    let w = warnings(&m);
    assert_eq!(w.len(), 1, "{m}");
    assert!(
        w[0].starts_with(
            "probes[3].thresholds.kind_factors.ip (probe \"register\"): one ip gets 600 misses"
        ),
        "{}",
        w[0]
    );
}

/// What a config means, above it, does not change what loads: the whole
/// output is the effective config.
#[test]
fn the_output_still_loads_as_the_effective_config() {
    let text = explained(MAILROOM);
    let printed = Config::from_toml_str(&text).unwrap();
    assert_eq!(printed, Config::from_file(MAILROOM).unwrap().effective());
    // A name and a path with characters that would end a comment line.
    let f = file(
        "escape",
        "[[probes]]\nname = \"a\\nb \\\"c\\\"\"\npath = \"/x\\r/{id}\"\ntarget = { path = \"id\" }\n",
    );
    let text = explained(f.to_str().unwrap());
    meaning(&text);
    let printed = Config::from_toml_str(&text).unwrap();
    assert_eq!(printed.probes[0].name, "a\nb \"c\"");
}

#[test]
fn each_hole_is_warned_of_with_why_and_a_fix() {
    let f = file(
        "holes",
        r#"
mode = "observe"
trusted_proxies = ["0.0.0.0/0"]
ip_v6_prefix = 128

[[probes]]
name = "reset"
method = "POST"
path = "/api/password-reset"
target = { json = "email" }
style = "identities"
oversized = "pass"

[[probes]]
name = "any-object"
method = "*"
path = "/api/{kind}/{id}"
target = { path = "id" }

[[probes]]
name = "orders"
path = "/api/orders/{id}"
target = { path = "id" }
[probes.thresholds]
foreign_block = 0

[[probes]]
name = "lookup"
path = "/api/lookup"
target = { query = "email" }
style = "identities"
outcome = { hit = [200], miss = [], denied = [] }
[probes.thresholds]
anomaly_factor = 1.0
kind_factors = { ip = 20.0 }
"#,
    );
    let m = meaning(&explained(f.to_str().unwrap()));
    let w = warnings(&m);
    for (field, why) in [
        ("mode", "observe mode refuses nothing"),
        ("trusted_proxies[0]", "writes its own X-Forwarded-For"),
        (
            "ip_v6_prefix",
            "each of its 2^64 addresses is a new ip actor",
        ),
        (
            "probes[0].oversized (probe \"reset\")",
            "reaches the handler unread",
        ),
        (
            "probes[0].needs_login (probe \"reset\")",
            "throwaway account",
        ),
        (
            "probes[2].path (probe \"orders\")",
            "`GET /api/orders/1` matches probe \"any-object\"",
        ),
        (
            "probes[2].thresholds.foreign_block (probe \"orders\")",
            "reads of others' objects never block",
        ),
        (
            "probes[3].outcome.miss (probe \"lookup\")",
            "no status is a miss",
        ),
        (
            "probes[3].thresholds.anomaly_factor (probe \"lookup\")",
            "turns it off",
        ),
        (
            "probes[3].thresholds.kind_factors.ip (probe \"lookup\")",
            "one ip gets 400 misses",
        ),
    ] {
        assert!(
            w.iter().any(|l| l.starts_with(field) && l.contains(why)),
            "{field}: {why}\n{m}"
        );
    }
    // Each with its fix on the next line.
    assert_eq!(m.matches("\n#   fix: ").count(), w.len(), "{m}");
    assert!(m.contains(&format!("# warnings ({}):", w.len())), "{m}");
}

/// Neither the session key nor a Redis password is printed, in the
/// explanation or the TOML.
#[test]
fn secrets_are_never_printed() {
    let key = "0123456789abcdef0123456789abcdef";
    let mut toml = format!("session_key = \"{key}\"\nsession = {{ cookie = \"sid\" }}\n");
    if cfg!(feature = "redis") {
        toml.push_str("[cluster]\nredis_url = \"redis://admin:hunter2-pw@10.0.0.5:6379/0\"\n");
    }
    let f = file("secret", &toml);
    let text = explained(f.to_str().unwrap());
    let lower = text.to_ascii_lowercase();
    assert!(!lower.contains("0123456789abcdef"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("session_key = \"<redacted>\""), "{text}");
    assert!(text.contains("session: the cookie `sid`"), "{text}");
    if cfg!(feature = "redis") {
        assert!(
            text.contains("redis://<redacted>@10.0.0.5:6379/0"),
            "{text}"
        );
    }
}

/// A broken config: exit 1, nothing on standard output, and an error that
/// names the file, the line or field, and the value.
#[test]
fn a_broken_config_is_a_clear_error() {
    let cases = [
        (
            "parse",
            "[[probes]]\nname = \"a\"\npath = \"/a/{id}\"\ntarget = { path = \"id\" }\n\
             body_limit = \"big\"\n",
            &["line 5", "probes[0].body_limit", "big"][..],
        ),
        // Threshold overrides are read as the rest: the field, the value
        // and the line are named.
        (
            "threshold",
            "[[probes]]\nname = \"a\"\npath = \"/a/{id}\"\ntarget = { path = \"id\" }\n\
             [probes.thresholds]\nforeign_block = \"many\"\n",
            &[
                "line 6",
                "probes[0].thresholds.foreign_block",
                "\"many\"",
                "expected u32",
            ][..],
        ),
        (
            "invalid",
            "[[probes]]\nname = \"orders\"\npath = \"/orders/:id\"\ntarget = { path = \"id\" }\n",
            &["probes[0].target.path", "`{id}`, not `:id`"][..],
        ),
        (
            "table",
            "[[probe]]\nname = \"a\"\n",
            &["line 1", "unknown table `probe`, did you mean `probes`?"][..],
        ),
    ];
    for (name, toml, needles) in cases {
        let f = file(name, toml);
        let out = check(f.to_str().unwrap());
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(out.stdout.is_empty(), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("{name}.toml")), "{name}: {err}");
        for n in needles {
            assert!(err.contains(n), "{name}: {n}: {err}");
        }
    }
    let out = check("/nonexistent/enumguard.toml");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/enumguard.toml"));
}
