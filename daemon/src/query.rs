//! Query coordination: fan a plan out to every shard, merge, finish, under the query timeout.
//!
//! Runs as a task on the shard whose HTTP handler received the query, so the timeout uses that
//! shard's timer and the coordinator's work happens on a core that is already serving it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use pyrite_core::promql::{EvalError, EvalParams, FragmentOutput, Interrupt, Limits, Plan, QueryResult};

use crate::context::Context;
use crate::shard::Request;

pub async fn coordinate(
    ctx: Arc<Context>,
    plan: Arc<Plan>,
    params: EvalParams,
    timeout: std::time::Duration,
    reply: flume::Sender<Result<QueryResult, EvalError>>,
) {
    let work = async {
        let answers = ctx
            .shards
            .ask_all(|tx| Request::Fragments { plan: plan.clone(), params, reply: tx })
            .await
            .map_err(|e| EvalError::Execution(e.to_string()))?;
        let outputs: Vec<Vec<FragmentOutput>> = answers.into_iter().collect::<Result<_, _>>()?;
        plan.finish(&params, outputs)
    };
    let result = match monoio::time::timeout(timeout, crate::panic::CatchPanic::new(work)).await {
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => Err(EvalError::Internal(panic)),
        Err(_) => Err(EvalError::Timeout("query execution".into())),
    };
    let _ = reply.send(result);
}

/// Cancels the query it was made for when dropped: the HTTP handler holds it, so a client that
/// goes away stops the work on every shard once hyper drops the handler, which it does only
/// when the shard serving the connection is free to notice (fragments do not run in slices
/// yet).
pub struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Puts the server's limits on `plan`: at most `max_samples` over all shards, and an interrupt
/// that stops every shard's evaluation at `deadline` or once the returned guard is dropped.
pub fn limit(plan: &mut Plan, max_samples: usize, deadline: Instant) -> CancelOnDrop {
    let cancelled = Arc::new(AtomicBool::new(false));
    let flag = cancelled.clone();
    let interrupt = Interrupt::new(move || flag.load(Ordering::Relaxed) || Instant::now() >= deadline);
    plan.limits = Limits::new(max_samples, interrupt);
    CancelOnDrop(cancelled)
}
