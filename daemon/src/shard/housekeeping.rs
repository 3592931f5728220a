//! A shard's periodic storage work: cutting the head into blocks, compacting blocks,
//! retention by time and size, log checkpoints, and head snapshots (so that a crash replays
//! only the log written since the last one). Log segments a remote-write queue has not sent
//! stay, for at most [`UNSENT_LOG_MOST`] or the retention. It runs every minute, or every
//! quarter block range if that is shorter, as a task on the shard's thread (the head is not
//! shared).
//!
//! None of it holds the shard for long: see [`super::slices`].
//!
//! In agent mode there are no blocks: every `--storage.agent.wal-truncate-frequency`, idle
//! series are forgotten (logged, so a remote-write queue drops their labels once it has sent
//! what came before), the log moves to a new segment and is checkpointed with the cutoff now −
//! `--storage.agent.retention.min-time` (segments a queue still holds stay), and held segments
//! older than `--storage.agent.retention.max-time` go even if unsent.
//!
//! Which series are idle follows upstream's rule. Upstream's agent forgets series idle since its queues' lowest sent timestamp minus the
//! min-time, capped at the max-time, so that a series is not forgotten while samples of it are
//! unsent. Here a queue learns of forgetting in log order (it has its labels for what it reads
//! before), but a restarted queue asks the head for the labels of what it has not sent, so the
//! same holds, measured in segments: while a queue still needs a finished segment, only series
//! idle for the max-time go; otherwise those idle for the min-time and since before the current
//! segment began (its samples may be unsent).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::disk_probe::DiskProbe;
use super::slices::{self, write_log};
use super::ShardEnv;
use crate::metrics::shard_label;
use pyrite_tsdb::block::{Block, BlockMeta};
use pyrite_tsdb::blocks::{compact_paths, CutError};
use pyrite_tsdb::db::{Db, Due, MAX_CUTS_PER_PASS};
use pyrite_tsdb::head::Truncated;

/// How often housekeeping runs for a block range of `block_range` ms.
pub fn interval(block_range: i64) -> Duration {
    Duration::from_millis((block_range / 4).clamp(1000, 60_000) as u64)
}

/// Each pass, if the disk answers ([`DiskProbe`]): its file work is done on the shard's thread.
pub async fn run(index: usize, storage: Rc<RefCell<Db>>, env: Arc<ShardEnv>, disk: Rc<DiskProbe>) {
    let ranges = pyrite_tsdb::block::ranges(env.block_range, env.max_block_range);
    let mut last_snapshot = crate::clock::now_ms();
    loop {
        monoio::time::sleep(interval(env.block_range)).await;
        if !disk.answers().await {
            continue;
        }
        env.metrics.compactions_triggered.inc();
        if cut(index, &storage, &env).await {
            flush_out_of_order(index, &storage, &env).await;
        }
        compact(index, &storage, &env, &ranges).await;
        retain(index, &storage, &env).await;
        let now = crate::clock::now_ms();
        if env.head_snapshot_interval.is_some_and(|every| now - last_snapshot >= every) {
            snapshot(index, &storage, &env).await;
            last_snapshot = now;
        }
    }
}

/// Agent mode's housekeeping (see the module docs).
pub async fn run_agent(
    index: usize,
    storage: Rc<RefCell<Db>>,
    env: Arc<ShardEnv>,
    agent: super::AgentStorage,
    disk: Rc<DiskProbe>,
) {
    // The log's current segment was started when the shard opened it.
    let mut segment_started = crate::clock::now_ms();
    loop {
        monoio::time::sleep(agent.truncate_every).await;
        if !disk.answers().await {
            continue;
        }
        segment_started = truncate_agent_log(index, &storage, &env, agent, segment_started).await;
    }
}

