//! Walking a histogram's buckets with their bounds, in the orders upstream's bucket iterators
//! use: one side outward from zero, or all buckets ascending with the zero bucket in between.

use super::bounds::{bound, bucket_bound, is_exponential};
use super::layout::{indexed, reduce_pairs};
use super::{Bucket, FloatHistogram, CUSTOM_BUCKETS_SCHEMA};
use crate::rules::template::go_float;

/// Bucket `index` of a side of `schema`, with its bounds and inclusiveness.
fn make_bucket(index: i32, count: f64, schema: i32, custom: &[f64], positive: bool) -> Bucket {
    let (below, at) = (bound(index.wrapping_sub(1), schema, custom), bound(index, schema, custom));
    let (lower, upper) = if positive { (below, at) } else { (-at, -below) };
    let (lower_inclusive, upper_inclusive) =
        if schema == CUSTOM_BUCKETS_SCHEMA { (index == 0, true) } else { (lower < 0.0, upper > 0.0) };
    Bucket { lower, upper, lower_inclusive, upper_inclusive, count, index }
}

impl FloatHistogram {
    /// The positive buckets, ascending.
    pub(super) fn positive_side(&self) -> impl Iterator<Item = Bucket> + '_ {
        indexed(&self.positive_spans, &self.positive_buckets)
            .map(|(i, c)| make_bucket(i, c, self.schema, &self.custom_values, true))
    }

    /// The negative buckets, from zero downward.
    pub(super) fn negative_side(&self) -> impl Iterator<Item = Bucket> + '_ {
        indexed(&self.negative_spans, &self.negative_buckets).map(|(i, c)| make_bucket(i, c, self.schema, &[], false))
    }

    /// The zero bucket, `[-threshold, threshold]`, whatever its count.
    pub(super) fn zero_bucket(&self) -> Bucket {
        Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
            index: 0,
        }
    }

    /// The (bucket index, count) pairs of one side, ascending from zero.
    pub fn indexed_buckets(&self, positive: bool) -> impl Iterator<Item = (i32, f64)> + '_ {
        match positive {
            true => indexed(&self.positive_spans, &self.positive_buckets),
            false => indexed(&self.negative_spans, &self.negative_buckets),
        }
    }

    /// The histogram as upstream's `String` prints it, which `count_values` makes a label value
    /// of: `{count:20, sum:10, [-2,-1):2, [-0.001,0.001]:2, (0.5,1]:1}`, buckets that hold
    /// observations in ascending order.
    pub fn go_string(&self) -> String {
        let show = |b: &Bucket| {
            format!(
                "{}{},{}{}:{}",
                if b.lower_inclusive { '[' } else { '(' },
                go_float(b.lower, None),
                go_float(b.upper, None),
                if b.upper_inclusive { ']' } else { ')' },
                go_float(b.count, None)
            )
        };
        let mut out = format!("{{count:{}, sum:{}", go_float(self.count, None), go_float(self.sum, None));
        let mut negative: Vec<Bucket> = self.negative_side().filter(|b| b.count != 0.0).collect();
        negative.reverse();
        let zero = (self.zero_count != 0.0).then(|| self.zero_bucket());
        let positive = self.positive_side().filter(|b| b.count != 0.0);
        for b in negative.iter().chain(zero.as_ref()).chain(positive.collect::<Vec<_>>().iter()) {
            out.push_str(", ");
            out.push_str(&show(b));
        }
        out.push('}');
        out
    }

    /// Every bucket in ascending order of value: negative ones from the most negative, the zero
    /// bucket if it holds observations, then positive ones. A bucket reaching into the zero
    /// bucket is cut at the zero threshold (upstream's `AllBucketIterator`); iterate the result
    /// backwards for upstream's `AllReverseBucketIterator`.
    pub fn buckets(&self) -> Vec<Bucket> {
        let zt = self.zero_threshold;
        let mut out: Vec<Bucket> = self.negative_side().collect();
        out.reverse();
        for b in &mut out {
            if b.upper < 0.0 && b.upper > -zt {
                b.upper = -zt;
            }
        }
        if self.zero_count > 0.0 && !self.uses_custom_buckets() {
            out.push(Bucket {
                lower: -zt,
                upper: zt,
                lower_inclusive: true,
                upper_inclusive: true,
                count: self.zero_count,
                index: 0,
            });
        }
        out.extend(self.positive_side().map(|mut b| {
            if b.lower > 0.0 && b.lower < zt {
                b.lower = zt;
            }
            b
        }));
        out
    }

    /// One side's (index, count) pairs merged into `target_schema` (≤ the schema), without the
    /// leading exponential buckets whose upper bound is at most `absolute_start` (none if it is
    /// 0). Upstream's `floatBucketIterator`, stripped of bounds.
    pub(super) fn side_pairs(&self, positive: bool, absolute_start: f64, target_schema: i32) -> Vec<(i32, f64)> {
        let (spans, buckets) = if positive {
            (&self.positive_spans, &self.positive_buckets)
        } else {
            (&self.negative_spans, &self.negative_buckets)
        };
        let mut pairs = if target_schema == self.schema {
            indexed(spans, buckets).collect()
        } else {
            reduce_pairs(indexed(spans, buckets), self.schema, target_schema)
        };
        if absolute_start != 0.0 && is_exponential(target_schema) {
            let skip = pairs.iter().take_while(|(i, _)| bucket_bound(*i, target_schema) <= absolute_start).count();
            pairs.drain(..skip);
        }
        pairs
    }
}

