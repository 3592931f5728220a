//! The query planner: which parts of a query run on every shard, and which on the coordinator.
//!
//! A *series-local* expression computes each output series from exactly one input series, so
//! every shard can evaluate it on the series it owns and the coordinator only concatenates:
//! selectors, functions applied series by series (`rate`, `abs`, `*_over_time`,
//! `label_replace`, ...), subqueries of series-local expressions, and arithmetic or comparison
//! with a scalar that needs no storage. A decomposable aggregation (`sum`, `avg`, `count`,
//! `min`, `max`, `group`, `stddev`, `stdvar`) over a series-local expression becomes a fragment
//! too: shards return partial states per group and step, the coordinator merges them.
//! Everything else runs on the coordinator over merged fragment outputs.
//!
//! A fragment inside a subquery is evaluated in the subquery's time frame: it records the
//! [`Frame`]s between it and the query so that shards derive the same steps the coordinator
//! will ask for.
//!
//! Lowering also decides what is not evaluated yet: such a query fails here with an `execution`
//! error naming the feature, never with a wrong answer.

use std::fmt;

use super::ast::{
    format_duration, write_binary_op, write_modifiers, AggregateGrouping, AggregateOp, At, BinaryModifiers, BinaryOp,
    CallPositions, DurationExpr, DynamicDurations, Expr, ValueType, VectorSelector,
};
use super::eval::{EvalError, EvalParams, InfoMatchers, Limits};
use super::functions::Function;
use crate::labels::{Labels, MatchOp, Projection, METRIC_NAME};

/// An evaluable node. Storage leaves (`Select`, `MatrixSelect`) appear only inside fragments;
/// `Fragment` appears only in the coordinator's tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Number(f64),
    String(String),
    Select(VectorSelector),
    /// The time, in seconds, of the sample an instant selector picks at every step, labels
    /// kept: how `info` tells the newest of conflicting info series.
    SampleTimes(VectorSelector),
    MatrixSelect {
        selector: VectorSelector,
        range: i64,
    },
    Subquery {
        expr: Box<Node>,
        frame: Frame,
    },
    Call {
        func: &'static Function,
        args: Vec<Node>,
        pos: CallPositions,
    },
    Neg(Box<Node>),
    Binary {
        op: BinaryOp,
        lhs: Box<Node>,
        rhs: Box<Node>,
        modifiers: BinaryModifiers,
    },
    Aggregate {
        op: AggregateOp,
        expr: Box<Node>,
        param: Option<Box<Node>>,
        grouping: AggregateGrouping,
        param_pos: usize,
        expr_pos: usize,
    },
    /// `absent(expr)` / `absent_over_time(expr)` with the labels its result carries, derived from
    /// the query text as upstream does (the argument may be a fragment by the time it runs).
    Absent {
        expr: Box<Node>,
        labels: Labels,
    },
    /// `info(base, ...)` with its candidate info series (sample times) already selected.
    Info {
        base: Box<Node>,
        infos: Box<Node>,
        matchers: InfoMatchers,
    },
    Fragment(usize),
}

/// A subquery's time frame relative to the enclosing evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub range: i64,
    /// The resolution; `None` uses the default subquery step.
    pub step: Option<i64>,
    pub offset: i64,
    pub at: Option<At>,
}

/// How the coordinator combines the shards' outputs of a fragment.
#[derive(Debug, Clone, PartialEq)]
pub enum Merge {
    /// Outputs are disjoint sets of series: concatenate.
    Concat,
    /// Outputs are partial aggregation states: merge per group, then finalise.
    /// `expr_pos` is where the aggregated expression starts, where annotations point.
    Aggregate { op: AggregateOp, grouping: AggregateGrouping, expr_pos: usize },
}

/// A piece of the query every shard evaluates on its own series.
#[derive(Debug, Clone, PartialEq)]
pub struct Fragment {
    pub node: Node,
    pub merge: Merge,
    /// Subquery frames from the query down to this fragment, outermost first.
    pub frames: Vec<Frame>,
    /// The labels its storage reads must return at least.
    pub labels: Projection,
    /// No two of its series can have equal label sets ([`distinct`]), on one shard or across
    /// shards (each series is on one): nothing to merge or report, so nothing is checked.
    pub distinct: bool,
    /// An aggregation (or a shard's `topk`/`bottomk`) of [`distinct`] series read by one
    /// selector: its expression gives the same series whichever of them it is handed at once,
    /// so a shard folds them into the partial state (or the best so far) a batch at a time
    /// (`eval::batches`) instead of holding every one's steps.
    pub batched: bool,
}

