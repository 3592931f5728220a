//! What `/federate` writes, so that another Prometheus scrapes a Pyrite: the newest sample of
//! each matching series ([`Latest`]), grouped into metric families as upstream's federation
//! groups them, in the text format 0.0.4 (here) or the protobuf format
//! ([`super::protobuf_writer`]), whichever the request negotiated ([`super::media::Negotiated`]).
//!
//! A family is a run of consecutive samples of one name and one type: floats are `untyped`,
//! histograms are histograms or, with the gauge hint, gauge histograms. A name whose series
//! differ in type thus makes several families; the formats want one per name, but Prometheus
//! reads them, and upstream bends the rule likewise.
//!
//! The text format cannot carry native histograms with exponential buckets: they are left out
//! (and split no family), as upstream leaves them out. One with custom buckets is written as
//! the classic histogram it stands for, under `# TYPE <name> histogram`: a `_bucket` series per
//! bound with its cumulative count (`le` last among the labels, formatted as Go's `%g`), the
//! `le="+Inf"` one with the count, then `_sum` and `_count`.

use super::nhcb::cumulative_buckets;
use super::protobuf::WireType;
use crate::labels::{Labels, METRIC_NAME};
use crate::rules::template::go_float;
use crate::value::{format_value, SampleValue};

/// One series' newest sample as `/federate` writes it: its labels (the metric name among
/// them), time (ms) and value. Written in the order given, which must keep each name's samples
/// together (sorted by name).
pub type Latest = (Labels, i64, SampleValue);

/// The type of the family a sample goes under.
pub(super) fn family_type(value: &SampleValue) -> WireType {
    match value {
        SampleValue::Float(_) => WireType::Untyped,
        SampleValue::Histogram(h) if h.is_gauge() => WireType::GaugeHistogram,
        SampleValue::Histogram(_) => WireType::Histogram,
    }
}

/// Whether two consecutive samples go under one family: the same name and family type.
pub(super) fn same_family(a: &Latest, b: &Latest) -> bool {
    a.0.metric_name() == b.0.metric_name() && family_type(&a.2) == family_type(&b.2)
}

/// Escapes a label value for the text format: `\`, `"` and newlines.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends a series' label set as the text format writes it after the name:
/// `{l1="v1",...}` in the order given, values escaped; nothing for no labels.
pub(super) fn write_labels<'a>(out: &mut String, labels: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let mut first = true;
    for (name, value) in labels {
        out.push(if std::mem::take(&mut first) { '{' } else { ',' });
        out.push_str(name);
        out.push_str("=\"");
        escape_into(out, value);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
}

/// Writes samples in the text format (see the module doc): each family under its `# TYPE`
/// line, then per float a `name{labels} value timestamp` line, labels in their sorted order.
pub fn write_text(samples: &[Latest]) -> String {
    let written: Vec<&Latest> = samples
        .iter()
        .filter(|(_, _, value)| !matches!(value, SampleValue::Histogram(h) if !h.uses_custom_buckets()))
        .collect();
    let mut out = String::new();
    for family in written.chunk_by(|a, b| same_family(a, b)) {
        let (labels, _, value) = family[0];
        out.push_str("# TYPE ");
        out.push_str(labels.metric_name());
        out.push_str(if matches!(value, SampleValue::Float(_)) { " untyped\n" } else { " histogram\n" });
        for (labels, t, value) in family {
            match value {
                SampleValue::Float(v) => write_line(&mut out, labels, "", None, *v, *t),
                SampleValue::Histogram(h) => {
                    for (le, count) in cumulative_buckets(h).chain([(f64::INFINITY, h.count)]) {
                        write_line(&mut out, labels, "_bucket", Some(&go_float(le, None)), count, *t);
                    }
                    write_line(&mut out, labels, "_sum", None, h.sum, *t);
                    write_line(&mut out, labels, "_count", None, h.count, *t);
                }
            }
        }
    }
    out
}

