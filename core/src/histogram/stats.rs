//! The statistics PromQL derives from one native histogram: `histogram_quantile`,
//! `histogram_fraction`, `histogram_stddev`/`histogram_stdvar` and `histogram_avg`, with
//! upstream's interpolation rules (`promql/quantile.go`, `promql/functions.go`): logarithmic
//! within exponential buckets, linear within the zero bucket and custom buckets.

use super::gomath::{exp2, log2};
use super::{Bucket, FloatHistogram};
use crate::kahan;

/// An info-level condition a statistic found; the caller turns it into an annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsInfo {
    /// The quantile lies beyond every bucket because of NaN observations; the result is NaN.
    QuantileNaNResult,
    /// The histogram has NaN observations (counted as +Inf), so the quantile is skewed higher.
    QuantileNaNSkew,
    /// The histogram has NaN observations, which no fraction includes.
    FractionNaNs,
}

impl StatsInfo {
    /// Upstream's annotation text (without the "PromQL info: " prefix and the metric name).
    pub fn message(self) -> &'static str {
        match self {
            StatsInfo::QuantileNaNResult => "input to histogram_quantile has NaN observations, result is NaN",
            StatsInfo::QuantileNaNSkew => "input to histogram_quantile has NaN observations, result is skewed higher",
            StatsInfo::FractionNaNs => {
                "input to histogram_fraction has NaN observations, which are excluded from all fractions"
            }
        }
    }
}

/// `histogram_quantile(q, h)`: −Inf below 0, +Inf above 1, NaN for NaN `q` or an empty histogram.
/// The quantile is interpolated within its bucket: exponentially in exponential buckets, linearly
/// in the zero bucket and in custom buckets. A zero bucket next to buckets of one sign only is
/// taken to start (or end) at 0; in custom buckets the first bucket is taken to start at 0 if
/// its upper bound is positive (else that bound is the answer) and the +Inf bucket answers its
/// lower bound. A NaN sum marks NaN observations and is reported through [`StatsInfo`].
pub fn quantile(q: f64, h: &FloatHistogram) -> (f64, Option<StatsInfo>) {
    if q < 0.0 {
        return (f64::NEG_INFINITY, None);
    }
    if q > 1.0 {
        return (f64::INFINITY, None);
    }
    if h.count == 0.0 || q.is_nan() {
        return (f64::NAN, None);
    }
    let custom = h.uses_custom_buckets();
    // Upward from the lowest bucket for low quantiles (and whenever there are NaN observations,
    // which only the total count includes), downward from the highest otherwise.
    let forward = h.sum.is_nan() || q < 0.5;
    let mut all = h.buckets();
    if !forward {
        all.reverse();
    }
    let mut rank = if forward { q * h.count } else { (1.0 - q) * h.count };
    let mut count = 0.0;
    let mut bucket = Bucket::default();
    let mut next = 0;
    while let Some(&b) = all.get(next) {
        next += 1;
        bucket = b;
        if b.count == 0.0 {
            continue;
        }
        count += b.count;
        if count >= rank {
            break;
        }
    }
    if !custom && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            bucket.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            bucket.upper = 0.0;
        }
    } else if custom {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return (bucket.upper, None);
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return (bucket.lower, None);
        }
    }
    // Rounding may let the bucket counts exceed the total.
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        // Ran past the last bucket: only NaN observations explain that.
        if h.sum.is_nan() {
            return (f64::NAN, Some(StatsInfo::QuantileNaNResult));
        }
        return (bucket.upper, None);
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    let mut info = None;
    if h.sum.is_nan() {
        count += all[next..].iter().map(|b| b.count).sum::<f64>();
        if count < h.count {
            info = Some(StatsInfo::QuantileNaNSkew);
        }
    }
    let fraction = rank / bucket.count;
    if custom || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return (bucket.lower + (bucket.upper - bucket.lower) * fraction, info);
    }
    let log_lower = log2(bucket.lower.abs());
    let log_upper = log2(bucket.upper.abs());
    if bucket.lower > 0.0 {
        return (exp2(log_lower + (log_upper - log_lower) * fraction), info);
    }
    (-exp2(log_upper + (log_lower - log_upper) * (1.0 - fraction)), info)
}

