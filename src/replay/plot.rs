//! `--plot`: requests, refusals and active verdicts over time, per probe,
//! as SVG or HTML (plotters).

use std::path::Path;

/// What the plot shows: per probe, counts in equal time buckets.
#[derive(Debug, Clone, Default)]
pub struct PlotData {
    /// The first bucket's start, in Unix seconds.
    pub start_secs: i64,
    /// Each bucket's length, in seconds (at least 1).
    pub bucket_secs: i64,
    /// One series set per probe, in config order.
    pub probes: Vec<ProbeSeries>,
}

/// One probe's series; the three vectors have the same length.
#[derive(Debug, Clone, Default)]
pub struct ProbeSeries {
    /// The probe's name.
    pub name: String,
    /// Requests to the probe per bucket.
    pub requests: Vec<u64>,
    /// Requests enforce mode would have refused, per bucket.
    pub refusals: Vec<u64>,
    /// Verdicts caught on the probe that were active at some time in the
    /// bucket.
    pub verdicts: Vec<u64>,
}

/// Writes `data` to `path`: SVG, or an HTML page holding the SVG when the
/// name ends in `.html` / `.htm`.
///
/// # Errors
/// The file cannot be written, or plotters failed to draw.
pub fn write_plot(path: &Path, data: &PlotData) -> Result<(), String> {
    let _ = (path, data);
    Err("not written yet".into())
}
