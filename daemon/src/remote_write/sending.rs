//! A queue's sending side: the rounds the reading side hands over go out through the queue's
//! shards, each a thread of its own with a channel of parts to send.
//!
//! A round is split among the shards by label hash, so a series' samples always go down one
//! shard, in order; each shard sends its part in requests of at most `max_samples_per_send`
//! samples, one after another, and goes on to its part of the next round without waiting for
//! the others. Up to [`ROUNDS_IN_FLIGHT`] rounds are in flight: all of them are saved in the
//! progress file before a request of the newest is sent, and a round is saved as acknowledged
//! once it and every round before it have been answered, so that after a crash exactly those
//! rounds are read and split again. A new shard count applies from a round on which no earlier
//! round is still in flight, so a series never has samples in two shards at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyrite_core::remote::send::{encode_v1, encode_v2, OutExemplar, OutSeries};
use pyrite_core::remote::v2::WriteMessage;
use pyrite_core::value::HistogramSample;
use pyrite_tsdb::wal::follow::Position;
use pyrite_tsdb::wal::LogFollowers;

use super::client::Outcome;
use super::progress::{InFlight, Progress};
use super::queue::{pause, save_acked, QueueSetup, ReadRound};
use super::round::{Counts, Round, RoundSeries};
use crate::clock::now_ms;

/// How often the shard count is worked out again (upstream's `shardUpdateDuration`).
const RESHARD_EVERY: Duration = Duration::from_secs(10);
/// A new shard count is taken only if it differs from the current one by more than this.
const RESHARD_TOLERANCE: f64 = 0.3;
/// Rounds in flight at once, so that a shard done with its part of one round goes on to the
/// next instead of waiting for the slowest.
const ROUNDS_IN_FLIGHT: usize = 2;

/// What sending one part of a round did.
#[derive(Default)]
struct Sent {
    samples: usize,
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

/// One shard's part of a round: which of the round's series it sends.
struct Part {
    seq: u64,
    round: Arc<Round>,
    series: Vec<u32>,
}

/// A round in flight: what is left of it.
struct Flight {
    seq: u64,
    end: Vec<Position>,
    shards: usize,
    read: usize,
    parts_left: usize,
}

impl Flight {
    fn intent(&self) -> InFlight {
        InFlight { end: self.end.clone(), shards: self.shards }
    }
}

enum Event {
    Read(Result<ReadRound, flume::RecvError>),
    Done(Result<(u64, Sent), flume::RecvError>),
}

/// Sends each round handed over (see the module docs), and works out the shard count for
/// the next ones; returns when the reading side is gone and every round is answered, or when
/// the queue is told to stop.
pub fn send_rounds(q: &QueueSetup, acked: Vec<Position>, rounds: flume::Receiver<ReadRound>, shards: &AtomicUsize) {
    let (done_tx, done_rx) = flume::unbounded();
    let mut window = Window::default();
    let mut window_start = Instant::now();
    let mut reading = true;
    std::thread::scope(|scope| {
        let mut s = Sending { q, acked, flights: VecDeque::new(), waiting: None, seq: 0, lanes: Vec::new() };
        loop {
            match s.settle(scope, &done_tx) {
                Ok(read) => window.read += read,
                Err(LaneGone) => {
                    tracing::error!(queue = q.metric_labels[0].1, "a remote-write shard is gone; the queue stops");
                    return;
                }
            }
            if window_start.elapsed() >= RESHARD_EVERY {
                window.newest_logged = q.followed.iter().filter_map(LogFollowers::newest_logged).max();
                let now = shards.load(Ordering::Relaxed);
                shards.store(reshard(q, now, &window, window_start.elapsed()), Ordering::Relaxed);
                window = Window { highest_sent: window.highest_sent, ..Window::default() };
                window_start = Instant::now();
            }
            if !reading && s.flights.is_empty() && s.waiting.is_none() {
                return;
            }
            let take_more = reading && s.waiting.is_none() && s.flights.len() < ROUNDS_IN_FLIGHT;
            let select = flume::Selector::new().recv(&done_rx, Event::Done);
            let select = if take_more { select.recv(&rounds, Event::Read) } else { select };
            // Woken on schedule too, so the shard count is worked out while nothing is answered
            // (a receiver away) and the next window starts when it is back.
            let Ok(event) = select.wait_deadline(window_start + RESHARD_EVERY) else { continue };
            match event {
                Event::Read(Ok(r)) => s.waiting = Some(r),
                Event::Read(Err(_)) => reading = false,
                Event::Done(Ok((seq, sent))) => {
                    if sent.stopped {
                        return;
                    }
                    q.metrics.remote.samples_dropped.get_or_create(&q.metric_labels).inc_by(sent.dropped as u64);
                    window.sent += sent.samples;
                    window.busy += sent.busy;
                    window.highest_sent = window.highest_sent.max(sent.highest);
                    if let Some(f) = s.flights.iter_mut().find(|f| f.seq == seq) {
                        f.parts_left -= 1;
                    }
                }
                // Not while this thread holds a sender of its own.
                Event::Done(Err(_)) => return,
            }
        }
    });
}

/// A queue shard's thread could not be started, or is gone (it panicked).
struct LaneGone;

/// The sending side's rounds: acknowledged, in flight, and the next one waiting.
struct Sending<'q> {
    q: &'q QueueSetup,
    acked: Vec<Position>,
    flights: VecDeque<Flight>,
    /// A round handed over, waiting for room (or for the rounds in flight to be answered, if
    /// its shard count is another).
    waiting: Option<ReadRound>,
    seq: u64,
    /// The queue's shards.
    lanes: Vec<flume::Sender<Part>>,
}

