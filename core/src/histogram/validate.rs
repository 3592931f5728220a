//! Whether a histogram is one upstream would store: its validation of float histograms
//! (`FloatHistogram.Validate` in `model/histogram`), with upstream's error messages, the check
//! only integer histograms get ([`check_integer_count`]), and a bound on a histogram's size
//! of Pyrite's own ([`MAX_BUCKETS`]).
//!
//! Upstream's float validation checks the layout (schema, spans against buckets, custom
//! bounds) and that counts are not negative; it does not check that the count is the sum of
//! the buckets, nor that counts are finite (NaN passes every `< 0` check, as upstream):
//! float histograms computed by PromQL need not add up. An integer histogram's count must add
//! up; its decoder checks that with [`check_integer_count`], in integers.

use super::bounds::is_exponential;
use super::{FloatHistogram, HistogramError, Span};

/// The most buckets (both sides together), the most spans (both sides together) and the most
/// custom bounds one histogram may have. Upstream sets no limit; this one bounds what a
/// histogram from a hostile sender costs to decode and to compute with (a few megabytes at
/// most) and is far above any real one: every bucket between 10⁻⁹ and 10⁹ at the finest
/// schema (8) is about 15,300 buckets, and clients limit theirs to a few hundred.
pub const MAX_BUCKETS: usize = 1 << 16;

/// A histogram of `buckets` buckets, `spans` spans and `custom_bounds` custom bounds is
/// within [`MAX_BUCKETS`] (checked before a decoder allocates for them).
pub(crate) fn check_size(buckets: usize, spans: usize, custom_bounds: usize) -> Result<(), HistogramError> {
    for (n, what) in [(buckets, "buckets"), (spans, "spans"), (custom_bounds, "custom bounds")] {
        if n > MAX_BUCKETS {
            return Err(HistogramError::TooLarge { what });
        }
    }
    Ok(())
}

/// Upstream's `checkHistogramSpans`: no span after the first has a negative offset, and the
/// spans describe as many buckets as there are.
pub(super) fn check_spans(spans: &[Span], buckets: usize) -> Result<(), HistogramError> {
    if let Some((n, s)) = spans.iter().enumerate().skip(1).find(|(_, s)| s.offset < 0) {
        return Err(HistogramError::NegativeSpanOffset { span: n + 1, offset: s.offset });
    }
    let needed = spans.iter().map(|s| s.length as usize).sum();
    if needed != buckets {
        return Err(HistogramError::SpansBucketsMismatch { needed, have: buckets });
    }
    Ok(())
}

/// Upstream's `checkHistogramBuckets` of absolute counts: none negative.
fn check_buckets(buckets: &[f64]) -> Result<(), HistogramError> {
    match buckets.iter().position(|&c| c < 0.0) {
        Some(i) => Err(HistogramError::NegativeBucketCount { bucket: i + 1, count: buckets[i] }),
        None => Ok(()),
    }
}

/// Upstream's `checkHistogramCustomBounds`: bounds strictly increasing, none NaN, no explicit
/// +Inf last; spans of non-negative offsets that describe as many buckets as there are, and
/// reach no bucket past the +Inf one after the last bound.
fn check_custom_bounds(bounds: &[f64], spans: &[Span], buckets: usize) -> Result<(), HistogramError> {
    let mut previous = f64::NEG_INFINITY;
    for (i, &current) in bounds.iter().enumerate() {
        if current.is_nan() {
            return Err(HistogramError::CustomBoundNaN);
        }
        if i > 0 && current <= previous {
            return Err(HistogramError::CustomBoundsNotIncreasing { previous, current });
        }
        previous = current;
    }
    if previous == f64::INFINITY {
        return Err(HistogramError::CustomBoundInfinite);
    }
    if let Some((n, s)) = spans.iter().enumerate().find(|(_, s)| s.offset < 0) {
        return Err(HistogramError::NegativeSpanOffset { span: n + 1, offset: s.offset });
    }
    let needed: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
    if needed != buckets as u64 {
        return Err(HistogramError::SpansBucketsMismatch { needed: needed as usize, have: buckets });
    }
    // Offsets are not negative here: the last index reached is this sum less one.
    let reached: u64 = spans.iter().map(|s| u64::from(s.length) + s.offset as u64).sum();
    if bounds.len() as u64 + 1 < reached {
        return Err(HistogramError::CustomBoundsTooFew { bounds: bounds.len(), reached });
    }
    Ok(())
}

