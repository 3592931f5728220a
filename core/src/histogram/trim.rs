//! Bucket trimming, the `</` and `>/` operators: `h </ x` keeps the observations below `x`,
//! `h >/ x` those above it. Upstream's `FloatHistogram.TrimBuckets` with its helpers
//! (`computeBucketTrim`, `computeZeroBucketTrim`, `handleInfinityBuckets`, `computeMidpoint`,
//! `Bucket.FractionBelow`), down to the order in which count and sum are accumulated.
//!
//! A bucket that straddles the trim point keeps the share of its count on the kept side,
//! interpolated exponentially (on a log2 scale) within exponential buckets and linearly within
//! custom buckets and the zero bucket. When anything was trimmed, count and sum are recomputed
//! from the surviving buckets, each contributing its count times the midpoint of its surviving
//! interval (geometric for exponential buckets, arithmetic otherwise), and the layout is
//! compacted.

use super::stats::fraction_below;
use super::{Bucket, FloatHistogram};

/// Running totals over the surviving buckets, and whether any bucket count changed.
#[derive(Default)]
struct Totals {
    count: f64,
    sum: f64,
    trimmed: bool,
}

impl Totals {
    fn keep(&mut self, count: f64, midpoint: f64) {
        self.count += count;
        self.sum += midpoint * count;
    }
}

impl FloatHistogram {
    /// `h </ rhs` (`upper` = true: keeps observations below `rhs`) and `h >/ rhs` (`upper` =
    /// false: keeps observations above `rhs`), in place, returning `self` for chaining.
    ///
    /// Buckets entirely on the discarded side are emptied; a bucket containing `rhs` keeps the
    /// interpolated share on the kept side (a bucket reaching to ±Inf is kept or dropped whole,
    /// except that a custom `(-Inf, b]` bucket with positive `b` is treated as `[0, b]`). The
    /// zero bucket is split linearly, over `[0, threshold]` or `[-threshold, 0]` when only one
    /// side has populated buckets. If any count changed, count and sum are recomputed from the
    /// surviving buckets and the histogram is compacted; otherwise it is left exactly as it was.
    pub fn trim_buckets(&mut self, rhs: f64, upper: bool) -> &mut Self {
        let linear = self.uses_custom_buckets();
        let mut totals = Totals::default();

        let positive: Vec<Bucket> = self.positive_side().collect();
        let has_positive = trim_side(&positive, &mut self.positive_buckets, rhs, upper, true, linear, &mut totals);
        let negative: Vec<Bucket> = self.negative_side().collect();
        let has_negative = trim_side(&negative, &mut self.negative_buckets, rhs, upper, false, linear, &mut totals);

        // Upstream would panic on a custom-bucket histogram with a zero count (it has no zero
        // bucket); such a histogram is invalid, and here its zero count is simply trimmed too.
        if self.zero_count > 0.0 {
            let zero = self.zero_bucket();
            let (keep, midpoint) = zero_bucket_trim(&zero, rhs, has_negative, has_positive, upper);
            if self.zero_count != keep {
                self.zero_count = keep;
                totals.trimmed = true;
            }
            totals.keep(keep, midpoint);
        }

        if totals.trimmed {
            self.count = totals.count;
            self.sum = totals.sum;
            self.compact(0);
        }
        self
    }
}

/// Trims one side: `buckets` are the side's buckets with bounds, in the order of `counts`.
/// Returns whether the side had any populated bucket.
fn trim_side(
    buckets: &[Bucket],
    counts: &mut [f64],
    rhs: f64,
    upper: bool,
    positive: bool,
    linear: bool,
    totals: &mut Totals,
) -> bool {
    let mut populated = false;
    for (b, stored) in buckets.iter().zip(counts.iter_mut()) {
        if b.count == 0.0 {
            continue;
        }
        populated = true;
        let (keep_whole, contains) =
            if upper { (b.upper <= rhs, b.lower < rhs) } else { (b.lower >= rhs, b.upper > rhs) };
        if keep_whole {
            totals.keep(b.count, midpoint(b.lower, b.upper, positive, linear));
        } else if contains {
            let (keep, mid) = bucket_trim(b, rhs, upper, positive, linear);
            totals.keep(keep, mid);
            if *stored != keep {
                *stored = keep;
                totals.trimmed = true;
            }
        } else {
            *stored = 0.0;
            totals.trimmed = true;
        }
    }
    populated
}

