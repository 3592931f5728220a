//! A queue's rounds: the records read from every shard's log since the last round, made into
//! the series to send. Each shard's log names series by its head ids; the queue keeps, per id,
//! the labels it sends ([`SentLabels`]: external labels added, `write_relabel_configs`
//! applied, encoded once), learnt from the log's series records and let go at its
//! forgotten-series records, as upstream's WAL watcher keeps `seriesLabels`. An id whose record
//! the queue never read (it resumed after a restart, or started at the log's end) is asked of
//! its shard's head.
//!
//! A round's series are ordered by shard, then by first appearance in that shard's log, so the
//! same stretch of log always makes the same round (see `progress.rs`).

use std::sync::Arc;
use std::time::Duration;

use pyrite_core::labels::Labels;
use pyrite_core::relabel::{relabel, Rule};
use pyrite_core::remote::send::encode_labels;
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

/// One series of a round: its labels and its samples `(t, v)` in log order, which is time
/// order.
pub struct RoundSeries<'a> {
    pub labels: &'a Encoded,
    pub samples: &'a [(i64, f64)],
}

/// A round's series (shard, labels, where their samples are), their samples side by side in
/// one buffer.
pub struct Round {
    series: Vec<(usize, Encoded, std::ops::Range<usize>)>,
    samples: Vec<(i64, f64)>,
}

impl Round {
    /// The `i`th series.
    pub fn get(&self, i: u32) -> RoundSeries<'_> {
        let (_, labels, range) = &self.series[i as usize];
        RoundSeries { labels, samples: &self.samples[range.clone()] }
    }

    /// The series each of `shards` queue shards sends, by label hash, each in round order.
    pub fn split(&self, shards: usize) -> Vec<Vec<u32>> {
        let n = shards.max(1);
        let mut parts = vec![Vec::new(); n];
        for (i, (_, labels, _)) in self.series.iter().enumerate() {
            let hash = xxhash_rust::xxh3::xxh3_64(labels);
            parts[(hash % n as u64) as usize].push(i as u32);
        }
        parts
    }

    /// Samples in the round.
    pub fn samples(&self) -> usize {
        self.samples.len()
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
    /// Samples read, and those dropped (relabelled away, or of unknown series).
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
    pub fn new(skip_before: i64) -> Self {
        Gathering { skip_before, ..Gathering::default() }
    }

    /// Takes one record of shard `shard`'s log.
    pub fn take(&mut self, labels: &mut SentLabels, shard: usize, record: Record) {
        match record {
            Record::Series(series) => {
                for (id, l) in series {
                    labels.learn(shard, id, l);
                }
            }
            Record::Samples(samples) => {
                for (id, t, v) in samples {
                    if t < self.skip_before {
                        continue;
                    }
                    if let Some(&i) = self.index.get(&(shard, id)) {
                        self.flat.push((i, t, v));
                        self.samples += 1;
                        continue;
                    }
                    let known = match labels.shards[shard].get(&id) {
                        Some(None) => {
                            self.dropped += 1;
                            continue;
                        }
                        Some(Some(l)) => Some(l.clone()),
                        None => None,
                    };
                    let i = self.pending.len() as u32;
                    self.index.insert((shard, id), i);
                    self.pending.push(Pending { shard, id, labels: known });
                    self.flat.push((i, t, v));
                    self.samples += 1;
                }
            }
            Record::Forgotten(ids) => {
                for id in ids {
                    labels.shards[shard].remove(&id);
                }
            }
            Record::Tombstones(_) | Record::Chunks(_) | Record::Exemplars(_) => {}
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
        // Stable: each series' samples stay in log order.
        self.flat.sort_by_key(|&(i, _, _)| i);
        let mut round =
            Round { series: Vec::with_capacity(self.pending.len()), samples: Vec::with_capacity(self.flat.len()) };
        for group in self.flat.chunk_by(|a, b| a.0 == b.0) {
            let p = &self.pending[group[0].0 as usize];
            match &p.labels {
                Some(l) => {
                    let start = round.samples.len();
                    round.samples.extend(group.iter().map(|&(_, t, v)| (t, v)));
                    round.series.push((p.shard, l.clone(), start..round.samples.len()));
                }
                None => self.dropped += group.len(),
            }
        }
        // Stable: within a shard, first appearance order stays.
        round.series.sort_by_key(|s| s.0);
        Ok((round, self.dropped))
    }
}
