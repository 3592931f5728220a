//! `info(v, {matchers})`: adds the data labels of info metrics (`target_info` by default) to the
//! series of `v`, joined on the identifying labels `instance` and `job`.
//!
//! The planner selects the info series on the shards like any selector, each value being the
//! time of the sample picked; the join runs here on the coordinator step by step, because which
//! info series applies (the newest one) can change over time. Semantics are Prometheus 3.14's:
//! series of `v` that are info metrics themselves are passed through, labels already on a
//! series are never overwritten, two info metrics disagreeing on a label are an error, and a
//! series with no info series is dropped if a data-label matcher needs a non-empty value.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::{EvalError, StepSeries};
use crate::labels::{Labels, MatchOp, Matcher, METRIC_NAME};

/// The info metric `info(v)` joins when no `__name__` matcher is given.
const TARGET_INFO: &str = "target_info";

/// The labels an info series shares with the series it describes.
const IDENTIFYING: [&str; 2] = ["instance", "job"];

/// `info`'s second argument, split by role.
#[derive(Debug, Clone, PartialEq)]
pub struct InfoMatchers {
    /// Which metrics are info metrics; always holds a positive matcher.
    pub names: Vec<Matcher>,
    /// The data-label matchers: info series must satisfy them, and only the labels they name
    /// are added (all data labels when there are none).
    pub data: Vec<Matcher>,
}

impl InfoMatchers {
    /// Splits the matchers of `info`'s second argument (none when it is omitted). Without a
    /// `__name__` matcher the info metric is `target_info`; with only negative ones it is any
    /// `.+_info` metric they do not exclude.
    pub fn new(matchers: &[Matcher]) -> Self {
        let (mut names, data): (Vec<Matcher>, Vec<Matcher>) =
            matchers.iter().cloned().partition(|m| m.name == METRIC_NAME);
        if names.is_empty() {
            names.push(Matcher::equal(METRIC_NAME, TARGET_INFO));
        } else if !names.iter().any(|m| matches!(m.op, MatchOp::Equal | MatchOp::Regex)) {
            names.insert(0, Matcher::new(METRIC_NAME, MatchOp::Regex, ".+_info").expect("a valid regex"));
        }
        InfoMatchers { names, data }
    }

    /// The matchers that select candidate info series.
    pub fn selector(&self) -> Vec<Matcher> {
        self.names.iter().chain(&self.data).cloned().collect()
    }

    fn is_info_metric(&self, labels: &Labels) -> bool {
        let name = labels.metric_name();
        self.names.iter().all(|m| m.matches(name))
    }

    /// Whether a data label of an info series is one to add.
    fn adds(&self, name: &str) -> bool {
        name != METRIC_NAME && (self.data.is_empty() || self.data.iter().any(|m| m.name == name))
    }
}

