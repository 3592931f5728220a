//! The API's listings of this shard's storage (`series`, label names, label values), read in
//! slices: listing a shard that holds millions of series must not hold its thread (a `series`
//! over 600k head series held it for 0.8 s in one go).
//!
//! A listing is a task on the shard's runtime. It notes the series that any `match[]`
//! selector picks in each block that overlaps the range and in the head, if the head may hold
//! samples in it (postings look-ups, their union, patterns tried on a slice of label values at
//! a time between pauses). Label names and values then come from each source's postings at once
//! where that looks at few enough lists ([`MOST_LISTS_AT_ONCE`]); otherwise, and for `series`,
//! the series are visited a slice at a time, as a query's read does ([`super::select`]), keeping
//! of each its label set if it has samples in the range, or its label names, or its value of
//! one label. A head series gone meanwhile (garbage-collected) is skipped. If the set of
//! blocks changed between slices (the head cut into a new block, blocks compacted or deleted),
//! what was visited may miss series, so the listing starts over; the last attempt visits
//! everything in one go.
//!
//! Label names and values are listed for every series of a source whatever their own samples'
//! times, the head's as a block's, as upstream lists them. Answers hold an item once per source
//! at most and in no order: the API merges the shards' answers into one sorted set.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Instant;

use pyrite_core::labels::{Labels, Matcher};
use pyrite_core::promql::MAX_READ_RESTARTS;
use pyrite_tsdb::block::{Block, BlockError};
use pyrite_tsdb::db::{Db, StorageError};
use pyrite_tsdb::head::Head;
use roaring::RoaringBitmap;

use super::select::{pick, SliceClock, PICK_VALUES, SLICE};
use crate::shards::{Selection, ShardError};

/// What a listing keeps of each series it visits.
pub trait Keep {
    type Item: Send;
    /// Makes room for about `series` items before the visit (growing a set of a million by
    /// rehashing it would hold the shard as long as listing it did).
    fn reserve(&mut self, _series: usize) {}
    /// Keeps what it lists of head series `id`, for a listing of `[mint, maxt]`.
    fn keep_head(&mut self, head: &Head, id: u32, mint: i64, maxt: i64);
    /// Keeps what it lists of the series `ids` of `block` at once, from its postings, if it
    /// can; else false, and they are visited one by one.
    fn keep_block_whole(&mut self, _block: &Block, _ids: &RoaringBitmap) -> bool {
        false
    }
    /// The same for the head's series `ids`.
    fn keep_head_whole(&mut self, _head: &Head, _ids: &RoaringBitmap) -> bool {
        false
    }
    /// Keeps what it lists of series `id` of `block` (not asked of blocks kept whole).
    fn keep_block(&mut self, _block: &Block, _id: u32, _mint: i64, _maxt: i64) -> Result<(), BlockError> {
        Ok(())
    }
    fn into_items(self) -> Vec<Self::Item>;
}

/// The label sets of the series with samples in the range, each once (a series is in the head
/// and in every block of the range).
#[derive(Default)]
pub struct SeriesLabels(HashSet<Labels>);

impl Keep for SeriesLabels {
    type Item = Labels;
    fn reserve(&mut self, series: usize) {
        self.0.reserve(series);
    }
    fn keep_head(&mut self, head: &Head, id: u32, mint: i64, maxt: i64) {
        if head.has_samples_in(id, mint, maxt) {
            self.0.extend(head.labels(id));
        }
    }
    fn keep_block(&mut self, block: &Block, id: u32, mint: i64, maxt: i64) -> Result<(), BlockError> {
        self.0.extend(block.series_labels(id, mint, maxt)?);
        Ok(())
    }
    fn into_items(self) -> Vec<Labels> {
        self.0.into_iter().collect()
    }
}

/// Most items a listing makes room for before its visit (a set of millions grows by
/// rehashing, once or twice, past that).
const MOST_RESERVED: usize = 1 << 21;

/// Most postings lists of a source looked at in one slice to list its label names or values;
/// past them, its series' labels are read one by one in slices.
const MOST_LISTS_AT_ONCE: usize = 16_384;

/// Distinct strings, each allocated once however many series carry it.
#[derive(Default)]
pub struct Distinct(HashSet<String>);

