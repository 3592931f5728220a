//! # pyrite-tests
//!
//! Harness for end-to-end tests: starts the real `pyrite` and `pyrite-loadgen` binaries on
//! loopback, talks to them over HTTP, and stops them when dropped. Every wait is bounded.
//!
//! The binaries are taken from the same target directory as the test executable, so the test
//! command builds them first (`cargo build --release --bins`, see `scripts/test`).

pub mod promqltest;
pub mod seccomp;
pub mod side_by_side;
pub mod upstream_chunks;
pub mod webdriver;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Path of a binary built next to the running executable (a test in `target/<profile>/deps/`,
/// or a tool in `target/<profile>/`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    let mut dir = exe.parent().expect("executable directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("target directory");
    }
    let path = dir.join(name);
    assert!(path.exists(), "{} is not built; run `cargo build --release --bins` first", path.display());
    path
}

/// A port nobody listens on right now.
/// A port free at the time of the call, below the kernel's ephemeral range (32768 and up), so
/// that connections and port-0 listeners of other tests do not take it before its server binds:
/// each call tries the next port of a sequence that starts at a place drawn from the process id.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919) % 20_000;
    loop {
        let port = 10_000 + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 20_000;
        if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
}

/// A temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let path = std::env::temp_dir().join(format!("pyrite-test-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process that is killed when dropped.
pub struct Process {
    child: Child,
}

impl Process {
    /// Takes ownership of a started child: it is killed when this is dropped.
    pub fn new(child: Child) -> Process {
        Process { child }
    }

