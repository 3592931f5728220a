//! The histogram chunk: the streaming codec for a series' native-histogram samples
//! ([`FloatHistogram`]), and the same encoding of one histogram on its own for write-ahead-log
//! records ([`encode_one`], `decode_one`).
//!
//! Float chunks have two codecs, one to append to and one to seal into; a histogram chunk has
//! one. The open chunk in the head is its byte buffer plus the last sample (the encoder's
//! state), sealing it keeps the bytes as they are, and a snapshot stores only the bytes:
//! [`HistogramChunk::from_bytes`] decodes them to recover the state, and the rebuilt chunk goes
//! on appending exactly the bytes the original would have. The first byte, [`MARKER`], is one
//! no packed chunk starts with (their first byte is their sample count, 1..=128), so a chunk in
//! a block tells its codec. The byte layout is specified in `docs/format/chunks.md`:
//!
//! ```text
//! MARKER 0xFF | sample count u8 (1..=120, rewritten by each append)
//! per sample: time   zig-zag varint: t₀, then t₁ − t₀, then the delta-of-deltas
//!             flags  u8: counter-reset hint (2 bits) | SAME_LAYOUT 0x04 | INTEGER 0x08
//!             [no SAME_LAYOUT] schema zig-zag varint | zero threshold f64 LE
//!                    | positive spans | negative spans (count varint, then per span the offset
//!                    zig-zag varint and the length varint)
//!                    | [schema −53] custom bounds: count varint, f64 LE each
//!             sum    XORed with the previous sum (`xor` below)
//!             counts count, zero count, positive buckets, negative buckets, against a base:
//!                    [base] the change mask: a summary bit per 8 counts, then the mask bytes
//!                    the summary marks (a bit per count that changed); then the changed counts
//!                    INTEGER: zig-zag varint of count − base; else: `xor` of the two's bits
//! xor: 0x00 for zero, else (leading zero bytes << 4 | middle length) and the middle bytes, LE
//! ```
//!
//! The base is the previous sample when it has the same layout (and, for integer counts,
//! integer counts too); otherwise, and for the first sample, it is zero and every count is
//! written. [`encode_one`] writes exactly a first sample without its time.
//!
//! Why so: client libraries count observations, so counts are integers almost always, and
//! between two scrapes most buckets of a counter histogram do not change. A varint delta for
//! each bucket that changed, a mask bit for its neighbours and a summary bit for eight buckets
//! that did not change make a counter histogram cost about a byte per changed bucket, plus the
//! sum (which changes at every scrape, about 7 bytes as XOR) and a byte each for the time and
//! the flags. Float counts
//! (recording rules' results) keep their exact bits through the XOR. Everything is
//! byte-aligned, so reading is varints and whole bytes.
//!
//! Chunks come back from disk and may be damaged: decoding checks every length against the
//! bytes left before it allocates, refuses what the encoder cannot have written (schemas,
//! custom bounds, flags, counts, non-increasing times, trailing bytes), and never panics.

use pyrite_core::histogram::{CounterResetHint, FloatHistogram, Span, CUSTOM_BUCKETS_SCHEMA, MAX_SCHEMA, MIN_SCHEMA};
use thiserror::Error;

use crate::encoding::{put_varint, zigzag, Cursor};

/// The first byte of every histogram chunk.
pub const MARKER: u8 = 0xFF;
/// Most samples a histogram chunk holds (the head's cut, as upstream).
pub const MAX_SAMPLES: usize = 120;

/// Most buckets, spans and custom bounds one sample may have, all together: far above what
/// client libraries expose (160 buckets by default) and what the head accepts, it bounds what a
/// damaged chunk can make a reader allocate, since a sample with the previous one's layout takes
/// a few bytes but decodes to a copy of it.
pub const MAX_ITEMS: usize = 1 << 16;

/// Flag bits holding the counter-reset hint.
const HINT: u8 = 0x03;
/// Flag: schema, zero threshold, spans and custom bounds are the previous sample's.
const SAME_LAYOUT: u8 = 0x04;
/// Flag: the counts are written as integers.
const INTEGER: u8 = 0x08;
/// Integers of smaller magnitude convert to and from f64 exactly.
const EXACT: u64 = 1 << 53;

