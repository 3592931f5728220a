//! `pyrite-bench`: Pyrite side by side with upstream servers on the same load, on loopback.
//!
//! `pyrite-bench compare` scrapes one load with Pyrite, Prometheus and VictoriaMetrics and
//! appends a table of every figure to `bench/RESULTS.md` (see [`pyrite_bench::compare`]).
//!
//! `pyrite-bench gaps` measures, at the targets, the gaps between scrapes by Pyrite and by
//! Prometheus while they are quiet, under dashboard queries and while they cut blocks (see
//! [`pyrite_bench::gaps`]); `pyrite-bench churn` follows both servers' head series and memory
//! while the targets replace a share of their series, cycle after cycle (see
//! [`pyrite_bench::churn`]). Both print a markdown section.
//!
//! `pyrite-bench agent` runs Pyrite's agent mode and Prometheus's side by side on the same
//! targets, sending to one receiver, and prints their memory, CPU per sample sent and bytes per
//! sample (see [`pyrite_bench::agent`]).
//!
//! `pyrite-bench histograms` loads native histograms into Pyrite and an upstream Prometheus by
//! remote write and compares their memory, bytes on disk and `histogram_quantile` times (see
//! [`pyrite_bench::histograms`]).
//!
//! `pyrite-bench query-latency` loads the dashboard data set by remote write into a Pyrite and an
//! upstream Prometheus (Debian's package) and times the dashboard queries on both, printing
//! medians and the pyrite / prometheus ratio as a markdown table.
//!
//! `pyrite-bench rule-eval` loads the same data set into both and has both evaluate the same rule
//! groups (the dashboard's queries as recording rules, alerts on them with templated
//! annotations), reporting each group's median evaluation time as the servers report it.

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use pyrite_bench::dashboard::{write_requests, write_requests_of, SAMPLES, STEP_MS};
use pyrite_bench::servers::{disk_bytes, Kind, Server};
use pyrite_loadgen::drive::DASHBOARD;
use pyrite_tests::{encode, remote_write_to, Pyrite, PyriteOpts, Upstream};

