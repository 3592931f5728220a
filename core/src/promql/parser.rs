//! PromQL text → [`Expr`], with upstream's type checks.
//!
//! pest recognises the syntax (grammar.pest); a Pratt parser folds operators by precedence
//! (`or` < `and`/`unless` < comparisons < `+ -` < `* / % atan2` < unary `-`/`+` < `^`, all
//! left-associative except `^`); then each node is checked the way upstream's parser checks it,
//! with upstream's messages, so that an invalid query fails at parse time as a `bad_data` error.
//! Errors carry a `line:column` position.

use std::sync::OnceLock;

use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser as _;
use thiserror::Error;

use super::ast::*;
use super::functions::{self, Variadic};
use crate::config::Duration;
use crate::labels::{MatchOp, Matcher, METRIC_NAME};

#[derive(pest_derive::Parser)]
#[grammar = "promql/grammar.pest"]
struct Grammar;

/// A query that does not parse or does not type-check.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{line}:{column}: parse error: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Switches that change what the parser accepts.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions {
    /// `--enable-feature=promql-experimental-functions`.
    pub experimental_functions: bool,
    /// `--enable-feature=promql-extended-range-selectors`: the `anchored` and `smoothed`
    /// modifiers.
    pub extended_range_selectors: bool,
}

impl ParseOptions {
    /// Every optional syntax on, as upstream's test scripts are parsed.
    pub fn all() -> Self {
        ParseOptions { experimental_functions: true, extended_range_selectors: true }
    }
}

type Result<T> = std::result::Result<T, ParseError>;

fn error_at(pair: &Pair<Rule>, message: impl Into<String>) -> ParseError {
    let (line, column) = pair.as_span().start_pos().line_col();
    ParseError { line, column, message: message.into() }
}

fn pratt() -> &'static PrattParser<Rule> {
    static PRATT: OnceLock<PrattParser<Rule>> = OnceLock::new();
    PRATT.get_or_init(|| {
        PrattParser::new()
            .op(Op::infix(Rule::op_or, Assoc::Left))
            .op(Op::infix(Rule::op_and, Assoc::Left) | Op::infix(Rule::op_unless, Assoc::Left))
            .op(Op::infix(Rule::op_eql, Assoc::Left)
                | Op::infix(Rule::op_neq, Assoc::Left)
                | Op::infix(Rule::op_lte, Assoc::Left)
                | Op::infix(Rule::op_lss, Assoc::Left)
                | Op::infix(Rule::op_gte, Assoc::Left)
                | Op::infix(Rule::op_gtr, Assoc::Left)
                | Op::infix(Rule::op_trim_upper, Assoc::Left)
                | Op::infix(Rule::op_trim_lower, Assoc::Left))
            .op(Op::infix(Rule::op_add, Assoc::Left) | Op::infix(Rule::op_sub, Assoc::Left))
            .op(Op::infix(Rule::op_mul, Assoc::Left)
                | Op::infix(Rule::op_div, Assoc::Left)
                | Op::infix(Rule::op_mod, Assoc::Left)
                | Op::infix(Rule::op_atan2, Assoc::Left))
            .op(Op::prefix(Rule::neg) | Op::prefix(Rule::pos))
            .op(Op::infix(Rule::op_pow, Assoc::Right))
            .op(Op::postfix(Rule::range_suffix)
                | Op::postfix(Rule::offset_mod)
                | Op::postfix(Rule::at_mod)
                | Op::postfix(Rule::extension_mod))
    })
}

fn duration_pratt() -> &'static PrattParser<Rule> {
    static PRATT: OnceLock<PrattParser<Rule>> = OnceLock::new();
    PRATT.get_or_init(|| {
        PrattParser::new()
            .op(Op::infix(Rule::dur_add, Assoc::Left) | Op::infix(Rule::dur_sub, Assoc::Left))
            .op(Op::infix(Rule::dur_mul, Assoc::Left)
                | Op::infix(Rule::dur_div, Assoc::Left)
                | Op::infix(Rule::dur_mod, Assoc::Left))
            .op(Op::prefix(Rule::dur_sign))
            .op(Op::infix(Rule::dur_pow, Assoc::Right))
    })
}

/// A duration as written: fixed (ms) or depending on the query.
enum ParsedDuration {
    Fixed(i64),
    Dynamic(DurationExpr),
}

/// Folds a duration expression that does not depend on the query into milliseconds.
fn fold_duration(e: DurationExpr, pair: &Pair<Rule>) -> Result<ParsedDuration> {
    if e.is_dynamic() {
        return Ok(ParsedDuration::Dynamic(e));
    }
    let ms = (e.seconds(0.0, 0.0) * 1000.0).round();
    if !ms.is_finite() || ms.abs() > 9.2e18 {
        return Err(error_at(pair, format!("duration {e} is out of range")));
    }
    Ok(ParsedDuration::Fixed(ms as i64))
}

/// A `dur_expr` pair as an expression tree.
fn duration_expr(pair: Pair<Rule>) -> Result<DurationExpr> {
    duration_pratt()
        .map_primary(duration_atom)
        .map_prefix(|op, e| Ok(if op.as_str() == "-" { DurationExpr::Neg(Box::new(e?)) } else { e? }))
        .map_infix(|a, op, b| {
            let bop = match op.as_rule() {
                Rule::dur_add => BinaryOp::Add,
                Rule::dur_sub => BinaryOp::Sub,
                Rule::dur_mul => BinaryOp::Mul,
                Rule::dur_div => BinaryOp::Div,
                Rule::dur_mod => BinaryOp::Mod,
                _ => BinaryOp::Pow,
            };
            Ok(DurationExpr::Binary(bop, Box::new(a?), Box::new(b?)))
        })
        .parse(pair.into_inner())
}

/// One `dur_atom`: a literal (duration or seconds), parentheses, or a duration function.
fn duration_atom(atom: Pair<Rule>) -> Result<DurationExpr> {
    let inner = atom.into_inner().next().expect("an atom holds one alternative");
    Ok(match inner.as_rule() {
        Rule::dur_literal => {
            let lit = inner.into_inner().next().expect("a literal");
            match lit.as_rule() {
                Rule::duration => DurationExpr::Seconds(parse_duration(&lit)? as f64 / 1000.0),
                _ => DurationExpr::Seconds(check_duration_seconds(&lit, number_value(&lit)?)?),
            }
        }
        Rule::dur_paren => duration_expr(inner.into_inner().next().expect("parens hold an expression"))?,
        Rule::dur_step => DurationExpr::Step,
        Rule::dur_range => DurationExpr::Range,
        rule => {
            let mut args = inner.into_inner();
            let a = Box::new(duration_expr(args.next().expect("first argument"))?);
            let b = Box::new(duration_expr(args.next().expect("second argument"))?);
            if rule == Rule::dur_min {
                DurationExpr::MinOf(a, b)
            } else {
                DurationExpr::MaxOf(a, b)
            }
        }
    })
}

