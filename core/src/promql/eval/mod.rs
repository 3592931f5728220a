//! Evaluation of planned nodes, vectorised over steps.
//!
//! Every value is computed for all steps of the query at once: a vector is a list of series,
//! each with one optional value per step; a scalar is one value per step; a range vector keeps
//! each series' samples with, per step, the end of its window. An instant query is a range
//! query with a single step.
//!
//! Shards evaluate fragments with [`evaluate_fragments`] against their own storage (any
//! [`SeriesSource`]); the coordinator merges the outputs and evaluates the rest with
//! [`Plan::finish`].

mod aggregate;
mod batches;
mod binary;
mod exact_sum;
mod extended;
mod functions;
mod info;
mod range_functions;
mod range_histograms;
mod selector;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use thiserror::Error;

use super::ast::{At, Extension};
use super::plan::{Fragment, Frame, Merge, Node, Plan};
use crate::histogram::FloatHistogram;
use crate::labels::{Labels, Matcher, Projection};
use crate::value::{histogram_samples, HistogramSample, Sample, SeriesSamples};

pub use aggregate::PartialAggregate;
pub use batches::{Chunked, SeriesBatches};
pub use functions::is_implemented;
pub use info::InfoMatchers;

/// Why a query could not be evaluated. Each maps onto an API error type.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EvalError {
    /// A valid query that uses something the evaluator does not implement yet (`execution`).
    #[error("not supported yet: {0}")]
    Unsupported(String),
    /// A query that failed while running, e.g. duplicate series after matching (`execution`).
    #[error("{0}")]
    Execution(String),
    /// The query ran past its deadline (`timeout`).
    #[error("query timed out in {0}")]
    Timeout(String),
    /// The client that asked for the query closed its side of the connection (`canceled`).
    #[error("query was canceled in {0}")]
    Canceled(String),
    /// The query would load more samples than `--query.max-samples` allows (`execution`).
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
    /// A block's data could not be read (damaged on disk); upstream's `internal`. The shard
    /// that finds it sets the block aside.
    #[error("block {block}: {reason}")]
    DamagedBlock { block: String, reason: String },
    /// A read's storage changed under it (a block cut from the head, blocks compacted) after
    /// some of it was handed out in batches ([`SeriesSource::select_batches`]): the fragment is
    /// evaluated again from a new read; the query fails with it only if that keeps happening
    /// (`execution`).
    #[error("the shard's storage changed under the query's read {MAX_READ_RESTARTS} times over")]
    StorageChanged,
    /// A fault in Pyrite itself stopped this query (a panic, caught where the query ran);
    /// upstream's `internal`.
    #[error("internal error: {0}")]
    Internal(String),
}

/// How the caller stops a running evaluation: past its deadline, or when the client has gone.
/// The core has no clock, so the caller supplies the test; evaluation asks it between series
/// and between nodes, and stops with the error it gives ([`EvalError::Timeout`],
/// [`EvalError::Canceled`]). Cloning shares the test, so every shard's fragments of one query
/// stop together.
#[derive(Clone, Default)]
pub struct Interrupt(Option<std::sync::Arc<dyn Fn() -> Result<(), EvalError> + Send + Sync>>);

impl Interrupt {
    /// An interrupt that fires once `stop` returns an error.
    pub fn new(stop: impl Fn() -> Result<(), EvalError> + Send + Sync + 'static) -> Self {
        Interrupt(Some(std::sync::Arc::new(stop)))
    }

    /// The error to stop with, once the evaluation must stop.
    pub fn check(&self) -> Result<(), EvalError> {
        self.0.as_ref().map_or(Ok(()), |stop| stop())
    }
}

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Interrupt(set)" } else { "Interrupt(none)" })
    }
}

