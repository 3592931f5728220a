//! Label sets and label matchers.
//!
//! A [`Labels`] is a set of (name, value) pairs kept sorted by name, with no empty values and no
//! duplicate names: the canonical form of a series identity. Its [`Labels::hash`] decides which
//! shard owns the series, so it must stay stable for a given label set.
//!
//! A [`Matcher`] is one `name op "value"` term of a selector. Regular expressions are fully
//! anchored and `.` matches newlines, as in Prometheus 3.x.

use std::fmt;

use thiserror::Error;

use crate::value_regex::{Shape, ValueRegex};

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// The most bytes a stored series' labels may take together, names and values (1 MiB). Far
/// past any real metric, and what keeps a series' entry in the write-ahead log well inside one
/// frame: a scrape with a series past it fails (as past `label_value_length_limit`), a
/// remote-written one is refused, and a PromQL function does not make a label value longer.
pub const MAX_SERIES_LABEL_BYTES: usize = 1 << 20;

/// One name/value pair.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

/// A sorted set of labels with unique names and non-empty values.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<Label>);

/// A JSON object (or other map) of names to values, as Prometheus writes label sets.
impl serde::Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for l in &self.0 {
            map.serialize_entry(&l.name, &l.value)?;
        }
        map.end()
    }
}

impl Labels {
    /// Builds a label set from pairs in any order. Empty values are dropped; for duplicate names
    /// the last pair wins.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        let mut labels: Vec<Label> =
            pairs.into_iter().map(|(n, v)| Label { name: n.into(), value: v.into() }).collect();
        // Stable sort keeps the input order of equal names, so "last wins" below holds.
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(labels.len());
        for l in labels {
            match out.last_mut() {
                Some(prev) if prev.name == l.name => *prev = l,
                _ => out.push(l),
            }
        }
        out.retain(|l| !l.value.is_empty());
        Labels(out)
    }

    /// Builds a label set from labels already sorted by name, unique and non-empty (as a head
    /// stores them); checked in debug builds only.
    pub fn from_sorted(labels: Vec<Label>) -> Self {
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
        debug_assert!(labels.iter().all(|l| !l.value.is_empty()));
        Labels(labels)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The bytes of the names and values together (see [`MAX_SERIES_LABEL_BYTES`]).
    pub fn byte_len(&self) -> usize {
        self.0.iter().map(|l| l.name.len() + l.value.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `name`, or "" when the label is absent (Prometheus's convention).
    pub fn get(&self, name: &str) -> &str {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) => &self.0[i].value,
            Err(_) => "",
        }
    }

    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME)
    }

    /// A copy without the metric name.
    pub fn without_metric_name(&self) -> Labels {
        self.filtered(|name| name != METRIC_NAME)
    }

    /// These labels without the metric name, dropped in place.
    pub fn into_without_metric_name(mut self) -> Labels {
        self.0.retain(|l| l.name != METRIC_NAME);
        self
    }

    /// These labels plus each of `external` that they do not have (the external labels, as
    /// federation, remote read, remote write and alerts add them).
    pub fn with_external(self, external: &Labels) -> Labels {
        if external.iter().all(|e| !self.get(&e.name).is_empty()) {
            return self;
        }
        let mut labels = self.0;
        for e in external.iter() {
            if labels.iter().all(|l| l.name != e.name) {
                labels.push(e.clone());
            }
        }
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        Labels(labels)
    }

    /// A copy keeping only the labels for which `keep(name)` is true.
    pub fn filtered(&self, keep: impl Fn(&str) -> bool) -> Labels {
        Labels(self.0.iter().filter(|l| keep(&l.name)).cloned().collect())
    }

    /// Stable 64-bit hash of the label set; decides the owning shard.
    pub fn hash(&self) -> u64 {
        hash_pairs(self.0.iter().map(|l| (l.name.as_str(), l.value.as_str())))
    }

    /// The index of the shard that owns this series among `shards`.
    pub fn owner(&self, shards: usize) -> usize {
        (self.hash() % shards.max(1) as u64) as usize
    }
}

/// The labels of each series a read must return: all of them, or only the named ones when the
/// query reads no others (an aggregation `by` a few labels over series it cannot confuse), so
/// that storage need not build label sets nobody reads. A source may always return more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Projection {
    #[default]
    All,
    /// These names, sorted and unique.
    Only(Vec<String>),
}

impl Projection {
    /// Whether a label named `name` is returned.
    pub fn keeps(&self, name: &str) -> bool {
        match self {
            Projection::All => true,
            Projection::Only(names) => names.binary_search_by(|n| n.as_str().cmp(name)).is_ok(),
        }
    }
}

