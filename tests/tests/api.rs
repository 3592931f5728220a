//! The metadata endpoints and response shapes of the HTTP API, on remote-written data.

use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::Sample;
use pyrite_tests::{http_post_form, json, Pyrite, PyriteOpts};
use serde_json::json;

fn series(name: &str, job: &str, t: i64) -> WriteSeries {
    WriteSeries {
        labels: Labels::from_pairs([("__name__", name), ("job", job)]),
        samples: vec![Sample { t, v: 1.0 }],
        exemplars: Vec::new(),
        histograms: Vec::new(),
    }
}

fn loaded() -> Pyrite {
    let p = Pyrite::start(PyriteOpts { shards: Some(3), ..Default::default() });
    let data = [series("a_total", "api", 10_000), series("a_total", "web", 10_000), series("b", "db", 100_000)];
    assert_eq!(p.remote_write(encode_write_request(&data)).0, 204);
    p
}

#[test]
fn series_labels_and_values_merge_every_shard_and_honour_time_ranges() {
    let p = loaded();
    assert_eq!(
        p.data("/api/v1/series?match[]=a_total&start=0&end=200"),
        json!([{"__name__": "a_total", "job": "api"}, {"__name__": "a_total", "job": "web"}])
    );
    assert_eq!(
        p.data("/api/v1/series?match[]=a_total&match[]={job=\"db\"}&start=50&end=200"),
        json!([{"__name__": "b", "job": "db"}]),
        "a_total has no sample after 50 s"
    );
    assert_eq!(p.data("/api/v1/label/job/values?start=0&end=200"), json!(["api", "db", "web"]));
    assert_eq!(p.data("/api/v1/label/job/values?match[]=b&start=0&end=200"), json!(["db"]));
    assert_eq!(p.data("/api/v1/label/nope/values"), json!([]));
    let names = p.data("/api/v1/labels?start=0&end=200");
    assert_eq!(names, json!(["__name__", "job"]));
    let (status, body) =
        http_post_form(&format!("{}/api/v1/series", p.url), &[("match[]", "b"), ("start", "0"), ("end", "200")])
            .expect("POST");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["data"], json!([{"__name__": "b", "job": "db"}]));
}

#[test]
fn many_selectors_that_match_the_same_series_answer_each_series_once_and_too_many_are_refused() {
    let p = loaded();
    let url = format!("{}/api/v1/series", p.url);
    let many: Vec<String> = (0..10_000).map(|i| format!("{{__name__=~\".+\", job!=\"{i}\"}}")).collect();
    let mut form: Vec<(&str, &str)> = many.iter().map(|m| ("match[]", m.as_str())).collect();
    form.extend([("start", "0"), ("end", "200")]);
    let (status, body) = http_post_form(&url, &form).expect("POST");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["data"].as_array().map(Vec::len), Some(3), "{body}");
    let one_more = "{__name__=~\".+\", job!=\"more\"}";
    form.push(("match[]", one_more));
    let (status, body) = http_post_form(&url, &form).expect("POST");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("more than 10000 distinct selectors"), "{body}");
}

#[test]
fn status_tsdb_counts_over_every_shard() {
    let p = loaded();
    let v = p.data("/api/v1/status/tsdb");
    assert_eq!(
        v["headStats"],
        json!({"numSeries": 3, "numLabelPairs": 5, "chunkCount": 3, "minTime": 10_000, "maxTime": 100_000})
    );
    assert_eq!(v["seriesCountByMetricName"], json!([{"name": "a_total", "value": 2}, {"name": "b", "value": 1}]));
    assert_eq!(v["labelValueCountByLabelName"], json!([{"name": "job", "value": 3}, {"name": "__name__", "value": 2}]));
    assert_eq!(v["memoryInBytesByLabelName"], json!([{"name": "__name__", "value": 8}, {"name": "job", "value": 8}]));
    let top2 = p.data("/api/v1/status/tsdb?limit=2")["seriesCountByLabelValuePair"].clone();
    assert_eq!(top2, json!([{"name": "__name__=a_total", "value": 2}, {"name": "__name__=b", "value": 1}]));
    assert_eq!(p.get("/api/v1/status/tsdb?limit=0").0, 400);
}

