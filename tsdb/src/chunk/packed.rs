//! The packed chunk: the format of sealed chunks, in the head and in blocks.
//!
//! A sealed chunk never changes, so unlike the streaming XOR chunk it can be laid out for bulk
//! decoding: timestamps and, where the data allows, values are stored as arrays of small
//! integers bit-packed 128 at a time with the `bitpacking` crate, whose `BitPacker4x` unpacks
//! with SSE where the CPU has it (detected at run time) and scalar code otherwise, both giving
//! the same bytes. The byte layout is specified in `docs/format/chunks.md`:
//!
//! ```text
//! count u8 (1..=128) | values u8 (kind | VARINT_HEADER | exponent << 4)
//! t0 zig-zag varint | v0: XOR u64 LE, DECIMAL zig-zag varint
//! [count ≥ 2] first delta: zig-zag varint
//! [count ≥ 3] timestamp width u8, then 16 × width bytes: the zig-zag delta-of-deltas of
//!             samples 2.. packed (width 0xff: one zig-zag varint each instead)
//! values, XOR:     the XOR stream of samples 1.. (see `xor.rs`), to the end
//! values, DECIMAL: [count ≥ 2] minimum delta zig-zag varint, width u8, 16 × width bytes: the
//!                  deltas of samples 1.. between the values scaled by 10^exponent, minus the
//!                  minimum, packed
//! ```
//!
//! Time deltas and delta-of-deltas wrap (modulo 2^64), as the decoder's do, so timestamps any
//! distance apart round-trip.
//!
//! Chunks written before the header's varints (no `VARINT_HEADER` bit) have `t0 i64 LE | v0 u64
//! LE` instead, and still decode.
//!
//! Integer-valued series (counters, most gauges) are decimals with exponent 0; values such as
//! `0.25` or `12.7` find the smallest exponent (up to 9) at which every value of the chunk is an
//! integer that divides back to the same bits. Anything else (NaN, infinities, staleness
//! markers, arbitrary floats) uses the XOR stream.

use bitpacking::{BitPacker, BitPacker1x, BitPacker4x};
use thiserror::Error;

use super::bits::{BitReader, BitWriter};
use super::xor::XorValues;
use crate::encoding::{put_varint, unzigzag, zigzag, Cursor};

/// Most samples a packed chunk holds: one bit-packed block.
pub const MAX_SAMPLES: usize = BitPacker4x::BLOCK_LEN;

const XOR: u8 = 0;
const DECIMAL: u8 = 1;
/// Set in the value-encoding byte of every chunk written now: `t0` and a decimal `v0` are
/// varints (a fixed 16 bytes before; a short chunk of a flushed head is mostly its header).
const VARINT_HEADER: u8 = 0x08;
/// Timestamp width meaning "varints, not packed" (a delta-of-delta beyond 32 bits).
const VARINT_WIDTH: u8 = 0xff;
/// Integers up to 2^53 convert to and from f64 exactly.
const EXACT: f64 = 9_007_199_254_740_992.0;
const POW10: [f64; 10] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// A packed chunk that cannot be decoded (read from a damaged file).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid packed chunk: {0}")]
pub struct PackedError(&'static str);

/// Encodes 1..=[`MAX_SAMPLES`] samples, in strictly increasing time order, onto `out`.
pub fn encode(samples: &[(i64, f64)], out: &mut Vec<u8>) {
    assert!((1..=MAX_SAMPLES).contains(&samples.len()), "a packed chunk holds 1 to 128 samples");
    // Room for the header, both blocks and their widths and varints (only timestamps a varint
    // each, after a gap, may take more).
    out.reserve(28 + 2 * (10 + 1 + packed_len(32, MAX_SAMPLES)));
    let mut scaled = [0i64; MAX_SAMPLES];
    let decimal = decimal_exponent(samples, &mut scaled);
    out.push(samples.len() as u8);
    out.push(match decimal {
        Some(e) => DECIMAL | VARINT_HEADER | (e << 4),
        None => XOR | VARINT_HEADER,
    });
    let (t0, v0) = samples[0];
    put_varint(out, zigzag(t0));
    match decimal {
        Some(_) => put_varint(out, zigzag(scaled[0])),
        None => out.extend_from_slice(&v0.to_bits().to_le_bytes()),
    }
    encode_times(samples, out);
    match decimal {
        Some(_) => encode_deltas(&scaled[..samples.len()], out),
        None => encode_xor(samples, out),
    }
}

fn unscaled(x: i64, e: u8) -> f64 {
    x as f64 / POW10[e as usize]
}

/// The smallest exponent at which every value is an exact decimal whose scaled deltas fit the
/// packed width, if there is one; `scaled` receives the scaled values.
fn decimal_exponent(samples: &[(i64, f64)], scaled: &mut [i64; MAX_SAMPLES]) -> Option<u8> {
    if samples.iter().any(|&(_, v)| !v.is_finite()) {
        return None;
    }
    'exponent: for e in 0..POW10.len() as u8 {
        for (slot, &(_, v)) in scaled.iter_mut().zip(samples) {
            let x = v * POW10[e as usize];
            if x.abs() >= EXACT {
                return None;
            }
            *slot = x.round() as i64;
            if unscaled(*slot, e).to_bits() != v.to_bits() {
                continue 'exponent;
            }
        }
        let deltas = scaled[..samples.len()].windows(2).map(|w| w[1] - w[0]);
        let (min, max) = deltas.fold((i64::MAX, i64::MIN), |(lo, hi), d| (lo.min(d), hi.max(d)));
        return (samples.len() < 2 || max.abs_diff(min) <= u64::from(u32::MAX)).then_some(e);
    }
    None
}

