//! # pyrite-tsdb
//!
//! Pyrite's storage engine, one [`db::Db`] per shard, with a synchronous API: the shard's
//! thread calls it and decides when (timers, mailbox); nothing here reads a clock — times are
//! passed in. The only threads it starts write its files ([`wal::writer`], the chunk store's,
//! [`queued_file`]), so that the shard's thread does not wait for the disk.
//!
//! * [`head::Head`] keeps recent series in memory: interned labels, [`postings`], and
//!   compressed [`chunk`]s (full chunks sealed into a memory-mapped [`chunk::store`]); a
//!   series' native histograms in chunks of their own ([`histogram_series`]).
//! * [`wal`] makes every acknowledged append durable: segment files of [`wal::record`] frames,
//!   replayed into a fresh head at start, checkpointed, and snapshotted at shutdown.
//! * Every block range the head's oldest data is cut into an immutable [`block`] on disk;
//!   [`blocks::Blocks`] is a shard's set of them: opening, compaction plans, retention, and
//!   damaged blocks set aside.
//! * [`querier::Querier`] reads blocks and head as one, and [`querier::merge_parts`] merges
//!   what each gave ([`overlap`] where their times overlap); a server reads them series by series (`Head::series_samples`,
//!   `Block::series_samples`) so that a query never holds its shard for long.
//! * [`memory::MemoryEngine`] runs PromQL over heads alone, with no files (rule unit tests and
//!   the conformance runner).
//!
//! The file formats are specified in `docs/format/`.

pub mod block;
pub mod blocks;
pub mod chunk;
pub mod cut;
pub mod db;
mod encoding;
pub mod exemplars;
pub mod head;
pub mod histogram_series;
pub mod memory;
pub mod out_of_order;
pub mod overlap;
pub mod postings;
pub mod querier;
pub mod queued_file;
mod series_map;
pub mod symbols;
pub mod wal;
