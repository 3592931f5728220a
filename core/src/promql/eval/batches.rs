//! A shard's read handed to a fragment's expression a batch of series at a time, so that an
//! aggregation over millions of series folds each batch into its partial state and drops it.
//!
//! Evaluated whole, `sum by (handler) (rate(x[5m]))` over a 1 h range at 15 s steps holds a
//! slot per step for every series (241 slots of 16 bytes, 3.9 kB a series, gigabytes at a few
//! million series) before folding them into a handful of groups. A fragment the planner marks
//! [`batched`](crate::promql::plan::Fragment::batched) reads storage once and its series
//! cannot collide, so its expression gives the same series whichever of them it sees at once:
//! the read is taken whole as before, then handed out in batches of about
//! [`Limits::batch_slots`](super::Limits) step slots, each batch's series dropped once its
//! result is folded.

use std::cell::RefCell;
use std::collections::VecDeque;

use super::{EvalError, SeriesSource};
use crate::labels::{Matcher, Projection};
use crate::value::SeriesSamples;

/// The series of one read, by batches.
pub(super) struct Batches<'a> {
    source: &'a dyn SeriesSource,
    /// Series per batch.
    size: usize,
    /// `None` until the expression reads; then what it has not been handed yet.
    left: RefCell<Option<VecDeque<SeriesSamples>>>,
}

impl<'a> Batches<'a> {
    /// Batches of `size` series (at least one) of the one read the expression makes of `source`.
    pub(super) fn new(source: &'a dyn SeriesSource, size: usize) -> Self {
        Batches { source, size: size.max(1), left: RefCell::new(None) }
    }

    /// Whether every series has been handed out: true too if the expression did not read (a
    /// frame of no steps reads nothing).
    pub(super) fn done(&self) -> bool {
        self.left.borrow().as_ref().is_none_or(VecDeque::is_empty)
    }

    /// The next batch, reading with `read` the first time.
    fn next(
        &self,
        read: impl FnOnce() -> Result<Vec<SeriesSamples>, EvalError>,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        let mut left = self.left.borrow_mut();
        let left = match &mut *left {
            Some(left) => left,
            unread => unread.insert(read()?.into()),
        };
        let n = left.len().min(self.size);
        Ok(left.drain(..n).collect())
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
        self.next(|| self.source.select(matchers, mint, maxt, labels))
    }

    fn select_newest(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        labels: &Projection,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        self.next(|| self.source.select_newest(matchers, mint, maxt, labels))
    }
}
