//! One target's scrape state: the scrape cache, staleness tracking and report series.
//!
//! The cache maps each series' cache key to the series' owner shard and id there. For a text
//! body the key is the raw series text of a line (`name{labels}` exactly as the target wrote
//! it); for a protobuf body it is the same notation rendered canonically by the parser (see
//! `exposition::protobuf`). A steady-state scrape therefore does one hash-map lookup per
//! sample and no label parsing or label hashing. A series not in the cache is parsed, merged
//! with the target labels, hashed to its owner shard and sent as a *new* series; the owner
//! answers with the id, which [`TargetIngest::resolve`] records.
//!
//! Native histograms go to the shards beside floats ([`ShardBatch::known_histograms`] and
//! [`ShardBatch::new_histograms`]), reduced to the scrape config's limits first
//! ([`HistogramLimits`]); a scrape counts each as one sample, as upstream does.
//!
//! Staleness: a series present in the previous successful scrape and absent from this one gets
//! a staleness marker at this scrape's timestamp (a float one for a histogram series too, as
//! upstream); when a scrape fails, every series of the last successful scrape does. Series
//! exposed with explicit timestamps get none, as upstream.
//!
//! Metadata: the `# HELP` and `# TYPE` of each metric family in the last successful scrape, kept
//! beside the cache for `/api/v1/metadata`; a scrape reports whether it changed, so readers copy
//! it only then.
//!
//! A body that fails to parse stores nothing: [`TargetIngest::ingest`] returns the error before
//! any batch leaves, and the caller reports the scrape as failed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use thiserror::Error;

use super::limits::{check_label_limits, HistogramLimits};
use crate::config::ScrapeLimits;
use crate::excerpt::{excerpt, MAX_MESSAGE_BYTES};
use crate::exposition::nhcb::TextNhcb;
use crate::exposition::{
    parse_series_pairs, Entry, Format, HistogramOptions, MetricType, ParseError, ProtobufError, ProtobufParser,
    ScrapedExemplar, TextParser,
};
use crate::histogram::FloatHistogram;
use crate::labels::{Labels, NameValidation, METRIC_NAME};
use crate::relabel::{relabel, Rule};
use crate::scrape::Target;
use crate::value::{stale_nan, Exemplar, HistogramSample};

/// The series every scrape adds about itself, in the order [`TargetIngest::add_report`] fills;
/// the last three only with `extra_scrape_metrics`.
const REPORT_SERIES: [&str; 8] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
    "scrape_timeout_seconds",
    "scrape_sample_limit",
    "scrape_body_size_bytes",
];

/// How many of [`REPORT_SERIES`] every scrape adds.
const ALWAYS_REPORTED: usize = 5;

/// A series known to its owner shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesRef {
    pub shard: usize,
    pub id: u32,
}

/// A scrape cache entry. A target holds one per series it exposes, so it is kept to 16 bytes:
/// with the key, a map slot takes 32 bytes where an `Option<SeriesRef>` and a `u64` took 56.
#[derive(Debug, Clone, Copy)]
struct CacheEntry {
    /// The owner shard, or [`DROPPED`] for a series that `metric_relabel_configs` drops: it
    /// is skipped on sight.
    shard: u32,
    id: u32,
    /// The scrape generation that last saw this series.
    seen: Generation,
    explicit_timestamp: bool,
}

/// [`CacheEntry::shard`] of a dropped series.
const DROPPED: u32 = u32::MAX;

/// A scrape's number. It wraps: it is only compared for equality with the current one, and an
/// entry not seen in a scrape is gone after it.
type Generation = u32;

impl CacheEntry {
    fn new(series: Option<SeriesRef>, seen: Generation, explicit_timestamp: bool) -> Self {
        let (shard, id) = series.map_or((DROPPED, 0), |s| (s.shard as u32, s.id));
        CacheEntry { shard, id, seen, explicit_timestamp }
    }

    fn series(&self) -> Option<SeriesRef> {
        (self.shard != DROPPED).then_some(SeriesRef { shard: self.shard as usize, id: self.id })
    }
}

/// Samples a shard refused because it no longer knows their series' ids.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UnknownSamples {
    /// `(id, t, v)`.
    pub floats: Vec<(u32, i64, f64)>,
    pub histograms: Vec<(u32, HistogramSample)>,
}

impl UnknownSamples {
    pub fn is_empty(&self) -> bool {
        self.floats.is_empty() && self.histograms.is_empty()
    }
}

/// What one shard must append for one scrape.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ShardBatch {
    /// Samples of series the shard already knows: (id, t, v).
    pub known: Vec<(u32, i64, f64)>,
    /// Samples of series the shard may not know yet; it answers with their ids, in order.
    pub new: Vec<(Labels, i64, f64)>,
    /// Native-histogram samples of series the shard already knows.
    pub known_histograms: Vec<(u32, HistogramSample)>,
    /// Native-histogram samples of series the shard may not know yet; their ids follow those
    /// of `new` in the answer, in order.
    pub new_histograms: Vec<(Labels, HistogramSample)>,
    /// Exemplars the samples carried, each with its sample's series.
    pub exemplars: Vec<(BatchSeries, Exemplar)>,
}

/// The series of a sample in a [`ShardBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSeries {
    Known(u32),
    /// Index into `new`.
    New(usize),
    /// Index into `new_histograms`.
    NewHistogram(usize),
}

impl ShardBatch {
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
            && self.new.is_empty()
            && self.known_histograms.is_empty()
            && self.new_histograms.is_empty()
    }
}

/// What a successful scrape produced, besides the batches.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeCounts {
    /// Samples scraped, a native histogram counting as one.
    pub samples: usize,
    /// Samples left after `metric_relabel_configs`.
    pub kept: usize,
    pub new_series: usize,
    pub duplicates: usize,
    /// Whether the metric families' HELP or TYPE differ from the previous scrape's.
    pub metadata_changed: bool,
}

/// A metric family's `# TYPE` and `# HELP`, as `/api/v1/metadata` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricMetadata {
    /// `counter`, `gauge`, `histogram`, `summary`, or `unknown` (untyped or not declared).
    pub kind: &'static str,
    pub help: String,
    /// OpenMetrics' `# UNIT`, protobuf's `unit`; empty otherwise.
    pub unit: String,
}

#[derive(Debug, Clone)]
struct MetadataEntry {
    metadata: MetricMetadata,
    seen: Generation,
}

fn kind_name(kind: MetricType) -> &'static str {
    match kind {
        MetricType::Counter => "counter",
        MetricType::Gauge => "gauge",
        MetricType::Histogram => "histogram",
        MetricType::Summary => "summary",
        MetricType::Untyped => "unknown",
        MetricType::Info => "info",
        MetricType::StateSet => "stateset",
        MetricType::GaugeHistogram => "gaugehistogram",
    }
}

/// The cache key of a new series, waiting for its id from the owner shard.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingKey {
    key: Box<str>,
    explicit_timestamp: bool,
}

/// Per-shard batches plus, for each shard, the cache keys of its new series: those of its
/// `new` entries (None for report series, which are not cached) and of its `new_histograms`.
#[derive(Debug, Clone)]
pub struct Ingest {
    pub batches: Vec<ShardBatch>,
    pub pending: Vec<Vec<Option<PendingKey>>>,
    pub pending_histograms: Vec<Vec<PendingKey>>,
    pub counts: ScrapeCounts,
}

