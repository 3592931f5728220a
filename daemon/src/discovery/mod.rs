//! Service discovery: a thread that reads `file_sd_configs` files (when inotify says they
//! changed, and every `refresh_interval`), fetches `http_sd_configs` URLs and looks up
//! `dns_sd_configs` names (SRV, A, AAAA, MX, NS: how ECS tasks registered in AWS Cloud Map are
//! found) every `refresh_interval`, and hands the target groups found to the scrape manager
//! whenever they change. Targets appear and vanish without a restart; a vanished target's series go stale.
//!
//! A source that fails keeps its last good groups (as upstream does), with a warning and a
//! counted failure; for files, each file that cannot be read keeps its own, and the others are
//! read on.
//!
//! Files are read on the thread itself. A URL or a name is looked up on a thread of its own,
//! one look-up of a source at a time, so that a URL that answers slowly (up to its 30 s
//! timeout) holds up no other source. Changed groups are handed over at once, then at most
//! every [`MIN_HANDOVER_GAP`], as upstream's discovery manager sends its updates: a file
//! rewritten without pause restarted the scrape of its targets thousands of times a second.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inotify::{Inotify, WatchDescriptor, WatchMask, Watches};
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
/// The shortest time between two hand-overs of changed groups (upstream's `updatert`).
const MIN_HANDOVER_GAP: Duration = Duration::from_secs(5);
/// How often the loop looks for the answers of look-ups running on their threads.
const LOOK_UP_POLL: Duration = Duration::from_millis(100);

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
    /// A look-up of this source runs on a thread now.
    looking_up: bool,
    /// The source was read or looked up at least once (its first answer is handed over
    /// without waiting for the gap).
    answered: bool,
}

/// Files are read on the discovery thread, between look-ups; the others are looked up on
/// threads of their own.
#[derive(Clone, PartialEq)]
enum SourceKind {
    Files(Vec<String>),
    Remote(Remote),
}

#[derive(Clone, PartialEq)]
enum Remote {
    Http(String),
    Dns { names: Vec<String>, kind: RecordType, port: u16 },
}

