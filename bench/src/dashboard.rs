//! The dashboard data set: an HTTP service's request counters by instance, handler and status,
//! and classic request-duration histograms, one hour at a 15 s interval, for loading by remote
//! write. The queries are [`pyrite_loadgen::drive::DASHBOARD`], which also run over scraped
//! `mixed` targets.

use pyrite_core::labels::Labels;
use pyrite_core::value::Sample;

/// Samples per series, 15 s apart.
pub const SAMPLES: i64 = 240;
pub const STEP_MS: i64 = 15_000;
const BUCKETS: [&str; 8] = ["0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];
/// Series per instance: 40 counters (4 handlers x 10 statuses) and 4 histograms of 8 buckets.
const PER_INSTANCE: usize = 40 + 4 * BUCKETS.len();

/// Calls `f` with the labels and samples (starting at `start_ms`) of about `series` series.
pub fn for_each_series(series: usize, start_ms: i64, mut f: impl FnMut(Labels, &mut dyn Iterator<Item = Sample>)) {
    for i in 0..series.div_ceil(PER_INSTANCE) {
        let instance = format!("10.{}.{}.{}:8080", i / 65536, (i / 256) % 256, i % 256);
        let mut emit = |pairs: Vec<(&str, String)>, slope: f64| {
            let mut samples = (0..SAMPLES).map(|k| Sample { t: start_ms + k * STEP_MS, v: (slope * k as f64).floor() });
            f(Labels::from_pairs(pairs), &mut samples);
        };
        for h in 0..4 {
            for s in 0..10 {
                let status = format!("{}{:02}", 2 + s / 3, s);
                emit(
                    vec![
                        ("__name__", "http_requests_total".into()),
                        ("instance", instance.clone()),
                        ("handler", format!("/api/{h}")),
                        ("status", status),
                    ],
                    1.0 + (s + h) as f64,
                );
            }
            for (j, le) in BUCKETS.iter().enumerate() {
                emit(
                    vec![
                        ("__name__", "http_request_duration_seconds_bucket".into()),
                        ("instance", instance.clone()),
                        ("handler", format!("/api/{h}")),
                        ("le", le.to_string()),
                    ],
                    (j + 1) as f64 * 3.0,
                );
            }
        }
    }
}
