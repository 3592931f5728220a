//! # pyrite
//!
//! The Pyrite server binary: a Prometheus-compatible monitoring server built thread per core.
//!
//! Start-up: parse flags, load the configuration, pick the I/O driver (io_uring after a
//! self-test, epoll otherwise), lock the data directory, bind the listening socket once, then
//! start one pinned thread per shard. Each shard runs a monoio runtime that owns one head,
//! serves HTTP on the shared socket, scrapes its share of the targets and answers messages from
//! the other shards. The main thread then only waits for SIGINT/SIGTERM.

mod cli;
mod clock;
mod context;
mod datadir;
mod http;
mod metrics;
mod query;
mod runtime;
mod scrape;
mod shard;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use pyrite_core::config::Config;
use pyrite_core::scrape::{targets_from_config, Target};

use crate::cli::{Cli, Command, LogFormat, ServerFlags};
use crate::context::Context;
use crate::shard::{ShardStart, Shards};

fn main() -> ExitCode {
    // A shard that panics would leave a server that answers some requests and hangs others;
    // take the whole process down instead, so that a supervisor restarts it.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::exit(101);
    }));
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::IoUringSelftest) => runtime::io_uring_selftest_main().map_err(anyhow::Error::from),
        Some(Command::Explain { query }) => explain(&query),
        None => run_server(cli.server),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pyrite: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn explain(query: &str) -> anyhow::Result<()> {
    let expr = pyrite_core::promql::parse(query)?;
    let now = pyrite_core::promql::EvalParams::instant(0, 300_000);
    print!("{}", pyrite_core::promql::plan(&expr, &now)?);
    Ok(())
}

fn init_logging(flags: &ServerFlags) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&flags.log_level)
        .with_context(|| format!("invalid --log.level {:?}", flags.log_level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match flags.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Logfmt => builder.with_ansi(false).init(),
    }
    Ok(())
}

/// The configuration from the file, or the embedded default pointed at this server's own
/// address.
fn load_config(flags: &ServerFlags) -> anyhow::Result<Config> {
    let (text, name) = match &flags.config_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            (text, path.display().to_string())
        }
        None => {
            let addr = http::server::parse_listen_address(&flags.listen_address)?;
            let host = if addr.ip().is_unspecified() { "localhost".to_string() } else { addr.ip().to_string() };
            let own = if addr.is_ipv6() && host != "localhost" {
                format!("[{host}]:{}", addr.port())
            } else {
                format!("{host}:{}", addr.port())
            };
            (
                include_str!("default_config.yml").replace("SELF_ADDRESS", &own),
                "the embedded default configuration".into(),
            )
        }
    };
    Ok(Config::parse(&text, &name)?)
}

/// Deals targets out to shards round-robin in a stable order.
fn assign_targets(mut targets: Vec<Target>, shards: usize) -> Vec<Vec<Target>> {
    targets.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut out: Vec<Vec<Target>> = (0..shards).map(|_| Vec::new()).collect();
    for (i, t) in targets.into_iter().enumerate() {
        out[i % shards].push(t);
    }
    out
}

/// Blocks SIGINT and SIGTERM in this thread (and so in the shard threads it starts), so that
/// the main thread can wait for them with `sigwait`.
fn block_termination_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset; the calls only read/write it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` was built by block_termination_signals; `sig` is a valid out-pointer.
    unsafe { libc::sigwait(set, &mut sig) };
    sig
}

fn run_server(flags: ServerFlags) -> anyhow::Result<()> {
    init_logging(&flags)?;
    let config = load_config(&flags)?;
    let shard_count = runtime::shard_count(flags.shards);
    for feature in flags.enable_feature.iter().filter(|f| f.as_str() != "promql-experimental-functions") {
        tracing::warn!(feature, "unknown option for --enable-feature, ignored");
    }
    let (driver, why) = runtime::select_driver(flags.driver)?;
    tracing::info!(driver = driver.name(), reason = %why, shards = shard_count, "runtime selected");
    let _lock = datadir::lock(&flags.storage_path)?;
    datadir::check_shard_layout(&flags.storage_path, shard_count)?;
    let listener = http::server::bind(&flags.listen_address)?;
    tracing::info!(address = %flags.listen_address, "listening");

    let signals = block_termination_signals();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..shard_count).map(|_| flume::unbounded()).unzip();
    let ctx = Arc::new(Context::new(Shards::new(senders), &flags));
    let targets = assign_targets(targets_from_config(&config), shard_count);
    let cpus = runtime::allowed_cpus();
    let mut threads = Vec::new();
    for (index, (mailbox, targets)) in receivers.into_iter().zip(targets).enumerate() {
        let start = ShardStart { index, mailbox, listener: listener.try_clone()?, targets };
        let ctx = ctx.clone();
        let cpu = (shard_count <= cpus.len()).then(|| cpus[index]);
        let thread = std::thread::Builder::new().name(format!("shard-{index}")).spawn(move || {
            if let Some(cpu) = cpu {
                if let Err(e) = monoio::utils::bind_to_cpu_set([cpu]) {
                    tracing::warn!(shard = index, cpu, error = ?e, "cannot pin shard to its CPU");
                }
            }
            if let Err(e) = runtime::block_on(driver, shard::run(start, ctx)) {
                tracing::error!(shard = index, error = %e, "cannot start the shard runtime");
                std::process::exit(1);
            }
        })?;
        threads.push(thread);
    }
    drop(listener);
    let sig = wait_for_signal(&signals);
    tracing::info!(signal = sig, "received termination signal, syncing storage");
    shut_down(&ctx.shards);
    tracing::info!("exiting");
    Ok(())
}

/// Asks every shard to make its storage durable and stop appending; waits at most 20 s in
/// all (Fargate allows 30 s between SIGTERM and SIGKILL).
fn shut_down(shards: &Shards) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let receivers: Vec<_> =
        (0..shards.len()).map(|i| shards.ask(i, |reply| shard::Request::Shutdown { reply })).collect();
    for (i, rx) in receivers.into_iter().enumerate() {
        if rx.recv_deadline(deadline).is_err() {
            tracing::warn!(shard = i, "shard did not finish syncing its storage in time");
        }
    }
}
