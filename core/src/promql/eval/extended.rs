//! The `anchored` and `smoothed` selectors (upstream's extended range selectors, behind
//! `--enable-feature=promql-extended-range-selectors`), as upstream 3.x evaluates them.
//!
//! A range selector with either modifier reads each window `(start, end]` together with the
//! lookback delta before it (and, `smoothed`, after it), and takes a value at each end of the
//! window: `anchored` the newest sample at or before the start (else the first in the window)
//! and the last in the window; `smoothed` the values interpolated at the start and the end
//! between the samples around them. From those:
//!
//! * `rate`, `increase` and `delta` are the change between the two values, counter resets in
//!   between added back, with no extrapolation (floats and native histograms);
//! * `changes` and `resets` over an anchored window count from its anchor;
//! * an instant query's range vector is the window's floats between the two values, at the
//!   window's start and end.
//!
//! A smoothed instant selector takes the value interpolated at the step's time between the
//! samples a lookback delta around it, or the sample before it if none follows.

use std::sync::Arc;

use super::range_histograms::{combine, Note};
use crate::histogram::{CounterResetHint, FloatHistogram, HistogramError};
use crate::value::{HistogramSample, Sample};

/// How the values at the ends of a window `(start, end]` are found: interpolated between the
/// samples around them (`smoothed`) or picked, and whether interpolation follows a counter
/// through a reset (`counter`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Boundaries {
    pub start: i64,
    pub end: i64,
    pub smoothed: bool,
    pub counter: bool,
}

impl Boundaries {
    /// The indexes of the samples that give the values at the window's ends, as upstream finds
    /// them: the newest at or before the start (else the first); the last, or for `smoothed`
    /// the first at or after the end. `None` when no sample follows the start.
    fn indexes<T>(&self, points: &[T], time: fn(&T) -> i64) -> Option<(usize, usize)> {
        let last = points.len().checked_sub(1)?;
        let first = points[..last].partition_point(|p| time(p) <= self.start).saturating_sub(1);
        let last = if self.smoothed { points[..last].partition_point(|p| time(p) < self.end) } else { last };
        (time(&points[last]) > self.start).then_some((first, last))
    }

    /// The range of the samples strictly inside the window between `first` and `last`.
    fn inner<T>(&self, points: &[T], (first, last): (usize, usize), time: fn(&T) -> i64) -> std::ops::Range<usize> {
        let lo = first + usize::from(time(&points[first]) <= self.start);
        let hi = last + 1 - usize::from(time(&points[last]) >= self.end);
        lo..hi.max(lo)
    }

    /// The float value at the window's start.
    fn float_at_start(&self, f: &[Sample], first: usize) -> f64 {
        match f.get(first + 1) {
            Some(&next) if self.smoothed && f[first].t < self.start => {
                interpolate(f[first], next, self.start, self.counter)
            }
            _ => f[first].v,
        }
    }

    /// The float value at the window's end.
    fn float_at_end(&self, f: &[Sample], last: usize) -> f64 {
        match last.checked_sub(1) {
            Some(prev) if self.smoothed && f[last].t > self.end => {
                interpolate(f[prev], f[last], self.end, self.counter)
            }
            _ => f[last].v,
        }
    }

    /// The histogram at the window's start.
    fn histogram_at_start(
        &self,
        h: &[HistogramSample],
        first: usize,
        notes: &mut Vec<Note>,
    ) -> Result<FloatHistogram, HistogramError> {
        match h.get(first + 1) {
            Some(next) if self.smoothed && h[first].t < self.start => {
                interpolate_histograms(&h[first], next, self.start, self.counter, notes)
            }
            _ => Ok(FloatHistogram::clone(&h[first].h)),
        }
    }

    /// The histogram at the window's end.
    fn histogram_at_end(
        &self,
        h: &[HistogramSample],
        last: usize,
        notes: &mut Vec<Note>,
    ) -> Result<FloatHistogram, HistogramError> {
        match last.checked_sub(1) {
            Some(prev) if self.smoothed && h[last].t > self.end => {
                interpolate_histograms(&h[prev], &h[last], self.end, self.counter, notes)
            }
            _ => Ok(FloatHistogram::clone(&h[last].h)),
        }
    }
}

