//! PromQL's function registry: one entry per function of Prometheus 3.x with its name,
//! argument and return types, and its [`Kind`].
//!
//! The parser type-checks calls against it exactly as upstream does, and the planner decides
//! from the kind alone whether a call can run on every shard over its own series: a new
//! function that does not say it is per-series runs on the coordinator. Which functions the
//! evaluator implements, and how, is the evaluator's business.

use super::ast::ValueType;

/// A function's signature.
#[derive(Debug, PartialEq, Eq)]
pub struct Function {
    pub name: &'static str,
    pub kind: Kind,
    /// Argument types; with `variadic`, the last one may repeat or be left out as described there.
    pub args: &'static [ValueType],
    /// 0: exactly `args`; n > 0: up to n extra copies of the last type (`usize::MAX`: any);
    /// -1 encoded as `optional_last`: the last argument may be omitted.
    pub variadic: Variadic,
    pub returns: ValueType,
    /// Only available with `--enable-feature=promql-experimental-functions`.
    pub experimental: bool,
}

/// What a function needs to see at once, which decides where it runs.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Kind {
    /// A value per series from that series' samples in a range window (`rate`,
    /// `*_over_time`): runs on the shards.
    Range,
    /// Each series, step by step, on its own (math, clamps, rounding, label and date functions,
    /// `timestamp`, native-histogram getters): runs on the shards.
    PerSeries,
    /// Needs every series of its argument at once (`absent`, `scalar`, `vector`,
    /// `histogram_quantile`, whose buckets are series on different shards, `info`): runs on
    /// the coordinator.
    CrossSeries,
    /// Orders the whole result (`sort`, `sort_by_label`, ...): runs on the coordinator, and the
    /// answer keeps its order.
    Sort,
    /// Reads no series (`time()`, `pi()`, `min_of`, the duration-expression functions).
    Constant,
}

impl Kind {
    /// Whether a shard can evaluate the call over its own series alone.
    pub fn runs_per_series(self) -> bool {
        matches!(self, Kind::Range | Kind::PerSeries)
    }
}

/// How many arguments beyond the fixed ones a function accepts.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Variadic {
    /// Exactly the listed arguments.
    None,
    /// The last listed argument may be omitted.
    OptionalLast,
    /// The last listed argument may repeat any number of times (including zero).
    Repeat,
}

use Kind::{Constant as Const, CrossSeries as Cross, PerSeries, Range, Sort};
use ValueType::{Matrix as M, Scalar as S, String as Str, Vector as V};
use Variadic::{None as Exact, OptionalLast as Opt, Repeat as Rep};

const fn f(
    name: &'static str,
    kind: Kind,
    args: &'static [ValueType],
    variadic: Variadic,
    returns: ValueType,
) -> Function {
    Function { name, kind, args, variadic, returns, experimental: false }
}

/// `f` made experimental: available only with `--enable-feature=promql-experimental-functions`.
const fn x(f: Function) -> Function {
    Function { experimental: true, ..f }
}

