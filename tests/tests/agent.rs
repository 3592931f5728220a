//! Agent mode (`--agent`) against the real binary: scraping `pyrite-loadgen` targets and
//! remote-writing to Debian's Prometheus 2.42 receiver, every sample arrives; the query
//! endpoints answer as upstream 2.42's agent (`--enable-feature=agent`) answers them; the
//! configuration fields and flags agent mode refuses stop the start as upstream's do; series no
//! longer scraped are forgotten (but not while their samples are unsent); and the log's
//! segments go once sent but stay while the receiver is away, and are sent when it is back.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pyrite_tests::{eventually, free_port, http_get, json, Loadgen, Process, Pyrite, PyriteOpts, TempDir, Upstream};

fn agent(config: String, extra_args: &[&str]) -> Pyrite {
    Pyrite::start(PyriteOpts {
        config: Some(config),
        agent: true,
        shards: Some(1),
        extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    })
}

/// A `remote_write` section sending to `url`'s receiver within a fraction of a second.
fn remote_write(url: &str) -> String {
    format!("remote_write:\n  - url: {url}/api/v1/write\n    queue_config: {{batch_send_deadline: 200ms}}\n")
}

/// Replaces the agent's configuration file and reloads it.
fn reconfigure(p: &Pyrite, config: &str) {
    let path = p.data_dir.parent().expect("the data directory's parent").join("prometheus.yml");
    std::fs::write(path, config).expect("write config");
    p.process.signal(libc::SIGHUP);
}

/// The one number an instant query of `url` answers (0 if it answers nothing).
fn scalar(url: &str, query: &str, time: Option<f64>) -> f64 {
    let at = time.map(|t| format!("&time={t}")).unwrap_or_default();
    let (status, body) = http_get(&format!("{url}/api/v1/query?query={}{at}", pyrite_tests::encode(query))).unwrap();
    assert_eq!(status, 200, "{query}: {body}");
    let result = &json(&body)["data"]["result"];
    result[0]["value"][1].as_str().map_or(0.0, |v| v.parse().unwrap())
}

#[test]
fn every_scraped_sample_reaches_the_receiver() {
    let receiver = Upstream::start();
    let lg = Loadgen::start(2, 300);
    let p = agent(format!("{}{}", lg.scrape_config("lg", "1s"), remote_write(&receiver.url)), &[]);
    std::thread::sleep(Duration::from_secs(8));
    // Scraping stops (the targets' series get their staleness markers); the agent goes on
    // sending what it logged.
    reconfigure(&p, &format!("global:\n  scrape_interval: 1s\n{}", remote_write(&receiver.url)));
    let mut last = (0.0, 0.0);
    let appended = eventually(Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_secs(2));
        let now =
            (p.metric("prometheus_agent_samples_appended_total"), p.metric("prometheus_remote_storage_samples_total"));
        let settled = now == last && now.0 == now.1 && now.0 > 0.0;
        last = now;
        settled.then_some(now.0)
    })
    .unwrap_or_else(|| panic!("appended and sent samples did not settle at one count: {last:?}"));
    assert!(appended >= 2.0 * 300.0 * 5.0, "{appended} samples appended in 8 s of 1 s scrapes of 600 series");
    // The receiver (which scrapes nothing) appended every one, staleness markers included.
    let (_, metrics) = http_get(&format!("{}/metrics", receiver.url)).unwrap();
    let received = pyrite_tests::metric_sum(&metrics, "prometheus_tsdb_head_samples_appended_total", "");
    assert_eq!(received, appended, "samples appended by the receiver and by the agent");
    let series = scalar(&receiver.url, "count(last_over_time({job=\"lg\"}[10m]))", None);
    assert!(series >= 600.0, "{series} series at the receiver");
    assert_eq!(p.metric("prometheus_agent_active_series"), series, "the agent tracks every series it sent");
}

/// Upstream 2.42 in agent mode (`--enable-feature=agent`) with an empty configuration.
fn upstream_agent(dir: &Path) -> (Process, String) {
    let config = dir.join("agent.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .args(["--enable-feature=agent", "--log.level=warn"])
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.agent.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start upstream prometheus");
    let url = format!("http://127.0.0.1:{port}");
    let ready = eventually(Duration::from_secs(30), || {
        http_get(&format!("{url}/-/ready")).ok().filter(|(s, _)| *s == 200).map(drop)
    });
    assert!(ready.is_some(), "upstream agent not ready");
    (Process::new(child), url)
}

/// Status, error type and message of an answer (or its plain-text body).
fn answer(url: &str, path: &str) -> (u16, String) {
    let (status, body) = http_get(&format!("{url}{path}")).unwrap();
    match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(v) if v["status"] == "error" => (status, format!("{} {}", v["errorType"], v["error"])),
        _ if status == 200 => (status, String::new()),
        _ => (status, body.trim().to_string()),
    }
}

