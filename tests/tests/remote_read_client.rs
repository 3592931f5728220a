//! The `remote_read` client: Pyrite's queries read a real upstream Prometheus (Debian's 2.42,
//! serving `/api/v1/read`) besides its own storage, merged; `required_matchers` and
//! `filter_external_labels` change what is asked as upstream; a store that is down is a
//! warning on an answer from the local data.

use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::Sample;
use pyrite_tests::{Pyrite, PyriteOpts, Upstream};
use serde_json::Value;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

fn series(name: &str, job: &str, samples: &[(i64, f64)]) -> WriteSeries {
    WriteSeries {
        labels: Labels::from_pairs([("__name__", name), ("job", job)]),
        samples: samples.iter().map(|&(t, v)| Sample { t, v }).collect(),
        exemplars: Vec::new(),
        histograms: Vec::new(),
    }
}

/// An upstream with these external labels holding `rr_remote{job="far"}` and the first two
/// samples of `rr_both{job="x"}`; the times used (ms).
fn remote_store(external: &str) -> (Upstream, [i64; 3]) {
    let t0 = now_ms() - 120_000;
    let t = [t0, t0 + 30_000, t0 + 60_000];
    let upstream =
        Upstream::start_configured(&format!("global:\n  scrape_interval: 1h\n  external_labels: {external}\n"), &[]);
    let written = encode_write_request(&[
        series("rr_remote", "far", &[(t[0], 7.0), (t[1], 8.0), (t[2], 9.0)]),
        series("rr_both", "x", &[(t[0], 1.0), (t[1], 2.0)]),
    ]);
    assert_eq!(pyrite_tests::remote_write_to(&upstream.url, &written).0, 204);
    (upstream, t)
}

fn pyrite(config: &str) -> Pyrite {
    Pyrite::start(PyriteOpts { config: Some(config.into()), shards: Some(2), ..Default::default() })
}

/// `(labels, [(t ms, value)])` of each series of a range query's result, sorted.
fn points(result: &Value) -> Vec<(String, Vec<(i64, String)>)> {
    let mut out: Vec<_> = result
        .as_array()
        .expect("matrix")
        .iter()
        .map(|s| {
            let values = s["values"].as_array().expect("values").iter().map(|p| {
                ((p[0].as_f64().expect("time") * 1000.0).round() as i64, p[1].as_str().expect("value").to_string())
            });
            (s["metric"].to_string(), values.collect())
        })
        .collect();
    out.sort();
    out
}

fn range(p: &Pyrite, query: &str, t: [i64; 3]) -> Value {
    p.query_range(query, t[0] as f64 / 1000.0, t[2] as f64 / 1000.0, 30.0)
}

#[test]
fn queries_read_the_remote_store_merged_with_local_data() {
    let (upstream, t) = remote_store("{}");
    let p = pyrite(&format!("remote_read:\n  - url: {}/api/v1/read\n", upstream.url));
    // The local copy of rr_both overlaps the remote one at t[1]: the local sample wins.
    let local = encode_write_request(&[series("rr_both", "x", &[(t[1], 20.0), (t[2], 30.0)])]);
    assert_eq!(p.remote_write(local).0, 204);
    let value = |v: f64| v.to_string();
    assert_eq!(
        points(&range(&p, "rr_remote", t)),
        vec![(
            r#"{"__name__":"rr_remote","job":"far"}"#.into(),
            t.iter().zip([7.0, 8.0, 9.0]).map(|(&t, v)| (t, value(v))).collect()
        )]
    );
    assert_eq!(
        points(&range(&p, "rr_both", t)),
        vec![(
            r#"{"__name__":"rr_both","job":"x"}"#.into(),
            t.iter().zip([1.0, 20.0, 30.0]).map(|(&t, v)| (t, value(v))).collect()
        )]
    );
    // Aggregations see one series per label set, across the shards.
    let count = p.query("count({__name__=~\"rr_.*\"})", Some(t[1] as f64 / 1000.0));
    assert_eq!(count[0]["value"][1], "2");
    let (_, body) = p.get("/api/v1/status/config");
    assert!(body.contains("read_recent: false") && body.contains("remote_timeout: 1m"), "{body}");
}

#[test]
fn required_matchers_decide_which_selectors_go_remote() {
    let (upstream, t) = remote_store("{}");
    let p =
        pyrite(&format!("remote_read:\n  - url: {}/api/v1/read\n    required_matchers: {{job: far}}\n", upstream.url));
    assert_eq!(range(&p, "rr_remote{job=\"far\"}", t).as_array().map(Vec::len), Some(1));
    assert_eq!(range(&p, "rr_remote", t).as_array().map(Vec::len), Some(0));
    assert_eq!(range(&p, "rr_remote{job=~\"far\"}", t).as_array().map(Vec::len), Some(0));
}

