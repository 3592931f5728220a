//! The remote-write sender against real receivers: Debian's Prometheus 2.42 (with
//! `--web.enable-remote-write-receiver`) and VictoriaMetrics, and a second Pyrite taking
//! remote write 2.0. Each must end up holding exactly the samples Pyrite holds, compared
//! through their query APIs — after a normal run, after the receiver was away for minutes
//! while Pyrite restarted, and after Pyrite was killed with `kill -9` while sending.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pyrite_tests::{
    eventually, free_port, http_get, matrix, victoria_metrics, Loadgen, Matrix, Process, Pyrite, PyriteOpts, TempDir,
};

/// How `remote` differs from `local`, or None if it holds the same samples. VictoriaMetrics
/// (`lossy`) drops NaN samples and keeps about 12 significant decimal digits, with one
/// exponent for a block of a series' samples (so a small value next to large ones keeps
/// fewer), as it documents; the others must match exactly.
fn difference(local: &Matrix, remote: &Matrix, lossy: bool) -> Option<String> {
    let mut problems = Vec::new();
    let (mut samples, mut missing_series) = (0, 0);
    for (labels, want) in local {
        let want: Vec<&(i64, f64)> = want.iter().filter(|(_, v)| !(lossy && v.is_nan())).collect();
        let scale = want.iter().map(|(_, v)| v.abs()).filter(|v| v.is_finite()).fold(0.0, f64::max);
        let same = |x: f64, y: f64| x == y || (x.is_nan() && y.is_nan()) || (lossy && (x - y).abs() <= 1e-9 * scale);
        samples += want.len();
        match remote.get(labels) {
            None if want.is_empty() => {}
            None => missing_series += 1,
            Some(got) => {
                let ok = got.len() == want.len() && got.iter().zip(&want).all(|(g, w)| g.0 == w.0 && same(g.1, w.1));
                if !ok && problems.len() < 3 {
                    let first = got.iter().zip(&want).find(|(g, w)| g.0 != w.0 || !same(g.1, w.1));
                    problems.push(format!(
                        "{labels:?}: {} samples, {} expected, first difference (remote, pyrite) {first:?}",
                        got.len(),
                        want.len()
                    ));
                }
            }
        }
    }
    let extra = remote.keys().filter(|k| !local.contains_key(*k)).count();
    if problems.is_empty() && missing_series == 0 && extra == 0 {
        return None;
    }
    Some(format!(
        "{missing_series} of {} series missing, {extra} unexpected; {samples} samples expected; {}",
        local.len(),
        problems.join("; ")
    ))
}

/// Waits until `remote` holds what `local` holds over `range` before `t`.
fn assert_same(
    pyrite: &Pyrite,
    remote: &str,
    selector: &str,
    t: f64,
    range: &str,
    external: &[(&str, &str)],
    lossy: bool,
) {
    let local = matrix(&pyrite.url, selector, range, t, external);
    assert!(local.values().map(Vec::len).sum::<usize>() > 0, "pyrite holds no samples for {selector}");
    let mut last = String::new();
    let same = eventually(Duration::from_secs(60), || {
        match difference(&local, &matrix(remote, selector, range, t, &[]), lossy) {
            None => Some(()),
            Some(d) => {
                last = d;
                None
            }
        }
    });
    assert!(same.is_some(), "{remote} differs from pyrite: {last}");
}

