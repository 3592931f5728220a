//! Scrape configuration against a real exporter (Debian's `prometheus-node-exporter`), Pyrite
//! and upstream Prometheus scraping it with the same `prometheus.yml`: target relabeling
//! (rewritten instance, added labels, URL parameters, a target dropped and listed as such),
//! metric relabeling, and limits, compared series for series and error for error.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use pyrite_tests::{eventually, free_port, http_get, json, Process, Pyrite, PyriteOpts, Upstream};
use serde_json::Value;

/// Debian's node exporter on a loopback port.
fn node_exporter() -> (Process, String) {
    let port = free_port();
    let child = Command::new("prometheus-node-exporter")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus-node-exporter (installed by scripts/test)");
    let address = format!("127.0.0.1:{port}");
    let up = eventually(Duration::from_secs(10), || http_get(&format!("http://{address}/metrics")).ok());
    assert!(up.is_some(), "node exporter did not answer");
    (Process::new(child), address)
}

fn config(node: &str) -> String {
    format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: node
    params:
      collect[]: [cpu, meminfo, loadavg]
    relabel_configs:
      - source_labels: [__address__]
        regex: '127\.0\.0\.1:.*'
        target_label: instance
        replacement: node-1
      - target_label: env
        replacement: test
      - source_labels: [__address__]
        regex: '192\.0\.2\..*'
        action: drop
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'go_.*|promhttp_.*|process_.*'
        action: drop
      - source_labels: [__name__, cpu]
        regex: 'node_cpu_seconds_total;0'
        target_label: first_cpu
        replacement: 'yes'
    static_configs:
      - targets: ['{node}', '192.0.2.1:9100']
  - job_name: limited
    sample_limit: 10
    static_configs:
      - targets: ['{node}']
"#
    )
}

/// The series of `job` as sorted label-set strings (values aside), from a server's API.
fn series(base: &str, job: &str) -> BTreeSet<String> {
    let (_, body) = http_get(&format!("{base}/api/v1/series?match[]={{job=%22{job}%22}}")).unwrap();
    json(&body)["data"].as_array().cloned().unwrap_or_default().iter().map(Value::to_string).collect()
}

fn targets(base: &str) -> Value {
    json(&http_get(&format!("{base}/api/v1/targets")).unwrap().1)["data"].clone()
}

#[test]
fn relabeling_and_limits_match_prometheus_on_a_node_exporter() {
    let (_exporter, node) = node_exporter();
    let config = config(&node);
    let pyrite = Pyrite::start(PyriteOpts { shards: Some(2), config: Some(config.clone()), ..PyriteOpts::default() });
    let upstream = Upstream::start_configured(&config, &[]);
    // Both scraped a few times.
    for base in [&pyrite.url, &upstream.url] {
        let ready = eventually(Duration::from_secs(20), || {
            let t = targets(base);
            let active = t["activeTargets"].as_array().cloned().unwrap_or_default();
            let scraped = active.len() == 2 && active.iter().all(|a| a["health"] != "unknown");
            (scraped && series(base, "node").len() > 20).then_some(())
        });
        assert!(ready.is_some(), "{base} did not scrape: {}", targets(base));
    }
    std::thread::sleep(Duration::from_secs(2));

    // The same series, relabeled the same way.
    let ours = series(&pyrite.url, "node");
    let theirs = series(&upstream.url, "node");
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only pyrite: {only_ours:?}\nonly prometheus: {only_theirs:?}"
    );
    assert!(ours.iter().all(|s| s.contains(r#""instance":"node-1""#) && s.contains(r#""env":"test""#)));
    assert!(!ours.iter().any(|s| s.contains(r#""__name__":"go_"#)), "metric relabeling dropped go_*");
    assert!(ours.iter().any(|s| s.contains(r#""first_cpu":"yes""#)));
    // Only the collectors asked for in the URL parameters ran.
    assert!(!ours.iter().any(|s| s.contains("node_filesystem")), "collect[] was not sent");

    // The dropped target is listed with its discovered labels; the limited one failed whole.
    let t = targets(&pyrite.url);
    let dropped = t["droppedTargets"].as_array().cloned().unwrap_or_default();
    assert_eq!(dropped.len(), 1, "{t}");
    assert_eq!(dropped[0]["discoveredLabels"]["__address__"], "192.0.2.1:9100");
    let error_of = |t: &Value| {
        let active = t["activeTargets"].as_array().cloned().unwrap_or_default();
        active.iter().find(|a| a["scrapePool"] == "limited").map(|a| (a["health"].clone(), a["lastError"].clone()))
    };
    assert_eq!(error_of(&t), error_of(&targets(&upstream.url)));
    assert_eq!(error_of(&t).unwrap().1, "sample limit exceeded");
    assert!(series(&pyrite.url, "limited").iter().all(|s| !s.contains("node_")), "a failed scrape stores nothing");
    assert_eq!(pyrite.query("up{job=\"limited\"}", None)[0]["value"][1], "0");
}
