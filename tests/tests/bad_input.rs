//! Bad input from outside gets a clear error and the server keeps serving.

use std::time::Duration;

use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::Sample;
use pyrite_tests::{encode, eventually, fake_target, http_get, json, Pyrite, PyriteOpts};

#[test]
fn garbage_and_hanging_targets_are_down_with_the_server_still_serving() {
    let garbage = fake_target(Some(
        "HTTP/1.1 200 OK\r\nContent-Length: 30\r\nConnection: close\r\n\r\n<html>not metrics</html>\n\n\n\n\n",
    ));
    let malformed_line = fake_target(Some(
        "HTTP/1.1 200 OK\r\nContent-Length: 24\r\nConnection: close\r\n\r\ngood 1\nbad{ 2\nworse 3\n\n",
    ));
    let bad_gzip = fake_target(Some(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot gzip\n",
    ));
    let hanging = fake_target(None);
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\nscrape_configs:\n  - job_name: bad\n    static_configs:\n      - targets: [\"{garbage}\", \"{malformed_line}\", \"{bad_gzip}\", \"{hanging}\"]\n"
    );
    let p = Pyrite::start(PyriteOpts { config: Some(config), ..Default::default() });
    let down = eventually(Duration::from_secs(10), || {
        let r = p.query("up == 0", None);
        (r.as_array()?.len() == 4).then_some(())
    });
    assert!(down.is_some(), "all four bad targets should be down: {}", p.query("up", None));
    // Nothing of the malformed body was stored, not even its valid first line.
    assert!(p.query("good", None).as_array().expect("vector").is_empty());
    // The hanging target's scrape was cut at the timeout.
    let d = p.query(&format!("scrape_duration_seconds{{instance=\"{hanging}\"}}"), None);
    let secs: f64 = d[0]["value"][1].as_str().expect("value").parse().expect("float");
    assert!((0.4..1.0).contains(&secs), "hanging scrape took {secs} s");
    assert_eq!(p.query("1", None)[1], "1");
}

#[test]
fn bad_remote_write_bodies_get_400_and_store_nothing() {
    let p = Pyrite::start(PyriteOpts::default());
    let (status, body) = p.remote_write(b"definitely not snappy".to_vec());
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("snappy"), "{body}");
    let not_protobuf = vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f];
    let framed = {
        // A valid snappy frame around bytes that are not a WriteRequest.
        let mut e = Vec::new();
        e.push(not_protobuf.len() as u8);
        e.push(((not_protobuf.len() - 1) << 2) as u8);
        e.extend(&not_protobuf);
        e
    };
    let (status, body) = p.remote_write(framed);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("protobuf"), "{body}");
    // A request with one good and one invalid series stores neither.
    let good = WriteSeries {
        labels: Labels::from_pairs([("__name__", "rw_good")]),
        samples: vec![Sample { t: 1_000, v: 1.0 }],
        exemplars: Vec::new(),
        histograms: Vec::new(),
    };
    let bad = WriteSeries {
        labels: Labels::from_pairs([("job", "no-name")]),
        samples: vec![Sample { t: 1_000, v: 1.0 }],
        exemplars: Vec::new(),
        histograms: Vec::new(),
    };
    let (status, body) = p.remote_write(encode_write_request(&[good.clone(), bad]));
    assert_eq!(status, 400, "{body}");
    assert!(p.query("rw_good", Some(1.0)).as_array().expect("vector").is_empty());
    // Out-of-order samples are refused with 400 and counted; the server keeps the in-order data.
    assert_eq!(p.remote_write(encode_write_request(std::slice::from_ref(&good))).0, 204);
    let old = WriteSeries { samples: vec![Sample { t: 500, v: 2.0 }], ..good };
    let (status, body) = p.remote_write(encode_write_request(&[old]));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("out of order"), "{body}");
    assert_eq!(p.query("rw_good", Some(1.0))[0]["value"][1], "1");
    assert!(p.get("/metrics").1.contains("prometheus_tsdb_out_of_order_samples_total{type=\"float\"}"));
}

