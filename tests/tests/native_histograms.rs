//! Native histograms end to end, against upstream Prometheus (Debian's 2.42 with
//! `--enable-feature=native-histograms`): the same histograms remote-written into both, then
//! compared query by query; and remote write from Pyrite to another Pyrite and to upstream.
//!
//! Compared as `differential.rs` compares floats (`pyrite_tests::side_by_side`), histograms
//! bucket by bucket as the API writes them. Where 3.x, which Pyrite follows, changed the
//! semantics since 2.42, the query is listed in [`CHANGED_SINCE_2_42`] with the reason, and the
//! test asserts that the answers do differ there, so the list cannot go stale.

use std::sync::Arc;
use std::time::Duration;

use pyrite_core::histogram::{CounterResetHint, FloatHistogram, Span};
use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::HistogramSample;
use pyrite_tests::side_by_side::{compare, differences, result_points, Point, Points, STEP_MS, T0};
use pyrite_tests::{encode, eventually, http_get, remote_write_to, Pyrite, PyriteOpts, Upstream};
use serde_json::Value;

const POINTS: i64 = 160; // 40 minutes

/// Observations per bucket of scrape `k` of a request-latency histogram: schema 1 (buckets a
/// factor √2 wide), a zero bucket, and buckets on both sides; more buckets fill as time goes.
fn latency(k: i64, scale: f64, reset_at: Option<i64>) -> FloatHistogram {
    let n = match reset_at {
        Some(r) if k >= r => k - r,
        _ => k,
    } as f64;
    let width = 3 + (k / 40) as usize;
    let positive: Vec<f64> = (0..width).map(|i| ((i as f64 + 1.0) * n * scale).floor()).collect();
    let negative = vec![(n * scale / 3.0).floor()];
    let zero = (n / 2.0).floor();
    FloatHistogram {
        schema: 1,
        zero_threshold: 0.001,
        zero_count: zero,
        count: zero + positive.iter().sum::<f64>() + negative.iter().sum::<f64>(),
        sum: n * scale * 0.37,
        positive_spans: vec![Span { offset: -2, length: width as u32 }],
        positive_buckets: positive,
        negative_spans: vec![Span { offset: 1, length: 1 }],
        negative_buckets: negative,
        ..FloatHistogram::default()
    }
}

/// A gauge histogram at schema 0, going up and down. Its counts are integers: 2.42's
/// remote-write receiver reads only integer histograms (float ones come back wrong from it),
/// so float histograms on the wire are checked between Pyrites only, below.
fn queue(k: i64, i: usize) -> FloatHistogram {
    let level = 2.0 + ((k + 13 * i as i64) % 17) as f64;
    let buckets = vec![level, 2.0 * level, (level / 4.0).floor()];
    FloatHistogram {
        counter_reset_hint: CounterResetHint::Gauge,
        schema: 0,
        zero_threshold: 1e-9,
        count: buckets.iter().sum(),
        sum: level * 3.3,
        positive_spans: vec![Span { offset: 0, length: 3 }],
        positive_buckets: buckets,
        ..FloatHistogram::default()
    }
}

fn series(pairs: &[(&str, &str)], value: impl Fn(i64) -> FloatHistogram) -> WriteSeries {
    WriteSeries {
        labels: Labels::from_pairs(pairs.iter().copied()),
        samples: Vec::new(),
        exemplars: Vec::new(),
        histograms: (0..POINTS).map(|k| HistogramSample { t: T0 + k * STEP_MS, h: Arc::new(value(k)) }).collect(),
    }
}

/// Four counter histograms (one reset at scrape 100) and two gauge histograms.
fn data() -> Vec<WriteSeries> {
    let mut out = Vec::new();
    for (i, job) in ["api", "api", "web", "db"].into_iter().enumerate() {
        let instance = format!("10.0.0.{i}:8080");
        let reset = (i == 1).then_some(100);
        let pairs = [("__name__", "request_duration_seconds"), ("job", job), ("instance", &instance)];
        out.push(series(&pairs, |k| latency(k, 1.0 + i as f64, reset)));
    }
    for i in 0..2 {
        let instance = format!("10.0.1.{i}:8080");
        out.push(series(&[("__name__", "queue_size"), ("job", "worker"), ("instance", &instance)], |k| queue(k, i)));
    }
    out
}

