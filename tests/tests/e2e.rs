//! The foundation's end-to-end check: loadgen targets scraped by the real binary (gzip bodies),
//! a remote-written series read back exactly, and the same answers with io_uring, with forced
//! epoll, and with io_uring blocked by a seccomp filter, on one shard and on several.

use std::time::Duration;

use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::Sample;
use pyrite_tests::seccomp::Block;
use pyrite_tests::{eventually, http_post_form, Loadgen, Pyrite, PyriteOpts};
use serde_json::Value;

const TARGETS: usize = 10;
const SERIES: usize = 200;
/// Start of the remote-written data set (2023-11-14T22:13:20Z), in ms.
const T0: i64 = 1_700_000_000_000;

fn scalar(v: &Value) -> f64 {
    v["value"][1].as_str().expect("sample value").parse().expect("float")
}

/// A deterministic data set: counters with a reset and gauges, 60 samples 15 s apart.
fn remote_data() -> Vec<WriteSeries> {
    let mut out = Vec::new();
    for i in 0..12 {
        let job = if i % 3 == 0 { "batch" } else { "api" };
        let instance = format!("10.0.0.{i}:9100");
        let counter = (0..60)
            .map(|k| {
                let raw = (k as f64) * (i as f64 + 1.5) + 0.1 * i as f64;
                Sample {
                    t: T0 + k * 15_000,
                    v: if k >= 40 && i % 4 == 0 { raw - 30.0 * (i as f64 + 1.5) } else { raw },
                }
            })
            .collect();
        out.push(WriteSeries {
            labels: Labels::from_pairs([("__name__", "rw_requests_total"), ("job", job), ("instance", &instance)]),
            samples: counter,
            exemplars: Vec::new(),
            histograms: Vec::new(),
        });
        let gauge = (0..60).map(|k| Sample { t: T0 + k * 15_000, v: ((k * 7 + i * 13) % 100) as f64 / 3.0 }).collect();
        out.push(WriteSeries {
            labels: Labels::from_pairs([("__name__", "rw_temperature"), ("job", job), ("instance", &instance)]),
            samples: gauge,
            exemplars: Vec::new(),
            histograms: Vec::new(),
        });
    }
    out
}

/// Queries over the remote-written data whose answers must not depend on driver or shards.
const DETERMINISTIC_QUERIES: &[&str] = &[
    "rw_requests_total",
    "sum by (job) (rate(rw_requests_total[2m]))",
    "sum(increase(rw_requests_total[5m]))",
    "max by (instance) (irate(rw_requests_total[1m]))",
    "avg without (instance) (rw_temperature)",
    "count(rw_temperature > 10)",
    "rw_temperature offset 5m < bool 20",
    "sum by (job) (rw_temperature) / on(job) count by (job) (rw_temperature)",
    "-rw_temperature{job=\"batch\"} * 2 + 1",
    "min(rw_temperature) - max(rw_temperature)",
];

/// One way of running the server.
struct Setup {
    /// `--runtime.driver`.
    driver: &'static str,
    shards: usize,
    seccomp: Option<Block>,
    /// The driver the shards must end up with.
    expect: &'static str,
}

