//! `pyrite query instant|range|series|labels`: a command-line client of the Prometheus HTTP API
//! that prints what `promtool query` prints, so scripts written for one work with the other.
//!
//! Text output follows the Prometheus client library's formatting: `name{a="b"} => 1 @[t]` for
//! samples, `name{...} =>` and one `v @[t]` per line for series of a range, `{a="b", ...}` for
//! series, one value per line for label values. `-o json` prints the `data.result` (or `data`)
//! JSON. An API error is printed as `query error: <type>: <message>` and exits 1.
//! `--http.config.file` gives credentials and TLS settings in promtool's format.

use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::Value;

use pyrite_core::labels::go_quote;

use crate::cli::{OutputFormat, QueryArgs, QueryCommand, TimeRange};
use crate::clock::now_ms;
use crate::http::params::{parse_duration, parse_time};
use crate::http_client;

/// How long a request may take.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one `pyrite query` subcommand; its output goes to stdout.
pub fn run(args: QueryArgs) -> anyhow::Result<()> {
    let http = http_client::config_file(args.http_config_file.as_deref())?;
    let (server, path, params, format) = request(args.command)?;
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let form: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Label values are GET-only upstream; everything else is sent as a POST form.
    let none = |_: &str, _: &str| Ok(Vec::new());
    let sent = if path.contains("/label/") {
        let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(&form).finish();
        http_client::send(&http, "GET", &format!("{url}?{query}"), TIMEOUT, &none, http_client::Payload::Empty)
    } else {
        http_client::send(&http, "POST", &url, TIMEOUT, &none, http_client::Payload::Form(&form))
    };
    let answer = match sent {
        Ok(answer) => answer,
        Err(e) => bail!("query error: {e}"),
    };
    let (status, answer) = (answer.status(), answer.into_string()?);
    // Not an API answer (e.g. 401 from authentication): say what the server said.
    if status >= 400 && serde_json::from_str::<Value>(&answer).is_err() {
        bail!("query error: server returned HTTP status {status}: {}", answer.trim());
    }
    let body: Value = serde_json::from_str(&answer).with_context(|| format!("query error: not JSON: {answer}"))?;
    if body["status"] != "success" {
        let kind = body["errorType"].as_str().unwrap_or("unknown");
        bail!("query error: {kind}: {}", body["error"].as_str().unwrap_or(""));
    }
    let data = &body["data"];
    let out = match format {
        OutputFormat::Json => format!("{}\n", if data.get("result").is_some() { &data["result"] } else { data }),
        OutputFormat::Promql if data.get("resultType").is_some() => format!("{}\n", value_text(data)),
        OutputFormat::Promql if path.ends_with("/series") => {
            data.as_array().into_iter().flatten().map(|s| format!("{}\n", label_set(s))).collect()
        }
        OutputFormat::Promql => {
            data.as_array().into_iter().flatten().map(|v| format!("{}\n", v.as_str().unwrap_or(""))).collect()
        }
    };
    print!("{out}");
    Ok(())
}

