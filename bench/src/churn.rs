//! `pyrite-bench churn`: whether memory follows the live series or the history of churn, Pyrite
//! against Prometheus.
//!
//! One `pyrite-loadgen --profile mixed` replaces a share of its series (the `pod` label of some
//! service targets takes a new value) every period, replacements spread over the period; both
//! servers scrape it with a short `--storage.tsdb.min-block-duration`, so that a block cut, and
//! the head garbage collection after it, comes every block duration. At the end of every cycle
//! (one block duration) the report reads each server's head series
//! (`prometheus_tsdb_head_series`, which both export), its resident memory (`VmRSS`, and its
//! anonymous part `RssAnon`) and its compactions so far; then the head series over the live
//! series at the last cycle, and the last cycle's memory over the first's, over that of the
//! first cycle that ended after a cut, and over that of the first cycle that ended with the
//! head's span and the retention window full of data (until then both servers still grow). A
//! head that never forgets grows cycle after cycle.

use std::time::{Duration, Instant};

use crate::environment::{ensure_packages, machine, today, versions};
use crate::report::{integer, mib, table, two_decimals, Row};
use crate::scraping::{Scraping, Setup};
use crate::servers::{Kind, REPORT_SERIES};
use crate::usage::usage;
use pyrite_loadgen::exporters::{churns, Churn};

const SERVERS: [Kind; 2] = Kind::PYRITE_AND_PROMETHEUS;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub targets: usize,
    /// Series per target.
    pub series: usize,
    /// Scrape interval, seconds.
    pub interval: u64,
    /// `--storage.tsdb.min-block-duration` of both servers, and the length of a cycle, seconds.
    pub block: u64,
    /// Share of all targets (so of all series) replaced every `every` seconds.
    pub share: f64,
    /// Seconds between two replacements of a churning target's series.
    pub every: u64,
    pub cycles: usize,
    /// `--storage.tsdb.retention.time` of both servers, seconds (None: their default).
    pub retention: Option<u64>,
    /// The command line, for the report.
    pub command: String,
}

/// The loadgen `--churn` fraction (of service targets) that makes `share` of all `targets`
/// churn, and how many targets it makes churn.
fn churn_fraction(targets: usize, share: f64, every: u64) -> (f64, usize) {
    let wanted = (share * targets as f64).round() as usize;
    let churning = |fraction: f64| {
        let churn = Churn { fraction, every: every as f64 };
        (0..targets).filter(|&t| churns(t, churn)).count()
    };
    (0..=10_000)
        .map(|f| f as f64 / 10_000.0)
        .map(|f| (f, churning(f)))
        .find(|&(_, n)| n >= wanted)
        .unwrap_or((1.0, churning(1.0)))
}

/// One reading at the end of a cycle, per server.
struct Reading {
    head_series: Vec<f64>,
    rss: Vec<Option<f64>>,
    anon: Vec<Option<f64>>,
    compactions: Vec<f64>,
}

/// Runs the cycles and returns the markdown section.
pub fn run(opts: &Options) -> Result<String, String> {
    ensure_packages(&SERVERS)?;
    let (fraction, churning) = churn_fraction(opts.targets, opts.share, opts.every);
    let loadgen_args =
        ["--profile", "mixed", "--churn", &fraction.to_string(), "--churn-every", &opts.every.to_string()];
    let run = Scraping::start(Setup {
        tag: "churn",
        servers: &SERVERS,
        targets: opts.targets,
        series: opts.series,
        interval: opts.interval,
        loadgen_args: loadgen_args.map(String::from).to_vec(),
        query_rate: None,
        server_args: [format!("--storage.tsdb.min-block-duration={}s", opts.block)]
            .into_iter()
            .chain(opts.retention.map(|r| format!("--storage.tsdb.retention.time={r}s")))
            .collect(),
    })?;
    let started = Instant::now();
    let mut readings = Vec::new();
    for cycle in 1..=opts.cycles as u32 {
        let end = Duration::from_secs(opts.block) * cycle;
        std::thread::sleep(end.saturating_sub(started.elapsed()));
        let s = &run.servers;
        let used: Vec<_> = s.iter().map(|s| s.pid().and_then(usage)).collect();
        readings.push(Reading {
            head_series: s.iter().map(|s| s.series()).collect(),
            rss: used.iter().map(|u| u.map(|u| u.rss as f64)).collect(),
            anon: used.iter().map(|u| u.map(|u| u.anon as f64)).collect(),
            compactions: s.iter().map(|s| s.head_compactions().0).collect(),
        });
        eprintln!(
            "churn: cycle {cycle} of {}: head series {:?}",
            opts.cycles,
            readings[readings.len() - 1].head_series
        );
    }
    drop(run);
    let live = (opts.targets * (opts.series + REPORT_SERIES)) as f64;
    let replaced = (churning * opts.series) as f64;
    let filled = steady_cycle(opts).min(readings.len());
    Ok(render(opts, replaced / live, &table(&SERVERS, &rows(&readings, live, opts.block, filled))))
}

