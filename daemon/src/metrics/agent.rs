//! Upstream's agent storage metrics (`prometheus_agent_*`), exposed in agent mode. Most are
//! the storage figures the server keeps anyway under another name (an agent's head is its
//! series, its appends are the head's), registered again under upstream's agent names and
//! sharing their counts; the checkpoint counts are the agent's own.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use super::Metrics;

/// What only agent mode counts.
#[derive(Default)]
pub struct AgentMetrics {
    /// Checkpoints attempted by the agent's log truncation, and those that failed.
    pub checkpoints: Counter,
    pub checkpoints_failed: Counter,
}

impl Metrics {
    /// The server's metrics with upstream's agent names besides.
    pub fn for_agent() -> Metrics {
        let mut m = Metrics::new();
        let mut registry = std::mem::take(&mut m.registry);
        m.register_agent(&mut registry);
        Metrics { registry, ..m }
    }

    fn register_agent(&self, r: &mut Registry) {
        r.register(
            "prometheus_agent_active_series",
            "Number of active series being tracked by the WAL storage",
            self.head_series.total.clone(),
        );
        r.register(
            "prometheus_agent_samples_appended",
            "Total number of samples appended to the storage",
            self.samples_appended.types.clone(),
        );
        r.register(
            "prometheus_agent_out_of_order_samples",
            "Total number of out of order samples ingestion failed attempts",
            self.out_of_order.all.clone(),
        );
        r.register("prometheus_agent_corruptions", "Total number of WAL corruptions", self.wal_corruptions.clone());
        r.register(
            "prometheus_agent_checkpoint_creations",
            "Total number of checkpoint creations attempted",
            self.agent.checkpoints.clone(),
        );
        r.register(
            "prometheus_agent_checkpoint_creations_failed",
            "Total number of checkpoint creations that failed",
            self.agent.checkpoints_failed.clone(),
        );
    }
}
