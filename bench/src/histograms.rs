//! `pyrite-bench histograms`: native histograms in Pyrite and in upstream Prometheus (Debian's
//! 2.42 with `--enable-feature=native-histograms`), side by side on the same data loaded by
//! remote write: request-latency histograms as client libraries expose them (schema 3, a dozen
//! buckets around each series' own typical latency, integer counts that grow by a varying
//! number every scrape), five minutes of them at 15 s.
//!
//! It reports each server's resident memory per series and per histogram sample (growth of
//! RSS from the idle server to the loaded one), bytes per histogram sample once the head is
//! flushed to disk (the admin snapshot: blocks, index included), the time each took to take the
//! load, and the median time of `histogram_quantile` and friends over every series.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pyrite_core::histogram::{FloatHistogram, Span};
use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::HistogramSample;
use pyrite_tests::{encode, http_get_within, remote_write_to, TempDir};

use crate::environment;
use crate::report::{self, Row};
use crate::servers::{Kind, Server};
use crate::usage::usage;

/// What a run loads and how often it asks each query.
pub struct Options {
    pub series: usize,
    /// Samples per series, 15 s apart.
    pub samples: i64,
    pub runs: usize,
    /// The command line that reproduces the run, for the report.
    pub command: String,
}

const STEP_MS: i64 = 15_000;
/// Series per remote-write request.
const BATCH: usize = 200;

/// The queries timed: a quantile of everything, one per handler, one per series (counted, so
/// that a million results do not measure JSON), and the observation rate.
const QUERIES: [(&str, &str); 4] = [
    ("p90 of all", "histogram_quantile(0.9, sum(rate(request_duration_seconds[5m])))"),
    ("p90 by handler", "histogram_quantile(0.9, sum by (handler) (rate(request_duration_seconds[5m])))"),
    ("p90 of each series, counted", "count(histogram_quantile(0.9, rate(request_duration_seconds[5m])))"),
    ("observations per second", "sum(histogram_count(rate(request_duration_seconds[5m])))"),
];

/// Series `i`'s histograms, one every 15 s from `start_ms`: observations around bucket `i % 40`
/// of schema 3 (a factor 2^(1/8) a bucket), more of them near the middle, a varying number each
/// scrape (so that neither server's encoding meets perfectly regular increments).
fn series_histograms(i: usize, samples: i64, start_ms: i64) -> Vec<HistogramSample> {
    const WIDTH: usize = 12;
    let scale = 1 + (i % 7) as u64;
    let mut buckets = [0u64; WIDTH];
    let mut sum = 0.0;
    let typical = 0.05 * (1.0 + (i % 40) as f64 / 10.0);
    (0..samples)
        .map(|k| {
            for (b, count) in buckets.iter_mut().enumerate() {
                let near_middle = (WIDTH as u64 / 2 + 1).saturating_sub((WIDTH / 2).abs_diff(b) as u64);
                // A cheap hash of (series, scrape, bucket) makes the noise.
                let noise = (i as u64 ^ (k as u64) << 20 ^ (b as u64) << 40).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 61;
                let observed = scale * near_middle * noise / 4;
                *count += observed;
                sum += observed as f64 * typical;
            }
            let positive_buckets: Vec<f64> = buckets.iter().map(|&c| c as f64).collect();
            let h = FloatHistogram {
                schema: 3,
                zero_threshold: 2.938735877055719e-39,
                count: positive_buckets.iter().sum(),
                sum,
                positive_spans: vec![Span { offset: -40 + (i % 40) as i32, length: WIDTH as u32 }],
                positive_buckets,
                ..FloatHistogram::default()
            };
            HistogramSample { t: start_ms + k * STEP_MS, h: Arc::new(h) }
        })
        .collect()
}

fn labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", "request_duration_seconds".to_string()),
        ("handler", format!("/api/{}", i % 20)),
        ("instance", format!("10.{}.{}.{}:8080", i / 65536, (i / 256) % 256, i % 256)),
    ])
}

/// Remote-writes the data set to `url`, a request of [`BATCH`] series (all their samples) at a
/// time; returns how long it took.
fn load(url: &str, opts: &Options, start_ms: i64) -> Result<Duration, String> {
    let started = Instant::now();
    for from in (0..opts.series).step_by(BATCH) {
        let batch: Vec<WriteSeries> = (from..(from + BATCH).min(opts.series))
            .map(|i| WriteSeries {
                labels: labels(i),
                samples: Vec::new(),
                exemplars: Vec::new(),
                histograms: series_histograms(i, opts.samples, start_ms),
            })
            .collect();
        let (status, text) = remote_write_to(url, &encode_write_request(&batch));
        if status / 100 != 2 {
            return Err(format!("{url} refused a batch: {status} {text}"));
        }
    }
    Ok(started.elapsed())
}

/// How long each server may take for a query (`--query.timeout`).
const QUERY_TIMEOUT: &str = "--query.timeout=3m";

