//! The scrape loop of one target: fetch on schedule, ingest, hand samples to their owner shards.
//!
//! Each target is scraped by exactly one shard, until the [`ScrapeManager`] removes it. The
//! parsing and the scrape cache live in `pyrite_core::scrape`; this module adds the clock, the
//! HTTP fetch, the messages and the status the API shows.

mod client;
mod connection;
mod manager;
mod names;
pub mod tls;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use manager::{ActiveTarget, Applied, ScrapeManager, ScrapeStatus};
use pyrite_core::scrape::{Ingest, IngestError, IngestOptions, Target, TargetIngest, UnknownSamples};

use crate::clock::now_ms;
use crate::dns::Resolver;
use crate::metrics::Metrics;
use crate::shards::{Request, Shards};

/// Where scrape loops deliver: the shards that own the series, the metrics, and how far past
/// the clock a sample may be (`--storage.tsdb.too-far-in-future.time-window`, ms); the
/// resolver their targets' host names go to; and how far a scrape's timestamp may be moved
/// onto its schedule (`--scrape.timestamp-tolerance`, ms; None with
/// `--scrape.adjust-timestamps=false`).
#[derive(Clone)]
pub struct ScrapeSink {
    pub shards: Shards,
    pub metrics: Arc<Metrics>,
    pub future_window: i64,
    pub resolver: Resolver,
    pub timestamp_tolerance: Option<i64>,
}

/// A target's schedule in the clock's milliseconds, to which a scrape's timestamp is moved when
/// the timer fired at most a tolerance late, as upstream does: the timestamps of a series then
/// lie exactly one interval apart, and their delta-of-deltas pack into nothing.
struct Schedule {
    /// The time of the tick the last scrape belonged to.
    tick: i64,
    interval: i64,
    /// At most 1 % of the interval, as upstream clamps it.
    tolerance: i64,
}

impl Schedule {
    /// Starts at `first`, the first scrape's time.
    fn new(first: i64, interval: i64, tolerance: i64) -> Schedule {
        Schedule { tick: first, interval: interval.max(1), tolerance: tolerance.min(interval / 100) }
    }

    /// The timestamp of a scrape that starts at `now`: the tick it belongs to if `now` is at
    /// most the tolerance past it, else `now` itself.
    fn timestamp(&mut self, now: i64) -> i64 {
        if now - self.tick >= self.interval {
            // Ticks skipped by an overrunning scrape, or the clock stepped forward.
            self.tick += (now - self.tick) / self.interval * self.interval;
        }
        match now - self.tick {
            late if (0..=self.tolerance).contains(&late) => self.tick,
            _ => now,
        }
    }
}

/// A target's first scrape is offset within its interval by a hash of its identity, so that
/// targets spread over the interval instead of all firing at once (as upstream does).
fn start_offset(target: &Target) -> Duration {
    let interval = target.interval.millis().max(1) as u64;
    Duration::from_millis(target.labels.hash() % interval)
}

/// Scrapes `active` on its schedule until it is removed; then marks its series stale.
pub async fn run_target(active: Arc<ActiveTarget>, ctx: ScrapeSink) {
    let target = &active.target;
    let mut ingest = TargetIngest::new(target.labels.clone(), IngestOptions::of(target), ctx.shards.len());
    let mut client = client::ScrapeClient::new(target, ctx.resolver.clone());
    let interval = target.interval.as_std();
    let mut next = Instant::now() + start_offset(target);
    let interval_label = vec![("interval", go_duration(target.interval.millis()))];
    let mut last_start: Option<Instant> = None;
    let mut schedule: Option<Schedule> = None;
    loop {
        monoio::select! {
            _ = monoio::time::sleep_until(monoio::time::Instant::from_std(next)) => {}
            _ = active.stopped() => break,
        }
        let now = now_ms();
        let t = match ctx.timestamp_tolerance {
            Some(tolerance) => {
                schedule.get_or_insert_with(|| Schedule::new(now, target.interval.millis(), tolerance)).timestamp(now)
            }
            None => now,
        };
        let started = Instant::now();
        if let Some(last) = last_start.replace(started) {
            ctx.metrics.interval_length.observe(&interval_label, started.duration_since(last).as_secs_f64());
        }
        let result = match &target.refused {
            Some(reason) => Err(reason.clone()),
            None => client
                .fetch(target.timeout.as_std())
                .await
                .map_err(|e| e.to_string())
                .and_then(|(body, format)| ingest.ingest(&body, format, t).map_err(|e| refused(&ctx, e))),
        };
        let duration = started.elapsed().as_secs_f64();
        let (mut batches, last_error) = match result {
            Ok(batches) => (batches, String::new()),
            // At debug only, as upstream: a target that is down would otherwise log a line
            // every interval; its error is in /api/v1/targets (`lastError`) and `up`.
            Err(error) => {
                tracing::debug!(shard = active.shard, target = %target.url(), job = target.job(), %error, "scrape failed");
                (ingest.ingest_failure(t), error)
            }
        };
        let up = last_error.is_empty();
        if batches.counts.metadata_changed {
            active.set_metadata(ingest.metadata());
        }
        let outcome = if up { "success" } else { "failure" };
        ctx.metrics.scrapes.get_or_create(&vec![("result", outcome.to_string())]).inc();
        ingest.add_report(&mut batches, t, up, duration);
        let too_far_in_future = deliver(&ctx, &mut ingest, batches).await;
        // The target is up, but the operator sees why some of its samples are missing.
        let last_error = match too_far_in_future {
            0 => last_error,
            n => format!(
                "{n} sample(s) with timestamps more than {} ahead of the server's clock refused",
                pyrite_core::config::Duration(ctx.future_window)
            ),
        };
        active.set_status(ScrapeStatus {
            up: Some(up),
            last_error,
            last_scrape: Some(t),
            last_duration_seconds: duration,
        });
        ctx.metrics.scrape_duration.observe(started.elapsed().as_secs_f64());

        // Keep to the schedule; if a scrape overran, skip the ticks it missed.
        next += interval;
        let now = Instant::now();
        while next <= now {
            next += interval;
        }
    }
    let ended = ingest.ingest_end(now_ms());
    deliver(&ctx, &mut ingest, ended).await;
}