impl Distinct {
    fn add(&mut self, s: &str) {
        if !self.0.contains(s) {
            self.0.insert(s.to_string());
        }
    }

    /// Adds `listed`, if a source could list them at once; whether it could.
    fn add_all(&mut self, listed: Option<Vec<&str>>) -> bool {
        listed.inspect(|all| all.iter().for_each(|s| self.add(s))).is_some()
    }
}

/// The label names the series carry. Like upstream, it lists those of every series a source
/// holds that overlaps the range, the head as a block, whatever the series' own samples' times.
#[derive(Default)]
pub struct LabelNames(Distinct);

impl Keep for LabelNames {
    type Item = String;
    fn keep_head(&mut self, head: &Head, id: u32, _: i64, _: i64) {
        head.label_pairs(id).into_iter().flatten().for_each(|(name, _)| self.0.add(name));
    }
    fn keep_block_whole(&mut self, block: &Block, ids: &RoaringBitmap) -> bool {
        self.0.add_all(block.label_names_among(ids, MOST_LISTS_AT_ONCE))
    }
    fn keep_head_whole(&mut self, head: &Head, ids: &RoaringBitmap) -> bool {
        self.0.add_all(head.label_names_among(ids, MOST_LISTS_AT_ONCE))
    }
    fn keep_block(&mut self, block: &Block, id: u32, _: i64, _: i64) -> Result<(), BlockError> {
        block.labels_of(id)?.iter().for_each(|l| self.0.add(&l.name));
        Ok(())
    }
    fn into_items(self) -> Vec<String> {
        self.0 .0.into_iter().collect()
    }
}

/// The values the series have for one label name, listed as [`LabelNames`] are.
pub struct LabelValues {
    name: String,
    values: Distinct,
}

impl LabelValues {
    pub fn of(name: String) -> Self {
        LabelValues { name, values: Distinct::default() }
    }
}

impl Keep for LabelValues {
    type Item = String;
    fn keep_head(&mut self, head: &Head, id: u32, _: i64, _: i64) {
        let value = head.label_pairs(id).into_iter().flatten().find(|(name, _)| *name == self.name);
        value.into_iter().for_each(|(_, value)| self.values.add(value));
    }
    fn keep_block_whole(&mut self, block: &Block, ids: &RoaringBitmap) -> bool {
        self.values.add_all(block.label_values_among(&self.name, ids, MOST_LISTS_AT_ONCE))
    }
    fn keep_head_whole(&mut self, head: &Head, ids: &RoaringBitmap) -> bool {
        self.values.add_all(head.label_values_among(&self.name, ids, MOST_LISTS_AT_ONCE))
    }
    fn keep_block(&mut self, block: &Block, id: u32, _: i64, _: i64) -> Result<(), BlockError> {
        let labels = block.labels_of(id)?;
        let value = labels.get(&self.name);
        if !value.is_empty() {
            self.values.add(value);
        }
        Ok(())
    }
    fn into_items(self) -> Vec<String> {
        self.values.0.into_iter().collect()
    }
}

/// Lists `selection` with `keep` (its fields set, its items empty) and answers on `reply`;
/// gives up without an answer once nobody waits. It only reads: a panic fails this request,
/// not the process (see `crate::panic`).
pub async fn serve<K: Keep>(
    storage: Rc<RefCell<Db>>,
    selection: Selection,
    keep: impl Fn() -> K,
    reply: flume::Sender<Result<Vec<K::Item>, ShardError>>,
) {
    let listed = crate::panic::CatchPanic::new(list(&storage, &selection, keep, &reply)).await;
    let answer = match listed {
        Ok(Ok(Some(items))) => Ok(items),
        Ok(Ok(None)) => return,
        Ok(Err(e)) => Err(StorageError::from(e).into()),
        Err(panic) => Err(ShardError::Panic(panic)),
    };
    let _ = reply.send(answer);
}

/// The series each source picks, noted before the visit: blocks by ULID, so that a block no
/// longer served is noticed.
struct Sources {
    blocks: Vec<(String, RoaringBitmap)>,
    head: RoaringBitmap,
}

