//! Remote write: every `remote_write` entry of the configuration is a queue on a thread of its
//! own that follows each shard's write-ahead log and sends what it reads (`queue.rs`), as
//! upstream's queue managers follow its WAL. Nothing is lost while a receiver is away: the
//! queue's place in each log is saved (`progress.rs`), and the logs keep the segments it has
//! not sent yet (`pyrite_tsdb::wal::LogFollowers`: the oldest segment any queue still needs)
//! until retention deletes them.
//!
//! [`RemoteWriters::apply`] starts, keeps or restarts the queues at start and at every reload: a
//! queue whose entry is unchanged goes on; a changed one stops and starts again from its saved
//! place, so a reload loses nothing either.

mod client;
mod progress;
mod queue;
mod round;
mod sending;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pyrite_core::config::{Config, RemoteWriteConfig};
use pyrite_tsdb::db::Dirs;
use pyrite_tsdb::wal::LogFollowers;

use crate::metrics::Metrics;
use crate::shards::Shards;

/// The most threads the queues' shards take together, shared evenly among the queues (at most
/// 256, which the configuration's check allows): each shard of a queue is a thread, and
/// `max_shards: 20000` had the process run out of memory maps and stop.
const SHARD_THREADS: usize = 2_048;

/// `entry` with its shards within its queue's share of [`SHARD_THREADS`] (entry `i` of
/// `queues`), with a warning if they were cut.
fn within_thread_budget(entry: &RemoteWriteConfig, i: usize, queues: usize) -> RemoteWriteConfig {
    let most = (SHARD_THREADS / queues.max(1)).max(1);
    let mut entry = entry.clone();
    let q = &mut entry.queue;
    if q.max_shards > most {
        tracing::warn!(
            entry = i,
            max_shards = q.max_shards,
            most,
            "remote_write[{i}].queue_config.max_shards is more than Pyrite runs for {queues} queue(s); using {most}"
        );
        q.max_shards = most;
        q.min_shards = q.min_shards.min(most);
    }
    entry
}

/// A queue's thread and what it shares with the rest.
struct Running {
    /// The entry and external labels it was started with: unchanged, it keeps running.
    identity: String,
    metric_labels: Vec<(&'static str, String)>,
    stop: Arc<AtomicBool>,
    needs: Arc<[AtomicU64]>,
    thread: JoinHandle<()>,
}

/// The oldest log segment each queue needs, combined into each shard's [`LogFollowers`].
struct Holds {
    logs: Vec<LogFollowers>,
    queues: Mutex<Vec<Arc<[AtomicU64]>>>,
}

impl Holds {
    fn publish(&self) {
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        for (k, hold) in self.logs.iter().enumerate() {
            hold.set_oldest_needed(
                queues.iter().map(|needs| needs[k].load(Ordering::Acquire)).min().unwrap_or(u64::MAX),
            );
        }
    }
}

/// Every configured remote-write queue.
pub struct RemoteWriters {
    storage: PathBuf,
    shards: Shards,
    metrics: Arc<Metrics>,
    holds: Arc<Holds>,
    running: Mutex<HashMap<PathBuf, Running>>,
}

/// How long shutting down waits for the queues' requests in flight.
const STOP_WAIT: Duration = Duration::from_secs(5);

impl RemoteWriters {
    /// The queues of the server with data in `storage`, whose shards' logs keep segments for
    /// them through `holds` (one per shard, holding every segment until [`Self::apply`]).
    pub fn new(storage: &Path, shards: Shards, metrics: Arc<Metrics>, holds: Vec<LogFollowers>) -> RemoteWriters {
        RemoteWriters {
            storage: storage.to_path_buf(),
            shards,
            metrics,
            holds: Arc::new(Holds { logs: holds, queues: Mutex::default() }),
            running: Mutex::default(),
        }
    }

