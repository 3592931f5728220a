//! Alert templates: Go's text/template language, as Prometheus uses it in alert labels and
//! annotations, through the `gotmpl` crate, with Prometheus's variables (`$labels`,
//! `$externalLabels`, `$externalURL`, `$value`) and functions (`humanize*`, `query`, `first`, …).
//!
//! Two Go behaviours gotmpl does not share are restored by rewriting the parsed template: a
//! final `goPrint` stage added to every printing action prints a float as Go's `%v` (`1e+06`,
//! not `1000000`), and a `goZero` stage after every field chain and `index` call makes a
//! missing label "" (Prometheus's label maps are `map[string]string`, whose missing keys are ""
//! everywhere, in comparisons and function arguments too, where gotmpl's untyped maps give nil).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use gotmpl::parse::{CommandNode, Expr, ListNode, Node, PipeNode, SmolStr};
use gotmpl::{MissingKey, Template, Value, ValueFunc};
use regex::Regex;
use thiserror::Error;

use crate::calendar::go_utc;
use crate::config::Duration;
use crate::labels::Labels;
use crate::rules::RuleError;

mod printf;

/// What a template sees: the alert's labels and value, the server's external labels and URL.
pub struct TemplateData<'a> {
    pub labels: &'a Labels,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
    pub value: f64,
}

/// Answers the `query "…"` calls of an expansion: an instant query at the evaluation time,
/// through whatever storage the caller has.
pub type QueryFn = Rc<dyn Fn(&str) -> Result<Vec<(Labels, f64)>, RuleError>>;

thread_local! {
    /// The [`QueryFn`] of the expansion running on this thread. gotmpl's functions must be
    /// `Send + Sync + 'static` and the storage behind a query need not be; an expansion runs on
    /// the thread that asked for it, so its `query` calls find their answerer here.
    static QUERY: RefCell<Option<QueryFn>> = const { RefCell::new(None) };
}

#[derive(Debug, Error, PartialEq)]
pub enum TemplateError {
    #[error("error parsing template {name}: {message}")]
    Parse { name: String, message: String },
    #[error("error executing template {name}: {message}")]
    Execute { name: String, message: String },
}

/// Upstream defines the variables ahead of every alert template.
const PREAMBLE: &str =
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// Parses a template as upstream checks rule files (`pyrite check rules`, reloads).
pub fn check(name: &str, text: &str) -> Result<(), TemplateError> {
    Compiled::new(name, text).map(|_| ())
}

/// Parses and expands `text` once.
pub fn expand(
    name: &str,
    text: &str,
    data: &TemplateData,
    t_ms: i64,
    query: &QueryFn,
) -> Result<String, TemplateError> {
    Compiled::new(name, text)?.expand(data, t_ms, query)
}

/// What the functions of one expansion see: set before it runs.
#[derive(Default)]
struct CallState {
    t_ms: i64,
    external_url: String,
}

/// A parsed template, expanded many times (each alert, each evaluation) without parsing again.
pub struct Compiled {
    name: String,
    template: Template,
    state: Arc<Mutex<CallState>>,
}

impl Compiled {
    pub fn new(name: &str, text: &str) -> Result<Compiled, TemplateError> {
        let state = Arc::new(Mutex::new(CallState::default()));
        let template = parse(name, text, &state)?;
        Ok(Compiled { name: name.to_string(), template, state })
    }

    /// Expands with `data` at evaluation time `t_ms`, answering `query` calls with `query`.
    pub fn expand(&self, data: &TemplateData, t_ms: i64, query: &QueryFn) -> Result<String, TemplateError> {
        let value = data_value(data);
        {
            let mut state = lock(&self.state);
            state.t_ms = t_ms;
            data.external_url.clone_into(&mut state.external_url);
        }
        /// Puts the outer expansion's [`QueryFn`] back, even if this one unwinds.
        struct Restore(Option<QueryFn>);
        impl Drop for Restore {
            fn drop(&mut self) {
                QUERY.with(|q| q.replace(self.0.take()));
            }
        }
        let _restore = Restore(QUERY.with(|q| q.replace(Some(query.clone()))));
        self.execute(&value)
    }

    fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = Capped::default();
        let executed = self.template.execute_template_fmt(&mut out, &self.name, data);
        let message = match executed {
            Ok(()) => return Ok(out.text),
            Err(_) if out.full => format!("output longer than {MAX_EXPANDED_BYTES} bytes"),
            Err(e) => e.to_string(),
        };
        Err(TemplateError::Execute { name: self.name.clone(), message })
    }
}

/// The most a template may expand to (upstream sets no bound): a `range` of ten million
/// `printf "%65535d"`s, both within the engine's limits, is 655 GB.
const MAX_EXPANDED_BYTES: usize = 4 << 20;

