//! Remote-write wire formats: protocol 1.0 here (a snappy-compressed protobuf `WriteRequest`),
//! 2.0 in [`v2`]; remote read's messages in [`read`]; native histograms, the same message in
//! all of them, in [`histogram`].
//!
//! The messages are declared with `prost` derives (no code generation step); only the fields
//! Pyrite uses are declared. A request is walked field by field and each series validated as
//! it is decoded. A 1.0 request that is malformed, or holds an invalid histogram, is refused
//! whole and stores nothing; a series with invalid labels is skipped and the others are stored,
//! as upstream's receiver does.

pub mod histogram;
pub mod read;
pub mod send;
pub mod v2;

use prost::Message;
use thiserror::Error;

use self::histogram::{wire_histograms, Histogram, HistogramBudget};
use crate::excerpt::excerpt;
use crate::labels::{sorted_names, Labels, MAX_SERIES_LABEL_BYTES};
use crate::protowire::{Fields, Payload, WireError};
use crate::value::{exemplar_label_chars, Exemplar, HistogramSample, Sample, EXEMPLAR_MAX_LABEL_CHARS};

#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<WireSample>,
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<WireExemplar>,
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

#[derive(Clone, PartialEq, Message)]
pub struct WireExemplar {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// A label as a write request holds it, its bytes not yet read as UTF-8: a series with a name
/// or value that is not UTF-8 is skipped, as upstream 3.x's receiver skips it (its decoder
/// takes any bytes and its validation refuses the series), not the whole request.
#[derive(Clone, PartialEq, Message)]
struct RawLabel {
    #[prost(bytes = "vec", tag = "1")]
    name: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

impl RawLabel {
    /// The label, if its name and value are UTF-8.
    fn checked(self) -> Option<Label> {
        Some(Label { name: String::from_utf8(self.name).ok()?, value: String::from_utf8(self.value).ok()? })
    }
}

/// An exemplar as a write request holds it (see [`RawLabel`]).
#[derive(Clone, PartialEq, Message)]
struct RawExemplar {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<RawLabel>,
    #[prost(double, tag = "2")]
    value: f64,
    #[prost(int64, tag = "3")]
    timestamp: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct WireSample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

#[derive(Debug, Error)]
pub enum RemoteError {
    #[error("snappy decode error: {0}")]
    Snappy(String),
    #[error("decompressed body is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("protobuf decode error: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("protobuf decode error: {0}")]
    Malformed(&'static str),
    #[error("protobuf decode error: {0}")]
    Wire(#[from] WireError),
    #[error("invalid matcher: {0}")]
    InvalidMatcher(String),
    #[error("series {index}: {message}")]
    InvalidSeries { index: usize, message: String },
    #[error("the series' labels, their symbols resolved, take more bytes than the request may decompress to")]
    LabelsTooLarge,
    #[error("the request's histograms take more than {limit} bytes decoded")]
    HistogramsTooLarge { limit: usize },
    #[error("the answer would take more than {limit} bytes decoded")]
    AnswerTooLarge { limit: usize },
}

/// One decoded series with its samples, exemplars and native-histogram samples.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
    pub exemplars: Vec<Exemplar>,
    pub histograms: Vec<HistogramSample>,
}

/// The most bytes an exemplar may take in a request: one of valid labels (at most 128
/// characters together) takes far fewer, so a larger one is dropped without being decoded.
pub const MAX_EXEMPLAR_BYTES: usize = 2048;

/// An exemplar a sender wrote, if it is one upstream stores: valid label names with values,
/// at most [`EXEMPLAR_MAX_LABEL_CHARS`] characters together. Upstream's receivers drop the
/// others and keep the request; so does Pyrite.
pub fn checked_exemplar<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    value: f64,
    t: i64,
) -> Option<Exemplar> {
    let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    // A character takes at most 4 bytes: more bytes than that are too many characters, found
    // before anything is copied (a 2.0 exemplar's labels may name long symbols).
    if pair_bytes(&pairs) > 4 * EXEMPLAR_MAX_LABEL_CHARS
        || pairs.iter().any(|(n, v)| check_label(n, v).is_err())
        || sorted_names(pairs.iter().map(|p| p.0)).1.is_some()
    {
        return None;
    }
    let labels = Labels::from_pairs(pairs);
    (exemplar_label_chars(&labels) <= EXEMPLAR_MAX_LABEL_CHARS).then_some(Exemplar { labels, value, t, has_ts: true })
}

/// Most labels one series may have. Upstream sets no limit, but a series with more is no
/// metric anyone sends, and the limit bounds what one series of a hostile request costs
/// (Mimir and VictoriaMetrics default to 30).
pub const MAX_LABELS_PER_SERIES: usize = 10_000;

/// A 1.0 request decoded: the series to store, and how many were skipped for their labels.
#[derive(Debug, Default, PartialEq)]
pub struct DecodedV1 {
    pub series: Vec<WriteSeries>,
    /// Series skipped for their labels: no metric name, an invalid or repeated label name, more
    /// than [`MAX_LABELS_PER_SERIES`] labels or [`MAX_SERIES_LABEL_BYTES`].
    pub invalid: usize,
    /// Why the first of them was skipped (`series N: ...`).
    pub first_invalid: Option<String>,
}

/// Decodes and validates a snappy-compressed `WriteRequest`, refusing bodies that decompress
/// to more than `max_decoded` bytes.
///
/// The request is read series by series, each validated as it is decoded, so a malformed
/// request fails at its first bad field (an invalid histogram too, as upstream's 1.0 receiver
/// refuses the request it is in), and what a request costs in memory follows what it stores:
/// series without samples are dropped as soon as their labels are checked (a few megabytes of
/// empty series once decoded into gigabytes of empty structures), and histograms are bounded as
/// [`histogram`] describes. A series with invalid labels is skipped, as upstream skips it
/// (with a warning) and stores the rest: refusing the request would make its sender drop every
/// series in it, since a 400 is not retried. A label with an empty value is no label, as
/// upstream's head drops it. Duplicate label names are found by sorting, not by comparing
/// every pair.
pub fn decode_write_request(body: &[u8], max_decoded: usize) -> Result<DecodedV1, RemoteError> {
    let raw = decompress(body, max_decoded)?;
    let mut out = DecodedV1::default();
    let mut exemplar_budget = 0;
    let mut histogram_budget = HistogramBudget::new(max_decoded);
    for (index, field) in Fields::new(&raw).filter(|f| !matches!(f, Ok((tag, _)) if *tag != 1)).enumerate() {
        let (_, payload) = field?;
        let Payload::Bytes(payload) = payload else {
            return Err(RemoteError::Malformed("timeseries is not a message"));
        };
        let invalid = |message: String| RemoteError::InvalidSeries { index, message };
        match decode_series(payload, invalid, &mut exemplar_budget, &mut histogram_budget)? {
            Decoded::Series(series) => out.series.push(series),
            Decoded::Nothing => {}
            Decoded::InvalidLabels(why) => {
                out.invalid += 1;
                out.first_invalid.get_or_insert_with(|| invalid(why).to_string());
            }
        }
    }
    Ok(out)
}

/// One `TimeSeries` decoded.
enum Decoded {
    Series(WriteSeries),
    /// Valid, with no samples, histograms or exemplars.
    Nothing,
    /// Labels that no series may have: skipped, why.
    InvalidLabels(String),
}

/// One `TimeSeries`, validated.
///
/// Exemplars are kept while `exemplar_budget` lasts: each series, sample and histogram of the
/// request adds one, each exemplar takes one. Upstream's senders send one per sample at most, or one
/// alone in a series; a hostile request of millions of two-byte empty exemplars is refused
/// the memory they would take decoded. One too large to be valid is not decoded.
fn decode_series(
    raw: &[u8],
    invalid: impl Fn(String) -> RemoteError,
    exemplar_budget: &mut usize,
    histogram_budget: &mut HistogramBudget,
) -> Result<Decoded, RemoteError> {
    let mut labels: Vec<Label> = Vec::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut exemplars: Vec<Exemplar> = Vec::new();
    let mut histograms: Vec<HistogramSample> = Vec::new();
    *exemplar_budget += 1;
    for field in Fields::new(raw) {
        match field? {
            (1, Payload::Bytes(bytes)) => {
                let Some(l) = RawLabel::decode(bytes)?.checked() else {
                    return Ok(Decoded::InvalidLabels("a label name or value is not UTF-8".into()));
                };
                if let Err(why) = check_label_name(&l.name) {
                    return Ok(Decoded::InvalidLabels(why));
                }
                if labels.len() == MAX_LABELS_PER_SERIES {
                    return Ok(Decoded::InvalidLabels(format!("more than {MAX_LABELS_PER_SERIES} labels")));
                }
                labels.push(l);
            }
            (2, Payload::Bytes(bytes)) => {
                let s = WireSample::decode(bytes)?;
                samples.push(Sample { t: s.timestamp, v: s.value });
                *exemplar_budget += 1;
            }
            (3, Payload::Bytes(bytes)) if *exemplar_budget == 0 || bytes.len() > MAX_EXEMPLAR_BYTES => {}
            (3, Payload::Bytes(bytes)) => {
                *exemplar_budget -= 1;
                let e = RawExemplar::decode(bytes)?;
                // An exemplar with a label that is not UTF-8 is dropped, the series kept.
                let Some(labels) = e.labels.into_iter().map(RawLabel::checked).collect::<Option<Vec<Label>>>() else {
                    continue;
                };
                let pairs = labels.iter().map(|l| (l.name.as_str(), l.value.as_str()));
                exemplars.extend(checked_exemplar(pairs, e.value, e.timestamp));
            }
            (4, Payload::Bytes(bytes)) => {
                histograms.push(histogram_budget.decode(bytes)?.map_err(|e| invalid(e.to_string()))?);
                *exemplar_budget += 1;
            }
            (1..=4, _) => return Err(RemoteError::Malformed("label, sample, exemplar or histogram is not a message")),
            _ => {}
        }
    }
    if let Err(why) = check_label_set(labels.iter().map(|l| (l.name.as_str(), l.value.as_str()))) {
        return Ok(Decoded::InvalidLabels(why));
    }
    // A label with an empty value is no label, as upstream's head drops it.
    labels.retain(|l| !l.value.is_empty());
    if samples.is_empty() && histograms.is_empty() && exemplars.is_empty() {
        return Ok(Decoded::Nothing);
    }
    let labels = Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value)));
    Ok(Decoded::Series(WriteSeries { labels, samples, exemplars, histograms }))
}