    /// Makes the queues those of `config`. A queue that cannot be set up (its client) refuses
    /// the whole configuration before anything changes.
    pub fn apply(&self, config: &Config) -> Result<(), String> {
        let queues = config.remote_write.len();
        let mut wanted = Vec::new();
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        for (i, entry) in config.remote_write.iter().enumerate() {
            let client = client::Client::new(entry).map_err(|e| format!("remote_write[{i}]: {e}"))?;
            // The queue's place is kept under its url and name, so a changed queue_config
            // (say) resumes where it was.
            let n = seen.entry((entry.url.clone(), entry.name.clone())).or_default();
            let key = format!("{}\n{}\n{n}", entry.url, entry.name);
            *n += 1;
            let dir =
                self.storage.join("remote_write").join(format!("{:016x}", xxhash_rust::xxh3::xxh3_64(key.as_bytes())));
            // Of the entry as written: a queue keeps running when others come or go and its
            // share of the threads changes.
            let identity = format!("{entry:?}\n{:?}", config.global.external_labels);
            wanted.push((dir, identity, within_thread_budget(entry, i, queues), client));
        }
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let keep: Vec<PathBuf> = wanted
            .iter()
            .filter(|(dir, identity, ..)| running.get(dir).is_some_and(|r| &r.identity == identity))
            .map(|(dir, ..)| dir.clone())
            .collect();
        let going: Vec<PathBuf> = running.keys().filter(|d| !keep.contains(d)).cloned().collect();
        let stopping: Vec<Running> = going.iter().filter_map(|d| running.remove(d)).collect();
        self.stop(stopping, None);
        for (dir, identity, entry, client) in wanted.into_iter().filter(|(dir, ..)| !keep.contains(dir)) {
            let progress = progress::ProgressFile::new(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let needs: Arc<[AtomicU64]> = (0..self.shards.len()).map(|_| AtomicU64::new(0)).collect();
            self.holds.queues.lock().unwrap_or_else(|p| p.into_inner()).push(needs.clone());
            let stop = Arc::new(AtomicBool::new(false));
            let metric_labels = vec![("remote_name", entry.queue_name()), ("url", entry.url.clone())];
            let holds = self.holds.clone();
            let setup = queue::QueueSetup {
                config: entry,
                external_labels: config.global.external_labels.clone(),
                metric_labels: metric_labels.clone(),
                client,
                progress,
                logs: (0..self.shards.len()).map(|k| Dirs::of_shard(&self.storage, k).wal).collect(),
                shards: self.shards.clone(),
                metrics: self.metrics.clone(),
                needs: needs.clone(),
                followed: self.holds.logs.clone(),
                publish_needs: Arc::new(move || holds.publish()),
                stop: stop.clone(),
            };
            let thread = std::thread::Builder::new()
                .name("remote-write".into())
                .spawn(move || queue::run(setup))
                .map_err(|e| format!("cannot start a remote-write thread: {e}"))?;
            running.insert(dir, Running { identity, metric_labels, stop, needs, thread });
        }
        self.remove_stale_dirs(&running);
        drop(running);
        self.holds.publish();
        Ok(())
    }

    /// Stops every queue (at shutdown), waiting at most a few seconds for requests in flight;
    /// each resumes from its saved place at the next start.
    pub fn stop_all(&self) {
        let all: Vec<Running> =
            self.running.lock().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, r)| r).collect();
        self.stop(all, Some(Instant::now() + STOP_WAIT));
    }

    /// Tells `queues` to stop and waits for them (until `deadline`, if any).
    fn stop(&self, queues: Vec<Running>, deadline: Option<Instant>) {
        for q in &queues {
            q.stop.store(true, Ordering::Relaxed);
        }
        for q in queues {
            while deadline.is_some_and(|d| Instant::now() < d) && !q.thread.is_finished() {
                std::thread::sleep(Duration::from_millis(20));
            }
            if deadline.is_none() || q.thread.is_finished() {
                let _ = q.thread.join();
            }
            self.holds.queues.lock().unwrap_or_else(|p| p.into_inner()).retain(|n| !Arc::ptr_eq(n, &q.needs));
            self.metrics.remote.remove(&q.metric_labels);
        }
    }

    /// Deletes the saved places of queues no longer configured.
    fn remove_stale_dirs(&self, running: &HashMap<PathBuf, Running>) {
        let Ok(entries) = std::fs::read_dir(self.storage.join("remote_write")) else { return };
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if !running.contains_key(&path) {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }
}