/// Bytes that are not a histogram chunk (or histogram) this codec wrote: read from a damaged
/// file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid histogram encoding: {0}")]
pub struct HistogramChunkError(&'static str);

type Result<T> = std::result::Result<T, HistogramChunkError>;

/// Whether `bytes` is a histogram chunk rather than a packed float chunk (by its first byte).
pub fn is_histogram_chunk(bytes: &[u8]) -> bool {
    bytes.first() == Some(&MARKER)
}

/// The number of samples a histogram chunk holds (its second byte; 0 for fewer than two bytes),
/// without decoding it.
pub fn sample_count(bytes: &[u8]) -> usize {
    usize::from(bytes.get(1).copied().unwrap_or(0))
}

/// An append-only histogram chunk: the bytes, and what the next append needs of the last sample.
#[derive(Debug, Clone, Default)]
pub struct HistogramChunk {
    /// Empty until the first sample.
    bytes: Vec<u8>,
    first_t: i64,
    last: Option<Last>,
}

/// The encoder's state: the last sample and the time delta before it (0 after the first).
#[derive(Debug, Clone)]
struct Last {
    t: i64,
    delta: i64,
    h: FloatHistogram,
}

impl HistogramChunk {
    pub fn new() -> Self {
        Self::default()
    }

    /// The open chunk whose bytes these are, ready to append to; an error if they are not a
    /// whole, valid histogram chunk.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut reader = Reader::new(bytes)?;
        let mut chunk = HistogramChunk::new();
        while let Some((t, h)) = reader.next(chunk.last())? {
            if chunk.last.is_none() {
                chunk.first_t = t;
            }
            chunk.last = Some(Last { t, delta: reader.delta, h });
        }
        chunk.bytes = bytes.to_vec();
        Ok(chunk)
    }

    /// Appends a sample. The caller guarantees that `t` is after [`max_time`](Self::max_time)
    /// and that the chunk holds fewer than [`MAX_SAMPLES`]; `h` must be valid (a schema in
    /// range, as many buckets as its spans describe, finite increasing custom bounds), or the
    /// chunk will not decode.
    pub fn append(&mut self, t: i64, h: &FloatHistogram) {
        let n = self.len();
        assert!(n < MAX_SAMPLES, "a histogram chunk holds at most {MAX_SAMPLES} samples");
        debug_assert!(encodable(h), "not a valid histogram: {h:?}");
        match &mut self.last {
            None => {
                self.bytes.extend_from_slice(&[MARKER, 0]);
                put_varint(&mut self.bytes, zigzag(t));
                encode_one(&mut self.bytes, h);
                self.first_t = t;
                self.last = Some(Last { t, delta: 0, h: h.clone() });
            }
            Some(last) => {
                assert!(t > last.t, "histogram samples are appended in increasing time order");
                reserve_next(&mut self.bytes, n);
                let delta = t.wrapping_sub(last.t);
                put_varint(&mut self.bytes, zigzag(delta.wrapping_sub(last.delta)));
                write_sample(&mut self.bytes, h, Some(&last.h));
                *last = Last { t, delta, h: h.clone() };
            }
        }
        self.bytes[1] = (n + 1) as u8;
    }

    pub fn len(&self) -> usize {
        sample_count(&self.bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_none()
    }

    /// The first sample's time; only meaningful when the chunk is not empty.
    pub fn min_time(&self) -> i64 {
        self.first_t
    }

    /// The last sample's time; only meaningful when the chunk is not empty.
    pub fn max_time(&self) -> i64 {
        self.last.as_ref().map_or(0, |l| l.t)
    }

    /// The newest sample, kept for appending: no decoding needed.
    pub fn last(&self) -> Option<&FloatHistogram> {
        self.last.as_ref().map(|l| &l.h)
    }

    /// The encoded chunk (empty while no sample is in it).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The heap memory the chunk holds: its byte buffer and the last sample's vectors (not
    /// counting `size_of::<HistogramChunk>()` itself).
    pub fn heap_bytes(&self) -> usize {
        let last = self.last.as_ref().map_or(0, |l| {
            let h = &l.h;
            let spans = h.positive_spans.capacity() + h.negative_spans.capacity();
            let floats = h.positive_buckets.capacity() + h.negative_buckets.capacity() + h.custom_values.capacity();
            spans * size_of::<Span>() + floats * size_of::<f64>()
        });
        self.bytes.capacity() + last
    }
}

/// Makes room for the next sample of a chunk of `n`: when less than an average sample's size
/// is spare, that and an eighth of the chunk, rather than doubling the buffer, so that the open
/// chunk the head keeps for each histogram series wastes little.
fn reserve_next(bytes: &mut Vec<u8>, n: usize) {
    let average = bytes.len() / n;
    if bytes.capacity() - bytes.len() < average {
        bytes.reserve_exact(average + bytes.len() / 8);
    }
}

/// Appends the samples of a histogram chunk to `out` (nothing, on an error).
pub fn decode(bytes: &[u8], out: &mut Vec<(i64, FloatHistogram)>) -> Result<()> {
    let mut reader = Reader::new(bytes)?;
    out.reserve(sample_count(bytes));
    let start = out.len();
    loop {
        match reader.next(out[start..].last().map(|(_, h)| h)) {
            Ok(Some(sample)) => out.push(sample),
            Ok(None) => return Ok(()),
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
}

/// Appends one histogram on its own (no time, no previous sample), as a write-ahead-log record
/// holds it: the same bytes as the first sample of a chunk after its time.
pub fn encode_one(out: &mut Vec<u8>, h: &FloatHistogram) {
    write_sample(out, h, None);
}

/// Reads a histogram [`encode_one`] wrote; None if the bytes are not one.
pub(crate) fn decode_one(c: &mut Cursor) -> Option<FloatHistogram> {
    read_sample(c, None).ok()
}

/// Reads a chunk's samples in order; the caller hands each back as the previous one.
struct Reader<'a> {
    c: Cursor<'a>,
    /// Samples not read yet.
    left: usize,
    t: i64,
    delta: i64,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self> {
        if !is_histogram_chunk(bytes) {
            return Err(HistogramChunkError("no histogram chunk marker"));
        }
        let left = sample_count(bytes);
        if !(1..=MAX_SAMPLES).contains(&left) {
            return Err(HistogramChunkError("sample count out of range"));
        }
        Ok(Reader { c: Cursor { buf: bytes, pos: 2 }, left, t: 0, delta: 0 })
    }

    /// The next sample, given the one before it (None for the first); None after the last.
    fn next(&mut self, prev: Option<&FloatHistogram>) -> Result<Option<(i64, FloatHistogram)>> {
        if self.left == 0 {
            return match self.c.done() {
                true => Ok(None),
                false => Err(HistogramChunkError("bytes after the last sample")),
            };
        }
        self.left -= 1;
        let step = self.c.i64().ok_or(HistogramChunkError("truncated time"))?;
        match prev {
            None => self.t = step,
            Some(_) => {
                self.delta = self.delta.wrapping_add(step);
                let t = self.t.wrapping_add(self.delta);
                if t <= self.t {
                    return Err(HistogramChunkError("times not increasing"));
                }
                self.t = t;
            }
        }
        Ok(Some((self.t, read_sample(&mut self.c, prev)?)))
    }
}

/// Writes `h` after `prev`, the sample before it in its chunk (None: the first, or on its own).
fn write_sample(out: &mut Vec<u8>, h: &FloatHistogram, prev: Option<&FloatHistogram>) {
    let same_layout = prev.is_some_and(|p| same_layout(h, p));
    let integer = integer_counts(h);
    out.push(hint_bits(h.counter_reset_hint) | flag(same_layout, SAME_LAYOUT) | flag(integer, INTEGER));
    if !same_layout {
        write_layout(out, h);
    }
    put_xor(out, h.sum.to_bits() ^ prev.map_or(0, |p| p.sum.to_bits()));
    let base = count_base(prev, same_layout, integer);
    if let Some(base) = base {
        let n = 2 + h.positive_buckets.len() + h.negative_buckets.len();
        ChangeMask::write(out, n, counts(h).zip(counts(base)).map(|(v, b)| v.to_bits() != b.to_bits()));
    }
    let mut bases = base.map(counts);
    for v in counts(h) {
        let b = bases.as_mut().and_then(Iterator::next);
        if b.is_none_or(|b| b.to_bits() != v.to_bits()) {
            put_count(out, v, b.unwrap_or(0.0), integer);
        }
    }
}

/// Reads what [`write_sample`] wrote, given the same `prev`.
fn read_sample(c: &mut Cursor, prev: Option<&FloatHistogram>) -> Result<FloatHistogram> {
    let flags = c.u8().ok_or(HistogramChunkError("truncated flags"))?;
    if flags & !(HINT | SAME_LAYOUT | INTEGER) != 0 {
        return Err(HistogramChunkError("unknown flags"));
    }
    let (same_layout, integer) = (flags & SAME_LAYOUT != 0, flags & INTEGER != 0);
    let mut h = match (same_layout, prev) {
        (false, _) => read_layout(c)?,
        (true, Some(p)) => FloatHistogram {
            schema: p.schema,
            zero_threshold: p.zero_threshold,
            positive_spans: p.positive_spans.clone(),
            negative_spans: p.negative_spans.clone(),
            custom_values: p.custom_values.clone(),
            ..FloatHistogram::default()
        },
        (true, None) => return Err(HistogramChunkError("same layout as no previous sample")),
    };
    h.counter_reset_hint = hint(flags);
    h.sum = f64::from_bits(read_xor(c)? ^ prev.map_or(0, |p| p.sum.to_bits()));
    let positive = bucket_count(&h.positive_spans)?;
    let negative = bucket_count(&h.negative_spans)?;
    let buckets = positive.checked_add(negative).filter(|&b| within_limit(&h, b));
    let n = 2 + buckets.ok_or(HistogramChunkError("too many buckets, spans and bounds"))?;
    let base = count_base(prev, same_layout, integer);
    let mask = match base {
        Some(_) => Some(ChangeMask::read(c, n)?),
        // Every count takes a byte at least.
        None if n > c.remaining() => return Err(HistogramChunkError("more buckets than bytes")),
        None => None,
    };
    let mut bases = base.map(counts);
    let mut changed = mask.as_ref().map(|m| m.changed(n));
    let mut next = || match (bases.as_mut().and_then(Iterator::next), changed.as_mut().and_then(Iterator::next)) {
        (Some(b), Some(false)) => Ok(b),
        (b, _) => read_count(c, b.unwrap_or(0.0), integer),
    };
    h.count = next()?;
    h.zero_count = next()?;
    h.positive_buckets = read_counts(positive, &mut next)?;
    h.negative_buckets = read_counts(negative, &mut next)?;
    Ok(h)
}

/// Which of a sample's counts differ from its base's: one bit per count (least significant
/// first), written as a summary bit per mask byte and then only the mask bytes that are not
/// zero, so that a count that did not change costs an eighth of a bit when its neighbours did
/// not either.
struct ChangeMask<'a> {
    summary: &'a [u8],
    /// The mask bytes the summary marks, in order; none of them zero.
    listed: &'a [u8],
}

impl<'a> ChangeMask<'a> {
    fn write(out: &mut Vec<u8>, n: usize, changed: impl Iterator<Item = bool>) {
        let summary_at = out.len();
        out.resize(summary_at + n.div_ceil(64), 0);
        let mut byte = 0u8;
        for (i, changed) in changed.enumerate() {
            byte |= u8::from(changed) << (i % 8);
            if i % 8 == 7 || i + 1 == n {
                if byte != 0 {
                    out[summary_at + i / 64] |= 1 << (i / 8 % 8);
                    out.push(byte);
                }
                byte = 0;
            }
        }
    }

    /// The mask of `n` counts; refused unless it is the one [`ChangeMask::write`] writes.
    fn read(c: &mut Cursor<'a>, n: usize) -> Result<Self> {
        let (groups, truncated) = (n.div_ceil(8), HistogramChunkError("truncated change mask"));
        let summary = c.take(groups.div_ceil(8)).ok_or(truncated.clone())?;
        let listed = c.take(summary.iter().map(|b| b.count_ones() as usize).sum()).ok_or(truncated)?;
        // Bits past the last mask byte in the summary, past the last count in its mask byte.
        let last = |bytes: &[u8], bits: usize| bytes.last().map_or(0, |&b| b >> (bits % 8));
        let last_listed = last(summary, groups - 1) & 1 == 1;
        let past_groups = !groups.is_multiple_of(8) && last(summary, groups) != 0;
        if past_groups || !n.is_multiple_of(8) && last_listed && last(listed, n) != 0 {
            return Err(HistogramChunkError("change mask bits past the last count"));
        }
        if listed.contains(&0) {
            return Err(HistogramChunkError("empty change mask byte"));
        }
        Ok(ChangeMask { summary, listed })
    }

    /// Whether each of the `n` counts changed, in order.
    fn changed(&self, n: usize) -> impl Iterator<Item = bool> + '_ {
        let mut listed = self.listed.iter();
        let groups = (0..n.div_ceil(8)).map(move |g| match self.summary[g / 8] >> (g % 8) & 1 {
            1 => listed.next().copied().unwrap_or(0),
            _ => 0,
        });
        groups.flat_map(|byte| (0..8).map(move |bit| byte >> bit & 1 == 1)).take(n)
    }
}