impl<'q> Sending<'q> {
    /// Acknowledges the rounds answered and sends the waiting one, until neither is due;
    /// returns the samples read of the rounds acknowledged.
    fn settle<'scope>(
        &mut self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        done: &flume::Sender<(u64, Sent)>,
    ) -> Result<usize, LaneGone>
    where
        'q: 'scope,
    {
        let mut read = 0;
        loop {
            while self.flights.front().is_some_and(|f| f.parts_left == 0) {
                let Some(f) = self.flights.pop_front() else { break };
                read += f.read;
                self.acked = f.end;
                let rounds = self.flights.iter().map(Flight::intent).collect();
                save_acked(self.q, &Progress { acked: self.acked.clone(), rounds });
            }
            let lanes = self.lanes.len();
            let idle = self.flights.is_empty();
            let Some(r) = self.waiting.take_if(|r| r.shards == lanes || idle) else {
                return Ok(read);
            };
            self.dispatch(r, scope, done)?;
        }
    }

    /// Saves the round as in flight and hands each shard its part.
    fn dispatch<'scope>(
        &mut self,
        r: ReadRound,
        scope: &'scope std::thread::Scope<'scope, '_>,
        done: &flume::Sender<(u64, Sent)>,
    ) -> Result<(), LaneGone>
    where
        'q: 'scope,
    {
        let q = self.q;
        if r.shards != self.lanes.len() {
            self.lanes = (0..r.shards).map(|_| lane(q, scope, done.clone())).collect::<Result<_, _>>()?;
        }
        self.seq += 1;
        let round = Arc::new(r.round);
        let parts = round.split(r.shards);
        let parts_left = parts.iter().filter(|p| !p.is_empty()).count();
        self.flights.push_back(Flight { seq: self.seq, end: r.end, shards: r.shards, read: r.read, parts_left });
        if parts_left > 0 {
            let rounds = self.flights.iter().map(Flight::intent).collect();
            let progress = Progress { acked: self.acked.clone(), rounds };
            if let Err(e) = q.progress.save(&progress) {
                tracing::warn!(queue = q.metric_labels[0].1, error = %e, "cannot save the remote-write progress");
            }
            let c = round.counts();
            q.metrics.remote.add_pending(&q.metric_labels, c.floats as i64, c.histograms as i64);
        }
        for (lane, series) in self.lanes.iter().zip(parts).filter(|(_, p)| !p.is_empty()) {
            lane.send(Part { seq: self.seq, round: round.clone(), series }).map_err(|_| LaneGone)?;
        }
        Ok(())
    }
}

/// Starts one of the queue's shards: it sends the parts it is given, in order, and reports
/// each; it ends when its channel closes.
fn lane<'scope>(
    q: &'scope QueueSetup,
    scope: &'scope std::thread::Scope<'scope, '_>,
    done: flume::Sender<(u64, Sent)>,
) -> Result<flume::Sender<Part>, LaneGone> {
    let (tx, rx) = flume::unbounded::<Part>();
    let thread = std::thread::Builder::new().name("remote-write-shard".into());
    thread
        .spawn_scoped(scope, move || {
            for part in rx.iter() {
                let sent = if q.stop.load(Ordering::Relaxed) {
                    Sent { stopped: true, ..Sent::default() }
                } else {
                    let series: Vec<RoundSeries<'_>> = part.series.iter().map(|&i| part.round.get(i)).collect();
                    send_part(q, &series)
                };
                if done.send((part.seq, sent)).is_err() {
                    return;
                }
            }
        })
        .map_err(|_| LaneGone)?;
    Ok(tx)
}

