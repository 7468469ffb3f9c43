//! `enumguard`: the operator's command-line tool (feature `cli`).
//!
//! - `enumguard replay --config FILE [options] LOG...`: access logs
//!   through the detector, in the log's own time; what enforce mode would
//!   have refused, whom, and when.
//! - `enumguard check-config FILE`: validates a config, says what it means
//!   (each probe as the guard runs it, and warnings for settings that leave
//!   an enumerator room), and prints it with every default filled in.
//! - `enumguard generate`: a mailroom access log with known attacks and
//!   known ordinary users, to try the replay on.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `enumguard proxy` allocates a few small blocks a request (hyper's
/// headers and bodies): mimalloc serves them faster than the system's.
#[cfg(feature = "proxy")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use enumguard::Config;
use enumguard::replay::generate::{GenOptions, generate};
use enumguard::replay::{Fields, Format, Options, Replay, Source, plot_is_html, write_plot};

#[derive(Parser)]
#[command(
    name = "enumguard",
    version,
    about = "Replay access logs through enumguard's detector, and check configs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replays access logs through the detector, in the log's own time,
    /// and reports what enforce mode would have done.
    Replay(ReplayArgs),
    /// Validates a config, says what it means (each probe's methods,
    /// target, outcome rule, thresholds and actors; warnings for settings
    /// that leave an enumerator room), and prints it in full, every default
    /// filled in.
    CheckConfig {
        /// The TOML config.
        file: PathBuf,
    },
    /// Writes a mailroom access log with known attacks and known ordinary
    /// users (the README's worked example).
    Generate(GenerateArgs),
    /// A reverse proxy with the guard in front of any HTTP service
    /// (feature `proxy`): its `[proxy]` table says where it listens and
    /// where it forwards; SIGHUP reloads the config, SIGTERM or ctrl-c
    /// drains and stops.
    #[cfg(feature = "proxy")]
    Proxy(ProxyArgs),
}

/// `enumguard proxy`.
#[cfg(feature = "proxy")]
#[derive(Args)]
struct ProxyArgs {
    /// The TOML config: the guard's settings and its `[proxy]` table.
    #[arg(long, short)]
    config: PathBuf,
    /// Listen here (overrides `proxy.listen`).
    #[arg(long)]
    listen: Option<String>,
    /// Forward here (overrides `proxy.upstream`).
    #[arg(long)]
    upstream: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    /// nginx/Apache combined (or common); the remote user is the account.
    Combined,
    /// One JSON object a line.
    Jsonl,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Combined => Format::Combined,
            FormatArg::Jsonl => Format::Jsonl,
        }
    }
}

#[derive(Args)]
struct ReplayArgs {
    /// The config to replay with (its mode is ignored: the replay says
    /// what enforce mode would have done).
    #[arg(long, short)]
    config: PathBuf,
    /// The log format.
    #[arg(long, value_enum, default_value = "combined")]
    format: FormatArg,
    /// JSON lines: read part KEY from field NAME (KEY: time, remote_addr,
    /// method, uri, status, account, session, body). Repeatable.
    #[arg(long = "field", value_name = "KEY=NAME")]
    fields: Vec<String>,
    /// How far out of order lines may be, in seconds.
    #[arg(long, default_value_t = 5)]
    reorder_secs: u64,
    /// Seeds the detector's keys and the actor hashes: same input and
    /// seed, byte-identical output.
    #[arg(long, default_value_t = Options::default().seed)]
    seed: u64,
    /// Shows actors in clear (addresses, account names) instead of keyed
    /// hashes.
    #[arg(long)]
    reveal: bool,
    /// How many suspects and collateral actors the summary lists.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Writes one JSON line per request here.
    #[arg(long, value_name = "FILE")]
    decisions: Option<PathBuf>,
    /// Writes one JSON line per verdict change here.
    #[arg(long, value_name = "FILE")]
    verdicts: Option<PathBuf>,
    /// Draws requests, refusals and active verdicts over time per probe
    /// (FILE.svg, or FILE.html).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// No progress bar, even on a terminal.
    #[arg(long, short)]
    quiet: bool,
    /// The logs, read in order (`.gz` decompressed, `-` standard input).
    #[arg(required = true, value_name = "LOG")]
    logs: Vec<String>,
}

