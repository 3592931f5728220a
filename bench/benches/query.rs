//! Dashboard queries over an in-memory head of 100k (and, with `PYRITE_BENCH_1M=1`, 1M) series,
//! evaluated on one shard and fanned out over all shards (one thread each, as the server runs
//! them), so the speed-up from fan-out can be read off directly.
//!
//! The data set and queries are [`pyrite_bench::dashboard`]'s.
//!
//! As in the server, each shard is a thread that owns its head (a head is deliberately not
//! `Sync`) and evaluates the fragments it is sent.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pyrite_core::promql::{evaluate_fragments, parse, plan, EvalParams, FragmentOutput, Plan};
use pyrite_tsdb::head::Head;

use pyrite_bench::dashboard::{for_each_series, SAMPLES, STEP_MS};
use pyrite_loadgen::drive::DASHBOARD;

const END: i64 = SAMPLES * STEP_MS;

/// Loads shard `shard`'s share (of `shards`) of the dashboard series into a head.
fn head(series: usize, shard: usize, shards: usize) -> Head {
    let mut head = Head::new();
    for_each_series(series, 0..SAMPLES, 0, |labels, samples| {
        if labels.owner(shards) != shard {
            return;
        }
        let (id, _) = head.get_or_create(&labels);
        for x in samples {
            head.append(id, x.t, x.v).expect("in order");
        }
    });
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
                        let out = evaluate_fragments(&plan, &params, &head, &plan.limits).expect("evaluates");
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
            for (name, query, is_range) in DASHBOARD {
                let params = if is_range {
                    EvalParams { start: END - 3_600_000 + 300_000, end: END, step: STEP_MS, lookback: 300_000 }
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
