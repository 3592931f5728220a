//! Functions over range vectors (the registry's [`Kind::Range`](crate::promql::functions::Kind)):
//! for every series and step, a value from the samples in the step's window.
//!
//! Semantics follow upstream's `promql/functions.go`, numerics included: a window belongs to one
//! series on one shard, so there is no merge to keep order-independent, and these functions use
//! upstream's compensated (Kahan-Neumaier) sums to give upstream's results to the last bit where
//! it matters (values across hundreds of orders of magnitude). A window holds floats and native
//! histograms; what each function makes of the histograms is upstream's too, the histogram
//! arithmetic being in [`super::range_histograms`]. Windows of `anchored` and `smoothed`
//! selectors go to [`super::extended`].

use std::sync::Arc;

use super::extended::{self, Boundaries};
use super::range_histograms::{self as histograms, Note};
use super::{EvalError, Evaluator, RangeVector, StepSeries};
use crate::histogram::FloatHistogram;
use crate::promql::ast::Extension;
use crate::value::{HistogramSample, Sample};

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
    let keeps_name = matches!(name, "last_over_time" | "first_over_time");
    let steps = range.ends.len();
    // Taken out, so that each series' labels move into its result.
    let series = std::mem::take(&mut range.series);
    let mut out = Vec::with_capacity(series.len());
    for s in series {
        ev.charge_series(steps)?;
        let mut result = StepSeries::floats(Default::default(), Vec::with_capacity(steps));
        let metric = s.labels.metric_name();
        // A float series (nearly all) does not walk histogram windows.
        let mut histogram_windows = (!s.histograms.is_empty()).then(|| range.histogram_windows(&s));
        for (i, w) in range.windows(&s).enumerate() {
            let hw = histogram_windows.as_mut().and_then(Iterator::next).unwrap_or_default();
            ev.interrupt(1 + w.len() + hw.len())?;
            let arg = |k: usize| scalars.get(k).map(|v| v[i]).unwrap_or(f64::NAN);
            let end = range.ends[i];
            let step = Step {
                w,
                hw,
                start: end.saturating_sub(range.range),
                end,
                t: params.ts(i),
                arg: &arg,
                ev,
                metric,
                pos: first_arg,
                extension: range.reach.map(|r| r.extension),
            };
            let value = if w.is_empty() && hw.is_empty() { None } else { f(&step)? };
            push(&mut result, value, steps);
        }
        drop(histogram_windows);
        ev.charge_points(&result)?;
        if result.has_values() {
            // Upstream's hint only for series with float results.
            if matches!(name, "rate" | "increase") && result.values.iter().any(Option::is_some) {
                check_counter_name(ev, s.labels.metric_name(), first_arg);
            }
            result.labels = if keeps_name { s.labels } else { s.labels.into_without_metric_name() };
            out.push(result);
        }
    }
    Ok(out)
}

/// Appends the next step's value to `series` (of `steps` steps), making room for histograms at
/// the first one.
fn push(series: &mut StepSeries, value: Option<StepValue>, steps: usize) {
    let i = series.values.len();
    series.values.push(None);
    match value {
        Some(StepValue::Float(v)) => series.values[i] = Some(v),
        Some(StepValue::Histogram(h)) => {
            series.histograms.resize(steps, None);
            series.histograms[i] = Some(h);
        }
        None => {}
    }
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

/// One step of one series: the float samples `w` and histogram samples `hw` in its window
/// `(start, end]` (and, with an `extension`, what it sees past the window), the step's time
/// `t`, `arg(k)`, the step's value of the k-th scalar argument, and what annotations need: the
/// evaluator, the series' metric name and the position.
struct Step<'a> {
    w: &'a [Sample],
    hw: &'a [HistogramSample],
    start: i64,
    end: i64,
    t: i64,
    arg: &'a dyn Fn(usize) -> f64,
    ev: &'a Evaluator<'a>,
    metric: &'a str,
    pos: usize,
    extension: Option<Extension>,
}

