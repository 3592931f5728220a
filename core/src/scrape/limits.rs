//! The limits a scrape applies to what it takes in, with upstream's semantics and wording:
//! label limits on a new series' final labels, then the size Pyrite lets a series' labels
//! take, and the native-histogram limits, which reduce a histogram's resolution before they
//! refuse it (upstream's `maxSchemaAppender` and `bucketLimitAppender`). `sample_limit` is
//! counted by the ingest itself.

use crate::config::ScrapeLimits;
use crate::histogram::{FloatHistogram, MAX_SCHEMA, MIN_SCHEMA};
use crate::labels::{Labels, MAX_SERIES_LABEL_BYTES};

/// The first 50 characters of `s`, as upstream's `%.50s` shows names in limit errors.
fn first50(s: &str) -> &str {
    s.char_indices().nth(50).map_or(s, |(i, _)| &s[..i])
}

/// Upstream's label limit checks on a new series' final labels, and the size a stored series'
/// labels may take; the error in upstream's words.
pub(super) fn check_label_limits(labels: &Labels, limits: &ScrapeLimits) -> Result<(), String> {
    let metric = first50(labels.get("__name__"));
    if limits.label_limit > 0 && labels.len() as u64 > limits.label_limit {
        let (n, limit) = (labels.len(), limits.label_limit);
        return Err(format!("label_limit exceeded (metric: {metric}, number of labels: {n}, limit: {limit})"));
    }
    for l in labels.iter() {
        let (name_limit, value_limit) = (limits.label_name_length_limit, limits.label_value_length_limit);
        if name_limit > 0 && l.name.len() as u64 > name_limit {
            return Err(format!(
                "label_name_length_limit exceeded (metric: {metric}, label name: {}, length: {}, limit: {name_limit})",
                first50(&l.name),
                l.name.len()
            ));
        }
        if value_limit > 0 && l.value.len() as u64 > value_limit {
            return Err(format!(
                "label_value_length_limit exceeded (metric: {metric}, label name: {}, value: {:?}, length: {}, limit: {value_limit})",
                first50(&l.name),
                first50(&l.value),
                l.value.len()
            ));
        }
    }
    // Checked after the configured limits, so that a value past one gets upstream's message.
    if labels.byte_len() > MAX_SERIES_LABEL_BYTES {
        return Err(format!(
            "labels take more than the {MAX_SERIES_LABEL_BYTES} bytes a series may (metric: {metric}, bytes: {})",
            labels.byte_len()
        ));
    }
    Ok(())
}

/// A scrape config's native-histogram limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramLimits {
    /// `native_histogram_bucket_limit`: most buckets (both signs) a histogram keeps; 0 for no
    /// limit.
    pub bucket_limit: u64,
    /// The finest schema kept, from `native_histogram_min_bucket_factor`.
    pub max_schema: i32,
}

impl Default for HistogramLimits {
    fn default() -> Self {
        HistogramLimits { bucket_limit: 0, max_schema: MAX_SCHEMA }
    }
}

impl HistogramLimits {
    /// The limits of `native_histogram_bucket_limit` and
    /// `native_histogram_min_bucket_factor` (upstream's `pickSchema`: the coarsest schema
    /// whose buckets grow by at least the factor, −4…8; a factor of at most 1 asks for none).
    pub fn new(bucket_limit: u64, min_bucket_factor: f64) -> Self {
        let factor = if min_bucket_factor > 1.0 { min_bucket_factor } else { 1.00271 };
        let floor = (-factor.log2().log2()).floor();
        let max_schema = floor.clamp(f64::from(MIN_SCHEMA), f64::from(MAX_SCHEMA)) as i32;
        HistogramLimits { bucket_limit, max_schema }
    }

    /// `h` within the limits: exponential buckets finer than `max_schema` merged into it, then
    /// resolution halved until at most `bucket_limit` buckets are left. None if that cannot be
    /// done: custom buckets over the limit, or still over it at the coarsest schema (the
    /// scrape then fails with "histogram bucket limit exceeded").
    pub fn apply(&self, mut h: FloatHistogram) -> Option<FloatHistogram> {
        if !h.uses_custom_buckets() && h.schema > self.max_schema {
            h.reduce_resolution(self.max_schema).ok()?;
        }
        if self.bucket_limit == 0 {
            return Some(h);
        }
        let buckets = |h: &FloatHistogram| (h.positive_buckets.len() + h.negative_buckets.len()) as u64;
        while buckets(&h) > self.bucket_limit {
            if h.uses_custom_buckets() || h.schema <= MIN_SCHEMA {
                return None;
            }
            h.reduce_resolution(h.schema - 1).ok()?;
        }
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::parse_histogram;

    #[test]
    fn min_bucket_factors_pick_upstreams_schemas() {
        let schema = |factor| HistogramLimits::new(0, factor).max_schema;
        // Upstream's table in its configuration docs.
        let table = [
            (65536.0, -4),
            (256.0, -3),
            (16.0, -2),
            (4.0, -1),
            (2.0, 0),
            (1.4, 1),
            (1.1, 2),
            (1.09, 3),
            (1.04, 4),
            (1.02, 5),
            (1.01, 6),
            (1.005, 7),
            (1.002, 8),
        ];
        for (factor, want) in table {
            assert_eq!(schema(factor), want, "factor {factor}");
        }
        assert_eq!((schema(0.0), schema(1e9), schema(f64::NAN)), (8, -4, 8));
    }

    #[test]
    fn resolution_is_reduced_to_the_limits_or_the_histogram_refused() {
        let h = parse_histogram("{{schema:3 count:10 sum:1 offset:8 buckets:[1 1 1 1 1 1 1 1 1 1]}}").unwrap();
        let limited = HistogramLimits { bucket_limit: 4, max_schema: 8 }.apply(h.clone()).unwrap();
        // Buckets 8…17 of schema 3 are buckets 4…9 of schema 2, then 2…5 of schema 1.
        assert_eq!((limited.schema, limited.positive_buckets.len(), limited.count), (1, 4, 10.0));
        let coarse = HistogramLimits { bucket_limit: 0, max_schema: 0 }.apply(h.clone()).unwrap();
        assert_eq!(coarse.schema, 0);
        assert_eq!(HistogramLimits { bucket_limit: 1, max_schema: 8 }.apply(h.clone()).map(|h| h.schema), Some(-2));
        let wide = parse_histogram("{{schema:-4 count:2 sum:1 buckets:[1 0 0 0 0 0 0 0 1]}}").unwrap();
        assert_eq!(HistogramLimits { bucket_limit: 1, max_schema: 8 }.apply(wide), None);
        let custom = parse_histogram("{{schema:-53 custom_values:[1 2] count:3 sum:1 buckets:[1 1 1]}}").unwrap();
        assert_eq!(HistogramLimits { bucket_limit: 2, max_schema: 0 }.apply(custom.clone()), None);
        assert_eq!(HistogramLimits { bucket_limit: 3, max_schema: 0 }.apply(custom.clone()), Some(custom));
    }
}
