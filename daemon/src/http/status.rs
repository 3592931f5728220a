//! The status endpoints (`/api/v1/status/*`), and the exemplar endpoint.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use pyrite_core::calendar::rfc3339;
use pyrite_core::labels::{Matcher, METRIC_NAME};
use pyrite_core::value::{format_value, Exemplar};
use pyrite_tsdb::head::HeadStats;
use serde_json::json;

use super::params::Params;
use super::response::{success_json, ApiError, ApiResult};
use super::ApiState;
use crate::shards::{Request, SeriesExemplars};
use crate::slots::Slots;

/// `/api/v1/status/config`: the configuration in force, defaults filled in.
pub async fn config(State(s): State<ApiState>) -> Response {
    success_json(json!({ "yaml": s.ctx.config.current().to_yaml() }))
}

/// `/api/v1/status/flags`: every flag and its value.
pub async fn flags(State(s): State<ApiState>) -> Response {
    let flags: serde_json::Map<String, serde_json::Value> =
        s.ctx.flags.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    success_json(serde_json::Value::Object(flags))
}

/// Threads of this process, from `/proc/self/status`.
fn thread_count() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

/// `/api/v1/status/runtimeinfo`, with upstream's keys; the Go runtime's fields describe
/// Pyrite's own: `goroutineCount` is the process's threads, `GOMAXPROCS` the shards.
pub async fn runtimeinfo(State(s): State<ApiState>) -> Response {
    let ctx = &s.ctx;
    let (reload_ok, last_config) = ctx.config.last_reload();
    let retention = ctx.retention.get().describe();
    let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
    success_json(json!({
        "startTime": rfc3339(ctx.started),
        "CWD": cwd,
        "reloadConfigSuccess": reload_ok,
        "lastConfigTime": rfc3339(last_config),
        "corruptionCount": ctx.shards.replay().corruptions.load(Ordering::Relaxed),
        "goroutineCount": thread_count(),
        "GOMAXPROCS": ctx.shards.len(),
        "GOMEMLIMIT": i64::MAX,
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": retention,
    }))
}

/// `/api/v1/status/walreplay`: every shard replays its log before it serves, so by the time
/// this answers the replay is done; `max` and `current` count the segments replayed.
pub async fn walreplay(State(s): State<ApiState>) -> Response {
    let segments = s.ctx.shards.replay().segments.load(Ordering::Relaxed);
    success_json(json!({ "min": 0, "max": segments, "current": segments }))
}

/// `/api/v1/query_exemplars`: the exemplars in `[start, end]` of the series any selector of
/// the query matches, from every shard, by series labels as upstream sorts them.
pub async fn query_exemplars(State(s): State<ApiState>, params: Params) -> ApiResult {
    let (start, end) = super::api::time_range(&params)?;
    if end < start {
        return Err(ApiError::bad_param("end", "end timestamp must not be before start timestamp"));
    }
    let text = params.get("query").unwrap_or("");
    let expr = pyrite_core::re2::for_request(|| pyrite_core::promql::parse_with(text, s.ctx.parse_options))
        .map_err(|e| ApiError::bad_param("query", e))?;
    // Each selector is matched on every shard's thread: repeats once, and no more than a
    // request's `match[]` may name.
    let mut seen = std::collections::HashSet::new();
    let selectors: Vec<Vec<Matcher>> =
        expr.selectors().into_iter().filter(|s| seen.insert(s.to_string())).map(|s| s.matchers.clone()).collect();
    if selectors.len() > super::api::MAX_SELECTORS {
        let most = super::api::MAX_SELECTORS;
        return Err(ApiError::bad_param("query", format!("more than {most} distinct selectors")));
    }
    if selectors.is_empty() {
        return Ok(axum::http::StatusCode::NO_CONTENT.into_response()); // upstream's answer to `query=1`
    }
    let per_shard = s
        .ctx
        .shards
        .ask_all(|reply| Request::Exemplars { selectors: selectors.clone(), mint: start, maxt: end, reply })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut found: Vec<SeriesExemplars> = Vec::new();
    for shard in per_shard {
        found.extend(shard.map_err(|e| ApiError::internal(e.to_string()))?);
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    // Seconds as upstream writes them: no fraction when there is none.
    let seconds = |t: i64| if t % 1000 == 0 { json!(t / 1000) } else { json!(t as f64 / 1000.0) };
    let exemplar =
        |e: &Exemplar| json!({"labels": e.labels, "value": format_value(e.value), "timestamp": seconds(e.t)});
    let series = |(labels, exemplars): &SeriesExemplars| json!({"seriesLabels": labels, "exemplars": exemplars.iter().map(exemplar).collect::<Vec<_>>()});
    Ok(success_json(json!(found.iter().map(series).collect::<Vec<_>>())))
}

/// One `/api/v1/status/tsdb` answer at a time: each copies every shard's label index.
static TSDB_STATUS: std::sync::LazyLock<Slots> = std::sync::LazyLock::new(|| Slots::new(1));

/// `/api/v1/status/tsdb`: the head's counts, and the top `limit` (default 10) metric names,
/// label names and label pairs by series and by distinct values, over every shard.
pub async fn tsdb(State(s): State<ApiState>, params: Params) -> ApiResult {
    let limit = match params.get("limit") {
        None => 10,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| ApiError::bad_param("limit", "limit must be a positive number"))?,
    };
    let _one_at_a_time = TSDB_STATUS.acquire().await;
    let per_shard = s
        .ctx
        .shards
        .ask_all(|reply| Request::TsdbStats { reply })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    // Merging and sorting every shard's label pairs takes a second for a million series:
    // off the shard when there are many, so that it goes on serving meanwhile.
    let pairs = per_shard.iter().map(|shard| shard.pairs.values().map(|values| values.len()).sum::<usize>()).sum();
    let answer = super::heavy::run(pairs, move || tsdb_answer(per_shard, limit))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(success_json(answer))
}

/// The `/api/v1/status/tsdb` answer of the shards' `per_shard` stats, `limit` items a list.
fn tsdb_answer(per_shard: Vec<HeadStats>, limit: usize) -> serde_json::Value {
    let mut stats = HeadStats::default();
    per_shard.into_iter().for_each(|shard| stats.merge(shard));
    // Largest first, then by name, as many as asked for.
    let top = |mut items: Vec<(String, u64)>| {
        items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        items.truncate(limit);
        items.into_iter().map(|(name, value)| json!({"name": name, "value": value})).collect::<Vec<_>>()
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
    json!({
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
    })
}

/// The version Pyrite reports: a Prometheus-style semver, so that clients that gate features on
/// the Prometheus version (Grafana) treat Pyrite as a 3.x server; Pyrite's own version follows
/// as a pre-release tag.
pub async fn buildinfo() -> Response {
    success_json(json!({
        "version": format!("3.0.0-pyrite.{}", env!("CARGO_PKG_VERSION")),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}
