//! `pyrite-bench compare`: Pyrite, Prometheus and VictoriaMetrics side by side on one load.
//!
//! One `pyrite-loadgen` (mixed exporters, optional pod churn, the dashboard queries at a fixed
//! rate against all three servers) is scraped by the three servers at the same interval, each
//! with its own data directory on loopback. After a warm-up that creates every series, a
//! measurement window records, from each server's own counters and from `/proc`: samples per
//! second sustained, active series, resident memory (steady and peak), CPU per million samples;
//! then dashboard query latencies, bytes on disk per sample (as is, and after a forced flush),
//! and the time to ready after a clean restart and after `kill -9`. The result is a dated
//! markdown section, appended to `bench/RESULTS.md` unless told otherwise.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::environment::{ensure_packages, machine, today, versions};
use crate::report::{bytes, integer, mib, millis, seconds, table, two_decimals, yes_no, Row};
use crate::scraping::{Scraping, Setup};
use crate::servers::{disk_bytes, Kind, Server, REPORT_SERIES};
use crate::usage;
use pyrite_loadgen::drive::{now_secs, query_path, DASHBOARD};
use pyrite_tests::http_get_within;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// A name for the load in the report (`tiny`, `quick`, `large`).
    pub size: String,
    pub targets: usize,
    /// Series per target.
    pub series: usize,
    /// Scrape interval, seconds.
    pub interval: u64,
    /// Length of the measurement window.
    pub duration: Duration,
    /// Runs of each dashboard query per server.
    pub runs: usize,
    /// Fraction of service targets whose pods churn every 15 minutes.
    pub churn: f64,
    /// Dashboard queries per second sent to each server during the run.
    pub query_rate: f64,
    /// Markdown file to append the result to.
    pub results: PathBuf,
}

/// Median and 90th percentile of `times`.
fn percentiles(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
}

/// Per server: one value, or None for a server where it does not apply.
type PerServer = [Option<f64>; 3];

/// One value per server, from its index.
fn per_server(f: impl FnMut(usize) -> Option<f64>) -> PerServer {
    std::array::from_fn(f)
}

fn each(servers: &[Server], f: impl Fn(&Server) -> Option<f64>) -> PerServer {
    [f(&servers[0]), f(&servers[1]), f(&servers[2])]
}

/// Runs the comparison and returns its markdown section (also appended to `opts.results`).
pub fn run(opts: &Options) -> Result<String, String> {
    ensure_packages(&Kind::ALL)?;
    let mut run = Scraping::start(Setup {
        tag: "compare",
        servers: &Kind::ALL,
        targets: opts.targets,
        series: opts.series,
        interval: opts.interval,
        loadgen_args: ["--profile", "mixed", "--churn", &opts.churn.to_string()].map(String::from).to_vec(),
        query_rate: Some(opts.query_rate),
        server_args: Vec::new(),
    })?;
    let cold: PerServer = per_server(|i| Some(run.cold_start[i].as_secs_f64()));
    run.warm_up(opts.interval);
    eprintln!("compare: measuring for {:?}", opts.duration);
    let servers = &mut run.servers;

    let mut rows = measure_window(servers, opts);
    rows.extend(query_rows(servers, opts.runs));
    rows.extend(disk_rows(servers));
    rows.push(Row::new("start to ready, empty", cold, seconds));
    rows.extend(restart_rows(servers)?);
    drop(run);

    let section = render(opts, &table(&Kind::ALL, &rows));
    let mut file =
        std::fs::OpenOptions::new().create(true).append(true).open(&opts.results).map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut file, section.as_bytes()).map_err(|e| e.to_string())?;
    Ok(section)
}

/// The measurement window: ingestion, memory and CPU, from each server's counters and `/proc`.
fn measure_window(servers: &[Server], opts: &Options) -> Vec<Row> {
    let mut rows = Vec::new();
    let pids: Vec<u32> = servers.iter().map(|s| s.pid().expect("started")).collect();
    let before: Vec<_> = pids.iter().map(|&p| usage::usage(p)).collect();
    let samples_before = each(servers, |s| Some(s.samples()));
    let t0 = Instant::now();
    let mut rss: Vec<Vec<u64>> = vec![Vec::new(); 3];
    while t0.elapsed() < opts.duration {
        std::thread::sleep(Duration::from_secs(5).min(opts.duration.saturating_sub(t0.elapsed())));
        for (i, &p) in pids.iter().enumerate() {
            rss[i].extend(usage::usage(p).map(|u| u.rss));
        }
    }
    let window = t0.elapsed().as_secs_f64();
    let after: Vec<_> = pids.iter().map(|&p| usage::usage(p)).collect();
    let samples_after = each(servers, |s| Some(s.samples()));
    let ingested: PerServer = per_server(|i| Some(samples_after[i]? - samples_before[i]?));
    let series = each(servers, |s| Some(s.series()));
    let expected = (opts.targets * (opts.series + REPORT_SERIES)) as f64 / opts.interval as f64;
    let rate: PerServer = per_server(|i| Some(ingested[i]? / window));
    // Steady state: the median reading of the window's second half.
    let steady: PerServer = per_server(|i| {
        let mut second_half = rss[i][rss[i].len() / 2..].to_vec();
        second_half.sort_unstable();
        second_half.get(second_half.len() / 2).map(|&b| b as f64)
    });
    let cpu: PerServer = per_server(|i| {
        let used = after[i]?.cpu_secs - before[i]?.cpu_secs;
        Some(used / (ingested[i]? / 1e6))
    });
    rows.push(Row::new("active series", series, integer));
    rows.push(Row::new(format!("samples ingested in {window:.0} s"), ingested, integer));
    rows.push(Row::new(format!("samples/s (offered ≈ {})", integer(expected)), rate, integer));
    let keeps_up = rate.map(|r| r.map(|r| f64::from(r >= 0.97 * expected)));
    rows.push(Row { ratios: false, ..Row::new("keeps up (≥ 97 % of offered)", keeps_up, yes_no) });
    rows.push(Row::new("RSS, steady", steady, mib));
    rows.push(Row::new("RSS, peak", per_server(|i| Some(after[i]?.peak_rss as f64)), mib));
    rows.push(Row::new("RSS per active series", per_server(|i| Some(steady[i]? / series[i]?)), bytes));
    rows.push(Row::new(
        "anonymous RSS per active series, at the end",
        per_server(|i| Some(after[i]?.anon as f64 / series[i]?)),
        bytes,
    ));
    rows.push(Row::new("CPU seconds per million samples", cpu, two_decimals));
    rows
}

