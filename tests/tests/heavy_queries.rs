//! Heavy queries beside the shard's other work: while a query evaluates for seconds, the
//! shard it reads from keeps scraping on schedule and answering HTTP, and once the query is
//! past its deadline the process stops spending CPU on it; an aggregation over more series than
//! the shard hands over in one batch folds each of them once. Each against the real binary, on
//! one shard, where nothing else could hide a stalled thread.

use std::time::{Duration, Instant};

use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::Sample;
use pyrite_tests::{encode, eventually, http_get_within, json, Pyrite, PyriteOpts};

/// About 43 million steps for each of ten series: seconds of CPU whatever its timeout.
const HEAVY: &str = "max_over_time(kept[12h:1ms])";

/// Milliseconds since the epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// A server on `shards` shards scraping a target every second, holding `kept{i="0".."9"}`
/// over the last ten seconds; returned once the target has been scraped three times.
fn scraping_server(shards: usize) -> Pyrite {
    let body = "some_metric 1\n";
    let response = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let target = pyrite_tests::fake_target(Some(Box::leak(response.into_boxed_str())));
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: t\n    static_configs:\n      - targets: [\"{target}\"]\n"
    );
    let p = Pyrite::start(PyriteOpts {
        config: Some(config),
        shards: Some(shards),
        extra_args: vec!["--query.max-samples=500000000".into()],
        ..Default::default()
    });
    let now = now_ms();
    let series: Vec<WriteSeries> = (0..10)
        .map(|i| WriteSeries {
            labels: Labels::from_pairs([("__name__", "kept".to_string()), ("i", i.to_string())]),
            samples: (0..10).map(|k| Sample { t: now - 10_000 + k * 1000, v: k as f64 }).collect(),
            exemplars: Vec::new(),
            histograms: Vec::new(),
        })
        .collect();
    assert_eq!(p.remote_write(encode_write_request(&series)).0, 204);
    let scraped = eventually(Duration::from_secs(10), || (scrape_times(&p, now_ms()).len() >= 3).then_some(()));
    assert!(scraped.is_some(), "the target was not scraped three times in 10 s");
    p
}

/// The times (ms) of the target's scrapes in the minute before `until`.
fn scrape_times(p: &Pyrite, until: i64) -> Vec<i64> {
    let at = until as f64 / 1000.0;
    let result = p.query("up{job=\"t\"}[1m]", Some(at));
    let Some(values) = result[0]["values"].as_array() else { return Vec::new() };
    values.iter().filter_map(|v| v[0].as_f64()).map(|t| (t * 1000.0).round() as i64).collect()
}

/// Runs the heavy query back to back `queries` times on each of `clients` threads, each with
/// `timeout`, and watches the server meanwhile.
fn watch_heavy_queries(p: &Pyrite, clients: usize, queries: usize, timeout: &str) -> Watched {
    let url = format!("{}/api/v1/query?query={}&timeout={timeout}", p.url, encode(HEAVY));
    let started = now_ms();
    let running: Vec<_> = (0..clients)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                for _ in 0..queries {
                    let (status, body) = http_get_within(&url, Duration::from_secs(60)).expect("an answer");
                    assert_eq!(status, 503, "the heavy query was meant to time out: {body}");
                    assert_eq!(json(&body)["errorType"], "timeout", "{body}");
                }
            })
        })
        .collect();
    let mut watched = Watched::default();
    let light = format!("{}/api/v1/query?query={}", p.url, encode("count(kept)"));
    while running.iter().any(|t| !t.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        let asked = Instant::now();
        let (status, _) = http_get_within(&format!("{}/-/healthy", p.url), Duration::from_secs(60)).expect("healthy");
        assert_eq!(status, 200);
        watched.healthy = watched.healthy.max(asked.elapsed());
        let asked = Instant::now();
        let (status, body) = http_get_within(&light, Duration::from_secs(60)).expect("light query");
        assert_eq!(status, 200, "{body}");
        assert_eq!(json(&body)["data"]["result"][0]["value"][1], "10", "{body}");
        watched.light = watched.light.max(asked.elapsed());
    }
    for t in running {
        t.join().expect("the heavy queries were answered as expected");
    }
    let ended = now_ms();
    watched.lasted = Duration::from_millis((ended - started) as u64);
    // The scrape after the end, so that a gap reaching past it shows.
    std::thread::sleep(Duration::from_millis(1500));
    let times: Vec<i64> =
        scrape_times(p, now_ms()).into_iter().filter(|&t| t >= started - 1000 && t <= ended + 1500).collect();
    assert!(times.len() >= 2, "scrapes while the queries ran: {times:?}");
    watched.scrape_gap = Duration::from_millis(times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) as u64);
    eprintln!("{clients} client(s) x {queries} heavy queries (timeout {timeout}): {watched:?}");
    watched
}

/// What the server did while heavy queries ran.
#[derive(Debug, Default)]
struct Watched {
    /// How long the heavy queries ran.
    lasted: Duration,
    /// The longest `/-/healthy` took.
    healthy: Duration,
    /// The longest a light query took.
    light: Duration,
    /// The longest time between two scrapes of the target (every second).
    scrape_gap: Duration,
}

