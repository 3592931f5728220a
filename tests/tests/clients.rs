//! Real clients against Pyrite and an upstream Prometheus (Debian's 2.42) holding the same
//! remote-written data: promtool's query subcommands, Pyrite's own `pyrite query`, the request
//! sequence of Grafana's Prometheus datasource, bad requests, and an upstream Prometheus
//! federating from Pyrite. Everything runs twice: at `/` and under `--web.route-prefix`.

use std::process::Command;
use std::time::Duration;

use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::Sample;
use pyrite_tests::{bin, encode, eventually, json, remote_write_to, Pyrite, PyriteOpts, Upstream};
use serde_json::Value;

const STEP_MS: i64 = 15_000;
const POINTS: i64 = 40; // ten minutes

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Ten minutes of integer-valued series ending about now, on a 15 s grid starting at `t0`.
fn data(t0: i64) -> Vec<WriteSeries> {
    let mut out = Vec::new();
    for (i, job) in ["api", "api", "web", "db"].iter().enumerate() {
        let instance = format!("10.0.0.{i}:9100");
        for code in ["200", "500"] {
            let per_step = if code == "200" { 10 * (i as i64 + 1) } else { i as i64 };
            out.push(WriteSeries {
                labels: Labels::from_pairs([
                    ("__name__", "http_requests_total"),
                    ("job", job),
                    ("instance", instance.as_str()),
                    ("code", code),
                ]),
                samples: (0..POINTS).map(|k| Sample { t: t0 + k * STEP_MS, v: (k * per_step) as f64 }).collect(),
                exemplars: Vec::new(),
                histograms: Vec::new(),
            });
        }
    }
    out.push(WriteSeries {
        labels: Labels::from_pairs([("__name__", "build_info"), ("job", "api"), ("http_route", "/v1")]),
        samples: (0..POINTS).map(|k| Sample { t: t0 + k * STEP_MS, v: 1.0 }).collect(),
        exemplars: Vec::new(),
        histograms: Vec::new(),
    });
    out
}

/// Pyrite and upstream, both holding [`data`], under `prefix` (`""` for none).
struct Pair {
    pyrite: Pyrite,
    upstream: Upstream,
    /// The data's first timestamp, ms, on the 15 s grid.
    t0: i64,
}

fn pair(prefix: &str) -> Pair {
    pair_scraping(prefix, false)
}

/// [`pair`]; with `scrape_pyrite`, both servers also scrape Pyrite's own `/metrics` every second
/// (so that both have a target to show).
fn pair_scraping(prefix: &str, scrape_pyrite: bool) -> Pair {
    let route = format!("--web.route-prefix={}", if prefix.is_empty() { "/" } else { prefix });
    let port = pyrite_tests::free_port();
    let mut config = "global:\n  scrape_interval: 1h\n".to_string();
    if scrape_pyrite {
        config = format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: pyrite\n    metrics_path: {prefix}/metrics\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        );
    }
    let pyrite = Pyrite::start(PyriteOpts {
        shards: Some(2),
        port: Some(port),
        config: Some(config.clone()),
        extra_args: vec![route.clone()],
        ..PyriteOpts::default()
    });
    let upstream = Upstream::start_configured(&config, &[route.as_str()]);
    let t0 = (now_ms() - POINTS * STEP_MS) / STEP_MS * STEP_MS;
    let body = encode_write_request(&data(t0));
    for url in [&pyrite.url, &upstream.url] {
        let (status, text) = remote_write_to(url, &body);
        assert!(status == 204 || status == 200, "remote write to {url}: {status} {text}");
    }
    Pair { pyrite, upstream, t0 }
}

/// An evaluation time `k` steps into the data, half a step off the sample grid (where 2.x and
/// 3.x window semantics agree), as Unix seconds.
fn at(p: &Pair, k: i64) -> String {
    format!("{}", (p.t0 + k * STEP_MS + STEP_MS / 2) as f64 / 1000.0)
}

