//! A series' samples cut into upstream's chunks, as remote read's streamed answers send them:
//! which samples share a chunk, in which encoding, and with which counter-reset header.
//!
//! As upstream's `storage.NewSeriesToChunkEncoder`, the code upstream re-encodes a series of
//! samples with: the samples in time order, floats and histograms merged; a new chunk when the
//! sample type changes (float, integer histogram, float histogram) and after 120 samples; and
//! for histograms a new chunk where upstream's appender (`AppendHistogram` with no previous
//! appender) refuses to append. It refuses a sample of another schema or zero threshold (header
//! unknown), a counter reset (header reset: a count or a bucket went down, a bucket in use
//! went missing, other custom bounds, or the sample's hint says so), a sample after a staleness
//! marker (unknown), a gauge sample after counter ones (gauge) and the other way round
//! (integer: not reset; float: unknown). A chunk's first sample sets its header from its hint
//! (gauge or reset, else unknown). New buckets widen the chunk's layout for the samples already
//! in it (upstream re-encodes the chunk); a counter sample missing a bucket empty in the chunk
//! gets it as 0. The spans kept are upstream's: the new sample's own, or, where both sides lack
//! buckets, the union written compactly. Unlike upstream, a layout never passes
//! [`MAX_BUCKETS`]: a sample that would widen it further starts a new chunk, as a series' first
//! sample does (its header from its hint).
//!
//! Pyrite holds every histogram with float counts; one whose counts are exactly an integer
//! histogram's (what remote write and the sampled answer send as integers) goes in an integer
//! chunk, any other in a float chunk. A staleness marker takes the kind of the histogram before
//! it, as upstream's head writes it.

use std::sync::Arc;

use pyrite_core::histogram::{CounterResetHint, FloatHistogram, Span, CUSTOM_BUCKETS_SCHEMA, MAX_BUCKETS};
use pyrite_core::remote::histogram::IntegerCounts;
use pyrite_core::remote::read::CHUNK_XOR;
use pyrite_core::value::{is_stale_nan, HistogramSample, Sample};

use super::upstream_histogram::{self, Counts, ResetHeader};
use super::upstream_xor::{self, SAMPLES_PER_CHUNK};

/// One chunk of a series, ready for the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamChunk {
    /// `Chunk.Encoding`: [`CHUNK_XOR`] or [`Counts::chunk_encoding`].
    pub encoding: i32,
    pub min_time: i64,
    pub max_time: i64,
    pub data: Vec<u8>,
}

/// The chunks of a series' `floats` and `histograms` (each in time order, no two at one time),
/// in time order.
pub fn chunks(floats: &[Sample], histograms: &[HistogramSample]) -> Vec<UpstreamChunk> {
    let mut out = Vec::new();
    let mut open: Option<Open> = None;
    let mut in_chunk = 0;
    let mut last_kind = Counts::Integer;
    let (mut f, mut h) = (0, 0);
    while f < floats.len() || h < histograms.len() {
        let float_next = h == histograms.len() || (f < floats.len() && floats[f].t < histograms[h].t);
        let kind = (!float_next).then(|| {
            let sample = &histograms[h].h;
            last_kind = match (is_stale_nan(sample.sum), IntegerCounts::of(sample)) {
                (true, _) => last_kind,
                (false, Some(_)) => Counts::Integer,
                (false, None) => Counts::Float,
            };
            last_kind
        });
        let same_type = match (&open, kind) {
            (Some(Open::Floats { .. }), None) => true,
            (Some(Open::Histograms(c)), Some(kind)) => c.counts == kind,
            _ => false,
        };
        if !same_type || in_chunk >= SAMPLES_PER_CHUNK {
            out.extend(open.take().map(|o| o.finish(floats)));
            in_chunk = 0;
        }
        match (&mut open, kind) {
            (Some(Open::Floats { end, .. }), None) => *end = f + 1,
            (None, None) => open = Some(Open::Floats { start: f, end: f + 1 }),
            (Some(Open::Histograms(c)), Some(_)) => {
                if let Some(next) = c.append(histograms[h].clone()) {
                    out.push(std::mem::replace(c, next).finish());
                    in_chunk = 0;
                }
            }
            (_, Some(kind)) => open = Some(Open::Histograms(HistogramChunk::first(kind, histograms[h].clone()))),
            (Some(Open::Histograms(_)), None) => unreachable!("a chunk of another type was finished above"),
        }
        if float_next {
            f += 1;
        } else {
            h += 1;
        }
        in_chunk += 1;
    }
    out.extend(open.map(|o| o.finish(floats)));
    out
}

