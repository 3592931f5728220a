//! Function calls: argument evaluation and every function that is not over a range window.
//!
//! Range-vector functions are in [`super::range_functions`]; this module evaluates their
//! arguments and hands over. Element-wise functions drop the metric name, as upstream; label
//! and sort functions keep it.

use std::collections::HashMap;

use super::range_functions;
use super::{nan_last, selector, EvalError, Evaluator, StepSeries, Value};
use crate::calendar::{civil_from_days, days_from_civil};
use crate::histogram::{self, FloatHistogram, StatsInfo};
use crate::labels::{is_valid_utf8_label_name, Labels, MAX_SERIES_LABEL_BYTES};
use crate::promql::ast::CallPositions;
use crate::promql::functions::{Function, Kind};
use crate::promql::plan::Node;

const SORT_IN_RANGE_QUERY: &str = "sort is ineffective for range queries since results are always ordered by labels";

/// Whether the evaluator implements `func` (the planner refuses the rest).
pub fn is_implemented(func: &Function) -> bool {
    func.kind == Kind::Range
        || elementwise(func.name).is_some()
        || histogram_property(func.name).is_some()
        || matches!(
            func.name,
            "time"
                | "pi"
                | "min_of"
                | "max_of"
                | "histogram_quantiles"
                | "vector"
                | "scalar"
                | "timestamp"
                | "clamp"
                | "clamp_min"
                | "clamp_max"
                | "round"
                | "label_replace"
                | "label_join"
                | "sort"
                | "sort_desc"
                | "sort_by_label"
                | "sort_by_label_desc"
                | "histogram_quantile"
                | "histogram_fraction"
                | "day_of_month"
                | "day_of_week"
                | "day_of_year"
                | "days_in_month"
                | "hour"
                | "minute"
                | "month"
                | "year"
        )
}

/// Whether the instant-vector result of `root` has an order that sorting by labels would
/// destroy (sort functions, `topk`, `bottomk`).
pub(super) fn keeps_order(root: &Node) -> bool {
    match root {
        Node::Call { func, .. } => func.kind == Kind::Sort,
        Node::Aggregate { op, .. } => {
            matches!(op, crate::promql::ast::AggregateOp::Topk | crate::promql::ast::AggregateOp::Bottomk)
        }
        _ => false,
    }
}

