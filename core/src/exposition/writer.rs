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

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write;

use super::escaping::Escaping;
use super::nhcb::cumulative_buckets;
use super::protobuf::WireType;
use crate::labels::{is_valid_label_name, is_valid_metric_name, Labels, METRIC_NAME};
use crate::rules::template::go_float;
use crate::value::SampleValue;

/// One series' newest sample as `/federate` writes it: its labels (the metric name among
/// them), time (ms) and value. Written in the order given, which must keep each name's samples
/// together (sorted by name).
pub type Latest = (Labels, i64, SampleValue);

/// How `/federate` writes a sample's labels, as upstream's federation: the series' own labels
/// in their sorted order, then the external labels it lacks, sorted, with `instance=""` among
/// them unless an external `instance` is configured (upstream's way to keep a series without
/// an instance from taking the federation target's in a scraper with `honor_labels`); every
/// name as the scraper's `escaping` asks.
#[derive(Debug, Clone)]
pub struct Labelling {
    pub escaping: Escaping,
    external: Vec<(String, String)>,
}

impl Labelling {
    pub fn new(escaping: Escaping, external: &Labels) -> Labelling {
        let mut external: Vec<(String, String)> = external.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
        if external.iter().all(|(name, _)| name != "instance") {
            external.push(("instance".into(), String::new()));
            external.sort();
        }
        Labelling { escaping, external }
    }

    /// The labels written for a series, its name aside (see the type's doc). A name escaped
    /// onto one the series already writes (`c.d` and `c_d` with `underscores`, or onto
    /// `__name__`) is left out, the label of that very name kept: upstream writes both, and no
    /// scraper reads a label twice.
    pub(super) fn pairs<'a>(&'a self, labels: &'a Labels) -> Vec<(Cow<'a, str>, &'a str)> {
        let own = labels.iter().filter(|l| l.name != METRIC_NAME).map(|l| (l.name.as_str(), l.value.as_str()));
        let lacking = self.external.iter().filter(|(name, _)| labels.get(name).is_empty());
        let mut pairs: Vec<(Cow<'a, str>, &'a str)> = own
            .chain(lacking.map(|(name, value)| (name.as_str(), value.as_str())))
            .map(|(name, value)| (self.escaping.escape_label(name), value))
            .collect();
        if pairs.iter().any(|(name, _)| matches!(name, Cow::Owned(_))) {
            let mut taken: HashSet<String> = pairs
                .iter()
                .filter(|(name, _)| matches!(name, Cow::Borrowed(_)))
                .map(|(name, _)| name.to_string())
                .chain([METRIC_NAME.to_string()])
                .collect();
            pairs.retain(|(name, _)| matches!(name, Cow::Borrowed(_)) || taken.insert(name.to_string()));
        }
        pairs
    }
}

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

/// Appends a metric name (`legacy` is [`is_valid_metric_name`]) or a label name (`legacy` is
/// [`is_valid_label_name`]) as the text format writes it: as it is if it is of its legacy
/// set, else quoted, escaped as a value is (only `allow-utf-8` leaves such names to write).
fn write_name(out: &mut String, name: &str, legacy: fn(&str) -> bool) {
    if legacy(name) {
        out.push_str(name);
    } else {
        out.push('"');
        escape_into(out, name);
        out.push('"');
    }
}

/// Appends a series' name (a family's name and a suffix of legacy characters, `_bucket`) and
/// label set as the text format writes them: `name{l1="v1",...}`, labels in the order given; a
/// name outside the legacy set goes first inside the braces, quoted, as 3.x writes it:
/// `{"a.b",l1="v1"}`.
pub(super) fn write_series<'a, N: AsRef<str>>(
    out: &mut String,
    (name, suffix): (&str, &str),
    labels: impl IntoIterator<Item = (N, &'a str)>,
) {
    let quoted = !name.is_empty() && !is_valid_metric_name(name);
    if quoted {
        out.push_str("{\"");
        escape_into(out, name);
        out.push_str(suffix);
        out.push('"');
    } else {
        out.push_str(name);
        out.push_str(suffix);
    }
    let mut open = quoted;
    for (name, value) in labels {
        out.push(if std::mem::replace(&mut open, true) { ',' } else { '{' });
        write_name(out, name.as_ref(), is_valid_label_name);
        out.push_str("=\"");
        escape_into(out, value);
        out.push('"');
    }
    if open {
        out.push('}');
    }
}

