//! A `pyrite-loadgen` and servers scraping it on loopback, each server with its own data
//! directory and the same scrape config: the setting every scraping benchmark runs in. Dropping
//! it stops the servers, then the load generator, then removes the data.

use std::time::Duration;

use crate::servers::{scrape_config, Kind, Server};
use pyrite_tests::{Loadgen, TempDir};

/// What to start.
pub struct Setup<'a> {
    /// A name for the temporary directory.
    pub tag: &'a str,
    pub servers: &'a [Kind],
    pub targets: usize,
    /// Series per target.
    pub series: usize,
    /// Scrape interval, seconds.
    pub interval: u64,
    /// More `pyrite-loadgen` flags (profile, churn, recording).
    pub loadgen_args: Vec<String>,
    /// Dashboard queries per second the load generator sends to each server, if any.
    pub query_rate: Option<f64>,
    /// Flags every server gets besides its own (Pyrite and Prometheus share flag names).
    pub server_args: Vec<String>,
}

/// The running setting. Fields drop in order: servers, load generator, data.
pub struct Scraping {
    pub servers: Vec<Server>,
    pub loadgen: Loadgen,
    /// How long each server took to be ready, empty.
    pub cold_start: Vec<Duration>,
    _dir: TempDir,
}

impl Scraping {
    /// Starts the load generator, then the servers one by one, each ready before the next.
    /// The targets listen on 127.0.0.2, so that their thousands of ephemeral ports cannot take
    /// a port already chosen for a server on 127.0.0.1.
    pub fn start(setup: Setup) -> Result<Scraping, String> {
        let dir = TempDir::new(setup.tag);
        let config = dir.0.join("prometheus.yml");
        let mut servers: Vec<Server> = setup.servers.iter().map(|&k| Server::new(k, &dir.0, &config)).collect();
        let mut args: Vec<String> = ["--ip", "127.0.0.2"].map(String::from).to_vec();
        args.extend(setup.loadgen_args);
        if let Some(rate) = setup.query_rate {
            args.extend(["--query-rate".into(), rate.to_string()]);
            for s in &servers {
                args.extend(["--query-url".into(), s.url.clone()]);
            }
        }
        let loadgen = Loadgen::start_with(setup.targets, setup.series, &args);
        std::fs::write(&config, scrape_config(&loadgen.targets, setup.interval)).map_err(|e| e.to_string())?;
        let mut cold_start = Vec::new();
        for s in &mut servers {
            s.extra_args.extend(setup.server_args.iter().cloned());
            cold_start.push(s.start()?);
        }
        Ok(Scraping { servers, loadgen, cold_start, _dir: dir })
    }

    /// Waits two scrape intervals and ten seconds: every series exists in every server.
    pub fn warm_up(&self, interval: u64) {
        let warmup = Duration::from_secs(2 * interval + 10);
        eprintln!("warming up for {warmup:?}");
        std::thread::sleep(warmup);
    }
}