/// Runs a command; its exit code and stdout, with stderr on failure to start.
fn run(program: &std::path::Path, args: &[String]) -> (i32, String) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("run {program:?}: {e}"));
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The query subcommands both CLIs take, with `{}` where the server URL goes.
fn query_commands(p: &Pair) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let (t, start, end) = (at(p, 30), at(p, 10), at(p, 35));
    vec![
        s(&["query", "instant", "{}", "http_requests_total", "--time", &t]),
        s(&["query", "instant", "{}", "sum by (job) (http_requests_total) * 2", "--time", &t]),
        s(&["query", "instant", "{}", "count(http_requests_total) / 4", "--time", &t]),
        s(&["query", "instant", "{}", "http_requests_total{code=\"500\"}", "--time", &t, "-o", "json"]),
        s(&[
            "query",
            "range",
            "{}",
            "max by (code) (http_requests_total)",
            "--start",
            &start,
            "--end",
            &end,
            "--step",
            "30s",
        ]),
        s(&[
            "query",
            "range",
            "{}",
            "http_requests_total{job=\"db\"}",
            "--start",
            &start,
            "--end",
            &end,
            "--step",
            "1m",
        ]),
        s(&["query", "series", "{}", "--match", "http_requests_total{job=\"api\"}", "--match", "build_info"]),
        s(&["query", "labels", "{}", "job"]),
        s(&["query", "labels", "{}", "instance", "--match", "http_requests_total{job=\"web\"}"]),
        s(&["query", "instant", "{}", "sum(", "--time", &t]),
    ]
}

/// Output as compared: lines sorted, JSON arrays sorted by element, since neither server
/// promises an order for the samples of an instant vector (promtool sorts range results).
fn normalized((code, out): (i32, String)) -> (i32, String) {
    if let Ok(Value::Array(mut items)) = serde_json::from_str::<Value>(out.trim()) {
        items.sort_by_key(|v| v.to_string());
        return (code, Value::Array(items).to_string());
    }
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    (code, lines.join("\n"))
}

fn with_server(command: &[String], url: &str) -> Vec<String> {
    command.iter().map(|a| if a == "{}" { url.to_string() } else { a.clone() }).collect()
}

#[test]
fn promtool_and_pyrite_query_print_the_same_against_pyrite_and_prometheus() {
    let promtool = std::path::PathBuf::from("promtool");
    for prefix in ["", "/prometheus"] {
        let p = pair(prefix);
        for command in query_commands(&p) {
            let on_upstream = normalized(run(&promtool, &with_server(&command, &p.upstream.url)));
            let on_pyrite = normalized(run(&promtool, &with_server(&command, &p.pyrite.url)));
            assert_eq!(on_pyrite, on_upstream, "promtool {command:?} (prefix {prefix:?})");
            assert_eq!(on_pyrite.0 == 0, !command.contains(&"sum(".to_string()), "{command:?}: {on_pyrite:?}");
            if on_upstream.0 == 0 {
                assert!(!on_upstream.1.trim().is_empty(), "promtool {command:?} printed nothing");
            }
            let ours = normalized(run(&bin("pyrite"), &with_server(&command, &p.pyrite.url)));
            assert_eq!(ours, on_upstream, "pyrite {command:?} (prefix {prefix:?})");
        }
    }
}

/// A JSON value's shape: object keys with their shapes, the first element of arrays, the type
/// of scalars. Values themselves (versions, timings) may differ between servers.
fn shape(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<_> = m.iter().map(|(k, v)| format!("{k}:{}", shape(v))).collect();
            keys.sort();
            format!("{{{}}}", keys.join(","))
        }
        Value::Array(a) => format!("[{}]", a.first().map(shape).unwrap_or_default()),
        Value::String(_) => "s".into(),
        Value::Number(_) => "n".into(),
        Value::Bool(_) => "b".into(),
        Value::Null => "null".into(),
    }
}

enum Method {
    Get,
    Post,
}

