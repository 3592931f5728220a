//! Compensated (Kahan–Neumaier) summation steps, as upstream's `kahansum.Inc` takes them, for
//! the functions and histogram code that must round exactly like upstream.

/// Adds `inc` to `sum` with compensation `c`; returns the new sum and compensation. The
/// compensation is reset when the sum overflows.
pub fn inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compensation_keeps_what_the_sum_loses() {
        let (s, c) = inc(1.0, 1e100, 0.0);
        let (s, c) = inc(-1e100, s, c);
        assert_eq!((s, c), (0.0, 1.0));
        assert_eq!(inc(1.0, f64::MAX, 5.0).1, 5.0 + 1.0);
        assert_eq!(inc(f64::MAX, f64::MAX, 5.0), (f64::INFINITY, 0.0));
    }
}