/// Upstream's last check of an integer histogram (`Histogram.Validate`): `count` equals the
/// `in_buckets` observations of its buckets (zero bucket included), or, if `sum` is NaN, is at
/// least that many.
pub fn check_integer_count(count: u64, in_buckets: u128, sum: f64) -> Result<(), HistogramError> {
    match u128::from(count) {
        c if sum.is_nan() && in_buckets > c => Err(HistogramError::CountNotBigEnough { in_buckets, count }),
        c if !sum.is_nan() && in_buckets != c => Err(HistogramError::CountMismatch { in_buckets, count }),
        _ => Ok(()),
    }
}

impl FloatHistogram {
    /// Checks the histogram as upstream's `FloatHistogram.Validate` does, in its order and
    /// with its messages, after checking its size against [`MAX_BUCKETS`].
    pub fn validate(&self) -> Result<(), HistogramError> {
        let side = |side: &'static str| move |error| HistogramError::Side { side, error: Box::new(error) };
        check_size(
            self.positive_buckets.len() + self.negative_buckets.len(),
            self.positive_spans.len() + self.negative_spans.len(),
            self.custom_values.len(),
        )?;
        if self.uses_custom_buckets() {
            check_custom_bounds(&self.custom_values, &self.positive_spans, self.positive_buckets.len())
                .map_err(|e| HistogramError::CustomBuckets(Box::new(e)))?;
            if self.zero_count != 0.0 {
                return Err(HistogramError::CustomZeroCount);
            }
            if self.zero_threshold != 0.0 {
                return Err(HistogramError::CustomZeroThreshold);
            }
            if !self.negative_spans.is_empty() {
                return Err(HistogramError::CustomNegativeSpans);
            }
            if !self.negative_buckets.is_empty() {
                return Err(HistogramError::CustomNegativeBuckets);
            }
        } else if is_exponential(self.schema) {
            check_spans(&self.positive_spans, self.positive_buckets.len()).map_err(side("positive"))?;
            check_spans(&self.negative_spans, self.negative_buckets.len()).map_err(side("negative"))?;
            check_buckets(&self.negative_buckets).map_err(side("negative"))?;
            if self.zero_count < 0.0 {
                return Err(HistogramError::NegativeZeroCount(self.zero_count));
            }
            if !self.custom_values.is_empty() {
                return Err(HistogramError::ExponentialWithCustomBounds);
            }
        } else {
            return Err(HistogramError::InvalidSchema(self.schema));
        }
        if self.count < 0.0 {
            return Err(HistogramError::NegativeCount(self.count));
        }
        check_buckets(&self.positive_buckets).map_err(side("positive"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_histogram, CUSTOM_BUCKETS_SCHEMA};
    use super::*;

    fn h(text: &str) -> FloatHistogram {
        parse_histogram(text).unwrap()
    }

    fn error(h: &FloatHistogram) -> String {
        h.validate().unwrap_err().to_string()
    }

    fn custom(bounds: &[f64], spans: &[(i32, u32)], buckets: &[f64]) -> FloatHistogram {
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            custom_values: bounds.to_vec(),
            positive_spans: spans.iter().map(|&(offset, length)| Span { offset, length }).collect(),
            positive_buckets: buckets.to_vec(),
            count: buckets.iter().sum(),
            ..Default::default()
        }
    }

    #[test]
    fn valid_histograms_pass() {
        for text in [
            "{{schema:0 sum:5 count:4 z_bucket:1 z_bucket_w:0.001 buckets:[1 2] n_buckets:[0 0 0]}}",
            "{{schema:-4 count:0}}",
            "{{schema:8 offset:-3 buckets:[1] count:1}}",
            "{{schema:-53 custom_values:[1 5] buckets:[1 2 3] count:6 sum:1}}",
        ] {
            assert_eq!(h(text).validate(), Ok(()), "{text}");
        }
        // As upstream: a float histogram's count need not add up, and NaN counts pass.
        assert_eq!(h("{{schema:0 count:1 buckets:[5 5]}}").validate(), Ok(()));
        assert_eq!(h("{{schema:0 count:NaN buckets:[NaN]}}").validate(), Ok(()));
        assert_eq!(custom(&[f64::NEG_INFINITY, 1.0], &[(2, 1)], &[1.0]).validate(), Ok(()));
    }

    #[test]
    fn invalid_histograms_get_upstreams_messages() {
        let mut bad_schema = h("{{schema:0}}");
        bad_schema.schema = 9;
        assert_eq!(
            error(&bad_schema),
            "histogram has an invalid schema, which must be between -4 and 8 for exponential buckets, or -53 for custom buckets, got schema 9"
        );
        let mut spans = h("{{schema:0 buckets:[1 2] count:3}}");
        spans.positive_buckets.pop();
        assert_eq!(
            error(&spans),
            "positive side: spans need 2 buckets, have 1 buckets: histogram spans specify different number of buckets than provided"
        );
        spans.positive_spans = vec![Span { offset: 0, length: 0 }, Span { offset: -1, length: 1 }];
        assert_eq!(
            error(&spans),
            "positive side: span number 2 with offset -1: histogram has a span whose offset is negative"
        );
        let negative = h("{{schema:0 n_buckets:[1 -2.5] count:1}}");
        assert_eq!(
            error(&negative),
            "negative side: bucket number 2 has observation count of -2.5: histogram has a bucket whose observation count is negative"
        );
        assert_eq!(
            error(&h("{{schema:0 z_bucket:-1 count:0}}")),
            "zero bucket has observation count of -1: histogram has a bucket whose observation count is negative"
        );
        assert_eq!(
            error(&h("{{schema:0 count:-1}}")),
            "observation count is -1: histogram's observation count is negative"
        );
        let mut exp_bounds = h("{{schema:0}}");
        exp_bounds.custom_values = vec![1.0];
        assert_eq!(error(&exp_bounds), "histogram with exponential schema must not have custom bounds");
    }

    #[test]
    fn custom_buckets_are_checked_as_upstream() {
        let cases: [(FloatHistogram, &str); 8] = [
            (custom(&[1.0, f64::NAN], &[], &[]), "custom buckets: histogram custom bounds must not be NaN"),
            (
                custom(&[1.0, 1.0], &[], &[]),
                "custom buckets: previous bound is 1.000000 and current is 1.000000: histogram custom bounds must be in strictly increasing order",
            ),
            (
                custom(&[1.0, f64::INFINITY], &[], &[]),
                "custom buckets: last +Inf bound must not be explicitly defined: histogram custom bounds must be finite",
            ),
            (
                custom(&[1.0], &[(-1, 1)], &[1.0]),
                "custom buckets: span number 1 with offset -1: histogram has a span whose offset is negative",
            ),
            (
                custom(&[1.0], &[(0, 2)], &[1.0]),
                "custom buckets: spans need 2 buckets, have 1 buckets: histogram spans specify different number of buckets than provided",
            ),
            (
                custom(&[1.0], &[(1, 1), (0, 1)], &[1.0, 1.0]),
                "custom buckets: only 1 custom bounds defined which is insufficient to cover total span length of 3: histogram custom bounds are too few",
            ),
            (FloatHistogram { zero_count: 1.0, ..custom(&[1.0], &[], &[]) }, "custom buckets: must have zero count of 0"),
            (
                FloatHistogram { negative_buckets: vec![1.0], ..custom(&[1.0], &[], &[]) },
                "custom buckets: must not have negative buckets",
            ),
        ];
        for (h, message) in cases {
            assert_eq!(error(&h), message);
        }
        // The bucket just past the last bound (+Inf) may be named; none after it.
        assert_eq!(custom(&[1.0], &[(1, 1)], &[1.0]).validate(), Ok(()));
        let threshold = FloatHistogram { zero_threshold: 1e-9, ..custom(&[1.0], &[], &[]) };
        assert_eq!(error(&threshold), "custom buckets: must have zero threshold of 0");
        let spans = FloatHistogram { negative_spans: vec![Span::default()], ..custom(&[1.0], &[], &[]) };
        assert_eq!(error(&spans), "custom buckets: must not have negative spans");
    }

    #[test]
    fn integer_counts_must_add_up() {
        assert_eq!(check_integer_count(5, 5, 1.0), Ok(()));
        assert_eq!(check_integer_count(6, 5, f64::NAN), Ok(()));
        assert_eq!(
            check_integer_count(6, 5, 1.0).unwrap_err().to_string(),
            "5 observations found in buckets, but the Count field is 6: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)"
        );
        assert_eq!(
            check_integer_count(4, 5, f64::NAN).unwrap_err().to_string(),
            "5 observations found in buckets, but the Count field is 4: histogram's observation count should be at least the number of observations found in the buckets"
        );
    }

    #[test]
    fn size_is_bounded() {
        let wide = FloatHistogram { positive_buckets: vec![0.0; MAX_BUCKETS + 1], ..Default::default() };
        assert_eq!(error(&wide), format!("histogram has more than {MAX_BUCKETS} buckets"));
        let spans = FloatHistogram { negative_spans: vec![Span::default(); MAX_BUCKETS + 1], ..Default::default() };
        assert_eq!(spans.validate(), Err(HistogramError::TooLarge { what: "spans" }));
        let at_limit = FloatHistogram {
            positive_spans: vec![Span { offset: 0, length: MAX_BUCKETS as u32 }],
            positive_buckets: vec![0.0; MAX_BUCKETS],
            ..Default::default()
        };
        assert_eq!(at_limit.validate(), Ok(()));
    }
}
