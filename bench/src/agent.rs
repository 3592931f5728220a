//! `pyrite-bench agent`: Pyrite's agent mode (`--agent`) against Prometheus 2.42's
//! (`--enable-feature=agent`), side by side in one run: both scrape the same `pyrite-loadgen`
//! targets and remote-write to one Prometheus receiver (each with an `agent` external label, so
//! their series do not collide there). Over the measurement window, after a warm-up, it reports
//! each agent's resident memory (the last reading and the peak), CPU seconds per million
//! samples sent, bytes sent per sample (their own `prometheus_remote_storage_bytes_total`
//! over `prometheus_remote_storage_samples_total`), and the delay from scrape to receiver: every
//! 5 s, the clock minus the newest sample time the agent's queue has had acknowledged
//! (`prometheus_remote_storage_queue_highest_sent_timestamp_seconds`). That includes up to one
//! scrape interval of waiting for the next scrape, the same for both.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pyrite_tests::{bin, free_port, http_get_within, metric_sum, Loadgen, TempDir, Upstream};

use crate::environment;
use crate::report::{self, Row};
use crate::servers::{scrape_config, Kind};
use crate::usage::usage;

/// What a run scrapes and for how long.
pub struct Options {
    pub targets: usize,
    pub series_per_target: usize,
    pub interval: u64,
    pub warm_up: Duration,
    pub window: Duration,
    /// The command line that reproduces the run, for the report.
    pub command: String,
}

/// One agent: its process and where it answers.
struct Agent {
    name: &'static str,
    child: Child,
    url: String,
}

impl Agent {
    fn start(name: &'static str, dir: &Path, config: &str) -> Result<Agent, String> {
        let config_path = dir.join(format!("{name}.yml"));
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let port = free_port();
        let data = dir.join(format!("{name}-agent"));
        let mut cmd = match name {
            "pyrite" => {
                let mut c = Command::new(bin("pyrite"));
                c.arg("--agent");
                c
            }
            _ => {
                let mut c = Command::new("prometheus");
                c.arg("--enable-feature=agent");
                c
            }
        };
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.agent.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd.spawn().map_err(|e| format!("cannot start {name}: {e}"))?;
        let agent = Agent { name, child, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !http_get_within(&format!("{}/-/ready", agent.url), Duration::from_secs(2)).is_ok_and(|(s, _)| s == 200) {
            if Instant::now() > deadline {
                return Err(format!("{name} was not ready within a minute"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(agent)
    }

    /// Seconds from the newest sample the receiver acknowledged to now.
    fn delay(&self) -> Option<f64> {
        let (_, m) = http_get_within(&format!("{}/metrics", self.url), Duration::from_secs(30)).ok()?;
        let sent = metric_sum(&m, "prometheus_remote_storage_queue_highest_sent_timestamp_seconds", "");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64();
        (sent > 0.0).then_some(now - sent)
    }

    /// Samples and bytes sent so far, by the agent's own counters.
    fn sent(&self) -> (f64, f64) {
        let (_, m) = http_get_within(&format!("{}/metrics", self.url), Duration::from_secs(30)).unwrap_or_default();
        (
            metric_sum(&m, "prometheus_remote_storage_samples_total", ""),
            metric_sum(&m, "prometheus_remote_storage_bytes_total", ""),
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one agent used over the window.
struct Measured {
    rss: u64,
    peak_rss: u64,
    cpu_secs: f64,
    samples: f64,
    bytes: f64,
    /// Delays from scrape to receiver (s), one per reading.
    delays: Vec<f64>,
}

/// The `q` quantile (0 to 1) of `values`, by rank.
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(((v.len().saturating_sub(1)) as f64 * q).round() as usize).copied().unwrap_or(0.0)
}

/// Runs both agents and returns the report's markdown section.
pub fn run(opts: &Options) -> Result<String, String> {
    let dir = TempDir::new("bench-agent");
    environment::ensure_packages(&Kind::PYRITE_AND_PROMETHEUS)?;
    let receiver = Upstream::start();
    let load = Loadgen::start(opts.targets, opts.series_per_target);
    let agents = ["pyrite", "prometheus"]
        .into_iter()
        .map(|name| {
            let labeled = format!("global:\n  external_labels: {{agent: {name}}}\n");
            let scrape = scrape_config(&load.targets, opts.interval).replacen("global:\n", &labeled, 1);
            let config = format!("{scrape}remote_write:\n  - url: {}/api/v1/write\n", receiver.url);
            Agent::start(name, &dir.0, &config)
        })
        .collect::<Result<Vec<_>, _>>()?;
    std::thread::sleep(opts.warm_up);
    let before: Vec<_> = agents.iter().map(|a| (usage(a.child.id()), a.sent())).collect();
    let started = Instant::now();
    let mut rss = vec![0u64; agents.len()];
    let mut delays = vec![Vec::new(); agents.len()];
    while started.elapsed() < opts.window {
        std::thread::sleep(Duration::from_secs(5));
        for (i, a) in agents.iter().enumerate() {
            rss[i] = usage(a.child.id()).ok_or_else(|| format!("{} exited", a.name))?.rss;
            delays[i].extend(a.delay());
        }
    }
    let mut measured = Vec::new();
    for (i, a) in agents.iter().enumerate() {
        let (Some(u0), s0) = before[i] else { return Err(format!("{} exited", a.name)) };
        let u1 = usage(a.child.id()).ok_or_else(|| format!("{} exited", a.name))?;
        let s1 = a.sent();
        measured.push(Measured {
            rss: rss[i],
            peak_rss: u1.peak_rss,
            cpu_secs: u1.cpu_secs - u0.cpu_secs,
            samples: s1.0 - s0.0,
            bytes: s1.1 - s0.1,
            delays: std::mem::take(&mut delays[i]),
        });
    }
    Ok(section(opts, &measured))
}

fn section(opts: &Options, measured: &[Measured]) -> String {
    let series = opts.targets * opts.series_per_target;
    let both = |f: &dyn Fn(&Measured) -> f64| measured.iter().map(|m| Some(f(m))).collect::<Vec<_>>();
    let per_sample = |m: &Measured, v: f64| if m.samples > 0.0 { v / m.samples } else { 0.0 };
    let rows = [
        Row::new("RSS at the end", both(&|m| m.rss as f64), report::mib),
        Row::new("peak RSS", both(&|m| m.peak_rss as f64), report::mib),
        Row::new("CPU s per million samples sent", both(&|m| per_sample(m, m.cpu_secs) * 1e6), report::two_decimals),
        Row::new("bytes sent per sample", both(&|m| per_sample(m, m.bytes)), report::two_decimals),
        Row::new("samples sent in the window", both(&|m| m.samples), report::integer),
        Row::new("delay scrape to receiver, median (s)", both(&|m| quantile(&m.delays, 0.5)), report::two_decimals),
        Row::new("delay scrape to receiver, max (s)", both(&|m| quantile(&m.delays, 1.0)), report::two_decimals),
    ];
    format!(
        "## Agent mode: {series} series, {} targets every {} s ({})\n\n`{}`; {}; {}; window {} s after {} s of \
         warm-up; both agents send to one Prometheus 2.42 receiver.\n\n{}\n",
        opts.targets,
        opts.interval,
        environment::today(),
        opts.command,
        environment::versions(&Kind::PYRITE_AND_PROMETHEUS),
        environment::machine(),
        opts.window.as_secs(),
        opts.warm_up.as_secs(),
        report::table(&Kind::PYRITE_AND_PROMETHEUS, &rows)
    )
}