/// A template's output, refusing to grow past [`MAX_EXPANDED_BYTES`] (`full` once it would).
#[derive(Default)]
struct Capped {
    text: String,
    full: bool,
}

impl std::fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.text.len() + s.len() > MAX_EXPANDED_BYTES {
            self.full = true;
            return Err(std::fmt::Error);
        }
        self.text.push_str(s);
        Ok(())
    }
}

fn parse(name: &str, text: &str, state: &Arc<Mutex<CallState>>) -> Result<Template, TemplateError> {
    let parse_error = |e: gotmpl::TemplateError| TemplateError::Parse { name: name.into(), message: e.to_string() };
    let funcs: gotmpl::FuncMap = functions(state).into_iter().map(|(n, f)| (n.to_string(), f)).collect();
    let known = |f: &str| funcs.contains_key(f) || GO_BUILTINS.contains(&f);
    let mut undefined = None;
    let mut template = Template::new(name)
        .missing_key(MissingKey::ZeroValue)
        .funcs(funcs.clone())
        .parse(&format!("{PREAMBLE}{text}"))
        .map_err(parse_error)?;
    let names: Vec<String> = template.templates().into_iter().map(String::from).collect();
    for tree_name in names {
        if let Some(tree) = template.lookup(&tree_name) {
            let mut tree = tree.clone();
            rewrite(&mut tree, &mut |f| {
                if !known(f) {
                    undefined.get_or_insert_with(|| f.to_string());
                }
            });
            template = template.add_parse_tree(&tree_name, tree);
        }
    }
    match undefined {
        Some(f) => Err(TemplateError::Parse { name: name.into(), message: format!("function {f:?} not defined") }),
        None => Ok(template),
    }
}

/// Go's own template functions (gotmpl registers them; Go's parser knows them).
const GO_BUILTINS: [&str; 19] = [
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf", "println", "urlquery", "eq",
    "ge", "gt", "le", "lt", "ne",
];

/// Adds the `goPrint` stage to every action that prints and the `goZero` stages, and reports
/// each function called.
fn rewrite(list: &mut ListNode, called: &mut dyn FnMut(&str)) {
    for node in &mut list.nodes {
        match node {
            Node::Action(action) => {
                visit_pipe(&action.pipe, called);
                zero_missing(&mut action.pipe);
                if action.pipe.decl.is_empty() {
                    action.pipe.commands.push(stage(action.pos, "goPrint"));
                }
            }
            Node::List(inner) => rewrite(inner, called),
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                visit_pipe(&b.pipe, called);
                zero_missing(&mut b.pipe);
                rewrite(&mut b.body, called);
                if let Some(e) = &mut b.else_body {
                    rewrite(e, called);
                }
            }
            Node::Template(t) => {
                if let Some(pipe) = &mut t.pipe {
                    visit_pipe(pipe, called);
                    zero_missing(pipe);
                }
            }
            _ => {}
        }
    }
}

/// A pipeline stage calling `function` on what the stage before gave.
fn stage(pos: gotmpl::parse::Pos, function: &str) -> CommandNode {
    CommandNode { pos, args: vec![Expr::Identifier(pos, SmolStr::new(function))] }
}

/// Follows every field chain in `pipe` (`$labels.x`, `.Labels.x`, `(…).x`) and every `index`
/// call with a `goZero` stage, in nested pipelines too.
fn zero_missing(pipe: &mut PipeNode) {
    let mut commands = Vec::with_capacity(pipe.commands.len());
    for mut command in std::mem::take(&mut pipe.commands) {
        let calls = matches!(command.args.first(), Some(Expr::Identifier(..)));
        let indexes = matches!(command.args.first(), Some(Expr::Identifier(_, f)) if f == "index");
        let (pos, alone) = (command.pos, command.args.len() == 1);
        for (i, arg) in command.args.iter_mut().enumerate() {
            // A chain first among several arguments would be a method call: left as it is.
            zero_missing_in(arg, i > 0);
        }
        commands.push(command);
        if indexes || (alone && !calls) {
            commands.push(stage(pos, "goZero"));
        }
    }
    pipe.commands = commands;
}

/// [`zero_missing`] on an argument: nested pipelines, and a chain, wrapped as `(chain | goZero)`
/// if it is an argument (`wrap`) rather than its command's only word, which gets its stage after.
fn zero_missing_in(arg: &mut Expr, wrap: bool) {
    let chain = match arg {
        Expr::Pipe(_, inner) => {
            zero_missing(inner);
            false
        }
        Expr::Chain(_, inner, _) => {
            zero_missing_in(inner, false);
            true
        }
        Expr::Field(_, fields) | Expr::Variable(_, _, fields) => !fields.is_empty(),
        _ => false,
    };
    if chain && wrap {
        let pos = arg.pos();
        let inner = std::mem::replace(arg, Expr::Nil(pos));
        let commands = vec![CommandNode { pos, args: vec![inner] }, stage(pos, "goZero")];
        *arg = Expr::Pipe(pos, PipeNode { pos, decl: Vec::new(), commands, is_assign: false });
    }
}

