//! A head series' native-histogram samples: sealed histogram chunks in the head's chunk store
//! and one open streaming chunk ([`crate::chunk::histogram`]), beside the series' float chunks.
//!
//! The head keeps one of these, by series id, for each series that has histogram samples, so
//! that float series pay nothing for them. Chunks are cut as float chunks are (at
//! [`CHUNK_SAMPLES`] samples and where a block boundary falls) and also once past
//! [`TARGET_BYTES`], as upstream cuts histogram chunks by size: a sample of a wide histogram
//! takes far more than a float's. [`MAX_HISTOGRAM_BUCKETS`] bounds one sample, so that every
//! chunk fits the store.

use std::sync::Arc;

use pyrite_core::histogram::FloatHistogram;
use pyrite_core::value::HistogramSample;

use crate::block::BlockChunk;
use crate::chunk::histogram::{self as codec, HistogramChunk};
use crate::chunk::store::{ChunkStore, MAX_CHUNK_BYTES};
use crate::head::{HeadChunk, SealedChunk, CHUNK_SAMPLES};

/// An open histogram chunk is sealed once it takes this many bytes.
const TARGET_BYTES: usize = 1024;

/// The most buckets and spans one histogram sample may have (both signs together, custom
/// bounds included): a sample then takes at most about 40 KiB encoded, so that a chunk (one
/// sample past [`TARGET_BYTES`] at most) always fits the chunk store. Client libraries limit
/// their histograms to 160 buckets by default.
pub const MAX_HISTOGRAM_BUCKETS: usize = 4096;

/// Whether `h` is within [`MAX_HISTOGRAM_BUCKETS`].
pub fn fits(h: &FloatHistogram) -> bool {
    let n = h.positive_buckets.len()
        + h.negative_buckets.len()
        + h.positive_spans.len()
        + h.negative_spans.len()
        + h.custom_values.len();
    n <= MAX_HISTOGRAM_BUCKETS
}

/// Whether a chunk takes no more samples: [`CHUNK_SAMPLES`] of them, or [`TARGET_BYTES`].
pub(crate) fn is_full(chunk: &HistogramChunk) -> bool {
    chunk.len() >= CHUNK_SAMPLES || chunk.bytes().len() >= TARGET_BYTES
}

/// A histogram series as a snapshot keeps it: its sealed chunks and its open chunk's bytes
/// (the open chunk's encoder state follows from them).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub sealed: Vec<SealedChunk>,
    pub open: Vec<u8>,
}

impl HistogramSnapshot {
    /// Samples held.
    pub fn num_samples(&self) -> usize {
        self.sealed.iter().map(|c| codec::sample_count(&c.bytes)).sum::<usize>() + codec::sample_count(&self.open)
    }

    /// The newest sample time held, if any.
    pub fn max_time(&self) -> Option<i64> {
        let open = HistogramChunk::from_bytes(&self.open).ok().filter(|c| !c.is_empty()).map(|c| c.max_time());
        open.or(self.sealed.last().map(|c| c.max_t))
    }
}

#[derive(Debug, Default)]
pub(crate) struct HistogramSeries {
    /// In time order, all before the open chunk.
    sealed: Vec<HeadChunk>,
    open: HistogramChunk,
    /// The block boundary after the open chunk's first sample.
    open_end: i64,
}

impl HistogramSeries {
    /// The newest sample, if the open chunk holds one. A chunk is sealed only when the next
    /// sample comes, so this is the series' newest histogram unless its chunks were dropped.
    pub(crate) fn last(&self) -> Option<&FloatHistogram> {
        self.open.last()
    }

    /// Appends a sample newer than the last, sealing the open chunk first if it is full or the
    /// sample crosses a block boundary.
    pub(crate) fn push(&mut self, store: &mut ChunkStore, t: i64, h: &FloatHistogram, block_range: i64) {
        if is_full(&self.open) || (!self.open.is_empty() && t >= self.open_end) {
            self.seal(store);
        }
        if self.open.is_empty() {
            self.open_end = (t.div_euclid(block_range) + 1).saturating_mul(block_range);
        }
        self.open.append(t, h);
    }

    fn seal(&mut self, store: &mut ChunkStore) {
        let (min_t, max_t) = (self.open.min_time(), self.open.max_time());
        let at = store.push(self.open.bytes(), max_t);
        self.sealed.reserve_exact(1);
        self.sealed.push(HeadChunk { min_t, max_t, at });
        self.open = HistogramChunk::new();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.open.is_empty()
    }

    pub(crate) fn num_chunks(&self) -> usize {
        self.sealed.len() + usize::from(!self.open.is_empty())
    }

    pub(crate) fn min_time(&self) -> Option<i64> {
        self.sealed.first().map(|c| c.min_t).or((!self.open.is_empty()).then(|| self.open.min_time()))
    }

    pub(crate) fn max_time(&self) -> Option<i64> {
        match self.open.is_empty() {
            true => self.sealed.last().map(|c| c.max_t),
            false => Some(self.open.max_time()),
        }
    }

