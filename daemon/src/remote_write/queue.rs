//! One `remote_write` entry's queue, on a thread of its own: it follows every shard's log and
//! sends what it reads, in rounds.
//!
//! A round reads every log from where the last one ended until it holds `capacity` samples per
//! shard or `batch_send_deadline` has passed; saves the round's end (`progress.rs`); splits its
//! series among the queue's shards by label hash (so a series' samples always go in order
//! down one shard); sends each shard's requests of at most `max_samples_per_send` samples,
//! the shards at once; and, once every request has been answered, saves the round's end as
//! acknowledged and lets the logs' segments before it go. A request is retried with backoff
//! (`min_backoff` doubling to `max_backoff`) for as long as the receiver answers 5xx or 429 or
//! cannot be reached, so a receiver that is down loses nothing for as long as the logs keep
//! their segments; samples older than `sample_age_limit` (if set) are dropped instead. The
//! number of shards follows the backlog between rounds, as upstream's: the time sending takes
//! per sample times the rate samples come in, plus a twentieth of the backlog per second.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyrite_core::config::RemoteWriteConfig;
use pyrite_core::labels::Labels;
use pyrite_core::remote::send::{encode_v1, encode_v2, OutSeries};
use pyrite_core::remote::v2::WriteMessage;
use pyrite_tsdb::wal::follow::{Follower, Limit, Position, Trouble};

use super::client::{Client, Outcome};
use super::progress::{Progress, ProgressFile, Round};
use super::round::{Gathering, RoundSeries, SentLabels};
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::shards::Shards;

/// How often an idle queue looks at the logs.
const POLL: Duration = Duration::from_millis(50);
/// How often the shard count is worked out again (upstream's `shardUpdateDuration`).
const RESHARD_EVERY: Duration = Duration::from_secs(10);
/// A new shard count is taken only if it differs from the current one by more than this.
const RESHARD_TOLERANCE: f64 = 0.3;
/// Assumed bytes per sample in the log, to bound how much a round reads at once.
const LOG_BYTES_PER_SAMPLE: usize = 12;

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
    pub publish_needs: Arc<dyn Fn() + Send + Sync>,
    pub stop: Arc<AtomicBool>,
}

/// What sending one round did.
#[derive(Default)]
struct Sent {
    samples: usize,
    failed: usize,
    dropped: usize,
    /// Seconds spent in requests, summed over the queue's shards.
    busy: f64,
    highest: Option<i64>,
    /// The queue was told to stop before every request was answered.
    stopped: bool,
}

/// Rates over the last [`RESHARD_EVERY`], for the shard count.
#[derive(Default, Clone, Copy)]
struct Window {
    read: usize,
    sent: usize,
    busy: f64,
    highest_read: Option<i64>,
    highest_sent: Option<i64>,
}