fn visit_pipe(pipe: &PipeNode, called: &mut dyn FnMut(&str)) {
    for arg in pipe.commands.iter().flat_map(|c| &c.args) {
        visit_expr(arg, called);
    }
}

fn visit_expr(e: &Expr, called: &mut dyn FnMut(&str)) {
    match e {
        Expr::Identifier(_, f) => called(f),
        Expr::Pipe(_, p) => visit_pipe(p, called),
        Expr::Chain(_, inner, _) => visit_expr(inner, called),
        _ => {}
    }
}

fn key(s: &str) -> Arc<str> {
    Arc::from(s)
}

fn map(entries: impl IntoIterator<Item = (Arc<str>, Value)>) -> Value {
    Value::Map(Arc::new(entries.into_iter().collect::<BTreeMap<_, _>>()))
}

fn labels_value(labels: &Labels) -> Value {
    map(labels.iter().map(|l| (key(&l.name), Value::String(key(&l.value)))))
}

fn data_value(data: &TemplateData) -> Value {
    map([
        (key("Labels"), labels_value(data.labels)),
        (key("ExternalLabels"), labels_value(data.external_labels)),
        (key("ExternalURL"), Value::String(key(data.external_url))),
        (key("Value"), Value::Float(data.value)),
    ])
}

fn sample_value(labels: &Labels, v: f64) -> Value {
    map([(key("Labels"), labels_value(labels)), (key("Value"), Value::Float(v))])
}

fn fail(message: impl Into<String>) -> gotmpl::TemplateError {
    gotmpl::TemplateError::Exec(message.into())
}

fn arity(name: &str, args: &[Value], n: usize) -> gotmpl::Result<()> {
    if args.len() == n {
        Ok(())
    } else {
        Err(fail(format!("wrong number of args for {name}: want {n} got {}", args.len())))
    }
}

fn string_arg(name: &str, v: &Value) -> gotmpl::Result<String> {
    match v {
        Value::String(s) => Ok(s.to_string()),
        Value::Nil => Ok(String::new()),
        other => Err(fail(format!("{name}: expected a string, got {}", other.type_name()))),
    }
}

/// Upstream's `convertToFloat`: numbers, and strings that parse as one.
fn float_arg(v: &Value) -> gotmpl::Result<f64> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Uint(u) => Ok(*u as f64),
        Value::String(s) => {
            crate::series_notation::number(s).ok_or_else(|| fail(format!("can't convert {s:?} to float")))
        }
        other => Err(fail(format!("can't convert {} to float", other.type_name()))),
    }
}

fn sample_field<'v>(v: &'v Value, field: &str) -> Option<&'v Value> {
    match v {
        Value::Map(m) => m.get(field),
        _ => None,
    }
}

fn label_of(sample: &Value, name: &str) -> Value {
    sample_field(sample, "Labels").and_then(|l| sample_field(l, name)).cloned().unwrap_or(Value::String(key("")))
}

fn one_float(name: &'static str, f: impl Fn(f64) -> String + Send + Sync + 'static) -> ValueFunc {
    one_float_or_error(name, move |v| Ok(f(v)))
}

fn one_float_or_error(
    name: &'static str,
    f: impl Fn(f64) -> gotmpl::Result<String> + Send + Sync + 'static,
) -> ValueFunc {
    Arc::new(move |args: &[Value]| {
        arity(name, args, 1)?;
        Ok(Value::String(key(&f(float_arg(&args[0])?)?)))
    })
}

fn one_string(name: &'static str, f: impl Fn(&str) -> String + Send + Sync + 'static) -> ValueFunc {
    Arc::new(move |args: &[Value]| {
        arity(name, args, 1)?;
        Ok(Value::String(key(&f(&string_arg(name, &args[0])?))))
    })
}

fn compile(pattern: &str) -> gotmpl::Result<Regex> {
    crate::re2::unanchored(pattern).map_err(|e| fail(format!("error parsing regexp: {e}")))
}

