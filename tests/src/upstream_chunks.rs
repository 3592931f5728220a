//! Readers of upstream Prometheus's chunks, written from upstream's readers (`chunkenc`'s
//! iterators, `tsdb/docs/format/chunks.md`) and not from Pyrite's encoders, so that the two
//! check each other: the XOR, histogram and float histogram chunk encodings, and a block's
//! chunks file. Tests read with them what Pyrite's streamed remote-read answers carry and what
//! Prometheus 2.42 stores.
//!
//! They panic on bytes they cannot read: a test failure.

use std::sync::Arc;

use pyrite_core::histogram::{CounterResetHint, FloatHistogram, Span, CUSTOM_BUCKETS_SCHEMA};
use pyrite_core::remote::read::{CHUNK_FLOAT_HISTOGRAM, CHUNK_HISTOGRAM};
use pyrite_core::value::{is_stale_nan, HistogramSample};
use pyrite_tsdb::chunk::upstream_histogram::ResetHeader;

/// Bits of a byte slice, most significant first.
struct Bits<'a>(&'a [u8], usize);

impl Bits<'_> {
    fn bit(&mut self) -> u64 {
        let b = (self.0[self.1 / 8] >> (7 - self.1 % 8)) & 1;
        self.1 += 1;
        b as u64
    }

    fn bits(&mut self, n: usize) -> u64 {
        (0..n).fold(0, |acc, _| (acc << 1) | self.bit())
    }

    fn uvarint(&mut self) -> u64 {
        let (mut x, mut shift) = (0u64, 0);
        loop {
            let b = self.bits(8);
            x |= (b & 0x7f) << shift;
            if b < 0x80 {
                return x;
            }
            shift += 7;
        }
    }

    /// Upstream's `readVarbitInt`/`readVarbitUint`: a prefix of up to 8 ones ended by a zero,
    /// then that many value bits.
    fn varbit(&mut self, signed: bool) -> i64 {
        let mut ones = 0;
        while ones < 8 && self.bit() == 1 {
            ones += 1;
        }
        let size = [0, 3, 6, 9, 12, 18, 25, 56, 64][ones];
        let v = self.bits(size);
        if signed && size != 0 && size != 64 && v > 1 << (size - 1) {
            (v as i64) - (1i64 << size)
        } else {
            v as i64
        }
    }

    fn varbit_int(&mut self) -> i64 {
        self.varbit(true)
    }

    fn varbit_uint(&mut self) -> u64 {
        self.varbit(false) as u64
    }

    fn f64(&mut self) -> f64 {
        f64::from_bits(self.bits(64))
    }
}

/// What a histogram says, whatever its layout (a chunk's may have more, empty buckets): the
/// buckets that hold observations by index, every float as its bits.
#[derive(Debug, PartialEq)]
pub enum Said {
    Stale,
    Histogram {
        schema: i32,
        zero_threshold: u64,
        count: u64,
        zero_count: u64,
        sum: u64,
        positive: Vec<(i32, u64)>,
        negative: Vec<(i32, u64)>,
        custom_values: Vec<u64>,
    },
}

pub fn said(h: &FloatHistogram) -> Said {
    if is_stale_nan(h.sum) {
        return Said::Stale;
    }
    let side = |positive| h.indexed_buckets(positive).filter(|b| b.1 != 0.0).map(|(i, c)| (i, c.to_bits())).collect();
    Said::Histogram {
        schema: h.schema,
        zero_threshold: h.zero_threshold.to_bits(),
        count: h.count.to_bits(),
        zero_count: h.zero_count.to_bits(),
        sum: h.sum.to_bits(),
        positive: side(true),
        negative: side(false),
        custom_values: h.custom_values.iter().map(|v| v.to_bits()).collect(),
    }
}

/// One XOR-coded value stream (upstream's `xorRead`).
#[derive(Default)]
struct Xor {
    v: u64,
    leading: usize,
    trailing: usize,
}

impl Xor {
    fn new(first: f64) -> Xor {
        Xor { v: first.to_bits(), ..Xor::default() }
    }

    fn read(&mut self, r: &mut Bits) -> f64 {
        if r.bit() == 1 {
            if r.bit() == 1 {
                self.leading = r.bits(5) as usize;
                let significant = match r.bits(6) as usize {
                    0 => 64,
                    n => n,
                };
                self.trailing = 64 - self.leading - significant;
            }
            self.v ^= r.bits(64 - self.leading - self.trailing) << self.trailing;
        }
        f64::from_bits(self.v)
    }
}

