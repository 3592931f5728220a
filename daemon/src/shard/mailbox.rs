//! A shard's mailbox loop: storage requests applied to its [`Db`], tasks spawned on its
//! runtime, and the shutdown.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use pyrite_tsdb::blocks::CutError;
use pyrite_tsdb::db::{AppendReply, Db, StorageError};
use pyrite_tsdb::head::Head;
use pyrite_tsdb::wal::Logged;

use super::disk_probe::DiskProbe;
use super::light::Evaluate;
use super::listing::{self, LabelNames, LabelValues, SeriesLabels};
use super::select::Select;
use super::ShardEnv;
use crate::metrics::{shard_label, MetricLabels, Metrics};
use crate::shards::{Message, Request, Selection, ShardError};

/// Messages a shard takes from its mailbox before it lets its other tasks run.
const MESSAGES_IN_A_ROW: usize = 16;

/// Applies requests to the storage until every sender is gone or the process shuts down.
pub async fn serve(
    index: usize,
    mailbox: flume::Receiver<Message>,
    storage: Rc<RefCell<Db>>,
    env: Arc<ShardEnv>,
    disk: Rc<DiskProbe>,
) {
    let shard = shard_label(index);
    let mut in_a_row = 0;
    loop {
        // A mailbox with messages waiting answers at once without yielding: let scrapes, HTTP
        // and reads in slices run between its messages now and then. One that has to wait
        // yields anyway, and starts the count again.
        in_a_row = if mailbox.is_empty() { 0 } else { in_a_row + 1 };
        if in_a_row == MESSAGES_IN_A_ROW {
            in_a_row = 0;
            super::slices::pause().await;
        }
        let Ok(message) = mailbox.recv_async().await else { break };
        let request = match message {
            Message::Storage(request) if request.abandoned() => continue,
            Message::Storage(request) => request,
            Message::Spawn(make) => {
                monoio::spawn(make());
                continue;
            }
            Message::Shutdown { reply } => {
                let started = std::time::Instant::now();
                match storage.borrow_mut().snapshot() {
                    Ok(()) => tracing::info!(
                        shard = index,
                        seconds = started.elapsed().as_secs_f64(),
                        "head snapshot written"
                    ),
                    // The log holds everything acknowledged (a write the disk refused was not);
                    // the next start replays it.
                    Err(e) => tracing::error!(shard = index, error = %e, "cannot write the head snapshot at shutdown"),
                }
                let _ = reply.send(());
                return;
            }
        };
        match request {
            Request::Append { batch, reply } => {
                let mut s = storage.borrow_mut();
                s.head.set_max_valid(crate::clock::now_ms().saturating_add(env.future_window));
                env.metrics.head_active_appenders.inc();
                let (r, logged) = s.append(batch);
                env.metrics.head_active_appenders.dec();
                record_append(&env, &shard, &s.head, &r);
                answer_once_logged(r, logged, reply, env.metrics.clone());
            }
            Request::Write { series, reply } => {
                let mut s = storage.borrow_mut();
                s.head.set_max_valid(crate::clock::now_ms().saturating_add(env.future_window));
                env.metrics.head_active_appenders.inc();
                let (r, logged) = s.write(series);
                env.metrics.head_active_appenders.dec();
                record_append(&env, &shard, &s.head, &r);
                answer_once_logged(r, logged, reply, env.metrics.clone());
            }
            Request::Select { matchers, mint, maxt, newest, labels, max_samples, batch, interrupt, reply } => {
                let select = Select { matchers, mint, maxt, newest, labels, max_samples, batch, interrupt, reply };
                monoio::spawn(super::select::serve(index, storage.clone(), env.clone(), select));
            }
            Request::Evaluate { plan, params, reply, to_worker } => {
                super::light::serve(&storage.borrow(), Evaluate { plan, params, reply, to_worker })
            }
            Request::OldestBlock { reply } => {
                let _ = reply.send(storage.borrow().oldest_block_start());
            }
            Request::Exemplars { selectors, mint, maxt, reply } => {
                // Reads only: a panic fails this request, not the process (see `crate::panic`).
                let db = storage.borrow();
                let found = crate::panic::catch(|| db.head.select_exemplars(&selectors, mint, maxt));
                let _ = reply.send(found.map_err(ShardError::Panic));
            }
            Request::HeadSettings(settings) => {
                let mut s = storage.borrow_mut();
                s.head.set_exemplar_capacity(settings.max_exemplars);
                s.head.set_out_of_order_window(settings.out_of_order_window);
                record_exemplars(&env, &shard, &s.head);
            }
            Request::TsdbStats { reply } => {
                let storage = storage.clone();
                monoio::spawn(async move {
                    // Reads only: a panic drops the reply, which fails this request.
                    let reading = super::slices::head_stats(&storage, || !reply.is_disconnected());
                    if let Ok(Some(stats)) = crate::panic::CatchPanic::new(reading).await {
                        let _ = reply.send(stats);
                    }
                });
            }
            Request::SeriesLabels { ids, reply } => {
                let db = storage.borrow();
                let _ = reply.send(ids.iter().map(|&id| db.head.labels(id)).collect());
            }
            Request::Series { selection, reply } => {
                monoio::spawn(listing::serve(storage.clone(), selection, SeriesLabels::default, reply));
            }
            Request::LabelNames { selection, reply } => {
                monoio::spawn(listing::serve(storage.clone(), selection, LabelNames::default, reply));
            }
            Request::LabelValues { name, selection, reply } => {
                monoio::spawn(listing::serve(storage.clone(), selection, move || LabelValues::of(name.clone()), reply));
            }
            Request::Delete { selection: Selection { matchers, mint, maxt }, reply } => {
                let (storage, disk) = (storage.clone(), disk.clone());
                monoio::spawn(async move {
                    blocks_idle(&storage).await;
                    // Tombstones are written on the shard's thread.
                    disk.until_answers().await;
                    let deleted: Result<Vec<Logged>, StorageError> = {
                        let mut s = storage.borrow_mut();
                        matchers.iter().map(|m| s.delete(m, mint, maxt)).collect()
                    };
                    let _ = reply.send(logged_all(deleted).await.map_err(Into::into));
                });
            }
            Request::Snapshot { dir, skip_head, reply } => {
                let (storage, disk) = (storage.clone(), disk.clone());
                monoio::spawn(async move {
                    // The blocks are linked on the shard's thread.
                    disk.until_answers().await;
                    let _ =
                        reply.send(backup(&storage, &dir, skip_head).await.map_err(|e| StorageError::from(e).into()));
                });
            }
            Request::CleanTombstones { reply } => {
                let (storage, disk) = (storage.clone(), disk.clone());
                monoio::spawn(async move {
                    blocks_idle(&storage).await;
                    disk.until_answers().await;
                    let mut s = storage.borrow_mut();
                    let cleaned = s.blocks.clean_tombstones(crate::clock::now_ms());
                    let _ = reply.send(
                        cleaned
                            .map(|n| tracing::info!(shard = index, blocks = n, "tombstones cleaned"))
                            .map_err(|e| StorageError::from(e).into()),
                    );
                });
            }
        }
    }
}