/// One request: method, path under the server's base URL, form parameters.
type Call<'a> = (Method, &'a str, Vec<(&'a str, String)>);

fn send(base: &str, method: &Method, path: &str, form: &[(&str, String)]) -> (u16, String) {
    let url = format!("{base}{path}");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = match method {
        Method::Get => {
            let query: Vec<String> = form.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
            let sep = if url.contains('?') { '&' } else { '?' };
            ureq::get(&format!("{url}{sep}{}", query.join("&"))).timeout(Duration::from_secs(10)).call()
        }
        Method::Post => ureq::post(&url).timeout(Duration::from_secs(10)).send_form(&form),
    };
    match r {
        Ok(resp) => (resp.status(), resp.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap_or_default()),
        Err(e) => panic!("{url}: {e}"),
    }
}

/// (status, shape of the JSON body) of a request.
fn answer(base: &str, method: &Method, path: &str, form: &[(&str, String)]) -> (u16, String) {
    let (status, body) = send(base, method, path, form);
    let shape = serde_json::from_str::<Value>(&body).map(|v| shape(&v)).unwrap_or_else(|_| "not json".into());
    (status, shape)
}

#[test]
fn grafanas_request_sequence_gets_the_same_answers_as_from_prometheus() {
    for prefix in ["", "/prometheus"] {
        let p = pair_scraping(prefix, true);
        let (start, end) = (at(&p, 0), at(&p, 39));
        // Both have scraped their target once.
        for base in [&p.pyrite.url, &p.upstream.url] {
            let scraped = eventually(Duration::from_secs(10), || {
                let body = send(base, &Method::Get, "/api/v1/targets", &[]).1;
                (json(&body)["data"]["activeTargets"][0]["health"] == "up").then_some(())
            });
            assert!(scraped.is_some(), "{base} did not scrape its target");
        }
        // Grafana's exemplar probe sends times with milliseconds.
        let (start_ms, end_ms) =
            (format!("{:.3}", p.t0 as f64 / 1000.0 + 0.123), format!("{:.3}", now_ms() as f64 / 1000.0));
        let sel = || "http_requests_total{job=\"api\"}".to_string();
        let steps: Vec<Call> = vec![
            // Health check: `1+1` at time 4.
            (Method::Get, "/api/v1/query", vec![("query", "1+1".into()), ("time", "4".into())]),
            (Method::Get, "/api/v1/status/buildinfo", vec![]),
            (Method::Post, "/api/v1/labels", vec![("match[]", sel()), ("start", start.clone()), ("end", end.clone())]),
            (Method::Get, "/api/v1/labels", vec![("start", start.clone()), ("end", end.clone())]),
            (Method::Get, "/api/v1/label/job/values", vec![("start", start.clone()), ("end", end.clone())]),
            (Method::Get, "/api/v1/label/__name__/values", vec![("match[]", sel())]),
            (Method::Post, "/api/v1/series", vec![("match[]", sel()), ("start", start.clone()), ("end", end.clone())]),
            (Method::Get, "/api/v1/metadata", vec![]),
            (Method::Get, "/api/v1/metadata", vec![("metric", "http_requests_total".into()), ("limit", "1".into())]),
            (Method::Get, "/api/v1/rules", vec![]),
            (Method::Get, "/api/v1/rules", vec![("type", "alert".into())]),
            (Method::Get, "/api/v1/alerts", vec![]),
            (
                Method::Get,
                "/api/v1/query_exemplars",
                vec![("query", sel()), ("start", start_ms.clone()), ("end", end_ms.clone())],
            ),
            (Method::Post, "/api/v1/query_exemplars", vec![("query", sel()), ("start", start_ms), ("end", end_ms)]),
            (
                Method::Post,
                "/api/v1/query_range",
                vec![
                    ("query", format!("sum by (job) ({})", sel())),
                    ("start", start.clone()),
                    ("end", end.clone()),
                    ("step", "60".into()),
                ],
            ),
            (
                Method::Get,
                "/api/v1/query_range",
                vec![
                    ("query", "sum by (job) (http_requests_total)".into()),
                    ("start", start.clone()),
                    ("end", end.clone()),
                    ("step", "1m".into()),
                ],
            ),
            (Method::Post, "/api/v1/query", vec![("query", sel()), ("time", end.clone())]),
            (Method::Get, "/api/v1/format_query", vec![("query", "sum(rate(x[5m]))by(job)".into())]),
            (Method::Get, "/api/v1/status/config", vec![]),
            (Method::Get, "/api/v1/targets", vec![]),
            (Method::Get, "/api/v1/targets", vec![("state", "active".into())]),
            (Method::Get, "/api/v1/targets", vec![("state", "Dropped".into())]),
            (Method::Get, "/api/v1/alertmanagers", vec![]),
        ];
        for (method, path, form) in &steps {
            let mut ours = answer(&p.pyrite.url, method, path, form);
            // A field and the targets' histogram-option labels that Prometheus 3 added and
            // Debian's 2.42 lacks.
            for added in [
                "droppedTargetCounts:{pyrite:n},",
                "droppedTargetCounts:null,",
                "__always_scrape_classic_histograms__:s,__convert_classic_histograms_to_nhcb__:s,",
                "__scrape_native_histograms__:s,",
            ] {
                ours.1 = ours.1.replace(added, "");
            }
            let theirs = answer(&p.upstream.url, method, path, form);
            assert_eq!(ours, theirs, "{path} {form:?} (prefix {prefix:?})");
            assert_eq!(ours.0, 200, "{path}");
        }
        // Values agree too where the data decides them.
        // Grafana escapes label names for the path (`U__`, then `_` as `__` or `_5f_`); the 2.x
        // upstream does not decode them, so only Pyrite's answer is checked.
        for escaped in ["U__http__route", "U__http_5f_route"] {
            let (_, body) = send(&p.pyrite.url, &Method::Get, &format!("/api/v1/label/{escaped}/values"), &[]);
            assert_eq!(json(&body)["data"], serde_json::json!(["/v1"]), "{escaped}");
        }
        // The health check's answer.
        let (_, body) =
            send(&p.pyrite.url, &Method::Get, "/api/v1/query", &[("query", "1+1".into()), ("time", "4".into())]);
        assert_eq!(json(&body)["data"]["result"], serde_json::json!([4, "2"]));
    }
}

#[test]
fn bad_requests_get_upstreams_status_and_error_type() {
    for prefix in ["", "/prometheus"] {
        let p = pair(prefix);
        let q = |v: &[(&'static str, &str)]| v.iter().map(|(k, v)| (*k, v.to_string())).collect::<Vec<_>>();
        let huge = "x".repeat(11 << 20);
        let cases: Vec<Call> = vec![
            (Method::Get, "/api/v1/query", q(&[("query", "up"), ("time", "yesterday")])),
            (Method::Get, "/api/v1/query", q(&[("query", "up"), ("time", "2023-13-45T00:00:00Z")])),
            (Method::Get, "/api/v1/query", q(&[("query", "sum(")])),
            (Method::Get, "/api/v1/query", q(&[])),
            (Method::Get, "/api/v1/query", q(&[("query", "up"), ("timeout", "soon")])),
            (Method::Get, "/api/v1/query_range", q(&[("query", "up"), ("start", "0"), ("end", "10"), ("step", "0")])),
            (Method::Get, "/api/v1/query_range", q(&[("query", "up"), ("start", "0"), ("end", "10"), ("step", "-5")])),
            (
                Method::Get,
                "/api/v1/query_range",
                q(&[("query", "up"), ("start", "0"), ("end", "100000"), ("step", "1")]),
            ),
            (Method::Get, "/api/v1/query_range", q(&[("query", "up"), ("start", "10"), ("end", "0"), ("step", "1")])),
            (Method::Get, "/api/v1/query_range", q(&[("query", "up"), ("start", "x"), ("end", "0"), ("step", "1")])),
            (Method::Get, "/api/v1/query_range", q(&[("query", "up"), ("start", "0"), ("end", "10")])),
            (
                Method::Get,
                "/api/v1/query_range",
                q(&[("query", "up[5m]"), ("start", "0"), ("end", "10"), ("step", "1")]),
            ),
            (Method::Get, "/api/v1/series", q(&[])),
            (Method::Get, "/api/v1/series", q(&[("match[]", "rate(up[5m])")])),
            (Method::Get, "/api/v1/series", q(&[("match[]", "up"), ("start", "never")])),
            (Method::Get, "/api/v1/labels", q(&[("match[]", "{")])),
            (Method::Get, "/api/v1/label/job/values", q(&[("end", "then")])),
            (Method::Get, "/api/v1/query_exemplars", q(&[("query", "up"), ("start", "10"), ("end", "0")])),
            (Method::Post, "/api/v1/admin/tsdb/snapshot", q(&[])),
            (Method::Post, "/api/v1/query", vec![("query", huge)]),
            (Method::Get, "/api/v1/no_such_endpoint", q(&[])),
            (Method::Post, "/-/reload", q(&[])),
            (Method::Get, "/-/reload", q(&[])),
        ];
        for (method, path, form) in &cases {
            let kind = |(status, body): (u16, String)| {
                let error_type = serde_json::from_str::<Value>(&body).ok().map(|v| v["errorType"].clone());
                (status, error_type.unwrap_or(Value::Null))
            };
            let ours = kind(send(&p.pyrite.url, method, path, form));
            let theirs = kind(send(&p.upstream.url, method, path, form));
            let shown: Vec<_> = form.iter().map(|(k, v)| (k, &v[..v.len().min(40)])).collect();
            assert_eq!(ours, theirs, "{path} {shown:?} (prefix {prefix:?})");
            assert!(ours.0 >= 400, "{path} {shown:?} should fail");
        }
    }
}

#[test]
fn an_upstream_prometheus_federates_from_pyrite() {
    let pyrite = Pyrite::start(PyriteOpts {
        shards: Some(2),
        config: Some("global:\n  scrape_interval: 1h\n  external_labels:\n    dc: eu\n".into()),
        extra_args: vec!["--web.external-url=http://lb.example/prometheus/".into()],
        ..PyriteOpts::default()
    });
    let t0 = (now_ms() - POINTS * STEP_MS) / STEP_MS * STEP_MS;
    let (status, text) = remote_write_to(&pyrite.url, &encode_write_request(&data(t0)));
    assert!(status == 204 || status == 200, "{status} {text}");
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: federate\n    honor_labels: true\n    metrics_path: /prometheus/federate\n    params:\n      'match[]': ['{{job=\"api\"}}', 'build_info']\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        pyrite.port
    );
    let upstream = Upstream::start_configured(&config, &[]);
    let query = |q: &str| {
        let (_, body) = pyrite_tests::http_get(&format!("{}/api/v1/query?query={}", upstream.url, encode(q))).unwrap();
        json(&body)["data"]["result"].as_array().cloned().unwrap_or_default()
    };
    let federated = eventually(Duration::from_secs(20), || {
        let r = query("http_requests_total");
        (!r.is_empty()).then_some(r)
    })
    .expect("upstream federated nothing within 20 s");
    // honor_labels keeps the original job and instance; the external label comes along; only
    // the matched series arrive, each with its newest value.
    assert_eq!(federated.len(), 4, "{federated:?}");
    for s in &federated {
        assert_eq!(s["metric"]["job"], "api", "{s}");
        assert_eq!(s["metric"]["dc"], "eu", "{s}");
        assert!(s["metric"]["instance"].as_str().unwrap().starts_with("10.0.0."), "{s}");
    }
    let api_200 = query("http_requests_total{instance=\"10.0.0.1:9100\",code=\"200\"}");
    assert_eq!(api_200[0]["value"][1], format!("{}", (POINTS - 1) * 20), "{api_200:?}");
    let build_info = query("build_info");
    assert_eq!(build_info.len(), 1, "{build_info:?}");
    // A series without an instance keeps none (federation writes `instance=""`, as upstream's),
    // not the federation target's.
    assert!(build_info[0]["metric"].get("instance").is_none(), "{build_info:?}");
    assert!(query("http_requests_total{job=\"db\"}").is_empty(), "unmatched series were federated");
}

#[test]
fn metadata_from_scrapes_matches_prometheus() {
    let loadgen = pyrite_tests::Loadgen::start(2, 20);
    let config = loadgen.scrape_config("app", "1s");
    let pyrite = Pyrite::start(PyriteOpts { config: Some(config.clone()), ..PyriteOpts::default() });
    let upstream = Upstream::start_configured(&config, &[]);
    for base in [&pyrite.url, &upstream.url] {
        let scraped = eventually(Duration::from_secs(15), || {
            let body = send(base, &Method::Get, "/api/v1/targets", &[]).1;
            let targets = json(&body)["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
            (targets.len() == 2 && targets.iter().all(|t| t["health"] == "up")).then_some(())
        });
        assert!(scraped.is_some(), "{base} did not scrape both targets");
    }
    let target = format!("{{instance=\"{}\"}}", loadgen.targets[0]);
    let requests: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("/api/v1/metadata", vec![]),
        ("/api/v1/metadata", vec![("metric", "loadgen_http_requests_total".into())]),
        ("/api/v1/targets/metadata", vec![("match_target", target.clone())]),
        ("/api/v1/targets/metadata", vec![("match_target", target), ("metric", "loadgen_memory_usage_bytes".into())]),
        // A selector that may match "" is fine here, as in upstream's ParseMetricSelector.
        (
            "/api/v1/targets/metadata",
            vec![("match_target", "{}".into()), ("metric", "loadgen_memory_usage_bytes".into())],
        ),
    ];
    // Entries sorted, since neither server promises an order across targets.
    let data = |base: &str, path: &str, form: &[(&str, String)]| {
        let body = json(&send(base, &Method::Get, path, form).1);
        match body["data"].clone() {
            Value::Array(mut items) => {
                items.sort_by_key(|v| v.to_string());
                Value::Array(items)
            }
            other => other,
        }
    };
    for (path, form) in &requests {
        let ours = data(&pyrite.url, path, form);
        assert_eq!(ours, data(&upstream.url, path, form), "{path} {form:?}");
        assert!(
            ours.as_array().map_or(ours.as_object().is_some_and(|o| !o.is_empty()), |a| !a.is_empty()),
            "{path}: {ours}"
        );
    }
}
