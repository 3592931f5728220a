//! The time-series database, one instance per shard.
//!
//! The [`head::Head`] keeps recent series, their postings and their compressed chunks in
//! memory; the [`wal`] records appends so that a head can be rebuilt after a restart (the
//! daemon owns the files). Every block range (2h) the head's oldest data is cut into an
//! immutable [`block`] on disk; blocks are compacted into larger ones and deleted by
//! retention. A [`querier::Querier`] reads blocks and head as one.

pub mod block;
pub mod chunk;
mod encoding;
pub mod head;
pub mod postings;
pub mod querier;
pub mod symbols;
pub mod wal;