impl Step<'_> {
    /// Records `notes` for this step's series.
    fn note(&self, notes: impl IntoIterator<Item = Note>) {
        notes.into_iter().for_each(|n| n.record(self.ev, self.metric, self.pos));
    }

    /// The floats of the window for a function that ignores histograms, if there are at least
    /// `min`; with upstream's info when there are floats and histograms were left out.
    fn floats(&self, min: usize) -> Option<&[Sample]> {
        if !self.w.is_empty() && !self.hw.is_empty() {
            self.note([Note::IgnoredHistograms]);
        }
        (self.w.len() >= min).then_some(self.w)
    }
}

/// What a range function gives for one step: a float or a histogram.
enum StepValue {
    Float(f64),
    Histogram(Arc<FloatHistogram>),
}

use StepValue::Float;

/// What a range function computes on one step's window (never empty).
type RangeFn = fn(&Step) -> Result<Option<StepValue>, EvalError>;

/// The range function called `name`, looked up once per call rather than at every step.
fn function(name: &str) -> Option<RangeFn> {
    let f: RangeFn = match name {
        "rate" => |s| Ok(extrapolated(s, true, true)),
        "increase" => |s| Ok(extrapolated(s, true, false)),
        "delta" => |s| Ok(extrapolated(s, false, false)),
        "irate" => |s| Ok(instant(s, true)),
        "idelta" => |s| Ok(instant(s, false)),
        "deriv" => |s| Ok(s.floats(2).map(|w| Float(linear_regression(w, w[0].t).0))),
        "predict_linear" => |s| {
            Ok(s.floats(2).map(|w| {
                let (slope, intercept) = linear_regression(w, s.t);
                Float(intercept + slope * (s.arg)(0))
            }))
        },
        "changes" => |s| Ok(count_pairs(s, changed).map(Float)),
        "resets" => |s| Ok(count_pairs(s, reset).map(Float)),
        "avg_over_time" => |s| Ok(sum_or_average(s, true)),
        "sum_over_time" => |s| Ok(sum_or_average(s, false)),
        "min_over_time" => |s| {
            Ok(s.floats(1).map(|w| Float(w.iter().fold(f64::NAN, |m, x| if x.v < m || m.is_nan() { x.v } else { m }))))
        },
        "max_over_time" => |s| {
            Ok(s.floats(1).map(|w| Float(w.iter().fold(f64::NAN, |m, x| if x.v > m || m.is_nan() { x.v } else { m }))))
        },
        "count_over_time" => |s| Ok(Some(Float((s.w.len() + s.hw.len()) as f64))),
        "last_over_time" => |s| Ok(last(s)),
        "first_over_time" => |s| Ok(first(s)),
        "present_over_time" => |_| Ok(Some(Float(1.0))),
        "stdvar_over_time" => |s| Ok(s.floats(1).map(|w| Float(welford_variance(w)))),
        "stddev_over_time" => |s| Ok(s.floats(1).map(|w| Float(welford_variance(w).sqrt()))),
        "quantile_over_time" => |s| {
            Ok(s.floats(1).map(|w| {
                check_quantile(s.ev, (s.arg)(0), s.pos);
                Float(quantile((s.arg)(0), w.iter().map(|x| x.v).collect()))
            }))
        },
        "mad_over_time" => |s| Ok(s.floats(1).map(|w| Float(median_absolute_deviation(w)))),
        "ts_of_min_over_time" => |s| Ok(s.floats(1).map(|w| Float(extreme_time(w, |v, best| v < best)))),
        "ts_of_max_over_time" => |s| Ok(s.floats(1).map(|w| Float(extreme_time(w, |v, best| v > best)))),
        "ts_of_first_over_time" => |s| {
            let t = [s.w.first().map(|x| x.t), s.hw.first().map(|x| x.t)].into_iter().flatten().min();
            Ok(t.map(|t| Float(t as f64 / 1000.0)))
        },
        "ts_of_last_over_time" => |s| {
            let t = [s.w.last().map(|x| x.t), s.hw.last().map(|x| x.t)].into_iter().flatten().max();
            Ok(t.map(|t| Float(t as f64 / 1000.0)))
        },
        "double_exponential_smoothing" => double_exponential_smoothing,
        _ => return None,
    };
    Some(f)
}

