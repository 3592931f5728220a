//! A shard's write-ahead log on disk: numbered segment files under `<data>/wal/<shard>/`, the
//! frames of [`pyrite_core::tsdb::wal`].
//!
//! * Every append batch is written (one `write(2)`) before it is acknowledged, so a process
//!   crash loses nothing acknowledged. Segments are fsynced when they are full, on
//!   `--storage.tsdb.wal-fsync-interval` if set, and at shutdown; a power loss can lose what
//!   was written since the last fsync.
//! * At start the checkpoint and the segments after it are replayed into the head, in order;
//!   a torn tail is truncated, damage in the middle is skipped, and both are logged with the
//!   bytes lost. Writing then continues in a fresh segment.
//! * When retention no longer needs the oldest segments, a checkpoint of every series the head
//!   holds is written (samples stay in the newer segments) and the old segments are deleted.
//! * After a failed write (disk full), the next write starts a new segment, so a frame cut in
//!   half is never followed by more frames in the same file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use pyrite_core::labels::Labels;
use pyrite_core::tsdb::head::Head;
use pyrite_core::tsdb::wal::{encode_samples, encode_series, read_frames, Damage, Record};

/// Series ids a replay accepts: far beyond any real shard, and a bound on the id map's size.
const MAX_SERIES_ID: u32 = 1 << 28;

/// How the log is written.
#[derive(Debug, Clone, Copy)]
pub struct WalOptions {
    /// Snappy-compress records (`--storage.tsdb.wal-compression`).
    pub compress: bool,
    /// Start a new segment past this size (`--storage.tsdb.wal-segment-size`).
    pub segment_size: u64,
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
}

pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    file: File,
    /// Number of the segment being written.
    index: u64,
    written: u64,
    /// Newest sample time of every finished segment (none: no samples).
    finished: BTreeMap<u64, Option<i64>>,
    newest: Option<i64>,
    /// Written since the last fsync.
    dirty: bool,
    /// A write failed: continue in a new segment.
    broken: bool,
    buf: Vec<u8>,
}

fn segment_name(index: u64) -> String {
    format!("{index:08}")
}

fn checkpoint_name(index: u64) -> String {
    format!("checkpoint.{index:08}")
}

/// The numbered segments and the newest checkpoint in `dir`.
fn list(dir: &Path) -> io::Result<(Vec<u64>, Option<u64>)> {
    let (mut segments, mut checkpoint) = (Vec::new(), None);
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().to_string();
        if let Ok(i) = name.parse::<u64>() {
            segments.push(i);
        } else if let Some(i) = name.strip_prefix("checkpoint.").and_then(|s| s.parse::<u64>().ok()) {
            checkpoint = checkpoint.max(Some(i));
        }
    }
    segments.sort_unstable();
    Ok((segments, checkpoint))
}

/// Applies replayed records to the head, mapping the log's series ids onto the head's.
struct Replayer<'a> {
    head: &'a mut Head,
    ids: Vec<u32>,
    stats: Replayed,
}

impl Replayer<'_> {
    /// Replays one file; returns its newest sample time and the length of its intact prefix.
    fn file(&mut self, path: &Path) -> io::Result<(Option<i64>, usize, bool)> {
        let buf = fs::read(path)?;
        let frames = read_frames(&buf);
        self.stats.segments += 1;
        self.stats.bytes += buf.len() as u64;
        let torn = frames.damage.last().is_some_and(|d| d.at_end);
        self.stats.damage.extend(frames.damage.into_iter().map(|d| (path.to_path_buf(), d)));
        let mut newest = None;
        for record in frames.records {
            match record {
                Record::Series(series) => {
                    for (wal_id, labels) in series {
                        if wal_id >= MAX_SERIES_ID {
                            continue;
                        }
                        let (id, _) = self.head.get_or_create(&labels);
                        let slot = wal_id as usize;
                        if self.ids.len() <= slot {
                            self.ids.resize(slot + 1, u32::MAX);
                        }
                        self.ids[slot] = id;
                        self.stats.series += 1;
                    }
                }
                Record::Samples(samples) => {
                    for (wal_id, t, v) in samples {
                        match self.ids.get(wal_id as usize) {
                            Some(&id) if id != u32::MAX => {
                                // A sample the head refuses was refused when it was written too.
                                if self.head.append(id, t, v).is_ok() {
                                    self.stats.samples += 1;
                                }
                                newest = newest.max(Some(t));
                            }
                            _ => self.stats.orphaned += 1,
                        }
                    }
                }
            }
        }
        Ok((newest, frames.valid_len, torn))
    }
}

