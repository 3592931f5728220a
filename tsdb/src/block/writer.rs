//! Writing a block: series in any order, their chunks streamed to `chunks` as they come, then
//! (in [`BlockWriter::finish`], on any thread) the symbol table, the series sorted by labels,
//! the postings, `meta.json`, fsyncs and the rename that makes the block exist.
//!
//! Series name their labels by ids into the caller's [`SymbolTable`] (the head's own, or
//! one a compaction fills), so a head cut copies no strings while the shard feeds it.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use roaring::RoaringBitmap;

use super::index::{self, ChunkRef, SeriesEntry};
use super::{BlockChunk, BlockMeta, BlockStats, Compaction, CHUNKS_FILE, INDEX_FILE, META_FILE, TMP_SUFFIX};
use crate::queued_file::QueuedFile;
use crate::symbols::SymbolTable;

/// Magic at the start of a `chunks` file.
pub(super) const CHUNKS_MAGIC: &[u8; 8] = b"PYRCHK\x00\x01";

/// A block being written into `<parent>/<ulid>.tmp`.
pub struct BlockWriter {
    parent: PathBuf,
    ulid: String,
    tmp: PathBuf,
    /// Written by a thread of its own: a head cut feeds it from the shard's thread.
    chunks: QueuedFile,
    offset: u64,
    /// Labels as the caller's symbol ids until `finish` renumbers them.
    series: Vec<SeriesEntry>,
    stats: BlockStats,
    /// Renamed into place; until then, dropping the writer removes the `.tmp` directory (a
    /// failed write, e.g. on a full disk, leaves nothing behind).
    done: bool,
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        if !self.done {
            // After the chunks' thread has stopped, which would make the directory again.
            let _ = self.chunks.finish();
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

impl BlockWriter {
    /// Starts a block named `ulid` under `parent` (its directory is made by the thread that
    /// writes its chunks).
    pub fn create(parent: &Path, ulid: String) -> io::Result<BlockWriter> {
        let tmp = parent.join(format!("{ulid}{TMP_SUFFIX}"));
        let mut chunks = QueuedFile::create(tmp.join(CHUNKS_FILE))?;
        chunks.write_all(CHUNKS_MAGIC)?;
        Ok(BlockWriter {
            parent: parent.to_path_buf(),
            ulid,
            tmp,
            chunks,
            offset: CHUNKS_MAGIC.len() as u64,
            series: Vec::new(),
            stats: BlockStats::default(),
            done: false,
        })
    }

    /// Adds a series and its chunks (time-ordered): its labels in label order, as (name, value)
    /// ids of the table [`BlockWriter::finish`] will be given. Each label set once; series in
    /// any order. A series without chunks is left out.
    pub fn add(&mut self, labels: &[(u32, u32)], chunks: &[BlockChunk]) -> io::Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        let mut entry = SeriesEntry { labels: labels.to_vec(), chunks: Vec::with_capacity(chunks.len()) };
        for c in chunks {
            self.chunks.write_all(&crc32c::crc32c(&c.bytes).to_le_bytes())?;
            self.chunks.write_all(&c.bytes)?;
            entry.chunks.push(ChunkRef {
                min_t: c.min_t,
                max_t: c.max_t,
                offset: self.offset,
                len: c.bytes.len() as u32,
            });
            self.offset += 4 + c.bytes.len() as u64;
            self.stats.num_samples += crate::chunk::sealed::sample_count(&c.bytes) as u64;
        }
        self.stats.num_chunks += chunks.len() as u64;
        self.stats.num_series += 1;
        self.series.push(entry);
        Ok(())
    }

    /// Chunk bytes written and not on disk yet.
    pub fn waiting(&self) -> u64 {
        self.chunks.waiting()
    }

    /// Writes the index (its strings from `symbols`, which must hold every id given to
    /// [`BlockWriter::add`]) and `meta.json`, syncs everything and renames the block into
    /// place. Returns its meta and directory.
    pub fn finish(
        mut self,
        symbols: &SymbolTable,
        min_time: i64,
        max_time: i64,
        compaction: Compaction,
    ) -> io::Result<(BlockMeta, PathBuf)> {
        self.chunks.finish()?.sync_all()?;
        // The index numbers strings in sorted order, so sorting by the new ids sorts by labels.
        let mut used: Vec<u32> = self.series.iter().flat_map(|s| s.labels.iter().flat_map(|&(n, v)| [n, v])).collect();
        used.sort_unstable();
        used.dedup();
        used.sort_unstable_by(|&a, &b| symbols.resolve(a).cmp(symbols.resolve(b)));
        let renumbered: HashMap<u32, u32> = used.iter().enumerate().map(|(new, &old)| (old, new as u32)).collect();
        for s in &mut self.series {
            for (n, v) in &mut s.labels {
                (*n, *v) = (renumbered[n], renumbered[v]);
            }
        }
        self.series.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        let strings: Vec<String> = used.iter().map(|&id| symbols.resolve(id).to_string()).collect();
        let mut pairs: HashMap<(u32, u32), RoaringBitmap> = HashMap::new();
        for (i, s) in self.series.iter().enumerate() {
            for &pair in &s.labels {
                pairs.entry(pair).or_default().insert(i as u32);
            }
        }
        let mut postings: Vec<(u32, u32, RoaringBitmap)> = pairs.into_iter().map(|((n, v), set)| (n, v, set)).collect();
        postings.sort_unstable_by_key(|&(n, v, _)| (n, v));
        let numbers: HashMap<(u32, u32), u32> =
            postings.iter().enumerate().map(|(i, &(n, v, _))| ((n, v), i as u32)).collect();
        let mut out = Vec::new();
        index::put_header(&mut out, min_time);
        index::put_symbols(&mut out, &strings);
        crate::encoding::put_varint(&mut out, self.series.len() as u64);
        let mut refs = Vec::new();
        for s in &self.series {
            refs.clear();
            refs.extend(s.labels.iter().map(|pair| numbers[pair]));
            // Ascending already (label order is name order, as the pairs'), unless a caller
            // broke the label-order contract; the entry's encoding needs it either way.
            refs.sort_unstable();
            refs.dedup();
            index::put_series_entry(&mut out, &refs, &s.chunks, min_time);
        }
        index::put_postings(&mut out, &postings);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        write_synced(&self.tmp.join(INDEX_FILE), &out)?;
        let stats = std::mem::take(&mut self.stats);
        let meta = BlockMeta { ulid: self.ulid.clone(), min_time, max_time, stats, compaction, version: 1 };
        let json = serde_json::to_vec_pretty(&meta).expect("a meta serializes");
        write_synced(&self.tmp.join(META_FILE), &json)?;
        File::open(&self.tmp)?.sync_all()?;
        let dir = self.parent.join(&self.ulid);
        fs::rename(&self.tmp, &dir)?;
        self.done = true;
        File::open(&self.parent)?.sync_all()?;
        Ok((meta, dir))
    }
}

/// Writes `bytes` to `path` and fsyncs it.
pub(super) fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