/// The state of an expansion (a panic in another, caught by the caller, leaves it usable: it is
/// set whole before each expansion).
fn lock(state: &Mutex<CallState>) -> std::sync::MutexGuard<'_, CallState> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Prometheus's template functions (upstream's `template.go`), plus `goPrint` and `goZero`
/// (see the module's doc) and `printf` as Go's; the time, the
/// external URL and the way to query come from `state`.
fn functions(state: &Arc<Mutex<CallState>>) -> Vec<(&'static str, ValueFunc)> {
    let (now, url, path) = (state.clone(), state.clone(), state.clone());
    let link = |tab: u8| {
        move |expr: &str| {
            let escaped: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
            format!("/graph?g0.expr={escaped}&g0.tab={tab}")
        }
    };
    vec![
        (
            "goPrint",
            Arc::new(|args: &[Value]| {
                Ok(match args.last() {
                    Some(Value::Float(f)) => Value::String(key(&go_float(*f, None))),
                    Some(Value::Nil) | None => Value::String(key("")),
                    Some(other) => other.clone(),
                })
            }),
        ),
        ("printf", Arc::new(printf::printf)),
        (
            "goZero",
            Arc::new(|args: &[Value]| {
                Ok(match args.last() {
                    Some(Value::Nil) | None => Value::String(key("")),
                    Some(other) => other.clone(),
                })
            }),
        ),
        (
            "query",
            Arc::new(move |args: &[Value]| {
                arity("query", args, 1)?;
                let q = string_arg("query", &args[0])?;
                let answer = QUERY.with(|q| q.borrow().clone()).ok_or_else(|| fail("query: no storage to query"))?;
                let result = answer(&q).map_err(|e| fail(e.to_string()))?;
                Ok(Value::List(result.iter().map(|(l, v)| sample_value(l, *v)).collect()))
            }),
        ),
        (
            "first",
            Arc::new(|args: &[Value]| {
                arity("first", args, 1)?;
                match &args[0] {
                    Value::List(items) if !items.is_empty() => Ok(items[0].clone()),
                    _ => Err(fail("first() called on vector with no elements")),
                }
            }),
        ),
        (
            "label",
            Arc::new(|args: &[Value]| {
                arity("label", args, 2)?;
                Ok(label_of(&args[1], &string_arg("label", &args[0])?))
            }),
        ),
        (
            "value",
            Arc::new(|args: &[Value]| {
                arity("value", args, 1)?;
                Ok(sample_field(&args[0], "Value").cloned().unwrap_or(Value::Float(0.0)))
            }),
        ),
        (
            "strvalue",
            Arc::new(|args: &[Value]| {
                arity("strvalue", args, 1)?;
                Ok(label_of(&args[0], "__value__"))
            }),
        ),
        (
            "args",
            Arc::new(|args: &[Value]| {
                Ok(map(args.iter().enumerate().map(|(i, a)| (key(&format!("arg{i}")), a.clone()))))
            }),
        ),
        (
            "reReplaceAll",
            Arc::new(|args: &[Value]| {
                arity("reReplaceAll", args, 3)?;
                let re = compile(&string_arg("reReplaceAll", &args[0])?)?;
                let (repl, text) = (string_arg("reReplaceAll", &args[1])?, string_arg("reReplaceAll", &args[2])?);
                Ok(Value::String(key(&crate::re2::replace_all(&re, &text, &repl))))
            }),
        ),
        (
            "match",
            Arc::new(|args: &[Value]| {
                arity("match", args, 2)?;
                Ok(Value::Bool(compile(&string_arg("match", &args[0])?)?.is_match(&string_arg("match", &args[1])?)))
            }),
        ),
        (
            "sortByLabel",
            Arc::new(|args: &[Value]| {
                arity("sortByLabel", args, 2)?;
                let label = string_arg("sortByLabel", &args[0])?;
                let Value::List(items) = &args[1] else { return Err(fail("sortByLabel: expected a query result")) };
                let mut sorted = items.to_vec();
                sorted.sort_by_key(|s| label_of(s, &label).to_string());
                Ok(Value::List(sorted.into()))
            }),
        ),
        ("safeHtml", one_string("safeHtml", str::to_string)),
        ("title", one_string("title", title)),
        ("toUpper", one_string("toUpper", go_upper)),
        ("toLower", one_string("toLower", go_lower)),
        ("stripPort", one_string("stripPort", strip_port)),
        ("stripDomain", one_string("stripDomain", strip_domain)),
        ("graphLink", one_string("graphLink", link(0))),
        ("tableLink", one_string("tableLink", link(1))),
        (
            "parseDuration",
            Arc::new(|args: &[Value]| {
                arity("parseDuration", args, 1)?;
                let d = Duration::parse(&string_arg("parseDuration", &args[0])?).map_err(fail)?;
                Ok(Value::Float(d.millis() as f64 / 1000.0))
            }),
        ),
        ("lt", comparison("lt", go_less)),
        ("le", comparison("le", |a, b| Ok(go_less(a, b)? || go_equal(a, b)?))),
        ("gt", comparison("gt", |a, b| Ok(!(go_less(a, b)? || go_equal(a, b)?)))),
        ("ge", comparison("ge", |a, b| Ok(!go_less(a, b)?))),
        ("humanize", one_float("humanize", humanize)),
        ("humanize1024", one_float("humanize1024", humanize1024)),
        ("humanizeDuration", one_float("humanizeDuration", humanize_duration)),
        ("humanizePercentage", one_float("humanizePercentage", |v| format!("{}%", go_float(v * 100.0, Some(4))))),
        ("humanizeTimestamp", one_float_or_error("humanizeTimestamp", humanize_timestamp)),
        ("toTime", one_float_or_error("toTime", float_to_time)),
        // Go's `time.Duration(v * time.Second)`, printed.
        ("toDuration", one_float("toDuration", |v| crate::calendar::go_duration((v * 1e9) as i64))),
        ("urlQueryEscape", one_string("urlQueryEscape", query_escape)),
        ("now", Arc::new(move |_: &[Value]| Ok(Value::Float(lock(&now).t_ms as f64 / 1000.0)))),
        (
            "pathPrefix",
            Arc::new(move |_: &[Value]| {
                let state = lock(&path);
                // Go's URL.Path: empty when the URL has no path.
                let url = url::Url::parse(&state.external_url).ok();
                Ok(Value::String(key(url.as_ref().map_or("", |u| u.path().trim_end_matches('/')))))
            }),
        ),
        ("externalURL", Arc::new(move |_: &[Value]| Ok(Value::String(key(&lock(&url).external_url))))),
    ]
}

fn g4(v: f64) -> String {
    go_float(v, Some(4))
}

fn scaled(mut v: f64, up: &[&str], down: &[&str], base: f64) -> String {
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in up {
            if v.abs() < base {
                break;
            }
            prefix = p;
            v /= base;
        }
    } else {
        for p in down {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= base;
        }
    }
    format!("{}{prefix}", g4(v))
}

