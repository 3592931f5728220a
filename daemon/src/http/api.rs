//! Handlers of the query and metadata endpoints of `/api/v1`.

use std::collections::BTreeSet;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use pyrite_core::calendar::{clamp_time, MAX_TIME, MIN_TIME};
use pyrite_core::labels::Matcher;
use pyrite_core::promql::{self, CancelOnDrop, EvalParams, Expr, StepSeries, ValueType};

use super::client_gone::ClientSocket;
use super::heavy;
use super::params::Params;
use super::response::{
    instant_result, labels_object, range_result, success_annotated, success_json, success_warned, ApiError, ApiResult,
};
use super::server::ClientAddress;
use super::ApiState;
use crate::clock::now_ms;
use crate::query_log;
use crate::shards::{Request, Selection, ShardError};

/// Upstream's cap on points per series in a range query.
const MAX_POINTS: i128 = 11_000;

/// Whether a range query from `start` to `end` (ms, unclamped) by `step` (ms, positive) has
/// more than [`MAX_POINTS`] steps as upstream counts them: the span in nanoseconds, saturated
/// at the i64 range as Go's `Time.Sub` saturates, divided by the step.
fn exceeds_resolution(start: i128, end: i128, step: i64) -> bool {
    // Times parsed from `±1e300` reach the i128 range: every step saturates.
    let span_ns = end.saturating_sub(start).saturating_mul(1_000_000).min(i64::MAX.into());
    span_ns / (i128::from(step) * 1_000_000) > MAX_POINTS
}

fn parse_query(s: &ApiState, params: &Params) -> Result<Expr, ApiError> {
    let text = params.get("query").unwrap_or("");
    pyrite_core::re2::for_request(|| promql::parse_with(text, s.ctx.parse_options))
        .map_err(|e| ApiError::bad_param("query", e))
}

/// The options every query takes: `timeout`, `limit`, `stats` and `lookback_delta`.
struct QueryOptions {
    /// The query's own timeout (the server's applies anyway).
    timeout: Option<std::time::Duration>,
    /// Most series in the result; 0 for no limit.
    limit: usize,
    stats: bool,
    lookback: i64,
}

impl QueryOptions {
    fn of(s: &ApiState, params: &Params) -> Result<Self, ApiError> {
        let timeout = match params.get("timeout") {
            None | Some("") => None,
            Some(_) => Some(std::time::Duration::from_millis(params.duration("timeout")?.max(0) as u64)),
        };
        // None, zero or negative: the server's, as upstream's engine falls back to it.
        let lookback = match params.get("lookback_delta") {
            None | Some("") => 0,
            Some(v) => super::params::parse_duration(v)
                .map_err(|e| ApiError::bad_data(format!("error parsing lookback delta duration: {e}")))?,
        };
        let lookback = if lookback > 0 { lookback } else { s.ctx.queries.limits().lookback_delta };
        Ok(QueryOptions {
            timeout,
            limit: limit(params)?,
            stats: params.get("stats").is_some_and(|v| !v.is_empty()),
            lookback,
        })
    }
}

/// The `limit` parameter (0, the default, for none), as upstream parses it.
fn limit(params: &Params) -> Result<usize, ApiError> {
    match params.get("limit") {
        None | Some("") => Ok(0),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n as usize),
            Ok(_) => Err(ApiError::bad_param("limit", "limit must be non-negative")),
            Err(_) => Err(ApiError::bad_param("limit", format!("strconv.Atoi: parsing {v:?}: invalid syntax"))),
        },
    }
}

/// Upstream's warning when a `limit` cut a result short.
const TRUNCATED: &str = "results truncated due to limit";

