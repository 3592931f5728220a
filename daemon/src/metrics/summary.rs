//! Summaries as upstream exposes them (`prometheus_engine_query_duration_seconds`,
//! `prometheus_target_interval_length_seconds`, ...): quantiles over the observations of the
//! last ten minutes, with the sum and count of all observations ever.
//!
//! prometheus-client has no summary type, so a summary family keeps its own windows and writes
//! its lines into the exposition (OpenMetrics text) itself. A window keeps at most
//! [`MAX_KEPT`] observations, the newest, and computes exact quantiles from them when
//! scraped; with nothing observed in the window a quantile is `NaN`, as upstream's is.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::MetricLabels;

/// How far back the quantiles look (upstream's `DefMaxAge`).
const WINDOW: Duration = Duration::from_secs(600);
/// The most observations a window keeps.
const MAX_KEPT: usize = 1024;

/// Upstream's quantiles for query, GC and fsync durations.
pub const MEDIAN_90_99: &[f64] = &[0.5, 0.9, 0.99];
/// Upstream's quantiles for scrape intervals, target syncs and rule group durations.
pub const TAILS_MEDIAN_90_99: &[f64] = &[0.01, 0.05, 0.5, 0.9, 0.99];

#[derive(Default)]
struct Window {
    recent: VecDeque<(Instant, f64)>,
    sum: f64,
    count: u64,
}

impl Window {
    fn forget_before(&mut self, oldest: Option<Instant>) {
        while self.recent.len() > MAX_KEPT || self.recent.front().is_some_and(|(t, _)| Some(*t) < oldest) {
            self.recent.pop_front();
        }
    }

    /// The `q` quantile of the window (nearest rank), `NaN` if it is empty.
    fn quantile(sorted: &[f64], q: f64) -> f64 {
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = (q * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }
}

/// A summary metric, one window per label set.
pub struct SummaryFamily {
    name: &'static str,
    help: &'static str,
    quantiles: &'static [f64],
    windows: Mutex<BTreeMap<MetricLabels, Window>>,
}

impl SummaryFamily {
    pub fn new(name: &'static str, help: &'static str, quantiles: &'static [f64]) -> Self {
        SummaryFamily { name, help, quantiles, windows: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<MetricLabels, Window>> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the label set exist (count 0, quantiles `NaN`) before anything is observed.
    pub fn touch(&self, labels: &MetricLabels) {
        self.lock().entry(labels.clone()).or_default();
    }

    pub fn observe(&self, labels: &MetricLabels, value: f64) {
        let now = Instant::now();
        let mut windows = self.lock();
        let w = windows.entry(labels.clone()).or_default();
        w.recent.push_back((now, value));
        w.sum += value;
        w.count += 1;
        w.forget_before(now.checked_sub(WINDOW));
    }

    /// Forgets the label sets `keep` refuses (scrape jobs no longer configured).
    pub fn retain(&self, keep: impl Fn(&MetricLabels) -> bool) {
        self.lock().retain(|labels, _| keep(labels));
    }

    /// Appends the family's OpenMetrics lines to `out`.
    pub fn encode(&self, out: &mut String) -> std::fmt::Result {
        let (name, oldest) = (self.name, Instant::now().checked_sub(WINDOW));
        writeln!(out, "# HELP {name} {}", self.help)?;
        writeln!(out, "# TYPE {name} summary")?;
        let mut windows = self.lock();
        for (labels, w) in windows.iter_mut() {
            w.forget_before(oldest);
            let mut sorted: Vec<f64> = w.recent.iter().map(|(_, v)| *v).collect();
            sorted.sort_by(f64::total_cmp);
            for &q in self.quantiles {
                let with_q = label_text(labels, Some(q));
                writeln!(out, "{name}{with_q} {}", number(Window::quantile(&sorted, q)))?;
            }
            let plain = label_text(labels, None);
            writeln!(out, "{name}_sum{plain} {}", number(w.sum))?;
            writeln!(out, "{name}_count{plain} {}", w.count)?;
        }
        Ok(())
    }
}

/// `{a="x",quantile="0.5"}`, or nothing for no labels.
fn label_text(labels: &MetricLabels, quantile: Option<f64>) -> String {
    let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(q) = quantile {
        pairs.push(format!("quantile=\"{q}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

/// A label value escaped for the text formats.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A sample value as the text formats spell it.
fn number(v: f64) -> String {
    match v {
        v if v.is_nan() => "NaN".into(),
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        v => format!("{v}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &SummaryFamily) -> String {
        let mut out = String::new();
        s.encode(&mut out).unwrap();
        out
    }

    #[test]
    fn an_empty_summary_has_nan_quantiles_and_zero_count() {
        let s = SummaryFamily::new("x_seconds", "help", MEDIAN_90_99);
        s.touch(&vec![("slice", "a\"b".to_string())]);
        let text = lines(&s);
        assert!(text.contains("# TYPE x_seconds summary\n"), "{text}");
        assert!(text.contains("x_seconds{slice=\"a\\\"b\",quantile=\"0.99\"} NaN\n"), "{text}");
        assert!(text.contains("x_seconds_count{slice=\"a\\\"b\"} 0\n"), "{text}");
    }

    #[test]
    fn quantiles_are_nearest_ranks_of_the_window() {
        let s = SummaryFamily::new("x", "help", TAILS_MEDIAN_90_99);
        for v in 1..=100 {
            s.observe(&vec![], f64::from(v));
        }
        let text = lines(&s);
        assert!(text.contains("x{quantile=\"0.5\"} 50\n"), "{text}");
        assert!(text.contains("x{quantile=\"0.99\"} 99\n"), "{text}");
        assert!(text.contains("x{quantile=\"0.01\"} 1\n"), "{text}");
        assert!(text.contains("x_sum 5050\n") && text.contains("x_count 100\n"), "{text}");
    }

    #[test]
    fn the_window_keeps_the_newest_observations_and_the_count_all() {
        let s = SummaryFamily::new("x", "help", &[0.01]);
        for v in 0..(MAX_KEPT + 10) {
            s.observe(&vec![], v as f64);
        }
        let text = lines(&s);
        assert!(text.contains("x{quantile=\"0.01\"} 20\n"), "{text}");
        assert!(text.contains(&format!("x_count {}\n", MAX_KEPT + 10)), "{text}");
    }
}
