//! `POST /api/v1/write`: the remote-write receiver (protocol 1.0, snappy + protobuf).
//!
//! A request is decoded and validated whole before anything is stored, so a malformed one
//! stores nothing. Valid series go to their owner shards. Samples the heads refuse (out of
//! order, duplicate timestamps) are counted and reported with 400, as upstream reports them,
//! so that senders do not retry them; the request's other samples are kept.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pyrite_core::remote::decode_write_request;

use super::ApiState;

/// Largest compressed request accepted (axum's default of 2 MiB is too small for batches).
pub const MAX_BODY_BYTES: usize = 64 << 20;
/// Largest decompressed request accepted.
const MAX_DECODED_BYTES: usize = 256 << 20;

fn reply(s: &ApiState, status: StatusCode, message: String) -> Response {
    s.ctx.metrics.remote_write_requests.get_or_create(&vec![("code", status.as_u16().to_string())]).inc();
    (status, message).into_response()
}

pub async fn write(State(s): State<ApiState>, body: Bytes) -> Response {
    if !s.ctx.remote_write_receiver {
        return reply(
            &s,
            StatusCode::NOT_FOUND,
            "remote write receiver needs to be enabled with --web.enable-remote-write-receiver\n".into(),
        );
    }
    let series = match decode_write_request(&body, MAX_DECODED_BYTES) {
        Ok(series) => series,
        Err(e) => return reply(&s, StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let receivers = s.ctx.shards.write(series);
    let (mut out_of_order, mut duplicates, mut out_of_bounds, mut storage_error) = (0, 0, 0, None);
    for rx in receivers {
        match rx.recv_async().await {
            Ok(r) => {
                out_of_order += r.out_of_order;
                duplicates += r.duplicates;
                out_of_bounds += r.out_of_bounds;
                storage_error = storage_error.or(r.storage_error);
            }
            Err(_) => return reply(&s, StatusCode::INTERNAL_SERVER_ERROR, "a shard stopped answering\n".into()),
        }
    }
    // Not durable: a server error, so that the sender retries later.
    if let Some(e) = storage_error {
        return reply(&s, StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"));
    }
    if out_of_bounds > 0 {
        return reply(
            &s,
            StatusCode::BAD_REQUEST,
            format!("out of bounds: {out_of_bounds} sample(s) older than the data already cut into blocks refused\n"),
        );
    }
    if out_of_order + duplicates > 0 {
        return reply(
            &s,
            StatusCode::BAD_REQUEST,
            format!("out of order sample: {out_of_order} out of order, {duplicates} duplicate sample(s) for their timestamp refused\n"),
        );
    }
    reply(&s, StatusCode::NO_CONTENT, String::new())
}
