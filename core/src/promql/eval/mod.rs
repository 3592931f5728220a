//! Evaluation of planned nodes, vectorised over steps.
//!
//! Every value is computed for all steps of the query at once: a vector is a list of series,
//! each with one optional value per step; a scalar is one value per step. An instant query is a
//! range query with a single step.
//!
//! Shards evaluate fragments with [`evaluate_fragment`] against their own storage (any
//! [`SeriesSource`]); the coordinator merges the outputs and evaluates the rest with
//! [`Plan::finish`].

mod aggregate;
mod binary;
mod exact_sum;
mod selector;

use std::collections::HashSet;

use thiserror::Error;

use super::ast::{At, VectorSelector};
use super::plan::{Merge, Node, Plan};
use crate::labels::{Labels, Matcher};
use crate::tsdb::head::{Head, SeriesSamples};

pub use aggregate::PartialAggregate;

/// Why a query could not be evaluated. Each maps onto an API error type.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EvalError {
    /// A valid query that uses something the evaluator does not implement yet (`execution`).
    #[error("not supported yet: {0}")]
    Unsupported(String),
    /// A query that failed while running, e.g. duplicate series after matching (`execution`).
    #[error("{0}")]
    Execution(String),
    /// The query ran past its deadline (`timeout`).
    #[error("query timed out in {0}")]
    Timeout(String),
}

/// The time frame of an evaluation, all in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalParams {
    pub start: i64,
    pub end: i64,
    /// Distance between steps (> 0); irrelevant when `start == end`.
    pub step: i64,
    pub lookback: i64,
}

impl EvalParams {
    pub fn instant(t: i64, lookback: i64) -> Self {
        EvalParams { start: t, end: t, step: 1, lookback }
    }

    pub fn steps(&self) -> usize {
        ((self.end - self.start) / self.step) as usize + 1
    }

    /// Timestamp of step `i`.
    pub fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    /// The evaluation time of step `i` for a selector with these modifiers.
    fn selector_time(&self, i: usize, offset: i64, at: Option<At>) -> i64 {
        let t = match at {
            None => self.ts(i),
            Some(At::Timestamp(t)) => t,
            Some(At::Start) => self.start,
            Some(At::End) => self.end,
        };
        t - offset
    }
}

/// One series of a vector: a value per step, `None` where it has none.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSeries {
    pub labels: Labels,
    pub values: Vec<Option<f64>>,
}

/// The result of evaluating a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// One value per step.
    Scalar(Vec<f64>),
    String(String),
    /// Series with a value per step.
    Vector(Vec<StepSeries>),
    /// Raw samples per series: only an instant query's range-selector result.
    Matrix(Vec<SeriesSamples>),
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "instant vector",
            Value::Matrix(_) => "range vector",
        }
    }

    /// Sorts series by labels, so results do not depend on shard count or hashing.
    pub fn sort(&mut self) {
        match self {
            Value::Vector(v) => v.sort_by(|a, b| a.labels.cmp(&b.labels)),
            Value::Matrix(m) => m.sort_by(|a, b| a.labels.cmp(&b.labels)),
            _ => {}
        }
    }
}

/// Where a shard's fragments read samples from.
pub trait SeriesSource {
    /// Matching series with their samples in `[mint, maxt]`.
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesSamples>;
}

impl SeriesSource for Head {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesSamples> {
        Head::select(self, matchers, mint, maxt)
    }
}

/// A shard's output for one fragment.
#[derive(Debug, Clone, PartialEq)]
pub enum FragmentOutput {
    Value(Value),
    Partial(PartialAggregate),
}

/// Evaluates fragment `index` of `plan` on one shard's storage.
pub fn evaluate_fragment(
    plan: &Plan,
    index: usize,
    params: &EvalParams,
    source: &dyn SeriesSource,
) -> Result<FragmentOutput, EvalError> {
    let fragment = &plan.fragments[index];
    let ev = Evaluator { params, source: Some(source), fragments: &[] };
    let value = ev.eval(&fragment.node)?;
    match &fragment.merge {
        Merge::Concat => Ok(FragmentOutput::Value(value)),
        Merge::Aggregate { op, grouping } => {
            let Value::Vector(series) = value else {
                return Err(EvalError::Execution(format!("aggregation over a {}", value.type_name())));
            };
            Ok(FragmentOutput::Partial(PartialAggregate::from_series(*op, grouping, series, params.steps())))
        }
    }
}

impl Plan {
    /// Merges every shard's fragment outputs (`outputs[shard][fragment]`) and evaluates the
    /// coordinator's part. The result's series are sorted by labels.
    pub fn finish(&self, params: &EvalParams, outputs: Vec<Vec<FragmentOutput>>) -> Result<Value, EvalError> {
        let mut per_fragment: Vec<Vec<FragmentOutput>> = (0..self.fragments.len()).map(|_| Vec::new()).collect();
        for shard in outputs {
            for (i, out) in shard.into_iter().enumerate() {
                per_fragment[i].push(out);
            }
        }
        let merged: Vec<Value> = self
            .fragments
            .iter()
            .zip(per_fragment)
            .map(|(fragment, outs)| merge(&fragment.merge, outs))
            .collect::<Result<_, _>>()?;
        let ev = Evaluator { params, source: None, fragments: &merged };
        let mut value = ev.eval(&self.root)?;
        value.sort();
        Ok(value)
    }
}

