//! Exposition formats: what a scrape target sends, and what `/federate` sends.
//!
//! Only the Prometheus text format 0.0.4 is parsed and written for now; OpenMetrics joins it
//! later.

#[doc(hidden)]
pub mod scan;
pub mod text;
pub mod writer;

pub use text::{parse_series, Entry, Format, MetricType, ParseError, TextParser};
pub use writer::write_text;
