//! Queries in the server: the core's one [`Executor`] over the shards. Whoever asks — an HTTP
//! handler, the rules thread for a rule or a template's `query` call — spawns [`coordinate`]
//! on a shard, which runs the query there as a task: waits for a query slot, sends each shard
//! its fragments of the plan, which it evaluates itself if they are light (`shard::light`) or
//! else hands to the query [`workers`] (which read the shard's storage by asking it:
//! [`shard_storage`]), merges, and answers. No shard's thread evaluates a heavy query.

mod remote;
mod shard_storage;
mod workers;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyrite_core::promql::{
    Cancelled, EvalError, EvalParams, Executor, Expr, Fanout, FragmentOutput, Plan, QueryLimits, QueryResult,
    QueryStage,
};
use pyrite_core::rules::InstantQuery;

use crate::live_config::LiveConfig;
use crate::metrics::Metrics;
use crate::shards::{ShardGone, Shards};
use crate::slots::{Slot, Slots};
use crate::threads::off_shard;
use remote::RemoteSelects;
use workers::Workers;

/// The executor of every query in the server.
pub type ServerExecutor = Executor<ShardFanout>;

/// What the queries read besides the shards: the configuration in force (its `remote_read`
/// stores) and the margin added to the local start time for their `read_recent` (upstream:
/// twice the minimum block duration).
pub struct RemoteStores {
    pub config: Arc<LiveConfig>,
    pub start_margin: i64,
}

/// Builds the server's executor, starting its workers: `limits`, and `max_concurrency` queries
/// at once.
pub fn executor(
    shards: Shards,
    remote: RemoteStores,
    limits: QueryLimits,
    max_concurrency: usize,
    metrics: Arc<Metrics>,
) -> std::io::Result<ServerExecutor> {
    metrics.queries_concurrent_max.set(max_concurrency as i64);
    let workers = Workers::start(shards.clone(), max_concurrency)?;
    let fanout = ShardFanout { workers, shards, remote, slots: Slots::new(max_concurrency), metrics };
    Ok(Executor::new(fanout, limits))
}

/// Step slots of the shards' outputs that the coordinating shard merges itself; more go to a
/// thread of their own ([`ShardFanout::finish`]).
const FINISH_ON_SHARD: usize = 1 << 16;

/// Every shard's fragments, evaluated by the workers; awaited on the coordinating shard's
/// runtime.
pub struct ShardFanout {
    workers: Workers,
    shards: Shards,
    remote: RemoteStores,
    /// `--query.max-concurrency`.
    slots: Slots,
    metrics: Arc<Metrics>,
}

/// A query from when it starts waiting for its slot until it ends (or is dropped while waiting):
/// counted in `prometheus_engine_queries`.
struct Counted(Arc<Metrics>);

impl Counted {
    fn new(metrics: &Arc<Metrics>) -> Counted {
        metrics.queries_running.inc();
        Counted(metrics.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.queries_running.dec();
    }
}

/// A running query's hold on its slot.
pub struct Running {
    _slot: Slot,
    _counted: Counted,
}

impl Fanout for ShardFanout {
    type Permit = Running;

    async fn admit(&self) -> Running {
        let counted = Counted::new(&self.metrics);
        Running { _slot: self.slots.acquire().await, _counted: counted }
    }