/// A planned query: the coordinator's tree and the fragments it refers to.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub root: Node,
    pub fragments: Vec<Fragment>,
    /// `--query.max-samples` and what stops the evaluation early (the query's deadline, a client
    /// gone); none by default.
    pub limits: Limits,
}

/// Plans an expression for evaluation across shards, for a query over `params` (which gives
/// `step()` and `range()` in duration expressions their values).
pub fn plan(expr: &Expr, params: &EvalParams) -> Result<Plan, EvalError> {
    let mut planner = Planner {
        fragments: Vec::new(),
        frames: Vec::new(),
        start: params.start as f64 / 1000.0,
        end: params.end as f64 / 1000.0,
        step: params.step as f64 / 1000.0,
        range: (params.end - params.start) as f64 / 1000.0,
        bounds: (params.start, params.end),
    };
    check_extensions(expr)?;
    let root = planner.lower(expr)?;
    Ok(Plan { root, fragments: planner.fragments, limits: Limits::default() })
}

/// Upstream's refusal of a range selector with `anchored` or `smoothed` given to a function
/// that does not handle it: an `execution` error, as upstream's when it evaluates the call.
fn check_extensions(e: &Expr) -> Result<(), EvalError> {
    match e {
        Expr::Call { func, args, .. } => args.iter().try_for_each(|a| {
            if let Expr::MatrixSelector { selector: VectorSelector { extension: Some(x), .. }, .. } = a.unparen() {
                x.check_function(func.name).map_err(EvalError::Execution)?;
            }
            check_extensions(a)
        }),
        Expr::Subquery { expr, .. } | Expr::Neg(expr) | Expr::Paren(expr) => check_extensions(expr),
        Expr::Binary { lhs, rhs, .. } => check_extensions(lhs).and_then(|()| check_extensions(rhs)),
        Expr::Aggregate { expr, param, .. } => {
            check_extensions(expr)?;
            param.as_deref().map_or(Ok(()), check_extensions)
        }
        Expr::Number(_) | Expr::String(_) | Expr::VectorSelector(_) | Expr::MatrixSelector { .. } => Ok(()),
    }
}

fn unsupported(what: impl Into<String>) -> EvalError {
    EvalError::Unsupported(what.into())
}

/// Aggregations whose partial states merge exactly.
fn is_decomposable(op: AggregateOp) -> bool {
    matches!(
        op,
        AggregateOp::Sum
            | AggregateOp::Avg
            | AggregateOp::Count
            | AggregateOp::Min
            | AggregateOp::Max
            | AggregateOp::Group
            | AggregateOp::Stddev
            | AggregateOp::Stdvar
    )
}

/// Aggregations that keep the best `k` series of each group and step, which the best of each
/// shard's series contain.
fn keeps_best(op: AggregateOp) -> bool {
    matches!(op, AggregateOp::Topk | AggregateOp::Bottomk)
}

/// Whether `e` is a scalar that needs no storage (literals, `time()`, `pi()`, arithmetic).
fn is_storage_free_scalar(e: &Expr) -> bool {
    e.value_type() == ValueType::Scalar && !reads_storage(e)
}

fn reads_storage(e: &Expr) -> bool {
    match e {
        Expr::Number(_) | Expr::String(_) => false,
        Expr::VectorSelector(_) | Expr::MatrixSelector { .. } => true,
        Expr::Subquery { expr, .. } | Expr::Neg(expr) | Expr::Paren(expr) => reads_storage(expr),
        Expr::Binary { lhs, rhs, .. } => reads_storage(lhs) || reads_storage(rhs),
        Expr::Aggregate { expr, param, .. } => reads_storage(expr) || param.as_deref().is_some_and(reads_storage),
        Expr::Call { args, .. } => args.iter().any(reads_storage),
    }
}

