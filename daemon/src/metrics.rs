//! Pyrite's own metrics, served on `/metrics` (prometheus-client).
//!
//! Every metric is an atomic, so shard threads update them without locks or messages.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Label set of the metrics below.
pub type MetricLabels = Vec<(&'static str, String)>;
type Labels = MetricLabels;

pub struct Metrics {
    registry: Registry,
    pub samples_appended: Family<Labels, Counter>,
    pub out_of_order: Family<Labels, Counter>,
    pub duplicates: Family<Labels, Counter>,
    pub out_of_bounds: Family<Labels, Counter>,
    pub too_far_in_future: Family<Labels, Counter>,
    pub head_series: Family<Labels, Gauge>,
    pub head_series_removed: Family<Labels, Counter>,
    pub head_chunks: Family<Labels, Gauge>,
    pub wal_write_failures: Family<Labels, Counter>,
    pub wal_corruptions: Family<Labels, Counter>,
    pub compactions: Family<Labels, Counter>,
    pub head_snapshots: Family<Labels, Counter>,
    pub compactions_failed: Family<Labels, Counter>,
    pub compaction_duration: Histogram,
    pub blocks_loaded: Family<Labels, Gauge>,
    pub blocks_refused: Family<Labels, Counter>,
    pub blocks_bytes: Family<Labels, Gauge>,
    pub time_retentions: Family<Labels, Counter>,
    pub size_retentions: Family<Labels, Counter>,
    pub driver: Family<Labels, Gauge>,
    pub scrapes: Family<Labels, Counter>,
    pub scrape_duration: Histogram,
    pub remote_write_requests: Family<Labels, Counter>,
    pub queries: Family<Labels, Counter>,
    pub config_reload_successful: Gauge,
    pub config_reload_success_time: Gauge,
    pub active_targets: Gauge,
    pub discovery_failures: Counter,
    pub rule_evaluations: Family<Labels, Counter>,
    pub rule_groups: RuleGroupMetrics,
    pub notifications_sent: Family<Labels, Counter>,
    pub notifications_errors: Family<Labels, Counter>,
    pub notifications_dropped: Counter,
    pub notification_queue_length: Gauge,
}

/// Upstream's per-group rule metrics (`prometheus_rule_group_*` there), by `rule_group`
/// (`file;name`).
#[derive(Default)]
pub struct RuleGroupMetrics {
    pub iterations: Family<Labels, Counter>,
    pub iterations_missed: Family<Labels, Counter>,
    pub evaluation_failures: Family<Labels, Counter>,
    pub interval: Family<Labels, Gauge<f64, AtomicU64>>,
    pub last_evaluation: Family<Labels, Gauge<f64, AtomicU64>>,
    pub last_duration: Family<Labels, Gauge<f64, AtomicU64>>,
    pub rules: Family<Labels, Gauge>,
    pub last_samples: Family<Labels, Gauge>,
}

impl RuleGroupMetrics {
    fn register(&self, registry: &mut Registry) {
        let m = self;
        registry.register(
            "rule_group_iterations",
            "Scheduled evaluations of each rule group, whether evaluated or missed",
            m.iterations.clone(),
        );
        registry.register(
            "rule_group_iterations_missed",
            "Evaluations of each rule group missed because the one before was still running",
            m.iterations_missed.clone(),
        );
        registry.register(
            "rule_evaluation_failures",
            "Rule evaluations that failed, per group",
            m.evaluation_failures.clone(),
        );
        registry.register("rule_group_interval_seconds", "The interval of each rule group", m.interval.clone());
        registry.register(
            "rule_group_last_evaluation_timestamp_seconds",
            "Unix time of each rule group's last evaluation",
            m.last_evaluation.clone(),
        );
        registry.register(
            "rule_group_last_duration_seconds",
            "How long each rule group's last evaluation took",
            m.last_duration.clone(),
        );
        registry.register("rule_group_rules", "The number of rules in each rule group", m.rules.clone());
        registry.register(
            "rule_group_last_evaluation_samples",
            "Samples the rules of each group produced in its last evaluation",
            m.last_samples.clone(),
        );
    }

    /// Forgets a group that is no longer evaluated, as upstream does.
    pub fn remove(&self, group: &Labels) {
        self.iterations.remove(group);
        self.iterations_missed.remove(group);
        self.evaluation_failures.remove(group);
        self.interval.remove(group);
        self.last_evaluation.remove(group);
        self.last_duration.remove(group);
        self.rules.remove(group);
        self.last_samples.remove(group);
    }
}

pub fn shard_label(shard: usize) -> Labels {
    vec![("shard", shard.to_string())]
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pyrite");
        let m = Metrics {
            samples_appended: Family::default(),
            out_of_order: Family::default(),
            duplicates: Family::default(),
            out_of_bounds: Family::default(),
            too_far_in_future: Family::default(),
            head_series: Family::default(),
            head_series_removed: Family::default(),
            head_chunks: Family::default(),
            wal_write_failures: Family::default(),
            wal_corruptions: Family::default(),
            compactions: Family::default(),
            head_snapshots: Family::default(),
            compactions_failed: Family::default(),
            compaction_duration: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            blocks_loaded: Family::default(),
            blocks_refused: Family::default(),
            blocks_bytes: Family::default(),
            time_retentions: Family::default(),
            size_retentions: Family::default(),
            driver: Family::default(),
            scrapes: Family::default(),
            scrape_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            remote_write_requests: Family::default(),
            queries: Family::default(),
            config_reload_successful: Gauge::default(),
            config_reload_success_time: Gauge::default(),
            active_targets: Gauge::default(),
            discovery_failures: Counter::default(),
            rule_evaluations: Family::default(),
            rule_groups: RuleGroupMetrics::default(),
            notifications_sent: Family::default(),
            notifications_errors: Family::default(),
            notifications_dropped: Counter::default(),
            notification_queue_length: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "head_samples_appended",
            "Samples appended to the head, per shard",
            m.samples_appended.clone(),
        );
        registry.register(
            "head_out_of_order_samples",
            "Samples refused as out of order, per shard",
            m.out_of_order.clone(),
        );
        registry.register(
            "head_duplicate_samples",
            "Samples refused as duplicates for their timestamp, per shard",
            m.duplicates.clone(),
        );
        registry.register(
            "head_out_of_bounds_samples",
            "Samples refused as older than the newest block's end, per shard",
            m.out_of_bounds.clone(),
        );
        registry.register(
            "head_too_far_in_future_samples",
            "Samples refused as later than --storage.tsdb.too-far-in-future.time-window past the clock, per shard",
            m.too_far_in_future.clone(),
        );
        registry.register("head_series", "Series in the head, per shard", m.head_series.clone());
        registry.register(
            "head_series_removed",
            "Series the head forgot because all their samples moved to blocks or past retention, per shard",
            m.head_series_removed.clone(),
        );
        registry.register("head_chunks", "Chunks in the head, per shard (updated every minute)", m.head_chunks.clone());
        registry.register(
            "wal_write_failures",
            "Append batches whose write-ahead log write failed (not durable), per shard",
            m.wal_write_failures.clone(),
        );
        registry.register(
            "wal_corruptions",
            "Damaged stretches of the write-ahead log found at replay, per shard",
            m.wal_corruptions.clone(),
        );
        registry.register(
            "tsdb_compactions",
            "Blocks written, per shard, by kind: head (cut from the head) or blocks (merged)",
            m.compactions.clone(),
        );
        registry.register(
            "head_snapshots",
            "Head snapshots written while running (--storage.tsdb.head-snapshot-interval), per shard",
            m.head_snapshots.clone(),
        );
        registry.register(
            "tsdb_compactions_failed",
            "Block cuts and compactions that failed, per shard",
            m.compactions_failed.clone(),
        );
        registry.register(
            "tsdb_compaction_duration_seconds",
            "Time to write a block (a head cut or a compaction)",
            m.compaction_duration.clone(),
        );
        registry.register("tsdb_blocks_loaded", "Blocks served, per shard", m.blocks_loaded.clone());
        registry.register(
            "tsdb_blocks_refused",
            "Blocks refused at start because they could not be read, per shard",
            m.blocks_refused.clone(),
        );
        registry.register("tsdb_storage_blocks_bytes", "Bytes of blocks on disk, per shard", m.blocks_bytes.clone());
        registry.register(
            "tsdb_time_retentions",
            "Blocks deleted because they were past the retention time, per shard",
            m.time_retentions.clone(),
        );
        registry.register(
            "tsdb_size_retentions",
            "Deletions (blocks, or the log's oldest segments) to stay under the retention size, per shard",
            m.size_retentions.clone(),
        );
        registry.register("runtime_driver", "The I/O driver each shard runs (1 for the one in use)", m.driver.clone());
        registry.register("scrapes", "Scrapes by result", m.scrapes.clone());
        registry.register(
            "scrape_duration_seconds",
            "Time from scrape start to samples handed to the shards",
            m.scrape_duration.clone(),
        );
        registry.register(
            "remote_write_requests",
            "Remote-write requests by HTTP status code",
            m.remote_write_requests.clone(),
        );
        registry.register("queries", "PromQL queries by result", m.queries.clone());
        registry.register(
            "config_last_reload_successful",
            "Whether the last configuration (re)load succeeded (1) or was refused (0)",
            m.config_reload_successful.clone(),
        );
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "Unix time of the last configuration (re)load that succeeded",
            m.config_reload_success_time.clone(),
        );
        registry.register(
            "panics_recovered",
            "Panics that failed one request (answered 500 or as a query error) instead of the process",
            crate::panic::recovered().clone(),
        );
        registry.register("scrape_targets_active", "Targets being scraped", m.active_targets.clone());
        registry.register(
            "sd_refresh_failures",
            "Service discovery reads (files, HTTP) that failed; the last good targets stay",
            m.discovery_failures.clone(),
        );
        registry.register("rule_evaluations", "Rule evaluations by group and outcome", m.rule_evaluations.clone());
        m.rule_groups.register(&mut registry);
        registry.register("notifications_sent", "Alerts sent, per Alertmanager", m.notifications_sent.clone());
        registry.register(
            "notifications_errors",
            "Alerts that could not be sent, per Alertmanager",
            m.notifications_errors.clone(),
        );
        registry.register(
            "notifications_dropped",
            "Alerts dropped because the notification queue was full",
            m.notifications_dropped.clone(),
        );
        registry.register(
            "notifications_queue_length",
            "Alerts waiting to be sent",
            m.notification_queue_length.clone(),
        );
        let build = Family::<Labels, Gauge>::default();
        build.get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_string())]).set(1);
        registry.register("build_info", "Pyrite's version", build);
        Metrics { registry, ..m }
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