/// Writes samples in the text format (see the module doc), labels as `labelling` says: each
/// family under its `# TYPE` line, then per float a `name{labels} value timestamp` line.
pub fn write_text(samples: &[Latest], labelling: &Labelling) -> String {
    let written: Vec<&Latest> = samples
        .iter()
        .filter(|(_, _, value)| !matches!(value, SampleValue::Histogram(h) if !h.uses_custom_buckets()))
        .collect();
    let mut out = String::new();
    for family in written.chunk_by(|a, b| same_family(a, b)) {
        let (labels, _, value) = family[0];
        let name = labelling.escaping.escape(labels.metric_name());
        out.push_str("# TYPE ");
        write_name(&mut out, &name, is_valid_metric_name);
        out.push_str(if matches!(value, SampleValue::Float(_)) { " untyped\n" } else { " histogram\n" });
        for (labels, t, value) in family {
            let line = Line { name: &name, pairs: labelling.pairs(labels), t: *t };
            match value {
                SampleValue::Float(v) => line.write(&mut out, "", None, *v),
                SampleValue::Histogram(h) => {
                    for (le, count) in cumulative_buckets(h).chain([(f64::INFINITY, h.count)]) {
                        line.write(&mut out, "_bucket", Some(&go_float(le, None)), count);
                    }
                    line.write(&mut out, "_sum", None, h.sum);
                    line.write(&mut out, "_count", None, h.count);
                }
            }
        }
    }
    out
}

/// What the sample lines of one series share: its family's name as written, its labels as
/// written, its time.
struct Line<'a> {
    name: &'a str,
    pairs: Vec<(Cow<'a, str>, &'a str)>,
    t: i64,
}

impl Line<'_> {
    /// One sample line: the name with `suffix`, the labels and then `le` if given, the value
    /// and the time.
    fn write(&self, out: &mut String, suffix: &str, le: Option<&str>, value: f64) {
        let pairs = self.pairs.iter().map(|(name, value)| (&**name, *value)).chain(le.map(|le| ("le", le)));
        write_series(out, (self.name, suffix), pairs);
        out.push(' ');
        write_value(out, value);
        // Writing to a String cannot fail.
        let _ = writeln!(out, " {}", self.t);
    }
}