#[derive(Args)]
struct GenerateArgs {
    /// The log format.
    #[arg(long, value_enum, default_value = "combined")]
    format: FormatArg,
    /// Minutes of traffic.
    #[arg(long, default_value_t = 60)]
    minutes: u32,
    /// Ordinary accounts.
    #[arg(long, default_value_t = 200)]
    users: u32,
    /// Seeds the randomness.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write it (`-`: standard output).
    #[arg(long, short, default_value = "-")]
    out: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(a) => replay(a),
        Command::CheckConfig { file } => check_config(&file),
        Command::Generate(a) => generate_log(&a),
        #[cfg(feature = "proxy")]
        Command::Proxy(a) => proxy(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &PathBuf) -> Result<(), String> {
    let text = check_config_text(file)?;
    io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| format!("cannot write: {e}"))
}

/// What `check-config` prints: what the config means (each probe as the
/// guard runs it, then the warnings) as `#` comment lines, then the
/// effective config as TOML with its secrets (session_key, Redis
/// passwords) redacted. The whole output loads as TOML (once the secrets
/// are put back).
fn check_config_text(file: &PathBuf) -> Result<String, String> {
    let config = Config::from_file(file).map_err(|e| e.to_string())?;
    let explained = config.explain().map_err(|e| e.to_string())?;
    let effective = config.effective();
    let redacted = effective.redacted();
    let toml = redacted.to_toml_string().map_err(|e| e.to_string())?;
    let mut text = format!(
        "# {}: valid. What it means:\n#\n",
        file.display().to_string().escape_debug()
    );
    for line in explained.to_string().lines() {
        text.push('#');
        if !line.is_empty() {
            text.push(' ');
            text.push_str(line);
        }
        text.push('\n');
    }
    text.push_str("#\n# Every setting, defaults filled in:\n");
    if redacted != effective {
        text.push_str("# secrets are shown as <redacted>: put them back before loading this\n");
    }
    text.push_str(&toml);
    Ok(text)
}

fn create(path: &PathBuf) -> Result<BufWriter<File>, String> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(256 * 1024, f))
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

