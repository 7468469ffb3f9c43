//! Access logs through the detector, in the log's own time (feature
//! `cli`; the `enumguard replay` command): whom would enforce mode have
//! refused, and when would it have stopped a scraper.
//!
//! The replay is one more adapter of the sans-IO core
//! ([`Detector`](crate::detect::Detector)), beside the tower layer: each
//! log line becomes the facts the layer would have read off the request
//! (actors, probe, target) and the answer it would have seen (the logged
//! status), in the order of the log's timestamps. It runs in enforce mode
//! whatever the config says, as observe mode predicts it: a request it
//! would refuse is counted as refused, and nothing is learned from its
//! answer (in enforce mode it never reaches the service).
//!
//! ```
//! use enumguard::Config;
//! use enumguard::replay::{Format, Options, Replay};
//!
//! let config = Config::from_toml_str(r#"
//!     [[probes]]
//!     name = "book"
//!     path = "/accounts/{id}/book"
//!     target = { path = "id" }
//! "#).unwrap();
//! let mut replay = Replay::new(config, Options::default()).unwrap();
//! for id in 0..40 {
//!     let line = format!(
//!         r#"203.0.113.9 - mallory [30/Nov/2026:08:00:{:02} +0000] "GET /accounts/{id}/book HTTP/1.1" 200 512 "-" "x""#,
//!         id
//!     );
//!     replay.feed_text(0, id + 1, &line).unwrap();
//! }
//! let report = replay.finish().unwrap();
//! assert_eq!(report.lines_read, 40);
//! assert!(report.probes[0].refused > 0, "{report}");
//! ```
//!
//! | file | role |
//! |---|---|
//! | `input.rs` | logs: files in order, `.gz`, standard input, bounded lines |
//! | `line.rs` | one line to one request: combined format, JSON lines |
//! | `time.rs` | timestamps: combined, RFC 3339, epoch |
//! | `options.rs` | [`Options`], [`Format`]: how a replay runs |
//! | `engine.rs` | [`Replay`]: reordering, each line translated for the detector and its answer |
//! | `tally.rs` | the counts per line, per probe and per actor; the collateral rule |
//! | `output.rs` | actors as keyed hashes or in clear; the `--decisions` and `--verdicts` lines |
//! | `assemble.rs` | the [`Report`] put together at the end: collateral, suspects from the store |
//! | `report.rs` | [`Report`]: the summary, the collateral, the suspects |
//! | `timeline.rs` | the plot's counts in time buckets, and the verdicts' intervals |
//! | `plot.rs` | `--plot`: SVG or HTML |
//! | `generate.rs` | a log with known attacks and known ordinary users, for the worked example and the tests |

mod assemble;
mod engine;
pub mod generate;
mod input;
mod line;
mod options;
mod output;
mod plot;
mod report;
mod tally;
mod time;
mod timeline;

pub use engine::Replay;
pub use input::{Line, Lines, MAX_LINE, Source};
pub use line::Fields;
pub use options::{Format, Options};
pub use plot::{PlotData, ProbeSeries, plot_is_html, render_svg, write_plot};
pub use report::{
    Collateral, CollateralWhy, Failure, FirstBlock, ProbeReport, Report, SuspectReport,
};