/// Human names for grammar rules in "expected ..." messages.
fn rule_name(rule: &Rule) -> String {
    match rule {
        Rule::EOI => "end of input",
        Rule::expr | Rule::primary | Rule::operand => "expression",
        Rule::number | Rule::number_literal | Rule::signed_number => "number",
        Rule::string => "string",
        Rule::duration | Rule::dur_expr | Rule::dur_atom | Rule::dur_literal => "duration",
        Rule::label_name => "label name",
        Rule::metric_name | Rule::vector_selector => "metric name",
        Rule::match_op => "label matching operator",
        Rule::label_matcher => "label matcher",
        Rule::range_suffix => "\"[\"",
        Rule::offset_mod | Rule::offset_kw => "offset",
        Rule::label_matchers => "\"{\"",
        Rule::at_mod => "\"@\"",
        Rule::extension_mod => "anchored or smoothed",
        Rule::grouping => "by/without",
        Rule::bin_mod | Rule::bool_kw => "bool",
        Rule::matching => "on/ignoring",
        Rule::label_list => "label list",
        Rule::function_call | Rule::function_name => "function call",
        Rule::aggregation | Rule::agg_op => "aggregation",
        Rule::paren_expr => "\"(\"",
        r if format!("{r:?}").starts_with("op_") || format!("{r:?}").starts_with("kw_") => "binary operator",
        other => return format!("{other:?}"),
    }
    .to_string()
}

/// Parses a PromQL query with default options.
pub fn parse(input: &str) -> Result<Expr> {
    parse_with(input, ParseOptions::default())
}

/// Parses and type-checks a PromQL query.
pub fn parse_with(input: &str, options: ParseOptions) -> Result<Expr> {
    if input.trim().is_empty() {
        return Err(ParseError { line: 1, column: 1, message: "no expression found in input".into() });
    }
    super::depth::check(input)?;
    let query = grammar_parse(Rule::query, input)?;
    let expr_pair = query.into_inner().next().expect("a query holds one expression");
    let b = Builder { options };
    let mut expr = b.expr(expr_pair)?;
    super::stats_decoding::mark(&mut expr);
    Ok(expr)
}

/// The pair of a top rule of the grammar over all of `input`, or a parse error naming what was
/// expected where it went wrong.
fn grammar_parse(rule: Rule, input: &str) -> Result<Pair<'_, Rule>> {
    let mut pairs = Grammar::parse(rule, input).map_err(|e| {
        let (line, column) = match e.line_col {
            pest::error::LineColLocation::Pos(p) | pest::error::LineColLocation::Span(p, _) => p,
        };
        let message = match &e.variant {
            pest::error::ErrorVariant::ParsingError { positives, .. } => {
                let mut expected: Vec<String> = positives.iter().map(rule_name).collect();
                expected.sort();
                expected.dedup();
                let found = input.lines().nth(line - 1).and_then(|l| l.chars().nth(column - 1));
                let found = match found {
                    Some(c) => format!("unexpected character {c:?}"),
                    None => "unexpected end of input".to_string(),
                };
                if expected.is_empty() {
                    found
                } else {
                    format!("{found}, expected {}", expected.join(" or "))
                }
            }
            pest::error::ErrorVariant::CustomError { message } => message.clone(),
        };
        ParseError { line, column, message }
    })?;
    Ok(pairs.next().expect("a top rule always yields one pair"))
}

/// Parses a bare series selector (`up{job="a"}`, no offset, `@` or range) into its matchers,
/// as upstream's `ParseMetricSelector` does for the `match[]` of the API and federation: unlike
/// a selector in a query, it may match the empty string (`{__name__=~".*"}`); the endpoints
/// that refuse that check it themselves.
pub fn parse_metric_selector(input: &str) -> Result<Vec<Matcher>> {
    let selector = grammar_parse(Rule::metric_selector, input)?;
    let pair = selector.into_inner().next().expect("a metric selector holds a vector selector");
    Ok(Builder { options: ParseOptions::default() }.selector_unchecked(pair)?.0.matchers)
}

struct Builder {
    options: ParseOptions,
}

/// Upstream's error for a selector naming its metric twice.
fn named_twice_error(at: &Pair<Rule>, first: &str, second: &str) -> ParseError {
    error_at(at, format!("metric name must not be set twice: {first:?} or {second:?}"))
}

impl Builder {
    fn expr(&self, pair: Pair<Rule>) -> Result<Expr> {
        self.fold(pair.into_inner())
    }

    fn fold(&self, pairs: Pairs<Rule>) -> Result<Expr> {
        pratt()
            .map_primary(|p| self.primary(p))
            .map_prefix(|op, operand| self.prefix(op, operand?))
            .map_postfix(|operand, op| self.postfix(operand?, op))
            .map_infix(|lhs, op, rhs| self.infix(lhs?, op, rhs?))
            .parse(pairs)
    }

    fn primary(&self, pair: Pair<Rule>) -> Result<Expr> {
        match pair.as_rule() {
            Rule::number_literal => Ok(Expr::Number(literal_value(&pair.into_inner().next().expect("a literal"))?)),
            Rule::string => Ok(Expr::String(unquote(&pair)?)),
            Rule::paren_expr => {
                let inner = pair.into_inner().next().expect("parens hold an expression");
                Ok(Expr::Paren(Box::new(self.expr(inner)?)))
            }
            Rule::aggregation => self.aggregation(pair),
            Rule::function_call => self.call(pair),
            Rule::vector_selector => self.selector(pair),
            other => unreachable!("not a primary: {other:?}"),
        }
    }

    fn prefix(&self, op: Pair<Rule>, operand: Expr) -> Result<Expr> {
        let t = operand.value_type();
        if t != ValueType::Scalar && t != ValueType::Vector {
            return Err(error_at(
                &op,
                format!(
                    "unary expression only allowed on expressions of type scalar or instant vector, got {:?}",
                    t.to_string()
                ),
            ));
        }
        Ok(match (op.as_rule(), operand) {
            (Rule::pos, e) => e,
            (_, Expr::Number(n)) => Expr::Number(-n),
            (_, e) => Expr::Neg(Box::new(e)),
        })
    }

