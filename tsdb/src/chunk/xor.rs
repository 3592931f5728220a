//! The streaming XOR chunk: Gorilla-style compression of (timestamp, value) pairs.
//!
//! Layout (bit stream, most significant bit first), after Prometheus's `chunkenc.XORChunk` but
//! not byte-compatible with it (Pyrite's chunks never leave Pyrite):
//! * sample 0: timestamp as 64 bits, value as 64 bits;
//! * sample 1: the timestamp delta, encoded like a delta-of-delta against 0;
//! * later samples: delta-of-delta of timestamps in two's-complement buckets (`0`, `10`+14 bits,
//!   `110`+17 bits, `1110`+20 bits, `1111`+64 bits);
//! * every value after the first is XORed with the previous one: `0` when equal, `10` reusing the
//!   previous leading/trailing-zero window, `11` + 5 bits leading zeros + 6 bits significant
//!   length (0 meaning 64) + the significant bits otherwise.
//!
//! Time deltas and delta-of-deltas are two's-complement and wrap (modulo 2^64) in both
//! directions, so any strictly increasing timestamps round-trip, however far apart (a remote
//! write may send `i64::MIN` then `i64::MAX`), and damaged bytes decode to wrong samples rather
//! than an overflow.
//!
//! Appending is O(1) and needs only the last sample's state, so the open chunk of every head
//! series is one of these. Samples must be appended in strictly increasing time order; the head
//! enforces that before calling [`XorChunk::append`].

use super::bits::{BitReader, BitWriter};

/// An append-only XOR-compressed chunk.
#[derive(Debug, Clone, Default)]
pub struct XorChunk {
    bits: BitWriter,
    count: u16,
    first_t: i64,
    last_t: i64,
    last_delta: i64,
    values: XorValues,
}

/// Everything a chunk is made of, for a head snapshot: a chunk rebuilt from its state
/// continues appending exactly where the original stood.
#[derive(Debug, Clone, PartialEq)]
pub struct XorState {
    pub bytes: Vec<u8>,
    /// Unused low bits of the last byte.
    pub free: u8,
    pub count: u16,
    pub first_t: i64,
    pub last_t: i64,
    pub last_delta: i64,
    pub last_v: f64,
    pub leading: u8,
    pub trailing: u8,
}

impl XorChunk {
    pub fn new() -> Self {
        XorChunk { values: XorValues::new(0.0), ..Default::default() }
    }

    /// Empties the chunk for reuse, keeping its buffer (the next chunk of a series grows to
    /// about the same size).
    pub fn reset(&mut self) {
        let mut bits = std::mem::take(&mut self.bits);
        bits.clear();
        *self = XorChunk { bits, ..XorChunk::new() };
    }

    pub fn state(&self) -> XorState {
        XorState {
            bytes: self.bits.bytes().to_vec(),
            free: self.bits.free(),
            count: self.count,
            first_t: self.first_t,
            last_t: self.last_t,
            last_delta: self.last_delta,
            last_v: f64::from_bits(self.values.last),
            leading: self.values.leading,
            trailing: self.values.trailing,
        }
    }

    /// The chunk a state describes; None if the state is not one a chunk can be in.
    pub fn from_state(s: XorState) -> Option<XorChunk> {
        // A window of leading and trailing zeros leaves at least one bit of the value (0xff: none yet).
        let window = match s.leading {
            0xff => s.trailing <= 64,
            leading => leading <= 31 && u16::from(leading) + u16::from(s.trailing) < 64,
        };
        let plausible = window && (s.count == 0) == s.bytes.is_empty();
        Some(XorChunk {
            bits: plausible.then(|| BitWriter::from_parts(s.bytes, s.free)).flatten()?,
            count: s.count,
            first_t: s.first_t,
            last_t: s.last_t,
            last_delta: s.last_delta,
            values: XorValues { last: s.last_v.to_bits(), leading: s.leading, trailing: s.trailing },
        })
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn min_time(&self) -> i64 {
        self.first_t
    }

    pub fn max_time(&self) -> i64 {
        self.last_t
    }

    /// The newest sample, kept for appending: no decoding needed.
    pub fn last(&self) -> Option<(i64, f64)> {
        (self.count > 0).then(|| (self.last_t, f64::from_bits(self.values.last)))
    }

    /// Compressed size in bytes.
    pub fn byte_len(&self) -> usize {
        self.bits.bytes().len()
    }

    pub fn append(&mut self, t: i64, v: f64) {
        match self.count {
            0 => {
                self.bits.write_bits(t as u64, 64);
                self.bits.write_bits(v.to_bits(), 64);
                self.first_t = t;
                self.values = XorValues::new(v);
            }
            1 => {
                let delta = t.wrapping_sub(self.last_t);
                write_dod(&mut self.bits, delta);
                self.values.write(&mut self.bits, v);
                self.last_delta = delta;
            }
            _ => {
                let delta = t.wrapping_sub(self.last_t);
                write_dod(&mut self.bits, delta.wrapping_sub(self.last_delta));
                self.values.write(&mut self.bits, v);
                self.last_delta = delta;
            }
        }
        self.last_t = t;
        self.count += 1;
    }

    pub fn iter(&self) -> XorIter<'_> {
        XorIter {
            reader: BitReader::new(self.bits.bytes()),
            remaining: self.count,
            read: 0,
            t: 0,
            delta: 0,
            values: XorValues::new(0.0),
        }
    }
}

