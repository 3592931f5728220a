//! Micro-benchmarks of the core hot paths. Throughput is reported in bytes (parsing) or
//! elements (samples, series) per second, so results read as MiB/s and samples/s.
//!
//! Inputs are shaped like production data: exposition bodies from loadgen's `mixed` profile
//! (a node exporter, and a high-cardinality HTTP service), chunks of counters, gauges,
//! histogram buckets and constant series, and an index of 1M series; alert templates and a
//! 1,000-alert rule group.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pyrite_core::exposition::{parse_series, Entry, Format, TextParser};
use pyrite_core::labels::{Labels, MatchOp, Matcher};
use pyrite_core::promql::{evaluate_fragment, parse, plan, EvalParams};
use pyrite_core::scrape::{IngestOptions, TargetIngest};
use pyrite_tsdb::chunk::{packed, XorChunk};
use pyrite_tsdb::head::Head;
use pyrite_tsdb::postings::Postings;
use pyrite_tsdb::symbols::Symbols;

const SERIES: usize = 1000;

fn body() -> String {
    pyrite_loadgen::render(SERIES, 0, 3600.0, 0.0)
}

/// Counts the samples of a body, validating every line (what a scrape does first).
fn scan(body: &str) -> usize {
    TextParser::new(body).filter(|e| matches!(e, Ok(Entry::Sample { .. }))).count()
}

fn exposition(c: &mut Criterion) {
    // Target 3 of the mixed profile is a node exporter, target 0 an HTTP service whose series
    // carry handler, method, status and pod labels.
    let bodies = [
        ("uniform", body()),
        ("node_exporter", pyrite_loadgen::exporters::render(SERIES, 3, 5, 3600.0, None)),
        ("high_cardinality_service", pyrite_loadgen::exporters::render(SERIES, 0, 5, 3600.0, None)),
    ];
    for (what, unit) in [("MiB", "bytes"), ("samples", "samples")] {
        let mut g = c.benchmark_group(format!("exposition_{unit}"));
        for (name, body) in &bodies {
            g.throughput(match what {
                "MiB" => Throughput::Bytes(body.len() as u64),
                _ => Throughput::Elements(scan(body) as u64),
            });
            g.bench_function(format!("scan_lines/{name}"), |b| b.iter(|| scan(black_box(body))));
            g.bench_function(format!("scan_and_parse_labels/{name}"), |b| {
                b.iter(|| {
                    TextParser::new(black_box(body))
                        .filter_map(|e| match e {
                            Ok(Entry::Sample { series, .. }) => parse_series(series).ok(),
                            _ => None,
                        })
                        .count()
                })
            });
        }
        g.finish();
    }

    let body = body();
    let mut g = c.benchmark_group("scrape_ingest");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("steady_state_cached", |b| {
        let mut ingest =
            TargetIngest::new(Labels::from_pairs([("job", "app"), ("instance", "h:1")]), IngestOptions::default(), 2);
        let first = ingest.ingest(&body, Format::Text, 0).expect("valid body");
        for (shard, keys) in first.pending.into_iter().enumerate() {
            let ids: Vec<u32> = (0..keys.len() as u32).collect();
            ingest.resolve(shard, keys, &ids);
        }
        let mut t = 0;
        b.iter(|| {
            t += 15_000;
            ingest.ingest(black_box(&body), Format::Text, t).expect("valid body").counts
        })
    });
    g.finish();
}

/// 120 samples (30 minutes at 15 s, with scrape jitter) of series shaped like production ones.
fn chunk_inputs() -> Vec<(&'static str, Vec<(i64, f64)>)> {
    let t = |i: i64| 1_700_000_000_000 + i * 15_000 + (i * 7919 % 13) - 6;
    let counter = (0..120).map(|i| (t(i), (i * 37 + (i * i) % 11) as f64)).collect();
    let gauge = (0..120)
        .map(|i| (t(i), (1.2e9 * (1.0 + 0.3 * (i as f64 / 20.0).sin()) + (i * 7919 % 1000) as f64).round()))
        .collect();
    let bucket = (0..120).map(|i| (t(i), (i / 3 * 2) as f64)).collect();
    let constant = (0..120).map(|i| (t(i), 1.0)).collect();
    // node_cpu_seconds_total: centisecond resolution.
    let cpu_seconds = (0..120).map(|i| (t(i), (12_345_678 + i * 1_490 + i * 7919 % 20) as f64 / 100.0)).collect();
    // A computed ratio: arbitrary floats.
    let ratio = (0..120).map(|i| (t(i), 0.5 + 0.25 * (i as f64 / 7.0).sin())).collect();
    vec![
        ("counter", counter),
        ("gauge", gauge),
        ("histogram_bucket", bucket),
        ("constant", constant),
        ("cpu_seconds", cpu_seconds),
        ("float_ratio", ratio),
    ]
}

