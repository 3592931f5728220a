//! Parser for the Prometheus protobuf exposition format: varint-length-delimited
//! `io.prometheus.client.MetricFamily` messages ([`CONTENT_TYPE`]), what client libraries
//! send when asked for native histograms.
//!
//! It yields the [`Entry`] values the text parsers yield, as upstream's `ProtobufParser`
//! presents the format (`model/textparse/protobufparse.go`): per family its HELP, UNIT (if
//! any) and TYPE; counters, gauges and untyped metrics as one float sample each (a counter
//! with its exemplar); a summary as `_count`, `_sum` and one series per quantile
//! (`quantile` formatted as OpenMetrics formats floats: `0.5`, `1.0`); a classic histogram as
//! `_count`, `_sum` and one `_bucket` series per bucket (`le` formatted the same), a `+Inf`
//! bucket added when the target sent none, each bucket with its exemplar. A histogram with
//! native parts (a span, a zero threshold or a zero count) is a native histogram
//! ([`Entry::Histogram`]) when [`HistogramOptions::native`] says so, and then its classic
//! series follow only with [`HistogramOptions::keep_classic`]; a `GAUGE_HISTOGRAM` family's
//! are gauge histograms. Its exemplars are those of the histogram with a timestamp, or, if it
//! has none, those of its buckets with one. Integer histograms (bucket deltas) and float ones
//! (absolute counts) are told apart as upstream tells them, and both are checked as
//! upstream's storage checks them (`FloatHistogram::validate`, through the remote-write
//! decoder's conversion: [`crate::remote::histogram::Histogram::into_float`]); an invalid one
//! fails the scrape. With [`HistogramOptions::convert_to_nhcb`], a classic histogram is
//! yielded as a native histogram with custom buckets ([`super::nhcb`]; its classic series too
//! only with `keep_classic`), with the exemplars a native histogram would have; one that does
//! not convert fails the scrape, as upstream. A
//! metric's timestamp of 0 means it has none, as upstream reads it.
//!
//! The messages are declared with prost derives (no code generation), for encoders (the load
//! generator, tests); the parser itself walks the wire format (the `wire` module) so that the
//! cost of a body is what it yields: a family's metrics are read one at a time, label pairs
//! are borrowed from the body, a histogram's buckets and spans are counted
//! ([`crate::histogram::MAX_BUCKETS`]) before anything is allocated for them, at most
//! [`MAX_LABELS`] labels a metric and [`MAX_HISTOGRAM_EXEMPLARS`] exemplars a native histogram
//! are taken, and a family without metrics costs nothing (upstream skips them too).
//!
//! A sample's `series` is the cache key of its series: `name{label="value",...}` with the
//! labels sorted and values escaped as the text format escapes them, so it is the same at
//! every scrape and [`super::parse_series`] reads it back: a name outside the legacy set is
//! written quoted, as the text format writes it, so that no two label sets render the same. An
//! empty name is refused; which others a scrape keeps is its scheme's to say.

use prost::Message;
use thiserror::Error;

use super::entry::{Entry, HistogramOptions, MetricType, ScrapedExemplar};
use super::nhcb::ClassicBuckets;
use super::writer::write_series;
use crate::excerpt::{excerpt, MAX_MESSAGE_BYTES};
use crate::histogram::{check_size, FloatHistogram};
use crate::labels::METRIC_NAME;
use crate::protowire::{count_doubles, count_varints, doubles, unzigzag, varints, Delimited, Fields, Payload};
use crate::remote::histogram::{self as remote, Count, ZeroCount};
use crate::remote::{checked_exemplar, Label, MAX_EXEMPLAR_BYTES, MAX_LABELS_PER_SERIES};
use crate::rules::template::go_float;

/// The media type of a protobuf exposition body, as client libraries answer it.
pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Most labels one metric may carry ([`MAX_LABELS_PER_SERIES`], as remote write allows).
pub const MAX_LABELS: usize = MAX_LABELS_PER_SERIES;

/// Most exemplars taken from one native histogram. Upstream takes every one, but a histogram
/// exposes a few (client_golang keeps 10 by default), and the storage keeps one series' newest.
pub const MAX_HISTOGRAM_EXEMPLARS: usize = 64;

/// `io.prometheus.client.MetricType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum WireType {
    Counter = 0,
    Gauge = 1,
    Summary = 2,
    Untyped = 3,
    Histogram = 4,
    GaugeHistogram = 5,
}

/// `io.prometheus.client.MetricFamily`.
#[derive(Clone, PartialEq, Message)]
pub struct MetricFamily {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub help: String,
    #[prost(enumeration = "WireType", tag = "3")]
    pub r#type: i32,
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<Metric>,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `io.prometheus.client.Metric`: one of its value fields is set, as its family's type says.
#[derive(Clone, PartialEq, Message)]
pub struct Metric {
    /// `LabelPair`s (the same message as remote write's `Label`).
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<Label>,
    #[prost(message, optional, tag = "2")]
    pub gauge: Option<Gauge>,
    #[prost(message, optional, tag = "3")]
    pub counter: Option<Counter>,
    #[prost(message, optional, tag = "4")]
    pub summary: Option<Summary>,
    #[prost(message, optional, tag = "5")]
    pub untyped: Option<Untyped>,
    #[prost(message, optional, tag = "7")]
    pub histogram: Option<Histogram>,
    /// 0: no timestamp.
    #[prost(int64, tag = "6")]
    pub timestamp_ms: i64,
}

#[derive(Clone, Copy, PartialEq, Message)]
pub struct Gauge {
    #[prost(double, tag = "1")]
    pub value: f64,
}

#[derive(Clone, Copy, PartialEq, Message)]
pub struct Untyped {
    #[prost(double, tag = "1")]
    pub value: f64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Counter {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(message, optional, tag = "2")]
    pub exemplar: Option<Exemplar>,
}

#[derive(Clone, Copy, PartialEq, Message)]
pub struct Quantile {
    #[prost(double, tag = "1")]
    pub quantile: f64,
    #[prost(double, tag = "2")]
    pub value: f64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(uint64, tag = "1")]
    pub sample_count: u64,
    #[prost(double, tag = "2")]
    pub sample_sum: f64,
    #[prost(message, repeated, tag = "3")]
    pub quantile: Vec<Quantile>,
}

/// `io.prometheus.client.Histogram`: classic buckets, native buckets, or both. The native
/// fields are those of remote write's histogram under other tags; spans are the same message.
#[derive(Clone, PartialEq, Message)]
pub struct Histogram {
    #[prost(uint64, tag = "1")]
    pub sample_count: u64,
    /// Overrides `sample_count` if above 0 (and makes the histogram a float histogram).
    #[prost(double, tag = "4")]
    pub sample_count_float: f64,
    #[prost(double, tag = "2")]
    pub sample_sum: f64,
    /// Classic buckets, by increasing upper bound; the +Inf bucket is optional.
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
    #[prost(sint32, tag = "5")]
    pub schema: i32,
    #[prost(double, tag = "6")]
    pub zero_threshold: f64,
    #[prost(uint64, tag = "7")]
    pub zero_count: u64,
    #[prost(double, tag = "8")]
    pub zero_count_float: f64,
    #[prost(message, repeated, tag = "9")]
    pub negative_span: Vec<remote::BucketSpan>,
    #[prost(sint64, repeated, tag = "10")]
    pub negative_delta: Vec<i64>,
    #[prost(double, repeated, tag = "11")]
    pub negative_count: Vec<f64>,
    /// A histogram without observations and without a zero threshold needs a span (offset
    /// and length 0) to be a native histogram.
    #[prost(message, repeated, tag = "12")]
    pub positive_span: Vec<remote::BucketSpan>,
    #[prost(sint64, repeated, tag = "13")]
    pub positive_delta: Vec<i64>,
    #[prost(double, repeated, tag = "14")]
    pub positive_count: Vec<f64>,
    /// Native histograms only; each must carry a timestamp.
    #[prost(message, repeated, tag = "16")]
    pub exemplars: Vec<Exemplar>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Bucket {
    #[prost(uint64, tag = "1")]
    pub cumulative_count: u64,
    /// Overrides `cumulative_count` if above 0.
    #[prost(double, tag = "4")]
    pub cumulative_count_float: f64,
    #[prost(double, tag = "2")]
    pub upper_bound: f64,
    #[prost(message, optional, tag = "3")]
    pub exemplar: Option<Exemplar>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(message, optional, tag = "3")]
    pub timestamp: Option<Timestamp>,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// The timestamp in milliseconds, as upstream reads it (wrapping where it overflows).
    pub fn millis(self) -> i64 {
        self.seconds.wrapping_mul(1000).wrapping_add(i64::from(self.nanos / 1_000_000))
    }
}

