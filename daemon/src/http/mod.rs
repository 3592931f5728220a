//! The HTTP surface: Prometheus's API, health endpoints, `/metrics`, remote write.
//!
//! Every shard serves the same [`router`]; its handlers are `Send` and reach storage only through
//! [`Shards`](crate::shard::Shards) messages. A query is coordinated by the shard whose connection
//! received it (`local`).

mod api;
mod ast_json;
mod params;
mod remote_write;
mod response;
pub mod server;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

use crate::context::Context;

/// What every handler gets.
#[derive(Clone)]
pub struct ApiState {
    pub ctx: Arc<Context>,
    /// The shard this router runs on.
    pub local: usize,
}

pub fn router(ctx: Arc<Context>, local: usize) -> Router {
    Router::new()
        .route("/api/v1/query", get(api::query).post(api::query))
        .route("/api/v1/query_range", get(api::query_range).post(api::query_range))
        .route("/api/v1/format_query", get(api::format_query).post(api::format_query))
        .route("/api/v1/parse_query", get(api::parse_query_endpoint).post(api::parse_query_endpoint))
        .route("/api/v1/series", get(api::series).post(api::series))
        .route("/api/v1/labels", get(api::labels).post(api::labels))
        .route("/api/v1/label/{name}/values", get(api::label_values))
        .route("/api/v1/status/buildinfo", get(api::buildinfo))
        .route("/api/v1/status/tsdb", get(api::status_tsdb))
        .route("/api/v1/admin/tsdb/delete_series", post(api::delete_series).put(api::delete_series))
        .route("/api/v1/admin/tsdb/snapshot", post(api::snapshot).put(api::snapshot))
        .route("/api/v1/admin/tsdb/clean_tombstones", post(api::clean_tombstones).put(api::clean_tombstones))
        .route("/api/v1/write", post(remote_write::write).layer(DefaultBodyLimit::max(remote_write::MAX_BODY_BYTES)))
        .route("/-/healthy", get(|| async { "Pyrite Server is Healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(ApiState { ctx, local })
}

async fn ready(axum::extract::State(s): axum::extract::State<ApiState>) -> impl IntoResponse {
    if s.ctx.ready() {
        (StatusCode::OK, "Pyrite Server is Ready.\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
    }
}

async fn metrics(axum::extract::State(s): axum::extract::State<ApiState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.ctx.metrics.encode())
}
