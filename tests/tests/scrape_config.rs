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

/// A loopback exporter that wants `Authorization: <expected>`, and redirects `/old` to
/// `/metrics`.
fn guarded_exporter(expected: &'static [&'static str]) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut authorization = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.strip_prefix("authorization: ").or_else(|| line.strip_prefix("Authorization: ")) {
                    authorization = v.trim().to_string();
                }
            }
            let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
            let answer = if path == "/old" {
                "HTTP/1.1 302 Found\r\nLocation: /metrics\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            } else if expected.contains(&authorization.as_str()) {
                let body = "guarded_ok 1\n";
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
            } else {
                "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            };
            let mut stream = stream;
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    address
}

#[test]
fn basic_auth_bearer_tokens_and_redirects() {
    // "Basic dTpw" is u:p; the bearer token comes from a file beside the configuration.
    let exporter = guarded_exporter(&["Basic dTpw", "Bearer s3cret"]);
    let dir = pyrite_tests::TempDir::new("auth");
    std::fs::write(dir.0.join("password"), "p\n").unwrap();
    std::fs::write(dir.0.join("token"), "s3cret\n").unwrap();
    let config = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: basic
    basic_auth: {{username: u, password_file: {dir}/password}}
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: bearer
    metrics_path: /old
    authorization: {{credentials_file: {dir}/token}}
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: wrong
    basic_auth: {{username: u, password: nope}}
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: no_redirects
    metrics_path: /old
    follow_redirects: false
    authorization: {{credentials: s3cret}}
    static_configs: [{{targets: ['{exporter}']}}]
"#,
        dir = dir.0.display()
    );
    let p = Pyrite::start(PyriteOpts { config: Some(config), ..PyriteOpts::default() });
    let health = |p: &Pyrite| -> Vec<(String, String, String)> {
        let mut out: Vec<_> = p.data("/api/v1/targets")["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|t| {
                let s = |k: &str| t[k].as_str().unwrap_or("").to_string();
                (s("scrapePool"), s("health"), s("lastError"))
            })
            .collect();
        out.sort();
        out
    };
    let settled =
        eventually(Duration::from_secs(10), || health(&p).iter().all(|(_, h, _)| h != "unknown").then_some(()));
    assert!(settled.is_some(), "{:?}", health(&p));
    let h = health(&p);
    assert_eq!(h[0], ("basic".into(), "up".into(), String::new()));
    assert_eq!(h[1], ("bearer".into(), "up".into(), String::new()), "token read from its file, redirect followed");
    assert_eq!(h[2].1, "down");
    assert!(h[2].2.contains("follow_redirects"), "{h:?}");
    assert_eq!(h[3], ("wrong".into(), "down".into(), "server returned HTTP status 401 Unauthorized".into()));
    // The secrets do not show in the configuration the API serves.
    let shown = p.data("/api/v1/status/config")["yaml"].as_str().unwrap().to_string();
    assert!(shown.contains("password: <secret>") && !shown.contains("nope"), "{shown}");
}
