//! Remote read: the configuration's `remote_read` stores, read for each selector of a query
//! besides the local storage, as upstream's fanout storage reads its remote queryables
//! (`storage/remote/read.go`): `required_matchers`, `read_recent` (upstream's "prefer local
//! storage" cut at the local start time) and `filter_external_labels` decide what is asked.
//!
//! The coordinator makes one [`RemoteSelects`] per query. A selector's remote answer is fetched
//! once, by the first query worker that needs it (never on a shard's thread), and shared by
//! every shard's worker; each keeps the series its shard owns, so a series held both here and
//! remotely meets its local self on one shard ([`merge_local`]). A store that fails, or answers
//! what upstream's client refuses (not one result per query, a series with an empty label or
//! metric name, or a name twice), gives a warning on the query, which answers with the rest,
//! as upstream.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pyrite_core::config::{Config, RemoteReadConfig};
use pyrite_core::labels::{Labels, MatchOp, Matcher};
use pyrite_core::remote::read::{decode_read_response, wire_matchers, Query, ReadRequest, SAMPLES};
use pyrite_core::remote::{Label, TimeSeries};
use pyrite_core::value::{HistogramSample, Sample, SeriesSamples};

use crate::clock::now_ms;
use crate::shards::{Request, Shards};

/// The largest answer read from a store, decompressed.
const MAX_ANSWER_BYTES: usize = 1 << 30;

/// A selector as asked of the stores: its matchers (written out) and time range.
type SelectorKey = (String, i64, i64);

/// One selector's series from every store, fetched by the first worker that asks.
type Fetched = Arc<OnceLock<Vec<SeriesSamples>>>;

/// The remote stores as one query reads them.
pub struct RemoteSelects {
    config: Arc<Config>,
    shards: Shards,
    /// Added to the local start time, as upstream adds twice the minimum block duration.
    start_margin: i64,
    /// The query's deadline, which also ends its requests to the stores.
    deadline: Option<Instant>,
    /// The local start time (upstream's `readyStorage.StartTime`), asked once per query.
    start_time: OnceLock<i64>,
    /// Each selector's remote series, by its matchers and time range.
    fetched: Mutex<HashMap<SelectorKey, Fetched>>,
    warnings: Mutex<Vec<String>>,
}

impl RemoteSelects {
    pub fn new(config: Arc<Config>, shards: Shards, start_margin: i64, deadline: Option<Instant>) -> Self {
        RemoteSelects {
            config,
            shards,
            start_margin,
            deadline,
            start_time: OnceLock::new(),
            fetched: Mutex::default(),
            warnings: Mutex::default(),
        }
    }

    /// Whether any remote store is read.
    pub fn configured(&self) -> bool {
        !self.config.remote_read.is_empty()
    }

    /// The remote series for `matchers` over `[mint, maxt]` that shard `shard` owns, from
    /// every store (fetched now if no worker has fetched them for this query yet).
    pub fn select(&self, shard: usize, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesSamples> {
        if !self.configured() {
            return Vec::new();
        }
        let key = (matchers.iter().map(|m| format!("{m},")).collect(), mint, maxt);
        let once = self.fetched.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default().clone();
        let all = once.get_or_init(|| self.fetch(matchers, mint, maxt));
        all.iter().filter(|s| s.labels.owner(self.shards.len()) == shard).cloned().collect()
    }

    /// What went wrong with the stores during this query, once each.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn fetch(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesSamples> {
        let mut parts = Vec::new();
        for remote in &self.config.remote_read {
            match self.read(remote, matchers, mint, maxt) {
                Ok(series) => parts.push(series),
                Err(e) => {
                    let name = if remote.name.is_empty() { remote.url.as_str() } else { remote.name.as_str() };
                    tracing::warn!(remote = name, error = %e, "remote read failed");
                    let mut warnings = self.warnings.lock().unwrap_or_else(|p| p.into_inner());
                    warnings.push(format!("remote_read {name}: {e}"));
                }
            }
        }
        pyrite_tsdb::querier::merge_parts(parts)
    }

