//! Requests that once crashed, stalled or ballooned the server, each sent to the real binary;
//! after each one the server must still answer and still hold its data.

use std::time::{Duration, Instant};

use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::Sample;
use pyrite_tests::{encode, http_get_within, json, Pyrite, PyriteOpts};

/// A server on two shards holding `kept{i="0".."9"}`, ten samples each at 0..9 s.
fn server(extra_args: &[&str]) -> Pyrite {
    server_on(2, extra_args)
}

/// The same on `shards` shards.
fn server_on(shards: usize, extra_args: &[&str]) -> Pyrite {
    holding_kept(Pyrite::start(PyriteOpts {
        shards: Some(shards),
        extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    }))
}

/// The same on two shards, configured by `config`.
fn server_with_config(config: &str) -> Pyrite {
    holding_kept(Pyrite::start(PyriteOpts { shards: Some(2), config: Some(config.to_string()), ..Default::default() }))
}

/// `p` once it holds `kept`.
fn holding_kept(p: Pyrite) -> Pyrite {
    let series: Vec<WriteSeries> = (0..10)
        .map(|i| WriteSeries {
            labels: Labels::from_pairs([("__name__", "kept".to_string()), ("i", i.to_string())]),
            samples: (0..10).map(|k| Sample { t: k * 1000, v: (i * 100 + k) as f64 }).collect(),
            exemplars: Vec::new(),
            histograms: Vec::new(),
        })
        .collect();
    assert_eq!(p.remote_write(encode_write_request(&series)).0, 204);
    p
}

/// The process is alive, healthy, and answers a query over its data as before.
fn still_serves(p: &mut Pyrite, after: &str) {
    if let Some((status, err)) = p.process.exited() {
        panic!("pyrite died after {after} ({status}):\n{err}");
    }
    assert_eq!(p.get("/-/healthy").0, 200, "after {after}");
    let sum = p.query("sum(kept)", Some(9.0));
    assert_eq!(sum[0]["value"][1], "4590", "after {after}: {sum}");
}

