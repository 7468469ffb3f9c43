//! `enumguard replay` throughput: access-log lines a second on one core.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench --features cli --bench replay
//! ```
//!
//! The log is the worked example's (`enumguard generate`: the mailroom's
//! ordinary users beside the two incidents' attackers), made larger:
//! `ENUMGUARD_REPLAY_USERS` ordinary accounts (default 2,000) over
//! `ENUMGUARD_REPLAY_MINUTES` minutes (default 80), about 100,000 lines. It
//! is written to a temporary file once; each iteration replays the whole
//! file with `examples/mailroom.toml` as the command does (open, read line
//! by line, parse, route, detect, tally, the report at the end), on the
//! bench's one thread. Criterion's throughput is in lines (`elem/s`);
//! multiply by 60 for lines a minute.
//!
//! - `replay/combined`: nginx/Apache combined, the summary only.
//! - `replay/combined_gz`: the same log gzip-compressed.
//! - `replay/combined_decisions`: with `--decisions` (one JSON line per
//!   request, written to a sink).
//! - `replay/jsonl`: the JSON-lines form of the same traffic.
//!
//! Outside `cargo bench` (`cargo test --benches`) the log is 20 users over
//! 5 minutes and every benchmark runs once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use enumguard::Config;
use enumguard::replay::generate::{GenOptions, generate};
use enumguard::replay::{Format, Options, Replay, Report, Source};

const MAILROOM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/mailroom.toml");

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes the generated log; gives its path and line count.
fn write_log(dir: &Path, format: Format, users: u32, minutes: u32, gz: bool) -> (PathBuf, u64) {
    let name = match (format, gz) {
        (Format::Jsonl, _) => "access.jsonl",
        (_, true) => "access.log.gz",
        _ => "access.log",
    };
    let path = dir.join(name);
    let file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create the log"));
    let mut out: Box<dyn Write> = if gz {
        Box::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::default(),
        ))
    } else {
        Box::new(file)
    };
    let opts = GenOptions {
        format,
        users,
        minutes,
        ..GenOptions::default()
    };
    let truth = generate(&opts, |l| writeln!(out, "{l}").expect("write the log"));
    drop(out);
    (path, truth.lines)
}

/// One replay of the file, as `enumguard replay` runs it.
fn replay_file(config: &Config, format: Format, path: &Path, decisions: bool) -> Report {
    let opts = Options {
        format,
        ..Options::default()
    };
    let mut r = Replay::new(config.clone(), opts).expect("the mailroom config");
    if decisions {
        r.decisions_to(std::io::sink());
    }
    let source = Source::from_arg(path.to_str().expect("a UTF-8 path"));
    let mut lines = source
        .open(Arc::new(AtomicU64::new(0)))
        .expect("open the log");
    let mut n = 0;
    while let Some(line) = lines.next_line().expect("read the log") {
        n += 1;
        r.feed(0, n, line).expect("replay");
    }
    r.finish().expect("finish")
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let (users, minutes) = if benching {
        (
            env_u32("ENUMGUARD_REPLAY_USERS", 2_000),
            env_u32("ENUMGUARD_REPLAY_MINUTES", 80),
        )
    } else {
        (20, 5)
    };
    let dir = std::env::temp_dir().join(format!("enumguard-bench-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let config = Config::from_file(MAILROOM).expect("examples/mailroom.toml");

    let cases = [
        ("combined", Format::Combined, false, false),
        ("combined_gz", Format::Combined, true, false),
        ("combined_decisions", Format::Combined, false, true),
        ("jsonl", Format::Jsonl, false, false),
    ];
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    let mut group = c.benchmark_group("replay");
    for (name, format, gz, decisions) in cases {
        let (path, lines) = write_log(&dir, format, users, minutes, gz);
        // Every line replayed and parsed: a bench of a replay that skips
        // lines would measure nothing.
        let report = replay_file(&config, format, &path, decisions);
        assert_eq!(report.lines_read, lines, "{name}");
        assert_eq!(report.parsed, lines, "{name}: every line parsed");
        eprintln!("replay/{name}: {lines} lines ({users} users, {minutes} minutes)");
        group.throughput(Throughput::Elements(lines));
        group.bench_function(name, |b| {
            b.iter(|| replay_file(&config, format, &path, decisions));
        });
    }
    group.finish();
    c.final_summary();
    let _ = std::fs::remove_dir_all(&dir);
}
