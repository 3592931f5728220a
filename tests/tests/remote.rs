//! Remote write 2.0 receiving and remote read (`/api/v1/read`), against the real binary (and,
//! for remote read, Debian's upstream Prometheus reading from it).

use std::time::Duration;

use pyrite_core::remote::v2::{HistogramV2, MetadataV2, RequestV2, SampleV2, TimeSeriesV2};
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

/// A 2.0 request of `series` (label pairs, samples as (ms, value)), symbols as a sender builds
/// them: the empty string first, each string once.
fn request_v2(series: &[(&[(&str, &str)], &[(i64, f64)])]) -> RequestV2 {
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
    partial.timeseries.push(TimeSeriesV2 { histograms: vec![HistogramV2 {}; 2], samples: vec![], ..good.clone() });
    let a = remote_write_with(&p, &V2, &partial.encode_compressed());
    assert_eq!((a.status, a.written), (400, Some([1, 0, 0])), "{}", a.body);
    assert!(a.body.contains("outside of symbols table"), "{}", a.body);
    assert!(a.body.contains("native histograms are not supported yet: 2 histogram sample(s)"), "{}", a.body);
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
    // A label ref past u32, a truncated series, a symbol that is not UTF-8, not snappy at all.
    for raw in [
        compress(&[0x2a, 7, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        compress(&[0x2a, 0x7f, 0x08]),
        compress(&[0x22, 1, 0xff]),
        b"\xff\xff\xff\xff not snappy".to_vec(),
    ] {
        let a = remote_write_with(&p, &V2, &raw);
        assert_eq!(a.status, 400, "{}", a.body);
    }
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