pub fn run(q: QueueSetup) {
    let name = q.metric_labels[0].1.clone();
    let loaded = q.progress.load(q.logs.len()).unwrap_or_else(|e| {
        tracing::warn!(queue = name, error = %e, "cannot read the remote-write progress; starting at the logs' ends");
        None
    });
    let (mut progress, mut skip_before) = match loaded {
        Some(p) => (p, i64::MIN),
        None => {
            let acked = q
                .logs
                .iter()
                .map(|dir| Follower::newest_segment(dir).unwrap_or(Position { segment: 0, offset: 0 }))
                .collect();
            (Progress { acked, round: None }, now_ms())
        }
    };
    let mut followers = followers_at(&q, &progress.acked);
    let queue = &q.config.queue;
    let mut shards = queue.min_shards;
    let m = &q.metrics.remote;
    let labels = &q.metric_labels;
    m.shards.get_or_create(labels).set(shards as i64);
    m.shards_min.get_or_create(labels).set(queue.min_shards as i64);
    m.shards_max.get_or_create(labels).set(queue.max_shards as i64);
    m.shard_capacity.get_or_create(labels).set(queue.capacity as i64);
    m.max_samples_per_send.get_or_create(labels).set(queue.max_samples_per_send as i64);
    save_acked(&q, &progress);
    let mut sent_labels =
        SentLabels::new(q.logs.len(), q.external_labels.clone(), q.config.write_relabel_configs.clone());
    let mut window = Window::default();
    let mut window_start = Instant::now();
    tracing::info!(queue = name, url = q.config.url, "remote write started");
    while !q.stop.load(Ordering::Relaxed) {
        // A round cut short by a crash is read again exactly, and split as it was (within
        // max_shards: the file is outside input, and a count of 0 or billions must not crash).
        let again = progress.round.take();
        if let Some(r) = &again {
            shards = r.shards.clamp(1, queue.max_shards.max(1));
            m.shards.get_or_create(labels).set(shards as i64);
        }
        let mut gathering = Gathering::new(skip_before);
        let started = Instant::now();
        let target = shards * queue.capacity;
        let budget = (target * LOG_BYTES_PER_SAMPLE / q.logs.len()).max(64 << 10);
        loop {
            for (k, follower) in followers.iter_mut().enumerate() {
                let limit = match &again {
                    Some(r) => Limit::Until(r.end[k]),
                    None => Limit::Bytes(budget),
                };
                match follower.read(limit, |record| gathering.take(&mut sent_labels, k, record)) {
                    Ok(trouble) => report(&name, k, &trouble),
                    Err(e) => tracing::warn!(queue = name, shard = k, error = %e, "cannot read the write-ahead log"),
                }
            }
            let deadline = started.elapsed() >= queue.batch_send_deadline.as_std();
            if again.is_some() || gathering.samples >= target || deadline || q.stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(POLL);
        }
        let end: Vec<Position> = followers.iter().map(Follower::position).collect();
        let read = gathering.samples;
        let highest_read = gathering.highest;
        let (round, dropped) = match gathering.finish(&mut sent_labels, &q.shards) {
            Ok(done) => done,
            Err(e) => {
                // Read the round again later, from where the last one ended.
                tracing::warn!(queue = name, error = %e, "round not sent; trying again");
                followers = followers_at(&q, &progress.acked);
                progress.round = again;
                if !pause(&q, Duration::from_secs(1)) {
                    break;
                }
                continue;
            }
        };
        m.samples_in.inc_by(read as u64);
        m.samples_dropped.get_or_create(labels).inc_by(dropped as u64);
        if let Some(t) = highest_read {
            let seconds = t as f64 / 1000.0;
            if seconds > m.highest_timestamp.get() {
                m.highest_timestamp.set(seconds);
            }
        }
        window.read += read;
        window.highest_read = window.highest_read.max(highest_read);
        if end == progress.acked {
            continue;
        }
        let series = round.series();
        if !series.is_empty() {
            progress.round = Some(Round { end: end.clone(), shards });
            if let Err(e) = q.progress.save(&progress) {
                tracing::warn!(queue = name, error = %e, "cannot save the remote-write progress");
            }
            let sent = send_round(&q, &series, shards);
            if sent.stopped {
                break;
            }
            m.samples_dropped.get_or_create(labels).inc_by(sent.dropped as u64);
            window.sent += sent.samples;
            window.busy += sent.busy;
            window.highest_sent = window.highest_sent.max(sent.highest);
        }
        progress = Progress { acked: end, round: None };
        save_acked(&q, &progress);
        // Samples appended before this queue existed are not its to send; after its first
        // round everything it reads is.
        skip_before = i64::MIN;
        if window_start.elapsed() >= RESHARD_EVERY {
            shards = reshard(&q, shards, &window, window_start.elapsed());
            window = Window { highest_sent: window.highest_sent, ..Window::default() };
            window_start = Instant::now();
        }
    }
    tracing::info!(queue = name, "remote write stopped");
}

/// A follower of each shard's log, at `positions`.
fn followers_at(q: &QueueSetup, positions: &[Position]) -> Vec<Follower> {
    q.logs.iter().zip(positions).map(|(dir, &p)| Follower::new(dir, p)).collect()
}

/// Saves `progress` and lets the logs' segments before it go.
fn save_acked(q: &QueueSetup, progress: &Progress) {
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
                "write-ahead log segments were deleted before remote write read them (retention); their samples are not sent"
            ),
            Trouble::Damage { segment, offset, bytes } => {
                tracing::warn!(queue, shard, segment, offset, bytes, "damaged write-ahead log skipped by remote write")
            }
        }
    }
}