const SMALL: [&str; 8] = ["m", "u", "n", "p", "f", "a", "z", "y"];

fn humanize(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return g4(v);
    }
    scaled(v, &["k", "M", "G", "T", "P", "E", "Z", "Y"], &SMALL, 1000.0)
}

fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return g4(v);
    }
    scaled(v, &["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"], &[], 1024.0)
}

fn humanize_duration(v: f64) -> String {
    if !v.is_finite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() < 1.0 {
        return format!("{}s", scaled(v, &[], &SMALL, 1000.0));
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let whole = v.abs() as i64;
    let (days, hours, minutes, seconds) = (whole / 86_400, whole / 3600 % 24, whole / 60 % 60, whole % 60);
    if days != 0 {
        format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
    } else if hours != 0 {
        format!("{sign}{hours}h {minutes}m {seconds}s")
    } else if minutes != 0 {
        format!("{sign}{minutes}m {seconds}s")
    } else {
        format!("{sign}{}s", g4(v.abs()))
    }
}

/// Go's `strings.ToUpper`: each character's simple upper case. Rust gives the full one: where
/// that is one character it is the simple one; where it is several (`ß` is `SS`), there is
/// none, and the character stays, but for Greek letters with ypogegrammeni (`ᾳ`), whose simple
/// upper case is the letter with prosgegrammeni (`ᾼ`).
fn go_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next(), u32::from(c)) {
                (Some(u), None, _) => u,
                (_, _, 0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7) => {
                    char::from_u32(u32::from(c) + 8).unwrap_or(c)
                }
                (_, _, 0x1FB3 | 0x1FC3 | 0x1FF3) => char::from_u32(u32::from(c) + 9).unwrap_or(c),
                _ => c,
            }
        })
        .collect()
}

/// Go's `strings.ToLower`: each character's single-character lower case (`İ` is `i`, where
/// Rust's full mapping adds a combining dot).
fn go_lower(s: &str) -> String {
    s.chars().map(|c| c.to_lowercase().next().unwrap_or(c)).collect()
}

/// `v` seconds as a time, NaN and infinities as numbers. Upstream goes through nanoseconds in
/// an `int64` and truncates to milliseconds, so `1700000000.25` prints as `…:20.249`; the same
/// steps give the same digits.
fn humanize_timestamp(v: f64) -> gotmpl::Result<String> {
    match v.is_finite() {
        true => float_to_time(v),
        false => Ok(g4(v)),
    }
}

/// `v` seconds as a time at Go's nanosecond resolution, or upstream's error (`floatToTime`).
fn float_to_time(v: f64) -> gotmpl::Result<String> {
    if !v.is_finite() {
        return Err(fail("value is NaN or Inf"));
    }
    let ns = v * 1e9;
    if ns >= i64::MAX as f64 || ns < i64::MIN as f64 {
        let v = go_float(v, None);
        return Err(fail(format!("{v} cannot be represented as a nanoseconds timestamp since it overflows int64")));
    }
    Ok(go_utc(ns as i64 / 1_000_000))
}

