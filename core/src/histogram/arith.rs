//! Adding and subtracting histograms (upstream's `Add`/`Sub`): the result takes the lower of the
//! two schemas and the wider zero bucket, bucket layouts are merged, and custom-bucket
//! histograms with different bounds are mapped onto the bounds both have (upstream ≥ 3.8
//! reconciles them instead of refusing; the caller learns of it through [`AddOutcome`]).

use std::cmp::Ordering;

use super::bounds::{bucket_bound, is_exponential};
use super::layout::{bounds_match, from_indexed, indexed, reduce_pairs};
use super::{AddOutcome, CounterResetHint, FloatHistogram, HistogramError, Span};
use crate::kahan;

impl FloatHistogram {
    /// Adds `other` into this histogram. The result may hold empty buckets; see
    /// [`compact`](Self::compact). Exponential and custom buckets cannot be mixed.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<AddOutcome, HistogramError> {
        self.combine(other, false)
    }

    /// Subtracts `other` like [`add`](Self::add) adds it. The counter-reset hint is merged as for
    /// addition; the `-` operator marks its result a gauge itself.
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<AddOutcome, HistogramError> {
        self.combine(other, true)
    }

    fn combine(&mut self, other: &FloatHistogram, subtract: bool) -> Result<AddOutcome, HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::MixedSchemas);
        }
        let sign = if subtract { -1.0 } else { 1.0 };
        let mut outcome =
            AddOutcome { counter_reset_collision: self.merge_counter_reset_hint(other), ..Default::default() };
        if !self.uses_custom_buckets() {
            let other_zero_count = self.reconcile_zero_buckets(other);
            if subtract {
                self.zero_count -= other_zero_count;
            } else {
                self.zero_count += other_zero_count;
            }
        }
        if subtract {
            self.count -= other.count;
            self.sum -= other.sum;
        } else {
            self.count += other.count;
            self.sum += other.sum;
        }

        if self.uses_custom_buckets() {
            if bounds_match(&self.custom_values, &other.custom_values) {
                let theirs = indexed(&other.positive_spans, &other.positive_buckets).map(|(i, c)| (i, c * sign));
                (self.positive_spans, self.positive_buckets) =
                    merge(&self.positive_spans, &self.positive_buckets, theirs);
            } else {
                outcome.custom_bounds_reconciled = true;
                self.add_mismatched_custom(other, subtract);
            }
            return Ok(outcome);
        }

        if other.schema < self.schema {
            self.reduce_unchecked(other.schema);
        }
        let schema = self.schema;
        let threshold = self.zero_threshold;
        let theirs = |spans: &[Span], buckets: &[f64]| -> Vec<(i32, f64)> {
            let pairs: Vec<(i32, f64)> = if other.schema > schema {
                reduce_pairs(indexed(spans, buckets), other.schema, schema)
            } else {
                indexed(spans, buckets).collect()
            };
            // Their buckets inside our (possibly wider) zero bucket are already in its count. A
            // zero bucket of width 0 holds no bucket, even one whose bound underflows to 0
            // (index near i32::MIN), which would otherwise never be cancelled by a subtraction.
            let inside = pairs
                .iter()
                .take_while(|(i, _)| is_exponential(schema) && threshold > 0.0 && bucket_bound(*i, schema) <= threshold)
                .count();
            pairs[inside..].iter().map(|&(i, c)| (i, c * sign)).collect()
        };
        let pos = theirs(&other.positive_spans, &other.positive_buckets);
        (self.positive_spans, self.positive_buckets) = merge(&self.positive_spans, &self.positive_buckets, pos);
        let neg = theirs(&other.negative_spans, &other.negative_buckets);
        (self.negative_spans, self.negative_buckets) = merge(&self.negative_spans, &self.negative_buckets, neg);
        Ok(outcome)
    }

    /// Upstream's `adjustCounterReset`: equal hints stay, a gauge operand makes a gauge, an
    /// unknown one makes unknown; reset against not-reset is a collision (hint unknown, `true`).
    fn merge_counter_reset_hint(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::{Gauge, Unknown};
        let (mine, theirs) = (self.counter_reset_hint, other.counter_reset_hint);
        if mine == theirs || mine == Gauge {
            return false;
        }
        if theirs == Gauge {
            self.counter_reset_hint = Gauge;
            return false;
        }
        if mine == Unknown {
            return false;
        }
        self.counter_reset_hint = Unknown;
        theirs != Unknown
    }

    /// Widens the zero bucket until both histograms' thresholds agree and neither falls inside
    /// a populated bucket, folding our buckets inside it into our zero count. Returns the zero
    /// count `other` would have with that threshold (`other` itself is left alone).
    fn reconcile_zero_buckets(&mut self, other: &FloatHistogram) -> f64 {
        let mut other_zero_count = other.zero_count;
        let mut other_threshold = other.zero_threshold;
        // Until equal; a NaN threshold compares neither way and ends it too.
        loop {
            match self.zero_threshold.partial_cmp(&other_threshold) {
                Some(Ordering::Greater) => {
                    (other_zero_count, other_threshold) = other.zero_count_for_larger_threshold(self.zero_threshold);
                }
                Some(Ordering::Less) => {
                    (self.zero_count, self.zero_threshold) = self.zero_count_for_larger_threshold(other_threshold);
                    self.clear_buckets_in_zero_bucket();
                }
                _ => break,
            }
        }
        other_zero_count
    }

    /// The zero count for a threshold of at least `larger` (≥ the current one), and the threshold
    /// actually needed: if `larger` falls inside a populated bucket, it grows to that bucket's
    /// outer bound.
    pub(super) fn zero_count_for_larger_threshold(&self, mut larger: f64) -> (f64, f64) {
        if larger == self.zero_threshold {
            return (self.zero_count, larger);
        }
        'again: loop {
            let mut zero_count = self.zero_count;
            for b in self.positive_side() {
                if b.lower >= larger {
                    break;
                }
                zero_count += b.count;
                if b.upper > larger {
                    if b.count != 0.0 {
                        larger = b.upper;
                    }
                    break;
                }
            }
            for b in self.negative_side() {
                if b.upper <= -larger {
                    break;
                }
                zero_count += b.count;
                if b.lower < -larger {
                    if b.count != 0.0 {
                        // The positive side was measured against the old threshold.
                        larger = -b.lower;
                        continue 'again;
                    }
                    break;
                }
            }
            return (zero_count, larger);
        }
    }

    /// Empties the buckets inside the zero bucket (their counts are already in the zero count)
    /// and compacts, as upstream's `trimBucketsInZeroBucket`.
    fn clear_buckets_in_zero_bucket(&mut self) {
        let zt = self.zero_threshold;
        let positive = self.positive_side().take_while(|b| b.lower < zt).count();
        self.positive_buckets.iter_mut().take(positive).for_each(|c| *c = 0.0);
        let negative = self.negative_side().take_while(|b| b.upper > -zt).count();
        self.negative_buckets.iter_mut().take(negative).for_each(|c| *c = 0.0);
        self.compact(0);
    }

    /// Maps both histograms' buckets onto the custom bounds they share and adds (or subtracts)
    /// there; empty result buckets are dropped (upstream's `addCustomBucketsWithMismatches`).
    fn add_mismatched_custom(&mut self, other: &FloatHistogram, subtract: bool) {
        let shared = shared_bounds(&self.custom_values, &other.custom_values);
        let mut sums = vec![(0.0, 0.0); shared.len() + 1];
        let mut map_into = |spans: &[Span], buckets: &[f64], bounds: &[f64], sign: f64| {
            let mut next_shared = 0;
            for (index, count) in indexed(spans, buckets) {
                let mut target = shared.len();
                if let Some(&bound) = usize::try_from(index).ok().and_then(|i| bounds.get(i)) {
                    while next_shared < shared.len() {
                        if shared[next_shared] >= bound {
                            target = next_shared;
                            break;
                        }
                        next_shared += 1;
                    }
                }
                let (sum, c) = sums[target];
                sums[target] = kahan::inc(count * sign, sum, c);
            }
        };
        map_into(&self.positive_spans, &self.positive_buckets, &self.custom_values, 1.0);
        map_into(
            &other.positive_spans,
            &other.positive_buckets,
            &other.custom_values,
            if subtract { -1.0 } else { 1.0 },
        );
        let kept = sums.iter().enumerate().filter(|(_, &(sum, c))| sum != 0.0 || c != 0.0);
        (self.positive_spans, self.positive_buckets) = from_indexed(kept.map(|(i, &(sum, _))| (i as i32, sum)));
        self.custom_values = shared;
    }
}

/// Our (index, count) pairs with `theirs` (ascending) added in: shared indexes are summed, new
/// ones inserted in order.
fn merge(spans: &[Span], buckets: &[f64], theirs: impl IntoIterator<Item = (i32, f64)>) -> (Vec<Span>, Vec<f64>) {
    let mut mine = indexed(spans, buckets).peekable();
    let mut out = Vec::with_capacity(buckets.len());
    for (index, count) in theirs {
        while let Some(&(i, c)) = mine.peek().filter(|(i, _)| *i < index) {
            out.push((i, c));
            mine.next();
        }
        match mine.peek() {
            Some(&(i, c)) if i == index => {
                out.push((i, c + count));
                mine.next();
            }
            _ => out.push((index, count)),
        }
    }
    out.extend(mine);
    from_indexed(out)
}

/// The custom bounds present in both lists (both ascending).
fn shared_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(a[i]);
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}
