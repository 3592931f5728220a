//! Pyrite's encoders of upstream's histogram chunks (`pyrite_tsdb::chunk::upstream_series` and
//! `upstream_histogram`), read back with readers written from upstream's
//! (`pyrite_tests::upstream_chunks`): every sample comes back with its time, schema, threshold,
//! counts, sum and bounds, in chunks with the headers upstream's appender writes.
//! (`native_histograms.rs` checks the bytes against what Prometheus 2.42 stores.)

use std::sync::Arc;

use pyrite_core::histogram::{CounterResetHint, FloatHistogram, Span, CUSTOM_BUCKETS_SCHEMA};
use pyrite_core::remote::read::{CHUNK_FLOAT_HISTOGRAM, CHUNK_HISTOGRAM, CHUNK_XOR};
use pyrite_core::value::{stale_nan, HistogramSample, Sample};
use pyrite_tests::upstream_chunks::{decode_histogram_chunk, decode_xor, said, Said};
use pyrite_tsdb::chunk::upstream_histogram::ResetHeader;
use pyrite_tsdb::chunk::upstream_series::chunks;

/// One decoded chunk: its encoding, header and samples.
struct Read {
    encoding: i32,
    header: Option<ResetHeader>,
    histograms: Vec<HistogramSample>,
    floats: Vec<(i64, f64)>,
}

/// Encodes the series, decodes every chunk, checks that the samples come back, and returns
/// the chunks read.
fn round_trip(floats: &[Sample], histograms: &[HistogramSample]) -> Vec<Read> {
    let mut read = Vec::new();
    for c in chunks(floats, histograms) {
        let r = if c.encoding == CHUNK_XOR {
            Read { encoding: c.encoding, header: None, histograms: Vec::new(), floats: decode_xor(&c.data) }
        } else {
            let d = decode_histogram_chunk(c.encoding, &c.data);
            Read { encoding: c.encoding, header: Some(d.header), histograms: d.samples, floats: Vec::new() }
        };
        let times: Vec<i64> = r.histograms.iter().map(|s| s.t).chain(r.floats.iter().map(|s| s.0)).collect();
        assert_eq!((c.min_time, c.max_time), (times[0], times[times.len() - 1]));
        read.push(r);
    }
    let got: Vec<(i64, Said)> = read.iter().flat_map(|r| r.histograms.iter().map(|s| (s.t, said(&s.h)))).collect();
    let want: Vec<(i64, Said)> = histograms.iter().map(|s| (s.t, said(&s.h))).collect();
    assert_eq!(got, want);
    let got: Vec<(i64, u64)> = read.iter().flat_map(|r| r.floats.iter().map(|s| (s.0, s.1.to_bits()))).collect();
    let want: Vec<(i64, u64)> = floats.iter().map(|s| (s.t, s.v.to_bits())).collect();
    assert_eq!(got, want);
    read
}

fn at(t: i64, h: FloatHistogram) -> HistogramSample {
    HistogramSample { t, h: Arc::new(h) }
}

/// A histogram with these positive and negative buckets (index, count) in spans as given by
/// runs of consecutive indices.
fn hist(schema: i32, positive: &[(i32, f64)], negative: &[(i32, f64)], zero: f64, sum: f64) -> FloatHistogram {
    let spans = |b: &[(i32, f64)]| {
        let mut out: Vec<Span> = Vec::new();
        let mut last = 0;
        for (n, &(i, _)) in b.iter().enumerate() {
            match out.last_mut() {
                Some(s) if i == last + 1 => s.length += 1,
                _ => out.push(Span { offset: if n == 0 { i } else { i - last - 1 }, length: 1 }),
            }
            last = i;
        }
        out
    };
    let counts = |b: &[(i32, f64)]| b.iter().map(|b| b.1).collect::<Vec<_>>();
    FloatHistogram {
        schema,
        zero_threshold: 2f64.powi(-128),
        zero_count: zero,
        count: zero + positive.iter().chain(negative).map(|b| b.1).sum::<f64>(),
        sum,
        positive_spans: spans(positive),
        positive_buckets: counts(positive),
        negative_spans: spans(negative),
        negative_buckets: counts(negative),
        ..FloatHistogram::default()
    }
}

fn headers(read: &[Read]) -> Vec<(i32, Option<ResetHeader>, usize)> {
    read.iter().map(|r| (r.encoding, r.header, r.histograms.len() + r.floats.len())).collect()
}

#[test]
fn schema_and_threshold_changes_start_chunks() {
    let samples = [
        at(1000, hist(0, &[(0, 1.0), (1, 2.0)], &[], 1.0, 3.0)),
        at(2000, hist(0, &[(0, 2.0), (1, 3.0)], &[], 1.0, 5.0)),
        at(3000, hist(-1, &[(0, 5.0)], &[], 1.0, 5.0)),
        at(4000, hist(-1, &[(0, 6.0)], &[], 1.0, 7.0)),
        at(5000, FloatHistogram { zero_threshold: 0.001, ..hist(-1, &[(0, 6.0)], &[], 2.0, 8.0) }),
    ];
    let read = round_trip(&[], &samples);
    let unknown = Some(ResetHeader::Unknown);
    assert_eq!(
        headers(&read),
        [(CHUNK_HISTOGRAM, unknown, 2), (CHUNK_HISTOGRAM, unknown, 2), (CHUNK_HISTOGRAM, unknown, 1)]
    );
}