    /// The local storage's start: the oldest block's start (now, without blocks) plus the
    /// margin; the end of time if a shard does not answer (the stores are then always read).
    fn local_start(&self) -> i64 {
        *self.start_time.get_or_init(|| {
            let answers: Vec<_> =
                (0..self.shards.len()).map(|i| self.shards.ask(i, |reply| Request::OldestBlock { reply })).collect();
            let mut oldest: Option<i64> = None;
            for answer in answers {
                match answer.recv() {
                    Ok(start) => oldest = oldest.into_iter().chain(start).min(),
                    Err(_) => return i64::MAX,
                }
            }
            oldest.unwrap_or_else(now_ms).saturating_add(self.start_margin)
        })
    }

    /// One store's series, with upstream's filters; an error says why the store gave none.
    fn read(
        &self,
        remote: &RemoteReadConfig,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesSamples>, String> {
        if !has_required(matchers, &remote.required_matchers) {
            return Ok(Vec::new());
        }
        let local_start = if remote.read_recent { None } else { Some(self.local_start()) };
        let Some((mint, maxt)) = remote_range(mint, maxt, local_start) else {
            return Ok(Vec::new());
        };
        let external =
            if remote.filter_external_labels { &self.config.global.external_labels } else { &Labels::default() };
        let (asked, added) = with_external_matchers(matchers, external);
        let request = ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: mint,
                end_timestamp_ms: maxt,
                matchers: wire_matchers(&asked),
                hints: None,
            }],
            accepted_response_types: vec![SAMPLES],
        };
        let mut timeout = remote.remote_timeout.as_std();
        if let Some(deadline) = self.deadline {
            timeout = timeout.min(deadline.saturating_duration_since(Instant::now()));
        }
        let body = post(remote, &request.encode_compressed(), timeout.max(Duration::from_millis(1)))?;
        let response = decode_read_response(&body, MAX_ANSWER_BYTES).map_err(|e| e.to_string())?;
        if response.results.len() != request.queries.len() {
            return Err(format!("responses: want {}, got {}", request.queries.len(), response.results.len()));
        }
        let series: Vec<TimeSeries> = response.results.into_iter().flat_map(|r| r.timeseries).collect();
        series.iter().try_for_each(|ts| valid_labels(&ts.labels))?;
        Ok(series
            .into_iter()
            .map(|ts| SeriesSamples {
                labels: Labels::from_pairs(
                    ts.labels.into_iter().filter(|l| !added.contains(&l.name)).map(|l| (l.name, l.value)),
                ),
                samples: ts.samples.into_iter().map(|s| Sample { t: s.timestamp, v: s.value }).collect(),
                // One the remote sends invalid is left out, as a sample it cannot send.
                histograms: ts
                    .histograms
                    .into_iter()
                    .filter_map(|h| {
                        let t = h.timestamp;
                        h.into_float().ok().map(|h| HistogramSample { t, h: Arc::new(h) })
                    })
                    .collect(),
            })
            .collect())
    }
}

/// A store's series labels as upstream's client checks them (`validateLabelsAndMetricName`):
/// a store answering a series with an empty label name or metric name, or the same name twice,
/// fails that store's answer.
fn valid_labels(labels: &[Label]) -> Result<(), String> {
    let mut names: Vec<&str> = Vec::with_capacity(labels.len());
    for l in labels {
        if l.name == "__name__" && l.value.is_empty() {
            return Err(format!("invalid metric name: {}", l.value));
        }
        if l.name.is_empty() {
            return Err(format!("invalid label name: {}", l.name));
        }
        names.push(&l.name);
    }
    names.sort_unstable();
    match names.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => Err(format!("duplicate label with name: {}", pair[0])),
        None => Ok(()),
    }
}

/// The range asked of a store for a selector over `[mint, maxt]`: all of it with `read_recent`
/// (no `local_start`), else upstream's `preferLocalStorage`: nothing if the range starts after
/// the local storage's start, and only up to that start otherwise.
fn remote_range(mint: i64, maxt: i64, local_start: Option<i64>) -> Option<(i64, i64)> {
    match local_start {
        None => Some((mint, maxt)),
        Some(start) if mint > start => None,
        Some(start) => Some((mint, maxt.min(start))),
    }
}

