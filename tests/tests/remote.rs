//! Remote write 2.0 receiving and remote read (`/api/v1/read`), against the real binary: for
//! remote read, Debian's upstream Prometheus 2.42 reading from it (its client asks for sampled
//! answers), and streamed chunks decoded as upstream's reader decodes them.

use std::time::Duration;

use pyrite_core::remote::histogram::Histogram;
use pyrite_core::remote::v2::{ExemplarV2, MetadataV2, RequestV2, SampleV2, TimeSeriesV2};
use pyrite_tests::{Pyrite, PyriteOpts};

fn server(shards: usize, extra_args: &[&str]) -> Pyrite {
    Pyrite::start(PyriteOpts {
        shards: Some(shards),
        extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    })
}

const V2: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "2.0.0"),
];

/// A remote-write answer: status, the three written counts (samples, histograms, exemplars)
/// when the headers are there, and the body.
struct Answer {
    status: u16,
    written: Option<[u64; 3]>,
    body: String,
}

fn remote_write_with(p: &Pyrite, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut request = ureq::post(&format!("{}/api/v1/write", p.url)).timeout(Duration::from_secs(60));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let r = match request.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("remote write: {e}"),
    };
    let count = |what: &str| r.header(&format!("X-Prometheus-Remote-Write-{what}-Written"))?.parse().ok();
    let written = (|| Some([count("Samples")?, count("Histograms")?, count("Exemplars")?]))();
    Answer { status: r.status(), written, body: r.into_string().unwrap_or_default() }
}

/// A series as label pairs and samples (ms, value).
type SeriesSpec<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

