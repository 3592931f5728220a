//! Bit-level writer and reader over a byte vector, most significant bit first.

/// Appends bits to a growing byte buffer.
#[derive(Debug, Clone, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Bits still free in the last byte (0..=7; 0 means a new byte is needed).
    free: u8,
}

/// Bytes a writer grows by when full: small steps rather than doubling, so that the open chunk
/// of each of millions of series wastes at most this much.
const GROWTH: usize = 32;

impl BitWriter {
    /// Appends a zero byte, growing the buffer by [`GROWTH`] bytes when it is full.
    fn push_byte(&mut self) {
        if self.bytes.len() == self.bytes.capacity() {
            self.bytes.reserve_exact(GROWTH);
        }
        self.bytes.push(0);
        self.free = 8;
    }

    /// A writer continuing after `bytes`, whose last byte has `free` unused low bits; None if
    /// that is impossible.
    pub fn from_parts(bytes: Vec<u8>, free: u8) -> Option<BitWriter> {
        (free <= 7 && (free == 0 || !bytes.is_empty())).then_some(BitWriter { bytes, free })
    }

    /// Empties the writer, keeping its buffer.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.free = 0;
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Unused low bits of the last byte.
    pub fn free(&self) -> u8 {
        self.free
    }

    pub fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.push_byte();
        }
        self.free -= 1;
        if bit {
            *self.bytes.last_mut().expect("a byte was pushed above") |= 1 << self.free;
        }
    }

    /// Writes the low `n` bits of `value`, most significant first (`n` ≤ 64).
    pub fn write_bits(&mut self, value: u64, mut n: u8) {
        let value = if n < 64 { value & ((1u64 << n) - 1) } else { value };
        // Top up the last byte, then whole bytes, then the start of a new byte.
        if self.free > 0 && n > 0 {
            let take = n.min(self.free);
            let bits = (value >> (n - take)) as u8 & ((1u16 << take) - 1) as u8;
            self.free -= take;
            *self.bytes.last_mut().expect("free bits are in the last byte") |= bits << self.free;
            n -= take;
        }
        while n >= 8 {
            n -= 8;
            self.push_byte();
            *self.bytes.last_mut().expect("a byte was pushed above") = (value >> n) as u8;
            self.free = 0;
        }
        if n > 0 {
            self.push_byte();
            self.free = 8 - n;
            *self.bytes.last_mut().expect("a byte was pushed above") = ((value << self.free) & 0xff) as u8;
        }
    }
}

/// Reads bits from a byte slice; every read past the end returns `None`.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, pos: 0 }
    }

    pub fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.bytes.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1 == 1;
        self.pos += 1;
        Some(bit)
    }

    /// Reads `n` bits (≤ 64) as the low bits of the result.
    pub fn read_bits(&mut self, n: u8) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        if self.pos + n as usize > self.bytes.len() * 8 {
            return None;
        }
        // The 16 bytes from the current one hold the bits wanted (at most 7 + 64 of them);
        // past the end of the buffer they are zero-padded.
        let at = self.pos / 8;
        let window = match self.bytes.get(at..at + 16) {
            Some(b) => u128::from_be_bytes(b.try_into().expect("16 bytes")),
            None => {
                let mut padded = [0u8; 16];
                let tail = &self.bytes[at..];
                padded[..tail.len()].copy_from_slice(tail);
                u128::from_be_bytes(padded)
            }
        };
        let v = (window << (self.pos % 8)) >> (128 - u32::from(n));
        self.pos += n as usize;
        Some(v as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_mixed_widths() {
        let mut w = BitWriter::default();
        let items: [(u64, u8); 6] = [(1, 1), (0b101, 3), (u64::MAX, 64), (0x1234, 14), (0, 5), (7, 3)];
        for (v, n) in items {
            w.write_bits(v, n);
        }
        let mut r = BitReader::new(w.bytes());
        for (v, n) in items {
            assert_eq!(r.read_bits(n), Some(v), "width {n}");
        }
        assert_eq!(r.read_bits(8), None);
    }
}
