//! Which selectors read histograms only for their count and sum, as upstream decides it
//! (`detectHistogramStatsDecoding`): those under `histogram_count`, `histogram_sum` or
//! `histogram_avg`, with no subquery, `histogram_quantile(s)`, `histogram_fraction` or trim
//! operator above them. Upstream reads such selectors through an iterator that detects
//! counter resets as it goes, so their histograms carry "counter reset" hints where other
//! reads see a hint-less first sample of a new chunk; the evaluator does the same with the
//! hints the head keeps (see `eval::selector`).

use super::ast::Expr;

/// What the functions above a node make of the histograms read below it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Above {
    Nothing,
    CountOrSum,
    /// A function or operator that needs the buckets, or a subquery: never stats only.
    Buckets,
}

/// Marks every selector of `expr` that reads histograms for their statistics only.
pub fn mark(expr: &mut Expr) {
    walk(expr, Above::Nothing);
}

fn walk(e: &mut Expr, above: Above) {
    match e {
        Expr::VectorSelector(vs) => vs.stats_only = above == Above::CountOrSum,
        Expr::MatrixSelector { selector, .. } => selector.stats_only = above == Above::CountOrSum,
        Expr::Subquery { expr, .. } => walk(expr, Above::Buckets),
        Expr::Neg(x) | Expr::Paren(x) => walk(x, above),
        Expr::Binary { op, lhs, rhs, .. } => {
            let above = if op.is_trim() { Above::Buckets } else { above };
            walk(lhs, above);
            walk(rhs, above);
        }
        Expr::Aggregate { expr, param, .. } => {
            walk(expr, above);
            if let Some(p) = param {
                walk(p, above);
            }
        }
        Expr::Call { func, args, .. } => {
            let above = match (func.name, above) {
                (_, Above::Buckets) => Above::Buckets,
                ("histogram_count" | "histogram_sum" | "histogram_avg", _) => Above::CountOrSum,
                ("histogram_quantile" | "histogram_quantiles" | "histogram_fraction", _) => Above::Buckets,
                _ => above,
            };
            args.iter_mut().for_each(|a| walk(a, above));
        }
        Expr::Number(_) | Expr::String(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::promql::{parse, Expr};

    fn marked(q: &str) -> Vec<bool> {
        parse(q).unwrap().selectors().iter().map(|s| s.stats_only).collect()
    }

    #[test]
    fn selectors_under_count_or_sum_alone_read_statistics_only() {
        assert_eq!(marked("histogram_count(sum(rate(h[5m])))"), [true]);
        assert_eq!(marked("histogram_avg(h) + h"), [false, true]);
        assert_eq!(marked("histogram_count(rate(h[5m:1m]))"), [false]);
        assert_eq!(marked("histogram_sum(h >/ 1)"), [false]);
        assert_eq!(marked("histogram_quantile(0.5, histogram_count(h))"), [false]);
        assert!(matches!(parse("h").unwrap(), Expr::VectorSelector(vs) if !vs.stats_only));
    }
}
