//! Binary operators between scalars and vectors: arithmetic, comparisons, set operators, and
//! vector matching (one-to-one, `group_left`, `group_right`).
//!
//! Semantics follow upstream: arithmetic drops the metric name; a comparison filters (keeping
//! a value from the left-hand side, or the vector side against a scalar) unless `bool` turns it
//! into 0/1, which also drops the name. Vector/vector operations match series per step on
//! their signature: all labels but the name, or only `on(...)`, or all but `ignoring(...)`.

use std::collections::HashMap;
use std::sync::Arc;

use super::range_histograms::Note;
use super::{EvalError, Evaluator, StepSeries, Value};
use crate::histogram::{FloatHistogram, HistogramError};
use crate::labels::{hash_pairs, Labels, METRIC_NAME};
use crate::promql::ast::{BinaryModifiers, BinaryOp, Grouping, MatchOn};

/// The value of `l op r`, and whether a comparison holds (always true for arithmetic).
fn operate(op: BinaryOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinaryOp::Add => (l + r, true),
        BinaryOp::Sub => (l - r, true),
        BinaryOp::Mul => (l * r, true),
        BinaryOp::Div => (l / r, true),
        BinaryOp::Mod => (l % r, true),
        BinaryOp::Pow => (l.powf(r), true),
        BinaryOp::Atan2 => (l.atan2(r), true),
        BinaryOp::Eql => (l, l == r),
        BinaryOp::Neq => (l, l != r),
        BinaryOp::Gtr => (l, l > r),
        BinaryOp::Lss => (l, l < r),
        BinaryOp::Gte => (l, l >= r),
        BinaryOp::Lte => (l, l <= r),
        BinaryOp::And | BinaryOp::Or | BinaryOp::Unless => unreachable!("set operators are handled separately"),
        // Trims take a histogram; between floats they hold nothing (`combine` reports it).
        BinaryOp::TrimUpper | BinaryOp::TrimLower => (f64::NAN, false),
    }
}

/// One operand of an element-wise operation: a float or a native histogram.
#[derive(Debug, Clone)]
enum Operand {
    Float(f64),
    Histogram(Arc<FloatHistogram>),
}

impl Operand {
    fn kind(&self) -> &'static str {
        match self {
            Operand::Float(_) => "float",
            Operand::Histogram(_) => "histogram",
        }
    }
}

/// What series `s` holds at step `i`.
fn operand(s: &StepSeries, i: usize) -> Option<Operand> {
    match (s.values[i], s.histogram(i)) {
        (Some(v), _) => Some(Operand::Float(v)),
        (None, Some(h)) => Some(Operand::Histogram(h.clone())),
        (None, None) => None,
    }
}

/// A series of operands, split into its floats and its histograms.
fn series_of(labels: Labels, operands: Vec<Option<Operand>>) -> StepSeries {
    let has_histograms = operands.iter().any(|o| matches!(o, Some(Operand::Histogram(_))));
    let values = operands.iter().map(|o| if let Some(Operand::Float(v)) = o { Some(*v) } else { None }).collect();
    let histograms = match has_histograms {
        true => {
            operands.into_iter().map(|o| if let Some(Operand::Histogram(h)) = o { Some(h) } else { None }).collect()
        }
        false => Vec::new(),
    };
    StepSeries { labels, values, histograms }
}

