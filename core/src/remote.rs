//! Remote-write wire format (protocol 1.0): a snappy-compressed protobuf `WriteRequest`.
//!
//! The messages are declared with `prost` derives (no code generation step); only the fields
//! Pyrite uses are declared, and prost skips the rest. Decoding validates the whole request
//! before returning anything, so a bad request is refused whole and stores nothing.

use prost::Message;
use thiserror::Error;

use crate::labels::{is_valid_label_name, Labels};
use crate::value::Sample;

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
    /// Native histograms: only counted, to refuse them explicitly.
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct WireSample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// A native histogram sample; its fields are not decoded.
#[derive(Clone, PartialEq, Message)]
pub struct Histogram {}

#[derive(Debug, Error)]
pub enum RemoteError {
    #[error("snappy decode error: {0}")]
    Snappy(String),
    #[error("decompressed body is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("protobuf decode error: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("series {index}: {message}")]
    InvalidSeries { index: usize, message: String },
}

/// One decoded series with its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// Decodes and validates a snappy-compressed `WriteRequest`, refusing bodies that decompress
/// to more than `max_decoded` bytes.
pub fn decode_write_request(body: &[u8], max_decoded: usize) -> Result<Vec<WriteSeries>, RemoteError> {
    let size = snap::raw::decompress_len(body).map_err(|e| RemoteError::Snappy(e.to_string()))?;
    if size > max_decoded {
        return Err(RemoteError::TooLarge { size, limit: max_decoded });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body).map_err(|e| RemoteError::Snappy(e.to_string()))?;
    let request = WriteRequest::decode(raw.as_slice())?;
    request
        .timeseries
        .into_iter()
        .enumerate()
        .map(|(index, ts)| {
            let invalid = |message: String| RemoteError::InvalidSeries { index, message };
            if !ts.histograms.is_empty() {
                return Err(invalid("native histograms are not supported yet".into()));
            }
            let mut names: Vec<&str> = Vec::with_capacity(ts.labels.len());
            for l in &ts.labels {
                if !is_valid_label_name(&l.name) {
                    return Err(invalid(format!("invalid label name {:?}", l.name)));
                }
                if l.value.is_empty() {
                    return Err(invalid(format!("label {:?} has an empty value", l.name)));
                }
                if names.contains(&l.name.as_str()) {
                    return Err(invalid(format!("duplicate label name {:?}", l.name)));
                }
                names.push(&l.name);
            }
            if !names.contains(&"__name__") {
                return Err(invalid("no metric name (__name__ label)".into()));
            }
            let labels = Labels::from_pairs(ts.labels.into_iter().map(|l| (l.name, l.value)));
            let samples = ts.samples.into_iter().map(|s| Sample { t: s.timestamp, v: s.value }).collect();
            Ok(WriteSeries { labels, samples })
        })
        .collect()
}

/// Encodes series as a snappy-compressed `WriteRequest` (for clients, tests and load generation).
pub fn encode_write_request(series: &[WriteSeries]) -> Vec<u8> {
    let request = WriteRequest {
        timeseries: series
            .iter()
            .map(|s| TimeSeries {
                labels: s.labels.iter().map(|l| Label { name: l.name.clone(), value: l.value.clone() }).collect(),
                samples: s.samples.iter().map(|x| WireSample { value: x.v, timestamp: x.t }).collect(),
                histograms: Vec::new(),
            })
            .collect(),
    };
    snap::raw::Encoder::new().compress_vec(&request.encode_to_vec()).expect("snappy can compress any input")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> Vec<WriteSeries> {
        vec![WriteSeries {
            labels: Labels::from_pairs([("__name__", "x"), ("a", "b")]),
            samples: vec![Sample { t: 1, v: 1.5 }, Sample { t: 2, v: f64::INFINITY }],
        }]
    }

    #[test]
    fn round_trip() {
        let body = encode_write_request(&series());
        assert_eq!(decode_write_request(&body, 1 << 20).unwrap(), series());
    }

    #[test]
    fn bad_bodies_are_refused() {
        assert!(matches!(decode_write_request(b"not snappy at all", 1 << 20), Err(RemoteError::Snappy(_))));
        let not_proto = snap::raw::Encoder::new().compress_vec(b"\xff\xff\xff\xff").unwrap();
        assert!(matches!(decode_write_request(&not_proto, 1 << 20), Err(RemoteError::Protobuf(_))));
        let body = encode_write_request(&series());
        assert!(matches!(decode_write_request(&body, 4), Err(RemoteError::TooLarge { .. })));
        let mut bad = series();
        bad.push(WriteSeries { labels: Labels::from_pairs([("a", "b")]), samples: vec![] });
        let e = decode_write_request(&encode_write_request(&bad), 1 << 20).unwrap_err();
        assert_eq!(e.to_string(), "series 1: no metric name (__name__ label)");
    }
}