/// A value-to-value function applied element by element.
fn elementwise(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => f64::to_degrees,
        "rad" => f64::to_radians,
        "sgn" => |v: f64| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

/// A number read off one native histogram (`histogram_count(h)` and the like).
fn histogram_property(name: &str) -> Option<fn(&FloatHistogram) -> f64> {
    Some(match name {
        "histogram_count" => |h: &FloatHistogram| h.count,
        "histogram_sum" => |h: &FloatHistogram| h.sum,
        "histogram_avg" => histogram::avg,
        "histogram_stddev" => histogram::stddev,
        "histogram_stdvar" => histogram::stdvar,
        _ => return None,
    })
}

/// Applies `f` to every histogram value, dropping the metric name and the float values, as
/// upstream's histogram functions take histograms only.
fn map_histograms(series: Vec<StepSeries>, f: impl Fn(&FloatHistogram) -> f64) -> Vec<StepSeries> {
    series
        .into_iter()
        .filter(|s| !s.histograms.is_empty())
        .map(|s| {
            let values = s.histograms.iter().map(|h| h.as_deref().map(&f)).collect();
            StepSeries::floats(s.labels.into_without_metric_name(), values)
        })
        .filter(StepSeries::has_values)
        .collect()
}

/// Applies `f(value, step)` to every value, dropping the metric name.
fn map_vector(series: Vec<StepSeries>, f: impl Fn(f64, usize) -> f64) -> Vec<StepSeries> {
    series
        .into_iter()
        .map(|s| {
            StepSeries::floats(
                s.labels.into_without_metric_name(),
                s.values.iter().enumerate().map(|(i, v)| v.map(|v| f(v, i))).collect(),
            )
        })
        .collect()
}

fn string_arg(ev: &Evaluator, node: &Node) -> Result<String, EvalError> {
    match ev.eval(node)? {
        Value::String(s) => Ok(s),
        _ => Err(EvalError::Execution("expected a string argument".into())),
    }
}

pub(super) fn call(
    ev: &Evaluator,
    func: &'static Function,
    args: &[Node],
    pos: &CallPositions,
) -> Result<Value, EvalError> {
    let steps = ev.params.steps();
    let name = func.name;
    if func.kind == Kind::Range {
        let mut rest = Vec::new();
        let mut range = None;
        for a in args {
            match ev.eval(a)? {
                Value::Range(r) => range = Some(r),
                v => rest.push(v.into_scalar()?),
            }
        }
        let range = range.ok_or_else(|| EvalError::Execution(format!("{name} needs a range vector")))?;
        return Ok(Value::Vector(range_functions::apply(ev, name, range, &rest, pos.arg(0))?));
    }
    if let Some(f) = histogram_property(name) {
        return Ok(Value::Vector(map_histograms(ev.eval(&args[0])?.into_vector()?, f)));
    }
    if let Some(f) = elementwise(name) {
        return Ok(Value::Vector(map_vector(ev.eval(&args[0])?.into_vector()?, |v, _| f(v))));
    }
    Ok(match name {
        "time" => Value::Scalar((0..steps).map(|i| ev.params.ts(i) as f64 / 1000.0).collect()),
        "pi" => Value::Scalar(vec![std::f64::consts::PI; steps]),
        "min_of" | "max_of" => {
            let a = ev.eval(&args[0])?.into_scalar()?;
            let b = ev.eval(&args[1])?.into_scalar()?;
            // NaN wins, unlike f64::min/max.
            let pick = |a: f64, b: f64| match (a.is_nan() || b.is_nan(), name == "min_of") {
                (true, _) => f64::NAN,
                (false, true) => a.min(b),
                (false, false) => a.max(b),
            };
            Value::Scalar(a.iter().zip(&b).map(|(&a, &b)| pick(a, b)).collect())
        }
        "vector" => Value::Vector(vec![StepSeries::floats(
            Labels::default(),
            ev.eval(&args[0])?.into_scalar()?.into_iter().map(Some).collect(),
        )]),
        "scalar" => {
            let series = ev.eval(&args[0])?.into_vector()?;
            Value::Scalar(
                (0..steps)
                    .map(|i| {
                        let mut present = series.iter().filter_map(|s| s.values[i]);
                        match (present.next(), present.next()) {
                            (Some(v), None) => v,
                            _ => f64::NAN,
                        }
                    })
                    .collect(),
            )
        }
        "timestamp" => match &args[0] {
            Node::Select(vs) => Value::Vector(
                selector::sample_times(ev, vs)?
                    .into_iter()
                    .map(|s| StepSeries::floats(s.labels.into_without_metric_name(), s.values))
                    .collect(),
            ),
            other => Value::Vector(map_vector(ev.eval(other)?.into_vector()?, |_, i| ev.params.ts(i) as f64 / 1000.0)),
        },
        "clamp" | "clamp_min" | "clamp_max" => {
            let series = ev.eval(&args[0])?.into_vector()?;
            let bounds: Vec<Vec<f64>> =
                args[1..].iter().map(|a| ev.eval(a)?.into_scalar()).collect::<Result<_, _>>()?;
            // Go's `math.Max`/`math.Min`: an infinity toward the bound wins, then NaN gives NaN.
            let go = |a: f64, b: f64, inf: f64, pick: fn(f64, f64) -> f64| match () {
                _ if a == inf || b == inf => inf,
                _ if a.is_nan() || b.is_nan() => f64::NAN,
                _ => pick(a, b),
            };
            let max = |a: f64, b: f64| go(a, b, f64::INFINITY, f64::max);
            let min = |a: f64, b: f64| go(a, b, f64::NEG_INFINITY, f64::min);
            let clamp = |v: f64, i: usize| match name {
                "clamp_min" => max(v, bounds[0][i]),
                "clamp_max" => min(v, bounds[0][i]),
                _ => max(bounds[0][i], min(bounds[1][i], v)),
            };
            if name == "clamp" {
                // min > max yields nothing at that step.
                let series = series
                    .into_iter()
                    .map(|s| {
                        StepSeries::floats(
                            s.labels.into_without_metric_name(),
                            s.values
                                .iter()
                                .enumerate()
                                // As upstream: nothing only where max < min (a NaN bound gives NaN).
                                .map(|(i, v)| {
                                    let below =
                                        bounds[1][i].partial_cmp(&bounds[0][i]) == Some(std::cmp::Ordering::Less);
                                    v.filter(|_| !below).map(|v| clamp(v, i))
                                })
                                .collect(),
                        )
                    })
                    .filter(|s| s.values.iter().any(Option::is_some))
                    .collect();
                Value::Vector(series)
            } else {
                Value::Vector(map_vector(series, clamp))
            }
        }
        "round" => {
            let series = ev.eval(&args[0])?.into_vector()?;
            let to = match args.get(1) {
                Some(a) => ev.eval(a)?.into_scalar()?,
                None => vec![1.0; steps],
            };
            // Upstream rounds half up, in units of `to_nearest`, via its inverse.
            Value::Vector(map_vector(series, |v, i| {
                let inverse = 1.0 / to[i];
                (v * inverse + 0.5).floor() / inverse
            }))
        }
        "label_replace" => Value::Vector(label_replace(ev, args)?),
        "label_join" => Value::Vector(label_join(ev, args)?),
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" if ev.params.step != 0 => {
            ev.warn(SORT_IN_RANGE_QUERY, pos.call);
            ev.eval(&args[0])?
        }
        "sort" | "sort_desc" => {
            // Histograms have no order: upstream leaves them out.
            let mut series: Vec<StepSeries> = ev
                .eval(&args[0])?
                .into_vector()?
                .into_iter()
                .map(|s| StepSeries::floats(s.labels, s.values))
                .filter(StepSeries::has_values)
                .collect();
            let desc = name == "sort_desc";
            series.sort_by(|a, b| nan_last(a.values[0].unwrap_or(f64::NAN), b.values[0].unwrap_or(f64::NAN), desc));
            Value::Vector(series)
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let mut series = ev.eval(&args[0])?.into_vector()?;
            let keys: Vec<String> = args[1..].iter().map(|a| string_arg(ev, a)).collect::<Result<_, _>>()?;
            series.sort_by(|a, b| {
                let by_keys = keys.iter().map(|k| natural_cmp(a.labels.get(k), b.labels.get(k))).find(|o| o.is_ne());
                let o = by_keys.unwrap_or_else(|| a.labels.cmp(&b.labels));
                if name == "sort_by_label_desc" {
                    o.reverse()
                } else {
                    o
                }
            });
            Value::Vector(series)
        }
        "histogram_quantile" => {
            let q = ev.eval(&args[0])?.into_scalar()?;
            q.iter().for_each(|&q| range_functions::check_quantile(ev, q, pos.arg(0)));
            let series = ev.eval(&args[1])?.into_vector()?;
            Value::Vector(buckets(
                ev,
                series,
                pos.arg(1),
                steps,
                |b, i| bucket_quantile(q[i], b),
                |h, i| histogram::quantile(q[i], h),
            )?)
        }
        "histogram_quantiles" => {
            let series = ev.eval(&args[0])?.into_vector()?;
            let label = string_arg(ev, &args[1])?;
            if !is_valid_utf8_label_name(&label) {
                return Err(EvalError::Execution(format!("invalid label name {label:?}")));
            }
            if let Some(s) = series.iter().find(|s| !s.labels.get(&label).is_empty()) {
                return Err(EvalError::Execution(format!(
                    "label {label:?} of histogram_quantiles() conflicts with a label of {}",
                    s.labels
                )));
            }
            let mut out = Vec::new();
            for (arg, arg_pos) in args.iter().zip(&pos.args).skip(2) {
                let q = ev.eval(arg)?.into_scalar()?;
                q.iter().for_each(|&q| range_functions::check_quantile(ev, q, *arg_pos));
                let text = quantile_label(q[0]);
                let computed = buckets(
                    ev,
                    series.clone(),
                    pos.arg(0),
                    steps,
                    |b, i| bucket_quantile(q[i], b),
                    |h, i| histogram::quantile(q[i], h),
                )?;
                out.extend(
                    computed
                        .into_iter()
                        .map(|s| StepSeries::floats(with_label(&s.labels, &label, text.clone()), s.values)),
                );
            }
            Value::Vector(out)
        }
        "histogram_fraction" => {
            let lo = ev.eval(&args[0])?.into_scalar()?;
            let hi = ev.eval(&args[1])?.into_scalar()?;
            let series = ev.eval(&args[2])?.into_vector()?;
            Value::Vector(buckets(
                ev,
                series,
                pos.arg(2),
                steps,
                |b, i| (bucket_fraction(lo[i], hi[i], b), false),
                |h, i| histogram::fraction(lo[i], hi[i], h),
            )?)
        }
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute" | "month" | "year" => {
            let series = match args.first() {
                Some(a) => ev.eval(a)?.into_vector()?,
                None => vec![StepSeries::floats(
                    Labels::default(),
                    (0..steps).map(|i| Some(ev.params.ts(i) as f64 / 1000.0)).collect(),
                )],
            };
            Value::Vector(map_vector(series, |v, _| date_part(name, v)))
        }
        other => return Err(EvalError::Unsupported(format!("function {other:?}"))),
    })
}

