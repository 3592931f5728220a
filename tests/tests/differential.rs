//! Pyrite against upstream Prometheus (Debian's 2.42) on the same data, loaded by remote write
//! into both, compared query by query.
//!
//! Evaluation times and comparison: `pyrite_tests::side_by_side`.

use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::Sample;
use pyrite_tests::side_by_side::{differences, STEP_MS, T0};
use pyrite_tests::{encode, http_get, json, remote_write_to, Pyrite, PyriteOpts, Upstream};

const POINTS: i64 = 160; // 40 minutes

fn series(pairs: &[(&str, &str)], values: impl Fn(i64) -> Option<f64>) -> WriteSeries {
    WriteSeries {
        labels: Labels::from_pairs(pairs.iter().copied()),
        samples: (0..POINTS).filter_map(|k| values(k).map(|v| Sample { t: T0 + k * STEP_MS, v })).collect(),
        exemplars: Vec::new(),
        histograms: Vec::new(),
    }
}

/// Counters (with resets), gauges (one that stops), and classic histograms.
fn data() -> Vec<WriteSeries> {
    let mut out = Vec::new();
    for (i, job) in ["api", "api", "api", "web", "web", "db"].iter().enumerate() {
        let instance = format!("10.0.0.{i}:9100");
        let rate = 0.5 + i as f64;
        out.push(series(
            &[("__name__", "http_requests_total"), ("job", job), ("instance", &instance), ("code", "200")],
            |k| {
                let v = rate * (k as f64) * 15.0;
                Some(if i == 2 && k >= 90 { v - rate * 90.0 * 15.0 } else { v })
            },
        ));
        out.push(series(
            &[("__name__", "http_requests_total"), ("job", job), ("instance", &instance), ("code", "500")],
            |k| Some((k / 7) as f64 * (i + 1) as f64),
        ));
        out.push(series(&[("__name__", "memory_bytes"), ("job", job), ("instance", &instance)], |k| {
            (i != 4 || k < 100).then(|| 1e6 * (1.0 + ((k as f64) / 9.0 + i as f64).sin()) + (k * 37 % 11) as f64)
        }));
        for (j, le) in ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"].iter().enumerate() {
            out.push(series(
                &[("__name__", "request_seconds_bucket"), ("job", job), ("instance", &instance), ("le", le)],
                |k| Some((k as f64) * (j as f64 + 1.0) * (i as f64 + 1.0)),
            ));
        }
    }
    out.push(series(&[("__name__", "info_metric"), ("job", "api"), ("version", "1.2.3")], |_| Some(1.0)));
    out
}

const QUERIES: &[&str] = &[
    "http_requests_total",
    "http_requests_total{job=~\"a.*|w.b\", code!=\"500\"}",
    "rate(http_requests_total[5m])",
    "irate(http_requests_total[2m])",
    "increase(http_requests_total[10m])",
    "delta(memory_bytes[5m])",
    "deriv(memory_bytes[10m])",
    "predict_linear(memory_bytes[10m], 600)",
    "resets(http_requests_total[30m])",
    "changes(http_requests_total[10m])",
    "avg_over_time(memory_bytes[5m])",
    "max_over_time(memory_bytes[5m]) - min_over_time(memory_bytes[5m])",
    "quantile_over_time(0.9, memory_bytes[10m])",
    "stddev_over_time(memory_bytes[10m])",
    "count_over_time(memory_bytes[7m])",
    "last_over_time(memory_bytes[5m])",
    "sum by (job) (rate(http_requests_total[5m]))",
    "sum without (instance) (rate(http_requests_total[5m]))",
    "avg by (code) (increase(http_requests_total[5m]))",
    "max by (job) (memory_bytes)",
    "min(memory_bytes)",
    "count by (job) (memory_bytes)",
    "stddev by (job) (memory_bytes)",
    "stdvar(memory_bytes)",
    "group by (job) (memory_bytes)",
    "topk(2, memory_bytes)",
    "bottomk by (job) (1, memory_bytes)",
    "quantile by (job) (0.75, memory_bytes)",
    "count_values(\"code\", http_requests_total > 1000)",
    "histogram_quantile(0.9, sum by (le, job) (rate(request_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(request_seconds_bucket[10m]))",
    "rate(http_requests_total{code=\"500\"}[5m]) / ignoring(code) rate(http_requests_total{code=\"200\"}[5m])",
    "sum by (job) (rate(http_requests_total[5m])) / on(job) group_left count by (job) (memory_bytes)",
    "memory_bytes * on(job) group_left(version) info_metric",
    "memory_bytes > 1500000",
    "memory_bytes > bool 1500000",
    "http_requests_total{code=\"500\"} and on(instance) memory_bytes > 1e6",
    "memory_bytes or http_requests_total{code=\"500\"}",
    "memory_bytes unless on(job) info_metric",
    "abs(deriv(memory_bytes[5m]))",
    "clamp(memory_bytes, 5e5, 1.5e6)",
    "round(memory_bytes / 1000, 5)",
    "sqrt(memory_bytes) + ln(memory_bytes) - log2(memory_bytes) * 2",
    "label_replace(memory_bytes, \"host\", \"$1\", \"instance\", \"(.*):.*\")",
    "label_join(memory_bytes, \"id\", \"/\", \"job\", \"instance\")",
    "absent(nonexistent{job=\"x\"})",
    "absent_over_time(memory_bytes{job=\"web\"}[1m])",
    "timestamp(memory_bytes)",
    "scalar(sum(memory_bytes)) / 1e6",
    "vector(time())",
    "hour(vector(time())) + minute(vector(time()))",
    "memory_bytes offset 5m",
    "rate(http_requests_total[5m] offset 10m)",
    "memory_bytes @ 1700000907.5",
    "max_over_time(rate(http_requests_total[2m])[10m:1m])",
    "avg_over_time(sum by (job) (memory_bytes)[15m:30s])",
    "-memory_bytes",
    "2 ^ 3 ^ 2",
    "1 - 2 * 3 % 4 / 5",
];

