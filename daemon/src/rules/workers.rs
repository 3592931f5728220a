//! The threads that evaluate rule groups: a pool that grows while groups fall due faster than
//! its workers finish them, up to [`MAX_WORKERS`]. A slow group keeps one worker and delays no
//! other, as upstream's goroutine per group, while thousands of groups need no thousands of
//! threads (each reserves 64 MiB of stack and counts against the process's thread limit). A
//! worker takes a due group, evaluates it (blocking on the shards' answers), counts the slots it
//! overran, publishes its status, queues its alerts and hands it back to the `rules` thread,
//! which keeps the schedule (`schedule.rs`).

use std::sync::Arc;
use std::time::Instant;

use pyrite_core::rules::{GroupState, RuleEval, RuleSettings};

use super::storage::ShardStorage;
use super::RulesThread;
use crate::clock::now_ms;
use crate::metrics::MetricLabels;

/// The most groups evaluated at once. Evaluations wait for the shards, so more would not make
/// them faster; the bound keeps a slow group from holding up others until that many are slow.
pub(super) const MAX_WORKERS: usize = 64;

/// A group in force with what evaluating it needs; it goes to a worker when due and comes back.
pub(super) struct Group {
    /// Its entry in the schedule.
    pub id: u64,
    pub state: GroupState,
    pub settings: RuleSettings,
    /// `rule_group="file;name"` of its metrics.
    pub label: MetricLabels,
    /// The time of its next evaluation (ms).
    pub t: i64,
}

/// The workers, and the groups handed to them and not yet back.
pub(super) struct Pool {
    env: Arc<RulesThread>,
    due: (flume::Sender<Group>, flume::Receiver<Group>),
    evaluated: (flume::Sender<Group>, flume::Receiver<Group>),
    workers: usize,
    out: usize,
    /// Whether the last worker could not start (logged once until one does).
    short: bool,
    /// The rules thread's own storage handle, made if no worker could ever start.
    here: Option<ShardStorage>,
}

impl Pool {
    pub(super) fn new(env: Arc<RulesThread>) -> Pool {
        Pool {
            env,
            due: flume::unbounded(),
            evaluated: flume::unbounded(),
            workers: 0,
            out: 0,
            short: false,
            here: None,
        }
    }

    /// Where evaluated groups come back (the pool holds both ends: it never closes).
    pub(super) fn evaluated(&self) -> &flume::Receiver<Group> {
        &self.evaluated.1
    }

    /// Queues a due group for the next free worker, starting one if all are busy and fewer
    /// than [`MAX_WORKERS`] run. With no worker at all (none could start: the process is at its
    /// thread limit), the calling thread evaluates it, as a concurrent rule evaluation runs on
    /// its group's thread then, rather than leave it queued for a worker that may never come.
    pub(super) fn hand_out(&mut self, mut group: Group) {
        self.out += 1;
        if self.out > self.workers && self.workers < MAX_WORKERS {
            self.start_worker();
        }
        // The pool holds the receiving ends too: the sends cannot fail.
        if self.workers == 0 {
            let env = &self.env;
            let storage = self.here.get_or_insert_with(|| ShardStorage::new(env.shards.clone(), env.queries.clone()));
            evaluate(env, storage, &mut group);
            let _ = self.evaluated.0.send(group);
            return;
        }
        let _ = self.due.0.send(group);
    }

    /// Notes that a group handed out came back.
    pub(super) fn took_back(&mut self) {
        self.out -= 1;
    }

    fn start_worker(&mut self) {
        let (env, due, evaluated) = (self.env.clone(), self.due.1.clone(), self.evaluated.0.clone());
        let started = std::thread::Builder::new()
            .name("rule-group".into())
            .stack_size(crate::STACK_SIZE)
            .spawn(move || work(&env, &due, &evaluated));
        match started {
            Ok(_) => {
                self.workers += 1;
                self.short = false;
            }
            Err(e) => {
                if !self.short {
                    tracing::error!(workers = self.workers, error = %e, "cannot start a thread to evaluate rule groups; due groups wait for a running one, or run on the rules thread if none runs");
                }
                self.short = true;
            }
        }
    }
}

/// Evaluates one rule. Alert templates run a third-party engine over labels scraped from
/// outside: a panic there (or in the evaluator) fails this rule's round, not the process,
/// which would meet the same data again after a restart.
pub(super) fn run_caught(rule: &mut RuleEval<'_>, storage: &mut ShardStorage) {
    if let Err(panic) = crate::panic::catch(|| rule.run(storage, &Instant::now)) {
        tracing::error!(%panic, "rule evaluation panicked; its round is skipped");
        rule.fail(panic);
    }
}

/// A worker's loop: each due group evaluated and handed back.
fn work(env: &RulesThread, due: &flume::Receiver<Group>, evaluated: &flume::Sender<Group>) {
    let mut storage = ShardStorage::new(env.shards.clone(), env.queries.clone());
    while let Ok(mut group) = due.recv() {
        evaluate(env, &mut storage, &mut group);
        if evaluated.send(group).is_err() {
            return;
        }
    }
}

/// Evaluates the group at its time `t` (its independent rules at once if concurrent evaluation
/// is on), restores its `for` state if due, counts, publishes its status, queues its alerts,
/// and moves `t` to its next slot. The slots that passed while it waited for a worker, or
/// while it ran, are missed: a group that waited is evaluated at the latest slot it waited
/// through, and one that overran its interval at once after, as upstream's group loop does.
fn evaluate(env: &RulesThread, storage: &mut ShardStorage, group: &mut Group) {
    let Group { state: g, settings, label, t, .. } = group;
    storage.evaluating((g.file.clone(), g.name.clone()));
    let metrics = &env.metrics.rule_groups;
    let waited = (now_ms() - *t) / g.interval;
    if waited > 0 {
        metrics.iterations.get_or_create(label).inc_by(waited as u64);
        metrics.iterations_missed.get_or_create(label).inc_by(waited as u64);
        *t += waited * g.interval;
    }
    let due = match &env.concurrent_evals {
        Some(concurrent) => {
            g.evaluate_in_batches(*t, settings, &Instant::now, true, &mut |batch| concurrent.run(batch, storage))
        }
        None => g.evaluate_in_batches(*t, settings, &Instant::now, false, &mut |batch| {
            batch.iter_mut().for_each(|rule| run_caught(rule, storage))
        }),
    };
    if !g.restored {
        let a = &env.alerting;
        g.restore_for_state(now_ms(), storage, a.for_outage_tolerance, a.for_grace_period);
    }
    for rule in &g.rules {
        metrics.evaluations.get_or_create(label).inc();
        metrics.rule_duration.observe(&vec![], rule.evaluation_seconds);
        if rule.last_error.is_some() {
            metrics.evaluation_failures.get_or_create(label).inc();
        }
    }
    metrics.duration.observe(&vec![], g.evaluation_seconds);
    metrics.last_evaluation.get_or_create(label).set(*t as f64 / 1000.0);
    metrics.last_duration.get_or_create(label).set(g.evaluation_seconds);
    metrics.last_samples.get_or_create(label).set(g.evaluation_samples as i64);
    env.notifier.queue(due);
    let slots = ((now_ms() - *t) / g.interval).max(1);
    metrics.iterations.get_or_create(label).inc_by(slots as u64);
    metrics.iterations_missed.get_or_create(label).inc_by(slots as u64 - 1);
    *t += slots * g.interval;
    env.manager.publish_one(g);
}
