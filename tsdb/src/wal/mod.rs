//! A shard's write-ahead log on disk: numbered segment files under `<data>/wal/<shard>/`, the
//! frames of [`crate::wal`].
//!
//! * Every append batch is written before it is acknowledged, so a process crash loses nothing
//!   acknowledged. The writing is done by a thread of the log's own ([`writer`]): a stalled
//!   disk holds up the appends waiting for it, not the shard. Segments are fsynced when they
//!   are full, on `--storage.tsdb.wal-fsync-interval` if set, and at shutdown; a power loss can
//!   lose what was written since the last fsync.
//! * At start the checkpoint and the segments after it are replayed into the head, in order;
//!   a torn tail is truncated, damage in the middle is skipped, and both are logged with the
//!   bytes lost. Writing then continues in a fresh segment.
//! * When retention no longer needs the oldest segments, a checkpoint of every series the head
//!   holds is written (samples stay in the newer segments) and the old segments are deleted.
//!   Series the head has forgotten are not in it; their samples left in newer segments are
//!   older than the head's `min_valid` and are skipped at replay.
//! * Series ids in records are the head's ids, and a replay creates each series under the id
//!   its record names, so the ids a restarted head logs mean what earlier segments said.
//! * At shutdown the whole head is written as a snapshot (chunks records) covering every
//!   segment so far, which are then deleted: the next start loads chunks instead of replaying
//!   samples. A replay loads the snapshot, then a newer checkpoint, then the segments after.
//! * After a failed write (disk full) the segment is cut back to its last whole frame, so a
//!   frame cut in half is never followed by more frames in the same file; the failed write's
//!   records stay in memory and go first in the next write, so that what a later write
//!   acknowledges never misses them.
//! * A reader following the log (the remote-write sender, [`follow`]) holds on to the segments
//!   it has not read yet through a [`LogFollowers`]: a checkpoint or snapshot then leaves them on
//!   disk (a replay skips them, they are older than its base), and [`Wal::release_held`] deletes
//!   them once the reader has moved on, or once they are past retention.

pub mod follow;
pub mod record;
pub mod writer;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use crate::head::Head;
use crate::out_of_order::Value;
use crate::queued_file::QueuedFile;
use pyrite_core::histogram::FloatHistogram;
use pyrite_core::labels::Labels;
use pyrite_core::value::Exemplar;
use record::{
    encode_chunks, encode_exemplars, encode_forgotten, encode_histogram_chunks, encode_histograms, encode_out_of_order,
    encode_out_of_order_histograms, encode_out_of_order_written, encode_samples, encode_series, encode_tombstones,
    scan_frames, Damage, Record,
};
use writer::LogWriter;
pub use writer::Logged;

/// How the log is written.
#[derive(Debug, Clone, Copy)]
pub struct WalOptions {
    /// Snappy-compress records (`--storage.tsdb.wal-compression`).
    pub compress: bool,
    /// Start a new segment past this size (`--storage.tsdb.wal-segment-size`).
    pub segment_size: u64,
}

/// What one append batch created and the head accepted, to be logged ([`Wal::log`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Batch<'a> {
    pub new_series: &'a [(u32, &'a Labels)],
    pub samples: &'a [(u32, i64, f64)],
    /// Samples accepted out of order.
    pub out_of_order: &'a [(u32, i64, f64)],
    pub histograms: &'a [(u32, i64, &'a FloatHistogram)],
    /// Histograms accepted out of order.
    pub out_of_order_histograms: &'a [(u32, i64, &'a FloatHistogram)],
    pub exemplars: &'a [(u32, Exemplar)],
}

impl Batch<'_> {
    fn is_empty(&self) -> bool {
        self.new_series.is_empty()
            && self.samples.is_empty()
            && self.out_of_order.is_empty()
            && self.histograms.is_empty()
            && self.out_of_order_histograms.is_empty()
            && self.exemplars.is_empty()
    }

    /// The newest sample time in it.
    fn newest(&self) -> Option<i64> {
        let histograms = self.histograms.iter().chain(self.out_of_order_histograms).map(|s| s.1);
        self.samples.iter().chain(self.out_of_order).map(|s| s.1).chain(histograms).max()
    }
}

/// What a replay read and what it could not.
#[derive(Debug, Default)]
pub struct Replayed {
    pub segments: usize,
    pub bytes: u64,
    pub series: usize,
    pub samples: usize,
    /// Samples of series whose record was lost to damage.
    pub orphaned: usize,
    /// Every damaged stretch, by file.
    pub damage: Vec<(PathBuf, Damage)>,
    /// Segments missing between two that were replayed (first and last number of each gap):
    /// what they held is lost. Upstream refuses to start; a replay goes on without them.
    pub missing: Vec<(u64, u64)>,
}

pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    writer: LogWriter,
    /// Number of the segment being written.
    index: u64,
    /// Bytes handed to the writer for it.
    written: u64,
    /// Newest sample time of every finished segment (none: no samples).
    finished: BTreeMap<u64, Option<i64>>,
    /// The snapshot in the directory, if any: its index and newest sample time. It is deleted
    /// only when a newer snapshot replaces it or retention no longer needs any of its samples
    /// (a checkpoint does not supersede it: segments written after a restart may hold older,
    /// backfilled samples than the snapshot).
    snapshot: Option<(u64, Option<i64>)>,
    newest: Option<i64>,
    followers: LogFollowers,
}

