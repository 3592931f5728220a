//! Scraping the protobuf exposition format end to end.
//!
//! A loadgen target serving native histograms (schema 3, with their classic buckets) in the
//! protobuf format is scraped by Pyrite and by upstream Prometheus (Debian's 2.42 with
//! `--enable-feature=native-histograms`) side by side, and their answers to the same queries
//! compared. It is deterministic: the loadgen rounds each scrape's time down to a 2 s step and
//! stamps every sample with it (`--timestamp-step-ms`), and both servers scrape every second,
//! so both store the same samples at the same times whatever their scrape timing. Queries are
//! evaluated where both have every sample of the window, half a step off the sample grid (so
//! 2.x's closed and 3.x's left-open range windows hold the same samples), in the steady state
//! where 2.42's and 3.x's histogram semantics agree (see `native_histograms.rs`); answers are
//! compared as `pyrite_tests::side_by_side` compares them.
//!
//! Then Pyrite alone: classic series kept beside native histograms
//! (`always_scrape_classic_histograms`), classic histograms converted to custom buckets from
//! the text format (`convert_classic_histograms_to_nhcb`, set for the target by relabeling), a bucket limit that reduces the
//! resolution, and hostile protobuf bodies that fail their scrape with a clear error.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::time::Duration;

use pyrite_tests::side_by_side::{compare, result_points, Point, Points};
use pyrite_tests::{encode, eventually, http_get, Loadgen, Pyrite, PyriteOpts, Upstream};

/// The loadgen's step: samples are stamped on multiples of it.
const STEP_MS: i64 = 2000;

fn loadgen(targets: usize, series: usize) -> Loadgen {
    let flags = ["--native-histograms", "--timestamp-step-ms", &STEP_MS.to_string()].map(String::from);
    Loadgen::start_with(targets, series, &flags)
}

/// A scrape config of `job` for the loadgen's targets, with `extra` keys (YAML flow pairs).
fn job(loadgen: &Loadgen, job: &str, extra: &str) -> String {
    let targets: Vec<String> = loadgen.targets.iter().map(|t| format!("'{t}'")).collect();
    format!("  - {{job_name: {job}, static_configs: [{{targets: [{}]}}]{extra}}}\n", targets.join(", "))
}

/// A query's answer from the server at `url`.
fn points(url: &str, path: &str) -> Points {
    result_points(&http_get(&format!("{url}{path}")).expect("query").1, &format!("{url}{path}"))
}

/// The times (ms) at which every series of `selector` has a sample, over the last minute on a
/// server.
fn sample_times(url: &str, selector: &str) -> BTreeSet<i64> {
    let path = format!("/api/v1/query?query={}", encode(&format!("{selector}[1m]")));
    let times = |series: &Vec<(f64, Point)>| series.iter().map(|(t, _)| (t * 1000.0).round() as i64).collect();
    let mut all = points(url, &path).values().map(times).collect::<Vec<BTreeSet<i64>>>().into_iter();
    let first = all.next().unwrap_or_default();
    all.fold(first, |common, next| common.intersection(&next).copied().collect())
}

/// Series of every target, each in every scrape.
const SELECTOR: &str = "loadgen_memory_usage_bytes{job=\"lg\",pool=\"pool0\"}";

/// Queries answered by both servers; windows are 10 s, five samples.
const QUERIES: &[&str] = &[
    "loadgen_request_duration_seconds{job=\"lg\"}",
    "loadgen_request_duration_seconds{job=\"lg\"}[10s]",
    "histogram_count(loadgen_request_duration_seconds{job=\"lg\"})",
    "histogram_sum(loadgen_request_duration_seconds{job=\"lg\"})",
    "rate(loadgen_request_duration_seconds{job=\"lg\"}[10s])",
    "histogram_count(rate(loadgen_request_duration_seconds{job=\"lg\"}[10s]))",
    "histogram_sum(rate(loadgen_request_duration_seconds{job=\"lg\"}[10s]))",
    "sum by (handler) (rate(loadgen_request_duration_seconds{job=\"lg\"}[10s]))",
    "sum(loadgen_request_duration_seconds{job=\"lg\"})",
    "rate(loadgen_http_requests_total{job=\"lg\"}[10s])",
    "loadgen_memory_usage_bytes{job=\"lg\"}",
    "loadgen_request_duration_seconds_bucket{job=\"lg\"}",
];

