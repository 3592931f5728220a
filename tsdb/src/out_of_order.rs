//! The head's out-of-order samples (`storage.tsdb.out_of_order_time_window`, as upstream),
//! floats and native histograms alike (upstream 3.x takes both once the window is set).
//!
//! With a window set, a sample older than its series' last one, but no older than the window
//! before the head's newest sample, is kept here instead of being refused. Each series that
//! has some holds a sorted buffer of up to [`BUFFER_SAMPLES`] (upstream's
//! `out_of_order_cap_max` default) of either type, packed into chunks (one per type) when
//! full; packed chunks may overlap each other in time. A sample at a time the buffer already
//! holds with another value is dropped, as upstream (packed chunks and the in-order chunks
//! are not checked: a read keeps the in-order sample, then the newest packed one); with the
//! same value it is accepted again, as the head accepts a repeated in-order sample, so that a
//! retried write is logged.
//!
//! Out-of-order data never enters the head's in-order chunks. Once the in-order data of its
//! time range is in a block (before the head's `min_valid`), it is written to blocks of its
//! own, which overlap the in-order ones until compaction merges them (`Db::flush_out_of_order`).
//! Only the series that have out-of-order samples cost anything: the rest of the head does
//! not know this store exists.

use pyrite_core::histogram::FloatHistogram;

use super::block::BlockChunk;
use super::chunk::sealed::{self, Decoded};
use super::head::ById;
use super::overlap::forget_reset_hint;

/// Samples a series' buffer holds before they are packed into chunks.
pub const BUFFER_SAMPLES: usize = 32;

/// An out-of-order sample's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Float(f64),
    Histogram(Box<FloatHistogram>),
}

impl Value {
    /// The same sample again: floats bit for bit, histograms field for field.
    fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Histogram(a), Value::Histogram(b)) => a.equals(b),
            _ => false,
        }
    }
}

/// What [`OutOfOrder::insert`] did with a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Kept.
    New,
    /// The buffer holds this very sample already.
    Again,
    /// The buffer holds another sample at its time, which stays; this one is dropped.
    Conflict,
}

/// `d`'s samples in chunks, floats and histograms apart.
fn pack(d: &Decoded) -> Vec<BlockChunk<'static>> {
    let mut out = BlockChunk::pack(&d.floats);
    out.extend(BlockChunk::pack_histograms(&d.histograms));
    out
}

#[derive(Debug, Default)]
struct Series {
    /// Sorted by time, unique times.
    buffer: Vec<(i64, Value)>,
    /// Each sorted, in the order they were packed; floats and histograms in chunks apart.
    packed: Vec<BlockChunk<'static>>,
}

impl Series {
    fn min_time(&self) -> Option<i64> {
        self.packed.iter().map(|c| c.min_t).chain(self.buffer.first().map(|s| s.0)).min()
    }

    fn max_time(&self) -> Option<i64> {
        self.packed.iter().map(|c| c.max_t).chain(self.buffer.last().map(|s| s.0)).max()
    }

    fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        let buffered =
            self.buffer.first().is_some_and(|f| f.0 <= maxt) && self.buffer.last().is_some_and(|l| l.0 >= mint);
        buffered || self.packed.iter().any(|c| c.overlaps(mint, maxt))
    }

    /// Every sample in `[mint, maxt]`, sorted, a time held twice once (the newest copy, of
    /// whichever type).
    fn samples_in(&self, mint: i64, maxt: i64) -> Decoded {
        let within = |t: i64| (mint..=maxt).contains(&t);
        // Newest first, so that a stable sort and dedup keep the newest copy of a time.
        let mut all: Vec<(i64, Value)> = self.buffer.iter().filter(|s| within(s.0)).cloned().collect();
        for c in self.packed.iter().rev().filter(|c| c.overlaps(mint, maxt)) {
            let mut decoded = Decoded::default();
            // Packed in this process (or restored from a checksummed record): decodable.
            if decoded.add(&c.bytes).is_ok() {
                all.extend(decoded.floats.into_iter().filter(|s| within(s.0)).map(|(t, v)| (t, Value::Float(v))));
                let histograms = decoded.histograms.into_iter().filter(|s| within(s.0));
                all.extend(histograms.map(|(t, h)| (t, Value::Histogram(Box::new(h)))));
            }
        }
        all.sort_by_key(|s| s.0);
        all.dedup_by_key(|s| s.0);
        let mut out = Decoded::default();
        for (t, v) in all {
            match v {
                Value::Float(v) => out.floats.push((t, v)),
                Value::Histogram(h) => out.histograms.push((t, *h)),
            }
        }
        out
    }

    /// Keeps only the samples at times `keep` takes, packed anew; false if none are left.
    fn retain(&mut self, keep: impl Fn(i64) -> bool) -> bool {
        let mut kept = self.samples_in(i64::MIN, i64::MAX);
        kept.retain(keep);
        (self.packed, self.buffer) = (pack(&kept), Vec::new());
        !self.packed.is_empty()
    }

    /// Packs the full buffer into chunks.
    fn pack_buffer(&mut self) {
        let mut d = Decoded::default();
        for (t, v) in self.buffer.drain(..) {
            match v {
                Value::Float(v) => d.floats.push((t, v)),
                Value::Histogram(h) => d.histograms.push((t, *h)),
            }
        }
        self.packed.extend(pack(&d));
    }
}

