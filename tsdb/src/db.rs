//! One shard's storage: its head, the write-ahead log that makes the head's appends survive a
//! crash, and its blocks. Every append goes through here: the head takes what it accepts, the
//! log records exactly that (and any series it created), and only then is the batch answered.
//! Every block range the head's oldest data is cut into a block, after which the head and the
//! log let it go.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::block::{Block, BlockChunk, BlockError, BlockMeta, BlockWriter, Compaction};
use crate::chunk::store::ChunkStore;
use crate::cut::HeadCut;
use crate::exemplars::ExemplarError;
use crate::head::{AppendError, Appended, Head, Truncated};
use crate::querier::Querier;
use pyrite_core::histogram::FloatHistogram;
use pyrite_core::labels::{Labels, Matcher};
use pyrite_core::remote::WriteSeries;
use pyrite_core::scrape::{BatchSeries, ShardBatch};
use pyrite_core::value::{Exemplar, HistogramSample};

use crate::blocks::{Blocks, CutError, Opened};
use crate::wal::{Batch, LogFollowers, LogWrite, LogWritten, Logged, Replayed, Wal, WalOptions};

/// Most blocks one housekeeping pass cuts (one is due per block range in steady state).
pub const MAX_CUTS_PER_PASS: usize = 4;

/// How far the log may fall behind a disk that does not answer (bytes handed to its writer,
/// not written) before batches are refused: a few minutes of a million series' appends.
const LOG_BACKLOG_MOST: u64 = 64 << 20;

/// The outcome of an append batch.
#[derive(Debug, Default)]
pub struct AppendReply {
    /// Ids of the batch's `new` series, in order.
    pub ids: Vec<u32>,
    /// Series the batch created in the head (upstream's `prometheus_tsdb_head_series_created_total`).
    pub created: usize,
    pub appended: usize,
    /// Accepted as out of order (within `storage.tsdb.out_of_order_time_window`), also counted
    /// in `appended`.
    pub appended_out_of_order: usize,
    pub out_of_order: usize,
    /// Out of order and older than the out-of-order window.
    pub too_old: usize,
    pub duplicates: usize,
    /// Older than the newest block's end.
    pub out_of_bounds: usize,
    /// Later than `--storage.tsdb.too-far-in-future.time-window` past the shard's clock.
    pub too_far_in_future: usize,
    /// Histograms with more buckets than the head stores.
    pub bucket_limit: usize,
    /// Histograms no histogram chunk can hold (see `chunk::histogram::encodable`).
    pub invalid_histograms: usize,
    /// Of the counts above, the native histograms'.
    pub histograms: HistogramCounts,
    /// Exemplars kept (the remote-write answer's count).
    pub exemplars: usize,
    /// Exemplars older than their series' newest.
    pub exemplars_out_of_order: usize,
    /// Samples for ids the head has forgotten (the series had no samples left when its data
    /// moved to blocks): the sender must resolve these series by their labels again.
    pub unknown: Vec<(u32, i64, f64)>,
    /// The same for native-histogram samples.
    pub unknown_histograms: Vec<(u32, HistogramSample)>,
    /// The log could not be written: the samples are in memory but not durable.
    pub storage_error: Option<StorageError>,
}

/// The part of an [`AppendReply`]'s counts that native-histogram samples make, for the
/// figures that tell the sample types apart (upstream's `type` label).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HistogramCounts {
    pub appended: usize,
    pub appended_out_of_order: usize,
    pub out_of_order: usize,
    pub too_old: usize,
    pub out_of_bounds: usize,
}

impl HistogramCounts {
    fn tally(&mut self, result: Result<Appended, AppendError>) {
        match result {
            Ok(Appended::InOrder) => self.appended += 1,
            Ok(Appended::OutOfOrder) => {
                self.appended += 1;
                self.appended_out_of_order += 1;
            }
            Err(AppendError::OutOfOrder) => self.out_of_order += 1,
            Err(AppendError::TooOld) => self.too_old += 1,
            Err(AppendError::OutOfBounds) => self.out_of_bounds += 1,
            _ => {}
        }
    }
}

impl AppendReply {
    /// Counts an append's outcome.
    fn tally(&mut self, result: Result<Appended, AppendError>) {
        match result {
            Ok(Appended::InOrder) => self.appended += 1,
            Ok(Appended::OutOfOrder) => {
                self.appended += 1;
                self.appended_out_of_order += 1;
            }
            Ok(Appended::Dropped) => {}
            Err(AppendError::OutOfOrder) => self.out_of_order += 1,
            Err(AppendError::Duplicate) => self.duplicates += 1,
            Err(AppendError::OutOfBounds) => self.out_of_bounds += 1,
            Err(AppendError::TooFarInFuture) => self.too_far_in_future += 1,
            Err(AppendError::TooOld) => self.too_old += 1,
            Err(AppendError::BucketLimit) => self.bucket_limit += 1,
            Err(AppendError::InvalidHistogram) => self.invalid_histograms += 1,
            // Counted by the caller, which keeps the sample.
            Err(AppendError::UnknownSeries) => {}
        }
    }

    /// Samples refused (not counting those for unknown series, which the sender resolves).
    pub fn refused(&self) -> usize {
        self.out_of_order
            + self.duplicates
            + self.out_of_bounds
            + self.too_far_in_future
            + self.too_old
            + self.bucket_limit
            + self.invalid_histograms
    }
}

/// Why the storage could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A block could not be read (it is damaged) or written.
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error(transparent)]
    Cut(#[from] CutError),
    /// Appends or deletions are in memory but not durable.
    #[error("cannot write the write-ahead log: {0}")]
    Wal(io::Error),
}

/// `e` with the directory it came from: "Is a directory" alone does not say where to look.
fn naming(dir: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", dir.display()))
}

/// Where a shard keeps its files.
pub struct Dirs {
    pub wal: PathBuf,
    pub blocks: PathBuf,
    /// Scratch space for the head's sealed chunks, emptied at every start.
    pub chunks: PathBuf,
}

impl Dirs {
    /// The directories of shard `index` under the data directory.
    pub fn of_shard(data: &Path, index: usize) -> Dirs {
        let shard = index.to_string();
        Dirs {
            wal: data.join("wal").join(&shard),
            blocks: data.join("blocks").join(&shard),
            chunks: data.join("chunks_head").join(&shard),
        }
    }
}

pub struct Db {
    pub head: Head,
    pub blocks: Blocks,
    wal: Wal,
    /// A head cut is being written.
    cutting: bool,
    /// Admin backups copying the head: a cut must not drop head data under them.
    backups: usize,
    /// Reused between batches: the samples and exemplars the head accepted, and the series it
    /// created.
    accepted: Vec<(u32, i64, f64)>,
    accepted_out_of_order: Vec<(u32, i64, f64)>,
    accepted_histograms: Vec<(u32, i64, Arc<FloatHistogram>)>,
    accepted_out_of_order_histograms: Vec<(u32, i64, Arc<FloatHistogram>)>,
    exemplars: Vec<(u32, Exemplar)>,
    created: Vec<(u32, Labels)>,
    /// Series with a histogram among the accepted samples not logged yet: a float of one of
    /// them must be logged after it, in a record of its own (see [`Db::append_one`]).
    histogram_ids: HashSet<u32>,
}