#[test]
fn query_results_have_prometheus_shapes() {
    let p = loaded();
    assert_eq!(
        p.query("a_total{job=\"api\"}", Some(20.0)),
        json!([{"metric": {"__name__": "a_total", "job": "api"}, "value": [20, "1"]}])
    );
    assert_eq!(
        p.query("a_total{job=\"api\"}[30s]", Some(20.5)),
        json!([{"metric": {"__name__": "a_total", "job": "api"}, "values": [[10, "1"]]}])
    );
    assert_eq!(p.data("/api/v1/query?query=2.5&time=1.5"), json!({"resultType": "scalar", "result": [1.5, "2.5"]}));
    assert_eq!(p.data("/api/v1/query?query=%22hi%22&time=3"), json!({"resultType": "string", "result": [3, "hi"]}));
    assert_eq!(p.data("/api/v1/query?query=1%2F0&time=3")["result"][1], "+Inf");
    assert_eq!(
        p.query_range("sum(a_total)", 0.0, 20.0, 10.0),
        json!([{"metric": {}, "values": [[10, "2"], [20, "2"]]}])
    );
    let v = p.data("/api/v1/query?query=b&time=2015-07-01T20:10:51.781Z");
    assert_eq!(v["result"], json!([]), "RFC 3339 times are accepted");
}

#[test]
fn annotations_come_back_as_warnings_and_infos() {
    let p = loaded();
    let (status, body) = p.get("/api/v1/query?query=quantile(2%2C%20a_total)&time=20");
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["warnings"], json!(["PromQL warning: quantile value should be between 0 and 1, got 2 (1:10)"]));
    assert!(v.get("infos").is_none());
    let (_, body) = p.get("/api/v1/query_range?query=sort(a_total)&start=0&end=20&step=10");
    assert_eq!(
        json(&body)["warnings"],
        json!([
            "PromQL warning: sort is ineffective for range queries since results are always ordered by labels (1:1)"
        ])
    );
    let (_, body) = p.get("/api/v1/query?query=a_total&time=20");
    assert!(json(&body).get("warnings").is_none(), "no warnings key without warnings: {body}");
}

#[test]
fn at_most_ten_infos_are_listed_and_the_rest_counted() {
    let p = Pyrite::start(PyriteOpts { shards: Some(2), ..Default::default() });
    let gauges: Vec<WriteSeries> = (0..13)
        .map(|i| WriteSeries {
            labels: Labels::from_pairs([("__name__", format!("gauge_{i:02}")), ("i", i.to_string())]),
            samples: vec![Sample { t: 5_000, v: 1.0 }, Sample { t: 15_000, v: 2.0 }],
            exemplars: Vec::new(),
            histograms: Vec::new(),
        })
        .collect();
    assert_eq!(p.remote_write(encode_write_request(&gauges)).0, 204);
    let (status, body) = p.get("/api/v1/query?query=rate(%7B__name__%3D~%22gauge_.*%22%7D%5B1m%5D)&time=20");
    assert_eq!(status, 200, "{body}");
    let infos = json(&body)["infos"].as_array().unwrap_or_else(|| panic!("no infos: {body}")).clone();
    assert_eq!(infos.len(), 11, "{body}");
    assert_eq!(
        infos[0],
        "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"gauge_00\" (1:6)"
    );
    assert_eq!(infos[10], "3 more info annotations omitted");
}

