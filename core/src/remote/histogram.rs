//! Native histograms on the wire: the `Histogram` message, the same in remote write 1.0
//! (`prometheus.Histogram`), 2.0 (`io.prometheus.write.v2.Histogram`) and sampled remote-read
//! answers, and its conversions to and from [`FloatHistogram`].
//!
//! A sender sends an integer histogram (`count_int`; bucket counts as deltas, each bucket's
//! count less the previous one's) or a float one (`count_float`; absolute counts): the `count`
//! oneof says which, and the other kind's fields are ignored, as upstream ignores them. Both
//! become a [`FloatHistogram`] checked as upstream's receiver checks them: schemas 9…52
//! (reserved for finer resolutions) reduced to 8, then validated
//! ([`FloatHistogram::validate`]), and an integer histogram's count checked against its
//! buckets ([`check_integer_count`]).
//!
//! Decoding costs what the bytes pay for: a message's fields are counted before it is decoded,
//! so one of more buckets, spans or custom bounds than
//! [`MAX_BUCKETS`](crate::histogram::MAX_BUCKETS) is refused without allocating for them, and
//! [`HistogramBudget`] bounds the memory that the histograms of one request take decoded (a
//! two-byte empty histogram is valid, and takes a couple of hundred bytes decoded).
//!
//! A histogram goes out as an integer histogram when it is exactly one (every count a
//! non-negative integer up to 2⁵³, adding up as upstream requires of integer histograms): what
//! upstream stores for a scraped histogram and sends for it, a byte or two a bucket. Any other
//! goes as a float histogram. The 2.0 message's `start_timestamp` (field 17) is not declared:
//! never sent, and skipped when received, as samples' created timestamps are.

use std::mem::size_of;
use std::sync::Arc;

use prost::Message;

use super::{Fields, Payload, RemoteError};
use crate::histogram::{
    check_integer_count, check_size, CounterResetHint, FloatHistogram, HistogramError, Span, MAX_SCHEMA,
};
use crate::value::HistogramSample;

/// The highest schema upstream reserves for exponential buckets finer than [`MAX_SCHEMA`]
/// (`ExponentialSchemaMaxReserved`); its receiver reduces them to [`MAX_SCHEMA`].
const MAX_RESERVED_SCHEMA: i32 = 52;

/// The histograms of one request may take, decoded, this many bytes of memory per byte the
/// request may decompress to (256 MiB for a receiver's 32 MiB): as much as the worst request of
/// float samples takes (two-byte empty samples, 16 bytes each decoded), where a real request (a
/// few thousand histograms, well under a megabyte) takes a few megabytes.
pub const HISTOGRAM_MEMORY_PER_BYTE: usize = 8;

/// `prometheus.Histogram` and `io.prometheus.write.v2.Histogram`: one native-histogram sample.
#[derive(Clone, PartialEq, Message)]
pub struct Histogram {
    #[prost(oneof = "Count", tags = "1, 2")]
    pub count: Option<Count>,
    #[prost(double, tag = "3")]
    pub sum: f64,
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    #[prost(oneof = "ZeroCount", tags = "6, 7")]
    pub zero_count: Option<ZeroCount>,
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    /// An integer histogram's counts: the first bucket's, then each bucket's less the previous.
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    /// A float histogram's counts, absolute.
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    /// `ResetHint`: UNKNOWN 0, YES 1, NO 2, GAUGE 3.
    #[prost(int32, tag = "14")]
    pub reset_hint: i32,
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
    #[prost(double, repeated, tag = "16")]
    pub custom_values: Vec<f64>,
}

/// The `count` oneof: which one is set makes the histogram an integer or a float histogram.
#[derive(Clone, Copy, PartialEq, prost::Oneof)]
pub enum Count {
    #[prost(uint64, tag = "1")]
    Int(u64),
    #[prost(double, tag = "2")]
    Float(f64),
}

/// The `zero_count` oneof: read as the `count` oneof says (0 if it is the other kind).
#[derive(Clone, Copy, PartialEq, prost::Oneof)]
pub enum ZeroCount {
    #[prost(uint64, tag = "6")]
    Int(u64),
    #[prost(double, tag = "7")]
    Float(f64),
}

