//! One `remote_write` entry's queue: it follows every shard's log and sends what it reads, in
//! rounds, on two threads: one reads the next round while the other sends the current one.
//!
//! A round reads every log from where the last one ended until it holds `capacity` samples per
//! shard or `batch_send_deadline` has passed. The sending side saves the round's end as in
//! flight (`progress.rs`); splits its series among the queue's shards by label hash (so a
//! series' samples always go in order down one shard); sends each shard's requests of at most
//! `max_samples_per_send` samples, the shards at once; and, once every request has been
//! answered, saves the round's end as acknowledged and lets the logs' segments before it go.
//! Only then does it take the next round, so at most one round is ever in flight and a crash
//! sends exactly it again. A request is retried with backoff (`min_backoff` doubling to
//! `max_backoff`) for as long as the receiver answers 5xx or 429 or cannot be reached, so a
//! receiver that is down loses nothing for as long as the logs keep their segments; samples
//! older than `sample_age_limit` (if set) are dropped instead. The number of shards follows the
//! backlog, as upstream's: the time sending takes per sample times the rate samples come in,
//! plus a twentieth of the backlog (how far the newest sample sent is behind the newest logged)
//! per second.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyrite_core::config::RemoteWriteConfig;
use pyrite_core::labels::Labels;
use pyrite_core::remote::send::{encode_v1, encode_v2, OutSeries};
use pyrite_core::remote::v2::WriteMessage;
use pyrite_tsdb::wal::follow::{Follower, Limit, Position, Trouble};
use pyrite_tsdb::wal::LogFollowers;

use super::client::{Client, Outcome};
use super::progress::{InFlight, Progress, ProgressFile};
use super::round::{Gathering, Round, RoundSeries, SentLabels};
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::shards::Shards;

/// How often an idle queue looks at the logs.
const POLL: Duration = Duration::from_millis(50);
/// How often the shard count is worked out again (upstream's `shardUpdateDuration`).
const RESHARD_EVERY: Duration = Duration::from_secs(10);
/// A new shard count is taken only if it differs from the current one by more than this.
const RESHARD_TOLERANCE: f64 = 0.3;
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
    /// The newest sample time in the logs, read or not.
    newest_logged: Option<i64>,
    highest_sent: Option<i64>,
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
            (Progress { acked, round: None }, now_ms())
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
    // A rendezvous: the next round waits, read, until the one being sent is answered.
    let (hand, take) = std::sync::mpsc::sync_channel(0);
    let acked = progress.acked.clone();
    std::thread::scope(|scope| {
        let sending = std::thread::Builder::new()
            .name("remote-write-send".into())
            .spawn_scoped(scope, || send_rounds(&q, acked, take, &shards));
        match sending {
            Ok(_) => read_rounds(&q, progress, skip_before, hand, &shards),
            Err(e) => tracing::error!(queue = name, error = %e, "cannot start a remote-write thread"),
        }
    });
    tracing::info!(queue = name, "remote write stopped");
}

/// A round read from the logs, handed from the reading side to the sending side.
struct ReadRound {
    round: Round,
    /// Where it ends in each shard's log.
    end: Vec<Position>,
    /// The queue shards it is split over.
    shards: usize,
    /// Samples read, sent or not.
    read: usize,
}

/// The reading side: reads rounds from the logs, one ahead of the round being sent, and hands
/// them over; returns when told to stop or when the sending side has stopped.
fn read_rounds(
    q: &QueueSetup,
    progress: Progress,
    mut skip_before: i64,
    hand: SyncSender<ReadRound>,
    shards: &AtomicUsize,
) {
    let name = &q.metric_labels[0].1;
    let queue = &q.config.queue;
    let m = &q.metrics.remote;
    let mut read_to = progress.acked;
    let mut followers = followers_at(q, &read_to);
    // A round cut short by a crash is read again exactly, and split as it was.
    let mut again = progress.round;
    let mut sent_labels =
        SentLabels::new(q.logs.len(), q.external_labels.clone(), q.config.write_relabel_configs.clone());
    while !q.stop.load(Ordering::Relaxed) {
        let again_now = again.take();
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
        let mut gathering = Gathering::new(skip_before);
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
                again = again_now;
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

/// The sending side: sends each round handed over, saving its end before (the round in
/// flight) and after (acknowledged), and works out the shard count for the next rounds.
fn send_rounds(q: &QueueSetup, mut acked: Vec<Position>, rounds: Receiver<ReadRound>, shards: &AtomicUsize) {
    let mut window = Window::default();
    let mut window_start = Instant::now();
    for r in rounds {
        let series = r.round.series();
        if !series.is_empty() {
            let intent =
                Progress { acked: acked.clone(), round: Some(InFlight { end: r.end.clone(), shards: r.shards }) };
            if let Err(e) = q.progress.save(&intent) {
                tracing::warn!(queue = q.metric_labels[0].1, error = %e, "cannot save the remote-write progress");
            }
            let sent = send_round(q, &series, r.shards);
            if sent.stopped {
                return;
            }
            q.metrics.remote.samples_dropped.get_or_create(&q.metric_labels).inc_by(sent.dropped as u64);
            window.sent += sent.samples;
            window.busy += sent.busy;
            window.highest_sent = window.highest_sent.max(sent.highest);
        }
        acked = r.end;
        save_acked(q, &Progress { acked: acked.clone(), round: None });
        window.read += r.read;
        if window_start.elapsed() >= RESHARD_EVERY {
            window.newest_logged = q.followed.iter().filter_map(LogFollowers::newest_logged).max();
            let next = reshard(q, r.shards, &window, window_start.elapsed());
            shards.store(next, Ordering::Relaxed);
            window = Window { highest_sent: window.highest_sent, ..Window::default() };
            window_start = Instant::now();
        }
    }
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
    let behind = match (w.newest_logged, w.highest_sent) {
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
        let caught_up = Window {
            read: 100_000,
            sent: 100_000,
            busy: 50.0,
            newest_logged: Some(60_000),
            highest_sent: Some(60_000),
        };
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
