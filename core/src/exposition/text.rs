//! Parser for the Prometheus text exposition format 0.0.4 and OpenMetrics 1.0 text.
//!
//! The parser is a pull iterator over lines. A sample line is split into its raw series text
//! (`name{labels}`), value and optional timestamp *without* parsing the labels: the scrape cache
//! looks the raw series text up first, and only a series it has not seen is handed to
//! [`parse_series`]. Everything else on the line is validated, so a malformed body is detected
//! before anything of it is stored.
//!
//! Grammar (per line, after leading blanks): `# HELP name text`, `# TYPE name type`, any other
//! `#` comment, an empty line, or `name[{l="v",...}] value [timestamp]`. Label values use the
//! escapes `\\`, `\"` and `\n`; values are Go floats (`NaN`, `+Inf`, `-Inf`, exponents).
//!
//! OpenMetrics ([`Format::OpenMetrics`]) differs: timestamps are seconds (a float), `# UNIT`
//! lines and the `info`, `stateset`, `gaugehistogram` and `unknown` types exist, a sample may
//! carry an exemplar (`# {labels} value [timestamp]`, see [`ScrapedExemplar`]), and the body
//! must end with `# EOF`. `_created` samples are kept as
//! series, as upstream does unless its created-timestamp feature is on. A [`Format::Protobuf`]
//! body is not for this parser (see [`super::protobuf`]); given one, it reads it as text.

use thiserror::Error;

use super::entry::{Entry, MetricType, ScrapedExemplar};
use super::media::Format;
use super::scan::find3;
use crate::excerpt::{excerpt, MAX_MESSAGE_BYTES};
use crate::labels::{is_valid_label_name, is_valid_metric_name, Labels};
use crate::value::{exemplar_label_chars, EXEMPLAR_MAX_LABEL_CHARS};

/// A parse error, with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("text format parsing error in line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Input quoted in an error message, at most [`MAX_MESSAGE_BYTES`] of it: the message is
/// built before it is cut, and a line can be hundreds of megabytes.
fn quoted(text: &str) -> String {
    format!("{:?}", excerpt(text, MAX_MESSAGE_BYTES))
}

impl ParseError {
    /// An error at `line`. Its message is cut short: it quotes the text refused, and a
    /// target's last error is kept and served.
    pub fn new(line: usize, message: String) -> ParseError {
        ParseError { line, message: excerpt(&message, MAX_MESSAGE_BYTES).into_owned() }
    }
}

impl MetricType {
    /// The type a `# TYPE` line names in `format`.
    fn parse(s: &str, format: Format) -> Option<Self> {
        let openmetrics = format == Format::OpenMetrics;
        Some(match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" if !openmetrics => MetricType::Untyped,
            "unknown" if openmetrics => MetricType::Untyped,
            "info" if openmetrics => MetricType::Info,
            "stateset" if openmetrics => MetricType::StateSet,
            "gaugehistogram" if openmetrics => MetricType::GaugeHistogram,
            _ => return None,
        })
    }
}

/// Pull parser over a whole exposition body.
pub struct TextParser<'a> {
    rest: &'a str,
    line: usize,
    format: Format,
    /// OpenMetrics: whether `# EOF` was seen.
    ended: bool,
}

impl<'a> TextParser<'a> {
    pub fn new(body: &'a str) -> Self {
        Self::with_format(body, Format::Text)
    }

    pub fn with_format(body: &'a str, format: Format) -> Self {
        TextParser { rest: body, line: 0, format, ended: false }
    }

    /// The 1-based number of the line last returned.
    pub fn line(&self) -> usize {
        self.line
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError::new(self.line, message.into())
    }

