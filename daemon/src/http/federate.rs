//! `/federate`: the newest sample of every series matching `match[]`, in the text format, so
//! that another Prometheus can scrape this one (hierarchical federation).
//!
//! As upstream: samples older than the lookback delta are left out, staleness markers too (the
//! format cannot carry them), each sample keeps its own timestamp, and external labels are added
//! to series that lack them. The scraping side decides with `honor_labels` whose `job` and
//! `instance` win.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use pyrite_core::exposition::write_text;
use pyrite_core::labels::{Labels, METRIC_NAME};

use super::api::selectors;
use super::params::Params;
use super::response::ApiError;
use super::ApiState;
use crate::clock::now_ms;
use crate::shards::{Request, Selection};

pub async fn federate(State(s): State<ApiState>, params: Params) -> Result<Response, ApiError> {
    let matchers = selectors(&params)?;
    if matchers.is_empty() {
        // Upstream answers an empty page; nothing is selected without a selector.
        return Ok(text(String::new()));
    }
    let maxt = now_ms();
    let mint = maxt - s.ctx.queries.limits().lookback_delta;
    let answers = s
        .ctx
        .shards
        .ask_all(|reply| Request::Latest { selection: Selection { matchers: matchers.clone(), mint, maxt }, reply })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let external = s.ctx.config.current().global.external_labels.clone();
    // Sorted by name, then labels; a series matched by two selectors is written once.
    let mut samples: BTreeMap<(String, Labels), (i64, f64)> = BTreeMap::new();
    for answer in answers {
        for (labels, sample) in answer? {
            let labels = labels.with_external(&external);
            samples.insert((labels.get(METRIC_NAME).to_string(), labels), (sample.t, sample.v));
        }
    }
    let flat: Vec<(Labels, i64, f64)> = samples.into_iter().map(|((_, l), (t, v))| (l, t, v)).collect();
    Ok(text(write_text(&flat)))
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}