#[test]
fn format_and_parse_query_answer_in_upstream_shapes() {
    let p = Pyrite::start(PyriteOpts::default());
    assert_eq!(
        p.data("/api/v1/format_query?query=sum(rate(foo%7Bjob%3D%22a%22%7D%5B5m%5D))by(job)"),
        json!("sum by (job) (rate(foo{job=\"a\"}[5m]))")
    );
    let tree = p.data("/api/v1/parse_query?query=foo%20%2B%20on(x)%20bar%20offset%201m");
    assert_eq!(tree["type"], "binaryExpr");
    assert_eq!(tree["op"], "+");
    assert_eq!(tree["matching"], json!({"card": "one-to-one", "labels": ["x"], "on": true, "include": []}));
    assert_eq!(
        tree["rhs"],
        json!({"type": "vectorSelector", "name": "bar", "offset": 60000, "matchers": [{"type": "=", "name": "__name__", "value": "bar"}], "timestamp": null, "startOrEnd": null, "anchored": false, "smoothed": false})
    );
    let (status, body) = p.get("/api/v1/parse_query?query=foo%7B");
    assert_eq!(status, 400, "{body}");
}

#[test]
fn experimental_functions_need_the_feature_flag() {
    let plain = Pyrite::start(PyriteOpts::default());
    let (status, body) = plain.get("/api/v1/query?query=mad_over_time(up%5B5m%5D)");
    assert_eq!(status, 400, "{body}");
    assert!(
        json(&body)["error"].as_str().unwrap_or("").ends_with("function \"mad_over_time\" is not enabled"),
        "{body}"
    );
    let enabled = Pyrite::start(PyriteOpts {
        extra_args: vec!["--enable-feature=promql-experimental-functions".into()],
        ..Default::default()
    });
    let (status, body) = enabled.get("/api/v1/query?query=mad_over_time(up%5B5m%5D)");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn extended_range_selectors_need_the_feature_flag() {
    let plain = Pyrite::start(PyriteOpts::default());
    let (status, body) = plain.get("/api/v1/query?query=increase(c%5B1m%5D%20anchored)");
    assert_eq!(status, 400, "{body}");
    assert!(
        json(&body)["error"].as_str().unwrap_or("").ends_with("anchored modifier is experimental and not enabled"),
        "{body}"
    );
    let enabled = Pyrite::start(PyriteOpts {
        shards: Some(2),
        extra_args: vec!["--enable-feature=promql-extended-range-selectors".into()],
        ..Default::default()
    });
    // A counter reset from 20 to 5 between 30 s and 45 s.
    let counter = WriteSeries {
        labels: Labels::from_pairs([("__name__", "c".to_string())]),
        samples: [0.0, 10.0, 20.0, 5.0, 15.0, 25.0]
            .iter()
            .enumerate()
            .map(|(i, &v)| Sample { t: i as i64 * 15_000, v })
            .collect(),
        exemplars: Vec::new(),
        histograms: Vec::new(),
    };
    assert_eq!(enabled.remote_write(encode_write_request(&[counter])).0, 204);
    // (10 s, 70 s] from the sample at 0 s to the one at 60 s, the reset added back.
    assert_eq!(enabled.query("increase(c[1m] anchored)", Some(70.0))[0]["value"][1], "35");
    assert_eq!(enabled.query("c smoothed", Some(52.5))[0]["value"][1], "10");
    let (status, body) = enabled.get("/api/v1/query?query=deriv(c%5B1m%5D%20smoothed)&time=70");
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        json(&body)["error"],
        "smoothed modifier can only be used with: delta, increase, rate - not with deriv",
        "{body}"
    );
}

#[test]
fn max_samples_refuses_a_query_that_would_load_too_much() {
    let p = Pyrite::start(PyriteOpts {
        shards: Some(2),
        extra_args: vec!["--query.max-samples=100".into()],
        ..Default::default()
    });
    let series: Vec<WriteSeries> = (0..10)
        .map(|i| WriteSeries {
            labels: Labels::from_pairs([("__name__", "many".to_string()), ("i", i.to_string())]),
            samples: (0..20).map(|k| Sample { t: k * 1000, v: k as f64 }).collect(),
            exemplars: Vec::new(),
            histograms: Vec::new(),
        })
        .collect();
    assert_eq!(p.remote_write(encode_write_request(&series)).0, 204);
    let (status, body) = p.get("/api/v1/query?query=sum(count_over_time(many%5B1m%5D))&time=20");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("query processing would load too many samples into memory in query execution"), "{body}");
    assert_eq!(p.query("count(many)", Some(19.0))[0]["value"][1], "10", "a small query still runs");
}

