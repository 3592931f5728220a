//! The container credentials endpoint: ECS (a task role: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`,
//! asked at `http://169.254.170.2$URI`) and the full-URI form (`AWS_CONTAINER_CREDENTIALS_FULL_URI`,
//! EKS Pod Identity and local stand-ins), with `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (read at
//! every request, as it is rotated) or `AWS_CONTAINER_AUTHORIZATION_TOKEN` as the
//! `Authorization` header. The answer is JSON: `AccessKeyId`, `SecretAccessKey`, `Token`,
//! `Expiration`.
//!
//! As in aws-sdk-go-v2, a full URI is checked before a relative one, and a full URI over plain
//! HTTP must name a loopback host (every address it resolves to loopback) or one of the
//! container hosts ECS and EKS use, so that credentials are never asked of an arbitrary host.

use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use super::credentials::Expiring;
use super::environment::Environment;
use super::sign::Credentials;
use super::SigV4Error;

/// Where ECS serves a task's role credentials.
const ECS_HOST: &str = "http://169.254.170.2";

/// Hosts that serve container credentials over plain HTTP besides loopback: ECS, EKS Pod
/// Identity over IPv4 and IPv6.
const CONTAINER_HOSTS: [&str; 3] = ["169.254.170.2", "169.254.170.23", "fd00:ec2::23"];

/// How long a request to the endpoint may take (the SDKs' default for it).
const TIMEOUT: Duration = Duration::from_secs(5);

/// The token sent with each request.
#[derive(Clone, Debug)]
enum Token {
    None,
    Value(String),
    File(String),
}

/// The endpoint `env` names, if any.
#[derive(Clone, Debug)]
pub struct Endpoint {
    url: String,
    token: Token,
}

impl Endpoint {
    /// The endpoint of `env`'s variables; `Ok(None)` when none is set, an error when a full
    /// URI is not allowed.
    pub fn from_env(env: &Environment) -> Result<Option<Endpoint>, SigV4Error> {
        let token =
            match (env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"), env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
                (Some(file), _) => Token::File(file.to_string()),
                (None, Some(value)) => Token::Value(value.to_string()),
                (None, None) => Token::None,
            };
        if let Some(full) = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            check_full_uri(full)?;
            return Ok(Some(Endpoint { url: full.to_string(), token }));
        }
        Ok(env
            .get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            .map(|relative| Endpoint { url: format!("{ECS_HOST}{relative}"), token }))
    }

    /// Fresh credentials from the endpoint.
    pub fn fetch(&self) -> Result<Expiring, SigV4Error> {
        let error = |reason: String| SigV4Error::Container { url: self.url.clone(), reason };
        let mut request = crate::http_client::request(&Default::default(), "GET", &self.url, TIMEOUT)
            .map_err(error)?
            .set("Accept", "application/json");
        let token = match &self.token {
            Token::None => None,
            Token::Value(value) => Some(value.clone()),
            Token::File(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| SigV4Error::File { path: path.clone(), reason: e.to_string() })?
                    .trim()
                    .to_string(),
            ),
        };
        if let Some(token) = token {
            request = request.set("Authorization", &token);
        }
        let body = match request.call() {
            Ok(response) => response.into_string().map_err(|e| error(e.to_string()))?,
            Err(ureq::Error::Status(status, response)) => {
                let body = response.into_string().unwrap_or_default();
                return Err(error(format!("status {status}: {}", body.trim())));
            }
            Err(e) => return Err(error(e.to_string())),
        };
        parse(&body).map_err(error)
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
    expiration: Option<String>,
}

/// The endpoint's JSON answer.
fn parse(body: &str) -> Result<Expiring, String> {
    let answer: Answer = serde_json::from_str(body).map_err(|e| format!("invalid answer: {e}"))?;
    let expires = match answer.expiration {
        Some(text) => {
            let ms =
                pyrite_core::calendar::parse_rfc3339(&text).ok_or_else(|| format!("invalid Expiration {text:?}"))?;
            Some(UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
        }
        None => None,
    };
    Ok(Expiring {
        credentials: Credentials {
            access_key_id: answer.access_key_id,
            secret_access_key: answer.secret_access_key,
            session_token: answer.token.filter(|t| !t.is_empty()),
        },
        expires,
    })
}

/// A full URI is allowed over HTTPS, or over HTTP to a loopback or container host.
fn check_full_uri(full: &str) -> Result<(), SigV4Error> {
    let refuse = |reason: String| SigV4Error::Container { url: full.to_string(), reason };
    let url = url::Url::parse(full).map_err(|e| refuse(format!("invalid URL: {e}")))?;
    let host = url.host_str().ok_or_else(|| refuse("no host".to_string()))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match url.scheme() {
        "https" => return Ok(()),
        "http" => {}
        scheme => return Err(refuse(format!("unsupported scheme {scheme:?}"))),
    }
    if CONTAINER_HOSTS.contains(&bare) {
        return Ok(());
    }
    let addresses: Vec<IpAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => crate::dns::socket_addrs(&format!("{host}:{}", url.port_or_known_default().unwrap_or(80)))
            .map_err(|e| refuse(format!("failed to resolve host {bare:?}: {e}")))?
            .into_iter()
            .map(|a| a.ip())
            .collect(),
    };
    if addresses.is_empty() || !addresses.iter().all(IpAddr::is_loopback) {
        return Err(refuse(format!("invalid endpoint host {bare:?}, only loopback hosts are allowed over http")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_with_and_without_expiration() {
        let fetched = parse(
            r#"{"AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t","Expiration":"2026-12-03T19:00:00Z","RoleArn":"arn:x"}"#,
        )
        .unwrap();
        assert_eq!(fetched.credentials.access_key_id, "ASIA1");
        assert_eq!(fetched.credentials.session_token.as_deref(), Some("t"));
        assert_eq!(fetched.expires, Some(UNIX_EPOCH + Duration::from_secs(1_796_324_400)));
        assert!(parse(r#"{"AccessKeyId":"A","SecretAccessKey":"s"}"#).unwrap().expires.is_none());
        assert!(parse(r#"{"code":"Denied","message":"no"}"#).is_err());
        assert!(parse(r#"{"AccessKeyId":"A","SecretAccessKey":"s","Expiration":"soon"}"#).is_err());
    }

    #[test]
    fn a_full_uri_over_http_must_be_loopback_or_a_container_host() {
        for allowed in [
            "http://127.0.0.1:8080/creds",
            "http://[::1]/creds",
            "http://localhost:1/creds",
            "http://169.254.170.23/v1/credentials",
            "https://example.com/creds",
        ] {
            check_full_uri(allowed).unwrap_or_else(|e| panic!("{allowed}: {e}"));
        }
        for refused in ["http://192.0.2.10/creds", "http://10.0.0.1/", "ftp://127.0.0.1/", "http:///x"] {
            assert!(check_full_uri(refused).is_err(), "{refused}");
        }
    }
}
