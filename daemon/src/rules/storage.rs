//! The shards as a rule group's storage: queries coordinated on a shard and waited for (and
//! logged to the query log with their group), results written to their owner shards. Blocking:
//! it is used from the threads that evaluate rules.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use pyrite_core::labels::Labels;
use pyrite_core::promql::Expr;
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
    /// The file and name of the group whose rules are evaluated, for the query log.
    group: Rc<RefCell<GroupName>>,
}

/// A rule group's file and name.
pub(super) type GroupName = (String, String);

impl ShardStorage {
    pub(super) fn new(shards: Shards, executor: Arc<ServerExecutor>) -> ShardStorage {
        let run = crate::query::instant_queries(shards.clone(), executor);
        let group: Rc<RefCell<GroupName>> = Rc::default();
        let of_group = group.clone();
        let queries: InstantQuery = Rc::new(move |expr: &Expr, t: i64| {
            let started = Instant::now();
            let answer = run(expr, t);
            if crate::query_log::enabled() {
                let (file, name) = &*of_group.borrow();
                crate::query_log::log(crate::query_log::Logged {
                    query: &expr.to_string(),
                    start: t,
                    end: t,
                    step: 0,
                    seconds: started.elapsed().as_secs_f64(),
                    error: answer.as_ref().err().map(ToString::to_string),
                    origin: crate::query_log::Origin::Rule { file, group: name },
                });
            }
            answer
        });
        ShardStorage { shards, queries, group }
    }

    /// The group whose rules are evaluated from now on.
    pub(super) fn evaluating(&self, group: GroupName) {
        *self.group.borrow_mut() = group;
    }

    /// The group whose rules are evaluated.
    pub(super) fn group(&self) -> GroupName {
        self.group.borrow().clone()
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