    fn postfix(&self, operand: Expr, op: Pair<Rule>) -> Result<Expr> {
        match op.as_rule() {
            Rule::range_suffix => {
                let mut inner = op.clone().into_inner();
                let range_pair = inner.next().expect("a range has a duration");
                let range = fold_duration(duration_expr(range_pair.clone())?, &range_pair)?;
                if let ParsedDuration::Fixed(ms) = range {
                    if ms <= 0 {
                        return Err(error_at(&op, "duration must be greater than 0"));
                    }
                }
                let (range_ms, range_dyn) = split(range);
                if inner.next().is_some() {
                    let step = inner.next().map(|p| fold_duration(duration_expr(p.clone())?, &p)).transpose()?;
                    if let Some(ParsedDuration::Fixed(ms)) = step {
                        if ms <= 0 {
                            return Err(error_at(&op, "subquery step must be greater than 0"));
                        }
                    }
                    if operand.value_type() != ValueType::Vector {
                        return Err(error_at(
                            &op,
                            format!("subquery is only allowed on instant vector, got {} instead", operand.value_type()),
                        ));
                    }
                    let (step_ms, step_dyn) = match step {
                        None => (None, None),
                        Some(s) => {
                            let (ms, d) = split(s);
                            (d.is_none().then_some(ms), d)
                        }
                    };
                    let dynamic = (range_dyn.is_some() || step_dyn.is_some())
                        .then(|| Box::new(DynamicDurations { range: range_dyn, step: step_dyn, offset: None }));
                    return Ok(Expr::Subquery {
                        expr: Box::new(operand),
                        range: range_ms,
                        step: step_ms,
                        offset: 0,
                        at: None,
                        dynamic,
                    });
                }
                match operand {
                    Expr::VectorSelector(mut selector) => {
                        if let Some(d) = range_dyn {
                            selector.dynamic.get_or_insert_with(Default::default).range = Some(d);
                        }
                        Ok(Expr::MatrixSelector { selector, range: range_ms })
                    }
                    _ => Err(error_at(&op, "ranges only allowed for vector selectors")),
                }
            }
            Rule::offset_mod => {
                let mut parts = op.clone().into_inner().skip(1).peekable();
                let negative = parts.next_if(|p| p.as_rule() == Rule::dur_sign).is_some_and(|p| p.as_str() == "-");
                let atom = parts.next().expect("offset has a duration");
                let mut duration = duration_atom(atom.clone())?;
                if negative {
                    duration = DurationExpr::Neg(Box::new(duration));
                }
                let parsed = fold_duration(duration, &atom)?;
                let mut e = modifiable(operand, &op, "offset")?;
                let (offset, dynamic, _) = modifier_slots(&mut e);
                if *offset != 0 || dynamic.as_ref().is_some_and(|d| d.offset.is_some()) {
                    return Err(error_at(&op, "offset may not be set multiple times"));
                }
                match parsed {
                    ParsedDuration::Fixed(ms) => *offset = ms,
                    ParsedDuration::Dynamic(d) => dynamic.get_or_insert_with(Default::default).offset = Some(d),
                }
                Ok(e)
            }
            Rule::at_mod => {
                let inner = op.clone().into_inner().next().expect("@ has an argument");
                let at = match inner.as_rule() {
                    Rule::at_start => At::Start,
                    Rule::at_end => At::End,
                    _ => {
                        let mut parts = inner.clone().into_inner();
                        let first = parts.next().expect("a signed number has a body");
                        let (negative, body) = match first.as_rule() {
                            Rule::sign => (first.as_str() == "-", parts.next().expect("a number after the sign")),
                            _ => (false, first),
                        };
                        let secs = literal_value(&body)? * if negative { -1.0 } else { 1.0 };
                        let ms = (secs * 1000.0).round();
                        if !ms.is_finite() || ms.abs() > i64::MAX as f64 {
                            return Err(error_at(&op, "timestamp out of bounds for @ modifier"));
                        }
                        At::Timestamp(ms as i64)
                    }
                };
                let mut e = modifiable(operand, &op, "@")?;
                let (_, _, slot) = modifier_slots(&mut e);
                if slot.is_some() {
                    return Err(error_at(&op, "@ <timestamp> may not be set multiple times"));
                }
                *slot = Some(at);
                Ok(e)
            }
            Rule::extension_mod => self.extension(operand, &op),
            other => unreachable!("not a postfix operator: {other:?}"),
        }
    }

    /// `anchored` or `smoothed` after a selector, with upstream's checks.
    fn extension(&self, mut operand: Expr, op: &Pair<Rule>) -> Result<Expr> {
        let extension =
            if op.as_str().eq_ignore_ascii_case("anchored") { Extension::Anchored } else { Extension::Smoothed };
        let keyword = extension.keyword();
        if !self.options.extended_range_selectors {
            return Err(error_at(op, format!("{keyword} modifier is experimental and not enabled")));
        }
        match &mut operand {
            Expr::VectorSelector(vs) | Expr::MatrixSelector { selector: vs, .. } => {
                if vs.extension.is_some_and(|e| e != extension) {
                    return Err(error_at(op, "anchored and smoothed modifiers cannot be used together"));
                }
                vs.extension = Some(extension);
                Ok(operand)
            }
            Expr::Subquery { .. } => Err(error_at(op, format!("{keyword} modifier is not supported for subqueries"))),
            _ => Err(error_at(op, format!("{keyword} modifier not implemented"))),
        }
    }

    fn infix(&self, lhs: Expr, op: Pair<Rule>, rhs: Expr) -> Result<Expr> {
        let bop = match op.as_rule() {
            Rule::op_or => BinaryOp::Or,
            Rule::op_and => BinaryOp::And,
            Rule::op_unless => BinaryOp::Unless,
            Rule::op_eql => BinaryOp::Eql,
            Rule::op_neq => BinaryOp::Neq,
            Rule::op_lte => BinaryOp::Lte,
            Rule::op_trim_upper => BinaryOp::TrimUpper,
            Rule::op_trim_lower => BinaryOp::TrimLower,
            Rule::op_lss => BinaryOp::Lss,
            Rule::op_gte => BinaryOp::Gte,
            Rule::op_gtr => BinaryOp::Gtr,
            Rule::op_add => BinaryOp::Add,
            Rule::op_sub => BinaryOp::Sub,
            Rule::op_mul => BinaryOp::Mul,
            Rule::op_div => BinaryOp::Div,
            Rule::op_mod => BinaryOp::Mod,
            Rule::op_atan2 => BinaryOp::Atan2,
            Rule::op_pow => BinaryOp::Pow,
            other => unreachable!("not an infix operator: {other:?}"),
        };
        let mut modifiers = BinaryModifiers { pos: op.as_span().start(), ..BinaryModifiers::default() };
        let bin_mod =
            op.clone().into_inner().find(|p| p.as_rule() == Rule::bin_mod).expect("every operator has modifiers");
        for m in bin_mod.into_inner() {
            match m.as_rule() {
                Rule::bool_kw => modifiers.return_bool = true,
                Rule::matching => {
                    let mut parts = m.into_inner();
                    let kw = parts.next().expect("matching keyword");
                    let labels = label_list(parts.next().expect("matching labels"))?;
                    modifiers.matching =
                        Some(if kw.as_rule() == Rule::on_kw { MatchOn::On(labels) } else { MatchOn::Ignoring(labels) });
                }
                Rule::group_mod => {
                    let mut parts = m.into_inner();
                    let kw = parts.next().expect("group keyword");
                    let labels = parts.next().map(label_list).transpose()?.unwrap_or_default();
                    modifiers.group = Some(if kw.as_rule() == Rule::group_left_kw {
                        Grouping::Left(labels)
                    } else {
                        Grouping::Right(labels)
                    });
                }
                other => unreachable!("not a binary modifier: {other:?}"),
            }
        }
        check_binary(bop, &lhs, &rhs, &modifiers).map_err(|m| error_at(&op, m))?;
        Ok(Expr::Binary { op: bop, lhs: Box::new(lhs), rhs: Box::new(rhs), modifiers })
    }

    fn aggregation(&self, pair: Pair<Rule>) -> Result<Expr> {
        let mut op = None;
        let mut grouping = AggregateGrouping::By(Vec::new());
        let mut args: Vec<Expr> = Vec::new();
        let mut arg_pairs: Vec<Pair<Rule>> = Vec::new();
        for p in pair.clone().into_inner() {
            match p.as_rule() {
                Rule::agg_op => op = AggregateOp::parse(p.as_str()),
                Rule::grouping => {
                    let mut parts = p.into_inner();
                    let kw = parts.next().expect("grouping keyword");
                    let labels = label_list(parts.next().expect("grouping labels"))?;
                    grouping = if kw.as_rule() == Rule::by_kw {
                        AggregateGrouping::By(labels)
                    } else {
                        AggregateGrouping::Without(labels)
                    };
                }
                Rule::agg_args => {
                    for a in p.into_inner() {
                        args.push(self.expr(a.clone())?);
                        arg_pairs.push(a);
                    }
                }
                other => unreachable!("not part of an aggregation: {other:?}"),
            }
        }
        let op = op.expect("agg_op only matches known aggregations");
        // As upstream: a wrong count points at the aggregation, a wrong type at the argument.
        if args.is_empty() {
            return Err(error_at(&pair, "no arguments for aggregate expression provided"));
        }
        if matches!(op, AggregateOp::Limitk | AggregateOp::LimitRatio) && !self.options.experimental_functions {
            return Err(error_at(
                &pair,
                format!(
                    "limit and limit_ratio are not enabled: {:?} needs --enable-feature=promql-experimental-functions",
                    op.name()
                ),
            ));
        }
        let expected = if op.param_type().is_some() { 2 } else { 1 };
        if args.len() != expected {
            return Err(error_at(
                &pair,
                format!(
                    "wrong number of arguments for aggregate expression provided, expected {expected}, got {}",
                    args.len()
                ),
            ));
        }
        let expr = args.pop().expect("arity checked above");
        let expr_pair = arg_pairs.last().expect("arity checked above");
        if expr.value_type() != ValueType::Vector {
            return Err(error_at(
                expr_pair,
                format!("expected type instant vector in aggregation expression, got {}", expr.value_type()),
            ));
        }
        let param = args.pop();
        if let (Some(p), Some(t)) = (&param, op.param_type()) {
            if p.value_type() != t {
                return Err(error_at(
                    &arg_pairs[0],
                    format!("expected type {t} in aggregation parameter, got {}", p.value_type()),
                ));
            }
        }
        let param_pos = if param.is_some() { arg_pairs[0].as_span().start() } else { 0 };
        let expr_pos = expr_pair.as_span().start();
        Ok(Expr::Aggregate { op, expr: Box::new(expr), param: param.map(Box::new), grouping, param_pos, expr_pos })
    }

