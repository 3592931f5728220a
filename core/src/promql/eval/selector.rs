//! Selectors: where stored samples become step values.
//!
//! Windows are left-open as in Prometheus 3.x: an instant selector at `t` sees the newest
//! sample in `(t - lookback, t]`, a range selector `[r]` sees `(t - r, t]`. A staleness marker
//! ends a series for instant selection and is never part of a range.

use super::{EvalError, EvalParams, RangeVector, StepSeries};
use crate::promql::ast::VectorSelector;
use crate::promql::SeriesSource;
use crate::value::{is_stale_nan, Sample};

/// The window ends of every step for a selector with these modifiers.
fn ends(params: &EvalParams, vs: &VectorSelector) -> Vec<i64> {
    (0..params.steps()).map(|i| params.shifted_time(i, vs.offset, vs.at)).collect()
}

/// The series an instant selector picks from, with the sample it picks at every step.
type Picked = Vec<(crate::labels::Labels, Vec<Option<Sample>>)>;

/// For each matching series, the sample an instant selector picks at every step.
fn pick(source: &dyn SeriesSource, vs: &VectorSelector, params: &EvalParams) -> Result<Picked, EvalError> {
    let ends = ends(params, vs);
    let (Some(&lo), Some(&hi)) = (ends.iter().min(), ends.iter().max()) else { return Ok(Vec::new()) };
    Ok(source
        .select(&vs.matchers, lo - params.lookback, hi)?
        .into_iter()
        .filter_map(|s| {
            let picked: Vec<Option<Sample>> = ends
                .iter()
                .map(|&t| {
                    let newest = s.samples.partition_point(|x| x.t <= t).checked_sub(1).map(|j| s.samples[j])?;
                    (newest.t > t - params.lookback && !is_stale_nan(newest.v)).then_some(newest)
                })
                .collect();
            picked.iter().any(Option::is_some).then_some((s.labels, picked))
        })
        .collect())
}

/// The instant vector of `vs` at every step.
pub(super) fn instant(
    source: &dyn SeriesSource,
    vs: &VectorSelector,
    params: &EvalParams,
) -> Result<Vec<StepSeries>, EvalError> {
    Ok(pick(source, vs, params)?
        .into_iter()
        .map(|(labels, picked)| StepSeries { labels, values: picked.iter().map(|p| p.map(|s| s.v)).collect() })
        .collect())
}

/// The time of the sample picked at every step, in seconds (`timestamp(vs)`, which then drops
/// the name, and `info`'s newest-series rule).
pub(super) fn sample_times(
    source: &dyn SeriesSource,
    vs: &VectorSelector,
    params: &EvalParams,
) -> Result<Vec<StepSeries>, EvalError> {
    Ok(pick(source, vs, params)?
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
            .select(&vs.matchers, lo - range, hi)?
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
