//! Remote read (`prometheus.ReadRequest`, answered by `/api/v1/read`): the request and both
//! response forms — a snappy-compressed `ReadResponse` of samples and native histograms (a
//! series' `histograms` are [`wire_histograms`](super::histogram::wire_histograms) of its
//! histogram samples; a client reads them back with
//! [`Histogram::into_float`](super::histogram::Histogram::into_float)), and the stream of
//! `ChunkedReadResponse` frames (uvarint length, CRC32 Castagnoli of the message, the message)
//! whose chunks are upstream's XOR encoding, which the caller provides.

use prost::Message;

use super::histogram::{Histogram, HISTOGRAM_MEMORY_PER_BYTE};
use super::{decompress, Fields, Label, Payload, RemoteError, TimeSeries, WireExemplar, WireSample};
use crate::labels::{Labels, MatchOp, Matcher};
use crate::value::Sample;

#[derive(Clone, PartialEq, Message)]
pub struct ReadRequest {
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<Query>,
    /// `ResponseType`s in the client's order of preference.
    #[prost(int32, repeated, tag = "2")]
    pub accepted_response_types: Vec<i32>,
}

/// `ReadRequest.ResponseType`.
pub const SAMPLES: i32 = 0;
pub const STREAMED_XOR_CHUNKS: i32 = 1;

#[derive(Clone, PartialEq, Message)]
pub struct Query {
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
    /// `ReadHints`: not decoded (they only let a store read less; Pyrite reads the range).
    #[prost(bytes = "vec", optional, tag = "4")]
    pub hints: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LabelMatcher {
    /// EQ 0, NEQ 1, RE 2, NRE 3.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ReadResponse {
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<QueryResult>,
}

#[derive(Clone, PartialEq, Message)]
pub struct QueryResult {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ChunkedReadResponse {
    #[prost(message, repeated, tag = "1")]
    pub chunked_series: Vec<ChunkedSeries>,
    #[prost(int64, tag = "2")]
    pub query_index: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct ChunkedSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub chunks: Vec<Chunk>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Chunk {
    #[prost(int64, tag = "1")]
    pub min_time_ms: i64,
    #[prost(int64, tag = "2")]
    pub max_time_ms: i64,
    /// `Chunk.Encoding`: [`CHUNK_XOR`], [`CHUNK_HISTOGRAM`] or [`CHUNK_FLOAT_HISTOGRAM`].
    #[prost(int32, tag = "3")]
    pub r#type: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
}

/// `Chunk.Encoding` of upstream's XOR chunks (floats).
pub const CHUNK_XOR: i32 = 1;
/// `Chunk.Encoding` of upstream's histogram chunks (integer native histograms).
pub const CHUNK_HISTOGRAM: i32 = 2;
/// `Chunk.Encoding` of upstream's float histogram chunks.
pub const CHUNK_FLOAT_HISTOGRAM: i32 = 3;

/// Decodes a snappy-compressed `ReadRequest` of at most `max_decoded` bytes decompressed.
pub fn decode_read_request(body: &[u8], max_decoded: usize) -> Result<ReadRequest, RemoteError> {
    Ok(ReadRequest::decode(decompress(body, max_decoded)?.as_slice())?)
}

impl ReadRequest {
    /// The request snappy-compressed, as a client sends it.
    pub fn encode_compressed(&self) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(&self.encode_to_vec()).expect("snappy can compress any input")
    }
}

/// A query's matchers as Pyrite's, each matcher on an external label with that label's value
/// turned into "has no such label" (as upstream: the external labels are added to the answers,
/// not stored).
pub fn query_matchers(query: &Query, external: &Labels) -> Result<Vec<Matcher>, RemoteError> {
    query
        .matchers
        .iter()
        .map(|m| {
            let op = match m.r#type {
                0 => MatchOp::Equal,
                1 => MatchOp::NotEqual,
                2 => MatchOp::Regex,
                3 => MatchOp::NotRegex,
                _ => return Err(RemoteError::Malformed("unknown matcher type")),
            };
            let value = match op {
                MatchOp::Equal if external.get(&m.name) == m.value && !m.value.is_empty() => "",
                _ => m.value.as_str(),
            };
            Matcher::new(m.name.clone(), op, value).map_err(|e| RemoteError::InvalidMatcher(e.to_string()))
        })
        .collect()
}

/// Matchers as a query of a `ReadRequest` carries them (the inverse of [`query_matchers`]
/// without the external labels).
pub fn wire_matchers(matchers: &[Matcher]) -> Vec<LabelMatcher> {
    matchers
        .iter()
        .map(|m| LabelMatcher {
            r#type: match m.op {
                MatchOp::Equal => 0,
                MatchOp::NotEqual => 1,
                MatchOp::Regex => 2,
                MatchOp::NotRegex => 3,
            },
            name: m.name.clone(),
            value: m.value.clone(),
        })
        .collect()
}

