//! PromQL: parse → plan → execute, as separate layers.
//!
//! * [`parser`] turns text into an [`ast::Expr`] and type-checks it like upstream.
//! * [`plan`] splits the expression into *fragments* that every shard can evaluate on its own
//!   series (selectors, range functions, partial aggregations) and a coordinator part.
//! * [`eval`] evaluates nodes over all steps at once: shards run fragments against their head,
//!   the coordinator merges fragment outputs and evaluates the rest.
//! * [`executor`] runs a query under the server's limits through a [`Fanout`] to every shard:
//!   the one path of API queries, rules, templates, rule unit tests and conformance scripts.
//!
//! The same query gives the same answer whatever the number of shards: fragments are chosen so
//! that merging is exact (concatenation of disjoint series, or order-independent partial
//! aggregates with exactly rounded sums).

pub mod ast;
pub mod depth;
pub mod eval;
pub mod executor;
pub mod functions;
pub mod parser;
pub mod plan;
pub mod stats_decoding;

pub use ast::{Expr, ValueType};
pub use eval::{
    evaluate_fragment, evaluate_fragments, Annotations, EvalError, EvalParams, FragmentOutput, Interrupt, Limits,
    QueryResult, RangeVector, SeriesBatches, SeriesSource, StepSeries, Value, BATCH_SLOTS, MAX_READ_RESTARTS,
};
pub use executor::{CancelOnDrop, Cancelled, Executor, Fanout, QueryLimits, QueryStage};
pub use parser::{parse, parse_metric_selector, parse_with, ParseError, ParseOptions};
pub use plan::{plan, Fragment, Plan};
