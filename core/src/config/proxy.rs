//! Which proxy a request goes through, as upstream's HTTP client picks it: `proxy_url`, except
//! to the hosts `no_proxy` names; or, under `proxy_from_environment`, the proxy the
//! `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY` environment variables give (read as Go's
//! `httpproxy` reads them: the upper-case name first, a proxy without scheme taken as
//! `http://`). In both exception lists' cases, as in Go, `localhost` and loopback addresses
//! never go through the proxy.

use std::net::IpAddr;

/// A `no_proxy` (or `NO_PROXY`) list: comma-separated `*`, IP addresses, CIDR ranges and
/// domains (`example.com` names it and its subdomains, `.example.com` and `*.example.com`
/// its subdomains only), each but a range with an optional port.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NoProxy {
    /// The list as written, for the configuration the API shows.
    text: String,
    everything: bool,
    ips: Vec<(IpAddr, Option<u16>)>,
    ranges: Vec<(IpAddr, u8)>,
    /// Suffixes starting with `.`, whether the bare domain matches too, and the port.
    domains: Vec<(String, bool, Option<u16>)>,
}

impl NoProxy {
    pub fn parse(list: &str) -> NoProxy {
        let mut no = NoProxy { text: list.to_string(), ..NoProxy::default() };
        for entry in list.split(',').map(|e| e.trim().to_ascii_lowercase()).filter(|e| !e.is_empty()) {
            if entry == "*" {
                no.everything = true;
                continue;
            }
            if let Some(range) = parse_range(&entry) {
                no.ranges.push(range);
                continue;
            }
            let (host, port) = split_port(&entry);
            if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
                no.ips.push((ip.to_canonical(), port));
                continue;
            }
            // `*.example.com` is `.example.com`; a `*` elsewhere is part of the name (and matches
            // no host), as in Go.
            let host = match host.strip_prefix("*.") {
                Some(domain) => format!(".{domain}"),
                None => host.to_string(),
            };
            match host.strip_prefix('.') {
                Some(domain) if !domain.is_empty() => no.domains.push((format!(".{domain}"), false, port)),
                Some(_) => {}
                None => no.domains.push((format!(".{host}"), true, port)),
            }
        }
        no
    }

    /// The list as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a request to `host` (a name or an address, IPv6 without brackets) and `port`
    /// goes around the proxy.
    pub fn bypasses(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        // An IPv4 address mapped into IPv6 is the IPv4 address, as Go compares them.
        let ip = host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
        if host == "localhost" || ip.is_some_and(|ip| ip.is_loopback()) || self.everything {
            return true;
        }
        let port_matches = |wanted: Option<u16>| wanted.is_none_or(|p| p == port);
        if let Some(ip) = ip {
            if self.ips.iter().any(|&(listed, p)| listed == ip && port_matches(p))
                || self.ranges.iter().any(|&(network, bits)| in_range(ip, network, bits))
            {
                return true;
            }
        }
        self.domains.iter().any(|(suffix, bare, p)| {
            (host.ends_with(suffix.as_str()) || (*bare && host == suffix[1..])) && port_matches(*p)
        })
    }
}

/// `a.b.c.d/n` or `v6/n`.
fn parse_range(entry: &str) -> Option<(IpAddr, u8)> {
    let (network, bits) = entry.split_once('/')?;
    let network: IpAddr = network.parse::<IpAddr>().ok()?.to_canonical();
    let bits: u8 = bits.parse().ok()?;
    let most = if network.is_ipv4() { 32 } else { 128 };
    (bits <= most).then_some((network, bits))
}

