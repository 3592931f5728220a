//! Handlers of the query and metadata endpoints of `/api/v1`.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use pyrite_core::labels::{is_valid_label_name, Matcher, METRIC_NAME};
use pyrite_core::promql::{self, EvalParams, Expr, ValueType};
use pyrite_core::tsdb::head::HeadStats;

use super::params::Params;
use super::response::{
    instant_result, labels_object, range_result, success, success_annotated, success_json, ApiError,
};
use super::ApiState;
use crate::clock::now_ms;
use crate::shard::Request;

/// Upstream's cap on points per series in a range query.
const MAX_POINTS: i64 = 11_000;
/// The widest time range a metadata request covers when it names none.
const MIN_TIME: i64 = i64::MIN / 2;
const MAX_TIME: i64 = i64::MAX / 2;

type ApiResult = Result<Response, ApiError>;

fn parse_query(s: &ApiState, params: &Params) -> Result<Expr, ApiError> {
    let text = params.get("query").unwrap_or("");
    promql::parse_with(text, s.ctx.parse_options).map_err(|e| ApiError::bad_param("query", e))
}

/// Plans and runs `expr` on the local shard as coordinator.
async fn evaluate(s: &ApiState, expr: &Expr, params: EvalParams) -> Result<promql::QueryResult, ApiError> {
    let mut plan = promql::plan(expr, &params)?;
    plan.max_samples = s.ctx.max_samples;
    let plan = Arc::new(plan);
    let _slot = s.ctx.query_slot().await;
    let rx = s.ctx.shards.ask(s.local, |reply| Request::Query { plan, params, reply });
    let result = rx.recv_async().await.map_err(|_| ApiError::internal("the coordinating shard stopped"))?;
    let label = if result.is_ok() { "success" } else { "error" };
    s.ctx.metrics.queries.get_or_create(&vec![("result", label.to_string())]).inc();
    Ok(result?)
}

pub async fn query(State(s): State<ApiState>, params: Params) -> ApiResult {
    let expr = parse_query(&s, &params)?;
    let t = params.time_or("time", now_ms())?;
    let result = evaluate(&s, &expr, EvalParams::instant(t, s.ctx.lookback.millis())).await?;
    Ok(success_annotated(instant_result(&result.value, t), &result.annotations, params.get("query").unwrap_or("")))
}

