//! Turning scrape configs into targets, and scrape bodies into samples for the shards.
//!
//! [`target`] resolves a scrape config into concrete targets with their final labels;
//! [`ingest`] keeps each target's scrape cache and turns one scrape (or a failed one) into
//! per-shard append batches, including report series and staleness markers, within the
//! [`limits`] of its scrape config.

pub mod ingest;
pub mod limits;
pub mod target;

pub use ingest::{
    BatchSeries, Ingest, IngestError, IngestOptions, MetricMetadata, PendingKey, ShardBatch, TargetIngest,
    UnknownSamples,
};
pub use limits::HistogramLimits;
pub use target::{targets_from_config, DroppedTarget, Target, TargetSet};
