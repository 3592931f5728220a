//! `POST /api/v1/read`: remote read, so that another Prometheus's `remote_read` (and
//! sidecar-style readers) query Pyrite's storage.
//!
//! As upstream's handler: the response type is the first of the request's accepted types that
//! Pyrite serves (none listed: samples). `SAMPLES` answers one snappy-compressed `ReadResponse`;
//! `STREAMED_XOR_CHUNKS` answers `ChunkedReadResponse` frames of one series each, packed as
//! upstream packs them (chunks until `--storage.remote.read-max-bytes-in-frame` less the labels'
//! size is reached). Pyrite's own chunks are another format, so the samples are re-encoded into
//! upstream's chunks, cut as upstream cuts a series it re-encodes
//! ([`upstream_series`](pyrite_tsdb::chunk::upstream_series)): XOR chunks for floats, histogram
//! and float histogram chunks for native histograms. Series are read from every shard with the
//! query path's own `Request::Select`; external labels are added to every series that lacks
//! them, and an equality matcher on an external label's value matches series without that
//! label. At most `--storage.remote.read-concurrent-limit` reads run at once; the others wait.
//!
//! Either answer holds at most `--storage.remote.read-sample-limit` samples over all its queries
//! (400 beyond). Upstream bounds only sampled answers, since it sends streamed ones frame by
//! frame; Pyrite builds a streamed answer whole before sending it (each query's frames as soon as
//! its series are read), so the limit is what bounds its memory (found by a red-team pass, where
//! 90,000 queries in one 175 KB request grew the process past 2 GB).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use pyrite_core::labels::{Labels, Matcher};
use pyrite_core::promql::EvalError;
use pyrite_core::remote::histogram::wire_histograms;
use pyrite_core::remote::read::{
    decode_read_request, encode_read_response, query_matchers, sampled_series, wire_labels, write_series_frames, Chunk,
    QueryResult, ReadResponse, SAMPLES, STREAMED_XOR_CHUNKS,
};
use pyrite_core::value::{HistogramSample, Sample, SeriesSamples};
use pyrite_tsdb::chunk::upstream_series;

use super::heavy;
use super::ApiState;
use crate::slots::Slots;

/// Largest read request accepted compressed (upstream's `decodeReadLimit`).
pub const MAX_BODY_BYTES: usize = 32 << 20;
/// Largest read request accepted decompressed. A reader sends a query or a few, of a few
/// matchers each; the bound keeps what decoding a hostile request costs (tens of bytes of
/// memory for each two-byte empty query) to a few hundred megabytes at worst.
const MAX_DECODED_BYTES: usize = 4 << 20;

/// The remote-read flags.
pub struct ReadLimits {
    /// `--storage.remote.read-sample-limit` (0: none).
    pub sample_limit: usize,
    /// `--storage.remote.read-concurrent-limit` (0: none), as slots.
    pub concurrent: Option<Slots>,
    /// `--storage.remote.read-max-bytes-in-frame`.
    pub max_bytes_in_frame: usize,
}

impl ReadLimits {
    pub fn new(sample_limit: usize, concurrent_limit: usize, max_bytes_in_frame: usize) -> ReadLimits {
        ReadLimits {
            sample_limit,
            concurrent: (concurrent_limit > 0).then(|| Slots::new(concurrent_limit)),
            max_bytes_in_frame,
        }
    }
}

/// Why a read failed, with the status upstream answers.
struct ReadError(StatusCode, String);

impl IntoResponse for ReadError {
    fn into_response(self) -> Response {
        (self.0, format!("{}\n", self.1)).into_response()
    }
}

fn bad_request(e: impl ToString) -> ReadError {
    ReadError(StatusCode::BAD_REQUEST, e.to_string())
}

/// The body is read once the request holds a slot (`--storage.remote.read-concurrent-limit`),
/// so that the limit bounds the bodies held too.
pub async fn read(State(s): State<ApiState>, body: Body) -> Response {
    let _slot = match &s.ctx.remote_read.concurrent {
        Some(slots) => Some(slots.acquire().await),
        None => None,
    };
    match super::read_body(body, MAX_BODY_BYTES).await {
        Ok(body) => answer(&s, &body).await.unwrap_or_else(IntoResponse::into_response),
        Err(response) => response,
    }
}