/// An upstream XOR chunk's samples, as upstream's `xorIterator` reads them.
pub fn decode_xor(data: &[u8]) -> Vec<(i64, f64)> {
    let count = u16::from_be_bytes([data[0], data[1]]) as usize;
    let mut r = Bits(&data[2..], 0);
    let mut out = Vec::with_capacity(count);
    let (mut t, mut delta) = (0i64, 0i64);
    let mut value = Xor::default();
    for i in 0..count {
        match i {
            0 => {
                let z = r.uvarint();
                t = ((z >> 1) as i64) ^ -((z & 1) as i64);
                value = Xor::new(r.f64());
                out.push((t, f64::from_bits(value.v)));
                continue;
            }
            1 => delta = r.uvarint() as i64,
            _ => {
                let mut prefix = 0;
                while prefix < 4 && r.bit() == 1 {
                    prefix += 1;
                }
                let size = [0, 14, 17, 20, 64][prefix];
                let mut dod = r.bits(size) as i64;
                if size != 0 && size != 64 && dod > 1 << (size - 1) {
                    dod -= 1 << size;
                }
                delta += dod;
            }
        }
        t += delta;
        out.push((t, value.read(&mut r)));
    }
    out
}

/// A histogram chunk read back: its header and its samples, each with the chunk's layout and
/// the hint upstream's iterator gives (gauge in a gauge chunk; else unknown for the first,
/// not-reset for the others).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramChunk {
    pub header: ResetHeader,
    pub samples: Vec<HistogramSample>,
}

/// An upstream histogram chunk ([`CHUNK_HISTOGRAM`]) or float histogram chunk
/// ([`CHUNK_FLOAT_HISTOGRAM`]), as upstream's `histogramIterator` and
/// `floatHistogramIterator` read them.
pub fn decode_histogram_chunk(encoding: i32, data: &[u8]) -> HistogramChunk {
    assert!([CHUNK_HISTOGRAM, CHUNK_FLOAT_HISTOGRAM].contains(&encoding), "encoding {encoding}");
    let integer = encoding == CHUNK_HISTOGRAM;
    let count = u16::from_be_bytes([data[0], data[1]]) as usize;
    let header = match data[2] & 0xC0 {
        0b1000_0000 => ResetHeader::CounterReset,
        0b0100_0000 => ResetHeader::NotCounterReset,
        0b1100_0000 => ResetHeader::Gauge,
        _ => ResetHeader::Unknown,
    };
    let mut samples = Vec::with_capacity(count);
    if count == 0 {
        return HistogramChunk { header, samples };
    }
    let mut r = Bits(&data[3..], 0);
    let layout = read_layout(&mut r);
    let buckets = |spans: &[Span]| spans.iter().map(|s| s.length as usize).sum::<usize>();
    let (positive, negative) = (buckets(&layout.positive_spans), buckets(&layout.negative_spans));
    // State: time, its delta; integer: count, zero count, their deltas, bucket deltas (each
    // bucket's count less the previous bucket's) and their deltas over time.
    let (mut t, mut t_delta) = (0i64, 0i64);
    let (mut count_v, mut zero_v, mut count_d, mut zero_d) = (0i64, 0i64, 0i64, 0i64);
    let mut deltas = vec![0i64; positive + negative];
    let mut delta_deltas = vec![0i64; positive + negative];
    let (mut count_x, mut zero_x, mut sum_x) = (Xor::default(), Xor::default(), Xor::default());
    let mut bucket_x: Vec<Xor> = Vec::new();
    for i in 0..count {
        let mut h = FloatHistogram { counter_reset_hint: hint(header, i), ..layout.clone() };
        let stale;
        if i == 0 {
            t = r.varbit_int();
            if integer {
                (count_v, zero_v) = (r.varbit_uint() as i64, r.varbit_uint() as i64);
                sum_x = Xor::new(r.f64());
                deltas.iter_mut().for_each(|d| *d = r.varbit_int());
            } else {
                (count_x, zero_x, sum_x) = (Xor::new(r.f64()), Xor::new(r.f64()), Xor::new(r.f64()));
                bucket_x = (0..positive + negative).map(|_| Xor::new(r.f64())).collect();
            }
            stale = is_stale_nan(f64::from_bits(sum_x.v));
        } else {
            t_delta += r.varbit_int();
            t += t_delta;
            if integer {
                count_d += r.varbit_int();
                zero_d += r.varbit_int();
                count_v += count_d;
                zero_v += zero_d;
                sum_x.read(&mut r);
            } else {
                count_x.read(&mut r);
                zero_x.read(&mut r);
                sum_x.read(&mut r);
            }
            stale = is_stale_nan(f64::from_bits(sum_x.v));
            if !stale {
                if integer {
                    for (d, dd) in deltas.iter_mut().zip(&mut delta_deltas) {
                        *dd += r.varbit_int();
                        *d += *dd;
                    }
                } else {
                    for x in &mut bucket_x {
                        x.read(&mut r);
                    }
                }
            }
        }
        h.sum = f64::from_bits(sum_x.v);
        let counts: Vec<f64> = if integer {
            (h.count, h.zero_count) = (count_v as f64, zero_v as f64);
            let absolute = |d: &[i64]| {
                d.iter()
                    .scan(0i64, |c, d| {
                        Some({
                            *c += d;
                            *c as f64
                        })
                    })
                    .collect::<Vec<_>>()
            };
            [absolute(&deltas[..positive]), absolute(&deltas[positive..])].concat()
        } else {
            (h.count, h.zero_count) = (f64::from_bits(count_x.v), f64::from_bits(zero_x.v));
            bucket_x.iter().map(|x| f64::from_bits(x.v)).collect()
        };
        (h.positive_buckets, h.negative_buckets) = (counts[..positive].to_vec(), counts[positive..].to_vec());
        if stale {
            // Upstream's iterator answers a staleness marker as a histogram of its sum alone.
            h = FloatHistogram { sum: h.sum, ..FloatHistogram::default() };
        }
        samples.push(HistogramSample { t, h: Arc::new(h) });
    }
    HistogramChunk { header, samples }
}