/// A label name as upstream 3.x's receivers take it (`model.UTF8Validation`, whatever
/// `metric_name_validation_scheme` says): any name that is not empty, the protobuf decoder
/// having checked it is UTF-8. `/federate` escapes such names as its scraper asks.
fn check_label_name(name: &str) -> Result<(), String> {
    match name.is_empty() {
        false => Ok(()),
        true => Err("empty label name".into()),
    }
}

/// Most bytes of a label name an error quotes: a name may be megabytes long.
const QUOTED_NAME_BYTES: usize = 128;

/// One label as an exemplar may carry it: a valid name and a value.
fn check_label(name: &str, value: &str) -> Result<(), String> {
    check_label_name(name)?;
    if value.is_empty() {
        return Err(format!("label {name:?} has an empty value"));
    }
    Ok(())
}

/// The bytes of label pairs' names and values together.
pub(crate) fn pair_bytes<S: AsRef<[u8]>>(pairs: &[(S, S)]) -> usize {
    pairs
        .iter()
        .fold(0usize, |n, (name, value)| n.saturating_add(name.as_ref().len()).saturating_add(value.as_ref().len()))
}

/// A series' labels together, empty values included (as upstream checks them before its head
/// drops those): a metric name that is not empty, no name twice (found by sorting), and at
/// most [`MAX_SERIES_LABEL_BYTES`].
fn check_label_set<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Result<(), String> {
    let (mut bytes, mut named) = (0usize, false);
    let (_, duplicate) = sorted_names(pairs.map(|(name, value)| {
        bytes = bytes.saturating_add(name.len()).saturating_add(value.len());
        named |= name == "__name__" && !value.is_empty();
        name
    }));
    if bytes > MAX_SERIES_LABEL_BYTES {
        return Err(format!("labels take {bytes} bytes, more than the {MAX_SERIES_LABEL_BYTES} a series may"));
    }
    if let Some(name) = duplicate {
        return Err(format!("duplicate label name {:?}", excerpt(name, QUOTED_NAME_BYTES)));
    }
    if !named {
        return Err("no metric name (__name__ label)".into());
    }
    Ok(())
}

