//! A query's read of this shard's storage (`Request::Select`), in slices, so that a heavy query
//! never holds the shard's thread for long.
//!
//! The read runs as a task on the shard's runtime. It first notes the matching series of each
//! block that overlaps the range and of the head, trying patterns on a slice of label values
//! at a time between pauses ([`pick`]), then reads them series by series, holding the
//! borrow of the [`Db`] for at most [`SLICE`] at a time and letting the runtime serve appends,
//! scrapes, HTTP and other queries in between. Between slices it asks the query's interrupt
//! (deadline, gone client) and whether anyone still waits, and stops if not.
//!
//! A read of the head alone (the usual dashboard query: blocks hold older data) is handed over
//! in batches of the size asked for as it goes ([`SelectAnswer::Batch`]), waiting while the
//! asker has not taken the last one, so that a batched aggregation over millions of series
//! never has the read whole on either side. A read that takes blocks in too is answered whole:
//! parts are merged by label set, which needs all of them.
//!
//! The storage may change between slices. A head series gone meanwhile (garbage-collected) is
//! skipped. If the set of blocks changed — the head cut into a new block (its samples leave
//! the head), blocks compacted or deleted — what was read may miss or repeat data, so the read
//! starts over; this is checked before each answer is sent, on the same turn as its last
//! slice, so what was sent is what one unchanged set of blocks and the head held. Once batches
//! have gone out, starting over is the asker's to do: the read fails with
//! [`EvalError::StorageChanged`]. A damaged block fails the query and is set aside, as when it
//! was read in one go.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyrite_core::labels::{Matcher, Projection};
use pyrite_core::promql::{EvalError, Interrupt, MAX_READ_RESTARTS};
use pyrite_core::value::SeriesSamples;
use pyrite_tsdb::block::{Block, BlockError};
use pyrite_tsdb::db::Db;
use pyrite_tsdb::head::Head;
use pyrite_tsdb::postings::Selecting;
use roaring::RoaringBitmap;

use super::ShardEnv;
use crate::shards::SelectAnswer;

/// The longest a slice holds the shard's thread (one series is never split, so a series with
/// a great many samples in the range may take longer).
pub(super) const SLICE: Duration = Duration::from_millis(2);

/// A slice looks at the clock after this many series or [`CLOCK_SAMPLES`] samples read since
/// it last looked, whichever comes first: a look costs about as much as reading a series'
/// newest sample, and one series may hold a great many samples.
const CLOCK_SERIES: usize = 16;
const CLOCK_SAMPLES: usize = 1024;

/// What a `Request::Select` asks.
pub struct Select {
    pub matchers: Vec<Matcher>,
    pub mint: i64,
    pub maxt: i64,
    /// Only each series' newest sample in the range is needed (the read keeps no other).
    pub newest: bool,
    /// The labels needed. The head builds only those when no block is read: parts are merged
    /// by label set, and series that differ only in labels left out would merge.
    pub labels: Projection,
    /// The most samples the read may hold: past them it stops with `TooManySamples`, before
    /// a query over all time has read them all into memory.
    pub max_samples: usize,
    /// Series per batch of a read of the head alone (`usize::MAX`: one).
    pub batch: usize,
    pub interrupt: Interrupt,
    pub reply: flume::Sender<Result<SelectAnswer, EvalError>>,
}

/// Reads and answers `select` (a task of shard `index`). The read only reads: a panic fails
/// this query, not the process (see `crate::panic`).
pub async fn serve(index: usize, storage: std::rc::Rc<RefCell<Db>>, env: Arc<ShardEnv>, select: Select) {
    let read = crate::panic::CatchPanic::new(read(&storage, &select));
    let Err(e) = read.await.unwrap_or_else(|panic| Err(EvalError::Internal(panic))) else { return };
    if let EvalError::DamagedBlock { block, reason } = &e {
        set_aside(index, &env, &mut storage.borrow_mut(), block, reason);
    }
    let _ = select.reply.send_async(Err(e)).await;
}

/// The series each source holds, noted before the read: blocks by ULID, so that a block no
/// longer served is noticed.
struct Sources {
    blocks: Vec<(String, Vec<u32>)>,
    head: Vec<u32>,
}

