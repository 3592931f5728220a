//! The servers the side-by-side benchmarks run — Pyrite, Prometheus and VictoriaMetrics —
//! started on loopback with their own data directories, scraping the same targets with one
//! shared scrape config, and what each says about itself: readiness, its own sample, series and
//! compaction counters, and a forced flush to disk.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pyrite_tests::{bin, free_port, http_get_within, metric_sum};

/// Series every scrape adds per target besides the target's own (`up`, `scrape_*`).
pub const REPORT_SERIES: usize = 5;

/// The scrape config every server of a run reads: one job over `targets`, every `interval`
/// seconds.
pub fn scrape_config(targets: &[String], interval: u64) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "global:\n  scrape_interval: {interval}s\n  scrape_timeout: {}s\nscrape_configs:\n  - job_name: loadgen\n    static_configs:\n      - targets: [{}]\n",
        interval.min(10),
        list.join(", ")
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pyrite,
    Prometheus,
    VictoriaMetrics,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Pyrite, Kind::Prometheus, Kind::VictoriaMetrics];
    pub const PYRITE_AND_PROMETHEUS: [Kind; 2] = [Kind::Pyrite, Kind::Prometheus];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Pyrite => "pyrite",
            Kind::Prometheus => "prometheus",
            Kind::VictoriaMetrics => "victoriametrics",
        }
    }

    /// The product its scrapes name in their `User-Agent` (`Pyrite/0.1.0`, `Prometheus/2.42.0`,
    /// `vm_promscrape`), as targets record it.
    pub fn scraper(self) -> &'static str {
        match self {
            Kind::Pyrite => "Pyrite",
            Kind::Prometheus => "Prometheus",
            Kind::VictoriaMetrics => "vm_promscrape",
        }
    }

    fn ready_path(self) -> &'static str {
        match self {
            Kind::VictoriaMetrics => "/health",
            _ => "/-/ready",
        }
    }
}

/// One server: how to start it, and the running process if any.
pub struct Server {
    pub kind: Kind,
    pub url: String,
    port: u16,
    pub data: PathBuf,
    config: PathBuf,
    /// Flags added to the command line.
    pub extra_args: Vec<String>,
    child: Option<Child>,
}

impl Server {
    /// A server of `kind` that will scrape with `config` and keep its data under `dir`.
    pub fn new(kind: Kind, dir: &Path, config: &Path) -> Server {
        let port = free_port();
        Server {
            kind,
            url: format!("http://127.0.0.1:{port}"),
            port,
            data: dir.join(format!("{}-data", kind.name())),
            config: config.to_path_buf(),
            extra_args: Vec::new(),
            child: None,
        }
    }

    fn command(&self) -> Command {
        let listen = format!("127.0.0.1:{}", self.port);
        let mut cmd = match self.kind {
            Kind::Pyrite => {
                let mut c = Command::new(bin("pyrite"));
                c.arg(format!("--config.file={}", self.config.display()))
                    .arg(format!("--storage.tsdb.path={}", self.data.display()))
                    .arg(format!("--web.listen-address={listen}"))
                    .args(["--web.enable-remote-write-receiver", "--web.enable-admin-api", "--log.level=warn"]);
                c
            }
            Kind::Prometheus => {
                let mut c = Command::new("prometheus");
                c.arg(format!("--config.file={}", self.config.display()))
                    .arg(format!("--storage.tsdb.path={}", self.data.display()))
                    .arg(format!("--web.listen-address={listen}"))
                    .args(["--web.enable-remote-write-receiver", "--web.enable-admin-api", "--log.level=warn"]);
                c
            }
            Kind::VictoriaMetrics => {
                let mut c = Command::new("victoria-metrics");
                c.arg(format!("-storageDataPath={}", self.data.display()))
                    .arg(format!("-httpListenAddr={listen}"))
                    .arg(format!("-promscrape.config={}", self.config.display()))
                    // Its default limit of 300,000 series per query refuses count_all and the
                    // histogram query at 1M series, which the other two answer.
                    .args(["-loggerLevel=ERROR", "-retentionPeriod=1y", "-search.maxUniqueTimeseries=100000000"]);
                c
            }
        };
        cmd.args(&self.extra_args);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
        cmd
    }

