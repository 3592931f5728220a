//! `/-/healthy`, `/-/ready`, and, behind `--web.enable-lifecycle`, `/-/reload` and `/-/quit`,
//! with upstream's answers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::ApiState;

/// "Pyrite Server" or, in agent mode, "Pyrite Agent" (upstream's "Prometheus Agent").
fn mode(s: &ApiState) -> &'static str {
    if s.ctx.agent {
        "Agent"
    } else {
        "Server"
    }
}

pub async fn healthy(State(s): State<ApiState>) -> String {
    format!("Pyrite {} is Healthy.\n", mode(&s))
}

/// 503 until every shard has opened its storage and can answer queries.
pub async fn ready(State(s): State<ApiState>) -> impl IntoResponse {
    if s.ctx.shards.ready() {
        (StatusCode::OK, format!("Pyrite {} is Ready.\n", mode(&s)))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable".to_string())
    }
}

fn disabled() -> (StatusCode, String) {
    (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.".to_string())
}

/// Reads the configuration again; 500 with the reason if it is refused (the old one stays).
/// The reload runs on the reload thread ([`crate::reload::ReloadRequests`]), not on the shard
/// serving the request.
pub async fn reload(State(s): State<ApiState>) -> (StatusCode, String) {
    if !s.ctx.lifecycle_api {
        return disabled();
    }
    match s.ctx.reloads.reload().await {
        Ok(()) => (StatusCode::OK, String::new()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("failed to reload config: {e}\n")),
    }
}

/// Shuts the server down as SIGTERM does (storage synced first).
pub async fn quit(State(s): State<ApiState>) -> (StatusCode, String) {
    if !s.ctx.lifecycle_api {
        return disabled();
    }
    // The main thread waits for SIGTERM and runs the shutdown; a signal sent to our own
    // process reaches it there.
    // SAFETY: kill with our own pid and a valid signal number has no memory effects.
    unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    (StatusCode::OK, "Requesting termination... Goodbye!".to_string())
}

/// GET on `/-/reload` or `/-/quit`.
pub async fn wrong_method() -> (StatusCode, &'static str) {
    (StatusCode::METHOD_NOT_ALLOWED, "Only POST or PUT requests allowed")
}