impl Ingest {
    /// Each shard with something to append: its batch, and the cache keys of the new series
    /// in the order its answer gives their ids (`new`, then `new_histograms`), for
    /// [`TargetIngest::resolve`].
    pub fn into_shards(self) -> impl Iterator<Item = (usize, ShardBatch, Vec<Option<PendingKey>>)> {
        let per_shard = self.batches.into_iter().zip(self.pending).zip(self.pending_histograms);
        per_shard.enumerate().filter(|(_, ((batch, _), _))| !batch.is_empty()).map(|(shard, ((batch, mut keys), h))| {
            keys.extend(h.into_iter().map(Some));
            (shard, batch, keys)
        })
    }
}

/// How a target's samples are taken in: label merging, timestamps, metric relabeling,
/// histograms, limits.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    pub honor_labels: bool,
    /// Keep the timestamps the target exposes (else every sample gets the scrape's time).
    pub honor_timestamps: bool,
    /// Mark vanished series stale even when they carried their own timestamps.
    pub track_timestamps_staleness: bool,
    pub metric_relabel_configs: Vec<Rule>,
    pub limits: ScrapeLimits,
    pub histograms: HistogramOptions,
    pub histogram_limits: HistogramLimits,
    /// The metric and label names taken (`metric_name_validation_scheme`).
    pub names: NameValidation,
    /// The report series of `extra_scrape_metrics` are added too.
    pub extra_metrics: bool,
    /// The target's scrape timeout, for `scrape_timeout_seconds`.
    pub timeout_seconds: f64,
}

impl IngestOptions {
    /// The target's options; `extra_metrics` is the caller's to set (the target's may defer
    /// to the server's default).
    pub fn of(target: &Target) -> Self {
        IngestOptions {
            extra_metrics: false,
            timeout_seconds: target.timeout.millis() as f64 / 1000.0,
            honor_labels: target.honor_labels,
            honor_timestamps: target.honor_timestamps,
            track_timestamps_staleness: target.track_timestamps_staleness,
            metric_relabel_configs: target.metric_relabel_configs.clone(),
            limits: target.limits,
            histograms: target.histograms,
            histogram_limits: target.histogram_limits,
            names: target.names,
        }
    }
}

/// Why a scrape body was refused whole.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum IngestError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Protobuf(#[from] ProtobufError),
    #[error("sample limit exceeded")]
    SampleLimit,
    /// Upstream's words; the series' labels after relabeling.
    #[error("invalid metric name or label names: {0}")]
    InvalidNames(String),
    /// A native histogram over `native_histogram_bucket_limit` even at its coarsest.
    #[error("histogram bucket limit exceeded")]
    BucketLimit,
    /// A label limit, with upstream's wording.
    #[error("{0}")]
    LabelLimit(String),
    /// `metric_relabel_configs` left a series without a name.
    #[error("missing metric name (__name__ label)")]
    NoMetricName,
}

/// Why one sample failed the scrape: its series does not parse (the caller knows where it
/// is), or its labels do not pass (a limit, no metric name).
enum Refusal {
    Series(String),
    Labels(IngestError),
}

/// A sample's value.
enum Value {
    Float(f64),
    Histogram(Box<FloatHistogram>),
}

/// The state of the scrape being ingested.
struct Scrape {
    out: Ingest,
    generation: Generation,
    /// Keys of the new series already sent, to count duplicates among them.
    fresh: HashSet<Box<str>>,
    /// Whether a native histogram was over its bucket limit: the scrape fails, after the
    /// body is read (a sample limit error comes first).
    over_bucket_limit: bool,
}