impl Sources {
    /// Notes what each source picks for the selectors (the union of their picks), trying a
    /// slice of label values at a time between pauses, and pausing between selectors once a
    /// slice has run, unless `sliced` is false: a thousand regex selectors, each matched
    /// against a label's hundreds of thousands of values, held the shard for 30 s in one go. `Ok(None)` if the blocks changed meanwhile; an error
    /// once nobody waits.
    async fn note<T>(
        storage: &RefCell<Db>,
        selection: &Selection,
        sliced: bool,
        reply: &flume::Sender<T>,
    ) -> Result<Option<Sources>, Abandoned> {
        let every: &[Vec<Matcher>] = &[Vec::new()];
        let sets = if selection.matchers.is_empty() { every } else { selection.matchers.as_slice() };
        let ulids = |db: &Db| -> Vec<String> {
            db.querier().blocks_in(selection.mint, selection.maxt).map(|b| b.meta().ulid.clone()).collect()
        };
        let noted = ulids(&storage.borrow());
        let mut sources = Sources {
            blocks: noted.into_iter().map(|ulid| (ulid, RoaringBitmap::new())).collect(),
            head: RoaringBitmap::new(),
        };
        let budget = if sliced { PICK_VALUES } else { usize::MAX };
        let go_on = || !reply.is_disconnected();
        let mut started = Instant::now();
        for set in sets {
            // A selector whose values take less than a slice to try is picked without a pause:
            // a thousand of them pause between them once a slice has run.
            if sliced && started.elapsed() >= SLICE {
                super::slices::pause().await;
                if !go_on() {
                    return Err(Abandoned);
                }
                started = Instant::now();
            }
            for (ulid, ids) in sources.blocks.iter_mut() {
                match pick(storage, Some(ulid), set, budget, go_on).await {
                    Some(picked) => *ids |= picked,
                    None if go_on() => return Ok(None),
                    None => return Err(Abandoned),
                }
            }
            if storage.borrow().head.may_hold(selection.mint, selection.maxt) {
                sources.head |= pick(storage, None, set, budget, go_on).await.ok_or(Abandoned)?;
            }
        }
        Ok(sources.blocks_unchanged(&storage.borrow(), selection).then_some(sources))
    }

    fn blocks_unchanged(&self, db: &Db, selection: &Selection) -> bool {
        let q = db.querier();
        let now = q.blocks_in(selection.mint, selection.maxt).map(|b| &b.meta().ulid);
        now.eq(self.blocks.iter().map(|(ulid, _)| ulid))
    }
}

/// Nobody waits for the listing any more.
struct Abandoned;

/// The listing's items; None if nobody waits any more.
async fn list<K: Keep, T>(
    storage: &RefCell<Db>,
    selection: &Selection,
    keep: impl Fn() -> K,
    reply: &flume::Sender<T>,
) -> Result<Option<Vec<K::Item>>, BlockError> {
    let mut attempt = 0;
    loop {
        let sliced = attempt < MAX_READ_RESTARTS;
        let sources = match Sources::note(storage, selection, sliced, reply).await {
            Ok(Some(sources)) => sources,
            Ok(None) => {
                attempt += 1;
                continue;
            }
            Err(Abandoned) => return Ok(None),
        };
        let mut kept = keep();
        // Most series are in every source: the largest holds about as many as are listed.
        let largest = sources.blocks.iter().map(|(_, ids)| ids.len()).chain([sources.head.len()]).max();
        kept.reserve((largest.unwrap_or(0) as usize).min(MOST_RESERVED));
        match visit(storage, selection, &sources, &mut kept, sliced, reply).await? {
            Visit::Done => return Ok(Some(kept.into_items())),
            Visit::BlocksChanged => attempt += 1,
            Visit::Abandoned => return Ok(None),
        }
    }
}

enum Visit {
    Done,
    BlocksChanged,
    Abandoned,
}