/// What bounds one evaluation of a query, shared by every shard's fragments of it: cloning
/// shares the interrupt and the count of samples loaded, so `--query.max-samples` bounds the
/// query as a whole while its shards work, not only once they have answered.
#[derive(Clone, Debug)]
pub struct Limits {
    max_samples: usize,
    /// Step slots (series times steps) a [batched](batches) fragment evaluates at once.
    batch_slots: usize,
    interrupt: Interrupt,
    /// Samples loaded so far by every evaluator of this evaluation, on every shard.
    loaded: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Limits {
    /// At most `max_samples` (`--query.max-samples`), stopping when `interrupt` fires. Make one
    /// for each evaluation: the count starts at zero.
    pub fn new(max_samples: usize, interrupt: Interrupt) -> Self {
        Limits { max_samples, batch_slots: BATCH_SLOTS, interrupt, loaded: Default::default() }
    }

    /// The same limits, with batched fragments evaluating `slots` step slots at once (at least
    /// one series): fewer than [`BATCH_SLOTS`] to test batching on small data.
    pub fn with_batch_slots(self, slots: usize) -> Self {
        Limits { batch_slots: slots, ..self }
    }

    /// The same limit with a count of its own, starting at zero, stopped by `interrupt`: for a
    /// trial evaluation whose loads must not count if it is abandoned and run again elsewhere.
    /// A trial that is kept adds its count to this one with [`Limits::absorb`].
    pub fn trial(&self, interrupt: Interrupt) -> Limits {
        Limits::new(self.max_samples, interrupt).with_batch_slots(self.batch_slots)
    }

    /// Counts what a kept `trial` loaded, as if it had been loaded under these limits;
    /// `Err(TooManySamples)` if the query is now past its limit.
    pub fn absorb(&self, trial: &Limits) -> Result<(), EvalError> {
        self.charge(trial.loaded.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// How many more samples the query may load: a read may stop once it has read more, before
    /// the evaluator counts them.
    pub fn left(&self) -> usize {
        self.max_samples.saturating_sub(self.loaded.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// What stops this evaluation; storage that a query waits for asks it too.
    pub fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }

    /// Takes back `n` samples counted for an evaluation whose result was dropped (a batched
    /// fragment folding a new read).
    fn refund(&self, n: usize) {
        let ordering = std::sync::atomic::Ordering::Relaxed;
        let _ = self.loaded.fetch_update(ordering, ordering, |loaded| Some(loaded.saturating_sub(n)));
    }

    /// Counts `n` more loaded samples; `Err(TooManySamples)` once the query as a whole is past
    /// its limit.
    fn charge(&self, n: usize) -> Result<(), EvalError> {
        let before = self.loaded.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        if before.saturating_add(n) > self.max_samples {
            return Err(EvalError::TooManySamples);
        }
        Ok(())
    }
}

/// No limit, and no interrupt.
impl Default for Limits {
    fn default() -> Self {
        Limits::new(usize::MAX, Interrupt::default())
    }
}

/// Limits are not part of what a plan means: two plans that differ only in theirs are equal.
impl PartialEq for Limits {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Warnings and infos a query produced, as upstream words them (`PromQL warning: ...`,
/// `PromQL info: ...`), each with where in the query it points (a byte offset). Keyed by
/// message, so repeats across steps and shards collapse; the leftmost position is kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Annotations {
    pub warnings: BTreeMap<String, usize>,
    pub infos: BTreeMap<String, usize>,
}

fn note(into: &mut BTreeMap<String, usize>, message: String, pos: usize) {
    let slot = into.entry(message).or_insert(pos);
    *slot = (*slot).min(pos);
}

impl Annotations {
    pub fn warn(&mut self, message: impl std::fmt::Display, pos: usize) {
        note(&mut self.warnings, format!("PromQL warning: {message}"), pos);
    }

    pub fn info(&mut self, message: impl std::fmt::Display, pos: usize) {
        note(&mut self.infos, format!("PromQL info: {message}"), pos);
    }

    pub fn extend(&mut self, other: Annotations) {
        other.warnings.into_iter().for_each(|(m, pos)| note(&mut self.warnings, m, pos));
        other.infos.into_iter().for_each(|(m, pos)| note(&mut self.infos, m, pos));
    }

    /// Messages as upstream's API renders them for `query`: each followed by the line and
    /// column (1-based, in bytes) it points at, e.g. `... (1:6)`. Each costs a scan of the
    /// query up to its position: render only those that will be shown.
    pub fn rendered<'a>(messages: impl IntoIterator<Item = (&'a String, &'a usize)>, query: &str) -> Vec<String> {
        messages
            .into_iter()
            .map(|(message, &pos)| {
                let before = query.get(..pos.min(query.len())).unwrap_or(query);
                let line = before.matches('\n').count() + 1;
                let column = pos - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("{message} ({line}:{column})")
            })
            .collect()
    }
}

/// A finished query: its value and its annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    pub annotations: Annotations,
}

/// Steps a loop over one series' steps takes between two looks at the query's interrupt: a
/// subquery's frame can have millions of steps for a single series.
const STEPS_BETWEEN_CHECKS: usize = 1 << 16;

/// Work (steps made, samples visited) between two looks at the query's interrupt: well under
/// a millisecond's, so a query stops within a millisecond or so of its deadline.
const WORK_PER_LOOK: usize = 1 << 14;

/// Default resolution of a subquery without a step (upstream: the global evaluation interval).
pub const DEFAULT_SUBQUERY_STEP: i64 = 60_000;

/// Step slots a batched fragment evaluates at once: 16 MiB of step values (`Option<f64>`),
/// 4,350 series of a 1 h range at 15 s steps.
pub const BATCH_SLOTS: usize = 1 << 20;

/// Series a batch holds at most, whatever its steps: what the read holds of a series (labels,
/// sample vectors) is a few hundred bytes even for one sample, so an instant query's batch is
/// about 10 MiB of read where [`BATCH_SLOTS`] alone would let it be a million series.
const BATCH_SERIES: usize = 1 << 16;

/// How many times a read starts over because its storage changed under it: a shard's read
/// that has sent nothing yet, by itself; a batched fragment that has folded batches of it, on
/// [`EvalError::StorageChanged`]. Blocks change every block range or at a compaction, so more
/// than one restart is rare.
pub const MAX_READ_RESTARTS: usize = 3;

/// The time frame of an evaluation, all in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalParams {
    pub start: i64,
    pub end: i64,
    /// Distance between steps; 0 for an instant query.
    pub step: i64,
    pub lookback: i64,
}

impl EvalParams {
    pub fn instant(t: i64, lookback: i64) -> Self {
        EvalParams { start: t, end: t, step: 0, lookback }
    }

    /// Number of steps; 0 for an empty frame (a subquery window with no aligned step).
    ///
    /// Time arithmetic in frames saturates: offsets, `@` times and ranges come from the query
    /// text and may be as large as an `i64` holds.
    pub fn steps(&self) -> usize {
        if self.end < self.start {
            0
        } else if self.step == 0 {
            1
        } else {
            let span = i128::from(self.end) - i128::from(self.start);
            usize::try_from(span / i128::from(self.step) + 1).unwrap_or(usize::MAX)
        }
    }

    /// Timestamp of step `i`.
    pub fn ts(&self, i: usize) -> i64 {
        self.start.saturating_add((i as i64).saturating_mul(self.step))
    }

    fn resolve_at(&self, at: At) -> i64 {
        match at {
            At::Timestamp(t) => t,
            At::Start => self.start,
            At::End => self.end,
        }
    }

    /// The evaluation time of step `i` for something with these modifiers.
    fn shifted_time(&self, i: usize, offset: i64, at: Option<At>) -> i64 {
        at.map(|a| self.resolve_at(a)).unwrap_or_else(|| self.ts(i)).saturating_sub(offset)
    }

    /// The frame a subquery's inner expression is evaluated in: steps aligned to multiples of
    /// the subquery step, from the first one after the earliest window start to the latest end.
    pub fn subquery(&self, frame: &Frame) -> EvalParams {
        let step = frame.step.filter(|&s| s > 0).unwrap_or(DEFAULT_SUBQUERY_STEP);
        let steps = self.steps().max(1);
        let first = self.shifted_time(0, frame.offset, frame.at);
        let last = self.shifted_time(steps - 1, frame.offset, frame.at);
        let lo = first.min(last).saturating_sub(frame.range);
        let mut start = lo.div_euclid(step).saturating_mul(step);
        if start < lo {
            start = start.saturating_add(step);
        }
        EvalParams { start, end: first.max(last), step, lookback: self.lookback }
    }
}

/// One series of a vector: a value per step, `None` where it has none. A step holds a float
/// or a native histogram, never both.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSeries {
    pub labels: Labels,
    pub values: Vec<Option<f64>>,
    /// The histogram of each step, where the series has any; empty when it has none, so that
    /// float series cost nothing more. Operations that do not take histograms read only
    /// `values` and drop the histograms, as upstream drops them.
    pub histograms: Vec<Option<Arc<FloatHistogram>>>,
}

impl StepSeries {
    /// A series of float values only.
    pub fn floats(labels: Labels, values: Vec<Option<f64>>) -> Self {
        StepSeries { labels, values, histograms: Vec::new() }
    }