#[test]
fn bucket_layout_changes_widen_the_chunk() {
    let samples = [
        at(0, hist(2, &[(-3, 1.0), (5, 1.0)], &[(0, 1.0)], 0.0, 1.0)),
        at(15, hist(2, &[(-3, 1.0), (4, 2.0), (5, 1.0)], &[(0, 1.0)], 0.0, 2.0)),
        at(30, hist(2, &[(-3, 1.0), (4, 2.0), (5, 1.0), (9, 4.0)], &[(-1, 3.0), (0, 1.0)], 0.0, 3.0)),
        // empty buckets on both sides, then left out
        at(
            45,
            hist(2, &[(-5, 0.0), (-3, 1.0), (4, 2.0), (5, 1.0), (9, 4.0)], &[(-1, 3.0), (0, 1.0), (7, 0.0)], 0.0, 4.0),
        ),
        at(60, hist(2, &[(-3, 1.0), (4, 2.0), (5, 1.0), (9, 4.0)], &[(-1, 3.0), (0, 1.0)], 0.0, 5.0)),
        // left out and a new one at once
        at(75, hist(2, &[(-3, 1.0), (4, 2.0), (5, 1.0), (9, 4.0), (100, 1.0)], &[(-1, 3.0), (0, 1.0)], 0.0, 6.0)),
    ];
    let read = round_trip(&[], &samples);
    assert_eq!(headers(&read), [(CHUNK_HISTOGRAM, Some(ResetHeader::Unknown), 6)]);
    // every sample has the chunk's widened layout
    let layout = &read[0].histograms[0].h;
    assert_eq!(layout.positive_buckets.len(), 6);
    assert_eq!(layout.negative_buckets.len(), 3);
}

#[test]
fn counter_resets_and_hints() {
    let h = |count: f64| hist(0, &[(0, count)], &[], 0.0, count);
    let samples = [
        at(0, h(5.0)),
        at(1, h(6.0)),
        at(2, h(1.0)),                                                                          // went down
        at(3, FloatHistogram { counter_reset_hint: CounterResetHint::CounterReset, ..h(2.0) }), // said so
        at(4, FloatHistogram { counter_reset_hint: CounterResetHint::NotCounterReset, ..h(3.0) }),
        at(5, hist(0, &[(1, 3.0)], &[], 0.0, 1.0)), // a bucket in use went missing
        at(6, hist(0, &[(1, 3.0)], &[], 1.0, 1.0)), // the zero bucket grew
        at(7, hist(0, &[(1, 3.0)], &[], 0.0, 1.0)), // and shrank
    ];
    let read = round_trip(&[], &samples);
    let (unknown, reset) = (Some(ResetHeader::Unknown), Some(ResetHeader::CounterReset));
    let expected = [
        (CHUNK_HISTOGRAM, unknown, 2),
        (CHUNK_HISTOGRAM, reset, 1),
        (CHUNK_HISTOGRAM, reset, 2),
        (CHUNK_HISTOGRAM, reset, 2),
        (CHUNK_HISTOGRAM, reset, 1),
    ];
    assert_eq!(headers(&read), expected);
}

#[test]
fn gauge_histograms_stay_in_gauge_chunks() {
    let gauge = |p: &[(i32, f64)], n: &[(i32, f64)]| FloatHistogram {
        counter_reset_hint: CounterResetHint::Gauge,
        ..hist(1, p, n, 2.0, -4.5)
    };
    let samples = [
        at(0, gauge(&[(0, 4.0), (1, 1.0)], &[])),
        at(10, gauge(&[(1, 1.0)], &[(3, 2.0)])), // down, a bucket gone, a new side
        at(20, gauge(&[(0, 9.0), (7, 1.0)], &[])),
        at(30, hist(1, &[(0, 9.0)], &[], 2.0, 1.0)), // a counter sample
        at(40, gauge(&[(0, 1.0)], &[])),
    ];
    let read = round_trip(&[], &samples);
    let gauge_header = Some(ResetHeader::Gauge);
    let expected = [
        (CHUNK_HISTOGRAM, gauge_header, 3),
        (CHUNK_HISTOGRAM, Some(ResetHeader::NotCounterReset), 1),
        (CHUNK_HISTOGRAM, gauge_header, 1),
    ];
    assert_eq!(headers(&read), expected);
    assert!(read[0].histograms.iter().all(|s| s.h.counter_reset_hint == CounterResetHint::Gauge));
}