#[derive(Parser)]
#[command(name = "pyrite-bench", about = "Pyrite side by side with upstream servers")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scrapes one load with Pyrite, Prometheus and VictoriaMetrics and compares every figure.
    Compare {
        /// `tiny` (4 targets x 200 series every 1 s, seconds: a smoke test), `quick` (100k series
        /// every 15 s) or `large` (1M series every 15 s).
        #[arg(long, default_value = "quick")]
        size: String,
        /// Length of the measurement window, seconds (default by size: 5, 180, 600).
        #[arg(long)]
        duration: Option<u64>,
        /// Fraction of service targets whose pods are replaced every 15 minutes.
        #[arg(long, default_value_t = 0.1)]
        churn: f64,
        /// Dashboard queries per second sent to each server during the run.
        #[arg(long, default_value_t = 0.2)]
        query_rate: f64,
        /// Markdown file the result is appended to.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/RESULTS.md"))]
        results: std::path::PathBuf,
    },
    /// Scrape gaps measured at the targets, Pyrite against Prometheus: quiet, under dashboard
    /// queries, and while blocks are cut.
    Gaps {
        #[command(flatten)]
        scale: Scale,
        /// Length of the quiet and the query phases, seconds (default 180; short: 60).
        #[arg(long)]
        phase: Option<u64>,
        /// Both servers' `--storage.tsdb.min-block-duration`, seconds: long enough that the
        /// first cut (after 1.5 block durations of data) comes after the first two phases
        /// (default 300; short: 120).
        #[arg(long)]
        block_duration: Option<u64>,
        /// Longest wait for a cut on both servers in the cut phase, seconds (default: two block
        /// durations).
        #[arg(long)]
        cut_timeout: Option<u64>,
    },
    /// Head series and memory cycle after cycle while the targets replace a share of their
    /// series, Pyrite against Prometheus.
    Churn {
        #[command(flatten)]
        scale: Scale,
        /// Both servers' `--storage.tsdb.min-block-duration`, and the length of a cycle,
        /// seconds (default 120; short: 60).
        #[arg(long)]
        block_duration: Option<u64>,
        /// Share of the series replaced every period.
        #[arg(long, default_value_t = 0.1)]
        churn: f64,
        /// The period of replacement, seconds (default: the block duration).
        #[arg(long)]
        churn_every: Option<u64>,
        /// Cycles to run (default 10; short: 8).
        #[arg(long)]
        cycles: Option<usize>,
        /// Both servers' `--storage.tsdb.retention.time`, seconds (default: theirs), so that
        /// blocks are deleted as the run goes and memory can reach a plateau.
        #[arg(long)]
        retention: Option<u64>,
    },
    /// Loads the dashboard data set by remote write and times restarts to ready: after kill -9
    /// (log replay) and after SIGTERM (Pyrite: a head snapshot), Pyrite against Prometheus.
    Restart {
        /// Series in the data set.
        #[arg(long, default_value_t = 1_000_000)]
        series: usize,
        /// Hours of data at 15 s.
        #[arg(long, default_value_t = 2.0)]
        hours: f64,
        /// Measure Pyrite only.
        #[arg(long)]
        pyrite_only: bool,
    },
    /// Times the same rule groups' evaluations on Pyrite and on upstream Prometheus over the
    /// same data.
    RuleEval {
        /// Series in the data set (one hour at 15 s each).
        #[arg(long, default_value_t = 100_000)]
        series: usize,
        /// Evaluations of each group to take the median of.
        #[arg(long, default_value_t = 15)]
        evaluations: usize,
    },
    /// Pyrite's agent mode against Prometheus's, scraping the same targets and remote-writing
    /// to one receiver: memory, CPU per sample sent, bytes per sample.
    Agent {
        /// `100k` (10 targets x 10,000 series) or `1m` (100 targets x 10,000 series).
        #[arg(long, default_value = "100k")]
        size: String,
        /// Scrape interval, seconds.
        #[arg(long, default_value_t = 5)]
        interval: u64,
        /// Length of the measurement window, seconds.
        #[arg(long, default_value_t = 180)]
        duration: u64,
        /// Seconds of scraping before the window opens.
        #[arg(long, default_value_t = 60)]
        warm_up: u64,
    },
    /// Native histograms remote-written into Pyrite and upstream Prometheus: memory, bytes on
    /// disk and `histogram_quantile` times.
    Histograms {
        /// Native-histogram series.
        #[arg(long, default_value_t = 100_000)]
        series: usize,
        /// Samples per series, 15 s apart.
        #[arg(long, default_value_t = 21)]
        samples: i64,
        /// Runs of each query per server; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Times the dashboard queries on Pyrite and on upstream Prometheus over the same data.
    QueryLatency {
        /// Series in the data set (one hour at 15 s each).
        #[arg(long, default_value_t = 100_000)]
        series: usize,
        /// Runs of each query per server; the median is reported.
        #[arg(long, default_value_t = 7)]
        runs: usize,
        /// Pyrite's shards (default: all CPUs).
        #[arg(long)]
        shards: Option<usize>,
    },
}

/// The load of `gaps` and `churn`: mixed exporters scraped by Pyrite and Prometheus.
#[derive(clap::Args)]
struct Scale {
    /// A quick run: 10,000 series, 500 per target, every 5 s, and shorter phases and cycles.
    #[arg(long)]
    short: bool,
    /// Series in all (default 100,000; short: 10,000).
    #[arg(long)]
    series: Option<usize>,
    /// Series per target (default 1,000; short: 500).
    #[arg(long)]
    per_target: Option<usize>,
    /// Scrape interval, seconds (default 15; short: 5).
    #[arg(long)]
    interval: Option<u64>,
}

impl Scale {
    /// The value of a flag: as given, or its default, or its default in short mode.
    fn pick<T>(&self, given: Option<T>, default: T, short: T) -> T {
        given.unwrap_or(if self.short { short } else { default })
    }

    /// Targets, series per target, interval, and the flags that say so.
    fn resolve(&self) -> (usize, usize, u64, String) {
        let series = self.pick(self.series, 100_000, 10_000);
        let per_target = self.pick(self.per_target, 1_000, 500).max(1);
        let interval = self.pick(self.interval, 15, 5);
        let targets = series.div_ceil(per_target).max(1);
        (targets, per_target, interval, format!("--series {series} --per-target {per_target} --interval {interval}"))
    }
}