/// The value half of the XOR codec: each value XORed with the previous one, written as `0`
/// when equal, `10` + the significant bits when they fit the previous leading/trailing-zero
/// window, `11` + 5 bits of leading zeros + 6 bits of length (0 for 64) + the bits otherwise.
/// Shared by the streaming chunk, the packed chunk's fallback for values that are not
/// decimals, and upstream's XOR chunks that remote read sends.
#[derive(Debug, Clone, Default)]
pub(super) struct XorValues {
    /// Bits of the previous value.
    last: u64,
    /// The current window; `leading == 0xff` until the first non-zero XOR.
    leading: u8,
    trailing: u8,
}

impl XorValues {
    /// A coder whose previous value is `first` (stored outside the XOR stream).
    pub(super) fn new(first: f64) -> XorValues {
        XorValues { last: first.to_bits(), leading: 0xff, trailing: 0 }
    }

    pub(super) fn write(&mut self, bits: &mut BitWriter, v: f64) {
        let xor = v.to_bits() ^ self.last;
        self.last = v.to_bits();
        if xor == 0 {
            bits.write_bit(false);
            return;
        }
        bits.write_bit(true);
        // Five bits hold the leading-zero count.
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            bits.write_bit(false);
            bits.write_bits(xor >> self.trailing, 64 - self.leading - self.trailing);
            return;
        }
        (self.leading, self.trailing) = (leading, trailing);
        bits.write_bit(true);
        bits.write_bits(leading as u64, 5);
        let sig = 64 - leading - trailing;
        // 64 significant bits do not fit in 6 bits; 0 stands for 64 (it cannot occur otherwise).
        bits.write_bits((sig & 63) as u64, 6);
        bits.write_bits(xor >> trailing, sig);
    }

    pub(super) fn read(&mut self, reader: &mut BitReader) -> Option<f64> {
        if reader.read_bit()? {
            if reader.read_bit()? {
                self.leading = reader.read_bits(5)? as u8;
                let sig = match reader.read_bits(6)? as u8 {
                    0 => 64,
                    sig => sig,
                };
                self.trailing = 64u8.checked_sub(self.leading + sig)?;
            } else if self.leading == 0xff {
                return None;
            }
            let bits = reader.read_bits(64 - self.leading - self.trailing)?;
            self.last ^= bits << self.trailing;
        }
        Some(f64::from_bits(self.last))
    }
}

fn write_dod(bits: &mut BitWriter, dod: i64) {
    match dod {
        0 => bits.write_bit(false),
        -8192..=8191 => {
            bits.write_bits(0b10, 2);
            bits.write_bits(dod as u64, 14);
        }
        -65536..=65535 => {
            bits.write_bits(0b110, 3);
            bits.write_bits(dod as u64, 17);
        }
        -524288..=524287 => {
            bits.write_bits(0b1110, 4);
            bits.write_bits(dod as u64, 20);
        }
        _ => {
            bits.write_bits(0b1111, 4);
            bits.write_bits(dod as u64, 64);
        }
    }
}

/// Sign-extends the low `n` bits of `v`.
fn sign_extend(v: u64, n: u8) -> i64 {
    let shift = 64 - n as u32;
    ((v << shift) as i64) >> shift
}

/// Iterator over the samples of an [`XorChunk`], in time order.
#[derive(Debug, Clone)]
pub struct XorIter<'a> {
    reader: BitReader<'a>,
    remaining: u16,
    read: u16,
    t: i64,
    delta: i64,
    values: XorValues,
}

