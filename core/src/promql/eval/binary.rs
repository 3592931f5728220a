//! Binary operators between scalars and vectors: arithmetic, comparisons, set operators, and
//! vector matching (one-to-one, `group_left`, `group_right`).
//!
//! Semantics follow upstream: arithmetic drops the metric name; a comparison filters (keeping
//! a value from the left-hand side, or the vector side against a scalar) unless `bool` turns it
//! into 0/1, which also drops the name. Vector/vector operations match series per step on
//! their signature: all labels but the name, or only `on(...)`, or all but `ignoring(...)`.

use std::collections::{HashMap, HashSet};

use super::{EvalError, StepSeries, Value};
use crate::labels::{Labels, METRIC_NAME};
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
    }
}

/// The result of one element-wise operation: `Some` value to output, or `None` when a
/// comparison filters it out.
fn element(op: BinaryOp, return_bool: bool, l: f64, r: f64, keep_from: f64) -> Option<f64> {
    let (value, holds) = operate(op, l, r);
    match (op.is_comparison(), return_bool) {
        (true, true) => Some(if holds { 1.0 } else { 0.0 }),
        (true, false) => holds.then_some(keep_from),
        (false, _) => Some(value),
    }
}

fn drops_name(op: BinaryOp, return_bool: bool) -> bool {
    return_bool || !op.is_comparison()
}

pub(super) fn apply(
    op: BinaryOp,
    m: &BinaryModifiers,
    lhs: Value,
    rhs: Value,
    steps: usize,
) -> Result<Value, EvalError> {
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => {
            Ok(Value::Scalar(l.iter().zip(&r).map(|(&a, &b)| element(op, true, a, b, a).unwrap_or(f64::NAN)).collect()))
        }
        (Value::Vector(v), Value::Scalar(s)) => Ok(Value::Vector(vector_scalar(op, m.return_bool, v, &s, false))),
        (Value::Scalar(s), Value::Vector(v)) => Ok(Value::Vector(vector_scalar(op, m.return_bool, v, &s, true))),
        (Value::Vector(l), Value::Vector(r)) if op.is_set() => Ok(Value::Vector(set_operation(op, m, l, r, steps))),
        (Value::Vector(l), Value::Vector(r)) => vector_vector(op, m, l, r, steps).map(Value::Vector),
        (l, r) => {
            Err(EvalError::Execution(format!("binary operation between {} and {}", l.type_name(), r.type_name())))
        }
    }
}

/// `vector op scalar`, or `scalar op vector` when `swapped`.
fn vector_scalar(
    op: BinaryOp,
    return_bool: bool,
    series: Vec<StepSeries>,
    scalar: &[f64],
    swapped: bool,
) -> Vec<StepSeries> {
    series
        .into_iter()
        .filter_map(|s| {
            let values: Vec<Option<f64>> = s
                .values
                .iter()
                .zip(scalar)
                .map(|(&v, &k)| {
                    let v = v?;
                    let (l, r) = if swapped { (k, v) } else { (v, k) };
                    // A comparison keeps the vector's value, whichever side it is on.
                    element(op, return_bool, l, r, v)
                })
                .collect();
            let labels = if drops_name(op, return_bool) { s.labels.into_without_metric_name() } else { s.labels };
            values.iter().any(Option::is_some).then_some(StepSeries::floats(labels, values))
        })
        .collect()
}

/// The labels series are matched on.
fn signature(labels: &Labels, matching: &Option<MatchOn>) -> Labels {
    match matching {
        Some(MatchOn::On(on)) => labels.filtered(|n| on.iter().any(|o| o == n)),
        Some(MatchOn::Ignoring(ign)) => labels.filtered(|n| n != METRIC_NAME && !ign.iter().any(|i| i == n)),
        None => labels.without_metric_name(),
    }
}