    fn open_overlaps(&self, mint: i64, maxt: i64) -> bool {
        !self.open.is_empty() && self.open.min_time() <= maxt && self.open.max_time() >= mint
    }

    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.open_overlaps(mint, maxt) || self.sealed.iter().any(|c| c.overlaps(mint, maxt))
    }

    /// The chunks overlapping `[mint, maxt]`, oldest first, as bytes.
    fn chunks_in<'a>(&'a self, store: &'a ChunkStore, mint: i64, maxt: i64) -> impl Iterator<Item = &'a [u8]> {
        let sealed = self.sealed.iter().filter(move |c| c.overlaps(mint, maxt)).map(|c| store.get(c.at));
        sealed.chain(self.open_overlaps(mint, maxt).then(|| self.open.bytes()))
    }

    /// Appends the samples in `[mint, maxt]` to `out`.
    pub(crate) fn samples_in(&self, store: &ChunkStore, mint: i64, maxt: i64, out: &mut Vec<HistogramSample>) {
        let mut decoded = Vec::new();
        for bytes in self.chunks_in(store, mint, maxt) {
            decoded.clear();
            // Encoded in this process (or restored from a checksummed snapshot): decodable.
            if codec::decode(bytes, &mut decoded).is_ok() {
                let kept = decoded.drain(..).filter(|(t, _)| (mint..=maxt).contains(t));
                out.extend(kept.map(|(t, h)| HistogramSample { t, h: Arc::new(h) }));
            }
        }
    }

    /// The chunks of `[mint, maxt)` for a block, appended to `out`: sealed chunks inside the
    /// range as they are, anything straddling its ends re-encoded.
    pub(crate) fn block_chunks<'a>(&self, store: &'a ChunkStore, mint: i64, maxt: i64, out: &mut Vec<BlockChunk<'a>>) {
        let mut straddling = Vec::new();
        for c in self.sealed.iter().filter(|c| c.overlaps(mint, maxt - 1)) {
            match c.min_t >= mint && c.max_t < maxt {
                true => out.push(BlockChunk { min_t: c.min_t, max_t: c.max_t, bytes: store.get(c.at).into() }),
                false => straddling.push(store.get(c.at)),
            }
        }
        if self.open_overlaps(mint, maxt - 1) {
            straddling.push(self.open.bytes());
        }
        let mut samples = Vec::new();
        for bytes in straddling {
            let mut decoded = Vec::new();
            if codec::decode(bytes, &mut decoded).is_ok() {
                samples.extend(decoded.into_iter().filter(|(t, _)| (mint..maxt).contains(t)));
            }
        }
        samples.sort_by_key(|(t, _)| *t);
        out.extend(BlockChunk::pack_histograms(&samples));
    }

    /// Drops the samples in `[mint, maxt]`, re-encoding the chunks; false if there were none.
    pub(crate) fn delete(&mut self, store: &mut ChunkStore, mint: i64, maxt: i64, block_range: i64) -> bool {
        if !self.overlaps(mint, maxt) {
            return false;
        }
        let mut kept = Vec::new();
        self.samples_in(store, i64::MIN, i64::MAX, &mut kept);
        let before = kept.len();
        kept.retain(|s| s.t < mint || s.t > maxt);
        if kept.len() == before {
            return false;
        }
        *self = HistogramSeries::default();
        for s in kept {
            self.push(store, s.t, &s.h, block_range);
        }
        true
    }

    /// Drops every chunk that ends before `t`; returns how many.
    pub(crate) fn truncate_before(&mut self, t: i64) -> usize {
        let before = self.num_chunks();
        self.sealed.retain(|c| c.max_t >= t);
        if !self.open.is_empty() && self.open.max_time() < t {
            self.open = HistogramChunk::new();
        }
        before - self.num_chunks()
    }

    pub(crate) fn snapshot(&self, store: &ChunkStore) -> HistogramSnapshot {
        let sealed = self
            .sealed
            .iter()
            .map(|c| SealedChunk { min_t: c.min_t, max_t: c.max_t, bytes: store.get(c.at).into() })
            .collect();
        HistogramSnapshot { sealed, open: self.open.bytes().to_vec() }
    }

    /// The series a snapshot kept; None if a chunk does not decode or does not fit the store, if
    /// chunks overlap or are out of order, or if a sample is newer than `last_t`, the series'
    /// last sample (a damaged snapshot): the head only ever holds chunks that read back and
    /// appends after them.
    pub(crate) fn restore(
        store: &mut ChunkStore,
        snapshot: &HistogramSnapshot,
        block_range: i64,
        last_t: i64,
    ) -> Option<Self> {
        let open = match snapshot.open.is_empty() {
            true => HistogramChunk::new(),
            false => HistogramChunk::from_bytes(&snapshot.open).ok()?,
        };
        let mut newest = i64::MIN;
        let mut decoded = Vec::new();
        for c in &snapshot.sealed {
            decoded.clear();
            let ok = c.bytes.len() <= MAX_CHUNK_BYTES && codec::decode(&c.bytes, &mut decoded).is_ok();
            let times = (decoded.first().map(|s| s.0), decoded.last().map(|s| s.0));
            if !ok || times != (Some(c.min_t), Some(c.max_t)) || c.min_t <= newest {
                return None;
            }
            newest = c.max_t;
        }
        if !open.is_empty() && (snapshot.open.len() > MAX_CHUNK_BYTES || open.min_time() <= newest) {
            return None;
        }
        let newest = if open.is_empty() { newest } else { open.max_time() };
        if newest > last_t {
            return None;
        }
        let sealed = snapshot.sealed.iter().map(|c| HeadChunk {
            min_t: c.min_t,
            max_t: c.max_t,
            at: store.push(&c.bytes, c.max_t),
        });
        let open_end = match open.is_empty() {
            true => i64::MAX,
            false => (open.min_time().div_euclid(block_range) + 1).saturating_mul(block_range),
        };
        Some(HistogramSeries { sealed: sealed.collect(), open, open_end })
    }
}