/// Runs `expr` with the local shard as coordinator. A client that goes away cancels it on every
/// shard: hyper drops this future when the shard serving the connection is free to notice, and
/// while that shard is busy with the query itself, evaluation probes the client's socket.
async fn evaluate(
    s: &ApiState,
    client: Option<ClientSocket>,
    expr: &Expr,
    params: EvalParams,
    timeout: Option<std::time::Duration>,
) -> Result<promql::QueryResult, ApiError> {
    let cancel = client.map_or_else(CancelOnDrop::default, |socket| CancelOnDrop::probing(socket.probe()));
    let (expr, cancelled) = (expr.clone(), cancel.flag());
    let (reply, rx) = flume::bounded(1);
    let executor = s.ctx.queries.clone();
    s.ctx.shards.spawn(s.local, move || crate::query::coordinate(executor, expr, params, timeout, cancelled, reply));
    let result = rx.recv_async().await.map_err(|_| ApiError::internal("the coordinating shard stopped"))?;
    let label = if result.is_ok() { "success" } else { "error" };
    s.ctx.metrics.queries.get_or_create(&vec![("result", label.to_string())]).inc();
    Ok(result?)
}

/// Keeps the first `limit` series of a result that has any (0: all); true if some were cut.
fn truncate(value: &mut promql::Value, limit: usize) -> bool {
    let cut = |len: usize| limit > 0 && len > limit;
    match value {
        promql::Value::Vector(series) => {
            series.retain(StepSeries::has_values);
            let cut = cut(series.len());
            series.truncate(if cut { limit } else { series.len() });
            cut
        }
        promql::Value::Range(range) => {
            let cut = cut(range.series.len());
            range.series.truncate(if cut { limit } else { range.series.len() });
            cut
        }
        promql::Value::Scalar(_) | promql::Value::String(_) => false,
    }
}

/// Runs a query and renders its result with `render`, its annotations, the limit's warning and,
/// if asked for, timing statistics.
/// Who asked for a query, and how: for cancelling it when the client goes, and for the query
/// log.
pub struct Asker {
    socket: Option<ClientSocket>,
    address: Option<std::net::IpAddr>,
    method: axum::http::Method,
    uri: axum::http::Uri,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Asker {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Asker {
            socket: parts.extensions.get::<ClientSocket>().copied(),
            address: parts.extensions.get::<ClientAddress>().map(|a| a.0),
            method: parts.method.clone(),
            uri: parts.uri.clone(),
        })
    }
}

async fn run_query(
    s: &ApiState,
    request: Asker,
    params: &Params,
    expr: &Expr,
    eval: EvalParams,
    render: impl FnOnce(&promql::Value) -> String + Send + 'static,
) -> ApiResult {
    let options = QueryOptions::of(s, params)?;
    let eval = EvalParams { lookback: options.lookback, ..eval };
    let query = params.get("query").unwrap_or("").to_string();
    let started = std::time::Instant::now();
    let evaluated = evaluate(s, request.socket, expr, eval, options.timeout).await;
    let elapsed = started.elapsed().as_secs_f64();
    query_log::log(query_log::Logged {
        query: &query,
        start: eval.start,
        end: eval.end,
        step: eval.step,
        seconds: elapsed,
        error: evaluated.as_ref().err().map(|e| e.message()),
        origin: query_log::Origin::Http {
            client_ip: request.address,
            method: request.method.as_str(),
            path: request.uri.path(),
        },
    });
    let mut result = evaluated?;
    let extra = if truncate(&mut result.value, options.limit) { vec![TRUNCATED.to_string()] } else { Vec::new() };
    let stats = options.stats.then(|| serde_json::json!({ "timings": query_log::timings(elapsed) }));
    Ok(heavy::run(result.value.slots(), move || {
        let mut data = render(&result.value);
        if let Some(timings) = stats {
            // Spliced into the rendered object: `{"resultType":...,"result":...,"stats":{...}}`.
            data.pop();
            data.push_str(&format!(",\"stats\":{timings}}}"));
        }
        success_annotated(data, &result.annotations, &query, &extra)
    })
    .await?)
}