    /// Starts a program from a Debian package the test script installs, with no input and its
    /// output discarded; it is killed when dropped.
    pub fn quiet(program: &str, args: &[String]) -> Process {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program} (installed by scripts/test): {e}"));
        Process { child }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`, `libc::SIGKILL`) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: signalling a child this handle spawned and has not reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// The most memory the process has held at once (VmHWM), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().strip_suffix("kB"));
        kb.and_then(|v| v.trim().parse::<u64>().ok()).map_or(0, |kb| kb * 1024)
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// How many threads the process runs now.
    pub fn threads(&self) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
    }

    /// The CPU time the process has used so far (user and system), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) in parentheses; utime and
        // stime are the 14th and 15th fields, the 12th and 13th after it.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let ticks: u64 = after.split_whitespace().skip(11).take(2).filter_map(|f| f.parse::<u64>().ok()).sum();
        // SAFETY: sysconf only reads a system constant.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
        ticks as f64 / per_second as f64
    }

    /// Whether the process has exited, with its stderr if so.
    pub fn exited(&mut self) -> Option<(std::process::ExitStatus, String)> {
        let status = self.child.try_wait().ok()??;
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        Some((status, err))
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(done) = self.exited() {
                return done;
            }
            assert!(Instant::now() < deadline, "process did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start a pyrite.
#[derive(Clone, Default)]
pub struct PyriteOpts {
    /// prometheus.yml contents; None for the embedded default.
    pub config: Option<String>,
    pub shards: Option<usize>,
    /// `auto`, `io_uring` or `epoll`.
    pub driver: Option<&'static str>,
    pub seccomp: Option<seccomp::Block>,
    pub extra_args: Vec<String>,
    /// Use this port instead of a fresh one.
    pub port: Option<u16>,
    /// Use this data directory instead of a fresh one.
    pub data_dir: Option<PathBuf>,
    /// Agent mode: `--agent`, the data directory as `--storage.agent.path`.
    pub agent: bool,
    /// Environment variables set for the process.
    pub env: Vec<(String, String)>,
}

/// A running pyrite server.
pub struct Pyrite {
    pub process: Process,
    /// Its base URL, with the route prefix if `--web.route-prefix` was given.
    pub url: String,
    pub port: u16,
    pub data_dir: PathBuf,
    _dirs: TempDir,
}

impl Pyrite {
    /// Starts pyrite without waiting for it.
    pub fn spawn(opts: PyriteOpts) -> Pyrite {
        let dirs = TempDir::new("pyrite");
        let port = opts.port.unwrap_or_else(free_port);
        let data_dir = opts.data_dir.clone().unwrap_or_else(|| dirs.0.join("data"));
        let mut cmd = Command::new(bin("pyrite"));
        // The listen address and log level are the test's when it gives them (with `port`).
        let given = |flag: &str| opts.extra_args.iter().any(|a| a.starts_with(flag));
        if !given("--web.listen-address=") {
            cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"));
        }
        if !given("--log.level=") {
            cmd.arg("--log.level=warn");
        }
        match opts.agent {
            true => cmd.arg("--agent").arg(format!("--storage.agent.path={}", data_dir.display())),
            false => cmd.arg(format!("--storage.tsdb.path={}", data_dir.display())),
        };
        cmd.arg("--web.enable-remote-write-receiver");
        if let Some(config) = &opts.config {
            let path = dirs.0.join("prometheus.yml");
            std::fs::write(&path, config).expect("write config");
            cmd.arg(format!("--config.file={}", path.display()));
        }
        if let Some(n) = opts.shards {
            cmd.arg(format!("--shards={n}"));
        }
        if let Some(d) = opts.driver {
            cmd.arg(format!("--runtime.driver={d}"));
        }
        cmd.args(&opts.extra_args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
        if let Some(block) = opts.seccomp {
            let filter = seccomp::Filter::new(block);
            // SAFETY: the closure runs between fork and exec and only makes two prctl system
            // calls on a filter built before the fork; it allocates nothing.
            unsafe {
                cmd.pre_exec(move || filter.install());
            }
        }
        let child = cmd.spawn().expect("start pyrite");
        // The route prefix: the flag's, or the path of the external URL.
        let flag = |name: &str| opts.extra_args.iter().find_map(|a| a.strip_prefix(name));
        let url_path = flag("--web.external-url=")
            .and_then(|u| u.split_once("://"))
            .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]));
        let prefix = flag("--web.route-prefix=").or(url_path).unwrap_or("").trim_end_matches('/');
        let url = format!("http://127.0.0.1:{port}{prefix}");
        Pyrite { process: Process { child }, url, port, data_dir, _dirs: dirs }
    }

    /// Starts pyrite and waits until `/-/ready` answers 200.
    /// A port another process took between [`free_port`] and the bind means another try on
    /// a fresh port, when the caller did not ask for a port.
    pub fn start(opts: PyriteOpts) -> Pyrite {
        let mut p = Pyrite::spawn(opts.clone());
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut tries = 0;
        loop {
            if let Some((status, err)) = p.process.exited() {
                if err.contains("Address already in use") && opts.port.is_none() && tries < 3 {
                    tries += 1;
                    p = Pyrite::spawn(opts.clone());
                    continue;
                }
                panic!("pyrite exited during start-up ({status}):\n{err}");
            }
            if http_get(&format!("{}/-/ready", p.url)).map(|(s, _)| s == 200).unwrap_or(false) {
                return p;
            }
            assert!(Instant::now() < deadline, "pyrite was not ready within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&format!("{}{path}", self.url)).expect("HTTP request to pyrite")
    }

    /// `data.result` of an instant query at `time` (seconds; None for now); panics on an error.
    pub fn query(&self, q: &str, time: Option<f64>) -> Value {
        let mut path = format!("/api/v1/query?query={}", encode(q));
        if let Some(t) = time {
            path.push_str(&format!("&time={t}"));
        }
        self.data(&path)["result"].clone()
    }

    /// `data.result` of a range query; panics on an error.
    pub fn query_range(&self, q: &str, start: f64, end: f64, step: f64) -> Value {
        self.data(&format!("/api/v1/query_range?query={}&start={start}&end={end}&step={step}", encode(q)))["result"]
            .clone()
    }

    /// The `data` of a successful API call.
    pub fn data(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        let v = json(&body);
        assert_eq!((status, v["status"].as_str()), (200, Some("success")), "{path}: {body}");
        v["data"].clone()
    }

    /// The sum of metric `name` in this server's `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        metric_sum(&self.get("/metrics").1, name, "")
    }

    /// Remote-writes series; returns the status and body.
    pub fn remote_write(&self, body: Vec<u8>) -> (u16, String) {
        remote_write_to(&self.url, &body)
    }
}

