//! The shards as a rule group's storage: queries coordinated on a shard and waited for, results
//! written to their owner shards. Blocking: it is used from the threads that evaluate rules.

use std::sync::Arc;

use pyrite_core::labels::Labels;
use pyrite_core::remote::WriteSeries;
use pyrite_core::rules::{InstantQuery, RuleError, RuleStorage};
use pyrite_core::value::{HistogramSample, Sample, SampleValue};

use crate::query::ServerExecutor;
use crate::shards::{ShardGone, Shards};

/// Reads and writes through the shards (blocking on their answers). One per evaluating thread:
/// its query function is not `Send`.
pub(super) struct ShardStorage {
    shards: Shards,
    queries: InstantQuery,
}

impl ShardStorage {
    pub(super) fn new(shards: Shards, executor: Arc<ServerExecutor>) -> ShardStorage {
        let queries = crate::query::instant_queries(shards.clone(), executor);
        ShardStorage { shards, queries }
    }
}

impl RuleStorage for ShardStorage {
    fn queries(&self) -> InstantQuery {
        self.queries.clone()
    }

    fn append(&mut self, t: i64, samples: &[(Labels, SampleValue)]) -> Result<(), RuleError> {
        let series = samples.iter().map(|(labels, value)| {
            let (samples, histograms) = match value {
                SampleValue::Float(v) => (vec![Sample { t, v: *v }], Vec::new()),
                SampleValue::Histogram(h) => (Vec::new(), vec![HistogramSample { t, h: h.clone() }]),
            };
            WriteSeries { labels: labels.clone(), samples, exemplars: Vec::new(), histograms }
        });
        for rx in self.shards.write(series.collect()) {
            let reply = rx.recv().map_err(|_| RuleError::storage(ShardGone))?;
            if let Some(e) = reply.storage_error {
                return Err(RuleError::storage(e));
            }
            if reply.refused() > 0 {
                tracing::warn!(
                    out_of_order = reply.out_of_order + reply.duplicates + reply.too_old,
                    out_of_bounds = reply.out_of_bounds,
                    "rule evaluation results discarded"
                );
            }
        }
        Ok(())
    }
}