/// `absent`/`absent_over_time`: 1, with `labels`, at the steps where `value` has no series.
pub(super) fn absent(value: Value, labels: &Labels, steps: usize) -> Result<Vec<StepSeries>, EvalError> {
    let present: Vec<bool> = match value {
        Value::Vector(series) => {
            (0..steps).map(|i| series.iter().any(|s| s.values[i].is_some() || s.histogram(i).is_some())).collect()
        }
        Value::Range(r) => {
            let (mut present, mut missing) = (vec![false; steps], steps);
            for s in &r.series {
                let windows = r.windows(s).zip(r.histogram_windows(s));
                for (seen, (floats, histograms)) in present.iter_mut().zip(windows) {
                    let here = !floats.is_empty() || !histograms.is_empty();
                    if here && !*seen {
                        *seen = true;
                        missing -= 1;
                    }
                }
                if missing == 0 {
                    break; // usually after the first series
                }
            }
            present
        }
        _ => return Err(EvalError::Execution("absent needs a vector".into())),
    };
    let values: Vec<Option<f64>> = present.iter().map(|p| (!p).then_some(1.0)).collect();
    Ok(if values.iter().any(Option::is_some) { vec![StepSeries::floats(labels.clone(), values)] } else { Vec::new() })
}

fn label_replace(ev: &Evaluator, args: &[Node]) -> Result<Vec<StepSeries>, EvalError> {
    let series = ev.eval(&args[0])?.into_vector()?;
    let dst = string_arg(ev, &args[1])?;
    let replacement = string_arg(ev, &args[2])?;
    let src = string_arg(ev, &args[3])?;
    let pattern = string_arg(ev, &args[4])?;
    let re = crate::re2::anchored(&pattern)
        .map_err(|e| EvalError::Execution(format!("invalid regular expression in label_replace(): {pattern}: {e}")))?;
    if !is_valid_utf8_label_name(&dst) {
        return Err(EvalError::Execution(format!("invalid destination label name in label_replace(): {dst}")));
    }
    // Each `$` of the replacement expands to at most the whole source value.
    let references = replacement.matches('$').count();
    series
        .into_iter()
        .map(|s| {
            let value = s.labels.get(&src).to_string();
            let labels = match re.captures(&value) {
                Some(caps) => {
                    let most = replacement.len().saturating_add(references.saturating_mul(value.len()));
                    if most > MAX_MADE_LABEL_BYTES {
                        return Err(label_too_long("label_replace"));
                    }
                    let mut expanded = String::new();
                    crate::re2::expand(&caps, &replacement, &mut expanded);
                    charge_label(ev, expanded.len())?;
                    with_label(&s.labels, &dst, expanded)
                }
                None => s.labels,
            };
            Ok(StepSeries { labels, ..s })
        })
        .collect()
}

