//! `/api/v1/rules`, `/api/v1/alerts` and `/api/v1/alertmanagers` in upstream's shapes: rule
//! groups with their rules' health, timings and alerts (filtered by `type`, `rule_name[]`,
//! `rule_group[]`, `file[]`, `exclude_alerts`), the active alerts, and where alerts are sent.

use std::collections::HashSet;

use axum::extract::State;
use axum::response::Response;
use pyrite_core::calendar::rfc3339;
use pyrite_core::rules::{Alert, AlertState, GroupStatus, RuleStatus};
use serde_json::{json, Value};

use super::params::Params;
use super::response::{success_json, ApiError, ApiResult};
use super::ApiState;

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, as upstream writes an alert's value.
fn go_exponent(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

/// Never evaluated: Go's zero time.
fn time_or_zero(t: Option<i64>) -> String {
    t.map_or_else(|| "0001-01-01T00:00:00Z".into(), rfc3339)
}

fn alert_json(a: &Alert) -> Value {
    let mut out = json!({
        "labels": &a.labels,
        "annotations": &a.annotations,
        "state": a.state.as_str(),
        "activeAt": rfc3339(a.active_at),
        "value": go_exponent(a.value),
    });
    if let Some(since) = a.keep_firing_since {
        out["keepFiringSince"] = Value::String(rfc3339(since));
    }
    out
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn rule_json(rule: &RuleStatus, with_alerts: bool) -> Value {
    let r = &rule.rule;
    let mut out = json!({
        "name": r.name(),
        "query": rule.query,
        "labels": json!(&r.labels),
        "health": rule.health.as_str(),
        "evaluationTime": rule.evaluation_seconds,
        "lastEvaluation": time_or_zero(rule.last_evaluation),
    });
    if let Some(e) = &rule.last_error {
        out["lastError"] = Value::String(e.clone());
    }
    if !rule.rule.is_alerting() {
        out["type"] = "recording".into();
        return out;
    }
    let alerts = &rule.alerts;
    let state = alerts.iter().map(|a| a.state).max_by_key(|s| *s as u8).unwrap_or(AlertState::Inactive);
    out["type"] = "alerting".into();
    out["state"] = state.as_str().into();
    out["duration"] = json!(seconds(r.for_.map_or(0, |d| d.millis())));
    out["keepFiringFor"] = json!(seconds(r.keep_firing_for.map_or(0, |d| d.millis())));
    out["annotations"] = json!(&r.annotations);
    if with_alerts {
        out["alerts"] = Value::Array(alerts.iter().map(alert_json).collect());
    }
    out
}

/// `/api/v1/rules`.
pub async fn rules(State(s): State<ApiState>, params: Params) -> ApiResult {
    // Upstream parses the form before reading it, so a multipart body goes unread.
    let params = params.without_multipart().map_err(ApiError::bad_data)?;
    let kind = params.get("type").unwrap_or("");
    if !["", "alert", "record"].contains(&kind) {
        return Err(ApiError::bad_param("type", format!("invalid rule type {kind:?}")));
    }
    let exclude_alerts = match params.get("exclude_alerts").unwrap_or("false") {
        "true" | "1" => true,
        "false" | "0" | "" => false,
        other => return Err(ApiError::bad_param("exclude_alerts", format!("invalid boolean {other:?}"))),
    };
    // Sets: a request may name up to `MAX_PARAMS` of each, and every rule is looked up.
    let set = |key| params.all(key).into_iter().collect::<HashSet<&str>>();
    let (names, groups, files) = (set("rule_name[]"), set("rule_group[]"), set("file[]"));
    let filtered = !kind.is_empty() || !names.is_empty() || !groups.is_empty() || !files.is_empty();
    let wanted = |g: &GroupStatus| {
        (groups.is_empty() || groups.contains(g.name.as_str())) && (files.is_empty() || files.contains(g.file.as_str()))
    };
    let mut out = Vec::new();
    for g in s.ctx.rules.statuses().iter() {
        if !wanted(g) {
            continue;
        }
        let rules: Vec<Value> = g
            .rules
            .iter()
            .filter(|r| match kind {
                "alert" => r.rule.is_alerting(),
                "record" => !r.rule.is_alerting(),
                _ => true,
            })
            .filter(|r| names.is_empty() || names.contains(r.rule.name()))
            .map(|r| rule_json(r, !exclude_alerts))
            .collect();
        if filtered && rules.is_empty() {
            continue;
        }
        out.push(json!({
            "name": g.name,
            "file": g.file,
            "rules": rules,
            "interval": seconds(g.interval),
            "limit": g.limit,
            "evaluationTime": g.evaluation_seconds,
            "lastEvaluation": time_or_zero(g.last_evaluation),
        }));
    }
    Ok(success_json(json!({ "groups": out })))
}

/// `/api/v1/alerts`: every pending and firing alert.
pub async fn alerts(State(s): State<ApiState>) -> Response {
    let mut alerts = Vec::new();
    for g in s.ctx.rules.statuses().iter() {
        for rule in g.rules.iter().filter(|r| r.rule.is_alerting()) {
            alerts.extend(rule.alerts.iter().map(alert_json));
        }
    }
    success_json(json!({ "alerts": alerts }))
}

/// `/api/v1/alertmanagers`.
pub async fn alertmanagers(State(s): State<ApiState>) -> Response {
    let (active, dropped) = s.ctx.notifier.alertmanagers();
    let active: Vec<Value> = active.into_iter().map(|a| json!({ "url": a.url })).collect();
    let dropped: Vec<Value> = dropped.into_iter().map(|url| json!({ "url": url })).collect();
    success_json(json!({ "activeAlertmanagers": active, "droppedAlertmanagers": dropped }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_are_written_as_go_writes_them() {
        assert_eq!(super::go_exponent(1.0), "1e+00");
        assert_eq!(super::go_exponent(0.125), "1.25e-01");
        assert_eq!(super::go_exponent(12345.0), "1.2345e+04");
        assert_eq!(super::go_exponent(f64::INFINITY), "+Inf");
    }
}
