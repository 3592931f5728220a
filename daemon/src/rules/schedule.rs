//! The rule groups' schedule, kept by the `rules` thread: every group in force, in a heap by the
//! time of its next evaluation. A due group goes to the worker pool (`workers.rs`) and comes back
//! evaluated with its next time. A reload's groups are taken here: a new group is scheduled, a
//! removed one dropped with its metrics (when it comes back, if a worker has it), and a changed
//! one takes its new definition and keeps the alert state of its unchanged rules, at once or
//! when it comes back.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use pyrite_core::labels::Labels;
use pyrite_core::rules::{GroupState, RuleSettings};

use super::workers::Group;
use super::{RulesThread, Update};
use crate::metrics::MetricLabels;

/// A group's new definition (same file and name), with the configuration's external labels.
struct Definition {
    group: GroupState,
    external_labels: Labels,
}

/// A group in force.
struct Entry {
    /// `None` while a worker has it.
    group: Option<Group>,
    /// The latest definition that came while a worker had it.
    pending: Option<Definition>,
}

pub(super) struct Schedule {
    env: Arc<RulesThread>,
    entries: HashMap<u64, Entry>,
    /// Each group's entry by file and name.
    ids: HashMap<(String, String), u64>,
    /// Evaluation times and entries; one whose entry has another time, or is out, is stale.
    times: BinaryHeap<Reverse<(i64, u64)>>,
    next_id: u64,
}

impl Schedule {
    pub(super) fn new(env: Arc<RulesThread>) -> Schedule {
        Schedule { env, entries: HashMap::new(), ids: HashMap::new(), times: BinaryHeap::new(), next_id: 0 }
    }

    /// Makes `update`'s groups the ones in force at `now`.
    pub(super) fn apply(&mut self, update: Update, now: i64) {
        let mut kept = HashMap::new();
        for state in update.groups {
            let key = state.key();
            let definition = Definition { group: state, external_labels: update.external_labels.clone() };
            // A key listed twice (a file named by two globs) is one group: the last definition holds.
            let Some(id) = self.ids.remove(&key).or_else(|| kept.get(&key).copied()) else {
                kept.insert(key, self.add(definition, now));
                continue;
            };
            kept.insert(key, id);
            // Every id in `ids` or `kept` has its entry.
            let Some(entry) = self.entries.get_mut(&id) else { continue };
            match entry.group.as_mut() {
                Some(group) => {
                    let before = group.t;
                    redefine(&self.env, group, definition, now);
                    if group.t != before {
                        self.times.push(Reverse((group.t, id)));
                    }
                }
                None => entry.pending = Some(definition),
            }
        }
        // The groups left in `ids` were removed.
        for (_, id) in std::mem::replace(&mut self.ids, kept) {
            if let Some(Entry { group: Some(group), .. }) = self.entries.remove(&id) {
                self.env.metrics.rule_groups.remove(&group.label);
            }
        }
    }

    fn add(&mut self, definition: Definition, now: i64) -> u64 {
        let Definition { group: state, external_labels } = definition;
        let env = &self.env;
        let settings = RuleSettings {
            external_labels,
            external_url: env.external_url.clone(),
            resend_delay: env.alerting.resend_delay,
            parse: env.parse,
        };
        let label = vec![("rule_group", format!("{};{}", state.file, state.name))];
        describe(env, &state, &label);
        let (id, t) = (self.next_id, state.next_evaluation(now));
        self.next_id += 1;
        self.entries.insert(id, Entry { group: Some(Group { id, state, settings, label, t }), pending: None });
        self.times.push(Reverse((t, id)));
        id
    }

    /// Takes back a group a worker evaluated: scheduled at its next time, or at once under a
    /// definition that came meanwhile, or dropped if a reload removed it.
    pub(super) fn take_back(&mut self, mut group: Group, now: i64) {
        let Some(entry) = self.entries.get_mut(&group.id) else {
            // Removed while out; a group of the same file and name added since keeps the metrics.
            if !self.ids.contains_key(&group.state.key()) {
                self.env.metrics.rule_groups.remove(&group.label);
            }
            return;
        };
        if let Some(definition) = entry.pending.take() {
            redefine(&self.env, &mut group, definition, now);
        }
        self.times.push(Reverse((group.t, group.id)));
        entry.group = Some(group);
    }

    /// The next group due at `now`, taken out of the schedule until it comes back.
    pub(super) fn take_due(&mut self, now: i64) -> Option<Group> {
        while let Some(&Reverse((t, id))) = self.times.peek() {
            if t > now {
                return None;
            }
            self.times.pop();
            let entry = self.entries.get_mut(&id);
            if let Some(entry) = entry.filter(|e| e.group.as_ref().is_some_and(|g| g.t == t)) {
                return entry.group.take();
            }
        }
        None
    }

    /// How long from `now` until the earliest evaluation time (an hour with none).
    pub(super) fn until_next(&self, now: i64) -> Duration {
        let next = self.times.peek().map_or(now + 3_600_000, |Reverse((t, _))| *t);
        Duration::from_millis((next - now).max(0) as u64)
    }
}

/// Gives `group` its new definition at `now`: the alert state of its unchanged rules carried
/// over, its status published, its next time from the new interval.
fn redefine(env: &RulesThread, group: &mut Group, definition: Definition, now: i64) {
    let Definition { group: mut state, external_labels } = definition;
    state.carry_over(&mut group.state);
    group.state = state;
    group.settings.external_labels = external_labels;
    describe(env, &group.state, &group.label);
    group.t = group.state.next_evaluation(now);
}

/// Publishes a group's definition: its status and its interval and rule count metrics.
fn describe(env: &RulesThread, group: &GroupState, label: &MetricLabels) {
    let metrics = &env.metrics.rule_groups;
    metrics.interval.get_or_create(label).set(group.interval as f64 / 1000.0);
    metrics.rules.get_or_create(label).set(group.rules.len() as i64);
    env.manager.publish_one(group);
}
