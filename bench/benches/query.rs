//! Dashboard queries over an in-memory head of 100k (and, with `PYRITE_BENCH_1M=1`, 1M) series,
//! evaluated on one shard and fanned out over all shards (one thread each, as the server runs
//! them), so the speed-up from fan-out can be read off directly.
//!
//! The series are an HTTP service's counters by instance, handler and status plus classic
//! request-duration histograms: one hour at a 15 s interval.
//!
//! As in the server, each shard is a thread that owns its head (a head is deliberately not
//! `Sync`) and evaluates the fragments it is sent.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pyrite_core::labels::Labels;
use pyrite_core::promql::{evaluate_fragment, parse, plan, EvalParams, FragmentOutput, Plan};
use pyrite_core::tsdb::head::Head;

const SAMPLES: i64 = 240;
const STEP: i64 = 15_000;
const END: i64 = SAMPLES * STEP;
const BUCKETS: [&str; 8] = ["0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];

/// Loads shard `shard`'s share (of `shards`) of `series` series into a head.
fn head(series: usize, shard: usize, shards: usize) -> Head {
    let mut head = Head::new();
    // Per instance: 40 counters (4 handlers x 10 statuses) and 4 histograms of 8 buckets.
    let per_instance = 40 + 4 * BUCKETS.len();
    for i in 0..series.div_ceil(per_instance) {
        let instance = format!("10.{}.{}.{}:8080", i / 65536, (i / 256) % 256, i % 256);
        let mut add = |pairs: Vec<(&str, String)>, slope: f64| {
            let labels = Labels::from_pairs(pairs);
            if labels.owner(shards) != shard {
                return;
            }
            let (id, _) = head.get_or_create(&labels);
            for k in 0..SAMPLES {
                head.append(id, k * STEP, (slope * k as f64).floor()).expect("in order");
            }
        };
        for h in 0..4 {
            for s in 0..10 {
                let status = format!("{}{:02}", 2 + s / 3, s);
                add(
                    vec![
                        ("__name__", "http_requests_total".into()),
                        ("instance", instance.clone()),
                        ("handler", format!("/api/{h}")),
                        ("status", status),
                    ],
                    1.0 + (s + h) as f64,
                );
            }
            for (j, le) in BUCKETS.iter().enumerate() {
                add(
                    vec![
                        ("__name__", "http_request_duration_seconds_bucket".into()),
                        ("instance", instance.clone()),
                        ("handler", format!("/api/{h}")),
                        ("le", le.to_string()),
                    ],
                    (j + 1) as f64 * 3.0,
                );
            }
        }
    }
    head
}

type Job = (Arc<Plan>, EvalParams, mpsc::Sender<Vec<FragmentOutput>>);

/// Shard threads, each owning the head it built.
struct Shards {
    jobs: Vec<mpsc::Sender<Job>>,
}

impl Shards {
    fn start(series: usize, shards: usize) -> Shards {
        let (ready_tx, ready_rx) = mpsc::channel();
        let jobs = (0..shards)
            .map(|shard| {
                let (tx, rx) = mpsc::channel::<Job>();
                let ready = ready_tx.clone();
                std::thread::spawn(move || {
                    let head = head(series, shard, shards);
                    ready.send(()).expect("bench is waiting");
                    for (plan, params, reply) in rx {
                        let out = (0..plan.fragments.len())
                            .map(|i| evaluate_fragment(&plan, i, &params, &head).expect("evaluates"))
                            .collect();
                        let _ = reply.send(out);
                    }
                });
                tx
            })
            .collect();
        (0..shards).for_each(|_| ready_rx.recv().expect("shard built its head"));
        Shards { jobs }
    }

    /// Plans `query`, has every shard evaluate its fragments, and merges.
    fn run(&self, query: &str, params: &EvalParams) -> usize {
        let p = Arc::new(plan(&parse(query).expect("valid query"), params).expect("plannable"));
        let replies: Vec<_> = self
            .jobs
            .iter()
            .map(|tx| {
                let (reply, rx) = mpsc::channel();
                tx.send((p.clone(), *params, reply)).expect("shard alive");
                rx
            })
            .collect();
        let outputs: Vec<Vec<FragmentOutput>> =
            replies.into_iter().map(|rx| rx.recv().expect("shard answered")).collect();
        match p.finish(params, outputs).expect("finishes").value {
            pyrite_core::promql::Value::Vector(v) => v.len(),
            _ => 1,
        }
    }
}

/// The dashboard: instant queries at the end of the hour, and a 1 h range query at 15 s steps.
const DASHBOARD: [(&str, &str); 6] = [
    ("sum_rate_by_status", "sum by (status) (rate(http_requests_total[5m]))"),
    ("histogram_p99", "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"),
    ("topk_10", "topk(10, rate(http_requests_total[5m]))"),
    ("regex_selection", "sum(rate(http_requests_total{handler=~\"/api/[12]\", status=~\"5..\"}[5m]))"),
    ("count_all", "count({__name__=~\".+\"})"),
    ("range_1h_sum_rate", "sum by (handler) (rate(http_requests_total[5m]))"),
];

fn dashboard(c: &mut Criterion) {
    let all = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut sizes = vec![100_000];
    if std::env::var_os("PYRITE_BENCH_1M").is_some() {
        sizes.push(1_000_000);
    }
    for series in sizes {
        let mut g = c.benchmark_group(format!("dashboard_{}k_series", series / 1000));
        g.sample_size(10).measurement_time(Duration::from_secs(10)).warm_up_time(Duration::from_secs(1));
        for shards in [1, all] {
            let cluster = Shards::start(series, shards);
            for (name, query) in DASHBOARD {
                let params = if name.starts_with("range") {
                    EvalParams { start: END - 3_600_000 + 300_000, end: END, step: STEP, lookback: 300_000 }
                } else {
                    EvalParams::instant(END, 300_000)
                };
                g.bench_with_input(BenchmarkId::new(name, format!("{shards}_shards")), &params, |b, params| {
                    b.iter(|| cluster.run(query, params))
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, dashboard);
criterion_main!(benches);
