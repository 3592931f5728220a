//! The system's resolver configuration, read as Go's pure resolver reads it (Prometheus's
//! release binaries use that resolver): `/etc/hosts` first, then the nameservers, search
//! domains and `ndots`, `timeout` and `attempts` options of `/etc/resolv.conf`. Parsing only:
//! the caller reads the files.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub const HOSTS: &str = "/etc/hosts";
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The addresses `/etc/hosts` (its text) gives `name`, in the file's order.
pub fn hosts_lookup(text: &str, name: &str) -> Vec<IpAddr> {
    let name = name.trim_end_matches('.');
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        // An IPv6 address may carry a zone (`fe80::1%eth0`), which a socket address cannot.
        let Some(Ok(ip)) = fields.next().map(|a| a.split('%').next().unwrap_or(a).parse::<IpAddr>()) else {
            continue;
        };
        if fields.any(|n| n.trim_end_matches('.').eq_ignore_ascii_case(name)) && !found.contains(&ip) {
            found.push(ip);
        }
    }
    found
}

/// What `/etc/resolv.conf` says, with Go's defaults for what it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<SocketAddr>,
    /// Domains appended to a name with fewer than `ndots` dots (`search`, or `domain`).
    pub search: Vec<String>,
    pub ndots: usize,
    pub timeout: Duration,
    pub attempts: usize,
}

impl ResolvConf {
    /// Parses the file's text; lines it does not know are skipped, as resolvers do.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        };
        for line in text.lines() {
            let mut fields = line.split(['#', ';']).next().unwrap_or("").split_whitespace();
            match fields.next() {
                Some("nameserver") => {
                    let ip = fields.next().and_then(|a| a.split('%').next()?.parse::<IpAddr>().ok());
                    conf.nameservers.extend(ip.map(|ip| SocketAddr::new(ip, 53)));
                }
                Some("domain") => conf.search = fields.next().map(|d| vec![absolute(d)]).unwrap_or_default(),
                Some("search") => conf.search = fields.map(absolute).collect(),
                Some("options") => {
                    for option in fields {
                        let number = |prefix: &str| option.strip_prefix(prefix)?.parse::<usize>().ok();
                        if let Some(n) = number("ndots:") {
                            conf.ndots = n.min(15);
                        } else if let Some(n) = number("timeout:") {
                            conf.timeout = Duration::from_secs(n.clamp(1, 30) as u64);
                        } else if let Some(n) = number("attempts:") {
                            conf.attempts = n.clamp(1, 5);
                        }
                    }
                }
                _ => {}
            }
        }
        if conf.nameservers.is_empty() {
            conf.nameservers =
                vec![SocketAddr::from(([127, 0, 0, 1], 53)), SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 53))];
        }
        conf
    }

    /// The names to ask for, in order: a name with at least `ndots` dots as it is first, then
    /// with each search domain; a shorter one the other way round; an absolute name (ending
    /// in a dot) only as it is.
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if name.ends_with('.') {
            return vec![name.to_string()];
        }
        let rooted = format!("{name}.");
        let with_search = self.search.iter().map(|domain| format!("{name}.{domain}"));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(rooted).chain(with_search).collect()
        } else {
            with_search.chain(std::iter::once(rooted)).collect()
        }
    }
}

/// A domain with its root dot.
fn absolute(domain: &str) -> String {
    format!("{}.", domain.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_give_every_address_of_a_name_in_file_order() {
        let hosts = "# comment\n127.0.0.1\tlocalhost\n::1 localhost ip6-localhost # loopback\n10.0.0.5 db DB.example. \nnot-an-ip db\n";
        let ips = |name| hosts_lookup(hosts, name).iter().map(|ip| ip.to_string()).collect::<Vec<_>>();
        assert_eq!(ips("localhost"), ["127.0.0.1", "::1"]);
        assert_eq!(ips("db.example"), ["10.0.0.5"]);
        assert_eq!(ips("localhost."), ["127.0.0.1", "::1"]);
        assert!(ips("example").is_empty());
    }

    #[test]
    fn resolv_conf_is_read_with_go_defaults() {
        let conf = ResolvConf::parse("# x\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nsearch ns.svc.cluster.local svc.cluster.local\noptions ndots:5 timeout:2 attempts:9 rotate\n");
        assert_eq!(conf.nameservers, ["10.0.0.2:53".parse().unwrap(), "[fe80::1]:53".parse().unwrap()]);
        assert_eq!(conf.search, ["ns.svc.cluster.local.", "svc.cluster.local."]);
        assert_eq!((conf.ndots, conf.timeout, conf.attempts), (5, Duration::from_secs(2), 5));
        let empty = ResolvConf::parse("");
        assert_eq!(empty.nameservers.len(), 2);
        assert_eq!((empty.ndots, empty.timeout, empty.attempts), (1, Duration::from_secs(5), 2));
    }

    #[test]
    fn search_domains_come_first_for_short_names() {
        let conf = ResolvConf::parse("search a.example b.example\noptions ndots:2\n");
        assert_eq!(conf.candidates("app"), ["app.a.example.", "app.b.example.", "app."]);
        assert_eq!(conf.candidates("app.ns.svc"), ["app.ns.svc.", "app.ns.svc.a.example.", "app.ns.svc.b.example."]);
        assert_eq!(conf.candidates("app.example."), ["app.example."]);
    }
}
