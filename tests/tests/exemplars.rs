//! Exemplars against the real binary and Debian's upstream Prometheus 2.42, both with
//! `--enable-feature=exemplar-storage`: scraped from an OpenMetrics target of our own,
//! remote-written, kept across a restart, and answered by `/api/v1/query_exemplars` as
//! upstream answers.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::{Exemplar, Sample};
use pyrite_tests::{eventually, http_get, json, remote_write_to, Pyrite, PyriteOpts, Upstream};
use serde_json::Value;

const FEATURE: &str = "--enable-feature=exemplar-storage";

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// An OpenMetrics target whose exemplars change every two seconds (generation `n`): one with a
/// timestamp of its own (the generation's start), two without (dated by each scrape), one of
/// them on a histogram bucket, and a series without any.
fn openmetrics_target() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind target");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let n = (now_secs() / 2.0).floor();
            let body = format!(
                "# TYPE req counter\n\
                 req_total{{path=\"/a\"}} {a} # {{trace_id=\"a{n}\"}} 1.5 {own:.3}\n\
                 req_total{{path=\"/b\"}} {n} # {{trace_id=\"b{n}\",span_id=\"s\"}} {n}\n\
                 # TYPE lat histogram\n\
                 lat_bucket{{le=\"0.1\"}} {n} # {{trace_id=\"l{n}\"}} 0.05\n\
                 lat_bucket{{le=\"+Inf\"}} {n}\nlat_count {n}\nlat_sum 1\n\
                 # TYPE plain gauge\nplain 1\n# EOF\n",
                a = 3.0 * n,
                own = n * 2.0,
            );
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    addr
}

/// `query_exemplars`' data: per series (labels as `k=v` text), its exemplars as
/// (labels text, value, timestamp in ms).
type Found = Vec<(String, Vec<(String, String, i64)>)>;

fn exemplars(base: &str, query: &str, start: f64, end: f64) -> Found {
    let q = pyrite_tests::encode(query);
    let (status, body) =
        http_get(&format!("{base}/api/v1/query_exemplars?query={q}&start={start:.3}&end={end:.3}")).expect("ask");
    assert_eq!(status, 200, "{body}");
    let text = |v: &Value| {
        let mut pairs: Vec<String> =
            v.as_object().expect("labels").iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap())).collect();
        pairs.sort();
        pairs.join(",")
    };
    json(&body)["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|s| {
            let found = s["exemplars"].as_array().expect("exemplars").iter().map(|e| {
                let t = (e["timestamp"].as_f64().expect("seconds") * 1000.0).round() as i64;
                (text(&e["labels"]), e["value"].as_str().expect("value as a string").to_string(), t)
            });
            (text(&s["seriesLabels"]), found.collect())
        })
        .collect()
}

fn config(target: &str) -> String {
    let job = format!("  - job_name: ex\n    static_configs:\n      - targets: ['{target}']\n");
    format!("global:\n  scrape_interval: 1s\nscrape_configs:\n{job}")
}