/// The hint upstream's iterator gives the `i`th sample of a chunk (`counterResetHint`).
fn hint(header: ResetHeader, i: usize) -> CounterResetHint {
    match (header, i) {
        (ResetHeader::Gauge, _) => CounterResetHint::Gauge,
        (_, 0) => CounterResetHint::Unknown,
        _ => CounterResetHint::NotCounterReset,
    }
}

/// Upstream's `readHistogramChunkLayout`, as a histogram without counts.
fn read_layout(r: &mut Bits) -> FloatHistogram {
    let zero_threshold = match r.bits(8) {
        0 => 0.0,
        255 => r.f64(),
        b => 0.5 * 2f64.powi(b as i32 - 243),
    };
    let schema = r.varbit_int() as i32;
    let mut spans = || {
        (0..r.varbit_uint())
            .map(|_| {
                let length = r.varbit_uint() as u32;
                Span { length, offset: r.varbit_int() as i32 }
            })
            .collect::<Vec<_>>()
    };
    let (positive_spans, negative_spans) = (spans(), spans());
    let custom_values = match schema {
        CUSTOM_BUCKETS_SCHEMA => (0..r.varbit_uint())
            .map(|_| match r.varbit_uint() {
                0 => r.f64(),
                v => (v - 1) as f64 / 1000.0,
            })
            .collect(),
        _ => Vec::new(),
    };
    FloatHistogram {
        schema,
        zero_threshold,
        positive_spans,
        negative_spans,
        custom_values,
        ..FloatHistogram::default()
    }
}

/// The chunks of a block's chunks file (`chunks/000001`): after the 8-byte header (magic
/// 0x85BD40DD, version 1, padding), each chunk's data length as a uvarint, its encoding byte,
/// its data and the CRC32 (Castagnoli) of encoding and data. Each as (encoding, data).
pub fn chunks_file(bytes: &[u8]) -> Vec<(i32, Vec<u8>)> {
    assert_eq!(bytes[..4], [0x85, 0xBD, 0x40, 0xDD], "a chunks file's magic number");
    assert_eq!(bytes[4], 1, "chunks file version 1");
    let mut at = 8;
    let mut out = Vec::new();
    while at < bytes.len() {
        let mut r = Bits(&bytes[at..], 0);
        let len = r.uvarint() as usize;
        at += r.1 / 8;
        let (encoding, data) = (bytes[at], &bytes[at + 1..at + 1 + len]);
        let crc = u32::from_be_bytes(bytes[at + 1 + len..at + 5 + len].try_into().expect("4 bytes"));
        assert_eq!(crc, crc32c::crc32c(&bytes[at..at + 1 + len]), "chunk at {at}: checksum");
        out.push((i32::from(encoding), data.to_vec()));
        at += 5 + len;
    }
    out
}
