//! Reloading and stopping a running server: `/-/reload` and SIGHUP apply a new configuration
//! (unchanged targets keep their loop, removed ones go stale, new ones start), an invalid file is
//! refused with the old configuration kept, the lifecycle endpoints answer 403 without
//! `--web.enable-lifecycle`, and `/-/quit` shuts down cleanly. `pyrite health` and `pyrite
//! ready`, the container health checks, find the server from its own flags.

use std::time::Duration;

use pyrite_tests::{bin, eventually, fake_target, http_post_form, json, Loadgen, Pyrite, PyriteOpts};
use serde_json::Value;

fn config(targets: &[&String]) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [{}]\n", list.join(", "))
}

fn active(p: &Pyrite) -> Vec<Value> {
    p.data("/api/v1/targets")["activeTargets"].as_array().cloned().unwrap_or_default()
}

fn instances(p: &Pyrite) -> Vec<String> {
    let mut out: Vec<String> =
        active(p).iter().filter_map(|t| t["labels"]["instance"].as_str().map(str::to_string)).collect();
    out.sort();
    out
}

/// The series a target's scrape loops have added over the last minute (all of this test): a
/// loop adds its series on its first scrape only, so a restarted loop adds them again.
fn series_added(p: &Pyrite, instance: &str) -> Option<f64> {
    let r = p.query(&format!("sum_over_time(scrape_series_added{{instance=\"{instance}\"}}[1m])"), None);
    r[0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn reload_applies_a_new_config_keeps_unchanged_targets_and_refuses_a_bad_one() {
    let loadgen = Loadgen::start(3, 10);
    let [a, b, c] = [&loadgen.targets[0], &loadgen.targets[1], &loadgen.targets[2]];
    let p = Pyrite::start(PyriteOpts {
        shards: Some(2),
        config: Some(config(&[a, b])),
        extra_args: vec!["--web.enable-lifecycle".into()],
        ..PyriteOpts::default()
    });
    let config_file = p.data_dir.parent().unwrap().join("prometheus.yml");
    let both_up = eventually(Duration::from_secs(10), || {
        (active(&p).iter().filter(|t| t["health"] == "up").count() == 2).then_some(())
    });
    assert!(both_up.is_some(), "two targets up: {:?}", active(&p));
    let added = series_added(&p, a).expect("a's report series");
    assert!(added > 0.0);

    // Keep a, drop b, add c.
    std::fs::write(&config_file, config(&[a, c])).unwrap();
    let (status, body) = http_post_form(&format!("{}/-/reload", p.url), &[]).unwrap();
    assert_eq!((status, body.as_str()), (200, ""));
    let mut expected = vec![a.clone(), c.clone()];
    expected.sort();
    assert_eq!(instances(&p), expected);
    let settled = eventually(Duration::from_secs(10), || {
        let c_up = active(&p).iter().any(|t| t["labels"]["instance"] == c.as_str() && t["health"] == "up");
        let b_stale = p.query(&format!("up{{instance=\"{b}\"}}"), None).as_array().is_some_and(Vec::is_empty);
        (c_up && b_stale).then_some(())
    });
    assert!(settled.is_some(), "c scraped and b's series stale after the reload");
    // a kept its loop and its scrape cache: no scrape of a added series since.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(series_added(&p, a), Some(added), "the unchanged target was restarted");
    assert_eq!(p.metric("prometheus_config_last_reload_successful"), 1.0);

    // A broken file is refused; the running configuration stays.
    std::fs::write(&config_file, "scrape_configs:\n  - job_name: app\n    scrape_interval: often\n").unwrap();
    let (status, body) = http_post_form(&format!("{}/-/reload", p.url), &[]).unwrap();
    assert_eq!(status, 500);
    assert!(body.starts_with("failed to reload config: ") && body.contains("scrape_interval"), "{body}");
    assert_eq!(p.metric("prometheus_config_last_reload_successful"), 0.0);
    assert_eq!(instances(&p), expected);
    assert!(p.data("/api/v1/status/config")["yaml"].as_str().unwrap().contains(c.as_str()));
    assert_eq!(p.data("/api/v1/status/runtimeinfo")["reloadConfigSuccess"], false);

    // SIGHUP applies a valid file.
    std::fs::write(&config_file, config(&[b])).unwrap();
    p.process.signal(libc::SIGHUP);
    let applied = eventually(Duration::from_secs(10), || (instances(&p) == vec![b.clone()]).then_some(()));
    assert!(applied.is_some(), "SIGHUP did not apply the new configuration: {:?}", instances(&p));
    assert_eq!(p.metric("prometheus_config_last_reload_successful"), 1.0);
    assert_eq!(p.data("/api/v1/scrape_pools")["scrapePools"], serde_json::json!(["app"]));

    // /-/quit shuts down as SIGTERM does.
    let (status, body) = http_post_form(&format!("{}/-/quit", p.url), &[]).unwrap();
    assert_eq!((status, body.as_str()), (200, "Requesting termination... Goodbye!"));
    let mut p = p;
    let (exit, _) = p.process.wait_exit(Duration::from_secs(30));
    assert!(exit.success(), "{exit}");
}

#[test]
fn lifecycle_endpoints_are_forbidden_unless_enabled() {
    let p = Pyrite::start(PyriteOpts::default());
    for path in ["/-/reload", "/-/quit"] {
        let (status, body) = http_post_form(&format!("{}{path}", p.url), &[]).unwrap();
        assert_eq!((status, body.as_str()), (403, "Lifecycle API is not enabled."), "{path}");
    }
    let (status, _) = p.get("/-/reload");
    assert_eq!(status, 405);
    assert_eq!(json(&p.get("/api/v1/status/flags").1)["data"]["web.enable-lifecycle"], "false");
    let mut p = p;
    assert!(p.process.exited().is_none(), "a refused /-/quit stopped the server");
}

/// Runs `pyrite <args>`: whether it exited 0, what it printed, and how long it took.
fn probe(args: &[&str]) -> (bool, String, Duration) {
    let started = std::time::Instant::now();
    let out = std::process::Command::new(bin("pyrite")).args(args).output().expect("run pyrite");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text, started.elapsed())
}

#[test]
fn the_health_probes_find_the_server_behind_its_route_prefix_from_its_own_flags() {
    let external = "--web.external-url=http://lb.example.com/prometheus";
    let p = Pyrite::start(PyriteOpts { extra_args: vec![external.into()], ..Default::default() });
    let listen = format!("--web.listen-address=127.0.0.1:{}", p.port);
    for command in ["health", "ready"] {
        let (ok, out, _) = probe(&[command, &listen, external]);
        assert!(ok, "pyrite {command} with the server's flags: {out}");
    }
    assert!(probe(&["health", &listen, external]).1.contains("Healthy"));
    assert!(probe(&["ready", "--url", &format!("http://127.0.0.1:{}/prometheus", p.port)]).0);
    // A URL with a query would ask another page (the UI answers 200): refused.
    let (ok, out, _) = probe(&["health", "--url", &format!("http://127.0.0.1:{}/prometheus?x=1", p.port)]);
    assert!(!ok && out.contains("without a query"), "{out}");
    // Without the prefix the probe asks /-/healthy, which the server does not serve.
    let (ok, out, _) = probe(&["health", &listen]);
    assert!(!ok && out.contains("404"), "{out}");
    // Nobody answering: a failure within the timeout.
    let silent = fake_target(None);
    let (ok, out, took) = probe(&["health", "--url", &format!("http://{silent}"), "--timeout", "1s"]);
    assert!(!ok, "{out}");
    assert!(took < Duration::from_secs(5), "the probe took {took:?} with a 1 s timeout");
}

/// A reload runs off the shard that serves `/-/reload`: while it waits for a removed
/// remote-write queue whose request hangs, that shard still answers queries. (Run on the shard,
/// it held every query there until the request timed out; a queue asking that shard to name
/// its series waited for it the whole 30 s of its own timeout.) Requests that come meanwhile
/// wait for the next reload without a thread each, and are all answered.
#[test]
fn a_slow_reload_does_not_hold_the_shard_serving_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    // A remote-write endpoint that takes requests and never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_url = format!("http://{}/write", hole.local_addr().unwrap());
    let asked = Arc::new(AtomicBool::new(false));
    let noticed = asked.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in hole.incoming().flatten() {
            noticed.store(true, Ordering::Relaxed);
            held.push(conn);
        }
    });
    let loadgen = Loadgen::start(1, 10);
    let scraped = config(&[&loadgen.targets[0]]);
    let with_queue = format!(
        "{scraped}remote_write:\n  - {{url: '{hole_url}', remote_timeout: 6s, queue_config: {{batch_send_deadline: 100ms}}}}\n"
    );
    let p = Pyrite::start(PyriteOpts {
        shards: Some(1),
        config: Some(with_queue),
        extra_args: vec!["--web.enable-lifecycle".into()],
        ..PyriteOpts::default()
    });
    assert!(
        eventually(Duration::from_secs(15), || asked.load(Ordering::Relaxed).then_some(())).is_some(),
        "the queue sent a request"
    );
    std::fs::write(p.data_dir.parent().unwrap().join("prometheus.yml"), &scraped).unwrap();
    let url = p.url.clone();
    let reload = std::thread::spawn(move || http_post_form(&format!("{url}/-/reload"), &[]));
    std::thread::sleep(Duration::from_millis(500));
    let asked_at = Instant::now();
    let answer = p.query("1 + 1", None);
    let took = asked_at.elapsed();
    assert!(!reload.is_finished(), "the reload was still waiting for the queue's request");
    assert_eq!(answer[1], "2", "{answer}");
    assert!(took < Duration::from_secs(2), "a query during the reload took {took:?}");
    let threads = p.process.threads();
    let waiting: Vec<_> = (0..32)
        .map(|_| {
            let url = p.url.clone();
            std::thread::spawn(move || http_post_form(&format!("{url}/-/reload"), &[]))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert!(!reload.is_finished(), "the reload was still waiting for the queue's request");
    let more = p.process.threads().saturating_sub(threads);
    assert!(more < 8, "32 reload requests waiting took {more} threads more");
    assert_eq!(reload.join().unwrap(), Ok((200, String::new())));
    for answer in waiting {
        assert_eq!(answer.join().unwrap(), Ok((200, String::new())));
    }
}
