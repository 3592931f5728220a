//! Evaluating one rule group: its rules in order at one timestamp, each seeing what the rules
//! before it wrote; recorded series and `ALERTS`/`ALERTS_FOR_STATE` written back, with stale
//! markers for series a rule no longer produces; alert states kept between evaluations.
//!
//! Storage is behind [`RuleStorage`], so the server (its shards) and `pyrite test rules` (an
//! in-memory engine) run the same evaluation.

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::time::Instant;

use super::alert::{ActiveAlerts, Alert, AlertState, Match};
use super::template::{self, TemplateData};
use super::{dependency, Rule, RuleError, RuleGroup};
use crate::labels::Labels;
use crate::promql::{parse_with, Expr, ParseOptions, Value};
use crate::value::{stale_nan, SampleValue};

/// An instant query of `expr` at `t` (Unix ms). Owned, so that the `query` function of an
/// alert's templates can hold it for the length of an expansion.
pub type InstantQuery = Rc<dyn Fn(&Expr, i64) -> Result<Value, RuleError>>;

/// What evaluating rules needs from the storage.
pub trait RuleStorage {
    /// How to query it.
    fn queries(&self) -> InstantQuery;
    /// Stores samples at `t`; later queries see them.
    fn append(&mut self, t: i64, samples: &[(Labels, SampleValue)]) -> Result<(), RuleError>;
}