/// What a log shares with the readers following it (the remote-write sender), across
/// threads: the oldest segment they still need, which the log keeps (`u64::MAX`: none), and
/// the newest sample time it has logged, which tells them how far behind they are.
#[derive(Debug, Clone)]
pub struct LogFollowers(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    oldest_needed: AtomicU64,
    newest_logged: AtomicI64,
}

impl Default for LogFollowers {
    fn default() -> Self {
        Self::needing(u64::MAX)
    }
}

impl LogFollowers {
    /// A hold on every segment, until the readers say what they need.
    pub fn holding_all() -> Self {
        Self::needing(0)
    }

    fn needing(oldest: u64) -> Self {
        LogFollowers(Arc::new(Shared {
            oldest_needed: AtomicU64::new(oldest),
            newest_logged: AtomicI64::new(i64::MIN),
        }))
    }

    pub fn oldest_needed(&self) -> u64 {
        self.0.oldest_needed.load(Ordering::Acquire)
    }

    pub fn set_oldest_needed(&self, segment: u64) {
        self.0.oldest_needed.store(segment, Ordering::Release);
    }

    /// The newest sample time logged since the log was opened.
    pub fn newest_logged(&self) -> Option<i64> {
        Some(self.0.newest_logged.load(Ordering::Relaxed)).filter(|&t| t != i64::MIN)
    }

    fn logged(&self, t: i64) {
        self.0.newest_logged.fetch_max(t, Ordering::Relaxed);
    }
}

/// Creates segment `index` in `dir`, its name durable.
fn create_segment(dir: &Path, index: u64) -> io::Result<File> {
    let file = OpenOptions::new().create(true).append(true).open(dir.join(segment_name(index)))?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}

/// The file name of segment `index`.
pub fn segment_name(index: u64) -> String {
    format!("{index:08}")
}

fn checkpoint_name(index: u64) -> String {
    format!("checkpoint.{index:08}")
}

fn snapshot_name(index: u64) -> String {
    format!("snapshot.{index:08}")
}

/// What a log directory holds: numbered segments, and the indexes of checkpoints and
/// snapshots (each covers the segments up to its index).
#[derive(Debug, Default)]
pub struct Listing {
    /// Segment numbers, ascending.
    pub segments: Vec<u64>,
    pub checkpoints: Vec<u64>,
    pub snapshots: Vec<u64>,
}

/// Lists the log directory `dir`.
pub fn list(dir: &Path) -> io::Result<Listing> {
    let mut l = Listing::default();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().to_string();
        let index = |prefix: &str| name.strip_prefix(prefix).and_then(|s| s.parse::<u64>().ok());
        if let Ok(i) = name.parse::<u64>() {
            l.segments.push(i);
        } else if let Some(i) = index("checkpoint.") {
            l.checkpoints.push(i);
        } else if let Some(i) = index("snapshot.") {
            l.snapshots.push(i);
        }
    }
    l.segments.sort_unstable();
    Ok(l)
}

/// `e` with the path of the log entry it is about in its message.
fn naming(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Applies replayed records to the head, mapping the log's series ids onto the head's.
struct Replayer<'a> {
    head: &'a mut Head,
    /// The log's series ids to the head's (the same unless two ids name one label set).
    ids: HashMap<u32, u32>,
    stats: Replayed,
}

