//! The query workers: threads that evaluate the shard fragments of every query but the light
//! ones (which a shard answers itself, `shard::light`), so that no shard's thread evaluates a
//! heavy query (it would hold its appends, scrapes and HTTP for as long as it ran). A worker
//! evaluates one shard's fragments of a plan over that shard's storage, which it reads by
//! asking the shard ([`ShardStorage`]); the shard answers in slices.
//!
//! There is a worker for each of the `--query.max-concurrency` queries admitted at once, and at
//! least one per shard. So on one shard every admitted query starts at once, and a light query
//! is not queued behind a heavy one: the kernel shares the CPUs among them (and the shards'
//! threads), as Go's scheduler does among upstream's queries. And one query's fragments run on
//! every shard at once, as they did on the shards' threads. Only when more fragments than
//! workers are in flight (many queries over several shards) do some wait in the queue, their
//! queries' deadlines running. Workers run at a lower priority than the shards
//! ([`crate::threads::yield_cpu_to_shards`]), so busy workers do not delay a shard's requests.
//! Idle workers cost a sleeping thread each; every worker has the
//! stack of every evaluating thread (`crate::STACK_SIZE`, of which only touched pages count).

use std::sync::Arc;

use pyrite_core::promql::{evaluate_fragments, EvalError, EvalParams, FragmentOutput, Plan};

use super::remote::RemoteSelects;
use super::shard_storage::ShardStorage;
use crate::shards::{Request, Shards};

type Job = Box<dyn FnOnce() + Send>;

/// What one worker's evaluation of one shard's fragments gives.
pub type Fragments = Result<Vec<FragmentOutput>, EvalError>;

/// The queue of the workers; they stop when it is dropped.
pub struct Workers {
    jobs: flume::Sender<Job>,
    shards: Shards,
}

impl Workers {
    /// Starts the workers for `shards` and `max_concurrency` queries at once.
    pub fn start(shards: Shards, max_concurrency: usize) -> std::io::Result<Workers> {
        let (jobs, queue) = flume::unbounded::<Job>();
        for i in 0..max_concurrency.max(shards.len()) {
            let queue = queue.clone();
            std::thread::Builder::new().name(format!("query-{i}")).stack_size(crate::STACK_SIZE).spawn(move || {
                crate::threads::yield_cpu_to_shards();
                while let Ok(job) = queue.recv() {
                    job();
                }
            })?;
        }
        Ok(Workers { jobs, shards })
    }

    /// Evaluates every fragment of `plan` over each shard's storage on the workers; one answer
    /// per shard, in shard order.
    /// `remote` holds the query's remote stores.
    pub fn fragments(
        &self,
        plan: &Arc<Plan>,
        params: EvalParams,
        remote: &Arc<RemoteSelects>,
    ) -> Vec<flume::Receiver<Fragments>> {
        (0..self.shards.len()).map(|shard| self.evaluate(shard, plan.clone(), params, remote.clone())).collect()
    }

    /// Evaluates `plan`'s fragments over shard `shard`'s storage: on the shard itself if they
    /// are light and read no remote store (`shard::light`), else on a worker. The query only
    /// reads: a panic fails it (`EvalError::Internal`), the worker serves on.
    fn evaluate(
        &self,
        shard: usize,
        plan: Arc<Plan>,
        params: EvalParams,
        remote: Arc<RemoteSelects>,
    ) -> flume::Receiver<Fragments> {
        let on_shard = !remote.configured();
        let source =
            ShardStorage::new(self.shards.clone(), shard, plan.limits.clone(), plan.most_steps(&params), remote);
        let worker_plan = plan.clone();
        let jobs = self.jobs.clone();
        let to_worker = move |reply: flume::Sender<Fragments>| {
            let plan = worker_plan;
            let job = move || {
                if reply.is_disconnected() {
                    return; // the coordinator gave up while this waited in the queue
                }
                let evaluate = || evaluate_fragments(&plan, &params, &source, &plan.limits);
                let _ =
                    reply.send(crate::panic::catch(evaluate).unwrap_or_else(|panic| Err(EvalError::Internal(panic))));
            };
            // The workers run as long as the process; a failed send leaves the answer
            // disconnected.
            let _ = jobs.send(Box::new(job));
        };
        if on_shard {
            self.shards.ask(shard, |reply| Request::Evaluate {
                plan,
                params,
                reply: reply.clone(),
                to_worker: Box::new(move || to_worker(reply)),
            })
        } else {
            let (reply, answer) = flume::bounded(1);
            to_worker(reply);
            answer
        }
    }
}
