//! `pyrite-bench gaps`: how regularly Pyrite and Prometheus scrape while they are busy, measured
//! at the targets.
//!
//! One `pyrite-loadgen --record-scrapes` (mixed exporters) is scraped by both servers at the
//! same interval; its targets note when each scrape arrives and from which server (by
//! `User-Agent`). Both run with a short `--storage.tsdb.min-block-duration`, so that their
//! first block cut comes after the first two phases. Phases, one after the other:
//! 1. quiet: scraping only;
//! 2. queries: the dashboard queries back to back against each server (a thread per server);
//! 3. cuts: scraping only, until each server's compaction counter has moved (a block cut) and
//!    two more intervals have passed, within a time limit.
//!
//! For each server and phase the report gives the gaps between consecutive scrapes of each
//! target ([`stats`]): median, 99th percentile, maximum and the share more than 10 % late,
//! with the compactions each server counted in the phase, so that a cut outside its phase
//! shows.

pub mod stats;

use std::time::{Duration, Instant};

use crate::environment::{ensure_packages, machine, today, versions};
use crate::report::{integer, percent, seconds, table, Row};
use crate::scraping::{Scraping, Setup};
use crate::servers::{Kind, Server, REPORT_SERIES};
use pyrite_loadgen::arrivals::{parse, Arrival};
use pyrite_loadgen::drive::{now_secs, query_path, DASHBOARD};
use pyrite_tests::http_get_within;
use stats::gap_stats;

const SERVERS: [Kind; 2] = Kind::PYRITE_AND_PROMETHEUS;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub targets: usize,
    /// Series per target.
    pub series: usize,
    /// Scrape interval, seconds.
    pub interval: u64,
    /// Length of the quiet and the query phases (and the least length of the cut phase).
    pub phase: Duration,
    /// `--storage.tsdb.min-block-duration` of both servers, seconds.
    pub block: u64,
    /// Longest wait for a cut on every server in the cut phase.
    pub cut_timeout: Duration,
    /// The command line, for the report.
    pub command: String,
}

/// One phase as it ran: its window (milliseconds since the epoch), each server's compactions
/// counted during it, and the dashboard queries each answered.
struct Phase {
    name: &'static str,
    window: std::ops::Range<i64>,
    compactions: Vec<f64>,
    queries: Option<Vec<usize>>,
}

fn now_ms() -> i64 {
    (now_secs() * 1000.0) as i64
}

fn compactions(servers: &[Server]) -> Vec<f64> {
    servers.iter().map(|s| s.head_compactions().0).collect()
}

/// Runs `body` as a phase called `name`.
fn phase(servers: &[Server], name: &'static str, body: impl FnOnce() -> Option<Vec<usize>>) -> Phase {
    eprintln!("gaps: phase {name}");
    let (start, before) = (now_ms(), compactions(servers));
    let queries = body();
    let after = compactions(servers);
    Phase {
        name,
        window: start..now_ms(),
        compactions: after.iter().zip(&before).map(|(a, b)| a - b).collect(),
        queries,
    }
}

