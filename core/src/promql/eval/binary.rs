//! Binary operators between scalars and vectors, with one-to-one vector matching.
//!
//! Semantics follow upstream: arithmetic drops the metric name; a comparison filters (keeping
//! the vector side's value) unless `bool` turns it into 0/1, which also drops the name. For
//! vector/vector operations, series are matched per step on their signature (all labels but
//! the name, or only `on(...)`, or all but `ignoring(...)`); each side must be unique per
//! signature at a step.

use std::collections::HashMap;

use super::{EvalError, StepSeries, Value};
use crate::labels::{Labels, METRIC_NAME};
use crate::promql::ast::{BinaryModifiers, BinaryOp, MatchOn};

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
        BinaryOp::And | BinaryOp::Or | BinaryOp::Unless => unreachable!("set operators are refused by the planner"),
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
        (Value::Scalar(l), Value::Scalar(r)) => Ok(Value::Scalar(
            l.iter()
                .zip(&r)
                .map(|(&a, &b)| {
                    let (v, keep) = operate(op, a, b);
                    if op.is_comparison() {
                        // Only reachable with `bool` (the parser insists on it).
                        if keep {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (Value::Vector(v), Value::Scalar(s)) => Ok(Value::Vector(vector_scalar(op, m.return_bool, v, &s, false))),
        (Value::Scalar(s), Value::Vector(v)) => Ok(Value::Vector(vector_scalar(op, m.return_bool, v, &s, true))),
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
                    let (value, keep) = if swapped { operate(op, k, v) } else { operate(op, v, k) };
                    match (op.is_comparison(), return_bool) {
                        (true, true) => Some(if keep { 1.0 } else { 0.0 }),
                        // A comparison keeps the vector's value, whichever side it is on.
                        (true, false) => keep.then_some(v),
                        (false, _) => Some(value),
                    }
                })
                .collect();
            let labels = if drops_name(op, return_bool) { s.labels.without_metric_name() } else { s.labels };
            values.iter().any(Option::is_some).then_some(StepSeries { labels, values })
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

/// The labels of a one-to-one result series.
fn result_labels(lhs: &Labels, op: BinaryOp, m: &BinaryModifiers) -> Labels {
    let base = if drops_name(op, m.return_bool) { lhs.without_metric_name() } else { lhs.clone() };
    match &m.matching {
        Some(MatchOn::On(on)) => base.filtered(|n| on.iter().any(|o| o == n)),
        Some(MatchOn::Ignoring(ign)) => base.filtered(|n| !ign.iter().any(|i| i == n)),
        None => base,
    }
}

fn vector_vector(
    op: BinaryOp,
    m: &BinaryModifiers,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    steps: usize,
) -> Result<Vec<StepSeries>, EvalError> {
    let mut rhs_by_sig: HashMap<Labels, Vec<&StepSeries>> = HashMap::new();
    for r in &rhs {
        rhs_by_sig.entry(signature(&r.labels, &m.matching)).or_default().push(r);
    }
    let mut lhs_by_sig: HashMap<Labels, Vec<&StepSeries>> = HashMap::new();
    for l in &lhs {
        lhs_by_sig.entry(signature(&l.labels, &m.matching)).or_default().push(l);
    }
    let mut out: HashMap<Labels, StepSeries> = HashMap::new();
    for (sig, lefts) in &lhs_by_sig {
        let Some(rights) = rhs_by_sig.get(sig) else { continue };
        for step in 0..steps {
            let present_right: Vec<&&StepSeries> = rights.iter().filter(|r| r.values[step].is_some()).collect();
            let Some(right) = present_right.first() else { continue };
            if present_right.len() > 1 {
                return Err(EvalError::Execution(format!(
                    "found duplicate series for the match group {sig} on the right hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    present_right[0].labels, present_right[1].labels
                )));
            }
            let present_left: Vec<&&StepSeries> = lefts.iter().filter(|l| l.values[step].is_some()).collect();
            if present_left.len() > 1 {
                return Err(EvalError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .into(),
                ));
            }
            let Some(left) = present_left.first() else { continue };
            let (lv, rv) = (left.values[step].expect("filtered"), right.values[step].expect("filtered"));
            let (value, keep) = operate(op, lv, rv);
            let value = match (op.is_comparison(), m.return_bool) {
                (true, true) => Some(if keep { 1.0 } else { 0.0 }),
                (true, false) => keep.then_some(value),
                (false, _) => Some(value),
            };
            let Some(value) = value else { continue };
            let labels = result_labels(&left.labels, op, m);
            let entry = out.entry(labels.clone()).or_insert_with(|| StepSeries { labels, values: vec![None; steps] });
            if entry.values[step].is_some() {
                return Err(EvalError::Execution("vector cannot contain metrics with the same labelset".into()));
            }
            entry.values[step] = Some(value);
        }
    }
    Ok(out.into_values().collect())
}
