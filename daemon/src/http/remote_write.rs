//! `POST /api/v1/write`: the remote-write receiver (protocols 1.0 and 2.0, snappy + protobuf).
//!
//! The message type is negotiated as upstream's receiver does: the `Content-Type`'s `proto`
//! parameter names it (none, or no `Content-Type` at all, is 1.0), and a message not in
//! `--web.remote-write-receiver.accepted-protobuf-messages`, JSON, or a compression other than
//! snappy gets 415 instead of being decoded as something else.
//!
//! 1.0: a request is decoded and validated whole before anything is stored, so a malformed one
//! stores nothing; a series with invalid labels is skipped with a warning and the others are
//! stored, as upstream's receiver does. 2.0: as upstream, the series that can be stored are, the others are reported
//! with 400, and every answer but a server error carries the written counts
//! (`X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written`). Exemplars are kept
//! with exemplar storage on; one the storage refuses (out of order, a duplicate) fails nothing,
//! as upstream. Valid series go to their owner shards. Samples and histograms the heads refuse
//! (out of order, duplicate timestamps, too many buckets) are counted and reported with 400, as
//! upstream reports them, so that senders do not retry them; the request's other samples are
//! kept.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pyrite_core::remote::v2::{decode_write_request_v2, message_list, WriteMessage};
use pyrite_core::remote::{decode_write_request, WriteSeries};

use super::ApiState;

/// Largest compressed request accepted: upstream's `decodeReadLimit` (axum's default of 2 MiB
/// is too small for batches).
pub const MAX_BODY_BYTES: usize = 32 << 20;
/// Largest decompressed request accepted. Upstream's senders send at most a few thousand
/// samples a request (well under a megabyte); the bound keeps what one request may cost in
/// memory to a few hundred megabytes at worst.
const MAX_DECODED_BYTES: usize = 32 << 20;

/// The message a request's headers say it holds, or why this receiver does not decode it
/// (upstream's words, for 415).
fn message_type(headers: &HeaderMap, accepted: &[WriteMessage]) -> Result<WriteMessage, String> {
    let header = |name| headers.get(name).map(|v| v.to_str().unwrap_or("(not text)").trim());
    let mut message = WriteMessage::V1;
    if let Some(content_type) = header(header::CONTENT_TYPE) {
        let mut parts = content_type.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        if !media.eq_ignore_ascii_case("application/x-protobuf") {
            return Err(format!(
                "expected application/x-protobuf as the first (media) part, got {content_type} content-type"
            ));
        }
        for (key, value) in parts.filter_map(|p| p.split_once('=')) {
            if key.trim().eq_ignore_ascii_case("proto") {
                let value = value.trim();
                message = WriteMessage::from_proto_name(value).ok_or_else(|| {
                    format!("got {value} protobuf message, which is not a known remote write message")
                })?;
            }
        }
    }
    if !accepted.contains(&message) {
        return Err(format!(
            "{} protobuf message is not accepted by this server; accepted {}",
            message.proto_name(),
            message_list(accepted)
        ));
    }
    match header(header::CONTENT_ENCODING) {
        None | Some("snappy") => Ok(message),
        Some(other) => {
            Err(format!("{other} encoding (compression) is not accepted by this server; only snappy is acceptable"))
        }
    }
}