/// Families as a body of the delimited format.
pub fn encode(families: &[MetricFamily]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in families {
        // Writing to a Vec cannot fail.
        let _ = f.encode_length_delimited(&mut out);
    }
    out
}

/// A body that could not be parsed, with the 1-based number of the metric family (message) at
/// fault.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("protobuf format parsing error in metric family {family}: {message}")]
pub struct ProtobufError {
    pub family: usize,
    pub message: String,
}

impl ProtobufError {
    pub fn new(family: usize, message: &str) -> ProtobufError {
        ProtobufError { family, message: excerpt(message, MAX_MESSAGE_BYTES).into_owned() }
    }
}

/// What went wrong, before the family number is added.
type Failure = String;

fn wrong_type(what: &str, tag: u32) -> Failure {
    format!("{what} field {tag} has the wrong wire type")
}

/// How a float in an `le` or `quantile` label is written: Go's shortest `%g`, with `.0`
/// added to integers (upstream's `FormatOpenMetricsFloat`).
pub fn openmetrics_float(v: f64) -> String {
    // -0 is 0 (upstream compares with 0 first).
    let s = go_float(if v == 0.0 { 0.0 } else { v }, None);
    if !v.is_finite() || s.contains(['.', 'e']) {
        s
    } else {
        s + ".0"
    }
}

/// `le` and `quantile` values already formatted: a family's metrics share their bounds, so a
/// steady-state scrape formats none. At most [`FloatLabels::SIZE`] are kept.
#[derive(Debug, Default)]
struct FloatLabels(Vec<(u64, String)>);

impl FloatLabels {
    const SIZE: usize = 64;

    fn get(&mut self, v: f64) -> &str {
        let bits = v.to_bits();
        let at = match self.0.iter().position(|(b, _)| *b == bits) {
            Some(at) => at,
            None => {
                if self.0.len() == Self::SIZE {
                    self.0.clear();
                }
                self.0.push((bits, openmetrics_float(v)));
                self.0.len() - 1
            }
        };
        &self.0[at].1
    }
}

/// The current family: its header, its metrics still bytes.
#[derive(Debug, Clone, Copy)]
struct Family<'a> {
    name: &'a str,
    help: &'a str,
    unit: &'a str,
    kind: WireType,
}

/// What a family yields before its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Help,
    Unit,
    Type,
    Samples,
}

/// What [`ProtobufParser::next`] yields, without the series it borrows.
enum Emit {
    Help,
    Unit,
    Type,
    Float { value: f64, exemplar: Option<ScrapedExemplar> },
    Histogram { histogram: Box<FloatHistogram>, exemplars: Vec<ScrapedExemplar> },
}

/// The samples the current metric has yet to yield, in upstream's order.
#[derive(Default)]
struct Pending<'a> {
    float: Option<(f64, Option<ScrapedExemplar>)>,
    native: Option<(FloatHistogram, Vec<ScrapedExemplar>)>,
    summary: Option<Parts<'a>>,
    classic: Option<Parts<'a>>,
    nhcb: Option<(FloatHistogram, Vec<ScrapedExemplar>)>,
}

/// One series of a summary or classic histogram.
enum Part {
    Count(f64),
    Sum(f64),
    Quantile { quantile: f64, value: f64 },
    Bucket { upper: f64, count: f64, exemplar: Option<ScrapedExemplar> },
}

/// A summary's or classic histogram's series, read one at a time: `_count`, `_sum`, then the
/// quantiles, or the buckets up to the +Inf one (added if missing).
struct Parts<'a> {
    count: f64,
    sum: f64,
    /// The summary or histogram message, walked for field 3 (quantiles or buckets).
    rest: Fields<'a>,
    histogram: bool,
    next: Step,
}

/// Which of a summary's or classic histogram's series comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Count,
    Sum,
    /// Quantiles or buckets.
    Items,
    Done,
}

impl<'a> Parts<'a> {
    fn new(count: f64, sum: f64, message: &'a [u8], histogram: bool) -> Self {
        Parts { count, sum, rest: Fields::new(message), histogram, next: Step::Count }
    }

    fn next(&mut self) -> Result<Option<Part>, Failure> {
        match self.next {
            Step::Count => {
                self.next = Step::Sum;
                return Ok(Some(Part::Count(self.count)));
            }
            Step::Sum => {
                self.next = Step::Items;
                return Ok(Some(Part::Sum(self.sum)));
            }
            Step::Done => return Ok(None),
            Step::Items => {}
        }
        for field in self.rest.by_ref() {
            let (tag, payload) = field.map_err(|e| e.to_string())?;
            match (tag, payload) {
                (3, Payload::Bytes(raw)) if self.histogram => {
                    let (upper, count, exemplar) = read_bucket(raw)?;
                    if upper == f64::INFINITY {
                        self.next = Step::Done;
                    }
                    let exemplar = exemplar.map(read_exemplar).transpose()?.flatten();
                    return Ok(Some(Part::Bucket { upper, count, exemplar }));
                }
                (3, Payload::Bytes(raw)) => {
                    let q = Quantile::decode(raw).map_err(|e| format!("quantile: {e}"))?;
                    return Ok(Some(Part::Quantile { quantile: q.quantile, value: q.value }));
                }
                (3, _) => return Err(wrong_type(if self.histogram { "histogram" } else { "summary" }, 3)),
                _ => {}
            }
        }
        self.next = Step::Done;
        Ok(self.histogram.then_some(Part::Bucket { upper: f64::INFINITY, count: self.count, exemplar: None }))
    }
}

/// A classic bucket: its upper bound, cumulative count (the float one if above 0) and
/// exemplar, still bytes.
fn read_bucket(raw: &[u8]) -> Result<(f64, f64, Option<&[u8]>), Failure> {
    let (mut upper, mut int, mut float, mut exemplar) = (0.0, 0u64, 0.0, None);
    for field in Fields::new(raw) {
        match field.map_err(|e| e.to_string())? {
            (1, Payload::Varint(v)) => int = v,
            (2, Payload::Fixed64(bits)) => upper = f64::from_bits(bits),
            (3, Payload::Bytes(e)) => exemplar = Some(e),
            (4, Payload::Fixed64(bits)) => float = f64::from_bits(bits),
            (tag @ 1..=4, _) => return Err(wrong_type("bucket", tag)),
            _ => {}
        }
    }
    Ok((upper, if float != 0.0 { float } else { int as f64 }, exemplar))
}