/// Both servers scrape the same target; over a window both saw whole, they hold the same
/// exemplars: the same series in the same order, the same exemplars with their own times, and
/// the same exemplars without (one per change: a repeated one is a duplicate), whose times are
/// each server's scrape times.
#[test]
fn scraped_exemplars_are_kept_as_upstream_keeps_them() {
    let target = openmetrics_target();
    let config = config(&target);
    let pyrite = Pyrite::start(PyriteOpts {
        shards: Some(2),
        config: Some(config.clone()),
        extra_args: vec![FEATURE.into()],
        ..Default::default()
    });
    let upstream = Upstream::start_configured(&config, &[FEATURE]);
    // Generations that start after both scrape (upstream applies its targets up to five
    // seconds after its start, then scrapes each second) and end before the question: each
    // server saw each of them.
    let from = now_secs() + 7.0;
    std::thread::sleep(Duration::from_secs(18));
    let to = now_secs() - 2.5;
    let query = "sum(rate(req_total[1m])) or lat_bucket or plain";
    let (ours, theirs) = (exemplars(&pyrite.url, query, from, to), exemplars(&upstream.url, query, from, to));
    assert_eq!(ours.len(), 3, "three series carry exemplars: {ours:?}");
    let names = |f: &Found| f.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&theirs), "the same series, in upstream's order");
    for ((series, ours), (_, theirs)) in ours.iter().zip(&theirs) {
        if series.contains("path=/a") {
            assert!(ours.len() >= 3, "{ours:?}");
            assert_eq!(ours, theirs, "exemplars with their own times: {series}");
        } else {
            let untimed =
                |e: &[(String, String, i64)]| e.iter().map(|(l, v, _)| (l.clone(), v.clone())).collect::<Vec<_>>();
            // The windows' edges may cut a generation from one server and not the other.
            let (a, b) = (untimed(ours), untimed(theirs));
            let common: Vec<_> = a.iter().filter(|x| b.contains(x)).cloned().collect();
            assert!(common.len() >= 3 && common.len() + 2 >= a.len().max(b.len()), "{series}: {a:?} against {b:?}");
            let mut distinct = a.clone();
            distinct.dedup();
            assert_eq!(distinct, a, "each exemplar once: {series}");
        }
    }
    // No selector at all: upstream answers 204 (without a body, which ureq cannot read).
    for base in [&pyrite.url, &upstream.url] {
        let answer = ureq::get(&format!("{base}/api/v1/query_exemplars?query=1")).call().expect("an answer");
        assert_eq!(answer.status(), 204);
    }
    // A range before anything, and a selector without exemplars.
    assert_eq!(exemplars(&pyrite.url, query, 0.0, 1.0), exemplars(&upstream.url, query, 0.0, 1.0));
    assert_eq!(exemplars(&pyrite.url, "plain", from, to), Vec::new());
    assert_eq!(exemplars(&upstream.url, "plain", from, to), Vec::new());
    let series_with = |base: &str| {
        let (_, text) = http_get(&format!("{base}/metrics")).expect("metrics");
        pyrite_tests::metric_sum(&text, "prometheus_tsdb_exemplar_series_with_exemplars_in_storage", "")
    };
    assert_eq!(series_with(&pyrite.url), 3.0);
    assert_eq!(series_with(&pyrite.url), series_with(&upstream.url));
}

/// An agent keeps scraped exemplars without the feature flag, as upstream's agent, and its
/// queue forwards them with `send_exemplars`: the receiver holds those the target served, with
/// their own times.
#[test]
fn an_agent_forwards_scraped_exemplars() {
    let receiver = Pyrite::start(PyriteOpts {
        config: Some("global:\n  scrape_interval: 1h\n".into()),
        extra_args: vec![FEATURE.into()],
        ..Default::default()
    });
    let queue = format!(
        "remote_write:\n  - url: {}/api/v1/write\n    queue_config: {{batch_send_deadline: 500ms}}\n    send_exemplars: true\n",
        receiver.url
    );
    let _agent = Pyrite::start(PyriteOpts {
        config: Some(format!("{}{queue}", config(&openmetrics_target()))),
        agent: true,
        ..Default::default()
    });
    let query = "req_total{path=\"/a\"}";
    let found = eventually(Duration::from_secs(20), || {
        let got = exemplars(&receiver.url, query, 0.0, now_secs());
        got.first().is_some_and(|(_, e)| e.len() >= 3).then_some(got)
    });
    let found = found.unwrap_or_else(|| panic!("{:?}", exemplars(&receiver.url, query, 0.0, now_secs())));
    for (labels, value, t) in &found[0].1 {
        // The target's generation n serves trace a<n> at n × 2 s.
        assert_eq!(*labels, format!("trace_id=a{}", t / 2000), "{found:?}");
        assert_eq!(value, "1.5");
    }
}

fn exemplar(trace: &str, value: f64, t: i64) -> Exemplar {
    Exemplar { labels: Labels::from_pairs([("trace_id", trace)]), value, t, has_ts: true }
}