/// Prints a run's section, or its error and exits with 1.
fn report(name: &str, result: Result<String, String>) {
    match result {
        Ok(section) => print!("{section}"),
        Err(e) => {
            eprintln!("pyrite-bench {name}: {e}");
            std::process::exit(1);
        }
    }
}

fn gaps(scale: Scale, phase: Option<u64>, block: Option<u64>, cut_timeout: Option<u64>) {
    let (targets, series, interval, flags) = scale.resolve();
    let phase = scale.pick(phase, 180, 60);
    let block = scale.pick(block, 300, 120);
    let cut_timeout = cut_timeout.unwrap_or(2 * block);
    let opts = pyrite_bench::gaps::Options {
        targets,
        series,
        interval,
        phase: Duration::from_secs(phase),
        block,
        cut_timeout: Duration::from_secs(cut_timeout),
        command: format!(
            "pyrite-bench gaps {flags} --phase {phase} --block-duration {block} --cut-timeout {cut_timeout}"
        ),
    };
    report("gaps", pyrite_bench::gaps::run(&opts));
}

fn churn(
    scale: Scale,
    block: Option<u64>,
    share: f64,
    every: Option<u64>,
    cycles: Option<usize>,
    retention: Option<u64>,
) {
    let (targets, series, interval, flags) = scale.resolve();
    let block = scale.pick(block, 120, 60);
    let every = every.unwrap_or(block);
    let cycles = scale.pick(cycles, 10, 8);
    let opts = pyrite_bench::churn::Options {
        targets,
        series,
        interval,
        block,
        share,
        every,
        cycles,
        retention,
        command: format!(
            "pyrite-bench churn {flags} --block-duration {block} --churn {share} --churn-every {every} --cycles {cycles}{}",
            retention.map_or(String::new(), |r| format!(" --retention {r}"))
        ),
    };
    report("churn", pyrite_bench::churn::run(&opts));
}

fn agent(size: &str, interval: u64, duration: u64, warm_up: u64) {
    let targets = match size {
        "100k" => 10,
        "1m" => 100,
        other => {
            eprintln!("pyrite-bench agent: unknown --size {other:?} (100k or 1m)");
            std::process::exit(2);
        }
    };
    let opts = pyrite_bench::agent::Options {
        targets,
        series_per_target: 10_000,
        interval,
        warm_up: Duration::from_secs(warm_up),
        window: Duration::from_secs(duration),
        command: format!(
            "pyrite-bench agent --size {size} --interval {interval} --duration {duration} --warm-up {warm_up}"
        ),
    };
    report("agent", pyrite_bench::agent::run(&opts));
}

fn load(url: &str, batches: &[Vec<u8>]) {
    for body in batches {
        let (status, text) = remote_write_to(url, body);
        assert!(status / 100 == 2, "{url} refused a remote-write batch: {status} {text}");
    }
}

/// Median wall time of `runs` runs of a query, and its result size in bytes.
fn time(url: &str, path: &str, runs: usize) -> (Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut size = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let (status, body) =
            pyrite_tests::http_get_within(&format!("{url}{path}"), Duration::from_secs(600)).expect("query");
        times.push(started.elapsed());
        assert_eq!(status, 200, "{url}{path}: {body}");
        size = body.len();
    }
    times.sort();
    (times[runs / 2], size)
}