const QUERIES: &[&str] = &[
    "request_duration_seconds",
    "request_duration_seconds[1m]",
    "queue_size",
    "rate(request_duration_seconds[5m])",
    "increase(request_duration_seconds[10m])",
    "sum(rate(request_duration_seconds[5m]))",
    "sum by (job) (rate(request_duration_seconds[5m]))",
    "sum(queue_size)",
    "count by (job) (request_duration_seconds)",
    "histogram_count(rate(request_duration_seconds[5m]))",
    "histogram_sum(rate(request_duration_seconds[5m]))",
    "histogram_count(queue_size)",
    "histogram_sum(queue_size) / histogram_count(queue_size)",
    "histogram_quantile(0.9, rate(request_duration_seconds[5m]))",
    "histogram_quantile(0.5, sum by (job) (rate(request_duration_seconds[10m])))",
    "histogram_fraction(0, 2, rate(request_duration_seconds[5m]))",
    "request_duration_seconds * 2",
    "queue_size / 4",
    "queue_size + queue_size",
    "last_over_time(queue_size[5m])",
    "count_over_time(request_duration_seconds[5m])",
    "timestamp(queue_size)",
    "request_duration_seconds offset 5m",
    "request_duration_seconds and on(job) queue_size",
    "queue_size or request_duration_seconds",
];

/// Queries whose answers changed between 2.42 and 3.x, each with what changed; Pyrite answers
/// as 3.x does (checked by upstream's PromQL test scripts, `tests/promqltest`).
const CHANGED_SINCE_2_42: &[(&str, &str)] = &[
    (
        "increase(request_duration_seconds[10m])",
        "3.x extrapolates a counter histogram's increase back no further than where its count would \
         be zero, as it does for float counters; 2.42 extrapolates it to the window's start \
         (here the windows that reach before the data's start)",
    ),
    (
        "histogram_quantile(0.9, rate(request_duration_seconds[5m]))",
        "3.x interpolates within an exponential bucket on a logarithmic scale; 2.42 linearly",
    ),
    (
        "histogram_quantile(0.5, sum by (job) (rate(request_duration_seconds[10m])))",
        "the same interpolation, after an aggregation",
    ),
    ("request_duration_seconds * 2", "2.42 returns a histogram unscaled when multiplied by a scalar; 3.x scales it"),
    ("queue_size / 4", "2.42 returns a histogram undivided when divided by a scalar; 3.x divides it"),
    ("last_over_time(queue_size[5m])", "2.42 answers the float 0 for a histogram series; 3.x its newest histogram"),
];

#[test]
fn pyrite_answers_histogram_queries_like_upstream_prometheus() {
    let upstream = Upstream::start_with(&["--enable-feature=native-histograms"]);
    let pyrite = Pyrite::start(PyriteOpts { shards: Some(3), ..Default::default() });
    let body = encode_write_request(&data());
    let (status, text) = remote_write_to(&upstream.url, &body);
    assert!(status == 204 || status == 200, "upstream refused the data: {status} {text}");
    let (status, text) = pyrite.remote_write(body);
    assert_eq!(status, 204, "{text}");

    let mut found = Vec::new();
    for q in QUERIES.iter().filter(|q| !CHANGED_SINCE_2_42.iter().any(|(changed, _)| changed == *q)) {
        found.extend(differences(&pyrite.url, &upstream.url, q));
    }
    assert!(found.is_empty(), "{} differences from upstream:\n{}", found.len(), found.join("\n"));
    for (q, why) in CHANGED_SINCE_2_42 {
        assert!(!differences(&pyrite.url, &upstream.url, q).is_empty(), "{q} no longer differs ({why})");
    }
}