#[test]
fn buildinfo_reports_a_prometheus_style_version() {
    let p = Pyrite::start(PyriteOpts::default());
    let v = p.data("/api/v1/status/buildinfo");
    let version = v["version"].as_str().expect("version");
    let major: u32 = version.split('.').next().and_then(|m| m.parse().ok()).expect("semver");
    assert!(major >= 3, "{version}");
    assert!(v.get("features").is_none(), "no `features` field, so Grafana sees a Prometheus");
}

/// GET `path` with `Accept-Encoding: accept` over a raw connection; its `Content-Encoding`
/// (empty if none) and body as sent.
fn get_encoded(p: &Pyrite, path: &str, accept: &str) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept-Encoding: {accept}\r\n\r\n");
    conn.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).expect("read");
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200") && head.contains("content-length"), "{head}");
    let encoding = head.lines().find_map(|l| l.strip_prefix("content-encoding: ")).unwrap_or("").to_string();
    (encoding, answer[split..].to_vec())
}

#[test]
fn answers_are_compressed_as_the_client_accepts_them_as_upstream() {
    use std::io::Read;
    let p = loaded();
    for path in ["/api/v1/series?match[]=a_total", "/api/v1/labels", "/api/v1/status/buildinfo"] {
        let (encoding, plain) = get_encoded(&p, path, "identity");
        assert_eq!(encoding, "", "{path}");
        let (encoding, gzipped) = get_encoded(&p, path, "br, gzip, deflate");
        assert_eq!(encoding, "gzip", "{path}: the first that upstream answers in");
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&gzipped[..]).read_to_end(&mut unzipped).expect("gzip");
        assert_eq!(unzipped, plain, "{path}");
        let (encoding, deflated) = get_encoded(&p, path, "deflate");
        assert_eq!(encoding, "deflate", "{path}");
        let mut inflated = Vec::new();
        flate2::read::ZlibDecoder::new(&deflated[..]).read_to_end(&mut inflated).expect("zlib");
        assert_eq!(inflated, plain, "{path}");
        // Upstream compares whole tokens.
        assert_eq!(get_encoded(&p, path, "gzip;q=0.5"), (String::new(), plain), "{path}");
    }
    // An empty answer stays empty, without an encoding a client would try to decode.
    let (encoding, body) = get_encoded(&p, "/federate?match[]=none", "gzip");
    assert_eq!((encoding.as_str(), body.len()), ("", 0));
}

/// The query log's lines of `file`, parsed; those of rule groups or of the API only.
fn logged(file: &std::path::Path, of_rules: bool) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let lines = text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"));
    lines.filter(|l| l.get("ruleGroup").is_some() == of_rules).collect()
}

/// The keys of a logged line, nested ones as `outer.inner`, without the ones Pyrite leaves out.
fn keys(line: &serde_json::Value) -> Vec<String> {
    let mut keys = Vec::new();
    for (key, value) in line.as_object().unwrap() {
        match value.as_object() {
            Some(inner) if key != "stats" => keys.extend(inner.keys().map(|k| format!("{key}.{k}"))),
            _ => keys.push(key.clone()),
        }
    }
    keys.retain(|k| k != "spanID");
    keys
}

