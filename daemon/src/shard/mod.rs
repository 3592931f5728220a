//! A shard: one thread, one monoio runtime, one storage engine ([`Db`]).
//!
//! The shard's `Db` is owned by its mailbox loop and touched by nothing else; other shards,
//! HTTP handlers and the rules thread reach it only through
//! [`Message`](crate::shards::Message)s. The same thread also serves HTTP connections accepted
//! on the shared listener, runs the tasks it is sent (the scrape loops of the targets assigned
//! to it, the coordination of queries), its storage's housekeeping, and the reads of queries
//! evaluated on the query workers, in slices between which the rest runs; light queries it
//! evaluates itself, within a budget of about one slice ([`light`]).

mod disk_probe;
mod housekeeping;
pub mod light;
mod listing;
mod mailbox;
mod select;
mod slices;
#[cfg(test)]
mod testing;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use pyrite_tsdb::db::{Db, Dirs};

use crate::metrics::Metrics;
use crate::shards::Shards;
use pyrite_tsdb::wal::{segment_name, WalOptions};

/// What every shard thread shares: the storage settings from the command line, the metrics,
/// and the shards' handles (readiness and replay counts are kept there).
pub struct ShardEnv {
    pub shards: Shards,
    pub metrics: Arc<Metrics>,
    /// `--storage.tsdb.path`; each shard keeps its files in `<kind>/<shard>/` under it.
    pub storage_path: std::path::PathBuf,
    pub wal: WalOptions,
    /// Fsync the write-ahead log this often; None: when a segment is full and at shutdown.
    pub wal_fsync_interval: Option<std::time::Duration>,
    /// Snapshot the head this often (ms); None: only at shutdown.
    pub head_snapshot_interval: Option<i64>,
    /// `--storage.tsdb.min-block-duration` in ms: the head is cut into blocks of this range.
    pub block_range: i64,
    /// `--storage.tsdb.max-block-duration` in ms: compaction builds blocks up to this range.
    pub max_block_range: i64,
    /// The retention in force; each shard keeps its share of the size.
    pub retention: Arc<crate::retention::LiveRetention>,
    /// How far past the clock a sample may be (ms), `--storage.tsdb.too-far-in-future.time-window`.
    pub future_window: i64,
    /// Per shard, the log segments the remote-write queues still need.
    pub log_followers: Vec<pyrite_tsdb::wal::LogFollowers>,
    /// Agent mode (`--agent`): the head keeps series only, and housekeeping truncates the log
    /// instead of cutting blocks.
    pub agent: Option<AgentStorage>,
    /// What the configuration sets in the head (a reload changes it).
    pub head: crate::shards::HeadSettings,
}

/// Agent mode's `--storage.agent.*` settings.
#[derive(Debug, Clone, Copy)]
pub struct AgentStorage {
    /// `--storage.agent.retention.min-time` (ms): series not appended to for longer are
    /// forgotten, and log segments whose samples are all older can go once sent.
    pub min_time: i64,
    /// `--storage.agent.retention.max-time` (ms): log segments older go even if unsent.
    pub max_time: i64,
    /// `--storage.agent.wal-truncate-frequency`: how often the log is truncated.
    pub truncate_every: std::time::Duration,
}

/// Everything a shard thread starts with.
pub struct ShardStart {
    pub index: usize,
    pub mailbox: flume::Receiver<crate::shards::Message>,
    pub listener: std::net::TcpListener,
    /// The HTTP API, its handlers coordinating from this shard.
    pub router: axum::Router,
    /// What the HTTP server of every shard shares.
    pub http: Arc<crate::http::server::Settings>,
}