impl Replayer<'_> {
    /// Replays one file; returns its newest sample time, the length of its intact prefix, and
    /// whether it ends in a torn frame. The file is read through a window (a segment grown to
    /// 3 GiB of zeros after a torn write took 2.5 GB at every start when read whole).
    fn file(&mut self, path: &Path) -> io::Result<(Option<i64>, usize, bool)> {
        let file = File::open(path).map_err(|e| naming(path, e))?;
        let len = file.metadata().map_err(|e| naming(path, e))?.len() as usize;
        let mut newest = None;
        let scan = scan_frames(file, len, |record| self.apply(record, &mut newest)).map_err(|e| naming(path, e))?;
        self.stats.segments += 1;
        self.stats.bytes += len as u64;
        let torn = scan.damage.last().is_some_and(|d| d.at_end);
        self.stats.damage.extend(scan.damage.into_iter().map(|d| (path.to_path_buf(), d)));
        Ok((newest, scan.valid_len, torn))
    }

    /// Applies one record to the head, raising `newest` to its newest sample time.
    fn apply(&mut self, record: Record, newest: &mut Option<i64>) {
        match record {
            Record::Series(series) => {
                for (wal_id, labels) in series {
                    let (id, _) = self.head.get_or_create_as(&labels, Some(wal_id));
                    self.head.reserve_ids_through(wal_id);
                    self.ids.insert(wal_id, id);
                    self.stats.series += 1;
                }
            }
            Record::Chunks(series) => {
                for (wal_id, snapshot) in series {
                    let samples = snapshot.num_samples();
                    let newest_here = snapshot.max_time();
                    self.head.reserve_ids_through(wal_id);
                    match self.head.restore_series(wal_id, snapshot) {
                        Some(id) => {
                            self.ids.insert(wal_id, id);
                            self.stats.series += 1;
                            self.stats.samples += samples;
                            *newest = (*newest).max(newest_here);
                        }
                        None => self.stats.orphaned += samples,
                    }
                }
            }
            Record::HistogramChunks(series) => {
                for (wal_id, snapshot) in series {
                    let samples = snapshot.num_samples();
                    match self.ids.get(&wal_id) {
                        Some(&id) if self.head.restore_histograms(id, &snapshot) => {
                            self.stats.samples += samples;
                            *newest = (*newest).max(snapshot.max_time());
                        }
                        _ => self.stats.orphaned += samples,
                    }
                }
            }
            Record::Histograms(samples) => {
                for (wal_id, t, h) in samples {
                    self.head.reserve_ids_through(wal_id);
                    match self.ids.get(&wal_id) {
                        Some(&id) => {
                            if self.head.append_histogram(id, t, h).is_ok() {
                                self.stats.samples += 1;
                            }
                            *newest = (*newest).max(Some(t));
                        }
                        None if t < self.head.min_valid() || !self.head.keeps_samples() => {}
                        None => self.stats.orphaned += 1,
                    }
                }
            }
            Record::Forgotten(ids) => {
                for wal_id in ids {
                    self.ids.remove(&wal_id);
                }
            }
            Record::Exemplars(exemplars) => {
                for (wal_id, e) in exemplars {
                    self.head.reserve_ids_through(wal_id);
                    if let Some(&id) = self.ids.get(&wal_id) {
                        // Refused now as when logged, or already held (a checkpoint's copy).
                        let _ = self.head.add_exemplar(id, &e);
                    }
                }
            }
            Record::OutOfOrder(samples) => {
                self.replay_out_of_order(samples.into_iter().map(|(id, t, v)| (id, t, Value::Float(v))), newest)
            }
            Record::OutOfOrderHistograms(samples) => self.replay_out_of_order(
                samples.into_iter().map(|(id, t, h)| (id, t, Value::Histogram(Box::new(h)))),
                newest,
            ),
            // Written to blocks then: not again (a series left empty is forgotten after replay).
            Record::OutOfOrderWritten(before) => {
                self.head.drop_out_of_order_before(before);
            }
            Record::Tombstones(deleted) => {
                for (wal_id, mint, maxt) in deleted {
                    self.head.reserve_ids_through(wal_id);
                    if let Some(&id) = self.ids.get(&wal_id) {
                        self.head.delete_series(id, mint, maxt);
                    }
                }
            }
            Record::Samples(samples) => {
                for (wal_id, t, v) in samples {
                    // Even a forgotten series' id stays taken: its samples in this segment
                    // must not be read as a new series' at the next replay.
                    self.head.reserve_ids_through(wal_id);
                    match self.ids.get(&wal_id) {
                        Some(&id) => {
                            // A sample the head refuses was refused when it was written too.
                            if self.head.append(id, t, v).is_ok() {
                                self.stats.samples += 1;
                            }
                            *newest = (*newest).max(Some(t));
                        }
                        // A forgotten series' sample, already in a block; or, in agent mode, one
                        // of a series forgotten as idle, whose record the checkpoint left out.
                        None if t < self.head.min_valid() || !self.head.keeps_samples() => {}
                        None => self.stats.orphaned += 1,
                    }
                }
            }
        }
    }

    /// Keeps samples accepted out of order when logged apart again, whatever the window is now.
    fn replay_out_of_order(&mut self, samples: impl Iterator<Item = (u32, i64, Value)>, newest: &mut Option<i64>) {
        for (wal_id, t, v) in samples {
            self.head.reserve_ids_through(wal_id);
            if let Some(&id) = self.ids.get(&wal_id) {
                if self.head.insert_out_of_order(id, t, v) {
                    self.stats.samples += 1;
                }
                *newest = (*newest).max(Some(t));
            }
        }
    }
}

