//! Extra headers sent with every request: the `headers` of `remote_read` and `remote_write`
//! entries, and every HTTP client's `http_headers` (upstream 3.x); those Prometheus sets itself
//! are refused, as upstream refuses them (`config.validateHeaders`, `Headers.Validate`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// Headers Prometheus sets itself (upstream's `reservedHeaders`; `authorization` is refused
/// with its own message).
const RESERVED_HEADERS: [&str; 16] = [
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    // Set by SigV4 signing.
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// One `http_headers` entry: values sent as they are, secrets (shown as `<secret>`), and files
/// read at every request, their content trimmed; each becomes one value of the header.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpHeader {
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub secrets: Vec<String>,
    #[serde(default)]
    pub files: Vec<PathBuf>,
}

/// Go's `http.CanonicalHeaderKey`: each word capitalised, the rest lower case (a name with a
/// character outside a token's is left as it is).
fn canonical(name: &str) -> String {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !name.chars().all(token) {
        return name.to_string();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() };
            upper = c == '-';
            out
        })
        .collect()
}

/// Upstream's check of an `http_headers` map, with its message.
pub(super) fn check_http_headers(headers: &BTreeMap<String, HttpHeader>) -> Result<(), String> {
    for name in headers.keys() {
        let lower = name.to_ascii_lowercase();
        let scrape_timeout = lower == "x-prometheus-scrape-timeout-seconds";
        if lower == "authorization" || scrape_timeout || RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(format!("setting header {:?} is not allowed", canonical(name)));
        }
    }
    Ok(())
}

/// `headers` without the cookies, for a redirect to another host: upstream's client strips
/// `Cookie` and `Cookie2` there (its `sensitiveHeadersStripRT`), the only ones `http_headers`
/// may set that it strips.
pub fn for_another_host(headers: Vec<(String, String)>) -> Vec<(String, String)> {
    let cookie = |name: &str| name.eq_ignore_ascii_case("cookie") || name.eq_ignore_ascii_case("cookie2");
    headers.into_iter().filter(|(name, _)| !cookie(name)).collect()
}

/// Upstream's check of a `headers` map, with its messages.
pub(super) fn check(headers: &BTreeMap<String, String>) -> Result<(), String> {
    for name in headers.keys() {
        let lower = name.to_ascii_lowercase();
        if lower == "authorization" {
            return Err("authorization header must be changed via the basic_auth, authorization, oauth2, sigv4, azuread or google_iam parameter".into());
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(format!("{name} is a reserved header. It must not be changed"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_headers_refuse_what_prometheus_sets_by_its_canonical_name() {
        let headers = |name: &str| BTreeMap::from([(name.to_string(), HttpHeader::default())]);
        assert_eq!(check_http_headers(&headers("x-scope-orgid")), Ok(()));
        let refused = |name: &str| check_http_headers(&headers(name)).unwrap_err();
        assert_eq!(refused("authorization"), "setting header \"Authorization\" is not allowed");
        assert_eq!(refused("user-AGENT"), "setting header \"User-Agent\" is not allowed");
        assert_eq!(
            refused("X-PROMETHEUS-SCRAPE-TIMEOUT-SECONDS"),
            "setting header \"X-Prometheus-Scrape-Timeout-Seconds\" is not allowed"
        );
        let sent = vec![("cookie".to_string(), "a".to_string()), ("X-A".to_string(), "b".to_string())];
        assert_eq!(for_another_host(sent), [("X-A".to_string(), "b".to_string())]);
    }
}
