//! A query evaluated as the API evaluates it, over a small fixed data set on two shards:
//! counters with resets, gauges with NaN, infinities and extremes, staleness markers, classic,
//! native and custom-bucket histograms, floats and histograms mixed in one series, an info
//! metric. Whatever parses must come to a value or an error, instant and range, under a sample
//! limit and a timeout: never a panic, an overflow or a hang.
//!
//! The first byte chooses the evaluation time (-5 min to about 27 min, data spans 10 min), the
//! second the range's step and length (at most 3,780 steps, within the API's 11,000); the rest is
//! the query.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pyrite_core::promql::{parse_with, EvalParams, ParseOptions, QueryLimits, BATCH_SLOTS};
use pyrite_core::series_notation::{series_labels, timed, values};
use pyrite_tsdb::memory::MemoryEngine;

/// Series and their values, one every 15 s from 0, in the conformance scripts' notation.
const DATA: [(&str, &str); 14] = [
    (r#"http_requests_total{job="api",instance="a",code="200"}"#, "0+10x40"),
    (r#"http_requests_total{job="api",instance="b",code="500"}"#, "0 3 6 1 4 _ 9 12 stale 2+2x30"),
    (r#"temperature{room="x"}"#, "1 NaN Inf -Inf -1 0 _ 3 1e308 -1e308 5e-324 -0 2+0.5x28"),
    (r#"temperature{room="y"}"#, "_x10 4-0.25x30"),
    (r#"request_duration_seconds_bucket{job="api",le="0.1"}"#, "0+1x40"),
    (r#"request_duration_seconds_bucket{job="api",le="1"}"#, "0+3x40"),
    (r#"request_duration_seconds_bucket{job="api",le="+Inf"}"#, "0+4x40"),
    (r#"request_duration_seconds_sum{job="api"}"#, "0+2.5x40"),
    (r#"request_duration_seconds_count{job="api"}"#, "0+4x40"),
    (
        r#"latency_native{job="api"}"#,
        "{{schema:0 sum:5 count:6 z_bucket:1 z_bucket_w:0.001 buckets:[1 2 1] n_buckets:[1]}}+{{schema:0 sum:2 count:3 buckets:[1 1 1]}}x40",
    ),
    (
        r#"latency_custom{job="api"}"#,
        "{{schema:-53 sum:5 count:4 custom_values:[0.1 1] buckets:[1 2 1]}}+{{schema:-53 sum:1 count:1 custom_values:[0.1 1] buckets:[0 1]}}x40",
    ),
    (
        r#"latency_mixed{job="api"}"#,
        "1 2 {{schema:1 sum:1 count:1 buckets:[1]}} 4 stale {{schema:-1 count:2 sum:2 buckets:[2] counter_reset_hint:gauge}} {{schema:8 sum:-3 count:1 offset:-5 buckets:[1]}} 7 8",
    ),
    (r#"target_info{job="api",instance="a",version="1.2"}"#, "1x40"),
    (r#"up{job="api",instance="a"}"#, "1 1 0 1x37"),
];

const INTERVAL_MS: i64 = 15_000;

/// What the API's defaults bound a query by, smaller so that an input runs in milliseconds.
const LIMITS: QueryLimits =
    QueryLimits { max_samples: 200_000, timeout: Duration::from_secs(2), lookback_delta: 300_000, batch_slots: BATCH_SLOTS };

fn engine() -> MemoryEngine {
    let mut engine = MemoryEngine::new(2, LIMITS);
    for (labels, points) in DATA {
        let labels = series_labels(labels).expect("fixture labels");
        let samples = timed(values(points).expect("fixture values"), 0, INTERVAL_MS);
        engine.load(&[(labels, samples)]).expect("fixture samples");
    }
    engine
}

thread_local! {
    static ENGINE: MemoryEngine = engine();
}

fuzz_target!(|input: &[u8]| {
    let [time, shape, query @ ..] = input else { return };
    let Ok(query) = std::str::from_utf8(query) else { return };
    let Ok(expr) = parse_with(query, ParseOptions::all()) else { return };
    let at = i64::from(*time) * 7_500 - 300_000;
    let step = [1_000, 7_000, 15_000, 60_000][usize::from(shape & 3)];
    let end = at + i64::from(shape >> 2) * 60_000;
    ENGINE.with(|engine| {
        let _ = engine.eval(&expr, engine.instant(at));
        let _ = engine.eval(&expr, EvalParams { start: at, end, step, lookback: LIMITS.lookback_delta });
    });
});
