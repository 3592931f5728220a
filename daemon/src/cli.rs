//! Command-line flags, named as Prometheus names them.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use pyrite_core::config::Duration;

#[derive(Debug, Parser)]
#[command(name = "pyrite", version, about = "A Prometheus-compatible monitoring server, thread per core")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub server: ServerFlags,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Checks that io_uring works in this process (used by the runtime self-test; exits 0 if so).
    #[command(hide = true, name = "io-uring-selftest")]
    IoUringSelftest,
    /// Parses a PromQL expression and prints how it runs across shards.
    Explain { query: String },
}

/// How the shards do I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriverChoice {
    /// io_uring if a self-test passes, epoll otherwise.
    Auto,
    /// io_uring, or refuse to start.
    #[value(name = "io_uring")]
    IoUring,
    /// epoll.
    Epoll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

fn duration(s: &str) -> Result<Duration, String> {
    Duration::parse(s)
}

#[derive(Debug, clap::Args)]
pub struct ServerFlags {
    /// Prometheus configuration file; without one, an embedded default that scrapes this server.
    #[arg(long = "config.file")]
    pub config_file: Option<PathBuf>,
    /// Address to listen on for the API, UI and telemetry.
    #[arg(long = "web.listen-address", default_value = "0.0.0.0:9090")]
    pub listen_address: String,
    /// Accept remote-write requests on /api/v1/write.
    #[arg(long = "web.enable-remote-write-receiver")]
    pub enable_remote_write_receiver: bool,
    /// Base path for the data directory (locked while Pyrite runs).
    #[arg(long = "storage.tsdb.path", default_value = "data/")]
    pub storage_path: PathBuf,
    /// How long to keep samples (in memory for now).
    #[arg(long = "storage.tsdb.retention.time", default_value = "15d", value_parser = duration)]
    pub retention_time: Duration,
    /// How far back an instant selector looks for a sample.
    #[arg(long = "query.lookback-delta", default_value = "5m", value_parser = duration)]
    pub lookback_delta: Duration,
    /// Maximum time a query may take before it is aborted.
    #[arg(long = "query.timeout", default_value = "2m", value_parser = duration)]
    pub query_timeout: Duration,
    /// Maximum number of samples a single query may load into memory.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000)]
    pub query_max_samples: usize,
    /// Maximum number of queries evaluated at once; more wait for a slot.
    #[arg(long = "query.max-concurrency", default_value_t = 20)]
    pub query_max_concurrency: usize,
    /// Comma-separated feature flags to enable: promql-experimental-functions.
    #[arg(long = "enable-feature", value_delimiter = ',')]
    pub enable_feature: Vec<String>,
    /// Number of shard threads; default: the CPUs this process may use (cgroup quota and affinity).
    #[arg(long = "shards")]
    pub shards: Option<usize>,
    /// I/O driver of the shard runtimes.
    #[arg(long = "runtime.driver", value_enum, default_value = "auto")]
    pub driver: DriverChoice,
    /// Only log messages at or above this level: debug, info, warn, error.
    #[arg(long = "log.level", default_value = "info")]
    pub log_level: String,
    /// Log line format.
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    pub log_format: LogFormat,
}
