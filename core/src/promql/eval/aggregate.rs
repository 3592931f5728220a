//! Aggregation operators.
//!
//! `sum`, `avg`, `count`, `min`, `max`, `group`, `stddev` and `stdvar` decompose: each shard folds
//! its series into one [`PartialAggregate`] state per (group, step), states from several shards
//! merge, and the coordinator finalises. Every merge is order-independent — sums and sums of
//! squares are exact (see [`ExactSum`]) — so results do not depend on how series are spread
//! over shards. `topk`, `bottomk`, `limitk`, `limit_ratio`, `quantile` and `count_values` need
//! every series of a group at once and run on the coordinator.

use std::collections::hash_map::{Entry, HashMap};
use std::sync::Arc;

use super::exact_sum::ExactSum;
use super::range_functions::{check_quantile, quantile};
use super::range_histograms::{compensated_mean, compensated_sum, Note};
use super::{nan_last, Annotations, EvalError, Evaluator, StepSeries, Value};
use crate::histogram::{CounterResetHint, FloatHistogram, Span};
use crate::labels::{is_valid_utf8_label_name, Labels, METRIC_NAME};
use crate::promql::ast::{AggregateGrouping, AggregateOp};
use crate::rules::template::go_float;
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

/// The histograms of one group at one step that `sum` or `avg` adds up, each with its series'
/// labels: they are added in the order of [`by_value`] when finished, so that the result is
/// the same however the series are spread over shards (a shard may read no labels at all
/// when the grouping needs none).
type HistogramMembers = Vec<(Arc<Labels>, Arc<FloatHistogram>)>;

/// A total order of histograms by their data, for adding them in an order that does not
/// depend on where they came from: histograms equal in it are equal in every number.
fn by_value(a: &FloatHistogram, b: &FloatHistogram) -> std::cmp::Ordering {
    let floats = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(x, y)| x.total_cmp(y)).find(|o| o.is_ne());
    let spans =
        |x: &[Span], y: &[Span]| x.iter().map(|s| (s.offset, s.length)).cmp(y.iter().map(|s| (s.offset, s.length)));
    a.count
        .total_cmp(&b.count)
        .then(a.sum.total_cmp(&b.sum))
        .then(a.schema.cmp(&b.schema))
        .then(a.zero_threshold.total_cmp(&b.zero_threshold))
        .then(a.zero_count.total_cmp(&b.zero_count))
        .then(a.positive_buckets.len().cmp(&b.positive_buckets.len()))
        .then(a.negative_buckets.len().cmp(&b.negative_buckets.len()))
        .then(a.custom_values.len().cmp(&b.custom_values.len()))
        .then_with(|| floats(&a.positive_buckets, &b.positive_buckets).unwrap_or(std::cmp::Ordering::Equal))
        .then_with(|| floats(&a.negative_buckets, &b.negative_buckets).unwrap_or(std::cmp::Ordering::Equal))
        .then_with(|| floats(&a.custom_values, &b.custom_values).unwrap_or(std::cmp::Ordering::Equal))
        .then_with(|| spans(&a.positive_spans, &b.positive_spans))
        .then_with(|| spans(&a.negative_spans, &b.negative_spans))
        .then((a.counter_reset_hint as u8).cmp(&(b.counter_reset_hint as u8)))
}

/// Per-group, per-step partial states of one decomposable aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct PartialAggregate {
    op: AggregateOp,
    groups: HashMap<Labels, Vec<Option<State>>>,
    /// `sum` and `avg` inputs that are histograms, by group and step; empty without any.
    histograms: HashMap<Labels, Vec<HistogramMembers>>,
    /// Whether an aggregation that takes no histograms (`min`, `max`, `stddev`, `stdvar`) met
    /// one, which upstream reports as an info.
    ignored_histograms: bool,
    /// Where the aggregated expression starts, where annotations point.
    expr_pos: usize,
}