/// Go's `url.QueryEscape`: all but letters, digits and `-_.~` escaped, a space as `+`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's ordering of two basic values (`lt`): numbers of one kind, or strings; a NaN is never
/// less, and `le`/`gt`/`ge` are built from `lt` and `eq` as Go builds them, so `gt NaN 1.0` is
/// true as in Prometheus (gotmpl refuses to compare a NaN).
fn go_less(a: &Value, b: &Value) -> gotmpl::Result<bool> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Uint(x), Value::Uint(y)) => Ok(x < y),
        (Value::Int(x), Value::Uint(y)) => Ok(*x < 0 || (*x as u64) < *y),
        (Value::Uint(x), Value::Int(y)) => Ok(*y >= 0 && *x < *y as u64),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::String(x), Value::String(y)) => Ok(x < y),
        _ => Err(fail("incompatible types for comparison")),
    }
}

fn go_equal(a: &Value, b: &Value) -> gotmpl::Result<bool> {
    let nan = |v: &Value| matches!(v, Value::Float(x) if x.is_nan());
    Ok(!go_less(a, b)? && !go_less(b, a)? && !nan(a) && !nan(b))
}

fn comparison(name: &'static str, f: fn(&Value, &Value) -> gotmpl::Result<bool>) -> ValueFunc {
    Arc::new(move |args: &[Value]| {
        arity(name, args, 2)?;
        Ok(Value::Bool(f(&args[0], &args[1])?))
    })
}

/// Go's deprecated `strings.Title`: upper-cases each letter that follows a non-letter.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut after_letter = false;
    for c in s.chars() {
        if !after_letter {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        after_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

/// `host:port` → host, as Go's `net.SplitHostPort` (brackets of IPv6 removed); anything else
/// unchanged.
fn strip_port(s: &str) -> String {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((host, port)) = rest.split_once("]:") {
            if !port.contains(':') {
                return host.to_string();
            }
        }
        return s.to_string();
    }
    match s.rsplit_once(':') {
        Some((host, _)) if !host.contains(':') => host.to_string(),
        _ => s.to_string(),
    }
}

/// `host.domain:port` → `host:port`; IP addresses unchanged.
fn strip_domain(s: &str) -> String {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (s, None),
    };
    if host.parse::<std::net::IpAddr>().is_ok() || s.starts_with('[') {
        return s.to_string();
    }
    let short = host.split('.').next().unwrap_or(host);
    port.map_or_else(|| short.to_string(), |p| format!("{short}:{p}"))
}

