//! Exposition formats: what a scrape target sends, and what `/federate` sends.
//!
//! Scrape bodies come as the Prometheus text format (0.0.4 and 1.0.0), OpenMetrics 1.0 text
//! ([`text`]) or the protobuf format ([`protobuf`]), chosen by the answer's `Content-Type`
//! ([`media`]); every parser yields the same [`Entry`] values ([`entry`]). Classic histograms
//! become native histograms with custom buckets in [`nhcb`]. `/federate` writes the text
//! format ([`writer`]) or the protobuf format ([`protobuf_writer`]), as the request's `Accept`
//! negotiates ([`media::Negotiated`]), names escaped as it asks ([`escaping`]).

pub mod entry;
pub mod escaping;
pub mod media;
pub mod nhcb;
pub mod protobuf;
pub mod protobuf_writer;
#[doc(hidden)]
pub mod scan;
pub mod text;
pub mod writer;

pub use entry::{Entry, HistogramOptions, MetricType, ScrapedExemplar};
pub use escaping::Escaping;
pub use media::{Format, Negotiated};
pub use protobuf::{ProtobufError, ProtobufParser};
pub use protobuf_writer::write_protobuf;
pub use text::{parse_series, parse_series_pairs, ParseError, TextParser};
pub use writer::{write_text, Labelling, Latest};