/// Counts a body refused for a limit, as upstream does; the error for the target's status.
fn refused(ctx: &ScrapeSink, error: IngestError) -> String {
    match &error {
        IngestError::SampleLimit => {
            ctx.metrics.exceeded_sample_limit.inc();
        }
        IngestError::LabelLimit(_) => {
            ctx.metrics.exceeded_label_limits.inc();
        }
        IngestError::Parse(_) => {}
    }
    error.to_string()
}

/// `ms` as Go's `time.Duration` prints it (`15s`, `1m0s`, `1.5s`, `500ms`), the spelling of
/// upstream's `interval` label.
fn go_duration(ms: i64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let seconds = match frac {
        0 => format!("{s}s"),
        f => format!("{s}.{}s", format!("{f:03}").trim_end_matches('0')),
    };
    match (h, m) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

/// Sends each shard its batch, waits for all answers, and records the ids of new series.
/// Samples a shard refused because it had forgotten their series are sent once more, by
/// their labels. Returns how many samples the shards refused as too far in the future.
async fn deliver(ctx: &ScrapeSink, ingest: &mut TargetIngest, batches: Ingest) -> usize {
    let (mut too_far_in_future, unknown) = send(ctx, ingest, batches).await;
    if !unknown.is_empty() {
        let again = ingest.reresolve(&unknown);
        too_far_in_future += send(ctx, ingest, again).await.0;
    }
    too_far_in_future
}

/// One round of [`deliver`]: the samples refused as too far in the future, and per shard
/// those refused for unknown series ids.
async fn send(ctx: &ScrapeSink, ingest: &mut TargetIngest, batches: Ingest) -> (usize, Vec<(usize, UnknownSamples)>) {
    let Ingest { batches, pending, .. } = batches;
    let mut waiting = Vec::new();
    for (shard, (batch, keys)) in batches.into_iter().zip(pending).enumerate() {
        if batch.is_empty() {
            continue;
        }
        let rx = ctx.shards.ask(shard, |reply| Request::Append { batch, reply });
        waiting.push((shard, keys, rx));
    }
    let (mut too_far_in_future, mut unknown) = (0, Vec::new());
    for (shard, keys, rx) in waiting {
        match rx.recv_async().await {
            Ok(reply) => {
                too_far_in_future += reply.too_far_in_future;
                let m = &ctx.metrics;
                m.scrape_out_of_order.inc_by((reply.out_of_order + reply.too_old) as u64);
                m.scrape_duplicate_timestamp.inc_by(reply.duplicates as u64);
                m.scrape_out_of_bounds.inc_by(reply.out_of_bounds as u64);
                ingest.resolve(shard, keys, &reply.ids);
                if !reply.unknown.is_empty() {
                    unknown.push((shard, reply.unknown));
                }
            }
            Err(_) => tracing::error!(shard, "shard stopped answering appends"),
        }
    }
    (too_far_in_future, unknown)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pyrite_core::config::Config;
    use pyrite_core::scrape::targets_from_config;

    use super::{go_duration, start_offset, Schedule};

    #[test]
    fn a_scrape_at_most_the_tolerance_late_is_stamped_on_its_tick() {
        let mut s = Schedule::new(1_000_000, 15_000, 2);
        let stamped: Vec<i64> = [1_015_000, 1_030_002, 1_045_003, 1_060_001].map(|now| s.timestamp(now)).into();
        assert_eq!(stamped, [1_015_000, 1_030_000, 1_045_003, 1_060_000]);
        // Ticks skipped by a long scrape: the schedule moves on by whole intervals.
        assert_eq!(s.timestamp(1_105_001), 1_105_000);
        // A clock stepped back is not moved onto the schedule.
        assert_eq!(s.timestamp(1_104_999), 1_104_999);
        assert_eq!(s.timestamp(1_120_000), 1_120_000);
    }

    #[test]
    fn the_tolerance_is_at_most_a_hundredth_of_the_interval() {
        let mut s = Schedule::new(0, 100, 2);
        assert_eq!((s.timestamp(101), s.timestamp(202)), (100, 202));
    }

    #[test]
    fn intervals_are_spelled_as_go_durations() {
        let spelled: Vec<String> = [500, 1000, 1500, 15_000, 60_000, 90_000, 3_600_000].map(go_duration).into();
        assert_eq!(spelled, ["500ms", "1s", "1.5s", "15s", "1m0s", "1m30s", "1h0m0s"]);
    }

    #[test]
    fn thousands_of_targets_spread_over_the_interval() {
        let targets: Vec<String> = (0..3000).map(|i| format!("'10.0.{}.{}:9100'", i / 250, i % 250)).collect();
        let yaml = format!(
            "scrape_configs:\n  - job_name: node\n    scrape_interval: 15s\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        let set = targets_from_config(&Config::parse(&yaml, "p.yml").unwrap(), &BTreeMap::new());
        // 3,000 targets in 15 one-second slots: 200 each on average; none far off.
        let mut slots = [0usize; 15];
        for t in &set.active {
            slots[start_offset(t).as_secs() as usize] += 1;
        }
        assert!(slots.iter().all(|&n| (140..=260).contains(&n)), "{slots:?}");
    }
}
