//! A queue's rounds: the records read from every shard's log since the last round, made into
//! the series to send, with their exemplars and native histograms when the queue sends them
//! (`send_exemplars`, `send_native_histograms`).
//! Each shard's log names series by its head ids; the queue keeps, per id, the labels it sends
//! ([`SentLabels`]: external labels added, `write_relabel_configs` applied, encoded once),
//! learnt from the log's series records and let go at its forgotten-series records, as
//! upstream's WAL watcher keeps `seriesLabels`. An id whose record the queue never read (it
//! resumed after a restart, or started at the log's end) is asked of its shard's head.
//!
//! A round's series are ordered by shard, then by first appearance in that shard's log, so the
//! same stretch of log always makes the same round (see `progress.rs`).

use std::sync::Arc;
use std::time::Duration;

use pyrite_core::labels::Labels;
use pyrite_core::relabel::{relabel, Rule};
use pyrite_core::remote::send::{encode_labels, OutExemplar};
use pyrite_core::value::HistogramSample;
use pyrite_tsdb::head::ById;
use pyrite_tsdb::wal::record::Record;

use crate::shards::{Request, Shards};

/// Labels as a request carries them (see `pyrite_core::remote::send`).
pub type Encoded = Arc<[u8]>;

/// The labels a queue sends for each series of each shard's log.
pub struct SentLabels {
    /// Per shard, per head id: the labels, or None if relabelling drops the series.
    shards: Vec<ById<u32, Option<Encoded>>>,
    external: Labels,
    relabel: Vec<Rule>,
}

impl SentLabels {
    pub fn new(shards: usize, external: Labels, relabel: Vec<Rule>) -> Self {
        SentLabels { shards: (0..shards).map(|_| ById::default()).collect(), external, relabel }
    }

    fn learn(&mut self, shard: usize, id: u32, labels: Labels) -> Option<Encoded> {
        let sent =
            relabel(&self.relabel, &labels.with_external(&self.external)).map(|l| Encoded::from(encode_labels(&l)));
        self.shards[shard].insert(id, sent.clone());
        sent
    }
}

/// One series of a round: its labels, its samples `(t, v)` and histograms in log order, which
/// is time order, and its exemplars in log order.
pub struct RoundSeries<'a> {
    pub labels: &'a Encoded,
    pub samples: &'a [(i64, f64)],
    pub histograms: &'a [HistogramSample],
    pub exemplars: &'a [OutExemplar],
}

type Range = std::ops::Range<usize>;

/// A series of a round: its log's shard, its labels, and where its samples, histograms and
/// exemplars are in the round's buffers.
struct RoundEntry {
    shard: usize,
    labels: Encoded,
    samples: Range,
    histograms: Range,
    exemplars: Range,
}

/// A round's series, their samples side by side in one buffer, their histograms and their
/// exemplars in others.
pub struct Round {
    series: Vec<RoundEntry>,
    samples: Vec<(i64, f64)>,
    histograms: Vec<HistogramSample>,
    exemplars: Vec<OutExemplar>,
}

impl Round {
    /// The `i`th series.
    pub fn get(&self, i: u32) -> RoundSeries<'_> {
        let e = &self.series[i as usize];
        RoundSeries {
            labels: &e.labels,
            samples: &self.samples[e.samples.clone()],
            histograms: &self.histograms[e.histograms.clone()],
            exemplars: &self.exemplars[e.exemplars.clone()],
        }
    }

    /// The series each of `shards` queue shards sends, by label hash, each in round order.
    pub fn split(&self, shards: usize) -> Vec<Vec<u32>> {
        let n = shards.max(1);
        let mut parts = vec![Vec::new(); n];
        for (i, RoundEntry { labels, .. }) in self.series.iter().enumerate() {
            let hash = xxhash_rust::xxh3::xxh3_64(labels);
            parts[(hash % n as u64) as usize].push(i as u32);
        }
        parts
    }

    /// Float samples and histograms in the round.
    pub fn counts(&self) -> Counts {
        Counts { floats: self.samples.len(), histograms: self.histograms.len() }
    }
}

