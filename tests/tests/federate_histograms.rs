//! `/federate` with native histograms, end to end. A Pyrite holds floats, counter and gauge
//! histograms with exponential buckets (float and whole counts) and a histogram with custom
//! buckets, remote-written with their times near now. Federated by a second Pyrite and by
//! upstream Prometheus (Debian's 2.42 with `--enable-feature=native-histograms`), both of
//! which ask for the protobuf format, each answers the same values as the source; a request
//! for the text format gets the floats and the custom buckets as a classic histogram, and
//! leaves the exponential histograms out, as upstream's federation does.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use pyrite_core::exposition::{parse_series, Entry, HistogramOptions, ProtobufParser};
use pyrite_core::histogram::{CounterResetHint, FloatHistogram, Span, CUSTOM_BUCKETS_SCHEMA};
use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::{HistogramSample, Sample};
use pyrite_tests::side_by_side::{compare, result_points, Point, Points};
use pyrite_tests::{encode, eventually, http_get, Pyrite, PyriteOpts, Upstream};

/// The `match[]` selectors federated: every series below but `db_requests_total`.
const MATCH: &str = "'match[]': ['{job=\"api\"}', '{job=\"worker\"}']";
/// The same series, as one query.
const FEDERATED: &str = "{job=~\"api|worker\"}";

/// What Prometheus 3.x (and Pyrite) asks for with native histograms on.
const PROTOBUF_ACCEPT: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
     encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

/// Samples per series, 10 s apart.
const SAMPLES: usize = 3;

/// Schema 1, a zero bucket, buckets on both sides: each count times `scale`.
fn exponential(scale: f64) -> FloatHistogram {
    FloatHistogram {
        schema: 1,
        zero_threshold: 0.001,
        zero_count: 2.0 * scale,
        count: 12.0 * scale,
        sum: 39.4 * scale,
        positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 2 }],
        positive_buckets: vec![scale, 2.0 * scale, scale, scale],
        negative_spans: vec![Span { offset: -3, length: 1 }],
        negative_buckets: vec![5.0 * scale],
        ..FloatHistogram::default()
    }
}

/// Custom bounds 0.1, 1 and 10; the +Inf bucket holds observations too.
fn custom(scale: f64) -> FloatHistogram {
    FloatHistogram {
        schema: CUSTOM_BUCKETS_SCHEMA,
        count: 10.0 * scale,
        sum: 20.5 * scale,
        positive_spans: vec![Span { offset: 0, length: 4 }],
        positive_buckets: vec![scale, 2.0 * scale, 3.0 * scale, 4.0 * scale],
        custom_values: vec![0.1, 1.0, 10.0],
        ..FloatHistogram::default()
    }
}

fn labels(name: &str, job: &str, instance: &str) -> Labels {
    Labels::from_pairs([("__name__", name), ("job", job), ("instance", instance)])
}

/// The histogram series, each with its samples in time order: counter histograms with float
/// and with whole counts and without observations, a gauge histogram, and custom buckets.
fn histogram_series() -> Vec<(Labels, Vec<FloatHistogram>)> {
    let samples = |shape: &dyn Fn(f64) -> FloatHistogram, scales: [f64; SAMPLES]| scales.map(shape).to_vec();
    let gauge = |scale| FloatHistogram { counter_reset_hint: CounterResetHint::Gauge, ..exponential(scale) };
    vec![
        (labels("request_duration_seconds", "api", "a:1"), samples(&exponential, [0.25, 0.5, 0.75])),
        (labels("request_duration_seconds", "api", "a:2"), samples(&exponential, [1.0, 2.0, 3.0])),
        // Idle: no observations, empty buckets in its spans.
        (labels("request_duration_seconds", "api", "a:3"), samples(&exponential, [0.0, 0.0, 0.0])),
        (labels("queue_size", "worker", "w:1"), samples(&gauge, [3.0, 2.0, 1.0])),
        (labels("request_latency", "api", "a:1"), samples(&custom, [2.0, 3.0, 4.0])),
    ]
}