impl Wal {
    /// Opens the log in `dir` (creating it), replays it into `head`, and starts a new segment.
    pub fn open(dir: &Path, options: WalOptions, head: &mut Head) -> io::Result<(Wal, Replayed)> {
        fs::create_dir_all(dir)?;
        // A checkpoint or snapshot cut short by a crash never got its final name (a directory:
        // upstream's temporary checkpoint, in a log it wrote).
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                let removed = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
                removed.map_err(|e| naming(path.as_path(), e))?;
            }
        }
        let listing = list(dir)?;
        let segments = listing.segments;
        let checkpoint = listing.checkpoints.into_iter().max();
        let snapshot = listing.snapshots.into_iter().max();
        let mut replayer = Replayer { head, ids: HashMap::new(), stats: Replayed::default() };
        // The snapshot holds the head as it was; a newer checkpoint adds the series of the
        // segments after it. Replay continues after whichever is newer.
        let snapshot = match snapshot {
            Some(s) => Some((s, replayer.file(&dir.join(snapshot_name(s)))?.0)),
            None => None,
        };
        let checkpoint = checkpoint.filter(|&c| snapshot.is_none_or(|(s, _)| c > s));
        if let Some(c) = checkpoint {
            replayer.file(&dir.join(checkpoint_name(c)))?;
        }
        let base = checkpoint.or(snapshot.map(|(s, _)| s));
        let mut finished = BTreeMap::new();
        let live: Vec<u64> = segments.iter().copied().filter(|&i| base.is_none_or(|b| i > b)).collect();
        replayer.stats.missing = live.windows(2).filter(|w| w[1] > w[0] + 1).map(|w| (w[0] + 1, w[1] - 1)).collect();
        for (n, &i) in live.iter().enumerate() {
            let path = dir.join(segment_name(i));
            let (newest, valid_len, torn) = replayer.file(&path)?;
            if torn && n + 1 == live.len() {
                // The crash cut the last frame short: drop the fragment so the file is clean.
                OpenOptions::new().write(true).open(&path)?.set_len(valid_len as u64)?;
            }
            finished.insert(i, newest);
        }
        let index = segments.last().map_or(0, |i| i + 1).max(base.map_or(0, |b| b + 1));
        let writer = LogWriter::start(dir.to_path_buf(), create_segment(dir, index)?)?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            options,
            writer,
            index,
            written: 0,
            finished,
            snapshot,
            newest: None,
            followers: LogFollowers::default(),
        };
        Ok((wal, replayer.stats))
    }

    /// Finishes the current segment (the writer fsyncs it) and starts the next.
    fn rotate(&mut self) {
        self.writer.rotate(self.index + 1);
        self.finished.insert(self.index, self.newest.take());
        self.index += 1;
        self.written = 0;
    }

    /// Finishes the current segment and starts the next, unless nothing was written to it;
    /// true if it did.
    pub fn next_segment(&mut self) -> bool {
        let used = self.written > 0;
        if used {
            self.rotate();
        }
        used
    }

    /// Why the disk refuses the log's writes, while it does; new batches are then refused
    /// rather than queued.
    pub fn failing(&self) -> Option<io::Error> {
        self.writer.failing()
    }

    /// Bytes handed to the writer and not on disk yet.
    pub fn backlog(&self) -> u64 {
        self.writer.backlog()
    }

    /// Whether a reader following the log still needs a finished segment (it is behind the
    /// segment being written).
    pub fn held_behind(&self) -> bool {
        self.followers.oldest_needed() < self.index
    }

    /// Logs the series created by a batch and the samples (in order and out of order),
    /// histograms and exemplars the head accepted from it, in one write. An empty batch (a
    /// retry the head took as duplicates) is logged once everything before it is: what an
    /// earlier, failed write left must be on disk before the retry is acknowledged.
    pub fn log(&mut self, batch: &Batch) -> Logged {
        if batch.is_empty() {
            return self.writer.write(Vec::new());
        }
        let compress = self.options.compress;
        self.write(batch.newest(), |buf| {
            if !batch.new_series.is_empty() {
                encode_series(buf, batch.new_series.iter().map(|&(id, l)| (id, l)), compress);
            }
            if !batch.samples.is_empty() {
                encode_samples(buf, batch.samples, compress);
            }
            if !batch.out_of_order.is_empty() {
                encode_out_of_order(buf, batch.out_of_order, compress);
            }
            if !batch.histograms.is_empty() {
                encode_histograms(buf, batch.histograms, compress);
            }
            if !batch.out_of_order_histograms.is_empty() {
                encode_out_of_order_histograms(buf, batch.out_of_order_histograms, compress);
            }
            if !batch.exemplars.is_empty() {
                encode_exemplars(buf, batch.exemplars.iter().map(|(id, e)| (*id, e)), compress);
            }
        })
    }

    /// Logs deletions (series id, first and last deleted time).
    pub fn log_deletions(&mut self, deleted: &[(u32, i64, i64)]) -> Logged {
        if deleted.is_empty() {
            return Logged::default();
        }
        let compress = self.options.compress;
        self.write(None, |buf| encode_tombstones(buf, deleted, compress))
    }

    /// Logs that the head forgot these series (see [`record`]).
    pub fn log_forgotten(&mut self, ids: &[u32]) -> Logged {
        if ids.is_empty() {
            return Logged::default();
        }
        let compress = self.options.compress;
        self.write(None, |buf| encode_forgotten(buf, ids, compress))
    }

    /// Logs that the head's out-of-order samples before `before` were written to blocks.
    pub fn log_out_of_order_written(&mut self, before: i64) -> Logged {
        self.write(None, |buf| encode_out_of_order_written(buf, before))
    }

    /// Makes `followers` what the log shares with the readers following it.
    pub fn set_followers(&mut self, followers: LogFollowers) {
        self.followers = followers;
    }

    /// Deletes the segments kept only for readers following the log (those a checkpoint or
    /// snapshot covers) once they no longer need them; whatever they need, those last written
    /// before `cutoff_ms` (retention by time) and, oldest first, as many as it takes to bring
    /// the log within `budget` bytes (retention by size: the local data comes first). Returns
    /// how many went.
    pub fn release_held(&mut self, cutoff_ms: i64, budget: Option<u64>) -> io::Result<usize> {
        let listing = list(&self.dir)?;
        let Some(base) = listing.checkpoints.iter().chain(&listing.snapshots).max().copied() else { return Ok(0) };
        let hold = self.followers.oldest_needed();
        let mut over = match budget {
            Some(budget) => self.disk_bytes()?.saturating_sub(budget),
            None => 0,
        };
        let mut released = 0;
        for i in listing.segments.into_iter().filter(|&i| i <= base && i != self.index) {
            let path = self.dir.join(segment_name(i));
            let meta = fs::metadata(&path)?;
            let written = meta.modified()?.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            if i < hold || written < cutoff_ms || over > 0 {
                fs::remove_file(&path)?;
                over = over.saturating_sub(meta.len());
                released += 1;
            }
        }
        Ok(released)
    }

    /// Hands what `encode` puts in a buffer to the writer, for the current segment, which is
    /// finished first if full. Nothing encoded: logged once everything before it is.
    fn write(&mut self, newest: Option<i64>, encode: impl FnOnce(&mut Vec<u8>)) -> Logged {
        let mut bytes = Vec::new();
        encode(&mut bytes);
        if !bytes.is_empty() && self.written >= self.options.segment_size {
            self.rotate();
        }
        self.written += bytes.len() as u64;
        self.newest = self.newest.max(newest);
        if let Some(t) = newest {
            self.followers.logged(t);
        }
        self.writer.write(bytes)
    }

    /// Makes what was handed to the writer so far durable.
    pub fn sync(&mut self) -> Logged {
        self.writer.sync()
    }

    /// Bytes the log takes on disk: segments, checkpoints and snapshots.
    pub fn disk_bytes(&self) -> io::Result<u64> {
        let mut total = 0;
        for entry in fs::read_dir(&self.dir)? {
            total += entry?.metadata()?.len();
        }
        Ok(total)
    }

    /// Deletes the finished segments whose samples are all older than `cutoff`, after writing
    /// a checkpoint of every series in `head` so that the newer segments' samples keep their
    /// series, and the snapshot once all its samples are older too. Returns how many segments
    /// were deleted. (In one go: [`Wal::begin_checkpoint`] and the [`LogWrite`] steps do the
    /// same a slice at a time.)
    pub fn drop_before(&mut self, cutoff: i64, head: &Head) -> io::Result<usize> {
        let Some(mut checkpoint) = self.begin_checkpoint(cutoff, head)? else { return Ok(0) };
        checkpoint.write(head, usize::MAX)?;
        self.complete(checkpoint.finish()?, head)
    }

    /// Starts a checkpoint that lets the finished segments whose samples are all older than
    /// `cutoff` go; None if there are none.
    pub fn begin_checkpoint(&mut self, cutoff: i64, head: &Head) -> io::Result<Option<LogWrite>> {
        // Only a prefix can go: replay needs every segment after the checkpoint.
        let old: Vec<u64> =
            self.finished.iter().take_while(|(_, newest)| newest.is_none_or(|t| t < cutoff)).map(|(&i, _)| i).collect();
        let Some(&last) = old.last() else { return Ok(None) };
        LogWrite::begin(self, LogKind::Checkpoint { cutoff }, last, head).map(Some)
    }

    /// Starts a snapshot of the head covering every segment written so far; writing
    /// continues in a new segment (the writer fsyncs the one it finishes).
    pub fn begin_snapshot(&mut self, head: &Head) -> io::Result<LogWrite> {
        // Records handed to the writer go to the segments it covers, before the snapshot's
        // segment is finished (a replay after it could apply a deletion and a sample in the
        // wrong order); finishing it fsyncs it.
        self.rotate();
        LogWrite::begin(self, LogKind::Snapshot, self.index - 1, head)
    }

    /// Takes a checkpoint or snapshot in place: deletes what it makes redundant. Returns how
    /// many segments went.
    pub fn complete(&mut self, written: LogWritten, head: &Head) -> io::Result<usize> {
        let before = self.finished.len();
        match written.kind {
            LogKind::Checkpoint { cutoff } => {
                self.remove_covered(written.index, false)?;
                if let Some((s, newest)) = self.snapshot {
                    if newest.is_none_or(|t| t < cutoff) {
                        fs::remove_file(self.dir.join(snapshot_name(s)))?;
                        self.snapshot = None;
                    }
                }
            }
            LogKind::Snapshot => {
                // Samples appended while it was written may be in it: its newest is now's.
                let apart = head.out_of_order().max_time();
                self.snapshot = Some((written.index, head.max_time().max(apart)));
                self.remove_covered(written.index, true)?;
            }
        }
        Ok(before - self.finished.len())
    }

    /// Deletes what a new base file at `index` makes redundant: the segments up to `index`
    /// and older checkpoints; a new snapshot also replaces older snapshots and a checkpoint at
    /// its own index. (A checkpoint never replaces a snapshot: see [`Wal::drop_before`].)
    fn remove_covered(&mut self, index: u64, snapshot: bool) -> io::Result<()> {
        let listing = list(&self.dir)?;
        let hold = self.followers.oldest_needed();
        for i in listing.segments.into_iter().filter(|&i| i <= index) {
            // A segment a reader still needs stays on disk; replay skips it from now on.
            if i < hold {
                fs::remove_file(self.dir.join(segment_name(i)))?;
            }
        }
        // Whether or not the writer has made their files yet.
        self.finished = self.finished.split_off(&(index + 1));
        for c in listing.checkpoints.into_iter().filter(|&c| c < index || (snapshot && c == index)) {
            fs::remove_file(self.dir.join(checkpoint_name(c)))?;
        }
        for s in listing.snapshots.into_iter().filter(|&s| snapshot && s < index) {
            fs::remove_file(self.dir.join(snapshot_name(s)))?;
        }
        Ok(())
    }

    /// Writes the whole head as a snapshot covering every segment written so far, and deletes
    /// what it makes redundant. Writing continues in a new segment.
    pub fn snapshot(&mut self, head: &Head) -> io::Result<()> {
        let mut snapshot = self.begin_snapshot(head)?;
        snapshot.write(head, usize::MAX)?;
        self.complete(snapshot.finish()?, head)?;
        // Once the writer has caught up (at shutdown, its queue holds nothing the snapshot does
        // not), so that the files are as the snapshot left them; for a few seconds at most, as
        // a disk that refuses the new segment would be retried for ever. Its fsync cannot lose
        // anything: nothing was appended since.
        let _ = self.writer.sync().wait_within(SNAPSHOT_CATCH_UP);
        Ok(())
    }
}