/// A run of consecutive buckets (see [`Span`]).
#[derive(Clone, Copy, PartialEq, Message)]
pub struct BucketSpan {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

impl From<&Span> for BucketSpan {
    fn from(s: &Span) -> BucketSpan {
        BucketSpan { offset: s.offset, length: s.length }
    }
}

impl Histogram {
    /// `h` at `t` as it is sent: an integer histogram if it is exactly one, else a float one.
    pub fn from_float(t: i64, h: &FloatHistogram) -> Histogram {
        let spans = |s: &[Span]| s.iter().map(BucketSpan::from).collect();
        let mut wire = Histogram {
            sum: h.sum,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            negative_spans: spans(&h.negative_spans),
            positive_spans: spans(&h.positive_spans),
            reset_hint: match h.counter_reset_hint {
                CounterResetHint::Unknown => 0,
                CounterResetHint::CounterReset => 1,
                CounterResetHint::NotCounterReset => 2,
                CounterResetHint::Gauge => 3,
            },
            timestamp: t,
            custom_values: h.custom_values.clone(),
            ..Default::default()
        };
        match IntegerCounts::of(h) {
            Some(counts) => {
                wire.count = Some(Count::Int(counts.count));
                wire.zero_count = Some(ZeroCount::Int(counts.zero_count));
                wire.positive_deltas = counts.positive_deltas;
                wire.negative_deltas = counts.negative_deltas;
            }
            None => {
                wire.count = Some(Count::Float(h.count));
                wire.zero_count = Some(ZeroCount::Float(h.zero_count));
                wire.positive_counts = h.positive_buckets.clone();
                wire.negative_counts = h.negative_buckets.clone();
            }
        }
        wire
    }

    /// The histogram sent, if upstream's receiver would store it (see the module doc); the
    /// caller takes its `timestamp` first.
    pub fn into_float(self) -> Result<FloatHistogram, HistogramError> {
        let spans = |s: Vec<BucketSpan>| s.into_iter().map(|s| Span { offset: s.offset, length: s.length }).collect();
        let mut h = FloatHistogram {
            counter_reset_hint: match self.reset_hint {
                1 => CounterResetHint::CounterReset,
                2 => CounterResetHint::NotCounterReset,
                3 => CounterResetHint::Gauge,
                _ => CounterResetHint::Unknown,
            },
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            sum: self.sum,
            positive_spans: spans(self.positive_spans),
            negative_spans: spans(self.negative_spans),
            custom_values: self.custom_values,
            ..Default::default()
        };
        // An integer histogram's count and the observations in its buckets, to check last.
        let integer = if let Some(Count::Float(count)) = self.count {
            h.count = count;
            h.zero_count = match self.zero_count {
                Some(ZeroCount::Float(z)) => z,
                _ => 0.0,
            };
            h.positive_buckets = self.positive_counts;
            h.negative_buckets = self.negative_counts;
            None
        } else {
            let count = match self.count {
                Some(Count::Int(c)) => c,
                _ => 0,
            };
            let zero_count = match self.zero_count {
                Some(ZeroCount::Int(z)) => z,
                _ => 0,
            };
            let (positive, in_positive) = absolute_counts(&self.positive_deltas);
            let (negative, in_negative) = absolute_counts(&self.negative_deltas);
            (h.count, h.zero_count) = (count as f64, zero_count as f64);
            (h.positive_buckets, h.negative_buckets) = (positive, negative);
            Some((count, u128::from(zero_count) + in_positive + in_negative))
        };
        if (MAX_SCHEMA + 1..=MAX_RESERVED_SCHEMA).contains(&h.schema) {
            h.reduce_resolution(MAX_SCHEMA)?;
        }
        h.validate()?;
        if let Some((count, in_buckets)) = integer {
            check_integer_count(count, in_buckets, h.sum)?;
        }
        Ok(h)
    }
}

/// Histogram samples as a `TimeSeries`' `histograms` field carries them (a 1.0 request's, a
/// sampled remote-read answer's).
pub fn wire_histograms(histograms: &[HistogramSample]) -> Vec<Histogram> {
    histograms.iter().map(|s| Histogram::from_float(s.t, &s.h)).collect()
}

/// Integer deltas as absolute counts, with the observations they add up to (negative counts,
/// which validation refuses, add none). Accumulated in wrapping 64-bit integers, as upstream.
fn absolute_counts(deltas: &[i64]) -> (Vec<f64>, u128) {
    let (mut current, mut total) = (0i64, 0u128);
    let counts = deltas
        .iter()
        .map(|&d| {
            current = current.wrapping_add(d);
            total += u128::from(u64::try_from(current).unwrap_or(0));
            current as f64
        })
        .collect();
    (counts, total)
}

/// `c` as an integer count, if it is one: a non-negative integer of at most 2⁵³ (so that the
/// f64 is exact).
pub(crate) fn exact(c: f64) -> Option<i64> {
    ((0.0..=(1u64 << 53) as f64).contains(&c) && c.fract() == 0.0).then_some(c as i64)
}

/// A histogram's counts as an integer histogram carries them (also the protobuf exposition
/// format's, which `/federate` writes).
pub struct IntegerCounts {
    pub count: u64,
    pub zero_count: u64,
    pub positive_deltas: Vec<i64>,
    pub negative_deltas: Vec<i64>,
}

impl IntegerCounts {
    /// The counts of `h` if it is exactly an integer histogram: every count a non-negative
    /// integer of at most 2⁵³ (so that the f64 is exact), adding up as
    /// [`check_integer_count`] requires.
    pub fn of(h: &FloatHistogram) -> Option<IntegerCounts> {
        let mut in_buckets = 0u128;
        let mut deltas = |buckets: &[f64]| -> Option<Vec<i64>> {
            let mut previous = 0;
            buckets
                .iter()
                .map(|&c| {
                    let c = exact(c)?;
                    in_buckets += c as u128;
                    let delta = c - previous;
                    previous = c;
                    Some(delta)
                })
                .collect()
        };
        let positive_deltas = deltas(&h.positive_buckets)?;
        let negative_deltas = deltas(&h.negative_buckets)?;
        let (count, zero_count) = (exact(h.count)? as u64, exact(h.zero_count)? as u64);
        check_integer_count(count, in_buckets + u128::from(zero_count), h.sum).ok()?;
        Some(IntegerCounts { count, zero_count, positive_deltas, negative_deltas })
    }
}

/// What the histograms of one request may still take in memory decoded; see
/// [`HISTOGRAM_MEMORY_PER_BYTE`].
pub(super) struct HistogramBudget {
    left: usize,
    limit: usize,
}

impl HistogramBudget {
    /// The budget of a request that may decompress to `max_decoded` bytes.
    pub(super) fn new(max_decoded: usize) -> HistogramBudget {
        let limit = max_decoded.saturating_mul(HISTOGRAM_MEMORY_PER_BYTE);
        HistogramBudget { left: limit, limit }
    }