/// The labels of the group a series falls into.
fn group_labels(labels: &Labels, grouping: &AggregateGrouping) -> Labels {
    match grouping {
        AggregateGrouping::By(by) => labels.filtered(|n| by.iter().any(|b| b == n)),
        AggregateGrouping::Without(without) => labels.filtered(|n| n != METRIC_NAME && !without.iter().any(|w| w == n)),
    }
}

impl PartialAggregate {
    pub fn empty(op: AggregateOp, expr_pos: usize) -> Self {
        PartialAggregate { op, groups: HashMap::new(), histograms: HashMap::new(), ignored_histograms: false, expr_pos }
    }

    /// Folds series into per-group states. A histogram counts for `count` and `group` as a
    /// float does, is kept for `sum` and `avg`, and is left out by the others.
    pub fn from_series(
        op: AggregateOp,
        grouping: &AggregateGrouping,
        series: Vec<StepSeries>,
        steps: usize,
        expr_pos: usize,
    ) -> Self {
        let mut out = PartialAggregate::empty(op, expr_pos);
        for s in series {
            let group = group_labels(&s.labels, grouping);
            if !s.histograms.is_empty() {
                out.fold_histograms(&group, &s, steps);
            }
            let states = out.groups.entry(group).or_insert_with(|| vec![None; steps]);
            let histogram_as_float = matches!(op, AggregateOp::Count | AggregateOp::Group);
            for (i, (slot, v)) in states.iter_mut().zip(&s.values).enumerate() {
                let v = match *v {
                    Some(v) => v,
                    None if histogram_as_float && s.histogram(i).is_some() => 0.0,
                    None => continue,
                };
                match slot {
                    Some(state) => state.add(v),
                    None => *slot = Some(State::new(op, v)),
                }
            }
        }
        out.groups.retain(|_, states| states.iter().any(Option::is_some));
        out
    }

    /// The histograms of `s`, a member of `group`, as the aggregation takes them.
    fn fold_histograms(&mut self, group: &Labels, s: &StepSeries, steps: usize) {
        match self.op {
            AggregateOp::Sum | AggregateOp::Avg => {
                let labels = Arc::new(s.labels.clone());
                let members = self.histograms.entry(group.clone()).or_insert_with(|| vec![Vec::new(); steps]);
                for (slot, h) in members.iter_mut().zip(&s.histograms) {
                    if let Some(h) = h {
                        slot.push((labels.clone(), h.clone()));
                    }
                }
            }
            AggregateOp::Min | AggregateOp::Max | AggregateOp::Stddev | AggregateOp::Stdvar => {
                self.ignored_histograms |= s.histograms.iter().any(Option::is_some);
            }
            _ => {}
        }
    }

    /// What merging and finishing it costs: its groups' step slots, and every member histogram
    /// a `sum` or `avg` keeps to add up at the end.
    pub fn slots(&self) -> usize {
        let floats: usize = self.groups.values().map(Vec::len).sum();
        let histograms: usize = self.histograms.values().flatten().map(Vec::len).sum();
        floats.saturating_add(histograms)
    }

    /// Folds in more series of the same aggregation (one more batch of a shard's).
    pub fn add_series(&mut self, grouping: &AggregateGrouping, series: Vec<StepSeries>, steps: usize) {
        self.merge(PartialAggregate::from_series(self.op, grouping, series, steps, self.expr_pos));
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
        for (labels, members) in other.histograms {
            match self.histograms.get_mut(&labels) {
                None => {
                    self.histograms.insert(labels, members);
                }
                Some(mine) => mine.iter_mut().zip(members).for_each(|(a, b)| a.extend(b)),
            }
        }
        self.ignored_histograms |= other.ignored_histograms;
    }

