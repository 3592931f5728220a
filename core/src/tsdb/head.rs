//! The head: a shard's in-memory series and their samples.
//!
//! Invariants:
//! * A series id is the index into `series`; ids are dense, start at 0 and are never reused.
//! * Each series' samples are strictly increasing in time. An append at an earlier time is
//!   rejected as out of order; one at the same time is accepted only if the value is bit-for-bit
//!   the same (a no-op), otherwise rejected as a duplicate — Prometheus's rules.
//! * Chunks hold at most [`CHUNK_SAMPLES`] samples; only the last chunk of a series is open.
//!
//! The head is owned by one shard thread and is neither `Send` nor shared.

use std::collections::HashMap;

use roaring::RoaringBitmap;
use thiserror::Error;

use super::chunk::{XorChunk, XorState};
use super::postings::Postings;
use super::symbols::Symbols;
use crate::labels::{Label, Labels, Matcher};
use crate::value::Sample;

/// Samples per chunk before a new one is cut (as Prometheus).
pub const CHUNK_SAMPLES: usize = 120;

/// Why an append was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AppendError {
    #[error("out of order sample")]
    OutOfOrder,
    #[error("duplicate sample for timestamp")]
    Duplicate,
}

#[derive(Debug)]
struct MemSeries {
    labels: Box<[(u32, u32)]>,
    chunks: Vec<XorChunk>,
    last_t: i64,
    last_v: u64,
}

impl MemSeries {
    fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.chunks.iter().any(|c| !c.is_empty() && c.min_time() <= maxt && c.max_time() >= mint)
    }
}

/// What `/api/v1/status/tsdb` reports of a head (one shard's; [`HeadStats::merge`] adds up
/// several).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeadStats {
    pub series: u64,
    pub chunks: u64,
    /// Oldest and newest sample times, if there are samples.
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    /// Series per label name and value.
    pub pairs: HashMap<String, HashMap<String, u64>>,
}

impl HeadStats {
    pub fn merge(&mut self, other: HeadStats) {
        self.series += other.series;
        self.chunks += other.chunks;
        self.min_time = self.min_time.into_iter().chain(other.min_time).min();
        self.max_time = self.max_time.max(other.max_time);
        for (name, values) in other.pairs {
            let mine = self.pairs.entry(name).or_default();
            for (value, n) in values {
                *mine.entry(value).or_default() += n;
            }
        }
    }
}

/// A series as a head snapshot keeps it: its labels, its chunks, and the time and value bits
/// of its last sample (what the next append is checked against).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSnapshot {
    pub labels: Labels,
    pub chunks: Vec<XorState>,
    pub last_t: i64,
    pub last_v: u64,
}

/// The samples of one series within a queried time range.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Default)]
pub struct Head {
    symbols: Symbols,
    series: Vec<MemSeries>,
    by_hash: HashMap<u64, Vec<u32>>,
    postings: Postings,
}

impl Head {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    /// The id of the series with exactly these labels, creating it if needed; the flag says
    /// whether it was created.
    pub fn get_or_create(&mut self, labels: &Labels) -> (u32, bool) {
        let hash = labels.hash();
        if let Some(ids) = self.by_hash.get(&hash) {
            for &id in ids {
                if self.labels_equal(id, labels) {
                    return (id, false);
                }
            }
        }
        let id = self.series.len() as u32;
        let pairs: Box<[(u32, u32)]> =
            labels.iter().map(|l| (self.symbols.intern(&l.name), self.symbols.intern(&l.value))).collect();
        self.postings.add(id, &pairs);
        self.series.push(MemSeries { labels: pairs, chunks: Vec::new(), last_t: i64::MIN, last_v: 0 });
        self.by_hash.entry(hash).or_default().push(id);
        (id, true)
    }

    fn labels_equal(&self, id: u32, labels: &Labels) -> bool {
        let stored = &self.series[id as usize].labels;
        stored.len() == labels.len()
            && stored
                .iter()
                .zip(labels.iter())
                .all(|(&(n, v), l)| self.symbols.resolve(n) == l.name && self.symbols.resolve(v) == l.value)
    }