/// Opens the shard's storage, its blocks and its replayed write-ahead log; exits the process
/// if it cannot.
fn open_storage(index: usize, env: &ShardEnv) -> Db {
    let dirs = Dirs::of_shard(&env.storage_path, index);
    let started = std::time::Instant::now();
    let opening = match env.agent {
        Some(_) => Db::open_agent(&dirs.wal, env.wal, env.head.max_exemplars)
            .map(|(db, replayed)| (db, replayed, Default::default())),
        None => Db::open(&dirs, env.wal, env.block_range, env.head.max_exemplars, crate::clock::now_ms()),
    };
    let (mut storage, replayed, opened) = opening.unwrap_or_else(|e| {
        tracing::error!(shard = index, data = %env.storage_path.display(), error = %e, "cannot open the storage");
        std::process::exit(1);
    });
    storage.set_log_followers(env.log_followers[index].clone());
    storage.head.set_out_of_order_window(env.head.out_of_order_window);
    for refused in &opened.refused {
        tracing::error!(shard = index, error = %refused, "block refused: it is left on disk and not served");
    }
    for removed in &opened.removed {
        tracing::info!(shard = index, dir = %removed.display(), "removed an interrupted write or a compacted block's parent");
    }
    for (file, damage) in &replayed.damage {
        let (offset, bytes_lost) = (damage.offset, damage.skipped);
        let name = file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        if name.starts_with("snapshot.") || name.starts_with("checkpoint.") {
            // A snapshot or checkpoint is the only copy of what it holds: the segments it
            // covers are gone.
            tracing::error!(shard = index, file = %file.display(), offset, bytes_lost, "head snapshot or checkpoint damaged: the series and samples in the damaged part are lost");
        } else {
            let what = if damage.at_end { "torn tail truncated" } else { "corruption skipped" };
            tracing::warn!(shard = index, file = %file.display(), offset, bytes_lost, "write-ahead log {what}");
        }
    }
    for &(first, last) in &replayed.missing {
        tracing::error!(shard = index, first = %segment_name(first), last = %segment_name(last), "write-ahead log segments missing: what they held is lost");
    }
    if replayed.orphaned > 0 {
        tracing::warn!(shard = index, samples = replayed.orphaned, "samples of series lost to log damage were dropped");
    }
    let shard = crate::metrics::shard_label(index);
    let m = &env.metrics;
    let corruptions = (replayed.damage.len() + replayed.missing.len()) as u64;
    m.wal_corruptions.inc_by(corruptions);
    env.shards.replay().corruptions.fetch_add(corruptions, std::sync::atomic::Ordering::Relaxed);
    env.shards.replay().segments.fetch_add(replayed.segments as u64, std::sync::atomic::Ordering::Relaxed);
    m.head_series.set(&shard, storage.head.num_series() as i64);
    m.exemplars.record(&shard, storage.head.exemplars().stats());
    m.head_chunks.set(&shard, storage.head.num_chunks() as i64);
    m.set_head_range(index, storage.head.time_range());
    m.blocks_refused.inc_by(opened.refused.len() as u64);
    m.blocks_loaded.set(&shard, storage.blocks.list().len() as i64);
    m.blocks_bytes.set(&shard, storage.blocks.size() as i64);
    m.reloads.inc();
    tracing::info!(
        shard = index,
        blocks = storage.blocks.list().len(),
        segments = replayed.segments,
        bytes = replayed.bytes,
        series = replayed.series,
        samples = replayed.samples,
        seconds = started.elapsed().as_secs_f64(),
        "write-ahead log replayed"
    );
    storage
}

/// The shard's main future: replays its storage, then serves HTTP, scrapes, and answers its
/// mailbox until the process shuts down.
pub async fn run(start: ShardStart, env: Arc<ShardEnv>) {
    let storage = Rc::new(RefCell::new(open_storage(start.index, &env)));
    let driver = if monoio::utils::is_legacy() { "epoll" } else { "io_uring" };
    env.metrics.driver.get_or_create(&vec![("shard", start.index.to_string()), ("driver", driver.to_string())]).set(1);
    tracing::info!(shard = start.index, driver, "shard started");

    match monoio::net::TcpListener::from_std(start.listener) {
        Ok(listener) => {
            monoio::spawn(crate::http::server::serve(listener, start.router, start.http));
        }
        Err(e) => tracing::error!(shard = start.index, error = %e, "cannot serve HTTP on this shard"),
    }
    let disk = Rc::new(disk_probe::DiskProbe::new(start.index, &env));
    match env.agent {
        Some(agent) => {
            monoio::spawn(housekeeping::run_agent(start.index, storage.clone(), env.clone(), agent, disk.clone()))
        }
        None => monoio::spawn(housekeeping::run(start.index, storage.clone(), env.clone(), disk.clone())),
    };
    if let Some(interval) = env.wal_fsync_interval {
        monoio::spawn(mailbox::sync_loop(storage.clone(), interval, env.metrics.clone()));
    }
    env.shards.mark_ready();
    mailbox::serve(start.index, start.mailbox, storage, env, disk).await;
}