    /// The aggregated vector over `steps` steps, with upstream's annotations about the
    /// histograms it met.
    pub fn finish(mut self, steps: usize, annotations: &mut Annotations) -> Vec<StepSeries> {
        let op = self.op;
        if self.ignored_histograms {
            annotations.info(format!("ignored histogram in {} aggregation", op.name()), self.expr_pos);
        }
        let mut out = Vec::with_capacity(self.groups.len() + self.histograms.len());
        for (labels, states) in std::mem::take(&mut self.groups) {
            let mut values: Vec<Option<f64>> = states.iter().map(|s| s.as_ref().map(|s| s.finish(op))).collect();
            values.resize(steps, None);
            let mut series = StepSeries::floats(labels, values);
            if let Some(members) = self.histograms.remove(&series.labels) {
                self.finish_histograms(&mut series, members, annotations);
            }
            out.push(series);
        }
        for (labels, members) in std::mem::take(&mut self.histograms) {
            let mut series = StepSeries::floats(labels, vec![None; steps]);
            self.finish_histograms(&mut series, members, annotations);
            out.push(series);
        }
        out.retain(StepSeries::has_values);
        out
    }

    /// Adds up each step's histograms into `series` (`avg` divides by their number). A step
    /// with floats too, or with histograms of exponential and custom buckets together, has no
    /// value, with upstream's warning.
    fn finish_histograms(
        &self,
        series: &mut StepSeries,
        members: Vec<HistogramMembers>,
        annotations: &mut Annotations,
    ) {
        let pos = self.expr_pos;
        series.histograms = vec![None; series.values.len()];
        for (i, mut members) in members.into_iter().enumerate() {
            if members.is_empty() {
                continue;
            }
            if series.values[i].take().is_some() {
                annotations.warn("encountered a mix of histograms and floats for aggregation", pos);
                continue;
            }
            members.sort_by(|a, b| by_value(&a.1, &b.1).then_with(|| a.0.cmp(&b.0)));
            let hints: Vec<CounterResetHint> = members.iter().map(|(_, h)| h.counter_reset_hint).collect();
            if hints.contains(&CounterResetHint::CounterReset) && hints.contains(&CounterResetHint::NotCounterReset) {
                Note::Collision("aggregation").record_into(annotations, "", pos);
            }
            let histograms: Vec<&FloatHistogram> = members.iter().map(|(_, h)| &**h).collect();
            let result = match self.op {
                AggregateOp::Avg => compensated_mean(&histograms),
                _ => compensated_sum(&histograms),
            };
            let mut sum = match result {
                Ok((sum, reconciled)) => {
                    if reconciled {
                        Note::Reconciled("aggregation").record_into(annotations, "", pos);
                    }
                    sum
                }
                Err(_) => {
                    // Upstream names the series whose buckets were of the other kind.
                    let custom = histograms[0].uses_custom_buckets();
                    let other = members.iter().find(|(_, h)| h.uses_custom_buckets() != custom);
                    let name = other.map_or("", |(labels, _)| labels.metric_name());
                    Note::MixedSchemas.record_into(annotations, name, pos);
                    continue;
                }
            };
            sum.compact(0);
            series.histograms[i] = Some(Arc::new(sum));
        }
    }
}

/// Upstream's checks of the k of topk, bottomk and limitk, over all its steps: if none is at
/// least 1 (and none NaN) the result is empty and nothing is checked; otherwise a NaN is
/// refused, then a k that an i64 cannot hold.
fn check_k(k: &[f64]) -> Result<(), EvalError> {
    /// The largest float below 2^63, upstream's `maxInt64`.
    const MAX_INT64: f64 = 9_223_372_036_854_774_784.0;
    const MIN_INT64: f64 = i64::MIN as f64;
    if k.iter().any(|k| k.is_nan()) {
        return Err(EvalError::Execution("Parameter value is NaN".into()));
    }
    let max = k.iter().copied().fold(f64::MIN, f64::max);
    let min = k.iter().copied().fold(f64::MAX, f64::min);
    if max < 1.0 {
        return Ok(());
    }
    if min <= MIN_INT64 {
        return Err(EvalError::Execution(format!("Scalar value {} underflows int64", go_float(min, None))));
    }
    if max >= MAX_INT64 {
        return Err(EvalError::Execution(format!("Scalar value {} overflows int64", go_float(max, None))));
    }
    Ok(())
}