/// The median wall time of `runs` runs of `query` at `t` (seconds) and its answer; the error if
/// the server failed it (past [`QUERY_TIMEOUT`], say), which the report shows instead.
fn time(url: &str, query: &str, t: f64, runs: usize) -> Result<(Duration, String), String> {
    let path = format!("{url}/api/v1/query?query={}&time={t}", encode(query));
    let mut times = Vec::with_capacity(runs);
    let mut answer = String::new();
    for _ in 0..runs {
        let started = Instant::now();
        let (status, body) = http_get_within(&path, Duration::from_secs(600))?;
        times.push(started.elapsed());
        if status != 200 {
            return Err(format!("{status} {body}"));
        }
        answer = body;
    }
    times.sort();
    Ok((times[runs / 2], answer))
}

/// The value of an answer holding one sample, for the report's check that both agree.
fn single_value(body: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// What one server's run measured.
#[derive(Default)]
struct Measured {
    load: Duration,
    rss_growth: f64,
    flushed: Option<u64>,
    /// Each query's median time and answer, or why it failed.
    queries: Vec<Result<(Duration, Option<f64>), String>>,
}

fn measure(kind: Kind, dir: &TempDir, opts: &Options, start_ms: i64, at: f64) -> Result<Measured, String> {
    let config = dir.0.join("config.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").map_err(|e| e.to_string())?;
    let mut server = Server::new(kind, &dir.0, &config);
    server.extra_args.extend(["--query.max-samples=2000000000".into(), QUERY_TIMEOUT.into()]);
    if kind == Kind::Prometheus {
        server.extra_args.push("--enable-feature=native-histograms".into());
    }
    server.start()?;
    std::thread::sleep(Duration::from_secs(2));
    let pid = server.pid().ok_or("no process")?;
    let idle = usage(pid).ok_or("no usage")?.rss;
    let load = load(&server.url, opts, start_ms)?;
    std::thread::sleep(Duration::from_secs(5));
    let loaded = usage(pid).ok_or("no usage")?.rss;
    let mut queries = Vec::new();
    for (_, q) in QUERIES {
        queries.push(time(&server.url, q, at, opts.runs).map(|(took, answer)| (took, single_value(&answer))));
    }
    let flushed = server.flushed_bytes();
    server.stop(false);
    Ok(Measured { load, rss_growth: loaded.saturating_sub(idle) as f64, flushed, queries })
}

/// Runs both servers, one after the other, and returns the report as markdown.
pub fn run(opts: &Options) -> Result<String, String> {
    environment::ensure_packages(&Kind::PYRITE_AND_PROMETHEUS)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?;
    let end_ms = now.as_millis() as i64 / STEP_MS * STEP_MS;
    let start_ms = end_ms - (opts.samples - 1) * STEP_MS;
    // Half a step after the last sample: both servers' windows hold the same samples.
    let at = (end_ms + STEP_MS / 2) as f64 / 1000.0;
    let dir = TempDir::new("histograms");
    let servers = Kind::PYRITE_AND_PROMETHEUS;
    let mut measured = Vec::new();
    for kind in servers {
        measured.push(measure(kind, &dir, opts, start_ms, at)?);
    }
    let samples = (opts.series as f64) * opts.samples as f64;
    let each = |f: &dyn Fn(&Measured) -> Option<f64>| measured.iter().map(f).collect::<Vec<_>>();
    let mut rows = vec![
        Row::new("load by remote write", each(&|m| Some(m.load.as_secs_f64())), report::seconds),
        Row::new("RSS growth per series", each(&|m| Some(m.rss_growth / opts.series as f64)), report::bytes),
        Row::new("RSS growth per histogram sample", each(&|m| Some(m.rss_growth / samples)), report::two_decimals),
        Row::new(
            "bytes per histogram sample after flush",
            each(&|m| m.flushed.map(|b| b as f64 / samples)),
            report::two_decimals,
        ),
    ];
    for (j, (name, _)) in QUERIES.iter().enumerate() {
        let took = each(&|m| m.queries[j].as_ref().ok().map(|q| q.0.as_secs_f64()));
        rows.push(Row::new(format!("{name} (median)"), took, report::millis));
    }
    let mut out = format!(
        "## Native histograms: {} series x {} samples ({})\n\n`{}`; {}; {}; loaded by remote write, \
         one server after the other.\n\n{}",
        opts.series,
        opts.samples,
        environment::today(),
        opts.command,
        environment::versions(&servers),
        environment::machine(),
        report::table(&servers, &rows)
    );
    out.push_str("\nAnswers (pyrite, prometheus; n/a: the query failed):\n\n");
    for (j, (name, q)) in QUERIES.iter().enumerate() {
        let answers: Vec<String> = measured
            .iter()
            .map(|m| match &m.queries[j] {
                Ok((_, answer)) => format!("{answer:?}"),
                Err(why) => format!("failed: {why}"),
            })
            .collect();
        out.push_str(&format!("- {name}, `{q}`: {}\n", answers.join("; ")));
    }
    Ok(out)
}