/// The size a snappy block's header claims, if it could be true: snappy spends at least 3 bytes
/// on 64, so a block claiming more than 22 times its own size is damaged or hostile, and
/// decoding it would first allocate what it claims (a 12-byte remote-read answer claiming 1 GB
/// took 1 GB).
pub fn snappy_decoded_len(block: &[u8]) -> Result<usize, String> {
    let size = snap::raw::decompress_len(block).map_err(|e| e.to_string())?;
    if size > block.len().saturating_mul(22) {
        return Err(format!("corrupt input: {} bytes claim to decode to {size}", block.len()));
    }
    Ok(size)
}

/// A snappy body decompressed, refused before decompressing if it says it is larger than
/// `max_decoded`.
fn decompress(body: &[u8], max_decoded: usize) -> Result<Vec<u8>, RemoteError> {
    let size = snappy_decoded_len(body).map_err(RemoteError::Snappy)?;
    if size > max_decoded {
        return Err(RemoteError::TooLarge { size, limit: max_decoded });
    }
    snap::raw::Decoder::new().decompress_vec(body).map_err(|e| RemoteError::Snappy(e.to_string()))
}

/// Encodes series as a snappy-compressed `WriteRequest` (for clients, tests and load generation);
/// histograms as [`histogram::Histogram::from_float`] sends them.
pub fn encode_write_request(series: &[WriteSeries]) -> Vec<u8> {
    let request = WriteRequest {
        timeseries: series
            .iter()
            .map(|s| TimeSeries {
                labels: read::wire_labels(&s.labels),
                samples: s.samples.iter().map(|x| WireSample { value: x.v, timestamp: x.t }).collect(),
                exemplars: s
                    .exemplars
                    .iter()
                    .map(|e| WireExemplar { labels: read::wire_labels(&e.labels), value: e.value, timestamp: e.t })
                    .collect(),
                histograms: wire_histograms(&s.histograms),
            })
            .collect(),
    };
    snap::raw::Encoder::new().compress_vec(&request.encode_to_vec()).expect("snappy can compress any input")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snappy_header_claiming_more_than_snappy_can_encode_is_refused_unread() {
        // A varint of 1,000,000,000, then a literal of one byte: 7 bytes claiming 1 GB.
        let block = [0x80, 0x94, 0xeb, 0xdc, 0x03, 0x00, b'a'];
        let refused = decode_write_request(&block, usize::MAX).unwrap_err().to_string();
        assert!(refused.contains("corrupt input: 7 bytes claim to decode to 1000000000"), "{refused}");
        let honest = snap::raw::Encoder::new().compress_vec(&[0; 64 << 10]).unwrap();
        assert_eq!(snappy_decoded_len(&honest), Ok(64 << 10), "{} bytes", honest.len());
    }

    fn series() -> Vec<WriteSeries> {
        vec![WriteSeries {
            labels: Labels::from_pairs([("__name__", "x"), ("a", "b")]),
            samples: vec![Sample { t: 1, v: 1.5 }, Sample { t: 2, v: f64::INFINITY }],
            exemplars: Vec::new(),
            histograms: Vec::new(),
        }]
    }

    #[test]
    fn round_trip() {
        let body = encode_write_request(&series());
        assert_eq!(decode_write_request(&body, 1 << 20).unwrap().series, series());
    }

    fn histogram_series() -> Vec<WriteSeries> {
        let histograms = |t0: i64| -> Vec<HistogramSample> {
            let kinds = histogram::tests::kinds().into_iter();
            kinds.enumerate().map(|(i, h)| HistogramSample { t: t0 + i as i64, h: h.into() }).collect()
        };
        let mut with_samples = series();
        with_samples[0].histograms = histograms(10);
        let alone = WriteSeries {
            labels: Labels::from_pairs([("__name__", "h")]),
            samples: Vec::new(),
            exemplars: Vec::new(),
            histograms: histograms(-3),
        };
        with_samples.push(alone);
        with_samples
    }

    /// Integer and float, exponential and custom-bucket histograms with their hints; a series of
    /// histograms alone is kept.
    #[test]
    fn histograms_round_trip() {
        let body = encode_write_request(&histogram_series());
        assert_eq!(decode_write_request(&body, 1 << 20).unwrap().series, histogram_series());
    }

    /// An invalid histogram refuses the request, as upstream's 1.0 receiver does.
    #[test]
    fn an_invalid_histogram_refuses_the_request() {
        let mut request = WriteRequest::decode(
            snap::raw::Decoder::new().decompress_vec(&encode_write_request(&histogram_series())).unwrap().as_slice(),
        )
        .unwrap();
        request.timeseries[1].histograms[2].positive_deltas.push(1);
        let e = decode_write_request(&compressed(&request), 1 << 20).unwrap_err().to_string();
        assert_eq!(
            e,
            "series 1: custom buckets: spans need 4 buckets, have 5 buckets: histogram spans specify different number of buckets than provided"
        );
        // A histogram that is a varint, not a message.
        let body = snap::raw::Encoder::new().compress_vec(&[0x0a, 0x02, 0x20, 0x01]).unwrap();
        assert_eq!(
            decode_write_request(&body, 1 << 20).unwrap_err().to_string(),
            "protobuf decode error: label, sample, exemplar or histogram is not a message"
        );
    }

    /// Millions of two-byte empty histograms are valid, and would take hundreds of bytes each
    /// decoded: the request is refused once they pass its budget.
    #[test]
    fn many_empty_histograms_are_bounded() {
        let label = Label { name: "__name__".into(), value: "x".into() }.encode_to_vec();
        let mut series = vec![0x0a, label.len() as u8];
        series.extend_from_slice(&label);
        series.extend([0x22, 0x00].repeat(1 << 20));
        let mut raw = vec![0x0a];
        prost::encoding::encode_varint(series.len() as u64, &mut raw);
        raw.extend_from_slice(&series);
        let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        let started = std::time::Instant::now();
        let e = decode_write_request(&body, 4 << 20).unwrap_err();
        assert!(matches!(e, RemoteError::HistogramsTooLarge { limit } if limit == 32 << 20), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    }

    /// At most as many exemplars are kept as there were series and samples before them, those
    /// upstream refuses are dropped with the series kept, and one too large is not decoded.
    #[test]
    fn exemplars_are_bounded_and_checked() {
        let exemplar = |labels: &[(&str, &str)], t| WireExemplar {
            labels: labels.iter().map(|(n, v)| Label { name: n.to_string(), value: v.to_string() }).collect(),
            value: 1.0,
            timestamp: t,
        };
        let long = "x".repeat(200);
        let ts = |samples: usize, exemplars: Vec<WireExemplar>| TimeSeries {
            labels: vec![Label { name: "__name__".into(), value: "x".into() }],
            samples: (0..samples as i64).map(|t| WireSample { value: 1.0, timestamp: t }).collect(),
            exemplars,
            histograms: vec![],
        };
        let many = vec![exemplar(&[], 1); 100_000];
        let bad = vec![exemplar(&[("trace_id", &long)], 1), exemplar(&[("", "v")], 2), exemplar(&[("t", "ok")], 3)];
        let huge = vec![exemplar(&[("t", &"y".repeat(4000))], 4)];
        let alone = vec![exemplar(&[], 5), exemplar(&[], 6)];
        let request = WriteRequest { timeseries: vec![ts(2, many), ts(3, bad), ts(0, huge), ts(0, alone)] };
        let body = snap::raw::Encoder::new().compress_vec(&request.encode_to_vec()).unwrap();
        let got = decode_write_request(&body, 1 << 24).unwrap();
        let kept: Vec<Vec<i64>> = got.series.iter().map(|s| s.exemplars.iter().map(|e| e.t).collect()).collect();
        // Three for the first series; four for the second, one left over; the third adds one.
        assert_eq!(kept, [vec![1, 1, 1], vec![3], vec![5, 6]], "the series of a too large exemplar alone is dropped");
    }

    #[test]
    fn bad_bodies_are_refused() {
        assert!(matches!(decode_write_request(b"not snappy at all", 1 << 20), Err(RemoteError::Snappy(_))));
        let not_proto = snap::raw::Encoder::new().compress_vec(b"\xff\xff\xff\xff").unwrap();
        assert!(matches!(decode_write_request(&not_proto, 1 << 20), Err(RemoteError::Wire(_))));
        let body = encode_write_request(&series());
        assert!(matches!(decode_write_request(&body, 4), Err(RemoteError::TooLarge { .. })));
        let mut bad = series();
        bad.push(WriteSeries {
            labels: Labels::from_pairs([("a", "b")]),
            samples: vec![],
            exemplars: Vec::new(),
            histograms: Vec::new(),
        });
        let decoded = decode_write_request(&encode_write_request(&bad), 1 << 20).unwrap();
        assert_eq!(decoded.series, series(), "the valid series is kept");
        assert_eq!(skipped(decoded), (1, "series 1: no metric name (__name__ label)".into()));
    }

    /// How many series were skipped for their labels, and why the first was.
    fn skipped(decoded: DecodedV1) -> (usize, String) {
        (decoded.invalid, decoded.first_invalid.unwrap_or_default())
    }

    /// As upstream 3.x's receiver, whose decoder takes any bytes: a series with a label that is
    /// not UTF-8 is skipped (it made the whole request a 400), an exemplar with one dropped.
    #[test]
    fn labels_that_are_not_utf8_skip_their_series_not_the_request() {
        #[derive(Clone, PartialEq, Message)]
        struct RawSeries {
            #[prost(message, repeated, tag = "1")]
            labels: Vec<RawLabel>,
            #[prost(message, repeated, tag = "2")]
            samples: Vec<WireSample>,
            #[prost(message, repeated, tag = "3")]
            exemplars: Vec<RawExemplar>,
        }
        #[derive(Clone, PartialEq, Message)]
        struct RawRequest {
            #[prost(message, repeated, tag = "1")]
            timeseries: Vec<RawSeries>,
        }
        let label = |name: &[u8], value: &[u8]| RawLabel { name: name.to_vec(), value: value.to_vec() };
        let series = |value: &[u8], exemplar: &[u8]| RawSeries {
            labels: vec![label(b"__name__", b"x"), label(b"v", value)],
            samples: vec![WireSample { value: 1.0, timestamp: 1 }],
            exemplars: vec![RawExemplar { labels: vec![label(b"trace_id", exemplar)], value: 1.0, timestamp: 1 }],
        };
        let request =
            RawRequest { timeseries: vec![series(b"a", b"t1"), series(b"b\xff", b"t2"), series(b"c", b"\xc3\x28")] };
        let body = snap::raw::Encoder::new().compress_vec(&request.encode_to_vec()).unwrap();
        let decoded = decode_write_request(&body, 1 << 20).unwrap();
        let kept: Vec<(&str, usize)> = decoded.series.iter().map(|s| (s.labels.get("v"), s.exemplars.len())).collect();
        assert_eq!(kept, [("a", 1), ("c", 0)]);
        assert_eq!(skipped(decoded), (1, "series 1: a label name or value is not UTF-8".into()));
    }

    /// As upstream 3.x's receiver: a series with invalid labels is skipped and the others are
    /// kept, a label with an empty value is no label, and names need not be of the legacy set.
    #[test]
    fn series_with_invalid_labels_are_skipped_and_empty_values_dropped() {
        let ts = |pairs: &[(&str, &str)]| TimeSeries {
            labels: labels(pairs),
            samples: vec![WireSample { value: 1.0, timestamp: 1 }],
            exemplars: vec![],
            histograms: vec![],
        };
        let request = WriteRequest {
            timeseries: vec![
                ts(&[("__name__", "a")]),
                ts(&[("__name__", "b"), ("", "x")]),
                ts(&[("__name__", "c"), ("s", "")]),
                ts(&[("__name__", "d"), ("a", "1"), ("a", "2")]),
                ts(&[("__name__", "")]),
                ts(&[("__name__", "e"), ("a", "1"), ("a", "")]),
                ts(&[(&"x".repeat(1000), "y")]),
                ts(&[("__name__", "http.server.duration"), ("\u{e4}-b.c", "x")]),
            ],
        };
        let decoded = decode_write_request(&compressed(&request), 1 << 20).unwrap();
        let names: Vec<&str> = decoded.series.iter().map(|s| s.labels.metric_name()).collect();
        assert_eq!(names, ["a", "c", "http.server.duration"]);
        assert_eq!(decoded.series[2].labels.get("\u{e4}-b.c"), "x");
        assert_eq!(skipped(decoded), (5, "series 1: empty label name".into()));
        // A long name is quoted in part.
        let long = WriteRequest {
            timeseries: vec![ts(&[("__name__", "x"), (&"-".repeat(1000), "y"), (&"-".repeat(1000), "z")])],
        };
        let why = skipped(decode_write_request(&compressed(&long), 1 << 20).unwrap()).1;
        assert!(why.len() < 200 && why.ends_with("... (872 more bytes)\""), "{why}");
    }

    fn compressed(request: &WriteRequest) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(&request.encode_to_vec()).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs.iter().map(|(n, v)| Label { name: n.to_string(), value: v.to_string() }).collect()
    }

    #[test]
    fn series_without_samples_are_checked_and_dropped() {
        let empty =
            TimeSeries { labels: labels(&[("__name__", "x")]), samples: vec![], exemplars: vec![], histograms: vec![] };
        let request = WriteRequest { timeseries: vec![empty; 100_000] };
        assert_eq!(decode_write_request(&compressed(&request), 16 << 20).unwrap().series, vec![]);
        // Millions of series with nothing in them are skipped, none kept.
        let nameless = [0x0a, 0x00].repeat(4 << 20);
        let body = snap::raw::Encoder::new().compress_vec(&nameless).unwrap();
        let started = std::time::Instant::now();
        let decoded = decode_write_request(&body, 16 << 20).unwrap();
        assert!(decoded.series.is_empty() && started.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(skipped(decoded), (4 << 20, "series 0: no metric name (__name__ label)".into()));
    }

    #[test]
    fn duplicate_and_excess_labels_are_found_quickly() {
        let sample = vec![WireSample { value: 1.0, timestamp: 1 }];
        let mut many: Vec<Label> =
            (0..MAX_LABELS_PER_SERIES - 1).map(|i| Label { name: format!("l{i}"), value: "v".into() }).collect();
        many.push(Label { name: "__name__".into(), value: "x".into() });
        many.push(Label { name: "l7".into(), value: "again".into() });
        let dup = TimeSeries { labels: many.clone(), samples: sample.clone(), exemplars: vec![], histograms: vec![] };
        let too_many = WriteRequest { timeseries: vec![dup] };
        let started = std::time::Instant::now();
        let e = skipped(decode_write_request(&compressed(&too_many), 16 << 20).unwrap());
        assert_eq!(e, (1, format!("series 0: more than {MAX_LABELS_PER_SERIES} labels")));
        many.truncate(MAX_LABELS_PER_SERIES - 1);
        many.push(Label { name: "l7".into(), value: "again".into() });
        let request = WriteRequest {
            timeseries: vec![TimeSeries { labels: many, samples: sample, exemplars: vec![], histograms: vec![] }],
        };
        let e = skipped(decode_write_request(&compressed(&request), 16 << 20).unwrap());
        assert_eq!(e, (1, "series 0: duplicate label name \"l7\"".into()));
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
    }

    #[test]
    fn a_series_whose_labels_take_more_than_a_mib_is_skipped() {
        let labels = |value: String| {
            vec![Label { name: "__name__".into(), value: "x".into() }, Label { name: "long".into(), value }]
        };
        let request = |value: String| WriteRequest {
            timeseries: vec![TimeSeries {
                labels: labels(value),
                samples: vec![WireSample { value: 1.0, timestamp: 1 }],
                exemplars: vec![],
                histograms: vec![],
            }],
        };
        let fits = "v".repeat(MAX_SERIES_LABEL_BYTES - 13);
        assert_eq!(decode_write_request(&compressed(&request(fits)), 16 << 20).unwrap().series.len(), 1);
        let e = decode_write_request(&compressed(&request("v".repeat(MAX_SERIES_LABEL_BYTES))), 16 << 20);
        assert_eq!(
            skipped(e.unwrap()),
            (1, "series 0: labels take 1048589 bytes, more than the 1048576 a series may".into())
        );
    }

    #[test]
    fn truncated_and_odd_fields_are_errors_not_panics() {
        let body = encode_write_request(&series());
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        for cut in 1..raw.len() {
            let part = snap::raw::Encoder::new().compress_vec(&raw[..cut]).unwrap();
            assert!(decode_write_request(&part, 1 << 20).is_err(), "cut at {cut}");
        }
        // Unknown fields of every wire type are skipped.
        let mut odd = raw.clone();
        odd.extend_from_slice(&[0x28, 0x01, 0x31, 1, 2, 3, 4, 5, 6, 7, 8, 0x3d, 1, 2, 3, 4]);
        let body = snap::raw::Encoder::new().compress_vec(&odd).unwrap();
        assert_eq!(decode_write_request(&body, 1 << 20).unwrap().series, series());
        let group = snap::raw::Encoder::new().compress_vec(&[0x0b]).unwrap();
        assert!(decode_write_request(&group, 1 << 20).is_err());
    }
}
