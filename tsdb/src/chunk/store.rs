//! Where a head keeps its sealed chunks: fixed-size segment files mapped into memory, so that
//! the head's anonymous memory holds only labels, postings, open chunks and a 24-byte
//! reference per sealed chunk, and the kernel may write sealed chunks out and drop them from
//! memory under pressure (they are file-backed pages, not swap).
//!
//! The files are scratch space, not a durability mechanism: the write-ahead log and the head
//! snapshot rebuild every chunk after a restart, so a store starts by deleting whatever its
//! directory holds. Each segment is allocated in full with `posix_fallocate` before it is
//! mapped, so a full disk shows up as an error at allocation (and the store falls back to
//! anonymous memory, trying files again at each housekeeping pass) rather than as a SIGBUS when
//! a page is first written. A store without a
//! directory (tests, tools) uses anonymous memory throughout.
//!
//! A chunk is stored as `[length u16 LE][bytes]` and named by a [`ChunkRef`]: segment number
//! and offset. Segments are freed whole, once the head has dropped every chunk in them. Each
//! time the head truncates (after a cut, and at every retention pass, whether or not it
//! dropped a chunk), the pages of the segments it keeps leave the process's resident set too
//! (`MADV_DONTNEED`; the page cache keeps them, written or not, and a later read maps them
//! back): otherwise every page written or read stays resident until its whole segment is
//! freed, and a small head's resident memory climbs for the hours a segment takes to fill.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

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
    Mapped(MmapMut),
    Memory(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Memory(v) => v,
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Memory(v) => v,
        }
    }
}

struct Segment {
    backing: Backing,
    used: usize,
    /// Newest sample time of any chunk written here.
    max_t: i64,
}

