//! One shard's storage as a query worker reads it: each `select` asks the shard
//! (`Request::Select`) and blocks the worker's thread until it answers, asking the query's
//! interrupt every [`POLL`] meanwhile, so that a query past its deadline or whose client went
//! away stops waiting at once; the shard notices too and stops reading. A batched fragment's
//! read (`select_batches`) is taken a batch at a time as the shard streams it. The remote
//! stores' series this shard owns ([`RemoteSelects`]) are merged in.

use std::sync::Arc;
use std::time::Duration;

use pyrite_core::labels::{Matcher, Projection};
use pyrite_core::promql::eval::Chunked;
use pyrite_core::promql::{EvalError, Limits, SeriesBatches, SeriesSource};
use pyrite_core::value::SeriesSamples;

use super::remote::{merge_local, RemoteSelects};
use crate::shards::{Request, SelectAnswer, ShardGone, Shards};

/// How often a worker waiting for its shard asks the interrupt.
const POLL: Duration = Duration::from_millis(10);

/// Shard `shard`'s blocks and head, read for one query.
pub struct ShardStorage {
    shards: Shards,
    shard: usize,
    /// The query's: its interrupt, and what it may still load.
    limits: Limits,
    /// The most steps the query's fragments evaluate at ([`pyrite_core::promql::Plan::most_steps`]).
    steps: usize,
    remote: Arc<RemoteSelects>,
}

impl ShardStorage {
    pub fn new(shards: Shards, shard: usize, limits: Limits, steps: usize, remote: Arc<RemoteSelects>) -> Self {
        ShardStorage { shards, shard, limits, steps, remote }
    }

    /// Asks the shard for the matching series (only each one's newest sample in the range with
    /// `newest`), in batches of `batch` series if it reads its head alone.
    fn ask(
        &self,
        matchers: &[Matcher],
        (mint, maxt): (i64, i64),
        newest: bool,
        labels: Projection,
        batch: usize,
    ) -> Answers {
        self.shards.ask(self.shard, |reply| Request::Select {
            matchers: matchers.to_vec(),
            mint,
            maxt,
            newest,
            labels,
            // An instant query's range selector loads all it reads; a range query's steps
            // each load a window of it.
            max_samples: self.limits.left().saturating_mul(self.steps),
            batch,
            interrupt: self.limits.interrupt().clone(),
            reply,
        })
    }

    /// The shard's next answer, waited for while asking the query's interrupt.
    fn receive(&self, answers: &Answers) -> Result<SelectAnswer, EvalError> {
        loop {
            match answers.recv_timeout(POLL) {
                Ok(answer) => return answer,
                Err(flume::RecvTimeoutError::Timeout) => self.limits.interrupt().check()?,
                Err(flume::RecvTimeoutError::Disconnected) => return Err(EvalError::Execution(ShardGone.to_string())),
            }
        }
    }

    /// Reads the matching series of the shard and of the remote stores, whole. The shard builds
    /// only the labels asked for unless remote stores' series are merged in, which is by label
    /// set.
    fn read(
        &self,
        matchers: &[Matcher],
        range: (i64, i64),
        newest: bool,
        labels: &Projection,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        let labels = if self.remote.configured() { Projection::All } else { labels.clone() };
        let answers = self.ask(matchers, range, newest, labels, usize::MAX);
        // Asked while the shard reads.
        let remote = self.remote.select(self.shard, matchers, range.0, range.1);
        // Merged here, off the shard's thread.
        Ok(merge_local(self.receive(&answers)?.into_series(), remote))
    }
}

/// The receiving end of a [`Request::Select`].
type Answers = flume::Receiver<Result<SelectAnswer, EvalError>>;

/// A read the shard streams in batches (or answers whole, cut here).
struct ShardBatches<'a> {
    storage: &'a ShardStorage,
    answers: Answers,
    size: usize,
    /// A whole answer, handed out in batches.
    whole: Option<Chunked>,
}

impl SeriesBatches for ShardBatches<'_> {
    fn next_batch(&mut self) -> Result<(Vec<SeriesSamples>, bool), EvalError> {
        if let Some(whole) = &mut self.whole {
            return whole.next_batch();
        }
        match self.storage.receive(&self.answers)? {
            SelectAnswer::Batch { series, last } => Ok((series, last)),
            whole => self.whole.insert(Chunked::new(whole.into_series(), self.size)).next_batch(),
        }
    }
}

impl SeriesSource for ShardStorage {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        labels: &Projection,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        self.read(matchers, (mint, maxt), false, labels)
    }

    fn select_newest(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        labels: &Projection,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        self.read(matchers, (mint, maxt), true, labels)
    }

    /// Streamed from the shard, unless remote stores' series are merged in (by label set,
    /// which needs the read whole).
    fn select_batches<'a>(
        &'a self,
        matchers: &[Matcher],
        range: (i64, i64),
        newest: bool,
        labels: &Projection,
        size: usize,
    ) -> Result<Box<dyn SeriesBatches + 'a>, EvalError> {
        if self.remote.configured() {
            return Ok(Box::new(Chunked::new(self.read(matchers, range, newest, labels)?, size)));
        }
        let answers = self.ask(matchers, range, newest, labels.clone(), size);
        Ok(Box::new(ShardBatches { storage: self, answers, size, whole: None }))
    }
}
