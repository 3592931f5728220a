//! The scrape HTTP client: hyper 1.x over the shard's monoio runtime.
//!
//! One GET per scrape on a fresh connection (TLS for `https`), with upstream's headers (`Accept`
//! from `scrape_protocols`, `Accept-Encoding: gzip`, `X-Prometheus-Scrape-Timeout-Seconds`,
//! `Authorization`), redirects followed, the whole exchange bounded by the scrape timeout and
//! the body by `body_size_limit` or [`MAX_BODY_BYTES`] (after decompression too). The answer's
//! `Content-Type` says whether it is OpenMetrics or the text format.

use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header;
use monoio::io::IntoPollIo;
use monoio_compat::hyper::MonoioIo;
use pyrite_core::config::HttpClientConfig;
use pyrite_core::exposition::Format;
use pyrite_core::scrape::Target;
use rustls::pki_types::ServerName;
use thiserror::Error;

use super::tls;

/// Largest scrape body accepted, compressed or not.
const MAX_BODY_BYTES: usize = 256 << 20;

#[derive(Debug, Error)]
pub enum ScrapeError {
    #[error("context deadline exceeded")]
    Timeout,
    #[error("cannot resolve {0}")]
    Resolve(String),
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
    #[error("body is not valid UTF-8")]
    Utf8,
    /// A secret file could not be read.
    #[error(transparent)]
    Secret(#[from] pyrite_core::config::SecretError),
    #[error("TLS: {0}")]
    Tls(String),
}

/// What one request got: a body in its format, or a redirect to follow.
enum Answer {
    Body(String, Format),
    Redirect(String),
}

/// Redirects followed at most, as Go's HTTP client.
const MAX_REDIRECTS: usize = 10;

pub struct ScrapeClient {
    http: HttpClientConfig,
    /// The `Accept` header, from the config's `scrape_protocols`.
    accept: String,
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
    pub fn new(target: &Target) -> Self {
        let configured = target.limits.body_size_limit.0;
        let tls = (target.scheme == "https").then(|| {
            let config = tls::client_config(&target.http.tls)?;
            Ok((config, tls::server_name(&target.http.tls, &target.address)?))
        });
        ScrapeClient {
            http: target.http.clone(),
            accept: target.accept.clone(),
            scheme_prefix: format!("{}://", target.scheme),
            tls,
            address: target.address.clone(),
            path: target.path_and_query(),
            user_agent: format!("Pyrite/{}", env!("CARGO_PKG_VERSION")),
            body_limit: if configured > 0 { (configured as usize).min(MAX_BODY_BYTES) } else { MAX_BODY_BYTES },
        }
    }

    /// Connects to the first of `address`'s resolved addresses that answers (`localhost` may
    /// resolve to `::1` first while the target listens on `127.0.0.1`).
    async fn connect(address: &str) -> Result<monoio::net::TcpStream, ScrapeError> {
        let addrs: Vec<SocketAddr> =
            address.to_socket_addrs().map_err(|e| ScrapeError::Resolve(format!("{address}: {e}")))?.collect();
        let mut last = ScrapeError::Resolve(address.to_string());
        for addr in addrs {
            match monoio::net::TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = ScrapeError::Connect(e),
            }
        }
        Err(last)
    }

    /// Fetches the target's body, decompressed and checked to be UTF-8.
    pub async fn fetch(&self, timeout: Duration) -> Result<(String, Format), ScrapeError> {
        match monoio::time::timeout(timeout, self.fetch_inner(timeout)).await {
            Ok(r) => r,
            Err(_) => Err(ScrapeError::Timeout),
        }
    }

