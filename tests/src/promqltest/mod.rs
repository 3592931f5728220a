//! A runner for upstream's promqltest scripts, executed against Pyrite's engine.
//!
//! Each eval is run as upstream's v3.14.0 runner runs it (FORMAT.md §5.5): the query itself;
//! for instant evals, the step-invariance runs with `@ t` added at five other times; and the
//! range-mode cross-check of each run. A file is replayed once per shard count, and an eval
//! passes only if it passes on every shard count with identical results.
//!
//! Evals of a category Pyrite does not support yet are skipped, per `EVALS.tsv`, and counted
//! as skipped, never as passed: those of the feature-flag category run only if every feature
//! they need is one Pyrite has.

pub mod check;
pub mod engine;
mod nhcb;
pub mod script;

use std::collections::HashMap;

use pyrite_core::labels::Labels;
use pyrite_core::promql::ast::At;
use pyrite_core::promql::{Annotations, EvalParams, Expr, QueryLimits, QueryResult, StepSeries, Value, BATCH_SLOTS};
use pyrite_core::series_notation::Point;
use pyrite_core::value::SeriesSamples;

use check::{check_failure, check_matrix, check_scalar, check_vector};
use engine::{parse, Engine, LOOKBACK_MS};
use script::{Command, Eval, EvalKind, SeriesPoints};

/// The outcome of one eval.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Passed,
    Failed(String),
    Skipped(String),
}

/// Categories of `EVALS.tsv` that are run; the others are skipped but for [`RUN_FEATURES`].
pub const RUN_CATEGORIES: [&str; 3] = ["core", "experimental-fn", "native-histogram"];

/// The gating tags of feature flags (INVENTORY.md §2) that Pyrite implements: an eval of the
/// feature-flag category runs if these are all the feature tags it has (`anchored`/`smoothed`).
pub const RUN_FEATURES: [&str; 1] = ["XRANGE"];

/// The gating tags of feature flags other than native histograms and experimental functions.
const FEATURE_TAGS: [&str; 5] = ["XRANGE", "FILL", "ST", "DNR", "TU"];

/// How `EVALS.tsv` classifies an eval.
#[derive(Debug, Clone, PartialEq)]
pub struct Class {
    pub category: String,
    pub tags: Vec<String>,
}

impl Class {
    /// Whether evals of this class are run.
    pub fn runs(&self) -> bool {
        let features = || self.tags.iter().filter(|t| FEATURE_TAGS.contains(&t.as_str()));
        let supported = |t: &String| RUN_FEATURES.contains(&t.as_str());
        RUN_CATEGORIES.contains(&self.category.as_str())
            || (self.category == "feature-flag" && features().any(supported) && features().all(supported))
    }
}

/// `(file, line) → class` from EVALS.tsv.
pub fn categories(tsv: &str) -> HashMap<(String, usize), Class> {
    tsv.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let tags = f.get(4)?.split(',').filter(|t| !t.is_empty()).map(String::from).collect();
            Some(((f.first()?.to_string(), f.get(1)?.parse().ok()?), Class { category: f.get(3)?.to_string(), tags }))
        })
        .collect()
}

/// Functions whose result depends on the evaluation time itself: no step-invariance runs.
const TIME_DEPENDENT: [&str; 15] = [
    "time",
    "timestamp",
    "predict_linear",
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "start",
    "end",
    "step",
    "range",
];

fn calls_any(e: &Expr, names: &[&str]) -> bool {
    match e {
        Expr::Call { func, args, .. } => names.contains(&func.name) || args.iter().any(|a| calls_any(a, names)),
        Expr::Neg(x) | Expr::Paren(x) => calls_any(x, names),
        Expr::Subquery { expr, .. } => calls_any(expr, names),
        Expr::Binary { lhs, rhs, .. } => calls_any(lhs, names) || calls_any(rhs, names),
        Expr::Aggregate { expr, param, .. } => {
            calls_any(expr, names) || param.as_deref().is_some_and(|p| calls_any(p, names))
        }
        _ => false,
    }
}

/// Adds `@ t` to every selector and subquery without one that is not inside a subquery (§5.5).
fn add_at(e: &mut Expr, t: i64) {
    match e {
        Expr::VectorSelector(vs) | Expr::MatrixSelector { selector: vs, .. } => {
            vs.at.get_or_insert(At::Timestamp(t));
        }
        Expr::Subquery { at, .. } => {
            at.get_or_insert(At::Timestamp(t));
        }
        Expr::Neg(x) | Expr::Paren(x) => add_at(x, t),
        Expr::Binary { lhs, rhs, .. } => {
            add_at(lhs, t);
            add_at(rhs, t);
        }
        Expr::Aggregate { expr, param, .. } => {
            add_at(expr, t);
            if let Some(p) = param {
                add_at(p, t);
            }
        }
        Expr::Call { args, .. } => args.iter_mut().for_each(|a| add_at(a, t)),
        Expr::Number(_) | Expr::String(_) => {}
    }
}

