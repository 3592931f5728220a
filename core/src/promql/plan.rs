//! The query planner: which parts of a query run on every shard, and which on the coordinator.
//!
//! A *series-local* expression computes each output series from exactly one input series, so
//! every shard can evaluate it on the series it owns and the coordinator only concatenates:
//! selectors, range functions over a selector, unary minus, and arithmetic or comparison with a
//! constant scalar. A decomposable aggregation (`sum`, `avg`, `count`, `min`, `max`) over a
//! series-local expression becomes a fragment too: shards return partial states per group and
//! step, the coordinator merges them. Everything else runs on the coordinator over merged
//! fragment outputs.
//!
//! Lowering also decides what is not evaluated yet: such a query fails here with an `execution`
//! error naming the feature, never with a wrong answer.

use std::fmt;

use super::ast::{
    write_binary_op, AggregateGrouping, AggregateOp, BinaryModifiers, BinaryOp, Expr, ValueType, VectorSelector,
};
use super::eval::EvalError;

/// The range functions the evaluator implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeFunction {
    Rate,
    Irate,
    Increase,
}

impl RangeFunction {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "rate" => RangeFunction::Rate,
            "irate" => RangeFunction::Irate,
            "increase" => RangeFunction::Increase,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            RangeFunction::Rate => "rate",
            RangeFunction::Irate => "irate",
            RangeFunction::Increase => "increase",
        }
    }
}

/// An evaluable node. Storage leaves (`Select`, `MatrixSelect`, `Range`) appear only inside
/// fragments; `Fragment` appears only in the coordinator's tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Number(f64),
    String(String),
    Select(VectorSelector),
    MatrixSelect { selector: VectorSelector, range: i64 },
    Range { func: RangeFunction, selector: VectorSelector, range: i64 },
    Neg(Box<Node>),
    Binary { op: BinaryOp, lhs: Box<Node>, rhs: Box<Node>, modifiers: BinaryModifiers },
    Aggregate { op: AggregateOp, expr: Box<Node>, grouping: AggregateGrouping },
    Fragment(usize),
}

/// How the coordinator combines the shards' outputs of a fragment.
#[derive(Debug, Clone, PartialEq)]
pub enum Merge {
    /// Outputs are disjoint sets of series: concatenate.
    Concat,
    /// Outputs are partial aggregation states: merge per group, then finalise.
    Aggregate { op: AggregateOp, grouping: AggregateGrouping },
}

/// A piece of the query every shard evaluates on its own series.
#[derive(Debug, Clone, PartialEq)]
pub struct Fragment {
    pub node: Node,
    pub merge: Merge,
}

/// A planned query: the coordinator's tree and the fragments it refers to.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub root: Node,
    pub fragments: Vec<Fragment>,
}

/// Plans an expression for evaluation across shards.
pub fn plan(expr: &Expr) -> Result<Plan, EvalError> {
    let mut fragments = Vec::new();
    let root = lower(expr, &mut fragments)?;
    Ok(Plan { root, fragments })
}

fn unsupported(what: impl Into<String>) -> EvalError {
    EvalError::Unsupported(what.into())
}

fn is_decomposable(op: AggregateOp) -> bool {
    matches!(op, AggregateOp::Sum | AggregateOp::Avg | AggregateOp::Count | AggregateOp::Min | AggregateOp::Max)
}

/// Whether `e` is a scalar computable without storage.
fn is_constant_scalar(e: &Expr) -> bool {
    match e {
        Expr::Number(_) => true,
        Expr::Paren(x) | Expr::Neg(x) => is_constant_scalar(x),
        Expr::Binary { lhs, rhs, .. } => is_constant_scalar(lhs) && is_constant_scalar(rhs),
        _ => false,
    }
}

/// Whether each output series of `e` depends on exactly one input series.
fn is_series_local(e: &Expr) -> bool {
    match e {
        Expr::VectorSelector(_) | Expr::MatrixSelector { .. } => true,
        Expr::Call { func, args } => {
            RangeFunction::from_name(func.name).is_some()
                && matches!(args.first().map(Expr::unparen), Some(Expr::MatrixSelector { .. }))
        }
        Expr::Paren(x) | Expr::Neg(x) => x.value_type() == ValueType::Vector && is_series_local(x),
        Expr::Binary { op, lhs, rhs, modifiers } => {
            !op.is_set()
                && modifiers.matching.is_none()
                && ((is_series_local(lhs) && lhs.value_type() == ValueType::Vector && is_constant_scalar(rhs))
                    || (is_series_local(rhs) && rhs.value_type() == ValueType::Vector && is_constant_scalar(lhs)))
        }
        _ => false,
    }
}

fn lower(e: &Expr, fragments: &mut Vec<Fragment>) -> Result<Node, EvalError> {
    let vector_like = matches!(e.value_type(), ValueType::Vector | ValueType::Matrix);
    if vector_like && is_series_local(e) {
        fragments.push(Fragment { node: lower_local(e)?, merge: Merge::Concat });
        return Ok(Node::Fragment(fragments.len() - 1));
    }
    match e {
        Expr::Number(n) => Ok(Node::Number(*n)),
        Expr::String(s) => Ok(Node::String(s.clone())),
        Expr::Paren(x) => lower(x, fragments),
        Expr::Neg(x) => Ok(Node::Neg(Box::new(lower(x, fragments)?))),
        Expr::Aggregate { op, expr, grouping, .. } => {
            if !is_decomposable(*op) {
                return Err(unsupported(format!("aggregation {:?}", op.name())));
            }
            if is_series_local(expr) {
                let merge = Merge::Aggregate { op: *op, grouping: grouping.clone() };
                fragments.push(Fragment { node: lower_local(expr)?, merge });
                return Ok(Node::Fragment(fragments.len() - 1));
            }
            Ok(Node::Aggregate { op: *op, expr: Box::new(lower(expr, fragments)?), grouping: grouping.clone() })
        }
        Expr::Binary { op, lhs, rhs, modifiers } => {
            check_binary_supported(*op, modifiers)?;
            Ok(Node::Binary {
                op: *op,
                lhs: Box::new(lower(lhs, fragments)?),
                rhs: Box::new(lower(rhs, fragments)?),
                modifiers: modifiers.clone(),
            })
        }
        Expr::Call { func, .. } => Err(unsupported(format!("function {:?}", func.name))),
        Expr::Subquery { .. } => Err(unsupported("subqueries")),
        Expr::VectorSelector(_) | Expr::MatrixSelector { .. } => unreachable!("selectors are series-local"),
    }
}

