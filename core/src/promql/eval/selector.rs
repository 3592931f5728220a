//! Selectors: where stored samples become step values.
//!
//! Windows are left-open as in Prometheus 3.x: an instant selector at `t` sees the newest
//! sample in `(t - lookback, t]`, a range selector `[r]` sees `(t - r, t]`. A staleness marker
//! ends a series for instant selection and is never part of a range. `anchored` and `smoothed`
//! selectors see a lookback delta further (see [`super::extended`]), staleness markers left
//! out.

use super::extended;
use super::range_histograms::Note;
use super::{EvalError, EvalParams, Evaluator, RangeVector, Reach, StepSeries};
use crate::labels::Projection;
use crate::promql::ast::{Extension, VectorSelector};
use crate::promql::SeriesSource;
use std::sync::Arc;

use crate::histogram::{CounterResetHint, FloatHistogram};
use crate::value::{histogram_samples, is_stale_nan, HistogramSample, SeriesSamples};

/// The window ends of every step for a selector with these modifiers.
fn ends(params: &EvalParams, vs: &VectorSelector) -> Vec<i64> {
    (0..params.steps()).map(|i| params.shifted_time(i, vs.offset, vs.at)).collect()
}

/// `histograms` as `vs` reads them: unless it reads statistics only, a counter reset has no
/// hint, as the first sample of a new chunk reads back upstream (see
/// [`crate::promql::stats_decoding`]).
fn as_read(vs: &VectorSelector, histograms: &mut [HistogramSample]) {
    if vs.stats_only {
        return;
    }
    for x in histograms.iter_mut().filter(|x| x.h.counter_reset_hint == CounterResetHint::CounterReset) {
        let mut h = FloatHistogram::clone(&x.h);
        h.counter_reset_hint = CounterResetHint::Unknown;
        x.h = Arc::new(h);
    }
}

/// What an instant selector yields at a step: the sample's value, or its time.
#[derive(Clone, Copy, PartialEq)]
enum Yield {
    Values,
    Times,
}

/// For each matching series, the sample an instant selector picks at every step (a float or a
/// histogram, whichever is newer), or its time in seconds; for a smoothed selector's values,
/// the value interpolated at the step. Each series is charged a slot per step before its slots
/// are allocated, and the query's interrupt is asked every [`super::STEPS_BETWEEN_CHECKS`]
/// steps. The window ends are worked out step by step, not gathered first: a subquery's frame
/// can have tens of millions of steps.
fn pick(ev: &Evaluator, vs: &VectorSelector, yields: Yield) -> Result<Vec<StepSeries>, EvalError> {
    let params = ev.params;
    let steps = params.steps();
    let end = |i: usize| params.shifted_time(i, vs.offset, vs.at);
    if steps == 0 {
        return Ok(Vec::new());
    }
    let smoothed = yields == Yield::Values && vs.extension == Some(Extension::Smoothed);
    // Window ends grow with the step (or stay put under `@`). When every step ends at one
    // time, only the newest sample up to it counts, unless smoothing looks past it.
    let (lo, hi) = (end(0), end(steps - 1));
    let source = ev.source()?;
    let series = if smoothed {
        let (mint, maxt) = (lo.saturating_sub(params.lookback), hi.saturating_add(params.lookback));
        let mut series = source.select(&vs.matchers, mint, maxt, ev.labels)?;
        series.iter_mut().for_each(without_staleness_markers);
        series
    } else if lo == hi {
        source.select_newest(&vs.matchers, lo.saturating_sub(params.lookback), hi, ev.labels)?
    } else {
        source.select(&vs.matchers, lo.saturating_sub(params.lookback), hi, ev.labels)?
    };
    let mut out = Vec::new();
    for mut s in series {
        as_read(vs, &mut s.histograms);
        ev.charge(steps)?;
        let mut values = Vec::with_capacity(steps);
        let keep_histograms = !s.histograms.is_empty();
        let mut histograms = Vec::new();
        if keep_histograms && yields == Yield::Values {
            // A step's histogram counts as its size, of which `charge(steps)` was one sample.
            let most = s.histograms.iter().map(|x| histogram_samples(&x.h)).max().unwrap_or(0);
            ev.charge(steps.saturating_mul(most.saturating_sub(1)))?;
            histograms.reserve(steps);
        }
        let mut notes = Vec::new();
        ev.each_step(steps, |i| {
            let (value, histogram) = if smoothed {
                interpolated(&s, end(i), params.lookback, &mut notes)
            } else {
                newest(&s, end(i), params.lookback, yields)
            };
            values.push(value);
            if keep_histograms {
                histograms.push(histogram);
            }
        })?;
        notes.into_iter().for_each(|n| n.record(ev, s.labels.metric_name(), vs.pos));
        let series = StepSeries { labels: s.labels, values, histograms };
        if series.has_values() {
            out.push(series);
        }
    }
    Ok(out)
}

