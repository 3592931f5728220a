//! Service discovery: a thread that reads `file_sd_configs` files (when inotify says they
//! changed, and every `refresh_interval`), fetches `http_sd_configs` URLs and looks up
//! `dns_sd_configs` names (SRV, A, AAAA, MX, NS: how ECS tasks registered in AWS Cloud Map are
//! found) every `refresh_interval`, and hands the target groups found to the scrape manager
//! whenever they change. Targets appear and vanish without a restart; a vanished target's series go stale.
//!
//! A source that fails keeps its last good groups (as upstream does), with a warning and a
//! counted failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyrite_core::config::{Config, DnsSdConfig, FileSdConfig, HttpSdConfig};
use pyrite_core::discovery::{parse_groups, TargetGroup};
use pyrite_core::dns::RecordType;

use crate::live_config::LiveConfig;
use crate::metrics::Metrics;

mod dns;

/// How often the thread looks for a new configuration, at the least.
const TICK: Duration = Duration::from_secs(1);
/// Largest `http_sd_configs` answer read.
const MAX_ANSWER_BYTES: u64 = 16 << 20;

/// The groups found so far, by job name and by Alertmanager set, and the thread's wake-up line.
pub struct Discovery {
    groups: Mutex<Arc<BTreeMap<String, Vec<TargetGroup>>>>,
    alertmanager_groups: Mutex<Arc<BTreeMap<usize, Vec<TargetGroup>>>>,
    config_changed: (flume::Sender<()>, flume::Receiver<()>),
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery {
            groups: Mutex::new(Arc::default()),
            alertmanager_groups: Mutex::new(Arc::default()),
            config_changed: flume::bounded(1),
        }
    }
}

impl Discovery {
    /// The target groups discovered for each job.
    pub fn groups(&self) -> Arc<BTreeMap<String, Vec<TargetGroup>>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The groups discovered for each `alerting.alertmanagers` entry, by its index.
    pub fn alertmanager_groups(&self) -> Arc<BTreeMap<usize, Vec<TargetGroup>>> {
        self.alertmanager_groups.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Tells the thread that the configuration changed, so it refreshes every source now.
    pub fn reconfigure(&self) {
        let _ = self.config_changed.0.try_send(());
    }
}

/// Whose targets a source finds.
#[derive(Debug, Clone, PartialEq)]
enum Owner {
    Job(String),
    Alertmanagers(usize),
}

/// One source of groups of a job or Alertmanager set, with when it is next due.
struct Source {
    owner: Owner,
    kind: SourceKind,
    every: Duration,
    due: Instant,
    /// The last groups read successfully.
    last: Vec<TargetGroup>,
}

enum SourceKind {
    Files(Vec<String>),
    Http(String),
    Dns { names: Vec<String>, kind: RecordType, port: u16 },
}

fn sources(config: &Config) -> Vec<Source> {
    let mut out = Vec::new();
    let mut add = |owner: Owner, files: &[FileSdConfig], urls: &[HttpSdConfig], names: &[DnsSdConfig]| {
        let files = files.iter().map(|f| (SourceKind::Files(f.files.clone()), f.refresh_interval));
        let urls = urls.iter().map(|h| (SourceKind::Http(h.url.clone()), h.refresh_interval));
        let names = names.iter().map(|d| {
            // The configuration was validated: the type is known.
            let kind = RecordType::parse(&d.kind).unwrap_or(RecordType::Srv);
            (SourceKind::Dns { names: d.names.clone(), kind, port: d.port.unwrap_or(0) }, d.refresh_interval)
        });
        for (kind, every) in files.chain(urls).chain(names) {
            let (owner, every, due) = (owner.clone(), every.as_std(), Instant::now());
            out.push(Source { owner, kind, every, due, last: Vec::new() });
        }
    };
    for sc in &config.scrape_configs {
        add(Owner::Job(sc.job_name.clone()), &sc.file_sd_configs, &sc.http_sd_configs, &sc.dns_sd_configs);
    }
    for (i, am) in config.alerting.alertmanagers.iter().enumerate() {
        let d = &am.discovery;
        add(Owner::Alertmanagers(i), &d.file_sd_configs, &d.http_sd_configs, &d.dns_sd_configs);
    }
    out
}

/// Every group of the files matching `patterns`, each with `__meta_filepath`. A missing file
/// holds no groups; a malformed one is an error.
fn read_files(patterns: &[String]) -> Result<Vec<TargetGroup>, String> {
    let mut groups = Vec::new();
    for file in patterns.iter().flat_map(|p| crate::files::expand_glob(p)) {
        let text = match crate::files::read_text(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", file.display())),
        };
        let name = file.display().to_string();
        let json = name.to_ascii_lowercase().ends_with(".json");
        let found = parse_groups(&text, json, &name).map_err(|e| format!("{name}: {e}"))?;
        groups.extend(found.into_iter().map(|mut g| {
            g.labels.insert("__meta_filepath".into(), name.clone());
            g
        }));
    }
    Ok(groups)
}

/// The groups an `http_sd_configs` URL answers, each with `__meta_url`.
fn fetch(url: &str, timeout: Duration) -> Result<Vec<TargetGroup>, String> {
    let response = ureq::get(url)
        .timeout(timeout)
        .set("X-Prometheus-Refresh-Interval-Seconds", &timeout.as_secs().to_string())
        .call()
        .map_err(|e| format!("{url}: {e}"))?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(response.into_reader(), MAX_ANSWER_BYTES), &mut text)
        .map_err(|e| format!("{url}: {e}"))?;
    let groups = parse_groups(&text, true, url).map_err(|e| format!("{url}: {e}"))?;
    Ok(groups
        .into_iter()
        .map(|mut g| {
            g.labels.insert("__meta_url".into(), url.to_string());
            g
        })
        .collect())
}