impl Db {
    fn with(head: Head, blocks: Blocks, wal: Wal) -> Db {
        Db {
            head,
            blocks,
            wal,
            cutting: false,
            backups: 0,
            accepted: Vec::new(),
            accepted_out_of_order: Vec::new(),
            accepted_histograms: Vec::new(),
            accepted_out_of_order_histograms: Vec::new(),
            exemplars: Vec::new(),
            created: Vec::new(),
            histogram_ids: HashSet::new(),
        }
    }

    /// Opens the shard's blocks in `dirs.blocks` (judged against the clock's `now_ms`) and its
    /// log in `dirs.wal`, and replays the log into a new head whose chunks are cut at multiples
    /// of `block_range` and sealed into mapped files in `dirs.chunks`, and which keeps at most
    /// `max_exemplars` exemplars.
    pub fn open(
        dirs: &Dirs,
        options: WalOptions,
        block_range: i64,
        max_exemplars: usize,
        now_ms: i64,
    ) -> io::Result<(Db, Replayed, Opened)> {
        let (blocks, opened) = Blocks::open(&dirs.blocks, now_ms).map_err(|e| naming(&dirs.blocks, e))?;
        let store = ChunkStore::mapped(&dirs.chunks).map_err(|e| naming(&dirs.chunks, e))?;
        let mut head = Head::with_store(block_range, store);
        head.set_exemplar_capacity(max_exemplars);
        if let Some(t) = blocks.max_time() {
            // What the log holds before this is in blocks already; the replay skips it.
            head.set_min_valid(t);
        }
        let (mut wal, replayed) = Wal::open(&dirs.wal, options, &mut head).map_err(|e| naming(&dirs.wal, e))?;
        // Series the log names whose samples are all in blocks now.
        wal.log_forgotten(&head.forget_empty_series()).wait()?;
        Ok((Db::with(head, blocks, wal), replayed, opened))
    }

    /// Opens an agent's storage: its log in `wal` replayed into a head that keeps series only
    /// ([`Head::without_samples`]), and no blocks. Replayed series are kept whether or not
    /// samples followed them: a reader following the log may still need their labels for
    /// segments it has not sent, and [`Db::forget_inactive`] lets them go in time. Exemplars
    /// are checked against the last `max_exemplars` and logged for the readers, as upstream's
    /// agent does.
    pub fn open_agent(wal: &Path, options: WalOptions, max_exemplars: usize) -> io::Result<(Db, Replayed)> {
        let mut head = Head::with_block_range(crate::head::DEFAULT_BLOCK_RANGE).without_samples();
        head.set_exemplar_capacity(max_exemplars);
        let (wal, replayed) = Wal::open(wal, options, &mut head).map_err(|e| naming(wal, e))?;
        let blocks = Blocks::none();
        Ok((Db::with(head, blocks, wal), replayed))
    }

    /// Agent mode's garbage collection: forgets the series whose last sample is older than
    /// `cutoff` (logged, as [`Db::forget_series`]). Returns how many went.
    pub fn forget_inactive(&mut self, cutoff: i64) -> (usize, Logged) {
        let inactive = self.head.inactive_before(cutoff);
        self.forget_series(&inactive)
    }

    /// Finishes the log's current segment if anything was written to it, so that a checkpoint
    /// can let it go (agent mode, where segments fill slowly and blocks never free them); true
    /// if a new segment was started.
    pub fn next_log_segment(&mut self) -> bool {
        self.wal.next_segment()
    }

    /// Whether a reader following the log (a remote-write queue) has not read every finished
    /// segment yet.
    pub fn log_held_behind(&self) -> bool {
        self.wal.held_behind()
    }

    /// Lets the log's segments go that only readers following it hold, once written before
    /// `cutoff` (agent mode's `--storage.agent.retention.max-time`); returns how many went.
    pub fn release_held_log(&mut self, cutoff: i64) -> io::Result<usize> {
        self.wal.release_held(cutoff, None)
    }

    /// The start of the oldest block, if any (what upstream's `readyStorage.StartTime` builds on).
    pub fn oldest_block_start(&self) -> Option<i64> {
        self.blocks.list().iter().map(|b| b.meta().min_time).min()
    }