/// How long a snapshot waits for the log's writer to catch up after it.
const SNAPSHOT_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(5);

/// Which base file a [`LogWrite`] makes.
#[derive(Debug, Clone, Copy)]
enum LogKind {
    /// The labels of every series, letting segments whose samples are older than `cutoff` go.
    Checkpoint { cutoff: i64 },
    /// The whole head, chunks and all.
    Snapshot,
}

/// A checkpoint or snapshot being written a slice of series at a time
/// ([`LogWrite::write`], on the head's thread between appends), then made durable on any
/// thread ([`LogWrite::finish`]) and taken in place by [`Wal::complete`]. Series created
/// meanwhile are logged in the segments after it; samples appended meanwhile to series not
/// yet written are in both, which a replay takes as identical duplicates.
pub struct LogWrite {
    dir: PathBuf,
    kind: LogKind,
    /// The last segment it covers.
    index: u64,
    compress: bool,
    pending: Vec<u32>,
    /// Written by a thread of its own: the shard's thread feeds it.
    out: QueuedFile,
    buf: Vec<u8>,
}

/// A [`LogWrite`] made durable under its final name.
pub struct LogWritten {
    kind: LogKind,
    index: u64,
}

impl LogWrite {
    fn begin(wal: &Wal, kind: LogKind, index: u64, head: &Head) -> io::Result<LogWrite> {
        let out = QueuedFile::create(wal.dir.join(format!("{}.tmp", Self::name(kind, index))))?;
        Ok(LogWrite {
            dir: wal.dir.clone(),
            kind,
            index,
            compress: wal.options.compress,
            pending: head.ids(),
            out,
            buf: Vec::new(),
        })
    }