fn label_join(ev: &Evaluator, args: &[Node]) -> Result<Vec<StepSeries>, EvalError> {
    let series = ev.eval(&args[0])?.into_vector()?;
    let dst = string_arg(ev, &args[1])?;
    let sep = string_arg(ev, &args[2])?;
    let srcs: Vec<String> = args[3..].iter().map(|a| string_arg(ev, a)).collect::<Result<_, _>>()?;
    if let Some(src) = srcs.iter().find(|src| !is_valid_utf8_label_name(src)) {
        return Err(EvalError::Execution(format!("invalid source label name in label_join(): {src}")));
    }
    if !is_valid_utf8_label_name(&dst) {
        return Err(EvalError::Execution(format!("invalid destination label name in label_join(): {dst}")));
    }
    series
        .into_iter()
        .map(|s| {
            let values: Vec<&str> = srcs.iter().map(|src| s.labels.get(src)).collect();
            let bytes = values
                .iter()
                .fold(sep.len().saturating_mul(values.len().saturating_sub(1)), |n, v| n.saturating_add(v.len()));
            if bytes > MAX_MADE_LABEL_BYTES {
                return Err(label_too_long("label_join"));
            }
            charge_label(ev, bytes)?;
            Ok(StepSeries { labels: with_label(&s.labels, &dst, values.join(&sep)), ..s })
        })
        .collect()
}