fn check_binary_supported(op: BinaryOp, modifiers: &BinaryModifiers) -> Result<(), EvalError> {
    if op.is_set() {
        return Err(unsupported(format!("set operator {:?}", op.symbol())));
    }
    if modifiers.group.is_some() {
        return Err(unsupported("group_left/group_right (many-to-one matching)"));
    }
    Ok(())
}

/// Lowers a series-local expression for evaluation on a shard.
fn lower_local(e: &Expr) -> Result<Node, EvalError> {
    Ok(match e {
        Expr::Number(n) => Node::Number(*n),
        Expr::VectorSelector(vs) => Node::Select(vs.clone()),
        Expr::MatrixSelector { selector, range } => Node::MatrixSelect { selector: selector.clone(), range: *range },
        Expr::Call { func, args } => {
            let f =
                RangeFunction::from_name(func.name).ok_or_else(|| unsupported(format!("function {:?}", func.name)))?;
            match args.first().map(Expr::unparen) {
                Some(Expr::MatrixSelector { selector, range }) => {
                    Node::Range { func: f, selector: selector.clone(), range: *range }
                }
                _ => return Err(unsupported(format!("{} over anything but a range selector", func.name))),
            }
        }
        Expr::Paren(x) => lower_local(x)?,
        Expr::Neg(x) => Node::Neg(Box::new(lower_local(x)?)),
        Expr::Binary { op, lhs, rhs, modifiers } => {
            check_binary_supported(*op, modifiers)?;
            Node::Binary {
                op: *op,
                lhs: Box::new(lower_local(lhs)?),
                rhs: Box::new(lower_local(rhs)?),
                modifiers: modifiers.clone(),
            }
        }
        other => unreachable!("not series-local: {other}"),
    })
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Number(n) => write!(f, "{}", Expr::Number(*n)),
            Node::String(s) => write!(f, "{s:?}"),
            Node::Select(vs) => write!(f, "{}", Expr::VectorSelector(vs.clone())),
            Node::MatrixSelect { selector, range } => {
                write!(f, "{}", Expr::MatrixSelector { selector: selector.clone(), range: *range })
            }
            Node::Range { func, selector, range } => {
                write!(f, "{}({})", func.name(), Expr::MatrixSelector { selector: selector.clone(), range: *range })
            }
            Node::Neg(x) => write!(f, "-{x}"),
            Node::Binary { op, lhs, rhs, modifiers } => {
                write!(f, "({lhs}) ")?;
                write_binary_op(f, *op, modifiers)?;
                write!(f, " ({rhs})")
            }
            Node::Aggregate { op, expr, grouping } => {
                write!(f, "{}", op.name())?;
                write_grouping(f, grouping)?;
                write!(f, "({expr})")
            }
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
            match &frag.merge {
                Merge::Concat => writeln!(f, "$fragment{i} on every shard, concatenated: {}", frag.node)?,
                Merge::Aggregate { op, grouping } => {
                    write!(f, "$fragment{i} on every shard, partial {}", op.name())?;
                    write_grouping(f, grouping)?;
                    writeln!(f, " merged on the coordinator: {}", frag.node)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::parse;

    fn explain(q: &str) -> String {
        plan(&parse(q).unwrap()).map(|p| p.to_string()).unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn selectors_and_range_functions_run_on_shards() {
        assert_eq!(
            explain("rate(foo[5m])"),
            "coordinator: $fragment0\n$fragment0 on every shard, concatenated: rate(foo[5m])\n"
        );
        assert_eq!(
            explain("foo * 2"),
            "coordinator: $fragment0\n$fragment0 on every shard, concatenated: (foo) * (2)\n"
        );
    }

    #[test]
    fn decomposable_aggregations_are_partial_on_shards() {
        assert_eq!(
            explain("sum by (job) (rate(foo[5m]))"),
            "coordinator: $fragment0\n$fragment0 on every shard, partial sum by (job)  merged on the coordinator: rate(foo[5m])\n"
        );
        assert_eq!(
            explain("sum(a + b)"),
            "coordinator: sum(($fragment0) + ($fragment1))\n$fragment0 on every shard, concatenated: a\n$fragment1 on every shard, concatenated: b\n"
        );
    }

    #[test]
    fn unsupported_features_are_refused_at_plan_time() {
        assert_eq!(explain("a and b"), "not supported yet: set operator \"and\"");
        assert_eq!(explain("abs(a)"), "not supported yet: function \"abs\"");
        assert_eq!(explain("rate(a[5m:1m])"), "not supported yet: function \"rate\"");
        assert_eq!(explain("topk(3, a)"), "not supported yet: aggregation \"topk\"");
        assert_eq!(explain("a[5m:1m]"), "not supported yet: subqueries");
    }
}