pub async fn query(State(s): State<ApiState>, asker: Asker, params: Params) -> ApiResult {
    let expr = parse_query(&s, &params)?;
    let t = params.time_or("time", now_ms())?;
    run_query(&s, asker, &params, &expr, s.ctx.queries.instant(t), move |v| instant_result(v, t)).await
}

pub async fn query_range(State(s): State<ApiState>, asker: Asker, params: Params) -> ApiResult {
    let expr = parse_query(&s, &params)?;
    // Checked as given; clamped only for evaluation.
    let start = params.time_unclamped("start")?;
    let end = params.time_unclamped("end")?;
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
    if exceeds_resolution(start, end, step) {
        return Err(ApiError::bad_data("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"));
    }
    let (start, end) = (clamp_time(start), clamp_time(end));
    if !matches!(expr.value_type(), ValueType::Scalar | ValueType::Vector) {
        return Err(ApiError::bad_data(format!(
            "invalid expression type {:?} for range query, must be Scalar or instant Vector",
            expr.value_type().to_string()
        )));
    }
    let eval = EvalParams { start, end, step, lookback: s.ctx.queries.limits().lookback_delta };
    run_query(&s, asker, &params, &expr, eval, move |v| range_result(v, |i| eval.ts(i))).await
}

/// The most distinct `match[]` selectors a request may give (upstream has no limit): each is
/// matched on every shard in turn, so a form of a million would keep the shards busy for as
/// many reads. A thousand regular expressions over 100,000 series take some 12 s, in slices
/// that leave the shards serving.
pub const MAX_SELECTORS: usize = 10_000;

/// Whether `match[]` selectors that all match the empty string are refused: upstream's
/// series, labels and label values refuse them; deletion and federation take them.
#[derive(Clone, Copy, PartialEq)]
pub enum EmptySelectors {
    Refused,
    Allowed,
}

/// Why the `match[]` selectors of a request were refused.
#[derive(Debug, thiserror::Error)]
pub enum SelectorError {
    #[error("more than {MAX_SELECTORS} distinct selectors")]
    TooMany,
    /// Not a bare series selector (a range, `offset` or `@` included), as upstream's
    /// `ParseMetricSelector` refuses it.
    #[error(transparent)]
    Parse(#[from] promql::ParseError),
    #[error("match[] must contain at least one non-empty matcher")]
    AllEmpty,
}

/// The `match[]` selectors of a request, as matcher lists.
pub fn selectors(params: &Params, empty: EmptySelectors) -> Result<Vec<Vec<Matcher>>, SelectorError> {
    // A selector repeated changes nothing in the union, so each is matched once (a form can
    // repeat a costly one a hundred thousand times).
    let mut seen = std::collections::HashSet::new();
    let distinct: Vec<&str> = params.all("match[]").into_iter().filter(|m| seen.insert(*m)).collect();
    if distinct.len() > MAX_SELECTORS {
        return Err(SelectorError::TooMany);
    }
    let sets = pyrite_core::re2::for_request(|| {
        distinct.into_iter().map(promql::parse_metric_selector).collect::<Result<Vec<_>, _>>()
    })?;
    if empty == EmptySelectors::Refused && sets.iter().any(|set| set.iter().all(|m| m.matches(""))) {
        return Err(SelectorError::AllEmpty);
    }
    // `{}` selects nothing, as upstream's storage selects nothing for no matchers: deleting
    // or federating with it must not take every series.
    Ok(sets.into_iter().filter(|set| !set.is_empty()).collect())
}

/// The time range a metadata (or exemplars) request names; without one, all time.
pub(super) fn time_range(params: &Params) -> Result<(i64, i64), ApiError> {
    Ok((params.time_or("start", MIN_TIME)?, params.time_or("end", MAX_TIME)?))
}

/// `/api/v1/format_query`: the query in canonical form, split over lines as upstream does when
/// longer than 100 characters.
pub async fn format_query(State(s): State<ApiState>, params: Params) -> ApiResult {
    let pretty = parse_query(&s, &params)?.pretty(0).map_err(|e| ApiError::bad_data(e.to_string()))?;
    Ok(success_json(serde_json::json!(pretty)))
}

/// `/api/v1/parse_query`: the syntax tree as JSON.
pub async fn parse_query_endpoint(State(s): State<ApiState>, params: Params) -> ApiResult {
    Ok(success_json(super::ast_json::translate(&parse_query(&s, &params)?)))
}

/// Asks every shard about the series matching `matchers` (all series if there are none) in the
/// request's time range, and answers the union of their answers, sorted, without repeats and
/// cut to `limit`, as `render` writes it (off the shard when it is large).
async fn gather<T: Ord + Send + 'static>(
    s: &ApiState,
    params: &Params,
    matchers: Vec<Vec<Matcher>>,
    limit: usize,
    make: impl Fn(Selection, flume::Sender<Result<Vec<T>, ShardError>>) -> Request,
    render: impl FnOnce(Vec<T>) -> String + Send + 'static,
) -> ApiResult {
    let (mint, maxt) = time_range(params)?;
    let selection = Selection { matchers, mint, maxt };
    let per_shard = s
        .ctx
        .shards
        .ask_all(|reply| make(selection.clone(), reply))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let answers = per_shard.into_iter().collect::<Result<Vec<Vec<T>>, _>>()?;
    let units = answers.iter().map(Vec::len).sum();
    Ok(heavy::run(units, move || {
        let (kept, warnings) = limited(answers.into_iter().flatten().collect(), limit);
        success_warned(render(kept), &warnings)
    })
    .await?)
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
    make: impl Fn(usize, flume::Sender<Result<(), ShardError>>) -> Request,
) -> Result<(), ShardError> {
    s.ctx.shards.ask_all_indexed(make).await?.into_iter().collect()
}