/// GET `path`; the status and body, or a panic if no answer came within 30 s.
fn get(p: &Pyrite, path: &str) -> (u16, String) {
    http_get_within(&format!("{}{path}", p.url), Duration::from_secs(30)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `errorType` of a JSON error answer (panics if the body is not the API's JSON).
fn error_type(body: &str) -> String {
    json(body)["errorType"].as_str().unwrap_or_else(|| panic!("not an API error: {body}")).to_string()
}

#[test]
fn multi_byte_characters_in_times_are_bad_data() {
    let mut p = server(&["--web.enable-admin-api"]);
    let odd = encode("2024-01-01T00:00:00+1é00");
    for path in [
        format!("/api/v1/query?query=up&time={odd}"),
        format!("/api/v1/query_range?query=up&start={odd}&end=10&step=1"),
        format!("/api/v1/query_range?query=up&start=0&end={odd}&step=1"),
        format!("/api/v1/series?match[]=kept&start={odd}"),
        format!("/api/v1/labels?end={odd}"),
        format!("/api/v1/label/i/values?start={odd}"),
        format!("/api/v1/query?query=up&time={}", encode("2015-02-31T00:00:00Z")),
    ] {
        let (status, body) = get(&p, &path);
        assert_eq!((status, error_type(&body).as_str()), (400, "bad_data"), "{path}: {body}");
    }
    let (status, body) = pyrite_tests::http_post_form(
        &format!("{}/api/v1/admin/tsdb/delete_series", p.url),
        &[("match[]", "kept"), ("start", "2024-01-01T00:00:00+1é00")],
    )
    .expect("answer");
    assert_eq!(status, 400, "{body}");
    still_serves(&mut p, "multi-byte times");
}

#[test]
fn extreme_time_ranges_are_refused_without_overflow() {
    let mut p = server(&[]);
    for (path, want) in [
        ("/api/v1/query_range?query=up&start=-9e15&end=9e15&step=60", 400),
        // A step past int64 nanoseconds is upstream's overflow error; the largest step under it
        // takes a span past the clamp (upstream saturates the span, it does not overflow).
        ("/api/v1/query_range?query=kept&start=-9.2e18&end=9.2e18&step=1e15", 400),
        ("/api/v1/query_range?query=kept&start=9e15&end=9.2e18&step=9e9", 200),
        ("/api/v1/query?query=kept%20offset%20-290y&time=9e15", 200),
        ("/api/v1/query?query=kept%20%40%209e15&time=-9e15", 200),
        ("/api/v1/query?query=max_over_time(kept%5B290y%5D)&time=9e15", 200),
        ("/api/v1/query?query=rate(kept%5B5m%3A0s%5D)&time=9", 400),
        ("/api/v1/query?query=rate(kept%5B5m%3A(1s-1s)%5D)&time=9", 400),
    ] {
        let (status, body) = get(&p, path);
        assert_eq!(status, want, "{path}: {body}");
    }
    still_serves(&mut p, "extreme time ranges");
}

/// `n` ones added up as a balanced tree: deep as log2(n).
fn balanced(n: usize) -> String {
    if n == 1 {
        return "1".into();
    }
    format!("({}+{})", balanced(n / 2), balanced(n - n / 2))
}

#[test]
fn deeply_nested_and_huge_queries_are_refused_with_a_parse_error() {
    let mut p = server(&[]);
    let deep = [
        format!("{}1{}", "(".repeat(1000), ")".repeat(1000)),
        vec!["1"; 1500].join("+"),
        format!("{}1", "-".repeat(5600)),
        format!("{}up{}", "abs(".repeat(1000), ")".repeat(1000)),
        format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000)),
        // Shallow but large: a balanced tree of 100,000 additions parsed into some 100 MB.
        balanced(100_000),
        // As large, of names and few operators: 250,000 selectors in 500 groups of `or`.
        vec![format!("({})", vec!["kept"; 500].join(" or ")); 500].join(" or "),
    ];
    for q in &deep {
        for endpoint in ["query", "parse_query", "format_query"] {
            let (status, body) =
                pyrite_tests::http_post_form(&format!("{}/api/v1/{endpoint}", p.url), &[("query", q)]).expect("answer");
            assert_eq!(status, 400, "{endpoint} {}: {body}", &q[..20]);
            assert!(body.contains("query too complex"), "{endpoint}: {}", &body[..body.len().min(300)]);
        }
    }
    // Just inside the limit, on a shard's thread: parsed, planned, evaluated and dropped.
    for q in [
        format!("{}1{}", "(".repeat(490), ")".repeat(490)),
        vec!["1"; 950].join("+"),
        format!("{}kept{}", "abs(".repeat(490), ")".repeat(490)),
        format!("{}kept{}", "sum(".repeat(490), ")".repeat(490)),
        format!("{}kept{}", "max_over_time(".repeat(330), "[5m:1m])".repeat(330)),
        vec!["2"; 950].join("^"),
    ] {
        let (status, body) = pyrite_tests::http_post_form(
            &format!("{}/api/v1/query_range", p.url),
            &[("query", q.as_str()), ("start", "0"), ("end", "9"), ("step", "1")],
        )
        .expect("answer");
        assert!(status == 200 || status == 422, "{}: {status} {body}", &q[..20]);
    }
    still_serves(&mut p, "deep queries");
}

/// Pretty-printing indents every level again: a 100 KB query of deep chains prints as some
/// hundred megabytes, which once took cubic time to copy together. It is written once now,
/// and refused past 16 MiB.
#[test]
fn format_query_of_many_deep_chains_is_written_once_and_bounded() {
    let mut p = server(&[]);
    let chain = format!("({})", vec!["kept"; 900].join("+"));
    for (chains, within) in [(1, true), (50, false)] {
        let q = vec![chain.as_str(); chains].join(" or ");
        let (status, body) =
            pyrite_tests::http_post_form(&format!("{}/api/v1/format_query", p.url), &[("query", q.as_str())])
                .expect("answer");
        match within {
            true => assert!(status == 200 && body.len() > 1_000_000, "{status} {}", &body[..body.len().min(300)]),
            false => {
                assert!(status == 400 && body.contains("longer than"), "{status} {}", &body[..body.len().min(300)])
            }
        }
    }
    still_serves(&mut p, "format_query of deep chains");
}

/// `query_exemplars` matches a query's selectors on every shard's thread: a repeated one
/// once, and at most a thousand distinct ones, as `match[]`.
#[test]
fn query_exemplars_matches_each_selector_once_and_at_most_a_thousand() {
    let mut p = server(&[]);
    let repeated = vec![format!("({})", vec!["kept"; 500].join(" or ")); 40].join(" or ");
    let distinct = (0..1001).map(|i| format!("kept{{i=\"{i}\"}}")).collect::<Vec<_>>().join(" or ");
    for (q, want) in [(repeated, 200), (distinct, 400)] {
        let (status, body) =
            pyrite_tests::http_post_form(&format!("{}/api/v1/query_exemplars", p.url), &[("query", q.as_str())])
                .expect("answer");
        assert_eq!(status, want, "{}", &body[..body.len().min(300)]);
    }
    still_serves(&mut p, "query_exemplars of many selectors");
}

#[test]
fn regex_matchers_compile_small_and_within_a_size_limit() {
    let mut p = server(&[]);
    // Unicode `\w{150}` compiled to some 10 MB each; RE2's (and now Pyrite's) `\w` is ASCII.
    let matchers: Vec<String> = (0..100).map(|i| format!(r#"a{i}=~"\\w{{150}}""#)).collect();
    let query = format!("kept{{{}}}", matchers.join(","));
    let (status, body) =
        pyrite_tests::http_post_form(&format!("{}/api/v1/query", p.url), &[("query", query.as_str())]).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(p.process.peak_rss_bytes() < 400 << 20, "peak RSS {} MB", p.process.peak_rss_bytes() >> 20);
    // Past the size limit, a bad_data error names the expression.
    let big = r#"kept{a=~"\\pL{1000}"}"#;
    let (status, body) = pyrite_tests::http_post_form(&format!("{}/api/v1/query", p.url), &[("query", big)]).unwrap();
    assert_eq!((status, error_type(&body).as_str()), (400, "bad_data"), "{body}");
    // Large ones, each within the limit, past what one request's may take together.
    let large: Vec<String> = (0..8).map(|i| format!(r#"a{i}=~"\\pL{{{}}}""#, 20 + i)).collect();
    let query = format!("kept{{{}}}", large.join(","));
    let (status, body) =
        pyrite_tests::http_post_form(&format!("{}/api/v1/query", p.url), &[("query", query.as_str())]).unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("regular expressions would take more than"), "{body}");
    still_serves(&mut p, "large regular expressions");
}

#[test]
fn subqueries_with_huge_step_counts_are_refused_before_allocating() {
    let mut p = server(&[]);
    for q in [
        "max_over_time(kept[30d:1ms])",
        "count_over_time(vector(1)[290y:1ms])",
        "sum_over_time(vector(time())[1y:1ms])",
    ] {
        let started = Instant::now();
        let (status, body) = get(&p, &format!("/api/v1/query?query={}&time=9", encode(q)));
        assert_eq!(status, 422, "{q}: {body}");
        assert!(body.contains("too many samples"), "{q}: {body}");
        assert!(started.elapsed() < Duration::from_secs(5), "{q} took {:?}", started.elapsed());
    }
    still_serves(&mut p, "huge subqueries");
}

#[test]
fn a_timed_out_query_stops_working_and_later_queries_run() {
    let mut p = server(&["--query.max-samples=500000000"]);
    // About 43 million steps per series: seconds of work for each of the ten series.
    let heavy = encode("max_over_time(kept[12h:1ms])");
    let started = Instant::now();
    let (status, body) = get(&p, &format!("/api/v1/query?query={heavy}&time=9&timeout=500ms"));
    assert_eq!((status, error_type(&body).as_str()), (503, "timeout"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(3), "the timeout answered after {:?}", started.elapsed());
    // The shards dropped the work: a small query right after answers at once.
    let started = Instant::now();
    still_serves(&mut p, "a timed-out query");
    assert!(started.elapsed() < Duration::from_secs(2), "the next query waited {:?}", started.elapsed());
}

/// A client that goes away cancels its query even on the one shard, whose thread is busy with
/// that query and cannot run the connection's task: evaluation probes the client's socket.
#[test]
fn a_query_whose_client_went_away_stops_working() {
    use std::io::Write;
    let p = server_on(1, &["--query.max-samples=500000000"]);
    // About 43 million steps per series, ten series: far longer than this test's bounds when
    // nobody stops it (21 s here with the client gone and no probe).
    let heavy = encode("max_over_time(kept[12h:1ms])");
    let mut client = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    let request = format!("GET /api/v1/query?query={heavy}&time=9&timeout=120s HTTP/1.1\r\nHost: x\r\n\r\n");
    client.write_all(request.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(client);
    let gone = Instant::now();
    let (status, _) = http_get_within(&format!("{}/-/healthy", p.url), Duration::from_secs(60)).unwrap();
    assert_eq!(status, 200);
    assert!(
        gone.elapsed() < Duration::from_secs(3),
        "the shard was busy for {:?} after the client left",
        gone.elapsed()
    );
}

/// `curl -g 'host/api/v1/query?query=up{job="a"}'` sends its quotes raw, as other clients send
/// `<`, `#` or non-ASCII bytes: read as Go's server reads them, not refused with a bare 400.
#[test]
fn raw_quotes_and_non_ascii_in_a_request_target_are_read() {
    use std::io::{Read, Write};
    let p = server(&[]);
    let mut client = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    let query = "label_replace(vector(1)<2,\"to\",\"ü#\",\"\",\"\")";
    let request = format!("GET /api/v1/query?query={query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    client.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"to\":\"ü#\""), "{answer}");
}

/// `nc -N`, `printf … | nc -q 1` and scripts shut their sending side once the request is out:
/// they get their answer, as from Go's server (before, hyper took the end-of-file for a client
/// gone and dropped the answer, most times).
#[test]
fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    use std::io::{Read, Write};
    let p = server(&[]);
    let ask = |request: &str| {
        let mut client = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        client.write_all(request.as_bytes()).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        let _ = client.read_to_string(&mut answer);
        answer
    };
    let status = |answer: &str| answer.split(' ').nth(1).unwrap_or_default().to_string();
    for path in ["/-/healthy", "/metrics", "/api/v1/labels", "/federate?match[]=up", "/api/v1/status/buildinfo"] {
        for version in ["HTTP/1.1\r\nHost: x", "HTTP/1.0"] {
            for _ in 0..5 {
                let answer = ask(&format!("GET {path} {version}\r\n\r\n"));
                assert_eq!(status(&answer), "200", "{path} {version}: {answer:.200}");
            }
        }
    }
    // A query notices the closed side, as upstream's cancelled context: its answer, or 499
    // `canceled` as upstream 3.x answers then.
    for _ in 0..5 {
        let answer = ask("GET /api/v1/query?query=1 HTTP/1.0\r\n\r\n");
        let canceled = status(&answer) == "499" && answer.contains(r#""errorType":"canceled""#);
        assert!(status(&answer) == "200" || canceled, "{answer:.300}");
    }
    // Two requests sent together, then the end: two answers.
    let answer = ask("GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\nGET /-/ready HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
}

/// A client that half-closes while its answer comes and reads the rest after a while gets all
/// of it: the grace after its end-of-file bounds the handler's work, not the sending (a review
/// had a 13 MB answer cut at 10 MB).
#[test]
fn a_half_closed_client_that_reads_late_gets_the_whole_answer() {
    use std::io::{Read, Write};
    let p = server(&[]);
    // A hundred series at 11,000 steps, 14 MB of JSON: more than the kernel's buffers take (4 MB
    // here) while the client does not read, so hyper holds the rest past the grace.
    let copies: Vec<String> =
        (0..10).map(|c| format!("label_replace(last_over_time(kept[1y]), \"c\", \"{c}\", \"\", \"\")")).collect();
    let query = encode(&copies.join(" or "));
    let request = format!("GET /api/v1/query_range?query={query}&start=0&end=10999&step=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut client = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    client.write_all(request.as_bytes()).unwrap();
    // Once the answer comes (a query still running would notice the closed side and stop).
    let mut answer = vec![0];
    client.read_exact(&mut answer).unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_secs(7));
    let _ = client.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").expect("an answer");
    assert!(
        head.to_ascii_lowercase().contains(&format!("content-length: {}", body.len())),
        "{head}: {} bytes",
        body.len()
    );
    assert!(body.len() > 10_000_000 && body.ends_with("]}]}}"), "{} bytes: {body:.300}", body.len());
}

/// A request that declares a body of 2^63 − 1 bytes and sends a few is answered at once, not
/// after `--web.read-timeout` of waiting for bytes that never come: a GET's body is not read
/// (Go's `ParseForm` leaves it), and a declared length past a limit is refused before reading.
/// One of 2^63 gets Go's bare 400 (hyper took it).
#[test]
fn a_huge_declared_body_is_answered_at_once() {
    use std::io::{Read, Write};
    let p = server(&[]);
    let huge = "Content-Length: 9223372036854775807\r\nConnection: close";
    for (request, expected) in [
        (format!("GET /api/v1/query?query=1 HTTP/1.1\r\nHost: x\r\n{huge}\r\n\r\nhello"), "200"),
        ("GET /api/v1/query?query=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775808\r\n\r\nhello".to_string(), "400"),
        (format!("POST /api/v1/write HTTP/1.1\r\nHost: x\r\n{huge}\r\n\r\nhello"), "413"),
        (
            format!("POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n{huge}\r\n\r\nquery=1"),
            "400",
        ),
    ] {
        let mut client = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        client.write_all(request.as_bytes()).unwrap();
        let mut answer = [0; 12];
        let read = client.read_exact(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(read.is_ok() && answer.ends_with(expected), "{request:.40}: {read:?} {answer}");
    }
}

/// `Host` headers Go's server refuses before any handler are refused as it refuses them.
#[test]
fn requests_without_one_valid_host_are_refused_as_go_refuses_them() {
    use std::io::{Read, Write};
    let p = server(&[]);
    for (headers, expected) in [
        ("GET /-/healthy HTTP/1.1\r\n", "HTTP/1.1 400 Bad Request"),
        ("GET /-/healthy HTTP/1.1\r\nHost: a\r\nHost: b\r\n", "400 Bad Request: too many Host headers"),
        ("GET /-/healthy HTTP/1.1\r\nHost: a b/c\r\n", "400 Bad Request: malformed Host header"),
        ("GET /-/healthy HTTP/1.1\r\n", "400 Bad Request: missing required Host header"),
        ("GET /-/healthy HTTP/1.0\r\n", "Pyrite Server is Healthy."),
        ("GET /-/healthy HTTP/1.1\r\nHost: [::1]:9090\r\nConnection: close\r\n", "Pyrite Server is Healthy."),
    ] {
        let mut client = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        client.write_all(format!("{headers}\r\n").as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = client.read_to_string(&mut answer);
        assert!(answer.contains(expected), "{headers:?}: {answer}");
    }
}

#[test]
fn api_errors_are_json_and_do_not_echo_megabytes() {
    let mut p = server(&[]);
    let (status, body) = get(&p, "/api/v1/label/%FF/values");
    assert_eq!((status, error_type(&body).as_str()), (400, "bad_data"), "{body}");
    let huge = "x".repeat(1 << 20);
    let (status, body) = pyrite_tests::http_post_form(
        &format!("{}/api/v1/query_range", p.url),
        &[("query", "up"), ("start", huge.as_str()), ("end", "1"), ("step", "1")],
    )
    .expect("answer");
    assert_eq!((status, error_type(&body).as_str()), (400, "bad_data"));
    assert!(body.len() < 8192, "the error echoed {} bytes", body.len());
    still_serves(&mut p, "error answers");
}

/// POSTs `body` to the remote-write endpoint with these headers.
fn remote_write_with(p: &Pyrite, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut request = ureq::post(&format!("{}/api/v1/write", p.url)).timeout(Duration::from_secs(60));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    match request.send_bytes(body) {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("remote write: {e}"),
    }
}

const V1: [(&str, &str); 2] = [("Content-Type", "application/x-protobuf"), ("Content-Encoding", "snappy")];

#[test]
fn remote_bodies_past_32_mib_get_413_and_a_wrong_type_is_refused_unread() {
    let mut p = server(&[]);
    let big = vec![0u8; (32 << 20) + 1];
    assert_eq!(remote_write_with(&p, &V1, &big).0, 413);
    let read = ureq::post(&format!("{}/api/v1/read", p.url)).timeout(Duration::from_secs(60)).send_bytes(&big);
    assert!(matches!(read, Err(ureq::Error::Status(413, _))), "{read:?}");
    // A message type the receiver does not take is answered before the body is read.
    let (status, body) = remote_write_with(&p, &[("Content-Type", "text/plain")], &big);
    assert_eq!(status, 415, "{body}");
    still_serves(&mut p, "bodies past the limit");
}

#[test]
fn remote_write_bodies_are_validated_as_they_decode() {
    let mut p = server(&[]);
    // Three megabytes that decompress to millions of empty series without names: skipped one
    // by one, none built.
    let empties = snap::raw::Encoder::new().compress_vec(&[0x0a, 0x00].repeat(16 << 20)).expect("compress");
    let started = Instant::now();
    let (status, body) = remote_write_with(&p, &V1, &empties);
    assert_eq!(status, 204, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let peak = p.process.peak_rss_bytes();
    assert!(peak < 400 << 20, "peak RSS {} MiB", peak >> 20);
    // One series with a hundred thousand labels: skipped at once, not after a quadratic check.
    let labels: Vec<(String, String)> = (0..100_000).map(|i| (format!("l{i}"), "v".to_string())).collect();
    let wide = WriteSeries {
        labels: Labels::from_pairs(labels.into_iter().chain([("__name__".to_string(), "wide".to_string())])),
        samples: vec![Sample { t: 1000, v: 1.0 }],
        exemplars: Vec::new(),
        histograms: Vec::new(),
    };
    let started = Instant::now();
    let (status, body) = remote_write_with(&p, &V1, &encode_write_request(&[wide]));
    assert_eq!(status, 204, "{body}");
    assert_eq!(p.query("wide", Some(1.0)).as_array().map(Vec::len), Some(0), "the series is not stored");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    still_serves(&mut p, "hostile remote-write bodies");
}

#[test]
fn remote_write_messages_it_cannot_decode_get_415() {
    let mut p = server(&[]);
    let body = encode_write_request(&[WriteSeries {
        labels: Labels::from_pairs([("__name__", "late"), ("i", "0")]),
        samples: vec![Sample { t: 5000, v: 1.0 }],
        exemplars: Vec::new(),
        histograms: Vec::new(),
    }]);
    for headers in [
        vec![
            ("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v3.Request"),
            ("Content-Encoding", "snappy"),
        ],
        vec![("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")],
        vec![("Content-Type", "application/json"), ("Content-Encoding", "snappy")],
    ] {
        let (status, answer) = remote_write_with(&p, &headers, &body);
        assert_eq!(status, 415, "{headers:?}: {answer}");
    }
    assert!(p.query("late", Some(5.0)).as_array().expect("vector").is_empty(), "nothing was stored");
    let v1 = [("Content-Type", "application/x-protobuf;proto=prometheus.WriteRequest"), ("Content-Encoding", "snappy")];
    assert_eq!(remote_write_with(&p, &v1, &body).0, 204);
    assert_eq!(p.query("late", Some(5.0))[0]["value"][1], "1");
    still_serves(&mut p, "remote-write content types");
}

/// A server scraping, every second, a target that always answers `body` (job `job`).
fn scraping(job: &str, body: &str) -> Pyrite {
    let response = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let target = pyrite_tests::fake_target(Some(Box::leak(response.into_boxed_str())));
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: [\"{target}\"]\n"
    );
    Pyrite::start(PyriteOpts { config: Some(config), ..Default::default() })
}

/// The target of `job` once its `lastError` contains `text` (within `limit`).
fn target_with_error(p: &Pyrite, job: &str, text: &str, limit: Duration) -> serde_json::Value {
    pyrite_tests::eventually(limit, || {
        let targets = p.data("/api/v1/targets");
        let t = targets["activeTargets"].as_array()?.iter().find(|t| t["labels"]["job"] == job)?.clone();
        t["lastError"].as_str()?.contains(text).then_some(t)
    })
    .unwrap_or_else(|| panic!("no target of {job} with an error containing {text:?}"))
}

/// Milliseconds since the epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

#[test]
fn samples_far_in_the_future_are_refused_and_do_not_move_the_head() {
    // Short blocks, so that housekeeping would cut (and once did cut) within the test.
    let mut p = server(&["--storage.tsdb.min-block-duration=2s"]);
    let now = now_ms();
    let blocks_before = p.metric("prometheus_tsdb_compactions_total");
    let series = |name: &str, t: i64| WriteSeries {
        labels: Labels::from_pairs([("__name__", name.to_string())]),
        samples: vec![Sample { t, v: 1.0 }],
        exemplars: Vec::new(),
        histograms: Vec::new(),
    };
    let ten_years = 10 * 365 * 86_400_000;
    let (status, body) = p.remote_write(encode_write_request(&[series("future", now + ten_years)]));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("too far in the future"), "{body}");
    assert_eq!(p.remote_write(encode_write_request(&[series("extreme", i64::MAX)])).0, 400);
    // A sample at the other end of time is stored, and cannot make the head's range overflow.
    assert_eq!(p.remote_write(encode_write_request(&[series("ancient", i64::MIN + 1)])).0, 204);
    assert!(p.metric("pyrite_head_too_far_in_future_samples_total") >= 2.0);
    // Current samples keep being accepted while blocks are cut around them.
    for k in 0..6 {
        let t = now_ms();
        let (status, body) = p.remote_write(encode_write_request(&[series("current", t)]));
        assert_eq!(status, 204, "write {k}: {body}");
        std::thread::sleep(Duration::from_millis(700));
    }
    assert!(p.metric("prometheus_tsdb_compactions_total") > blocks_before, "no block was cut");
    let current = p.query("count_over_time(current[1m])", Some(now_ms() as f64 / 1000.0));
    assert_eq!(current[0]["value"][1], "6", "{current}");
    // (`kept`, from 1970, went by retention once blocks were cut: no `still_serves` here.)
    assert!(p.process.exited().is_none(), "pyrite died");
}

#[test]
fn a_scraped_sample_far_in_the_future_is_refused_and_shown_in_the_target_error() {
    let far = now_ms() + 10 * 365 * 86_400_000;
    let p = scraping("clock", &format!("ok_metric 1\nfuture_metric 2 {far}\n"));
    let seen = target_with_error(&p, "clock", "ahead of the server's clock", Duration::from_secs(10));
    assert_eq!(seen["health"], "up", "{seen}");
    assert_eq!(p.query("ok_metric", None)[0]["value"][1], "1");
    assert!(p.query("future_metric", Some(far as f64 / 1000.0)).as_array().expect("vector").is_empty());
}

#[test]
fn hostile_files_are_refused_and_the_server_serves_on() {
    let dir = pyrite_tests::TempDir::new("hostile-files");
    // A file_sd file that is a symlink to /dev/zero, beside a good one.
    std::os::unix::fs::symlink("/dev/zero", dir.0.join("zero.yml")).expect("symlink");
    std::fs::write(dir.0.join("good.yml"), "- targets: ['127.0.0.1:1']\n").expect("write");
    let config = format!(
        "scrape_configs:\n  - job_name: files\n    file_sd_configs:\n      - files: ['{}/*.yml']\n        refresh_interval: 1s\n",
        dir.0.display()
    );
    let mut p = Pyrite::start(PyriteOpts {
        config: Some(config),
        extra_args: vec!["--web.enable-lifecycle".into()],
        ..Default::default()
    });
    let failed = pyrite_tests::eventually(Duration::from_secs(10), || {
        (p.metric("prometheus_sd_file_read_errors_total") >= 1.0).then_some(())
    });
    assert!(failed.is_some(), "the /dev/zero file is a discovery failure");
    let peak = p.process.peak_rss_bytes();
    assert!(peak < 400 << 20, "peak RSS {} MiB", peak >> 20);
    // A configuration of 200,000 nested brackets: refused at once, the API never waits.
    let config_file = p.data_dir.parent().expect("dir").join("prometheus.yml");
    std::fs::write(&config_file, format!("scrape_configs: {}", "[".repeat(200_000))).expect("write");
    let started = Instant::now();
    let (status, body) = pyrite_tests::http_post_form(&format!("{}/-/reload", p.url), &[]).expect("answer");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("nested more than 128 levels"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(2), "the reload took {:?}", started.elapsed());
    assert_eq!(p.query("vector(1)", None)[0]["value"][1], "1");
    assert!(p.process.exited().is_none(), "pyrite died");
}

#[test]
fn start_up_is_linear_in_static_targets() {
    // 100,000 targets on loopback addresses nobody listens on, scraped hourly: about half a
    // minute of start-up here when duplicates were checked pairwise, now about a second.
    let targets: Vec<String> =
        (1..=100_000u32).map(|i| format!("'127.{}.{}.{}:1'", i >> 16, (i >> 8) & 255, i & 255)).collect();
    let config = format!(
        "global:\n  scrape_interval: 1h\nscrape_configs:\n  - job_name: many\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    let started = Instant::now();
    let p = Pyrite::start(PyriteOpts { config: Some(config), ..Default::default() });
    assert!(started.elapsed() < Duration::from_secs(15), "ready after {:?}", started.elapsed());
    assert_eq!(p.metric("prometheus_target_scrape_pool_targets"), 100_000.0);
}

#[test]
fn a_rule_file_with_a_too_deep_query_is_refused_not_a_crash_loop() {
    let dir = pyrite_tests::TempDir::new("hostile-rules");
    let rules = dir.0.join("rules.yml");
    let deep = format!("{}1{}", "(".repeat(1000), ")".repeat(1000));
    std::fs::write(&rules, format!("groups:\n  - name: g\n    rules:\n      - record: deep\n        expr: '{deep}'\n"))
        .expect("write");
    let check = std::process::Command::new(pyrite_tests::bin("pyrite"))
        .args(["check", "rules", rules.to_str().expect("path")])
        .output()
        .expect("run pyrite check rules");
    let said = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "{said}");
    assert!(said.contains("query too complex"), "{said}");
    // The server refuses to start on it, with the reason, instead of aborting.
    let mut p = Pyrite::spawn(PyriteOpts {
        config: Some(format!("rule_files: ['{}']\n", rules.display())),
        ..Default::default()
    });
    let (status, stderr) = p.process.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("query too complex"), "{stderr}");
}

#[test]
fn rule_queries_obey_the_sample_limit() {
    let dir = pyrite_tests::TempDir::new("hostile-rule-limit");
    let rules = dir.0.join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - record: heavy\n        expr: count_over_time(vector(1)[1h:1s])\n      - record: light\n        expr: vector(1)\n",
    )
    .expect("write");
    let p = Pyrite::start(PyriteOpts {
        shards: Some(2),
        config: Some(format!("rule_files: ['{}']\n", rules.display())),
        extra_args: vec!["--query.max-samples=1000".into()],
        ..Default::default()
    });
    let evaluated = pyrite_tests::eventually(Duration::from_secs(10), || {
        let groups = p.data("/api/v1/rules");
        let rules = groups["groups"][0]["rules"].as_array()?.clone();
        (rules.iter().all(|r| r["lastEvaluation"] != "0001-01-01T00:00:00Z")).then_some(rules)
    })
    .expect("both rules evaluated");
    assert_eq!(evaluated[0]["health"], "err", "{:?}", evaluated[0]);
    assert!(evaluated[0]["lastError"].as_str().unwrap_or("").contains("too many samples"), "{:?}", evaluated[0]);
    assert_eq!(evaluated[1]["health"], "ok", "{:?}", evaluated[1]);
}

#[test]
fn format_query_of_a_deep_query_with_a_huge_matcher_stays_small() {
    let mut p = server(&[]);
    let q = format!("{}m{{a=\"{}\"}}{}", "(".repeat(490), "x".repeat(6_000_000), ")".repeat(490));
    let started = Instant::now();
    let (status, body) =
        pyrite_tests::http_post_form(&format!("{}/api/v1/format_query", p.url), &[("query", q.as_str())])
            .expect("answer");
    assert_eq!(status, 200, "{}", &body[..body.len().min(300)]);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let peak = p.process.peak_rss_bytes();
    assert!(peak < 600 << 20, "peak RSS {} MiB (was gigabytes)", peak >> 20);
    still_serves(&mut p, "format_query of a huge deep query");
}

#[test]
fn a_backfill_of_ancient_sparse_samples_does_not_stall_the_shard() {
    // Two-second blocks, so housekeeping runs every second; one sample every two hours for
    // eleven years, in one request: once 32,000 one-sample blocks cut on the shard's thread.
    let mut p = server(&["--storage.tsdb.min-block-duration=2s"]);
    let now = now_ms();
    let backfill = WriteSeries {
        labels: Labels::from_pairs([("__name__", "backfill")]),
        samples: (0..50_000).rev().map(|k| Sample { t: now - 3_600_000 - k * 7_200_000, v: k as f64 }).collect(),
        exemplars: Vec::new(),
        histograms: Vec::new(),
    };
    assert_eq!(p.remote_write(encode_write_request(&[backfill])).0, 204);
    for _ in 0..10 {
        let started = Instant::now();
        let (status, body) = get(&p, "/api/v1/query?query=vector(1)");
        assert_eq!(status, 200, "{body}");
        assert!(started.elapsed() < Duration::from_secs(2), "a query waited {:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(500));
    }
    // Ranges older than the 15-day retention were dropped, not written as blocks.
    let blocks = p.metric("prometheus_tsdb_compactions_total");
    assert!(blocks < 400.0, "{blocks} blocks cut");
    assert!(p.process.exited().is_none(), "pyrite died");
}

#[test]
fn a_scraped_line_with_a_hundred_thousand_labels_is_refused_quickly() {
    let labels: Vec<String> = (0..100_000).map(|i| format!("l{i}=\"v\"")).chain(["l0=\"again\"".into()]).collect();
    let p = scraping("wide", &format!("wide{{{}}} 1\n", labels.join(",")));
    let scraped = target_with_error(&p, "wide", "duplicate label name", Duration::from_secs(15));
    let took = scraped["lastScrapeDuration"].as_f64().expect("duration");
    assert!(took < 1.0, "the scrape took {took} s");
}

#[test]
fn a_selector_repeated_many_times_is_matched_once() {
    let mut p = server(&[]);
    let costly = "kept{i=~\"(?:(?:[a-z0-9 ]{0,20}[^x]){0,40}Q)?.*\"}";
    let form: Vec<(&str, &str)> = std::iter::repeat_n(("match[]", costly), 20_000).collect();
    let started = Instant::now();
    let (status, body) = pyrite_tests::http_post_form(&format!("{}/api/v1/series", p.url), &form).expect("answer");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["data"].as_array().map(Vec::len), Some(10), "{body}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    still_serves(&mut p, "a repeated selector");
}

#[test]
fn an_empty_selector_deletes_and_federates_nothing() {
    let mut p = server(&["--web.enable-admin-api"]);
    let delete = format!("{}/api/v1/admin/tsdb/delete_series", p.url);
    let (status, body) = pyrite_tests::http_post_form(&delete, &[("match[]", "{}")]).expect("answer");
    assert_eq!(status, 204, "{body}");
    still_serves(&mut p, "delete_series with {}");
    let fresh = WriteSeries {
        labels: Labels::from_pairs([("__name__", "fresh".to_string())]),
        samples: vec![Sample { t: now_ms(), v: 1.0 }],
        exemplars: Vec::new(),
        histograms: Vec::new(),
    };
    assert_eq!(p.remote_write(encode_write_request(&[fresh])).0, 204);
    assert_eq!(get(&p, &format!("/federate?match[]={}", encode("{}"))), (200, String::new()));
    let (status, body) = get(&p, &format!("/federate?match[]={}&match[]=fresh", encode("{}")));
    // Without an instance of its own or an external one, as upstream: `instance=""`.
    assert_eq!((status, body.lines().filter(|l| l.starts_with("fresh{instance=\"\"} ")).count()), (200, 1), "{body}");
}

#[test]
fn malformed_form_pairs_are_left_out_as_upstream_leaves_them_out() {
    let mut p = server(&[]);
    // `up%zz` is no query, not `up % zz`.
    let (status, body) = get(&p, "/api/v1/query?query=sum(kept)%zz&time=9");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("no expression found"), "{body}");
    let (status, body) = get(&p, "/api/v1/query?query=sum(kept)&time=9&a%zz=1");
    assert_eq!((status, json(&body)["data"]["result"][0]["value"][1].as_str()), (200, Some("4590")), "{body}");
    // Endpoints that parse the form first refuse it, as upstream's do.
    let (status, body) = get(&p, "/api/v1/series?match[]=kept&x=%zz");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("error parsing form values: invalid URL escape"), "{body}");
    still_serves(&mut p, "malformed form pairs");
}

#[test]
fn remote_write_shards_in_the_tens_of_thousands_are_capped_not_a_crash() {
    let config =
        "remote_write:\n  - url: http://127.0.0.1:1/\n    queue_config: {min_shards: 20000, max_shards: 20000}\n";
    let mut p = server_with_config(config);
    assert_eq!(p.metric("prometheus_remote_storage_shards_max"), 2048.0);
    // Every shard of the queue starts once there is something to send.
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.process.threads() < 2048 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let threads = p.process.threads();
    assert!((2048..2200).contains(&threads), "{threads} threads");
    std::thread::sleep(Duration::from_secs(2));
    still_serves(&mut p, "twenty thousand remote-write shards");
}

#[test]
fn large_answers_are_prepared_off_the_shard_in_full() {
    let mut p = server(&[]);
    let now = now_ms();
    let series: Vec<WriteSeries> = (0..20_000)
        .map(|i| WriteSeries {
            labels: Labels::from_pairs([("__name__", "big".to_string()), ("i", format!("{i:05}"))]),
            samples: vec![Sample { t: now, v: i as f64 }],
            exemplars: Vec::new(),
            histograms: Vec::new(),
        })
        .collect();
    assert_eq!(p.remote_write(encode_write_request(&series)).0, 204);
    let t = now as f64 / 1000.0;
    let result = p.query("big", Some(t));
    let values: Vec<f64> =
        result.as_array().expect("a vector").iter().map(|s| s["value"][1].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(values, (0..20_000).map(f64::from).collect::<Vec<_>>(), "sorted by labels, every series");
    assert_eq!(p.data("/api/v1/series?match[]=big").as_array().map(Vec::len), Some(20_000));
    let label_values = p.data("/api/v1/label/i/values");
    assert_eq!(label_values.as_array().map(Vec::len), Some(20_010), "kept's ten and big's");
    let (status, body) = get(&p, "/federate?match[]=big");
    assert_eq!((status, body.lines().filter(|l| l.starts_with("big{")).count()), (200, 20_000));
    let range = p.query_range("big", t - 60.0, t, 15.0);
    assert_eq!(range.as_array().map(Vec::len), Some(20_000));
    still_serves(&mut p, "large answers");
}

#[test]
fn federation_selectors_share_one_sample_limit() {
    let mut p = server(&["--query.max-samples=30"]);
    let fresh: Vec<WriteSeries> = (0..20)
        .map(|i| WriteSeries {
            labels: Labels::from_pairs([("__name__", "fresh".to_string()), ("i", i.to_string())]),
            samples: vec![Sample { t: now_ms(), v: 1.0 }],
            exemplars: Vec::new(),
            histograms: Vec::new(),
        })
        .collect();
    assert_eq!(p.remote_write(encode_write_request(&fresh)).0, 204);
    let (status, body) = get(&p, "/federate?match[]=fresh");
    assert_eq!((status, body.lines().filter(|l| l.starts_with("fresh{")).count()), (200, 20), "{body}");
    // Each selector's answer is held until all are in: 40 samples together, past the 30.
    let (status, body) = get(&p, &format!("/federate?match[]=fresh&match[]={}", encode("{__name__=~\"fr.+\"}")));
    assert_eq!(status, 422, "{body}");
    // Federation's errors are plain text, as upstream's `http.Error` writes them.
    assert!(body.ends_with('\n') && !body.starts_with('{'), "{body}");
    let (status, body) = get(&p, &format!("/federate?match[]={}", encode("fresh{")));
    assert_eq!(status, 400, "{body}");
    assert!(body.starts_with("1:7: parse error: unexpected end of input"), "{body}");
    still_serves(&mut p, "federation past the sample limit");
}

/// Many more clients than query slots, each asking again as soon as it has its answer: the
/// queries waiting for a slot stay a queue (flume's token channel re-queued a waiter at every
/// poll once woken for a token another took: 2.4 GB within 6 s, /-/healthy gone, two answers).
#[test]
fn many_clients_waiting_for_query_slots_do_not_grow_memory() {
    let mut p = server(&["--query.max-concurrency=2"]);
    let stop = Instant::now() + Duration::from_secs(10);
    let url = format!("{}/api/v1/query?query={}&time=9", p.url, encode("sum(rate(kept[5s]))"));
    let answered: usize = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..64)
            .map(|_| {
                scope.spawn(|| {
                    let mut answered = 0;
                    while Instant::now() < stop {
                        answered +=
                            usize::from(http_get_within(&url, Duration::from_secs(10)).is_ok_and(|r| r.0 == 200));
                    }
                    answered
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).sum()
    });
    let peak = p.process.peak_rss_bytes();
    eprintln!("{answered} answers, peak RSS {} MB", peak >> 20);
    assert!(answered > 1000, "{answered} answers to 64 clients in 10 s");
    assert!(peak < 300 << 20, "peak RSS {} MB", peak >> 20);
    still_serves(&mut p, "64 clients sharing 2 query slots");
}

/// `/-/healthy`'s longest wait while `request` runs, and `request`'s answer.
fn health_during<T: Send>(p: &Pyrite, request: impl FnOnce() -> T + Send) -> (T, Duration) {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let answer = scope.spawn(|| {
            let answer = request();
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            answer
        });
        let mut worst = Duration::ZERO;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let started = Instant::now();
            assert_eq!(get(p, "/-/healthy").0, 200);
            worst = worst.max(started.elapsed());
            std::thread::sleep(Duration::from_millis(50));
        }
        (answer.join().unwrap(), worst)
    })
}

/// A listing with a thousand regex selectors matches them a selector at a time between
/// pauses: in one go, a thousand over 150,000 series held both shards (/-/healthy waited 9 to
/// 29 s). A query whose one selector holds 150 patterns without a shape tries them on a slice
/// of values at a time: in one go, /-/healthy waited about 3 s, twice (the shard's light try,
/// then the worker's read).
#[test]
fn a_listing_or_query_with_many_regex_matchers_does_not_hold_the_shards() {
    let p = server(&[]);
    let now = now_ms();
    for chunk in 0..8 {
        let series: Vec<WriteSeries> = (chunk * 10_000..(chunk + 1) * 10_000)
            .map(|i| WriteSeries {
                labels: Labels::from_pairs([
                    ("__name__", "listed".to_string()),
                    ("inst", format!("host-{i}.example.org")),
                ]),
                samples: vec![Sample { t: now - 60_000, v: 1.0 }],
                exemplars: Vec::new(),
                histograms: Vec::new(),
            })
            .collect();
        assert_eq!(p.remote_write(encode_write_request(&series)).0, 204);
    }
    let selectors: Vec<String> = (0..1000).map(|i| format!("{{inst=~\".*{i}.*example.*\"}}")).collect();
    let form: Vec<(&str, &str)> = selectors.iter().map(|s| ("match[]", s.as_str())).collect();
    let (listed, worst) = health_during(&p, || {
        // Some 6 s alone here, longer beside the other tests on two cores.
        let url = format!("{}/api/v1/series", p.url);
        pyrite_tests::http_post_form_within(&url, &form, Duration::from_secs(120))
    });
    let (status, body) = listed.expect("an answer");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["data"].as_array().map(Vec::len), Some(80_000));
    eprintln!("/-/healthy waited at most {worst:?} during the listing");
    // Other tests of this file run meanwhile on two cores: the bound leaves them room.
    assert!(worst < Duration::from_millis(1500), "/-/healthy waited {worst:?} during the listing");

    // Each pattern matches every value (`\b` takes the shape away), so every one is tried.
    let patterns: Vec<String> = (0..150).map(|i| format!("inst=~\"host-\\\\d+\\\\b.*|x{i}\"")).collect();
    let query = format!("count({{__name__=\"listed\",{}}})", patterns.join(","));
    let (answered, worst) = health_during(&p, || {
        let url = format!("{}/api/v1/query", p.url);
        pyrite_tests::http_post_form_within(&url, &[("query", query.as_str())], Duration::from_secs(120))
    });
    let (status, body) = answered.expect("an answer");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["data"]["result"][0]["value"][1], "80000", "{body}");
    eprintln!("/-/healthy waited at most {worst:?} during the query");
    assert!(worst < Duration::from_millis(1500), "/-/healthy waited {worst:?} during the query");
}

/// A target answering 200 KB of gzip that inflates to 200 MB of one series (52 million
/// samples): the body is inflated and parsed off the shard, which goes on serving. Before,
/// both ran on the shard, and /-/healthy waited 5.6 s at every scrape.
#[test]
fn a_gzip_bomb_target_does_not_hold_its_shard() {
    use std::io::{Read, Write};
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..200 {
        gzip.write_all(&b"a 1\n".repeat(1 << 18)).unwrap();
    }
    let body = gzip.finish().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.read(&mut [0u8; 4096]);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
        }
    });
    let config =
        format!("scrape_configs:\n  - job_name: bomb\n    scrape_interval: 2s\n    static_configs: [{{targets: ['{target}']}}]\n");
    let mut p = server_with_config(&config);
    let until = Instant::now() + Duration::from_secs(12);
    let mut worst = Duration::ZERO;
    while Instant::now() < until {
        let started = Instant::now();
        assert_eq!(get(&p, "/-/healthy").0, 200);
        worst = worst.max(started.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    let scraped = p.query("scrape_samples_scraped{job=\"bomb\"}", None);
    assert_eq!(scraped[0]["value"][1], "52428800", "{scraped}");
    eprintln!("/-/healthy waited at most {worst:?}");
    assert!(worst < Duration::from_millis(1500), "/-/healthy waited {worst:?} while the bomb was scraped");
    still_serves(&mut p, "scraping a gzip bomb");
}

/// A request body sent a byte per TCP segment is copied as it comes: kept as the frames it
/// came in, each held about 4 KB of the connection's read buffer (1.2 GB for 300 KB sent).
#[test]
fn a_body_sent_a_byte_at_a_time_costs_what_it_sends() {
    use std::io::Write;
    let mut p = server(&[]);
    let before = p.process.peak_rss_bytes();
    let address = p.url.trim_start_matches("http://").to_string();
    let sent: usize = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..2)
            .map(|_| {
                let address = address.clone();
                scope.spawn(move || {
                    let mut stream = std::net::TcpStream::connect(&address).unwrap();
                    stream.set_nodelay(true).unwrap();
                    let head = "POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\n";
                    stream.write_all(head.as_bytes()).unwrap();
                    let mut sent = 0;
                    while sent < 20_000 && stream.write_all(b"x").is_ok() {
                        sent += 1;
                        // One segment per byte: the server reads each on its own.
                        std::thread::sleep(Duration::from_micros(50));
                    }
                    sent
                })
            })
            .collect();
        senders.into_iter().map(|s| s.join().unwrap()).sum()
    });
    assert_eq!(sent, 40_000, "the server closed a connection before its body was sent");
    let grown = p.process.peak_rss_bytes().saturating_sub(before);
    eprintln!("peak RSS grew by {} MB for {sent} bytes sent", grown >> 20);
    assert!(grown < 40 << 20, "peak RSS grew by {} MB for {sent} bytes sent", grown >> 20);
    still_serves(&mut p, "bodies sent a byte at a time");
}