/// The longest label value `label_replace` or `label_join` makes, what a stored series' labels
/// may take: past it the query fails before the value is built, so a short query cannot ask
/// for gigabytes by repeating a long value.
const MAX_MADE_LABEL_BYTES: usize = MAX_SERIES_LABEL_BYTES;

/// The bytes of label text that count as one sample against `--query.max-samples`, about
/// what a sample costs in memory: many long values made over many series are bounded as the
/// samples a query loads are.
const LABEL_BYTES_PER_SAMPLE: usize = 16;

/// Counts `bytes` of label text a function made against the query's limit.
fn charge_label(ev: &Evaluator, bytes: usize) -> Result<(), EvalError> {
    ev.limits.charge(bytes / LABEL_BYTES_PER_SAMPLE)?;
    ev.interrupt(1)
}

fn label_too_long(function: &str) -> EvalError {
    EvalError::Execution(format!("{function}(): the label value would be longer than {MAX_MADE_LABEL_BYTES} bytes"))
}

/// How `histogram_quantiles` writes a quantile into its label: always with a decimal point
/// (`0.0`, `0.25`, `1.0`), as upstream.
fn quantile_label(q: f64) -> String {
    let text = crate::value::format_value(q);
    if q.is_finite() && !text.contains('.') {
        format!("{text}.0")
    } else {
        text
    }
}

/// A copy of `labels` with `name` set to `value` (removed if empty).
fn with_label(labels: &Labels, name: &str, value: String) -> Labels {
    let mut pairs: Vec<(String, String)> =
        labels.iter().filter(|l| l.name != name).map(|l| (l.name.clone(), l.value.clone())).collect();
    pairs.push((name.to_string(), value));
    Labels::from_pairs(pairs)
}

/// Natural ("version") order of two label values: digit runs compare as numbers.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.chars().peekable(), b.chars().peekable());
    loop {
        match (x.peek().copied(), y.peek().copied()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let take = |it: &mut std::iter::Peekable<std::str::Chars>| {
                    let mut n = String::new();
                    while let Some(c) = it.peek().copied().filter(char::is_ascii_digit) {
                        n.push(c);
                        it.next();
                    }
                    n
                };
                let (m, n) = (take(&mut x), take(&mut y));
                let (m, n) = (m.trim_start_matches('0'), n.trim_start_matches('0'));
                let o = m.len().cmp(&n.len()).then_with(|| m.cmp(n));
                if o.is_ne() {
                    return o;
                }
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(&d);
                }
                x.next();
                y.next();
            }
        }
    }
}

/// `message` naming the metric it is about, as upstream's annotations do when there is one.
fn with_metric_name(message: &str, name: &str) -> String {
    match name {
        "" => message.to_string(),
        name => format!("{message} for metric name {name:?}"),
    }
}

/// What `histogram_quantile` or `histogram_fraction` makes of one native histogram at a step:
/// the value, and an info to report with it (about NaN observations).
type NativeResult = (f64, Option<StatsInfo>);

