//! Selectors: where stored samples become step values.
//!
//! Windows are left-open as in Prometheus 3.x: an instant selector at `t` sees the newest
//! sample in `(t - lookback, t]`, a range selector `[r]` sees `(t - r, t]`. A staleness marker
//! ends a series for instant selection and is never part of a range.

use super::{EvalError, EvalParams, Evaluator, RangeVector, StepSeries};
use crate::labels::Projection;
use crate::promql::ast::VectorSelector;
use crate::promql::SeriesSource;
use crate::value::{is_stale_nan, Sample};

/// The window ends of every step for a selector with these modifiers.
fn ends(params: &EvalParams, vs: &VectorSelector) -> Vec<i64> {
    (0..params.steps()).map(|i| params.shifted_time(i, vs.offset, vs.at)).collect()
}

/// For each matching series, `value` of the sample an instant selector picks at every step.
/// Each series is charged a slot per step before its slots are allocated, and the query's
/// interrupt is asked every [`super::STEPS_BETWEEN_CHECKS`] steps. The window ends are worked
/// out step by step, not gathered first: a subquery's frame can have tens of millions of steps.
fn pick(ev: &Evaluator, vs: &VectorSelector, value: impl Fn(Sample) -> f64) -> Result<Vec<StepSeries>, EvalError> {
    let params = ev.params;
    let steps = params.steps();
    let end = |i: usize| params.shifted_time(i, vs.offset, vs.at);
    if steps == 0 {
        return Ok(Vec::new());
    }
    // Window ends grow with the step (or stay put under `@`). When every step ends at one
    // time, only the newest sample up to it counts.
    let (lo, hi) = (end(0), end(steps - 1));
    let source = ev.source()?;
    let series = if lo == hi {
        source.select_newest(&vs.matchers, lo.saturating_sub(params.lookback), hi, ev.labels)?
    } else {
        source.select(&vs.matchers, lo.saturating_sub(params.lookback), hi, ev.labels)?
    };
    let mut out = Vec::new();
    for s in series {
        ev.charge(steps)?;
        let mut values = Vec::with_capacity(steps);
        ev.each_step(steps, |i| {
            let t = end(i);
            let newest = s.samples.partition_point(|x| x.t <= t).checked_sub(1).map(|j| s.samples[j]);
            let fresh = newest.filter(|n| n.t > t.saturating_sub(params.lookback) && !is_stale_nan(n.v));
            values.push(fresh.map(&value));
        })?;
        if values.iter().any(Option::is_some) {
            out.push(StepSeries { labels: s.labels, values });
        }
    }
    Ok(out)
}

/// The instant vector of `vs` at every step.
pub(super) fn instant(ev: &Evaluator, vs: &VectorSelector) -> Result<Vec<StepSeries>, EvalError> {
    pick(ev, vs, |s| s.v)
}

/// The time of the sample picked at every step, in seconds (`timestamp(vs)`, which then drops
/// the name, and `info`'s newest-series rule).
pub(super) fn sample_times(ev: &Evaluator, vs: &VectorSelector) -> Result<Vec<StepSeries>, EvalError> {
    pick(ev, vs, |s| s.t as f64 / 1000.0)
}

/// `vs[range]` for every step: each series' samples (without staleness markers) over the union
/// of all windows.
pub(super) fn range(
    source: &dyn SeriesSource,
    vs: &VectorSelector,
    range: i64,
    params: &EvalParams,
    labels: &Projection,
) -> Result<RangeVector, EvalError> {
    let ends = ends(params, vs);
    let series = match (ends.iter().min(), ends.iter().max()) {
        (Some(&lo), Some(&hi)) => source
            .select(&vs.matchers, lo.saturating_sub(range), hi, labels)?
            .into_iter()
            .filter_map(|mut s| {
                s.samples.retain(|x| !is_stale_nan(x.v));
                (!s.samples.is_empty()).then_some(s)
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(RangeVector { series, range, ends })
}