fn sources(config: &Config) -> Vec<Source> {
    let mut out = Vec::new();
    let mut add = |owner: Owner, files: &[FileSdConfig], urls: &[HttpSdConfig], names: &[DnsSdConfig]| {
        let files = files.iter().map(|f| (SourceKind::Files(f.files.clone()), f.refresh_interval));
        let urls = urls.iter().map(|h| (SourceKind::Remote(Remote::Http(h.url.clone())), h.refresh_interval));
        let names = names.iter().map(|d| {
            // The configuration was validated: the type is known.
            let kind = RecordType::parse(&d.kind).unwrap_or(RecordType::Srv);
            let names = Remote::Dns { names: d.names.clone(), kind, port: d.port.unwrap_or(0) };
            (SourceKind::Remote(names), d.refresh_interval)
        });
        for (kind, every) in files.chain(urls).chain(names) {
            let (owner, every, due) = (owner.clone(), every.as_std(), Instant::now());
            out.push(Source { owner, kind, every, due, last: Vec::new(), looking_up: false, answered: false });
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

/// Every group of the files matching `patterns`, each with `__meta_filepath`, and why each
/// file that could not be read failed. Such a file keeps its groups in `last`, as upstream
/// keeps a file's last good groups, and the other files are read on: one half-written file (or
/// a dangling symlink) left its job without any target. A missing file holds no groups.
fn read_files(patterns: &[String], last: &[TargetGroup]) -> (Vec<TargetGroup>, Vec<String>) {
    let (mut groups, mut errors) = (Vec::new(), Vec::new());
    // A file two patterns name is read once, as upstream keys groups by file.
    let mut files: Vec<PathBuf> = Vec::new();
    for file in patterns.iter().flat_map(|p| crate::files::expand_glob(p)) {
        if !files.contains(&file) {
            files.push(file);
        }
    }
    for file in files {
        let name = file.display().to_string();
        match read_file(&file, &name) {
            Ok(found) => groups.extend(found),
            Err(error) => {
                errors.push(format!("{name}: {error}"));
                let of_file = |g: &&TargetGroup| g.labels.get("__meta_filepath") == Some(&name);
                groups.extend(last.iter().filter(of_file).cloned());
            }
        }
    }
    (groups, errors)
}

/// The groups of one file (`name`), each with `__meta_filepath`; none if it does not exist
/// (a dangling symlink exists: it fails, as it does upstream, and keeps its last groups).
/// `pyrite check config` reads them the same way.
pub fn read_file(file: &Path, name: &str) -> Result<Vec<TargetGroup>, String> {
    let text = match crate::files::read_text(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && file.symlink_metadata().is_err() => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let json = name.to_ascii_lowercase().ends_with(".json");
    let found = parse_groups(&text, json, name)?;
    Ok(found
        .into_iter()
        .map(|mut g| {
            g.labels.insert("__meta_filepath".into(), name.to_string());
            g
        })
        .collect())
}

/// The groups an `http_sd_configs` URL answers, each with `__meta_url`; the request says how
/// often it is made, as upstream's does.
fn fetch(url: &str, every: Duration) -> Result<Vec<TargetGroup>, String> {
    let timeout = every.min(Duration::from_secs(30));
    use crate::http_client::{send, Payload};
    let headers =
        |_: &str, _: &str| Ok(vec![("X-Prometheus-Refresh-Interval-Seconds".into(), every.as_secs_f64().to_string())]);
    let response =
        send(&Default::default(), "GET", url, timeout, &headers, Payload::Empty).map_err(|e| format!("{url}: {e}"))?;
    if response.status() != 200 {
        return Err(format!("{url}: server returned HTTP status {}", response.status()));
    }
    let content_type = response.header("Content-Type").unwrap_or_default().trim().to_string();
    if !is_json(&content_type) {
        return Err(format!("{url}: unsupported content type {content_type:?}"));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(response.into_reader(), MAX_ANSWER_BYTES + 1), &mut text)
        .map_err(|e| format!("{url}: {e}"))?;
    if text.len() as u64 > MAX_ANSWER_BYTES {
        return Err(format!("{url}: the answer is larger than {MAX_ANSWER_BYTES} bytes"));
    }
    let groups = parse_groups(&text, true, url).map_err(|e| format!("{url}: {e}"))?;
    Ok(groups
        .into_iter()
        .map(|mut g| {
            g.labels.insert("__meta_url".into(), url.to_string());
            g
        })
        .collect())
}

/// Whether an answer's `Content-Type` is JSON, as upstream's HTTP discovery requires:
/// `application/json`, with no parameter but a UTF-8 charset.
fn is_json(content_type: &str) -> bool {
    let mut parts = content_type.splitn(2, ';');
    let mime = parts.next().unwrap_or_default();
    let charset = parts.next().map(|p| p.trim_start().to_ascii_lowercase());
    mime.eq_ignore_ascii_case("application/json")
        && charset.is_none_or(|c| matches!(c.as_str(), "charset=utf-8" | "charset=\"utf-8\""))
}

/// Watches the directories of file patterns with inotify, so that a changed file is re-read
/// at once rather than at the next `refresh_interval`. A thread of its own blocks on the
/// inotify descriptor and signals a change on a channel the discovery loop waits on. A
/// directory that cannot be watched (missing, no permission, out of watches) is logged, and
/// its files are read at each refresh only, as with no inotify at all.
struct Watcher {
    watches: Watches,
    /// The directories watched now.
    watching: BTreeMap<PathBuf, WatchDescriptor>,
    changes: flume::Receiver<()>,
}

impl Watcher {
    fn start() -> Option<Watcher> {
        let inotify = Inotify::init()
            .map_err(|error| tracing::warn!(%error, "inotify unavailable; file_sd files are read at each refresh only"))
            .ok()?;
        let watches = inotify.watches();
        let (tx, changes) = flume::bounded(1);
        std::thread::Builder::new()
            .name("file-sd-watch".into())
            .spawn(move || watch(inotify, tx))
            .map_err(|error| tracing::warn!(%error, "cannot start the file_sd watch thread"))
            .ok()?;
        Some(Watcher { watches, watching: BTreeMap::new(), changes })
    }

    /// Watches the directories of `sources`' file patterns, and those only.
    fn follow(&mut self, sources: &[Source]) {
        let dirs: BTreeSet<PathBuf> = sources
            .iter()
            .filter_map(|s| match &s.kind {
                SourceKind::Files(patterns) => Some(patterns),
                SourceKind::Remote(_) => None,
            })
            .flatten()
            .map(|p| {
                Path::new(p).parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
            })
            .collect();
        let watches = &mut self.watches;
        self.watching.retain(|dir, wd| {
            if dirs.contains(dir) {
                return true;
            }
            // Fails only for a directory that went away, whose watch went with it.
            let _ = watches.remove(wd.clone());
            false
        });
        let mask = WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::CLOSE_WRITE
            | WatchMask::MOVED_TO
            | WatchMask::MOVED_FROM;
        for dir in dirs {
            if self.watching.contains_key(&dir) {
                continue;
            }
            match self.watches.add(&dir, mask) {
                Ok(wd) => {
                    self.watching.insert(dir, wd);
                }
                Err(error) => tracing::warn!(
                    dir = %dir.display(),
                    %error,
                    "cannot watch a file_sd directory; its files are read at each refresh only"
                ),
            }
        }
    }

    /// Waits up to `timeout` for a change; true if one came.
    fn wait(&self, timeout: Duration) -> bool {
        match self.changes.recv_timeout(timeout) {
            Ok(()) => true,
            Err(flume::RecvTimeoutError::Timeout) => false,
            Err(flume::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(timeout);
                false
            }
        }
    }
}

/// The watch thread: signals every batch of events (at most one signal pending) until reading
/// fails, which ends it (the discovery loop then reads at each refresh only).
fn watch(mut inotify: Inotify, changed: flume::Sender<()>) {
    let mut buf = [0u8; 4096];
    loop {
        match inotify.read_events_blocking(&mut buf) {
            Ok(_) => {
                let _ = changed.try_send(());
            }
            Err(error) => {
                tracing::warn!(%error, "reading inotify failed; file_sd files are read at each refresh only");
                return;
            }
        }
    }
}

/// What the discovery thread works with.
pub struct DiscoveryThread {
    pub discovery: Arc<Discovery>,
    /// The configuration in force names the sources.
    pub config: Arc<LiveConfig>,
    pub metrics: Arc<Metrics>,
    /// `--dns.server`.
    pub dns_server: Option<std::net::SocketAddr>,
    /// Called once new groups are published.
    pub on_change: Box<dyn Fn() + Send>,
}

/// A look-up's groups, for the source at an index of a generation of sources (a new
/// configuration starts a new one, and answers for the old are dropped).
type Found = (u64, usize, Result<Vec<TargetGroup>, String>);

/// Looks up a source on a thread of its own, which counts a failure as upstream's metric of
/// its kind and sends what it found to `found` for the source at `at`.
fn look_up(env: &DiscoveryThread, remote: &Remote, every: Duration, found: flume::Sender<Found>, at: (u64, usize)) {
    let (remote, dns_server, answer, metrics) = (remote.clone(), env.dns_server, found.clone(), env.metrics.clone());
    let started = crate::threads::named("sd-look-up").spawn(move || {
        let (groups, failures) = match &remote {
            Remote::Http(url) => (fetch(url, every), &metrics.sd_http_failures),
            Remote::Dns { names, kind, port } => {
                (dns::discover(dns_server, names, *kind, *port), &metrics.sd_dns_lookup_failures)
            }
        };
        if groups.is_err() {
            failures.inc();
        }
        let _ = answer.send((at.0, at.1, groups));
    });
    if let Err(e) = started {
        // A system out of threads: a failed look-up, tried again at the next refresh.
        let _ = found.send((at.0, at.1, Err(format!("cannot start a thread to look the targets up: {e}"))));
    }
}

/// Takes what a source's read or look-up found; true if its groups changed.
fn take(source: &mut Source, groups: Vec<TargetGroup>) -> bool {
    source.answered = true;
    let changed = groups != source.last;
    if changed {
        source.last = groups;
    }
    changed
}

/// Publishes every source's groups, by job and by Alertmanager set.
fn hand_over(env: &DiscoveryThread, sources: &[Source]) {
    let mut by_job: BTreeMap<String, Vec<TargetGroup>> = BTreeMap::new();
    let mut by_set: BTreeMap<usize, Vec<TargetGroup>> = BTreeMap::new();
    for s in sources {
        let found = s.last.iter().cloned();
        match &s.owner {
            Owner::Job(job) => by_job.entry(job.clone()).or_default().extend(found),
            Owner::Alertmanagers(i) => by_set.entry(*i).or_default().extend(found),
        }
    }
    *env.discovery.groups.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(by_job);
    *env.discovery.alertmanager_groups.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(by_set);
    for consumer in ["scrape", "notify"] {
        env.metrics.sd_updates.get_or_create(&vec![("name", consumer.to_string())]).inc();
    }
    (env.on_change)();
}

/// `fresh` sources with the groups their like in `old` found (same owner, kind and
/// interval): a new configuration must not hand over a source's targets as none until its
/// first look-up answers (its targets' series would go stale meanwhile).
fn carried_over(mut fresh: Vec<Source>, old: Vec<Source>) -> Vec<Source> {
    let mut old: Vec<Option<Source>> = old.into_iter().map(Some).collect();
    for source in &mut fresh {
        let like = old.iter_mut().find(|o| {
            o.as_ref().is_some_and(|o| o.owner == source.owner && o.kind == source.kind && o.every == source.every)
        });
        if let Some(like) = like.and_then(Option::take) {
            (source.last, source.answered) = (like.last, like.answered);
        }
    }
    fresh
}

/// The discovery thread's loop; runs until the process ends.
pub fn run(env: DiscoveryThread) {
    let mut config = env.config.current();
    let mut sources = sources(&config);
    let mut watcher = Watcher::start();
    if let Some(w) = &mut watcher {
        w.follow(&sources);
    }
    let (found_tx, found) = flume::unbounded::<Found>();
    let mut generation = 0;
    // The first pass, and the first after a new configuration, hand over even if nothing was
    // found, and at once; so does a source's first answer.
    let (mut changed, mut urgent) = (true, true);
    let mut handed: Option<Instant> = None;
    loop {
        let now = Instant::now();
        for (i, source) in sources.iter_mut().enumerate().filter(|(_, s)| s.due <= now && !s.looking_up) {
            source.due = now + source.every;
            match &source.kind {
                SourceKind::Files(patterns) => {
                    let (groups, errors) = read_files(patterns, &source.last);
                    for error in errors {
                        env.metrics.sd_file_read_errors.inc();
                        tracing::warn!(owner = ?source.owner, %error, "cannot read a file_sd file; keeping its last targets");
                    }
                    let first = !source.answered;
                    let new = take(source, groups);
                    (changed, urgent) = (changed | new, urgent | (first && new));
                }
                SourceKind::Remote(remote) => {
                    look_up(&env, remote, source.every, found_tx.clone(), (generation, i));
                    source.looking_up = true;
                }
            }
        }
        for (of, i, groups) in found.try_iter() {
            if let Some(source) = sources.get_mut(i).filter(|_| of == generation) {
                source.looking_up = false;
                let first = !source.answered;
                let new = match groups {
                    Ok(groups) => take(source, groups),
                    Err(error) => {
                        source.answered = true;
                        tracing::warn!(owner = ?source.owner, %error, "service discovery failed; keeping the last targets");
                        false
                    }
                };
                (changed, urgent) = (changed | new, urgent | (first && new));
            }
        }
        let gap_left = handed.map_or(Duration::ZERO, |t| MIN_HANDOVER_GAP.saturating_sub(t.elapsed()));
        if changed && (urgent || gap_left.is_zero()) {
            hand_over(&env, &sources);
            (changed, urgent, handed) = (false, false, Some(Instant::now()));
        }
        let next_due = sources
            .iter()
            .filter(|s| !s.looking_up)
            .map(|s| s.due)
            .min()
            .map_or(TICK, |d| d.saturating_duration_since(Instant::now()));
        let wait = next_due.min(TICK).min(if changed { gap_left } else { TICK });
        // Answers do not wake the loop: while look-ups run, it looks for them often.
        let wait = if sources.iter().any(|s| s.looking_up) { wait.min(LOOK_UP_POLL) } else { wait };
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
                sources = carried_over(self::sources(&config), sources);
                generation += 1;
                if let Some(w) = &mut watcher {
                    w.follow(&sources);
                }
                (changed, urgent) = (true, true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As upstream's `matchContentType`: JSON, with a UTF-8 charset at most (red team: an
    /// HTML page was taken as targets).
    #[test]
    fn only_json_answers_are_taken() {
        for good in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert!(is_json(good), "{good}");
        }
        for bad in
            ["", "text/html", "application/json; charset=latin1", "application/jsonx", "text/plain; application/json"]
        {
            assert!(!is_json(bad), "{bad}");
        }
    }
}