    fn parse_line(&mut self, line: &'a str) -> Result<Option<Entry<'a>>, ParseError> {
        let line = line.trim_start_matches([' ', '\t']);
        if self.ended {
            return Err(self.error("unexpected data after # EOF"));
        }
        if line.is_empty() {
            return Ok(None);
        }
        if let Some(comment) = line.strip_prefix('#') {
            return self.parse_comment(comment);
        }
        let series_end = series_end(line).map_err(|m| self.error(m))?;
        let series = line[..series_end].trim_end_matches([' ', '\t']);
        if series_end == line.len() || !line[series_end..].starts_with([' ', '\t']) {
            return Err(self.error(format!("expected value after metric, got {}", quoted(&line[series_end..]))));
        }
        let mut fields = line[series_end..].split([' ', '\t']).filter(|f| !f.is_empty());
        let value_text = fields.next().ok_or_else(|| self.error("expected value after metric"))?;
        let value = parse_float(value_text)
            .ok_or_else(|| self.error(format!("expected float as value, got {}", quoted(value_text))))?;
        if self.format == Format::OpenMetrics {
            return self.openmetrics_rest(series, value, &line[series_end..]);
        }
        let timestamp = match fields.next() {
            None => None,
            Some(ts) => Some(
                ts.parse::<i64>()
                    .map_err(|_| self.error(format!("expected integer as timestamp, got {}", quoted(ts))))?,
            ),
        };
        if let Some(extra) = fields.next() {
            return Err(self.error(format!("unexpected {} after timestamp", quoted(extra))));
        }
        Ok(Some(Entry::Sample { series, value, timestamp, exemplar: None }))
    }

    /// The rest of an OpenMetrics sample line after its series: value, an optional timestamp
    /// in seconds, an optional exemplar.
    fn openmetrics_rest(&self, series: &'a str, value: f64, rest: &str) -> Result<Option<Entry<'a>>, ParseError> {
        let (sample, exemplar) = match rest.find(" # ") {
            Some(i) => (&rest[..i], Some(&rest[i + 3..])),
            None => (rest, None),
        };
        let mut fields = sample.split(' ').filter(|f| !f.is_empty()).skip(1);
        let timestamp = match fields.next() {
            None => None,
            Some(ts) => Some(seconds_to_ms(ts).ok_or_else(|| self.error(format!("invalid timestamp {}", quoted(ts))))?),
        };
        if let Some(extra) = fields.next() {
            return Err(self.error(format!("unexpected {} after timestamp", quoted(extra))));
        }
        let exemplar = exemplar.map(|text| self.exemplar(text)).transpose()?.flatten();
        Ok(Some(Entry::Sample { series, value, timestamp, exemplar }))
    }

    /// An exemplar: `{labels} value [timestamp]`. None (the sample kept, as upstream keeps the
    /// scrape) if its labels pass 128 UTF-8 characters, which upstream's storage refuses, or if
    /// its timestamp is finite but past what milliseconds in an i64 hold, which upstream
    /// wraps to a meaningless time. A label given twice takes its last value, as 2.42 does.
    fn exemplar(&self, text: &str) -> Result<Option<ScrapedExemplar>, ParseError> {
        let end = series_end(text).map_err(|m| self.error(format!("invalid exemplar: {m}")))?;
        if !text.starts_with('{') {
            return Err(self.error("invalid exemplar: expected '{'"));
        }
        let labels = series_pairs(&format!("exemplar{}", &text[..end]))
            .map(Labels::from_pairs)
            .map_err(|m| self.error(format!("invalid exemplar labels: {m}")))?
            .into_without_metric_name();
        let mut fields = text[end..].split(' ').filter(|f| !f.is_empty());
        let value = fields.next().ok_or_else(|| self.error("invalid exemplar: no value"))?;
        let value =
            parse_float(value).ok_or_else(|| self.error(format!("invalid exemplar value {}", quoted(value))))?;
        // None: a time past what i64 milliseconds hold, whose exemplar is dropped.
        let timestamp = match fields.next() {
            None => Some(None),
            Some(ts) => match parse_float(ts).filter(|s| s.is_finite()) {
                None => return Err(self.error(format!("invalid exemplar timestamp {}", quoted(ts)))),
                Some(seconds) => seconds_in_ms(seconds).map(Some),
            },
        };
        if let Some(extra) = fields.next() {
            return Err(self.error(format!("unexpected {} after exemplar", quoted(extra))));
        }
        let Some(timestamp) = timestamp else { return Ok(None) };
        let fits = exemplar_label_chars(&labels) <= EXEMPLAR_MAX_LABEL_CHARS;
        Ok(fits.then_some(ScrapedExemplar { labels, value, timestamp }))
    }

    fn parse_comment(&mut self, comment: &'a str) -> Result<Option<Entry<'a>>, ParseError> {
        let comment = comment.trim_start_matches([' ', '\t']);
        let (keyword, rest) = comment.split_once([' ', '\t']).unwrap_or((comment, ""));
        if self.format == Format::OpenMetrics && comment == "EOF" {
            self.ended = true;
            return Ok(None);
        }
        let known = keyword == "HELP" || keyword == "TYPE" || (keyword == "UNIT" && self.format == Format::OpenMetrics);
        if !known {
            return Ok(None); // an ordinary comment
        }
        let rest = rest.trim_start_matches([' ', '\t']);
        let (metric, text, escaped) = comment_name(rest).map_err(|m| self.error(m))?;
        let entry = match keyword {
            "HELP" => {
                let text = unescape(text, false).map_err(|m| self.error(m))?;
                Entry::Help { metric, text }
            }
            "UNIT" => {
                let unit = text.trim_matches([' ', '\t']);
                if !unit.is_empty() && !metric.strip_suffix(unit).is_some_and(|rest| rest.ends_with('_')) {
                    return Err(self.error(format!("unit {} not a suffix of metric {}", quoted(unit), quoted(metric))));
                }
                Entry::Unit { metric, unit }
            }
            _ => {
                let kind_text = text.trim_matches([' ', '\t']);
                let kind = MetricType::parse(kind_text, self.format)
                    .ok_or_else(|| self.error(format!("unknown metric type {}", quoted(kind_text))))?;
                Entry::Type { metric, kind }
            }
        };
        // A name with an escape in it cannot be lent as written: the line, checked, is skipped.
        Ok((!escaped).then_some(entry))
    }
}

impl<'a> Iterator for TextParser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let (line, rest) = match self.rest.find('\n') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, ""),
            };
            self.rest = rest;
            self.line += 1;
            let line = line.strip_suffix('\r').unwrap_or(line);
            match self.parse_line(line) {
                Ok(None) => continue,
                Ok(Some(entry)) => return Some(Ok(entry)),
                Err(e) => {
                    self.rest = "";
                    self.ended = true;
                    return Some(Err(e));
                }
            }
        }
        if self.format == Format::OpenMetrics && !self.ended {
            self.ended = true;
            return Some(Err(self.error("data does not end with # EOF")));
        }
        None
    }
}