/// [`Labels::hash`] of the label set whose (name, value) pairs, in label order, are `pairs`,
/// for a store that keeps labels in another form.
pub fn hash_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (name, value) in pairs {
        h.update(name.as_bytes());
        h.update(&[0xff]);
        h.update(value.as_bytes());
        h.update(&[0xff]);
    }
    h.digest()
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_notation(f, self.0.iter().map(|l| (l.name.as_str(), l.value.as_str())))
    }
}

/// Prometheus's notation for name/value pairs, `{a="1", "b.c"="2"}`: a label set's, and an
/// alert's annotations' in promtool's messages. As upstream 3.x's `Labels.String`, a name outside
/// the legacy set is quoted, and values are quoted as Go quotes them.
pub fn write_notation<'a>(
    out: &mut impl fmt::Write,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> fmt::Result {
    out.write_str("{")?;
    for (i, (name, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.write_str(", ")?;
        }
        write!(out, "{}={}", written_name(name), go_quote(value))?;
    }
    out.write_str("}")
}

/// `names` sorted, with the first name that appears twice, if any. Found by sorting, not by
/// comparing every pair: label sets from outside may have a hundred thousand names.
pub fn sorted_names<'a>(names: impl Iterator<Item = &'a str>) -> (Vec<&'a str>, Option<&'a str>) {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    let duplicate = names.windows(2).find(|pair| pair[0] == pair[1]).map(|pair| pair[0]);
    (names, duplicate)
}

/// Whether `s` is a valid legacy label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `s` may name a label PromQL makes (`label_replace`, `label_join`, `count_values`):
/// any name that is not empty, as upstream checks these with `model.UTF8Validation` whatever
/// the configured scheme. A PromQL byte escape that is not UTF-8 (`"\xff"`) reads as U+FFFD,
/// so a name holding U+FFFD is refused, as upstream refuses those bytes.
pub fn is_valid_utf8_label_name(s: &str) -> bool {
    !s.is_empty() && !s.contains('\u{FFFD}')
}

/// Which metric and label names a scrape takes, and its relabeling makes
/// (`metric_name_validation_scheme`): any UTF-8 name that is not empty (`utf8`, upstream 3.x's
/// default), or the legacy character sets only (`legacy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NameValidation {
    #[default]
    Utf8,
    Legacy,
}

impl NameValidation {
    /// The scheme a configuration names.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "utf8" => Ok(NameValidation::Utf8),
            "legacy" => Ok(NameValidation::Legacy),
            other => Err(format!(
                "unknown name validation method specified, must be either 'legacy' or 'utf8', got {other:?}"
            )),
        }
    }

    /// Its name in a configuration.
    pub fn name(self) -> &'static str {
        match self {
            NameValidation::Utf8 => "utf8",
            NameValidation::Legacy => "legacy",
        }
    }

    /// Whether this scheme takes `name` as a label name. Text from outside is UTF-8 by the time
    /// it is a `str`, so `utf8` wants only a name.
    pub fn label_name(self, name: &str) -> bool {
        match self {
            NameValidation::Utf8 => !name.is_empty(),
            NameValidation::Legacy => is_valid_label_name(name),
        }
    }

    /// Whether this scheme takes `name` as a metric name.
    pub fn metric_name(self, name: &str) -> bool {
        match self {
            NameValidation::Utf8 => !name.is_empty(),
            NameValidation::Legacy => is_valid_metric_name(name),
        }
    }

    /// Whether this scheme takes `labels`' metric name and label names (upstream's
    /// `Labels.IsValid`).
    pub fn labels(self, labels: &Labels) -> bool {
        labels.iter().all(|l| match l.name.as_str() {
            METRIC_NAME => self.metric_name(&l.value),
            name => self.label_name(name),
        })
    }
}

/// Whether `s` is a valid legacy metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The comparison a matcher makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        })
    }
}

#[derive(Debug, Error)]
#[error("invalid regular expression {pattern:?}: {source}")]
pub struct RegexError {
    pattern: String,
    #[source]
    source: Box<regex::Error>,
}

