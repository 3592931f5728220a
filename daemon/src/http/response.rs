//! Prometheus's API envelope: `{"status":"success","data":...}` or
//! `{"status":"error","errorType":...,"error":...}` with upstream's status codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pyrite_core::excerpt::excerpt;
use pyrite_core::histogram::FloatHistogram;
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

/// An answer that could not be prepared off the shard is an internal error.
impl From<super::heavy::Unprepared> for ApiError {
    fn from(e: super::heavy::Unprepared) -> Self {
        ApiError::internal(e.to_string())
    }
}

/// A shard that could not answer fails the request as upstream's storage errors do.
impl From<crate::shards::ShardError> for ApiError {
    fn from(e: crate::shards::ShardError) -> Self {
        ApiError::internal(e.to_string())
    }
}

impl ApiError {
    /// What the error says, as the API's `error` field.
    pub fn message(&self) -> String {
        self.message.clone()
    }

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

    /// The error as Go's `http.Error` writes it, for the endpoints outside the API that answer
    /// in plain text (`/federate`): the same status, the message and a newline.
    pub fn into_plain_text(self) -> Response {
        let body = format!("{}\n", excerpt(&self.message, MAX_ERROR_BYTES));
        use axum::http::header;
        let headers =
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")];
        (self.status, headers, body).into_response()
    }
}

impl From<EvalError> for ApiError {
    fn from(e: EvalError) -> Self {
        let (kind, status) = match e {
            EvalError::Timeout(_) => ("timeout", StatusCode::SERVICE_UNAVAILABLE),
            EvalError::Canceled(_) => ("canceled", CLIENT_CLOSED_REQUEST),
            EvalError::DamagedBlock { .. } | EvalError::Internal(_) => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
            EvalError::Unsupported(_)
            | EvalError::Execution(_)
            | EvalError::TooManySamples
            | EvalError::StorageChanged => ("execution", StatusCode::UNPROCESSABLE_ENTITY),
        };
        ApiError { kind, status, message: e.to_string() }
    }
}

/// Longest error message an answer carries: messages quote the request's parameters, and a
/// client that sent a megabyte of them does not get it echoed back.
const MAX_ERROR_BYTES: usize = 4096;

/// Upstream's status for a query whose client closed the connection (nginx's 499).
const CLIENT_CLOSED_REQUEST: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => panic!("499 is a status code"),
};

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = String::from("{\"status\":\"error\",\"errorType\":");
        json_str(&mut body, self.kind);
        body.push_str(",\"error\":");
        json_str(&mut body, &excerpt(&self.message, MAX_ERROR_BYTES));
        body.push('}');
        let mut response =
            (self.status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
        if self.status == CLIENT_CLOSED_REQUEST {
            // Go's status line for a code without a name (hyper would write `<none>`).
            response.extensions_mut().insert(hyper::ext::ReasonPhrase::from_static(b"status code 499"));
        }
        response
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

/// A sample value as upstream's API writes it (`jsonutil.MarshalFloat`): as [`format_value`],
/// except that a magnitude below 1e-6 or from 1e21 up is written with an exponent, as Go's
/// `'e'` format writes it (`2.938735877055719e-39`, `1e+21`).
fn json_value(v: f64) -> String {
    let abs = v.abs();
    if abs == 0.0 || !abs.is_finite() || (1e-6..1e21).contains(&abs) {
        return format_value(v);
    }
    let shortest = format!("{v:e}");
    let (mantissa, exponent) = shortest.split_once('e').expect("the exponent format has an e");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    format!("{mantissa}e{}{:02}", if exponent < 0 { '-' } else { '+' }, exponent.unsigned_abs())
}

fn point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    out.push_str(&format_timestamp(t));
    out.push_str(",\"");
    out.push_str(&json_value(v));
    out.push_str("\"]");
}