/// Sends a round's series over `shards` shards at once; returns when every request was
/// answered (or given up on), or the queue was told to stop.
fn send_round(q: &QueueSetup, series: &[RoundSeries<'_>], shards: usize) -> Sent {
    let mut parts: Vec<Vec<&RoundSeries<'_>>> = vec![Vec::new(); shards];
    for s in series {
        let hash = xxhash_rust::xxh3::xxh3_64(s.labels);
        parts[(hash % shards as u64) as usize].push(s);
    }
    let pending = series.iter().map(|s| s.samples.len()).sum::<usize>();
    q.metrics.remote.samples_pending.get_or_create(&q.metric_labels).set(pending as i64);
    let results: Vec<Sent> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            parts.iter().filter(|p| !p.is_empty()).map(|part| scope.spawn(move || send_part(q, part))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Sent { stopped: true, ..Sent::default() })).collect()
    });
    let mut total = Sent::default();
    for r in results {
        total.samples += r.samples;
        total.failed += r.failed;
        total.dropped += r.dropped;
        total.busy += r.busy;
        total.highest = total.highest.max(r.highest);
        total.stopped |= r.stopped;
    }
    total
}

/// One shard's share of a round, in requests of at most `max_samples_per_send` samples sent
/// one after another (a series longer than that spans consecutive requests, in order).
fn send_part(q: &QueueSetup, part: &[&RoundSeries<'_>]) -> Sent {
    let max = q.config.queue.max_samples_per_send.max(1);
    let mut sent = Sent::default();
    let mut batch: Vec<OutSeries> = Vec::new();
    let mut room = max;
    for s in part {
        let mut rest = s.samples;
        while !rest.is_empty() {
            let (now, later) = rest.split_at(rest.len().min(room));
            batch.push((s.labels, now));
            room -= now.len();
            rest = later;
            if room == 0 {
                send_batch(q, &batch, &mut sent);
                if sent.stopped {
                    return sent;
                }
                batch.clear();
                room = max;
            }
        }
    }
    if !batch.is_empty() {
        send_batch(q, &batch, &mut sent);
    }
    sent
}

/// A series of a request being retried, its samples past `sample_age_limit` taken out.
type AgedSeries<'a> = (&'a [u8], Vec<(i64, f64)>);

/// Sends one request until it is answered for good; counts what became of its samples.
fn send_batch(q: &QueueSetup, batch: &[OutSeries], sent: &mut Sent) {
    let m = &q.metrics.remote;
    let labels = &q.metric_labels;
    let queue = &q.config.queue;
    let mut backoff = queue.min_backoff.as_std();
    // The batch as retried once samples past `sample_age_limit` were taken out of it.
    let mut aged: Option<Vec<AgedSeries>> = None;
    loop {
        let view: Vec<OutSeries>;
        let now: &[OutSeries] = match &aged {
            None => batch,
            Some(kept) => {
                view = kept.iter().filter(|(_, s)| !s.is_empty()).map(|(l, s)| (*l, s.as_slice())).collect();
                &view
            }
        };
        let samples: usize = now.iter().map(|(_, s)| s.len()).sum();
        if samples == 0 {
            return;
        }
        let body = match q.config.protobuf_message {
            WriteMessage::V1 => encode_v1(now),
            WriteMessage::V2 => encode_v2(now),
        };
        let started = Instant::now();
        let outcome = q.client.send(&body);
        let took = started.elapsed().as_secs_f64();
        sent.busy += took;
        m.sent_batch_duration.get_or_create(labels).observe(took);
        m.bytes.get_or_create(labels).inc_by(body.len() as u64);
        let wait = match outcome {
            Outcome::Stored => {
                sent.samples += samples;
                m.samples.get_or_create(labels).inc_by(samples as u64);
                m.samples_pending.get_or_create(labels).dec_by(samples as i64);
                let highest = now.iter().filter_map(|(_, s)| s.last().map(|x| x.0)).max();
                sent.highest = sent.highest.max(highest);
                if let Some(t) = sent.highest {
                    let g = m.highest_sent.get_or_create(labels);
                    if t as f64 / 1000.0 > g.get() {
                        g.set(t as f64 / 1000.0);
                    }
                }
                return;
            }
            Outcome::Refused { why } => {
                tracing::error!(queue = labels[0].1, samples, error = why, "remote write refused; samples dropped");
                sent.failed += samples;
                m.samples_failed.get_or_create(labels).inc_by(samples as u64);
                m.samples_pending.get_or_create(labels).dec_by(samples as i64);
                return;
            }
            Outcome::Retry { after, why } => {
                tracing::warn!(queue = labels[0].1, samples, error = why, "remote write failed; retrying");
                m.samples_retried.get_or_create(labels).inc_by(samples as u64);
                after.unwrap_or(backoff)
            }
        };
        if !pause(q, wait) {
            sent.stopped = true;
            return;
        }
        backoff = (backoff * 2).min(queue.max_backoff.as_std());
        let limit = queue.sample_age_limit.millis();
        if limit > 0 {
            let oldest_kept = now_ms() - limit;
            let kept = aged.get_or_insert_with(|| batch.iter().map(|(l, s)| (*l, s.to_vec())).collect());
            let before: usize = kept.iter().map(|(_, s)| s.len()).sum();
            for (_, s) in kept.iter_mut() {
                s.retain(|x| x.0 >= oldest_kept);
            }
            let after: usize = kept.iter().map(|(_, s)| s.len()).sum();
            sent.dropped += before - after;
            m.samples_pending.get_or_create(labels).dec_by((before - after) as i64);
        }
    }
}

