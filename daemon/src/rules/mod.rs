//! Rule evaluation in the server: the groups of the rule files in force, each evaluated on its
//! own schedule (`schedule`) by a pool of worker threads (`workers`) against the shards
//! (`storage`), recorded samples and `ALERTS` written back to their owner shards, due alerts
//! handed to the notifier. The `rules` thread keeps the schedule and takes each reload's groups.
//!
//! A worker blocks on the shards' answers as the evaluation (queries and template `query` calls
//! through a thread-local, non-`Send` query function) needs, and the pool grows while groups fall
//! due at once, so a slow group delays no other, as upstream's goroutine per group, up to a bound
//! that thousands of groups do not turn into thousands of threads. Workers only queue alerts: a
//! slow or unreachable Alertmanager never delays evaluation.

mod concurrent;
mod schedule;
mod storage;
mod workers;

use std::sync::{Arc, Mutex};

use pyrite_core::labels::Labels;
use pyrite_core::promql::ParseOptions;
use pyrite_core::rules::{GroupDefaults, GroupState, GroupStatus, RuleFile};

pub use concurrent::ConcurrentEvals;
use schedule::Schedule;
use workers::{Group, Pool};

use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::notifier::Notifier;
use crate::query::ServerExecutor;
use crate::shards::Shards;

/// New groups for the `rules` thread, and the external labels of the configuration they came with.
struct Update {
    groups: Vec<GroupState>,
    external_labels: Labels,
}

/// The rule files in force. The `rules` thread and the workers own the groups and their alert state; the API
/// reads a copy of each group's status published after every evaluation, and a reload hands
/// the `rules` thread new groups through a channel. No lock is held while a worker waits for
/// the shards, so a shard serving the API (or a reload) can never wait for a thread waiting for it.
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

    /// Makes `files` the rules in force (the `rules` thread takes them over at once, keeping the alerts
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
        // Published now, so that the API shows the new rules at once, with what the group
        // threads will carry over; each publishes again once it has taken its group.
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

    /// Publishes one group's status after its evaluation, if the group is still in force with
    /// these rules (a reload may have published a newer definition the group has yet to take).
    fn publish_one(&self, group: &GroupState) {
        let status = group.status();
        let mut statuses = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        let same = |s: &GroupStatus| {
            s.file == status.file
                && s.name == status.name
                && s.rules.len() == status.rules.len()
                && s.rules.iter().zip(&status.rules).all(|(a, b)| a.rule == b.rule)
        };
        if let Some(slot) = Arc::make_mut(&mut statuses).iter_mut().find(|s| same(s)) {
            *slot = status;
        }
    }
}

/// What the rules threads work with.
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
    /// With `--enable-feature=concurrent-rule-eval`: independent rules of a group at once.
    pub concurrent_evals: Option<ConcurrentEvals>,
}

/// The `rules` thread's loop, until the process ends: keeps the schedule, hands due groups to
/// the worker pool, takes them back evaluated, and takes the groups of each reload. It does not
/// evaluate (unless no worker could start), so a reload is taken at once even while an
/// evaluation is slow.
pub fn run(env: RulesThread) {
    let env = Arc::new(env);
    let mut pool = Pool::new(env.clone());
    let mut schedule = Schedule::new(env.clone());
    loop {
        while let Some(group) = schedule.take_due(now_ms()) {
            pool.hand_out(group);
        }
        let event = flume::Selector::new()
            .recv(&env.manager.updates.1, |update| update.map(Event::Update))
            .recv(pool.evaluated(), |group| group.map(|g| Event::Evaluated(Box::new(g))))
            .wait_timeout(schedule.until_next(now_ms()));
        match event {
            Ok(Ok(Event::Update(update))) => schedule.apply(update, now_ms()),
            Ok(Ok(Event::Evaluated(group))) => {
                pool.took_back();
                schedule.take_back(*group, now_ms());
            }
            // Both channels' ends are held here (the manager's and the pool's): they never close.
            Ok(Err(flume::RecvError::Disconnected)) => return,
            Err(flume::select::SelectError::Timeout) => {}
        }
    }
}

/// What wakes the `rules` thread besides a group falling due.
enum Event {
    Update(Update),
    Evaluated(Box<Group>),
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
