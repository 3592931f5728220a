//! The text exposition format 0.0.4, written: what `/federate` serves, so that another
//! Prometheus scrapes a Pyrite.

use crate::labels::{Labels, METRIC_NAME};
use crate::value::format_value;

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

/// Writes samples as the text format: each metric family (consecutive samples with the same
/// name) under one `# TYPE <name> untyped` line, then `name{labels} value timestamp` lines with
/// labels in their sorted order. `samples` must be sorted by metric name.
pub fn write_text(samples: &[(Labels, i64, f64)]) -> String {
    let mut out = String::new();
    let mut family: Option<&str> = None;
    for (labels, t, v) in samples {
        let name = labels.get(METRIC_NAME);
        if family != Some(name) {
            out.push_str("# TYPE ");
            out.push_str(name);
            out.push_str(" untyped\n");
            family = Some(name);
        }
        out.push_str(name);
        let pairs = labels.iter().filter(|l| l.name != METRIC_NAME).map(|l| (l.name.as_str(), l.value.as_str()));
        write_labels(&mut out, pairs);
        out.push(' ');
        out.push_str(&format_value(*v));
        out.push(' ');
        out.push_str(&t.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{Entry, TextParser};

    #[test]
    fn written_text_parses_back_to_the_same_samples() {
        let samples = vec![
            (Labels::from_pairs([("__name__", "a"), ("x", "q\"u\\o\nte")]), 1000, 1.5),
            (Labels::from_pairs([("__name__", "a"), ("x", "2")]), 2000, f64::INFINITY),
            (Labels::from_pairs([("__name__", "b")]), 3000, -0.25),
        ];
        let text = write_text(&samples);
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
}
