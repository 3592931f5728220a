//! Exactly rounded floating-point summation (Shewchuk's algorithm, as in Python's `fsum`).
//!
//! A sum is kept as a short list of non-overlapping partials whose exact total is the true sum
//! of everything added; the result is that total rounded once. Because the exact total does
//! not depend on the order of additions, partial sums from any number of shards merge into the
//! same answer: a query gives identical results on 1 and on N shards.

/// An exact running sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExactSum {
    partials: Vec<f64>,
    /// Sum of the non-finite inputs (0 when there were none): they dominate the result.
    special: f64,
    /// Whether partials hold values times [`SCALE`], which sums near `f64::MAX` switch to so that
    /// no partial overflows (scaling by a power of two is exact).
    scaled: bool,
}

/// 2^-64.
const SCALE: f64 = 1.0 / 18_446_744_073_709_551_616.0;
/// Above this a partial could overflow when added to.
const SAFE: f64 = f64::MAX / 4.0;

impl ExactSum {
    pub fn add(&mut self, value: f64) {
        if !value.is_finite() {
            self.special += value;
            return;
        }
        if !self.scaled && (value.abs() > SAFE || self.partials.last().is_some_and(|p| p.abs() > SAFE)) {
            self.scale();
        }
        self.add_partial(if self.scaled { value * SCALE } else { value });
    }

    /// Switches to scaled partials.
    fn scale(&mut self) {
        self.scaled = true;
        self.partials.iter_mut().for_each(|p| *p *= SCALE);
    }

    /// Shewchuk's step: adds `x` to the non-overlapping partials, keeping them exact.
    fn add_partial(&mut self, mut x: f64) {
        let mut kept = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        self.partials.truncate(kept);
        self.partials.push(x);
    }

    /// Adds the exact product `a * b` (split into two doubles with a fused multiply-add).
    pub fn add_product(&mut self, a: f64, b: f64) {
        let hi = a * b;
        if !hi.is_finite() {
            self.add(hi);
            return;
        }
        self.add(hi);
        self.add(a.mul_add(b, -hi));
    }

    /// The partials whose exact total is the sum, unless the sum is scaled (near `f64::MAX`).
    pub fn unscaled_partials(&self) -> Option<&[f64]> {
        (!self.scaled).then_some(&self.partials[..])
    }

    pub fn merge(&mut self, other: &ExactSum) {
        self.special += other.special;
        if other.scaled && !self.scaled {
            self.scale();
        }
        for &p in &other.partials {
            if self.scaled && !other.scaled {
                self.add_partial(p * SCALE);
            } else if !self.scaled && p.abs() > SAFE {
                self.scale();
                self.add_partial(p * SCALE);
            } else {
                self.add_partial(p);
            }
        }
    }

    /// The exact sum divided by `n`, correctly rounded at each of the two steps; finite even
    /// where the sum itself would overflow.
    pub fn mean(&self, n: f64) -> f64 {
        if self.special != 0.0 || self.special.is_nan() {
            return self.special;
        }
        let total = self.rounded_partials();
        if self.scaled {
            total / n / SCALE
        } else {
            total / n
        }
    }

    /// The exact sum, correctly rounded (round half to even).
    pub fn value(&self) -> f64 {
        if self.special != 0.0 || self.special.is_nan() {
            return self.special;
        }
        let total = self.rounded_partials();
        if self.scaled {
            total / SCALE
        } else {
            total
        }
    }

    /// The partials' exact total, rounded once (Python's `fsum` ending).
    fn rounded_partials(&self) -> f64 {
        let p = &self.partials;
        let mut n = p.len();
        if n == 0 {
            return 0.0;
        }
        n -= 1;
        let mut hi = p[n];
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            let y = p[n - 1];
            n -= 1;
            hi = x + y;
            lo = y - (hi - x);
            if lo != 0.0 {
                break;
            }
        }
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
        hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(values: &[f64]) -> f64 {
        let mut s = ExactSum::default();
        values.iter().for_each(|&v| s.add(v));
        s.value()
    }

    #[test]
    fn exact_where_naive_summation_is_not() {
        assert_eq!(sum(&[0.1; 10]), 1.0);
        assert_eq!(sum(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(sum(&[]), 0.0);
        assert_eq!(sum(&[1.0, f64::INFINITY]), f64::INFINITY);
        assert!(sum(&[f64::INFINITY, f64::NEG_INFINITY]).is_nan());
        assert!(sum(&[1.0, f64::NAN]).is_nan());
    }

    #[test]
    fn sums_near_the_largest_double_do_not_overflow() {
        let big = f64::MAX * 0.9;
        let mut s = ExactSum::default();
        [big, big, -big, big].iter().for_each(|&v| s.add(v));
        assert_eq!(s.mean(4.0), big / 2.0);
        assert_eq!(s.value(), f64::INFINITY, "the sum itself is beyond f64");
        let mut z = ExactSum::default();
        [big, big, -big, -big, 1.0].iter().for_each(|&v| z.add(v));
        assert_eq!(z.value(), 1.0);
    }

    #[test]
    fn products_are_exact() {
        let mut s = ExactSum::default();
        let a = 1.0 + f64::EPSILON;
        s.add_product(a, a);
        s.add(-1.0);
        s.add(-2.0 * f64::EPSILON);
        assert_eq!(s.value(), f64::EPSILON * f64::EPSILON);
    }

    #[test]
    fn merging_in_any_split_gives_the_same_result() {
        let values: Vec<f64> = (1..200).map(|i| 1.0 / i as f64 * if i % 3 == 0 { -1e5 } else { 1.0 }).collect();
        let whole = sum(&values);
        for split in [1, 7, 50, 198] {
            let (a, b) = values.split_at(split);
            let mut left = ExactSum::default();
            a.iter().for_each(|&v| left.add(v));
            let mut right = ExactSum::default();
            b.iter().for_each(|&v| right.add(v));
            right.merge(&left);
            assert_eq!(right.value().to_bits(), whole.to_bits(), "split at {split}");
        }
    }
}
