//! The HTTP surface: Prometheus's API, federation, health and lifecycle endpoints, `/metrics`,
//! remote write and read, all under the route prefix; and what stands before it on every connection
//! (`server`): TLS, basic auth and headers from the web configuration file, connection and
//! read-time limits.
//!
//! Every shard serves the same [`router`]; its handlers are `Send` and reach storage only through
//! [`Shards`] messages. A query is coordinated by the shard whose connection
//! received it (`local`). A large answer is prepared off that shard (`heavy`).

mod agent;
mod api;
mod ast_json;
pub mod auth;
mod client_gone;
mod compress;
mod cors;
mod deadline;
mod federate;
mod half_close;
mod heavy;
mod instrument;
mod lifecycle;
pub mod params;
pub mod prefix;
mod raw_target;
pub mod remote_read;
mod remote_write;
mod response;
mod rules;
pub mod server;
mod status;
mod targets;
mod tls;
mod ui;
pub mod web_config;

pub use cors::parse_origin as parse_cors_origin;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::live_config::LiveConfig;
use crate::metrics::Metrics;
use crate::notifier::Notifier;
use crate::query::ServerExecutor;
use crate::reload::ReloadRequests;
use crate::rules::RuleManager;
use crate::scrape::ScrapeManager;
use crate::shards::Shards;
use prefix::WebPaths;
use pyrite_core::promql::ParseOptions;

/// What the handlers answer from: handles to the subsystems they serve, and the API's settings.
/// Built once in `main`; every shard's router shares it.
pub struct Api {
    pub shards: Shards,
    pub queries: Arc<ServerExecutor>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<LiveConfig>,
    pub scrape: Arc<ScrapeManager>,
    pub rules: Arc<RuleManager>,
    pub notifier: Arc<Notifier>,
    pub reloads: ReloadRequests,
    pub web: WebPaths,
    /// Every command-line flag and its value, for `/api/v1/status/flags`.
    pub flags: Vec<(String, String)>,
    /// `--web.enable-lifecycle`.
    pub lifecycle_api: bool,
    /// `--web.enable-admin-api`.
    pub admin_api: bool,
    /// `--web.enable-remote-write-receiver`.
    pub remote_write_receiver: bool,
    /// `--web.remote-write-receiver.accepted-protobuf-messages`.
    pub remote_write_messages: Vec<pyrite_core::remote::v2::WriteMessage>,
    /// The `--storage.remote.read-*` limits.
    pub remote_read: remote_read::ReadLimits,
    /// `--web.cors.origin`, anchored.
    pub cors_origin: regex::Regex,
    /// `--web.page-title`, the UI's title.
    pub page_title: String,
    /// How PromQL is parsed (feature flags).
    pub parse_options: ParseOptions,
    /// `--storage.tsdb.path` (admin snapshots go under it), or `--storage.agent.path`.
    pub storage_path: std::path::PathBuf,
    /// Agent mode: local storage, rules and alerts are not served.
    pub agent: bool,
    /// The retention in force (status API).
    pub retention: Arc<crate::retention::LiveRetention>,
    /// How far past the clock a remote-written sample may be (ms).
    pub future_window: i64,
    /// Unix ms at start-up.
    pub started: i64,
}

/// What every handler gets.
#[derive(Clone)]
pub struct ApiState {
    pub ctx: Arc<Api>,
    /// The shard this router runs on.
    pub local: usize,
}

/// Largest form body the API reads, as Go's `ParseForm` (larger: 400 `bad_data`).
pub(super) const MAX_FORM_BYTES: usize = 10 << 20;

/// Every route, under `--web.route-prefix`; with a prefix, `/` redirects to it.
pub fn router(ctx: Arc<Api>, local: usize) -> Router {
    let base = match ctx.web.route_prefix.as_str() {
        "/" => String::new(),
        prefix => prefix.to_string(),
    };
    let state = ApiState { ctx, local };
    let ready = || middleware::from_fn_with_state(state.clone(), until_ready);
    let agent = state.ctx.agent;
    let api =
        api_routes(&base, agent).route_layer(ready()).layer(middleware::from_fn_with_state(state.clone(), cors::cors));
    let mut federate = Router::new().route(&format!("{base}/federate"), get(federate::federate));
    if agent {
        federate = federate.route_layer(middleware::from_fn(agent::unsupported));
    }
    let federate = federate.layer(middleware::from_fn(compress::compress));
    let federate = federate.route_layer(ready());
    let mut router = api.merge(federate).merge(service_routes(&base)).merge(ui::routes(&base, &state.ctx.page_title));
    if !base.is_empty() {
        let target = base.clone();
        router = router.route("/", get(move || async move { (StatusCode::FOUND, [(header::LOCATION, target)]) }));
    }
    router
        .route_layer(middleware::from_fn_with_state(state.clone(), instrument::instrument))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(state)
}

/// A request's body, at most `limit` bytes, read when a handler is ready for it; else the answer
/// axum's body extractor gives (413 past the limit, 400 for a body that could not be read).
async fn read_body(body: axum::body::Body, limit: usize) -> Result<axum::body::Bytes, Response> {
    collect_body(body, limit).await.map_err(|e| {
        let status = if e.too_large { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::BAD_REQUEST };
        (status, e.message).into_response()
    })
}