/// Applies `histogram_quantile` or `histogram_fraction` to every histogram at every step:
/// native ones with `native`, classic ones with `classic`.
///
/// Classic bucket series (same labels but `le`) are grouped, and `classic` gets each group's
/// `(upper bound, cumulative count)` buckets; float series without a valid `le` are left out
/// with a warning. `classic` also says whether it had to force the counts to be monotonic,
/// which histogram_quantile reports as an info. A native histogram at a step where classic
/// buckets of the same name and labels have values is a conflict: both are left out, with a
/// warning. Annotations point at `pos`, the histogram argument. The output drops the metric
/// name, so two histograms that differ only by name collide and are refused, as upstream.
fn buckets(
    ev: &Evaluator,
    series: Vec<StepSeries>,
    pos: usize,
    steps: usize,
    classic: impl Fn(&mut Vec<(f64, f64)>, usize) -> (f64, bool),
    native: impl Fn(&FloatHistogram, usize) -> NativeResult,
) -> Result<Vec<StepSeries>, EvalError> {
    let mut groups: HashMap<Labels, Vec<(f64, &StepSeries)>> = HashMap::new();
    for s in series.iter().filter(|s| s.values.iter().any(Option::is_some)) {
        let le_text = s.labels.get("le");
        match crate::exposition::text::parse_float(le_text).filter(|le| !le.is_nan()) {
            Some(le) => groups.entry(s.labels.filtered(|n| n != "le")).or_default().push((le, s)),
            None => ev.warn(
                format!(
                    "bucket label \"le\" is missing or has a malformed value of {le_text:?} for metric name {:?}",
                    s.labels.metric_name()
                ),
                pos,
            ),
        }
    }
    let classic_at = |labels: &Labels, i: usize| {
        groups.get(labels).is_some_and(|members| members.iter().any(|(_, s)| s.values[i].is_some()))
    };
    let mut out = Vec::new();
    let mut conflicts: HashMap<&Labels, Vec<bool>> = HashMap::new();
    for s in series.iter().filter(|s| !s.histograms.is_empty()) {
        let mut values = Vec::with_capacity(steps);
        for i in 0..steps {
            let Some(h) = s.histogram(i) else {
                values.push(None);
                continue;
            };
            if classic_at(&s.labels, i) {
                let message = "vector contains a mix of classic and native histograms";
                ev.warn(with_metric_name(message, s.labels.metric_name()), pos);
                conflicts.entry(&s.labels).or_insert_with(|| vec![false; steps])[i] = true;
                values.push(None);
                continue;
            }
            let (value, info) = native(h, i);
            if let Some(info) = info {
                ev.info(with_metric_name(info.message(), s.labels.metric_name()), pos);
            }
            values.push(Some(value));
        }
        if values.iter().any(Option::is_some) {
            out.push(StepSeries::floats(s.labels.without_metric_name(), values));
        }
    }
    for (labels, members) in &groups {
        let conflict = conflicts.get(labels);
        let values: Vec<Option<f64>> = (0..steps)
            .map(|i| {
                if conflict.is_some_and(|c| c[i]) {
                    return None;
                }
                let mut b: Vec<(f64, f64)> = members.iter().filter_map(|(le, s)| Some((*le, s.values[i]?))).collect();
                if b.is_empty() {
                    return None;
                }
                let (value, forced_monotonic) = classic(&mut b, i);
                if forced_monotonic {
                    ev.info(
                        format!(
                            "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {:?}",
                            labels.metric_name()
                        ),
                        pos,
                    );
                }
                Some(value)
            })
            .collect();
        if values.iter().any(Option::is_some) {
            out.push(StepSeries::floats(labels.without_metric_name(), values));
        }
    }
    Ok(out)
}

/// Relative difference under which upstream treats two bucket counts as equal: float noise,
/// e.g. from summing rates in a different order.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// Sorts buckets by bound and merges equal bounds.
fn coalesce(b: &mut Vec<(f64, f64)>) {
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    b.dedup_by(|later, earlier| {
        if later.0 == earlier.0 {
            earlier.1 += later.1;
            true
        } else {
            false
        }
    });
}

/// Makes cumulative counts monotonic, as upstream does for buckets scraped at slightly
/// different times: a count within [`SMALL_DELTA_TOLERANCE`] of the previous one is set equal
/// to it silently, a real decrease is raised to it. Returns whether a real decrease was fixed.
fn force_monotonic(b: &mut [(f64, f64)]) -> bool {
    let mut forced = false;
    let Some(mut prev) = b.first().map(|x| x.1) else { return false };
    for x in b.iter_mut().skip(1) {
        if x.1 == prev {
            continue;
        }
        if almost_equal(prev, x.1, SMALL_DELTA_TOLERANCE) {
            x.1 = prev;
        } else if x.1 < prev {
            x.1 = prev;
            forced = true;
        } else {
            prev = x.1;
        }
    }
    forced
}