    /// Decodes one `Histogram` message: an error for one that is not a well-formed message,
    /// and for the whole request once its histograms pass the budget; otherwise the sample,
    /// or why upstream would refuse it.
    pub(super) fn decode(&mut self, raw: &[u8]) -> Result<Result<HistogramSample, HistogramError>, RemoteError> {
        if let Err(e) = check_wire_size(raw) {
            return Ok(Err(e));
        }
        let wire = Histogram::decode(raw)?;
        let t = wire.timestamp;
        let h = match wire.into_float() {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        let cost = size_of::<HistogramSample>()
            + 2 * size_of::<usize>() // the Arc's counts
            + size_of::<FloatHistogram>()
            + size_of::<f64>() * (h.positive_buckets.capacity() + h.negative_buckets.capacity())
            + size_of::<f64>() * h.custom_values.capacity()
            + size_of::<Span>() * (h.positive_spans.capacity() + h.negative_spans.capacity());
        self.left = self.left.checked_sub(cost).ok_or(RemoteError::HistogramsTooLarge { limit: self.limit })?;
        Ok(Ok(HistogramSample { t, h: Arc::new(h) }))
    }
}

/// Counts a `Histogram` message's buckets (the four bucket fields together), spans and custom
/// bounds without decoding them, and checks them with [`check_size`]. Counting stops at a
/// malformed field, which decoding then refuses.
fn check_wire_size(raw: &[u8]) -> Result<(), HistogramError> {
    let (mut buckets, mut spans, mut bounds) = (0usize, 0usize, 0usize);
    for (tag, payload) in Fields::new(raw).map_while(Result::ok) {
        // A packed field holds many values: varints end at a byte below 0x80, doubles take 8.
        let values = match (tag, payload) {
            (9 | 12, Payload::Bytes(packed)) => packed.iter().filter(|&&b| b < 0x80).count(),
            (10 | 13 | 16, Payload::Bytes(packed)) => packed.len() / 8,
            _ => 1,
        };
        match tag {
            8 | 11 => spans += values,
            9 | 10 | 12 | 13 => buckets += values,
            16 => bounds += values,
            _ => {}
        }
    }
    check_size(buckets, spans, bounds)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::histogram::{parse_histogram, MAX_BUCKETS};

    fn h(text: &str) -> FloatHistogram {
        parse_histogram(text).unwrap()
    }

    /// Histograms of every kind the wire carries: exponential and custom buckets, integral and
    /// not, each reset hint.
    pub(crate) fn kinds() -> Vec<FloatHistogram> {
        let mut sparse = h("{{schema:3 count:9 sum:-2.5 z_bucket:2 z_bucket_w:0.001 buckets:[1 0 3] n_buckets:[2 1]}}");
        sparse.positive_spans = vec![Span { offset: -5, length: 1 }, Span { offset: 4, length: 2 }];
        sparse.counter_reset_hint = CounterResetHint::NotCounterReset;
        vec![
            sparse,
            h("{{schema:0 count:3.5 sum:1 buckets:[1.5 2] counter_reset_hint:gauge}}"),
            h("{{schema:-53 custom_values:[0.1 1 10] count:6 sum:12 buckets:[1 2 0 3] counter_reset_hint:reset}}"),
            h("{{schema:-53 custom_values:[5] count:0.25 sum:1 offset:1 buckets:[0.25]}}"),
            // Integral counts that do not add up go as floats (an integer one would be refused).
            h("{{schema:-4 count:10 sum:1 buckets:[1 2]}}"),
            h("{{schema:8 count:0 sum:0}}"),
        ]
    }

    fn decoded(wire: &Histogram) -> Result<HistogramSample, HistogramError> {
        HistogramBudget::new(1 << 20).decode(&wire.encode_to_vec()).unwrap()
    }

    #[test]
    fn histograms_round_trip_as_integer_or_float() {
        let kinds = kinds();
        let integer: Vec<bool> =
            kinds.iter().map(|h| matches!(Histogram::from_float(7, h).count, Some(Count::Int(_)))).collect();
        assert_eq!(integer, [true, false, true, false, false, true]);
        for h in kinds {
            let got = decoded(&Histogram::from_float(-7, &h)).unwrap();
            assert_eq!((got.t, &*got.h), (-7, &h));
        }
        let sparse = Histogram::from_float(0, &h("{{schema:0 count:7 buckets:[1 5 1]}}"));
        assert_eq!(sparse.positive_deltas, [1, 4, -4]);
        assert_eq!(sparse.reset_hint, 0);
    }

    #[test]
    fn the_count_oneof_decides_the_kind() {
        // A float histogram's deltas and an integer one's float counts are ignored, as upstream.
        let float = Histogram {
            count: Some(Count::Float(2.0)),
            zero_count: Some(ZeroCount::Int(9)),
            positive_spans: vec![BucketSpan { offset: 0, length: 1 }],
            positive_counts: vec![2.0],
            positive_deltas: vec![5],
            ..Default::default()
        };
        let got = float.clone().into_float().unwrap();
        assert_eq!((got.count, got.zero_count, got.positive_buckets), (2.0, 0.0, vec![2.0]));
        let integer =
            Histogram { count: None, zero_count: None, positive_counts: vec![], positive_deltas: vec![2], ..float };
        assert_eq!(
            integer.clone().into_float().unwrap_err().to_string(),
            "2 observations found in buckets, but the Count field is 0: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)"
        );
        let nan_sum = Histogram { count: Some(Count::Int(3)), sum: f64::NAN, ..integer };
        assert_eq!(nan_sum.into_float().unwrap().positive_buckets, [2.0]);
    }

    #[test]
    fn integer_deltas_are_checked_as_absolute_counts() {
        let wire = Histogram {
            count: Some(Count::Int(1)),
            negative_spans: vec![BucketSpan { offset: 0, length: 2 }],
            negative_deltas: vec![3, -4],
            ..Default::default()
        };
        assert_eq!(
            decoded(&wire).unwrap_err().to_string(),
            "negative side: bucket number 2 has observation count of -1: histogram has a bucket whose observation count is negative"
        );
        // Wrapping past i64::MAX turns negative, as in upstream's int64 arithmetic.
        let wrapped = Histogram { negative_deltas: vec![i64::MAX, 1], ..wire };
        assert!(matches!(decoded(&wrapped), Err(HistogramError::Side { .. })));
    }

    #[test]
    fn reserved_schemas_are_reduced_and_others_refused() {
        let fine = Histogram {
            count: Some(Count::Int(4)),
            schema: 10,
            positive_spans: vec![BucketSpan { offset: 3, length: 4 }],
            positive_deltas: vec![1, 0, -1, 2],
            ..Default::default()
        };
        let got = decoded(&fine).unwrap();
        // Buckets 3…6 of schema 10 are buckets 1, 1, 2, 2 of schema 8.
        assert_eq!((got.h.schema, &got.h.positive_buckets), (8, &vec![2.0, 2.0]));
        let unknown = Histogram { schema: 53, ..fine.clone() };
        assert_eq!(decoded(&unknown).unwrap_err(), HistogramError::InvalidSchema(53));
        let too_coarse = Histogram { schema: -5, ..fine.clone() };
        assert_eq!(decoded(&too_coarse).unwrap_err(), HistogramError::InvalidSchema(-5));
        let mismatch = Histogram { positive_deltas: vec![1], ..fine };
        assert_eq!(decoded(&mismatch).unwrap_err(), HistogramError::SpansBucketsMismatch { needed: 4, have: 1 });
    }

    #[test]
    fn invalid_custom_buckets_are_refused() {
        let wire = Histogram::from_float(1, &h("{{schema:-53 custom_values:[1 2] count:1 buckets:[1]}}"));
        assert!(decoded(&wire).is_ok());
        let decreasing = Histogram { custom_values: vec![2.0, 1.0], ..wire.clone() };
        assert!(decoded(&decreasing).unwrap_err().to_string().contains("strictly increasing"));
        let past = Histogram { positive_spans: vec![BucketSpan { offset: 3, length: 1 }], ..wire.clone() };
        assert!(decoded(&past).unwrap_err().to_string().contains("custom bounds are too few"));
        let zero = Histogram { zero_threshold: 0.5, ..wire };
        assert_eq!(decoded(&zero).unwrap_err(), HistogramError::CustomZeroThreshold);
    }

    /// Hostile histograms are refused before their fields are decoded, and quickly.
    #[test]
    fn hostile_histograms_cost_what_their_bytes_pay_for() {
        let started = std::time::Instant::now();
        let spans =
            Histogram { positive_spans: vec![BucketSpan { offset: 0, length: 1 }; 2 << 20], ..Default::default() };
        assert_eq!(decoded(&spans).unwrap_err(), HistogramError::TooLarge { what: "spans" });
        let deltas = Histogram { positive_deltas: vec![0; 4 << 20], ..Default::default() };
        assert_eq!(decoded(&deltas).unwrap_err(), HistogramError::TooLarge { what: "buckets" });
        let bounds = Histogram { custom_values: vec![1.0; MAX_BUCKETS + 1], ..Default::default() };
        assert_eq!(decoded(&bounds).unwrap_err(), HistogramError::TooLarge { what: "custom bounds" });
        // Spans that need billions of buckets, and a NaN count, with none sent.
        let mismatch = Histogram {
            count: Some(Count::Float(f64::NAN)),
            positive_spans: vec![BucketSpan { offset: 0, length: u32::MAX }; 4],
            ..Default::default()
        };
        assert!(matches!(decoded(&mismatch), Err(HistogramError::Side { .. })));
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
        // Many empty histograms pass the request's budget.
        let empty = Histogram::default().encode_to_vec();
        let mut budget = HistogramBudget::new(1 << 10);
        let kept = std::iter::repeat_with(|| budget.decode(&empty)).take_while(Result::is_ok).count();
        assert!((1..(8 << 10) / 100).contains(&kept), "{kept}");
        assert!(matches!(budget.decode(&empty), Err(RemoteError::HistogramsTooLarge { limit: 8192 })));
    }

    #[test]
    fn truncated_and_odd_messages_are_errors_not_panics() {
        let raw = Histogram::from_float(5, &kinds()[0]).encode_to_vec();
        for cut in 1..raw.len() {
            // Every prefix either decodes (the cut fell between fields) or is refused.
            let _ = HistogramBudget::new(1 << 20).decode(&raw[..cut]);
        }
        let mut budget = HistogramBudget::new(1 << 20);
        // A packed double field whose length is not a multiple of 8; a span that is a varint.
        assert!(budget.decode(&[0x6a, 0x03, 1, 2, 3]).is_err());
        assert!(budget.decode(&[0x5a, 0x01]).is_err());
        assert!(budget.decode(&[0x58, 0x01]).is_err());
        // Unpacked repeated fields are read as packed ones are.
        let unpacked = [0x08, 0x02, 0x5a, 0x04, 0x08, 0x00, 0x10, 0x02, 0x60, 0x02, 0x60, 0x00];
        assert_eq!(budget.decode(&unpacked).unwrap().unwrap().h.positive_buckets, [1.0, 1.0]);
    }
}