/// The count a bucket containing `rhs` keeps, and the midpoint of its surviving interval.
fn bucket_trim(b: &Bucket, rhs: f64, upper: bool, positive: bool, linear: bool) -> (f64, f64) {
    if b.lower == f64::NEG_INFINITY || b.upper == f64::INFINITY {
        return infinite_bucket_trim(b, rhs, upper);
    }
    let below = split_below(b, rhs, linear);
    if upper {
        (below, midpoint(b.lower, rhs, positive, linear))
    } else {
        (b.count - below, midpoint(rhs, b.upper, positive, linear))
    }
}

/// [`bucket_trim`] for a bucket with an infinite bound, whose distribution is unknown: it is
/// mostly kept or dropped whole (upstream's `handleInfinityBuckets`).
fn infinite_bucket_trim(b: &Bucket, rhs: f64, upper: bool) -> (f64, f64) {
    let finite_or_zero = |x: f64| if x.is_infinite() { 0.0 } else { x };
    if b.lower == f64::NEG_INFINITY {
        if upper {
            if rhs >= b.upper {
                return (b.count, 0.0);
            }
            if rhs > 0.0 && b.upper > 0.0 && b.upper != f64::INFINITY {
                // Only custom buckets get here: the bucket is taken to start at 0.
                return (b.count * rhs / b.upper, rhs / 2.0);
            }
            if b.upper <= 0.0 {
                return (b.count, rhs);
            }
            return (0.0, finite_or_zero(b.upper));
        }
        if rhs <= b.lower {
            return (b.count, 0.0);
        }
        if rhs >= 0.0 && b.upper > rhs && b.upper != f64::INFINITY {
            // As above, the bucket is taken to start at 0.
            return (b.count * (1.0 - rhs / b.upper), (rhs + b.upper) / 2.0);
        }
        return (0.0, finite_or_zero(b.upper));
    }
    // The upper bound is +Inf.
    if !upper && rhs >= b.lower {
        return (b.count, rhs);
    }
    (0.0, finite_or_zero(b.lower))
}

/// The part of `b`'s count at or below `rhs` (upstream's `computeSplit`).
fn split_below(b: &Bucket, rhs: f64, linear: bool) -> f64 {
    if rhs <= b.lower {
        return 0.0;
    }
    if rhs >= b.upper {
        return b.count;
    }
    b.count * fraction_below(b, rhs, linear)
}

/// The zero bucket's kept count and surviving midpoint. Its observations are taken to be spread
/// linearly over `[-threshold, threshold]`, narrowed to one side of zero when only that side has
/// populated buckets (upstream's `computeZeroBucketTrim`).
fn zero_bucket_trim(zero: &Bucket, rhs: f64, has_negative: bool, has_positive: bool, upper: bool) -> (f64, f64) {
    let mut lower = zero.lower;
    let mut top = zero.upper;
    if has_negative && !has_positive {
        top = 0.0;
    }
    if has_positive && !has_negative {
        lower = 0.0;
    }
    let (fraction, midpoint) = if upper {
        if rhs <= lower {
            return (0.0, 0.0);
        }
        if rhs >= top {
            return (zero.count, (lower + top) / 2.0);
        }
        ((rhs - lower) / (top - lower), (lower + rhs) / 2.0)
    } else {
        if rhs <= lower {
            return (zero.count, (lower + top) / 2.0);
        }
        if rhs >= top {
            return (0.0, 0.0);
        }
        ((top - rhs) / (top - lower), (rhs + top) / 2.0)
    };
    (zero.count * fraction, midpoint)
}

/// Where the observations of the interval `[lower, upper]` are taken to sit on average:
/// the arithmetic mean for linear buckets, the geometric mean (signed) for exponential ones;
/// with an infinite bound, the finite bound (halved if it is a positive upper bound), and 0
/// when both are infinite (upstream's `computeMidpoint`).
fn midpoint(lower: f64, upper: f64, positive: bool, linear: bool) -> f64 {
    if lower.is_infinite() {
        if upper.is_infinite() {
            return 0.0;
        }
        return if upper > 0.0 { upper / 2.0 } else { upper };
    }
    if upper.is_infinite() {
        return lower;
    }
    if linear {
        return (lower + upper) / 2.0;
    }
    let geometric = (lower * upper).abs().sqrt();
    if positive {
        geometric
    } else {
        -geometric
    }
}