/// The data, its newest samples at `last` (ms).
fn data(last: i64) -> Vec<WriteSeries> {
    let at = |k: usize| last - (SAMPLES - 1 - k) as i64 * 10_000;
    let floats = |labels: Labels, values: [f64; SAMPLES]| WriteSeries {
        labels,
        samples: values.iter().enumerate().map(|(k, &v)| Sample { t: at(k), v }).collect(),
        exemplars: Vec::new(),
        histograms: Vec::new(),
    };
    let mut out = vec![
        floats(labels("http_requests_total", "api", "a:1"), [100.0, 110.0, 120.5]),
        floats(labels("db_requests_total", "db", "d:1"), [1.0, 2.0, 3.0]),
    ];
    for (labels, samples) in histogram_series() {
        let histograms = samples.into_iter().enumerate().map(|(k, h)| HistogramSample { t: at(k), h: Arc::new(h) });
        out.push(WriteSeries { labels, samples: Vec::new(), exemplars: Vec::new(), histograms: histograms.collect() });
    }
    out
}

/// A source Pyrite holding [`data`], and the time of its newest samples (ms).
fn source(shards: usize) -> (Pyrite, i64) {
    let source = Pyrite::start(PyriteOpts { shards: Some(shards), ..PyriteOpts::default() });
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let last = now / 1000 * 1000 - 5_000;
    let (status, text) = source.remote_write(encode_write_request(&data(last)));
    assert_eq!(status, 204, "{text}");
    (source, last)
}

/// A scrape config federating `source` (host:port); `extra` adds keys to the job.
fn federating(source: u16, extra: &str) -> String {
    format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: federate\n    honor_labels: true\n    \
         metrics_path: /federate\n    params:\n      {MATCH}\n{extra}    static_configs:\n      - targets: ['127.0.0.1:{source}']\n"
    )
}

/// `query` at `t` (seconds) on the server at `url`.
fn points(url: &str, query: &str, t: f64) -> Points {
    let path = format!("/api/v1/query?query={}&time={t}", encode(query));
    result_points(&http_get(&format!("{url}{path}")).expect("query").1, &format!("{url}{path}"))
}

/// `/federate` of the source with `accept` (if any): the content type and the body.
fn federate(url: &str, accept: Option<&str>) -> (String, Vec<u8>) {
    let mut request = ureq::get(&format!("{url}/federate"))
        .query("match[]", "{job=\"api\"}")
        .query("match[]", "{job=\"worker\"}")
        .timeout(Duration::from_secs(10));
    if let Some(accept) = accept {
        request = request.set("Accept", accept);
    }
    let response = request.call().expect("federate answers 200");
    let content_type = response.header("Content-Type").unwrap_or_default().to_string();
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).expect("federate body");
    (content_type, body)
}