/// Debian's Prometheus as a receiver, on a fixed port and data directory so that it can be
/// stopped and started again.
fn prometheus_receiver(port: u16, data: &Path) -> Process {
    let dir = data.parent().unwrap();
    let config = dir.join("receiver.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .arg("--log.level=error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus (installed by scripts/test)");
    let url = format!("http://127.0.0.1:{port}");
    let ready = eventually(Duration::from_secs(30), || {
        http_get(&format!("{url}/-/ready")).ok().filter(|(s, _)| *s == 200).map(drop)
    });
    assert!(ready.is_some(), "prometheus receiver not ready");
    Process::new(child)
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

fn metric(pyrite: &Pyrite, name: &str, queue: &str) -> f64 {
    let (_, text) = pyrite.get("/metrics");
    pyrite_tests::metric_sum(&text, name, &format!("remote_name=\"{queue}\""))
}

/// Pyrite scraping the node exporter and itself, sending to Prometheus 2.42 (1.0), to
/// VictoriaMetrics (1.0) and to a second Pyrite (2.0): each holds what Pyrite holds.
#[test]
fn every_sample_reaches_prometheus_victoria_metrics_and_a_pyrite_over_2_0() {
    let dir = TempDir::new("rw-peers");
    let exporter_port = free_port();
    let _exporter =
        Process::quiet("prometheus-node-exporter", &[format!("--web.listen-address=127.0.0.1:{exporter_port}")]);
    let receiver_port = free_port();
    let _prometheus = prometheus_receiver(receiver_port, &dir.0.join("prometheus"));
    // Deduplicating, as VictoriaMetrics documents for senders that may send a request twice.
    let (_vm, vm_url) = victoria_metrics(&dir.0.join("vm"), "1ms");
    let v2 = Pyrite::start(PyriteOpts {
        extra_args: vec!["--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request".into()],
        ..PyriteOpts::default()
    });
    let port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  external_labels: {{replica: a}}\n\
         scrape_configs:\n  - job_name: node\n    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n\
         \x20 - job_name: pyrite\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n\
         remote_write:\n\
         \x20 - {{url: 'http://127.0.0.1:{receiver_port}/api/v1/write', name: prometheus, queue_config: {{batch_send_deadline: 1s}}}}\n\
         \x20 - {{url: '{vm_url}/api/v1/write', name: vm, queue_config: {{batch_send_deadline: 1s}}}}\n\
         \x20 - {{url: '{}/api/v1/write', name: v2, protobuf_message: io.prometheus.write.v2.Request,\n\
         \x20     write_relabel_configs: [{{source_labels: [job], regex: node, action: keep}}]}}\n",
        v2.url
    );
    let pyrite = Pyrite::start(PyriteOpts { config: Some(config), port: Some(port), ..PyriteOpts::default() });
    std::thread::sleep(Duration::from_secs(12));
    let t = now() - 2.0;
    let external = [("replica", "a")];
    let receiver = format!("http://127.0.0.1:{receiver_port}");
    assert_same(&pyrite, &receiver, "{job=~\"node|pyrite\"}", t, "5m", &external, false);
    assert_same(&pyrite, &vm_url, "{job=~\"node|pyrite\"}", t, "5m", &external, true);
    // The relabelled queue sends the node exporter's series only.
    assert_same(&pyrite, &v2.url, "{job=\"node\"}", t, "5m", &external, false);
    assert!(matrix(&v2.url, "{job=\"pyrite\"}", "5m", t, &[]).is_empty(), "relabelled away");
    for queue in ["prometheus", "vm", "v2"] {
        assert!(metric(&pyrite, "prometheus_remote_storage_samples_total", queue) > 0.0, "{queue} sent nothing");
        assert_eq!(metric(&pyrite, "prometheus_remote_storage_samples_failed_total", queue), 0.0, "{queue}");
    }
    assert!(metric(&pyrite, "prometheus_remote_storage_samples_dropped_total", "v2") > 0.0, "relabelled away");
}

/// A receiver that refuses a request for good (404: no receiver there) has its samples
/// dropped and counted, not retried for ever.
#[test]
fn a_refusing_receiver_has_its_samples_counted_as_failed() {
    let receiver = Pyrite::start(PyriteOpts { extra_args: vec![], ..PyriteOpts::default() });
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs: [{{targets: ['{}']}}]\n\
         remote_write:\n  - {{url: '{}/nowhere', name: refusing, queue_config: {{batch_send_deadline: 1s}}}}\n",
        receiver.url.trim_start_matches("http://"),
        receiver.url
    );
    let pyrite = Pyrite::start(PyriteOpts { config: Some(config), ..PyriteOpts::default() });
    let failed = eventually(Duration::from_secs(30), || {
        Some(metric(&pyrite, "prometheus_remote_storage_samples_failed_total", "refusing")).filter(|&f| f > 0.0)
    });
    assert!(failed.is_some(), "no sample counted as failed");
    assert_eq!(metric(&pyrite, "prometheus_remote_storage_samples_total", "refusing"), 0.0);
}

/// A receiver behind a redirect (an ingress sending `http` to `https` with a 308, or a path
/// moved with a 307): the request is sent again, body included, where the redirect points.
/// The HTTP client alone does not send a POST's body to a 307 or 308.
#[test]
fn a_redirected_request_is_sent_again_with_its_body() {
    let receiver = Pyrite::start(PyriteOpts::default());
    let redirector = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let redirector_address = redirector.local_addr().expect("address");
    let location = format!("{}/api/v1/write", receiver.url);
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        for (i, stream) in redirector.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = std::io::BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let status = if i % 2 == 0 { "307 Temporary Redirect" } else { "308 Permanent Redirect" };
            let answer =
                format!("HTTP/1.1 {status}\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: redirected\n    static_configs: [{{targets: ['{}']}}]\n\
         remote_write:\n  - {{url: 'http://{redirector_address}/w', name: moved, queue_config: {{batch_send_deadline: 1s}}}}\n",
        receiver.url.trim_start_matches("http://"),
    );
    let pyrite = Pyrite::start(PyriteOpts { config: Some(config), ..PyriteOpts::default() });
    let arrived = eventually(Duration::from_secs(30), || {
        let (_, body) = receiver.get("/api/v1/query?query=count(up%7Bjob%3D%22redirected%22%7D)");
        pyrite_tests::json(&body)["data"]["result"][0]["value"][1].as_str().map(String::from)
    });
    assert_eq!(arrived.as_deref(), Some("1"), "the receiver got no sample through the redirect");
    assert!(metric(&pyrite, "prometheus_remote_storage_samples_total", "moved") > 0.0);
    assert_eq!(metric(&pyrite, "prometheus_remote_storage_samples_failed_total", "moved"), 0.0);
}