/// One series of a sampled answer, of float samples (its `histograms` are for the caller to set).
pub fn sampled_series(labels: &Labels, samples: &[Sample]) -> TimeSeries {
    TimeSeries {
        labels: wire_labels(labels),
        samples: samples.iter().map(|s| WireSample { value: s.v, timestamp: s.t }).collect(),
        exemplars: Vec::new(),
        histograms: Vec::new(),
    }
}

pub fn wire_labels(labels: &Labels) -> Vec<Label> {
    labels.iter().map(|l| Label { name: l.name.clone(), value: l.value.clone() }).collect()
}

/// A sampled answer, snappy-compressed.
pub fn encode_read_response(response: &ReadResponse) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(&response.encode_to_vec()).expect("snappy can compress any input")
}

/// Decodes a sampled answer (for clients and tests). What it takes decoded is bounded as a
/// write request's histograms are ([`HISTOGRAM_MEMORY_PER_BYTE`] per byte it may decompress
/// to): an empty series, label, sample or histogram is two bytes on the wire and tens to
/// hundreds decoded, so a remote's answer of a billion of them is refused before it is decoded.
pub fn decode_read_response(body: &[u8], max_decoded: usize) -> Result<ReadResponse, RemoteError> {
    let raw = decompress(body, max_decoded)?;
    let limit = max_decoded.saturating_mul(HISTOGRAM_MEMORY_PER_BYTE);
    if decoded_size(&raw)? > limit {
        return Err(RemoteError::AnswerTooLarge { limit });
    }
    Ok(ReadResponse::decode(raw.as_slice())?)
}

/// About what a `ReadResponse` takes decoded, counted without decoding it: its messages (
/// `results` → `timeseries` → labels, samples, exemplars and their labels, histograms) at
/// their size in memory, the bytes of the strings they hold once more, and those of the
/// histograms' spans and packed counts eight times.
fn decoded_size(raw: &[u8]) -> Result<usize, RemoteError> {
    fn messages(raw: &[u8], tag: u32) -> impl Iterator<Item = Result<&[u8], RemoteError>> {
        Fields::new(raw).filter_map(move |f| match f {
            Ok((t, Payload::Bytes(b))) if t == tag => Some(Ok(b)),
            Ok(_) => None,
            Err(e) => Some(Err(e.into())),
        })
    }
    let count = |raw: &[u8], tag: u32, size: usize| -> Result<usize, RemoteError> {
        messages(raw, tag).try_fold(0usize, |n, m| m.map(|_| n.saturating_add(size)))
    };
    let mut n = raw.len();
    for result in messages(raw, 1) {
        n = n.saturating_add(size_of::<QueryResult>());
        for series in messages(result?, 1) {
            let series = series?;
            n = n
                .saturating_add(size_of::<TimeSeries>())
                .saturating_add(count(series, 1, size_of::<Label>())?)
                .saturating_add(count(series, 2, size_of::<WireSample>())?);
            // A histogram's spans and packed counts: a byte on the wire may be 8 decoded.
            for histogram in messages(series, 4) {
                n = n.saturating_add(size_of::<Histogram>()).saturating_add(histogram?.len().saturating_mul(8));
            }
            for exemplar in messages(series, 3) {
                n = n.saturating_add(size_of::<WireExemplar>()).saturating_add(count(
                    exemplar?,
                    1,
                    size_of::<Label>(),
                )?);
            }
        }
    }
    Ok(n)
}

/// Appends one series' frames of a streamed answer to `out`, packed as upstream's
/// `StreamChunkedReadResponses` packs them: chunks go into a frame until their encoded size
/// reaches `max_bytes` less the encoded size of the labels (at least one chunk a frame).
pub fn write_series_frames(
    labels: Vec<Label>,
    chunks: impl IntoIterator<Item = Chunk>,
    query_index: i64,
    max_bytes: usize,
    out: &mut Vec<u8>,
) {
    let max_data = max_bytes as i64 - labels.iter().map(|l| l.encoded_len() as i64).sum::<i64>();
    let mut left = max_data;
    let mut frame = Vec::new();
    let mut chunks = chunks.into_iter().peekable();
    while let Some(chunk) = chunks.next() {
        left -= chunk.encoded_len() as i64;
        frame.push(chunk);
        if left <= 0 || chunks.peek().is_none() {
            let series = ChunkedSeries { labels: labels.clone(), chunks: std::mem::take(&mut frame) };
            write_frame(&ChunkedReadResponse { chunked_series: vec![series], query_index }, out);
            left = max_data;
        }
    }
}

