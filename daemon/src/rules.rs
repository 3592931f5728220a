//! Rule evaluation in the server: the groups of the rule files in force, each evaluated on its
//! own schedule by the `rules` thread against the shards, recorded samples and `ALERTS` written
//! back to their owner shards, due alerts handed to the notifier.
//!
//! The thread only queues alerts: a slow or unreachable Alertmanager never delays evaluation.
//! Groups run one after another on this one thread, so a group slower than its interval delays
//! the others (upstream runs each group in its own goroutine); its evaluations are then skipped,
//! not queued, as upstream skips missed iterations.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use pyrite_core::labels::Labels;
use pyrite_core::promql::{plan, EvalParams, Expr, ParseOptions, Value};
use pyrite_core::remote::WriteSeries;
use pyrite_core::rules::{GroupState, RuleFile, RuleSettings, RuleStorage};
use pyrite_core::value::Sample;

use crate::clock::now_ms;
use crate::context::Context;
use crate::shard::Request;

/// The rule files in force: their groups, each behind its own lock (the API reads them while
/// the thread evaluates others).
pub struct RuleManager {
    groups: Mutex<Vec<Arc<Mutex<GroupState>>>>,
    /// Whether `for` state still has to be restored (true until the first rule files are applied).
    started: Mutex<bool>,
    changed: (flume::Sender<()>, flume::Receiver<()>),
}

/// Reads the files that `patterns` name (a pattern naming no file names none, as upstream's
/// glob); the first file that is not valid fails them all.
pub fn load_rule_files(patterns: &[String], options: ParseOptions) -> Result<Vec<(String, RuleFile)>, String> {
    let mut out = Vec::new();
    let files = patterns.iter().flat_map(|p| crate::discovery::expand_glob(p)).filter(|p| Path::new(p).exists());
    for path in files {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{name}: {e}"))?;
        out.push((name.clone(), RuleFile::parse(&text, &name, options).map_err(|e| e.to_string())?));
    }
    Ok(out)
}

impl Default for RuleManager {
    fn default() -> Self {
        RuleManager { groups: Mutex::default(), started: Mutex::new(false), changed: flume::bounded(1) }
    }
}

impl RuleManager {
    pub fn groups(&self) -> Vec<Arc<Mutex<GroupState>>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes `files` the rules in force. Rules that are unchanged keep their alerts; at start,
    /// groups restore `for` state from `ALERTS_FOR_STATE` after their first evaluation.
    pub fn apply(
        &self,
        files: &[(String, RuleFile)],
        default_interval: i64,
        options: ParseOptions,
    ) -> Result<(), String> {
        let mut fresh = Vec::new();
        for (name, file) in files {
            for group in &file.groups {
                fresh.push(GroupState::new(group, name, default_interval, options)?);
            }
        }
        let mut first = self.started.lock().unwrap_or_else(|p| p.into_inner());
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let mut old: HashMap<(String, String), Arc<Mutex<GroupState>>> = groups
            .drain(..)
            .map(|g| {
                let key = g.lock().unwrap_or_else(|p| p.into_inner()).key();
                (key, g)
            })
            .collect();
        for mut group in fresh {
            match old.remove(&group.key()) {
                Some(prev) => group.carry_over(&mut prev.lock().unwrap_or_else(|p| p.into_inner())),
                None => group.restored = *first,
            }
            groups.push(Arc::new(Mutex::new(group)));
        }
        *first = true;
        let _ = self.changed.0.try_send(());
        Ok(())
    }

    /// Tells the thread to look at the groups again now.
    fn wait_for_change(&self, timeout: std::time::Duration) {
        let _ = self.changed.1.recv_timeout(timeout);
    }
}

/// Reads and writes through the shards, from the rules thread (blocking on their answers).
struct Shards<'a> {
    ctx: &'a Context,
}