/// Outbound peers (an HTTP service discovery endpoint, an Alertmanager, a remote-write
/// receiver and a remote-read store) that answer every request with a redirect to a URL
/// without a host (`file:///etc/passwd`): the HTTP client panicked following it, and the panic
/// ended the process. Such a redirect is an error of that peer, as Go's "unsupported protocol
/// scheme" is.
#[test]
fn peers_redirecting_to_a_url_without_a_host_are_errors_not_crashes() {
    use std::io::{BufRead, Write};
    let peer = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = peer.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in peer.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = std::io::BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let answer =
                "HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    let dir = pyrite_tests::TempDir::new("redirect-peers");
    let rules = dir.0.join("rules.yml");
    std::fs::write(&rules, "groups: [{name: g, interval: 500ms, rules: [{alert: Always, expr: vector(1)}]}]\n")
        .expect("rules");
    let config = format!(
        "global: {{scrape_interval: 500ms, evaluation_interval: 500ms}}
rule_files: ['{}']
alerting: {{alertmanagers: [{{static_configs: [{{targets: ['{address}']}}]}}]}}
scrape_configs: [{{job_name: sd, http_sd_configs: [{{url: 'http://{address}/sd', refresh_interval: 1s}}]}}]
remote_write: [{{url: 'http://{address}/write', queue_config: {{batch_send_deadline: 500ms}}}}]
remote_read: [{{url: 'http://{address}/read', read_recent: true}}]
",
        rules.display()
    );
    let mut p = server_with_config(&config);
    std::thread::sleep(Duration::from_secs(3));
    still_serves(&mut p, "3 s of peers redirecting to file:///etc/passwd");
    let (status, body) = get(&p, "/api/v1/query?query=kept&time=9");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("unsupported protocol scheme"), "remote read's warning: {body}");
}
