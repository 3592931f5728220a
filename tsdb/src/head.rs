//! The head: a shard's in-memory series and their samples.
//!
//! Invariants:
//! * Series ids are handed out in increasing order and never reused, so an id that scrape
//!   caches or the write-ahead log still hold can only name its own series or none: appending
//!   to an id the head has forgotten is refused as [`AppendError::UnknownSeries`], and the
//!   caller resolves the series by its labels again. A replay keeps the ids the log recorded.
//! * When data moves to blocks ([`Head::truncate_before`]), series left without samples are
//!   forgotten: their postings, their label strings no other series uses, and their ids
//!   (upstream's head garbage collection), so churned series do not pile up.
//! * Each series' samples are strictly increasing in time. An append at an earlier time is
//!   rejected as out of order; one at the same time is accepted only if the value is bit-for-bit
//!   the same (a no-op), otherwise rejected as a duplicate — Prometheus's rules.
//! * Chunks hold at most [`CHUNK_SAMPLES`] samples. Each series appends to one open XOR chunk;
//!   a full one is transcoded into a [`packed`] chunk (smaller, bulk-decodable) and sealed
//!   into the head's [`ChunkStore`] (memory-mapped files in a server), which keeps only a
//!   reference and the time range per sealed chunk in anonymous memory.
//!   A chunk is also sealed where a block boundary (a multiple of the block range) falls, so
//!   cutting a block takes whole chunks and re-encodes nothing.
//! * Samples before `min_valid` (the end of the newest block) belong to blocks: appends there
//!   are refused as out of bounds and queries do not read them from the head. While a block is
//!   being written from the head, appends are already refused before its end
//!   ([`Head::freeze_before`]) but queries still read its range here until it is installed.
//!   Samples after `max_valid` (set by the shard from its clock) are refused as too far in
//!   the future.
//! * With an out-of-order window set, a sample refused above as out of order or out of bounds
//!   is kept apart in [`OutOfOrder`] instead if it is no older than the window before the
//!   head's newest sample (refused as too old otherwise), as upstream; reads merge it in. An
//!   agent's head takes one newer than the window before its series' last, as upstream's
//!   agent, and keeps nothing of it.
//! * A head [`Head::without_samples`] (agent mode) keeps series only: an append checks order
//!   against the series' last sample and records it, and nothing else (no chunks, no
//!   postings, so it answers no query). Its series are forgotten when they have not been
//!   appended to for a while ([`Head::inactive_before`]), not when their chunks go.
//!
//! The head is owned by one shard thread and is neither `Send` nor shared.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use roaring::RoaringBitmap;
use thiserror::Error;

use super::block::BlockChunk;
use super::chunk::histogram::encodable;
use super::chunk::sealed::Decoded;
use super::chunk::store::{ChunkRef, ChunkStore, MAX_CHUNK_BYTES};
use super::chunk::{packed, XorChunk, XorState};
use super::exemplars::{ExemplarError, Exemplars};
use super::histogram_series::{fits, HistogramSeries, HistogramSnapshot};
use super::out_of_order::{Insert, OutOfOrder, Value};
use super::overlap::forget_reset_hint;
use super::postings::{Postings, Selecting};
use super::series_map::{ByHash, DenseById};
use super::symbols::{SymbolTable, Symbols};
use pyrite_core::histogram::{CounterResetHint, FloatHistogram};
use pyrite_core::labels::{hash_pairs, Labels, Matcher, Projection};
use pyrite_core::value::{Exemplar, HistogramSample, Sample, SeriesSamples};

mod stats;
pub use stats::{HeadStats, StatsReading};

/// Samples per chunk before a new one is cut (as Prometheus).
pub const CHUNK_SAMPLES: usize = 120;

/// A series' last value after a histogram sample: a NaN no float sample carries in practice,
/// so that a float at the same time is a duplicate with another value, as upstream refuses it.
const HISTOGRAM_LAST_V: u64 = 0x7ff8_4849_5354_4f47;

/// Why an append was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AppendError {
    #[error("out of order sample")]
    OutOfOrder,
    #[error("duplicate sample for timestamp")]
    Duplicate,
    #[error("out of bounds")]
    OutOfBounds,
    #[error("too far in the future")]
    TooFarInFuture,
    /// Out of order, and older than the out-of-order window allows.
    #[error("too old sample")]
    TooOld,
    /// The id names no series (the head forgot it, or never had it).
    #[error("unknown series")]
    UnknownSeries,
    /// A histogram with more buckets than the head stores
    /// ([`crate::histogram_series::MAX_HISTOGRAM_BUCKETS`]).
    #[error("histogram bucket limit exceeded")]
    BucketLimit,
    /// A histogram whose spans, bounds or schema no histogram has (see
    /// [`crate::chunk::histogram::encodable`]).
    #[error("invalid histogram")]
    InvalidHistogram,
}

/// Where an accepted sample went. A sample the head holds already (same time, same value) is
/// accepted again where it is, so that the caller logs it again: a request retried because its
/// log write failed (a full disk) becomes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    InOrder,
    OutOfOrder,
    /// Out of order at a time the series' buffer holds with another value: dropped, as
    /// upstream drops it (silently).
    Dropped,
}

/// `a` and `b`, each sorted by `time` and with no time in both, merged in time order.
fn merge_by_time<T>(a: Vec<T>, b: Vec<T>, time: impl Fn(&T) -> i64) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut b = b.into_iter().peekable();
    for x in a {
        while let Some(y) = b.next_if(|y| time(y) < time(&x)) {
            out.push(y);
        }
        out.push(x);
    }
    out.extend(b);
    out
}

/// Hashes series ids (already unique `u32`s, or small tuples of them and indexes) with one
/// multiplication per integer, spreading consecutive ids over the whole hash, which the map's
/// probing needs. Also the remote-write sender's, which looks up ids for every sample it reads.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u32(u32::from(b));
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.write_u64(u64::from(id));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A map keyed by series ids, hashed with [`IdHasher`].
pub type ById<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// What [`Head::truncate_before`] let go.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Truncated {
    pub chunks: usize,
    /// Series left without samples, for [`Head::forget`].
    pub emptied: Vec<u32>,
}

/// Default block range: `--storage.tsdb.min-block-duration`'s default, 2h.
pub const DEFAULT_BLOCK_RANGE: i64 = 2 * 3600 * 1000;

/// A full chunk in the packed format, with its time range, as a snapshot carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedChunk {
    pub min_t: i64,
    pub max_t: i64,
    pub bytes: Box<[u8]>,
}

/// A sealed chunk as the head holds it: its time range and where the store keeps its bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadChunk {
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
    pub(crate) at: ChunkRef,
}

impl HeadChunk {
    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.min_t <= maxt && self.max_t >= mint
    }
}

#[derive(Debug)]
struct MemSeries {
    labels: Box<[(u32, u32)]>,
    /// In time order, all before the open chunk.
    sealed: Vec<HeadChunk>,
    open: XorChunk,
    last_t: i64,
    last_v: u64,
    /// The block boundary after the open chunk's first sample: a sample there or later
    /// seals the chunk.
    open_end: i64,
}

impl MemSeries {
    fn open_overlaps(&self, mint: i64, maxt: i64) -> bool {
        !self.open.is_empty() && self.open.min_time() <= maxt && self.open.max_time() >= mint
    }

    fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.open_overlaps(mint, maxt) || self.sealed.iter().any(|c| c.overlaps(mint, maxt))
    }

    /// The chunks of `[mint, maxt)` for a block: sealed chunks inside the range as they are,
    /// anything straddling its ends (the open chunk, chunks cut under another block range)
    /// re-encoded.
    fn block_chunks<'a>(&self, store: &'a ChunkStore, mint: i64, maxt: i64) -> Vec<BlockChunk<'a>> {
        let mut out = Vec::new();
        let mut straddling = Vec::new();
        for c in self.sealed.iter().filter(|c| c.overlaps(mint, maxt - 1)) {
            if c.min_t >= mint && c.max_t < maxt {
                out.push(BlockChunk { min_t: c.min_t, max_t: c.max_t, bytes: store.get(c.at).into() });
            } else {
                straddling.push(c);
            }
        }
        let mut samples = Vec::new();
        for c in straddling {
            let mut decoded = Vec::new();
            if packed::decode(store.get(c.at), &mut decoded).is_ok() {
                samples.extend(decoded.into_iter().filter(|&(t, _)| t >= mint && t < maxt));
            }
        }
        if self.open_overlaps(mint, maxt - 1) {
            samples.extend(self.open.iter().filter(|&(t, _)| t >= mint && t < maxt));
        }
        samples.sort_by_key(|&(t, _)| t);
        out.extend(BlockChunk::pack(&samples));
        out.sort_by_key(|c| c.min_t);
        out
    }

    fn min_time(&self) -> Option<i64> {
        self.sealed.first().map(|c| c.min_t).or((!self.open.is_empty()).then(|| self.open.min_time()))
    }

    fn max_time(&self) -> Option<i64> {
        if self.open.is_empty() {
            self.sealed.last().map(|c| c.max_t)
        } else {
            Some(self.open.max_time())
        }
    }

    fn num_chunks(&self) -> usize {
        self.sealed.len() + usize::from(!self.open.is_empty())
    }

    /// Appends a sample known to be newer than the last, sealing the open chunk first if it is
    /// full or the sample crosses a block boundary.
    fn push(&mut self, store: &mut ChunkStore, t: i64, v: f64, block_range: i64) {
        if self.open.len() >= CHUNK_SAMPLES || (!self.open.is_empty() && t >= self.open_end) {
            self.seal(store);
        }
        if self.open.is_empty() {
            self.open_end = (t.div_euclid(block_range) + 1).saturating_mul(block_range);
        }
        self.open.append(t, v);
    }

    /// Drops the samples in `[mint, maxt]`, re-encoding the chunks; false if there were none.
    /// (The old chunks' bytes stay in the store until their segment is released.)
    fn delete(&mut self, store: &mut ChunkStore, mint: i64, maxt: i64, block_range: i64) -> bool {
        if !self.overlaps(mint, maxt) {
            return false;
        }
        let mut kept = Vec::new();
        self.samples_in(store, i64::MIN, i64::MAX, &mut kept);
        let before = kept.len();
        kept.retain(|s| s.t < mint || s.t > maxt);
        if kept.len() == before {
            // Nothing in the range (it falls between two samples): nothing to rewrite or log.
            return false;
        }
        (self.sealed, self.open) = (Vec::new(), XorChunk::new());
        for s in kept {
            self.push(store, s.t, s.v, block_range);
        }
        true
    }

    /// Adds a sealed chunk at the end, growing the list exactly: most series hold a handful
    /// of chunks, and doubling would leave room for as many again in every one of millions.
    fn add_sealed(&mut self, store: &mut ChunkStore, min_t: i64, max_t: i64, bytes: &[u8]) {
        let at = store.push(bytes, max_t);
        self.sealed.reserve_exact(1);
        self.sealed.push(HeadChunk { min_t, max_t, at });
    }

    /// Transcodes the full open chunk into a sealed one, and empties it for the next.
    fn seal(&mut self, store: &mut ChunkStore) {
        let (min_t, max_t) = (self.open.min_time(), self.open.max_time());
        let at = store.pack(self.open.iter(), max_t);
        self.sealed.reserve_exact(1);
        self.sealed.push(HeadChunk { min_t, max_t, at });
        self.open.reset();
    }

    /// Appends the samples in `[mint, maxt]` to `out`.
    fn samples_in(&self, store: &ChunkStore, mint: i64, maxt: i64, out: &mut Vec<Sample>) {
        let mut decoded = Vec::new();
        for c in self.sealed.iter().filter(|c| c.overlaps(mint, maxt)) {
            decoded.clear();
            // Sealed in this process (or restored from a checksummed snapshot): decodable.
            if packed::decode(store.get(c.at), &mut decoded).is_ok() {
                // In time order: the range is one run, of known length.
                let from = decoded.partition_point(|&(t, _)| t < mint);
                let to = decoded.partition_point(|&(t, _)| t <= maxt);
                // (A crafted snapshot could hold times out of order: no slice past its end.)
                let run = decoded.get(from..to).unwrap_or_default();
                out.extend(run.iter().map(|&(t, v)| Sample { t, v }));
            }
        }
        if self.open_overlaps(mint, maxt) {
            out.reserve(self.open.len());
            let upto = self.open.iter().take_while(|&(t, _)| t <= maxt);
            out.extend(upto.filter(|&(t, _)| t >= mint).map(|(t, v)| Sample { t, v }));
        }
    }
}

/// A series as a head snapshot keeps it: its labels, its sealed chunks, its open chunk, and
/// the time and value bits of its last sample (what the next append is checked against). Its
/// histogram chunks, if it has any, are kept apart ([`Head::snapshot_histograms`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSnapshot {
    pub labels: Labels,
    pub sealed: Vec<SealedChunk>,
    pub open: XorState,
    pub last_t: i64,
    pub last_v: u64,
}

impl SeriesSnapshot {
    /// Samples held (a packed chunk's first byte is its sample count).
    pub fn num_samples(&self) -> usize {
        self.sealed.iter().map(|c| packed::sample_count(&c.bytes)).sum::<usize>() + usize::from(self.open.count)
    }

    /// The newest sample time held, if any.
    pub fn max_time(&self) -> Option<i64> {
        if self.open.count > 0 {
            Some(self.open.last_t)
        } else {
            self.sealed.last().map(|c| c.max_t)
        }
    }
}

#[derive(Debug)]
pub struct Head {
    symbols: Symbols,
    series: DenseById<MemSeries>,
    /// The next id to hand out.
    next_id: u32,
    by_hash: ByHash,
    postings: Postings,
    store: ChunkStore,
    block_range: i64,
    min_valid: i64,
    /// Appends before this are refused: `min_valid`, or the end of a block being cut.
    append_floor: i64,
    max_valid: i64,
    /// Whether appends are kept in chunks and series indexed in postings (false: agent mode).
    keeps_samples: bool,
    exemplars: Exemplars,
    out_of_order: OutOfOrder,
    /// The newest in-order sample time appended (or the newest block's end): the out-of-order
    /// window is counted back from it.
    newest: i64,
    /// No sample held is older (i64::MAX before the first): with `newest` and `min_valid`, the
    /// times the head may answer for, as upstream's head range.
    oldest: i64,
    /// Native-histogram chunks of the series that have any, beside their float chunks (never
    /// empty: a series whose histogram chunks all went is removed).
    histograms: ById<u32, HistogramSeries>,
}

impl Default for Head {
    fn default() -> Self {
        Head::with_block_range(DEFAULT_BLOCK_RANGE)
    }
}

impl Head {
    pub fn new() -> Self {
        Self::default()
    }

    /// A head whose chunks are cut at multiples of `block_range` (ms, positive), keeping
    /// sealed chunks in anonymous memory.
    pub fn with_block_range(block_range: i64) -> Self {
        Head::with_store(block_range, ChunkStore::in_memory())
    }

    /// The same, with sealed chunks in `store`.
    pub fn with_store(block_range: i64, store: ChunkStore) -> Self {
        Head {
            symbols: Symbols::default(),
            series: DenseById::default(),
            next_id: 0,
            by_hash: ByHash::default(),
            postings: Postings::default(),
            store,
            block_range: block_range.max(1),
            min_valid: i64::MIN,
            append_floor: i64::MIN,
            max_valid: i64::MAX,
            keeps_samples: true,
            exemplars: Exemplars::default(),
            out_of_order: OutOfOrder::default(),
            newest: i64::MIN,
            oldest: i64::MAX,
            histograms: ById::default(),
        }
    }

    /// The same head keeping series only (agent mode): appends are checked and recorded as the
    /// series' last sample, nothing more; no postings are kept, so it answers no query.
    pub fn without_samples(self) -> Self {
        Head { keeps_samples: false, ..self }
    }

    /// Whether appends are kept (false: agent mode).
    pub fn keeps_samples(&self) -> bool {
        self.keeps_samples
    }

    /// The block range (ms): chunks are cut at its multiples.
    pub fn block_range(&self) -> i64 {
        self.block_range
    }

    /// Where sealed chunks are kept.
    pub fn store(&self) -> &ChunkStore {
        &self.store
    }

    /// Tries files again for sealed chunks, if they fell back to memory
    /// ([`ChunkStore::retry_files`]).
    pub fn retry_chunk_files(&mut self) {
        self.store.retry_files();
    }

