//! Where a head keeps its sealed chunks: fixed-size segments, written in anonymous memory and,
//! once full, written out to a file and mapped from it, so that the head's anonymous memory
//! holds only labels, postings, open chunks, the segment being filled and a 24-byte reference
//! per sealed chunk, and the kernel may drop sealed chunks from memory under pressure (they are
//! file-backed pages, not swap).
//!
//! The files are scratch space, not a durability mechanism: the write-ahead log and the head
//! snapshot rebuild every chunk after a restart, so a store starts by deleting whatever its
//! directory holds. Files are written and deleted by a thread of the store's own ([`Files`]),
//! never by the head's: a stalled disk (`fsfreeze`) then holds up only that thread, and the
//! full segments wait in memory (before, sealing a chunk into a mapped page blocked the shard
//! on the frozen disk's page fault, and with it every query and health check it served). A
//! segment the disk refuses (full) stays in memory and is tried again at each housekeeping
//! pass ([`ChunkStore::retry_files`]); [`ChunkStore::last_error`] says why. A store without a
//! directory (tests, tools) uses memory throughout.
//!
//! A chunk is stored as `[length u16 LE][bytes]` and named by a [`ChunkRef`]: segment number
//! and offset. Segments are freed whole, once the head has dropped every chunk in them. Each
//! time the head truncates (after a cut, and at every retention pass, whether or not it
//! dropped a chunk), the pages of the mapped segments it keeps leave the process's resident
//! set too (`MADV_DONTNEED`; the page cache keeps them, and a later read maps them back):
//! otherwise every page read stays resident until its whole segment is freed.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use memmap2::Mmap;

/// Bytes per segment.
const SEGMENT_BYTES: usize = 16 << 20;

/// The longest chunk the store holds (its length is stored in two bytes); a sealed chunk is at
/// most a few KiB.
pub const MAX_CHUNK_BYTES: usize = u16::MAX as usize;

/// A chunk's place in a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef(u64);

impl ChunkRef {
    fn new(segment: u32, offset: u32) -> ChunkRef {
        ChunkRef(u64::from(segment) << 32 | u64::from(offset))
    }

    fn segment(self) -> u32 {
        (self.0 >> 32) as u32
    }

    fn offset(self) -> usize {
        self.0 as u32 as usize
    }
}

enum Backing {
    /// Being filled.
    Filling(Vec<u8>),
    /// Full, in memory until its file is written (shared with the thread writing it).
    Full(Arc<Vec<u8>>),
    /// Full, mapped from its file.
    Mapped(Mmap),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Filling(v) => v,
            Backing::Full(v) => v,
            Backing::Mapped(m) => m,
        }
    }
}

struct Segment {
    backing: Backing,
    used: usize,
    /// Newest sample time of any chunk written here.
    max_t: i64,
}

/// What the store's file thread is asked to do, in order.
enum FileOp {
    /// Write a full segment to its file and map it.
    Write { segment: u32, path: PathBuf, bytes: Arc<Vec<u8>> },
    /// Delete a segment's file (its chunks are all dropped).
    Remove(PathBuf),
}

