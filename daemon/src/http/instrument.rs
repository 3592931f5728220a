//! Upstream's HTTP metrics: `prometheus_http_requests_total{handler,code}` and
//! `prometheus_http_request_duration_seconds{handler}`, recorded around every routed request.
//!
//! `handler` is the route's pattern as upstream spells it (`/api/v1/label/:name/values`, under
//! the route prefix), never the request's own path, so that its values stay few. Paths no
//! route matches (404) are not recorded, as upstream's router does not instrument them.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::ApiState;

pub async fn instrument(State(s): State<ApiState>, request: Request, next: Next) -> Response {
    let Some(route) = request.extensions().get::<MatchedPath>() else { return next.run(request).await };
    let handler = upstream_pattern(route.as_str());
    let started = Instant::now();
    let response = next.run(request).await;
    let m = &s.ctx.metrics;
    let by_handler = vec![("handler", handler)];
    m.http_request_duration.get_or_create(&by_handler).observe(started.elapsed().as_secs_f64());
    let by_code = vec![by_handler[0].clone(), ("code", response.status().as_u16().to_string())];
    m.http_requests.get_or_create(&by_code).inc();
    response
}

/// `/api/v1/label/{name}/values` as upstream's router spells it: `/api/v1/label/:name/values`.
fn upstream_pattern(route: &str) -> String {
    route.replace('{', ":").replace('}', "")
}

#[cfg(test)]
mod tests {
    #[test]
    fn route_parameters_are_spelled_as_upstream() {
        assert_eq!(super::upstream_pattern("/p/api/v1/label/{name}/values"), "/p/api/v1/label/:name/values");
        assert_eq!(super::upstream_pattern("/metrics"), "/metrics");
    }
}