impl RuleStorage for Shards<'_> {
    fn query(&mut self, expr: &Expr, t: i64) -> Result<Value, String> {
        let params = EvalParams::instant(t, self.ctx.lookback.millis());
        let plan = Arc::new(plan(expr, &params).map_err(|e| e.to_string())?);
        let shards = &self.ctx.shards;
        let receivers: Vec<_> = (0..shards.len())
            .map(|i| shards.ask(i, |reply| Request::Fragments { plan: plan.clone(), params, reply }))
            .collect();
        let timeout = self.ctx.query_timeout.as_std();
        let mut outputs = Vec::with_capacity(receivers.len());
        for rx in receivers {
            let answer = rx.recv_timeout(timeout).map_err(|_| "query timed out or a shard stopped".to_string())?;
            outputs.push(answer.map_err(|e| e.to_string())?);
        }
        plan.finish(&params, outputs).map(|r| r.value).map_err(|e| e.to_string())
    }

    fn append(&mut self, t: i64, samples: &[(Labels, f64)]) -> Result<(), String> {
        let shards = &self.ctx.shards;
        let mut per_shard: Vec<Vec<WriteSeries>> = (0..shards.len()).map(|_| Vec::new()).collect();
        for (labels, v) in samples {
            let series = WriteSeries { labels: labels.clone(), samples: vec![Sample { t, v: *v }] };
            per_shard[labels.owner(shards.len())].push(series);
        }
        let receivers: Vec<_> = per_shard
            .into_iter()
            .enumerate()
            .filter(|(_, s)| !s.is_empty())
            .map(|(i, series)| shards.ask(i, |reply| Request::Write { series, reply }))
            .collect();
        for rx in receivers {
            let reply = rx.recv().map_err(|_| "a shard stopped".to_string())?;
            if let Some(e) = reply.storage_error {
                return Err(e);
            }
            if reply.out_of_order + reply.duplicates + reply.out_of_bounds > 0 {
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

fn settings(ctx: &Context) -> RuleSettings {
    RuleSettings {
        external_labels: ctx.config.current().global.external_labels.clone(),
        external_url: ctx.web.external_url.clone(),
        resend_delay: ctx.alerting.resend_delay,
        parse: ctx.parse_options,
    }
}

/// Evaluates one group at `t`, restores its `for` state if due, and queues its alerts.
fn evaluate(ctx: &Context, group: &Mutex<GroupState>, t: i64) {
    let mut storage = Shards { ctx };
    let mut g = group.lock().unwrap_or_else(|p| p.into_inner());
    let due = g.evaluate(t, &mut storage, &settings(ctx));
    if !g.restored {
        let a = &ctx.alerting;
        g.restore_for_state(now_ms(), &mut storage, a.for_outage_tolerance, a.for_grace_period);
    }
    for rule in &g.rules {
        let outcome = if rule.last_error.is_some() { "failed" } else { "ok" };
        ctx.metrics.rule_evaluations.get_or_create(&vec![("outcome", outcome.to_string())]).inc();
    }
    drop(g);
    ctx.notifier.queue(ctx, due);
}

/// The rules thread's loop; runs until the process ends.
pub fn run(ctx: Arc<Context>) {
    let mut next: HashMap<(String, String), i64> = HashMap::new();
    loop {
        let groups = ctx.rules.groups();
        let mut keys = Vec::with_capacity(groups.len());
        let mut wake = now_ms() + 1000;
        for group in &groups {
            let (key, interval, first) = {
                let g = group.lock().unwrap_or_else(|p| p.into_inner());
                (g.key(), g.interval, g.next_evaluation(now_ms()))
            };
            let due = *next.entry(key.clone()).or_insert(first);
            let now = now_ms();
            if due <= now {
                evaluate(&ctx, group, due);
                // Missed iterations are skipped.
                let missed = (now_ms() - due) / interval;
                next.insert(key.clone(), due + (missed + 1) * interval);
            }
            wake = wake.min(next[&key]);
            keys.push(key);
        }
        next.retain(|k, _| keys.contains(k));
        let wait = (wake - now_ms()).clamp(1, 1000) as u64;
        ctx.rules.wait_for_change(std::time::Duration::from_millis(wait));
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