/// What series `s` holds at step `i`: a float, a histogram, or nothing.
fn step_point(s: &StepSeries, i: usize) -> Option<Point> {
    match (s.values[i], s.histogram(i)) {
        (Some(v), _) => Some(Point::Value(v)),
        (None, Some(h)) => Some(Point::Histogram(h.clone())),
        (None, None) => None,
    }
}

/// Every series' point at step `i`, for the series that have one.
fn vector_at(series: &[StepSeries], i: usize) -> Vec<(Labels, Point)> {
    series.iter().filter_map(|s| Some((s.labels.clone(), step_point(s, i)?))).collect()
}

fn matrix_points(value: Value, from: i64, step: i64) -> Result<Vec<SeriesPoints>, String> {
    match value {
        Value::Vector(series) => Ok(series
            .iter()
            .map(|s| {
                let points =
                    (0..s.values.len()).filter_map(|i| Some((from + i as i64 * step, step_point(s, i)?))).collect();
                (s.labels.clone(), points)
            })
            .filter(|(_, p): &SeriesPoints| !p.is_empty())
            .collect()),
        Value::Scalar(v) => Ok(vec![(
            Labels::default(),
            v.iter().enumerate().map(|(i, x)| (from + i as i64 * step, Point::Value(*x))).collect(),
        )]),
        other => Err(format!("a range query returned {other:?}")),
    }
}

/// A range vector's series as points, floats and histograms in time order.
fn samples_points(series: &[SeriesSamples]) -> Vec<SeriesPoints> {
    series
        .iter()
        .map(|s| {
            let floats = s.samples.iter().map(|x| (x.t, Point::Value(x.v)));
            let histograms = s.histograms.iter().map(|x| (x.t, Point::Histogram(x.h.clone())));
            let mut points: Vec<(i64, Point)> = floats.chain(histograms).collect();
            points.sort_by_key(|(t, _)| *t);
            (s.labels.clone(), points)
        })
        .collect()
}

fn check_annotations(eval: &Eval, got: &Annotations) -> Result<(), String> {
    check::check_annotations("warn", &eval.warn, &got.warnings)?;
    check::check_annotations("info", &eval.info, &got.infos)
}

/// Runs the query and checks its failure and annotation expectations; `None` when it failed as
/// the eval expects (nothing more is checked then).
fn run_checked(engine: &Engine, eval: &Eval, expr: &Expr, params: EvalParams) -> Result<Option<Value>, String> {
    let outcome = engine.eval(expr, params);
    if check_failure(eval, &outcome)? {
        return Ok(None);
    }
    let QueryResult { value, annotations } = outcome.map_err(|e| e.to_string())?;
    check_annotations(eval, &annotations)?;
    Ok(Some(value))
}

/// One instant run at `t` with its range-mode cross-check; returns a fingerprint of the result.
fn run_instant(engine: &Engine, eval: &Eval, expr: &Expr, t: i64) -> Result<String, String> {
    let at = eval.range_vector.map(|(_, end, _)| end).unwrap_or(t);
    let Some(value) = run_checked(engine, eval, expr, EvalParams::instant(at, LOOKBACK_MS))? else {
        return Ok("expected failure".into());
    };
    let fingerprint = format!("{value:?}");
    match (&value, &eval.range_vector, &eval.string) {
        (Value::Range(r), Some((from, _, step)), _) => {
            return check_matrix(eval, &samples_points(&r.first_window()), *from, *step).map(|_| fingerprint);
        }
        (Value::String(s), _, Some(want)) => {
            return if s == want { Ok(fingerprint) } else { Err(format!("expected string {want:?}, got {s:?}")) };
        }
        (_, Some(_), _) => return Err(format!("expected a range vector, got {value:?}")),
        (_, _, Some(_)) => return Err(format!("expected a string, got {value:?}")),
        (Value::Vector(series), None, None) => check_vector(eval, &vector_at(series, 0))?,
        (Value::Scalar(v), None, None) => check_scalar(eval, v[0])?,
        (other, None, None) => return Err(format!("unexpected result {other:?}")),
    }
    // Range-mode cross-check: the same query over t-1m..t+1m must agree at t.
    let text = expr.to_string();
    if ["start()", "end()", "range()", "step()"].iter().any(|f| text.contains(f)) {
        return Ok(fingerprint);
    }
    let range = engine
        .eval(expr, EvalParams { start: t - 60_000, end: t + 60_000, step: 60_000, lookback: LOOKBACK_MS })
        .map_err(|e| format!("range-mode cross-check failed: {e}"))?
        .value;
    if eval.ordered {
        return Ok(fingerprint);
    }
    match range {
        Value::Scalar(v) => check_scalar(eval, v[1]).map_err(|e| format!("range-mode cross-check: {e}"))?,
        Value::Vector(series) => {
            check_vector(eval, &vector_at(&series, 1)).map_err(|e| format!("range-mode cross-check: {e}"))?
        }
        other => return Err(format!("range-mode cross-check returned {other:?}")),
    }
    Ok(fingerprint)
}

