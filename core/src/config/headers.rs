//! The `headers` of `remote_read` and `remote_write` entries: extra headers sent with every
//! request, except those Prometheus sets itself, refused as upstream refuses them
//! (`config.validateHeaders`).

use std::collections::BTreeMap;

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
