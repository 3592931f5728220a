//! The server's own metrics, served on `/metrics` (OpenMetrics text, prometheus-client).
//!
//! Every figure upstream Prometheus exports with the same meaning has upstream's name, type,
//! labels and unit (`prometheus_tsdb_*`, `prometheus_target_*`, `prometheus_engine_*`,
//! `prometheus_http_*`, `prometheus_rule_*`, `prometheus_notifications_*`, `prometheus_sd_*`,
//! `process_*`), so that dashboards and alerts written for Prometheus work unchanged. Where
//! upstream has one figure and Pyrite keeps one per shard, the upstream name carries the sum
//! over shards and `pyrite_*{shard}` the detail ([`PerShard`]). Figures only Pyrite has stay
//! `pyrite_*`. `docs/metrics.md` lists them all.
//!
//! Counters and gauges are atomics, so shard threads update them without locks or messages;
//! summaries ([`summary`]) take a short lock per observation.

pub mod agent;
mod exemplars;
mod process;
pub mod remote;
pub mod summary;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use summary::{SummaryFamily, MEDIAN_90_99, TAILS_MEDIAN_90_99};

/// Label set of the metrics below.
pub type MetricLabels = Vec<(&'static str, String)>;
type Labels = MetricLabels;
pub type FloatGauge = Gauge<f64, AtomicU64>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// A figure each shard keeps: the total under upstream's name, each shard's under `pyrite_*`.
#[derive(Default)]
pub struct PerShard<M> {
    pub total: M,
    pub shards: Family<Labels, M>,
}

/// A count per sample type, under upstream's `type` label (`float` and `histogram`, both
/// exposed from the start as upstream's are), with their sum for the names that have no label.
#[derive(Clone)]
pub struct ByType {
    pub types: Family<Labels, Counter>,
    floats: Counter,
    histograms: Counter,
    pub all: Counter,
}

impl Default for ByType {
    fn default() -> Self {
        let types = Family::<Labels, Counter>::default();
        let of = |t: &str| types.get_or_create(&vec![("type", t.to_string())]).clone();
        let (floats, histograms) = (of("float"), of("histogram"));
        ByType { types, floats, histograms, all: Counter::default() }
    }
}

impl ByType {
    /// Counts `floats` float samples and `histograms` native-histogram ones.
    pub fn inc_by(&self, floats: usize, histograms: usize) {
        self.floats.inc_by(floats as u64);
        self.histograms.inc_by(histograms as u64);
        self.all.inc_by((floats + histograms) as u64);
    }
}

impl PerShard<Gauge> {
    pub fn set(&self, shard: &Labels, value: i64) {
        let old = self.shards.get_or_create(shard).set(value);
        self.total.inc_by(value - old);
    }
}

pub struct Metrics {
    registry: Registry,
    // Storage: prometheus_tsdb_*.
    pub samples_appended: ByType,
    pub samples_appended_per_shard: Family<Labels, Counter>,
    pub out_of_order: ByType,
    pub out_of_bounds: ByType,
    /// Samples refused as older than the out-of-order window.
    pub too_old: ByType,
    /// Samples accepted out of order.
    pub out_of_order_appended: ByType,
    pub duplicates: Counter,
    pub too_far_in_future: Counter,
    pub head_series: PerShard<Gauge>,
    pub head_series_created: Counter,
    pub head_series_removed: Counter,
    pub head_chunks: PerShard<Gauge>,
    pub head_active_appenders: Gauge,
    pub head_gc_duration: SummaryFamily,
    pub head_truncations: Counter,
    head_min_time: Gauge,
    head_max_time: Gauge,
    head_min_time_seconds: Gauge,
    head_max_time_seconds: Gauge,
    /// Each shard's head time range (ms), for the `head_*_time` gauges.
    head_ranges: Mutex<BTreeMap<usize, (i64, i64)>>,
    pub wal_writes_failed: Counter,
    pub wal_corruptions: Counter,
    pub wal_fsync_duration: SummaryFamily,
    pub head_snapshots: Counter,
    compactions: Counter,
    compactions_by_kind: Family<Labels, Counter>,
    pub compactions_triggered: Counter,
    pub compactions_failed: Counter,
    compaction_duration: Histogram,
    pub reloads: Counter,
    pub reloads_failures: Counter,
    pub blocks_loaded: PerShard<Gauge>,
    pub blocks_refused: Counter,
    pub blocks_bytes: PerShard<Gauge>,
    pub time_retentions: Counter,
    pub size_retentions: Counter,
    pub retention_limit_bytes: Gauge,
    pub retention_limit_seconds: Gauge,
    pub driver: Family<Labels, Gauge>,
    // Scraping: prometheus_target_*.
    pub scrapes: Family<Labels, Counter>,
    pub scrape_duration: Histogram,
    pub interval_length: SummaryFamily,
    pub sync_length: SummaryFamily,
    pub pool_targets: Family<Labels, Gauge>,
    pub exceeded_sample_limit: Counter,
    pub exceeded_label_limits: Counter,
    pub scrape_out_of_order: Counter,
    pub scrape_duplicate_timestamp: Counter,
    pub scrape_out_of_bounds: Counter,
    // Queries and HTTP: prometheus_engine_*, prometheus_http_*.
    pub query_duration: SummaryFamily,
    pub queries_running: Gauge,
    pub queries_concurrent_max: Gauge,
    pub queries: Family<Labels, Counter>,
    pub http_requests: Family<Labels, Counter>,
    pub http_request_duration: HistogramFamily,
    // Configuration, discovery, rules and notifications.
    pub config_reload_successful: Gauge,
    pub config_reload_success_time: Gauge,
    pub discovered_targets: Family<Labels, Gauge>,
    pub sd_file_read_errors: Counter,
    pub sd_http_failures: Counter,
    pub sd_dns_lookup_failures: Counter,
    /// Hand-overs of discovered groups, by consumer (`scrape`, `notify`), as upstream's
    /// `prometheus_sd_updates_total`.
    pub sd_updates: Family<Labels, Counter>,
    pub rule_groups: RuleGroupMetrics,
    pub remote: remote::RemoteStorageMetrics,
    pub notifications_sent: Family<Labels, Counter>,
    pub notifications_errors: Family<Labels, Counter>,
    pub notifications_latency: SummaryFamily,
    pub notifications_dropped: Counter,
    pub notification_queue_length: Gauge,
    pub notification_queue_capacity: Gauge,
    pub alertmanagers_discovered: Gauge,
    pub agent: agent::AgentMetrics,
    pub exemplars: exemplars::ExemplarMetrics,
}

/// Upstream's rule metrics, per group by `rule_group` (`file;name`) where upstream has it.
pub struct RuleGroupMetrics {
    pub iterations: Family<Labels, Counter>,
    pub iterations_missed: Family<Labels, Counter>,
    pub evaluations: Family<Labels, Counter>,
    pub evaluation_failures: Family<Labels, Counter>,
    pub interval: Family<Labels, FloatGauge>,
    pub last_evaluation: Family<Labels, FloatGauge>,
    pub last_duration: Family<Labels, FloatGauge>,
    pub rules: Family<Labels, Gauge>,
    pub last_samples: Family<Labels, Gauge>,
    /// Every group's evaluations, in one summary (as upstream).
    pub duration: SummaryFamily,
    /// Every rule's evaluations, in one summary (as upstream).
    pub rule_duration: SummaryFamily,
}

impl RuleGroupMetrics {
    fn new() -> Self {
        RuleGroupMetrics {
            iterations: Family::default(),
            iterations_missed: Family::default(),
            evaluations: Family::default(),
            evaluation_failures: Family::default(),
            interval: Family::default(),
            last_evaluation: Family::default(),
            last_duration: Family::default(),
            rules: Family::default(),
            last_samples: Family::default(),
            duration: SummaryFamily::new(
                "prometheus_rule_group_duration_seconds",
                "The duration of rule group evaluations.",
                TAILS_MEDIAN_90_99,
            ),
            rule_duration: SummaryFamily::new(
                "prometheus_rule_evaluation_duration_seconds",
                "The duration for a rule to execute.",
                MEDIAN_90_99,
            ),
        }
    }

    fn register(&self, registry: &mut Registry) {
        let m = self;
        registry.register(
            "prometheus_rule_group_iterations",
            "The total number of scheduled rule group evaluations, whether executed or missed",
            m.iterations.clone(),
        );
        registry.register(
            "prometheus_rule_group_iterations_missed",
            "The total number of rule group evaluations missed due to slow rule group evaluation",
            m.iterations_missed.clone(),
        );
        registry.register("prometheus_rule_evaluations", "The total number of rule evaluations", m.evaluations.clone());
        registry.register(
            "prometheus_rule_evaluation_failures",
            "The total number of rule evaluation failures",
            m.evaluation_failures.clone(),
        );
        registry.register("prometheus_rule_group_interval_seconds", "The interval of a rule group", m.interval.clone());
        registry.register(
            "prometheus_rule_group_last_evaluation_timestamp_seconds",
            "The timestamp of the last rule group evaluation in seconds",
            m.last_evaluation.clone(),
        );
        registry.register(
            "prometheus_rule_group_last_duration_seconds",
            "The duration of the last rule group evaluation",
            m.last_duration.clone(),
        );
        registry.register("prometheus_rule_group_rules", "The number of rules", m.rules.clone());
        registry.register(
            "prometheus_rule_group_last_evaluation_samples",
            "The number of samples returned during the last rule group evaluation",
            m.last_samples.clone(),
        );
    }

    /// Forgets a group that is no longer evaluated, as upstream does.
    pub fn remove(&self, group: &Labels) {
        self.iterations.remove(group);
        self.iterations_missed.remove(group);
        self.evaluations.remove(group);
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

/// Upstream's buckets for `prometheus_http_request_duration_seconds`.
fn http_duration_histogram() -> Histogram {
    Histogram::new([0.1, 0.2, 0.4, 1.0, 3.0, 8.0, 20.0, 60.0, 120.0].into_iter())
}

impl Metrics {
    pub fn new() -> Self {
        let m = Metrics {
            registry: Registry::default(),
            samples_appended: ByType::default(),
            samples_appended_per_shard: Family::default(),
            out_of_order: ByType::default(),
            out_of_bounds: ByType::default(),
            too_old: ByType::default(),
            out_of_order_appended: ByType::default(),
            duplicates: Counter::default(),
            too_far_in_future: Counter::default(),
            head_series: PerShard::default(),
            head_series_created: Counter::default(),
            head_series_removed: Counter::default(),
            head_chunks: PerShard::default(),
            head_active_appenders: Gauge::default(),
            head_gc_duration: SummaryFamily::new(
                "prometheus_tsdb_head_gc_duration_seconds",
                "Runtime of garbage collection in the head block.",
                MEDIAN_90_99,
            ),
            head_truncations: Counter::default(),
            head_min_time: Gauge::default(),
            head_max_time: Gauge::default(),
            head_min_time_seconds: Gauge::default(),
            head_max_time_seconds: Gauge::default(),
            head_ranges: Mutex::default(),
            wal_writes_failed: Counter::default(),
            wal_corruptions: Counter::default(),
            wal_fsync_duration: SummaryFamily::new(
                "prometheus_tsdb_wal_fsync_duration_seconds",
                "Duration of write log fsync.",
                MEDIAN_90_99,
            ),
            head_snapshots: Counter::default(),
            compactions: Counter::default(),
            compactions_by_kind: Family::default(),
            compactions_triggered: Counter::default(),
            compactions_failed: Counter::default(),
            compaction_duration: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            reloads: Counter::default(),
            reloads_failures: Counter::default(),
            blocks_loaded: PerShard::default(),
            blocks_refused: Counter::default(),
            blocks_bytes: PerShard::default(),
            time_retentions: Counter::default(),
            size_retentions: Counter::default(),
            retention_limit_bytes: Gauge::default(),
            retention_limit_seconds: Gauge::default(),
            driver: Family::default(),
            scrapes: Family::default(),
            scrape_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            interval_length: SummaryFamily::new(
                "prometheus_target_interval_length_seconds",
                "Actual intervals between scrapes.",
                TAILS_MEDIAN_90_99,
            ),
            sync_length: SummaryFamily::new(
                "prometheus_target_sync_length_seconds",
                "Actual interval to sync the scrape pool.",
                TAILS_MEDIAN_90_99,
            ),
            pool_targets: Family::default(),
            exceeded_sample_limit: Counter::default(),
            exceeded_label_limits: Counter::default(),
            scrape_out_of_order: Counter::default(),
            scrape_duplicate_timestamp: Counter::default(),
            scrape_out_of_bounds: Counter::default(),
            query_duration: SummaryFamily::new(
                "prometheus_engine_query_duration_seconds",
                "Query timings",
                MEDIAN_90_99,
            ),
            queries_running: Gauge::default(),
            queries_concurrent_max: Gauge::default(),
            queries: Family::default(),
            http_requests: Family::default(),
            http_request_duration: Family::new_with_constructor(http_duration_histogram),
            config_reload_successful: Gauge::default(),
            config_reload_success_time: Gauge::default(),
            discovered_targets: Family::default(),
            sd_file_read_errors: Counter::default(),
            sd_http_failures: Counter::default(),
            sd_dns_lookup_failures: Counter::default(),
            sd_updates: Family::default(),
            rule_groups: RuleGroupMetrics::new(),
            remote: remote::RemoteStorageMetrics::new(),
            notifications_sent: Family::default(),
            notifications_errors: Family::default(),
            notifications_latency: SummaryFamily::new(
                "prometheus_notifications_latency_seconds",
                "Latency quantiles for sending alert notifications.",
                MEDIAN_90_99,
            ),
            notifications_dropped: Counter::default(),
            notification_queue_length: Gauge::default(),
            notification_queue_capacity: Gauge::default(),
            alertmanagers_discovered: Gauge::default(),
            agent: agent::AgentMetrics::default(),
            exemplars: exemplars::ExemplarMetrics::default(),
        };
        for slice in ["inner_eval", "prepare_time", "queue_time", "result_sort"] {
            m.query_duration.touch(&vec![("slice", slice.to_string())]);
        }
        for summary in
            [&m.head_gc_duration, &m.wal_fsync_duration, &m.rule_groups.duration, &m.rule_groups.rule_duration]
        {
            summary.touch(&vec![]);
        }
        let mut registry = Registry::default();
        m.register_storage(&mut registry);
        m.register_scraping(&mut registry);
        m.register_serving(&mut registry);
        m.rule_groups.register(&mut registry);
        m.remote.register(&mut registry);
        m.exemplars.register(&mut registry);
        registry.register_collector(Box::new(process::ProcessCollector));
        Metrics { registry, ..m }
    }

    fn register_storage(&self, r: &mut Registry) {
        let m = self;
        r.register(
            "prometheus_tsdb_head_samples_appended",
            "Total number of appended samples",
            m.samples_appended.types.clone(),
        );
        r.register(
            "prometheus_tsdb_out_of_order_samples",
            "Total number of out of order samples ingestion failed attempts due to out of order being disabled",
            m.out_of_order.types.clone(),
        );
        r.register(
            "prometheus_tsdb_out_of_bound_samples",
            "Total number of out of bound samples ingestion failed attempts with out of order support disabled",
            m.out_of_bounds.types.clone(),
        );
        r.register(
            "prometheus_tsdb_too_old_samples",
            "Total number of out of order samples ingestion failed attempts with out of support enabled, but sample outside of time window",
            m.too_old.types.clone(),
        );
        r.register(
            "prometheus_tsdb_head_out_of_order_samples_appended",
            "Total number of appended out of order samples",
            m.out_of_order_appended.types.clone(),
        );
        r.register(
            "pyrite_head_samples_appended",
            "Samples appended to the head, per shard, of either type",
            m.samples_appended_per_shard.clone(),
        );
        r.register(
            "pyrite_head_duplicate_samples",
            "Samples refused as duplicates for their timestamp (same time, another value)",
            m.duplicates.clone(),
        );
        r.register(
            "pyrite_head_too_far_in_future_samples",
            "Samples refused as later than --storage.tsdb.too-far-in-future.time-window past the clock",
            m.too_far_in_future.clone(),
        );
        r.register(
            "prometheus_tsdb_head_series",
            "Total number of series in the head block",
            m.head_series.total.clone(),
        );
        r.register("pyrite_head_series", "Series in the head, per shard", m.head_series.shards.clone());
        r.register(
            "prometheus_tsdb_head_series_created",
            "Total number of series created in the head",
            m.head_series_created.clone(),
        );
        r.register(
            "prometheus_tsdb_head_series_removed",
            "Total number of series removed in the head",
            m.head_series_removed.clone(),
        );
        r.register(
            "prometheus_tsdb_head_chunks",
            "Total number of chunks in the head block",
            m.head_chunks.total.clone(),
        );
        r.register(
            "pyrite_head_chunks",
            "Chunks in the head, per shard (updated every housekeeping pass)",
            m.head_chunks.shards.clone(),
        );
        r.register(
            "prometheus_tsdb_head_active_appenders",
            "Number of currently active appender transactions",
            m.head_active_appenders.clone(),
        );
        r.register(
            "prometheus_tsdb_head_truncations",
            "Total number of head truncations attempted",
            m.head_truncations.clone(),
        );
        r.register("prometheus_tsdb_head_min_time", "Minimum time bound of the head block", m.head_min_time.clone());
        r.register("prometheus_tsdb_head_max_time", "Maximum timestamp of the head block", m.head_max_time.clone());
        r.register(
            "prometheus_tsdb_head_min_time_seconds",
            "Minimum time bound of the head block",
            m.head_min_time_seconds.clone(),
        );
        r.register(
            "prometheus_tsdb_head_max_time_seconds",
            "Maximum timestamp of the head block",
            m.head_max_time_seconds.clone(),
        );
        r.register(
            "prometheus_tsdb_wal_writes_failed",
            "Total number of write log writes that failed",
            m.wal_writes_failed.clone(),
        );
        r.register("prometheus_tsdb_wal_corruptions", "Total number of WAL corruptions", m.wal_corruptions.clone());
        r.register(
            "pyrite_head_snapshots",
            "Head snapshots written while running (--storage.tsdb.head-snapshot-interval)",
            m.head_snapshots.clone(),
        );
        r.register(
            "prometheus_tsdb_compactions",
            "Total number of compactions that were executed for the partition",
            m.compactions.clone(),
        );
        r.register(
            "pyrite_tsdb_compactions",
            "Blocks written, per shard, by kind: head (cut from the head), out-of-order (the head's out-of-order samples) or blocks (merged)",
            m.compactions_by_kind.clone(),
        );
        r.register(
            "prometheus_tsdb_compactions_triggered",
            "Total number of triggered compactions for the partition",
            m.compactions_triggered.clone(),
        );
        r.register(
            "prometheus_tsdb_compactions_failed",
            "Total number of compactions that failed for the partition",
            m.compactions_failed.clone(),
        );
        r.register(
            "prometheus_tsdb_compaction_duration_seconds",
            "Duration of compaction runs",
            m.compaction_duration.clone(),
        );
        r.register(
            "prometheus_tsdb_reloads",
            "Number of times the database reloaded block data from disk",
            m.reloads.clone(),
        );
        r.register(
            "prometheus_tsdb_reloads_failures",
            "Number of times the database failed to reloadBlocks block data from disk",
            m.reloads_failures.clone(),
        );
        r.register(
            "prometheus_tsdb_blocks_loaded",
            "Number of currently loaded data blocks",
            m.blocks_loaded.total.clone(),
        );
        r.register("pyrite_tsdb_blocks_loaded", "Blocks served, per shard", m.blocks_loaded.shards.clone());
        r.register(
            "pyrite_tsdb_blocks_refused",
            "Blocks refused at start because they could not be read",
            m.blocks_refused.clone(),
        );
        r.register(
            "prometheus_tsdb_storage_blocks_bytes",
            "The number of bytes that are currently used for local storage by all blocks",
            m.blocks_bytes.total.clone(),
        );
        r.register(
            "pyrite_tsdb_storage_blocks_bytes",
            "Bytes of blocks on disk, per shard",
            m.blocks_bytes.shards.clone(),
        );
        r.register(
            "prometheus_tsdb_time_retentions",
            "The number of times that blocks were deleted because the maximum time limit was exceeded",
            m.time_retentions.clone(),
        );
        r.register(
            "prometheus_tsdb_size_retentions",
            "The number of times that blocks were deleted because the maximum number of bytes was exceeded",
            m.size_retentions.clone(),
        );
        r.register(
            "prometheus_tsdb_retention_limit_bytes",
            "Max number of bytes to be retained in the tsdb blocks, configured 0 means disabled",
            m.retention_limit_bytes.clone(),
        );
        r.register(
            "prometheus_tsdb_retention_limit_seconds",
            "How long to retain samples in storage",
            m.retention_limit_seconds.clone(),
        );
        r.register("pyrite_runtime_driver", "The I/O driver each shard runs (1 for the one in use)", m.driver.clone());
    }

    fn register_scraping(&self, r: &mut Registry) {
        let m = self;
        r.register("pyrite_scrapes", "Scrapes by result", m.scrapes.clone());
        r.register(
            "pyrite_scrape_duration_seconds",
            "Time from scrape start to samples handed to the shards",
            m.scrape_duration.clone(),
        );
        r.register(
            "prometheus_target_scrape_pool_targets",
            "Current number of targets in this scrape pool",
            m.pool_targets.clone(),
        );
        r.register(
            "prometheus_target_scrapes_exceeded_sample_limit",
            "Total number of scrapes that hit the sample limit and were rejected",
            m.exceeded_sample_limit.clone(),
        );
        r.register(
            "prometheus_target_scrape_pool_exceeded_label_limits",
            "Total number of times scrape pools hit the label limits, during sync or config reload",
            m.exceeded_label_limits.clone(),
        );
        r.register(
            "prometheus_target_scrapes_sample_out_of_order",
            "Total number of samples rejected due to not being out of the expected order",
            m.scrape_out_of_order.clone(),
        );
        r.register(
            "prometheus_target_scrapes_sample_duplicate_timestamp",
            "Total number of samples rejected due to duplicate timestamps but different values",
            m.scrape_duplicate_timestamp.clone(),
        );
        r.register(
            "prometheus_target_scrapes_sample_out_of_bounds",
            "Total number of samples rejected due to timestamp falling outside of the time bounds",
            m.scrape_out_of_bounds.clone(),
        );
        r.register(
            "prometheus_sd_discovered_targets",
            "Current number of discovered targets",
            m.discovered_targets.clone(),
        );
        r.register(
            "prometheus_sd_updates",
            "Total number of update events sent to the SD consumers",
            m.sd_updates.clone(),
        );
        r.register(
            "prometheus_sd_file_read_errors",
            "The number of File-SD read errors",
            m.sd_file_read_errors.clone(),
        );
        r.register(
            "prometheus_sd_http_failures",
            "Number of HTTP service discovery refresh failures",
            m.sd_http_failures.clone(),
        );
        r.register(
            "prometheus_sd_dns_lookup_failures",
            "The number of DNS-SD lookup failures",
            m.sd_dns_lookup_failures.clone(),
        );
    }

    fn register_serving(&self, r: &mut Registry) {
        let m = self;
        r.register(
            "prometheus_engine_queries",
            "The current number of queries being executed or waiting",
            m.queries_running.clone(),
        );
        r.register(
            "prometheus_engine_queries_concurrent_max",
            "The max number of concurrent queries",
            m.queries_concurrent_max.clone(),
        );
        r.register("pyrite_queries", "PromQL queries from the HTTP API, by result", m.queries.clone());
        r.register("prometheus_http_requests", "Counter of HTTP requests", m.http_requests.clone());
        r.register(
            "prometheus_http_request_duration_seconds",
            "Histogram of latencies for HTTP requests",
            m.http_request_duration.clone(),
        );
        r.register(
            "prometheus_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful",
            m.config_reload_successful.clone(),
        );
        r.register(
            "prometheus_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload",
            m.config_reload_success_time.clone(),
        );
        r.register(
            "pyrite_panics_recovered",
            "Panics that failed one request (answered 500 or as a query error) instead of the process",
            crate::panic::recovered().clone(),
        );
        r.register("prometheus_notifications_sent", "Total number of alerts sent", m.notifications_sent.clone());
        r.register(
            "prometheus_notifications_errors",
            "Total number of sent alerts affected by errors",
            m.notifications_errors.clone(),
        );
        r.register(
            "prometheus_notifications_dropped",
            "Total number of alerts dropped due to errors when sending to Alertmanager",
            m.notifications_dropped.clone(),
        );
        r.register(
            "prometheus_notifications_queue_length",
            "The number of alert notifications in the queue",
            m.notification_queue_length.clone(),
        );
        r.register(
            "prometheus_notifications_queue_capacity",
            "The capacity of the alert notifications queue",
            m.notification_queue_capacity.clone(),
        );
        r.register(
            "prometheus_notifications_alertmanagers_discovered",
            "The number of alertmanagers discovered and active",
            m.alertmanagers_discovered.clone(),
        );
        let build = Family::<Labels, Gauge>::default();
        build
            .get_or_create(&vec![
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("revision", option_env!("PYRITE_REVISION").unwrap_or("unknown").to_string()),
                ("branch", option_env!("PYRITE_BRANCH").unwrap_or("unknown").to_string()),
                ("goversion", "none (Rust)".to_string()),
            ])
            .set(1);
        r.register(
            "prometheus_build_info",
            "A metric with a constant '1' value labeled by version, revision, branch, and goversion from which prometheus was built",
            build,
        );
    }

    /// Counts a block shard `shard` wrote in `seconds`: cut from the head (`kind` `"head"`) or
    /// merged from blocks (`"blocks"`).
    pub fn block_written(&self, shard: usize, kind: &'static str, seconds: f64) {
        self.compactions.inc();
        self.compactions_by_kind.get_or_create(&vec![("shard", shard.to_string()), ("kind", kind.to_string())]).inc();
        self.compaction_duration.observe(seconds);
    }

    /// Records `--storage.tsdb.retention.time` (ms) and `.size` (bytes; 0: none).
    pub fn set_retention(&self, time_ms: i64, bytes: u64) {
        self.retention_limit_seconds.set(time_ms / 1000);
        self.retention_limit_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Records shard `shard`'s head time range (ms), or that its head is empty.
    pub fn set_head_range(&self, shard: usize, range: Option<(i64, i64)>) {
        let mut ranges = self.head_ranges.lock().unwrap_or_else(|p| p.into_inner());
        match range {
            Some(r) => ranges.insert(shard, r),
            None => ranges.remove(&shard),
        };
        let min = ranges.values().map(|r| r.0).min();
        let max = ranges.values().map(|r| r.1).max();
        if let (Some(min), Some(max)) = (min, max) {
            self.head_min_time.set(min);
            self.head_max_time.set(max);
            self.head_min_time_seconds.set(min / 1000);
            self.head_max_time_seconds.set(max / 1000);
        }
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let summaries = [
            &self.head_gc_duration,
            &self.wal_fsync_duration,
            &self.interval_length,
            &self.sync_length,
            &self.query_duration,
            &self.rule_groups.duration,
            &self.rule_groups.rule_duration,
            &self.notifications_latency,
        ];
        encode_registry(&mut out, &self.registry)
            .and_then(|()| summaries.iter().try_for_each(|s| s.encode(&mut out)))
            .and_then(|()| encode_eof(&mut out))
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    /// Help texts end in one full stop, as upstream's: the registry adds it to each.
    #[test]
    fn help_texts_end_in_one_full_stop() {
        for text in [super::Metrics::new().encode(), super::Metrics::for_agent().encode()] {
            let doubled: Vec<&str> = text.lines().filter(|l| l.starts_with("# HELP") && l.ends_with("..")).collect();
            assert!(doubled.is_empty(), "{doubled:?}");
        }
    }
}