/// Visits every series `sources` noted, in slices unless `sliced` is false, each source from
/// slices of its own, or at once from its postings when `kept` can; the last slice checks that
/// the blocks are those noted, on the same turn. Visited in one go, nothing can change
/// meanwhile: that visit is done.
async fn visit<T>(
    storage: &RefCell<Db>,
    selection: &Selection,
    sources: &Sources,
    kept: &mut impl Keep,
    sliced: bool,
    reply: &flume::Sender<T>,
) -> Result<Visit, BlockError> {
    let (mint, maxt) = (selection.mint, selection.maxt);
    // Blocks by their place in `sources.blocks`, then the head (None).
    let order: Vec<Option<usize>> = (0..sources.blocks.len()).map(Some).chain([None]).collect();
    for (k, &source) in order.iter().enumerate() {
        let last = k + 1 == order.len();
        let ids = source.map_or(&sources.head, |i| &sources.blocks[i].1);
        let mut rest = ids.iter().peekable();
        let (mut offered, mut done) = (false, rest.peek().is_none());
        while !done {
            {
                let db = storage.borrow();
                let block = match source {
                    Some(i) => match db.blocks.list().iter().find(|b| b.meta().ulid == sources.blocks[i].0) {
                        Some(block) => Some(block),
                        None => return Ok(Visit::BlocksChanged),
                    },
                    None => None,
                };
                let mut clock = SliceClock::start();
                let whole = !offered
                    && match block {
                        Some(block) => kept.keep_block_whole(block, ids),
                        None => kept.keep_head_whole(&db.head, ids),
                    };
                offered = true;
                while !whole && (!sliced || clock.goes_on()) {
                    let Some(id) = rest.next() else { break };
                    clock.read(1);
                    match block {
                        Some(block) => kept.keep_block(block, id, mint, maxt)?,
                        None => kept.keep_head(&db.head, id, mint, maxt),
                    }
                }
                done = whole || rest.peek().is_none();
            }
            // Unsliced, a source is visited in one go and the next follows on the same turn; the
            // last slice of all is checked below, on its turn too.
            if sliced && !(done && last) {
                super::slices::pause().await;
                if reply.is_disconnected() {
                    return Ok(Visit::Abandoned);
                }
            }
        }
    }
    let unchanged = !sliced || sources.blocks_unchanged(&storage.borrow(), selection);
    Ok(if unchanged { Visit::Done } else { Visit::BlocksChanged })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrite_core::labels::MatchOp;
    use pyrite_core::remote::WriteSeries;
    use pyrite_core::value::Sample;
    use std::future::Future;
    use std::task::Poll;

    use crate::shard::testing::{open, runtime, RANGE};

    /// Series `m{i, job}` for `is`, with a sample every 100 ms in `[from, to]`.
    fn samples(is: std::ops::Range<usize>, job: &str, from: i64, to: i64) -> Vec<WriteSeries> {
        is.map(|i| WriteSeries {
            labels: Labels::from_pairs([("__name__", "m".into()), ("i", i.to_string()), ("job", job.into())]),
            samples: (from / 100..=to / 100).map(|k| Sample { t: k * 100, v: k as f64 }).collect(),
            exemplars: Vec::new(),
            histograms: Vec::new(),
        })
        .collect()
    }

    fn selection(matchers: Vec<Vec<Matcher>>, mint: i64, maxt: i64) -> Selection {
        Selection { matchers, mint, maxt }
    }

    fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
        items.sort();
        items.dedup();
        items
    }

    /// The head cut into a new block between two slices: the listing starts over and lists
    /// the series whose samples moved, which it had not visited yet.
    #[test]
    fn a_listing_across_a_block_cut_starts_over_and_misses_nothing() {
        let (storage, dir) = open("listing-cut");
        let _ = storage.borrow_mut().write(samples(0..5, "old", 0, 900));
        let _ = storage.borrow_mut().write(samples(5..10, "new", 1000, 1900));
        assert_eq!(storage.borrow_mut().cut_blocks(RANGE, 0, i64::MIN).expect("cut").blocks.len(), 1);
        let (reply, _answers) = flume::unbounded::<()>();
        let all = selection(Vec::new(), 0, 5000);
        let listed = runtime().block_on(async {
            let mut listing = std::pin::pin!(list(&storage, &all, SeriesLabels::default, &reply));
            let first = std::future::poll_fn(|cx| Poll::Ready(listing.as_mut().poll(cx))).await;
            assert!(first.is_pending(), "the listing pauses after the block");
            // The head's series move into a block of their own before they were visited.
            let _ = storage.borrow_mut().write(samples(10..11, "filler", 1000, 3000));
            assert_eq!(storage.borrow_mut().cut_blocks(RANGE, 0, i64::MIN).expect("cut").blocks.len(), 1);
            listing.await.expect("listed").expect("an answer")
        });
        let jobs: Vec<&str> = sorted(listed.iter().map(|l| l.get("job")).collect());
        assert_eq!((sorted(listed.clone()).len(), jobs), (11, vec!["filler", "new", "old"]));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The last attempt notes and visits in one turn, blocks and head: nothing can change
    /// meanwhile, so it needs no check that the blocks stayed.
    #[test]
    fn an_unsliced_listing_is_done_in_one_turn() {
        let (storage, dir) = open("listing-unsliced");
        let _ = storage.borrow_mut().write(samples(0..5, "old", 0, 900));
        let _ = storage.borrow_mut().write(samples(5..10, "new", 1000, 1900));
        assert_eq!(storage.borrow_mut().cut_blocks(RANGE, 0, i64::MIN).expect("cut").blocks.len(), 1);
        let (reply, _answers) = flume::unbounded::<()>();
        let all = selection(Vec::new(), 0, 5000);
        let mut kept = SeriesLabels::default();
        runtime().block_on(async {
            let mut note = std::pin::pin!(Sources::note(&storage, &all, false, &reply));
            let noted = std::future::poll_fn(|cx| Poll::Ready(note.as_mut().poll(cx))).await;
            let Poll::Ready(Ok(Some(sources))) = noted else { panic!("noted in one turn") };
            let mut visit = std::pin::pin!(visit(&storage, &all, &sources, &mut kept, false, &reply));
            let visited = std::future::poll_fn(|cx| Poll::Ready(visit.as_mut().poll(cx))).await;
            assert!(matches!(visited, Poll::Ready(Ok(Visit::Done))), "visited in one turn");
        });
        assert_eq!(kept.into_items().len(), 10);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Selectors are united, series without samples in the range left out, and label names
    /// and values listed for the series the selectors pick, from block and head.
    #[test]
    fn listings_unite_the_selectors_over_block_and_head() {
        let (storage, dir) = open("listing-kinds");
        let _ = storage.borrow_mut().write(samples(0..3, "a", 0, 900));
        let _ = storage.borrow_mut().write(samples(3..6, "b", 1000, 1900));
        let _ = storage.borrow_mut().write(samples(6..8, "c", 1000, 1100));
        assert_eq!(storage.borrow_mut().cut_blocks(RANGE, 0, i64::MIN).expect("cut").blocks.len(), 1);
        let job = |v: &str| vec![Matcher::new("job", MatchOp::Equal, v).expect("matcher")];
        let (reply, _answers) = flume::unbounded::<()>();
        let run = |s: &Selection| {
            let rt = &mut runtime();
            let series = rt.block_on(list(&storage, s, SeriesLabels::default, &reply)).unwrap().unwrap();
            let names = rt.block_on(list(&storage, s, LabelNames::default, &reply)).unwrap().unwrap();
            let values = rt.block_on(list(&storage, s, || LabelValues::of("i".into()), &reply)).unwrap().unwrap();
            (sorted(series).len(), sorted(names), sorted(values))
        };
        let names = vec!["__name__".to_string(), "i".into(), "job".into()];
        let is = |r: std::ops::Range<usize>| sorted(r.map(|i| i.to_string()).collect::<Vec<_>>());
        assert_eq!(run(&selection(vec![job("a"), job("b")], 0, 5000)), (6, names.clone(), is(0..6)));
        // Series c has no sample after 1.1 s: the series listing leaves it out, while label names
        // and values are those of every series of a source that overlaps the range, as upstream
        // lists them (the head's postings at once without match[]).
        let late = selection(vec![job("b"), job("c")], 1500, 5000);
        assert_eq!(run(&late), (3, names.clone(), is(3..8)));
        assert_eq!(run(&selection(Vec::new(), 1500, 5000)), (3, names, is(3..8)));
        // The head holds nothing after 1.9 s.
        assert_eq!(run(&selection(Vec::new(), 2000, 5000)), (0, Vec::new(), Vec::new()));
        assert_eq!(run(&selection(vec![job("none")], 0, 5000)), (0, Vec::new(), Vec::new()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