/// The chunk being filled.
enum Open {
    /// `floats[start..end]`.
    Floats {
        start: usize,
        end: usize,
    },
    Histograms(HistogramChunk),
}

impl Open {
    fn finish(self, floats: &[Sample]) -> UpstreamChunk {
        match self {
            Open::Floats { start, end } => UpstreamChunk {
                encoding: CHUNK_XOR,
                min_time: floats[start].t,
                max_time: floats[end - 1].t,
                data: upstream_xor::encode(&floats[start..end]),
            },
            Open::Histograms(c) => c.finish(),
        }
    }
}

/// A histogram chunk being filled: its samples as they came, and the layout they are written
/// with.
struct HistogramChunk {
    counts: Counts,
    header: ResetHeader,
    /// The layout (schema, threshold, spans, bounds) of the chunk: its first sample's, its
    /// spans widened as samples with new buckets came; empty when the first is stale.
    layout: FloatHistogram,
    /// Never empty.
    samples: Vec<HistogramSample>,
}

impl HistogramChunk {
    /// A chunk started for a new type or after a full chunk (no previous appender upstream):
    /// the header is the sample's hint when that is gauge or reset.
    fn first(counts: Counts, sample: HistogramSample) -> HistogramChunk {
        let header = match sample.h.counter_reset_hint {
            CounterResetHint::Gauge => ResetHeader::Gauge,
            CounterResetHint::CounterReset => ResetHeader::CounterReset,
            _ => ResetHeader::Unknown,
        };
        HistogramChunk::new(counts, header, sample)
    }

    fn new(counts: Counts, header: ResetHeader, sample: HistogramSample) -> HistogramChunk {
        let layout = match is_stale_nan(sample.h.sum) {
            true => FloatHistogram::default(),
            false => FloatHistogram {
                schema: sample.h.schema,
                zero_threshold: sample.h.zero_threshold,
                positive_spans: sample.h.positive_spans.clone(),
                negative_spans: sample.h.negative_spans.clone(),
                custom_values: sample.h.custom_values.clone(),
                ..FloatHistogram::default()
            },
        };
        HistogramChunk { counts, header, layout, samples: vec![sample] }
    }

    /// The chunk, every sample written with its final layout (aligned once, here: aligning
    /// them at each widening would cost the square of the samples).
    fn finish(self) -> UpstreamChunk {
        let layout = &self.layout;
        let aligned = |s: HistogramSample| {
            let h = &s.h;
            let same = h.positive_spans == layout.positive_spans && h.negative_spans == layout.negative_spans;
            match is_stale_nan(h.sum) || same {
                true => s,
                false => HistogramSample { t: s.t, h: Arc::new(aligned_to(h, layout)) },
            }
        };
        let samples: Vec<HistogramSample> = self.samples.into_iter().map(aligned).collect();
        UpstreamChunk {
            encoding: self.counts.chunk_encoding(),
            min_time: samples[0].t,
            max_time: samples[samples.len() - 1].t,
            data: upstream_histogram::encode(self.counts, self.header, &samples),
        }
    }

