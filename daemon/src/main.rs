//! # pyrite
//!
//! The Pyrite server binary: a Prometheus-compatible monitoring server built thread per core.
//!
//! Start-up: parse flags, load the configuration, pick the I/O driver (io_uring after a
//! self-test, epoll otherwise), lock the data directory, bind the listening socket once, then
//! start one pinned thread per shard. Each shard runs a monoio runtime that owns one head,
//! serves HTTP on the shared socket, scrapes its share of the targets and answers messages from
//! the other shards. The main thread then only waits for signals: SIGHUP reloads the
//! configuration, SIGINT and SIGTERM shut down.

mod check;
mod cli;
mod client;
mod clock;
mod context;
mod datadir;
mod discovery;
mod files;
mod http;
mod http_client;
mod metrics;
mod notifier;
mod panic;
mod query;
mod reload;
mod rules;
mod runtime;
mod scrape;
mod shard;
mod slots;
mod test_rules;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command, LogFormat, ServerFlags};
use crate::context::Context;
use crate::http::prefix::WebPaths;
use crate::reload::{ConfigSource, LiveConfig};
use crate::shard::{ShardStart, Shards};

fn main() -> ExitCode {
    panic::install_hook();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // The server waits for its signals with sigwait, so they must be blocked in every thread,
    // this one included, before any other starts.
    let signals = cli.command.is_none().then(block_handled_signals);
    let flags = flag_values(&matches);
    let work = move || run(cli, signals, flags);
    match std::thread::Builder::new().name("main".into()).stack_size(STACK_SIZE).spawn(work) {
        Ok(thread) => thread.join().unwrap_or(ExitCode::from(101)),
        Err(e) => {
            eprintln!("pyrite: cannot start the main thread: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Stack of every thread that parses, plans or evaluates PromQL (the main thread of a
/// command, the shards, the rules thread): room for the deepest query the parser accepts
/// ([`pyrite_core::promql::depth::MAX_DEPTH`]) with a wide margin. Only the pages a thread
/// touches are ever committed.
pub const STACK_SIZE: usize = 64 << 20;

fn run(cli: Cli, signals: Option<libc::sigset_t>, flags: Vec<(String, String)>) -> ExitCode {
    let result = match cli.command {
        Some(Command::IoUringSelftest) => runtime::io_uring_selftest_main().map_err(anyhow::Error::from),
        Some(Command::Explain { query }) => explain(&query),
        Some(Command::Query(q)) => client::run(q),
        Some(Command::Check(check)) => {
            let valid = match check {
                cli::CheckCommand::Config { files } => check::config_files(&files),
                cli::CheckCommand::Rules { files } => check::rule_files(&files),
                cli::CheckCommand::WebConfig { files } => check::web_config_files(&files),
            };
            return if valid { ExitCode::SUCCESS } else { ExitCode::FAILURE };
        }
        Some(Command::Test(cli::TestCommand::Rules { files, run, ignore_unknown_fields })) => {
            let passed = test_rules::run(&files, &test_rules::Options { run, ignore_unknown_fields });
            return if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE };
        }
        None => run_server(cli.server, flags, signals.unwrap_or_else(block_handled_signals)),
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

/// Every server flag with its value (defaults included), as `/api/v1/status/flags` lists them.
fn flag_values(matches: &ArgMatches) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Cli::command()
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let id = arg.get_id().as_str();
            let value = match matches.get_raw(id) {
                Some(values) => values.map(|v| v.to_string_lossy().into_owned()).collect::<Vec<_>>().join(","),
                None => String::new(),
            };
            Some((long.to_string(), value))
        })
        .filter(|(name, _)| name != "help" && name != "version")
        .collect();
    out.sort();
    out
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (and so in the threads it starts), so that
/// the server's main thread can wait for them with `sigwait`.
fn block_handled_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset; the calls only read/write it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` was built by block_handled_signals; `sig` is a valid out-pointer.
    unsafe { libc::sigwait(set, &mut sig) };
    sig
}

fn run_server(flags: ServerFlags, flag_values: Vec<(String, String)>, signals: libc::sigset_t) -> anyhow::Result<()> {
    init_logging(&flags)?;
    let http_settings = Arc::new(http_settings(&flags)?);
    let tls = http_settings.web.as_ref().is_some_and(|(file, _)| file.tls());
    let web =
        WebPaths::from_flags(flags.external_url.as_deref(), flags.route_prefix.as_deref(), &flags.listen_address, tls)?;
    let source = ConfigSource {
        file: flags.config_file.clone(),
        listen_address: flags.listen_address.clone(),
        metrics_path: web.route("/metrics"),
    };
    let loaded = source.load(flags.parse_options())?;
    let shard_count = runtime::shard_count(flags.shards);
    for feature in flags.enable_feature.iter().filter(|f| f.as_str() != "promql-experimental-functions") {
        tracing::warn!(feature, "unknown option for --enable-feature, ignored");
    }
    let (driver, why) = runtime::select_driver(flags.driver)?;
    tracing::info!(driver = driver.name(), reason = %why, shards = shard_count, "runtime selected");
    let _lock = datadir::lock(&flags.storage_path)?;
    datadir::check_shard_layout(&flags.storage_path, shard_count)?;
    let listener = http::server::bind(&flags.listen_address)?;
    tracing::info!(address = %flags.listen_address, tls, "listening");

    let (senders, receivers): (Vec<_>, Vec<_>) = (0..shard_count).map(|_| flume::unbounded()).unzip();
    let live = LiveConfig::new(source, loaded);
    let ctx = Arc::new(Context::new(Shards::new(senders), &flags, flag_values, live, web));
    // Queued in the mailboxes; each shard starts its targets' loops once it runs.
    reload::apply_initial(&ctx).map_err(|e| anyhow::anyhow!(e))?;
    std::thread::Builder::new().name("discovery".into()).spawn({
        let ctx = ctx.clone();
        move || discovery::run(ctx)
    })?;
    std::thread::Builder::new().name("rules".into()).stack_size(STACK_SIZE).spawn({
        let ctx = ctx.clone();
        move || rules::run(ctx)
    })?;
    std::thread::Builder::new().name("notifier".into()).spawn({
        let ctx = ctx.clone();
        move || notifier::run(ctx)
    })?;
    let cpus = runtime::allowed_cpus();
    let mut threads = Vec::new();
    for (index, mailbox) in receivers.into_iter().enumerate() {
        let start = ShardStart { index, mailbox, listener: listener.try_clone()?, http: http_settings.clone() };
        let ctx = ctx.clone();
        let cpu = (shard_count <= cpus.len()).then(|| cpus[index]);
        let thread =
            std::thread::Builder::new().name(format!("shard-{index}")).stack_size(STACK_SIZE).spawn(move || {
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
    loop {
        match wait_for_signal(&signals) {
            libc::SIGHUP => {
                let _ = reload::reload(&ctx);
            }
            sig => {
                tracing::info!(signal = sig, "received termination signal, syncing storage");
                break;
            }
        }
    }
    shut_down(&ctx.shards);
    tracing::info!("exiting");
    Ok(())
}

/// The HTTP server's settings from the `--web.*` flags; the web configuration file is read
/// now, so that a broken one stops the start-up.
fn http_settings(flags: &ServerFlags) -> anyhow::Result<http::server::Settings> {
    let web = match &flags.web_config_file {
        Some(path) => Some((http::web_config::WebConfigFile::load(path)?, http::auth::Authenticator::start()?)),
        None => None,
    };
    let read_timeout = match flags.read_timeout.millis() {
        0 => std::time::Duration::MAX,
        ms => std::time::Duration::from_millis(ms.unsigned_abs()),
    };
    Ok(http::server::Settings { web, connections: slots::Slots::new(flags.max_connections), read_timeout })
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
