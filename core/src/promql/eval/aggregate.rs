//! Aggregations as mergeable partial states.
//!
//! `sum`, `avg`, `count`, `min` and `max` decompose: each shard folds its series into one state
//! per (group, step), states from several shards merge, and the coordinator finalises. Every
//! merge is order-independent (sums are exact, see [`ExactSum`]), so the result does not depend
//! on how series are spread over shards. The same code aggregates on the coordinator when the
//! input is not shard-local: one "shard" holds everything.

use std::collections::HashMap;

use super::exact_sum::ExactSum;
use super::StepSeries;
use crate::labels::{Labels, METRIC_NAME};
use crate::promql::ast::{AggregateGrouping, AggregateOp};

#[derive(Debug, Clone, PartialEq)]
struct State {
    count: u64,
    sum: ExactSum,
    min: f64,
    max: f64,
}

impl State {
    fn new(v: f64) -> Self {
        let mut sum = ExactSum::default();
        sum.add(v);
        State { count: 1, sum, min: v, max: v }
    }

    /// Folds in another state. NaN loses to any number in `min`/`max`, as upstream.
    fn merge(&mut self, other: &State) {
        self.count += other.count;
        self.sum.merge(&other.sum);
        if self.min.is_nan() || other.min < self.min {
            self.min = other.min;
        }
        if self.max.is_nan() || other.max > self.max {
            self.max = other.max;
        }
    }
}

/// Per-group, per-step partial states of one aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct PartialAggregate {
    op: AggregateOp,
    groups: HashMap<Labels, Vec<Option<State>>>,
}

/// The labels of the group a series falls into.
fn group_labels(labels: &Labels, grouping: &AggregateGrouping) -> Labels {
    match grouping {
        AggregateGrouping::By(by) => labels.filtered(|n| by.iter().any(|b| b == n)),
        AggregateGrouping::Without(without) => labels.filtered(|n| n != METRIC_NAME && !without.iter().any(|w| w == n)),
    }
}

impl PartialAggregate {
    pub fn empty(op: AggregateOp) -> Self {
        PartialAggregate { op, groups: HashMap::new() }
    }

    /// Folds series into per-group states.
    pub fn from_series(op: AggregateOp, grouping: &AggregateGrouping, series: Vec<StepSeries>, steps: usize) -> Self {
        let mut out = PartialAggregate::empty(op);
        for s in series {
            let states = out.groups.entry(group_labels(&s.labels, grouping)).or_insert_with(|| vec![None; steps]);
            for (slot, v) in states.iter_mut().zip(&s.values) {
                let Some(v) = *v else { continue };
                match slot {
                    Some(state) => state.merge(&State::new(v)),
                    None => *slot = Some(State::new(v)),
                }
            }
        }
        out
    }

    /// Folds in another shard's partial states.
    pub fn merge(&mut self, other: PartialAggregate) {
        for (labels, states) in other.groups {
            match self.groups.get_mut(&labels) {
                None => {
                    self.groups.insert(labels, states);
                }
                Some(mine) => {
                    for (slot, theirs) in mine.iter_mut().zip(states) {
                        match (slot.as_mut(), theirs) {
                            (Some(a), Some(b)) => a.merge(&b),
                            (None, b) => *slot = b,
                            (Some(_), None) => {}
                        }
                    }
                }
            }
        }
    }

    /// The aggregated vector.
    pub fn finish(self) -> Vec<StepSeries> {
        let op = self.op;
        self.groups
            .into_iter()
            .map(|(labels, states)| StepSeries {
                labels,
                values: states
                    .into_iter()
                    .map(|s| {
                        s.map(|s| match op {
                            AggregateOp::Sum => s.sum.value(),
                            AggregateOp::Avg => s.sum.value() / s.count as f64,
                            AggregateOp::Count => s.count as f64,
                            AggregateOp::Min => s.min,
                            AggregateOp::Max => s.max,
                            other => unreachable!("{} is not decomposable; the planner refuses it", other.name()),
                        })
                    })
                    .collect(),
            })
            .collect()
    }
}