fn read_counts(n: usize, next: &mut impl FnMut() -> Result<f64>) -> Result<Vec<f64>> {
    let mut counts = Vec::with_capacity(n);
    for _ in 0..n {
        counts.push(next()?);
    }
    Ok(counts)
}

fn write_layout(out: &mut Vec<u8>, h: &FloatHistogram) {
    put_varint(out, zigzag(i64::from(h.schema)));
    out.extend_from_slice(&h.zero_threshold.to_bits().to_le_bytes());
    for spans in [&h.positive_spans, &h.negative_spans] {
        put_varint(out, spans.len() as u64);
        for s in spans {
            put_varint(out, zigzag(i64::from(s.offset)));
            put_varint(out, u64::from(s.length));
        }
    }
    if h.uses_custom_buckets() {
        put_varint(out, h.custom_values.len() as u64);
        h.custom_values.iter().for_each(|v| out.extend_from_slice(&v.to_bits().to_le_bytes()));
    }
}

/// A histogram with the layout [`write_layout`] wrote, and nothing else set.
fn read_layout(c: &mut Cursor) -> Result<FloatHistogram> {
    let schema = c.i64().ok_or(HistogramChunkError("truncated schema"))?;
    let schema = i32::try_from(schema).ok().filter(|&s| valid_schema(s));
    let schema = schema.ok_or(HistogramChunkError("schema out of range"))?;
    let zero_threshold = c.f64().ok_or(HistogramChunkError("truncated zero threshold"))?;
    let positive_spans = read_spans(c)?;
    let negative_spans = read_spans(c)?;
    let mut custom_values = Vec::new();
    if schema == CUSTOM_BUCKETS_SCHEMA {
        let n = c.varint().ok_or(HistogramChunkError("truncated custom bound count"))?;
        let n = usize::try_from(n).ok().filter(|&n| n <= c.remaining() / 8);
        let n = n.ok_or(HistogramChunkError("more custom bounds than bytes"))?;
        custom_values.reserve_exact(n);
        for _ in 0..n {
            custom_values.push(c.f64().ok_or(HistogramChunkError("truncated custom bounds"))?);
        }
        if !valid_custom_values(&custom_values) {
            return Err(HistogramChunkError("custom bounds NaN, not increasing or ending in +Inf"));
        }
    }
    Ok(FloatHistogram {
        schema,
        zero_threshold,
        positive_spans,
        negative_spans,
        custom_values,
        ..FloatHistogram::default()
    })
}