/// One label matcher, e.g. `job=~"api|web"`.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<ValueRegex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Matcher {
    pub fn new(name: impl Into<String>, op: MatchOp, value: impl Into<String>) -> Result<Self, RegexError> {
        let value = value.into();
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(ValueRegex::new(&value).map_err(|e| RegexError { pattern: value.clone(), source: Box::new(e) })?)
            }
            _ => None,
        };
        Ok(Matcher { name: name.into(), op, value, regex })
    }

    /// An equality matcher; cannot fail.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher { name: name.into(), op: MatchOp::Equal, value: value.into(), regex: None }
    }

    /// The values a regex matcher's pattern matches, where an index can tell them without
    /// trying the pattern on each value it holds.
    pub fn regex_shape(&self) -> Option<&Shape> {
        self.regex.as_ref()?.shape()
    }

    /// Whether a label value (or "" for an absent label) satisfies the matcher.
    pub fn matches(&self, v: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => v == self.value,
            (MatchOp::NotEqual, _) => v != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(v),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(v),
            (_, None) => unreachable!("regex matchers always carry a compiled regex"),
        }
    }
}

impl fmt::Display for Matcher {
    /// As PromQL reads it back: a name that is not a legacy label name is quoted (3.x), the
    /// value quoted as Go's `strconv.Quote` does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", written_name(&self.name), self.op, go_quote(&self.value))
    }
}

/// A label name as PromQL reads it back and upstream 3.x writes it: bare in the legacy set,
/// quoted outside it.
pub fn written_name(name: &str) -> std::borrow::Cow<'_, str> {
    match is_valid_label_name(name) {
        true => name.into(),
        false => go_quote(name).into(),
    }
}

/// `s` in double quotes much as Go's `strconv.Quote` writes it, which PromQL's string syntax reads
/// back: `\"`, `\\`, the named escapes (`\n`, `\t`, ...), `\xNN` for other ASCII control
/// characters and `\uNNNN` for other characters that do not print, and for U+FFFD: a string
/// holds it for a byte that was not UTF-8 (`"\x84"`), and the syntax refuses it as written.
pub fn go_quote(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffd}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_deduplicated_and_drop_empty_values() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("a", "3")]);
        assert_eq!(l.to_string(), r#"{a="3", b="2"}"#);
        let odd = Labels::from_pairs([("service.name", "a\u{1}\"b"), ("x", "\u{2028}")]);
        assert_eq!(odd.to_string(), r#"{"service.name"="a\x01\"b", x="\u2028"}"#);
        assert_eq!(l.get("c"), "");
        assert_eq!(l.get("b"), "2");
    }

    #[test]
    fn name_schemes_take_what_upstream_takes() {
        let dotted = Labels::from_pairs([("__name__", "a.b"), ("c", "1")]);
        let colon = Labels::from_pairs([("__name__", "a:b"), ("c:d", "1")]);
        let legacy = Labels::from_pairs([("__name__", "a:b"), ("c", "\u{fffd}")]);
        let utf8 = NameValidation::Utf8;
        assert!(utf8.labels(&dotted) && utf8.labels(&colon) && utf8.labels(&legacy));
        assert!(utf8.label_name("\u{fffd}") && !utf8.label_name(""));
        let strict = NameValidation::Legacy;
        assert!(!strict.labels(&dotted), "a metric name with a dot");
        assert!(!strict.labels(&colon), "a label name with a colon");
        assert!(strict.labels(&legacy), "a metric name with a colon, any value");
    }

    #[test]
    fn labels_serialize_as_an_object() {
        let l = Labels::from_pairs([("job", "api"), ("__name__", "up")]);
        assert_eq!(serde_json::to_string(&l).unwrap(), r#"{"__name__":"up","job":"api"}"#);
    }

    #[test]
    fn hash_is_order_independent_and_separates_names_from_values() {
        let a = Labels::from_pairs([("a", "1"), ("b", "2")]);
        let b = Labels::from_pairs([("b", "2"), ("a", "1")]);
        assert_eq!(a.hash(), b.hash());
        let c = Labels::from_pairs([("a", "1b"), ("", "2")]);
        assert_ne!(a.hash(), c.hash());
    }

    #[test]
    fn regex_matchers_are_anchored_and_dot_matches_newline() {
        let m = Matcher::new("job", MatchOp::Regex, "api|web").unwrap();
        assert!(m.matches("api"));
        assert!(!m.matches("api2"));
        assert!(!m.matches("xapi"));
        let dot = Matcher::new("x", MatchOp::Regex, "a.b").unwrap();
        assert!(dot.matches("a\nb"));
        let nre = Matcher::new("job", MatchOp::NotRegex, "").unwrap();
        assert!(nre.matches("x"));
        assert!(!nre.matches(""));
        assert!(Matcher::new("x", MatchOp::Regex, "(").is_err());
    }

    #[test]
    fn name_validation() {
        assert!(is_valid_label_name("_a1"));
        assert!(!is_valid_label_name("1a"));
        assert!(!is_valid_label_name("a:b"));
        assert!(is_valid_metric_name("a:b_c"));
        assert!(!is_valid_metric_name(""));
    }
}
