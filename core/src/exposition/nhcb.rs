//! Classic histograms as native histograms with custom buckets (NHCB), as upstream converts
//! them when `convert_classic_histograms_to_nhcb` is set (`util/convertnhcb`): the cumulative
//! `_bucket` counts become per-bucket counts, the `le` bounds (but +Inf) the custom bounds, and
//! `_count` and `_sum` the histogram's count and sum.
//!
//! A protobuf metric carries its whole histogram; the text formats spread one over lines,
//! which [`ClassicBuckets`] collects in any order (upstream's `TempHistogram`; the errors are
//! upstream's) and [`TextNhcb`] groups as upstream's `NHCBParser` does: the consecutive
//! `_bucket`, `_count` and `_sum` lines of a family declared `histogram` whose labels (but
//! `le`) are the same make one histogram, yielded when the next line is not one of them. A
//! histogram that does not convert (counts not cumulative, `_count` not the +Inf bucket's) is
//! dropped without failing the scrape, as upstream drops it. Its classic series are yielded
//! only with [`HistogramOptions::keep_classic`].
//!
//! The text path of a scrape otherwise parses no labels of a series it knows; with this
//! conversion on, every line of a histogram family has its labels parsed at every scrape
//! (upstream hashes them too).

use super::entry::{Entry, HistogramOptions, MetricType, ScrapedExemplar};
use super::text::{parse_float, parse_series, ParseError, TextParser};
use super::writer::write_series;
use std::collections::BTreeMap;

use crate::histogram::{CounterResetHint, FloatHistogram, Span, CUSTOM_BUCKETS_SCHEMA, MAX_BUCKETS};
use crate::labels::{Labels, METRIC_NAME};
use crate::rules::template::go_float;

/// A classic histogram's parts, collected one at a time; the first error sticks. At most
/// [`MAX_BUCKETS`] bounds are taken (Pyrite's bound on a histogram's size), each in
/// logarithmic time whatever their order.
#[derive(Debug, Clone, Default)]
pub struct ClassicBuckets {
    /// Cumulative count by upper bound ([`order`]).
    buckets: BTreeMap<u64, (f64, f64)>,
    count: Option<f64>,
    sum: f64,
    error: Option<String>,
}

/// Upstream's `%g`.
fn g(v: f64) -> String {
    go_float(v, None)
}