/// Values a short chunk packs in 32-value blocks instead of one 128-value block.
const SHORT: usize = 96;
const SHORT_BLOCK: usize = BitPacker1x::BLOCK_LEN;

/// Packs the first `count` values of `block` (zero beyond): the width byte, then one
/// 128-value SIMD block if `count` is over [`SHORT`], else `ceil(count / 32)` 32-value blocks,
/// so that a short chunk does not pay for 128 slots.
fn put_packed(block: &[u32; MAX_SAMPLES], count: usize, out: &mut Vec<u8>) {
    if count > SHORT {
        let packer = BitPacker4x::new();
        let width = packer.num_bits(block);
        out.push(width);
        let start = out.len();
        out.resize(start + packed_len(width, MAX_SAMPLES), 0);
        packer.compress(block, &mut out[start..], width);
        return;
    }
    let packer = BitPacker1x::new();
    let blocks = &block[..count.div_ceil(SHORT_BLOCK) * SHORT_BLOCK];
    let width = blocks.chunks(SHORT_BLOCK).map(|b| packer.num_bits(b)).max().unwrap_or(0);
    out.push(width);
    for b in blocks.chunks(SHORT_BLOCK) {
        let start = out.len();
        out.resize(start + packed_len(width, SHORT_BLOCK), 0);
        packer.compress(b, &mut out[start..], width);
    }
}

/// Bytes `values` values of `width` bits take.
fn packed_len(width: u8, values: usize) -> usize {
    width as usize * values / 8
}

fn encode_times(samples: &[(i64, f64)], out: &mut Vec<u8>) {
    if samples.len() < 2 {
        return;
    }
    put_varint(out, zigzag(samples[1].0.wrapping_sub(samples[0].0)));
    if samples.len() < 3 {
        return;
    }
    let dod = |w: &[(i64, f64)]| zigzag(w[2].0.wrapping_sub(w[1].0).wrapping_sub(w[1].0.wrapping_sub(w[0].0)));
    let mut block = [0u32; MAX_SAMPLES];
    let mut fits = true;
    for (slot, w) in block.iter_mut().zip(samples.windows(3)) {
        let d = dod(w);
        fits &= d <= u64::from(u32::MAX);
        *slot = d as u32;
    }
    if fits {
        put_packed(&block, samples.len() - 2, out);
    } else {
        out.push(VARINT_WIDTH);
        samples.windows(3).for_each(|w| put_varint(out, dod(w)));
    }
}

/// The deltas of the scaled values, offset by their minimum (`decimal_exponent` checked that
/// every offset fits 32 bits).
fn encode_deltas(scaled: &[i64], out: &mut Vec<u8>) {
    if scaled.len() < 2 {
        return;
    }
    let min = scaled.windows(2).map(|w| w[1] - w[0]).min().expect("two samples or more");
    put_varint(out, zigzag(min));
    let mut block = [0u32; MAX_SAMPLES];
    for (slot, w) in block.iter_mut().zip(scaled.windows(2)) {
        *slot = (w[1] - w[0]).abs_diff(min) as u32;
    }
    put_packed(&block, scaled.len() - 1, out);
}

fn encode_xor(samples: &[(i64, f64)], out: &mut Vec<u8>) {
    let mut bits = BitWriter::default();
    let mut values = XorValues::new(samples[0].1);
    for &(_, v) in &samples[1..] {
        values.write(&mut bits, v);
    }
    out.extend_from_slice(bits.bytes());
}

