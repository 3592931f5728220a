//! The `uniform` profile: every target exposes the same HTTP-service shape (request counters,
//! memory gauges, latency histograms) with exactly known counter rates, rendered in the text
//! format 0.0.4 here and in the protobuf format by [`crate::protobuf`]; the histograms'
//! observations are [`crate::latency`]'s.

use std::fmt::Write;

use crate::latency::{Latency, BUCKETS};

pub(crate) const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
pub(crate) const STATUSES: [&str; 5] = ["200", "201", "400", "404", "500"];
/// Series per histogram: the buckets, `_sum` and `_count`.
const HISTOGRAM_SERIES: usize = BUCKETS.len() + 2;

/// How a target's series split into counters, gauges and histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesMix {
    pub counters: usize,
    pub gauges: usize,
    pub histograms: usize,
}

impl SeriesMix {
    /// About half counters, a fifth gauges, the rest histograms (12 series each); whatever does
    /// not fill a histogram becomes counters. The total is exactly `series`.
    pub fn for_series(series: usize) -> Self {
        let gauges = series / 5;
        let histograms = (series * 3 / 10) / HISTOGRAM_SERIES;
        let counters = series - gauges - histograms * HISTOGRAM_SERIES;
        SeriesMix { counters, gauges, histograms }
    }

    pub fn total(&self) -> usize {
        self.counters + self.gauges + self.histograms * HISTOGRAM_SERIES
    }
}

/// Per-second increase of counter `i`.
fn counter_rate(i: usize) -> f64 {
    1.0 + (i % 5) as f64
}

/// Counter `i`'s labels: method, status, and the item of its handler `/api/v1/item<item>`.
pub(crate) fn counter_labels(i: usize) -> (&'static str, &'static str, usize) {
    (METHODS[i % 4], STATUSES[(i / 4) % 5], i / 20)
}

/// Counter `i`'s value `elapsed` seconds after the start, `error_elapsed` for the errors (see
/// [`INCIDENT_ERROR_FACTOR`]).
pub(crate) fn counter_value(i: usize, elapsed: f64, error_elapsed: f64) -> f64 {
    let status = STATUSES[(i / 4) % 5];
    (counter_rate(i) * if status == "500" { error_elapsed } else { elapsed }).floor()
}

/// Gauge `i` of `target`, `elapsed` seconds after the start.
pub(crate) fn gauge_value(i: usize, target: usize, elapsed: f64) -> f64 {
    (1e6 * (1.5 + (elapsed / 60.0 + (i + target) as f64).sin())).round()
}

/// The seconds the errors have counted, `incident` of `elapsed` seconds in an incident.
pub(crate) fn error_elapsed(elapsed: f64, incident: f64) -> f64 {
    elapsed + (INCIDENT_ERROR_FACTOR - 1.0) * incident
}

/// The sum over one target's counters of their per-second rates.
pub fn counter_rate_sum(series: usize) -> f64 {
    (0..SeriesMix::for_series(series).counters).map(counter_rate).sum()
}

/// How many times faster `status="500"` counters grow during an incident.
pub const INCIDENT_ERROR_FACTOR: f64 = 10.0;

/// The exposition body of a target with `series` series, `elapsed` seconds after start, of
/// which `incident` seconds were spent in an incident. `target` varies the gauges between
/// targets.
pub fn render(series: usize, target: usize, elapsed: f64, incident: f64) -> String {
    render_text(series, target, elapsed, incident, false)
}

/// [`render`], the histograms' observations those of the native-histogram model if `native`
/// (the text format shows their classic buckets only).
pub fn render_text(series: usize, target: usize, elapsed: f64, incident: f64, native: bool) -> String {
    let error_elapsed = error_elapsed(elapsed, incident);
    let mix = SeriesMix::for_series(series);
    let mut out = String::with_capacity(series * 90);
    out.push_str("# HELP loadgen_http_requests_total Requests served.\n# TYPE loadgen_http_requests_total counter\n");
    for i in 0..mix.counters {
        let (method, status, item) = counter_labels(i);
        let value = counter_value(i, elapsed, error_elapsed);
        let _ = writeln!(
            out,
            "loadgen_http_requests_total{{method=\"{method}\",status=\"{status}\",handler=\"/api/v1/item{item}\"}} {value}"
        );
    }
    out.push_str("# HELP loadgen_memory_usage_bytes Memory in use.\n# TYPE loadgen_memory_usage_bytes gauge\n");
    for i in 0..mix.gauges {
        let _ = writeln!(out, "loadgen_memory_usage_bytes{{pool=\"pool{i}\"}} {}", gauge_value(i, target, elapsed));
    }
    out.push_str(
        "# HELP loadgen_request_duration_seconds Request latency.\n# TYPE loadgen_request_duration_seconds histogram\n",
    );
    for h in 0..mix.histograms {
        let latency = Latency::at(h, elapsed, native);
        let cumulative = latency.classic.iter().chain([&latency.count]);
        for (le, in_bucket) in BUCKETS.iter().zip(cumulative) {
            let _ =
                writeln!(out, "loadgen_request_duration_seconds_bucket{{handler=\"/h{h}\",le=\"{le}\"}} {in_bucket}");
        }
        let _ = writeln!(out, "loadgen_request_duration_seconds_sum{{handler=\"/h{h}\"}} {}", latency.sum);
        let _ = writeln!(out, "loadgen_request_duration_seconds_count{{handler=\"/h{h}\"}} {}", latency.count);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_adds_up_and_series_are_unique() {
        for n in [1, 13, 200, 1000] {
            assert_eq!(SeriesMix::for_series(n).total(), n);
            let body = render(n, 0, 10.0, 0.0);
            let mut keys: Vec<&str> =
                body.lines().filter(|l| !l.starts_with('#')).map(|l| l.rsplit_once(' ').unwrap().0).collect();
            assert_eq!(keys.len(), n);
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), n, "duplicate series for {n}");
        }
    }

    #[test]
    fn an_incident_speeds_up_only_the_errors() {
        let value = |body: &str, status: &str| -> f64 {
            body.lines()
                .find(|l| l.contains(&format!("status=\"{status}\"")))
                .unwrap()
                .rsplit_once(' ')
                .unwrap()
                .1
                .parse()
                .unwrap()
        };
        let (calm, incident) = (render(200, 0, 100.0, 0.0), render(200, 0, 100.0, 10.0));
        assert_eq!(value(&calm, "200"), value(&incident, "200"));
        assert!(value(&incident, "500") > value(&calm, "500") * 1.5);
    }
}
