//! The protobuf exposition format, written: what `/federate` answers a scraper that asks for
//! it (as Prometheus does with native histograms on), in the messages the parser declares
//! ([`super::protobuf`]), varint-length-delimited, one `MetricFamily` per family
//! ([`super::writer`]).
//!
//! As upstream's federation writes them: every metric carries its timestamp; a float is an
//! `Untyped` value; a native histogram with exponential buckets keeps its schema, zero
//! threshold, spans and float counts (`sample_count_float`, `zero_count_float`,
//! `positive_count`, `negative_count`: absolute counts, never integer deltas, whole or not),
//! and one with custom buckets goes as the classic histogram it stands for (cumulative
//! `bucket`s up to each bound, without the optional +Inf one, and its count and sum, all
//! counts floats), which a scraper converts back with `convert_classic_histograms_to_nhcb`.
//! The family type says whether a histogram is a gauge histogram; no other hint travels.
//!
//! What prost leaves out of a message when it is 0 (a zero threshold, a count; a sum of -0.0
//! too) reads back as 0: upstream sends such fields, and its parser reads them as Pyrite's
//! does. Two places differ from upstream's writer, where what it writes does not read back:
//! - a histogram without observations (count and zero count 0) reads back as an integer one
//!   (the float counts that would say otherwise are 0, so not sent), so it goes as one, its
//!   empty buckets as deltas of 0; upstream sends them as float counts, which then do not
//!   match the spans, and the whole scrape that reads it fails;
//! - classic buckets, counts and sums carry their integer counts too when they are whole, so
//!   that a reader that knows only those (Prometheus 2.42) does not read 0; later readers take
//!   the float ones first, which are the same.

use prost::Message;

use super::nhcb::cumulative_buckets;
use super::protobuf::{Bucket, Histogram, Metric, MetricFamily, Untyped};
use super::writer::{family_type, same_family, Labelling, Latest};
use crate::histogram::{FloatHistogram, Span};
use crate::remote::histogram::{exact, BucketSpan, IntegerCounts};
use crate::remote::Label;
use crate::value::SampleValue;

/// Writes samples as a body of the delimited protobuf format (see the module doc), labels as
/// `labelling` says.
pub fn write_protobuf(samples: &[Latest], labelling: &Labelling) -> Vec<u8> {
    let mut out = Vec::new();
    for family in samples.chunk_by(same_family) {
        let (labels, _, value) = &family[0];
        let message = MetricFamily {
            name: labelling.escaping.escape(labels.metric_name()).into_owned(),
            r#type: family_type(value) as i32,
            metric: family.iter().map(|sample| metric(sample, labelling)).collect(),
            ..MetricFamily::default()
        };
        // Writing to a Vec cannot fail.
        let _ = message.encode_length_delimited(&mut out);
    }
    out
}

fn metric((labels, t, value): &Latest, labelling: &Labelling) -> Metric {
    let label = labelling
        .pairs(labels)
        .into_iter()
        .map(|(name, value)| Label { name: name.into_owned(), value: value.to_string() })
        .collect();
    let mut m = Metric { label, timestamp_ms: *t, ..Metric::default() };
    match value {
        SampleValue::Float(v) => m.untyped = Some(Untyped { value: *v }),
        SampleValue::Histogram(h) if h.uses_custom_buckets() => m.histogram = Some(classic(h)),
        SampleValue::Histogram(h) => m.histogram = Some(native(h)),
    }
    m
}