/// Whether each output series of `e` depends on exactly one input series.
fn is_series_local(e: &Expr) -> bool {
    match e {
        Expr::VectorSelector(_) | Expr::MatrixSelector { .. } => true,
        Expr::Subquery { expr, .. } | Expr::Paren(expr) | Expr::Neg(expr) => is_series_local(expr),
        Expr::Call { func, args, .. } => {
            func.kind.runs_per_series()
                && args.iter().any(|a| matches!(a.value_type(), ValueType::Vector | ValueType::Matrix))
                && args.iter().all(|a| match a.value_type() {
                    ValueType::Vector | ValueType::Matrix => is_series_local(a),
                    ValueType::Scalar => is_storage_free_scalar(a),
                    ValueType::String => true,
                })
        }
        Expr::Binary { op, lhs, rhs, modifiers } => {
            !op.is_set()
                && modifiers.matching.is_none()
                && ((lhs.value_type() == ValueType::Vector && is_series_local(lhs) && is_storage_free_scalar(rhs))
                    || (rhs.value_type() == ValueType::Vector && is_series_local(rhs) && is_storage_free_scalar(lhs)))
        }
        Expr::Number(_) | Expr::String(_) | Expr::Aggregate { .. } => false,
    }
}

/// Whether no two series of series-local `e` can have equal label sets, which would have to
/// be merged or reported as an error. A bare selector's series are distinct. Series-local
/// functions change no label but `label_replace` and `label_join`; most drop the metric name,
/// as arithmetic does, which can make two selected series equal unless every selector names
/// one metric.
fn distinct(e: &Expr) -> bool {
    matches!(e.unparen(), Expr::VectorSelector(_)) || (keeps_labels(e) && names_one_metric(e))
}

/// The labels a fragment of series-local `local` merged as `merge` reads: for an aggregation
/// `by` a few labels of [`distinct`] series (telling them apart needs no other label), those,
/// and the metric name unless a `count`, `min`, ... of a plain selector needs none (functions
/// such as `rate` warn by it, as do smoothed selectors and `sum`/`avg` of histograms of mixed
/// bucket kinds); else all. Without a label, a series costs its read no label strings at all:
/// `count({__name__=~".+"})` reads none.
fn read_labels(merge: &Merge, distinct: bool, local: &Expr) -> Projection {
    let Merge::Aggregate { op, grouping: AggregateGrouping::By(names), .. } = merge else { return Projection::All };
    if !distinct {
        return Projection::All;
    }
    let plain = matches!(local.unparen(), Expr::VectorSelector(vs) if vs.extension.is_none());
    let warns_by_name = !plain || matches!(op, AggregateOp::Sum | AggregateOp::Avg);
    let name = warns_by_name.then(|| METRIC_NAME.to_string());
    let mut names: Vec<String> = names.iter().cloned().chain(name).collect();
    names.sort_unstable();
    names.dedup();
    Projection::Only(names)
}

/// Whether series-local `e` sets no labels (only drops the metric name).
fn keeps_labels(e: &Expr) -> bool {
    match e {
        Expr::Call { func, args, .. } => {
            !matches!(func.name, "label_replace" | "label_join") && args.iter().all(keeps_labels)
        }
        Expr::Subquery { expr, .. } | Expr::Paren(expr) | Expr::Neg(expr) => keeps_labels(expr),
        Expr::Binary { lhs, rhs, .. } => keeps_labels(lhs) && keeps_labels(rhs),
        Expr::Aggregate { .. } => false,
        Expr::Number(_) | Expr::String(_) | Expr::VectorSelector(_) | Expr::MatrixSelector { .. } => true,
    }
}

/// Whether every selector in `e` selects one metric name (`name{...}` or `{__name__="name"}`).
fn names_one_metric(e: &Expr) -> bool {
    match e {
        Expr::VectorSelector(vs) | Expr::MatrixSelector { selector: vs, .. } => {
            vs.matchers.iter().any(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal)
        }
        Expr::Subquery { expr, .. } | Expr::Paren(expr) | Expr::Neg(expr) => names_one_metric(expr),
        Expr::Binary { lhs, rhs, .. } => names_one_metric(lhs) && names_one_metric(rhs),
        Expr::Call { args, .. } => args.iter().all(names_one_metric),
        Expr::Aggregate { .. } => false,
        Expr::Number(_) | Expr::String(_) => true,
    }
}

/// The first selector in `e`, depth first: its offset and `@` say when `info` looks for info
/// series.
fn first_selector(e: &Expr) -> Option<&VectorSelector> {
    match e {
        Expr::VectorSelector(vs) | Expr::MatrixSelector { selector: vs, .. } => Some(vs),
        Expr::Subquery { expr, .. } | Expr::Paren(expr) | Expr::Neg(expr) => first_selector(expr),
        Expr::Binary { lhs, rhs, .. } => first_selector(lhs).or_else(|| first_selector(rhs)),
        Expr::Aggregate { expr, param, .. } => {
            first_selector(expr).or_else(|| param.as_deref().and_then(first_selector))
        }
        Expr::Call { args, .. } => args.iter().find_map(first_selector),
        Expr::Number(_) | Expr::String(_) => None,
    }
}

