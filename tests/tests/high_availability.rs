//! High availability as upstream practises it, run with the files of `deploy/ha/` (host names,
//! ports and intervals substituted): two Pyrite replicas that differ only in their `replica`
//! external label scrape the same node exporter (Debian's), evaluate the same rules, send
//! their alerts to both Alertmanagers of a cluster (Debian's, gossiping on loopback) and
//! remote-write to one VictoriaMetrics (Debian's) deduplicating at the scrape interval.
//!
//! Checked: each Alertmanager holds the alert once, without the replica label, and the
//! receiver is notified once; VictoriaMetrics holds each series once, without the replica
//! label, with one sample per deduplication interval, each of them a sample one of the
//! replicas took. With replica a stopped, b alone keeps the alert active and the series fed.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyrite_tests::{
    eventually, free_port, http_get, json, matrix, metric_sum, victoria_metrics, Matrix, Process, Pyrite, PyriteOpts,
    TempDir,
};
use serde_json::Value;

/// The scrape and evaluation interval of the test, in place of the files' 15s; also
/// VictoriaMetrics' `-dedup.minScrapeInterval`, as it documents for HA pairs.
const INTERVAL_MS: i64 = 1000;

fn deploy(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/ha").join(file)
}

/// `deploy/ha/<file>` with each `(from, to)` replaced; every `from` must occur, so that the
/// files cannot drift away from what this test runs.
fn templated(file: &str, substitutions: &[(&str, String)]) -> String {
    let mut text = std::fs::read_to_string(deploy(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    for (from, to) in substitutions {
        assert!(text.contains(from), "{file} no longer contains {from:?}");
        text = text.replace(from, to);
    }
    text
}

/// The notifications the receiver got: their JSON bodies.
type Notifications = Arc<Mutex<Vec<Value>>>;

/// The receiver Alertmanager notifies (a webhook): records each POST's body, answers 200.
fn receiver() -> (u16, Notifications) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    let port = listener.local_addr().expect("address").port();
    let received = Notifications::default();
    let store = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice(&body) {
                    store.lock().unwrap().push(v);
                }
            }
            let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, received)
}

struct Alertmanager {
    _process: Process,
    url: String,
    cluster_port: u16,
}

/// Debian's Alertmanager with `deploy/ha/alertmanager.yml`, gossiping on loopback with
/// `peer` when given. Peers wait 3 s for each other before notifying (15 s by default).
fn alertmanager(dir: &Path, receiver_port: u16, peer: Option<u16>) -> Alertmanager {
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("alertmanager.yml");
    let text = templated(
        "alertmanager.yml",
        &[("alert-receiver:5001", format!("127.0.0.1:{receiver_port}")), ("group_wait: 30s", "group_wait: 1s".into())],
    );
    std::fs::write(&config, text).unwrap();
    let (port, cluster_port) = (free_port(), free_port());
    let mut args = vec![
        format!("--config.file={}", config.display()),
        format!("--storage.path={}", dir.join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        format!("--cluster.listen-address=127.0.0.1:{cluster_port}"),
        "--cluster.peer-timeout=3s".to_string(),
    ];
    args.extend(peer.map(|p| format!("--cluster.peer=127.0.0.1:{p}")));
    let process = Process::quiet("prometheus-alertmanager", &args);
    let url = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(20), || http_get(&format!("{url}/-/ready")).ok().filter(|(s, _)| *s == 200))
        .expect("alertmanager ready");
    Alertmanager { _process: process, url, cluster_port }
}

/// The number of members of the cluster `am` belongs to, as it reports.
fn cluster_size(am: &Alertmanager) -> usize {
    let (_, body) = http_get(&format!("{}/api/v2/status", am.url)).expect("alertmanager status");
    json(&body)["cluster"]["peers"].as_array().map_or(0, Vec::len)
}

/// The active alerts named `name` that `am` holds.
fn alerts(am: &Alertmanager, name: &str) -> Vec<Value> {
    let (status, body) = http_get(&format!("{}/api/v2/alerts", am.url)).expect("alertmanager alerts");
    assert_eq!(status, 200, "{body}");
    let all = json(&body).as_array().cloned().unwrap_or_default();
    all.into_iter().filter(|a| a["labels"]["alertname"] == name && a["status"]["state"] == "active").collect()
}