#[test]
fn federation_serves_native_histograms_in_the_protobuf_format() {
    let (source, last) = source(2);
    let t = last as f64 / 1000.0;
    let expected = points(&source.url, FEDERATED, t);
    assert_eq!(expected.len(), 6, "{expected:?}");

    // The protobuf answer carries the newest sample of every histogram as it was written (the
    // custom buckets as a classic histogram, converted back here).
    let (content_type, body) = federate(&source.url, Some(PROTOBUF_ACCEPT));
    assert_eq!(
        content_type,
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores"
    );
    let options = HistogramOptions { native: true, keep_classic: false, convert_to_nhcb: true };
    let mut parser = ProtobufParser::new(&body, options);
    let mut histograms = Vec::new();
    while let Some(entry) = parser.next() {
        if let Entry::Histogram { series, histogram, timestamp, .. } = entry.expect("the body parses") {
            histograms.push((parse_series(series).unwrap(), timestamp, *histogram));
        }
    }
    // The parser leaves the empty buckets of a histogram without observations out.
    let as_read = |h: FloatHistogram| match h.count {
        0.0 => FloatHistogram {
            positive_spans: vec![],
            negative_spans: vec![],
            positive_buckets: vec![],
            negative_buckets: vec![],
            ..h
        },
        _ => h,
    };
    let mut want: Vec<_> =
        histogram_series().into_iter().map(|(l, mut h)| (l, Some(last), as_read(h.remove(SAMPLES - 1)))).collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    histograms.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(histograms, want);

    // A second Pyrite and Prometheus 2.42 federate it, both scraping the protobuf format.
    let extra = "    scrape_native_histograms: true\n    convert_classic_histograms_to_nhcb: true\n";
    let pyrite = Pyrite::start(PyriteOpts { config: Some(federating(source.port, extra)), ..PyriteOpts::default() });
    let upstream = Upstream::start_configured(&federating(source.port, ""), &["--enable-feature=native-histograms"]);
    let arrived = |url: &str, query: &str, series: usize| {
        eventually(Duration::from_secs(30), || {
            let got = points(url, query, t);
            (got.len() == series).then_some(got)
        })
        .unwrap_or_else(|| panic!("{query} was not federated into {url} within 30 s: {:?}", points(url, query, t)))
    };
    // Pyrite converts the classic histogram back to custom buckets: every series the same.
    let federated = arrived(&pyrite.url, FEDERATED, expected.len());
    assert_eq!(compare(FEDERATED, &federated, &expected), None);
    // 2.42 knows no custom buckets: it keeps the classic series, cumulative up to each bound.
    let native = "{job=~\"api|worker\",__name__!~\"request_latency.*\"}";
    let federated = arrived(&upstream.url, native, expected.len() - 1);
    assert_eq!(compare(native, &federated, &points(&source.url, native, t)), None);
    arrived(&upstream.url, "{__name__=~\"request_latency_.*\"}", 6);
    let value = |query: &str| {
        let got = points(&upstream.url, query, t);
        assert_eq!(got.len(), 1, "{query}: {got:?}");
        got.into_values().flatten().map(|(_, p)| p).collect::<Vec<_>>()
    };
    // The newest sample of `request_latency` is `custom(4.0)`, its sum 82. Its counts go as
    // floats (`cumulative_count_float`, `sample_count_float`), as upstream's federation sends
    // them, and as integers too, the only ones 2.42 reads for a classic histogram (from
    // upstream 3.x, its buckets and count arrive as 0).
    for (le, count) in [("0.1", 4.0), ("1.0", 12.0), ("10.0", 24.0), ("+Inf", 40.0)] {
        assert_eq!(value(&format!("request_latency_bucket{{le=\"{le}\"}}")), [Point::Float(count)], "{le}");
    }
    assert_eq!(value("request_latency_count"), [Point::Float(40.0)]);
    assert_eq!(value("request_latency_sum"), [Point::Float(82.0)]);
}

#[test]
fn the_text_format_leaves_exponential_histograms_out() {
    let (source, last) = source(1);
    for accept in [None, Some("text/plain;version=0.0.4"), Some("application/json, */*;q=0.1")] {
        let (content_type, body) = federate(&source.url, accept);
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8; escaping=underscores", "{accept:?}");
        let body = String::from_utf8(body).expect("text");
        let want = format!(
            "# TYPE http_requests_total untyped\n\
             http_requests_total{{instance=\"a:1\",job=\"api\"}} 120.5 {last}\n\
             # TYPE request_latency histogram\n\
             request_latency_bucket{{instance=\"a:1\",job=\"api\",le=\"0.1\"}} 4 {last}\n\
             request_latency_bucket{{instance=\"a:1\",job=\"api\",le=\"1\"}} 12 {last}\n\
             request_latency_bucket{{instance=\"a:1\",job=\"api\",le=\"10\"}} 24 {last}\n\
             request_latency_bucket{{instance=\"a:1\",job=\"api\",le=\"+Inf\"}} 40 {last}\n\
             request_latency_sum{{instance=\"a:1\",job=\"api\"}} 82 {last}\n\
             request_latency_count{{instance=\"a:1\",job=\"api\"}} 40 {last}\n"
        );
        assert_eq!(body, want, "{accept:?}");
    }
}