    /// The histogram at step `i`, if any.
    pub fn histogram(&self, i: usize) -> Option<&Arc<FloatHistogram>> {
        self.histograms.get(i).and_then(Option::as_ref)
    }

    /// Whether the series has a value of either type at some step.
    pub fn has_values(&self) -> bool {
        self.values.iter().any(Option::is_some) || self.histograms.iter().any(Option::is_some)
    }
}

/// A range vector over all steps: each series' samples, and per step the end of the window
/// `(end - range, end]` that the step sees.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeVector {
    pub series: Vec<SeriesSamples>,
    pub range: i64,
    pub ends: Vec<i64>,
    /// How far past its window each step sees, for an `anchored` or `smoothed` selector.
    pub reach: Option<Reach>,
}

/// What an `anchored` or `smoothed` range vector's steps see besides their windows: the
/// lookback delta before each window, and for `smoothed` the lookback delta after it (see
/// [`extended`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reach {
    pub extension: Extension,
    pub lookback: i64,
}

impl RangeVector {
    /// The samples the step whose window ends at `end` sees, as `(after, up to)`: its window
    /// `(end - range, end]` and what its [`Reach`] adds.
    fn bounds(&self, end: i64) -> (i64, i64) {
        let start = end.saturating_sub(self.range);
        match self.reach {
            None => (start, end),
            Some(Reach { extension: Extension::Anchored, lookback }) => (start.saturating_sub(lookback), end),
            Some(Reach { extension: Extension::Smoothed, lookback }) => {
                (start.saturating_sub(lookback), end.saturating_add(lookback))
            }
        }
    }

