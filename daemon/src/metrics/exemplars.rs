//! Upstream's exemplar storage metrics (`prometheus_tsdb_exemplar_*`): the shards' rings
//! added up, the oldest exemplar's time over them all.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use pyrite_tsdb::exemplars::ExemplarStats;

use super::{FloatGauge, MetricLabels, PerShard};

#[derive(Default)]
pub struct ExemplarMetrics {
    pub appended: Counter,
    pub out_of_order: Counter,
    stored: PerShard<Gauge>,
    series: PerShard<Gauge>,
    capacity: PerShard<Gauge>,
    oldest_seconds: Gauge<f64, AtomicU64>,
    /// Each shard's oldest exemplar time (ms), for the least of them.
    oldest: Mutex<HashMap<MetricLabels, i64>>,
}

impl ExemplarMetrics {
    /// Shard `shard`'s ring as it is now.
    pub fn record(&self, shard: &MetricLabels, stats: ExemplarStats) {
        self.stored.set(shard, stats.stored as i64);
        self.series.set(shard, stats.series as i64);
        self.capacity.set(shard, stats.capacity as i64);
        let mut oldest = self.oldest.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match stats.oldest_t {
            Some(t) => oldest.insert(shard.clone(), t),
            None => oldest.remove(shard),
        };
        self.oldest_seconds.set(oldest.values().min().map_or(0.0, |&t| t as f64 / 1000.0));
    }

    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "prometheus_tsdb_exemplar_exemplars_appended",
            "Total number of appended exemplars",
            self.appended.clone(),
        );
        r.register(
            "prometheus_tsdb_exemplar_out_of_order_exemplars",
            "Total number of out of order exemplar ingestion failed attempts",
            self.out_of_order.clone(),
        );
        r.register(
            "prometheus_tsdb_exemplar_exemplars_in_storage",
            "Number of exemplars currently in circular storage",
            self.stored.total.clone(),
        );
        r.register(
            "prometheus_tsdb_exemplar_series_with_exemplars_in_storage",
            "Number of series with exemplars currently in circular storage",
            self.series.total.clone(),
        );
        r.register(
            "prometheus_tsdb_exemplar_max_exemplars",
            "Total number of exemplars the exemplar storage can store, resizeable",
            self.capacity.total.clone(),
        );
        r.register(
            "prometheus_tsdb_exemplar_last_exemplars_timestamp_seconds",
            "The timestamp of the oldest exemplar stored in circular storage. Useful to check for what time range the current exemplar buffer limit allows. This usually means the last timestamp for all exemplars for a typical setup. This is not true though if one of the series timestamp is in future compared to rest series",
            self.oldest_seconds.clone() as FloatGauge,
        );
    }
}
