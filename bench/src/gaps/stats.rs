//! Scrape gaps from arrival times: the time between consecutive scrapes of each target by one
//! scraper, summarised over a time window.

use std::collections::BTreeMap;

use pyrite_loadgen::arrivals::Arrival;

/// A gap is late when it exceeds the interval by more than this share.
pub const LATE: f64 = 0.1;

/// One scraper's gaps in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct GapStats {
    /// Scrapes that arrived in the window.
    pub scrapes: usize,
    /// Gaps, seconds: median, 99th percentile (nearest rank) and maximum.
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    /// Share of gaps longer than the interval by more than [`LATE`].
    pub late: f64,
}

/// The gaps between consecutive scrapes of each target by `scraper` that end in the window
/// `from_ms..to_ms` (a gap that starts before the window counts, so that a stall is charged to
/// the window in which the late scrape came); None if there is no such gap.
pub fn gap_stats(
    arrivals: &[Arrival],
    scraper: &str,
    window: std::ops::Range<i64>,
    interval_s: f64,
) -> Option<GapStats> {
    let mut by_target: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for a in arrivals.iter().filter(|a| a.scraper == scraper) {
        by_target.entry(a.target).or_default().push(a.at_ms);
    }
    let mut gaps = Vec::new();
    let mut scrapes = 0;
    for times in by_target.values_mut() {
        times.sort_unstable();
        scrapes += times.iter().filter(|t| window.contains(t)).count();
        gaps.extend(times.windows(2).filter(|w| window.contains(&w[1])).map(|w| (w[1] - w[0]) as f64 / 1000.0));
    }
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_by(f64::total_cmp);
    let rank = |q: f64| gaps[((q * gaps.len() as f64).ceil() as usize).clamp(1, gaps.len()) - 1];
    let late = gaps.iter().filter(|&&g| g > interval_s * (1.0 + LATE)).count();
    Some(GapStats {
        scrapes,
        p50: rank(0.5),
        p99: rank(0.99),
        max: gaps[gaps.len() - 1],
        late: late as f64 / gaps.len() as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(target: usize, scraper: &str, seconds: f64) -> Arrival {
        Arrival { target, scraper: scraper.into(), at_ms: (seconds * 1000.0) as i64 }
    }

    #[test]
    fn gaps_per_target_and_scraper_within_the_window() {
        let mut arrivals = Vec::new();
        // Target 0 by Pyrite: every 5 s, one scrape 3 s late (an 8 s gap, then a 2 s one).
        for t in [0.0, 5.0, 10.0, 18.0, 20.0, 25.0] {
            arrivals.push(at(0, "Pyrite", t));
        }
        // Target 1 by Pyrite: on time, listed out of order.
        for t in [21.0, 1.0, 6.0, 16.0, 11.0, 26.0] {
            arrivals.push(at(1, "Pyrite", t));
        }
        // Prometheus stalls for 30 s on target 0; it must not count for Pyrite.
        for t in [0.0, 30.0] {
            arrivals.push(at(0, "Prometheus", t));
        }
        // Window 3..26 s: gaps ending at 5, 10, 18, 20, 25 (target 0) and 6, 11, 16, 21 (target 1).
        let s = gap_stats(&arrivals, "Pyrite", 3_000..26_000, 5.0).unwrap();
        assert_eq!(s.scrapes, 9);
        assert_eq!((s.p50, s.max), (5.0, 8.0));
        assert_eq!(s.p99, 8.0);
        assert!((s.late - 1.0 / 9.0).abs() < 1e-9, "{s:?}");
        // The stall is charged to the window in which the late scrape came.
        let stall = gap_stats(&arrivals, "Prometheus", 20_000..40_000, 5.0).unwrap();
        assert_eq!((stall.scrapes, stall.max, stall.late), (1, 30.0, 1.0));
        assert_eq!(gap_stats(&arrivals, "Prometheus", 0..20_000, 5.0), None);
        assert_eq!(gap_stats(&arrivals, "vm_promscrape", 0..40_000, 5.0), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        // 100 gaps: 1 s to 100 s.
        let mut t = 0.0;
        let mut arrivals = vec![at(0, "Pyrite", 0.0)];
        for g in 1..=100 {
            t += g as f64;
            arrivals.push(at(0, "Pyrite", t));
        }
        let s = gap_stats(&arrivals, "Pyrite", 0..i64::MAX, 50.0).unwrap();
        assert_eq!((s.p50, s.p99, s.max), (50.0, 99.0, 100.0));
        assert!((s.late - 45.0 / 100.0).abs() < 1e-9, "gaps above 55 s: {s:?}");
    }
}