/// Runs an admin request on every shard; 204 if all succeeded.
async fn admin(s: &ApiState, make: impl Fn(flume::Sender<Result<(), ShardError>>) -> Request) -> ApiResult {
    on_every_shard(s, |_, reply| make(reply)).await?;
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

/// `/api/v1/admin/tsdb/delete_series`: deletes the samples of the `match[]` series between
/// `start` and `end` (default: all time). Blocks get tombstones; the head drops the samples.
pub async fn delete_series(State(s): State<ApiState>, params: Params) -> ApiResult {
    require_admin(&s)?;
    // Upstream parses the form before reading it, so a multipart body goes unread.
    let params = params.without_multipart().map_err(ApiError::bad_data)?;
    if params.get("match[]").is_none() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let matchers = selectors(&params, EmptySelectors::Allowed).map_err(|e| ApiError::bad_param("match[]", e))?;
    let (mint, maxt) = time_range(&params)?;
    let selection = Selection { matchers, mint, maxt };
    admin(&s, |reply| Request::Delete { selection: selection.clone(), reply }).await
}

/// `/api/v1/admin/tsdb/snapshot`: a copy of every block, and (unless `skip_head=true`) the
/// head written as a block, under `<data>/snapshots/<name>/<shard>/`, for backups.
pub async fn snapshot(State(s): State<ApiState>, params: Params) -> ApiResult {
    require_admin(&s)?;
    let skip_head = match params.get("skip_head") {
        None | Some("") => false,
        Some(v) => pyrite_core::strconv::parse_bool(v).ok_or_else(|| {
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

/// The first `limit` items (0: all), and upstream's warning if that cut some.
fn limited<T>(items: BTreeSet<T>, limit: usize) -> (Vec<T>, Vec<String>) {
    let cut = limit > 0 && items.len() > limit;
    let kept = items.into_iter().take(if cut { limit } else { usize::MAX }).collect();
    (kept, if cut { vec![TRUNCATED.to_string()] } else { Vec::new() })
}

pub async fn series(State(s): State<ApiState>, params: Params) -> ApiResult {
    // Upstream parses the form before reading it, so a multipart body goes unread.
    let params = params.without_multipart().map_err(ApiError::bad_data)?;
    if params.get("match[]").is_none() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let limit = limit(&params)?;
    let matchers = selectors(&params, EmptySelectors::Refused).map_err(|e| ApiError::bad_param("match[]", e))?;
    let make = |selection, reply| Request::Series { selection, reply };
    gather(&s, &params, matchers, limit, make, |all| {
        let items: Vec<String> = all.iter().map(labels_object).collect();
        format!("[{}]", items.join(","))
    })
    .await
}

/// The `match[]` selectors of the label names and values endpoints, which upstream refuses
/// without naming the parameter.
pub(super) fn metadata_selectors(params: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    selectors(params, EmptySelectors::Refused).map_err(|e| ApiError::bad_data(e.to_string()))
}

pub async fn labels(State(s): State<ApiState>, params: Params) -> ApiResult {
    let limit = limit(&params)?;
    let make = |selection, reply| Request::LabelNames { selection, reply };
    gather(&s, &params, metadata_selectors(&params)?, limit, make, |names| serde_json::json!(names).to_string()).await
}

/// Decodes a label name that a client escaped for the URL path (`U__` followed by the name with
/// `_` as `__` and any other character outside `[a-zA-Z0-9]` as `_<hex code point>_`), as
/// Grafana does for UTF-8 names. A name that is not a valid escape stays as it is.
fn unescape_label_name(name: &str) -> String {
    let Some(escaped) = name.strip_prefix("U__") else { return name.to_string() };
    let mut out = String::new();
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        let mut code = String::new();
        loop {
            match chars.next() {
                Some('_') if code.is_empty() => {
                    out.push('_');
                    break;
                }
                Some('_') => match u32::from_str_radix(&code, 16).ok().and_then(char::from_u32) {
                    Some(decoded) => {
                        out.push(decoded);
                        break;
                    }
                    None => return name.to_string(),
                },
                Some(h) if h.is_ascii_hexdigit() && code.len() < 6 => code.push(h),
                _ => return name.to_string(),
            }
        }
    }
    out
}

pub async fn label_values(
    State(s): State<ApiState>,
    name: Result<Path<String>, PathRejection>,
    params: Params,
) -> ApiResult {
    // A name that does not decode to UTF-8 (`%FF`) is refused as upstream refuses it, in the
    // API's JSON, instead of axum's plain-text rejection.
    let Ok(Path(name)) = name else { return Err(ApiError::bad_data("invalid label name: not valid UTF-8")) };
    let name = unescape_label_name(&name);
    if name.is_empty() {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let limit = limit(&params)?;
    let matchers = metadata_selectors(&params)?;
    let make = |selection, reply| Request::LabelValues { name: name.clone(), selection, reply };
    gather(&s, &params, matchers, limit, make, |values| serde_json::json!(values).to_string()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_is_checked_on_the_times_as_given() {
        assert!(!exceeds_resolution(0, 11_000_000, 1000), "11,000 steps are allowed");
        assert!(exceeds_resolution(0, 11_001_000, 1000));
        let start = 10i128.pow(21);
        assert!(exceeds_resolution(start, start + 10i128.pow(14), 10_000), "past the clamp");
        assert!(!exceeds_resolution(-start, start, i64::MAX / 1_000_000), "the span saturates as Go's");
        assert!(exceeds_resolution(i128::MIN, i128::MAX, 1), "times of ±1e300 s");
    }

    #[test]
    fn escaped_label_names_decode_as_upstream_decodes_them() {
        assert_eq!(unescape_label_name("U__http_2e_status"), "http.status");
        assert_eq!(unescape_label_name("U__a__b"), "a_b");
        assert_eq!(unescape_label_name("U___1f525_"), "\u{1f525}");
        assert_eq!(unescape_label_name("job"), "job");
        assert_eq!(unescape_label_name("U__bad_zz_"), "U__bad_zz_", "invalid escapes stay");
        assert_eq!(unescape_label_name("U__open_2e"), "U__open_2e");
    }
}
