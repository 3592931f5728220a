//! The PromQL syntax tree produced by the parser and consumed by the planner and evaluator.
//!
//! Times and durations are milliseconds. `Display` prints an expression back in PromQL, which
//! `explain` output and error messages use.

use std::fmt;

use super::functions::Function;
use crate::labels::Matcher;

/// The four value types of PromQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Scalar,
    Vector,
    Matrix,
    String,
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueType::Scalar => "scalar",
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
            ValueType::String => "string",
        })
    }
}

/// An `@` modifier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum At {
    Timestamp(i64),
    Start,
    End,
}

/// A duration that depends on the query (3.x duration expressions using `step()` or
/// `range()`). Values are seconds; durations that do not depend on the query are folded to
/// milliseconds when parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum DurationExpr {
    Seconds(f64),
    /// The query's step (0 for an instant query).
    Step,
    /// The query's range, end minus start (0 for an instant query).
    Range,
    Neg(Box<DurationExpr>),
    Binary(BinaryOp, Box<DurationExpr>, Box<DurationExpr>),
    MinOf(Box<DurationExpr>, Box<DurationExpr>),
    MaxOf(Box<DurationExpr>, Box<DurationExpr>),
}

impl DurationExpr {
    /// The value in seconds for a query with this step and range (seconds).
    pub fn seconds(&self, step: f64, range: f64) -> f64 {
        let v = |e: &DurationExpr| e.seconds(step, range);
        match self {
            DurationExpr::Seconds(s) => *s,
            DurationExpr::Step => step,
            DurationExpr::Range => range,
            DurationExpr::Neg(e) => -v(e),
            DurationExpr::MinOf(a, b) => v(a).min(v(b)),
            DurationExpr::MaxOf(a, b) => v(a).max(v(b)),
            DurationExpr::Binary(op, a, b) => {
                let (a, b) = (v(a), v(b));
                match op {
                    BinaryOp::Add => a + b,
                    BinaryOp::Sub => a - b,
                    BinaryOp::Mul => a * b,
                    BinaryOp::Div => a / b,
                    BinaryOp::Mod => a % b,
                    BinaryOp::Pow => a.powf(b),
                    _ => f64::NAN,
                }
            }
        }
    }

    /// Whether the value depends on the query.
    pub fn is_dynamic(&self) -> bool {
        match self {
            DurationExpr::Seconds(_) => false,
            DurationExpr::Step | DurationExpr::Range => true,
            DurationExpr::Neg(e) => e.is_dynamic(),
            DurationExpr::Binary(_, a, b) | DurationExpr::MinOf(a, b) | DurationExpr::MaxOf(a, b) => {
                a.is_dynamic() || b.is_dynamic()
            }
        }
    }
}

impl fmt::Display for DurationExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationExpr::Seconds(s) => write!(f, "{}", crate::value::format_value(*s)),
            DurationExpr::Step => f.write_str("step()"),
            DurationExpr::Range => f.write_str("range()"),
            DurationExpr::Neg(e) => write!(f, "-{e}"),
            DurationExpr::Binary(op, a, b) => write!(f, "({a} {} {b})", op.symbol()),
            DurationExpr::MinOf(a, b) => write!(f, "min_of({a}, {b})"),
            DurationExpr::MaxOf(a, b) => write!(f, "max_of({a}, {b})"),
        }
    }
}

/// Durations of a selector or subquery that are only known once the query's step and range
/// are (see [`DurationExpr`]); the planner resolves them into the plain millisecond fields.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DynamicDurations {
    pub range: Option<DurationExpr>,
    pub step: Option<DurationExpr>,
    pub offset: Option<DurationExpr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VectorSelector {
    /// The metric name if written before the braces (it is also among `matchers`).
    pub name: Option<String>,
    pub matchers: Vec<Matcher>,
    pub offset: i64,
    pub at: Option<At>,
    /// Offset and (for a range selector) range that depend on the query, if any.
    pub dynamic: Option<Box<DynamicDurations>>,
    /// Whether only histograms' counts and sums are read (see [`super::stats_decoding`]).
    pub stats_only: bool,
    /// `anchored` or `smoothed`, if written.
    pub extension: Option<Extension>,
    /// Where the selector starts in the query text (byte offset): its annotations point there.
    pub pos: usize,
}