fn merge(how: &Merge, outputs: Vec<FragmentOutput>) -> Result<Value, EvalError> {
    match how {
        Merge::Concat => {
            let mut vector: Option<Vec<StepSeries>> = None;
            let mut matrix: Option<Vec<SeriesSamples>> = None;
            for out in outputs {
                match out {
                    FragmentOutput::Value(Value::Vector(v)) => vector.get_or_insert_with(Vec::new).extend(v),
                    FragmentOutput::Value(Value::Matrix(m)) => matrix.get_or_insert_with(Vec::new).extend(m),
                    other => return Err(EvalError::Execution(format!("cannot concatenate {other:?}"))),
                }
            }
            match (vector, matrix) {
                (Some(v), None) => {
                    check_unique_labels(&v)?;
                    Ok(Value::Vector(v))
                }
                (None, Some(m)) => Ok(Value::Matrix(m)),
                (None, None) => Ok(Value::Vector(Vec::new())),
                (Some(_), Some(_)) => Err(EvalError::Execution("shards returned mixed value types".into())),
            }
        }
        Merge::Aggregate { op, .. } => {
            let mut acc = PartialAggregate::empty(*op);
            for out in outputs {
                match out {
                    FragmentOutput::Partial(p) => acc.merge(p),
                    other => return Err(EvalError::Execution(format!("expected a partial aggregate, got {other:?}"))),
                }
            }
            Ok(Value::Vector(acc.finish()))
        }
    }
}

/// Upstream refuses a vector in which two series share a label set at the same step (e.g. after
/// `rate()` dropped the metric names of two otherwise equal series).
fn check_unique_labels(series: &[StepSeries]) -> Result<(), EvalError> {
    let mut seen: HashSet<&Labels> = HashSet::with_capacity(series.len());
    let mut duplicates: Vec<&StepSeries> = Vec::new();
    for s in series {
        if !seen.insert(&s.labels) {
            duplicates.push(s);
        }
    }
    for dup in duplicates {
        let clash = series.iter().filter(|s| s.labels == dup.labels).any(|s| {
            !std::ptr::eq(s, dup) && s.values.iter().zip(&dup.values).any(|(a, b)| a.is_some() && b.is_some())
        });
        if clash {
            return Err(EvalError::Execution("vector cannot contain metrics with the same labelset".into()));
        }
    }
    Ok(())
}

/// The recursive evaluator. On a shard it has a `source`; on the coordinator it has merged
/// fragment values.
struct Evaluator<'a> {
    params: &'a EvalParams,
    source: Option<&'a dyn SeriesSource>,
    fragments: &'a [Value],
}

impl Evaluator<'_> {
    fn source(&self) -> &dyn SeriesSource {
        self.source.expect("storage leaves are only evaluated on shards")
    }

    fn eval(&self, node: &Node) -> Result<Value, EvalError> {
        let steps = self.params.steps();
        Ok(match node {
            Node::Number(n) => Value::Scalar(vec![*n; steps]),
            Node::String(s) => Value::String(s.clone()),
            Node::Select(vs) => Value::Vector(selector::instant(self.source(), vs, self.params)),
            Node::MatrixSelect { selector: vs, range } => {
                Value::Matrix(selector::matrix(self.source(), vs, *range, self.params))
            }
            Node::Range { func, selector: vs, range } => {
                Value::Vector(selector::range_function(self.source(), *func, vs, *range, self.params))
            }
            Node::Fragment(i) => self.fragments[*i].clone(),
            Node::Neg(x) => match self.eval(x)? {
                Value::Scalar(v) => Value::Scalar(v.into_iter().map(|x| -x).collect()),
                Value::Vector(series) => Value::Vector(
                    series
                        .into_iter()
                        .map(|s| StepSeries {
                            labels: s.labels.without_metric_name(),
                            values: s.values.into_iter().map(|v| v.map(|x| -x)).collect(),
                        })
                        .collect(),
                ),
                other => return Err(EvalError::Execution(format!("unary minus on a {}", other.type_name()))),
            },
            Node::Binary { op, lhs, rhs, modifiers } => {
                binary::apply(*op, modifiers, self.eval(lhs)?, self.eval(rhs)?, steps)?
            }
            Node::Aggregate { op, expr, grouping } => match self.eval(expr)? {
                Value::Vector(series) => {
                    Value::Vector(PartialAggregate::from_series(*op, grouping, series, steps).finish())
                }
                other => return Err(EvalError::Execution(format!("aggregation over a {}", other.type_name()))),
            },
        })
    }
}

/// Time range of samples a selector needs for all steps, widened by `window` before each step.
fn selector_range(params: &EvalParams, vs: &VectorSelector, window: i64) -> (i64, i64) {
    let first = params.selector_time(0, vs.offset, vs.at);
    let last = params.selector_time(params.steps() - 1, vs.offset, vs.at);
    (first.min(last) - window, first.max(last))
}

#[cfg(test)]
mod tests;
