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

mod allocator;
mod check;
mod cli;
mod client;
mod clock;
mod datadir;
mod discovery;
mod dns;
mod files;
mod http;
mod http_client;
mod line_log;
mod live_config;
mod metrics;
mod notifier;
mod panic;
mod probe;
mod query;
mod query_log;
mod reload;
mod remote_write;
mod retention;
mod rules;
mod runtime;
mod scrape;
mod scrape_failure_log;
mod shard;
mod shards;
mod sigv4;
mod slots;
mod test_rules;
mod threads;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command, LogFormat, ServerFlags};
use crate::discovery::{Discovery, DiscoveryThread};
use crate::http::prefix::WebPaths;
use crate::live_config::{ConfigSource, LiveConfig};
use crate::metrics::Metrics;
use crate::notifier::Notifier;
use crate::reload::Reloader;
use crate::remote_write::RemoteWriters;
use crate::retention::{Limits, LiveRetention};
use crate::rules::{AlertingFlags, ConcurrentEvals, RuleManager, RulesThread};
use crate::scrape::{ScrapeManager, ScrapeSink};
use crate::shard::{ShardEnv, ShardStart};
use crate::shards::{HeadSettings, Shards};
use pyrite_core::promql::QueryLimits;
use pyrite_tsdb::wal::LogFollowers;