/// An OpenMetrics timestamp (seconds, possibly fractional) in milliseconds.
fn seconds_to_ms(text: &str) -> Option<i64> {
    seconds_in_ms(parse_float(text).filter(|s| s.is_finite())?)
}

/// Finite `seconds` in whole milliseconds, if an i64 holds them.
fn seconds_in_ms(seconds: f64) -> Option<i64> {
    let ms = (seconds * 1000.0).round();
    (ms.abs() < 9.2e18).then_some(ms as i64)
}

/// Byte offset just past the series part of a sample line (the name and the `{...}` block, if
/// any), found without decoding labels; quotes and escapes inside label values are respected.
/// The delimiters are found with [`find3`] (SIMD).
fn series_end(line: &str) -> Result<usize, String> {
    const UNTERMINATED: &str = "unterminated label set: missing '}'";
    let bytes = line.as_bytes();
    let i = find3(bytes, b' ', b'\t', b'{').unwrap_or(bytes.len());
    if i == 0 && bytes.first() != Some(&b'{') {
        return Err(format!("expected metric name, got {}", quoted(line)));
    }
    let mut j = i;
    while j < bytes.len() && matches!(bytes[j], b' ' | b'\t') {
        j += 1;
    }
    if bytes.get(j) != Some(&b'{') {
        return Ok(i);
    }
    let mut k = j + 1;
    loop {
        // Outside quotes: the next quote opens a value, the next brace closes the set.
        let at = k + find3(&bytes[k..], b'"', b'}', b'}').ok_or(UNTERMINATED)?;
        if bytes[at] == b'}' {
            return Ok(at + 1);
        }
        // Inside quotes: the next unescaped quote closes the value.
        let mut q = at + 1;
        loop {
            let hit = q + find3(bytes.get(q..).unwrap_or_default(), b'"', b'\\', b'"').ok_or(UNTERMINATED)?;
            if bytes[hit] == b'"' {
                k = hit + 1;
                break;
            }
            q = hit + 2;
        }
    }
}

