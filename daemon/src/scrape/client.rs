//! The scrape HTTP client: hyper 1.x over the shard's monoio runtime.
//!
//! One GET per scrape, over the target's kept connection (`connection.rs`; TLS for `https`),
//! with upstream's headers (`Accept` from `scrape_protocols`, `Accept-Encoding: gzip`, or
//! `identity` under `enable_compression: false`, `X-Prometheus-Scrape-Timeout-Seconds`,
//! `Authorization`, and the `http_headers` of its config), redirects followed, the whole
//! exchange bounded by the scrape timeout and the body by `body_size_limit` or
//! [`MAX_BODY_BYTES`] (after decompression too). The answer's
//! `Content-Type` says which format the body is in (text, OpenMetrics or protobuf), with
//! `fallback_scrape_protocol` for one that names none Prometheus parses (see
//! `pyrite_core::exposition::media`); the body goes to the ingest as bytes. A gzip body of
//! [`INFLATED_OFF_SHARD`] or more is inflated by the parse step, off the shard: 200 KB can
//! inflate to 200 MB, seconds of the thread that serves the shard's connections.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper::header;
use pyrite_core::config::{HttpClientConfig, OAuth2};
use pyrite_core::exposition::Format;
use pyrite_core::scrape::Target;
use rustls::pki_types::ServerName;
use thiserror::Error;

use super::connection::{split_host_port, Connections, Dial, Route};
use super::names::Names;
use crate::dns::Resolver;
use crate::http_client::oauth2::{self, Lookup};
use crate::http_client::tls;

/// Largest scrape body accepted, compressed or not.
const MAX_BODY_BYTES: usize = 256 << 20;
/// Largest body of a redirect or an error answer read to keep its connection.
const MAX_DRAINED_BYTES: usize = 64 << 10;

