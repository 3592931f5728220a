//! Selectors and range functions: where samples become step values.
//!
//! Windows are left-open as in Prometheus 3.x: an instant selector at `t` sees samples in
//! `(t - lookback, t]`, a range selector `[r]` sees `(t - r, t]`. A staleness marker ends a
//! series for instant selection and is never part of a range.

use super::{selector_range, EvalParams, StepSeries};
use crate::promql::ast::VectorSelector;
use crate::promql::plan::RangeFunction;
use crate::promql::SeriesSource;
use crate::tsdb::head::SeriesSamples;
use crate::value::{is_stale_nan, Sample};

/// Index of the first sample with `t > after`.
fn first_after(samples: &[Sample], after: i64) -> usize {
    samples.partition_point(|s| s.t <= after)
}

/// The instant vector of `vs` at every step.
pub(super) fn instant(source: &dyn SeriesSource, vs: &VectorSelector, params: &EvalParams) -> Vec<StepSeries> {
    let (mint, maxt) = selector_range(params, vs, params.lookback);
    let steps = params.steps();
    source
        .select(&vs.matchers, mint, maxt)
        .into_iter()
        .filter_map(|s| {
            let mut any = false;
            let values: Vec<Option<f64>> = (0..steps)
                .map(|i| {
                    let t = params.selector_time(i, vs.offset, vs.at);
                    let end = first_after(&s.samples, t);
                    let last = end.checked_sub(1).map(|j| s.samples[j])?;
                    let v = (last.t > t - params.lookback && !is_stale_nan(last.v)).then_some(last.v);
                    any |= v.is_some();
                    v
                })
                .collect();
            any.then_some(StepSeries { labels: s.labels, values })
        })
        .collect()
}

/// The raw samples of `vs[range]` at the (single) evaluation time.
pub(super) fn matrix(
    source: &dyn SeriesSource,
    vs: &VectorSelector,
    range: i64,
    params: &EvalParams,
) -> Vec<SeriesSamples> {
    let t = params.selector_time(0, vs.offset, vs.at);
    source
        .select(&vs.matchers, t - range, t)
        .into_iter()
        .filter_map(|mut s| {
            s.samples.retain(|x| x.t > t - range && !is_stale_nan(x.v));
            (!s.samples.is_empty()).then_some(s)
        })
        .collect()
}

/// `func(vs[range])` at every step. The metric name is dropped.
pub(super) fn range_function(
    source: &dyn SeriesSource,
    func: RangeFunction,
    vs: &VectorSelector,
    range: i64,
    params: &EvalParams,
) -> Vec<StepSeries> {
    let (mint, maxt) = selector_range(params, vs, range);
    let steps = params.steps();
    source
        .select(&vs.matchers, mint, maxt)
        .into_iter()
        .filter_map(|mut s| {
            s.samples.retain(|x| !is_stale_nan(x.v));
            let mut any = false;
            let values: Vec<Option<f64>> = (0..steps)
                .map(|i| {
                    let t = params.selector_time(i, vs.offset, vs.at);
                    let window = &s.samples[first_after(&s.samples, t - range)..first_after(&s.samples, t)];
                    let v = match func {
                        RangeFunction::Rate => extrapolated_rate(window, t - range, t, true, true),
                        RangeFunction::Increase => extrapolated_rate(window, t - range, t, true, false),
                        RangeFunction::Irate => instant_rate(window),
                    };
                    any |= v.is_some();
                    v
                })
                .collect();
            any.then(|| StepSeries { labels: s.labels.without_metric_name(), values })
        })
        .collect()
}

/// `rate`/`increase` (and, with `is_counter = false`, `delta`) over the samples of one window
/// `(range_start, range_end]`, extrapolated towards the window's edges as Prometheus does.
pub(crate) fn extrapolated_rate(
    samples: &[Sample],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let mut result = last.v - first.v;
    if is_counter {
        // A drop means the counter was reset: add back what it had reached.
        let mut prev = first.v;
        for s in &samples[1..] {
            if s.v < prev {
                result += prev;
            }
            prev = s.v;
        }
    }
    let sampled_interval = (last.t - first.t) as f64 / 1000.0;
    let average_between_samples = sampled_interval / (samples.len() - 1) as f64;
    let threshold = average_between_samples * 1.1;
    let mut to_start = (first.t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last.t) as f64 / 1000.0;
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
    let factor = (sampled_interval + to_start + to_end) / sampled_interval;
    let mut v = result * factor;
    if is_rate {
        v /= (range_end - range_start) as f64 / 1000.0;
    }
    Some(v)
}

/// `irate`: the per-second rate between the last two samples of the window.
fn instant_rate(samples: &[Sample]) -> Option<f64> {
    let [.., prev, last] = samples else { return None };
    let interval = (last.t - prev.t) as f64 / 1000.0;
    if interval == 0.0 {
        return None;
    }
    let increase = if last.v < prev.v { last.v } else { last.v - prev.v };
    Some(increase / interval)
}