#[test]
fn native_histograms_scraped_as_protobuf_answer_like_upstream() {
    let lg = loadgen(2, 100);
    let upstream_config = format!("global:\n  scrape_interval: 1s\nscrape_configs:\n{}", job(&lg, "lg", ""));
    let upstream = Upstream::start_configured(&upstream_config, &["--enable-feature=native-histograms"]);
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n{}",
        job(&lg, "lg", ", scrape_native_histograms: true")
    );
    let pyrite = Pyrite::start(PyriteOpts { config: Some(config), shards: Some(2), ..Default::default() });

    // Both have scraped for at least 30 s (samples stamped on the loadgen's 2 s grid).
    let common = eventually(Duration::from_secs(90), || {
        let ours = sample_times(&pyrite.url, SELECTOR);
        let theirs = sample_times(&upstream.url, SELECTOR);
        let common: Vec<i64> = ours.intersection(&theirs).copied().collect();
        (common.len() >= 17).then_some(common)
    })
    .expect("both servers scraped the loadgen for 30 s");
    // One step back from the newest: every series of that scrape is surely stored everywhere.
    let (first, last) = (common[0], common[common.len() - 2]);
    // Half a step past grid points; every window (10 s) within what both have.
    let at = |t: i64| (t + STEP_MS / 2) as f64 / 1000.0;
    let times = [last, last - 2 * STEP_MS, last - 5 * STEP_MS];
    assert!(times.iter().all(|&t| t - 10_000 > first), "{common:?}");

    let mut found = Vec::new();
    for q in QUERIES {
        let mut paths: Vec<(String, String)> = times
            .iter()
            .map(|&t| (format!("{q} at {}", at(t)), format!("/api/v1/query?query={}&time={}", encode(q), at(t))))
            .collect();
        if !q.ends_with(']') {
            let (start, end) = (at(last - 6 * STEP_MS), at(last));
            paths.push((
                format!("{q} over a range"),
                format!("/api/v1/query_range?query={}&start={start}&end={end}&step=2", encode(q)),
            ));
        }
        for (what, path) in paths {
            let (ours, theirs) = (points(&pyrite.url, &path), points(&upstream.url, &path));
            // Native histograms win over their classic buckets, in both.
            if q.contains("_bucket") {
                if !(ours.is_empty() && theirs.is_empty()) {
                    found.push(format!("{what}: classic buckets stored\n  pyrite: {ours:?}\n  prometheus: {theirs:?}"));
                }
                continue;
            }
            if ours.is_empty() {
                found.push(format!("{what}: no answer"));
            }
            found.extend(compare(&what, &ours, &theirs));
        }
    }
    assert!(found.is_empty(), "{} differences from upstream:\n{}", found.len(), found.join("\n"));

    // A native histogram counts as one sample scraped, as upstream counts it.
    let scraped = "scrape_samples_scraped{job=\"lg\"}";
    let path = format!("/api/v1/query?query={}", encode(scraped));
    let counts = |url: &str| -> Vec<f64> {
        points(url, &path)
            .values()
            .map(|p| match p[0].1 {
                Point::Float(v) => v,
                Point::Histogram(_) => f64::NAN,
            })
            .collect()
    };
    assert_eq!(counts(&pyrite.url), counts(&upstream.url));
    assert_eq!(counts(&pyrite.url), [78.0, 78.0], "56 counters, 20 gauges and 2 histograms a target");
}

/// A target that answers every scrape with `body` as a protobuf exposition.
fn protobuf_target(body: &'static [u8]) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
        }
    });
    address
}

/// `data.result` of a query at `t` (seconds).
fn result(p: &Pyrite, q: &str, t: f64) -> Points {
    points(&p.url, &format!("/api/v1/query?query={}&time={t}", encode(q)))
}

/// Every histogram of an answer, each `[count, sum, buckets...]`; a float is a failure.
fn histograms_of(points: &Points) -> Vec<Vec<f64>> {
    points
        .values()
        .flatten()
        .map(|(_, p)| match p {
            Point::Histogram(h) => h.clone(),
            Point::Float(v) => panic!("a float {v} where a histogram was expected"),
        })
        .collect()
}