#[cfg(test)]
#[allow(clippy::approx_constant)] // the conformance file's trim point, not √2 rounded
mod tests {
    use crate::histogram::{parse_histogram, FloatHistogram};

    /// Input, trim point, `true` for `</`, expected result: the promqltest cases of
    /// `native_histograms.test` ("Test native histogram with trim operators" onwards).
    type Case = (&'static str, f64, bool, &'static str);

    const INF: f64 = f64::INFINITY;
    const NEG_INF: f64 = f64::NEG_INFINITY;

    const H_TEST: &str =
        "{{schema:0 sum:123.75 count:34 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16] n_buckets:[1 2]}}";
    const H_TEST_2: &str =
        "{{schema:2 sum:12.8286080906 count:28 z_bucket:1 z_bucket_w:0.001 buckets:[1 2 4 7 3] n_buckets:[1 5 3 1]}}";
    const H_POS: &str = "{{schema:0 sum:8.0210678118654755 count:12 z_bucket:2 z_bucket_w:0.5 buckets:[10]}}";
    const H_NEG: &str = "{{schema:0 sum:-8.0210678118654755 count:12 z_bucket:2 z_bucket_w:0.5 n_buckets:[10]}}";
    const ZERO_ONLY: &str = "{{schema:0 count:5 sum:0 z_bucket:5 z_bucket_w:0.1 }}";
    const ZERO_BUCKET: &str = "{{schema:0 sum:-6.75 z_bucket:5 z_bucket_w:0.01 buckets:[2 3] n_buckets:[1 2 3]}}";
    const CBH: &str = "{{schema:-53 sum:172.5 count:15 custom_values:[5 10 15 20] buckets:[1 6 4 3 1]}}";
    const CBH_NEG: &str = "{{schema:-53 sum:172.5 count:15 custom_values:[-10 5 10 15 20] buckets:[2 1 6 4 3 1]}}";
    const CBH_ONE: &str = "{{schema:-53 sum:100.0 count:100 buckets:[100]}}";
    const CBH_AT_ZERO: &str = "{{schema:-53 sum:33.0 count:100 custom_values:[0] buckets:[1 100]}}";
    const CBH_AT_POS: &str = "{{schema:-53 sum:33 count:101 custom_values:[5] buckets:[1 100]}}";

    fn check(cases: &[Case]) {
        for &(input, rhs, upper, want) in cases {
            let op = if upper { "</" } else { ">/" };
            let what = format!("{input} {op} {rhs}");
            let mut got = parse_histogram(input).unwrap();
            got.trim_buckets(rhs, upper).compact(0);
            let mut want = parse_histogram(want).unwrap();
            want.compact(0);
            assert_close(&got, &want, &what);
        }
    }