/// The dashboard queries' median and 90th percentile, interleaving the servers run by run.
fn query_rows(servers: &[Server], runs: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut times: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); 3]; DASHBOARD.len()];
    for _ in 0..runs {
        for (q, (_, query, range)) in DASHBOARD.iter().enumerate() {
            let path = query_path(query, *range, now_secs());
            for (i, s) in servers.iter().enumerate() {
                let started = Instant::now();
                let answered = http_get_within(&format!("{}{path}", s.url), Duration::from_secs(300));
                if answered.is_ok_and(|(status, _)| status == 200) {
                    times[q][i].push(started.elapsed().as_secs_f64());
                }
            }
        }
    }
    for (q, (name, _, _)) in DASHBOARD.iter().enumerate() {
        let p: Vec<Option<(f64, f64)>> =
            times[q].iter().map(|t| (!t.is_empty()).then(|| percentiles(t.clone()))).collect();
        rows.push(Row::new(format!("query {name}, median"), per_server(|i| Some(p[i]?.0)), millis));
        rows.push(Row::new(format!("query {name}, p90"), per_server(|i| Some(p[i]?.1)), millis));
    }
    rows
}

/// Bytes per sample: everything the data directory holds (with the WAL), then the flushed form.
fn disk_rows(servers: &[Server]) -> Vec<Row> {
    let mut rows = Vec::new();
    let total = each(servers, |s| Some(s.samples()));
    let on_disk = each(servers, |s| Some(disk_bytes(&s.data) as f64));
    rows.push(Row::new(
        "bytes per sample on disk, with WAL",
        per_server(|i| Some(on_disk[i]? / total[i]?)),
        two_decimals,
    ));
    let flushed = each(servers, |s| s.flushed_bytes().map(|b| b as f64));
    rows.push(Row::new("bytes per sample after flush", per_server(|i| Some(flushed[i]? / total[i]?)), two_decimals));
    rows
}

/// Restarts with the data directory as it is: first after `kill -9` (a log replay), then
/// after SIGTERM (whatever the server writes at shutdown to start faster).
fn restart_rows(servers: &mut [Server]) -> Result<Vec<Row>, String> {
    let (mut crash, mut clean) = ([None; 3], [None; 3]);
    for (i, s) in servers.iter_mut().enumerate() {
        s.stop(true);
        crash[i] = Some(s.start()?.as_secs_f64());
        s.stop(false);
        clean[i] = Some(s.start()?.as_secs_f64());
    }
    Ok(vec![
        Row::new("restart to ready after kill -9", crash, seconds),
        Row::new("restart to ready after SIGTERM", clean, seconds),
    ])
}

/// The dated section: machine, versions, load, command, and the table.
fn render(opts: &Options, table: &str) -> String {
    format!(
        "\n## {} — compare, {} load: {} targets × {} series every {} s\n\n\
         Machine: {}. Versions: {}.\n\
         Load: `pyrite-loadgen --profile mixed` (services, node and Redis exporters, values moving every scrape), \
         pod churn {:.0} % of services every 15 min, the dashboard queries at {} per second against each server. \
         Figures from each server's own counters and `/proc`, over a {} s window after a warm-up that creates every \
         series; query times are medians and 90th percentiles of {} runs while the load continues. \
         \"After flush\": Pyrite's and Prometheus's admin snapshots (the head written as a block), \
         VictoriaMetrics after a forced flush. \
         Command: `./target/release/pyrite-bench compare --size {} --duration {}`.\n\n{table}",
        today(),
        opts.size,
        integer(opts.targets as f64),
        integer(opts.series as f64),
        opts.interval,
        machine(),
        versions(&Kind::ALL),
        opts.churn * 100.0,
        opts.query_rate,
        opts.duration.as_secs(),
        opts.runs,
        opts.size,
        opts.duration.as_secs(),
    )
}
