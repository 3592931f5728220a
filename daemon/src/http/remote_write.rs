//! `POST /api/v1/write`: the remote-write receiver (protocol 1.0, snappy + protobuf).
//!
//! The request's `Content-Type` and `Content-Encoding` are checked as upstream checks them: a
//! remote write 2.0 message (not accepted yet), JSON, or a compression other than snappy gets
//! 415 instead of being decoded as if it were 1.0. A request is decoded and validated whole
//! before anything is stored, so a malformed one stores nothing. Valid series go to their owner shards. Samples the heads refuse (out of
//! order, duplicate timestamps) are counted and reported with 400, as upstream reports them,
//! so that senders do not retry them; the request's other samples are kept.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pyrite_core::remote::decode_write_request;

use super::ApiState;

/// Largest compressed request accepted: upstream's `decodeReadLimit` (axum's default of 2 MiB
/// is too small for batches).
pub const MAX_BODY_BYTES: usize = 32 << 20;
/// Largest decompressed request accepted. Upstream's senders send at most a few thousand
/// samples a request (well under a megabyte); the bound keeps what one request may cost in
/// memory to a few hundred megabytes at worst.
const MAX_DECODED_BYTES: usize = 32 << 20;

/// The one message type accepted, as upstream names it.
const PROTO_V1: &str = "prometheus.WriteRequest";

/// Why a request's headers say it is not something this receiver decodes (upstream's words).
fn unsupported_media(headers: &HeaderMap) -> Option<String> {
    let header = |name| headers.get(name).map(|v| v.to_str().unwrap_or("(not text)").trim());
    if let Some(content_type) = header(header::CONTENT_TYPE) {
        let mut parts = content_type.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        if !media.eq_ignore_ascii_case("application/x-protobuf") {
            return Some(format!(
                "expected application/x-protobuf as the first (media) part, got {content_type} content-type"
            ));
        }
        for (key, value) in parts.filter_map(|p| p.split_once('=')) {
            if key.trim().eq_ignore_ascii_case("proto") && value.trim() != PROTO_V1 {
                return Some(format!(
                    "{} protobuf message is not accepted by this server; accepted [{PROTO_V1}]",
                    value.trim()
                ));
            }
        }
    }
    match header(header::CONTENT_ENCODING) {
        None | Some("snappy") => None,
        Some(other) => {
            Some(format!("{other} encoding (compression) is not accepted by this server; only snappy is acceptable"))
        }
    }
}

fn reply(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

pub async fn write(State(s): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    if !s.ctx.remote_write_receiver {
        return reply(
            StatusCode::NOT_FOUND,
            "remote write receiver needs to be enabled with --web.enable-remote-write-receiver\n".into(),
        );
    }
    if let Some(why) = unsupported_media(&headers) {
        return reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("{why}\n"));
    }
    let series = match decode_write_request(&body, MAX_DECODED_BYTES) {
        Ok(series) => series,
        Err(e) => return reply(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let receivers = s.ctx.shards.write(series);
    let (mut out_of_order, mut duplicates, mut out_of_bounds, mut too_far_in_future) = (0, 0, 0, 0);
    let mut storage_error = None;
    for rx in receivers {
        match rx.recv_async().await {
            Ok(r) => {
                out_of_order += r.out_of_order;
                duplicates += r.duplicates;
                out_of_bounds += r.out_of_bounds;
                too_far_in_future += r.too_far_in_future;
                storage_error = storage_error.or(r.storage_error);
            }
            Err(_) => return reply(StatusCode::INTERNAL_SERVER_ERROR, "a shard stopped answering\n".into()),
        }
    }
    // Not durable: a server error, so that the sender retries later.
    if let Some(e) = storage_error {
        return reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"));
    }
    if too_far_in_future > 0 {
        let window = pyrite_core::config::Duration(s.ctx.future_window);
        return reply(StatusCode::BAD_REQUEST,
            format!("too far in the future: {too_far_in_future} sample(s) more than {window} ahead of the server's clock refused\n"),
        );
    }
    if out_of_bounds > 0 {
        return reply(
            StatusCode::BAD_REQUEST,
            format!("out of bounds: {out_of_bounds} sample(s) older than the data already cut into blocks refused\n"),
        );
    }
    if out_of_order + duplicates > 0 {
        return reply(StatusCode::BAD_REQUEST,
            format!("out of order sample: {out_of_order} out of order, {duplicates} duplicate sample(s) for their timestamp refused\n"),
        );
    }
    reply(StatusCode::NO_CONTENT, String::new())
}
