//! Name resolution away from the shards: the DNS client (`client`), the system's resolver
//! configuration (`system`), and the [`Resolver`], a small pool of threads that turns a host
//! name into addresses as Go's pure resolver does — `/etc/hosts`, then A and AAAA queries to
//! `/etc/resolv.conf`'s nameservers (or `--dns.server`) through its search domains.
//!
//! Why threads of its own: a lookup blocks for as long as the nameserver takes (seconds when it
//! is slow or gone), and a shard that waited would stall its appends, queries and other
//! scrapes. A scrape loop sends the name here and awaits the answer on a channel, so a slow
//! nameserver delays only the scrapes that need that name. Both files are read at each lookup,
//! so changes apply without a restart; lookups are rare (a scrape loop caches the answer).

pub mod client;
pub mod system;

use std::net::{IpAddr, SocketAddr};

use pyrite_core::dns::{Record, RecordType};

use client::{Answer, Servers};
use system::ResolvConf;

/// Lookups that may wait on nameservers at once; more queue.
const THREADS: usize = 8;

/// The resolver configuration of the moment: `/etc/resolv.conf`, its nameservers replaced by
/// `server` (`--dns.server`) when one is given.
pub fn resolv_conf(server: Option<SocketAddr>) -> ResolvConf {
    let mut conf = ResolvConf::parse(&std::fs::read_to_string(system::RESOLV_CONF).unwrap_or_default());
    if let Some(server) = server {
        conf.nameservers = vec![server];
    }
    conf
}

/// The nameservers of `conf`, with its timeout and attempts.
pub fn servers(conf: &ResolvConf) -> Servers {
    Servers { addresses: conf.nameservers.clone(), timeout: conf.timeout, attempts: conf.attempts }
}

/// Addresses of a host, or why there are none (in Go's words: `lookup NAME: no such host`).
pub type Resolved = Result<Vec<IpAddr>, String>;

struct Job {
    host: String,
    reply: flume::Sender<Resolved>,
}

/// A handle to the resolver threads; cheap to clone and `Send`, for every shard.
#[derive(Clone)]
pub struct Resolver {
    jobs: flume::Sender<Job>,
}

impl Resolver {
    /// Starts the threads; `server` is `--dns.server`.
    pub fn start(server: Option<SocketAddr>) -> std::io::Result<Resolver> {
        let (jobs, queue) = flume::unbounded::<Job>();
        for i in 0..THREADS {
            let queue = queue.clone();
            std::thread::Builder::new().name(format!("resolver-{i}")).spawn(move || {
                for job in queue.iter() {
                    let _ = job.reply.send(resolve(&job.host, server));
                }
            })?;
        }
        Ok(Resolver { jobs })
    }

    /// Starts resolving `host`; the answer arrives on the returned channel.
    pub fn resolve(&self, host: &str) -> flume::Receiver<Resolved> {
        let (reply, answer) = flume::bounded(1);
        // Should the threads be gone, `reply` is dropped with the job and the caller sees the
        // channel disconnected.
        let _ = self.jobs.send(Job { host: host.to_string(), reply });
        answer
    }
}

/// The socket addresses of `netloc` (`host:port`, `[v6]:port`), looked up on the calling
/// thread, which it blocks, with the system's configuration: for the clients that run on
/// threads of their own (the notifier, HTTP discovery, `pyrite query`, `pyrite health`). No
/// lookup goes through the C library, whose resolver a static binary cannot load.
pub fn socket_addrs(netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(addr) = netloc.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("invalid address {netloc:?}"));
    let (host, port) = netloc.rsplit_once(':').ok_or_else(invalid)?;
    let port: u16 = port.parse().map_err(|_| invalid())?;
    let ips = resolve(host.trim_start_matches('[').trim_end_matches(']'), None)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::NotFound, e))?;
    Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect())
}

/// Resolves `host` on the calling thread, which it blocks: `/etc/hosts`, then DNS.
fn resolve(host: &str, server: Option<SocketAddr>) -> Resolved {
    let found = system::hosts_lookup(&std::fs::read_to_string(system::HOSTS).unwrap_or_default(), host);
    if !found.is_empty() {
        return Ok(found);
    }
    let conf = resolv_conf(server);
    let servers = servers(&conf);
    let mut error = None;
    for name in conf.candidates(host) {
        let mut ips = Vec::new();
        for kind in [RecordType::A, RecordType::Aaaa] {
            match client::lookup(&servers, &name, kind) {
                Ok(Answer::Records(records)) => ips.extend(records.into_iter().filter_map(|r| match r {
                    Record::A(ip) => Some(IpAddr::V4(ip)),
                    Record::Aaaa(ip) => Some(IpAddr::V6(ip)),
                    _ => None,
                })),
                // The name has no records of any type.
                Ok(Answer::NoSuchName) => break,
                Err(e) => error = Some(e),
            }
        }
        if !ips.is_empty() {
            return Ok(ips);
        }
    }
    Err(format!("lookup {host}: {}", error.as_deref().unwrap_or("no such host")))
}