/// The first cycle (from 1) that ends with the head's span (one and a half block durations)
/// and the retention window (if any) full of data: from there on a server that forgets what
/// it should holds a constant amount, where before it both still grow.
fn steady_cycle(opts: &Options) -> usize {
    let filled = opts.retention.unwrap_or(0) as f64 + 1.5 * opts.block as f64;
    (filled / opts.block as f64).ceil() as usize
}

fn rows(readings: &[Reading], live: f64, block: u64, steady: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for (i, r) in readings.iter().enumerate() {
        let at = format!("cycle {} ({:.1} min)", i + 1, ((i + 1) as u64 * block) as f64 / 60.0);
        rows.push(Row::new(
            format!("{at}: head series"),
            r.head_series.iter().map(|&n| Some(n)).collect::<Vec<_>>(),
            integer,
        ));
        rows.push(Row::new(format!("{at}: RSS"), r.rss.clone(), mib));
        rows.push(Row::new(format!("{at}: RSS, anonymous"), r.anon.clone(), mib));
        let counted: Vec<Option<f64>> = r.compactions.iter().map(|&c| Some(c)).collect();
        rows.push(Row { ratios: false, ..Row::new(format!("{at}: compactions so far"), counted, integer) });
    }
    if let (Some(first), Some(last)) = (readings.first(), readings.last()) {
        let over_live: Vec<Option<f64>> = last.head_series.iter().map(|&n| Some(n / live)).collect();
        rows.push(Row::new(
            format!("head series / live series ({}), last cycle", integer(live)),
            over_live,
            two_decimals,
        ));
        // Per server: the first cycle, the first cycle that ended with a cut behind it, and
        // the first with the head's span and the retention window full.
        let first_cycle: Vec<Option<&Reading>> = last.rss.iter().map(|_| Some(first)).collect();
        let filled: Vec<Option<&Reading>> = last.rss.iter().map(|_| readings.get(steady.max(1) - 1)).collect();
        let after_cut: Vec<Option<&Reading>> =
            (0..last.rss.len()).map(|i| readings.iter().find(|r| r.compactions[i] > 0.0)).collect();
        let growth = |base: &[Option<&Reading>], of: fn(&Reading, usize) -> Option<f64>| -> Vec<Option<f64>> {
            base.iter().enumerate().map(|(i, b)| Some(of(last, i)? / of((*b)?, i)?)).collect()
        };
        let rss = |r: &Reading, i: usize| r.rss[i];
        let anon = |r: &Reading, i: usize| r.anon[i];
        rows.push(Row::new("RSS, last cycle / first cycle", growth(&first_cycle, rss), two_decimals));
        rows.push(Row::new("RSS, last cycle / first cycle after a cut", growth(&after_cut, rss), two_decimals));
        rows.push(Row::new(
            format!("RSS, last cycle / cycle {steady} (span filled)"),
            growth(&filled, rss),
            two_decimals,
        ));
        rows.push(Row::new(
            format!("RSS anonymous, last cycle / cycle {steady} (span filled)"),
            growth(&filled, anon),
            two_decimals,
        ));
    }
    rows
}

/// The dated section: machine, versions, load, command, and the table.
fn render(opts: &Options, replaced: f64, table: &str) -> String {
    format!(
        "\n## {} — memory under churn: {} targets × {} series every {} s, {:.1} % of series replaced every {} s\n\n\
         Machine: {}. Versions: {}.\n\
         Load: `pyrite-loadgen --profile mixed` with pod churn, scraped by both servers, which run with \
         `--storage.tsdb.min-block-duration={}s`; a cycle is one block duration, read at its end. Head series: \
         `prometheus_tsdb_head_series` (Pyrite's is the sum over its shards); RSS: `VmRSS`, and `RssAnon` \
         (without file-backed pages such as mapped chunk files); compactions: \
         `pyrite_tsdb_compactions_total{{kind=\"head\"}}` (one per shard and cut), `prometheus_tsdb_compactions_total`. \
         Live series: what the targets expose now, with the report series. Command: `{}`.\n\n{table}",
        today(),
        integer(opts.targets as f64),
        integer(opts.series as f64),
        opts.interval,
        replaced * 100.0,
        opts.every,
        machine(),
        versions(&SERVERS),
        opts.block,
        opts.command,
    )
}