/// `l op r` as upstream's `vectorElemBinop` computes it: the value and whether a comparison
/// holds; `None` for operand types the operator does not take (with upstream's info) or
/// histograms it cannot add (with its warning).
fn combine(ev: &Evaluator, op: BinaryOp, pos: usize, l: &Operand, r: &Operand) -> Option<(Operand, bool)> {
    let compacted = |mut h: FloatHistogram| {
        h.compact(0);
        Operand::Histogram(Arc::new(h))
    };
    let scaled = |h: &FloatHistogram, by: fn(&mut FloatHistogram, f64) -> &mut FloatHistogram, k: f64| {
        let mut h = h.clone();
        by(&mut h, k);
        compacted(h)
    };
    let result = match (l, r) {
        (Operand::Histogram(h), Operand::Float(k)) if op.is_trim() => {
            let mut h = FloatHistogram::clone(h);
            h.trim_buckets(*k, op == BinaryOp::TrimUpper);
            Some((Operand::Histogram(Arc::new(h)), true))
        }
        _ if op.is_trim() => None,
        (Operand::Float(l), Operand::Float(r)) => {
            let (value, holds) = operate(op, *l, *r);
            Some((Operand::Float(value), holds))
        }
        (Operand::Float(k), Operand::Histogram(h)) | (Operand::Histogram(h), Operand::Float(k))
            if op == BinaryOp::Mul =>
        {
            Some((scaled(h, FloatHistogram::mul, *k), true))
        }
        (Operand::Histogram(h), Operand::Float(k)) if op == BinaryOp::Div => {
            Some((scaled(h, FloatHistogram::div, *k), true))
        }
        (Operand::Histogram(a), Operand::Histogram(b)) if matches!(op, BinaryOp::Add | BinaryOp::Sub) => {
            let mut sum = FloatHistogram::clone(a);
            let (outcome, operation) = match op {
                BinaryOp::Add => (sum.add(b), "addition"),
                _ => (sum.sub(b), "subtraction"),
            };
            match outcome {
                Ok(outcome) => {
                    if outcome.counter_reset_collision {
                        Note::Collision(operation).record(ev, "", pos);
                    }
                    if outcome.custom_bounds_reconciled {
                        Note::Reconciled(operation).record(ev, "", pos);
                    }
                    if op == BinaryOp::Sub {
                        sum.counter_reset_hint = crate::histogram::CounterResetHint::Gauge;
                    }
                    Some((compacted(sum), true))
                }
                Err(HistogramError::MixedSchemas) => {
                    let symbol = op.symbol();
                    ev.warn(format!("incompatible bucket layout encountered for binary operator {symbol}"), pos);
                    None
                }
                Err(_) => None,
            }
        }
        (Operand::Histogram(a), Operand::Histogram(b)) if matches!(op, BinaryOp::Eql | BinaryOp::Neq) => {
            let equal = a.equals(b);
            Some((l.clone(), if op == BinaryOp::Eql { equal } else { !equal }))
        }
        _ => None,
    };
    let histograms = matches!(l, Operand::Histogram(_)) || matches!(r, Operand::Histogram(_));
    if result.is_none() && (histograms || op.is_trim()) {
        let (lk, rk, symbol) = (l.kind(), r.kind(), op.symbol());
        if !(matches!((l, r), (Operand::Histogram(_), Operand::Histogram(_)))
            && matches!(op, BinaryOp::Add | BinaryOp::Sub))
        {
            ev.info(
                format!("incompatible sample types encountered for binary operator {symbol:?}: {lk} {symbol} {rk}"),
                pos,
            );
        }
    }
    result
}

/// [`element`] of two floats.
fn float_element(op: BinaryOp, return_bool: bool, l: f64, r: f64, keep_from: f64) -> Option<f64> {
    let (value, holds) = operate(op, l, r);
    match (op.is_comparison(), return_bool) {
        (true, true) => Some(if holds { 1.0 } else { 0.0 }),
        (true, false) => holds.then_some(keep_from),
        (false, _) => Some(value),
    }
}

/// The result of one element-wise operation: `Some` value to output, or `None` when a
/// comparison filters it out or the operands do not combine. A comparison keeps `keep_from`
/// (the vector's value against a scalar, else the left-hand side's), or with `bool` becomes
/// 0 or 1.
fn element(
    ev: &Evaluator,
    op: BinaryOp,
    m: &BinaryModifiers,
    l: &Operand,
    r: &Operand,
    keep_from: &Operand,
) -> Option<Operand> {
    let (value, holds) = combine(ev, op, m.pos, l, r)?;
    match (op.is_comparison(), m.return_bool) {
        (true, true) => Some(Operand::Float(if holds { 1.0 } else { 0.0 })),
        (true, false) => holds.then(|| keep_from.clone()),
        (false, _) => Some(value),
    }
}

/// Arithmetic and `bool` comparisons drop the metric name; filters and trims keep it.
fn drops_name(op: BinaryOp, return_bool: bool) -> bool {
    return_bool || !(op.is_comparison() || op.is_trim())
}