/// The modifiers of `--enable-feature=promql-extended-range-selectors` (upstream's extended
/// range selectors). `anchored` starts a range at the newest sample up to a lookback delta
/// before it, with no extrapolation; `smoothed` interpolates a range's ends, or an instant
/// selector's value, between the samples around them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    Anchored,
    Smoothed,
}

impl Extension {
    /// The modifier as written.
    pub fn keyword(self) -> &'static str {
        match self {
            Extension::Anchored => "anchored",
            Extension::Smoothed => "smoothed",
        }
    }

    /// The functions a range selector with this modifier may be given to, sorted.
    pub fn functions(self) -> &'static [&'static str] {
        match self {
            Extension::Anchored => &["changes", "delta", "increase", "rate", "resets"],
            Extension::Smoothed => &["delta", "increase", "rate"],
        }
    }

    /// Upstream's error when a range selector with this modifier is given to `function`.
    pub fn check_function(self, function: &str) -> Result<(), String> {
        if self.functions().contains(&function) {
            return Ok(());
        }
        Err(format!(
            "{} modifier can only be used with: {} - not with {function}",
            self.keyword(),
            self.functions().join(", ")
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Unless,
    Eql,
    Neq,
    Lte,
    Lss,
    Gte,
    Gtr,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Atan2,
    Pow,
    /// `h </ x`: a histogram's observations below `x`.
    TrimUpper,
    /// `h >/ x`: a histogram's observations above `x`.
    TrimLower,
}

impl BinaryOp {
    pub fn is_comparison(self) -> bool {
        matches!(self, BinaryOp::Eql | BinaryOp::Neq | BinaryOp::Lte | BinaryOp::Lss | BinaryOp::Gte | BinaryOp::Gtr)
    }

    /// `</` and `>/`, which cut a histogram's buckets at a value.
    pub fn is_trim(self) -> bool {
        matches!(self, BinaryOp::TrimUpper | BinaryOp::TrimLower)
    }

    pub fn is_set(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Unless)
    }

    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Unless => "unless",
            BinaryOp::Eql => "==",
            BinaryOp::Neq => "!=",
            BinaryOp::Lte => "<=",
            BinaryOp::Lss => "<",
            BinaryOp::Gte => ">=",
            BinaryOp::Gtr => ">",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Atan2 => "atan2",
            BinaryOp::Pow => "^",
            BinaryOp::TrimUpper => "</",
            BinaryOp::TrimLower => ">/",
        }
    }
}

/// Which labels identify matching series across a binary operation's sides.
#[derive(Debug, Clone, PartialEq)]
pub enum MatchOn {
    On(Vec<String>),
    Ignoring(Vec<String>),
}

