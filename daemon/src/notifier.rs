//! Sending alerts to Alertmanager: a bounded queue filled by rule evaluation and drained by the
//! `notifier` thread in batches of up to 256, posted (API v2) to every Alertmanager of every
//! `alerting.alertmanagers` set at once, so a slow one delays no other.
//!
//! Alerts get the external labels and `alert_relabel_configs` when queued, and each set's own
//! `alert_relabel_configs` when sent. A full queue drops its oldest alerts and counts them; a
//! failed post is counted and not retried (firing alerts are sent again every resend delay).

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyrite_core::config::{AlertmanagerConfig, Config};
use pyrite_core::labels::Labels;
use pyrite_core::relabel::relabel;
use pyrite_core::rules::{Annotations, DueAlert};
use serde_json::{json, Value};

use crate::discovery::Discovery;
use crate::live_config::LiveConfig;
use crate::metrics::Metrics;

/// Largest batch posted at once (upstream's).
const MAX_BATCH: usize = 256;

/// One alert as Alertmanager's API takes it (times in Unix ms).
#[derive(Debug, Clone)]
struct Notification {
    labels: Labels,
    annotations: Annotations,
    starts_at: i64,
    ends_at: i64,
    generator_url: String,
}

/// An Alertmanager found for a set, or dropped by its relabeling.
#[derive(Debug, Clone, PartialEq)]
pub struct Alertmanager {
    pub url: String,
    pub set: usize,
}

pub struct Notifier {
    queue: Mutex<VecDeque<Notification>>,
    capacity: usize,
    wake: (flume::Sender<()>, flume::Receiver<()>),
    /// The `alerting` section and external labels in force.
    config: Arc<LiveConfig>,
    /// Where discovered Alertmanagers are.
    discovery: Arc<Discovery>,
    metrics: Arc<Metrics>,
    /// `--web.external-url`, for alerts' generator URLs.
    external_url: String,
}

impl Notifier {
    /// A queue of `capacity` alerts (`--alertmanager.notification-queue-capacity`).
    pub fn new(
        capacity: usize,
        config: Arc<LiveConfig>,
        discovery: Arc<Discovery>,
        metrics: Arc<Metrics>,
        external_url: String,
    ) -> Self {
        metrics.notification_queue_capacity.set(capacity.max(1) as i64);
        Notifier {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            wake: flume::bounded(1),
            config,
            discovery,
            metrics,
            external_url,
        }
    }

    /// The Alertmanagers alerts go to, and the URLs relabeling dropped (`/api/v1/alertmanagers`).
    pub fn alertmanagers(&self) -> (Vec<Alertmanager>, Vec<String>) {
        resolve(&self.config.current(), &self.discovery.alertmanager_groups())
    }

    /// Queues due alerts (never blocks on the network).
    pub fn queue(&self, due: Vec<DueAlert>) {
        let config = self.config.current();
        if due.is_empty() || config.alerting.alertmanagers.is_empty() {
            return;
        }
        let external = &config.global.external_labels;
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        for DueAlert { alert, expr } in due {
            let Some(labels) =
                relabel(&config.alerting.alert_relabel_configs, &alert.labels.clone().with_external(external))
            else {
                continue;
            };
            let escaped: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
            queue.push_back(Notification {
                labels,
                annotations: alert.annotations,
                starts_at: alert.fired_at.unwrap_or(alert.active_at),
                ends_at: alert.resolved_at.unwrap_or(alert.valid_until),
                generator_url: format!("{}/graph?g0.expr={escaped}&g0.tab=1", self.external_url),
            });
        }
        let overflow = queue.len().saturating_sub(self.capacity);
        if overflow > 0 {
            queue.drain(..overflow);
            self.metrics.notifications_dropped.inc_by(overflow as u64);
            tracing::warn!(dropped = overflow, "alert notification queue full, oldest alerts dropped");
        }
        self.metrics.notification_queue_length.set(queue.len() as i64);
        let _ = self.wake.0.try_send(());
    }

    /// The next batch, with how many alerts stay queued.
    fn take_batch(&self) -> (Vec<Notification>, usize) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let n = queue.len().min(MAX_BATCH);
        (queue.drain(..n).collect(), queue.len())
    }
}

/// The Alertmanagers of every set: static and discovered targets through the set's relabeling.
fn resolve(
    config: &Config,
    discovered: &std::collections::BTreeMap<usize, Vec<pyrite_core::discovery::TargetGroup>>,
) -> (Vec<Alertmanager>, Vec<String>) {
    let (mut active, mut dropped) = (Vec::new(), Vec::new());
    for (set, am) in config.alerting.alertmanagers.iter().enumerate() {
        let statics = am.discovery.static_configs.iter().map(|s| (&s.targets, &s.labels));
        let found = discovered.get(&set).into_iter().flatten().map(|g| (&g.targets, &g.labels));
        for (targets, labels) in statics.chain(found) {
            for target in targets {
                let mut pairs: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                pairs.push(("__address__".into(), target.clone()));
                pairs.push(("__scheme__".into(), am.scheme.clone()));
                pairs.push(("__alerts_path__".into(), format!("{}/api/v2/alerts", am.path_prefix)));
                let url = |l: &Labels| {
                    format!("{}://{}{}", l.get("__scheme__"), l.get("__address__"), l.get("__alerts_path__"))
                };
                let labels = Labels::from_pairs(pairs);
                match relabel(&am.relabel_configs, &labels) {
                    Some(kept) => active.push(Alertmanager { url: url(&kept), set }),
                    None => dropped.push(url(&labels)),
                }
            }
        }
    }
    active.dedup();
    (active, dropped)
}