#[cfg(test)]
#[allow(clippy::approx_constant)] // upstream's bounds, not the std constants
mod tests {
    use crate::histogram::parse_histogram;

    fn bounds(text: &str) -> Vec<(f64, f64, f64)> {
        parse_histogram(text).unwrap().buckets().iter().map(|b| (b.lower, b.upper, b.count)).collect()
    }

    #[test]
    fn all_buckets_ascending() {
        assert_eq!(
            bounds("{{schema:0 z_bucket:2 z_bucket_w:0.5 buckets:[1 2] n_buckets:[3 4]}}"),
            vec![(-2.0, -1.0, 4.0), (-1.0, -0.5, 3.0), (-0.5, 0.5, 2.0), (0.5, 1.0, 1.0), (1.0, 2.0, 2.0)]
        );
        // Buckets overlapping the zero bucket are cut at the threshold; an empty zero bucket is
        // left out.
        assert_eq!(
            bounds("{{schema:0 z_bucket_w:0.7 buckets:[1 2] n_buckets:[3]}}"),
            vec![(-1.0, -0.7, 3.0), (0.7, 1.0, 1.0), (1.0, 2.0, 2.0)]
        );
    }

    #[test]
    fn custom_buckets_run_from_minus_to_plus_infinity() {
        let h = parse_histogram("{{schema:-53 custom_values:[1 5] buckets:[1 2 3]}}").unwrap();
        let b = h.buckets();
        assert_eq!(
            b.iter().map(|b| (b.lower, b.upper, b.lower_inclusive, b.upper_inclusive)).collect::<Vec<_>>(),
            vec![(f64::NEG_INFINITY, 1.0, true, true), (1.0, 5.0, false, true), (5.0, f64::INFINITY, false, true)]
        );
    }

    #[test]
    fn exponential_inclusiveness() {
        let h = parse_histogram("{{schema:1 buckets:[1] offset:2 n_buckets:[1]}}").unwrap();
        let b = h.buckets();
        assert_eq!(
            (b[0].lower, b[0].upper, b[0].lower_inclusive, b[0].upper_inclusive),
            (-1.0, -0.7071067811865475, true, false)
        );
        assert_eq!(
            (b[1].lower, b[1].upper, b[1].lower_inclusive, b[1].upper_inclusive),
            (1.414213562373095, 2.0, false, true)
        );
        assert_eq!(b[1].index, 2);
    }

    #[test]
    fn side_pairs_merge_and_skip() {
        let h = parse_histogram("{{schema:1 buckets:[1 2 3 4 5] offset:-1}}").unwrap();
        // Schema 1 indexes −1…3 fall into schema 0 buckets 0, 0, 1, 1, 2.
        assert_eq!(h.side_pairs(true, 0.0, 0), vec![(0, 3.0), (1, 7.0), (2, 5.0)]);
        // Skipping buckets that end at or below 1 (indexes −1 and 0 of schema 1).
        assert_eq!(h.side_pairs(true, 1.0, 1), vec![(1, 3.0), (2, 4.0), (3, 5.0)]);
    }
}