/// `last_over_time`: the newest sample, of either type.
fn last(s: &Step) -> Option<StepValue> {
    match (s.w.last(), s.hw.last()) {
        (Some(f), Some(h)) if h.t < f.t => Some(Float(f.v)),
        (_, Some(h)) => Some(StepValue::Histogram(h.h.clone())),
        (f, None) => f.map(|f| Float(f.v)),
    }
}

/// `first_over_time`: the oldest sample, of either type.
fn first(s: &Step) -> Option<StepValue> {
    match (s.w.first(), s.hw.first()) {
        (Some(f), Some(h)) if f.t < h.t => Some(Float(f.v)),
        (_, Some(h)) => Some(StepValue::Histogram(h.h.clone())),
        (f, None) => f.map(|f| Float(f.v)),
    }
}

/// `sum_over_time` or `avg_over_time` of the floats or of the histograms; a window with both
/// has no value.
fn sum_or_average(s: &Step, is_average: bool) -> Option<StepValue> {
    match (s.w, s.hw) {
        ([], hw) => {
            let mut notes = Vec::new();
            let h = if is_average {
                histograms::avg_over_time(hw, &mut notes)
            } else {
                histograms::sum_over_time(hw, &mut notes)
            };
            s.note(notes);
            h.map(|h| StepValue::Histogram(Arc::new(h)))
        }
        (w, []) => Some(Float(if is_average { average(w) } else { sum(w.iter().map(|x| x.v)) })),
        _ => {
            s.note([Note::MixedTypes]);
            None
        }
    }
}

/// One sample of either type.
#[derive(Clone, Copy)]
enum Point<'a> {
    Float(f64),
    Histogram(&'a FloatHistogram),
}

/// The samples of both types in time order, with their times.
fn merged<'a>(w: &'a [Sample], hw: &'a [HistogramSample]) -> impl Iterator<Item = (i64, Point<'a>)> + 'a {
    let (mut floats, mut hists) = (w.iter().peekable(), hw.iter().peekable());
    std::iter::from_fn(move || match (floats.peek(), hists.peek()) {
        (Some(f), Some(h)) if h.t < f.t => hists.next().map(|h| (h.t, Point::Histogram(&h.h))),
        (Some(_), _) => floats.next().map(|f| (f.t, Point::Float(f.v))),
        (None, _) => hists.next().map(|h| (h.t, Point::Histogram(&h.h))),
    })
}

/// How many pairs of consecutive samples in the window `differ` (`resets`, `changes`); an
/// anchored window counts from its anchor, and has no value if no sample follows it.
fn count_pairs(s: &Step, differ: fn(Point, Point) -> bool) -> Option<f64> {
    let (w, hw) = match s.extension {
        Some(Extension::Anchored) => {
            let (floats, histograms) = extended::anchored_start(s.w, s.hw, s.start)?;
            (&s.w[floats..], &s.hw[histograms..])
        }
        _ => (s.w, s.hw),
    };
    let mut points = merged(w, hw).map(|(_, p)| p);
    let Some(mut prev) = points.next() else { return Some(0.0) };
    let mut n = 0;
    for p in points {
        n += usize::from(differ(prev, p));
        prev = p;
    }
    Some(n as f64)
}

/// Whether `cur` follows `prev` through a counter reset; a change of type counts as one.
fn reset(prev: Point, cur: Point) -> bool {
    match (prev, cur) {
        (Point::Float(a), Point::Float(b)) => b < a,
        (Point::Histogram(a), Point::Histogram(b)) => b.detect_reset(a),
        _ => true,
    }
}