    fn call(&self, pair: Pair<Rule>) -> Result<Expr> {
        let mut inner = pair.clone().into_inner();
        let name = inner.next().expect("a call has a name");
        let func = functions::lookup(name.as_str())
            .ok_or_else(|| error_at(&name, format!("unknown function with name {:?}", name.as_str())))?;
        if func.experimental && !self.options.experimental_functions {
            return Err(error_at(&name, format!("function {:?} is not enabled", func.name)));
        }
        let pos =
            CallPositions { call: pair.as_span().start(), args: inner.clone().map(|a| a.as_span().start()).collect() };
        let args: Vec<Expr> = inner
            .enumerate()
            .map(|(i, a)| if func.name == "info" && i == 1 { self.info_label_selector(a) } else { self.expr(a) })
            .collect::<Result<_>>()?;
        func.check_arity(args.len()).map_err(|m| error_at(&pair, m))?;
        for (i, a) in args.iter().enumerate() {
            let want = func.arg_type(i);
            if a.value_type() != want {
                return Err(error_at(
                    &pair,
                    format!("expected type {want} in call to function {:?}, got {}", func.name, a.value_type()),
                ));
            }
        }
        debug_assert!(func.variadic != Variadic::None || args.len() == func.args.len());
        Ok(Expr::Call { func, args, pos })
    }

    /// `info`'s second argument: label matchers naming info metrics and data labels. Unlike a
    /// selector it may match the empty string (`{data=~".*"}`: enrich where possible).
    fn info_label_selector(&self, arg: Pair<Rule>) -> Result<Expr> {
        let mut inner = arg.clone().into_inner();
        match (inner.next(), inner.next()) {
            (Some(p), None) if p.as_rule() == Rule::vector_selector => {
                let (vs, named_twice) = self.selector_unchecked(p.clone())?;
                match named_twice {
                    Some((first, second)) => Err(named_twice_error(&p, &first, &second)),
                    None => Ok(Expr::VectorSelector(vs)),
                }
            }
            _ => Err(error_at(&arg, "expected label selectors as the second argument to info function")),
        }
    }

    fn selector(&self, pair: Pair<Rule>) -> Result<Expr> {
        let (vs, named_twice) = self.selector_unchecked(pair.clone())?;
        if let Some((first, second)) = named_twice {
            return Err(named_twice_error(&pair, &first, &second));
        }
        if vs.matchers.iter().all(|m| m.matches("")) {
            return Err(error_at(&pair, "vector selector must contain at least one non-empty matcher"));
        }
        Ok(Expr::VectorSelector(vs))
    }

    /// A selector's matchers, a name given as `name{...}` or `{"name", ...}` first, and the two
    /// names if a name outside the braces is set again inside them: a query refuses that
    /// ([`Builder::selector`]), as upstream's `checkAST` does (`{"a", __name__="b"}` is allowed);
    /// a `match[]` takes every matcher, as upstream's `ParseMetricSelector` skips the check.
    fn selector_unchecked(&self, pair: Pair<Rule>) -> Result<(VectorSelector, Option<(String, String)>)> {
        let mut names: Vec<String> = Vec::new();
        let mut outside = false;
        let mut matchers: Vec<Matcher> = Vec::new();
        for p in pair.clone().into_inner() {
            match p.as_rule() {
                Rule::metric_name => {
                    names.push(p.as_str().to_string());
                    outside = true;
                }
                Rule::label_matchers => {
                    for item in p.into_inner() {
                        match item.as_rule() {
                            Rule::quoted_metric_name => {
                                names.push(unquote(&item.into_inner().next().expect("a quoted name holds a string"))?)
                            }
                            Rule::label_matcher => matchers.push(self.matcher(item)?),
                            other => unreachable!("not a matcher: {other:?}"),
                        }
                    }
                }
                other => unreachable!("not part of a selector: {other:?}"),
            }
        }
        let named_twice = match (outside, names.first(), names.get(1)) {
            (true, Some(first), Some(second)) => Some((first.clone(), second.clone())),
            (true, Some(first), None) => {
                matchers.iter().find(|m| m.name == METRIC_NAME).map(|m| (first.clone(), m.value.clone()))
            }
            _ => None,
        };
        // The selector's name only when nothing else matches on the name: it is printed in
        // place of its matcher.
        let name = match names.as_slice() {
            [only] if !matchers.iter().any(|m| m.name == METRIC_NAME) => Some(only.clone()),
            _ => None,
        };
        matchers.splice(0..0, names.into_iter().map(|n| Matcher::equal(METRIC_NAME, n)));
        let pos = pair.as_span().start();
        let selector = VectorSelector {
            name,
            matchers,
            offset: 0,
            at: None,
            dynamic: None,
            stats_only: false,
            extension: None,
            pos,
        };
        Ok((selector, named_twice))
    }

    fn matcher(&self, pair: Pair<Rule>) -> Result<Matcher> {
        let mut parts = pair.clone().into_inner();
        let name_pair = parts.next().expect("matcher name");
        let name = match name_pair.as_rule() {
            Rule::string => unquote(&name_pair)?,
            _ => name_pair.as_str().to_string(),
        };
        let op = match parts.next().expect("matcher op").as_str() {
            "=" => MatchOp::Equal,
            "!=" => MatchOp::NotEqual,
            "=~" => MatchOp::Regex,
            _ => MatchOp::NotRegex,
        };
        let value = unquote(&parts.next().expect("matcher value"))?;
        Matcher::new(name, op, value).map_err(|e| error_at(&pair, e.to_string()))
    }
}

/// Checks that `operand` may carry an offset or `@` modifier.
fn modifiable(operand: Expr, op: &Pair<Rule>, what: &str) -> Result<Expr> {
    match operand {
        Expr::VectorSelector(_) | Expr::MatrixSelector { .. } | Expr::Subquery { .. } => Ok(operand),
        _ => Err(error_at(
            op,
            format!(
                "{what} modifier must be preceded by an instant vector selector or range vector selector or a subquery"
            ),
        )),
    }
}

/// The offset, dynamic durations and `@` of the selector or subquery `e`.
fn modifier_slots(e: &mut Expr) -> (&mut i64, &mut Option<Box<DynamicDurations>>, &mut Option<At>) {
    match e {
        Expr::VectorSelector(vs) | Expr::MatrixSelector { selector: vs, .. } => {
            (&mut vs.offset, &mut vs.dynamic, &mut vs.at)
        }
        Expr::Subquery { offset, dynamic, at, .. } => (offset, dynamic, at),
        _ => unreachable!("checked by modifiable()"),
    }
}