async fn answer(s: &ApiState, body: &[u8]) -> Result<Response, ReadError> {
    let request = decode_read_request(body, MAX_DECODED_BYTES).map_err(bad_request)?;
    let streamed = match request.accepted_response_types.iter().find(|t| [SAMPLES, STREAMED_XOR_CHUNKS].contains(t)) {
        Some(&t) => t == STREAMED_XOR_CHUNKS,
        None if request.accepted_response_types.is_empty() => false,
        None => {
            return Err(bad_request(format!(
                "server does not support any of the requested response types: {:?}; supported: [SAMPLES STREAMED_XOR_CHUNKS]",
                request.accepted_response_types
            )))
        }
    };
    let external = s.ctx.config.current().global.external_labels.clone();
    let limits = &s.ctx.remote_read;
    let max_bytes = limits.max_bytes_in_frame;
    let unprepared = |e: heavy::Unprepared| ReadError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    // A streamed answer's frames so far; a sampled answer's series of each query.
    let mut frames = Vec::new();
    let mut encoded = 0;
    let mut selected = Vec::with_capacity(request.queries.len());
    let mut samples_left = if limits.sample_limit == 0 { usize::MAX } else { limits.sample_limit };
    for (index, query) in request.queries.iter().enumerate() {
        let matchers = pyrite_core::re2::for_request(|| query_matchers(query, &external)).map_err(bad_request)?;
        // No matchers select nothing, as upstream's storage selects nothing for them.
        if matchers.is_empty() {
            selected.push(Vec::new());
            continue;
        }
        let series = select(s, matchers, query.start_timestamp_ms, query.end_timestamp_ms, samples_left).await?;
        for one in &series {
            samples_left = samples_left.checked_sub(one.weight()).ok_or_else(|| over_limit(s))?;
        }
        if streamed {
            // Encoded as soon as read: only one query's samples are held decoded at a time, next
            // to the frames (a few bytes a sample), not every query's (red team K: eight queries
            // of 5M samples each took 850 MB).
            // Sized by all that the answer has read so far: many small queries leave the shard too.
            encoded += series.iter().map(SeriesSamples::weight).sum::<usize>();
            let external = external.clone();
            frames = heavy::run(encoded, move || stream_query(series, index as i64, &external, max_bytes, frames))
                .await
                .map_err(unprepared)?;
        } else {
            selected.push(series);
        }
    }
    if streamed {
        let content_type = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";
        return Ok(([(header::CONTENT_TYPE, content_type)], frames).into_response());
    }
    let units = selected.iter().flatten().map(SeriesSamples::weight).sum();
    heavy::run(units, move || sampled_answer(selected, &external)).await.map_err(unprepared)
}

/// `frames` with the frames of one query's `series` appended: upstream's chunks in frames of at
/// most `max_bytes`.
fn stream_query(
    series: Vec<SeriesSamples>,
    query_index: i64,
    external: &Labels,
    max_bytes: usize,
    mut frames: Vec<u8>,
) -> Vec<u8> {
    for SeriesSamples { labels, samples, histograms } in series {
        let labels = labels.with_external(external);
        stream_series(&labels, &samples, &histograms, query_index, max_bytes, &mut frames);
    }
    frames
}

/// The answer to each query's `selected` series as one snappy-compressed `ReadResponse` of
/// samples.
fn sampled_answer(selected: Vec<Vec<SeriesSamples>>, external: &Labels) -> Response {
    let results = selected
        .into_iter()
        .map(|series| {
            let timeseries = series
                .into_iter()
                .map(|one| {
                    let mut sampled = sampled_series(&one.labels.with_external(external), &one.samples);
                    sampled.histograms = wire_histograms(&one.histograms);
                    sampled
                })
                .collect();
            QueryResult { timeseries }
        })
        .collect();
    (
        [(header::CONTENT_TYPE, "application/x-protobuf"), (header::CONTENT_ENCODING, "snappy")],
        encode_read_response(&ReadResponse { results }),
    )
        .into_response()
}

fn over_limit(s: &ApiState) -> ReadError {
    bad_request(format!("exceeded sample limit ({})", s.ctx.remote_read.sample_limit))
}

/// The series matching `matchers` with their samples in `[mint, maxt]`, from every shard, sorted
/// by labels (the order a streamed answer must have), under `--query.timeout`. A shard stops
/// reading past `max_samples`.
async fn select(
    s: &ApiState,
    matchers: Vec<Matcher>,
    mint: i64,
    maxt: i64,
    max_samples: usize,
) -> Result<Vec<SeriesSamples>, ReadError> {
    let timeout = s.ctx.queries.limits().timeout;
    let read = s.ctx.shards.select_merged(&matchers, (mint, maxt), false, max_samples, timeout);
    let mut series = read.await.map_err(|e| match e {
        EvalError::TooManySamples => over_limit(s),
        e => ReadError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    })?;
    series.retain(|s| !s.is_empty());
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(series)
}

/// Appends one series' frames: its samples in upstream's chunks ([`upstream_series`]), packed
/// into frames as upstream packs them.
fn stream_series(
    labels: &Labels,
    samples: &[Sample],
    histograms: &[HistogramSample],
    query_index: i64,
    max_bytes: usize,
    out: &mut Vec<u8>,
) {
    let chunks = upstream_series::chunks(samples, histograms).into_iter().map(|c| Chunk {
        min_time_ms: c.min_time,
        max_time_ms: c.max_time,
        r#type: c.encoding,
        data: c.data,
    });
    write_series_frames(wire_labels(labels), chunks, query_index, max_bytes, out);
}