#[derive(Debug, Error)]
pub enum ScrapeError {
    #[error("context deadline exceeded")]
    Timeout,
    /// Go's wording: `dial tcp: lookup NAME: no such host`.
    #[error("dial tcp: {0}")]
    Resolve(String),
    #[error("invalid address {0:?}")]
    Address(String),
    #[error("{0}")]
    Connect(std::io::Error),
    #[error("{0}")]
    Http(String),
    #[error("server returned HTTP status {0}")]
    Status(hyper::StatusCode),
    /// Upstream's wording; the limit is `body_size_limit`, or [`MAX_BODY_BYTES`].
    #[error("body size limit exceeded")]
    TooLarge,
    #[error("invalid gzip body: {0}")]
    Gzip(std::io::Error),
    /// The answer's `Content-Type` names no format Pyrite parses, and there is no fallback.
    #[error("{0}")]
    ContentType(String),
    /// A secret file could not be read.
    #[error(transparent)]
    Secret(#[from] pyrite_core::config::SecretError),
    #[error("TLS: {0}")]
    Tls(String),
    /// No `oauth2` token could be had.
    #[error(transparent)]
    OAuth2(#[from] oauth2::OAuth2Error),
}

/// What one request got: a body in its format, or a redirect to follow.
enum Answer {
    Body(Body, Format),
    Redirect(String),
}

/// Redirects followed at most, as Go's HTTP client.
const MAX_REDIRECTS: usize = 10;

/// A target's client: what to ask it, and its connections.
pub struct ScrapeClient {
    ask: Ask,
    connections: Connections,
}

/// What to ask a target, the same at every scrape.
struct Ask {
    http: HttpClientConfig,
    /// The `Accept` header, from the config's `scrape_protocols`.
    accept: String,
    /// The `Accept-Encoding` header, from the config's `enable_compression`.
    accept_encoding: &'static str,
    /// The format of an answer whose `Content-Type` names none (`fallback_scrape_protocol`).
    fallback: Option<Format>,
    /// `http://` or `https://`: where a redirect may lead.
    scheme_prefix: String,
    /// For an `https` target: the TLS configuration and the name to verify, or why there is none.
    tls: Option<Result<(Arc<rustls::ClientConfig>, ServerName<'static>), String>>,
    address: String,
    /// The metrics path and query string.
    path: String,
    user_agent: String,
    /// Largest body taken, compressed or not.
    body_limit: usize,
}

impl ScrapeClient {
    pub fn new(target: &Target, resolver: Resolver) -> Self {
        let configured = target.limits.body_size_limit.0;
        let tls = (target.scheme == "https").then(|| {
            let config = tls::client_config(&target.http.tls)?;
            Ok((config, tls::server_name(&target.http.tls, &target.address)?))
        });
        let ask = Ask {
            http: target.http.clone(),
            accept: target.accept.clone(),
            accept_encoding: target.accept_encoding,
            fallback: target.fallback_format,
            scheme_prefix: format!("{}://", target.scheme),
            tls,
            address: target.address.clone(),
            path: target.path_and_query(),
            user_agent: format!("Pyrite/{}", env!("CARGO_PKG_VERSION")),
            body_limit: if configured > 0 { (configured as usize).min(MAX_BODY_BYTES) } else { MAX_BODY_BYTES },
        };
        ScrapeClient { ask, connections: Connections::new(Names::new(resolver)) }
    }

    /// Fetches the target's body (inflated, or a large gzip one still to inflate) and its format; name resolution, connecting
    /// and redirects included, all within `timeout`.
    pub async fn fetch(&mut self, timeout: Duration) -> Result<(Body, Format), ScrapeError> {
        let result = match monoio::time::timeout(timeout, self.ask.fetch(&mut self.connections, timeout)).await {
            Ok(r) => r,
            Err(_) => Err(ScrapeError::Timeout),
        };
        self.connections.end_scrape();
        result
    }
}

/// The `Authorization` of an `oauth2` scrape config: the cached token; or one fetched on a
/// thread of its own (the token endpoint may be slow; the shard may not wait), by this scrape
/// or, while another scrape fetches, by that one. The scrape's timeout bounds the wait.
async fn oauth2_authorization(config: &OAuth2, timeout: Duration) -> Result<String, ScrapeError> {
    let (slot, secret) = oauth2::slot_of(config)?;
    let since = std::time::Instant::now();
    loop {
        match slot.lookup(since) {
            Lookup::Token(token) => return Ok(token),
            Lookup::Failed(why) => return Err(ScrapeError::Http(why)),
            Lookup::Wait => monoio::time::sleep(OAUTH2_WAIT_STEP).await,
            Lookup::Fetch(claim) => {
                let (slot, config) = (slot.clone(), config.clone());
                let fetch = move || {
                    let _claim = claim;
                    slot.authorization(&config, &secret, timeout)
                };
                return crate::threads::off_shard(crate::threads::named("oauth2-token"), fetch)
                    .await
                    .map_err(|e| ScrapeError::Http(e.to_string()))?
                    .map_err(ScrapeError::OAuth2);
            }
        }
    }
}

/// How often a scrape waiting for another's token fetch looks again.
const OAUTH2_WAIT_STEP: Duration = Duration::from_millis(50);

impl Ask {
    /// Follows redirects (when the config allows, up to [`MAX_REDIRECTS`]) to the answer.
    /// Credentials go only to the target's own host: stricter than upstream, whose client adds
    /// them to every request, wherever a redirect points.
    async fn fetch(&self, connections: &mut Connections, timeout: Duration) -> Result<(Body, Format), ScrapeError> {
        let authorization = match &self.http.oauth2 {
            Some(config) => Some(oauth2_authorization(config, timeout).await?),
            None => self.http.authorization_header(&crate::files::read_text).map_err(ScrapeError::Secret)?,
        };
        let extra = self.http.extra_headers(&crate::files::read_text).map_err(ScrapeError::Secret)?;
        let host = |address: &str| address.rsplit_once(':').map_or(address, |(h, _)| h).to_string();
        let (mut address, mut path) = (self.address.clone(), self.path.clone());
        for _ in 0..=MAX_REDIRECTS {
            let same_host = host(&address) == host(&self.address);
            let credentials = authorization.as_deref().filter(|_| same_host);
            let headers = match same_host {
                true => std::borrow::Cow::Borrowed(&extra),
                false => std::borrow::Cow::Owned(pyrite_core::config::for_another_host(extra.clone())),
            };
            match self.exchange(connections, &address, &path, credentials, &headers, timeout).await? {
                Answer::Body(body, format) => return Ok((body, format)),
                Answer::Redirect(location) if self.http.follow_redirects => {
                    (address, path) = match location.strip_prefix(self.scheme_prefix.as_str()) {
                        Some(rest) => match rest.find('/') {
                            Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
                            None => (rest.to_string(), "/".to_string()),
                        },
                        None if location.starts_with('/') => (address, location),
                        None => return Err(ScrapeError::Http(format!("unsupported redirect to {location:?}"))),
                    };
                }
                Answer::Redirect(_) => {
                    return Err(ScrapeError::Http("server returned a redirect, and follow_redirects is off".into()))
                }
            }
        }
        Err(ScrapeError::Http(format!("stopped after {MAX_REDIRECTS} redirects")))
    }

    /// One request to `address` for `path` (through the proxy, over TLS for an `https` target).
    async fn exchange(
        &self,
        connections: &mut Connections,
        address: &str,
        path: &str,
        authorization: Option<&str>,
        extra: &[(String, String)],
        timeout: Duration,
    ) -> Result<Answer, ScrapeError> {
        let tls = match &self.tls {
            None => None,
            Some(Ok(tls)) => Some(tls),
            Some(Err(e)) => return Err(ScrapeError::Tls(e.clone())),
        };
        let (host, port) = split_host_port(address, if tls.is_some() { 443 } else { 80 })?;
        let environment = &crate::http_client::ENVIRONMENT_PROXIES;
        let proxy = self.http.proxy_url_for(tls.is_some(), host, port, environment);
        let proxy = proxy.and_then(HttpClientConfig::proxy_address);
        let proxy_authorization = proxy.as_ref().and_then(|(_, auth)| auth.as_deref());
        let (route, target, header_proxy_authorization) = match &proxy {
            None => (Route { peer: address.to_string(), tunnel: None, tls: tls.is_some() }, path.to_string(), None),
            // A plain request through a proxy names the whole URL (absolute form).
            Some((proxy, _)) if tls.is_none() => (
                Route { peer: proxy.clone(), tunnel: None, tls: false },
                format!("http://{address}{path}"),
                proxy_authorization,
            ),
            Some((proxy, _)) => {
                (Route { peer: proxy.clone(), tunnel: Some(address.to_string()), tls: true }, path.to_string(), None)
            }
        };
        let build = || {
            let mut request = hyper::Request::get(target.as_str())
                .header(header::HOST, address)
                .header(header::ACCEPT, &self.accept)
                .header(header::ACCEPT_ENCODING, self.accept_encoding)
                .header(header::USER_AGENT, &self.user_agent)
                .header("X-Prometheus-Scrape-Timeout-Seconds", format!("{}", timeout.as_secs_f64()));
            if let Some(value) = authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            if let Some(value) = header_proxy_authorization {
                request = request.header(header::PROXY_AUTHORIZATION, value);
            }
            for (name, value) in extra {
                request = request.header(name.as_str(), value.as_str());
            }
            request.body(Empty::<Bytes>::new()).map_err(|e| ScrapeError::Http(e.to_string()))
        };
        let dial = Dial { tls, proxy_authorization };
        let (response, connection) = connections.send(&route, &dial, build).await?;
        let status = response.status();
        if status.is_redirection() || !status.is_success() {
            let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
            if drained(response.into_body()).await {
                connections.keep(&route, connection);
            }
            return match status.is_redirection() {
                true => Ok(Answer::Redirect(location.unwrap_or_default())),
                false => Err(ScrapeError::Status(status)),
            };
        }
        let content_type = response.headers().get(header::CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()));
        let format = Format::of_content_type(content_type.as_deref().unwrap_or(""), self.fallback)
            .map_err(ScrapeError::ContentType)?;
        let gzipped = response
            .headers()
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let length = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .unwrap_or(0);
        let body = read_body(response.into_body(), length, self.body_limit).await?;
        connections.keep(&route, connection);
        let body = match gzipped {
            true if body.len() >= INFLATED_OFF_SHARD => Body::Gzip { body, limit: self.body_limit },
            true => Body::Plain(gunzip(&body, self.body_limit)?),
            false => Body::Plain(body),
        };
        Ok(Answer::Body(body, format))
    }
}

/// Reads `body` whole, at most `limit` bytes, into one buffer sized by the answer's
/// `Content-Length` (`length`, 0 if none) where it gives one: a large body is then held once and
/// never copied. Collecting its frames and joining them held a 200 MiB body three times over,
/// past a 512 MB container's memory (red team J).
async fn read_body(mut body: Incoming, length: usize, limit: usize) -> Result<Vec<u8>, ScrapeError> {
    if length > limit {
        return Err(ScrapeError::TooLarge);
    }
    let mut out = with_room_for(length);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ScrapeError::Http(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            append_within(&mut out, &data, limit)?;
        }
    }
    Ok(out)
}

/// An empty buffer with room for `size` bytes, as an answer's headers announce them: only
/// address space until written, and none if even that is refused (the body then grows as read).
fn with_room_for(size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = out.try_reserve_exact(size);
    out
}

/// Up to this capacity, a body of unknown length grows by doubling; past it, it is given room up
/// to the limit at once (address space, resident only as written). Each doubling copies the body
/// and frees the old buffer, which the allocator holds for a while: an endless chunked body
/// refused at the 256 MiB limit peaked at 720 MiB.
const DOUBLED_UP_TO: usize = 16 << 20;

/// Appends `data` to `out` unless that takes it past `limit`, growing it by doubling as a `Vec`
/// does (then to the limit, past [`DOUBLED_UP_TO`]) but never past `limit`: a body just over the
/// limit would otherwise double the buffer it is refused from.
fn append_within(out: &mut Vec<u8>, data: &[u8], limit: usize) -> Result<(), ScrapeError> {
    if data.len() > limit - out.len() {
        return Err(ScrapeError::TooLarge);
    }
    let needed = out.len() + data.len();
    if needed > out.capacity() && (out.capacity() < DOUBLED_UP_TO || out.try_reserve_exact(limit - out.len()).is_err())
    {
        let grown = out.capacity().saturating_mul(2).clamp(needed, limit);
        out.reserve_exact(grown - out.len());
    }
    out.extend_from_slice(data);
    Ok(())
}

/// Reads a small answer body to its end, so that its connection can take the next request.
async fn drained(body: Incoming) -> bool {
    Limited::new(body, MAX_DRAINED_BYTES).collect().await.is_ok()
}

/// Gzip bodies from this many bytes on are inflated off the shard: deflate inflates at most
/// about a thousand times ([`MAX_INFLATION`]), so a smaller one is at most 16 MiB, tens of
/// milliseconds.
pub const INFLATED_OFF_SHARD: usize = 16 << 10;

/// A scraped body: plain, or gzip still to inflate (within `limit`).
pub enum Body {
    Plain(Vec<u8>),
    Gzip { body: Vec<u8>, limit: usize },
}

impl Body {
    /// The bytes of a plain body.
    pub fn plain(&self) -> Option<&[u8]> {
        match self {
            Body::Plain(body) => Some(body),
            Body::Gzip { .. } => None,
        }
    }

