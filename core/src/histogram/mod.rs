//! Native histograms as PromQL computes with them: the float histogram (absolute bucket counts,
//! exponential or custom bounds), its arithmetic, reset detection and layout maintenance, the
//! statistics functions (`histogram_quantile`, `histogram_fraction`, …), validation of histograms
//! from outside the process and the test notation.
//!
//! The semantics follow upstream's `model/histogram` and `promql/quantile.go` so that results,
//! including their floating-point rounding where practical, match Prometheus. The types live
//! here; each operation family has its own file.

mod arith;
mod bounds;
mod gomath;
mod iter;
mod layout;
pub mod notation;
mod reset;
pub mod stats;
mod trim;
mod validate;

pub use bounds::bucket_bound;
pub use notation::parse_histogram;
pub use stats::{avg, fraction, quantile, stddev, stdvar, StatsInfo};
pub(crate) use validate::check_size;
pub use validate::{check_integer_count, MAX_BUCKETS};

use crate::rules::template::go_float;

/// The schema of histograms with custom (explicitly listed) bucket bounds.
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;
/// The lowest exponential schema (the coarsest resolution: each bucket spans a factor 2^16).
pub const MIN_SCHEMA: i32 = -4;
/// The highest exponential schema (the finest resolution: 256 buckets per power of two).
pub const MAX_SCHEMA: i32 = 8;

/// A run of `length` consecutive buckets, starting `offset` indices after the previous run's end
/// (for the first run: at index `offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// What a histogram sample says about counter resets, or that it is a gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CounterResetHint {
    #[default]
    Unknown,
    CounterReset,
    NotCounterReset,
    Gauge,
}

/// A native histogram with float counts; bucket counts are absolute, not deltas.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatHistogram {
    pub counter_reset_hint: CounterResetHint,
    /// −4…8 for exponential buckets, [`CUSTOM_BUCKETS_SCHEMA`] for custom bounds.
    pub schema: i32,
    /// Observations with an absolute value up to this fall into the zero bucket.
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    /// One absolute count per bucket the positive spans describe.
    pub positive_buckets: Vec<f64>,
    /// One absolute count per bucket the negative spans describe.
    pub negative_buckets: Vec<f64>,
    /// Only for [`CUSTOM_BUCKETS_SCHEMA`]: the ascending upper bounds, without the final +Inf.
    pub custom_values: Vec<f64>,
}

/// One bucket with its bounds, as the histogram is iterated.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: f64,
    /// The bucket's index within its schema and sign (meaningless for the zero bucket).
    pub index: i32,
}

/// Why an operation on histograms was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistogramError {
    /// One operand has exponential buckets, the other custom ones.
    #[error("cannot apply this operation on histograms with a mix of exponential and custom bucket schemas")]
    MixedSchemas,
    /// Resolution reduction asked of a histogram with custom buckets.
    #[error("cannot reduce resolution when there are custom buckets")]
    ReduceCustomBuckets,
    /// Resolution reduction asked to produce custom buckets.
    #[error("cannot reduce resolution to custom buckets schema")]
    ReduceToCustomBuckets,
    /// Resolution reduction to a schema that is not lower.
    #[error("cannot reduce resolution from schema {from} to {to}")]
    NotAReduction { from: i32, to: i32 },
    /// A span after the first has a negative offset (1-based span number).
    #[error("span number {span} with offset {offset}: histogram has a span whose offset is negative")]
    NegativeSpanOffset { span: usize, offset: i32 },
    /// The spans describe a different number of buckets than there are.
    #[error(
        "spans need {needed} buckets, have {have} buckets: histogram spans specify different number of buckets than provided"
    )]
    SpansBucketsMismatch { needed: usize, have: usize },
    /// The schema is neither exponential nor [`CUSTOM_BUCKETS_SCHEMA`].
    #[error(
        "histogram has an invalid schema, which must be between {MIN_SCHEMA} and {MAX_SCHEMA} for exponential buckets, or {CUSTOM_BUCKETS_SCHEMA} for custom buckets, got schema {0}"
    )]
    InvalidSchema(i32),
    /// An error of one side's spans or buckets (`side` is "positive" or "negative").
    #[error("{side} side: {error}")]
    Side { side: &'static str, error: Box<HistogramError> },
    /// An error of the custom bounds or the spans of a custom-buckets histogram.
    #[error("custom buckets: {0}")]
    CustomBuckets(Box<HistogramError>),
    /// A bucket (1-based number within its side) counts fewer than no observations.
    #[error("bucket number {bucket} has observation count of {}: histogram has a bucket whose observation count is negative", go_float(*.count, None))]
    NegativeBucketCount { bucket: usize, count: f64 },
    #[error("zero bucket has observation count of {}: histogram has a bucket whose observation count is negative", go_float(*.0, None))]
    NegativeZeroCount(f64),
    #[error("observation count is {}: histogram's observation count is negative", go_float(*.0, None))]
    NegativeCount(f64),
    #[error("histogram with exponential schema must not have custom bounds")]
    ExponentialWithCustomBounds,
    #[error("histogram custom bounds must not be NaN")]
    CustomBoundNaN,
    #[error(
        "previous bound is {previous:.6} and current is {current:.6}: histogram custom bounds must be in strictly increasing order"
    )]
    CustomBoundsNotIncreasing { previous: f64, current: f64 },
    #[error("last +Inf bound must not be explicitly defined: histogram custom bounds must be finite")]
    CustomBoundInfinite,
    /// The spans reach past the bucket above the last custom bound.
    #[error(
        "only {bounds} custom bounds defined which is insufficient to cover total span length of {reached}: histogram custom bounds are too few"
    )]
    CustomBoundsTooFew { bounds: usize, reached: u64 },
    #[error("custom buckets: must have zero count of 0")]
    CustomZeroCount,
    #[error("custom buckets: must have zero threshold of 0")]
    CustomZeroThreshold,
    #[error("custom buckets: must not have negative spans")]
    CustomNegativeSpans,
    #[error("custom buckets: must not have negative buckets")]
    CustomNegativeBuckets,
    /// An integer histogram's count is not the observations in its buckets.
    #[error(
        "{in_buckets} observations found in buckets, but the Count field is {count}: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)"
    )]
    CountMismatch { in_buckets: u128, count: u64 },
    /// An integer histogram of NaN sum counts fewer observations than its buckets.
    #[error(
        "{in_buckets} observations found in buckets, but the Count field is {count}: histogram's observation count should be at least the number of observations found in the buckets"
    )]
    CountNotBigEnough { in_buckets: u128, count: u64 },
    /// More buckets, spans or custom bounds than [`MAX_BUCKETS`] (Pyrite's bound, not upstream's).
    #[error("histogram has more than {} {what}", MAX_BUCKETS)]
    TooLarge { what: &'static str },
}

