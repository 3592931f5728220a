//! Remote write 2.0: a snappy-compressed `io.prometheus.write.v2.Request` (a symbols table, and
//! series whose labels, metadata and exemplars name strings by their index in it).
//!
//! As upstream's receiver, a 2.0 request may be written in part: a series that cannot be
//! stored (labels out of the symbols table, invalid or duplicate labels, labels that are not
//! UTF-8, no samples or histograms) is reported and the others are written, and so is each
//! histogram upstream would refuse (see [`super::histogram`]), the series' other samples kept.
//! A body that is not a well-formed message at all (bad snappy, truncated fields, refs that are
//! not `uint32`s), or whose histograms take more memory than a request may, is refused whole,
//! before anything is stored. Exemplars are stored, up to one per sample or
//! histogram of their series (which bounds what a hostile request of empty ones costs); one
//! upstream would refuse (invalid labels, too long) is dropped and the series kept, as
//! upstream. Metadata is checked and not stored; created timestamps are ignored, as upstream
//! does without `--enable-feature=created-timestamp-zero-ingestion`.

use prost::Message;

use super::histogram::{Histogram, HistogramBudget};
use super::{
    check_label_name, check_label_set, checked_exemplar, decompress, pair_bytes, Fields, Payload, RemoteError,
    WriteSeries, MAX_EXEMPLAR_BYTES, MAX_LABELS_PER_SERIES,
};
use crate::excerpt::excerpt;
use crate::histogram::HistogramError;
use crate::labels::Labels;
use crate::value::{HistogramSample, Sample};

/// The protobuf messages a remote-write receiver may accept, named as in the `Content-Type`'s
/// `proto` parameter and in `--web.remote-write-receiver.accepted-protobuf-messages`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteMessage {
    V1,
    V2,
}

impl WriteMessage {
    pub const ALL: [WriteMessage; 2] = [WriteMessage::V1, WriteMessage::V2];

    pub fn proto_name(self) -> &'static str {
        match self {
            WriteMessage::V1 => "prometheus.WriteRequest",
            WriteMessage::V2 => "io.prometheus.write.v2.Request",
        }
    }

    pub fn from_proto_name(name: &str) -> Option<WriteMessage> {
        WriteMessage::ALL.into_iter().find(|m| m.proto_name() == name)
    }
}

/// The messages named in a list, for error messages: `[prometheus.WriteRequest ...]`.
pub fn message_list(messages: &[WriteMessage]) -> String {
    let names: Vec<&str> = messages.iter().map(|m| m.proto_name()).collect();
    format!("[{}]", names.join(" "))
}

/// At most this many series errors are kept to report; the rest are only counted.
const MAX_REPORTED_ERRORS: usize = 10;

/// A decoded 2.0 request: the series to store, and why the others cannot be.
#[derive(Debug, Default, PartialEq)]
pub struct DecodedV2 {
    pub series: Vec<WriteSeries>,
    /// The first [`MAX_REPORTED_ERRORS`] series errors, in upstream's words.
    pub errors: Vec<String>,
    /// How many series errors there were in all.
    pub error_count: usize,
}

