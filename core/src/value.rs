//! Sample values and the conventions Prometheus attaches to them.
//!
//! Timestamps are milliseconds since the Unix epoch (`i64`), values are `f64`. A staleness marker
//! is one particular NaN bit pattern: it is stored like any sample but tells queries that the
//! series ended, so lookback stops at it.

use std::sync::Arc;

use crate::histogram::FloatHistogram;
use crate::labels::Labels;

/// The bit pattern of Prometheus's staleness marker (a signalling-free NaN).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is the staleness marker (and not just any NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One sample of a float series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub t: i64,
    pub v: f64,
}

/// An exemplar: a sample of a series that points elsewhere, usually to a trace (`trace_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    pub t: i64,
    /// Whether `t` is the exemplar's own time, not the scrape's that found it.
    pub has_ts: bool,
}

/// Most UTF-8 characters an exemplar's label names and values may hold together
/// (OpenMetrics; upstream refuses longer ones everywhere).
pub const EXEMPLAR_MAX_LABEL_CHARS: usize = 128;

/// Characters in an exemplar's label names and values together, against
/// [`EXEMPLAR_MAX_LABEL_CHARS`].
pub fn exemplar_label_chars(labels: &Labels) -> usize {
    labels.iter().map(|l| l.name.chars().count() + l.value.chars().count()).sum()
}

impl Exemplar {
    /// Whether `other` is the same exemplar (upstream's `Equals`): the same labels and value,
    /// and the same time unless neither carries its own (a target repeating an exemplar
    /// without a timestamp, which each scrape dates anew).
    pub fn same_as(&self, other: &Exemplar) -> bool {
        self.labels == other.labels
            && self.value == other.value
            && (self.t == other.t || !(self.has_ts || other.has_ts))
    }
}

/// One sample of a native-histogram series. Shared: an instant query's steps that look back
/// to the same sample hold one histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSample {
    pub t: i64,
    pub h: Arc<FloatHistogram>,
}

/// A sample's value: a float or a native histogram (what a recording rule records).
#[derive(Debug, Clone, PartialEq)]
pub enum SampleValue {
    Float(f64),
    Histogram(Arc<FloatHistogram>),
}

impl SampleValue {
    /// Whether it is a staleness marker: the marker as a float, or as a histogram's sum.
    pub fn is_stale(&self) -> bool {
        match self {
            SampleValue::Float(v) => is_stale_nan(*v),
            SampleValue::Histogram(h) => is_stale_nan(h.sum),
        }
    }
}

/// The samples of one series within a queried time range: its float samples and its
/// histogram samples, each in time order (a series may change type; no two share a time).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    pub labels: Labels,
    pub samples: Vec<Sample>,
    pub histograms: Vec<HistogramSample>,
}

impl SeriesSamples {
    /// A series of float samples only.
    pub fn floats(labels: Labels, samples: Vec<Sample>) -> Self {
        SeriesSamples { labels, samples, histograms: Vec::new() }
    }

    /// Whether it holds no sample of either type.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.histograms.is_empty()
    }

    /// Its newest sample, float or histogram, with its time.
    pub fn newest(&self) -> Option<(i64, SampleValue)> {
        let float = self.samples.last();
        match self.histograms.last() {
            Some(h) if float.is_none_or(|f| f.t < h.t) => Some((h.t, SampleValue::Histogram(h.h.clone()))),
            _ => float.map(|f| (f.t, SampleValue::Float(f.v))),
        }
    }

    /// What its samples count for against a sample limit: one a float, a histogram as its size
    /// ([`histogram_samples`]).
    pub fn weight(&self) -> usize {
        self.samples.len() + self.histograms.iter().map(|x| histogram_samples(&x.h)).sum::<usize>()
    }
}

/// What one histogram sample counts for against `--query.max-samples`, as upstream counts it:
/// its size in Go's memory (a 168-byte struct, 8 bytes a bucket, bound and span, 8 for the
/// time) over that of a float sample, 16 bytes.
pub fn histogram_samples(h: &FloatHistogram) -> usize {
    let items = h.positive_buckets.len()
        + h.negative_buckets.len()
        + h.custom_values.len()
        + h.positive_spans.len()
        + h.negative_spans.len();
    (168 + 8 * items + 8) / 16
}

/// Formats a value the way Prometheus's JSON API does (Go's `FormatFloat(v, 'f', -1, 64)`):
/// shortest round-trip decimal, never an exponent, and `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

/// Formats a millisecond timestamp as the API's float seconds (`1435781451.781`, `1.500`), as
/// upstream's `MarshalTimestamp` writes it.
pub fn format_timestamp(t_ms: i64) -> String {
    let sign = if t_ms < 0 { "-" } else { "" };
    let abs = t_ms.unsigned_abs();
    let (secs, ms) = (abs / 1000, abs % 1000);
    if ms == 0 {
        format!("{sign}{secs}")
    } else {
        format!("{sign}{secs}.{ms:03}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_sample_is_a_float_or_a_histogram_whichever_is_later() {
        let h =
            |t: i64, sum: f64| HistogramSample { t, h: Arc::new(FloatHistogram { sum, ..FloatHistogram::default() }) };
        let mut s = SeriesSamples::floats(Labels::default(), vec![Sample { t: 1, v: 1.0 }, Sample { t: 3, v: 3.0 }]);
        assert_eq!(s.newest(), Some((3, SampleValue::Float(3.0))));
        s.histograms = vec![h(2, 0.5), h(4, 0.25)];
        assert_eq!(s.newest(), Some((4, SampleValue::Histogram(s.histograms[1].h.clone()))));
        s.samples.clear();
        s.histograms = vec![h(5, stale_nan())];
        assert!(s.newest().unwrap().1.is_stale());
        assert!(SampleValue::Float(stale_nan()).is_stale() && !SampleValue::Float(f64::NAN).is_stale());
        assert_eq!(SeriesSamples::floats(Labels::default(), Vec::new()).newest(), None);
    }

    #[test]
    fn values_format_like_go() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.1), "0.1");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(1e-7), "0.0000001");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(-0.5), "-0.5");
    }

    #[test]
    fn timestamps_format_as_float_seconds() {
        assert_eq!(format_timestamp(1_435_781_451_781), "1435781451.781");
        assert_eq!(format_timestamp(1_000), "1");
        assert_eq!(format_timestamp(1_500), "1.500", "three digits, as upstream's MarshalTimestamp");
        assert_eq!(format_timestamp(-1_050), "-1.050");
    }

    #[test]
    fn only_the_marker_is_stale() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
    }
}