/// Appends one frame of a streamed answer to `out`: the message's length as a uvarint, the
/// CRC32 (Castagnoli) of the message big-endian, then the message.
pub fn write_frame(message: &ChunkedReadResponse, out: &mut Vec<u8>) {
    let bytes = message.encode_to_vec();
    prost::encoding::encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(&crc32c::crc32c(&bytes).to_be_bytes());
    out.extend_from_slice(&bytes);
}

/// Splits a streamed answer into its messages (for clients and tests); an error for a frame
/// that is cut short or fails its checksum.
pub fn read_frames(mut body: &[u8]) -> Result<Vec<ChunkedReadResponse>, RemoteError> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let len = usize::try_from(prost::encoding::decode_varint(&mut body)?).unwrap_or(usize::MAX);
        let (crc, rest) = body.split_at_checked(4).ok_or(RemoteError::Malformed("truncated frame"))?;
        let (message, rest) = rest.split_at_checked(len).ok_or(RemoteError::Malformed("truncated frame"))?;
        if crc32c::crc32c(message).to_be_bytes() != crc {
            return Err(RemoteError::Malformed("frame checksum mismatch"));
        }
        out.push(ChunkedReadResponse::decode(message)?);
        body = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::parse_histogram;
    use crate::remote::histogram::wire_histograms;
    use crate::value::HistogramSample;

    /// A sampled answer carries histograms, integer and float, back to the client.
    #[test]
    fn sampled_answers_carry_histograms() {
        let labels = Labels::from_pairs([("__name__", "h")]);
        let histograms: Vec<HistogramSample> =
            ["{{count:3 sum:2 buckets:[1 2]}}", "{{schema:-53 custom_values:[1] count:0.5 buckets:[0.5]}}"]
                .iter()
                .enumerate()
                .map(|(t, text)| HistogramSample { t: t as i64, h: parse_histogram(text).unwrap().into() })
                .collect();
        let mut series = sampled_series(&labels, &[Sample { t: 5, v: 1.0 }]);
        series.histograms = wire_histograms(&histograms);
        let body = encode_read_response(&ReadResponse { results: vec![QueryResult { timeseries: vec![series] }] });
        let got = decode_read_response(&body, 1 << 20).unwrap().results.remove(0).timeseries.remove(0);
        assert_eq!(got.samples, [WireSample { value: 1.0, timestamp: 5 }]);
        let back: Vec<HistogramSample> = got
            .histograms
            .into_iter()
            .map(|h| HistogramSample { t: h.timestamp, h: h.into_float().unwrap().into() })
            .collect();
        assert_eq!(back, histograms);
    }

    /// An answer of millions of empty series, labels or exemplars (two bytes each on the wire,
    /// 48 to 96 decoded) is refused before it is decoded.
    #[test]
    fn answers_of_many_empty_messages_are_refused_undecoded() {
        let empty = [0x0a, 0x00];
        let wrap = |tag: u8, inner: Vec<u8>| {
            let mut out = vec![tag];
            prost::encoding::encode_varint(inner.len() as u64, &mut out);
            out.extend(inner);
            out
        };
        // Series of empty labels, of empty exemplars.
        let series_of = |tag: u8| wrap(0x0a, wrap(0x0a, [tag, 0x00].repeat(2_000_000)));
        for answer in [wrap(0x0a, empty.repeat(2_000_000)), series_of(0x0a), series_of(0x1a)] {
            let body = snap::raw::Encoder::new().compress_vec(&answer).unwrap();
            let refused = decode_read_response(&body, 8 << 20).map(|_| ());
            assert!(matches!(refused, Err(RemoteError::AnswerTooLarge { .. })), "{refused:?}");
        }
    }

    /// An answer of a million empty histograms (two bytes each on the wire, hundreds decoded)
    /// is refused before it is decoded.
    #[test]
    fn answers_of_many_empty_histograms_are_refused_undecoded() {
        let labels = Labels::from_pairs([("__name__", "h")]);
        let mut series = sampled_series(&labels, &[]);
        series.histograms = vec![Histogram::default(); 1_000_000];
        let body = encode_read_response(&ReadResponse { results: vec![QueryResult { timeseries: vec![series] }] });
        // Two bytes each: the body decompresses to about 2 MB.
        let refused = decode_read_response(&body, 4 << 20).map(|_| ());
        assert!(matches!(refused, Err(RemoteError::AnswerTooLarge { .. })), "{refused:?}");
        let taken = decode_read_response(&body, 1 << 30).map(|r| r.results[0].timeseries[0].histograms.len());
        assert_eq!(taken.ok(), Some(1_000_000), "within a larger allowance");
    }
}