/// `group_left`/`group_right` with their extra labels.
#[derive(Debug, Clone, PartialEq)]
pub enum Grouping {
    Left(Vec<String>),
    Right(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct BinaryModifiers {
    pub return_bool: bool,
    pub matching: Option<MatchOn>,
    pub group: Option<Grouping>,
    /// Where the operator stands in the query text (byte offset): the operation's annotations
    /// point at it.
    pub pos: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateOp {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    CountValues,
    Quantile,
    Limitk,
    LimitRatio,
}

impl AggregateOp {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "sum" => AggregateOp::Sum,
            "avg" => AggregateOp::Avg,
            "count" => AggregateOp::Count,
            "min" => AggregateOp::Min,
            "max" => AggregateOp::Max,
            "group" => AggregateOp::Group,
            "stddev" => AggregateOp::Stddev,
            "stdvar" => AggregateOp::Stdvar,
            "topk" => AggregateOp::Topk,
            "bottomk" => AggregateOp::Bottomk,
            "count_values" => AggregateOp::CountValues,
            "quantile" => AggregateOp::Quantile,
            "limitk" => AggregateOp::Limitk,
            "limit_ratio" => AggregateOp::LimitRatio,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            AggregateOp::Sum => "sum",
            AggregateOp::Avg => "avg",
            AggregateOp::Count => "count",
            AggregateOp::Min => "min",
            AggregateOp::Max => "max",
            AggregateOp::Group => "group",
            AggregateOp::Stddev => "stddev",
            AggregateOp::Stdvar => "stdvar",
            AggregateOp::Topk => "topk",
            AggregateOp::Bottomk => "bottomk",
            AggregateOp::CountValues => "count_values",
            AggregateOp::Quantile => "quantile",
            AggregateOp::Limitk => "limitk",
            AggregateOp::LimitRatio => "limit_ratio",
        }
    }

    /// The type of the parameter this aggregation takes, if any.
    pub fn param_type(self) -> Option<ValueType> {
        match self {
            AggregateOp::Topk
            | AggregateOp::Bottomk
            | AggregateOp::Quantile
            | AggregateOp::Limitk
            | AggregateOp::LimitRatio => Some(ValueType::Scalar),
            AggregateOp::CountValues => Some(ValueType::String),
            _ => None,
        }
    }
}

/// `by (...)` or `without (...)`.
#[derive(Debug, Clone, PartialEq)]
pub enum AggregateGrouping {
    By(Vec<String>),
    Without(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number(f64),
    String(String),
    VectorSelector(VectorSelector),
    MatrixSelector {
        selector: VectorSelector,
        range: i64,
    },
    Subquery {
        expr: Box<Expr>,
        range: i64,
        step: Option<i64>,
        offset: i64,
        at: Option<At>,
        dynamic: Option<Box<DynamicDurations>>,
    },
    Neg(Box<Expr>),
    Paren(Box<Expr>),
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        modifiers: BinaryModifiers,
    },
    Aggregate {
        op: AggregateOp,
        expr: Box<Expr>,
        param: Option<Box<Expr>>,
        grouping: AggregateGrouping,
        /// Where the parameter starts in the query text (byte offset; 0 without one).
        param_pos: usize,
        /// Where the aggregated expression starts (byte offset), where its annotations point.
        expr_pos: usize,
    },
    Call {
        func: &'static Function,
        args: Vec<Expr>,
        pos: CallPositions,
    },
}

/// Where a call and each of its arguments start in the query text (byte offsets), so that
/// annotations can point at them as upstream's do (`... (1:6)`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallPositions {
    pub call: usize,
    pub args: Vec<usize>,
}

impl CallPositions {
    /// Where argument `i` starts (the call's start if there is no such argument).
    pub fn arg(&self, i: usize) -> usize {
        self.args.get(i).copied().unwrap_or(self.call)
    }
}

impl Expr {
    /// Every vector selector in the expression (those of range selectors too), in no
    /// particular order: what `/api/v1/query_exemplars` looks up (upstream's
    /// `ExtractSelectors`). Walked with a stack, as deep as the parser lets an expression be.
    pub fn selectors(&self) -> Vec<&VectorSelector> {
        let (mut out, mut stack) = (Vec::new(), vec![self]);
        while let Some(e) = stack.pop() {
            match e {
                Expr::VectorSelector(s) | Expr::MatrixSelector { selector: s, .. } => out.push(s),
                Expr::Subquery { expr, .. } | Expr::Neg(expr) | Expr::Paren(expr) => stack.push(expr),
                Expr::Binary { lhs, rhs, .. } => stack.extend([&**lhs, &**rhs]),
                Expr::Aggregate { expr, param, .. } => stack.extend(std::iter::once(&**expr).chain(param.as_deref())),
                Expr::Call { args, .. } => stack.extend(args),
                Expr::Number(_) | Expr::String(_) => {}
            }
        }
        out
    }

