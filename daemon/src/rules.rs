//! Rule evaluation in the server: the groups of the rule files in force, each evaluated on its
//! own schedule by the `rules` thread against the shards, recorded samples and `ALERTS` written
//! back to their owner shards, due alerts handed to the notifier.
//!
//! The thread only queues alerts: a slow or unreachable Alertmanager never delays evaluation.
//! Groups run one after another on this one thread, so a group slower than its interval delays
//! the others (upstream runs each group in its own goroutine); its evaluations are then skipped,
//! not queued, as upstream skips missed iterations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pyrite_core::labels::Labels;
use pyrite_core::promql::ParseOptions;
use pyrite_core::remote::WriteSeries;
use pyrite_core::rules::{
    GroupDefaults, GroupState, GroupStatus, InstantQuery, RuleError, RuleFile, RuleSettings, RuleStorage,
};
use pyrite_core::value::Sample;

use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::notifier::Notifier;
use crate::query::ServerExecutor;
use crate::shards::{ShardGone, Shards};

/// New groups for the thread, and the external labels of the configuration they came with.
struct Update {
    groups: Vec<GroupState>,
    external_labels: Labels,
}

/// The rule files in force. The `rules` thread owns the groups and their alert state; the API
/// reads a copy of each group's status published after every evaluation, and a reload hands
/// the thread new groups through a channel. No lock is held while the thread waits for the
/// shards, so a shard serving the API (or a reload) can never wait for the thread waiting for it.
pub struct RuleManager {
    statuses: Mutex<Arc<Vec<GroupStatus>>>,
    updates: (flume::Sender<Update>, flume::Receiver<Update>),
    /// Whether rule files were applied before: groups loaded at start restore `for` state.
    applied_before: Mutex<bool>,
}

impl Default for RuleManager {
    fn default() -> Self {
        RuleManager { statuses: Mutex::default(), updates: flume::unbounded(), applied_before: Mutex::new(false) }
    }
}

impl RuleManager {
    /// Each group's status after its last evaluation.
    pub fn statuses(&self) -> Arc<Vec<GroupStatus>> {
        self.statuses.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes `files` the rules in force (the thread takes them over at once, keeping the alerts
    /// of unchanged rules), with the configuration's `external_labels`.
    pub fn apply(
        &self,
        files: &[(String, RuleFile)],
        defaults: GroupDefaults,
        options: ParseOptions,
        external_labels: Labels,
    ) -> Result<(), String> {
        let mut applied_before = self.applied_before.lock().unwrap_or_else(|p| p.into_inner());
        let mut fresh = Vec::new();
        for (name, file) in files {
            for group in &file.groups {
                let mut g = GroupState::new(group, name, defaults, options)?;
                g.restored = *applied_before;
                fresh.push(g);
            }
        }
        // Published now, so that the API shows the new rules at once, with what the thread
        // will carry over; the thread publishes again once it has taken them.
        let mut statuses: Vec<GroupStatus> = fresh.iter().map(GroupState::status).collect();
        let old = self.statuses();
        for status in &mut statuses {
            if let Some(prev) = old.iter().find(|o| o.file == status.file && o.name == status.name) {
                status.carry_over(prev);
            }
        }
        *self.statuses.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(statuses);
        let _ = self.updates.0.send(Update { groups: fresh, external_labels });
        *applied_before = true;
        Ok(())
    }

    fn publish(&self, groups: &[GroupState]) {
        let statuses = Arc::new(groups.iter().map(GroupState::status).collect());
        *self.statuses.lock().unwrap_or_else(|p| p.into_inner()) = statuses;
    }

    /// Publishes one group's status after its evaluation.
    fn publish_one(&self, group: &GroupState) {
        let status = group.status();
        let mut statuses = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) =
            Arc::make_mut(&mut statuses).iter_mut().find(|s| s.file == status.file && s.name == status.name)
        {
            *slot = status;
        }
    }
}

/// Reads and writes through the shards, from the rules thread (blocking on their answers).
struct ShardStorage {
    shards: Shards,
    queries: InstantQuery,
}

impl RuleStorage for ShardStorage {
    fn queries(&self) -> InstantQuery {
        self.queries.clone()
    }