/// A head's sealed chunks.
pub struct ChunkStore {
    dir: Option<PathBuf>,
    segments: BTreeMap<u32, Segment>,
    next: u32,
    /// Why the last file segment could not be made (the store uses memory meanwhile).
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

/// Creates a segment file of `SEGMENT_BYTES`, allocated on disk, and maps it.
fn map_segment(path: &Path) -> io::Result<MmapMut> {
    let file: File = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
    // SAFETY: posix_fallocate on a file descriptor this function owns, for a length that fits
    // in off_t; it only reserves blocks.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, SEGMENT_BYTES as libc::off_t) };
    if rc != 0 {
        let _ = fs::remove_file(path);
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: the file was created by this store in its private directory under the locked
    // data directory; nothing else maps or writes it, and it is never truncated while mapped
    // (a segment is unmapped before its file is deleted). Exercised by the store's tests.
    unsafe { MmapMut::map_mut(&file) }
}

impl ChunkStore {
    /// A store in anonymous memory.
    pub fn in_memory() -> ChunkStore {
        ChunkStore { dir: None, segments: BTreeMap::new(), next: 0, last_error: None, scratch: Default::default() }
    }

    /// A store of mapped files in `dir`, which is emptied first.
    pub fn mapped(dir: &Path) -> io::Result<ChunkStore> {
        if dir.exists() {
            fs::remove_dir_all(dir)?;
        }
        fs::create_dir_all(dir)?;
        Ok(ChunkStore { dir: Some(dir.to_path_buf()), ..ChunkStore::in_memory() })
    }

    fn segment_path(&self, n: u32) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{n:08}")))
    }

    /// A new segment to write to: a mapped file, or memory when there is no directory or the
    /// file cannot be made ([`ChunkStore::last_error`] says why).
    fn new_segment(&mut self) -> u32 {
        let backing = match self.segment_path(self.next).map(|p| self.map(&p)) {
            Some(Some(map)) => Backing::Mapped(map),
            Some(None) | None => Backing::Memory(vec![0; SEGMENT_BYTES]),
        };
        self.add_segment(backing)
    }

    fn add_segment(&mut self, backing: Backing) -> u32 {
        let n = self.next;
        self.next += 1;
        self.segments.insert(n, Segment { backing, used: 0, max_t: i64::MIN });
        n
    }

    /// Maps a new segment file at `path`, keeping in [`ChunkStore::last_error`] why it could
    /// not be made.
    fn map(&mut self, path: &Path) -> Option<MmapMut> {
        let mapped = map_segment(path);
        self.last_error = mapped.as_ref().err().map(|e| format!("cannot map a head chunk segment, using memory: {e}"));
        mapped.ok()
    }

    /// When the segment being written fell back to memory, tries a file again (the disk may
    /// have room now): chunks then go to the new file, and the memory segment goes when its
    /// chunks do. Without it, a store written slowly stayed in memory for the days its memory
    /// segment took to fill.
    pub fn retry_files(&mut self) {
        let in_memory = self.segments.last_key_value().is_some_and(|(_, s)| matches!(s.backing, Backing::Memory(_)));
        if let Some(path) = self.segment_path(self.next).filter(|_| in_memory) {
            if let Some(map) = self.map(&path) {
                self.add_segment(Backing::Mapped(map));
            }
        }
    }

    /// Stores a chunk whose newest sample is at `max_t`.
    pub fn push(&mut self, chunk: &[u8], max_t: i64) -> ChunkRef {
        let need = 2 + chunk.len();
        assert!(chunk.len() <= MAX_CHUNK_BYTES, "a packed chunk is at most a few KiB");
        let n = match self.segments.last_key_value() {
            Some((&n, s)) if s.used + need <= SEGMENT_BYTES => n,
            _ => self.new_segment(),
        };
        let s = self.segments.get_mut(&n).expect("the segment exists");
        let at = s.used;
        let bytes = s.backing.bytes_mut();
        bytes[at..at + 2].copy_from_slice(&(chunk.len() as u16).to_le_bytes());
        bytes[at + 2..at + need].copy_from_slice(chunk);
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
    /// except the one being written, and unmaps the pages of those that stay.
    pub fn release_before(&mut self, t: i64) {
        let current = self.segments.last_key_value().map(|(&n, _)| n);
        let doomed: Vec<u32> =
            self.segments.iter().filter(|&(&n, s)| Some(n) != current && s.max_t < t).map(|(&n, _)| n).collect();
        for n in doomed {
            let segment = self.segments.remove(&n);
            // Unmapped before the file goes.
            drop(segment);
            if let Some(path) = self.segment_path(n) {
                let _ = fs::remove_file(path);
            }
        }
        for s in self.segments.values() {
            if let Backing::Mapped(map) = &s.backing {
                // SAFETY: the mapping is a shared mapping of a file (`map_segment`), for which
                // MADV_DONTNEED only unmaps pages: their contents, written or not, stay in the
                // page cache and the file, and the next access maps them back. No reference
                // into the mapping is held across this call (`&mut self`).
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

    /// Segments held, and how many of them are mapped files.
    #[cfg(test)]
    fn segments(&self) -> (usize, usize) {
        let mapped = self.segments.values().filter(|s| matches!(s.backing, Backing::Mapped(_))).count();
        (self.segments.len(), mapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let store = exercise(ChunkStore::mapped(&dir).unwrap());
        let (held, mapped) = store.segments();
        assert_eq!(held, mapped, "every segment is a mapped file");
        let files = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(files, held, "released segments' files are deleted, leftovers cleared");
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_store_that_fell_back_to_memory_takes_files_again_once_it_can() {
        let dir = std::env::temp_dir().join(format!("pyrite-store-retry-{}", std::process::id()));
        let mut store = ChunkStore::mapped(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let early = store.push(b"early", 1);
        assert_eq!(store.segments(), (1, 0), "no directory: memory");
        store.retry_files();
        assert_eq!(store.segments(), (1, 0), "still no directory");
        assert!(store.last_error.as_deref().is_some_and(|e| e.contains("No such file")), "{:?}", store.last_error);
        std::fs::create_dir_all(&dir).unwrap();
        store.retry_files();
        assert_eq!((store.segments(), store.last_error.as_deref()), ((2, 1), None));
        let late = store.push(b"late", 2);
        assert_eq!((store.get(early), store.get(late)), (&b"early"[..], &b"late"[..]));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "written to a file");
        store.release_before(2);
        assert_eq!(store.segments(), (1, 1), "the memory segment goes with its chunks");
        store.retry_files();
        assert_eq!(store.segments(), (1, 1), "a store on files stays as it is");
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
        let written = resident_under(&dir);
        assert!(written >= 16 << 20, "{written} bytes resident after writing 20 MB");
        store.release_before(0);
        let after = resident_under(&dir);
        assert!(after < 1 << 20, "{after} bytes still resident after the release");
        assert_eq!(store.get(refs[0]), chunk.as_slice(), "read back from the page cache");
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