    /// The type this expression evaluates to.
    pub fn value_type(&self) -> ValueType {
        match self {
            Expr::Number(_) => ValueType::Scalar,
            Expr::String(_) => ValueType::String,
            Expr::VectorSelector(_) | Expr::Aggregate { .. } => ValueType::Vector,
            Expr::MatrixSelector { .. } | Expr::Subquery { .. } => ValueType::Matrix,
            Expr::Neg(e) | Expr::Paren(e) => e.value_type(),
            Expr::Binary { lhs, rhs, .. } => {
                if lhs.value_type() == ValueType::Scalar && rhs.value_type() == ValueType::Scalar {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Expr::Call { func, .. } => func.returns,
        }
    }

    /// The expression with parentheses removed.
    pub fn unparen(&self) -> &Expr {
        match self {
            Expr::Paren(e) => e.unparen(),
            e => e,
        }
    }
}

pub(crate) fn format_duration(ms: i64) -> String {
    if ms < 0 {
        return format!("-{}", crate::config::Duration(-ms));
    }
    crate::config::Duration(ms).to_string()
}

/// `(a, b)`; names that are not plain identifiers are quoted, as upstream prints them.
fn write_labels(f: &mut fmt::Formatter<'_>, labels: &[String]) -> fmt::Result {
    f.write_str("(")?;
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        f.write_str(&crate::labels::written_name(l))?;
    }
    f.write_str(")")
}

/// Displays whatever a closure writes: lets the pretty-printer reuse the `write_*` helpers.
struct Show<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result>(F);

impl<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result> fmt::Display for Show<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}

fn show_duration(ms: i64, dynamic: Option<&DurationExpr>) -> String {
    dynamic.map(|e| e.to_string()).unwrap_or_else(|| format_duration(ms))
}

/// Writes `@`, then `extension` (an instant selector's `anchored`/`smoothed` stands there, as
/// upstream prints it), then the offset.
fn write_modifiers_with(
    f: &mut fmt::Formatter<'_>,
    offset: i64,
    dynamic: Option<&DurationExpr>,
    at: &Option<At>,
    extension: Option<Extension>,
) -> fmt::Result {
    write_at(f, at)?;
    write_extension(f, extension)?;
    match dynamic {
        Some(e) => write!(f, " offset {e}"),
        None => write_offset(f, offset),
    }
}

pub(crate) fn write_modifiers(f: &mut fmt::Formatter<'_>, offset: i64, at: &Option<At>) -> fmt::Result {
    write_at(f, at)?;
    write_offset(f, offset)
}

fn write_at(f: &mut fmt::Formatter<'_>, at: &Option<At>) -> fmt::Result {
    match at {
        // Seconds with three decimals, as upstream prints them.
        Some(At::Timestamp(t)) => {
            let sign = if *t < 0 { "-" } else { "" };
            write!(f, " @ {sign}{}.{:03}", t.unsigned_abs() / 1000, t.unsigned_abs() % 1000)
        }
        Some(At::Start) => f.write_str(" @ start()"),
        Some(At::End) => f.write_str(" @ end()"),
        None => Ok(()),
    }
}

fn write_extension(f: &mut fmt::Formatter<'_>, extension: Option<Extension>) -> fmt::Result {
    match extension {
        Some(e) => write!(f, " {}", e.keyword()),
        None => Ok(()),
    }
}

fn write_offset(f: &mut fmt::Formatter<'_>, offset: i64) -> fmt::Result {
    match offset {
        0 => Ok(()),
        _ => write!(f, " offset {}", format_duration(offset)),
    }
}

/// Writes an operator with its `bool`, `on`/`ignoring` and `group_*` modifiers, as upstream:
/// `+ on (a) group_left (b)`; an empty `ignoring ()` without a group modifier is left out.
pub(crate) fn write_binary_op(f: &mut fmt::Formatter<'_>, op: BinaryOp, modifiers: &BinaryModifiers) -> fmt::Result {
    f.write_str(op.symbol())?;
    if modifiers.return_bool {
        f.write_str(" bool")?;
    }
    let (tag, labels) = match &modifiers.matching {
        Some(MatchOn::On(l)) => ("on", l),
        Some(MatchOn::Ignoring(l)) => ("ignoring", l),
        None => return Ok(()),
    };
    if tag == "ignoring" && labels.is_empty() && modifiers.group.is_none() {
        return Ok(());
    }
    write!(f, " {tag} ")?;
    write_labels(f, labels)?;
    let (side, include) = match &modifiers.group {
        Some(Grouping::Left(l)) => ("left", l),
        Some(Grouping::Right(l)) => ("right", l),
        None => return Ok(()),
    };
    write!(f, " group_{side} ")?;
    write_labels(f, include)
}

