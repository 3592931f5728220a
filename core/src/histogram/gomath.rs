//! Go's `math.Log2`, `math.Exp2` and `math.Ldexp` as they compute on amd64 (FreeBSD-derived
//! polynomials, not the platform libm), so that exponential interpolation in quantiles and
//! fractions rounds exactly as upstream Prometheus does: `histogram_quantile(0.5, …)` of a
//! (1,2] bucket is Go's 1.414213562373095, not the correctly rounded √2. The constants are
//! written as Go writes them (each is exactly the double it names).
#![allow(clippy::excessive_precision)]

const LN2_HI: f64 = 6.93147180369123816490e-01;
const LN2_LO: f64 = 1.90821492927058770002e-10;

/// `frac · 2^exp` with a single rounding; ±0, ±Inf and NaN `frac` are returned as they are.
pub(super) fn ldexp(frac: f64, exp: i64) -> f64 {
    if frac == 0.0 || !frac.is_finite() {
        return frac;
    }
    // Normalise subnormals so the exponent field is meaningful.
    let (frac, mut exp) =
        if frac.abs() < f64::MIN_POSITIVE { (frac * (1u64 << 52) as f64, exp - 52) } else { (frac, exp) };
    let bits = frac.to_bits();
    exp += ((bits >> 52) & 0x7ff) as i64 - 1023;
    if exp < -1075 {
        return 0.0f64.copysign(frac);
    }
    if exp > 1023 {
        return f64::INFINITY.copysign(frac);
    }
    let (exp, scale) = if exp < -1022 { (exp + 53, 1.0 / (1u64 << 53) as f64) } else { (exp, 1.0) };
    let bits = (bits & !(0x7ff << 52)) | (((exp + 1023) as u64) << 52);
    scale * f64::from_bits(bits)
}

/// Go's `math.Frexp`: `x = frac · 2^exp` with `|frac|` in [0.5, 1); ±0, ±Inf, NaN as `(x, 0)`.
fn frexp(x: f64) -> (f64, i64) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let (x, mut exp) = if x.abs() < f64::MIN_POSITIVE { (x * (1u64 << 52) as f64, -52) } else { (x, 0) };
    let bits = x.to_bits();
    exp += ((bits >> 52) & 0x7ff) as i64 - 1022;
    (f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52)), exp)
}

/// Go's amd64 `math.Log` (its assembly routine) for `x` in [0.5, 1).
fn log_of_fraction(x: f64) -> f64 {
    const L1: f64 = 6.666666666666735130e-01;
    const L2: f64 = 3.999999999940941908e-01;
    const L3: f64 = 2.857142874366239149e-01;
    const L4: f64 = 2.222219843214978396e-01;
    const L5: f64 = 1.818357216161805012e-01;
    const L6: f64 = 1.531383769920937332e-01;
    const L7: f64 = 1.479819860511658591e-01;
    let (f1, k) = if x <= std::f64::consts::FRAC_1_SQRT_2 { (x * 2.0, -1.0) } else { (x, 0.0) };
    let f = f1 - 1.0;
    let s = f / (2.0 + f);
    let s2 = s * s;
    let s4 = s2 * s2;
    let t1 = s2 * (L1 + s4 * (L3 + s4 * (L5 + s4 * L7)));
    let t2 = s4 * (L2 + s4 * (L4 + s4 * L6));
    let r = t1 + t2;
    let hfsq = 0.5 * f * f;
    k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)
}

/// Go's `math.Log2`: exact for powers of two.
pub(super) fn log2(x: f64) -> f64 {
    if x < 0.0 || x.is_nan() {
        return f64::NAN;
    }
    let (frac, exp) = frexp(x);
    if frac == 0.5 {
        return (exp - 1) as f64;
    }
    if frac == 0.0 {
        return f64::NEG_INFINITY;
    }
    if frac.is_infinite() {
        return frac;
    }
    log_of_fraction(frac) * std::f64::consts::LOG2_E + exp as f64
}

/// Go's `math.Exp2` (pure Go on amd64).
pub(super) fn exp2(x: f64) -> f64 {
    const P1: f64 = 1.66666666666666657415e-01;
    const P2: f64 = -2.77777777770155933842e-03;
    const P3: f64 = 6.61375632143793436117e-05;
    const P4: f64 = -1.65339022054652515390e-06;
    const P5: f64 = 4.13813679705723846039e-08;
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x > 1023.9999999999999 {
        return f64::INFINITY;
    }
    if x < -1.0740e+03 {
        return 0.0;
    }
    // x = k + t with |t| ≤ 1/2; 2^t = e^r with r = t·ln 2 = hi − lo.
    let k = if x > 0.0 {
        (x + 0.5).trunc()
    } else if x < 0.0 {
        (x - 0.5).trunc()
    } else {
        0.0
    };
    let t = x - k;
    let hi = t * LN2_HI;
    let lo = -t * LN2_LO;
    let r = hi - lo;
    let tt = r * r;
    let c = r - tt * (P1 + tt * (P2 + tt * (P3 + tt * (P4 + tt * P5))));
    let y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi);
    ldexp(y, k as i64)
}

#[cfg(test)]
#[allow(clippy::approx_constant)] // Go's results, not the std constants
mod tests {
    use super::*;

    #[test]
    fn rounds_like_go() {
        // Values Go prints for these (upstream's test expectations).
        assert_eq!(exp2(0.5), 1.414213562373095);
        assert_eq!(exp2(-0.5), 0.7071067811865475);
        assert_eq!(exp2(3.0), 8.0);
        assert_eq!(exp2(-1074.0), f64::from_bits(1));
        assert_eq!(exp2(1024.0), f64::INFINITY);
        assert_eq!(exp2(f64::NEG_INFINITY), 0.0);
        assert_eq!(log2(8.0), 3.0);
        assert_eq!(log2(0.25), -2.0);
        assert_eq!(log2(f64::from_bits(1)), -1074.0);
        assert_eq!(log2(0.0), f64::NEG_INFINITY);
        assert_eq!(log2(f64::INFINITY), f64::INFINITY);
        assert!(log2(-1.0).is_nan());
        assert!((log2(3.0) - 1.584962500721156).abs() < 1e-15);
    }

    #[test]
    fn ldexp_scales_with_one_rounding() {
        assert_eq!(ldexp(0.75, 3), 6.0);
        assert_eq!(ldexp(-0.75, 3), -6.0);
        assert_eq!(ldexp(3.0, -2), 0.75);
        assert_eq!(ldexp(0.5, 1025), f64::INFINITY);
        assert_eq!(ldexp(0.75, -1074), f64::from_bits(1)); // ¾ of the smallest step rounds up
        assert_eq!(ldexp(0.5, -1075), 0.0);
        assert_eq!(ldexp(f64::from_bits(1), 1074), 1.0);
        assert_eq!(ldexp(-0.0, 5).to_bits(), (-0.0f64).to_bits());
    }
}