impl Watched {
    fn assert_kept_pace(&self) {
        assert!(self.lasted >= Duration::from_secs(2), "the heavy queries were not heavy: {self:?}");
        assert!(self.scrape_gap <= Duration::from_secs(3), "scrapes were held up: {self:?}");
        assert!(self.healthy <= Duration::from_secs(1), "/-/healthy was held up: {self:?}");
        assert!(self.light <= Duration::from_secs(2), "a light query was held up: {self:?}");
    }
}

#[test]
fn a_heavy_query_holds_up_neither_scrapes_nor_other_requests_of_its_shard() {
    let p = scraping_server(1);
    watch_heavy_queries(&p, 1, 1, "5s").assert_kept_pace();
}

#[test]
fn back_to_back_heavy_queries_hold_up_neither_scrapes_nor_other_requests_of_their_shard() {
    let p = scraping_server(1);
    watch_heavy_queries(&p, 2, 3, "2s").assert_kept_pace();
}

/// Past its deadline a query stops using CPU on every shard, not only answering.
#[test]
fn a_timed_out_query_stops_using_cpu() {
    let p = scraping_server(2);
    let quiet = p.process.cpu_seconds();
    std::thread::sleep(Duration::from_secs(1));
    eprintln!("CPU in a quiet second: {} s", p.process.cpu_seconds() - quiet);
    let url = format!("{}/api/v1/query?query={}&timeout=1s", p.url, encode(HEAVY));
    let (status, body) = http_get_within(&url, Duration::from_secs(60)).expect("an answer");
    assert_eq!(status, 503, "{body}");
    // The goal: stopped on every shard within 100 ms of the timeout.
    std::thread::sleep(Duration::from_millis(100));
    let before = p.process.cpu_seconds();
    std::thread::sleep(Duration::from_secs(1));
    let used = p.process.cpu_seconds() - before;
    // Two scrapes and the idle shards' timers cost milliseconds; the heavy query a core.
    eprintln!("CPU in the second from 100 ms after the timeout: {used} s");
    assert!(used < 0.25, "{used} s of CPU in the second after the query timed out");
}

/// An aggregation over more series than one batch (65,536), read from the head alone, which the
/// shard streams to the query worker a batch at a time while it reads the next: each series is
/// folded once, in instant and range queries, and `topk` keeps the best of all the batches.
#[test]
fn an_aggregation_over_more_series_than_a_batch_folds_each_once() {
    const SERIES: i64 = 150_000;
    let p = Pyrite::start(PyriteOpts { shards: Some(1), ..Default::default() });
    let now = now_ms();
    let ids: Vec<i64> = (0..SERIES).collect();
    for ids in ids.chunks(50_000) {
        let series: Vec<WriteSeries> = ids
            .iter()
            .map(|&i| WriteSeries {
                labels: Labels::from_pairs([
                    ("__name__", "wide".to_string()),
                    ("g", (i % 3).to_string()),
                    ("i", i.to_string()),
                ]),
                samples: vec![Sample { t: now - 20_000, v: i as f64 }, Sample { t: now - 5_000, v: (2 * i) as f64 }],
                exemplars: Vec::new(),
                histograms: Vec::new(),
            })
            .collect();
        assert_eq!(p.remote_write(encode_write_request(&series)).0, 204);
    }
    let value = |v: &serde_json::Value| v[1].as_str().expect("a value").parse::<f64>().expect("a number");
    let at = now as f64 / 1000.0;
    assert_eq!(value(&p.query("count(wide)", Some(at))[0]["value"]), SERIES as f64);
    // Each group's sum, of the first samples or the second.
    let sum = |g: i64, k: i64| (0..SERIES).filter(|i| i % 3 == g).map(|i| (k * i) as f64).sum::<f64>();
    let groups = p.query("sum by (g) (wide)", Some(at));
    for group in groups.as_array().expect("groups") {
        let g: i64 = group["metric"]["g"].as_str().expect("g").parse().expect("a group");
        assert_eq!(value(&group["value"]), sum(g, 2), "group {g}");
    }
    assert_eq!(groups.as_array().map(Vec::len), Some(3));
    // Steps at 20, 15, 10 and 5 s before `at`, and at it.
    let ranged = p.query_range("sum by (g) (wide)", at - 20.0, at, 5.0);
    for group in ranged.as_array().expect("groups") {
        let g: i64 = group["metric"]["g"].as_str().expect("g").parse().expect("a group");
        let got: Vec<f64> = group["values"].as_array().expect("values").iter().map(value).collect();
        let first = sum(g, 1);
        let second = sum(g, 2);
        assert_eq!(got, [first, first, first, second, second], "group {g}");
    }
    assert_eq!(ranged.as_array().map(Vec::len), Some(3));
    // The best of each batch, and the best of those.
    let best = p.query("topk(3, wide)", Some(at));
    let mut got: Vec<(String, f64)> = best
        .as_array()
        .expect("series")
        .iter()
        .map(|s| (s["metric"]["i"].as_str().expect("i").to_string(), value(&s["value"])))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let top = |i: i64| (i.to_string(), (2 * i) as f64);
    assert_eq!(got, [top(SERIES - 3), top(SERIES - 2), top(SERIES - 1)]);
    let ranged = p.query_range("bottomk(1, wide)", at - 20.0, at, 5.0);
    assert_eq!(ranged.as_array().map(Vec::len), Some(1), "{ranged}");
    assert_eq!(ranged[0]["metric"]["i"], "0");
    assert_eq!(ranged[0]["values"].as_array().map(Vec::len), Some(5));
}
