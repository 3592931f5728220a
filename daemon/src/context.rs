//! What every shard and handler shares: shard handles, settings, metrics, readiness, the live
//! configuration and the scraped targets.
//!
//! Everything here is immutable after start-up, atomic, or behind a short lock, so it is shared
//! as `Arc<Context>`.

use std::sync::atomic::{AtomicUsize, Ordering};

use pyrite_core::config::Duration;
use pyrite_core::promql::{ParseOptions, QueryLimits};

use crate::discovery::Discovery;
use crate::http::prefix::WebPaths;
use crate::metrics::Metrics;
use crate::notifier::Notifier;
use crate::query::ServerExecutor;
use crate::reload::LiveConfig;
use crate::rules::{AlertingFlags, RuleManager};
use crate::scrape::ScrapeManager;
use crate::shard::Shards;
use pyrite_tsdb::wal::WalOptions;

pub struct Context {
    pub shards: Shards,
    pub metrics: Metrics,
    pub config: LiveConfig,
    pub scrape: ScrapeManager,
    pub discovery: Discovery,
    pub rules: RuleManager,
    pub notifier: Notifier,
    pub alerting: AlertingFlags,
    /// Every command-line flag and its value, for `/api/v1/status/flags`.
    pub flags: Vec<(String, String)>,
    pub web: WebPaths,
    /// `--web.enable-lifecycle`.
    pub lifecycle_api: bool,
    /// `--web.cors.origin`, anchored.
    pub cors_origin: regex::Regex,
    /// `--discovery.dns-server`.
    pub dns_server: Option<String>,
    /// Unix ms at start-up.
    pub started: i64,
    pub replay: ReplayCounts,
    /// Runs every query: API, rules, templates.
    pub queries: ServerExecutor,
    pub retention: Duration,
    /// `--storage.tsdb.min-block-duration` in ms: the head is cut into blocks of this range.
    pub block_range: i64,
    /// How far past the clock a sample may be (ms), `--storage.tsdb.too-far-in-future.time-window`.
    pub future_window: i64,
    /// `--storage.tsdb.max-block-duration` in ms: compaction builds blocks up to this range.
    pub max_block_range: i64,
    /// `--web.enable-admin-api`.
    pub admin_api: bool,
    /// `--storage.tsdb.retention.size` divided among the shards (each keeps its own log).
    pub retention_size_per_shard: Option<u64>,
    pub remote_write_receiver: bool,
    /// `--storage.tsdb.path`; each shard keeps its write-ahead log in `wal/<shard>/` under it.
    pub storage_path: std::path::PathBuf,
    pub wal: WalOptions,
    /// Fsync the write-ahead log this often; None: when a segment is full and at shutdown.
    pub wal_fsync_interval: Option<std::time::Duration>,
    /// Snapshot the head this often (ms); None: only at shutdown.
    pub head_snapshot_interval: Option<i64>,
    /// How PromQL is parsed (feature flags).
    pub parse_options: ParseOptions,
    ready_shards: AtomicUsize,
}

/// What the shards' log replays found, summed (`/api/v1/status/runtimeinfo` and `walreplay`).
#[derive(Default)]
pub struct ReplayCounts {
    pub segments: std::sync::atomic::AtomicU64,
    pub corruptions: std::sync::atomic::AtomicU64,
}

impl Context {
    pub fn new(
        shards: Shards,
        flags: &crate::cli::ServerFlags,
        flag_values: Vec<(String, String)>,
        config: LiveConfig,
        web: WebPaths,
    ) -> Self {
        let shard_count = shards.len().max(1) as u64;
        let limits = QueryLimits {
            max_samples: flags.query_max_samples,
            timeout: flags.query_timeout.as_std(),
            lookback_delta: flags.lookback_delta.millis(),
        };
        Context {
            queries: crate::query::executor(shards.clone(), limits, flags.query_max_concurrency),
            shards,
            metrics: Metrics::new(),
            config,
            scrape: ScrapeManager::default(),
            discovery: Discovery::default(),
            rules: RuleManager::default(),
            notifier: Notifier::new(flags.notification_queue_capacity),
            alerting: AlertingFlags {
                resend_delay: flags.resend_delay.millis(),
                for_outage_tolerance: flags.for_outage_tolerance.millis(),
                for_grace_period: flags.for_grace_period.millis(),
            },
            flags: flag_values,
            web,
            lifecycle_api: flags.enable_lifecycle,
            cors_origin: flags.cors_origin.clone(),
            dns_server: flags.dns_server.clone(),
            started: crate::clock::now_ms(),
            replay: ReplayCounts::default(),
            retention: flags.retention_time,
            block_range: flags.min_block_duration.millis().max(1),
            future_window: flags.future_window.millis(),
            max_block_range: flags.max_block_duration.map_or_else(
                // Upstream's default: a tenth of the retention, at most 31 days.
                || (flags.retention_time.millis() / 10).min(31 * 24 * 3600 * 1000),
                |d| d.millis(),
            ),
            admin_api: flags.enable_admin_api,
            retention_size_per_shard: (flags.retention_size.0 > 0).then(|| flags.retention_size.0 / shard_count),
            remote_write_receiver: flags.enable_remote_write_receiver,
            storage_path: flags.storage_path.clone(),
            wal: WalOptions { compress: flags.wal_compression, segment_size: flags.wal_segment_size.0 },
            head_snapshot_interval: (flags.head_snapshot_interval.millis() > 0)
                .then(|| flags.head_snapshot_interval.millis()),
            wal_fsync_interval: (flags.wal_fsync_interval.millis() > 0)
                .then(|| std::time::Duration::from_millis(flags.wal_fsync_interval.millis() as u64)),
            parse_options: flags.parse_options(),
            ready_shards: AtomicUsize::new(0),
        }
    }

    pub fn mark_shard_ready(&self) {
        self.ready_shards.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether every shard is running and can answer queries.
    pub fn ready(&self) -> bool {
        self.ready_shards.load(Ordering::SeqCst) >= self.shards.len()
    }
}