pub(super) fn apply(
    ev: &Evaluator,
    op: BinaryOp,
    m: &BinaryModifiers,
    lhs: Value,
    rhs: Value,
    steps: usize,
) -> Result<Value, EvalError> {
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => Ok(Value::Scalar(
            l.iter()
                .zip(&r)
                .map(|(&a, &b)| {
                    let (value, holds) = operate(op, a, b);
                    match op.is_comparison() {
                        true => f64::from(u8::from(holds)),
                        false => value,
                    }
                })
                .collect(),
        )),
        (Value::Vector(v), Value::Scalar(s)) => Ok(Value::Vector(vector_scalar(ev, op, m, v, &s, false))),
        (Value::Scalar(s), Value::Vector(v)) => Ok(Value::Vector(vector_scalar(ev, op, m, v, &s, true))),
        (Value::Vector(l), Value::Vector(r)) if op.is_set() => set_operation(ev, op, m, l, r, steps).map(Value::Vector),
        (Value::Vector(l), Value::Vector(r)) => vector_vector(ev, op, m, l, r, steps).map(Value::Vector),
        (l, r) => {
            Err(EvalError::Execution(format!("binary operation between {} and {}", l.type_name(), r.type_name())))
        }
    }
}

/// `vector op scalar`, or `scalar op vector` when `swapped`.
fn vector_scalar(
    ev: &Evaluator,
    op: BinaryOp,
    m: &BinaryModifiers,
    series: Vec<StepSeries>,
    scalar: &[f64],
    swapped: bool,
) -> Vec<StepSeries> {
    series
        .into_iter()
        .filter_map(|StepSeries { labels, values, histograms }| {
            let labels = if drops_name(op, m.return_bool) { labels.into_without_metric_name() } else { labels };
            let s = StepSeries { labels: Labels::default(), values, histograms };
            if s.histograms.is_empty() && !op.is_trim() {
                // Floats only (alerting thresholds over many series): no operands to build.
                let values: Vec<Option<f64>> = s
                    .values
                    .iter()
                    .zip(scalar)
                    .map(|(&v, &k)| {
                        let v = v?;
                        let (l, r) = if swapped { (k, v) } else { (v, k) };
                        float_element(op, m.return_bool, l, r, v)
                    })
                    .collect();
                return values.iter().any(Option::is_some).then(|| StepSeries::floats(labels, values));
            }
            let operands: Vec<Option<Operand>> = (0..s.values.len())
                .map(|i| {
                    let v = operand(&s, i)?;
                    let k = Operand::Float(scalar[i]);
                    let (l, r) = if swapped { (&k, &v) } else { (&v, &k) };
                    // A comparison keeps the vector's value, whichever side it is on.
                    element(ev, op, m, l, r, &v)
                })
                .collect();
            let out = series_of(labels, operands);
            out.has_values().then_some(out)
        })
        .collect()
}

/// Whether label `name` is one that series are matched on.
fn in_signature(name: &str, matching: &Option<MatchOn>) -> bool {
    match matching {
        Some(MatchOn::On(on)) => on.iter().any(|o| o == name),
        Some(MatchOn::Ignoring(ign)) => name != METRIC_NAME && !ign.iter().any(|i| i == name),
        None => name != METRIC_NAME,
    }
}

/// The labels series are matched on.
fn signature(labels: &Labels, matching: &Option<MatchOn>) -> Labels {
    labels.filtered(|n| in_signature(n, matching))
}

/// Numbers the signatures of `series`: equal ids for equal signatures, ids from 0 up to the
/// count returned. Each signature is hashed where it lies, without a copy; series whose hashes
/// are equal are told apart by comparing their signatures.
fn signature_ids<'a>(series: impl Iterator<Item = &'a Labels>, matching: &Option<MatchOn>) -> (Vec<usize>, usize) {
    let part = |labels: &'a Labels| labels.iter().filter(|l| in_signature(&l.name, matching));
    // The first series of each id, the first id of each hash, and the next id of the same hash.
    let mut firsts: Vec<&Labels> = Vec::new();
    let mut by_hash: HashMap<u64, usize> = HashMap::new();
    let mut next_of_hash: Vec<Option<usize>> = Vec::new();
    let ids = series
        .map(|labels| {
            let hash = hash_pairs(part(labels).map(|l| (l.name.as_str(), l.value.as_str())));
            let mut last = None;
            let mut candidate = by_hash.get(&hash).copied();
            while let Some(id) = candidate {
                if part(firsts[id]).eq(part(labels)) {
                    return id;
                }
                (last, candidate) = (Some(id), next_of_hash[id]);
            }
            let id = firsts.len();
            firsts.push(labels);
            next_of_hash.push(None);
            match last {
                Some(last) => next_of_hash[last] = Some(id),
                None => drop(by_hash.insert(hash, id)),
            }
            id
        })
        .collect();
    (ids, firsts.len())
}

