//! Client load, on plain threads: the dashboard queries at a fixed rate, and remote writes of
//! synthetic series at a fixed interval, against any number of servers at once.

use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::Sample;

/// The dashboard every benchmark runs, over the HTTP-service series of the `mixed` profile
/// and of the benchmarks' remote-written data set alike: (name, query, whether it is a range
/// query over an hour at 15 s steps).
pub const DASHBOARD: [(&str, &str, bool); 6] = [
    ("sum_rate_by_status", "sum by (status) (rate(http_requests_total[5m]))", false),
    ("histogram_p99", "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))", false),
    ("topk_10", "topk(10, rate(http_requests_total[5m]))", false),
    ("regex_selection", "sum(rate(http_requests_total{handler=~\"/api/[12]\", status=~\"5..\"}[5m]))", false),
    ("count_all", "count({__name__=~\".+\"})", false),
    ("range_1h_sum_rate", "sum by (handler) (rate(http_requests_total[5m]))", true),
];

/// Seconds since the epoch.
pub fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The API path that runs `query` at `now` (seconds): an instant query, or a range query over
/// the hour before at 15 s steps.
pub fn query_path(query: &str, range: bool, now: f64) -> String {
    let q: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
    if range {
        format!("/api/v1/query_range?query={q}&start={:.3}&end={now:.3}&step=15", now - 3600.0)
    } else {
        format!("/api/v1/query?query={q}&time={now:.3}")
    }
}

/// Runs `tick` every `period`, forever, on a thread of its own.
fn every(period: Duration, mut tick: impl FnMut() + Send + 'static) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut next = Instant::now();
        loop {
            tick();
            next += period;
            match next.checked_duration_since(Instant::now()) {
                Some(wait) => std::thread::sleep(wait),
                None => next = Instant::now(), // behind: do not try to catch up in a burst
            }
        }
    })
}

/// Sends the dashboard queries in turn to each of `urls`, `per_second` queries per second to
/// each. Errors are reported, not fatal: the load must go on.
pub fn query_load(urls: Vec<String>, per_second: f64) -> JoinHandle<()> {
    let mut next = 0usize;
    let mut failed = vec![false; urls.len()];
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
    every(Duration::from_secs_f64(1.0 / per_second.max(1e-3)), move || {
        let (_, query, range) = DASHBOARD[next % DASHBOARD.len()];
        next += 1;
        let path = query_path(query, range, now_secs());
        for (url, failed) in urls.iter().zip(&mut failed) {
            // Servers may start after the load; report only the first failure of each.
            if let Err(e) = agent.get(&format!("{url}{path}")).call() {
                if !std::mem::replace(failed, true) {
                    eprintln!("pyrite-loadgen: a query to {url} failed ({e}); further failures are not shown");
                }
            }
        }
    })
}

/// Remote-writes `series` counters (`loadgen_pushed_requests_total{host, route}`) to each of
/// `urls` every `interval`, in requests of at most 2,000 series.
pub fn remote_write_load(urls: Vec<String>, series: usize, interval: Duration) -> JoinHandle<()> {
    let labels: Vec<Labels> = (0..series)
        .map(|i| {
            Labels::from_pairs([
                ("__name__", "loadgen_pushed_requests_total".to_string()),
                ("host", format!("push{}", i / 100)),
                ("route", format!("r{}", i % 100)),
            ])
        })
        .collect();
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
    let started = Instant::now();
    every(interval, move || {
        let t = (now_secs() * 1000.0) as i64;
        let elapsed = started.elapsed().as_secs_f64();
        for (c, chunk) in labels.chunks(2000).enumerate() {
            let batch: Vec<WriteSeries> = chunk
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let v = ((c * 2000 + i) % 7 + 1) as f64 * elapsed;
                    WriteSeries {
                        labels: l.clone(),
                        samples: vec![Sample { t, v: v.floor() }],
                        exemplars: Vec::new(),
                        histograms: Vec::new(),
                    }
                })
                .collect();
            let body = encode_write_request(&batch);
            for url in &urls {
                let sent = agent
                    .post(&format!("{url}/api/v1/write"))
                    .set("Content-Encoding", "snappy")
                    .set("Content-Type", "application/x-protobuf")
                    .set("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .send_bytes(&body);
                if let Err(e) = sent {
                    eprintln!("pyrite-loadgen: remote write to {url} failed: {e}");
                }
            }
        }
    })
}
