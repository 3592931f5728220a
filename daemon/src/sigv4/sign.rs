//! The Signature Version 4 algorithm itself, as a pure function of the request, the
//! credentials, the region, the service and the time: no clock, no I/O.
//!
//! What is signed follows aws-sdk-go-v2's header signer, which upstream Prometheus uses
//! (`github.com/prometheus/sigv4`):
//!
//! * the canonical URI is the URL's path as it is sent (percent-encoded, dot segments resolved
//!   by URL parsing) encoded once more, every byte but `A-Z a-z 0-9 - . _ ~ /` (services other
//!   than S3 expect this double encoding);
//! * the query's pairs are decoded, encoded with the same rule (no `/` kept) and sorted by
//!   key, then value;
//! * every header the caller passes is signed, lower-cased, its values trimmed with runs of
//!   spaces made one and repeated names joined by `,` in their order, except those a proxy or
//!   the transport may change (`Authorization`, `User-Agent`, `Expect`, `Transfer-Encoding`,
//!   `X-Amzn-Trace-Id`, and `uber-trace-id`, which upstream leaves out too); `host` (from a
//!   `Host` header if passed, else the URL's host and non-default port, as ureq sends it),
//!   `x-amz-date`, `x-amz-security-token` for temporary credentials, and `content-length`
//!   when the body is not empty are always signed;
//! * the payload hash is the body's SHA-256, used in the canonical request only: no
//!   `X-Amz-Content-Sha256` header is added (upstream adds none for `aps`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use ring::{digest, hmac};

use super::SigV4Error;

/// Credentials to sign with; `session_token` for temporary ones (STS, containers).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    /// The access key id only: secrets stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// A request to sign: what will be sent.
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Headers that are never signed: the transport, a proxy or a tracer may change them.
const UNSIGNED: [&str; 6] =
    ["authorization", "user-agent", "expect", "transfer-encoding", "x-amzn-trace-id", "uber-trace-id"];

/// Headers the signer sets itself; the caller's values are not used.
const OWN: [&str; 3] = ["x-amz-date", "x-amz-security-token", "content-length"];

