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

/// A head's stats read in steps, between which the head may change: first its series, by
/// position up to where they ended when the reading started, and the native-histogram chunks
/// of those that have any; then its label pairs, name after name, about `budget` of them a
/// step. A series removed between steps may be missed (the last one moves into its place);
/// a name or pair added after its turn is missed, one gone by its turn skipped.
pub struct StatsReading {
    stats: HeadStats,
    /// Position of the next series to read, and where the series ended at the start.
    next_series: usize,
    series_end: usize,
    /// The series with native-histogram chunks still to read.
    histograms: Vec<u32>,
    /// Names (symbol ids) whose values are still to read.
    names: Vec<u32>,
    /// The name being read and its values left.
    current: Option<(u32, Vec<u32>)>,
}

impl StatsReading {
    pub fn start(head: &Head) -> StatsReading {
        StatsReading {
            stats: HeadStats::default(),
            next_series: 0,
            series_end: head.series.len(),
            histograms: head.histograms.keys().copied().collect(),
            names: head.postings.names(),
            current: None,
        }
    }

    /// Reads about `budget` (at least one) more series or pairs; true once everything is read.
    pub fn step(&mut self, head: &Head, budget: usize) -> bool {
        let budget = budget.max(1);
        let stats = &mut self.stats;
        let mut time_range = |min: Option<i64>, max: Option<i64>| {
            stats.min_time = stats.min_time.into_iter().chain(min).min();
            stats.max_time = stats.max_time.max(max);
        };
        let end = self.series_end.min(head.series.len());
        if self.next_series < end {
            let slice = &head.series.as_slice()[self.next_series..end.min(self.next_series.saturating_add(budget))];
            self.next_series += slice.len();
            for s in slice {
                time_range(s.min_time(), s.max_time());
                stats.series += 1;
                stats.chunks += s.num_chunks() as u64;
            }
            return false;
        }
        if !self.histograms.is_empty() {
            let from = self.histograms.len().saturating_sub(budget);
            for id in self.histograms.drain(from..) {
                if let Some(hs) = head.histograms.get(&id) {
                    time_range(hs.min_time(), hs.max_time());
                    stats.chunks += hs.num_chunks() as u64;
                }
            }
            return false;
        }
        let mut left = budget;
        while left > 0 {
            let (name, values) = match self.current.as_mut() {
                Some((name, values)) if !values.is_empty() => (*name, values),
                _ => {
                    let Some(name) = self.names.pop() else { return true };
                    (name, &mut self.current.insert((name, head.postings.values_of(name))).1)
                }
            };
            let from = values.len().saturating_sub(left);
            left -= values.len() - from;
            let mut counts = values
                .drain(from..)
                .filter_map(|value| {
                    let n = head.postings.count(name, value)?;
                    Some((head.symbols.resolve(value).to_string(), n))
                })
                .peekable();
            if counts.peek().is_some() {
                self.stats.pairs.entry(head.symbols.resolve(name).to_string()).or_default().extend(counts);
            }
            // A name whose values all went still takes a turn.
            left = left.saturating_sub(1);
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
        // The series in one step, then every pair.
        assert_eq!(steps, 2);
        let (sliced, steps) = read(&h, 7);
        assert_eq!(sliced, whole);
        // 100 series, then 101 values of two names, 7 a step.
        assert!((30..=33).contains(&steps), "{steps} steps");
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

        // Series created between every two steps do not keep the reading from its pairs.
        let mut reading = StatsReading::start(&h);
        let mut steps = 0;
        while !reading.step(&h, 10) {
            h.get_or_create(&up(&format!("new-{steps}")));
            steps += 1;
            assert!(steps < 100, "the reading does not end while series come");
        }
        assert_eq!(reading.finish().series, 100);
    }
}
