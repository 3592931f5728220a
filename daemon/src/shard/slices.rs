//! Heavy storage work that shares the shard: what reads the head is done [`SLICE_SERIES`]
//! series at a time with a [`pause`] between slices, so appends, scrapes and queries are
//! served in between; what needs only files runs [`off_shard`](crate::threads::off_shard), on a
//! thread of its own, while the shard waits for it without blocking.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pyrite_tsdb::block::BlockMeta;
use pyrite_tsdb::blocks::CutError;
use pyrite_tsdb::cut::HeadCut;
use pyrite_tsdb::db::Db;
use pyrite_tsdb::head::{HeadStats, StatsReading};
use pyrite_tsdb::wal::LogWrite;

use crate::threads;

/// Series one slice writes before the shard serves its other tasks again: a few milliseconds
/// of copying.
pub const SLICE_SERIES: usize = 2000;

/// Bytes of a block or checkpoint written and not on disk yet past which the next slice waits:
/// the files are written by threads of their own (`pyrite_tsdb::queued_file`), and a stalled
/// disk must not make the shard queue the whole head in memory.
const QUEUED_MOST: u64 = 8 << 20;

/// How long the shard may go without firing its timers while tasks pause.
const TIMERS_EVERY: Duration = Duration::from_millis(10);

thread_local! {
    /// When a pause on this shard last let its timers fire.
    static TIMERS_FIRED: Cell<Instant> = Cell::new(Instant::now());
}

/// Lets the shard's other tasks run between two slices of work. Re-waking at once lets the
/// ready tasks and I/O run, but monoio fires timers (scrape schedules, timeouts) only when its
/// run queue empties, which a task that always re-wakes prevents; so at least every
/// [`TIMERS_EVERY`] the pause is a short sleep instead.
pub async fn pause() {
    if TIMERS_FIRED.get().elapsed() < TIMERS_EVERY {
        YieldNow(false).await;
    } else {
        monoio::time::sleep(Duration::from_millis(1)).await;
        TIMERS_FIRED.set(Instant::now());
    }
}

/// Pauses, and then while `behind` says a file's writer is behind the disk.
async fn pause_while(behind: impl Fn() -> bool) {
    pause().await;
    while behind() {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Pending once, waking itself: the runtime runs its other ready tasks and polls for I/O
/// before it polls this task again.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
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
        pause_while(|| job.waiting() > QUEUED_MOST).await;
    }
    threads::off_shard(threads::named("cut"), move || {
        let (meta, path) = job.finish()?;
        then(meta, path)
    })
    .await?
}

/// Writes a checkpoint or snapshot a slice at a time, makes it durable off the shard, and
/// takes it in place; returns how many log segments it let go.
pub async fn write_log(storage: &RefCell<Db>, mut job: LogWrite) -> std::io::Result<usize> {
    while !job.is_written() {
        job.write(&storage.borrow().head, SLICE_SERIES)?;
        pause_while(|| job.waiting() > QUEUED_MOST).await;
    }
    let written = threads::off_shard(threads::named("log-sync"), move || job.finish()).await??;
    storage.borrow_mut().complete_log_write(written)
}

/// Forgets the series among `ids` still without samples, a slice at a time; returns how many.
pub async fn forget(storage: &RefCell<Db>, ids: &[u32]) -> usize {
    let mut forgotten = 0;
    for slice in ids.chunks(SLICE_SERIES) {
        let (n, logged) = storage.borrow_mut().forget_series(slice);
        if let Err(e) = logged.await {
            tracing::warn!(error = %e, "cannot log forgotten series; the remote-write sender keeps their labels");
        }
        forgotten += n;
        pause().await;
    }
    forgotten
}

/// The head's stats for `/api/v1/status/tsdb`, a slice of series or label pairs at a time
/// (copying the pairs of 300,000 series held a shard for 0.3 s in one go); None once `go_on`
/// says after a pause that nobody waits.
pub async fn head_stats(storage: &RefCell<Db>, go_on: impl Fn() -> bool) -> Option<HeadStats> {
    let mut reading = StatsReading::start(&storage.borrow().head);
    loop {
        let done = reading.step(&storage.borrow().head, SLICE_SERIES);
        if done {
            return Some(reading.finish());
        }
        pause().await;
        if !go_on() {
            return None;
        }
    }
}
