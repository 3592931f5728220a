//! The scrape loop of one target: fetch on schedule, ingest, hand samples to their owner shards.
//!
//! Each target is scraped by exactly one shard, until the [`ScrapeManager`] removes it. The
//! parsing and the scrape cache live in `pyrite_core::scrape`; this module adds the clock, the
//! HTTP fetch, the messages and the status the API shows.

mod client;
mod connection;
mod manager;
mod names;

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

pub use manager::{ActiveTarget, Applied, ScrapeManager, ScrapeStatus};
use pyrite_core::calendar::go_duration;
use pyrite_core::exposition::Format;
use pyrite_core::scrape::{Ingest, IngestError, IngestOptions, Target, TargetIngest, UnknownSamples};
use pyrite_tsdb::histogram_series::MAX_HISTOGRAM_BUCKETS;

use crate::clock::now_ms;
use crate::dns::Resolver;
use crate::metrics::Metrics;
use crate::shards::{Request, Shards};
use crate::slots::Slots;
use crate::threads::{named, off_shard};

/// Where scrape loops deliver: the shards that own the series, the metrics, and how far past
/// the clock a sample may be (`--storage.tsdb.too-far-in-future.time-window`, ms); the
/// resolver their targets' host names go to; and how late a scrape may start and still be
/// stamped on its schedule (`--scrape.timestamp-tolerance`; None with
/// `--scrape.adjust-timestamps=false`).
#[derive(Clone)]
pub struct ScrapeSink {
    pub shards: Shards,
    pub metrics: Arc<Metrics>,
    pub future_window: i64,
    pub resolver: Resolver,
    pub timestamp_tolerance: Option<Duration>,
    /// `--enable-feature=extra-scrape-metrics`: the default of `extra_scrape_metrics`.
    pub extra_scrape_metrics: bool,
}

/// A target's schedule on the wall clock, on which a scrape's timestamp is put when its timer
/// fired at most a tolerance late, as upstream does: a series' timestamps then lie exactly an
/// interval apart, and their delta-of-deltas pack into nothing. The loop's timer fires at
/// monotonic instants; the wall clock's time of each is counted from one reading of both
/// clocks, taken again when the wall clock has moved against the monotonic one (a step, or
/// NTP's slewing adding up).
struct Schedule {
    /// The wall clock's time, in ms, at `mono`.
    wall: i64,
    mono: Instant,
    /// At most 1 % of the interval, as upstream clamps it.
    tolerance: Duration,
}

impl Schedule {
    fn new(wall: i64, mono: Instant, interval: Duration, tolerance: Duration) -> Schedule {
        Schedule { wall, mono, tolerance: tolerance.min(interval / 100) }
    }

