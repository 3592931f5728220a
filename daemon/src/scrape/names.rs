//! A target's host names and the addresses they resolved to, kept for the target's life.
//!
//! IP literals are used as they are. A name is sent to the [`Resolver`]'s threads and its
//! answer awaited, so the shard runs on while a nameserver is slow; a lookup still under way
//! when the scrape's timeout ends it is kept, and the next scrape waits for the same answer
//! rather than asking again. An answer serves new connections for [`TTL`]; after that, or once
//! connecting to every address it gave has failed, the next connection asks again. With
//! keep-alive connections, that is rarely.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::client::ScrapeError;
use crate::dns::{Resolved, Resolver};

/// How long an answer is used for new connections before the name is asked again.
const TTL: Duration = Duration::from_secs(30);
/// Names remembered at most: the target's, its proxy's, and those its redirects lead to.
const MAX_NAMES: usize = 16;

enum Entry {
    Resolving(flume::Receiver<Resolved>),
    Resolved(Vec<IpAddr>, Instant),
}

pub struct Names {
    resolver: Resolver,
    names: HashMap<String, Entry>,
}

impl Names {
    pub fn new(resolver: Resolver) -> Names {
        Names { resolver, names: HashMap::new() }
    }

    /// The addresses of `host` (a name, or an IP literal without brackets).
    pub async fn resolve(&mut self, host: &str) -> Result<Vec<IpAddr>, ScrapeError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let answer = match self.names.get(host) {
            Some(Entry::Resolved(ips, at)) if at.elapsed() < TTL => return Ok(ips.clone()),
            Some(Entry::Resolving(answer)) => answer.clone(),
            _ => {
                if self.names.len() >= MAX_NAMES {
                    self.names.clear();
                }
                let answer = self.resolver.resolve(host);
                self.names.insert(host.to_string(), Entry::Resolving(answer.clone()));
                answer
            }
        };
        let resolved = answer.recv_async().await.unwrap_or_else(|_| Err(format!("lookup {host}: resolver stopped")));
        match resolved {
            Ok(ips) => {
                self.names.insert(host.to_string(), Entry::Resolved(ips.clone(), Instant::now()));
                Ok(ips)
            }
            Err(error) => {
                self.names.remove(host);
                Err(ScrapeError::Resolve(error))
            }
        }
    }

    /// No address of `host` took a connection: the next connection asks again.
    pub fn forget(&mut self, host: &str) {
        if let Some(Entry::Resolved(..)) = self.names.get(host) {
            self.names.remove(host);
        }
    }
}
