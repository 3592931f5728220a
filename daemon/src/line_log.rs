//! A log file that lines are appended to by a thread of its own: the query log and the scrape
//! failure logs. A query or a scrape runs on a shard's thread, which serves HTTP too; written
//! there, one line on a stalled disk (`fsfreeze`) held the shard, and every query and health
//! check it served, until the disk came back. Each line is one `write(2)` (`O_APPEND`), in the
//! order given; while [`BYTES_WAITING_MOST`] wait for a disk that does not take them, new lines
//! are dropped, and the drop is logged once. (Counted in bytes: a query's line holds its text,
//! up to 10 MiB.) A log that is let go (a reload's, or the exit's) has its thread write what
//! waits first, for [`FLUSH_WITHIN`] at most.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

/// Bytes of lines that may wait for the disk.
const BYTES_WAITING_MOST: u64 = 16 << 20;

/// How long letting a log go waits for its thread to write what waits.
const FLUSH_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

pub struct LineLog {
    lines: mpsc::Sender<String>,
    /// Bytes of the lines handed over and not written yet.
    waiting: Arc<AtomicU64>,
    /// Disconnected once the thread has stopped.
    stopped: mpsc::Receiver<()>,
    /// Lines are being dropped (logged when it starts).
    dropping: Arc<AtomicBool>,
    shown: String,
}

impl LineLog {
    /// Opens `path` to append to (creating it), on the calling thread: a file that cannot be
    /// opened refuses the configuration naming it.
    pub fn open(path: &Path) -> io::Result<LineLog> {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let (lines, todo) = mpsc::channel::<String>();
        let (running, stopped) = mpsc::channel::<()>();
        let waiting = Arc::new(AtomicU64::new(0));
        let dropping = Arc::new(AtomicBool::new(false));
        let shown = path.display().to_string();
        crate::threads::named("line-log").spawn({
            let (shown, waiting, dropping) = (shown.clone(), waiting.clone(), dropping.clone());
            move || {
                let _running = running;
                let mut write = |line: String| {
                    if let Err(e) = file.write_all(line.as_bytes()) {
                        tracing::warn!(file = %shown, error = %e, "cannot write to the log file");
                    }
                    waiting.fetch_sub(line.len() as u64, Ordering::Relaxed);
                };
                while let Ok(line) = todo.recv() {
                    write(line);
                    while let Ok(line) = todo.try_recv() {
                        write(line);
                    }
                    // Nothing waits now: a drop from here on is a new one.
                    dropping.store(false, Ordering::Relaxed);
                }
            }
        })?;
        Ok(LineLog { lines, waiting, stopped, dropping, shown })
    }

    /// Appends `line`, which ends in a newline (from any thread: it never waits).
    pub fn append(&self, line: String) {
        let bytes = line.len() as u64;
        if self.waiting.fetch_add(bytes, Ordering::Relaxed) + bytes > BYTES_WAITING_MOST {
            self.waiting.fetch_sub(bytes, Ordering::Relaxed);
            if !self.dropping.swap(true, Ordering::Relaxed) {
                tracing::warn!(file = %self.shown, waiting_bytes = BYTES_WAITING_MOST, "the disk does not take the log file's lines: new ones are dropped until it does");
            }
            return;
        }
        if self.lines.send(line).is_err() {
            // The thread is gone (it panicked): nothing will write it.
            self.waiting.fetch_sub(bytes, Ordering::Relaxed);
        }
    }
}

impl Drop for LineLog {
    fn drop(&mut self) {
        // Closing the channel stops the thread once it has written what waits.
        drop(std::mem::replace(&mut self.lines, mpsc::channel().0));
        let _ = self.stopped.recv_timeout(FLUSH_WITHIN);
    }
}
