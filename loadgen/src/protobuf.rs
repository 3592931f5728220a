//! The `uniform` profile in the protobuf exposition format, for scrapers that ask for it: the
//! same counters, gauges and latency histograms as the text body ([`crate::exposition`]), the
//! histograms with native buckets of schema 3 (and their classic buckets) when native
//! histograms are on, and every metric stamped with `timestamp_ms` if a time is given.

use pyrite_core::exposition::protobuf::{encode, Bucket, Counter, Gauge, Histogram, Metric, MetricFamily, WireType};
use pyrite_core::remote::histogram::BucketSpan;
use pyrite_core::remote::Label;

use crate::exposition::{counter_labels, counter_value, error_elapsed, gauge_value, SeriesMix};
use crate::latency::{Latency, SCHEMA, ZERO_THRESHOLD};

const BOUNDS: [f64; 9] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    pairs.iter().map(|(n, v)| Label { name: n.to_string(), value: v.to_string() }).collect()
}

fn family(name: &str, help: &str, kind: WireType, metric: Vec<Metric>) -> MetricFamily {
    MetricFamily { name: name.into(), help: help.into(), r#type: kind as i32, metric, unit: String::new() }
}

fn metric(label: Vec<Label>, timestamp_ms: Option<i64>) -> Metric {
    Metric {
        label,
        gauge: None,
        counter: None,
        summary: None,
        untyped: None,
        histogram: None,
        timestamp_ms: timestamp_ms.unwrap_or(0),
    }
}

/// A latency histogram as client_golang exposes one: classic buckets without +Inf, and native
/// buckets as spans and deltas (client_golang's layout: consecutive buckets share a span).
fn histogram(latency: &Latency) -> Histogram {
    let bucket = |(upper_bound, &cumulative_count): (f64, &u64)| Bucket {
        cumulative_count,
        cumulative_count_float: 0.0,
        upper_bound,
        exemplar: None,
    };
    let mut h = Histogram {
        sample_count: latency.count,
        sample_sum: latency.sum,
        bucket: BOUNDS.into_iter().zip(&latency.classic).map(bucket).collect(),
        ..Histogram::default()
    };
    if let Some((zero, buckets)) = &latency.native {
        h.schema = SCHEMA;
        h.zero_threshold = ZERO_THRESHOLD;
        h.zero_count = *zero;
        let (mut next, mut previous) = (None::<i32>, 0i64);
        for &(index, count) in buckets {
            match (next, h.positive_span.last_mut()) {
                (Some(n), Some(span)) if n == index => span.length += 1,
                _ => h.positive_span.push(BucketSpan { offset: index - next.unwrap_or(0), length: 1 }),
            }
            next = Some(index + 1);
            h.positive_delta.push(count as i64 - previous);
            previous = count as i64;
        }
    }
    h
}

/// The protobuf body of a target with `series` series (as [`crate::exposition::render_text`]
/// renders it), each metric at `timestamp_ms` if given.
pub fn render_protobuf(
    series: usize,
    target: usize,
    elapsed: f64,
    incident: f64,
    native: bool,
    timestamp_ms: Option<i64>,
) -> Vec<u8> {
    let mix = SeriesMix::for_series(series);
    let error_elapsed = error_elapsed(elapsed, incident);
    let counters = (0..mix.counters)
        .map(|i| {
            let (method, status, item) = counter_labels(i);
            let handler = format!("/api/v1/item{item}");
            let mut m = metric(labels(&[("method", method), ("status", status), ("handler", &handler)]), timestamp_ms);
            m.counter = Some(Counter { value: counter_value(i, elapsed, error_elapsed), exemplar: None });
            m
        })
        .collect();
    let gauges = (0..mix.gauges)
        .map(|i| {
            let mut m = metric(labels(&[("pool", &format!("pool{i}"))]), timestamp_ms);
            m.gauge = Some(Gauge { value: gauge_value(i, target, elapsed) });
            m
        })
        .collect();
    let histograms = (0..mix.histograms)
        .map(|h| {
            let mut m = metric(labels(&[("handler", &format!("/h{h}"))]), timestamp_ms);
            m.histogram = Some(histogram(&Latency::at(h, elapsed, native)));
            m
        })
        .collect();
    encode(&[
        family("loadgen_http_requests_total", "Requests served.", WireType::Counter, counters),
        family("loadgen_memory_usage_bytes", "Memory in use.", WireType::Gauge, gauges),
        family("loadgen_request_duration_seconds", "Request latency.", WireType::Histogram, histograms),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrite_core::exposition::{Entry, HistogramOptions, ProtobufParser, TextParser};

    /// Float samples of a body, by series.
    fn floats(body: &[u8], options: HistogramOptions) -> Vec<(String, f64)> {
        let mut parser = ProtobufParser::new(body, options);
        let mut out = Vec::new();
        while let Some(entry) = parser.next() {
            if let Entry::Sample { series, value, .. } = entry.unwrap() {
                out.push((series.to_string(), value));
            }
        }
        out
    }

    #[test]
    fn both_formats_show_the_same_samples() {
        for native in [false, true] {
            let text = crate::exposition::render_text(200, 1, 33.3, 0.0, native);
            let mut from_text: Vec<(String, f64)> = TextParser::new(&text)
                .filter_map(|e| match e.unwrap() {
                    Entry::Sample { series, value, .. } => {
                        Some((pyrite_core::exposition::parse_series(series).unwrap().to_string(), value))
                    }
                    _ => None,
                })
                .collect();
            let body = render_protobuf(200, 1, 33.3, 0.0, native, None);
            let mut from_protobuf: Vec<(String, f64)> = floats(&body, HistogramOptions::default())
                .into_iter()
                .map(|(s, v)| (pyrite_core::exposition::parse_series(&s).unwrap().to_string(), v))
                .collect();
            // The text writes `le="1"`, the protobuf parser `le="1.0"`, as upstream's.
            for (series, _) in &mut from_text {
                *series = series.replace("le=\"1\"", "le=\"1.0\"");
            }
            from_text.sort_by(|a, b| a.0.cmp(&b.0));
            from_protobuf.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(from_text, from_protobuf, "native: {native}");
        }
    }

    #[test]
    fn native_histograms_are_valid_and_add_up() {
        let body = render_protobuf(100, 0, 30.0, 0.0, true, Some(1_700_000_000_000));
        let options = HistogramOptions { native: true, ..HistogramOptions::default() };
        let mut parser = ProtobufParser::new(&body, options);
        let mut seen = 0;
        while let Some(entry) = parser.next() {
            if let Entry::Histogram { histogram, timestamp, .. } = entry.unwrap() {
                assert_eq!(timestamp, Some(1_700_000_000_000));
                assert_eq!(histogram.schema, SCHEMA);
                let in_buckets: f64 = histogram.zero_count + histogram.positive_buckets.iter().sum::<f64>();
                assert_eq!(in_buckets, histogram.count);
                seen += 1;
            }
        }
        assert_eq!(seen, SeriesMix::for_series(100).histograms);
    }
}