/// A parsed duration as (fixed ms, or 0 with the dynamic expression).
fn split(d: ParsedDuration) -> (i64, Option<DurationExpr>) {
    match d {
        ParsedDuration::Fixed(ms) => (ms, None),
        ParsedDuration::Dynamic(e) => (0, Some(e)),
    }
}

/// Upstream's checks on a binary expression.
fn check_binary(op: BinaryOp, lhs: &Expr, rhs: &Expr, m: &BinaryModifiers) -> std::result::Result<(), String> {
    let (lt, rt) = (lhs.value_type(), rhs.value_type());
    let operand_ok = |t: ValueType| t == ValueType::Scalar || t == ValueType::Vector;
    if !operand_ok(lt) || !operand_ok(rt) {
        return Err("binary expression must contain only scalar and instant vector types".into());
    }
    if m.return_bool && !op.is_comparison() {
        return Err("bool modifier can only be used on comparison operators".into());
    }
    let both_scalar = lt == ValueType::Scalar && rt == ValueType::Scalar;
    if op.is_comparison() && both_scalar && !m.return_bool {
        return Err("comparisons between scalars must use BOOL modifier".into());
    }
    if op.is_trim() && both_scalar {
        return Err(format!("operator {:?} not allowed for Scalar operations", op.symbol()));
    }
    if op.is_set() && (lt == ValueType::Scalar || rt == ValueType::Scalar) {
        return Err(format!("set operator {:?} not allowed in binary scalar expression", op.symbol()));
    }
    if (m.matching.is_some() || m.group.is_some()) && (lt != ValueType::Vector || rt != ValueType::Vector) {
        return Err("vector matching only allowed between instant vectors".into());
    }
    if op.is_set() && m.group.is_some() {
        return Err(format!("no grouping allowed for {:?} operation", op.symbol()));
    }
    if let (Some(MatchOn::On(on)), Some(Grouping::Left(g) | Grouping::Right(g))) = (&m.matching, &m.group) {
        if let Some(l) = g.iter().find(|l| on.contains(l)) {
            return Err(format!("label {l:?} must not occur in ON and GROUP clause at once"));
        }
    }
    Ok(())
}

fn label_list(pair: Pair<Rule>) -> Result<Vec<String>> {
    pair.into_inner()
        .map(|p| match p.as_rule() {
            Rule::string => unquote(&p),
            _ => Ok(p.as_str().to_string()),
        })
        .collect()
}

/// The value of a number literal as upstream's parser reads it: first as a Go integer literal
/// (`0x1F`, octal `010`, decimal) that fits in an i64, otherwise as a float. A float past the
/// f64 range, or a hex literal past the i64 range (Go reads hex floats only with a `p`
/// exponent), is refused with strconv's message.
fn parse_number(s: &str) -> std::result::Result<f64, String> {
    let lower = s.to_ascii_lowercase();
    let int = match lower.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None if lower.len() > 1 && lower.starts_with('0') => i64::from_str_radix(&lower[1..], 8).ok(),
        None => lower.parse::<i64>().ok(),
    };
    if let Some(n) = int {
        return Ok(n as f64);
    }
    let float = match lower.as_str() {
        "inf" => f64::INFINITY,
        "nan" => f64::NAN,
        _ if lower.starts_with("0x") => return Err(format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")),
        _ => s.parse().expect("the grammar only admits valid decimals"),
    };
    if float.is_infinite() && lower != "inf" {
        return Err(format!("strconv.ParseFloat: parsing {s:?}: value out of range"));
    }
    Ok(float)
}

/// A number literal's value, or upstream's parse error at it.
fn number_value(pair: &Pair<Rule>) -> Result<f64> {
    parse_number(pair.as_str()).map_err(|e| error_at(pair, format!("error parsing number: {e}")))
}

/// The value of a number or duration literal (a duration counts its seconds).
fn literal_value(pair: &Pair<Rule>) -> Result<f64> {
    match pair.as_rule() {
        Rule::duration_literal => Ok(parse_duration(pair)? as f64 / 1000.0),
        _ => number_value(pair),
    }
}

/// Upstream's bound on a duration literal given as a number of seconds: its nanoseconds must
/// fit in an i64 (Go's `time.Duration`).
fn check_duration_seconds(pair: &Pair<Rule>, secs: f64) -> Result<f64> {
    const MAX_SECONDS: f64 = (1u64 << 63) as f64 / 1e9;
    if secs.abs() > MAX_SECONDS {
        return Err(error_at(pair, "duration out of range"));
    }
    Ok(secs)
}

/// A duration in ms: unit syntax, or a plain number of seconds.
fn parse_duration(pair: &Pair<Rule>) -> Result<i64> {
    let s = pair.as_str();
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = s.parse().map_err(|_| error_at(pair, format!("invalid duration {s:?}")))?;
        return Ok((check_duration_seconds(pair, secs)? * 1000.0).round() as i64);
    }
    Duration::parse(s).map(|d| d.millis()).map_err(|m| error_at(pair, m))
}

/// Upstream's lexer error for a string holding U+FFFD: Go reads an invalid UTF-8 byte as that
/// rune, and request text that is not UTF-8 reaches the parser with U+FFFD in its place.
const INVALID_UTF8: &str = "invalid UTF-8 rune";

