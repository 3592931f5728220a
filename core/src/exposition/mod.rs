//! Exposition formats: what a scrape target sends.
//!
//! Only the Prometheus text format 0.0.4 is parsed for now; OpenMetrics joins it later.

pub mod text;

pub use text::{parse_series, Entry, MetricType, ParseError, TextParser};
