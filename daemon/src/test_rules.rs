//! `pyrite test rules FILE...`: promtool's rule unit tests. Each test group loads its input
//! series into an in-memory engine step by step, evaluates the rule groups every
//! `evaluation_interval` exactly as the server does, and compares firing alerts and PromQL
//! results with the expectations. Prints promtool's report; false if any test failed.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use pyrite_core::config::Duration;
use pyrite_core::histogram::{parse_histogram, FloatHistogram};
use pyrite_core::labels::{write_notation, Labels, NameValidation};
use pyrite_core::promql::{parse_with, Expr, ParseOptions, QueryLimits, Value};
use pyrite_core::rules::{
    Annotations, GroupDefaults, GroupState, InstantQuery, RuleError, RuleFile, RuleSettings, RuleStorage,
};
use pyrite_core::series_notation::{number, series_labels, timed, values, Point};
use pyrite_core::value::SampleValue;
use pyrite_tsdb::memory::{MemoryEngine, Refused};
use regex::Regex;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitTestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    evaluation_interval: Option<Duration>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    fuzzy_compare: bool,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    interval: Option<Duration>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<PromqlTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    name: String,
    start_timestamp: Option<serde_norway::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    values: serde_norway::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    #[serde(default)]
    eval_time: Duration,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromqlTest {
    expr: String,
    #[serde(default)]
    eval_time: Duration,
    #[serde(default)]
    exp_samples: Vec<ExpectedSample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedSample {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    value: Option<serde_norway::Value>,
    histogram: Option<String>,
}

/// How the run is narrowed (promtool's `--run`) and how rule files are read.
pub struct Options {
    pub run: Vec<String>,
    pub ignore_unknown_fields: bool,
}

/// Runs every file; true if all passed.
pub fn run(files: &[PathBuf], options: &Options) -> bool {
    let run = match Regex::new(&options.run.join("|")) {
        Ok(re) => re,
        Err(e) => {
            eprintln!("  FAILED:\n    --run: {e}");
            return false;
        }
    };
    let mut all_passed = true;
    for file in files {
        println!("Unit Testing:  {}", file.display());
        match run_file(file, &run, options) {
            Ok(()) => println!("  SUCCESS\n"),
            Err(errors) => {
                eprintln!("  FAILED:");
                for e in errors {
                    eprintln!("{e}");
                }
                eprintln!();
                all_passed = false;
            }
        }
    }
    all_passed
}

fn run_file(file: &Path, run: &Regex, options: &Options) -> Result<(), Vec<String>> {
    let text = std::fs::read_to_string(file).map_err(|e| vec![format!("    {}: {e}", file.display())])?;
    let unit: UnitTestFile =
        pyrite_core::config::yaml::from_str(&text).map_err(|e| vec![format!("    {}: {e}", file.display())])?;
    let interval = unit.evaluation_interval.map_or(60_000, |d| d.millis());
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut rule_files = Vec::new();
    for pattern in &unit.rule_files {
        let pattern = dir.join(pattern).display().to_string();
        for path in crate::files::expand_glob(&pattern) {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| vec![format!("    {name}: {e}")])?;
            let text = if options.ignore_unknown_fields { RuleFile::without_unknown_fields(&text) } else { text };
            let parsed = RuleFile::parse(&text, &name, parse_options(), NameValidation::Utf8)
                .map_err(|e| vec![format!("    {e}")])?;
            rule_files.push((name, parsed));
        }
    }
    let mut errors = Vec::new();
    for group in unit.tests.iter().filter(|g| run.is_match(&g.name)) {
        let mut groups = Vec::new();
        for (name, file) in &rule_files {
            for g in &file.groups {
                groups.push(
                    GroupState::new(g, name, GroupDefaults { interval, query_offset: 0 }, parse_options())
                        .map_err(|e| vec![format!("    {e}")])?,
                );
            }
        }
        if !unit.group_eval_order.is_empty() {
            groups.sort_by_key(|g| unit.group_eval_order.iter().position(|n| *n == g.name).unwrap_or(usize::MAX));
        }
        errors.extend(run_group(group, groups, interval, unit.fuzzy_compare));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Experimental functions on; `anchored`/`smoothed` off, as upstream's promtool has them
/// without `--enable-feature=promql-extended-range-selectors`.
fn parse_options() -> ParseOptions {
    ParseOptions { experimental_functions: true, extended_range_selectors: false }
}

/// One shard's in-memory heads, with no limits as upstream's test engine (lookback 5m);
/// shared with templates' `query` calls.
struct Engine(Rc<RefCell<MemoryEngine>>);

impl Engine {
    fn new() -> Engine {
        Engine(Rc::new(RefCell::new(MemoryEngine::new(1, QueryLimits::unlimited()))))
    }

    fn append(&self, labels: &Labels, t: i64, point: &Point) -> Result<(), Refused> {
        self.0.borrow_mut().append(labels, t, point)
    }
}

impl RuleStorage for Engine {
    fn queries(&self) -> InstantQuery {
        let engine = self.0.clone();
        Rc::new(move |expr: &Expr, t: i64| {
            let engine = engine.borrow();
            Ok(engine.eval(expr, engine.instant(t))?.value)
        })
    }

    fn append(&mut self, t: i64, samples: &[(Labels, SampleValue)]) -> Result<(), RuleError> {
        let point = |value: &SampleValue| match value {
            SampleValue::Float(v) => Point::Value(*v),
            SampleValue::Histogram(h) => Point::Histogram(h.clone()),
        };
        samples.iter().try_for_each(|(l, v)| Engine::append(self, l, t, &point(v))).map_err(RuleError::storage)
    }
}

/// A test group's start: Unix seconds or RFC 3339.
fn start_ms(value: &Option<serde_norway::Value>) -> Result<i64, String> {
    match value {
        None => Ok(0),
        Some(serde_norway::Value::Number(n)) => {
            n.as_f64().map(|s| (s * 1000.0) as i64).ok_or("bad start_timestamp".into())
        }
        Some(serde_norway::Value::String(s)) => {
            crate::http::params::parse_time(s).ok_or_else(|| format!("start_timestamp {s:?}: not a time"))
        }
        Some(other) => Err(format!("start_timestamp: unexpected {other:?}")),
    }
}

fn scalar_text(v: &serde_norway::Value) -> String {
    match v {
        serde_norway::Value::String(s) => s.clone(),
        serde_norway::Value::Number(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

fn format_ms(ms: i64) -> String {
    Duration(ms).to_string()
}

/// One test group; its failures, each ready to print.
fn run_group(test: &TestGroup, mut groups: Vec<GroupState>, eval_interval: i64, fuzzy: bool) -> Vec<String> {
    let prefix = if test.name.is_empty() { String::new() } else { format!("    name: {},\n", test.name) };
    let fail = |e: String| vec![format!("{prefix}{e}")];
    let start = match start_ms(&test.start_timestamp) {
        Ok(s) => s,
        Err(e) => return fail(format!("    {e}")),
    };
    let input_interval = test.interval.map_or(eval_interval, |d| d.millis()).max(1);
    let mut input: Vec<(Labels, Vec<(i64, Point)>)> = Vec::new();
    let mut errors = Vec::new();
    for s in &test.input_series {
        let labels = match series_labels(&s.series) {
            Ok(l) => l,
            Err(e) => return fail(format!("    {e}")),
        };
        let points = match values(&scalar_text(&s.values)) {
            Ok(p) => p,
            Err(e) => return fail(format!("    {}: {e}", s.series)),
        };
        input.push((labels, timed(points, start, input_interval)));
    }
    let settings = RuleSettings {
        external_labels: Labels::from_pairs(test.external_labels.clone()),
        external_url: test.external_url.clone(),
        resend_delay: 60_000,
        parse: parse_options(),
    };
    let max_eval = test
        .alert_rule_test
        .iter()
        .map(|a| a.eval_time.millis())
        .chain(test.promql_expr_test.iter().map(|p| p.eval_time.millis()))
        .max()
        .unwrap_or(0);
    let mut alert_tests: Vec<&AlertTest> = test.alert_rule_test.iter().collect();
    alert_tests.sort_by_key(|a| a.eval_time.millis());
    let mut next_alert_test = 0;
    let mut engine = Engine::new();
    let mut loaded = vec![0usize; input.len()];
    let mut ts = start;
    while ts <= start + max_eval {
        for (i, (labels, samples)) in input.iter().enumerate() {
            while let Some((t, point)) = samples.get(loaded[i]).filter(|(t, _)| *t <= ts) {
                if let Err(e) = engine.append(labels, *t, point) {
                    return fail(format!("    loading input series: {e}"));
                }
                loaded[i] += 1;
            }
        }
        for group in &mut groups {
            group.evaluate(ts, &mut engine, &settings, &std::time::Instant::now);
            for rule in &group.rules {
                if let Some(e) = &rule.last_error {
                    errors.push(format!("    rule: {}, time: {}, err: {e}", rule.rule.name(), format_ms(ts - start)));
                }
            }
        }
        // Alert tests whose eval_time falls in [ts, ts + interval) are checked against this evaluation.
        while let Some(case) =
            alert_tests.get(next_alert_test).filter(|a| a.eval_time.millis() < ts - start + eval_interval)
        {
            if let Some(e) = check_alerts(case, &groups) {
                errors.push(e);
            }
            next_alert_test += 1;
        }
        ts += eval_interval.max(1);
    }
    for case in &test.promql_expr_test {
        if let Some(e) = check_promql(case, &engine, start, fuzzy) {
            errors.push(e);
        }
    }
    errors.into_iter().map(|e| format!("{prefix}{e}")).collect()
}

type AlertView = (Labels, Annotations);

fn check_alerts(case: &AlertTest, groups: &[GroupState]) -> Option<String> {
    let mut got: Vec<AlertView> = groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter(|r| r.rule.alert.as_deref() == Some(case.alertname.as_str()))
        .flat_map(|r| r.alerts.active())
        .filter(|a| a.state == pyrite_core::rules::AlertState::Firing)
        .map(|a| (a.labels.clone(), a.annotations.clone()))
        .collect();
    let mut expected: Vec<AlertView> = case
        .exp_alerts
        .iter()
        .map(|a| {
            let mut labels = a.exp_labels.clone();
            labels.insert("alertname".into(), case.alertname.clone());
            (Labels::from_pairs(labels), a.exp_annotations.clone())
        })
        .collect();
    got.sort();
    expected.sort();
    if got == expected {
        return None;
    }
    let show = |alerts: &[AlertView]| {
        let items: Vec<String> = alerts
            .iter()
            .map(|(l, a)| {
                let mut annotations = String::new();
                let _ = write_notation(&mut annotations, a.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                format!("{{Labels:{l} Annotations:{annotations}}}")
            })
            .collect();
        format!("[{}]", items.join(", "))
    };
    Some(format!(
        "    alertname: {}, time: {}, \n        exp:{},\n        got:{}",
        case.alertname,
        case.eval_time,
        show(&expected),
        show(&got)
    ))
}

/// Equal, or (with `fuzzy_compare`) one unit in the last place apart.
fn same_value(a: f64, b: f64, fuzzy: bool) -> bool {
    a == b || (fuzzy && a.is_finite() && b.is_finite() && (a.to_bits() as i64 - b.to_bits() as i64).abs() <= 1)
}

/// Whether `got` is the sample `want` expects: floats as [`same_value`]; histograms, as
/// promtool compares their printed forms, in the same buckets with equal counts and the same
/// counter-reset hint.
fn same_point(want: &Point, got: &Point, fuzzy: bool) -> bool {
    match (want, got) {
        (Point::Value(a), Point::Value(b)) => same_value(*a, *b, fuzzy),
        (Point::Histogram(a), Point::Histogram(b)) => {
            let (mut a, mut b) = (FloatHistogram::clone(a), FloatHistogram::clone(b));
            a.compact(0).equals(b.compact(0)) && a.counter_reset_hint == b.counter_reset_hint
        }
        _ => false,
    }
}

fn check_promql(case: &PromqlTest, engine: &Engine, start: i64, fuzzy: bool) -> Option<String> {
    let at = start + case.eval_time.millis();
    let header = format!("    expr: {:?}, time: {}", case.expr, case.eval_time);
    let got =
        parse_with(&case.expr, parse_options()).map_err(RuleError::from).and_then(|expr| engine.queries()(&expr, at));
    let mut got: Vec<(Labels, Point)> = match got {
        Ok(Value::Vector(series)) => series
            .into_iter()
            .filter_map(|s| {
                let point = match (s.values.first().copied().flatten(), s.histogram(0)) {
                    (Some(v), _) => Point::Value(v),
                    (None, Some(h)) => Point::Histogram(h.clone()),
                    (None, None) => return None,
                };
                Some((s.labels, point))
            })
            .collect(),
        Ok(Value::Scalar(v)) => vec![(Labels::default(), Point::Value(v[0]))],
        Ok(other) => return Some(format!("{header}, err: unexpected result {other:?}")),
        Err(e) => return Some(format!("{header}, err: {e}")),
    };
    let mut expected = Vec::new();
    for s in &case.exp_samples {
        let labels = if s.labels.trim().is_empty() { Ok(Labels::default()) } else { series_labels(&s.labels) };
        let value = match &s.histogram {
            Some(text) => parse_histogram(text).ok().map(|h| Point::Histogram(Arc::new(h))),
            None => s.value.as_ref().map_or(Some(0.0), |v| number(&scalar_text(v))).map(Point::Value),
        };
        match (labels, value) {
            (Ok(l), Some(v)) => expected.push((l, v)),
            (Err(e), _) => return Some(format!("{header}, err: expected labels: {e}")),
            (_, None) => return Some(format!("{header}, err: bad expected value")),
        }
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let equal = got.len() == expected.len()
        && got.iter().zip(&expected).all(|(g, e)| g.0 == e.0 && same_point(&e.1, &g.1, fuzzy));
    if equal {
        return None;
    }
    let show = |v: &[(Labels, Point)]| {
        let items: Vec<String> = v
            .iter()
            .map(|(l, x)| match x {
                Point::Value(x) => format!("{l} {x}"),
                Point::Histogram(h) => format!("{l} {h}"),
                Point::Gap => format!("{l}"),
            })
            .collect();
        format!("[{}]", items.join(", "))
    };
    Some(format!("{header},\n        exp: {}\n        got: {}", show(&expected), show(&got)))
}