/// An exemplar, if it is one upstream stores: labels valid and at most 128 characters
/// together (a larger message is dropped undecoded). A malformed one fails the scrape, as
/// upstream's decoder fails it.
fn read_exemplar(raw: &[u8]) -> Result<Option<ScrapedExemplar>, Failure> {
    if raw.len() > MAX_EXEMPLAR_BYTES {
        return Ok(None);
    }
    let e = Exemplar::decode(raw).map_err(|e| format!("exemplar: {e}"))?;
    let timestamp = e.timestamp.map(Timestamp::millis);
    let pairs = e.label.iter().map(|l| (l.name.as_str(), l.value.as_str()));
    Ok(checked_exemplar(pairs, e.value, timestamp.unwrap_or(0)).map(|x| ScrapedExemplar {
        labels: x.labels,
        value: e.value,
        timestamp,
    }))
}

/// A histogram message's scalar fields, and how many of each repeated field it holds.
#[derive(Debug, Default)]
struct HistogramScan {
    count: u64,
    count_float: f64,
    sum: f64,
    schema: i32,
    zero_threshold: f64,
    zero_count: u64,
    zero_count_float: f64,
    positive_spans: usize,
    negative_spans: usize,
    /// Deltas and counts of both signs.
    bucket_values: usize,
    classic_buckets: usize,
    exemplars: usize,
}

impl HistogramScan {
    fn of(raw: &[u8]) -> Result<Self, Failure> {
        let mut h = HistogramScan::default();
        for field in Fields::new(raw) {
            match field.map_err(|e| e.to_string())? {
                (1, Payload::Varint(v)) => h.count = v,
                (2, Payload::Fixed64(bits)) => h.sum = f64::from_bits(bits),
                (3, Payload::Bytes(_)) => h.classic_buckets += 1,
                (4, Payload::Fixed64(bits)) => h.count_float = f64::from_bits(bits),
                // A sint32: what does not fit wraps, as in Go.
                (5, Payload::Varint(v)) => h.schema = unzigzag(v) as i32,
                (6, Payload::Fixed64(bits)) => h.zero_threshold = f64::from_bits(bits),
                (7, Payload::Varint(v)) => h.zero_count = v,
                (8, Payload::Fixed64(bits)) => h.zero_count_float = f64::from_bits(bits),
                (9, Payload::Bytes(_)) => h.negative_spans += 1,
                (12, Payload::Bytes(_)) => h.positive_spans += 1,
                (10 | 13, p @ (Payload::Varint(_) | Payload::Bytes(_))) => h.bucket_values += count_varints(p),
                (11 | 14, p @ (Payload::Fixed64(_) | Payload::Bytes(_))) => h.bucket_values += count_doubles(p),
                (15, Payload::Bytes(_)) => {} // the start (created) timestamp
                (16, Payload::Bytes(_)) => h.exemplars += 1,
                (tag @ 1..=16, _) => return Err(wrong_type("histogram", tag)),
                _ => {}
            }
        }
        Ok(h)
    }

    /// Upstream's `isNativeHistogram`: spans, or a zero bucket. A native histogram without
    /// observations and with a zero threshold of 0 needs an empty span to be one.
    fn is_native(&self) -> bool {
        self.positive_spans > 0 || self.negative_spans > 0 || self.zero_threshold > 0.0 || self.zero_count > 0
    }

    /// The observation count as the classic series show it: the float one if above 0.
    fn classic_count(&self) -> f64 {
        if self.count_float != 0.0 {
            self.count_float
        } else {
            self.count as f64
        }
    }

    /// Whether the native parts are float counts (upstream's test: a float count or zero count
    /// above 0), not integer deltas. A NaN count is a float histogram's too (upstream takes it
    /// for an integer one, whose missing deltas then fail the scrape): a float histogram whose
    /// count is NaN, federated, would otherwise fail the scrape of every series beside it.
    fn is_float(&self) -> bool {
        let given = |c: f64| c > 0.0 || c.is_nan();
        given(self.count_float) || given(self.zero_count_float)
    }
}

/// Upstream's parser check of a native histogram's layout, with its message: the spans of a
/// side describe as many buckets as the side has.
fn check_side(side: &str, spans: &[remote::BucketSpan], buckets: usize) -> Result<(), Failure> {
    let needed: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
    if needed != buckets as u64 {
        return Err(format!("{side} side: spans require {needed} buckets, have {buckets}"));
    }
    Ok(())
}

/// The native histogram of a histogram message (see the module doc).
fn native_histogram(raw: &[u8], scan: &HistogramScan, gauge: bool) -> Result<FloatHistogram, Failure> {
    check_size(scan.bucket_values, scan.positive_spans + scan.negative_spans, 0).map_err(|e| e.to_string())?;
    let float = scan.is_float();
    let mut wire = remote::Histogram {
        sum: scan.sum,
        schema: scan.schema,
        zero_threshold: scan.zero_threshold,
        reset_hint: if gauge { 3 } else { 0 },
        ..Default::default()
    };
    if float {
        wire.count = Some(Count::Float(scan.count_float));
        wire.zero_count = Some(ZeroCount::Float(scan.zero_count_float));
    } else {
        wire.count = Some(Count::Int(scan.count));
        wire.zero_count = Some(ZeroCount::Int(scan.zero_count));
    }
    let span = |raw: &[u8]| remote::BucketSpan::decode(raw).map_err(|e| format!("bucket span: {e}"));
    let deltas = |p: Payload<'_>, into: &mut Vec<i64>| -> Result<(), Failure> {
        for v in varints(p) {
            into.push(unzigzag(v.map_err(|e| e.to_string())?));
        }
        Ok(())
    };
    for field in Fields::new(raw) {
        match field.map_err(|e| e.to_string())? {
            (9, Payload::Bytes(s)) => wire.negative_spans.push(span(s)?),
            (12, Payload::Bytes(s)) => wire.positive_spans.push(span(s)?),
            (10, p) if !float => deltas(p, &mut wire.negative_deltas)?,
            (13, p) if !float => deltas(p, &mut wire.positive_deltas)?,
            (11, p) if float => wire.negative_counts.extend(doubles(p).map_err(|e| e.to_string())?),
            (14, p) if float => wire.positive_counts.extend(doubles(p).map_err(|e| e.to_string())?),
            _ => {}
        }
    }
    let (positive, negative) = match float {
        true => (wire.positive_counts.len(), wire.negative_counts.len()),
        false => (wire.positive_deltas.len(), wire.negative_deltas.len()),
    };
    check_side("positive", &wire.positive_spans, positive)?;
    check_side("negative", &wire.negative_spans, negative)?;
    let mut h = wire.into_float().map_err(|e| e.to_string())?;
    h.compact(0);
    Ok(h)
}

/// A native histogram's exemplars: those of the histogram that carry a timestamp or, if it
/// has none at all, those of its buckets that carry one; at most [`MAX_HISTOGRAM_EXEMPLARS`].
fn native_exemplars(raw: &[u8], scan: &HistogramScan) -> Result<Vec<ScrapedExemplar>, Failure> {
    let mut out = Vec::new();
    for field in Fields::new(raw) {
        let exemplar = match field.map_err(|e| e.to_string())? {
            (16, Payload::Bytes(e)) => Some(e),
            (3, Payload::Bytes(b)) if scan.exemplars == 0 => read_bucket(b)?.2,
            _ => None,
        };
        if let Some(e) = exemplar.map(read_exemplar).transpose()?.flatten().filter(|e| e.timestamp.is_some()) {
            out.push(e);
            if out.len() == MAX_HISTOGRAM_EXEMPLARS {
                break;
            }
        }
    }
    Ok(out)
}

