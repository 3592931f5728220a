//! Upstream Prometheus's histogram chunk encodings, byte for byte: `chunkenc.HistogramChunk`
//! (integer counts, `Chunk.Encoding` 2) and `chunkenc.FloatHistogramChunk` (float counts, 3),
//! what remote read's streamed answers carry for native histograms. Pyrite's own histogram
//! chunks differ (see [`super::histogram`]); samples are re-encoded into these when they leave.
//! Which samples share a chunk is [`super::upstream_series`]'s business: here every sample
//! given has the first one's layout (a staleness marker aside).
//!
//! Layout, bits most significant first, nothing byte-aligned after the header:
//!
//! ```text
//! header  sample count u16 BE | flags u8: counter-reset header in the top 2 bits
//!         (00 unknown, 10 reset, 01 not reset, 11 gauge)
//! layout  zero threshold: 0x00 for 0; 243 + e for 2^(e-1) with e in -242..=11; else 0xFF + f64
//!         schema varbit-int
//!         positive spans, negative spans: count varbit-uint, per span length varbit-uint,
//!         offset varbit-int
//!         [schema -53] custom bounds: count varbit-uint, per bound: b*1000+1 as varbit-uint
//!         when b*1000 is a whole number in 0..=33554430, else a 0 bit + f64
//! sample 1  time varbit-int, then
//!         integer: count, zero count varbit-uint; sum f64; each bucket's count less the
//!                  previous bucket's (positive buckets, then negative) varbit-int
//!         float:   count, zero count, sum, each bucket's count: f64
//! sample n  time: delta-of-delta varbit-int (the second sample's delta is its dod from 0)
//!         integer: count and zero count dod varbit-int; sum XOR; each bucket delta's dod
//!         float:   count, zero count, sum, each bucket: XOR against the previous sample's
//! ```
//!
//! varbit-int: `0` for 0, else `10`+3 bits, `110`+6, `1110`+9, `11110`+12, `111110`+18,
//! `1111110`+25, `11111110`+56, `11111111`+64 (n bits hold -(2^(n-1)-1) ..= 2^(n-1));
//! varbit-uint: the same prefixes, n bits holding 0 ..= 2^n-1. XOR is the float chunks' value
//! code ([`XorValues`], each field its own window). A staleness marker (its sum upstream's stale
//! NaN) carries no buckets: first in a chunk its layout is empty (schema 0, threshold 0, no spans),
//! after the first its count and zero count dods are written as 0.

use pyrite_core::histogram::{FloatHistogram, Span, CUSTOM_BUCKETS_SCHEMA};
use pyrite_core::remote::read::{CHUNK_FLOAT_HISTOGRAM, CHUNK_HISTOGRAM};
use pyrite_core::value::{is_stale_nan, HistogramSample};

use super::bits::BitWriter;
use super::xor::XorValues;

/// Which of the two chunk encodings: upstream stores integer histograms (what client libraries
/// expose) in one and float histograms (recording rules' results) in the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counts {
    Integer,
    Float,
}

impl Counts {
    /// The remote-read protobuf's `Chunk.Encoding` (upstream's `chunkenc.Encoding`).
    pub fn chunk_encoding(self) -> i32 {
        match self {
            Counts::Integer => CHUNK_HISTOGRAM,
            Counts::Float => CHUNK_FLOAT_HISTOGRAM,
        }
    }
}

/// Upstream's `CounterResetHeader`: what a chunk says about the counter reset before its first
/// sample, or that it holds gauge histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetHeader {
    Unknown,
    CounterReset,
    NotCounterReset,
    Gauge,
}

impl ResetHeader {
    /// The header's bits in the flags byte.
    pub fn bits(self) -> u8 {
        match self {
            ResetHeader::Unknown => 0b0000_0000,
            ResetHeader::CounterReset => 0b1000_0000,
            ResetHeader::NotCounterReset => 0b0100_0000,
            ResetHeader::Gauge => 0b1100_0000,
        }
    }
}

/// `samples` (at most `u16::MAX`, in increasing time order, all with the first sample's layout
/// but for staleness markers) as one upstream histogram chunk of `counts`. For
/// [`Counts::Integer`] every count must be a whole number.
pub fn encode(counts: Counts, header: ResetHeader, samples: &[HistogramSample]) -> Vec<u8> {
    let samples = &samples[..samples.len().min(u16::MAX as usize)];
    let mut w = BitWriter::default();
    w.write_bits(samples.len() as u64, 16);
    w.write_bits(u64::from(header.bits()), 8);
    let Some(first) = samples.first() else {
        return w.bytes().to_vec();
    };
    let stale_layout = FloatHistogram::default();
    write_layout(&mut w, if is_stale_nan(first.h.sum) { &stale_layout } else { &first.h });
    match counts {
        Counts::Integer => {
            let mut state = IntegerState::first(&mut w, first.t, &first.h);
            samples[1..].iter().for_each(|s| state.write(&mut w, s.t, &s.h));
        }
        Counts::Float => {
            let mut state = FloatState::first(&mut w, first.t, &first.h);
            samples[1..].iter().for_each(|s| state.write(&mut w, s.t, &s.h));
        }
    }
    w.bytes().to_vec()
}