/// A sample value as upstream's writer writes it (`writeFloat`): Go's shortest `%g` (`1e+06`,
/// not `1000000`), and 0 for -0. Between 1e-4 and 1e6 that is the shortest decimal, Rust's own
/// form, written without the round trip through Go's.
fn write_value(out: &mut String, value: f64) {
    if value == 0.0 {
        out.push('0');
    } else if (1e-4..1e6).contains(&value.abs()) {
        let _ = write!(out, "{value}");
    } else {
        out.push_str(&go_float(value, None));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::exposition::{Entry, TextParser};
    use crate::histogram::{CounterResetHint, FloatHistogram, Span, CUSTOM_BUCKETS_SCHEMA};

    /// No external labels: each series lacking an instance gets `instance=""`.
    fn labelling(escaping: Escaping) -> Labelling {
        Labelling::new(escaping, &Labels::default())
    }

    #[test]
    fn written_text_parses_back_to_the_same_samples() {
        let samples = vec![
            (Labels::from_pairs([("__name__", "a"), ("x", "q\"u\\o\nte")]), 1000, 1.5),
            (Labels::from_pairs([("__name__", "a"), ("x", "2")]), 2000, f64::INFINITY),
            (Labels::from_pairs([("__name__", "b")]), 3000, -0.25),
        ];
        let written: Vec<Latest> = samples.iter().map(|(l, t, v)| (l.clone(), *t, SampleValue::Float(*v))).collect();
        let text = write_text(&written, &labelling(Escaping::Underscores));
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
a{x="1",instance=""} 1.5 1000
a{x="3",instance=""} 2 1000
# TYPE b histogram
b_bucket{x="1",instance="",le="0.1"} 1 2000
b_bucket{x="1",instance="",le="1e+06"} 1 2000
b_bucket{x="1",instance="",le="+Inf"} 4 2000
b_sum{x="1",instance=""} 2.5 2000
b_count{x="1",instance=""} 4 2000
# TYPE b histogram
b_bucket{x="2",instance="",le="0.1"} 1 2000
b_bucket{x="2",instance="",le="1e+06"} 1 2000
b_bucket{x="2",instance="",le="+Inf"} 4 2000
b_sum{x="2",instance=""} 2.5 2000
b_count{x="2",instance=""} 4 2000
"#;
        assert_eq!(write_text(&samples, &labelling(Escaping::Underscores)), want);
    }

    #[test]
    fn names_outside_the_legacy_set_are_escaped_or_quoted_as_negotiated() {
        let float =
            |pairs: &[(&str, &str)], v: f64| (Labels::from_pairs(pairs.iter().copied()), 1000, SampleValue::Float(v));
        let custom = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 1.0,
            positive_spans: vec![Span { offset: 0, length: 1 }],
            positive_buckets: vec![1.0],
            custom_values: vec![0.5],
            ..FloatHistogram::default()
        };
        let samples = [
            float(&[("__name__", "a.b"), ("x_y", "1"), ("c.d", "q\"")], 1.0),
            float(&[("__name__", "a.b")], 2.0),
            (Labels::from_pairs([("__name__", "h.x")]), 1000, SampleValue::Histogram(Arc::new(custom))),
        ];
        let utf8 = r#"# TYPE "a.b" untyped
{"a.b","c.d"="q\"",x_y="1",instance=""} 1 1000
{"a.b",instance=""} 2 1000
# TYPE "h.x" histogram
{"h.x_bucket",instance="",le="0.5"} 1 1000
{"h.x_bucket",instance="",le="+Inf"} 1 1000
{"h.x_sum",instance=""} 0 1000
{"h.x_count",instance=""} 1 1000
"#;
        assert_eq!(write_text(&samples, &labelling(Escaping::AllowUtf8)), utf8);
        let dots = write_text(&samples, &labelling(Escaping::Dots));
        assert!(
            dots.starts_with("# TYPE a_dot_b untyped\na_dot_b{c_dot_d=\"q\\\"\",x_y=\"1\",instance=\"\"} 1 1000\n"),
            "{dots}"
        );
        assert!(dots.contains("\nh_dot_x_bucket{instance=\"\",le=\"0.5\"} 1 1000\n"), "{dots}");
    }

    /// As upstream: the series' own labels, then the external ones it lacks, sorted; an
    /// external `instance` stands in for the empty one.
    #[test]
    fn external_labels_follow_the_series_own() {
        let samples = [
            (Labels::from_pairs([("__name__", "a"), ("z", "1")]), 1000, SampleValue::Float(1.0)),
            (Labels::from_pairs([("__name__", "a"), ("dc", "us"), ("instance", "i:1")]), 1000, SampleValue::Float(2.0)),
        ];
        let external = Labels::from_pairs([("dc", "eu"), ("region", "x")]);
        let text = write_text(&samples, &Labelling::new(Escaping::Underscores, &external));
        assert_eq!(
            text,
            "# TYPE a untyped\na{z=\"1\",dc=\"eu\",instance=\"\",region=\"x\"} 1 1000\na{dc=\"us\",instance=\"i:1\",region=\"x\"} 2 1000\n"
        );
        let external = Labels::from_pairs([("instance", "fed")]);
        let text = write_text(&samples[..1], &Labelling::new(Escaping::Underscores, &external));
        assert_eq!(text, "# TYPE a untyped\na{z=\"1\",instance=\"fed\"} 1 1000\n");
    }

    /// Upstream writes `c_d` twice and `a:b` bare, which no scraper reads: the label named
    /// `c_d` keeps its name, the escaped one is left out, and a label's `:` is escaped.
    #[test]
    fn escaped_label_names_never_collide_and_a_colon_is_escaped() {
        let labels =
            Labels::from_pairs([("__name__", "m"), ("c.d", "1"), ("c_d", "2"), ("a:b", "3"), ("__name_.", "4")]);
        let samples = [(labels, 1000, SampleValue::Float(1.0))];
        let text = |escaping| write_text(&samples, &labelling(escaping));
        assert_eq!(text(Escaping::Underscores), "# TYPE m untyped\nm{a_b=\"3\",c_d=\"2\",instance=\"\"} 1 1000\n");
        assert_eq!(
            text(Escaping::AllowUtf8),
            "# TYPE m untyped\nm{\"__name_.\"=\"4\",\"a:b\"=\"3\",\"c.d\"=\"1\",c_d=\"2\",instance=\"\"} 1 1000\n"
        );
    }

    #[test]
    fn values_are_written_as_go_writes_them() {
        let samples: Vec<Latest> = [1e6, 5e-324, 123_456_789.0, -0.25, -0.0, 1e-4, 999_999.5, 9.5e-5]
            .into_iter()
            .map(|v| (Labels::from_pairs([("__name__", "v"), ("instance", "i")]), 1, SampleValue::Float(v)))
            .collect();
        let lines: Vec<String> = write_text(&samples, &labelling(Escaping::Underscores))
            .lines()
            .skip(1)
            .map(|l| l.split(' ').nth(1).unwrap().to_string())
            .collect();
        assert_eq!(lines, ["1e+06", "5e-324", "1.23456789e+08", "-0.25", "0", "0.0001", "999999.5", "9.5e-05"]);
    }
}
