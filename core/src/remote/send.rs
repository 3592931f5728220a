//! Building remote-write requests for the sender: a series' labels are encoded once, when it is
//! first seen, as the `labels` fields of a 1.0 `TimeSeries` ([`encode_labels`]); each request
//! then only appends samples, native histograms and exemplars to them ([`encode_v1`]), or
//! builds a 2.0 request's symbols table from them ([`encode_v2`]). Histograms are encoded as
//! [`Histogram::from_float`] says (integer histograms when they are exactly ones). The encoded labels are also the compact form the sender keeps
//! per series: a few hundred bytes where a `Labels` takes a few allocations per label.

use std::collections::HashMap;

use prost::encoding::{encode_varint, encoded_len_varint};
use prost::Message;

use super::histogram::Histogram;
use crate::labels::Labels;
use crate::value::HistogramSample;

/// Field 1 (length-delimited) of a message: a `TimeSeries`' labels, a `Label`'s name, a
/// `WriteRequest`'s series.
const FIELD_1_BYTES: u8 = 0x0a;
/// Field 2 (length-delimited): a `Label`'s value, a `TimeSeries`' samples.
const FIELD_2_BYTES: u8 = 0x12;
/// A `Sample`'s value (field 1, 64-bit) and timestamp (field 2, varint).
const SAMPLE_VALUE: u8 = 0x09;
const SAMPLE_TIMESTAMP: u8 = 0x10;
/// An `Exemplar`'s value (field 2, 64-bit) and timestamp (field 3, varint).
const EXEMPLAR_VALUE: u8 = 0x11;
const EXEMPLAR_TIMESTAMP: u8 = 0x18;
/// Field 3 (length-delimited): a 1.0 `TimeSeries`' exemplars, a 2.0 one's histograms.
const FIELD_3_BYTES: u8 = 0x1a;
/// Field 4 (length-delimited): a 2.0 `TimeSeries`' exemplars, a 1.0 one's histograms.
const FIELD_4_BYTES: u8 = 0x22;
/// A 2.0 `Request`'s symbols (field 4) and series (field 5), length-delimited.
const V2_SYMBOLS: u8 = 0x22;
const V2_TIMESERIES: u8 = 0x2a;

fn put_bytes_field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// `labels` as the repeated `labels` field of a 1.0 `TimeSeries`.
pub fn encode_labels(labels: &Labels) -> Vec<u8> {
    let mut out = Vec::new();
    let mut label = Vec::new();
    for l in labels.iter() {
        label.clear();
        put_bytes_field(&mut label, FIELD_1_BYTES, l.name.as_bytes());
        put_bytes_field(&mut label, FIELD_2_BYTES, l.value.as_bytes());
        put_bytes_field(&mut out, FIELD_1_BYTES, &label);
    }
    out
}

/// Reads a length-delimited field at the start of `buf`: its tag, bytes and the rest.
fn bytes_field(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let mut len = 0u64;
    let mut shift = 0;
    let mut rest = rest;
    loop {
        let (&b, r) = rest.split_first()?;
        rest = r;
        len |= u64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    let len = usize::try_from(len).ok().filter(|&l| l <= rest.len())?;
    Some((tag, &rest[..len], &rest[len..]))
}

/// The name and value pairs of labels encoded by [`encode_labels`].
pub fn decode_labels(mut encoded: &[u8]) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    while let Some((_, label, rest)) = bytes_field(encoded) {
        encoded = rest;
        let Some((_, name, after)) = bytes_field(label) else { break };
        let Some((_, value, _)) = bytes_field(after) else { break };
        if let (Ok(n), Ok(v)) = (std::str::from_utf8(name), std::str::from_utf8(value)) {
            out.push((n, v));
        }
    }
    out
}

/// One series of a request: its labels as [`encode_labels`] made them, its samples `(t, v)` and
/// its native-histogram samples, each in time order, and exemplars.
#[derive(Debug, Clone, Copy)]
pub struct OutSeries<'a> {
    pub labels: &'a [u8],
    pub samples: &'a [(i64, f64)],
    pub histograms: &'a [HistogramSample],
    pub exemplars: &'a [OutExemplar],
}

/// An exemplar to send: its labels as [`encode_labels`] made them.
#[derive(Debug, Clone, PartialEq)]
pub struct OutExemplar {
    pub labels: Vec<u8>,
    pub value: f64,
    pub t: i64,
}

/// A sample's or an exemplar's value and timestamp fields.
fn put_value_and_time(out: &mut Vec<u8>, value_tag: u8, v: f64, time_tag: u8, t: i64) {
    out.push(value_tag);
    out.extend_from_slice(&v.to_bits().to_le_bytes());
    out.push(time_tag);
    encode_varint(t as u64, out);
}

