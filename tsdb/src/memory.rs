//! PromQL over in-memory heads, with no server around them: each series lives on its owner
//! shard and a query runs the planner's fragments on every head and merges them, exactly as the
//! server does. `pyrite test rules` and the conformance runner evaluate this way.

use crate::head::Head;
use pyrite_core::labels::Labels;
use pyrite_core::promql::{evaluate_fragment, plan, EvalError, EvalParams, Expr, QueryResult};

pub struct MemoryEngine {
    heads: Vec<Head>,
}

impl MemoryEngine {
    pub fn new(shards: usize) -> MemoryEngine {
        MemoryEngine { heads: (0..shards.max(1)).map(|_| Head::new()).collect() }
    }

    pub fn clear(&mut self) {
        *self = MemoryEngine::new(self.heads.len());
    }

    /// Stores samples; Err if a sample is not newer than its series' newest one.
    pub fn load(&mut self, series: &[(Labels, Vec<(i64, f64)>)]) -> Result<(), String> {
        for (labels, samples) in series {
            for &(t, v) in samples {
                self.append(labels, t, v)?;
            }
        }
        Ok(())
    }

    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<(), String> {
        let shards = self.heads.len();
        let head = &mut self.heads[labels.owner(shards)];
        let (id, _) = head.get_or_create(labels);
        head.append(id, t, v).map_err(|e| format!("{labels}: {e}"))
    }

    pub fn eval(&self, expr: &Expr, params: EvalParams) -> Result<QueryResult, EvalError> {
        let plan = plan(expr, &params)?;
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
