//! A file written by a thread of its own, for the long writes a shard's thread makes a slice at
//! a time (a block cut from the head, a checkpoint, a snapshot): the writes fill a buffer that
//! is handed to the thread each [`HAND_OVER_BYTES`], and the file (and its directory) is
//! created there too, so the shard does not wait for a stalled disk. [`QueuedFile::waiting`]
//! tells the writer how far the disk is behind, to pause between slices rather than queue the
//! whole head; a writer that does not (one that may block: a compaction, the shutdown's
//! snapshot) waits in its write past [`QUEUED_MOST`], and so would a shard's slice of more than
//! 56 MiB. [`QueuedFile::finish`], on a thread that may block, waits for the rest, and so does
//! dropping an unfinished file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// Bytes buffered before they are handed to the thread.
const HAND_OVER_BYTES: usize = 1 << 20;

/// Bytes handed over and not written past which a write waits.
const QUEUED_MOST: u64 = 64 << 20;

pub struct QueuedFile {
    buf: Vec<u8>,
    ops: Option<mpsc::Sender<Vec<u8>>>,
    thread: Option<JoinHandle<io::Result<File>>>,
    /// Bytes handed over and not written yet.
    waiting: Arc<AtomicU64>,
    /// The thread stopped (a write failed, it panicked, or the file is finished): later writes
    /// fail at once, nothing is waiting any more, and [`QueuedFile::finish`] says why.
    stopped: Arc<AtomicBool>,
}

/// Sets its flag when dropped: however the file's thread ends.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

impl QueuedFile {
    /// A new file at `path`, its directory created if need be, both on the file's thread.
    pub fn create(path: PathBuf) -> io::Result<QueuedFile> {
        let (ops, todo) = mpsc::channel::<Vec<u8>>();
        let waiting = Arc::new(AtomicU64::new(0));
        let stopped = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new().name("file-writer".to_string()).spawn({
            let (waiting, stopped) = (waiting.clone(), SetOnDrop(stopped.clone()));
            move || {
                let _stopped = stopped;
                (|| {
                    if let Some(dir) = path.parent() {
                        fs::create_dir_all(dir)?;
                    }
                    let mut file = File::create(&path)?;
                    for bytes in &todo {
                        file.write_all(&bytes)?;
                        waiting.fetch_sub(bytes.len() as u64, Ordering::Relaxed);
                    }
                    Ok(file)
                })()
            }
        })?;
        Ok(QueuedFile { buf: Vec::new(), ops: Some(ops), thread: Some(thread), waiting, stopped })
    }

    /// Bytes written and not on disk yet; none once the thread stopped (a failed write: the
    /// next write or [`QueuedFile::finish`] says why).
    pub fn waiting(&self) -> u64 {
        match self.stopped.load(Ordering::Acquire) {
            true => 0,
            false => self.waiting.load(Ordering::Relaxed) + self.buf.len() as u64,
        }
    }

    fn hand_over(&mut self) -> io::Result<()> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(io::Error::other("an earlier write to the file failed"));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        while self.waiting.load(Ordering::Relaxed) > QUEUED_MOST && !self.stopped.load(Ordering::Acquire) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let bytes = std::mem::take(&mut self.buf);
        self.waiting.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let handed = self.ops.as_ref().is_some_and(|ops| ops.send(bytes).is_ok());
        handed.then_some(()).ok_or_else(|| io::Error::other("the file's writer stopped"))
    }

    /// Waits until everything is written; returns the file, or the first error. Once only.
    pub fn finish(&mut self) -> io::Result<File> {
        // A failed write's error comes from the thread, below.
        let _ = self.hand_over();
        self.ops = None;
        let thread = self.thread.take().ok_or_else(|| io::Error::other("the file was finished already"))?;
        thread.join().unwrap_or_else(|_| Err(io::Error::other("the file's writer panicked")))
    }
}

/// Waits for the thread to stop (after what it was handed), so that whoever drops an unfinished
/// file may remove it, and its directory, without the thread making them again.
impl Drop for QueuedFile {
    fn drop(&mut self) {
        self.ops = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Write for QueuedFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= HAND_OVER_BYTES {
            self.hand_over()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_reach_the_file_in_order_and_errors_come_back() {
        let dir = std::env::temp_dir().join(format!("pyrite-queued-file-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("sub").join("file");
        let mut file = QueuedFile::create(path.clone()).unwrap();
        let expected: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        for part in expected.chunks(7_001) {
            file.write_all(part).unwrap();
        }
        file.finish().unwrap();
        assert_eq!(fs::read(&path).unwrap(), expected, "the directory made, every byte in order");
        // A file that cannot be created (a full disk, here a file where its directory would
        // be): nothing counts as waiting once the thread stopped, so a writer pausing for the
        // disk goes on, and its next write fails; the error comes back at the end.
        let mut blocked = QueuedFile::create(path.join("under-a-file")).unwrap();
        let _ = blocked.write_all(&expected);
        for _ in 0..200 {
            if blocked.waiting() == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(blocked.waiting(), 0, "a stopped writer holds nothing back");
        assert!(blocked.write_all(&expected).is_err());
        assert!(blocked.finish().is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