/// `and`, `or`, `unless`, evaluated per step.
fn set_operation(
    op: BinaryOp,
    m: &BinaryModifiers,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    steps: usize,
) -> Vec<StepSeries> {
    let lsig: Vec<Labels> = lhs.iter().map(|s| signature(&s.labels, &m.matching)).collect();
    let rsig: Vec<Labels> = rhs.iter().map(|s| signature(&s.labels, &m.matching)).collect();
    let present_at = |series: &[StepSeries], sigs: &[Labels], i: usize| -> HashSet<Labels> {
        series.iter().zip(sigs).filter(|(s, _)| s.values[i].is_some()).map(|(_, sig)| sig.clone()).collect()
    };
    let mut out: Vec<StepSeries> =
        lhs.iter().map(|s| StepSeries::floats(s.labels.clone(), vec![None; steps])).collect();
    // `or`: right-hand series at the steps where no left-hand series matches them.
    let mut extra: Vec<StepSeries> = match op {
        BinaryOp::Or => rhs.iter().map(|s| StepSeries::floats(s.labels.clone(), vec![None; steps])).collect(),
        _ => Vec::new(),
    };
    for i in 0..steps {
        let right = present_at(&rhs, &rsig, i);
        for (j, s) in lhs.iter().enumerate() {
            let Some(v) = s.values[i] else { continue };
            let matched = right.contains(&lsig[j]);
            let keep = match op {
                BinaryOp::And => matched,
                BinaryOp::Unless => !matched,
                _ => true,
            };
            if keep {
                out[j].values[i] = Some(v);
            }
        }
        if op == BinaryOp::Or {
            let left = present_at(&lhs, &lsig, i);
            for (j, s) in rhs.iter().enumerate() {
                if s.values[i].is_some() && !left.contains(&rsig[j]) {
                    extra[j].values[i] = s.values[i];
                }
            }
        }
    }
    out.extend(extra);
    out.retain(|s| s.values.iter().any(Option::is_some));
    out
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
    let many_sig: Vec<Labels> = many.iter().map(|s| signature(&s.labels, &m.matching)).collect();
    let one_sig: Vec<Labels> = one.iter().map(|s| signature(&s.labels, &m.matching)).collect();
    let mut out: HashMap<Labels, Vec<Option<f64>>> = HashMap::new();
    for i in 0..steps {
        let mut one_by_sig: HashMap<&Labels, usize> = HashMap::new();
        for (j, s) in one.iter().enumerate() {
            if s.values[i].is_none() {
                continue;
            }
            if let Some(&prev) = one_by_sig.get(&one_sig[j]) {
                return Err(EvalError::Execution(format!(
                    "found duplicate series for the match group {} on the {one_side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    one_sig[j], one[prev].labels, s.labels
                )));
            }
            one_by_sig.insert(&one_sig[j], j);
        }
        let mut matched: HashMap<&Labels, HashSet<Labels>> = HashMap::new();
        for (j, s) in many.iter().enumerate() {
            let Some(v) = s.values[i] else { continue };
            let Some(&k) = one_by_sig.get(&many_sig[j]) else { continue };
            let w = one[k].values[i].expect("present at this step");
            let (l, r) = if right_is_many { (w, v) } else { (v, w) };
            let labels = result_labels(&s.labels, &one[k].labels, op, m);
            let seen = matched.entry(&many_sig[j]).or_default();
            if m.group.is_none() {
                if !seen.is_empty() {
                    return Err(EvalError::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                            .into(),
                    ));
                }
            } else if seen.contains(&labels) {
                return Err(EvalError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches".into(),
                ));
            }
            seen.insert(labels.clone());
            let Some(value) = element(op, m.return_bool, l, r, l) else { continue };
            let slot = &mut out.entry(labels).or_insert_with(|| vec![None; steps])[i];
            if slot.is_some() {
                return Err(EvalError::Execution("vector cannot contain metrics with the same labelset".into()));
            }
            *slot = Some(value);
        }
    }
    Ok(out.into_iter().map(|(labels, values)| StepSeries::floats(labels, values)).collect())
}