/// Sleeps `how_long`, waking early if the queue is told to stop; false if it was.
fn pause(q: &QueueSetup, how_long: Duration) -> bool {
    let until = Instant::now() + how_long;
    while Instant::now() < until {
        if q.stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(100)));
    }
    !q.stop.load(Ordering::Relaxed)
}

/// The shard count for the next rounds (see the module docs).
fn reshard(q: &QueueSetup, shards: usize, w: &Window, took: Duration) -> usize {
    let desired = desired_shards(shards, w, took);
    q.metrics.remote.shards_desired.get_or_create(&q.metric_labels).set(desired);
    let next = next_shards(shards, desired, q.config.queue.min_shards, q.config.queue.max_shards);
    if next != shards {
        tracing::info!(queue = q.metric_labels[0].1, from = shards, to = next, "remote write resharding");
        q.metrics.remote.shards.get_or_create(&q.metric_labels).set(next as i64);
    }
    next
}

/// Upstream's estimate of the shards needed: the time sending takes per sample, times the
/// rate samples come in plus a twentieth of the backlog (samples behind) per second.
fn desired_shards(shards: usize, w: &Window, took: Duration) -> f64 {
    if w.sent == 0 {
        return shards as f64;
    }
    let in_rate = w.read as f64 / took.as_secs_f64().max(1e-3);
    let time_per_sample = w.busy / w.sent as f64;
    let behind = match (w.highest_read, w.highest_sent) {
        (Some(r), Some(s)) => ((r - s) as f64 / 1000.0).max(0.0),
        _ => 0.0,
    };
    time_per_sample * (in_rate + 0.05 * behind * in_rate)
}

/// The shard count to take for `desired`: unchanged within the tolerance, else rounded up
/// within the configured bounds.
fn next_shards(shards: usize, desired: f64, min: usize, max: usize) -> usize {
    let within = (1.0 - RESHARD_TOLERANCE) * shards as f64..=(1.0 + RESHARD_TOLERANCE) * shards as f64;
    if within.contains(&desired) {
        return shards;
    }
    (desired.ceil() as usize).clamp(min.max(1), max.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_follow_the_backlog_within_bounds() {
        let secs = Duration::from_secs(10);
        // 10k samples/s in, each taking 0.5 ms to send: 5 shards' worth.
        let caught_up =
            Window { read: 100_000, sent: 100_000, busy: 50.0, highest_read: Some(60_000), highest_sent: Some(60_000) };
        assert!((desired_shards(1, &caught_up, secs) - 5.0).abs() < 1e-9);
        // 100 s behind: a twentieth of the backlog per second more.
        let behind = Window { highest_sent: Some(-40_000), ..caught_up };
        assert!((desired_shards(1, &behind, secs) - 30.0).abs() < 1e-9);
        let idle = Window::default();
        assert_eq!(desired_shards(3, &idle, secs), 3.0);
        assert_eq!(next_shards(4, 4.9, 1, 50), 4, "within 30 %");
        assert_eq!(next_shards(4, 5.3, 1, 50), 6);
        assert_eq!(next_shards(4, 1.2, 1, 50), 2);
        assert_eq!(next_shards(4, 90.0, 1, 50), 50);
        assert_eq!(next_shards(4, 0.0, 2, 50), 2);
    }
}