/// A histogram with exponential buckets (upstream's `makeNativeHistogram`; one without
/// observations as an integer one, see the module doc).
fn native(h: &FloatHistogram) -> Histogram {
    let spans = |spans: &[Span]| spans.iter().map(BucketSpan::from).collect();
    // Without spans a reader takes it for a classic histogram unless its zero threshold or
    // integer zero count is above 0: a no-op span says it is native, as client libraries add.
    let positive_span = match h.positive_spans.is_empty() && h.negative_spans.is_empty() {
        true => vec![BucketSpan { offset: 0, length: 0 }],
        false => spans(&h.positive_spans),
    };
    let empty = h.count == 0.0 && h.zero_count == 0.0;
    if let Some(counts) = empty.then(|| IntegerCounts::of(h)).flatten() {
        return Histogram {
            sample_sum: h.sum,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            negative_span: spans(&h.negative_spans),
            negative_delta: counts.negative_deltas,
            positive_span,
            positive_delta: counts.positive_deltas,
            ..Histogram::default()
        };
    }
    Histogram {
        sample_count_float: h.count,
        sample_sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count_float: h.zero_count,
        negative_span: spans(&h.negative_spans),
        negative_count: h.negative_buckets.clone(),
        positive_span,
        positive_count: h.positive_buckets.clone(),
        ..Histogram::default()
    }
}

/// A histogram with custom buckets as a classic one (upstream's `makeClassicHistogram`, with
/// the integer counts too where whole, see the module doc).
fn classic(h: &FloatHistogram) -> Histogram {
    let bucket = |(upper_bound, cumulative_count_float): (f64, f64)| Bucket {
        upper_bound,
        cumulative_count_float,
        cumulative_count: whole(cumulative_count_float),
        ..Bucket::default()
    };
    Histogram {
        sample_count: whole(h.count),
        sample_count_float: h.count,
        sample_sum: h.sum,
        bucket: cumulative_buckets(h).map(bucket).collect(),
        ..Histogram::default()
    }
}