/// A classic histogram as a native histogram with custom buckets.
fn nhcb(raw: &[u8], scan: &HistogramScan, gauge: bool) -> Result<FloatHistogram, Failure> {
    check_size(scan.classic_buckets + 1, 1, scan.classic_buckets).map_err(|e| e.to_string())?;
    let mut buckets = ClassicBuckets::default();
    buckets.set_count(scan.classic_count());
    buckets.set_sum(scan.sum);
    for field in Fields::new(raw) {
        if let (3, Payload::Bytes(b)) = field.map_err(|e| e.to_string())? {
            let (upper, count, _) = read_bucket(b)?;
            buckets.set_bucket(upper, count);
        }
    }
    let h = buckets.convert(gauge)?;
    h.validate().map_err(|e| e.to_string())?;
    Ok(h)
}

/// A `LabelPair`, borrowed from the body.
fn label_pair(raw: &[u8]) -> Result<(&str, &str), Failure> {
    let (mut name, mut value) = ("", "");
    for field in Fields::new(raw) {
        match field.map_err(|e| e.to_string())? {
            (1, p) => name = p.string().ok_or("label name is not a UTF-8 string")?,
            (2, p) => value = p.string().ok_or("label value is not a UTF-8 string")?,
            _ => {}
        }
    }
    Ok((name, value))
}

/// The value of a `Gauge`, `Untyped` or `Counter` message (field 1), and a counter's
/// exemplar (field 2).
fn read_value<'a>(raw: &'a [u8], what: &str) -> Result<(f64, Option<&'a [u8]>), Failure> {
    let (mut value, mut exemplar) = (0.0, None);
    for field in Fields::new(raw) {
        match field.map_err(|e| e.to_string())? {
            (1, Payload::Fixed64(bits)) => value = f64::from_bits(bits),
            (2, Payload::Bytes(e)) => exemplar = Some(e),
            (1, _) => return Err(wrong_type(what, 1)),
            _ => {}
        }
    }
    Ok((value, exemplar))
}

/// Writes the series `name` + `suffix` with `labels` (sorted) and `extra` (an `le` or
/// `quantile` label) in its place among them; an error if `extra` is already one of them.
fn render_series(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    extra: Option<(&str, &str)>,
) -> Result<(), Failure> {
    let at = match extra {
        None => labels.len(),
        Some((n, _)) => match labels.binary_search_by(|l| l.0.cmp(n)) {
            Ok(_) => return Err(format!("label {n:?} of {name}{suffix} is also the one the format adds")),
            Err(at) => at,
        },
    };
    out.clear();
    write_series(out, (name, suffix), labels[..at].iter().copied().chain(extra).chain(labels[at..].iter().copied()));
    Ok(())
}

/// Pull parser over a protobuf exposition body. It lends each entry: an entry's series lives
/// until the next call.
/// What the series one body yields may take rendered, together, per byte of the body (plus
/// [`RENDERED_SLACK`]). A classic bucket or a quantile renders its metric's labels again: without
/// a bound, eleven bytes of bucket could each cost a copy of a megabyte-long label set, and the
/// scrape cache several more.
const RENDERED_PER_BODY_BYTE: usize = 16;
const RENDERED_SLACK: usize = 1 << 20;

pub struct ProtobufParser<'a> {
    families: Delimited<'a>,
    /// Bytes the series still yielded may take rendered (see [`RENDERED_PER_BODY_BYTE`]).
    rendered_left: usize,
    options: HistogramOptions,
    /// The 1-based number of the family being read.
    number: usize,
    family: Family<'a>,
    stage: Stage,
    /// The current family's fields, walked for its metrics.
    metrics: Fields<'a>,
    /// The current metric's labels, sorted.
    labels: Vec<(&'a str, &'a str)>,
    timestamp: Option<i64>,
    pending: Pending<'a>,
    /// The series of the sample last yielded.
    series: String,
    float_labels: FloatLabels,
    failed: bool,
}

impl<'a> ProtobufParser<'a> {
    pub fn new(body: &'a [u8], options: HistogramOptions) -> Self {
        ProtobufParser {
            families: Delimited::new(body),
            rendered_left: body.len().saturating_mul(RENDERED_PER_BODY_BYTE).saturating_add(RENDERED_SLACK),
            options,
            number: 0,
            family: Family { name: "", help: "", unit: "", kind: WireType::Untyped },
            stage: Stage::Samples,
            metrics: Fields::new(&[]),
            labels: Vec::new(),
            timestamp: None,
            pending: Pending::default(),
            series: String::new(),
            float_labels: FloatLabels::default(),
            failed: false,
        }
    }

    /// The 1-based number of the metric family (message) last read.
    pub fn family(&self) -> usize {
        self.number
    }

