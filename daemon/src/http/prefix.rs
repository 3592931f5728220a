//! Where the server is reached: `--web.external-url` and `--web.route-prefix`, as upstream
//! reads them, so that Pyrite serves under `/prometheus` behind a load balancer.

use anyhow::bail;

/// The URL users reach the server at (no trailing slash) and the path its routes live under
/// (`/` or `/prefix`, no trailing slash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPaths {
    pub external_url: String,
    pub route_prefix: String,
}

impl WebPaths {
    /// From the two flags: the external URL defaults to `http://<hostname>:<port>` (`https` when
    /// the web configuration turns `tls` on, as upstream), the route prefix to the external
    /// URL's path.
    pub fn from_flags(
        external_url: Option<&str>,
        route_prefix: Option<&str>,
        listen: &str,
        tls: bool,
    ) -> anyhow::Result<Self> {
        let external_url = match external_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let port = super::server::parse_listen_address(listen)?.port();
                format!("{}://{}:{port}", if tls { "https" } else { "http" }, hostname())
            }
        };
        let Ok(url) = url::Url::parse(&external_url) else {
            bail!("--web.external-url {external_url:?}: not an absolute URL (http://host:port/path)");
        };
        // An http(s) URL that parses has a host.
        if !matches!(url.scheme(), "http" | "https") {
            bail!("--web.external-url {external_url:?}: expected http:// or https:// and a host");
        }
        let prefix = route_prefix.unwrap_or(url.path());
        let route_prefix = format!("/{}", prefix.trim_matches('/'));
        Ok(WebPaths { external_url, route_prefix })
    }

    /// `path` (starting with `/`) under the route prefix.
    pub fn route(&self, path: &str) -> String {
        if self.route_prefix == "/" {
            path.to_string()
        } else {
            format!("{}{path}", self.route_prefix)
        }
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..len]) {
        Ok(name) if ok && !name.is_empty() => name.to_string(),
        _ => "localhost".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_follows_the_external_url_unless_given() {
        let p = WebPaths::from_flags(Some("http://lb.example.com/prometheus/"), None, ":9090", false).unwrap();
        assert_eq!(p.external_url, "http://lb.example.com/prometheus");
        assert_eq!(p.route_prefix, "/prometheus");
        assert_eq!(p.route("/-/healthy"), "/prometheus/-/healthy");
        let p = WebPaths::from_flags(Some("http://lb/prometheus"), Some("/"), ":9090", false).unwrap();
        assert_eq!(p.route_prefix, "/");
        let p = WebPaths::from_flags(None, Some("metrics/"), "127.0.0.1:9090", true).unwrap();
        assert!(p.external_url.starts_with("https://") && p.external_url.ends_with(":9090"));
        assert_eq!(p.route_prefix, "/metrics");
        assert!(WebPaths::from_flags(Some("lb/prometheus"), None, ":9090", false).is_err());
    }
}
