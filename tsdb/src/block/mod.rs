//! Blocks: immutable on-disk slices of a shard's data, each covering a time range.
//!
//! A block is a directory named by a ULID holding `meta.json` (as upstream's: ulid, time range,
//! stats, compaction lineage), `index` (symbols, series with their chunk references, roaring
//! postings; CRC-32C checked when the block is opened), `chunks` (packed chunks, each behind a
//! CRC-32C checked when it is read) and optionally `tombstones` (deletions not yet compacted
//! away). Formats: `docs/format/block.md` and `docs/format/index.md`.
//!
//! Files are read through `memmap2`; what stays in memory per block is its symbol table,
//! postings and one offset per series. Blocks are written to `<ulid>.tmp` and renamed into
//! place, so a crash leaves either a whole block or a `.tmp` directory that the next start
//! deletes.

mod compact;
pub mod index;
mod reader;
mod tombstones;
mod writer;

use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use compact::{compact, plan_compaction, ranges, CompactError};
pub use reader::Block;
pub use tombstones::{Interval, Tombstones};
pub use writer::BlockWriter;

use super::chunk::histogram::HistogramChunk;
use super::chunk::packed;
use super::histogram_series::is_full;
use pyrite_core::histogram::FloatHistogram;

/// Files a block directory holds.
pub const META_FILE: &str = "meta.json";
pub const INDEX_FILE: &str = "index";
pub const CHUNKS_FILE: &str = "chunks";
pub const TOMBSTONES_FILE: &str = "tombstones";
/// Suffix of a block still being written, or being deleted.
pub const TMP_SUFFIX: &str = ".tmp";

/// A block that cannot be read, with what is wrong with it. It names the block by its
/// directory's name (its ULID), never by an absolute path, which answers must not reveal.
#[derive(Debug, Error)]
#[error("block {}: {reason}", self.name())]
pub struct BlockError {
    pub dir: PathBuf,
    pub reason: String,
}

impl BlockError {
    pub(crate) fn new(dir: impl Into<PathBuf>, reason: impl Into<String>) -> BlockError {
        BlockError { dir: dir.into(), reason: reason.into() }
    }

    /// The block's directory name: its ULID.
    pub fn name(&self) -> String {
        self.dir.file_name().map_or_else(|| "?".into(), |n| n.to_string_lossy().into_owned())
    }
}

/// `meta.json`, field for field as upstream writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    pub ulid: String,
    /// Inclusive.
    pub min_time: i64,
    /// Exclusive, as upstream.
    pub max_time: i64,
    pub stats: BlockStats,
    pub compaction: Compaction,
    pub version: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    pub num_samples: u64,
    pub num_series: u64,
    pub num_chunks: u64,
}

/// A block's lineage: level 1 is cut from the head; a compaction's output is one level above
/// its highest input and lists every head-cut block it descends from and its direct parents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Compaction {
    pub level: u32,
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<BlockRef>,
}

/// A parent block as upstream lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockRef {
    pub ulid: String,
    pub min_time: i64,
    pub max_time: i64,
}

/// A chunk (packed floats, or histograms) on its way into a block: borrowed from a head or another block, or encoded
/// for the occasion.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockChunk<'a> {
    pub min_t: i64,
    pub max_t: i64,
    pub bytes: Cow<'a, [u8]>,
}

impl BlockChunk<'_> {
    /// Whether the chunk has samples in `[mint, maxt]` (by its time range).
    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.min_t <= maxt && self.max_t >= mint
    }
}

impl BlockChunk<'static> {
    /// Packs `samples` (time-ordered) into chunks of at most 120.
    pub fn pack(samples: &[(i64, f64)]) -> Vec<BlockChunk<'static>> {
        samples
            .chunks(crate::head::CHUNK_SAMPLES)
            .map(|run| {
                let mut bytes = Vec::new();
                packed::encode(run, &mut bytes);
                BlockChunk { min_t: run[0].0, max_t: run[run.len() - 1].0, bytes: bytes.into() }
            })
            .collect()
    }

    /// Encodes histogram `samples` (time-ordered) into chunks cut as the head cuts them.
    pub fn pack_histograms(samples: &[(i64, FloatHistogram)]) -> Vec<BlockChunk<'static>> {
        let mut out = Vec::new();
        let mut chunk = HistogramChunk::new();
        for (t, h) in samples {
            if is_full(&chunk) {
                out.push(BlockChunk::histograms(&std::mem::take(&mut chunk)));
            }
            chunk.append(*t, h);
        }
        if !chunk.is_empty() {
            out.push(BlockChunk::histograms(&chunk));
        }
        out
    }

    fn histograms(chunk: &HistogramChunk) -> BlockChunk<'static> {
        BlockChunk { min_t: chunk.min_time(), max_t: chunk.max_time(), bytes: chunk.bytes().to_vec().into() }
    }
}

/// A new ULID: 48 bits of milliseconds and 80 random bits, in Crockford base 32 (26 chars),
/// so that names sort by creation time.
pub fn new_ulid(now_ms: i64) -> String {
    let random = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.finish()
    };
    let value =
        ((now_ms as u128 & 0xffff_ffff_ffff) << 80) | (u128::from(random(1)) << 16) | u128::from(random(2) & 0xffff);
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    (0..26).rev().map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char).collect()
}

#[cfg(test)]
mod tests;