#[test]
fn classic_series_conversions_limits_and_hostile_bodies() {
    let lg = loadgen(1, 60);
    // A message longer than the body; a histogram whose spans need more buckets than it has.
    let truncated = protobuf_target(&[0x10, 0x0a, 0x01, b'a']);
    let inconsistent = protobuf_target(&[
        0x14, 0x0a, 0x01, b'h', 0x18, 0x04, 0x22, 0x0d, 0x3a, 0x0b, 0x08, 0x01, 0x62, 0x04, 0x08, 0x00, 0x10, 0x03,
        0x6a, 0x01, 0x02,
    ]);
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n{}{}{}{}  - {{job_name: bad, scrape_native_histograms: true, static_configs: [{{targets: ['{truncated}', '{inconsistent}']}}]}}\n",
        job(&lg, "native", ", scrape_native_histograms: true"),
        job(&lg, "classic", ", scrape_native_histograms: true, always_scrape_classic_histograms: true"),
        // Per target, by relabeling (upstream 3.x's label for `convert_classic_histograms_to_nhcb`).
        job(&lg, "nhcb", ", relabel_configs: [{target_label: __convert_classic_histograms_to_nhcb__, replacement: 'true'}]"),
        job(&lg, "limited", ", scrape_native_histograms: true, native_histogram_bucket_limit: 4"),
    );
    let pyrite = Pyrite::start(PyriteOpts { config: Some(config), ..Default::default() });
    let native = "loadgen_request_duration_seconds{job=\"native\"}";
    // A time when the jobs with explicit timestamps all have their latest sample.
    let times = eventually(Duration::from_secs(60), || {
        let mut common = sample_times(&pyrite.url, native);
        for other in ["classic", "limited"] {
            let theirs = sample_times(&pyrite.url, &format!("loadgen_request_duration_seconds{{job=\"{other}\"}}"));
            common.retain(|t| theirs.contains(t));
        }
        (common.len() >= 8).then_some(common)
    })
    .expect("native histograms scraped");
    let t = (*times.iter().nth_back(1).unwrap() + STEP_MS / 2) as f64 / 1000.0;

    // Native histograms win over their classic buckets, unless both are asked for.
    assert!(result(&pyrite, "loadgen_request_duration_seconds_bucket{job=\"native\"}", t).is_empty());
    let classic = result(&pyrite, "loadgen_request_duration_seconds_count{job=\"classic\"}", t);
    let native_count = result(&pyrite, &format!("histogram_count({native})"), t);
    let values = |p: &Points| -> Vec<Point> { p.values().flatten().map(|(_, v)| v.clone()).collect() };
    assert!(!classic.is_empty());
    assert_eq!(values(&classic), values(&native_count), "the classic count is the native one");
    let classic_native = result(&pyrite, "loadgen_request_duration_seconds{job=\"classic\"}", t);
    assert_eq!(histograms_of(&classic_native), histograms_of(&result(&pyrite, native, t)));

    // From the text format, converted to custom buckets: each sample one the native
    // histogram also had (count and sum), bounds those of the classic buckets.
    let converted = points(
        &pyrite.url,
        &format!("/api/v1/query?query={}&time={t}", encode("loadgen_request_duration_seconds{job=\"nhcb\"}[20s]")),
    );
    let natives: BTreeSet<(u64, u64)> = histograms_of(&points(
        &pyrite.url,
        &format!("/api/v1/query?query={}&time={t}", encode(&format!("{native}[40s]"))),
    ))
    .iter()
    .map(|h| (h[0].to_bits(), h[1].to_bits()))
    .collect();
    let converted = histograms_of(&converted);
    assert!(!converted.is_empty(), "converted histograms stored");
    for h in &converted {
        assert!(
            natives.contains(&(h[0].to_bits(), h[1].to_bits())),
            "count {} and sum {} were never exposed",
            h[0],
            h[1]
        );
        let uppers: Vec<f64> = h[2..].chunks(4).map(|b| b[2]).collect();
        assert!(
            uppers.iter().all(|u| [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, f64::INFINITY].contains(u)),
            "{uppers:?}"
        );
    }
    assert!(result(&pyrite, "loadgen_request_duration_seconds_count{job=\"nhcb\"}", t).is_empty());

    // Over the bucket limit: the resolution halves until at most 4 buckets are left.
    let limited = histograms_of(&result(&pyrite, "loadgen_request_duration_seconds{job=\"limited\"}", t));
    let full = histograms_of(&result(&pyrite, native, t));
    assert_eq!(limited.len(), 1);
    assert!((limited[0].len() - 2) / 4 <= 4 + 1, "at most 4 buckets and the zero bucket: {limited:?}");
    assert!((full[0].len() - 2) / 4 > 5, "{full:?}");
    assert_eq!(limited[0][..2], full[0][..2], "the same count and sum");

    // The metadata of a protobuf family.
    let metadata = pyrite.data("/api/v1/metadata?metric=loadgen_request_duration_seconds");
    assert_eq!(metadata["loadgen_request_duration_seconds"][0]["type"], "histogram", "{metadata}");
    assert_eq!(metadata["loadgen_request_duration_seconds"][0]["help"], "Request latency.");

    // Hostile bodies fail their scrape, saying why.
    let errors = eventually(Duration::from_secs(30), || {
        let targets = pyrite.data("/api/v1/targets")["activeTargets"].as_array().cloned()?;
        let bad: Vec<(String, String)> = targets
            .iter()
            .filter(|t| t["labels"]["job"] == "bad" && t["health"] == "down")
            .map(|t| {
                (
                    t["labels"]["instance"].as_str().unwrap_or("").to_string(),
                    t["lastError"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        (bad.len() == 2).then_some(bad.into_iter().collect::<BTreeMap<_, _>>())
    })
    .expect("both hostile targets down");
    assert_eq!(
        errors[&truncated],
        "protobuf format parsing error in metric family 1: message of 16 bytes, but only 3 bytes left in the body"
    );
    assert_eq!(
        errors[&inconsistent],
        "protobuf format parsing error in metric family 1: histogram \"h\": positive side: spans require 3 buckets, have 1"
    );
}
