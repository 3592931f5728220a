//! The exemplars a head keeps: one ring of at most `capacity` entries shared by all its series,
//! the newest overwriting the oldest, as upstream's circular exemplar storage
//! (`storage.exemplars.max_exemplars`, split among the shards). Each series' entries are linked
//! from its oldest to its newest, so a query walks only the series it asks for, and the entry a
//! new one overwrites is always its series' oldest.
//!
//! As upstream: an exemplar equal to its series' newest is a duplicate (a target exposes the same
//! exemplar scrape after scrape) and is dropped without complaint; one older than the newest is
//! out of order and refused. Exemplars are kept by head series id; a series the head forgets
//! loses its exemplars.

use std::collections::HashMap;

use pyrite_core::value::{exemplar_label_chars, Exemplar, EXEMPLAR_MAX_LABEL_CHARS};

/// No next entry.
const NONE: u32 = u32::MAX;

/// Why an exemplar was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExemplarError {
    #[error("exemplar storage is disabled")]
    Disabled,
    #[error("duplicate exemplar")]
    Duplicate,
    #[error("out of order exemplar")]
    OutOfOrder,
    #[error("exemplar label set is longer than {EXEMPLAR_MAX_LABEL_CHARS} characters")]
    TooLong,
    #[error("unknown series")]
    UnknownSeries,
}

#[derive(Debug)]
struct Entry {
    /// None once its series is forgotten: the slot waits to be taken.
    series: Option<u32>,
    exemplar: Exemplar,
    /// The series' next newer entry.
    next: u32,
}

/// A series' first and last entries.
#[derive(Debug, Clone, Copy)]
struct Span {
    oldest: u32,
    newest: u32,
}

/// What `/metrics` shows of the ring (upstream's `prometheus_tsdb_exemplar_*` gauges).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ExemplarStats {
    pub capacity: usize,
    pub stored: usize,
    pub series: usize,
    /// The time (ms) of the exemplar the next one overwrites (or of the first, before the
    /// ring is full): upstream's "oldest exemplar" figure.
    pub oldest_t: Option<i64>,
}

#[derive(Debug, Default)]
pub struct Exemplars {
    ring: Vec<Entry>,
    capacity: usize,
    /// The slot the next exemplar takes.
    next: usize,
    spans: HashMap<u32, Span>,
    /// Entries of series still held.
    stored: usize,
}

/// Slots are `u32`s, [`NONE`] excluded.
const MAX_CAPACITY: usize = NONE as usize - 1;

impl Exemplars {
    /// A ring of `capacity` entries (0: exemplars are not kept).
    pub fn new(capacity: usize) -> Exemplars {
        Exemplars { capacity: capacity.min(MAX_CAPACITY), ..Default::default() }
    }

    /// Keeps a copy of `e` as series `series`' newest exemplar. As upstream 3.x (without an
    /// out-of-order window), exemplars of one series come in order of time, then of value,
    /// then of label hash, so that several at one time (a native histogram's buckets) are
    /// kept once each.
    pub fn add(&mut self, series: u32, e: &Exemplar) -> Result<(), ExemplarError> {
        if self.capacity == 0 {
            return Err(ExemplarError::Disabled);
        }
        if exemplar_label_chars(&e.labels) > EXEMPLAR_MAX_LABEL_CHARS {
            return Err(ExemplarError::TooLong);
        }
        if let Some(span) = self.spans.get(&series) {
            let newest = &self.ring[span.newest as usize].exemplar;
            if newest.same_as(e) {
                return Err(ExemplarError::Duplicate);
            }
            let key = |x: &Exemplar| (x.t, x.value, x.labels.hash());
            if key(e).partial_cmp(&key(newest)) != Some(std::cmp::Ordering::Greater) {
                return Err(ExemplarError::OutOfOrder);
            }
        }
        let slot = self.next;
        let entry = Entry { series: Some(series), exemplar: e.clone(), next: NONE };
        if slot < self.ring.len() {
            self.evict(slot);
            self.ring[slot] = entry;
        } else {
            self.ring.push(entry);
        }
        let slot = slot as u32;
        match self.spans.get_mut(&series) {
            Some(span) => {
                self.ring[span.newest as usize].next = slot;
                span.newest = slot;
            }
            None => {
                self.spans.insert(series, Span { oldest: slot, newest: slot });
            }
        }
        self.next = (self.next + 1) % self.capacity;
        self.stored += 1;
        Ok(())
    }

    /// Lets the entry in `slot` go: it is its series' oldest, unless the series is forgotten.
    fn evict(&mut self, slot: usize) {
        let entry = &self.ring[slot];
        let (Some(series), next) = (entry.series, entry.next) else { return };
        let Some(span) = self.spans.get_mut(&series) else { return };
        debug_assert_eq!(span.oldest as usize, slot);
        self.stored -= 1;
        if next == NONE {
            self.spans.remove(&series);
        } else {
            span.oldest = next;
        }
    }

    /// Series `series`' exemplars in `[mint, maxt]`, oldest first.
    pub fn of(&self, series: u32, mint: i64, maxt: i64) -> Vec<Exemplar> {
        let mut out = Vec::new();
        let mut at = self.spans.get(&series).map_or(NONE, |s| s.oldest);
        while at != NONE {
            let entry = &self.ring[at as usize];
            if entry.exemplar.t > maxt {
                break;
            }
            if entry.exemplar.t >= mint {
                out.push(entry.exemplar.clone());
            }
            at = entry.next;
        }
        out
    }

