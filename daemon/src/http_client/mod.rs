//! Blocking HTTP requests with a Prometheus HTTP client configuration (`basic_auth`,
//! `authorization`, `oauth2` ([`oauth2`]), `tls_config`, `proxy_url`, `follow_redirects`), for
//! the notifier, service discovery, remote read and write, and `pyrite query`: a ureq agent
//! with the rustls configuration that scrapes use too ([`tls::client_config`]) for `https`
//! URLs, made per request ([`send`]) or kept by a sender that reuses its connections
//! ([`Client`]). Redirects are followed by [`Client::send`], not by ureq; a bare [`request`]
//! follows none.
//!
//! ureq verifies a server's certificate for the host of the URL. To honour
//! `tls_config.server_name`, the request goes to that name and a resolver maps it to the URL's
//! real host, so TLS (SNI and verification) uses the configured name while the connection
//! goes where the URL points; the `Host` header then carries the configured name. Host names
//! are looked up by Pyrite's own resolver ([`crate::dns::socket_addrs`]), not the C library's.

pub mod oauth2;
pub mod tls;

use std::time::{Duration, Instant};

use pyrite_core::config::{EnvironmentProxies, HttpClientConfig};

/// The HTTP client file of `--http.config.file` (promtool's format), or the defaults without one.
pub fn config_file(path: Option<&std::path::Path>) -> anyhow::Result<HttpClientConfig> {
    use anyhow::Context as _;
    let Some(path) = path else { return Ok(HttpClientConfig::default()) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("unable to read HTTP client config file {}", path.display()))?;
    Ok(HttpClientConfig::parse(&text, &path.display().to_string())?)
}

/// A request for `method` and `url` with `http`'s settings and credentials (secret files are
/// read now; an `oauth2` token is fetched within `timeout` unless one is cached), which follows
/// no redirect: for AWS's credential endpoints, which do not redirect.
pub fn request(http: &HttpClientConfig, method: &str, url: &str, timeout: Duration) -> Result<ureq::Request, String> {
    Client::new(http, url, timeout)?.request(http, method, true)
}

/// An agent for one URL, kept to reuse its connections.
pub struct Client {
    agent: ureq::Agent,
    /// The URL as given, and as the agent asks for it (see the module docs on `server_name`).
    origin: String,
    url: String,
    timeout: Duration,
}