/// Histograms remote-written into one Pyrite reach another Pyrite (custom buckets included) and
/// upstream Prometheus through `remote_write` with `send_native_histograms`, and come back the
/// same from each.
#[test]
fn histograms_are_remote_written_to_pyrite_and_to_upstream() {
    let upstream = Upstream::start_with(&["--enable-feature=native-histograms"]);
    let receiver = Pyrite::start(PyriteOpts::default());
    // 2.42 knows no custom buckets: those series are not sent to it.
    let config = format!(
        "global:\n  scrape_interval: 1h\nremote_write:\n\
         \x20 - {{url: '{}/api/v1/write', send_native_histograms: true, queue_config: {{batch_send_deadline: 500ms}}}}\n\
         \x20 - {{url: '{}/api/v1/write', send_native_histograms: true, queue_config: {{batch_send_deadline: 500ms}},\n\
         \x20     write_relabel_configs: [{{source_labels: [__name__], regex: 'custom_.*', action: drop}}]}}\n\
         \x20 - {{url: '{}/api/v1/write', name: floats_only, queue_config: {{batch_send_deadline: 500ms}}}}\n",
        receiver.url, upstream.url, upstream.url
    );
    let sender = Pyrite::start(PyriteOpts { config: Some(config), ..Default::default() });
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    // Fractional counts: sent as a float histogram.
    let custom = |k: i64| FloatHistogram {
        schema: pyrite_core::histogram::CUSTOM_BUCKETS_SCHEMA,
        count: 3.0 * k as f64,
        sum: 0.8 * k as f64,
        positive_spans: vec![Span { offset: 0, length: 3 }],
        positive_buckets: vec![0.5 * k as f64, k as f64, 1.5 * k as f64],
        custom_values: vec![0.1, 0.5],
        ..FloatHistogram::default()
    };
    let at = |k: i64| now + k * 100;
    let written = vec![
        WriteSeries {
            labels: Labels::from_pairs([("__name__", "sent_latency")]),
            samples: Vec::new(),
            exemplars: Vec::new(),
            histograms: (0..20).map(|k| HistogramSample { t: at(k), h: Arc::new(latency(k, 2.0, Some(12))) }).collect(),
        },
        WriteSeries {
            labels: Labels::from_pairs([("__name__", "custom_latency")]),
            samples: Vec::new(),
            exemplars: Vec::new(),
            histograms: (0..20).map(|k| HistogramSample { t: at(k), h: Arc::new(custom(k)) }).collect(),
        },
    ];
    let (status, text) = sender.remote_write(encode_write_request(&written));
    assert_eq!(status, 204, "{text}");

    let query = |url: &str, selector: &str| {
        let path =
            format!("/api/v1/query?query={}&time={}", encode(&format!("{selector}[10s]")), at(20) as f64 / 1000.0);
        result_points(&http_get(&format!("{url}{path}")).expect("query").1, selector)
    };
    let expected_latency = query(&sender.url, "sent_latency");
    assert_eq!(expected_latency.values().map(Vec::len).sum::<usize>(), 20, "{expected_latency:?}");
    for (url, selector) in
        [(&receiver.url, "sent_latency"), (&receiver.url, "custom_latency"), (&upstream.url, "sent_latency")]
    {
        let expected = query(&sender.url, selector);
        let arrived = eventually(Duration::from_secs(30), || {
            let got = query(url, selector);
            (got.values().map(Vec::len).sum::<usize>() == 20).then_some(got)
        });
        let got = arrived.unwrap_or_else(|| panic!("{selector} did not reach {url}: {:?}", query(url, selector)));
        assert_eq!(compare(selector, &got, &expected), None);
    }
    // A queue without `send_native_histograms` sends none, as upstream's.
    let floats_only = |name: &str| {
        let (_, body) = http_get(&format!("{}/metrics", sender.url)).expect("metrics");
        pyrite_tests::metric_sum(&body, name, "floats_only")
    };
    assert_eq!(floats_only("prometheus_remote_storage_samples_total"), 0.0);
    assert!(query(&upstream.url, "custom_latency").is_empty(), "custom buckets were relabelled away");
    // The queues count histograms apart from float samples, as upstream's.
    let to_receiver = format!("url=\"{}/api/v1/write\"", receiver.url);
    let counted = eventually(Duration::from_secs(10), || {
        let (_, body) = http_get(&format!("{}/metrics", sender.url)).expect("metrics");
        let sum = |name: &str| pyrite_tests::metric_sum(&body, name, &to_receiver);
        let figures = [
            sum("prometheus_remote_storage_histograms_total"),
            sum("prometheus_remote_storage_samples_total"),
            sum("prometheus_remote_storage_histograms_pending"),
        ];
        (figures == [40.0, 0.0, 0.0]).then_some(())
    });
    assert!(counted.is_some(), "histograms sent, samples sent and histograms pending to the receiver");
}

