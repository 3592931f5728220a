//! The latency histograms of the `uniform` profile: what each has observed at a moment, as
//! classic buckets and, with native histograms on, as the buckets of a native histogram.
//!
//! Without native histograms, a histogram observes 10 requests a second spread evenly over
//! its classic buckets (what the profile always served). With them, its observations fall
//! into [`CLASSES`] latency classes: class 0 is exactly 0 (the zero bucket), class `k` is
//! `0.002 · 1.6^k` seconds and starts `2k` seconds after the start, then counts `2(k + 1)`
//! observations a second. Every count is a whole number that never falls, so rates are exact,
//! and native buckets appear one by one over the first 22 seconds. Both formats show the same
//! observations: the classic buckets count the classes at or under each bound.

/// The classic buckets' upper bounds, +Inf last.
pub const BUCKETS: [&str; 10] = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];
const BOUNDS: [f64; 9] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Latency classes of the native-histogram model.
pub const CLASSES: usize = 12;

/// The native histograms' schema: 8 buckets per power of two.
pub const SCHEMA: i32 = 3;

/// client_golang's default zero threshold (2⁻¹²⁸).
pub const ZERO_THRESHOLD: f64 = 2.938_735_877_055_719e-39;

/// What histogram `h` has observed, `elapsed` seconds after the start.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub sum: f64,
    /// Cumulative counts at [`BUCKETS`] but +Inf.
    pub classic: [u64; 9],
    /// With native histograms: the zero bucket's count and each populated bucket (index,
    /// count) of schema [`SCHEMA`], ascending.
    pub native: Option<(u64, Vec<(i32, u64)>)>,
}

/// Class `k`'s latency in seconds.
fn class_value(k: usize) -> f64 {
    if k == 0 {
        0.0
    } else {
        0.002 * 1.6f64.powi(k as i32)
    }
}

/// The schema-3 bucket of a positive value: the smallest `i` with `v <= 2^(i/8)`.
fn bucket_index(v: f64) -> i32 {
    (v.log2() * f64::from(1 << SCHEMA)).ceil() as i32
}

impl Latency {
    pub fn at(h: usize, elapsed: f64, native: bool) -> Latency {
        if !native {
            let count = (10.0 * elapsed).floor() as u64;
            let classic = std::array::from_fn(|j| count * (j as u64 + 1) / BUCKETS.len() as u64);
            return Latency { count, sum: count as f64 * 0.12, classic, native: None };
        }
        let weight = 1 + (h % 3) as u64;
        let counts: [u64; CLASSES] = std::array::from_fn(|k| {
            ((elapsed - 2.0 * k as f64).max(0.0) * 2.0 * (k + 1) as f64).floor() as u64 * weight
        });
        let count = counts.iter().sum();
        let sum = counts.iter().enumerate().map(|(k, &c)| c as f64 * class_value(k)).sum();
        let classic = BOUNDS.map(|le| (0..CLASSES).filter(|&k| class_value(k) <= le).map(|k| counts[k]).sum());
        let mut buckets: Vec<(i32, u64)> = Vec::new();
        for (k, &c) in counts.iter().enumerate().skip(1).filter(|(_, &c)| c > 0) {
            let index = bucket_index(class_value(k));
            match buckets.last_mut() {
                Some(last) if last.0 == index => last.1 += c,
                _ => buckets.push((index, c)),
            }
        }
        Latency { count, sum, classic, native: Some((counts[0], buckets)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_and_never_fall() {
        let mut previous = Latency::at(1, 0.0, true);
        assert_eq!(previous.count, 0);
        for step in 1..400 {
            let now = Latency::at(1, step as f64 * 0.1, true);
            let (zero, buckets) = now.native.clone().unwrap();
            assert_eq!(zero + buckets.iter().map(|b| b.1).sum::<u64>(), now.count);
            assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(now.count >= previous.count && now.classic.iter().zip(&previous.classic).all(|(a, b)| a >= b));
            assert!(now.classic.windows(2).all(|w| w[0] <= w[1]) && now.classic[8] <= now.count);
            previous = now;
        }
        assert_eq!(previous.native.unwrap().1.len(), CLASSES - 1, "every class has its bucket");
        let text = Latency::at(0, 12.34, false);
        assert_eq!((text.count, text.classic[0], text.classic[8], text.native), (123, 12, 110, None));
    }
}