/// One truncation (see the module docs); returns when the current segment was started.
async fn truncate_agent_log(
    index: usize,
    storage: &RefCell<Db>,
    env: &ShardEnv,
    agent: super::AgentStorage,
    mut segment_started: i64,
) -> i64 {
    let m = &env.metrics;
    let now = crate::clock::now_ms();
    let log_cutoff = now.saturating_sub(agent.min_time);
    let idle_cutoff = match storage.borrow().log_held_behind() {
        true => now.saturating_sub(agent.max_time),
        false => log_cutoff.min(segment_started),
    };
    let started = Instant::now();
    let (forgotten, logged) = storage.borrow_mut().forget_inactive(idle_cutoff);
    m.head_gc_duration.observe(&vec![], started.elapsed().as_secs_f64());
    m.head_series_removed.inc_by(forgotten as u64);
    if let Err(e) = logged.await {
        tracing::warn!(shard = index, error = %e, "cannot log forgotten series; remote write keeps their labels longer");
    }
    if storage.borrow_mut().next_log_segment() {
        segment_started = now;
    }
    m.agent.checkpoints.inc();
    if !checkpoint(index, storage, log_cutoff).await {
        m.agent.checkpoints_failed.inc();
    }
    match storage.borrow_mut().release_held_log(now.saturating_sub(agent.max_time)) {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            shard = index,
            segments = n,
            "unsent write-ahead log segments past the retention max-time deleted"
        ),
        Err(e) => {
            tracing::warn!(shard = index, error = %e, "cannot delete write-ahead log segments past the retention max-time")
        }
    }
    let s = storage.borrow();
    m.head_series.set(&shard_label(index), s.head.num_series() as i64);
    if forgotten > 0 {
        tracing::info!(
            shard = index,
            series_forgotten = forgotten,
            series = s.head.num_series(),
            "inactive series forgotten"
        );
    }
    segment_started
}

/// Writes the head as a snapshot; on failure the log still holds everything acknowledged, so
/// nothing acknowledged is lost.
async fn snapshot(index: usize, storage: &RefCell<Db>, env: &ShardEnv) {
    let started = Instant::now();
    let begun = storage.borrow_mut().begin_snapshot();
    let result = match begun {
        Ok(job) => write_log(storage, job).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => {
            env.metrics.head_snapshots.inc();
            tracing::info!(shard = index, seconds = started.elapsed().as_secs_f64(), "head snapshot written");
        }
        Err(e) => {
            tracing::warn!(shard = index, error = %e, "cannot write a head snapshot; a crash replays the whole log")
        }
    }
}

/// Lets the log's segments older than `cutoff` go, after a checkpoint of the head's series;
/// false if that failed.
async fn checkpoint(index: usize, storage: &RefCell<Db>, cutoff: i64) -> bool {
    let begun = storage.borrow_mut().begin_checkpoint(cutoff);
    let result = match begun {
        Ok(Some(job)) => write_log(storage, job).await,
        Ok(None) => Ok(0),
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        tracing::warn!(shard = index, error = %e, "cannot checkpoint the write-ahead log; its old segments stay");
    }
    result.is_ok()
}

/// Forgets the series among `ids` still without samples (upstream's head garbage
/// collection, timed when there is something to collect); returns how many.
async fn forget(index: usize, storage: &RefCell<Db>, env: &ShardEnv, ids: &[u32]) -> usize {
    let started = Instant::now();
    let forgotten = slices::forget(storage, ids).await;
    let m = &env.metrics;
    if !ids.is_empty() {
        m.head_gc_duration.observe(&vec![], started.elapsed().as_secs_f64());
    }
    m.head_series_removed.inc_by(forgotten as u64);
    m.head_series.set(&shard_label(index), storage.borrow().head.num_series() as i64);
    forgotten
}

/// Cuts the head's oldest ranges into blocks while they are due (at most
/// [`MAX_CUTS_PER_PASS`] per pass, so that a backfill does not keep the shard cutting).
/// Returns whether the head's start moved.
async fn cut(index: usize, storage: &RefCell<Db>, env: &ShardEnv) -> bool {
    let m = &env.metrics;
    let mut moved = false;
    for _ in 0..MAX_CUTS_PER_PASS {
        let now = crate::clock::now_ms();
        let started = Instant::now();
        let due = storage.borrow().due_cut(env.block_range, env.retention.get().cutoff(now));
        let result = match due {
            None => return moved,
            Some(Due::Drop { before }) => {
                // With a retention shorter than the head's span, or samples a writer sent older
                // than it (an empty head takes any, as upstream's does): no block is written.
                tracing::info!(
                    shard = index,
                    before,
                    "head data past the retention time dropped without writing a block"
                );
                Ok((storage.borrow_mut().forget_before(before), before, None))
            }
            Some(Due::Cut { start, end }) => cut_block(storage, start, end, now).await.map(|(t, meta)| (t, end, meta)),
        };
        let (truncated, before, meta) = match result {
            Ok(done) => done,
            Err(e) => {
                m.compactions_failed.inc();
                tracing::error!(shard = index, error = %e, "cannot cut the head into a block; the head keeps the data");
                return moved;
            }
        };
        moved = true;
        m.head_truncations.inc();
        let forgotten = forget(index, storage, env, &truncated.emptied).await;
        if let Some(meta) = meta {
            written_from_head(index, env, "head", &meta, started);
        }
        if forgotten > 0 {
            tracing::info!(
                shard = index,
                series_forgotten = forgotten,
                "series forgotten: their samples are in blocks or past the retention time"
            );
        }
        checkpoint(index, storage, before).await;
    }
    moved
}

