//! One series' samples gathered from sources whose times overlap — blocks that overlap (out-of-
//! order data written beside in-order data), the head's in-order and out-of-order samples —
//! made one sequence as upstream's merging iterator makes it (`chainSampleIterator`).
//!
//! * Sorted by time, each time once: the first copy of a type (the caller gives older sources
//!   first), and a float over a histogram at the same time, so that every reader of the same
//!   data keeps the same sample.
//! * A counter histogram's reset hint was found against the histogram before it in its own
//!   source; merged, that may be another one, so every hint but "gauge" becomes unknown once
//!   histograms from several sources interleave, and readers find resets from the counts.

use pyrite_core::histogram::{CounterResetHint, FloatHistogram};

/// Merges `floats` and `histograms` (each the concatenation of its sources) as the module
/// says; leaves them as they are when no source overlapped another.
pub fn merge<F, H>(
    floats: &mut Vec<F>,
    histograms: &mut Vec<H>,
    float_time: impl Fn(&F) -> i64,
    histogram_time: impl Fn(&H) -> i64,
    histogram: impl Fn(&mut H) -> &mut FloatHistogram,
) {
    if !increasing(floats.iter().map(&float_time)) {
        floats.sort_by_key(&float_time);
        floats.dedup_by_key(|f| float_time(f));
    }
    if !increasing(histograms.iter().map(&histogram_time)) {
        histograms.sort_by_key(&histogram_time);
        histograms.dedup_by_key(|h| histogram_time(h));
        for h in histograms.iter_mut().map(histogram) {
            forget_reset_hint(h);
        }
    }
    if !floats.is_empty() && !histograms.is_empty() {
        histograms.retain(|h| floats.binary_search_by_key(&histogram_time(h), &float_time).is_err());
    }
}

fn increasing(mut times: impl Iterator<Item = i64>) -> bool {
    let mut previous = None;
    times.all(|t| previous.replace(t).is_none_or(|p| p < t))
}

/// Leaves a counter histogram's reset hint unknown (a gauge histogram's stays "gauge").
pub fn forget_reset_hint(h: &mut FloatHistogram) {
    if !h.is_gauge() {
        h.counter_reset_hint = CounterResetHint::Unknown;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(count: f64, hint: CounterResetHint) -> FloatHistogram {
        FloatHistogram { count, counter_reset_hint: hint, ..FloatHistogram::default() }
    }

    fn merged(floats: &[i64], histograms: &[(i64, FloatHistogram)]) -> (Vec<i64>, Vec<(i64, FloatHistogram)>) {
        let (mut f, mut h) = (floats.to_vec(), histograms.to_vec());
        merge(&mut f, &mut h, |t| *t, |x| x.0, |x| &mut x.1);
        (f, h)
    }

    #[test]
    fn sources_in_order_are_left_as_they_are() {
        let histograms = [(1, h(1.0, CounterResetHint::NotCounterReset)), (2, h(0.0, CounterResetHint::CounterReset))];
        assert_eq!(merged(&[0, 3], &histograms), (vec![0, 3], histograms.to_vec()));
    }

    #[test]
    fn interleaved_sources_are_sorted_each_time_once_hints_unknown_but_gauges() {
        use CounterResetHint::*;
        let histograms =
            [(10, h(1.0, NotCounterReset)), (30, h(3.0, Gauge)), (20, h(2.0, CounterReset)), (10, h(9.0, Unknown))];
        let (floats, histograms) = merged(&[5, 1, 5, 30], &histograms);
        assert_eq!(floats, [1, 5, 30]);
        // The first copy of 10; 30 is a float's.
        assert_eq!(histograms, [(10, h(1.0, Unknown)), (20, h(2.0, Unknown))]);
        let (_, gauges) = merged(&[], &[(2, h(2.0, Gauge)), (1, h(1.0, Gauge))]);
        assert_eq!(gauges, [(1, h(1.0, Gauge)), (2, h(2.0, Gauge))]);
    }
}