    /// Blocks and head, read as one.
    pub fn querier(&self) -> Querier<'_> {
        Querier { blocks: self.blocks.list(), head: &self.head }
    }

    /// The work the head's oldest data needs, once the head spans more than one and a half
    /// block ranges (upstream's rule: the newest half range stays for late samples): its oldest
    /// range written as a block, or dropped in one step if it ends before `retention_cutoff`
    /// (a block that retention would delete at once; a backfill of one sample every two hours
    /// over eleven years would otherwise cut 32,000 blocks).
    pub fn due_cut(&self, range: i64, retention_cutoff: i64) -> Option<Due> {
        let (min, max) = self.head.time_range()?;
        // Saturating: the head may hold samples at any i64 time (an old one at i64::MIN).
        if max.saturating_sub(min) <= range / 2 * 3 {
            return None;
        }
        let start = min.div_euclid(range).saturating_mul(range);
        let end = start.saturating_add(range);
        if end <= retention_cutoff {
            return Some(Due::Drop { before: retention_cutoff.div_euclid(range).saturating_mul(range).max(end) });
        }
        Some(Due::Cut { start, end })
    }

    /// Lets the head's data before `t` go (it is in blocks, or past retention); the series
    /// left without samples are listed for [`Db::forget_series`].
    pub fn forget_before(&mut self, t: i64) -> Truncated {
        self.head.set_min_valid(t);
        self.head.truncate_before(t)
    }

    /// Forgets those of `ids` that still have no samples (upstream's head garbage collection)
    /// and logs which went, for readers following the log. Returns how many went, and when
    /// that is logged (if the write fails, the record waits for the log's next write).
    pub fn forget_series(&mut self, ids: &[u32]) -> (usize, Logged) {
        let forgotten = self.head.forget(ids);
        let logged = self.wal.log_forgotten(&forgotten);
        (forgotten.len(), logged)
    }

    /// Makes `followers` what this shard's log shares with the readers following it (the
    /// remote-write sender): the segments they hold on to, and the newest sample time logged.
    pub fn set_log_followers(&mut self, followers: LogFollowers) {
        self.wal.set_followers(followers);
    }

    /// Starts writing `[start, end)` of the head as a block: appends before `end` are refused
    /// from now on; queries read the range from the head until [`Db::install_cut`]. None if
    /// the head has no data there.
    pub fn begin_cut(&mut self, start: i64, end: i64, now_ms: i64) -> Result<Option<HeadCut>, CutError> {
        self.head.freeze_before(end);
        let cut = HeadCut::begin(self.blocks.dir(), &self.head, start, end, now_ms)?;
        self.cutting = cut.is_some();
        Ok(cut)
    }

    /// Gives up a cut whose block could not be written; the head keeps the data.
    pub fn abandon_cut(&mut self) {
        self.cutting = false;
    }

    /// Serves the block a cut wrote (if it had data) and lets the head's data before `end` go.
    pub fn install_cut(&mut self, written: Option<Block>, end: i64) -> Truncated {
        self.cutting = false;
        if let Some(block) = written {
            self.blocks.add_cut(block);
        }
        self.forget_before(end)
    }

    /// A cut or a compaction is writing from the head or the blocks: a deletion must wait.
    pub fn writing_blocks(&self) -> bool {
        self.cutting || self.blocks.compacting()
    }

    /// Starts a checkpoint that lets the log's segments older than `cutoff` go, if any can
    /// ([`Db::log_cutoff`]).
    pub fn begin_checkpoint(&mut self, cutoff: i64) -> io::Result<Option<LogWrite>> {
        self.wal.begin_checkpoint(self.log_cutoff(cutoff), &self.head)
    }

    /// Starts a head snapshot covering the log so far.
    pub fn begin_snapshot(&mut self) -> io::Result<LogWrite> {
        self.wal.begin_snapshot(&self.head)
    }

    /// Takes a written checkpoint or snapshot in place; returns the log segments it let go.
    pub fn complete_log_write(&mut self, written: LogWritten) -> io::Result<usize> {
        self.wal.complete(written, &self.head)
    }

    /// Cuts every block that is due, at most [`MAX_CUTS_PER_PASS`], in one go (a shard does
    /// the same steps a slice at a time). Returns the blocks written.
    pub fn cut_blocks(&mut self, range: i64, now_ms: i64, retention_cutoff: i64) -> Result<Cut, CutError> {
        let mut cut = Cut::default();
        for _ in 0..MAX_CUTS_PER_PASS {
            let forgotten = match self.due_cut(range, retention_cutoff) {
                None => break,
                Some(Due::Drop { before }) => (self.forget_before(before), before),
                Some(Due::Cut { start, end }) => {
                    let written = match self.begin_cut(start, end, now_ms)? {
                        Some(mut job) => {
                            job.write(&self.head, usize::MAX)?;
                            let (meta, path) = job.finish()?;
                            cut.blocks.push(meta);
                            Some(Block::open(&path)?)
                        }
                        None => None,
                    };
                    (self.install_cut(written, end), end)
                }
            };
            let (removed, logged) = self.forget_series(&forgotten.0.emptied);
            cut.series_removed += removed;
            logged.wait()?;
            let flushed = self.flush_out_of_order(now_ms)?;
            cut.blocks.extend(flushed.blocks);
            let (removed, logged) = self.forget_series(&flushed.emptied);
            cut.series_removed += removed;
            logged.wait()?;
            self.wal.drop_before(self.log_cutoff(forgotten.1), &self.head)?;
        }
        Ok(cut)
    }

    /// Writes the head's out-of-order samples from before `min_valid` (their range's in-order
    /// data is in a block now) to blocks of their own, one per block range they fall in, and
    /// lets them go. The blocks overlap in-order ones; queries merge them, and compaction
    /// folds them in. Done in one go on the caller's thread: out-of-order data is expected to
    /// be a small part of the head.
    pub fn flush_out_of_order(&mut self, now_ms: i64) -> Result<Flushed, CutError> {
        let floor = self.head.min_valid();
        let apart = self.head.out_of_order().before(floor);
        let mut flushed = Flushed::default();
        if apart.is_empty() {
            return Ok(flushed);
        }
        let range = self.head.block_range();
        // Each series' chunks, cut where block ranges end, by range, then by series.
        let block_of = |t: i64| t.div_euclid(range);
        let mut by_range: BTreeMap<i64, BTreeMap<u32, Vec<BlockChunk>>> = BTreeMap::new();
        for (id, samples) in &apart {
            for run in samples.floats.chunk_by(|a, b| block_of(a.0) == block_of(b.0)) {
                let chunks = by_range.entry(block_of(run[0].0)).or_default().entry(*id).or_default();
                chunks.extend(BlockChunk::pack(run));
            }
            for run in samples.histograms.chunk_by(|a, b| block_of(a.0) == block_of(b.0)) {
                let chunks = by_range.entry(block_of(run[0].0)).or_default().entry(*id).or_default();
                chunks.extend(BlockChunk::pack_histograms(run));
            }
        }
        let symbols = self.head.symbol_table();
        for (n, series) in by_range {
            let ulid = crate::block::new_ulid(now_ms);
            let mut writer = BlockWriter::create(self.blocks.dir(), ulid.clone())?;
            for (id, mut chunks) in series {
                if let Some(labels) = self.head.label_ids(id) {
                    chunks.sort_by_key(|c| c.min_t);
                    writer.add(labels, &chunks)?;
                }
            }
            let compaction = Compaction { level: 1, sources: vec![ulid], parents: vec![] };
            // Not past the floor: a start takes the newest block's end as the head's start.
            let start = n.saturating_mul(range);
            let (meta, path) = writer.finish(&symbols, start, start.saturating_add(range).min(floor), compaction)?;
            self.blocks.add_cut(Block::open(&path)?);
            flushed.blocks.push(meta);
        }
        flushed.emptied = self.head.drop_out_of_order_before(floor);
        flushed.logged = self.wal.log_out_of_order_written(floor);
        Ok(flushed)
    }

    /// How far the log may be let go for a block cut or retention at `cutoff`: not past an
    /// out-of-order sample the head still holds, which only the log keeps durable.
    fn log_cutoff(&self, cutoff: i64) -> i64 {
        cutoff.min(self.head.out_of_order().min_time().unwrap_or(i64::MAX))
    }

    /// Deletes the samples of matching series in `[mint, maxt]`: tombstones in the blocks,
    /// re-encoded chunks in the head, and a log record so that a replay deletes them again
    /// (returned: the deletion is durable once it is logged).
    pub fn delete(&mut self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Logged, StorageError> {
        self.blocks.delete(matchers, mint, maxt)?;
        let ids = self.head.delete(matchers, mint, maxt);
        let records: Vec<(u32, i64, i64)> = ids.into_iter().map(|id| (id, mint, maxt)).collect();
        Ok(self.wal.log_deletions(&records))
    }

    /// Starts a copy of the shard's data in `dir` for a backup (the admin snapshot): its
    /// blocks hard-linked now, and unless `skip_head`, the head's whole range as one more block,
    /// returned to be written like a cut (appends go on meanwhile; what each series holds when
    /// its slice is written is what the copy gets).
    /// Until [`Db::end_backup`], [`Db::backing_up`] holds cuts back from installing (which drops
    /// the head's data that the copy may not have reached).
    pub fn begin_backup(&mut self, dir: &Path, skip_head: bool, now_ms: i64) -> Result<Option<HeadCut>, CutError> {
        fs::create_dir_all(dir)?;
        for block in self.blocks.list() {
            let target = dir.join(&block.meta().ulid);
            fs::create_dir_all(&target)?;
            for file in fs::read_dir(block.dir())? {
                let file = file?;
                fs::hard_link(file.path(), target.join(file.file_name()))?;
            }
        }
        let cut = match (skip_head, self.head.time_range()) {
            (false, Some((min, max))) => HeadCut::begin(dir, &self.head, min, max.saturating_add(1), now_ms)?,
            _ => None,
        };
        self.backups += usize::from(cut.is_some());
        Ok(cut)
    }

    /// A backup begun with a head copy is done (or failed).
    pub fn end_backup(&mut self) {
        self.backups = self.backups.saturating_sub(1);
    }

    /// A backup is copying the head.
    pub fn backing_up(&self) -> bool {
        self.backups > 0
    }

    /// Bytes the log and the blocks take on disk.
    pub fn disk_bytes(&self) -> io::Result<u64> {
        Ok(self.wal.disk_bytes()? + self.blocks.size())
    }

    fn series_id(&mut self, labels: &Labels) -> u32 {
        let (id, created) = self.head.get_or_create(labels);
        if created {
            self.created.push((id, labels.clone()));
        }
        id
    }

    fn append_one(&mut self, reply: &mut AppendReply, id: u32, t: i64, v: f64) {
        let result = self.head.append(id, t, v);
        // A log record lists floats before histograms, and a replay appends them in that order.
        // A float that came after a histogram of its series is logged after it, as upstream's
        // appender starts a new batch when a series changes type: else the replay would take the
        // newer float first and refuse the older histogram.
        if matches!(result, Ok(Appended::InOrder | Appended::OutOfOrder))
            && !self.histogram_ids.is_empty()
            && self.histogram_ids.contains(&id)
        {
            // The batch's last write answers for this one too: the log writes in order.
            drop(self.log_pending(reply));
        }
        match result {
            Err(AppendError::UnknownSeries) => reply.unknown.push((id, t, v)),
            Ok(Appended::InOrder) => self.accepted.push((id, t, v)),
            Ok(Appended::OutOfOrder) => self.accepted_out_of_order.push((id, t, v)),
            _ => {}
        }
        reply.tally(result);
    }

    fn append_histogram(&mut self, reply: &mut AppendReply, id: u32, sample: HistogramSample) {
        let result = self.head.append_histogram(id, sample.t, (*sample.h).clone());
        if matches!(result, Ok(Appended::InOrder | Appended::OutOfOrder)) {
            self.histogram_ids.insert(id);
        }
        match result {
            Ok(Appended::InOrder) => self.accepted_histograms.push((id, sample.t, sample.h)),
            Ok(Appended::OutOfOrder) => self.accepted_out_of_order_histograms.push((id, sample.t, sample.h)),
            Err(AppendError::UnknownSeries) => reply.unknown_histograms.push((id, sample)),
            Ok(Appended::Dropped) | Err(_) => {}
        }
        reply.tally(result);
        reply.histograms.tally(result);
    }

    /// Keeps `e` for series `id` if the head takes it.
    fn add_exemplar(&mut self, reply: &mut AppendReply, id: u32, e: Exemplar) {
        match self.head.add_exemplar(id, &e) {
            Ok(()) => {
                reply.exemplars += 1;
                self.exemplars.push((id, e));
            }
            Err(ExemplarError::OutOfOrder) => reply.exemplars_out_of_order += 1,
            Err(_) => {}
        }
    }

    /// Logs what the batch created and accepted since the last time, and forgets it.
    fn log_pending(&mut self, reply: &mut AppendReply) -> Logged {
        let created: Vec<(u32, &Labels)> = self.created.iter().map(|(id, l)| (*id, l)).collect();
        let (histograms, out_of_order_histograms) =
            (borrowed(&self.accepted_histograms), borrowed(&self.accepted_out_of_order_histograms));
        let batch = Batch {
            new_series: &created,
            samples: &self.accepted,
            out_of_order: &self.accepted_out_of_order,
            histograms: &histograms,
            out_of_order_histograms: &out_of_order_histograms,
            exemplars: &self.exemplars,
        };
        let logged = self.wal.log(&batch);
        self.accepted.clear();
        self.accepted_out_of_order.clear();
        self.accepted_histograms.clear();
        self.accepted_out_of_order_histograms.clear();
        self.exemplars.clear();
        self.histogram_ids.clear();
        reply.created += self.created.len();
        self.created.clear();
        logged
    }

    /// A batch's answer while the log cannot write what an earlier write left (the disk is
    /// still full), or has fallen [`LOG_BACKLOG_MOST`] behind a disk that does not answer:
    /// refused whole, the head left as it is, so that what waits in memory for the log is
    /// bounded, not every batch until the disk comes back (upstream rolls a batch back).
    fn held_back(&self) -> Option<(AppendReply, Logged)> {
        let behind = self.wal.backlog();
        let e = self.wal.failing().or_else(|| {
            let mib = behind >> 20;
            (behind > LOG_BACKLOG_MOST)
                .then(|| io::Error::other(format!("{mib} MiB wait for a disk that does not answer")))
        })?;
        Some((AppendReply { storage_error: Some(StorageError::Wal(e)), ..AppendReply::default() }, Logged::default()))
    }

    /// Appends a scrape batch; the answer holds once it is logged.
    pub fn append(&mut self, batch: ShardBatch) -> (AppendReply, Logged) {
        if let Some(refused) = self.held_back() {
            return refused;
        }
        let mut reply = AppendReply::default();
        for (labels, t, v) in batch.new {
            let id = self.series_id(&labels);
            self.append_one(&mut reply, id, t, v);
            reply.ids.push(id);
        }
        let floats = reply.ids.len();
        for (labels, sample) in batch.new_histograms {
            let id = self.series_id(&labels);
            self.append_histogram(&mut reply, id, sample);
            reply.ids.push(id);
        }
        // Known series after the new ones: their staleness markers go last, as upstream appends
        // them. A series the target wrote another way this time (labels reordered, text after
        // protobuf) is new under its new text and stale under its old, at the same time: its
        // sample is kept and the marker refused as a duplicate, not the other way round.
        for (id, t, v) in batch.known {
            self.append_one(&mut reply, id, t, v);
        }
        for (id, sample) in batch.known_histograms {
            self.append_histogram(&mut reply, id, sample);
        }
        for (series, e) in batch.exemplars {
            let id = match series {
                BatchSeries::Known(id) => Some(id),
                BatchSeries::New(i) => reply.ids.get(i).copied(),
                BatchSeries::NewHistogram(i) => reply.ids.get(floats + i).copied(),
            };
            if let Some(id) = id {
                self.add_exemplar(&mut reply, id, e);
            }
        }
        let logged = self.log_pending(&mut reply);
        (reply, logged)
    }

    /// Appends remote-written series; the answer holds once it is logged.
    pub fn write(&mut self, series: Vec<WriteSeries>) -> (AppendReply, Logged) {
        if let Some(refused) = self.held_back() {
            return refused;
        }
        let mut reply = AppendReply::default();
        for ws in series {
            // Exemplars alone do not make a series (upstream refuses them for unknown series).
            let id = match ws.samples.is_empty() && ws.histograms.is_empty() {
                true => self.head.id_of(&ws.labels),
                false => Some(self.series_id(&ws.labels)),
            };
            let Some(id) = id else { continue };
            for x in ws.samples {
                self.append_one(&mut reply, id, x.t, x.v);
            }
            for x in ws.histograms {
                self.append_histogram(&mut reply, id, x);
            }
            for e in ws.exemplars {
                self.add_exemplar(&mut reply, id, e);
            }
        }
        let logged = self.log_pending(&mut reply);
        (reply, logged)
    }

    /// Makes everything logged so far durable.
    pub fn sync(&mut self) -> Logged {
        self.wal.sync()
    }

    /// Writes the head as a snapshot, so that the next start loads it and
    /// replays only what is logged after it.
    pub fn snapshot(&mut self) -> io::Result<()> {
        self.wal.snapshot(&self.head)
    }

    /// Applies retention: blocks entirely older than `cutoff` go, then, while the data on disk
    /// is over `budget` bytes, the oldest blocks, and the head drops what is older than the
    /// cutoff. As upstream, the size budget deletes only blocks: the log counts towards it, but
    /// the head's data inside the time limit stays even when the log alone is over it (cutting
    /// the head by the log's oldest segments dropped acknowledged samples, and a restart brought
    /// back some of them from the segments left: red team Q). The log's segments before
    /// [`Retained::log_cutoff`] can then go (a checkpoint). Segments kept only for a remote-write
    /// queue go once last written before `held_cutoff` or `cutoff`, whichever is later, or to
    /// keep the log within what the budget leaves it.
    pub fn apply_retention(&mut self, cutoff: i64, held_cutoff: i64, budget: Option<u64>) -> io::Result<Retained> {
        let mut r = Retained { blocks_by_time: self.blocks.delete_before(cutoff)?, ..Retained::default() };
        let log_budget = budget.map(|b| b.saturating_sub(self.blocks.size()));
        r.held_segments = self.wal.release_held(cutoff.max(held_cutoff), log_budget)?;
        if let Some(budget) = budget {
            while self.disk_bytes()? > budget && self.blocks.delete_oldest()? {
                r.blocks_by_size += 1;
            }
        }
        let mut truncated = self.head.truncate_before(cutoff);
        if self.head.out_of_order().min_time().is_some_and(|t| t < cutoff) {
            truncated.emptied.extend(self.head.drop_out_of_order_before(cutoff));
            // As for those written to blocks: a replay must not bring them back.
            r.logged = self.wal.log_out_of_order_written(cutoff);
        }
        (r.chunks, r.emptied, r.log_cutoff) = (truncated.chunks, truncated.emptied, cutoff);
        Ok(r)
    }
}