fn read_spans(c: &mut Cursor) -> Result<Vec<Span>> {
    let n = c.varint().ok_or(HistogramChunkError("truncated span count"))?;
    // A span takes two bytes at least.
    let n = usize::try_from(n).ok().filter(|&n| n <= c.remaining() / 2);
    let n = n.ok_or(HistogramChunkError("more spans than bytes"))?;
    let mut spans = Vec::with_capacity(n);
    for _ in 0..n {
        let offset = c.i64().ok_or(HistogramChunkError("truncated span"))?;
        let length = c.varint().ok_or(HistogramChunkError("truncated span"))?;
        spans.push(Span {
            offset: i32::try_from(offset).map_err(|_| HistogramChunkError("span offset out of range"))?,
            length: u32::try_from(length).map_err(|_| HistogramChunkError("span length out of range"))?,
        });
    }
    Ok(spans)
}

/// The number of buckets `spans` describe.
fn bucket_count(spans: &[Span]) -> Result<usize> {
    let n = spans.iter().try_fold(0usize, |n, s| n.checked_add(usize::try_from(s.length).ok()?));
    n.ok_or(HistogramChunkError("too many buckets, spans and bounds"))
}

/// Whether `h`'s spans and custom bounds and `buckets` buckets are [`MAX_ITEMS`] at most.
fn within_limit(h: &FloatHistogram, buckets: usize) -> bool {
    let layout = h.positive_spans.len() + h.negative_spans.len() + h.custom_values.len();
    layout.checked_add(buckets).is_some_and(|n| n <= MAX_ITEMS)
}

/// The sample `h`'s counts are written against: the previous one if it has the same layout
/// and, when `h`'s counts are integers, integer counts too (their differences are then exact
/// integers); otherwise none, and counts are written whole.
fn count_base(prev: Option<&FloatHistogram>, same_layout: bool, integer: bool) -> Option<&FloatHistogram> {
    prev.filter(|p| same_layout && (!integer || integer_counts(p)))
}

/// Count, zero count, positive and negative buckets: the counts, in the order they are written.
fn counts(h: &FloatHistogram) -> impl Iterator<Item = f64> + '_ {
    [h.count, h.zero_count]
        .into_iter()
        .chain(h.positive_buckets.iter().copied())
        .chain(h.negative_buckets.iter().copied())
}

/// Whether every count is an integer that round-trips through i64 exactly (so not -0.0).
fn integer_counts(h: &FloatHistogram) -> bool {
    counts(h).all(|v| v.abs() < EXACT as f64 && (v as i64 as f64).to_bits() == v.to_bits())
}

/// Whether `a` has `b`'s layout as it is written: schema, zero threshold, spans (zero-length
/// ones included) and, for custom buckets, the bounds, bit for bit.
fn same_layout(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    let same_bits =
        |x: &[f64], y: &[f64]| x.len() == y.len() && x.iter().zip(y).all(|(x, y)| x.to_bits() == y.to_bits());
    a.schema == b.schema
        && a.zero_threshold.to_bits() == b.zero_threshold.to_bits()
        && a.positive_spans == b.positive_spans
        && a.negative_spans == b.negative_spans
        && (!a.uses_custom_buckets() || same_bits(&a.custom_values, &b.custom_values))
}

fn valid_schema(schema: i32) -> bool {
    (MIN_SCHEMA..=MAX_SCHEMA).contains(&schema) || schema == CUSTOM_BUCKETS_SCHEMA
}

/// Custom bounds as upstream's validation takes them: none NaN, strictly increasing, no +Inf
/// (the last bucket's bound is implied); a first bound of −Inf is allowed.
fn valid_custom_values(bounds: &[f64]) -> bool {
    !bounds.iter().any(|b| b.is_nan())
        && bounds.windows(2).all(|w| w[0] < w[1])
        && bounds.last().is_none_or(|&b| b != f64::INFINITY)
}

/// Whether `h` is one a chunk can hold: what decoding checks, and buckets matching spans. The
/// head refuses the others before they reach [`HistogramChunk::append`].
pub fn encodable(h: &FloatHistogram) -> bool {
    valid_schema(h.schema)
        && bucket_count(&h.positive_spans) == Ok(h.positive_buckets.len())
        && bucket_count(&h.negative_spans) == Ok(h.negative_buckets.len())
        && (!h.uses_custom_buckets() || valid_custom_values(&h.custom_values))
        && within_limit(h, h.positive_buckets.len() + h.negative_buckets.len())
}

fn flag(set: bool, bit: u8) -> u8 {
    if set {
        bit
    } else {
        0
    }
}

fn hint_bits(hint: CounterResetHint) -> u8 {
    match hint {
        CounterResetHint::Unknown => 0,
        CounterResetHint::CounterReset => 1,
        CounterResetHint::NotCounterReset => 2,
        CounterResetHint::Gauge => 3,
    }
}

fn hint(flags: u8) -> CounterResetHint {
    match flags & HINT {
        0 => CounterResetHint::Unknown,
        1 => CounterResetHint::CounterReset,
        2 => CounterResetHint::NotCounterReset,
        _ => CounterResetHint::Gauge,
    }
}

/// Writes count `v` against `base` (a count of the previous sample, or 0).
fn put_count(out: &mut Vec<u8>, v: f64, base: f64, integer: bool) {
    match integer {
        // Both below 2^53 in magnitude: exact, and the difference fits.
        true => put_varint(out, zigzag(v as i64 - base as i64)),
        false => put_xor(out, v.to_bits() ^ base.to_bits()),
    }
}

fn read_count(c: &mut Cursor, base: f64, integer: bool) -> Result<f64> {
    if !integer {
        return Ok(f64::from_bits(base.to_bits() ^ read_xor(c)?));
    }
    let delta = c.i64().ok_or(HistogramChunkError("truncated count"))?;
    let v = (base as i64).checked_add(delta).filter(|v| v.unsigned_abs() < EXACT);
    Ok(v.ok_or(HistogramChunkError("integer count out of range"))? as f64)
}

