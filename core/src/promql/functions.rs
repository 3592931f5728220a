//! PromQL's functions: names, argument types and return types.
//!
//! The table covers every function of Prometheus 3.x so that the parser type-checks calls
//! exactly as upstream does; which of them the evaluator implements is the evaluator's business.

use super::ast::ValueType;

/// A function's signature.
#[derive(Debug, PartialEq, Eq)]
pub struct Function {
    pub name: &'static str,
    /// Argument types; with `variadic`, the last one may repeat or be left out as described there.
    pub args: &'static [ValueType],
    /// 0: exactly `args`; n > 0: up to n extra copies of the last type (`usize::MAX`: any);
    /// -1 encoded as `optional_last`: the last argument may be omitted.
    pub variadic: Variadic,
    pub returns: ValueType,
    /// Only available with `--enable-feature=promql-experimental-functions`.
    pub experimental: bool,
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

use ValueType::{Matrix as M, Scalar as S, String as Str, Vector as V};
use Variadic::{None as Exact, OptionalLast as Opt, Repeat as Rep};

const fn f(name: &'static str, args: &'static [ValueType], variadic: Variadic, returns: ValueType) -> Function {
    Function { name, args, variadic, returns, experimental: false }
}

const fn x(name: &'static str, args: &'static [ValueType], variadic: Variadic, returns: ValueType) -> Function {
    Function { name, args, variadic, returns, experimental: true }
}

pub static FUNCTIONS: &[Function] = &[
    f("abs", &[V], Exact, V),
    f("absent", &[V], Exact, V),
    f("absent_over_time", &[M], Exact, V),
    f("acos", &[V], Exact, V),
    f("acosh", &[V], Exact, V),
    f("asin", &[V], Exact, V),
    f("asinh", &[V], Exact, V),
    f("atan", &[V], Exact, V),
    f("atanh", &[V], Exact, V),
    f("avg_over_time", &[M], Exact, V),
    f("ceil", &[V], Exact, V),
    f("changes", &[M], Exact, V),
    f("clamp", &[V, S, S], Exact, V),
    f("clamp_max", &[V, S], Exact, V),
    f("clamp_min", &[V, S], Exact, V),
    f("cos", &[V], Exact, V),
    f("cosh", &[V], Exact, V),
    f("count_over_time", &[M], Exact, V),
    f("day_of_month", &[V], Opt, V),
    f("day_of_week", &[V], Opt, V),
    f("day_of_year", &[V], Opt, V),
    f("days_in_month", &[V], Opt, V),
    f("deg", &[V], Exact, V),
    f("delta", &[M], Exact, V),
    f("deriv", &[M], Exact, V),
    x("double_exponential_smoothing", &[M, S, S], Exact, V),
    x("end", &[], Exact, S),
    f("exp", &[V], Exact, V),
    f("first_over_time", &[M], Exact, V),
    f("floor", &[V], Exact, V),
    f("histogram_avg", &[V], Exact, V),
    f("histogram_count", &[V], Exact, V),
    f("histogram_fraction", &[S, S, V], Exact, V),
    f("histogram_quantile", &[S, V], Exact, V),
    x("histogram_quantiles", &[V, Str, S], Rep, V),
    f("histogram_stddev", &[V], Exact, V),
    f("histogram_stdvar", &[V], Exact, V),
    f("histogram_sum", &[V], Exact, V),
    f("hour", &[V], Opt, V),
    f("idelta", &[M], Exact, V),
    f("increase", &[M], Exact, V),
    x("info", &[V, V], Opt, V),
    f("irate", &[M], Exact, V),
    f("label_join", &[V, Str, Str, Str], Rep, V),
    f("label_replace", &[V, Str, Str, Str, Str], Exact, V),
    f("last_over_time", &[M], Exact, V),
    f("ln", &[V], Exact, V),
    f("log10", &[V], Exact, V),
    f("log2", &[V], Exact, V),
    x("mad_over_time", &[M], Exact, V),
    x("max_of", &[S, S], Exact, S),
    f("max_over_time", &[M], Exact, V),
    x("min_of", &[S, S], Exact, S),
    f("min_over_time", &[M], Exact, V),
    f("minute", &[V], Opt, V),
    f("month", &[V], Opt, V),
    f("pi", &[], Exact, S),
    f("predict_linear", &[M, S], Exact, V),
    f("present_over_time", &[M], Exact, V),
    f("quantile_over_time", &[S, M], Exact, V),
    f("rad", &[V], Exact, V),
    x("range", &[], Exact, S),
    f("rate", &[M], Exact, V),
    f("resets", &[M], Exact, V),
    f("round", &[V, S], Opt, V),
    f("scalar", &[V], Exact, S),
    f("sgn", &[V], Exact, V),
    f("sin", &[V], Exact, V),
    f("sinh", &[V], Exact, V),
    f("sort", &[V], Exact, V),
    x("sort_by_label", &[V, Str], Rep, V),
    x("sort_by_label_desc", &[V, Str], Rep, V),
    f("sort_desc", &[V], Exact, V),
    f("sqrt", &[V], Exact, V),
    x("start", &[], Exact, S),
    f("stddev_over_time", &[M], Exact, V),
    f("stdvar_over_time", &[M], Exact, V),
    x("step", &[], Exact, S),
    f("sum_over_time", &[M], Exact, V),
    f("tan", &[V], Exact, V),
    f("tanh", &[V], Exact, V),
    f("time", &[], Exact, S),
    f("timestamp", &[V], Exact, V),
    x("ts_of_first_over_time", &[M], Exact, V),
    x("ts_of_last_over_time", &[M], Exact, V),
    x("ts_of_max_over_time", &[M], Exact, V),
    x("ts_of_min_over_time", &[M], Exact, V),
    f("vector", &[S], Exact, V),
    f("year", &[V], Opt, V),
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
