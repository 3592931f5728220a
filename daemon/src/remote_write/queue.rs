//! One `remote_write` entry's queue: it follows every shard's log and sends what it reads, in
//! rounds. This is the reading side, on the queue's thread; `sending.rs` is the sending side,
//! on threads of its own, so the next rounds are read while earlier ones are sent.
//!
//! A round reads every log from where the last one ended until it holds `capacity` samples per
//! queue shard or `batch_send_deadline` has passed, and names its series. The sending side
//! splits it among the queue's shards and saves it as acknowledged once it is answered, which
//! lets the logs' segments before it go. A request is retried with backoff (`min_backoff`
//! doubling to `max_backoff`) for as long as the receiver answers 5xx or 429 or cannot be
//! reached, so a receiver that is down loses nothing for as long as the logs keep their
//! segments; samples older than `sample_age_limit` (if set) are dropped instead. The number of
//! shards follows the backlog, as upstream's: the time sending takes per sample times the rate
//! samples come in, plus a twentieth of the backlog (how far the newest sample sent is behind
//! the newest logged) per second.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyrite_core::config::RemoteWriteConfig;
use pyrite_core::labels::Labels;
use pyrite_tsdb::wal::follow::{Follower, Limit, Position, Trouble};
use pyrite_tsdb::wal::LogFollowers;

use super::client::Client;
use super::progress::{InFlight, Progress, ProgressFile};
use super::round::{Gathering, Round, SentLabels};
use super::sending;
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::shards::Shards;

/// How often an idle queue looks at the logs.
const POLL: Duration = Duration::from_millis(50);
/// Bytes of each log read at a time, so that a round overshoots its size by little.
const READ_SLICE: usize = 64 << 10;