#[test]
fn invalid_queries_get_bad_data() {
    let p = Pyrite::start(PyriteOpts::default());
    let cases = [
        ("/api/v1/query?query=sum(", 400, "bad_data", "invalid parameter \"query\": 1:5: parse error"),
        ("/api/v1/query?query=", 400, "bad_data", "no expression found in input"),
        ("/api/v1/query?query=up&time=yesterday", 400, "bad_data", "invalid parameter \"time\""),
        (
            "/api/v1/query_range?query=up&start=10&end=5&step=1",
            400,
            "bad_data",
            "end timestamp must not be before start time",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=5&step=0",
            400,
            "bad_data",
            "zero or negative query resolution step",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=100000&step=1",
            400,
            "bad_data",
            "exceeded maximum resolution of 11,000 points",
        ),
        (
            "/api/v1/query_range?query=up[5m]&start=0&end=5&step=1",
            400,
            "bad_data",
            "invalid expression type \"range vector\" for range query",
        ),
        ("/api/v1/series", 400, "bad_data", "no match[] parameter provided"),
        ("/api/v1/series?match[]=rate(up[5m])", 400, "bad_data", "is not a series selector"),
        ("/api/v1/label/job/values?limit=-1", 400, "bad_data", "limit must be non-negative"),
        ("/api/v1/labels?limit=x", 400, "bad_data", "invalid parameter \"limit\""),
        ("/api/v1/query?query=up&timeout=soon", 400, "bad_data", "invalid parameter \"timeout\""),
        ("/api/v1/query_exemplars?query=up{&start=1&end=2", 400, "bad_data", "invalid parameter \"query\""),
    ];
    for (path, status, kind, message) in cases {
        let (got_status, body) = http_get(&format!("{}{path}", p.url)).expect("request");
        let v = json(&body);
        assert_eq!(got_status, status, "{path}: {body}");
        assert_eq!(v["status"], "error", "{path}");
        assert_eq!(v["errorType"], kind, "{path}: {body}");
        assert!(v["error"].as_str().unwrap_or("").contains(message), "{path}: {body}");
    }
    // A histogram function over float series is no error: nothing, as upstream.
    let (status, body) = http_get(&format!("{}/api/v1/query?query=histogram_count(up)", p.url)).expect("request");
    assert_eq!((status, json(&body)["data"]["result"].as_array().map(Vec::len)), (200, Some(0)), "{body}");
    // POST form works like GET.
    let (status, body) =
        pyrite_tests::http_post_form(&format!("{}/api/v1/query", p.url), &[("query", "2 * 3")]).expect("post");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["data"]["result"][1], "6");
    assert_eq!(p.query(&encode("1"), None)[1], "1");
}

#[test]
fn invalid_configs_are_refused_naming_file_and_key() {
    let rules = pyrite_tests::TempDir::new("bad-rules");
    let bad_rules = rules.0.join("rules.yml");
    std::fs::write(&bad_rules, "groups:\n  - name: g\n    rules:\n      - record: 'not a name'\n        expr: up\n")
        .unwrap();
    let rule_config = format!("rule_files: ['{}']\n", bad_rules.display());
    let rule_error = format!(
        "error loading rules: {}: group \"g\", rule 1, \"not a name\": invalid recording rule name",
        bad_rules.display()
    );
    for (config, expected) in [
        (
            "storage: {tsdb: {retention: {time: 1d}}}\n",
            "prometheus.yml: storage.tsdb.retention: key is valid in Prometheus but not supported by Pyrite yet",
        ),
        (rule_config.as_str(), rule_error.as_str()),
        (
            "scrape_configs:\n  - job_name: a\n    scrape_intervl: 1m\n",
            "prometheus.yml: scrape_configs[0].scrape_intervl: unknown key",
        ),
        ("global:\n  scrape_interval: often\n", "prometheus.yml: global.scrape_interval: not a valid duration string"),
        ("global: [\n", "prometheus.yml: "),
    ] {
        let mut p = Pyrite::spawn(PyriteOpts { config: Some(config.into()), ..Default::default() });
        let (status, err) = p.process.wait_exit(Duration::from_secs(20));
        assert!(!status.success(), "{config}");
        assert!(err.contains(expected), "{config}: {err}");
    }
}