/// Upstream's `requiredMatchersFilter`: whether every required label is matched for equality
/// with its value by one of `matchers`.
fn has_required(matchers: &[Matcher], required: &std::collections::BTreeMap<String, String>) -> bool {
    required
        .iter()
        .all(|(name, value)| matchers.iter().any(|m| m.op == MatchOp::Equal && &m.name == name && &m.value == value))
}

/// Upstream's `addExternalLabels`: an equality matcher for each external label no matcher
/// names, and the names added (removed from the answer's series).
fn with_external_matchers(matchers: &[Matcher], external: &Labels) -> (Vec<Matcher>, Vec<String>) {
    let mut asked = matchers.to_vec();
    let mut added = Vec::new();
    for l in external.iter().filter(|l| !matchers.iter().any(|m| m.name == l.name)) {
        if let Ok(m) = Matcher::new(l.name.clone(), MatchOp::Equal, l.value.clone()) {
            asked.push(m);
            added.push(l.name.clone());
        }
    }
    (asked, added)
}

/// Sends a compressed `ReadRequest` to the store and gives its answer's body, within `timeout`.
fn post(remote: &RemoteReadConfig, body: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    use crate::http_client::{send, Payload};
    let headers = |_: &str, _: &str| {
        let fixed = [
            ("Content-Encoding", "snappy"),
            ("Content-Type", "application/x-protobuf"),
            ("User-Agent", concat!("Pyrite/", env!("CARGO_PKG_VERSION"))),
            ("X-Prometheus-Remote-Read-Version", "0.1.0"),
        ];
        let fixed = fixed.iter().map(|(n, v)| (n.to_string(), v.to_string()));
        Ok(fixed.chain(remote.headers.iter().map(|(n, v)| (n.clone(), v.clone()))).collect())
    };
    let response = send(&remote.http, "POST", &remote.url, timeout, &headers, Payload::Bytes(body))
        .map_err(|e| format!("error sending request: {e}"))?;
    if !(200..300).contains(&response.status()) {
        let code = response.status();
        let text = response.into_string().unwrap_or_default();
        return Err(format!("remote server {} returned HTTP status {code}: {}", remote.url, text.trim()));
    }
    let mut out = Vec::new();
    response
        .into_reader()
        .take(MAX_ANSWER_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("error reading response: {e}"))?;
    Ok(out)
}

/// A shard's local series for a selector merged with the remote series it owns: series with
/// the same labels become one, the local sample winning at an equal timestamp (upstream's
/// merge querier keeps its first, the local storage).
pub fn merge_local(local: Vec<SeriesSamples>, remote: Vec<SeriesSamples>) -> Vec<SeriesSamples> {
    if remote.is_empty() {
        return local;
    }
    pyrite_tsdb::querier::merge_parts(vec![local, remote])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_read_recent_only_what_precedes_the_local_storage_is_asked() {
        assert_eq!(remote_range(100, 200, None), Some((100, 200)));
        assert_eq!(remote_range(100, 200, Some(150)), Some((100, 150)));
        assert_eq!(remote_range(100, 200, Some(300)), Some((100, 200)));
        assert_eq!(remote_range(160, 200, Some(150)), None);
    }

    #[test]
    fn required_and_external_matchers_are_upstreams() {
        let m = |name: &str, op, value: &str| Matcher::new(name, op, value).unwrap();
        let required = [("job".to_string(), "a".to_string())].into();
        assert!(has_required(&[m("job", MatchOp::Equal, "a"), m("x", MatchOp::Equal, "y")], &required));
        assert!(!has_required(&[m("job", MatchOp::Regex, "a")], &required));
        let external = Labels::from_pairs([("cluster", "eu"), ("job", "ext")]);
        let (asked, added) = with_external_matchers(&[m("job", MatchOp::Equal, "a")], &external);
        assert_eq!(added, vec!["cluster".to_string()]);
        assert_eq!(asked, vec![m("job", MatchOp::Equal, "a"), m("cluster", MatchOp::Equal, "eu")]);
    }
}