impl Sources {
    /// Notes what each source picks, trying [`PICK_VALUES`] label values at a time between
    /// pauses unless `sliced` is false: a selector of a hundred patterns tried on each of a
    /// label's 75,000 values held the shard for 3.5 s in one go.
    async fn note(storage: &RefCell<Db>, s: &Select, sliced: bool) -> Result<Sources, Stop> {
        let budget = if sliced { PICK_VALUES } else { usize::MAX };
        let go_on = || pause_check(s).is_ok();
        let noted: Vec<String> =
            storage.borrow().querier().blocks_in(s.mint, s.maxt).map(|b| b.meta().ulid.clone()).collect();
        let mut blocks = Vec::with_capacity(noted.len());
        for ulid in noted {
            let Some(ids) = pick(storage, Some(&ulid), &s.matchers, budget, go_on).await else {
                pause_check(s)?;
                return Err(Stop::BlocksChanged);
            };
            blocks.push((ulid, ids.iter().collect()));
        }
        let Some(head) = pick(storage, None, &s.matchers, budget, go_on).await else {
            return Err(pause_check(s).err().unwrap_or_else(stopped_waiting).into());
        };
        let sources = Sources { blocks, head: head.iter().collect() };
        // A block that came meanwhile is read from the start.
        match sources.blocks_unchanged(&storage.borrow(), s) {
            true => Ok(sources),
            false => Err(Stop::BlocksChanged),
        }
    }

    /// Whether `db` serves the same blocks in the range as when these were noted.
    fn blocks_unchanged(&self, db: &Db, s: &Select) -> bool {
        db.querier().blocks_in(s.mint, s.maxt).map(|b| &b.meta().ulid).eq(self.blocks.iter().map(|(ulid, _)| ulid))
    }
}

/// A read stopped.
enum Stop {
    /// A block noted is no longer served, or one more overlaps the range: start over.
    BlocksChanged,
    Failed(EvalError),
}

impl From<EvalError> for Stop {
    fn from(e: EvalError) -> Self {
        Stop::Failed(e)
    }
}

fn damaged(e: BlockError) -> EvalError {
    EvalError::DamagedBlock { block: e.name(), reason: e.reason }
}

/// Reads and sends every answer of `s`; starts over, up to [`MAX_READ_RESTARTS`] times, while
/// the blocks change before anything was sent, and fails with [`EvalError::StorageChanged`]
/// for the asker to start over if they change after.
async fn read(storage: &RefCell<Db>, s: &Select) -> Result<(), EvalError> {
    for attempt in 0..=MAX_READ_RESTARTS {
        s.interrupt.check()?;
        // The last attempt notes in one go, so that the blocks cannot change meanwhile.
        let sources = match Sources::note(storage, s, attempt < MAX_READ_RESTARTS).await {
            Ok(sources) => sources,
            Err(Stop::BlocksChanged) => continue,
            Err(Stop::Failed(e)) => return Err(e),
        };
        let mut sent = false;
        match read_sources(storage, s, &sources, &mut sent).await {
            Ok(()) => return Ok(()),
            Err(Stop::BlocksChanged) if !sent => continue,
            Err(Stop::BlocksChanged) => return Err(EvalError::StorageChanged),
            Err(Stop::Failed(e)) => return Err(e),
        }
    }
    Err(EvalError::Execution("the shard's blocks kept changing while the query read them".into()))
}