    /// Appends `sample`; if upstream's appender refuses it, returns the chunk it starts instead.
    fn append(&mut self, sample: HistogramSample) -> Option<HistogramChunk> {
        let gauge = sample.h.counter_reset_hint == CounterResetHint::Gauge;
        let refused = match gauge {
            true => self.refuses_gauge(&sample.h),
            false => self.refuses_counter(&sample.h),
        };
        if let Some(header) = refused {
            return Some(HistogramChunk::new(self.counts, header, sample));
        }
        if !is_stale_nan(sample.h.sum) && !self.widen(&sample.h, gauge) {
            return Some(HistogramChunk::first(self.counts, sample));
        }
        self.samples.push(sample);
        None
    }

    fn last(&self) -> &FloatHistogram {
        &self.samples[self.samples.len() - 1].h
    }

    /// Whether another schema, threshold or custom bounds than the chunk's.
    fn other_layout(&self, h: &FloatHistogram) -> bool {
        h.schema != self.layout.schema || h.zero_threshold != self.layout.zero_threshold
    }

    fn other_bounds(&self, h: &FloatHistogram) -> bool {
        h.schema == CUSTOM_BUCKETS_SCHEMA && h.custom_values != self.layout.custom_values
    }

    /// The header of the chunk a counter sample starts, if it cannot join this one (upstream's
    /// `appendable`, in its order).
    fn refuses_counter(&self, h: &FloatHistogram) -> Option<ResetHeader> {
        let last = self.last();
        if self.header == ResetHeader::Gauge {
            return Some(match self.counts {
                Counts::Integer => ResetHeader::NotCounterReset,
                Counts::Float => ResetHeader::Unknown,
            });
        }
        let reset = Some(ResetHeader::CounterReset);
        match () {
            _ if h.counter_reset_hint == CounterResetHint::CounterReset => reset,
            _ if is_stale_nan(h.sum) => None,
            _ if is_stale_nan(last.sum) => Some(ResetHeader::Unknown),
            _ if h.count < last.count => reset,
            _ if self.other_layout(h) => Some(ResetHeader::Unknown),
            _ if self.other_bounds(h) || h.zero_count < last.zero_count => reset,
            _ if bucket_went_down(last, h, true) || bucket_went_down(last, h, false) => reset,
            _ => None,
        }
    }

    /// The header of the chunk a gauge sample starts, if it cannot join this one (upstream's
    /// `appendableGauge`): always a gauge chunk.
    fn refuses_gauge(&self, h: &FloatHistogram) -> Option<ResetHeader> {
        let refused = match () {
            _ if self.header != ResetHeader::Gauge => true,
            _ if is_stale_nan(h.sum) => false,
            _ => is_stale_nan(self.last().sum) || self.other_layout(h) || self.other_bounds(h),
        };
        refused.then_some(ResetHeader::Gauge)
    }

    /// Widens the chunk's layout to `h`'s new buckets, as upstream's appender re-encodes a
    /// chunk, with the spans it keeps; false, leaving it, if the layout would pass
    /// [`MAX_BUCKETS`]: that sample starts a new chunk as a first one does, where upstream's
    /// encoder would widen without a bound (stored remote-written histograms of disjoint
    /// buckets would make a read hold 120 times the bucket limit per sample).
    fn widen(&mut self, h: &FloatHistogram, gauge: bool) -> bool {
        let sides = [true, false].map(|positive| {
            let chunk = indices(spans(&self.layout, positive));
            let sample = indices(spans(h, positive));
            let new = sample.iter().any(|i| chunk.binary_search(i).is_err());
            let missing = chunk.iter().any(|i| sample.binary_search(i).is_err());
            (positive, new, missing, chunk, sample)
        });
        if !sides.iter().any(|s| s.1) {
            // The chunk has all the sample's buckets; those it lacks are filled in with zeros.
            return true;
        }
        let any_missing = sides.iter().any(|s| s.2);
        // The sample's own spans; where it lacks buckets of the chunk, the union written
        // compactly (for a gauge sample: on both sides, once either lacks any).
        let [positive, negative] = sides.map(|(positive, _, missing, chunk, sample)| {
            if missing || (gauge && any_missing) {
                let mut union: Vec<i64> = chunk.into_iter().chain(sample).collect();
                union.sort_unstable();
                union.dedup();
                compact_spans(&union)
            } else {
                spans(h, positive).to_vec()
            }
        });
        let buckets = |spans: &[Span]| spans.iter().map(|s| s.length as usize).sum::<usize>();
        if buckets(&positive) + buckets(&negative) > MAX_BUCKETS {
            return false;
        }
        (self.layout.positive_spans, self.layout.negative_spans) = (positive, negative);
        true
    }
}