#[test]
fn query_endpoints_answer_as_upstreams_agent() {
    let dir = TempDir::new("upstream-agent");
    let (_upstream, upstream) = upstream_agent(&dir.0);
    let p = agent("global:\n  scrape_interval: 1h\n".into(), &[]);
    let refused = [
        "/api/v1/query?query=up",
        "/api/v1/query_range?query=up&start=0&end=60&step=15",
        "/api/v1/query_exemplars?query=up&start=0&end=60",
        "/api/v1/format_query?query=up",
        "/api/v1/series?match[]=up",
        "/api/v1/labels",
        "/api/v1/label/job/values",
        "/api/v1/rules",
        "/api/v1/alerts",
        "/api/v1/alertmanagers",
        "/api/v1/status/tsdb",
        "/federate?match[]=up",
    ];
    for path in refused {
        let theirs = answer(&upstream, path);
        assert_ne!(theirs.0, 200, "{path}: upstream's agent serves it");
        assert_eq!(answer(&p.url, path), theirs, "{path}");
    }
    let served = [
        "/-/healthy",
        "/-/ready",
        "/metrics",
        "/api/v1/status/config",
        "/api/v1/status/flags",
        "/api/v1/status/runtimeinfo",
        "/api/v1/status/buildinfo",
        "/api/v1/targets",
        "/api/v1/scrape_pools",
    ];
    for path in served {
        assert_eq!(answer(&upstream, path).0, 200, "{path} upstream");
        assert_eq!(answer(&p.url, path).0, 200, "{path}");
    }
    assert_eq!(p.get("/-/healthy").1, "Pyrite Agent is Healthy.\n");
    assert!(p.get("/metrics").1.contains("prometheus_agent_active_series "), "agent metrics exposed");
}

#[test]
fn agent_mode_refuses_rules_alerting_remote_read_and_server_flags() {
    let refused = [
        ("rule_files: [rules.yml]\n", "field rule_files is not allowed in agent mode"),
        (
            "alerting:\n  alertmanagers: [{static_configs: [{targets: ['127.0.0.1:9093']}]}]\n",
            "field alerting is not allowed in agent mode",
        ),
        ("remote_read: [{url: 'http://127.0.0.1:9/api/v1/read'}]\n", "field remote_read is not allowed in agent mode"),
    ];
    for (config, message) in refused {
        let mut p = Pyrite::spawn(PyriteOpts { config: Some(config.into()), agent: true, ..Default::default() });
        let (status, err) = p.process.wait_exit(Duration::from_secs(20));
        assert!(!status.success() && err.contains(message), "{config}: {status}: {err}");
        // promtool's `check config --agent`.
        let file = p.data_dir.parent().unwrap().join("prometheus.yml");
        let out =
            Command::new(pyrite_tests::bin("pyrite")).args(["check", "config", "--agent"]).arg(&file).output().unwrap();
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains(message),
            "check config --agent"
        );
        let out = Command::new(pyrite_tests::bin("pyrite")).args(["check", "config"]).arg(&file).output().unwrap();
        assert!(!String::from_utf8_lossy(&out.stderr).contains(message), "refused without --agent");
    }
    // A reload naming rules is refused too, and the running configuration stays.
    let p = agent("global:\n  scrape_interval: 1h\n".into(), &[]);
    reconfigure(&p, "rule_files: [rules.yml]\n");
    let failed = eventually(Duration::from_secs(10), || {
        (p.metric("prometheus_config_last_reload_successful") == 0.0).then_some(())
    });
    assert!(failed.is_some(), "the reload was not refused");
    // Flags of the other mode: upstream's message and exit code 3.
    let flags = [
        (true, "--query.timeout=1m", "The following flag(s) can not be used in agent mode: [\"--query.timeout\"]"),
        (
            false,
            "--storage.agent.retention.min-time=1m",
            "can only be used in agent mode: [\"--storage.agent.retention.min-time\"]",
        ),
    ];
    for (agent, flag, message) in flags {
        let opts = PyriteOpts { agent, extra_args: vec![flag.into()], ..Default::default() };
        let (status, err) = Pyrite::spawn(opts).process.wait_exit(Duration::from_secs(20));
        assert_eq!(status.code(), Some(3), "{flag}: {err}");
        assert!(err.contains(message), "{flag}: {err}");
    }
    let mut p = Pyrite::spawn(PyriteOpts {
        agent: true,
        extra_args: vec!["--storage.tsdb.path=x".into()],
        ..Default::default()
    });
    assert_eq!(p.process.wait_exit(Duration::from_secs(20)).0.code(), Some(3), "--storage.tsdb.path with --agent");
}

