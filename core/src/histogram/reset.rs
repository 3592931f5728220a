//! Counter-reset detection between consecutive samples of a counter histogram (upstream's
//! `DetectReset`), which `rate`, `increase` and `resets` rely on.

use super::layout::bounds_match;
use super::{Bucket, CounterResetHint, FloatHistogram};

impl FloatHistogram {
    /// Whether this sample follows `previous` only through a counter reset: the hint says so
    /// (a "not reset" hint says the opposite), the count or zero count dropped, the resolution
    /// rose, the zero threshold shrank or landed inside a populated bucket, or some bucket lost
    /// observations or vanished while populated (compared at the lower of the two schemas).
    /// Gauge histograms are treated as counters here, as upstream does.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::CounterReset => return true,
            CounterResetHint::NotCounterReset => return false,
            CounterResetHint::Unknown | CounterResetHint::Gauge => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() {
            if !previous.uses_custom_buckets() {
                return true;
            }
            if !bounds_match(&self.custom_values, &previous.custom_values) {
                return self.custom_decrease(previous);
            }
        }
        if self.schema > previous.schema || self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let (previous_zero_count, threshold) = previous.zero_count_for_larger_threshold(self.zero_threshold);
        if threshold != self.zero_threshold || self.zero_count < previous_zero_count {
            return true;
        }
        [true, false].into_iter().any(|positive| {
            let current = self.side_pairs(positive, self.zero_threshold, self.schema);
            let before = previous.side_pairs(positive, self.zero_threshold, self.schema);
            side_decreased(&current, &before)
        })
    }

    /// For custom bounds that differ: whether the cumulative count up to any bound both share
    /// (including +Inf) went down, counting only buckets not yet counted at an earlier one.
    fn custom_decrease(&self, previous: &FloatHistogram) -> bool {
        let current: Vec<Bucket> = self.positive_side().collect();
        let before: Vec<Bucket> = previous.positive_side().collect();
        let (mut cur_pos, mut prev_pos) = (0, 0);
        let sum_up_to = |buckets: &[Bucket], pos: &mut usize, bound: f64| {
            let mut sum = 0.0;
            while let Some(b) = buckets.get(*pos).filter(|b| b.upper <= bound) {
                sum += b.count;
                *pos += 1;
            }
            sum
        };
        let bound_at = |bounds: &[f64], i: usize| bounds.get(i).copied().unwrap_or(f64::INFINITY);
        let (cur_bounds, prev_bounds) = (&self.custom_values, &previous.custom_values);
        let (mut i, mut j) = (0, 0);
        while i <= cur_bounds.len() && j <= prev_bounds.len() {
            let (cb, pb) = (bound_at(cur_bounds, i), bound_at(prev_bounds, j));
            if cb == pb {
                if sum_up_to(&current, &mut cur_pos, cb) < sum_up_to(&before, &mut prev_pos, cb) {
                    return true;
                }
                i += 1;
                j += 1;
            } else if cb < pb {
                i += 1;
            } else {
                j += 1;
            }
        }
        false
    }
}

/// Upstream's bucket-wise comparison of one side: a previous bucket that is populated but
/// missing now, or whose count is now smaller, is a reset.
fn side_decreased(current: &[(i32, f64)], previous: &[(i32, f64)]) -> bool {
    let mut cur = current.iter().peekable();
    for &(index, count) in previous {
        while cur.next_if(|(i, _)| *i < index).is_some() {}
        match cur.peek() {
            Some(&&(i, c)) if i == index => {
                if c < count {
                    return true;
                }
            }
            // Ahead of this bucket, or none left: the bucket is gone.
            _ => {
                if count != 0.0 {
                    return true;
                }
            }
        }
    }
    false
}
