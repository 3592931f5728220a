//! Rules of one group evaluated at once (`--enable-feature=concurrent-rule-eval`): a batch of
//! rules independent of each other, each on a thread of its own while a slot of the global
//! `--rules.max-concurrent-evals` is free, else on the group's thread, as upstream does.

use std::sync::Arc;
use std::time::Instant;

use pyrite_core::rules::RuleEval;

use super::storage::ShardStorage;
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
        std::thread::scope(|scope| {
            for eval in batch.iter_mut() {
                let Some(slot) = (!alone).then(|| self.slots.try_acquire()).flatten() else {
                    eval.run(storage, &Instant::now);
                    continue;
                };
                let (shards, queries) = (self.shards.clone(), self.queries.clone());
                std::thread::Builder::new()
                    .name("rule".into())
                    .stack_size(crate::STACK_SIZE)
                    .spawn_scoped(scope, move || {
                        let _slot = slot;
                        eval.run(&mut ShardStorage::new(shards, queries), &Instant::now);
                    })
                    // As `std::thread::scope`'s own `spawn`: a system out of threads ends the
                    // process (the rule's state is lent to the thread that could not start).
                    .expect("cannot start a thread for a rule evaluation");
            }
        });
    }
}