/// What a retention pass deleted.
#[derive(Debug, Default)]
pub struct Retained {
    pub blocks_by_time: usize,
    pub blocks_by_size: usize,
    /// Log segments deleted that were kept only for the remote-write sender.
    pub held_segments: usize,
    pub chunks: usize,
    /// Series left without samples, for [`Db::forget_series`].
    pub emptied: Vec<u32>,
    /// The log's segments whose samples are all older than this are no longer needed.
    pub log_cutoff: i64,
    /// When the log says that out-of-order samples past retention went, if they did (until
    /// then, a replay would bring them back until the next pass).
    pub logged: Logged,
}

/// Accepted histograms as the log's batch takes them.
fn borrowed(accepted: &[(u32, i64, Arc<FloatHistogram>)]) -> Vec<(u32, i64, &FloatHistogram)> {
    accepted.iter().map(|(id, t, h)| (*id, *t, &**h)).collect()
}

/// What [`Db::flush_out_of_order`] wrote.
#[derive(Debug, Default)]
pub struct Flushed {
    pub blocks: Vec<BlockMeta>,
    /// Series left without samples, for [`Db::forget_series`].
    pub emptied: Vec<u32>,
    /// When the log says so (until then, a replay would write them again).
    pub logged: Logged,
}

/// What the head's oldest data needs ([`Db::due_cut`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Write `[start, end)` as a block.
    Cut { start: i64, end: i64 },
    /// Let everything before `before` go: it is past retention.
    Drop { before: i64 },
}

