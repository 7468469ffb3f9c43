//! `enumguard replay`, `check-config` and `generate` (feature `cli`): the
//! binary run as an operator runs it, on generated logs whose attackers and
//! ordinary users are known, and on logs with malformed lines of every kind.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use enumguard::Config;
use enumguard::replay::generate::{GenOptions, Truth, generate};
use enumguard::replay::{Format, Line, Options, Replay};

const BIN: &str = env!("CARGO_BIN_EXE_enumguard");
const MAILROOM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/mailroom.toml");

/// A fresh directory for one test.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("enumguard-replay-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn gen_log(format: Format, minutes: u32) -> (Vec<String>, Truth) {
    let mut lines = Vec::new();
    let opts = GenOptions {
        format,
        minutes,
        ..GenOptions::default()
    };
    let truth = generate(&opts, |l| lines.push(l.to_owned()));
    (lines, truth)
}

/// A fresh directory holding `access.log`: `minutes` of generated traffic.
fn logged(name: &str, format: Format, minutes: u32) -> (PathBuf, PathBuf, Truth) {
    let d = dir(name);
    let (lines, truth) = gen_log(format, minutes);
    let log = d.join("access.log");
    write_lines(&log, &lines);
    (d, log, truth)
}

/// The collateral count of a summary.
fn collateral(summary: &str) -> usize {
    let line = summary
        .lines()
        .find(|l| l.starts_with("collateral (refused"))
        .expect("a collateral line");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut f = std::fs::File::create(path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "enumguard {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The attack's actors are blocked, no ordinary account is ever refused,
/// every line is counted, and each request has its decision line.
fn check_generated(format: Format, fmt_arg: &str, name: &str) {
    let (d, log, truth) = logged(name, format, 45);
    let (dec, ver) = (d.join("decisions.jsonl"), d.join("verdicts.jsonl"));
    let out = run(&[
        "replay",
        "--config",
        MAILROOM,
        "--format",
        fmt_arg,
        "--reveal",
        "--decisions",
        dec.to_str().unwrap(),
        "--verdicts",
        ver.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    let summary = String::from_utf8(out.stdout).unwrap();
    let n = truth.lines;
    assert!(
        summary.contains(&format!("lines read: {}", thousands(n))),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("parsed {}, skipped 0, failed 0", thousands(n))),
        "{summary}"
    );
    let decisions = json_lines(&dec);
    assert_eq!(decisions.len() as u64, n, "one decision per request");
    let mut lines_seen: Vec<u64> = decisions
        .iter()
        .map(|d| d["line"].as_u64().unwrap())
        .collect();
    lines_seen.sort_unstable();
    assert_eq!(lines_seen, (1..=n).collect::<Vec<_>>());
    // No ordinary account refused, ever.
    for d in &decisions {
        if d["decision"] == "refuse" {
            if let Some(a) = d["actors"]["account"].as_str() {
                let id = a.trim_start_matches("account:");
                assert!(
                    !truth.ordinary_accounts.iter().any(|o| o == id),
                    "ordinary account refused: {d}"
                );
            }
        }
    }
    assert_eq!(collateral(&summary), 0, "{summary}");
    // Every attacker account blocked, and the oracle's network.
    let verdicts = json_lines(&ver);
    let blocked = |actor: &str| {
        verdicts
            .iter()
            .any(|v| v["verdict"] == "block" && v["actor"] == actor)
    };
    // Every attacker blocked: by its account, or (JSON logs carry the
    // session) by the session it scraped with, which refuses it as well.
    for a in &truth.attacker_accounts {
        assert!(
            blocked(&format!("account:{a}")) || blocked(&format!("session:tok-{a}")),
            "{a} not blocked: {summary}"
        );
    }
    assert!(blocked("subnet:192.0.2.0/24"), "{summary}");
    // The scraper's reads past its block were refused: it got at most a
    // few dozen address books of the hundreds it walked.
    let scraped = decisions
        .iter()
        .filter(|d| d["probe"] == "addressbook" && d["decision"] == "pass")
        .filter(|d| {
            let a = d["actors"]["account"].as_str().unwrap_or("");
            truth
                .attacker_accounts
                .iter()
                .any(|x| a == format!("account:{x}"))
        })
        .count();
    assert!(scraped <= 40, "the scraper read {scraped} address books");
    assert!(
        summary.contains("addressbook first block: 2026-11-30T08:1"),
        "{summary}"
    );
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn a_generated_combined_log_blocks_the_attackers_and_no_ordinary_user() {
    check_generated(Format::Combined, "combined", "combined");
}

#[test]
fn a_generated_json_log_blocks_the_attackers_and_no_ordinary_user() {
    check_generated(Format::Jsonl, "jsonl", "jsonl");
}

#[test]
fn the_same_input_gives_byte_identical_output() {
    let (d, log, _) = logged("determinism", Format::Combined, 30);
    let once = |tag: &str, seed: &str| {
        let files: Vec<PathBuf> = ["decisions.jsonl", "verdicts.jsonl", "plot.svg"]
            .iter()
            .map(|f| d.join(format!("{tag}-{f}")))
            .collect();
        let out = run(&[
            "replay",
            "-c",
            MAILROOM,
            "--seed",
            seed,
            "--decisions",
            files[0].to_str().unwrap(),
            "--verdicts",
            files[1].to_str().unwrap(),
            "--plot",
            files[2].to_str().unwrap(),
            log.to_str().unwrap(),
        ]);
        let mut all = out.stdout;
        for f in &files {
            all.extend(std::fs::read(f).unwrap());
        }
        (
            all,
            String::from_utf8_lossy(
                &run(&[
                    "replay",
                    "-c",
                    MAILROOM,
                    "--seed",
                    seed,
                    log.to_str().unwrap(),
                ])
                .stdout,
            )
            .into_owned(),
        )
    };
    let (a, sa) = once("a", "7");
    let (b, _) = once("b", "7");
    assert!(a == b, "two replays of the same log differ");
    // Another seed: other hashes for the actors, the same log. What the log
    // says (requests, hits, misses per probe) is identical; what the guard
    // decided may move by a verdict or two, because the per-actor sketches of
    // distinct targets are keyed by the seed and collide differently.
    let (c, sc) = once("c", "8");
    assert!(a != c);
    // (probe, requests, hits, misses, denied) and refused, per probe row.
    let rows = |s: &str| -> Vec<(Vec<String>, u64)> {
        s.lines()
            .filter(|l| l.starts_with("  ") && !l.contains("refused:"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|w| w.len() == 6 && w[1].replace(',', "").parse::<u64>().is_ok())
            .map(|w| {
                let n = |x: &str| x.replace(',', "").parse::<u64>().unwrap();
                (w[..5].iter().map(|x| x.to_string()).collect(), n(w[5]))
            })
            .collect()
    };
    let (ra, rc) = (rows(&sa), rows(&sc));
    assert!(!ra.is_empty(), "{sa}");
    assert_eq!(
        ra.iter().map(|r| &r.0).collect::<Vec<_>>(),
        rc.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    for ((_, x), (_, y)) in ra.iter().zip(&rc) {
        assert!(x.abs_diff(*y) <= 1 + x / 20, "refused {x} vs {y}");
    }
    let verdicts = |s: &str| -> u64 {
        let l = s.lines().find(|l| l.starts_with("verdicts:")).unwrap();
        l.split(|c: char| !c.is_ascii_digit())
            .filter_map(|x| x.parse::<u64>().ok())
            .sum()
    };
    let (va, vc) = (verdicts(&sa), verdicts(&sc));
    assert!(
        va > 0 && va.abs_diff(vc) <= 1 + va / 10,
        "verdicts {va} vs {vc}"
    );
    assert_eq!(
        sa.lines().find(|l| l.starts_with("lines read")),
        sc.lines().find(|l| l.starts_with("lines read"))
    );
    // Hashed unless --reveal: no address in clear.
    assert!(!sa.contains("203.0.113.7"), "{sa}");
}

/// Malformed lines of every kind are counted, with their line numbers,
/// and the good lines around them are replayed.
#[test]
fn malformed_lines_are_counted_never_dropped() {
    let d = dir("malformed");
    let good = r#"192.0.2.1 - 5 [30/Nov/2026:08:00:00 +0000] "GET /api/accounts/5/addressbook HTTP/1.1" 200 10 "-" "x""#;
    let mut bytes: Vec<u8> = Vec::new();
    let bad_lines: Vec<Vec<u8>> = vec![
        b"".to_vec(), // 2 blank: skipped
        br#"192.0.2.1 - - [30/Nov/2026:08:00:00 +0000] "-" 400 0 "-" "-""#.to_vec(), // 3 no request: skipped
        br#"192.0.2.1 - - [30/Nov/2026:08:00:00 +0000] "\x16\x03\x01" 400 0"#.to_vec(), // 4 TLS bytes: skipped
        br#"host.example - - [30/Nov/2026:08:00:00 +0000] "GET / HTTP/1.1" 200 1"#.to_vec(), // 5 failed
        br#"192.0.2.1 - - [30/Nov/2026:25:00:00 +0000] "GET / HTTP/1.1" 200 1"#.to_vec(), // 6 failed
        br#"192.0.2.1 - - [30/Nov/2026:08:00:00 +0000] "GET / HTTP/1.1" twohundred 1"#.to_vec(), // 7 failed
        br#"192.0.2.1 - - [30/Nov/2026:08:00:00 +0000] "GET / HTTP/1.1"#.to_vec(), // 8 failed
        b"192.0.2.1 - - [30/Nov/2026:08:00:00 +0000] \"GET /\xff\xfe HTTP/1.1\" 200 1".to_vec(), // 9 not UTF-8
        vec![b'a'; enumguard::replay::MAX_LINE + 5], // 10 too long
        b"\x00\x01\x02 binary".to_vec(),             // 11 failed
        b"{\"time\": 1}".to_vec(),                   // 12 failed
    ];
    bytes.extend_from_slice(good.as_bytes());
    bytes.push(b'\n');
    for l in &bad_lines {
        bytes.extend_from_slice(l);
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(good.as_bytes()); // 13, no newline at the end
    let log = d.join("bad.log");
    std::fs::write(&log, &bytes).unwrap();
    let out = run(&["replay", "-c", MAILROOM, log.to_str().unwrap()]);
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("lines read: 13,"), "{s}");
    assert!(s.contains("parsed 2, skipped 3, failed 8"), "{s}");
    for (line, why) in [
        (5, "is not an IP address"),
        (6, "is not dd/Mon/yyyy"),
        (7, "is not a 3-digit number"),
        (8, "no quoted request line"),
        (9, "not UTF-8"),
        (10, "longer than"),
        (11, "is not an IP address"),
        (12, "is not an IP address"),
    ] {
        assert!(s.contains(&format!("line {line}: ")), "line {line}: {s}");
        let l = s
            .lines()
            .find(|l| l.contains(&format!("line {line}: ")))
            .unwrap();
        assert!(l.contains(why), "line {line}: {l}");
    }
    assert!(s.contains("skipped 1: blank line"), "{s}");
    let row = s
        .lines()
        .find(|l| l.starts_with("  addressbook "))
        .unwrap_or_else(|| panic!("no addressbook row: {s}"));
    assert_eq!(row.split_whitespace().nth(1), Some("2"), "{row}");

    // JSON lines of every kind.
    let ok = r#""time":"2026-11-30T08:00:00Z","remote_addr":"192.0.2.1","method":"GET","uri":"/api/accounts/5/addressbook","status":200"#;
    let json = [
        format!("{{{ok}}}"),
        "{".into(),
        "[1]".into(),
        r#"{"time":"2026-11-30T08:00:00Z"}"#.into(),
        format!("{{{ok},\"body\":7}}"),
        r#"{"time":"noon","remote_addr":"192.0.2.1","method":"GET","uri":"/","status":200}"#.into(),
        String::new(),
        format!("{{{ok}}}"),
    ];
    let log = d.join("bad.jsonl");
    write_lines(&log, &json);
    let out = run(&[
        "replay",
        "-c",
        MAILROOM,
        "--format",
        "jsonl",
        log.to_str().unwrap(),
    ]);
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("lines read: 8,"), "{s}");
    assert!(s.contains("parsed 2, skipped 1, failed 5"), "{s}");
    assert!(s.contains("line 4: no field \"remote_addr\""), "{s}");
}

/// Any bytes at all: the tallies add up and nothing panics.
#[test]
fn arbitrary_bytes_never_panic_and_every_line_is_counted() {
    let config = Config::from_file(MAILROOM).unwrap();
    let mut seed = 0x1234_5678_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for format in [Format::Combined, Format::Jsonl] {
        let opts = Options {
            format,
            ..Options::default()
        };
        let mut r = Replay::new(config.clone(), opts).unwrap();
        let base = r#"192.0.2.1 - 5 [30/Nov/2026:08:00:00 +0000] "GET /api/recipients/lookup?email=a HTTP/1.1" 404 1"#;
        let jbase = r#"{"time":1796025600,"remote_addr":"192.0.2.1","method":"POST","uri":"/api/password-reset","status":404,"body":{"email":"x"}}"#;
        let mut n = 0u64;
        for i in 0..3000u64 {
            let src = if format == Format::Combined {
                base
            } else {
                jbase
            };
            let mut b = src.as_bytes().to_vec();
            // Mutate a few bytes, truncate, or splice.
            for _ in 0..(next() % 4) {
                let at = (next() as usize) % b.len();
                b[at] = (next() % 256) as u8;
            }
            if i % 7 == 0 {
                b.truncate((next() as usize) % b.len());
            }
            n += 1;
            let line = match std::str::from_utf8(&b) {
                Ok(s) => Line::Text(s),
                Err(_) => Line::NotUtf8,
            };
            r.feed(0, n, line).unwrap();
        }
        let rep = r.finish().unwrap();
        let skipped: u64 = rep.skipped.iter().map(|(_, k)| k).sum();
        assert_eq!(rep.lines_read, n);
        assert_eq!(rep.parsed + skipped + rep.failed, n);
        assert!(rep.parsed > 0 && rep.failed > 0, "{rep}");
    }
}

#[test]
fn gzip_several_files_and_stdin_read_in_order() {
    let d = dir("inputs");
    let (lines, truth) = gen_log(Format::Combined, 30);
    let whole = d.join("whole.log");
    write_lines(&whole, &lines);
    let half = lines.len() / 2;
    let first = d.join("first.log.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&first).unwrap(),
        flate2::Compression::fast(),
    );
    for l in &lines[..half] {
        writeln!(gz, "{l}").unwrap();
    }
    gz.finish().unwrap();
    let second = d.join("second.log");
    write_lines(&second, &lines[half..]);
    let a = run(&["replay", "-c", MAILROOM, whole.to_str().unwrap()]).stdout;
    let b = run(&[
        "replay",
        "-c",
        MAILROOM,
        first.to_str().unwrap(),
        second.to_str().unwrap(),
    ])
    .stdout;
    // The same report; a location reads `line N` in one file and
    // `FILE:N` in several, and names the file the line came from.
    let (a_text, b_text) = (String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
    let mut located = 0;
    for (la, lb) in a_text.lines().zip(b_text.lines()) {
        let Some(at) = la.find("into the log, line ") else {
            assert_eq!(la, lb);
            continue;
        };
        assert_eq!(la[..at], lb[..at]);
        let n: usize = la[at + "into the log, line ".len()..]
            .split(')')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let want = if n <= half {
            format!("{}:{n})", first.display())
        } else {
            format!("{}:{})", second.display(), n - half)
        };
        assert!(lb.contains(&want), "{lb} lacks {want}");
        located += 1;
    }
    assert_eq!(a_text.lines().count(), b_text.lines().count());
    assert!(located >= 2, "{a_text}");
    assert!(
        String::from_utf8_lossy(&a).contains(&format!("lines read: {}", thousands(truth.lines)))
    );
    // Standard input.
    let mut child = Command::new(BIN)
        .args(["replay", "-c", MAILROOM, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&bytes));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    assert!(out.stdout == a);
    // A file that is not there: a clear error, exit 1.
    let out = Command::new(BIN)
        .args(["replay", "-c", MAILROOM, "/nonexistent/x.log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent/x.log"));
}

/// Lines out of order within `--reorder-secs` are replayed in time order:
/// the same verdicts as the sorted log; later ones are counted as late.
#[test]
fn out_of_order_lines_are_reordered_or_counted_late() {
    let config = Config::from_file(MAILROOM).unwrap();
    let (lines, _) = gen_log(Format::Combined, 30);
    let replay = |lines: &[String], reorder: u64| {
        let opts = Options {
            reorder_secs: reorder,
            ..Options::default()
        };
        let mut r = Replay::new(config.clone(), opts).unwrap();
        for (i, l) in lines.iter().enumerate() {
            r.feed_text(0, i as u64 + 1, l).unwrap();
        }
        r.finish().unwrap()
    };
    // Sorted by time (the generator swaps a few neighbours), then runs of
    // up to 8 lines that span at most 4 s reversed: out of order, inside
    // the 5 s window.
    let secs = |l: &str| -> u32 {
        let t = &l[l.find('[').unwrap() + 1..];
        let hms: Vec<u32> = t[12..20].split(':').map(|x| x.parse().unwrap()).collect();
        hms[0] * 3600 + hms[1] * 60 + hms[2]
    };
    let mut sorted = lines.clone();
    sorted.sort_by_key(|l| secs(l));
    let mut shuffled = Vec::with_capacity(sorted.len());
    let mut run: Vec<String> = Vec::new();
    let mut reversed_runs = 0;
    for l in &sorted {
        if run.len() == 8 || run.first().is_some_and(|f| secs(l) - secs(f) > 4) {
            reversed_runs += usize::from(run.len() > 1);
            shuffled.extend(run.drain(..).rev());
        }
        run.push(l.clone());
    }
    shuffled.extend(run.drain(..).rev());
    assert!(reversed_runs > 100, "{reversed_runs}");
    assert_ne!(shuffled, sorted);
    let a = replay(&sorted, 5);
    let b = replay(&shuffled, 5);
    assert_eq!(a.late, 0);
    assert_eq!(b.late, 0);
    assert_eq!(a.verdicts, b.verdicts);
    assert_eq!(
        a.probes.iter().map(|p| p.refused).collect::<Vec<_>>(),
        b.probes.iter().map(|p| p.refused).collect::<Vec<_>>()
    );
    // Without a reorder window, the reversed lines come late.
    let c = replay(&shuffled, 0);
    assert!(c.late > 0);
    assert_eq!(c.parsed, a.parsed);
}

/// Moving a threshold moves the first block: what an operator tuning
/// thresholds looks at.
#[test]
fn a_higher_threshold_blocks_later() {
    let (d, log, _) = logged("tuning", Format::Combined, 30);
    let text = std::fs::read_to_string(MAILROOM).unwrap();
    let raised = text.replace(
        "target = { path = \"id\" }\nstyle = \"objects\"\n",
        "target = { path = \"id\" }\nstyle = \"objects\"\nthresholds = { foreign_block = 40 }\n",
    );
    assert_ne!(raised, text);
    let cfg = d.join("raised.toml");
    std::fs::write(&cfg, raised).unwrap();
    let first_block = |config: &str| -> u64 {
        let s = String::from_utf8(run(&["replay", "-c", config, log.to_str().unwrap()]).stdout)
            .unwrap();
        let l = s
            .lines()
            .find(|l| l.contains("addressbook first block:"))
            .unwrap()
            .to_owned();
        l.split("line ")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let base = first_block(MAILROOM);
    let later = first_block(cfg.to_str().unwrap());
    assert!(later > base, "{later} <= {base}");
}

/// Ordinary users refused by the operator's own deny list show up as the
/// collateral, first.
#[test]
fn refused_ordinary_users_are_listed_as_collateral() {
    let (d, log, _) = logged("collateral", Format::Combined, 20);
    let text = std::fs::read_to_string(MAILROOM).unwrap().replace(
        "[deny]\ncidrs = []",
        "[deny]\ncidrs = [\"198.51.100.0/24\"]",
    );
    let cfg = d.join("deny.toml");
    std::fs::write(&cfg, text).unwrap();
    let s = String::from_utf8(
        run(&[
            "replay",
            "-c",
            cfg.to_str().unwrap(),
            "--reveal",
            "--top",
            "100",
            log.to_str().unwrap(),
        ])
        .stdout,
    )
    .unwrap();
    let line = s.lines().find(|l| l.starts_with("collateral")).unwrap();
    let n: usize = line.rsplit(' ').next().unwrap().parse().unwrap();
    // The NAT's users (every fifth account) and the address itself.
    assert!(n >= 30, "{s}");
    assert!(s.contains("  account:5 "), "{s}");
    assert!(s.contains("  ip:198.51.100.10 "), "{s}");
    assert!(s.contains("refused: denylisted (ip)"), "{s}");
}

#[test]
fn targets_the_log_does_not_hold_are_reported_once() {
    let d = dir("notinlog");
    let cfg = d.join("c.toml");
    std::fs::write(
        &cfg,
        r#"
[[probes]]
name = "by-header"
path = "/h"
target = { header = "x-target" }

[[probes]]
name = "by-body"
method = "POST"
path = "/b"
target = { json = "email" }
style = "identities"
"#,
    )
    .unwrap();
    let lines: Vec<String> = (0..5)
        .flat_map(|i| {
            [
                format!(r#"192.0.2.1 - - [30/Nov/2026:08:00:0{i} +0000] "GET /h HTTP/1.1" 200 1"#),
                format!(r#"192.0.2.1 - - [30/Nov/2026:08:00:0{i} +0000] "POST /b HTTP/1.1" 404 1"#),
            ]
        })
        .collect();
    let log = d.join("a.log");
    write_lines(&log, &lines);
    let s = String::from_utf8(
        run(&["replay", "-c", cfg.to_str().unwrap(), log.to_str().unwrap()]).stdout,
    )
    .unwrap();
    assert_eq!(
        s.matches("by-header warning: its target is a request header")
            .count(),
        1,
        "{s}"
    );
    assert_eq!(
        s.matches("by-body warning: its target is in the JSON body")
            .count(),
        1,
        "{s}"
    );
    // A JSON log with the body has it: no warning for the body probe.
    let json: Vec<String> = (0..5)
        .map(|i| format!(r#"{{"t":"2026-11-30T08:00:0{i}Z","ip":"192.0.2.1","method":"POST","uri":"/b","status":404,"payload":{{"email":"g{i}@x"}}}}"#))
        .collect();
    let jlog = d.join("a.jsonl");
    write_lines(&jlog, &json);
    let s = String::from_utf8(
        run(&[
            "replay",
            "-c",
            cfg.to_str().unwrap(),
            "--format",
            "jsonl",
            "--field",
            "time=t",
            "--field",
            "remote_addr=ip",
            "--field",
            "body=payload",
            jlog.to_str().unwrap(),
        ])
        .stdout,
    )
    .unwrap();
    assert!(s.contains("parsed 5, skipped 0, failed 0"), "{s}");
    assert!(!s.contains("by-body warning"), "{s}");
    // A bad --field is refused up front.
    let out = Command::new(BIN)
        .args([
            "replay",
            "-c",
            cfg.to_str().unwrap(),
            "--format",
            "jsonl",
            "--field",
            "ip",
            jlog.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected KEY=NAME"));
}

#[test]
fn check_config_prints_every_default_and_names_errors() {
    let out = run(&["check-config", MAILROOM]);
    let text = String::from_utf8(out.stdout).unwrap();
    // Every threshold of every probe is written out.
    for field in [
        "foreign_block",
        "miss_block",
        "window_secs",
        "throttle_at",
        "self_target",
        "oversized",
    ] {
        assert_eq!(
            text.matches(&format!("{field} = ")).count(),
            4,
            "{field}: {text}"
        );
    }
    // It reads back as the same config, in full.
    let printed = Config::from_toml_str(&text).unwrap();
    let original = Config::from_file(MAILROOM).unwrap();
    assert_eq!(printed, original.effective());
    assert_eq!(printed.effective(), printed);
    for p in &original.probes {
        let q = printed.probes.iter().find(|q| q.name == p.name).unwrap();
        assert_eq!(q.resolved_thresholds(), p.resolved_thresholds());
    }
    // A broken file: exit 1, the file, the field and the value.
    let d = dir("check");
    let bad = d.join("bad.toml");
    std::fs::write(&bad, "[throttle]\nper_minute = \"six\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("throttle.per_minute") && err.contains("six"),
        "{err}"
    );
}

#[test]
fn generate_writes_the_worked_example_log() {
    let d = dir("generate");
    let out = d.join("g.log");
    run(&["generate", "--minutes", "5", "-o", out.to_str().unwrap()]);
    let text = std::fs::read_to_string(&out).unwrap();
    let (lines, truth) = gen_log(Format::Combined, 5);
    assert_eq!(text.lines().count() as u64, truth.lines);
    assert_eq!(text.lines().next(), lines.first().map(String::as_str));
}

/// `--plot` draws one panel per probe, as SVG or as an HTML page; any
/// other name is refused before the replay starts.
#[test]
fn the_plot_is_svg_or_an_html_page() {
    let (d, log, _) = logged("plot", Format::Combined, 20);
    let (svg, html) = (d.join("p.svg"), d.join("p.html"));
    for p in [&svg, &html] {
        run(&[
            "replay",
            "-c",
            MAILROOM,
            "--plot",
            p.to_str().unwrap(),
            log.to_str().unwrap(),
        ]);
    }
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    for probe in ["addressbook", "lookup", "password-reset", "register"] {
        assert!(svg.contains(probe), "no panel for {probe}");
    }
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..200]);
    assert!(html.contains(&svg));
    let out = Command::new(BIN)
        .args([
            "replay",
            "-c",
            MAILROOM,
            "--plot",
            d.join("p.png").to_str().unwrap(),
            log.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("p.png") && err.contains(".svg"), "{err}");
    assert!(!d.join("p.png").exists());
}

/// The README's worked example, as written there: the generated log with
/// the mailroom config refuses the attackers and nobody else; the
/// README's tightened lookup thresholds put ordinary users on the
/// collateral list.
#[test]
fn the_readme_worked_example() {
    let d = dir("readme");
    let log = d.join("demo.jsonl");
    run(&["generate", "--format", "jsonl", "-o", log.to_str().unwrap()]);
    let replay_with = |config: &str, extra: &[&str]| {
        let mut args = vec![
            "replay", "-c", config, "--format", "jsonl", "--reveal", "--top", "50",
        ];
        args.extend_from_slice(extra);
        args.push(log.to_str().unwrap());
        String::from_utf8(run(&args).stdout).unwrap()
    };
    let replay = |config: &str| replay_with(config, &[]);
    let s = replay(MAILROOM);
    assert!(
        s.contains("lines read: 11,396,"),
        "the README says 11396 lines: {s}"
    );
    let first = s
        .lines()
        .find(|l| l.contains("addressbook first block:"))
        .unwrap();
    assert!(first.ends_with("account:7001"), "{first}");
    let first = s
        .lines()
        .find(|l| l.contains("lookup first block:"))
        .unwrap();
    assert!(first.ends_with("ip:192.0.2.10"), "{first}");
    assert_eq!(collateral(&s), 0, "{s}");
    // The log holds owners: the summary does not warn that it cannot tell.
    assert!(!s.contains("says nothing of owners"), "{s}");
    // Without the application's `known`, still no collateral here.
    assert_eq!(
        collateral(&replay_with(MAILROOM, &["--field", "known=none"])),
        0
    );

    // The worked example's tightened thresholds, taken from the operator's
    // manual itself (docs/operating.md, where the README's example moved).
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operating.md")).unwrap();
    let at = readme
        .find("tightens the lookup probe")
        .expect("the worked example");
    let block = &readme[at..];
    let block = &block[block.find("```toml\n").unwrap() + 8..];
    let block = &block[..block.find("```").unwrap()];
    let config = std::fs::read_to_string(MAILROOM).unwrap();
    let old = "[probes.thresholds]\nbaseline_miss_ratio = 0.25\n";
    assert_eq!(config.matches(old).count(), 1);
    assert!(block.starts_with(old), "{block}");
    let tight = d.join("tight.toml");
    std::fs::write(&tight, config.replace(old, block)).unwrap();
    let s = replay(tight.to_str().unwrap());
    assert!(collateral(&s) > 0, "{s}");
    let line = s
        .lines()
        .find(|l| l.starts_with("  account:111 "))
        .unwrap_or_else(|| panic!("an ordinary account: {s}"));
    assert!(line.contains(" ordinary "), "{line}");
}
