//! The README and the docs stay honest:
//! - the README's two commands at the top are the ones CI runs (the test
//!   command is a line of `.ci/run`; the demo names an example that builds
//!   with the default features);
//! - its Rust snippets compile (`src/_guide/mod.rs` includes it as a
//!   doctest under `cfg(doctest)`; this checks the include is there);
//! - every relative link of the Markdown pages points to a file that
//!   exists, and to a heading that exists when it names one;
//! - the guide's configuration reference parses, names every setting of the
//!   config types, and shows each default as it is.
//!
//! Everything here reads files; nothing builds or runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use enumguard::Config;
use enumguard::config::ClusterConfig;
use enumguard::config::ProxyConfig;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// The fenced blocks of a Markdown text: (info string, body).
fn fences(md: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in md.lines() {
        let t = line.trim_start();
        match (&mut open, t.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => out.push(open.take().expect("open fence")),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "an unclosed code fence");
    out
}

/// The README's first shell block: the commands a newcomer runs first.
fn first_commands() -> Vec<String> {
    let readme = read("README.md");
    let (_, body) = fences(&readme)
        .into_iter()
        .find(|(info, _)| info == "sh")
        .expect("the README has a ```sh block");
    body.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_readme_opens_with_the_demo_and_the_test_command() {
    let commands = first_commands();
    assert_eq!(
        commands.len(),
        2,
        "the README's first commands are the demo and the tests: {commands:?}"
    );
    assert!(
        commands[0].starts_with("cargo run --release --example "),
        "first: the demo, {:?}",
        commands[0]
    );
    assert!(
        commands[1].starts_with("cargo test"),
        "second: the tests, {:?}",
        commands[1]
    );
}

#[test]
fn the_readmes_test_command_is_one_ci_runs() {
    let commands = first_commands();
    let test = &commands[1];
    let ci = read(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == test),
        "`{test}` (the README's test command) is not a line of .ci/run"
    );
}

#[test]
fn the_readmes_demo_command_names_an_example_the_default_features_build() {
    let commands = first_commands();
    let demo = &commands[0];
    let words: Vec<&str> = demo.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "--example")
        .expect("the demo command names an example");
    let name = words.get(at + 1).expect("the example's name");
    assert!(
        !words.contains(&"--features") && !words.contains(&"--all-features"),
        "the demo runs with the default features: {demo}"
    );
    let file = root().join("examples").join(format!("{name}.rs"));
    let dir = root().join("examples").join(name).join("main.rs");
    assert!(
        file.is_file() || dir.is_file(),
        "no example `{name}` ({} or {})",
        file.display(),
        dir.display()
    );
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml");
    let defaults: BTreeSet<&str> = manifest["features"]["default"]
        .as_array()
        .expect("default features")
        .iter()
        .filter_map(toml::Value::as_str)
        .collect();
    let examples = manifest
        .get("example")
        .and_then(toml::Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(e) = examples
        .iter()
        .find(|e| e.get("name").and_then(toml::Value::as_str) == Some(name))
    {
        for f in e
            .get("required-features")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(toml::Value::as_str)
        {
            assert!(
                defaults.contains(f),
                "example `{name}` requires feature `{f}`, not a default one: `{demo}` would not build"
            );
        }
    }
}

#[test]
fn the_readmes_rust_snippets_are_compiled_as_doctests() {
    let readme = read("README.md");
    assert!(
        fences(&readme)
            .iter()
            .any(|(info, _)| info.starts_with("rust")),
        "the README shows Rust code"
    );
    let guide = read("src/_guide/mod.rs");
    assert!(
        guide.contains("#[cfg(doctest)]") && guide.contains("include_str!(\"../../README.md\")"),
        "src/_guide/mod.rs includes the README as a doctest"
    );
    // A block marked `ignore` would escape the check.
    for (info, _) in fences(&readme) {
        assert!(
            !info.contains("ignore"),
            "README block `{info}` is not compiled"
        );
    }
}

// ---------------------------------------------------------------------------
// Links
// ---------------------------------------------------------------------------

/// The Markdown pages whose relative links are checked.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![
        root().join("README.md"),
        root().join("EVALUATION.md"),
        root().join("CHANGELOG.md"),
        root().join("BENCHMARKS.md"),
    ];
    for dir in ["docs", "docs/guide"] {
        let mut md: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .unwrap_or_else(|e| panic!("read {dir}: {e}"))
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        md.sort();
        pages.extend(md);
    }
    pages
}