/// Runs one eval on `engine`; Ok carries a fingerprint of the main result.
fn run_eval(engine: &Engine, eval: &Eval) -> Result<String, String> {
    let expr = parse(&eval.expr)?;
    match eval.kind {
        EvalKind::Range { from, to, step } => {
            let params = EvalParams { start: from, end: to, step, lookback: LOOKBACK_MS };
            let Some(value) = run_checked(engine, eval, &expr, params)? else {
                return Ok("expected failure".into());
            };
            let fingerprint = format!("{value:?}");
            check_matrix(eval, &matrix_points(value, from, step)?, from, step)?;
            Ok(fingerprint)
        }
        EvalKind::Instant { at } => {
            let fingerprint = run_instant(engine, eval, &expr, at)?;
            if eval.range_vector.is_some() || eval.string.is_some() || calls_any(&expr, &TIME_DEPENDENT) {
                return Ok(fingerprint);
            }
            let mut pinned = expr.clone();
            add_at(&mut pinned, at);
            let times = if at == 0 { vec![-1000, 0, 1000] } else { vec![-10 * at, 0, at / 5, at, 10 * at] };
            for t in times {
                run_instant(engine, eval, &pinned, t)
                    .map_err(|e| format!("with @ {}s at {}s: {e}", at as f64 / 1e3, t as f64 / 1e3))?;
            }
            Ok(fingerprint)
        }
    }
}

/// Runs a script on each shard count; returns `(line, outcome)` per eval.
pub fn run_script(
    file: &str,
    text: &str,
    shard_counts: &[usize],
    categories: &HashMap<(String, usize), Class>,
) -> Vec<(usize, Outcome)> {
    let commands = match script::parse(text) {
        Ok(c) => c,
        Err(e) => return vec![(0, Outcome::Failed(format!("script does not parse: {e}")))],
    };
    let evals: Vec<&Eval> =
        commands.iter().filter_map(|c| if let Command::Eval(e) = c { Some(&**e) } else { None }).collect();
    let mut results: Vec<Vec<Result<String, String>>> = Vec::new();
    for &shards in shard_counts {
        // On several shards, batched aggregations also fold their series one at a time.
        let batch_slots = if shards > 1 { 1 } else { BATCH_SLOTS };
        let limits = QueryLimits { lookback_delta: LOOKBACK_MS, batch_slots, ..QueryLimits::unlimited() };
        let mut engine = Engine::new(shards, limits);
        let mut load_error: Option<String> = None;
        let mut per_eval = Vec::new();
        for c in &commands {
            match c {
                Command::Clear => {
                    engine.clear();
                    load_error = None;
                }
                Command::Load { series } => {
                    if let Err(e) = engine.load(series) {
                        load_error = Some(format!("load failed: {e}"));
                    }
                }
                Command::Eval(eval) => per_eval.push(match &load_error {
                    Some(e) => Err(e.clone()),
                    None => run_eval(&engine, eval),
                }),
            }
        }
        results.push(per_eval);
    }
    evals
        .iter()
        .enumerate()
        .map(|(i, eval)| {
            match categories.get(&(file.to_string(), eval.line)) {
                Some(class) if class.runs() => {}
                class => {
                    let category = class.map_or("unknown", |c| c.category.as_str());
                    return (eval.line, Outcome::Skipped(category.to_string()));
                }
            }
            let runs: Vec<&Result<String, String>> = results.iter().map(|r| &r[i]).collect();
            let outcome = match runs.iter().find_map(|r| r.as_ref().err()) {
                Some(e) => Outcome::Failed(e.clone()),
                None if runs.windows(2).any(|w| w[0] != w[1]) => {
                    Outcome::Failed("results differ between shard counts".into())
                }
                None => Outcome::Passed,
            };
            (eval.line, outcome)
        })
        .collect()
}