/// One shard's out-of-order samples, by series id.
#[derive(Debug, Default)]
pub struct OutOfOrder {
    /// How far behind the head's newest sample a sample may be (ms); 0: none is accepted.
    window: i64,
    series: ById<u32, Series>,
}

impl OutOfOrder {
    pub fn window(&self) -> i64 {
        self.window
    }

    /// Accepts samples up to `window` ms behind the head's newest from now on (0: none).
    pub fn set_window(&mut self, window: i64) {
        self.window = window.max(0);
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The oldest sample held, if any.
    pub fn min_time(&self) -> Option<i64> {
        self.series.values().filter_map(Series::min_time).min()
    }

    /// The newest sample held, if any.
    pub fn max_time(&self) -> Option<i64> {
        self.series.values().filter_map(Series::max_time).max()
    }

    /// Whether series `id` has out-of-order samples.
    pub fn has(&self, id: u32) -> bool {
        self.series.contains_key(&id)
    }

    /// Keeps `(t, v)` for series `id`, unless its buffer holds a sample at `t` already. A
    /// counter histogram's reset hint is left unknown: its neighbours are not known here, so
    /// reads find resets from the counts, as upstream's out-of-order chunks leave the hint.
    pub fn insert(&mut self, id: u32, t: i64, mut v: Value) -> Insert {
        if let Value::Histogram(h) = &mut v {
            forget_reset_hint(h);
        }
        let s = self.series.entry(id).or_default();
        let at = s.buffer.partition_point(|x| x.0 < t);
        if let Some((_, held)) = s.buffer.get(at).filter(|x| x.0 == t) {
            return if held.same_as(&v) { Insert::Again } else { Insert::Conflict };
        }
        s.buffer.insert(at, (t, v));
        if s.buffer.len() >= BUFFER_SAMPLES {
            s.pack_buffer();
        }
        Insert::New
    }

    /// Whether series `id` has out-of-order samples in `[mint, maxt]`.
    pub fn overlaps(&self, id: u32, mint: i64, maxt: i64) -> bool {
        // Every read asks: without out-of-order samples, no hashing.
        !self.series.is_empty() && self.series.get(&id).is_some_and(|s| s.overlaps(mint, maxt))
    }

    /// Series `id`'s samples in `[mint, maxt]`, sorted, each time once.
    pub fn samples_in(&self, id: u32, mint: i64, maxt: i64) -> Decoded {
        self.series.get(&id).map_or_else(Decoded::default, |s| s.samples_in(mint, maxt))
    }

    /// Every series' samples, sorted, each time once (a head snapshot's).
    pub fn all(&self) -> impl Iterator<Item = (u32, Decoded)> + '_ {
        self.series.iter().map(|(&id, s)| (id, s.samples_in(i64::MIN, i64::MAX)))
    }

    /// The series with samples before `t`, and those samples, sorted, each time once.
    pub fn before(&self, t: i64) -> Vec<(u32, Decoded)> {
        self.series
            .iter()
            .filter(|(_, s)| s.min_time().is_some_and(|m| m < t))
            .map(|(&id, s)| (id, s.samples_in(i64::MIN, t - 1)))
            .collect()
    }

    /// Drops every sample before `t` (they are in blocks now); returns the series left with
    /// none.
    pub fn drop_before(&mut self, t: i64) -> Vec<u32> {
        let mut emptied = Vec::new();
        for (&id, s) in self.series.iter_mut().filter(|(_, s)| s.min_time().is_some_and(|m| m < t)) {
            if !s.retain(|x| x >= t) {
                emptied.push(id);
            }
        }
        for id in &emptied {
            self.series.remove(id);
        }
        emptied
    }

    /// Deletes series `id`'s samples in `[mint, maxt]`; false if it had none there.
    pub fn delete(&mut self, id: u32, mint: i64, maxt: i64) -> bool {
        let Some(s) = self.series.get_mut(&id).filter(|s| s.overlaps(mint, maxt)) else { return false };
        if !s.retain(|t| t < mint || t > maxt) {
            self.series.remove(&id);
        }
        true
    }