/// The value of a string literal, checked as upstream's lexer checks it (no U+FFFD, escapes
/// complete and in range, the other quote not escapable) and decoded as its `strutil.Unquote`
/// decodes it: `\x` and octal escapes are bytes, which must form UTF-8 or are shown as U+FFFD;
/// raw (backquoted) strings keep their text.
fn unquote(pair: &Pair<Rule>) -> Result<String> {
    let text = pair.as_str();
    let quote = text.chars().next().expect("a string starts with its quote");
    let body = &text[1..text.len() - 1];
    let bad = |m: String| error_at(pair, m);
    if quote == '`' {
        if body.contains(char::REPLACEMENT_CHARACTER) {
            return Err(bad(INVALID_UTF8.into()));
        }
        return Ok(body.to_string());
    }
    let mut out = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == char::REPLACEMENT_CHARACTER {
            return Err(bad(INVALID_UTF8.into()));
        }
        if c != '\\' {
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            continue;
        }
        let e = chars.next().expect("the grammar ends no string with a lone backslash");
        let (digits, base, max) = match e {
            'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\' => {
                out.push(match e {
                    'a' => 0x07,
                    'b' => 0x08,
                    'f' => 0x0c,
                    'n' => b'\n',
                    'r' => b'\r',
                    't' => b'\t',
                    'v' => 0x0b,
                    _ => b'\\',
                });
                continue;
            }
            _ if e == quote => {
                out.push(e as u8);
                continue;
            }
            '0'..='7' => (3, 8, 0xff),
            'x' => (2, 16, 0xff),
            'u' => (4, 16, u32::from(char::MAX)),
            'U' => (8, 16, u32::from(char::MAX)),
            _ => return Err(bad(format!("unknown escape sequence {}", go_rune(e)))),
        };
        // An octal escape's first digit is `e`; the closing quote follows the body.
        let mut next = if base == 8 { Some(e) } else { chars.next() };
        let mut code = 0u32;
        for i in 0..digits {
            let c = next.unwrap_or(quote);
            let d =
                c.to_digit(base).ok_or_else(|| bad(format!("illegal character {} in escape sequence", go_rune(c))))?;
            code = code * base + d;
            if i + 1 < digits {
                next = chars.next();
            }
        }
        if code > max || (0xd800..0xe000).contains(&code) {
            return Err(bad("escape sequence is an invalid Unicode code point".into()));
        }
        match char::from_u32(code) {
            Some(c) if max > 0xff => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            _ => out.push(code as u8),
        }
    }
    Ok(String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// A rune as Go's `%#U` prints it: `U+0071 'q'`, without the quoted rune if it is not
/// printable (approximated here as control and non-ASCII space characters).
fn go_rune(c: char) -> String {
    let printable = !c.is_control() && (c == ' ' || !c.is_whitespace());
    if printable {
        format!("U+{:04X} '{c}'", u32::from(c))
    } else {
        format!("U+{:04X}", u32::from(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An aggregation that fails inside is not read again as a function call: with nested ones
    /// failing at the innermost, each level read its content twice (2^depth), and a 325-byte
    /// query took seconds (found by the promql_eval fuzz target), 40 levels forever.
    #[test]
    fn a_failing_nested_aggregation_is_read_once() {
        let query = format!("{}x +{}", "topk(1, ".repeat(40), ")".repeat(40));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(parse(&query).map(|_| ()).map_err(|e| e.message)));
        let outcome = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("parsed within 20 s");
        assert!(outcome.as_ref().is_err_and(|m| m.contains("unexpected")), "{outcome:?}");
    }

    /// Parses and prints back; the printer is canonical PromQL.
    fn round(q: &str) -> String {
        parse_with(q, ParseOptions::all()).map(|e| e.to_string()).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    fn err(q: &str) -> ParseError {
        parse(q).expect_err(q)
    }

    /// The error's text after the position.
    fn message(q: &str) -> String {
        err(q).message
    }

    #[test]
    fn strings_holding_u_fffd_are_refused_as_upstreams_lexer_refuses_invalid_utf8() {
        for q in ["\"\u{FFFD}\"", "'a\u{FFFD}'", "`\u{FFFD}`", "up{job=\"\u{FFFD}\"}", "{\"\u{FFFD}\"=\"a\"}"] {
            assert_eq!(message(q), "invalid UTF-8 rune", "{q}");
        }
        assert_eq!(err("1 + \"\u{FFFD}\"").column, 5, "at the string's quote");
        assert_eq!(parse("1 # \u{FFFD}\n").unwrap(), Expr::Number(1.0), "comments may hold anything");
    }

    #[test]
    fn escapes_are_checked_as_upstreams_lexer_checks_them() {
        let invalid = "escape sequence is an invalid Unicode code point";
        assert_eq!(message(r#""\400""#), invalid);
        assert_eq!(message(r#""\uD800""#), invalid);
        assert_eq!(message(r#""\U00110000""#), invalid);
        assert_eq!(message(r#""\3""#), "illegal character U+0022 '\"' in escape sequence");
        assert_eq!(message(r#""\u12""#), "illegal character U+0022 '\"' in escape sequence");
        assert_eq!(message(r#""\x4g""#), "illegal character U+0067 'g' in escape sequence");
        assert_eq!(message(r#""\q""#), "unknown escape sequence U+0071 'q'");
        assert_eq!(message(r#""\'""#), "unknown escape sequence U+0027 '''", "only the string's own quote");
        assert_eq!(parse(r#"'\''"#).unwrap(), Expr::String("'".into()));
        assert_eq!(parse(r#""\101\x42\u00e9""#).unwrap(), Expr::String("ABé".into()));
        assert_eq!(parse(r#""\xc3\xa9""#).unwrap(), Expr::String("é".into()), "escaped bytes form UTF-8");
        assert_eq!(
            parse(r#""\377""#).unwrap(),
            Expr::String("\u{FFFD}".into()),
            "a lone byte shows as in upstream's JSON"
        );
        // Printed, it is an escape that parses back (fuzzing: the raw U+FFFD does not parse).
        let lone = parse(r#""a\n\"b\x84\u09e0""#).unwrap();
        assert_eq!(lone.to_string(), r#""a\n\"b\ufffdৠ""#);
        assert_eq!(parse(&lone.to_string()).unwrap(), lone);
    }

    #[test]
    fn numbers_are_read_as_upstreams_parser_reads_them() {
        assert_eq!(message("1e309"), "error parsing number: strconv.ParseFloat: parsing \"1e309\": value out of range");
        assert_eq!(err("-1e309").column, 2);
        assert_eq!(
            message("0x7fffffffffffffffff"),
            "error parsing number: strconv.ParseFloat: parsing \"0x7fffffffffffffffff\": invalid syntax"
        );
        assert_eq!(parse("0x7fffffffffffffff").unwrap(), Expr::Number(i64::MAX as f64));
        assert_eq!(parse("99999999999999999999").unwrap(), Expr::Number(1e20));
        assert_eq!(parse("1e-400").unwrap(), Expr::Number(0.0));
        assert_eq!(parse("010").unwrap(), Expr::Number(8.0), "Go's integer literals: octal");
        assert_eq!(parse("089").unwrap(), Expr::Number(89.0), "not octal: a float");
        assert_eq!(parse("Inf").unwrap(), Expr::Number(f64::INFINITY));
    }

    #[test]
    fn durations_past_go_nanoseconds_are_refused() {
        for q in [
            "up[300y]",
            "up offset 300y",
            "up offset -300y",
            "up[300y:1y]",
            "up[1y:300y]",
            "up[10000000000]",
            "up[1e10]",
        ] {
            assert_eq!(message(q), "duration out of range", "{q}");
        }
        assert_eq!(err("up[1y:300y]").column, 7, "at the literal");
        assert!(parse("up[292y]").is_ok());
        assert!(parse("up[9223372036]").is_ok());
    }

    #[test]
    fn metric_selectors_are_bare_selectors_that_may_match_empty() {
        assert_eq!(parse_metric_selector(" up{job=\"a\"} ").unwrap().len(), 2);
        assert_eq!(parse_metric_selector("{__name__=~\".*\"}").unwrap().len(), 1, "the API checks emptiness");
        for q in ["up offset 5m", "up @ 1", "up[5m]", "sum(up)", "", "up{job=\"\u{FFFD}\"}"] {
            assert!(parse_metric_selector(q).is_err(), "{q}");
        }
    }

    #[test]
    fn literals() {
        assert_eq!(parse("1").unwrap(), Expr::Number(1.0));
        assert_eq!(parse(".5").unwrap(), Expr::Number(0.5));
        assert_eq!(parse("1e3").unwrap(), Expr::Number(1000.0));
        assert_eq!(parse("0x1F").unwrap(), Expr::Number(31.0));
        assert_eq!(parse("-Inf").unwrap(), Expr::Number(f64::NEG_INFINITY));
        assert!(matches!(parse("NaN").unwrap(), Expr::Number(n) if n.is_nan()));
        assert_eq!(parse(r#""a\n\"b\x41\u00e9""#).unwrap(), Expr::String("a\n\"bAé".into()));
        assert_eq!(parse("'it''s'").ok(), None);
        assert_eq!(parse("`raw\\n`").unwrap(), Expr::String("raw\\n".into()));
    }

    #[test]
    fn selectors() {
        assert_eq!(round("foo"), "foo");
        assert_eq!(round("foo{a=\"1\", b!=\"2\", c=~\"3\", d!~\"4\",}"), "foo{a=\"1\",b!=\"2\",c=~\"3\",d!~\"4\"}");
        assert_eq!(round("foo{z=\"1\", a=~\"x\"}"), "foo{a=~\"x\",z=\"1\"}", "sorted as upstream prints them");
        assert_eq!(round("{__name__=~\"a.*\"}"), "{__name__=~\"a.*\"}");
        assert_eq!(round("{\"my.metric\", \"a.b\"=\"x\"}"), "{\"my.metric\",\"a.b\"=\"x\"}");
        assert_eq!(round("foo{a=\"\\x00\\u0001\\n\\\"é\"}"), "foo{a=\"\\x00\\x01\\n\\\"é\"}");
        assert_eq!(round("\"\\a\\u2028\""), "\"\\a\\u2028\"");
        // Grouping labels that are not plain names print quoted the same way (found by fuzzing).
        assert_eq!(round("a and on (\"\\x00\", \"b:c\") b"), "a and on (\"\\x00\", \"b:c\") b");
        assert_eq!(round("foo:bar:rate5m"), "foo:bar:rate5m");
        assert_eq!(round("foo[5m]"), "foo[5m]");
        assert_eq!(round("foo[1h30m]"), "foo[1h30m]");
        assert_eq!(round("foo[90]"), "foo[1m30s]");
        assert_eq!(round("foo offset 5m"), "foo offset 5m");
        assert_eq!(round("foo offset -5m"), "foo offset -5m");
        assert_eq!(round("foo[5m] offset 1h"), "foo[5m] offset 1h");
        assert_eq!(round("foo @ 1609746000"), "foo @ 1609746000.000");
        assert_eq!(round("foo @ 1m40s"), "foo @ 100.000");
        assert_eq!(round("foo @ -10.5"), "foo @ -10.500");
        assert_eq!(round("predict_linear(foo[5m], 1h)"), "predict_linear(foo[5m], 3600)");
        assert_eq!(round("foo @ start()"), "foo @ start()");
        assert_eq!(round("foo[5m] @ end() offset 1m"), "foo[5m] @ end() offset 1m");
        assert_eq!(round("foo offset 1m @ 10.5"), "foo @ 10.500 offset 1m");
        // Keywords are fine as metric names where no operator can stand, except the words that
        // modify operators (as upstream; found by fuzzing: `a + +bool` printed as `a + bool`).
        assert_eq!(round("without"), "without");
        assert_eq!(round("bool_total + on:x"), "bool_total + on:x");
        for q in ["bool", "a + +bool", "-ON", "ignoring", "group_left", "group_right", "atan2"] {
            assert!(parse(q).is_err(), "{q}");
        }
        assert_eq!(round("sum_total"), "sum_total");
        assert_eq!(round("Infinity"), "Infinity");
    }

    #[test]
    fn subqueries() {
        assert_eq!(round("rate(foo[5m])[30m:1m]"), "rate(foo[5m])[30m:1m]");
        assert_eq!(round("foo[30m:]"), "foo[30m:]");
        assert_eq!(round("(a + b)[1h:5m] offset 1d"), "(a + b)[1h:5m] offset 1d");
        assert_eq!(round("max_over_time(rate(x[1m])[5m:] @ 100)"), "max_over_time(rate(x[1m])[5m:] @ 100.000)");
    }

    #[test]
    fn duration_expressions() {
        assert_eq!(round("foo[26m+4m]"), "foo[30m]");
        assert_eq!(round("foo[2m*(10+5)]"), "foo[30m]");
        assert_eq!(round("foo[1h30m % 1h]"), "foo[30m]");
        assert_eq!(round("foo[60*30]"), "foo[30m]");
        assert_eq!(round("foo[29s+1s:5s+5s]"), "foo[30s:10s]");
        assert_eq!(round("foo offset (2 * 2)"), "foo offset 4s");
        assert_eq!(round("foo[step()]"), "foo[step()]");
        assert_eq!(round("foo offset -step()"), "foo offset -step()");
        assert_eq!(round("foo[max_of(min_of(step()+1,1h),1ms)]"), "foo[max_of(min_of((step() + 1), 3600), 0.001)]");
        // After `offset` only one term belongs to the duration.
        let e = parse("foo offset 100 + 2").unwrap();
        assert!(matches!(e, Expr::Binary { op: BinaryOp::Add, .. }), "{e:?}");
        assert_eq!(err("foo[5m-5m]").message, "duration must be greater than 0");
    }

    #[test]
    fn operators_precedence_and_modifiers() {
        let p = |q: &str| {
            let e = parse(q).unwrap();
            fn shape(e: &Expr) -> String {
                match e {
                    Expr::Binary { op, lhs, rhs, .. } => format!("({} {} {})", shape(lhs), op.symbol(), shape(rhs)),
                    Expr::Neg(x) => format!("(-{})", shape(x)),
                    Expr::Paren(x) => shape(x),
                    other => other.to_string(),
                }
            }
            shape(&e)
        };
        assert_eq!(p("a + b * c"), "(a + (b * c))");
        assert_eq!(p("a - b - c"), "((a - b) - c)");
        assert_eq!(p("a ^ b ^ c"), "(a ^ (b ^ c))");
        assert_eq!(p("-a ^ b"), "(-(a ^ b))");
        assert_eq!(p("-a * b"), "((-a) * b)");
        assert_eq!(p("a or b and c unless d"), "(a or ((b and c) unless d))");
        assert_eq!(p("a > b + c"), "(a > (b + c))");
        assert_eq!(p("a == b != c"), "((a == b) != c)");
        assert_eq!(p("a atan2 b % c"), "((a atan2 b) % c)");
        assert_eq!(p("a < b <= c >= d > e"), "((((a < b) <= c) >= d) > e)");
        assert_eq!(p("a - -b"), "(a - (-b))");
        assert_eq!(p("1 - -1"), "(1 - -1)");
        assert_eq!(round("a > bool 1"), "a > bool 1");
        assert_eq!(round("a + on(x, y) b"), "a + on (x, y) b");
        assert_eq!(round("a * ignoring(x) group_left(y) b"), "a * ignoring (x) group_left (y) b");
        assert_eq!(round("a / on() group_right b"), "a / on () group_right () b");
        assert_eq!(round("a AND on(x) b"), "a and on (x) b");
        assert_eq!(round("a == bool on(x) b"), "a == bool on (x) b");
        assert_eq!(round("a - ignoring() b"), "a - b", "an empty ignoring() is left out, as upstream");
        assert_eq!(round("sum by (\"ü\", job) (a)"), "sum by (\"ü\", job) (a)");
    }

    #[test]
    fn aggregations_and_calls() {
        assert_eq!(round("sum(foo)"), "sum(foo)");
        assert_eq!(round("sum by (a, b) (foo)"), "sum by (a, b) (foo)");
        assert_eq!(round("sum(foo) by (a)"), "sum by (a) (foo)");
        assert_eq!(round("avg without (a) (foo)"), "avg without (a) (foo)");
        assert_eq!(round("SUM BY (group) (foo)"), "sum by (group) (foo)");
        assert_eq!(round("topk(5, foo)"), "topk(5, foo)");
        assert_eq!(round("count_values(\"v\", foo)"), "count_values(\"v\", foo)");
        assert_eq!(round("quantile by (x) (0.9, foo)"), "quantile by (x) (0.9, foo)");
        assert_eq!(round("sum by () (foo)"), "sum(foo)");
        assert_eq!(round("rate(foo[5m])"), "rate(foo[5m])");
        assert_eq!(round("round(foo, 5)"), "round(foo, 5)");
        assert_eq!(round("round(foo)"), "round(foo)");
        assert_eq!(round("time()"), "time()");
        assert_eq!(
            round("label_join(foo, \"d\", \",\", \"a\", \"b\", \"c\")"),
            "label_join(foo, \"d\", \",\", \"a\", \"b\", \"c\")"
        );
        assert_eq!(
            round("histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))"),
            "histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))"
        );
        assert_eq!(round("limitk(2, foo)"), "limitk(2, foo)");
        assert_eq!(round("foo # a comment\n + 1"), "foo + 1");
    }

    /// `anchored`/`smoothed` print where upstream prints them: after a range, else between
    /// `@` and `offset`; they bind to the selector before them, not to a binary operation.
    #[test]
    fn extended_range_selectors() {
        assert_eq!(round("a anchored"), "a anchored");
        assert_eq!(round("a[5m] SMOOTHED"), "a[5m] smoothed");
        assert_eq!(round("a{b=\"c\"}[5m] offset 1m anchored"), "a{b=\"c\"}[5m] anchored offset 1m");
        assert_eq!(round("a{b=\"c\"}[5m] anchored @ start() offset 1m"), "a{b=\"c\"}[5m] anchored @ start() offset 1m");
        assert_eq!(round("a smoothed offset 1m @ 10"), "a @ 10.000 smoothed offset 1m");
        assert_eq!(round("a anchored[5m]"), "a[5m] anchored");
        assert_eq!(round("a anchored anchored"), "a anchored");
        assert_eq!(round("rate(a[5m] anchored) + b smoothed"), "rate(a[5m] anchored) + b smoothed");
        assert_eq!(round("anchored + smoothed{x=\"1\"}"), "anchored + smoothed{x=\"1\"}", "still metric names");
        assert_eq!(round("sum by (anchored) (a)"), "sum by (anchored) (a)");
        let Expr::Binary { rhs, .. } = parse_with("a + b smoothed", ParseOptions::all()).unwrap() else {
            panic!("a binary operation")
        };
        assert!(matches!(*rhs, Expr::VectorSelector(VectorSelector { extension: Some(Extension::Smoothed), .. })));

        let with_flag = |q: &str| parse_with(q, ParseOptions::all()).expect_err(q).message;
        assert_eq!(err("rate(a[5m] anchored)").message, "anchored modifier is experimental and not enabled");
        assert_eq!(err("a smoothed").message, "smoothed modifier is experimental and not enabled");
        assert_eq!(with_flag("a anchored smoothed"), "anchored and smoothed modifiers cannot be used together");
        assert_eq!(with_flag("a[5m] smoothed anchored"), "anchored and smoothed modifiers cannot be used together");
        assert_eq!(with_flag("a[5m:1m] anchored"), "anchored modifier is not supported for subqueries");
        assert_eq!(with_flag("sum(a) smoothed"), "smoothed modifier not implemented");
        assert_eq!(with_flag("(a[5m]) anchored"), "anchored modifier not implemented");
        assert_eq!(with_flag("1[5m] smoothed"), "ranges only allowed for vector selectors");
    }

    #[test]
    fn errors_have_positions_and_upstream_messages() {
        let e = err("foo{a=~\"(\"}");
        assert_eq!((e.line, e.column), (1, 5));
        assert!(e.message.contains("invalid regular expression"), "{e}");
        let e = err("sum(foo");
        assert_eq!((e.line, e.column), (1, 8));
        assert_eq!(e.to_string().split(':').take(2).collect::<Vec<_>>(), ["1", "8"]);
        assert_eq!(err("").message, "no expression found in input");
        assert_eq!(err("foo(bar)").message, "unknown function with name \"foo\"");
        assert_eq!(
            err("rate(foo)").message,
            "expected type range vector in call to function \"rate\", got instant vector"
        );
        assert_eq!(err("abs(foo, bar)").message, "expected 1 argument(s) in call to \"abs\", got 2");
        assert_eq!(err("sum(1)").message, "expected type instant vector in aggregation expression, got scalar");
        assert_eq!(
            err("topk(foo)").message,
            "wrong number of arguments for aggregate expression provided, expected 2, got 1"
        );
        // Upstream's positions: a wrong count at the aggregation, a wrong type at the argument.
        let at = |q: &str| {
            let e = err(q);
            (e.column, e.message)
        };
        assert_eq!(at("count_values by (a) ()"), (1, "no arguments for aggregate expression provided".into()));
        assert_eq!(
            at("sum without (a) (x, y)"),
            (1, "wrong number of arguments for aggregate expression provided, expected 1, got 2".into())
        );
        assert_eq!(
            at("sum by (a) ( 1)"),
            (14, "expected type instant vector in aggregation expression, got scalar".into())
        );
        assert_eq!(at("topk( x, x)"), (7, "expected type scalar in aggregation parameter, got instant vector".into()));
        assert_eq!(err("{}").message, "vector selector must contain at least one non-empty matcher");
        assert_eq!(err("{a=\"\"}").message, "vector selector must contain at least one non-empty matcher");
        assert_eq!(err("foo{__name__=\"bar\"}").message, "metric name must not be set twice: \"foo\" or \"bar\"");
        assert!(err(r#"foo{"bar"}"#).message.starts_with("metric name must not be set twice"));
        // Names inside the braces only are matchers like any other, as upstream's.
        assert!(parse(r#"{"foo", "bar"}"#).is_ok() && parse(r#"{"bar", __name__="baz"}"#).is_ok());
        // A `match[]` takes them all, as upstream's ParseMetricSelector skips the check.
        let names = |m: Vec<Matcher>| m.into_iter().map(|m| m.to_string()).collect::<Vec<_>>();
        assert_eq!(
            names(parse_metric_selector(r#"up{__name__!~"x"}"#).unwrap()),
            [r#"__name__="up""#, r#"__name__!~"x""#]
        );
        assert_eq!(names(parse_metric_selector(r#"{"a", "b"}"#).unwrap()), [r#"__name__="a""#, r#"__name__="b""#]);
        assert_eq!(err("1 > 2").message, "comparisons between scalars must use BOOL modifier");
        assert_eq!(err("a + bool b").message, "bool modifier can only be used on comparison operators");
        assert_eq!(err("1 and foo").message, "set operator \"and\" not allowed in binary scalar expression");
        assert_eq!(err("a and on(x) group_left b").message, "no grouping allowed for \"and\" operation");
        assert_eq!(
            err("a + on(x) group_left(x) b").message,
            "label \"x\" must not occur in ON and GROUP clause at once"
        );
        assert_eq!(err("1 + on(x) foo").message, "vector matching only allowed between instant vectors");
        assert_eq!(err("(foo)[5m]").message, "ranges only allowed for vector selectors");
        assert_eq!(err("foo offset 1m offset 2m").message, "offset may not be set multiple times");
        assert_eq!(err("foo @ 1 @ 2").message, "@ <timestamp> may not be set multiple times");
        assert_eq!(
            err("sum(foo) offset 1m").message,
            "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"
        );
        assert_eq!(err("foo[5m] + 1").message, "binary expression must contain only scalar and instant vector types");
        assert_eq!(
            err("-\"a\"").message,
            "unary expression only allowed on expressions of type scalar or instant vector, got \"string\""
        );
        assert_eq!(err("mad_over_time(foo[5m])").message, "function \"mad_over_time\" is not enabled");
        assert_eq!(err("foo[0s]").message, "duration must be greater than 0");
        assert_eq!(err("foo[5m:0s]").message, "subquery step must be greater than 0");
        assert!(err("foo bar").message.starts_with("unexpected character 'b'"), "{}", err("foo bar"));
        let e = err("sum(foo)\n  + bar{");
        assert_eq!((e.line, e.column), (2, 9));
    }
}
