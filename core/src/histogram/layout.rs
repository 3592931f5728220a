//! Bucket layouts: turning spans + counts into (index, count) pairs and back, compaction,
//! resolution reduction and layout comparison. Every layout change goes through the same two
//! conversions, so spans are always rebuilt the same way.

use super::bounds::target_index;
use super::validate::check_spans;
use super::{FloatHistogram, HistogramError, Span};

/// The (bucket index, count) pairs that `spans` and `buckets` describe, in span order. Stops at
/// whichever runs out first, so a malformed layout yields fewer buckets instead of a panic.
pub(super) fn indexed<'a>(spans: &'a [Span], buckets: &'a [f64]) -> impl Iterator<Item = (i32, f64)> + 'a {
    let mut next = 0i32;
    spans
        .iter()
        .flat_map(move |s| {
            let start = next.wrapping_add(s.offset);
            next = start.wrapping_add(s.length as i32);
            (0..s.length).map(move |k| start.wrapping_add(k as i32))
        })
        .zip(buckets.iter().copied())
}

/// Spans and counts for ascending (index, count) pairs: consecutive indices share a span.
pub(super) fn from_indexed(pairs: impl IntoIterator<Item = (i32, f64)>) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut buckets = Vec::new();
    let mut last = 0i32;
    for (index, count) in pairs {
        match spans.last_mut() {
            Some(span) if index == last.wrapping_add(1) => span.length += 1,
            Some(_) => spans.push(Span { offset: index.wrapping_sub(last).wrapping_sub(1), length: 1 }),
            None => spans.push(Span { offset: index, length: 1 }),
        }
        buckets.push(count);
        last = index;
    }
    (spans, buckets)
}

/// The pairs of schema `from` merged into the buckets of the coarser schema `to`.
pub(super) fn reduce_pairs(pairs: impl IntoIterator<Item = (i32, f64)>, from: i32, to: i32) -> Vec<(i32, f64)> {
    let mut out: Vec<(i32, f64)> = Vec::new();
    for (index, count) in pairs {
        let target = target_index(index, from, to);
        match out.last_mut() {
            Some(last) if last.0 == target => last.1 += count,
            _ => out.push((target, count)),
        }
    }
    out
}

/// Drops empty buckets; non-empty buckets at most `max_empty` indices apart share a span (the
/// empty buckets between them kept explicitly). The same result as upstream's `compactBuckets`.
fn compact_side(spans: &mut Vec<Span>, buckets: &mut Vec<f64>, max_empty: usize) {
    let populated: Vec<(i32, f64)> = indexed(spans, buckets).filter(|&(_, c)| c != 0.0).collect();
    let mut pairs = Vec::with_capacity(populated.len());
    for (index, count) in populated {
        if let Some(&(last, _)) = pairs.last() {
            let gap = i64::from(index) - i64::from(last) - 1;
            if gap <= max_empty.try_into().unwrap_or(i64::MAX) {
                pairs.extend((1..=gap).map(|k| ((i64::from(last) + k) as i32, 0.0)));
            }
        }
        pairs.push((index, count));
    }
    (*spans, *buckets) = from_indexed(pairs);
}

/// Whether two span lists describe the same layout, ignoring zero-length spans (upstream's
/// `spansMatch`: adjacent spans are not merged, so `[{0,2}]` and `[{0,1},{0,1}]` differ).
pub(super) fn spans_match(a: &[Span], b: &[Span]) -> bool {
    /// The next span with its offset absorbing any zero-length spans before it.
    fn next(spans: &[Span], i: &mut usize) -> Option<Span> {
        let mut span = *spans.get(*i)?;
        *i += 1;
        if span.length == 0 {
            while let Some(s) = spans.get(*i).filter(|s| s.length == 0) {
                span.offset = span.offset.wrapping_add(s.offset);
                *i += 1;
            }
            if let Some(s) = spans.get(*i) {
                span.offset = span.offset.wrapping_add(s.offset);
                span.length = s.length;
                *i += 1;
            }
        }
        Some(span)
    }
    let (mut i, mut j) = (0, 0);
    loop {
        let (sa, sb) = match (next(a, &mut i), next(b, &mut j)) {
            (None, None) => return true,
            // The rest of the other side must be empty: its absorbed span has no length.
            (None, Some(s)) | (Some(s), None) => return s.length == 0,
            (Some(sa), Some(sb)) => (sa, sb),
        };
        if sa.length == 0 && sb.length == 0 {
            return true;
        }
        if sa != sb {
            return false;
        }
    }
}

/// Whether two custom bound lists are equal (compared as floats, as upstream does).
pub(super) fn bounds_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

impl FloatHistogram {
    /// Removes empty buckets and re-spans (see upstream's `Compact`): runs of at most
    /// `max_empty_buckets` empty buckets between populated ones stay inside one span.
    pub fn compact(&mut self, max_empty_buckets: usize) -> &mut Self {
        compact_side(&mut self.positive_spans, &mut self.positive_buckets, max_empty_buckets);
        compact_side(&mut self.negative_spans, &mut self.negative_buckets, max_empty_buckets);
        self
    }

    /// Merges the buckets into the coarser exponential `target_schema`. Refused for custom
    /// buckets, for a target that is not lower, and for a malformed layout.
    pub fn reduce_resolution(&mut self, target_schema: i32) -> Result<(), HistogramError> {
        if self.uses_custom_buckets() {
            return Err(HistogramError::ReduceCustomBuckets);
        }
        if target_schema == super::CUSTOM_BUCKETS_SCHEMA {
            return Err(HistogramError::ReduceToCustomBuckets);
        }
        if target_schema >= self.schema {
            return Err(HistogramError::NotAReduction { from: self.schema, to: target_schema });
        }
        check_spans(&self.positive_spans, self.positive_buckets.len())?;
        check_spans(&self.negative_spans, self.negative_buckets.len())?;
        self.reduce_unchecked(target_schema);
        Ok(())
    }

    /// [`reduce_resolution`](Self::reduce_resolution) without its checks, for callers that
    /// already know the target is lower.
    pub(super) fn reduce_unchecked(&mut self, target_schema: i32) {
        let from = self.schema;
        let pos = reduce_pairs(indexed(&self.positive_spans, &self.positive_buckets), from, target_schema);
        (self.positive_spans, self.positive_buckets) = from_indexed(pos);
        let neg = reduce_pairs(indexed(&self.negative_spans, &self.negative_buckets), from, target_schema);
        (self.negative_spans, self.negative_buckets) = from_indexed(neg);
        self.schema = target_schema;
    }
}
