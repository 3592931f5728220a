//! Functions over range vectors (the registry's [`Kind::Range`](crate::promql::functions::Kind)):
//! for every series and step, a value from the samples in the step's window.
//!
//! Semantics follow upstream's `promql/functions.go`, numerics included: a window belongs to one
//! series on one shard, so there is no merge to keep order-independent, and these functions use
//! upstream's compensated (Kahan-Neumaier) sums to give upstream's results to the last bit where
//! it matters (values across hundreds of orders of magnitude).

use super::{EvalError, Evaluator, RangeVector, StepSeries};
use crate::value::Sample;

/// `name(range, scalars...)` at every step. `scalars` are the other arguments, one value per
/// step; `first_arg` is where the first argument starts in the query (for annotations).
pub(super) fn apply(
    ev: &Evaluator,
    name: &str,
    mut range: RangeVector,
    scalars: &[Vec<f64>],
    first_arg: usize,
) -> Result<Vec<StepSeries>, EvalError> {
    let params = ev.params;
    let f = function(name).ok_or_else(|| EvalError::Execution(format!("{name:?} is not a range function")))?;
    if name == "quantile_over_time" {
        scalars[0].iter().for_each(|&q| check_quantile(ev, q, first_arg));
    }
    let keeps_name = matches!(name, "last_over_time" | "first_over_time");
    let steps = range.ends.len();
    // Taken out, so that each series' labels move into its result.
    let series = std::mem::take(&mut range.series);
    let mut out = Vec::with_capacity(series.len());
    for s in series {
        ev.charge_series(steps)?;
        let mut values = Vec::with_capacity(steps);
        for (i, w) in range.windows(&s).enumerate() {
            ev.interrupt(1 + w.len())?;
            let arg = |k: usize| scalars.get(k).map(|v| v[i]).unwrap_or(f64::NAN);
            let end = range.ends[i];
            values.push(if w.is_empty() {
                None
            } else {
                f(&Step { w, start: end.saturating_sub(range.range), end, t: params.ts(i), arg: &arg })?
            });
        }
        if values.iter().any(Option::is_some) {
            if matches!(name, "rate" | "increase") {
                check_counter_name(ev, s.labels.metric_name(), first_arg);
            }
            let labels = if keeps_name { s.labels } else { s.labels.into_without_metric_name() };
            out.push(StepSeries::floats(labels, values));
        }
    }
    Ok(out)
}

/// Upstream's hint that `rate`/`increase` was applied to something named like a gauge.
fn check_counter_name(ev: &Evaluator, name: &str, pos: usize) {
    let counter_like = ["_total", "_sum", "_count", "_bucket"].iter().any(|s| name.ends_with(s));
    if !name.is_empty() && !counter_like {
        ev.info(
            format!("metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {name:?}"),
            pos,
        );
    }
}

/// One step of one series: the samples in its window `(start, end]`, the step's time `t`, and
/// `arg(k)`, the step's value of the k-th scalar argument.
struct Step<'a> {
    w: &'a [Sample],
    start: i64,
    end: i64,
    t: i64,
    arg: &'a dyn Fn(usize) -> f64,
}

/// What a range function computes on one step's window (never empty).
type RangeFn = fn(&Step) -> Result<Option<f64>, EvalError>;