    /// Appends a sample to series `id` (which must come from [`Head::get_or_create`]).
    pub fn append(&mut self, id: u32, t: i64, v: f64) -> Result<(), AppendError> {
        let s = &mut self.series[id as usize];
        if t < s.last_t {
            return Err(AppendError::OutOfOrder);
        }
        if t == s.last_t {
            return if v.to_bits() == s.last_v { Ok(()) } else { Err(AppendError::Duplicate) };
        }
        if s.chunks.last().is_none_or(|c| c.len() >= CHUNK_SAMPLES) {
            if let Some(full) = s.chunks.last_mut() {
                full.seal();
            }
            // Exact growth: most series hold a handful of chunks, and doubling would leave room
            // for as many again in every one of millions of series.
            s.chunks.reserve_exact(1);
            s.chunks.push(XorChunk::new());
        }
        s.chunks.last_mut().expect("a chunk was pushed above").append(t, v);
        s.last_t = t;
        s.last_v = v.to_bits();
        Ok(())
    }

    /// The labels of series `id`.
    pub fn labels(&self, id: u32) -> Labels {
        // Stored in the order they were given, which is a Labels' sorted order.
        Labels::from_sorted(
            self.series[id as usize]
                .labels
                .iter()
                .map(|&(n, v)| Label {
                    name: self.symbols.resolve(n).to_string(),
                    value: self.symbols.resolve(v).to_string(),
                })
                .collect(),
        )
    }

