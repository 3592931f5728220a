//! PromQL over in-memory heads, with no server around them: each series lives on its owner
//! shard and a query runs the planner's fragments on every head and merges them, exactly as the
//! server does. `pyrite test rules` and the conformance runner evaluate this way.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::head::{AppendError, Head};
use pyrite_core::histogram::FloatHistogram;
use pyrite_core::labels::Labels;
use pyrite_core::promql::{
    evaluate_fragments, Cancelled, EvalError, EvalParams, Executor, Expr, Fanout, FragmentOutput, Plan, QueryLimits,
    QueryResult,
};
use pyrite_core::series_notation::Point;

pub struct MemoryEngine {
    heads: Vec<Head>,
    limits: QueryLimits,
}

impl MemoryEngine {
    /// `shards` empty heads, queried under `limits`.
    pub fn new(shards: usize, limits: QueryLimits) -> MemoryEngine {
        MemoryEngine { heads: (0..shards.max(1)).map(|_| Head::new()).collect(), limits }
    }

    pub fn clear(&mut self) {
        *self = MemoryEngine::new(self.heads.len(), self.limits);
    }

    /// Stores samples, floats and histograms (gaps are skipped); Err if a sample is not newer
    /// than its series' newest one.
    pub fn load(&mut self, series: &[(Labels, Vec<(i64, Point)>)]) -> Result<(), Refused> {
        for (labels, samples) in series {
            for (t, point) in samples {
                self.append(labels, *t, point)?;
            }
        }
        Ok(())
    }

    pub fn append(&mut self, labels: &Labels, t: i64, point: &Point) -> Result<(), Refused> {
        let shards = self.heads.len();
        let head = &mut self.heads[labels.owner(shards)];
        let (id, _) = head.get_or_create(labels);
        let appended = match point {
            Point::Gap => return Ok(()),
            Point::Value(v) => head.append(id, t, *v),
            // Validated as upstream's storage validates what it appends.
            Point::Histogram(h) if h.validate().is_err() => Err(AppendError::InvalidHistogram),
            Point::Histogram(h) => head.append_histogram(id, t, FloatHistogram::clone(h)),
        };
        appended.map(drop).map_err(|error| Refused { labels: labels.clone(), error })
    }

    /// Evaluates `expr` as the server would, through the one [`Executor`].
    pub fn eval(&self, expr: &Expr, params: EvalParams) -> Result<QueryResult, EvalError> {
        let executor = Executor::new(Heads(&self.heads), self.limits);
        let mut query = std::pin::pin!(executor.run(expr, params, None, Cancelled::default()));
        // Every step of an in-memory query is ready at once: nothing here waits.
        match query.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => result,
            Poll::Pending => unreachable!("an in-memory query never waits"),
        }
    }

    /// The parameters of an instant query at `t` with this engine's lookback.
    pub fn instant(&self, t: i64) -> EvalParams {
        EvalParams::instant(t, self.limits.lookback_delta)
    }
}

/// A sample the engine did not store, and why.
#[derive(Debug, thiserror::Error)]
#[error("{labels}: {error}")]
pub struct Refused {
    pub labels: Labels,
    pub error: AppendError,
}

/// The heads, one per shard, as the executor's fan-out: fragments run here and now.
struct Heads<'a>(&'a [Head]);

impl Fanout for Heads<'_> {
    type Permit = ();

    async fn admit(&self) {}

    async fn fragments(
        &self,
        plan: &Arc<Plan>,
        params: EvalParams,
        _deadline: Option<Instant>,
    ) -> Result<Vec<Vec<FragmentOutput>>, EvalError> {
        self.0.iter().map(|head: &Head| evaluate_fragments(plan, &params, head, &plan.limits)).collect()
    }

    fn now() -> Instant {
        Instant::now()
    }
}
