//! The `remote_read` section: stores that Pyrite's queries read besides its own storage, with
//! upstream's defaults and checks (`config.RemoteReadConfig`). Kept apart from the query path,
//! which reads them (`daemon/src/query/remote.rs`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{check_http_url, headers, ConfigError, Duration, HttpClientConfig, Invalid, RawHttpClient};

/// One `remote_read` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteReadConfig {
    pub url: String,
    pub name: String,
    pub remote_timeout: Duration,
    /// Sent with every request.
    pub headers: BTreeMap<String, String>,
    /// Whether queries whose range the local storage covers go to this store too.
    pub read_recent: bool,
    /// Only selectors with all of these equality matchers are sent.
    pub required_matchers: BTreeMap<String, String>,
    /// The external labels become equality matchers of the request and are removed from the
    /// answer.
    pub filter_external_labels: bool,
    pub http: HttpClientConfig,
}

/// Unknown keys are refused by `keys::check` before this (and `flatten` rules out
/// `deny_unknown_fields`).
#[derive(Deserialize)]
pub(super) struct RawRemoteRead {
    #[serde(default)]
    url: String,
    #[serde(default, deserialize_with = "super::scalar::string")]
    name: String,
    remote_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "super::scalar::map")]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    read_recent: bool,
    #[serde(default)]
    required_matchers: BTreeMap<String, String>,
    filter_external_labels: Option<bool>,
    #[serde(flatten)]
    http: RawHttpClient,
}

/// Every `remote_read` entry checked, secret file paths relative to `dir`.
pub(super) fn validate(
    raw: Vec<RawRemoteRead>,
    dir: &Path,
    invalid: Invalid,
) -> Result<Vec<RemoteReadConfig>, ConfigError> {
    let mut out: Vec<RemoteReadConfig> = Vec::new();
    for (i, rr) in raw.into_iter().enumerate() {
        let at = |key: &str| format!("remote_read[{i}].{key}");
        if rr.url.is_empty() {
            return Err(invalid(at("url"), "url for remote_read is empty".into()));
        }
        check_http_url(&rr.url).map_err(|m| invalid(at("url"), m))?;
        headers::check(&rr.headers).map_err(|m| invalid(at("headers"), m))?;
        if !rr.name.is_empty() && out.iter().any(|o| o.name == rr.name) {
            return Err(invalid(at("name"), format!("found multiple remote read configs with job name {:?}", rr.name)));
        }
        out.push(RemoteReadConfig {
            http: rr.http.build(dir, &at, invalid)?,
            url: rr.url,
            name: rr.name,
            remote_timeout: rr.remote_timeout.unwrap_or(Duration::from_secs(60)),
            headers: rr.headers,
            read_recent: rr.read_recent,
            required_matchers: rr.required_matchers,
            filter_external_labels: rr.filter_external_labels.unwrap_or(true),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn defaults_checks_and_rendering_are_upstreams() {
        let text = "remote_read:\n  - url: http://store:9090/api/v1/read\n    required_matchers: {job: a}\n    basic_auth: {username: u, password: p}\n";
        let c = Config::parse(text, "p.yml").unwrap();
        let rr = &c.remote_read[0];
        assert_eq!(rr.remote_timeout, Duration::from_secs(60));
        assert!(!rr.read_recent && rr.filter_external_labels);
        assert_eq!(rr.required_matchers.get("job").map(String::as_str), Some("a"));
        let shown = c.to_yaml();
        assert!(shown.contains("password: <secret>") && !shown.contains("password: p"), "{shown}");
        assert_eq!(Config::parse(&shown, "p.yml").unwrap().remote_read[0].url, rr.url);
        let e = |t: &str| Config::parse(t, "p.yml").unwrap_err().to_string();
        assert_eq!(e("remote_read: [{}]\n"), "p.yml: remote_read[0].url: url for remote_read is empty");
        assert_eq!(
            e("remote_read: [{url: 'http://a/', headers: {User-Agent: x}}]\n"),
            "p.yml: remote_read[0].headers: User-Agent is a reserved header. It must not be changed"
        );
        assert_eq!(
            e("remote_read: [{url: 'http://a/', headers: {authorization: x}}]\n"),
            "p.yml: remote_read[0].headers: authorization header must be changed via the basic_auth, authorization, oauth2, sigv4, azuread or google_iam parameter"
        );
        assert_eq!(
            e("remote_read: [{url: 'http://a/', oauth2: {client_id: c}}]\n"),
            "p.yml: remote_read[0].oauth2.token_url: oauth2 token_url must be configured"
        );
        assert_eq!(
            e("remote_read: [{url: 'http://a/', name: x}, {url: 'http://b/', name: x}]\n"),
            "p.yml: remote_read[1].name: found multiple remote read configs with job name \"x\""
        );
    }
}
