//! The engine the scripts run against: `pyrite_core`'s planner and evaluator over N in-memory
//! heads, each series on its owner shard, exactly as the server splits them.

use pyrite_core::promql::{self, evaluate_fragment, EvalError, EvalParams, Expr, ParseOptions, QueryResult};
use pyrite_core::tsdb::head::Head;

use super::script::SeriesPoints;

/// Lookback delta the scripts assume (§10).
pub const LOOKBACK_MS: i64 = 300_000;

pub struct Engine {
    heads: Vec<Head>,
}

impl Engine {
    pub fn new(shards: usize) -> Engine {
        Engine { heads: (0..shards).map(|_| Head::new()).collect() }
    }

    pub fn clear(&mut self) {
        *self = Engine::new(self.heads.len());
    }

    /// Stores samples; Err if a sample is older than the series' newest one (the load fails).
    pub fn load(&mut self, series: &[SeriesPoints]) -> Result<(), String> {
        let shards = self.heads.len();
        for (labels, samples) in series {
            let head = &mut self.heads[labels.owner(shards)];
            let (id, _) = head.get_or_create(labels);
            for &(t, v) in samples {
                head.append(id, t, v).map_err(|e| format!("{labels}: {e}"))?;
            }
        }
        Ok(())
    }

    /// Parses with every optional syntax feature on (§5.1).
    pub fn parse(text: &str) -> Result<Expr, String> {
        promql::parse_with(text, ParseOptions { experimental_functions: true }).map_err(|e| e.to_string())
    }

    pub fn eval(&self, expr: &Expr, params: EvalParams) -> Result<QueryResult, EvalError> {
        let plan = promql::plan(expr, &params)?;
        let outputs = self
            .heads
            .iter()
            .map(|h| {
                (0..plan.fragments.len())
                    .map(|i| evaluate_fragment(&plan, i, &params, h))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        plan.finish(&params, outputs)
    }
}