/// Writes an aggregation's operator and grouping: `sum`, `sum by (job) `.
fn write_aggregate_head(f: &mut fmt::Formatter<'_>, op: AggregateOp, grouping: &AggregateGrouping) -> fmt::Result {
    f.write_str(op.name())?;
    let (keyword, labels) = match grouping {
        AggregateGrouping::By(l) if l.is_empty() => return Ok(()),
        AggregateGrouping::By(l) => ("by", l),
        AggregateGrouping::Without(l) => ("without", l),
    };
    write!(f, " {keyword} ")?;
    write_labels(f, labels)?;
    f.write_str(" ")
}

/// Writes what follows a subquery's expression: `[5m:1m] offset 1m`.
fn write_subquery_suffix(
    f: &mut fmt::Formatter<'_>,
    range: i64,
    step: Option<i64>,
    offset: i64,
    at: &Option<At>,
    dynamic: Option<&DynamicDurations>,
) -> fmt::Result {
    let step = match (dynamic.and_then(|d| d.step.as_ref()), step) {
        (Some(e), _) => e.to_string(),
        (None, Some(s)) => format_duration(s),
        (None, None) => String::new(),
    };
    write!(f, "[{}:{step}]", show_duration(range, dynamic.and_then(|d| d.range.as_ref())))?;
    write_modifiers_with(f, offset, dynamic.and_then(|d| d.offset.as_ref()), at, None)
}

/// Longest single-line form an expression keeps when pretty-printed (upstream's limit).
const MAX_LINE: usize = 100;

/// Longest pretty-printed form written: every level of a deep expression indents its lines
/// again, so a few hundred kilobytes of query could print as gigabytes.
pub const MAX_PRETTY_BYTES: usize = 16 << 20;

/// A pretty-printed query past [`MAX_PRETTY_BYTES`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the formatted query would be longer than {MAX_PRETTY_BYTES} bytes")]
pub struct PrettyTooLong;

impl Expr {
    /// Upstream's `Pretty`: the single-line form when it fits in 100 characters, otherwise
    /// the operands of aggregations, calls, binary operators and parentheses on lines of their
    /// own, indented two spaces per `level`. Written into one buffer, each part once.
    pub fn pretty(&self, level: usize) -> Result<String, PrettyTooLong> {
        let mut out = String::new();
        self.write_pretty(&mut out, level, true)?;
        Ok(out)
    }

    /// Writes the pretty form into `out`; without `lead`, its first line has no indent (it
    /// follows a unary minus).
    fn write_pretty(&self, out: &mut String, level: usize, lead: bool) -> Result<(), PrettyTooLong> {
        use std::fmt::Write;
        if out.len() > MAX_PRETTY_BYTES {
            return Err(PrettyTooLong);
        }
        let indent = |out: &mut String| (0..level).for_each(|_| out.push_str("  "));
        let lead_indent = |out: &mut String| {
            if lead {
                indent(out)
            }
        };
        // Writing into a String cannot fail.
        let put = |out: &mut String, shown: &dyn fmt::Display| {
            let _ = write!(out, "{shown}");
        };
        if self.fits_on_a_line() {
            // Upstream prints a short subquery without its indent.
            if !matches!(self, Expr::Subquery { .. }) {
                lead_indent(out);
            }
            put(out, self);
            return Ok(());
        }
        match self {
            Expr::Aggregate { op, expr, param, grouping, .. } => {
                lead_indent(out);
                put(out, &Show(|f| write_aggregate_head(f, *op, grouping)));
                out.push_str("(\n");
                if let Some(p) = param {
                    p.write_pretty(out, level + 1, true)?;
                    out.push_str(",\n");
                }
                expr.write_pretty(out, level + 1, true)?;
                out.push('\n');
                indent(out);
                out.push(')');
            }
            Expr::Binary { op, lhs, rhs, modifiers } => {
                lhs.write_pretty(out, level + 1, lead)?;
                out.push('\n');
                indent(out);
                put(out, &Show(|f| write_binary_op(f, *op, modifiers)));
                out.push('\n');
                rhs.write_pretty(out, level + 1, true)?;
            }
            Expr::Call { func, args, .. } => {
                lead_indent(out);
                out.push_str(func.name);
                out.push_str("(\n");
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        out.push_str(",\n");
                    }
                    a.write_pretty(out, level + 1, true)?;
                }
                out.push('\n');
                indent(out);
                out.push(')');
            }
            Expr::Paren(e) => {
                lead_indent(out);
                out.push_str("(\n");
                e.write_pretty(out, level + 1, true)?;
                out.push('\n');
                indent(out);
                out.push(')');
            }
            Expr::Subquery { expr, range, step, offset, at, dynamic } => {
                expr.write_pretty(out, level, lead)?;
                put(out, &Show(|f| write_subquery_suffix(f, *range, *step, *offset, at, dynamic.as_deref())));
            }
            Expr::Neg(e) => {
                lead_indent(out);
                out.push('-');
                // The operand follows the sign without its own indent.
                e.write_pretty(out, level, false)?;
            }
            Expr::Number(_) | Expr::String(_) | Expr::VectorSelector(_) | Expr::MatrixSelector { .. } => {
                lead_indent(out);
                put(out, self);
            }
        }
        Ok(())
    }

    /// Whether the single-line form is at most [`MAX_LINE`] bytes, found without writing out
    /// more of it: building it whole at every level of a deep expression took memory in the
    /// depth times the size (gigabytes for a 6 MB matcher under 490 parentheses).
    fn fits_on_a_line(&self) -> bool {
        struct Budget(usize);
        impl fmt::Write for Budget {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0 = self.0.checked_sub(s.len()).ok_or(fmt::Error)?;
                Ok(())
            }
        }
        fmt::write(&mut Budget(MAX_LINE), format_args!("{self}")).is_ok()
    }
}

