//! Micro-benchmarks of the core hot paths. Throughput is reported in bytes (parsing) or
//! elements (samples) per second, so results read as MiB/s and samples/s.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pyrite_core::exposition::{parse_series, Entry, TextParser};
use pyrite_core::labels::Labels;
use pyrite_core::promql::{evaluate_fragment, parse, plan, EvalParams};
use pyrite_core::scrape::TargetIngest;
use pyrite_core::tsdb::chunk::XorChunk;
use pyrite_core::tsdb::head::Head;

const SERIES: usize = 1000;

fn body() -> String {
    pyrite_loadgen::render(SERIES, 0, 3600.0)
}

fn exposition(c: &mut Criterion) {
    let body = body();
    let mut g = c.benchmark_group("exposition");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("scan_lines", |b| {
        b.iter(|| TextParser::new(black_box(&body)).filter(|e| matches!(e, Ok(Entry::Sample { .. }))).count())
    });
    g.bench_function("scan_and_parse_labels", |b| {
        b.iter(|| {
            TextParser::new(black_box(&body))
                .filter_map(|e| match e {
                    Ok(Entry::Sample { series, .. }) => parse_series(series).ok(),
                    _ => None,
                })
                .count()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("scrape_ingest");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("steady_state_cached", |b| {
        let mut ingest = TargetIngest::new(Labels::from_pairs([("job", "app"), ("instance", "h:1")]), false, 2);
        let first = ingest.ingest(&body, 0).expect("valid body");
        for (shard, keys) in first.pending.into_iter().enumerate() {
            let ids: Vec<u32> = (0..keys.len() as u32).collect();
            ingest.resolve(shard, keys, &ids);
        }
        let mut t = 0;
        b.iter(|| {
            t += 15_000;
            ingest.ingest(black_box(&body), t).expect("valid body").counts
        })
    });
    g.finish();
}

fn chunks(c: &mut Criterion) {
    let samples: Vec<(i64, f64)> =
        (0..120).map(|i| (1_700_000_000_000 + i * 15_000, (i * 37 % 1000) as f64 * 1.5)).collect();
    let mut g = c.benchmark_group("xor_chunk");
    g.throughput(Throughput::Elements(samples.len() as u64));
    g.bench_function("append_120", |b| {
        b.iter(|| {
            let mut chunk = XorChunk::new();
            for &(t, v) in &samples {
                chunk.append(t, v);
            }
            chunk
        })
    });
    let mut chunk = XorChunk::new();
    samples.iter().for_each(|&(t, v)| chunk.append(t, v));
    g.bench_function("decode_120", |b| b.iter(|| black_box(&chunk).iter().map(|(_, v)| v).sum::<f64>()));
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
    g.finish();

    let head = loaded_head(SERIES, 240);
    let expr = parse("sum by (job) (rate(http_requests_total[5m]))").expect("valid query");
    let instant = EvalParams::instant(3_000_000, 300_000);
    let p = plan(&expr, &instant).expect("plannable");
    let mut g = c.benchmark_group("query_1000_series");
    g.sample_size(20);
    g.bench_function("sum_rate_instant", |b| b.iter(|| evaluate_fragment(&p, 0, &instant, &head).expect("evaluates")));
    let range = EvalParams { start: 300_000, end: 3_585_000, step: 15_000, lookback: 300_000 };
    g.throughput(Throughput::Elements((SERIES * range.steps()) as u64));
    g.bench_function("sum_rate_range_220_steps", |b| {
        b.iter(|| evaluate_fragment(&p, 0, &range, &head).expect("evaluates"))
    });
    g.finish();
}

criterion_group!(benches, exposition, chunks, head_and_query);
criterion_main!(benches);
