//! Byte sizes as Prometheus writes them (`512KB`, `128MB`, `10GB`): powers of 1024, as upstream's
//! `units.Base2Bytes` reads them, in flags and in `body_size_limit`.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A size in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

const UNITS: [&str; 7] = ["B", "KB", "MB", "GB", "TB", "PB", "EB"];

impl ByteSize {
    /// A number and a unit: `B`, `KB`, `MB`, `GB`, `TB`, `PB`, `EB` (or `KiB`, `MiB`, ...), or a
    /// bare number of bytes.
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 =
            digits.parse().map_err(|_| format!("invalid size {s:?}: expected a number and a unit, as 128MB"))?;
        let power = match unit.trim_end_matches("iB").trim_end_matches('B') {
            "" => 0,
            "K" => 1,
            "M" => 2,
            "G" => 3,
            "T" => 4,
            "P" => 5,
            "E" => 6,
            _ => return Err(format!("invalid size {s:?}: unknown unit {unit:?} (B, KB, MB, GB, TB, PB, EB)")),
        };
        n.checked_mul(1u64 << (10 * power)).map(ByteSize).ok_or_else(|| format!("size {s:?} is too large"))
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that divides the size: `10MB`, `1536KB`, `0B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut power = 0;
        while power < UNITS.len() - 1 && self.0 != 0 && self.0.is_multiple_of(1u64 << (10 * (power + 1))) {
            power += 1;
        }
        write!(f, "{}{}", self.0 >> (10 * power), UNITS[power])
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ByteSize::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_and_print_as_prometheus_writes_them() {
        assert_eq!(ByteSize::parse("128MB"), Ok(ByteSize(128 << 20)));
        assert_eq!(ByteSize::parse("10GB"), Ok(ByteSize(10 << 30)));
        assert_eq!(ByteSize::parse("512KiB"), Ok(ByteSize(512 << 10)));
        assert_eq!(ByteSize::parse("4096"), Ok(ByteSize(4096)));
        assert!(ByteSize::parse("10XB").unwrap_err().contains("unknown unit"));
        assert!(ByteSize::parse("MB").is_err());
        assert!(ByteSize::parse("99999999999EB").unwrap_err().contains("too large"));
        assert_eq!(ByteSize(10 << 20).to_string(), "10MB");
        assert_eq!(ByteSize(1536 << 10).to_string(), "1536KB");
        assert_eq!(ByteSize(0).to_string(), "0B");
    }
}