    fn close(a: f64, b: f64) -> bool {
        a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs()) || (a - b).abs() < 1e-12
    }

    fn assert_close(got: &FloatHistogram, want: &FloatHistogram, what: &str) {
        let fail = || format!("{what}: got {got:?}, want {want:?}");
        assert_eq!(got.schema, want.schema, "{}", fail());
        assert_eq!(got.zero_threshold, want.zero_threshold, "{}", fail());
        assert_eq!(got.custom_values, want.custom_values, "{}", fail());
        assert_eq!(got.positive_spans, want.positive_spans, "{}", fail());
        assert_eq!(got.negative_spans, want.negative_spans, "{}", fail());
        let sides = [(&got.positive_buckets, &want.positive_buckets), (&got.negative_buckets, &want.negative_buckets)];
        for (g, w) in sides {
            assert!(g.len() == w.len() && g.iter().zip(w).all(|(a, b)| close(*a, *b)), "{}", fail());
        }
        for (g, w) in [(got.count, want.count), (got.sum, want.sum), (got.zero_count, want.zero_count)] {
            assert!(close(g, w), "{}", fail());
        }
    }

    #[test]
    fn exponential_at_infinity_is_all_or_nothing() {
        check(&[
            (H_TEST, NEG_INF, false, H_TEST),
            (H_TEST, INF, true, H_TEST),
            (H_TEST, INF, false, "{{schema:0 z_bucket_w:0.001}}"),
            (H_TEST, NEG_INF, true, "{{schema:0 z_bucket_w:0.001}}"),
        ]);
    }

    #[test]
    fn exponential_at_zero_splits_the_zero_bucket() {
        check(&[
            (
                H_TEST,
                0.0,
                false,
                "{{schema:0 sum:120.20840280171308 count:30.5 z_bucket:0.5 z_bucket_w:0.001 buckets:[2 4 8 16]}}",
            ),
            (
                H_TEST,
                0.0,
                true,
                "{{schema:0 sum:-3.53578390593273768 count:3.5 z_bucket:0.5 z_bucket_w:0.001 n_buckets:[1 2]}}",
            ),
        ]);
    }

    #[test]
    fn exponential_inside_a_bucket_interpolates_exponentially() {
        check(&[
            (
                H_TEST,
                1.4142135624,
                true,
                "{{count:8 sum:0.2570938865989847 z_bucket:1 z_bucket_w:0.001 buckets:[2 2] n_buckets:[1 2]}}",
            ),
            (H_TEST, 1.4142135624, false, "{{count:26 sum:116.50067065070982 z_bucket_w:0.001 buckets:[0 2 8 16]}}"),
            (
                H_TEST_2,
                1.13,
                true,
                "{{schema:2 count:13.410582181123704 sum:-9.385798726068233 z_bucket:1 z_bucket_w:0.001 buckets:[1 1.410582181123704] n_buckets:[1 5 3 1]}}",
            ),
            (
                H_TEST_2,
                1.13,
                false,
                "{{schema:2 count:14.589417818876296 sum:22.168126492693734 z_bucket_w:0.001 offset:1 buckets:[0.589417818876296 4 7 3]}}",
            ),
        ]);
    }

    #[test]
    fn negative_buckets_interpolate_mirrored() {
        check(&[
            (
                H_TEST_2,
                -1.3,
                false,
                "{{schema:2 count:25.54213947904476 sum:16.29588491217537 z_bucket:1 z_bucket_w:0.001 buckets:[1 2 4 7 3] n_buckets:[1 5 1.54213947904476]}}",
            ),
            (
                H_TEST_2,
                -1.3,
                true,
                "{{schema:2 count:2.45786052095524 sum:-3.5189307983595066 z_bucket_w:0.001 n_offset:2 n_buckets:[1.45786052095524 1]}}",
            ),
        ]);
    }

    #[test]
    fn exponential_on_a_bound_needs_no_interpolation() {
        check(&[
            (
                H_TEST,
                2.0,
                true,
                "{{count:10 sum:3.5355339059327373 z_bucket:1 z_bucket_w:0.001 buckets:[2 4] n_buckets:[1 2]}}",
            ),
            (H_TEST, 2.0, false, "{{count:24 sum:113.13708498984761 z_bucket_w:0.001 offset:2 buckets:[8 16]}}"),
            (
                H_TEST,
                -1.0,
                false,
                "{{count:32 sum:119.50104602052653 z_bucket:1 z_bucket_w:0.001 buckets:[2 4 8 16] n_buckets:[1]}}",
            ),
            (H_TEST, -1.0, true, "{{count:2 sum:-2.8284271247461903 z_bucket_w:0.001 n_offset:1 n_buckets:[2]}}"),
        ]);
    }

    #[test]
    fn zero_bucket_with_one_populated_side_spans_only_that_side() {
        check(&[
            (H_POS, 0.5, false, "{{schema:0 count:10 sum:7.0710678118654755 z_bucket:0 z_bucket_w:0.5 buckets:[10]}}"),
            (
                H_POS,
                0.1,
                false,
                "{{schema:0 count:11.6 sum:7.551067811865476 z_bucket:1.6 z_bucket_w:0.5 buckets:[10]}}",
            ),
            (H_POS, 0.0, false, H_POS),
            (H_POS, 0.5, true, "{{schema:0 count:2 sum:0.5 z_bucket:2 z_bucket_w:0.5}}"),
            (H_POS, 0.1, true, "{{schema:0 count:0.4 sum:0.02 z_bucket:0.4 z_bucket_w:0.5}}"),
            (H_POS, 0.0, true, "{{schema:0 z_bucket_w:0.5}}"),
            (
                H_NEG,
                -0.5,
                true,
                "{{schema:0 count:10 sum:-7.0710678118654755 z_bucket:0 z_bucket_w:0.5 n_buckets:[10]}}",
            ),
            (
                H_NEG,
                -0.1,
                true,
                "{{schema:0 count:11.6 sum:-7.551067811865476 z_bucket:1.6 z_bucket_w:0.5 n_buckets:[10]}}",
            ),
            (H_NEG, 0.0, true, H_NEG),
            (H_NEG, -0.5, false, "{{schema:0 count:2 sum:-0.5 z_bucket:2 z_bucket_w:0.5}}"),
            (H_NEG, -0.1, false, "{{schema:0 count:0.4 sum:-0.02 z_bucket:0.4 z_bucket_w:0.5}}"),
            (H_NEG, 0.0, false, "{{schema:0 z_bucket_w:0.5}}"),
        ]);
    }

    #[test]
    fn zero_bucket_alone_interpolates_linearly() {
        check(&[
            (ZERO_ONLY, 0.1, false, "{{schema:0 count:0 sum:0 z_bucket:0 z_bucket_w:0.1 }}"),
            (ZERO_ONLY, 0.1, true, ZERO_ONLY),
            (ZERO_ONLY, 0.05, false, "{{schema:0 count:1.25 sum:0.09375 z_bucket:1.25 z_bucket_w:0.1 }}"),
            (ZERO_ONLY, 0.05, true, "{{schema:0 count:3.75 sum:-0.09375 z_bucket:3.75 z_bucket_w:0.1 }}"),
            (ZERO_ONLY, 0.0, false, "{{schema:0 count:2.5 sum:0.125 z_bucket:2.5 z_bucket_w:0.1 }}"),
            (ZERO_ONLY, 0.0, true, "{{schema:0 count:2.5 sum:-0.125 z_bucket:2.5 z_bucket_w:0.1 }}"),
            (ZERO_ONLY, -0.05, false, "{{schema:0 count:3.75 sum:0.09375 z_bucket:3.75 z_bucket_w:0.1 }}"),
            (ZERO_ONLY, -0.05, true, "{{schema:0 count:1.25 sum:-0.09375 z_bucket:1.25 z_bucket_w:0.1 }}"),
            (ZERO_ONLY, -0.1, true, "{{schema:0 count:0 sum:0 z_bucket:0 z_bucket_w:0.1 }}"),
            (ZERO_ONLY, -0.1, false, ZERO_ONLY),
            (
                ZERO_BUCKET,
                -0.005,
                true,
                "{{count:7.25 sum:-12.03019028017131 z_bucket:1.25 z_bucket_w:0.01 n_buckets:[1 2 3]}}",
            ),
            (ZERO_BUCKET, 0.0, false, "{{count:7.5 sum:5.669354249492381 z_bucket:2.5 z_bucket_w:0.01 buckets:[2 3]}}"),
        ]);
    }

    #[test]
    fn custom_buckets_on_a_bound_and_inside_a_bucket() {
        check(&[
            (CBH, 15.0, true, "{{schema:-53 count:11 sum:97.5 custom_values:[5 10 15 20] buckets:[1 6 4]}}"),
            (CBH, 15.0, false, "{{schema:-53 count:4 sum:72.5 custom_values:[5 10 15 20] offset:3 buckets:[3 1]}}"),
            (CBH, 13.0, true, "{{schema:-53 count:9.4 sum:75.1 custom_values:[5 10 15 20] buckets:[1 6 2.4]}}"),
            (
                CBH,
                13.0,
                false,
                "{{schema:-53 count:5.6 sum:94.9 custom_values:[5 10 15 20] offset:2 buckets:[1.6 3 1]}}",
            ),
            (CBH, 7.5, true, "{{schema:-53 count:4 sum:21.25 custom_values:[5 10 15 20] buckets:[1 3]}}"),
            (CBH, 0.0, false, CBH),
            (CBH, 0.0, true, "{{schema:-53 custom_values:[5 10 15 20]}}"),
            (CBH_NEG, 2.0, true, "{{schema:-53 count:2.8 sum:-23.2 custom_values:[-10 5 10 15 20] buckets:[2 0.8]}}"),
            (CBH_NEG, -4.0, true, "{{schema:-53 count:2.4 sum:-22.8 custom_values:[-10 5 10 15 20] buckets:[2 0.4]}}"),
            (CBH_NEG, -15.0, true, "{{schema:-53 count:2 sum:-30 custom_values:[-10 5 10 15 20] buckets:[2]}}"),
        ]);
    }

    #[test]
    fn custom_buckets_at_infinity_and_in_infinite_buckets() {
        check(&[
            // The +Inf bucket is dropped whole even though 50 is above its lower bound.
            (CBH, 50.0, true, "{{schema:-53 count:14 sum:150.0 custom_values:[5 10 15 20] buckets:[1 6 4 3]}}"),
            (CBH, NEG_INF, true, "{{schema:-53 custom_values:[5 10 15 20]}}"),
            (CBH, INF, false, "{{schema:-53 custom_values:[5 10 15 20]}}"),
            (CBH, INF, true, CBH),
            (CBH, NEG_INF, false, CBH),
            (CBH_ONE, 10.0, true, "{{schema:-53 sum:0.0 count:0 buckets:[0]}}"),
            (CBH_ONE, 10.0, false, "{{schema:-53 sum:0.0 count:0 buckets:[0]}}"),
            (CBH_ONE, INF, true, CBH_ONE),
            (CBH_ONE, INF, false, "{{schema:-53 sum:0 count:0 buckets:[0]}}"),
            (CBH_ONE, NEG_INF, false, CBH_ONE),
            (CBH_ONE, NEG_INF, true, "{{schema:-53 sum:0 count:0 buckets:[0]}}"),
            (CBH_AT_ZERO, 10.0, true, "{{schema:-53 sum:0.0 count:1 custom_values:[0] buckets:[1 0]}}"),
            (CBH_AT_ZERO, 0.0, true, "{{schema:-53 sum:0.0 count:1 custom_values:[0] buckets:[1 0]}}"),
            (CBH_AT_ZERO, -10.0, true, "{{schema:-53 sum:-10.0 count:1 custom_values:[0] buckets:[1 0]}}"),
            (CBH_AT_ZERO, -10.0, false, "{{schema:-53 sum:0.0 count:100 custom_values:[0] buckets:[0 100]}}"),
            (CBH_AT_ZERO, 0.0, false, "{{schema:-53 sum:0.0 count:100 custom_values:[0] buckets:[0 100]}}"),
            (CBH_AT_ZERO, 10.0, false, "{{schema:-53 sum:1000.0 count:100 custom_values:[0] buckets:[0 100]}}"),
            (CBH_AT_POS, 10.0, true, "{{schema:-53 sum:2.5 count:1 custom_values:[5] buckets:[1 0]}}"),
            (CBH_AT_POS, 2.0, true, "{{schema:-53 sum:0.4 count:0.4 custom_values:[5] buckets:[0.4 0]}}"),
            (CBH_AT_POS, 0.0, true, "{{schema:-53 custom_values:[5]}}"),
            (CBH_AT_POS, -10.0, true, "{{schema:-53 sum:0.0 count:0 custom_values:[5] buckets:[0 0]}}"),
            (CBH_AT_POS, -10.0, false, "{{schema:-53 sum:500.0 count:100 custom_values:[5] buckets:[0 100]}}"),
            (CBH_AT_POS, 0.0, false, CBH_AT_POS),
            (CBH_AT_POS, 2.0, false, "{{schema:-53 sum:502.1 count:100.6 custom_values:[5] buckets:[0.6 100]}}"),
        ]);
    }

    #[test]
    fn untouched_histogram_keeps_its_totals_and_layout() {
        // Nothing trimmed: count and sum are not recomputed and the layout is not compacted.
        let text = "{{schema:0 sum:1 count:3 buckets:[1 0 2]}}";
        let mut h = parse_histogram(text).unwrap();
        h.trim_buckets(100.0, true);
        assert!(h.equals(&parse_histogram(text).unwrap()));
        assert_eq!(h.positive_buckets, vec![1.0, 0.0, 2.0]);
        // Something trimmed: recomputed from geometric midpoints, and compacted.
        h.trim_buckets(1.5, true);
        assert_eq!(h.positive_buckets, vec![1.0]);
        assert_eq!((h.count, h.sum), (1.0, std::f64::consts::FRAC_1_SQRT_2));
    }

    #[test]
    fn nan_trim_point_drops_every_bucket() {
        for upper in [true, false] {
            let mut h = parse_histogram(H_TEST).unwrap();
            h.trim_buckets(f64::NAN, upper);
            assert!(h.positive_buckets.is_empty() && h.negative_buckets.is_empty());
            assert!(h.zero_count.is_nan() && h.count.is_nan() && h.sum.is_nan());
        }
    }
}
