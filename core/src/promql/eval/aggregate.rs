//! Aggregation operators.
//!
//! `sum`, `avg`, `count`, `min`, `max`, `group`, `stddev` and `stdvar` decompose: each shard folds
//! its series into one [`PartialAggregate`] state per (group, step), states from several shards
//! merge, and the coordinator finalises. Every merge is order-independent — sums and sums of
//! squares are exact (see [`ExactSum`]) — so results do not depend on how series are spread
//! over shards. `topk`, `bottomk`, `limitk`, `limit_ratio`, `quantile` and `count_values` need
//! every series of a group at once and run on the coordinator.

use std::collections::hash_map::{Entry, HashMap};

use super::exact_sum::ExactSum;
use super::range_functions::{check_quantile, quantile};
use super::{nan_last, EvalError, Evaluator, StepSeries, Value};
use crate::labels::{is_valid_label_name, Labels, METRIC_NAME};
use crate::promql::ast::{AggregateGrouping, AggregateOp};
use crate::value::format_value;

#[derive(Debug, Clone, PartialEq)]
struct State {
    count: u64,
    sum: ExactSum,
    /// Exact sum of squares; kept only for `stddev`/`stdvar`.
    sum_sq: Option<ExactSum>,
    min: f64,
    max: f64,
}

impl State {
    fn new(op: AggregateOp, v: f64) -> Self {
        let mut sum = ExactSum::default();
        sum.add(v);
        let sum_sq = matches!(op, AggregateOp::Stddev | AggregateOp::Stdvar).then(|| {
            let mut sq = ExactSum::default();
            sq.add_product(v, v);
            sq
        });
        State { count: 1, sum, sum_sq, min: v, max: v }
    }

    /// Folds in one more value (cheaper than merging a one-value state).
    fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum.add(v);
        if let Some(sq) = self.sum_sq.as_mut() {
            sq.add_product(v, v);
        }
        if self.min.is_nan() || v < self.min {
            self.min = v;
        }
        if self.max.is_nan() || v > self.max {
            self.max = v;
        }
    }

    /// Folds in another state. NaN loses to any number in `min`/`max`, as upstream.
    fn merge(&mut self, other: &State) {
        self.count += other.count;
        self.sum.merge(&other.sum);
        if let (Some(a), Some(b)) = (self.sum_sq.as_mut(), other.sum_sq.as_ref()) {
            a.merge(b);
        }
        if self.min.is_nan() || other.min < self.min {
            self.min = other.min;
        }
        if self.max.is_nan() || other.max > self.max {
            self.max = other.max;
        }
    }

    /// Population variance `Σ(v - m)² / n` around the rounded mean `m`, with the sum of squares
    /// expanded and accumulated exactly, so it is accurate and order-independent.
    fn variance(&self) -> f64 {
        if self.min == self.max && self.min.is_finite() {
            return 0.0; // identical finite values: exactly no spread
        }
        let n = self.count as f64;
        let mean = self.sum.mean(n);
        let (Some(mut acc), Some(partials)) = (self.sum_sq.clone(), self.sum.unscaled_partials()) else {
            return f64::NAN;
        };
        if !mean.is_finite() {
            return f64::NAN;
        }
        for &p in partials {
            acc.add_product(-2.0 * mean, p);
        }
        let sq_hi = mean * mean;
        let sq_lo = mean.mul_add(mean, -sq_hi);
        acc.add_product(n, sq_hi);
        acc.add_product(n, sq_lo);
        (acc.value() / n).max(0.0)
    }

    fn finish(&self, op: AggregateOp) -> f64 {
        match op {
            AggregateOp::Sum => self.sum.value(),
            AggregateOp::Avg => self.sum.mean(self.count as f64),
            AggregateOp::Count => self.count as f64,
            AggregateOp::Min => self.min,
            AggregateOp::Max => self.max,
            AggregateOp::Group => 1.0,
            AggregateOp::Stdvar => self.variance(),
            AggregateOp::Stddev => self.variance().sqrt(),
            other => unreachable!("{} is not decomposable", other.name()),
        }
    }
}

/// Per-group, per-step partial states of one decomposable aggregation.
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
                    Some(state) => state.add(v),
                    None => *slot = Some(State::new(op, v)),
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

    /// The aggregated vector over `steps` steps.
    pub fn finish(self, steps: usize) -> Vec<StepSeries> {
        let op = self.op;
        self.groups
            .into_iter()
            .map(|(labels, states)| {
                let mut values: Vec<Option<f64>> = states.iter().map(|s| s.as_ref().map(|s| s.finish(op))).collect();
                values.resize(steps, None);
                StepSeries::floats(labels, values)
            })
            .collect()
    }
}