    /// The next entry; after an error, none.
    #[allow(clippy::should_implement_trait)] // a lending iterator: the series borrows the parser
    pub fn next(&mut self) -> Option<Result<Entry<'_>, ProtobufError>> {
        if self.failed {
            return None;
        }
        let emit = match self.advance() {
            Ok(Some(emit)) => emit,
            Ok(None) => return None,
            Err(message) => {
                self.failed = true;
                return Some(Err(ProtobufError::new(self.number, &message)));
            }
        };
        let f = self.family;
        Some(Ok(match emit {
            Emit::Help => Entry::Help { metric: f.name, text: f.help.to_string() },
            Emit::Unit => Entry::Unit { metric: f.name, unit: f.unit },
            Emit::Type => Entry::Type { metric: f.name, kind: metric_type(f.kind) },
            Emit::Float { value, exemplar } => {
                Entry::Sample { series: &self.series, value, timestamp: self.timestamp, exemplar }
            }
            Emit::Histogram { histogram, exemplars } => {
                Entry::Histogram { series: &self.series, histogram, timestamp: self.timestamp, exemplars }
            }
        }))
    }

    fn advance(&mut self) -> Result<Option<Emit>, Failure> {
        loop {
            match self.stage {
                Stage::Help => {
                    self.stage = if self.family.unit.is_empty() { Stage::Type } else { Stage::Unit };
                    return Ok(Some(Emit::Help));
                }
                Stage::Unit => {
                    self.stage = Stage::Type;
                    return Ok(Some(Emit::Unit));
                }
                Stage::Type => {
                    self.stage = Stage::Samples;
                    return Ok(Some(Emit::Type));
                }
                Stage::Samples => {
                    if let Some(emit) = self.next_sample()? {
                        self.rendered_left = self.rendered_left.checked_sub(self.series.len()).ok_or_else(|| {
                            format!(
                                "its series take more than {RENDERED_PER_BODY_BYTE} times the body's size written \
                                 out (labels repeated by buckets or quantiles)"
                            )
                        })?;
                        return Ok(Some(emit));
                    }
                    match self.next_metric()? {
                        Some(raw) => self.read_metric(raw)?,
                        None if self.next_family()? => {}
                        None => return Ok(None),
                    }
                }
            }
        }
    }

    /// Moves to the next family that has metrics; false at the end of the body.
    fn next_family(&mut self) -> Result<bool, Failure> {
        for frame in self.families.by_ref() {
            self.number += 1;
            let raw = frame.map_err(|e| e.to_string())?;
            let (mut name, mut help, mut unit, mut kind, mut metrics) = (None, None, None, 0u64, false);
            for field in Fields::new(raw) {
                match field.map_err(|e| e.to_string())? {
                    (1, p) => name = Some(p),
                    (2, p) => help = Some(p),
                    (3, Payload::Varint(k)) => kind = k,
                    (4, Payload::Bytes(_)) => metrics = true,
                    (5, p) => unit = Some(p),
                    (tag @ (3 | 4), _) => return Err(wrong_type("metric family", tag)),
                    _ => {}
                }
            }
            if !metrics {
                continue;
            }
            let text = |p: Option<Payload<'a>>, what: &str| match p {
                None => Ok(""),
                Some(p) => p.string().ok_or_else(|| format!("{what} is not a UTF-8 string")),
            };
            let name = text(name, "metric name")?;
            if name.is_empty() {
                return Err(format!("invalid metric name {name:?}"));
            }
            let help = text(help, &format!("help of metric {name:?}"))?;
            let unit = text(unit, &format!("unit of metric {name:?}"))?;
            let kind = i32::try_from(kind)
                .ok()
                .and_then(|k| WireType::try_from(k).ok())
                .ok_or_else(|| format!("unknown metric type for metric {name:?}: {kind}"))?;
            self.family = Family { name, help, unit, kind };
            self.metrics = Fields::new(raw);
            self.stage = Stage::Help;
            return Ok(true);
        }
        Ok(false)
    }

    /// The next metric of the current family, still bytes.
    fn next_metric(&mut self) -> Result<Option<&'a [u8]>, Failure> {
        for field in self.metrics.by_ref() {
            if let (4, Payload::Bytes(raw)) = field.map_err(|e| e.to_string())? {
                return Ok(Some(raw));
            }
        }
        Ok(None)
    }

    /// Reads a metric's labels and timestamp, and what it yields into `pending`.
    fn read_metric(&mut self, raw: &'a [u8]) -> Result<(), Failure> {
        let name = self.family.name;
        self.labels.clear();
        self.timestamp = None;
        // The family's type says which value field counts; a missing one reads as zero.
        let wanted = match self.family.kind {
            WireType::Gauge => 2,
            WireType::Counter => 3,
            WireType::Summary => 4,
            WireType::Untyped => 5,
            WireType::Histogram | WireType::GaugeHistogram => 7,
        };
        let mut message: &[u8] = &[];
        for field in Fields::new(raw) {
            match field.map_err(|e| e.to_string())? {
                (1, Payload::Bytes(pair)) => {
                    if self.labels.len() == MAX_LABELS {
                        return Err(format!("a metric of {name} has more than {MAX_LABELS} labels"));
                    }
                    let (n, v) = label_pair(pair)?;
                    if n.is_empty() || n == METRIC_NAME {
                        return Err(format!("invalid label name {n:?} in a metric of {name}"));
                    }
                    // Kept in the series text, empty value or not, as the text format keeps
                    // it: `honor_labels` reads `instance=""` (see `parse_series_pairs`).
                    self.labels.push((n, v));
                }
                (6, Payload::Varint(t)) => self.timestamp = (t != 0).then_some(t as i64),
                (tag, Payload::Bytes(m)) if tag == wanted => message = m,
                (2..=5 | 7, Payload::Bytes(_)) => {}
                (tag @ 1..=7, _) => return Err(wrong_type("metric", tag)),
                _ => {}
            }
        }
        if !self.labels.is_sorted_by(|a, b| a.0 <= b.0) {
            self.labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        if let Some(w) = self.labels.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(format!("duplicate label name {:?} in a metric of {name}", w[0].0));
        }
        self.pending = Pending::default();
        match self.family.kind {
            WireType::Counter => {
                let (v, exemplar) = read_value(message, "counter")?;
                let exemplar = exemplar.map(read_exemplar).transpose()?.flatten();
                self.pending.float = Some((v, exemplar));
            }
            WireType::Gauge | WireType::Untyped => {
                let (v, _) = read_value(message, "gauge")?;
                self.pending.float = Some((v, None));
            }
            WireType::Summary => {
                let (mut count, mut sum) = (0u64, 0.0);
                for field in Fields::new(message) {
                    match field.map_err(|e| e.to_string())? {
                        (1, Payload::Varint(v)) => count = v,
                        (2, Payload::Fixed64(bits)) => sum = f64::from_bits(bits),
                        (tag @ 1..=2, _) => return Err(wrong_type("summary", tag)),
                        _ => {}
                    }
                }
                self.pending.summary = Some(Parts::new(count as f64, sum, message, false));
            }
            WireType::Histogram | WireType::GaugeHistogram => self.read_histogram(message)?,
        }
        Ok(())
    }

    fn read_histogram(&mut self, raw: &'a [u8]) -> Result<(), Failure> {
        let scan = HistogramScan::of(raw)?;
        let gauge = self.family.kind == WireType::GaugeHistogram;
        let context = |e: Failure| format!("histogram {:?}: {e}", self.family.name);
        let classic = |scan: &HistogramScan| Parts::new(scan.classic_count(), scan.sum, raw, true);
        if self.options.native && scan.is_native() {
            let h = native_histogram(raw, &scan, gauge).map_err(context)?;
            self.pending.native = Some((h, native_exemplars(raw, &scan)?));
            if self.options.keep_classic && scan.classic_buckets > 0 {
                self.pending.classic = Some(classic(&scan));
            }
            return Ok(());
        }
        if !self.options.convert_to_nhcb || self.options.keep_classic {
            self.pending.classic = Some(classic(&scan));
        }
        if self.options.convert_to_nhcb {
            let h = nhcb(raw, &scan, gauge).map_err(context)?;
            self.pending.nhcb = Some((h, native_exemplars(raw, &scan)?));
        }
        Ok(())
    }

    /// The current metric's next sample, its series rendered into `self.series`.
    fn next_sample(&mut self) -> Result<Option<Emit>, Failure> {
        let name = self.family.name;
        let (out, labels, floats) = (&mut self.series, &self.labels, &mut self.float_labels);
        if let Some((value, exemplar)) = self.pending.float.take() {
            render_series(out, name, "", labels, None)?;
            return Ok(Some(Emit::Float { value, exemplar }));
        }
        if let Some((histogram, exemplars)) = self.pending.native.take() {
            render_series(out, name, "", labels, None)?;
            return Ok(Some(Emit::Histogram { histogram: Box::new(histogram), exemplars }));
        }
        for parts in [&mut self.pending.summary, &mut self.pending.classic] {
            let Some(p) = parts else { continue };
            let Some(part) = p.next()? else {
                *parts = None;
                continue;
            };
            return Ok(Some(match part {
                Part::Count(value) => {
                    render_series(out, name, "_count", labels, None)?;
                    Emit::Float { value, exemplar: None }
                }
                Part::Sum(value) => {
                    render_series(out, name, "_sum", labels, None)?;
                    Emit::Float { value, exemplar: None }
                }
                Part::Quantile { quantile, value } => {
                    render_series(out, name, "", labels, Some(("quantile", floats.get(quantile))))?;
                    Emit::Float { value, exemplar: None }
                }
                Part::Bucket { upper, count, exemplar } => {
                    render_series(out, name, "_bucket", labels, Some(("le", floats.get(upper))))?;
                    Emit::Float { value: count, exemplar }
                }
            }));
        }
        if let Some((histogram, exemplars)) = self.pending.nhcb.take() {
            render_series(out, name, "", labels, None)?;
            return Ok(Some(Emit::Histogram { histogram: Box::new(histogram), exemplars }));
        }
        Ok(None)
    }
}

