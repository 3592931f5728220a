//! Command-line flags, named as Prometheus names them.

pub mod agent;
mod compat;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use pyrite_core::config::{ByteSize, Duration};

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
    /// Queries a Prometheus-compatible server, printing as `promtool query` does.
    Query(QueryArgs),
    /// Checks files as `promtool check` does.
    #[command(subcommand)]
    Check(CheckCommand),
    /// Runs unit tests as `promtool test` does.
    #[command(subcommand)]
    Test(TestCommand),
    /// Exits 0 if the server on this host answers `/-/healthy` with 200, 1 otherwise: the
    /// container health check. Takes the server's flags to find it (listen address, route
    /// prefix or external URL, web configuration).
    Health(ProbeArgs),
    /// Exits 0 if the server on this host answers `/-/ready` with 200 (storage loaded), 1
    /// otherwise. Takes the server's flags, as `health`.
    Ready(ProbeArgs),
}

/// `pyrite health|ready`: where the server is, and how long to wait for it.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The server's URL with its path prefix (e.g. http://localhost:9090/prometheus), in place
    /// of one derived from the server flags.
    #[arg(long)]
    pub url: Option<String>,
    /// Most time the probe may take.
    #[arg(long, default_value = "3s", value_parser = duration)]
    pub timeout: Duration,
    /// HTTP client configuration file, as promtool's: basic_auth, authorization, tls_config.
    #[arg(long = "http.config.file")]
    pub http_config_file: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerFlags,
}

/// `pyrite test ...`.
#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Runs rule unit tests (promtool's format): exit 0 if all pass, 1 otherwise.
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Runs only the test groups whose name matches one of these regular expressions.
        #[arg(long)]
        run: Vec<String>,
        /// Ignores keys of rule files that upstream does not know.
        #[arg(long)]
        ignore_unknown_fields: bool,
    },
}

/// `pyrite check ...`.
#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Validates configuration files: exit 0 if all are valid, 1 otherwise, naming the file,
    /// the key path and the problem.
    Config {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Check for agent mode: `rule_files`, `alerting` and `remote_read` are refused.
        #[arg(long)]
        agent: bool,
        /// Check the files' syntax only, not the rule, credential, certificate and discovery
        /// files they name.
        #[arg(long)]
        syntax_only: bool,
        /// Lints of the rule files named, comma-separated: all, duplicate-rules, none.
        #[arg(long, default_value = "duplicate-rules")]
        lint: String,
        /// Makes lint findings exit with 3.
        #[arg(long)]
        lint_fatal: bool,
    },
    /// Validates rule files: exit 0 if all are valid, 1 otherwise, naming the file, the group,
    /// the rule and the problem.
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Lints to run, comma-separated: all, duplicate-rules, none.
        #[arg(long, default_value = "duplicate-rules")]
        lint: String,
        /// Makes lint findings exit with 3.
        #[arg(long)]
        lint_fatal: bool,
    },
    /// Validates web configuration files (--web.config.file), certificates included.
    WebConfig {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `pyrite query [--http.config.file=FILE] ...`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// HTTP client configuration file, as promtool's: basic_auth, authorization, tls_config,
    /// proxy_url, follow_redirects.
    #[arg(long = "http.config.file", global = true)]
    pub http_config_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: QueryCommand,
}

/// `pyrite query ...`: promtool's query subcommands, for scripts.
#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// An instant query.
    Instant {
        /// The server, e.g. http://localhost:9090 (with its path prefix, if any).
        server: String,
        expr: String,
        /// Evaluation time (RFC 3339 or Unix seconds); default now.
        #[arg(long)]
        time: Option<String>,
        /// Output format.
        #[arg(short = 'o', long = "format", value_enum, default_value = "promql")]
        format: OutputFormat,
    },
    /// A range query.
    Range {
        server: String,
        expr: String,
        /// Start time (RFC 3339 or Unix seconds); default five minutes before the end.
        #[arg(long)]
        start: Option<String>,
        /// End time (RFC 3339 or Unix seconds); default now.
        #[arg(long)]
        end: Option<String>,
        /// Resolution step (duration or seconds); default a 250th of the range, at least 1s.
        #[arg(long)]
        step: Option<String>,
        #[arg(short = 'o', long = "format", value_enum, default_value = "promql")]
        format: OutputFormat,
    },
    /// The series matching selectors.
    Series {
        server: String,
        /// A series selector; repeat for several.
        #[arg(long = "match", required = true)]
        matches: Vec<String>,
        #[command(flatten)]
        range: TimeRange,
    },
    /// The values of a label.
    Labels {
        server: String,
        name: String,
        /// A series selector to restrict the series looked at; repeat for several.
        #[arg(long = "match")]
        matches: Vec<String>,
        #[command(flatten)]
        range: TimeRange,
    },
}

