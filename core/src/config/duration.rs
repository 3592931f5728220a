//! Prometheus durations: `1h30m`, `15s`, `100ms`, `2d`, `1w`, `1y`.
//!
//! Units may be combined in decreasing order, each at most once; `0` alone is zero. Values are
//! held as milliseconds, and bounded as upstream's `model.ParseDuration` bounds them: their
//! nanoseconds fit in an i64 (Go's `time.Duration`, about 292 years).

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A non-negative span of time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Duration(pub i64);

/// The longest duration upstream parses: `i64::MAX` nanoseconds, in whole milliseconds.
pub const MAX_MILLIS: i64 = i64::MAX / 1_000_000;

/// Upstream's message for a duration past [`MAX_MILLIS`].
pub const OUT_OF_RANGE: &str = "duration out of range";

const UNITS: [(&str, i64); 8] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
    ("", 0),
];

impl Duration {
    pub fn from_secs(s: i64) -> Self {
        Duration(s * 1000)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.max(0) as u64)
    }

    /// Parses `1h30m`-style text; past [`MAX_MILLIS`] is [`OUT_OF_RANGE`].
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "0" {
            return Ok(Duration(0));
        }
        let bad = || format!("not a valid duration string: {s:?}");
        let mut rest = s;
        let mut total: i64 = 0;
        let mut last_unit = 0usize;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            // "ms" must be tried before "m".
            let (idx, unit, ms) = [6usize, 0, 1, 2, 3, 4, 5]
                .into_iter()
                .map(|i| (i, UNITS[i].0, UNITS[i].1))
                .find(|(_, u, _)| rest.starts_with(u))
                .ok_or_else(bad)?;
            if idx < last_unit || (idx == last_unit && total > 0) {
                return Err(bad());
            }
            last_unit = idx;
            rest = &rest[unit.len()..];
            total = i64::try_from(n)
                .ok()
                .and_then(|n| n.checked_mul(ms))
                .and_then(|v| total.checked_add(v))
                .filter(|&t| t <= MAX_MILLIS)
                .ok_or_else(|| OUT_OF_RANGE.to_string())?;
        }
        Ok(Duration(total))
    }
}

impl fmt::Display for Duration {
    /// Formats like Prometheus's `model.Duration`: `1h30m`, `15s`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for (unit, ms) in UNITS.iter().take(7) {
            if rest >= *ms {
                write!(f, "{}{unit}", rest / ms)?;
                rest %= ms;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// A string, or a bare number as Go's YAML reads into a string (`eval_time: 0`).
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = String;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
                Ok(v.to_string())
            }
        }
        let s = d.deserialize_any(Text)?;
        Duration::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        for (text, ms) in
            [("15s", 15_000), ("1h30m", 5_400_000), ("100ms", 100), ("1d", 86_400_000), ("0", 0), ("1m1ms", 60_001)]
        {
            assert_eq!(Duration::parse(text), Ok(Duration(ms)), "{text}");
        }
        assert_eq!(Duration(5_400_000).to_string(), "1h30m");
        assert_eq!(Duration(0).to_string(), "0s");
        for bad in ["", "1", "s", "1x", "1m1h", "1s1s", "-1s", "1.5s", "99999999999999999999s"] {
            assert!(Duration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_range_is_upstreams() {
        assert_eq!(Duration::parse("292y"), Ok(Duration(292 * 365 * 86_400_000)));
        assert_eq!(Duration::parse("9223372036854ms"), Ok(Duration(MAX_MILLIS)));
        for text in ["300y", "9223372036855ms", "9223372036854775808ms", "292y173d"] {
            assert_eq!(Duration::parse(text), Err(OUT_OF_RANGE.to_string()), "{text}");
        }
    }
}
