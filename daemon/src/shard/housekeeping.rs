//! A shard's periodic storage work: cutting the head into blocks, compacting blocks,
//! retention by time and size, and head snapshots (so that a crash replays only the log
//! written since the last one). It runs on the shard's thread (the head is not shared), every
//! minute or every quarter block range if that is shorter.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ShardEnv;
use crate::metrics::shard_label;
use pyrite_tsdb::blocks::{compact_paths, CutError};
use pyrite_tsdb::db::Db;

/// How often housekeeping runs for a block range of `block_range` ms.
pub fn interval(block_range: i64) -> Duration {
    Duration::from_millis((block_range / 4).clamp(1000, 60_000) as u64)
}

pub async fn run(index: usize, storage: Rc<RefCell<Db>>, env: Arc<ShardEnv>) {
    let ranges = pyrite_tsdb::block::ranges(env.block_range, env.max_block_range);
    let mut last_snapshot = crate::clock::now_ms();
    loop {
        monoio::time::sleep(interval(env.block_range)).await;
        cut(index, &mut storage.borrow_mut(), &env);
        compact(index, &storage, &env, &ranges).await;
        let mut s = storage.borrow_mut();
        retain(index, &mut s, &env);
        let now = crate::clock::now_ms();
        if env.head_snapshot_interval.is_some_and(|every| now - last_snapshot >= every) {
            snapshot(index, &mut s, &env);
            last_snapshot = now;
        }
    }
}

/// Writes the head as a snapshot; on failure the log stays complete, so nothing is lost.
fn snapshot(index: usize, s: &mut Db, env: &ShardEnv) {
    let started = Instant::now();
    match s.snapshot() {
        Ok(()) => {
            env.metrics.head_snapshots.get_or_create(&shard_label(index)).inc();
            tracing::info!(shard = index, seconds = started.elapsed().as_secs_f64(), "head snapshot written");
        }
        Err(e) => {
            tracing::warn!(shard = index, error = %e, "cannot write a head snapshot; a crash replays the whole log")
        }
    }
}

/// Cuts the head's oldest range into a block if it is due.
fn cut(index: usize, s: &mut Db, env: &ShardEnv) {
    let shard = shard_label(index);
    let m = &env.metrics;
    let started = Instant::now();
    let now = crate::clock::now_ms();
    match s.cut_blocks(env.block_range, now, now.saturating_sub(env.retention.millis())) {
        Ok(cut) => {
            m.head_series_removed.get_or_create(&shard).inc_by(cut.series_removed as u64);
            m.head_series.get_or_create(&shard).set(s.head.num_series() as i64);
            for meta in &cut.blocks {
                m.compactions.get_or_create(&kind(index, "head")).inc();
                tracing::info!(
                    shard = index,
                    ulid = meta.ulid.as_str(),
                    min_time = meta.min_time,
                    max_time = meta.max_time,
                    series = meta.stats.num_series,
                    samples = meta.stats.num_samples,
                    seconds = started.elapsed().as_secs_f64(),
                    "head cut into a block"
                );
            }
            if !cut.blocks.is_empty() {
                m.compaction_duration.observe(started.elapsed().as_secs_f64());
            }
        }
        Err(e) => {
            m.compactions_failed.get_or_create(&shard).inc();
            tracing::error!(shard = index, error = %e, "cannot cut the head into a block; the head keeps the data");
        }
    }
}

/// Compacts the next group of blocks, if any, on a thread of its own: the shard keeps
/// appending and answering queries from the input blocks until the output replaces them.
async fn compact(index: usize, storage: &Rc<RefCell<Db>>, env: &ShardEnv, ranges: &[i64]) {
    let Some(inputs) = storage.borrow().blocks.plan(ranges) else { return };
    let dir = storage.borrow().blocks.dir().to_path_buf();
    let ulid = pyrite_tsdb::block::new_ulid(crate::clock::now_ms());
    storage.borrow_mut().blocks.set_compacting(true);
    let started = Instant::now();
    let (tx, rx) = flume::bounded(1);
    let spawned = std::thread::Builder::new().name(format!("compact-{index}")).spawn({
        let inputs = inputs.clone();
        move || {
            let _ = tx.send(compact_paths(&dir, &inputs, ulid));
        }
    });
    let result = match spawned {
        Ok(_) => rx
            .recv_async()
            .await
            .unwrap_or_else(|_| Err(CutError::Io(std::io::Error::other("the compaction thread stopped")))),
        Err(e) => Err(CutError::Io(e)),
    };
    let mut s = storage.borrow_mut();
    s.blocks.set_compacting(false);
    let m = &env.metrics;
    match result.and_then(|(meta, path)| s.blocks.install(&path, &inputs).map(|()| meta)) {
        Ok(meta) => {
            m.compactions.get_or_create(&kind(index, "blocks")).inc();
            m.compaction_duration.observe(started.elapsed().as_secs_f64());
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
            m.compactions_failed.get_or_create(&shard_label(index)).inc();
            tracing::error!(shard = index, error = %e, "compaction failed; the blocks stay as they are");
        }
    }
}

/// Applies retention and updates the storage gauges.
fn retain(index: usize, s: &mut Db, env: &ShardEnv) {
    let shard = shard_label(index);
    let m = &env.metrics;
    let cutoff = crate::clock::now_ms() - env.retention.millis();
    match s.apply_retention(cutoff, env.retention_size_per_shard) {
        Ok(r) => {
            m.head_series_removed.get_or_create(&shard).inc_by(r.series_removed as u64);
            m.time_retentions.get_or_create(&shard).inc_by(r.blocks_by_time as u64);
            m.size_retentions.get_or_create(&shard).inc_by(r.blocks_by_size as u64 + u64::from(r.log_by_size));
            if r.blocks_by_time + r.blocks_by_size > 0 || r.log_by_size {
                tracing::info!(
                    shard = index,
                    blocks_by_time = r.blocks_by_time,
                    blocks_by_size = r.blocks_by_size,
                    log_by_size = r.log_by_size,
                    "retention deleted the oldest data"
                );
            }
        }
        Err(e) => tracing::warn!(shard = index, error = %e, "retention could not delete old data"),
    }
    if let Some(e) = &s.head.store().last_error {
        tracing::warn!(shard = index, error = e.as_str(), "sealed head chunks are kept in anonymous memory");
    }
    m.head_chunks.get_or_create(&shard).set(s.head.num_chunks() as i64);
    m.head_series.get_or_create(&shard).set(s.head.num_series() as i64);
    m.blocks_loaded.get_or_create(&shard).set(s.blocks.list().len() as i64);
    m.blocks_bytes.get_or_create(&shard).set(s.blocks.size() as i64);
}

fn kind(index: usize, kind: &str) -> crate::metrics::MetricLabels {
    vec![("shard", index.to_string()), ("kind", kind.to_string())]
}
