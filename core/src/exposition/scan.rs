//! Structural scanning: the next occurrence of any of three bytes, 32 bytes at a time with AVX2
//! when the CPU has it (detected at run time), 16 at a time with SSE2 (every x86-64 CPU),
//! byte by byte elsewhere. The exposition parser finds the end of a metric name (` `, `\t`,
//! `{`) and the quotes and braces of a label set this way. Every path gives the same answers;
//! the tests compare them on random input.
//!
//! Why not `memchr::memchr3`: on the parser's searches, which run over a metric name or a label
//! value (tens of bytes), memchr 2.8 was 1.14–1.56× slower than this code (`cargo bench -p
//! pyrite-bench --bench scan`, figures in `bench/RESULTS.md`): its run-time dispatch and
//! small-haystack paths cost more than the search itself. The module is public (hidden) only
//! for that benchmark.

/// Index of the first byte of `hay` equal to `a`, `b` or `c`.
#[inline]
pub fn find3(hay: &[u8], a: u8, b: u8, c: u8) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        if hay.len() >= 32 && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available, as just checked.
            return unsafe { x86::find3_avx2(hay, a, b, c) };
        }
        // SAFETY: SSE2 is part of the x86-64 baseline.
        unsafe { x86::find3_sse2(hay, a, b, c) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    find3_scalar(hay, a, b, c)
}

/// The byte-by-byte reference.
pub fn find3_scalar(hay: &[u8], a: u8, b: u8, c: u8) -> Option<usize> {
    hay.iter().position(|&x| x == a || x == b || x == c)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::find3_scalar;

    /// SSE2: 16 bytes per step, the tail byte by byte.
    #[target_feature(enable = "sse2")]
    pub unsafe fn find3_sse2(hay: &[u8], a: u8, b: u8, c: u8) -> Option<usize> {
        let (va, vb, vc) = (_mm_set1_epi8(a as i8), _mm_set1_epi8(b as i8), _mm_set1_epi8(c as i8));
        let mut i = 0;
        while i + 16 <= hay.len() {
            // SAFETY: `i + 16 <= len`, and the load is unaligned.
            let chunk = unsafe { _mm_loadu_si128(hay.as_ptr().add(i) as *const __m128i) };
            let hits = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(chunk, va), _mm_cmpeq_epi8(chunk, vb)),
                _mm_cmpeq_epi8(chunk, vc),
            );
            let mask = _mm_movemask_epi8(hits) as u32;
            if mask != 0 {
                return Some(i + mask.trailing_zeros() as usize);
            }
            i += 16;
        }
        find3_scalar(&hay[i..], a, b, c).map(|j| i + j)
    }

    /// AVX2: 32 bytes per step, the tail with SSE2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn find3_avx2(hay: &[u8], a: u8, b: u8, c: u8) -> Option<usize> {
        let (va, vb, vc) = (_mm256_set1_epi8(a as i8), _mm256_set1_epi8(b as i8), _mm256_set1_epi8(c as i8));
        let mut i = 0;
        while i + 32 <= hay.len() {
            // SAFETY: `i + 32 <= len`, and the load is unaligned.
            let chunk = unsafe { _mm256_loadu_si256(hay.as_ptr().add(i) as *const __m256i) };
            let hits = _mm256_or_si256(
                _mm256_or_si256(_mm256_cmpeq_epi8(chunk, va), _mm256_cmpeq_epi8(chunk, vb)),
                _mm256_cmpeq_epi8(chunk, vc),
            );
            let mask = _mm256_movemask_epi8(hits) as u32;
            if mask != 0 {
                return Some(i + mask.trailing_zeros() as usize);
            }
            i += 32;
        }
        // SAFETY: SSE2 is implied by AVX2.
        unsafe { find3_sse2(&hay[i..], a, b, c) }.map(|j| i + j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so failures reproduce.
    fn bytes(seed: u64, len: usize, alphabet: &[u8]) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % alphabet.len() as u64) as usize]
            })
            .collect()
    }

    #[test]
    fn every_path_finds_the_same_byte() {
        let alphabet = b"abcdefghijklmnopqrstuvwxyz_0123456789{}\" \t=,\\";
        for seed in 0..2000u64 {
            let len = (seed % 97) as usize;
            let hay = bytes(seed, len, if seed % 3 == 0 { b"abcdefgh" } else { alphabet });
            let expected = find3_scalar(&hay, b' ', b'\t', b'{');
            assert_eq!(find3(&hay, b' ', b'\t', b'{'), expected, "seed {seed}");
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY: SSE2 is baseline; AVX2 only where detected.
                assert_eq!(unsafe { x86::find3_sse2(&hay, b' ', b'\t', b'{') }, expected, "sse2, seed {seed}");
                if std::arch::is_x86_feature_detected!("avx2") {
                    assert_eq!(unsafe { x86::find3_avx2(&hay, b' ', b'\t', b'{') }, expected, "avx2, seed {seed}");
                }
            }
        }
    }
}