/// The range function called `name`, looked up once per call rather than at every step.
fn function(name: &str) -> Option<RangeFn> {
    let f: RangeFn = match name {
        "rate" => |s| Ok(extrapolated_rate(s.w, s.start, s.end, true, true)),
        "increase" => |s| Ok(extrapolated_rate(s.w, s.start, s.end, true, false)),
        "delta" => |s| Ok(extrapolated_rate(s.w, s.start, s.end, false, false)),
        "irate" => |s| Ok(instant_value(s.w, true)),
        "idelta" => |s| Ok(instant_value(s.w, false)),
        "deriv" => |s| Ok((s.w.len() >= 2).then(|| linear_regression(s.w, s.w[0].t).0)),
        "predict_linear" => |s| {
            Ok((s.w.len() >= 2).then(|| {
                let (slope, intercept) = linear_regression(s.w, s.t);
                intercept + slope * (s.arg)(0)
            }))
        },
        "changes" => {
            |s| {
                Ok(Some(
                    s.w.windows(2).filter(|p| p[1].v != p[0].v && !(p[1].v.is_nan() && p[0].v.is_nan())).count() as f64
                ))
            }
        }
        "resets" => |s| Ok(Some(s.w.windows(2).filter(|p| p[1].v < p[0].v).count() as f64)),
        "avg_over_time" => |s| Ok(Some(average(s.w))),
        "sum_over_time" => |s| Ok(Some(sum(s.w.iter().map(|x| x.v)))),
        "min_over_time" => |s| Ok(Some(s.w.iter().fold(f64::NAN, |m, x| if x.v < m || m.is_nan() { x.v } else { m }))),
        "max_over_time" => |s| Ok(Some(s.w.iter().fold(f64::NAN, |m, x| if x.v > m || m.is_nan() { x.v } else { m }))),
        "count_over_time" => |s| Ok(Some(s.w.len() as f64)),
        "last_over_time" => |s| Ok(Some(s.w[s.w.len() - 1].v)),
        "first_over_time" => |s| Ok(Some(s.w[0].v)),
        "present_over_time" => |_| Ok(Some(1.0)),
        "stdvar_over_time" => |s| Ok(Some(welford_variance(s.w))),
        "stddev_over_time" => |s| Ok(Some(welford_variance(s.w).sqrt())),
        "quantile_over_time" => |s| Ok(Some(quantile((s.arg)(0), s.w.iter().map(|x| x.v).collect()))),
        "mad_over_time" => |s| {
            if s.w.iter().any(|x| x.v.is_nan()) {
                return Ok(Some(f64::NAN));
            }
            let median = quantile(0.5, s.w.iter().map(|x| x.v).collect());
            Ok(Some(quantile(0.5, s.w.iter().map(|x| (x.v - median).abs()).collect())))
        },
        "ts_of_min_over_time" => |s| Ok(extreme_time(s.w, |v, best| v < best)),
        "ts_of_max_over_time" => |s| Ok(extreme_time(s.w, |v, best| v > best)),
        "ts_of_first_over_time" => |s| Ok(Some(s.w[0].t as f64 / 1000.0)),
        "ts_of_last_over_time" => |s| Ok(Some(s.w[s.w.len() - 1].t as f64 / 1000.0)),
        "double_exponential_smoothing" => |s| double_exponential_smoothing(s.w, (s.arg)(0), (s.arg)(1)),
        _ => return None,
    };
    Some(f)
}

/// A sum with Neumaier's compensation, as upstream's `kahanSumInc` keeps it.
#[derive(Debug, Clone, Copy, Default)]
struct Compensated {
    sum: f64,
    c: f64,
}

impl Compensated {
    fn add(self, inc: f64) -> Compensated {
        let t = self.sum + inc;
        let c = if t.is_infinite() {
            0.0
        } else if self.sum.abs() >= inc.abs() {
            self.c + ((self.sum - t) + inc)
        } else {
            self.c + ((inc - t) + self.sum)
        };
        Compensated { sum: t, c }
    }

    fn value(self) -> f64 {
        if self.sum.is_infinite() {
            self.sum
        } else {
            self.sum + self.c
        }
    }
}

/// `avg_over_time`: a compensated sum divided by the count, switching to an incremental mean
/// if the sum would overflow (upstream's algorithm).
fn average(w: &[Sample]) -> f64 {
    let mut sum = Compensated::default();
    let mut mean = Compensated::default();
    let mut incremental = false;
    for (i, s) in w.iter().enumerate() {
        let count = (i + 1) as f64;
        if !incremental {
            let next = sum.add(s.v);
            // The first value always goes into the sum, even ±Inf, so that the count is never 0.
            if count == 1.0 || !next.sum.is_infinite() {
                sum = next;
                continue;
            }
            incremental = true;
            mean = Compensated { sum: sum.sum / (count - 1.0), c: sum.c / (count - 1.0) };
        }
        if mean.sum.is_infinite() {
            if s.v.is_infinite() && (mean.sum > 0.0) == (s.v > 0.0) {
                continue; // Inf of the same sign: the mean is right already
            }
            if s.v.is_finite() {
                continue; // a finite value cannot move an infinite mean
            }
        }
        let corrected = mean.sum + mean.c;
        mean = mean.add(s.v / count - corrected / count);
    }
    if incremental {
        mean.sum + mean.c
    } else {
        (sum.sum + sum.c) / w.len() as f64
    }
}

/// Population variance by Welford's method with compensated sums (upstream's algorithm).
fn welford_variance(w: &[Sample]) -> f64 {
    let (mut mean, mut aux) = (Compensated::default(), Compensated::default());
    for (i, s) in w.iter().enumerate() {
        let delta = s.v - (mean.sum + mean.c);
        mean = mean.add(delta / (i + 1) as f64);
        aux = aux.add(delta * (s.v - (mean.sum + mean.c)));
    }
    (aux.sum + aux.c) / w.len() as f64
}

/// Least-squares sums, compensated like upstream's.
fn sum(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(Compensated::default(), Compensated::add).value()
}

/// Warns, as upstream, about a quantile outside [0, 1].
pub(super) fn check_quantile(ev: &Evaluator, q: f64, pos: usize) {
    if !(0.0..=1.0).contains(&q) {
        ev.warn(format!("quantile value should be between 0 and 1, got {}", crate::value::format_value(q)), pos);
    }
}