/// Runs the whole scenario on one configuration; returns the deterministic answers.
fn scenario(setup: &Setup) -> Vec<String> {
    let loadgen = Loadgen::start(TARGETS, SERIES);
    let pyrite = Pyrite::start(PyriteOpts {
        config: Some(loadgen.scrape_config("app", "1s")),
        shards: Some(setup.shards),
        driver: Some(setup.driver),
        seccomp: setup.seccomp,
        ..Default::default()
    });
    let metrics = pyrite.get("/metrics").1;
    let driver_line = format!("pyrite_runtime_driver{{shard=\"0\",driver=\"{}\"}} 1", setup.expect);
    assert!(metrics.contains(&driver_line), "{driver_line} not in /metrics:\n{metrics}");

    // All targets up after a couple of scrape intervals.
    let up = eventually(Duration::from_secs(10), || {
        let r = pyrite.query("sum(up)", None);
        (r.as_array()?.len() == 1 && scalar(&r[0]) == TARGETS as f64).then_some(())
    });
    assert!(up.is_some(), "not all {TARGETS} targets up: {}", pyrite.query("up", None));

    // The counters' total rate matches what loadgen generates.
    let expected = TARGETS as f64 * pyrite_loadgen::counter_rate_sum(SERIES);
    std::thread::sleep(Duration::from_secs(5));
    let got = scalar(&pyrite.query("sum(rate(loadgen_http_requests_total[4s]))", None)[0]);
    assert!((got - expected).abs() / expected < 0.1, "sum of rates {got}, expected about {expected}");
    let series = scalar(&pyrite.query("count({job=\"app\"})", None)[0]);
    assert_eq!(series, (TARGETS * (SERIES + 5)) as f64, "scraped series plus 5 report series per target");

    // A vanished target: up drops to 0 and its series go stale at once.
    let gone = &loadgen.targets[0];
    let (status, _) = http_post_form(&format!("http://{gone}/-/vanish"), &[]).expect("vanish");
    assert_eq!(status, 200);
    let stale = eventually(Duration::from_secs(5), || {
        let up = pyrite.query(&format!("up{{instance=\"{gone}\"}}"), None);
        let left = pyrite.query(&format!("loadgen_http_requests_total{{instance=\"{gone}\"}}"), None);
        (scalar(&up[0]) == 0.0 && left.as_array()?.is_empty()).then_some(())
    });
    assert!(stale.is_some(), "vanished target's series did not go stale");
    let others = pyrite.query("count(loadgen_memory_usage_bytes)", None);
    assert_eq!(scalar(&others[0]), ((TARGETS - 1) * (SERIES / 5)) as f64);

    // Remote write with exact timestamps comes back exactly.
    let data = remote_data();
    let (status, body) = pyrite.remote_write(encode_write_request(&data));
    assert_eq!(status, 204, "{body}");
    let first = &data[0];
    let name_job_instance: Vec<String> = first.labels.iter().map(|l| format!("{}=\"{}\"", l.name, l.value)).collect();
    let selector = format!("{{{}}}", name_job_instance.join(","));
    let start = T0 as f64 / 1000.0;
    let end = start + 59.0 * 15.0;
    let r = pyrite.query_range(&selector, start, end, 15.0);
    let values = r[0]["values"].as_array().expect("values");
    assert_eq!(values.len(), 60);
    for (got, want) in values.iter().zip(&first.samples) {
        assert_eq!(got[0].as_f64(), Some(want.t as f64 / 1000.0));
        assert_eq!(got[1].as_str().and_then(|v| v.parse::<f64>().ok()), Some(want.v), "exact value at {}", want.t);
    }

    DETERMINISTIC_QUERIES
        .iter()
        .flat_map(|q| {
            let range = pyrite.query_range(q, start, end + 300.0, 30.0);
            let instant = pyrite.query(q, Some(start + 600.0));
            [format!("{q} range: {range}"), format!("{q} instant: {instant}")]
        })
        .collect()
}

#[test]
fn scrape_remote_write_and_query_give_one_answer_on_every_driver_and_shard_count() {
    let setup = |driver, shards, seccomp, expect| Setup { driver, shards, seccomp, expect };
    let reference = scenario(&setup("io_uring", 1, None, "io_uring"));
    assert!(reference.iter().all(|a| !a.ends_with("[]")), "every deterministic query returns data: {reference:#?}");
    for s in [
        setup("io_uring", 3, None, "io_uring"),
        setup("epoll", 1, None, "epoll"),
        setup("epoll", 3, None, "epoll"),
        setup("auto", 2, Some(Block::AllIoUring), "epoll"),
    ] {
        let answers = scenario(&s);
        for (want, got) in reference.iter().zip(&answers) {
            assert_eq!(
                got, want,
                "--runtime.driver={} with {} shards ({:?}) differs from io_uring on 1 shard",
                s.driver, s.shards, s.seccomp
            );
        }
    }
}