/// A bound as a key that sorts as the bound does (not NaN; −0 is 0).
fn order(le: f64) -> u64 {
    let bits = (le + 0.0).to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

impl ClassicBuckets {
    /// Records the `_bucket` sample of upper bound `le`. Bounds may come in any order, but the
    /// counts must grow with them; a bound seen before is ignored.
    pub fn set_bucket(&mut self, le: f64, count: f64) {
        if self.error.is_some() {
            return;
        }
        if le.is_nan() {
            self.error = Some("bucket boundary must not be NaN".into());
            return;
        }
        if count < 0.0 {
            self.error = Some(format!("bucket count must be non-negative: le={}, count={}", g(le), g(count)));
            return;
        }
        let key = order(le);
        if self.buckets.contains_key(&key) {
            return;
        }
        if let Some((_, &(_, below))) = self.buckets.range(..key).next_back() {
            if count < below {
                self.error = Some(format!("count is not cumulative: {} < {}", g(count), g(below)));
                return;
            }
        }
        if let Some((_, &(_, above))) = self.buckets.range(key..).next() {
            if count > above {
                self.error = Some(format!("count is not cumulative: {} > {}", g(count), g(above)));
                return;
            }
        }
        if self.buckets.len() == MAX_BUCKETS {
            self.error = Some(format!("histogram has more than {MAX_BUCKETS} buckets"));
            return;
        }
        self.buckets.insert(key, (le, count));
    }

    /// Records the `_count` sample.
    pub fn set_count(&mut self, count: f64) {
        if self.error.is_none() && count < 0.0 {
            self.error = Some(format!("count must be non-negative: count={}", g(count)));
        }
        self.count = Some(count);
    }

    /// Records the `_sum` sample.
    pub fn set_sum(&mut self, sum: f64) {
        self.sum = sum;
    }

    /// The native histogram with custom buckets, a gauge histogram if `gauge`: the count is the
    /// highest bucket's without `_count`, a +Inf bucket is added with the count when there is
    /// none, and the count must equal the +Inf bucket's. Compacted as upstream compacts an
    /// integer histogram (runs of up to two empty buckets kept) or a float one (none kept).
    pub fn convert(self, gauge: bool) -> Result<FloatHistogram, String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut buckets: Vec<(f64, f64)> = self.buckets.into_values().collect();
        let count = self.count.or(buckets.last().map(|b| b.1)).unwrap_or(0.0);
        if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
            buckets.push((f64::INFINITY, count));
        }
        let integral = buckets.iter().all(|b| b.1 == b.1.round()) && count == count.round();
        let (last_le, last_count) = buckets[buckets.len() - 1];
        if count != last_count {
            return Err(format!("count mismatch: count={} != le={} count={}", g(count), g(last_le), g(last_count)));
        }
        let mut previous = 0.0;
        let positive_buckets = buckets
            .iter()
            .map(|&(_, c)| {
                let in_bucket = c - previous;
                previous = c;
                in_bucket
            })
            .collect();
        let mut h = FloatHistogram {
            counter_reset_hint: if gauge { CounterResetHint::Gauge } else { CounterResetHint::Unknown },
            schema: CUSTOM_BUCKETS_SCHEMA,
            count,
            sum: self.sum,
            positive_spans: vec![Span { offset: 0, length: buckets.len() as u32 }],
            positive_buckets,
            custom_values: buckets[..buckets.len() - 1].iter().map(|b| b.0).collect(),
            ..FloatHistogram::default()
        };
        h.compact(if integral { 2 } else { 0 });
        Ok(h)
    }
}

/// The other way, as `/federate` serves a native histogram with custom buckets (upstream's
/// `makeClassicHistogram`): each custom bound with the cumulative count up to it, ascending;
/// the +Inf bucket, whose count is the histogram's, is the caller's to add or leave out.
pub fn cumulative_buckets(h: &FloatHistogram) -> impl Iterator<Item = (f64, f64)> + '_ {
    let mut buckets = h.indexed_buckets(true).peekable();
    let mut cumulative = 0.0;
    h.custom_values.iter().enumerate().map(move |(i, &le)| {
        // Bucket `i` is the one up to bound `i`; those below it were counted already.
        while buckets.next_if(|&(index, _)| i64::from(index) < i as i64).is_some() {}
        if let Some((_, count)) = buckets.next_if(|&(index, _)| i64::from(index) == i as i64) {
            cumulative += count;
        }
        (le, cumulative)
    })
}

/// The classic histogram being collected from text lines.
struct Group<'a> {
    /// The family name (without `_bucket`, `_count`, `_sum`).
    family: &'a str,
    /// Its labels without `le` and the metric name.
    labels: Labels,
    buckets: ClassicBuckets,
    exemplars: Vec<ScrapedExemplar>,
    timestamp: Option<i64>,
}

/// What a sample line is to a conversion: a classic histogram line, and which.
enum ClassicLine {
    Bucket(f64),
    Count,
    Sum,
}

/// A text parser whose classic histograms are also (or only) yielded as native histograms
/// with custom buckets. It lends each entry: a converted histogram's series lives until the
/// next call.
pub struct TextNhcb<'a> {
    parser: TextParser<'a>,
    keep_classic: bool,
    /// The family the last `# TYPE` declared a histogram, if it did.
    histogram_family: Option<&'a str>,
    group: Option<Group<'a>>,
    /// A converted histogram to yield (its series in `series`), then an entry read past it.
    ready: Option<(FloatHistogram, Vec<ScrapedExemplar>, Option<i64>)>,
    held: Option<Entry<'a>>,
    series: String,
}

