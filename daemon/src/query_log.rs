//! `global.query_log_file`: every query the server evaluates, from the API and from rule
//! groups, logged once it ends as one JSON line, in Prometheus 2.42's form (keys sorted):
//! `params` (`query`, `start`, `end`, `step` in whole seconds), `stats.timings`, `ts`, the
//! `error` of a query that failed, and where it came from: `httpRequest` (`clientIP`, `method`,
//! `path`) or `ruleGroup` (`file`, `name`). Queries refused before they ran (a parse error, a bad
//! parameter) are not logged, as upstream.
//!
//! The file is opened again at each configuration load, so that a rotated log is followed after
//! a reload, as upstream's; a file that cannot be opened refuses the configuration. It is one
//! sink for the whole process, as the tracing subscriber is: a static [`LineLog`], whose thread
//! writes each line (a query on a shard's thread never waits for the disk); a query does not
//! take its lock when there is no log.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde_json::json;

use crate::line_log::LineLog;

/// The open query log, if the configuration names one.
static QUERY_LOG: Mutex<Option<LineLog>> = Mutex::new(None);

/// Whether [`QUERY_LOG`] holds a file: read by every query without the lock.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The query log a configuration names, opened (`None` for none), to [`install`] once the rest
/// of the configuration is taken: a configuration refused later keeps the log in use.
pub fn open(file: Option<&Path>) -> Result<Option<LineLog>, String> {
    let Some(path) = file else { return Ok(None) };
    LineLog::open(path).map(Some).map_err(|e| format!("cannot open the query log file {}: {e}", path.display()))
}

/// Makes `file` the query log; the one in use is let go (its lines written) outside the lock,
/// which queries take.
pub fn install(file: Option<LineLog>) {
    let mut log = QUERY_LOG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    ENABLED.store(file.is_some(), Ordering::Relaxed);
    let old = std::mem::replace(&mut *log, file);
    drop(log);
    drop(old);
}

/// Whether queries are logged.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Where a query came from.
pub enum Origin<'a> {
    Http { client_ip: Option<std::net::IpAddr>, method: &'a str, path: &'a str },
    Rule { file: &'a str, group: &'a str },
}

/// One query that ran.
pub struct Logged<'a> {
    pub query: &'a str,
    /// Unix ms; the same for an instant query.
    pub start: i64,
    pub end: i64,
    /// ms; 0 for an instant query.
    pub step: i64,
    pub seconds: f64,
    pub error: Option<String>,
    pub origin: Origin<'a>,
}

/// The stats' `timings` of a query that took `seconds`, as the API's `stats` shows them: the
/// evaluation's time is all of it.
pub fn timings(seconds: f64) -> serde_json::Value {
    json!({
        "evalTotalTime": seconds,
        "resultSortTime": 0.0,
        "queryPreparationTime": 0.0,
        "innerEvalTime": seconds,
        "execQueueTime": 0.0,
        "execTotalTime": seconds,
    })
}

/// Logs `query` if there is a query log; a failed write is reported by the log's thread.
pub fn log(query: Logged<'_>) {
    if !enabled() {
        return;
    }
    let mut line = line(&query, crate::clock::now_ms()).to_string();
    line.push('\n');
    if let Some(log) = QUERY_LOG.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).as_ref() {
        log.append(line);
    }
}

/// The JSON object logged for `query` at `now` (Unix ms).
fn line(query: &Logged<'_>, now: i64) -> serde_json::Value {
    use pyrite_core::calendar::rfc3339;
    let mut line = json!({
        "params": {
            "query": query.query,
            "start": rfc3339(query.start),
            "end": rfc3339(query.end),
            "step": query.step / 1000,
        },
        "stats": { "timings": timings(query.seconds) },
        "ts": rfc3339(now),
    });
    let (key, origin) = match &query.origin {
        Origin::Http { client_ip, method, path } => (
            "httpRequest",
            json!({ "clientIP": client_ip.map(|ip| ip.to_string()).unwrap_or_default(), "method": method, "path": path }),
        ),
        Origin::Rule { file, group } => ("ruleGroup", json!({ "file": file, "name": group })),
    };
    line[key] = origin;
    if let Some(error) = &query.error {
        line["error"] = error.as_str().into();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_upstreams_with_their_origin() {
        let range = Logged {
            query: "rate(x[5m])",
            start: 1_000,
            end: 100_000,
            step: 10_000,
            seconds: 0.25,
            error: None,
            origin: Origin::Http { client_ip: Some([127, 0, 0, 1].into()), method: "GET", path: "/api/v1/query_range" },
        };
        assert_eq!(
            line(&range, 1_796_637_177_123).to_string(),
            concat!(
                r#"{"httpRequest":{"clientIP":"127.0.0.1","method":"GET","path":"/api/v1/query_range"},"#,
                r#""params":{"end":"1970-01-01T00:01:40.000Z","query":"rate(x[5m])","start":"1970-01-01T00:00:01.000Z","step":10},"#,
                r#""stats":{"timings":{"evalTotalTime":0.25,"execQueueTime":0.0,"execTotalTime":0.25,"innerEvalTime":0.25,"#,
                r#""queryPreparationTime":0.0,"resultSortTime":0.0}},"ts":"2026-12-07T09:52:57.123Z"}"#
            )
        );
        let rule = Logged {
            query: "vector(1)",
            start: 0,
            end: 0,
            step: 0,
            seconds: 0.0,
            error: Some("query timed out".into()),
            origin: Origin::Rule { file: "r.yml", group: "g" },
        };
        let rule = line(&rule, 0);
        assert_eq!(rule["ruleGroup"], json!({"file": "r.yml", "name": "g"}));
        assert_eq!((rule["error"].as_str(), rule.get("httpRequest")), (Some("query timed out"), None));
    }
}