struct Planner {
    fragments: Vec<Fragment>,
    frames: Vec<Frame>,
    /// The query's start, end, step and range in seconds, for `start()`, `end()`, `step()`,
    /// `range()` in functions and duration expressions.
    start: f64,
    end: f64,
    step: f64,
    range: f64,
    /// The query's start and end (ms), which `@ start()` and `@ end()` stand for wherever they
    /// are, inside subqueries too (upstream's `PreprocessExpr`).
    bounds: (i64, i64),
}

impl Planner {
    /// `at` with `start()` and `end()` resolved to the query's times.
    fn at(&self, at: Option<At>) -> Option<At> {
        at.map(|at| match at {
            At::Start => At::Timestamp(self.bounds.0),
            At::End => At::Timestamp(self.bounds.1),
            at => at,
        })
    }

    /// The value of `start()`, `end()`, `step()` or `range()`: properties of the query, so
    /// they are constants of the plan (and the same inside subqueries).
    fn query_constant(&self, func: &Function) -> Option<f64> {
        match func.name {
            "start" => Some(self.start),
            "end" => Some(self.end),
            "step" => Some(self.step),
            "range" => Some(self.range),
            _ => None,
        }
    }

    /// A duration in ms: `ms`, or the value of its dynamic expression for this query.
    fn resolve(&self, ms: i64, dynamic: Option<&DurationExpr>) -> i64 {
        dynamic.map(|e| (e.seconds(self.step, self.range) * 1000.0).round() as i64).unwrap_or(ms)
    }

    fn positive(&self, ms: i64, dynamic: Option<&DurationExpr>) -> Result<i64, EvalError> {
        let v = self.resolve(ms, dynamic);
        if v <= 0 {
            return Err(EvalError::Execution(format!("duration must be greater than 0, got {}", format_duration(v))));
        }
        Ok(v)
    }

    /// A selector with its dynamic offset resolved.
    fn selector(&self, vs: &VectorSelector) -> VectorSelector {
        let dynamic = vs.dynamic.as_deref();
        VectorSelector {
            offset: self.resolve(vs.offset, dynamic.and_then(|d| d.offset.as_ref())),
            at: self.at(vs.at),
            dynamic: None,
            ..vs.clone()
        }
    }

    fn range_of(&self, vs: &VectorSelector, range: i64) -> Result<i64, EvalError> {
        self.positive(range, vs.dynamic.as_deref().and_then(|d| d.range.as_ref()))
    }

    fn frame(
        &self,
        range: i64,
        step: Option<i64>,
        offset: i64,
        at: Option<At>,
        dynamic: Option<&DynamicDurations>,
    ) -> Result<Frame, EvalError> {
        let step = match dynamic.and_then(|d| d.step.as_ref()) {
            Some(e) => Some(self.positive(0, Some(e))?),
            None => step,
        };
        Ok(Frame {
            range: self.positive(range, dynamic.and_then(|d| d.range.as_ref()))?,
            step,
            offset: self.resolve(offset, dynamic.and_then(|d| d.offset.as_ref())),
            at: self.at(at),
        })
    }

    /// A fragment of `node`, the lowered form of series-local `local` (or an aggregation of it).
    fn fragment(&mut self, node: Node, merge: Merge, local: &Expr) -> Node {
        let distinct = distinct(local);
        let labels = read_labels(&merge, distinct, local);
        let folds = match (&merge, &node) {
            (Merge::Aggregate { .. }, _) => true,
            (Merge::Concat, Node::Aggregate { op, .. }) => keeps_best(*op),
            (Merge::Concat, _) => false,
        };
        let batched = folds && distinct && local.selectors().len() == 1;
        self.fragments.push(Fragment { node, merge, frames: self.frames.clone(), labels, distinct, batched });
        Node::Fragment(self.fragments.len() - 1)
    }