/// Everything a queue's thread needs.
pub struct QueueSetup {
    pub config: RemoteWriteConfig,
    pub external_labels: Labels,
    /// `remote_name` and `url`, the labels of its metrics.
    pub metric_labels: Vec<(&'static str, String)>,
    pub client: Client,
    pub progress: ProgressFile,
    /// Each shard's log directory.
    pub logs: Vec<PathBuf>,
    pub shards: Shards,
    pub metrics: Arc<Metrics>,
    /// Per shard, the oldest log segment this queue still needs (see `mod.rs`).
    pub needs: Arc<[AtomicU64]>,
    /// What each shard's log shares with its followers (for the newest sample time logged).
    pub followed: Vec<LogFollowers>,
    pub publish_needs: Arc<dyn Fn() + Send + Sync>,
    pub stop: Arc<AtomicBool>,
}

pub fn run(q: QueueSetup) {
    let name = q.metric_labels[0].1.clone();
    let loaded = q.progress.load(q.logs.len()).unwrap_or_else(|e| {
        tracing::warn!(queue = name, error = %e, "cannot read the remote-write progress; starting at the logs' ends");
        None
    });
    let (progress, skip_before) = match loaded {
        Some(p) => (p, i64::MIN),
        None => {
            let acked = q
                .logs
                .iter()
                .map(|dir| Follower::newest_segment(dir).unwrap_or(Position { segment: 0, offset: 0 }))
                .collect();
            (Progress { acked, rounds: Vec::new() }, now_ms())
        }
    };
    let queue = &q.config.queue;
    let m = &q.metrics.remote;
    let labels = &q.metric_labels;
    m.shards.get_or_create(labels).set(queue.min_shards as i64);
    m.shards_min.get_or_create(labels).set(queue.min_shards as i64);
    m.shards_max.get_or_create(labels).set(queue.max_shards as i64);
    m.shard_capacity.get_or_create(labels).set(queue.capacity as i64);
    m.max_samples_per_send.get_or_create(labels).set(queue.max_samples_per_send as i64);
    save_acked(&q, &progress);
    tracing::info!(queue = name, url = q.config.url, "remote write started");
    let shards = AtomicUsize::new(queue.min_shards);
    // A rendezvous: a round read waits until the sending side has room for it (at most
    // `sending::ROUNDS_IN_FLIGHT` rounds in flight), so reading stays one round ahead.
    let (hand, take) = flume::bounded(0);
    let acked = progress.acked.clone();
    std::thread::scope(|scope| {
        let sending = std::thread::Builder::new()
            .name("remote-write-send".into())
            .spawn_scoped(scope, || sending::send_rounds(&q, acked, take, &shards));
        match sending {
            Ok(_) => read_rounds(&q, progress, skip_before, hand, &shards),
            Err(e) => tracing::error!(queue = name, error = %e, "cannot start a remote-write thread"),
        }
    });
    tracing::info!(queue = name, "remote write stopped");
}

/// A round read from the logs, handed from the reading side to the sending side.
pub struct ReadRound {
    pub round: Round,
    /// Where it ends in each shard's log.
    pub end: Vec<Position>,
    /// The queue shards it is split over.
    pub shards: usize,
    /// Samples read, sent or not.
    pub read: usize,
}

/// The reading side: reads rounds from the logs, one ahead of the rounds being sent, and hands
/// them over; returns when told to stop or when the sending side has stopped.
fn read_rounds(
    q: &QueueSetup,
    progress: Progress,
    mut skip_before: i64,
    hand: flume::Sender<ReadRound>,
    shards: &AtomicUsize,
) {
    let name = &q.metric_labels[0].1;
    let queue = &q.config.queue;
    let m = &q.metrics.remote;
    let mut read_to = progress.acked;
    let mut followers = followers_at(q, &read_to);
    // Rounds cut short by a crash are read again exactly, and split as they were.
    let mut again: VecDeque<InFlight> = progress.rounds.into();
    let mut sent_labels =
        SentLabels::new(q.logs.len(), q.external_labels.clone(), q.config.write_relabel_configs.clone());
    while !q.stop.load(Ordering::Relaxed) {
        let again_now = again.pop_front();
        let round_shards = match &again_now {
            // Within max_shards: the file is outside input, and a count of 0 or billions must
            // not crash the queue.
            Some(r) => {
                let n = r.shards.clamp(1, queue.max_shards.max(1));
                shards.store(n, Ordering::Relaxed);
                m.shards.get_or_create(&q.metric_labels).set(n as i64);
                n
            }
            None => shards.load(Ordering::Relaxed),
        };
        let mut gathering = Gathering::new(skip_before, q.config.send_exemplars, q.config.send_native_histograms);
        let started = Instant::now();
        let target = round_shards * queue.capacity;
        loop {
            let before: Vec<Position> = followers.iter().map(Follower::position).collect();
            for (k, follower) in followers.iter_mut().enumerate() {
                let limit = match &again_now {
                    Some(r) => Limit::Until(r.end[k]),
                    None => Limit::Bytes(READ_SLICE),
                };
                match follower.read(limit, |record| gathering.take(&mut sent_labels, k, record)) {
                    Ok(trouble) => report(name, k, &trouble),
                    Err(e) => tracing::warn!(queue = name, shard = k, error = %e, "cannot read the write-ahead log"),
                }
            }
            let deadline = started.elapsed() >= queue.batch_send_deadline.as_std();
            if again_now.is_some() || gathering.samples >= target || deadline || q.stop.load(Ordering::Relaxed) {
                break;
            }
            if followers.iter().map(Follower::position).eq(before) {
                std::thread::sleep(POLL);
            }
        }
        let end: Vec<Position> = followers.iter().map(Follower::position).collect();
        let read = gathering.samples;
        let (round, dropped) = match gathering.finish(&mut sent_labels, &q.shards) {
            Ok(done) => done,
            Err(e) => {
                // Read the round again later, from where the last one ended.
                tracing::warn!(queue = name, error = %e, "round not sent; trying again");
                followers = followers_at(q, &read_to);
                if let Some(r) = again_now {
                    again.push_front(r);
                }
                if !pause(q, Duration::from_secs(1)) {
                    break;
                }
                continue;
            }
        };
        m.samples_in.inc_by(read as u64);
        m.samples_dropped.get_or_create(&q.metric_labels).inc_by(dropped as u64);
        if let Some(t) = q.followed.iter().filter_map(LogFollowers::newest_logged).max() {
            m.highest_timestamp.set(t as f64 / 1000.0);
        }
        if end == read_to {
            continue;
        }
        read_to = end.clone();
        // Samples appended before this queue existed are not its to send; after its first
        // round everything it reads is.
        skip_before = i64::MIN;
        if hand.send(ReadRound { round, end, shards: round_shards, read }).is_err() {
            break;
        }
    }
}

/// A follower of each shard's log, at `positions`.
fn followers_at(q: &QueueSetup, positions: &[Position]) -> Vec<Follower> {
    q.logs.iter().zip(positions).map(|(dir, &p)| Follower::new(dir, p)).collect()
}

/// Saves `progress` and lets the logs' segments before it go.
pub fn save_acked(q: &QueueSetup, progress: &Progress) {
    if let Err(e) = q.progress.save(progress) {
        tracing::warn!(queue = q.metric_labels[0].1, error = %e, "cannot save the remote-write progress");
    }
    for (k, p) in progress.acked.iter().enumerate() {
        q.needs[k].store(p.segment, Ordering::Release);
        let consumer = vec![("consumer", q.metric_labels[0].1.clone()), ("shard", k.to_string())];
        q.metrics.remote.watcher_segment.get_or_create(&consumer).set(p.segment as i64);
    }
    (q.publish_needs)();
}

fn report(queue: &str, shard: usize, trouble: &[Trouble]) {
    for t in trouble {
        match t {
            Trouble::Gap { from, to } => tracing::warn!(
                queue,
                shard,
                from,
                to,
                "write-ahead log segments were deleted before remote write read them (retention, or unsent for 4 hours); their samples are not sent"
            ),
            Trouble::Damage { segment, offset, bytes } => {
                tracing::warn!(queue, shard, segment, offset, bytes, "damaged write-ahead log skipped by remote write")
            }
        }
    }
}

/// Sleeps `how_long`, waking early if the queue is told to stop; false if it was.
pub fn pause(q: &QueueSetup, how_long: Duration) -> bool {
    const NAP: Duration = Duration::from_millis(100);
    // Past what the clock can hold, the pause lasts until the queue stops.
    let until = Instant::now().checked_add(how_long);
    loop {
        if q.stop.load(Ordering::Relaxed) {
            return false;
        }
        let left = until.map_or(NAP, |until| until.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(NAP));
    }
}
