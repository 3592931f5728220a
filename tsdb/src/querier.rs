//! Reading a shard's storage as one: its blocks and its head, merged series by series.
//!
//! Blocks cover disjoint time ranges before the head's `min_valid`, and the head answers only
//! from `min_valid` on, so a series' samples are the concatenation of what each block and the
//! head hold for it, in time order. Should blocks overlap anyway, samples are sorted and
//! duplicate timestamps dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use pyrite_core::labels::{Labels, Matcher, Projection};
use pyrite_core::promql::{EvalError, SeriesSource};
use pyrite_core::value::SeriesSamples;

use super::block::{Block, BlockError};
use super::head::Head;

/// A read view over one shard: its blocks, sorted by min time, and its head.
#[derive(Clone, Copy)]
pub struct Querier<'a> {
    pub blocks: &'a [Block],
    pub head: &'a Head,
}

impl Querier<'_> {
    /// The blocks with data in `[mint, maxt]`, by min time.
    pub fn blocks_in(&self, mint: i64, maxt: i64) -> impl Iterator<Item = &Block> {
        self.blocks.iter().filter(move |b| b.overlaps(mint, maxt))
    }

    /// Every matching series with its samples in `[mint, maxt]`, in no particular order.
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<SeriesSamples>, BlockError> {
        let mut parts = Vec::new();
        for block in self.blocks_in(mint, maxt) {
            parts.push(block.select(matchers, mint, maxt)?);
        }
        parts.push(self.head.select(matchers, mint, maxt, &Projection::All));
        Ok(merge_parts(parts))
    }
}

/// One series list from what each block and the head gave (blocks by min time, the head
/// last): a series' samples concatenated in time order, merged as [`crate::overlap`] says
/// should blocks overlap.
pub fn merge_parts(mut parts: Vec<Vec<SeriesSamples>>) -> Vec<SeriesSamples> {
    if parts.len() == 1 {
        // Recent data only (most dashboard queries): the head's answer needs no merging.
        return parts.pop().unwrap_or_default();
    }
    let mut merged: BTreeMap<Labels, (Vec<_>, Vec<_>)> = BTreeMap::new();
    for s in parts.into_iter().flatten() {
        let (samples, histograms) = merged.entry(s.labels).or_default();
        samples.extend(s.samples);
        histograms.extend(s.histograms);
    }
    merged
        .into_iter()
        .map(|(labels, (mut samples, mut histograms))| {
            crate::overlap::merge(&mut samples, &mut histograms, |s| s.t, |s| s.t, |s| Arc::make_mut(&mut s.h));
            SeriesSamples { labels, samples, histograms }
        })
        .collect()
}

/// Queries over in-memory engines read the head alone.
impl SeriesSource for Head {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        labels: &Projection,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        Ok(Head::select(self, matchers, mint, maxt, labels))
    }

    fn select_newest(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        labels: &Projection,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        Ok(self.candidates(matchers).iter().filter_map(|id| self.newest_sample(id, mint, maxt, labels)).collect())
    }
}