/// Upstream's quantile: linear interpolation between the closest ranks; φ outside [0, 1] gives
/// ∓Inf, NaN gives NaN.
pub(super) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // Go's float order: NaN before every number.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0) as usize;
    let upper = ((rank.floor() + 1.0).min(n - 1.0)) as usize;
    let weight = rank - rank.floor();
    values[lower] * (1.0 - weight) + values[upper] * weight
}

/// The time (seconds) of the last sample that beats all earlier ones under `better`; NaN samples
/// only win when nothing else does.
fn extreme_time(w: &[Sample], better: impl Fn(f64, f64) -> bool) -> Option<f64> {
    let mut best = w[0];
    for s in &w[1..] {
        if better(s.v, best.v) || (best.v.is_nan() && !s.v.is_nan()) || (s.v == best.v) {
            best = *s;
        }
    }
    Some(best.t as f64 / 1000.0)
}

/// `rate`/`increase` (counters) and `delta` over the samples of one window `(start, end]`,
/// extrapolated towards the window's edges as Prometheus does.
pub(super) fn extrapolated_rate(w: &[Sample], start: i64, end: i64, is_counter: bool, is_rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (first, last) = (w[0], w[w.len() - 1]);
    let mut result = last.v - first.v;
    if is_counter {
        // A drop means the counter was reset: add back what it had reached.
        let mut prev = first.v;
        for s in &w[1..] {
            if s.v < prev {
                result += prev;
            }
            prev = s.v;
        }
    }
    let sampled_interval = (last.t - first.t) as f64 / 1000.0;
    let average_between_samples = sampled_interval / (w.len() - 1) as f64;
    let threshold = average_between_samples * 1.1;
    let mut to_start = (first.t - start) as f64 / 1000.0;
    let mut to_end = (end - last.t) as f64 / 1000.0;
    if to_start >= threshold {
        to_start = average_between_samples / 2.0;
    }
    if is_counter && result > 0.0 && first.v >= 0.0 {
        // A counter cannot have been below zero: do not extrapolate past that point.
        let to_zero = sampled_interval * (first.v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average_between_samples / 2.0;
    }
    let mut factor = (sampled_interval + to_start + to_end) / sampled_interval;
    if is_rate {
        factor /= (end - start) as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` (per second, counter-aware) or `idelta` over the last two samples.
fn instant_value(w: &[Sample], is_rate: bool) -> Option<f64> {
    let [.., prev, last] = w else { return None };
    let interval = (last.t - prev.t) as f64 / 1000.0;
    if interval == 0.0 {
        return None;
    }
    if !is_rate {
        return Some(last.v - prev.v);
    }
    let increase = if last.v < prev.v { last.v } else { last.v - prev.v };
    Some(increase / interval)
}

/// Least-squares slope and intercept (at `intercept_time`) of the samples.
fn linear_regression(w: &[Sample], intercept_time: i64) -> (f64, f64) {
    let first = w[0].v;
    if w.iter().all(|s| s.v == first) {
        return if first.is_infinite() { (f64::NAN, f64::NAN) } else { (0.0, first) };
    }
    let n = w.len() as f64;
    let x = |s: &Sample| (s.t - intercept_time) as f64 / 1000.0;
    let sum_x = sum(w.iter().map(x));
    let sum_y = sum(w.iter().map(|s| s.v));
    let sum_xy = sum(w.iter().map(|s| x(s) * s.v));
    let sum_x2 = sum(w.iter().map(|s| x(s) * x(s)));
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    (slope, sum_y / n - slope * sum_x / n)
}

fn double_exponential_smoothing(w: &[Sample], sf: f64, tf: f64) -> Result<Option<f64>, EvalError> {
    if !(sf > 0.0 && sf < 1.0) {
        return Err(EvalError::Execution(format!("invalid smoothing factor. Expected: 0 < sf < 1, got: {sf}")));
    }
    if !(tf > 0.0 && tf < 1.0) {
        return Err(EvalError::Execution(format!("invalid trend factor. Expected: 0 < tf < 1, got: {tf}")));
    }
    if w.len() < 2 {
        return Ok(None);
    }
    let (mut s0, mut s1) = (0.0, w[0].v);
    let mut b = w[1].v - w[0].v;
    for (i, sample) in w.iter().enumerate().skip(1) {
        let x = sf * sample.v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Ok(Some(s1))
}

#[cfg(test)]
mod tests {
    use crate::promql::functions::{Kind, FUNCTIONS};

    /// Every function the registry calls a range function has a body here.
    #[test]
    fn every_range_function_of_the_registry_is_implemented() {
        for f in FUNCTIONS.iter().filter(|f| f.kind == Kind::Range) {
            assert!(super::function(f.name).is_some(), "{} has no body", f.name);
        }
    }
}
