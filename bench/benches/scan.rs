//! The exposition parser's byte search, hand-written SSE2/AVX2 `find3` against
//! `memchr::memchr3`, on the searches a scrape makes: per line, the end of the metric name
//! (` `, `\t`, `{`), then the quotes and braces of its label set.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pyrite_core::exposition::scan::find3;

type Find = fn(&[u8], u8, u8, u8) -> Option<usize>;

/// The searches of `series_end` over every sample line of `body`; returns a checksum.
fn searches(body: &str, find: Find) -> usize {
    let mut sum = 0;
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let bytes = line.as_bytes();
        let i = find(bytes, b' ', b'\t', b'{').unwrap_or(bytes.len());
        sum += i;
        if bytes.get(i) != Some(&b'{') {
            continue;
        }
        let mut k = i + 1;
        while let Some(at) = find(&bytes[k..], b'"', b'}', b'}').map(|j| k + j) {
            if bytes[at] == b'}' {
                sum += at;
                break;
            }
            let Some(close) = find(&bytes[at + 1..], b'"', b'\\', b'"') else { break };
            k = at + 2 + close;
        }
    }
    sum
}

fn memchr3(hay: &[u8], a: u8, b: u8, c: u8) -> Option<usize> {
    memchr::memchr3(a, b, c, hay)
}

fn scan(c: &mut Criterion) {
    let bodies = [
        ("node_exporter", pyrite_loadgen::exporters::render(1000, 3, 5, 3600.0, None)),
        ("high_cardinality_service", pyrite_loadgen::exporters::render(1000, 0, 5, 3600.0, None)),
    ];
    let mut g = c.benchmark_group("series_end_searches");
    for (name, body) in &bodies {
        assert_eq!(searches(body, find3), searches(body, memchr3));
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("find3/{name}"), |b| b.iter(|| searches(black_box(body), find3)));
        g.bench_function(format!("memchr3/{name}"), |b| b.iter(|| searches(black_box(body), memchr3)));
    }
    g.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