fn chunks(c: &mut Criterion) {
    let mut g = c.benchmark_group("xor_chunk");
    for (name, samples) in chunk_inputs() {
        let mut chunk = XorChunk::new();
        samples.iter().for_each(|&(t, v)| chunk.append(t, v));
        println!("xor_chunk/{name}: {:.2} bytes/sample", chunk.byte_len() as f64 / samples.len() as f64);
        g.throughput(Throughput::Elements(samples.len() as u64));
        g.bench_function(format!("encode_120/{name}"), |b| {
            b.iter(|| {
                let mut chunk = XorChunk::new();
                for &(t, v) in &samples {
                    chunk.append(t, v);
                }
                chunk
            })
        });
        g.bench_function(format!("decode_120/{name}"), |b| {
            b.iter(|| black_box(&chunk).iter().map(|(_, v)| v).sum::<f64>())
        });
    }
    g.finish();
    let mut g = c.benchmark_group("packed_chunk");
    for (name, samples) in chunk_inputs() {
        let mut bytes = Vec::new();
        packed::encode(&samples, &mut bytes);
        println!("packed_chunk/{name}: {:.2} bytes/sample", bytes.len() as f64 / samples.len() as f64);
        g.throughput(Throughput::Elements(samples.len() as u64));
        g.bench_function(format!("encode_120/{name}"), |b| {
            let mut out = Vec::with_capacity(2048);
            b.iter(|| {
                out.clear();
                packed::encode(black_box(&samples), &mut out);
                out.len()
            })
        });
        let mut out = Vec::with_capacity(packed::MAX_SAMPLES);
        g.bench_function(format!("decode_120/{name}"), |b| {
            b.iter(|| {
                out.clear();
                packed::decode(black_box(&bytes), &mut out).expect("decodes");
                out.iter().map(|&(_, v)| v).sum::<f64>()
            })
        });
    }
    g.finish();
}

/// An index of 1M series: 50 metric names, 20 jobs, 10,000 instances, 5 status codes.
fn index() -> (Symbols, Postings) {
    let (mut symbols, mut postings) = (Symbols::default(), Postings::default());
    for s in 0..1_000_000u32 {
        let pairs = [
            ("__name__", format!("metric_{}", s % 50)),
            ("instance", format!("host{}:9100", s / 100)),
            ("job", format!("job{}", s % 20)),
            ("status", format!("{}", 200 + (s / 7) % 5 * 100)),
        ];
        let labels: Vec<(u32, u32)> = pairs.iter().map(|(n, v)| (symbols.intern(n), symbols.intern(v))).collect();
        postings.add(s, &labels);
    }
    (symbols, postings)
}

fn postings(c: &mut Criterion) {
    let (symbols, postings) = index();
    let m = |n: &str, op: MatchOp, v: &str| Matcher::new(n, op, v).expect("valid matcher");
    let cases = [
        ("name_and_job", vec![m("__name__", MatchOp::Equal, "metric_7"), m("job", MatchOp::Equal, "job7")]),
        ("name_and_not_status", vec![m("__name__", MatchOp::Equal, "metric_7"), m("status", MatchOp::NotEqual, "500")]),
        (
            "name_and_instance_regex",
            vec![m("__name__", MatchOp::Equal, "metric_7"), m("instance", MatchOp::Regex, "host1[0-9]{2}:.*")],
        ),
        ("job_alternation_regex", vec![m("job", MatchOp::Regex, "job1|job2|job3")]),
        ("all_names_regex", vec![m("__name__", MatchOp::Regex, ".+")]),
    ];
    let mut g = c.benchmark_group("postings_1m_series");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1_000_000));
    for (name, matchers) in cases {
        g.bench_function(name, |b| b.iter(|| postings.select(&symbols, black_box(&matchers)).len()));
    }
    g.finish();
}

