//! Blocking HTTP requests with a Prometheus HTTP client configuration (`basic_auth`,
//! `authorization`, `oauth2` ([`oauth2`]), `tls_config`, `proxy_url`, `follow_redirects`), for
//! the notifier, remote read and write, and `pyrite query`: a ureq agent with the rustls
//! configuration that scrapes use too ([`tls::client_config`]) for `https` URLs, made per
//! request ([`request`]) or kept by a sender that reuses its connections ([`Client`]).
//!
//! ureq verifies a server's certificate for the host of the URL. To honour
//! `tls_config.server_name`, the request goes to that name and a resolver maps it to the URL's
//! real host, so TLS (SNI and verification) uses the configured name while the connection
//! goes where the URL points; the `Host` header then carries the configured name. Host names
//! are looked up by Pyrite's own resolver ([`crate::dns::socket_addrs`]), not the C library's.

pub mod oauth2;
pub mod tls;

use std::time::Duration;

use pyrite_core::config::HttpClientConfig;

/// The HTTP client file of `--http.config.file` (promtool's format), or the defaults without one.
pub fn config_file(path: Option<&std::path::Path>) -> anyhow::Result<HttpClientConfig> {
    use anyhow::Context as _;
    let Some(path) = path else { return Ok(HttpClientConfig::default()) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("unable to read HTTP client config file {}", path.display()))?;
    Ok(HttpClientConfig::parse(&text, &path.display().to_string())?)
}

/// A request for `method` and `url` with `http`'s settings and credentials (secret files are
/// read now; an `oauth2` token is fetched within `timeout` unless one is cached).
pub fn request(http: &HttpClientConfig, method: &str, url: &str, timeout: Duration) -> Result<ureq::Request, String> {
    Client::new(http, url, timeout)?.request(http, method)
}

/// An agent for one URL, kept to reuse its connections.
pub struct Client {
    agent: ureq::Agent,
    /// The URL as the agent asks for it (see the module docs on `server_name`).
    url: String,
    timeout: Duration,
}

impl Client {
    /// An agent for `url` with `http`'s settings; each request times out after `timeout`.
    pub fn new(http: &HttpClientConfig, url: &str, timeout: Duration) -> Result<Client, String> {
        let (agent, url) = agent(http, url, timeout)?;
        Ok(Client { agent, url, timeout })
    }

    /// A request to the URL with `http`'s credentials (secret files are read now; an `oauth2`
    /// token is fetched within the timeout unless one is cached).
    pub fn request(&self, http: &HttpClientConfig, method: &str) -> Result<ureq::Request, String> {
        let mut request = self.agent.request(method, &self.url);
        if let Some(value) = http.authorization_header(&crate::files::read_text).map_err(|e| e.to_string())? {
            request = request.set("Authorization", &value);
        }
        if let Some(config) = &http.oauth2 {
            let token = oauth2::authorization(config, self.timeout).map_err(|e| e.to_string())?;
            request = request.set("Authorization", &token);
        }
        Ok(request)
    }
}

fn agent(http: &HttpClientConfig, url: &str, timeout: Duration) -> Result<(ureq::Agent, String), String> {
    let mut agent = ureq::AgentBuilder::new()
        .timeout(timeout)
        .redirects(if http.follow_redirects { 10 } else { 0 })
        .resolver(|netloc: &str| crate::dns::socket_addrs(netloc));
    let mut url = url.to_string();
    if let Some(rest) = url.strip_prefix("https://") {
        agent = agent.tls_config(tls::client_config(&http.tls)?);
        if let Some(name) = &http.tls.server_name {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let (userinfo, authority) = match authority.rsplit_once('@') {
                Some((userinfo, host)) => (format!("{userinfo}@"), host),
                None => (String::new(), authority),
            };
            let (host, port) = match authority.rsplit_once(':') {
                Some((host, port)) if !port.contains(']') => {
                    (host, port.parse().map_err(|_| format!("invalid port in {url}"))?)
                }
                _ => (authority, 443u16),
            };
            let (target, alias) = (format!("{host}:{port}"), format!("{name}:{port}"));
            url = format!("https://{userinfo}{alias}{path}");
            agent = agent.resolver(move |netloc: &str| {
                crate::dns::socket_addrs(if netloc == alias { target.as_str() } else { netloc })
            });
        }
    }
    if let Some(proxy) = &http.proxy_url {
        agent = agent.proxy(ureq::Proxy::new(proxy).map_err(|e| e.to_string())?);
    }
    Ok((agent.build(), url))
}
