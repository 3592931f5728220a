//! Queries in the server: the core's one [`Executor`] over the shards. Whoever asks — an HTTP
//! handler, the rules thread for a rule or a template's `query` call — spawns [`coordinate`]
//! on a shard, which runs the query there as a task: waits for a query slot, hands each
//! shard's fragments of the plan to the query [`workers`] (which read the shard's storage by
//! asking it: [`shard_storage`]), merges, and answers. No shard's thread evaluates.

mod shard_storage;
mod workers;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyrite_core::promql::{
    Cancelled, EvalError, EvalParams, Executor, Expr, Fanout, FragmentOutput, Plan, QueryLimits, QueryResult,
};
use pyrite_core::rules::InstantQuery;

use crate::shards::{ShardGone, Shards};
use crate::slots::{Slot, Slots};
use workers::Workers;

/// The executor of every query in the server.
pub type ServerExecutor = Executor<ShardFanout>;

/// Builds the server's executor, starting its workers: `limits`, and `max_concurrency` queries
/// at once.
pub fn executor(shards: Shards, limits: QueryLimits, max_concurrency: usize) -> std::io::Result<ServerExecutor> {
    Ok(Executor::new(
        ShardFanout { workers: Workers::start(shards, max_concurrency)?, slots: Slots::new(max_concurrency) },
        limits,
    ))
}

/// Every shard's fragments, evaluated by the workers; awaited on the coordinating shard's
/// runtime.
pub struct ShardFanout {
    workers: Workers,
    /// `--query.max-concurrency`.
    slots: Slots,
}

impl Fanout for ShardFanout {
    type Permit = Slot;

    async fn admit(&self) -> Slot {
        self.slots.acquire().await
    }

    async fn fragments(
        &self,
        plan: &Arc<Plan>,
        params: EvalParams,
        deadline: Option<Instant>,
    ) -> Result<Vec<Vec<FragmentOutput>>, EvalError> {
        let answers = self.workers.fragments(plan, params);
        let all = async {
            let mut outputs = Vec::with_capacity(answers.len());
            for answer in answers {
                outputs.push(
                    answer.recv_async().await.map_err(|_| EvalError::Internal("a query worker stopped".into()))??,
                );
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

    fn now() -> Instant {
        Instant::now()
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