/// Whether a bucket of `last` (on the positive or negative side) went down in `h` or went
/// missing while not empty.
fn bucket_went_down(last: &FloatHistogram, h: &FloatHistogram, positive: bool) -> bool {
    let now: Vec<(i32, f64)> = h.indexed_buckets(positive).collect();
    last.indexed_buckets(positive).any(|(i, before)| match now.binary_search_by_key(&i, |b| b.0) {
        Ok(at) => before > now[at].1,
        Err(_) => before != 0.0,
    })
}

fn spans(h: &FloatHistogram, positive: bool) -> &[Span] {
    match positive {
        true => &h.positive_spans,
        false => &h.negative_spans,
    }
}

/// The bucket indices `spans` describe, ascending.
fn indices(spans: &[Span]) -> Vec<i64> {
    let mut out = Vec::new();
    let mut next = 0i64;
    for s in spans {
        next += i64::from(s.offset);
        out.extend(next..next + i64::from(s.length));
        next += i64::from(s.length);
    }
    out
}

/// Ascending bucket indices as the fewest spans (upstream's `addBucket`): the first at its
/// index, each next at its gap after the previous.
fn compact_spans(indices: &[i64]) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    let mut last = 0i64;
    for &i in indices {
        match out.last_mut() {
            Some(span) if i == last + 1 => span.length += 1,
            Some(_) => out.push(Span { offset: (i - last - 1) as i32, length: 1 }),
            None => out.push(Span { offset: i as i32, length: 1 }),
        }
        last = i;
    }
    out
}

/// `h` with `layout`'s spans, its counts moved to their buckets there and 0 in the others.
fn aligned_to(h: &FloatHistogram, layout: &FloatHistogram) -> FloatHistogram {
    let side = |positive: bool| -> Vec<f64> {
        let have: Vec<(i32, f64)> = h.indexed_buckets(positive).collect();
        indices(spans(layout, positive))
            .into_iter()
            .map(|i| have.binary_search_by_key(&i, |b| i64::from(b.0)).map_or(0.0, |at| have[at].1))
            .collect()
    };
    FloatHistogram {
        positive_buckets: side(true),
        negative_buckets: side(false),
        positive_spans: layout.positive_spans.clone(),
        negative_spans: layout.negative_spans.clone(),
        ..h.clone()
    }
}

#[cfg(test)]
mod tests {
    use pyrite_core::remote::read::{CHUNK_FLOAT_HISTOGRAM, CHUNK_HISTOGRAM};
    use pyrite_core::value::stale_nan;

    use super::*;

    /// A counter histogram at schema 0 with `buckets` (index, count) on the positive side, each
    /// in its own span.
    fn hist(buckets: &[(i32, f64)]) -> FloatHistogram {
        let mut last = 0;
        let positive_spans = buckets
            .iter()
            .enumerate()
            .map(|(n, &(i, _))| {
                let offset = if n == 0 { i } else { i - last - 1 };
                last = i;
                Span { offset, length: 1 }
            })
            .collect();
        FloatHistogram {
            count: buckets.iter().map(|b| b.1).sum(),
            sum: 1.5,
            positive_spans,
            positive_buckets: buckets.iter().map(|b| b.1).collect(),
            ..FloatHistogram::default()
        }
    }