/// Float samples and histograms, apart as upstream's queue metrics count them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub floats: usize,
    pub histograms: usize,
}

impl Counts {
    pub fn total(self) -> usize {
        self.floats + self.histograms
    }
}

/// A series met in this round, its labels known or still to be asked of its shard.
struct Pending {
    shard: usize,
    id: u32,
    labels: Option<Encoded>,
}

/// A round being read from the logs.
#[derive(Default)]
pub struct Gathering {
    index: ById<(usize, u32), u32>,
    pending: Vec<Pending>,
    /// Every sample read, by its series' place in `pending`; grouped per series at the end
    /// (one buffer rather than one per series).
    flat: Vec<(u32, i64, f64)>,
    /// The same for histograms.
    flat_histograms: Vec<(u32, HistogramSample)>,
    /// The same for exemplars, read only if they are sent.
    flat_exemplars: Vec<(u32, OutExemplar)>,
    send_exemplars: bool,
    /// Whether native histograms are sent (`send_native_histograms`, off by default as
    /// upstream's): if not, they are skipped as they are read.
    send_histograms: bool,
    /// Samples (histograms included) read, and those dropped (relabelled away, or of unknown
    /// series).
    pub samples: usize,
    pub dropped: usize,
    /// Samples before this (ms) are skipped: a queue that starts afresh sends only what is
    /// appended from its start on, as upstream's watcher.
    pub skip_before: i64,
}

/// How long a shard may take to name the series the queue does not know.
const ASK_TIMEOUT: Duration = Duration::from_secs(30);

/// A shard did not answer for its series' labels (it is shutting down): the round is not sent.
#[derive(Debug, thiserror::Error)]
#[error("shard {0} did not name its series")]
pub struct Unanswered(usize);

impl Gathering {
    pub fn new(skip_before: i64, send_exemplars: bool, send_histograms: bool) -> Self {
        Gathering { skip_before, send_exemplars, send_histograms, ..Gathering::default() }
    }

    /// Series `id` of shard `shard`'s place in `pending`, added if new; None if relabelling
    /// drops it.
    fn slot(&mut self, labels: &SentLabels, shard: usize, id: u32) -> Option<u32> {
        if let Some(&i) = self.index.get(&(shard, id)) {
            return Some(i);
        }
        let known = match labels.shards[shard].get(&id) {
            Some(None) => return None,
            Some(Some(l)) => Some(l.clone()),
            None => None,
        };
        let i = self.pending.len() as u32;
        self.index.insert((shard, id), i);
        self.pending.push(Pending { shard, id, labels: known });
        Some(i)
    }

    /// Takes one record of shard `shard`'s log.
    pub fn take(&mut self, labels: &mut SentLabels, shard: usize, record: Record) {
        match record {
            Record::Series(series) => {
                for (id, l) in series {
                    labels.learn(shard, id, l);
                }
            }
            // Out-of-order samples are sent too, as upstream's watcher reads them from its log.
            Record::Samples(samples) | Record::OutOfOrder(samples) => {
                for (id, t, v) in samples {
                    if t < self.skip_before {
                        continue;
                    }
                    match self.slot(labels, shard, id) {
                        Some(i) => {
                            self.flat.push((i, t, v));
                            self.samples += 1;
                        }
                        None => self.dropped += 1,
                    }
                }
            }
            Record::Histograms(histograms) | Record::OutOfOrderHistograms(histograms) if self.send_histograms => {
                for (id, t, h) in histograms {
                    if t < self.skip_before {
                        continue;
                    }
                    match self.slot(labels, shard, id) {
                        Some(i) => {
                            self.flat_histograms.push((i, HistogramSample { t, h: Arc::new(h) }));
                            self.samples += 1;
                        }
                        None => self.dropped += 1,
                    }
                }
            }
            // Not skipped by time, as upstream's watcher: an exemplar may carry a time of its
            // own from before it was logged.
            Record::Exemplars(exemplars) if self.send_exemplars => {
                for (id, e) in exemplars {
                    if let Some(i) = self.slot(labels, shard, id) {
                        let sent = OutExemplar { labels: encode_labels(&e.labels), value: e.value, t: e.t };
                        self.flat_exemplars.push((i, sent));
                    }
                }
            }
            Record::Forgotten(ids) => {
                for id in ids {
                    labels.shards[shard].remove(&id);
                }
            }
            Record::Exemplars(_)
            | Record::Histograms(_)
            | Record::OutOfOrderHistograms(_)
            | Record::Tombstones(_)
            | Record::Chunks(_)
            | Record::HistogramChunks(_)
            | Record::OutOfOrderWritten(_) => {}
        }
    }