/// Reads `sources` and sends the answers, noting in `sent` once one went out.
async fn read_sources(storage: &RefCell<Db>, s: &Select, sources: &Sources, sent: &mut bool) -> Result<(), Stop> {
    let mut parts = Vec::with_capacity(sources.blocks.len() + 1);
    let mut samples_left = s.max_samples;
    let mut count = |series: &Option<SeriesSamples>| -> Result<usize, Stop> {
        let n = series.as_ref().map_or(0, SeriesSamples::weight);
        samples_left = samples_left.checked_sub(n).ok_or(Stop::Failed(EvalError::TooManySamples))?;
        Ok(n)
    };
    for (ulid, ids) in &sources.blocks {
        let mut part = Vec::new();
        let mut next = 0;
        while next < ids.len() {
            {
                let db = storage.borrow();
                let block = db.blocks.list().iter().find(|b| b.meta().ulid == *ulid).ok_or(Stop::BlocksChanged)?;
                let mut clock = SliceClock::start();
                while next < ids.len() && clock.goes_on() {
                    let series = block_series(block, ids[next], s.mint, s.maxt, s.newest).map_err(damaged)?;
                    clock.read(count(&series)?);
                    part.extend(series);
                    next += 1;
                }
            }
            pause(s).await?;
        }
        parts.push(part);
    }
    // The head alone is sent in batches; with blocks, whole.
    let batched = sources.blocks.is_empty();
    let batch = if batched { s.batch.max(1) } else { usize::MAX };
    let labels = read_labels(batched, &s.labels);
    let mut head = Vec::new();
    let mut next = 0;
    loop {
        let (last, due) = {
            let db = storage.borrow();
            let mut clock = SliceClock::start();
            while next < sources.head.len() && head.len() < batch && clock.goes_on() {
                // A series removed from the head since it was noted is skipped.
                let id = sources.head[next];
                let series = head_series(&db.head, id, s.mint, s.maxt, s.newest, labels);
                clock.read(count(&series)?);
                head.extend(series);
                next += 1;
            }
            let last = next == sources.head.len();
            let due = last || head.len() >= batch;
            if due && !sources.blocks_unchanged(&db, s) {
                return Err(Stop::BlocksChanged);
            }
            (last, due)
        };
        if due {
            let series = std::mem::take(&mut head);
            let answer = match batched {
                true => SelectAnswer::Batch { series, last },
                false => SelectAnswer::Whole(std::mem::take(&mut parts).into_iter().chain([series]).collect()),
            };
            s.reply.send_async(Ok(answer)).await.map_err(|_| Stop::Failed(stopped_waiting()))?;
            *sent = true;
            if last {
                return Ok(());
            }
        }
        pause(s).await?;
    }
}

/// The labels to build of the head's series: those asked for when no block is read, else all
/// (parts are merged by label set, and series that differ only in labels left out would merge).
pub(super) fn read_labels(no_blocks: bool, asked: &Projection) -> &Projection {
    if no_blocks {
        asked
    } else {
        &Projection::All
    }
}

/// Block series `id`'s samples in `[mint, maxt]`, or with `newest` only the newest of them, as
/// the head's part holds then (a selector at one instant needs no other); None if it has none
/// there.
pub(super) fn block_series(
    block: &Block,
    id: u32,
    mint: i64,
    maxt: i64,
    newest: bool,
) -> Result<Option<SeriesSamples>, BlockError> {
    let mut series = block.series_samples(id, mint, maxt)?;
    if let Some(s) = series.as_mut().filter(|_| newest) {
        s.samples.drain(..s.samples.len().saturating_sub(1));
        s.histograms.drain(..s.histograms.len().saturating_sub(1));
    }
    Ok(series)
}

/// Head series `id`'s samples in `[mint, maxt]`, or with `newest` only the newest of them;
/// None if it has none there or is gone.
pub(super) fn head_series(
    head: &Head,
    id: u32,
    mint: i64,
    maxt: i64,
    newest: bool,
    labels: &Projection,
) -> Option<SeriesSamples> {
    if newest {
        head.newest_sample(id, mint, maxt, labels)
    } else {
        head.series_samples(id, mint, maxt, labels)
    }
}

/// How long a slice has run, looked at now and then (see [`CLOCK_SERIES`]).
pub(super) struct SliceClock {
    started: Instant,
    series: usize,
    samples: usize,
}

impl SliceClock {
    /// A slice starting now; its first look is at once.
    pub(super) fn start() -> SliceClock {
        SliceClock { started: Instant::now(), series: CLOCK_SERIES, samples: 0 }
    }

    /// Counts a series read, with `samples` samples.
    pub(super) fn read(&mut self, samples: usize) {
        self.series += 1;
        self.samples += samples;
    }

