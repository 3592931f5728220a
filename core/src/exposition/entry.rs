//! What a parsed exposition body is made of, whatever its format: metadata, float samples and
//! native-histogram samples, each float or histogram sample with the cache key of its series.
//!
//! The text parsers ([`super::text`]) and the protobuf parser ([`super::protobuf`]) yield the
//! same [`Entry`] values, so that one scrape ingest takes them all. A sample's `series` is what
//! the scrape cache looks up: the raw `name{labels}` text of a text line, and for a protobuf
//! metric the same notation rendered canonically (labels sorted, values escaped), so that it is
//! stable from scrape to scrape and [`super::parse_series`] reads its labels back.

use crate::histogram::FloatHistogram;
use crate::labels::Labels;
use crate::value::Exemplar;

/// An exemplar as a sample carries it; without a timestamp it takes its sample's.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapedExemplar {
    pub labels: Labels,
    pub value: f64,
    pub timestamp: Option<i64>,
}

impl ScrapedExemplar {
    /// The exemplar, at `sample` (its sample's time, ms) if it carries no timestamp of its own.
    pub fn at(self, sample: i64) -> Exemplar {
        let (t, has_ts) = self.timestamp.map_or((sample, false), |t| (t, true));
        Exemplar { labels: self.labels, value: self.value, t, has_ts }
    }
}

/// The metric types a family may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    /// `untyped` in the text format and protobuf, `unknown` in OpenMetrics.
    Untyped,
    Info,
    StateSet,
    GaugeHistogram,
}

/// One meaningful part of an exposition body.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    Help {
        metric: &'a str,
        text: String,
    },
    Type {
        metric: &'a str,
        kind: MetricType,
    },
    /// OpenMetrics' `# UNIT`, protobuf's `unit`.
    Unit {
        metric: &'a str,
        unit: &'a str,
    },
    /// A float sample. `series` is its series as `name{labels}` text; pass it to
    /// [`super::parse_series`] to get its labels.
    Sample {
        series: &'a str,
        value: f64,
        timestamp: Option<i64>,
        /// OpenMetrics and protobuf only.
        exemplar: Option<ScrapedExemplar>,
    },
    /// A native-histogram sample (protobuf, or converted from a classic histogram), validated
    /// as upstream's storage validates one. Boxed: entries are moved once per sample, and most
    /// are floats.
    Histogram {
        series: &'a str,
        histogram: Box<FloatHistogram>,
        timestamp: Option<i64>,
        exemplars: Vec<ScrapedExemplar>,
    },
}

/// How histograms are yielded, from the scrape config (upstream's parser options).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramOptions {
    /// `scrape_native_histograms`: a histogram with native parts is yielded as a native
    /// histogram; without it, its native parts are ignored and it is read as a classic one.
    pub native: bool,
    /// `always_scrape_classic_histograms`: a histogram yielded as native (or converted to a
    /// native histogram with custom buckets) also yields its classic series.
    pub keep_classic: bool,
    /// `convert_classic_histograms_to_nhcb`: classic histograms are yielded as native
    /// histograms with custom buckets (see [`super::nhcb`]).
    pub convert_to_nhcb: bool,
}