/// Evaluates an aggregation on the coordinator (or wherever all input series are at hand).
/// `param` is the parameter's value with where it starts in the query.
pub(super) fn evaluate(
    ev: &Evaluator,
    op: AggregateOp,
    grouping: &AggregateGrouping,
    param: Option<(Value, usize)>,
    series: Vec<StepSeries>,
    steps: usize,
) -> Result<Value, EvalError> {
    let (param, pos) = match param {
        Some((v, pos)) => (Some(v), pos),
        None => (None, 0),
    };
    let scalar = |param: Option<Value>| {
        param.ok_or_else(|| EvalError::Execution(format!("{} needs a parameter", op.name())))?.into_scalar()
    };
    // The k of topk, bottomk and limitk.
    let count = |param: Option<Value>| {
        let k = scalar(param)?;
        match k.iter().any(|k| k.is_nan()) {
            true => Err(EvalError::Execution("Parameter value is NaN".into())),
            false => Ok(k),
        }
    };
    Ok(Value::Vector(match op {
        AggregateOp::Topk | AggregateOp::Bottomk => {
            top_k(op == AggregateOp::Topk, &count(param)?, grouping, series, steps)
        }
        AggregateOp::Quantile => {
            let q = scalar(param)?;
            q.iter().for_each(|&q| check_quantile(ev, q, pos));
            per_group(grouping, &series, steps, |members, i| {
                let values: Vec<f64> = members.iter().filter_map(|s| s.values[i]).collect();
                (!values.is_empty()).then(|| quantile(q[i], values))
            })
        }
        AggregateOp::CountValues => {
            let Some(Value::String(label)) = param else {
                return Err(EvalError::Execution("count_values needs a label name".into()));
            };
            count_values(ev, &label, grouping, series, steps)?
        }
        AggregateOp::Limitk => limit_k(&count(param)?, grouping, series, steps),
        AggregateOp::LimitRatio => {
            let r = scalar(param)?;
            if r.iter().any(|r| r.is_nan()) {
                return Err(EvalError::Execution("Ratio value is NaN".into()));
            }
            let r: Vec<f64> = r.into_iter().map(|r| capped_ratio(ev, r, pos)).collect();
            limit_ratio(&r, series)
        }
        _ => PartialAggregate::from_series(op, grouping, series, steps).finish(steps),
    }))
}

/// Applies `f` to each group's members at every step.
fn per_group(
    grouping: &AggregateGrouping,
    series: &[StepSeries],
    steps: usize,
    f: impl Fn(&[&StepSeries], usize) -> Option<f64>,
) -> Vec<StepSeries> {
    let mut groups: HashMap<Labels, Vec<&StepSeries>> = HashMap::new();
    for s in series {
        groups.entry(group_labels(&s.labels, grouping)).or_default().push(s);
    }
    groups
        .into_iter()
        .filter_map(|(labels, members)| {
            let values: Vec<Option<f64>> = (0..steps).map(|i| f(&members, i)).collect();
            values.iter().any(Option::is_some).then_some(StepSeries::floats(labels, values))
        })
        .collect()
}

/// `topk`/`bottomk`: per group and step, the k series with the largest (smallest) values; the
/// selected series keep all their labels. NaN ranks below every number. For a single step the
/// result is ordered by value, as upstream returns it.
fn top_k(
    largest: bool,
    k: &[f64],
    grouping: &AggregateGrouping,
    series: Vec<StepSeries>,
    steps: usize,
) -> Vec<StepSeries> {
    let mut groups: HashMap<Labels, Vec<usize>> = HashMap::new();
    for (i, s) in series.iter().enumerate() {
        groups.entry(group_labels(&s.labels, grouping)).or_default().push(i);
    }
    let mut keep: Vec<Vec<bool>> = vec![vec![false; steps]; series.len()];
    // Best first: largest (topk) or smallest (bottomk), NaN last.
    let better = |a: f64, b: f64| nan_last(a, b, largest);
    for members in groups.values() {
        for (step, &keep_k) in k.iter().enumerate().take(steps) {
            let want = wanted(keep_k, members.len());
            let mut present: Vec<usize> =
                members.iter().copied().filter(|&i| series[i].values[step].is_some()).collect();
            present.sort_by(|&a, &b| {
                better(series[a].values[step].unwrap_or(f64::NAN), series[b].values[step].unwrap_or(f64::NAN))
            });
            for &i in present.iter().take(want) {
                keep[i][step] = true;
            }
        }
    }
    let mut out = keep_values(series, |i, step| keep[i][step]);
    if steps == 1 {
        out.sort_by(|a, b| better(a.values[0].unwrap_or(f64::NAN), b.values[0].unwrap_or(f64::NAN)));
    }
    out
}