    /// The samples of `s` that step `i` sees.
    pub fn window<'a>(&self, s: &'a SeriesSamples, i: usize) -> &'a [Sample] {
        let (after, up_to) = self.bounds(self.ends[i]);
        let lo = s.samples.partition_point(|x| x.t <= after);
        let hi = s.samples.partition_point(|x| x.t <= up_to);
        &s.samples[lo..hi.max(lo)]
    }

    /// The samples of `s` in the window of each step, in step order.
    pub fn windows<'a>(&'a self, s: &'a SeriesSamples) -> impl Iterator<Item = &'a [Sample]> + 'a {
        self.windows_of(&s.samples, |x| x.t)
    }

    /// The histogram samples of `s` in the window of each step, in step order.
    pub fn histogram_windows<'a>(&'a self, s: &'a SeriesSamples) -> impl Iterator<Item = &'a [HistogramSample]> + 'a {
        self.windows_of(&s.histograms, |x| x.t)
    }

    /// The part of `samples` (in time order) each step sees. Window ends never decrease, so
    /// both edges only move forward: one pass over the samples for all steps.
    fn windows_of<'a, T>(&'a self, samples: &'a [T], time: fn(&T) -> i64) -> impl Iterator<Item = &'a [T]> + 'a {
        let (mut lo, mut hi) = (0, 0);
        self.ends.iter().map(move |&end| {
            let (after, up_to) = self.bounds(end);
            while hi < samples.len() && time(&samples[hi]) <= up_to {
                hi += 1;
            }
            while lo < hi && time(&samples[lo]) <= after {
                lo += 1;
            }
            &samples[lo..hi]
        })
    }

    /// The samples a step-by-step evaluation holds at once, as upstream's `--query.max-samples`
    /// counts them: per series the largest window, summed (an upper bound of any one step's).
    /// A histogram counts as its size does (see [`histogram_samples`]).
    pub fn peak_samples(&self) -> usize {
        let floats = |s: &SeriesSamples| self.most_in_a_window(&s.samples, |x| x.t, |lo, hi| hi - lo);
        let histograms = |s: &SeriesSamples| {
            let mut sizes = Vec::with_capacity(s.histograms.len() + 1);
            sizes.push(0);
            for x in &s.histograms {
                sizes.push(sizes[sizes.len() - 1] + histogram_samples(&x.h));
            }
            self.most_in_a_window(&s.histograms, |x| x.t, |lo, hi| sizes[hi] - sizes[lo])
        };
        self.series.iter().map(|s| floats(s) + if s.histograms.is_empty() { 0 } else { histograms(s) }).sum()
    }

    /// The largest `weight` (of the samples between two indexes) of `samples`, in time order,
    /// in any step's window. Window edges never move back, so a window gains samples only at
    /// the first step that reaches each one: only those steps are weighed, a binary search
    /// each, whatever the number of steps (a subquery's frame can have millions, and walking
    /// them all held a shard for seconds).
    fn most_in_a_window<T>(&self, samples: &[T], time: fn(&T) -> i64, weight: impl Fn(usize, usize) -> usize) -> usize {
        let mut most = 0;
        let mut weighed = None;
        for x in samples {
            let step = self.ends.partition_point(|&end| self.bounds(end).1 < time(x));
            if step == self.ends.len() {
                break; // this sample and the later ones are past every window
            }
            if weighed.replace(step) == Some(step) {
                continue;
            }
            let (after, up_to) = self.bounds(self.ends[step]);
            let lo = samples.partition_point(|y| time(y) <= after);
            let hi = samples.partition_point(|y| time(y) <= up_to);
            most = most.max(weight(lo, hi.max(lo)));
        }
        most
    }

    /// The samples each series has in the first step's window (an instant query's result).
    /// With `anchored` or `smoothed`, the floats with the values at the window's ends, at its
    /// start and end (see [`extended`]; [`Plan::finish`] refuses histograms there, as upstream).
    pub fn first_window(&self) -> Vec<SeriesSamples> {
        let mut out = Vec::new();
        for s in &self.series {
            let floats = self.window(s, 0);
            let series = match self.reach {
                None => {
                    let histograms = self.histogram_windows(s).next().unwrap_or_default().to_vec();
                    SeriesSamples { labels: s.labels.clone(), samples: floats.to_vec(), histograms }
                }
                Some(reach) => {
                    let (end, smoothed) = (self.ends[0], reach.extension == Extension::Smoothed);
                    let points = extended::boundary_points(floats, end.saturating_sub(self.range), end, smoothed);
                    SeriesSamples::floats(s.labels.clone(), points)
                }
            };
            if !series.is_empty() {
                out.push(series);
            }
        }
        out
    }

    /// Upstream's refusal of an instant query's `anchored` or `smoothed` range vector that
    /// holds histograms.
    fn check_instant_result(&self) -> Result<(), EvalError> {
        let Some(reach) = self.reach else { return Ok(()) };
        let has_histograms = |s| self.histogram_windows(s).next().is_some_and(|w| !w.is_empty());
        if self.series.iter().any(has_histograms) {
            let keyword = reach.extension.keyword();
            return Err(EvalError::Execution(format!("{keyword} modifier is not supported with histograms")));
        }
        Ok(())
    }
}

/// The result of evaluating a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// One value per step.
    Scalar(Vec<f64>),
    String(String),
    /// Series with a value per step.
    Vector(Vec<StepSeries>),
    /// A range vector (argument of range functions; an instant query's range result).
    Range(RangeVector),
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "instant vector",
            Value::Range(_) => "range vector",
        }
    }

    /// What handling it costs: its series' step slots and histograms (each as many samples as
    /// it counts for against the limit), a range vector's samples, a scalar's steps.
    pub fn slots(&self) -> usize {
        let histograms = |s: &StepSeries| s.histograms.iter().flatten().map(|h| histogram_samples(h)).sum::<usize>();
        match self {
            Value::Scalar(steps) => steps.len(),
            Value::String(_) => 1,
            Value::Vector(series) => series.iter().map(|s| s.values.len() + histograms(s)).sum(),
            Value::Range(range) => range.series.iter().map(SeriesSamples::weight).sum(),
        }
    }

    /// Sorts series by labels, so results do not depend on shard count or hashing.
    pub fn sort(&mut self) {
        match self {
            Value::Vector(v) => v.sort_by(|a, b| a.labels.cmp(&b.labels)),
            Value::Range(r) => r.series.sort_by(|a, b| a.labels.cmp(&b.labels)),
            _ => {}
        }
    }

    pub(crate) fn into_vector(self) -> Result<Vec<StepSeries>, EvalError> {
        match self {
            Value::Vector(v) => Ok(v),
            other => Err(EvalError::Execution(format!("expected an instant vector, got a {}", other.type_name()))),
        }
    }

    pub(crate) fn into_scalar(self) -> Result<Vec<f64>, EvalError> {
        match self {
            Value::Scalar(v) => Ok(v),
            other => Err(EvalError::Execution(format!("expected a scalar, got a {}", other.type_name()))),
        }
    }
}

/// Where a shard's fragments read samples from.
pub trait SeriesSource {
    /// Matching series with their samples in `[mint, maxt]`, with at least the labels of
    /// `labels`.
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        labels: &Projection,
    ) -> Result<Vec<SeriesSamples>, EvalError>;

    /// Matching series with at least their newest sample in `[mint, maxt]`: all that an
    /// instant selector evaluated at `maxt` alone reads. A source may skip the older samples
    /// (storage that keeps the newest at hand then decodes nothing); by default it reads them.
    fn select_newest(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        labels: &Projection,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        self.select(matchers, mint, maxt, labels)
    }

    /// The read `select` makes (with `newest`, `select_newest`) handed out about `size` series
    /// at a time, for a batched fragment that folds each batch as it comes: storage that can
    /// stream its read hands over each batch as it reads it; by default the read is taken
    /// whole and cut.
    fn select_batches<'a>(
        &'a self,
        matchers: &[Matcher],
        (mint, maxt): (i64, i64),
        newest: bool,
        labels: &Projection,
        size: usize,
    ) -> Result<Box<dyn SeriesBatches + 'a>, EvalError> {
        let series = match newest {
            true => self.select_newest(matchers, mint, maxt, labels)?,
            false => self.select(matchers, mint, maxt, labels)?,
        };
        Ok(Box::new(Chunked::new(series, size)))
    }
}