    /// The round's series: those whose labels the queue did not know are asked of their
    /// shards; those no shard knows are dropped (counted in `dropped`).
    pub fn finish(mut self, labels: &mut SentLabels, shards: &Shards) -> Result<(Round, usize), Unanswered> {
        let mut unknown: Vec<Vec<usize>> = vec![Vec::new(); labels.shards.len()];
        for (i, p) in self.pending.iter().enumerate() {
            if p.labels.is_none() {
                unknown[p.shard].push(i);
            }
        }
        for (shard, which) in unknown.into_iter().enumerate().filter(|(_, w)| !w.is_empty()) {
            let ids = which.iter().map(|&i| self.pending[i].id).collect();
            let answer = shards.ask(shard, |reply| Request::SeriesLabels { ids, reply });
            let named = answer.recv_timeout(ASK_TIMEOUT).map_err(|_| Unanswered(shard))?;
            for (&i, found) in which.iter().zip(named) {
                let p = &mut self.pending[i];
                p.labels = found.and_then(|l| labels.learn(shard, p.id, l));
            }
        }
        // Stable: each series' samples and exemplars stay in log order.
        self.flat.sort_by_key(|&(i, _, _)| i);
        self.flat_histograms.sort_by_key(|(i, _)| *i);
        self.flat_exemplars.sort_by_key(|(i, _)| *i);
        let mut round = Round {
            series: Vec::with_capacity(self.pending.len()),
            samples: Vec::with_capacity(self.flat.len()),
            histograms: Vec::with_capacity(self.flat_histograms.len()),
            exemplars: Vec::with_capacity(self.flat_exemplars.len()),
        };
        let mut samples = self.flat.iter().peekable();
        let mut histograms = self.flat_histograms.into_iter().peekable();
        let mut exemplars = self.flat_exemplars.into_iter().peekable();
        for (i, p) in self.pending.iter().enumerate() {
            let from = (round.samples.len(), round.histograms.len(), round.exemplars.len());
            while let Some(&(_, t, v)) = samples.next_if(|s| s.0 as usize == i) {
                round.samples.push((t, v));
            }
            while let Some((_, h)) = histograms.next_if(|h| h.0 as usize == i) {
                round.histograms.push(h);
            }
            while let Some((_, e)) = exemplars.next_if(|e| e.0 as usize == i) {
                round.exemplars.push(e);
            }
            match &p.labels {
                Some(l) => round.series.push(RoundEntry {
                    shard: p.shard,
                    labels: l.clone(),
                    samples: from.0..round.samples.len(),
                    histograms: from.1..round.histograms.len(),
                    exemplars: from.2..round.exemplars.len(),
                }),
                None => {
                    self.dropped += round.samples.len() - from.0 + round.histograms.len() - from.1;
                    round.samples.truncate(from.0);
                    round.histograms.truncate(from.1);
                    round.exemplars.truncate(from.2);
                }
            }
        }
        // Stable: within a shard, first appearance order stays.
        round.series.sort_by_key(|s| s.shard);
        Ok((round, self.dropped))
    }
}