/// A recording rule whose result is native histograms records histograms, which then answer
/// as the expression itself does; when the input goes, the recorded series goes stale.
#[test]
fn recording_rules_record_histograms() {
    let dir = pyrite_tests::TempDir::new("histogram-rules");
    let file = dir.0.join("rules.yml");
    let rule = "sum by (job) (rate(request_duration_seconds[5m]))";
    let rules = format!(
        "groups:\n  - name: histograms\n    interval: 1s\n    rules:\n      - record: job:request_duration_seconds:rate5m\n        expr: {rule}\n"
    );
    std::fs::write(&file, rules).unwrap();
    let pyrite = Pyrite::start(PyriteOpts {
        config: Some(format!("rule_files: ['{}']\n", file.display())),
        ..Default::default()
    });
    // Five minutes of histograms up to now, so that the rule's evaluations see them.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let series: Vec<WriteSeries> = ["api", "web"]
        .into_iter()
        .enumerate()
        .map(|(i, job)| WriteSeries {
            labels: Labels::from_pairs([("__name__", "request_duration_seconds"), ("job", job)]),
            samples: Vec::new(),
            exemplars: Vec::new(),
            histograms: (0..20)
                .map(|k| HistogramSample { t: now - (19 - k) * STEP_MS, h: Arc::new(latency(k, 1.0 + i as f64, None)) })
                .collect(),
        })
        .collect();
    let (status, text) = pyrite.remote_write(encode_write_request(&series));
    assert_eq!(status, 204, "{text}");
    let recorded = |t: f64| {
        let path = format!("/api/v1/query?query={}&time={t}", encode("job:request_duration_seconds:rate5m"));
        result_points(&pyrite.get(&path).1, "recorded")
    };
    let evaluated_at = eventually(Duration::from_secs(30), || {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        (recorded(t).len() == 2).then_some(t)
    })
    .expect("the rule recorded both jobs");
    let got = recorded(evaluated_at);
    for (labels, points) in &got {
        assert!(matches!(points[..], [(_, Point::Histogram(_))]), "{labels}: {points:?}");
    }
    // The recorded histogram is the expression's value at the evaluation's time.
    let samples = pyrite.data(&format!(
        "/api/v1/query?query={}&time={evaluated_at}",
        encode("timestamp(job:request_duration_seconds:rate5m)")
    ));
    let at = samples["result"][0]["value"][1].as_str().unwrap().parse::<f64>().unwrap();
    let path = format!("/api/v1/query?query={}&time={at}", encode(rule));
    let direct = result_points(&pyrite.get(&path).1, rule);
    let recorded_at: Points = recorded(at)
        .into_iter()
        .map(|(labels, points)| {
            let mut l: serde_json::Map<String, Value> = serde_json::from_str(&labels).unwrap();
            l.remove("__name__");
            (Value::Object(l).to_string(), points)
        })
        .collect();
    assert_eq!(compare("recorded against evaluated", &recorded_at, &direct), None);
}

