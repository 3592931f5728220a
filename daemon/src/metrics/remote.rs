//! The remote-write sender's metrics, under upstream's names (`prometheus_remote_storage_*`,
//! `storage/remote/queue_manager.go`), per queue by `remote_name` and `url`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::{FloatGauge, HistogramFamily, Labels};

pub struct RemoteStorageMetrics {
    pub samples: Family<Labels, Counter>,
    pub samples_failed: Family<Labels, Counter>,
    pub samples_retried: Family<Labels, Counter>,
    pub samples_dropped: Family<Labels, Counter>,
    pub histograms: Family<Labels, Counter>,
    pub histograms_failed: Family<Labels, Counter>,
    pub histograms_retried: Family<Labels, Counter>,
    pub exemplars: Family<Labels, Counter>,
    pub exemplars_failed: Family<Labels, Counter>,
    pub samples_pending: Family<Labels, Gauge>,
    pub histograms_pending: Family<Labels, Gauge>,
    pub bytes: Family<Labels, Counter>,
    pub highest_sent: Family<Labels, FloatGauge>,
    pub shards: Family<Labels, Gauge>,
    pub shards_desired: Family<Labels, FloatGauge>,
    pub shards_min: Family<Labels, Gauge>,
    pub shards_max: Family<Labels, Gauge>,
    pub shard_capacity: Family<Labels, Gauge>,
    pub max_samples_per_send: Family<Labels, Gauge>,
    pub sent_batch_duration: HistogramFamily,
    /// The newest sample time any queue read from the logs (upstream: appended), in seconds.
    pub highest_timestamp: FloatGauge,
    pub samples_in: Counter,
    /// The log segment each queue reads in its shard's log (`consumer`: queue, `shard`).
    pub watcher_segment: Family<Labels, Gauge>,
}

