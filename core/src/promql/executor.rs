//! The one way a query runs, whoever asks: the HTTP API, rule evaluation and the `query`
//! function of alert templates (through the server's shards), `pyrite test rules` and the
//! conformance runner (through in-memory heads).
//!
//! [`Executor::run`] plans the expression, waits for a permit (`--query.max-concurrency`),
//! puts the limits on the plan — at most `max_samples` samples over all shards, a deadline
//! that is the server's timeout or the query's own if shorter, and cancellation —, asks every
//! shard for its fragments and finishes on the caller's side. Limits are applied here and
//! nowhere else, so every kind of query obeys the same ones.
//!
//! Nothing here waits, spawns or reads a clock: where the shards are, how they are asked, how
//! a wait is bounded and what time it is are the caller's [`Fanout`].

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::eval::{EvalError, EvalParams, FragmentOutput, Interrupt, Limits, QueryResult, BATCH_SLOTS};
use super::plan::{plan, Plan};
use super::Expr;

/// The server's query limits.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// `--query.max-samples`: samples loaded at once by one query, over all shards.
    pub max_samples: usize,
    /// `--query.timeout`; a query may ask for less.
    pub timeout: Duration,
    /// `--query.lookback-delta`, ms; a query may ask for another.
    pub lookback_delta: i64,
    /// Step slots a batched fragment evaluates at once ([`super::eval::BATCH_SLOTS`]).
    pub batch_slots: usize,
}

impl QueryLimits {
    /// No sample limit and no timeout (rule unit tests and conformance scripts, as upstream's
    /// test engines), with upstream's default lookback of 5 minutes.
    pub fn unlimited() -> QueryLimits {
        QueryLimits {
            max_samples: usize::MAX,
            timeout: Duration::MAX,
            lookback_delta: 300_000,
            batch_slots: BATCH_SLOTS,
        }
    }
}

/// The stages of a query whose durations the caller is told, as upstream's
/// `prometheus_engine_query_duration_seconds` names them in its `slice` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryStage {
    /// Parsing is the caller's; planning is this.
    Prepare,
    /// Waiting for a `--query.max-concurrency` permit.
    Queue,
    /// The shards' fragments and the coordinator's part, merging and sorting included.
    Eval,
}

impl QueryStage {
    /// Upstream's `slice` label value.
    pub fn slice(self) -> &'static str {
        match self {
            QueryStage::Prepare => "prepare_time",
            QueryStage::Queue => "queue_time",
            QueryStage::Eval => "inner_eval",
        }
    }
}

/// Where a plan's fragments run: every shard, however it is reached.
pub trait Fanout {
    /// Held while a query runs.
    type Permit;

    /// Waits for one of the `--query.max-concurrency` permits.
    fn admit(&self) -> impl Future<Output = Self::Permit>;

    /// Every fragment of `plan` evaluated on every shard, in shard order; gives up with
    /// [`EvalError::Timeout`] if the answers are not all in by `deadline` (if any).
    fn fragments(
        &self,
        plan: &Arc<Plan>,
        params: EvalParams,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<Vec<Vec<FragmentOutput>>, EvalError>>;

    /// The shards' `outputs` merged and the coordinator's part of `plan` evaluated
    /// ([`Plan::finish`]); by default here, on the caller's thread.
    fn finish(
        &self,
        plan: &Arc<Plan>,
        params: EvalParams,
        outputs: Vec<Vec<FragmentOutput>>,
    ) -> impl Future<Output = Result<QueryResult, EvalError>> {
        std::future::ready(plan.finish(&params, outputs))
    }

    /// The time now, by the caller's clock.
    fn now() -> Instant;

    /// Told how long a stage of a query took (the server's metrics); by default, nothing.
    fn observe(&self, _stage: QueryStage, _took: Duration) {}
}

/// Set once the client that asked for a query is gone; every shard's evaluation stops.
#[derive(Clone, Default)]
pub struct Cancelled {
    flag: Arc<AtomicBool>,
    /// Asks whether the client is gone, for when the thread that would notice is busy.
    probe: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

impl Cancelled {
    fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed) || self.probe.as_ref().is_some_and(|gone| gone())
    }
}

impl std::fmt::Debug for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancelled").field("flag", &self.flag).field("probe", &self.probe.is_some()).finish()
    }
}

/// Cancels its query when dropped: whoever waits for a query's answer holds it, so that a
/// client that goes away stops the work on every shard.
#[derive(Debug, Default)]
pub struct CancelOnDrop(Cancelled);

impl CancelOnDrop {
    /// Also cancels once `gone` says the client has gone away. Evaluation asks it between series
    /// and every few thousand steps, on every shard, so it must be cheap.
    pub fn probing(gone: impl Fn() -> bool + Send + Sync + 'static) -> CancelOnDrop {
        CancelOnDrop(Cancelled { flag: Arc::default(), probe: Some(Arc::new(gone)) })
    }

    /// The flag to hand to [`Executor::run`].
    pub fn flag(&self) -> Cancelled {
        self.0.clone()
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.flag.store(true, Ordering::Relaxed);
    }
}

/// Runs queries through a [`Fanout`] under one set of [`QueryLimits`].
pub struct Executor<F> {
    fanout: F,
    limits: QueryLimits,
}

impl<F: Fanout> Executor<F> {
    pub fn new(fanout: F, limits: QueryLimits) -> Self {
        Executor { fanout, limits }
    }

    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// An instant query's parameters at `t` (Unix ms), with the server's lookback.
    pub fn instant(&self, t: i64) -> EvalParams {
        EvalParams::instant(t, self.limits.lookback_delta)
    }

    /// Evaluates `expr` over `params`, stopping at the server's timeout or at `timeout` if it is
    /// shorter, or once `cancelled` is set.
    pub async fn run(
        &self,
        expr: &Expr,
        params: EvalParams,
        timeout: Option<Duration>,
        cancelled: Cancelled,
    ) -> Result<QueryResult, EvalError> {
        let started = F::now();
        let mut plan = plan(expr, &params)?;
        let planned = F::now();
        self.fanout.observe(QueryStage::Prepare, planned.saturating_duration_since(started));
        let _permit = self.fanout.admit().await;
        let admitted = F::now();
        self.fanout.observe(QueryStage::Queue, admitted.saturating_duration_since(planned));
        let timeout = timeout.map_or(self.limits.timeout, |t| t.min(self.limits.timeout));
        let deadline = F::now().checked_add(timeout);
        let interrupt = Interrupt::new(move || {
            if cancelled.is_set() {
                Err(EvalError::Canceled("query execution".into()))
            } else if deadline.is_some_and(|deadline| F::now() >= deadline) {
                Err(EvalError::Timeout("query execution".into()))
            } else {
                Ok(())
            }
        });
        plan.limits = Limits::new(self.limits.max_samples, interrupt).with_batch_slots(self.limits.batch_slots);
        let plan = Arc::new(plan);
        let result = match self.fanout.fragments(&plan, params, deadline).await {
            Ok(outputs) => self.fanout.finish(&plan, params, outputs).await,
            Err(e) => Err(e),
        };
        self.fanout.observe(QueryStage::Eval, F::now().saturating_duration_since(admitted));
        result
    }
}