/// One sample line: the series' name with `suffix`, its labels and then `le` if given, the
/// value and the time.
fn write_line(out: &mut String, labels: &Labels, suffix: &str, le: Option<&str>, value: f64, t: i64) {
    out.push_str(labels.metric_name());
    out.push_str(suffix);
    let pairs = labels.iter().filter(|l| l.name != METRIC_NAME).map(|l| (l.name.as_str(), l.value.as_str()));
    write_labels(out, pairs.chain(le.map(|le| ("le", le))));
    out.push(' ');
    out.push_str(&format_value(value));
    out.push(' ');
    out.push_str(&t.to_string());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::exposition::{Entry, TextParser};
    use crate::histogram::{CounterResetHint, FloatHistogram, Span, CUSTOM_BUCKETS_SCHEMA};

    #[test]
    fn written_text_parses_back_to_the_same_samples() {
        let samples = vec![
            (Labels::from_pairs([("__name__", "a"), ("x", "q\"u\\o\nte")]), 1000, 1.5),
            (Labels::from_pairs([("__name__", "a"), ("x", "2")]), 2000, f64::INFINITY),
            (Labels::from_pairs([("__name__", "b")]), 3000, -0.25),
        ];
        let written: Vec<Latest> = samples.iter().map(|(l, t, v)| (l.clone(), *t, SampleValue::Float(*v))).collect();
        let text = write_text(&written);
        assert_eq!(text.matches("# TYPE").count(), 2, "{text}");
        let parsed: Vec<_> = TextParser::new(&text)
            .filter_map(|e| match e.unwrap() {
                Entry::Sample { series, value, timestamp, .. } => {
                    Some((crate::exposition::parse_series(series).unwrap(), timestamp.unwrap(), value))
                }
                _ => None,
            })
            .collect();
        assert_eq!(parsed, samples);
    }

    #[test]
    fn exponential_histograms_are_left_out_and_custom_buckets_go_as_classic_histograms() {
        let series = |name: &str, x: &str| Labels::from_pairs([("__name__", name), ("x", x)]);
        let exponential = FloatHistogram {
            schema: 0,
            count: 1.0,
            positive_spans: vec![Span { offset: 0, length: 1 }],
            positive_buckets: vec![1.0],
            ..FloatHistogram::default()
        };
        let custom = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 4.0,
            sum: 2.5,
            positive_spans: vec![Span { offset: 0, length: 1 }, Span { offset: 1, length: 1 }],
            positive_buckets: vec![1.0, 3.0],
            custom_values: vec![0.1, 1e6],
            ..FloatHistogram::default()
        };
        let gauge = FloatHistogram { counter_reset_hint: CounterResetHint::Gauge, ..custom.clone() };
        let histogram = |h: &FloatHistogram| SampleValue::Histogram(Arc::new(h.clone()));
        let samples = [
            (series("a", "1"), 1000, SampleValue::Float(1.5)),
            (series("a", "2"), 1000, histogram(&exponential)),
            (series("a", "3"), 1000, SampleValue::Float(2.0)),
            (series("b", "1"), 2000, histogram(&custom)),
            (series("b", "2"), 2000, histogram(&gauge)),
            (series("c", "1"), 3000, histogram(&exponential)),
        ];
        // The exponential histograms split no family and make none; the gauge histogram with
        // custom buckets starts one of its own, which the text format calls a histogram too.
        let want = r#"# TYPE a untyped
a{x="1"} 1.5 1000
a{x="3"} 2 1000
# TYPE b histogram
b_bucket{x="1",le="0.1"} 1 2000
b_bucket{x="1",le="1e+06"} 1 2000
b_bucket{x="1",le="+Inf"} 4 2000
b_sum{x="1"} 2.5 2000
b_count{x="1"} 4 2000
# TYPE b histogram
b_bucket{x="2",le="0.1"} 1 2000
b_bucket{x="2",le="1e+06"} 1 2000
b_bucket{x="2",le="+Inf"} 4 2000
b_sum{x="2"} 2.5 2000
b_count{x="2"} 4 2000
"#;
        assert_eq!(write_text(&samples), want);
    }
}
