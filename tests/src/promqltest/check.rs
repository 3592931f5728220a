//! Comparing a result with an eval's expectations (§5.3, §7, §8).

use pyrite_core::histogram::FloatHistogram;
use pyrite_core::labels::Labels;
use pyrite_core::promql::EvalError;
use pyrite_core::series_notation::{timed, Point};
use pyrite_core::value::is_stale_nan;

use std::collections::BTreeMap;

use super::script::{Annotations, Eval, Fail, SeriesPoints};

/// `almost.Equal` with ε = 1e-6 (§8).
pub fn almost_equal(a: f64, b: f64) -> bool {
    const EPSILON: f64 = 0.000001;
    const MIN_NORMAL: f64 = 2.2250738585072014e-308;
    if is_stale_nan(a) || is_stale_nan(b) {
        return is_stale_nan(a) && is_stale_nan(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    let sum = a.abs() + b.abs();
    if a == 0.0 || b == 0.0 || sum < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / sum.min(f64::MAX) < EPSILON
}

/// Whether `got` is what `want` expects: floats by §8, histograms by §9 (their counter-reset
/// hints only if `hints`, the expectation states them).
pub fn point_matches(want: &Point, got: &Point, hints: bool) -> bool {
    match (want, got) {
        (Point::Value(a), Point::Value(b)) => almost_equal(*a, *b),
        (Point::Histogram(a), Point::Histogram(b)) => histograms_match(a, b, hints),
        _ => false,
    }
}

/// §9: both compacted, then schema, zero threshold and custom bounds exactly, bucket positions
/// exactly, and every count and the sum by §8.
fn histograms_match(want: &FloatHistogram, got: &FloatHistogram, hints: bool) -> bool {
    let (mut a, mut b) = (want.clone(), got.clone());
    a.compact(0);
    b.compact(0);
    let counts_match = |x: &[f64], y: &[f64]| x.len() == y.len() && x.iter().zip(y).all(|(x, y)| almost_equal(*x, *y));
    a.schema == b.schema
        && a.zero_threshold == b.zero_threshold
        && a.custom_values == b.custom_values
        && a.positive_spans == b.positive_spans
        && a.negative_spans == b.negative_spans
        && almost_equal(a.count, b.count)
        && almost_equal(a.sum, b.sum)
        && almost_equal(a.zero_count, b.zero_count)
        && counts_match(&a.positive_buckets, &b.positive_buckets)
        && counts_match(&a.negative_buckets, &b.negative_buckets)
        && (!hints || a.counter_reset_hint == b.counter_reset_hint)
}

fn matches(cond: &Fail, text: &str) -> Result<bool, String> {
    Ok(match cond {
        Fail::Any => true,
        Fail::Message(m) => text == m,
        Fail::Regex(r) => regex::Regex::new(r).map_err(|e| format!("bad regex in script: {e}"))?.is_match(text),
    })
}

/// Checks the annotations of one kind against the eval's expectations (§7.2).
/// `got` maps each annotation's message to its position, which the v3.14 scripts do not check.
pub fn check_annotations(kind: &str, want: &Annotations, got: &BTreeMap<String, usize>) -> Result<(), String> {
    let got: Vec<&String> = got.keys().collect();
    if want.forbidden && !got.is_empty() {
        return Err(format!("expected no {kind} annotations, got {got:?}"));
    }
    if (want.any || !want.expected.is_empty()) && got.is_empty() {
        return Err(format!("expected {kind} annotations, got none"));
    }
    for cond in &want.expected {
        if !got.iter().try_fold(false, |found, &g| Ok::<_, String>(found || matches(cond, g)?))? {
            return Err(format!("no {kind} annotation matches {cond:?}; got {got:?}"));
        }
    }
    if !want.expected.is_empty() {
        for &g in &got {
            if !want.expected.iter().try_fold(false, |found, c| Ok::<_, String>(found || matches(c, g)?))? {
                return Err(format!("unexpected {kind} annotation {g:?}"));
            }
        }
    }
    Ok(())
}

/// Checks an outcome against what the eval expects of its failure.
pub fn check_failure<T>(eval: &Eval, outcome: &Result<T, EvalError>) -> Result<bool, String> {
    match (&eval.fail, outcome) {
        (None, Err(e)) => Err(format!("unexpected error: {e}")),
        (Some(_), Ok(_)) => Err("expected an error, got a result".into()),
        (Some(Fail::Any), Err(_)) => Ok(true),
        (Some(Fail::Message(m)), Err(e)) => {
            if e.to_string() == *m {
                Ok(true)
            } else {
                Err(format!("expected error {m:?}, got {:?}", e.to_string()))
            }
        }
        (Some(Fail::Regex(r)), Err(e)) => match regex::Regex::new(r) {
            Ok(re) if re.is_match(&e.to_string()) => Ok(true),
            Ok(_) => Err(format!("error {:?} does not match /{r}/", e.to_string())),
            Err(x) => Err(format!("bad regex in script: {x}")),
        },
        (None, Ok(_)) => Ok(false),
    }
}

/// Compares an instant vector (label set → value) with the expected series.
pub fn check_vector(eval: &Eval, got: &[(Labels, Point)]) -> Result<(), String> {
    if eval.scalar.is_some() {
        return Err("expected a scalar, got a vector".into());
    }
    if got.len() != eval.series.len() {
        return Err(format!("expected {} series, got {}: {}", eval.series.len(), got.len(), show(got)));
    }
    for (i, (labels, value)) in got.iter().enumerate() {
        let position = if eval.ordered {
            (eval.series[i].0 == *labels).then_some(i)
        } else {
            eval.series.iter().position(|(l, _)| l == labels)
        };
        let Some(pos) = position else {
            return Err(format!("unexpected series {labels} = {value:?} (ordered: {})", eval.ordered));
        };
        match eval.series[pos].1.as_slice() {
            [want] if point_matches(want, value, eval.hints_stated) => {}
            want => return Err(format!("{labels}: expected {want:?}, got {value:?}")),
        }
    }
    Ok(())
}

/// Compares a matrix (series → points at step timestamps) with the expected series, whose value
/// `i` belongs to `from + i * step`.
pub fn check_matrix(eval: &Eval, got: &[SeriesPoints], from: i64, step: i64) -> Result<(), String> {
    if eval.scalar.is_some() {
        return Err("expected a scalar, got a matrix".into());
    }
    if got.windows(2).any(|w| w[0].0 > w[1].0) {
        return Err("matrix series are not sorted by labels".into());
    }
    if got.len() != eval.series.len() {
        let names: Vec<String> = got.iter().map(|(l, _)| l.to_string()).collect();
        return Err(format!("expected {} series, got {}: {names:?}", eval.series.len(), got.len()));
    }
    for (labels, points) in got {
        let Some((_, want)) = eval.series.iter().find(|(l, _)| l == labels) else {
            return Err(format!("unexpected series {labels}"));
        };
        let expected = timed(want.clone(), from, step);
        if expected.len() != points.len()
            || expected.iter().zip(points).any(|(e, g)| e.0 != g.0 || !point_matches(&e.1, &g.1, eval.hints_stated))
        {
            return Err(format!("{labels}: expected {expected:?}, got {points:?}"));
        }
    }
    Ok(())
}

pub fn check_scalar(eval: &Eval, got: f64) -> Result<(), String> {
    match eval.scalar {
        Some(want) if almost_equal(want, got) => Ok(()),
        Some(want) => Err(format!("expected scalar {want}, got {got}")),
        None => Err(format!("expected a vector, got scalar {got}")),
    }
}

fn show(v: &[(Labels, Point)]) -> String {
    v.iter().map(|(l, x)| format!("{l} {x:?}")).collect::<Vec<_>>().join("; ")
}