    fn name(kind: LogKind, index: u64) -> String {
        match kind {
            LogKind::Checkpoint { .. } => checkpoint_name(index),
            LogKind::Snapshot => snapshot_name(index),
        }
    }

    /// Writes up to `max_series` more series (a record per 10,000).
    pub fn write(&mut self, head: &Head, max_series: usize) -> io::Result<()> {
        let rest = self.pending.len().saturating_sub(max_series);
        let batch: Vec<u32> = self.pending.drain(rest..).collect();
        for ids in batch.chunks(10_000) {
            self.buf.clear();
            match self.kind {
                LogKind::Checkpoint { .. } => {
                    let labels: Vec<(u32, Labels)> =
                        ids.iter().filter_map(|&id| Some((id, head.labels(id)?))).collect();
                    encode_series(&mut self.buf, labels.iter().map(|(id, l)| (*id, l)), self.compress);
                }
                LogKind::Snapshot => {
                    let series = ids.iter().filter_map(|&id| Some((id, head.snapshot_series(id)?)));
                    encode_chunks(&mut self.buf, series, self.compress);
                    let histograms: Vec<_> =
                        ids.iter().filter_map(|&id| Some((id, head.snapshot_histograms(id)?))).collect();
                    if !histograms.is_empty() {
                        encode_histogram_chunks(
                            &mut self.buf,
                            histograms.iter().map(|(id, h)| (*id, h)),
                            self.compress,
                        );
                    }
                }
            }
            self.out.write_all(&self.buf)?;
        }
        if self.pending.is_empty() {
            // This call wrote the last series. The exemplars go after every series, oldest
            // first, so that a replay keeps the ring's age order; a snapshot's out-of-order
            // samples too (a checkpoint leaves samples in the segments).
            self.buf.clear();
            encode_exemplars(&mut self.buf, head.exemplars().in_order(), self.compress);
            if let LogKind::Snapshot = self.kind {
                let (mut apart, mut apart_histograms) = (Vec::new(), Vec::new());
                for (id, samples) in head.out_of_order().all() {
                    apart.extend(samples.floats.into_iter().map(|(t, v)| (id, t, v)));
                    apart_histograms.extend(samples.histograms.into_iter().map(|(t, h)| (id, t, h)));
                }
                if !apart.is_empty() {
                    encode_out_of_order(&mut self.buf, &apart, self.compress);
                }
                if !apart_histograms.is_empty() {
                    let apart_histograms: Vec<(u32, i64, &FloatHistogram)> =
                        apart_histograms.iter().map(|(id, t, h)| (*id, *t, h)).collect();
                    encode_out_of_order_histograms(&mut self.buf, &apart_histograms, self.compress);
                }
            }
            self.out.write_all(&self.buf)?;
        }
        Ok(())
    }

    /// Bytes written and not on disk yet (the shard pauses while the disk is behind).
    pub fn waiting(&self) -> u64 {
        self.out.waiting()
    }

    /// Whether every series is written.
    pub fn is_written(&self) -> bool {
        self.pending.is_empty()
    }