/// The optional time range and output format of `pyrite query series` and `labels`.
#[derive(Debug, clap::Args)]
pub struct TimeRange {
    /// Start time (RFC 3339 or Unix seconds).
    #[arg(long)]
    pub start: Option<String>,
    /// End time (RFC 3339 or Unix seconds).
    #[arg(long)]
    pub end: Option<String>,
    #[arg(short = 'o', long = "format", value_enum, default_value = "promql")]
    pub format: OutputFormat,
}

/// How `pyrite query` prints results: like promtool's `-o promql` (text) or `-o json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Promql,
    Json,
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

fn write_message(s: &str) -> Result<pyrite_core::remote::v2::WriteMessage, String> {
    use pyrite_core::remote::v2::{message_list, WriteMessage};
    WriteMessage::from_proto_name(s).ok_or_else(|| format!("supported values: {}", message_list(&WriteMessage::ALL)))
}

/// A count of at least one (upstream's listener would accept nothing with 0).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Debug, clap::Args)]
pub struct ServerFlags {
    /// Prometheus configuration file; without one, an embedded default that scrapes this server.
    #[arg(long = "config.file")]
    pub config_file: Option<PathBuf>,
    /// Address to listen on for the API, UI and telemetry.
    #[arg(long = "web.listen-address", default_value = "0.0.0.0:9090")]
    pub listen_address: String,
    /// The URL under which Pyrite is reached from outside (behind a reverse proxy or load
    /// balancer); its path becomes the route prefix. Default: http://<hostname>:<port>.
    #[arg(long = "web.external-url")]
    pub external_url: Option<String>,
    /// Path prefix of every route; default: the path of --web.external-url.
    #[arg(long = "web.route-prefix")]
    pub route_prefix: Option<String>,
    /// DNS server (ip:port) that resolves scrape targets' host names and dns_sd_configs names,
    /// in place of the nameservers of /etc/resolv.conf (/etc/hosts is still read first).
    /// `--discovery.dns-server` is its former name.
    #[arg(long = "dns.server", alias = "discovery.dns-server")]
    pub dns_server: Option<std::net::SocketAddr>,
    /// Web configuration file (exporter-toolkit's format): TLS, basic auth and response headers;
    /// re-read when it changes. See docs/security.md.
    #[arg(long = "web.config.file")]
    pub web_config_file: Option<PathBuf>,
    /// Most HTTP connections open at once, across all shards; more wait to be accepted.
    #[arg(long = "web.max-connections", default_value_t = 512, value_parser = at_least_one)]
    pub max_connections: usize,
    /// Most time a client may take to send a whole request; 0s for no limit.
    #[arg(long = "web.read-timeout", default_value = "5m", value_parser = duration)]
    pub read_timeout: Duration,
    /// Regular expression (anchored) of the origins allowed to call the API from a browser.
    #[arg(long = "web.cors.origin", default_value = ".*", value_parser = crate::http::parse_cors_origin)]
    pub cors_origin: regex::Regex,
    /// Title of the web UI's pages.
    #[arg(long = "web.page-title", default_value = "Pyrite")]
    pub page_title: String,
    /// Serve /-/reload and /-/quit (shutdown and reload over HTTP).
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,
    /// Accept remote-write requests on /api/v1/write.
    #[arg(long = "web.enable-remote-write-receiver")]
    pub enable_remote_write_receiver: bool,
    /// Remote-write protobuf messages the receiver accepts (others get 415): prometheus.WriteRequest
    /// (1.0), io.prometheus.write.v2.Request (2.0). Repeat the flag or separate with commas.
    #[arg(
        long = "web.remote-write-receiver.accepted-protobuf-messages",
        value_delimiter = ',',
        default_value = "prometheus.WriteRequest,io.prometheus.write.v2.Request",
        value_parser = write_message
    )]
    pub remote_write_messages: Vec<pyrite_core::remote::v2::WriteMessage>,
    /// Most samples one remote read answers with SAMPLES, over all its queries; 0 for no limit.
    #[arg(long = "storage.remote.read-sample-limit", default_value_t = 50_000_000)]
    pub remote_read_sample_limit: usize,
    /// Most remote reads answered at once (the others wait); 0 for no limit.
    #[arg(long = "storage.remote.read-concurrent-limit", default_value_t = 10)]
    pub remote_read_concurrent_limit: usize,
    /// Bytes of chunks in one frame of a streamed remote-read answer (one chunk at least).
    #[arg(long = "storage.remote.read-max-bytes-in-frame", default_value_t = 1_048_576)]
    pub remote_read_max_bytes_in_frame: usize,
    /// Base path for the data directory (locked while Pyrite runs).
    #[arg(long = "storage.tsdb.path", default_value = "data/")]
    pub storage_path: PathBuf,
    /// Do not lock the data directory (for file systems without flock). Nothing then stops a
    /// second server from writing the same directory and corrupting it.
    #[arg(
        long = "storage.tsdb.no-lockfile",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub no_lockfile: bool,
    /// How long to keep samples; blocks entirely older are deleted. Unset (0), 15 days unless
    /// `--storage.tsdb.retention.size` is set, as upstream; the configuration's
    /// `storage.tsdb.retention` replaces both flags (see `crate::retention`).
    #[arg(long = "storage.tsdb.retention.time", default_value = "0s", value_parser = duration)]
    pub retention_time: Duration,
    /// The most bytes the data directory may hold, 0 for no limit; beyond it the oldest blocks
    /// go first. Counts blocks, the write-ahead log and the head snapshot.
    #[arg(long = "storage.tsdb.retention.size", default_value = "0B", value_parser = ByteSize::parse)]
    pub retention_size: ByteSize,
    /// Time range of the blocks the head is cut into.
    #[arg(long = "storage.tsdb.min-block-duration", default_value = "2h", value_parser = duration)]
    pub min_block_duration: Duration,
    /// How far ahead of this server's clock a sample's timestamp may be (Pyrite's own flag;
    /// upstream refuses scraped samples more than 10m ahead and has no bound for remote
    /// writes). Later samples are refused and counted, so that one sample stamped years ahead
    /// cannot push every current sample out of the head's time range.
    #[arg(long = "storage.tsdb.too-far-in-future.time-window", default_value = "10m", value_parser = duration)]
    pub future_window: Duration,
    /// Move a scrape's timestamp onto its target's schedule when the scrape started at most
    /// `--scrape.timestamp-tolerance` late, as upstream does (hidden there, default on), so
    /// that timestamps lie exactly an interval apart and compress to nothing.
    #[arg(
        long = "scrape.adjust-timestamps",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub adjust_timestamps: bool,
    /// How late a scrape may start and still be stamped on its schedule; at most 1 % of the
    /// scrape interval is used.
    #[arg(long = "scrape.timestamp-tolerance", default_value = "2ms", value_parser = duration)]
    pub timestamp_tolerance: Duration,
    /// Largest time range compaction merges blocks into; default a tenth of the retention
    /// time, at most 31 days.
    #[arg(long = "storage.tsdb.max-block-duration", value_parser = duration)]
    pub max_block_duration: Option<Duration>,
    /// Serve the admin endpoints (/api/v1/admin/tsdb/delete_series, clean_tombstones).
    #[arg(long = "web.enable-admin-api")]
    pub enable_admin_api: bool,
    /// Snappy-compress write-ahead log records.
    #[arg(
        long = "storage.tsdb.wal-compression",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub wal_compression: bool,
    /// Size of a write-ahead log segment file.
    #[arg(long = "storage.tsdb.wal-segment-size", default_value = "128MB", value_parser = ByteSize::parse)]
    pub wal_segment_size: ByteSize,
    /// Fsync the write-ahead log this often (Pyrite's own flag). 0s, the default, fsyncs as
    /// Prometheus does: when a segment is full and at shutdown. A process crash never loses
    /// acknowledged samples; a power loss can lose what came after the last fsync.
    #[arg(long = "storage.tsdb.wal-fsync-interval", default_value = "0s", value_parser = duration)]
    pub wal_fsync_interval: Duration,
    /// Write the whole head as a snapshot this often (Pyrite's own flag; 0s: only at
    /// shutdown), so that a restart after a crash loads it and replays only the log written
    /// since, instead of the whole log.
    #[arg(long = "storage.tsdb.head-snapshot-interval", default_value = "10m", value_parser = duration)]
    pub head_snapshot_interval: Duration,
    /// How long a `for` alert's state is kept across an outage (restored from `ALERTS_FOR_STATE`).
    #[arg(long = "rules.alert.for-outage-tolerance", default_value = "1h", value_parser = duration)]
    pub for_outage_tolerance: Duration,
    /// Least time left before a restored `for` alert fires.
    #[arg(long = "rules.alert.for-grace-period", default_value = "10m", value_parser = duration)]
    pub for_grace_period: Duration,
    /// Least time between two sends of the same firing alert to Alertmanager.
    #[arg(long = "rules.alert.resend-delay", default_value = "1m", value_parser = duration)]
    pub resend_delay: Duration,
    /// With `--enable-feature=concurrent-rule-eval`: rules evaluated at once inside groups (rules
    /// independent of each other), over all groups. Each takes a `--query.max-concurrency` slot.
    #[arg(long = "rules.max-concurrent-evals", default_value_t = 4)]
    pub rules_max_concurrent_evals: usize,
    /// Alerts waiting to be sent; beyond it the oldest are dropped.
    #[arg(long = "alertmanager.notification-queue-capacity", default_value_t = 10_000)]
    pub notification_queue_capacity: usize,
    /// How far back an instant selector looks for a sample.
    #[arg(long = "query.lookback-delta", default_value = "5m", value_parser = duration)]
    pub lookback_delta: Duration,
    /// Maximum time a query may take before it is aborted.
    #[arg(long = "query.timeout", default_value = "2m", value_parser = duration)]
    pub query_timeout: Duration,
    /// Maximum number of samples a single query may load into memory.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000)]
    pub query_max_samples: usize,
    /// Maximum number of queries evaluated at once; more wait for a slot. As many query worker
    /// threads are started (at least one per shard).
    #[arg(long = "query.max-concurrency", default_value_t = 20)]
    pub query_max_concurrency: usize,
    /// Comma-separated feature flags to enable: concurrent-rule-eval, promql-experimental-functions,
    /// promql-extended-range-selectors, agent (as --agent).
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
    #[command(flatten)]
    pub compat: compat::CompatFlags,
    #[command(flatten)]
    pub agent: agent::AgentFlags,
}