    /// Samples before `t` are in blocks from now on (it never moves back).
    pub fn set_min_valid(&mut self, t: i64) {
        self.min_valid = self.min_valid.max(t);
        self.newest = self.newest.max(t);
        self.freeze_before(t);
    }

    /// Appends before `t` are refused from now on (a block of the data before `t` is being
    /// written), while queries still read it from the head.
    pub fn freeze_before(&mut self, t: i64) {
        self.append_floor = self.append_floor.max(t);
    }

    /// Samples before this belong to blocks.
    pub fn min_valid(&self) -> i64 {
        self.min_valid
    }

    /// Appends after `t` are refused as too far in the future until this is set again. The
    /// head has no clock: a shard sets it from its own before each batch it appends, so that
    /// one sample stamped years ahead cannot stretch the head's time range and push every
    /// current sample out of bounds. Replaying the log leaves it unset (everything logged was
    /// accepted once).
    pub fn set_max_valid(&mut self, t: i64) {
        self.max_valid = t;
    }

    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    /// The id of the series with exactly these labels, creating it if needed; the flag says
    /// whether it was created.
    pub fn get_or_create(&mut self, labels: &Labels) -> (u32, bool) {
        self.get_or_create_as(labels, None)
    }

    /// The id of the series with `labels`, if the head holds it.
    pub fn id_of(&self, labels: &Labels) -> Option<u32> {
        self.find(labels, labels.hash())
    }

    fn find(&self, labels: &Labels, hash: u64) -> Option<u32> {
        self.by_hash.get(hash).find(|&id| self.labels_equal(id, labels))
    }

    /// The same, giving a created series the id `wanted` if it is free (a replay keeps the
    /// log's ids); later ids are handed out after it.
    pub fn get_or_create_as(&mut self, labels: &Labels, wanted: Option<u32>) -> (u32, bool) {
        let hash = labels.hash();
        if let Some(id) = self.find(labels, hash) {
            return (id, false);
        }
        let id = match wanted.filter(|&id| !self.series.contains(id)) {
            Some(id) => {
                self.reserve_ids_through(id);
                id
            }
            None => self.new_id(),
        };
        let pairs: Box<[(u32, u32)]> =
            labels.iter().map(|l| (self.symbols.intern(&l.name), self.symbols.intern(&l.value))).collect();
        if self.keeps_samples {
            self.postings.add(id, &pairs);
        }
        self.series.insert(
            id,
            MemSeries {
                labels: pairs,
                sealed: Vec::new(),
                open: XorChunk::new(),
                last_t: i64::MIN,
                last_v: 0,
                open_end: i64::MAX,
            },
        );
        self.by_hash.insert(hash, id);
        (id, true)
    }

    /// Ids up to `id` are taken from now on (the log used them).
    pub fn reserve_ids_through(&mut self, id: u32) {
        self.next_id = self.next_id.max(id.saturating_add(1));
    }