#[test]
fn staleness_markers() {
    let stale = || FloatHistogram { sum: stale_nan(), ..FloatHistogram::default() };
    let fractional = hist(0, &[(0, 0.25)], &[(0, 1.5)], 0.0, 1.0);
    let samples = [
        at(0, stale()), // a series starting with a marker
        at(10, hist(0, &[(0, 1.0)], &[], 0.0, 1.0)),
        at(20, hist(0, &[(0, 2.0)], &[], 0.0, 2.0)),
        at(30, stale()),
        at(40, stale()),
        at(50, hist(0, &[(0, 3.0)], &[], 0.0, 3.0)), // after a marker: a new chunk
        at(60, fractional),
        at(70, stale()), // a float histogram's marker, in its chunk
    ];
    let read = round_trip(&[], &samples);
    let unknown = Some(ResetHeader::Unknown);
    let expected = [
        (CHUNK_HISTOGRAM, unknown, 1),
        (CHUNK_HISTOGRAM, unknown, 4),
        (CHUNK_HISTOGRAM, unknown, 1),
        (CHUNK_FLOAT_HISTOGRAM, unknown, 2),
    ];
    assert_eq!(headers(&read), expected);
}

#[test]
fn custom_bucket_bounds() {
    let nhcb = |bounds: &[f64], counts: &[(i32, f64)]| FloatHistogram {
        custom_values: bounds.to_vec(),
        zero_threshold: 0.0,
        ..hist(CUSTOM_BUCKETS_SCHEMA, counts, &[], 0.0, 10.0)
    };
    // thousandths up to 33554.43 take a varbit; others (finer, larger, negative) their f64
    let bounds = [-5.0, 0.0001, 0.005, 0.25, 1.0, 33554.43, 33554.431, 1e12];
    let samples = [
        at(0, nhcb(&bounds, &[(0, 1.0), (3, 2.0), (8, 1.0)])),
        at(60, nhcb(&bounds, &[(0, 1.0), (3, 2.0), (4, 5.0), (8, 1.0)])),
        at(120, nhcb(&bounds[1..], &[(0, 9.0)])), // other bounds: a reset
    ];
    let read = round_trip(&[], &samples);
    let expected =
        [(CHUNK_HISTOGRAM, Some(ResetHeader::Unknown), 2), (CHUNK_HISTOGRAM, Some(ResetHeader::CounterReset), 1)];
    assert_eq!(headers(&read), expected);
}

#[test]
fn float_histograms_and_type_changes() {
    let float = |k: f64| hist(3, &[(-2, 0.5 * k), (1, 1.0 / 3.0 * k)], &[(4, 1e-9 * k)], 0.1 * k, 7.7 * k);
    let floats = [Sample { t: 0, v: 1.0 }, Sample { t: 10, v: f64::NAN }, Sample { t: 40, v: 2.0 }];
    let histograms = [
        at(20, float(1.0)),
        at(30, float(2.0)),
        at(50, float(3.0)),
        at(60, float(0.5)), // went down: a reset
        at(70, hist(3, &[(0, 4.0)], &[], 0.0, 1.0)),
        at(80, float(4.0)),
    ];
    let read = round_trip(&floats, &histograms);
    let unknown = Some(ResetHeader::Unknown);
    let expected = [
        (CHUNK_XOR, None, 2),
        (CHUNK_FLOAT_HISTOGRAM, unknown, 2),
        (CHUNK_XOR, None, 1),
        (CHUNK_FLOAT_HISTOGRAM, unknown, 1),
        (CHUNK_FLOAT_HISTOGRAM, Some(ResetHeader::CounterReset), 1),
        (CHUNK_HISTOGRAM, unknown, 1),
        (CHUNK_FLOAT_HISTOGRAM, unknown, 1),
    ];
    assert_eq!(headers(&read), expected);
}

/// Many samples of every kind from a small generator: each comes back.
#[test]
fn generated_series() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..40 {
        let mut t = next(1 << 40) as i64 - (1 << 39);
        let mut counts = [0u64; 12];
        let mut histograms = Vec::new();
        for _ in 0..300 {
            t += 1 + next(if round % 2 == 0 { 30 } else { 100_000 }) as i64;
            for c in counts.iter_mut() {
                match next(20) {
                    0 => *c = 0,
                    1..=10 => *c += next(1000),
                    _ => {}
                }
            }
            if next(40) == 0 {
                counts = [0; 12];
            }
            let used: Vec<(i32, f64)> = counts
                .iter()
                .enumerate()
                .filter(|(i, c)| **c > 0 || i % 3 == 0)
                .map(|(i, c)| (i as i32 * 2 - 7, *c as f64))
                .collect();
            let (positive, negative) = used.split_at(used.len() / 2);
            let mut h = hist(next(3) as i32, positive, negative, next(5) as f64, next(1 << 20) as f64 / 7.0);
            match next(30) {
                0 => h = FloatHistogram { sum: stale_nan(), ..FloatHistogram::default() },
                1 => h.counter_reset_hint = CounterResetHint::Gauge,
                2 => h.count += 0.5,
                _ => {}
            }
            histograms.push(at(t, h));
        }
        round_trip(&[], &histograms);
    }
}