/// A 2.0 request of `series`, symbols as a sender builds them: the empty string first, each
/// string once.
fn request_v2(series: &[SeriesSpec]) -> RequestV2 {
    let mut symbols = vec![String::new()];
    let mut symbol = |s: &str| -> u32 {
        let i = symbols.iter().position(|x| x == s).unwrap_or_else(|| {
            symbols.push(s.to_string());
            symbols.len() - 1
        });
        i as u32
    };
    let timeseries = series
        .iter()
        .map(|(labels, samples)| TimeSeriesV2 {
            labels_refs: labels.iter().flat_map(|(n, v)| [symbol(n), symbol(v)]).collect(),
            samples: samples.iter().map(|&(t, v)| SampleV2 { value: v, timestamp: t, start_timestamp: 0 }).collect(),
            metadata: Some(MetadataV2 { r#type: 2, help_ref: symbol("help text"), unit_ref: 0 }),
            ..Default::default()
        })
        .collect();
    RequestV2 { symbols, timeseries }
}

#[test]
fn remote_write_2_requests_are_stored_with_written_counts() {
    let p = server(2, &[]);
    let request = request_v2(&[
        (&[("__name__", "rw2"), ("job", "a")], &[(1_000, 1.0), (2_000, 2.5)]),
        (&[("job", "b"), ("__name__", "rw2")], &[(2_000, 7.0)]),
    ]);
    let a = remote_write_with(&p, &V2, &request.encode_compressed());
    assert_eq!((a.status, a.written), (204, Some([3, 0, 0])), "{}", a.body);
    let r = p.query("rw2", Some(2.0));
    let mut got: Vec<(String, String)> = r
        .as_array()
        .expect("vector")
        .iter()
        .map(|s| (s["metric"]["job"].as_str().unwrap().to_string(), s["value"][1].as_str().unwrap().to_string()))
        .collect();
    got.sort();
    assert_eq!(got, [("a".to_string(), "2.5".to_string()), ("b".to_string(), "7".to_string())]);

    // Partial write, as upstream: the good series is stored, the others are reported with 400.
    let mut partial = request_v2(&[(&[("__name__", "partial"), ("i", "0")], &[(1_000, 1.0)])]);
    let good = partial.timeseries[0].clone();
    partial.timeseries.push(TimeSeriesV2 { labels_refs: vec![1, 4000], ..good.clone() });
    // A valid native histogram is stored; one with a schema no histogram has is reported.
    partial.timeseries.push(TimeSeriesV2 {
        histograms: vec![
            Histogram { timestamp: 2_000, ..Histogram::default() },
            Histogram { timestamp: 3_000, schema: -9, ..Histogram::default() },
        ],
        samples: vec![],
        ..good.clone()
    });
    let a = remote_write_with(&p, &V2, &partial.encode_compressed());
    assert_eq!((a.status, a.written), (400, Some([1, 1, 0])), "{}", a.body);
    assert!(a.body.contains("outside of symbols table"), "{}", a.body);
    assert!(a.body.contains("histogram has an invalid schema"), "{}", a.body);
    assert_eq!(p.query("partial", Some(1.0))[0]["value"][1], "1");

    // Out of order: counted as not written.
    let again = request_v2(&[(&[("__name__", "rw2"), ("job", "a")], &[(1_500, 9.0), (3_000, 3.0)])]);
    let a = remote_write_with(&p, &V2, &again.encode_compressed());
    assert_eq!((a.status, a.written), (400, Some([1, 0, 0])), "{}", a.body);
    assert!(a.body.contains("out of order"), "{}", a.body);

    // 1.0 answers carry no counts.
    let v1 = [("Content-Type", "application/x-protobuf;proto=prometheus.WriteRequest"), ("Content-Encoding", "snappy")];
    let body = pyrite_core::remote::encode_write_request(&[]);
    let a = remote_write_with(&p, &v1, &body);
    assert_eq!((a.status, a.written), (204, None), "{}", a.body);
}

/// 2.0 exemplars are kept with exemplar storage on and counted in the answer; one with labels
/// upstream refuses (longer than 128 characters) is dropped and the series kept.
#[test]
fn remote_write_2_exemplars_are_kept_and_counted() {
    let p = server(2, &["--enable-feature=exemplar-storage"]);
    let mut request = request_v2(&[(&[("__name__", "rw2x")], &[(1_000, 1.0), (2_000, 2.0)])]);
    let (trace, id, long) =
        (request.symbols.len() as u32, request.symbols.len() as u32 + 1, request.symbols.len() as u32 + 2);
    request.symbols.extend(["trace_id".to_string(), "abc".to_string(), "x".repeat(130)]);
    request.timeseries[0].exemplars = vec![
        ExemplarV2 { labels_refs: vec![trace, id], value: 0.5, timestamp: 1_500 },
        ExemplarV2 { labels_refs: vec![trace, long], value: 0.7, timestamp: 1_800 },
    ];
    let a = remote_write_with(&p, &V2, &request.encode_compressed());
    assert_eq!((a.status, a.written), (204, Some([2, 0, 1])), "{}", a.body);
    let (_, body) = p.get("/api/v1/query_exemplars?query=rw2x&start=0&end=10");
    let data = pyrite_tests::json(&body)["data"].clone();
    assert_eq!(data[0]["exemplars"][0]["labels"]["trace_id"], "abc", "{body}");
    assert_eq!(data[0]["exemplars"][0]["value"], "0.5", "{body}");
    assert_eq!(data[0]["exemplars"][0]["timestamp"].as_f64(), Some(1.5), "{body}");
    assert_eq!(data[0]["exemplars"].as_array().map(Vec::len), Some(1), "{body}");
}

#[test]
fn remote_write_messages_not_accepted_get_415() {
    let p = server(1, &["--web.remote-write-receiver.accepted-protobuf-messages=prometheus.WriteRequest"]);
    let request = request_v2(&[(&[("__name__", "refused")], &[(1_000, 1.0)])]);
    let a = remote_write_with(&p, &V2, &request.encode_compressed());
    assert_eq!((a.status, a.written), (415, None), "{}", a.body);
    assert!(a.body.contains("io.prometheus.write.v2.Request protobuf message is not accepted"), "{}", a.body);
    let unknown = [("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v9.Request")];
    assert_eq!(remote_write_with(&p, &unknown, &request.encode_compressed()).status, 415);
    assert!(p.query("refused", Some(1.0)).as_array().expect("vector").is_empty());

    let only_v2 = server(1, &["--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request"]);
    let v1 = pyrite_core::remote::encode_write_request(&[]);
    assert_eq!(remote_write_with(&only_v2, &[("Content-Encoding", "snappy")], &v1).status, 415);
    assert_eq!(remote_write_with(&only_v2, &V2, &request.encode_compressed()).status, 204);
    assert_eq!(only_v2.query("refused", Some(1.0))[0]["value"][1], "1");
}

#[test]
fn hostile_remote_write_2_bodies_get_400() {
    let mut p = server(2, &[]);
    let compress = |raw: &[u8]| snap::raw::Encoder::new().compress_vec(raw).expect("compress");
    // A label ref past u32, a truncated series, not snappy at all.
    for raw in [
        compress(&[0x2a, 7, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        compress(&[0x2a, 0x7f, 0x08]),
        b"\xff\xff\xff\xff not snappy".to_vec(),
    ] {
        let a = remote_write_with(&p, &V2, &raw);
        assert_eq!(a.status, 400, "{}", a.body);
    }
    // A label value that is not UTF-8 refuses its series only, as upstream (whose decoder takes
    // any bytes as a symbol).
    let request = request_v2(&[
        (&[("__name__", "kept")], &[(1_000, 1.0)]),
        (&[("__name__", "x"), ("v", "\u{1}")], &[(1_000, 1.0)]),
    ]);
    let mut raw = snap::raw::Decoder::new().decompress_vec(&request.encode_compressed()).expect("snappy");
    let at = raw.windows(3).position(|w| w == b"\x22\x01\x01").expect("the value's symbol, one byte long");
    raw[at + 2] = 0xff;
    let a = remote_write_with(&p, &V2, &compress(&raw));
    assert_eq!((a.status, a.written), (400, Some([1, 0, 0])), "{}", a.body);
    assert!(a.body.contains("not UTF-8"), "{}", a.body);
    assert_eq!(p.query("kept", Some(1.0))[0]["value"][1], "1");
    // A million series with refs far outside the symbols table: refused, the answer short.
    let mut many = request_v2(&[(&[("__name__", "ok")], &[(1_000, 1.0)])]);
    many.timeseries.extend(std::iter::repeat_n(
        TimeSeriesV2 { labels_refs: vec![u32::MAX, u32::MAX], ..Default::default() },
        1_000_000,
    ));
    let a = remote_write_with(&p, &V2, &many.encode_compressed());
    assert_eq!((a.status, a.written), (400, Some([1, 0, 0])), "{}", &a.body[..a.body.len().min(500)]);
    assert!(a.body.len() < 4096 && a.body.contains("(and 999990 more)"), "{}", a.body.len());
    if let Some((status, err)) = p.process.exited() {
        panic!("pyrite died ({status}):\n{err}");
    }
    assert_eq!(p.query("ok", Some(1.0))[0]["value"][1], "1");
}

/// As upstream 3.x's receivers: names outside the legacy set are stored, PromQL selects and
/// groups by them quoted, and `/federate` writes them as the scraper's `escaping` asks.
#[test]
fn utf8_names_are_stored_and_federated_as_the_scraper_asks() {
    use pyrite_core::labels::Labels;
    use pyrite_core::remote::{encode_write_request, WriteSeries};
    use pyrite_core::value::Sample;
    let p = server(2, &[]);
    let t = now_ms() - 10_000;
    let series: Vec<WriteSeries> = ["api", "db"]
        .iter()
        .map(|service| WriteSeries {
            labels: Labels::from_pairs([("__name__", "http.server.duration"), ("service.name", service)]),
            samples: vec![Sample { t, v: 2.0 }],
            exemplars: Vec::new(),
            histograms: Vec::new(),
        })
        .collect();
    assert_eq!(p.remote_write(encode_write_request(&series)).0, 204);
    let result = p.query(r#"sum by ("service.name") ({"http.server.duration"})"#, None);
    let mut got: Vec<String> =
        result.as_array().unwrap().iter().map(|s| s["metric"]["service.name"].to_string()).collect();
    got.sort();
    assert_eq!(got, [r#""api""#, r#""db""#], "{result}");
    let federate = |accept: &str| {
        let url = format!("{}/federate?match[]=%7B__name__%3D~%22http.%2A%22%7D", p.url);
        let answer = ureq::get(&url).set("Accept", accept).call().expect("federate");
        let content_type = answer.header("Content-Type").unwrap_or_default().to_string();
        (content_type, answer.into_string().unwrap())
    };
    let (content_type, body) = federate("text/plain;version=0.0.4");
    assert!(content_type.ends_with("escaping=underscores"), "{content_type}");
    assert!(body.contains(&format!("http_server_duration{{service_name=\"api\",instance=\"\"}} 2 {t}\n")), "{body}");
    let (_, body) = federate("text/plain;version=0.0.4;escaping=allow-utf-8");
    assert!(body.starts_with("# TYPE \"http.server.duration\" untyped\n"), "{body}");
    assert!(
        body.contains(&format!("{{\"http.server.duration\",\"service.name\"=\"db\",instance=\"\"}} 2 {t}\n")),
        "{body}"
    );
}

/// Milliseconds since the epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// Three series of 400 samples each over the 70 minutes before `end` (ms), with irregular steps
/// and values of every kind the XOR encoding distinguishes, remote-written into `p`. Every
/// timestamp is an even number of ms before `end`.
fn load_read_data(p: &Pyrite, end: i64) {
    use pyrite_core::labels::Labels;
    use pyrite_core::remote::{encode_write_request, WriteSeries};
    use pyrite_core::value::Sample;
    let series: Vec<WriteSeries> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(k, job)| {
            let mut t = end - 4_200_000;
            let samples = (0..400)
                .map(|i: i64| {
                    // Steps of 9 s with jitter, and now and then a long gap (every dod bucket).
                    t += 9_000 + (i * 7919 % 13) * 38 + if i % 97 == 0 { 70_000 } else { 0 }
                        - if i % 89 == 0 { 4_000 } else { 0 };
                    let v = match k {
                        0 => (i / 3) as f64,
                        1 => (i as f64 * 0.37).sin() * 1e6,
                        // (Not a counter that resets at every sample: there 2.42's rate
                        // extrapolates otherwise than 3.x's.)
                        _ => (i as f64).sqrt() * 1.7 + 1e-3 / (i + 1) as f64,
                    };
                    Sample { t, v }
                })
                .collect();
            WriteSeries {
                labels: Labels::from_pairs([("__name__", "rr_metric"), ("job", job)]),
                samples,
                exemplars: Vec::new(),
                histograms: Vec::new(),
            }
        })
        .collect();
    assert_eq!(p.remote_write(encode_write_request(&series)).0, 204);
}

/// Each result's series sorted by labels, so that two servers' answers compare.
fn sorted(result: serde_json::Value) -> Vec<serde_json::Value> {
    let mut v = result.as_array().expect("result list").clone();
    v.sort_by_key(|s| s["metric"].to_string());
    v
}

#[test]
fn upstream_prometheus_reads_pyrite_through_remote_read() {
    let p = server(2, &[]);
    let end = now_ms() - 60_000;
    load_read_data(&p, end);
    let config = format!(
        "global:\n  scrape_interval: 1h\nremote_read:\n  - url: {}/api/v1/read\n    read_recent: true\n",
        p.url
    );
    let upstream = pyrite_tests::Upstream::start_configured(&config, &[]);
    // Steps an odd number of ms from every sample: no sample on a range's boundary, where
    // 2.42's closed ranges and Pyrite's (3.x) left-open ones differ.
    let (start, end) = ((end - 4_300_001) as f64 / 1000.0, end as f64 / 1000.0);
    for query in [
        "rr_metric",
        "rr_metric{job=\"b\"}",
        "{__name__=~\"rr_.*\", job!=\"a\"}",
        "rate(rr_metric[5m])",
        "sum by (job) (max_over_time(rr_metric[10m]))",
        "count(rr_metric)",
    ] {
        let path = format!("/api/v1/query_range?query={}&start={start}&end={end}&step=60", pyrite_tests::encode(query));
        let ours = p.data(&path)["result"].clone();
        let (status, body) = pyrite_tests::http_get(&format!("{}{path}", upstream.url)).expect("upstream answers");
        let theirs = pyrite_tests::json(&body);
        assert_eq!(status, 200, "{query}: {body}");
        assert!(!ours.as_array().expect("matrix").is_empty(), "{query}: no data");
        let (ours, theirs) = (sorted(ours), sorted(theirs["data"]["result"].clone()));
        assert_eq!(ours, theirs, "{query}");
    }
}

/// POSTs a read request; status, content type and body.
fn remote_read(p: &Pyrite, request: &pyrite_core::remote::read::ReadRequest) -> (u16, String, Vec<u8>) {
    let r = ureq::post(&format!("{}/api/v1/read", p.url))
        .set("Content-Type", "application/x-protobuf")
        .set("Content-Encoding", "snappy")
        .set("X-Prometheus-Remote-Read-Version", "0.1.0")
        .send_bytes(&request.encode_compressed());
    let r = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("remote read: {e}"),
    };
    let (status, content_type) = (r.status(), r.header("Content-Type").unwrap_or("").to_string());
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut r.into_reader(), &mut body).expect("read body");
    (status, content_type, body)
}

#[test]
fn remote_read_answers_samples_and_frames_with_external_labels() {
    use pyrite_core::remote::read::{
        decode_read_response, read_frames, LabelMatcher, Query, ReadRequest, SAMPLES, STREAMED_XOR_CHUNKS,
    };
    let p = Pyrite::start(PyriteOpts {
        shards: Some(3),
        config: Some("global:\n  external_labels:\n    site: eu\n".into()),
        extra_args: vec![
            "--storage.remote.read-sample-limit=1200".into(),
            "--storage.remote.read-max-bytes-in-frame=100".into(),
        ],
        ..Default::default()
    });
    let end = now_ms() - 60_000;
    load_read_data(&p, end);
    let eq = |name: &str, value: &str| LabelMatcher { r#type: 0, name: name.into(), value: value.into() };
    let query = |matchers: Vec<LabelMatcher>, start: i64| Query {
        start_timestamp_ms: start,
        end_timestamp_ms: end,
        matchers,
        hints: None,
    };
    // An equality matcher on the external label matches the stored series, which lack it.
    let request = ReadRequest {
        queries: vec![
            query(vec![eq("__name__", "rr_metric"), eq("site", "eu"), eq("job", "b")], end - 1_200_000),
            query(vec![eq("__name__", "rr_metric"), eq("site", "us")], 0),
        ],
        accepted_response_types: vec![SAMPLES],
    };
    let (status, content_type, body) = remote_read(&p, &request);
    assert_eq!((status, content_type.as_str()), (200, "application/x-protobuf"), "{}", String::from_utf8_lossy(&body));
    let response = decode_read_response(&body, 1 << 30).expect("a ReadResponse");
    assert_eq!(response.results.len(), 2);
    assert!(response.results[1].timeseries.is_empty());
    let series = &response.results[0].timeseries;
    assert_eq!(series.len(), 1);
    let labels: Vec<(&str, &str)> = series[0].labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
    assert_eq!(labels, [("__name__", "rr_metric"), ("job", "b"), ("site", "eu")]);
    let samples = &series[0].samples;
    assert!(samples.len() > 40 && samples.iter().all(|s| s.timestamp >= end - 1_200_000 && s.timestamp <= end));
    // Over the sample limit over all the queries (the 1,200 samples twice): 400, sampled or
    // streamed (a streamed answer is built whole, so the limit bounds its memory too).
    let all = ReadRequest {
        queries: vec![query(vec![eq("__name__", "rr_metric")], 0)],
        accepted_response_types: vec![SAMPLES],
    };
    let twice = ReadRequest { queries: [all.queries.clone(), all.queries.clone()].concat(), ..all.clone() };
    for types in [vec![SAMPLES], vec![STREAMED_XOR_CHUNKS]] {
        let (status, _, body) = remote_read(&p, &ReadRequest { accepted_response_types: types, ..twice.clone() });
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8_lossy(&body).contains("exceeded sample limit (1200)"));
    }
    // Streamed: frames of one series each, at most one chunk over 100 bytes.
    let streamed = ReadRequest { accepted_response_types: vec![STREAMED_XOR_CHUNKS, SAMPLES], ..all };
    let (status, content_type, body) = remote_read(&p, &streamed);
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse");
    let frames = read_frames(&body).expect("frames with good checksums");
    let mut chunks_per_job = std::collections::BTreeMap::new();
    for frame in &frames {
        assert_eq!((frame.query_index, frame.chunked_series.len()), (0, 1));
        let s = &frame.chunked_series[0];
        assert_eq!(s.chunks.len(), 1, "a 120-sample chunk is over 100 bytes");
        let job = s.labels.iter().find(|l| l.name == "job").expect("job").value.clone();
        assert!(s.labels.iter().any(|l| l.name == "site" && l.value == "eu"));
        let count = u16::from_be_bytes([s.chunks[0].data[0], s.chunks[0].data[1]]);
        *chunks_per_job.entry(job).or_insert(0) += count as usize;
    }
    let expected: std::collections::BTreeMap<String, usize> =
        [("a", 400), ("b", 400), ("c", 400)].iter().map(|(j, n)| (j.to_string(), *n)).collect();
    assert_eq!(chunks_per_job, expected);
    assert_eq!(frames.len(), 3 * 4, "400 samples are 4 chunks of at most 120");
    // A response type Pyrite does not serve: 400. A query without matchers selects nothing, as
    // upstream's (200); the other queries are answered.
    let (status, _, _) = remote_read(&p, &ReadRequest { accepted_response_types: vec![7], ..streamed });
    assert_eq!(status, 400);
    let unmatched = ReadRequest {
        queries: vec![query(vec![], 0), query(vec![eq("job", "a")], 0)],
        accepted_response_types: vec![SAMPLES],
    };
    let (status, _, body) = remote_read(&p, &unmatched);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let results = decode_read_response(&body, 1 << 30).expect("a ReadResponse").results;
    assert_eq!(results.iter().map(|r| r.timeseries.len()).collect::<Vec<_>>(), [0, 1]);
    let garbage = ureq::post(&format!("{}/api/v1/read", p.url)).send_bytes(b"\xff\xff\xff not snappy");
    assert!(matches!(garbage, Err(ureq::Error::Status(400, _))));
}

#[test]
fn streamed_chunks_decode_to_the_sampled_answer() {
    use pyrite_core::remote::read::{
        decode_read_response, read_frames, LabelMatcher, Query, ReadRequest, SAMPLES, STREAMED_XOR_CHUNKS,
    };
    let p = server(2, &[]);
    let end = now_ms() - 60_000;
    load_read_data(&p, end);
    let query = Query {
        start_timestamp_ms: 0,
        end_timestamp_ms: end,
        matchers: vec![LabelMatcher { r#type: 2, name: "__name__".into(), value: "rr_.+".into() }],
        hints: None,
    };
    let sampled = ReadRequest { queries: vec![query.clone()], accepted_response_types: vec![SAMPLES] };
    let (status, _, body) = remote_read(&p, &sampled);
    assert_eq!(status, 200);
    let expected: Vec<(String, Vec<(i64, f64)>)> = decode_read_response(&body, 1 << 30).expect("response").results[0]
        .timeseries
        .iter()
        .map(|s| (format!("{:?}", s.labels), s.samples.iter().map(|x| (x.timestamp, x.value)).collect()))
        .collect();
    assert_eq!(expected.len(), 3);
    let streamed = ReadRequest { queries: vec![query], accepted_response_types: vec![STREAMED_XOR_CHUNKS] };
    let (status, _, body) = remote_read(&p, &streamed);
    assert_eq!(status, 200);
    let mut got: Vec<(String, Vec<(i64, f64)>)> = Vec::new();
    for frame in read_frames(&body).expect("frames") {
        for s in frame.chunked_series {
            let labels = format!("{:?}", s.labels);
            let samples: Vec<(i64, f64)> =
                s.chunks.iter().flat_map(|c| pyrite_tests::upstream_chunks::decode_xor(&c.data)).collect();
            match got.last_mut() {
                Some((l, all)) if *l == labels => all.extend(samples),
                _ => got.push((labels, samples)),
            }
        }
    }
    assert_eq!(got, expected);
}

/// A read whose query holds a hundred thousand matchers: the same one repeated counts once,
/// and a `!=` costs a look-up, so the shards go on answering. Before, each matcher tried its
/// pattern on every value of its label (90,000 `__name__!~"x.+"` over 2,000 names) on the
/// shard's thread, and /-/healthy waited for all of them.
#[test]
fn a_read_of_a_hundred_thousand_matchers_does_not_hold_the_shards() {
    use pyrite_core::labels::Labels;
    use pyrite_core::remote::read::{decode_read_response, LabelMatcher, Query, ReadRequest, SAMPLES};
    use pyrite_core::remote::{encode_write_request, WriteSeries};
    use pyrite_core::value::Sample;
    let p = server(2, &[]);
    let now = now_ms();
    let series: Vec<WriteSeries> = (0..20_000)
        .map(|i| WriteSeries {
            labels: Labels::from_pairs([("__name__", format!("m{}", i % 2000)), ("job", format!("v{i}"))]),
            samples: vec![Sample { t: now - 60_000, v: 1.0 }],
            exemplars: Vec::new(),
            histograms: Vec::new(),
        })
        .collect();
    assert_eq!(p.remote_write(encode_write_request(&series)).0, 204);
    let matcher = |r#type: i32, name: &str, value: String| LabelMatcher { r#type, name: name.into(), value };
    let matchers = (0..90_000)
        .map(|_| matcher(3, "__name__", "x.+".into()))
        .chain((10_000..100_000).map(|i| matcher(1, "job", format!("v{i}"))))
        .collect();
    let query = Query { start_timestamp_ms: now - 120_000, end_timestamp_ms: now, matchers, hints: None };
    let request = ReadRequest { queries: vec![query], accepted_response_types: vec![SAMPLES] };
    let done = std::sync::atomic::AtomicBool::new(false);
    let (read, worst) = std::thread::scope(|scope| {
        let reading = scope.spawn(|| {
            let read = remote_read(&p, &request);
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            read
        });
        let mut worst = Duration::ZERO;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let started = std::time::Instant::now();
            let health = pyrite_tests::http_get_within(&format!("{}/-/healthy", p.url), Duration::from_secs(60));
            assert_eq!(health.map(|h| h.0), Ok(200));
            worst = worst.max(started.elapsed());
            std::thread::sleep(Duration::from_millis(50));
        }
        (reading.join().unwrap(), worst)
    });
    let (status, _, body) = read;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // The series of jobs v0 to v9999 are left.
    let response = decode_read_response(&body, 1 << 30).expect("a ReadResponse");
    assert_eq!(response.results[0].timeseries.len(), 10_000);
    eprintln!("/-/healthy waited at most {worst:?}");
    assert!(worst < Duration::from_millis(1500), "/-/healthy waited {worst:?} during the read");
}
