//! Rules and alerting end to end, against the real peers: a loadgen target whose error ratio
//! rises (an incident) and falls again, the same alerting rule file on Pyrite and on upstream
//! Prometheus (Debian's 2.42), both sending to a real Alertmanager (Debian's) that calls a
//! webhook receiver this test runs.
//!
//! Also: recorded series equal their expression evaluated directly, bad rule files are refused
//! at reload with the old rules kept, and an Alertmanager that never answers does not hold up
//! rule evaluation.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::Sample;
use pyrite_tests::{eventually, free_port, http_get, json, Loadgen, Process, Pyrite, PyriteOpts, TempDir, Upstream};
use serde_json::Value;

const ALERT_RULES: &str = r#"groups:
  - name: loadgen-alerts
    interval: 1s
    rules:
      - record: job:loadgen_errors:ratio_rate10s
        expr: sum by (job) (rate(loadgen_http_requests_total{status="500"}[10s])) / sum by (job) (rate(loadgen_http_requests_total[10s]))
      - alert: HighErrorRate
        expr: job:loadgen_errors:ratio_rate10s > 0.5
        for: 3s
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.job }} error ratio {{ $value | humanizePercentage }}"
          description: "{{ if gt $value 0.9 }}almost everything{{ else }}most requests{{ end }} failing on {{ $externalLabels.source }}"
          runbook: "{{ if false }}never{{ end }}"
"#;

/// A rule group only Pyrite gets: upstream 2.42 predates `query_offset`, which lets the rule
/// see only data old enough to be complete even when a busy machine delays a scrape.
const RECORDING_RULES: &str = r#"groups:
  - name: loadgen-recorded
    interval: 1s
    query_offset: 10s
    rules:
      - record: job:loadgen_requests:rate5s
        expr: sum by (job, status) (rate(loadgen_http_requests_total[5s]))
"#;

/// Alertmanager's configuration: every alert to the test's webhook, at once.
fn alertmanager_config(webhook_port: u16) -> String {
    format!(
        "route:\n  receiver: hook\n  group_by: [alertname, source]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{webhook_port}/hook\n        send_resolved: true\n"
    )
}

/// A request the receiver got: its `Authorization` header and JSON body.
type Received = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// The webhook receiver (and a stand-in Alertmanager): records every POST and answers 200.
fn webhook() -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind webhook");
    let port = listener.local_addr().expect("address").port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let (mut length, mut authorization) = (0, None);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line.to_ascii_lowercase().starts_with("authorization:") {
                    authorization = Some(line["authorization:".len()..].trim().to_string());
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice(&body) {
                    store.lock().unwrap().push((authorization, v));
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
    _dir: TempDir,
}

fn start_alertmanager(webhook_port: u16) -> Alertmanager {
    let dir = TempDir::new("alertmanager");
    let config = dir.0.join("alertmanager.yml");
    std::fs::write(&config, alertmanager_config(webhook_port)).unwrap();
    let port = free_port();
    let args = [
        format!("--config.file={}", config.display()),
        format!("--storage.path={}", dir.0.join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--cluster.listen-address=".to_string(),
    ];
    let process = Process::quiet("prometheus-alertmanager", &args);
    let url = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(20), || http_get(&format!("{url}/-/ready")).ok().filter(|(s, _)| *s == 200))
        .expect("alertmanager ready");
    Alertmanager { _process: process, url, _dir: dir }
}

fn server_config(target: &str, source: &str, rule_files: &[String], alertmanager: &str) -> String {
    let files: Vec<String> = rule_files.iter().map(|f| format!("\"{f}\"")).collect();
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels: {{source: {source}}}\nrule_files: [{}]\nalerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{}']}}]\nscrape_configs:\n  - job_name: loadgen\n    static_configs: [{{targets: ['{target}']}}]\n",
        files.join(", "),
        alertmanager.trim_start_matches("http://")
    )
}

/// The HighErrorRate alert a server reports now: (state, annotations), or None.
fn alert_now(url: &str) -> Option<(String, Value)> {
    let (_, body) = http_get(&format!("{url}/api/v1/alerts")).ok()?;
    let alerts = json(&body)["data"]["alerts"].as_array()?.clone();
    let a = alerts.into_iter().find(|a| a["labels"]["alertname"] == "HighErrorRate")?;
    Some((a["state"].as_str()?.to_string(), a["annotations"].clone()))
}