    /// Every exemplar held with its series, oldest first: the order a copy (a checkpoint, a
    /// snapshot, a resize) adds them back in, so that the oldest still go first.
    pub fn in_order(&self) -> impl Iterator<Item = (u32, &Exemplar)> {
        // The slots from `next` on were written before the ring wrapped.
        let (newer, older) = self.ring.split_at(self.next.min(self.ring.len()));
        older.iter().chain(newer).filter_map(|e| Some((e.series?, &e.exemplar)))
    }

    /// Whether series `series` has exemplars.
    pub fn has(&self, series: u32) -> bool {
        self.spans.contains_key(&series)
    }

    /// Drops series `series`' exemplars (the head forgot it); their slots are taken in turn.
    pub fn forget(&mut self, series: u32) {
        let mut at = self.spans.remove(&series).map_or(NONE, |s| s.oldest);
        while at != NONE {
            let entry = &mut self.ring[at as usize];
            entry.series = None;
            self.stored -= 1;
            at = std::mem::replace(&mut entry.next, NONE);
        }
    }

    /// Changes the capacity, keeping the newest exemplars that fit (a reload).
    pub fn resize(&mut self, capacity: usize) {
        if capacity.min(MAX_CAPACITY) == self.capacity {
            return;
        }
        let old = std::mem::replace(self, Exemplars::new(capacity));
        let dropped = old.stored.saturating_sub(self.capacity);
        for (series, e) in old.in_order().skip(dropped) {
            let _ = self.add(series, e);
        }
    }

    pub fn stats(&self) -> ExemplarStats {
        let oldest = if self.ring.len() == self.capacity { self.next } else { 0 };
        ExemplarStats {
            capacity: self.capacity,
            stored: self.stored,
            series: self.spans.len(),
            oldest_t: self.ring.get(oldest).map(|e| e.exemplar.t),
        }
    }
}

#[cfg(test)]
mod tests {
    use pyrite_core::labels::Labels;

    use super::*;

    fn ex(trace: &str, value: f64, t: i64) -> Exemplar {
        Exemplar { labels: Labels::from_pairs([("trace_id", trace)]), value, t, has_ts: true }
    }

    fn times(r: &Exemplars, series: u32) -> Vec<i64> {
        r.of(series, i64::MIN, i64::MAX).iter().map(|e| e.t).collect()
    }

    #[test]
    fn the_newest_overwrite_the_oldest_across_series() {
        let mut r = Exemplars::new(4);
        for t in 0..3 {
            r.add(1, &ex("a", 1.0, t)).unwrap();
        }
        r.add(2, &ex("b", 1.0, 10)).unwrap();
        r.add(2, &ex("b", 2.0, 11)).unwrap(); // takes series 1's oldest slot
        assert_eq!(times(&r, 1), [1, 2]);
        assert_eq!(times(&r, 2), [10, 11]);
        r.add(2, &ex("b", 3.0, 12)).unwrap();
        r.add(2, &ex("b", 4.0, 13)).unwrap();
        assert_eq!(times(&r, 1), Vec::<i64>::new());
        assert!(!r.has(1), "a series whose last exemplar went has none");
        assert_eq!(times(&r, 2), [10, 11, 12, 13]);
        assert_eq!(r.of(2, 11, 12).len(), 2, "only those in the range");
        let s = r.stats();
        assert_eq!((s.stored, s.series, s.oldest_t), (4, 1, Some(10)));
    }

    #[test]
    fn duplicates_and_out_of_order_exemplars_are_refused() {
        let mut r = Exemplars::new(8);
        r.add(1, &ex("a", 1.0, 5)).unwrap();
        assert_eq!(r.add(1, &ex("a", 1.0, 5)), Err(ExemplarError::Duplicate));
        assert_eq!(r.add(1, &ex("a", 1.0, 4)), Err(ExemplarError::OutOfOrder));
        r.add(1, &ex("b", 2.0, 5)).unwrap(); // the same time, a larger value
        assert_eq!(r.add(1, &ex("c", 1.5, 5)), Err(ExemplarError::OutOfOrder), "the same time, a smaller value");
        r.add(2, &ex("a", 1.0, 1)).unwrap(); // each series has its own order
        assert_eq!(r.add(3, &ex(&"x".repeat(121), 1.0, 1)), Err(ExemplarError::TooLong));
        assert_eq!(Exemplars::new(0).add(1, &ex("a", 1.0, 1)), Err(ExemplarError::Disabled));
        assert_eq!(r.stats().stored, 3);
    }

    #[test]
    fn forgetting_and_resizing_keep_the_newest() {
        let mut r = Exemplars::new(6);
        for t in 0..5 {
            r.add(t as u32 % 2, &ex("a", 1.0, t)).unwrap();
        }
        r.forget(0);
        assert_eq!(r.stats().stored, 2);
        r.add(2, &ex("a", 1.0, 9)).unwrap();
        r.add(2, &ex("a", 2.0, 9)).unwrap(); // wraps over a forgotten entry
        r.resize(2);
        assert_eq!((times(&r, 1), times(&r, 2)), (vec![], vec![9, 9]));
        r.resize(10);
        r.add(1, &ex("a", 1.0, 20)).unwrap();
        assert_eq!(times(&r, 2), [9, 9]);
        assert_eq!(r.stats().stored, 3);
        // A forgotten series' slots are taken without touching a series of the same id since.
        let mut r = Exemplars::new(3);
        r.add(7, &ex("a", 1.0, 1)).unwrap();
        r.add(7, &ex("a", 1.0, 2)).unwrap();
        r.forget(7);
        for t in 3..8 {
            r.add(7, &ex("a", 1.0, t)).unwrap();
        }
        assert_eq!((times(&r, 7), r.stats().stored), (vec![5, 6, 7], 3));
    }
}