/// The store's file thread: it writes full segments out and deletes released ones, and
/// answers each write with the mapping or the error.
struct Files {
    /// None once dropped: the thread then does what it was asked and stops.
    ops: Option<mpsc::Sender<FileOp>>,
    written: mpsc::Receiver<(u32, io::Result<Mmap>)>,
    /// Segments handed over and not answered yet.
    pending: usize,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Waits for the thread: a store opened again on the same directory must not find the old
/// one's writes and deletions still under way.
impl Drop for Files {
    fn drop(&mut self) {
        self.ops = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Files {
    fn start() -> io::Result<Files> {
        let (ops, todo) = mpsc::channel();
        let (done, written) = mpsc::channel();
        let thread = std::thread::Builder::new().name("chunk-files".to_string()).spawn(move || {
            for op in todo {
                match op {
                    FileOp::Write { segment, path, bytes } => {
                        // The store may be gone: its mapping is then dropped here.
                        let _ = done.send((segment, write_segment(&path, &bytes)));
                    }
                    FileOp::Remove(path) => {
                        let _ = fs::remove_file(path);
                    }
                }
            }
        })?;
        Ok(Files { ops: Some(ops), written, pending: 0, thread: Some(thread) })
    }
}

/// Writes `bytes` to a new file at `path` and maps it; no file is left if it fails.
fn write_segment(path: &Path, bytes: &[u8]) -> io::Result<Mmap> {
    let created = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path);
    let written = created.and_then(|mut file| {
        file.write_all(bytes)?;
        // SAFETY: the file was created by this store in its private directory under the
        // locked data directory, written in full above, and is never written or truncated
        // again. It is deleted once the store has released its segment, which may be before
        // the store has taken this mapping (a release while the write was under way): a
        // deleted file's mapping stays valid until it is dropped.
        unsafe { Mmap::map(&file) }
    });
    if written.is_err() {
        let _ = fs::remove_file(path);
    }
    written
}

/// A head's sealed chunks.
pub struct ChunkStore {
    dir: Option<PathBuf>,
    files: Option<Files>,
    segments: BTreeMap<u32, Segment>,
    next: u32,
    /// Why the last segment could not be written to a file (it stays in memory meanwhile).
    pub last_error: Option<String>,
    /// Buffers for sealing a chunk (its samples, its encoding), reused from seal to seal.
    scratch: (Vec<(i64, f64)>, Vec<u8>),
}

impl std::fmt::Debug for ChunkStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStore").field("dir", &self.dir).field("segments", &self.segments.len()).finish()
    }
}

impl Default for ChunkStore {
    fn default() -> Self {
        ChunkStore::in_memory()
    }
}

impl ChunkStore {
    /// A store in anonymous memory.
    pub fn in_memory() -> ChunkStore {
        ChunkStore {
            dir: None,
            files: None,
            segments: BTreeMap::new(),
            next: 0,
            last_error: None,
            scratch: Default::default(),
        }
    }

    /// A store whose full segments go to files in `dir`, which is emptied first.
    pub fn mapped(dir: &Path) -> io::Result<ChunkStore> {
        if dir.exists() {
            fs::remove_dir_all(dir)?;
        }
        fs::create_dir_all(dir)?;
        Ok(ChunkStore { dir: Some(dir.to_path_buf()), files: Some(Files::start()?), ..ChunkStore::in_memory() })
    }

