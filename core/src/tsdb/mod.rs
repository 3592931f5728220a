//! The time-series database, one instance per shard.
//!
//! The [`head::Head`] keeps series, their postings and their compressed chunks in memory; the
//! [`wal`] records appends so that a head can be rebuilt after a restart (the daemon owns the
//! files). Blocks on disk are still to come.

pub mod chunk;
mod encoding;
pub mod head;
pub mod postings;
pub mod symbols;
pub mod wal;
