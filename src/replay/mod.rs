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
//! | `engine.rs` | [`Replay`]: reordering, the detector, the tallies, `--decisions` and `--verdicts` |
//! | `report.rs` | [`Report`]: the summary, the collateral, the suspects |
//! | `plot.rs` | `--plot`: SVG or HTML |
//! | `generate.rs` | a log with known attacks and known ordinary users, for the worked example and the tests |

mod engine;
pub mod generate;
mod input;
mod line;
mod plot;
mod report;
mod time;

pub use engine::Replay;
pub use input::{Line, Lines, MAX_LINE, Source};
pub use line::Fields;
pub use plot::{PlotData, ProbeSeries, plot_is_html, render_svg, write_plot};
pub use report::{
    Collateral, CollateralWhy, Failure, FirstBlock, ProbeReport, Report, SuspectReport,
};

/// The log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// nginx/Apache combined (or common): `%h %l %u [%t] "%r" %>s %b ...`;
    /// the remote user (`%u`), when not `-`, is the account.
    #[default]
    Combined,
    /// One JSON object a line ([`Fields`] names its fields).
    Jsonl,
}

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The log format.
    pub format: Format,
    /// The JSON field names (`Format::Jsonl`).
    pub fields: Fields,
    /// How far out of order lines may be, in seconds: lines are held that
    /// long and replayed in time order. A line later than that is replayed
    /// at the time reached (and counted as late).
    pub reorder_secs: u64,
    /// Seeds the detector's secret keys and the hashes actors are shown
    /// as: the same input and seed give byte-identical output.
    pub seed: u64,
    /// Shows actors in clear (addresses, account names from the log)
    /// rather than as keyed hashes.
    pub reveal: bool,
    /// How many suspects and collateral actors the summary lists.
    pub top: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            format: Format::Combined,
            fields: Fields::default(),
            reorder_secs: 5,
            seed: 0x656e_756d_6775_6172,
            reveal: false,
            top: 10,
        }
    }
}