/// The value at `t` on the line between samples `a` and `b`; for a counter that was reset
/// between them, on the line from zero.
fn interpolate(a: Sample, b: Sample, t: i64, counter: bool) -> f64 {
    let from = if counter && b.v < a.v { 0.0 } else { a.v };
    from + (b.v - from) * t.saturating_sub(a.t) as f64 / b.t.saturating_sub(a.t) as f64
}

/// The histogram at `t` between samples `a` and `b`, as [`interpolate`] for floats; a failure
/// is that of mixing exponential and custom buckets.
fn interpolate_histograms(
    a: &HistogramSample,
    b: &HistogramSample,
    t: i64,
    counter: bool,
    notes: &mut Vec<Note>,
) -> Result<FloatHistogram, HistogramError> {
    if t == a.t {
        return Ok(FloatHistogram::clone(&a.h));
    }
    let mut h = FloatHistogram::clone(&b.h);
    if t == b.t {
        return Ok(h);
    }
    let fraction = t.saturating_sub(a.t) as f64 / b.t.saturating_sub(a.t) as f64;
    if counter && b.h.detect_reset(&a.h) {
        h.mul(fraction);
        return Ok(h);
    }
    combine(&mut h, &a.h, true, notes)?;
    h.mul(fraction);
    combine(&mut h, &a.h, false, notes)?;
    Ok(h)
}

/// `rate`/`increase`/`delta` of the floats `f` of a window (before the division of `rate`):
/// the change between its boundary values, and for a counter what resets took away between
/// them. `None` when the samples do not reach into the window.
pub(super) fn float_change(f: &[Sample], b: Boundaries) -> Option<f64> {
    let (first, last) = b.indexes(f, |x| x.t)?;
    if b.smoothed && f[first].t > b.end {
        return None;
    }
    let (left, right) = (b.float_at_start(f, first), b.float_at_end(f, last));
    let mut change = right - left;
    if b.counter {
        let mut prev = left;
        for x in &f[b.inner(f, (first, last), |x| x.t)] {
            if x.v < prev {
                change += prev;
            }
            prev = x.v;
        }
        if right < prev {
            change += prev;
        }
    }
    Some(change)
}

/// [`float_change`] of the histograms `h` of a window, a gauge histogram, with upstream's
/// annotations in `notes`.
pub(super) fn histogram_change(h: &[HistogramSample], b: Boundaries, notes: &mut Vec<Note>) -> Option<FloatHistogram> {
    let (first, last) = b.indexes(h, |x| x.t)?;
    if b.smoothed && h[first].t > b.end {
        return None;
    }
    let window = h.get(first..=last)?;
    for p in window {
        if p.h.uses_custom_buckets() != window[0].h.uses_custom_buckets() {
            notes.push(Note::MixedSchemas);
            return None;
        }
        if b.counter && p.h.is_gauge() {
            notes.push(Note::NotCounter);
        }
    }
    match histogram_change_between(h, (first, last), b, notes) {
        Ok(change) => Some(change),
        Err(_) => {
            notes.push(Note::MixedSchemas);
            None
        }
    }
}

/// [`histogram_change`] between the samples at `first` and `last`.
fn histogram_change_between(
    h: &[HistogramSample],
    (first, last): (usize, usize),
    b: Boundaries,
    notes: &mut Vec<Note>,
) -> Result<FloatHistogram, HistogramError> {
    let left = b.histogram_at_start(h, first, notes)?;
    let right = b.histogram_at_end(h, last, notes)?;
    if !b.counter && (!left.is_gauge() || !right.is_gauge()) {
        notes.push(Note::NotGauge);
    }
    let mut change = right.clone();
    combine(&mut change, &left, true, notes)?;
    if b.counter {
        if let Some(lost) = lost_to_resets(h, (first, last), (&left, &right), b, notes)? {
            combine(&mut change, &lost, false, notes)?;
        }
    }
    change.counter_reset_hint = CounterResetHint::Gauge;
    change.compact(0);
    Ok(change)
}