/// The join key: info metric name and the identifying label values ("" when absent).
type Signature<'a> = (&'a str, [&'a str; 2]);

fn identity(labels: &Labels) -> [&str; 2] {
    IDENTIFYING.map(|l| labels.get(l))
}

/// Joins `base` with `infos` (values: the time of each picked info sample) at every step.
pub(super) fn enrich(
    base: Vec<StepSeries>,
    infos: Vec<StepSeries>,
    matchers: &InfoMatchers,
    steps: usize,
) -> Result<Vec<StepSeries>, EvalError> {
    let (mut out, targets): (Vec<StepSeries>, Vec<StepSeries>) =
        base.into_iter().partition(|s| matchers.is_info_metric(&s.labels));
    let infos = relevant_infos(&targets, infos);
    let names: BTreeSet<&str> = infos.iter().map(|i| i.labels.metric_name()).collect();
    let drop_unmatched = matchers.data.iter().any(|m| !m.matches(""));

    let mut index: HashMap<Labels, usize> = out.iter().enumerate().map(|(i, s)| (s.labels.clone(), i)).collect();
    // The output series for a target series joined with a given set of info series.
    let mut joined: HashMap<(usize, Vec<usize>), usize> = HashMap::new();
    let has_sample = |s: &StepSeries, step: usize| s.values[step].is_some() || s.histogram(step).is_some();
    let passed_on = out.len();
    for step in 0..steps {
        // As upstream: nothing to join, nothing checked.
        if !targets.iter().chain(&out[..passed_on]).any(|s| has_sample(s, step)) {
            continue;
        }
        let newest = newest_per_signature(&infos, step)?;
        for (t, target) in targets.iter().enumerate() {
            if !has_sample(target, step) {
                continue;
            }
            let id = identity(&target.labels);
            let picked: Vec<usize> = names.iter().filter_map(|name| newest.get(&(*name, id)).copied()).collect();
            if picked.is_empty() && drop_unmatched {
                continue;
            }
            let slot = match joined.get(&(t, picked.clone())) {
                Some(&slot) => slot,
                None => {
                    let labels = with_data_labels(&target.labels, picked.iter().map(|&i| &infos[i].labels), matchers)?;
                    let slot = *index.entry(labels.clone()).or_insert_with(|| {
                        out.push(StepSeries::floats(labels, vec![None; steps]));
                        out.len() - 1
                    });
                    joined.insert((t, picked), slot);
                    slot
                }
            };
            let joined = &mut out[slot];
            if has_sample(joined, step) {
                return Err(EvalError::Execution("vector cannot contain metrics with the same labelset".into()));
            }
            match target.histogram(step) {
                Some(h) => {
                    if joined.histograms.is_empty() {
                        joined.histograms = vec![None; steps];
                    }
                    joined.histograms[step] = Some(h.clone());
                }
                None => joined.values[step] = target.values[step],
            }
        }
    }
    out.retain(StepSeries::has_values);
    Ok(out)
}

/// The info series whose identifying labels take values the target series have (those with
/// none of these labels have no info series), as upstream selects them.
fn relevant_infos(targets: &[StepSeries], infos: Vec<StepSeries>) -> Vec<StepSeries> {
    let mut wanted: [HashSet<&str>; 2] = Default::default();
    for s in targets {
        for (values, v) in wanted.iter_mut().zip(identity(&s.labels)) {
            if !v.is_empty() {
                values.insert(v);
            }
        }
    }
    if wanted.iter().all(HashSet::is_empty) {
        return Vec::new();
    }
    infos
        .into_iter()
        .filter(|i| wanted.iter().zip(identity(&i.labels)).all(|(values, v)| values.is_empty() || values.contains(v)))
        .collect()
}

/// Per signature, the info series with the newest sample at `step`; two equally new ones are
/// an error, as is a histogram sample (upstream: info samples are floats).
fn newest_per_signature(infos: &[StepSeries], step: usize) -> Result<HashMap<Signature<'_>, usize>, EvalError> {
    let mut newest: HashMap<Signature, usize> = HashMap::new();
    for (i, info) in infos.iter().enumerate() {
        let Some(t) = info.values[step] else { continue };
        if info.histogram(step).is_some() {
            return Err(EvalError::Execution("info sample should be float".into()));
        }
        let signature = (info.labels.metric_name(), identity(&info.labels));
        match newest.get(&signature) {
            Some(&j) => {
                let tj = infos[j].values[step].expect("entries have a sample at this step");
                if tj == t {
                    let ms = |t: f64| (t * 1000.0).round() as i64;
                    return Err(EvalError::Execution(format!(
                        "found duplicate series for info metric: existing {} @ {}, new {} @ {}",
                        infos[j].labels,
                        ms(tj),
                        info.labels,
                        ms(t)
                    )));
                }
                if tj < t {
                    newest.insert(signature, i);
                }
            }
            None => {
                newest.insert(signature, i);
            }
        }
    }
    Ok(newest)
}

/// `target` with the wanted data labels of `infos` that it does not have yet.
fn with_data_labels<'a>(
    target: &Labels,
    infos: impl Iterator<Item = &'a Labels>,
    matchers: &InfoMatchers,
) -> Result<Labels, EvalError> {
    let mut added: Vec<(&str, &str)> = Vec::new();
    for info in infos {
        for l in info.iter().filter(|l| matchers.adds(&l.name)) {
            if let Some((_, prev)) = added.iter().find(|(n, _)| *n == l.name) {
                if *prev != l.value {
                    return Err(EvalError::Execution(format!("conflicting label: {}", l.name)));
                }
            } else if target.get(&l.name).is_empty() {
                added.push((&l.name, &l.value));
            }
        }
    }
    if added.is_empty() {
        return Ok(target.clone());
    }
    let existing = target.iter().map(|l| (l.name.as_str(), l.value.as_str()));
    Ok(Labels::from_pairs(existing.chain(added)))
}