/// Counts and logs a block written from the head's data (`kind`, as
/// `pyrite_tsdb_compactions_total` has it), begun at `started`.
fn written_from_head(index: usize, env: &ShardEnv, kind: &'static str, meta: &BlockMeta, started: Instant) {
    env.metrics.block_written(index, kind, started.elapsed().as_secs_f64());
    tracing::info!(
        shard = index,
        kind,
        ulid = meta.ulid.as_str(),
        min_time = meta.min_time,
        max_time = meta.max_time,
        series = meta.stats.num_series,
        samples = meta.stats.num_samples,
        seconds = started.elapsed().as_secs_f64(),
        "block written from the head"
    );
}

/// Writes the out-of-order samples whose range is in blocks already to blocks of their own
/// (`Db::flush_out_of_order`): after a pass that cut the head, as upstream, so that late
/// samples make at most one block per block range and per cut.
async fn flush_out_of_order(index: usize, storage: &RefCell<Db>, env: &ShardEnv) {
    let started = Instant::now();
    let flushed = storage.borrow_mut().flush_out_of_order(crate::clock::now_ms());
    match flushed {
        Ok(flushed) => {
            for meta in &flushed.blocks {
                written_from_head(index, env, "out-of-order", meta, started);
            }
            if let Err(e) = flushed.logged.await {
                tracing::warn!(shard = index, error = %e, "cannot log that out-of-order samples went to blocks; a restart writes them again");
            }
            forget(index, storage, env, &flushed.emptied).await;
        }
        Err(e) => {
            env.metrics.compactions_failed.inc();
            tracing::error!(shard = index, error = %e, "cannot write out-of-order samples to a block; the head keeps them");
        }
    }
}

/// Writes `[start, end)` of the head as a block, a slice at a time, and installs it.
async fn cut_block(
    storage: &RefCell<Db>,
    start: i64,
    end: i64,
    now: i64,
) -> Result<(Truncated, Option<BlockMeta>), CutError> {
    let begun = storage.borrow_mut().begin_cut(start, end, now)?;
    let Some(job) = begun else {
        return Ok((storage.borrow_mut().install_cut(None, end), None));
    };
    let opened = slices::write_block(storage, job, |meta, path| Ok((meta, Block::open(&path)?))).await;
    // Installing drops the range from the head: not under an admin backup still copying it.
    while storage.borrow().backing_up() {
        monoio::time::sleep(Duration::from_millis(50)).await;
    }
    match opened {
        Ok((meta, block)) => Ok((storage.borrow_mut().install_cut(Some(block), end), Some(meta))),
        Err(e) => {
            storage.borrow_mut().abandon_cut();
            Err(e)
        }
    }
}