    /// Starts the server and returns how long it took to become ready.
    pub fn start(&mut self) -> Result<Duration, String> {
        let started = Instant::now();
        let child = self.command().spawn().map_err(|e| format!("cannot start {}: {e}", self.kind.name()))?;
        self.child = Some(child);
        let ready = format!("{}{}", self.url, self.kind.ready_path());
        let deadline = started + Duration::from_secs(600);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(format!("{} exited during start-up: {status}", self.kind.name()));
            }
            if http_get_within(&ready, Duration::from_secs(2)).is_ok_and(|(s, _)| s == 200) {
                return Ok(started.elapsed());
            }
            if Instant::now() > deadline {
                return Err(format!("{} was not ready within 10 minutes", self.kind.name()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server: SIGTERM and a wait of up to two minutes, or SIGKILL (`kill -9`).
    pub fn stop(&mut self, kill: bool) {
        let Some(mut child) = self.child.take() else { return };
        let signal = if kill { libc::SIGKILL } else { libc::SIGTERM };
        // SAFETY: signalling a child we spawned and have not reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let deadline = Instant::now() + Duration::from_secs(120);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The server's own `/metrics`.
    fn metrics(&self) -> String {
        http_get_within(&format!("{}/metrics", self.url), Duration::from_secs(30)).map(|(_, b)| b).unwrap_or_default()
    }

    /// Samples ingested so far, by the server's own counter.
    pub fn samples(&self) -> f64 {
        let m = self.metrics();
        match self.kind {
            Kind::Pyrite | Kind::Prometheus => metric_sum(&m, "prometheus_tsdb_head_samples_appended_total", ""),
            Kind::VictoriaMetrics => {
                metric_sum(&m, "vm_rows_inserted_total", "type=\"promscrape\"")
                    + metric_sum(&m, "vm_rows_inserted_total", "type=\"promremotewrite\"")
            }
        }
    }

    /// Active series, by the server's own gauge (VictoriaMetrics: series seen this hour).
    pub fn series(&self) -> f64 {
        let m = self.metrics();
        match self.kind {
            Kind::Pyrite | Kind::Prometheus => metric_sum(&m, "prometheus_tsdb_head_series", ""),
            Kind::VictoriaMetrics => match metric_sum(&m, "vm_cache_entries", "type=\"storage/hour_metric_ids\"") {
                0.0 => metric_sum(&m, "vm_new_timeseries_created_total", ""),
                n => n,
            },
        }
    }

    /// Blocks on disk: how many, the samples their `meta.json` counts, and their bytes
    /// (Pyrite's `blocks/<shard>/<ULID>/`, Prometheus's `<ULID>/`).
    pub fn blocks(&self) -> (usize, u64, u64) {
        let parents = match self.kind {
            Kind::Pyrite => std::fs::read_dir(self.data.join("blocks"))
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default(),
            _ => vec![self.data.clone()],
        };
        let mut out = (0, 0, 0);
        for parent in parents {
            for dir in std::fs::read_dir(parent).into_iter().flatten().flatten() {
                let Ok(meta) = std::fs::read_to_string(dir.path().join("meta.json")) else { continue };
                let meta: serde_json::Value = serde_json::from_str(&meta).unwrap_or_default();
                out.0 += 1;
                out.1 += meta["stats"]["numSamples"].as_u64().unwrap_or(0);
                out.2 += disk_bytes(&dir.path());
            }
        }
        out
    }

    /// Pyrite's per-shard block directories (one per shard once it has started).
    pub fn blocks_dirs(&self) -> usize {
        std::fs::read_dir(self.data.join("blocks")).map(|d| d.count()).unwrap_or(0)
    }

    /// How much time the head holds, by `/api/v1/status/tsdb` (Pyrite and Prometheus).
    pub fn head_span_ms(&self) -> Option<i64> {
        let (_, body) = http_get_within(&format!("{}/api/v1/status/tsdb", self.url), Duration::from_secs(30)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let head = &v["data"]["headStats"];
        Some(head["maxTime"].as_i64()? - head["minTime"].as_i64()?)
    }

    /// Head snapshots Pyrite has written while running.
    pub fn head_snapshots(&self) -> f64 {
        metric_sum(&self.metrics(), "pyrite_head_snapshots_total", "")
    }

    /// Blocks written from the head so far, and the seconds spent writing blocks (the
    /// servers' own compaction counters).
    pub fn head_compactions(&self) -> (f64, f64) {
        let m = self.metrics();
        match self.kind {
            Kind::Pyrite => (
                metric_sum(&m, "pyrite_tsdb_compactions_total", "kind=\"head\""),
                metric_sum(&m, "prometheus_tsdb_compaction_duration_seconds_sum", ""),
            ),
            _ => (
                metric_sum(&m, "prometheus_tsdb_compactions_total", ""),
                metric_sum(&m, "prometheus_tsdb_compaction_duration_seconds_sum", ""),
            ),
        }
    }

    /// Writes what the server holds in memory to disk where it can be asked to, and returns
    /// the bytes the flushed form takes: Pyrite's and Prometheus's admin snapshots (their
    /// blocks, and the head written as a block), VictoriaMetrics's data directory after a
    /// forced flush.
    pub fn flushed_bytes(&self) -> Option<u64> {
        match self.kind {
            Kind::Pyrite | Kind::Prometheus => {
                let r = ureq::post(&format!("{}/api/v1/admin/tsdb/snapshot", self.url))
                    .timeout(Duration::from_secs(600))
                    .call()
                    .ok()?;
                let body: serde_json::Value = serde_json::from_str(&r.into_string().ok()?).ok()?;
                let name = body["data"]["name"].as_str()?;
                let snapshot = self.data.join("snapshots").join(name);
                let bytes = disk_bytes(&snapshot);
                let _ = std::fs::remove_dir_all(&snapshot);
                Some(bytes)
            }
            Kind::VictoriaMetrics => {
                http_get_within(&format!("{}/internal/force_flush", self.url), Duration::from_secs(600)).ok()?;
                Some(disk_bytes(&self.data))
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop(true);
    }
}

/// Bytes the files under `dir` occupy on disk (allocated blocks, as `du` counts).
pub fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}