impl Wal {
    /// Opens the log in `dir` (creating it), replays it into `head`, and starts a new segment.
    pub fn open(dir: &Path, options: WalOptions, head: &mut Head) -> io::Result<(Wal, Replayed)> {
        fs::create_dir_all(dir)?;
        let (segments, checkpoint) = list(dir)?;
        let mut replayer = Replayer { head, ids: Vec::new(), stats: Replayed::default() };
        if let Some(c) = checkpoint {
            replayer.file(&dir.join(checkpoint_name(c)))?;
        }
        let mut finished = BTreeMap::new();
        let live: Vec<u64> = segments.iter().copied().filter(|&i| checkpoint.is_none_or(|c| i > c)).collect();
        for (n, &i) in live.iter().enumerate() {
            let path = dir.join(segment_name(i));
            let (newest, valid_len, torn) = replayer.file(&path)?;
            if torn && n + 1 == live.len() {
                // The crash cut the last frame short: drop the fragment so the file is clean.
                OpenOptions::new().write(true).open(&path)?.set_len(valid_len as u64)?;
            }
            finished.insert(i, newest);
        }
        let index = segments.last().map_or(0, |i| i + 1).max(checkpoint.map_or(0, |c| c + 1));
        let file = Self::create_segment(dir, index)?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            options,
            file,
            index,
            written: 0,
            finished,
            newest: None,
            dirty: false,
            broken: false,
            buf: Vec::new(),
        };
        Ok((wal, replayer.stats))
    }

    fn create_segment(dir: &Path, index: u64) -> io::Result<File> {
        let file = OpenOptions::new().create(true).append(true).open(dir.join(segment_name(index)))?;
        // Make the new file's name durable too.
        File::open(dir)?.sync_all()?;
        Ok(file)
    }

    /// Finishes the current segment (fsynced) and starts the next.
    fn rotate(&mut self) -> io::Result<()> {
        if !self.broken {
            self.file.sync_data()?;
        }
        let next = Self::create_segment(&self.dir, self.index + 1)?;
        self.finished.insert(self.index, self.newest.take());
        self.file = next;
        self.index += 1;
        self.written = 0;
        self.dirty = false;
        self.broken = false;
        Ok(())
    }

    /// Logs the series created by a batch and the samples the head accepted from it.
    pub fn log(&mut self, new_series: &[(u32, &Labels)], samples: &[(u32, i64, f64)]) -> io::Result<()> {
        if new_series.is_empty() && samples.is_empty() {
            return Ok(());
        }
        if self.broken || self.written >= self.options.segment_size {
            self.rotate()?;
        }
        self.buf.clear();
        if !new_series.is_empty() {
            encode_series(&mut self.buf, new_series.iter().map(|&(id, l)| (id, l)), self.options.compress);
        }
        if !samples.is_empty() {
            encode_samples(&mut self.buf, samples, self.options.compress);
        }
        if let Err(e) = self.file.write_all(&self.buf) {
            self.broken = true;
            return Err(e);
        }
        self.written += self.buf.len() as u64;
        self.dirty = true;
        self.newest = self.newest.max(samples.iter().map(|s| s.1).max());
        Ok(())
    }

    /// Flushes what was written to stable storage.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty && !self.broken {
            self.file.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Deletes the finished segments whose samples are all older than `cutoff`, after writing
    /// a checkpoint of every series in `head` so that the newer segments' samples keep their
    /// series. Returns how many segments were deleted.
    pub fn drop_before(&mut self, cutoff: i64, head: &Head) -> io::Result<usize> {
        // Only a prefix can go: replay needs every segment after the checkpoint.
        let old: Vec<u64> =
            self.finished.iter().take_while(|(_, newest)| newest.is_none_or(|t| t < cutoff)).map(|(&i, _)| i).collect();
        let Some(&last) = old.last() else { return Ok(0) };
        let mut buf = Vec::new();
        let labels: Vec<(u32, Labels)> = (0..head.num_series() as u32).map(|id| (id, head.labels(id))).collect();
        encode_series(&mut buf, labels.iter().map(|(id, l)| (*id, l)), self.options.compress);
        let tmp = self.dir.join(format!("{}.tmp", checkpoint_name(last)));
        let mut file = File::create(&tmp)?;
        file.write_all(&buf)?;
        file.sync_all()?;
        fs::rename(&tmp, self.dir.join(checkpoint_name(last)))?;
        File::open(&self.dir)?.sync_all()?;
        for i in &old {
            fs::remove_file(self.dir.join(segment_name(*i)))?;
            self.finished.remove(i);
        }
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name().to_string_lossy().to_string();
            let older = name.strip_prefix("checkpoint.").and_then(|s| s.parse::<u64>().ok()).is_some_and(|c| c < last);
            if older {
                fs::remove_file(self.dir.join(name))?;
            }
        }
        Ok(old.len())
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
        wal.log(&refs, &[]).unwrap();
        for k in from..from + samples {
            let batch: Vec<(u32, i64, f64)> = ids.iter().map(|&id| (id, k * 1000, k as f64)).collect();
            batch.iter().for_each(|&(id, t, v)| head.append(id, t, v).unwrap());
            wal.log(&[], &batch).unwrap();
        }
    }

    fn dump(head: &Head) -> Vec<(Labels, Vec<(i64, f64)>)> {
        let all = pyrite_core::labels::Matcher::new("__name__", pyrite_core::labels::MatchOp::Regex, ".+").unwrap();
        let mut out: Vec<_> = head
            .select(&[all], i64::MIN, i64::MAX)
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
        assert!(list(&dir).unwrap().0.len() > 3, "small segments rotate");
        let mut again = Head::new();
        let (_, replayed) = Wal::open(&dir, OPTIONS, &mut again).unwrap();
        assert_eq!((replayed.series, replayed.samples, replayed.orphaned), (50, 2000, 0));
        assert!(replayed.damage.is_empty());
        assert_eq!(dump(&again), dump(&head));
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
    fn dropping_old_segments_keeps_the_series_of_newer_samples() {
        let dir = temp_dir("checkpoint");
        let mut head = Head::new();
        let (mut wal, _) = Wal::open(&dir, OPTIONS, &mut head).unwrap();
        fill(&mut wal, &mut head, 20, 0, 50);
        fill(&mut wal, &mut head, 20, 1000, 20);
        let dropped = wal.drop_before(1000 * 1000, &head).unwrap();
        assert!(dropped > 0);
        drop(wal);
        assert!(list(&dir).unwrap().1.is_some(), "a checkpoint was written");
        let mut again = Head::new();
        let (_, replayed) = Wal::open(&dir, OPTIONS, &mut again).unwrap();
        assert_eq!(replayed.orphaned, 0, "every kept sample has its series");
        assert!(replayed.samples >= 400 && replayed.samples < 1400, "{}", replayed.samples);
        let newest: Vec<(i64, f64)> = dump(&again)[0].1.iter().copied().filter(|s| s.0 >= 1_000_000).collect();
        assert_eq!(newest.len(), 20);
        let _ = fs::remove_dir_all(&dir);
    }
}