fn batch_duration() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl RemoteStorageMetrics {
    pub(super) fn new() -> Self {
        RemoteStorageMetrics {
            samples: Family::default(),
            samples_failed: Family::default(),
            samples_retried: Family::default(),
            samples_dropped: Family::default(),
            histograms: Family::default(),
            histograms_failed: Family::default(),
            histograms_retried: Family::default(),
            exemplars: Family::default(),
            exemplars_failed: Family::default(),
            samples_pending: Family::default(),
            histograms_pending: Family::default(),
            bytes: Family::default(),
            highest_sent: Family::default(),
            shards: Family::default(),
            shards_desired: Family::default(),
            shards_min: Family::default(),
            shards_max: Family::default(),
            shard_capacity: Family::default(),
            max_samples_per_send: Family::default(),
            sent_batch_duration: Family::new_with_constructor(batch_duration),
            highest_timestamp: FloatGauge::default(),
            samples_in: Counter::default(),
            watcher_segment: Family::default(),
        }
    }

    /// Adds `floats` and `histograms` (negative: taken away) to a queue's pending figures.
    pub fn add_pending(&self, queue: &Labels, floats: i64, histograms: i64) {
        self.samples_pending.get_or_create(queue).inc_by(floats);
        self.histograms_pending.get_or_create(queue).inc_by(histograms);
    }

    /// Drops a stopped queue's series.
    pub fn remove(&self, queue: &Labels) {
        let m = self;
        for family in [
            &m.samples,
            &m.samples_failed,
            &m.samples_retried,
            &m.samples_dropped,
            &m.histograms,
            &m.histograms_failed,
            &m.histograms_retried,
            &m.exemplars,
            &m.exemplars_failed,
            &m.bytes,
        ] {
            family.remove(queue);
        }
        for family in [
            &m.samples_pending,
            &m.histograms_pending,
            &m.shards,
            &m.shards_min,
            &m.shards_max,
            &m.shard_capacity,
            &m.max_samples_per_send,
        ] {
            family.remove(queue);
        }
        m.highest_sent.remove(queue);
        m.shards_desired.remove(queue);
        m.sent_batch_duration.remove(queue);
    }

    pub(super) fn register(&self, r: &mut Registry) {
        let m = self;
        let counters: [(&str, &str, &Family<Labels, Counter>); 10] = [
            ("prometheus_remote_storage_samples", "Total number of samples sent to remote storage", &m.samples),
            (
                "prometheus_remote_storage_samples_failed",
                "Total number of samples which failed on send to remote storage, non-recoverable errors",
                &m.samples_failed,
            ),
            (
                "prometheus_remote_storage_samples_retried",
                "Total number of samples which failed on send to remote storage but were retried because the send error was recoverable",
                &m.samples_retried,
            ),
            (
                "prometheus_remote_storage_samples_dropped",
                "Total number of samples which were dropped after being read from the WAL before being sent via remote write, either via relabelling, due to being too old or unintentionally because of an unknown reference ID",
                &m.samples_dropped,
            ),
            ("prometheus_remote_storage_histograms", "Total number of histograms sent to remote storage", &m.histograms),
            (
                "prometheus_remote_storage_histograms_failed",
                "Total number of histograms which failed on send to remote storage, non-recoverable errors",
                &m.histograms_failed,
            ),
            (
                "prometheus_remote_storage_histograms_retried",
                "Total number of histograms which failed on send to remote storage but were retried because the send error was recoverable",
                &m.histograms_retried,
            ),
            ("prometheus_remote_storage_exemplars", "Total number of exemplars sent to remote storage", &m.exemplars),
            (
                "prometheus_remote_storage_exemplars_failed",
                "Total number of exemplars which failed on send to remote storage, non-recoverable errors",
                &m.exemplars_failed,
            ),
            (
                "prometheus_remote_storage_bytes",
                "The total number of bytes of data (not metadata) sent by the queue after compression",
                &m.bytes,
            ),
        ];
        for (name, help, family) in counters {
            r.register(name, help, family.clone());
        }
        let gauges: [(&str, &str, &Family<Labels, Gauge>); 7] = [
            (
                "prometheus_remote_storage_samples_pending",
                "The number of samples pending in the queues shards to be sent to the remote storage",
                &m.samples_pending,
            ),
            (
                "prometheus_remote_storage_histograms_pending",
                "The number of histograms pending in the queues shards to be sent to the remote storage",
                &m.histograms_pending,
            ),
            (
                "prometheus_remote_storage_shards",
                "The number of shards used for parallel sending to the remote storage",
                &m.shards,
            ),
            (
                "prometheus_remote_storage_shards_min",
                "The minimum number of shards that the queue is allowed to run",
                &m.shards_min,
            ),
            (
                "prometheus_remote_storage_shards_max",
                "The maximum number of shards that the queue is allowed to run",
                &m.shards_max,
            ),
            (
                "prometheus_remote_storage_shard_capacity",
                "The capacity of each shard of the queue used for parallel sending to the remote storage",
                &m.shard_capacity,
            ),
            (
                "prometheus_remote_storage_max_samples_per_send",
                "The maximum number of samples to be sent, in a single request, to the remote storage",
                &m.max_samples_per_send,
            ),
        ];
        for (name, help, family) in gauges {
            r.register(name, help, family.clone());
        }
        r.register(
            "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
            "Timestamp from a WAL sample, the highest timestamp successfully sent by this queue, in seconds since epoch",
            m.highest_sent.clone(),
        );
        r.register(
            "prometheus_remote_storage_shards_desired",
            "The number of shards that the queues shard calculation wants to run based on the rate of samples in vs. samples out",
            m.shards_desired.clone(),
        );
        r.register(
            "prometheus_remote_storage_sent_batch_duration_seconds",
            "Duration of send calls to the remote storage",
            m.sent_batch_duration.clone(),
        );
        r.register(
            "prometheus_remote_storage_highest_timestamp_in_seconds",
            "Highest timestamp that has come into the remote storage via the Appender interface, in seconds since epoch",
            m.highest_timestamp.clone(),
        );
        r.register(
            "prometheus_remote_storage_samples_in",
            "Samples in to remote storage, compare to samples out for queue managers",
            m.samples_in.clone(),
        );
        r.register(
            "prometheus_wal_watcher_current_segment",
            "Current segment the WAL watcher is reading records from",
            m.watcher_segment.clone(),
        );
    }
}