/// How many alert posts `replica` has sent to `am`.
fn posts(replica: &Pyrite, am: &Alertmanager) -> f64 {
    let (_, text) = replica.get("/metrics");
    metric_sum(&text, "prometheus_notifications_sent_total", &format!("\"{}/api/v2/alerts\"", am.url))
}

/// A replica started from `deploy/ha/prometheus-<name>.yml`.
fn replica(name: &str, substitutions: &[(&str, String)]) -> Pyrite {
    let config = templated(&format!("prometheus-{name}.yml"), substitutions);
    Pyrite::start(PyriteOpts {
        config: Some(config),
        // Firing alerts are sent every second, valid for four evaluation intervals: an
        // Alertmanager no longer told about an alert resolves it within seconds.
        extra_args: vec!["--rules.alert.resend-delay=1s".into()],
        ..PyriteOpts::default()
    })
}

/// VictoriaMetrics' deduplication interval holding `t`: `((k - 1) * d, k * d]`, named by k.
fn interval(t: i64) -> i64 {
    (t + INTERVAL_MS - 1).div_euclid(INTERVAL_MS)
}

/// The samples of `m` in `(from, to]` (ms) that are numbers, in the series that have any.
fn window(m: &Matrix, from: i64, to: i64) -> Matrix {
    m.iter()
        .map(|(labels, samples)| {
            let kept = samples.iter().copied().filter(|(t, v)| *t > from && *t <= to && !v.is_nan()).collect();
            (labels.clone(), kept)
        })
        .filter(|(_, samples): &(_, Vec<_>)| !samples.is_empty())
        .collect()
}

/// How `store` differs, over `(from, to]` (ms), from the replicas' samples deduplicated:
/// the same series, and per series one sample in each interval where a replica has one,
/// each of them a sample a replica took. None if it does not.
fn dedup_difference(replicas: &[&Matrix], store: &Matrix, from: i64, to: i64) -> Option<String> {
    let mut taken = Matrix::new();
    for m in replicas {
        for (labels, samples) in window(m, from, to) {
            taken.entry(labels).or_default().extend(samples);
        }
    }
    let stored = window(store, from, to);
    let unexpected: Vec<_> = stored.keys().filter(|k| !taken.contains_key(*k)).take(2).collect();
    let missing = taken.keys().filter(|k| !stored.contains_key(*k)).count();
    if !unexpected.is_empty() || missing > 0 {
        return Some(format!(
            "{} series stored, {} taken, {missing} missing; unexpected: {unexpected:?}",
            stored.len(),
            taken.len()
        ));
    }
    for (labels, samples) in &stored {
        let replicas_samples = &taken[labels];
        let foreign = samples.iter().find(|(t, v)| {
            !replicas_samples.iter().any(|(rt, rv)| rt == t && (rv - v).abs() <= 1e-9 * rv.abs().max(v.abs()))
        });
        let intervals: Vec<i64> = samples.iter().map(|(t, _)| interval(*t)).collect();
        let distinct: BTreeSet<i64> = intervals.iter().copied().collect();
        let wanted: BTreeSet<i64> = replicas_samples.iter().map(|(t, _)| interval(*t)).collect();
        if foreign.is_some() || distinct.len() != intervals.len() || distinct != wanted {
            return Some(format!(
                "{labels:?}: {} samples in {} intervals, {} intervals taken by the replicas, \
                 first sample no replica took: {foreign:?}",
                samples.len(),
                distinct.len(),
                wanted.len()
            ));
        }
    }
    None
}

