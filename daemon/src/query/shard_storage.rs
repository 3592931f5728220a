//! One shard's storage as a query worker reads it: each `select` asks the shard
//! (`Request::Select`) and blocks the worker's thread until it answers, asking the query's
//! interrupt every [`POLL`] meanwhile, so that a query past its deadline or whose client went
//! away stops waiting at once; the shard notices too and stops reading. The remote stores'
//! series this shard owns ([`RemoteSelects`]) are merged in.

use std::sync::Arc;
use std::time::Duration;

use pyrite_core::labels::{Matcher, Projection};
use pyrite_core::promql::{EvalError, Limits, SeriesSource};
use pyrite_core::value::SeriesSamples;
use pyrite_tsdb::querier::merge_parts;

use super::remote::{merge_local, RemoteSelects};
use crate::shards::{Request, ShardGone, Shards};

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

    /// Reads the matching series of the shard (only the newest sample of each in each part
    /// with `newest`) and of the remote stores. The shard builds only the labels asked
    /// for unless remote stores' series are merged in, which is by label set.
    fn read(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        newest: bool,
        labels: &Projection,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        let interrupt = self.limits.interrupt();
        let labels = if self.remote.configured() { Projection::All } else { labels.clone() };
        let answer = self.shards.ask(self.shard, |reply| Request::Select {
            matchers: matchers.to_vec(),
            mint,
            maxt,
            newest,
            labels,
            // An instant query's range selector loads all it reads; a range query's steps
            // each load a window of it.
            max_samples: self.limits.left().saturating_mul(self.steps),
            interrupt: interrupt.clone(),
            reply,
        });
        // Asked while the shard reads.
        let remote = self.remote.select(self.shard, matchers, mint, maxt);
        loop {
            match answer.recv_timeout(POLL) {
                // Merged here, off the shard's thread.
                Ok(parts) => return parts.map(|parts| merge_local(merge_parts(parts), remote)),
                Err(flume::RecvTimeoutError::Timeout) => interrupt.check()?,
                Err(flume::RecvTimeoutError::Disconnected) => return Err(EvalError::Execution(ShardGone.to_string())),
            }
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
        self.read(matchers, mint, maxt, false, labels)
    }

    fn select_newest(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        labels: &Projection,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        self.read(matchers, mint, maxt, true, labels)
    }
}
