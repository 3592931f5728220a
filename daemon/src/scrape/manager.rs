//! The targets being scraped, across every shard, and what the API shows about each.
//!
//! A start or reload hands [`ScrapeManager::apply`] the targets of the configuration. A target
//! identical to a running one keeps its loop, so its schedule and scrape cache survive; a new
//! one starts on the shard with the fewest targets (targets stay balanced and never move); a
//! removed one is told to stop, and marks its series stale as it goes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use pyrite_core::scrape::{DroppedTarget, MetricMetadata, Target, TargetSet};

use super::ScrapeSink;

/// What the last scrape of a target did.
#[derive(Debug, Clone, Default)]
pub struct ScrapeStatus {
    /// None until the first scrape ends; then whether it succeeded.
    pub up: Option<bool>,
    pub last_error: String,
    /// Wall-clock start of the last scrape, Unix ms.
    pub last_scrape: Option<i64>,
    pub last_duration_seconds: f64,
}

/// A target with a running scrape loop on `shard`.
pub struct ActiveTarget {
    pub target: Target,
    pub shard: usize,
    status: Mutex<ScrapeStatus>,
    metadata: Mutex<Arc<[(String, MetricMetadata)]>>,
    stop: (flume::Sender<()>, flume::Receiver<()>),
}

/// Locks a mutex whose data stays consistent even if a holder panicked (plain values).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ActiveTarget {
    fn new(target: Target, shard: usize) -> Self {
        ActiveTarget {
            target,
            shard,
            status: Mutex::default(),
            metadata: Mutex::new(Arc::new([])),
            stop: flume::bounded(1),
        }
    }

    pub fn status(&self) -> ScrapeStatus {
        lock(&self.status).clone()
    }

    pub fn set_status(&self, status: ScrapeStatus) {
        *lock(&self.status) = status;
    }

    /// HELP and TYPE of the metric families of the last successful scrape, by name.
    pub fn metadata(&self) -> Arc<[(String, MetricMetadata)]> {
        lock(&self.metadata).clone()
    }

    pub fn set_metadata(&self, metadata: Vec<(String, MetricMetadata)>) {
        *lock(&self.metadata) = metadata.into();
    }

    /// Resolves when the target has been removed; its loop then ends.
    pub async fn stopped(&self) {
        let _ = self.stop.1.recv_async().await;
    }
}

/// Every active target, and the ones relabeling dropped; the API reads them,
/// [`ScrapeManager::apply`] changes them.
pub struct ScrapeManager {
    sink: ScrapeSink,
    active: Mutex<Vec<Arc<ActiveTarget>>>,
    dropped: Mutex<Arc<Dropped>>,
}

/// What an [`ScrapeManager::apply`] did, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub kept: usize,
    pub started: usize,
    pub stopped: usize,
}

/// The targets relabeling dropped: those kept (`keep_dropped_targets`), and how many each
/// scrape pool dropped.
#[derive(Debug, Default)]
pub struct Dropped {
    pub kept: Vec<DroppedTarget>,
    pub counts: BTreeMap<String, u64>,
}

impl ScrapeManager {
    /// No targets yet; scrape loops will write to `sink`.
    pub fn new(sink: ScrapeSink) -> ScrapeManager {
        ScrapeManager { sink, active: Mutex::default(), dropped: Mutex::default() }
    }

    /// The active targets, in the order the configuration lists them.
    pub fn active(&self) -> Vec<Arc<ActiveTarget>> {
        lock(&self.active).clone()
    }

    /// The targets relabeling dropped that are kept, with their discovered labels, and how
    /// many each pool dropped.
    pub fn dropped(&self) -> Arc<Dropped> {
        lock(&self.dropped).clone()
    }

    /// Makes `set` the scraped set: keeps identical running targets, starts new ones on the
    /// least-loaded shard, stops the rest.
    pub fn apply(&self, set: TargetSet) -> Applied {
        let shards = &self.sink.shards;
        for reason in &set.invalid {
            tracing::warn!(%reason, "target skipped");
        }
        *lock(&self.dropped) = Arc::new(Dropped { kept: set.dropped, counts: set.dropped_counts });
        let targets = set.active;
        let mut active = lock(&self.active);
        let mut previous: Vec<Option<Arc<ActiveTarget>>> = active.drain(..).map(Some).collect();
        // Running targets by URL and labels, so that matching stays linear in the target count.
        let mut by_key: HashMap<(String, String), Vec<usize>> = HashMap::new();
        for (i, running) in previous.iter().enumerate().filter_map(|(i, p)| Some((i, p.as_ref()?))) {
            let t = &running.target;
            by_key.entry((t.url(), t.labels.to_string())).or_default().push(i);
        }
        let matched: Vec<(Target, Option<Arc<ActiveTarget>>)> = targets
            .into_iter()
            .map(|target| {
                let candidates = by_key.get(&(target.url(), target.labels.to_string())).map_or(&[][..], Vec::as_slice);
                let same = candidates.iter().find(|&&i| previous[i].as_ref().is_some_and(|p| p.target == target));
                let running = same.and_then(|&i| previous[i].take());
                (target, running)
            })
            .collect();
        // New targets go where there is least to do, once the kept ones are counted.
        let mut load = vec![0usize; shards.len()];
        matched.iter().filter_map(|(_, running)| running.as_ref()).for_each(|r| load[r.shard] += 1);
        let mut applied = Applied::default();
        let next = matched
            .into_iter()
            .map(|(target, running)| match running {
                Some(running) => {
                    applied.kept += 1;
                    running
                }
                None => {
                    let shard = (0..load.len()).min_by_key(|&s| load[s]).unwrap_or(0);
                    load[shard] += 1;
                    let started = Arc::new(ActiveTarget::new(target, shard));
                    let (target, sink) = (started.clone(), self.sink.clone());
                    shards.spawn(shard, move || super::run_target(target, sink));
                    applied.started += 1;
                    started
                }
            })
            .collect();
        for gone in previous.into_iter().flatten() {
            let _ = gone.stop.0.try_send(());
            applied.stopped += 1;
        }
        *active = next;
        applied
    }
}
