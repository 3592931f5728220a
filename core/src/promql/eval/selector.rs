//! Selectors: where stored samples become step values.
//!
//! Windows are left-open as in Prometheus 3.x: an instant selector at `t` sees the newest
//! sample in `(t - lookback, t]`, a range selector `[r]` sees `(t - r, t]`. A staleness marker
//! ends a series for instant selection and is never part of a range.

use super::{EvalError, EvalParams, Evaluator, RangeVector, StepSeries, STEPS_BETWEEN_CHECKS};
use crate::promql::ast::VectorSelector;
use crate::promql::SeriesSource;
use crate::value::{is_stale_nan, Sample};

/// The window ends of every step for a selector with these modifiers.
fn ends(params: &EvalParams, vs: &VectorSelector) -> Vec<i64> {
    (0..params.steps()).map(|i| params.shifted_time(i, vs.offset, vs.at)).collect()
}

/// The series an instant selector picks from, with the sample it picks at every step.
type Picked = Vec<(crate::labels::Labels, Vec<Option<Sample>>)>;

/// For each matching series, the sample an instant selector picks at every step. Each series
/// is charged a slot per step before its slots are allocated, and the query's interrupt is
/// asked between series.
fn pick(ev: &Evaluator, vs: &VectorSelector) -> Result<Picked, EvalError> {
    let params = ev.params;
    let ends = ends(params, vs);
    let (Some(&lo), Some(&hi)) = (ends.iter().min(), ends.iter().max()) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for s in ev.source()?.select(&vs.matchers, lo.saturating_sub(params.lookback), hi)? {
        ev.charge(ends.len())?;
        let mut picked: Vec<Option<Sample>> = Vec::with_capacity(ends.len());
        for chunk in ends.chunks(STEPS_BETWEEN_CHECKS) {
            ev.interrupt()?;
            picked.extend(chunk.iter().map(|&t| {
                let newest = s.samples.partition_point(|x| x.t <= t).checked_sub(1).map(|j| s.samples[j])?;
                (newest.t > t.saturating_sub(params.lookback) && !is_stale_nan(newest.v)).then_some(newest)
            }));
        }
        if picked.iter().any(Option::is_some) {
            out.push((s.labels, picked));
        }
    }
    Ok(out)
}

/// The instant vector of `vs` at every step.
pub(super) fn instant(ev: &Evaluator, vs: &VectorSelector) -> Result<Vec<StepSeries>, EvalError> {
    Ok(pick(ev, vs)?
        .into_iter()
        .map(|(labels, picked)| StepSeries { labels, values: picked.iter().map(|p| p.map(|s| s.v)).collect() })
        .collect())
}

/// The time of the sample picked at every step, in seconds (`timestamp(vs)`, which then drops
/// the name, and `info`'s newest-series rule).
pub(super) fn sample_times(ev: &Evaluator, vs: &VectorSelector) -> Result<Vec<StepSeries>, EvalError> {
    Ok(pick(ev, vs)?
        .into_iter()
        .map(|(labels, picked)| StepSeries {
            labels,
            values: picked.iter().map(|p| p.map(|s| s.t as f64 / 1000.0)).collect(),
        })
        .collect())
}

/// `vs[range]` for every step: each series' samples (without staleness markers) over the union
/// of all windows.
pub(super) fn range(
    source: &dyn SeriesSource,
    vs: &VectorSelector,
    range: i64,
    params: &EvalParams,
) -> Result<RangeVector, EvalError> {
    let ends = ends(params, vs);
    let series = match (ends.iter().min(), ends.iter().max()) {
        (Some(&lo), Some(&hi)) => source
            .select(&vs.matchers, lo.saturating_sub(range), hi)?
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