/// What a request carries.
#[derive(Clone, Copy)]
pub enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    Text(&'a str),
    Form(&'a [(&'a str, &'a str)]),
}

/// A request's headers for the URL it goes to and the method it is sent with (a redirect's
/// too): a signature is per URL and method, and credentials of the caller's own may be meant
/// for one host only.
pub type HeadersFor<'a> = dyn Fn(&str, &str) -> Result<Vec<(String, String)>, String> + 'a;

/// The most redirects one request follows, as Go's client.
const MAX_REDIRECTS: usize = 10;

/// Sends `method` with `payload` to `url` ([`Client::send`]), with an agent made for it.
pub fn send(
    http: &HttpClientConfig,
    method: &str,
    url: &str,
    timeout: Duration,
    headers: &HeadersFor,
    payload: Payload,
) -> Result<ureq::Response, String> {
    Client::new(http, url, timeout)?.send(http, method, headers, payload)
}

impl Client {
    /// An agent for `url` with `http`'s settings; each request times out after `timeout`.
    pub fn new(http: &HttpClientConfig, url: &str, timeout: Duration) -> Result<Client, String> {
        let (agent, asked) = agent(http, url, timeout)?;
        Ok(Client { agent, origin: url.to_string(), url: asked, timeout })
    }

    /// Sends `method` with `payload`, `http`'s credentials and `headers(url)` (per URL: a
    /// signature) to the URL, following redirects as Go's client does when `follow_redirects`
    /// allows: a 301, 302 or 303 as a GET without the payload, a 307 or 308 with it, only to
    /// `http` and `https` URLs, at most [`MAX_REDIRECTS`] times, all within the client's timeout
    /// (as Go's `Client.Timeout` bounds the whole chain). The answer, whatever its status; an
    /// error only when there is none. ureq follows no redirect itself: it panicked
    /// on a `Location` without a host (`file:///etc/passwd`), and it drops a POST's body.
    pub fn send(
        &self,
        http: &HttpClientConfig,
        method: &str,
        headers: &HeadersFor,
        payload: Payload,
    ) -> Result<ureq::Response, String> {
        let (mut url, mut method, mut payload) = (self.origin.clone(), method.to_string(), payload);
        let deadline = Instant::now().checked_add(self.timeout);
        let mut hop: Option<Client> = None;
        let origin = url::Url::parse(&self.origin).ok().map(|u| u.origin());
        for _ in 0..MAX_REDIRECTS {
            let same_host = url::Url::parse(&url).ok().map(|u| u.origin()) == origin;
            let mut request = hop.as_ref().unwrap_or(self).request(http, &method, same_host)?;
            for (name, value) in headers(&url, &method)? {
                request = request.set(&name, &value);
            }
            let sent = match payload {
                Payload::Empty => request.call(),
                Payload::Bytes(bytes) => request.send_bytes(bytes),
                Payload::Text(text) => request.send_string(text),
                Payload::Form(form) => request.send_form(form),
            };
            let answer = match sent {
                Ok(answer) | Err(ureq::Error::Status(_, answer)) => answer,
                Err(e) => return Err(e.to_string()),
            };
            let status = answer.status();
            // As Go's client: without a Location, the redirect is the answer.
            let location = answer.header("Location").filter(|l| http.follow_redirects && !l.is_empty());
            let Some(location) = location else { return Ok(answer) };
            if !matches!(status, 301 | 302 | 303 | 307 | 308) {
                return Ok(answer);
            }
            let next = redirect_target(&url, location)?;
            if !matches!(status, 307 | 308) {
                if method != "HEAD" {
                    method = "GET".to_string();
                }
                payload = Payload::Empty;
            }
            let left = deadline.map_or(self.timeout, |deadline| deadline.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                return Err(format!("redirects took longer than the timeout ({:?})", self.timeout));
            }
            hop = Some(Client::new(http, &next, left)?);
            url = next;
        }
        Err(format!("stopped after {MAX_REDIRECTS} redirects"))
    }

    /// A request to the URL with `http`'s credentials (secret files are read now; an `oauth2`
    /// token is fetched within the timeout unless one is cached) and `http_headers`, without
    /// their cookies unless it goes to the `same_host` as the first request.
    pub fn request(&self, http: &HttpClientConfig, method: &str, same_host: bool) -> Result<ureq::Request, String> {
        let mut request = self.agent.request(method, &self.url);
        if let Some(value) = http.authorization_header(&crate::files::read_text).map_err(|e| e.to_string())? {
            request = request.set("Authorization", &value);
        }
        if let Some(config) = &http.oauth2 {
            let token = oauth2::authorization(config, self.timeout).map_err(|e| e.to_string())?;
            request = request.set("Authorization", &token);
        }
        let mut extra = http.extra_headers(&crate::files::read_text).map_err(|e| e.to_string())?;
        if !same_host {
            extra = pyrite_core::config::for_another_host(extra);
        }
        for (name, value) in extra {
            request = request.set(&name, &value);
        }
        Ok(request)
    }
}

/// Where a redirect from `url` to `location` (absolute, or relative to `url`) goes: an `http`
/// or `https` URL, as Go's client follows.
fn redirect_target(url: &str, location: &str) -> Result<String, String> {
    let next = url::Url::parse(url)
        .and_then(|u| u.join(location))
        .map_err(|e| format!("invalid redirect {location:?}: {e}"))?;
    match next.scheme() {
        "http" | "https" if next.host_str().is_some_and(|h| !h.is_empty()) => Ok(next.into()),
        scheme => Err(format!("redirect to {location:?}: unsupported protocol scheme {scheme:?}")),
    }
}

/// The proxies the environment names (`proxy_from_environment`), read once as Go reads them.
pub static ENVIRONMENT_PROXIES: std::sync::LazyLock<EnvironmentProxies> = std::sync::LazyLock::new(|| {
    let proxies = EnvironmentProxies::from_vars(|name| std::env::var(name).ok());
    for proxy in &proxies.unsupported {
        tracing::warn!(
            proxy,
            "only http:// proxies are supported: requests the environment sends to this one go direct"
        );
    }
    proxies
});

fn agent(http: &HttpClientConfig, url: &str, timeout: Duration) -> Result<(ureq::Agent, String), String> {
    let mut agent = ureq::AgentBuilder::new()
        .timeout(timeout)
        // Redirects are followed by `Client::send`, not by ureq.
        .redirects(0)
        .resolver(|netloc: &str| crate::dns::socket_addrs(netloc));
    // Chosen by the URL's own host, before a `server_name` stands in for it below.
    let parsed = url::Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    let (host, port) = (parsed.host_str().unwrap_or(""), parsed.port_or_known_default().unwrap_or(0));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let proxy = http.proxy_url_for(parsed.scheme() == "https", host, port, &ENVIRONMENT_PROXIES);
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
    if let Some(proxy) = proxy {
        agent = agent.proxy(ureq::Proxy::new(proxy).map_err(|e| e.to_string())?);
    }
    Ok((agent.build(), url))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A server whose every answer, after 300 ms, redirects to the next path: the chain stops at
    /// the client's timeout of 1 s, not after ten hops of a fresh second each.
    #[test]
    fn a_chain_of_slow_redirects_shares_one_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/0", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { return };
                let mut request = [0; 4096];
                let _ = stream.read(&mut request);
                std::thread::sleep(Duration::from_millis(300));
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nLocation: /{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    i + 1
                );
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        let http = HttpClientConfig::default();
        let client = Client::new(&http, &url, Duration::from_secs(1)).unwrap();
        let error = client.send(&http, "GET", &|_, _| Ok(Vec::new()), Payload::Empty).unwrap_err();
        // Before: "stopped after 10 redirects", 3 s later.
        assert!(error.contains("timed out") || error.contains("longer than the timeout"), "{error}");
    }

    /// `http_headers` go with every request: values, secrets and a file read at each request.
    #[test]
    fn http_headers_are_sent_with_a_file_read_at_each_request() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let (seen, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut request = [0; 4096];
                let n = stream.read(&mut request).unwrap_or(0);
                let _ = seen.send(String::from_utf8_lossy(&request[..n]).to_ascii_lowercase());
                let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            }
        });
        let dir = std::env::temp_dir().join(format!("pyrite-http-headers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tenant"), "t1\n").unwrap();
        let text = "http_headers: {X-Scope-OrgID: {values: [a], secrets: [b], files: [tenant]}}\n";
        let http = HttpClientConfig::parse(text, &dir.join("http.yml").display().to_string()).unwrap();
        let client = Client::new(&http, &url, Duration::from_secs(5)).unwrap();
        for tenant in ["t1", "t2"] {
            std::fs::write(dir.join("tenant"), format!("{tenant}\n")).unwrap();
            client.send(&http, "GET", &|_, _| Ok(Vec::new()), Payload::Empty).unwrap();
            let request = received.recv_timeout(Duration::from_secs(5)).unwrap();
            assert!(request.contains(&format!("x-scope-orgid: a, b, {tenant}\r\n")), "{request}");
        }
        std::fs::remove_file(dir.join("tenant")).unwrap();
        let error = client.send(&http, "GET", &|_, _| Ok(Vec::new()), Payload::Empty).unwrap_err();
        assert!(error.contains("unable to read") && error.contains("tenant"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
