//! Agent mode's flags (`--agent`, `--storage.agent.*`), and upstream's rule that a server-only
//! flag given in agent mode, or an agent-only flag given without it, refuses to start (exit
//! code 3, naming them), so that nobody believes a flag applies when it does not; and the
//! storage settings each mode takes from its own flags ([`StorageFlags`]).

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};
use pyrite_core::config::{ByteSize, Duration};

use super::{duration, Cli, ServerFlags};
use crate::shard::AgentStorage;
use pyrite_tsdb::wal::WalOptions;

#[derive(Debug, clap::Args)]
pub struct AgentFlags {
    /// Run in agent mode, as Prometheus's `--agent`: scrape, log and remote-write only; no local
    /// queries, rules, alerts or blocks. `--enable-feature=agent` (Prometheus 2.x) does the same.
    #[arg(long = "agent")]
    pub agent: bool,
    /// Base path for the agent's write-ahead log. Use with agent mode only.
    #[arg(long = "storage.agent.path", default_value = "data-agent/")]
    pub agent_path: PathBuf,
    /// Snappy-compress the agent's write-ahead log records. Use with agent mode only.
    #[arg(
        long = "storage.agent.wal-compression",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub agent_wal_compression: bool,
    /// Size of an agent write-ahead log segment file. Use with agent mode only.
    #[arg(long = "storage.agent.wal-segment-size", default_value = "128MB", value_parser = ByteSize::parse)]
    pub agent_wal_segment_size: ByteSize,
    /// How often the agent's log is truncated and idle series forgotten (Prometheus: 2h).
    /// Use with agent mode only.
    #[arg(long = "storage.agent.wal-truncate-frequency", default_value = "1m", value_parser = duration)]
    pub agent_truncate_frequency: Duration,
    /// Minimum age samples may be before being considered for deletion when the log is
    /// truncated; series idle for longer are forgotten. Use with agent mode only.
    #[arg(long = "storage.agent.retention.min-time", default_value = "5m", value_parser = duration)]
    pub agent_min_time: Duration,
    /// Maximum age samples may be before being forcibly deleted when the log is truncated,
    /// sent or not. Use with agent mode only.
    #[arg(long = "storage.agent.retention.max-time", default_value = "4h", value_parser = duration)]
    pub agent_max_time: Duration,
    /// Do not lock the agent's data directory. Use with agent mode only.
    #[arg(
        long = "storage.agent.no-lockfile",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub agent_no_lockfile: bool,
}

/// Flags upstream marks server-only besides every `storage.tsdb.*` one.
const SERVER_ONLY: [&str; 12] = [
    "storage.remote.read-sample-limit",
    "storage.remote.read-concurrent-limit",
    "storage.remote.read-max-bytes-in-frame",
    "rules.alert.for-outage-tolerance",
    "rules.alert.for-grace-period",
    "rules.alert.resend-delay",
    "rules.max-concurrent-evals",
    "alertmanager.notification-queue-capacity",
    "query.lookback-delta",
    "query.timeout",
    "query.max-concurrency",
    "query.max-samples",
];

fn server_only(flag: &str) -> bool {
    flag.starts_with("storage.tsdb.") || SERVER_ONLY.contains(&flag)
}

fn agent_only(flag: &str) -> bool {
    flag.starts_with("storage.agent.")
}

/// Upstream's refusal of flags given for the other mode, as the message to print (exit code 3).
pub fn misplaced_flags(matches: &ArgMatches, agent: bool) -> Result<(), String> {
    let given: Vec<String> = Cli::command()
        .get_arguments()
        .filter(|arg| matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|arg| arg.get_long())
        .filter(|long| if agent { server_only(long) } else { agent_only(long) })
        .map(|long| format!("\"--{long}\""))
        .collect();
    match (given.is_empty(), agent) {
        (true, _) => Ok(()),
        (false, true) => Err(format!("The following flag(s) can not be used in agent mode: [{}]", given.join(" "))),
        (false, false) => Err(format!("The following flag(s) can only be used in agent mode: [{}]", given.join(" "))),
    }
}

/// Where and how the server keeps its data: `--storage.tsdb.*`, or `--storage.agent.*` in
/// agent mode.
pub struct StorageFlags {
    pub path: std::path::PathBuf,
    pub no_lockfile: bool,
    pub wal: WalOptions,
    pub agent: Option<AgentStorage>,
}

impl StorageFlags {
    pub fn of(flags: &ServerFlags) -> StorageFlags {
        let a = &flags.agent;
        match flags.agent_mode() {
            true => StorageFlags {
                path: a.agent_path.clone(),
                no_lockfile: a.agent_no_lockfile,
                wal: WalOptions { compress: a.agent_wal_compression, segment_size: a.agent_wal_segment_size.0 },
                agent: Some(AgentStorage {
                    min_time: a.agent_min_time.millis(),
                    max_time: a.agent_max_time.millis(),
                    truncate_every: std::time::Duration::from_millis(a.agent_truncate_frequency.millis().max(1) as u64),
                }),
            },
            false => StorageFlags {
                path: flags.storage_path.clone(),
                no_lockfile: flags.no_lockfile,
                wal: WalOptions { compress: flags.wal_compression, segment_size: flags.wal_segment_size.0 },
                agent: None,
            },
        }
    }
}