/// A float as Go's `fmt` prints it: `%v` (shortest, `None`) or `%.Ng` (`Some(N)`).
pub fn go_float(v: f64, precision: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let sci = match precision {
        None => format!("{:e}", v.abs()),
        Some(p) => format!("{:.*e}", p.max(1) - 1, v.abs()),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let nd = digits.len() as i32;
    let dp = if v == 0.0 { 1 } else { exp + 1 };
    let eprec = match precision {
        None => 6,
        Some(p) if (p as i32) > nd && nd >= dp => nd,
        Some(p) => p.max(1) as i32,
    };
    let sign = if v.is_sign_negative() { "-" } else { "" };
    let x = dp - 1;
    if x < -4 || x >= eprec {
        let frac = &digits[1..];
        let dot = if frac.is_empty() { "" } else { "." };
        let esign = if x < 0 { '-' } else { '+' };
        return format!("{sign}{}{dot}{frac}e{esign}{:02}", &digits[..1], x.abs());
    }
    let body = if dp <= 0 {
        format!("0.{}{digits}", "0".repeat((-dp) as usize))
    } else if dp >= nd {
        format!("{digits}{}", "0".repeat((dp - nd) as usize))
    } else {
        format!("{}.{}", &digits[..dp as usize], &digits[dp as usize..])
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, value: f64) -> String {
        let labels = Labels::from_pairs([("instance", "web-1.example.com:9100"), ("job", "node")]);
        let external = Labels::from_pairs([("cluster", "eu")]);
        let data = TemplateData {
            labels: &labels,
            external_labels: &external,
            external_url: "http://prom:9090/prometheus",
            value,
        };
        let query: QueryFn = Rc::new(|q: &str| match q {
            "up" => Ok(vec![(Labels::from_pairs([("job", "b")]), 1.0), (Labels::from_pairs([("job", "a")]), 0.0)]),
            _ => Err(RuleError::Query(crate::promql::EvalError::Execution(format!("no such query {q}")))),
        });
        expand("__alert_test", text, &data, 1_700_000_000_000, &query).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn output_past_four_mebibytes_is_an_error() {
        let out = run("{{ range 1000 }}{{ printf \"%65535d\" 0 }}{{ end }}", 0.0);
        assert_eq!(out, "ERR error executing template __alert_test: output longer than 4194304 bytes");
        assert_eq!(run("{{ range 10 }}{{ printf \"%65535d\" 0 }}{{ end }}", 0.0).len(), 655_350);
        // Cut inside a character: the same error.
        let out = run("{{ range 64 }}{{ printf \"%65535d\" 0 }}{{ end }}{{ printf \"%63d\" 0 }}é", 0.0);
        assert_eq!(out, "ERR error executing template __alert_test: output longer than 4194304 bytes");
    }

    #[test]
    fn floats_print_as_go_prints_them() {
        let cases = [
            (1e6, None, "1e+06"),
            (123456.0, None, "123456"),
            (1234567.0, None, "1.234567e+06"),
            (0.1, None, "0.1"),
            (1.5e-7, None, "1.5e-07"),
            (-2.5, None, "-2.5"),
            (0.0, None, "0"),
            (12345.0, Some(4), "1.234e+04"),
            (1234.0, Some(4), "1234"),
            (0.5, Some(4), "0.5"),
            (0.0001234, Some(4), "0.0001234"),
            (0.00001234, Some(4), "1.234e-05"),
            (100.0, Some(4), "100"),
            (f64::INFINITY, Some(4), "+Inf"),
        ];
        for (v, p, want) in cases {
            assert_eq!(go_float(v, p), want, "{v} {p:?}");
        }
    }

    #[test]
    fn prometheus_variables_and_functions() {
        assert_eq!(
            run("{{ $labels.instance }} {{ $value }} [{{ $labels.missing }}]", 1e6),
            "web-1.example.com:9100 1e+06 []"
        );
        assert_eq!(
            run("{{ $externalLabels.cluster }} {{ $externalURL }} {{ pathPrefix }}", 0.0),
            "eu http://prom:9090/prometheus /prometheus"
        );
        assert_eq!(run("{{ $value | humanizePercentage }}", 0.123456), "12.35%");
        assert_eq!(run("{{ humanize $value }}", 1234567.0), "1.235M");
        assert_eq!(run("{{ humanize $value }}", 0.00123), "1.23m");
        assert_eq!(run("{{ humanize1024 $value }}", 1048576.0), "1Mi");
        assert_eq!(run("{{ humanizeDuration $value }}", 90061.0), "1d 1h 1m 1s");
        assert_eq!(run("{{ humanizeDuration $value }}", 0.25), "250ms");
        assert_eq!(run("{{ humanizeDuration $value }}", 12.3456), "12.35s");
        assert_eq!(run("{{ humanizeTimestamp $value }}", 1_435_065_584.128), "2015-06-23 13:19:44.128 +0000 UTC");
        assert_eq!(run("{{ humanizeTimestamp $value }}", 1_700_000_000.25), "2023-11-14 22:13:20.249 +0000 UTC");
        assert_eq!(
            run("{{ gt $value 1.0 }} {{ lt $value 1.0 }} {{ ge $value 1.0 }} {{ le 1 2 }}", f64::NAN),
            "true false true true"
        );
        assert_eq!(run("{{ printf \"%.2f\" $value }}", 1.23456), "1.23");
        assert_eq!(run("{{ if gt $value 10.0 }}high{{ else }}low{{ end }}", 11.0), "high");
        assert_eq!(
            run("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}", 0.0),
            "instance=web-1.example.com:9100;job=node;"
        );
        assert_eq!(
            run("{{ $labels.job | toUpper }} {{ title \"hello world\" }} {{ toLower \"AB\" }}", 0.0),
            "NODE Hello World ab"
        );
        assert_eq!(
            run("{{ stripPort $labels.instance }} {{ stripDomain $labels.instance }}", 0.0),
            "web-1.example.com web-1:9100"
        );
        assert_eq!(
            run("{{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }} {{ match \"^web\" $labels.instance }}", 0.0),
            "web-1.example.com true"
        );
        // Go's Perl classes are ASCII: an Arabic-Indic three is no `\d`.
        assert_eq!(
            run("{{ match \"\\\\d\" \"\u{663}\" }} {{ reReplaceAll \"\\\\w+\" \"x\" \"é-a\" }}", 0.0),
            "false é-x"
        );
        assert_eq!(
            run("{{ with query \"up\" }}{{ . | first | value }} {{ . | first | label \"job\" }}{{ end }}", 0.0),
            "1 b"
        );
        assert_eq!(
            run("{{ range query \"up\" | sortByLabel \"job\" }}{{ .Labels.job }}={{ .Value }} {{ end }}", 0.0),
            "a=0 b=1 "
        );
        assert_eq!(
            run("{{ template \"x\" args 1 \"two\" }}{{ define \"x\" }}{{ .arg1 }}{{ .arg0 }}{{ end }}", 0.0),
            "two1"
        );
        assert_eq!(
            run("{{ parseDuration \"1m30s\" }} {{ graphLink \"up == 0\" }}", 0.0),
            "90 /graph?g0.expr=up+%3D%3D+0&g0.tab=0"
        );
    }

    /// A missing label is "" wherever Go reads it, as in Prometheus's `map[string]string`.
    #[test]
    fn a_missing_label_is_the_empty_string_in_comparisons_and_arguments() {
        assert_eq!(run("{{ if ne $labels.missing \"\" }}has{{ else }}none{{ end }}", 0.0), "none");
        assert_eq!(run("{{ if eq .Labels.missing \"\" }}none{{ end }}", 0.0), "none");
        assert_eq!(run("{{ printf \"%s is down\" $labels.missing }}", 0.0), " is down");
        assert_eq!(run("{{ len $labels.missing }} {{ $labels.missing | len }}", 0.0), "0 0");
        assert_eq!(run("{{ index $labels \"missing\" | printf \"%q\" }}", 0.0), "\"\"");
        assert_eq!(
            run("{{ html (index $labels \"missing\") }}|{{ $x := $labels.missing }}{{ printf \"%q\" $x }}", 0.0),
            "|\"\""
        );
        assert_eq!(run("{{ with $labels.job }}{{ . }}{{ end }} {{ printf \"%s\" $labels.job }}", 0.0), "node node");
        assert_eq!(
            run("{{ define \"t\" }}[{{ .missing | printf \"%s\" }}]{{ end }}{{ template \"t\" $labels }}", 0.0),
            "[]"
        );
    }

    /// `printf` formats floats as Go's `fmt`: `%v` is `%g`, infinities and NaN in Go's words.
    #[test]
    fn printf_formats_floats_as_go() {
        assert_eq!(run("{{ printf \"%.2f\" $value }}", f64::INFINITY), "+Inf");
        assert_eq!(run("{{ printf \"%.2f|%e|%g\" $value $value $value }}", f64::NEG_INFINITY), "-Inf|-Inf|-Inf");
        assert_eq!(run("{{ printf \"%.2f %+v\" $value $value }}", f64::NAN), "NaN +NaN");
        assert_eq!(run("{{ printf \"%v %v %v\" 1e21 1e12 5e-324 }}", 0.0), "1e+21 1e+12 5e-324");
        assert_eq!(run("{{ printf \"%v\" $value }}", -1234567.891), "-1.234567891e+06");
        assert_eq!(
            run("{{ printf \"[%8.2f|%-6v|%+v|%06v|% v]\" $value 1.5 1.5 -1.5 2.0 }}", f64::INFINITY),
            "[    +Inf|1.5   |+1.5|-001.5| 2]"
        );
        assert_eq!(run("{{ printf \"%d %s %5.1f %.3v %%\" 3 \"x\" 2.5 3.14159 }}", 0.0), "3 x   2.5 3.14 %");
        assert_eq!(run("{{ printf \"%[2]d %[1]s\" \"x\" 3 }}", 0.0), "3 x");
        assert_eq!(run("{{ $value }} {{ printf \"%v\" $value }}", -0.0), "-0 -0");
        // Widths and precisions past 65,535 are clamped, as gotmpl's: no gigabyte, no panic.
        assert_eq!(run("{{ printf \"%99999999999v\" $value }}", 1.5).len(), 65_535);
        assert!(
            run("{{ printf \"%.70000v|%99999999999999999999.99999999999999v\" $value $value }}", 1.5).len() < 140_000
        );
    }

    /// Upstream 3.x's `toDuration` and `urlQueryEscape`, and its errors for times that are no
    /// times.
    #[test]
    fn durations_escapes_and_times_out_of_range() {
        assert_eq!(run("{{ toDuration 3723.5 }} {{ $value | toDuration }}", -0.25), "1h2m3.5s -250ms");
        assert_eq!(run("{{ toUpper \"straße ﬁx ᾳ ᾀ\" }} {{ toLower \"İSTANBUL\" }}", 0.0), "STRAßE ﬁX ᾼ ᾈ istanbul");
        assert_eq!(run("{{ urlQueryEscape \"a b*~/é\" }}", 0.0), "a+b%2A~%2F%C3%A9");
        assert_eq!(run("{{ toTime 1.5 }}", 0.0), "1970-01-01 00:00:01.5 +0000 UTC");
        assert_eq!(run("{{ humanizeTimestamp $value }}", f64::NAN), "NaN");
        assert!(run("{{ toTime $value }}", f64::NAN).ends_with("value is NaN or Inf"));
        let huge = run("{{ humanizeTimestamp 1e12 }}", 0.0);
        assert!(
            huge.ends_with("1e+12 cannot be represented as a nanoseconds timestamp since it overflows int64"),
            "{huge}"
        );
    }

    #[test]
    fn errors_name_the_template() {
        assert!(run("{{ first (query \"nothing\") }}", 0.0).contains("no such query nothing"));
        assert!(run(
            "{{ query \"up\" | first | value | humanize }} {{ first (query \"up\" | sortByLabel \"x\") | value }}",
            0.0
        )
        .starts_with("1 "));
        let e = check("__alert_A", "{{ $labels.instance ").unwrap_err();
        assert!(e.to_string().starts_with("error parsing template __alert_A: "), "{e}");
        assert!(check("__alert_A", "{{ nosuchfunction 1 }}").is_err());
    }
}