/// A histogram sample as upstream writes it: `[t,{"count":…,"sum":…,"buckets":[…]}]`, each
/// bucket with observations as `[boundaries,"lower","upper","count"]`, where `boundaries` says
/// which ends are inclusive (0: upper only, 1: lower only, 2: neither, 3: both).
fn histogram_point(out: &mut String, t: i64, h: &FloatHistogram) {
    out.push('[');
    out.push_str(&format_timestamp(t));
    out.push_str(",{\"count\":\"");
    out.push_str(&json_value(h.count));
    out.push_str("\",\"sum\":\"");
    out.push_str(&json_value(h.sum));
    out.push('"');
    let mut first = true;
    for b in h.buckets().iter().filter(|b| b.count != 0.0) {
        out.push_str(if std::mem::take(&mut first) { ",\"buckets\":[" } else { "," });
        let boundaries = match (b.lower_inclusive, b.upper_inclusive) {
            (false, true) => 0,
            (true, false) => 1,
            (false, false) => 2,
            (true, true) => 3,
        };
        out.push_str(&format!(
            "[{boundaries},\"{}\",\"{}\",\"{}\"]",
            json_value(b.lower),
            json_value(b.upper),
            json_value(b.count)
        ));
    }
    if !first {
        out.push(']');
    }
    out.push_str("}]");
}

/// A series' points as upstream writes them: `"values"` if it has floats, `"histograms"` if it
/// has histograms (each key only then).
fn series_points<'a>(
    out: &mut String,
    floats: impl Iterator<Item = (i64, f64)>,
    histograms: impl Iterator<Item = (i64, &'a FloatHistogram)>,
) {
    let mut first = true;
    for (t, v) in floats {
        out.push_str(if std::mem::take(&mut first) { ",\"values\":[" } else { "," });
        point(out, t, v);
    }
    if !first {
        out.push(']');
    }
    first = true;
    for (t, h) in histograms {
        out.push_str(if std::mem::take(&mut first) { ",\"histograms\":[" } else { "," });
        histogram_point(out, t, h);
    }
    if !first {
        out.push(']');
    }
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
                let (v, h) = (s.values[0], s.histogram(0));
                if v.is_none() && h.is_none() {
                    continue;
                }
                if !std::mem::take(&mut first) {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                metric(&mut out, &s.labels);
                match (v, h) {
                    (Some(v), _) => {
                        out.push_str(",\"value\":");
                        point(&mut out, t, v);
                    }
                    (None, Some(h)) => {
                        out.push_str(",\"histogram\":");
                        histogram_point(&mut out, t, h);
                    }
                    (None, None) => {}
                }
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
    // A series without a point in the window is left out, as upstream leaves it out.
    for (i, s) in series.iter().filter(|s| !s.samples.is_empty() || !s.histograms.is_empty()).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        metric(out, &s.labels);
        series_points(out, s.samples.iter().map(|x| (x.t, x.v)), s.histograms.iter().map(|x| (x.t, &*x.h)));
        out.push('}');
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
    for s in series.iter().filter(|s| s.has_values()) {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        metric(&mut out, &s.labels);
        let floats = s.values.iter().enumerate().filter_map(|(i, v)| v.map(|v| (ts(i), v)));
        let histograms = s.histograms.iter().enumerate().filter_map(|(i, h)| h.as_deref().map(|h| (ts(i), h)));
        series_points(&mut out, floats, histograms);
        out.push('}');
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrite_core::histogram::parse_histogram;

    #[test]
    fn values_are_written_as_upstream_writes_them() {
        assert_eq!(json_value(0.5), "0.5");
        assert_eq!(json_value(1e-6), "0.000001");
        assert_eq!(json_value(1e-7), "1e-07");
        assert_eq!(json_value(-2.938735877055719e-39), "-2.938735877055719e-39");
        assert_eq!(json_value(1e21), "1e+21");
        assert_eq!(json_value(123456.0), "123456");
        assert_eq!(json_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(json_value(0.0), "0");
    }

    /// A histogram as upstream's `MarshalHistogram` writes it: buckets with observations only,
    /// in ascending order, the zero bucket closed on both ends, the others open below.
    #[test]
    fn histograms_are_written_as_upstream_writes_them() {
        let h = parse_histogram("{{schema:0 count:5 sum:2.5 z_bucket:1 z_bucket_w:0.001 buckets:[2 0 2]}}").unwrap();
        let mut out = String::new();
        histogram_point(&mut out, 1500, &h);
        assert_eq!(
            out,
            r#"[1.500,{"count":"5","sum":"2.5","buckets":[[3,"-0.001","0.001","1"],[0,"0.5","1","2"],[0,"2","4","2"]]}]"#
        );
        let mut empty = String::new();
        histogram_point(&mut empty, 0, &parse_histogram("{{count:0 sum:0}}").unwrap());
        assert_eq!(empty, r#"[0,{"count":"0","sum":"0"}]"#);
    }
}
