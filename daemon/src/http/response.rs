//! Prometheus's API envelope: `{"status":"success","data":...}` or
//! `{"status":"error","errorType":...,"error":...}` with upstream's status codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pyrite_core::excerpt::excerpt;
use pyrite_core::labels::Labels;
use pyrite_core::promql::{Annotations, EvalError, StepSeries, Value};
use pyrite_core::value::SeriesSamples;
use pyrite_core::value::{format_timestamp, format_value};

/// An API error with its Prometheus error type.
#[derive(Debug)]
pub struct ApiError {
    kind: &'static str,
    status: StatusCode,
    message: String,
}

/// A shard that could not answer fails the request as upstream's storage errors do.
impl From<crate::shards::ShardError> for ApiError {
    fn from(e: crate::shards::ShardError) -> Self {
        ApiError::internal(e.to_string())
    }
}

impl ApiError {
    pub fn bad_data(message: impl Into<String>) -> Self {
        ApiError { kind: "bad_data", status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    pub fn bad_param(param: &str, message: impl std::fmt::Display) -> Self {
        Self::bad_data(format!("invalid parameter {param:?}: {message}"))
    }

    /// Upstream's `unavailable` (admin APIs disabled), which its status mapping answers with
    /// 500.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError { kind: "unavailable", status: StatusCode::INTERNAL_SERVER_ERROR, message: message.into() }
    }

    /// Upstream's `execution` (422).
    pub fn execution(message: impl Into<String>) -> Self {
        ApiError { kind: "execution", status: StatusCode::UNPROCESSABLE_ENTITY, message: message.into() }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError { kind: "internal", status: StatusCode::INTERNAL_SERVER_ERROR, message: message.into() }
    }
}

impl From<EvalError> for ApiError {
    fn from(e: EvalError) -> Self {
        let (kind, status) = match e {
            EvalError::Timeout(_) => ("timeout", StatusCode::SERVICE_UNAVAILABLE),
            EvalError::DamagedBlock { .. } | EvalError::Internal(_) => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
            EvalError::Unsupported(_) | EvalError::Execution(_) | EvalError::TooManySamples => {
                ("execution", StatusCode::UNPROCESSABLE_ENTITY)
            }
        };
        ApiError { kind, status, message: e.to_string() }
    }
}

/// Longest error message an answer carries: messages quote the request's parameters, and a
/// client that sent a megabyte of them does not get it echoed back.
const MAX_ERROR_BYTES: usize = 4096;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = String::from("{\"status\":\"error\",\"errorType\":");
        json_str(&mut body, self.kind);
        body.push_str(",\"error\":");
        json_str(&mut body, &excerpt(&self.message, MAX_ERROR_BYTES));
        body.push('}');
        (self.status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// A success envelope around pre-rendered JSON `data`.
pub fn success(data: String) -> Response {
    success_annotated(data, &Annotations::default(), "", &[])
}

/// A success envelope with `warnings` that point at no position (a truncated result).
pub fn success_warned(data: String, warnings: &[String]) -> Response {
    success_annotated(data, &Annotations::default(), "", warnings)
}

/// At most this many warnings, and as many infos, go into a response (as upstream's API).
const MAX_ANNOTATIONS: usize = 10;

/// A success envelope with the `warnings` and `infos` of `query`, when there are any, each with
/// the position it points at, then `extra` warnings; beyond [`MAX_ANNOTATIONS`] of a kind, one
/// entry says how many were left out.
pub fn success_annotated(data: String, annotations: &Annotations, query: &str, extra: &[String]) -> Response {
    let mut body = format!("{{\"status\":\"success\",\"data\":{data}");
    for (key, kind, set) in [("warnings", "warning", &annotations.warnings), ("infos", "info", &annotations.infos)] {
        let extra = if key == "warnings" { extra } else { &[] };
        if set.is_empty() && extra.is_empty() {
            continue;
        }
        let mut list = Annotations::rendered(set.iter().take(MAX_ANNOTATIONS), query);
        list.extend_from_slice(extra);
        list.truncate(MAX_ANNOTATIONS);
        if set.len() + extra.len() > MAX_ANNOTATIONS {
            list.push(format!("{} more {kind} annotations omitted", set.len() + extra.len() - MAX_ANNOTATIONS));
        }
        body.push_str(&format!(",\"{key}\":{}", serde_json::json!(list)));
    }
    body.push('}');
    ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// What an API handler that can fail returns.
pub type ApiResult = Result<Response, ApiError>;

pub fn success_json(data: serde_json::Value) -> Response {
    success(data.to_string())
}

fn json_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("strings always serialise"));
}

fn metric(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, &l.name);
        out.push(':');
        json_str(out, &l.value);
    }
    out.push('}');
}

fn point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    out.push_str(&format_timestamp(t));
    out.push_str(",\"");
    out.push_str(&format_value(v));
    out.push_str("\"]");
}

/// A label set as a JSON object.
pub fn labels_object(labels: &Labels) -> String {
    let mut out = String::new();
    metric(&mut out, labels);
    out
}

/// The `data` of an instant query evaluated at `t`.
pub fn instant_result(value: &Value, t: i64) -> String {
    let mut out = String::new();
    match value {
        Value::Scalar(v) => {
            out.push_str("{\"resultType\":\"scalar\",\"result\":");
            point(&mut out, t, v[0]);
        }
        Value::String(s) => {
            out.push_str("{\"resultType\":\"string\",\"result\":[");
            out.push_str(&format_timestamp(t));
            out.push(',');
            json_str(&mut out, s);
            out.push(']');
        }
        Value::Vector(series) => {
            out.push_str("{\"resultType\":\"vector\",\"result\":[");
            let mut first = true;
            for s in series {
                let Some(v) = s.values[0] else { continue };
                if !std::mem::take(&mut first) {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                metric(&mut out, &s.labels);
                out.push_str(",\"value\":");
                point(&mut out, t, v);
                out.push('}');
            }
            out.push(']');
        }
        Value::Range(range) => matrix_samples(&mut out, &range.first_window()),
    }
    out.push('}');
    out
}

fn matrix_samples(out: &mut String, series: &[SeriesSamples]) {
    out.push_str("{\"resultType\":\"matrix\",\"result\":[");
    for (i, s) in series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        metric(out, &s.labels);
        out.push_str(",\"values\":[");
        for (j, x) in s.samples.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            point(out, x.t, x.v);
        }
        out.push_str("]}");
    }
    out.push(']');
}

/// The `data` of a range query with steps `ts(i)`.
pub fn range_result(value: &Value, ts: impl Fn(usize) -> i64) -> String {
    // A scalar renders as one series with no labels.
    let scalar: Vec<StepSeries>;
    let series: &[StepSeries] = match value {
        Value::Scalar(v) => {
            scalar = vec![StepSeries::floats(Labels::default(), v.iter().map(|x| Some(*x)).collect())];
            &scalar
        }
        Value::Vector(series) => series,
        // The handler refuses other types before evaluating.
        _ => &[],
    };
    let mut out = String::from("{\"resultType\":\"matrix\",\"result\":[");
    let mut first = true;
    for s in series {
        if s.values.iter().all(Option::is_none) {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        metric(&mut out, &s.labels);
        out.push_str(",\"values\":[");
        let mut first_point = true;
        for (i, v) in s.values.iter().enumerate() {
            let Some(v) = v else { continue };
            if !std::mem::take(&mut first_point) {
                out.push(',');
            }
            point(&mut out, ts(i), *v);
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    out
}
