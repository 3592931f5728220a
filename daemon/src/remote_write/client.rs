//! One remote-write request on the wire: the protocol's headers, the configured headers and
//! credentials (basic auth, authorization, oauth2, or a SigV4 signature), and what the answer
//! means, as upstream's client classifies it (`storage/remote/client.go`): 2xx stored; 5xx, 429
//! (with `retry_on_http_429`) and failures to connect are worth retrying, after `Retry-After`
//! if the receiver sent one; a 307 or 308 is followed with the body (`follow_redirects`, up to
//! 10); any other answer refuses the request for good.

use std::time::Duration;

use pyrite_core::config::RemoteWriteConfig;
use pyrite_core::remote::v2::WriteMessage;

use crate::http_client;
use crate::sigv4::{SigV4Settings, Signer};

/// What became of a request.
#[derive(Debug)]
pub enum Outcome {
    Stored,
    /// Worth sending again, after `after` if the receiver said so.
    Retry {
        after: Option<Duration>,
        why: String,
    },
    /// Refused for good (a 4xx other than 429): the samples are dropped and counted.
    Refused {
        why: String,
    },
}

/// Sends one queue's requests, reusing its connections.
pub struct Client {
    http: http_client::Client,
    config: RemoteWriteConfig,
    signer: Option<Signer>,
}

/// The longest answer body kept for an error message.
const MAX_ERROR_BODY: u64 = 1024;

impl Client {
    pub fn new(config: &RemoteWriteConfig) -> Result<Client, String> {
        let http = http_client::Client::new(&config.http, &config.url, config.remote_timeout.as_std())?;
        let signer = match &config.sigv4 {
            Some(s) => Some(
                Signer::new(&SigV4Settings {
                    region: s.region.clone(),
                    access_key: s.access_key.clone(),
                    secret_key: s.secret_key.clone(),
                    profile: s.profile.clone(),
                    role_arn: s.role_arn.clone(),
                    use_fips_sts_endpoint: s.use_fips_sts_endpoint,
                    service_name: s.service_name.clone(),
                })
                .map_err(|e| format!("sigv4: {e}"))?,
            ),
            None => None,
        };
        Ok(Client { http, config: config.clone(), signer })
    }

    /// POSTs one snappy-compressed request body (redirects followed by [`http_client::Client::send`],
    /// a 307 or 308 with the body, credentials and a signature for its URL).
    pub fn send(&self, body: &[u8]) -> Outcome {
        let (content_type, version) = match self.config.protobuf_message {
            WriteMessage::V1 => ("application/x-protobuf".to_string(), "0.1.0"),
            WriteMessage::V2 => (format!("application/x-protobuf;proto={}", WriteMessage::V2.proto_name()), "2.0.0"),
        };
        let mut headers: Vec<(String, String)> = vec![
            ("Content-Encoding".into(), "snappy".into()),
            ("Content-Type".into(), content_type),
            ("User-Agent".into(), format!("Pyrite/{}", env!("CARGO_PKG_VERSION"))),
            ("X-Prometheus-Remote-Write-Version".into(), version.into()),
        ];
        headers.extend(self.config.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        // Signed for each URL and method the request goes with, as upstream's round tripper
        // signs each hop (a 303 is followed as a GET without the body).
        let for_url = |url: &str, method: &str| -> Result<Vec<(String, String)>, String> {
            let mut all = headers.clone();
            if let Some(signer) = &self.signer {
                let sent: &[u8] = if method == "POST" { body } else { &[] };
                all.extend(signer.sign(method, url, &headers, sent).map_err(|e| format!("sigv4: {e}"))?);
            }
            Ok(all)
        };
        match self.http.send(&self.config.http, "POST", &for_url, http_client::Payload::Bytes(body)) {
            Ok(answer) if (200..300).contains(&answer.status()) => Outcome::Stored,
            Ok(answer) => self.failed(answer),
            Err(why) => Outcome::Retry { after: None, why },
        }
    }

    /// What a status other than 2xx means: 5xx, and 429 with `retry_on_http_429`, are worth
    /// retrying (after `Retry-After` if named); any other (a redirect not followed too) refuses
    /// the request for good, as upstream classifies it.
    fn failed(&self, answer: ureq::Response) -> Outcome {
        let code = answer.status();
        let after = answer.header("Retry-After").and_then(retry_after);
        // Bytes, not a string: the cut may fall inside a character, which would lose the whole
        // text.
        let mut body = Vec::new();
        use std::io::Read as _;
        let _ = answer.into_reader().take(MAX_ERROR_BODY).read_to_end(&mut body);
        let why = format!("server returned HTTP status {code}: {}", String::from_utf8_lossy(&body).trim());
        let retry = (500..600).contains(&code) || (code == 429 && self.config.queue.retry_on_http_429);
        match retry {
            true => Outcome::Retry { after, why },
            false => Outcome::Refused { why },
        }
    }
}

/// The longest a `Retry-After` header makes a queue wait: a receiver's answer must not stall a
/// queue for good (nor overflow the clock).
const RETRY_AFTER_CEILING: Duration = Duration::from_secs(3600);

/// A `Retry-After` header's delay: seconds, at most [`RETRY_AFTER_CEILING`]. Zero, as upstream
/// reads it, is no delay named, and so is an HTTP date (not honoured): the backoff applies.
/// Taken as "now", a receiver answering `Retry-After: 0` got 5,500 requests a second.
fn retry_after(value: &str) -> Option<Duration> {
    let seconds = value.trim().parse::<u64>().ok().filter(|&s| s > 0)?;
    Some(Duration::from_secs(seconds).min(RETRY_AFTER_CEILING))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_up_to_an_hour() {
        assert_eq!(retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(retry_after("18446744073709551615"), Some(RETRY_AFTER_CEILING));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after("0"), None);
    }
}