    /// Samples held, a time held twice counted twice.
    pub fn num_samples(&self) -> usize {
        self.series
            .values()
            .map(|s| s.buffer.len() + s.packed.iter().map(|c| sealed::sample_count(&c.bytes)).sum::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrite_core::histogram::CounterResetHint;

    fn float(v: f64) -> Value {
        Value::Float(v)
    }

    fn histogram(count: f64) -> FloatHistogram {
        FloatHistogram {
            count,
            sum: count,
            counter_reset_hint: CounterResetHint::Unknown,
            zero_count: count,
            zero_threshold: 0.001,
            ..FloatHistogram::default()
        }
    }

    #[test]
    fn samples_are_kept_sorted_packed_when_the_buffer_fills_and_read_back_once_each() {
        let mut o = OutOfOrder::default();
        // Backwards, so that every insert goes before the others.
        for t in (0..100).rev() {
            assert_eq!(o.insert(7, t * 10, float(t as f64)), Insert::New);
        }
        // 96 samples are packed; the buffer holds 30, 20, 10 and 0.
        assert_eq!(o.insert(7, 10, float(5.0)), Insert::Conflict, "a time the buffer holds is kept");
        assert_eq!(o.insert(7, 10, float(1.0)), Insert::Again, "the same sample again");
        assert_eq!(o.num_samples(), 100);
        let all = o.samples_in(7, i64::MIN, i64::MAX);
        assert_eq!(all.floats, (0..100).map(|t| (t * 10, t as f64)).collect::<Vec<_>>());
        assert_eq!(o.samples_in(7, 95, 120).floats, vec![(100, 10.0), (110, 11.0), (120, 12.0)]);
        assert!(o.overlaps(7, 5, 5) && !o.overlaps(7, 1000, 2000) && !o.overlaps(8, 0, 1000));
        // A packed time comes again: the newest copy is read.
        assert_eq!(o.insert(7, 990, float(-1.0)), Insert::New);
        assert_eq!(o.samples_in(7, 990, 990).floats, vec![(990, -1.0)]);
    }

    #[test]
    fn histograms_share_the_buffer_with_floats_and_a_time_is_read_once_whatever_its_type() {
        let mut o = OutOfOrder::default();
        for t in (0..40).rev() {
            let v = match t % 2 {
                0 => float(t as f64),
                _ => Value::Histogram(Box::new(histogram(t as f64))),
            };
            assert_eq!(o.insert(3, t, v), Insert::New);
        }
        let h = Value::Histogram(Box::new(histogram(1.0)));
        assert_eq!(o.insert(3, 1, h.clone()), Insert::Again);
        assert_eq!(o.insert(3, 0, h), Insert::Conflict, "another type at a held time");
        assert_eq!(o.num_samples(), 40);
        let all = o.samples_in(3, i64::MIN, i64::MAX);
        assert_eq!(all.floats, (0..40).step_by(2).map(|t| (t, t as f64)).collect::<Vec<_>>());
        let expected: Vec<(i64, FloatHistogram)> = (1..40).step_by(2).map(|t| (t, histogram(t as f64))).collect();
        assert_eq!(all.histograms, expected);
        // A histogram comes at a packed float's time: the newest copy wins.
        o.insert(3, 38, Value::Histogram(Box::new(histogram(-1.0))));
        let at = o.samples_in(3, 38, 38);
        assert_eq!((at.floats, at.histograms), (vec![], vec![(38, histogram(-1.0))]));
        assert!(o.delete(3, 0, 9));
        assert_eq!(o.samples_in(3, i64::MIN, i64::MAX).histograms.first().map(|s| s.0), Some(11));
        assert_eq!(o.drop_before(100), vec![3]);
        assert!(o.is_empty());
    }

    #[test]
    fn dropping_what_went_to_blocks_keeps_the_rest_and_lists_the_emptied() {
        let mut o = OutOfOrder::default();
        for t in 0..50 {
            o.insert(1, t, float(1.0));
            o.insert(2, t + 100, float(2.0));
        }
        assert_eq!(o.before(60).iter().map(|(id, s)| (*id, s.floats.len())).collect::<Vec<_>>(), vec![(1, 50)]);
        assert_eq!(o.drop_before(60), vec![1]);
        assert!(!o.has(1) && o.has(2));
        assert_eq!(o.drop_before(120), Vec::<u32>::new());
        assert_eq!(o.samples_in(2, i64::MIN, i64::MAX).floats.len(), 30);
    }
}