/// The share of `b`'s width at or below `v` (strictly inside the bucket): linear, or on a log
/// scale for exponential buckets (mirrored for negative ones). Upstream's `FractionBelow`.
pub(super) fn fraction_below(b: &Bucket, v: f64, linear: bool) -> f64 {
    if linear {
        return (v - b.lower) / (b.upper - b.lower);
    }
    let log_lower = log2(b.lower.abs());
    let log_upper = log2(b.upper.abs());
    let log_v = log2(v.abs());
    if v > 0.0 {
        (log_v - log_lower) / (log_upper - log_lower)
    } else {
        1.0 - (log_v - log_upper) / (log_lower - log_upper)
    }
}

/// `histogram_fraction(lower, upper, h)`: the estimated share of observations between the two
/// values, interpolated like [`quantile`] (the inverse of it). NaN for an empty histogram or a
/// NaN bound, 0 if `lower >= upper`. Buckets with an infinite bound are never interpolated into.
/// NaN observations (a NaN sum with buckets short of the count) are in no fraction; that is
/// reported through [`StatsInfo`].
pub fn fraction(lower: f64, upper: f64, h: &FloatHistogram) -> (f64, Option<StatsInfo>) {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return (f64::NAN, None);
    }
    if lower >= upper {
        return (0.0, None);
    }
    let custom = h.uses_custom_buckets();
    let all = h.buckets();
    let (mut count, mut rank) = (0.0, 0.0);
    let (mut lower_rank, mut upper_rank) = (None, None);
    let mut next = 0;
    while let Some(&found) = all.get(next) {
        next += 1;
        let mut b = found;
        count += b.count;
        let zero_bucket = b.lower <= 0.0 && b.upper >= 0.0;
        if zero_bucket {
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        }
        let linear = custom || zero_bucket;
        let interpolate = |v: f64| {
            if linear && b.lower == f64::NEG_INFINITY {
                // No interpolation into an infinitely wide bucket: all of it counts as below.
                b.count
            } else {
                rank + b.count * fraction_below(&b, v, linear)
            }
        };
        if lower_rank.is_none() && b.lower >= lower {
            lower_rank = Some(rank);
        }
        if upper_rank.is_none() && b.lower >= upper {
            upper_rank = Some(rank);
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        if lower_rank.is_none() && b.lower < lower && b.upper > lower {
            lower_rank = Some(interpolate(lower));
        }
        if upper_rank.is_none() && b.lower < upper && b.upper > upper {
            upper_rank = Some(interpolate(upper));
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        rank += b.count;
    }
    let mut info = None;
    if h.sum.is_nan() {
        count += all[next..].iter().map(|b| b.count).sum::<f64>();
        if count < h.count {
            info = Some(StatsInfo::FractionNaNs);
        }
    } else {
        count = h.count;
    }
    let clamp = |r: Option<f64>| match r {
        Some(r) if r > count => count,
        Some(r) => r,
        None => count,
    };
    ((clamp(upper_rank) - clamp(lower_rank)) / h.count, info)
}

/// `histogram_stdvar(h)`: the variance of the observations around `sum / count`, each bucket
/// represented by one value: the geometric mean of its bounds (exponential buckets), 0 (the zero
/// bucket) or the arithmetic mean of its bounds (custom buckets).
pub fn stdvar(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let custom = h.uses_custom_buckets();
    let (mut variance, mut c) = (0.0, 0.0);
    for b in h.buckets().iter().filter(|b| b.count != 0.0) {
        let value = if custom {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let geometric = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 {
                -geometric
            } else {
                geometric
            }
        };
        let delta = value - mean;
        (variance, c) = kahan::inc(b.count * delta * delta, variance, c);
    }
    (variance + c) / h.count
}

/// `histogram_stddev(h)`: the square root of [`stdvar`].
pub fn stddev(h: &FloatHistogram) -> f64 {
    stdvar(h).sqrt()
}

/// `histogram_avg(h)`: `sum / count`.
pub fn avg(h: &FloatHistogram) -> f64 {
    h.sum / h.count
}