/// Evaluates an aggregation on the coordinator (or wherever all input series are at hand).
/// `param` is the parameter's value with where it starts in the query.
pub(super) fn evaluate(
    ev: &Evaluator,
    op: AggregateOp,
    grouping: &AggregateGrouping,
    param: Option<(Value, usize)>,
    (series, expr_pos): (Vec<StepSeries>, usize),
    steps: usize,
) -> Result<Value, EvalError> {
    // Upstream's info for the aggregations that leave histograms out.
    if matches!(op, AggregateOp::Topk | AggregateOp::Bottomk | AggregateOp::Quantile)
        && series.iter().any(|s| s.histograms.iter().any(Option::is_some))
    {
        ev.info(format!("ignored histogram in {} aggregation", op.name()), expr_pos);
    }
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
        check_k(&k)?;
        Ok(k)
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
        _ => {
            let partial = PartialAggregate::from_series(op, grouping, series, steps, expr_pos);
            partial.finish(steps, &mut ev.annotations.borrow_mut())
        }
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

/// Keeps, per step, the values (floats and histograms) of the series whose flag in `keep` is
/// set; drops series left without any value.
fn keep_values(series: Vec<StepSeries>, keep: impl Fn(usize, usize) -> bool) -> Vec<StepSeries> {
    series
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let values = s.values.iter().enumerate().map(|(step, v)| v.filter(|_| keep(i, step))).collect();
            let histograms =
                s.histograms.iter().enumerate().map(|(step, h)| h.clone().filter(|_| keep(i, step))).collect();
            let kept = StepSeries { labels: s.labels, values, histograms };
            kept.has_values().then_some(kept)
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
            if (v.is_some() || s.histogram(step).is_some()) && taken[step] < wanted(k[step], usize::MAX) {
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
    if !is_valid_utf8_label_name(label) {
        return Err(EvalError::Execution(format!("invalid label name {label:?}")));
    }
    let mut out: HashMap<Labels, Vec<Option<f64>>> = HashMap::new();
    for s in &series {
        let group = group_labels(&s.labels, grouping);
        for i in 0..steps {
            // A histogram counts by upstream's printed form of it.
            let value = match (s.values[i], s.histogram(i)) {
                (Some(v), _) => format_value(v),
                (None, Some(h)) => h.go_string(),
                (None, None) => continue,
            };
            let mut pairs: Vec<(String, String)> =
                group.iter().filter(|l| l.name != label).map(|l| (l.name.clone(), l.value.clone())).collect();
            pairs.push((label.to_string(), value));
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

#[cfg(test)]
mod k_tests {
    use super::*;

    fn message(k: &[f64]) -> Option<String> {
        check_k(k).err().map(|e| e.to_string())
    }

    #[test]
    fn k_is_checked_as_upstreams_engine_checks_it() {
        assert_eq!(message(&[1e300]).as_deref(), Some("Scalar value 1e+300 overflows int64"));
        assert_eq!(message(&[f64::INFINITY]).as_deref(), Some("Scalar value +Inf overflows int64"));
        assert_eq!(message(&[2f64.powi(63)]).as_deref(), Some("Scalar value 9.223372036854776e+18 overflows int64"));
        assert_eq!(message(&[f64::NAN]).as_deref(), Some("Parameter value is NaN"));
        assert_eq!(message(&[-1e300, 2.0]).as_deref(), Some("Scalar value -1e+300 underflows int64"));
        assert_eq!(message(&[-1e300]), None, "no k of at least 1: empty, no error");
        assert_eq!(message(&[9_223_372_036_854_773_760.0]), None, "the largest float below upstream's bound");
        assert_eq!(message(&[]), None);
    }
}