/// Powers of ten a double holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// The common case, without allocating or the general algorithm: `[+-]digits[.digits]` whose
/// digits form an integer below 2^53 with at most 22 after the point. The quotient of two exact
/// doubles is correctly rounded, so this equals the general parse (Clinger's fast path).
fn parse_simple_decimal(s: &[u8]) -> Option<f64> {
    let (negative, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (mut mantissa, mut count, mut after_point, mut point) = (0u64, 0usize, 0usize, false);
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                if count == 19 {
                    return None;
                }
                mantissa = mantissa * 10 + u64::from(b - b'0');
                count += 1;
                after_point += usize::from(point);
            }
            b'.' if !point => point = true,
            _ => return None,
        }
    }
    if count == 0 || mantissa > 1 << 53 || after_point >= EXACT_POWERS_OF_TEN.len() {
        return None;
    }
    let value = mantissa as f64 / EXACT_POWERS_OF_TEN[after_point];
    Some(if negative { -value } else { value })
}

/// Parses a Go float as the text format allows: decimal, exponent, `NaN`, `+Inf`, `-Inf`, `Inf`.
pub fn parse_float(s: &str) -> Option<f64> {
    if let Some(v) = parse_simple_decimal(s.as_bytes()) {
        return Some(v);
    }
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let negative = s.starts_with('-');
    if unsigned.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return Some(if negative { f64::NEG_INFINITY } else { f64::INFINITY });
    }
    // Rust's parser accepts the same decimal forms Go does, but also "infinity"/"nan" spellings
    // handled above, and rejects hex floats and underscores like the text format.
    if unsigned.is_empty()
        || !unsigned.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Decodes the escapes of a label value (`\\`, `\"`, `\n`) or HELP text (`\\`, `\n`). Unknown
/// escapes are kept literally, as upstream's parser does.
fn unescape(s: &str, quotes: bool) -> Result<String, String> {
    if !s.contains('\\') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => return Err("escape character at end of text".to_string()),
        }
    }
    Ok(out)
}

/// Parses the raw series text of a sample line into its labels, the metric name included as
/// `__name__`. Rejects invalid names, duplicate label names and malformed quoting.
pub fn parse_series(series: &str) -> Result<Labels, String> {
    parse_series_pairs(series).map(Labels::from_pairs)
}

/// [`parse_series`]'s labels as written, the metric name first, those with an empty value
/// kept: a scrape with `honor_labels` reads `instance=""` as the target's `instance` unset, as
/// upstream reads it (federation writes it so). As upstream 3.x's lexer reads them, a name may
/// be quoted (`m{"service.name"="a"}`), and a metric name may be a quoted string of its own
/// inside the braces (`{"http.server.duration",code="200"}`); a bare name is of the legacy set.
/// Which names a scrape keeps is its scheme's to say, after metric relabeling
/// ([`crate::labels::NameValidation`]).
pub fn parse_series_pairs(series: &str) -> Result<Vec<(String, String)>, String> {
    let pairs = series_pairs(series)?;
    // Not compared pairwise: a line of 100,000 labels once took seconds every scrape.
    if let (_, Some(name)) = crate::labels::sorted_names(pairs.iter().map(|(n, _)| n.as_str())) {
        return Err(format!("duplicate label name {}", quoted(name)));
    }
    Ok(pairs)
}