fn reply(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

/// The body is read only once the request is known to be one the receiver takes: a body
/// buffered first, up to [`MAX_BODY_BYTES`] on each of hundreds of connections, would cost
/// gigabytes even with the receiver off.
pub async fn write(State(s): State<ApiState>, headers: HeaderMap, body: Body) -> Response {
    if !s.ctx.remote_write_receiver {
        return reply(
            StatusCode::NOT_FOUND,
            "remote write receiver needs to be enabled with --web.enable-remote-write-receiver\n".into(),
        );
    }
    let message = match message_type(&headers, &s.ctx.remote_write_messages) {
        Ok(message) => message,
        Err(why) => return reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("{why}\n")),
    };
    let body = match super::read_body(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    match message {
        WriteMessage::V1 => write_v1(&s, &body).await,
        WriteMessage::V2 => write_v2(&s, &body).await,
    }
}

async fn write_v1(s: &ApiState, body: &[u8]) -> Response {
    let decoded = match decode_write_request(body, MAX_DECODED_BYTES) {
        Ok(decoded) => decoded,
        Err(e) => return reply(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    if let Some(first) = &decoded.first_invalid {
        tracing::warn!(series = decoded.invalid, first = %first, "remote write: series with invalid metric names or labels skipped");
    }
    match store(s, decoded.series).await {
        Stored::Failed(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        Stored::Written { refused: Some(why), .. } => reply(StatusCode::BAD_REQUEST, format!("{why}\n")),
        Stored::Written { refused: None, .. } => reply(StatusCode::NO_CONTENT, String::new()),
    }
}

async fn write_v2(s: &ApiState, body: &[u8]) -> Response {
    let decoded = match decode_write_request_v2(body, MAX_DECODED_BYTES) {
        Ok(decoded) => decoded,
        Err(e) => return reply(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let errors = (decoded.error_count > 0).then(|| decoded.error_text());
    let (status, text, written) = match store(s, decoded.series).await {
        // Nothing to count: the sender retries the whole request.
        Stored::Failed(e) => return reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        Stored::Written { samples, histograms, exemplars, refused } => {
            let text: Vec<String> = errors.into_iter().chain(refused).collect();
            let status = if text.is_empty() { StatusCode::NO_CONTENT } else { StatusCode::BAD_REQUEST };
            (status, text.join("\n"), (samples, histograms, exemplars))
        }
    };
    let mut response = reply(status, if text.is_empty() { text } else { format!("{text}\n") });
    let headers = response.headers_mut();
    headers.insert("x-prometheus-remote-write-samples-written", written.0.into());
    headers.insert("x-prometheus-remote-write-histograms-written", written.1.into());
    headers.insert("x-prometheus-remote-write-exemplars-written", written.2.into());
    response
}

/// What storing a request's series came to.
enum Stored {
    /// Some shard could not make its part durable (or stopped answering): a server error.
    Failed(String),
    /// `samples`, `histograms` and `exemplars` were written; the other samples were refused,
    /// for the reason given.
    Written { samples: usize, histograms: usize, exemplars: usize, refused: Option<String> },
}

/// Sends the series to their owner shards and sums up their answers.
async fn store(s: &ApiState, series: Vec<WriteSeries>) -> Stored {
    let receivers = s.ctx.shards.write(series);
    let (mut out_of_order, mut duplicates, mut out_of_bounds, mut too_far_in_future, mut too_old) = (0, 0, 0, 0, 0);
    let (mut appended, mut histograms, mut exemplars) = (0, 0, 0);
    let (mut bucket_limit, mut invalid) = (0, 0);
    let mut storage_error = None;
    for rx in receivers {
        match rx.recv_async().await {
            Ok(r) => {
                out_of_order += r.out_of_order;
                duplicates += r.duplicates;
                out_of_bounds += r.out_of_bounds;
                too_far_in_future += r.too_far_in_future;
                too_old += r.too_old;
                bucket_limit += r.bucket_limit;
                invalid += r.invalid_histograms;
                appended += r.appended;
                histograms += r.histograms.appended;
                exemplars += r.exemplars;
                storage_error = storage_error.or(r.storage_error);
            }
            Err(_) => return Stored::Failed("a shard stopped answering".into()),
        }
    }
    // Not durable: a server error, so that the sender retries later.
    if let Some(e) = storage_error {
        return Stored::Failed(e.to_string());
    }
    let refused = if invalid > 0 {
        Some(format!("invalid histogram: {invalid} histogram(s) refused"))
    } else if bucket_limit > 0 {
        Some(format!(
            "histogram bucket limit exceeded: {bucket_limit} histogram(s) with more than {} buckets refused",
            pyrite_tsdb::histogram_series::MAX_HISTOGRAM_BUCKETS
        ))
    } else if too_far_in_future > 0 {
        let window = pyrite_core::config::Duration(s.ctx.future_window);
        Some(format!(
            "too far in the future: {too_far_in_future} sample(s) more than {window} ahead of the server's clock refused"
        ))
    } else if too_old > 0 {
        Some(format!("too old sample: {too_old} sample(s) older than the out-of-order time window refused"))
    } else if out_of_bounds > 0 {
        Some(format!("out of bounds: {out_of_bounds} sample(s) older than the data already cut into blocks refused"))
    } else if out_of_order + duplicates > 0 {
        Some(format!(
            "out of order sample: {out_of_order} out of order, {duplicates} duplicate sample(s) for their timestamp refused"
        ))
    } else {
        None
    };
    Stored::Written { samples: appended - histograms, histograms, exemplars, refused }
}