fn in_range(ip: IpAddr, network: IpAddr, bits: u8) -> bool {
    let prefix = |a: u128, width: u32| if bits == 0 { 0 } else { a >> (width - u32::from(bits)) };
    match (ip, network) {
        (IpAddr::V4(a), IpAddr::V4(b)) => prefix(u32::from(a).into(), 32) == prefix(u32::from(b).into(), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => prefix(u128::from(a), 128) == prefix(u128::from(b), 128),
        _ => false,
    }
}

/// An entry's host and port (`host:port`, `[v6]:port`); a bare IPv6 address has no port.
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if entry.parse::<IpAddr>().is_ok() {
        return (entry, None);
    }
    match entry.rsplit_once(':') {
        // An empty port is any port, as Go's `SplitHostPort` gives it.
        Some((host, "")) if !host.is_empty() => (host, None),
        Some((host, port)) if !host.is_empty() => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

/// The proxies the environment gives (`proxy_from_environment`).
#[derive(Debug, Clone, Default)]
pub struct EnvironmentProxies {
    http: Option<String>,
    https: Option<String>,
    no_proxy: NoProxy,
    /// Proxies named but not taken: Pyrite speaks to `http://` proxies only.
    pub unsupported: Vec<String>,
}

impl EnvironmentProxies {
    /// From the environment variables `var` gives.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> EnvironmentProxies {
        // An empty variable counts as unset, so that the lower-case one is read (Go's `getEnvAny`).
        let set = |name: &str| var(name).filter(|v| !v.is_empty());
        let either = |name: &str| set(name).or_else(|| set(&name.to_ascii_lowercase()));
        let with_scheme = |proxy: String| if proxy.contains("://") { proxy } else { format!("http://{proxy}") };
        let (http, https) = (either("HTTP_PROXY").map(with_scheme), either("HTTPS_PROXY").map(with_scheme));
        let unsupported =
            [&http, &https].into_iter().flatten().filter(|p| !p.starts_with("http://")).cloned().collect();
        let supported = |proxy: Option<String>| proxy.filter(|p| p.starts_with("http://"));
        EnvironmentProxies {
            http: supported(http),
            https: supported(https),
            no_proxy: NoProxy::parse(&either("NO_PROXY").unwrap_or_default()),
            unsupported,
        }
    }

    /// The proxy URL of a request to `host` and `port`, over TLS or not.
    pub fn for_request(&self, https: bool, host: &str, port: u16) -> Option<&str> {
        let proxy = if https { &self.https } else { &self.http };
        proxy.as_deref().filter(|_| !self.no_proxy.bypasses(host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_lists_match_as_gos_httpproxy_matches_them() {
        let no = NoProxy::parse("10.0.0.0/8, 192.168.1.7, [fd00::1]:8080, example.com, .internal, *.svc:9100,");
        for (host, port, bypasses) in [
            ("localhost", 9100, true),
            ("127.0.0.2", 80, true),
            ("::1", 80, true),
            ("10.20.30.40", 80, true),
            ("11.0.0.1", 80, false),
            ("192.168.1.7", 1, true),
            ("fd00::1", 8080, true),
            ("fd00::1", 8081, false),
            ("example.com", 80, true),
            ("api.example.com", 80, true),
            ("notexample.com", 80, false),
            ("internal", 80, false),
            ("db.internal", 80, true),
            ("node.svc", 9100, true),
            ("node.svc", 9200, false),
            ("svc", 9100, false),
            ("EXAMPLE.COM", 80, true),
        ] {
            assert_eq!(no.bypasses(host, port), bypasses, "{host}:{port}");
        }
        assert!(NoProxy::parse("*").bypasses("anything", 1));
        let odd = NoProxy::parse("*corp.com, ::ffff:10.1.2.3, 172.16.0.0/12, any.port:");
        assert!(!odd.bypasses("corp.com", 80) && !odd.bypasses("x.corp.com", 80), "only `*.` is a wildcard");
        assert!(odd.bypasses("10.1.2.3", 80) && odd.bypasses("::ffff:172.16.5.5", 80), "mapped IPv4 is IPv4");
        assert!(odd.bypasses("::ffff:127.0.0.1", 80) && odd.bypasses("any.port", 1234));
        assert!(!NoProxy::parse("").bypasses("example.com", 80));
    }

    #[test]
    fn environment_proxies_are_read_as_go_reads_them() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            EnvironmentProxies::from_vars(move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
        };
        let env =
            vars(&[("http_proxy", "proxy:3128"), ("HTTPS_PROXY", "http://tls-proxy:3128"), ("no_proxy", "skip.me")]);
        assert_eq!(env.for_request(false, "target", 80), Some("http://proxy:3128"));
        assert_eq!(env.for_request(true, "target", 443), Some("http://tls-proxy:3128"));
        assert_eq!(env.for_request(false, "skip.me", 80), None);
        assert_eq!(env.for_request(false, "127.0.0.1", 80), None);
        let upper_first = vars(&[("HTTP_PROXY", "http://upper:1"), ("http_proxy", "http://lower:1")]);
        assert_eq!(upper_first.for_request(false, "t", 1), Some("http://upper:1"));
        let empty_upper = vars(&[("HTTP_PROXY", ""), ("http_proxy", "http://lower:1")]);
        assert_eq!(empty_upper.for_request(false, "t", 1), Some("http://lower:1"));
        assert_eq!(vars(&[]).for_request(false, "t", 1), None);
        let socks = vars(&[("HTTPS_PROXY", "socks5://s:1080")]);
        assert_eq!(
            (socks.for_request(true, "t", 1), &socks.unsupported[..]),
            (None, &["socks5://s:1080".to_string()][..])
        );
    }
}