    fn lower(&mut self, e: &Expr) -> Result<Node, EvalError> {
        let vector_like = matches!(e.value_type(), ValueType::Vector | ValueType::Matrix);
        if vector_like && is_series_local(e) {
            let node = self.lower_local(e)?;
            return Ok(self.fragment(node, Merge::Concat, e));
        }
        Ok(match e {
            Expr::Number(n) => Node::Number(*n),
            Expr::String(s) => Node::String(s.clone()),
            Expr::Paren(x) => self.lower(x)?,
            Expr::Neg(x) => Node::Neg(Box::new(self.lower(x)?)),
            Expr::Aggregate { op, expr, param, grouping, param_pos, expr_pos } => {
                if is_decomposable(*op) && is_series_local(expr) {
                    let merge = Merge::Aggregate { op: *op, grouping: grouping.clone(), expr_pos: *expr_pos };
                    let node = self.lower_local(expr)?;
                    return Ok(self.fragment(node, merge, expr));
                }
                if let Some(k) = param.as_deref().filter(|k| keeps_best(*op) && is_storage_free_scalar(k)) {
                    if is_series_local(expr) {
                        return self.best_on_shards(*op, expr, k, grouping, (*param_pos, *expr_pos));
                    }
                }
                Node::Aggregate {
                    op: *op,
                    expr: Box::new(self.lower(expr)?),
                    param: param.as_deref().map(|p| self.lower(p)).transpose()?.map(Box::new),
                    grouping: grouping.clone(),
                    param_pos: *param_pos,
                    expr_pos: *expr_pos,
                }
            }
            Expr::Binary { op, lhs, rhs, modifiers } => Node::Binary {
                op: *op,
                lhs: Box::new(self.lower(lhs)?),
                rhs: Box::new(self.lower(rhs)?),
                modifiers: modifiers.clone(),
            },
            Expr::Call { func, .. } if self.query_constant(func).is_some() => {
                Node::Number(self.query_constant(func).expect("checked by the guard"))
            }
            Expr::Call { func, args, .. } if func.name == "info" => self.info(args)?,
            Expr::Call { func, args, .. } if matches!(func.name, "absent" | "absent_over_time") => {
                Node::Absent { expr: Box::new(self.lower(&args[0])?), labels: absent_labels(&args[0]) }
            }
            Expr::Call { func, args, pos } => {
                check_function_supported(func)?;
                Node::Call {
                    func,
                    args: args.iter().map(|a| self.lower(a)).collect::<Result<_, _>>()?,
                    pos: pos.clone(),
                }
            }
            Expr::Subquery { expr, range, step, offset, at, dynamic } => {
                let frame = self.frame(*range, *step, *offset, *at, dynamic.as_deref())?;
                self.frames.push(frame);
                let inner = self.lower(expr);
                self.frames.pop();
                Node::Subquery { expr: Box::new(inner?), frame }
            }
            Expr::VectorSelector(_) | Expr::MatrixSelector { .. } => unreachable!("selectors are series-local"),
        })
    }
}

impl Planner {
    /// `info(base, {matchers})`: the base on its own; the candidate info series as a fragment
    /// selected at the times the base's first selector reads.
    fn info(&mut self, args: &[Expr]) -> Result<Node, EvalError> {
        let matchers = match args.get(1) {
            Some(Expr::VectorSelector(vs)) => InfoMatchers::new(&vs.matchers),
            _ => InfoMatchers::new(&[]),
        };
        let base = self.lower(&args[0])?;
        let (offset, at) =
            first_selector(&args[0]).map(|vs| self.selector(vs)).map_or((0, None), |vs| (vs.offset, vs.at));
        let selector = VectorSelector {
            name: None,
            matchers: matchers.selector(),
            offset,
            at,
            dynamic: None,
            stats_only: false,
            extension: None,
            pos: 0,
        };
        let infos = Node::SampleTimes(selector.clone());
        let infos = self.fragment(infos, Merge::Concat, &Expr::VectorSelector(selector));
        Ok(Node::Info { base: Box::new(base), infos: Box::new(infos), matchers })
    }
}

/// The labels `absent` reports: the equality matchers of a selector argument on names matched
/// only once, the metric name excluded.
fn absent_labels(arg: &Expr) -> Labels {
    let (Expr::VectorSelector(vs) | Expr::MatrixSelector { selector: vs, .. }) = arg.unparen() else {
        return Labels::default();
    };
    let once = |name: &str| vs.matchers.iter().filter(|m| m.name == name).count() == 1;
    Labels::from_pairs(
        vs.matchers
            .iter()
            .filter(|m| m.op == MatchOp::Equal && m.name != METRIC_NAME && once(&m.name))
            .map(|m| (m.name.clone(), m.value.clone())),
    )
}

