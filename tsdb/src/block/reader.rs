//! Reading a block: opened once (meta, index checked and parsed, files mapped), then queried
//! like a head.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use roaring::RoaringBitmap;

use super::index::{self, SeriesEntry};
use super::writer::CHUNKS_MAGIC;
use super::{BlockChunk, BlockError, BlockMeta, Interval, Tombstones, CHUNKS_FILE, INDEX_FILE, META_FILE};
use crate::chunk::sealed::Decoded;
use crate::postings::{Postings, Selecting};
use crate::symbols::Symbols;
use pyrite_core::labels::{Labels, Matcher};
use pyrite_core::value::{HistogramSample, Sample, SeriesSamples};

/// An open block.
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    index: Mmap,
    chunks: Mmap,
    symbols: Symbols,
    postings: Postings,
    /// Offset of each series' entry in `index`.
    series: Vec<u32>,
    /// What series entries refer to.
    entries: index::Entries,
    tombstones: Tombstones,
    /// Bytes on disk.
    size: u64,
}

/// Reads and checks a block's `meta.json`.
fn read_meta(dir: &Path) -> Result<BlockMeta, BlockError> {
    let err = |reason: String| BlockError::new(dir, reason);
    let bytes = fs::read(dir.join(META_FILE)).map_err(|e| err(format!("cannot read meta.json: {e}")))?;
    let meta: BlockMeta = serde_json::from_slice(&bytes).map_err(|e| err(format!("meta.json: {e}")))?;
    if meta.version != 1 || meta.min_time >= meta.max_time {
        return Err(err(format!("meta.json: unsupported version {} or empty time range", meta.version)));
    }
    // A block is named by its ULID: one whose meta names another (a copy, an edit) would be
    // taken for that block by compactions, parents and deletions.
    if dir.file_name().is_none_or(|name| *name != *meta.ulid) {
        return Err(err(format!("meta.json: ulid {:?} is not the block directory's name", meta.ulid)));
    }
    Ok(meta)
}

/// Maps a whole file read-only.
fn map(path: &Path) -> Result<Mmap, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: block files are immutable once renamed into place and only ever deleted whole
    // (unlinking keeps the mapping valid); nothing in Pyrite writes to them, and the data
    // directory is locked against other instances. Exercised by the block tests.
    unsafe { Mmap::map(&file) }.map_err(|e| format!("cannot map {}: {e}", path.display()))
}

impl Block {
    /// Opens the block in `dir`, checking its meta and index; the error names what is wrong.
    pub fn open(dir: &Path) -> Result<Block, BlockError> {
        let err = |reason: String| BlockError::new(dir, reason);
        let meta = read_meta(dir)?;
        let index = map(&dir.join(INDEX_FILE)).map_err(err)?;
        let chunks = map(&dir.join(CHUNKS_FILE)).map_err(err)?;
        if chunks.get(..CHUNKS_MAGIC.len()) != Some(CHUNKS_MAGIC) {
            return Err(err("chunks: bad magic".into()));
        }
        let parsed = index::parse(&index).map_err(|e| err(e.into()))?;
        let mut symbols = Symbols::default();
        for s in &parsed.symbols {
            symbols.intern(s);
        }
        let mut postings = Postings::default();
        for (name, value, set) in parsed.postings {
            postings.insert(name, value, set);
        }
        let tombstones = Tombstones::read(dir).map_err(err)?;
        let size = fs::read_dir(dir)
            .map_err(|e| err(format!("cannot list: {e}")))?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        Ok(Block {
            dir: dir.to_path_buf(),
            meta,
            index,
            chunks,
            symbols,
            postings,
            series: parsed.series,
            entries: parsed.entries,
            tombstones,
            size,
        })
    }

    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes on disk.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    pub fn tombstones(&self) -> &Tombstones {
        &self.tombstones
    }

