//! The thread that writes a log's segments, so that a stalled disk (`fsfreeze`, a hung network
//! volume) or a full one holds up the log and the appends waiting for it, never the thread that
//! hands it records (a shard's, which also serves queries and health checks).
//!
//! * Entries are written in the order they are handed over, as many as are waiting with one
//!   `write(2)`. Each entry is [`Logged`] once it and every entry before it are on disk (in the
//!   page cache: fsyncs are [`LogWriter::sync`] and segment ends), or with the error of the
//!   write that failed.
//! * After a failed write (disk full) the segment is cut back to its last whole write and the
//!   failed bytes stay first in line: what a later write acknowledges never misses them. The
//!   thread tries again every [`RETRY_EVERY`] and at each new entry; [`LogWriter::failing`]
//!   says why meanwhile, so that the shard refuses new batches instead of queueing them.
//! * Bytes go to the segment that was current when they were handed over: a segment change
//!   ([`LogWriter::rotate`]) waits until what came before it is written.

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io::{self, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// How often the thread tries again after a failed write, with nothing new handed over.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Locks `m`, whether or not a thread panicked holding it (the state stays consistent: every
/// critical section here is a few assignments).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `e` again, for a second waiter on the same failed write.
fn copy(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

/// Whether a write handed to the log's thread is on disk: a future for the shard's runtime,
/// or [`Logged::wait`] for a thread that may block.
#[must_use = "a write is acknowledged only once it is logged"]
pub struct Logged(Arc<Slot>);

#[derive(Default)]
struct Slot {
    state: Mutex<(Option<io::Result<()>>, Option<Waker>)>,
    ready: Condvar,
}

/// The writer's end of a [`Logged`]; dropped without an answer, it answers that the writer
/// stopped.
struct Completion(Option<Arc<Slot>>);

impl Logged {
    fn pending() -> (Logged, Completion) {
        let slot = Arc::new(Slot::default());
        (Logged(slot.clone()), Completion(Some(slot)))
    }

    /// Blocks until the write is answered.
    pub fn wait(self) -> io::Result<()> {
        let mut state = lock(&self.0.state);
        loop {
            if let Some(result) = state.0.take() {
                return result;
            }
            state = self.0.ready.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Blocks until the write is answered, for at most `limit`; None if it was not.
    pub fn wait_within(self, limit: Duration) -> Option<io::Result<()>> {
        let deadline = std::time::Instant::now() + limit;
        let mut state = lock(&self.0.state);
        loop {
            if let Some(result) = state.0.take() {
                return Some(result);
            }
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            state = self.0.ready.wait_timeout(state, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
    }
}

/// Nothing to log: logged.
impl Default for Logged {
    fn default() -> Self {
        let (logged, completion) = Logged::pending();
        completion.complete(Ok(()));
        logged
    }
}

impl std::fmt::Debug for Logged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let answered = lock(&self.0.state).0.is_some();
        f.debug_struct("Logged").field("answered", &answered).finish()
    }
}

impl Future for Logged {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = lock(&self.0.state);
        match state.0.take() {
            Some(result) => Poll::Ready(result),
            None => {
                state.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Completion {
    fn complete(mut self, result: io::Result<()>) {
        if let Some(slot) = self.0.take() {
            let mut state = lock(&slot.state);
            state.0 = Some(result);
            if let Some(waker) = state.1.take() {
                waker.wake();
            }
            slot.ready.notify_all();
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if self.0.is_some() {
            Completion(self.0.take()).complete(Err(io::Error::other("the write-ahead log's writer stopped")));
        }
    }
}

enum Op {
    /// Bytes for the current segment.
    Write { bytes: Vec<u8>, done: Completion },
    /// Finish the current segment (fsynced) and continue in a new one, `index`.
    Rotate { index: u64 },
    /// Fsync what is written.
    Sync { done: Completion },
}

#[derive(Default)]
struct Queue {
    ops: VecDeque<Op>,
    stopping: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Why the last write or segment change failed, while none has succeeded since.
    failing: Mutex<Option<io::Error>>,
    /// Bytes handed over and not on disk yet.
    backlog: AtomicU64,
}

/// A log's writer thread; dropped, it writes what it was handed (once more if that fails),
/// fsyncs, and stops.
pub struct LogWriter {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogWriter {
    /// Starts the thread writing the log in `dir`, its current segment open as `file`, empty.
    pub fn start(dir: PathBuf, file: File) -> io::Result<LogWriter> {
        let shared = Arc::new(Shared::default());
        let segment = Segment { dir, file, written: 0, torn: false, dirty: false, carried: Vec::new() };
        let thread = std::thread::Builder::new().name("wal-writer".to_string()).spawn({
            let shared = shared.clone();
            move || segment.run(&shared)
        })?;
        Ok(LogWriter { shared, thread: Some(thread) })
    }

    fn push(&self, op: Op) {
        lock(&self.shared.queue).ops.push_back(op);
        self.shared.wake.notify_one();
    }

    /// Hands `bytes` over for the current segment; empty, it is logged once everything
    /// handed over before is.
    pub fn write(&self, bytes: Vec<u8>) -> Logged {
        let (logged, done) = Logged::pending();
        self.shared.backlog.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.push(Op::Write { bytes, done });
        logged
    }

    /// Finishes the current segment and continues in segment `index`.
    pub fn rotate(&self, index: u64) {
        self.push(Op::Rotate { index });
    }

    /// Fsyncs everything handed over so far.
    pub fn sync(&self) -> Logged {
        let (logged, done) = Logged::pending();
        self.push(Op::Sync { done });
        logged
    }

    /// Why the last write or segment change failed, if none has succeeded since.
    pub fn failing(&self) -> Option<io::Error> {
        lock(&self.shared.failing).as_ref().map(copy)
    }

    /// Bytes handed over and not on disk yet.
    pub fn backlog(&self) -> u64 {
        self.shared.backlog.load(Ordering::Relaxed)
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        lock(&self.shared.queue).stopping = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread's state: the segment being written.
struct Segment {
    dir: PathBuf,
    file: File,
    /// Bytes written to it whole.
    written: u64,
    /// A write failed: it may end in part of one, to be cut before the next.
    torn: bool,
    /// Written since the last fsync.
    dirty: bool,
    /// Bytes of writes that failed, written first by the next.
    carried: Vec<u8>,
}

impl Segment {
    fn run(mut self, shared: &Shared) {
        // Operations left by a failed one, that one first.
        let mut left: VecDeque<Op> = VecDeque::new();
        loop {
            let stopping = {
                let mut queue = lock(&shared.queue);
                while queue.ops.is_empty() && !queue.stopping {
                    if left.is_empty() && self.carried.is_empty() {
                        queue = shared.wake.wait(queue).unwrap_or_else(|p| p.into_inner());
                    } else {
                        queue = shared.wake.wait_timeout(queue, RETRY_EVERY).unwrap_or_else(|p| p.into_inner()).0;
                        break;
                    }
                }
                left.extend(queue.ops.drain(..));
                queue.stopping
            };
            self.apply(&mut left, shared);
            if stopping {
                // Once more at most: a disk that refuses now is left with what it holds.
                if self.dirty {
                    let _ = self.file.sync_data();
                }
                return;
            }
        }
    }

    /// Carries out `ops` in order; when a write or a segment change fails, it and the
    /// operations after it stay in `ops`, and [`LogWriter::failing`] says why until one
    /// succeeds. A failed fsync is answered to its asker only: what it had to sync is written.
    fn apply(&mut self, ops: &mut VecDeque<Op>, shared: &Shared) {
        let mut waiting = Vec::new();
        while let Some(op) = ops.pop_front() {
            match op {
                Op::Write { bytes, done } => {
                    if self.carried.is_empty() {
                        self.carried = bytes;
                    } else {
                        self.carried.extend_from_slice(&bytes);
                    }
                    waiting.push(done);
                    if matches!(ops.front(), Some(Op::Write { .. })) {
                        continue;
                    }
                    if self.write_carried(waiting.drain(..), shared).is_err() {
                        return;
                    }
                }
                Op::Rotate { index } => {
                    if self.write_carried(None, shared).is_err() {
                        ops.push_front(Op::Rotate { index });
                        return;
                    }
                    let rotated = self.rotate(index);
                    let failed = rotated.is_err();
                    *lock(&shared.failing) = rotated.err();
                    if failed {
                        ops.push_front(Op::Rotate { index });
                        return;
                    }
                }
                Op::Sync { done } => match self.write_carried(None, shared) {
                    Ok(()) => done.complete(self.sync()),
                    Err(e) => {
                        done.complete(Err(e));
                        return;
                    }
                },
            }
        }
        // What a failed write left, tried again (and the failure cleared once it is written).
        let _ = self.write_carried(None, shared);
    }

    /// Writes the carried bytes with one `write(2)` and answers `waiting` (an empty write
    /// answers once those before it are written).
    fn write_carried(&mut self, waiting: impl IntoIterator<Item = Completion>, shared: &Shared) -> io::Result<()> {
        let result = self.write_out();
        if !self.carried.is_empty() {
            if result.is_ok() {
                shared.backlog.fetch_sub(self.carried.len() as u64, Ordering::Relaxed);
                self.carried.clear();
            }
            // Told before the waiting appends are answered: a batch sent after a refused one
            // must find the log failing.
            *lock(&shared.failing) = result.as_ref().err().map(copy);
        }
        for done in waiting {
            done.complete(result.as_ref().map(|_| ()).map_err(copy));
        }
        result
    }

    fn write_out(&mut self) -> io::Result<()> {
        if self.carried.is_empty() {
            return Ok(());
        }
        if self.torn {
            self.file.set_len(self.written)?;
            self.torn = false;
        }
        if let Err(e) = self.file.write_all(&self.carried) {
            self.torn = true;
            return Err(e);
        }
        self.written += self.carried.len() as u64;
        self.dirty = true;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    fn rotate(&mut self, index: u64) -> io::Result<()> {
        self.sync()?;
        self.file = super::create_segment(&self.dir, index)?;
        (self.written, self.dirty) = (0, false);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pyrite-wal-writer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writes_land_in_order_in_the_segment_current_when_handed_over() {
        let dir = temp_dir("order");
        let writer = LogWriter::start(dir.clone(), super::super::create_segment(&dir, 0).unwrap()).unwrap();
        let first: Vec<Logged> = (0..100u8).map(|i| writer.write(vec![i; 3])).collect();
        writer.rotate(1);
        let last = writer.write(b"next".to_vec());
        last.wait().unwrap();
        // The last answer holds for every write before it; each is answered too.
        for logged in first {
            logged.wait().unwrap();
        }
        writer.sync().wait().unwrap();
        assert_eq!(writer.backlog(), 0);
        let expected: Vec<u8> = (0..100u8).flat_map(|i| [i; 3]).collect();
        assert_eq!(std::fs::read(dir.join("00000000")).unwrap(), expected);
        assert_eq!(std::fs::read(dir.join("00000001")).unwrap(), b"next");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_segment_change_the_disk_refuses_waits_and_the_bytes_behind_it_land_in_the_new_segment() {
        let dir = temp_dir("rotate");
        let writer = LogWriter::start(dir.clone(), super::super::create_segment(&dir, 0).unwrap()).unwrap();
        writer.write(b"first".to_vec()).wait().unwrap();
        // The directory is away: the next segment cannot be made.
        let away = dir.with_extension("away");
        std::fs::rename(&dir, &away).unwrap();
        writer.rotate(1);
        let second = writer.write(b"second".to_vec());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while writer.failing().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(writer.failing().is_some(), "the shard is told");
        assert_eq!(writer.backlog(), 6, "the bytes behind the segment change wait");
        // It is back: within a retry, the segment is made and the bytes land in it.
        std::fs::rename(&away, &dir).unwrap();
        second.wait().unwrap();
        assert!(writer.failing().is_none());
        assert_eq!(std::fs::read(dir.join("00000000")).unwrap(), b"first");
        assert_eq!(std::fs::read(dir.join("00000001")).unwrap(), b"second");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_write_is_answered_and_its_bytes_wait_first_in_line() {
        let dir = temp_dir("failed");
        let path = dir.join("00000000");
        File::create(&path).unwrap();
        // A segment the disk refuses to write (as a full one would; tests/disk_full.rs has a real
        // one, and space that comes back).
        let writer = LogWriter::start(dir.clone(), File::open(&path).unwrap()).unwrap();
        assert!(writer.write(b"abc".to_vec()).wait().is_err());
        assert!(writer.failing().is_some(), "the shard is told, to refuse new batches");
        // A later write, even an empty one, cannot be answered before the failed bytes are on disk.
        assert!(writer.write(Vec::new()).wait().is_err());
        assert_eq!(writer.backlog(), 3, "the failed bytes are still held");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