/// `and`, `or`, `unless`, evaluated per step; floats and histograms alike. Each signature
/// becomes a small id once, so that a step compares ids instead of hashing label sets; and
/// series are masked in place: `or` keeps its left-hand side whole (a chain of a hundred `or`s
/// does not rebuild what it has gathered at every link) and adds each right-hand series at
/// the steps where no left-hand series has its signature; `and` and `unless` keep the
/// left-hand side at the steps where a right-hand series has (or has not) its signature.
fn set_operation(
    ev: &Evaluator,
    op: BinaryOp,
    m: &BinaryModifiers,
    mut lhs: Vec<StepSeries>,
    mut rhs: Vec<StepSeries>,
    steps: usize,
) -> Result<Vec<StepSeries>, EvalError> {
    let (mut lsig, count) = signature_ids(lhs.iter().chain(&rhs).map(|s| &s.labels), &m.matching);
    let rsig = lsig.split_off(lhs.len());
    let mut present = vec![false; count];
    let work = lhs.len() + rhs.len();
    let (masked, masked_sig, by, by_sig, keep_matched) = match op {
        BinaryOp::Or => (&mut rhs, &rsig, &lhs, &lsig, false),
        BinaryOp::And => (&mut lhs, &lsig, &rhs, &rsig, true),
        _ => (&mut lhs, &lsig, &rhs, &rsig, false),
    };
    for i in 0..steps {
        ev.interrupt(work)?;
        let there = by.iter().zip(by_sig).filter(|(s, _)| has_value(s, i));
        there.clone().for_each(|(_, &sig)| present[sig] = true);
        for (s, &sig) in masked.iter_mut().zip(masked_sig) {
            if present[sig] != keep_matched {
                s.values[i] = None;
                if let Some(h) = s.histograms.get_mut(i) {
                    *h = None;
                }
            }
        }
        there.for_each(|(_, &sig)| present[sig] = false);
    }
    if op == BinaryOp::Or {
        lhs.append(&mut rhs);
    }
    // A series masked to floats alone holds no histogram vector, as the evaluator expects.
    lhs.retain_mut(|s| {
        if s.histograms.iter().all(Option::is_none) {
            s.histograms.clear();
        }
        s.has_values()
    });
    Ok(lhs)
}

/// Whether series `s` has a value (of either type) at step `i`.
fn has_value(s: &StepSeries, i: usize) -> bool {
    s.values[i].is_some() || s.histogram(i).is_some()
}

/// The labels of a result series built from the "many" side `many` and the "one" side `one`.
fn result_labels(many: &Labels, one: &Labels, op: BinaryOp, m: &BinaryModifiers) -> Labels {
    let base = if drops_name(op, m.return_bool) { many.without_metric_name() } else { many.clone() };
    match &m.group {
        None => match &m.matching {
            Some(MatchOn::On(on)) => base.filtered(|n| on.iter().any(|o| o == n)),
            Some(MatchOn::Ignoring(ign)) => base.filtered(|n| !ign.iter().any(|i| i == n)),
            None => base,
        },
        Some(Grouping::Left(include) | Grouping::Right(include)) => {
            let mut pairs: Vec<(String, String)> =
                base.iter().filter(|l| !include.contains(&l.name)).map(|l| (l.name.clone(), l.value.clone())).collect();
            pairs.extend(include.iter().map(|n| (n.clone(), one.get(n).to_string())));
            Labels::from_pairs(pairs)
        }
    }
}