/// Compacts the next group of blocks, if any, on a thread of its own: the shard keeps
/// appending and answering queries from the input blocks until the output replaces them.
async fn compact(index: usize, storage: &RefCell<Db>, env: &ShardEnv, ranges: &[i64]) {
    let Some(inputs) = storage.borrow().blocks.plan(ranges) else { return };
    let dir = storage.borrow().blocks.dir().to_path_buf();
    let ulid = pyrite_tsdb::block::new_ulid(crate::clock::now_ms());
    storage.borrow_mut().blocks.set_compacting(true);
    let started = Instant::now();
    let result = crate::threads::off_shard(crate::threads::named(&format!("compact-{index}")), {
        let inputs = inputs.clone();
        move || {
            let (meta, path) = compact_paths(&dir, &inputs, ulid)?;
            Ok::<_, CutError>((meta, Block::open(&path)?))
        }
    })
    .await
    .map_err(CutError::from)
    .and_then(|compacted| compacted);
    let mut s = storage.borrow_mut();
    s.blocks.set_compacting(false);
    let m = &env.metrics;
    match result.and_then(|(meta, merged)| s.blocks.install(merged, &inputs).map(|()| meta)) {
        Ok(meta) => {
            m.block_written(index, "blocks", started.elapsed().as_secs_f64());
            tracing::info!(
                shard = index,
                ulid = meta.ulid.as_str(),
                min_time = meta.min_time,
                max_time = meta.max_time,
                parents = meta.compaction.parents.len(),
                seconds = started.elapsed().as_secs_f64(),
                "blocks compacted"
            );
        }
        Err(e) => {
            m.compactions_failed.inc();
            s.blocks.compaction_failed(&inputs);
            tracing::error!(shard = index, error = %e, "compaction failed; the blocks stay as they are, and are not compacted again until the next start");
        }
    }
}

/// How long a log segment is kept for a remote-write queue that has not sent it, at most:
/// upstream's agent's default `--storage.agent.retention.max-time`. A segment last written
/// longer ago goes (the queue logs the gap), as before only past the retention: a receiver
/// down for days filled the disk with the log, at some five bytes a sample (red team H).
/// Upstream's server loses what its queues have not sent after about two hours.
const UNSENT_LOG_MOST: Duration = Duration::from_secs(4 * 3600);

/// Before when log segments kept for an unsent queue go, at `now`.
fn unsent_log_cutoff(now: i64) -> i64 {
    now.saturating_sub(UNSENT_LOG_MOST.as_millis() as i64)
}

/// Applies retention, lets the log go as far as it allows, and updates the storage gauges.
/// Upstream applies retention when it reloads its blocks: each pass counts as a reload, and a
/// retention counts when it deleted something.
async fn retain(index: usize, storage: &RefCell<Db>, env: &ShardEnv) {
    let shard = shard_label(index);
    let m = &env.metrics;
    let now = crate::clock::now_ms();
    let retention = env.retention.get();
    let (cutoff, budget) = (retention.cutoff(now), retention.bytes_per_shard(env.shards.len()));
    let retained = storage.borrow_mut().apply_retention(cutoff, unsent_log_cutoff(now), budget);
    match retained {
        Ok(r) => {
            if let Err(e) = r.logged.await {
                tracing::warn!(shard = index, error = %e, "cannot log that out-of-order samples past retention went; a restart brings them back");
            }
            forget(index, storage, env, &r.emptied).await;
            m.reloads.inc();
            m.time_retentions.inc_by(u64::from(r.blocks_by_time > 0));
            m.size_retentions.inc_by(u64::from(r.blocks_by_size > 0));
            if r.blocks_by_time + r.blocks_by_size > 0 {
                tracing::info!(
                    shard = index,
                    blocks_by_time = r.blocks_by_time,
                    blocks_by_size = r.blocks_by_size,
                    "retention deleted the oldest data"
                );
            }
            checkpoint(index, storage, r.log_cutoff).await;
        }
        Err(e) => {
            m.reloads_failures.inc();
            tracing::warn!(shard = index, error = %e, "retention could not delete old data")
        }
    }
    storage.borrow_mut().head.retry_chunk_files();
    let s = storage.borrow();
    if let Some(e) = &s.head.store().last_error {
        tracing::warn!(shard = index, error = e.as_str(), "sealed head chunks are kept in anonymous memory");
    }
    m.head_chunks.set(&shard, s.head.num_chunks() as i64);
    m.head_series.set(&shard, s.head.num_series() as i64);
    m.set_head_range(index, s.head.time_range());
    m.blocks_loaded.set(&shard, s.blocks.list().len() as i64);
    m.blocks_bytes.set(&shard, s.blocks.size() as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsent_log_segments_go_four_hours_after_their_last_write() {
        let (now, hour) = (1_800_000_000_000, 3_600_000);
        assert_eq!(unsent_log_cutoff(now), now - 4 * hour);
    }
}
