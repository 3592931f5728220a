//! Handlers about what is scraped: `/api/v1/targets`, `scrape_pools`, `targets/metadata` and
//! `metadata`, in upstream's shapes, from the [`ScrapeManager`](crate::scrape::ScrapeManager).

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::response::Response;
use pyrite_core::calendar::rfc3339;
use pyrite_core::labels::Matcher;
use serde_json::{json, Map, Value};

use super::params::Params;
use super::response::{success_json, ApiError};
use super::ApiState;
use crate::scrape::ActiveTarget;

/// What Go prints for a time never set, as upstream shows a target not scraped yet.
const NEVER: &str = "0001-01-01T00:00:00Z";

fn active_json(a: &ActiveTarget) -> Value {
    let t = &a.target;
    let status = a.status();
    let health = match status.up {
        None => "unknown",
        Some(true) => "up",
        Some(false) => "down",
    };
    json!({
        "discoveredLabels": &t.discovered,
        "labels": &t.labels,
        "scrapePool": t.scrape_pool,
        "scrapeUrl": t.url(),
        "globalUrl": t.url(),
        "lastError": status.last_error,
        "lastScrape": status.last_scrape.map_or_else(|| NEVER.to_string(), rfc3339),
        "lastScrapeDuration": status.last_duration_seconds,
        "health": health,
        "scrapeInterval": t.interval.to_string(),
        "scrapeTimeout": t.timeout.to_string(),
    })
}

/// `/api/v1/targets?state=active|dropped|any&scrapePool=...`: active targets, and the ones
/// relabeling dropped with their discovered labels and a count per pool.
pub async fn targets(State(s): State<ApiState>, params: Params) -> Result<Response, ApiError> {
    let state = params.get("state").unwrap_or("").to_ascii_lowercase();
    let pool = params.get("scrapePool").filter(|p| !p.is_empty());
    let active = s.ctx.scrape.active();
    let in_pool = |a: &&std::sync::Arc<ActiveTarget>| pool.is_none_or(|p| a.target.scrape_pool == p);
    // Both arrays are always there, as upstream sends them; the counts are null when not asked.
    let mut data = Map::new();
    data.insert("activeTargets".into(), Value::Array(Vec::new()));
    data.insert("droppedTargets".into(), Value::Array(Vec::new()));
    data.insert("droppedTargetCounts".into(), Value::Null);
    if matches!(state.as_str(), "" | "any" | "active") {
        data.insert("activeTargets".into(), active.iter().filter(in_pool).map(|a| active_json(a)).collect());
    }
    if matches!(state.as_str(), "" | "any" | "dropped") {
        let dropped = s.ctx.scrape.dropped();
        let shown: Vec<Value> = dropped
            .kept
            .iter()
            .filter(|d| pool.is_none_or(|p| d.scrape_pool == p))
            .map(|d| json!({ "discoveredLabels": &d.discovered, "scrapePool": d.scrape_pool }))
            .collect();
        data.insert("droppedTargets".into(), Value::Array(shown));
        // Every pool's, whatever `scrapePool` asks, as upstream counts them.
        data.insert("droppedTargetCounts".into(), json!(dropped.counts));
    }
    Ok(success_json(Value::Object(data)))
}

/// `/api/v1/scrape_pools`: the job names of the configuration, sorted.
pub async fn scrape_pools(State(s): State<ApiState>) -> Response {
    let config = s.ctx.config.current();
    let pools: BTreeSet<&str> = config.scrape_configs.iter().map(|sc| sc.job_name.as_str()).collect();
    success_json(json!({ "scrapePools": pools }))
}

/// The `limit`-style parameter `key`: a number, negative or absent for none.
fn optional_limit(params: &Params, key: &str) -> Result<Option<usize>, ApiError> {
    match params.get(key) {
        None | Some("") => Ok(None),
        Some(v) => {
            let n: i64 = v.parse().map_err(|_| ApiError::bad_data(format!("{key} must be a number")))?;
            Ok(usize::try_from(n).ok())
        }
    }
}

/// `/api/v1/targets/metadata?match_target=...&metric=...&limit=...`: the HELP and TYPE each
/// matching target exposes.
pub async fn targets_metadata(State(s): State<ApiState>, params: Params) -> Result<Response, ApiError> {
    let limit = optional_limit(&params, "limit")?;
    let matchers: Vec<Matcher> = match params.get("match_target").filter(|m| !m.is_empty()) {
        None => Vec::new(),
        Some(m) => pyrite_core::re2::for_request(|| pyrite_core::promql::parse_metric_selector(m))
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match_target\": {e}")))?,
    };
    let metric = params.get("metric").filter(|m| !m.is_empty());
    let mut out = Vec::new();
    for a in s.ctx.scrape.active() {
        if !matchers.iter().all(|m| m.matches(a.target.labels.get(&m.name))) {
            continue;
        }
        for (name, m) in a.metadata().iter() {
            if metric.is_some_and(|want| want != name) {
                continue;
            }
            let mut entry = json!({ "target": &a.target.labels, "type": m.kind, "help": m.help, "unit": m.unit });
            if metric.is_none() {
                entry["metric"] = json!(name);
            }
            out.push(entry);
        }
    }
    if let Some(limit) = limit {
        out.truncate(limit);
    }
    Ok(success_json(Value::Array(out)))
}

/// `/api/v1/metadata?metric=...&limit=...&limit_per_metric=...`: the distinct HELP and TYPE of
/// each metric over every target.
pub async fn metadata(State(s): State<ApiState>, params: Params) -> Result<Response, ApiError> {
    let limit = optional_limit(&params, "limit")?;
    let per_metric = optional_limit(&params, "limit_per_metric")?;
    let metric = params.get("metric").filter(|m| !m.is_empty());
    let mut by_name: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for a in s.ctx.scrape.active() {
        for (name, m) in a.metadata().iter() {
            if metric.is_some_and(|want| want != name) {
                continue;
            }
            let entry = json!({ "type": m.kind, "help": m.help, "unit": m.unit });
            let list = by_name.entry(name.clone()).or_default();
            if !list.contains(&entry) && per_metric.is_none_or(|n| list.len() < n) {
                list.push(entry);
            }
        }
    }
    let take = limit.unwrap_or(usize::MAX);
    let data: Map<String, Value> = by_name.into_iter().take(take).map(|(k, v)| (k, Value::Array(v))).collect();
    Ok(success_json(Value::Object(data)))
}