    /// A fresh id. After four billion series created in one shard without a restart, ids wrap
    /// around and skip those in use (a restart renumbers nothing, but the log is replayed from
    /// the ids the head held).
    fn new_id(&mut self) -> u32 {
        while self.series.contains(self.next_id) {
            self.next_id = self.next_id.wrapping_add(1);
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    fn labels_equal(&self, id: u32, labels: &Labels) -> bool {
        let Some(stored) = self.series.get(id).map(|s| &s.labels) else { return false };
        stored.len() == labels.len()
            && stored
                .iter()
                .zip(labels.iter())
                .all(|(&(n, v), l)| self.symbols.resolve(n) == l.name && self.symbols.resolve(v) == l.value)
    }

    /// Appends a sample to series `id` (which must come from [`Head::get_or_create`]).
    pub fn append(&mut self, id: u32, t: i64, v: f64) -> Result<Appended, AppendError> {
        if t > self.max_valid {
            return Err(AppendError::TooFarInFuture);
        }
        let s = self.series.get_mut(id).ok_or(AppendError::UnknownSeries)?;
        if t == s.last_t && v.to_bits() == s.last_v {
            // Even before the floor: a federated or pushed sample whose time never changes.
            return Ok(Appended::InOrder);
        }
        if t >= self.append_floor {
            if t == s.last_t {
                return Err(AppendError::Duplicate);
            }
            if t > s.last_t {
                if self.keeps_samples {
                    s.push(&mut self.store, t, v, self.block_range);
                }
                s.last_t = t;
                s.last_v = v.to_bits();
                self.holds(t, t);
                return Ok(Appended::InOrder);
            }
        }
        let last_t = s.last_t;
        self.append_apart(id, t, last_t, Value::Float(v))
    }

    /// A sample of series `id` (whose last is at `last_t`) that the in-order chunks cannot
    /// take: kept apart if the out-of-order window allows, refused otherwise.
    fn append_apart(&mut self, id: u32, t: i64, last_t: i64, v: Value) -> Result<Appended, AppendError> {
        let window = self.out_of_order.window();
        if window > 0 && !self.keeps_samples {
            // Upstream's agent: a sample newer than the window before its series' last is
            // taken (and logged, for the remote-write queues); nothing is kept.
            return match t > last_t.saturating_sub(window) {
                true => Ok(Appended::OutOfOrder),
                false => Err(AppendError::OutOfOrder),
            };
        }
        if window > 0 {
            if t < self.newest.saturating_sub(window) {
                return Err(AppendError::TooOld);
            }
            if self.holds_other_type(id, t, &v) {
                // A float and a histogram at one time: the one the series had stays.
                return Ok(Appended::Dropped);
            }
            return Ok(match self.out_of_order.insert(id, t, v) {
                Insert::Conflict => Appended::Dropped,
                Insert::New | Insert::Again => {
                    self.oldest = self.oldest.min(t);
                    Appended::OutOfOrder
                }
            });
        }
        Err(if t < self.append_floor { AppendError::OutOfBounds } else { AppendError::OutOfOrder })
    }

    /// Whether the in-order chunks of series `id` hold a sample at `t` of the other type than
    /// `v`'s.
    fn holds_other_type(&self, id: u32, t: i64, v: &Value) -> bool {
        match v {
            Value::Float(_) => !self.histograms_in(id, t, t).is_empty(),
            Value::Histogram(_) => self.series.get(id).is_some_and(|s| {
                let mut held = Vec::new();
                if t >= self.min_valid {
                    s.samples_in(&self.store, t, t, &mut held);
                }
                !held.is_empty()
            }),
        }
    }

    /// Keeps `(t, v)` as an out-of-order sample of series `id`, whatever the window (a replay
    /// of what was accepted as one); false if there is no such series or it holds one at `t`.
    pub fn insert_out_of_order(&mut self, id: u32, t: i64, v: Value) -> bool {
        let kept = self.series.contains(id) && self.keeps_samples && self.out_of_order.insert(id, t, v) == Insert::New;
        if kept {
            self.oldest = self.oldest.min(t);
        }
        kept
    }

    /// Appends a native-histogram sample to series `id`: as a float, it must be newer than
    /// every sample of the series, of either type, or the same histogram again at the same time
    /// (a sender's retry: accepted where it is, as floats are), or go apart within the
    /// out-of-order window as a float would. It must be one the histogram
    /// chunk codec can hold (remote write validates before; this also guards the other
    /// writers). A counter histogram's hint is found against the histogram before it, as
    /// upstream's appender does, whatever the writer said: "reset" if its counts dropped or the
    /// writer said so, "not a reset" otherwise (the writer's hint as the series' first, or
    /// after a float or a gauge). Reads other than for statistics see a reset as upstream's
    /// chunks show it, without a hint (see `stats_decoding`).
    pub fn append_histogram(&mut self, id: u32, t: i64, mut h: FloatHistogram) -> Result<Appended, AppendError> {
        if t > self.max_valid {
            return Err(AppendError::TooFarInFuture);
        }
        if !fits(&h) {
            return Err(AppendError::BucketLimit);
        }
        if !encodable(&h) {
            return Err(AppendError::InvalidHistogram);
        }
        let s = self.series.get_mut(id).ok_or(AppendError::UnknownSeries)?;
        let previous =
            self.histograms.get(&id).and_then(HistogramSeries::last).filter(|_| s.last_v == HISTOGRAM_LAST_V);
        if t == s.last_t && previous.is_some_and(|p| p.equals(&h)) {
            return Ok(Appended::InOrder);
        }
        if t >= self.append_floor && t == s.last_t {
            return Err(AppendError::Duplicate);
        }
        if t < self.append_floor || t < s.last_t {
            let last_t = s.last_t;
            return self.append_apart(id, t, last_t, Value::Histogram(Box::new(h)));
        }
        if !h.is_gauge() {
            // Found from the counts alone (a hint would decide `detect_reset`).
            let stated = std::mem::take(&mut h.counter_reset_hint);
            h.counter_reset_hint = match previous.filter(|p| !p.is_gauge()) {
                Some(p) if stated == CounterResetHint::CounterReset || h.detect_reset(p) => {
                    CounterResetHint::CounterReset
                }
                Some(_) => CounterResetHint::NotCounterReset,
                None => stated,
            };
        }
        s.last_t = t;
        s.last_v = HISTOGRAM_LAST_V;
        self.holds(t, t);
        if self.keeps_samples {
            self.histograms.entry(id).or_default().push(&mut self.store, t, &h, self.block_range);
        }
        Ok(Appended::InOrder)
    }

    /// Series `id`'s histogram samples in `[mint, maxt]` (none before `min_valid`).
    fn histograms_in(&self, id: u32, mint: i64, maxt: i64) -> Vec<HistogramSample> {
        let mut out = Vec::new();
        if let Some(hs) = self.histograms.get(&id) {
            hs.samples_in(&self.store, mint.max(self.min_valid), maxt, &mut out);
        }
        out
    }

    /// Whether series `id` has histogram samples in `[mint, maxt]` (by its chunks' ranges).
    fn histograms_overlap(&self, id: u32, mint: i64, maxt: i64) -> bool {
        self.histograms.get(&id).is_some_and(|hs| hs.overlaps(mint, maxt))
    }

    pub fn out_of_order(&self) -> &OutOfOrder {
        &self.out_of_order
    }

    /// Accepts samples up to `window` ms older than the newest from now on (0: none).
    pub fn set_out_of_order_window(&mut self, window: i64) {
        self.out_of_order.set_window(window);
    }

    /// Drops the out-of-order samples before `t` (written to blocks); returns the series left
    /// with no samples at all, for [`Head::forget`].
    pub fn drop_out_of_order_before(&mut self, t: i64) -> Vec<u32> {
        let emptied = self.out_of_order.drop_before(t);
        emptied.into_iter().filter(|&id| self.holds_no_chunk(id)).collect()
    }

    /// Whether series `id` exists and has no chunk of either type.
    fn holds_no_chunk(&self, id: u32) -> bool {
        self.series.get(id).is_some_and(|s| s.num_chunks() == 0) && !self.histograms.contains_key(&id)
    }

    /// The labels of series `id`, if the head holds it.
    pub fn labels(&self, id: u32) -> Option<Labels> {
        // Stored in the order they were given, which is a Labels' sorted order.
        self.series.get(id).map(|s| self.symbols.labels(&s.labels))
    }

    /// Ids of every series held, in no particular order.
    pub fn ids(&self) -> Vec<u32> {
        self.series.ids().collect()
    }

    /// Series `id`'s labels as they are held, name and value, without building a [`Labels`];
    /// None if the head does not hold it.
    pub fn label_pairs(&self, id: u32) -> Option<impl Iterator<Item = (&str, &str)>> {
        let series = self.series.get(id)?;
        Some(series.labels.iter().map(|&(n, v)| (self.symbols.resolve(n), self.symbols.resolve(v))))
    }

    /// Widens the times the head holds in order to take in samples from `oldest` to `newest`.
    fn holds(&mut self, oldest: i64, newest: i64) {
        self.oldest = self.oldest.min(oldest);
        self.newest = self.newest.max(newest);
    }

    /// Whether the head may hold samples in `[mint, maxt]`: whether it overlaps the range from
    /// its oldest sample (or the newest block's end, if later and no out-of-order sample waits
    /// for a block: those before it are read too) to its newest. Samples leaving the head do
    /// not narrow it, as upstream's head range.
    pub fn may_hold(&self, mint: i64, maxt: i64) -> bool {
        let from = if self.out_of_order.is_empty() { self.oldest.max(self.min_valid) } else { self.oldest };
        from <= maxt && self.newest >= mint && self.oldest <= self.newest
    }

    /// The label names on the series `ids`, from the postings, if that looks at no more than
    /// `most` postings lists (see [`Postings::label_names_among`]).
    pub fn label_names_among(&self, ids: &RoaringBitmap, most: usize) -> Option<Vec<&str>> {
        self.postings.label_names_among(&self.symbols, ids, most)
    }

    /// The values of `name` on the series `ids`, from the postings, as
    /// [`Head::label_names_among`].
    pub fn label_values_among(&self, name: &str, ids: &RoaringBitmap, most: usize) -> Option<Vec<&str>> {
        self.postings.label_values_among(&self.symbols, name, ids, most)
    }

    /// Whether series `id` has a sample of either type in `[mint, maxt]`, in order or not.
    pub fn has_samples_in(&self, id: u32, mint: i64, maxt: i64) -> bool {
        self.in_range(id, mint, maxt).is_some()
            || self.out_of_order.overlaps(id, mint, maxt)
            || self.histograms_overlap(id, mint.max(self.min_valid), maxt)
    }

    /// Ids of the series that match, whatever the times of their samples: a reader of samples
    /// skips the others as it reads ([`Head::series_samples`] gives None), which saves looking
    /// each series up twice.
    pub fn candidates(&self, matchers: &[Matcher]) -> RoaringBitmap {
        self.postings.select(&self.symbols, matchers)
    }

    /// [`Head::candidates`] in steps of about `budget` values tried (see [`Selecting`]).
    pub fn candidates_step(&self, selecting: &mut Selecting, budget: usize) -> Option<RoaringBitmap> {
        selecting.step(&self.postings, &self.symbols, budget)
    }

    /// How many label values selecting with `matchers` tries one by one.
    pub fn selection_cost(&self, matchers: &[Matcher]) -> usize {
        self.postings.selection_cost(&self.symbols, matchers)
    }

    /// Series `id` and `mint` raised to the oldest valid time, if the series has chunks in the
    /// range (an empty range has none).
    fn in_range(&self, id: u32, mint: i64, maxt: i64) -> Option<(&MemSeries, i64)> {
        let mint = mint.max(self.min_valid);
        (mint <= maxt).then(|| self.series.get(id).filter(|s| s.overlaps(mint, maxt)).map(|s| (s, mint)))?
    }

    /// Keeps `e` as series `id`'s newest exemplar.
    pub fn add_exemplar(&mut self, id: u32, e: &Exemplar) -> Result<(), ExemplarError> {
        if !self.series.contains(id) {
            return Err(ExemplarError::UnknownSeries);
        }
        self.exemplars.add(id, e)
    }

    pub fn exemplars(&self) -> &Exemplars {
        &self.exemplars
    }

    /// Keeps at most `capacity` exemplars from now on (0: none), the newest if there were more.
    pub fn set_exemplar_capacity(&mut self, capacity: usize) {
        self.exemplars.resize(capacity);
    }

    /// The series matching any of `selectors` that have exemplars in `[mint, maxt]`, with them.
    pub fn select_exemplars(&self, selectors: &[Vec<Matcher>], mint: i64, maxt: i64) -> Vec<(Labels, Vec<Exemplar>)> {
        let ids: RoaringBitmap = selectors.iter().map(|m| self.candidates(m)).fold(RoaringBitmap::new(), |a, b| a | b);
        ids.iter()
            .filter(|&id| self.exemplars.has(id))
            .filter_map(|id| {
                let found = self.exemplars.of(id, mint, maxt);
                Some((self.labels(id)?, found)).filter(|(_, found)| !found.is_empty())
            })
            .collect()
    }

    /// Every matching series with its samples in `[mint, maxt]` (staleness markers included),
    /// with the labels of `labels`.
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64, labels: &Projection) -> Vec<SeriesSamples> {
        self.candidates(matchers).iter().filter_map(|id| self.series_samples(id, mint, maxt, labels)).collect()
    }

    /// Series `id` with its samples in `[mint, maxt]`; None if there is no such series (a
    /// reader that found the id earlier skips it) or it has no chunk in the range.
    pub fn series_samples(&self, id: u32, mint: i64, maxt: i64, labels: &Projection) -> Option<SeriesSamples> {
        if self.out_of_order.overlaps(id, mint, maxt) {
            return self.with_out_of_order(id, mint, maxt, labels);
        }
        let histograms = self.histograms_in(id, mint, maxt);
        let floats = self.in_range(id, mint, maxt).map(|(series, mint)| {
            let mut samples = Vec::new();
            series.samples_in(&self.store, mint, maxt, &mut samples);
            SeriesSamples::floats(self.symbols.projected(&series.labels, labels), samples)
        });
        self.with_histograms(id, floats, histograms, labels)
    }

    /// `floats` (None: the series has no float chunk in range) with `histograms` added.
    fn with_histograms(
        &self,
        id: u32,
        floats: Option<SeriesSamples>,
        histograms: Vec<HistogramSample>,
        labels: &Projection,
    ) -> Option<SeriesSamples> {
        if histograms.is_empty() {
            return floats;
        }
        let mut out = match floats {
            Some(floats) => floats,
            None => SeriesSamples::floats(self.symbols.projected(&self.series.get(id)?.labels, labels), Vec::new()),
        };
        out.histograms = histograms;
        Some(out)
    }

    /// Series `id` with only its newest sample in `[mint, maxt]`, all an instant selector
    /// evaluated at `maxt` needs: when that is the open chunk's last sample, as for a query at
    /// the present, it is read without decoding the chunk. None as [`Head::series_samples`].
    pub fn newest_sample(&self, id: u32, mint: i64, maxt: i64, labels: &Projection) -> Option<SeriesSamples> {
        if self.out_of_order.overlaps(id, mint, maxt) {
            let mut all = self.with_out_of_order(id, mint, maxt, labels)?;
            all.samples.drain(..all.samples.len().saturating_sub(1));
            all.histograms.drain(..all.histograms.len().saturating_sub(1));
            return Some(all);
        }
        let mut histograms = self.histograms_in(id, mint, maxt);
        histograms.drain(..histograms.len().saturating_sub(1));
        let floats = self.newest_float(id, mint, maxt, labels);
        self.with_histograms(id, floats, histograms, labels)
    }

    /// Series `id` with only its newest in-order float sample in `[mint, maxt]`.
    fn newest_float(&self, id: u32, mint: i64, maxt: i64, labels: &Projection) -> Option<SeriesSamples> {
        let (series, mint) = self.in_range(id, mint, maxt)?;
        let mut samples = Vec::with_capacity(1);
        match series.open.last() {
            Some((t, v)) if t <= maxt => samples.extend((t >= mint).then_some(Sample { t, v })),
            _ => {
                // Only the newest chunk that starts by `maxt` can hold the sample.
                let from = match series.open.min_time() {
                    first if !series.open.is_empty() && first <= maxt => first,
                    _ => series.sealed.iter().rev().find(|c| c.min_t <= maxt).map_or(mint, |c| c.min_t),
                };
                series.samples_in(&self.store, mint.max(from), maxt, &mut samples);
                samples.drain(..samples.len().saturating_sub(1));
            }
        }
        Some(SeriesSamples::floats(self.symbols.projected(&series.labels, labels), samples))
    }

    /// Series `id`'s in-order samples in `[mint, maxt]` (none before `min_valid`) merged with
    /// its out-of-order ones (which stay here until written to blocks of their own, whatever
    /// `min_valid`); a time the in-order chunks hold, with a sample of either type, is read
    /// from them.
    fn with_out_of_order(&self, id: u32, mint: i64, maxt: i64, labels: &Projection) -> Option<SeriesSamples> {
        let series = self.series.get(id)?;
        let mut floats = Vec::new();
        if mint.max(self.min_valid) <= maxt {
            series.samples_in(&self.store, mint.max(self.min_valid), maxt, &mut floats);
        }
        let histograms = self.histograms_in(id, mint, maxt);
        let held = |t: i64| {
            floats.binary_search_by_key(&t, |s| s.t).is_ok() || histograms.binary_search_by_key(&t, |s| s.t).is_ok()
        };
        let Decoded { floats: apart, histograms: apart_histograms } = self.out_of_order.samples_in(id, mint, maxt);
        let apart: Vec<Sample> = apart.into_iter().filter(|s| !held(s.0)).map(|(t, v)| Sample { t, v }).collect();
        let apart_histograms: Vec<HistogramSample> = apart_histograms
            .into_iter()
            .filter(|s| !held(s.0))
            .map(|(t, h)| HistogramSample { t, h: Arc::new(h) })
            .collect();
        let mut out = SeriesSamples::floats(
            self.symbols.projected(&series.labels, labels),
            merge_by_time(floats, apart, |s| s.t),
        );
        let interleaved = !apart_histograms.is_empty() && !histograms.is_empty();
        out.histograms = merge_by_time(histograms, apart_histograms, |s| s.t);
        if interleaved {
            // In-order hints were found against in-order neighbours only (see `overlap`).
            out.histograms.iter_mut().for_each(|s| forget_reset_hint(Arc::make_mut(&mut s.h)));
        }
        Some(out)
    }

    /// Deletes the samples in `[mint, maxt]` of the matching series; returns the ids of the
    /// series that had any.
    pub fn delete(&mut self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<u32> {
        let ids = self.postings.select(&self.symbols, matchers);
        ids.iter().filter(|&id| self.delete_series(id, mint, maxt)).collect()
    }

    /// Deletes the samples of series `id` in `[mint, maxt]` (a replayed deletion); false if
    /// it had none or does not exist.
    pub fn delete_series(&mut self, id: u32, mint: i64, maxt: i64) -> bool {
        let block_range = self.block_range;
        let apart = self.out_of_order.delete(id, mint, maxt);
        let histograms =
            self.histograms.get_mut(&id).is_some_and(|hs| hs.delete(&mut self.store, mint, maxt, block_range));
        if self.histograms.get(&id).is_some_and(HistogramSeries::is_empty) {
            self.histograms.remove(&id);
        }
        self.series.get_mut(id).is_some_and(|s| s.delete(&mut self.store, mint, maxt, block_range))
            || apart
            || histograms
    }

    /// Ids of the series with samples in `[mint, maxt)`, in no particular order.
    pub fn ids_overlapping(&self, mint: i64, maxt: i64) -> Vec<u32> {
        let floats = self.series.iter().filter(|(_, s)| s.overlaps(mint, maxt - 1)).map(|(id, _)| id);
        let histograms = self.histograms.iter().filter(|(id, hs)| {
            hs.overlaps(mint, maxt - 1) && self.series.get(**id).is_some_and(|s| !s.overlaps(mint, maxt - 1))
        });
        floats.chain(histograms.map(|(&id, _)| id)).collect()
    }

    /// Series `id`'s labels as (name, value) ids of [`Head::symbol_table`], in label order.
    pub fn label_ids(&self, id: u32) -> Option<&[(u32, u32)]> {
        self.series.get(id).map(|s| &*s.labels)
    }

    /// The label strings by id, shared, for a block written on another thread.
    pub fn symbol_table(&self) -> SymbolTable {
        self.symbols.table()
    }

    /// Series `id`'s chunks of `[mint, maxt)`, for a block (none if the head does not hold it).
    pub fn block_chunks(&self, id: u32, mint: i64, maxt: i64) -> Vec<BlockChunk<'_>> {
        let mut out = self.series.get(id).map_or_else(Vec::new, |s| s.block_chunks(&self.store, mint, maxt));
        if let Some(hs) = self.histograms.get(&id) {
            hs.block_chunks(&self.store, mint, maxt, &mut out);
            out.sort_by_key(|c| c.min_t);
        }
        out
    }

    /// Series `id` as a snapshot keeps it, if the head holds it.
    pub fn snapshot_series(&self, id: u32) -> Option<SeriesSnapshot> {
        let s = self.series.get(id)?;
        Some(SeriesSnapshot {
            labels: self.symbols.labels(&s.labels),
            sealed: s
                .sealed
                .iter()
                .map(|c| SealedChunk { min_t: c.min_t, max_t: c.max_t, bytes: self.store.get(c.at).into() })
                .collect(),
            open: s.open.state(),
            last_t: s.last_t,
            last_v: s.last_v,
        })
    }

    /// Series `id`'s histogram chunks as a snapshot keeps them, if it has any.
    pub fn snapshot_histograms(&self, id: u32) -> Option<HistogramSnapshot> {
        self.histograms.get(&id).map(|hs| hs.snapshot(&self.store))
    }

    /// Brings back series `id`'s histogram chunks from a snapshot, unless it holds some
    /// already; false if there is no such series or the snapshot is damaged (see
    /// [`HistogramSeries::restore`]).
    pub fn restore_histograms(&mut self, id: u32, snapshot: &HistogramSnapshot) -> bool {
        if !self.series.contains(id) || self.histograms.contains_key(&id) {
            return false;
        }
        let last_t = self.series.get(id).map_or(i64::MIN, |s| s.last_t);
        let Some(hs) = HistogramSeries::restore(&mut self.store, snapshot, self.block_range, last_t) else {
            return false;
        };
        self.holds(hs.min_time().unwrap_or(i64::MAX), hs.max_time().unwrap_or(i64::MIN));
        if !hs.is_empty() {
            self.histograms.insert(id, hs);
        }
        true
    }

    /// Brings back a series from its snapshot, under the id `wanted` if it is free, and returns
    /// its id; a series the head already holds keeps its own data. None if the open chunk's
    /// state is invalid, if its bytes do not decode to the at most [`CHUNK_SAMPLES`] samples it
    /// claims, or if a sealed chunk is longer than the chunk store holds (a damaged snapshot):
    /// the head's chunks always hold what they say, so sealing one always has samples to pack.
    pub fn restore_series(&mut self, wanted: u32, snapshot: SeriesSnapshot) -> Option<u32> {
        let open = XorChunk::from_state(snapshot.open)?;
        if open.len() > CHUNK_SAMPLES
            || open.iter().count() != open.len()
            || snapshot.sealed.iter().any(|c| c.bytes.len() > MAX_CHUNK_BYTES)
        {
            return None;
        }
        let (id, created) = self.get_or_create_as(&snapshot.labels, Some(wanted));
        if created {
            let s = self.series.get_mut(id)?;
            for c in &snapshot.sealed {
                s.add_sealed(&mut self.store, c.min_t, c.max_t, &c.bytes);
            }
            s.open_end = (open.min_time().div_euclid(self.block_range) + 1).saturating_mul(self.block_range);
            (s.open, s.last_t, s.last_v) = (open, snapshot.last_t, snapshot.last_v);
            let first = s.min_time().unwrap_or(i64::MAX);
            self.holds(first, snapshot.last_t);
        }
        Some(id)
    }

    /// The newest sample time held, if any.
    pub fn max_time(&self) -> Option<i64> {
        let histograms = self.histograms.values().filter_map(HistogramSeries::max_time);
        self.series.values().filter_map(MemSeries::max_time).chain(histograms).max()
    }

    /// The oldest and newest sample times queries can see (none before `min_valid`), in one
    /// pass over the series; None if the head is empty.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let floats = self.series.values().map(|s| (s.min_time(), s.max_time()));
        let histograms = self.histograms.values().map(|hs| (hs.min_time(), hs.max_time()));
        let (min, max) = floats.chain(histograms).fold((None, None), |(lo, hi): (Option<i64>, Option<i64>), (a, b)| {
            (lo.into_iter().chain(a).min(), hi.max(b))
        });
        Some((min?.max(self.min_valid), max?))
    }

