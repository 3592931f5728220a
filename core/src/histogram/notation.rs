//! The `{{schema:0 sum:5 count:4 buckets:[1 2 1]}}` notation of one native histogram, as
//! promqltest files and promtool rule tests write it: parsing (upstream's lexer and
//! `buildHistogramFromMap`), and printing it back for readable test failures.

use std::fmt;

use super::{CounterResetHint, FloatHistogram, Span};
use crate::rules::template::go_float;
use crate::series_notation::number;

/// Parses one histogram in the test notation, braces included. Keys may come in any order,
/// each at most once, all optional; `buckets`/`n_buckets` are absolute counts of consecutive
/// buckets starting at index `offset`/`n_offset`.
pub fn parse_histogram(text: &str) -> Result<FloatHistogram, String> {
    let fail = |why: String| format!("histogram {text:?}: {why}");
    let inner = text
        .trim()
        .strip_prefix("{{")
        .and_then(|s| s.strip_suffix("}}"))
        .ok_or_else(|| fail("not enclosed in {{ }}".into()))?;
    let mut h = FloatHistogram::default();
    let (mut positive, mut negative): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let (mut offset, mut n_offset) = (0, 0);
    let mut seen: Vec<String> = Vec::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let colon = rest.find(':').ok_or_else(|| fail(format!("expected key:value at {rest:?}")))?;
        let key = rest[..colon].to_ascii_lowercase();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_') {
            return Err(fail(format!("bad key {:?}", &rest[..colon])));
        }
        let after = &rest[colon + 1..];
        let end = if after.starts_with('[') {
            after.find(']').ok_or_else(|| fail(format!("unclosed list after {key}:")))? + 1
        } else {
            after.find(char::is_whitespace).unwrap_or(after.len())
        };
        let (value, tail) = after.split_at(end);
        if !tail.is_empty() && !tail.starts_with(char::is_whitespace) {
            return Err(fail(format!("expected a blank after {key}:{value}")));
        }
        if seen.contains(&key) {
            return Err(fail(format!("duplicate key {key}")));
        }
        let bad = |what: &str| fail(format!("bad {what} {value:?} for {key}"));
        let float = || number(value).ok_or_else(|| bad("number"));
        let int = || value.parse::<i32>().map_err(|_| bad("integer"));
        let list = || {
            let items = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')).ok_or_else(|| bad("list"))?;
            let parsed: Option<Vec<f64>> = items.split_whitespace().map(number).collect();
            parsed.filter(|v| !v.is_empty()).ok_or_else(|| bad("list"))
        };
        match key.as_str() {
            "schema" => h.schema = int()?,
            "sum" => h.sum = float()?,
            "count" => h.count = float()?,
            "z_bucket" => h.zero_count = float()?,
            "z_bucket_w" if value.starts_with(['+', '-']) => return Err(bad("unsigned number")),
            "z_bucket_w" => h.zero_threshold = float()?,
            "buckets" => positive = list()?,
            "offset" => offset = int()?,
            "n_buckets" => negative = list()?,
            "n_offset" => n_offset = int()?,
            "custom_values" => h.custom_values = list()?,
            "counter_reset_hint" => {
                h.counter_reset_hint = match value.to_ascii_lowercase().as_str() {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    _ => return Err(bad("counter reset hint")),
                }
            }
            _ => return Err(fail(format!("unknown key {key}"))),
        }
        seen.push(key);
        rest = tail.trim_start();
    }
    let span = |offset: i32, buckets: &[f64]| {
        if buckets.is_empty() {
            Vec::new()
        } else {
            vec![Span { offset, length: buckets.len() as u32 }]
        }
    };
    h.positive_spans = span(offset, &positive);
    h.negative_spans = span(n_offset, &negative);
    h.positive_buckets = positive;
    h.negative_buckets = negative;
    Ok(h)
}

