//! Whether a shard's disk answers a write: a file created and deleted in its log directory, off
//! the shard, within [`ANSWERS_WITHIN`]. The storage work that still writes files on the
//! shard's thread (housekeeping's deletions and out-of-order blocks, the admin API's deletions,
//! tombstone cleaning and snapshots) would hold the shard, and every query and health check it
//! serves, if begun on a stalled disk (`fsfreeze`, a hung network volume); it asks first, and a
//! housekeeping pass waits for the next while an admin request waits for the disk. A disk that
//! answers with an error (full, read-only) answers: retention must still run to free space.

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ShardEnv;

/// How long the disk has to answer.
const ANSWERS_WITHIN: Duration = Duration::from_secs(5);

pub struct DiskProbe {
    index: usize,
    path: PathBuf,
    /// A probe has not returned yet (the disk still holds its thread): no second one starts.
    waiting: Arc<AtomicBool>,
    /// When the last probe started.
    started: Cell<Instant>,
    /// When the disk was found stalled, to log once per stall.
    stalled_since: Cell<Option<Instant>>,
}

impl DiskProbe {
    pub fn new(index: usize, env: &ShardEnv) -> DiskProbe {
        // A `.tmp` file: a start removes it from the log directory if a crash left it.
        let path = pyrite_tsdb::db::Dirs::of_shard(&env.storage_path, index).wal.join("disk-probe.tmp");
        let (waiting, started, stalled_since) = (Arc::default(), Cell::new(Instant::now()), Cell::new(None));
        DiskProbe { index, path, waiting, started, stalled_since }
    }

    /// Whether the disk answers: the answer of a probe started now, or of the one under way
    /// (housekeeping and admin requests share it), once it comes or its time is up.
    pub async fn answers(&self) -> bool {
        if !self.waiting.swap(true, Ordering::AcqRel) {
            self.started.set(Instant::now());
            let (path, waiting) = (self.path.clone(), self.waiting.clone());
            let spawned = crate::threads::named("disk-probe").spawn(move || {
                let _ = std::fs::File::create(&path).and_then(|_| std::fs::remove_file(&path));
                waiting.store(false, Ordering::Release);
            });
            if spawned.is_err() {
                // No thread to probe with: the work goes on, as it did before probes.
                self.waiting.store(false, Ordering::Release);
            }
        }
        let mut answered = true;
        while self.waiting.load(Ordering::Acquire) {
            if self.started.get().elapsed() >= ANSWERS_WITHIN {
                answered = false;
                break;
            }
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
        match (answered, self.stalled_since.get()) {
            (false, None) => {
                tracing::warn!(
                    shard = self.index,
                    "the disk does not answer: storage work that writes files waits until it does"
                );
                self.stalled_since.set(Some(Instant::now()));
            }
            (true, Some(since)) => {
                tracing::info!(shard = self.index, seconds = since.elapsed().as_secs_f64(), "the disk answers again");
                self.stalled_since.set(None);
            }
            _ => {}
        }
        answered
    }

    /// Waits until the disk answers.
    pub async fn until_answers(&self) {
        while !self.answers().await {
            monoio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