/// Copies the shard's blocks and, unless `skip_head`, its head as one more block into `dir`
/// (the admin snapshot), the head a slice at a time.
async fn backup(storage: &RefCell<Db>, dir: &std::path::Path, skip_head: bool) -> Result<(), CutError> {
    let begun = storage.borrow_mut().begin_backup(dir, skip_head, crate::clock::now_ms())?;
    let Some(job) = begun else { return Ok(()) };
    let written = super::slices::write_block(storage, job, |_, _| Ok(())).await;
    storage.borrow_mut().end_backup();
    written
}

/// Waits until no cut or compaction is reading the head or the blocks (a deletion made
/// meanwhile would be lost in its output).
async fn blocks_idle(storage: &RefCell<Db>) {
    while storage.borrow().writing_blocks() {
        monoio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Answers an append once the log has it, from a task of its own: the shard goes on meanwhile
/// (a stalled disk holds up only the appends waiting for it).
fn answer_once_logged(mut r: AppendReply, logged: Logged, reply: flume::Sender<AppendReply>, metrics: Arc<Metrics>) {
    monoio::spawn(async move {
        if let Err(e) = logged.await {
            r.storage_error.get_or_insert(StorageError::Wal(e));
        }
        record_log_failure(&metrics, &r);
        let _ = reply.send(r);
    });
}

/// Waits until every write in `deleted` is logged.
async fn logged_all(deleted: Result<Vec<Logged>, StorageError>) -> Result<(), StorageError> {
    for logged in deleted? {
        logged.await.map_err(StorageError::Wal)?;
    }
    Ok(())
}

fn record_append(env: &ShardEnv, shard: &MetricLabels, head: &Head, r: &AppendReply) {
    let m = &env.metrics;
    // The reply's counts are of both types, the histograms' a part of them.
    let h = &r.histograms;
    m.samples_appended.inc_by(r.appended.saturating_sub(h.appended), h.appended);
    m.samples_appended_per_shard.get_or_create(shard).inc_by(r.appended as u64);
    m.out_of_order.inc_by(r.out_of_order.saturating_sub(h.out_of_order), h.out_of_order);
    m.too_old.inc_by(r.too_old.saturating_sub(h.too_old), h.too_old);
    let floats_out_of_order = r.appended_out_of_order.saturating_sub(h.appended_out_of_order);
    m.out_of_order_appended.inc_by(floats_out_of_order, h.appended_out_of_order);
    m.duplicates.inc_by(r.duplicates as u64);
    m.out_of_bounds.inc_by(r.out_of_bounds.saturating_sub(h.out_of_bounds), h.out_of_bounds);
    m.too_far_in_future.inc_by(r.too_far_in_future as u64);
    m.head_series_created.inc_by(r.created as u64);
    m.head_series.set(shard, head.num_series() as i64);
    if r.exemplars + r.exemplars_out_of_order > 0 {
        m.exemplars.appended.inc_by(r.exemplars as u64);
        m.exemplars.out_of_order.inc_by(r.exemplars_out_of_order as u64);
        record_exemplars(env, shard, head);
    }
}

/// Counts and logs an append the write-ahead log refused.
fn record_log_failure(m: &Metrics, r: &AppendReply) {
    if let Some(e) = &r.storage_error {
        m.wal_writes_failed.inc();
        match r.appended {
            // Held back whole while an earlier write waits for the log.
            0 => tracing::error!(error = %e, "samples refused: the write-ahead log cannot be written"),
            _ => tracing::error!(error = %e, "appended samples are not durable"),
        }
    }
}

/// The exemplar gauges of the shard's head.
fn record_exemplars(env: &ShardEnv, shard: &MetricLabels, head: &Head) {
    env.metrics.exemplars.record(shard, head.exemplars().stats());
}

/// Fsyncs the write-ahead log every `interval` (`--storage.tsdb.wal-fsync-interval`).
pub async fn sync_loop(storage: Rc<RefCell<Db>>, interval: std::time::Duration, metrics: Arc<Metrics>) {
    loop {
        monoio::time::sleep(interval).await;
        let started = std::time::Instant::now();
        let sync = storage.borrow_mut().sync();
        let synced = sync.await;
        metrics.wal_fsync_duration.observe(&vec![], started.elapsed().as_secs_f64());
        if let Err(e) = synced {
            tracing::error!(error = %e, "cannot sync the write-ahead log");
        }
    }
}