/// What counter resets took away between the boundary histograms `left` and `right` of the
/// samples `first..=last` (upstream's `correctForCounterResetsHistogram`). The sample at
/// `last` is `right` or what it was interpolated from, so it is not compared twice; a reset
/// that a smoothed start was interpolated across is already accounted for.
fn lost_to_resets(
    h: &[HistogramSample],
    (first, last): (usize, usize),
    (left, right): (&FloatHistogram, &FloatHistogram),
    b: Boundaries,
    notes: &mut Vec<Note>,
) -> Result<Option<FloatHistogram>, HistogramError> {
    let (mut prev, mut from) = (left, first + 1);
    if let Some(next) =
        h.get(first + 1).filter(|next| b.smoothed && h[first].t < b.start && next.h.detect_reset(&h[first].h))
    {
        (prev, from) = (&*next.h, first + 2);
    }
    if from > last {
        return Ok(None);
    }
    let mut lost: Option<FloatHistogram> = None;
    let mut add = |value: &FloatHistogram| match &mut lost {
        None => {
            lost = Some(value.clone());
            Ok(())
        }
        Some(sum) => combine(sum, value, false, notes),
    };
    for p in &h[from..last] {
        if p.h.detect_reset(prev) {
            add(prev)?;
        }
        prev = &*p.h;
    }
    if right.detect_reset(prev) {
        add(prev)?;
    }
    Ok(lost)
}

/// Where `changes` and `resets` over an anchored window start in its floats `w` and histograms
/// `hw`: at the newest sample of either type at or before `start`, older ones of both types
/// left out. `None` when no sample follows `start`.
pub(super) fn anchored_start(w: &[Sample], hw: &[HistogramSample], start: i64) -> Option<(usize, usize)> {
    let (floats_before, histograms_before) =
        (w.partition_point(|x| x.t <= start), hw.partition_point(|x| x.t <= start));
    if floats_before == w.len() && histograms_before == hw.len() {
        return None;
    }
    Some(match (floats_before.checked_sub(1), histograms_before.checked_sub(1)) {
        (None, None) => (0, 0),
        (Some(f), None) => (f, histograms_before),
        (Some(f), Some(h)) if w[f].t >= hw[h].t => (f, histograms_before),
        (_, Some(h)) => (floats_before, h),
    })
}

/// An instant query's anchored or smoothed range vector of the floats `f` (upstream's
/// `extendFloats`): the value at the window's start, the samples inside it, and the value at
/// its end, at the start's and end's times. Empty when no sample follows the start.
pub(super) fn boundary_points(f: &[Sample], start: i64, end: i64, smoothed: bool) -> Vec<Sample> {
    let b = Boundaries { start, end, smoothed, counter: false };
    let Some((first, last)) = b.indexes(f, |x| x.t) else { return Vec::new() };
    let inner = &f[b.inner(f, (first, last), |x| x.t)];
    let mut points = Vec::with_capacity(inner.len() + 2);
    points.push(Sample { t: start, v: b.float_at_start(f, first) });
    points.extend_from_slice(inner);
    points.push(Sample { t: end, v: b.float_at_end(f, last) });
    points
}