/// What a shard computed for one fragment.
#[derive(Debug, Clone, PartialEq)]
pub enum FragmentResult {
    Value(Value),
    Partial(PartialAggregate),
}

/// A shard's output for one fragment, with the annotations its evaluation produced and the
/// number of samples it loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct FragmentOutput {
    pub result: FragmentResult,
    pub annotations: Annotations,
    pub samples: usize,
}

impl FragmentOutput {
    /// What merging it costs: an aggregation's groups' step slots and member histograms, or
    /// its value's [`Value::slots`].
    pub fn slots(&self) -> usize {
        match &self.result {
            FragmentResult::Partial(partial) => partial.slots(),
            FragmentResult::Value(value) => value.slots(),
        }
    }
}

/// The most steps `node` or any node under it evaluates at, over `params`.
fn most_steps_in(node: &Node, params: &EvalParams) -> usize {
    let most = |nodes: &[&Node]| nodes.iter().map(|n| most_steps_in(n, params)).max().unwrap_or(0);
    let below = match node {
        Node::Subquery { expr, frame } => most_steps_in(expr, &params.subquery(frame)),
        Node::Call { args, .. } => args.iter().map(|a| most_steps_in(a, params)).max().unwrap_or(0),
        Node::Neg(x) => most(&[x]),
        Node::Binary { lhs, rhs, .. } => most(&[lhs, rhs]),
        Node::Aggregate { expr, param, .. } => most(&[expr]).max(param.as_deref().map_or(0, |p| most(&[p]))),
        Node::Absent { expr, .. } => most(&[expr]),
        Node::Info { base, infos, .. } => most(&[base, infos]),
        Node::Number(_)
        | Node::String(_)
        | Node::Select(_)
        | Node::SampleTimes(_)
        | Node::MatrixSelect { .. }
        | Node::Fragment(_) => 0,
    };
    below.max(params.steps())
}

/// The frame a fragment evaluates in: the query's, narrowed by each enclosing subquery.
fn fragment_params(params: &EvalParams, frames: &[Frame]) -> EvalParams {
    frames.iter().fold(*params, |p, f| p.subquery(f))
}

/// Evaluates fragment `index` of `plan` on one shard's storage.
pub fn evaluate_fragment(
    plan: &Plan,
    index: usize,
    params: &EvalParams,
    source: &dyn SeriesSource,
) -> Result<FragmentOutput, EvalError> {
    evaluate_fragment_within(plan, index, params, source, &plan.limits)
}

/// Evaluates every fragment of `plan` on one shard's storage, in order, under `limits`: the
/// plan's own, or a trial's (see [`Limits::trial`]).
pub fn evaluate_fragments(
    plan: &Plan,
    params: &EvalParams,
    source: &dyn SeriesSource,
    limits: &Limits,
) -> Result<Vec<FragmentOutput>, EvalError> {
    (0..plan.fragments.len()).map(|i| evaluate_fragment_within(plan, i, params, source, limits)).collect()
}

/// What a fragment's evaluations noted and loaded.
#[derive(Default)]
struct Tally {
    annotations: Annotations,
    samples: usize,
}

/// Fragment `index` of `plan` under `limits`. A [batched](Fragment::batched) fragment's
/// expression is evaluated over its read a batch of series at a time, each batch folded as it
/// comes ([`batches::Fold`]), and over a new read if the storage changed under this one.
fn evaluate_fragment_within(
    plan: &Plan,
    index: usize,
    params: &EvalParams,
    source: &dyn SeriesSource,
    limits: &Limits,
) -> Result<FragmentOutput, EvalError> {
    let fragment = &plan.fragments[index];
    let params = fragment_params(params, &fragment.frames);
    let mut tally = Tally::default();
    let evaluate = |source: &dyn SeriesSource, tally: &mut Tally| -> Result<Value, EvalError> {
        let mut ev = Evaluator::new(&params, Some(source), &[], limits)?;
        ev.in_subquery = !fragment.frames.is_empty();
        ev.labels = &fragment.labels;
        ev.distinct = fragment.distinct;
        let value = ev.eval(&fragment.node)?;
        tally.annotations.extend(ev.annotations.into_inner());
        tally.samples = tally.samples.saturating_add(ev.samples.get());
        Ok(value)
    };
    let result = if fragment.batched {
        let size = (limits.batch_slots / most_steps_in(&fragment.node, &params).max(1)).clamp(1, BATCH_SERIES);
        let mut restarts = 0;
        'read: loop {
            let batches = batches::Batches::new(source, size);
            let mut fold = batches::Fold::new(fragment, size)?;
            loop {
                match evaluate(&batches, &mut tally) {
                    Ok(value) => fold.add(value, &params, limits, &mut tally.annotations)?,
                    // What was folded may miss or repeat samples: fold a new read, and count
                    // only what it loads.
                    Err(EvalError::StorageChanged) if restarts < MAX_READ_RESTARTS => {
                        restarts += 1;
                        limits.refund(std::mem::take(&mut tally).samples);
                        continue 'read;
                    }
                    Err(e) => return Err(e),
                }
                if batches.done() {
                    break 'read fold.finish();
                }
            }
        }
    } else {
        let value = evaluate(source, &mut tally)?;
        match &fragment.merge {
            Merge::Concat => FragmentResult::Value(value),
            Merge::Aggregate { op, grouping, expr_pos } => FragmentResult::Partial(PartialAggregate::from_series(
                *op,
                grouping,
                value.into_vector()?,
                params.steps(),
                *expr_pos,
            )),
        }
    };
    let Tally { annotations, samples } = tally;
    Ok(FragmentOutput { result, annotations, samples })
}