/// Pyrite scraping a load of 2,000 series every second with a receiver that is stopped for a
/// minute and a half, while Pyrite itself restarts cleanly (its shutdown snapshot would delete the
/// log segments not yet sent) and snapshots its head every 20 s: when the receiver is back,
/// it holds every sample, in order.
#[test]
fn a_receiver_away_for_minutes_across_a_restart_loses_nothing() {
    let dir = TempDir::new("rw-outage");
    let load = Loadgen::start(1, 2000);
    let receiver_port = free_port();
    let receiver_data = dir.0.join("receiver");
    let mut receiver = prometheus_receiver(receiver_port, &receiver_data);
    let port = free_port();
    let data = dir.0.join("pyrite");
    let config = format!(
        "{}remote_write:\n  - {{url: 'http://127.0.0.1:{receiver_port}/api/v1/write', name: outage, queue_config: {{max_backoff: 1s}}}}\n",
        load.scrape_config("load", "1s")
    );
    let opts = PyriteOpts {
        config: Some(config),
        port: Some(port),
        data_dir: Some(data.clone()),
        extra_args: vec![
            "--storage.tsdb.head-snapshot-interval=20s".into(),
            "--storage.tsdb.wal-segment-size=128KB".into(),
        ],
        ..PyriteOpts::default()
    };
    let started = now();
    let mut pyrite = Pyrite::start(opts.clone());
    std::thread::sleep(Duration::from_secs(15));
    receiver.signal(libc::SIGTERM);
    receiver.wait_exit(Duration::from_secs(30));
    let away = Instant::now();
    std::thread::sleep(Duration::from_secs(45));
    pyrite.process.signal(libc::SIGTERM);
    pyrite.process.wait_exit(Duration::from_secs(30));
    pyrite = Pyrite::start(opts);
    std::thread::sleep(Duration::from_secs(90).saturating_sub(away.elapsed()));
    let segments = std::fs::read_dir(data.join("wal/0")).unwrap().count();
    let _receiver = prometheus_receiver(receiver_port, &receiver_data);
    let t = now() - 2.0;
    let range = format!("{}s", (t - started + 10.0) as u64);
    assert_same(&pyrite, &format!("http://127.0.0.1:{receiver_port}"), "{job=\"load\"}", t, &range, &[], false);
    assert!(segments > 5, "the log kept the unsent segments ({segments} files)");
    assert!(metric(&pyrite, "prometheus_remote_storage_samples_retried_total", "outage") > 0.0);
}

/// Pyrite killed with SIGKILL three times while it sends: the receiver ends up with every
/// sample Pyrite holds, none missing and none refused as out of order in its place.
#[test]
fn kill_9_while_sending_loses_nothing() {
    let dir = TempDir::new("rw-kill");
    let load = Loadgen::start(1, 2000);
    let receiver_port = free_port();
    let _receiver = prometheus_receiver(receiver_port, &dir.0.join("receiver"));
    let port = free_port();
    let config = format!(
        "{}remote_write:\n  - {{url: 'http://127.0.0.1:{receiver_port}/api/v1/write', name: killed, queue_config: {{max_samples_per_send: 500, batch_send_deadline: 1s}}}}\n",
        load.scrape_config("load", "1s")
    );
    let opts = PyriteOpts {
        config: Some(config),
        port: Some(port),
        data_dir: Some(dir.0.join("pyrite")),
        ..PyriteOpts::default()
    };
    let started = now();
    let mut pyrite = Pyrite::start(opts.clone());
    for wait in [7000, 5300, 8100] {
        std::thread::sleep(Duration::from_millis(wait));
        pyrite.process.signal(libc::SIGKILL);
        pyrite.process.wait_exit(Duration::from_secs(10));
        pyrite = Pyrite::start(opts.clone());
    }
    std::thread::sleep(Duration::from_secs(8));
    let t = now() - 2.0;
    let range = format!("{}s", (t - started + 10.0) as u64);
    assert_same(&pyrite, &format!("http://127.0.0.1:{receiver_port}"), "{job=\"load\"}", t, &range, &[], false);
}