/// Writes XORed float bits byte-aligned: `0x00` for 0, else a control byte (leading zero bytes
/// << 4 | the number of bytes between them and the trailing zero bytes, 1..=8) and those bytes,
/// least significant first.
fn put_xor(out: &mut Vec<u8>, x: u64) {
    if x == 0 {
        out.push(0);
        return;
    }
    let (leading, trailing) = (x.leading_zeros() / 8, x.trailing_zeros() / 8);
    let len = 8 - leading - trailing;
    out.push((leading << 4 | len) as u8);
    out.extend_from_slice(&(x >> (8 * trailing)).to_le_bytes()[..len as usize]);
}

fn read_xor(c: &mut Cursor) -> Result<u64> {
    let control = c.u8().ok_or(HistogramChunkError("truncated float"))?;
    if control == 0 {
        return Ok(0);
    }
    let (leading, len) = (usize::from(control >> 4), usize::from(control & 0x0f));
    if len == 0 || leading + len > 8 {
        return Err(HistogramChunkError("invalid float control byte"));
    }
    let middle = c.take(len).ok_or(HistogramChunkError("truncated float"))?;
    let mut le = [0u8; 8];
    le[..len].copy_from_slice(middle);
    Ok(u64::from_le_bytes(le) << (8 * (8 - leading - len)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pyrite_core::value::stale_nan;

    use super::*;
    use crate::chunk::packed;

    /// Deterministic xorshift64.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn uniform(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Samples of one series.
    type Series = Vec<(i64, FloatHistogram)>;

    /// Everything of a histogram, floats as bits, so that NaNs and -0.0 compare exactly.
    type Bits = (CounterResetHint, i32, Vec<Span>, Vec<Span>, [u64; 4], Vec<u64>, Vec<u64>, Vec<u64>);

    fn bits(h: &FloatHistogram) -> Bits {
        let b = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        (
            h.counter_reset_hint,
            h.schema,
            h.positive_spans.clone(),
            h.negative_spans.clone(),
            [h.zero_threshold, h.zero_count, h.count, h.sum].map(f64::to_bits),
            b(&h.positive_buckets),
            b(&h.negative_buckets),
            b(&h.custom_values),
        )
    }

    fn spans(s: &[(i32, u32)]) -> Vec<Span> {
        s.iter().map(|&(offset, length)| Span { offset, length }).collect()
    }

    /// An exponential histogram of schema 1 with these positive buckets; count and sum follow.
    fn exponential(positive: &[(i32, u32)], buckets: &[f64]) -> FloatHistogram {
        FloatHistogram {
            schema: 1,
            zero_threshold: 1e-128,
            count: buckets.iter().sum(),
            sum: buckets.iter().sum::<f64>() * 0.37,
            positive_spans: spans(positive),
            positive_buckets: buckets.to_vec(),
            ..FloatHistogram::default()
        }
    }

    /// Appends `samples` to a chunk and checks that the chunk, each sample on its own and the
    /// chunk rebuilt from its bytes read back bit for bit; returns the chunk.
    fn round_trip(samples: &[(i64, FloatHistogram)]) -> HistogramChunk {
        let mut chunk = HistogramChunk::new();
        samples.iter().for_each(|(t, h)| chunk.append(*t, h));
        let mut back = Vec::new();
        decode(chunk.bytes(), &mut back).expect("decodes");
        assert_eq!(back.len(), samples.len());
        for ((t, h), (bt, bh)) in samples.iter().zip(&back) {
            assert_eq!((t, bits(h)), (bt, bits(bh)));
            let mut one = Vec::new();
            encode_one(&mut one, h);
            let mut c = Cursor { buf: &one, pos: 0 };
            assert_eq!(decode_one(&mut c).map(|h| bits(&h)), Some(bits(h)));
            assert!(c.done());
        }
        assert_eq!(sample_count(chunk.bytes()), samples.len());
        assert_eq!((chunk.min_time(), chunk.max_time()), (samples[0].0, samples[samples.len() - 1].0));
        let rebuilt = HistogramChunk::from_bytes(chunk.bytes()).expect("rebuilds");
        assert_eq!(rebuilt.last().map(bits), chunk.last().map(bits));
        assert_eq!(
            (rebuilt.min_time(), rebuilt.max_time(), rebuilt.len()),
            (chunk.min_time(), chunk.max_time(), chunk.len())
        );
        chunk
    }

    /// A request-latency counter histogram as client_golang exposes one: schema 3 (bucket
    /// factor 1.1), observations log-normal around 50 ms, `per_scrape` of them every 15 s from
    /// a process that has run for an hour, gaps of up to two empty buckets filled in with zeros.
    fn latency_series(per_scrape: usize, samples: usize, rng: &mut Rng) -> Series {
        let mut buckets = BTreeMap::<i32, u64>::new();
        let (mut count, mut sum) = (0u64, 0.0);
        let mut out = Vec::new();
        for scrape in 0..240 + samples {
            for _ in 0..per_scrape {
                let z = (0..12).map(|_| rng.uniform()).sum::<f64>() - 6.0;
                let v = 0.05 * (0.8 * z).exp();
                *buckets.entry((v.log2() * 8.0).ceil() as i32).or_default() += 1;
                count += 1;
                sum += v;
            }
            if scrape < 240 {
                continue;
            }
            let mut h = FloatHistogram {
                schema: 3,
                zero_threshold: 2f64.powi(-128),
                count: count as f64,
                sum,
                ..FloatHistogram::default()
            };
            let mut last: Option<i32> = None;
            for (&i, &n) in &buckets {
                match last {
                    Some(l) if i - l - 1 <= 2 => {
                        h.positive_buckets.extend((l + 1..i).map(|_| 0.0));
                        h.positive_spans.last_mut().expect("a span").length += (i - l) as u32;
                    }
                    _ => h.positive_spans.push(Span { offset: last.map_or(i, |l| i - l - 1), length: 1 }),
                }
                h.positive_buckets.push(n as f64);
                last = Some(i);
            }
            out.push((1_700_000_000_000 + scrape as i64 * 15_000, h));
        }
        out
    }

    /// The same kind of series as a histogram with custom buckets (Prometheus's default
    /// classic bounds), and its classic form: one cumulative float series per bound and +Inf,
    /// then `_sum` and `_count`.
    fn custom_series(per_scrape: usize, samples: usize, rng: &mut Rng) -> (Series, Vec<Vec<(i64, f64)>>) {
        let bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let mut h = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(0, bounds.len() as u32 + 1)]),
            positive_buckets: vec![0.0; bounds.len() + 1],
            custom_values: bounds.to_vec(),
            ..FloatHistogram::default()
        };
        let mut classic = vec![Vec::new(); bounds.len() + 3];
        let mut out = Vec::new();
        for scrape in 0..240 + samples {
            for _ in 0..per_scrape {
                let z = (0..12).map(|_| rng.uniform()).sum::<f64>() - 6.0;
                let v = 0.05 * (0.8 * z).exp();
                h.positive_buckets[bounds.iter().take_while(|&&b| b < v).count()] += 1.0;
                h.count += 1.0;
                h.sum += v;
            }
            if scrape < 240 {
                continue;
            }
            let t = 1_700_000_000_000 + scrape as i64 * 15_000;
            let cumulative = h.positive_buckets.iter().scan(0.0, |acc, b| {
                *acc += b;
                Some(*acc)
            });
            for (series, v) in classic.iter_mut().zip(cumulative.chain([h.sum, h.count])) {
                series.push((t, v));
            }
            out.push((t, h.clone()));
        }
        (out, classic)
    }

    /// Hints, a reset, float counts, changing spans, NaN sums: every path, in one chunk.
    fn mixed_series() -> Series {
        let mut samples = latency_series(20, MAX_SAMPLES, &mut Rng(0x9e37_79b9_7f4a_7c15));
        samples[7].1.counter_reset_hint = CounterResetHint::NotCounterReset;
        samples[30].1.mul(0.5);
        samples[31].1.mul(0.25);
        samples[40].1.negative_spans = spans(&[(-2, 2), (3, 1)]);
        samples[40].1.negative_buckets = vec![1.0, 0.0, 4.0];
        samples[41].1.zero_count = 3.0;
        samples[60].1.sum = f64::NAN;
        samples[61].1.sum = stale_nan();
        samples[62].1.counter_reset_hint = CounterResetHint::Gauge;
        samples[80].1.div(7.0);
        for (_, h) in &mut samples[90..] {
            h.mul(0.0);
            h.counter_reset_hint = CounterResetHint::CounterReset;
        }
        samples
    }

    #[test]
    fn exponential_histograms_round_trip() {
        let mut a = exponential(&[(-3, 2), (4, 3)], &[1.0, 2.0, 0.0, 5.0, 1.0]);
        a.negative_spans = spans(&[(0, 1)]);
        a.negative_buckets = vec![2.0];
        a.zero_count = 4.0;
        a.count += 6.0;
        let mut samples = vec![(1000, a.clone())];
        // Unchanged; then some buckets grow; then the layout grows (a new span) mid-chunk.
        samples.push((16_000, a.clone()));
        a.positive_buckets[1] += 3.0;
        a.count += 3.0;
        samples.push((31_000, a.clone()));
        a.positive_spans.push(Span { offset: 10, length: 1 });
        a.positive_buckets.push(1.0);
        samples.push((46_003, a.clone()));
        // Hints.
        for hint in [CounterResetHint::CounterReset, CounterResetHint::NotCounterReset, CounterResetHint::Gauge] {
            a.counter_reset_hint = hint;
            samples.push((samples.last().expect("samples").0 + 15_000, a.clone()));
        }
        // Float counts (a rate), then integers again; -0.0 is no integer.
        let mut rate = a.clone();
        rate.mul(1.0 / 60.0);
        samples.push((200_000, rate.clone()));
        rate.positive_buckets[0] *= 1.5;
        samples.push((215_000, rate));
        samples.push((230_000, a.clone()));
        a.zero_count = -0.0;
        samples.push((245_000, a.clone()));
        // NaN sums and the staleness marker keep their bits; so do infinities and NaN counts.
        for sum in [f64::NAN, stale_nan(), f64::NEG_INFINITY, 0.0, -0.0] {
            a.sum = sum;
            samples.push((samples.last().expect("samples").0 + 1, a.clone()));
        }
        a.count = f64::INFINITY;
        a.positive_buckets[2] = f64::NAN;
        samples.push((1_000_000, a.clone()));
        // An empty histogram, and every exponential schema and a zero threshold change.
        samples.push((1_000_001, FloatHistogram::default()));
        for schema in MIN_SCHEMA..=MAX_SCHEMA {
            let h =
                FloatHistogram { schema, zero_threshold: f64::from(schema).abs(), ..exponential(&[(1, 1)], &[9.0]) };
            samples.push((1_000_010 + i64::from(schema), h));
        }
        round_trip(&samples);
        round_trip(&mixed_series());
    }

    #[test]
    fn custom_bucket_histograms_round_trip() {
        let (samples, _) = custom_series(50, MAX_SAMPLES, &mut Rng(7));
        round_trip(&samples);
        // Bounds that change, and empty ones.
        let mut h = samples[0].1.clone();
        let mut changed = vec![(0, h.clone())];
        h.custom_values[3] = 0.04;
        changed.push((1, h.clone()));
        h.custom_values.push(20.0);
        h.positive_spans = spans(&[(0, 2), (5, 1)]);
        h.positive_buckets = vec![1.0, 2.0, 3.0];
        changed.push((2, h.clone()));
        h.custom_values.clear();
        h.positive_spans = spans(&[(0, 1)]);
        h.positive_buckets = vec![h.count];
        changed.push((3, h.clone()));
        round_trip(&changed);
    }

    #[test]
    fn times_any_distance_apart_round_trip() {
        let h = exponential(&[(0, 1)], &[1.0]);
        round_trip(&[(i64::MIN, h.clone()), (1, h.clone()), (i64::MAX, h.clone())]);
        round_trip(&[(i64::MIN, h.clone()), (i64::MAX, h.clone())]);
        round_trip(&[(-5, h.clone()), (-4, h.clone()), (1 << 62, h.clone()), ((1 << 62) + 1, h)]);
    }

    #[test]
    fn unchanged_counts_cost_next_to_nothing() {
        // 64 buckets that do not change: time, flags, sum and the change mask's 2-byte summary
        // per sample (the second sample's time delta takes 3 bytes, the later delta-of-deltas 1).
        let h = exponential(&[(0, 64)], &[3.0; 64]);
        let samples: Vec<_> = (0..MAX_SAMPLES as i64).map(|i| (i * 15_000, h.clone())).collect();
        let chunk = round_trip(&samples);
        let mut first = Vec::new();
        encode_one(&mut first, &h);
        assert_eq!(chunk.bytes().len(), 2 + 1 + first.len() + 2 + (MAX_SAMPLES - 1) * 5);
        // One bucket changing costs its mask byte and its delta.
        let mut changed = samples.clone();
        changed[60].1.positive_buckets[40] += 1.0;
        changed[60].1.count += 1.0;
        assert_eq!(round_trip(&changed).bytes().len(), chunk.bytes().len() + 4 * 2);
    }

    #[test]
    fn a_rebuilt_chunk_appends_the_same_bytes() {
        let samples = mixed_series();
        let mut whole = HistogramChunk::new();
        let mut prefixes = Vec::new();
        for (t, h) in &samples {
            whole.append(*t, h);
            prefixes.push(whole.bytes().to_vec());
        }
        for (i, prefix) in prefixes.iter().enumerate() {
            let mut rebuilt = HistogramChunk::from_bytes(prefix).expect("rebuilds");
            assert_eq!(rebuilt.len(), i + 1);
            samples[i + 1..].iter().for_each(|(t, h)| rebuilt.append(*t, h));
            assert!(rebuilt.bytes() == whole.bytes(), "rebuilt after {} samples", i + 1);
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let chunk = round_trip(&mixed_series());
        let bytes = chunk.bytes();
        let mut out = Vec::new();
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], &mut out).is_err(), "{len} of {} bytes", bytes.len());
            assert!(out.is_empty());
            assert!(HistogramChunk::from_bytes(&bytes[..len]).is_err());
        }
        for (_, h) in mixed_series().iter().step_by(10) {
            let mut one = Vec::new();
            encode_one(&mut one, h);
            for len in 0..one.len() {
                assert!(decode_one(&mut Cursor { buf: &one[..len], pos: 0 }).is_none());
            }
        }
        let mut trailing = bytes.to_vec();
        trailing.push(0);
        assert_eq!(decode(&trailing, &mut out), Err(HistogramChunkError("bytes after the last sample")));
    }

    #[test]
    fn damaged_chunks_never_panic_and_rebuilt_ones_stay_decodable() {
        let (custom, _) = custom_series(5, 60, &mut Rng(3));
        let chunks = [round_trip(&mixed_series()), round_trip(&custom)];
        let next = exponential(&[(0, 2)], &[1.0, 2.0]);
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut out = Vec::new();
        for round in 0..20_000 {
            let mut bytes = chunks[round % chunks.len()].bytes().to_vec();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len() as u64) as usize;
                match rng.below(2) {
                    0 => bytes[at] ^= 1 << rng.below(8),
                    _ => bytes[at] = rng.next() as u8,
                }
            }
            out.clear();
            let decoded = decode(&bytes, &mut out);
            let Ok(mut rebuilt) = HistogramChunk::from_bytes(&bytes) else {
                assert!(decoded.is_err());
                continue;
            };
            assert_eq!(out.len(), rebuilt.len());
            if rebuilt.len() < MAX_SAMPLES && rebuilt.max_time() < i64::MAX {
                let t = rebuilt.max_time() + 1;
                rebuilt.append(t, &next);
                out.clear();
                decode(rebuilt.bytes(), &mut out).expect("a rebuilt chunk appends decodable bytes");
                assert_eq!(out.last().map(|(t, h)| (*t, bits(h))), Some((t, bits(&next))));
            }
        }
        // Random bytes behind a valid header.
        for _ in 0..20_000 {
            let mut bytes = vec![MARKER, 1 + rng.below(MAX_SAMPLES as u64) as u8];
            bytes.extend((0..rng.below(64)).map(|_| rng.next() as u8));
            let _ = decode(&bytes, &mut out);
            let _ = decode_one(&mut Cursor { buf: &bytes[2..], pos: 0 });
        }
    }

    /// A chunk of one sample at time 0: `flags`, then `rest` as the layout and values.
    fn one_sample(flags: u8, rest: &[u8]) -> Vec<u8> {
        let mut bytes = vec![MARKER, 1, 0, flags];
        bytes.extend_from_slice(rest);
        bytes
    }

    /// An exponential layout of schema 0 and zero threshold 0 with these spans (positive,
    /// negative), each `(offset, length)` as raw varints.
    fn layout(positive: &[(u64, u64)], negative: &[(u64, u64)]) -> Vec<u8> {
        let mut b = vec![0];
        b.extend_from_slice(&[0; 8]);
        for spans in [positive, negative] {
            put_varint(&mut b, spans.len() as u64);
            for &(offset, length) in spans {
                put_varint(&mut b, offset);
                put_varint(&mut b, length);
            }
        }
        b
    }

    #[test]
    fn hostile_headers_and_lengths_are_errors() {
        let err = |bytes: &[u8]| {
            let mut out = Vec::new();
            let e = decode(bytes, &mut out).expect_err("refused");
            assert!(out.is_empty());
            assert_eq!(HistogramChunk::from_bytes(bytes).map(|_| ()), Err(e.clone()));
            e.0
        };
        // The smallest valid chunk: empty layout, sum 0, count and zero count 0 as integers.
        let mut valid = one_sample(INTEGER, &layout(&[], &[]));
        valid.extend_from_slice(&[0, 0, 0]);
        decode(&valid, &mut Vec::new()).expect("valid");

        assert_eq!(err(&[]), "no histogram chunk marker");
        assert_eq!(err(&[1, 1, 0]), "no histogram chunk marker");
        assert_eq!(err(&[MARKER]), "sample count out of range");
        assert_eq!(err(&[MARKER, 0]), "sample count out of range");
        let mut many = valid.clone();
        many[1] = MAX_SAMPLES as u8 + 1;
        assert_eq!(err(&many), "sample count out of range");
        let mut two = valid.clone();
        two[1] = 2;
        two.extend_from_slice(&[0, SAME_LAYOUT | INTEGER, 0, 0]);
        assert_eq!(err(&two), "times not increasing");

        assert_eq!(err(&one_sample(0x10, &[])), "unknown flags");
        assert_eq!(err(&one_sample(SAME_LAYOUT, &[])), "same layout as no previous sample");
        for schema in [9i64, -5, -52, -54, i64::from(i32::MAX) + 1] {
            let mut b = vec![MARKER, 1, 0, 0];
            put_varint(&mut b, zigzag(schema));
            assert_eq!(err(&b), "schema out of range");
        }
        // Span and bucket counts beyond what the bytes could hold, lengths past u32, offsets
        // past i32, lengths whose sum is past u32.
        assert_eq!(err(&one_sample(0, &layout(&[(0, 1)], &[]))[..15]), "more spans than bytes");
        let mut huge = one_sample(0, &layout(&[], &[]));
        huge.truncate(huge.len() - 2);
        put_varint(&mut huge, u64::MAX);
        assert_eq!(err(&huge), "more spans than bytes");
        assert_eq!(err(&one_sample(0, &layout(&[(0, 1 << 32)], &[]))), "span length out of range");
        assert_eq!(err(&one_sample(0, &layout(&[(zigzag(1 << 31), 1)], &[]))), "span offset out of range");
        let max = u64::from(u32::MAX);
        let mut wide = one_sample(0, &layout(&[(0, max), (0, max)], &[(0, max)]));
        wide.extend_from_slice(&[0; 16]);
        assert_eq!(err(&wide), "too many buckets, spans and bounds");
        let mut many_spans = one_sample(0, &layout(&vec![(0, 0); MAX_ITEMS + 1], &[]));
        many_spans.extend_from_slice(&[0; 3]);
        assert_eq!(err(&many_spans), "too many buckets, spans and bounds");
        let mut bytes_for_buckets = one_sample(0, &layout(&[(0, max)], &[]));
        bytes_for_buckets.extend_from_slice(&[0; 16]);
        assert_eq!(err(&bytes_for_buckets), "too many buckets, spans and bounds");
        let mut few = one_sample(INTEGER, &layout(&[(0, 4)], &[]));
        few.extend_from_slice(&[0, 0, 0, 0, 0]);
        assert_eq!(err(&few), "more buckets than bytes");

        // Custom bounds: too many for the bytes, not finite, not increasing.
        let custom = |bounds: &[f64], count: u64| {
            let mut b = vec![MARKER, 1, 0, INTEGER];
            put_varint(&mut b, zigzag(CUSTOM_BUCKETS_SCHEMA.into()));
            b.extend_from_slice(&[0; 8]);
            b.extend_from_slice(&[0, 0]);
            put_varint(&mut b, count);
            bounds.iter().for_each(|v| b.extend_from_slice(&v.to_le_bytes()));
            b.extend_from_slice(&[0, 0, 0]);
            b
        };
        decode(&custom(&[1.0, 2.0], 2), &mut Vec::new()).expect("valid");
        assert_eq!(err(&custom(&[1.0, 2.0], 3)), "more custom bounds than bytes");
        assert_eq!(err(&custom(&[1.0, 2.0], u64::MAX)), "more custom bounds than bytes");
        for bad in [[2.0, 1.0], [1.0, 1.0], [1.0, f64::NAN], [1.0, f64::INFINITY]] {
            assert_eq!(err(&custom(&bad, 2)), "custom bounds NaN, not increasing or ending in +Inf");
        }
        decode(&custom(&[f64::NEG_INFINITY, 1.0], 2), &mut Vec::new()).expect("a first bound of -Inf is valid");

        // Counts: integers at 2^53 and past i64, and float control bytes that do not fit 8 bytes.
        for count in [1i64 << 53, -(1 << 53), i64::MAX] {
            let mut b = one_sample(INTEGER, &layout(&[], &[]));
            b.push(0);
            put_varint(&mut b, zigzag(count));
            b.push(0);
            assert_eq!(err(&b), "integer count out of range");
        }
        for control in [0x09, 0x0f, 0x10, 0x81, 0x45, 0xf8] {
            let mut b = one_sample(0, &layout(&[], &[]));
            b.extend_from_slice(&[control, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            assert_eq!(err(&b), "invalid float control byte", "{control:#x}");
        }
        // Change masks (two counts: a summary byte, then the mask byte if it is not zero)
        // with bits past the last count or mask byte, or a zero mask byte listed.
        let second = |mask: &[u8]| {
            let mut b = valid.clone();
            b[1] = 2;
            b.extend_from_slice(&[2, SAME_LAYOUT | INTEGER, 0]);
            b.extend_from_slice(mask);
            b
        };
        assert_eq!(err(&second(&[1, 0x04])), "change mask bits past the last count");
        assert_eq!(err(&second(&[2, 1])), "change mask bits past the last count");
        assert_eq!(err(&second(&[1, 0])), "empty change mask byte");
        assert_eq!(err(&second(&[1])), "truncated change mask");
        let mut out = Vec::new();
        decode(&second(&[0]), &mut out).expect("nothing changed");
        decode(&second(&[1, 0x01, 4]), &mut out).expect("the count grew by 2");
        assert_eq!(
            out.iter().map(|(t, h)| (*t, h.count)).collect::<Vec<_>>(),
            [(0, 0.0), (1, 0.0), (0, 0.0), (1, 2.0)]
        );
    }

    /// Bytes per sample of realistic series, and of the same data as classic histograms
    /// (one packed float chunk per bucket, `_sum` and `_count`), printed by
    /// `cargo test -p pyrite-tsdb --lib chunk::histogram::tests::measured -- --nocapture`;
    /// the bounds guard against regressions (the series are deterministic).
    #[test]
    fn measured_bytes_per_sample() {
        let per_sample = |c: &HistogramChunk| c.bytes().len() as f64 / c.len() as f64;
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for (per_scrape, bound) in [(1, 16.0), (10, 28.0), (100, 60.0), (1000, 80.0)] {
            let samples = latency_series(per_scrape, MAX_SAMPLES, &mut rng);
            let chunk = round_trip(&samples);
            let changed: usize = samples
                .windows(2)
                .map(|w| w[1].1.positive_buckets.iter().zip(&w[0].1.positive_buckets).filter(|(a, b)| a != b).count())
                .sum();
            println!(
                "schema 3, {per_scrape:>4} observations/scrape: {:4.1} bytes/sample ({} buckets, {:4.1} changed per \
                 scrape; {} heap bytes)",
                per_sample(&chunk),
                samples[samples.len() - 1].1.positive_buckets.len(),
                changed as f64 / (samples.len() - 1) as f64,
                chunk.heap_bytes(),
            );
            assert!(per_sample(&chunk) < bound);
        }
        for (per_scrape, bound) in [(10, 18.0), (100, 30.0)] {
            let (samples, classic) = custom_series(per_scrape, MAX_SAMPLES, &mut rng);
            let chunk = round_trip(&samples);
            let mut packed = Vec::new();
            classic.iter().for_each(|series| packed::encode(series, &mut packed));
            println!(
                "12 custom buckets, {per_scrape:>4} observations/scrape: {:4.1} bytes/sample (as 14 packed float \
                 series: {:4.1})",
                per_sample(&chunk),
                packed.len() as f64 / MAX_SAMPLES as f64,
            );
            assert!(per_sample(&chunk) < bound);
        }
    }
}
