//! The time-series database, one instance per shard.
//!
//! For now everything lives in memory: the [`head::Head`] keeps series, their postings and
//! their compressed chunks. Persistence (WAL, blocks) arrives with the storage issue.

pub mod chunk;
pub mod head;
pub mod postings;
pub mod symbols;
