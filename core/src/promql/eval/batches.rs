//! A shard's read handed to a fragment's expression a batch of series at a time, so that an
//! aggregation over millions of series folds each batch into its partial state and drops it.
//!
//! Evaluated whole, `sum by (handler) (rate(x[5m]))` over a 1 h range at 15 s steps holds a
//! slot per step for every series (241 slots of 16 bytes, 3.9 kB a series, gigabytes at a few
//! million series) before folding them into a handful of groups. A fragment the planner marks
//! [`batched`](crate::promql::plan::Fragment::batched) reads storage once and its series
//! cannot collide, so its expression gives the same series whichever of them it sees at once.
//! Its read is asked for in batches of about [`Limits::batch_slots`](super::Limits) step slots
//! ([`SeriesSource::select_batches`]): storage that can stream it hands each batch over as it
//! reads, so that not even the read is held whole; other storage reads it whole and cuts it.
//! Each batch's result is folded ([`Fold`]): into an aggregation's partial state, or, for a
//! shard's `topk`/`bottomk`, into the best series so far.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use super::{
    aggregate, Annotations, EvalError, EvalParams, Evaluator, FragmentResult, Limits, SeriesSource, StepSeries, Value,
};
use crate::labels::{Matcher, Projection};
use crate::promql::ast::AggregateGrouping;
use crate::promql::eval::PartialAggregate;
use crate::promql::plan::{Fragment, Merge, Node};
use crate::value::SeriesSamples;

/// A read handed out a batch of series at a time ([`SeriesSource::select_batches`]).
pub trait SeriesBatches {
    /// The next batch, and whether it is the last. [`EvalError::StorageChanged`] if the storage
    /// changed under a read that had already handed batches out: what they held may miss or
    /// repeat samples, so the expression is evaluated again from a new read.
    fn next_batch(&mut self) -> Result<(Vec<SeriesSamples>, bool), EvalError>;
}

/// A read taken whole, handed out `size` series at a time.
pub struct Chunked {
    left: VecDeque<SeriesSamples>,
    size: usize,
}

impl Chunked {
    /// `series`, `size` (at least one) at a time.
    pub fn new(series: Vec<SeriesSamples>, size: usize) -> Self {
        Chunked { left: series.into(), size: size.max(1) }
    }
}

impl SeriesBatches for Chunked {
    fn next_batch(&mut self) -> Result<(Vec<SeriesSamples>, bool), EvalError> {
        let n = self.left.len().min(self.size);
        let batch = self.left.drain(..n).collect();
        Ok((batch, self.left.is_empty()))
    }
}

/// The series of one read, by batches, as a source the expression reads from.
pub(super) struct Batches<'a> {
    source: &'a dyn SeriesSource,
    /// Series per batch.
    size: usize,
    /// `None` until the expression reads.
    read: RefCell<Option<Box<dyn SeriesBatches + 'a>>>,
    /// Whether the last batch has been handed out.
    last: Cell<bool>,
}

impl<'a> Batches<'a> {
    /// Batches of `size` series (at least one) of the one read the expression makes of `source`.
    pub(super) fn new(source: &'a dyn SeriesSource, size: usize) -> Self {
        Batches { source, size: size.max(1), read: RefCell::new(None), last: Cell::new(false) }
    }

    /// Whether every series has been handed out: true too if the expression did not read (a
    /// frame of no steps reads nothing).
    pub(super) fn done(&self) -> bool {
        self.last.get() || self.read.borrow().is_none()
    }

    /// The next batch, asking `source` for the read the first time.
    fn next(
        &self,
        matchers: &[Matcher],
        range: (i64, i64),
        newest: bool,
        labels: &Projection,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        let mut read = self.read.borrow_mut();
        let read = match &mut *read {
            Some(read) => read,
            unread => unread.insert(self.source.select_batches(matchers, range, newest, labels, self.size)?),
        };
        let (batch, last) = read.next_batch()?;
        self.last.set(last);
        Ok(batch)
    }
}

impl SeriesSource for Batches<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        labels: &Projection,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        self.next(matchers, (mint, maxt), false, labels)
    }

    fn select_newest(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        labels: &Projection,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        self.next(matchers, (mint, maxt), true, labels)
    }
}

/// What a batched fragment keeps of the batches it folded so far.
pub(super) enum Fold<'f> {
    /// An aggregation's partial state, which each batch's series merge into.
    Partial { partial: PartialAggregate, grouping: &'f AggregateGrouping },
    /// A shard's `topk`/`bottomk` (`aggregation`, the fragment's node): the best series of each
    /// batch, cut back to the best of them by the same aggregation once they are more than
    /// `cut_at`, which then doubles past what was kept, so that k series per group and step
    /// that outnumber a batch are not cut again at every batch. The best of all series are
    /// among the best of their batches.
    Best { kept: Vec<StepSeries>, aggregation: &'f Node, cut_at: usize },
}

impl<'f> Fold<'f> {
    /// Nothing folded yet, for batches of `size` series of `fragment` (a batched one: an
    /// aggregation, or a concatenated `topk`/`bottomk`).
    pub(super) fn new(fragment: &'f Fragment, size: usize) -> Result<Self, EvalError> {
        Ok(match (&fragment.merge, &fragment.node) {
            (Merge::Aggregate { op, grouping, expr_pos }, _) => {
                Fold::Partial { partial: PartialAggregate::empty(*op, *expr_pos), grouping }
            }
            (Merge::Concat, aggregation @ Node::Aggregate { .. }) => {
                Fold::Best { kept: Vec::new(), aggregation, cut_at: size }
            }
            (Merge::Concat, node) => return Err(EvalError::Internal(format!("batches of {node} cannot be folded"))),
        })
    }

    /// Folds one batch's `value`.
    pub(super) fn add(
        &mut self,
        value: Value,
        params: &EvalParams,
        limits: &Limits,
        annotations: &mut Annotations,
    ) -> Result<(), EvalError> {
        match self {
            Fold::Partial { partial, grouping } => partial.add_series(grouping, value.into_vector()?, params.steps()),
            Fold::Best { kept, aggregation, cut_at } => {
                kept.extend(value.into_vector()?);
                if kept.len() > *cut_at {
                    let Node::Aggregate { op, param, grouping, param_pos, expr_pos, .. } = aggregation else {
                        return Err(EvalError::Internal(format!("{aggregation} is not an aggregation")));
                    };
                    let ev = Evaluator::new(params, None, &[], limits)?;
                    let k = param.as_deref().map(|k| ev.eval(k)).transpose()?.map(|k| (k, *param_pos));
                    let all = (std::mem::take(kept), *expr_pos);
                    *kept = aggregate::evaluate(&ev, *op, grouping, k, all, params.steps())?.into_vector()?;
                    annotations.extend(ev.annotations.into_inner());
                    *cut_at = (*cut_at).max(2 * kept.len());
                }
            }
        }
        Ok(())
    }

    /// What the fragment answers.
    pub(super) fn finish(self) -> FragmentResult {
        match self {
            Fold::Partial { partial, .. } => FragmentResult::Partial(partial),
            Fold::Best { kept, .. } => FragmentResult::Value(Value::Vector(kept)),
        }
    }
}