/// The counts an integer chunk writes for `h`: count, zero count, and each bucket's count less
/// the previous one's (positive, then negative); none but zeros for a staleness marker.
fn integer_counts(h: &FloatHistogram) -> (u64, u64, Vec<i64>) {
    if is_stale_nan(h.sum) {
        return (0, 0, Vec::new());
    }
    let deltas = |buckets: &[f64]| {
        let mut previous = 0i64;
        buckets
            .iter()
            .map(|&c| {
                let delta = (c as i64).wrapping_sub(previous);
                previous = c as i64;
                delta
            })
            .collect::<Vec<_>>()
    };
    let mut buckets = deltas(&h.positive_buckets);
    buckets.extend(deltas(&h.negative_buckets));
    (h.count as u64, h.zero_count as u64, buckets)
}

/// What an integer chunk's next sample is written against (upstream's `HistogramAppender`).
struct IntegerState {
    t: i64,
    t_delta: i64,
    count: u64,
    zero_count: u64,
    count_delta: i64,
    zero_delta: i64,
    sum: XorValues,
    buckets: Vec<i64>,
    bucket_deltas: Vec<i64>,
}

impl IntegerState {
    fn first(w: &mut BitWriter, t: i64, h: &FloatHistogram) -> IntegerState {
        let (count, zero_count, buckets) = integer_counts(h);
        put_varbit_int(w, t);
        put_varbit_uint(w, count);
        put_varbit_uint(w, zero_count);
        w.write_bits(h.sum.to_bits(), 64);
        buckets.iter().for_each(|&b| put_varbit_int(w, b));
        IntegerState {
            t,
            t_delta: 0,
            count,
            zero_count,
            count_delta: 0,
            zero_delta: 0,
            sum: XorValues::new(h.sum),
            bucket_deltas: vec![0; buckets.len()],
            buckets,
        }
    }

    fn write(&mut self, w: &mut BitWriter, t: i64, h: &FloatHistogram) {
        let (count, zero_count, buckets) = integer_counts(h);
        let t_delta = t.wrapping_sub(self.t);
        let count_delta = (count as i64).wrapping_sub(self.count as i64);
        let zero_delta = (zero_count as i64).wrapping_sub(self.zero_count as i64);
        put_varbit_int(w, t_delta.wrapping_sub(self.t_delta));
        if is_stale_nan(h.sum) {
            put_varbit_int(w, 0);
            put_varbit_int(w, 0);
        } else {
            put_varbit_int(w, count_delta.wrapping_sub(self.count_delta));
            put_varbit_int(w, zero_delta.wrapping_sub(self.zero_delta));
        }
        self.sum.write(w, h.sum);
        for ((b, previous), previous_delta) in buckets.iter().zip(&mut self.buckets).zip(&mut self.bucket_deltas) {
            let delta = b.wrapping_sub(*previous);
            put_varbit_int(w, delta.wrapping_sub(*previous_delta));
            (*previous, *previous_delta) = (*b, delta);
        }
        (self.t, self.t_delta, self.count, self.zero_count) = (t, t_delta, count, zero_count);
        (self.count_delta, self.zero_delta) = (count_delta, zero_delta);
    }
}

/// What a float chunk's next sample is written against (upstream's
/// `FloatHistogramAppender`): each count XORed against its own previous value.
struct FloatState {
    t: i64,
    t_delta: i64,
    count: XorValues,
    zero_count: XorValues,
    sum: XorValues,
    buckets: Vec<XorValues>,
}

/// A float sample's count, zero count and buckets (positive, then negative); a staleness
/// marker's are zeros and no buckets.
fn float_counts(h: &FloatHistogram) -> (f64, f64, Vec<f64>) {
    if is_stale_nan(h.sum) {
        return (0.0, 0.0, Vec::new());
    }
    (h.count, h.zero_count, h.positive_buckets.iter().chain(&h.negative_buckets).copied().collect())
}

impl FloatState {
    fn first(w: &mut BitWriter, t: i64, h: &FloatHistogram) -> FloatState {
        let (count, zero_count, buckets) = float_counts(h);
        put_varbit_int(w, t);
        for v in [count, zero_count, h.sum].iter().chain(&buckets) {
            w.write_bits(v.to_bits(), 64);
        }
        FloatState {
            t,
            t_delta: 0,
            count: XorValues::new(count),
            zero_count: XorValues::new(zero_count),
            sum: XorValues::new(h.sum),
            buckets: buckets.into_iter().map(XorValues::new).collect(),
        }
    }