    async fn fragments(
        &self,
        plan: &Arc<Plan>,
        params: EvalParams,
        deadline: Option<Instant>,
    ) -> Result<Vec<Vec<FragmentOutput>>, EvalError> {
        let remote = Arc::new(RemoteSelects::new(
            self.remote.config.current(),
            self.shards.clone(),
            self.remote.start_margin,
            deadline,
        ));
        let answers = self.workers.fragments(plan, params, &remote);
        let all = async {
            let mut outputs: Vec<Vec<FragmentOutput>> = Vec::with_capacity(answers.len());
            for answer in answers {
                outputs.push(
                    answer
                        .recv_async()
                        .await
                        .map_err(|_| EvalError::Internal("a shard or query worker stopped".into()))??,
                );
            }
            // A store that failed is a warning on the query, as upstream.
            if let Some(first) = outputs.first_mut().and_then(|shard| shard.first_mut()) {
                remote.take_warnings().into_iter().for_each(|w| first.annotations.warn(w, 0));
            }
            Ok(outputs)
        };
        match deadline {
            // Workers busy with other queries answer late; the wait ends at the deadline anyway.
            Some(deadline) => monoio::time::timeout(deadline.saturating_duration_since(Instant::now()), all)
                .await
                .map_err(|_| EvalError::Timeout("query execution".into()))?,
            None => all.await,
        }
    }

    /// On the coordinating shard when the outputs are small, as a light query's are (no
    /// hand-off); else on a thread of its own, with a query thread's stack (the coordinator's
    /// part recurses as deep as the query), which the shard awaits while it serves on: merging
    /// `count by (pod) (x)` over a million pods takes seconds. The query's permit is held
    /// meanwhile, so such threads are at most `--query.max-concurrency`.
    async fn finish(
        &self,
        plan: &Arc<Plan>,
        params: EvalParams,
        outputs: Vec<Vec<FragmentOutput>>,
    ) -> Result<QueryResult, EvalError> {
        let slots = outputs.iter().flatten().map(FragmentOutput::slots).fold(0, usize::saturating_add);
        if slots <= FINISH_ON_SHARD {
            return plan.finish(&params, outputs);
        }
        plan.limits.interrupt().check()?;
        let plan = plan.clone();
        let thread = std::thread::Builder::new().name("query-finish".into()).stack_size(crate::STACK_SIZE);
        let finish = move || {
            crate::threads::yield_cpu_to_shards();
            crate::panic::catch(|| plan.finish(&params, outputs))
        };
        match off_shard(thread, finish).await {
            Ok(finished) => finished.unwrap_or_else(|panic| Err(EvalError::Internal(panic))),
            Err(e) => Err(EvalError::Internal(format!("cannot finish the query off the shard: {e}"))),
        }
    }

    fn now() -> Instant {
        Instant::now()
    }

    fn observe(&self, stage: QueryStage, took: Duration) {
        self.metrics.query_duration.observe(&vec![("slice", stage.slice().to_string())], took.as_secs_f64());
    }
}

/// Runs one query on this shard and sends the answer (a task of the coordinating shard). The
/// query only reads: a panic while planning or coordinating it fails this query, not the process.
pub async fn coordinate(
    executor: Arc<ServerExecutor>,
    expr: Expr,
    params: EvalParams,
    timeout: Option<Duration>,
    cancelled: Cancelled,
    reply: flume::Sender<Result<QueryResult, EvalError>>,
) {
    let run = crate::panic::CatchPanic::new(executor.run(&expr, params, timeout, cancelled));
    let _ = reply.send(run.await.unwrap_or_else(|panic| Err(EvalError::Internal(panic))));
}

/// Instant queries from a thread outside the shards (the rules thread: rule expressions and
/// templates' `query` calls): each is coordinated by the next shard in turn, and waited for.
pub fn instant_queries(shards: Shards, executor: Arc<ServerExecutor>) -> InstantQuery {
    let next = Cell::new(0);
    Rc::new(move |expr: &Expr, t: i64| {
        let shard = next.replace(next.get() + 1) % shards.len();
        let params = executor.instant(t);
        let (reply, rx) = flume::bounded(1);
        let (executor, expr) = (executor.clone(), expr.clone());
        shards.spawn(shard, move || coordinate(executor, expr, params, None, Cancelled::default(), reply));
        let answer = rx.recv().map_err(|_| EvalError::Execution(ShardGone.to_string()))?;
        Ok(answer?.value)
    })
}