/// The sum of every sample of metric `name` whose line contains `filter`, in a text-format
/// exposition (a server's `/metrics`).
pub fn metric_sum(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter(|l| l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Percent-encodes a query parameter.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn response(r: Result<ureq::Response, ureq::Error>) -> Result<(u16, String), String> {
    match r {
        Ok(resp) => Ok((resp.status(), resp.into_string().map_err(|e| e.to_string())?)),
        Err(ureq::Error::Status(code, resp)) => Ok((code, resp.into_string().map_err(|e| e.to_string())?)),
        Err(e) => Err(e.to_string()),
    }
}

/// GET with a 10 s timeout; Err only if no HTTP answer came.
pub fn http_get(url: &str) -> Result<(u16, String), String> {
    http_get_within(url, Duration::from_secs(10))
}

/// GET with the given timeout; Err only if no HTTP answer came.
pub fn http_get_within(url: &str, timeout: Duration) -> Result<(u16, String), String> {
    response(ureq::get(url).timeout(timeout).call())
}

/// POST a form body.
pub fn http_post_form(url: &str, form: &[(&str, &str)]) -> Result<(u16, String), String> {
    http_post_form_within(url, form, Duration::from_secs(10))
}

/// A form POST with the given timeout; Err only if no HTTP answer came.
pub fn http_post_form_within(url: &str, form: &[(&str, &str)], timeout: Duration) -> Result<(u16, String), String> {
    response(ureq::post(url).timeout(timeout).send_form(form))
}

/// A target that answers every request with `response` (raw HTTP), or never answers if None.
pub fn fake_target(response: Option<&'static str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake target");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            match response {
                Some(r) => {
                    let _ = stream.write_all(r.as_bytes());
                }
                None => held.push(stream), // hang: keep the connection open, say nothing
            }
        }
    });
    addr
}

/// Parses JSON with simd-json.
pub fn json(body: &str) -> Value {
    let mut bytes = body.as_bytes().to_vec();
    simd_json::serde::from_slice(&mut bytes).unwrap_or_else(|e| panic!("invalid JSON ({e}): {body}"))
}