fn main() -> ExitCode {
    panic::install_hook();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if cli.command.is_none() {
        if let Err(message) = cli::agent::misplaced_flags(&matches, cli.server.agent_mode()) {
            eprintln!("{message}");
            return ExitCode::from(3);
        }
    }
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
/// command, the shards, the rule workers): room for the deepest query the parser accepts
/// ([`pyrite_core::promql::depth::MAX_DEPTH`]) with a wide margin. Only the pages a thread
/// touches are ever committed.
pub const STACK_SIZE: usize = 64 << 20;

/// Upstream's bound on the range compaction merges blocks into by default (31 days).
const MAX_BLOCK_RANGE_MS: i64 = 31 * 24 * 3600 * 1000;

fn run(cli: Cli, signals: Option<libc::sigset_t>, flags: Vec<(String, String)>) -> ExitCode {
    let result = match cli.command {
        Some(Command::IoUringSelftest) => runtime::io_uring_selftest_main().map_err(anyhow::Error::from),
        Some(Command::Explain { query }) => explain(&query),
        Some(Command::Query(q)) => client::run(q),
        Some(Command::Check(check)) => {
            return match check {
                cli::CheckCommand::Config { files, agent, syntax_only, lint, lint_fatal } => {
                    let lint = check::RuleLint::parse(&lint, lint_fatal);
                    check::config_files(&files, check::ConfigCheck { agent, syntax_only, lint })
                }
                cli::CheckCommand::Rules { files, lint, lint_fatal } => {
                    check::rule_files(&files, check::RuleLint::parse(&lint, lint_fatal))
                }
                cli::CheckCommand::WebConfig { files } => check::web_config_files(&files),
            }
            .into();
        }
        Some(Command::Health(args)) => probe_main(probe::Probe::Healthy, &args),
        Some(Command::Ready(args)) => probe_main(probe::Probe::Ready, &args),
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

/// Prints the server's answer, or what went wrong, in one line each.
fn probe_main(probe: probe::Probe, args: &cli::ProbeArgs) -> anyhow::Result<()> {
    println!("{}", probe::run(probe, args)?.trim_end());
    Ok(())
}

fn explain(query: &str) -> anyhow::Result<()> {
    let expr = pyrite_core::promql::parse(query)?;
    let now = pyrite_core::promql::EvalParams::instant(0, 300_000);
    print!("{}", pyrite_core::promql::plan(&expr, &now)?);
    Ok(())
}

/// Logs to stderr at `--log.level`: a level, or comma-separated `target=level` directives
/// (`warn,pyrite::scrape=debug`). A target filter, not `EnvFilter`: that one's span and field
/// matching links regex-automata's full DFA builder into the build, and every PromQL regex
/// then builds a DFA (about 15 % of a light regex query's CPU).
fn init_logging(flags: &ServerFlags) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let invalid = || format!("invalid --log.level {:?}", flags.log_level);
    // Directives as EnvFilter read them: spaces around each ignored, empty ones skipped. Span
    // and field filters (`target[span]=debug`) are not supported, and would never match.
    let directives: Vec<&str> = flags.log_level.split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
    if directives.iter().any(|d| d.contains(['[', '{'])) {
        anyhow::bail!("{}: span and field filters are not supported", invalid());
    }
    let filter: tracing_subscriber::filter::Targets = directives.join(",").parse().with_context(invalid)?;
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry();
    match flags.log_format {
        LogFormat::Json => registry.with(layer.json().with_filter(filter)).init(),
        LogFormat::Logfmt => registry.with(layer.with_ansi(false).with_filter(filter)).init(),
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
    allocator::start_purging().context("cannot start the allocator's purge thread")?;
    let http_settings = Arc::new(http_settings(&flags)?);
    let tls = http_settings.web.as_ref().is_some_and(|(file, _)| file.tls());
    let web =
        WebPaths::from_flags(flags.external_url.as_deref(), flags.route_prefix.as_deref(), &flags.listen_address, tls)?;
    // As upstream, the flags page shows the prefix in force, derived from the URL if not given.
    let mut flag_values = flag_values;
    for (_, value) in flag_values.iter_mut().filter(|(name, _)| name == "web.route-prefix") {
        value.clone_from(&web.route_prefix);
    }
    let source = ConfigSource {
        file: flags.config_file.clone(),
        self_address: self_address(&flags.listen_address)?,
        metrics_path: web.route("/metrics"),
        agent: flags.agent_mode(),
    };
    let loaded = source.load(flags.parse_options())?;
    let shard_count = runtime::shard_count(flags.shards);
    for feature in flags.enable_feature.iter().filter(|f| !cli::FEATURES.contains(&f.as_str())) {
        match feature.as_str() {
            // As upstream 3.x says of it.
            "native-histograms" => tracing::warn!(
                feature,
                "this option for --enable-feature is a no-op; to scrape native histograms, set the \
                 scrape_native_histograms scrape config setting to true"
            ),
            _ => tracing::warn!(feature, "unknown option for --enable-feature, ignored"),
        }
    }
    for (flag, why) in flags.compat.ignored() {
        tracing::warn!(flag, why, "flag accepted for compatibility with Prometheus; it changes nothing in Pyrite");
    }
    let (driver, why) = runtime::select_driver(flags.driver)?;
    tracing::info!(driver = driver.name(), reason = %why, shards = shard_count, "runtime selected");
    let storage = cli::agent::StorageFlags::of(&flags);
    let _lock = if storage.no_lockfile { None } else { Some(datadir::lock(&storage.path)?) };
    datadir::check_shard_layout(&storage.path, shard_count)?;
    let listener = http::server::bind(&flags.listen_address)?;
    tracing::info!(address = %flags.listen_address, tls, "listening");

    let (senders, receivers): (Vec<_>, Vec<_>) = (0..shard_count).map(|_| flume::unbounded()).unzip();
    let shards = Shards::new(senders);
    let metrics = Arc::new(if storage.agent.is_some() { Metrics::for_agent() } else { Metrics::new() });
    let retention_flags = Limits::of_flags(flags.retention_time, flags.retention_size);
    let retention = Limits::in_force(&loaded.config, retention_flags, &storage.path).map_err(|e| anyhow::anyhow!(e))?;
    metrics.set_retention(retention.time_ms, retention.bytes);
    let live_retention = Arc::new(LiveRetention::new(retention));
    let config = Arc::new(LiveConfig::new(source, loaded));
    let head_settings = HeadSettings::of(&config.current(), flags.exemplar_storage(), shard_count);
    let limits = QueryLimits {
        max_samples: flags.query_max_samples,
        timeout: flags.query_timeout.as_std(),
        lookback_delta: flags.lookback_delta.millis(),
        batch_slots: pyrite_core::promql::BATCH_SLOTS,
    };
    let remote = query::RemoteStores {
        config: config.clone(),
        start_margin: flags.min_block_duration.millis().saturating_mul(2),
    };
    // An agent answers no queries: the fewest workers (one per shard).
    let concurrency = if storage.agent.is_some() { 1 } else { flags.query_max_concurrency };
    let queries = Arc::new(query::executor(shards.clone(), remote, limits, concurrency, metrics.clone())?);
    let future_window = flags.future_window.millis();
    let resolver = dns::Resolver::start(flags.dns_server)?;
    let scrape = Arc::new(ScrapeManager::new(ScrapeSink {
        shards: shards.clone(),
        metrics: metrics.clone(),
        future_window,
        resolver,
        timestamp_tolerance: flags.adjust_timestamps.then(|| flags.timestamp_tolerance.as_std()),
        extra_scrape_metrics: flags.feature("extra-scrape-metrics"),
    }));
    let discovery = Arc::new(Discovery::default());
    let notifier = Arc::new(Notifier::new(
        flags.notification_queue_capacity,
        config.clone(),
        discovery.clone(),
        metrics.clone(),
        web.external_url.clone(),
    ));
    let rules = Arc::new(RuleManager::default());
    // Every segment of every log stays until the remote-write queues say what they need.
    let log_followers: Vec<LogFollowers> = (0..shard_count).map(|_| LogFollowers::holding_all()).collect();
    let remote_write =
        Arc::new(RemoteWriters::new(&storage.path, shards.clone(), metrics.clone(), log_followers.clone()));
    let reloader = Arc::new(Reloader {
        config: config.clone(),
        scrape: scrape.clone(),
        discovery: discovery.clone(),
        rules: rules.clone(),
        remote_write: remote_write.clone(),
        metrics: metrics.clone(),
        parse: flags.parse_options(),
        shards: shards.clone(),
        exemplar_storage: flags.exemplar_storage(),
        retention: live_retention.clone(),
        retention_flags,
        storage_path: storage.path.clone(),
    });
    // Queued in the mailboxes; each shard starts its targets' loops once it runs.
    reloader.apply_initial().map_err(|e| anyhow::anyhow!(e))?;
    let discovering = DiscoveryThread {
        discovery: discovery.clone(),
        config: config.clone(),
        metrics: metrics.clone(),
        dns_server: flags.dns_server,
        on_change: Box::new({
            let reloader = reloader.clone();
            move || reloader.apply_discovered()
        }),
    };
    std::thread::Builder::new().name("discovery".into()).spawn(move || discovery::run(discovering))?;
    let evaluating = RulesThread {
        manager: rules.clone(),
        shards: shards.clone(),
        queries: queries.clone(),
        notifier: notifier.clone(),
        metrics: metrics.clone(),
        alerting: AlertingFlags {
            resend_delay: flags.resend_delay.millis(),
            for_outage_tolerance: flags.for_outage_tolerance.millis(),
            for_grace_period: flags.for_grace_period.millis(),
        },
        external_url: web.external_url.clone(),
        parse: flags.parse_options(),
        concurrent_evals: flags.feature("concurrent-rule-eval").then(|| ConcurrentEvals {
            slots: slots::Slots::new(flags.rules_max_concurrent_evals),
            shards: shards.clone(),
            queries: queries.clone(),
        }),
    };
    // An agent evaluates no rules and sends no alerts (its configuration names none).
    if storage.agent.is_none() {
        std::thread::Builder::new().name("rules".into()).spawn(move || rules::run(evaluating))?;
        std::thread::Builder::new().name("notifier".into()).spawn({
            let notifier = notifier.clone();
            move || notifier::run(notifier)
        })?;
    }
    let api = Arc::new(http::Api {
        shards: shards.clone(),
        queries,
        metrics: metrics.clone(),
        config,
        scrape,
        rules,
        notifier,
        reloads: reload::ReloadRequests::start(reloader.clone())?,
        web,
        flags: flag_values,
        lifecycle_api: flags.enable_lifecycle,
        admin_api: flags.enable_admin_api,
        remote_write_receiver: flags.enable_remote_write_receiver,
        remote_write_messages: flags.remote_write_messages.clone(),
        remote_read: http::remote_read::ReadLimits::new(
            flags.remote_read_sample_limit,
            flags.remote_read_concurrent_limit,
            flags.remote_read_max_bytes_in_frame,
        ),
        cors_origin: flags.cors_origin.clone(),
        page_title: flags.page_title.clone(),
        parse_options: flags.parse_options(),
        storage_path: storage.path.clone(),
        agent: storage.agent.is_some(),
        retention: live_retention.clone(),
        future_window,
        started: clock::now_ms(),
    });
    let env = Arc::new(ShardEnv {
        shards: shards.clone(),
        metrics,
        storage_path: storage.path.clone(),
        wal: storage.wal,
        wal_fsync_interval: (flags.wal_fsync_interval.millis() > 0)
            .then(|| std::time::Duration::from_millis(flags.wal_fsync_interval.millis() as u64)),
        head_snapshot_interval: (flags.head_snapshot_interval.millis() > 0)
            .then(|| flags.head_snapshot_interval.millis()),
        block_range: flags.min_block_duration.millis().max(1),
        max_block_range: flags.max_block_duration.map_or_else(
            // Upstream's default: a tenth of the retention time, at most 31 days.
            || match retention.time_ms / 10 {
                0 => MAX_BLOCK_RANGE_MS,
                tenth => tenth.min(MAX_BLOCK_RANGE_MS),
            },
            |d| d.millis(),
        ),
        retention: live_retention,
        future_window,
        log_followers,
        agent: storage.agent,
        head: head_settings,
    });
    let cpus = runtime::allowed_cpus();
    let mut threads = Vec::new();
    for (index, mailbox) in receivers.into_iter().enumerate() {
        let start = ShardStart {
            index,
            mailbox,
            listener: listener.try_clone()?,
            router: http::router(api.clone(), index),
            http: http_settings.clone(),
        };
        let env = env.clone();
        let cpu = (shard_count <= cpus.len()).then(|| cpus[index]);
        let thread =
            std::thread::Builder::new().name(format!("shard-{index}")).stack_size(STACK_SIZE).spawn(move || {
                if let Some(cpu) = cpu {
                    if let Err(e) = monoio::utils::bind_to_cpu_set([cpu]) {
                        tracing::warn!(shard = index, cpu, error = ?e, "cannot pin shard to its CPU");
                    }
                }
                if let Err(e) = runtime::block_on(driver, shard::run(start, env)) {
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
                let _ = reloader.reload();
            }
            sig => {
                tracing::info!(signal = sig, "received termination signal, syncing storage");
                break;
            }
        }
    }
    remote_write.stop_all();
    shut_down(&shards);
    // The logs' lines still waiting are written.
    query_log::install(None);
    scrape_failure_log::install(Default::default());
    tracing::info!("exiting");
    Ok(())
}

/// `host:port` at which the server reaches itself, for the embedded default configuration's
/// self-scrape: the listen address, with `localhost` for an unspecified host.
fn self_address(listen_address: &str) -> anyhow::Result<String> {
    let addr = http::server::parse_listen_address(listen_address)?;
    let host = if addr.ip().is_unspecified() { "localhost".to_string() } else { addr.ip().to_string() };
    Ok(if addr.is_ipv6() && host != "localhost" {
        format!("[{host}]:{}", addr.port())
    } else {
        format!("{host}:{}", addr.port())
    })
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
    let receivers: Vec<_> = (0..shards.len()).map(|i| shards.shut_down(i)).collect();
    for (i, rx) in receivers.into_iter().enumerate() {
        if rx.recv_deadline(deadline).is_err() {
            tracing::warn!(shard = i, "shard did not finish syncing its storage in time");
        }
    }
}
