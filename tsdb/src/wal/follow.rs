//! Following a shard's log while the shard writes it, for the remote-write sender (upstream's
//! WAL watcher): records are read from a [`Position`] on, segment after segment, as they are
//! written.
//!
//! * A frame that the end of the file cuts short, or whose checksum does not match yet, at the
//!   end of the segment being written is a write still in progress: the reader waits for it.
//!   In a finished segment (once a newer one exists, the writer is done with it) the same is
//!   damage: it is skipped and reported, as a replay does.
//! * A segment that was deleted before it was read (retention, or the size budget) is a gap:
//!   the reader goes on at the oldest segment after it and reports the gap.
//! * Reads go only as far as a byte budget or an end position, so a reader that fell behind
//!   catches up in rounds of bounded size, and a round can be read again exactly.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::record::{read_frame, Frame, Record};
use super::{list, segment_name};

/// A place in a log: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// Something other than records that a [`Follower`] met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// Segments from `from` up to (not including) `to` were deleted before they were read.
    Gap { from: u64, to: u64 },
    /// Bytes of a finished segment that were not intact frames, skipped.
    Damage { segment: u64, offset: u64, bytes: u64 },
}

/// How far one [`Follower::read`] goes.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// Up to this many bytes of frames (at least one whole frame if one is there).
    Bytes(usize),
    /// Up to this position exactly (a round read again after a restart).
    Until(Position),
}

/// Reads one shard's log directory from a position on.
pub struct Follower {
    dir: PathBuf,
    pos: Position,
    file: Option<File>,
    /// Bytes of the current segment read from the file; those from `start` on (at
    /// `pos.offset`) are not taken yet.
    buf: Vec<u8>,
    start: usize,
}

/// The most read from a file at once.
const READ_CHUNK: usize = 4 << 20;

impl Follower {
    /// A follower of the log in `dir` that reads from `pos` on.
    pub fn new(dir: &Path, pos: Position) -> Follower {
        Follower { dir: dir.to_path_buf(), pos, file: None, buf: Vec::new(), start: 0 }
    }

    /// Where the next record starts: everything before it has been handed out.
    pub fn position(&self) -> Position {
        self.pos
    }

    /// The start of the newest segment in `dir` (where a new reader begins), or of segment 0.
    pub fn newest_segment(dir: &Path) -> io::Result<Position> {
        let segment = list(dir)?.segments.last().copied().unwrap_or(0);
        Ok(Position { segment, offset: 0 })
    }

    /// Hands the records written since the last call to `on_record`, in order, as far as
    /// `limit` allows; returns what went wrong on the way. Nothing new: returns at once.
    pub fn read(&mut self, limit: Limit, mut on_record: impl FnMut(Record)) -> io::Result<Vec<Trouble>> {
        let mut trouble = Vec::new();
        let mut taken = 0usize;
        loop {
            if let Limit::Until(end) = limit {
                if self.pos >= end {
                    break;
                }
            }
            if self.file.is_none() && !self.open(&mut trouble)? {
                break;
            }
            // Hand out the whole frames buffered.
            let mut at = self.start;
            let end_here = match limit {
                Limit::Until(end) if end.segment == self.pos.segment => {
                    Some(self.start + (end.offset - self.pos.offset) as usize)
                }
                _ => None,
            };
            while end_here.is_none_or(|e| at < e) {
                match read_frame(&self.buf, at) {
                    Frame::Intact(record, next) => {
                        on_record(record);
                        taken += next - at;
                        at = next;
                        if matches!(limit, Limit::Bytes(b) if taken >= b) {
                            break;
                        }
                    }
                    Frame::Partial | Frame::Bad => break,
                }
            }
            self.take(at - self.start);
            if matches!(limit, Limit::Bytes(b) if taken >= b) {
                break;
            }
            // The buffer is handed out, or holds the start of a frame only: read more. Nothing
            // new: either the writer is still writing here, or the segment is finished and the
            // rest is damage.
            let before = self.buf.len() - self.start;
            self.fill()?;
            if self.buf.len() == before && !self.finish_segment(&mut trouble)? {
                break;
            }
        }
        Ok(trouble)
    }