    /// Whether the slice may read another series.
    pub(super) fn goes_on(&mut self) -> bool {
        if self.series < CLOCK_SERIES && self.samples < CLOCK_SAMPLES {
            return true;
        }
        (self.series, self.samples) = (0, 0);
        self.started.elapsed() < SLICE
    }
}

/// Lets the shard serve its other work, then says whether the read goes on.
async fn pause(s: &Select) -> Result<(), EvalError> {
    super::slices::pause().await;
    pause_check(s)
}

/// Whether the read goes on: someone still waits, and the query is not interrupted.
fn pause_check(s: &Select) -> Result<(), EvalError> {
    if s.reply.is_disconnected() {
        return Err(stopped_waiting());
    }
    s.interrupt.check()
}

/// Label values a selection tries between pauses (see [`Selecting`]): a millisecond or two
/// of patterns.
pub(super) const PICK_VALUES: usize = 2000;

/// The series that `matchers` pick in block `block`, or in the head if None, trying `budget`
/// label values at a time between pauses. None if the block is no longer served, or `go_on`
/// says to stop after a pause.
pub(super) async fn pick(
    storage: &RefCell<Db>,
    block: Option<&str>,
    matchers: &[Matcher],
    budget: usize,
    go_on: impl Fn() -> bool,
) -> Option<RoaringBitmap> {
    let mut selecting = Selecting::new(matchers);
    loop {
        {
            let db = storage.borrow();
            let picked = match block {
                None => db.head.candidates_step(&mut selecting, budget),
                Some(ulid) => {
                    let block = db.blocks.list().iter().find(|b| b.meta().ulid == ulid)?;
                    block.matching_step(&mut selecting, budget)
                }
            };
            if picked.is_some() {
                return picked;
            }
        }
        super::slices::pause().await;
        if !go_on() {
            return None;
        }
    }
}

fn stopped_waiting() -> EvalError {
    EvalError::Execution("the query stopped waiting".into())
}