fn loaded_head(series: usize, samples: i64) -> Head {
    let mut head = Head::new();
    for s in 0..series {
        let labels = Labels::from_pairs([
            ("__name__", "http_requests_total".to_string()),
            ("job", format!("job{}", s % 10)),
            ("instance", format!("host{s}:9100")),
        ]);
        let (id, _) = head.get_or_create(&labels);
        for k in 0..samples {
            head.append(id, k * 15_000, (k * (s as i64 % 7 + 1)) as f64).expect("in order");
        }
    }
    head
}

fn head_and_query(c: &mut Criterion) {
    let mut g = c.benchmark_group("head");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("append_one_sample_to_1000_series", |b| {
        b.iter_batched(
            || (loaded_head(SERIES, 1), 1i64),
            |(mut head, k)| {
                for id in 0..SERIES as u32 {
                    head.append(id, k * 15_000, k as f64).expect("in order");
                }
                head
            },
            BatchSize::LargeInput,
        )
    });
    // Into `storage.tsdb.out_of_order_time_window`: between two samples an hour old.
    g.bench_function("append_one_out_of_order_sample_to_1000_series", |b| {
        b.iter_batched(
            || {
                let mut head = loaded_head(SERIES, 240);
                head.set_out_of_order_window(3_600_000);
                head
            },
            |mut head| {
                for id in 0..SERIES as u32 {
                    head.append(id, 7_500, 1.0).expect("within the window");
                }
                head
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    let head = loaded_head(SERIES, 240);
    // The same head with 20 out-of-order samples per series in the five minutes the instant
    // query reads, which it then merges.
    let mut late = loaded_head(SERIES, 240);
    late.set_out_of_order_window(3_600_000);
    for id in 0..SERIES as u32 {
        for k in 181..=200 {
            late.append(id, k * 15_000 - 7_500, 1.0).expect("within the window");
        }
    }
    let expr = parse("sum by (job) (rate(http_requests_total[5m]))").expect("valid query");
    let instant = EvalParams::instant(3_000_000, 300_000);
    let p = plan(&expr, &instant).expect("plannable");
    let mut g = c.benchmark_group("query_1000_series");
    g.sample_size(20);
    g.bench_function("sum_rate_instant", |b| b.iter(|| evaluate_fragment(&p, 0, &instant, &head).expect("evaluates")));
    g.bench_function("sum_rate_instant_with_out_of_order_samples", |b| {
        b.iter(|| evaluate_fragment(&p, 0, &instant, &late).expect("evaluates"))
    });
    let range = EvalParams { start: 300_000, end: 3_585_000, step: 15_000, lookback: 300_000 };
    g.throughput(Throughput::Elements((SERIES * range.steps()) as u64));
    g.bench_function("sum_rate_range_220_steps", |b| {
        b.iter(|| evaluate_fragment(&p, 0, &range, &head).expect("evaluates"))
    });
    g.finish();
}

/// Alert templates: what expanding a typical annotation costs per alert (Go's template language
/// through gotmpl), parsed each time as upstream does and parsed once as rules do, and a
/// 1,000-alert group's whole evaluation on the in-memory engine.
fn rules(c: &mut Criterion) {
    use pyrite_core::promql::{EvalError, Expr, QueryLimits};
    use pyrite_core::rules::template::{expand, Compiled, QueryFn, TemplateData};
    use pyrite_core::rules::{GroupDefaults, GroupState, InstantQuery, RuleError, RuleFile, RuleSettings, RuleStorage};
    use pyrite_core::series_notation::Point;
    use pyrite_core::value::SampleValue;
    use pyrite_tsdb::memory::MemoryEngine;
    use std::rc::Rc;

    let labels = Labels::from_pairs([("instance", "web-7.example.com:9100"), ("job", "api"), ("handler", "/v1/items")]);
    let external = Labels::from_pairs([("cluster", "eu-1")]);
    let data =
        TemplateData { labels: &labels, external_labels: &external, external_url: "http://prom:9090", value: 0.0734 };
    let no_query: QueryFn = Rc::new(|_: &str| Err(EvalError::Execution("no queries".into()).into()));
    let mut g = c.benchmark_group("alert_templates");
    g.throughput(Throughput::Elements(1));
    for (name, text) in [
        ("plain_label", "Instance {{ $labels.instance }} down"),
        (
            "humanize_percentage",
            "{{ $labels.job }} error ratio {{ $value | humanizePercentage }} on {{ $externalLabels.cluster }}",
        ),
        ("if_printf", "{{ if gt $value 0.05 }}{{ printf \"%.2f\" $value }} is high{{ else }}fine{{ end }}"),
    ] {
        g.bench_function(format!("parse_and_expand_{name}"), |b| {
            b.iter(|| expand("__alert_A", black_box(text), &data, 0, &no_query).unwrap())
        });
        let compiled = Compiled::new("__alert_A", text).unwrap();
        g.bench_function(format!("expand_{name}"), |b| b.iter(|| compiled.expand(&data, 0, &no_query).unwrap()));
    }
    g.finish();

    struct Store(Rc<MemoryEngine>);
    impl RuleStorage for Store {
        fn queries(&self) -> InstantQuery {
            let engine = self.0.clone();
            Rc::new(move |expr: &Expr, t: i64| Ok(engine.eval(expr, engine.instant(t))?.value))
        }
        fn append(&mut self, _: i64, _: &[(Labels, SampleValue)]) -> Result<(), RuleError> {
            Ok(()) // Only evaluation is measured: results are not stored.
        }
    }
    let mut engine = MemoryEngine::new(1, QueryLimits::unlimited());
    for i in 0..1000 {
        let series =
            Labels::from_pairs([("__name__", "errors_ratio".to_string()), ("instance", format!("host-{i}:9100"))]);
        engine
            .load(&[(series, (0..20).map(|s| (s * 15_000, Point::Value(0.06 + (i % 10) as f64 / 100.0))).collect())])
            .unwrap();
    }
    let text = "groups:\n  - name: g\n    rules:\n      - alert: HighErrors\n        expr: errors_ratio > 0.05\n        for: 5m\n        annotations:\n          summary: '{{ $labels.instance }} at {{ $value | humanizePercentage }}'\n";
    let file = RuleFile::parse(text, "r.yml", Default::default(), Default::default()).unwrap();
    let mut group = GroupState::new(
        &file.groups[0],
        "r.yml",
        GroupDefaults { interval: 15_000, query_offset: 0 },
        Default::default(),
    )
    .unwrap();
    let settings = RuleSettings { resend_delay: 60_000, ..Default::default() };
    let mut store = Store(Rc::new(engine));
    let mut g = c.benchmark_group("rule_group");
    g.throughput(Throughput::Elements(1000));
    g.sample_size(20);
    g.bench_function("alerting_1000_alerts", |b| {
        b.iter(|| group.evaluate(285_000, &mut store, &settings, &std::time::Instant::now).len())
    });
    g.finish();
}

/// Building a remote-write request of 2,000 samples (one per series, node-exporter-like
/// labels): the sender's labels encoded once per series, against the whole message encoded
/// by prost from `Labels` each time (what a sender without the cache would do).
fn remote_write_requests(c: &mut Criterion) {
    use pyrite_core::remote::send::{encode_labels, encode_v1, encode_v2, OutSeries};
    use pyrite_core::remote::{encode_write_request, WriteSeries};
    use pyrite_core::value::Sample;
    let series: Vec<WriteSeries> = (0..2000)
        .map(|i| WriteSeries {
            labels: Labels::from_pairs([
                ("__name__", format!("node_cpu_seconds_total_{}", i % 50)),
                ("cpu", (i % 16).to_string()),
                ("instance", format!("node-{}.example:9100", i / 100)),
                ("job", "node".to_string()),
                ("mode", "user".to_string()),
            ]),
            samples: vec![Sample { t: 1_700_000_000_000 + i, v: i as f64 * 1.5 }],
            exemplars: Vec::new(),
            histograms: Vec::new(),
        })
        .collect();
    let labels: Vec<Vec<u8>> = series.iter().map(|s| encode_labels(&s.labels)).collect();
    let samples: Vec<Vec<(i64, f64)>> = series.iter().map(|s| s.samples.iter().map(|x| (x.t, x.v)).collect()).collect();
    let out: Vec<OutSeries> = labels
        .iter()
        .zip(&samples)
        .map(|(l, s)| OutSeries { labels: l, samples: s, exemplars: &[], histograms: &[] })
        .collect();
    let mut g = c.benchmark_group("remote_write_request");
    g.throughput(Throughput::Elements(2000));
    g.bench_function("v1_cached_labels", |b| b.iter(|| black_box(encode_v1(black_box(&out)))));
    g.bench_function("v2_cached_labels", |b| b.iter(|| black_box(encode_v2(black_box(&out)))));
    g.bench_function("v1_prost_from_labels", |b| b.iter(|| black_box(encode_write_request(black_box(&series)))));
    g.finish();
}

criterion_group!(benches, exposition, chunks, postings, head_and_query, rules, remote_write_requests);
criterion_main!(benches);