    /// Whether the block holds data in `[mint, maxt]`.
    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.meta.min_time <= maxt && self.meta.max_time > mint
    }

    fn error(&self, reason: impl Into<String>) -> BlockError {
        BlockError::new(&self.dir, reason)
    }

    fn entry(&self, series: u32) -> Result<SeriesEntry, BlockError> {
        self.entries
            .read(&self.index, self.series[series as usize])
            .ok_or_else(|| self.error(format!("index: series {series} is malformed")))
    }

    fn labels(&self, entry: &SeriesEntry) -> Labels {
        self.symbols.labels(&entry.labels)
    }

    /// The bytes of a chunk, checked against its CRC.
    fn chunk_bytes(&self, c: &index::ChunkRef) -> Result<&[u8], BlockError> {
        let start = usize::try_from(c.offset).unwrap_or(usize::MAX);
        let bytes = start
            .checked_add(4 + c.len as usize)
            .and_then(|end| self.chunks.get(start..end))
            .ok_or_else(|| self.error(format!("chunks: chunk at {} is past the end of the file", c.offset)))?;
        let (crc, data) = bytes.split_at(4);
        if crc32c::crc32c(data).to_le_bytes() != crc {
            return Err(self.error(format!("chunks: checksum mismatch in the chunk at offset {}", c.offset)));
        }
        Ok(data)
    }

    /// Decodes the float and histogram samples of `entry` in `[mint, maxt]` that no tombstone
    /// deletes.
    fn samples(&self, entry: &SeriesEntry, deleted: &[Interval], mint: i64, maxt: i64) -> Result<Decoded, BlockError> {
        let mut decoded = Decoded::default();
        for c in entry.chunks.iter().filter(|c| c.min_t <= maxt && c.max_t >= mint) {
            decoded.add(self.chunk_bytes(c)?).map_err(|e| self.error(format!("chunks: {e}")))?;
        }
        decoded.retain(|t| t >= mint && t <= maxt && !Tombstones::covers(deleted, t));
        Ok(decoded)
    }

    /// Series numbers matching `matchers`.
    pub fn matching(&self, matchers: &[Matcher]) -> RoaringBitmap {
        self.postings.select(&self.symbols, matchers)
    }

    /// [`Block::matching`] in steps of about `budget` values tried (see [`Selecting`]).
    pub fn matching_step(&self, selecting: &mut Selecting, budget: usize) -> Option<RoaringBitmap> {
        selecting.step(&self.postings, &self.symbols, budget)
    }

    /// How many label values selecting with `matchers` tries one by one.
    pub fn selection_cost(&self, matchers: &[Matcher]) -> usize {
        self.postings.selection_cost(&self.symbols, matchers)
    }

    /// Every matching series with its samples in `[mint, maxt]`, if it has any.
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<SeriesSamples>, BlockError> {
        let mut out = Vec::new();
        for id in &self.matching(matchers) {
            out.extend(self.series_samples(id, mint, maxt)?);
        }
        Ok(out)
    }

    /// Series `id` (a number [`Block::matching`] gave) with its samples in `[mint, maxt]`, if
    /// it has any.
    pub fn series_samples(&self, id: u32, mint: i64, maxt: i64) -> Result<Option<SeriesSamples>, BlockError> {
        let entry = self.entry(id)?;
        let Decoded { floats, histograms } = self.samples(&entry, self.tombstones.get(id), mint, maxt)?;
        if floats.is_empty() && histograms.is_empty() {
            return Ok(None);
        }
        Ok(Some(SeriesSamples {
            labels: self.labels(&entry),
            samples: floats.into_iter().map(|(t, v)| Sample { t, v }).collect(),
            histograms: histograms.into_iter().map(|(t, h)| HistogramSample { t, h: Arc::new(h) }).collect(),
        }))
    }

    /// The label set of series `id` (a number [`Block::matching`] gave) if it has chunks in
    /// `[mint, maxt]`; tombstones are not consulted, as upstream's series API does not.
    pub fn series_labels(&self, id: u32, mint: i64, maxt: i64) -> Result<Option<Labels>, BlockError> {
        let entry = self.entry(id)?;
        Ok(entry.chunks.iter().any(|c| c.min_t <= maxt && c.max_t >= mint).then(|| self.labels(&entry)))
    }

    /// Label names on the series `ids` (numbers [`Block::matching`] gave), from the postings,
    /// if that looks at no more than `most` postings lists (see
    /// [`Postings::label_names_among`]). Label names and values are listed for the whole block
    /// that overlaps a range, as upstream lists them.
    pub fn label_names_among(&self, ids: &RoaringBitmap, most: usize) -> Option<Vec<&str>> {
        self.postings.label_names_among(&self.symbols, ids, most)
    }

    /// Values of `name` on the series `ids`, from the postings, as [`Block::label_names_among`].
    pub fn label_values_among(&self, name: &str, ids: &RoaringBitmap, most: usize) -> Option<Vec<&str>> {
        self.postings.label_values_among(&self.symbols, name, ids, most)
    }

    /// The label set of series `id`, whatever its chunks' times (label names and values are
    /// listed for the whole block).
    pub fn labels_of(&self, id: u32) -> Result<Labels, BlockError> {
        Ok(self.labels(&self.entry(id)?))
    }

    /// Series `id` (numbered in label order) with its chunks, tombstones applied: chunks a
    /// tombstone touches are re-encoded without the deleted samples.
    pub fn series_chunks(&self, id: u32) -> Result<(Labels, Vec<BlockChunk<'_>>), BlockError> {
        let entry = self.entry(id)?;
        let deleted = self.tombstones.get(id);
        let mut chunks = Vec::with_capacity(entry.chunks.len());
        for c in &entry.chunks {
            if deleted.iter().any(|&(a, b)| a <= c.max_t && b >= c.min_t) {
                let mut decoded = Decoded::default();
                decoded.add(self.chunk_bytes(c)?).map_err(|e| self.error(format!("chunks: {e}")))?;
                decoded.retain(|t| !Tombstones::covers(deleted, t));
                chunks.extend(BlockChunk::pack(&decoded.floats));
                chunks.extend(BlockChunk::pack_histograms(&decoded.histograms));
            } else {
                let bytes = self.chunk_bytes(c)?;
                chunks.push(BlockChunk { min_t: c.min_t, max_t: c.max_t, bytes: bytes.into() });
            }
        }
        Ok((self.labels(&entry), chunks))
    }

    /// Marks the samples of matching series in `[mint, maxt]` deleted and saves the
    /// tombstones; returns how many series were touched.
    pub fn delete(&mut self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<usize, BlockError> {
        let mut next = self.tombstones.clone();
        let mut touched = 0;
        for id in &self.matching(matchers) {
            let entry = self.entry(id)?;
            if entry.chunks.iter().any(|c| c.min_t <= maxt && c.max_t >= mint) {
                next.add(id, (mint, maxt));
                touched += 1;
            }
        }
        if touched > 0 {
            next.write(&self.dir).map_err(|e| self.error(format!("cannot write tombstones: {e}")))?;
            self.tombstones = next;
        }
        Ok(touched)
    }
}