/// Why a request's body could not be read, in axum's words.
pub(super) struct BodyError {
    pub too_large: bool,
    pub message: String,
}

/// A request's body, at most `limit` bytes, each frame copied into one buffer as it comes.
/// Collecting the frames instead (axum's `to_bytes`) kept each one's share of the connection's
/// read buffer, about 4 KB a frame: a body sent a byte at a time took 1.2 GB for 300 KB sent.
pub(super) async fn collect_body(mut body: axum::body::Body, limit: usize) -> Result<axum::body::Bytes, BodyError> {
    use http_body_util::BodyExt;
    let failed = |why: &dyn std::fmt::Display, too_large| BodyError {
        too_large,
        message: format!("Failed to buffer the request body: {why}"),
    };
    // A declared length past the limit is refused at once, not after waiting for its bytes (a
    // client may declare 2^63 and send a few).
    if hyper::body::Body::size_hint(&body).lower() > limit as u64 {
        return Err(failed(&"length limit exceeded", true));
    }
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| failed(&e, false))?;
        if let Ok(data) = frame.into_data() {
            if data.len() > limit - out.len() {
                return Err(failed(&"length limit exceeded", true));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.into())
}

/// As upstream: the API and federation answer 503 until every shard has opened its storage.
async fn until_ready(State(s): State<ApiState>, request: Request, next: Next) -> Response {
    if s.ctx.shards.ready() {
        next.run(request).await
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
    }
}

/// The health, lifecycle and telemetry routes, which answer from the start.
fn service_routes(base: &str) -> Router<ApiState> {
    let at = |path: &str| format!("{base}{path}");
    Router::new()
        .route(&at("/-/healthy"), get(lifecycle::healthy).head(lifecycle::healthy))
        .route(&at("/-/ready"), get(lifecycle::ready).head(lifecycle::ready))
        .route(&at("/-/reload"), post(lifecycle::reload).put(lifecycle::reload).get(lifecycle::wrong_method))
        .route(&at("/-/quit"), post(lifecycle::quit).put(lifecycle::quit).get(lifecycle::wrong_method))
        .route(&at("/metrics"), get(metrics))
}

/// The API routes, under `base` (`""` or `/prefix`); in agent mode those that read local
/// storage, rules or alerts answer as upstream's agent does ([`agent`]).
fn api_routes(base: &str, agent: bool) -> Router<ApiState> {
    let v1 = |path: &str| format!("{base}/api/v1{path}");
    let mut local = Router::new()
        .route(&v1("/query"), get(api::query).post(api::query))
        .route(&v1("/query_range"), get(api::query_range).post(api::query_range))
        .route(&v1("/query_exemplars"), get(status::query_exemplars).post(status::query_exemplars))
        .route(&v1("/format_query"), get(api::format_query).post(api::format_query))
        .route(&v1("/parse_query"), get(api::parse_query_endpoint).post(api::parse_query_endpoint))
        .route(&v1("/series"), get(api::series).post(api::series))
        .route(&v1("/labels"), get(api::labels).post(api::labels))
        .route(&v1("/label/{name}/values"), get(api::label_values))
        .route(&v1("/rules"), get(rules::rules))
        .route(&v1("/alerts"), get(rules::alerts))
        .route(&v1("/alertmanagers"), get(rules::alertmanagers))
        .route(&v1("/status/tsdb"), get(status::tsdb))
        .route(&v1("/admin/tsdb/delete_series"), post(api::delete_series).put(api::delete_series))
        .route(&v1("/admin/tsdb/snapshot"), post(api::snapshot).put(api::snapshot))
        .route(&v1("/admin/tsdb/clean_tombstones"), post(api::clean_tombstones).put(api::clean_tombstones));
    let mut read = Router::new().route(&v1("/read"), post(remote_read::read));
    if agent {
        local = local.route_layer(middleware::from_fn(agent::unavailable));
        read = read.route_layer(middleware::from_fn(agent::unsupported));
    }
    let answers = Router::new()
        .route(&v1("/metadata"), get(targets::metadata))
        .route(&v1("/targets"), get(targets::targets))
        .route(&v1("/targets/metadata"), get(targets::targets_metadata))
        .route(&v1("/scrape_pools"), get(targets::scrape_pools))
        .route(&v1("/status/config"), get(status::config))
        .route(&v1("/status/flags"), get(status::flags))
        .route(&v1("/status/runtimeinfo"), get(status::runtimeinfo))
        .route(&v1("/status/buildinfo"), get(status::buildinfo))
        .route(&v1("/status/walreplay"), get(status::walreplay))
        .merge(local)
        .layer(middleware::from_fn(compress::compress));
    // Remote write and read speak snappy, as upstream's, which compresses neither.
    answers.route(&v1("/write"), post(remote_write::write)).merge(read)
}

/// Unknown paths, under the API too: 404 as upstream's router answers it.
async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "404 page not found\n")
}

async fn metrics(axum::extract::State(s): axum::extract::State<ApiState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.ctx.metrics.encode())
}
