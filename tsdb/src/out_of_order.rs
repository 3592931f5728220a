//! The head's out-of-order samples (`storage.tsdb.out_of_order_time_window`, as upstream).
//!
//! With a window set, a sample older than its series' last one, but no older than the window
//! before the head's newest sample, is kept here instead of being refused. Each series that
//! has some holds a sorted buffer of up to [`BUFFER_SAMPLES`] (upstream's
//! `out_of_order_cap_max` default), packed into a chunk when full; packed chunks may overlap
//! each other in time. A sample at a time the buffer already holds with another value is
//! dropped, as upstream (packed chunks and the in-order chunks are not checked: a read keeps
//! the in-order sample, then the newest packed one); with the same value it is accepted again,
//! as the head accepts a repeated in-order sample, so that a retried write is logged.
//!
//! Out-of-order data never enters the head's in-order chunks. Once the in-order data of its
//! time range is in a block (before the head's `min_valid`), it is written to blocks of its
//! own, which overlap the in-order ones until compaction merges them (`Db::flush_out_of_order`).
//! Only the series that have out-of-order samples cost anything: the rest of the head does
//! not know this store exists.

use super::block::BlockChunk;
use super::chunk::packed;
use super::head::ById;

/// Samples a series' buffer holds before they are packed into a chunk.
pub const BUFFER_SAMPLES: usize = 32;

#[derive(Debug, Default)]
struct Series {
    /// Sorted by time, unique times.
    buffer: Vec<(i64, f64)>,
    /// Each sorted, in the order they were packed.
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

    /// Every sample in `[mint, maxt]`, sorted, a time held twice once (the newest copy).
    fn samples_in(&self, mint: i64, maxt: i64) -> Vec<(i64, f64)> {
        let mut out: Vec<(i64, f64)> = Vec::new();
        let mut decoded = Vec::new();
        // Newest first, so that a stable sort and dedup keep the newest copy of a time.
        out.extend(self.buffer.iter().filter(|s| s.0 >= mint && s.0 <= maxt));
        for c in self.packed.iter().rev().filter(|c| c.overlaps(mint, maxt)) {
            decoded.clear();
            // Packed in this process (or restored from a checksummed record): decodable.
            if packed::decode(&c.bytes, &mut decoded).is_ok() {
                out.extend(decoded.iter().filter(|s| s.0 >= mint && s.0 <= maxt));
            }
        }
        out.sort_by_key(|s| s.0);
        out.dedup_by_key(|s| s.0);
        out
    }

    /// Keeps only the samples at times `keep` takes, packed anew; false if none are left.
    fn retain(&mut self, keep: impl Fn(i64) -> bool) -> bool {
        let mut kept = self.samples_in(i64::MIN, i64::MAX);
        kept.retain(|s| keep(s.0));
        (self.packed, self.buffer) = (BlockChunk::pack(&kept), Vec::new());
        !kept.is_empty()
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

    /// Keeps `(t, v)` for series `id`; if its buffer holds a sample at `t` already, keeps that
    /// and returns its value.
    pub fn insert(&mut self, id: u32, t: i64, v: f64) -> Option<f64> {
        let s = self.series.entry(id).or_default();
        let at = s.buffer.partition_point(|x| x.0 < t);
        if let Some(&(_, held)) = s.buffer.get(at).filter(|x| x.0 == t) {
            return Some(held);
        }
        s.buffer.insert(at, (t, v));
        if s.buffer.len() >= BUFFER_SAMPLES {
            s.packed.extend(BlockChunk::pack(&s.buffer));
            s.buffer.clear();
        }
        None
    }

    /// Whether series `id` has out-of-order samples in `[mint, maxt]`.
    pub fn overlaps(&self, id: u32, mint: i64, maxt: i64) -> bool {
        // Every read asks: without out-of-order samples, no hashing.
        !self.series.is_empty() && self.series.get(&id).is_some_and(|s| s.overlaps(mint, maxt))
    }

    /// Series `id`'s samples in `[mint, maxt]`, sorted, each time once.
    pub fn samples_in(&self, id: u32, mint: i64, maxt: i64) -> Vec<(i64, f64)> {
        self.series.get(&id).map_or_else(Vec::new, |s| s.samples_in(mint, maxt))
    }

    /// Every series' samples, sorted, each time once (a head snapshot's).
    pub fn all(&self) -> impl Iterator<Item = (u32, Vec<(i64, f64)>)> + '_ {
        self.series.iter().map(|(&id, s)| (id, s.samples_in(i64::MIN, i64::MAX)))
    }

    /// The series with samples before `t`, and those samples, sorted, each time once.
    pub fn before(&self, t: i64) -> Vec<(u32, Vec<(i64, f64)>)> {
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
            .map(|s| s.buffer.len() + s.packed.iter().map(|c| packed::sample_count(&c.bytes)).sum::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_kept_sorted_packed_when_the_buffer_fills_and_read_back_once_each() {
        let mut o = OutOfOrder::default();
        // Backwards, so that every insert goes before the others.
        for t in (0..100).rev() {
            assert_eq!(o.insert(7, t * 10, t as f64), None);
        }
        // 96 samples are packed; the buffer holds 30, 20, 10 and 0.
        assert_eq!(o.insert(7, 10, 5.0), Some(1.0), "a time the buffer holds is kept");
        assert_eq!(o.num_samples(), 100);
        let all = o.samples_in(7, i64::MIN, i64::MAX);
        assert_eq!(all, (0..100).map(|t| (t * 10, t as f64)).collect::<Vec<_>>());
        assert_eq!(o.samples_in(7, 95, 120), vec![(100, 10.0), (110, 11.0), (120, 12.0)]);
        assert!(o.overlaps(7, 5, 5) && !o.overlaps(7, 1000, 2000) && !o.overlaps(8, 0, 1000));
        // A packed time comes again: the newest copy is read.
        assert_eq!(o.insert(7, 990, -1.0), None);
        assert_eq!(o.samples_in(7, 990, 990), vec![(990, -1.0)]);
    }

    #[test]
    fn dropping_what_went_to_blocks_keeps_the_rest_and_lists_the_emptied() {
        let mut o = OutOfOrder::default();
        for t in 0..50 {
            o.insert(1, t, 1.0);
            o.insert(2, t + 100, 2.0);
        }
        assert_eq!(o.before(60).iter().map(|(id, s)| (*id, s.len())).collect::<Vec<_>>(), vec![(1, 50)]);
        assert_eq!(o.drop_before(60), vec![1]);
        assert!(!o.has(1) && o.has(2));
        assert_eq!(o.drop_before(120), Vec::<u32>::new());
        assert_eq!(o.samples_in(2, i64::MIN, i64::MAX).len(), 30);
    }
}