    /// Chunks held, open and sealed.
    pub fn num_chunks(&self) -> usize {
        let histograms: usize = self.histograms.values().map(HistogramSeries::num_chunks).sum();
        self.series.values().map(MemSeries::num_chunks).sum::<usize>() + histograms
    }

    /// Drops every chunk that ends before `t` (retention, or data now in a block), and lists
    /// the series left without samples, which [`Head::forget`] then lets go (queries skip
    /// them meanwhile: they have no samples). Series that keep samples stay, and appends
    /// continue after their last sample.
    pub fn truncate_before(&mut self, t: i64) -> Truncated {
        let (mut chunks, mut emptied) = (0, Vec::new());
        self.histograms.retain(|_, hs| {
            chunks += hs.truncate_before(t);
            !hs.is_empty()
        });
        for (id, s) in self.series.iter_mut() {
            let before = s.num_chunks();
            s.sealed.retain(|c| c.max_t >= t);
            if !s.open.is_empty() && s.open.max_time() < t {
                s.open = XorChunk::new();
            }
            chunks += before - s.num_chunks();
            if s.num_chunks() == 0 && !self.histograms.contains_key(&id) {
                emptied.push(id);
            }
        }
        self.store.release_before(t);
        Truncated { chunks, emptied }
    }

    /// Ids of the series whose last sample is older than `cutoff` (or that have none): in
    /// agent mode, the series not appended to for a while (upstream's agent garbage collection).
    pub fn inactive_before(&self, cutoff: i64) -> Vec<u32> {
        self.series.iter().filter(|(_, s)| s.last_t < cutoff).map(|(id, _)| id).collect()
    }