/// What an addition or subtraction noticed that the caller reports as an annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddOutcome {
    /// One operand said "counter reset", the other "no counter reset"; the hint became unknown
    /// (upstream warns "conflicting counter resets during histogram …").
    pub counter_reset_collision: bool,
    /// The operands had different custom bounds and were mapped onto the bounds they share
    /// (upstream's info "mismatched custom buckets were reconciled during …").
    pub custom_bounds_reconciled: bool,
}

impl FloatHistogram {
    /// Whether the buckets are custom ([`CUSTOM_BUCKETS_SCHEMA`]) rather than exponential.
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// Whether this is a gauge histogram.
    pub fn is_gauge(&self) -> bool {
        self.counter_reset_hint == CounterResetHint::Gauge
    }

    /// Scales count, sum, zero count and every bucket. A negative factor makes it a gauge.
    pub fn mul(&mut self, factor: f64) -> &mut Self {
        self.zero_count *= factor;
        self.count *= factor;
        self.sum *= factor;
        self.positive_buckets.iter_mut().for_each(|b| *b *= factor);
        self.negative_buckets.iter_mut().for_each(|b| *b *= factor);
        if factor < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
        self
    }

    /// Divides like [`mul`](Self::mul) multiplies. Dividing by zero divides count, sum and zero
    /// count (IEEE: ±Inf or NaN) and drops every bucket, as upstream does.
    pub fn div(&mut self, divisor: f64) -> &mut Self {
        self.zero_count /= divisor;
        self.count /= divisor;
        self.sum /= divisor;
        if divisor == 0.0 {
            self.positive_spans.clear();
            self.negative_spans.clear();
            self.positive_buckets.clear();
            self.negative_buckets.clear();
            return self;
        }
        self.positive_buckets.iter_mut().for_each(|b| *b /= divisor);
        self.negative_buckets.iter_mut().for_each(|b| *b /= divisor);
        if divisor < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
        self
    }

    /// Data equality as upstream's `Equals`: same schema, zero threshold and bucket layout
    /// (zero-length spans aside), custom bounds for custom schemas, and bit-identical count, sum,
    /// zero count and buckets (so NaN equals the same NaN). The counter-reset hint is ignored.
    pub fn equals(&self, other: &FloatHistogram) -> bool {
        let same_bits = |a: f64, b: f64| a.to_bits() == b.to_bits();
        let same_buckets = |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_bits(*x, *y));
        self.schema == other.schema
            && same_bits(self.count, other.count)
            && same_bits(self.sum, other.sum)
            && (!self.uses_custom_buckets() || layout::bounds_match(&self.custom_values, &other.custom_values))
            && self.zero_threshold == other.zero_threshold
            && same_bits(self.zero_count, other.zero_count)
            && layout::spans_match(&self.negative_spans, &other.negative_spans)
            && same_buckets(&self.negative_buckets, &other.negative_buckets)
            && layout::spans_match(&self.positive_spans, &other.positive_spans)
            && same_buckets(&self.positive_buckets, &other.positive_buckets)
    }
}

#[cfg(test)]
mod tests;