/// One shard's share of a round, in requests of at most `max_samples_per_send` samples and
/// exemplars sent one after another (a series longer than that spans consecutive requests, in
/// order; its exemplars go with its first samples).
fn send_part(q: &QueueSetup, part: &[RoundSeries<'_>]) -> Sent {
    let max = q.config.queue.max_samples_per_send.max(1);
    let mut sent = Sent::default();
    let mut batch: Vec<OutSeries> = Vec::new();
    let mut room = max;
    let v2 = matches!(q.config.protobuf_message, WriteMessage::V2);
    for s in part {
        if v2 && s.samples.is_empty() && s.histograms.is_empty() {
            // 2.0 has no place for exemplars alone (their samples went in an earlier round).
            q.metrics.remote.exemplars_failed.get_or_create(&q.metric_labels).inc_by(s.exemplars.len() as u64);
            continue;
        }
        let (mut rest, mut histograms, mut exemplars) = (s.samples, s.histograms, s.exemplars);
        while !rest.is_empty() || !histograms.is_empty() || !exemplars.is_empty() {
            let (now, later) = rest.split_at(rest.len().min(room));
            let (now_h, later_h) = histograms.split_at(histograms.len().min(room - now.len()));
            batch.push(OutSeries { labels: s.labels, samples: now, exemplars, histograms: now_h });
            room = room.saturating_sub(now.len() + now_h.len() + exemplars.len());
            (rest, histograms, exemplars) = (later, later_h, &[]);
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

/// A series of a request being retried, its samples, histograms and exemplars past
/// `sample_age_limit` taken out.
struct AgedSeries<'a> {
    labels: &'a [u8],
    samples: Vec<(i64, f64)>,
    histograms: Vec<HistogramSample>,
    exemplars: Vec<OutExemplar>,
}

impl<'a> AgedSeries<'a> {
    fn of(s: &OutSeries<'a>) -> Self {
        AgedSeries {
            labels: s.labels,
            samples: s.samples.to_vec(),
            histograms: s.histograms.to_vec(),
            exemplars: s.exemplars.to_vec(),
        }
    }

    /// The samples and histograms left.
    fn len(&self) -> usize {
        self.samples.len() + self.histograms.len()
    }

    /// The samples and histograms `series` have left.
    fn counts(series: &[AgedSeries]) -> Counts {
        Counts {
            floats: series.iter().map(|s| s.samples.len()).sum(),
            histograms: series.iter().map(|s| s.histograms.len()).sum(),
        }
    }
}

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
                view = kept
                    .iter()
                    .filter(|s| s.len() > 0 || !s.exemplars.is_empty())
                    .map(|s| OutSeries {
                        labels: s.labels,
                        samples: &s.samples,
                        histograms: &s.histograms,
                        exemplars: &s.exemplars,
                    })
                    .collect();
                &view
            }
        };
        // Histograms count as samples in the queue's batches, apart in its metrics.
        let counts = Counts {
            floats: now.iter().map(|s| s.samples.len()).sum(),
            histograms: now.iter().map(|s| s.histograms.len()).sum(),
        };
        let (samples, exemplars) = (counts.total(), now.iter().map(|s| s.exemplars.len()).sum::<usize>());
        if samples + exemplars == 0 {
            return;
        }
        let (floats, histograms) = (counts.floats as u64, counts.histograms as u64);
        let settled = || m.add_pending(labels, -(floats as i64), -(histograms as i64));
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
                m.samples.get_or_create(labels).inc_by(floats);
                m.histograms.get_or_create(labels).inc_by(histograms);
                m.exemplars.get_or_create(labels).inc_by(exemplars as u64);
                settled();
                let newest = |s: &OutSeries| s.samples.last().map(|x| x.0).max(s.histograms.last().map(|x| x.t));
                let highest = now.iter().filter_map(newest).max();
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
                m.samples_failed.get_or_create(labels).inc_by(floats);
                m.histograms_failed.get_or_create(labels).inc_by(histograms);
                m.exemplars_failed.get_or_create(labels).inc_by(exemplars as u64);
                settled();
                return;
            }
            Outcome::Retry { after, why } => {
                tracing::warn!(queue = labels[0].1, samples, error = why, "remote write failed; retrying");
                m.samples_retried.get_or_create(labels).inc_by(floats);
                m.histograms_retried.get_or_create(labels).inc_by(histograms);
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
            let kept = aged.get_or_insert_with(|| batch.iter().map(AgedSeries::of).collect());
            let before = AgedSeries::counts(kept);
            let mut lone_exemplars = 0;
            for s in kept.iter_mut() {
                s.samples.retain(|x| x.0 >= oldest_kept);
                s.histograms.retain(|x| x.t >= oldest_kept);
                s.exemplars.retain(|x| x.t >= oldest_kept);
                if s.len() == 0 && matches!(q.config.protobuf_message, WriteMessage::V2) {
                    // As in `send_part`: 2.0 has no place for exemplars alone.
                    lone_exemplars += s.exemplars.len();
                    s.exemplars.clear();
                }
            }
            m.exemplars_failed.get_or_create(labels).inc_by(lone_exemplars as u64);
            let after = AgedSeries::counts(kept);
            sent.dropped += before.total() - after.total();
            m.add_pending(
                labels,
                after.floats as i64 - before.floats as i64,
                after.histograms as i64 - before.histograms as i64,
            );
        }
    }
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
