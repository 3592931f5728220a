//! What agent mode answers where a server would read its local storage, rules or alerts, as
//! upstream's agent: the API's query, series, label, rule, alert, TSDB status and admin
//! endpoints fail with `execution` (422) "unavailable with Prometheus Agent" without looking
//! at the request, and federation and remote read, which upstream serves from a storage that
//! refuses every read, fail with its plain-text 500.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::response::ApiError;

/// The API endpoints an agent does not serve.
pub async fn unavailable(_request: Request, _next: Next) -> Response {
    ApiError::execution("unavailable with Prometheus Agent").into_response()
}

/// Federation and remote read in agent mode: upstream's `ErrUnsupported` as its handlers
/// report a storage error.
pub async fn unsupported(_request: Request, _next: Next) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "unsupported operation with WAL-only storage\n").into_response()
}