/// Waits until `vm` holds the replicas' samples of `(from, to]` deduplicated.
fn assert_deduplicated(vm: &str, replicas: &[&Pyrite], from: i64, to: i64) {
    let selector = "{job=\"node\"}";
    let t = to.div_euclid(1000) + 1;
    let taken: Vec<Matrix> =
        replicas.iter().map(|r| matrix(&r.url, selector, "60s", t as f64, &[("cluster", "eu-1")])).collect();
    assert!(taken.iter().all(|m| m.len() > 100), "a replica scraped too few series");
    let taken: Vec<&Matrix> = taken.iter().collect();
    let mut last = String::new();
    let same = eventually(Duration::from_secs(30), || {
        match dedup_difference(&taken, &matrix(vm, selector, "60s", t as f64, &[]), from, to) {
            None => Some(()),
            Some(d) => {
                last = d;
                None
            }
        }
    });
    assert!(same.is_some(), "VictoriaMetrics does not hold the replicas' samples deduplicated: {last}");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Whole seconds in ms, the newest at most `ms`.
fn floor_s(ms: i64) -> i64 {
    ms.div_euclid(1000) * 1000
}

#[test]
fn two_replicas_give_one_alert_one_notification_and_each_series_once() {
    let dir = TempDir::new("ha");
    let exporter_port = free_port();
    let _exporter =
        Process::quiet("prometheus-node-exporter", &[format!("--web.listen-address=127.0.0.1:{exporter_port}")]);
    let (_vm, vm) = victoria_metrics(&dir.0.join("vm"), &format!("{INTERVAL_MS}ms"));
    let (receiver_port, notifications) = receiver();
    let am1 = alertmanager(&dir.0.join("am1"), receiver_port, None);
    let am2 = alertmanager(&dir.0.join("am2"), receiver_port, Some(am1.cluster_port));
    let clustered =
        eventually(Duration::from_secs(30), || Some(()).filter(|_| cluster_size(&am1) == 2 && cluster_size(&am2) == 2));
    assert!(clustered.is_some(), "the Alertmanagers did not form a cluster");

    let substitutions = [
        ("scrape_interval: 15s", format!("scrape_interval: {}s", INTERVAL_MS / 1000)),
        ("evaluation_interval: 15s", format!("evaluation_interval: {}s", INTERVAL_MS / 1000)),
        ("- alerts.yml", format!("- {}", deploy("alerts.yml").display())),
        ("alertmanager-1:9093", am1.url.trim_start_matches("http://").to_string()),
        ("alertmanager-2:9093", am2.url.trim_start_matches("http://").to_string()),
        ("http://victoriametrics:8428", vm.clone()),
        ("node-exporter:9100", format!("127.0.0.1:{exporter_port}")),
    ];
    let mut a = replica("a", &substitutions);
    let b = replica("b", &substitutions);
    let started = now_ms();

    // Both replicas send the Watchdog alert to both Alertmanagers; each holds it once,
    // with the external labels but the replica label.
    let sent = eventually(Duration::from_secs(30), || {
        Some(()).filter(|_| [&a, &b].iter().all(|r| posts(r, &am1) > 0.0 && posts(r, &am2) > 0.0))
    });
    assert!(sent.is_some(), "the replicas did not both post to both Alertmanagers");
    for am in [&am1, &am2] {
        let watchdog = alerts(am, "Watchdog");
        assert_eq!(watchdog.len(), 1, "{}: {watchdog:?}", am.url);
        assert_eq!(
            watchdog[0]["labels"],
            serde_json::json!({"alertname": "Watchdog", "severity": "none", "cluster": "eu-1"}),
            "{}",
            am.url
        );
    }

    // VictoriaMetrics holds each node exporter series once, one sample per interval.
    std::thread::sleep(Duration::from_millis((started + 16_000 - now_ms()).max(0) as u64));
    let to = floor_s(now_ms()) - 6000;
    assert_deduplicated(&vm, &[&a, &b], to - 8000, to);

    // Replica a stops: b alone keeps the alert active (its endsAt moves on, which only a
    // post after the stop does) and the series fed.
    a.process.signal(libc::SIGTERM);
    a.process.wait_exit(Duration::from_secs(30));
    let stopped = now_ms();
    for am in [&am1, &am2] {
        let renewed = eventually(Duration::from_secs(30), || {
            let watchdog = alerts(am, "Watchdog");
            let ends = watchdog.first()?["endsAt"].as_str().and_then(pyrite_core::calendar::parse_rfc3339)?;
            Some(()).filter(|_| watchdog.len() == 1 && ends > stopped + 8000)
        });
        assert!(renewed.is_some(), "{}: the alert was not kept active by replica b", am.url);
    }
    std::thread::sleep(Duration::from_millis((stopped + 14_000 - now_ms()).max(0) as u64));
    let to = floor_s(now_ms()) - 6000;
    assert_deduplicated(&vm, &[&b], floor_s(stopped) + 2000, to);

    // The receiver was told once: the second Alertmanager saw in the cluster's log that the
    // first had notified it.
    let told = notifications.lock().unwrap().iter().filter(|n| n["groupLabels"]["alertname"] == "Watchdog").count();
    assert_eq!(told, 1, "notifications of the Watchdog alert");
}