/// Records each server's sequence of states ("pending", "firing", "inactive" once it is gone)
/// until `done` says the sequence is complete or `limit` passes.
fn watch(urls: &[&str], limit: Duration, done: impl Fn(&[Vec<String>]) -> bool) -> (Vec<Vec<String>>, Vec<Value>) {
    let mut states: Vec<Vec<String>> = vec![Vec::new(); urls.len()];
    let mut annotations = vec![Value::Null; urls.len()];
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && !done(&states) {
        for (i, url) in urls.iter().enumerate() {
            let state = match alert_now(url) {
                Some((state, a)) => {
                    if state == "firing" {
                        annotations[i] = a;
                    }
                    state
                }
                None => "inactive".to_string(),
            };
            if states[i].last() != Some(&state) && !(states[i].is_empty() && state == "inactive") {
                states[i].push(state);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    (states, annotations)
}

/// Every key path of a JSON document (array items share their parent's path), without the keys
/// under label and annotation maps, whose names are data.
fn key_paths(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let path = format!("{at}.{k}");
                out.push(path.clone());
                if !["labels", "annotations"].contains(&k.as_str()) {
                    key_paths(child, &path, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| key_paths(i, &format!("{at}[]"), out)),
        _ => {}
    }
}

/// `12.34%` → 12.34: the number in a `humanizePercentage` summary.
fn percentage(summary: &str) -> f64 {
    let text = summary.rsplit(' ').next().unwrap_or("").trim_end_matches('%');
    text.parse().unwrap_or_else(|_| panic!("no percentage in {summary:?}"))
}

fn webhook_alerts(received: &Received, source: &str, status: &str) -> Vec<Value> {
    let received = received.lock().unwrap();
    received
        .iter()
        .flat_map(|(_, n)| n["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["labels"]["source"] == source && a["status"] == status)
        .collect()
}

#[test]
fn an_incident_fires_and_resolves_the_same_alert_on_pyrite_and_on_upstream() {
    let loadgen = Loadgen::start(1, 40);
    let target = &loadgen.targets[0];
    let (webhook_port, received) = webhook();
    let am = start_alertmanager(webhook_port);
    let rules = TempDir::new("rules");
    let alert_file = rules.0.join("alerts.yml").display().to_string();
    let recording_file = rules.0.join("recorded.yml").display().to_string();
    std::fs::write(&alert_file, ALERT_RULES).unwrap();
    std::fs::write(&recording_file, RECORDING_RULES).unwrap();
    let pyrite = Pyrite::start(PyriteOpts {
        config: Some(server_config(target, "pyrite", &[alert_file.clone(), recording_file], &am.url)),
        ..Default::default()
    });
    let upstream = Upstream::start_configured(&server_config(target, "prometheus", &[alert_file], &am.url), &[]);
    let urls = [pyrite.url.as_str(), upstream.url.as_str()];

    // Calm: about 23% of requests fail; no alert on either server.
    std::thread::sleep(Duration::from_secs(12));
    for url in urls {
        assert_eq!(alert_now(url), None, "{url} alerts before the incident");
    }
    let ratio = pyrite.query("job:loadgen_errors:ratio_rate10s", None);
    let calm: f64 = ratio[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!((0.15..0.35).contains(&calm), "calm error ratio {calm}");

    // The incident: errors grow ten times faster, the ratio passes 50%: pending, then firing.
    let incident = |what: &str| ureq::post(&format!("http://{target}/-/incident/{what}")).call().expect("loadgen");
    incident("start");
    let (states, annotations) =
        watch(&urls, Duration::from_secs(40), |s| s.iter().all(|s| s.last().is_some_and(|x| x == "firing")));
    for (i, url) in urls.iter().enumerate() {
        assert_eq!(states[i], ["pending", "firing"], "{url}: {states:?}");
        let summary = annotations[i]["summary"].as_str().unwrap_or_default();
        assert!(summary.starts_with("loadgen error ratio "), "{url}: {summary:?}");
        assert!((50.0..100.0).contains(&percentage(summary)), "{url}: {summary:?}");
    }
    assert_eq!(annotations[0]["description"], "most requests failing on pyrite");
    assert_eq!(annotations[1]["description"], "most requests failing on prometheus");
    // An annotation that expands to "" is kept, as upstream keeps it.
    assert_eq!(annotations[0]["runbook"], annotations[1]["runbook"]);
    assert_eq!(annotations[0]["runbook"], "");
    // The summary is the alert's value, as of the same evaluation.
    let (_, pyrite_alerts) = http_get(&format!("{}/api/v1/alerts", pyrite.url)).unwrap();
    let alert = &json(&pyrite_alerts)["data"]["alerts"][0];
    let value: f64 = alert["value"].as_str().unwrap().parse().unwrap();
    let summary = alert["annotations"]["summary"].as_str().unwrap();
    assert!((percentage(summary) - value * 100.0).abs() < 0.01, "{summary} vs value {value}");

    // `/api/v1/rules` and `/api/v1/alerts` have upstream's shape: the same keys at every level.
    for path in ["/api/v1/rules?rule_group[]=loadgen-alerts", "/api/v1/alerts"] {
        let shape = |url: &str| {
            let mut keys = Vec::new();
            key_paths(&json(&http_get(&format!("{url}{path}")).unwrap().1)["data"], "", &mut keys);
            keys.sort();
            keys.dedup();
            keys
        };
        assert_eq!(shape(&pyrite.url), shape(&upstream.url), "{path}");
    }

    // Alertmanager got Pyrite's alert, with external labels, and called the webhook.
    let fired = eventually(Duration::from_secs(20), || {
        let a = webhook_alerts(&received, "pyrite", "firing");
        (!a.is_empty()).then_some(a)
    })
    .expect("the webhook received Pyrite's firing alert");
    assert_eq!(fired[0]["labels"]["severity"], "page");
    assert!(fired[0]["annotations"]["summary"].as_str().unwrap().starts_with("loadgen error ratio "));
    assert_eq!(fired[0]["annotations"]["runbook"], "", "{}", fired[0]);
    assert!(fired[0]["generatorURL"].as_str().unwrap().contains("/graph?g0.expr="), "{}", fired[0]);
    assert!(
        !webhook_alerts(&received, "prometheus", "firing").is_empty() || {
            std::thread::sleep(Duration::from_secs(5));
            !webhook_alerts(&received, "prometheus", "firing").is_empty()
        }
    );

    // The incident ends: the ratio falls back and the alert resolves on both.
    incident("stop");
    let (states, _) =
        watch(&urls, Duration::from_secs(40), |s| s.iter().all(|s| s.last().is_some_and(|x| x == "inactive")));
    for (i, url) in urls.iter().enumerate() {
        assert_eq!(states[i], ["firing", "inactive"], "{url}: {states:?}");
    }
    let resolved = eventually(Duration::from_secs(20), || {
        (!webhook_alerts(&received, "pyrite", "resolved").is_empty()).then_some(())
    });
    assert!(
        resolved.is_some(),
        "no resolved alert from Pyrite at the webhook: {:?}\nPyrite sent {} alerts, {} failed",
        received.lock().unwrap(),
        pyrite.metric("prometheus_notifications_sent_total"),
        pyrite.metric("prometheus_notifications_errors_total")
    );

    // ALERTS and ALERTS_FOR_STATE were written while it fired.
    let series = pyrite.data("/api/v1/series?match[]=ALERTS&match[]=ALERTS_FOR_STATE&start=0");
    let names: Vec<String> = series
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{}/{}", s["__name__"].as_str().unwrap(), s["alertstate"].as_str().unwrap_or("")))
        .collect();
    for expected in ["ALERTS/pending", "ALERTS/firing", "ALERTS_FOR_STATE/"] {
        assert!(names.contains(&expected.to_string()), "{names:?}");
    }

    // The recorded series equals its expression evaluated directly at the recorded samples'
    // own timestamps (a range selector gives them raw).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let recorded = pyrite.query("job:loadgen_requests:rate5s{status=\"500\"}[15s]", Some(now - 11.0))[0]["values"]
        .as_array()
        .unwrap()
        .clone();
    assert!(recorded.len() >= 12, "{} recorded samples in 15 s", recorded.len());
    let raw = "sum by (job, status) (rate(loadgen_http_requests_total{status=\"500\"}[5s]))";
    for sample in &recorded {
        let t = sample[0].as_f64().unwrap();
        let stored: f64 = sample[1].as_str().unwrap().parse().unwrap();
        let direct: f64 = pyrite.query(raw, Some(t))[0]["value"][1].as_str().unwrap().parse().unwrap();
        assert!((direct - stored).abs() <= 1e-9 * direct.abs().max(1.0), "at {t}: recorded {stored}, direct {direct}");
    }
}

#[test]
fn bad_rule_files_are_refused_at_reload_and_the_old_rules_stay() {
    let rules = TempDir::new("rules");
    let file = rules.0.join("rules.yml");
    std::fs::write(&file, RECORDING_RULES).unwrap();
    let config = format!("global:\n  evaluation_interval: 1s\nrule_files: ['{}']\n", file.display());
    let pyrite = Pyrite::start(PyriteOpts {
        config: Some(config),
        extra_args: vec!["--web.enable-lifecycle".into()],
        ..Default::default()
    });
    let group_names = || -> Vec<String> {
        pyrite.data("/api/v1/rules")["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(group_names(), ["loadgen-recorded"]);
    let name = file.display().to_string();
    let bad = [
        ("groups: [", format!("{name}: ")),
        (
            "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: 'sum('\n",
            format!("{name}: group \"g\", rule 1, \"r\": could not parse expression: "),
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - {record: 'r{a=\"b\"}', expr: up}\n",
            format!("{name}: group \"g\", rule 1, \"r{{a=\\\"b\\\"}}\": braces present in the recording rule name"),
        ),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        annotations: {summary: '{{ $labels.instance '}\n",
            format!("{name}: group \"g\", rule 1, \"A\": annotation \"summary\": error parsing template __alert_A: "),
        ),
    ];
    for (text, reason) in bad {
        std::fs::write(&file, text).unwrap();
        let r = ureq::post(&format!("{}/-/reload", pyrite.url)).call();
        let Err(ureq::Error::Status(500, response)) = r else { panic!("reload of {text:?} was not refused: {r:?}") };
        let body = response.into_string().unwrap();
        assert!(body.contains(&reason), "{reason:?} not in {body:?}");
        assert_eq!(group_names(), ["loadgen-recorded"], "the old rules stay after {text:?}");
        assert_eq!(pyrite.metric("prometheus_config_last_reload_successful"), 0.0);
    }
    std::fs::write(&file, ALERT_RULES).unwrap();
    ureq::post(&format!("{}/-/reload", pyrite.url)).call().expect("a good file reloads");
    assert_eq!(group_names(), ["loadgen-alerts"]);
    let alerting = pyrite.data("/api/v1/rules?type=alert");
    let rules = alerting["groups"][0]["rules"].as_array().unwrap();
    assert_eq!(
        (rules.len(), rules[0]["name"].as_str(), rules[0]["type"].as_str()),
        (1, Some("HighErrorRate"), Some("alerting"))
    );
    assert_eq!(pyrite.data("/api/v1/rules?rule_group[]=nothing")["groups"], Value::Array(vec![]));
}

/// As upstream 3.x: rule names and labels are judged by the global name validation scheme
/// (`utf8` unless set), and rules that share a name and labels load (promtool lints them).
#[test]
fn rule_names_follow_the_global_scheme_and_duplicate_rules_load() {
    let rules = TempDir::new("rules");
    let file = rules.0.join("rules.yml");
    let text = "groups:\n  - name: g\n    labels: {team.name: a}\n    rules:\n      - {record: 'job:http.requests:sum', expr: vector(2)}\n      - {record: 'job:http.requests:sum', expr: vector(2)}\n";
    std::fs::write(&file, text).unwrap();
    let config = |scheme: &str| {
        format!(
            "global:\n  evaluation_interval: 1s\n  metric_name_validation_scheme: {scheme}\nrule_files: ['{}']\n",
            file.display()
        )
    };
    let pyrite = Pyrite::start(PyriteOpts {
        config: Some(config("utf8")),
        extra_args: vec!["--web.enable-lifecycle".into()],
        ..Default::default()
    });
    assert_eq!(pyrite.data("/api/v1/rules")["groups"][0]["rules"].as_array().map(Vec::len), Some(2));
    let written = eventually(Duration::from_secs(10), || {
        let result = pyrite.query(r#"{"job:http.requests:sum"}"#, None);
        result.as_array().filter(|r| !r.is_empty()).cloned()
    })
    .expect("the recording rule writes its series");
    assert_eq!(written[0]["metric"]["team.name"], "a", "{written:?}");
    assert_eq!(written[0]["value"][1], "2");
    let config_file = pyrite.data_dir.parent().expect("the data directory's parent").join("prometheus.yml");
    std::fs::write(&config_file, config("legacy")).unwrap();
    let r = ureq::post(&format!("{}/-/reload", pyrite.url)).call();
    let Err(ureq::Error::Status(500, response)) = r else { panic!("legacy names were not refused: {r:?}") };
    let body = response.into_string().unwrap();
    assert!(body.contains("group \"g\": invalid label name: team.name"), "{body}");
}

#[test]
fn an_alertmanager_that_never_answers_does_not_hold_up_evaluation() {
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    let rules = TempDir::new("rules");
    let file = rules.0.join("rules.yml");
    std::fs::write(
        &file,
        "groups:\n  - name: always\n    interval: 1s\n    rules:\n      - alert: Always\n        expr: thing > 0\n",
    )
    .unwrap();
    let config = format!(
        "rule_files: ['{}']\nalerting:\n  alertmanagers:\n    - timeout: 2s\n      static_configs: [{{targets: ['{address}']}}]\n",
        file.display()
    );
    let pyrite = Pyrite::start(PyriteOpts {
        config: Some(config),
        extra_args: vec!["--alertmanager.notification-queue-capacity=5".into(), "--web.enable-lifecycle".into()],
        ..Default::default()
    });
    // Twenty alerts become due at once: the queue keeps five and counts the others dropped.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let series: Vec<WriteSeries> = (0..20)
        .map(|i| WriteSeries {
            labels: Labels::from_pairs([
                ("__name__".to_string(), "thing".to_string()),
                ("i".to_string(), i.to_string()),
            ]),
            samples: vec![Sample { t: now, v: 1.0 }],
            exemplars: Vec::new(),
            histograms: Vec::new(),
        })
        .collect();
    assert_eq!(pyrite.remote_write(encode_write_request(&series)).0, 204);
    let evaluations = || pyrite.metric("prometheus_rule_evaluations_total");
    eventually(Duration::from_secs(15), || {
        (pyrite.metric("prometheus_notifications_errors_total") >= 1.0).then_some(())
    })
    .expect("sending to the silent Alertmanager times out and is counted");
    // The silent Alertmanager's sent count exists at 0 beside its errors, as upstream's, so
    // that the mixin's errors / sent alert fires (+Inf) rather than finding no sent series.
    let text = pyrite.get("/metrics").1;
    let sent = text.lines().find(|l| l.starts_with("prometheus_notifications_sent_total{"));
    assert!(sent.is_some_and(|l| l.ends_with(" 0")), "{text}");
    let before = evaluations();
    std::thread::sleep(Duration::from_secs(5));
    let during = evaluations() - before;
    assert!(during >= 4.0, "{during} evaluations in 5 s while sends time out");
    let firing = pyrite.data("/api/v1/alerts")["alerts"].as_array().unwrap().len();
    assert_eq!(firing, 20);
    assert!(pyrite.metric("prometheus_notifications_dropped_total") >= 15.0, "a full queue drops and counts");
    // A reload that leaves the rule as it was keeps its alerts, visible at once.
    let active_since = |p: &Pyrite| -> Vec<String> {
        let alerts = p.data("/api/v1/alerts")["alerts"].as_array().unwrap().clone();
        let mut v: Vec<String> = alerts.iter().map(|a| a["activeAt"].as_str().unwrap().to_string()).collect();
        v.sort();
        v
    };
    let before = active_since(&pyrite);
    ureq::post(&format!("{}/-/reload", pyrite.url)).call().expect("reload");
    assert_eq!(active_since(&pyrite), before);
    drop(silent);
}

/// Alertmanagers found by file discovery and relabeled (one dropped, the path rewritten) are
/// listed as upstream lists them, for the same configuration.
#[test]
fn discovered_alertmanagers_are_listed_as_upstream_lists_them() {
    let dir = TempDir::new("am-sd");
    let targets = dir.0.join("alertmanagers.json");
    std::fs::write(&targets, r#"[{"targets": ["am-1:9093", "am-2:9093", "am-3:9093"], "labels": {"team": "sre"}}]"#)
        .unwrap();
    let config = format!(
        "alerting:\n  alertmanagers:\n    - path_prefix: /alertmanager\n      file_sd_configs: [{{files: ['{}']}}]\n      relabel_configs:\n        - {{source_labels: [__address__], regex: 'am-2:.*', action: drop}}\n        - {{source_labels: [team], target_label: __alerts_path__, replacement: '/$1/api/v2/alerts'}}\n",
        targets.display()
    );
    let pyrite = Pyrite::start(PyriteOpts { config: Some(config.clone()), ..Default::default() });
    let upstream = Upstream::start_configured(&config, &[]);
    let listed = |url: &str| -> Option<(Vec<String>, Vec<String>)> {
        let (_, body) = http_get(&format!("{url}/api/v1/alertmanagers")).ok()?;
        let data = &json(&body)["data"];
        let urls = |key: &str| -> Vec<String> {
            let list = data[key].as_array().cloned().unwrap_or_default();
            let mut v: Vec<String> = list.iter().filter_map(|a| a["url"].as_str().map(String::from)).collect();
            v.sort();
            v
        };
        let found = (urls("activeAlertmanagers"), urls("droppedAlertmanagers"));
        (found.0.len() == 2).then_some(found)
    };
    let ours = eventually(Duration::from_secs(15), || listed(&pyrite.url)).expect("Pyrite lists two Alertmanagers");
    let theirs =
        eventually(Duration::from_secs(15), || listed(&upstream.url)).expect("upstream lists two Alertmanagers");
    assert_eq!(ours.0, ["http://am-1:9093/sre/api/v2/alerts", "http://am-3:9093/sre/api/v2/alerts"]);
    assert_eq!(ours.0, theirs.0);
    assert_eq!(ours.1.len(), 1, "{ours:?}");
    assert_eq!(ours.1.len(), theirs.1.len(), "{theirs:?}");
}

/// The `activeAt` of the only alert, Unix seconds.
fn active_at(pyrite: &Pyrite) -> Option<f64> {
    let alerts = pyrite.data("/api/v1/alerts")["alerts"].as_array()?.clone();
    rfc3339_to_secs(alerts.first()?["activeAt"].as_str()?)
}

/// `2026-11-22T10:00:01.500Z` → Unix seconds.
fn rfc3339_to_secs(text: &str) -> Option<f64> {
    let (date, time) = text.trim_end_matches('Z').split_once('T')?;
    let d: Vec<i64> = date.split('-').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let days = pyrite_core::calendar::days_from_civil(d[0], d[1], d[2]);
    let fraction: f64 = format!("0.{frac}").parse().ok()?;
    Some((days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]) as f64 + fraction)
}

#[test]
fn a_pending_alert_keeps_its_progress_across_a_restart() {
    let rules = TempDir::new("rules");
    let file = rules.0.join("rules.yml");
    std::fs::write(&file, "groups:\n  - name: slow\n    interval: 1s\n    rules:\n      - alert: Slow\n        expr: vector(1)\n        for: 40s\n").unwrap();
    let config = format!("rule_files: ['{}']\n", file.display());
    let flags = vec!["--rules.alert.for-grace-period=1s".to_string()];
    let opts = PyriteOpts { config: Some(config), extra_args: flags, ..Default::default() };
    let pyrite = Pyrite::start(opts.clone());
    let first = eventually(Duration::from_secs(10), || active_at(&pyrite)).expect("a pending alert");
    std::thread::sleep(Duration::from_secs(12));
    let (port, data_dir) = (pyrite.port, pyrite.data_dir.clone());
    pyrite.process.signal(libc::SIGTERM);
    let mut pyrite = pyrite;
    pyrite.process.wait_exit(Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(3));
    let again = Pyrite::start(PyriteOpts { port: Some(port), data_dir: Some(data_dir), ..opts });
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    // Restored after the first evaluation: active since ~12 s of pending before the restart,
    // shifted by the downtime; a fresh alert would be active since the restart.
    let restored = eventually(Duration::from_secs(10), || {
        let at = active_at(&again)?;
        (at != first).then_some(at)
    })
    .expect("the alert is active again");
    let pending_for = now() - restored;
    assert!(pending_for >= 10.0, "pending for {pending_for:.1} s after the restart: its progress was lost");
    assert!(pending_for < 25.0, "pending for {pending_for:.1} s: the downtime was not added");
    assert!(restored > first, "activeAt moves forward by the downtime ({first} → {restored})");
}

/// Two Alertmanagers in one set, one that never answers: the other still gets each batch at
/// once, with the set's credentials, in API v2's shape.
#[test]
fn alerts_reach_a_healthy_alertmanager_beside_a_silent_one_with_credentials() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let (port, received) = webhook();
    let rules = TempDir::new("rules");
    let file = rules.0.join("rules.yml");
    std::fs::write(&file, "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: Now\n        expr: vector(1)\n        annotations: {summary: now}\n").unwrap();
    let config = format!(
        "rule_files: ['{}']\nglobal: {{external_labels: {{dc: eu}}}}\nalerting:\n  alertmanagers:\n    - timeout: 10s\n      basic_auth: {{username: u, password: p}}\n      static_configs: [{{targets: ['{}', '127.0.0.1:{port}']}}]\n",
        file.display(),
        silent.local_addr().unwrap()
    );
    let started = Instant::now();
    let _pyrite = Pyrite::start(PyriteOpts { config: Some(config), ..Default::default() });
    let (authorization, body) = eventually(Duration::from_secs(8), || received.lock().unwrap().first().cloned())
        .expect("the healthy Alertmanager got the alert");
    assert!(started.elapsed() < Duration::from_secs(8), "held up by the silent Alertmanager");
    assert_eq!(authorization.as_deref(), Some("Basic dTpw"));
    let alert = &body[0];
    assert_eq!((alert["labels"]["alertname"].as_str(), alert["labels"]["dc"].as_str()), (Some("Now"), Some("eu")));
    assert_eq!(alert["annotations"]["summary"], "now");
    for key in ["startsAt", "endsAt", "generatorURL"] {
        assert!(alert[key].is_string(), "{key} missing from {alert}");
    }
    drop(silent);
}

/// The `generatorURL` an Alertmanager holds for Pyrite's alert is upstream's link,
/// `<external URL>/graph?g0.expr=<expression>&g0.tab=1`, and opening it in a browser shows
/// Pyrite's query page with the expression in its box and its result in the table.
#[test]
fn the_generator_url_opens_the_alerts_expression_in_the_ui() {
    let expr = r#"label_replace(vector(1), "place", "a b&c", "", "") == 1"#;
    let (webhook_port, _received) = webhook();
    let am = start_alertmanager(webhook_port);
    let rules = TempDir::new("linked-rules");
    let rule_file = rules.0.join("rules.yml");
    let rule = format!(
        "groups:\n  - name: linked\n    interval: 1s\n    rules:\n      - alert: Linked\n        expr: '{expr}'\n"
    );
    std::fs::write(&rule_file, rule).unwrap();
    let config = format!(
        "global:\n  evaluation_interval: 1s\nrule_files: ['{}']\nalerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{}']}}]\n",
        rule_file.display(),
        am.url.trim_start_matches("http://")
    );
    let port = free_port();
    let external = format!("http://127.0.0.1:{port}/pyrite");
    let pyrite = Pyrite::start(PyriteOpts {
        config: Some(config),
        port: Some(port),
        extra_args: vec![format!("--web.external-url={external}/")],
        ..PyriteOpts::default()
    });
    let link = eventually(Duration::from_secs(20), || {
        let (_, body) = http_get(&format!("{}/api/v2/alerts", am.url)).ok()?;
        let alerts = json(&body);
        let alert = alerts.as_array()?.iter().find(|a| a["labels"]["alertname"] == "Linked")?.clone();
        Some(alert["generatorURL"].as_str()?.to_string())
    })
    .expect("Alertmanager holds Pyrite's alert");
    // Go's url.QueryEscape: percent-encoding with `+` for spaces.
    let escaped = pyrite_tests::encode(expr).replace("%20", "+");
    assert_eq!(link, format!("{external}/graph?g0.expr={escaped}&g0.tab=1"));

    let b = pyrite_tests::webdriver::Browser::start();
    b.goto(&link);
    let row = b.wait("the expression's result in the table", Duration::from_secs(10), || {
        b.find_all("#output tbody tr").into_iter().next()
    });
    assert_eq!(b.script("return document.getElementById('expr').value", serde_json::json!([])), expr);
    assert!(b.text(&row).contains(r#"place="a b&c""#), "{}", b.text(&row));
    let active = || b.script("return document.querySelector('.tabs .active').id", serde_json::json!([]));
    assert_eq!(active(), "tab-table", "g0.tab=1 is the table");
    // The templates' graphLink: g0.tab=0 is the graph.
    b.goto(&link.replace("g0.tab=1", "g0.tab=0"));
    b.wait("the graph", Duration::from_secs(10), || (!b.find_all("#graph path.series").is_empty()).then_some(()));
    assert_eq!(active(), "tab-graph");
    assert_eq!(pyrite.url, external);
}

#[test]
fn the_rules_api_filters_and_pages_as_upstream_3() {
    let rules = TempDir::new("rules");
    let file = rules.0.join("rules.yml");
    std::fs::write(
        &file,
        "groups:\n  - name: b\n    rules:\n      - alert: Ticket\n        expr: vector(1)\n        labels: {severity: ticket}\n  - name: a\n    limit: -1\n    rules:\n      - alert: Page\n        expr: vector(1)\n        labels: {severity: page}\n        annotations: {summary: ''}\n      - record: r:a\n        expr: vector(1)\n  - name: c\n    labels: {team: t}\n    rules:\n      - record: r:c\n        expr: vector(1)\n",
    )
    .unwrap();
    let pyrite = Pyrite::start(PyriteOpts {
        config: Some(format!("rule_files: ['{}']\n", file.display())),
        ..Default::default()
    });
    let names = |data: &Value| -> Vec<String> {
        data["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap().to_string()).collect()
    };
    // Sorted by file and name, as upstream lists (and pages) them.
    let all = pyrite.data("/api/v1/rules");
    assert_eq!(names(&all), ["a", "b", "c"]);
    assert_eq!(all["groups"][2]["rules"][0]["labels"]["team"], "t", "a group's labels are the rules'");
    // A negative limit is no limit, shown as written.
    assert_eq!(all["groups"][0]["limit"], -1);
    assert_eq!(all["groups"][0]["rules"][0]["annotations"]["summary"], "");
    assert!(all.get("groupNextToken").is_none(), "{all}");

    // Pages of two groups: the token names the next page's first group.
    let first = pyrite.data("/api/v1/rules?group_limit=2");
    assert_eq!(names(&first), ["a", "b"]);
    let token = first["groupNextToken"].as_str().expect("a next token").to_string();
    assert_eq!(token.len(), 64, "upstream's hex SHA-256: {token}");
    let second = pyrite.data(&format!("/api/v1/rules?group_limit=2&group_next_token={token}"));
    assert_eq!(names(&second), ["c"]);
    assert!(second.get("groupNextToken").is_none(), "{second}");

    // `match[]` selects rules by their labels; `type` and `exclude_alerts` are read as Go reads them.
    let paged = pyrite.data("/api/v1/rules?match[]={severity=\"page\"}");
    assert_eq!(names(&paged), ["a"]);
    assert_eq!(paged["groups"][0]["rules"].as_array().unwrap().len(), 1);
    let either = pyrite.data("/api/v1/rules?match[]={severity=\"page\"}&match[]={severity=\"ticket\"}");
    assert_eq!(names(&either), ["a", "b"]);
    assert_eq!(names(&pyrite.data("/api/v1/rules?match[]={team=\"t\"}")), ["c"]);
    assert_eq!(names(&pyrite.data("/api/v1/rules?type=RECORD&exclude_alerts=T")), ["a", "c"]);
    let without_alerts = pyrite.data("/api/v1/rules?type=alert&exclude_alerts=1");
    let rule = without_alerts["groups"][0]["rules"][0].as_object().unwrap().clone();
    assert_eq!(rule.get("alerts"), Some(&Value::Null), "null, as upstream's nil slice: {rule:?}");

    for (query, error) in [
        ("group_next_token=x", "group_limit needs to be present in order to paginate over the groups"),
        ("group_limit=0", "group_limit needs to be greater than 0"),
        ("group_limit=x", "group_limit needs to be a valid number: strconv.ParseInt: parsing \"x\": invalid syntax"),
        ("group_limit=1&group_next_token=nope", "invalid group_next_token 'nope'. were rule groups changed?"),
        ("match[]={}", "match[] must contain at least one non-empty matcher"),
        ("type=both", "invalid parameter \"type\": not supported value \"both\""),
        ("exclude_alerts=YES", "strconv.ParseBool: parsing \"yes\": invalid syntax"),
    ] {
        let (status, body) = pyrite.get(&format!("/api/v1/rules?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(json(&body)["errorType"], "bad_data", "{query}: {body}");
        assert!(json(&body)["error"].as_str().unwrap().contains(error), "{query}: {body}");
    }
}