/// The headers to add to `request` to sign it: `X-Amz-Date`, `X-Amz-Security-Token` for
/// temporary credentials, and `Authorization`.
pub fn sign(
    request: &Request<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, SigV4Error> {
    let t_ms = time.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let amz_date = pyrite_core::calendar::utc_compact(t_ms);
    let canonical = canonical_request(request, credentials, &amz_date)?;
    let scope = format!("{}/{region}/{service}/aws4_request", &amz_date[..8]);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(digest::digest(&digest::SHA256, canonical.text.as_bytes()).as_ref())
    );
    let mut key = hmac_sha256(format!("AWS4{}", credentials.secret_access_key).as_bytes(), &amz_date.as_bytes()[..8]);
    for part in [region, service, "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));
    let mut added = vec![("X-Amz-Date".to_string(), amz_date)];
    if let Some(token) = &credentials.session_token {
        added.push(("X-Amz-Security-Token".to_string(), token.clone()));
    }
    added.push((
        "Authorization".to_string(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
            credentials.access_key_id, canonical.signed_headers
        ),
    ));
    Ok(added)
}

/// The canonical request and the list of signed header names in it.
struct Canonical {
    text: String,
    signed_headers: String,
}

fn canonical_request(
    request: &Request<'_>,
    credentials: &Credentials,
    amz_date: &str,
) -> Result<Canonical, SigV4Error> {
    let url = url::Url::parse(request.url)
        .map_err(|e| SigV4Error::InvalidUrl { url: request.url.to_string(), reason: e.to_string() })?;
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in request.headers {
        let name = name.trim().to_ascii_lowercase();
        if !UNSIGNED.contains(&name.as_str()) && !OWN.contains(&name.as_str()) {
            headers.entry(name).or_default().push(collapse_spaces(value));
        }
    }
    if !headers.contains_key("host") {
        let host = url
            .host_str()
            .ok_or_else(|| SigV4Error::InvalidUrl { url: request.url.to_string(), reason: "no host".to_string() })?;
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        headers.insert("host".to_string(), vec![host]);
    }
    headers.insert("x-amz-date".to_string(), vec![amz_date.to_string()]);
    if let Some(token) = &credentials.session_token {
        headers.insert("x-amz-security-token".to_string(), vec![token.clone()]);
    }
    if !request.body.is_empty() {
        headers.insert("content-length".to_string(), vec![request.body.len().to_string()]);
    }
    let mut text = format!(
        "{}\n{}\n{}\n",
        request.method,
        uri_encode(if url.path().is_empty() { "/" } else { url.path() }, true),
        canonical_query(url.query().unwrap_or(""))
    );
    for (name, values) in &headers {
        let _ = writeln!(text, "{name}:{}", values.join(","));
    }
    let signed_headers = headers.keys().map(String::as_str).collect::<Vec<_>>().join(";");
    let _ = write!(text, "\n{signed_headers}\n{}", hex(digest::digest(&digest::SHA256, request.body).as_ref()));
    Ok(Canonical { text, signed_headers })
}

/// The query's pairs decoded, encoded again the SigV4 way, sorted by key then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> =
        form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (uri_encode(&k, false), uri_encode(&v, false))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Every byte but the unreserved characters (and `/` when `keep_slash`) as `%XX`.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `value` trimmed, each run of spaces made one.
fn collapse_spaces(value: &str) -> String {
    value.split(' ').filter(|part| !part.is_empty()).collect::<Vec<_>>().join(" ")
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

/// Lower-case hexadecimal, as SigV4 writes hashes and signatures.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    //! One test per vector of the AWS signing test suite (`daemon/tests/data/sigv4/`, its
    //! origin in the README there).

    use super::*;

    /// A vector's request as the signer takes it: a URL, headers and a body.
    struct Vector {
        method: String,
        url: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        credentials: Credentials,
        region: String,
        service: String,
        time: SystemTime,
    }

    fn read(name: &str, file: &str) -> String {
        let path = format!("{}/tests/data/sigv4/{name}/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn vector(name: &str) -> Vector {
        let context: serde_json::Value = serde_json::from_str(&read(name, "context.json")).unwrap();
        let request = read(name, "request.txt");
        let (head, body) = request.split_once("\n\n").unwrap_or((request.trim_end_matches('\n'), ""));
        let mut lines = head.lines();
        let request_line = lines.next().unwrap();
        let (method, rest) = request_line.split_once(' ').unwrap();
        let path = rest.strip_suffix(" HTTP/1.1").unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.to_string(), value.to_string())
            })
            .collect();
        let host = &headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("host")).unwrap().1;
        let mut headers = headers.clone();
        // The suite's `sign_body` is the hash sent as a header, which a caller adds itself.
        if context["sign_body"] == true {
            let hash = hex(digest::digest(&digest::SHA256, body.as_bytes()).as_ref());
            headers.push(("x-amz-content-sha256".to_string(), hash));
        }
        let timestamp = pyrite_core::calendar::parse_rfc3339(context["timestamp"].as_str().unwrap()).unwrap();
        let credentials = &context["credentials"];
        Vector {
            method: method.to_string(),
            url: format!("https://{host}{path}"),
            headers,
            body: body.as_bytes().to_vec(),
            credentials: Credentials {
                access_key_id: credentials["access_key_id"].as_str().unwrap().to_string(),
                secret_access_key: credentials["secret_access_key"].as_str().unwrap().to_string(),
                session_token: credentials["token"].as_str().map(str::to_string),
            },
            region: context["region"].as_str().unwrap().to_string(),
            service: context["service"].as_str().unwrap().to_string(),
            time: UNIX_EPOCH + std::time::Duration::from_millis(timestamp as u64),
        }
    }

    /// The vector's canonical request and `Authorization` header come out of the signer.
    fn check(name: &str) {
        let v = vector(name);
        let request = Request { method: &v.method, url: &v.url, headers: &v.headers, body: &v.body };
        let t_ms = v.time.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        let canonical = canonical_request(&request, &v.credentials, &pyrite_core::calendar::utc_compact(t_ms)).unwrap();
        assert_eq!(canonical.text, read(name, "header-canonical-request.txt"), "{name}: canonical request");
        let added = sign(&request, &v.credentials, &v.region, &v.service, v.time).unwrap();
        let expected = read(name, "header-signed-request.txt");
        for (header, value) in &added {
            let line = format!("{header}:{value}");
            assert!(
                expected.lines().any(|l| l.eq_ignore_ascii_case(&line)),
                "{name}: {line} not in the signed request:\n{expected}"
            );
        }
        let authorization = expected.lines().find(|l| l.starts_with("Authorization:")).unwrap();
        assert_eq!(format!("Authorization:{}", added.last().unwrap().1), authorization, "{name}");
    }

    macro_rules! vectors {
        ($($test:ident => $name:literal,)*) => {
            $(#[test] fn $test() { check($name); })*
        };
    }

    vectors! {
        get_vanilla => "get-vanilla",
        get_vanilla_query => "get-vanilla-query",
        get_vanilla_empty_query_key => "get-vanilla-empty-query-key",
        get_vanilla_query_order_key_case => "get-vanilla-query-order-key-case",
        get_vanilla_query_order_encoded => "get-vanilla-query-order-encoded",
        get_vanilla_query_unreserved => "get-vanilla-query-unreserved",
        get_vanilla_utf8_query => "get-vanilla-utf8-query",
        get_vanilla_with_session_token => "get-vanilla-with-session-token",
        get_header_key_duplicate => "get-header-key-duplicate",
        get_header_value_order => "get-header-value-order",
        get_header_value_trim => "get-header-value-trim",
        get_unreserved => "get-unreserved",
        get_relative_normalized => "get-relative-normalized",
        get_relative_relative_normalized => "get-relative-relative-normalized",
        get_slash_dot_slash_normalized => "get-slash-dot-slash-normalized",
        get_slash_pointless_dot_normalized => "get-slash-pointless-dot-normalized",
        post_header_key_case => "post-header-key-case",
        post_header_key_sort => "post-header-key-sort",
        post_header_value_case => "post-header-value-case",
        post_sts_header_before => "post-sts-header-before",
        post_vanilla => "post-vanilla",
        post_vanilla_empty_query_value => "post-vanilla-empty-query-value",
        post_vanilla_query => "post-vanilla-query",
        post_x_www_form_urlencoded => "post-x-www-form-urlencoded",
        post_x_www_form_urlencoded_parameters => "post-x-www-form-urlencoded-parameters",
    }

    #[test]
    fn an_encoded_path_is_encoded_again_and_the_port_is_signed_as_ureq_sends_it() {
        let credentials =
            Credentials { access_key_id: "AKID".into(), secret_access_key: "secret".into(), session_token: None };
        let request = Request { method: "POST", url: "http://127.0.0.1:9090/a%20b/./c", headers: &[], body: b"x" };
        let canonical = canonical_request(&request, &credentials, "20260101T000000Z").unwrap();
        let lines: Vec<&str> = canonical.text.lines().collect();
        assert_eq!(lines[1], "/a%2520b/c");
        assert!(lines.contains(&"host:127.0.0.1:9090"), "{lines:?}");
        assert!(lines.contains(&"content-length:1"), "{lines:?}");
        let default_port = Request { url: "https://example.com:443/", ..request };
        let canonical = canonical_request(&default_port, &credentials, "20260101T000000Z").unwrap();
        assert!(canonical.text.lines().any(|l| l == "host:example.com"), "{}", canonical.text);
    }
}