/// The JSON body of a batch for one set (its `alert_relabel_configs` applied); None if empty.
fn body(batch: &[Notification], set: &AlertmanagerConfig) -> Option<String> {
    let alerts: Vec<Value> = batch
        .iter()
        .filter_map(|n| {
            let labels = relabel(&set.alert_relabel_configs, &n.labels)?;
            Some(json!({
                "labels": &labels,
                "annotations": &n.annotations,
                "startsAt": pyrite_core::calendar::rfc3339(n.starts_at),
                "endsAt": pyrite_core::calendar::rfc3339(n.ends_at),
                "generatorURL": n.generator_url,
            }))
        })
        .collect();
    (!alerts.is_empty()).then(|| Value::Array(alerts).to_string())
}

fn post(url: &str, body: &str, set: &AlertmanagerConfig) -> Result<(), String> {
    use crate::http_client::{send, Payload};
    let headers = |_: &str, _: &str| Ok(vec![("Content-Type".to_string(), "application/json".to_string())]);
    let answer = send(&set.http, "POST", url, set.timeout.as_std(), &headers, Payload::Text(body))?;
    match answer.status() {
        200..=299 => Ok(()),
        code => Err(format!("bad response status {code}")),
    }
}

/// The most threads one batch is sent from.
const MAX_SENDERS: usize = 16;

/// Sends `batch` to one Alertmanager, as its set configures, and counts it as upstream 3.x
/// does: the alerts of a failed attempt as errors; those of one that succeeded as sent, with
/// the time it took.
fn send_batch(metrics: &Metrics, batch: &[Notification], config: &Config, am: &Alertmanager) {
    let Some(set) = config.alerting.alertmanagers.get(am.set) else { return };
    let Some(body) = body(batch, set) else { return };
    let count = batch.len() as u64;
    let labels = vec![("alertmanager", am.url.clone())];
    let started = std::time::Instant::now();
    match post(&am.url, &body, set) {
        Ok(()) => {
            metrics.notifications_latency.observe(&labels, started.elapsed().as_secs_f64());
            metrics.notifications_sent.get_or_create(&labels).inc_by(count);
        }
        Err(error) => {
            tracing::warn!(alertmanager = am.url.as_str(), %error, count, "error sending alerts");
            metrics.notifications_errors.get_or_create(&labels).inc_by(count);
        }
    }
}

/// Follows the Alertmanagers discovered (`known`: those of the last call): a new one's counts
/// exist from then on at 0, as upstream's, so that the mixin's `errors / sent` of one that
/// never answers is +Inf rather than nothing; a gone one's series go, as upstream's.
fn follow(metrics: &Metrics, known: &mut BTreeSet<String>, discovered: &[Alertmanager]) {
    let now: BTreeSet<String> = discovered.iter().map(|am| am.url.clone()).collect();
    for url in now.difference(known) {
        let labels = vec![("alertmanager", url.clone())];
        drop(metrics.notifications_sent.get_or_create(&labels));
        drop(metrics.notifications_errors.get_or_create(&labels));
    }
    for url in known.difference(&now) {
        let labels = vec![("alertmanager", url.clone())];
        metrics.notifications_sent.remove(&labels);
        metrics.notifications_errors.remove(&labels);
    }
    metrics.notifications_latency.retain(|labels| labels.iter().all(|(_, url)| now.contains(url)));
    *known = now;
}

/// The notifier thread's loop; runs until the process ends.
pub fn run(notifier: Arc<Notifier>) {
    let mut known = BTreeSet::new();
    loop {
        let _ = notifier.wake.1.recv_timeout(std::time::Duration::from_secs(1));
        let (discovered, _) = notifier.alertmanagers();
        notifier.metrics.alertmanagers_discovered.set(discovered.len() as i64);
        follow(&notifier.metrics, &mut known, &discovered);
        loop {
            let (batch, left) = notifier.take_batch();
            notifier.metrics.notification_queue_length.set(left as i64);
            if batch.is_empty() {
                break;
            }
            let config = notifier.config.current();
            let (active, _) = notifier.alertmanagers();
            // Every Alertmanager at once, as upstream: a slow one does not delay the others. A
            // discovery answer can name thousands, so at most `MAX_SENDERS` threads take them
            // one after another, each the next not yet taken.
            let next = AtomicUsize::new(0);
            let send = || {
                while let Some(am) = active.get(next.fetch_add(1, Ordering::Relaxed)) {
                    send_batch(&notifier.metrics, &batch, &config, am);
                }
            };
            std::thread::scope(|scope| {
                for _ in 0..active.len().min(MAX_SENDERS) {
                    let thread = std::thread::Builder::new().name("notifier-send".into()).spawn_scoped(scope, send);
                    if thread.is_err() {
                        // No thread to be had: send from here rather than not at all.
                        send();
                    }
                }
            });
        }
    }
}