/// What an instant selector yields at `t` from `s`: its newest sample within the lookback
/// delta unless that is a staleness marker, or the sample's time (with the histogram too if
/// it is one, see [`sample_times`]).
fn newest(s: &SeriesSamples, t: i64, lookback: i64, yields: Yield) -> (Option<f64>, Option<Arc<FloatHistogram>>) {
    let newest_float = s.samples.partition_point(|x| x.t <= t).checked_sub(1).map(|j| s.samples[j]);
    let newest_histogram = s.histograms.partition_point(|x| x.t <= t).checked_sub(1).map(|j| &s.histograms[j]);
    let fresh = |at: i64| at > t.saturating_sub(lookback);
    match (newest_float, newest_histogram) {
        (float, Some(h)) if float.is_none_or(|f| f.t < h.t) => match fresh(h.t) && !is_stale_nan(h.h.sum) {
            true if yields == Yield::Times => (Some(h.t as f64 / 1000.0), Some(h.h.clone())),
            true => (None, Some(h.h.clone())),
            false => (None, None),
        },
        (Some(f), _) if fresh(f.t) && !is_stale_nan(f.v) => {
            (Some(if yields == Yield::Times { f.t as f64 / 1000.0 } else { f.v }), None)
        }
        _ => (None, None),
    }
}

/// A smoothed selector's value at `t` from the samples of `s` within a lookback delta of it.
fn interpolated(
    s: &SeriesSamples,
    t: i64,
    lookback: i64,
    notes: &mut Vec<Note>,
) -> (Option<f64>, Option<Arc<FloatHistogram>>) {
    let (after, up_to) = (t.saturating_sub(lookback), t.saturating_add(lookback));
    let floats = &s.samples[s.samples.partition_point(|x| x.t <= after)..s.samples.partition_point(|x| x.t <= up_to)];
    let histograms =
        &s.histograms[s.histograms.partition_point(|x| x.t <= after)..s.histograms.partition_point(|x| x.t <= up_to)];
    extended::smoothed_at(floats, histograms, t, notes)
}

/// Leaves out the staleness markers of `s`, which no range reads.
fn without_staleness_markers(s: &mut SeriesSamples) {
    s.samples.retain(|x| !is_stale_nan(x.v));
    s.histograms.retain(|x| !is_stale_nan(x.h.sum));
}

/// The instant vector of `vs` at every step.
pub(super) fn instant(ev: &Evaluator, vs: &VectorSelector) -> Result<Vec<StepSeries>, EvalError> {
    pick(ev, vs, Yield::Values)
}

/// The time of the sample picked at every step, in seconds (`timestamp(vs)`, which then drops
/// the name, and `info`'s newest-series rule); where that sample is a histogram, the step's
/// histogram is set too (`info` refuses those).
pub(super) fn sample_times(ev: &Evaluator, vs: &VectorSelector) -> Result<Vec<StepSeries>, EvalError> {
    pick(ev, vs, Yield::Times)
}

/// `vs[range]` for every step: each series' samples (without staleness markers) over the union
/// of all windows, and with `anchored` or `smoothed` over what the steps see past them.
pub(super) fn range(
    source: &dyn SeriesSource,
    vs: &VectorSelector,
    range: i64,
    params: &EvalParams,
    labels: &Projection,
) -> Result<RangeVector, EvalError> {
    let reach = vs.extension.map(|extension| Reach { extension, lookback: params.lookback });
    let mut vector = RangeVector { series: Vec::new(), range, ends: ends(params, vs), reach };
    if let (Some(&lo), Some(&hi)) = (vector.ends.iter().min(), vector.ends.iter().max()) {
        let (mint, maxt) = (vector.bounds(lo).0, vector.bounds(hi).1);
        vector.series = source
            .select(&vs.matchers, mint, maxt, labels)?
            .into_iter()
            .filter_map(|mut s| {
                without_staleness_markers(&mut s);
                as_read(vs, &mut s.histograms);
                (!s.is_empty()).then_some(s)
            })
            .collect();
    }
    Ok(vector)
}
