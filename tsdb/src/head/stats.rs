//! What `/api/v1/status/tsdb` reports of a head: its series, chunks, time range and the series
//! per label pair, read a slice at a time ([`StatsReading`]) so that a head of hundreds of
//! thousands of series and pairs does not hold its shard for the third of a second that reading
//! it in one go took.

use std::collections::HashMap;

use super::Head;

/// What `/api/v1/status/tsdb` reports of a head (one shard's; [`HeadStats::merge`] adds up
/// several).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeadStats {
    pub series: u64,
    pub chunks: u64,
    /// Oldest and newest sample times, if there are samples.
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    /// Series per label name and value.
    pub pairs: HashMap<String, HashMap<String, u64>>,
}

impl HeadStats {
    pub fn merge(&mut self, other: HeadStats) {
        self.series += other.series;
        self.chunks += other.chunks;
        self.min_time = self.min_time.into_iter().chain(other.min_time).min();
        self.max_time = self.max_time.max(other.max_time);
        for (name, values) in other.pairs {
            let mine = self.pairs.entry(name).or_default();
            for (value, n) in values {
                *mine.entry(value).or_default() += n;
            }
        }
    }
}

/// A head's stats read in steps, between which the head may change: its series by position,
/// then its label pairs a name at a time, a slice of the name's values per step. A series
/// moved or removed between steps may be missed or counted twice, and a pair added after its
/// name was read is missed; a pair gone by the time its slice comes is skipped. The series'
/// native-histogram chunks (kept apart, and few) are read at the start.
pub struct StatsReading {
    stats: HeadStats,
    /// Position of the next series to read.
    next_series: usize,
    /// Names (symbol ids) whose values are still to read.
    names: Vec<u32>,
    /// The name being read and its values left.
    current: Option<(u32, Vec<u32>)>,
}

impl StatsReading {
    pub fn start(head: &Head) -> StatsReading {
        let mut stats = HeadStats::default();
        for hs in head.histograms.values() {
            stats.chunks += hs.num_chunks() as u64;
            stats.min_time = stats.min_time.into_iter().chain(hs.min_time()).min();
            stats.max_time = stats.max_time.max(hs.max_time());
        }
        StatsReading { stats, next_series: 0, names: head.postings.names(), current: None }
    }

    /// Reads about `budget` more series or pairs; true once everything is read.
    pub fn step(&mut self, head: &Head, budget: usize) -> bool {
        let series = head.series.as_slice();
        if let Some(slice) = series.get(self.next_series..) {
            if !slice.is_empty() {
                let slice = &slice[..slice.len().min(budget)];
                self.next_series += slice.len();
                let stats = &mut self.stats;
                for s in slice {
                    stats.series += 1;
                    stats.chunks += s.num_chunks() as u64;
                    stats.min_time = stats.min_time.into_iter().chain(s.min_time()).min();
                    stats.max_time = stats.max_time.max(s.max_time());
                }
                return false;
            }
        }
        let (name, values) = match self.current.as_mut() {
            Some((name, values)) if !values.is_empty() => (*name, values),
            _ => {
                let Some(name) = self.names.pop() else { return true };
                (name, &mut self.current.insert((name, head.postings.values_of(name))).1)
            }
        };
        let counts = self.stats.pairs.entry(head.symbols.resolve(name).to_string()).or_default();
        let from = values.len().saturating_sub(budget);
        for value in values.drain(from..) {
            if let Some(n) = head.postings.count(name, value) {
                counts.insert(head.symbols.resolve(value).to_string(), n);
            }
        }
        false
    }

    pub fn finish(self) -> HeadStats {
        self.stats
    }
}

#[cfg(test)]
pub(super) mod tests {
    use pyrite_core::labels::Matcher;

    use super::super::tests::up;
    use super::*;

    /// A head's stats read `budget` series or pairs a step, counting the steps.
    pub(in crate::head) fn read(head: &Head, budget: usize) -> (HeadStats, usize) {
        let mut reading = StatsReading::start(head);
        let mut steps = 1;
        while !reading.step(head, budget) {
            steps += 1;
        }
        (reading.finish(), steps)
    }

    #[test]
    fn stats_read_in_slices_as_in_one_go_and_skip_what_went_between() {
        let mut h = Head::new();
        for i in 0..100 {
            let (id, _) = h.get_or_create(&up(&format!("job-{i}")));
            h.append(id, i * 10, 1.0).unwrap();
        }
        let (whole, steps) = read(&h, usize::MAX);
        // Series in one step, then a name (__name__, job) per step, then the last.
        assert_eq!(steps, 4);
        let (sliced, steps) = read(&h, 7);
        assert_eq!(sliced, whole);
        // 100 series, 1 value of __name__, 100 of job, 7 a step; then the last step.
        assert_eq!(steps, 15 + 1 + 15 + 1);
        assert_eq!((whole.series, whole.pairs["job"].len()), (100, 100));

        // A pair gone between its name's steps is skipped, not counted as empty.
        let mut reading = StatsReading::start(&h);
        while !matches!(&reading.current, Some((_, left)) if !left.is_empty()) {
            reading.step(&h, 10);
        }
        let (name, values) = reading.current.clone().unwrap();
        let gone = *values.first().unwrap();
        let series = h.postings.select(&h.symbols, &[Matcher::equal(h.symbols.resolve(name), h.symbols.resolve(gone))]);
        let labels: Vec<(u32, u32)> = vec![(name, gone)];
        h.postings.remove(series.min().unwrap(), &labels);
        while !reading.step(&h, 10) {}
        let read = reading.finish();
        let of_name = &read.pairs[h.symbols.resolve(name)];
        assert!(!of_name.contains_key(h.symbols.resolve(gone)), "{of_name:?}");
    }
}