#[test]
fn pyrite_answers_like_upstream_prometheus() {
    let upstream = Upstream::start();
    let pyrite = Pyrite::start(PyriteOpts { shards: Some(3), ..Default::default() });
    let body = encode_write_request(&data());
    let (status, text) = remote_write_to(&upstream.url, &body);
    assert!(status == 204 || status == 200, "upstream refused the data: {status} {text}");
    assert_eq!(pyrite.remote_write(body).0, 204);

    let differences: Vec<String> = QUERIES.iter().flat_map(|q| differences(&pyrite.url, &upstream.url, q)).collect();
    assert!(differences.is_empty(), "{} differences from upstream:\n{}", differences.len(), differences.join("\n"));
}

/// Long queries as Grafana users write them; `format_query` must split them exactly where
/// upstream does. (Vector-matching modifiers are left out: 2.42 prints `on(x)` where 3.x, and
/// Pyrite, print `on (x)`.)
const LONG_QUERIES: &[&str] = &[
    r#"sum by (job, instance) (rate(http_requests_total{job="api",code=~"5..",instance=~"10\\.0\\.0\\..*"}[5m])) / sum by (job, instance) (rate(http_requests_total{job="api"}[5m]))"#,
    r#"histogram_quantile(0.99, sum by (le, job) (rate(request_seconds_bucket{job=~"api|web",instance!="10.0.0.1:9100"}[5m])))"#,
    r#"max_over_time(sum by (job) (rate(http_requests_total{job="api",code="200",instance=~"10.0.0.*"}[1m]))[30m:1m])"#,
    r#"-(sum(rate(http_requests_total{job="api",code="500"}[5m])) + sum(rate(http_requests_total{job="web",code="500"}[5m])))"#,
    r#"topk(5, sort_desc(label_replace(rate(http_requests_total{job="api",code="200"}[5m]), "svc", "$1", "instance", "(.*):.*")))"#,
    r#"quantile without (instance) (0.9, rate(http_requests_total{job="api"}[5m] offset 1h)) > 0.5 * avg_over_time(memory_bytes[10m])"#,
    "up",
];

#[test]
fn format_query_splits_long_queries_like_upstream() {
    let upstream = Upstream::start();
    let pyrite = Pyrite::start(PyriteOpts::default());
    let mut differences = Vec::new();
    for q in LONG_QUERIES {
        let path = format!("/api/v1/format_query?query={}", encode(q));
        let ours = json(&http_get(&format!("{}{path}", pyrite.url)).expect("pyrite").1)["data"].clone();
        let theirs = json(&http_get(&format!("{}{path}", upstream.url)).expect("upstream").1)["data"].clone();
        if ours != theirs {
            differences.push(format!(
                "{q}\n--- pyrite:\n{}\n--- upstream:\n{}",
                ours.as_str().unwrap_or("?"),
                theirs.as_str().unwrap_or("?")
            ));
        }
    }
    assert!(differences.is_empty(), "{} differences:\n{}", differences.len(), differences.join("\n\n"));
}
