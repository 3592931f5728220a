//! `/federate`: the newest sample of every series matching `match[]`, floats and native
//! histograms, so that another Prometheus can scrape this one (hierarchical federation).
//!
//! As upstream: the request's `Accept` header chooses the protobuf format or the text format
//! ([`Negotiated`]); the text format leaves out native histograms with exponential buckets,
//! which only the protobuf format carries, and both write those with custom buckets as classic
//! histograms ([`pyrite_core::exposition::writer`]). Samples older than the lookback delta are
//! left out, staleness markers too (the formats cannot carry them), each sample keeps its own
//! timestamp, external labels are added after a series' own where it lacks them (with
//! `instance=""` unless one is configured, see [`Labelling`]), a series without a name
//! is skipped, and names outside the legacy character set (which remote write stores) are
//! escaped as the `Accept` header's `escaping` asks, `underscores` by default
//! ([`pyrite_core::exposition::escaping`]). The scraping side decides with `honor_labels`
//! whose `job` and `instance` win.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use pyrite_core::exposition::{write_protobuf, write_text, Format, Labelling, Latest, Negotiated};
use pyrite_core::labels::Labels;
use pyrite_core::value::SampleValue;

use super::api::{selectors, EmptySelectors};
use super::heavy;
use super::params::Params;
use super::response::ApiError;
use super::ApiState;
use crate::clock::now_ms;

/// Errors are plain text, as upstream's `http.Error`, not the API's JSON; a selector's parse
/// error is its message alone.
pub async fn federate(state: State<ApiState>, headers: HeaderMap, params: Params) -> Response {
    newest_samples(state, headers, params).await.unwrap_or_else(ApiError::into_plain_text)
}

async fn newest_samples(State(s): State<ApiState>, headers: HeaderMap, params: Params) -> Result<Response, ApiError> {
    // Upstream parses the form before reading it, so a multipart body goes unread.
    let params = params.without_multipart().map_err(ApiError::bad_data)?;
    let matchers = selectors(&params, EmptySelectors::Allowed).map_err(|e| ApiError::bad_data(e.to_string()))?;
    // Go reads the header's bytes as they are; only ASCII tokens matter to the negotiation.
    let accept = headers.get(header::ACCEPT).map(|v| String::from_utf8_lossy(v.as_bytes())).unwrap_or_default();
    let negotiated = Negotiated::from_accept(&accept);
    let labelling = Labelling::new(negotiated.escaping, &s.ctx.config.current().global.external_labels);
    if matchers.is_empty() {
        // Upstream answers an empty page; nothing is selected without a selector.
        return Ok(answer(negotiated, &labelling, &[]));
    }
    let maxt = now_ms();
    let limits = s.ctx.queries.limits();
    let mint = maxt - limits.lookback_delta;
    let mut selected = Vec::with_capacity(matchers.len());
    let mut samples_left = limits.max_samples;
    for selector in matchers {
        // Each series' newest sample only, read by the shards in slices as a query's are. The
        // answers are held until all are in, within one query's sample limit together.
        let newest = s.ctx.shards.select_merged(&selector, (mint, maxt), true, samples_left, limits.timeout);
        let answer = newest.await?;
        samples_left = samples_left.saturating_sub(answer.len());
        selected.push(answer);
    }
    let units = selected.iter().map(Vec::len).sum();
    Ok(heavy::run(units, move || {
        // Sorted by name, then labels; a series matched by two selectors is written once.
        let mut latest: BTreeMap<(String, Labels), (i64, SampleValue)> = BTreeMap::new();
        for series in selected.into_iter().flatten() {
            let Some((t, value)) = series.newest().filter(|(_, v)| !v.is_stale()) else { continue };
            let name = series.labels.metric_name().to_string();
            if !name.is_empty() {
                latest.insert((name, series.labels), (t, value));
            }
        }
        let flat: Vec<Latest> = latest.into_iter().map(|((_, labels), (t, value))| (labels, t, value)).collect();
        answer(negotiated, &labelling, &flat)
    })
    .await?)
}

fn answer(negotiated: Negotiated, labelling: &Labelling, samples: &[Latest]) -> Response {
    let body = match negotiated.format {
        Format::Protobuf => write_protobuf(samples, labelling),
        _ => write_text(samples, labelling).into_bytes(),
    };
    ([(header::CONTENT_TYPE, negotiated.content_type())], body).into_response()
}