impl<'a> TextNhcb<'a> {
    pub fn new(parser: TextParser<'a>, options: HistogramOptions) -> Self {
        TextNhcb {
            parser,
            keep_classic: options.keep_classic,
            histogram_family: None,
            group: None,
            ready: None,
            held: None,
            series: String::new(),
        }
    }

    /// The 1-based number of the line last read.
    pub fn line(&self) -> usize {
        self.parser.line()
    }

    /// The next entry; after an error, none.
    #[allow(clippy::should_implement_trait)] // a lending iterator: the series borrows the parser
    pub fn next(&mut self) -> Option<Result<Entry<'_>, ParseError>> {
        loop {
            if let Some((histogram, exemplars, timestamp)) = self.ready.take() {
                let histogram = Box::new(histogram);
                return Some(Ok(Entry::Histogram { series: &self.series, histogram, timestamp, exemplars }));
            }
            if let Some(entry) = self.held.take() {
                return Some(Ok(entry));
            }
            let entry = match self.parser.next() {
                None => {
                    self.flush();
                    if self.ready.is_some() {
                        continue;
                    }
                    return None;
                }
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(entry)) => entry,
            };
            let Entry::Sample { series, value, timestamp, exemplar } = entry else {
                if let Entry::Type { metric, kind } = entry {
                    self.flush();
                    self.histogram_family = (kind == MetricType::Histogram).then_some(metric);
                } else {
                    self.flush();
                }
                self.held = Some(entry);
                continue;
            };
            let classic = match self.classic_line(series) {
                Ok(classic) => classic,
                Err(message) => return Some(Err(ParseError::new(self.parser.line(), message))),
            };
            let Some((family, labels, line)) = classic else {
                self.flush();
                self.held = Some(Entry::Sample { series, value, timestamp, exemplar });
                continue;
            };
            if self.group.as_ref().is_some_and(|g| g.family != family || g.labels != labels) {
                self.flush();
            }
            let group = self.group.get_or_insert_with(|| Group {
                family,
                labels,
                buckets: ClassicBuckets::default(),
                exemplars: Vec::new(),
                timestamp: None,
            });
            match line {
                ClassicLine::Bucket(le) => group.buckets.set_bucket(le, value),
                ClassicLine::Count => group.buckets.set_count(value),
                ClassicLine::Sum => group.buckets.set_sum(value),
            }
            group.exemplars.extend(exemplar.clone());
            group.timestamp = timestamp;
            if self.keep_classic {
                self.held = Some(Entry::Sample { series, value, timestamp, exemplar });
            }
        }
    }

    /// Whether `series` is a line of a classic histogram of the family last declared one: its
    /// family, labels without `le`, and which line it is. A `_bucket` line whose `le` is not a
    /// number is an ordinary series, as upstream takes it.
    fn classic_line(&self, series: &'a str) -> Result<Option<(&'a str, Labels, ClassicLine)>, String> {
        let Some(family) = self.histogram_family else { return Ok(None) };
        let bare = series.split('{').next().unwrap_or(series).trim_end_matches([' ', '\t']);
        // A name outside the legacy set is quoted inside the braces.
        let quoted = if bare.is_empty() { Some(parse_series(series)?) } else { None };
        let name = quoted.as_ref().map_or(bare, |labels| labels.get(METRIC_NAME));
        let suffix = match name.strip_prefix(family) {
            Some("_bucket") => "_bucket",
            Some("_count") => "_count",
            Some("_sum") => "_sum",
            _ => return Ok(None),
        };
        let labels = match quoted {
            Some(labels) => labels,
            None => parse_series(series)?,
        };
        let line = match suffix {
            "_bucket" => match parse_float(labels.get("le")).filter(|le| !le.is_nan()) {
                Some(le) => ClassicLine::Bucket(le),
                None => return Ok(None),
            },
            "_count" => ClassicLine::Count,
            _ => ClassicLine::Sum,
        };
        Ok(Some((family, labels.filtered(|n| n != "le" && n != METRIC_NAME), line)))
    }

    /// Converts the histogram collected, if any, into `ready`; one that does not convert or
    /// validate is dropped.
    fn flush(&mut self) {
        let Some(group) = self.group.take() else { return };
        let Ok(histogram) = group.buckets.convert(false) else { return };
        if histogram.validate().is_err() {
            return;
        }
        self.series.clear();
        write_series(
            &mut self.series,
            (group.family, ""),
            group.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
        );
        self.ready = Some((histogram, group.exemplars, group.timestamp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::parse_histogram;

    #[test]
    fn custom_buckets_go_back_to_cumulative_classic_buckets() {
        // Upstream's federation test: buckets 0, 1 and 4 of five bounds hold 3, 2 and 1.
        let h = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 6.0,
            sum: 1.234,
            positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 2, length: 1 }],
            positive_buckets: vec![3.0, 2.0, 1.0],
            custom_values: vec![0.1, 0.2, 0.5, 1.0, 2.0],
            ..FloatHistogram::default()
        };
        let buckets: Vec<_> = cumulative_buckets(&h).collect();
        assert_eq!(buckets, [(0.1, 3.0), (0.2, 5.0), (0.5, 5.0), (1.0, 5.0), (2.0, 6.0)]);
        // And back: the same histogram, once its empty buckets are dropped.
        let mut c = ClassicBuckets::default();
        buckets.iter().for_each(|&(le, n)| c.set_bucket(le, n));
        c.set_count(h.count);
        c.set_sum(h.sum);
        let mut back = c.convert(false).unwrap();
        back.compact(0);
        assert_eq!(back, h);
        // The +Inf bucket's observations are only in the count.
        let inf =
            FloatHistogram { positive_spans: vec![Span { offset: 5, length: 1 }], positive_buckets: vec![4.0], ..h };
        assert!(cumulative_buckets(&inf).all(|(_, n)| n == 0.0));
    }

    fn nhcb(parts: &[(f64, f64)], count: Option<f64>, sum: f64) -> Result<FloatHistogram, String> {
        let mut c = ClassicBuckets::default();
        for &(le, n) in parts {
            c.set_bucket(le, n);
        }
        if let Some(n) = count {
            c.set_count(n);
        }
        c.set_sum(sum);
        c.convert(false)
    }

    #[test]
    fn cumulative_buckets_become_custom_buckets() {
        let h = nhcb(&[(0.5, 2.0), (0.1, 1.0), (1.0, 2.0), (f64::INFINITY, 5.0)], Some(5.0), 3.5).unwrap();
        let want =
            parse_histogram("{{schema:-53 custom_values:[0.1 0.5 1] count:5 sum:3.5 buckets:[1 1 0 3]}}").unwrap();
        assert_eq!(h.custom_values, want.custom_values);
        assert_eq!((h.count, h.sum), (5.0, 3.5));
        // Integral counts keep up to two empty buckets inside a span, as upstream.
        assert!(h.validate().is_ok());
        assert_eq!((h.positive_spans, h.positive_buckets), (want.positive_spans, want.positive_buckets));
        // Without +Inf and _count: the highest bucket's count, a +Inf bucket added.
        let h = nhcb(&[(1.0, 2.5)], None, 1.0).unwrap();
        assert_eq!((h.count, h.custom_values, h.positive_buckets), (2.5, vec![1.0], vec![2.5]));
        let gauge = ClassicBuckets::default().convert(true).unwrap();
        assert_eq!(
            (gauge.counter_reset_hint, gauge.count, gauge.custom_values.len()),
            (CounterResetHint::Gauge, 0.0, 0)
        );
    }

    #[test]
    fn bounds_sort_as_numbers_and_are_bounded() {
        let bounds = [-2.0, -0.5, -0.0, 0.0, 1e-300, 0.5, 3.0, f64::INFINITY, f64::NEG_INFINITY];
        let mut sorted = bounds.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut by_key = bounds.to_vec();
        by_key.sort_by_key(|&b| order(b));
        assert_eq!(
            by_key.iter().map(|b| b + 0.0).collect::<Vec<_>>(),
            sorted.iter().map(|b| b + 0.0).collect::<Vec<_>>()
        );
        assert_eq!(order(-0.0), order(0.0));
        // Bounds in descending order, as many as a histogram may have, then one more.
        let started = std::time::Instant::now();
        let mut c = ClassicBuckets::default();
        for i in (0..=MAX_BUCKETS).rev() {
            c.set_bucket(i as f64, 0.0);
        }
        assert_eq!(c.convert(false).unwrap_err(), "histogram has more than 65536 buckets");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn upstreams_errors() {
        let e = |parts: &[(f64, f64)], count| nhcb(parts, count, 0.0).unwrap_err();
        assert_eq!(e(&[(1.0, 2.0), (2.0, 1.0)], None), "count is not cumulative: 1 < 2");
        assert_eq!(e(&[(2.0, 1.0), (1.0, 2.0)], None), "count is not cumulative: 2 > 1");
        assert_eq!(e(&[(f64::NAN, 1.0)], None), "bucket boundary must not be NaN");
        assert_eq!(e(&[(1.0, -1.0)], None), "bucket count must be non-negative: le=1, count=-1");
        assert_eq!(e(&[(1.0, 1.0)], Some(-2.0)), "count must be non-negative: count=-2");
        assert_eq!(e(&[(1.0, 1.0), (f64::INFINITY, 3.0)], Some(4.0)), "count mismatch: count=4 != le=+Inf count=3");
    }

    /// The entries of a text body through the conversion, as text.
    fn converted(body: &str, keep_classic: bool) -> Vec<String> {
        let options = HistogramOptions { native: false, keep_classic, convert_to_nhcb: true };
        let mut parser = TextNhcb::new(TextParser::new(body), options);
        let mut out = Vec::new();
        while let Some(entry) = parser.next() {
            out.push(match entry.unwrap() {
                Entry::Sample { series, value, .. } => format!("{series} {value}"),
                Entry::Histogram { series, histogram, timestamp, .. } => format!("{series} {histogram} {timestamp:?}"),
                Entry::Type { metric, .. } => format!("TYPE {metric}"),
                other => format!("{other:?}"),
            });
        }
        out
    }

    #[test]
    fn text_histograms_are_grouped_by_labels_and_converted() {
        let body = "# TYPE h histogram\n\
                    h_bucket{a=\"1\",le=\"1\"} 2 500\nh_bucket{a=\"1\",le=\"+Inf\"} 3 500\nh_count{a=\"1\"} 3 500\nh_sum{a=\"1\"} 4 500\n\
                    h_bucket{a=\"2\",le=\"1\"} 5\nh_bucket{a=\"2\",le=\"+Inf\"} 4\nh_count{a=\"2\"} 4\n\
                    h_bucket{a=\"3\",le=\"x\"} 1\n\
                    # TYPE g gauge\ng_bucket{le=\"1\"} 1\n";
        assert_eq!(
            converted(body, false),
            [
                "TYPE h",
                r#"h{a="1"} {{schema:-53 count:3 sum:4 custom_values:[1] buckets:[2 1]}} Some(500)"#,
                // a="2" is not cumulative: dropped, as upstream drops it; a="3" is no bucket.
                r#"h_bucket{a="3",le="x"} 1"#,
                "TYPE g",
                r#"g_bucket{le="1"} 1"#,
            ]
        );
        let kept = converted(body, true);
        assert_eq!(kept.len(), 12, "{kept:?}");
        assert_eq!(kept[5], r#"h{a="1"} {{schema:-53 count:3 sum:4 custom_values:[1] buckets:[2 1]}} Some(500)"#);
        // The histogram is yielded at the end of the body too.
        assert_eq!(
            converted("# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_count 1\n", false),
            ["TYPE h", "h {{schema:-53 count:1 sum:0 custom_values:[2] buckets:[1]}} None"]
        );
    }
}
