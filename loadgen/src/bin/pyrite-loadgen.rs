//! `pyrite-loadgen`: serves synthetic scrape targets on loopback, and optionally drives a
//! dashboard query load and a remote-write load against servers.
//!
//! Prints one `host:port` line per target on stdout, then `ready`, and runs until killed. With
//! `--record-scrapes`, `GET /-/scrapes` on any target lists when each target was scraped and by
//! which server.

use std::io::Write;
use std::time::Duration;

use clap::Parser;
use pyrite_loadgen::exporters::Churn;
use pyrite_loadgen::server::{Load, Profile};

#[derive(Parser)]
#[command(
    name = "pyrite-loadgen",
    about = "Synthetic scrape targets and client load for Pyrite's tests and benchmarks"
)]
struct Args {
    /// Number of targets (one listener each).
    #[arg(long, default_value_t = 10)]
    targets: usize,
    /// Series per target.
    #[arg(long, default_value_t = 200)]
    series: usize,
    /// What targets expose: `uniform` (tests) or `mixed` (service, node and Redis exporters).
    #[arg(long, value_enum, default_value_t = Profile::Uniform)]
    profile: Profile,
    /// Latency histograms with native buckets (schema 3), served to scrapers that ask for the
    /// protobuf format (uniform profile).
    #[arg(long)]
    native_histograms: bool,
    /// Round each scrape's time down to a multiple of this many milliseconds since the start:
    /// values are those of that time, and protobuf bodies carry it as their samples'
    /// timestamps (0: off).
    #[arg(long, default_value_t = 0)]
    timestamp_step_ms: u64,
    /// Fraction of service targets that get new `pod` labels periodically (mixed profile).
    #[arg(long, default_value_t = 0.0)]
    churn: f64,
    /// Seconds between pod replacements of a churning target.
    #[arg(long, default_value_t = 900.0)]
    churn_every: f64,
    /// Address to listen on; each target gets an ephemeral port.
    #[arg(long, default_value = "127.0.0.1")]
    ip: String,
    /// Record when each target is scraped and by whom, served at `/-/scrapes` on every target.
    #[arg(long)]
    record_scrapes: bool,
    /// Servers (base URLs) to send dashboard queries to.
    #[arg(long)]
    query_url: Vec<String>,
    /// Dashboard queries per second sent to each query URL.
    #[arg(long, default_value_t = 0.2)]
    query_rate: f64,
    /// Servers (base URLs) to remote-write to.
    #[arg(long)]
    remote_write_url: Vec<String>,
    /// Series remote-written every interval.
    #[arg(long, default_value_t = 10_000)]
    remote_write_series: usize,
    /// Seconds between two remote writes.
    #[arg(long, default_value_t = 15.0)]
    remote_write_interval: f64,
}

/// Raises the open-file limit to the hard limit: thousands of targets each need a listener
/// and a connection per scraping server.
fn raise_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    raise_file_limit();
    let churn = (args.churn > 0.0).then_some(Churn { fraction: args.churn, every: args.churn_every });
    let load = Load {
        targets: args.targets,
        series: args.series,
        profile: args.profile,
        churn,
        native_histograms: args.native_histograms,
        timestamp_step_ms: args.timestamp_step_ms,
    };
    if !args.query_url.is_empty() {
        pyrite_loadgen::drive::query_load(args.query_url.clone(), args.query_rate);
    }
    if !args.remote_write_url.is_empty() {
        let interval = Duration::from_secs_f64(args.remote_write_interval);
        pyrite_loadgen::drive::remote_write_load(args.remote_write_url.clone(), args.remote_write_series, interval);
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build()?;
    rt.block_on(async {
        let listeners = pyrite_loadgen::server::bind(&args.ip, args.targets)?;
        let mut out = std::io::stdout().lock();
        for (_, addr) in &listeners {
            writeln!(out, "{addr}")?;
        }
        writeln!(out, "ready")?;
        out.flush()?;
        drop(out);
        let arrivals = args.record_scrapes.then(Default::default);
        pyrite_loadgen::server::serve(listeners, load, arrivals).await;
        Ok(())
    })
}