    fn at(t: i64, h: FloatHistogram) -> HistogramSample {
        HistogramSample { t, h: Arc::new(h) }
    }

    fn header(c: &UpstreamChunk) -> u8 {
        c.data[2]
    }

    fn count(c: &UpstreamChunk) -> u16 {
        u16::from_be_bytes([c.data[0], c.data[1]])
    }

    #[test]
    fn counters_share_a_chunk_until_120_samples() {
        let samples: Vec<_> = (0..250).map(|k| at(k * 10, hist(&[(0, k as f64)]))).collect();
        let chunks = chunks(&[], &samples);
        assert_eq!(chunks.iter().map(count).collect::<Vec<_>>(), [120, 120, 10]);
        assert!(chunks.iter().all(|c| c.encoding == CHUNK_HISTOGRAM && header(c) == 0));
        assert_eq!((chunks[1].min_time, chunks[1].max_time), (1200, 2390));
        assert_eq!(chunks[0].data, upstream_histogram::encode(Counts::Integer, ResetHeader::Unknown, &samples[..120]));
    }

    #[test]
    fn resets_and_layout_changes_start_chunks_with_their_header() {
        let schema_1 = FloatHistogram { schema: 1, ..hist(&[(0, 9.0)]) };
        let bounds =
            |b: Vec<f64>| FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, custom_values: b, ..hist(&[(0, 9.0)]) };
        let hinted = FloatHistogram { counter_reset_hint: CounterResetHint::CounterReset, ..hist(&[(0, 9.0)]) };
        let samples = [
            at(0, hist(&[(0, 5.0)])),
            at(1, hist(&[(0, 4.0)])),      // count down: reset
            at(2, hist(&[(1, 4.0)])),      // a bucket in use went missing: reset
            at(3, schema_1),               // another schema: unknown
            at(4, bounds(vec![1.0, 2.0])), // another schema again
            at(5, bounds(vec![1.0, 3.0])), // other bounds: reset
            at(6, hinted),                 // the sample says reset
            at(7, hist(&[(0, 9.0)])),
        ];
        let headers: Vec<(i64, u8)> = chunks(&[], &samples).iter().map(|c| (c.min_time, header(c))).collect();
        let (reset, unknown) = (ResetHeader::CounterReset.bits(), 0);
        assert_eq!(headers, [(0, unknown), (1, reset), (2, reset), (3, unknown), (4, unknown), (5, reset), (6, reset)]);
    }

    #[test]
    fn new_buckets_widen_the_chunk_and_missing_empty_ones_read_as_zero() {
        let samples = [
            at(0, hist(&[(0, 1.0), (3, 0.0)])),
            at(1, hist(&[(0, 2.0)])),           // lacks the empty bucket 3
            at(2, hist(&[(0, 2.0), (1, 1.0)])), // a new bucket 1, lacks 3: the union, compactly
        ];
        let chunks = chunks(&[], &samples);
        assert_eq!(chunks.len(), 1);
        let spans = vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 1 }];
        let widened = |h: FloatHistogram, buckets: Vec<f64>| FloatHistogram {
            positive_spans: spans.clone(),
            positive_buckets: buckets,
            ..h
        };
        let expected = [
            at(0, widened(hist(&[(0, 1.0)]), vec![1.0, 0.0, 0.0])),
            at(1, widened(hist(&[(0, 2.0)]), vec![2.0, 0.0, 0.0])),
            at(2, widened(hist(&[(0, 2.0), (1, 1.0)]), vec![2.0, 1.0, 0.0])),
        ];
        assert_eq!(chunks[0].data, upstream_histogram::encode(Counts::Integer, ResetHeader::Unknown, &expected));
    }

    #[test]
    fn a_layout_past_the_bucket_limit_starts_a_new_chunk() {
        // Gauges of disjoint buckets, half the limit each: the second widens the first's
        // layout to the limit, the third would pass it.
        let half = MAX_BUCKETS as i32 / 2;
        let gauge = |k: i32| FloatHistogram {
            counter_reset_hint: CounterResetHint::Gauge,
            positive_spans: vec![Span { offset: k * half, length: half as u32 }],
            positive_buckets: vec![1.0; half as usize],
            count: f64::from(half),
            ..FloatHistogram::default()
        };
        let chunks = chunks(&[], &[at(0, gauge(0)), at(1, gauge(1)), at(2, gauge(2))]);
        assert_eq!(chunks.iter().map(count).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(chunks.iter().map(header).collect::<Vec<_>>(), [ResetHeader::Gauge.bits(); 2]);
    }

    #[test]
    fn gauges_go_up_and_down_in_gauge_chunks() {
        let gauge =
            |buckets: &[(i32, f64)]| FloatHistogram { counter_reset_hint: CounterResetHint::Gauge, ..hist(buckets) };
        let samples = [
            at(0, gauge(&[(0, 5.0), (2, 1.0)])),
            at(1, gauge(&[(0, 1.0), (1, 1.0)])), // down, bucket 2 gone, bucket 1 new: widened
            at(2, hist(&[(0, 1.0)])),            // a counter after gauges: a new chunk
            at(3, gauge(&[(0, 1.0)])),           // and back
        ];
        let chunks = chunks(&[], &samples);
        let headers: Vec<u8> = chunks.iter().map(header).collect();
        let gauge_bits = ResetHeader::Gauge.bits();
        assert_eq!(headers, [gauge_bits, ResetHeader::NotCounterReset.bits(), gauge_bits]);
        assert_eq!(count(&chunks[0]), 2);
        let spans = vec![Span { offset: 0, length: 3 }];
        let expected = [
            at(
                0,
                FloatHistogram { positive_spans: spans.clone(), positive_buckets: vec![5.0, 0.0, 1.0], ..gauge(&[]) },
            ),
            at(1, FloatHistogram { positive_spans: spans, positive_buckets: vec![1.0, 1.0, 0.0], ..gauge(&[]) }),
        ];
        let expected = expected.map(|s| {
            let count = s.h.positive_buckets.iter().sum();
            at(s.t, FloatHistogram { count, ..(*s.h).clone() })
        });
        assert_eq!(chunks[0].data, upstream_histogram::encode(Counts::Integer, ResetHeader::Gauge, &expected));
    }

    #[test]
    fn types_alternate_in_time_order_and_markers_follow_their_histograms() {
        let float_counts = FloatHistogram { count: 0.5, positive_buckets: vec![0.5], ..hist(&[(0, 0.5)]) };
        let stale = FloatHistogram { sum: stale_nan(), ..FloatHistogram::default() };
        let floats = [Sample { t: 0, v: 1.0 }, Sample { t: 1, v: 2.0 }, Sample { t: 5, v: 3.0 }];
        let histograms = [
            at(2, hist(&[(0, 1.0)])),
            at(3, float_counts),
            at(4, stale.clone()), // a float histogram's marker
            at(6, hist(&[(0, 1.0)])),
            at(7, stale.clone()),
            at(8, hist(&[(0, 2.0)])), // after a marker: a new chunk, header unknown
        ];
        let chunks = chunks(&floats, &histograms);
        let kinds: Vec<(i32, i64, i64)> = chunks.iter().map(|c| (c.encoding, c.min_time, c.max_time)).collect();
        assert_eq!(
            kinds,
            [
                (CHUNK_XOR, 0, 1),
                (CHUNK_HISTOGRAM, 2, 2),
                (CHUNK_FLOAT_HISTOGRAM, 3, 4),
                (CHUNK_XOR, 5, 5),
                (CHUNK_HISTOGRAM, 6, 7),
                (CHUNK_HISTOGRAM, 8, 8)
            ]
        );
        assert_eq!(header(&chunks[5]), 0);
    }
}
