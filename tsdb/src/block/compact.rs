//! Compaction: which blocks to merge, and merging them into one.
//!
//! Ranges grow by a factor of three from the head's block duration (2h, 6h, 18h, …, as
//! upstream's defaults), capped by the caller (upstream: a tenth of the retention, at most
//! 31 days). Blocks that fall inside one aligned window of a larger range are merged once the
//! window is complete (a newer block exists past its end) or fully covered. The output lists
//! its inputs as parents, so a start that finds both (a crash between the rename and the
//! deletions) deletes the parents instead of serving their data twice. Blocks that overlap
//! (out-of-order data's own blocks) are merged before anything else.

use std::io;
use std::path::{Path, PathBuf};

use super::{Block, BlockChunk, BlockError, BlockMeta, BlockRef, BlockWriter, Compaction};
use crate::chunk::sealed::{ChunkError, Decoded};
use crate::symbols::Symbols;
use pyrite_core::labels::Labels;

/// The block ranges compaction builds, from `base` (the head's block duration) up to `max`.
pub fn ranges(base: i64, max: i64) -> Vec<i64> {
    std::iter::successors(Some(base), |r| r.checked_mul(3)).take_while(|&r| r <= max.max(base)).collect()
}

/// Indices (into `metas`, sorted by min time) of blocks to compact together, if any: blocks
/// that overlap first (out-of-order data written beside in-order data, as upstream's vertical
/// compaction), then by range.
pub fn plan_compaction(metas: &[BlockMeta], ranges: &[i64], failed: impl Fn(usize) -> bool) -> Option<Vec<usize>> {
    if let Some(group) = overlapping(metas, &failed) {
        return Some(group);
    }
    let newest = metas.iter().map(|m| m.max_time).max()?;
    for &range in ranges.iter().skip(1) {
        let mut i = 0;
        while i < metas.len() {
            let start = metas[i].min_time.div_euclid(range) * range;
            let end = start + range;
            let group: Vec<usize> = (i..metas.len()).take_while(|&j| metas[j].max_time <= end).collect();
            let covered = group.len() > 1
                && metas[group[0]].min_time == start
                && metas[*group.last().expect("non-empty")].max_time == end;
            // A range with a block a compaction failed on is not selected, as upstream.
            if group.len() > 1 && (newest > end || covered) && !group.iter().any(|&b| failed(b)) {
                return Some(group);
            }
            i += group.len().max(1);
        }
    }
    None
}

/// The first run of blocks (sorted by min time) whose time ranges overlap and none of which a
/// compaction failed on, if any.
fn overlapping(metas: &[BlockMeta], failed: &impl Fn(usize) -> bool) -> Option<Vec<usize>> {
    let mut i = 0;
    while i < metas.len() {
        let (mut end, mut j) = (metas[i].max_time, i + 1);
        while j < metas.len() && metas[j].min_time < end {
            end = end.max(metas[j].max_time);
            j += 1;
        }
        if j - i > 1 && !(i..j).any(failed) {
            return Some((i..j).collect());
        }
        i = j;
    }
    None
}

/// Why a compaction failed.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error("cannot write the compacted block: {0}")]
    Io(#[from] io::Error),
    /// A chunk of overlapping blocks passed its checksum but does not decode (written by a
    /// newer Pyrite, or damaged before its checksum was taken): merging it would lose it.
    #[error("a chunk of series {labels} does not decode: {reason}")]
    Undecodable { labels: String, reason: String },
}

