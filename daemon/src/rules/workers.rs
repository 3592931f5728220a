//! One rule group's thread: evaluates the group on its own schedule (upstream's goroutine per
//! group), so a slow group delays no other. Evaluation times are multiples of the interval
//! shifted by a per-group hash offset; an evaluation that outlasts its interval makes the group
//! skip the slots it overran (counted as missed) and evaluate the latest at once. After each
//! evaluation it queues the due alerts and publishes the group's status and metrics. A changed
//! definition arrives on its channel and takes over the group's state; the channel closing
//! stops the thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flume::RecvTimeoutError;
use pyrite_core::labels::Labels;
use pyrite_core::rules::{GroupState, RuleSettings};

use super::storage::ShardStorage;
use super::RulesThread;
use crate::clock::now_ms;
use crate::metrics::MetricLabels;

/// A group's new definition (same file and name), with the configuration's external labels.
pub(super) struct Definition {
    pub group: GroupState,
    pub external_labels: Labels,
}

/// Starts the thread of `definition`'s group; dropping the returned sender stops it (after the
/// evaluation in progress, if any).
pub(super) fn spawn(env: Arc<RulesThread>, definition: Definition) -> std::io::Result<flume::Sender<Definition>> {
    let (changes, receiver) = flume::unbounded();
    std::thread::Builder::new()
        .name("rule-group".into())
        .stack_size(crate::STACK_SIZE)
        .spawn(move || run(&env, definition, &receiver))?;
    Ok(changes)
}

fn run(env: &RulesThread, definition: Definition, changes: &flume::Receiver<Definition>) {
    let mut storage = ShardStorage::new(env.shards.clone(), env.queries.clone());
    let mut settings = RuleSettings {
        external_labels: definition.external_labels,
        external_url: env.external_url.clone(),
        resend_delay: env.alerting.resend_delay,
        parse: env.parse,
    };
    let mut group = definition.group;
    let label = vec![("rule_group", format!("{};{}", group.file, group.name))];
    describe(env, &group, &label);
    let mut next = group.next_evaluation(now_ms());
    loop {
        let wait = Duration::from_millis((next - now_ms()).max(0) as u64);
        match changes.recv_timeout(wait) {
            Ok(Definition { group: mut fresh, external_labels }) => {
                fresh.carry_over(&mut group);
                group = fresh;
                settings.external_labels = external_labels;
                describe(env, &group, &label);
                next = group.next_evaluation(now_ms());
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => {
                env.metrics.rule_groups.remove(&label);
                return;
            }
            Err(RecvTimeoutError::Timeout) if now_ms() < next => continue,
            Err(RecvTimeoutError::Timeout) => {}
        }
        evaluate(env, &mut storage, &settings, &mut group, next, &label);
        // The slots that passed while it ran are missed; the latest of them is evaluated now.
        let slots = ((now_ms() - next) / group.interval).max(1);
        let metrics = &env.metrics.rule_groups;
        metrics.iterations.get_or_create(&label).inc_by(slots as u64);
        metrics.iterations_missed.get_or_create(&label).inc_by(slots as u64 - 1);
        next += slots * group.interval;
        env.manager.publish_one(&group);
    }
}

/// Publishes a group's definition: its status and its interval and rule count metrics.
fn describe(env: &RulesThread, group: &GroupState, label: &MetricLabels) {
    let metrics = &env.metrics.rule_groups;
    metrics.interval.get_or_create(label).set(group.interval as f64 / 1000.0);
    metrics.rules.get_or_create(label).set(group.rules.len() as i64);
    env.manager.publish_one(group);
}

/// Evaluates the group at `t` (its independent rules at once if concurrent evaluation is on),
/// restores its `for` state if due, counts and queues.
fn evaluate(
    env: &RulesThread,
    storage: &mut ShardStorage,
    settings: &RuleSettings,
    g: &mut GroupState,
    t: i64,
    label: &MetricLabels,
) {
    let due = match &env.concurrent_evals {
        Some(concurrent) => {
            g.evaluate_in_batches(t, settings, &Instant::now, true, &mut |batch| concurrent.run(batch, storage))
        }
        None => g.evaluate(t, storage, settings, &Instant::now),
    };
    if !g.restored {
        let a = &env.alerting;
        g.restore_for_state(now_ms(), storage, a.for_outage_tolerance, a.for_grace_period);
    }
    let metrics = &env.metrics.rule_groups;
    for rule in &g.rules {
        metrics.evaluations.get_or_create(label).inc();
        metrics.rule_duration.observe(&vec![], rule.evaluation_seconds);
        if rule.last_error.is_some() {
            metrics.evaluation_failures.get_or_create(label).inc();
        }
    }
    metrics.duration.observe(&vec![], g.evaluation_seconds);
    metrics.last_evaluation.get_or_create(label).set(t as f64 / 1000.0);
    metrics.last_duration.get_or_create(label).set(g.evaluation_seconds);
    metrics.last_samples.get_or_create(label).set(g.evaluation_samples as i64);
    env.notifier.queue(due);
}