/// Watches the directories of file patterns with inotify, so that a changed file is re-read
/// at once rather than at the next refresh.
struct Watcher {
    fd: i32,
}

impl Watcher {
    fn new(sources: &[Source]) -> Option<Watcher> {
        // SAFETY: plain system calls on a descriptor this struct owns and closes on drop.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        let mask = libc::IN_CREATE | libc::IN_DELETE | libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO | libc::IN_MOVED_FROM;
        let dirs: std::collections::BTreeSet<PathBuf> = sources
            .iter()
            .filter_map(|s| match &s.kind {
                SourceKind::Files(patterns) => Some(patterns),
                SourceKind::Http(_) | SourceKind::Dns { .. } => None,
            })
            .flatten()
            .map(|p| {
                Path::new(p).parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
            })
            .collect();
        for dir in dirs {
            let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else { continue };
            // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
            unsafe { libc::inotify_add_watch(fd, c.as_ptr(), mask) };
        }
        Some(Watcher { fd })
    }

    /// Waits up to `timeout` for a change; true if one came (its events are drained).
    fn wait(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd { fd: self.fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd; a buffer read into with its own length.
        unsafe {
            if libc::poll(&mut pfd, 1, timeout.as_millis() as i32) <= 0 {
                return false;
            }
            let mut buf = [0u8; 4096];
            while libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) > 0 {}
        }
        true
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// What the discovery thread works with.
pub struct DiscoveryThread {
    pub discovery: Arc<Discovery>,
    /// The configuration in force names the sources.
    pub config: Arc<LiveConfig>,
    pub metrics: Arc<Metrics>,
    /// `--discovery.dns-server`.
    pub dns_server: Option<String>,
    /// Called once new groups are published.
    pub on_change: Box<dyn Fn() + Send>,
}

/// The discovery thread's loop; runs until the process ends.
pub fn run(env: DiscoveryThread) {
    let mut config = env.config.current();
    let mut sources = sources(&config);
    let mut watcher = Watcher::new(&sources);
    // The first pass, and the first after a new configuration, apply even if nothing was found.
    let mut changed = true;
    loop {
        let now = Instant::now();
        for source in sources.iter_mut().filter(|s| s.due <= now) {
            source.due = now + source.every;
            let found = match &source.kind {
                SourceKind::Files(patterns) => read_files(patterns),
                SourceKind::Http(url) => fetch(url, source.every.min(Duration::from_secs(30))),
                SourceKind::Dns { names, kind, port } => dns::discover(env.dns_server.as_deref(), names, *kind, *port),
            };
            match found {
                Ok(groups) if groups != source.last => {
                    source.last = groups;
                    changed = true;
                }
                Ok(_) => {}
                Err(error) => {
                    env.metrics.discovery_failures.inc();
                    tracing::warn!(owner = ?source.owner, %error, "service discovery failed; keeping the last targets");
                }
            }
        }
        if changed {
            let mut by_job: BTreeMap<String, Vec<TargetGroup>> = BTreeMap::new();
            let mut by_set: BTreeMap<usize, Vec<TargetGroup>> = BTreeMap::new();
            for s in &sources {
                let found = s.last.iter().cloned();
                match &s.owner {
                    Owner::Job(job) => by_job.entry(job.clone()).or_default().extend(found),
                    Owner::Alertmanagers(i) => by_set.entry(*i).or_default().extend(found),
                }
            }
            *env.discovery.groups.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(by_job);
            *env.discovery.alertmanager_groups.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(by_set);
            (env.on_change)();
            changed = false;
        }
        let next_due =
            sources.iter().map(|s| s.due).min().map_or(TICK, |d| d.saturating_duration_since(Instant::now()));
        let wait = next_due.min(TICK);
        let files_changed = match &watcher {
            Some(w) => w.wait(wait),
            None => {
                std::thread::sleep(wait);
                false
            }
        };
        if files_changed {
            sources.iter_mut().filter(|s| matches!(s.kind, SourceKind::Files(_))).for_each(|s| s.due = Instant::now());
        }
        if env.discovery.config_changed.1.try_recv().is_ok() {
            let fresh = env.config.current();
            if !Arc::ptr_eq(&fresh, &config) {
                config = fresh;
                sources = self::sources(&config);
                watcher = Watcher::new(&sources);
                changed = true;
            }
        }
    }
}