fn query_latency(series: usize, runs: usize, shards: Option<usize>) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let start = (now - SAMPLES * STEP_MS) / STEP_MS * STEP_MS;
    let end = start + (SAMPLES - 1) * STEP_MS;
    let batches = write_requests(series, SAMPLES, start);
    // Both servers count samples differently against --query.max-samples (upstream also counts
    // every output point of a range query); lift the limit on both so that all queries run.
    const NO_SAMPLE_LIMIT: &str = "--query.max-samples=2000000000";
    let upstream = Upstream::start_with(&[NO_SAMPLE_LIMIT]);
    let pyrite = Pyrite::start(PyriteOpts { shards, extra_args: vec![NO_SAMPLE_LIMIT.into()], ..Default::default() });
    let t = Instant::now();
    load(&pyrite.url, &batches);
    let pyrite_load = t.elapsed();
    let t = Instant::now();
    load(&upstream.url, &batches);
    let upstream_load = t.elapsed();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "query latency, {series} series x {SAMPLES} samples, median of {runs} runs, {cpus} CPUs, pyrite shards: {}",
        shards.unwrap_or(cpus)
    );
    println!(
        "remote-write load: pyrite {:.1} s, prometheus {:.1} s\n",
        pyrite_load.as_secs_f64(),
        upstream_load.as_secs_f64()
    );
    println!("| query | pyrite | prometheus | pyrite / prometheus |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, query, is_range) in DASHBOARD {
        let end_s = end as f64 / 1000.0;
        let path = if is_range {
            format!("/api/v1/query_range?query={}&start={}&end={end_s}&step=15", encode(query), end_s - 3300.0)
        } else {
            format!("/api/v1/query?query={}&time={end_s}", encode(query))
        };
        println!("| {name} | {} |", compared(&pyrite.url, &upstream.url, &path, runs).0);
    }
    // What Grafana's query editor and an upstream federating server ask, over the last hour.
    let range = format!("start={}&end={}", start as f64 / 1000.0, end as f64 / 1000.0);
    let api: [(&str, String); 6] = [
        ("labels", format!("/api/v1/labels?{range}")),
        ("label values: __name__", format!("/api/v1/label/__name__/values?{range}")),
        ("label values: instance", format!("/api/v1/label/instance/values?{range}")),
        (
            "label values: handler, match[] one metric",
            format!("/api/v1/label/handler/values?match[]=http_requests_total&{range}"),
        ),
        (
            "series of one instance",
            format!("/api/v1/series?match[]={}&{range}", encode("{instance=\"10.0.0.7:8080\"}")),
        ),
        ("federate one metric", "/federate?match[]=http_requests_total".to_string()),
    ];
    println!("\n| API request | pyrite | prometheus | pyrite / prometheus | answer bytes (pyrite, prometheus) |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, path) in api {
        let (cells, (our_size, their_size)) = compared(&pyrite.url, &upstream.url, &path, runs);
        println!("| {name} | {cells} | {our_size}, {their_size} |");
    }
}

/// The rule groups `rule-eval` runs: every dashboard instant query recorded, and alerts on the
/// recorded series with templated annotations (one alert per handler and status).
fn rule_file() -> String {
    let mut out = String::from("groups:\n  - name: dashboard\n    interval: 2s\n    rules:\n");
    for (name, query, is_range) in DASHBOARD {
        if !is_range {
            out.push_str(&format!("      - record: dashboard:{name}\n        expr: '{}'\n", query.replace('\'', "''")));
        }
    }
    out.push_str(
        "  - name: alerts\n    interval: 2s\n    rules:\n      - alert: HandlerErrors\n        expr: sum by (handler, status) (rate(http_requests_total{status=~\"5..\"}[5m])) > 0\n        labels: {severity: page}\n        annotations:\n          summary: '{{ $labels.handler }} answers {{ $labels.status }} at {{ $value | humanize }}/s'\n          share: '{{ $value | humanizePercentage }}'\n",
    );
    out
}