/// Polls `check` every 100 ms until it returns Some or `limit` passes.
pub fn eventually<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running upstream Prometheus (Debian's `prometheus` package), for differential tests.
pub struct Upstream {
    pub process: Process,
    pub url: String,
    dir: TempDir,
}

impl Upstream {
    /// Its `--storage.tsdb.path`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.0.join("data")
    }

    /// Starts `prometheus` on loopback with an empty configuration, its own data directory and
    /// the remote-write receiver on; waits until it is ready.
    pub fn start() -> Upstream {
        Upstream::start_with(&[])
    }

    /// [`Upstream::start`] with extra flags.
    pub fn start_with(extra_args: &[&str]) -> Upstream {
        Upstream::start_configured("global:\n  scrape_interval: 1h\n", extra_args)
    }

    /// [`Upstream::start`] with this configuration and extra flags; a `--web.route-prefix` flag
    /// becomes part of `url`, a `--web.listen-address=127.0.0.1:PORT` flag its port.
    pub fn start_configured(config_text: &str, extra_args: &[&str]) -> Upstream {
        let dir = TempDir::new("upstream");
        let config = dir.0.join("prometheus.yml");
        std::fs::write(&config, config_text).expect("write config");
        let prefix = extra_args
            .iter()
            .find_map(|a| a.strip_prefix("--web.route-prefix="))
            .map(|p| p.trim_end_matches('/').to_string())
            .unwrap_or_default();
        let given = extra_args.iter().find_map(|a| a.strip_prefix("--web.listen-address=127.0.0.1:"));
        let port = given.and_then(|p| p.parse().ok()).unwrap_or_else(free_port);
        let mut command = Command::new("prometheus");
        if given.is_none() {
            command.arg(format!("--web.listen-address=127.0.0.1:{port}"));
        }
        let child = command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.0.join("data").display()))
            .arg("--web.enable-remote-write-receiver")
            .arg("--log.level=warn")
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start upstream prometheus (installed by scripts/test: apt-get install prometheus)");
        let mut process = Process { child };
        let url = format!("http://127.0.0.1:{port}{prefix}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((status, err)) = process.exited() {
                panic!("upstream prometheus exited during start-up ({status}):\n{err}");
            }
            if http_get(&format!("{url}/-/ready")).map(|(s, _)| s == 200).unwrap_or(false) {
                return Upstream { process, url, dir };
            }
            assert!(Instant::now() < deadline, "upstream prometheus was not ready within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Remote-writes a snappy-compressed protobuf body to a server at `url`.
pub fn remote_write_to(url: &str, body: &[u8]) -> (u16, String) {
    let r = ureq::post(&format!("{url}/api/v1/write"))
        .set("Content-Encoding", "snappy")
        .set("Content-Type", "application/x-protobuf")
        .set("X-Prometheus-Remote-Write-Version", "0.1.0")
        .send_bytes(body);
    response(r).expect("remote write request")
}

/// A running pyrite-loadgen.
pub struct Loadgen {
    pub process: Process,
    /// `host:port` of each target.
    pub targets: Vec<String>,
}

impl Loadgen {
    pub fn start(targets: usize, series: usize) -> Loadgen {
        Loadgen::start_with(targets, series, &[])
    }

    /// [`Loadgen::start`] with more flags (profile, churn, client load).
    pub fn start_with(targets: usize, series: usize, extra_args: &[String]) -> Loadgen {
        let mut child = Command::new(bin("pyrite-loadgen"))
            .args(["--targets", &targets.to_string(), "--series", &series.to_string()])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start pyrite-loadgen");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut addrs = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("loadgen output");
            if line == "ready" {
                break;
            }
            addrs.push(line);
        }
        assert_eq!(addrs.len(), targets, "loadgen did not report its targets");
        Loadgen { process: Process { child }, targets: addrs }
    }

    /// A scrape config for these targets.
    pub fn scrape_config(&self, job: &str, interval: &str) -> String {
        let list: Vec<String> = self.targets.iter().map(|t| format!("\"{t}\"")).collect();
        format!(
            "global:\n  scrape_interval: {interval}\nscrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        )
    }
}

/// Series (labels, sorted) to samples `(t in ms, value)`, as a server's query API gives them.
pub type Matrix = BTreeMap<Vec<(String, String)>, Vec<(i64, f64)>>;

/// Every sample of `selector[range]` at `t` (seconds) through the query API at `url`
/// (Pyrite, Prometheus, VictoriaMetrics), each series with the labels of `extra` added.
pub fn matrix(url: &str, selector: &str, range: &str, t: f64, extra: &[(&str, &str)]) -> Matrix {
    let q = encode(&format!("{selector}[{range}]"));
    let (status, body) = http_get(&format!("{url}/api/v1/query?query={q}&time={t}")).expect("query");
    assert_eq!(status, 200, "{url}: {body}");
    let mut out = Matrix::new();
    for r in json(&body)["data"]["result"].as_array().expect("matrix") {
        let mut labels: Vec<(String, String)> = r["metric"]
            .as_object()
            .expect("labels")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("label value").to_string()))
            .chain(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        labels.sort();
        // Values as numbers: Prometheus 2.42 writes small ones with an exponent.
        let samples = r["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().expect("time") * 1000.0).round() as i64;
                (t, p[1].as_str().expect("value").parse::<f64>().expect("a number"))
            })
            .collect();
        out.insert(labels, samples);
    }
    out
}

/// Debian's VictoriaMetrics on a loopback port, deduplicating samples of a series within
/// `dedup` (`-dedup.minScrapeInterval`), with the latency offset off so that queries see the
/// newest samples; its URL.
pub fn victoria_metrics(dir: &std::path::Path, dedup: &str) -> (Process, String) {
    let port = free_port();
    let child = Command::new("victoria-metrics")
        .arg(format!("-storageDataPath={}", dir.display()))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-dedup.minScrapeInterval={dedup}"))
        .args(["-search.latencyOffset=0s", "-search.disableCache", "-loggerLevel=ERROR"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start victoria-metrics (installed by scripts/test)");
    let url = format!("http://127.0.0.1:{port}");
    let ready = eventually(Duration::from_secs(30), || {
        http_get(&format!("{url}/health")).ok().filter(|(s, _)| *s == 200).map(drop)
    });
    assert!(ready.is_some(), "victoria-metrics not ready");
    (Process::new(child), url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sum_adds_matching_lines_only() {
        let text = "# HELP a_total x\na_total{type=\"x\"} 2\na_total{type=\"y\"} 3\na_total_other 100\na_total 5\n";
        assert_eq!(metric_sum(text, "a_total", ""), 10.0);
        assert_eq!(metric_sum(text, "a_total", "type=\"y\""), 3.0);
        assert_eq!(metric_sum(text, "missing", ""), 0.0);
    }
}