/// `absent` and `absent_over_time` are planned as [`Node::Absent`] before this check.
fn check_function_supported(func: &Function) -> Result<(), EvalError> {
    if super::eval::is_implemented(func) {
        Ok(())
    } else {
        Err(unsupported(format!("function {:?}", func.name)))
    }
}

impl Planner {
    /// `topk`/`bottomk` of series-local `expr` with a `k` known without storage: each shard
    /// keeps its own best `k` per group and step, and the coordinator picks the best `k` of
    /// those. The best of all series at a step are among the best of their shards, so the
    /// coordinator sees every winner, and only `k` series per shard and group instead of all.
    fn best_on_shards(
        &mut self,
        op: AggregateOp,
        expr: &Expr,
        k: &Expr,
        grouping: &AggregateGrouping,
        (param_pos, expr_pos): (usize, usize),
    ) -> Result<Node, EvalError> {
        let on_shard = Node::Aggregate {
            op,
            expr: Box::new(self.lower_local(expr)?),
            param: Some(Box::new(self.lower_local(k)?)),
            grouping: grouping.clone(),
            param_pos,
            expr_pos,
        };
        let best_of_shards = self.fragment(on_shard, Merge::Concat, expr);
        Ok(Node::Aggregate {
            op,
            expr: Box::new(best_of_shards),
            param: Some(Box::new(self.lower(k)?)),
            grouping: grouping.clone(),
            param_pos,
            expr_pos,
        })
    }

    /// Lowers a series-local expression for evaluation on a shard.
    fn lower_local(&self, e: &Expr) -> Result<Node, EvalError> {
        Ok(match e {
            Expr::Number(n) => Node::Number(*n),
            Expr::String(s) => Node::String(s.clone()),
            Expr::VectorSelector(vs) => Node::Select(self.selector(vs)),
            Expr::Call { func, .. } if self.query_constant(func).is_some() => {
                Node::Number(self.query_constant(func).expect("checked by the guard"))
            }
            Expr::MatrixSelector { selector, range } => {
                Node::MatrixSelect { selector: self.selector(selector), range: self.range_of(selector, *range)? }
            }
            Expr::Call { func, args, pos } => {
                check_function_supported(func)?;
                Node::Call {
                    func,
                    args: args.iter().map(|a| self.lower_local(a)).collect::<Result<_, _>>()?,
                    pos: pos.clone(),
                }
            }
            Expr::Subquery { expr, range, step, offset, at, dynamic } => Node::Subquery {
                expr: Box::new(self.lower_local(expr)?),
                frame: self.frame(*range, *step, *offset, *at, dynamic.as_deref())?,
            },
            Expr::Paren(x) => self.lower_local(x)?,
            Expr::Neg(x) => Node::Neg(Box::new(self.lower_local(x)?)),
            Expr::Binary { op, lhs, rhs, modifiers } => Node::Binary {
                op: *op,
                lhs: Box::new(self.lower_local(lhs)?),
                rhs: Box::new(self.lower_local(rhs)?),
                modifiers: modifiers.clone(),
            },
            Expr::Aggregate { .. } => unreachable!("aggregations are never series-local"),
        })
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Number(n) => write!(f, "{}", Expr::Number(*n)),
            Node::String(s) => write!(f, "{s:?}"),
            Node::Select(vs) => write!(f, "{}", Expr::VectorSelector(vs.clone())),
            Node::SampleTimes(vs) => write!(f, "sample times of {}", Expr::VectorSelector(vs.clone())),
            Node::MatrixSelect { selector, range } => {
                write!(f, "{}", Expr::MatrixSelector { selector: selector.clone(), range: *range })
            }
            Node::Subquery { expr, frame } => {
                write!(
                    f,
                    "({expr})[{}:{}]",
                    format_duration(frame.range),
                    frame.step.map(format_duration).unwrap_or_default()
                )?;
                write_modifiers(f, frame.offset, &frame.at)
            }
            Node::Call { func, args, .. } => {
                let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
                write!(f, "{}({})", func.name, args.join(", "))
            }
            Node::Neg(x) => write!(f, "-{x}"),
            Node::Binary { op, lhs, rhs, modifiers } => {
                write!(f, "({lhs}) ")?;
                write_binary_op(f, *op, modifiers)?;
                write!(f, " ({rhs})")
            }
            Node::Aggregate { op, expr, param, grouping, .. } => {
                write!(f, "{}", op.name())?;
                write_grouping(f, grouping)?;
                match param {
                    Some(p) => write!(f, "({p}, {expr})"),
                    None => write!(f, "({expr})"),
                }
            }
            Node::Absent { expr, .. } => write!(f, "absent({expr})"),
            Node::Info { base, infos, .. } => write!(f, "info({base}, {infos})"),
            Node::Fragment(i) => write!(f, "$fragment{i}"),
        }
    }
}

