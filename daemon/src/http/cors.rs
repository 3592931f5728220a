//! `--web.cors.origin`: the CORS headers upstream's API sets (`httputil.SetCORS`), on the
//! `/api/v1` routes only, and only for requests that carry an `Origin`.
//!
//! The flag is an anchored regular expression; with the default `.*` every origin is allowed
//! and answered with `*`, otherwise a matching origin is echoed back and any other gets no
//! `Access-Control-Allow-Origin`. Pre-flight `OPTIONS` requests are answered 204 here, as
//! upstream's API answers them.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;

/// Upstream's fixed CORS headers.
const HEADERS: [(header::HeaderName, &str); 4] = [
    (header::ACCESS_CONTROL_ALLOW_HEADERS, "Accept, Authorization, Content-Type, Origin"),
    (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"),
    (header::ACCESS_CONTROL_EXPOSE_HEADERS, "Date"),
    (header::VARY, "Origin"),
];

/// Compiles `--web.cors.origin` anchored, as upstream does.
pub fn parse_origin(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| e.to_string())
}

/// The middleware of the API routes.
pub async fn cors(State(s): State<ApiState>, request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    let Some(origin) = origin else {
        return response;
    };
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    let allowed = &s.ctx.cors_origin;
    if allowed.as_str() == "^(?:.*)$" {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    } else if origin.to_str().is_ok_and(|o| allowed.is_match(o)) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    response
}
