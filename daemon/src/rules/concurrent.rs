//! Rules of one group evaluated at once (`--enable-feature=concurrent-rule-eval`): a batch of
//! rules independent of each other, each on a thread of its own while a slot of the global
//! `--rules.max-concurrent-evals` is free, else on the group's worker, as upstream does.

use std::sync::{Arc, Mutex};

use pyrite_core::rules::RuleEval;

use super::storage::ShardStorage;
use super::workers::run_caught;
use crate::query::ServerExecutor;
use crate::shards::Shards;
use crate::slots::Slots;

/// What evaluating rules on threads of their own needs.
pub struct ConcurrentEvals {
    /// `--rules.max-concurrent-evals`, shared by every group.
    pub slots: Slots,
    pub shards: Shards,
    pub queries: Arc<ServerExecutor>,
}

impl ConcurrentEvals {
    /// Evaluates every rule of `batch` and returns when all are done: each rule on a new thread
    /// (with its own storage handle) if a slot is free, else at once on this thread with
    /// `storage`. A batch of one runs here.
    pub(super) fn run(&self, batch: &mut [RuleEval<'_>], storage: &mut ShardStorage) {
        let alone = batch.len() <= 1;
        // Each evaluation behind a lock of its own, so that one whose thread could not start
        // is still at hand to run here.
        let evals: Vec<Mutex<&mut RuleEval<'_>>> = batch.iter_mut().map(Mutex::new).collect();
        std::thread::scope(|scope| {
            for eval in &evals {
                let run_here = |storage: &mut ShardStorage| run_caught(&mut lock(eval), storage);
                let Some(slot) = (!alone).then(|| self.slots.try_acquire()).flatten() else {
                    run_here(storage);
                    continue;
                };
                let (shards, queries, group) = (self.shards.clone(), self.queries.clone(), storage.group());
                let started = std::thread::Builder::new()
                    .name("rule".into())
                    .stack_size(crate::STACK_SIZE)
                    .spawn_scoped(scope, move || {
                        let _slot = slot;
                        let mut storage = ShardStorage::new(shards, queries);
                        storage.evaluating(group);
                        run_caught(&mut lock(eval), &mut storage);
                    });
                if let Err(e) = started {
                    // A system out of threads (a process limit): the rule runs here instead.
                    tracing::warn!(error = %e, "cannot start a thread for a rule evaluation; evaluating it in turn");
                    run_here(storage);
                }
            }
        });
    }
}

/// The evaluation behind `eval`'s lock, which a panic in another evaluation cannot poison (each
/// is taken by one thread only).
fn lock<'a, 'b, 'r>(eval: &'a Mutex<&'b mut RuleEval<'r>>) -> std::sync::MutexGuard<'a, &'b mut RuleEval<'r>> {
    eval.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
