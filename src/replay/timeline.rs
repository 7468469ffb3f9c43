//! The plot's timeline (`--plot`): requests and refusals per probe in time
//! buckets, and the verdicts' intervals, kept as the replay goes; turned
//! into the [`PlotData`] the plot draws at the end.

use std::collections::HashMap;

use super::plot::{PlotData, ProbeSeries};
use crate::actor::ActorKey;

/// Verdict intervals kept for the plot.
const MAX_INTERVALS: usize = 1 << 20;
/// Plot buckets: the bucket doubles past this many.
const MAX_BUCKETS: usize = 2048;

/// The plot's counts, in buckets that double in length to stay few.
pub(super) struct Timeline {
    start: i64,
    bucket: i64,
    counts: Vec<Vec<(u64, u64)>>,
    intervals: Vec<(usize, i64, i64)>,
    open: HashMap<(ActorKey, usize), usize>,
}

impl Timeline {
    pub(super) fn new(probes: usize, start: i64) -> Self {
        Self {
            start,
            bucket: 1,
            counts: vec![Vec::new(); probes],
            intervals: Vec::new(),
            open: HashMap::new(),
        }
    }

    /// Starts the plot at `first` (the first line's time, in nanoseconds,
    /// taken to its second), as long as nothing is counted yet.
    pub(super) fn starts_at(&mut self, first: i64) {
        if self.counts.iter().all(Vec::is_empty) && self.intervals.is_empty() {
            self.start = first.div_euclid(1_000_000_000);
        }
    }

    pub(super) fn add(&mut self, probe: usize, secs: i64, refused: bool) {
        let mut i = ((secs - self.start).max(0) / self.bucket) as usize;
        while i >= MAX_BUCKETS {
            self.bucket *= 2;
            for c in &mut self.counts {
                let halved: Vec<(u64, u64)> = c
                    .chunks(2)
                    .map(|p| p.iter().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)))
                    .collect();
                *c = halved;
            }
            i = ((secs - self.start).max(0) / self.bucket) as usize;
        }
        let c = &mut self.counts[probe];
        if c.len() <= i {
            c.resize(i + 1, (0, 0));
        }
        c[i].0 += 1;
        c[i].1 += u64::from(refused);
    }

    pub(super) fn verdict(&mut self, key: ActorKey, probe: usize, from: i64, until: i64) {
        if let Some(&i) = self.open.get(&(key, probe)) {
            let end = &mut self.intervals[i].2;
            *end = (*end).min(from);
        }
        if self.intervals.len() < MAX_INTERVALS {
            self.open.insert((key, probe), self.intervals.len());
            self.intervals.push((probe, from, until));
        }
    }

    pub(super) fn data(&self, names: &[String]) -> PlotData {
        let len = self.counts.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut probes: Vec<ProbeSeries> = names
            .iter()
            .zip(&self.counts)
            .map(|(name, c)| ProbeSeries {
                name: name.clone(),
                requests: (0..len).map(|i| c.get(i).map_or(0, |x| x.0)).collect(),
                refusals: (0..len).map(|i| c.get(i).map_or(0, |x| x.1)).collect(),
                verdicts: vec![0; len],
            })
            .collect();
        // Active verdicts per bucket: a difference array over the buckets
        // each interval touches.
        let mut diff = vec![vec![0i64; len + 1]; probes.len()];
        for &(p, from, until) in &self.intervals {
            let a = ((from / 1_000_000_000 - self.start).max(0) / self.bucket) as usize;
            let b = (((until - 1) / 1_000_000_000 - self.start).max(0) / self.bucket) as usize;
            if until <= from || a >= len {
                continue;
            }
            diff[p][a] += 1;
            diff[p][(b + 1).min(len)] -= 1;
        }
        for (s, d) in probes.iter_mut().zip(&diff) {
            let mut run = 0i64;
            for (i, v) in s.verdicts.iter_mut().enumerate() {
                run += d[i];
                *v = run.max(0) as u64;
            }
        }
        PlotData {
            start_secs: self.start,
            bucket_secs: self.bucket,
            probes,
        }
    }
}