    /// Flushes, fsyncs and renames the file into place (any thread; call once
    /// [`LogWrite::is_written`]). Dropped before this, it leaves a `.tmp` file that the next
    /// start removes.
    pub fn finish(mut self) -> io::Result<LogWritten> {
        let name = Self::name(self.kind, self.index);
        self.out.finish()?.sync_all()?;
        fs::rename(self.dir.join(format!("{name}.tmp")), self.dir.join(&name))?;
        File::open(&self.dir)?.sync_all()?;
        Ok(LogWritten { kind: self.kind, index: self.index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: WalOptions = WalOptions { compress: true, segment_size: 512 };

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pyrite-wal-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn series(i: usize) -> Labels {
        Labels::from_pairs([("__name__", "m".to_string()), ("i", i.to_string())])
    }

    /// Appends `samples` samples to each of `n` series through the head and the log.
    fn fill(wal: &mut Wal, head: &mut Head, n: usize, from: i64, samples: i64) {
        let mut new = Vec::new();
        let ids: Vec<u32> = (0..n)
            .map(|i| {
                let l = series(i);
                let (id, created) = head.get_or_create(&l);
                if created {
                    new.push((id, l));
                }
                id
            })
            .collect();
        let refs: Vec<(u32, &Labels)> = new.iter().map(|(id, l)| (*id, l)).collect();
        wal.log(&Batch { new_series: &refs, ..Batch::default() }).wait().unwrap();
        for k in from..from + samples {
            let batch: Vec<(u32, i64, f64)> = ids.iter().map(|&id| (id, k * 1000, k as f64)).collect();
            for &(id, t, v) in &batch {
                head.append(id, t, v).unwrap();
            }
            wal.log(&Batch { samples: &batch, ..Batch::default() }).wait().unwrap();
        }
    }

    fn dump(head: &Head) -> Vec<(Labels, Vec<(i64, f64)>)> {
        let all = pyrite_core::labels::Matcher::new("__name__", pyrite_core::labels::MatchOp::Regex, ".+").unwrap();
        let mut out: Vec<_> = head
            .select(&[all], i64::MIN, i64::MAX, &pyrite_core::labels::Projection::All)
            .into_iter()
            .map(|s| (s.labels, s.samples.iter().map(|x| (x.t, x.v)).collect()))
            .collect();
        out.sort_by(|a: &(Labels, Vec<(i64, f64)>), b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn replay_restores_the_head_across_segments() {
        let dir = temp_dir("replay");
        let mut head = Head::new();
        let (mut wal, _) = Wal::open(&dir, OPTIONS, &mut head).unwrap();
        fill(&mut wal, &mut head, 50, 0, 40);
        drop(wal);
        assert!(list(&dir).unwrap().segments.len() > 3, "small segments rotate");
        let mut again = Head::new();
        let (_, replayed) = Wal::open(&dir, OPTIONS, &mut again).unwrap();
        assert_eq!((replayed.series, replayed.samples, replayed.orphaned), (50, 2000, 0));
        assert!(replayed.damage.is_empty());
        assert_eq!(dump(&again), dump(&head));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_segment_is_reported() {
        let dir = temp_dir("gap");
        let mut head = Head::new();
        let (mut wal, _) = Wal::open(&dir, OPTIONS, &mut head).unwrap();
        fill(&mut wal, &mut head, 50, 0, 40);
        drop(wal);
        let segments = list(&dir).unwrap().segments;
        fs::remove_file(dir.join(segment_name(segments[2]))).unwrap();
        let (_, replayed) = Wal::open(&dir, OPTIONS, &mut Head::new()).unwrap();
        assert_eq!(replayed.missing, [(segments[2], segments[2])]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_tail_is_truncated_and_writing_continues() {
        let dir = temp_dir("torn");
        let mut head = Head::new();
        let (mut wal, _) = Wal::open(&dir, WalOptions { segment_size: 1 << 20, ..OPTIONS }, &mut head).unwrap();
        fill(&mut wal, &mut head, 10, 0, 10);
        drop(wal);
        let segment = dir.join(segment_name(0));
        let len = fs::metadata(&segment).unwrap().len();
        OpenOptions::new().write(true).open(&segment).unwrap().set_len(len - 3).unwrap();
        let mut again = Head::new();
        let (mut wal, replayed) = Wal::open(&dir, OPTIONS, &mut again).unwrap();
        assert_eq!(replayed.samples, 90, "the cut record is lost, nothing else");
        assert!(replayed.damage[0].1.at_end);
        assert!(fs::metadata(&segment).unwrap().len() < len - 3, "the fragment is truncated away");
        fill(&mut wal, &mut again, 10, 100, 1);
        drop(wal);
        let (_, replayed) = Wal::open(&dir, OPTIONS, &mut Head::new()).unwrap();
        assert_eq!((replayed.samples, replayed.damage.len()), (100, 0));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_snapshot_replaces_the_segments_and_later_writes_replay_on_top() {
        let dir = temp_dir("snapshot");
        let mut head = Head::new();
        let (mut wal, _) = Wal::open(&dir, OPTIONS, &mut head).unwrap();
        fill(&mut wal, &mut head, 30, 0, 40);
        wal.snapshot(&head).unwrap();
        let listing = list(&dir).unwrap();
        assert_eq!(listing.snapshots.len(), 1);
        assert_eq!(listing.segments, vec![wal.index], "only the new segment is left");
        fill(&mut wal, &mut head, 35, 40, 5);
        drop(wal); // a crash after more writes
        let mut again = Head::new();
        let (_, replayed) = Wal::open(&dir, OPTIONS, &mut again).unwrap();
        assert_eq!((replayed.series, replayed.orphaned), (35, 0));
        assert_eq!(replayed.samples, 30 * 40 + 35 * 5);
        assert_eq!(dump(&again), dump(&head));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn held_segments_outlive_a_snapshot_until_released_and_replay_skips_them() {
        let dir = temp_dir("hold");
        let mut head = Head::new();
        let (mut wal, _) = Wal::open(&dir, OPTIONS, &mut head).unwrap();
        fill(&mut wal, &mut head, 30, 0, 40);
        let segments = list(&dir).unwrap().segments;
        assert!(segments.len() > 3);
        // A reader has read up to the third segment.
        let hold = LogFollowers::default();
        wal.set_followers(hold.clone());
        hold.set_oldest_needed(segments[2]);
        wal.snapshot(&head).unwrap();
        let mut kept = segments[2..].to_vec();
        kept.push(wal.index);
        assert_eq!(list(&dir).unwrap().segments, kept);
        drop(wal);
        let mut again = Head::new();
        let (mut wal, replayed) = Wal::open(&dir, OPTIONS, &mut again).unwrap();
        assert_eq!((replayed.samples, replayed.orphaned), (30 * 40, 0), "held segments are not replayed");
        assert_eq!(dump(&again), dump(&head));
        // The reader moves on past all but the last held one.
        wal.set_followers(hold.clone());
        hold.set_oldest_needed(*segments.last().unwrap());
        assert_eq!(wal.release_held(i64::MIN, None).unwrap(), segments.len() - 3);
        // Past retention, held or not.
        assert_eq!(wal.release_held(i64::MAX, None).unwrap(), 1);
        assert!(list(&dir).unwrap().segments.iter().all(|&s| s > *segments.last().unwrap()));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn retention_of_backfilled_segments_keeps_a_snapshot_with_newer_samples() {
        let dir = temp_dir("backfill");
        let mut head = Head::new();
        let (mut wal, _) = Wal::open(&dir, OPTIONS, &mut head).unwrap();
        fill(&mut wal, &mut head, 10, 1000, 10); // recent: t = 1,000,000 .. 1,009,000
        wal.snapshot(&head).unwrap();
        drop(wal);
        // After a restart, old samples are backfilled into new series and retention runs.
        let mut head = Head::new();
        let (mut wal, _) = Wal::open(&dir, OPTIONS, &mut head).unwrap();
        let old = Labels::from_pairs([("__name__", "old")]);
        let (id, _) = head.get_or_create(&old);
        wal.log(&Batch { new_series: &[(id, &old)], ..Batch::default() }).wait().unwrap();
        for k in 0..200 {
            head.append(id, k * 1000, 1.0).unwrap();
            wal.log(&Batch { samples: &[(id, k * 1000, 1.0)], ..Batch::default() }).wait().unwrap();
        }
        wal.rotate();
        head.truncate_before(500_000);
        assert!(wal.drop_before(500_000, &head).unwrap() > 0, "the backfilled segments go");
        assert_eq!(list(&dir).unwrap().snapshots.len(), 1, "the snapshot's samples are newer: it stays");
        drop(wal);
        let mut again = Head::new();
        let (_, replayed) = Wal::open(&dir, OPTIONS, &mut again).unwrap();
        assert_eq!(replayed.orphaned, 0);
        let recent = dump(&again).into_iter().filter(|(l, _)| l.metric_name() == "m").count();
        assert_eq!(recent, 10, "the snapshot's series and samples are all back");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn ids_of_samples_whose_series_is_forgotten_stay_taken_after_a_replay() {
        let dir = temp_dir("forgotten-ids");
        let mut head = Head::new();
        let (mut wal, _) = Wal::open(&dir, OPTIONS, &mut head).unwrap();
        // Samples of a series whose record went with an older segment (it was forgotten).
        wal.log(&Batch { samples: &[(7, 1000, 1.0)], ..Batch::default() }).wait().unwrap();
        drop(wal);
        let mut again = Head::new();
        let (_, replayed) = Wal::open(&dir, OPTIONS, &mut again).unwrap();
        assert_eq!(replayed.orphaned, 1);
        let (id, _) = again.get_or_create(&series(0));
        assert!(id > 7, "a new series took id {id}, which the log's samples still name");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn dropping_old_segments_keeps_the_series_of_newer_samples() {
        let dir = temp_dir("checkpoint");
        let mut head = Head::new();
        let (mut wal, _) = Wal::open(&dir, OPTIONS, &mut head).unwrap();
        fill(&mut wal, &mut head, 20, 0, 50);
        fill(&mut wal, &mut head, 20, 1000, 20);
        let dropped = wal.drop_before(1000 * 1000, &head).unwrap();
        assert!(dropped > 0);
        drop(wal);
        assert_eq!(list(&dir).unwrap().checkpoints.len(), 1, "a checkpoint was written");
        let mut again = Head::new();
        let (_, replayed) = Wal::open(&dir, OPTIONS, &mut again).unwrap();
        assert_eq!(replayed.orphaned, 0, "every kept sample has its series");
        assert!(replayed.samples >= 400 && replayed.samples < 1400, "{}", replayed.samples);
        let newest: Vec<(i64, f64)> = dump(&again)[0].1.iter().copied().filter(|s| s.0 >= 1_000_000).collect();
        assert_eq!(newest.len(), 20);
        let _ = fs::remove_dir_all(&dir);
    }
}