    fn segment_path(&self, n: u32) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{n:08}")))
    }

    /// Hands segment `n`, full, to the file thread.
    fn write_out(&mut self, n: u32) {
        let Some(path) = self.segment_path(n) else { return };
        let (Some(files), Some(segment)) = (&mut self.files, self.segments.get_mut(&n)) else { return };
        let bytes = match std::mem::replace(&mut segment.backing, Backing::Filling(Vec::new())) {
            Backing::Filling(v) => Arc::new(v),
            Backing::Full(v) => v,
            mapped @ Backing::Mapped(_) => {
                segment.backing = mapped;
                return;
            }
        };
        segment.backing = Backing::Full(bytes.clone());
        if files.ops.as_ref().is_some_and(|ops| ops.send(FileOp::Write { segment: n, path, bytes }).is_ok()) {
            files.pending += 1;
        }
    }

    /// Takes the mappings of the segments the file thread has written since the last call.
    fn take_written(&mut self) {
        let Some(files) = self.files.as_mut().filter(|f| f.pending > 0) else { return };
        while let Ok((n, written)) = files.written.try_recv() {
            files.pending -= 1;
            match written {
                Ok(map) => {
                    self.last_error = None;
                    // A segment released meanwhile is unmapped here; its file is deleted.
                    if let Some(segment) = self.segments.get_mut(&n) {
                        segment.backing = Backing::Mapped(map);
                    }
                }
                Err(e) => {
                    self.last_error = Some(format!("cannot write a head chunk segment, keeping it in memory: {e}"))
                }
            }
        }
    }

    /// Hands the file thread again the full segments it could not write (the disk may have
    /// room now). Without it, a store written slowly kept in memory for days what a full disk
    /// once refused.
    pub fn retry_files(&mut self) {
        self.take_written();
        if self.files.as_ref().is_some_and(|f| f.pending > 0) {
            return;
        }
        let unwritten: Vec<u32> =
            self.segments.iter().filter(|(_, s)| matches!(s.backing, Backing::Full(_))).map(|(&n, _)| n).collect();
        for n in unwritten {
            self.write_out(n);
        }
    }

    /// Stores a chunk whose newest sample is at `max_t`.
    pub fn push(&mut self, chunk: &[u8], max_t: i64) -> ChunkRef {
        // Full segments written since leave memory for their mapping.
        self.take_written();
        let need = 2 + chunk.len();
        assert!(chunk.len() <= MAX_CHUNK_BYTES, "a packed chunk is at most a few KiB");
        let n = match self.segments.last_key_value() {
            Some((&n, s)) if matches!(s.backing, Backing::Filling(_)) && s.used + need <= SEGMENT_BYTES => n,
            last => {
                if let Some((&full, _)) = last {
                    self.write_out(full);
                }
                let n = self.next;
                self.next += 1;
                let backing = Backing::Filling(Vec::with_capacity(SEGMENT_BYTES));
                self.segments.insert(n, Segment { backing, used: 0, max_t: i64::MIN });
                n
            }
        };
        let s = self.segments.get_mut(&n).expect("the segment exists");
        let Backing::Filling(bytes) = &mut s.backing else { unreachable!("the last segment is being filled") };
        let at = s.used;
        bytes.extend_from_slice(&(chunk.len() as u16).to_le_bytes());
        bytes.extend_from_slice(chunk);
        s.used += need;
        s.max_t = s.max_t.max(max_t);
        ChunkRef::new(n, at as u32)
    }

    /// The bytes of a stored chunk; empty if its segment was released.
    pub fn get(&self, r: ChunkRef) -> &[u8] {
        let Some(s) = self.segments.get(&r.segment()) else { return &[] };
        let bytes = &s.backing.bytes()[..s.used];
        let at = r.offset();
        let Some(len) = bytes.get(at..at + 2).map(|b| usize::from(u16::from_le_bytes([b[0], b[1]]))) else {
            return &[];
        };
        bytes.get(at + 2..at + 2 + len).unwrap_or(&[])
    }

    /// Frees the segments whose chunks all end before `t` (the head has dropped them),
    /// except the one being filled, and unmaps the pages of those that stay.
    pub fn release_before(&mut self, t: i64) {
        self.take_written();
        let current = self.segments.last_key_value().map(|(&n, _)| n);
        let doomed: Vec<u32> =
            self.segments.iter().filter(|&(&n, s)| Some(n) != current && s.max_t < t).map(|(&n, _)| n).collect();
        for n in doomed {
            let segment = self.segments.remove(&n);
            // Unmapped before the file goes (one still being written is deleted after it).
            drop(segment);
            if let (Some(ops), Some(path)) = (self.files.as_ref().and_then(|f| f.ops.as_ref()), self.segment_path(n)) {
                let _ = ops.send(FileOp::Remove(path));
            }
        }
        for s in self.segments.values() {
            if let Backing::Mapped(map) = &s.backing {
                // SAFETY: the mapping is a read-only shared mapping of a file (`write_segment`),
                // for which MADV_DONTNEED only unmaps pages: their contents stay in the page
                // cache and the file, and the next access maps them back. No reference into the
                // mapping is held across this call (`&mut self`).
                let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
            }
        }
    }

    /// Encodes `samples` (time-ordered, at most 128, the newest at `max_t`) as a packed chunk
    /// and stores it, reusing the store's buffers.
    pub fn pack(&mut self, samples: impl Iterator<Item = (i64, f64)>, max_t: i64) -> ChunkRef {
        let (mut decoded, mut encoded) = std::mem::take(&mut self.scratch);
        decoded.clear();
        decoded.extend(samples);
        encoded.clear();
        super::packed::encode(&decoded, &mut encoded);
        let at = self.push(&encoded, max_t);
        self.scratch = (decoded, encoded);
        at
    }

    /// Segments held, and how many of them are mapped files, once the file thread has
    /// answered every segment handed to it.
    #[cfg(test)]
    fn segments(&mut self) -> (usize, usize) {
        while self.files.as_ref().is_some_and(|f| f.pending > 0) {
            self.take_written();
            std::thread::yield_now();
        }
        let mapped = self.segments.values().filter(|s| matches!(s.backing, Backing::Mapped(_))).count();
        (self.segments.len(), mapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files in `dir` once there are `expected` (the file thread deletes released
    /// segments' files after the store lets them go), or after a second.
    fn files_in(dir: &Path, expected: usize) -> usize {
        let count = || std::fs::read_dir(dir).unwrap().count();
        for _ in 0..100 {
            if count() == expected {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        count()
    }

    fn exercise(mut store: ChunkStore) -> ChunkStore {
        let chunk = |i: usize| vec![(i % 251) as u8; 100 + i % 900];
        let refs: Vec<ChunkRef> = (0..60_000).map(|i| store.push(&chunk(i), i as i64)).collect();
        assert!(store.segments().0 > 1, "spans segments");
        for (i, &r) in refs.iter().enumerate() {
            assert_eq!(store.get(r), chunk(i).as_slice(), "chunk {i}");
        }
        store.release_before(40_000);
        assert!(store.get(refs[0]).is_empty(), "released");
        // Kept chunks read back whole after their pages were unmapped.
        for i in [40_000, 50_000, 59_999] {
            assert_eq!(store.get(refs[i]), chunk(i).as_slice(), "kept chunk {i}");
        }
        let more = store.push(&chunk(1), 60_000);
        assert_eq!(store.get(more), chunk(1).as_slice(), "written after the release");
        store
    }

    #[test]
    fn chunks_round_trip_in_memory_and_in_mapped_files() {
        exercise(ChunkStore::in_memory());
        let dir = std::env::temp_dir().join(format!("pyrite-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("leftover"), b"x").unwrap();
        let mut store = exercise(ChunkStore::mapped(&dir).unwrap());
        let (held, mapped) = store.segments();
        assert_eq!(held, mapped + 1, "every full segment is a mapped file");
        assert_eq!(files_in(&dir, mapped), mapped, "released segments' files are deleted, leftovers cleared");
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_segment_the_disk_refused_stays_in_memory_and_goes_to_a_file_once_it_can() {
        let dir = std::env::temp_dir().join(format!("pyrite-store-retry-{}", std::process::id()));
        let mut store = ChunkStore::mapped(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let chunk = vec![3u8; 60_000];
        let refs: Vec<ChunkRef> = (0..300).map(|i| store.push(&chunk, i)).collect();
        assert_eq!(store.segments(), (2, 0), "no directory: the full segment stays in memory");
        assert!(store.last_error.as_deref().is_some_and(|e| e.contains("No such file")), "{:?}", store.last_error);
        store.retry_files();
        assert_eq!(store.segments(), (2, 0), "still no directory");
        std::fs::create_dir_all(&dir).unwrap();
        store.retry_files();
        assert_eq!((store.segments(), store.last_error.as_deref()), ((2, 1), None));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "written to a file");
        assert!(refs.iter().all(|&r| store.get(r) == chunk.as_slice()), "every chunk reads back");
        store.release_before(300);
        assert_eq!(store.segments(), (1, 0), "the full segment goes, the one being filled stays");
        assert_eq!(files_in(&dir, 0), 0, "its file is deleted");
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Resident bytes of this process's mappings of files under `dir` (`/proc/self/smaps`).
    fn resident_under(dir: &Path) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut ours = false;
        let mut kib = 0;
        for line in smaps.lines() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("Rss:"), Some(n)) if ours => kib += n.parse::<usize>().unwrap(),
                (Some(first), _) if first.contains('-') && !first.ends_with(':') => {
                    ours = line.split_whitespace().nth(5).is_some_and(|p| Path::new(p).starts_with(dir));
                }
                _ => {}
            }
        }
        kib * 1024
    }

    #[test]
    fn kept_segments_leave_the_resident_set_when_chunks_are_dropped() {
        let dir = std::env::temp_dir().join(format!("pyrite-store-resident-{}", std::process::id()));
        let mut store = ChunkStore::mapped(&dir).unwrap();
        let chunk = vec![7u8; 1000];
        let refs: Vec<ChunkRef> = (0..20_000).map(|i| store.push(&chunk, i)).collect();
        store.segments();
        assert!(refs.iter().all(|&r| store.get(r) == chunk.as_slice()), "every chunk reads back");
        let read = resident_under(&dir);
        assert!(read >= 15 << 20, "{read} bytes resident after reading 16 MiB of files");
        store.release_before(0);
        let after = resident_under(&dir);
        assert!(after < 1 << 20, "{after} bytes still resident after the release");
        assert_eq!(store.get(refs[0]), chunk.as_slice(), "read back from the page cache");
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