#[test]
fn series_no_longer_scraped_are_forgotten() {
    let lg = Loadgen::start(1, 200);
    let fast = ["--storage.agent.retention.min-time=2s", "--storage.agent.wal-truncate-frequency=1s"];
    let p = agent(lg.scrape_config("lg", "1s"), &fast);
    let active = eventually(Duration::from_secs(20), || {
        let n = p.metric("prometheus_agent_active_series");
        (n >= 200.0).then_some(n)
    });
    assert!(active.is_some(), "the scraped series are not tracked");
    reconfigure(&p, "global:\n  scrape_interval: 1s\n");
    let forgotten =
        eventually(Duration::from_secs(20), || (p.metric("prometheus_agent_active_series") == 0.0).then_some(()));
    assert!(forgotten.is_some(), "{} series still tracked", p.metric("prometheus_agent_active_series"));
    assert!(p.metric("prometheus_tsdb_head_series_removed_total") >= 200.0);
}

/// The log segments of the agent's one shard.
fn segments(p: &Pyrite) -> usize {
    let dir = p.data_dir.join("wal").join("0");
    let names = std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()?.file_name().into_string().ok());
    names.filter(|n| n.parse::<u64>().is_ok()).count()
}

/// Waits until at most `most` segments are left, or panics.
fn segments_down_to(p: &Pyrite, most: usize, why: &str) {
    let mut last = 0;
    let done = eventually(Duration::from_secs(60), || {
        last = segments(p);
        (last <= most).then_some(())
    });
    assert!(done.is_some(), "{why}: {last} segments left");
}

/// Two jobs, `kept` and `dropped`, one target each, every second, and the remote write.
fn two_jobs(lg: &Loadgen, receiver: &str, with_dropped: bool) -> String {
    let job =
        |name: &str, target: &str| format!("  - job_name: {name}\n    static_configs: [{{targets: ['{target}']}}]\n");
    let dropped = if with_dropped { job("dropped", &lg.targets[1]) } else { String::new() };
    format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n{}{dropped}{}",
        job("kept", &lg.targets[0]),
        remote_write(receiver)
    )
}

#[test]
fn log_segments_go_once_sent_and_stay_while_the_receiver_is_away() {
    let port = free_port();
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let receiver = Upstream::start_with(&[&listen]);
    let lg = Loadgen::start(2, 500);
    let flags = [
        "--storage.agent.retention.min-time=1s",
        "--storage.agent.wal-truncate-frequency=1s",
        "--storage.agent.wal-segment-size=64KB",
    ];
    let p = agent(two_jobs(&lg, &receiver.url, true), &flags);
    std::thread::sleep(Duration::from_secs(10));
    segments_down_to(&p, 6, "sent segments were not deleted");
    drop(receiver);
    let away = Instant::now();
    let outage_start = pyrite_tests_now();
    // A job stops being scraped while its last samples are unsent: its series stay.
    std::thread::sleep(Duration::from_secs(5));
    reconfigure(&p, &two_jobs(&lg, &format!("http://127.0.0.1:{port}"), false));
    std::thread::sleep(Duration::from_secs(25));
    let held = segments(&p);
    assert!(held >= 20, "only {held} segments kept while the receiver was away for 30 s");
    let active = p.metric("prometheus_agent_active_series");
    assert!(active >= 1010.0, "{active} series tracked: idle series with unsent samples were forgotten");
    let receiver = Upstream::start_with(&[&listen]);
    let outage_end = outage_start + away.elapsed().as_secs_f64();
    segments_down_to(&p, 6, "segments kept for the receiver were not deleted once sent");
    let forgotten =
        eventually(Duration::from_secs(30), || (p.metric("prometheus_agent_active_series") <= 505.0).then_some(()));
    assert!(forgotten.is_some(), "the dropped job's series were not forgotten once sent");
    // What was scraped while the receiver was away arrived.
    let during = |job: &str| {
        let q = format!("count_over_time(up{{job=\"{job}\"}}[{}s])", (outage_end - outage_start) as i64 - 2);
        scalar(&receiver.url, &q, Some(outage_end - 1.0))
    };
    let (kept, dropped) = (during("kept"), during("dropped"));
    assert!(kept >= 20.0, "{kept} scrapes of the outage at the receiver");
    assert!(dropped >= 3.0, "{dropped} scrapes of the dropped job before it was dropped, at the receiver");
}

/// Unix seconds now.
fn pyrite_tests_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}