fn replay(a: ReplayArgs) -> Result<(), String> {
    let config = Config::from_file(&a.config).map_err(|e| e.to_string())?;
    let mut fields = Fields::default();
    for f in &a.fields {
        fields.set(f)?;
    }
    let opts = Options {
        format: a.format.into(),
        fields,
        reorder_secs: a.reorder_secs,
        seed: a.seed,
        reveal: a.reveal,
        top: a.top,
    };
    let sources: Vec<Source> = a.logs.iter().map(|l| Source::from_arg(l)).collect();
    if sources.iter().filter(|s| **s == Source::Stdin).count() > 1 {
        return Err("`-` (standard input) can be read only once".into());
    }
    let mut replay = Replay::new(config, opts).map_err(|e| e.to_string())?;
    replay.set_files(sources.iter().map(Source::name).collect());
    if let Some(p) = &a.decisions {
        replay.decisions_to(create(p)?);
    }
    if let Some(p) = &a.verdicts {
        replay.verdicts_to(create(p)?);
    }
    if let Some(p) = &a.plot {
        plot_is_html(p)?;
        // Found unwritable now, not after the whole replay.
        create(p)?;
        replay.keep_plot();
    }
    let read = Arc::new(AtomicU64::new(0));
    let bar = progress(&a, &sources, read.clone());
    for (i, source) in sources.iter().enumerate() {
        let mut lines = source.open(read.clone()).map_err(|e| e.to_string())?;
        let mut n = 0u64;
        loop {
            let line = lines
                .next_line()
                .map_err(|e| format!("{}: read error after line {n}: {e}", source.name()))?;
            let Some(line) = line else { break };
            n += 1;
            replay
                .feed(i as u32, n, line)
                .map_err(|e| format!("cannot write the output: {e}"))?;
            if n % 4096 == 0 {
                if let Some(b) = &bar {
                    b.set_position(read.load(Ordering::Relaxed));
                }
            }
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = replay
        .finish()
        .map_err(|e| format!("cannot write the output: {e}"))?;
    if let (Some(p), Some(data)) = (&a.plot, &report.plot) {
        write_plot(p, data)?;
    }
    let mut out = io::stdout().lock();
    write!(out, "{report}").map_err(|e| format!("cannot write: {e}"))
}

/// A progress bar on standard error when it is a terminal (bytes of the
/// files read), else nothing.
fn progress(
    a: &ReplayArgs,
    sources: &[Source],
    _read: Arc<AtomicU64>,
) -> Option<indicatif::ProgressBar> {
    if a.quiet || !io::stderr().is_terminal() {
        return None;
    }
    let sizes: Option<u64> = sources.iter().map(Source::size).sum();
    let bar = match sizes {
        Some(total) => {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {binary_bytes}/{binary_total_bytes} {elapsed} (eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        }
        None => {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {binary_bytes} read {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            b
        }
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

fn generate_log(a: &GenerateArgs) -> Result<(), String> {
    let opts = GenOptions {
        format: a.format.into(),
        minutes: a.minutes,
        users: a.users,
        seed: a.seed,
    };
    let mut out: Box<dyn Write> = if a.out == "-" {
        Box::new(BufWriter::new(io::stdout().lock()))
    } else {
        Box::new(create(&PathBuf::from(&a.out))?)
    };
    let mut err = None;
    let truth = generate(&opts, |line| {
        if err.is_none() {
            if let Err(e) = writeln!(out, "{line}") {
                err = Some(e);
            }
        }
    });
    if let Some(e) = err {
        return Err(format!("cannot write: {e}"));
    }
    out.flush().map_err(|e| format!("cannot write: {e}"))?;
    if a.out != "-" {
        eprintln!(
            "wrote {} lines to {}: attackers {} and {} addresses; {} ordinary accounts",
            truth.lines,
            a.out,
            truth.attacker_accounts.join(", "),
            truth.attacker_addrs.len(),
            truth.ordinary_accounts.len()
        );
    }
    Ok(())
}

/// Runs the proxy until SIGTERM or ctrl-c (a second one stops at once);
/// SIGHUP reloads the config file.
#[cfg(feature = "proxy")]
fn proxy(a: ProxyArgs) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .try_init();
    let mut config = Config::from_file(&a.config).map_err(|e| e.to_string())?;
    let p = config.proxy.get_or_insert_with(Default::default);
    if let Some(l) = a.listen {
        p.listen = l;
    }
    if let Some(u) = a.upstream {
        p.upstream = u;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let proxy = enumguard::proxy::Proxy::start(config, Some(a.config.clone())).await?;
        eprintln!("enumguard proxy: listening on {}", proxy.addr());
        let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        loop {
            tokio::select! {
                _ = hup.recv() => proxy.reload(),
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        eprintln!("enumguard proxy: draining (a second signal stops at once)");
        tokio::select! {
            () = proxy.shutdown() => {}
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `check-config` on a config with a session key and Redis passwords
    /// prints neither.
    #[test]
    fn check_config_never_prints_a_secret() {
        let dir = std::env::temp_dir().join(format!("enumguard-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret.toml");
        let key = "0123456789abcdef0123456789abcdef";
        let mut toml = format!("session_key = \"{key}\"\n");
        if cfg!(feature = "redis") {
            toml.push_str("[cluster]\nredis_url = \"redis://admin:hunter2-pw@10.0.0.5:6379/0\"\n");
        }
        std::fs::write(&file, toml).unwrap();
        let text = check_config_text(&file).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!text.contains(key), "{text}");
        assert!(
            !text.to_ascii_lowercase().contains("0123456789abcdef"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("session_key = \"<redacted>\""), "{text}");
        assert!(text.contains("secrets are shown as <redacted>"), "{text}");
        if cfg!(feature = "redis") {
            assert!(
                text.contains("redis://<redacted>@10.0.0.5:6379/0"),
                "{text}"
            );
        }
    }
}