/// Merges `blocks` (sorted by min time) into a new block `ulid` under `parent`, applying their
/// tombstones. The inputs are left in place; the caller deletes them.
pub fn compact(parent: &Path, ulid: String, blocks: &[&Block]) -> Result<(BlockMeta, PathBuf), CompactError> {
    let mut writer = BlockWriter::create(parent, ulid.clone())?;
    let mut symbols = Symbols::default();
    // Each block's series are numbered in label order: a k-way merge by labels.
    let mut cursors: Vec<(usize, u32)> = (0..blocks.len()).map(|b| (b, 0)).collect();
    let mut heads: Vec<Option<(Labels, Vec<BlockChunk>)>> =
        blocks.iter().map(|b| next_series(b, 0)).collect::<Result<_, _>>()?;
    while let Some(smallest) = heads.iter().flatten().map(|(l, _)| l).min().cloned() {
        let mut chunks = Vec::new();
        for (b, head) in heads.iter_mut().enumerate() {
            if head.as_ref().is_some_and(|(l, _)| *l == smallest) {
                chunks.extend(head.take().expect("checked above").1);
                cursors[b].1 += 1;
                *head = next_series(blocks[b], cursors[b].1)?;
            }
        }
        let ids: Vec<(u32, u32)> =
            smallest.iter().map(|l| (symbols.intern(&l.name), symbols.intern(&l.value))).collect();
        let chunks = in_order(chunks)
            .map_err(|e| CompactError::Undecodable { labels: smallest.to_string(), reason: e.to_string() })?;
        writer.add(&ids, &chunks)?;
    }
    let min_time = blocks.iter().map(|b| b.meta().min_time).min().unwrap_or(0);
    let max_time = blocks.iter().map(|b| b.meta().max_time).max().unwrap_or(0);
    let mut sources: Vec<String> = blocks.iter().flat_map(|b| b.meta().compaction.sources.clone()).collect();
    sources.sort();
    sources.dedup();
    let compaction = Compaction {
        level: blocks.iter().map(|b| b.meta().compaction.level).max().unwrap_or(0) + 1,
        sources,
        parents: blocks
            .iter()
            .map(|b| BlockRef { ulid: b.meta().ulid.clone(), min_time: b.meta().min_time, max_time: b.meta().max_time })
            .collect(),
    };
    Ok(writer.finish(&symbols.table(), min_time, max_time, compaction)?)
}

fn next_series(block: &Block, id: u32) -> Result<Option<(Labels, Vec<BlockChunk<'_>>)>, BlockError> {
    if id as usize >= block.num_series() {
        return Ok(None);
    }
    block.series_chunks(id).map(Some)
}

/// Chunks in time order; chunks that overlap (blocks that overlapped) are decoded, merged as
/// [`crate::overlap`] says, and re-packed. A chunk that does not decode fails the merge.
fn in_order(mut chunks: Vec<BlockChunk>) -> Result<Vec<BlockChunk>, ChunkError> {
    chunks.sort_by_key(|c| c.min_t);
    if chunks.windows(2).all(|w| w[0].max_t < w[1].min_t) {
        return Ok(chunks);
    }
    let mut decoded = Decoded::default();
    for c in &chunks {
        decoded.add(&c.bytes)?;
    }
    let Decoded { mut floats, mut histograms } = decoded;
    crate::overlap::merge(&mut floats, &mut histograms, |f| f.0, |h| h.0, |h| &mut h.1);
    let mut out = BlockChunk::pack(&floats);
    out.extend(BlockChunk::pack_histograms(&histograms));
    out.sort_by_key(|c| c.min_t);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Overlapping chunks are merged; one that does not decode fails the merge instead of
    /// being left out of it (red team: samples of merged blocks vanished without a word).
    #[test]
    fn overlapping_chunks_merge_and_an_undecodable_one_fails_the_merge() {
        let floats = |from: i64| (from..from + 10).map(|t| (t * 1000, t as f64)).collect::<Vec<_>>();
        let mut chunks = BlockChunk::pack(&floats(0));
        chunks.extend(BlockChunk::pack(&floats(5)));
        let merged = in_order(chunks.clone()).expect("merged");
        let mut decoded = Decoded::default();
        merged.iter().for_each(|c| decoded.add(&c.bytes).expect("decodes"));
        assert_eq!(decoded.floats, floats(0).into_iter().chain(floats(10).into_iter().take(5)).collect::<Vec<_>>());
        chunks[1].bytes = vec![0xff; 12].into();
        assert!(in_order(chunks).is_err());
    }
}