/// The error of a text body that is not UTF-8, at the line of its first invalid byte.
fn utf8_error(body: &[u8], e: std::str::Utf8Error) -> ParseError {
    let line = body[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
    ParseError::new(line, "invalid UTF-8".into())
}

/// The scrape cache and staleness state of one target.
#[derive(Debug)]
pub struct TargetIngest {
    target_labels: Labels,
    options: IngestOptions,
    shards: usize,
    cache: HashMap<Box<str>, CacheEntry>,
    metadata: HashMap<Box<str>, MetadataEntry>,
    generation: Generation,
}

impl TargetIngest {
    pub fn new(target_labels: Labels, options: IngestOptions, shards: usize) -> Self {
        TargetIngest {
            target_labels,
            options,
            shards: shards.max(1),
            cache: HashMap::new(),
            metadata: HashMap::new(),
            generation: 0,
        }
    }

    /// A new ingest for the same target, its cache empty.
    pub fn anew(&self) -> TargetIngest {
        TargetIngest::new(self.target_labels.clone(), self.options.clone(), self.shards)
    }

    /// The metadata of the last successful scrape, by metric family name, sorted.
    pub fn metadata(&self) -> Vec<(String, MetricMetadata)> {
        let mut out: Vec<_> = self.metadata.iter().map(|(k, e)| (k.to_string(), e.metadata.clone())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Records a HELP or TYPE line; true if it changed what was known.
    fn note_metadata(&mut self, metric: &str, update: impl FnOnce(&mut MetricMetadata)) -> bool {
        let generation = self.generation;
        let entry = self.metadata.entry(metric.into()).or_insert_with(|| MetadataEntry {
            metadata: MetricMetadata { kind: "unknown", help: String::new(), unit: String::new() },
            seen: 0,
        });
        let new = entry.seen == 0;
        let before = entry.metadata.clone();
        update(&mut entry.metadata);
        entry.seen = generation;
        new || entry.metadata != before
    }

    pub fn cached_series(&self) -> usize {
        self.cache.len()
    }

    fn empty_ingest(&self) -> Ingest {
        Ingest {
            batches: vec![ShardBatch::default(); self.shards],
            pending: vec![Vec::new(); self.shards],
            pending_histograms: vec![Vec::new(); self.shards],
            counts: ScrapeCounts::default(),
        }
    }

    /// Final labels of a scraped series: scraped labels (as written, empty values included)
    /// merged with the target's, as upstream's `mutateSampleLabels`. With `honor_labels` the
    /// scraped value wins, an empty one too: a federated `instance=""` leaves the series without
    /// an instance (`lset.Has`). Without it the target's labels win, and each scraped value they
    /// displace is kept under `exported_`, prefixed again until the name is free
    /// (`exported_exported_instance` when the series also has an `exported_instance`), shorter
    /// names first. A scraped label with an empty value is no label otherwise.
    fn merge_labels(&self, mut scraped: Vec<(String, String)>) -> Labels {
        if self.options.honor_labels {
            // Sorted by name (the parser refused a name twice), so each target label is looked
            // up by binary search: a hostile series may hold thousands of labels.
            scraped.sort_unstable();
            let scraped_has = |name: &str| scraped.binary_search_by(|(n, _)| n.as_str().cmp(name)).is_ok();
            let kept: Vec<(String, String)> = self
                .target_labels
                .iter()
                .filter(|t| !scraped_has(&t.name))
                .map(|t| (t.name.clone(), t.value.clone()))
                .collect();
            scraped.retain(|(_, value)| !value.is_empty());
            scraped.extend(kept);
            return Labels::from_pairs(scraped);
        }
        let mut merged: BTreeMap<String, String> = scraped.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let mut displaced: Vec<(String, String)> = Vec::new();
        for t in self.target_labels.iter() {
            if let Some(value) = merged.insert(t.name.clone(), t.value.clone()) {
                displaced.push((t.name.clone(), value));
            }
        }
        displaced.sort_by_key(|(name, _)| name.len());
        for (name, value) in displaced {
            let mut exported = format!("exported_{name}");
            while merged.contains_key(&exported) {
                exported.insert_str(0, "exported_");
            }
            merged.insert(exported, value);
        }
        Labels::from_pairs(merged)
    }

    /// Turns a scraped body in `format` at time `t` into batches. On a parse error or a limit
    /// the scrape counts as failed: the caller must then emit [`TargetIngest::ingest_failure`]
    /// instead, which also resets the cache. A text body must be UTF-8.
    pub fn ingest<B: AsRef<[u8]> + ?Sized>(&mut self, body: &B, format: Format, t: i64) -> Result<Ingest, IngestError> {
        // 0 marks metadata never seen.
        self.generation = self.generation.wrapping_add(1).max(1);
        let mut scrape = Scrape {
            out: self.empty_ingest(),
            generation: self.generation,
            fresh: HashSet::new(),
            over_bucket_limit: false,
        };
        let body = body.as_ref();
        let histograms = self.options.histograms;
        if format == Format::Protobuf {
            let mut parser = ProtobufParser::new(body, histograms);
            while let Some(entry) = parser.next() {
                if let Err(refusal) = self.take(&mut scrape, entry?, t) {
                    return Err(match refusal {
                        Refusal::Series(message) => ProtobufError::new(parser.family(), &message).into(),
                        Refusal::Labels(e) => e,
                    });
                }
            }
        } else {
            let text = std::str::from_utf8(body).map_err(|e| utf8_error(body, e))?;
            let at_line = |line: usize, refusal: Refusal| match refusal {
                Refusal::Series(message) => ParseError::new(line, message).into(),
                Refusal::Labels(e) => e,
            };
            let parser = TextParser::with_format(text, format);
            if histograms.convert_to_nhcb {
                let mut parser = TextNhcb::new(parser, histograms);
                while let Some(entry) = parser.next() {
                    self.take(&mut scrape, entry?, t).map_err(|r| at_line(parser.line(), r))?;
                }
            } else {
                let mut parser = parser;
                while let Some(entry) = parser.next() {
                    self.take(&mut scrape, entry?, t).map_err(|r| at_line(parser.line(), r))?;
                }
            }
        }
        self.finish(scrape, t)
    }

    /// Takes one entry of a body scraped at `t`.
    #[inline(always)]
    fn take(&mut self, s: &mut Scrape, entry: Entry<'_>, t: i64) -> Result<(), Refusal> {
        let changed = &mut s.out.counts.metadata_changed;
        match entry {
            Entry::Help { metric, text } => *changed |= self.note_metadata(metric, |m| m.help = text),
            Entry::Type { metric, kind } => *changed |= self.note_metadata(metric, |m| m.kind = kind_name(kind)),
            Entry::Unit { metric, unit } => *changed |= self.note_metadata(metric, |m| m.unit = unit.to_string()),
            Entry::Sample { series, value, timestamp, exemplar } => {
                self.sample(s, series, Value::Float(value), timestamp, exemplar, t)?
            }
            Entry::Histogram { series, histogram, timestamp, mut exemplars } => {
                keep_histogram_exemplars(&mut exemplars);
                self.sample(s, series, Value::Histogram(histogram), timestamp, exemplars, t)?
            }
        }
        Ok(())
    }

    /// Takes one sample of `series` (its cache key) into its shard's batch.
    #[inline(always)]
    fn sample(
        &mut self,
        s: &mut Scrape,
        series: &str,
        value: Value,
        timestamp: Option<i64>,
        exemplars: impl IntoIterator<Item = ScrapedExemplar>,
        t: i64,
    ) -> Result<(), Refusal> {
        s.out.counts.samples += 1;
        let timestamp = timestamp.filter(|_| self.options.honor_timestamps);
        // Whether the series is exempt from staleness markers.
        let explicit = timestamp.is_some() && !self.options.track_timestamps_staleness;
        let ts = timestamp.unwrap_or(t);
        let known = match self.cache.get_mut(series) {
            Some(e) if e.seen == s.generation => {
                s.out.counts.duplicates += 1;
                return Ok(());
            }
            Some(e) => {
                e.seen = s.generation;
                match e.series() {
                    Some(r) => r,
                    None => return Ok(()), // dropped by metric relabeling
                }
            }
            None if s.fresh.contains(series) => {
                s.out.counts.duplicates += 1;
                return Ok(());
            }
            None => {
                s.fresh.insert(series.into());
                let scraped = parse_series_pairs(series).map_err(Refusal::Series)?;
                let Some(labels) = relabel(&self.options.metric_relabel_configs, &self.merge_labels(scraped)) else {
                    self.cache.insert(series.into(), CacheEntry::new(None, s.generation, false));
                    return Ok(());
                };
                // As upstream, a series relabeled to no name fails the scrape: the mistake shows.
                if labels.get(METRIC_NAME).is_empty() {
                    return Err(Refusal::Labels(IngestError::NoMetricName));
                }
                // The scheme judges the names once relabeling is done, as upstream's does.
                if !self.options.names.labels(&labels) {
                    let shown = excerpt(&labels.to_string(), MAX_MESSAGE_BYTES).into_owned();
                    return Err(Refusal::Labels(IngestError::InvalidNames(shown)));
                }
                check_label_limits(&labels, &self.options.limits)
                    .map_err(|e| Refusal::Labels(IngestError::LabelLimit(e)))?;
                let shard = labels.owner(self.shards);
                return self.new_sample(s, shard, labels, series, value, ts, explicit, exemplars);
            }
        };
        s.out.counts.kept += 1;
        let (batch, id) = (&mut s.out.batches[known.shard], known.id);
        match value {
            Value::Float(v) => batch.known.push((id, ts, v)),
            Value::Histogram(h) => {
                let Some(h) = self.options.histogram_limits.apply(*h) else {
                    s.over_bucket_limit = true;
                    return Ok(());
                };
                batch.known_histograms.push((id, HistogramSample { t: ts, h: Arc::new(h) }));
            }
        }
        batch.exemplars.extend(exemplars.into_iter().map(|x| (BatchSeries::Known(id), x.at(ts))));
        Ok(())
    }

    /// Sends a sample of a series new to the cache to its owner shard.
    #[allow(clippy::too_many_arguments)]
    fn new_sample(
        &mut self,
        s: &mut Scrape,
        shard: usize,
        labels: Labels,
        series: &str,
        value: Value,
        ts: i64,
        explicit: bool,
        exemplars: impl IntoIterator<Item = ScrapedExemplar>,
    ) -> Result<(), Refusal> {
        s.out.counts.kept += 1;
        let batch = &mut s.out.batches[shard];
        let key = PendingKey { key: series.into(), explicit_timestamp: explicit };
        let at = match value {
            Value::Float(v) => {
                s.out.pending[shard].push(Some(key));
                batch.new.push((labels, ts, v));
                BatchSeries::New(batch.new.len() - 1)
            }
            Value::Histogram(h) => {
                let Some(h) = self.options.histogram_limits.apply(*h) else {
                    s.over_bucket_limit = true;
                    return Ok(());
                };
                s.out.pending_histograms[shard].push(key);
                batch.new_histograms.push((labels, HistogramSample { t: ts, h: Arc::new(h) }));
                BatchSeries::NewHistogram(batch.new_histograms.len() - 1)
            }
        };
        batch.exemplars.extend(exemplars.into_iter().map(|x| (at, x.at(ts))));
        s.out.counts.new_series += 1;
        Ok(())
    }

    /// The end of a body read whole: the limits it broke, staleness markers for the series it
    /// no longer has, and its metadata kept.
    fn finish(&mut self, s: Scrape, t: i64) -> Result<Ingest, IngestError> {
        let Scrape { mut out, generation, over_bucket_limit, .. } = s;
        let limit = self.options.limits.sample_limit;
        if limit > 0 && out.counts.kept as u64 > limit {
            return Err(IngestError::SampleLimit);
        }
        if over_bucket_limit {
            return Err(IngestError::BucketLimit);
        }
        // Series seen last time but not now have ended.
        self.cache.retain(|_, e| {
            if e.seen == generation {
                return true;
            }
            if let (Some(s), false) = (e.series(), e.explicit_timestamp) {
                out.batches[s.shard].known.push((s.id, t, stale_nan()));
            }
            false
        });
        let before = self.metadata.len();
        self.metadata.retain(|_, e| e.seen == generation);
        out.counts.metadata_changed |= self.metadata.len() != before;
        Ok(out)
    }

    /// The batches for a failed scrape at `t`: staleness markers for every cached series, and
    /// an empty cache.
    pub fn ingest_failure(&mut self, t: i64) -> Ingest {
        let mut out = self.empty_ingest();
        for (_, e) in self.cache.drain() {
            if let (Some(s), false) = (e.series(), e.explicit_timestamp) {
                out.batches[s.shard].known.push((s.id, t, stale_nan()));
            }
        }
        out
    }

    /// Records the ids the owner shard gave to the new series of a batch, in the order of its
    /// answer (see [`Ingest::into_shards`]).
    pub fn resolve(&mut self, shard: usize, keys: Vec<Option<PendingKey>>, ids: &[u32]) {
        for (pending, &id) in keys.into_iter().zip(ids) {
            if let Some(PendingKey { key, explicit_timestamp }) = pending {
                let series = Some(SeriesRef { shard, id });
                self.cache.insert(key, CacheEntry::new(series, self.generation, explicit_timestamp));
            }
        }
    }

    /// The batches that send again, as new series, samples their owner shards refused because
    /// they no longer know the ids (`unknown`, per shard): a shard forgets a series once all
    /// its samples have moved to blocks, which a target scraped less often than the head's
    /// span (or exposing old timestamps) can outlive. Their cache entries go; the shards'
    /// answers record the new ids through [`TargetIngest::resolve`].
    pub fn reresolve(&mut self, unknown: &[(usize, UnknownSamples)]) -> Ingest {
        let mut out = self.empty_ingest();
        for (shard, refused) in unknown {
            let floats: HashMap<u32, (i64, f64)> = refused.floats.iter().map(|&(id, t, v)| (id, (t, v))).collect();
            let histograms: HashMap<u32, &HistogramSample> =
                refused.histograms.iter().map(|(id, h)| (*id, h)).collect();
            let forgotten: Vec<(Box<str>, u32, bool)> = self
                .cache
                .iter()
                .filter_map(|(key, e)| {
                    let s = e.series().filter(|s| {
                        s.shard == *shard && (floats.contains_key(&s.id) || histograms.contains_key(&s.id))
                    })?;
                    Some((key.clone(), s.id, e.explicit_timestamp))
                })
                .collect();
            for (key, id, explicit_timestamp) in forgotten {
                self.cache.remove(&key);
                // The key parsed and passed relabeling, the name scheme and the label limits
                // when it was first seen, under these same options.
                let Ok(scraped) = parse_series_pairs(&key) else { continue };
                let Some(labels) = relabel(&self.options.metric_relabel_configs, &self.merge_labels(scraped)) else {
                    continue;
                };
                let batch = &mut out.batches[*shard];
                if let Some(&(t, v)) = floats.get(&id) {
                    batch.new.push((labels.clone(), t, v));
                    out.pending[*shard].push(Some(PendingKey { key: key.clone(), explicit_timestamp }));
                }
                if let Some(&h) = histograms.get(&id) {
                    batch.new_histograms.push((labels, h.clone()));
                    out.pending_histograms[*shard].push(PendingKey { key, explicit_timestamp });
                }
            }
        }
        out
    }

    /// Adds the report series (`up`, `scrape_duration_seconds`, ...) for this scrape to `ingest`.
    /// The counts come from `ingest` (zero for a failed scrape); `body_bytes` is the body's
    /// size as upstream reports it (`scrape_body_size_bytes`).
    pub fn add_report(&self, ingest: &mut Ingest, t: i64, up: bool, duration_seconds: f64, body_bytes: i64) {
        let counts = ingest.counts;
        let values = [
            if up { 1.0 } else { 0.0 },
            duration_seconds,
            counts.samples as f64,
            counts.kept as f64,
            counts.new_series as f64,
            self.options.timeout_seconds,
            self.options.limits.sample_limit as f64,
            body_bytes as f64,
        ];
        for (name, v) in REPORT_SERIES.into_iter().zip(values).take(self.reported()) {
            self.push_report(ingest, name, t, v);
        }
    }

    /// How many of [`REPORT_SERIES`] this target's scrapes add.
    fn reported(&self) -> usize {
        if self.options.extra_metrics {
            REPORT_SERIES.len()
        } else {
            ALWAYS_REPORTED
        }
    }

    /// The batches for a target that is no longer scraped (a reload removed it): staleness
    /// markers for every series of its last scrape and for its report series.
    pub fn ingest_end(&mut self, t: i64) -> Ingest {
        let mut out = self.ingest_failure(t);
        for name in REPORT_SERIES.into_iter().take(self.reported()) {
            self.push_report(&mut out, name, t, stale_nan());
        }
        out
    }

    fn push_report(&self, ingest: &mut Ingest, name: &str, t: i64, v: f64) {
        let mut pairs: Vec<(String, String)> =
            self.target_labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
        pairs.push(("__name__".into(), name.into()));
        let labels = Labels::from_pairs(pairs);
        let shard = labels.owner(self.shards);
        ingest.batches[shard].new.push((labels, t, v));
        ingest.pending[shard].push(None);
    }
}

/// A native histogram's exemplars as upstream stores them: only those with their own
/// timestamp, in time order (the text formats' classic histograms converted to native ones
/// may carry others).
fn keep_histogram_exemplars(exemplars: &mut Vec<ScrapedExemplar>) {
    exemplars.retain(|x| x.timestamp.is_some());
    exemplars.sort_by_key(|x| x.timestamp);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::MAX_SERIES_LABEL_BYTES;
    use crate::scrape::HistogramLimits;
    use crate::value::is_stale_nan;

    fn target() -> TargetIngest {
        let options = IngestOptions { honor_timestamps: true, ..IngestOptions::default() };
        TargetIngest::new(Labels::from_pairs([("job", "app"), ("instance", "h:1")]), options, 2)
    }

    #[test]
    fn a_cache_slot_takes_32_bytes_and_keeps_its_series() {
        assert_eq!(std::mem::size_of::<(Box<str>, CacheEntry)>(), 32);
        let s = SeriesRef { shard: 3, id: u32::MAX };
        assert_eq!(CacheEntry::new(Some(s), 1, false).series(), Some(s));
        assert_eq!(CacheEntry::new(None, 1, false).series(), None);
    }

    /// Feeds a scrape and answers its new series with ids 100, 101, ... per shard.
    fn scrape(ti: &mut TargetIngest, body: &str, t: i64) -> Ingest {
        scrape_as(ti, body.as_bytes(), Format::Text, t)
    }

    fn scrape_as(ti: &mut TargetIngest, body: &[u8], format: Format, t: i64) -> Ingest {
        let ingest = ti.ingest(body, format, t).unwrap();
        answer(ti, &ingest, 100);
        ingest
    }

    /// Answers the new series of `ingest` as their shards would, with ids from `first` on.
    fn answer(ti: &mut TargetIngest, ingest: &Ingest, first: u32) {
        for (shard, _, keys) in ingest.clone().into_shards() {
            let ids: Vec<u32> = (0..keys.len() as u32).map(|i| first + i).collect();
            ti.resolve(shard, keys, &ids);
        }
    }

    fn all_known(i: &Ingest) -> Vec<(u32, i64, f64)> {
        i.batches.iter().flat_map(|b| b.known.clone()).collect()
    }

    #[test]
    fn steady_state_scrapes_hit_the_cache() {
        let mut ti = target();
        let first = scrape(&mut ti, "a 1\nb{x=\"1\"} 2\n", 1000);
        assert_eq!(first.counts.new_series, 2);
        let second = scrape(&mut ti, "a 3\nb{x=\"1\"} 4\n", 2000);
        assert_eq!(second.counts.new_series, 0);
        assert_eq!(all_known(&second).len(), 2);
        assert!(second.batches.iter().all(|b| b.new.is_empty()));
    }

    #[test]
    fn series_a_shard_forgot_are_sent_again_by_their_labels() {
        let mut ti = target();
        scrape(&mut ti, "a 1\nb{x=\"1\"} 2\n", 1000);
        let second = scrape(&mut ti, "a 3\nb{x=\"1\"} 4\n", 2000);
        let refused: Vec<(usize, UnknownSamples)> = second
            .batches
            .iter()
            .enumerate()
            .map(|(shard, b)| (shard, UnknownSamples { floats: b.known.clone(), histograms: Vec::new() }))
            .collect();
        let again = ti.reresolve(&refused);
        let mut resent: Vec<(String, i64, f64)> = again
            .batches
            .iter()
            .flat_map(|b| b.new.iter().map(|(l, t, v)| (l.metric_name().to_string(), *t, *v)))
            .collect();
        resent.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(resent, vec![("a".to_string(), 2000, 3.0), ("b".to_string(), 2000, 4.0)]);
        assert_eq!(ti.cached_series(), 0, "the forgotten ids left the cache");
        answer(&mut ti, &again, 7);
        let third = scrape(&mut ti, "a 5\nb{x=\"1\"} 6\n", 3000);
        assert_eq!(third.counts.new_series, 0, "the new ids are cached");
        assert!(all_known(&third).iter().all(|&(id, _, _)| id == 7 || id == 8));
    }

    #[test]
    fn vanished_series_and_failed_scrapes_get_staleness_markers() {
        let mut ti = target();
        scrape(&mut ti, "a 1\nb 2\n", 1000);
        let second = scrape(&mut ti, "a 1\n", 2000);
        let stale: Vec<_> = all_known(&second).into_iter().filter(|s| is_stale_nan(s.2)).collect();
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].1, 2000);
        let failed = ti.ingest_failure(3000);
        assert_eq!(all_known(&failed).len(), 1, "only `a` was still live");
        assert!(all_known(&failed).iter().all(|s| is_stale_nan(s.2)));
        assert_eq!(ti.cached_series(), 0);
    }

    #[test]
    fn explicit_timestamps_get_no_staleness_marker() {
        let mut ti = target();
        scrape(&mut ti, "a 1 500\n", 1000);
        assert!(all_known(&scrape(&mut ti, "", 2000)).is_empty());
        let mut tracked = with(IngestOptions {
            honor_timestamps: true,
            track_timestamps_staleness: true,
            ..IngestOptions::default()
        });
        scrape(&mut tracked, "a 1 500\n", 1000);
        let ended = all_known(&scrape(&mut tracked, "", 2000));
        assert!(ended.len() == 1 && is_stale_nan(ended[0].2), "track_timestamps_staleness marks it stale");
    }

    #[test]
    fn labels_merge_with_target_labels() {
        let mut ti = target();
        let i = scrape(&mut ti, "a{job=\"inner\",z=\"1\"} 1\n", 1000);
        let labels: Vec<String> = i.batches.iter().flat_map(|b| b.new.iter().map(|n| n.0.to_string())).collect();
        assert_eq!(labels, vec![r#"{__name__="a", exported_job="inner", instance="h:1", job="app", z="1"}"#]);
        let options = IngestOptions { honor_labels: true, honor_timestamps: true, ..IngestOptions::default() };
        let mut honor = TargetIngest::new(Labels::from_pairs([("job", "app")]), options, 1);
        let i = scrape(&mut honor, "a{job=\"inner\"} 1\n", 1000);
        assert_eq!(i.batches[0].new[0].0.to_string(), r#"{__name__="a", job="inner"}"#);
    }

    /// As upstream: with `honor_labels`, a scraped `instance=""` (what federation writes for a
    /// series without one) unsets the target's instance; without it, the target's stays.
    #[test]
    fn an_empty_scraped_label_unsets_the_targets_with_honor_labels() {
        use crate::exposition::protobuf::{encode, Metric, MetricFamily, Untyped, WireType};
        use crate::remote::Label;
        let target = Labels::from_pairs([("job", "fed"), ("instance", "leaf:9090")]);
        let body = "a{instance=\"\",x=\"1\"} 1\n";
        let label = |name: &str, value: &str| Label { name: name.into(), value: value.into() };
        let protobuf = encode(&[MetricFamily {
            name: "a".into(),
            r#type: WireType::Untyped as i32,
            metric: vec![Metric {
                label: vec![label("instance", ""), label("x", "1")],
                untyped: Some(Untyped { value: 1.0 }),
                ..Metric::default()
            }],
            ..MetricFamily::default()
        }]);
        for honor_labels in [true, false] {
            let options = IngestOptions { honor_labels, honor_timestamps: true, ..IngestOptions::default() };
            for (body, format) in [(body.as_bytes(), Format::Text), (&protobuf[..], Format::Protobuf)] {
                let mut ti = TargetIngest::new(target.clone(), options.clone(), 1);
                let i = scrape_as(&mut ti, body, format, 1000);
                let want = if honor_labels { "" } else { "leaf:9090" };
                assert_eq!(i.batches[0].new[0].0.get("instance"), want, "{format:?}, honor_labels {honor_labels}");
                assert_eq!(i.batches[0].new[0].0.get("x"), "1");
            }
        }
        // Without it, a scraped empty label neither clashes nor overwrites a scraped
        // `exported_instance`, written before or after it.
        let options = IngestOptions { honor_timestamps: true, ..IngestOptions::default() };
        for body in ["b{exported_instance=\"e\",instance=\"\"} 1\n", "b{instance=\"\",exported_instance=\"e\"} 1\n"] {
            let mut ti = TargetIngest::new(target.clone(), options.clone(), 1);
            let i = scrape(&mut ti, body, 1000);
            let labels = &i.batches[0].new[0].0;
            assert_eq!((labels.get("exported_instance"), labels.get("instance")), ("e", "leaf:9090"), "{body}");
        }
        // A displaced label does not take the name of a scraped one: it is prefixed again, as
        // upstream's resolveConflictingExposedLabels, in either order.
        for body in ["c{instance=\"a\",exported_instance=\"b\"} 1\n", "c{exported_instance=\"b\",instance=\"a\"} 1\n"] {
            let mut ti = TargetIngest::new(target.clone(), options.clone(), 1);
            let i = scrape(&mut ti, body, 1000);
            let labels = &i.batches[0].new[0].0;
            let got =
                (labels.get("instance"), labels.get("exported_instance"), labels.get("exported_exported_instance"));
            assert_eq!(got, ("leaf:9090", "b", "a"), "{body}");
        }
    }

    #[test]
    fn duplicate_lines_are_counted_once() {
        let mut ti = target();
        let i = scrape(&mut ti, "a 1\na 2\n", 1000);
        assert_eq!(i.counts.duplicates, 1);
        let i = scrape(&mut ti, "a 1\na 2\n", 2000);
        assert_eq!(i.counts.duplicates, 1);
        assert_eq!(all_known(&i).len(), 1);
    }

    #[test]
    fn malformed_body_is_an_error() {
        let mut ti = target();
        scrape(&mut ti, "a 1\n", 1000);
        let e = ti.ingest("a 1\nb{ 2\n", Format::Text, 2000).unwrap_err();
        assert!(matches!(e, IngestError::Parse(ParseError { line: 2, .. })), "{e:?}");
    }

    fn with(options: IngestOptions) -> TargetIngest {
        TargetIngest::new(Labels::from_pairs([("job", "app"), ("instance", "h:1")]), options, 2)
    }

    fn rules(yaml: &str) -> Vec<Rule> {
        let raw: Vec<crate::relabel::RawRule> = serde_norway::from_str(yaml).unwrap();
        raw.into_iter().map(|r| r.build(NameValidation::Utf8).unwrap()).collect()
    }

    #[test]
    fn metric_relabeling_drops_and_rewrites_new_series_once() {
        let mut ti = with(IngestOptions {
            metric_relabel_configs: rules(
                "[{source_labels: [__name__], regex: 'go_.*', action: drop}, {regex: 'pod', action: labeldrop}]",
            ),
            ..IngestOptions::default()
        });
        let body = "go_goroutines 5\nhttp_total{pod=\"x\"} 1\n";
        let first = scrape(&mut ti, body, 1000);
        assert_eq!((first.counts.samples, first.counts.kept), (2, 1));
        let new: Vec<_> = first.batches.iter().flat_map(|b| b.new.clone()).collect();
        assert_eq!(new[0].0.to_string(), r#"{__name__="http_total", instance="h:1", job="app"}"#);
        // The dropped series is cached as dropped: no new series, no sample, no staleness.
        let second = scrape(&mut ti, body, 2000);
        assert_eq!((second.counts.new_series, second.counts.kept), (0, 1));
        assert_eq!(all_known(&second).len(), 1);
        // A series relabeled to no name fails the scrape, as upstream's does.
        let mut nameless = with(IngestOptions {
            metric_relabel_configs: rules("[{regex: '__name__', action: labeldrop}]"),
            ..IngestOptions::default()
        });
        let e = nameless.ingest("a 1\n", Format::Text, 1000).unwrap_err();
        assert_eq!(e.to_string(), "missing metric name (__name__ label)");
    }

    #[test]
    fn the_name_scheme_judges_names_after_metric_relabeling() {
        let legacy = |yaml: &str| {
            with(IngestOptions {
                metric_relabel_configs: rules(yaml),
                names: NameValidation::Legacy,
                ..IngestOptions::default()
            })
        };
        let body = "{\"a.b\",\"c.d\"=\"1\"} 1\n";
        // Refused as upstream words it, the whole series shown (cut to a kilobyte).
        let e = legacy("[]").ingest(body, Format::Text, 1000).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid metric name or label names: {__name__="a.b", "c.d"="1", instance="h:1", job="app"}"#
        );
        let long = format!("{{\"a.b\",x=\"{}\"}} 1\n", "y".repeat(1 << 20));
        assert!(legacy("[]").ingest(&long, Format::Text, 1000).unwrap_err().to_string().len() < 2048);
        // Relabeling may make the series one the scheme takes, or drop it.
        let renamed =
            "[{source_labels: [__name__], target_label: __name__, replacement: a_b}, {regex: c.d, action: labeldrop}]";
        let i = scrape(&mut legacy(renamed), body, 1000);
        let new: Vec<_> = i.batches.iter().flat_map(|b| b.new.clone()).collect();
        assert_eq!(new[0].0.to_string(), r#"{__name__="a_b", instance="h:1", job="app"}"#);
        let dropped = scrape(&mut legacy("[{source_labels: [__name__], regex: a.b, action: drop}]"), body, 1000);
        assert_eq!((dropped.counts.samples, dropped.counts.kept), (1, 0));
        // utf8, the default, takes them.
        assert!(with(IngestOptions::default()).ingest(body, Format::Text, 1000).is_ok());
    }

    #[test]
    fn limits_fail_the_scrape_whole() {
        let limits = ScrapeLimits { sample_limit: 2, ..ScrapeLimits::default() };
        let mut ti = with(IngestOptions { limits, ..IngestOptions::default() });
        assert_eq!(ti.ingest("a 1\nb 2\nc 3\n", Format::Text, 1000).unwrap_err(), IngestError::SampleLimit);
        assert!(ti.ingest("a 1\nb 2\n", Format::Text, 1000).is_ok());
        let limits = ScrapeLimits { label_limit: 3, ..ScrapeLimits::default() };
        let e = with(IngestOptions { limits, ..IngestOptions::default() })
            .ingest("a{x=\"1\"} 1\n", Format::Text, 1000)
            .unwrap_err();
        assert_eq!(e.to_string(), "label_limit exceeded (metric: a, number of labels: 4, limit: 3)");
        let limits = ScrapeLimits { label_value_length_limit: 2, ..ScrapeLimits::default() };
        let e = with(IngestOptions { limits, ..IngestOptions::default() })
            .ingest("a{x=\"long\"} 1\n", Format::Text, 1000)
            .unwrap_err();
        assert!(e.to_string().starts_with("label_value_length_limit exceeded (metric: a, label name: instance"), "{e}");
        // Without limits configured, a series' labels still take at most 1 MiB.
        let long = format!("a{{x=\"{}\"}} 1\n", "v".repeat(MAX_SERIES_LABEL_BYTES));
        let e = with(IngestOptions::default()).ingest(&long, Format::Text, 1000).unwrap_err();
        assert!(e.to_string().starts_with("labels take more than the 1048576 bytes a series may (metric: a"), "{e}");
        // A configured limit that the same series passes names itself, as upstream's would.
        let limits = ScrapeLimits { label_value_length_limit: 2, ..ScrapeLimits::default() };
        let e =
            with(IngestOptions { limits, ..IngestOptions::default() }).ingest(&long, Format::Text, 1000).unwrap_err();
        assert!(e.to_string().starts_with("label_value_length_limit exceeded (metric: a, label name: instance"), "{e}");
    }

    #[test]
    fn timestamps_are_dropped_unless_honored() {
        let mut ti = with(IngestOptions::default());
        let i = scrape(&mut ti, "a 1 5000\n", 9000);
        assert_eq!(i.batches.iter().flat_map(|b| b.new.clone()).next().unwrap().1, 9000);
    }

    #[test]
    fn report_series_carry_target_labels_and_the_scrape_counts() {
        let mut ti = target();
        let mut i = ti.ingest("a 1\nb 2\na 3\n", Format::Text, 1000).unwrap();
        ti.add_report(&mut i, 1000, true, 0.5, 12);
        let value = |name: &str| -> Vec<(String, f64)> {
            i.batches
                .iter()
                .flat_map(|b| b.new.iter())
                .filter(|n| n.0.metric_name() == name)
                .map(|n| (n.0.to_string(), n.2))
                .collect()
        };
        assert_eq!(value("up"), vec![(r#"{__name__="up", instance="h:1", job="app"}"#.to_string(), 1.0)]);
        assert_eq!(value("scrape_samples_scraped")[0].1, 3.0);
        assert_eq!(value("scrape_series_added")[0].1, 2.0);
        assert_eq!(value("scrape_duration_seconds")[0].1, 0.5);
        assert!(value("scrape_body_size_bytes").is_empty(), "only with extra_scrape_metrics");
        let mut failed = ti.ingest_failure(2000);
        ti.add_report(&mut failed, 2000, false, 0.1, -1);
        let up: Vec<f64> = failed
            .batches
            .iter()
            .flat_map(|b| b.new.iter())
            .filter(|n| n.0.metric_name() == "up")
            .map(|n| n.2)
            .collect();
        assert_eq!(up, vec![0.0]);
    }

    #[test]
    fn extra_scrape_metrics_report_the_timeout_the_sample_limit_and_the_body_size() {
        let limits = ScrapeLimits { sample_limit: 500, ..ScrapeLimits::default() };
        let options = IngestOptions { extra_metrics: true, timeout_seconds: 2.5, limits, ..IngestOptions::default() };
        let mut ti = TargetIngest::new(Labels::from_pairs([("job", "app")]), options, 1);
        let mut i = ti.ingest("a 1\n", Format::Text, 1000).unwrap();
        ti.add_report(&mut i, 1000, true, 0.1, 4);
        let reported: Vec<(&str, f64)> = i.batches[0].new.iter().map(|n| (n.0.metric_name(), n.2)).skip(1).collect();
        let extra = &reported[ALWAYS_REPORTED..];
        assert_eq!(
            extra,
            [("scrape_timeout_seconds", 2.5), ("scrape_sample_limit", 500.0), ("scrape_body_size_bytes", 4.0)]
        );
        let ended = ti.ingest_end(2000);
        assert_eq!(ended.batches[0].new.len(), REPORT_SERIES.len(), "every report series goes stale");
    }

    #[test]
    fn metadata_follows_the_last_scrape_and_reports_changes() {
        let mut ti = target();
        let body = "# HELP a The a.\n# TYPE a counter\na 1\n# TYPE b untyped\nb 2\n";
        assert!(scrape(&mut ti, body, 1000).counts.metadata_changed);
        let meta = ti.metadata();
        assert_eq!(
            meta[0],
            ("a".to_string(), MetricMetadata { kind: "counter", help: "The a.".into(), unit: String::new() })
        );
        assert_eq!(
            meta[1],
            ("b".to_string(), MetricMetadata { kind: "unknown", help: String::new(), unit: String::new() })
        );
        assert!(!scrape(&mut ti, body, 2000).counts.metadata_changed);
        let changed = scrape(&mut ti, "# HELP a Other.\n# TYPE a counter\na 1\n", 3000);
        assert!(changed.counts.metadata_changed);
        assert_eq!(ti.metadata().len(), 1, "b is gone");
    }

    #[test]
    fn an_ended_target_marks_its_series_and_report_series_stale() {
        let mut ti = target();
        scrape(&mut ti, "a 1\nb 2\n", 1000);
        let end = ti.ingest_end(2000);
        assert_eq!(all_known(&end).len(), 2);
        let report: Vec<_> = end.batches.iter().flat_map(|b| b.new.clone()).collect();
        assert_eq!(report.len(), ALWAYS_REPORTED);
        assert!(report.iter().all(|(_, t, v)| *t == 2000 && is_stale_nan(*v)));
    }

    /// A protobuf body: a counter and, if `with_histogram`, a native histogram (schema 0, `n`
    /// observations in each of the buckets (1, 2] and (2, 4]) with an exemplar.
    fn protobuf_body(n: u64, with_histogram: bool) -> Vec<u8> {
        use crate::exposition::protobuf::{
            encode, Counter, Exemplar, Histogram, Metric, MetricFamily, Timestamp, WireType,
        };
        use crate::remote::histogram::BucketSpan;
        use crate::remote::Label;
        let metric = |labels: &[(&str, &str)]| Metric {
            label: labels.iter().map(|(n, v)| Label { name: n.to_string(), value: v.to_string() }).collect(),
            ..Metric::default()
        };
        let mut counter = metric(&[("code", "200")]);
        counter.counter = Some(Counter { value: n as f64, exemplar: None });
        let mut histogram = metric(&[("h", "a")]);
        histogram.histogram = Some(Histogram {
            sample_count: 2 * n,
            sample_sum: n as f64,
            positive_span: vec![BucketSpan { offset: 1, length: 2 }],
            positive_delta: vec![n as i64, 0],
            exemplars: vec![Exemplar {
                label: vec![Label { name: "trace_id".into(), value: "t".into() }],
                value: 0.5,
                timestamp: Some(Timestamp { seconds: 1, nanos: 0 }),
            }],
            ..Histogram::default()
        });
        let family = |name: &str, kind: WireType, metric: Vec<Metric>| MetricFamily {
            name: name.into(),
            help: "Help.".into(),
            r#type: kind as i32,
            metric,
            unit: String::new(),
        };
        let mut families = vec![family("requests_total", WireType::Counter, vec![counter])];
        if with_histogram {
            families.push(family("latency", WireType::Histogram, vec![histogram]));
        }
        encode(&families)
    }

    fn native_target(limits: HistogramLimits) -> TargetIngest {
        let histograms = HistogramOptions { native: true, keep_classic: false, convert_to_nhcb: false };
        with(IngestOptions { honor_timestamps: true, histograms, histogram_limits: limits, ..IngestOptions::default() })
    }

    type Histograms = (Vec<(u32, HistogramSample)>, Vec<(Labels, HistogramSample)>);

    fn histograms(i: &Ingest) -> Histograms {
        let known = i.batches.iter().flat_map(|b| b.known_histograms.clone()).collect();
        let new = i.batches.iter().flat_map(|b| b.new_histograms.clone()).collect();
        (known, new)
    }

    #[test]
    fn protobuf_series_are_cached_from_scrape_to_scrape() {
        let mut ti = native_target(HistogramLimits::default());
        let first = scrape_as(&mut ti, &protobuf_body(1, true), Format::Protobuf, 1000);
        assert_eq!((first.counts.samples, first.counts.new_series), (2, 2), "a histogram counts as one sample");
        let (known, new) = histograms(&first);
        assert!(known.is_empty());
        assert_eq!(new[0].0.to_string(), r#"{__name__="latency", h="a", instance="h:1", job="app"}"#);
        assert_eq!((new[0].1.t, new[0].1.h.count), (1000, 2.0));
        // Its exemplar goes with it, by its place among the new histograms.
        let exemplars: Vec<_> = first.batches.iter().flat_map(|b| b.exemplars.clone()).collect();
        assert_eq!(exemplars.len(), 1);
        assert_eq!((exemplars[0].0, exemplars[0].1.t), (BatchSeries::NewHistogram(0), 1000));
        assert_eq!(metadata_kind(&ti, "latency"), "histogram");
        let second = scrape_as(&mut ti, &protobuf_body(2, true), Format::Protobuf, 2000);
        assert_eq!(second.counts.new_series, 0);
        let (known, new) = histograms(&second);
        assert!(new.is_empty());
        assert_eq!((known.len(), known[0].1.h.count), (1, 4.0));
        assert_eq!(all_known(&second).len(), 1, "the counter");
        // The histogram vanishes: a float staleness marker, as upstream writes.
        let third = scrape_as(&mut ti, &protobuf_body(3, false), Format::Protobuf, 3000);
        let stale: Vec<_> = all_known(&third).into_iter().filter(|s| is_stale_nan(s.2)).collect();
        assert_eq!((stale.len(), stale[0].0, stale[0].1), (1, known[0].0, 3000));
    }

    fn metadata_kind(ti: &TargetIngest, name: &str) -> &'static str {
        ti.metadata().into_iter().find(|(n, _)| n == name).map_or("none", |(_, m)| m.kind)
    }

    #[test]
    fn new_histograms_answer_after_new_floats() {
        let mut ti = native_target(HistogramLimits::default());
        let mut i = ti.ingest(&protobuf_body(1, true), Format::Protobuf, 1000).unwrap();
        ti.add_report(&mut i, 1000, true, 0.1, 0);
        let mut order = Vec::new();
        for (shard, batch, keys) in i.into_shards() {
            assert_eq!(keys.len(), batch.new.len() + batch.new_histograms.len());
            let floats = batch.new.len();
            // The report series are not cached; the histogram's key comes last.
            assert!(keys[..floats].iter().filter(|k| k.is_some()).count() <= 1);
            order.push((shard, keys[floats..].iter().map(|k| k.clone().map(|k| k.key)).collect::<Vec<_>>()));
        }
        let histogram_keys: Vec<_> = order.into_iter().flat_map(|(_, k)| k).collect();
        assert_eq!(histogram_keys, [Some(r#"latency{h="a"}"#.into())]);
    }

    #[test]
    fn forgotten_histogram_series_are_sent_again() {
        let mut ti = native_target(HistogramLimits::default());
        scrape_as(&mut ti, &protobuf_body(1, true), Format::Protobuf, 1000);
        let second = scrape_as(&mut ti, &protobuf_body(2, true), Format::Protobuf, 2000);
        let refused: Vec<(usize, UnknownSamples)> = second
            .batches
            .iter()
            .enumerate()
            .map(|(shard, b)| (shard, UnknownSamples { floats: Vec::new(), histograms: b.known_histograms.clone() }))
            .collect();
        let again = ti.reresolve(&refused);
        let (_, new) = histograms(&again);
        assert_eq!((new.len(), new[0].0.metric_name(), new[0].1.h.count), (1, "latency", 4.0));
        assert_eq!(ti.cached_series(), 1, "only the counter is still cached");
        answer(&mut ti, &again, 50);
        let third = scrape_as(&mut ti, &protobuf_body(3, true), Format::Protobuf, 3000);
        assert_eq!(third.counts.new_series, 0);
        assert_eq!(histograms(&third).0[0].0, 50);
    }

    #[test]
    fn histograms_are_reduced_to_the_bucket_limit_or_fail_the_scrape() {
        let mut ti = native_target(HistogramLimits { bucket_limit: 1, max_schema: 8 });
        let i = scrape_as(&mut ti, &protobuf_body(1, true), Format::Protobuf, 1000);
        // Buckets 1 and 2 of schema 0 are bucket 1 of schema -1: (1, 4].
        let (_, new) = histograms(&i);
        assert_eq!((new[0].1.h.positive_buckets.len(), new[0].1.h.count), (1, 2.0));
        assert_eq!(new[0].1.h.schema, -1);
        let mut custom = with(IngestOptions {
            histograms: HistogramOptions { native: true, keep_classic: false, convert_to_nhcb: true },
            histogram_limits: HistogramLimits { bucket_limit: 1, max_schema: 8 },
            ..IngestOptions::default()
        });
        let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 3\n";
        assert_eq!(custom.ingest(body, Format::Text, 1000).unwrap_err(), IngestError::BucketLimit);
        assert_eq!(IngestError::BucketLimit.to_string(), "histogram bucket limit exceeded");
        // A sample limit error comes first.
        let limits = ScrapeLimits { sample_limit: 1, ..ScrapeLimits::default() };
        let mut both = with(IngestOptions { limits, ..custom.options.clone() });
        assert_eq!(both.ingest(&format!("{body}x 1\n"), Format::Text, 1000).unwrap_err(), IngestError::SampleLimit);
    }

    #[test]
    fn text_classic_histograms_convert_to_custom_buckets() {
        let options = |keep_classic| IngestOptions {
            histograms: HistogramOptions { native: false, keep_classic, convert_to_nhcb: true },
            ..IngestOptions::default()
        };
        let body = "# TYPE h histogram\nh_bucket{x=\"1\",le=\"0.5\"} 1\nh_bucket{x=\"1\",le=\"+Inf\"} 3\nh_sum{x=\"1\"} 2\nh_count{x=\"1\"} 3\nother 7\n";
        let mut ti = with(options(false));
        let i = scrape(&mut ti, body, 1000);
        let (_, new) = histograms(&i);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].0.to_string(), r#"{__name__="h", instance="h:1", job="app", x="1"}"#);
        assert_eq!((new[0].1.h.custom_values.clone(), new[0].1.h.count, new[0].1.h.sum), (vec![0.5], 3.0, 2.0));
        let floats: Vec<String> =
            i.batches.iter().flat_map(|b| b.new.iter().map(|n| n.0.metric_name().to_string())).collect();
        assert_eq!(floats, ["other"]);
        assert_eq!(scrape(&mut ti, body, 2000).counts.new_series, 0, "the converted histogram is cached");
        let mut keep = with(options(true));
        let i = scrape(&mut keep, body, 1000);
        assert_eq!((i.counts.samples, histograms(&i).1.len()), (6, 1));
    }

    #[test]
    fn text_bodies_must_be_utf8() {
        let e = target().ingest(&b"a 1\nb{x=\"\xff\"} 2\n"[..], Format::Text, 1000).unwrap_err();
        assert_eq!(e.to_string(), "text format parsing error in line 2: invalid UTF-8");
    }
}
