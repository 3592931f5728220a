//! Why a rule's evaluation failed: what its `lastError` says (the messages are upstream's).

use std::sync::Arc;

use thiserror::Error;

use crate::promql::{EvalError, ParseError};

#[derive(Debug, Clone, Error)]
pub enum RuleError {
    /// The rule's query, or a template's `query` call, failed.
    #[error(transparent)]
    Query(#[from] EvalError),
    /// A template's `query` call is not PromQL.
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("rule result is a string, not a vector or scalar")]
    StringResult,
    #[error("rule result is a range vector, not an instant vector or scalar")]
    RangeResult,
    /// `what` is `rule` or `alert`.
    #[error("vector contains metrics with the same labelset after applying {what} labels")]
    DuplicateLabelSets { what: &'static str },
    /// The group's `limit`; `what` is `series` or `alerts`.
    #[error("exceeded limit of {limit} with {got} {what}")]
    Limit { limit: usize, got: usize, what: &'static str },
    /// The results could not be written.
    #[error("{0}")]
    Storage(Arc<dyn std::error::Error + Send + Sync>),
    /// The evaluation panicked (the caller caught it).
    #[error("evaluation failed unexpectedly: {0}")]
    Panicked(String),
}

impl RuleError {
    /// The results could not be written because of `e`.
    pub fn storage(e: impl std::error::Error + Send + Sync + 'static) -> RuleError {
        RuleError::Storage(Arc::new(e))
    }
}