/// How many of `n` candidates a `topk`/`bottomk`/`limitk` parameter keeps (below 1: none).
fn wanted(k: f64, n: usize) -> usize {
    if k.is_nan() || k < 1.0 {
        0
    } else {
        k.min(n as f64) as usize
    }
}

/// Keeps, per step, the values of the series whose flag in `keep` is set; drops series left
/// without any value.
fn keep_values(series: Vec<StepSeries>, keep: impl Fn(usize, usize) -> bool) -> Vec<StepSeries> {
    series
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let values: Vec<Option<f64>> =
                s.values.iter().enumerate().map(|(step, v)| v.filter(|_| keep(i, step))).collect();
            values.iter().any(Option::is_some).then_some(StepSeries::floats(s.labels, values))
        })
        .collect()
}

/// `limitk`: per group and step, the first k series that have a value, in label order (so the
/// choice is the same on any number of shards); the series keep all their labels.
fn limit_k(k: &[f64], grouping: &AggregateGrouping, mut series: Vec<StepSeries>, steps: usize) -> Vec<StepSeries> {
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut keep: Vec<Vec<bool>> = vec![vec![false; steps]; series.len()];
    let mut taken: HashMap<Labels, Vec<usize>> = HashMap::new();
    for (i, s) in series.iter().enumerate() {
        let taken = taken.entry(group_labels(&s.labels, grouping)).or_insert_with(|| vec![0; steps]);
        for (step, v) in s.values.iter().enumerate() {
            if v.is_some() && taken[step] < wanted(k[step], usize::MAX) {
                taken[step] += 1;
                keep[i][step] = true;
            }
        }
    }
    keep_values(series, |i, step| keep[i][step])
}

/// A `limit_ratio` parameter outside [-1, 1], capped with upstream's warning.
fn capped_ratio(ev: &Evaluator, r: f64, pos: usize) -> f64 {
    let capped = r.clamp(-1.0, 1.0);
    if capped != r {
        ev.warn(
            format!(
                "ratio value should be between -1 and 1, got {}, capping to {}",
                format_value(r),
                format_value(capped)
            ),
            pos,
        );
    }
    capped
}

/// `limit_ratio(r, v)`: each series is kept or not by where its label hash falls in [0, 1) —
/// below `r` for a positive ratio, at or above `1 + r` for a negative one — so `limit_ratio(r)`
/// and `limit_ratio(r - 1)` are complements. The hash is upstream's (XXH64 of the labels), so
/// Pyrite picks the same series as Prometheus.
fn limit_ratio(r: &[f64], series: Vec<StepSeries>) -> Vec<StepSeries> {
    let offsets: Vec<f64> = series.iter().map(|s| upstream_hash(&s.labels) as f64 / u64::MAX as f64).collect();
    keep_values(series, |i, step| {
        let r = r[step];
        if r >= 0.0 {
            offsets[i] < r
        } else {
            offsets[i] >= 1.0 + r
        }
    })
}

/// Prometheus's `Labels.Hash`: XXH64 over every name and value, each followed by 0xff.
fn upstream_hash(labels: &Labels) -> u64 {
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    for l in labels.iter() {
        h.update(l.name.as_bytes());
        h.update(&[0xff]);
        h.update(l.value.as_bytes());
        h.update(&[0xff]);
    }
    h.digest()
}

/// `count_values("label", v)`: per group and step, how many series have each value. Each
/// output series holds a slot per step, and every distinct value makes one (`vector(time())`
/// makes one per step), so each counts its steps against `--query.max-samples`.
fn count_values(
    ev: &Evaluator,
    label: &str,
    grouping: &AggregateGrouping,
    series: Vec<StepSeries>,
    steps: usize,
) -> Result<Vec<StepSeries>, EvalError> {
    if !is_valid_label_name(label) {
        return Err(EvalError::Execution(format!("invalid label name {label:?}")));
    }
    let mut out: HashMap<Labels, Vec<Option<f64>>> = HashMap::new();
    for s in &series {
        let group = group_labels(&s.labels, grouping);
        for (i, v) in s.values.iter().enumerate() {
            let Some(v) = v else { continue };
            let mut pairs: Vec<(String, String)> =
                group.iter().filter(|l| l.name != label).map(|l| (l.name.clone(), l.value.clone())).collect();
            pairs.push((label.to_string(), format_value(*v)));
            let values = match out.entry(Labels::from_pairs(pairs)) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    ev.charge(steps)?;
                    e.insert(vec![None; steps])
                }
            };
            values[i] = Some(values[i].unwrap_or(0.0) + 1.0);
        }
    }
    Ok(out.into_iter().map(|(labels, values)| StepSeries::floats(labels, values)).collect())
}
