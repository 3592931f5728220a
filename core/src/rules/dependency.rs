//! Which rules of a group read what the rules before them write (upstream's dependency map), and
//! the batches that follow from it: rules of one batch are independent of each other and may be
//! evaluated at once (`--enable-feature=concurrent-rule-eval`), while a rule that reads another
//! rule's output is evaluated after it, so it still sees that output.
//!
//! As upstream: a rule depends on an earlier rule of the group when one of its selectors' metric
//! name matches that rule's name (for an alerting rule, also `ALERTS`/`ALERTS_FOR_STATE` with a
//! matching or absent `alertname`). A selector without a metric name could read anything, so one
//! anywhere in the group makes every rule run alone, in order.

use std::collections::HashMap;

use crate::labels::{MatchOp, Matcher};
use crate::promql::ast::VectorSelector;
use crate::promql::Expr;

use super::group::RuleState;

/// The batches of rule indexes to evaluate in order, as upstream splits a group: first every
/// rule that reads no other rule, then one at a time each rule that both reads and is read, then
/// every rule that reads others and that no rule reads.
pub(super) fn batches(rules: &[RuleState]) -> Vec<Vec<usize>> {
    let Some(reads) = dependencies(rules) else {
        return (0..rules.len()).map(|i| vec![i]).collect();
    };
    let mut read = vec![false; rules.len()];
    reads.iter().flatten().for_each(|&j| read[j] = true);
    let (mut first, mut middle, mut last) = (Vec::new(), Vec::new(), Vec::new());
    for (i, r) in reads.iter().enumerate() {
        if r.is_empty() {
            first.push(i);
        } else if read[i] {
            middle.push(vec![i]);
        } else {
            last.push(i);
        }
    }
    [first].into_iter().chain(middle).chain([last]).filter(|b| !b.is_empty()).collect()
}

/// For each rule, the earlier rules whose output it reads; `None` when a selector without a
/// metric name makes that unknowable.
fn dependencies(rules: &[RuleState]) -> Option<Vec<Vec<usize>>> {
    if rules.len() <= 1 {
        return Some(vec![Vec::new(); rules.len()]);
    }
    let mut reads = Vec::with_capacity(rules.len());
    // The earlier rules by the name they write: a selector naming one metric looks it up
    // instead of going over every earlier rule (a group may hold a hundred thousand).
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, rule) in rules.iter().enumerate() {
        let mut found = Vec::new();
        selectors(&rule.expr, &mut found);
        let mut earlier = Vec::new();
        for selector in found {
            let name = name_matcher(selector)?;
            let alerts = name.matches("ALERTS") || name.matches("ALERTS_FOR_STATE");
            if name.op == MatchOp::Equal && !alerts {
                earlier.extend(by_name.get(name.value.as_str()).into_iter().flatten());
                continue;
            }
            let alertname = selector.matchers.iter().find(|m| m.name == "alertname");
            for (j, other) in rules[..i].iter().enumerate() {
                let other_name = other.rule.name();
                let reads_alerts =
                    alerts && other.rule.is_alerting() && alertname.is_none_or(|m| m.matches(other_name));
                if name.matches(other_name) || reads_alerts {
                    earlier.push(j);
                }
            }
        }
        earlier.sort_unstable();
        earlier.dedup();
        reads.push(earlier);
        by_name.entry(rule.rule.name()).or_default().push(i);
    }
    Some(reads)
}

/// The selector's metric name matcher: its name, or else its first `__name__` matcher.
fn name_matcher(selector: &VectorSelector) -> Option<Matcher> {
    match &selector.name {
        Some(name) => Some(Matcher::equal("__name__", name.clone())),
        None => selector.matchers.iter().find(|m| m.name == "__name__").cloned(),
    }
}

/// Every vector selector of `expr` (those of range selectors included).
fn selectors<'a>(expr: &'a Expr, out: &mut Vec<&'a VectorSelector>) {
    match expr {
        Expr::Number(_) | Expr::String(_) => {}
        Expr::VectorSelector(s) | Expr::MatrixSelector { selector: s, .. } => out.push(s),
        Expr::Subquery { expr, .. } | Expr::Neg(expr) | Expr::Paren(expr) => selectors(expr, out),
        Expr::Binary { lhs, rhs, .. } => {
            selectors(lhs, out);
            selectors(rhs, out);
        }
        Expr::Aggregate { expr, param, .. } => {
            selectors(expr, out);
            if let Some(param) = param {
                selectors(param, out);
            }
        }
        Expr::Call { args, .. } => args.iter().for_each(|a| selectors(a, out)),
    }
}

#[cfg(test)]
mod tests {
    use crate::labels::NameValidation;
    use crate::promql::ParseOptions;
    use crate::rules::{GroupDefaults, GroupState, RuleFile};

    /// The batches of a group of `(kind, name, expr)` rules.
    fn batches(rules: &[(&str, &str, &str)]) -> Vec<Vec<usize>> {
        let mut text = String::from("groups:\n  - name: g\n    rules:\n");
        for (kind, name, expr) in rules {
            text.push_str(&format!("      - {kind}: {name}\n        expr: '{expr}'\n"));
        }
        let file = RuleFile::parse(&text, "f.yml", ParseOptions::default(), NameValidation::Utf8).unwrap();
        let defaults = GroupDefaults { interval: 1000, query_offset: 0 };
        let group = GroupState::new(&file.groups[0], "f.yml", defaults, ParseOptions::default()).unwrap();
        super::batches(&group.rules)
    }

    #[test]
    fn independent_rules_share_a_batch_and_readers_come_after_what_they_read() {
        let rules = [
            ("record", "a", "sum(x)"),
            ("record", "b", "sum(y)"),
            ("record", "c", "a * 2"),
            ("record", "d", "rate(c[5m])"),
            ("record", "e", "b + 1"),
        ];
        // a, b read no rule; c reads a and is read by d; d and e read rules and are not read.
        assert_eq!(batches(&rules), vec![vec![0, 1], vec![2], vec![3, 4]]);
    }

    #[test]
    fn alerts_are_read_through_alerts_series_by_alertname() {
        let rules = [
            ("alert", "Down", "up == 0"),
            ("alert", "Other", "up == 2"),
            ("record", "down_count", "count(ALERTS{alertname=\"Down\"})"),
            ("record", "any_count", "count(ALERTS_FOR_STATE)"),
        ];
        assert_eq!(batches(&rules), vec![vec![0, 1], vec![2, 3]]);
        let rules = [("record", "a", "sum(x)"), ("alert", "Other", "up == 2"), ("record", "n", "count(ALERTS)")];
        assert_eq!(batches(&rules), vec![vec![0, 1], vec![2]]);
    }

    #[test]
    fn a_rule_later_in_the_group_is_not_a_dependency() {
        // `a` reads `b`, written after it: it sees the previous evaluation's, as when sequential.
        assert_eq!(batches(&[("record", "a", "b"), ("record", "b", "sum(x)")]), vec![vec![0, 1]]);
    }

    #[test]
    fn a_selector_without_a_metric_name_makes_every_rule_run_alone() {
        let rules = [("record", "a", "sum(x)"), ("record", "b", "sum({job=\"api\"})"), ("record", "c", "sum(y)")];
        assert_eq!(batches(&rules), vec![vec![0], vec![1], vec![2]]);
        // A regular expression on the name is a name: it is matched against the rules' names.
        let rules = [("record", "job:a", "sum(x)"), ("record", "b", "sum({__name__=~\"job:.*\"})")];
        assert_eq!(batches(&rules), vec![vec![0], vec![1]]);
    }
}