    fn append(&mut self, t: i64, samples: &[(Labels, f64)]) -> Result<(), RuleError> {
        let series = samples
            .iter()
            .map(|(labels, v)| WriteSeries { labels: labels.clone(), samples: vec![Sample { t, v: *v }] });
        for rx in self.shards.write(series.collect()) {
            let reply = rx.recv().map_err(|_| RuleError::storage(ShardGone))?;
            if let Some(e) = reply.storage_error {
                return Err(RuleError::storage(e));
            }
            if reply.out_of_order + reply.duplicates + reply.out_of_bounds + reply.too_far_in_future > 0 {
                tracing::warn!(
                    out_of_order = reply.out_of_order + reply.duplicates,
                    out_of_bounds = reply.out_of_bounds,
                    "rule evaluation results discarded"
                );
            }
        }
        Ok(())
    }
}

/// What the rules thread works with.
pub struct RulesThread {
    pub manager: Arc<RuleManager>,
    pub shards: Shards,
    pub queries: Arc<ServerExecutor>,
    pub notifier: Arc<Notifier>,
    pub metrics: Arc<Metrics>,
    pub alerting: AlertingFlags,
    /// `--web.external-url`, for templates' `$externalURL`.
    pub external_url: String,
    /// How PromQL in templates' `query` calls is parsed (feature flags).
    pub parse: ParseOptions,
}

/// Evaluates one group at `t`, restores its `for` state if due, and queues its alerts.
fn evaluate(env: &RulesThread, storage: &mut ShardStorage, settings: &RuleSettings, g: &mut GroupState, t: i64) {
    let due = g.evaluate(t, storage, settings, &std::time::Instant::now);
    if !g.restored {
        let a = &env.alerting;
        g.restore_for_state(now_ms(), storage, a.for_outage_tolerance, a.for_grace_period);
    }
    for rule in &g.rules {
        let outcome = if rule.last_error.is_some() { "failed" } else { "ok" };
        env.metrics.rule_evaluations.get_or_create(&vec![("outcome", outcome.to_string())]).inc();
    }
    env.notifier.queue(due);
}

/// Replaces `groups` with `fresh`, carrying over the state of groups with the same file and name.
fn take_over(groups: &mut Vec<GroupState>, fresh: Vec<GroupState>) {
    let mut old: HashMap<(String, String), GroupState> = groups.drain(..).map(|g| (g.key(), g)).collect();
    for mut group in fresh {
        if let Some(mut prev) = old.remove(&group.key()) {
            group.carry_over(&mut prev);
        }
        groups.push(group);
    }
}

/// The rules thread's loop; runs until the process ends.
pub fn run(env: RulesThread) {
    let manager = &env.manager;
    let queries = crate::query::instant_queries(env.shards.clone(), env.queries.clone());
    let mut storage = ShardStorage { shards: env.shards.clone(), queries };
    let mut settings = RuleSettings {
        external_labels: Labels::default(),
        external_url: env.external_url.clone(),
        resend_delay: env.alerting.resend_delay,
        parse: env.parse,
    };
    let mut groups: Vec<GroupState> = Vec::new();
    let mut next: HashMap<(String, String), i64> = HashMap::new();
    let mut wait = std::time::Duration::ZERO;
    loop {
        if let Ok(update) = manager.updates.1.recv_timeout(wait) {
            let mut latest = update.external_labels;
            take_over(&mut groups, update.groups);
            while let Ok(newer) = manager.updates.1.try_recv() {
                latest = newer.external_labels;
                take_over(&mut groups, newer.groups);
            }
            settings.external_labels = latest;
            next.retain(|k, _| groups.iter().any(|g| g.key() == *k));
            manager.publish(&groups);
        }
        let mut wake = now_ms() + 1000;
        for group in &mut groups {
            let key = group.key();
            let due = *next.entry(key.clone()).or_insert_with(|| group.next_evaluation(now_ms()));
            if due <= now_ms() {
                evaluate(&env, &mut storage, &settings, group, due);
                // Missed iterations are skipped.
                let missed = (now_ms() - due) / group.interval;
                next.insert(key.clone(), due + (missed + 1) * group.interval);
                manager.publish_one(group);
            }
            wake = wake.min(next[&key]);
        }
        wait = std::time::Duration::from_millis((wake - now_ms()).clamp(1, 1000) as u64);
    }
}

/// Settings of rule evaluation and alerting from the command line.
pub struct AlertingFlags {
    /// `--rules.alert.resend-delay`, ms.
    pub resend_delay: i64,
    /// `--rules.alert.for-outage-tolerance`, ms.
    pub for_outage_tolerance: i64,
    /// `--rules.alert.for-grace-period`, ms.
    pub for_grace_period: i64,
}