#[test]
fn queries_are_logged_to_the_query_log_file_as_upstream_logs_them() {
    let dir = pyrite_tests::TempDir::new("query-log");
    std::fs::write(
        dir.0.join("rules.yml"),
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - {record: x, expr: vector(1)}\n",
    )
    .unwrap();
    let config = |log: &str| {
        format!(
            "global:\n  query_log_file: {}\nrule_files: [{}]\n",
            dir.0.join(log).display(),
            dir.0.join("rules.yml").display()
        )
    };
    let upstream = pyrite_tests::Upstream::start_configured(&config("upstream.log"), &[]);
    let p = Pyrite::start(PyriteOpts {
        config: Some(config("pyrite.log")),
        extra_args: vec!["--web.enable-lifecycle".into()],
        ..Default::default()
    });
    for base in [&p.url, &upstream.url] {
        for path in [
            "/api/v1/query?query=up",
            "/api/v1/query_range?query=up&start=1&end=100&step=10",
            "/api/v1/query?query=sum(",
        ] {
            pyrite_tests::http_get(&format!("{base}{path}")).unwrap();
        }
    }
    let (ours, theirs) = (dir.0.join("pyrite.log"), dir.0.join("upstream.log"));
    let both_ruled = pyrite_tests::eventually(std::time::Duration::from_secs(10), || {
        let api_logged = logged(&ours, false).len() >= 2;
        (api_logged && !logged(&ours, true).is_empty() && !logged(&theirs, true).is_empty()).then_some(())
    });
    assert!(both_ruled.is_some(), "the API's queries and the rule evaluations logged");
    // The same lines: the two queries that ran (not the one that did not parse), and the rule's.
    let (api, upstream_api) = (logged(&ours, false), logged(&theirs, false));
    assert_eq!(api.len(), 2, "{api:?}");
    assert_eq!(api.iter().map(keys).collect::<Vec<_>>(), upstream_api.iter().map(keys).collect::<Vec<_>>());
    for (line, upstream_line) in api.iter().zip(&upstream_api) {
        assert_eq!(line["httpRequest"], upstream_line["httpRequest"]);
        assert_eq!(line["params"]["query"], upstream_line["params"]["query"]);
        assert_eq!(line["params"]["step"], upstream_line["params"]["step"]);
    }
    assert_eq!(
        api[1]["params"],
        json!({"query": "up", "start": "1970-01-01T00:00:01.000Z", "end": "1970-01-01T00:01:40.000Z", "step": 10})
    );
    let (rule, upstream_rule) = (&logged(&ours, true)[0], &logged(&theirs, true)[0]);
    assert_eq!(keys(rule), keys(upstream_rule));
    assert_eq!(rule["ruleGroup"]["name"], "g");
    assert_eq!(rule["params"]["query"], upstream_rule["params"]["query"]);

    // A reload opens the file again (a rotated log is followed); one that cannot be opened is
    // refused, and the log in use stays.
    std::fs::rename(&ours, dir.0.join("pyrite.log.1")).unwrap();
    let config_file = p.data_dir.parent().unwrap().join("prometheus.yml");
    assert_eq!(pyrite_tests::http_post_form(&format!("{}/-/reload", p.url), &[]).unwrap().0, 200);
    pyrite_tests::http_get(&format!("{}/api/v1/query?query=after_rotation", p.url)).unwrap();
    // The log's lines are written by a thread of its own.
    let logged_as = |query: &str| {
        pyrite_tests::eventually(std::time::Duration::from_secs(5), || {
            logged(&ours, false).iter().any(|l| l["params"]["query"] == query).then_some(())
        })
        .is_some()
    };
    assert!(logged_as("after_rotation"));
    std::fs::write(&config_file, config("missing-dir/pyrite.log")).unwrap();
    let (status, body) = pyrite_tests::http_post_form(&format!("{}/-/reload", p.url), &[]).unwrap();
    assert!(status == 500 && body.contains("cannot open the query log file"), "{status} {body}");
    pyrite_tests::http_get(&format!("{}/api/v1/query?query=after_refusal", p.url)).unwrap();
    assert!(logged_as("after_refusal"));
}