/// Prints the test notation (`{{schema:0 count:4 sum:5 buckets:[1 2 1]}}`), numbers as Go's
/// `%g`: schema, count and sum always, other keys only when set. Each side is written as one
/// run from its lowest to its highest populated bucket (empty buckets at the ends dropped).
impl fmt::Display for FloatHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |values: &[f64]| values.iter().map(|&v| go_float(v, None)).collect::<Vec<_>>().join(" ");
        let mut h = self.clone();
        h.compact(usize::MAX);
        write!(f, "{{{{schema:{} count:{} sum:{}", h.schema, go_float(h.count, None), go_float(h.sum, None))?;
        if h.zero_count != 0.0 {
            write!(f, " z_bucket:{}", go_float(h.zero_count, None))?;
        }
        if h.zero_threshold != 0.0 {
            write!(f, " z_bucket_w:{}", go_float(h.zero_threshold, None))?;
        }
        if !h.custom_values.is_empty() {
            write!(f, " custom_values:[{}]", list(&h.custom_values))?;
        }
        match h.counter_reset_hint {
            CounterResetHint::Unknown => {}
            CounterResetHint::CounterReset => write!(f, " counter_reset_hint:reset")?,
            CounterResetHint::NotCounterReset => write!(f, " counter_reset_hint:not_reset")?,
            CounterResetHint::Gauge => write!(f, " counter_reset_hint:gauge")?,
        }
        for (spans, buckets, offset_key, buckets_key) in [
            (&h.positive_spans, &h.positive_buckets, "offset", "buckets"),
            (&h.negative_spans, &h.negative_buckets, "n_offset", "n_buckets"),
        ] {
            if let Some(first) = spans.first().filter(|s| s.offset != 0) {
                write!(f, " {offset_key}:{}", first.offset)?;
            }
            if !buckets.is_empty() {
                write!(f, " {buckets_key}:[{}]", list(buckets))?;
            }
        }
        write!(f, "}}}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let h = parse_histogram(
            "{{schema:1 sum:-5.5 count:4 z_bucket:1 z_bucket_w:0.001 buckets:[1 2 1] offset:-2 n_buckets:[3 Inf] \
             n_offset:4 counter_reset_hint:gauge}}",
        )
        .unwrap();
        assert_eq!(
            h,
            FloatHistogram {
                counter_reset_hint: CounterResetHint::Gauge,
                schema: 1,
                zero_threshold: 0.001,
                zero_count: 1.0,
                count: 4.0,
                sum: -5.5,
                positive_spans: vec![Span { offset: -2, length: 3 }],
                negative_spans: vec![Span { offset: 4, length: 2 }],
                positive_buckets: vec![1.0, 2.0, 1.0],
                negative_buckets: vec![3.0, f64::INFINITY],
                custom_values: vec![],
            }
        );
        let c = parse_histogram("{{ schema:-53 custom_values:[-2 3] buckets:[1 2 ] count:3 }}").unwrap();
        assert_eq!((c.schema, c.custom_values, c.count), (-53, vec![-2.0, 3.0], 3.0));
        assert_eq!(c.positive_spans, vec![Span { offset: 0, length: 2 }]);
        assert_eq!(parse_histogram("{{}}").unwrap(), FloatHistogram::default());
        assert!(parse_histogram("{{sum:NaN}}").unwrap().sum.is_nan());
        assert_eq!(parse_histogram("{{SUM:-Inf Counter_Reset_Hint:NOT_RESET}}").unwrap().sum, f64::NEG_INFINITY);
    }

    #[test]
    fn refuses_malformed_text() {
        for bad in [
            "{{schema:0",
            "schema:0}}",
            "{{sum:1 sum:2}}",
            "{{foo:1}}",
            "{{sum:}}",
            "{{sum:x}}",
            "{{schema:1.5}}",
            "{{buckets:[]}}",
            "{{buckets:[1 2}}",
            "{{buckets:[1]offset:1}}",
            "{{z_bucket_w:-1}}",
            "{{counter_reset_hint:maybe}}",
            "{{sum 1}}",
        ] {
            assert!(parse_histogram(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn prints_the_notation() {
        let text = "{{schema:0 count:4 sum:5 buckets:[1 2 1]}}";
        assert_eq!(parse_histogram(text).unwrap().to_string(), text);
        let text =
            "{{schema:-53 count:3 sum:NaN custom_values:[0.5 1e+06] counter_reset_hint:not_reset buckets:[1 2]}}";
        assert_eq!(parse_histogram(text).unwrap().to_string(), text);
        let text = "{{schema:2 count:1e-07 sum:-Inf z_bucket:1 z_bucket_w:0.001 offset:-3 buckets:[0.5 0 2] \
                    n_offset:2 n_buckets:[7]}}";
        let h = parse_histogram(text).unwrap();
        assert_eq!(h.to_string(), text);
        assert!(parse_histogram(&h.to_string()).unwrap().equals(&h));
        // Several spans print as one run; empty buckets at the ends are dropped.
        let h = FloatHistogram {
            count: 3.0,
            positive_spans: vec![Span { offset: -1, length: 2 }, Span { offset: 2, length: 1 }],
            positive_buckets: vec![0.0, 1.0, 2.0],
            ..Default::default()
        };
        assert_eq!(h.to_string(), "{{schema:0 count:3 sum:0 buckets:[1 0 0 2]}}");
    }
}
