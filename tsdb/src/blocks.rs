//! A shard's blocks on disk, under `<data>/blocks/<shard>/`: opening them at start, cutting the
//! head into new ones, compacting, deleting by retention, and tombstones.
//!
//! Every change is made on disk first (a block renamed into place, a directory renamed to
//! `.tmp` before it is removed) and then to the in-memory list, so a crash at any point leaves
//! a directory a start can make sense of: `.tmp` directories are deleted, and a block that a
//! newer block lists as its parent is deleted (a compaction finished but its inputs were not
//! removed yet). A block that cannot be read, whose `meta.json` names another block, or that
//! ends more than a day past the clock is refused with its reason and left on disk; the others
//! are served. A block that a query finds damaged (a chunk whose checksum fails) is set
//! aside: no longer served, its directory renamed `<ulid>.damaged`.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::block::{self, Block, BlockError, TMP_SUFFIX};
use pyrite_core::labels::Matcher;

/// Suffix of a block set aside because reading it found damage.
pub const DAMAGED_SUFFIX: &str = ".damaged";

/// How far past this machine's clock a block may end. The head takes no sample older than the
/// newest block's end and its log's replay skips them, so a block ending far in the future (a
/// damaged or edited `meta.json`) silently refused every new sample and hid the head's data.
const FUTURE_SLACK_MS: i64 = 24 * 3600 * 1000;

pub struct Blocks {
    dir: PathBuf,
    /// Sorted by min time.
    list: Vec<Block>,
    /// A compaction is reading some of these blocks on another thread: deletions wait.
    compacting: bool,
    /// Blocks a compaction failed on, whose groups later plans skip until the next start (as
    /// upstream marks them `Compaction.Failed`): one unreadable chunk would otherwise fail the
    /// same plan every pass and keep the shard's other blocks from ever being compacted.
    failed: HashSet<PathBuf>,
}

/// What opening found besides the blocks it serves.
#[derive(Debug, Default)]
pub struct Opened {
    pub refused: Vec<BlockError>,
    /// Parents of a newer block, and leftovers of interrupted writes, deleted.
    pub removed: Vec<PathBuf>,
}

/// Removes a block directory: renamed to `.tmp` first, so a crash halfway leaves something
/// the next start deletes rather than a damaged block.
fn remove_block(dir: &Path) -> io::Result<()> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let doomed = dir.with_file_name(format!("{name}{TMP_SUFFIX}"));
    fs::rename(dir, &doomed)?;
    fs::remove_dir_all(&doomed)
}

impl Blocks {
    /// No blocks, and none to come (agent mode keeps no blocks; nothing is created on disk).
    pub fn none() -> Blocks {
        Blocks { dir: PathBuf::new(), list: Vec::new(), compacting: false, failed: HashSet::new() }
    }

    /// Opens every block in `dir` (created if missing); `now_ms` is the clock's time.
    pub fn open(dir: &Path, now_ms: i64) -> io::Result<(Blocks, Opened)> {
        fs::create_dir_all(dir)?;
        let mut opened = Opened::default();
        let mut list = Vec::new();
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        entries.sort();
        entries.retain(|p| p.is_dir());
        for path in entries.iter().filter(|p| p.to_string_lossy().ends_with(TMP_SUFFIX)) {
            fs::remove_dir_all(path)?;
            opened.removed.push(path.clone());
        }
        entries
            .retain(|p| !p.to_string_lossy().ends_with(TMP_SUFFIX) && !p.to_string_lossy().ends_with(DAMAGED_SUFFIX));
        let mut refused = Vec::new();
        let latest_end = now_ms.saturating_add(FUTURE_SLACK_MS);
        for path in entries {
            match Block::open(&path) {
                Ok(b) if b.meta().max_time > latest_end => {
                    let reason = format!(
                        "meta.json: maxTime {} is more than a day past this machine's clock; served, it would \
                         refuse every newer sample and the log's replay",
                        b.meta().max_time
                    );
                    refused.push((path.clone(), BlockError::new(&path, reason)));
                }
                Ok(b) => list.push(b),
                Err(e) => refused.push((path, e)),
            }
        }
        // Parents of a block that opens are superseded, whatever state they are in (a parent
        // of a damaged block is kept: it may be the only good copy).
        let parents: Vec<String> =
            list.iter().flat_map(|b| b.meta().compaction.parents.iter().map(|p| p.ulid.clone())).collect();
        let is_parent =
            |p: &Path| p.file_name().is_some_and(|n| parents.iter().any(|ulid| n.to_string_lossy() == *ulid));
        let (stale, keep): (Vec<Block>, Vec<Block>) = list.into_iter().partition(|b| is_parent(b.dir()));
        list = keep;
        for b in stale {
            remove_block(b.dir())?;
            opened.removed.push(b.dir().to_path_buf());
        }
        for (path, e) in refused {
            if is_parent(&path) {
                remove_block(&path)?;
                opened.removed.push(path);
            } else {
                opened.refused.push(e);
            }
        }
        let mut blocks = Blocks { dir: dir.to_path_buf(), list, compacting: false, failed: HashSet::new() };
        blocks.sort();
        Ok((blocks, opened))
    }

    fn sort(&mut self) {
        self.list.sort_by_key(|b| b.meta().min_time);
    }