/// Upstream's `almost.Equal`: equal, or within a relative difference of `epsilon`.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    let abs_sum = a.abs() + b.abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < epsilon * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// `histogram_quantile` over classic buckets, as upstream's `BucketQuantile`.
/// Also says whether the counts had to be forced monotonic.
fn bucket_quantile(q: f64, b: &mut Vec<(f64, f64)>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    coalesce(b);
    if b.last().is_none_or(|x| x.0 != f64::INFINITY) {
        return (f64::NAN, false);
    }
    let forced = force_monotonic(b);
    let total = b[b.len() - 1].1;
    if b.len() < 2 || total == 0.0 {
        return (f64::NAN, false);
    }
    let mut rank = q * total;
    let idx = b[..b.len() - 1].partition_point(|x| x.1 < rank);
    if idx == b.len() - 1 {
        return (b[b.len() - 2].0, forced);
    }
    if idx == 0 && b[0].0 <= 0.0 {
        return (b[0].0, forced);
    }
    let (mut start, end, mut count) = (0.0, b[idx].0, b[idx].1);
    if idx > 0 {
        start = b[idx - 1].0;
        count -= b[idx - 1].1;
        rank -= b[idx - 1].1;
    }
    (start + (end - start) * (rank / count), forced)
}

/// `histogram_fraction(lower, upper, buckets)`: the estimated share of observations between the
/// two values, interpolating linearly inside buckets, as upstream's `BucketFraction`.
fn bucket_fraction(lower: f64, upper: f64, b: &mut Vec<(f64, f64)>) -> f64 {
    coalesce(b);
    force_monotonic(b);
    if b.last().is_none_or(|x| x.0 != f64::INFINITY) {
        return f64::NAN;
    }
    let total = b[b.len() - 1].1;
    if total == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, None, None);
    for (i, &(bound, count)) in b.iter().enumerate() {
        // The first bucket starts at 0 if its bound is positive (observations are assumed
        // non-negative there), at -Inf otherwise.
        let start = if i > 0 {
            b[i - 1].0
        } else if bound > 0.0 {
            0.0
        } else {
            f64::NEG_INFINITY
        };
        // No interpolation inside a bucket of infinite width: the lowest bucket counts as
        // wholly below any value in it, the +Inf bucket as wholly above.
        let interpolate = |v: f64| {
            if start == f64::NEG_INFINITY {
                count
            } else if bound == f64::INFINITY {
                rank
            } else {
                rank + (count - rank) * (v - start) / (bound - start)
            }
        };
        if lower_rank.is_none() && start >= lower {
            lower_rank = Some(rank);
        }
        if upper_rank.is_none() && start >= upper {
            upper_rank = Some(rank);
        }
        if lower_rank.is_none() && start < lower && bound > lower {
            lower_rank = Some(interpolate(lower));
        }
        if upper_rank.is_none() && start < upper && bound > upper {
            upper_rank = Some(interpolate(upper));
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        rank = count;
    }
    let lower_rank = lower_rank.unwrap_or(total).min(total);
    let upper_rank = upper_rank.unwrap_or(total).min(total);
    (upper_rank - lower_rank) / total
}

/// Calendar fields of a Unix time in UTC.
fn date_part(name: &str, secs: f64) -> f64 {
    if !secs.is_finite() {
        return f64::NAN;
    }
    // Go's `time.Unix(int64(v), 0)`: the seconds truncated toward zero, so -0.5 is 1970-01-01.
    let t = secs as i64;
    let days = t.div_euclid(86_400);
    let secs_of_day = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    match name {
        "hour" => (secs_of_day / 3600) as f64,
        "minute" => (secs_of_day % 3600 / 60) as f64,
        "day_of_month" => d as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "month" => m as f64,
        "year" => y as f64,
        "day_of_year" => (days - days_from_civil(y, 1, 1) + 1) as f64,
        "days_in_month" => {
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (days_from_civil(ny, nm, 1) - days_from_civil(y, m, 1)) as f64
        }
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    /// Upstream reads the time as `time.Unix(int64(v), 0)`: a fraction of a second before 1970
    /// is still 1970-01-01.
    #[test]
    fn date_parts_truncate_the_seconds_toward_zero_as_go() {
        assert_eq!((super::date_part("year", -0.5), super::date_part("month", -0.5)), (1970.0, 1.0));
        assert_eq!((super::date_part("year", -1.0), super::date_part("month", -1.0)), (1969.0, 12.0));
        assert_eq!(super::date_part("day_of_month", 86_399.9), 1.0);
    }
}