    fn write(&mut self, w: &mut BitWriter, t: i64, h: &FloatHistogram) {
        let (count, zero_count, buckets) = float_counts(h);
        let t_delta = t.wrapping_sub(self.t);
        put_varbit_int(w, t_delta.wrapping_sub(self.t_delta));
        self.count.write(w, count);
        self.zero_count.write(w, zero_count);
        self.sum.write(w, h.sum);
        for (v, coder) in buckets.into_iter().zip(&mut self.buckets) {
            coder.write(w, v);
        }
        (self.t, self.t_delta) = (t, t_delta);
    }
}

/// The chunk's layout, written once before its first sample.
fn write_layout(w: &mut BitWriter, h: &FloatHistogram) {
    write_zero_threshold(w, h.zero_threshold);
    put_varbit_int(w, i64::from(h.schema));
    write_spans(w, &h.positive_spans);
    write_spans(w, &h.negative_spans);
    if h.schema == CUSTOM_BUCKETS_SCHEMA {
        put_varbit_uint(w, h.custom_values.len() as u64);
        h.custom_values.iter().for_each(|&b| write_custom_bound(w, b));
    }
}

fn write_spans(w: &mut BitWriter, spans: &[Span]) {
    put_varbit_uint(w, spans.len() as u64);
    for s in spans {
        put_varbit_uint(w, u64::from(s.length));
        put_varbit_int(w, i64::from(s.offset));
    }
}

/// One byte for 0 and for the powers of two 2^-243 ..= 2^10 (upstream's `putZeroThreshold`):
/// 0.5 * 2^e stored as e + 243; anything else as 0xFF and the f64.
fn write_zero_threshold(w: &mut BitWriter, threshold: f64) {
    if threshold == 0.0 {
        return w.write_bits(0, 8);
    }
    let bits = threshold.to_bits();
    let biased = (bits >> 52) as i64; // the sign bit is zero for the positive ones wanted
    let exponent = biased - 1022; // threshold = 0.5 * 2^exponent when the mantissa is zero
    if bits & ((1 << 52) - 1) == 0 && (1..=2046).contains(&biased) && (-242..=11).contains(&exponent) {
        w.write_bits((exponent + 243) as u64, 8);
    } else {
        w.write_bits(0xFF, 8);
        w.write_bits(bits, 64);
    }
}

/// Upstream's `putCustomBound`: a bound that is a multiple of 0.001 up to 33554.430 as
/// bound*1000+1 (varbit-uint, never 0); any other as a 0 bit and the f64.
fn write_custom_bound(w: &mut BitWriter, bound: f64) {
    let thousandths = bound * 1000.0;
    let whole = (bound * 1000.0).round() as u64 as f64 / 1000.0 == bound;
    if !(0.0..=33_554_430.0).contains(&thousandths) || !whole {
        w.write_bit(false);
        w.write_bits(bound.to_bits(), 64);
    } else {
        put_varbit_uint(w, thousandths.round() as u64 + 1);
    }
}

/// Prefix bits, their count and the value bits after them, for each varbit width.
const VARBIT: [(u64, u8, u8); 8] = [
    (0b10, 2, 3),
    (0b110, 3, 6),
    (0b1110, 4, 9),
    (0b11110, 5, 12),
    (0b111110, 6, 18),
    (0b1111110, 7, 25),
    (0b11111110, 8, 56),
    (0b11111111, 8, 64),
];

/// Upstream's `putVarbitInt`.
fn put_varbit_int(w: &mut BitWriter, v: i64) {
    if v == 0 {
        return w.write_bit(false);
    }
    let fits = |n: u8| n == 64 || (-((1i64 << (n - 1)) - 1) <= v && v <= 1i64 << (n - 1));
    let &(prefix, prefix_len, n) = VARBIT.iter().find(|&&(_, _, n)| fits(n)).expect("64 bits hold any value");
    w.write_bits(prefix, prefix_len);
    w.write_bits(v as u64, n);
}