/// The dashboard queries back to back against each server, one thread per server, for
/// `length`: how many each answered.
fn query_load(servers: &[Server], length: Duration) -> Vec<usize> {
    let deadline = Instant::now() + length;
    std::thread::scope(|scope| {
        let threads: Vec<_> = servers
            .iter()
            .map(|s| {
                scope.spawn(move || {
                    let mut answered = 0;
                    for (_, query, range) in DASHBOARD.iter().cycle() {
                        if Instant::now() >= deadline {
                            break;
                        }
                        let url = format!("{}{}", s.url, query_path(query, *range, now_secs()));
                        if http_get_within(&url, Duration::from_secs(120)).is_ok_and(|(status, _)| status == 200) {
                            answered += 1;
                        }
                    }
                    answered
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap_or(0)).collect()
    })
}

/// Waits at least `least` and until every server has counted a compaction since the call, then
/// two intervals more (for the scrapes after the cut to arrive), within `limit`.
fn until_cut(servers: &[Server], least: Duration, limit: Duration, interval: u64) {
    let started = Instant::now();
    let before = compactions(servers);
    let mut cut_at = None;
    while started.elapsed() < limit {
        if cut_at.is_none() && compactions(servers).iter().zip(&before).all(|(a, b)| a > b) {
            cut_at = Some(Instant::now());
        }
        let settled = cut_at.is_some_and(|t| t.elapsed() >= Duration::from_secs(2 * interval));
        if settled && started.elapsed() >= least {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Every scrape the targets recorded.
fn arrivals(run: &Scraping) -> Result<Vec<Arrival>, String> {
    let url = format!("http://{}/-/scrapes", run.loadgen.targets[0]);
    let (status, body) = http_get_within(&url, Duration::from_secs(60))?;
    if status != 200 {
        return Err(format!("{url} answered {status}: {body}"));
    }
    parse(&body)
}

/// Runs the phases and returns the markdown section.
pub fn run(opts: &Options) -> Result<String, String> {
    ensure_packages(&SERVERS)?;
    let block = format!("--storage.tsdb.min-block-duration={}s", opts.block);
    let run = Scraping::start(Setup {
        tag: "gaps",
        servers: &SERVERS,
        targets: opts.targets,
        series: opts.series,
        interval: opts.interval,
        loadgen_args: ["--profile", "mixed", "--record-scrapes"].map(String::from).to_vec(),
        query_rate: None,
        server_args: vec![block],
    })?;
    run.warm_up(opts.interval);
    let servers = &run.servers;
    let phases = [
        phase(servers, "quiet", || {
            std::thread::sleep(opts.phase);
            None
        }),
        phase(servers, "queries", || Some(query_load(servers, opts.phase))),
        phase(servers, "cuts", || {
            until_cut(servers, opts.phase, opts.cut_timeout, opts.interval);
            None
        }),
    ];
    let arrivals = arrivals(&run)?;
    drop(run);
    Ok(render(opts, &table(&SERVERS, &rows(&phases, &arrivals, opts))))
}

/// The rows of each phase.
fn rows(phases: &[Phase], arrivals: &[Arrival], opts: &Options) -> Vec<Row> {
    let mut rows = Vec::new();
    for p in phases {
        let stats: Vec<_> =
            SERVERS.iter().map(|k| gap_stats(arrivals, k.scraper(), p.window.clone(), opts.interval as f64)).collect();
        let each =
            |f: fn(&stats::GapStats) -> f64| -> Vec<Option<f64>> { stats.iter().map(|s| s.as_ref().map(f)).collect() };
        let seconds_long = (p.window.end - p.window.start) as f64 / 1000.0;
        let expected = opts.targets as f64 * seconds_long / opts.interval as f64;
        let name = p.name;
        rows.push(Row::new(
            format!("{name} ({seconds_long:.0} s): scrapes received (≈ {} expected)", integer(expected)),
            each(|s| s.scrapes as f64),
            integer,
        ));
        rows.push(Row::new(format!("{name}: gap p50"), each(|s| s.p50), seconds));
        rows.push(Row::new(format!("{name}: gap p99"), each(|s| s.p99), seconds));
        rows.push(Row::new(format!("{name}: gap max"), each(|s| s.max), seconds));
        rows.push(Row::new(format!("{name}: gaps > 10 % late"), each(|s| s.late), percent));
        if let Some(answered) = &p.queries {
            let answered: Vec<Option<f64>> = answered.iter().map(|&n| Some(n as f64)).collect();
            rows.push(Row::new(format!("{name}: dashboard queries answered"), answered, integer));
        }
        let counted: Vec<Option<f64>> = p.compactions.iter().map(|&c| Some(c)).collect();
        rows.push(Row { ratios: false, ..Row::new(format!("{name}: compactions counted"), counted, integer) });
    }
    rows
}

/// The dated section: machine, versions, load, command, and the table.
fn render(opts: &Options, table: &str) -> String {
    format!(
        "\n## {} — scrape gaps at the targets: {} targets × {} series every {} s\n\n\
         Machine: {}. Versions: {}.\n\
         Load: `pyrite-loadgen --profile mixed --record-scrapes` ({} series with the report series), scraped by both \
         servers; each target records when each scrape arrives and from which server (`User-Agent`). Both servers run \
         with `--storage.tsdb.min-block-duration={}s`. Phases: quiet; the dashboard queries back to back against each \
         server; block cuts (until each server's compaction counter moved, then two intervals more). A gap is the time \
         between consecutive scrapes of one target, charged to the phase in which it ends; late means more than 10 % \
         over the interval. Compactions: `pyrite_tsdb_compactions_total{{kind=\"head\"}}` (one per shard and cut), \
         `prometheus_tsdb_compactions_total`. Command: `{}`.\n\n{table}",
        today(),
        integer(opts.targets as f64),
        integer(opts.series as f64),
        opts.interval,
        machine(),
        versions(&SERVERS),
        integer((opts.targets * (opts.series + REPORT_SERIES)) as f64),
        opts.block,
        opts.command,
    )
}