/// [`parse_series_pairs`] without its check that no name is given twice.
fn series_pairs(series: &str) -> Result<Vec<(String, String)>, String> {
    const BLANKS: [char; 2] = [' ', '\t'];
    let (bare_name, rest) = match series.find('{') {
        Some(i) => (series[..i].trim_end_matches(BLANKS), &series[i..]),
        None => (series, ""),
    };
    // A bare name is of the legacy set, as upstream's lexer reads one; a quoted name is any.
    if !bare_name.is_empty() && !is_valid_metric_name(bare_name) {
        return Err(format!("invalid metric name {}", quoted(bare_name)));
    }
    let mut name = (!bare_name.is_empty()).then(|| bare_name.to_string());
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !rest.is_empty() {
        let inner = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| "malformed label set".to_string())?;
        let mut cursor = inner.trim_start_matches(BLANKS);
        while !cursor.is_empty() {
            let (lname, after, valid) = match cursor.strip_prefix('"') {
                Some(body) => {
                    let close =
                        closing_quote(body).ok_or_else(|| format!("unterminated quoted name in {}", quoted(cursor)))?;
                    let lname = unescape(&body[..close], true)?;
                    let valid = !lname.is_empty();
                    (lname, body[close + 1..].trim_start_matches(BLANKS), valid)
                }
                None => {
                    let eq = cursor
                        .find('=')
                        .ok_or_else(|| format!("expected '=' after label name in {}", quoted(cursor)))?;
                    let lname = cursor[..eq].trim_matches(BLANKS);
                    (lname.to_string(), &cursor[eq..], is_valid_label_name(lname))
                }
            };
            let value = match after.strip_prefix('=') {
                Some(value) => value.trim_start_matches(BLANKS),
                // A quoted string without a value is the metric name.
                None if after.is_empty() || after.starts_with(',') => {
                    if name.is_some() {
                        return Err(format!("metric name set twice, the second time as {}", quoted(&lname)));
                    }
                    if lname.is_empty() {
                        return Err("invalid metric name \"\"".into());
                    }
                    name = Some(lname);
                    cursor = after.strip_prefix(',').unwrap_or(after).trim_start_matches(BLANKS);
                    continue;
                }
                None => return Err(format!("expected '=' after label name {}, got {}", quoted(&lname), quoted(after))),
            };
            if !valid {
                return Err(format!("invalid label name {}", quoted(&lname)));
            }
            let body = value
                .strip_prefix('"')
                .ok_or_else(|| format!("expected '\"' to start the value of label {}", quoted(&lname)))?;
            let close = closing_quote(body).ok_or_else(|| format!("unterminated value of label {}", quoted(&lname)))?;
            let value = unescape(&body[..close], true)?;
            cursor = body[close + 1..].trim_start_matches(BLANKS);
            match cursor.strip_prefix(',') {
                Some(r) => cursor = r.trim_start_matches(BLANKS),
                None if cursor.is_empty() => {}
                None => {
                    return Err(format!("expected ',' or '}}' after label {}, got {}", quoted(&lname), quoted(cursor)))
                }
            }
            pairs.push((lname, value));
        }
    }
    let name = name.ok_or_else(|| "invalid metric name \"\"".to_string())?;
    pairs.insert(0, ("__name__".to_string(), name));
    Ok(pairs)
}

/// The metric name a `# HELP`, `# TYPE` or `# UNIT` line names, the text after it, and whether
/// the name holds an escape (`"a\"b"`, written as it stands here), as upstream 3.x's lexer reads
/// it: a bare name of the legacy set, or any name quoted.
fn comment_name(rest: &str) -> Result<(&str, &str, bool), String> {
    let Some(body) = rest.strip_prefix('"') else {
        let (name, text) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
        if !is_valid_metric_name(name) {
            return Err(format!("invalid metric name in comment: {}", quoted(name)));
        }
        return Ok((name, text, false));
    };
    let close = closing_quote(body).ok_or_else(|| format!("unterminated quoted metric name in {}", quoted(rest)))?;
    let (name, after) = (&body[..close], &body[close + 1..]);
    let text = match after.strip_prefix([' ', '\t']) {
        Some(text) => text,
        None if after.is_empty() => "",
        None => {
            return Err(format!(
                "expected a blank after the quoted metric name {}, got {}",
                quoted(name),
                quoted(after)
            ))
        }
    };
    if name.is_empty() {
        return Err("invalid metric name in comment: \"\"".into());
    }
    Ok((name, text, name.contains('\\')))
}

