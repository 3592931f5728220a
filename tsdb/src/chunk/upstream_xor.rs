//! Upstream Prometheus's XOR chunk encoding (`chunkenc.XORChunk`), byte for byte: what remote
//! read's streamed answers carry, so that any Prometheus client decodes them. Pyrite's own
//! chunks differ (see [`super::xor`]); samples are re-encoded into these when they leave.
//!
//! Layout: the sample count as 2 bytes big-endian; the first timestamp as a signed varint and
//! its value as 64 bits; the second timestamp's delta as an unsigned varint; then
//! delta-of-deltas in the buckets `0`, `10`+14 bits, `110`+17, `1110`+20, `1111`+64 (a bucket of
//! n bits holds -(2^(n-1)-1) ..= 2^(n-1), as upstream's `bitRange`); every value after the first
//! XORed with the previous one (`0`; `10` + the bits in the previous window; `11` + 5 bits of
//! leading zeros, at most 31, + 6 bits of significant length, 64 written as 0, + the bits).

use pyrite_core::value::Sample;

use super::bits::BitWriter;
use super::xor::XorValues;

/// Samples per chunk: upstream's head cuts its chunks at 120 samples.
pub const SAMPLES_PER_CHUNK: usize = 120;

/// `samples` (at most `u16::MAX`, in increasing time order) as one upstream XOR chunk.
pub fn encode(samples: &[Sample]) -> Vec<u8> {
    let count = samples.len().min(u16::MAX as usize);
    let mut w = BitWriter::default();
    w.write_bits(count as u64, 16);
    let (mut prev_t, mut prev_delta) = (0i64, 0u64);
    // The value half is the same as Pyrite's own XOR chunks'.
    let mut values = XorValues::new(0.0);
    for (i, s) in samples[..count].iter().enumerate() {
        match i {
            0 => {
                let zigzag = ((s.t << 1) ^ (s.t >> 63)) as u64;
                write_varint(&mut w, zigzag);
                w.write_bits(s.v.to_bits(), 64);
                values = XorValues::new(s.v);
            }
            _ => {
                let delta = s.t.wrapping_sub(prev_t) as u64;
                if i == 1 {
                    write_varint(&mut w, delta);
                } else {
                    let dod = delta.wrapping_sub(prev_delta) as i64;
                    let in_bits = |n: u32| -((1i64 << (n - 1)) - 1) <= dod && dod <= 1i64 << (n - 1);
                    match dod {
                        0 => w.write_bit(false),
                        _ if in_bits(14) => {
                            w.write_bits(0b10, 2);
                            w.write_bits(dod as u64, 14);
                        }
                        _ if in_bits(17) => {
                            w.write_bits(0b110, 3);
                            w.write_bits(dod as u64, 17);
                        }
                        _ if in_bits(20) => {
                            w.write_bits(0b1110, 4);
                            w.write_bits(dod as u64, 20);
                        }
                        _ => {
                            w.write_bits(0b1111, 4);
                            w.write_bits(dod as u64, 64);
                        }
                    }
                }
                values.write(&mut w, s.v);
                prev_delta = delta;
            }
        }
        prev_t = s.t;
    }
    w.bytes().to_vec()
}

/// Go's `binary.PutUvarint`, written into the bit stream a byte at a time.
fn write_varint(w: &mut BitWriter, mut x: u64) {
    while x >= 0x80 {
        w.write_bits((x as u8 | 0x80) as u64, 8);
        x >>= 7;
    }
    w.write_bits(x, 8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_samples_byte_by_byte() {
        // Count, zigzag varint of 1000, the value's bits, uvarint of the delta, then `0` for an
        // unchanged value. (Longer chunks are checked by upstream Prometheus decoding them:
        // tests/tests/remote.rs.)
        let samples = [Sample { t: 1000, v: 1.0 }, Sample { t: 2000, v: 1.0 }];
        let bytes = encode(&samples);
        assert_eq!(&bytes[..2], &[0, 2]);
        assert_eq!(&bytes[2..4], &[0xd0, 0x0f]);
        assert_eq!(&bytes[4..12], &1.0f64.to_bits().to_be_bytes());
        assert_eq!(&bytes[12..14], &[0xe8, 0x07]);
        // The unchanged value: one `0` bit.
        assert_eq!(bytes.len(), 15);
        assert_eq!(bytes[14], 0);
    }
}