type Request = (String, String, Vec<(&'static str, String)>, OutputFormat);

/// The server, API path, form parameters and output format of a subcommand.
fn request(command: QueryCommand) -> anyhow::Result<Request> {
    let time = |flag: &str, v: Option<String>, default: i64| -> anyhow::Result<String> {
        let ms = match v {
            None => default,
            Some(v) => parse_time(&v).with_context(|| format!("invalid --{flag} {v:?}: RFC 3339 or Unix seconds"))?,
        };
        Ok(seconds(ms))
    };
    let range = |r: TimeRange| -> anyhow::Result<(Vec<(&'static str, String)>, OutputFormat)> {
        let mut params = Vec::new();
        if let Some(s) = r.start {
            params.push(("start", time("start", Some(s), 0)?));
        }
        if let Some(e) = r.end {
            params.push(("end", time("end", Some(e), 0)?));
        }
        Ok((params, r.format))
    };
    Ok(match command {
        QueryCommand::Instant { server, expr, time: t, format } => {
            let params = vec![("query", expr), ("time", time("time", t, now_ms())?)];
            (server, "/api/v1/query".into(), params, format)
        }
        QueryCommand::Range { server, expr, start, end, step, format } => {
            let end_ms = match &end {
                Some(e) => parse_time(e).with_context(|| format!("invalid --end {e:?}"))?,
                None => now_ms(),
            };
            let start_ms = match &start {
                Some(s) => parse_time(s).with_context(|| format!("invalid --start {s:?}"))?,
                None => end_ms - 300_000,
            };
            let step_ms = match &step {
                Some(s) => {
                    parse_duration(s).map_err(anyhow::Error::new).with_context(|| format!("invalid --step {s:?}"))?
                }
                None => ((end_ms - start_ms) / 250).max(1000),
            };
            let params = vec![
                ("query", expr),
                ("start", seconds(start_ms)),
                ("end", seconds(end_ms)),
                ("step", seconds(step_ms)),
            ];
            (server, "/api/v1/query_range".into(), params, format)
        }
        QueryCommand::Series { server, matches, range: r } => {
            let mut params: Vec<_> = matches.into_iter().map(|m| ("match[]", m)).collect();
            let (times, format) = range(r)?;
            params.extend(times);
            (server, "/api/v1/series".into(), params, format)
        }
        QueryCommand::Labels { server, name, matches, range: r } => {
            let mut params: Vec<_> = matches.into_iter().map(|m| ("match[]", m)).collect();
            let (times, format) = range(r)?;
            params.extend(times);
            (server, format!("/api/v1/label/{name}/values"), params, format)
        }
    })
}

/// Unix ms as Unix seconds, shortest form.
fn seconds(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

/// The pairs of a JSON label object, sorted by name.
fn pairs(labels: &Value) -> Vec<(&str, &str)> {
    let mut pairs: Vec<(&str, &str)> =
        labels.as_object().into_iter().flatten().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))).collect();
    pairs.sort();
    pairs
}

/// A label set as `{a="1", b="2"}`.
fn label_set(labels: &Value) -> String {
    let inner: Vec<String> = pairs(labels).into_iter().map(|(k, v)| format!("{k}={}", go_quote(v))).collect();
    format!("{{{}}}", inner.join(", "))
}

/// A metric as `name{a="1"}`, `name`, or `{a="1"}`.
fn metric(labels: &Value) -> String {
    let name = labels["__name__"].as_str();
    let rest: Vec<String> = pairs(labels)
        .into_iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    match (name, rest.is_empty()) {
        (Some(n), true) => n.to_string(),
        (None, true) => "{}".to_string(),
        (n, false) => format!("{}{{{}}}", n.unwrap_or(""), rest.join(", ")),
    }
}

/// `value @[t]` of a `[t, "v"]` pair.
fn point(p: &Value) -> String {
    let t = p[0].as_f64().unwrap_or(0.0);
    format!("{} @[{}]", p[1].as_str().unwrap_or(""), t)
}

/// A query result as the Prometheus client library prints it.
fn value_text(data: &Value) -> String {
    let result = &data["result"];
    let items = result.as_array().map(Vec::as_slice).unwrap_or(&[]);
    match data["resultType"].as_str() {
        Some("vector") => items
            .iter()
            .map(|s| format!("{} => {}", metric(&s["metric"]), point(&s["value"])))
            .collect::<Vec<_>>()
            .join("\n"),
        Some("matrix") => {
            let mut series: Vec<(String, String)> = items
                .iter()
                .map(|s| {
                    let points: Vec<String> = s["values"].as_array().into_iter().flatten().map(point).collect();
                    (metric(&s["metric"]), points.join("\n"))
                })
                .collect();
            series.sort();
            series.into_iter().map(|(m, points)| format!("{m} =>\n{points}")).collect::<Vec<_>>().join("\n")
        }
        Some("scalar") => format!("scalar: {}", point(result)),
        Some("string") => format!("{} @[{}]", result[1].as_str().unwrap_or(""), result[0].as_f64().unwrap_or(0.0)),
        _ => result.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_print_as_the_client_library_prints_them() {
        let v: Value = serde_json::from_str(
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\"b","instance":"x:1"},"value":[1700000000.5,"1"]}]}"#,
        )
        .unwrap();
        assert_eq!(value_text(&v), r#"up{instance="x:1", job="a\"b"} => 1 @[1700000000.5]"#);
        let m: Value = serde_json::from_str(
            r#"{"resultType":"matrix","result":[{"metric":{"a":"2"},"values":[[1,"3"],[2,"4"]]},{"metric":{"a":"1"},"values":[[1,"5"]]}]}"#,
        )
        .unwrap();
        assert_eq!(value_text(&m), "{a=\"1\"} =>\n5 @[1]\n{a=\"2\"} =>\n3 @[1]\n4 @[2]");
        let s: Value = serde_json::from_str(r#"{"resultType":"scalar","result":[4,"2"]}"#).unwrap();
        assert_eq!(value_text(&s), "scalar: 2 @[4]");
        assert_eq!(label_set(&serde_json::json!({"b": "1", "__name__": "x"})), r#"{__name__="x", b="1"}"#);
    }
}