#[test]
fn external_labels_become_matchers_and_leave_the_answer() {
    let (upstream, t) = remote_store("{cluster: eu}");
    let read = |external: &str, filter: bool| {
        let p = pyrite(&format!(
            "global:\n  external_labels: {external}\nremote_read:\n  - url: {}/api/v1/read\n    filter_external_labels: {filter}\n",
            upstream.url
        ));
        let result = range(&p, "rr_remote", t);
        result.as_array().expect("matrix").iter().map(|s| s["metric"].to_string()).collect::<Vec<_>>()
    };
    // Same external labels as the store: asked with cluster="eu", answered without it.
    assert_eq!(read("{cluster: eu}", true), vec![r#"{"__name__":"rr_remote","job":"far"}"#]);
    // Another cluster's labels: the store holds nothing for cluster="us".
    assert_eq!(read("{cluster: us}", true), Vec::<String>::new());
    // Not filtered: asked without the label, the store's external label stays on the answer.
    assert_eq!(read("{cluster: us}", false), vec![r#"{"__name__":"rr_remote","cluster":"eu","job":"far"}"#]);
}

#[test]
fn a_store_that_is_down_is_a_warning_on_the_local_answer() {
    let down = format!("http://127.0.0.1:{}/api/v1/read", pyrite_tests::free_port());
    let p = pyrite(&format!("remote_read:\n  - url: {down}\n    name: gone\n    remote_timeout: 5s\n"));
    let t = now_ms() - 60_000;
    assert_eq!(p.remote_write(encode_write_request(&[series("rr_local", "here", &[(t, 5.0)])])).0, 204);
    let (status, body) = p.get(&format!("/api/v1/query?query=rr_local&time={}", t as f64 / 1000.0));
    let answer = pyrite_tests::json(&body);
    assert_eq!((status, answer["status"].as_str()), (200, Some("success")), "{body}");
    assert_eq!(answer["data"]["result"][0]["value"][1], "5", "{body}");
    let warnings = answer["warnings"].as_array().expect("warnings");
    assert!(warnings.iter().any(|w| w.as_str().is_some_and(|w| w.contains("remote_read gone"))), "{body}");
}

/// A store that answers every request with `body` (a snappy-compressed `ReadResponse`).
fn store_answering(body: Vec<u8>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/v1/read", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_millis(500)));
            // The whole request is read first: a connection closed with bytes of it unread is
            // reset, and the client sees that instead of the answer (a flaky failure in CI).
            let mut request = Vec::new();
            let mut chunk = [0u8; 65536];
            while !whole_request(&request) {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    url
}

/// Whether `request` holds a whole HTTP request: its head, and as many body bytes as its
/// `Content-Length` says.
fn whole_request(request: &[u8]) -> bool {
    let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    request.len() >= end + 4 + length
}

/// A store answering series whose labels upstream's client refuses (an empty name, a name
/// twice, no metric name), or not one result per query, fails as a store that is down does: a
/// warning, and the local answer alone.
#[test]
fn a_store_answering_invalid_series_is_a_warning_on_the_local_answer() {
    use pyrite_core::remote::read::{encode_read_response, QueryResult, ReadResponse};
    use pyrite_core::remote::{Label, TimeSeries, WireSample};
    let t = now_ms() - 60_000;
    let with_labels = |pairs: &[(&str, &str)]| TimeSeries {
        labels: pairs.iter().map(|&(name, value)| Label { name: name.into(), value: value.into() }).collect(),
        samples: vec![WireSample { value: 7.0, timestamp: t }],
        exemplars: Vec::new(),
        histograms: Vec::new(),
    };
    let answer = |results: Vec<Vec<TimeSeries>>| {
        let results = results.into_iter().map(|timeseries| QueryResult { timeseries }).collect();
        encode_read_response(&ReadResponse { results })
    };
    for (body, why) in [
        (answer(vec![vec![with_labels(&[("__name__", "rr_local"), ("", "x")])]]), "invalid label name: "),
        (
            answer(vec![vec![with_labels(&[("__name__", "rr_local"), ("job", "a"), ("job", "b")])]]),
            "duplicate label with name: job",
        ),
        (answer(vec![vec![with_labels(&[("__name__", ""), ("job", "a")])]]), "invalid metric name: "),
        (answer(Vec::new()), "responses: want 1, got 0"),
    ] {
        let p = pyrite(&format!("remote_read:\n  - url: {}\n    name: odd\n", store_answering(body)));
        assert_eq!(p.remote_write(encode_write_request(&[series("rr_local", "here", &[(t, 5.0)])])).0, 204);
        let (status, body) = p.get(&format!("/api/v1/query?query=rr_local&time={}", t as f64 / 1000.0));
        let answer = pyrite_tests::json(&body);
        assert_eq!((status, answer["data"]["result"].as_array().map(Vec::len)), (200, Some(1)), "{why}: {body}");
        assert_eq!(answer["data"]["result"][0]["value"][1], "5", "{body}");
        let warnings = answer["warnings"].as_array().expect("warnings");
        assert!(
            warnings.iter().any(|w| w.as_str().is_some_and(|w| w.contains("remote_read odd") && w.contains(why))),
            "{why}: {body}"
        );
    }
}