impl XorIter<'_> {
    fn read_dod(&mut self) -> Option<i64> {
        let mut prefix = 0;
        while prefix < 4 && self.reader.read_bit()? {
            prefix += 1;
        }
        Some(match prefix {
            0 => 0,
            1 => sign_extend(self.reader.read_bits(14)?, 14),
            2 => sign_extend(self.reader.read_bits(17)?, 17),
            3 => sign_extend(self.reader.read_bits(20)?, 20),
            _ => self.reader.read_bits(64)? as i64,
        })
    }

    fn decode_next(&mut self) -> Option<(i64, f64)> {
        let v = match self.read {
            0 => {
                self.t = self.reader.read_bits(64)? as i64;
                let v = f64::from_bits(self.reader.read_bits(64)?);
                self.values = XorValues::new(v);
                v
            }
            1 => {
                self.delta = self.read_dod()?;
                self.t = self.t.wrapping_add(self.delta);
                self.values.read(&mut self.reader)?
            }
            _ => {
                self.delta = self.delta.wrapping_add(self.read_dod()?);
                self.t = self.t.wrapping_add(self.delta);
                self.values.read(&mut self.reader)?
            }
        };
        self.read += 1;
        Some((self.t, v))
    }
}

impl Iterator for XorIter<'_> {
    type Item = (i64, f64);

    fn next(&mut self) -> Option<(i64, f64)> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        self.decode_next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(samples: &[(i64, f64)]) -> XorChunk {
        let mut c = XorChunk::new();
        for &(t, v) in samples {
            c.append(t, v);
        }
        let back: Vec<(i64, f64)> = c.iter().collect();
        assert_eq!(back.len(), samples.len());
        for (a, b) in back.iter().zip(samples) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1.to_bits(), b.1.to_bits(), "value at t={}", a.0);
        }
        c
    }

    #[test]
    fn a_chunk_rebuilt_from_its_state_continues_appending_exactly() {
        let samples: Vec<(i64, f64)> = (0..60).map(|i| (i * 15_003 + i % 3, (i * i) as f64 * 0.37)).collect();
        let mut original = XorChunk::new();
        samples[..30].iter().for_each(|&(t, v)| original.append(t, v));
        let mut restored = XorChunk::from_state(original.state()).expect("a valid state");
        for &(t, v) in &samples[30..] {
            original.append(t, v);
            restored.append(t, v);
        }
        assert_eq!(restored.state(), original.state());
        assert_eq!(restored.iter().collect::<Vec<_>>(), samples);
        assert!(XorChunk::from_state(XorState { free: 9, ..original.state() }).is_none());
        assert!(XorChunk::from_state(XorState { count: 0, ..original.state() }).is_none());
        assert!(XorChunk::from_state(XorChunk::new().state()).is_some(), "an empty chunk");
        // A window that leaves no bit of the value (appending would shift by 64 or more).
        assert!(XorChunk::from_state(XorState { leading: 31, trailing: 64, ..original.state() }).is_none());
        assert!(XorChunk::from_state(XorState { leading: 0, trailing: 64, ..original.state() }).is_none());
    }

    #[test]
    fn regular_counter_compresses_to_about_a_byte_per_sample() {
        let samples: Vec<(i64, f64)> = (0..120).map(|i| (1_700_000_000_000 + i * 15_000, (i * 7) as f64)).collect();
        let c = round_trip(&samples);
        assert!(c.byte_len() < 120 * 3, "{} bytes", c.byte_len());
    }

    #[test]
    fn irregular_times_and_special_values() {
        let samples = vec![
            (0, 0.0),
            (1, -0.0),
            (10_000, f64::NAN),
            (10_001, pyrite_core::value::stale_nan()),
            (10_002, f64::INFINITY),
            (70_000, f64::NEG_INFINITY),
            (70_001, 1e300),
            (2_000_000, 1e-300),
            (2_000_001, f64::from_bits(1)),
            (i64::MAX / 2, f64::from_bits(u64::MAX >> 1)),
            (i64::MAX / 2 + 1, 3.25),
        ];
        round_trip(&samples);
    }

    #[test]
    fn delta_of_delta_bucket_edges() {
        // Deltas whose differences sit exactly on each bucket's bounds.
        let mut t = 0i64;
        let mut delta = 0i64;
        let mut samples = vec![(t, 1.0)];
        for dod in [8191, -8192, 8192, 65535, -65536, 65536, 524287, -524288, 524288, -524289, 1 << 40, 0] {
            delta += dod;
            t += delta.max(1);
            delta = delta.max(1);
            samples.push((t, 1.0));
        }
        round_trip(&samples);
    }

    #[test]
    fn time_deltas_beyond_i64_wrap_and_round_trip() {
        // Found by the chunk_xor fuzz target: the delta from i64::MIN to 0 overflowed.
        round_trip(&[(i64::MIN, 1.0), (0, 2.0), (i64::MAX, 3.0)]);
        round_trip(&[(-1, 0.0), (i64::MAX, 1.0)]);
    }

    #[test]
    fn pseudo_random_values_round_trip() {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut t = -5_000_000i64;
        let mut samples = Vec::new();
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t += 1 + (x % 100_000) as i64;
            samples.push((t, f64::from_bits(x)));
        }
        for chunk in samples.chunks(120) {
            round_trip(chunk);
        }
    }
}
