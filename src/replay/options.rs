//! How a replay runs: the log's format and the [`Options`] of
//! [`Replay::new`](super::Replay::new).

use super::line::Fields;

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