/// Upstream's `putVarbitUint`.
fn put_varbit_uint(w: &mut BitWriter, v: u64) {
    if v == 0 {
        return w.write_bit(false);
    }
    let bits = 64 - v.leading_zeros() as u8;
    let &(prefix, prefix_len, n) = VARBIT.iter().find(|&&(_, _, n)| bits <= n).expect("64 bits hold any value");
    w.write_bits(prefix, prefix_len);
    w.write_bits(v, n);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn bits(f: impl FnOnce(&mut BitWriter)) -> Vec<u8> {
        let mut w = BitWriter::default();
        f(&mut w);
        w.bytes().to_vec()
    }

    #[test]
    fn varbit_bucket_edges() {
        // 4 fits 3 bits (`10` + 100), -4 does not (`110` + 6 bits of -4).
        assert_eq!(bits(|w| put_varbit_int(w, 4)), [0b1010_0000]);
        assert_eq!(bits(|w| put_varbit_int(w, -3)), [0b1010_1000]);
        assert_eq!(bits(|w| put_varbit_int(w, -4)), [0b1101_1110, 0]);
        assert_eq!(bits(|w| put_varbit_uint(w, 7)), [0b1011_1000]);
        assert_eq!(bits(|w| put_varbit_uint(w, 8)), [0b1100_0100, 0]);
        let max = bits(|w| put_varbit_int(w, i64::MIN));
        assert_eq!(max.len(), 9);
        assert_eq!(max[0], 0xFF);
    }

    #[test]
    fn zero_thresholds_and_custom_bounds() {
        // upstream's default threshold 2^-128 is the byte 116
        assert_eq!(bits(|w| write_zero_threshold(w, 2f64.powi(-128))), [116]);
        assert_eq!(bits(|w| write_zero_threshold(w, 1024.0)), [254]);
        assert_eq!(bits(|w| write_zero_threshold(w, 2f64.powi(-243))), [1]);
        assert_eq!(bits(|w| write_zero_threshold(w, 0.0)), [0]);
        for odd in [2048.0, 0.001, -0.5, f64::INFINITY] {
            let b = bits(|w| write_zero_threshold(w, odd));
            assert_eq!(b[0], 0xFF);
            assert_eq!(b[1..], odd.to_bits().to_be_bytes());
        }
        // 0.25 → 251 = `1110` + 9 bits
        assert_eq!(bits(|w| write_custom_bound(w, 0.25)), bits(|w| put_varbit_uint(w, 251)));
        assert_eq!(bits(|w| write_custom_bound(w, 33554.43)), bits(|w| put_varbit_uint(w, 33_554_431)));
        for odd in [-1.0, 33554.431, 0.0001, f64::NAN] {
            let mut expected = BitWriter::default();
            expected.write_bit(false);
            expected.write_bits(odd.to_bits(), 64);
            assert_eq!(bits(|w| write_custom_bound(w, odd)), expected.bytes(), "{odd}");
        }
    }

    #[test]
    fn one_integer_sample_byte_by_byte() {
        let h = FloatHistogram {
            schema: 0,
            count: 3.0,
            zero_count: 1.0,
            sum: 2.0,
            positive_spans: vec![Span { offset: 0, length: 2 }],
            positive_buckets: vec![1.0, 1.0],
            ..FloatHistogram::default()
        };
        let chunk = encode(Counts::Integer, ResetHeader::Gauge, &[HistogramSample { t: 1, h: Arc::new(h) }]);
        let mut w = BitWriter::default();
        w.write_bits(1, 16);
        w.write_bits(0b1100_0000, 8);
        w.write_bits(0, 8); // threshold 0
        w.write_bit(false); // schema 0
        w.write_bits(0b10_001, 5); // one positive span
        w.write_bits(0b10_010, 5); // of length 2
        w.write_bit(false); // at offset 0
        w.write_bit(false); // no negative span
        w.write_bits(0b10_001, 5); // t = 1
        w.write_bits(0b10_011, 5); // count 3
        w.write_bits(0b10_001, 5); // zero count 1
        w.write_bits(2f64.to_bits(), 64);
        w.write_bits(0b10_001, 5); // the first bucket's count, 1
        w.write_bit(false); // the second's less the first's, 0
        assert_eq!(chunk, w.bytes());
    }

    #[test]
    fn staleness_marker_first_has_empty_layout() {
        let stale = FloatHistogram { sum: pyrite_core::value::stale_nan(), ..FloatHistogram::default() };
        let samples =
            [HistogramSample { t: 0, h: Arc::new(stale.clone()) }, HistogramSample { t: 5, h: Arc::new(stale) }];
        let int = encode(Counts::Integer, ResetHeader::Unknown, &samples);
        let mut w = BitWriter::default();
        w.write_bits(2, 16);
        w.write_bits(0, 8);
        w.write_bits(0, 8);
        w.write_bits(0, 3); // schema 0, no spans either side
        w.write_bits(0, 3); // t, count, zero count 0
        w.write_bits(pyrite_core::value::STALE_NAN_BITS, 64);
        w.write_bits(0b110_000101, 9); // time dod 5 (over 4: the 6-bit bucket)
        w.write_bits(0, 3); // count and zero count dods 0, the sum unchanged
        assert_eq!(int, w.bytes());
    }
}