    /// Forgets every series that holds no sample (after a replay). Returns the ids that went.
    pub fn forget_empty_series(&mut self) -> Vec<u32> {
        let empty: Vec<u32> = self.series.ids().filter(|&id| self.holds_no_chunk(id)).collect();
        self.forget(&empty)
    }

    /// Forgets those of `ids` that still hold no sample: their ids, their postings, their
    /// label strings no other series uses. Returns the ids that went.
    pub fn forget(&mut self, ids: &[u32]) -> Vec<u32> {
        let mut forgotten = Vec::new();
        for &id in ids {
            let holds_samples = self.series.get(id).is_none_or(|s| s.num_chunks() > 0)
                || self.out_of_order.has(id)
                || self.histograms.contains_key(&id);
            if holds_samples {
                continue;
            }
            let Some(s) = self.series.remove(id) else { continue };
            forgotten.push(id);
            self.exemplars.forget(id);
            self.postings.remove(id, &s.labels);
            let hash = hash_pairs(s.labels.iter().map(|&(n, v)| (self.symbols.resolve(n), self.symbols.resolve(v))));
            self.by_hash.remove(hash, id);
            for &(name, value) in s.labels.iter() {
                self.symbols.release(name);
                self.symbols.release(value);
            }
        }
        self.series.shrink();
        self.by_hash.shrink();
        forgotten
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrite_core::labels::MatchOp;

    pub(super) fn up(job: &str) -> Labels {
        Labels::from_pairs([("__name__", "up"), ("job", job)])
    }

    #[test]
    fn series_are_found_by_labels_and_matchers() {
        let mut h = Head::new();
        let (a, created) = h.get_or_create(&up("api"));
        assert!(created);
        assert_eq!(h.get_or_create(&up("api")), (a, false));
        let (b, _) = h.get_or_create(&up("web"));
        h.append(a, 1000, 1.0).unwrap();
        h.append(b, 1000, 2.0).unwrap();
        let sel = h.select(&[Matcher::new("job", MatchOp::Regex, "a.*").unwrap()], 0, 2000, &Projection::All);
        assert_eq!(sel.len(), 1);
        assert_eq!(sel[0].labels, up("api"));
        assert_eq!(sel[0].samples, vec![Sample { t: 1000, v: 1.0 }]);
        assert_eq!(h.label_pairs(b).unwrap().collect::<Vec<_>>(), [("__name__", "up"), ("job", "web")]);
        assert!(h.has_samples_in(a, 0, 1000) && h.has_samples_in(b, 1000, 2000));
        assert!(!h.has_samples_in(a, 1001, 3000), "no samples in that range");
    }

    /// A deletion between two samples deletes nothing: the series is not rewritten, and is
    /// not reported (so nothing is logged).
    #[test]
    fn a_deletion_between_samples_reports_nothing() {
        let mut h = Head::new();
        let (id, _) = h.get_or_create(&up("api"));
        h.append(id, 0, 1.0).unwrap();
        h.append(id, 10_000, 2.0).unwrap();
        assert!(h.delete(&[], 5_000, 5_000).is_empty());
        assert_eq!(h.delete(&[], 10_000, 10_000), vec![id]);
        let left = h.series_samples(id, 0, 20_000, &Projection::All).unwrap();
        assert_eq!(left.samples, vec![Sample { t: 0, v: 1.0 }]);
    }

    /// The newest sample in a range, whether it is the open chunk's last (read without
    /// decoding), an earlier one of the open chunk, or one in a sealed chunk; after a deletion
    /// too.
    #[test]
    fn the_newest_sample_is_the_last_of_a_full_read() {
        let mut h = Head::new();
        let (id, _) = h.get_or_create(&up("api"));
        let n = CHUNK_SAMPLES as i64 + 10; // a sealed chunk, and ten samples in the open one
        for k in 0..n {
            h.append(id, k * 1000, k as f64).unwrap();
        }
        let ranges = [(0, n * 1000), (0, 5_500), (2_000, 125_000), (50_000, 50_000), (n * 1000, n * 2000), (-9, -1)];
        let check = |h: &Head| {
            for (mint, maxt) in ranges {
                let full = h.series_samples(id, mint, maxt, &Projection::All);
                let newest = h.newest_sample(id, mint, maxt, &Projection::All);
                // Outside the series' chunks both skip it.
                assert_eq!(full.is_some(), newest.is_some(), "[{mint}, {maxt}]");
                let (Some(full), Some(newest)) = (full, newest) else { continue };
                assert_eq!(newest.labels, up("api"));
                assert_eq!(
                    newest.samples,
                    full.samples.last().copied().into_iter().collect::<Vec<_>>(),
                    "[{mint}, {maxt}]"
                );
            }
        };
        check(&h);
        assert!(h.series_samples(id, n * 1000, n * 2000, &Projection::All).is_none(), "no chunk after the last sample");
        assert!(
            h.series_samples(id, 2_500, 1_000, &Projection::All).is_none(),
            "an empty range (remote read may ask for one)"
        );
        h.delete_series(id, (n - 3) * 1000, n * 1000);
        check(&h);
        assert_eq!(
            h.newest_sample(id, 0, n * 1000, &Projection::All).unwrap().samples,
            vec![Sample { t: (n - 4) * 1000, v: (n - 4) as f64 }]
        );
    }

    #[test]
    fn out_of_order_and_duplicates_are_rejected() {
        let mut h = Head::new();
        let (id, _) = h.get_or_create(&up("api"));
        h.append(id, 2000, 1.0).unwrap();
        assert_eq!(h.append(id, 1000, 1.0), Err(AppendError::OutOfOrder));
        assert_eq!(h.append(id, 2000, 1.0), Ok(Appended::InOrder), "identical duplicate is a no-op");
        assert_eq!(h.append(id, 2000, 5.0), Err(AppendError::Duplicate));
        assert_eq!(h.select(&[], 0, 3000, &Projection::All)[0].samples.len(), 1);
    }

    #[test]
    fn out_of_order_samples_are_read_with_the_rest_even_before_min_valid() {
        let mut h = Head::new();
        let (id, _) = h.get_or_create(&up("api"));
        for k in 0..10 {
            h.append(id, k * 1000, k as f64).unwrap();
        }
        h.set_out_of_order_window(5_000);
        assert_eq!(h.append(id, 5_500, -1.0), Ok(Appended::OutOfOrder));
        assert_eq!(h.append(id, 5_500, -1.0), Ok(Appended::OutOfOrder), "the same again: logged again");
        assert_eq!(h.append(id, 5_500, -2.0), Ok(Appended::Dropped), "another value: dropped");
        assert_eq!(h.append(id, 3_500, -1.0), Err(AppendError::TooOld));
        let newest = |h: &Head, maxt| h.newest_sample(id, 0, maxt, &Projection::All).unwrap().samples;
        assert_eq!(newest(&h, 5_700), vec![Sample { t: 5_500, v: -1.0 }]);
        assert_eq!(newest(&h, 6_000), vec![Sample { t: 6_000, v: 6.0 }]);
        // The in-order data before 7 s went to a block; the out-of-order sample is still here.
        h.set_min_valid(7_000);
        h.truncate_before(7_000);
        assert_eq!(h.series_samples(id, 0, 20_000, &Projection::All).unwrap().samples.len(), 4);
        assert!(h.has_samples_in(id, 5_000, 6_000), "the series has a sample there");
        assert!(h.forget(&[id]).is_empty(), "a series with out-of-order samples stays");
        // Appends before min_valid within the window go apart too.
        assert_eq!(h.append(id, 6_500, -1.0), Ok(Appended::OutOfOrder));
        assert_eq!(h.drop_out_of_order_before(7_000), Vec::<u32>::new(), "in-order samples remain");
    }

    /// The times listings take the head for: its oldest to its newest sample, from the newest
    /// block's end unless out-of-order samples before it wait for a block.
    #[test]
    fn the_head_may_hold_samples_from_its_oldest_to_its_newest() {
        let mut h = Head::new();
        assert!(!h.may_hold(i64::MIN, i64::MAX), "an empty head holds none");
        let (id, _) = h.get_or_create(&up("api"));
        for k in 2..10 {
            h.append(id, k * 1000, 1.0).unwrap();
        }
        assert!(h.may_hold(9_000, 20_000) && h.may_hold(0, 2_000));
        assert!(!h.may_hold(0, 1_999) && !h.may_hold(9_001, 20_000));
        h.set_min_valid(7_000);
        assert!(!h.may_hold(0, 6_999), "before the block's end: the block's");
        h.set_out_of_order_window(5_000);
        assert_eq!(h.append(id, 5_500, -1.0), Ok(Appended::OutOfOrder));
        assert!(h.may_hold(5_000, 6_000), "an out-of-order sample waits there");
    }

    #[test]
    fn an_agent_takes_samples_within_the_window_before_its_series_last_and_keeps_nothing() {
        let mut h = Head::new().without_samples();
        let (id, _) = h.get_or_create(&up("api"));
        h.append(id, 10_000, 1.0).unwrap();
        assert_eq!(h.append(id, 9_000, 1.0), Err(AppendError::OutOfOrder));
        h.set_out_of_order_window(5_000);
        assert_eq!(h.append(id, 6_000, 1.0), Ok(Appended::OutOfOrder));
        assert_eq!(h.append(id, 5_000, 1.0), Err(AppendError::OutOfOrder), "not newer than the window");
        assert!(h.out_of_order().is_empty(), "an agent keeps nothing");
        assert_eq!(h.append(id, 11_000, 1.0), Ok(Appended::InOrder));
    }

    #[test]
    fn stats_count_series_chunks_pairs_and_merge_across_heads() {
        let mut a = Head::new();
        for (job, t) in [("api", 1000), ("web", 5000)] {
            let (id, _) = a.get_or_create(&up(job));
            a.append(id, t, 1.0).unwrap();
        }
        let mut b = Head::new();
        let (id, _) = b.get_or_create(&up("api2"));
        b.append(id, 500, 1.0).unwrap();
        b.get_or_create(&Labels::from_pairs([("__name__", "idle")]));
        let (mut merged, _) = stats::tests::read(&a, usize::MAX);
        merged.merge(stats::tests::read(&b, usize::MAX).0);
        assert_eq!((merged.series, merged.chunks), (4, 3));
        assert_eq!((merged.min_time, merged.max_time), (Some(500), Some(5000)));
        assert_eq!(merged.pairs["__name__"]["up"], 3);
        assert_eq!(merged.pairs["job"].len(), 3);
    }

    #[test]
    fn chunks_are_cut_and_read_across_boundaries() {
        let mut h = Head::new();
        let (id, _) = h.get_or_create(&up("api"));
        for i in 0..1000 {
            h.append(id, i * 1000, i as f64).unwrap();
        }
        let s = &h.select(&[], 100_500, 400_000, &Projection::All)[0].samples;
        assert_eq!(s.first().unwrap().t, 101_000);
        assert_eq!(s.last().unwrap().t, 400_000);
        assert_eq!(s.len(), 300);
        assert_eq!(h.truncate_before(500_000), Truncated { chunks: 4, emptied: vec![] });
        assert_eq!(h.select(&[], 0, 1_000_000, &Projection::All)[0].samples.first().unwrap().t, 480_000);
    }

    #[test]
    fn series_left_without_samples_are_forgotten_and_their_ids_never_come_back() {
        let mut h = Head::with_block_range(10_000);
        let pod =
            |gen: usize, i: usize| Labels::from_pairs([("__name__", "up".to_string()), ("pod", format!("g{gen}-{i}"))]);
        let mut first = Vec::new();
        for i in 0..100 {
            let (id, _) = h.get_or_create(&pod(0, i));
            h.append(id, 1_000, 1.0).unwrap();
            first.push(id);
        }
        let strings = h.symbols.len();
        for gen in 1..=5 {
            for i in 0..100 {
                let (id, created) = h.get_or_create(&pod(gen, i));
                assert!(created);
                h.append(id, gen as i64 * 20_000, 1.0).unwrap();
            }
            // The previous generation's samples move to a block: it is forgotten.
            h.set_min_valid(gen as i64 * 20_000);
            let truncated = h.truncate_before(gen as i64 * 20_000);
            assert_eq!((truncated.chunks, truncated.emptied.len()), (100, 100));
            assert_eq!(h.forget(&truncated.emptied).len(), 100);
            assert_eq!(h.num_series(), 100);
        }
        assert_eq!(h.symbols.len(), strings, "the churned pods' names were freed");
        assert_eq!(stats::tests::read(&h, usize::MAX).0.pairs["pod"].len(), 100);
        assert_eq!(h.candidates(&[]).iter().filter(|&id| h.has_samples_in(id, i64::MIN, i64::MAX)).count(), 100);
        assert_eq!(h.append(first[0], 200_000, 1.0), Err(AppendError::UnknownSeries));
        let (again, created) = h.get_or_create(&pod(0, 0));
        assert!(created && !first.contains(&again), "a returning series gets a new id");
        assert_eq!(h.labels(first[0]), None);
    }

    fn counter(n: f64) -> FloatHistogram {
        FloatHistogram {
            schema: 0,
            count: 3.0 * n,
            sum: n,
            positive_spans: vec![pyrite_core::histogram::Span { offset: 0, length: 2 }],
            positive_buckets: vec![n, 2.0 * n],
            ..FloatHistogram::default()
        }
    }

    /// A retried histogram is taken where it is; a drop in counts is a reset whatever the
    /// writer's hint said; what no chunk can hold is refused, and a first custom bound of -Inf
    /// is not that.
    #[test]
    fn histogram_appends_take_retries_find_resets_and_refuse_what_no_chunk_holds() {
        let mut h = Head::new();
        let (id, _) = h.get_or_create(&up("api"));
        h.append_histogram(id, 1000, counter(4.0)).unwrap();
        assert_eq!(h.append_histogram(id, 1000, counter(4.0)), Ok(Appended::InOrder), "the same again");
        assert_eq!(h.append_histogram(id, 1000, counter(5.0)), Err(AppendError::Duplicate));
        let lying = FloatHistogram { counter_reset_hint: CounterResetHint::NotCounterReset, ..counter(1.0) };
        h.append_histogram(id, 2000, lying).unwrap();
        let stated = FloatHistogram { counter_reset_hint: CounterResetHint::CounterReset, ..counter(2.0) };
        h.append_histogram(id, 3000, stated).unwrap();
        h.append_histogram(id, 4000, counter(3.0)).unwrap();
        let hints: Vec<_> = h.histograms_in(id, 0, 5000).iter().map(|x| x.h.counter_reset_hint).collect();
        use CounterResetHint::*;
        assert_eq!(hints, [Unknown, CounterReset, CounterReset, NotCounterReset]);

        let custom = |bounds: Vec<f64>| FloatHistogram {
            schema: pyrite_core::histogram::CUSTOM_BUCKETS_SCHEMA,
            custom_values: bounds,
            ..counter(1.0)
        };
        assert_eq!(h.append_histogram(id, 5000, custom(vec![1.0, f64::NAN])), Err(AppendError::InvalidHistogram));
        assert_eq!(
            h.append_histogram(id, 5000, FloatHistogram { schema: 9, ..counter(5.0) }),
            Err(AppendError::InvalidHistogram)
        );
        h.append_histogram(id, 5000, custom(vec![f64::NEG_INFINITY, 1.0])).unwrap();
        assert_eq!(h.histograms_in(id, 5000, 5000).len(), 1, "it reads back");
    }

    /// Out-of-order histograms merged with in-order ones: every counter hint read as unknown
    /// (an in-order hint was found against another neighbour), whatever the writer or the log
    /// said; a float and a histogram never share a time.
    #[test]
    fn out_of_order_histograms_leave_reset_hints_unknown_and_a_time_to_one_type() {
        let mut h = Head::new();
        h.set_out_of_order_window(3_600_000);
        let (id, _) = h.get_or_create(&up("api"));
        h.append_histogram(id, 0, counter(100.0)).unwrap();
        h.append_histogram(id, 20_000, counter(110.0)).unwrap();
        let stated = FloatHistogram { counter_reset_hint: CounterResetHint::NotCounterReset, ..counter(120.0) };
        assert_eq!(h.append_histogram(id, 10_000, stated.clone()), Ok(Appended::OutOfOrder));
        assert!(h.insert_out_of_order(id, 5_000, Value::Histogram(Box::new(stated))), "a replayed one");
        let read = h.series_samples(id, 0, 30_000, &Projection::All).unwrap();
        let got: Vec<_> = read.histograms.iter().map(|x| (x.t, x.h.count, x.h.counter_reset_hint)).collect();
        use CounterResetHint::Unknown;
        assert_eq!(
            got,
            [(0, 300.0, Unknown), (5_000, 360.0, Unknown), (10_000, 360.0, Unknown), (20_000, 330.0, Unknown)]
        );
        assert_eq!(h.append(id, 20_000 - 1, 1.0), Ok(Appended::OutOfOrder));
        assert_eq!(h.append(id, 10_000, 1.0), Ok(Appended::Dropped), "held apart as a histogram");
        h.append(id, 30_000, 1.0).unwrap();
        assert_eq!(h.append(id, 20_000, 1.0), Ok(Appended::Dropped), "held in order as a histogram");
        assert_eq!(h.append_histogram(id, 30_000 - 1, counter(1.0)), Ok(Appended::OutOfOrder));
        assert_eq!(h.append_histogram(id, 20_000 - 1, counter(1.0)), Ok(Appended::Dropped), "a float's time");
    }

    /// A snapshot's histogram chunks that overlap, or hold samples newer than the series' last,
    /// are refused: appends after them would go out of order.
    #[test]
    fn a_histogram_snapshot_out_of_order_is_refused() {
        let mut h = Head::new();
        let (id, _) = h.get_or_create(&up("api"));
        for k in 0..250 {
            h.append_histogram(id, k * 1000, counter(k as f64)).unwrap();
        }
        let good = h.snapshot_histograms(id).unwrap();
        assert!(good.sealed.len() >= 2, "several chunks");
        let mut swapped = good.clone();
        swapped.sealed.swap(0, 1);
        let mut restored = Head::new();
        restored.restore_series(id, h.snapshot_series(id).unwrap());
        assert!(!restored.restore_histograms(id, &swapped));
        let mut early = Head::new();
        let (other, _) = early.get_or_create(&up("api"));
        assert!(!early.restore_histograms(other, &good), "newer than the series' last sample");
        assert!(restored.restore_histograms(id, &good));
        assert_eq!(restored.histograms_in(id, i64::MIN, i64::MAX).len(), 250);
        restored.append_histogram(id, 250_000, counter(250.0)).unwrap();
    }

    #[test]
    fn a_snapshot_whose_chunks_do_not_fit_or_decode_is_refused() {
        // Found by the chunk_xor fuzz target: an open chunk claiming a sample its bytes do not
        // hold was restored, and sealing it later packed no samples and panicked.
        let mut h = Head::new();
        let (id, _) = h.get_or_create(&up("api"));
        for i in 0..10 {
            h.append(id, i * 1000, i as f64).unwrap();
        }
        let good = h.snapshot_series(id).unwrap();
        let short = XorState { bytes: good.open.bytes[..15].to_vec(), free: 0, count: 1, ..good.open.clone() };
        let too_many = XorState { count: CHUNK_SAMPLES as u16 + 1, ..good.open.clone() };
        let mut restored = Head::new();
        for open in [short, too_many] {
            assert_eq!(restored.restore_series(0, SeriesSnapshot { open, ..good.clone() }), None);
        }
        // A sealed chunk longer than the store holds (its length takes two bytes).
        let long = SealedChunk { min_t: 0, max_t: 1, bytes: vec![0; MAX_CHUNK_BYTES + 1].into() };
        assert_eq!(restored.restore_series(0, SeriesSnapshot { sealed: vec![long], ..good.clone() }), None);
        assert_eq!(restored.restore_series(0, good), Some(0));
        for i in 10..200 {
            restored.append(0, i * 1000, i as f64).unwrap();
        }
        assert_eq!(restored.select(&[], 0, i64::MAX, &Projection::All)[0].samples.len(), 200);
    }
}