fn write_grouping(f: &mut fmt::Formatter<'_>, g: &AggregateGrouping) -> fmt::Result {
    match g {
        AggregateGrouping::By(l) if l.is_empty() => Ok(()),
        AggregateGrouping::By(l) => write!(f, " by ({}) ", l.join(", ")),
        AggregateGrouping::Without(l) => write!(f, " without ({}) ", l.join(", ")),
    }
}

impl fmt::Display for Plan {
    /// The `explain` output: what runs on the coordinator and what on every shard.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "coordinator: {}", self.root)?;
        for (i, frag) in self.fragments.iter().enumerate() {
            let within = if frag.frames.is_empty() {
                String::new()
            } else {
                format!(" (within {} subquery frame(s))", frag.frames.len())
            };
            match &frag.merge {
                Merge::Concat => {
                    let batches = if frag.batched { ", keeping the best of each batch of series" } else { "" };
                    writeln!(f, "$fragment{i} on every shard{within}, concatenated{batches}: {}", frag.node)?
                }
                Merge::Aggregate { op, grouping, .. } => {
                    write!(f, "$fragment{i} on every shard{within}, partial {}", op.name())?;
                    write_grouping(f, grouping)?;
                    write!(f, " merged on the coordinator")?;
                    match &frag.labels {
                        Projection::Only(names) if names.is_empty() => write!(f, ", reading no labels")?,
                        Projection::Only(names) => write!(f, ", reading labels {}", names.join(", "))?,
                        Projection::All => {}
                    }
                    if frag.batched {
                        write!(f, ", folding series in batches")?;
                    }
                    writeln!(f, ": {}", frag.node)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::ParseOptions;

    fn explain(q: &str) -> String {
        let params = EvalParams::instant(0, 300_000);
        let expr = crate::promql::parse_with(q, ParseOptions::all()).unwrap();
        plan(&expr, &params).map(|p| p.to_string()).unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn selectors_and_series_functions_run_on_shards() {
        assert_eq!(
            explain("rate(foo[5m])"),
            "coordinator: $fragment0\n$fragment0 on every shard, concatenated: rate(foo[5m])\n"
        );
        assert_eq!(
            explain("foo * 2"),
            "coordinator: $fragment0\n$fragment0 on every shard, concatenated: (foo) * (2)\n"
        );
        assert_eq!(
            explain("abs(max_over_time(rate(x[1m])[5m:1m]))"),
            "coordinator: $fragment0\n$fragment0 on every shard, concatenated: abs(max_over_time((rate(x[1m]))[5m:1m]))\n"
        );
    }

    /// The labels the first fragment of `q` reads.
    fn labels_read(q: &str) -> Projection {
        let expr = crate::promql::parse_with(q, ParseOptions::all()).unwrap();
        plan(&expr, &EvalParams::instant(0, 300_000)).unwrap().fragments[0].labels.clone()
    }

    #[test]
    fn aggregations_by_a_few_labels_read_only_those_where_series_cannot_meet() {
        let only = |names: &[&str]| Projection::Only(names.iter().map(|n| n.to_string()).collect());
        assert_eq!(labels_read("sum by (status) (rate(http_requests_total[5m]))"), only(&["__name__", "status"]));
        assert_eq!(labels_read("count({__name__=~\".+\"})"), only(&[]));
        assert_eq!(labels_read("max by (job) (a)"), only(&["job"]));
        assert_eq!(labels_read("sum(a)"), only(&["__name__"]));
        assert_eq!(labels_read("sum(a smoothed)"), only(&["__name__"]));
        assert_eq!(labels_read("sum(rate(x{a=~\"b.\"}[5m]) * 2)"), only(&["__name__"]));
        // Dropping the names of several metrics can make two series equal: an error to report.
        assert_eq!(labels_read("sum(rate({__name__=~\"a|b\"}[5m]))"), Projection::All);
        assert_eq!(labels_read("sum by (x) (label_replace(a, \"x\", \"$1\", \"y\", \"(.*)\"))"), Projection::All);
        assert_eq!(labels_read("sum without (x) (a)"), Projection::All);
        assert_eq!(labels_read("topk(3, a)"), Projection::All);
        assert_eq!(labels_read("rate(a[5m])"), Projection::All);
    }

    #[test]
    fn fragments_whose_series_cannot_meet_are_not_checked_for_equal_label_sets() {
        let distinct = |q: &str| {
            let p = plan(&crate::promql::parse(q).unwrap(), &EvalParams::instant(0, 300_000)).unwrap();
            p.fragments.iter().map(|f| f.distinct).collect::<Vec<_>>()
        };
        assert_eq!(distinct("rate(a{b=\"c\"}[5m])"), [true]);
        assert_eq!(distinct("topk(3, -a)"), [true]);
        assert_eq!(distinct("{__name__=~\"a|b\"}"), [true]);
        assert_eq!(distinct("-{__name__=~\"a|b\"}"), [false]);
        assert_eq!(distinct("label_join(a, \"x\", \"\", \"y\")"), [false]);
        assert_eq!(distinct("sum(rate({__name__=~\"a|b\"}[5m])) / sum(a)"), [false, true]);
    }

    #[test]
    fn decomposable_aggregations_are_partial_on_shards() {
        assert_eq!(
            explain("sum by (job) (rate(foo[5m]))"),
            "coordinator: $fragment0\n$fragment0 on every shard, partial sum by (job)  merged on the coordinator, reading labels __name__, job, folding series in batches: rate(foo[5m])\n"
        );
        assert_eq!(
            explain("sum(a + b)"),
            "coordinator: sum(($fragment0) + ($fragment1))\n$fragment0 on every shard, concatenated: a\n$fragment1 on every shard, concatenated: b\n"
        );
        assert_eq!(
            explain("max_over_time(sum(a)[5m:])"),
            "coordinator: max_over_time(($fragment0)[5m:])\n$fragment0 on every shard (within 1 subquery frame(s)), partial sum merged on the coordinator, reading labels __name__, folding series in batches: a\n"
        );
    }

    #[test]
    fn topk_and_bottomk_keep_each_shards_best_then_the_best_of_those() {
        assert_eq!(
            explain("topk(3, rate(a[5m]))"),
            "coordinator: topk(3, $fragment0)\n$fragment0 on every shard, concatenated, keeping the best of each batch of series: topk(3, rate(a[5m]))\n"
        );
        assert_eq!(
            explain("bottomk by (job) (2 * 1, a)"),
            "coordinator: bottomk by (job) ((2) * (1), $fragment0)\n$fragment0 on every shard, concatenated, keeping the best of each batch of series: bottomk by (job) ((2) * (1), a)\n"
        );
        // Series that could collide once the name is gone are taken whole.
        assert_eq!(
            explain("topk(3, -{__name__=~\"a|b\"})"),
            "coordinator: topk(3, $fragment0)\n$fragment0 on every shard, concatenated: topk(3, -{__name__=~\"a|b\"})\n"
        );
    }

    #[test]
    fn cross_series_work_runs_on_the_coordinator() {
        assert_eq!(
            explain("topk(scalar(b), a)"),
            "coordinator: topk(scalar($fragment1), $fragment0)\n$fragment0 on every shard, concatenated: a\n\
             $fragment1 on every shard, concatenated: b\n"
        );
        assert_eq!(
            explain("absent(a)"),
            "coordinator: absent($fragment0)\n$fragment0 on every shard, concatenated: a\n"
        );
        assert_eq!(
            explain("info(rate(a[5m] offset 1m))"),
            "coordinator: info($fragment0, $fragment1)\n$fragment0 on every shard, concatenated: rate(a[5m] offset 1m)\n\
             $fragment1 on every shard, concatenated: sample times of {__name__=\"target_info\"} offset 1m\n"
        );
    }

    #[test]
    fn every_function_of_the_registry_is_planned() {
        let options = ParseOptions::all();
        let params = EvalParams::instant(0, 300_000);
        for f in crate::promql::functions::FUNCTIONS.iter() {
            let args: Vec<&str> = f
                .args
                .iter()
                .map(|a| match a {
                    ValueType::Vector => "a",
                    ValueType::Matrix => "a[1m]",
                    ValueType::Scalar => "1",
                    ValueType::String => "\"l\"",
                })
                .collect();
            let expr = crate::promql::parse_with(&format!("{}({})", f.name, args.join(", ")), options).unwrap();
            assert!(plan(&expr, &params).is_ok(), "{} is refused", f.name);
        }
    }
}