/// `histograms` as `tag` fields of a `TimeSeries`, appended to `out`.
fn put_histograms(out: &mut Vec<u8>, tag: u8, histograms: &[HistogramSample]) {
    for h in histograms {
        put_bytes_field(out, tag, &Histogram::from_float(h.t, &h.h).encode_to_vec());
    }
}

/// A snappy-compressed 1.0 `WriteRequest` of `series`. A series' histograms come before its
/// exemplars, as a receiver that keeps one exemplar per sample read before it wants them.
pub fn encode_v1(series: &[OutSeries<'_>]) -> Vec<u8> {
    let sample_len = 1 + 1 + 8 + 1 + 10; // tag, length, value, tag, at most a 10-byte varint
    let mut out = Vec::with_capacity(series.iter().map(|s| s.labels.len() + 8 + s.samples.len() * sample_len).sum());
    let (mut sample, mut exemplar, mut histograms) = (Vec::with_capacity(20), Vec::new(), Vec::new());
    for s in series {
        histograms.clear();
        put_histograms(&mut histograms, FIELD_4_BYTES, s.histograms);
        let samples_len: usize = s
            .samples
            .iter()
            .map(|&(t, _)| {
                let inner = 1 + 8 + 1 + encoded_len_varint(t as u64);
                1 + encoded_len_varint(inner as u64) + inner
            })
            .sum();
        let exemplars_len: usize = s
            .exemplars
            .iter()
            .map(|e| {
                let inner = e.labels.len() + 1 + 8 + 1 + encoded_len_varint(e.t as u64);
                1 + encoded_len_varint(inner as u64) + inner
            })
            .sum();
        out.push(FIELD_1_BYTES);
        encode_varint((s.labels.len() + samples_len + histograms.len() + exemplars_len) as u64, &mut out);
        out.extend_from_slice(s.labels);
        for &(t, v) in s.samples {
            sample.clear();
            put_value_and_time(&mut sample, SAMPLE_VALUE, v, SAMPLE_TIMESTAMP, t);
            put_bytes_field(&mut out, FIELD_2_BYTES, &sample);
        }
        out.extend_from_slice(&histograms);
        for e in s.exemplars {
            // An `Exemplar`'s labels are field 1, as a `TimeSeries`' are.
            exemplar.clear();
            exemplar.extend_from_slice(&e.labels);
            put_value_and_time(&mut exemplar, EXEMPLAR_VALUE, e.value, EXEMPLAR_TIMESTAMP, e.t);
            put_bytes_field(&mut out, FIELD_3_BYTES, &exemplar);
        }
    }
    snap::raw::Encoder::new().compress_vec(&out).expect("snappy can compress any input")
}

/// A snappy-compressed 2.0 `Request` of `series` (symbols table first entry `""`, as the
/// protocol requires), written field by field like [`encode_v1`]: the symbols borrow the
/// encoded labels' strings. A series without samples or histograms is left out: 2.0 receivers
/// refuse a series of exemplars alone.
pub fn encode_v2<'a>(series: &[OutSeries<'a>]) -> Vec<u8> {
    let mut symbols: Vec<&str> = vec![""];
    let mut index: HashMap<&str, u32> = HashMap::from([("", 0)]);
    let mut timeseries = Vec::with_capacity(series.len() * 64);
    let (mut one, mut refs, mut sample) = (Vec::new(), Vec::new(), Vec::with_capacity(20));
    // Encoded labels as packed symbol refs, new strings added to the table.
    let mut symbolize = |labels: &'a [u8], refs: &mut Vec<u8>| {
        refs.clear();
        for (name, value) in decode_labels(labels) {
            for s in [name, value] {
                let next = symbols.len() as u32;
                let i = *index.entry(s).or_insert(next);
                if i == next {
                    symbols.push(s);
                }
                encode_varint(u64::from(i), refs);
            }
        }
    };
    for s in series.iter().filter(|s| !s.samples.is_empty() || !s.histograms.is_empty()) {
        symbolize(s.labels, &mut refs);
        one.clear();
        put_bytes_field(&mut one, FIELD_1_BYTES, &refs);
        for &(t, v) in s.samples {
            sample.clear();
            put_value_and_time(&mut sample, SAMPLE_VALUE, v, SAMPLE_TIMESTAMP, t);
            put_bytes_field(&mut one, FIELD_2_BYTES, &sample);
        }
        put_histograms(&mut one, FIELD_3_BYTES, s.histograms);
        for e in s.exemplars {
            symbolize(&e.labels, &mut refs);
            sample.clear();
            put_bytes_field(&mut sample, FIELD_1_BYTES, &refs);
            put_value_and_time(&mut sample, EXEMPLAR_VALUE, e.value, EXEMPLAR_TIMESTAMP, e.t);
            put_bytes_field(&mut one, FIELD_4_BYTES, &sample);
        }
        put_bytes_field(&mut timeseries, V2_TIMESERIES, &one);
    }
    let mut out = Vec::with_capacity(timeseries.len() + symbols.iter().map(|s| s.len() + 2).sum::<usize>());
    for s in symbols {
        put_bytes_field(&mut out, V2_SYMBOLS, s.as_bytes());
    }
    out.extend_from_slice(&timeseries);
    snap::raw::Encoder::new().compress_vec(&out).expect("snappy can compress any input")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::histogram::tests::kinds;
    use crate::remote::v2::decode_write_request_v2;
    use crate::remote::{decode_write_request, WriteSeries};
    use crate::value::{stale_nan, Exemplar, Sample};

    fn series() -> Vec<WriteSeries> {
        let histograms: Vec<HistogramSample> = kinds()
            .into_iter()
            .enumerate()
            .map(|(i, h)| HistogramSample { t: 1_000 * i as i64, h: h.into() })
            .collect();
        vec![
            WriteSeries {
                labels: Labels::from_pairs([("__name__", "up"), ("instance", "a:9100"), ("job", "node")]),
                samples: vec![Sample { t: 1_700_000_000_000, v: 1.0 }, Sample { t: 1_700_000_015_000, v: stale_nan() }],
                exemplars: vec![Exemplar {
                    labels: Labels::from_pairs([("trace_id", "abc"), ("span_id", "ß")]),
                    value: 0.25,
                    t: 1_700_000_000_000,
                    has_ts: true,
                }],
                histograms: histograms[..2].to_vec(),
            },
            WriteSeries {
                labels: Labels::from_pairs([("__name__", "x"), ("path", "ß".repeat(200).as_str())]),
                samples: vec![Sample { t: -5, v: f64::NEG_INFINITY }],
                exemplars: Vec::new(),
                histograms: Vec::new(),
            },
            // Histograms alone, and an exemplar of one of them.
            WriteSeries {
                labels: Labels::from_pairs([("__name__", "latency")]),
                samples: Vec::new(),
                exemplars: vec![Exemplar {
                    labels: Labels::from_pairs([("trace_id", "def")]),
                    value: 0.5,
                    t: 2_000,
                    has_ts: true,
                }],
                histograms,
            },
        ]
    }

    /// Each series' encoded labels, samples and exemplars.
    type Encoded = Vec<(Vec<u8>, Vec<(i64, f64)>, Vec<OutExemplar>)>;

    fn encoded(series: &[WriteSeries]) -> Encoded {
        series
            .iter()
            .map(|s| {
                let exemplars = s
                    .exemplars
                    .iter()
                    .map(|e| OutExemplar { labels: encode_labels(&e.labels), value: e.value, t: e.t })
                    .collect();
                (encode_labels(&s.labels), s.samples.iter().map(|x| (x.t, x.v)).collect(), exemplars)
            })
            .collect()
    }

    fn bits(series: &[WriteSeries]) -> String {
        format!(
            "{:?}",
            series
                .iter()
                .map(|s| (
                    &s.labels,
                    s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect::<Vec<_>>(),
                    s.exemplars.iter().map(|e| (&e.labels, e.t, e.value.to_bits())).collect::<Vec<_>>(),
                    &s.histograms
                ))
                .collect::<Vec<_>>()
        )
    }

    #[test]
    fn requests_decode_as_the_receiver_decodes_them() {
        let want = series();
        let parts = encoded(&want);
        let out: Vec<OutSeries> = parts
            .iter()
            .zip(&want)
            .map(|((l, s, e), w)| OutSeries { labels: l, samples: s, histograms: &w.histograms, exemplars: e })
            .collect();
        assert_eq!(bits(&decode_write_request(&encode_v1(&out), 1 << 20).unwrap().series), bits(&want));
        let v2 = decode_write_request_v2(&encode_v2(&out), 1 << 20).unwrap();
        assert!(v2.errors.is_empty(), "{:?}", v2.errors);
        assert_eq!(bits(&v2.series), bits(&want));
        assert_eq!(decode_labels(&parts[0].0), vec![("__name__", "up"), ("instance", "a:9100"), ("job", "node")]);
        // A series of exemplars alone goes in 1.0 requests only.
        let alone = [OutSeries { samples: &[], histograms: &[], ..out[0] }];
        assert_eq!(decode_write_request(&encode_v1(&alone), 1 << 20).unwrap().series[0].exemplars, want[0].exemplars);
        assert!(decode_write_request_v2(&encode_v2(&alone), 1 << 20).unwrap().series.is_empty());
    }
}