/// Remote-written exemplars are kept as upstream keeps them (an out-of-order one dropped, the
/// request accepted), survive a restart through the log, and none are kept without the feature.
#[test]
fn remote_written_exemplars_are_kept_and_survive_a_restart() {
    let t0 = (now_secs() as i64 - 60) * 1000;
    let series = |exemplars: Vec<Exemplar>, samples: Vec<Sample>| WriteSeries {
        labels: Labels::from_pairs([("__name__", "rw_total"), ("job", "w")]),
        samples,
        exemplars,
        histograms: Vec::new(),
    };
    let first = encode_write_request(&[series(
        vec![exemplar("x1", 1.0, t0), exemplar("x2", 2.0, t0 + 1000)],
        vec![Sample { t: t0, v: 1.0 }, Sample { t: t0 + 1000, v: 2.0 }],
    )]);
    // An older exemplar, and exemplars for a series nobody wrote samples for.
    let second = encode_write_request(&[
        series(
            vec![exemplar("old", 9.0, t0 - 5000), exemplar("x3", 3.0, t0 + 2000)],
            vec![Sample { t: t0 + 2000, v: 3.0 }],
        ),
        WriteSeries {
            labels: Labels::from_pairs([("__name__", "nothing")]),
            samples: vec![],
            exemplars: vec![exemplar("y", 1.0, t0)],
            histograms: Vec::new(),
        },
    ]);
    let data = pyrite_tests::TempDir::new("exemplars");
    let opts = |extra: Vec<String>| PyriteOpts {
        shards: Some(2),
        data_dir: Some(data.0.join("data")),
        config: Some("global:\n  scrape_interval: 1h\n".into()),
        extra_args: extra,
        ..Default::default()
    };
    let mut pyrite = Pyrite::start(opts(vec![FEATURE.into()]));
    let upstream = Upstream::start_with(&[FEATURE]);
    for body in [&first, &second] {
        assert_eq!(pyrite.remote_write(body.clone()).0, 204);
        assert_eq!(remote_write_to(&upstream.url, body).0, 204);
    }
    let (from, to) = (t0 as f64 / 1000.0 - 60.0, now_secs());
    let query = "rw_total or nothing";
    let ours = exemplars(&pyrite.url, query, from, to);
    assert_eq!(ours, exemplars(&upstream.url, query, from, to));
    assert_eq!(
        ours[0].1.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["trace_id=x1", "trace_id=x2", "trace_id=x3"]
    );
    assert_eq!(pyrite.metric("prometheus_tsdb_exemplar_out_of_order_exemplars_total"), 1.0);
    // Only the range asked for.
    let middle = exemplars(&pyrite.url, query, t0 as f64 / 1000.0 + 0.5, t0 as f64 / 1000.0 + 1.5);
    assert_eq!(middle[0].1.len(), 1);

    pyrite.process.signal(libc::SIGKILL);
    pyrite.process.wait_exit(Duration::from_secs(10));
    let restarted = Pyrite::start(opts(vec![FEATURE.into()]));
    assert_eq!(exemplars(&restarted.url, query, from, to), ours, "replayed from the log");
    drop(restarted);

    let without = Pyrite::start(PyriteOpts { data_dir: None, ..opts(vec![]) });
    assert_eq!(without.remote_write(first).0, 204);
    assert_eq!(exemplars(&without.url, query, from, to), Vec::new(), "no exemplar storage without the feature");
}

/// A scraping server sends its exemplars with `send_exemplars: true`, over 1.0 and 2.0: the
/// receivers (Pyrite, and upstream over 1.0) end up with the sender's exemplars, times and all;
/// a queue without the option sends none.
#[test]
fn exemplars_are_remote_written_with_send_exemplars() {
    let receiver = |shards| {
        Pyrite::start(PyriteOpts {
            shards: Some(shards),
            config: Some("global:\n  scrape_interval: 1h\n".into()),
            extra_args: vec![FEATURE.into()],
            ..Default::default()
        })
    };
    let (v1, v2, without) = (receiver(2), receiver(1), receiver(1));
    let upstream = Upstream::start_with(&[FEATURE]);
    let queue = |url: &str, extra: &str| {
        format!("  - url: {url}/api/v1/write\n    queue_config: {{batch_send_deadline: 500ms}}\n{extra}")
    };
    let config = format!(
        "{}remote_write:\n{}{}{}{}",
        config(&openmetrics_target()),
        queue(&v1.url, "    send_exemplars: true\n"),
        queue(&v2.url, "    send_exemplars: true\n    protobuf_message: io.prometheus.write.v2.Request\n"),
        queue(&upstream.url, "    send_exemplars: true\n"),
        queue(&without.url, ""),
    );
    let sender = Pyrite::start(PyriteOpts {
        shards: Some(2),
        config: Some(config),
        extra_args: vec![FEATURE.into()],
        ..Default::default()
    });
    std::thread::sleep(Duration::from_secs(6));
    let (from, to) = (0.0, now_secs() - 1.0);
    let query = "req_total or lat_bucket";
    let sent = exemplars(&sender.url, query, from, to);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent.iter().all(|(_, e)| e.len() >= 2), "{sent:?}");
    // The job and instance labels are the sender's: the receivers hold the same series.
    for base in [&v1.url, &v2.url, &upstream.url] {
        let received = eventually(Duration::from_secs(15), || {
            let got = exemplars(base, query, from, to);
            (got == sent).then_some(got)
        });
        assert!(received.is_some(), "{base}: {:?} against {sent:?}", exemplars(base, query, from, to));
    }
    assert!(exemplars(&without.url, query, from, to).is_empty());
    assert!(without.query("count(req_total)", None)[0]["value"][1] == "2", "its samples arrive all the same");
    assert!(sender.metric("prometheus_remote_storage_exemplars_total") >= 3.0 * 6.0);
}
