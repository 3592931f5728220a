//! Heavy storage work that shares the shard: what reads the head is done [`SLICE_SERIES`]
//! series at a time with a [`pause`] between slices, so appends, scrapes and queries are
//! served in between; what needs only files runs [`off_shard`], on a thread of its own, while
//! the shard waits for it without blocking.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Duration;

use pyrite_tsdb::block::BlockMeta;
use pyrite_tsdb::blocks::CutError;
use pyrite_tsdb::cut::HeadCut;
use pyrite_tsdb::db::Db;
use pyrite_tsdb::wal::LogWrite;

/// Series one slice writes before the shard serves its other tasks again: a few milliseconds
/// of copying.
pub const SLICE_SERIES: usize = 2000;

/// Lets the shard's other tasks run between two slices of work. A timer rather than a bare
/// re-wake: monoio fires timers (scrape schedules) only when its run queue empties.
pub async fn pause() {
    monoio::time::sleep(Duration::from_millis(1)).await;
}

/// Runs `work` on a thread of its own and waits for it without blocking the shard.
pub async fn off_shard<T, E>(name: &str, work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<std::io::Error> + Send + 'static,
{
    let (tx, rx) = flume::bounded(1);
    std::thread::Builder::new().name(name.to_string()).spawn(move || {
        let _ = tx.send(work());
    })?;
    rx.recv_async().await.unwrap_or_else(|_| Err(std::io::Error::other(format!("the {name} thread stopped")).into()))
}

/// Writes a block from the head a slice at a time, then its index off the shard, where `then`
/// also runs with its meta and directory (to open it, which reads the index).
pub async fn write_block<T: Send + 'static>(
    storage: &RefCell<Db>,
    mut job: HeadCut,
    then: impl FnOnce(BlockMeta, PathBuf) -> Result<T, CutError> + Send + 'static,
) -> Result<T, CutError> {
    while !job.is_written() {
        job.write(&storage.borrow().head, SLICE_SERIES)?;
        pause().await;
    }
    off_shard("cut", move || {
        let (meta, path) = job.finish()?;
        then(meta, path)
    })
    .await
}

/// Writes a checkpoint or snapshot a slice at a time, makes it durable off the shard, and
/// takes it in place; returns how many log segments it let go.
pub async fn write_log(storage: &RefCell<Db>, mut job: LogWrite) -> std::io::Result<usize> {
    while !job.is_written() {
        job.write(&storage.borrow().head, SLICE_SERIES)?;
        pause().await;
    }
    let written = off_shard("log-sync", move || job.finish()).await?;
    storage.borrow_mut().complete_log_write(written)
}

/// Forgets the series among `ids` still without samples, a slice at a time; returns how many.
pub async fn forget(storage: &RefCell<Db>, ids: &[u32]) -> usize {
    let mut forgotten = 0;
    for slice in ids.chunks(SLICE_SERIES) {
        forgotten += storage.borrow_mut().forget_series(slice);
        pause().await;
    }
    forgotten
}