/// Remote read carries histograms: a Pyrite reading another through `remote_read` answers the
/// other's histograms; and a streamed answer carries them in upstream's histogram chunks, the
/// answer's type being the first the client accepts (here a sidecar's, streamed only), each
/// sample read back as written, float histograms in float histogram chunks.
#[test]
fn remote_read_answers_histograms() {
    use pyrite_core::remote::read::{
        read_frames, wire_matchers, Query, ReadRequest, CHUNK_FLOAT_HISTOGRAM, CHUNK_HISTOGRAM, SAMPLES,
        STREAMED_XOR_CHUNKS,
    };
    use pyrite_tests::upstream_chunks::{decode_histogram_chunk, said};
    let source = Pyrite::start(PyriteOpts::default());
    let mut written = data();
    // a recording rule's kind of histogram: counts that are not whole
    written.push(series(&[("__name__", "queue_size"), ("job", "rule")], |k| {
        let mut h = queue(k, 0);
        h.positive_buckets.iter_mut().for_each(|b| *b /= 3.0);
        h.count /= 3.0;
        h
    }));
    let (status, text) = source.remote_write(encode_write_request(&written));
    assert_eq!(status, 204, "{text}");
    let config = format!("global:\n  scrape_interval: 1h\nremote_read:\n  - url: {}/api/v1/read\n", source.url);
    let reader = Pyrite::start(PyriteOpts { config: Some(config), ..Default::default() });
    for q in ["request_duration_seconds", "rate(request_duration_seconds[5m])", "queue_size[2m]"] {
        let found = differences(&reader.url, &source.url, q);
        assert!(found.is_empty(), "{}", found.join("\n"));
    }

    let matcher = pyrite_core::labels::Matcher::new("__name__", pyrite_core::labels::MatchOp::Regex, ".+").unwrap();
    let read = |accepted: Vec<i32>| {
        let request = ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: T0,
                end_timestamp_ms: T0 + POINTS * STEP_MS,
                matchers: wire_matchers(std::slice::from_ref(&matcher)),
                hints: None,
            }],
            accepted_response_types: accepted,
        };
        let answer = ureq::post(&format!("{}/api/v1/read", source.url))
            .set("Content-Type", "application/x-protobuf")
            .set("Content-Encoding", "snappy")
            .send_bytes(&request.encode_compressed())
            .expect("remote read answers");
        let content_type = answer.header("Content-Type").unwrap_or_default().to_string();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut answer.into_reader(), &mut body).unwrap();
        (content_type, body)
    };
    let streamed = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";
    // The first accepted type, as upstream: no sampled answer for histograms any more.
    assert_eq!(read(vec![STREAMED_XOR_CHUNKS, SAMPLES]).0, streamed);
    let (content_type, body) = read(vec![STREAMED_XOR_CHUNKS]);
    assert_eq!(content_type, streamed);
    let mut got = std::collections::BTreeMap::<String, Vec<_>>::new();
    let mut encodings = std::collections::BTreeSet::new();
    for frame in read_frames(&body).expect("frames") {
        for s in frame.chunked_series {
            let name = s.labels.iter().map(|l| format!("{}={}", l.name, l.value)).collect::<Vec<_>>().join(",");
            for c in s.chunks {
                encodings.insert(c.r#type);
                let chunk = decode_histogram_chunk(c.r#type, &c.data);
                got.entry(name.clone()).or_default().extend(chunk.samples.iter().map(|x| (x.t, said(&x.h))));
            }
        }
    }
    assert_eq!(encodings, [CHUNK_HISTOGRAM, CHUNK_FLOAT_HISTOGRAM].into());
    let want: std::collections::BTreeMap<String, Vec<_>> = written
        .iter()
        .map(|w| {
            let name = w.labels.iter().map(|l| format!("{}={}", l.name, l.value)).collect::<Vec<_>>().join(",");
            (name, w.histograms.iter().map(|x| (x.t, said(&x.h))).collect())
        })
        .collect();
    assert_eq!(got, want);
}

/// Pyrite writes upstream's histogram chunks byte for byte: Prometheus 2.42 stores the
/// histograms remote-written to it (counters with a reset and growing buckets) in its own
/// chunks; each, read from a snapshot's block and encoded again from its samples and header,
/// comes out the same. (Gauge histograms are left out: 2.42 fails to snapshot them, "detected
/// unexpected counter reset in histogram".)
#[test]
fn histogram_chunks_are_prometheus_242s_byte_for_byte() {
    use pyrite_core::remote::read::CHUNK_HISTOGRAM;
    use pyrite_tests::upstream_chunks::{chunks_file, decode_histogram_chunk};
    use pyrite_tsdb::chunk::upstream_histogram::{encode, Counts};
    let upstream = Upstream::start_with(&["--enable-feature=native-histograms", "--web.enable-admin-api"]);
    let counters: Vec<WriteSeries> =
        data().into_iter().filter(|s| s.labels.get("__name__") == "request_duration_seconds").collect();
    let (status, text) = remote_write_to(&upstream.url, &encode_write_request(&counters));
    assert!((200..300).contains(&status), "{status} {text}");
    let answer = match ureq::post(&format!("{}/api/v1/admin/tsdb/snapshot", upstream.url)).call() {
        Ok(answer) | Err(ureq::Error::Status(_, answer)) => answer.into_string().unwrap(),
        Err(e) => panic!("snapshot: {e}"),
    };
    let name = serde_json::from_str::<Value>(&answer).ok().and_then(|v| Some(v["data"]["name"].as_str()?.to_string()));
    let name = name.unwrap_or_else(|| panic!("no snapshot: {answer}"));
    let snapshot = upstream.data_dir().join("snapshots").join(name);
    let blocks: Vec<_> = std::fs::read_dir(&snapshot).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(blocks.len(), 1, "the head as one block: {blocks:?}");
    let file = std::fs::read(blocks[0].join("chunks/000001")).expect("the block's chunks");
    let (mut chunks, mut samples) = (0, 0);
    for (encoding, data) in chunks_file(&file) {
        assert_eq!(encoding, CHUNK_HISTOGRAM, "2.42 stores integer histograms only");
        let chunk = decode_histogram_chunk(encoding, &data);
        assert_eq!(encode(Counts::Integer, chunk.header, &chunk.samples), data, "{chunk:?}");
        chunks += 1;
        samples += chunk.samples.len();
    }
    assert_eq!(samples, counters.len() * POINTS as usize);
    // two chunks a series at least (160 samples, 120 a chunk)
    assert!(chunks >= 2 * counters.len(), "{chunks} chunks");
}