impl Plan {
    /// The most steps any part of a fragment evaluates at over `params`, subqueries' frames
    /// included. What one step may load is bounded by the query's limit, so a read for the
    /// plan never needs more than this many times what the query may still load.
    pub fn most_steps(&self, params: &EvalParams) -> usize {
        let in_fragment = |f: &Fragment| most_steps_in(&f.node, &fragment_params(params, &f.frames));
        self.fragments.iter().map(in_fragment).max().unwrap_or(1).max(1)
    }

    /// Merges every shard's fragment outputs (`outputs[shard][fragment]`) and evaluates the
    /// coordinator's part. The result's series are sorted by labels, unless the query ends in
    /// a sort function whose order must be kept.
    pub fn finish(&self, params: &EvalParams, outputs: Vec<Vec<FragmentOutput>>) -> Result<QueryResult, EvalError> {
        let mut annotations = Annotations::default();
        let mut samples = 0usize;
        let mut per_fragment: Vec<Vec<FragmentResult>> = (0..self.fragments.len()).map(|_| Vec::new()).collect();
        for shard in outputs {
            for (i, out) in shard.into_iter().enumerate() {
                annotations.extend(out.annotations);
                samples = samples.saturating_add(out.samples);
                per_fragment[i].push(out.result);
            }
        }
        let merged: Vec<Value> = self
            .fragments
            .iter()
            .zip(per_fragment)
            .map(|(fragment, outs)| {
                self.limits.interrupt.check()?;
                merge(fragment, outs, &fragment_params(params, &fragment.frames), &mut annotations)
            })
            .collect::<Result<_, _>>()?;
        if samples > self.limits.max_samples {
            return Err(EvalError::TooManySamples);
        }
        let ev = Evaluator::new(params, None, &merged, &self.limits)?;
        let mut value = ev.eval(&self.root)?;
        if let Value::Range(range) = &value {
            range.check_instant_result()?;
        }
        if params.steps() > 1 || !functions::keeps_order(&self.root) {
            value.sort();
        }
        annotations.extend(ev.annotations.into_inner());
        Ok(QueryResult { value, annotations })
    }
}

/// One fragment's value from every shard's output; annotations the merge finds go to
/// `annotations`.
fn merge(
    fragment: &Fragment,
    outputs: Vec<FragmentResult>,
    params: &EvalParams,
    annotations: &mut Annotations,
) -> Result<Value, EvalError> {
    match &fragment.merge {
        Merge::Concat => {
            let mut merged: Option<Value> = None;
            for out in outputs {
                let FragmentResult::Value(v) = out else {
                    return Err(EvalError::Execution("expected series from a shard, got a partial aggregate".into()));
                };
                merged = Some(match (merged, v) {
                    (None, v) => v,
                    (Some(Value::Vector(mut a)), Value::Vector(b)) => {
                        a.extend(b);
                        Value::Vector(a)
                    }
                    (Some(Value::Range(mut a)), Value::Range(b)) => {
                        a.series.extend(b.series);
                        Value::Range(a)
                    }
                    (Some(a), b) => {
                        return Err(EvalError::Execution(format!(
                            "cannot merge a {} with a {}",
                            a.type_name(),
                            b.type_name()
                        )))
                    }
                });
            }
            match merged.unwrap_or(Value::Vector(Vec::new())) {
                Value::Vector(v) if !fragment.distinct => Ok(Value::Vector(merge_equal_labels(v)?)),
                other => Ok(other),
            }
        }
        Merge::Aggregate { op, expr_pos, .. } => {
            let mut acc = PartialAggregate::empty(*op, *expr_pos);
            for out in outputs {
                match out {
                    FragmentResult::Partial(p) => acc.merge(p),
                    FragmentResult::Value(_) => {
                        return Err(EvalError::Execution("expected a partial aggregate from a shard".into()))
                    }
                }
            }
            Ok(Value::Vector(acc.finish(params.steps(), annotations)))
        }
    }
}

/// A subquery's histogram as upstream hands it on: a counter's reset hint is dropped, since
/// the steps it was evaluated at are not the samples the hint was about.
fn without_reset_hint(h: &Arc<FloatHistogram>) -> Arc<FloatHistogram> {
    use crate::histogram::CounterResetHint::{CounterReset, NotCounterReset, Unknown};
    if !matches!(h.counter_reset_hint, CounterReset | NotCounterReset) {
        return h.clone();
    }
    let mut h = FloatHistogram::clone(h);
    h.counter_reset_hint = Unknown;
    Arc::new(h)
}

/// `-h`: every count and the sum negated, as upstream negates a histogram.
fn negated(h: &FloatHistogram) -> Arc<FloatHistogram> {
    let mut h = h.clone();
    h.mul(-1.0);
    Arc::new(h)
}

/// Orders values ascending (or descending), NaN last either way: the order of `sort`,
/// `sort_desc`, `topk` and `bottomk`.
pub(crate) fn nan_last(a: f64, b: f64, descending: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ if descending => b.total_cmp(&a),
        _ => a.total_cmp(&b),
    }
}