/// `count` as an integer count if it is one, else 0 (not sent).
fn whole(count: f64) -> u64 {
    exact(count).map_or(0, |c| c as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::exposition::protobuf::WireType;
    use crate::exposition::Escaping;
    use crate::exposition::{parse_series, Entry, HistogramOptions, MetricType, ProtobufParser};
    use crate::histogram::{CounterResetHint, CUSTOM_BUCKETS_SCHEMA};
    use crate::labels::Labels;

    /// Upstream's default escaping, no external labels.
    fn underscores() -> Labelling {
        Labelling::new(Escaping::Underscores, &Labels::default())
    }

    fn sample(name: &str, foo: &str, t: i64, value: SampleValue) -> Latest {
        (Labels::from_pairs([("__name__", name), ("foo", foo)]), t, value)
    }

    fn histogram(h: FloatHistogram) -> SampleValue {
        SampleValue::Histogram(Arc::new(h))
    }

    /// Schema 1 with a zero bucket and buckets on both sides, each count times `scale`.
    fn exponential(scale: f64) -> FloatHistogram {
        FloatHistogram {
            schema: 1,
            zero_threshold: 0.001,
            zero_count: 2.0 * scale,
            count: 12.0 * scale,
            sum: 39.4,
            positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 2 }],
            positive_buckets: vec![1.0 * scale, 2.0 * scale, 1.0 * scale, 1.0 * scale],
            negative_spans: vec![Span { offset: -3, length: 1 }],
            negative_buckets: vec![5.0 * scale],
            ..FloatHistogram::default()
        }
    }

    /// Bounds 0.1, 1 and 10, every bucket (+Inf too) holding observations.
    fn custom(scale: f64) -> FloatHistogram {
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 10.0 * scale,
            sum: 20.5,
            positive_spans: vec![Span { offset: 0, length: 4 }],
            positive_buckets: vec![1.0 * scale, 2.0 * scale, 3.0 * scale, 4.0 * scale],
            custom_values: vec![0.1, 1.0, 10.0],
            ..FloatHistogram::default()
        }
    }

    fn gauge(mut h: FloatHistogram) -> FloatHistogram {
        h.counter_reset_hint = CounterResetHint::Gauge;
        h
    }

    /// What Pyrite's parser reads back, with native histograms on and classic ones converted
    /// to custom buckets: each family's type, and every sample.
    fn read_back(body: &[u8]) -> (Vec<MetricType>, Vec<Latest>) {
        let options = HistogramOptions { native: true, keep_classic: false, convert_to_nhcb: true };
        let mut parser = ProtobufParser::new(body, options);
        let (mut types, mut samples) = (Vec::new(), Vec::new());
        while let Some(entry) = parser.next() {
            match entry.expect("written bodies parse") {
                Entry::Type { kind, .. } => types.push(kind),
                Entry::Sample { series, value, timestamp, .. } => {
                    samples.push((parse_series(series).unwrap(), timestamp.unwrap(), SampleValue::Float(value)))
                }
                Entry::Histogram { series, histogram: h, timestamp, .. } => {
                    samples.push((parse_series(series).unwrap(), timestamp.unwrap(), histogram(*h)))
                }
                _ => {}
            }
        }
        (types, samples)
    }

    #[test]
    fn floats_and_histograms_of_every_kind_read_back_the_same() {
        let written = vec![
            sample("a", "float", 1_700_000_000_123, SampleValue::Float(-2.5)),
            sample("a", "nan", 1_700_000_000_000, SampleValue::Float(f64::NAN)),
            sample("b", "float counts", 1000, histogram(exponential(0.5))),
            sample("b", "integer counts", 2000, histogram(exponential(3.0))),
            sample("b", "custom", 3000, histogram(custom(1.0))),
            sample("b", "custom float", 3000, histogram(custom(0.25))),
            sample("c", "gauge", 4000, histogram(gauge(exponential(1.0)))),
            sample("c", "gauge custom", 5000, histogram(gauge(custom(2.0)))),
            // Without spans, native only by their no-op span (red team P).
            sample("d", "empty", 6000, histogram(FloatHistogram::default())),
            sample(
                "d",
                "zero bucket only",
                6000,
                histogram(FloatHistogram { count: 2.5, zero_count: 2.5, ..Default::default() }),
            ),
        ];
        let (types, read) = read_back(&write_protobuf(&written, &underscores()));
        assert_eq!(
            types,
            [MetricType::Untyped, MetricType::Histogram, MetricType::GaugeHistogram, MetricType::Histogram]
        );
        assert_eq!(read.len(), written.len());
        for (got, want) in read.iter().zip(&written) {
            match (&got.2, &want.2) {
                (SampleValue::Float(g), SampleValue::Float(w)) => assert!(g.to_bits() == w.to_bits(), "{got:?}"),
                _ => assert_eq!(got, want),
            }
        }
    }

    #[test]
    fn histograms_go_as_upstream_writes_them() {
        let written = [
            sample("b", "integer counts", 2000, histogram(exponential(3.0))),
            sample("b", "custom", 3000, histogram(custom(1.0))),
        ];
        let mut body = &write_protobuf(&written, &underscores())[..];
        let family = MetricFamily::decode_length_delimited(&mut body).unwrap();
        assert!(body.is_empty(), "one family");
        assert_eq!((family.name.as_str(), family.r#type), ("b", WireType::Histogram as i32));
        let (native, custom) = (&family.metric[0], &family.metric[1]);
        let label = |name: &str, value: &str| Label { name: name.into(), value: value.into() };
        assert_eq!(native.label, [label("foo", "integer counts"), label("instance", "")]);
        assert_eq!(native.timestamp_ms, 2000);
        // Whole counts go as float counts too, as upstream sends them.
        let h = native.histogram.as_ref().unwrap();
        assert_eq!((h.sample_count, h.sample_count_float, h.zero_count, h.zero_count_float), (0, 36.0, 0, 6.0));
        assert_eq!((h.schema, h.zero_threshold, h.sample_sum), (1, 0.001, 39.4));
        assert!(h.positive_delta.is_empty() && h.negative_delta.is_empty() && h.bucket.is_empty());
        assert_eq!(h.positive_count, [3.0, 6.0, 3.0, 3.0]);
        assert_eq!(h.negative_span, [BucketSpan { offset: -3, length: 1 }]);
        // Custom buckets as cumulative classic buckets, no native parts, no +Inf bucket.
        let h = custom.histogram.as_ref().unwrap();
        let buckets: Vec<_> =
            h.bucket.iter().map(|b| (b.upper_bound, b.cumulative_count_float, b.cumulative_count)).collect();
        assert_eq!(buckets, [(0.1, 1.0, 1), (1.0, 3.0, 3), (10.0, 6.0, 6)], "integer counts too, for 2.42");
        assert_eq!((h.sample_count_float, h.sample_count, h.sample_sum, h.schema), (10.0, 10, 20.5, 0));
        assert!(h.positive_span.is_empty() && h.positive_count.is_empty());
    }

    #[test]
    fn a_histogram_without_observations_goes_as_the_integer_one_it_reads_back_as() {
        let written = [sample("b", "idle", 1000, histogram(exponential(0.0)))];
        let mut body = &write_protobuf(&written, &underscores())[..];
        let h = MetricFamily::decode_length_delimited(&mut body).unwrap().metric[0].histogram.clone().unwrap();
        assert_eq!((h.positive_delta.len(), h.negative_delta.len(), h.positive_count.len()), (4, 1, 0));
        // It reads back (the parser leaves the empty buckets out).
        let (_, read) = read_back(&write_protobuf(&written, &underscores()));
        let [(_, 1000, SampleValue::Histogram(h))] = &read[..] else { panic!("{read:?}") };
        assert_eq!((h.count, h.zero_count, h.sum, h.schema), (0.0, 0.0, 39.4, 1));
        assert!(h.positive_buckets.iter().chain(&h.negative_buckets).all(|&b| b == 0.0));
        // Custom buckets with fractions: no integer counts.
        let h = classic(&custom(0.25));
        assert_eq!((h.sample_count, h.bucket[0].cumulative_count), (0, 0));
    }

    #[test]
    fn families_are_runs_of_one_name_and_one_type() {
        // Upstream's federation test: floats at 0 and 3, histograms at 1, 2, 4 and 5, custom
        // buckets at 6, all of one name, make four families; a gauge histogram starts another.
        let value = |i: usize| match i {
            0 | 3 => SampleValue::Float(i as f64),
            6 => histogram(custom(1.0)),
            _ => histogram(exponential(i as f64)),
        };
        let mut written: Vec<Latest> = (0..7).map(|i| sample("m", &i.to_string(), 1000, value(i))).collect();
        written.push(sample("m", "7", 1000, histogram(gauge(exponential(1.0)))));
        let (types, read) = read_back(&write_protobuf(&written, &underscores()));
        use MetricType::{GaugeHistogram, Histogram as H, Untyped};
        assert_eq!(types, [Untyped, H, Untyped, H, GaugeHistogram]);
        assert_eq!(read, written);
        assert!(write_protobuf(&[], &underscores()).is_empty());
    }

    #[test]
    fn names_outside_the_legacy_set_are_escaped_as_negotiated() {
        let labels = Labels::from_pairs([("__name__", "http.server.duration"), ("service.name", "api"), ("code", "2")]);
        let written = [(labels, 1000, SampleValue::Float(1.0))];
        let names = |escaping| {
            let body = write_protobuf(&written, &Labelling::new(escaping, &Labels::default()));
            let family = MetricFamily::decode_length_delimited(&body[..]).unwrap();
            let labels: Vec<String> =
                family.metric[0].label.iter().map(|l| format!("{}={}", l.name, l.value)).collect();
            (family.name, labels)
        };
        let want = |name: &str, label: &str| {
            (name.to_string(), vec!["code=2".into(), format!("{label}=api"), "instance=".into()])
        };
        assert_eq!(names(Escaping::AllowUtf8), want("http.server.duration", "service.name"));
        assert_eq!(names(Escaping::Underscores), want("http_server_duration", "service_name"));
        assert_eq!(names(Escaping::Dots), want("http_dot_server_dot_duration", "service_dot_name"));
        assert_eq!(names(Escaping::Values), want("U__http_2e_server_2e_duration", "U__service_2e_name"));
    }
}