/// Reads `count` values packed by `put_packed`.
fn take_packed(c: &mut Cursor, block: &mut [u32; MAX_SAMPLES], count: usize) -> Result<(), PackedError> {
    let width = c.u8().ok_or(PackedError("truncated block width"))?;
    if width > 32 {
        return Err(PackedError("block width over 32 bits"));
    }
    let (per_block, blocks) = if count > SHORT { (MAX_SAMPLES, 1) } else { (SHORT_BLOCK, count.div_ceil(SHORT_BLOCK)) };
    let len = packed_len(width, per_block);
    for (i, out) in block.chunks_mut(per_block).take(blocks).enumerate() {
        let at = c.pos + i * len;
        let bytes = c.buf.get(at..at + len).ok_or(PackedError("truncated block"))?;
        if count > SHORT {
            BitPacker4x::new().decompress(bytes, out, width);
        } else {
            BitPacker1x::new().decompress(bytes, out, width);
        }
    }
    c.pos += blocks * len;
    Ok(())
}

/// The number of samples a packed chunk holds (its first byte; 0 for no bytes), without
/// decoding it.
pub fn sample_count(bytes: &[u8]) -> usize {
    usize::from(bytes.first().copied().unwrap_or(0))
}

/// Appends the samples of a packed chunk to `out`.
pub fn decode(bytes: &[u8], out: &mut Vec<(i64, f64)>) -> Result<(), PackedError> {
    let mut c = Cursor { buf: bytes, pos: 0 };
    let n = c.u8().ok_or(PackedError("empty"))? as usize;
    let kind = c.u8().ok_or(PackedError("truncated header"))?;
    let (t0, v0) = match kind & VARINT_HEADER {
        0 => (c.u64().map(|t| t as i64), c.u64()),
        _ => (c.i64(), if kind & 0x07 == DECIMAL { c.i64().map(|x| x as u64) } else { c.u64() }),
    };
    let (t0, v0) = t0.zip(v0).ok_or(PackedError("truncated header"))?;
    if n == 0 || n > MAX_SAMPLES {
        return Err(PackedError("sample count out of range"));
    }
    let start = out.len();
    out.reserve(n);
    out.push((t0, 0.0));
    let mut block = [0u32; MAX_SAMPLES];
    if n >= 2 {
        let mut delta = c.i64().ok_or(PackedError("truncated first delta"))?;
        let mut t = t0.wrapping_add(delta);
        out.push((t, 0.0));
        if n >= 3 {
            if c.buf.get(c.pos) == Some(&VARINT_WIDTH) {
                c.pos += 1;
                for _ in 2..n {
                    delta = delta.wrapping_add(c.i64().ok_or(PackedError("truncated timestamps"))?);
                    t = t.wrapping_add(delta);
                    out.push((t, 0.0));
                }
            } else {
                take_packed(&mut c, &mut block, n - 2)?;
                for &dod in &block[..n - 2] {
                    delta = delta.wrapping_add(unzigzag(u64::from(dod)));
                    t = t.wrapping_add(delta);
                    out.push((t, 0.0));
                }
            }
        }
    }
    let samples = &mut out[start..];
    match (kind & 0x07, kind >> 4) {
        (DECIMAL, e) if (e as usize) < POW10.len() => {
            let mut x = v0 as i64;
            samples[0].1 = unscaled(x, e);
            if n >= 2 {
                let min = c.i64().ok_or(PackedError("truncated minimum delta"))?;
                take_packed(&mut c, &mut block, n - 1)?;
                for (s, &offset) in samples[1..].iter_mut().zip(&block) {
                    x = x.wrapping_add(min.wrapping_add(i64::from(offset)));
                    s.1 = unscaled(x, e);
                }
            }
        }
        (XOR, 0) => {
            let mut reader = BitReader::new(&c.buf[c.pos..]);
            let mut values = XorValues::new(f64::from_bits(v0));
            samples[0].1 = f64::from_bits(v0);
            for s in &mut samples[1..] {
                s.1 = values.read(&mut reader).ok_or(PackedError("truncated values"))?;
            }
        }
        _ => return Err(PackedError("unknown value encoding")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(samples: &[(i64, f64)]) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode(samples, &mut bytes);
        let mut back = Vec::new();
        decode(&bytes, &mut back).expect("decodes");
        assert_eq!(back.len(), samples.len());
        for (a, b) in back.iter().zip(samples) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1.to_bits(), b.1.to_bits(), "value at t={}: {} vs {}", a.0, a.1, b.1);
        }
        bytes
    }

    fn times(n: i64) -> impl Iterator<Item = i64> {
        (0..n).map(|i| 1_700_000_000_000 + i * 15_000 + (i * 7919) % 13)
    }

    #[test]
    fn counters_pack_smaller_than_xor() {
        // A counter growing by 90..110 per scrape, scraped with a few milliseconds of jitter.
        let samples: Vec<(i64, f64)> =
            times(120).enumerate().map(|(i, t)| (t, (i * 100 + (i * 31) % 21) as f64)).collect();
        let bytes = round_trip(&samples);
        assert_eq!(bytes[1], DECIMAL | VARINT_HEADER, "integers use exponent 0");
        let xor_len = |samples: &[(i64, f64)]| {
            let mut xor = super::super::XorChunk::new();
            samples.iter().for_each(|&(t, v)| xor.append(t, v));
            xor.byte_len()
        };
        assert!(bytes.len() * 3 < xor_len(&samples) * 2, "{} bytes packed, {} as XOR", bytes.len(), xor_len(&samples));
        // A short chunk (the newest of a series, a flushed head) packs 32 values at a time:
        // about XOR's size, where 128 slots would take three times as much.
        let short = round_trip(&samples[..16]);
        let xor = xor_len(&samples[..16]);
        assert!(short.len() * 4 < xor * 5, "{} bytes packed, {xor} as XOR", short.len());
    }

    #[test]
    fn chunks_with_the_fixed_header_of_earlier_versions_still_decode() {
        // Two samples: t0 and v0 as 8 bytes each, the first delta, then the smallest value
        // delta and a value block of width 0.
        let t0: i64 = 1_700_000_000_000;
        let mut old = vec![2, DECIMAL];
        old.extend_from_slice(&t0.to_le_bytes());
        old.extend_from_slice(&41i64.to_le_bytes());
        put_varint(&mut old, zigzag(15_000));
        put_varint(&mut old, zigzag(5));
        old.push(0);
        let mut out = Vec::new();
        decode(&old, &mut out).expect("decodes");
        assert_eq!(out, [(t0, 41.0), (t0 + 15_000, 46.0)]);
        // The same samples now: t0 takes 6 bytes and v0 one, 9 fewer than the fixed 16.
        let mut new = Vec::new();
        encode(&out, &mut new);
        assert_eq!(new.len() + 9, old.len());
    }

    #[test]
    fn decimals_find_the_smallest_exponent() {
        let samples: Vec<(i64, f64)> = times(100).enumerate().map(|(i, t)| (t, 0.25 * i as f64 - 3.5)).collect();
        assert_eq!(round_trip(&samples)[1], DECIMAL | VARINT_HEADER | (2 << 4));
        let samples: Vec<(i64, f64)> = times(50).enumerate().map(|(i, t)| (t, 12.7 + i as f64 / 10.0)).collect();
        round_trip(&samples);
    }

    #[test]
    fn special_values_fall_back_to_xor() {
        let specials =
            [0.0, -0.0, f64::NAN, pyrite_core::value::stale_nan(), f64::INFINITY, 1e300, f64::from_bits(1), 0.1 + 0.2];
        for special in specials {
            let samples: Vec<(i64, f64)> = times(10).map(|t| (t, 1.0)).chain([(1_800_000_000_000, special)]).collect();
            let bytes = round_trip(&samples);
            if special.to_bits() != 0 {
                assert_eq!(bytes[1], XOR | VARINT_HEADER, "{special}");
            }
        }
    }

    #[test]
    fn every_length_and_irregular_times_round_trip() {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut samples = Vec::new();
        let mut t = -5_000_000i64;
        for _ in 0..MAX_SAMPLES {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t += 1 + (x % 100_000) as i64;
            samples.push((t, (x % 1000) as f64));
        }
        for n in 1..=MAX_SAMPLES {
            round_trip(&samples[..n]);
        }
        // Gaps whose delta-of-delta needs more than 32 bits take the varint path.
        samples[60].0 = samples[59].0 + (1 << 40);
        for s in &mut samples[61..] {
            s.0 += 1 << 41;
        }
        round_trip(&samples);
        // Values whose scaled deltas exceed 32 bits stay exact through XOR.
        let wide: Vec<(i64, f64)> = (0..10).map(|i| (i, if i % 2 == 0 { 0.0 } else { 1e15 })).collect();
        assert_eq!(round_trip(&wide)[1], XOR | VARINT_HEADER);
    }

    #[test]
    fn time_deltas_beyond_i64_wrap_and_round_trip() {
        // Found by the chunk_packed fuzz target: the delta from i64::MIN to 1 overflowed.
        round_trip(&[(i64::MIN, 1.0), (1, 2.0), (i64::MAX, 3.0)]);
        round_trip(&[(i64::MIN, 0.5), (i64::MAX, 1.5)]);
    }

    #[test]
    fn damaged_chunks_are_errors_not_panics() {
        let samples: Vec<(i64, f64)> = times(120).map(|t| (t, (t % 1000) as f64 * 0.37)).collect();
        let mut bytes = Vec::new();
        encode(&samples, &mut bytes);
        let mut out = Vec::new();
        for len in 0..bytes.len() {
            let _ = decode(&bytes[..len], &mut out);
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[i] ^= 1 << bit;
                out.clear();
                let _ = decode(&flipped, &mut out);
            }
        }
        assert!(decode(&[0, 0], &mut out).is_err());
        assert!(decode(&[5, 0x71, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], &mut out).is_err());
    }
}
