//! A block cut from the head a slice at a time, so that the shard owning the head keeps
//! appending and answering between slices: [`HeadCut::begin`] lists the series with data in
//! the range and opens the block's files, [`HeadCut::write`] streams the next series' chunks
//! (a bounded number per call), and [`HeadCut::finish`], on any thread, writes the index and
//! renames the block into place. The range's data must not change meanwhile: appends before
//! its end are refused from the start (`Head::freeze_before`), sealed chunks never change, and
//! series are forgotten only once the block is installed.

use std::io;
use std::path::{Path, PathBuf};

use crate::block::{self, BlockMeta, BlockWriter, Compaction};
use crate::head::Head;
use crate::symbols::SymbolTable;

/// A level-1 block of `[mint, maxt)` of the head, being written.
pub struct HeadCut {
    mint: i64,
    maxt: i64,
    ulid: String,
    /// Series still to write.
    pending: Vec<u32>,
    writer: BlockWriter,
    /// The head's label strings when the cut began: the series' labels cannot change, and
    /// their strings are not freed before the cut is installed.
    symbols: SymbolTable,
}

impl HeadCut {
    /// Starts a block of `[mint, maxt)` under `dir`; None if the head has no data there.
    pub fn begin(dir: &Path, head: &Head, mint: i64, maxt: i64, now_ms: i64) -> io::Result<Option<HeadCut>> {
        let pending = head.ids_overlapping(mint, maxt);
        if pending.is_empty() {
            return Ok(None);
        }
        let ulid = block::new_ulid(now_ms);
        let writer = BlockWriter::create(dir, ulid.clone())?;
        Ok(Some(HeadCut { mint, maxt, ulid, pending, writer, symbols: head.symbol_table() }))
    }

    /// Writes the chunks of up to `max_series` more series.
    pub fn write(&mut self, head: &Head, max_series: usize) -> io::Result<()> {
        let rest = self.pending.len().saturating_sub(max_series);
        for id in self.pending.drain(rest..) {
            if let Some(labels) = head.label_ids(id) {
                self.writer.add(labels, &head.block_chunks(id, self.mint, self.maxt))?;
            }
        }
        Ok(())
    }

    /// Bytes written and not on disk yet (the shard pauses while the disk is behind).
    pub fn waiting(&self) -> u64 {
        self.writer.waiting()
    }

    /// Whether every series' chunks are written.
    pub fn is_written(&self) -> bool {
        self.pending.is_empty()
    }

    /// Writes the index and the meta, syncs and renames the block into place (any thread;
    /// call once [`HeadCut::is_written`]). Returns its meta and directory.
    pub fn finish(self) -> io::Result<(BlockMeta, PathBuf)> {
        let compaction = Compaction { level: 1, sources: vec![self.ulid], parents: vec![] };
        self.writer.finish(&self.symbols, self.mint, self.maxt, compaction)
    }
}