/// Median `evaluationTime` of each group over `evaluations` distinct evaluations.
fn group_times(url: &str, evaluations: usize) -> Vec<(String, Duration)> {
    let mut seen: std::collections::BTreeMap<String, (String, Vec<f64>)> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(10 + 3 * evaluations as u64);
    while Instant::now() < deadline && (seen.len() < 2 || seen.values().any(|(_, t)| t.len() < evaluations)) {
        let body = pyrite_tests::http_get(&format!("{url}/api/v1/rules")).expect("rules").1;
        for g in pyrite_tests::json(&body)["data"]["groups"].as_array().cloned().unwrap_or_default() {
            let name = g["name"].as_str().unwrap_or_default().to_string();
            let last = g["lastEvaluation"].as_str().unwrap_or_default().to_string();
            let entry = seen.entry(name).or_default();
            if entry.0 != last && !last.starts_with("0001") {
                entry.0 = last;
                entry.1.push(g["evaluationTime"].as_f64().unwrap_or(0.0));
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    seen.into_iter()
        .map(|(name, (_, mut times))| {
            times.sort_by(f64::total_cmp);
            (name, Duration::from_secs_f64(times.get(times.len() / 2).copied().unwrap_or(0.0)))
        })
        .collect()
}

fn rule_eval(series: usize, evaluations: usize) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let start = (now - SAMPLES * STEP_MS) / STEP_MS * STEP_MS;
    let batches = write_requests(series, SAMPLES, start);
    let dir = pyrite_tests::TempDir::new("rule-eval");
    let rules = dir.0.join("rules.yml");
    std::fs::write(&rules, rule_file()).expect("write rules");
    let config = format!("global:\n  scrape_interval: 1h\nrule_files: ['{}']\n", rules.display());
    let upstream = Upstream::start_configured(&config, &[]);
    let pyrite = Pyrite::start(PyriteOpts { config: Some(config), ..Default::default() });
    load(&pyrite.url, &batches);
    load(&upstream.url, &batches);
    let ours = group_times(&pyrite.url, evaluations);
    let theirs = group_times(&upstream.url, evaluations);
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("rule group evaluation, {series} series, median of {evaluations} evaluations, {cpus} CPUs\n");
    println!("| group | pyrite | prometheus | pyrite / prometheus |");
    println!("| --- | ---: | ---: | ---: |");
    for ((name, a), (_, b)) in ours.iter().zip(&theirs) {
        let (a, b) = (a.as_secs_f64(), b.as_secs_f64());
        println!("| {name} | {:.1} ms | {:.1} ms | {:.2} |", a * 1e3, b * 1e3, a / b);
    }
}

/// Times `path` on both servers: the table cells (pyrite, prometheus, ratio) and both answers'
/// sizes.
fn compared(pyrite: &str, upstream: &str, path: &str, runs: usize) -> (String, (usize, usize)) {
    let (ours, our_size) = time(pyrite, path, runs);
    let (theirs, their_size) = time(upstream, path, runs);
    let cells = format!(
        "{:.1} ms | {:.1} ms | {:.2}",
        ours.as_secs_f64() * 1e3,
        theirs.as_secs_f64() * 1e3,
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
    (cells, (our_size, their_size))
}

/// Loads the data set into each server, then restarts it after kill -9 (the whole log to
/// replay), after SIGTERM, and after kill -9 ten minutes of data past a periodic head snapshot
/// (Pyrite's steady state with `--storage.tsdb.head-snapshot-interval`; Prometheus replays its
/// log as always).
fn restart(series: usize, hours: f64, pyrite_only: bool) {
    let samples = (hours * 3600.0 * 1000.0) as i64 / STEP_MS;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let start = (now - samples * STEP_MS) / STEP_MS * STEP_MS;
    let requests = write_requests(series, samples, start);
    // Ten more minutes, written after the snapshot.
    let later = write_requests_of(series, samples..samples + 40, start);
    let dir = pyrite_tests::TempDir::new("restart");
    let config = dir.0.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").expect("write config");
    println!("restart to ready, {series} series x {samples} samples ({hours} h at 15 s), loaded by remote write\n");
    println!("| server | load | bytes on disk | ready after kill -9 | ready after SIGTERM | ready after kill -9, 10 min past a head snapshot |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let kinds: &[Kind] = if pyrite_only { &[Kind::Pyrite] } else { &[Kind::Pyrite, Kind::Prometheus] };
    let mut cuts = Vec::new();
    for &kind in kinds {
        let mut server = Server::new(kind, &dir.0, &config);
        let snapshots = |interval: &str| vec![format!("--storage.tsdb.head-snapshot-interval={interval}")];
        if kind == Kind::Pyrite {
            // No periodic snapshot yet: the first kill -9 replays the whole log.
            server.extra_args = snapshots("0s");
        }
        server.start().unwrap_or_else(|e| panic!("{e}"));
        let t = Instant::now();
        load(&server.url, &requests);
        let loaded = t.elapsed();
        // Past 3 h both cut the oldest 2 h ranges into blocks within a minute or two, until the
        // head spans at most 3 h.
        if hours > 3.0 {
            let cut = pyrite_tests::eventually(Duration::from_secs(600), || {
                (server.head_span_ms()? <= 3 * 3_600_000).then_some(())
            });
            assert!(cut.is_some(), "{} did not cut its head into blocks within 10 minutes", kind.name());
            let (blocks, samples, bytes) = server.blocks();
            cuts.push((kind, blocks, samples, bytes, server.head_compactions().1));
        }
        let held = server.series();
        server.stop(true);
        let bytes = disk_bytes(&server.data);
        let crash = server.start().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(server.series(), held, "{} lost series over kill -9", kind.name());
        server.stop(false);
        let clean = server.start().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(server.series(), held, "{} lost series over a restart", kind.name());
        if kind == Kind::Pyrite {
            server.stop(false);
            server.extra_args = snapshots("1m");
            server.start().unwrap_or_else(|e| panic!("{e}"));
            let snapshot = pyrite_tests::eventually(Duration::from_secs(180), || {
                (server.head_snapshots() >= server.blocks_dirs() as f64).then_some(())
            });
            assert!(snapshot.is_some(), "no periodic head snapshot within 3 minutes");
        }
        load(&server.url, &later);
        server.stop(true);
        let past_snapshot = server.start().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(server.series(), held, "{} lost series over kill -9", kind.name());
        println!(
            "| {} | {:.1} s | {:.2} GiB | {:.1} s | {:.1} s | {:.1} s |",
            kind.name(),
            loaded.as_secs_f64(),
            bytes as f64 / (1u64 << 30) as f64,
            crash.as_secs_f64(),
            clean.as_secs_f64(),
            past_snapshot.as_secs_f64()
        );
    }
    if !cuts.is_empty() {
        println!("\n| server | blocks cut | samples in blocks | bytes per sample in blocks | time writing blocks |");
        println!("| --- | ---: | ---: | ---: | ---: |");
        for (kind, blocks, samples, bytes, seconds) in cuts {
            println!(
                "| {} | {blocks} | {samples} | {:.2} | {seconds:.1} s |",
                kind.name(),
                bytes as f64 / samples.max(1) as f64
            );
        }
    }
}

fn main() {
    match Args::parse().command {
        Command::Restart { series, hours, pyrite_only } => restart(series, hours, pyrite_only),
        Command::Compare { size, duration, churn, query_rate, results } => {
            let (targets, series, interval, default_duration, runs) = match size.as_str() {
                "tiny" => (4, 200, 1, 5, 2),
                "quick" => (100, 1000, 15, 180, 5),
                "large" => (1000, 1000, 15, 600, 5),
                other => {
                    eprintln!("pyrite-bench: unknown size {other:?} (tiny, quick or large)");
                    std::process::exit(2);
                }
            };
            let duration = Duration::from_secs(duration.unwrap_or(default_duration));
            let opts = pyrite_bench::compare::Options {
                size,
                targets,
                series,
                interval,
                duration,
                runs,
                churn,
                query_rate,
                results,
            };
            report("compare", pyrite_bench::compare::run(&opts));
        }
        Command::Gaps { scale, phase, block_duration, cut_timeout } => gaps(scale, phase, block_duration, cut_timeout),
        Command::Churn { scale, block_duration, churn: share, churn_every, cycles, retention } => {
            churn(scale, block_duration, share, churn_every, cycles, retention)
        }
        Command::Agent { size, interval, duration, warm_up } => agent(&size, interval, duration, warm_up),
        Command::QueryLatency { series, runs, shards } => query_latency(series, runs, shards),
        Command::Histograms { series, samples, runs } => {
            let command = format!("pyrite-bench histograms --series {series} --samples {samples} --runs {runs}");
            let opts = pyrite_bench::histograms::Options { series, samples, runs, command };
            report("histograms", pyrite_bench::histograms::run(&opts));
        }
        Command::RuleEval { series, evaluations } => rule_eval(series, evaluations),
    }
}