/// What a pass of [`Db::cut_blocks`] did.
#[derive(Debug, Default)]
pub struct Cut {
    pub blocks: Vec<BlockMeta>,
    /// Series the head forgot: all their samples are in blocks (or past retention).
    pub series_removed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::compact_paths;
    use pyrite_core::histogram::{CounterResetHint, Span};
    use pyrite_core::labels::MatchOp;
    use pyrite_core::value::Sample;

    const RANGE: i64 = 10_000;
    const OPTIONS: WalOptions = WalOptions { compress: true, segment_size: 256 };

    fn dirs(tag: &str) -> Dirs {
        let dir = std::env::temp_dir().join(format!("pyrite-db-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Dirs::of_shard(&dir, 0)
    }

    /// An append's answer, once it is logged.
    fn acked((reply, logged): (AppendReply, Logged)) -> AppendReply {
        logged.wait().expect("logged");
        reply
    }

    fn open(dirs: &Dirs) -> Db {
        Db::open(dirs, OPTIONS, RANGE, 0, i64::MAX).unwrap().0
    }

    /// Twenty pods of generation `gen` and ten steady series, one sample a second in
    /// `[from, to)`.
    fn write(db: &mut Db, gen: usize, from: i64, to: i64) {
        let series = |name: &str, value: String| Labels::from_pairs([("__name__", name.to_string()), ("x", value)]);
        // Pods first: the steady series' ids are not the smallest.
        let pods = (0..20).map(|i| series("pod", format!("{gen}-{i}")));
        let names = pods.chain((0..10).map(|i| series("steady", i.to_string())));
        let samples: Vec<Sample> = (from / 1000..to / 1000).map(|s| Sample { t: s * 1000, v: s as f64 }).collect();
        let reply = acked(
            db.write(
                names
                    .map(|labels| WriteSeries {
                        labels,
                        samples: samples.clone(),
                        exemplars: Vec::new(),
                        histograms: Vec::new(),
                    })
                    .collect(),
            ),
        );
        assert_eq!(reply.appended, 30 * samples.len());
    }

    fn count(db: &Db, name: &str) -> (usize, usize) {
        let m = Matcher::new("__name__", MatchOp::Equal, name).unwrap();
        let all = db.querier().select(&[m], i64::MIN, i64::MAX).unwrap();
        (all.len(), all.iter().map(|s| s.samples.len()).sum())
    }

    #[test]
    fn an_agent_keeps_series_only_forgets_idle_ones_and_keeps_replayed_ones() {
        let dirs = dirs("agent");
        // Segments end when the test says.
        let options = WalOptions { compress: true, segment_size: 1 << 20 };
        let mut db = Db::open_agent(&dirs.wal, options, 0).unwrap().0;
        write(&mut db, 0, 0, 2_000);
        assert_eq!((db.head.num_series(), db.head.num_chunks()), (30, 0), "series, no chunks");
        assert_eq!(count(&db, "steady"), (0, 0), "nothing to query");
        let up = |t: i64, v: f64| {
            let labels = Labels::from_pairs([("__name__", "steady"), ("x", "0")]);
            vec![WriteSeries { labels, samples: vec![Sample { t, v }], exemplars: Vec::new(), histograms: Vec::new() }]
        };
        assert_eq!(acked(db.write(up(0, 1.0))).out_of_order, 1, "order is still checked");
        assert_eq!(acked(db.write(up(1_000, 9.0))).duplicates, 1);
        assert!(db.next_log_segment());
        write(&mut db, 0, 2_000, 5_000);
        drop(db);
        // A restart keeps every replayed series, though none has a chunk.
        let mut db = Db::open_agent(&dirs.wal, options, 0).unwrap().0;
        assert_eq!(db.head.num_series(), 30);
        write(&mut db, 1, 5_000, 8_000);
        // The first generation's pods were last appended at 4 s.
        let (forgotten, logged) = db.forget_inactive(5_000);
        logged.wait().unwrap();
        assert_eq!((forgotten, db.head.num_series()), (20, 30));
        // The log is truncated: the first segment goes; the second, kept, still holds the
        // forgotten pods' samples, which a replay passes over without calling them damage.
        assert!(db.next_log_segment());
        assert_eq!(db.wal.drop_before(2_000, &db.head).unwrap(), 1);
        drop(db);
        let (db, replayed) = Db::open_agent(&dirs.wal, options, 0).unwrap();
        assert_eq!((db.head.num_series(), replayed.orphaned), (30, 0));
        let _ = fs::remove_dir_all(dirs.wal.parent().unwrap().parent().unwrap());
    }

    #[test]
    fn out_of_order_samples_survive_restarts_and_move_to_blocks_of_their_own() {
        let dirs = dirs("ooo");
        let mut db = open(&dirs);
        write(&mut db, 0, 0, 3 * RANGE);
        let steady = Labels::from_pairs([("__name__", "steady"), ("x", "0")]);
        let late = |db: &mut Db, t: i64, v: f64| {
            acked(db.write(vec![WriteSeries {
                labels: steady.clone(),
                samples: vec![Sample { t, v }],
                exemplars: Vec::new(),
                histograms: Vec::new(),
            }]))
        };
        assert_eq!(late(&mut db, 9_500, -1.0).out_of_order, 1, "no window: refused");
        // The newest sample is at 29 s: a window of 20 s reaches back to 9 s.
        db.head.set_out_of_order_window(2 * RANGE);
        let r = late(&mut db, 9_500, -1.0);
        assert_eq!((r.appended, r.appended_out_of_order), (1, 1));
        assert_eq!(late(&mut db, 8_500, -1.0).too_old, 1);
        let again = late(&mut db, 9_500, -9.0);
        assert_eq!((again.appended, again.refused()), (0, 0), "a time held apart already is dropped");
        assert_eq!(late(&mut db, 10_000, -2.0).appended_out_of_order, 1, "in-order times are not checked");
        let read = |db: &Db| {
            let m = Matcher::new("x", MatchOp::Equal, "0").unwrap();
            let got = db.querier().select(&[Matcher::new("__name__", MatchOp::Equal, "steady").unwrap(), m], 0, 40_000);
            got.unwrap().remove(0).samples
        };
        let samples = read(&db);
        assert_eq!(samples.len(), 31);
        assert!(samples.windows(2).all(|w| w[0].t < w[1].t));
        assert_eq!(samples[10], Sample { t: 9_500, v: -1.0 });
        assert_eq!(samples[11], Sample { t: 10_000, v: 10.0 }, "the in-order sample is read");
        // The log brings them back as out-of-order samples, whatever the window is then.
        drop(db);
        let mut db = open(&dirs);
        assert_eq!(read(&db), samples);
        assert_eq!(db.head.out_of_order().num_samples(), 2);
        // So does a snapshot.
        db.snapshot().unwrap();
        drop(db);
        let mut db = open(&dirs);
        assert_eq!(read(&db), samples);
        // Two ranges are cut; the out-of-order samples before the head's new start go to blocks
        // of their own, overlapping the in-order ones.
        let cut = db.cut_blocks(RANGE, 0, i64::MIN).unwrap();
        assert_eq!(cut.blocks.len(), 4);
        assert!(db.head.out_of_order().is_empty());
        assert_eq!(read(&db).len(), 31);
        assert_eq!(db.blocks.plan(&[RANGE, 3 * RANGE]).map(|g| g.len()), Some(2), "overlapping blocks merge first");
        drop(db);
        // The snapshot still holds them, but the log says they went to blocks.
        let db = open(&dirs);
        assert!(db.head.out_of_order().is_empty(), "not brought back to be written again");
        assert_eq!(read(&db).len(), 31);
        let _ = fs::remove_dir_all(dirs.wal.parent().unwrap().parent().unwrap());
    }

    #[test]
    fn out_of_order_samples_past_retention_stay_gone_after_a_restart() {
        let dirs = dirs("ooo-retention");
        let mut db = open(&dirs);
        write(&mut db, 0, 0, 3 * RANGE);
        db.head.set_out_of_order_window(2 * RANGE);
        let labels = Labels::from_pairs([("__name__", "steady"), ("x", "0")]);
        let late = WriteSeries {
            labels,
            samples: vec![Sample { t: 9_500, v: -1.0 }],
            exemplars: Vec::new(),
            histograms: Vec::new(),
        };
        assert_eq!(acked(db.write(vec![late])).appended_out_of_order, 1);
        let r = db.apply_retention(RANGE, RANGE, None).unwrap();
        r.logged.wait().unwrap();
        assert!(db.head.out_of_order().is_empty());
        drop(db);
        // Without a record of their going, the log's replay would bring them back.
        let db = open(&dirs);
        assert!(db.head.out_of_order().is_empty(), "past retention, not brought back");
        let _ = fs::remove_dir_all(dirs.wal.parent().unwrap().parent().unwrap());
    }

    /// A size budget the log alone is over deletes no head data, live or after a replay, as
    /// upstream's size retention deletes only blocks (red team Q: the head was cut by the log's
    /// oldest segments, and a restart brought some of the samples back).
    #[test]
    fn a_log_over_the_size_budget_keeps_the_heads_samples() {
        let dirs = dirs("size-budget");
        let mut db = open(&dirs);
        for k in 0..4 {
            write(&mut db, 0, k * 2_000, (k + 1) * 2_000);
            assert!(db.next_log_segment());
        }
        let before = (count(&db, "pod"), count(&db, "steady"));
        assert!(db.disk_bytes().unwrap() > 1, "the log is over a budget of 1 byte");
        let r = db.apply_retention(i64::MIN, i64::MIN, Some(1)).unwrap();
        assert_eq!((r.blocks_by_size, r.log_cutoff), (0, i64::MIN));
        assert_eq!((count(&db, "pod"), count(&db, "steady")), before, "live");
        drop(db);
        let db = open(&dirs);
        assert_eq!((count(&db, "pod"), count(&db, "steady")), before, "replayed");
        let _ = fs::remove_dir_all(dirs.wal.parent().unwrap().parent().unwrap());
    }

    /// A counter histogram one sample a second in `[from, to)`: it gains a bucket every 7 s, it is
    /// reset at 25 s, and its counts are not all integers after 12 s.
    fn histogram(k: i64) -> FloatHistogram {
        let n = if k >= 25 { (k - 25) as f64 } else { k as f64 };
        let fraction = if k > 12 { 0.25 } else { 0.0 };
        FloatHistogram {
            schema: 1,
            zero_threshold: 0.001,
            zero_count: n,
            count: 4.0 * n + fraction,
            sum: 1.5 * n,
            positive_spans: vec![Span { offset: 0, length: 2 + (k / 7) as u32 }],
            positive_buckets: [n, 2.0 * n + fraction]
                .into_iter()
                .chain(std::iter::repeat_n(0.0, (k / 7) as usize))
                .collect(),
            ..FloatHistogram::default()
        }
    }

    fn histogram_series(from: i64, to: i64) -> WriteSeries {
        let samples = (from / 1000..to / 1000).map(|k| HistogramSample { t: k * 1000, h: Arc::new(histogram(k)) });
        WriteSeries {
            labels: Labels::from_pairs([("__name__", "latency")]),
            samples: Vec::new(),
            exemplars: Vec::new(),
            histograms: samples.collect(),
        }
    }

    /// The histogram samples of `latency` as (time, count, hint).
    fn histograms(db: &Db) -> Vec<(i64, FloatHistogram)> {
        let m = Matcher::new("__name__", MatchOp::Equal, "latency").unwrap();
        let got = db.querier().select(&[m], i64::MIN, i64::MAX).unwrap();
        got.into_iter().flat_map(|s| s.histograms).map(|x| (x.t, (*x.h).clone())).collect()
    }

    #[test]
    fn histograms_survive_the_log_snapshots_blocks_deletion_and_compaction() {
        let dirs = dirs("histograms");
        let mut db = open(&dirs);
        let reply = acked(db.write(vec![histogram_series(0, 3 * RANGE)]));
        assert_eq!((reply.appended, reply.refused()), (30, 0));
        write(&mut db, 0, 0, 3 * RANGE);
        // The head found the hints: none for the first, a reset at 25 s, none otherwise.
        let expected: Vec<(i64, FloatHistogram)> = (0..30)
            .map(|k| {
                let hint = match k {
                    0 => CounterResetHint::Unknown,
                    25 => CounterResetHint::CounterReset,
                    _ => CounterResetHint::NotCounterReset,
                };
                (k * 1000, FloatHistogram { counter_reset_hint: hint, ..histogram(k) })
            })
            .collect();
        assert_eq!(histograms(&db), expected);
        let late = acked(db.write(vec![histogram_series(1000, 2000)]));
        assert_eq!(late.out_of_order, 1, "histograms are refused out of order");
        // Replayed from the log, then loaded from a snapshot.
        drop(db);
        let mut db = open(&dirs);
        assert_eq!(histograms(&db), expected);
        db.snapshot().unwrap();
        drop(db);
        let mut db = open(&dirs);
        assert_eq!(histograms(&db), expected);
        assert_eq!(
            acked(db.write(vec![histogram_series(30_000, 31_000)])).appended,
            1,
            "appends go on after a snapshot"
        );
        // Two ranges go to blocks, one histogram chunk each.
        let cut = db.cut_blocks(RANGE, 0, i64::MIN).unwrap();
        assert_eq!(cut.blocks.len(), 2);
        assert!(cut.blocks.iter().all(|b| b.stats.num_samples == 10 + 300 && b.stats.num_chunks == 1 + 30));
        let mut expected = expected;
        expected
            .push((30_000, FloatHistogram { counter_reset_hint: CounterResetHint::NotCounterReset, ..histogram(30) }));
        assert_eq!(histograms(&db), expected);
        // A deletion in a block, then the blocks merged with it applied.
        let m = Matcher::new("__name__", MatchOp::Equal, "latency").unwrap();
        db.delete(&[m], 3_000, 4_000).unwrap().wait().unwrap();
        expected.retain(|(t, _)| !(3_000..=4_000).contains(t));
        assert_eq!(histograms(&db), expected);
        let inputs = db.blocks.plan(&[RANGE, 2 * RANGE]).expect("two blocks make a compaction");
        let (_, merged) = compact_paths(db.blocks.dir(), &inputs, crate::block::new_ulid(1)).unwrap();
        db.blocks.install(Block::open(&merged).unwrap(), &inputs).unwrap();
        assert_eq!(db.blocks.list().len(), 1);
        assert_eq!(histograms(&db), expected);
        drop(db);
        let db = open(&dirs);
        assert_eq!(histograms(&db), expected);
        let _ = fs::remove_dir_all(dirs.wal.parent().unwrap().parent().unwrap());
    }

    #[test]
    fn out_of_order_histograms_are_kept_apart_survive_restarts_and_move_to_blocks() {
        let dirs = dirs("ooo-histograms");
        let mut db = open(&dirs);
        let at = |ks: &mut dyn Iterator<Item = i64>| {
            let mut series = histogram_series(0, 0);
            series.histograms = ks.map(|k| HistogramSample { t: k * 1000, h: Arc::new(histogram(k)) }).collect();
            vec![series]
        };
        assert_eq!(acked(db.write(at(&mut (0..30).step_by(2)))).appended, 15);
        assert_eq!(acked(db.write(at(&mut [13].into_iter()))).out_of_order, 1, "no window: refused");
        // The newest sample is at 28 s: a window of 20 s reaches back to 8 s.
        db.head.set_out_of_order_window(2 * RANGE);
        let r = acked(db.write(at(&mut (0..10).rev().map(|i| 9 + 2 * i))));
        assert_eq!((r.appended, r.histograms.appended, r.appended_out_of_order), (10, 10, 10));
        assert_eq!(acked(db.write(at(&mut [7].into_iter()))).too_old, 1);
        let again = acked(db.write(at(&mut [13].into_iter())));
        assert_eq!((again.appended, again.refused()), (1, 0), "the same histogram again is a retry");
        let other = acked(db.write(vec![WriteSeries {
            histograms: vec![HistogramSample { t: 15_000, h: Arc::new(histogram(1)) }],
            ..histogram_series(0, 0)
        }]));
        assert_eq!((other.appended, other.refused()), (0, 0), "another at a time held apart is dropped");
        // Every time once, in order; those taken out of order with no hint (found when read).
        let read = |db: &Db| -> Vec<(i64, f64, CounterResetHint)> {
            histograms(db).into_iter().map(|(t, h)| (t, h.count, h.counter_reset_hint)).collect()
        };
        let expected = read(&db);
        let times: Vec<i64> = (0..30).filter(|k| k % 2 == 0 || (9..=27).contains(k)).map(|k| k * 1000).collect();
        assert_eq!(expected.iter().map(|s| s.0).collect::<Vec<_>>(), times);
        assert!(expected.iter().all(|&(t, count, hint)| count == histogram(t / 1000).count
            && (t % 2000 == 0 || hint == CounterResetHint::Unknown)));
        // The log brings them back apart, and so does a snapshot.
        drop(db);
        let mut db = open(&dirs);
        assert_eq!((read(&db), db.head.out_of_order().num_samples()), (expected.clone(), 10));
        db.snapshot().unwrap();
        drop(db);
        let mut db = open(&dirs);
        assert_eq!(read(&db), expected);
        // Cut: the out-of-order histograms before the head's new start go to blocks of their
        // own, which compaction merges with the in-order ones.
        let cut = db.cut_blocks(RANGE, 0, i64::MIN).unwrap();
        assert_eq!(cut.blocks.len(), 4);
        assert_eq!(db.head.out_of_order().num_samples(), 4, "21 s to 27 s stay in the head");
        assert_eq!(read(&db), expected);
        let inputs = db.blocks.plan(&[RANGE, 3 * RANGE]).expect("overlapping blocks merge first");
        let (_, merged) = compact_paths(db.blocks.dir(), &inputs, crate::block::new_ulid(1)).unwrap();
        db.blocks.install(Block::open(&merged).unwrap(), &inputs).unwrap();
        assert_eq!(read(&db), expected);
        let _ = fs::remove_dir_all(dirs.wal.parent().unwrap().parent().unwrap());
    }

    #[test]
    fn a_series_that_changes_type_within_a_batch_replays_in_its_order() {
        let dirs = dirs("type-change");
        let mut db = open(&dirs);
        // One request: histograms at 0 s and 1 s, then floats at 2 s and 3 s, of one series.
        let floats = WriteSeries {
            samples: vec![Sample { t: 2_000, v: 2.0 }, Sample { t: 3_000, v: 3.0 }],
            ..histogram_series(0, 0)
        };
        assert_eq!(acked(db.write(vec![histogram_series(0, 2_000), floats])).appended, 4);
        let read = |db: &Db| {
            let m = Matcher::new("__name__", MatchOp::Equal, "latency").unwrap();
            let got = db.querier().select(&[m], i64::MIN, i64::MAX).unwrap();
            let floats: Vec<i64> = got.iter().flat_map(|s| &s.samples).map(|x| x.t).collect();
            let histograms: Vec<i64> = got.iter().flat_map(|s| &s.histograms).map(|x| x.t).collect();
            (floats, histograms)
        };
        let expected = (vec![2_000, 3_000], vec![0, 1_000]);
        assert_eq!(read(&db), expected);
        drop(db);
        // The replay appends the histograms before the newer floats, as they came.
        assert_eq!(read(&open(&dirs)), expected);
        let _ = fs::remove_dir_all(dirs.wal.parent().unwrap().parent().unwrap());
    }

    #[test]
    fn a_reply_counts_the_series_its_batch_created() {
        let mut db = open(&dirs("created"));
        let series = |i: usize| WriteSeries {
            labels: Labels::from_pairs([("__name__", "x".to_string()), ("i", i.to_string())]),
            samples: vec![Sample { t: 1000, v: 1.0 }],
            exemplars: Vec::new(),
            histograms: Vec::new(),
        };
        assert_eq!(acked(db.write(vec![series(0), series(1)])).created, 2);
        assert_eq!(acked(db.write(vec![series(1), series(2)])).created, 1);
    }

    #[test]
    fn churned_series_leave_the_head_and_stay_gone_after_restarts() {
        let dirs = dirs("churn");
        let mut db = open(&dirs);
        for gen in 0..8 {
            write(&mut db, gen, gen as i64 * RANGE, (gen as i64 + 1) * RANGE);
            db.cut_blocks(RANGE, 0, i64::MIN).unwrap();
        }
        // Cut whenever it spans more than one and a half ranges, the head keeps the newest
        // generation of pods only.
        let live = 10 + 20;
        assert_eq!(db.head.num_series(), live);
        assert_eq!(count(&db, "pod"), (8 * 20, 8 * 20 * 10), "blocks hold every generation");
        drop(db); // a crash: the next start replays the checkpoint and the log
        let mut db = open(&dirs);
        assert_eq!(db.head.num_series(), live);
        assert_eq!(count(&db, "steady"), (10, 80 * 10));
        // Ids logged after a restart mean the same series at the next one.
        write(&mut db, 8, 8 * RANGE, 9 * RANGE);
        drop(db);
        let mut db = open(&dirs);
        assert_eq!(count(&db, "steady"), (10, 90 * 10));
        assert_eq!(count(&db, "pod"), (9 * 20, 9 * 20 * 10));
        db.cut_blocks(RANGE, 0, i64::MIN).unwrap();
        db.snapshot().unwrap();
        let held = db.head.num_series();
        drop(db);
        let db = open(&dirs);
        assert_eq!(db.head.num_series(), held, "a snapshot holds the live series only");
        assert_eq!((count(&db, "steady"), count(&db, "pod")), ((10, 900), (180, 1800)));
        let _ = fs::remove_dir_all(dirs.wal.parent().unwrap().parent().unwrap());
    }

    fn exemplars_of(db: &Db, name: &str) -> Vec<(i64, f64)> {
        let m = vec![Matcher::new("__name__", MatchOp::Equal, name).unwrap()];
        db.head
            .select_exemplars(&[m], i64::MIN, i64::MAX)
            .into_iter()
            .flat_map(|(_, e)| e)
            .map(|e| (e.t, e.value))
            .collect()
    }

    /// Exemplars come back after a crash (the log), a checkpoint and a snapshot; one for a
    /// series the head does not hold makes no series.
    #[test]
    fn exemplars_survive_restarts() {
        let dirs = dirs("exemplars");
        let open = |dirs: &Dirs| Db::open(dirs, OPTIONS, RANGE, 100, i64::MAX).unwrap().0;
        let trace = |t: i64| Exemplar {
            labels: Labels::from_pairs([("trace_id", format!("t{t}"))]),
            value: 1.0,
            t,
            has_ts: true,
        };
        let series = |name: &str, samples: Vec<Sample>, exemplars| WriteSeries {
            labels: Labels::from_pairs([("__name__", name)]),
            samples,
            exemplars,
            histograms: Vec::new(),
        };
        let mut db = open(&dirs);
        let batch = |t: i64| vec![series("a", vec![Sample { t, v: 1.0 }], vec![trace(t)])];
        for t in [1000, 2000] {
            assert_eq!(acked(db.write(batch(t))).exemplars, 1);
        }
        assert_eq!(acked(db.write(batch(2000))).exemplars, 0, "a duplicate");
        assert_eq!(acked(db.write(vec![series("none", vec![], vec![trace(5)])])).exemplars, 0);
        drop(db);
        let mut db = open(&dirs);
        assert_eq!(exemplars_of(&db, "a"), [(1000, 1.0), (2000, 1.0)]);
        assert_eq!(db.head.num_series(), 1);
        acked(db.write(batch(3000)));
        let mut checkpoint = db.begin_checkpoint(i64::MAX).unwrap().expect("segments to let go");
        while !checkpoint.is_written() {
            checkpoint.write(&db.head, 10).unwrap();
        }
        let written = checkpoint.finish().unwrap();
        assert!(db.complete_log_write(written).unwrap() > 0);
        drop(db);
        let mut db = open(&dirs);
        assert_eq!(exemplars_of(&db, "a").len(), 3, "the checkpoint's copy");
        db.snapshot().unwrap();
        drop(db);
        let db = open(&dirs);
        assert_eq!(exemplars_of(&db, "a").len(), 3, "the snapshot's copy");
        let _ = fs::remove_dir_all(dirs.wal.parent().unwrap().parent().unwrap());
    }
}