    /// The timestamp of a scrape whose timer was set for `tick` and that started at `started`,
    /// `now` on the wall clock: the tick's time if it started at most the tolerance late,
    /// else `now` itself.
    fn timestamp(&mut self, tick: Instant, started: Instant, now: i64) -> i64 {
        let late = started.saturating_duration_since(tick);
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let mut at = self.wall.saturating_add(ms(tick.saturating_duration_since(self.mono)));
        let moved = now.saturating_sub(at).saturating_sub(ms(late));
        if moved.unsigned_abs() > 1 {
            self.wall = self.wall.saturating_add(moved);
            at = at.saturating_add(moved);
        }
        if late <= self.tolerance {
            at
        } else {
            now
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
    let mut options = IngestOptions::of(target);
    options.extra_metrics = target.extra_scrape_metrics.unwrap_or(ctx.extra_scrape_metrics);
    let mut ingest = TargetIngest::new(target.labels.clone(), options, ctx.shards.len());
    let mut client = client::ScrapeClient::new(target, ctx.resolver.clone());
    let interval = target.interval.as_std();
    let begun = Instant::now();
    let mut next = begun + start_offset(target);
    let mut schedule = ctx.timestamp_tolerance.map(|tolerance| Schedule::new(now_ms(), begun, interval, tolerance));
    let interval_label = vec![("interval", go_duration(target.interval.millis().saturating_mul(1_000_000)))];
    let mut last_start: Option<Instant> = None;
    loop {
        monoio::select! {
            _ = monoio::time::sleep_until(monoio::time::Instant::from_std(next)) => {}
            _ = active.stopped() => break,
        }
        let now = now_ms();
        let started = Instant::now();
        let t = schedule.as_mut().map_or(now, |s| s.timestamp(next, started, now));
        if let Some(last) = last_start.replace(started) {
            ctx.metrics.interval_length.observe(&interval_label, started.duration_since(last).as_secs_f64());
        }
        let (result, body_size) = match &target.refused {
            Some(reason) => (Err(reason.clone()), 0),
            None => match client.fetch(target.timeout.as_std()).await {
                Ok((body, format)) => parse(&ctx, &mut ingest, body, format, t).await,
                Err(e) => {
                    let error = e.to_string();
                    if let Some(path) = &target.scrape_failure_log_file {
                        crate::scrape_failure_log::log(path, target.job(), &target.url(), &error);
                    }
                    (Err(error), body_size_of_failure(&e))
                }
            },
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
        ingest.add_report(&mut batches, t, up, duration, body_size);
        let not_stored = deliver(&ctx, &mut ingest, batches).await;
        // The target is up, but the operator sees why some of its samples are missing.
        let last_error = match not_stored {
            Refused { too_far_in_future: 0, bucket_limit: 0 } => last_error,
            Refused { too_far_in_future: 0, bucket_limit: n } => format!(
                "{n} native histogram(s) with more than the {MAX_HISTOGRAM_BUCKETS} buckets and spans Pyrite stores refused; native_histogram_bucket_limit reduces their resolution"
            ),
            Refused { too_far_in_future: n, .. } => format!(
                "{n} sample(s) with timestamps more than {} ahead of the server's clock refused",
                pyrite_core::config::Duration(ctx.future_window)
            ),
        };
        active.set_status(ScrapeStatus {
            up: Some(up),
            last_error,
            last_scrape: Some(now),
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

/// Bodies from this many bytes on are parsed on a thread of their own: a million series take
/// a second or more, which the shard would otherwise spend away from the connections it serves.
const PARSED_OFF_SHARD: usize = 1 << 20;

/// The most bodies inflated and parsed off the shards at once: each may take hundreds of
/// megabytes, and two shards parsed one each before. Others wait for a turn.
static PARSING: LazyLock<Slots> = LazyLock::new(|| Slots::new(2));

/// Parses a scraped `body` into `ingest`, on a thread of its own if it is large or still to
/// inflate (see [`client::INFLATED_OFF_SHARD`]), one of [`PARSING`]; the error for the target's
/// status if it does not inflate or parse, or if that thread could not start or panicked (then
/// the target's cache starts anew: its vanished series get no staleness markers).
async fn parse(
    ctx: &ScrapeSink,
    ingest: &mut TargetIngest,
    body: client::Body,
    format: Format,
    t: i64,
) -> (Result<Ingest, String>, BodySize) {
    if let Some(plain) = body.plain().filter(|b| b.len() < PARSED_OFF_SHARD) {
        return (ingest.ingest(plain, format, t).map_err(|e| refused(ctx, e)), plain.len() as BodySize);
    }
    let turn = PARSING.acquire().await;
    let mut taken = std::mem::replace(ingest, ingest.anew());
    let parsed = off_shard(named("scrape-parse"), move || {
        let _turn = turn;
        crate::panic::catch(move || {
            let parsed = body.inflate().map(|plain| (taken.ingest(&plain, format, t), plain.len() as BodySize));
            (taken, parsed)
        })
    })
    .await;
    let (back, parsed) = match parsed {
        Ok(Ok(done)) => done,
        Ok(Err(panic)) => return (Err(format!("parsing panicked: {panic}")), 0),
        Err(e) => return (Err(e.to_string()), 0),
    };
    *ingest = back;
    match parsed {
        Ok((ingested, size)) => (ingested.map_err(|e| refused(ctx, e)), size),
        Err(e) => {
            let size = body_size_of_failure(&e);
            (Err(e.to_string()), size)
        }
    }
}

/// `scrape_body_size_bytes`: the body's size once inflated (even when its samples were then
/// refused), as upstream reports it.
type BodySize = i64;

/// The body size of a scrape that failed with `e`, as upstream reports it: -1 for a body over
/// the size limit, else 0.
fn body_size_of_failure(e: &client::ScrapeError) -> BodySize {
    match e {
        client::ScrapeError::TooLarge => -1,
        _ => 0,
    }
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
        IngestError::Parse(_)
        | IngestError::Protobuf(_)
        | IngestError::BucketLimit
        | IngestError::NoMetricName
        | IngestError::InvalidNames(_) => {}
    }
    error.to_string()
}

/// Samples the shards refused that the target's status reports.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Refused {
    /// Later than `--storage.tsdb.too-far-in-future.time-window` past the clock.
    too_far_in_future: usize,
    /// Native histograms larger than the head stores.
    bucket_limit: usize,
}

/// Sends each shard its batch, waits for all answers, and records the ids of new series.
/// Samples a shard refused because it had forgotten their series are sent once more, by
/// their labels. Returns what the shards refused otherwise.
async fn deliver(ctx: &ScrapeSink, ingest: &mut TargetIngest, batches: Ingest) -> Refused {
    let (mut refused, unknown) = send(ctx, ingest, batches).await;
    if !unknown.is_empty() {
        let again = ingest.reresolve(&unknown);
        let (more, _) = send(ctx, ingest, again).await;
        refused.too_far_in_future += more.too_far_in_future;
        refused.bucket_limit += more.bucket_limit;
    }
    refused
}

/// One round of [`deliver`]: the samples refused (see [`Refused`]), and per shard those
/// refused for unknown series ids.
async fn send(ctx: &ScrapeSink, ingest: &mut TargetIngest, batches: Ingest) -> (Refused, Vec<(usize, UnknownSamples)>) {
    let mut waiting = Vec::new();
    for (shard, batch, keys) in batches.into_shards() {
        let rx = ctx.shards.ask(shard, |reply| Request::Append { batch, reply });
        waiting.push((shard, keys, rx));
    }
    let (mut refused, mut unknown) = (Refused::default(), Vec::new());
    for (shard, keys, rx) in waiting {
        match rx.recv_async().await {
            Ok(reply) => {
                refused.too_far_in_future += reply.too_far_in_future;
                refused.bucket_limit += reply.bucket_limit;
                let m = &ctx.metrics;
                m.scrape_out_of_order.inc_by((reply.out_of_order + reply.too_old) as u64);
                m.scrape_duplicate_timestamp.inc_by(reply.duplicates as u64);
                m.scrape_out_of_bounds.inc_by(reply.out_of_bounds as u64);
                ingest.resolve(shard, keys, &reply.ids);
                let refused = UnknownSamples { floats: reply.unknown, histograms: reply.unknown_histograms };
                if !refused.is_empty() {
                    unknown.push((shard, refused));
                }
            }
            Err(_) => tracing::error!(shard, "shard stopped answering appends"),
        }
    }
    (refused, unknown)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pyrite_core::config::Config;
    use pyrite_core::scrape::targets_from_config;

    use std::time::{Duration, Instant};

    use super::{start_offset, Schedule};

    #[test]
    fn a_scrape_at_most_the_tolerance_late_is_stamped_on_its_tick() {
        let (mono, ms) = (Instant::now(), Duration::from_millis);
        let mut s = Schedule::new(1_000_000, mono, ms(15_000), ms(2));
        // (tick, µs late, the wall clock then)
        let stamp = |s: &mut Schedule, tick: u64, late: u64, now: i64| {
            let tick = mono + ms(tick);
            s.timestamp(tick, tick + Duration::from_micros(late), now)
        };
        // The first scrape 5 ms late keeps its time; the next ones are on the schedule.
        assert_eq!(stamp(&mut s, 700, 5_000, 1_000_705), 1_000_705);
        assert_eq!(stamp(&mut s, 15_700, 1_500, 1_015_701), 1_015_700);
        assert_eq!(stamp(&mut s, 30_700, 2_500, 1_030_702), 1_030_702);
        assert_eq!(stamp(&mut s, 45_700, 0, 1_045_700), 1_045_700);
        // The wall clock stepped back a second: the schedule follows it.
        assert_eq!(stamp(&mut s, 60_700, 1_000, 1_059_701), 1_059_700);
        assert_eq!(stamp(&mut s, 75_700, 0, 1_074_700), 1_074_700);
    }

    #[test]
    fn the_tolerance_is_at_most_a_hundredth_of_the_interval() {
        let (mono, ms) = (Instant::now(), Duration::from_millis);
        let mut s = Schedule::new(0, mono, ms(50), ms(2));
        let late = |us| mono + ms(50) + Duration::from_micros(us);
        assert_eq!((s.timestamp(mono + ms(50), late(500), 50), s.timestamp(mono + ms(50), late(600), 51)), (50, 51));
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