pub async fn query_range(State(s): State<ApiState>, params: Params) -> ApiResult {
    let expr = parse_query(&s, &params)?;
    let start = params.time("start")?;
    let end = params.time("end")?;
    if end < start {
        return Err(ApiError::bad_param("end", "end timestamp must not be before start time"));
    }
    let step = params.duration("step")?;
    if step <= 0 {
        return Err(ApiError::bad_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step >= MAX_POINTS {
        return Err(ApiError::bad_data("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"));
    }
    if !matches!(expr.value_type(), ValueType::Scalar | ValueType::Vector) {
        return Err(ApiError::bad_data(format!(
            "invalid expression type {:?} for range query, must be Scalar or instant Vector",
            expr.value_type().to_string()
        )));
    }
    let eval = EvalParams { start, end, step, lookback: s.ctx.lookback.millis() };
    let result = evaluate(&s, &expr, eval).await?;
    let query = params.get("query").unwrap_or("");
    Ok(success_annotated(range_result(&result.value, |i| eval.ts(i)), &result.annotations, query))
}

/// The `match[]` selectors of a request, as matcher lists.
fn selectors(params: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    params
        .all("match[]")
        .into_iter()
        .map(|m| match promql::parse(m) {
            Ok(Expr::VectorSelector(vs)) => Ok(vs.matchers),
            Ok(_) => Err(ApiError::bad_param("match[]", format!("{m:?} is not a series selector"))),
            Err(e) => Err(ApiError::bad_param("match[]", e)),
        })
        .collect()
}

fn time_range(params: &Params) -> Result<(i64, i64), ApiError> {
    Ok((params.time_or("start", MIN_TIME)?, params.time_or("end", MAX_TIME)?))
}

/// `/api/v1/format_query`: the query in canonical form, split over lines as upstream does when
/// longer than 100 characters.
pub async fn format_query(State(s): State<ApiState>, params: Params) -> ApiResult {
    Ok(success_json(serde_json::json!(parse_query(&s, &params)?.pretty(0))))
}

/// `/api/v1/parse_query`: the syntax tree as JSON.
pub async fn parse_query_endpoint(State(s): State<ApiState>, params: Params) -> ApiResult {
    Ok(success_json(super::ast_json::translate(&parse_query(&s, &params)?)))
}

/// Asks every shard about the series matching the request's `match[]` selectors (all series if
/// there are none) in its time range, and merges the answers into one sorted set.
async fn gather<T: Ord>(
    s: &ApiState,
    params: &Params,
    make: impl Fn(Vec<Vec<Matcher>>, i64, i64, flume::Sender<Result<Vec<T>, String>>) -> Request,
) -> Result<BTreeSet<T>, ApiError> {
    let matchers = selectors(params)?;
    let (mint, maxt) = time_range(params)?;
    let per_shard = s
        .ctx
        .shards
        .ask_all(|reply| make(matchers.clone(), mint, maxt, reply))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut out = BTreeSet::new();
    for answer in per_shard {
        out.extend(answer.map_err(ApiError::internal)?);
    }
    Ok(out)
}

/// Upstream's answer to an admin endpoint without `--web.enable-admin-api`.
fn require_admin(s: &ApiState) -> Result<(), ApiError> {
    if s.ctx.admin_api {
        Ok(())
    } else {
        Err(ApiError::unavailable("admin APIs disabled"))
    }
}

/// Sends an admin request (built for each shard's index) to every shard; the first failure.
async fn on_every_shard(
    s: &ApiState,
    make: impl Fn(usize, flume::Sender<Result<(), String>>) -> Request,
) -> Result<(), String> {
    let answers = s.ctx.shards.ask_all_indexed(make).await.map_err(|e| e.to_string())?;
    answers.into_iter().collect()
}

/// Runs an admin request on every shard; 204 if all succeeded.
async fn admin(s: &ApiState, make: impl Fn(flume::Sender<Result<(), String>>) -> Request) -> ApiResult {
    on_every_shard(s, |_, reply| make(reply)).await.map_err(ApiError::internal)?;
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

/// `/api/v1/admin/tsdb/delete_series`: deletes the samples of the `match[]` series between
/// `start` and `end` (default: all time). Blocks get tombstones; the head drops the samples.
pub async fn delete_series(State(s): State<ApiState>, params: Params) -> ApiResult {
    require_admin(&s)?;
    if params.get("match[]").is_none() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let matchers = selectors(&params)?;
    let (mint, maxt) = time_range(&params)?;
    admin(&s, |reply| Request::Delete { matchers: matchers.clone(), mint, maxt, reply }).await
}

/// `/api/v1/admin/tsdb/snapshot`: a copy of every block, and (unless `skip_head=true`) the
/// head written as a block, under `<data>/snapshots/<name>/<shard>/`, for backups.
pub async fn snapshot(State(s): State<ApiState>, params: Params) -> ApiResult {
    require_admin(&s)?;
    let skip_head = match params.get("skip_head") {
        None | Some("") => false,
        Some(v) => v.parse::<bool>().map_err(|_| {
            ApiError::bad_data(format!("unable to parse boolean 'skip_head' argument: invalid syntax {v:?}"))
        })?,
    };
    let now = now_ms();
    let name = format!(
        "{}-{:016x}",
        pyrite_core::calendar::utc_compact(now),
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), now)
    );
    let dir = s.ctx.storage_path.join("snapshots").join(&name);
    let dirs: Vec<std::path::PathBuf> = (0..s.ctx.shards.len()).map(|i| dir.join(i.to_string())).collect();
    on_every_shard(&s, |i, reply| Request::Snapshot { dir: dirs[i].clone(), skip_head, reply })
        .await
        .map_err(|e| ApiError::internal(format!("create snapshot: {e}")))?;
    Ok(success_json(serde_json::json!({ "name": name })))
}

/// `/api/v1/admin/tsdb/clean_tombstones`: rewrites the blocks that have tombstones.
pub async fn clean_tombstones(State(s): State<ApiState>) -> ApiResult {
    require_admin(&s)?;
    admin(&s, |reply| Request::CleanTombstones { reply }).await
}

pub async fn series(State(s): State<ApiState>, params: Params) -> ApiResult {
    if params.get("match[]").is_none() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let all =
        gather(&s, &params, |matchers, mint, maxt, reply| Request::Series { matchers, mint, maxt, reply }).await?;
    let items: Vec<String> = all.iter().map(labels_object).collect();
    Ok(success(format!("[{}]", items.join(","))))
}

pub async fn labels(State(s): State<ApiState>, params: Params) -> ApiResult {
    let names =
        gather(&s, &params, |matchers, mint, maxt, reply| Request::LabelNames { matchers, mint, maxt, reply }).await?;
    Ok(success_json(serde_json::json!(names)))
}

pub async fn label_values(State(s): State<ApiState>, Path(name): Path<String>, params: Params) -> ApiResult {
    if !is_valid_label_name(&name) {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let values = gather(&s, &params, |matchers, mint, maxt, reply| Request::LabelValues {
        name: name.clone(),
        matchers,
        mint,
        maxt,
        reply,
    })
    .await?;
    Ok(success_json(serde_json::json!(values)))
}

/// `/api/v1/status/tsdb`: the head's counts, and the top `limit` (default 10) metric names,
/// label names and label pairs by series and by distinct values, over every shard.
pub async fn status_tsdb(State(s): State<ApiState>, params: Params) -> ApiResult {
    let limit = match params.get("limit") {
        None => 10,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| ApiError::bad_param("limit", "limit must be a positive number"))?,
    };
    let per_shard = s
        .ctx
        .shards
        .ask_all(|reply| Request::TsdbStats { reply })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut stats = HeadStats::default();
    per_shard.into_iter().for_each(|shard| stats.merge(shard));
    // Largest first, then by name, as many as asked for.
    let top = |mut items: Vec<(String, u64)>| {
        items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        items.truncate(limit);
        items.into_iter().map(|(name, value)| serde_json::json!({"name": name, "value": value})).collect::<Vec<_>>()
    };
    let by_name = |f: fn(&std::collections::HashMap<String, u64>) -> u64| {
        top(stats.pairs.iter().map(|(name, values)| (name.clone(), f(values))).collect())
    };
    let pairs: Vec<(String, u64)> = stats
        .pairs
        .iter()
        .flat_map(|(name, values)| values.iter().map(move |(value, n)| (format!("{name}={value}"), *n)))
        .collect();
    let metric_names =
        stats.pairs.get(METRIC_NAME).map(|v| v.iter().map(|(k, n)| (k.clone(), *n)).collect()).unwrap_or_default();
    Ok(success_json(serde_json::json!({
        "headStats": {
            "numSeries": stats.series,
            "numLabelPairs": pairs.len(),
            "chunkCount": stats.chunks,
            "minTime": stats.min_time.unwrap_or(i64::MAX),
            "maxTime": stats.max_time.unwrap_or(i64::MIN),
        },
        "seriesCountByMetricName": top(metric_names),
        "labelValueCountByLabelName": by_name(|values| values.len() as u64),
        "memoryInBytesByLabelName": by_name(|values| values.keys().map(|v| v.len() as u64).sum()),
        "seriesCountByLabelValuePair": top(pairs),
    })))
}

/// The version Pyrite reports: a Prometheus-style semver, so that clients that gate features on
/// the Prometheus version (Grafana) treat Pyrite as a 3.x server; Pyrite's own version follows
/// as a pre-release tag.
pub async fn buildinfo() -> Response {
    success_json(serde_json::json!({
        "version": format!("3.0.0-pyrite.{}", env!("CARGO_PKG_VERSION")),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}