/// Whether `cur` differs from `prev` (two NaNs do not); a change of type counts as one.
fn changed(prev: Point, cur: Point) -> bool {
    match (prev, cur) {
        (Point::Float(a), Point::Float(b)) => a != b && !(a.is_nan() && b.is_nan()),
        (Point::Histogram(a), Point::Histogram(b)) => !b.equals(a),
        _ => true,
    }
}

/// A sum with Neumaier's compensation, as upstream's `kahanSumInc` keeps it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Compensated {
    pub(super) sum: f64,
    pub(super) c: f64,
}

impl Compensated {
    pub(super) fn add(self, inc: f64) -> Compensated {
        let (sum, c) = crate::kahan::inc(inc, self.sum, self.c);
        Compensated { sum, c }
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

/// `mad_over_time`: the median of the absolute deviations from the median; NaN if any value is.
fn median_absolute_deviation(w: &[Sample]) -> f64 {
    if w.iter().any(|x| x.v.is_nan()) {
        return f64::NAN;
    }
    let median = quantile(0.5, w.iter().map(|x| x.v).collect());
    quantile(0.5, w.iter().map(|x| (x.v - median).abs()).collect())
}

/// The time (seconds) of the last sample that beats all earlier ones under `better`; NaN samples
/// only win when nothing else does.
fn extreme_time(w: &[Sample], better: impl Fn(f64, f64) -> bool) -> f64 {
    let mut best = w[0];
    for s in &w[1..] {
        if better(s.v, best.v) || (best.v.is_nan() && !s.v.is_nan()) || (s.v == best.v) {
            best = *s;
        }
    }
    best.t as f64 / 1000.0
}

/// `rate`/`increase` (counters) and `delta` over the floats or the histograms of the window,
/// extrapolated towards the window's edges as Prometheus does, or between an anchored or
/// smoothed window's boundary values; a window with both types has no value.
fn extrapolated(s: &Step, is_counter: bool, is_rate: bool) -> Option<StepValue> {
    if !s.w.is_empty() && !s.hw.is_empty() {
        s.note([Note::MixedTypes]);
        return None;
    }
    if let Some(extension) = s.extension {
        return between_boundaries(s, extension, is_counter, is_rate);
    }
    match (s.w, s.hw) {
        (w @ [first, .., last], _) => {
            let mut result = last.v - first.v;
            if is_counter {
                // A drop means the counter was reset: add back what it had reached. A plain
                // loop: this runs for every sample of every window of a dashboard's rates.
                let mut prev = first.v;
                for x in &w[1..] {
                    if x.v < prev {
                        result += prev;
                    }
                    prev = x.v;
                }
            }
            let to_zero = zero_fraction(is_counter, first.v, result);
            Some(Float(result * extrapolation_factor(s, (first.t, last.t, w.len()), to_zero, is_rate)))
        }
        (_, hw @ [first, .., last]) => {
            let mut notes = Vec::new();
            let h = histograms::rate(hw, is_counter, &mut notes);
            s.note(notes);
            let mut h = h?;
            let to_zero = zero_fraction(is_counter, first.h.count, h.count);
            h.mul(extrapolation_factor(s, (first.t, last.t, hw.len()), to_zero, is_rate));
            Some(StepValue::Histogram(Arc::new(h)))
        }
        _ => None,
    }
}

/// `rate`/`increase`/`delta` over an anchored or smoothed window: the change between its
/// boundary values, per second of the range for `rate`.
fn between_boundaries(s: &Step, extension: Extension, is_counter: bool, is_rate: bool) -> Option<StepValue> {
    let b = Boundaries { start: s.start, end: s.end, smoothed: extension == Extension::Smoothed, counter: is_counter };
    let seconds = s.end.saturating_sub(s.start) as f64 / 1000.0;
    if s.hw.is_empty() {
        let change = extended::float_change(s.w, b)?;
        return Some(Float(if is_rate { change / seconds } else { change }));
    }
    let mut notes = Vec::new();
    let change = extended::histogram_change(s.hw, b, &mut notes);
    s.note(notes);
    let mut change = change?;
    if is_rate {
        change.div(seconds);
    }
    Some(StepValue::Histogram(Arc::new(change)))
}

/// For a counter that went up by `increase` from `first`: the fraction of the sampled interval
/// back to where it was zero, which extrapolation must not pass.
fn zero_fraction(is_counter: bool, first: f64, increase: f64) -> Option<f64> {
    (is_counter && increase > 0.0 && first >= 0.0).then(|| first / increase)
}

/// The factor that extrapolates a change seen over `n` samples from `first_t` to `last_t` to
/// the step's window: to its edges if the samples come close enough to them, else half an
/// average interval further, and never before the counter's zero point (`to_zero`, a fraction
/// of the sampled interval). Per second of the window if `is_rate`.
fn extrapolation_factor(s: &Step, (first_t, last_t, n): (i64, i64, usize), to_zero: Option<f64>, is_rate: bool) -> f64 {
    let sampled_interval = (last_t - first_t) as f64 / 1000.0;
    let average_between_samples = sampled_interval / (n - 1) as f64;
    let threshold = average_between_samples * 1.1;
    let mut to_start = (first_t - s.start) as f64 / 1000.0;
    let mut to_end = (s.end - last_t) as f64 / 1000.0;
    if to_start >= threshold {
        to_start = average_between_samples / 2.0;
    }
    if let Some(to_zero) = to_zero.map(|fraction| sampled_interval * fraction) {
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average_between_samples / 2.0;
    }
    let factor = (sampled_interval + to_start + to_end) / sampled_interval;
    if is_rate {
        factor / ((s.end - s.start) as f64 / 1000.0)
    } else {
        factor
    }
}

/// `irate` (per second, counter-aware) or `idelta` over the window's last two samples, of
/// either type; a float and a histogram give no value.
fn instant(s: &Step, is_rate: bool) -> Option<StepValue> {
    let tail = merged(&s.w[s.w.len().saturating_sub(2)..], &s.hw[s.hw.len().saturating_sub(2)..]);
    let (Some((prev_t, prev)), Some((last_t, last))) = tail.fold((None, None), |(_, last), p| (last, Some(p))) else {
        return None;
    };
    if last_t == prev_t {
        return None;
    }
    let seconds = (last_t - prev_t) as f64 / 1000.0;
    match (prev, last) {
        (Point::Float(prev), Point::Float(last)) => {
            if !is_rate {
                return Some(Float(last - prev));
            }
            let increase = if last < prev { last } else { last - prev };
            Some(Float(increase / seconds))
        }
        (Point::Histogram(prev), Point::Histogram(last)) => {
            let mut notes = Vec::new();
            let h = histograms::instant(prev, last, seconds, is_rate, &mut notes);
            s.note(notes);
            h.map(|h| StepValue::Histogram(Arc::new(h)))
        }
        _ => {
            s.note([Note::MixedTypes]);
            None
        }
    }
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

/// `double_exponential_smoothing(range, sf, tf)` of the window's floats (Holt's linear method,
/// as upstream); factors outside (0, 1) fail the query.
fn double_exponential_smoothing(s: &Step) -> Result<Option<StepValue>, EvalError> {
    let (sf, tf) = ((s.arg)(0), (s.arg)(1));
    if !(sf > 0.0 && sf < 1.0) {
        return Err(EvalError::Execution(format!("invalid smoothing factor. Expected: 0 < sf < 1, got: {sf}")));
    }
    if !(tf > 0.0 && tf < 1.0) {
        return Err(EvalError::Execution(format!("invalid trend factor. Expected: 0 < tf < 1, got: {tf}")));
    }
    let Some(w) = s.floats(2) else { return Ok(None) };
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
    Ok(Some(Float(s1)))
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
