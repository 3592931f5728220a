//! Answers compressed as the client accepts them, as upstream's `CompressionHandler` wraps its
//! API and `/federate`: the first of `gzip` or `deflate` (zlib) listed in `Accept-Encoding`,
//! tokens compared whole (`gzip;q=0.5` is not `gzip`, as upstream reads it). Compression is
//! at the fastest level, and a large body is compressed off the shard ([`heavy`]).

use std::io::Write;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flate2::Compression;

use super::heavy;
use super::response::ApiError;

/// An encoding upstream answers in.
#[derive(Clone, Copy)]
enum Encoding {
    Gzip,
    Deflate,
}

impl Encoding {
    /// The first encoding of `Accept-Encoding` that upstream answers in.
    fn accepted(headers: &HeaderMap) -> Option<Encoding> {
        let accept = headers.get(header::ACCEPT_ENCODING)?.to_str().ok()?;
        accept.split(',').find_map(|token| match token.trim() {
            "gzip" => Some(Encoding::Gzip),
            "deflate" => Some(Encoding::Deflate),
            _ => None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
        }
    }

    fn encode(self, body: &[u8]) -> std::io::Result<Vec<u8>> {
        let out = Vec::with_capacity(body.len() / 8);
        match self {
            Encoding::Gzip => {
                let mut w = flate2::write::GzEncoder::new(out, Compression::fast());
                w.write_all(body)?;
                w.finish()
            }
            Encoding::Deflate => {
                let mut w = flate2::write::ZlibEncoder::new(out, Compression::fast());
                w.write_all(body)?;
                w.finish()
            }
        }
    }
}

/// Bytes compressed for a unit of [`heavy::run`]'s weight.
const BYTES_PER_UNIT: usize = 64;

/// The answer to `request`, compressed if its client accepts an encoding upstream answers in
/// and it is not encoded already.
pub async fn compress(request: Request, next: Next) -> Response {
    let encoding = Encoding::accepted(request.headers());
    let response = next.run(request).await;
    let Some(encoding) = encoding else { return response };
    if response.headers().contains_key(header::CONTENT_ENCODING) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Answers here are whole in memory already. An empty one (a 204) says nothing of an
    // encoding: a client would try to decode it.
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) if body.is_empty() => return Response::from_parts(parts, Body::empty()),
        Ok(body) => body,
        Err(e) => return ApiError::internal(format!("cannot read the answer to compress it: {e}")).into_response(),
    };
    let encoded = match heavy::run(body.len() / BYTES_PER_UNIT, move || encoding.encode(&body)).await {
        Ok(Ok(encoded)) => encoded,
        Ok(Err(e)) => return ApiError::internal(format!("cannot compress the answer: {e}")).into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    parts.headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding.name()));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(encoded))
}
