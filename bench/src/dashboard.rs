//! The dashboard data set: an HTTP service's request counters by instance, handler and status,
//! and classic request-duration histograms, one hour at a 15 s interval, for loading by remote
//! write. The queries are [`pyrite_loadgen::drive::DASHBOARD`], which also run over scraped
//! `mixed` targets.

use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::Sample;

/// Samples per series, 15 s apart.
pub const SAMPLES: i64 = 240;
pub const STEP_MS: i64 = 15_000;
const BUCKETS: [&str; 8] = ["0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];
/// Series per instance: 40 counters (4 handlers x 10 statuses) and 4 histograms of 8 buckets.
const PER_INSTANCE: usize = 40 + 4 * BUCKETS.len();

/// The data set as remote-write request bodies of 500 series each: about `series` series of
/// `samples` samples each, from `start_ms`. Requests go in time order, 10 minutes of every
/// series before the next 10 minutes, as a server that only accepts recent samples
/// (Prometheus's head takes the last hour) needs them.
pub fn write_requests(series: usize, samples: i64, start_ms: i64) -> Vec<Vec<u8>> {
    write_requests_of(series, 0..samples, start_ms)
}

/// The same for samples number `ks` only (a continuation of an earlier load).
pub fn write_requests_of(series: usize, ks: std::ops::Range<i64>, start_ms: i64) -> Vec<Vec<u8>> {
    let mut requests = Vec::new();
    let mut batch = Vec::new();
    const SLICE: i64 = 40;
    for from in ks.clone().step_by(SLICE as usize) {
        for_each_series(series, from..(from + SLICE).min(ks.end), start_ms, |labels, samples| {
            batch.push(WriteSeries {
                labels,
                samples: samples.collect(),
                exemplars: Vec::new(),
                histograms: Vec::new(),
            });
            if batch.len() == 500 {
                requests.push(encode_write_request(&std::mem::take(&mut batch)));
            }
        });
    }
    if !batch.is_empty() {
        requests.push(encode_write_request(&batch));
    }
    requests
}

/// Calls `f` with the labels and samples number `ks` (sample `k` at `start_ms + k * 15 s`) of
/// about `series` series.
pub fn for_each_series(
    series: usize,
    ks: std::ops::Range<i64>,
    start_ms: i64,
    mut f: impl FnMut(Labels, &mut dyn Iterator<Item = Sample>),
) {
    for i in 0..series.div_ceil(PER_INSTANCE) {
        let instance = format!("10.{}.{}.{}:8080", i / 65536, (i / 256) % 256, i % 256);
        let mut emit = |pairs: Vec<(&str, String)>, slope: f64| {
            let mut samples = ks.clone().map(|k| Sample { t: start_ms + k * STEP_MS, v: (slope * k as f64).floor() });
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
