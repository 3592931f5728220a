//! The histogram side of the range functions: `rate`/`increase`/`delta` over native histograms
//! (upstream's `histogramRate`), `irate`/`idelta` between two histograms, and the compensated
//! `sum_over_time`/`avg_over_time` (upstream's `KahanAdd`), with the annotations upstream
//! reports for them.
//!
//! Each function collects its annotations as [`Note`]s (which aggregations and binary operators
//! record too, in the same words); the caller records them for the series
//! at hand, so that a function can take back what upstream drops on a failure.

use super::range_functions::Compensated;
use super::{Annotations, Evaluator};
use crate::histogram::{CounterResetHint, FloatHistogram, HistogramError};
use crate::value::HistogramSample;

/// An annotation a range function reports about a series' window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Note {
    /// A warning: floats and histograms in a window that takes only one type.
    MixedTypes,
    /// A warning: a gauge histogram given to a function for counters.
    NotCounter,
    /// A warning: a counter histogram given to a function for gauges.
    NotGauge,
    /// A warning: histograms with exponential and with custom buckets in one computation.
    MixedSchemas,
    /// An info: histograms with different custom bounds were mapped onto the shared ones during
    /// the operation named.
    Reconciled(&'static str),
    /// A warning: histograms hinting "reset" and "no reset" met in the operation named.
    Collision(&'static str),
    /// An info: a float-only function left out the histograms of a window with both types.
    IgnoredHistograms,
}

impl Note {
    /// Records this note, in upstream's words, for the series named `metric`, pointing at `pos`.
    pub(super) fn record(self, ev: &Evaluator, metric: &str, pos: usize) {
        self.record_into(&mut ev.annotations.borrow_mut(), metric, pos);
    }

    /// The same into `into` (an aggregation's, finished away from its evaluator).
    pub(super) fn record_into(self, into: &mut Annotations, metric: &str, pos: usize) {
        match self {
            Note::MixedTypes => {
                into.warn(format!("encountered a mix of histograms and floats for metric name {metric:?}"), pos)
            }
            Note::NotCounter => into.warn(format!("this native histogram metric is not a counter: {metric:?}"), pos),
            Note::NotGauge => into.warn(format!("this native histogram metric is not a gauge: {metric:?}"), pos),
            Note::MixedSchemas => into.warn(
                format!(
                    "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric:?}"
                ),
                pos,
            ),
            Note::Reconciled(operation) => {
                into.info(format!("mismatched custom buckets were reconciled during {operation}"), pos)
            }
            Note::Collision(operation) => into.warn(format!("conflicting counter resets during histogram {operation}"), pos),
            Note::IgnoredHistograms => into.info(
                format!("ignored histograms in a range containing both floats and histograms for metric name {metric:?}"),
                pos,
            ),
        }
    }
}

/// The change over `points` (at least two), counter resets added back for a counter, before
/// extrapolation; a gauge histogram (upstream's `histogramRate`). `None` when the histograms
/// cannot be combined.
pub(super) fn rate(points: &[HistogramSample], is_counter: bool, notes: &mut Vec<Note>) -> Option<FloatHistogram> {
    let (first, second, last) = (&*points[0].h, &*points[1].h, &*points[points.len() - 1].h);
    if is_counter && (first.is_gauge() || last.is_gauge()) {
        notes.push(Note::NotCounter);
    }
    // After a reset between the first two samples the first one does not count, nor does
    // its bucket layout.
    let zero;
    let base = if is_counter && second.detect_reset(first) {
        zero =
            FloatHistogram { schema: second.schema, custom_values: second.custom_values.clone(), ..Default::default() };
        &zero
    } else {
        first
    };
    if last.uses_custom_buckets() != base.uses_custom_buckets() {
        notes.push(Note::MixedSchemas);
        return None;
    }
    let mut min_schema = last.schema.min(base.schema);
    if is_counter {
        for p in &points[1..points.len() - 1] {
            if p.h.is_gauge() {
                notes.push(Note::NotCounter);
            }
            min_schema = min_schema.min(p.h.schema);
            if p.h.uses_custom_buckets() != base.uses_custom_buckets() {
                return only_mixed_schemas(notes);
            }
        }
    }
    let mut h = last.clone();
    if h.schema > min_schema {
        h.reduce_resolution(min_schema).ok()?;
    }
    if combine(&mut h, base, true, notes).is_err() {
        return only_mixed_schemas(notes);
    }
    if is_counter {
        let mut prev = base;
        for p in &points[1..] {
            if p.h.detect_reset(prev) && combine(&mut h, prev, false, notes).is_err() {
                return only_mixed_schemas(notes);
            }
            prev = &p.h;
        }
    } else if !first.is_gauge() || !last.is_gauge() {
        notes.push(Note::NotGauge);
    }
    h.counter_reset_hint = CounterResetHint::Gauge;
    h.compact(0);
    Some(h)
}

/// Upstream's failure of `histogramRate` on mixed bucket kinds: that warning alone.
fn only_mixed_schemas(notes: &mut Vec<Note>) -> Option<FloatHistogram> {
    notes.clear();
    notes.push(Note::MixedSchemas);
    None
}

/// `h - other` (or `h + other`), noting reconciled custom bounds; counter-reset hints are
/// ignored, as rate functions handle resets themselves.
pub(super) fn combine(
    h: &mut FloatHistogram,
    other: &FloatHistogram,
    subtract: bool,
    notes: &mut Vec<Note>,
) -> Result<(), HistogramError> {
    let outcome = if subtract { h.sub(other)? } else { h.add(other)? };
    if outcome.custom_bounds_reconciled {
        notes.push(Note::Reconciled(if subtract { "subtraction" } else { "addition" }));
    }
    Ok(())
}

/// `irate` (per second over `seconds`, counter-aware) or `idelta` between the histograms `prev`
/// and `last` (upstream's `instantValue`).
pub(super) fn instant(
    prev: &FloatHistogram,
    last: &FloatHistogram,
    seconds: f64,
    is_rate: bool,
    notes: &mut Vec<Note>,
) -> Option<FloatHistogram> {
    if is_rate && (last.is_gauge() || prev.is_gauge()) {
        notes.push(Note::NotCounter);
    }
    if !is_rate && (!last.is_gauge() || !prev.is_gauge()) {
        notes.push(Note::NotGauge);
    }
    let mut h = last.clone();
    if (!is_rate || !last.detect_reset(prev)) && combine(&mut h, prev, true, notes).is_err() {
        notes.push(Note::MixedSchemas);
        return None;
    }
    h.counter_reset_hint = CounterResetHint::Gauge;
    h.compact(0);
    if is_rate {
        h.div(seconds);
    }
    Some(h)
}

/// `sum_over_time` of histograms, with compensated sums as upstream.
pub(super) fn sum_over_time(points: &[HistogramSample], notes: &mut Vec<Note>) -> Option<FloatHistogram> {
    aggregated(points, compensated_sum(&values(points)), notes)
}

/// `avg_over_time` of histograms: the compensated sum divided by the count, switching to an
/// incremental mean if the sum would overflow (upstream's algorithm).
pub(super) fn avg_over_time(points: &[HistogramSample], notes: &mut Vec<Note>) -> Option<FloatHistogram> {
    aggregated(points, compensated_mean(&values(points)), notes)
}

fn values(points: &[HistogramSample]) -> Vec<&FloatHistogram> {
    points.iter().map(|p| &*p.h).collect()
}

/// The sum of `histograms` (at least one) with upstream's compensation (`KahanAdd`), and
/// whether custom bounds were reconciled: `sum_over_time` and the `sum` aggregation.
pub(super) fn compensated_sum(histograms: &[&FloatHistogram]) -> Result<(FloatHistogram, bool), HistogramError> {
    let sum = histograms[1..].iter().try_fold(KahanSum::new(histograms[0]), |mut acc, h| acc.add(h).map(|()| acc));
    sum.and_then(KahanSum::finish)
}

/// The mean of `histograms` (at least one) as upstream computes it for `avg_over_time` and the
/// `avg` aggregation, and whether custom bounds were reconciled.
pub(super) fn compensated_mean(histograms: &[&FloatHistogram]) -> Result<(FloatHistogram, bool), HistogramError> {
    let mut acc = KahanSum::new(histograms[0]);
    let mut incremental = false;
    for (i, h) in histograms.iter().enumerate().skip(1) {
        let count = (i + 1) as f64;
        if !incremental {
            let mut next = acc.clone();
            next.add(h)?;
            if !has_overflow(&next.sum) {
                acc = next;
                continue;
            }
            incremental = true;
            acc.scale(|h| h.div(count - 1.0));
        }
        acc.scale(|h| h.mul((count - 1.0) / count));
        let mut share = FloatHistogram::clone(h);
        share.div(count);
        acc.add(&share)?;
    }
    if !incremental {
        acc.scale(|h| h.div(histograms.len() as f64));
    }
    acc.finish()
}

/// The result of a histogram `sum_over_time`/`avg_over_time` with upstream's annotations: on
/// mixed bucket kinds only that warning; otherwise the conflicting hints of `points` and
/// reconciled custom bounds.
fn aggregated(
    points: &[HistogramSample],
    result: Result<(FloatHistogram, bool), HistogramError>,
    notes: &mut Vec<Note>,
) -> Option<FloatHistogram> {
    let Ok((h, reconciled)) = result else {
        notes.push(Note::MixedSchemas);
        return None;
    };
    let hinted = |hint| points.iter().any(|p| p.h.counter_reset_hint == hint);
    if hinted(CounterResetHint::CounterReset) && hinted(CounterResetHint::NotCounterReset) {
        notes.push(Note::Collision("aggregation"));
    }
    if reconciled {
        notes.push(Note::Reconciled("aggregation"));
    }
    Some(h)
}

/// Whether a count, the sum or a bound is infinite (upstream's `HasOverflow`).
fn has_overflow(h: &FloatHistogram) -> bool {
    [h.zero_count, h.count, h.sum]
        .iter()
        .chain(&h.positive_buckets)
        .chain(&h.negative_buckets)
        .chain(&h.custom_values)
        .any(|v| v.is_infinite())
}

/// A histogram sum with Neumaier compensation of every count (upstream's `KahanAdd`): `c`
/// holds, in the sum's layout, what rounding lost.
#[derive(Debug, Clone)]
struct KahanSum {
    sum: FloatHistogram,
    c: FloatHistogram,
    /// Whether an addition mapped different custom bounds onto the shared ones.
    reconciled: bool,
}

impl KahanSum {
    fn new(first: &FloatHistogram) -> Self {
        KahanSum { sum: first.clone(), c: zeroed(first), reconciled: false }
    }

    /// Adds `x`. The plain sum gives the layout; each count of it is then recomputed with
    /// compensation from the addends moved onto that layout.
    fn add(&mut self, x: &FloatHistogram) -> Result<(), HistogramError> {
        let mut t = self.sum.clone();
        self.reconciled |= t.add(x)?.custom_bounds_reconciled;
        let addends = [aligned(&self.sum, x)?, aligned(x, &self.sum)?, aligned(&self.c, x)?];
        let step = |[s, x, c]: [f64; 3]| {
            let r = Compensated { sum: s, c }.add(x);
            (r.sum, r.c)
        };
        let mut c = t.clone();
        (t.count, c.count) = step(addends.each_ref().map(|h| h.count));
        (t.sum, c.sum) = step(addends.each_ref().map(|h| h.sum));
        (t.zero_count, c.zero_count) = step(addends.each_ref().map(|h| h.zero_count));
        (t.positive_buckets, c.positive_buckets) = side_sums(&t, &addends, true, step);
        (t.negative_buckets, c.negative_buckets) = side_sums(&t, &addends, false, step);
        (self.sum, self.c) = (t, c);
        Ok(())
    }

    /// Applies `f` (a multiplication or division) to the sum and its compensation.
    fn scale(&mut self, f: impl Fn(&mut FloatHistogram) -> &mut FloatHistogram) {
        f(&mut self.sum);
        f(&mut self.c);
    }

    /// The compensated sum, and whether custom bounds were reconciled on the way.
    fn finish(mut self) -> Result<(FloatHistogram, bool), HistogramError> {
        self.c.counter_reset_hint = self.sum.counter_reset_hint;
        self.sum.add(&self.c)?;
        Ok((self.sum, self.reconciled))
    }
}

/// For each bucket of one side of `t`, `step` of the counts the addends (sum, addend,
/// compensation) have at that bucket index: the new counts and compensations.
fn side_sums(
    t: &FloatHistogram,
    addends: &[FloatHistogram; 3],
    positive: bool,
    step: impl Fn([f64; 3]) -> (f64, f64),
) -> (Vec<f64>, Vec<f64>) {
    let mut cursors = addends.each_ref().map(|h| h.indexed_buckets(positive).peekable());
    t.indexed_buckets(positive)
        .map(|(index, _)| {
            step(cursors.each_mut().map(|cursor| {
                while cursor.next_if(|&(i, _)| i < index).is_some() {}
                cursor.next_if(|&(i, _)| i == index).map_or(0.0, |(_, count)| count)
            }))
        })
        .unzip()
}

/// `h` in the layout it takes in a sum with `other` (that sum's schema, zero bucket and custom
/// bounds), with its own counts.
fn aligned(h: &FloatHistogram, other: &FloatHistogram) -> Result<FloatHistogram, HistogramError> {
    let mut out = h.clone();
    out.add(&zeroed(other))?;
    Ok(out)
}

/// `h`'s layout with every count zero.
fn zeroed(h: &FloatHistogram) -> FloatHistogram {
    let mut z = h.clone();
    (z.count, z.sum, z.zero_count) = (0.0, 0.0, 0.0);
    z.positive_buckets.fill(0.0);
    z.negative_buckets.fill(0.0);
    z
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::parse_histogram;

    fn points(texts: &[&str]) -> Vec<HistogramSample> {
        let at = |(i, text): (usize, &&str)| HistogramSample {
            t: i as i64 * 60_000,
            h: std::sync::Arc::new(parse_histogram(text).unwrap()),
        };
        texts.iter().enumerate().map(at).collect()
    }

    /// The compensation keeps what the plain sum loses next to ±1e100, in the sum and buckets.
    #[test]
    fn sums_are_compensated() {
        let p = points(&[
            "{{schema:0 count:1 sum:1 buckets:[1]}}",
            "{{schema:0 count:2 sum:1e100 buckets:[1e100]}}",
            "{{schema:0 count:3 sum:1 buckets:[1]}}",
            "{{schema:0 count:4 sum:-1e100 buckets:[-1e100]}}",
        ]);
        let mut notes = Vec::new();
        let sum = sum_over_time(&p, &mut notes).unwrap();
        assert_eq!((sum.count, sum.sum, sum.positive_buckets.as_slice()), (10.0, 2.0, &[2.0][..]));
        assert_eq!(avg_over_time(&p, &mut notes).unwrap().sum, 0.5);
        assert!(notes.is_empty());
    }

    /// A reset adds back what the counter had reached; the result is a gauge.
    #[test]
    fn rate_adds_back_resets() {
        let p = points(&[
            "{{schema:0 count:4 sum:4 buckets:[4]}}",
            "{{schema:0 count:6 sum:6 buckets:[6]}}",
            "{{schema:0 count:1 sum:1 buckets:[1]}}",
        ]);
        let mut notes = Vec::new();
        let h = rate(&p, true, &mut notes).unwrap();
        assert_eq!((h.count, h.positive_buckets.as_slice()), (3.0, &[3.0][..]));
        assert_eq!(h.counter_reset_hint, CounterResetHint::Gauge);
        assert!(notes.is_empty());
        rate(&p, false, &mut notes).unwrap();
        assert_eq!(notes, [Note::NotGauge]);
    }

    /// Exponential and custom buckets cannot be summed: upstream's warning alone.
    #[test]
    fn mixed_bucket_kinds_give_no_sum() {
        let p = points(&[
            "{{schema:0 count:1 sum:1 buckets:[1]}}",
            "{{schema:-53 custom_values:[1] count:1 sum:1 buckets:[1]}}",
        ]);
        let mut notes = Vec::new();
        assert!(sum_over_time(&p, &mut notes).is_none());
        assert_eq!(notes, [Note::MixedSchemas]);
    }
}