    /// The body inflated.
    pub fn inflate(self) -> Result<Vec<u8>, ScrapeError> {
        match self {
            Body::Plain(body) => Ok(body),
            Body::Gzip { body, limit } => gunzip(&body, limit),
        }
    }
}

/// Deflate's largest ratio: a byte of it inflates to at most about this many.
const MAX_INFLATION: usize = 1032;

/// `body` inflated, at most `limit` bytes, into a buffer first sized by the size the gzip trailer
/// gives (a hint only: a hostile one is held to what the body could inflate to and to `limit`,
/// and a lie costs only regrowth).
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, ScrapeError> {
    let trailer_size = match body {
        [.., a, b, c, d] if body.len() >= 18 => u32::from_le_bytes([*a, *b, *c, *d]) as usize,
        _ => 0,
    };
    let mut out = with_room_for(trailer_size.min(body.len().saturating_mul(MAX_INFLATION)).min(limit));
    let mut decoder = flate2::read::GzDecoder::new(body);
    let mut chunk = vec![0; 64 << 10];
    loop {
        match decoder.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => append_within(&mut out, &chunk[..n], limit)?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ScrapeError::Gzip(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn a_body_grows_within_its_limit_and_is_refused_past_it() {
        let mut out = Vec::new();
        for _ in 0..3 {
            append_within(&mut out, &[1; 300], 1000).unwrap();
        }
        assert!(matches!(append_within(&mut out, &[1; 101], 1000), Err(ScrapeError::TooLarge)));
        append_within(&mut out, &[1; 100], 1000).unwrap();
        assert_eq!((out.len(), out.capacity()), (1000, 1000), "doubling stops at the limit");
        let limit = 256 << 20;
        let mut big = Vec::new();
        let chunk = vec![1; 1 << 20];
        while big.len() <= DOUBLED_UP_TO {
            append_within(&mut big, &chunk, limit).unwrap();
        }
        assert_eq!(big.capacity(), limit, "past DOUBLED_UP_TO, room to the limit at once");
    }

    #[test]
    fn gzip_inflates_into_the_size_its_trailer_gives_and_stops_at_the_limit() {
        let data = b"#\n".repeat(100_000);
        let inflated = gunzip(&gzip(&data), 1 << 20).unwrap();
        assert_eq!(inflated, data);
        assert_eq!(inflated.capacity(), data.len(), "sized once, from the trailer");
        assert!(matches!(gunzip(&gzip(&data), data.len() - 1), Err(ScrapeError::TooLarge)));
        // A trailer that lies costs regrowth, not a wrong answer.
        let mut lying = gzip(&data);
        let n = lying.len();
        lying[n - 4..].copy_from_slice(&7u32.to_le_bytes());
        assert!(matches!(gunzip(&lying, 1 << 20), Err(ScrapeError::Gzip(_))), "flate2 checks the trailer's size");
    }
}