    /// Follows redirects (when the config allows, up to [`MAX_REDIRECTS`]) to the answer. As
    /// Go's client, credentials go only to the target's own host.
    async fn fetch_inner(&self, timeout: Duration) -> Result<(String, Format), ScrapeError> {
        let authorization = self.http.authorization_header(&crate::files::read_text).map_err(ScrapeError::Secret)?;
        let host = |address: &str| address.rsplit_once(':').map_or(address, |(h, _)| h).to_string();
        let (mut address, mut path) = (self.address.clone(), self.path.clone());
        for _ in 0..=MAX_REDIRECTS {
            let credentials = authorization.as_deref().filter(|_| host(&address) == host(&self.address));
            match self.exchange(&address, &path, credentials, timeout).await? {
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

    /// One request to `address` for `path`, over TLS for an `https` target.
    async fn exchange(
        &self,
        address: &str,
        path: &str,
        authorization: Option<&str>,
        timeout: Duration,
    ) -> Result<Answer, ScrapeError> {
        let proxy = self.http.proxy();
        let mut stream = Self::connect(proxy.as_ref().map_or(address, |(host, _)| host.as_str())).await?;
        let Some(tls) = &self.tls else {
            let stream = MonoioIo::new(stream.into_poll_io().map_err(ScrapeError::Connect)?);
            // Through a proxy, the request names the whole URL (absolute form).
            let Some((_, proxy_auth)) = proxy else {
                return self.request(stream, address, path, None, authorization, timeout).await;
            };
            let url = format!("http://{address}{path}");
            return self.request(stream, address, &url, proxy_auth.as_deref(), authorization, timeout).await;
        };
        if let Some((_, proxy_auth)) = &proxy {
            tunnel(&mut stream, address, proxy_auth.as_deref()).await?;
        }
        let stream = stream.into_poll_io().map_err(ScrapeError::Connect)?;
        let (config, name) = tls.as_ref().map_err(|e| ScrapeError::Tls(e.clone()))?;
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        let stream = connector.connect(name.clone(), stream).await.map_err(|e| ScrapeError::Tls(e.to_string()))?;
        self.request(MonoioIo::new(stream), address, path, None, authorization, timeout).await
    }

    /// The HTTP/1.1 exchange over an open connection.
    async fn request<IO>(
        &self,
        io: IO,
        address: &str,
        path: &str,
        proxy_authorization: Option<&str>,
        authorization: Option<&str>,
        timeout: Duration,
    ) -> Result<Answer, ScrapeError>
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    {
        // hyper's HTTP/1 client builder takes no timer: the whole exchange is bounded by the
        // monoio timeout in `fetch` instead.
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake::<_, Empty<Bytes>>(io)
            .await
            .map_err(|e| ScrapeError::Http(e.to_string()))?;
        monoio::spawn(async move {
            let _ = conn.await;
        });
        let mut request = hyper::Request::get(path)
            .header(header::HOST, address)
            .header(header::ACCEPT, &self.accept)
            .header(header::ACCEPT_ENCODING, "gzip")
            .header(header::USER_AGENT, &self.user_agent)
            .header("X-Prometheus-Scrape-Timeout-Seconds", format!("{}", timeout.as_secs_f64()));
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        if let Some(value) = proxy_authorization {
            request = request.header(header::PROXY_AUTHORIZATION, value);
        }
        let request = request.body(Empty::new()).map_err(|e| ScrapeError::Http(e.to_string()))?;
        let response = sender.send_request(request).await.map_err(|e| ScrapeError::Http(e.to_string()))?;
        if response.status().is_redirection() {
            let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok());
            return Ok(Answer::Redirect(location.unwrap_or("").to_string()));
        }
        if !response.status().is_success() {
            return Err(ScrapeError::Status(response.status()));
        }
        let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let format = Format::of_content_type(content_type.unwrap_or(""));
        let gzipped = response
            .headers()
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let body = Limited::new(response.into_body(), self.body_limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ScrapeError::TooLarge
                } else {
                    ScrapeError::Http(e.to_string())
                }
            })?
            .to_bytes();
        let bytes = if gzipped { gunzip(&body, self.body_limit)? } else { body.to_vec() };
        let body = String::from_utf8(bytes).map_err(|_| ScrapeError::Utf8)?;
        Ok(Answer::Body(body, format))
    }
}

/// Opens a `CONNECT` tunnel to `address` through the proxy `stream` is connected to.
async fn tunnel(
    stream: &mut monoio::net::TcpStream,
    address: &str,
    proxy_authorization: Option<&str>,
) -> Result<(), ScrapeError> {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    let mut request = format!("CONNECT {address} HTTP/1.1\r\nHost: {address}\r\n");
    if let Some(value) = proxy_authorization {
        request.push_str(&format!("Proxy-Authorization: {value}\r\n"));
    }
    request.push_str("\r\n");
    let (written, _) = stream.write_all(request.into_bytes()).await;
    written.map_err(ScrapeError::Connect)?;
    // The proxy's answer head, up to its blank line.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err(ScrapeError::Http("proxy answer head too long".into()));
        }
        let (read, byte) = stream.read(Vec::with_capacity(1)).await;
        if read.map_err(ScrapeError::Connect)? == 0 {
            return Err(ScrapeError::Http("proxy closed the connection".into()));
        }
        head.extend_from_slice(&byte);
    }
    let status = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
    match status.split(' ').nth(1) {
        Some("200") => Ok(()),
        _ => Err(ScrapeError::Http(format!("proxy refused CONNECT: {status}"))),
    }
}

fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, ScrapeError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body).take(limit as u64 + 1).read_to_end(&mut out).map_err(ScrapeError::Gzip)?;
    if out.len() > limit {
        return Err(ScrapeError::TooLarge);
    }
    Ok(out)
}