fn vector_vector(
    ev: &Evaluator,
    op: BinaryOp,
    m: &BinaryModifiers,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    steps: usize,
) -> Result<Vec<StepSeries>, EvalError> {
    // With group_right the right side is the "many" side; swap so that `many` is iterated and
    // `one` is looked up, and swap the operands back when computing.
    let right_is_many = matches!(m.group, Some(Grouping::Right(_)));
    let (many, one) = if right_is_many { (&rhs, &lhs) } else { (&lhs, &rhs) };
    let one_side = if right_is_many { "left" } else { "right" };
    let (mut many_sig, count) = signature_ids(many.iter().chain(one).map(|s| &s.labels), &m.matching);
    let one_sig = many_sig.split_off(many.len());
    let mut results = Results::new(many.len());
    // Per step: the one-side series of each signature, and whether a many-side series matched it.
    let mut one_at: Vec<Option<usize>> = vec![None; count];
    let mut matched: Vec<bool> = vec![false; count];
    for i in 0..steps {
        ev.interrupt(one.len() + many.len())?;
        for (k, s) in one.iter().enumerate().filter(|(_, s)| has_value(s, i)) {
            if let Some(prev) = one_at[one_sig[k]].replace(k) {
                return Err(EvalError::Execution(format!(
                    "found duplicate series for the match group {} on the {one_side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    signature(&s.labels, &m.matching), one[prev].labels, s.labels
                )));
            }
        }
        for (j, s) in many.iter().enumerate() {
            let sig = many_sig[j];
            let Some(v) = operand(s, i) else { continue };
            let Some(k) = one_at[sig] else { continue };
            if m.group.is_none() && std::mem::replace(&mut matched[sig], true) {
                return Err(EvalError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .into(),
                ));
            }
            let slot = results.slot(j, k, || result_labels(&s.labels, &one[k].labels, op, m));
            if m.group.is_some() && results.seen[slot].replace((i, sig)) == Some((i, sig)) {
                return Err(EvalError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches".into(),
                ));
            }
            let w = operand(&one[k], i).expect("present at this step");
            let (l, r) = if right_is_many { (&w, &v) } else { (&v, &w) };
            let Some(value) = element(ev, op, m, l, r, l) else { continue };
            let operands = &mut results.operands[slot];
            if operands.is_empty() {
                // Made with the first value: a pairing a comparison filters out takes nothing.
                *operands = vec![None; steps];
            }
            let operand = &mut operands[i];
            if operand.is_some() {
                return Err(EvalError::Execution("vector cannot contain metrics with the same labelset".into()));
            }
            *operand = Some(value);
        }
        one_sig.iter().for_each(|&sig| (one_at[sig], matched[sig]) = (None, false));
    }
    Ok(results.into_series())
}

/// The result series of a vector matching, each made once: a many-side series keeps its result
/// series while it matches the same one-side series (always, without `group_*`), so label sets
/// are built once a pairing, not at every step.
struct Results {
    labels: Vec<Labels>,
    operands: Vec<Vec<Option<Operand>>>,
    /// The step and signature that last wrote each result (`group_*` matching's check).
    seen: Vec<Option<(usize, usize)>>,
    index: HashMap<Labels, usize>,
    /// Each many-side series' last pairing: the one-side series and the result it made.
    paired: Vec<Option<(usize, usize)>>,
}

impl Results {
    /// Results for `many` many-side series.
    fn new(many: usize) -> Self {
        Results {
            labels: Vec::new(),
            operands: Vec::new(),
            seen: Vec::new(),
            index: HashMap::new(),
            paired: vec![None; many],
        }
    }

    /// The result of many-side series `j` paired with one-side series `k`, whose labels are
    /// `labels()`.
    fn slot(&mut self, j: usize, k: usize, labels: impl FnOnce() -> Labels) -> usize {
        if let Some((paired, slot)) = self.paired[j] {
            if paired == k {
                return slot;
            }
        }
        let labels = labels();
        let slot = match self.index.get(&labels) {
            Some(&slot) => slot,
            None => {
                self.index.insert(labels.clone(), self.labels.len());
                self.labels.push(labels);
                self.operands.push(Vec::new());
                self.seen.push(None);
                self.labels.len() - 1
            }
        };
        self.paired[j] = Some((k, slot));
        slot
    }

    /// The results with a value at some step.
    fn into_series(self) -> Vec<StepSeries> {
        let series = self.labels.into_iter().zip(self.operands).map(|(labels, operands)| series_of(labels, operands));
        series.filter(StepSeries::has_values).collect()
    }
}
