//! `/api/v1/rules`, `/api/v1/alerts` and `/api/v1/alertmanagers` in upstream's shapes: rule
//! groups with their rules' health, timings and alerts (filtered by `type`, `rule_name[]`,
//! `rule_group[]`, `file[]`, `match[]`, `exclude_alerts`, paged by `group_limit` and
//! `group_next_token`), the active alerts, and where alerts are sent.

use std::collections::HashSet;

use axum::extract::State;
use axum::response::Response;
use pyrite_core::calendar::rfc3339;
use pyrite_core::labels::Matcher;
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
        "labels": json!(&rule.labels),
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
    // Left out, they are null, as upstream's nil slice.
    out["alerts"] = match with_alerts {
        true => Value::Array(alerts.iter().map(alert_json).collect()),
        false => Value::Null,
    };
    out
}

/// Go's `strconv.ParseBool` after lower-casing, as upstream reads `exclude_alerts`.
fn parse_bool(key: &str, value: &str) -> Result<bool, ApiError> {
    let value = value.to_ascii_lowercase();
    if value.is_empty() {
        return Ok(false);
    }
    pyrite_core::strconv::parse_bool(&value).ok_or_else(|| {
        ApiError::bad_param(
            key,
            format!("error converting {key}: strconv.ParseBool: parsing {value:?}: invalid syntax"),
        )
    })
}

/// `group_limit` and `group_next_token`: how many groups a page holds, and the token of the
/// group it starts at, as upstream checks them.
fn page(params: &Params) -> Result<Option<(usize, Option<&str>)>, ApiError> {
    let token = params.get("group_next_token").filter(|t| !t.is_empty());
    let Some(limit) = params.get("group_limit").filter(|l| !l.is_empty()) else {
        return match token {
            Some(_) => Err(ApiError::bad_param(
                "group_next_token",
                "group_limit needs to be present in order to paginate over the groups",
            )),
            None => Ok(None),
        };
    };
    let n: i32 = limit.parse().map_err(|e: std::num::ParseIntError| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => "value out of range",
            _ => "invalid syntax",
        };
        ApiError::bad_param(
            "group_limit",
            format!("group_limit needs to be a valid number: strconv.ParseInt: parsing {limit:?}: {why}"),
        )
    })?;
    match usize::try_from(n) {
        Ok(n) if n > 0 => Ok(Some((n, token))),
        _ => Err(ApiError::bad_param("group_limit", "group_limit needs to be greater than 0")),
    }
}

/// The token that names a group for paging: upstream's hex SHA-256 of `file;name`, so a client
/// may page over either server alike.
fn group_token(g: &GroupStatus) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{};{}", g.file, g.name).as_bytes());
    crate::sigv4::sign::hex(digest.as_ref())
}

/// Whether one of the `match[]` selectors takes the rule's labels, its group's included (none
/// given: every rule).
fn rule_matches(sets: &[Vec<Matcher>], rule: &RuleStatus) -> bool {
    let labels = &rule.labels;
    sets.is_empty()
        || sets.iter().any(|set| set.iter().all(|m| m.matches(labels.get(&m.name).map_or("", String::as_str))))
}

/// `/api/v1/rules`.
pub async fn rules(State(s): State<ApiState>, params: Params) -> ApiResult {
    // Upstream parses the form before reading it, so a multipart body goes unread.
    let params = params.without_multipart().map_err(ApiError::bad_data)?;
    let sets = super::api::metadata_selectors(&params)?;
    let kind = params.get("type").unwrap_or("").to_ascii_lowercase();
    if !["", "alert", "record"].contains(&kind.as_str()) {
        return Err(ApiError::bad_param("type", format!("not supported value {kind:?}")));
    }
    let exclude_alerts = parse_bool("exclude_alerts", params.get("exclude_alerts").unwrap_or(""))?;
    let page = page(&params)?;
    // Sets: a request may name up to `MAX_PARAMS` of each, and every rule is looked up.
    let set = |key| params.all(key).into_iter().collect::<HashSet<&str>>();
    let (names, groups, files) = (set("rule_name[]"), set("rule_group[]"), set("file[]"));
    let wanted = |g: &GroupStatus| {
        (groups.is_empty() || groups.contains(g.name.as_str())) && (files.is_empty() || files.contains(g.file.as_str()))
    };
    let mut start = page.and_then(|(_, token)| token);
    let mut out = Vec::new();
    let mut next_token = None;
    // By file, then name, as upstream lists them (and pages over them).
    let statuses = s.ctx.rules.statuses();
    let mut sorted: Vec<&GroupStatus> = statuses.iter().collect();
    sorted.sort_by(|a, b| (&a.file, &a.name).cmp(&(&b.file, &b.name)));
    for g in sorted {
        if let Some(token) = start {
            if group_token(g) != token {
                continue;
            }
            start = None;
        }
        if !wanted(g) {
            continue;
        }
        let rules: Vec<Value> = g
            .rules
            .iter()
            .filter(|r| match kind.as_str() {
                "alert" => r.rule.is_alerting(),
                "record" => !r.rule.is_alerting(),
                _ => true,
            })
            .filter(|r| names.is_empty() || names.contains(r.rule.name()))
            .filter(|r| rule_matches(&sets, r))
            .map(|r| rule_json(r, !exclude_alerts))
            .collect();
        // A group all of whose rules were filtered out is left out, as upstream leaves it.
        if rules.is_empty() {
            continue;
        }
        if page.is_some_and(|(limit, _)| out.len() == limit) {
            next_token = Some(group_token(g));
            break;
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
    if let Some(token) = start {
        return Err(ApiError::bad_param(
            "group_next_token",
            format!("invalid group_next_token '{token}'. were rule groups changed?"),
        ));
    }
    let mut data = json!({ "groups": out });
    if let Some(token) = next_token {
        data["groupNextToken"] = Value::String(token);
    }
    Ok(success_json(data))
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