/// The `--enable-feature` options Pyrite knows; others are warned about and ignored.
pub const FEATURES: [&str; 6] = [
    "agent",
    "concurrent-rule-eval",
    "exemplar-storage",
    "extra-scrape-metrics",
    "promql-experimental-functions",
    "promql-extended-range-selectors",
];

impl ServerFlags {
    /// Agent mode: `--agent`, or Prometheus 2.x's `--enable-feature=agent`.
    pub fn agent_mode(&self) -> bool {
        self.agent.agent || self.feature("agent")
    }

    /// Whether exemplars are kept: with `--enable-feature=exemplar-storage`, as upstream, and
    /// always by an agent, which logs them for remote write as upstream's does.
    pub fn exemplar_storage(&self) -> bool {
        self.feature("exemplar-storage") || self.agent_mode()
    }

    /// Whether `--enable-feature` names `feature`.
    pub fn feature(&self, feature: &str) -> bool {
        self.enable_feature.iter().any(|f| f == feature)
    }

    /// How PromQL is parsed, from `--enable-feature`.
    pub fn parse_options(&self) -> pyrite_core::promql::ParseOptions {
        pyrite_core::promql::ParseOptions {
            experimental_functions: self.feature("promql-experimental-functions"),
            extended_range_selectors: self.feature("promql-extended-range-selectors"),
        }
    }
}