    /// Opens the segment at the position, or the oldest one after it if it is gone. Returns
    /// false if there is none yet.
    fn open(&mut self, trouble: &mut Vec<Trouble>) -> io::Result<bool> {
        let path = self.dir.join(segment_name(self.pos.segment));
        match File::open(&path) {
            Ok(mut file) => {
                file.seek(SeekFrom::Start(self.pos.offset))?;
                self.file = Some(file);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let Some(next) = self.segments_after()?.first().copied() else { return Ok(false) };
                trouble.push(Trouble::Gap { from: self.pos.segment, to: next });
                self.pos = Position { segment: next, offset: 0 };
                self.open(trouble)
            }
            Err(e) => Err(e),
        }
    }

    /// The segments after the current one, in order; none while the log directory does not
    /// exist yet (the shard has not opened its log).
    fn segments_after(&self) -> io::Result<Vec<u64>> {
        match list(&self.dir) {
            Ok(listing) => Ok(listing.segments.into_iter().filter(|&s| s > self.pos.segment).collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Reads what the file has beyond the buffer, at most [`READ_CHUNK`] at a time (an idle
    /// poll costs one `read(2)` returning nothing), after dropping what was taken.
    fn fill(&mut self) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else { return Ok(()) };
        self.buf.drain(..self.start);
        self.start = 0;
        file.by_ref().take(READ_CHUNK as u64).read_to_end(&mut self.buf)?;
        Ok(())
    }

    /// Marks the next `n` buffered bytes taken: they were handed out.
    fn take(&mut self, n: usize) {
        self.start += n;
        self.pos.offset += n as u64;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            // A catch-up read leaves megabytes of capacity behind; a reader that keeps up
            // needs little.
            if self.buf.capacity() > 1 << 20 {
                self.buf = Vec::new();
            }
        }
    }

    /// At the end of what the current segment holds: if a newer segment exists the writer is
    /// done with this one, so whatever is left after one more read is damage, and the reader
    /// moves on. Returns whether it moved on.
    fn finish_segment(&mut self, trouble: &mut Vec<Trouble>) -> io::Result<bool> {
        let Some(next) = self.segments_after()?.first().copied() else { return Ok(false) };
        // Written before the newer segment was created, so visible now.
        self.fill()?;
        let mut at = 0;
        while at < self.buf.len() {
            match read_frame(&self.buf, at) {
                Frame::Intact(..) => return Ok(true), // more intact frames: the caller reads them
                Frame::Partial | Frame::Bad => {
                    let resume =
                        (at + 1..self.buf.len()).find(|&p| matches!(read_frame(&self.buf, p), Frame::Intact(..)));
                    let skip = resume.unwrap_or(self.buf.len());
                    trouble.push(Trouble::Damage {
                        segment: self.pos.segment,
                        offset: self.pos.offset + at as u64,
                        bytes: (skip - at) as u64,
                    });
                    at = skip;
                    if resume.is_some() {
                        self.take(at);
                        return Ok(true);
                    }
                }
            }
        }
        self.buf.clear();
        self.start = 0;
        self.file = None;
        // Segments after this one deleted while it was read (retention, or the bound on unsent
        // segments): reported as when the reader finds one missing on opening it.
        if next > self.pos.segment + 1 {
            trouble.push(Trouble::Gap { from: self.pos.segment + 1, to: next });
        }
        self.pos = Position { segment: next, offset: 0 };
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::record::{encode_samples, encode_series};
    use pyrite_core::labels::Labels;
    use std::fs::{self, OpenOptions};
    use std::io::Write;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pyrite-follow-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn append(dir: &Path, segment: u64, bytes: &[u8]) {
        let mut f = OpenOptions::new().create(true).append(true).open(dir.join(segment_name(segment))).unwrap();
        f.write_all(bytes).unwrap();
    }

    fn samples(from: u32, n: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let s: Vec<(u32, i64, f64)> = (from..from + n).map(|i| (0, i64::from(i), f64::from(i))).collect();
        encode_samples(&mut out, &s, false);
        out
    }

    /// Every sample time read, with what went wrong.
    fn read_all(f: &mut Follower, limit: Limit) -> (Vec<i64>, Vec<Trouble>) {
        let mut got = Vec::new();
        let trouble = f
            .read(limit, |r| {
                if let Record::Samples(s) = r {
                    got.extend(s.iter().map(|x| x.1));
                }
            })
            .unwrap();
        (got, trouble)
    }

    #[test]
    fn follows_a_log_as_it_is_written_across_segments() {
        let dir = temp_dir("live");
        let mut series = Vec::new();
        encode_series(&mut series, [(0, &Labels::from_pairs([("__name__", "x")]))], false);
        append(&dir, 0, &series);
        let mut f = Follower::new(&dir, Position { segment: 0, offset: 0 });
        let mut records = Vec::new();
        f.read(Limit::Bytes(1 << 20), |r| records.push(r)).unwrap();
        assert!(matches!(&records[..], [Record::Series(_)]));
        // Half a frame: not handed out until the rest is written.
        let frame = samples(0, 10);
        append(&dir, 0, &frame[..7]);
        assert_eq!(read_all(&mut f, Limit::Bytes(1 << 20)), (vec![], vec![]));
        append(&dir, 0, &frame[7..]);
        assert_eq!(read_all(&mut f, Limit::Bytes(1 << 20)).0, (0..10).collect::<Vec<_>>());
        // The writer moves on to segment 1.
        append(&dir, 1, &samples(10, 5));
        assert_eq!(read_all(&mut f, Limit::Bytes(1 << 20)).0, (10..15).collect::<Vec<_>>());
        assert_eq!(f.position(), Position { segment: 1, offset: samples(10, 5).len() as u64 });
    }

    #[test]
    fn a_round_is_read_again_exactly_and_budgets_stop_at_frames() {
        let dir = temp_dir("until");
        for i in 0..4 {
            append(&dir, 0, &samples(i * 10, 10));
        }
        let mut f = Follower::new(&dir, Position { segment: 0, offset: 0 });
        let one = samples(0, 10).len();
        assert_eq!(read_all(&mut f, Limit::Bytes(1)).0.len(), 10, "at least one whole frame");
        let end = Position { segment: 0, offset: 3 * one as u64 };
        assert_eq!(read_all(&mut f, Limit::Until(end)).0, (10..30).collect::<Vec<_>>());
        assert_eq!(f.position(), end);
        let mut again = Follower::new(&dir, Position { segment: 0, offset: one as u64 });
        assert_eq!(read_all(&mut again, Limit::Until(end)).0, (10..30).collect::<Vec<_>>());
    }

    #[test]
    fn slices_of_a_long_log_come_out_in_order_and_whole() {
        let dir = temp_dir("slices");
        for i in 0..2000 {
            append(&dir, 0, &samples(i * 10, 10));
        }
        append(&dir, 1, &samples(20_000, 10));
        let mut f = Follower::new(&dir, Position { segment: 0, offset: 0 });
        let mut got = Vec::new();
        loop {
            let (slice, trouble) = read_all(&mut f, Limit::Bytes(100));
            assert!(trouble.is_empty());
            if slice.is_empty() {
                break;
            }
            assert!(slice.len() <= 20, "a slice stops at the first frame past its budget");
            got.extend(slice);
        }
        assert_eq!(got, (0..20_010).collect::<Vec<_>>());
        assert_eq!(f.position(), Position { segment: 1, offset: samples(20_000, 10).len() as u64 });
    }

    #[test]
    fn damage_in_a_finished_segment_and_deleted_segments_are_skipped_and_reported() {
        let dir = temp_dir("damage");
        let mut bytes = samples(0, 5);
        let bad = bytes.len();
        bytes.extend_from_slice(&samples(5, 5));
        bytes[bad + 12] ^= 0xff;
        bytes.extend_from_slice(&samples(10, 5));
        append(&dir, 0, &bytes);
        let mut f = Follower::new(&dir, Position { segment: 0, offset: 0 });
        // While segment 0 is the newest, the bad frame may be a write in progress.
        assert_eq!(read_all(&mut f, Limit::Bytes(1 << 20)), ((0..5).collect(), vec![]));
        append(&dir, 3, &samples(20, 5));
        let (got, trouble) = read_all(&mut f, Limit::Bytes(1 << 20));
        assert_eq!(got, (10..15).chain(20..25).collect::<Vec<_>>());
        // Segments 1 and 2 are missing after the one being read: deleted meanwhile.
        assert_eq!(
            trouble,
            vec![
                Trouble::Damage { segment: 0, offset: bad as u64, bytes: samples(5, 5).len() as u64 },
                Trouble::Gap { from: 1, to: 3 }
            ]
        );
        // Segments 4 and 5 written and 4 deleted before the reader got there.
        append(&dir, 4, &samples(30, 5));
        append(&dir, 5, &samples(40, 5));
        fs::remove_file(dir.join(segment_name(4))).unwrap();
        let mut g = Follower::new(&dir, Position { segment: 4, offset: 0 });
        assert_eq!(
            read_all(&mut g, Limit::Bytes(1 << 20)),
            ((40..45).collect(), vec![Trouble::Gap { from: 4, to: 5 }])
        );
    }
}