/// The metric type a family's wire type declares.
fn metric_type(kind: WireType) -> MetricType {
    match kind {
        WireType::Counter => MetricType::Counter,
        WireType::Gauge => MetricType::Gauge,
        WireType::Summary => MetricType::Summary,
        WireType::Untyped => MetricType::Untyped,
        WireType::Histogram => MetricType::Histogram,
        WireType::GaugeHistogram => MetricType::GaugeHistogram,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::parse_series;
    use crate::histogram::{parse_histogram, CounterResetHint, Span};

    fn label(name: &str, value: &str) -> Label {
        Label { name: name.into(), value: value.into() }
    }

    fn family(name: &str, kind: WireType, metric: Vec<Metric>) -> MetricFamily {
        MetricFamily { name: name.into(), help: String::new(), r#type: kind as i32, metric, unit: String::new() }
    }

    fn metric(labels: &[(&str, &str)]) -> Metric {
        Metric { label: labels.iter().map(|(n, v)| label(n, v)).collect(), ..Metric::default() }
    }

    fn exemplar(trace: &str, value: f64, at: Option<(i64, i32)>) -> Exemplar {
        Exemplar {
            label: vec![label("trace_id", trace)],
            value,
            timestamp: at.map(|(seconds, nanos)| Timestamp { seconds, nanos }),
        }
    }

    fn span(offset: i32, length: u32) -> remote::BucketSpan {
        remote::BucketSpan { offset, length }
    }

    /// A histogram with classic buckets at 0.1 and 1 (no +Inf bucket) and, if `native`,
    /// integer native buckets of schema 0: 2 observations in (0.5, 1], 3 in (1, 2].
    fn histogram(native: bool) -> Histogram {
        let bucket = |upper_bound, cumulative_count, exemplar| Bucket {
            cumulative_count,
            cumulative_count_float: 0.0,
            upper_bound,
            exemplar,
        };
        Histogram {
            sample_count: 5,
            sample_sum: 7.5,
            bucket: vec![
                bucket(0.1, 0, None),
                bucket(1.0, 2, Some(exemplar("b1", 0.7, Some((1_700_000_000, 500_000_000))))),
            ],
            schema: 0,
            positive_span: if native { vec![span(0, 2)] } else { Vec::new() },
            positive_delta: if native { vec![2, 1] } else { Vec::new() },
            ..Histogram::default()
        }
    }

    /// Every entry of `body` as a line of text: samples with their series, value, timestamp
    /// and exemplar values, histograms in the test notation.
    fn entries(body: &[u8], options: HistogramOptions) -> Result<Vec<String>, ProtobufError> {
        let mut parser = ProtobufParser::new(body, options);
        let mut out = Vec::new();
        while let Some(entry) = parser.next() {
            out.push(match entry? {
                Entry::Help { metric, text } => format!("HELP {metric} {text}"),
                Entry::Type { metric, kind } => format!("TYPE {metric} {kind:?}"),
                Entry::Unit { metric, unit } => format!("UNIT {metric} {unit}"),
                Entry::Sample { series, value, timestamp, exemplar } => {
                    let mut line = format!("{series} {value}");
                    if let Some(t) = timestamp {
                        line += &format!(" @{t}");
                    }
                    if let Some(x) = exemplar {
                        line += &format!(" # {} {} {:?}", x.labels, x.value, x.timestamp);
                    }
                    line
                }
                Entry::Histogram { series, histogram, timestamp, exemplars } => {
                    let mut line = format!("{series} {histogram}");
                    if let Some(t) = timestamp {
                        line += &format!(" @{t}");
                    }
                    for x in exemplars {
                        line += &format!(" # {} {} {:?}", x.labels, x.value, x.timestamp);
                    }
                    line
                }
            });
        }
        Ok(out)
    }

    const NATIVE: HistogramOptions = HistogramOptions { native: true, keep_classic: false, convert_to_nhcb: false };

    #[test]
    fn every_type_yields_upstreams_series() {
        let mut counter = metric(&[("path", "/a\"b"), ("code", "200")]);
        counter.counter = Some(Counter { value: 3.0, exemplar: Some(exemplar("abc", 1.5, None)) });
        counter.timestamp_ms = 1_700_000_000_123;
        let mut gauge = metric(&[]);
        gauge.gauge = Some(Gauge { value: -2.5 });
        let mut untyped = metric(&[("x", "")]);
        untyped.untyped = Some(Untyped { value: f64::INFINITY });
        let mut summary = metric(&[("job", "j")]);
        summary.summary = Some(Summary {
            sample_count: 4,
            sample_sum: 1.25,
            quantile: vec![Quantile { quantile: 0.5, value: 0.2 }, Quantile { quantile: 1.0, value: 0.9 }],
        });
        let mut classic = metric(&[("h", "1")]);
        classic.histogram = Some(histogram(false));
        let mut requests = family("requests_total", WireType::Counter, vec![counter]);
        requests.help = "Requests.".into();
        requests.unit = "requests".into();
        let body = encode(&[
            requests,
            family("temperature", WireType::Gauge, vec![gauge]),
            family("odd", WireType::Untyped, vec![untyped]),
            family("empty", WireType::Counter, Vec::new()),
            family("rpc", WireType::Summary, vec![summary]),
            family("latency", WireType::Histogram, vec![classic]),
        ]);
        let got = entries(&body, NATIVE).unwrap();
        let want = [
            "HELP requests_total Requests.",
            "UNIT requests_total requests",
            "TYPE requests_total Counter",
            r#"requests_total{code="200",path="/a\"b"} 3 @1700000000123 # {trace_id="abc"} 1.5 None"#,
            "HELP temperature ",
            "TYPE temperature Gauge",
            "temperature -2.5",
            "HELP odd ",
            "TYPE odd Untyped",
            // An empty value stays in the series text, as the text format keeps it there
            // (`honor_labels` reads it); its labels have no `x`.
            r#"odd{x=""} inf"#,
            "HELP rpc ",
            "TYPE rpc Summary",
            r#"rpc_count{job="j"} 4"#,
            r#"rpc_sum{job="j"} 1.25"#,
            r#"rpc{job="j",quantile="0.5"} 0.2"#,
            r#"rpc{job="j",quantile="1.0"} 0.9"#,
            "HELP latency ",
            "TYPE latency Histogram",
            r#"latency_count{h="1"} 5"#,
            r#"latency_sum{h="1"} 7.5"#,
            r#"latency_bucket{h="1",le="0.1"} 0"#,
            r#"latency_bucket{h="1",le="1.0"} 2 # {trace_id="b1"} 0.7 Some(1700000000500)"#,
            r#"latency_bucket{h="1",le="+Inf"} 5"#,
        ];
        assert_eq!(got, want);
        // Every series parses back to its labels.
        let labels = parse_series(r#"requests_total{code="200",path="/a\"b"}"#).unwrap();
        assert_eq!(labels.get("path"), "/a\"b");
    }

    #[test]
    fn long_summaries_and_histograms_yield_every_series() {
        let mut s = metric(&[]);
        let quantile = |i: usize| Quantile { quantile: i as f64 / 1000.0, value: i as f64 };
        s.summary = Some(Summary { sample_count: 1, sample_sum: 1.0, quantile: (0..300).map(quantile).collect() });
        let mut h = metric(&[]);
        let bucket = |i: usize| Bucket {
            cumulative_count: i as u64,
            cumulative_count_float: 0.0,
            upper_bound: i as f64,
            exemplar: None,
        };
        h.histogram =
            Some(Histogram { sample_count: 300, bucket: (0..300).map(bucket).collect(), ..Histogram::default() });
        // A counter family's metric with a gauge value (ignored) besides its counter.
        let mut c = metric(&[]);
        c.counter = Some(Counter { value: 4.0, exemplar: None });
        c.gauge = Some(Gauge { value: 9.0 });
        let body = encode(&[
            family("s", WireType::Summary, vec![s]),
            family("h", WireType::Histogram, vec![h]),
            family("c", WireType::Counter, vec![c]),
        ]);
        let got = entries(&body, NATIVE).unwrap();
        assert_eq!(got.len(), 2 + 302 + 2 + 303 + 3);
        assert_eq!(got.last().unwrap(), "c 4");
    }

    #[test]
    fn floats_in_labels_are_formatted_as_openmetrics_does() {
        let formatted: Vec<String> =
            [1.0, 0.0, -0.0, 0.25, 1e6, 123456.0, 1e-5, 2.5e-7, f64::INFINITY, f64::NEG_INFINITY, f64::NAN]
                .map(openmetrics_float)
                .into();
        assert_eq!(
            formatted,
            ["1.0", "0.0", "0.0", "0.25", "1e+06", "123456.0", "1e-05", "2.5e-07", "+Inf", "-Inf", "NaN"]
        );
    }

    #[test]
    fn native_histograms_win_over_their_classic_buckets_unless_both_are_kept() {
        let mut m = metric(&[("h", "1")]);
        m.histogram = Some(histogram(true));
        m.timestamp_ms = 42;
        let body = encode(&[family("latency", WireType::Histogram, vec![m])]);
        let native = r#"latency{h="1"} {{schema:0 count:5 sum:7.5 buckets:[2 3]}} @42 # {trace_id="b1"} 0.7 Some(1700000000500)"#;
        assert_eq!(&entries(&body, NATIVE).unwrap()[2..], [native]);
        let both = HistogramOptions { keep_classic: true, ..NATIVE };
        let got = entries(&body, both).unwrap();
        assert_eq!(got[2], native);
        assert_eq!(got[3..].len(), 5, "the classic series follow: {got:?}");
        assert_eq!(got[7], r#"latency_bucket{h="1",le="+Inf"} 5 @42"#);
        // Without native histograms, the classic histogram alone.
        let classic = entries(&body, HistogramOptions::default()).unwrap();
        assert_eq!(classic[2..], got[3..]);
        // The parsed histogram is the one observed: buckets (0.5, 1] and (1, 2] of schema 0.
        let mut parser = ProtobufParser::new(&body, NATIVE);
        let h = loop {
            if let Some(Ok(Entry::Histogram { histogram, .. })) = parser.next() {
                break *histogram;
            }
        };
        assert_eq!(h, parse_histogram("{{schema:0 count:5 sum:7.5 buckets:[2 3]}}").unwrap());
    }

    #[test]
    fn float_gauge_and_empty_native_histograms() {
        let float = Histogram {
            sample_count_float: 2.5,
            sample_sum: 1.0,
            schema: 3,
            zero_threshold: 0.001,
            zero_count_float: 0.5,
            negative_span: vec![span(-2, 1), span(3, 1)],
            negative_count: vec![1.0, 1.0],
            // Deltas of a float histogram are ignored, as upstream ignores them.
            positive_delta: vec![7],
            ..Histogram::default()
        };
        let mut m = metric(&[]);
        m.histogram = Some(float);
        // An empty histogram is native only with its no-op span.
        let mut empty = metric(&[("no", "op")]);
        empty.histogram = Some(Histogram { positive_span: vec![span(0, 0)], ..Histogram::default() });
        let mut classic_empty = metric(&[("no", "span")]);
        classic_empty.histogram = Some(Histogram::default());
        let body = encode(&[family("queue", WireType::GaugeHistogram, vec![m, empty, classic_empty])]);
        let mut parser = ProtobufParser::new(&body, NATIVE);
        let mut histograms = Vec::new();
        let mut floats = Vec::new();
        while let Some(entry) = parser.next() {
            match entry.unwrap() {
                Entry::Histogram { histogram, .. } => histograms.push(*histogram),
                Entry::Sample { series, .. } => floats.push(series.to_string()),
                _ => {}
            }
        }
        let mut want =
            parse_histogram("{{schema:3 count:2.5 sum:1 z_bucket:0.5 z_bucket_w:0.001 n_buckets:[1 1]}}").unwrap();
        want.negative_spans = vec![Span { offset: -2, length: 1 }, Span { offset: 3, length: 1 }];
        want.counter_reset_hint = CounterResetHint::Gauge;
        assert_eq!(histograms[0], want);
        assert_eq!((histograms[1].count, histograms[1].counter_reset_hint), (0.0, CounterResetHint::Gauge));
        assert_eq!(
            floats,
            [r#"queue_count{no="span"}"#, r#"queue_sum{no="span"}"#, r#"queue_bucket{le="+Inf",no="span"}"#]
        );
    }

    /// A float histogram whose count is NaN (as `/federate` writes one) is read as a float
    /// histogram, not as an integer one without deltas (red team P).
    #[test]
    fn a_nan_count_is_a_float_histograms() {
        let nan = Histogram {
            sample_count_float: f64::NAN,
            schema: 0,
            positive_span: vec![span(0, 1)],
            positive_count: vec![1.0],
            ..Histogram::default()
        };
        let mut m = metric(&[]);
        m.histogram = Some(nan);
        let body = encode(&[family("h", WireType::Histogram, vec![m])]);
        let mut parser = ProtobufParser::new(&body, NATIVE);
        let h = loop {
            match parser.next() {
                Some(Ok(Entry::Histogram { histogram, .. })) => break *histogram,
                Some(entry) => assert!(entry.is_ok(), "{entry:?}"),
                None => panic!("no histogram"),
            }
        };
        assert!(h.count.is_nan());
        assert_eq!(h.positive_buckets, [1.0]);
    }

    #[test]
    fn native_histogram_exemplars_need_timestamps() {
        let mut h = histogram(true);
        h.exemplars = vec![exemplar("x", 1.0, None), exemplar("y", 2.0, Some((10, 0)))];
        let mut with_own = metric(&[]);
        with_own.histogram = Some(h.clone());
        // Without exemplars of its own, its buckets' (with a timestamp) count.
        h.exemplars.clear();
        let mut from_buckets = metric(&[("b", "1")]);
        from_buckets.histogram = Some(h);
        let body = encode(&[family("h", WireType::Histogram, vec![with_own, from_buckets])]);
        let got = entries(&body, NATIVE).unwrap();
        assert!(got[2].ends_with(r#" # {trace_id="y"} 2 Some(10000)"#), "{}", got[2]);
        assert!(got[3].ends_with(r#" # {trace_id="b1"} 0.7 Some(1700000000500)"#), "{}", got[3]);
    }

    #[test]
    fn classic_histograms_convert_to_custom_buckets() {
        let mut m = metric(&[("h", "1")]);
        m.histogram = Some(histogram(false));
        let body = encode(&[family("latency", WireType::Histogram, vec![m])]);
        let nhcb = HistogramOptions { native: true, keep_classic: false, convert_to_nhcb: true };
        // With the buckets' exemplars that carry a timestamp, as upstream takes them.
        let want = r#"latency{h="1"} {{schema:-53 count:5 sum:7.5 custom_values:[0.1 1] offset:1 buckets:[2 3]}} # {trace_id="b1"} 0.7 Some(1700000000500)"#;
        assert_eq!(entries(&body, nhcb).unwrap()[2..], [want]);
        let both = entries(&body, HistogramOptions { keep_classic: true, ..nhcb }).unwrap();
        assert_eq!((both.len(), both.last().unwrap().as_str()), (8, want));
        // A +Inf bucket that disagrees with the count fails the scrape, as upstream.
        let mut bad = histogram(false);
        bad.bucket.push(Bucket {
            cumulative_count: 9,
            cumulative_count_float: 0.0,
            upper_bound: f64::INFINITY,
            exemplar: None,
        });
        let mut m = metric(&[]);
        m.histogram = Some(bad);
        let e = entries(&encode(&[family("latency", WireType::Histogram, vec![m])]), nhcb).unwrap_err();
        assert_eq!(e.to_string(), "protobuf format parsing error in metric family 1: histogram \"latency\": count mismatch: count=5 != le=+Inf count=9");
    }

    #[test]
    fn invalid_histograms_fail_with_upstreams_messages() {
        let error = |h: Histogram| {
            let mut m = metric(&[]);
            m.histogram = Some(h);
            entries(&encode(&[family("x", WireType::Histogram, vec![m])]), NATIVE).unwrap_err().to_string()
        };
        let mismatch = Histogram {
            sample_count: 1,
            positive_span: vec![span(0, 3)],
            positive_delta: vec![1],
            ..Histogram::default()
        };
        assert!(error(mismatch).ends_with("histogram \"x\": positive side: spans require 3 buckets, have 1"));
        let negative = Histogram {
            sample_count: 1,
            positive_span: vec![span(0, 2)],
            positive_delta: vec![1, -2],
            ..Histogram::default()
        };
        assert!(error(negative).contains("bucket number 2 has observation count of -1"));
        let count = Histogram {
            sample_count: 7,
            positive_span: vec![span(0, 1)],
            positive_delta: vec![1],
            ..Histogram::default()
        };
        assert!(error(count).contains("the Count field is 7"));
        let schema = Histogram { schema: 60, positive_span: vec![span(0, 0)], ..Histogram::default() };
        assert!(error(schema).contains("invalid schema"));
        // Schemas finer than 8 are reduced, as upstream's storage reduces them.
        let mut fine = metric(&[]);
        fine.histogram = Some(Histogram {
            sample_count: 2,
            schema: 10,
            positive_span: vec![span(4, 2)],
            positive_delta: vec![1, 0],
            ..Histogram::default()
        });
        let got = entries(&encode(&[family("x", WireType::Histogram, vec![fine])]), NATIVE).unwrap();
        assert_eq!(got[2], "x {{schema:8 count:2 sum:0 offset:1 buckets:[1 1]}}");
    }

    #[test]
    fn hostile_bodies_fail_cleanly_and_cost_what_their_bytes_pay_for() {
        let error = |body: &[u8]| entries(body, NATIVE).unwrap_err().to_string();
        // One metric of a megabyte-long label and 200 buckets of a few bytes each: every bucket
        // would render the label again, 200 MB from a 1 MB body. Refused past 16 times the body.
        let wide = Metric {
            histogram: Some(Histogram {
                bucket: (0..200)
                    .map(|i| Bucket {
                        upper_bound: f64::from(i),
                        cumulative_count: 0,
                        cumulative_count_float: 0.0,
                        exemplar: None,
                    })
                    .collect(),
                ..Histogram::default()
            }),
            ..metric(&[("pod", &"x".repeat(1 << 20))])
        };
        let body = encode(&[family("wide", WireType::Histogram, vec![wide.clone()])]);
        assert!(error(&body).contains("times the body's size written out"), "{}", error(&body));
        let mut few = wide;
        few.histogram.as_mut().unwrap().bucket.truncate(10);
        assert!(entries(&encode(&[family("wide", WireType::Histogram, vec![few])]), NATIVE).is_ok(), "ten are fine");
        // A length past the end, a length varint that never ends or is too long.
        assert!(
            error(&[0x10, 0x0a]).ends_with("message of 16 bytes, but only 1 bytes left in the body"),
            "{}",
            error(&[0x10, 0x0a])
        );
        assert!(error(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]).contains("invalid message length"));
        let good = encode(&[family("a", WireType::Gauge, vec![metric(&[])])]);
        for cut in 1..good.len() {
            assert!(entries(&good[..cut], NATIVE).is_err(), "cut at {cut}");
        }
        let framed = |message: &[u8]| {
            let mut body = Vec::new();
            prost::encoding::encode_varint(message.len() as u64, &mut body);
            body.extend(message);
            body
        };
        // A name that is not a string, a type out of range, a metric that is a varint.
        assert!(error(&framed(&[0x0a, 0x01, 0xff, 0x22, 0x00])).contains("metric name is not a UTF-8 string"));
        assert!(error(&framed(&[0x0a, 0x01, b'a', 0x18, 0x09, 0x22, 0x00]))
            .ends_with("unknown metric type for metric \"a\": 9"));
        assert!(error(&framed(&[0x0a, 0x01, b'a', 0x20, 0x00])).contains("wrong wire type"));
        // Names outside the legacy set are read (the scrape's scheme decides on them), an
        // empty one is refused.
        let dashed = framed(&[0x0a, 0x02, b'a', b'-', 0x22, 0x00]);
        assert_eq!(entries(&dashed, NATIVE).unwrap()[2], "{\"a-\"} 0");
        assert!(error(&framed(&[0x0a, 0x00, 0x22, 0x00])).contains("invalid metric name \"\""));
        let with_labels = |labels: &[(&str, &str)]| encode(&[family("a", WireType::Gauge, vec![metric(labels)])]);
        assert!(error(&with_labels(&[("x", "1"), ("x", "2")])).contains("duplicate label name \"x\""));
        assert!(error(&with_labels(&[("__name__", "b")])).contains("invalid label name \"__name__\""));
        assert!(error(&with_labels(&[("", "1")])).contains("invalid label name \"\""));
        assert_eq!(entries(&with_labels(&[("a b", "1")]), NATIVE).unwrap()[2], "a{\"a b\"=\"1\"} 0");
        let mut le = metric(&[("le", "1")]);
        le.histogram = Some(histogram(false));
        assert!(error(&encode(&[family("h", WireType::Histogram, vec![le])])).contains("label \"le\" of h_bucket"));
        // Too many labels, too many buckets: refused before anything is allocated for them.
        let many: Vec<(String, String)> = (0..=MAX_LABELS).map(|i| (format!("l{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert!(error(&with_labels(&many)).contains("more than 10000 labels"));
        let mut wide = metric(&[]);
        wide.histogram = Some(Histogram { positive_span: vec![span(0, 1); 70_000], ..Histogram::default() });
        assert!(error(&encode(&[family("h", WireType::Histogram, vec![wide])]))
            .contains("histogram has more than 65536 spans"));
        // Millions of empty families cost nothing; a million tiny samples parse quickly.
        let started = std::time::Instant::now();
        let empty = vec![0u8; 5 << 20];
        assert_eq!(entries(&empty, NATIVE).unwrap().len(), 0);
        let tiny: Vec<u8> = good.iter().copied().cycle().take(good.len() * 1_000_000).collect();
        let mut parser = ProtobufParser::new(&tiny, NATIVE);
        let mut samples = 0;
        while let Some(entry) = parser.next() {
            samples += usize::from(matches!(entry.unwrap(), Entry::Sample { .. }));
        }
        assert_eq!(samples, 1_000_000);
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
    }

    #[test]
    fn the_parser_stops_after_an_error() {
        let mut body = vec![0x05, 0x0a];
        body.extend(encode(&[family("a", WireType::Gauge, vec![metric(&[])])]));
        let mut parser = ProtobufParser::new(&body, NATIVE);
        assert!(matches!(parser.next(), Some(Err(ProtobufError { family: 1, .. }))));
        assert!(parser.next().is_none());
    }
}