/// Stops serving a block a query found damaged: this query failed on it, later ones answer
/// from the other blocks and the head.
fn set_aside(index: usize, env: &ShardEnv, storage: &mut Db, block: &str, reason: &str) {
    match storage.blocks.set_aside(block) {
        Ok(true) => {
            env.metrics.blocks_refused.inc();
            tracing::error!(shard = index, block, reason, "damaged block set aside; its data is no longer served");
        }
        Ok(false) => {}
        Err(e) => tracing::error!(shard = index, block, error = %e, "cannot set a damaged block aside"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrite_core::labels::Labels;
    use pyrite_core::remote::WriteSeries;
    use pyrite_core::value::Sample;
    use pyrite_tsdb::querier::merge_parts;
    use std::future::Future;
    use std::task::Poll;

    use crate::shard::testing::{open, runtime, RANGE};

    type Answers = flume::Receiver<Result<SelectAnswer, EvalError>>;

    /// A read of every series in `[0, 5000]`, of at most `max_samples`, in batches of `batch`
    /// when only the head is read; with the receiver of its answers, which holds them all.
    fn everything(max_samples: usize, batch: usize) -> (Select, Answers) {
        let (matchers, labels, interrupt) = (Vec::new(), Projection::All, Interrupt::default());
        let (reply, answers) = flume::unbounded();
        (Select { matchers, mint: 0, maxt: 5000, newest: false, labels, max_samples, batch, interrupt, reply }, answers)
    }

    /// Each answer received, as (series, whether it was the last batch; None if whole).
    fn received(answers: &Answers) -> Vec<(Vec<SeriesSamples>, Option<bool>)> {
        answers
            .try_iter()
            .map(|a| match a.expect("an answer") {
                SelectAnswer::Whole(parts) => (merge_parts(parts), None),
                SelectAnswer::Batch { series, last } => (series, Some(last)),
            })
            .collect()
    }

    /// Five series with a sample every 100 ms in `[from, to]`.
    fn samples(from: i64, to: i64) -> Vec<WriteSeries> {
        (0..5)
            .map(|i| WriteSeries {
                labels: Labels::from_pairs([("__name__", "m".to_string()), ("i", i.to_string())]),
                samples: (from / 100..=to / 100).map(|k| Sample { t: k * 100, v: k as f64 }).collect(),
                exemplars: Vec::new(),
                histograms: Vec::new(),
            })
            .collect()
    }

    /// The head cut into a block between two slices of a read: the read starts over, and
    /// answers what blocks and head hold, each sample once.
    #[test]
    fn a_read_across_a_block_cut_starts_over_and_misses_nothing() {
        let (storage, dir) = open("cut");
        let _ = storage.borrow_mut().write(samples(0, 2000));
        assert_eq!(storage.borrow_mut().cut_blocks(RANGE, 0, i64::MIN).expect("cut").blocks.len(), 1);

        let (select, answers) = everything(usize::MAX, 1);
        runtime().block_on(async {
            let mut read = std::pin::pin!(read(&storage, &select));
            let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
            assert!(first.is_pending(), "the read pauses after its first block");
            let _ = storage.borrow_mut().write(samples(2100, 2600));
            assert_eq!(storage.borrow_mut().cut_blocks(RANGE, 0, i64::MIN).expect("cut").blocks.len(), 1);
            read.await.expect("read")
        });

        let mut answers = received(&answers);
        assert_eq!(answers.len(), 1, "blocks and head are answered in one go");
        let (mut got, batched) = answers.pop().expect("the answer");
        assert_eq!(batched, None);
        got.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut want = storage.borrow().querier().select(&[], 0, 5000).expect("select");
        want.sort_by(|a, b| a.labels.cmp(&b.labels));
        assert_eq!(got, want);
        assert_eq!(got.iter().map(|s| s.samples.len()).collect::<Vec<_>>(), vec![27; 5]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A read stops once it holds more samples than it may, before reading the rest.
    #[test]
    fn a_read_past_its_samples_stops() {
        let (storage, dir) = open("limit");
        let _ = storage.borrow_mut().write(samples(0, 2000));
        assert_eq!(storage.borrow_mut().cut_blocks(RANGE, 0, i64::MIN).expect("cut").blocks.len(), 1);
        let _ = storage.borrow_mut().write(samples(2100, 2600));
        // Five series of 27 samples, in a block and the head.
        let read_at_most = |n| runtime().block_on(read(&storage, &everything(n, usize::MAX).0));
        assert!(read_at_most(135).is_ok());
        assert!(matches!(read_at_most(134), Err(EvalError::TooManySamples)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A read of the head alone comes in batches of the size asked for, the last one saying so.
    #[test]
    fn a_read_of_the_head_alone_comes_in_batches() {
        let (storage, dir) = open("batches");
        let _ = storage.borrow_mut().write(samples(0, 2000));
        let (select, answers) = everything(usize::MAX, 2);
        runtime().block_on(read(&storage, &select)).expect("read");
        let answers = received(&answers);
        let shape: Vec<_> = answers.iter().map(|(series, last)| (series.len(), *last)).collect();
        assert_eq!(shape, [(2, Some(false)), (2, Some(false)), (1, Some(true))]);
        let mut got: Vec<_> = answers.into_iter().flat_map(|(series, _)| series).collect();
        got.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut want = storage.borrow().querier().select(&[], 0, 5000).expect("select");
        want.sort_by(|a, b| a.labels.cmp(&b.labels));
        assert_eq!(got, want);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The head cut into a block after a batch went out: the read cannot start over by itself
    /// and fails with `StorageChanged`, for the asker to read again.
    #[test]
    fn a_block_cut_after_a_batch_went_out_fails_the_read_for_the_asker_to_retry() {
        let (storage, dir) = open("batch-cut");
        let _ = storage.borrow_mut().write(samples(0, 2000));
        let (select, answers) = everything(usize::MAX, 2);
        let out = runtime().block_on(async {
            let mut read = std::pin::pin!(read(&storage, &select));
            let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
            assert!(first.is_pending(), "the read pauses after its first batch");
            let _ = storage.borrow_mut().write(samples(2100, 2600));
            assert!(!storage.borrow_mut().cut_blocks(RANGE, 0, i64::MIN).expect("cut").blocks.is_empty());
            read.await
        });
        assert!(matches!(out, Err(EvalError::StorageChanged)), "{out:?}");
        assert_eq!(received(&answers).len(), 1, "one batch went out");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