/// The anchors GitHub gives a page's headings: lower case, punctuation
/// other than `-` and `_` dropped, spaces as `-`, repeats numbered.
fn anchors(md: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut in_fence = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || !line.starts_with('#') {
            continue;
        }
        let text = line.trim_start_matches('#').trim();
        let slug: String = text
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                '-' | '_' => Some(c),
                c if c.is_alphanumeric() => Some(c.to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of a page's inline links `[text](target)`, outside code.
fn links(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        // Drop inline code spans.
        let mut text = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                text.push_str(part);
            }
        }
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn relative_links_of_the_docs_point_to_files_and_headings_that_exist() {
    let mut broken = Vec::new();
    for page in pages() {
        let md = std::fs::read_to_string(&page).expect("page");
        let dir = page.parent().expect("page dir");
        for target in links(&md) {
            // Web links, and rustdoc's intra-doc links (`crate::...`),
            // which `cargo doc -D rustdoc::broken_intra_doc_links` checks.
            if target.contains("://") || target.starts_with("mailto:") || target.contains("::") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let file: PathBuf = if path.is_empty() {
                page.clone()
            } else {
                dir.join(path)
            };
            if !file.exists() {
                broken.push(format!("{}: `{target}`: no such file", rel(&page)));
                continue;
            }
            if let Some(anchor) = anchor {
                if file.extension().is_some_and(|x| x == "md") {
                    let text = std::fs::read_to_string(&file).expect("linked page");
                    if !anchors(&text).contains(anchor) {
                        broken.push(format!("{}: `{target}`: no such heading", rel(&page)));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

// ---------------------------------------------------------------------------
// The configuration reference
// ---------------------------------------------------------------------------

/// The first TOML block of the guide's configuration chapter.
fn reference() -> String {
    let md = read("docs/guide/configuration.md");
    fences(&md)
        .into_iter()
        .find(|(info, _)| info == "toml")
        .map(|(_, body)| body)
        .expect("the configuration chapter has a ```toml reference")
}

/// Every leaf of a JSON value as a dotted path (`probes[].target.path`),
/// with its value.
fn leaves(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, v, out);
            }
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            for item in items {
                leaves(&format!("{prefix}[]"), item, out);
            }
        }
        _ => {
            out.insert(prefix.to_owned(), v.clone());
        }
    }
}

fn paths_of(config: &Config) -> BTreeMap<String, Value> {
    let effective = config.effective();
    let json = serde_json::to_value(&effective).expect("config as JSON");
    let mut out = BTreeMap::new();
    leaves("", &json, &mut out);
    out
}

/// The reference as the library reads it, without validation (its
/// `[cluster]` needs the feature `redis` to validate).
fn reference_text_table() -> toml::Table {
    reference().parse().expect("the reference is TOML")
}

fn reference_config() -> Config {
    toml::from_str(&reference()).expect("the reference is a config")
}

#[test]
fn the_configuration_reference_loads() {
    let text = reference();
    if cfg!(feature = "redis") {
        Config::from_toml_str(&text).expect("the reference validates");
    } else {
        // Without the feature a `[cluster]` is a config error: validate
        // the rest.
        let mut table: toml::Table = text.parse().expect("TOML");
        table.remove("cluster");
        let text = toml::to_string(&table).expect("TOML");
        Config::from_toml_str(&text).expect("the reference validates, [cluster] aside");
    }
}

#[test]
fn the_configuration_reference_names_every_setting() {
    let text = reference();
    let shown = paths_of(&reference_config());
    // The paths the reference writes as TOML keys.
    let written: BTreeSet<String> = {
        let table: toml::Table = text.parse().expect("TOML");
        let json = serde_json::to_value(&table).expect("TOML as JSON");
        let mut out = BTreeMap::new();
        leaves("", &json, &mut out);
        out.into_keys().collect()
    };
    let mut missing = Vec::new();
    for (path, value) in &shown {
        if written.contains(path) {
            continue;
        }
        // An option left unset (JSON null) may be shown as a comment
        // (`# public_key_file = ...`, `account = { request_header = ... }`).
        let key = path.rsplit('.').next().expect("key");
        if value.is_null() && text.contains(&format!("{key} =")) {
            continue;
        }
        missing.push(path.clone());
    }
    assert!(
        missing.is_empty(),
        "settings of the config types the reference in docs/guide/configuration.md does not show: {missing:?}"
    );
}

#[test]
fn the_configuration_reference_shows_the_defaults() {
    let reference = reference_config();
    // The defaults: each reference probe with only what names it (name,
    // method, path, target, style), and every optional table present so
    // that its fields are compared too.
    let table: toml::Table = reference_text_table();
    let probes: Vec<toml::Value> = table
        .get("probes")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let p = p.as_table().expect("a probe is a table");
            let bare: toml::Table = p
                .iter()
                .filter(|(k, _)| {
                    ["name", "method", "path", "target", "style"].contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            toml::Value::Table(bare)
        })
        .collect();
    let mut bare = toml::Table::new();
    bare.insert("probes".into(), toml::Value::Array(probes));
    let mut defaults: Config =
        toml::from_str(&toml::to_string(&bare).expect("TOML")).expect("the bare probes");
    defaults.cluster = Some(ClusterConfig::default());
    // The proxy's defaults, with its account source the JWT one (whose
    // fields have defaults too).
    let proxy: ProxyConfig = toml::from_str("account = { jwt = {} }").expect("a proxy table");
    defaults.proxy = Some(proxy);
    let defaults = paths_of(&defaults);
    let shown = paths_of(&reference);
    // Values the reference sets on purpose (no default to show, or an
    // example in place of an empty one).
    let examples = ["cluster.redis_url", "probes[].needs_login"];
    let mut differ = Vec::new();
    for (path, default) in &defaults {
        if default.is_null() || examples.contains(&path.as_str()) {
            continue;
        }
        match shown.get(path) {
            Some(v) if v == default => {}
            other => differ.push(format!("{path}: default {default}, reference {other:?}")),
        }
    }
    assert!(
        differ.is_empty(),
        "the reference in docs/guide/configuration.md shows values that are not the defaults:\n{}",
        differ.join("\n")
    );
}