impl DecodedV2 {
    /// Reports a series that cannot be stored; the rest of the request goes on (`Ok`).
    fn reject(&mut self, message: impl FnOnce() -> String) -> Result<(), RemoteError> {
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(message());
        }
        self.error_count += 1;
        Ok(())
    }

    /// The errors as one response body, one a line.
    pub fn error_text(&self) -> String {
        let mut text = self.errors.join("\n");
        if self.error_count > self.errors.len() {
            text.push_str(&format!("\n(and {} more)", self.error_count - self.errors.len()));
        }
        text
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct SampleV2 {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
    /// `start_timestamp` (2.0's created timestamp): decoded, not used.
    #[prost(int64, tag = "3")]
    pub start_timestamp: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct ExemplarV2 {
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct MetadataV2 {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(uint32, tag = "3")]
    pub help_ref: u32,
    #[prost(uint32, tag = "4")]
    pub unit_ref: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct TimeSeriesV2 {
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<SampleV2>,
    #[prost(message, repeated, tag = "3")]
    pub histograms: Vec<Histogram>,
    #[prost(message, repeated, tag = "4")]
    pub exemplars: Vec<ExemplarV2>,
    #[prost(message, optional, tag = "5")]
    pub metadata: Option<MetadataV2>,
}

/// The whole message, for senders (tests, load generation); the receiver walks it field by
/// field instead.
#[derive(Clone, PartialEq, Message)]
pub struct RequestV2 {
    #[prost(string, repeated, tag = "4")]
    pub symbols: Vec<String>,
    #[prost(message, repeated, tag = "5")]
    pub timeseries: Vec<TimeSeriesV2>,
}

impl RequestV2 {
    /// The request snappy-compressed, as it is sent.
    pub fn encode_compressed(&self) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(&self.encode_to_vec()).expect("snappy can compress any input")
    }
}

/// One series as it was sent, before its references are resolved.
#[derive(Default)]
struct RawSeries {
    labels_refs: Vec<u32>,
    /// More label refs than any valid series has: the rest were not kept.
    too_many_labels: bool,
    samples: Vec<Sample>,
    histograms: Vec<HistogramSample>,
    /// Histograms upstream would refuse: how many, and why, for the first
    /// [`MAX_REPORTED_ERRORS`] (a hostile request of millions of them keeps no more).
    invalid_histograms: usize,
    histogram_errors: Vec<HistogramError>,
    /// Every exemplar's label refs are inside the symbols table.
    exemplar_refs_ok: bool,
    /// Exemplars with refs inside the table, up to one per sample or histogram read before
    /// them.
    exemplars: Vec<ExemplarV2>,
    metadata_refs: Option<(u32, u32)>,
}

impl RawSeries {
    /// The float and histogram samples sent, valid or not.
    fn sample_count(&self) -> usize {
        self.samples.len() + self.histograms.len() + self.invalid_histograms
    }
}

/// Decodes a snappy-compressed 2.0 request, refusing bodies that decompress to more than
/// `max_decoded` bytes and bodies that are not well-formed messages; series that are well-formed
/// but cannot be stored are reported in [`DecodedV2::errors`].
pub fn decode_write_request_v2(body: &[u8], max_decoded: usize) -> Result<DecodedV2, RemoteError> {
    let raw = decompress(body, max_decoded)?;
    // Symbols may follow the series on the wire: read them first. As upstream's decoder, this
    // one takes any bytes; the labels of each series are checked for UTF-8.
    let mut symbols: Vec<&[u8]> = Vec::new();
    for field in Fields::new(&raw) {
        if let (4, payload) = field? {
            let Payload::Bytes(bytes) = payload else { return Err(RemoteError::Malformed("symbol is not a string")) };
            symbols.push(bytes);
        }
    }
    let mut out = DecodedV2::default();
    // Series refer to symbols, so a few bytes may name a long symbol many times: what the
    // labels take once resolved is bounded by what any request may decode to.
    let mut label_bytes = max_decoded;
    let mut histogram_budget = HistogramBudget::new(max_decoded);
    for field in Fields::new(&raw) {
        if let (5, payload) = field? {
            let Payload::Bytes(bytes) = payload else {
                return Err(RemoteError::Malformed("timeseries is not a message"));
            };
            let series = decode_raw_series(bytes, symbols.len(), &mut histogram_budget)?;
            resolve_series(series, &symbols, &mut label_bytes, &mut out)?;
        }
    }
    Ok(out)
}

/// One `TimeSeries` as sent; errors only for what is not a well-formed message, and for
/// histograms past the request's budget.
fn decode_raw_series(
    raw: &[u8],
    symbol_count: usize,
    histogram_budget: &mut HistogramBudget,
) -> Result<RawSeries, RemoteError> {
    let mut series = RawSeries { exemplar_refs_ok: true, ..Default::default() };
    let push_ref = |series: &mut RawSeries, value: u64| -> Result<(), RemoteError> {
        let value = u32::try_from(value).map_err(|_| RemoteError::Malformed("label ref is not a uint32"))?;
        if series.labels_refs.len() < 2 * MAX_LABELS_PER_SERIES + 1 {
            series.labels_refs.push(value);
        } else {
            series.too_many_labels = true;
        }
        Ok(())
    };
    for field in Fields::new(raw) {
        match field? {
            (1, Payload::Varint(value)) => push_ref(&mut series, value)?,
            (1, Payload::Bytes(mut packed)) => {
                while !packed.is_empty() {
                    push_ref(&mut series, prost::encoding::decode_varint(&mut packed)?)?;
                }
            }
            (2, Payload::Bytes(bytes)) => {
                let s = SampleV2::decode(bytes)?;
                series.samples.push(Sample { t: s.timestamp, v: s.value });
            }
            (3, Payload::Bytes(bytes)) => match histogram_budget.decode(bytes)? {
                Ok(h) => series.histograms.push(h),
                Err(e) => {
                    series.invalid_histograms += 1;
                    if series.histogram_errors.len() < MAX_REPORTED_ERRORS {
                        series.histogram_errors.push(e);
                    }
                }
            },
            // Too large to be valid: not decoded (see `MAX_EXEMPLAR_BYTES`).
            (4, Payload::Bytes(bytes)) if bytes.len() > MAX_EXEMPLAR_BYTES => {}
            (4, Payload::Bytes(bytes)) => {
                let e = ExemplarV2::decode(bytes)?;
                let refs_ok = e.labels_refs.iter().all(|&r| (r as usize) < symbol_count);
                series.exemplar_refs_ok &= refs_ok;
                if refs_ok && series.exemplars.len() < series.sample_count() {
                    series.exemplars.push(e);
                }
            }
            (5, Payload::Bytes(bytes)) => {
                let m = MetadataV2::decode(bytes)?;
                series.metadata_refs = Some((m.help_ref, m.unit_ref));
            }
            (1..=5, _) => return Err(RemoteError::Malformed("series field of the wrong wire type")),
            _ => {}
        }
    }
    Ok(series)
}

/// Resolves a series' labels and checks it as upstream does, in upstream's order: to store,
/// or an error. Fails the whole request once the labels resolved pass `label_bytes` left.
fn resolve_series(
    series: RawSeries,
    symbols: &[&[u8]],
    label_bytes: &mut usize,
    out: &mut DecodedV2,
) -> Result<(), RemoteError> {
    let refs = &series.labels_refs;
    let symbol = |r: u32| symbols.get(r as usize).copied();
    if series.too_many_labels || refs.len() > 2 * MAX_LABELS_PER_SERIES {
        return out.reject(|| format!("parsing labels for series: more than {MAX_LABELS_PER_SERIES} labels"));
    }
    if !refs.len().is_multiple_of(2) {
        return out.reject(|| format!("parsing labels for series {refs:?}: invalid labelRefs length {}", refs.len()));
    }
    let mut raw_pairs: Vec<(&[u8], &[u8])> = Vec::with_capacity(refs.len() / 2);
    for pair in refs.chunks_exact(2) {
        match (symbol(pair[0]), symbol(pair[1])) {
            (Some(name), Some(value)) => raw_pairs.push((name, value)),
            _ => {
                return out.reject(|| {
                    format!(
                        "parsing labels for series {refs:?}: labelRefs {} (name) = {} (value) outside of symbols table (size {})",
                        pair[0],
                        pair[1],
                        symbols.len()
                    )
                })
            }
        }
    }
    if let Some((help, unit)) = series.metadata_refs {
        for (what, r) in [("unit_ref", unit), ("help_ref", help)] {
            if symbol(r).is_none() {
                return out.reject(|| {
                    format!(
                        "parsing metadata for series {refs:?}: metadata {what} {r} outside of symbols table (size {})",
                        symbols.len()
                    )
                });
            }
        }
    }
    *label_bytes = label_bytes.checked_sub(pair_bytes(&raw_pairs)).ok_or(RemoteError::LabelsTooLarge)?;
    // Names and values quoted at most 128 bytes long: they may be megabytes.
    let describe = |pairs: &[(&str, &str)]| {
        let quoted = pairs.iter().map(|(n, v)| format!("{}={:?}", excerpt(n, 128), excerpt(v, 128)));
        format!("{{{}}}", quoted.collect::<Vec<_>>().join(", "))
    };
    fn text(bytes: &[u8]) -> Option<&str> {
        std::str::from_utf8(bytes).ok()
    }
    let Some(mut pairs) = raw_pairs.iter().map(|&(n, v)| Some((text(n)?, text(v)?))).collect::<Option<Vec<_>>>() else {
        return out.reject(|| {
            let escaped = |b: &[u8]| b[..b.len().min(128)].escape_ascii().to_string();
            let quoted = raw_pairs.iter().map(|(n, v)| format!("{}=\"{}\"", escaped(n), escaped(v)));
            let labels = quoted.collect::<Vec<_>>().join(", ");
            format!("invalid metric name or labels, got {{{labels}}}: a label name or value is not UTF-8")
        });
    };
    let checked =
        pairs.iter().try_for_each(|(n, _)| check_label_name(n)).and_then(|()| check_label_set(pairs.iter().copied()));
    if let Err(why) = checked {
        return out.reject(|| format!("invalid metric name or labels, got {}: {why}", describe(&pairs)));
    }
    // A label with an empty value is no label, as upstream's head drops it.
    pairs.retain(|(_, v)| !v.is_empty());
    let described = || describe(&pairs);
    if series.sample_count() == 0 {
        return out
            .reject(|| format!("TimeSeries must contain at least one sample or histogram for series {}", described()));
    }
    for e in &series.histogram_errors {
        out.reject(|| format!("{e} for series {}", described()))?;
    }
    // The errors not kept are counted: the report was full with this series' first ones.
    out.error_count += series.invalid_histograms - series.histogram_errors.len();
    if !series.exemplar_refs_ok {
        out.reject(|| format!("parsing exemplar for series {}: labelRefs outside of symbols table", described()))?;
    }
    if !series.samples.is_empty() || !series.histograms.is_empty() {
        let labels = Labels::from_pairs(pairs.iter().map(|&(n, v)| (n.to_string(), v.to_string())));
        let exemplars = series
            .exemplars
            .iter()
            .filter_map(|e| {
                // An exemplar with a label that is not UTF-8 is dropped with the invalid ones.
                let refs: Vec<&str> = e.labels_refs.iter().filter_map(|&r| symbol(r).and_then(text)).collect();
                let whole = refs.len() == e.labels_refs.len() && refs.len().is_multiple_of(2);
                checked_exemplar(refs.chunks_exact(2).map(|p| (p[0], p[1])), e.value, e.timestamp).filter(|_| whole)
            })
            .collect();
        out.series.push(WriteSeries { labels, samples: series.samples, exemplars, histograms: series.histograms });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A series as label pairs and samples (ms, value).
    type SeriesSpec<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

    /// A request of `series`, with a symbols table built as a sender builds it (the empty
    /// string first).
    fn request(series: &[SeriesSpec]) -> RequestV2 {
        let mut symbols = vec![String::new()];
        let mut refs = |s: &str| -> u32 {
            match symbols.iter().position(|x| x == s) {
                Some(i) => i as u32,
                None => {
                    symbols.push(s.to_string());
                    (symbols.len() - 1) as u32
                }
            }
        };
        let timeseries = series
            .iter()
            .map(|(labels, samples)| TimeSeriesV2 {
                labels_refs: labels.iter().flat_map(|(n, v)| [refs(n), refs(v)]).collect(),
                samples: samples
                    .iter()
                    .map(|&(t, v)| SampleV2 { value: v, timestamp: t, start_timestamp: 0 })
                    .collect(),
                ..Default::default()
            })
            .collect();
        RequestV2 { symbols, timeseries }
    }

    #[test]
    fn symbols_resolve_to_labels() {
        let r = request(&[
            (&[("__name__", "up"), ("job", "a")], &[(1, 1.0), (2, 0.0)]),
            (&[("__name__", "up"), ("job", "b")], &[(1, 1.0)]),
        ]);
        let d = decode_write_request_v2(&r.encode_compressed(), 1 << 20).unwrap();
        assert_eq!(d.error_count, 0, "{:?}", d.errors);
        assert_eq!(d.series.len(), 2);
        assert_eq!(d.series[1].labels, Labels::from_pairs([("__name__", "up"), ("job", "b")]));
        assert_eq!(d.series[0].samples, vec![Sample { t: 1, v: 1.0 }, Sample { t: 2, v: 0.0 }]);
    }

    #[test]
    fn bad_series_are_reported_and_the_others_kept() {
        let mut r = request(&[(&[("__name__", "ok")], &[(1, 1.0)]), (&[("__name__", "x")], &[(1, 1.0)])]);
        r.timeseries[1].labels_refs = vec![0, 99];
        let mut odd = r.timeseries[0].clone();
        odd.labels_refs.push(1);
        r.timeseries.push(odd);
        let mut no_samples = r.timeseries[0].clone();
        no_samples.samples.clear();
        r.timeseries.push(no_samples);
        let mut histograms = r.timeseries[0].clone();
        histograms.histograms = vec![Histogram { schema: 60, ..Default::default() }; 3];
        r.timeseries.push(histograms);
        let mut metadata = r.timeseries[0].clone();
        metadata.metadata = Some(MetadataV2 { r#type: 1, help_ref: 7, unit_ref: 0 });
        r.timeseries.push(metadata);
        let d = decode_write_request_v2(&r.encode_compressed(), 1 << 20).unwrap();
        assert_eq!(d.error_count, 7, "{:?}", d.errors);
        assert!(d.errors[0].contains("outside of symbols table (size 4)"), "{}", d.errors[0]);
        assert!(d.errors[1].contains("invalid labelRefs length 3"), "{}", d.errors[1]);
        assert!(d.errors[2].contains("at least one sample"), "{}", d.errors[2]);
        assert_eq!(
            d.errors[3..6],
            ["histogram has an invalid schema, which must be between -4 and 8 for exponential buckets, or -53 for custom buckets, got schema 60 for series {__name__=\"ok\"}"; 3]
        );
        assert!(d.errors[6].contains("metadata help_ref 7"), "{}", d.errors[6]);
        // The first series, and the float samples of the one with histograms.
        assert_eq!(d.series.len(), 2);
    }

    /// Labels are checked with their empty values, as upstream checks them, then those are
    /// dropped: a name with an empty value is no name, a name twice is refused either way.
    #[test]
    fn empty_label_values_are_no_labels() {
        let r = request(&[
            (&[("__name__", "kept"), ("s", "")], &[(1, 1.0)]),
            (&[("__name__", "")], &[(1, 1.0)]),
            (&[("__name__", "twice"), ("a", "1"), ("a", "")], &[(1, 1.0)]),
        ]);
        let d = decode_write_request_v2(&r.encode_compressed(), 1 << 20).unwrap();
        assert_eq!(d.series.len(), 1);
        assert_eq!(d.series[0].labels, Labels::from_pairs([("__name__", "kept")]));
        assert_eq!(d.error_count, 2, "{:?}", d.errors);
        assert!(d.errors[0].contains("no metric name"), "{}", d.errors[0]);
        assert!(d.errors[1].contains("duplicate label name \"a\""), "{}", d.errors[1]);
    }

    /// A series of histograms alone is kept; an invalid histogram is reported and its series'
    /// other histograms kept; exemplars may come one per sample or histogram.
    #[test]
    fn histograms_are_kept_and_invalid_ones_reported() {
        let mut r = request(&[(&[("__name__", "h")], &[])]);
        let good = Histogram::from_float(5, &crate::histogram::parse_histogram("{{count:2 buckets:[2]}}").unwrap());
        let mismatched = Histogram { positive_deltas: vec![1, 1], ..good.clone() };
        r.timeseries[0].histograms = vec![good.clone(), mismatched, good];
        r.timeseries[0].exemplars = vec![ExemplarV2 { labels_refs: vec![], value: 1.0, timestamp: 5 }; 4];
        let d = decode_write_request_v2(&r.encode_compressed(), 1 << 20).unwrap();
        assert_eq!(
            d.errors,
            ["positive side: spans need 1 buckets, have 2 buckets: histogram spans specify different number of buckets than provided for series {__name__=\"h\"}"]
        );
        assert_eq!(d.series.len(), 1);
        let s = &d.series[0];
        assert_eq!((s.samples.len(), s.histograms.len(), s.exemplars.len()), (0, 2, 3));
        assert_eq!((s.histograms[1].t, s.histograms[1].h.count), (5, 2.0));
    }

    /// Many invalid histograms keep [`MAX_REPORTED_ERRORS`] errors and count the rest.
    #[test]
    fn many_invalid_histograms_cost_little() {
        let mut r = request(&[(&[("__name__", "h")], &[])]);
        r.timeseries[0].histograms = vec![Histogram { schema: 99, ..Default::default() }; 1 << 18];
        let started = std::time::Instant::now();
        let d = decode_write_request_v2(&r.encode_compressed(), 16 << 20).unwrap();
        assert_eq!((d.series.len(), d.errors.len(), d.error_count), (0, MAX_REPORTED_ERRORS, 1 << 18));
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
        // Valid ones past the request's memory budget refuse it whole.
        r.timeseries[0].histograms = vec![Histogram::default(); 1 << 20];
        let e = decode_write_request_v2(&r.encode_compressed(), 4 << 20).unwrap_err();
        assert!(matches!(e, RemoteError::HistogramsTooLarge { .. }), "{e}");
    }

    /// As upstream, a symbol may be any bytes: a series whose labels are not UTF-8 is refused
    /// and the others written; an exemplar's, dropped with its series kept.
    #[test]
    fn labels_that_are_not_utf8_refuse_their_series_only() {
        let mut r = request(&[
            (&[("__name__", "ok")], &[(1, 1.0)]),
            (&[("__name__", "bad"), ("job", "PLACEHOLDER\u{1}")], &[(1, 1.0)]),
        ]);
        let symbol = |name: &str| r.symbols.iter().position(|s| s == name).unwrap() as u32;
        let labels_refs = vec![symbol("job"), symbol("PLACEHOLDER\u{1}")];
        r.timeseries[0].exemplars = vec![ExemplarV2 { labels_refs, value: 1.0, timestamp: 1 }];
        let mut raw = r.encode_to_vec();
        let at = raw.windows(12).position(|w| w == b"PLACEHOLDER\x01").unwrap();
        raw[at + 11] = 0xff;
        let d = decode_write_request_v2(&snap::raw::Encoder::new().compress_vec(&raw).unwrap(), 1 << 20).unwrap();
        assert_eq!(d.error_count, 1, "{:?}", d.errors);
        assert!(
            d.errors[0].contains(r#"job="PLACEHOLDER\xff"}: a label name or value is not UTF-8"#),
            "{}",
            d.errors[0]
        );
        assert_eq!(d.series.len(), 1);
        assert_eq!(d.series[0].labels, Labels::from_pairs([("__name__", "ok")]));
        assert!(d.series[0].exemplars.is_empty());
    }

    #[test]
    fn malformed_bodies_are_refused_whole() {
        let r = request(&[(&[("__name__", "ok")], &[(1, 1.0)])]);
        let raw = r.encode_to_vec();
        for cut in 1..raw.len() {
            let body = snap::raw::Encoder::new().compress_vec(&raw[..cut]).unwrap();
            let _ = decode_write_request_v2(&body, 1 << 20);
        }
        let huge_ref =
            snap::raw::Encoder::new().compress_vec(&[0x2a, 7, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).unwrap();
        assert!(decode_write_request_v2(&huge_ref, 1 << 20).is_err());
        assert!(matches!(decode_write_request_v2(&r.encode_compressed(), 4), Err(RemoteError::TooLarge { .. })));
    }

    #[test]
    fn a_long_symbol_named_many_times_is_bounded_by_the_decoded_size() {
        let long = "v".repeat(1000);
        let names: Vec<String> = (0..20).map(|i| format!("l{i}")).collect();
        let mut pairs = vec![("__name__", "x")];
        pairs.extend(names.iter().map(|n| (n.as_str(), long.as_str())));
        let body = request(&[(&pairs, &[(1, 1.0)])]).encode_compressed();
        // About 1.2 KB decoded, 20 KB of labels once resolved.
        assert!(matches!(decode_write_request_v2(&body, 4096), Err(RemoteError::LabelsTooLarge)));
        assert_eq!(decode_write_request_v2(&body, 32 << 10).unwrap().series.len(), 1);
        // An exemplar's labels naming it are dropped uncopied, the sample kept.
        let mut r = request(&[(&[("__name__", "x")], &[(1, 1.0)])]);
        let long_ref = r.symbols.len() as u32;
        r.symbols.push(long);
        r.timeseries[0].exemplars =
            vec![ExemplarV2 { labels_refs: vec![long_ref, long_ref], value: 1.0, timestamp: 1 }];
        let d = decode_write_request_v2(&r.encode_compressed(), 32 << 10).unwrap();
        assert_eq!((d.series.len(), d.series[0].exemplars.len()), (1, 0));
    }

    #[test]
    fn many_empty_exemplars_and_errors_cost_little() {
        let mut r = request(&[(&[("__name__", "ok")], &[(1, 1.0)])]);
        r.timeseries[0].exemplars = vec![ExemplarV2::default(); 1 << 20];
        let bad = TimeSeriesV2 { labels_refs: vec![5], ..Default::default() };
        r.timeseries.extend(std::iter::repeat_n(bad, 100_000));
        let d = decode_write_request_v2(&r.encode_compressed(), 32 << 20).unwrap();
        assert_eq!(d.series.len(), 1);
        assert_eq!((d.errors.len(), d.error_count), (MAX_REPORTED_ERRORS, 100_000));
        assert!(d.error_text().ends_with("(and 99990 more)"));
    }
}
