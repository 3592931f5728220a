//! Go's `strconv` parsing where upstream reads text with it (boolean labels and request
//! parameters), so that Pyrite takes and refuses the same spellings.

/// A boolean as Go's `strconv.ParseBool` reads it; None for any other text.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A float as Go's `strconv.ParseFloat(s, 64)` reads it: Rust's decimal syntax, infinities and
/// NaN, plus Go's digit separators (`1_000`, where Go's syntax puts them) and hexadecimal
/// floats (`0x1p-2`, the exponent required). None for any other text.
pub fn parse_float(s: &str) -> Option<f64> {
    // Rust's parser takes `inf`, `infinity` and `nan` in any case, as Go's does.
    if s.contains('_') {
        return underscores_separate_digits(s).then(|| parse_float(&s.replace('_', ""))).flatten();
    }
    let (negative, unsigned) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    match unsigned.get(..2) {
        Some("0x" | "0X") => hex_float(&unsigned[2..]).map(|v| if negative { -v } else { v }),
        _ => s.parse().ok(),
    }
}

/// Go's `underscoreOK`: each `_` lies between two digits, or between a base prefix and a digit.
fn underscores_separate_digits(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    let hex = s.len() >= 2 && s[0] == b'0' && matches!(s[1] | 0x20, b'x');
    let prefixed = s.len() >= 2 && s[0] == b'0' && matches!(s[1] | 0x20, b'b' | b'o' | b'x');
    // What came last: a digit (or the base prefix), an underscore, or something else.
    #[derive(PartialEq)]
    enum Saw {
        Start,
        Digit,
        Underscore,
        Other,
    }
    let mut saw = if prefixed { Saw::Digit } else { Saw::Start };
    for &c in &s[if prefixed { 2 } else { 0 }..] {
        saw = match c {
            b'0'..=b'9' => Saw::Digit,
            c if hex && (c | 0x20).is_ascii_hexdigit() => Saw::Digit,
            b'_' if saw == Saw::Digit => Saw::Underscore,
            b'_' => return false,
            _ if saw == Saw::Underscore => return false,
            _ => Saw::Other,
        };
    }
    saw != Saw::Underscore
}

/// The digits of a hexadecimal float after `0x`: a mantissa with an optional point, then `p`
/// and a decimal power of two.
fn hex_float(s: &str) -> Option<f64> {
    let (mantissa, exponent) = s.split_once(['p', 'P'])?;
    let exponent: i32 = exponent.parse().ok()?;
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let mut value = 0f64;
    for c in whole.chars().chain(fraction.chars()) {
        value = value * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = exponent.checked_sub(4 * i32::try_from(fraction.len()).ok()?)?;
    // Scaled in steps a power of two can hold, so that subnormals (`0x1p-1074`) survive; once
    // the value is zero or infinite it stays so (`0x1p-2147483648` would loop two million times).
    while scale != 0 && value != 0.0 && value.is_finite() {
        let step = scale.clamp(-1000, 1000);
        value *= 2f64.powi(step);
        scale -= step;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_read_as_gos_parse_float_reads_them() {
        for (text, value) in [
            ("1_000", 1000.0),
            ("-1_000.5", -1000.5),
            ("1_0e1_0", 1e11),
            ("0x1p-2", 0.25),
            ("-0X1.8p1", -3.0),
            ("0x_1p4", 16.0),
            ("0x1p-1074", f64::from_bits(1)),
            ("0x1p-2147483648", 0.0),
            ("0x1p2147483647", f64::INFINITY),
            ("+Inf", f64::INFINITY),
            ("1e3", 1000.0),
            (".5", 0.5),
        ] {
            assert_eq!(parse_float(text), Some(value), "{text}");
        }
        assert!(parse_float("nan").is_some_and(f64::is_nan));
        for refused in ["1__0", "_1", "1_", "1_.5", "0x1F", "0x", "0xp1", "1e", "", "x"] {
            assert_eq!(parse_float(refused), None, "{refused}");
        }
    }
}