/// Merges series with equal label sets (e.g. after `rate()` dropped the metric names of two
/// otherwise equal series) into one, as upstream's range evaluation does; two values at the
/// same step are an error, as upstream reports it.
pub(crate) fn merge_equal_labels(series: Vec<StepSeries>) -> Result<Vec<StepSeries>, EvalError> {
    // Usually there is nothing to merge: check with 64-bit hashes before touching label sets.
    let mut hashes = std::collections::HashSet::with_capacity(series.len());
    if series.iter().all(|s| hashes.insert(s.labels.hash())) {
        return Ok(series);
    }
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(series.len());
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    for s in series {
        match index.get(&s.labels) {
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            Some(&i) => {
                let into = &mut out[i];
                if !s.histograms.is_empty() && into.histograms.is_empty() {
                    into.histograms = vec![None; into.values.len()];
                }
                let taken =
                    |step: usize, into: &StepSeries| into.values[step].is_some() || into.histogram(step).is_some();
                for step in 0..s.values.len() {
                    let (value, histogram) = (s.values[step], s.histogram(step));
                    if value.is_none() && histogram.is_none() {
                        continue;
                    }
                    if taken(step, into) {
                        return Err(EvalError::Execution(
                            "vector cannot contain metrics with the same labelset".into(),
                        ));
                    }
                    into.values[step] = value;
                    if let Some(h) = histogram {
                        into.histograms[step] = Some(h.clone());
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The recursive evaluator. On a shard it has a `source`; on the coordinator it has merged
/// fragment values.
struct Evaluator<'a> {
    params: &'a EvalParams,
    source: Option<&'a dyn SeriesSource>,
    fragments: &'a [Value],
    annotations: RefCell<Annotations>,
    /// Samples this evaluator loaded (reported to the coordinator); the query's count across
    /// shards is in `limits`.
    samples: std::cell::Cell<usize>,
    limits: &'a Limits,
    /// Work done since the interrupt was last looked at (see [`Evaluator::interrupt`]).
    unchecked: std::cell::Cell<usize>,
    /// True in a subquery's frame, where every series made becomes samples of the subquery's
    /// range vector and counts against the limit.
    in_subquery: bool,
    /// The labels storage reads return (a fragment's [`super::plan::Fragment::labels`]).
    labels: &'a Projection,
    /// No two series can have equal label sets ([`super::plan::Fragment::distinct`]).
    distinct: bool,
}

impl<'a> Evaluator<'a> {
    /// An evaluator over `params`' steps. Every vector it makes holds a slot per step for each
    /// series, so a frame with more steps than the limit is refused before anything is
    /// allocated (`count_over_time(vector(1)[290y:1ms])` would otherwise ask for terabytes).
    fn new(
        params: &'a EvalParams,
        source: Option<&'a dyn SeriesSource>,
        fragments: &'a [Value],
        limits: &'a Limits,
    ) -> Result<Self, EvalError> {
        if params.steps() > limits.max_samples {
            return Err(EvalError::TooManySamples);
        }
        limits.interrupt.check()?;
        Ok(Evaluator {
            params,
            source,
            fragments,
            annotations: RefCell::default(),
            samples: std::cell::Cell::new(0),
            limits,
            unchecked: std::cell::Cell::new(WORK_PER_LOOK),
            in_subquery: false,
            labels: &Projection::All,
            distinct: false,
        })
    }

    /// Counts `n` loaded samples against the query's limit, and stops if the query was
    /// interrupted.
    fn charge(&self, n: usize) -> Result<(), EvalError> {
        self.samples.set(self.samples.get().saturating_add(n));
        self.limits.charge(n)?;
        self.interrupt(n)
    }

    /// `Err(Timeout)` once the query has been interrupted; `work` is what the caller did since
    /// it last asked (steps made, samples visited). A look at the interrupt reads the clock,
    /// which costs as much as reading a series' newest sample, so the evaluator looks at the
    /// first ask and then once per [`WORK_PER_LOOK`] units of work: often for heavy series,
    /// seldom for light ones.
    fn interrupt(&self, work: usize) -> Result<(), EvalError> {
        let unchecked = self.unchecked.get().saturating_add(work);
        if unchecked < WORK_PER_LOOK {
            self.unchecked.set(unchecked);
            return Ok(());
        }
        self.unchecked.set(0);
        self.limits.interrupt.check()
    }

    /// Calls `f` with every step index below `steps`, asking the interrupt before every
    /// [`STEPS_BETWEEN_CHECKS`] steps.
    fn each_step(&self, steps: usize, mut f: impl FnMut(usize)) -> Result<(), EvalError> {
        for first in (0..steps).step_by(STEPS_BETWEEN_CHECKS) {
            let last = steps.min(first + STEPS_BETWEEN_CHECKS);
            self.interrupt(last - first)?;
            (first..last).for_each(&mut f);
        }
        Ok(())
    }

    /// Before a function makes a series of `steps` values: in a subquery's frame each of them
    /// is a sample of the subquery's range vector and counts against the limit, as upstream
    /// counts them (and the limit bounds what is allocated). Elsewhere nothing yet: see
    /// [`Evaluator::charge_points`].
    fn charge_series(&self, steps: usize) -> Result<(), EvalError> {
        if self.in_subquery {
            self.charge(steps)
        } else {
            Ok(())
        }
    }

    /// Once a range function made `series` over a range query's steps (outside a subquery,
    /// whose frame counted it already): each step with a value counts against the limit, as
    /// upstream counts the points of a function's result while it builds it. So `rate(m[5m])`
    /// over a day at 1 s steps is refused where upstream refuses it, instead of being held.
    fn charge_points(&self, series: &StepSeries) -> Result<(), EvalError> {
        if self.in_subquery || series.values.len() <= 1 {
            return Ok(());
        }
        let floats = series.values.iter().filter(|v| v.is_some()).count();
        self.charge(floats + series.histograms.iter().filter(|h| h.is_some()).count())
    }

    /// Records a warning about the part of the query that starts at byte `pos`.
    fn warn(&self, message: impl std::fmt::Display, pos: usize) {
        self.annotations.borrow_mut().warn(message, pos);
    }

    /// Records an info about the part of the query that starts at byte `pos`.
    fn info(&self, message: impl std::fmt::Display, pos: usize) {
        self.annotations.borrow_mut().info(message, pos);
    }

    fn source(&self) -> Result<&dyn SeriesSource, EvalError> {
        self.source.ok_or_else(|| EvalError::Execution("storage read outside a shard fragment".into()))
    }

    /// Evaluates `node` in another time frame (a subquery's), keeping its annotations.
    fn eval_in(&self, params: &EvalParams, node: &Node) -> Result<Value, EvalError> {
        let mut inner = Evaluator::new(params, self.source, self.fragments, self.limits)?;
        inner.in_subquery = true;
        inner.labels = self.labels;
        inner.distinct = self.distinct;
        let value = inner.eval(node);
        self.annotations.borrow_mut().extend(inner.annotations.into_inner());
        // Already counted in `limits` as the inner evaluator loaded them.
        self.samples.set(self.samples.get().saturating_add(inner.samples.get()));
        value
    }

    /// Evaluates `node`; series that ended up with equal label sets are merged into one.
    /// Selectors, aggregations, `absent` and (already merged) fragments cannot produce such
    /// series, so their results are not checked; nor are those of a fragment whose series
    /// the planner found distinct (whose reads may then return only some labels).
    fn eval(&self, node: &Node) -> Result<Value, EvalError> {
        let unique = self.distinct
            || matches!(
                node,
                Node::Select(_)
                    | Node::SampleTimes(_)
                    | Node::Aggregate { .. }
                    | Node::Absent { .. }
                    | Node::Info { .. }
                    | Node::Fragment(_)
            );
        match self.eval_node(node)? {
            Value::Vector(v) if !unique => Ok(Value::Vector(merge_equal_labels(v)?)),
            other => Ok(other),
        }
    }

    fn eval_node(&self, node: &Node) -> Result<Value, EvalError> {
        let steps = self.params.steps();
        Ok(match node {
            Node::Number(n) => Value::Scalar(vec![*n; steps]),
            Node::String(s) => Value::String(s.clone()),
            Node::Select(vs) => Value::Vector(selector::instant(self, vs)?),
            Node::SampleTimes(vs) => Value::Vector(selector::sample_times(self, vs)?),
            Node::MatrixSelect { selector: vs, range } => {
                let range = selector::range(self.source()?, vs, *range, self.params, self.labels)?;
                self.charge(range.peak_samples())?;
                Value::Range(range)
            }
            Node::Subquery { expr, frame } => Value::Range(self.subquery(expr, frame)?),
            Node::Fragment(i) => self.fragments[*i].clone(),
            Node::Absent { expr, labels } => Value::Vector(functions::absent(self.eval(expr)?, labels, steps)?),
            Node::Info { base, infos, matchers } => {
                let base = self.eval(base)?.into_vector()?;
                Value::Vector(info::enrich(base, self.eval(infos)?.into_vector()?, matchers, steps)?)
            }
            Node::Call { func, args, pos } => functions::call(self, func, args, pos)?,
            Node::Neg(x) => match self.eval(x)? {
                Value::Scalar(v) => Value::Scalar(v.into_iter().map(|x| -x).collect()),
                Value::Vector(series) => Value::Vector(
                    series
                        .into_iter()
                        .map(|s| StepSeries {
                            labels: s.labels.into_without_metric_name(),
                            values: s.values.into_iter().map(|v| v.map(|x| -x)).collect(),
                            histograms: s.histograms.into_iter().map(|h| h.map(|h| negated(&h))).collect(),
                        })
                        .collect(),
                ),
                other => return Err(EvalError::Execution(format!("unary minus on a {}", other.type_name()))),
            },
            Node::Binary { op, lhs, rhs, modifiers } => {
                binary::apply(self, *op, modifiers, self.eval(lhs)?, self.eval(rhs)?, steps)?
            }
            Node::Aggregate { op, expr, param, grouping, param_pos, expr_pos } => {
                let param = param.as_deref().map(|p| self.eval(p)).transpose()?.map(|v| (v, *param_pos));
                let series = self.eval(expr)?.into_vector()?;
                aggregate::evaluate(self, *op, grouping, param, (series, *expr_pos), steps)?
            }
        })
    }

    /// Evaluates a subquery's inner expression in its own frame and presents the result as a
    /// range vector over this frame's steps.
    fn subquery(&self, expr: &Node, frame: &Frame) -> Result<RangeVector, EvalError> {
        let inner = self.params.subquery(frame);
        let ends: Vec<i64> =
            (0..self.params.steps()).map(|i| self.params.shifted_time(i, frame.offset, frame.at)).collect();
        if inner.steps() == 0 {
            return Ok(RangeVector { series: Vec::new(), range: frame.range, ends, reach: None });
        }
        let mut series = Vec::new();
        for s in self.eval_in(&inner, expr)?.into_vector()? {
            let mut samples = Vec::new();
            self.each_step(s.values.len(), |i| samples.extend(s.values[i].map(|v| Sample { t: inner.ts(i), v })))?;
            let histograms = (0..s.histograms.len())
                .filter_map(|i| s.histogram(i).map(|h| HistogramSample { t: inner.ts(i), h: without_reset_hint(h) }))
                .collect();
            series.push(SeriesSamples { labels: s.labels, samples, histograms });
        }
        Ok(RangeVector { series, range: frame.range, ends, reach: None })
    }
}

#[cfg(test)]
mod tests;