impl fmt::Display for VectorSelector {
    /// As upstream prints it: the name, then the other matchers sorted as text, comma-separated.
    /// A name that is not a legacy metric name goes first inside the braces, quoted (3.x).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown: Vec<String> = self
            .matchers
            .iter()
            .filter(|m| {
                !(self.name.is_some() && m.name == crate::labels::METRIC_NAME && m.op == crate::labels::MatchOp::Equal)
            })
            .map(|m| m.to_string())
            .collect();
        shown.sort();
        match &self.name {
            Some(name) if crate::labels::is_valid_metric_name(name) => f.write_str(name)?,
            Some(name) => shown.insert(0, crate::labels::go_quote(name)),
            None => {}
        }
        if !shown.is_empty() || self.name.is_none() {
            write!(f, "{{{}}}", shown.join(","))?;
        }
        Ok(())
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Number(n) => f.write_str(&crate::value::format_value(*n)),
            Expr::String(s) => f.write_str(&crate::labels::go_quote(s)),
            Expr::VectorSelector(vs) => {
                write!(f, "{vs}")?;
                let offset = vs.dynamic.as_deref().and_then(|d| d.offset.as_ref());
                write_modifiers_with(f, vs.offset, offset, &vs.at, vs.extension)
            }
            Expr::MatrixSelector { selector, range } => {
                let d = selector.dynamic.as_deref();
                write!(f, "{selector}[{}]", show_duration(*range, d.and_then(|d| d.range.as_ref())))?;
                // A range selector's `anchored`/`smoothed` follows the range, as upstream prints it.
                write_extension(f, selector.extension)?;
                write_modifiers_with(f, selector.offset, d.and_then(|d| d.offset.as_ref()), &selector.at, None)
            }
            Expr::Subquery { expr, range, step, offset, at, dynamic } => {
                write!(f, "{expr}")?;
                write_subquery_suffix(f, *range, *step, *offset, at, dynamic.as_deref())
            }
            Expr::Neg(e) => write!(f, "-{e}"),
            Expr::Paren(e) => write!(f, "({e})"),
            Expr::Binary { op, lhs, rhs, modifiers } => {
                write!(f, "{lhs} ")?;
                write_binary_op(f, *op, modifiers)?;
                write!(f, " {rhs}")
            }
            Expr::Aggregate { op, expr, param, grouping, .. } => {
                write_aggregate_head(f, *op, grouping)?;
                match param {
                    Some(p) => write!(f, "({p}, {expr})"),
                    None => write!(f, "({expr})"),
                }
            }
            Expr::Call { func, args, .. } => {
                let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
                write!(f, "{}({})", func.name, args.join(", "))
            }
        }
    }
}
