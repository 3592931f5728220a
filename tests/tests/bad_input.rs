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
fn bad_remote_write_bodies_get_400_and_invalid_series_are_skipped() {
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
    // A series with invalid labels is skipped and the others are stored, as upstream's
    // receiver does (a 400 would make the sender drop them all).
    let series = |name: &str, label: (&str, &str)| WriteSeries {
        labels: Labels::from_pairs([("__name__", name), label]),
        samples: vec![Sample { t: 1_000, v: 1.0 }],
        exemplars: Vec::new(),
        histograms: Vec::new(),
    };
    let good = series("rw_good", ("job", "a"));
    let nameless = WriteSeries { labels: Labels::from_pairs([("job", "no-name")]), ..good.clone() };
    let after = series("rw_after", ("job", "b"));
    let (status, body) = p.remote_write(encode_write_request(&[good.clone(), nameless, after]));
    assert_eq!(status, 204, "{body}");
    assert_eq!(p.query("count(rw_good) + count(rw_after)", Some(1.0))[0]["value"][1], "2");
    assert_eq!(p.query("count({job=\"no-name\"})", Some(1.0)).as_array().map(Vec::len), Some(0));
    // Out-of-order samples are refused with 400 and counted; the server keeps the in-order data.
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
        ("/api/v1/series?match[]=rate(up[5m])", 400, "bad_data", "invalid parameter \"match[]\": 1:5: parse error"),
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
    let rule_config =
        format!("global: {{metric_name_validation_scheme: legacy}}\nrule_files: ['{}']\n", bad_rules.display());
    let rule_error = format!(
        "error loading rules: {}: group \"g\", rule 1, \"not a name\": invalid recording rule name",
        bad_rules.display()
    );
    for (config, expected) in [
        (
            "storage: {tsdb: {chunk_encoding: {floats: xor}}}\n",
            "prometheus.yml: storage.tsdb.chunk_encoding: key is valid in Prometheus but not supported by Pyrite yet",
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

/// A request's status with its error message, or with its data on success (empty for 204).
fn outcome((status, body): (u16, String)) -> (u16, serde_json::Value) {
    let v = if body.is_empty() { serde_json::Value::Null } else { json(&body) };
    (status, if status < 300 { v["data"].clone() } else { v["error"].clone() })
}

/// POSTs `body` as `content_type`.
fn post(url: &str, content_type: &str, body: &str) -> (u16, String) {
    let r = ureq::post(url).timeout(Duration::from_secs(10)).set("Content-Type", content_type).send_string(body);
    match r {
        // A 204's body is empty (ureq reports it as cut short).
        Ok(resp) => (resp.status(), resp.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap_or_default()),
        Err(e) => panic!("POST {url}: {e}"),
    }
}

/// A `multipart/form-data` body of text fields, as `curl -F` sends it, with its content type.
fn multipart(fields: &[(&str, &str)]) -> (String, String) {
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!("--b0undary\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
    }
    body.push_str("--b0undary--\r\n");
    ("multipart/form-data; boundary=b0undary".to_string(), body)
}

/// Inputs a red-team pass found answered differently from upstream: text that is not UTF-8,
/// string escapes, numbers and durations out of range, `k` out of range, `match[]` that is not
/// a bare selector, range queries past 11,000 points before clamping, and form bodies. Each is
/// compared with Prometheus 2.42 where it answers as 3.x does; the rest are checked against 3.x's
/// messages.
#[test]
fn out_of_range_and_malformed_inputs_are_answered_as_upstream_answers_them() {
    let admin = vec!["--web.enable-admin-api".to_string()];
    let p = Pyrite::start(PyriteOpts { extra_args: admin, ..Default::default() });
    let up = pyrite_tests::Upstream::start_with(&["--web.enable-admin-api"]);
    let both = |path: &str| (outcome(p.get(path)), outcome(http_get(&format!("{}{path}", up.url)).expect("upstream")));
    let same = [
        // Not UTF-8 after percent-decoding, or U+FFFD itself, in a string: Go's lexer reads both
        // as utf8.RuneError.
        "/api/v1/query?time=100&query=%22%ff%22",
        "/api/v1/query?time=100&query=up%7Bjob%3D%22%ff%22%7D",
        "/api/v1/query?time=100&query=%60%ff%60",
        "/api/v1/query?time=100&query=%22%ef%bf%bd%22",
        "/api/v1/query?time=100&query=1%23%ff",
        "/api/v1/series?match[]=up%7Bjob%3D%22%ff%22%7D",
        // Escapes.
        "/api/v1/query?time=100&query=%22%5C400%22",
        "/api/v1/query?time=100&query=%22%5C377%22",
        "/api/v1/query?time=100&query=%22%5Cq%22",
        // Numbers.
        "/api/v1/query?time=100&query=1e309",
        "/api/v1/query?time=100&query=-1e309",
        "/api/v1/query?time=100&query=0x7fffffffffffffffff",
        "/api/v1/query?time=100&query=0x7fffffffffffffff",
        "/api/v1/query?time=100&query=1e-400",
        "/api/v1/query?time=100&query=010",
        // Durations past int64 nanoseconds, in the query and as parameters.
        "/api/v1/query?time=100&query=up%5B300y%5D",
        "/api/v1/query?time=100&query=up%5B292y%5D",
        "/api/v1/query?time=100&query=up%20offset%20300y",
        "/api/v1/query?time=100&query=up%5B300y:1y%5D",
        "/api/v1/query?time=100&query=up%5B1y:300y%5D",
        "/api/v1/query_range?query=1&start=0&end=1&step=1e10",
        "/api/v1/query_range?query=1&start=0&end=1&step=300y",
        "/api/v1/query?query=1&time=1&timeout=1e11",
        "/api/v1/query?query=1&time=1&timeout=300y",
        // 11,000 steps are allowed, more are not, checked before times are clamped.
        "/api/v1/query_range?query=1&start=0&end=11000&step=1",
        "/api/v1/query_range?query=1&start=0&end=11001&step=1",
        "/api/v1/query_range?query=1&start=1e18&end=1.0000001e18&step=10",
        // k past an int64.
        "/api/v1/query?time=100&query=topk(1e300,vector(1))",
        "/api/v1/query?time=100&query=bottomk(%2BInf,vector(1))",
        "/api/v1/query?time=100&query=topk(9223372036854775808,vector(1))",
        // Selectors that match only the empty string, where upstream refuses them.
        "/api/v1/series?match[]=%7B__name__%3D~%22.*%22%7D",
        "/api/v1/labels?match[]=%7B__name__%3D~%22.*%22%7D",
        "/api/v1/label/job/values?match[]=%7Bjob%3D%22%22%7D",
    ];
    for path in same {
        let (ours, theirs) = both(path);
        assert_eq!(ours, theirs, "{path}");
    }
    // Not a bare selector: the parsers word the error differently, but both refuse it.
    for path in [
        "/api/v1/series?match[]=up%20offset%205m",
        "/api/v1/labels?match[]=up%20@%201",
        "/api/v1/label/job/values?match[]=up%20offset%205m",
    ] {
        let ((ours, _), (theirs, _)) = both(path);
        assert_eq!((ours, theirs), (400, 400), "{path}");
    }
    // Deletion takes any selector that parses, as upstream's does.
    let delete = |base: &str, m: &str| {
        outcome(post(&format!("{base}/api/v1/admin/tsdb/delete_series?match[]={m}"), "text/plain", ""))
    };
    for m in ["%7B__name__%3D~%22.*%22%7D", "up%20offset%205m"] {
        assert_eq!(delete(&p.url, m).0, delete(&up.url, m).0, "{m}");
    }
    assert_eq!(delete(&p.url, "%7B__name__%3D~%22.*%22%7D").0, 204);

    // Form bodies: a urlencoded body before the query string, multipart fields after it, and
    // none where upstream parses the form first (series).
    let forms: [(&str, (String, String)); 4] = [
        ("/api/v1/query?query=1&time=1", ("application/x-www-form-urlencoded".into(), "query=2".into())),
        ("/api/v1/query?time=1", multipart(&[("query", "1+1")])),
        ("/api/v1/query?time=1&query=3", multipart(&[("query", "1+1")])),
        ("/api/v1/series", multipart(&[("match[]", "up")])),
    ];
    for (path, (content_type, body)) in &forms {
        let ours = outcome(post(&format!("{}{path}", p.url), content_type, body));
        let theirs = outcome(post(&format!("{}{path}", up.url), content_type, body));
        assert_eq!(ours, theirs, "{path} {body}");
    }
    assert_eq!(
        outcome(post(&format!("{}/api/v1/query?time=1", p.url), &forms[1].1 .0, &forms[1].1 .1)).1["result"][1],
        "2"
    );

    // Where 2.42 differs from 3.x, 3.x's answers: number durations, lookback_delta, NaN and
    // negative k, and the endpoints 2.42 lacks.
    let error = |path: &str| outcome(p.get(path));
    assert_eq!(
        error("/api/v1/query?time=100&query=up%5B1e10%5D"),
        (400, "invalid parameter \"query\": 1:4: parse error: duration out of range".into())
    );
    assert_eq!(
        error("/api/v1/query?query=1&time=1&lookback_delta=300y"),
        (400, "error parsing lookback delta duration: cannot parse \"300y\" to a valid duration".into())
    );
    assert_eq!(error("/api/v1/query?time=100&query=topk(NaN,vector(1))"), (422, "Parameter value is NaN".into()));
    assert_eq!(error("/api/v1/query?time=100&query=topk(-1e300,vector(1))").0, 200);
    for endpoint in ["format_query", "parse_query"] {
        assert_eq!(
            error(&format!("/api/v1/{endpoint}?query=%22%ff%22")),
            (400, "invalid parameter \"query\": 1:1: parse error: invalid UTF-8 rune".into()),
            "{endpoint}"
        );
    }
}