/// Index of the first unescaped `"` in `s`.
fn closing_quote(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Exemplar;

    fn samples(body: &str) -> Vec<(String, f64, Option<i64>)> {
        TextParser::new(body)
            .filter_map(|e| match e.unwrap() {
                Entry::Sample { series, value, timestamp, .. } => {
                    Some((parse_series(series).unwrap().to_string(), value, timestamp))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn parses_a_typical_body() {
        let body = "# HELP http_requests_total The total.\n# TYPE http_requests_total counter\n\
                    http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
                    http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n\
                    \n# A normal comment\nmetric_without_timestamp_and_labels 12.47\n";
        let s = samples(body);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].0, r#"{__name__="http_requests_total", code="200", method="post"}"#);
        assert_eq!(s[0].2, Some(1395066363000));
        assert_eq!(s[2], ("{__name__=\"metric_without_timestamp_and_labels\"}".into(), 12.47, None));
    }

    #[test]
    fn help_and_type_are_reported() {
        let entries: Vec<_> = TextParser::new("# HELP a Some \\n help\n# TYPE a gauge\n").map(Result::unwrap).collect();
        assert_eq!(entries[0], Entry::Help { metric: "a", text: "Some \n help".into() });
        assert_eq!(entries[1], Entry::Type { metric: "a", kind: MetricType::Gauge });
    }

    #[test]
    fn special_values_and_exponents() {
        let s = samples("a NaN\nb +Inf\nc -Inf\nd 1.5e3\ne -2E-2\nf Inf\n");
        assert!(s[0].1.is_nan());
        assert_eq!(s[1].1, f64::INFINITY);
        assert_eq!(s[2].1, f64::NEG_INFINITY);
        assert_eq!(s[3].1, 1500.0);
        assert_eq!(s[4].1, -0.02);
        assert_eq!(s[5].1, f64::INFINITY);
    }

    #[test]
    fn escapes_in_label_values_and_braces_inside_quotes() {
        let s = samples("msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\",x=\"}{\"} 1.458255915e9\n");
        assert_eq!(
            s[0].0,
            r#"{__name__="msdos_file_access_time_seconds", error="Cannot find file:\n\"FILE.TXT\"", path="C:\\DIR\\FILE.TXT", x="}{"}"#
        );
    }

    #[test]
    fn trailing_comma_crlf_and_tabs_are_accepted() {
        let s = samples("a{b=\"1\",}\t2\r\n");
        assert_eq!(s[0].0, r#"{__name__="a", b="1"}"#);
        assert_eq!(s[0].1, 2.0);
    }

    #[test]
    fn errors_quote_at_most_a_kilobyte_of_the_line() {
        let e = error_of(&format!("a {}", "\u{1}".repeat(100_000)));
        assert!(e.message.len() < 1100 && e.message.ends_with("more bytes)"), "{}", e.message.len());
    }

    fn error_of(body: &str) -> ParseError {
        for entry in TextParser::new(body) {
            match entry {
                Err(e) => return e,
                Ok(Entry::Sample { series, .. }) => {
                    if let Err(m) = parse_series(series) {
                        return ParseError::new(0, m);
                    }
                }
                Ok(_) => {}
            }
        }
        panic!("no error in {body:?}");
    }

    #[test]
    fn quoted_names_are_read_as_upstream_3x_reads_them() {
        let utf8 = parse_series_pairs;
        let owned = |p: &[(&str, &str)]| p.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect::<Vec<_>>();
        // Upstream's own line (promparse_test.go), the name inside the braces, anywhere there.
        assert_eq!(
            utf8(r#"{"go.gc_duration_seconds",quantile="0"}"#),
            Ok(owned(&[("__name__", "go.gc_duration_seconds"), ("quantile", "0")]))
        );
        assert_eq!(utf8(r#"{ q="1" , "a\"b" }"#), Ok(owned(&[("__name__", "a\"b"), ("q", "1")])));
        assert_eq!(utf8(r#"m{"my.label"="v"}"#), Ok(owned(&[("__name__", "m"), ("my.label", "v")])));
        assert_eq!(utf8(r#"{"legacy_name",a="1"}"#), Ok(owned(&[("__name__", "legacy_name"), ("a", "1")])));
        // A bare name is a legacy one; one name only; a name at all.
        assert_eq!(utf8(r#"a{1b="x"}"#), Err(r#"invalid label name "1b""#.into()));
        assert_eq!(utf8("a.b"), Err(r#"invalid metric name "a.b""#.into()));
        assert!(utf8(r#"a{"b"}"#).unwrap_err().starts_with("metric name set twice"));
        assert!(utf8(r#"{"a","b"}"#).unwrap_err().starts_with("metric name set twice"));
        assert_eq!(utf8(r#"{a="1"}"#), Err(r#"invalid metric name """#.into()));
        assert_eq!(utf8(r#"{""}"#), Err(r#"invalid metric name """#.into()));
        assert_eq!(utf8(r#"m{""="1"}"#), Err(r#"invalid label name """#.into()));
        assert!(utf8(r#"{"a" "b"}"#).unwrap_err().starts_with("expected '=' after label name"));
        // Comments name quoted metrics too; one with an escape is skipped, its samples kept.
        let body = "# HELP \"a.b\" Some help\n# TYPE \"a.b\" counter\n{\"a.b\"} 1\n";
        let entries: Vec<_> = TextParser::new(body).map(Result::unwrap).collect();
        assert!(matches!(entries[0], Entry::Help { metric: "a.b", ref text } if text == "Some help"));
        assert!(matches!(entries[1], Entry::Type { metric: "a.b", kind: MetricType::Counter }));
        let escaped: Vec<_> = TextParser::new("# TYPE \"a\\\"b\" counter\n{\"a\\\"b\"} 1\n").collect();
        assert!(matches!(escaped[..], [Ok(Entry::Sample { .. })]), "{escaped:?}");
        assert!(TextParser::new("# TYPE \"a\\\"b\" bogus\n").next().unwrap().is_err(), "checked, then skipped");
        assert!(TextParser::new("# TYPE \"\" counter\n").next().unwrap().is_err());
        assert!(TextParser::new("# TYPE a.b counter\n").next().unwrap().is_err());
    }

    #[test]
    fn malformed_lines_name_their_line() {
        assert_eq!(error_of("a 1\nb\n").line, 2);
        assert_eq!(error_of("a 1\nb abc\n").message, "expected float as value, got \"abc\"");
        assert_eq!(error_of("a 1 2 3\n").line, 1);
        assert_eq!(error_of("a{b=\"1\" 2\n").line, 1);
        assert_eq!(error_of("# TYPE a foo\n").message, "unknown metric type \"foo\"");
        assert_eq!(error_of("a 1 1.5\n").message, "expected integer as timestamp, got \"1.5\"");
        assert!(error_of("a{1b=\"x\"} 1\n").message.contains("invalid label name"));
        assert!(error_of("a{b=\"x\",b=\"y\"} 1\n").message.contains("duplicate"));
        assert!(error_of("a{b=x} 1\n").message.contains("expected '\"'"));
        assert!(error_of("a 0x10\n").message.contains("expected float"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for body in ["<html>", "{}", "\u{0}\u{1}", "a{", "a{\"", "}{ 1", "# TYPE", "a{b=\"\\"] {
            let result: Result<Vec<_>, _> = TextParser::new(body)
                .map(|e| {
                    e.and_then(|e| match e {
                        Entry::Sample { series, .. } => {
                            parse_series(series).map(|_| ()).map_err(|m| ParseError { line: 0, message: m })
                        }
                        _ => Ok(()),
                    })
                })
                .collect();
            assert!(result.is_err(), "{body:?} should not parse");
        }
    }

    fn openmetrics(body: &str) -> Result<Vec<Entry<'_>>, ParseError> {
        TextParser::with_format(body, Format::OpenMetrics).collect()
    }

    #[test]
    fn openmetrics_bodies_parse_with_units_exemplars_and_eof() {
        let body = "# TYPE http_requests counter\n# UNIT http_requests requests\n# HELP http_requests Requests.\n\
                    http_requests_total{code=\"200\"} 1027 1520879607.789 # {trace_id=\"abc\"} 1.0 1520879607.7\n\
                    http_requests_created{code=\"200\"} 1520430000.123\n\
                    # TYPE build info\nbuild_info{version=\"1.2\"} 1\n\
                    # TYPE door stateset\ndoor{door=\"open\"} 1\ndoor{door=\"shut\"} 0\n# EOF\n";
        let entries = openmetrics(body).unwrap();
        let samples: Vec<_> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Sample { series, value, timestamp, .. } => Some((*series, *value, *timestamp)),
                _ => None,
            })
            .collect();
        // Timestamps are seconds; the _created sample is a sample like any other.
        assert_eq!(samples[0], ("http_requests_total{code=\"200\"}", 1027.0, Some(1_520_879_607_789)));
        assert_eq!(samples[1].1, 1_520_430_000.123);
        assert_eq!(samples.len(), 5);
        let Entry::Sample { exemplar: Some(exemplar), .. } = &entries[3] else { panic!("{:?}", entries[3]) };
        let trace = Labels::from_pairs([("trace_id", "abc")]);
        assert_eq!(
            exemplar,
            &ScrapedExemplar { labels: trace.clone(), value: 1.0, timestamp: Some(1_520_879_607_700) }
        );
        assert_eq!(exemplar.clone().at(5).t, 1_520_879_607_700, "its own time wins");
        let no_time = openmetrics("a_total 1 # {trace_id=\"abc\"} 2\n# EOF\n").unwrap();
        let Entry::Sample { exemplar: Some(exemplar), .. } = &no_time[0] else { panic!("{no_time:?}") };
        assert_eq!(
            exemplar.clone().at(5),
            Exemplar { labels: trace, value: 2.0, t: 5, has_ts: false },
            "else the scrape's"
        );
        // Labels past 128 characters: the exemplar is dropped, the sample kept (as upstream).
        let body = format!("a_total 1 # {{t=\"{}\"}} 2\n# EOF\n", "x".repeat(130));
        let long = openmetrics(&body).unwrap();
        assert!(matches!(&long[0], Entry::Sample { value: 1.0, exemplar: None, .. }), "{long:?}");
        // So is one stamped past what an i64 of milliseconds holds (red team P); a NaN stamp
        // fails the scrape, as upstream.
        for ts in ["1e300", "-1e18"] {
            let body = format!("a_total 1 # {{t=\"1\"}} 2 {ts}\n# EOF\n");
            let far = openmetrics(&body).unwrap();
            assert!(matches!(&far[0], Entry::Sample { value: 1.0, exemplar: None, .. }), "{far:?}");
        }
        assert!(openmetrics("a_total 1 # {t=\"1\"} 2 NaN\n# EOF\n").is_err());
        assert!(openmetrics("a_total 1 # {t=\"1\"} 2 1e300 junk\n# EOF\n").is_err(), "what follows is checked");
        // A label given twice takes its last value, as 2.42 keeps it.
        let twice = openmetrics("a_total 1 # {t=\"1\",t=\"2\"} 2\n# EOF\n").unwrap();
        let Entry::Sample { exemplar: Some(x), .. } = &twice[0] else { panic!("{twice:?}") };
        assert_eq!(x.labels, Labels::from_pairs([("t", "2")]));
        assert!(entries.contains(&Entry::Unit { metric: "http_requests", unit: "requests" }));
        assert!(entries.contains(&Entry::Type { metric: "door", kind: MetricType::StateSet }));
    }

    #[test]
    fn openmetrics_refuses_what_the_spec_refuses() {
        let error = |body: &str| openmetrics(body).unwrap_err().message;
        assert_eq!(error("a 1\n"), "data does not end with # EOF");
        assert_eq!(error("a 1\n# EOF\nb 2\n"), "unexpected data after # EOF");
        assert!(error("a 1 # {x=\"1\"}\n# EOF\n").contains("no value"));
        assert!(error("# TYPE a untyped\n# EOF\n").contains("unknown metric type"));
        assert!(error("# UNIT jobs jobs\n# EOF\n").contains("not a suffix"));
        // The text format knows none of it.
        assert!(TextParser::new("# TYPE a info\n").next().unwrap().is_err());
    }

    #[test]
    fn the_decimal_fast_path_equals_the_general_parse() {
        let cases = [
            "0",
            "-0",
            "1",
            "12345.678",
            "0.1",
            "-3.14159",
            "9007199254740992",
            "9007199254740993",
            "1.0000000000000002",
            "123456789012345678",
            "0.0000000000000000000001",
            "00012.500",
            "+7",
            "1.",
            ".5",
            "1e3",
            "-",
            ".",
            "1..2",
        ];
        for c in cases {
            let general = c.parse::<f64>().ok();
            if let Some(fast) = parse_simple_decimal(c.as_bytes()) {
                assert_eq!(Some(fast.to_bits()), general.map(f64::to_bits), "{c}");
            }
            assert_eq!(parse_float(c).map(f64::to_bits), general.map(f64::to_bits), "{c}");
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let text = format!("{}.{:0width$}", x % 10_000_000, (x >> 24) % 1000, width = (x % 7) as usize);
            assert_eq!(parse_float(&text).map(f64::to_bits), text.parse::<f64>().ok().map(f64::to_bits), "{text}");
        }
    }
}
