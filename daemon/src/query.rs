//! Query coordination: fan a plan out to every shard, merge, finish, under the query timeout.
//!
//! Runs as a task on the shard whose HTTP handler received the query, so the timeout uses that
//! shard's timer and the coordinator's work happens on a core that is already serving it.

use std::sync::Arc;

use pyrite_core::promql::{EvalError, EvalParams, FragmentOutput, Plan, QueryResult};

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
    let result = match monoio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(EvalError::Timeout("query execution".into())),
    };
    let _ = reply.send(result);
}