    pub fn list(&self) -> &[Block] {
        &self.list
    }

    /// End of the newest block: where the head's data begins.
    pub fn max_time(&self) -> Option<i64> {
        self.list.iter().map(|b| b.meta().max_time).max()
    }

    /// Bytes on disk.
    pub fn size(&self) -> u64 {
        self.list.iter().map(Block::size).sum()
    }

    /// Serves a block a head cut wrote (opened off the shard: opening reads its index).
    pub fn add_cut(&mut self, block: Block) {
        self.list.push(block);
        self.sort();
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn compacting(&self) -> bool {
        self.compacting
    }

    /// Marks a compaction as running (deletions wait) or done.
    pub fn set_compacting(&mut self, running: bool) {
        self.compacting = running;
    }

    /// The directories of the next group of blocks to compact, if the plan has one; no group
    /// holds a block a compaction failed on.
    pub fn plan(&self, ranges: &[i64]) -> Option<Vec<PathBuf>> {
        let metas: Vec<block::BlockMeta> = self.list.iter().map(|b| b.meta().clone()).collect();
        let group = block::plan_compaction(&metas, ranges, |i| self.failed.contains(self.list[i].dir()))?;
        Some(group.iter().map(|&i| self.list[i].dir().to_path_buf()).collect())
    }

    /// Keeps the blocks in `inputs`, which a compaction failed on, out of later plans' groups.
    pub fn compaction_failed(&mut self, inputs: &[PathBuf]) {
        self.failed.extend(inputs.iter().cloned());
    }

    /// Serves the compacted block `merged` in place of its `parents`, and deletes them.
    pub fn install(&mut self, merged: Block, parents: &[PathBuf]) -> Result<(), CutError> {
        self.list.retain(|b| !parents.iter().any(|p| p == b.dir()));
        self.list.push(merged);
        self.sort();
        for p in parents {
            remove_block(p)?;
        }
        Ok(())
    }

    /// Stops serving the block named `name` (its ULID), found damaged while it was read, and
    /// renames its directory with [`DAMAGED_SUFFIX`], so that later starts leave it alone and
    /// an operator can inspect or delete it. False if no such block is served, or a compaction
    /// is reading the blocks (the next damaged read tries again).
    pub fn set_aside(&mut self, name: &str) -> io::Result<bool> {
        let Some(i) = self.list.iter().position(|b| b.dir().file_name().is_some_and(|n| n == name)) else {
            return Ok(false);
        };
        if self.compacting {
            return Ok(false);
        }
        let dir = self.list[i].dir().to_path_buf();
        fs::rename(&dir, dir.with_file_name(format!("{name}{DAMAGED_SUFFIX}")))?;
        self.list.remove(i);
        Ok(true)
    }

    /// Deletes the blocks entirely before `t`; returns how many.
    pub fn delete_before(&mut self, t: i64) -> io::Result<usize> {
        let mut deleted = 0;
        while self.list.first().is_some_and(|b| b.meta().max_time <= t) {
            let b = self.list.remove(0);
            remove_block(b.dir())?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Deletes the oldest block; false if there is none.
    pub fn delete_oldest(&mut self) -> io::Result<bool> {
        if self.list.is_empty() {
            return Ok(false);
        }
        let b = self.list.remove(0);
        remove_block(b.dir())?;
        Ok(true)
    }

    /// Adds tombstones for the matching series' samples in `[mint, maxt]` to every block.
    pub fn delete(&mut self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<usize, BlockError> {
        let mut touched = 0;
        for b in self.list.iter_mut().filter(|b| b.overlaps(mint, maxt)) {
            touched += b.delete(matchers, mint, maxt)?;
        }
        Ok(touched)
    }

    /// Rewrites every block that has tombstones without the deleted samples; returns how many.
    pub fn clean_tombstones(&mut self, now_ms: i64) -> Result<usize, CutError> {
        let mut cleaned = 0;
        for i in 0..self.list.len() {
            if self.list[i].tombstones().is_empty() {
                continue;
            }
            let old = &self.list[i];
            let (_, path) = block::compact(&self.dir, block::new_ulid(now_ms), &[old])?;
            let rewritten = Block::open(&path)?;
            let old_dir = old.dir().to_path_buf();
            // Same range, one level up, the old block as parent: a crash before the removal
            // below still ends with one copy.
            self.list[i] = rewritten;
            remove_block(&old_dir)?;
            cleaned += 1;
        }
        Ok(cleaned)
    }
}

/// Merges the blocks in `inputs` into a new block under `dir`. Opens its own readers, so it
/// can run on any thread while the shard keeps serving the inputs.
pub fn compact_paths(dir: &Path, inputs: &[PathBuf], ulid: String) -> Result<(block::BlockMeta, PathBuf), CutError> {
    let blocks: Vec<Block> = inputs.iter().map(|p| Block::open(p)).collect::<Result<_, _>>()?;
    let refs: Vec<&Block> = blocks.iter().collect();
    Ok(block::compact(dir, ulid, &refs)?)
}

/// Writing a block failed.
#[derive(Debug, thiserror::Error)]
pub enum CutError {
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error(transparent)]
    Compact(#[from] block::CompactError),
    #[error("cannot write a block: {0}")]
    Io(#[from] io::Error),
}