/// Server-wide settings the rules see.
#[derive(Debug, Clone, Default)]
pub struct RuleSettings {
    pub external_labels: Labels,
    pub external_url: String,
    /// `--rules.alert.resend-delay` in ms.
    pub resend_delay: i64,
    pub parse: ParseOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// What the API shows of a rule: a copy taken after an evaluation, so readers never wait for
/// one in progress.
#[derive(Debug, Clone)]
pub struct RuleStatus {
    pub rule: Rule,
    /// The rule's labels over its group's, as upstream shows them and `match[]` reads them.
    pub labels: BTreeMap<String, String>,
    /// The expression as Pyrite prints it.
    pub query: String,
    pub health: Health,
    pub last_error: Option<String>,
    pub last_evaluation: Option<i64>,
    pub evaluation_seconds: f64,
    /// Pending and firing alerts, sorted by labels.
    pub alerts: Vec<Alert>,
}

/// What the API shows of a group.
#[derive(Debug, Clone)]
pub struct GroupStatus {
    pub name: String,
    pub file: String,
    pub interval: i64,
    pub limit: i64,
    pub last_evaluation: Option<i64>,
    pub evaluation_seconds: f64,
    pub rules: Vec<RuleStatus>,
}

impl GroupStatus {
    /// Takes the evaluation results of `old`'s identical rules, as [`GroupState::carry_over`]
    /// takes their state.
    pub fn carry_over(&mut self, old: &GroupStatus) {
        for rule in &mut self.rules {
            if let Some(prev) = old.rules.iter().find(|r| r.rule == rule.rule) {
                *rule = prev.clone();
            }
        }
        self.last_evaluation = old.last_evaluation;
        self.evaluation_seconds = old.evaluation_seconds;
    }
}

/// An alert to send now, with its rule's expression (for the generator URL).
pub struct DueAlert {
    pub alert: Alert,
    pub expr: String,
}

/// One rule with its parsed expression and what its evaluations left.
pub struct RuleState {
    pub rule: Rule,
    pub expr: Expr,
    pub health: Health,
    pub last_error: Option<RuleError>,
    /// Unix ms of the last evaluation and how long it took (seconds).
    pub last_evaluation: Option<i64>,
    pub evaluation_seconds: f64,
    /// Alerting rules only.
    pub alerts: ActiveAlerts,
    /// Series written by the last evaluation, to mark stale when they disappear.
    written: HashSet<Labels>,
    /// Alerting rules: the label (group's and rule's) and annotation templates, parsed once.
    templates: Templates,
}

#[derive(Default)]
struct Templates {
    labels: Vec<(String, template::Compiled)>,
    annotations: Vec<(String, template::Compiled)>,
}

impl Templates {
    fn new(rule: &Rule, group_labels: &Labels) -> Result<Templates, String> {
        if rule.alert.is_none() {
            return Ok(Templates::default());
        }
        let name = format!("__alert_{}", rule.name());
        let compile = |(k, v): (String, String)| {
            let compiled = template::Compiled::new(&name, &v).map_err(|e| format!("{}: {k:?}: {e}", rule.name()))?;
            Ok((k, compiled))
        };
        let annotations = rule.annotations.iter().map(|(k, v)| (k.clone(), v.clone()));
        Ok(Templates {
            labels: rule_labels(rule, group_labels).into_iter().map(compile).collect::<Result<_, String>>()?,
            annotations: annotations.map(compile).collect::<Result<_, String>>()?,
        })
    }
}

pub struct GroupState {
    pub name: String,
    pub file: String,
    /// ms.
    pub interval: i64,
    pub query_offset: i64,
    /// As configured: 0 or less for no limit.
    pub limit: i64,
    pub labels: Labels,
    pub rules: Vec<RuleState>,
    pub last_evaluation: Option<i64>,
    pub evaluation_seconds: f64,
    /// Samples the rules produced in the last evaluation.
    pub evaluation_samples: usize,
    /// ALERTS samples are written only once `for` state has been restored (or was not needed).
    pub restored: bool,
    /// The batches of rules that may be evaluated at once.
    batches: Vec<Vec<usize>>,
}

/// What a group that does not say takes from the configuration's `global` section (ms).
#[derive(Debug, Clone, Copy)]
pub struct GroupDefaults {
    /// `evaluation_interval`.
    pub interval: i64,
    /// `rule_query_offset`.
    pub query_offset: i64,
}

impl GroupState {
    /// A group ready to evaluate; the rules were checked when the file was read.
    pub fn new(group: &RuleGroup, file: &str, defaults: GroupDefaults, options: ParseOptions) -> Result<Self, String> {
        let group_labels = Labels::from_pairs(group.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        let rules = group
            .rules
            .iter()
            .map(|rule| {
                let expr = parse_with(&rule.expr, options).map_err(|e| format!("{}: {e}", rule.name()))?;
                Ok(RuleState {
                    rule: rule.clone(),
                    expr,
                    health: Health::Unknown,
                    last_error: None,
                    last_evaluation: None,
                    evaluation_seconds: 0.0,
                    alerts: ActiveAlerts::default(),
                    written: HashSet::new(),
                    templates: Templates::new(rule, &group_labels)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(GroupState {
            batches: dependency::batches(&rules),
            name: group.name.clone(),
            file: file.to_string(),
            // A group's `interval: 0s` is unset, as upstream reads it.
            interval: group.interval.map(|d| d.millis()).filter(|&ms| ms != 0).unwrap_or(defaults.interval).max(1),
            query_offset: group.query_offset.map_or(defaults.query_offset, |d| d.millis()),
            limit: group.limit,
            labels: group_labels,
            rules,
            last_evaluation: None,
            evaluation_seconds: 0.0,
            evaluation_samples: 0,
            restored: true,
        })
    }

    pub fn status(&self) -> GroupStatus {
        let rules = self
            .rules
            .iter()
            .map(|r| RuleStatus {
                rule: r.rule.clone(),
                labels: rule_labels(&r.rule, &self.labels).into_iter().collect(),
                query: r.expr.to_string(),
                health: r.health,
                last_error: r.last_error.as_ref().map(ToString::to_string),
                last_evaluation: r.last_evaluation,
                evaluation_seconds: r.evaluation_seconds,
                alerts: r.alerts.active().into_iter().cloned().collect(),
            })
            .collect();
        GroupStatus {
            name: self.name.clone(),
            file: self.file.clone(),
            interval: self.interval,
            limit: self.limit,
            last_evaluation: self.last_evaluation,
            evaluation_seconds: self.evaluation_seconds,
            rules,
        }
    }

    /// Identifies a group across reloads (upstream's key: file and name).
    pub fn key(&self) -> (String, String) {
        (self.file.clone(), self.name.clone())
    }

    /// The first evaluation time at or after `now`: a multiple of the interval shifted by a
    /// per-group offset, so groups spread over the interval and keep their phase across restarts.
    pub fn next_evaluation(&self, now: i64) -> i64 {
        let offset = (xxhash_rust::xxh3::xxh3_64(format!("{}\u{0}{}", self.file, self.name).as_bytes())
            % self.interval as u64) as i64;
        let base = (now - offset).div_euclid(self.interval) * self.interval + offset;
        if base < now {
            base + self.interval
        } else {
            base
        }
    }

    /// Takes over the alert states and health of the rules of `old` with the same name,
    /// expression and settings, as upstream does across a reload.
    pub fn carry_over(&mut self, old: &mut GroupState) {
        for rule in &mut self.rules {
            if let Some(prev) = old.rules.iter_mut().find(|r| r.rule == rule.rule) {
                rule.alerts = std::mem::take(&mut prev.alerts);
                rule.health = prev.health;
                rule.last_error = prev.last_error.take();
                rule.last_evaluation = prev.last_evaluation;
                rule.evaluation_seconds = prev.evaluation_seconds;
                rule.written = std::mem::take(&mut prev.written);
            }
        }
        self.last_evaluation = old.last_evaluation;
        self.evaluation_seconds = old.evaluation_seconds;
        self.restored = old.restored;
    }

    /// Evaluates every rule at `t`, one after another; returns the alerts to send to
    /// Alertmanager. `clock` times the evaluation (the caller's clock: this crate reads none).
    pub fn evaluate(
        &mut self,
        t: i64,
        storage: &mut dyn RuleStorage,
        settings: &RuleSettings,
        clock: &dyn Fn() -> Instant,
    ) -> Vec<DueAlert> {
        self.evaluate_in_batches(t, settings, clock, false, &mut |batch| {
            batch.iter_mut().for_each(|rule| rule.run(storage, clock))
        })
    }

    /// Evaluates every rule at `t`, handing `run` the rules in batches it must evaluate (all of
    /// a batch, at once or not) before it returns: with `concurrent`, the batches of rules
    /// independent of each other ([`dependency`](super::dependency)), else one rule at a time in
    /// the group's order. Returns the alerts to send, in the rules' order.
    pub fn evaluate_in_batches(
        &mut self,
        t: i64,
        settings: &RuleSettings,
        clock: &dyn Fn() -> Instant,
        concurrent: bool,
        run: &mut dyn FnMut(&mut [RuleEval<'_>]),
    ) -> Vec<DueAlert> {
        let started = clock();
        let context = EvalContext {
            t,
            at: t - self.query_offset,
            limit: usize::try_from(self.limit).unwrap_or(0),
            restored: self.restored,
            interval: self.interval,
            labels: &self.labels,
            settings,
        };
        let one_at_a_time: Vec<Vec<usize>>;
        let batches = if concurrent {
            &self.batches
        } else {
            one_at_a_time = (0..self.rules.len()).map(|i| vec![i]).collect();
            &one_at_a_time
        };
        let mut rules: Vec<Option<&mut RuleState>> = self.rules.iter_mut().map(Some).collect();
        let mut due: Vec<Vec<DueAlert>> = (0..rules.len()).map(|_| Vec::new()).collect();
        let mut samples = 0;
        for batch in batches {
            let mut evals: Vec<RuleEval> = batch
                .iter()
                .filter_map(|&i| {
                    let rule = rules.get_mut(i)?.take()?;
                    Some(RuleEval { index: i, rule, context: &context, due: Vec::new(), samples: 0 })
                })
                .collect();
            run(&mut evals);
            for eval in evals {
                samples += eval.samples;
                due[eval.index] = eval.due;
            }
        }
        self.last_evaluation = Some(t);
        self.evaluation_seconds = clock().saturating_duration_since(started).as_secs_f64();
        self.evaluation_samples = samples;
        due.into_iter().flatten().collect()
    }

    /// Upstream's `RestoreForState`, run once after the first evaluation since start: each
    /// active alert of a rule with `for` takes back its `activeAt` from the newest
    /// `ALERTS_FOR_STATE` sample within `outage_tolerance`, shifted by the downtime, and with at
    /// least `grace` left before it fires.
    pub fn restore_for_state(&mut self, now: i64, storage: &mut dyn RuleStorage, outage_tolerance: i64, grace: i64) {
        for rule in self.rules.iter_mut().filter(|r| r.rule.is_alerting()) {
            let hold = rule.rule.for_.map_or(0, |d| d.millis());
            if hold == 0 || rule.alerts.alerts.is_empty() {
                continue;
            }
            let name = rule.rule.name().replace('\\', "\\\\").replace('"', "\\\"");
            let selector = format!("ALERTS_FOR_STATE{{alertname=\"{name}\"}}[{}ms]", outage_tolerance.max(1));
            let Ok(expr) = parse_with(&selector, ParseOptions::default()) else { continue };
            let Ok(Value::Range(range)) = storage.queries()(&expr, now) else { continue };
            for series in range.first_window() {
                let Some(&last) = series.samples.last() else { continue };
                let labels = series.labels.without_metric_name();
                let Some(alert) = rule.alerts.alerts.get_mut(&labels) else { continue };
                if alert.state == AlertState::Inactive {
                    continue;
                }
                let down_at = last.t / 1000 * 1000;
                // Saturating, as Go's `Time.Sub` does: the sample's value is anyone's who can
                // write the series.
                let mut active_at = (last.v as i64).saturating_mul(1000);
                let remaining = hold.saturating_sub(down_at.saturating_sub(active_at));
                if remaining <= 0 {
                    // It was firing: it fires again at once.
                } else if remaining < grace {
                    active_at = now - hold + grace;
                } else {
                    active_at = active_at.saturating_add(now - down_at);
                }
                alert.active_at = active_at;
            }
        }
        self.restored = true;
    }
}

/// What the rules of one evaluation of a group share.
struct EvalContext<'a> {
    t: i64,
    /// `t` less the group's query offset: the time the rules query and write at.
    at: i64,
    limit: usize,
    restored: bool,
    interval: i64,
    labels: &'a Labels,
    settings: &'a RuleSettings,
}

/// One rule's part of an evaluation of its group. `Send`, so that a server may evaluate the
/// rules of a batch on threads of their own, each with its own storage handle.
pub struct RuleEval<'a> {
    index: usize,
    rule: &'a mut RuleState,
    context: &'a EvalContext<'a>,
    due: Vec<DueAlert>,
    /// Samples the rule produced.
    samples: usize,
}

impl RuleEval<'_> {
    /// Evaluates the rule: queries, writes its samples (and stale markers for the series it no
    /// longer produces), updates its alerts and health.
    pub fn run(&mut self, storage: &mut dyn RuleStorage, clock: &dyn Fn() -> Instant) {
        let (rule, c) = (&mut *self.rule, self.context);
        let rule_started = clock();
        let outcome = if rule.rule.is_alerting() {
            evaluate_alerting(rule, c.t, c.at, c.limit, c.restored, storage, c.settings)
        } else {
            evaluate_recording(rule, c.at, c.labels, c.limit, storage)
        };
        let written = outcome.and_then(|samples| {
            let now: HashSet<Labels> = samples.iter().map(|(l, _)| l.clone()).collect();
            self.samples = samples.len();
            let mut out = samples;
            // A series the rule no longer produces gets a float staleness marker, a histogram
            // series too, as upstream marks both.
            let stale = SampleValue::Float(stale_nan());
            out.extend(rule.written.iter().filter(|l| !now.contains(*l)).map(|l| (l.clone(), stale.clone())));
            storage.append(c.at, &out)?;
            Ok(now)
        });
        match written {
            Ok(now) => {
                rule.written = now;
                rule.health = Health::Ok;
                rule.last_error = None;
            }
            Err(e) => {
                rule.health = Health::Err;
                rule.last_error = Some(e);
            }
        }
        if rule.rule.is_alerting() {
            let due = rule.alerts.take_due(c.t, c.settings.resend_delay, c.interval);
            self.due = due.into_iter().map(|alert| DueAlert { alert, expr: rule.rule.expr.clone() }).collect();
        }
        rule.last_evaluation = Some(c.t);
        rule.evaluation_seconds = clock().saturating_duration_since(rule_started).as_secs_f64();
    }

    /// Records that [`RuleEval::run`] panicked with `message` (a caller that catches panics
    /// calls it): the rule's health is an error, and it sends no alert this round.
    pub fn fail(&mut self, message: String) {
        self.rule.health = Health::Err;
        self.rule.last_error = Some(RuleError::Panicked(message));
        self.due.clear();
        self.rule.last_evaluation = Some(self.context.t);
    }
}

/// A recording rule's result: each series' float or native histogram.
fn recorded(value: Value) -> Result<Vec<(Labels, SampleValue)>, RuleError> {
    match value {
        Value::Vector(series) => Ok(series
            .into_iter()
            .filter_map(|s| {
                let v = match (s.values.first().copied().flatten(), s.histogram(0)) {
                    (Some(v), _) => SampleValue::Float(v),
                    (None, Some(h)) => SampleValue::Histogram(h.clone()),
                    (None, None) => return None,
                };
                Some((s.labels, v))
            })
            .collect()),
        other => Ok(vector(other)?.into_iter().map(|(l, v)| (l, SampleValue::Float(v))).collect()),
    }
}

/// An instant vector of `(labels, value)` from a rule's result; histograms are left out (an
/// alert's value and a template's query are floats).
fn vector(value: Value) -> Result<Vec<(Labels, f64)>, RuleError> {
    match value {
        Value::Vector(series) => {
            Ok(series.into_iter().filter_map(|s| Some((s.labels, s.values.first().copied()??))).collect())
        }
        Value::Scalar(v) => Ok(v.first().map(|&x| vec![(Labels::default(), x)]).unwrap_or_default()),
        Value::String(_) => Err(RuleError::StringResult),
        Value::Range(_) => Err(RuleError::RangeResult),
    }
}

/// `base` with `extra` set over it (an empty value removes the label).
fn with_labels(base: &Labels, extra: impl IntoIterator<Item = (String, String)>) -> Labels {
    let mut pairs: Vec<(String, String)> = base.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
    for (k, v) in extra {
        pairs.retain(|(n, _)| *n != k);
        if !v.is_empty() {
            pairs.push((k, v));
        }
    }
    Labels::from_pairs(pairs)
}

/// Group labels, overridden by the rule's own.
fn rule_labels(rule: &Rule, group: &Labels) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = group.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
    for (k, v) in &rule.labels {
        out.retain(|(n, _)| n != k);
        out.push((k.clone(), v.clone()));
    }
    out
}

fn check_unique<T>(samples: &[(Labels, T)], what: &'static str) -> Result<(), RuleError> {
    let mut seen = HashSet::new();
    if samples.iter().all(|(l, _)| seen.insert(l)) {
        Ok(())
    } else {
        Err(RuleError::DuplicateLabelSets { what })
    }
}

fn evaluate_recording(
    rule: &RuleState,
    at: i64,
    group_labels: &Labels,
    limit: usize,
    storage: &mut dyn RuleStorage,
) -> Result<Vec<(Labels, SampleValue)>, RuleError> {
    let result = recorded(storage.queries()(&rule.expr, at)?)?;
    let record = rule.rule.record.clone().unwrap_or_default();
    let extra = rule_labels(&rule.rule, group_labels);
    let samples: Vec<(Labels, SampleValue)> = result
        .into_iter()
        .map(|(l, v)| {
            let named = with_labels(&l, [("__name__".to_string(), record.clone())]);
            (with_labels(&named, extra.iter().cloned()), v)
        })
        .collect();
    check_unique(&samples, "rule")?;
    if limit > 0 && samples.len() > limit {
        return Err(RuleError::Limit { limit, got: samples.len(), what: "series" });
    }
    Ok(samples)
}

#[allow(clippy::too_many_arguments)]
fn evaluate_alerting(
    rule: &mut RuleState,
    t: i64,
    at: i64,
    limit: usize,
    restored: bool,
    storage: &mut dyn RuleStorage,
    settings: &RuleSettings,
) -> Result<Vec<(Labels, SampleValue)>, RuleError> {
    let result = vector(storage.queries()(&rule.expr, at)?)?;
    let name = rule.rule.name().to_string();
    let (queries, parse) = (storage.queries(), settings.parse);
    let query: template::QueryFn = Rc::new(move |q: &str| {
        let expr = parse_with(q, parse)?;
        vector(queries(&expr, at)?)
    });
    let mut matches = Vec::with_capacity(result.len());
    for (labels, value) in result {
        let data = TemplateData {
            labels: &labels,
            external_labels: &settings.external_labels,
            external_url: &settings.external_url,
            value,
        };
        let expand = |compiled: &template::Compiled| {
            compiled.expand(&data, t, &query).unwrap_or_else(|e| format!("<error expanding template: {e}>"))
        };
        let expanded: Vec<(String, String)> =
            rule.templates.labels.iter().map(|(k, c)| (k.clone(), expand(c))).collect();
        let annotations = rule.templates.annotations.iter().map(|(k, c)| (k.clone(), expand(c))).collect();
        let alert_labels = with_labels(
            &labels.without_metric_name(),
            expanded.into_iter().chain([("alertname".to_string(), name.clone())]),
        );
        matches.push(Match { labels: alert_labels, annotations, value });
    }
    let unique: Vec<(Labels, ())> = matches.iter().map(|m| (m.labels.clone(), ())).collect();
    check_unique(&unique, "alert")?;
    let hold = rule.rule.for_.map_or(0, |d| d.millis());
    let keep_firing_for = rule.rule.keep_firing_for.map_or(0, |d| d.millis());
    let active = rule.alerts.update(t, matches, hold, keep_firing_for);
    if limit > 0 && active > limit {
        rule.alerts.alerts.clear();
        return Err(RuleError::Limit { limit, got: active, what: "alerts" });
    }
    if !restored {
        return Ok(Vec::new());
    }
    let mut samples = Vec::new();
    for alert in rule.alerts.active() {
        let state = ("alertstate".to_string(), alert.state.as_str().to_string());
        let alerts = with_labels(&alert.labels, [("__name__".to_string(), "ALERTS".to_string()), state]);
        samples.push((alerts, SampleValue::Float(1.0)));
        let for_state = with_labels(&alert.labels, [("__name__".to_string(), "ALERTS_FOR_STATE".to_string())]);
        samples.push((for_state, SampleValue::Float((alert.active_at / 1000) as f64)));
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::NameValidation;
    use crate::rules::RuleFile;

    /// `interval: 0s` is an interval not given, as upstream reads it, not one of a millisecond.
    #[test]
    fn a_group_interval_of_zero_takes_the_evaluation_interval() {
        let text = "groups:\n  - name: g\n    interval: 0s\n    rules: [{record: a, expr: '1'}]\n";
        let file = RuleFile::parse(text, "f.yml", ParseOptions::default(), NameValidation::Utf8).unwrap();
        let defaults = GroupDefaults { interval: 15_000, query_offset: 0 };
        let group = GroupState::new(&file.groups[0], "f.yml", defaults, ParseOptions::default()).unwrap();
        assert_eq!(group.interval, 15_000);
    }
}