/// A smoothed instant selector's value at `t` from the floats `w` or histograms `hw` within a
/// lookback delta of it (upstream's `smoothSeries`): the sample at `t`, or the value
/// interpolated between the samples around it, or the one before it; with both types none.
pub(super) fn smoothed_at(
    w: &[Sample],
    hw: &[HistogramSample],
    t: i64,
    notes: &mut Vec<Note>,
) -> (Option<f64>, Option<Arc<FloatHistogram>>) {
    if !w.is_empty() && !hw.is_empty() {
        notes.push(Note::MixedTypes);
        return (None, None);
    }
    if hw.is_empty() {
        let i = w.partition_point(|x| x.t < t);
        let value = match (i.checked_sub(1).map(|j| w[j]), w.get(i)) {
            (_, Some(next)) if next.t == t => Some(next.v),
            (Some(prev), Some(&next)) => Some(interpolate(prev, next, t, false)),
            (prev, _) => prev.map(|p| p.v),
        };
        return (value, None);
    }
    let i = hw.partition_point(|x| x.t < t);
    let histogram = match (i.checked_sub(1).map(|j| &hw[j]), hw.get(i)) {
        (_, Some(next)) if next.t == t => Some(next.h.clone()),
        (Some(prev), Some(next)) if prev.h.uses_custom_buckets() != next.h.uses_custom_buckets() => {
            notes.push(Note::MixedSchemas);
            None
        }
        (Some(prev), Some(next)) => {
            let counter = !prev.h.is_gauge() || !next.h.is_gauge();
            match interpolate_histograms(prev, next, t, counter, notes) {
                Ok(h) => Some(Arc::new(h)),
                Err(_) => {
                    notes.push(Note::MixedSchemas);
                    None
                }
            }
        }
        // The hint was about the sample before this one, not about the value.
        (Some(prev), None) => {
            let mut h = FloatHistogram::clone(&prev.h);
            h.counter_reset_hint = CounterResetHint::Unknown;
            Some(Arc::new(h))
        }
        (None, _) => None,
    };
    (None, histogram)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(points: &[(i64, f64)]) -> Vec<Sample> {
        points.iter().map(|&(t, v)| Sample { t, v }).collect()
    }

    /// Anchored: from the sample at the start to the last, the reset from 20 to 5 added back.
    #[test]
    fn anchored_change_adds_back_resets() {
        let f = floats(&[(0, 10.0), (30, 20.0), (60, 5.0), (75, 8.0)]);
        let anchored = Boundaries { start: 30, end: 80, smoothed: false, counter: true };
        assert_eq!(float_change(&f, anchored), Some(8.0 - 20.0 + 20.0));
        assert_eq!(float_change(&f, Boundaries { counter: false, ..anchored }), Some(8.0 - 20.0));
        assert_eq!(float_change(&f[..1], anchored), None, "nothing after the start");
        assert_eq!(float_change(&[], anchored), None);
    }

    /// Smoothed: between the values interpolated at both ends; a counter interpolates from
    /// zero across its reset (a third of the way from 0 to 5 at 40).
    #[test]
    fn smoothed_change_interpolates_both_ends() {
        let f = floats(&[(0, 10.0), (30, 20.0), (60, 5.0), (90, 14.0)]);
        let smoothed = Boundaries { start: 40, end: 80, smoothed: true, counter: true };
        assert_eq!(float_change(&f, smoothed), Some(11.0 - 50.0 / 30.0));
        assert_eq!(float_change(&f, Boundaries { counter: false, ..smoothed }), Some(11.0 - 15.0));
        assert_eq!(float_change(&f[3..], smoothed), None, "nothing before the end");
    }

    #[test]
    fn instant_range_vectors_get_points_at_the_boundaries() {
        let f = floats(&[(0, 1.0), (20, 2.0), (40, 3.0)]);
        assert_eq!(boundary_points(&f[..2], 10, 30, false), floats(&[(10, 1.0), (20, 2.0), (30, 2.0)]));
        assert_eq!(boundary_points(&f, 10, 30, true), floats(&[(10, 1.5), (20, 2.0), (30, 2.5)]));
        assert_eq!(boundary_points(&f, 40, 50, false), Vec::new());
    }

    #[test]
    fn smoothed_instant_values() {
        let f = floats(&[(0, 1.0), (10, 2.0)]);
        let mut notes = Vec::new();
        assert_eq!(smoothed_at(&f, &[], 5, &mut notes).0, Some(1.5));
        assert_eq!(smoothed_at(&f, &[], 10, &mut notes).0, Some(2.0));
        assert_eq!(smoothed_at(&f, &[], 15, &mut notes).0, Some(2.0));
        assert_eq!(smoothed_at(&f[1..], &[], 5, &mut notes).0, None);
        assert!(notes.is_empty());
    }

    #[test]
    fn anchored_windows_start_at_the_newest_sample_of_either_type() {
        let h = HistogramSample { t: 20, h: Arc::new(FloatHistogram::default()) };
        let f = floats(&[(10, 1.0), (30, 2.0)]);
        assert_eq!(anchored_start(&f, std::slice::from_ref(&h), 25), Some((1, 0)));
        assert_eq!(anchored_start(&f, std::slice::from_ref(&h), 15), Some((0, 0)));
        assert_eq!(anchored_start(&f, &[], 5), Some((0, 0)));
        assert_eq!(anchored_start(&f, &[], 30), None);
    }
}