    /// Ids of the series that match and have at least one sample in `[mint, maxt]`.
    fn matching_ids(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> RoaringBitmap {
        self.postings
            .select(&self.symbols, matchers)
            .iter()
            .filter(|&id| self.series[id as usize].overlaps(mint, maxt))
            .collect()
    }

    /// Every matching series with its samples in `[mint, maxt]` (staleness markers included).
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesSamples> {
        self.matching_ids(matchers, mint, maxt)
            .iter()
            .map(|id| {
                let s = &self.series[id as usize];
                let samples = s
                    .chunks
                    .iter()
                    .filter(|c| c.min_time() <= maxt && c.max_time() >= mint)
                    .flat_map(|c| c.iter())
                    .filter(|&(t, _)| t >= mint && t <= maxt)
                    .map(|(t, v)| Sample { t, v })
                    .collect();
                SeriesSamples { labels: self.labels(id), samples }
            })
            .collect()
    }

    /// Label sets of the matching series with samples in `[mint, maxt]`.
    pub fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Labels> {
        self.matching_ids(matchers, mint, maxt).iter().map(|id| self.labels(id)).collect()
    }

    /// Label names present on matching series in `[mint, maxt]`.
    pub fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<String> {
        let ids = self.matching_ids(matchers, mint, maxt);
        self.postings.label_names(&ids).into_iter().map(|n| self.symbols.resolve(n).to_string()).collect()
    }

    /// Values of label `name` on matching series in `[mint, maxt]`.
    pub fn label_values(&self, name: &str, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<String> {
        let Some(name_id) = self.symbols.lookup(name) else {
            return Vec::new();
        };
        let ids = self.matching_ids(matchers, mint, maxt);
        self.postings.label_values(name_id, &ids).into_iter().map(|v| self.symbols.resolve(v).to_string()).collect()
    }

    /// Series `id` as a snapshot keeps it.
    pub fn snapshot_series(&self, id: u32) -> SeriesSnapshot {
        let s = &self.series[id as usize];
        SeriesSnapshot {
            labels: self.labels(id),
            chunks: s.chunks.iter().map(XorChunk::state).collect(),
            last_t: s.last_t,
            last_v: s.last_v,
        }
    }

    /// Brings back a series from its snapshot and returns its id; a series the head already
    /// holds keeps its own data. None if a chunk state is invalid.
    pub fn restore_series(&mut self, snapshot: SeriesSnapshot) -> Option<u32> {
        let chunks: Vec<XorChunk> = snapshot.chunks.into_iter().map(XorChunk::from_state).collect::<Option<_>>()?;
        let (id, created) = self.get_or_create(&snapshot.labels);
        if created {
            let s = &mut self.series[id as usize];
            (s.chunks, s.last_t, s.last_v) = (chunks, snapshot.last_t, snapshot.last_v);
        }
        Some(id)
    }

    /// The newest sample time held, if any.
    pub fn max_time(&self) -> Option<i64> {
        self.series.iter().filter_map(|s| s.chunks.iter().rev().find(|c| !c.is_empty())).map(XorChunk::max_time).max()
    }

    /// Chunks held, open and sealed.
    pub fn num_chunks(&self) -> usize {
        self.series.iter().map(|s| s.chunks.len()).sum()
    }

    /// Counts of series, chunks and label pairs, and the time range held.
    pub fn stats(&self) -> HeadStats {
        let mut stats =
            HeadStats { series: self.series.len() as u64, chunks: self.num_chunks() as u64, ..HeadStats::default() };
        stats.min_time =
            self.series.iter().filter_map(|s| s.chunks.iter().find(|c| !c.is_empty())).map(XorChunk::min_time).min();
        stats.max_time = self.max_time();
        for (name, value, n) in self.postings.pair_counts() {
            let name = self.symbols.resolve(name).to_string();
            stats.pairs.entry(name).or_default().insert(self.symbols.resolve(value).to_string(), n);
        }
        stats
    }

    /// Drops every chunk that ends before `t` (in-memory retention). Series stay indexed.
    pub fn truncate_before(&mut self, t: i64) -> usize {
        let mut dropped = 0;
        for s in &mut self.series {
            let before = s.chunks.len();
            // The open chunk is kept even if old: appends continue into it.
            let open = s.chunks.pop();
            s.chunks.retain(|c| c.max_time() >= t);
            dropped += before - s.chunks.len() - usize::from(open.is_some());
            s.chunks.extend(open);
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::MatchOp;

    fn up(job: &str) -> Labels {
        Labels::from_pairs([("__name__", "up"), ("job", job)])
    }

    #[test]
    fn series_are_found_by_labels_and_matchers() {
        let mut h = Head::new();
        let (a, created) = h.get_or_create(&up("api"));
        assert!(created);
        assert_eq!(h.get_or_create(&up("api")), (a, false));
        let (b, _) = h.get_or_create(&up("web"));
        h.append(a, 1000, 1.0).unwrap();
        h.append(b, 1000, 2.0).unwrap();
        let sel = h.select(&[Matcher::new("job", MatchOp::Regex, "a.*").unwrap()], 0, 2000);
        assert_eq!(sel.len(), 1);
        assert_eq!(sel[0].labels, up("api"));
        assert_eq!(sel[0].samples, vec![Sample { t: 1000, v: 1.0 }]);
        assert_eq!(h.label_values("job", &[], 0, 2000).len(), 2);
        assert!(h.series(&[], 2001, 3000).is_empty(), "no samples in that range");
    }

    #[test]
    fn out_of_order_and_duplicates_are_rejected() {
        let mut h = Head::new();
        let (id, _) = h.get_or_create(&up("api"));
        h.append(id, 2000, 1.0).unwrap();
        assert_eq!(h.append(id, 1000, 1.0), Err(AppendError::OutOfOrder));
        assert_eq!(h.append(id, 2000, 1.0), Ok(()), "identical duplicate is a no-op");
        assert_eq!(h.append(id, 2000, 5.0), Err(AppendError::Duplicate));
        assert_eq!(h.select(&[], 0, 3000)[0].samples.len(), 1);
    }

    #[test]
    fn stats_count_series_chunks_pairs_and_merge_across_heads() {
        let mut a = Head::new();
        for (job, t) in [("api", 1000), ("web", 5000)] {
            let (id, _) = a.get_or_create(&up(job));
            a.append(id, t, 1.0).unwrap();
        }
        let mut b = Head::new();
        let (id, _) = b.get_or_create(&up("api2"));
        b.append(id, 500, 1.0).unwrap();
        b.get_or_create(&Labels::from_pairs([("__name__", "idle")]));
        let mut stats = a.stats();
        stats.merge(b.stats());
        assert_eq!((stats.series, stats.chunks), (4, 3));
        assert_eq!((stats.min_time, stats.max_time), (Some(500), Some(5000)));
        assert_eq!(stats.pairs["__name__"]["up"], 3);
        assert_eq!(stats.pairs["job"].len(), 3);
    }

    #[test]
    fn chunks_are_cut_and_read_across_boundaries() {
        let mut h = Head::new();
        let (id, _) = h.get_or_create(&up("api"));
        for i in 0..1000 {
            h.append(id, i * 1000, i as f64).unwrap();
        }
        let s = &h.select(&[], 100_500, 400_000)[0].samples;
        assert_eq!(s.first().unwrap().t, 101_000);
        assert_eq!(s.last().unwrap().t, 400_000);
        assert_eq!(s.len(), 300);
        assert_eq!(h.truncate_before(500_000), 4);
        assert_eq!(h.select(&[], 0, 1_000_000)[0].samples.first().unwrap().t, 480_000);
    }
}