pub static FUNCTIONS: &[Function] = &[
    f("abs", PerSeries, &[V], Exact, V),
    f("absent", Cross, &[V], Exact, V),
    f("absent_over_time", Cross, &[M], Exact, V),
    f("acos", PerSeries, &[V], Exact, V),
    f("acosh", PerSeries, &[V], Exact, V),
    f("asin", PerSeries, &[V], Exact, V),
    f("asinh", PerSeries, &[V], Exact, V),
    f("atan", PerSeries, &[V], Exact, V),
    f("atanh", PerSeries, &[V], Exact, V),
    f("avg_over_time", Range, &[M], Exact, V),
    f("ceil", PerSeries, &[V], Exact, V),
    f("changes", Range, &[M], Exact, V),
    f("clamp", PerSeries, &[V, S, S], Exact, V),
    f("clamp_max", PerSeries, &[V, S], Exact, V),
    f("clamp_min", PerSeries, &[V, S], Exact, V),
    f("cos", PerSeries, &[V], Exact, V),
    f("cosh", PerSeries, &[V], Exact, V),
    f("count_over_time", Range, &[M], Exact, V),
    f("day_of_month", PerSeries, &[V], Opt, V),
    f("day_of_week", PerSeries, &[V], Opt, V),
    f("day_of_year", PerSeries, &[V], Opt, V),
    f("days_in_month", PerSeries, &[V], Opt, V),
    f("deg", PerSeries, &[V], Exact, V),
    f("delta", Range, &[M], Exact, V),
    f("deriv", Range, &[M], Exact, V),
    x(f("double_exponential_smoothing", Range, &[M, S, S], Exact, V)),
    x(f("end", Const, &[], Exact, S)),
    f("exp", PerSeries, &[V], Exact, V),
    f("first_over_time", Range, &[M], Exact, V),
    f("floor", PerSeries, &[V], Exact, V),
    f("histogram_avg", PerSeries, &[V], Exact, V),
    f("histogram_count", PerSeries, &[V], Exact, V),
    f("histogram_fraction", Cross, &[S, S, V], Exact, V),
    f("histogram_quantile", Cross, &[S, V], Exact, V),
    x(f("histogram_quantiles", Cross, &[V, Str, S], Rep, V)),
    f("histogram_stddev", PerSeries, &[V], Exact, V),
    f("histogram_stdvar", PerSeries, &[V], Exact, V),
    f("histogram_sum", PerSeries, &[V], Exact, V),
    f("hour", PerSeries, &[V], Opt, V),
    f("idelta", Range, &[M], Exact, V),
    f("increase", Range, &[M], Exact, V),
    x(f("info", Cross, &[V, V], Opt, V)),
    f("irate", Range, &[M], Exact, V),
    f("label_join", PerSeries, &[V, Str, Str, Str], Rep, V),
    f("label_replace", PerSeries, &[V, Str, Str, Str, Str], Exact, V),
    f("last_over_time", Range, &[M], Exact, V),
    f("ln", PerSeries, &[V], Exact, V),
    f("log10", PerSeries, &[V], Exact, V),
    f("log2", PerSeries, &[V], Exact, V),
    x(f("mad_over_time", Range, &[M], Exact, V)),
    x(f("max_of", Const, &[S, S], Exact, S)),
    f("max_over_time", Range, &[M], Exact, V),
    x(f("min_of", Const, &[S, S], Exact, S)),
    f("min_over_time", Range, &[M], Exact, V),
    f("minute", PerSeries, &[V], Opt, V),
    f("month", PerSeries, &[V], Opt, V),
    f("pi", Const, &[], Exact, S),
    f("predict_linear", Range, &[M, S], Exact, V),
    f("present_over_time", Range, &[M], Exact, V),
    f("quantile_over_time", Range, &[S, M], Exact, V),
    f("rad", PerSeries, &[V], Exact, V),
    x(f("range", Const, &[], Exact, S)),
    f("rate", Range, &[M], Exact, V),
    f("resets", Range, &[M], Exact, V),
    f("round", PerSeries, &[V, S], Opt, V),
    f("scalar", Cross, &[V], Exact, S),
    f("sgn", PerSeries, &[V], Exact, V),
    f("sin", PerSeries, &[V], Exact, V),
    f("sinh", PerSeries, &[V], Exact, V),
    f("sort", Sort, &[V], Exact, V),
    x(f("sort_by_label", Sort, &[V, Str], Rep, V)),
    x(f("sort_by_label_desc", Sort, &[V, Str], Rep, V)),
    f("sort_desc", Sort, &[V], Exact, V),
    f("sqrt", PerSeries, &[V], Exact, V),
    x(f("start", Const, &[], Exact, S)),
    f("stddev_over_time", Range, &[M], Exact, V),
    f("stdvar_over_time", Range, &[M], Exact, V),
    x(f("step", Const, &[], Exact, S)),
    f("sum_over_time", Range, &[M], Exact, V),
    f("tan", PerSeries, &[V], Exact, V),
    f("tanh", PerSeries, &[V], Exact, V),
    f("time", Const, &[], Exact, S),
    f("timestamp", PerSeries, &[V], Exact, V),
    x(f("ts_of_first_over_time", Range, &[M], Exact, V)),
    x(f("ts_of_last_over_time", Range, &[M], Exact, V)),
    x(f("ts_of_max_over_time", Range, &[M], Exact, V)),
    x(f("ts_of_min_over_time", Range, &[M], Exact, V)),
    f("vector", Cross, &[S], Exact, V),
    f("year", PerSeries, &[V], Opt, V),
];

/// Looks a function up by name (names are case-sensitive, as upstream).
pub fn lookup(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

impl Function {
    /// Checks the number of arguments; returns upstream's message on mismatch.
    pub fn check_arity(&self, got: usize) -> Result<(), String> {
        let n = self.args.len();
        let ok = match self.variadic {
            Variadic::None => got == n,
            Variadic::OptionalLast => got == n || got + 1 == n,
            Variadic::Repeat => got + 1 >= n,
        };
        if ok {
            return Ok(());
        }
        let expected = match self.variadic {
            Variadic::None => format!("{n}"),
            Variadic::OptionalLast => format!("at most {n}"),
            Variadic::Repeat => format!("at least {}", n - 1),
        };
        Err(format!("expected {expected} argument(s) in call to {:?}, got {got}", self.name))
    }

    /// The expected type of argument `i`.
    pub fn arg_type(&self, i: usize) -> ValueType {
        self.args[i.min(self.args.len() - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_complete_for_2_42() {
        let names: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
        // Prometheus 2.42's 70, less `holt_winters` (experimental `double_exponential_smoothing`
        // in 3.x), plus histogram_avg, histogram_stddev, histogram_stdvar and (3.14)
        // first_over_time.
        assert_eq!(FUNCTIONS.iter().filter(|f| !f.experimental).count(), 70 - 1 + 4);
    }

    /// A kind must agree with the signature: the planner trusts it to split queries.
    #[test]
    fn kinds_agree_with_signatures() {
        for f in FUNCTIONS {
            let reads = |t: ValueType| f.args.contains(&t);
            let ok = match f.kind {
                Kind::Range => reads(M) && f.returns == V,
                Kind::PerSeries | Kind::Sort => reads(V) && !reads(M) && f.returns == V,
                Kind::CrossSeries => reads(V) || reads(M) || f.name == "vector",
                Kind::Constant => !reads(V) && !reads(M) && f.returns == S,
            };
            assert!(ok, "{} is {:?} with arguments {:?}", f.name, f.kind, f.args);
        }
    }

    #[test]
    fn arity() {
        assert!(lookup("rate").unwrap().check_arity(1).is_ok());
        assert!(lookup("round").unwrap().check_arity(1).is_ok());
        assert!(lookup("round").unwrap().check_arity(3).is_err());
        assert!(lookup("label_join").unwrap().check_arity(3).is_ok());
        assert!(lookup("label_join").unwrap().check_arity(2).is_err());
        assert!(lookup("time").unwrap().check_arity(0).is_ok());
    }
}
