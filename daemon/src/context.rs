//! What every shard and handler shares: shard handles, settings, metrics, readiness.
//!
//! Everything here is immutable after start-up or atomic, so it is shared as `Arc<Context>`.

use std::sync::atomic::{AtomicUsize, Ordering};

use pyrite_core::config::Duration;

use crate::metrics::Metrics;
use crate::shard::Shards;

pub struct Context {
    pub shards: Shards,
    pub metrics: Metrics,
    pub lookback: Duration,
    pub query_timeout: Duration,
    pub retention: Duration,
    pub remote_write_receiver: bool,
    ready_shards: AtomicUsize,
}

impl Context {
    pub fn new(shards: Shards, flags: &crate::cli::ServerFlags) -> Self {
        Context {
            shards,
            metrics: Metrics::new(),
            lookback: flags.lookback_delta,
            query_timeout: flags.query_timeout,
            retention: flags.retention_time,
            remote_write_receiver: flags.enable_remote_write_receiver,
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
